//! The reconcile loop: reads what the [`plan`](crate::plan) needs, performs the plan.
//!
//! Nothing here decides anything; every branch lives in [`crate::plan::plan`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kage_core::api::v1alpha1::AgeSecret;
use kube::api::{Api, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, predicates, reflector, watcher};
use kube::{Client, Resource, ResourceExt};
use tracing::{Span, debug, field, info, instrument, warn};

use crate::decrypt::Options;
use crate::keystore::KeyState;
use crate::metrics::Metrics;
use crate::plan::{self, Inputs, Plan, SecretAction};
use crate::secret_rules;
use crate::{Error, FIELD_MANAGER, MANAGED_BY_LABEL, MANAGED_BY_VALUE, Result};

/// Periodic safety-net requeue of a Ready AgeSecret.
pub const REQUEUE_READY: Duration = Duration::from_secs(600);
/// Requeue of an AgeSecret that failed for a reason a key change may fix (such objects are also
/// retried at once when the key ring changes).
pub const REQUEUE_KEY_FAILURE: Duration = Duration::from_secs(300);
/// Requeue of an AgeSecret blocked by a Secret kage does not manage: handing the Secret over
/// (annotating it) changes nothing kage watches, so look again soon (one GET).
pub const REQUEUE_NOT_MANAGED: Duration = Duration::from_secs(60);
/// Requeue of an AgeSecret that needs a user change (invalid, mismatched, not managed,
/// suspended); the watch picks up that change anyway.
pub const REQUEUE_USER_FAILURE: Duration = Duration::from_secs(1800);

/// Shared state of the reconciler.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// The key ring.
    pub keys: Arc<KeyState>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Event recorder.
    pub recorder: Recorder,
    /// Decryption options.
    pub options: Options,
    /// The controller's own namespace (the key ring's).
    pub controller_namespace: String,
    /// Consecutive errors per object (for exponential backoff).
    errors: Mutex<HashMap<ObjectRef<AgeSecret>, u32>>,
    /// Objects whose last outcome a key ring change may fix.
    key_failures: Mutex<HashSet<ObjectRef<AgeSecret>>>,
    /// The controllers' caches (for the per-object gauges).
    stores: Mutex<Vec<Store<AgeSecret>>>,
    /// Secrets as kage last wrote them, so that the watch event of its own write does not
    /// trigger a second reconcile (which would decrypt everything again).
    own_writes: Arc<OwnWrites>,
}

/// Each managed Secret as kage last wrote (or verified) it, by namespace and name: its
/// resourceVersion, and the AgeSecret generation and key ring version it was decided from.
#[derive(Debug, Default)]
pub struct OwnWrites(Mutex<HashMap<(String, String), Written>>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Written {
    resource_version: String,
    generation: Option<i64>,
    ring_version: u64,
}

impl OwnWrites {
    fn key<K: Resource>(obj: &K) -> Option<(String, String)> {
        Some((obj.meta().namespace.clone()?, obj.meta().name.clone()?))
    }

    fn get<K: Resource>(&self, secret: &K) -> Option<Written> {
        let key = Self::key(secret)?;
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned()
    }

    /// Remember that kage wrote `secret` (as the API server returned it), or found it up to
    /// date, for AgeSecret `generation` with key ring `ring_version`.
    pub fn record<K: Resource>(&self, secret: &K, generation: Option<i64>, ring_version: u64) {
        if let (Some(key), Some(rv)) = (Self::key(secret), secret.meta().resource_version.clone()) {
            let written = Written {
                resource_version: rv,
                generation,
                ring_version,
            };
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, written);
        }
    }

    /// Is this exactly the version kage wrote last?
    pub fn is_own<K: Resource>(&self, secret: &K) -> bool {
        let rv = secret.meta().resource_version.as_ref();
        self.get(secret)
            .is_some_and(|w| Some(&w.resource_version) == rv)
    }

    /// Is `secret` the version kage wrote for this `generation` and `ring_version`? Then
    /// planning again would decrypt everything only to find it up to date.
    pub fn unchanged<K: Resource>(
        &self,
        secret: &K,
        generation: Option<i64>,
        ring_version: u64,
    ) -> bool {
        let rv = secret.meta().resource_version.as_ref();
        self.get(secret).is_some_and(|w| {
            Some(&w.resource_version) == rv
                && w.generation == generation
                && w.ring_version == ring_version
        })
    }

    /// The Secret is gone.
    pub fn forget<K: Resource>(&self, secret: &K) {
        if let Some(key) = Self::key(secret) {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
        }
    }
}

/// Is the AgeSecret's status Ready for its current generation?
fn ready_for_generation(ags: &AgeSecret) -> bool {
    ags.status.as_ref().is_some_and(|s| {
        s.observed_generation == ags.metadata.generation
            && s.condition(kage_core::api::v1alpha1::CONDITION_READY)
                .is_some_and(|c| c.status == "True")
    })
}

impl Context {
    /// A context; `instance` names this replica in events (the pod name).
    pub fn new(
        client: Client,
        keys: Arc<KeyState>,
        metrics: Arc<Metrics>,
        options: Options,
        controller_namespace: String,
        instance: Option<String>,
    ) -> Context {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: FIELD_MANAGER.into(),
                instance,
            },
        );
        Context {
            client,
            keys,
            metrics,
            recorder,
            options,
            controller_namespace,
            errors: Mutex::default(),
            key_failures: Mutex::default(),
            stores: Mutex::default(),
            own_writes: Arc::default(),
        }
    }

    /// Refresh the per-object gauges from the controllers' caches.
    pub fn refresh_object_metrics(&self) {
        let stores = self.stores.lock().unwrap_or_else(|e| e.into_inner());
        let all: Vec<Arc<AgeSecret>> = stores.iter().flat_map(|s| s.state()).collect();
        self.metrics.refresh_objects(all.iter().map(|a| a.as_ref()));
    }

    /// A success ends the object's run of errors (and so its backoff).
    fn clear_errors(&self, oref: &ObjectRef<AgeSecret>) {
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(oref);
    }

    fn key_failures_in(&self, namespace: Option<&str>) -> Vec<ObjectRef<AgeSecret>> {
        self.key_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|r| namespace.is_none() || r.namespace.as_deref() == namespace)
            .cloned()
            .collect()
    }
}

/// Reconcile one AgeSecret: read the Secret, plan, perform.
#[instrument(skip(ags, ctx), fields(namespace = field::Empty, name = field::Empty, reason = field::Empty))]
pub async fn reconcile(ags: Arc<AgeSecret>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.timer();
    let namespace = ags
        .metadata
        .namespace
        .clone()
        .ok_or(Error::MissingObjectKey("metadata.namespace"))?;
    let name = ags
        .metadata
        .name
        .clone()
        .ok_or(Error::MissingObjectKey("metadata.name"))?;
    Span::current().record("namespace", namespace.as_str());
    Span::current().record("name", name.as_str());
    let oref = ObjectRef::from_obj(ags.as_ref());

    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let existing = secrets.get_opt(&name).await?;
    // Read the version before the keys: a change in between only costs a second look.
    let ring_version = ctx.keys.version();
    let generation = ags.metadata.generation;
    // The Secret is exactly as kage wrote it for this generation and key ring, and the status
    // says so: nothing can have changed (this is the watch event of kage's own write, or a
    // periodic resync).
    if let Some(s) = &existing
        && ctx.own_writes.unchanged(s, generation, ring_version)
        && ready_for_generation(&ags)
    {
        wipe_secret(existing);
        debug!("Secret unchanged since kage wrote it");
        ctx.clear_errors(&oref);
        return Ok(Action::requeue(REQUEUE_READY));
    }
    let keys = ctx.keys.get();
    let started = std::time::Instant::now();
    let now = Timestamp::now();
    let mut plan = plan::plan(&Inputs {
        ags: &ags,
        ring: keys.ring(),
        existing: existing.as_ref(),
        options: ctx.options,
        controller_namespace: &ctx.controller_namespace,
        now,
    });
    ctx.metrics
        .observe_plan(started.elapsed(), plan.decrypted_values);
    if let (Some(s), SecretAction::UpToDate) = (&existing, &plan.secret) {
        ctx.own_writes.record(s, generation, ring_version);
    }
    wipe_secret(existing);
    Span::current().record("reason", plan.reason.as_str());

    let action = std::mem::replace(&mut plan.secret, SecretAction::Leave);
    match perform(&ags, &secrets, &name, &namespace, action).await {
        Ok(written) => {
            if let Some(w) = written {
                ctx.own_writes.record(&w, generation, ring_version);
                wipe_secret(Some(w));
            }
        }
        // The API server refused the Secret itself: retrying the same write cannot help, so
        // report it (Ready=False) and wait for the AgeSecret to change.
        Err(Error::Kube(kube::Error::Api(status))) if secret_rules::is_refusal(&status) => {
            warn!(
                code = status.code,
                reason = %status.reason,
                "the API server refused the Secret"
            );
            plan = plan::finish(&ags, now, Err(secret_rules::refusal(&status)));
            Span::current().record("reason", plan.reason.as_str());
        }
        Err(e) => return Err(e),
    }
    let events = plan_events(&plan);
    if plan.status_changed {
        let api: Api<AgeSecret> = Api::namespaced(ctx.client.clone(), &namespace);
        let body = serde_json::json!({
            "apiVersion": AgeSecret::api_version(&()),
            "kind": AgeSecret::kind(&()),
            "metadata": {"name": name, "namespace": namespace},
            "status": plan.status,
        });
        api.patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?;
    }
    publish_events(&ctx, &ags, &events).await;

    ctx.clear_errors(&oref);
    {
        let mut kf = ctx.key_failures.lock().unwrap_or_else(|e| e.into_inner());
        if plan.reason.key_dependent() {
            kf.insert(oref);
        } else {
            kf.remove(&oref);
        }
    }
    ctx.metrics.observe_reason(plan.reason);
    Ok(match plan.reason {
        plan::Reason::Decrypted => Action::requeue(REQUEUE_READY),
        r if r.key_dependent() => Action::requeue(REQUEUE_KEY_FAILURE),
        plan::Reason::SecretNotManaged => Action::requeue(REQUEUE_NOT_MANAGED),
        _ => Action::requeue(REQUEUE_USER_FAILURE),
    })
}

fn plan_events(plan: &Plan) -> Vec<Event> {
    plan.events
        .iter()
        .map(|e| Event {
            type_: if e.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: e.reason.into(),
            note: Some(e.note.clone()),
            action: e.action.into(),
            secondary: None,
        })
        .collect()
}

/// Write what the plan says; returns the Secret as the API server stored it (the caller wipes it).
async fn perform(
    ags: &AgeSecret,
    secrets: &Api<Secret>,
    name: &str,
    namespace: &str,
    action: SecretAction,
) -> Result<Option<Secret>> {
    match action {
        SecretAction::Leave | SecretAction::UpToDate => Ok(None),
        SecretAction::Apply {
            secret,
            create,
            strip_keys,
        } => {
            // Serialise once into a buffer that is wiped afterwards.
            let mut body = serde_json::to_value(&*secret)?;
            drop(secret);
            if let Some(obj) = body.as_object_mut() {
                obj.insert("apiVersion".into(), "v1".into());
                obj.insert("kind".into(), "Secret".into());
            }
            let result = secrets
                .patch(
                    name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&body),
                )
                .await;
            wipe(&mut body);
            let mut written = result?;
            if !strip_keys.is_empty() {
                let nulls: serde_json::Map<String, serde_json::Value> = strip_keys
                    .iter()
                    .map(|k| (k.clone(), serde_json::Value::Null))
                    .collect();
                let stripped = secrets
                    .patch(
                        name,
                        &PatchParams::default(),
                        &Patch::Merge(serde_json::json!({ "data": nulls, "stringData": null })),
                    )
                    .await;
                wipe_secret(Some(written));
                written = stripped?;
            }
            info!(
                namespace,
                name,
                uid = ags.metadata.uid.as_deref().unwrap_or_default(),
                created = create,
                stripped = strip_keys.len(),
                "applied Secret"
            );
            Ok(Some(written))
        }
    }
}

/// Overwrite the values of a Secret read from the API server before dropping it.
fn wipe_secret(secret: Option<Secret>) {
    use zeroize::Zeroize;
    if let Some(mut s) = secret {
        for v in s.data.iter_mut().flat_map(|d| d.values_mut()) {
            v.0.zeroize();
        }
        for v in s.string_data.iter_mut().flat_map(|d| d.values_mut()) {
            v.zeroize();
        }
    }
}

/// Overwrite the string leaves of a JSON value (the Secret body held base64 plaintext).
fn wipe(v: &mut serde_json::Value) {
    use zeroize::Zeroize;
    match v {
        serde_json::Value::String(s) => s.zeroize(),
        serde_json::Value::Array(a) => a.iter_mut().for_each(wipe),
        serde_json::Value::Object(o) => o.values_mut().for_each(wipe),
        _ => {}
    }
}

async fn publish_events(ctx: &Context, ags: &AgeSecret, events: &[Event]) {
    if events.is_empty() {
        return;
    }
    let reference = ags.object_ref(&());
    for ev in events {
        if let Err(e) = ctx.recorder.publish(ev, &reference).await {
            warn!(error = %e, reason = %ev.reason, "publishing event");
        }
    }
}

/// Backoff by error class: quick for conflicts, exponential for API errors, slow for errors a
/// retry will not fix soon.
pub fn error_policy(ags: Arc<AgeSecret>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.observe_error(error);
    let oref = ObjectRef::from_obj(ags.as_ref());
    let n = {
        let mut errors = ctx.errors.lock().unwrap_or_else(|e| e.into_inner());
        let n = errors.entry(oref).or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    let delay = backoff(error.metric_label(), n);
    warn!(
        namespace = ags.metadata.namespace.as_deref().unwrap_or_default(),
        name = ags.metadata.name.as_deref().unwrap_or_default(),
        error = %error,
        retry_in_s = delay.as_secs_f64(),
        "reconcile failed"
    );
    Action::requeue(delay)
}

/// The retry delay for the `attempt`-th consecutive error of class `label`.
pub fn backoff(label: &str, attempt: u32) -> Duration {
    let exp = |base_ms: u64, cap: Duration| {
        let ms = base_ms.saturating_mul(1u64 << attempt.saturating_sub(1).min(16));
        Duration::from_millis(ms).min(cap)
    };
    match label {
        "kube_conflict" | "kube_not_found" => exp(200, Duration::from_secs(10)),
        "kube_invalid" | "serialization" | "missing_object_key" | "config" | "core" => {
            exp(30_000, Duration::from_secs(600))
        }
        "key_ring" => exp(1_000, Duration::from_secs(30)),
        _ => exp(500, Duration::from_secs(300)),
    }
}

/// What the controller watches.
#[derive(Debug, Clone, Default)]
pub struct WatchConfig {
    /// Namespaces to watch (empty: all).
    pub namespaces: Vec<String>,
    /// Label selector on AgeSecrets.
    pub label_selector: Option<String>,
    /// Parallel reconciles.
    pub concurrency: u16,
}

/// Run the controller(s) until `shutdown` resolves: one for all namespaces, or one per watched
/// namespace.
pub async fn run(
    ctx: Arc<Context>,
    watch: WatchConfig,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let scopes: Vec<Option<String>> = if watch.namespaces.is_empty() {
        vec![None]
    } else {
        watch.namespaces.iter().cloned().map(Some).collect()
    };
    let runs = scopes.into_iter().map(|ns| {
        let ctx = ctx.clone();
        let watch = watch.clone();
        let shutdown = shutdown.clone();
        async move { run_one(ctx, ns, &watch, shutdown).await }
    });
    futures::future::join_all(runs).await;
}

async fn run_one(
    ctx: Arc<Context>,
    namespace: Option<String>,
    watch: &WatchConfig,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let client = ctx.client.clone();
    let (ags_api, secret_api): (Api<AgeSecret>, Api<PartialObjectMeta<Secret>>) = match &namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let mut ags_cfg = watcher::Config::default();
    if let Some(sel) = &watch.label_selector {
        ags_cfg = ags_cfg.labels(sel);
    }
    let (reader, writer) = reflector::store();
    ctx.stores
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(reader.clone());
    // Our own status writes do not change the generation: filter them out.
    let main = watcher(ags_api, ags_cfg)
        .default_backoff()
        // The cache does not need managedFields (a large share of each object).
        .modify(|ags| {
            ags.metadata.managed_fields = None;
        })
        .reflect(writer)
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    // Drift: managed Secrets (label-selected on the server, metadata only) map to their AgeSecret;
    // the event of kage's own last write is skipped, a deletion always counts.
    let own_writes = ctx.own_writes.clone();
    let drift = watcher(
        secret_api,
        watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}")),
    )
    .default_backoff()
    .filter_map(move |event| {
        let own_writes = own_writes.clone();
        async move { drift_trigger(&own_writes, event) }
    });
    let shutdown_signal = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    let concurrency = watch.concurrency;
    info!(
        namespace = namespace.as_deref().unwrap_or("*"),
        "starting controller"
    );
    Controller::for_stream(main, reader)
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .watches_stream(drift, |s| {
            let ns = s.metadata.namespace.clone()?;
            let name = s.metadata.name.clone()?;
            Some(ObjectRef::new(&name).within(&ns))
        })
        .reconcile_on(key_change_trigger(ctx.clone(), namespace.clone()))
        .graceful_shutdown_on(shutdown_signal)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => debug!(object = %obj, "reconciled"),
                Err(e) => debug!(error = %e, "controller"),
            }
        })
        .await;
    info!(
        namespace = namespace.as_deref().unwrap_or("*"),
        "controller stopped"
    );
}

/// The Secret a watch event should reconcile for, if any.
fn drift_trigger<K: Resource>(
    own_writes: &OwnWrites,
    event: std::result::Result<watcher::Event<K>, watcher::Error>,
) -> Option<std::result::Result<K, watcher::Error>> {
    match event {
        Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s)) => {
            (!own_writes.is_own(&s)).then_some(Ok(s))
        }
        Ok(watcher::Event::Delete(s)) => {
            own_writes.forget(&s);
            Some(Ok(s))
        }
        Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
        Err(e) => Some(Err(e)),
    }
}

/// Every change of the key ring re-queues the objects whose failure a key may fix.
fn key_change_trigger(
    ctx: Arc<Context>,
    namespace: Option<String>,
) -> impl Stream<Item = ObjectRef<AgeSecret>> + Send + 'static {
    let rx = ctx.keys.subscribe();
    futures::stream::unfold((rx, ctx, namespace), |(mut rx, ctx, ns)| async move {
        rx.changed().await.ok()?;
        let refs = ctx.key_failures_in(ns.as_deref());
        if !refs.is_empty() {
            info!(
                objects = refs.len(),
                "key ring changed: retrying failed AgeSecrets"
            );
        }
        Some((futures::stream::iter(refs), (rx, ctx, ns)))
    })
    .flatten()
}

/// The name of the object, for logs.
pub fn display_name(ags: &AgeSecret) -> String {
    format!("{}/{}", ags.namespace().unwrap_or_default(), ags.name_any())
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
