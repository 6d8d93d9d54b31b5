//! `kage.dev/v1alpha1`: the `AgeSecret` custom resource.
//!
//! These types are a wire format (house style rule 3): they describe what the API server stores,
//! field for field, and carry no behaviour beyond small accessors. The controller converts them
//! into its own decisions; the CLI writes them.
//!
//! An `AgeSecret` comes in two forms (DESIGN §2):
//!
//! * **sealed** (default): `spec.encryptedData` maps each Secret key to a sealed value
//!   `kage:v1:<kid>[,<kid>…]:<base64>`;
//! * **SOPS**: the document carries a top-level `sops` block, the values sit under `spec.data`
//!   (base64 of the value, as in a Secret) and `spec.stringData` (the value itself) as SOPS
//!   `ENC[…]` strings, and `spec.binding` holds the encrypted binding text.
//!
//! Because the top-level `sops` block is a sibling of `spec`, the derived struct is the whole
//! body of the resource (`#[kube(no_spec)]`): [`AgeSecret::spec`] is an [`AgeSecretBody`] that
//! holds the real `spec` and the optional `sops` block. Use [`AgeSecret::body`] for the spec.
//!
//! ```
//! use kage_core::api::v1alpha1::{AgeSecret, AgeSecretBody, AgeSecretSpec, Scope};
//! use kube::core::CustomResourceExt;
//!
//! let mut spec = AgeSecretSpec::default();
//! spec.encrypted_data.insert("password".into(), "kage:v1:0011223344556677:AAAA".into());
//! let ags = AgeSecret::new("db", AgeSecretBody { spec, sops: None });
//! assert_eq!(ags.body().scope, Scope::Strict);
//! assert_eq!(AgeSecret::crd_name(), "agesecrets.kage.dev");
//! ```
#![warn(missing_docs)]

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// API group of every kage resource.
pub const GROUP: &str = crate::k8s::GROUP;
/// API version of this module.
pub const VERSION: &str = crate::k8s::VERSION;
/// Prefix of every sealed value (`spec.encryptedData`).
pub const SEALED_PREFIX: &str = "kage:v1:";
/// The condition type kstatus, Argo CD and Flux read.
pub const CONDITION_READY: &str = "Ready";

/// The body of an `AgeSecret`: its `spec` and, for the SOPS form, the top-level `sops` block.
///
/// The generated root type is [`AgeSecret`]; this struct is flattened into it, so `spec` and
/// `sops` sit at the top level of the resource next to `metadata` and `status`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
// The derive needs literals: `derive_names_are_the_k8s_constants` holds them to `crate::k8s`.
#[kube(
    group = "kage.dev",
    version = "v1alpha1",
    kind = "AgeSecret",
    plural = "agesecrets",
    singular = "agesecret",
    shortname = "ags",
    namespaced,
    no_spec,
    status = "AgeSecretStatus",
    doc = "An AgeSecret: Secret values encrypted with age, decrypted in the cluster by \
           kage-controller into a Secret of the same name.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AgeSecretBody {
    /// What the Secret holds and how it is shaped.
    #[serde(default)]
    pub spec: AgeSecretSpec,
    /// SOPS metadata (the SOPS form only): kept exactly as written, the controller verifies its
    /// MAC. Absent for the sealed form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub sops: Option<serde_json::Value>,
}

/// The `spec` of an `AgeSecret`.
///
/// Exactly one form is used: `encryptedData` (sealed), or `data`/`stringData`/`binding` with a
/// top-level `sops` block (SOPS). The controller reports a mix as `InvalidSpec`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgeSecretSpec {
    /// The binding scope the values were sealed with. Informative: the scope sealed inside each
    /// value is the one that counts, and a disagreement is an error (`ScopeMismatch`).
    #[serde(default)]
    pub scope: Scope,

    /// Sealed form: Secret key → sealed value `kage:v1:<kid>[,<kid>…]:<base64 age ciphertext>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "sealed_values_map")]
    pub encrypted_data: BTreeMap<String, String>,

    /// SOPS form: Secret key → SOPS `ENC[…]` string whose plaintext is the base64 of the value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "sops_values_map")]
    pub data: BTreeMap<String, String>,

    /// SOPS form: Secret key → SOPS `ENC[…]` string whose plaintext is the value itself.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "sops_values_map")]
    pub string_data: BTreeMap<String, String>,

    /// SOPS form: the encrypted binding (`ENC[…]` of `kage-binding:v1;scope=…;namespace=…;name=…`).
    /// Required unless the controller runs with `--allow-unbound-sops`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<String>,

    /// The shape of the Secret to create.
    #[serde(default, skip_serializing_if = "SecretTemplate::is_empty")]
    pub template: SecretTemplate,

    /// When true, the controller leaves the Secret as it is and reports `Ready=False`,
    /// reason `Suspended`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub suspend: bool,
}

/// Binding scope of a sealed value (DESIGN §2.1): the one type of kage-core.
pub use crate::sealed::Scope;

/// The shape of the Secret the controller writes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplate {
    /// Secret `type`; `Opaque` when absent.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,

    /// Secret `immutable`; absent means mutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,

    /// Labels and annotations of the Secret.
    #[serde(default, skip_serializing_if = "TemplateMetadata::is_empty")]
    pub metadata: TemplateMetadata,

    /// Non-secret values, in clear text (not base64), added to the Secret's data. A key also in
    /// the encrypted values is an `InvalidSpec` error.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,

    /// When true the Secret gets no ownerReference to the AgeSecret, so deleting the AgeSecret
    /// leaves the Secret in place (the Secret is still recognised as managed through its
    /// `app.kubernetes.io/managed-by: kage` label and `kage.dev/managed: "true"` annotation).
    #[serde(default, skip_serializing_if = "is_false")]
    pub skip_owner_reference: bool,
}

impl SecretTemplate {
    /// True when every field has its default value.
    pub fn is_empty(&self) -> bool {
        self == &SecretTemplate::default()
    }
}

/// Labels and annotations for the Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateMetadata {
    /// Labels copied to the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations copied to the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl TemplateMetadata {
    /// True when there are neither labels nor annotations.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.annotations.is_empty()
    }
}

/// The observed state of an `AgeSecret` (kstatus shape).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgeSecretStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Conditions; `Ready` is the one that matters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// Name of the Secret written (same as the AgeSecret's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,

    /// Key ids (kids) that sealed the values, sorted; `kage keys usage` reads them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_ids: Vec<String>,
}

impl AgeSecretStatus {
    /// The condition of the given type, if present.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

/// A status condition in the shape of `metav1.Condition`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// PascalCase machine-readable reason, e.g. `Decrypted`.
    #[serde(default)]
    pub reason: String,
    /// Human-readable message; never contains secret values.
    #[serde(default)]
    pub message: String,
    /// RFC 3339 time of the last change of `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "date_time")]
    pub last_transition_time: Option<String>,
    /// The `metadata.generation` the condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl AgeSecret {
    /// The resource's `spec` (the sealed or SOPS values and the Secret template).
    pub fn body(&self) -> &AgeSecretSpec {
        &self.spec.spec
    }

    /// True when the resource is in the SOPS form (it has a top-level `sops` block).
    pub fn is_sops(&self) -> bool {
        self.spec.sops.is_some()
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "description": "SOPS metadata (the SOPS form only), kept as written.",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

fn sealed_values_map(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "description": "Secret key -> sealed value `kage:v1:<kid>[,<kid>...]:<base64 age ciphertext>`.",
        "additionalProperties": {"type": "string", "pattern": "^kage:v1:"}
    })
}

fn sops_values_map(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "description": "SOPS form: Secret key -> SOPS `ENC[...]` value.",
        "additionalProperties": {"type": "string"}
    })
}

fn date_time(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "format": "date-time"})
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::CustomResourceExt;

    #[test]
    fn sops_block_round_trips_at_top_level() {
        let json = serde_json::json!({
            "apiVersion": "kage.dev/v1alpha1",
            "kind": "AgeSecret",
            "metadata": {"name": "db", "namespace": "prod"},
            "spec": {"data": {"password": "ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]"},
                     "binding": "ENC[AES256_GCM,data:b,iv:y,tag:z,type:str]"},
            "sops": {"mac": "ENC[...]", "version": "3.9.0", "age": [{"recipient": "age1x"}]}
        });
        let ags: AgeSecret = serde_json::from_value(json.clone()).unwrap();
        assert!(ags.is_sops());
        assert_eq!(ags.body().scope, Scope::Strict);
        assert_eq!(ags.body().data.len(), 1);
        let back = serde_json::to_value(&ags).unwrap();
        assert_eq!(back["sops"], json["sops"]);
        assert_eq!(back["spec"]["binding"], json["spec"]["binding"]);
        assert_eq!(back["apiVersion"], "kage.dev/v1alpha1");
    }

    #[test]
    fn sealed_form_serializes_without_empty_fields() {
        let mut spec = AgeSecretSpec::default();
        spec.encrypted_data
            .insert("k".into(), "kage:v1:0011223344556677:AA".into());
        let ags = AgeSecret::new("db", AgeSecretBody { spec, sops: None });
        let v = serde_json::to_value(&ags).unwrap();
        assert!(v.get("sops").is_none());
        assert_eq!(v["spec"]["scope"], "strict");
        assert!(v["spec"].get("template").is_none());
        assert!(v["spec"].get("suspend").is_none());
        assert!(v.get("status").is_none());
    }

    #[test]
    fn derive_names_are_the_k8s_constants() {
        use kube::Resource;
        assert_eq!(AgeSecret::api_version(&()), crate::k8s::API_VERSION);
        assert_eq!(AgeSecret::group(&()), crate::k8s::GROUP);
        assert_eq!(AgeSecret::version(&()), crate::k8s::VERSION);
        assert_eq!(AgeSecret::kind(&()), crate::k8s::KIND);
        assert_eq!(AgeSecret::plural(&()), crate::k8s::PLURAL);
    }

    #[test]
    fn crd_names() {
        let crd = AgeSecret::crd();
        assert_eq!(crd.spec.group, GROUP);
        assert_eq!(crd.spec.names.kind, crate::k8s::KIND);
        assert_eq!(crd.spec.names.plural, crate::k8s::PLURAL);
        assert_eq!(crd.spec.names.short_names, Some(vec!["ags".to_string()]));
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.versions[0].name, VERSION);
    }
}
