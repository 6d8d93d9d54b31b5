//! A temporary directory to run `kage` in, and the external tools' locations.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The kage binary under test.
pub fn kage_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kage"))
}

/// A tool from its environment variable or the PATH; panics (fails the test) when missing.
pub fn tool(var: &str, name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(p.exists(), "{var}={} does not exist", p.display());
        return p;
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("{name} not found: set {var} or put it on the PATH (source scripts/tools.sh)");
}

/// A scratch directory.
pub struct Dir {
    /// Kept alive for the test.
    pub tmp: tempfile::TempDir,
}

/// A finished run.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 for a signal).
    pub code: i32,
    /// stdout.
    pub stdout: Vec<u8>,
    /// stderr, as text.
    pub stderr: String,
}

impl Run {
    /// stdout as text.
    pub fn out(&self) -> String {
        String::from_utf8(self.stdout.clone()).expect("stdout is UTF-8")
    }

    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> String {
        assert_eq!(self.code, 0, "stderr: {}", self.stderr);
        self.out()
    }

    /// Asserts a failure with `code`, one `error:` line (plus an optional `hint:` line), no
    /// panic, and returns stderr.
    #[track_caller]
    pub fn fails(&self, code: i32) -> String {
        assert_eq!(
            self.code,
            code,
            "stdout: {}\nstderr: {}",
            self.out(),
            self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert!(
            (1..=2).contains(&lines.len()) && lines[0].starts_with("error: "),
            "one error line expected: {}",
            self.stderr
        );
        if lines.len() == 2 {
            assert!(lines[1].starts_with("hint: "), "{}", self.stderr);
        }
        self.stderr.clone()
    }
}

impl Dir {
    /// A new empty directory.
    pub fn new() -> Dir {
        Dir {
            tmp: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// A path inside.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// Writes a file (creating parents).
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, contents).unwrap();
        p
    }

    /// Reads a file as text.
    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// Whether a file exists.
    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    /// A `kage` command in this directory with a clean key environment.
    pub fn kage(&self, args: &[&str]) -> Cmd {
        let mut c = Command::new(kage_bin());
        c.args(args).current_dir(self.tmp.path());
        for v in [
            "KAGE_IDENTITY",
            "KAGE_CONFIG",
            "SOPS_AGE_KEY_FILE",
            "SOPS_AGE_KEY",
            "SOPS_AGE_RECIPIENTS",
            "EDITOR",
            "VISUAL",
        ] {
            c.env_remove(v);
        }
        Cmd {
            cmd: c,
            stdin: None,
        }
    }

    /// Any command in this directory.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Cmd {
        let mut c = Command::new(program);
        c.args(args).current_dir(self.tmp.path());
        Cmd {
            cmd: c,
            stdin: None,
        }
    }

    /// `kage keygen -o rel`, returning the recipient.
    pub fn keygen(&self, rel: &str) -> String {
        self.kage(&["keygen", "-o", rel]).run().ok();
        recipient_of(&self.read(rel))
    }

    /// Seals Secret `namespace/name` (from [`secret_yaml`]) to `recipient` into `out`.
    pub fn seal_secret(&self, name: &str, namespace: &str, recipient: &str, out: &str) {
        let input = format!("{name}.in.yaml");
        self.write(&input, secret_yaml(name, namespace));
        self.kage(&["seal", &input, "-r", recipient, "-o", out])
            .run()
            .ok();
    }
}

/// The `# public key:` of an identity file.
pub fn recipient_of(identity_file: &str) -> String {
    identity_file
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .expect("public key line")
        .to_string()
}

/// A command being built.
pub struct Cmd {
    cmd: Command,
    stdin: Option<Vec<u8>>,
}

impl Cmd {
    /// Sets an environment variable.
    pub fn env(mut self, k: &str, v: impl AsRef<std::ffi::OsStr>) -> Cmd {
        self.cmd.env(k, v);
        self
    }

    /// Feeds stdin.
    pub fn stdin(mut self, bytes: impl AsRef<[u8]>) -> Cmd {
        self.stdin = Some(bytes.as_ref().to_vec());
        self
    }

    /// Starts it with stdin, stdout and stderr on /dev/null (for tests that signal it).
    pub fn spawn_quiet(mut self) -> std::process::Child {
        self.cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn")
    }

    /// Runs to completion.
    pub fn run(mut self) -> Run {
        self.cmd
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.cmd.spawn().expect("spawn");
        if let Some(bytes) = self.stdin.take() {
            let mut stdin = child.stdin.take().unwrap();
            std::thread::spawn(move || {
                let _ = stdin.write_all(&bytes);
            });
        }
        let Output {
            status,
            stdout,
            stderr,
        } = child.wait_with_output().expect("wait");
        Run {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

/// A Secret manifest for tests.
pub fn secret_yaml(name: &str, ns: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {ns}\ntype: Opaque\n\
         stringData:\n  username: admin\n  password: \"s3cr3t: with # chars\"\n"
    )
}

/// The mode bits of a file.
pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Parses YAML or JSON (multi-document) into JSON values for comparisons.
pub fn values(text: &str) -> Vec<serde_json::Value> {
    if text.trim_start().starts_with('{') {
        serde_json::Deserializer::from_str(text)
            .into_iter()
            .map(|v| v.unwrap())
            .collect()
    } else {
        let opts = serde_saphyr::options! { strict_booleans: true };
        let docs: Vec<serde_json::Value> =
            serde_saphyr::from_multiple_with_options(text, opts).unwrap();
        docs.into_iter().filter(|d| !d.is_null()).collect()
    }
}

/// The decoded `data` (and `stringData`) of a Secret value, as bytes.
pub fn secret_data(v: &serde_json::Value) -> std::collections::BTreeMap<String, Vec<u8>> {
    use base64::Engine;
    let mut out = std::collections::BTreeMap::new();
    if let Some(d) = v.get("data").and_then(|d| d.as_object()) {
        for (k, v) in d {
            let b = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap_or(""))
                .unwrap();
            out.insert(k.clone(), b);
        }
    }
    if let Some(d) = v.get("stringData").and_then(|d| d.as_object()) {
        for (k, v) in d {
            out.insert(k.clone(), v.as_str().unwrap().as_bytes().to_vec());
        }
    }
    out
}
