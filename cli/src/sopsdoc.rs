//! The SOPS form, through kage-core's document model and SOPS engine.

use anyhow::Result;
use kage_core::keys::Identity;
use zeroize::Zeroizing;

use crate::args::SopsArgs;
use crate::cmd::seal::SopsSealOptions;
use crate::exit::user;
use crate::keysrc::Target;
use crate::manifest::Secret;

fn pending() -> anyhow::Error {
    user("SOPS files need kage-core's SOPS engine, which this build lacks").into()
}

/// `kage seal --sops` of one input.
pub fn seal_bytes(_: &[u8], _: &SopsArgs, _: &Target, _: SopsSealOptions<'_>) -> Result<String> {
    Err(pending())
}

/// `kage seal --sops` of a Secret built from literals.
pub fn seal_secret(_: &Secret, _: &SopsArgs, _: &Target, _: SopsSealOptions<'_>) -> Result<String> {
    Err(pending())
}

/// Decrypts a SOPS file; SOPS AgeSecrets come out as Secret manifests.
pub fn unseal(_: &[u8], _: &[Identity], _: bool) -> Result<Zeroizing<String>> {
    Err(pending())
}

/// Sets (`Some`) or removes (`None`) the value at a dotted path, keeping other ciphertexts.
pub fn set(_: &[u8], _: &str, _: Option<&[u8]>, _: &[Identity]) -> Result<String> {
    Err(pending())
}

/// `kage validate` of a SOPS file.
pub fn validate(_: &[u8], _: &crate::cmd::validate::Context<'_>, f: &mut crate::cmd::validate::Findings) {
    f.errors.push("SOPS files need kage-core's SOPS engine, which this build lacks".into());
}

/// `kage reencrypt` of a SOPS file: `None` when already current (and no rotation asked).
pub fn reencrypt(_: &[u8], _: &[Identity], _: &Target, _: bool) -> Result<Option<String>> {
    Err(pending())
}

/// The plaintext of a SOPS file for editing, and its format.
pub fn edit_plain(_: &[u8], _: &[Identity]) -> Result<(Zeroizing<String>, crate::tree::Format)> {
    Err(pending())
}

/// The SOPS file after editing: unchanged values keep their ciphertext.
pub fn edit_apply(_: &[u8], _: &str, _: &[Identity]) -> Result<String> {
    Err(pending())
}

/// Whether the bytes hold a SOPS document.
pub fn is_sops(bytes: &[u8]) -> bool {
    crate::raw::looks_like_sops(bytes)
}
