//! Prometheus metrics (prometheus-client), all with fixed, low-cardinality label sets.
//!
//! | metric | labels |
//! |---|---|
//! | `kage_reconciles_total` | `result` = `ready` \| `not_ready` \| `error` |
//! | `kage_reconcile_errors_total` | `reason` = a [`Reason`] or [`crate::Error::metric_label`] |
//! | `kage_reconcile_duration_seconds` | histogram |
//! | `kage_agesecrets` | `ready` = `True` \| `False` \| `Unknown` |
//! | `kage_agesecrets_by_kid` | `kid` |
//! | `kage_keys` | `status` = `active` \| `retired` |
//! | `kage_newest_key_age_seconds` | |
//! | `kage_build_info` | `version` |

use std::sync::atomic::AtomicU64;
use std::time::Instant;

use jiff::Timestamp;
use kage_core::api::v1alpha1::{AgeSecret, CONDITION_READY};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::keys::{KeySet, KeyStatus};
use crate::plan::Reason;

/// Label set `result`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ready`, `not_ready` or `error`.
    pub result: &'static str,
}

/// Label set `reason`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// A fixed reason.
    pub reason: &'static str,
}

/// Label set `ready`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReadyLabel {
    /// `True`, `False` or `Unknown`.
    pub ready: &'static str,
}

/// Label set `status`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    /// `active` or `retired`.
    pub status: &'static str,
}

/// Label set `kid`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KidLabel {
    /// A key id (16 hex digits; bounded by the number of keys).
    pub kid: String,
}

/// Label set `version`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabel {
    /// The crate version.
    pub version: &'static str,
}

/// The controller's metrics and their registry.
pub struct Metrics {
    registry: Registry,
    /// Reconciles by result.
    pub reconciles: Family<ResultLabel, Counter>,
    /// Failures by reason.
    pub errors: Family<ReasonLabel, Counter>,
    /// Reconcile duration.
    pub duration: Histogram,
    /// Values decrypted by reconciles.
    pub values_decrypted: Counter,
    /// Time spent planning reconciles (decrypting the values and comparing them with the Secret).
    pub decrypt_seconds: Counter<f64, AtomicU64>,
    agesecrets: Family<ReadyLabel, Gauge>,
    by_kid: Family<KidLabel, Gauge>,
    keys: Family<StatusLabel, Gauge>,
    newest_key_age: Gauge<f64, AtomicU64>,
    untrusted_key_secrets: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry with every family registered (and the fixed label values pre-created at
    /// zero, so dashboards see them before the first event).
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("kage");
        let reconciles = Family::<ResultLabel, Counter>::default();
        let errors = Family::<ReasonLabel, Counter>::default();
        let duration = Histogram::new([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0]);
        let values_decrypted = Counter::default();
        let decrypt_seconds = Counter::<f64, AtomicU64>::default();
        let agesecrets = Family::<ReadyLabel, Gauge>::default();
        let by_kid = Family::<KidLabel, Gauge>::default();
        let keys = Family::<StatusLabel, Gauge>::default();
        let newest_key_age = Gauge::<f64, AtomicU64>::default();
        let untrusted_key_secrets = Gauge::default();
        let build_info = prometheus_client::metrics::info::Info::new(VersionLabel {
            version: env!("CARGO_PKG_VERSION"),
        });
        for result in ["ready", "not_ready", "error"] {
            let _ = reconciles.get_or_create(&ResultLabel { result });
        }
        for reason in Reason::FAILURES
            .iter()
            .map(|r| r.metric_label())
            .chain(crate::Error::METRIC_LABELS.iter().copied())
        {
            let _ = errors.get_or_create(&ReasonLabel { reason });
        }
        registry.register(
            "reconciles",
            "Reconciles of AgeSecrets by result",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciles by reason (a fixed set)",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile",
            duration.clone(),
        );
        registry.register(
            "values_decrypted",
            "Values decrypted by reconciles",
            values_decrypted.clone(),
        );
        registry.register(
            "decrypt_seconds",
            "Time reconciles spent decrypting values and comparing them with the Secret",
            decrypt_seconds.clone(),
        );
        registry.register(
            "agesecrets",
            "AgeSecrets by Ready condition (reported by the leader)",
            agesecrets.clone(),
        );
        registry.register(
            "agesecrets_by_kid",
            "AgeSecrets whose values name each key id (reported by the leader)",
            by_kid.clone(),
        );
        registry.register("keys", "Keys in the key ring by status", keys.clone());
        registry.register(
            "newest_key_age_seconds",
            "Age of the current (newest active) key",
            newest_key_age.clone(),
        );
        registry.register(
            "key_secrets_untrusted",
            "Secrets labelled as keys that the key ring refused (not authenticated, or written from an AgeSecret)",
            untrusted_key_secrets.clone(),
        );
        registry.register("build", "Build information", build_info);
        Metrics {
            registry,
            reconciles,
            errors,
            duration,
            values_decrypted,
            decrypt_seconds,
            agesecrets,
            by_kid,
            keys,
            newest_key_age,
            untrusted_key_secrets,
        }
    }

    /// How many labelled Secrets the key ring refuses right now.
    pub fn set_untrusted_key_secrets(&self, n: usize) {
        self.untrusted_key_secrets.set(n as i64);
    }

    /// Start timing a reconcile; the duration is recorded when the guard drops.
    pub fn timer(&self) -> DurationGuard<'_> {
        DurationGuard {
            histogram: &self.duration,
            start: Instant::now(),
        }
    }

    /// Account the planning step of one reconcile (decryption dominates it).
    pub fn observe_plan(&self, elapsed: std::time::Duration, values: usize) {
        self.decrypt_seconds.inc_by(elapsed.as_secs_f64());
        self.values_decrypted.inc_by(values as u64);
    }

    /// Count a reconcile that ended with a status reason.
    pub fn observe_reason(&self, reason: Reason) {
        let result = if reason == Reason::Decrypted {
            "ready"
        } else {
            "not_ready"
        };
        self.reconciles.get_or_create(&ResultLabel { result }).inc();
        if Reason::FAILURES.contains(&reason) {
            self.errors
                .get_or_create(&ReasonLabel {
                    reason: reason.metric_label(),
                })
                .inc();
        }
    }

    /// Count a reconcile that failed with an error.
    pub fn observe_error(&self, e: &crate::Error) {
        self.reconciles
            .get_or_create(&ResultLabel { result: "error" })
            .inc();
        self.errors
            .get_or_create(&ReasonLabel {
                reason: e.metric_label(),
            })
            .inc();
    }

    /// Refresh the per-object gauges from the controller's cache.
    pub fn refresh_objects<'a>(&self, objects: impl IntoIterator<Item = &'a AgeSecret>) {
        let (mut t, mut f, mut u) = (0, 0, 0);
        let mut kids: std::collections::BTreeMap<String, i64> = Default::default();
        for ags in objects {
            match ags
                .status
                .as_ref()
                .and_then(|s| s.condition(CONDITION_READY))
                .map(|c| c.status.as_str())
            {
                Some("True") => t += 1,
                Some("False") => f += 1,
                _ => u += 1,
            }
            for kid in ags.status.iter().flat_map(|s| s.key_ids.iter()) {
                *kids.entry(kid.clone()).or_default() += 1;
            }
        }
        for (ready, n) in [("True", t), ("False", f), ("Unknown", u)] {
            self.agesecrets.get_or_create(&ReadyLabel { ready }).set(n);
        }
        self.by_kid.clear();
        for (kid, n) in kids {
            self.by_kid.get_or_create(&KidLabel { kid }).set(n);
        }
    }

    /// Refresh the key gauges.
    pub fn refresh_keys(&self, keys: &KeySet, now: Timestamp) {
        for status in [KeyStatus::Active, KeyStatus::Retired] {
            self.keys
                .get_or_create(&StatusLabel {
                    status: status.as_str(),
                })
                .set(keys.count(status) as i64);
        }
        let age = keys
            .current()
            .map(|k| now.duration_since(k.created).as_secs_f64().max(0.0))
            .unwrap_or(0.0);
        self.newest_key_age.set(age);
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Records the elapsed time into the duration histogram on drop.
pub struct DurationGuard<'a> {
    histogram: &'a Histogram,
    start: Instant,
}

impl Drop for DurationGuard<'_> {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::AgeSecretFixture;
    use kage_core::api::v1alpha1::{AgeSecretStatus, Condition};

    #[test]
    fn exposition_has_every_family() {
        let m = Metrics::new();
        {
            let _t = m.timer();
        }
        m.observe_reason(Reason::Decrypted);
        m.observe_plan(std::time::Duration::from_millis(250), 3);
        m.observe_reason(Reason::UnknownKey);
        m.observe_error(&crate::Error::KeyRing("x".into()));
        let mut ready = AgeSecret::test();
        ready.status = Some(AgeSecretStatus {
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Condition::default()
            }],
            key_ids: vec!["00112233aabbccdd".into()],
            ..AgeSecretStatus::default()
        });
        let unknown = AgeSecret::test();
        m.refresh_objects([&ready, &unknown]);
        m.refresh_keys(&KeySet::default(), Timestamp::now());
        let text = m.encode();
        for needle in [
            "kage_reconciles_total{result=\"ready\"} 1",
            "kage_reconciles_total{result=\"not_ready\"} 1",
            "kage_reconciles_total{result=\"error\"} 1",
            "kage_reconcile_errors_total{reason=\"unknown_key\"} 1",
            "kage_reconcile_errors_total{reason=\"key_ring\"} 1",
            "kage_reconcile_errors_total{reason=\"kube_api\"} 0",
            "kage_reconcile_duration_seconds_count 1",
            "kage_values_decrypted_total 3",
            "kage_decrypt_seconds_total 0.25",
            "kage_agesecrets{ready=\"True\"} 1",
            "kage_agesecrets{ready=\"Unknown\"} 1",
            "kage_agesecrets_by_kid{kid=\"00112233aabbccdd\"} 1",
            "kage_keys{status=\"active\"} 0",
            "kage_newest_key_age_seconds 0",
            "kage_build_info{version=\"",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }
}
