//! Criterion benchmarks of kage-core: sealed values and the SOPS engine.
//! Run with `cargo bench -p kage-core`; `bench/core.sh` runs them next to the real sops and age.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kage_core::document::{Document, EmitOptions, Format, MapItem, Node, emit, parse};
use kage_core::keys::{Identity, KeyRing};
use kage_core::sealed::{Binding, Scope, open, seal};
use kage_core::sops::{EncryptOptions, Selection, decrypt, encrypt};

fn secret_with(n: usize, value_len: usize) -> Document {
    let data: Vec<MapItem> = (0..n)
        .map(|i| MapItem::Entry(format!("key-{i}"), Node::string("x".repeat(value_len))))
        .collect();
    let text =
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app\n  namespace: prod\ntype: Opaque\n";
    let mut doc = parse(text.as_bytes(), Format::Yaml).unwrap().remove(0);
    doc.root.insert("data", Node::Map(data));
    doc
}

fn sealed(c: &mut Criterion) {
    let id = Identity::generate();
    let binding = Binding::new(Scope::Strict, "prod", "db", "password");
    let value = b"correct horse battery staple";
    let mut g = c.benchmark_group("sealed");
    g.throughput(Throughput::Elements(1));
    g.bench_function("seal", |b| {
        b.iter(|| seal(value, &binding, &[id.recipient()]).unwrap())
    });
    let s = seal(value, &binding, &[id.recipient()]).unwrap();
    for retained in [1usize, 100] {
        let mut ring = KeyRing::from_identities((1..retained).map(|_| Identity::generate()));
        ring.insert(id.clone());
        g.bench_with_input(
            BenchmarkId::new("open", format!("{retained}-keys")),
            &ring,
            |b, ring| b.iter(|| open(&s, &binding, ring).unwrap()),
        );
    }
    g.finish();
}

fn sops(c: &mut Criterion) {
    let id = Identity::generate();
    let mut opts = EncryptOptions::new(vec![id.recipient()]);
    opts.selection = Selection::kubernetes_secret();
    let mut g = c.benchmark_group("sops");
    for (name, doc, bytes) in [
        ("secret-5-keys", secret_with(5, 24), 5 * 24),
        ("secret-100-keys", secret_with(100, 24), 100 * 24),
        ("value-1MiB", secret_with(1, 1 << 20), 1 << 20),
    ] {
        g.throughput(Throughput::Bytes(bytes as u64));
        let docs = vec![doc];
        g.bench_function(BenchmarkId::new("encrypt", name), |b| {
            b.iter(|| encrypt(&docs, &opts).unwrap())
        });
        let enc = encrypt(&docs, &opts).unwrap();
        let ids = [id.clone()];
        g.bench_function(BenchmarkId::new("decrypt", name), |b| {
            b.iter(|| decrypt(&enc, &ids).unwrap())
        });
        // From and to text, as a file is read and written.
        let text = emit(&enc, Format::Yaml, &EmitOptions::sops()).unwrap();
        g.bench_function(BenchmarkId::new("decrypt-text", name), |b| {
            b.iter(|| {
                let parsed = parse(text.as_bytes(), Format::Yaml).unwrap();
                let plain = decrypt(&parsed, &ids).unwrap();
                emit(&plain, Format::Yaml, &EmitOptions::default()).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, sealed, sops);
criterion_main!(benches);
