//! Leader election with a `coordination.k8s.io/v1` Lease (kube 5 has no helper).
//!
//! The same protocol as client-go's leaderelection: the holder renews `renewTime` every
//! `retry_period`; another replica takes the Lease over once `renewTime + leaseDurationSeconds`
//! has passed. Writes use the Lease's `resourceVersion`, so two replicas racing for it cannot
//! both win (the loser gets 409 Conflict). On shutdown the holder releases the Lease so a
//! standby takes over at once.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::{Error, FIELD_MANAGER, Result};

/// Timing of the election.
#[derive(Debug, Clone)]
pub struct LeaderConfig {
    /// Lease name.
    pub lease_name: String,
    /// Namespace of the Lease.
    pub namespace: String,
    /// This replica's identity (pod name).
    pub identity: String,
    /// How long a Lease is valid without renewal.
    pub lease_duration: Duration,
    /// How often to try to acquire or renew.
    pub retry_period: Duration,
}

impl LeaderConfig {
    /// Defaults of client-go: 15 s lease, 2 s retry.
    pub fn new(lease_name: &str, namespace: &str, identity: &str) -> LeaderConfig {
        LeaderConfig {
            lease_name: lease_name.into(),
            namespace: namespace.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What to do with the Lease as found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// There is none: create it.
    Create,
    /// We hold it: renew.
    Renew,
    /// Someone else held it and it expired (or was released): take it over.
    TakeOver,
    /// Someone else holds it.
    Wait,
}

/// Pure: decide from the Lease, who we are and the time.
pub fn decide(lease: Option<&Lease>, identity: &str, now: Timestamp) -> Decision {
    let Some(lease) = lease else {
        return Decision::Create;
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder == identity {
        return Decision::Renew;
    }
    if holder.is_empty() {
        return Decision::TakeOver;
    }
    let duration = SignedDuration::from_secs(spec.lease_duration_seconds.unwrap_or(15).into());
    match spec.renew_time.or(spec.acquire_time) {
        Some(MicroTime(t)) if t.checked_add(duration).is_ok_and(|exp| exp > now) => Decision::Wait,
        _ => Decision::TakeOver,
    }
}

/// The Lease after applying `decision` (for Create, Renew and TakeOver).
pub fn next_lease(
    current: Option<&Lease>,
    decision: Decision,
    cfg: &LeaderConfig,
    now: Timestamp,
) -> Lease {
    let mut lease = current.cloned().unwrap_or_else(|| Lease {
        metadata: ObjectMeta {
            name: Some(cfg.lease_name.clone()),
            namespace: Some(cfg.namespace.clone()),
            ..ObjectMeta::default()
        },
        spec: None,
    });
    let mut spec = lease.spec.take().unwrap_or_else(LeaseSpec::default);
    let secs = i32::try_from(cfg.lease_duration.as_secs()).unwrap_or(15);
    match decision {
        Decision::Create | Decision::TakeOver => {
            spec.holder_identity = Some(cfg.identity.clone());
            spec.acquire_time = Some(MicroTime(now));
            spec.renew_time = Some(MicroTime(now));
            spec.lease_duration_seconds = Some(secs);
            if decision == Decision::TakeOver {
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            } else {
                spec.lease_transitions = Some(0);
            }
        }
        Decision::Renew => {
            spec.renew_time = Some(MicroTime(now));
            spec.lease_duration_seconds = Some(secs);
        }
        Decision::Wait => {}
    }
    lease.spec = Some(spec);
    lease
}

/// Runs the election and reports leadership on a watch channel.
pub struct LeaderElector {
    api: Api<Lease>,
    cfg: LeaderConfig,
}

impl LeaderElector {
    /// An elector for `cfg`.
    pub fn new(client: kube::Client, cfg: LeaderConfig) -> LeaderElector {
        LeaderElector {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
        }
    }

    /// One round: returns whether we hold the Lease afterwards.
    pub async fn try_acquire_or_renew(&self) -> Result<bool> {
        let current = self.api.get_opt(&self.cfg.lease_name).await?;
        let now = Timestamp::now();
        let decision = decide(current.as_ref(), &self.cfg.identity, now);
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        let result = match decision {
            Decision::Wait => return Ok(false),
            Decision::Create => {
                let lease = next_lease(None, decision, &self.cfg, now);
                self.api.create(&pp, &lease).await.map(|_| ())
            }
            Decision::Renew | Decision::TakeOver => {
                let lease = next_lease(current.as_ref(), decision, &self.cfg, now);
                self.api
                    .replace(&self.cfg.lease_name, &pp, &lease)
                    .await
                    .map(|_| ())
            }
        };
        match result {
            Ok(()) => {
                if decision != Decision::Renew {
                    info!(lease = %self.cfg.lease_name, identity = %self.cfg.identity, "acquired leadership");
                }
                Ok(true)
            }
            // Lost a race: someone else wrote the Lease first.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(Error::Kube(e)),
        }
    }

    /// Give the Lease up (on shutdown) if we hold it.
    pub async fn release(&self) {
        let Ok(Some(current)) = self.api.get_opt(&self.cfg.lease_name).await else {
            return;
        };
        let holder = current
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref());
        if holder != Some(self.cfg.identity.as_str()) {
            return;
        }
        let mut lease = current.clone();
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
        }
        match self
            .api
            .replace(&self.cfg.lease_name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => info!(lease = %self.cfg.lease_name, "released leadership"),
            Err(e) => warn!(error = %e, "releasing the leader Lease"),
        }
    }

    /// Loop until `shutdown`; `leader` is true while we hold the Lease. Leadership is given up
    /// when renewals fail for longer than the lease duration.
    pub async fn run(self, leader: watch::Sender<bool>, mut shutdown: watch::Receiver<bool>) {
        let mut last_renew: Option<tokio::time::Instant> = None;
        loop {
            let held = match self.try_acquire_or_renew().await {
                Ok(held) => held,
                Err(e) => {
                    warn!(error = %e, "leader election");
                    // Keep leadership only while the last renewal is still valid.
                    last_renew.is_some_and(|t| t.elapsed() < self.cfg.lease_duration)
                }
            };
            if held {
                last_renew = Some(tokio::time::Instant::now());
            } else {
                last_renew = None;
            }
            leader.send_if_modified(|v| {
                let changed = *v != held;
                *v = held;
                changed
            });
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => break,
                _ = tokio::time::sleep(self.cfg.retry_period) => {}
            }
        }
        if *leader.borrow() {
            self.release().await;
        }
        leader.send_replace(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn lease(holder: Option<&str>, renew: &str, secs: i32) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(String::from),
                renew_time: Some(MicroTime(ts(renew))),
                lease_duration_seconds: Some(secs),
                lease_transitions: Some(3),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn decisions() {
        let now = ts("2026-01-01T00:00:10Z");
        assert_eq!(decide(None, "a", now), Decision::Create);
        let l = lease(Some("a"), "2026-01-01T00:00:00Z", 15);
        assert_eq!(decide(Some(&l), "a", now), Decision::Renew);
        assert_eq!(decide(Some(&l), "b", now), Decision::Wait);
        let expired = lease(Some("a"), "2026-01-01T00:00:00Z", 5);
        assert_eq!(decide(Some(&expired), "b", now), Decision::TakeOver);
        let released = lease(None, "2026-01-01T00:00:09Z", 15);
        assert_eq!(decide(Some(&released), "b", now), Decision::TakeOver);
        let no_times = Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some("a".into()),
                ..LeaseSpec::default()
            }),
        };
        assert_eq!(decide(Some(&no_times), "b", now), Decision::TakeOver);
    }

    #[test]
    fn next_lease_fields() {
        let cfg = LeaderConfig::new("l", "ns", "me");
        let now = ts("2026-01-01T00:00:10Z");
        let created = next_lease(None, Decision::Create, &cfg, now);
        let spec = created.spec.as_ref().unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("me"));
        assert_eq!(spec.lease_duration_seconds, Some(15));
        assert_eq!(spec.lease_transitions, Some(0));
        assert_eq!(created.metadata.name.as_deref(), Some("l"));
        let old = lease(Some("other"), "2026-01-01T00:00:00Z", 5);
        let taken = next_lease(Some(&old), Decision::TakeOver, &cfg, now);
        let spec = taken.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("me"));
        assert_eq!(spec.lease_transitions, Some(4));
        assert_eq!(spec.acquire_time, Some(MicroTime(now)));
        let mine = lease(Some("me"), "2026-01-01T00:00:00Z", 15);
        let renewed = next_lease(Some(&mine), Decision::Renew, &cfg, now);
        let spec = renewed.spec.unwrap();
        assert_eq!(spec.renew_time, Some(MicroTime(now)));
        assert_eq!(spec.lease_transitions, Some(3));
    }
}
