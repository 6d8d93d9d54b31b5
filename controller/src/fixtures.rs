//! Test fixtures: builders on the CRD type and Secrets (house style rule 14).

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kage_core::api::v1alpha1::{AgeSecret, AgeSecretBody, AgeSecretSpec, AgeSecretStatus, Scope};
use kage_core::document::Document;
use kage_core::keys::{Identity, KeyRing};
use kage_core::sealed::{self, Binding};
use kage_core::sops::{self, EncryptOptions, Selection};

/// A fixed test identity and its ring.
pub struct TestKeys {
    pub id: Identity,
    pub ring: KeyRing,
}

impl TestKeys {
    pub fn new() -> TestKeys {
        let id = Identity::generate();
        let ring = KeyRing::from_identities([id.clone()]);
        TestKeys { id, ring }
    }
}

/// Builders on `AgeSecret`.
pub trait AgeSecretFixture: Sized {
    /// `prod/db`, uid `uid-db`, generation 1, empty spec.
    fn test() -> Self;
    fn with_scope(self, scope: Scope) -> Self;
    /// Seal `value` under `key` for this object's current scope, namespace and name.
    fn sealed(self, key: &str, value: &[u8], id: &Identity) -> Self;
    /// Seal with an explicit binding (to test mismatches).
    fn sealed_for(self, key: &str, value: &[u8], binding: &Binding, id: &Identity) -> Self;
    fn raw_value(self, key: &str, sealed: &str) -> Self;
    fn suspended(self) -> Self;
    fn with_status(self, status: AgeSecretStatus) -> Self;
    fn with_generation(self, generation: i64) -> Self;
    fn edit_spec(self, f: impl FnOnce(&mut AgeSecretSpec)) -> Self;
    /// Turn into the SOPS form: `data` (base64 plaintext), `string_data` and, if `binding` is
    /// given, the encrypted binding text.
    fn sops(
        self,
        data: &[(&str, &[u8])],
        string_data: &[(&str, &str)],
        binding: Option<String>,
        id: &Identity,
    ) -> Self;
}

impl AgeSecretFixture for AgeSecret {
    fn test() -> Self {
        let mut ags = AgeSecret::new(
            "db",
            AgeSecretBody {
                spec: AgeSecretSpec::default(),
                sops: None,
            },
        );
        ags.metadata.namespace = Some("prod".into());
        ags.metadata.uid = Some("uid-db".into());
        ags.metadata.generation = Some(1);
        ags
    }

    fn with_scope(mut self, scope: Scope) -> Self {
        self.spec.spec.scope = scope;
        self
    }

    fn sealed(self, key: &str, value: &[u8], id: &Identity) -> Self {
        let binding = Binding::new(
            self.body().scope,
            self.metadata.namespace.as_deref().unwrap_or_default(),
            self.metadata.name.as_deref().unwrap_or_default(),
            key,
        );
        self.sealed_for(key, value, &binding, id)
    }

    fn sealed_for(self, key: &str, value: &[u8], binding: &Binding, id: &Identity) -> Self {
        let s = sealed::seal(value, binding, &[id.recipient()]).unwrap();
        self.raw_value(key, &s)
    }

    fn raw_value(mut self, key: &str, sealed: &str) -> Self {
        self.spec
            .spec
            .encrypted_data
            .insert(key.into(), sealed.into());
        self
    }

    fn suspended(mut self) -> Self {
        self.spec.spec.suspend = true;
        self
    }

    fn with_status(mut self, status: AgeSecretStatus) -> Self {
        self.status = Some(status);
        self
    }

    fn with_generation(mut self, generation: i64) -> Self {
        self.metadata.generation = Some(generation);
        self
    }

    fn edit_spec(mut self, f: impl FnOnce(&mut AgeSecretSpec)) -> Self {
        f(&mut self.spec.spec);
        self
    }

    fn sops(
        mut self,
        data: &[(&str, &[u8])],
        string_data: &[(&str, &str)],
        binding: Option<String>,
        id: &Identity,
    ) -> Self {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut spec = serde_json::Map::new();
        if let Some(b) = binding {
            spec.insert("binding".into(), b.into());
        }
        if !data.is_empty() {
            let m: serde_json::Map<String, serde_json::Value> = data
                .iter()
                .map(|(k, v)| (k.to_string(), b64.encode(v).into()))
                .collect();
            spec.insert("data".into(), m.into());
        }
        spec.insert("scope".into(), self.body().scope.as_str().into());
        if !string_data.is_empty() {
            let m: serde_json::Map<String, serde_json::Value> = string_data
                .iter()
                .map(|(k, v)| (k.to_string(), (*v).into()))
                .collect();
            spec.insert("stringData".into(), m.into());
        }
        let doc = serde_json::json!({
            "apiVersion": "kage.dev/v1alpha1",
            "kind": "AgeSecret",
            "spec": spec,
        });
        let opts = EncryptOptions {
            key_groups: vec![vec![id.recipient()]],
            shamir_threshold: 0,
            selection: Selection::EncryptedRegex("^(data|stringData|binding)$".into()),
            mac_only_encrypted: true,
        };
        let enc = sops::encrypt(&[Document::from_json_value(&doc)], &opts).unwrap();
        let v = enc[0].to_json_value();
        let body: AgeSecretBody = serde_json::from_value(serde_json::json!({
            "spec": v["spec"],
            "sops": v["sops"],
        }))
        .unwrap();
        self.spec = body;
        self
    }
}

/// A Secret `prod/db` with the given data and metadata tweaks.
pub fn secret(data: &[(&str, &[u8])], f: impl FnOnce(&mut ObjectMeta)) -> Secret {
    let mut meta = ObjectMeta {
        name: Some("db".into()),
        namespace: Some("prod".into()),
        ..ObjectMeta::default()
    };
    f(&mut meta);
    Secret {
        metadata: meta,
        type_: Some("Opaque".into()),
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Secret::default()
    }
}

/// An ownerReference to the test AgeSecret.
pub fn owner_ref() -> OwnerReference {
    OwnerReference {
        api_version: "kage.dev/v1alpha1".into(),
        kind: "AgeSecret".into(),
        name: "db".into(),
        uid: "uid-db".into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}
