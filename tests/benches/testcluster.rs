//! Load benchmark of the `kage-testcluster` binary: create N Secrets through kube-rs,
//! list them in pages, check a watcher saw every event, and report the server's RSS.
//!
//! `cargo bench -p kage-testcluster --bench testcluster` (or `tests/bench/testcluster.sh`).
//! `KAGE_BENCH_SECRETS` sets N (default 10000). Without `--bench` (as under `cargo test
//! --all-targets`) it does nothing.

use anyhow::{Context as _, Result, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading /proc")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .context("VmRSS in /proc/PID/status")
}

fn main() -> Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    let n: usize = std::env::var("KAGE_BENCH_SECRETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kage-testcluster"))
        .args(["--listen", "127.0.0.1:0", "--kubeconfig"])
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("spawning kage-testcluster")?;
    let pid = child.id();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run(n, &kubeconfig, pid));
    let _ = child.kill();
    let _ = child.wait();
    result
}

async fn run(n: usize, kubeconfig: &std::path::Path, pid: u32) -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    let client = kube::Client::try_from(config)?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let rss_start = rss_kib(pid)?;

    let start_rv = secrets
        .list(&ListParams::default().limit(1))
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let seen = Arc::new(AtomicUsize::new(0));
    let seen_w = seen.clone();
    let watch_api = secrets.clone();
    let watcher = tokio::spawn(async move {
        let mut rv = start_rv;
        while seen_w.load(Ordering::SeqCst) < n {
            let wp = WatchParams::default().timeout(290);
            let mut stream = watch_api.watch(&wp, &rv).await?.boxed();
            while let Some(ev) = stream.try_next().await? {
                match ev {
                    WatchEvent::Added(s) => {
                        rv = s.metadata.resource_version.unwrap_or_default();
                        seen_w.fetch_add(1, Ordering::SeqCst);
                    }
                    WatchEvent::Bookmark(b) => rv = b.metadata.resource_version,
                    WatchEvent::Error(e) => bail!("watch error: {e:?}"),
                    _ => {}
                }
                if seen_w.load(Ordering::SeqCst) >= n {
                    break;
                }
            }
        }
        anyhow::Ok(())
    });

    let t = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let secrets = secrets.clone();
            async move {
                let s: Secret = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": format!("bench-{i:05}"), "labels": {"bench": "yes"}},
                    "stringData": {"password": format!("value-{i}"), "user": "bench"}
                }))?;
                secrets.create(&PostParams::default(), &s).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await?;
    let create = t.elapsed();

    let t = Instant::now();
    let mut lp = ListParams::default().limit(500).labels("bench=yes");
    let (mut pages, mut items) = (0, 0);
    loop {
        let page = secrets.list(&lp).await?;
        pages += 1;
        items += page.items.len();
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    let list = t.elapsed();
    if items != n {
        bail!("listed {items} of {n}");
    }

    let t = Instant::now();
    tokio::time::timeout(Duration::from_secs(120), watcher)
        .await
        .context("watcher did not see every event in time")???;
    let watch_tail = t.elapsed();
    let rss_end = rss_kib(pid)?;

    println!("secrets created:        {n} (32 concurrent requests)");
    println!(
        "create:                 {:.2?} ({:.0} creates/s)",
        create,
        n as f64 / create.as_secs_f64()
    );
    println!("list:                   {pages} pages of 500 in {list:.2?}");
    println!(
        "watch:                  saw {} ADDED events; last arrived {watch_tail:.2?} after the creates finished",
        seen.load(Ordering::SeqCst)
    );
    println!(
        "server RSS:             {} MiB at start, {} MiB after",
        rss_start / 1024,
        rss_end / 1024
    );
    Ok(())
}
