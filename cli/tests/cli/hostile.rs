//! The hostile-input catalogue: every row is fed to `seal`, `seal --sops`, `unseal`, `validate`,
//! `set` and `edit` (with a non-interactive `EDITOR`), each run under a 512 MiB address-space
//! limit, and must end with the exact exit code and message fragment of the row: no panic, no
//! partial output, bounded memory. A run still going after [`GUARD`] is killed and fails the row
//! (a hang guard, not a timing assertion).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Dir, kage_bin, secret_yaml};

/// Address-space limit of every run (KiB for `ulimit -v`): an alias bomb reached 3.4 GB.
const ADDRESS_SPACE_KIB: u64 = 512 * 1024;
/// A run that has not ended after this long is killed and reported as a hang.
const GUARD: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum C {
    Seal,
    SealSops,
    Unseal,
    Validate,
    Set,
    Edit,
}

const ALL: [C; 6] = [
    C::Seal,
    C::SealSops,
    C::Unseal,
    C::Validate,
    C::Set,
    C::Edit,
];

/// The commands that read a file kage wrote (sealed or SOPS); on a plaintext input they stop at
/// "not sealed" once the input parsed.
const READERS: [C; 4] = [C::Unseal, C::Validate, C::Set, C::Edit];

struct Row {
    name: &'static str,
    input: Vec<u8>,
    /// Expected (exit code, message fragment) per command.
    expect: Vec<(C, i32, String)>,
}

fn row(name: &'static str, input: impl Into<Vec<u8>>) -> Row {
    Row {
        name,
        input: input.into(),
        expect: Vec::new(),
    }
}

impl Row {
    /// The same outcome for `cmds`, replacing what was set for them before.
    fn on(mut self, cmds: &[C], code: i32, fragment: &str) -> Row {
        self.expect.retain(|(c, ..)| !cmds.contains(c));
        self.expect
            .extend(cmds.iter().map(|&c| (c, code, fragment.to_string())));
        self
    }

    fn all(self, code: i32, fragment: &str) -> Row {
        self.on(&ALL, code, fragment)
    }
}

/// A plaintext Secret `db` in `prod` with these extra lines appended under `stringData`.
fn secret_with(string_data: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\nstringData:\n{string_data}"
    )
}

/// The billion-laughs shape: 10 levels of 9 aliases each (9^10 strings if expanded).
fn alias_bomb(head: &str) -> String {
    let mut s = format!("{head}a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let p = i - 1;
        s.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    s
}

/// Deterministic non-text bytes.
fn garbage(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

const NOT_SEALED: &str = "is a plaintext Secret";

fn rows() -> Vec<Row> {
    let plain_ok = secret_yaml("db", "prod");
    vec![
        // --- alias bombs and limits
        row("alias bomb with a sops key", alias_bomb("sops: {}\n"))
            .all(1, "YAML input exceeds the node count limit"),
        row("alias bomb without a sops key", alias_bomb("kind: Secret\n"))
            .all(1, "YAML input exceeds the"),
        row(
            "10,001 cheap aliases",
            format!("a: &a x\nb: [{}]\n", vec!["*a"; 10_001].join(", ")),
        )
        .all(1, "YAML input exceeds the alias limit (10000 alias uses)"),
        row(
            "flow nesting 100 deep",
            secret_with(&format!("  x: {}1{}\n", "[".repeat(100), "]".repeat(100))),
        )
        .all(1, "YAML input exceeds the nesting depth limit (64 levels)")
        .on(&[C::Edit], 1, "malformed YAML, or a field of the wrong type, at line 7, column 6")
        .on(&[C::Seal], 1, "malformed YAML, or a field of the wrong type, at line 7, column 6")
        .on(&[C::Set], 1, "malformed YAML, or a field of the wrong type, at line 7, column 6")
        .on(&[C::Unseal], 1, "malformed YAML, or a field of the wrong type, at line 7, column 6")
        .on(&[C::Validate], 1, "malformed YAML, or a field of the wrong type, at line 7, column 6"),
        row("block nesting 100 deep", {
            let mut s = String::from("kind: Secret\nstringData:\n");
            for i in 0..100 {
                s.push_str(&format!("{}k{i}:\n", " ".repeat(2 + 2 * i)));
            }
            s
        })
        .all(1, "YAML input exceeds the nesting depth limit (64 levels)")
        .on(&[C::Edit], 1, "malformed YAML, or a field of the wrong type, at line 4, column 5")
        .on(&[C::Seal], 1, "malformed YAML, or a field of the wrong type, at line 4, column 5")
        .on(&[C::Set], 1, "malformed YAML, or a field of the wrong type, at line 4, column 5")
        .on(&[C::Unseal], 1, "malformed YAML, or a field of the wrong type, at line 4, column 5")
        .on(&[C::Validate], 1, "malformed YAML, or a field of the wrong type, at line 4, column 5"),
        row(
            "JSON nesting 100 deep",
            format!(
                "{{\"kind\":\"Secret\",\"stringData\":{{\"x\":{}1{}}}}}",
                "[".repeat(100),
                "]".repeat(100)
            ),
        )
        .all(1, "JSON input exceeds the nesting depth limit (64 levels)"),
        row("1,025 YAML documents", plain_ok.replace("apiVersion", "---\napiVersion").repeat(1025))
            .all(1, "YAML input exceeds the document count limit (1024 documents)"),
        row("1,025 JSON documents", "{\"kind\":\"Secret\"}\n".repeat(1025))
            .all(1, "JSON input exceeds the document count limit (1024 documents)"),
        row("9 MiB file", secret_with(&format!("  big: {}\n", "x".repeat(9 << 20))))
            .all(1, "YAML input exceeds the input size limit (8 MiB)"),
        row("9 MiB JSON file", {
            format!(
                "{{\"kind\":\"Secret\",\"stringData\":{{\"big\":\"{}\"}}}}",
                "x".repeat(9 << 20)
            )
        })
        .all(1, "JSON input exceeds the input size limit (8 MiB)"),
        row("JSON object of 600,000 keys", {
            let mut s = String::from("{\"kind\":\"Secret\",\"stringData\":{");
            for i in 0..600_000 {
                s.push_str(&format!("\"k{i}\":\"\","));
            }
            s.push_str("\"z\":\"\"}}");
            s
        })
        .all(1, "JSON input exceeds the node count limit (500000 keys and values)"),
        row("YAML mapping of 300,000 keys", {
            let mut s = String::from("kind: Secret\nstringData:\n");
            for i in 0..300_000 {
                s.push_str(&format!("  k{i}: v\n"));
            }
            s
        })
        .all(1, "YAML input exceeds the node count limit (500000 keys and values)"),
        row(
            "a 2 MiB value",
            secret_with(&format!("  big: {}\n", "x".repeat(2 << 20))),
        )
        .all(1, "at most 1 MiB")
        .on(&READERS, 1, NOT_SEALED)
        .on(&[C::SealSops], 2, "the Secret's data is 2097152 bytes; the API server's limit is 1048576 ")
        .on(&[C::Seal], 2, "the Secret's data is 2097152 bytes; the API server's limit is 1048576 ")
        .on(&[C::Unseal], 1, "a plaintext Secret, not encrypted")
        .on(&[C::Validate], 1, "a plaintext Secret: its values are in clear (seal it with `kage seal`)"),
        // --- encodings
        row("invalid UTF-8", {
            let mut b = secret_with("  password: ").into_bytes();
            b.extend_from_slice(b"\xff\xfe\xfd\n");
            b
        })
        .all(1, "not UTF-8 text (line 7)")
        .on(&[C::SealSops], 1, "invalid YAML at line 7: input is not valid UTF-8"),
        row("UTF-16 with a BOM", {
            let mut b = vec![0xff, 0xfe];
            for u in plain_ok.encode_utf16() {
                b.extend_from_slice(&u.to_le_bytes());
            }
            b
        })
        .all(1, "not UTF-8 text")
        .on(&[C::SealSops], 1, "invalid YAML at line 1: input is not valid UTF-8"),
        row("UTF-8 BOM before a valid Secret", format!("\u{feff}{plain_ok}"))
            .on(&[C::Seal, C::SealSops], 0, "")
            .on(&READERS, 1, NOT_SEALED)
        .on(&[C::Unseal], 1, "a plaintext Secret, not encrypted")
        .on(&[C::Validate], 1, "a plaintext Secret: its values are in clear (seal it with `kage seal`)"),
        row("a NUL byte in a value", secret_with("  password: a\0b\n"))
            .all(1, "malformed YAML")
        .on(&[C::SealSops], 1, "invalid YAML at line 7: unexpected character: `\\u{0}'"),
        row("binary garbage", garbage(4096)).all(1, "not UTF-8 text")
        .on(&[C::SealSops], 1, "invalid YAML at line 1: input is not valid UTF-8"),
        row("an empty file", "").all(1, "no document")
        .on(&[C::Edit], 1, "holds 0 documents; this command changes files with one AgeSecret")
        .on(&[C::Set], 1, "holds 0 documents; this command changes files with one AgeSecret"),
        row("comments only", "# nothing here\n").all(1, "no document")
        .on(&[C::Edit], 1, "holds 0 documents; this command changes files with one AgeSecret")
        .on(&[C::Set], 1, "holds 0 documents; this command changes files with one AgeSecret"),
        row("document markers only", "---\n---\n...\n").all(1, "no document")
        .on(&[C::Edit], 1, "holds 0 documents; this command changes files with one AgeSecret")
        .on(&[C::SealSops], 1, "document 1: the top level must be a mapping")
        .on(&[C::Set], 1, "holds 0 documents; this command changes files with one AgeSecret"),
        row("CRLF line endings", plain_ok.replace('\n', "\r\n"))
            .on(&[C::Seal, C::SealSops], 0, "")
            .on(&READERS, 1, NOT_SEALED)
        .on(&[C::Unseal], 1, "a plaintext Secret, not encrypted")
        .on(&[C::Validate], 1, "a plaintext Secret: its values are in clear (seal it with `kage seal`)"),
        row("tab indentation", secret_with("\tpassword: x\n")).all(1, "malformed YAML")
        .on(&[C::SealSops], 1, "invalid YAML at line 7: tabs disallowed within this context (block ind"),
        row("an unterminated quote", secret_with("  password: \"abc\n"))
            .all(1, "malformed YAML")
        .on(&[C::SealSops], 1, "invalid YAML at line 7: unclosed quote"),
        row("an alias to no anchor", secret_with("  password: *nope\n"))
            .all(1, "malformed YAML")
        .on(&[C::SealSops], 1, "invalid YAML at line 7: while parsing node, found unknown anchor"),
        // --- duplicate keys
        row(
            "duplicate stringData key",
            secret_with("  password: a\n  password: b\n"),
        )
        .all(1, "duplicate")
        .on(&[C::Edit], 1, "malformed YAML, or a field of the wrong type, at line 8, column 3")
        .on(&[C::Seal], 1, "malformed YAML, or a field of the wrong type, at line 8, column 3")
        .on(&[C::Set], 1, "malformed YAML, or a field of the wrong type, at line 8, column 3")
        .on(&[C::Unseal], 1, "malformed YAML, or a field of the wrong type, at line 8, column 3")
        .on(&[C::Validate], 1, "malformed YAML, or a field of the wrong type, at line 8, column 3"),
        row(
            "duplicate top-level key",
            format!("{plain_ok}kind: Secret\n"),
        )
        .all(1, "duplicate")
        .on(&[C::Edit], 1, "malformed YAML, or a field of the wrong type, at line 10, column 1")
        .on(&[C::Seal], 1, "malformed YAML, or a field of the wrong type, at line 10, column 1")
        .on(&[C::Set], 1, "malformed YAML, or a field of the wrong type, at line 10, column 1")
        .on(&[C::Unseal], 1, "malformed YAML, or a field of the wrong type, at line 10, column 1")
        .on(&[C::Validate], 1, "malformed YAML, or a field of the wrong type, at line 10, column 1"),
        // --- Kubernetes-invalid names and keys
        row("an uppercase name", plain_ok.replace("name: db", "name: DB"))
            .all(2, "metadata.name \"DB\" is not a valid name")
            .on(&READERS, 1, NOT_SEALED)
        .on(&[C::Unseal], 1, "a plaintext Secret, not encrypted")
        .on(&[C::Validate], 1, "a plaintext Secret: its values are in clear (seal it with `kage seal`)"),
        row(
            "a 254-character name",
            plain_ok.replace("name: db", &format!("name: {}", "a".repeat(254))),
        )
        .all(2, "is not a valid name")
        .on(&READERS, 1, NOT_SEALED)
        .on(&[C::Unseal], 1, "a plaintext Secret, not encrypted")
        .on(&[C::Validate], 1, "a plaintext Secret: its values are in clear (seal it with `kage seal`)"),
        row(
            "an invalid namespace",
            plain_ok.replace("namespace: prod", "namespace: Prod_1"),
        )
        .all(2, "metadata.namespace \"Prod_1\"")
        .on(&READERS, 1, NOT_SEALED)
        .on(&[C::Unseal], 1, "a plaintext Secret, not encrypted")
        .on(&[C::Validate], 1, "a plaintext Secret: its values are in clear (seal it with `kage seal`)"),
        row("a key with a space", secret_with("  \"bad key\": x\n"))
            .all(2, "\"bad key\" is not a valid Secret key")
            .on(&READERS, 1, NOT_SEALED)
        .on(&[C::Unseal], 1, "a plaintext Secret, not encrypted")
        .on(&[C::Validate], 1, "a plaintext Secret: its values are in clear (seal it with `kage seal`)"),
        row("the key `..`", secret_with("  \"..\": x\n"))
            .all(2, "is not a valid Secret key")
            .on(&READERS, 1, NOT_SEALED)
        .on(&[C::Unseal], 1, "a plaintext Secret, not encrypted")
        .on(&[C::Validate], 1, "a plaintext Secret: its values are in clear (seal it with `kage seal`)"),
        row("an empty key", secret_with("  \"\": x\n"))
            .all(2, "is not a valid Secret key")
            .on(&READERS, 1, NOT_SEALED)
        .on(&[C::Unseal], 1, "a plaintext Secret, not encrypted")
        .on(&[C::Validate], 1, "a plaintext Secret: its values are in clear (seal it with `kage seal`)"),
        row(
            "a 254-character key",
            secret_with(&format!("  {}: x\n", "k".repeat(254))),
        )
        .all(2, "is not a valid Secret key")
        .on(&READERS, 1, NOT_SEALED)
        .on(&[C::Unseal], 1, "a plaintext Secret, not encrypted")
        .on(&[C::Validate], 1, "a plaintext Secret: its values are in clear (seal it with `kage seal`)"),
        // --- wrong kinds and apiVersions
        row(
            "a ConfigMap",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: b\n",
        )
        .all(1, "ConfigMap")
        .on(&[C::Edit], 1, "is neither an AgeSecret nor a SOPS file")
        .on(&[C::SealSops], 0, "")
        .on(&[C::Set], 1, "is neither an AgeSecret nor a SOPS file")
        .on(&[C::Unseal], 1, "neither an AgeSecret nor a SOPS file")
        .on(&[C::Validate], 1, "neither an AgeSecret nor a SOPS file"),
        row("apiVersion v2 Secret", plain_ok.replace("apiVersion: v1", "apiVersion: v2"))
            .all(1, "apiVersion")
        .on(&[C::Edit], 1, "is a plaintext Secret")
        .on(&[C::Set], 1, "is a plaintext Secret")
        .on(&[C::Unseal], 1, "a plaintext Secret, not encrypted")
        .on(&[C::Validate], 1, "a plaintext Secret: its values are in clear (seal it with `kage seal`)"),
        row("no kind", plain_ok.replace("kind: Secret\n", "")).all(1, "kind")
        .on(&[C::Edit], 1, "is neither an AgeSecret nor a SOPS file")
        .on(&[C::SealSops], 0, "")
        .on(&[C::Set], 1, "is neither an AgeSecret nor a SOPS file")
        .on(&[C::Unseal], 1, "neither an AgeSecret nor a SOPS file")
        .on(&[C::Validate], 1, "neither an AgeSecret nor a SOPS file"),
        row(
            "an AgeSecret of another version",
            "apiVersion: kage.dev/v9\nkind: AgeSecret\nmetadata:\n  name: db\nspec:\n  encryptedData: {}\n",
        )
        .all(1, "kage.dev/v9")
        .on(&[C::SealSops], 0, "")
        .on(&[C::Seal], 6, "already sealed: this is an AgeSecret"),
        row(
            "a List holding a ConfigMap",
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: c\n",
        )
        .all(1, "ConfigMap")
        .on(&[C::Edit], 1, "is neither an AgeSecret nor a SOPS file")
        .on(&[C::SealSops], 0, "")
        .on(&[C::Set], 1, "is neither an AgeSecret nor a SOPS file")
        .on(&[C::Unseal], 1, "neither an AgeSecret nor a SOPS file")
        .on(&[C::Validate], 1, "neither an AgeSecret nor a SOPS file"),
        row("a top-level sequence", "- a\n- b\n").all(1, "malformed YAML")
        .on(&[C::SealSops], 1, ": the top level must be a mapping"),
        row("a top-level scalar", "hello\n").all(1, "malformed YAML")
        .on(&[C::SealSops], 1, ": the top level must be a mapping"),
        row("metadata as a string", "apiVersion: v1\nkind: Secret\nmetadata: db\n")
            .all(1, "malformed YAML"),
        // --- mixed streams
        row(
            "a valid Secret then a bad name",
            format!("{plain_ok}---\n{}", plain_ok.replace("name: db", "name: DB")),
        )
        .all(2, "document 2")
        .on(&READERS, 1, NOT_SEALED)
        .on(&[C::Edit], 1, "holds 2 documents; this command changes files with one AgeSecret")
        .on(&[C::Set], 1, "holds 2 documents; this command changes files with one AgeSecret")
        .on(&[C::Unseal], 1, "document 1: a plaintext Secret, not encrypted")
        .on(&[C::Validate], 1, "document 1: a plaintext Secret: its values are in clear (seal it with "),
        row(
            "a valid Secret then malformed YAML",
            format!("{plain_ok}---\nstringData: [\n"),
        )
        .all(1, "malformed YAML")
        .on(&[C::SealSops], 1, "invalid YAML at line 11: unclosed bracket '['"),
        row(
            "a valid Secret then a ConfigMap",
            format!("{plain_ok}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n"),
        )
        .all(1, "ConfigMap")
        .on(&[C::Edit], 1, "holds 2 documents; this command changes files with one AgeSecret")
        .on(&[C::SealSops], 0, "")
        .on(&[C::Set], 1, "holds 2 documents; this command changes files with one AgeSecret")
        .on(&[C::Unseal], 1, "document 1: a plaintext Secret, not encrypted")
        .on(&[C::Validate], 1, "document 1: a plaintext Secret: its values are in clear (seal it with "),
        // --- stringData and data of the wrong type
        row("stringData value is a mapping", secret_with("  password: {a: b}\n"))
            .all(1, "malformed YAML"),
        row("stringData value is a sequence", secret_with("  password: [a, b]\n"))
            .all(1, "malformed YAML"),
        row("stringData is a sequence", secret_with("  - a\n")).all(1, "malformed YAML"),
        row(
            "data not base64",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ndata:\n  password: '***'\n",
        )
        .all(1, "base64")
        .on(&READERS, 1, NOT_SEALED)
        .on(&[C::Unseal], 1, "a plaintext Secret, not encrypted")
        .on(&[C::Validate], 1, "a plaintext Secret: its values are in clear (seal it with `kage seal`)"),
        row(
            "an invalid !!binary value",
            secret_with("  password: !!binary '***'\n"),
        )
        .all(1, "malformed YAML")
        .on(&[C::SealSops], 1, "invalid YAML at line 7: !!binary value is not base64"),
        row("sops metadata that is a number", format!("{plain_ok}sops: 5\n"))
            .all(1, "sops")
        .on(&[C::Edit], 1, "is neither an AgeSecret nor a SOPS file")
        .on(&[C::SealSops], 6, "already encrypted: the document has a `sops` block")
        .on(&[C::Seal], 6, "already encrypted: the document has a `sops` block")
        .on(&[C::Set], 1, "is neither an AgeSecret nor a SOPS file")
        .on(&[C::Unseal], 1, "neither an AgeSecret nor a SOPS file")
        .on(&[C::Validate], 1, "neither an AgeSecret nor a SOPS file"),
    ]
}

/// `kage` with `args` in `dir` under the address-space limit, killed after [`GUARD`].
fn run(dir: &Dir, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(format!(
            "ulimit -v {ADDRESS_SPACE_KIB} && exec \"$0\" \"$@\""
        ))
        .arg(kage_bin())
        .args(args)
        .current_dir(dir.tmp.path())
        .env("EDITOR", "true")
        .env_remove("VISUAL")
        .env_remove("KAGE_IDENTITY")
        .env_remove("KAGE_CONFIG")
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > GUARD {
            let _ = child.kill();
            let _ = child.wait();
            return (-2, String::new(), "killed by the hang guard".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = String::from_utf8_lossy(&out.join().unwrap()).into_owned();
    let err = String::from_utf8_lossy(&err.join().unwrap()).into_owned();
    (status.code().unwrap_or(-1), out, err)
}

fn args(cmd: C, recipient: &str) -> Vec<String> {
    let v: &[&str] = match cmd {
        C::Seal => &["seal", "in.yaml", "-r", recipient],
        C::SealSops => &["seal", "--sops", "in.yaml", "-r", recipient],
        C::Unseal => &["unseal", "in.yaml", "-i", "key.txt"],
        C::Validate => &["validate", "in.yaml", "-i", "key.txt"],
        C::Set => &["set", "in.yaml", "k", "v", "-r", recipient, "-i", "key.txt"],
        C::Edit => &["edit", "in.yaml", "-i", "key.txt", "-r", recipient],
    };
    v.iter().map(|s| s.to_string()).collect()
}

/// Runs every row through `cmd`; returns the mismatches.
fn catalogue(cmd: C) {
    let dir = Dir::new();
    let recipient = dir.keygen("key.txt");
    let rows = rows();
    assert!(rows.len() >= 40, "{} rows", rows.len());
    let mut bad = Vec::new();
    for r in &rows {
        let Some((_, code, fragment)) = r.expect.iter().find(|(c, ..)| *c == cmd) else {
            bad.push(format!("{}: no expectation for {cmd:?}", r.name));
            continue;
        };
        dir.write("in.yaml", &r.input);
        let a = args(cmd, &recipient);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let (got, out, err) = run(&dir, &a);
        // `validate` reports on stdout; every other failure is one `error:` line (and a hint)
        // on stderr with nothing on stdout.
        let text = if cmd == C::Validate {
            format!("{out}{err}")
        } else {
            err.clone()
        };
        let mut why = Vec::new();
        if got != *code {
            why.push(format!("exit {got}, expected {code}"));
        }
        if !text.contains(fragment.as_str()) {
            why.push(format!("no {fragment:?}"));
        }
        if err.contains("panicked") || err.contains("memory allocation") {
            why.push("panicked or ran out of memory".into());
        }
        if got != 0 && cmd != C::Validate {
            let lines: Vec<&str> = err.lines().collect();
            let shaped = (1..=2).contains(&lines.len())
                && lines[0].starts_with("error: in.yaml")
                && lines.get(1).is_none_or(|l| l.starts_with("hint: "));
            if !shaped {
                why.push("not one `error: in.yaml…` line naming the file".into());
            }
            if !out.is_empty() {
                why.push("partial output on stdout".into());
            }
        }
        if !why.is_empty() {
            let shown: String = text.chars().take(300).collect();
            bad.push(format!(
                "{} [{cmd:?}]: {} — got: {shown}",
                r.name,
                why.join("; ")
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} rows failed:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn hostile_inputs_seal() {
    catalogue(C::Seal);
}

#[test]
fn hostile_inputs_seal_sops() {
    catalogue(C::SealSops);
}

#[test]
fn hostile_inputs_unseal() {
    catalogue(C::Unseal);
}

#[test]
fn hostile_inputs_validate() {
    catalogue(C::Validate);
}

#[test]
fn hostile_inputs_set() {
    catalogue(C::Set);
}

#[test]
fn hostile_inputs_edit() {
    catalogue(C::Edit);
}

/// Finding 4 of the attack run: the 360-byte bomb with a `sops:` key (and `seal --sops` on one
/// without) through every command that reads it, including `reencrypt` and `keys usage`.
#[test]
fn alias_bomb_through_every_command() {
    let dir = Dir::new();
    let r = dir.keygen("key.txt");
    let with_sops = alias_bomb("sops: {}\n");
    let cases: [(&[&str], &str); 8] = [
        (&["validate", "bomb.yaml", "-i", "key.txt"], &with_sops),
        (&["unseal", "bomb.yaml", "-i", "key.txt"], &with_sops),
        (&["set", "bomb.yaml", "k", "v", "-i", "key.txt"], &with_sops),
        (
            &["reencrypt", "bomb.yaml", "-i", "key.txt", "-r", &r],
            &with_sops,
        ),
        (&["keys", "usage", "bomb.yaml"], &with_sops),
        (&["edit", "bomb.yaml", "-i", "key.txt"], &with_sops),
        (&["seal", "--sops", "bomb.yaml", "-r", &r], &with_sops),
        (&["seal", "--sops", "bomb.yaml", "-r", &r], &alias_bomb("")),
    ];
    let mut bad = Vec::new();
    for (args, input) in cases {
        dir.write("bomb.yaml", input);
        let (code, out, err) = run(&dir, args);
        let text = format!("{out}{err}");
        if code != 1
            || !text.contains("bomb.yaml")
            || !text.contains("YAML input exceeds the node count limit")
        {
            bad.push(format!("{args:?}: exit {code}: {text}"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
