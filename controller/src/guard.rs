//! What an AgeSecret may never produce, whatever it decrypts to: a Secret that the key ring
//! would mistake for one of its own, and labels or annotations in kage's own domain
//! (docs/security.md, "Key injection"). Pure; checked before anything is decrypted.

use kage_core::api::v1alpha1::AgeSecret;
use kage_core::keysecret::{
    KEY_SECRET_PREFIX, RESERVED_DOMAIN, is_reserved_metadata_key, is_reserved_secret_name,
};

use crate::decrypt::Failure;
use crate::plan::Reason;

/// Refuse (`InvalidSpec`) an AgeSecret whose Secret would land in the controller's namespace
/// under a key-ring name, or whose template carries `kage.dev/` labels or annotations.
pub fn check(ags: &AgeSecret, controller_namespace: &str) -> Result<(), Failure> {
    let namespace = ags.metadata.namespace.as_deref().unwrap_or_default();
    let name = ags.metadata.name.as_deref().unwrap_or_default();
    if namespace == controller_namespace && is_reserved_secret_name(name) {
        return Err(Failure::new(
            Reason::InvalidSpec,
            format!(
                "metadata.name: {name:?} is reserved for the key ring in the controller's namespace \
                 {namespace:?} (names starting with \"kage-key\"); use another name or namespace"
            ),
        ));
    }
    let template = &ags.body().template.metadata;
    for (field, keys) in [
        ("labels", template.labels.keys()),
        ("annotations", template.annotations.keys()),
    ] {
        if let Some(key) = keys.into_iter().find(|k| is_reserved_metadata_key(k)) {
            return Err(Failure::new(
                Reason::InvalidSpec,
                format!(
                    "spec.template.metadata.{field}: {key:?} is in the {RESERVED_DOMAIN}/ domain, \
                     which only kage itself writes (e.g. {KEY_SECRET_PREFIX}* key Secrets carry \
                     kage.dev/key); remove it"
                ),
            ));
        }
    }
    Ok(())
}
