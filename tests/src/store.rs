//! The in-memory store and the API semantics on top of it: one global resourceVersion,
//! a bounded event history for watches, create/update/patch/apply/delete with
//! preconditions, finalizers, owner-reference garbage collection, namespace and CRD
//! deletion, and CRD registration. Everything runs under one lock, so every write is
//! atomic and watch events are totally ordered.
//!
//! Garbage collection and namespace finalization run synchronously at the end of the
//! write that triggers them (the real controllers are asynchronous).

use crate::error::{Cause, Error, Result};
use crate::patch;
use crate::rbac::UserInfo;
use crate::registry::{ALL_VERBS, Registry, ResourceType};
use crate::selector::{FieldSelector, LabelSelector};
use crate::ssa::{self, SchemaListTypes, Writer};
use crate::validate::{self, NameRule};
use base64::Engine as _;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::mpsc;

/// (group, plural): objects are stored once for all versions of a resource.
pub type Gr = (String, String);
/// (namespace, name); namespace is empty for cluster-scoped objects.
pub type Key = (String, String);

/// ADDED / MODIFIED / DELETED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

impl EventType {
    /// As on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, kept in the history and sent to watchers.
#[derive(Debug)]
pub struct Event {
    /// resourceVersion of the change.
    pub rv: u64,
    /// Resource.
    pub gr: Gr,
    /// Type.
    pub kind: EventType,
    /// Object after the change (before it, for DELETED, with the new resourceVersion).
    pub object: Arc<Value>,
    /// Object before the change (MODIFIED), to turn selector transitions into ADDED/DELETED.
    pub old: Option<Arc<Value>>,
}

/// What starting a watch gives: events to replay, the live channel, the current version.
pub type WatchStart = (Vec<Arc<Event>>, mpsc::UnboundedReceiver<Arc<Event>>, u64);

/// A message to a watch stream.
pub type WatchTx = mpsc::UnboundedSender<Arc<Event>>;

struct Watcher {
    gr: Gr,
    namespace: Option<String>,
    tx: WatchTx,
}

/// Options of a write.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// Field manager (query `fieldManager` or derived from the user agent).
    pub manager: String,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// apiVersion the client used (managedFields).
    pub api_version: String,
}

/// How dependents are treated on delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// Dependents deleted after the owner.
    Background,
    /// Owner waits (finalizer `foregroundDeletion`) until its dependents are gone.
    Foreground,
    /// Dependents keep living, their ownerReferences to the owner removed.
    Orphan,
}

/// Options of a delete.
#[derive(Debug, Clone)]
pub struct DeleteOptions {
    /// Propagation policy.
    pub propagation: Propagation,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

impl Default for DeleteOptions {
    fn default() -> Self {
        DeleteOptions {
            propagation: Propagation::Background,
            uid: None,
            resource_version: None,
            dry_run: false,
        }
    }
}

/// The patch flavours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// application/json-patch+json
    Json,
    /// application/merge-patch+json
    Merge,
    /// application/strategic-merge-patch+json
    Strategic,
    /// application/apply-patch+yaml
    Apply,
}

/// A list request.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Label selector.
    pub labels: LabelSelector,
    /// Field selector.
    pub fields: FieldSelector,
    /// Page size, 0 for all.
    pub limit: usize,
    /// Continue token.
    pub continue_token: Option<String>,
}

/// A listed page.
#[derive(Debug)]
pub struct Page {
    /// Items.
    pub items: Vec<Value>,
    /// The list's resourceVersion.
    pub resource_version: u64,
    /// Continue token when more items remain.
    pub continue_token: Option<String>,
    /// Items after this page.
    pub remaining: Option<usize>,
}

/// A ServiceAccount token's owner.
#[derive(Debug, Clone)]
pub struct SaToken {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The ServiceAccount's uid at issue time (deleting the SA invalidates the token).
    pub uid: String,
}

enum Work {
    OwnerGone(String),
    ForegroundCheck(String),
    NamespaceCheck(String),
    CrdCheck(String),
}

/// Settings of the store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// How many events the watch history keeps (older resourceVersions get 410 Gone).
    pub history_limit: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            history_limit: 20_000,
        }
    }
}

/// Everything the server knows.
pub struct Store {
    /// Served resources.
    pub registry: Registry,
    // Shared with the watch history (one copy of each object version in memory).
    objects: HashMap<Gr, BTreeMap<Key, Arc<Value>>>,
    rv: u64,
    history: VecDeque<Arc<Event>>,
    history_floor: u64,
    history_limit: usize,
    watchers: Vec<Watcher>,
    uids: HashMap<String, (Gr, Key)>,
    dependents: HashMap<String, BTreeSet<(Gr, Key)>>,
    work: VecDeque<Work>,
    /// Issued ServiceAccount tokens.
    pub sa_tokens: HashMap<String, SaToken>,
    /// Static user tokens (the admin's and ones tests add).
    pub user_tokens: HashMap<String, UserInfo>,
    /// Service proxy upstreams registered through the library, by (namespace, service).
    pub upstreams: HashMap<Key, String>,
}

/// The current time as Kubernetes writes it.
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn md<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn md_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("metadata was just made an object"),
    }
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn owner_uids(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str).map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn random_suffix(n: usize) -> String {
    // The alphabet Kubernetes uses for generateName (no vowels, no confusable digits).
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes
        .iter()
        .take(n)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// A new random token (ServiceAccount tokens, the admin token).
pub fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn gr_of(rt: &ResourceType) -> Gr {
    (rt.group.clone(), rt.plural.clone())
}

/// Does a namespace or CRD still wait for its own cleanup?
fn has_finalizers(gr: &Gr, obj: &Value) -> bool {
    if !finalizers(obj).is_empty() {
        return true;
    }
    gr.0.is_empty()
        && gr.1 == "namespaces"
        && obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
}

const CRD_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

impl Store {
    /// A store with the default namespaces.
    pub fn new(config: &StoreConfig) -> Self {
        let mut s = Store {
            registry: Registry::new(),
            objects: HashMap::new(),
            rv: 0,
            history: VecDeque::new(),
            history_floor: 0,
            history_limit: config.history_limit.max(1),
            watchers: vec![],
            uids: HashMap::new(),
            dependents: HashMap::new(),
            work: VecDeque::new(),
            sa_tokens: HashMap::new(),
            user_tokens: HashMap::new(),
            upstreams: HashMap::new(),
        };
        let opts = WriteOptions {
            manager: "kube-apiserver".into(),
            dry_run: false,
            api_version: "v1".into(),
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let rt = s.rt("", "v1", "namespaces");
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            // Cannot fail: fixed, valid names in an empty store.
            let _ = s.create(&rt, "", obj, &opts);
        }
        s
    }

    fn rt(&self, group: &str, version: &str, plural: &str) -> ResourceType {
        self.registry
            .get(group, version, plural)
            .cloned()
            .unwrap_or_else(|| panic!("built-in resource {group}/{version}/{plural} is registered"))
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// Read one object.
    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<Value> {
        self.objects
            .get(&gr_of(rt))
            .and_then(|m| m.get(&(ns.to_string(), name.to_string())))
            .map(|a| (**a).clone())
            .ok_or_else(|| Error::not_found(&rt.qualified(), name))
    }

    /// Read by (group, plural) without a registry entry.
    pub fn get_raw(&self, gr: &Gr, key: &Key) -> Option<&Value> {
        self.objects
            .get(gr)
            .and_then(|m| m.get(key))
            .map(|a| a.as_ref())
    }

    /// All objects of a resource (RBAC evaluation, tests).
    pub fn all_of(&self, group: &str, plural: &str) -> Vec<&Value> {
        self.objects
            .get(&(group.to_string(), plural.to_string()))
            .map(|m| m.values().map(|a| a.as_ref()).collect())
            .unwrap_or_default()
    }

    /// List with selectors and paging. Pages read the live state (no snapshot), but every
    /// page reports the first page's resourceVersion, so a watch started from it replays
    /// whatever changed during the paging.
    pub fn list(&self, rt: &ResourceType, ns: Option<&str>, q: &ListQuery) -> Result<Page> {
        let (list_rv, start): (u64, Option<Key>) = match &q.continue_token {
            Some(t) => {
                let (rv, key) = decode_continue(t, self.history_floor)?;
                (rv, Some(key))
            }
            None => (self.rv, None),
        };
        let empty = BTreeMap::new();
        let map = self.objects.get(&gr_of(rt)).unwrap_or(&empty);
        let range: Box<dyn Iterator<Item = (&Key, &Arc<Value>)>> = match (&start, ns) {
            (Some(k), _) => Box::new(map.range((
                std::ops::Bound::Excluded(k.clone()),
                std::ops::Bound::Unbounded,
            ))),
            (None, Some(ns)) => Box::new(map.range((ns.to_string(), String::new())..)),
            (None, None) => Box::new(map.iter()),
        };
        let mut items = vec![];
        let mut last: Option<Key> = None;
        let mut remaining = 0usize;
        for (k, v) in range {
            if let Some(ns) = ns
                && k.0 != ns
            {
                if k.0.as_str() > ns {
                    break;
                }
                continue;
            }
            if !q.labels.matches(v) || !q.fields.matches(v) {
                continue;
            }
            if q.limit > 0 && items.len() >= q.limit {
                remaining += 1;
                continue;
            }
            last = Some(k.clone());
            items.push((**v).clone());
        }
        let continue_token = if remaining > 0 {
            last.map(|k| encode_continue(list_rv, &k))
        } else {
            None
        };
        Ok(Page {
            items,
            resource_version: list_rv,
            remaining: continue_token.as_ref().map(|_| remaining),
            continue_token,
        })
    }

    /// Start a watch: returns the events to replay and the live channel.
    /// `from` = None replays the current objects as ADDED; Some(rv) replays history after rv.
    pub fn watch(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        from: Option<u64>,
    ) -> Result<WatchStart> {
        let gr = gr_of(rt);
        let replay = match from {
            Some(rv) if rv < self.history_floor => {
                return Err(Error::Gone(format!(
                    "too old resource version: {rv} ({})",
                    self.history_floor + 1
                )));
            }
            Some(rv) => self
                .history
                .iter()
                .filter(|e| e.rv > rv && e.gr == gr)
                .cloned()
                .collect(),
            None => {
                let empty = BTreeMap::new();
                self.objects
                    .get(&gr)
                    .unwrap_or(&empty)
                    .iter()
                    .filter(|(k, _)| ns.is_none_or(|n| k.0 == n))
                    .map(|(_, v)| {
                        Arc::new(Event {
                            rv: v
                                .pointer("/metadata/resourceVersion")
                                .and_then(Value::as_str)
                                .and_then(|s| s.parse().ok())
                                .unwrap_or(0),
                            gr: gr.clone(),
                            kind: EventType::Added,
                            object: v.clone(),
                            old: None,
                        })
                    })
                    .collect()
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        self.watchers.push(Watcher {
            gr,
            namespace: ns.map(String::from),
            tx,
        });
        Ok((replay, rx, self.rv))
    }

    /// Close every open watch (fault injection).
    pub fn drop_watches(&mut self) {
        self.watchers.clear();
    }

    /// Forget history up to the current resourceVersion: watches from older versions get 410.
    pub fn compact(&mut self) {
        self.history.clear();
        self.history_floor = self.rv;
    }

    /// Number of open watches.
    pub fn watch_count(&self) -> usize {
        self.watchers.iter().filter(|w| !w.tx.is_closed()).count()
    }

    fn record(&mut self, gr: Gr, kind: EventType, object: Arc<Value>, old: Option<Arc<Value>>) {
        let ev = Arc::new(Event {
            rv: self.rv,
            gr,
            kind,
            object,
            old,
        });
        self.watchers.retain(|w| {
            if w.gr != ev.gr {
                return !w.tx.is_closed();
            }
            if let Some(ns) = &w.namespace
                && md(&ev.object, "namespace") != ns
            {
                return !w.tx.is_closed();
            }
            w.tx.send(ev.clone()).is_ok()
        });
        self.history.push_back(ev);
        while self.history.len() > self.history_limit {
            if let Some(e) = self.history.pop_front() {
                self.history_floor = e.rv;
            }
        }
    }

    fn index(&mut self, gr: &Gr, key: &Key, old: Option<&Value>, new: Option<&Value>) {
        if let Some(o) = old {
            for u in owner_uids(o) {
                if let Some(set) = self.dependents.get_mut(&u) {
                    set.remove(&(gr.clone(), key.clone()));
                    if set.is_empty() {
                        self.dependents.remove(&u);
                    }
                }
            }
            if new.is_none() {
                self.uids.remove(md(o, "uid"));
            }
        }
        if let Some(n) = new {
            for u in owner_uids(n) {
                self.dependents
                    .entry(u)
                    .or_default()
                    .insert((gr.clone(), key.clone()));
            }
            self.uids
                .insert(md(n, "uid").to_string(), (gr.clone(), key.clone()));
        }
    }

    /// Store a new version of an object: bump the resourceVersion, index, emit.
    fn put(&mut self, gr: &Gr, key: &Key, mut obj: Value) -> Value {
        self.rv += 1;
        md_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        let shared = Arc::new(obj);
        let old = self
            .objects
            .entry(gr.clone())
            .or_default()
            .insert(key.clone(), shared.clone());
        self.index(gr, key, old.as_deref(), Some(&shared));
        let kind = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(gr.clone(), kind, shared.clone(), old);
        (*shared).clone()
    }

    /// Remove an object for good: DELETED event, then queue GC/namespace/CRD follow-ups.
    fn remove(&mut self, gr: &Gr, key: &Key) -> Option<Value> {
        let mut obj = Arc::unwrap_or_clone(self.objects.get_mut(gr)?.remove(key)?);
        self.rv += 1;
        md_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        self.index(gr, key, Some(&obj), None);
        let uid = md(&obj, "uid").to_string();
        self.work.push_back(Work::OwnerGone(uid));
        for owner in owner_uids(&obj) {
            self.work.push_back(Work::ForegroundCheck(owner));
        }
        if !key.0.is_empty() {
            self.work.push_back(Work::NamespaceCheck(key.0.clone()));
        }
        if let Some(rt) = self.registry.any_version(&gr.0, &gr.1)
            && let Some(crd) = rt.crd.clone()
        {
            self.work.push_back(Work::CrdCheck(crd));
        }
        if gr.0 == "apiextensions.k8s.io" {
            self.registry.remove_crd(&key.1);
            // Watches of the removed resource end.
            let gone: Vec<Gr> = self
                .watchers
                .iter()
                .map(|w| w.gr.clone())
                .filter(|g| self.registry.any_version(&g.0, &g.1).is_none())
                .collect();
            self.watchers.retain(|w| !gone.contains(&w.gr));
        }
        self.record(gr.clone(), EventType::Deleted, Arc::new(obj.clone()), None);
        Some(obj)
    }

    /// Create an object.
    pub fn create(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        obj: Value,
        opts: &WriteOptions,
    ) -> Result<Value> {
        self.create_inner(rt, ns, obj, opts, true)
    }

    fn create_inner(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        mut obj: Value,
        opts: &WriteOptions,
        track_update: bool,
    ) -> Result<Value> {
        if !obj.is_object() {
            return Err(Error::BadRequest(
                "the body of the request must be a JSON object".into(),
            ));
        }
        obj["apiVersion"] = json!(rt.api_version());
        obj["kind"] = json!(rt.kind);
        let m = md_mut(&mut obj);
        if rt.namespaced {
            let body_ns = m
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !body_ns.is_empty() && body_ns != ns {
                return Err(Error::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                ));
            }
            m.insert("namespace".into(), json!(ns));
        } else {
            m.remove("namespace");
        }
        let name = m
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if name.is_empty()
            && let Some(prefix) = m.get("generateName").and_then(Value::as_str)
            && !prefix.is_empty()
        {
            let generated = format!("{prefix}{}", random_suffix(5));
            m.insert("name".into(), json!(generated));
        }
        if m.get("resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
        {
            return Err(Error::Internal(
                "resourceVersion should not be set on objects to be created".into(),
            ));
        }
        for f in [
            "uid",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "selfLink",
        ] {
            m.remove(f);
        }
        if track_update {
            m.remove("managedFields");
        }
        let name = md(&obj, "name").to_string();
        if rt.status_subresource && rt.is_custom() {
            // Custom resources ignore status on create when /status exists.
            if let Some(o) = obj.as_object_mut() {
                o.remove("status");
            }
        }
        self.normalize(rt, None, &mut obj)?;
        let gr = gr_of(rt);
        let key = (
            if rt.namespaced {
                ns.to_string()
            } else {
                String::new()
            },
            name.clone(),
        );
        if self.get_raw(&gr, &key).is_some() {
            return Err(Error::AlreadyExists {
                resource: rt.qualified(),
                name,
            });
        }
        if rt.namespaced {
            let ns_obj = self.get_raw(
                &(String::new(), "namespaces".into()),
                &(String::new(), ns.to_string()),
            );
            match ns_obj {
                None => return Err(Error::not_found("namespaces", ns)),
                Some(n) if n.pointer("/metadata/deletionTimestamp").is_some() => {
                    return Err(Error::Forbidden {
                        resource: rt.qualified(),
                        group: rt.group.clone(),
                        name: name.clone(),
                        message: format!(
                            "{} {name:?} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                            rt.qualified()
                        ),
                    });
                }
                Some(_) => {}
            }
        }
        let m = md_mut(&mut obj);
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        m.insert("creationTimestamp".into(), json!(now()));
        if rt.tracks_generation() {
            m.insert("generation".into(), json!(1));
        }
        if track_update {
            let writer = Writer {
                manager: &opts.manager,
                subresource: "",
                api_version: &opts.api_version,
                now: &now(),
            };
            let schema = rt.schema.clone();
            ssa::record_update(
                None,
                &mut obj,
                &writer,
                &SchemaListTypes {
                    schema: schema.as_ref(),
                },
            );
        }
        if opts.dry_run {
            return Ok(obj);
        }
        let stored = self.put(&gr, &key, obj);
        self.after_create(rt, &key, &stored);
        self.settle();
        Ok(self.get_raw(&gr, &key).cloned().unwrap_or(stored))
    }

    fn after_create(&mut self, rt: &ResourceType, key: &Key, stored: &Value) {
        if rt.group.is_empty() && rt.plural == "namespaces" {
            // Every namespace gets a `default` ServiceAccount, as the real controller does.
            let sa = self.rt("", "v1", "serviceaccounts");
            let opts = WriteOptions {
                manager: "kube-controller-manager".into(),
                dry_run: false,
                api_version: "v1".into(),
            };
            let obj = json!({"metadata": {"name": "default"}});
            let _ = self.create(&sa, &key.1, obj, &opts);
        }
        if rt.group == "apiextensions.k8s.io" {
            self.register_crd(stored);
        }
    }

    /// Type-specific defaulting and validation; `old` is set for updates.
    fn normalize(&mut self, rt: &ResourceType, old: Option<&Value>, obj: &mut Value) -> Result<()> {
        let name = md(obj, "name").to_string();
        let mut causes = validate::metadata(obj, NameRule::for_resource(&rt.group, &rt.plural));
        match (rt.group.as_str(), rt.plural.as_str()) {
            ("", "secrets") => causes.extend(validate::secret(obj)?),
            ("", "configmaps") => causes.extend(validate::configmap(obj)),
            ("", "namespaces") => {
                if obj.pointer("/spec/finalizers").is_none() {
                    obj["spec"] = json!({"finalizers": ["kubernetes"]});
                }
                if obj.pointer("/status/phase").is_none() {
                    obj["status"] = json!({"phase": "Active"});
                }
                let labels = md_mut(obj).entry("labels").or_insert_with(|| json!({}));
                if let Some(l) = labels.as_object_mut() {
                    l.insert("kubernetes.io/metadata.name".into(), json!(name));
                }
            }
            ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
                if obj
                    .pointer("/roleRef/name")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    causes.push(Cause::required("roleRef.name"));
                }
                if let Some(o) = old
                    && o.get("roleRef") != obj.get("roleRef")
                {
                    causes.push(Cause::invalid("roleRef", "", "cannot change roleRef"));
                }
            }
            ("apiextensions.k8s.io", "customresourcedefinitions") => {
                causes.extend(crd_causes(obj));
                if causes.is_empty() {
                    let status = crd_status(obj, old);
                    obj["status"] = status;
                    let m = md_mut(obj);
                    let fins = m.entry("finalizers").or_insert_with(|| json!([]));
                    if let Some(a) = fins.as_array_mut()
                        && !a.iter().any(|f| f == CRD_FINALIZER)
                        && old.is_none()
                    {
                        a.push(json!(CRD_FINALIZER));
                    }
                }
            }
            _ => {}
        }
        if rt.is_custom()
            && let Some(schema) = &rt.schema
        {
            causes.extend(crate::schema::apply(obj, schema));
        }
        if let Some(o) = old
            && rt.group.is_empty()
            && (rt.plural == "secrets" || rt.plural == "configmaps")
        {
            causes.extend(validate::immutable_update(o, obj, &rt.kind));
        }
        if causes.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid {
                kind: rt.kind.clone(),
                group: rt.group.clone(),
                name,
                causes,
            })
        }
    }

    /// PUT.
    pub fn update(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        body: Value,
        sub: &str,
        opts: &WriteOptions,
    ) -> Result<Value> {
        let old = match self.get(rt, ns, name) {
            Ok(o) => o,
            // Leases, Events and Services allow create-on-update, as on a real server
            // (leader-election clients rely on it).
            Err(Error::NotFound { .. })
                if sub.is_empty()
                    && md(&body, "resourceVersion").is_empty()
                    && matches!(
                        (rt.group.as_str(), rt.plural.as_str()),
                        ("coordination.k8s.io", "leases")
                            | ("", "events")
                            | ("events.k8s.io", "events")
                            | ("", "services")
                    ) =>
            {
                let mut body = body;
                if body.is_object() && md(&body, "name").is_empty() {
                    md_mut(&mut body).insert("name".into(), json!(name));
                }
                if md(&body, "name") != name {
                    return Err(Error::BadRequest(format!(
                        "the name of the object ({}) does not match the name on the URL ({name})",
                        md(&body, "name")
                    )));
                }
                return self.create(rt, ns, body, opts);
            }
            Err(e) => return Err(e),
        };
        if !body.is_object() {
            return Err(Error::BadRequest(
                "the body of the request must be a JSON object".into(),
            ));
        }
        let body_name = md(&body, "name");
        if !body_name.is_empty() && body_name != name {
            return Err(Error::BadRequest(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let rv = md(&body, "resourceVersion");
        if rv.is_empty() && rt.is_custom() {
            return Err(Error::Invalid {
                kind: rt.kind.clone(),
                group: rt.group.clone(),
                name: name.to_string(),
                causes: vec![Cause::new(
                    "FieldValueInvalid",
                    "metadata.resourceVersion",
                    "Invalid value: 0x0: must be specified for an update",
                )],
            });
        }
        if !rv.is_empty() && rv != md(&old, "resourceVersion") {
            return Err(Error::stale(&rt.qualified(), name));
        }
        // A uid in the body is a precondition (the object may have been recreated).
        let uid = md(&body, "uid");
        if !uid.is_empty() && uid != md(&old, "uid") {
            return Err(Error::Conflict {
                resource: rt.qualified(),
                name: name.to_string(),
                message: format!(
                    "Operation cannot be fulfilled on {} {name:?}: Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    rt.qualified(),
                    md(&old, "uid")
                ),
                causes: vec![],
            });
        }
        let new = split_status(rt, &old, body, sub);
        self.finish_write(rt, ns, &old, new, sub, opts, true)
    }

    /// PATCH (all four flavours).
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        ptype: PatchType,
        body: &Value,
        sub: &str,
        force: bool,
        opts: &WriteOptions,
    ) -> Result<Value> {
        if ptype == PatchType::Apply {
            return self.apply(rt, ns, name, body, sub, force, opts);
        }
        let old = self.get(rt, ns, name)?;
        let patched = match ptype {
            PatchType::Json => patch::json_patch(&old, body)?,
            PatchType::Merge => {
                if !body.is_object() {
                    return Err(Error::BadRequest(
                        "merge patch must be a JSON object".into(),
                    ));
                }
                patch::merge_patch(&old, body)
            }
            PatchType::Strategic => {
                if rt.is_custom() {
                    return Err(Error::UnsupportedMediaType(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml".to_string(),
                    ));
                }
                patch::strategic_merge_patch(&old, body)?
            }
            PatchType::Apply => unreachable!("handled above"),
        };
        if !patched.is_object() {
            return Err(Error::BadRequest(
                "the patched object must be a JSON object".into(),
            ));
        }
        let rv = md(&patched, "resourceVersion");
        if !rv.is_empty() && rv != md(&old, "resourceVersion") {
            return Err(Error::stale(&rt.qualified(), name));
        }
        if md(&patched, "name") != name {
            return Err(Error::BadRequest(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                md(&patched, "name")
            )));
        }
        let new = split_status(rt, &old, patched, sub);
        self.finish_write(rt, ns, &old, new, sub, opts, true)
    }

    #[allow(clippy::too_many_arguments)]
    fn apply(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        config: &Value,
        sub: &str,
        force: bool,
        opts: &WriteOptions,
    ) -> Result<Value> {
        if opts.manager.is_empty() {
            return Err(Error::BadRequest(
                "PATCH, application/apply-patch+yaml: fieldManager is required for apply requests"
                    .into(),
            ));
        }
        let Some(cfg) = config.as_object() else {
            return Err(Error::BadRequest(
                "the applied configuration must be an object".into(),
            ));
        };
        for f in ["apiVersion", "kind"] {
            if cfg.get(f).and_then(Value::as_str).is_none_or(str::is_empty) {
                return Err(Error::BadRequest(format!(
                    "error decoding patch: {f} must be set in the applied configuration"
                )));
            }
        }
        // The name may be omitted (controller-rs applies status without metadata).
        let cfg_name = md(config, "name");
        if !cfg_name.is_empty() && cfg_name != name {
            return Err(Error::BadRequest(format!(
                "the name of the object ({cfg_name}) does not match the name on the URL ({name})"
            )));
        }
        let mut config = config.clone();
        let m = md_mut(&mut config);
        m.insert("name".into(), json!(name));
        for f in [
            "managedFields",
            "uid",
            "creationTimestamp",
            "generation",
            "selfLink",
        ] {
            m.remove(f);
        }
        let rv = m.remove("resourceVersion");
        // What the applier may set, depending on the endpoint.
        if sub == "status" {
            let status = config.get("status").cloned();
            let meta = json!({"name": name});
            config = json!({"apiVersion": config["apiVersion"], "kind": config["kind"], "metadata": meta});
            if let Some(s) = status {
                config["status"] = s;
            }
        } else if rt.status_subresource
            && let Some(o) = config.as_object_mut()
        {
            o.remove("status");
        }
        if rt.namespaced {
            md_mut(&mut config).insert("namespace".into(), json!(ns));
        }
        let existing = self.get(rt, ns, name).ok();
        if let (Some(rv), Some(e)) = (rv.as_ref().and_then(Value::as_str), existing.as_ref())
            && !rv.is_empty()
            && rv != md(e, "resourceVersion")
        {
            return Err(Error::stale(&rt.qualified(), name));
        }
        let base = existing.clone().unwrap_or_else(|| {
            let mut meta = json!({"name": name});
            if rt.namespaced {
                meta["namespace"] = json!(ns);
            }
            json!({"apiVersion": rt.api_version(), "kind": rt.kind, "metadata": meta})
        });
        // Secrets: the applied stringData lands in data before field tracking.
        if rt.group.is_empty() && rt.plural == "secrets" && config.get("stringData").is_some() {
            let had_type = config.get("type").is_some();
            let _ = validate::secret(&mut config)?;
            if !had_type && let Some(o) = config.as_object_mut() {
                // Defaulted type: not owned by the applier unless it said so.
                o.remove("type");
            }
        }
        let writer = Writer {
            manager: &opts.manager,
            subresource: sub,
            api_version: &opts.api_version,
            now: &now(),
        };
        let schema = rt.schema.clone();
        let lt = SchemaListTypes {
            schema: schema.as_ref(),
        };
        let applied = ssa::apply(&base, &config, &writer, force, &lt).map_err(|conflicts| {
            let n = conflicts.len();
            let causes: Vec<Cause> = conflicts
                .iter()
                .map(|c| {
                    Cause::new(
                        "FieldManagerConflict",
                        c.field.clone(),
                        format!("conflict with {:?}", c.manager),
                    )
                })
                .collect();
            let lines: Vec<String> = conflicts
                .iter()
                .map(|c| {
                    format!(
                        "- conflict with {:?} using {}: {}",
                        c.manager, c.api_version, c.field
                    )
                })
                .collect();
            let summary = if n == 1 {
                format!(
                    "Apply failed with 1 conflict: conflict with {:?} using {}: {}",
                    conflicts[0].manager, conflicts[0].api_version, conflicts[0].field
                )
            } else {
                format!("Apply failed with {n} conflicts: {}", lines.join("\n"))
            };
            Error::Conflict {
                resource: rt.qualified(),
                name: name.to_string(),
                message: summary,
                causes,
            }
        })?;
        match existing {
            None => {
                if sub == "status" {
                    return Err(Error::not_found(&rt.qualified(), name));
                }
                self.create_inner(rt, ns, applied, opts, false)
            }
            Some(old) => {
                let new = split_status(rt, &old, applied, sub);
                self.finish_write(rt, ns, &old, new, sub, opts, false)
            }
        }
    }

    /// Shared tail of update/patch/apply: keep server fields, validate, generation,
    /// managedFields, no-op detection, finalization, commit.
    #[allow(clippy::too_many_arguments)]
    fn finish_write(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        old: &Value,
        mut new: Value,
        sub: &str,
        opts: &WriteOptions,
        track_update: bool,
    ) -> Result<Value> {
        new["apiVersion"] = old["apiVersion"].clone();
        new["kind"] = json!(rt.kind);
        let old_md = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
        let m = md_mut(&mut new);
        for f in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ] {
            match old_md.get(f) {
                Some(v) => {
                    m.insert(f.into(), v.clone());
                }
                None => {
                    m.remove(f);
                }
            }
        }
        if track_update {
            match old_md.get("managedFields") {
                Some(v) => m.insert("managedFields".into(), v.clone()),
                None => m.remove("managedFields"),
            };
        }
        let name = md(old, "name").to_string();
        if old.pointer("/metadata/deletionTimestamp").is_some() {
            let old_f = finalizers(old);
            if finalizers(&new).iter().any(|f| !old_f.contains(f)) {
                return Err(Error::Invalid {
                    kind: rt.kind.clone(),
                    group: rt.group.clone(),
                    name: name.clone(),
                    causes: vec![Cause::forbidden(
                        "metadata.finalizers",
                        "no new finalizers can be added if the object is being deleted",
                    )],
                });
            }
        }
        self.normalize(rt, Some(old), &mut new)?;
        if rt.tracks_generation() && validate::generation_changes(old, &new) {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            md_mut(&mut new).insert("generation".into(), json!(g + 1));
        }
        if track_update {
            let writer = Writer {
                manager: &opts.manager,
                subresource: sub,
                api_version: &opts.api_version,
                now: &now(),
            };
            let schema = rt.schema.clone();
            ssa::record_update(
                Some(old),
                &mut new,
                &writer,
                &SchemaListTypes {
                    schema: schema.as_ref(),
                },
            );
        }
        if new == *old {
            // Nothing changed: no new resourceVersion, no event (controllers rely on it).
            return Ok(new);
        }
        if opts.dry_run {
            return Ok(new);
        }
        let gr = gr_of(rt);
        let key = (
            if rt.namespaced {
                ns.to_string()
            } else {
                String::new()
            },
            name,
        );
        if new.pointer("/metadata/deletionTimestamp").is_some() && !has_finalizers(&gr, &new) {
            let _ = self.put(&gr, &key, new);
            let gone = self.remove(&gr, &key);
            self.settle();
            return gone.ok_or_else(|| Error::Internal("object vanished".into()));
        }
        let stored = self.put(&gr, &key, new);
        if rt.group == "apiextensions.k8s.io" {
            self.register_crd(&stored);
        }
        self.settle();
        Ok(self.get_raw(&gr, &key).cloned().unwrap_or(stored))
    }

    /// DELETE of one object.
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Value> {
        let obj = self.get(rt, ns, name)?;
        if let Some(uid) = &opts.uid
            && uid != md(&obj, "uid")
        {
            return Err(Error::Conflict {
                resource: rt.qualified(),
                name: name.to_string(),
                message: format!(
                    "Operation cannot be fulfilled on {} {name:?}: Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    rt.qualified(),
                    md(&obj, "uid")
                ),
                causes: vec![],
            });
        }
        if let Some(rv) = &opts.resource_version
            && rv != md(&obj, "resourceVersion")
        {
            return Err(Error::Conflict {
                resource: rt.qualified(),
                name: name.to_string(),
                message: format!(
                    "Operation cannot be fulfilled on {} {name:?}: Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    rt.qualified(),
                    md(&obj, "resourceVersion")
                ),
                causes: vec![],
            });
        }
        if opts.dry_run {
            return Ok(obj);
        }
        let gr = gr_of(rt);
        let key = (
            if rt.namespaced {
                ns.to_string()
            } else {
                String::new()
            },
            name.to_string(),
        );
        let out = self.delete_key(&gr, &key, opts.propagation);
        self.settle();
        out.ok_or_else(|| Error::not_found(&rt.qualified(), name))
    }

    /// Delete by key; returns the object as left (terminating or removed).
    fn delete_key(&mut self, gr: &Gr, key: &Key, policy: Propagation) -> Option<Value> {
        let mut obj = self.get_raw(gr, key)?.clone();
        let uid = md(&obj, "uid").to_string();
        let deps: Vec<(Gr, Key)> = self
            .dependents
            .get(&uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        match policy {
            Propagation::Orphan => {
                for (dgr, dkey) in &deps {
                    if let Some(mut d) = self.get_raw(dgr, dkey).cloned() {
                        if let Some(refs) = d
                            .pointer_mut("/metadata/ownerReferences")
                            .and_then(Value::as_array_mut)
                        {
                            refs.retain(|r| {
                                r.get("uid").and_then(Value::as_str) != Some(uid.as_str())
                            });
                            if refs.is_empty()
                                && let Some(m) =
                                    d.get_mut("metadata").and_then(Value::as_object_mut)
                            {
                                m.remove("ownerReferences");
                            }
                        }
                        self.put(dgr, dkey, d);
                    }
                }
            }
            Propagation::Foreground if !deps.is_empty() => {
                let m = md_mut(&mut obj);
                let f = m.entry("finalizers").or_insert_with(|| json!([]));
                if let Some(a) = f.as_array_mut()
                    && !a.iter().any(|x| x == "foregroundDeletion")
                {
                    a.push(json!("foregroundDeletion"));
                }
            }
            _ => {}
        }
        let terminating = has_finalizers(gr, &obj);
        if terminating {
            let first = obj.pointer("/metadata/deletionTimestamp").is_none();
            let m = md_mut(&mut obj);
            if first {
                m.insert("deletionTimestamp".into(), json!(now()));
                m.insert("deletionGracePeriodSeconds".into(), json!(0));
            }
            if gr.0.is_empty() && gr.1 == "namespaces" {
                obj["status"] = json!({"phase": "Terminating"});
            }
            // Deleting a terminating object again changes nothing (no new resourceVersion).
            let stored = if Some(&obj) != self.get_raw(gr, key) {
                self.put(gr, key, obj)
            } else {
                obj
            };
            // Only on the first foreground pass: ownership cycles must not recurse forever.
            if policy == Propagation::Foreground && first {
                for (dgr, dkey) in deps {
                    self.delete_key(&dgr, &dkey, Propagation::Foreground);
                }
                self.work.push_back(Work::ForegroundCheck(uid));
            }
            if gr.0.is_empty() && gr.1 == "namespaces" {
                self.delete_namespace_content(&key.1);
                self.work.push_back(Work::NamespaceCheck(key.1.clone()));
            }
            if gr.0 == "apiextensions.k8s.io" {
                self.delete_crd_content(&stored);
                self.work.push_back(Work::CrdCheck(key.1.clone()));
            }
            return Some(stored);
        }
        self.remove(gr, key)
    }

    fn delete_namespace_content(&mut self, ns: &str) {
        let targets: Vec<(Gr, Key)> = self
            .objects
            .iter()
            .flat_map(|(gr, m)| {
                m.keys()
                    .filter(|k| k.0 == ns)
                    .map(move |k| (gr.clone(), k.clone()))
            })
            .collect();
        for (gr, key) in targets {
            self.delete_key(&gr, &key, Propagation::Background);
        }
    }

    fn crd_gr(crd: &Value) -> Gr {
        (
            crd.pointer("/spec/group")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            crd.pointer("/spec/names/plural")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        )
    }

    fn delete_crd_content(&mut self, crd: &Value) {
        let gr = Self::crd_gr(crd);
        let keys: Vec<Key> = self
            .objects
            .get(&gr)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for key in keys {
            self.delete_key(&gr, &key, Propagation::Background);
        }
    }

    /// DELETE of a collection.
    pub fn delete_collection(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        q: &ListQuery,
        opts: &DeleteOptions,
    ) -> Result<Vec<Value>> {
        let page = self.list(
            rt,
            ns,
            &ListQuery {
                limit: 0,
                continue_token: None,
                ..q.clone()
            },
        )?;
        let mut out = vec![];
        for item in page.items {
            let name = md(&item, "name").to_string();
            let namespace = md(&item, "namespace").to_string();
            match self.delete(rt, &namespace, &name, opts) {
                Ok(v) => out.push(v),
                Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Remove a finalizer the server itself manages, deleting the object when none remain.
    fn drop_finalizer(&mut self, gr: &Gr, key: &Key, finalizer: &str) {
        let Some(mut obj) = self.get_raw(gr, key).cloned() else {
            return;
        };
        if let Some(a) = obj
            .pointer_mut("/metadata/finalizers")
            .and_then(Value::as_array_mut)
        {
            a.retain(|f| f != finalizer);
            if a.is_empty()
                && let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut)
            {
                m.remove("finalizers");
            }
        }
        if obj.pointer("/metadata/deletionTimestamp").is_some() && !has_finalizers(gr, &obj) {
            self.put(gr, key, obj);
            self.remove(gr, key);
        } else if Some(&obj) != self.get_raw(gr, key) {
            self.put(gr, key, obj);
        }
    }

    /// Run the garbage collector, namespace and CRD finalizers until nothing is left to do.
    fn settle(&mut self) {
        let mut guard = 0usize;
        while let Some(work) = self.work.pop_front() {
            guard += 1;
            if guard > 1_000_000 {
                self.work.clear();
                return;
            }
            match work {
                Work::OwnerGone(uid) => {
                    if self.uids.contains_key(&uid) {
                        continue;
                    }
                    let deps: Vec<(Gr, Key)> = self
                        .dependents
                        .get(&uid)
                        .map(|s| s.iter().cloned().collect())
                        .unwrap_or_default();
                    for (gr, key) in deps {
                        let Some(d) = self.get_raw(&gr, &key).cloned() else {
                            continue;
                        };
                        let owners = owner_uids(&d);
                        if owners.iter().all(|u| !self.uids.contains_key(u)) {
                            if d.pointer("/metadata/deletionTimestamp").is_none() {
                                self.delete_key(&gr, &key, Propagation::Background);
                            }
                        } else {
                            // Another owner lives: drop the dangling reference.
                            let mut d = d;
                            if let Some(refs) = d
                                .pointer_mut("/metadata/ownerReferences")
                                .and_then(Value::as_array_mut)
                            {
                                refs.retain(|r| {
                                    r.get("uid").and_then(Value::as_str) != Some(uid.as_str())
                                });
                            }
                            self.put(&gr, &key, d);
                        }
                    }
                }
                Work::ForegroundCheck(uid) => {
                    let Some((gr, key)) = self.uids.get(&uid).cloned() else {
                        continue;
                    };
                    let waiting = self
                        .get_raw(&gr, &key)
                        .is_some_and(|o| finalizers(o).iter().any(|f| f == "foregroundDeletion"));
                    let has_deps = self.dependents.get(&uid).is_some_and(|s| !s.is_empty());
                    if waiting && !has_deps {
                        self.drop_finalizer(&gr, &key, "foregroundDeletion");
                    }
                }
                Work::NamespaceCheck(ns) => {
                    let gr: Gr = (String::new(), "namespaces".into());
                    let key: Key = (String::new(), ns.clone());
                    let Some(obj) = self.get_raw(&gr, &key).cloned() else {
                        continue;
                    };
                    if obj.pointer("/metadata/deletionTimestamp").is_none() {
                        continue;
                    }
                    let empty = self.objects.values().all(|m| {
                        m.range((ns.clone(), String::new())..)
                            .next()
                            .is_none_or(|(k, _)| k.0 != ns)
                    });
                    if empty {
                        let mut o = obj;
                        o["spec"] = json!({"finalizers": []});
                        if finalizers(&o).is_empty() {
                            self.put(&gr, &key, o);
                            self.remove(&gr, &key);
                        } else if Some(&o) != self.get_raw(&gr, &key) {
                            self.put(&gr, &key, o);
                        }
                    }
                }
                Work::CrdCheck(name) => {
                    let gr: Gr = (
                        "apiextensions.k8s.io".into(),
                        "customresourcedefinitions".into(),
                    );
                    let key: Key = (String::new(), name);
                    let Some(crd) = self.get_raw(&gr, &key).cloned() else {
                        continue;
                    };
                    if crd.pointer("/metadata/deletionTimestamp").is_none() {
                        continue;
                    }
                    let cr_gr = Self::crd_gr(&crd);
                    if self.objects.get(&cr_gr).is_none_or(BTreeMap::is_empty) {
                        self.drop_finalizer(&gr, &key, CRD_FINALIZER);
                    }
                }
            }
        }
    }

    /// (Re)register the resources a CRD serves.
    fn register_crd(&mut self, crd: &Value) {
        let name = md(crd, "name").to_string();
        if crd.pointer("/metadata/deletionTimestamp").is_some() {
            return;
        }
        self.registry.remove_crd(&name);
        for rt in crd_resources(crd) {
            self.registry.insert(rt);
        }
    }

    /// Issue a ServiceAccount token (TokenRequest).
    pub fn issue_token(&mut self, ns: &str, sa: &str) -> Result<String> {
        let rt = self.rt("", "v1", "serviceaccounts");
        let obj = self.get(&rt, ns, sa)?;
        let token = format!("kage-tc-sa.{}", random_token());
        self.sa_tokens.insert(
            token.clone(),
            SaToken {
                namespace: ns.to_string(),
                name: sa.to_string(),
                uid: md(&obj, "uid").to_string(),
            },
        );
        Ok(token)
    }

    /// Who a bearer token is.
    pub fn authenticate(&self, token: &str) -> Option<UserInfo> {
        if let Some(u) = self.user_tokens.get(token) {
            return Some(u.clone());
        }
        let sa = self.sa_tokens.get(token)?;
        let gr: Gr = (String::new(), "serviceaccounts".into());
        let live = self.get_raw(&gr, &(sa.namespace.clone(), sa.name.clone()))?;
        (md(live, "uid") == sa.uid).then(|| UserInfo::service_account(&sa.namespace, &sa.name))
    }
}

/// For PUT/PATCH: the main resource keeps the old status when `/status` exists; the
/// `/status` endpoint changes only status.
fn split_status(rt: &ResourceType, old: &Value, mut new: Value, sub: &str) -> Value {
    if sub == "status" {
        let mut out = old.clone();
        match new.get("status") {
            Some(s) => out["status"] = s.clone(),
            None => {
                if let Some(o) = out.as_object_mut() {
                    o.remove("status");
                }
            }
        }
        // Keep the writer's managedFields (server-side apply to /status computed them).
        if let Some(mf) = new.pointer("/metadata/managedFields").cloned() {
            md_mut(&mut out).insert("managedFields".into(), mf);
        }
        return out;
    }
    if rt.status_subresource
        && let Some(o) = new.as_object_mut()
    {
        match old.get("status") {
            Some(s) => {
                o.insert("status".into(), s.clone());
            }
            None => {
                o.remove("status");
            }
        }
    }
    new
}

fn encode_continue(rv: u64, key: &Key) -> String {
    let raw = json!({"rv": rv, "ns": key.0, "name": key.1}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(token: &str, floor: u64) -> Result<(u64, Key)> {
    let bad = || Error::BadRequest("continue key is not valid: invalid continue token".into());
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
    if rv < floor {
        return Err(Error::Gone(
            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".into(),
        ));
    }
    Ok((
        rv,
        (
            v.get("ns")
                .and_then(Value::as_str)
                .ok_or_else(bad)?
                .to_string(),
            v.get("name")
                .and_then(Value::as_str)
                .ok_or_else(bad)?
                .to_string(),
        ),
    ))
}

fn crd_causes(crd: &Value) -> Vec<Cause> {
    let mut causes = vec![];
    let s = |p: &str| {
        crd.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let group = s("/spec/group");
    let plural = s("/spec/names/plural");
    let kind = s("/spec/names/kind");
    if group.is_empty() {
        causes.push(Cause::required("spec.group"));
    }
    if plural.is_empty() {
        causes.push(Cause::required("spec.names.plural"));
    }
    if kind.is_empty() {
        causes.push(Cause::required("spec.names.kind"));
    }
    let name = md(crd, "name");
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        causes.push(Cause::invalid(
            "metadata.name",
            name,
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    match s("/spec/scope").as_str() {
        "Namespaced" | "Cluster" => {}
        other => causes.push(Cause::new(
            "FieldValueNotSupported",
            "spec.scope",
            format!("Unsupported value: {other:?}: supported values: \"Cluster\", \"Namespaced\""),
        )),
    }
    let versions = crd.pointer("/spec/versions").and_then(Value::as_array);
    match versions {
        None => causes.push(Cause::required("spec.versions")),
        Some(vs) if vs.is_empty() => causes.push(Cause::required("spec.versions")),
        Some(vs) => {
            let storage = vs
                .iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .count();
            if storage != 1 {
                causes.push(Cause::invalid(
                    "spec.versions",
                    "",
                    "must have exactly one version marked as storage version",
                ));
            }
        }
    }
    causes
}

fn crd_status(crd: &Value, old: Option<&Value>) -> Value {
    let names = crd
        .pointer("/spec/names")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut accepted = names.clone();
    let kind = names
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if accepted.get("singular").is_none() {
        accepted["singular"] = json!(kind.to_lowercase());
    }
    if accepted.get("listKind").is_none() {
        accepted["listKind"] = json!(format!("{kind}List"));
    }
    let stored: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    let since = old
        .and_then(|o| o.pointer("/status/conditions/0/lastTransitionTime"))
        .and_then(Value::as_str)
        .map(String::from)
        .unwrap_or_else(now);
    json!({
        "acceptedNames": accepted,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": since},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": since}
        ],
        "storedVersions": stored,
    })
}

/// The resources a CRD serves, one per served version.
pub fn crd_resources(crd: &Value) -> Vec<ResourceType> {
    let s = |p: &str| {
        crd.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let strs = |p: &str| -> Vec<String> {
        crd.pointer(p)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let kind = s("/spec/names/kind");
    let singular = {
        let x = s("/spec/names/singular");
        if x.is_empty() { kind.to_lowercase() } else { x }
    };
    let mut out = vec![];
    for v in crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        if v.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        out.push(ResourceType {
            group: s("/spec/group"),
            version: v
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            kind: kind.clone(),
            plural: s("/spec/names/plural"),
            singular: singular.clone(),
            namespaced: s("/spec/scope") != "Cluster",
            short_names: strs("/spec/names/shortNames"),
            categories: strs("/spec/names/categories"),
            verbs: ALL_VERBS.iter().map(|s| s.to_string()).collect(),
            status_subresource: v.pointer("/subresources/status").is_some(),
            subresources: vec![],
            crd: Some(md(crd, "name").to_string()),
            schema: v.pointer("/schema/openAPIV3Schema").cloned(),
            printer_columns: v
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> WriteOptions {
        WriteOptions {
            manager: "test".into(),
            dry_run: false,
            api_version: "v1".into(),
        }
    }

    fn store() -> Store {
        Store::new(&StoreConfig { history_limit: 100 })
    }

    fn secrets(s: &Store) -> ResourceType {
        s.registry
            .get("", "v1", "secrets")
            .cloned()
            .expect("secrets")
    }

    fn cm(name: &str) -> Value {
        json!({"metadata": {"name": name}, "data": {"a": "1"}})
    }

    #[test]
    fn create_get_update_noop_and_conflict() {
        let mut s = store();
        let rt = s.registry.get("", "v1", "configmaps").cloned().expect("cm");
        let created = s.create(&rt, "default", cm("x"), &opts()).expect("create");
        // kube-apiserver sets no generation on ConfigMaps (nor Secrets).
        assert_eq!(created.pointer("/metadata/generation"), None);
        let rv1 = md(&created, "resourceVersion").to_string();
        let dup = s.create(&rt, "default", cm("x"), &opts()).unwrap_err();
        assert_eq!(dup.code(), 409);
        // Same content: no bump.
        let same = s
            .update(&rt, "default", "x", created.clone(), "", &opts())
            .expect("noop");
        assert_eq!(md(&same, "resourceVersion"), rv1);
        let mut changed = created.clone();
        changed["data"]["a"] = json!("2");
        let after = s
            .update(&rt, "default", "x", changed.clone(), "", &opts())
            .expect("update");
        assert_ne!(md(&after, "resourceVersion"), rv1);
        assert_eq!(after.pointer("/metadata/generation"), None);
        // A uid from an earlier incarnation is a failed precondition.
        let mut other = after.clone();
        other["metadata"]["uid"] = json!("someone-else");
        let err = s
            .update(&rt, "default", "x", other, "", &opts())
            .unwrap_err();
        assert!(
            err.to_string().contains("Precondition failed: UID"),
            "{err}"
        );
        // Stale resourceVersion.
        let err = s
            .update(&rt, "default", "x", changed, "", &opts())
            .unwrap_err();
        assert_eq!(err.code(), 409);
        assert!(err.to_string().contains("the object has been modified"));
        let missing = s.create(&rt, "nope", cm("y"), &opts()).unwrap_err();
        assert_eq!(missing.to_string(), r#"namespaces "nope" not found"#);
    }

    #[test]
    fn finalizers_hold_deletion() {
        let mut s = store();
        let rt = secrets(&s);
        let obj = json!({"metadata": {"name": "f", "finalizers": ["x/y"]}});
        s.create(&rt, "default", obj, &opts()).expect("create");
        let d = s
            .delete(&rt, "default", "f", &DeleteOptions::default())
            .expect("delete");
        assert!(d.pointer("/metadata/deletionTimestamp").is_some());
        let mut live = s.get(&rt, "default", "f").expect("still there");
        live["metadata"]["finalizers"] = json!([]);
        s.update(&rt, "default", "f", live, "", &opts())
            .expect("remove finalizer");
        assert_eq!(s.get(&rt, "default", "f").unwrap_err().code(), 404);
    }

    #[test]
    fn garbage_collection_policies() {
        let mut s = store();
        let cmrt = s.registry.get("", "v1", "configmaps").cloned().expect("cm");
        let owner = s
            .create(&cmrt, "default", cm("owner"), &opts())
            .expect("owner");
        let oref = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": md(&owner, "uid")}]);
        for n in ["d1", "d2"] {
            let mut d = cm(n);
            d["metadata"]["ownerReferences"] = oref.clone();
            s.create(&cmrt, "default", d, &opts()).expect("dep");
        }
        // Orphan keeps dependents and strips the reference.
        let orphan = DeleteOptions {
            propagation: Propagation::Orphan,
            ..Default::default()
        };
        s.delete(&cmrt, "default", "owner", &orphan)
            .expect("orphan");
        let d1 = s.get(&cmrt, "default", "d1").expect("kept");
        assert!(d1.pointer("/metadata/ownerReferences").is_none());

        let owner = s
            .create(&cmrt, "default", cm("owner2"), &opts())
            .expect("owner2");
        let mut d = cm("d3");
        d["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner2", "uid": md(&owner, "uid")}]);
        s.create(&cmrt, "default", d, &opts()).expect("dep");
        s.delete(&cmrt, "default", "owner2", &DeleteOptions::default())
            .expect("bg");
        assert_eq!(s.get(&cmrt, "default", "d3").unwrap_err().code(), 404);
    }

    #[test]
    fn namespace_deletion_and_terminating() {
        let mut s = store();
        let nsrt = s.registry.get("", "v1", "namespaces").cloned().expect("ns");
        let rt = secrets(&s);
        s.create(&nsrt, "", json!({"metadata": {"name": "tmp"}}), &opts())
            .expect("ns");
        s.create(
            &rt,
            "tmp",
            json!({"metadata": {"name": "held", "finalizers": ["a/b"]}}),
            &opts(),
        )
        .expect("s");
        let ns = s
            .delete(&nsrt, "", "tmp", &DeleteOptions::default())
            .expect("delete ns");
        assert_eq!(ns.pointer("/status/phase"), Some(&json!("Terminating")));
        let err = s
            .create(&rt, "tmp", json!({"metadata": {"name": "new"}}), &opts())
            .unwrap_err();
        assert_eq!(err.code(), 403);
        let mut held = s.get(&rt, "tmp", "held").expect("held");
        held["metadata"]["finalizers"] = json!([]);
        s.update(&rt, "tmp", "held", held, "", &opts())
            .expect("release");
        assert_eq!(s.get(&nsrt, "", "tmp").unwrap_err().code(), 404);
    }

    #[test]
    fn watch_history_and_gone() {
        let mut s = Store::new(&StoreConfig { history_limit: 3 });
        let rt = secrets(&s);
        let start = s.resource_version();
        for i in 0..5 {
            s.create(
                &rt,
                "default",
                json!({"metadata": {"name": format!("s{i}")}}),
                &opts(),
            )
            .expect("create");
        }
        assert_eq!(s.watch(&rt, None, Some(start)).unwrap_err().code(), 410);
        let (replay, _rx, _) = s
            .watch(&rt, None, Some(s.resource_version() - 2))
            .expect("recent");
        assert_eq!(replay.len(), 2);
        let (all, _rx, _) = s.watch(&rt, Some("default"), None).expect("initial");
        assert_eq!(all.len(), 5);
    }

    #[test]
    fn stored_objects_serialize_with_sorted_keys() {
        // Guards against serde_json's `preserve_order` being enabled anywhere in the build:
        // the real server writes custom resources with sorted keys.
        let mut s = store();
        let rt = s.registry.get("", "v1", "configmaps").cloned().expect("cm");
        let obj =
            serde_json::from_str::<Value>(r#"{"metadata":{"name":"k"},"data":{"z":"1","a":"2"}}"#)
                .expect("json");
        let stored = s.create(&rt, "default", obj, &opts()).expect("create");
        let text = stored["data"].to_string();
        assert_eq!(text, r#"{"a":"2","z":"1"}"#);
    }

    #[test]
    fn status_apply_tracks_and_removes_its_fields() {
        let mut s = store();
        let crdrt = s
            .registry
            .get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            .cloned()
            .expect("crd");
        let crd = json!({"metadata": {"name": "things.example.com"}, "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"kind": "Thing", "plural": "things"},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}});
        s.create(&crdrt, "", crd, &opts()).expect("crd");
        let rt = s
            .registry
            .get("example.com", "v1", "things")
            .cloned()
            .expect("rt");
        s.create(
            &rt,
            "default",
            json!({"metadata": {"name": "t"}, "spec": {}}),
            &opts(),
        )
        .expect("cr");
        let ctl = WriteOptions {
            manager: "ctl".into(),
            ..opts()
        };
        let apply =
            |st: Value| json!({"apiVersion": "example.com/v1", "kind": "Thing", "status": st});
        let a = s
            .patch(
                &rt,
                "default",
                "t",
                PatchType::Apply,
                &apply(json!({"a": 1, "b": 2})),
                "status",
                true,
                &ctl,
            )
            .expect("status apply");
        assert_eq!(a["status"], json!({"a": 1, "b": 2}));
        let entry = ssa::read_entries(&a)
            .into_iter()
            .find(|e| e.manager == "ctl")
            .expect("entry");
        assert_eq!(
            (entry.operation.as_str(), entry.subresource.as_str()),
            ("Apply", "status")
        );
        let b = s
            .patch(
                &rt,
                "default",
                "t",
                PatchType::Apply,
                &apply(json!({"a": 1})),
                "status",
                true,
                &ctl,
            )
            .expect("drop b");
        assert_eq!(b["status"], json!({"a": 1}));
        let again = s
            .patch(
                &rt,
                "default",
                "t",
                PatchType::Apply,
                &apply(json!({"a": 1})),
                "status",
                true,
                &ctl,
            )
            .expect("no-op");
        assert_eq!(md(&again, "resourceVersion"), md(&b, "resourceVersion"));
    }

    #[test]
    fn leases_allow_create_on_update() {
        let mut s = store();
        let rt = s
            .registry
            .get("coordination.k8s.io", "v1", "leases")
            .cloned()
            .expect("leases");
        let l = s
            .update(
                &rt,
                "default",
                "leader",
                json!({"metadata": {"name": "leader"}, "spec": {"holderIdentity": "a"}}),
                "",
                &opts(),
            )
            .expect("created by PUT");
        assert_eq!(l["spec"]["holderIdentity"], "a");
        let cm = s.registry.get("", "v1", "configmaps").cloned().expect("cm");
        let err = s
            .update(
                &cm,
                "default",
                "nope",
                json!({"metadata": {"name": "nope"}}),
                "",
                &opts(),
            )
            .unwrap_err();
        assert_eq!(err.code(), 404);
    }

    #[test]
    fn paging() {
        let mut s = store();
        let rt = secrets(&s);
        for i in 0..5 {
            s.create(
                &rt,
                "default",
                json!({"metadata": {"name": format!("s{i}")}}),
                &opts(),
            )
            .expect("create");
        }
        let mut q = ListQuery {
            limit: 2,
            ..Default::default()
        };
        let mut names = vec![];
        loop {
            let p = s.list(&rt, Some("default"), &q).expect("page");
            names.extend(p.items.iter().map(|i| md(i, "name").to_string()));
            match p.continue_token {
                Some(t) => q.continue_token = Some(t),
                None => break,
            }
        }
        assert_eq!(names, ["s0", "s1", "s2", "s3", "s4"]);
        // Later pages keep the first page's resourceVersion, even across writes.
        let first = s
            .list(
                &rt,
                Some("default"),
                &ListQuery {
                    limit: 2,
                    ..Default::default()
                },
            )
            .expect("p1");
        s.create(&rt, "default", json!({"metadata": {"name": "zz"}}), &opts())
            .expect("write");
        let q2 = ListQuery {
            limit: 2,
            continue_token: first.continue_token.clone(),
            ..Default::default()
        };
        let second = s.list(&rt, Some("default"), &q2).expect("p2");
        assert_eq!(second.resource_version, first.resource_version);
        assert!(s.resource_version() > first.resource_version);
    }

    #[test]
    fn crd_registration_and_status_subresource() {
        let mut s = store();
        let crdrt = s
            .registry
            .get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            .cloned()
            .expect("crd");
        let crd = json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}});
        let c = s.create(&crdrt, "", crd, &opts()).expect("crd");
        assert_eq!(
            c.pointer("/status/conditions/1/type"),
            Some(&json!("Established"))
        );
        let rt = s
            .registry
            .get("example.com", "v1", "widgets")
            .cloned()
            .expect("registered");
        assert!(rt.status_subresource);
        let w = s
            .create(
                &rt,
                "default",
                json!({"metadata": {"name": "w"}, "spec": {"a": 1}, "status": {"x": 1}}),
                &opts(),
            )
            .expect("cr");
        assert!(w.get("status").is_none());
        let mut upd = w.clone();
        upd["status"] = json!({"ready": true});
        let u = s
            .update(&rt, "default", "w", upd.clone(), "", &opts())
            .expect("main");
        assert!(u.get("status").is_none());
        assert_eq!(md(&u, "resourceVersion"), md(&w, "resourceVersion"));
        let st = s
            .update(&rt, "default", "w", upd, "status", &opts())
            .expect("status");
        assert_eq!(st["status"]["ready"], true);
        assert_eq!(st.pointer("/metadata/generation"), Some(&json!(1)));
        s.delete(&crdrt, "", "widgets.example.com", &DeleteOptions::default())
            .expect("delete crd");
        assert!(s.registry.get("example.com", "v1", "widgets").is_none());
        assert!(s.all_of("example.com", "widgets").is_empty());
    }
}
