//! RBAC evaluation over Role/ClusterRole/RoleBinding/ClusterRoleBinding objects, plus
//! the defaults every authenticated user has (`system:discovery`, `system:basic-user`).

use serde_json::Value;

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// User name, e.g. `system:serviceaccount:kage-system:kage-controller`.
    pub name: String,
    /// Groups.
    pub groups: Vec<String>,
}

impl UserInfo {
    /// The admin user (in `system:masters`, bypasses RBAC).
    pub fn admin() -> Self {
        UserInfo {
            name: "kubernetes-admin".into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
        }
    }

    /// A ServiceAccount's user.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        UserInfo {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
        }
    }

    /// Is the user in `system:masters`?
    pub fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == "system:masters")
    }
}

/// What is being done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    /// API group.
    pub group: String,
    /// Plural resource; empty for a non-resource request.
    pub resource: String,
    /// Subresource.
    pub subresource: String,
    /// Object name, if any.
    pub name: String,
    /// Namespace; empty for cluster scope.
    pub namespace: String,
    /// Non-resource path.
    pub path: String,
}

impl Attributes {
    /// `secrets` or `serviceaccounts/token`.
    pub fn resource_with_sub(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }

    /// Kubernetes' Forbidden message.
    pub fn forbidden_message(&self, user: &UserInfo) -> String {
        if self.resource.is_empty() {
            return format!(
                "forbidden: User {:?} cannot {} path {:?}",
                user.name, self.verb, self.path
            );
        }
        let qualified = if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        };
        let subject = if self.name.is_empty() {
            format!("{qualified} is forbidden")
        } else {
            format!("{qualified} {:?} is forbidden", self.name)
        };
        let scope = if self.namespace.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace {:?}", self.namespace)
        };
        format!(
            "{subject}: User {:?} cannot {} resource {:?} in API group {:?} {scope}",
            user.name,
            self.verb,
            self.resource_with_sub(),
            self.group
        )
    }
}

/// The RBAC objects to evaluate against.
#[derive(Debug, Default)]
pub struct Policy<'a> {
    /// Roles.
    pub roles: Vec<&'a Value>,
    /// ClusterRoles.
    pub cluster_roles: Vec<&'a Value>,
    /// RoleBindings.
    pub role_bindings: Vec<&'a Value>,
    /// ClusterRoleBindings.
    pub cluster_role_bindings: Vec<&'a Value>,
}

fn strs(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn meta<'a>(o: &'a Value, field: &str) -> &'a str {
    o.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn subject_matches(subject: &Value, user: &UserInfo, binding_ns: &str) -> bool {
    let kind = subject
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = subject
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match kind {
        "User" => user.name == name,
        "Group" => user.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let ns = subject
                .get("namespace")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .unwrap_or(binding_ns);
            user.name == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

fn binding_applies(b: &Value, user: &UserInfo) -> bool {
    let ns = meta(b, "namespace");
    b.get("subjects")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|s| subject_matches(s, user, ns)))
}

/// Does one PolicyRule allow the request?
pub fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    let verbs = strs(rule.get("verbs"));
    if !verbs.iter().any(|v| *v == "*" || *v == a.verb) {
        return false;
    }
    if a.resource.is_empty() {
        return strs(rule.get("nonResourceURLs")).iter().any(|u| {
            *u == "*" || *u == a.path || u.strip_suffix('*').is_some_and(|p| a.path.starts_with(p))
        });
    }
    let groups = strs(rule.get("apiGroups"));
    if !groups.iter().any(|g| *g == "*" || *g == a.group) {
        return false;
    }
    let wanted = a.resource_with_sub();
    let resources = strs(rule.get("resources"));
    let resource_ok = resources.iter().any(|r| {
        *r == "*"
            || *r == wanted
            || (!a.subresource.is_empty() && *r == format!("*/{}", a.subresource))
    });
    if !resource_ok {
        return false;
    }
    let names = strs(rule.get("resourceNames"));
    // resourceNames never match a request without a name (create, unpinned list/watch).
    names.is_empty() || (!a.name.is_empty() && names.contains(&a.name.as_str()))
}

fn default_allows(a: &Attributes) -> bool {
    if a.resource.is_empty() {
        let p = a.path.as_str();
        return a.verb == "get"
            && (matches!(
                p,
                "/api" | "/apis" | "/version" | "/healthz" | "/livez" | "/readyz" | "/openapi"
            ) || p.starts_with("/api/")
                || p.starts_with("/apis/")
                || p.starts_with("/openapi/"));
    }
    a.verb == "create"
        && matches!(
            (a.group.as_str(), a.resource.as_str()),
            (
                "authorization.k8s.io",
                "selfsubjectaccessreviews" | "selfsubjectrulesreviews"
            ) | ("authentication.k8s.io", "selfsubjectreviews")
        )
}

/// Is the request allowed? `system:masters` always is.
pub fn allowed(policy: &Policy<'_>, user: &UserInfo, a: &Attributes) -> bool {
    if user.is_master() || default_allows(a) {
        return true;
    }
    let cluster_role = |name: &str| {
        policy
            .cluster_roles
            .iter()
            .find(|r| meta(r, "name") == name)
            .copied()
    };
    let rules_allow = |role: Option<&Value>| {
        role.and_then(|r| r.get("rules"))
            .and_then(Value::as_array)
            .is_some_and(|rules| rules.iter().any(|r| rule_allows(r, a)))
    };
    for b in &policy.cluster_role_bindings {
        if binding_applies(b, user)
            && b.pointer("/roleRef/kind").and_then(Value::as_str) == Some("ClusterRole")
        {
            let name = b
                .pointer("/roleRef/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if rules_allow(cluster_role(name)) {
                return true;
            }
        }
    }
    if a.namespace.is_empty() {
        return false;
    }
    for b in &policy.role_bindings {
        if meta(b, "namespace") != a.namespace || !binding_applies(b, user) {
            continue;
        }
        let name = b
            .pointer("/roleRef/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let role = match b.pointer("/roleRef/kind").and_then(Value::as_str) {
            Some("ClusterRole") => cluster_role(name),
            Some("Role") => policy
                .roles
                .iter()
                .find(|r| meta(r, "namespace") == a.namespace && meta(r, "name") == name)
                .copied(),
            _ => None,
        };
        if rules_allow(role) {
            return true;
        }
    }
    false
}

/// Every rule that applies to the user in a namespace (SelfSubjectRulesReview), as
/// (resource rules, non-resource rules), defaults included.
pub fn rules_for(
    policy: &Policy<'_>,
    user: &UserInfo,
    namespace: &str,
) -> (Vec<Value>, Vec<Value>) {
    use serde_json::json;
    if user.is_master() {
        return (
            vec![json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})],
            vec![json!({"verbs": ["*"], "nonResourceURLs": ["*"]})],
        );
    }
    let mut rules: Vec<Value> = vec![
        json!({"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
        "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]}),
    ];
    let mut non_resource: Vec<Value> = vec![json!({"verbs": ["get"], "nonResourceURLs": [
        "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version"]})];
    let role_rules = |r: Option<&Value>| -> Vec<Value> {
        r.and_then(|r| r.get("rules"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let cluster_role = |name: &str| {
        policy
            .cluster_roles
            .iter()
            .find(|r| meta(r, "name") == name)
            .copied()
    };
    let mut found = vec![];
    for b in &policy.cluster_role_bindings {
        if binding_applies(b, user) {
            let name = b
                .pointer("/roleRef/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            found.extend(role_rules(cluster_role(name)));
        }
    }
    for b in &policy.role_bindings {
        if meta(b, "namespace") != namespace || !binding_applies(b, user) {
            continue;
        }
        let name = b
            .pointer("/roleRef/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let role = match b.pointer("/roleRef/kind").and_then(Value::as_str) {
            Some("ClusterRole") => cluster_role(name),
            _ => policy
                .roles
                .iter()
                .find(|r| meta(r, "namespace") == namespace && meta(r, "name") == name)
                .copied(),
        };
        found.extend(role_rules(role));
    }
    for r in found {
        if r.get("nonResourceURLs").is_some() {
            non_resource.push(r);
        } else {
            rules.push(r);
        }
    }
    (rules, non_resource)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(verb: &str, resource: &str, name: &str, ns: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource: resource.into(),
            name: name.into(),
            namespace: ns.into(),
            ..Default::default()
        }
    }

    #[test]
    fn role_binding_to_service_account() {
        let role = json!({"metadata": {"name": "r", "namespace": "app"},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]},
                      {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["only"]}]});
        let rb = json!({"metadata": {"name": "rb", "namespace": "app"},
            "roleRef": {"kind": "Role", "name": "r", "apiGroup": "rbac.authorization.k8s.io"},
            "subjects": [{"kind": "ServiceAccount", "name": "ctl"}]});
        let p = Policy {
            roles: vec![&role],
            role_bindings: vec![&rb],
            ..Default::default()
        };
        let sa = UserInfo::service_account("app", "ctl");
        assert!(allowed(&p, &sa, &attrs("get", "secrets", "x", "app")));
        assert!(allowed(&p, &sa, &attrs("list", "secrets", "", "app")));
        assert!(!allowed(&p, &sa, &attrs("delete", "secrets", "x", "app")));
        assert!(!allowed(&p, &sa, &attrs("get", "secrets", "x", "other")));
        assert!(allowed(&p, &sa, &attrs("get", "configmaps", "only", "app")));
        assert!(!allowed(
            &p,
            &sa,
            &attrs("get", "configmaps", "else", "app")
        ));
        assert!(!allowed(&p, &sa, &attrs("list", "configmaps", "", "app")));
        let other = UserInfo::service_account("other", "ctl");
        assert!(!allowed(&p, &other, &attrs("get", "secrets", "x", "app")));
    }

    #[test]
    fn cluster_bindings_wildcards_and_subresources() {
        let cr = json!({"metadata": {"name": "cr"},
            "rules": [{"apiGroups": ["*"], "resources": ["leases", "widgets/status"], "verbs": ["*"]}]});
        let crb = json!({"metadata": {"name": "b"}, "roleRef": {"kind": "ClusterRole", "name": "cr"},
            "subjects": [{"kind": "Group", "name": "devs"}]});
        let p = Policy {
            cluster_roles: vec![&cr],
            cluster_role_bindings: vec![&crb],
            ..Default::default()
        };
        let u = UserInfo {
            name: "jane".into(),
            groups: vec!["devs".into()],
        };
        let mut a = attrs("update", "widgets", "w", "ns");
        a.subresource = "status".into();
        assert!(allowed(&p, &u, &a));
        a.subresource.clear();
        assert!(!allowed(&p, &u, &a));
        assert!(allowed(&p, &u, &attrs("watch", "leases", "", "")));
        let nobody = UserInfo {
            name: "bob".into(),
            groups: vec![],
        };
        assert!(!allowed(&p, &nobody, &attrs("watch", "leases", "", "")));
    }

    #[test]
    fn rules_review_collects_bound_rules() {
        let role = json!({"metadata": {"name": "r", "namespace": "app"},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]});
        let rb = json!({"metadata": {"name": "rb", "namespace": "app"},
            "roleRef": {"kind": "Role", "name": "r"}, "subjects": [{"kind": "User", "name": "u"}]});
        let p = Policy {
            roles: vec![&role],
            role_bindings: vec![&rb],
            ..Default::default()
        };
        let u = UserInfo {
            name: "u".into(),
            groups: vec![],
        };
        let (rules, non) = rules_for(&p, &u, "app");
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[1]["resources"], json!(["secrets"]));
        assert_eq!(non.len(), 1);
        assert_eq!(rules_for(&p, &u, "other").0.len(), 1);
    }

    #[test]
    fn defaults_and_messages() {
        let p = Policy::default();
        let u = UserInfo::service_account("kage-system", "kage-controller");
        let mut a = Attributes {
            verb: "get".into(),
            path: "/apis/apps/v1".into(),
            ..Default::default()
        };
        assert!(allowed(&p, &u, &a));
        a.path = "/metrics".into();
        assert!(!allowed(&p, &u, &a));
        let a = attrs("get", "secrets", "x", "default");
        assert_eq!(
            a.forbidden_message(&u),
            r#"secrets "x" is forbidden: User "system:serviceaccount:kage-system:kage-controller" cannot get resource "secrets" in API group "" in the namespace "default""#
        );
        let mut l = attrs("list", "leases", "", "");
        l.group = "coordination.k8s.io".into();
        assert_eq!(
            l.forbidden_message(&u),
            r#"leases.coordination.k8s.io is forbidden: User "system:serviceaccount:kage-system:kage-controller" cannot list resource "leases" in API group "coordination.k8s.io" at the cluster scope"#
        );
        assert!(allowed(
            &p,
            &UserInfo::admin(),
            &attrs("delete", "secrets", "x", "d")
        ));
    }
}
