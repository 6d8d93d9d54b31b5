//! The resource registry: which resources the server serves, built-ins plus the ones
//! CustomResourceDefinitions register. Discovery, routing and RBAC all read it, so a
//! new CRD is usable at once.

use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The full verb set of an ordinary resource.
pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// One served resource in one group/version.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    /// API group, `""` for core.
    pub group: String,
    /// Version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `Secret`.
    pub kind: String,
    /// Plural resource name, e.g. `secrets`.
    pub plural: String,
    /// Singular name, e.g. `secret`.
    pub singular: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names (`cm`, `svc`).
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Verbs.
    pub verbs: Vec<String>,
    /// Has a `status` subresource (then writes split spec from status).
    pub status_subresource: bool,
    /// Other subresources (`token`, `proxy`, `finalize`).
    pub subresources: Vec<String>,
    /// The CRD that registered it.
    pub crd: Option<String>,
    /// The CRD's openAPIV3Schema for this version (list types for SSA).
    pub schema: Option<Value>,
    /// Extra printer columns (CRD `additionalPrinterColumns`).
    pub printer_columns: Vec<Value>,
}

impl ResourceType {
    /// Whether objects carry `metadata.generation`: custom resources and the kinds whose
    /// upstream strategy sets it (those with a spec); ConfigMaps, Secrets, ServiceAccounts,
    /// Namespaces, RBAC and the like have none on kube-apiserver (tests/tests/fidelity.rs).
    pub fn tracks_generation(&self) -> bool {
        self.crd.is_some()
            || matches!(
                self.group.as_str(),
                "apps" | "batch" | "apiextensions.k8s.io" | "policy" | "networking.k8s.io"
            )
    }

    /// `apiVersion` as written in objects.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `secrets` or `leases.coordination.k8s.io`, as in error messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Is this a custom resource?
    pub fn is_custom(&self) -> bool {
        self.crd.is_some()
    }

    /// Does the resource have this subresource?
    pub fn has_subresource(&self, sub: &str) -> bool {
        (sub == "status" && self.status_subresource) || self.subresources.iter().any(|s| s == sub)
    }

    /// The APIResource entries for discovery (the resource and its subresources).
    pub fn discovery(&self) -> Vec<Value> {
        let mut out = vec![json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": self.verbs,
            "shortNames": self.short_names,
            "categories": self.categories,
        })];
        if self.status_subresource {
            out.push(json!({
                "name": format!("{}/status", self.plural),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        for sub in &self.subresources {
            let (kind, group, version, verbs): (&str, &str, &str, Vec<&str>) = match sub.as_str() {
                "token" => (
                    "TokenRequest",
                    "authentication.k8s.io",
                    "v1",
                    vec!["create"],
                ),
                "proxy" => (
                    "ServiceProxyOptions",
                    "",
                    "",
                    vec!["create", "delete", "get", "patch", "update"],
                ),
                "finalize" => (self.kind.as_str(), "", "", vec!["update"]),
                _ => (self.kind.as_str(), "", "", vec!["get"]),
            };
            let mut entry = json!({
                "name": format!("{}/{}", self.plural, sub),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": kind,
                "verbs": verbs,
            });
            if !group.is_empty() {
                entry["group"] = json!(group);
                entry["version"] = json!(version);
            }
            out.push(entry);
        }
        out
    }
}

#[allow(clippy::too_many_arguments)]
fn builtin(
    group: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    short: &[&str],
    categories: &[&str],
    status: bool,
    subresources: &[&str],
) -> ResourceType {
    ResourceType {
        group: group.to_string(),
        version: "v1".to_string(),
        kind: kind.to_string(),
        plural: plural.to_string(),
        singular: kind.to_lowercase(),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: categories.iter().map(|s| s.to_string()).collect(),
        verbs: ALL_VERBS.iter().map(|s| s.to_string()).collect(),
        status_subresource: status,
        subresources: subresources.iter().map(|s| s.to_string()).collect(),
        crd: None,
        schema: None,
        printer_columns: vec![],
    }
}

/// All resources, keyed by (group, version, plural).
#[derive(Debug, Clone)]
pub struct Registry {
    types: BTreeMap<(String, String, String), ResourceType>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// The built-in resources.
    pub fn new() -> Self {
        let mut types = vec![
            builtin(
                "",
                "Namespace",
                "namespaces",
                false,
                &["ns"],
                &[],
                true,
                &["finalize"],
            ),
            builtin("", "Secret", "secrets", true, &[], &[], false, &[]),
            builtin(
                "",
                "ConfigMap",
                "configmaps",
                true,
                &["cm"],
                &[],
                false,
                &[],
            ),
            builtin("", "Event", "events", true, &["ev"], &[], false, &[]),
            builtin(
                "",
                "ServiceAccount",
                "serviceaccounts",
                true,
                &["sa"],
                &[],
                false,
                &["token"],
            ),
            builtin(
                "",
                "Service",
                "services",
                true,
                &["svc"],
                &["all"],
                true,
                &["proxy"],
            ),
            builtin(
                "events.k8s.io",
                "Event",
                "events",
                true,
                &["ev"],
                &[],
                false,
                &[],
            ),
            builtin(
                "coordination.k8s.io",
                "Lease",
                "leases",
                true,
                &[],
                &[],
                false,
                &[],
            ),
            builtin(
                "rbac.authorization.k8s.io",
                "Role",
                "roles",
                true,
                &[],
                &[],
                false,
                &[],
            ),
            builtin(
                "rbac.authorization.k8s.io",
                "ClusterRole",
                "clusterroles",
                false,
                &[],
                &[],
                false,
                &[],
            ),
            builtin(
                "rbac.authorization.k8s.io",
                "RoleBinding",
                "rolebindings",
                true,
                &[],
                &[],
                false,
                &[],
            ),
            builtin(
                "rbac.authorization.k8s.io",
                "ClusterRoleBinding",
                "clusterrolebindings",
                false,
                &[],
                &[],
                false,
                &[],
            ),
            builtin(
                "apiextensions.k8s.io",
                "CustomResourceDefinition",
                "customresourcedefinitions",
                false,
                &["crd", "crds"],
                &["api-extensions"],
                true,
                &[],
            ),
        ];
        // Stored only, never run: lets the deploy/ manifests (Deployment, PDB,
        // NetworkPolicy, ...) be applied in tests. No pods, no rollout, no status.
        types.extend([
            builtin(
                "apps",
                "Deployment",
                "deployments",
                true,
                &["deploy"],
                &["all"],
                true,
                &[],
            ),
            builtin(
                "apps",
                "StatefulSet",
                "statefulsets",
                true,
                &["sts"],
                &["all"],
                true,
                &[],
            ),
            builtin(
                "apps",
                "DaemonSet",
                "daemonsets",
                true,
                &["ds"],
                &["all"],
                true,
                &[],
            ),
            builtin(
                "policy",
                "PodDisruptionBudget",
                "poddisruptionbudgets",
                true,
                &["pdb"],
                &[],
                true,
                &[],
            ),
            builtin(
                "networking.k8s.io",
                "NetworkPolicy",
                "networkpolicies",
                true,
                &["netpol"],
                &[],
                false,
                &[],
            ),
            // `kubectl describe namespace` lists these.
            builtin(
                "",
                "ResourceQuota",
                "resourcequotas",
                true,
                &["quota"],
                &[],
                true,
                &[],
            ),
            builtin(
                "",
                "LimitRange",
                "limitranges",
                true,
                &["limits"],
                &[],
                false,
                &[],
            ),
        ]);
        let mut ssar = builtin(
            "authorization.k8s.io",
            "SelfSubjectAccessReview",
            "selfsubjectaccessreviews",
            false,
            &[],
            &[],
            false,
            &[],
        );
        ssar.verbs = vec!["create".into()];
        types.push(ssar);
        let mut ssrr = builtin(
            "authorization.k8s.io",
            "SelfSubjectRulesReview",
            "selfsubjectrulesreviews",
            false,
            &[],
            &[],
            false,
            &[],
        );
        ssrr.verbs = vec!["create".into()];
        types.push(ssrr);
        let mut ssr = builtin(
            "authentication.k8s.io",
            "SelfSubjectReview",
            "selfsubjectreviews",
            false,
            &[],
            &[],
            false,
            &[],
        );
        ssr.verbs = vec!["create".into()];
        types.push(ssr);
        let mut reg = Registry {
            types: BTreeMap::new(),
        };
        for t in types {
            reg.insert(t);
        }
        reg
    }

    /// Add or replace a resource.
    pub fn insert(&mut self, t: ResourceType) {
        self.types
            .insert((t.group.clone(), t.version.clone(), t.plural.clone()), t);
    }

    /// Remove every version a CRD registered.
    pub fn remove_crd(&mut self, crd_name: &str) {
        self.types.retain(|_, t| t.crd.as_deref() != Some(crd_name));
    }

    /// Look a resource up.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
    }

    /// Any served version of (group, plural): used by GC and RBAC, which are version-free.
    pub fn any_version(&self, group: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .values()
            .find(|t| t.group == group && t.plural == plural)
    }

    /// Find by group + kind (ownerReferences name kinds, not resources).
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceType> {
        self.types
            .values()
            .find(|t| t.api_version() == api_version && t.kind == kind)
            .or_else(|| {
                let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
                self.types
                    .values()
                    .find(|t| t.group == group && t.kind == kind)
            })
    }

    /// All resources.
    pub fn all(&self) -> impl Iterator<Item = &ResourceType> {
        self.types.values()
    }

    /// Resources of one group/version.
    pub fn in_group_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'a ResourceType> + 'a {
        self.types
            .values()
            .filter(move |t| t.group == group && t.version == version)
    }

    /// Groups (other than core) with their versions, newest registration order kept simple:
    /// versions sorted descending so `v1` wins over `v1alpha1` as preferred.
    pub fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for t in self.types.values() {
            if t.group.is_empty() {
                continue;
            }
            let versions = out.entry(t.group.clone()).or_default();
            if !versions.contains(&t.version) {
                versions.push(t.version.clone());
            }
        }
        for versions in out.values_mut() {
            versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        out
    }
}

/// Kubernetes version priority: GA > beta > alpha, then by number.
fn version_priority(v: &str) -> (u8, u32, u32) {
    let rest = v.trim_start_matches('v');
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let major = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    let (level, minor) = if tail.is_empty() {
        (3, 0)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (2, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n.parse().unwrap_or(0))
    } else {
        (0, 0)
    };
    (level, major, minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_registered() {
        let r = Registry::new();
        let s = r.get("", "v1", "secrets").expect("secrets");
        assert!(s.namespaced);
        assert_eq!(s.qualified(), "secrets");
        let l = r
            .get("coordination.k8s.io", "v1", "leases")
            .expect("leases");
        assert_eq!(l.qualified(), "leases.coordination.k8s.io");
        assert_eq!(l.api_version(), "coordination.k8s.io/v1");
        let sa = r.get("", "v1", "serviceaccounts").expect("sa");
        let names: Vec<String> = sa
            .discovery()
            .iter()
            .map(|d| d["name"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(names, ["serviceaccounts", "serviceaccounts/token"]);
    }

    #[test]
    fn preferred_version_order() {
        let mut v = vec!["v1alpha1", "v1", "v2beta1", "v1beta1"];
        v.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        assert_eq!(v, ["v1", "v2beta1", "v1beta1", "v1alpha1"]);
    }
}
