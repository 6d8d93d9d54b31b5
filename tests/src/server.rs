//! The HTTP layer: one axum fallback handler that parses Kubernetes paths, authenticates,
//! authorizes, applies faults and calls the store. Also discovery, OpenAPI stubs, the
//! service proxy, watch streaming and the `/_testcluster` admin API.

use crate::error::{Error, Result};
use crate::faults::{FaultRequest, Faults};
use crate::rbac::{self, Attributes, Policy, UserInfo};
use crate::registry::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{
    DeleteOptions, Event, EventType, ListQuery, PatchType, Propagation, Store, WriteOptions,
};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;

/// Requests larger than this are refused (etcd's default value limit is about this size).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Annotation on a Service naming the proxy upstream (`host:port`).
pub const UPSTREAM_ANNOTATION: &str = "testcluster.kage.dev/upstream";

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Interval of BOOKMARK events on watches that ask for them.
    pub bookmark_interval: Duration,
    /// The admin bearer token.
    pub admin_token: String,
    /// Requests without credentials act as the admin (plain-HTTP mode, like the old
    /// insecure port: client-go sends no bearer token over plain HTTP).
    pub anonymous_is_admin: bool,
    /// Print `METHOD URI -> STATUS` for every request on stderr.
    pub log_requests: bool,
}

/// Shared server state.
pub struct AppState {
    store: Mutex<Store>,
    /// Fault injection.
    pub faults: Faults,
    /// Settings.
    pub config: ServerConfig,
    proxy: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<Bytes>,
    >,
}

impl AppState {
    /// New state around a store.
    pub fn new(store: Store, config: ServerConfig) -> Arc<Self> {
        let proxy =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        let state = Arc::new(AppState {
            store: Mutex::new(store),
            faults: Faults::default(),
            config,
            proxy,
        });
        let weak = Arc::downgrade(&state);
        state.faults.set_drop_callback(Arc::new(move || {
            if let Some(s) = weak.upgrade() {
                s.store().drop_watches();
            }
        }));
        state
    }

    /// Lock the store (never held across an await).
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The API server as an axum router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new().fallback(handle).with_state(state)
}

fn json_response(code: u16, body: &Value) -> Response<Body> {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn error_response(e: &Error) -> Response<Body> {
    json_response(e.code(), &e.to_status())
}

fn query_map(q: Option<&str>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for pair in q.unwrap_or_default().split('&') {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(decode(k), decode(v));
    }
    out
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn truthy(q: &HashMap<String, String>, k: &str) -> bool {
    matches!(q.get(k).map(String::as_str), Some("1" | "true" | "True"))
}

async fn handle(State(state): State<Arc<AppState>>, req: Request<Body>) -> Response<Body> {
    if !state.config.log_requests {
        return serve_request(state, req).await;
    }
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let line = format!("{} {target}", req.method());
    let resp = serve_request(state, req).await;
    eprintln!("kage-testcluster: {line} -> {}", resp.status().as_u16());
    resp
}

async fn serve_request(state: Arc<AppState>, req: Request<Body>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query = query_map(parts.uri.query());
    if let Some(rest) = path.strip_prefix("/_testcluster") {
        return admin(&state, &parts.method, rest, &parts.headers, body).await;
    }
    let verdict = state.faults.evaluate(parts.method.as_str(), &path);
    if !verdict.delay.is_zero() {
        tokio::time::sleep(verdict.delay).await;
    }
    if let Some((code, message)) = verdict.fail {
        return error_response(&Error::Custom {
            code,
            reason: reason_for(code).into(),
            message,
        });
    }
    let user = match authenticate(&state, &parts.headers) {
        Some(u) => u,
        None if state.config.anonymous_is_admin && bearer(&parts.headers).is_none() => {
            UserInfo::admin()
        }
        None => {
            if matches!(
                path.as_str(),
                "/healthz" | "/livez" | "/readyz" | "/version"
            ) {
                UserInfo {
                    name: "system:anonymous".into(),
                    groups: vec!["system:unauthenticated".into()],
                }
            } else {
                return error_response(&Error::Unauthorized);
            }
        }
    };
    let user = match impersonate(&state, user, &parts.headers) {
        Ok(u) => u,
        Err(e) => return error_response(&e),
    };
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return error_response(&Error::TooLarge(
                "Request entity too large: limit is 3145728".into(),
            ));
        }
    };
    let ctx = Ctx {
        state: state.clone(),
        method: parts.method.clone(),
        path,
        query,
        headers: parts.headers,
        user,
        body: bytes,
        raw_query: parts.uri.query().map(String::from),
    };
    match route(ctx).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn authenticate(state: &AppState, headers: &HeaderMap) -> Option<UserInfo> {
    let token = bearer(headers)?;
    state.store().authenticate(token)
}

/// `Impersonate-User` / `Impersonate-Group` (kubectl `--as`, `--as-group`), checked
/// against the `impersonate` verb on users, groups and serviceaccounts.
fn impersonate(state: &AppState, user: UserInfo, headers: &HeaderMap) -> Result<UserInfo> {
    let Some(target) = headers
        .get("impersonate-user")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
    else {
        return Ok(user);
    };
    let groups: Vec<String> = headers
        .get_all("impersonate-group")
        .iter()
        .filter_map(|v| v.to_str().ok().map(String::from))
        .collect();
    let store = state.store();
    let policy = Policy {
        roles: store.all_of("rbac.authorization.k8s.io", "roles"),
        cluster_roles: store.all_of("rbac.authorization.k8s.io", "clusterroles"),
        role_bindings: store.all_of("rbac.authorization.k8s.io", "rolebindings"),
        cluster_role_bindings: store.all_of("rbac.authorization.k8s.io", "clusterrolebindings"),
    };
    let sa = target
        .strip_prefix("system:serviceaccount:")
        .and_then(|r| r.split_once(':'));
    let check = |resource: &str, name: &str, namespace: &str| -> Result<()> {
        let a = Attributes {
            verb: "impersonate".into(),
            resource: resource.into(),
            name: name.into(),
            namespace: namespace.into(),
            ..Default::default()
        };
        if rbac::allowed(&policy, &user, &a) {
            Ok(())
        } else {
            Err(Error::Forbidden {
                resource: resource.into(),
                group: String::new(),
                name: name.into(),
                message: format!(
                    "{resource} {name:?} is forbidden: User {:?} cannot impersonate resource {resource:?} in API group \"\" {}",
                    user.name,
                    if namespace.is_empty() {
                        "at the cluster scope".to_string()
                    } else {
                        format!("in the namespace {namespace:?}")
                    }
                ),
            })
        }
    };
    match sa {
        Some((ns, name)) => check("serviceaccounts", name, ns)?,
        None => check("users", &target, "")?,
    }
    for g in &groups {
        check("groups", g, "")?;
    }
    let mut out = match sa {
        Some((ns, name)) if groups.is_empty() => UserInfo::service_account(ns, name),
        _ => UserInfo {
            name: target.clone(),
            groups,
        },
    };
    if !out.groups.iter().any(|g| g == "system:authenticated") {
        out.groups.push("system:authenticated".into());
    }
    Ok(out)
}

struct Ctx {
    state: Arc<AppState>,
    method: Method,
    path: String,
    query: HashMap<String, String>,
    headers: HeaderMap,
    user: UserInfo,
    body: Bytes,
    raw_query: Option<String>,
}

impl Ctx {
    fn authorize(&self, a: &Attributes) -> Result<()> {
        let store = self.state.store();
        let policy = Policy {
            roles: store.all_of("rbac.authorization.k8s.io", "roles"),
            cluster_roles: store.all_of("rbac.authorization.k8s.io", "clusterroles"),
            role_bindings: store.all_of("rbac.authorization.k8s.io", "rolebindings"),
            cluster_role_bindings: store.all_of("rbac.authorization.k8s.io", "clusterrolebindings"),
        };
        if rbac::allowed(&policy, &self.user, a) {
            return Ok(());
        }
        let resource = if a.group.is_empty() {
            a.resource.clone()
        } else {
            format!("{}.{}", a.resource, a.group)
        };
        Err(Error::Forbidden {
            resource,
            group: a.group.clone(),
            name: a.name.clone(),
            message: a.forbidden_message(&self.user),
        })
    }

    fn body_json(&self) -> Result<Value> {
        parse_body(&self.body, self.content_type())
    }

    fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
    }

    /// `Accept: application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1` (kube's
    /// metadata API and metadata_watcher).
    fn wants_partial(&self) -> bool {
        self.headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("as=PartialObjectMetadata"))
    }

    fn wants_table(&self) -> bool {
        self.headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("as=Table"))
    }

    fn write_options(&self, api_version: &str) -> WriteOptions {
        let manager = match self.query.get("fieldManager") {
            Some(m) => m.clone(),
            None if self.content_type().starts_with("application/apply-patch") => String::new(),
            None => self
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .and_then(|ua| ua.split('/').next())
                .filter(|s| !s.is_empty())
                .unwrap_or("unknown")
                .to_string(),
        };
        WriteOptions {
            manager,
            dry_run: self.query.get("dryRun").is_some_and(|v| v == "All"),
            api_version: api_version.to_string(),
        }
    }
}

/// Parse a request body as JSON, or YAML when the content type says so.
pub fn parse_body(bytes: &[u8], content_type: &str) -> Result<Value> {
    if content_type.contains("protobuf") {
        return crate::proto::decode(bytes);
    }
    if bytes.is_empty() {
        return Err(Error::BadRequest("the request body is empty".into()));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => Ok(v),
        Err(json_err) => {
            if content_type.contains("yaml") {
                let text = std::str::from_utf8(bytes)
                    .map_err(|_| Error::BadRequest("the request body is not UTF-8".into()))?;
                serde_saphyr::from_str::<Value>(text)
                    .map_err(|e| Error::BadRequest(format!("error decoding YAML: {e}")))
            } else {
                Err(Error::BadRequest(format!(
                    "the object provided is unrecognized: error decoding JSON: {json_err}"
                )))
            }
        }
    }
}

async fn route(ctx: Ctx) -> Result<Response<Body>> {
    let path = ctx.path.trim_end_matches('/').to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let is_get = ctx.method == Method::GET;
    let nonresource = |ctx: &Ctx| {
        ctx.authorize(&Attributes {
            verb: ctx.method.as_str().to_ascii_lowercase(),
            path: ctx.path.clone(),
            ..Default::default()
        })
    };
    match segs.as_slice() {
        ["healthz"] | ["livez"] | ["readyz"] => {
            let mut r = Response::new(Body::from("ok"));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            return Ok(r);
        }
        ["version"] => {
            return Ok(json_response(
                200,
                &json!({
                    "major": "1", "minor": "32", "gitVersion": "v1.32.0-kage-testcluster",
                    "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
                    "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23", "compiler": "gc",
                    "platform": "linux/amd64"
                }),
            ));
        }
        ["openapi", rest @ ..] if is_get => {
            nonresource(&ctx)?;
            return openapi(&ctx, rest);
        }
        ["api"] if is_get => {
            nonresource(&ctx)?;
            return Ok(json_response(
                200,
                &json!({
                    "kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]
                }),
            ));
        }
        ["apis"] if is_get => {
            nonresource(&ctx)?;
            let groups = ctx.state.store().registry.groups();
            let list: Vec<Value> = groups.iter().map(|(g, vs)| group_json(g, vs)).collect();
            return Ok(json_response(
                200,
                &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": list}),
            ));
        }
        ["apis", g] if is_get => {
            nonresource(&ctx)?;
            let groups = ctx.state.store().registry.groups();
            return match groups.get(*g) {
                Some(vs) => Ok(json_response(200, &group_json(g, vs))),
                None => Err(not_found_path()),
            };
        }
        ["api", v] if is_get => {
            nonresource(&ctx)?;
            return resource_list(&ctx, "", v);
        }
        ["apis", g, v] if is_get => {
            nonresource(&ctx)?;
            return resource_list(&ctx, g, v);
        }
        _ => {}
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] if !rest.is_empty() => ("", *v, rest),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => (*g, *v, rest),
        _ => return Err(not_found_path()),
    };
    let (ns, rest): (Option<&str>, &[&str]) = match rest {
        ["namespaces", ns, r, ..] if !(rest.len() == 3 && (*r == "status" || *r == "finalize")) => {
            (Some(*ns), &rest[2..])
        }
        _ => (None, rest),
    };
    let resource = rest[0];
    let name = rest.get(1).copied();
    let sub = rest.get(2).copied().unwrap_or_default();
    let rt = ctx
        .state
        .store()
        .registry
        .get(group, version, resource)
        .cloned()
        .ok_or_else(not_found_path)?;
    if !sub.is_empty() && !rt.has_subresource(sub) {
        return Err(not_found_path());
    }
    if rest.len() > 3 && sub != "proxy" {
        return Err(not_found_path());
    }
    if rt.namespaced != ns.is_some() && !(rt.namespaced && name.is_none() && is_get) {
        return Err(not_found_path());
    }
    let ns_str = ns.unwrap_or_default();
    if sub == "proxy" {
        let name = name.unwrap_or_default();
        let verb = match ctx.method {
            Method::GET | Method::HEAD => "get",
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE => "delete",
            _ => "get",
        };
        ctx.authorize(&Attributes {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: "proxy".into(),
            name: name.into(),
            namespace: ns_str.into(),
            path: String::new(),
        })?;
        // The upstream path is everything after `/proxy`, trailing slash included.
        let marker = format!("/{name}/proxy");
        let tail = ctx
            .path
            .split_once(&marker)
            .map(|(_, t)| t.to_string())
            .unwrap_or_default();
        return proxy(&ctx, ns_str, name, &tail).await;
    }
    let watch = truthy(&ctx.query, "watch");
    let fields = FieldSelector::parse(
        ctx.query
            .get("fieldSelector")
            .map(String::as_str)
            .unwrap_or_default(),
    )?;
    let verb = match (&ctx.method, name) {
        (&Method::GET, None) if watch => "watch",
        (&Method::GET, None) => "list",
        (&Method::GET, Some(_)) => "get",
        (&Method::POST, None) => "create",
        (&Method::POST, Some(_)) if !sub.is_empty() => "create",
        (&Method::PUT, Some(_)) => "update",
        (&Method::PATCH, Some(_)) => "patch",
        (&Method::DELETE, Some(_)) => "delete",
        (&Method::DELETE, None) => "deletecollection",
        _ => {
            return Err(Error::MethodNotAllowed(
                "the server does not allow this method on the requested resource".to_string(),
            ));
        }
    };
    let rbac_name = match name {
        Some(n) => n.to_string(),
        None if verb == "list" || verb == "watch" => {
            fields.pinned_name().unwrap_or_default().to_string()
        }
        None => String::new(),
    };
    ctx.authorize(&Attributes {
        verb: verb.into(),
        group: group.into(),
        resource: resource.into(),
        subresource: sub.into(),
        name: rbac_name,
        namespace: ns_str.into(),
        path: String::new(),
    })?;
    if !rt.verbs.iter().any(|v| v == verb) {
        return Err(Error::MethodNotAllowed(
            "the server does not allow this method on the requested resource".to_string(),
        ));
    }
    let is_write = matches!(
        verb,
        "create" | "update" | "patch" | "delete" | "deletecollection"
    );
    if is_write && ctx.state.faults.take_conflict() {
        return Err(Error::stale(&rt.qualified(), name.unwrap_or_default()));
    }
    let labels = LabelSelector::parse(
        ctx.query
            .get("labelSelector")
            .map(String::as_str)
            .unwrap_or_default(),
    )?;
    match verb {
        "get" => {
            let obj = ctx
                .state
                .store()
                .get(&rt, ns_str, name.unwrap_or_default())?;
            if ctx.wants_table() {
                return Ok(json_response(200, &table(&rt, &[present(&rt, obj)], None)));
            }
            if ctx.wants_partial() {
                return Ok(json_response(200, &partial(&obj)));
            }
            Ok(json_response(200, &present(&rt, obj)))
        }
        "list" => {
            let limit = ctx
                .query
                .get("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(0);
            let q = ListQuery {
                labels,
                fields,
                limit,
                continue_token: ctx.query.get("continue").filter(|c| !c.is_empty()).cloned(),
            };
            let page = ctx.state.store().list(&rt, ns, &q)?;
            let items: Vec<Value> = page.items.into_iter().map(|o| present(&rt, o)).collect();
            let mut meta = json!({"resourceVersion": page.resource_version.to_string()});
            if let Some(c) = page.continue_token {
                meta["continue"] = json!(c);
            }
            if let Some(n) = page.remaining {
                meta["remainingItemCount"] = json!(n);
            }
            if ctx.wants_table() {
                return Ok(json_response(200, &table(&rt, &items, Some(meta))));
            }
            if ctx.wants_partial() {
                let items: Vec<Value> = items.iter().map(partial).collect();
                return Ok(json_response(
                    200,
                    &json!({
                        "kind": "PartialObjectMetadataList",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": meta,
                        "items": items,
                    }),
                ));
            }
            Ok(json_response(
                200,
                &json!({
                    "kind": format!("{}List", rt.kind),
                    "apiVersion": rt.api_version(),
                    "metadata": meta,
                    "items": items,
                }),
            ))
        }
        "watch" => watch_stream(&ctx, &rt, ns, labels, fields),
        "create" => create(&ctx, &rt, ns_str, name, sub),
        "update" => {
            let body = ctx.body_json()?;
            let opts = ctx.write_options(&rt.api_version());
            let name = name.unwrap_or_default();
            let mut store = ctx.state.store();
            let existed = store.get(&rt, ns_str, name).is_ok();
            let obj = store.update(&rt, ns_str, name, body, sub, &opts)?;
            drop(store);
            Ok(json_response(
                if existed { 200 } else { 201 },
                &present(&rt, obj),
            ))
        }
        "patch" => {
            let ct = ctx
                .content_type()
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_string();
            let ptype = match ct.as_str() {
                "application/json-patch+json" => PatchType::Json,
                "application/merge-patch+json" => PatchType::Merge,
                "application/strategic-merge-patch+json" => PatchType::Strategic,
                "application/apply-patch+yaml" | "application/apply-patch+json" => PatchType::Apply,
                other => {
                    return Err(Error::UnsupportedMediaType(format!(
                        "the body of the request was in an unknown format ({other}) - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
                    )));
                }
            };
            let body = ctx.body_json()?;
            let force = truthy(&ctx.query, "force");
            if force && ptype != PatchType::Apply {
                return Err(Error::BadRequest(
                    "force is only allowed for apply patches".into(),
                ));
            }
            let opts = ctx.write_options(&rt.api_version());
            let name = name.unwrap_or_default();
            let existed = ctx.state.store().get(&rt, ns_str, name).is_ok();
            // An apply that creates the object needs `create` as well, as kube-apiserver
            // authorizes it (a Role granting only patch cannot create through apply).
            if !existed && ptype == PatchType::Apply && sub.is_empty() {
                ctx.authorize(&Attributes {
                    verb: "create".into(),
                    group: rt.group.clone(),
                    resource: rt.plural.clone(),
                    subresource: String::new(),
                    name: name.to_string(),
                    namespace: ns_str.into(),
                    path: String::new(),
                })?;
            }
            let mut store = ctx.state.store();
            let obj = store.patch(&rt, ns_str, name, ptype, &body, sub, force, &opts)?;
            drop(store);
            let code = if existed { 200 } else { 201 };
            Ok(json_response(code, &present(&rt, obj)))
        }
        "delete" => {
            let opts = delete_options(&ctx)?;
            let obj = ctx
                .state
                .store()
                .delete(&rt, ns_str, name.unwrap_or_default(), &opts)?;
            Ok(json_response(200, &present(&rt, obj)))
        }
        "deletecollection" => {
            let opts = delete_options(&ctx)?;
            let q = ListQuery {
                labels,
                fields,
                ..Default::default()
            };
            let items = ctx.state.store().delete_collection(&rt, ns, &q, &opts)?;
            let items: Vec<Value> = items.into_iter().map(|o| present(&rt, o)).collect();
            let rv = ctx.state.store().resource_version();
            Ok(json_response(
                200,
                &json!({
                    "kind": format!("{}List", rt.kind),
                    "apiVersion": rt.api_version(),
                    "metadata": {"resourceVersion": rv.to_string()},
                    "items": items,
                }),
            ))
        }
        _ => Err(not_found_path()),
    }
}

fn not_found_path() -> Error {
    Error::Custom {
        code: 404,
        reason: "NotFound".into(),
        message: "the server could not find the requested resource".into(),
    }
}

/// The PartialObjectMetadata form of an object.
fn partial(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// An object as served in the requested version.
fn present(rt: &ResourceType, mut obj: Value) -> Value {
    obj["apiVersion"] = json!(rt.api_version());
    obj["kind"] = json!(rt.kind);
    obj
}

fn delete_options(ctx: &Ctx) -> Result<DeleteOptions> {
    let mut opts = DeleteOptions {
        dry_run: ctx.query.get("dryRun").is_some_and(|v| v == "All"),
        ..Default::default()
    };
    let mut policy = ctx.query.get("propagationPolicy").cloned();
    if !ctx.body.is_empty() {
        let body: Value = serde_json::from_slice(&ctx.body)
            .map_err(|e| Error::BadRequest(format!("invalid DeleteOptions: {e}")))?;
        if let Some(p) = body.get("propagationPolicy").and_then(Value::as_str) {
            policy = Some(p.to_string());
        }
        if body.get("orphanDependents").and_then(Value::as_bool) == Some(true) {
            policy = Some("Orphan".into());
        }
        opts.uid = body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(String::from);
        opts.resource_version = body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(String::from);
        if body
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v == "All"))
        {
            opts.dry_run = true;
        }
    }
    opts.propagation = match policy.as_deref() {
        None | Some("Background") => Propagation::Background,
        Some("Foreground") => Propagation::Foreground,
        Some("Orphan") => Propagation::Orphan,
        Some(other) => {
            return Err(Error::BadRequest(format!(
                "propagationPolicy: Unsupported value: {other:?}"
            )));
        }
    };
    Ok(opts)
}

fn create(
    ctx: &Ctx,
    rt: &ResourceType,
    ns: &str,
    name: Option<&str>,
    sub: &str,
) -> Result<Response<Body>> {
    let body = ctx.body_json()?;
    if rt.group == "authorization.k8s.io" && rt.plural == "selfsubjectaccessreviews" {
        return Ok(json_response(201, &self_subject_access_review(ctx, body)?));
    }
    if rt.group == "authorization.k8s.io" && rt.plural == "selfsubjectrulesreviews" {
        let ns = body
            .pointer("/spec/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let store = ctx.state.store();
        let policy = Policy {
            roles: store.all_of("rbac.authorization.k8s.io", "roles"),
            cluster_roles: store.all_of("rbac.authorization.k8s.io", "clusterroles"),
            role_bindings: store.all_of("rbac.authorization.k8s.io", "rolebindings"),
            cluster_role_bindings: store.all_of("rbac.authorization.k8s.io", "clusterrolebindings"),
        };
        let (rules, non) = rbac::rules_for(&policy, &ctx.user, &ns);
        return Ok(json_response(
            201,
            &json!({
                "kind": "SelfSubjectRulesReview",
                "apiVersion": "authorization.k8s.io/v1",
                "metadata": {"creationTimestamp": null},
                "spec": {"namespace": ns},
                "status": {"resourceRules": rules, "nonResourceRules": non, "incomplete": false},
            }),
        ));
    }
    if rt.group == "authentication.k8s.io" && rt.plural == "selfsubjectreviews" {
        return Ok(json_response(
            201,
            &json!({
                "kind": "SelfSubjectReview",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"creationTimestamp": null},
                "status": {"userInfo": {"username": ctx.user.name, "groups": ctx.user.groups}},
            }),
        ));
    }
    if sub == "token" {
        let name = name.unwrap_or_default();
        let token = ctx.state.store().issue_token(ns, name)?;
        let expiration = body
            .pointer("/spec/expirationSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(3600);
        let expires = jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_secs(expiration))
            .unwrap_or(jiff::Timestamp::MAX)
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let mut spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
        spec["expirationSeconds"] = json!(expiration);
        if spec.get("audiences").is_none() {
            spec["audiences"] = json!(["https://kubernetes.default.svc"]);
        }
        return Ok(json_response(
            201,
            &json!({
                "kind": "TokenRequest",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"name": name, "namespace": ns, "creationTimestamp": null},
                "spec": spec,
                "status": {"token": token, "expirationTimestamp": expires},
            }),
        ));
    }
    let opts = ctx.write_options(&rt.api_version());
    let obj = ctx.state.store().create(rt, ns, body, &opts)?;
    Ok(json_response(201, &present(rt, obj)))
}

fn self_subject_access_review(ctx: &Ctx, body: Value) -> Result<Value> {
    let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    let s = |p: &str| {
        spec.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let attrs = if spec.get("resourceAttributes").is_some() {
        Attributes {
            verb: s("/resourceAttributes/verb"),
            group: s("/resourceAttributes/group"),
            resource: s("/resourceAttributes/resource"),
            subresource: s("/resourceAttributes/subresource"),
            name: s("/resourceAttributes/name"),
            namespace: s("/resourceAttributes/namespace"),
            path: String::new(),
        }
    } else if spec.get("nonResourceAttributes").is_some() {
        Attributes {
            verb: s("/nonResourceAttributes/verb"),
            path: s("/nonResourceAttributes/path"),
            ..Default::default()
        }
    } else {
        return Err(Error::invalid(
            "SelfSubjectAccessReview",
            "",
            crate::error::Cause::required("spec.resourceAttributes"),
        ));
    };
    let allowed = ctx.authorize(&attrs).is_ok();
    let mut out = json!({
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": spec,
        "status": {"allowed": allowed},
    });
    if allowed {
        out["status"]["reason"] = json!("allowed by RBAC");
    }
    Ok(out)
}

fn group_json(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": vs,
        "preferredVersion": vs.first().cloned().unwrap_or(Value::Null),
    })
}

fn resource_list(ctx: &Ctx, group: &str, version: &str) -> Result<Response<Body>> {
    let store = ctx.state.store();
    let resources: Vec<Value> = store
        .registry
        .in_group_version(group, version)
        .flat_map(ResourceType::discovery)
        .collect();
    if resources.is_empty() {
        return Err(not_found_path());
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Ok(json_response(
        200,
        &json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": gv,
            "resources": resources,
        }),
    ))
}

/// OpenAPI v3 with just enough for kubectl: every resource's PATCH operation declares the
/// `fieldValidation` parameter, so kubectl uses server-side field validation and needs no
/// schemas. OpenAPI v2 is not served (404), which kubectl tolerates.
fn openapi(ctx: &Ctx, rest: &[&str]) -> Result<Response<Body>> {
    let store = ctx.state.store();
    match rest {
        ["v3"] => {
            let mut paths = serde_json::Map::new();
            let mut gvs: Vec<(String, String)> = store
                .registry
                .all()
                .map(|t| (t.group.clone(), t.version.clone()))
                .collect();
            gvs.dedup();
            for (g, v) in gvs {
                let key = if g.is_empty() {
                    format!("api/{v}")
                } else {
                    format!("apis/{g}/{v}")
                };
                let url = format!("/openapi/v3/{key}?hash={}", store.resource_version());
                paths.insert(key, json!({"serverRelativeURL": url}));
            }
            Ok(json_response(200, &json!({"paths": paths})))
        }
        ["v3", "api", v] => openapi_gv(&store, "", v),
        ["v3", "apis", g, v] => openapi_gv(&store, g, v),
        _ => Err(not_found_path()),
    }
}

fn openapi_gv(store: &Store, group: &str, version: &str) -> Result<Response<Body>> {
    let mut paths = serde_json::Map::new();
    for t in store.registry.in_group_version(group, version) {
        let prefix = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        let ns = if t.namespaced {
            "/namespaces/{namespace}"
        } else {
            ""
        };
        let gvk = json!({"group": group, "version": version, "kind": t.kind});
        let params = json!([
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}}
        ]);
        let op = json!({
            "operationId": format!("patch{}", t.kind),
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": gvk,
            "parameters": params,
            "responses": {"200": {"description": "OK"}},
        });
        let create = json!({
            "operationId": format!("create{}", t.kind),
            "x-kubernetes-action": "post",
            "x-kubernetes-group-version-kind": gvk,
            "parameters": params,
            "responses": {"201": {"description": "Created"}},
        });
        paths.insert(
            format!("{prefix}{ns}/{}/{{name}}", t.plural),
            json!({"patch": op, "put": op}),
        );
        paths.insert(
            format!("{prefix}{ns}/{}", t.plural),
            json!({"post": create}),
        );
    }
    if paths.is_empty() {
        return Err(not_found_path());
    }
    Ok(json_response(
        200,
        &json!({
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes (kage-testcluster)", "version": "v1.32.0"},
            "paths": paths,
            "components": {"schemas": {}},
        }),
    ))
}

fn age(obj: &Value) -> String {
    let Some(ts) = obj
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
    else {
        return "<unknown>".into();
    };
    let secs = jiff::Timestamp::now().duration_since(ts).as_secs().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn cell(obj: &Value, json_path: &str) -> Value {
    // additionalPrinterColumns use simple JSONPath like `.status.conditions[?(@.type=="Ready")].status`.
    let p = json_path.trim_start_matches('.');
    if let Some((list, rest)) = p.split_once("[?(@.") {
        let Some((cond, tail)) = rest.split_once(")]") else {
            return Value::Null;
        };
        let Some((field, want)) = cond.split_once("==") else {
            return Value::Null;
        };
        let want = want.trim_matches('"').trim_matches('\'');
        let items = obj.pointer(&format!("/{}", list.replace('.', "/")));
        let hit = items.and_then(Value::as_array).and_then(|a| {
            a.iter()
                .find(|i| i.get(field).and_then(Value::as_str) == Some(want))
        });
        let tail = tail.trim_start_matches('.');
        return hit
            .and_then(|h| {
                if tail.is_empty() {
                    Some(h)
                } else {
                    h.pointer(&format!("/{}", tail.replace('.', "/")))
                }
            })
            .cloned()
            .unwrap_or(Value::Null);
    }
    obj.pointer(&format!("/{}", p.replace('.', "/")))
        .cloned()
        .unwrap_or(Value::Null)
}

type CellFn = Box<dyn Fn(&Value) -> Value>;

/// A meta.k8s.io/v1 Table, for kubectl's human-readable output.
fn table(rt: &ResourceType, items: &[Value], meta: Option<Value>) -> Value {
    let col = |name: &str, ty: &str, format: &str| json!({"name": name, "type": ty, "format": format, "description": name, "priority": 0});
    let mut columns = vec![col("Name", "string", "name")];
    let extra: Vec<(String, CellFn)> = match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "secrets") => vec![
            (
                "Type".into(),
                Box::new(|o: &Value| o.get("type").cloned().unwrap_or(Value::Null)),
            ),
            (
                "Data".into(),
                Box::new(|o: &Value| {
                    json!(
                        o.get("data")
                            .and_then(Value::as_object)
                            .map_or(0, |m| m.len())
                    )
                }),
            ),
        ],
        ("", "configmaps") => vec![(
            "Data".into(),
            Box::new(|o: &Value| {
                let n = ["data", "binaryData"]
                    .iter()
                    .filter_map(|f| o.get(*f).and_then(Value::as_object))
                    .map(|m| m.len())
                    .sum::<usize>();
                json!(n)
            }),
        )],
        ("", "namespaces") => vec![(
            "Status".into(),
            Box::new(|o: &Value| o.pointer("/status/phase").cloned().unwrap_or(Value::Null)),
        )],
        _ => rt
            .printer_columns
            .iter()
            .filter(|c| c.get("priority").and_then(Value::as_i64).unwrap_or(0) == 0)
            .filter(|c| {
                c.get("jsonPath").and_then(Value::as_str) != Some(".metadata.creationTimestamp")
            })
            .map(|c| {
                let name = c
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let path = c
                    .get("jsonPath")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let f: Box<dyn Fn(&Value) -> Value> = Box::new(move |o: &Value| cell(o, &path));
                (name, f)
            })
            .collect(),
    };
    for (name, _) in &extra {
        columns.push(col(name, "string", ""));
    }
    columns.push(col("Age", "string", ""));
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let mut cells = vec![o.pointer("/metadata/name").cloned().unwrap_or(Value::Null)];
            for (_, f) in &extra {
                cells.push(f(o));
            }
            cells.push(json!(age(o)));
            let partial = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": o.get("metadata").cloned().unwrap_or_else(|| json!({})),
            });
            json!({"cells": cells, "object": partial})
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta.unwrap_or_else(|| json!({})),
        "columnDefinitions": columns,
        "rows": rows,
    })
}

struct WatchFilter {
    labels: LabelSelector,
    fields: FieldSelector,
    namespace: Option<String>,
}

impl WatchFilter {
    fn matches(&self, obj: &Value) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| obj.pointer("/metadata/namespace").and_then(Value::as_str) == Some(ns))
            && self.labels.matches(obj)
            && self.fields.matches(obj)
    }

    /// The event type this watcher sees, if any (selector transitions become ADDED/DELETED).
    fn translate(&self, ev: &Event) -> Option<EventType> {
        let now = self.matches(&ev.object);
        match ev.kind {
            EventType::Added => now.then_some(EventType::Added),
            EventType::Deleted => now.then_some(EventType::Deleted),
            EventType::Modified => {
                let before = ev.old.as_ref().is_none_or(|o| self.matches(o));
                match (before, now) {
                    (true, true) => Some(EventType::Modified),
                    (true, false) => Some(EventType::Deleted),
                    (false, true) => Some(EventType::Added),
                    (false, false) => None,
                }
            }
        }
    }
}

fn watch_line(kind: &str, object: &Value) -> Bytes {
    let mut s = json!({"type": kind, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}

fn watch_stream(
    ctx: &Ctx,
    rt: &ResourceType,
    ns: Option<&str>,
    labels: LabelSelector,
    fields: FieldSelector,
) -> Result<Response<Body>> {
    let rv = ctx
        .query
        .get("resourceVersion")
        .cloned()
        .unwrap_or_default();
    let send_initial = truthy(&ctx.query, "sendInitialEvents");
    let from = if rv.is_empty() || rv == "0" || send_initial {
        None
    } else {
        Some(
            rv.parse::<u64>()
                .map_err(|_| Error::BadRequest(format!("invalid resource version: {rv:?}")))?,
        )
    };
    let bookmarks = truthy(&ctx.query, "allowWatchBookmarks");
    let timeout = ctx
        .query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let table = ctx.wants_table();
    let partial_only = ctx.wants_partial();
    let filter = WatchFilter {
        labels,
        fields,
        namespace: ns.map(String::from),
    };
    let rt = rt.clone();
    let bookmark_obj = (rt.api_version(), rt.kind.clone());
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(256);
    let started = ctx.state.store().watch(&rt, ns, from);
    let interval = ctx.state.config.bookmark_interval;
    let state = ctx.state.clone();
    let render = move |kind: EventType, obj: &Value| -> Bytes {
        let obj = present(&rt, obj.clone());
        if table {
            watch_line(kind.as_str(), &self::table(&rt, &[obj], None))
        } else if partial_only {
            watch_line(kind.as_str(), &partial(&obj))
        } else {
            watch_line(kind.as_str(), &obj)
        }
    };
    tokio::spawn(async move {
        let (replay, mut rx, current) = match started {
            Ok(s) => s,
            Err(e) => {
                let _ = out_tx.send(watch_line("ERROR", &e.to_status())).await;
                return;
            }
        };
        let bookmark = |rv: u64, end: bool| {
            let mut meta = json!({"resourceVersion": rv.to_string()});
            if end {
                meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            }
            watch_line(
                "BOOKMARK",
                &json!({"kind": bookmark_obj.1, "apiVersion": bookmark_obj.0, "metadata": meta}),
            )
        };
        let mut last = from.unwrap_or(0);
        for ev in replay {
            last = last.max(ev.rv);
            if let Some(k) = filter.translate(&ev)
                && out_tx.send(render(k, &ev.object)).await.is_err()
            {
                return;
            }
        }
        last = last.max(current);
        if send_initial && out_tx.send(bookmark(current, true)).await.is_err() {
            return;
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        loop {
            tokio::select! {
                ev = rx.recv() => {
                    let Some(ev) = ev else { return };
                    last = last.max(ev.rv);
                    if let Some(k) = filter.translate(&ev)
                        && out_tx.send(render(k, &ev.object)).await.is_err()
                    {
                        return;
                    }
                }
                _ = tick.tick(), if bookmarks => {
                    // Bookmarks carry the global resourceVersion, as the real server's do, so
                    // quiet watchers stay ahead of the history window. Every event up to it
                    // is already in our channel (sent under the same lock that bumps it), so
                    // drain those first.
                    let current = state.store().resource_version();
                    while let Ok(ev) = rx.try_recv() {
                        if let Some(k) = filter.translate(&ev)
                            && out_tx.send(render(k, &ev.object)).await.is_err()
                        {
                            return;
                        }
                    }
                    last = last.max(current);
                    if out_tx.send(bookmark(last, false)).await.is_err() {
                        return;
                    }
                }
                _ = &mut deadline => return,
                _ = out_tx.closed() => return,
            }
        }
    });
    let stream = futures::stream::poll_fn(move |cx| {
        out_rx.poll_recv(cx).map(|o| o.map(Ok::<_, Infallible>))
    });
    let mut r = Response::new(Body::from_stream(stream));
    let ct = if table {
        "application/json;as=Table;v=v1;g=meta.k8s.io"
    } else {
        "application/json"
    };
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(r)
}

async fn proxy(ctx: &Ctx, ns: &str, service: &str, tail: &str) -> Result<Response<Body>> {
    // `name`, `name:port` or `scheme:name:port`.
    let parts: Vec<&str> = service.split(':').collect();
    let name = match parts.as_slice() {
        [n] | [n, _] => *n,
        [_, n, _] => *n,
        _ => {
            return Err(Error::BadRequest(format!(
                "invalid service name {service:?}"
            )));
        }
    };
    let upstream = {
        let store = ctx.state.store();
        let rt = store
            .registry
            .get("", "v1", "services")
            .cloned()
            .ok_or_else(not_found_path)?;
        let svc = store.get(&rt, ns, name)?;
        store
            .upstreams
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
            .or_else(|| {
                svc.pointer(&format!(
                    "/metadata/annotations/{}",
                    UPSTREAM_ANNOTATION.replace('/', "~1")
                ))
                .and_then(Value::as_str)
                .map(String::from)
            })
    };
    let Some(upstream) = upstream else {
        return Err(Error::ServiceUnavailable(format!(
            "no endpoints available for service {name:?}"
        )));
    };
    let mut uri = format!(
        "http://{upstream}{}",
        if tail.is_empty() { "/" } else { tail }
    );
    if let Some(q) = &ctx.raw_query {
        uri.push('?');
        uri.push_str(q);
    }
    let mut req = Request::builder().method(ctx.method.clone()).uri(&uri);
    for (k, v) in &ctx.headers {
        if matches!(
            k.as_str(),
            "authorization"
                | "host"
                | "connection"
                | "keep-alive"
                | "transfer-encoding"
                | "upgrade"
                | "te"
        ) {
            continue;
        }
        req = req.header(k, v);
    }
    let req = req
        .body(http_body_util::Full::new(ctx.body.clone()))
        .map_err(|e| Error::BadRequest(format!("invalid proxied request: {e}")))?;
    let resp = ctx.state.proxy.request(req).await.map_err(|e| {
        Error::ServiceUnavailable(format!(
            "error trying to reach service: dial tcp {upstream}: {e}"
        ))
    })?;
    let (parts, body) = resp.into_parts();
    let mut out = Response::new(Body::new(body));
    *out.status_mut() = parts.status;
    for (k, v) in &parts.headers {
        if !matches!(
            k.as_str(),
            "connection" | "keep-alive" | "transfer-encoding"
        ) {
            out.headers_mut().append(k, v.clone());
        }
    }
    Ok(out)
}

async fn admin(
    state: &Arc<AppState>,
    method: &Method,
    rest: &str,
    headers: &HeaderMap,
    body: Body,
) -> Response<Body> {
    if rest == "/healthz" {
        return Response::new(Body::from("ok"));
    }
    if bearer(headers) != Some(state.config.admin_token.as_str()) {
        return error_response(&Error::Unauthorized);
    }
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return error_response(&Error::TooLarge("too large".into())),
    };
    let ok = || {
        json_response(
            200,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
        )
    };
    match (method.as_str(), rest) {
        ("POST", "/faults") => {
            let req: FaultRequest = match serde_json::from_slice(&bytes) {
                Ok(r) => r,
                Err(e) => return error_response(&Error::BadRequest(format!("invalid fault: {e}"))),
            };
            match req.apply(&state.faults) {
                Ok(()) => ok(),
                Err(e) => error_response(&Error::BadRequest(e)),
            }
        }
        ("DELETE", "/faults") => {
            state.faults.clear();
            ok()
        }
        ("POST", "/faults/drop-watches") => {
            state.faults.drop_watches();
            ok()
        }
        ("POST", "/compact") => {
            state.store().compact();
            ok()
        }
        ("POST", "/upstreams") => {
            let v: Value = match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                Err(e) => {
                    return error_response(&Error::BadRequest(format!("invalid upstream: {e}")));
                }
            };
            let s = |k: &str| v.get(k).and_then(Value::as_str).map(String::from);
            match (s("namespace"), s("service"), s("address")) {
                (Some(ns), Some(svc), Some(addr)) => {
                    state.store().upstreams.insert((ns, svc), addr);
                    ok()
                }
                _ => error_response(&Error::BadRequest(
                    "need namespace, service and address".into(),
                )),
            }
        }
        _ => error_response(&not_found_path()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn query_decoding() {
        let q = query_map(Some("labelSelector=app%3Dweb%2Ctier+in+(a)&watch=1&x"));
        assert_eq!(q["labelSelector"], "app=web,tier in (a)");
        assert!(truthy(&q, "watch"));
        assert_eq!(q["x"], "");
        assert_eq!(decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn printer_column_jsonpath() {
        let o = json!({"status": {"conditions": [{"type": "Other", "status": "False"}, {"type": "Ready", "status": "True"}]},
                       "spec": {"size": 3}});
        assert_eq!(
            cell(&o, r#".status.conditions[?(@.type=="Ready")].status"#),
            json!("True")
        );
        assert_eq!(cell(&o, ".spec.size"), json!(3));
        assert_eq!(cell(&o, ".spec.missing"), Value::Null);
    }

    #[test]
    fn watch_filter_turns_selector_transitions_into_added_and_deleted() {
        let f = WatchFilter {
            labels: LabelSelector::parse("app=x").expect("selector"),
            fields: FieldSelector::default(),
            namespace: None,
        };
        let with = json!({"metadata": {"name": "a", "labels": {"app": "x"}}});
        let without = json!({"metadata": {"name": "a"}});
        let ev = |kind, object: &Value, old: Option<&Value>| Event {
            rv: 1,
            gr: (String::new(), "configmaps".into()),
            kind,
            object: Arc::new(object.clone()),
            old: old.map(|o| Arc::new(o.clone())),
        };
        assert_eq!(
            f.translate(&ev(EventType::Added, &with, None)),
            Some(EventType::Added)
        );
        assert_eq!(f.translate(&ev(EventType::Added, &without, None)), None);
        assert_eq!(
            f.translate(&ev(EventType::Modified, &without, Some(&with))),
            Some(EventType::Deleted)
        );
        assert_eq!(
            f.translate(&ev(EventType::Modified, &with, Some(&without))),
            Some(EventType::Added)
        );
        assert_eq!(
            f.translate(&ev(EventType::Modified, &without, Some(&without))),
            None
        );
    }

    #[test]
    fn bodies_json_yaml_and_errors() {
        assert_eq!(
            parse_body(b"{\"a\":1}", "application/json").expect("json"),
            json!({"a": 1})
        );
        assert_eq!(
            parse_body(b"a: 1\nb: [x]\n", "application/apply-patch+yaml").expect("yaml"),
            json!({"a": 1, "b": ["x"]})
        );
        assert_eq!(
            parse_body(b"a: 1", "application/json").unwrap_err().code(),
            400
        );
        assert_eq!(parse_body(b"", "application/json").unwrap_err().code(), 400);
        assert_eq!(
            parse_body(b"\xff\x00", "application/yaml")
                .unwrap_err()
                .code(),
            400
        );
    }

    #[test]
    fn tables_have_kind_specific_columns() {
        let reg = crate::registry::Registry::new();
        let rt = reg.get("", "v1", "secrets").expect("secrets");
        let t = table(
            rt,
            &[json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"a": "", "b": ""}})],
            None,
        );
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .expect("columns")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(names, ["Name", "Type", "Data", "Age"]);
        assert_eq!(t["rows"][0]["cells"][2], 2);
    }
}
