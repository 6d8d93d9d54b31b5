//! Shared pieces of the fuzz targets: the test identity of the vectors, and the CLI's readers.
//!
//! The CLI is a binary crate; its manifest and `.kage.yaml` readers are compiled here from their
//! own source files (the modules form a closed set apart from `io::read_file`), so the targets
//! fuzz the very code `kage` runs.

use kage_core::keys::{Identity, KeyRing, parse_identity_file};

/// The identity the SOPS and sealed-value test vectors are encrypted to.
pub const VECTOR_KEY: &str = include_str!("../../shared/tests/vectors/sops/key.txt");
/// The identity the CLI's fixtures (the seeds of the manifest, HTTP and plan targets) use.
pub const FIXTURE_KEY: &str = include_str!("../../cli/tests/cmd/fixtures/key.txt");

/// The test identities of the seeds (public test keys of the repository, never real ones).
pub fn identities() -> Vec<Identity> {
    let mut ids = parse_identity_file(VECTOR_KEY).expect("the vector key parses");
    ids.extend(parse_identity_file(FIXTURE_KEY).expect("the fixture key parses"));
    ids
}

/// A key ring of [`identities`].
pub fn ring() -> KeyRing {
    KeyRing::from_identities(identities())
}

// The CLI modules, compiled from `cli/src` at the crate root (they refer to each other as
// `crate::…`).
#[path = "../../cli/src/agesecret.rs"]
#[allow(dead_code, clippy::all)]
pub mod agesecret;
#[path = "../../cli/src/config.rs"]
#[allow(dead_code, clippy::all)]
pub mod config;
#[path = "../../cli/src/exit.rs"]
#[allow(dead_code, clippy::all)]
pub mod exit;
#[path = "../../cli/src/manifest.rs"]
#[allow(dead_code, clippy::all)]
pub mod manifest;
#[path = "../../cli/src/raw.rs"]
#[allow(dead_code, clippy::all)]
pub mod raw;
#[path = "../../cli/src/tree.rs"]
#[allow(dead_code, clippy::all)]
pub mod tree;

/// The one function of the CLI's `io` module the readers call (`--from-file` and
/// `Config::load`, neither reached by the targets).
pub mod io {
    /// Reads a whole file.
    pub fn read_file(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
        Ok(std::fs::read(path)?)
    }
}

/// The SOPS target: parse, open with the vector identity, and when it opens, check that the
/// decrypted tree re-encrypts and opens again to the same plaintext.
pub fn sops(data: &[u8], format: kage_core::document::Format) {
    use kage_core::{document, sops};
    let Ok(docs) = document::parse(data, format) else {
        return;
    };
    let ids = identities();
    let _ = sops::recipients_of(&docs);
    let Ok(file) = sops::SopsFile::open(&docs, &ids) else {
        return;
    };
    let plain = file.plaintext().to_vec();
    let resealed = file.reseal(&plain).expect("an opened file reseals");
    let again = sops::SopsFile::open(&resealed, &ids).expect("a resealed file opens");
    assert_eq!(again.plaintext(), &plain[..]);
}
