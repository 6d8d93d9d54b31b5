//! Command-line flags of `kage-controller` and their validation into a [`Config`].

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// kage-controller: decrypts AgeSecrets into Secrets inside the cluster.
///
/// The kubeconfig comes from KUBECONFIG or the in-cluster service account. Log filtering follows
/// RUST_LOG (default `info`).
#[derive(Debug, Parser)]
#[command(
    name = "kage-controller",
    version,
    about,
    long_about = None,
    after_help = "Environment:\n  KUBECONFIG     kubeconfig to use (default: in-cluster service account, then ~/.kube/config)\n  RUST_LOG       log filter, e.g. info or kage_controller=debug (default: info)\n  POD_NAMESPACE  default for --namespace\n  POD_NAME       this replica's identity in the leader Lease and in events"
)]
pub struct Args {
    /// Namespace of the controller: key Secrets, the kage-public-keys ConfigMap and the leader
    /// Lease live here. Default: the pod's namespace (POD_NAMESPACE or the service account's),
    /// else `kage-system`.
    #[arg(long, env = "POD_NAMESPACE")]
    pub namespace: Option<String>,

    /// Address of the HTTP API (/v1/keys, /v1/verify, /v1/reencrypt, /healthz, /readyz).
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// Address of the metrics endpoint (/metrics).
    #[arg(long, default_value = "0.0.0.0:9090")]
    pub metrics_addr: SocketAddr,

    /// Only watch AgeSecrets in these namespaces (comma separated). Default: all namespaces.
    #[arg(long, value_delimiter = ',')]
    pub watch_namespaces: Vec<String>,

    /// Only reconcile AgeSecrets matching this label selector (e.g. `team=payments`).
    #[arg(long)]
    pub label_selector: Option<String>,

    /// Generate a new key when the newest active key is this old (e.g. 30d, 12h, 90m; 0 = never).
    #[arg(long, default_value = "30d", value_parser = parse_duration)]
    pub key_renew_period: Duration,

    /// Elect a leader through a Lease in --namespace; only the leader reconciles and generates
    /// keys, every replica serves HTTP.
    #[arg(long)]
    pub leader_elect: bool,

    /// Name of the leader-election Lease.
    #[arg(long, default_value = "kage-controller-leader")]
    pub leader_election_id: String,

    /// AgeSecrets reconciled in parallel.
    #[arg(long, default_value_t = 8)]
    pub concurrency: u16,

    /// Accept SOPS AgeSecrets that carry no encrypted `spec.binding` (they can then be copied to
    /// any namespace or name).
    #[arg(long)]
    pub allow_unbound_sops: bool,

    /// Requests per second allowed on /v1/verify and /v1/reencrypt together (burst: twice this).
    #[arg(long, default_value_t = 10)]
    pub api_rate_limit: u32,

    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Hidden subcommands (tooling).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands; the controller itself runs when none is given.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the AgeSecret CustomResourceDefinition (deploy/crds/agesecret.yaml).
    #[command(hide = true)]
    Crd,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Text,
}

/// Parse `30d`, `12h`, `90m`, `45s` or `0`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (expected e.g. 30d, 12h, 90m, 45s, 0)"))?;
    let secs = match unit {
        "d" => n.checked_mul(86_400),
        "h" => n.checked_mul(3_600),
        "m" => n.checked_mul(60),
        "s" => Some(n),
        _ => None,
    }
    .ok_or_else(|| format!("invalid duration {s:?} (expected e.g. 30d, 12h, 90m, 45s, 0)"))?;
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(12 * 3_600)));
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("45s"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("3w").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn flags_parse() {
        let a = Args::try_parse_from([
            "kage-controller",
            "--namespace",
            "kage-system",
            "--http-addr",
            "127.0.0.1:8080",
            "--metrics-addr",
            "127.0.0.1:9090",
            "--watch-namespaces",
            "a,b",
            "--key-renew-period",
            "0",
            "--leader-elect",
        ])
        .unwrap();
        assert_eq!(a.namespace.as_deref(), Some("kage-system"));
        assert_eq!(a.watch_namespaces, ["a", "b"]);
        assert_eq!(a.key_renew_period, Duration::ZERO);
        assert!(a.leader_elect);
        assert!(a.command.is_none());
        let crd = Args::try_parse_from(["kage-controller", "crd"]).unwrap();
        assert!(matches!(crd.command, Some(Command::Crd)));
    }
}
