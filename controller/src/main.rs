//! `kage-controller`: parse flags, wire the pieces, run until SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use kage_controller::cli::{Args, Command};
use kage_controller::decrypt::Options;
use kage_controller::http::{
    AppState, CryptoPool, Limits, RateLimiter, api_router, metrics_router,
};
use kage_controller::keystore::{KeyManager, KeyState, watch_keys};
use kage_controller::leader::{LeaderConfig, LeaderElector};
use kage_controller::metrics::Metrics;
use kage_controller::reconcile::{self, Context, WatchConfig};
use kube::runtime::events::{Recorder, Reporter};
use tokio::sync::watch;
use tracing::{error, info};

const SA_NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::Crd) = args.command {
        return match kage_controller::crd_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    kage_controller::telemetry::init(args.log_format);
    // Before any key is loaded: a core dump would write keys and values to the node's disk.
    if let Err(e) = kage_controller::hardening::disable_core_dumps() {
        error!(error = %e, "disabling core dumps");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "starting the runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = format!("{e:#}"), "kage-controller failed");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    // One explicit TLS provider for kube's rustls client.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let client = kube::Client::try_default()
        .await
        .context("loading the kubeconfig (KUBECONFIG or in-cluster)")?;
    let namespace = match args.namespace.clone() {
        Some(ns) => ns,
        None => std::fs::read_to_string(SA_NAMESPACE_FILE)
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "kage-system".to_string()),
    };
    let identity = std::env::var("POD_NAME")
        .unwrap_or_else(|_| format!("kage-controller-{}", std::process::id()));
    info!(
        version = env!("CARGO_PKG_VERSION"),
        namespace = %namespace,
        identity = %identity,
        "starting kage-controller"
    );

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let keys = Arc::new(KeyState::default());
    let metrics = Arc::new(Metrics::new());
    let options = Options {
        allow_unbound_sops: args.allow_unbound_sops,
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        keys.clone(),
        metrics.clone(),
        options,
        namespace.clone(),
        Some(identity.clone()),
    ));
    let refresh_ctx = ctx.clone();
    let state = AppState {
        keys: keys.clone(),
        metrics: metrics.clone(),
        options,
        limiter: Arc::new(RateLimiter::new(args.api_rate_limit)),
        refresh_objects: Some(Arc::new(move || refresh_ctx.refresh_object_metrics())),
        limits: Limits::default(),
        crypto: CryptoPool::for_this_machine(),
    };

    // HTTP on every replica.
    let api_listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("binding --http-addr {}", args.http_addr))?;
    let metrics_listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| format!("binding --metrics-addr {}", args.metrics_addr))?;
    info!(http = %args.http_addr, metrics = %args.metrics_addr, "serving HTTP");
    let api_server = tokio::spawn(serve(
        api_listener,
        api_router(state.clone()),
        shutdown_rx.clone(),
    ));
    let metrics_server = tokio::spawn(serve(
        metrics_listener,
        metrics_router(state),
        shutdown_rx.clone(),
    ));

    // Key Secrets watched on every replica.
    let key_recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: kage_controller::FIELD_MANAGER.into(),
            instance: Some(identity.clone()),
        },
    );
    let key_watch = tokio::spawn(watch_keys(
        client.clone(),
        namespace.clone(),
        keys.clone(),
        metrics.clone(),
        key_recorder,
    ));

    // Leadership.
    let (leader_tx, mut leader_rx) = watch::channel(!args.leader_elect);
    let mut held_leader_tx = None;
    let elector = if args.leader_elect {
        let cfg = LeaderConfig::new(&args.leader_election_id, &namespace, &identity);
        Some(tokio::spawn(
            LeaderElector::new(client.clone(), cfg).run(leader_tx, shutdown_rx.clone()),
        ))
    } else {
        // Kept alive: the single replica leads for its whole life.
        held_leader_tx = Some(leader_tx);
        None
    };

    // SIGTERM / SIGINT.
    let signals = tokio::spawn(wait_for_signal());

    let renew_period = (!args.key_renew_period.is_zero()).then_some(args.key_renew_period);
    let watch_cfg = WatchConfig {
        namespaces: args.watch_namespaces.clone(),
        label_selector: args.label_selector.clone(),
        concurrency: args.concurrency,
    };
    let leading = async {
        // Wait to lead, then lead until shutdown or loss of the Lease.
        if leader_rx.wait_for(|l| *l).await.is_err() {
            return false;
        }
        info!("leading: reconciling AgeSecrets and managing keys");
        let manager = KeyManager {
            client: client.clone(),
            namespace: namespace.clone(),
            renew_period,
            state: keys.clone(),
        };
        let km = tokio::spawn(manager.run(shutdown_rx.clone()));
        let ctl = reconcile::run(ctx.clone(), watch_cfg, shutdown_rx.clone());
        let mut leader_rx2 = leader_rx.clone();
        let lost = async move {
            if args.leader_elect {
                let _ = leader_rx2.wait_for(|l| !*l).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let lost = tokio::select! {
            _ = ctl => false,
            _ = lost => true,
        };
        km.abort();
        lost
    };
    tokio::pin!(leading);
    let lost_leadership = tokio::select! {
        _ = signals => {
            info!("shutdown signal received");
            let _ = shutdown_tx.send(true);
            // Let in-flight reconciles finish.
            tokio::time::timeout(Duration::from_secs(20), &mut leading).await.unwrap_or(false)
        }
        lost = &mut leading => lost,
    };

    // Graceful shutdown: stop reconciling, release the Lease, drain HTTP.
    let _ = shutdown_tx.send(true);
    if let Some(e) = elector {
        let _ = tokio::time::timeout(Duration::from_secs(5), e).await;
    }
    key_watch.abort();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let _ = api_server.await;
        let _ = metrics_server.await;
    })
    .await;
    drop(held_leader_tx);
    if lost_leadership {
        anyhow::bail!("lost leadership; exiting so the replica restarts as a follower");
    }
    info!("stopped");
    Ok(())
}

async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    mut shutdown: watch::Receiver<bool>,
) {
    kage_controller::serve::serve(
        listener,
        router,
        kage_controller::serve::HEADER_TIMEOUT,
        async move {
            let _ = shutdown.wait_for(|s| *s).await;
        },
    )
    .await;
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
