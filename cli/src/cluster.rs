//! Cluster access for the cluster commands, behind the small [`ClusterAccess`] trait (house-style
//! rule 7, like sealed-secrets' `ClientConfig`): the commands never see kube types, and the
//! kube-backed [`KubeCluster`] owns a current-thread tokio runtime created only when a cluster
//! command runs, so offline commands stay fast.
//!
//! What the controller publishes (docs/controller.md): ConfigMap `kage-public-keys` (`keys.json`,
//! `recipients.txt`) in its namespace; key Secrets `kage-key-<kid>` labelled `kage.dev/key`;
//! rotation by annotating the ConfigMap with `kage.dev/rotate=<token>`; the HTTP API through the
//! service proxy `/api/v1/namespaces/<ns>/services/kage-controller:http/proxy/…`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::exit::{Exit, UserError, user};

/// The ConfigMap with the public keys.
pub const PUBLIC_KEYS_CONFIGMAP: &str = "kage-public-keys";
/// The controller's Service and its API port name.
pub const SERVICE: &str = "kage-controller:http";
pub use kage_core::keysecret::KEY_LABEL;
/// Annotation requesting a rotation.
pub const ROTATE_ANNOTATION: &str = "kage.dev/rotate";

/// One key as `GET /v1/keys` and `keys.json` list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    /// Key id.
    pub kid: String,
    /// `age1…`.
    pub recipient: String,
    /// RFC 3339 creation time.
    #[serde(default)]
    pub created: String,
    /// `active` or `retired`.
    #[serde(default = "active")]
    pub status: String,
    /// The newest active key.
    #[serde(default)]
    pub current: bool,
}

fn active() -> String {
    "active".into()
}

/// `{"keys": […]}`.
#[derive(Debug, Deserialize)]
pub struct KeysDoc {
    /// Newest first.
    pub keys: Vec<PublicKey>,
}

/// A key Secret of the controller's key ring (admin only: holds the private key).
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeySecret {
    /// Secret name (`kage-key-<kid>`).
    pub name: String,
    /// Labels (`kage.dev/key: active|retired`, …).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations (`kage.dev/kid`, `kage.dev/created`, `kage.dev/recipient`, …).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The identity file (`key.txt`).
    pub key_txt: String,
}

impl KeySecret {
    /// `kage.dev/kid`, else the name's suffix.
    pub fn kid(&self) -> String {
        self.annotations
            .get("kage.dev/kid")
            .cloned()
            .unwrap_or_else(|| {
                self.name
                    .strip_prefix("kage-key-")
                    .unwrap_or(&self.name)
                    .to_string()
            })
    }
    /// `active`, `retired` or what the label says.
    pub fn status(&self) -> &str {
        self.labels.get(KEY_LABEL).map(String::as_str).unwrap_or("")
    }
}

impl Drop for KeySecret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key_txt);
    }
}

/// An AgeSecret in the cluster and the kids its status names.
#[derive(Debug, Clone)]
pub struct AgeSecretUsage {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `status.keyIds`.
    pub kids: Vec<String>,
}

/// An answer of the controller's HTTP API.
#[derive(Debug)]
pub struct HttpAnswer {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Vec<u8>,
}

/// What created a key Secret on restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// Newly created.
    Created,
    /// Already there with the same key.
    Unchanged,
}

/// Cluster access as the commands need it.
pub trait ClusterAccess {
    /// The controller's namespace.
    fn namespace(&self) -> &str;
    /// The published keys (ConfigMap `keys.json`, else `recipients.txt`; or `/v1/keys` with a
    /// direct controller URL), newest first.
    fn public_keys(&self) -> Result<Vec<PublicKey>>;
    /// Annotates the public-keys ConfigMap with `kage.dev/rotate=<token>`.
    fn request_rotation(&self, token: &str) -> Result<()>;
    /// Every key Secret (admin).
    fn key_secrets(&self) -> Result<Vec<KeySecret>>;
    /// Sets `kage.dev/key` on a key Secret.
    fn set_key_status(&self, secret: &str, status: &str) -> Result<()>;
    /// Creates a key Secret unless one with the same key exists.
    fn create_key_secret(&self, key: &KeySecret) -> Result<Created>;
    /// Every AgeSecret in every namespace with `status.keyIds`.
    fn agesecret_usage(&self) -> Result<Vec<AgeSecretUsage>>;
    /// POSTs to the controller's HTTP API (`path` like `/v1/verify`).
    fn controller_post(&self, path: &str, body: Vec<u8>) -> Result<HttpAnswer>;
}

/// Where the cluster is (`ClusterArgs` resolved).
#[derive(Debug, Clone, Default)]
pub struct Location {
    /// kubeconfig context.
    pub context: Option<String>,
    /// The controller's namespace.
    pub namespace: String,
    /// The controller's HTTP API directly.
    pub controller_url: Option<String>,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// A cluster-access failure: exit code 7.
pub fn cluster_err(message: impl Into<String>) -> UserError {
    user(message).exit(Exit::Cluster)
}

/// The kube-backed implementation.
pub struct KubeCluster {
    rt: tokio::runtime::Runtime,
    client: Option<kube::Client>,
    direct: Option<kube::Client>,
    loc: Location,
}

impl KubeCluster {
    /// Reads the kubeconfig (`KUBECONFIG`, else `~/.kube/config`; `--context`) and builds the
    /// clients. With `--controller-url` and no kubeconfig, only the HTTP API is reachable.
    pub fn connect(loc: Location) -> Result<KubeCluster> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let client = rt.block_on(kube_client(&loc));
        let direct = match &loc.controller_url {
            Some(url) => {
                let uri: http::Uri = url
                    .parse()
                    .map_err(|e| user(format!("--controller-url {url}: {e}")).exit(Exit::Usage))?;
                if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                    return Err(user(format!("--controller-url {url}: not an http(s) URL"))
                        .hint("e.g. --controller-url http://127.0.0.1:8080 (a port-forward)")
                        .exit(Exit::Usage)
                        .into());
                }
                let mut cfg = kube::Config::new(uri);
                cfg.read_timeout = Some(loc.timeout);
                cfg.connect_timeout = Some(loc.timeout);
                // The client spawns its request buffer's worker: only inside the runtime.
                let _in_runtime = rt.enter();
                Some(kube::Client::try_from(cfg).context("building the controller client")?)
            }
            None => None,
        };
        let client = match (client, &direct) {
            (Ok(c), _) => Some(c),
            (Err(_), Some(_)) => None,
            (Err(e), None) => return Err(e),
        };
        Ok(KubeCluster {
            rt,
            client,
            direct,
            loc,
        })
    }

    fn client(&self) -> Result<&kube::Client> {
        self.client.as_ref().ok_or_else(|| {
            cluster_err("no kubeconfig: this command needs the Kubernetes API")
                .hint("set KUBECONFIG or create ~/.kube/config (`--controller-url` reaches only the controller's HTTP API)")
                .into()
        })
    }

    fn run<T>(&self, what: &str, fut: impl Future<Output = kube::Result<T>>) -> Result<T> {
        match self
            .rt
            .block_on(async { tokio::time::timeout(self.loc.timeout, fut).await })
        {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.explain(what, e)),
            Err(_) => Err(cluster_err(format!(
                "{what}: timed out after {}s",
                self.loc.timeout.as_secs()
            ))
            .hint("check the cluster is reachable, or raise --timeout")
            .into()),
        }
    }

    fn explain(&self, what: &str, e: kube::Error) -> anyhow::Error {
        match e {
            kube::Error::Api(s) if s.code == 403 => {
                cluster_err(format!("{what}: forbidden: {}", s.message))
                    .hint(format!(
                        "{what} needs RBAC in namespace {}: {}",
                        self.loc.namespace,
                        rbac_hint(what)
                    ))
                    .into()
            }
            kube::Error::Api(s) if s.code == 401 => {
                cluster_err(format!("{what}: unauthorized: {}", s.message))
                    .hint("the kubeconfig's credentials were refused; log in again")
                    .into()
            }
            kube::Error::Api(s) => {
                cluster_err(format!("{what}: {} ({})", s.message, s.code)).into()
            }
            other => cluster_err(format!("{what}: {other}"))
                .hint("check the kubeconfig's server is reachable (`kubectl cluster-info`)")
                .into(),
        }
    }

    fn configmaps(&self) -> Result<kube::Api<k8s_openapi::api::core::v1::ConfigMap>> {
        Ok(kube::Api::namespaced(
            self.client()?.clone(),
            &self.loc.namespace,
        ))
    }

    fn secrets(&self) -> Result<kube::Api<k8s_openapi::api::core::v1::Secret>> {
        Ok(kube::Api::namespaced(
            self.client()?.clone(),
            &self.loc.namespace,
        ))
    }

    fn not_found_hint(&self) -> String {
        format!(
            "is kage-controller installed in namespace {}? pass --controller-namespace NS",
            self.loc.namespace
        )
    }
}

fn rbac_hint(what: &str) -> &'static str {
    if what.contains("public keys") {
        "get on configmaps/kage-public-keys (the Role kage-public-keys-reader)"
    } else if what.contains("rotation") {
        "patch on configmaps/kage-public-keys (the Role kage-key-admin)"
    } else if what.contains("key Secret") {
        "get, list, patch and create on secrets (the Role kage-key-admin)"
    } else if what.contains("AgeSecrets") {
        "list on agesecrets.kage.dev in all namespaces (a ClusterRole)"
    } else if what.contains("controller") {
        "create on services/proxy for kage-controller (the Role kage-public-keys-reader)"
    } else {
        "ask a cluster admin"
    }
}

/// Whether a kubeconfig file is there to read (`KUBECONFIG`, else `~/.kube/config`).
pub fn have_kubeconfig() -> bool {
    std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty())
        || home_kubeconfig().is_some_and(|p| p.exists())
}

async fn kube_client(loc: &Location) -> Result<kube::Client> {
    if !have_kubeconfig() {
        return Err(cluster_err("no kubeconfig found")
            .hint("set KUBECONFIG or create ~/.kube/config (kubectl uses the same)")
            .into());
    }
    let opts = kube::config::KubeConfigOptions {
        context: loc.context.clone(),
        ..Default::default()
    };
    let mut cfg = kube::Config::from_kubeconfig(&opts).await.map_err(|e| {
        cluster_err(format!("reading the kubeconfig: {e}"))
            .hint("check KUBECONFIG and --context (`kubectl config get-contexts`)")
    })?;
    cfg.read_timeout = Some(loc.timeout);
    cfg.connect_timeout = Some(loc.timeout);
    kube::Client::try_from(cfg).context("building the Kubernetes client")
}

fn home_kubeconfig() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube/config"))
}

/// Parses `recipients.txt` (`# kid: K created: T` comment lines, then `age1…`).
pub fn parse_recipients_txt(text: &str) -> Vec<PublicKey> {
    let mut out = Vec::new();
    let mut created = String::new();
    for line in text.lines().map(str::trim) {
        if let Some(c) = line.strip_prefix("# kid:") {
            created = c
                .split_once("created:")
                .map(|(_, t)| t.trim().to_string())
                .unwrap_or_default();
        } else if line.starts_with("age1") {
            out.push(PublicKey {
                kid: kage_core::keys::Kid::of_recipient_str(line)
                    .as_str()
                    .to_string(),
                recipient: line.to_string(),
                created: std::mem::take(&mut created),
                status: "active".into(),
                current: out.is_empty(),
            });
        }
    }
    out
}

impl KubeCluster {
    /// The ring authentication key of the cluster's key ring, created when the controller has
    /// not made one yet (a restore into a new cluster).
    fn ring_auth_key(&self) -> Result<kage_core::keysecret::RingAuthKey> {
        use k8s_openapi::ByteString;
        use k8s_openapi::api::core::v1::Secret;
        use kage_core::keysecret::{AUTH_DATA, AUTH_SECRET, RingAuthKey};
        let api = self.secrets()?;
        let read = |s: Secret| -> Result<RingAuthKey> {
            s.data
                .as_ref()
                .and_then(|d| d.get(AUTH_DATA))
                .and_then(|b| RingAuthKey::from_bytes(&b.0))
                .ok_or_else(|| {
                    cluster_err(format!(
                        "Secret {}/{AUTH_SECRET} has no 32-byte {AUTH_DATA}",
                        self.loc.namespace
                    ))
                    .hint("restore it from a backup of the namespace, or delete it and every key Secret's kage.dev/key-auth annotation before restoring")
                    .into()
                })
        };
        if let Some(s) = self.run(
            "reading the ring authentication key",
            api.get_opt(AUTH_SECRET),
        )? {
            return read(s);
        }
        let key = RingAuthKey::generate(&mut rand::rngs::OsRng);
        let mut secret = Secret {
            type_: Some("Opaque".into()),
            data: Some(BTreeMap::from([(
                AUTH_DATA.to_string(),
                ByteString(key.as_bytes().to_vec()),
            )])),
            ..Default::default()
        };
        secret.metadata.name = Some(AUTH_SECRET.into());
        secret.metadata.namespace = Some(self.loc.namespace.clone());
        secret.metadata.labels = Some(BTreeMap::from([(
            "app.kubernetes.io/part-of".to_string(),
            "kage".to_string(),
        )]));
        let pp = kube::api::PostParams::default();
        let fut = api.create(&pp, &secret);
        match self
            .rt
            .block_on(async { tokio::time::timeout(self.loc.timeout, fut).await })
        {
            Ok(Ok(_)) => Ok(key),
            // The controller was first: use its key.
            Ok(Err(kube::Error::Api(s))) if s.code == 409 => {
                read(self.run("reading the ring authentication key", api.get(AUTH_SECRET))?)
            }
            Ok(Err(e)) => Err(self.explain("creating the ring authentication key", e)),
            Err(_) => Err(cluster_err("creating the ring authentication key: timed out").into()),
        }
    }
}

impl ClusterAccess for KubeCluster {
    fn namespace(&self) -> &str {
        &self.loc.namespace
    }

    fn public_keys(&self) -> Result<Vec<PublicKey>> {
        if let (None, Some(direct)) = (&self.client, &self.direct) {
            let req = http::Request::get("/v1/keys")
                .body(Vec::new())
                .context("building the request")?;
            let text = self.run("reading the controller's keys", direct.request_text(req))?;
            let doc: KeysDoc = serde_json::from_str(&text)
                .map_err(|e| cluster_err(format!("GET /v1/keys: unexpected answer: {e}")))?;
            return Ok(doc.keys);
        }
        let api = self.configmaps()?;
        let cm = self
            .run(
                "reading the public keys",
                api.get_opt(PUBLIC_KEYS_CONFIGMAP),
            )?
            .ok_or_else(|| {
                cluster_err(format!(
                    "ConfigMap {PUBLIC_KEYS_CONFIGMAP} not found in namespace {}",
                    self.loc.namespace
                ))
                .hint(self.not_found_hint())
            })?;
        let data = cm.data.unwrap_or_default();
        if let Some(json) = data.get("keys.json") {
            let doc: KeysDoc = serde_json::from_str(json)
                .map_err(|e| cluster_err(format!("{PUBLIC_KEYS_CONFIGMAP}: keys.json: {e}")))?;
            return Ok(doc.keys);
        }
        if let Some(txt) = data.get("recipients.txt") {
            return Ok(parse_recipients_txt(txt));
        }
        Err(cluster_err(format!(
            "ConfigMap {PUBLIC_KEYS_CONFIGMAP} has neither keys.json nor recipients.txt"
        ))
        .hint("the controller has not published a key yet; check its logs")
        .into())
    }

    fn request_rotation(&self, token: &str) -> Result<()> {
        let api = self.configmaps()?;
        let patch = serde_json::json!({"metadata": {"annotations": {ROTATE_ANNOTATION: token}}});
        let pp = kube::api::PatchParams::default();
        let merge = kube::api::Patch::Merge(&patch);
        let fut = api.patch(PUBLIC_KEYS_CONFIGMAP, &pp, &merge);
        match self
            .rt
            .block_on(async { tokio::time::timeout(self.loc.timeout, fut).await })
        {
            Ok(Err(kube::Error::Api(s))) if s.code == 404 => Err(cluster_err(format!(
                "ConfigMap {PUBLIC_KEYS_CONFIGMAP} not found in namespace {}",
                self.loc.namespace
            ))
            .hint(self.not_found_hint())
            .into()),
            Ok(r) => r
                .map(|_| ())
                .map_err(|e| self.explain("requesting a rotation", e)),
            Err(_) => Err(cluster_err("requesting a rotation: timed out").into()),
        }
    }

    fn key_secrets(&self) -> Result<Vec<KeySecret>> {
        let api = self.secrets()?;
        let lp = kube::api::ListParams::default().labels(KEY_LABEL);
        let list = self.run("listing the key Secrets", api.list(&lp))?;
        let mut out = Vec::new();
        for s in list.items {
            let name = s.metadata.name.clone().unwrap_or_default();
            let Some(bytes) = s.data.as_ref().and_then(|d| d.get("key.txt")) else {
                continue;
            };
            let key_txt = String::from_utf8(bytes.0.clone())
                .map_err(|_| cluster_err(format!("Secret {name}: key.txt is not text")))?;
            out.push(KeySecret {
                name,
                labels: s.metadata.labels.clone().unwrap_or_default(),
                annotations: s.metadata.annotations.clone().unwrap_or_default(),
                key_txt,
            });
        }
        Ok(out)
    }

    fn set_key_status(&self, secret: &str, status: &str) -> Result<()> {
        let api = self.secrets()?;
        let patch = serde_json::json!({"metadata": {"labels": {KEY_LABEL: status}}});
        let pp = kube::api::PatchParams::default();
        self.run(
            "relabelling the key Secret",
            api.patch(secret, &pp, &kube::api::Patch::Merge(&patch)),
        )?;
        Ok(())
    }

    fn create_key_secret(&self, key: &KeySecret) -> Result<Created> {
        use k8s_openapi::ByteString;
        use k8s_openapi::api::core::v1::Secret;
        use kage_core::keysecret::AUTH_ANNOTATION;
        let api = self.secrets()?;
        // The controller trusts only key Secrets authenticated under its ring's key
        // (docs/security.md, "Key injection"): authenticate this one for this cluster, whatever
        // the backup carried from the cluster it came from.
        let identities = kage_core::keys::parse_identity_file(&key.key_txt)
            .map_err(|e| user(format!("key {}: {e}", key.kid())))?;
        let auth_tag =
            self.ring_auth_key()?
                .authenticate(&self.loc.namespace, &key.name, &identities);
        if let Some(existing) = self.run("reading a key Secret", api.get_opt(&key.name))? {
            let same = existing
                .data
                .as_ref()
                .and_then(|d| d.get("key.txt"))
                .is_some_and(|b| b.0 == key.key_txt.as_bytes());
            if same {
                let tagged = existing
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(AUTH_ANNOTATION))
                    .is_some_and(|t| *t == auth_tag);
                if !tagged {
                    let patch = serde_json::json!({"metadata": {"annotations": {AUTH_ANNOTATION: auth_tag}}});
                    self.run(
                        "authenticating a key Secret",
                        api.patch(
                            &key.name,
                            &kube::api::PatchParams::default(),
                            &kube::api::Patch::Merge(&patch),
                        ),
                    )?;
                }
                return Ok(Created::Unchanged);
            }
            return Err(user(format!(
                "Secret {}/{} exists with a different key",
                self.loc.namespace, key.name
            ))
            .hint("delete it first if it is really to be replaced")
            .into());
        }
        let mut secret = Secret {
            type_: Some("Opaque".into()),
            ..Default::default()
        };
        secret.metadata.name = Some(key.name.clone());
        secret.metadata.namespace = Some(self.loc.namespace.clone());
        secret.metadata.labels = Some(key.labels.clone());
        let mut annotations = key.annotations.clone();
        annotations.insert(AUTH_ANNOTATION.into(), auth_tag);
        secret.metadata.annotations = Some(annotations);
        secret.data = Some(BTreeMap::from([(
            "key.txt".to_string(),
            ByteString(key.key_txt.as_bytes().to_vec()),
        )]));
        let pp = kube::api::PostParams::default();
        self.run("creating a key Secret", api.create(&pp, &secret))?;
        Ok(Created::Created)
    }

    fn agesecret_usage(&self) -> Result<Vec<AgeSecretUsage>> {
        use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
        let gvk = GroupVersionKind::gvk("kage.dev", "v1alpha1", "AgeSecret");
        let ar = ApiResource::from_gvk_with_plural(&gvk, "agesecrets");
        let api: kube::Api<DynamicObject> = kube::Api::all_with(self.client()?.clone(), &ar);
        let lp = kube::api::ListParams::default();
        let fut = api.list(&lp);
        let list = match self
            .rt
            .block_on(async { tokio::time::timeout(self.loc.timeout, fut).await })
        {
            Ok(Err(kube::Error::Api(s))) if s.code == 404 => {
                return Err(cluster_err(
                    "the AgeSecret resource (agesecrets.kage.dev) is not installed",
                )
                .hint("install the CRD from deploy/crds/")
                .into());
            }
            Ok(r) => r.map_err(|e| self.explain("listing AgeSecrets", e))?,
            Err(_) => return Err(cluster_err("listing AgeSecrets: timed out").into()),
        };
        let mut out = Vec::new();
        for o in list.items {
            let kids = o
                .data
                .pointer("/status/keyIds")
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|k| k.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            out.push(AgeSecretUsage {
                namespace: o.metadata.namespace.unwrap_or_default(),
                name: o.metadata.name.unwrap_or_default(),
                kids,
            });
        }
        out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Ok(out)
    }

    fn controller_post(&self, path: &str, body: Vec<u8>) -> Result<HttpAnswer> {
        use http_body_util::BodyExt;
        let (client, uri) = match &self.direct {
            Some(d) => (d, path.to_string()),
            None => (
                self.client()?,
                format!(
                    "/api/v1/namespaces/{}/services/{SERVICE}/proxy{path}",
                    self.loc.namespace
                ),
            ),
        };
        let req = http::Request::post(uri)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(kube::client::Body::from(body))
            .context("building the request")?;
        let what = format!("calling the controller (POST {path})");
        let fut = async {
            let resp = client.send(req).await?;
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| kube::Error::Service(Box::new(e)))?
                .to_bytes()
                .to_vec();
            Ok(HttpAnswer { status, body })
        };
        let answer = self.run(&what, fut)?;
        match answer.status {
            403 => Err(cluster_err(format!("{what}: forbidden"))
                .hint(format!(
                    "needs create on services/proxy in namespace {} (the Role kage-public-keys-reader)",
                    self.loc.namespace
                ))
                .into()),
            404 | 503 if self.direct.is_none() => Err(cluster_err(format!(
                "{what}: controller not reachable ({}): {}",
                answer.status,
                error_text(&answer.body)
            ))
            .hint(self.not_found_hint())
            .into()),
            429 => Err(cluster_err(format!("{what}: rate limited by the controller"))
                .hint("retry in a moment")
                .into()),
            _ => Ok(answer),
        }
    }
}

/// The `error` or `message` field of a JSON error body, else the text.
pub fn error_text(body: &[u8]) -> String {
    let v: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    v.as_ref()
        .and_then(|v| v.get("error").or_else(|| v.get("message")))
        .and_then(|m| m.as_str())
        .map(String::from)
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string())
}

/// Resolves `ClusterArgs`; an environment's `cluster:` in .kage.yaml fills what the flags leave
/// out.
pub fn location(
    args: &crate::args::ClusterArgs,
    env: Option<&crate::config::ClusterRef>,
) -> Location {
    Location {
        context: args
            .context
            .clone()
            .or_else(|| env.and_then(|e| e.context.clone())),
        namespace: args
            .controller_namespace
            .clone()
            .or_else(|| env.and_then(|e| e.namespace.clone()))
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string()),
        controller_url: args
            .controller_url
            .as_ref()
            .map(|u| u.trim_end_matches('/').to_string()),
        timeout: Duration::from_secs(args.timeout.max(1)),
    }
}

/// The controller's namespace when neither a flag nor .kage.yaml names one.
pub const DEFAULT_NAMESPACE: &str = "kage-system";

/// Connects with the kube-backed implementation.
pub fn connect(args: &crate::args::ClusterArgs) -> Result<KubeCluster> {
    KubeCluster::connect(location(args, None))
}

/// Files grouped by the environment whose `cluster:` applies to them, in the order given: `env`
/// (the --env flag) for all, else the environment of each file's path (none when no
/// environment's paths match or there is no .kage.yaml).
pub fn files_by_env<'c>(
    config: Option<&'c crate::config::Config>,
    env: Option<&str>,
    files: &[std::path::PathBuf],
) -> Result<
    Vec<(
        Option<&'c crate::config::Environment>,
        Vec<std::path::PathBuf>,
    )>,
> {
    let mut groups: Vec<(Option<&crate::config::Environment>, Vec<std::path::PathBuf>)> =
        Vec::new();
    for file in files {
        let e = match (config, env) {
            (Some(c), Some(n)) => Some(c.env(n)?),
            (Some(c), None) => c.env_for_path(file).ok(),
            _ => None,
        };
        let name = e.map(|e| e.name.as_str());
        match groups
            .iter_mut()
            .find(|(g, _)| g.map(|g| g.name.as_str()) == name)
        {
            Some((_, fs)) => fs.push(file.clone()),
            None => groups.push((e, vec![file.clone()])),
        }
    }
    Ok(groups)
}

/// Connects to the cluster of environment `env` (its `cluster:` in .kage.yaml, overridden by
/// the flags); `None` when there is no such environment or configuration.
pub fn connect_env(
    args: &crate::args::ClusterArgs,
    env: Option<&crate::config::Environment>,
) -> Result<KubeCluster> {
    KubeCluster::connect(location(args, env.and_then(|e| e.cluster.as_ref())))
}

/// The active keys, newest first, as recipients (the first is the current key).
pub fn active_recipients(keys: &[PublicKey]) -> Result<Vec<kage_core::keys::Recipient>> {
    let mut out = Vec::new();
    for k in keys.iter().filter(|k| k.status == "active") {
        out.push(
            k.recipient
                .parse::<kage_core::keys::Recipient>()
                .map_err(|e| cluster_err(format!("published key {}: {e}", k.kid)))?,
        );
    }
    if out.is_empty() {
        return Err(cluster_err("the cluster publishes no active key")
            .hint("the controller generates one at start; check its logs")
            .into());
    }
    Ok(out)
}
