//! `kage-testcluster --listen 127.0.0.1:0 --kubeconfig PATH [--http]`: serve the in-memory
//! API server, print its URL on stdout once ready, write the kubeconfig, stop on
//! SIGTERM/SIGINT.

use anyhow::{Context as _, Result};
use clap::Parser;
use kage_testcluster::{Options, TestCluster};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// An in-memory Kubernetes API server for tests (a test double, not a real cluster).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to write the kubeconfig (admin user, current context).
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Serve plain HTTP instead of HTTPS.
    #[arg(long)]
    http: bool,
    /// Events kept for watches; older resourceVersions get 410 Gone.
    #[arg(long, default_value_t = 20_000)]
    history: usize,
    /// Seconds between watch BOOKMARK events.
    #[arg(long, default_value_t = 2)]
    bookmark_seconds: u64,
    /// Log every request (`METHOD URI -> STATUS`) on stderr; `KAGE_TESTCLUSTER_LOG=1`
    /// does the same.
    #[arg(long)]
    log_requests: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kage-testcluster: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let cluster = TestCluster::start_with(Options {
            listen: args.listen,
            http: args.http,
            kubeconfig: Some(args.kubeconfig.clone()),
            history_limit: args.history,
            bookmark_interval: Duration::from_secs(args.bookmark_seconds.max(1)),
            log_requests: args.log_requests
                || std::env::var_os("KAGE_TESTCLUSTER_LOG").is_some_and(|v| v == "1"),
        })
        .await?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", cluster.url()).context("writing the URL")?;
        out.flush().context("flushing stdout")?;
        drop(out);
        eprintln!(
            "kage-testcluster: serving {} (kubeconfig {})",
            cluster.url(),
            args.kubeconfig.display()
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("kage-testcluster: stopping");
        drop(cluster);
        Ok(())
    })
}
