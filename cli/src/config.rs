//! `.kage.yaml`: environments, their path globs and recipients (DESIGN §3).
//!
//! Found by searching upward from the working directory (or `--config` / `KAGE_CONFIG`). Path
//! globs are relative to the directory holding `.kage.yaml`; `*` stays inside one path segment
//! and `**` crosses them.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Deserialize;

use crate::exit::{Exit, user};

/// The file name searched for.
pub const FILE_NAME: &str = ".kage.yaml";

/// One environment as written in `.kage.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Environment {
    /// Unique name (`prod`).
    pub name: String,
    /// Globs of the files that belong to this environment.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Cluster keys, newest first.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Break-glass / disaster-recovery recipients.
    #[serde(default)]
    pub extra_recipients: Vec<String>,
    /// Default binding scope.
    #[serde(default)]
    pub scope: Option<String>,
    /// Where the controller runs (used by the cluster commands).
    #[serde(default)]
    pub cluster: Option<ClusterRef>,
}

/// `cluster:` of an environment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterRef {
    /// kubeconfig context.
    #[serde(default)]
    pub context: Option<String>,
    /// Namespace of the controller.
    #[serde(default)]
    pub namespace: Option<String>,
}

// Unknown fields are refused at every level: a typo (`extraRecipient:`) would otherwise
// silently drop what it names (a break-glass key from every sealed value).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    environments: Vec<Environment>,
}

/// A loaded `.kage.yaml`.
#[derive(Debug)]
pub struct Config {
    /// Its directory: globs are relative to it.
    pub root: PathBuf,
    /// The path as shown in messages (relative to the working directory when below it).
    pub shown: String,
    /// The environments, in file order.
    pub environments: Vec<Environment>,
    globs: Vec<GlobSet>,
}

impl Config {
    /// Loads `explicit`, or searches upward from the working directory. `Ok(None)` when there is
    /// no `.kage.yaml` anywhere above.
    pub fn find(explicit: Option<&Path>) -> Result<Option<Config>> {
        if let Some(p) = explicit {
            return Config::load(p).map(Some);
        }
        let cwd = std::env::current_dir().context("reading the working directory")?;
        for dir in cwd.ancestors() {
            let candidate = dir.join(FILE_NAME);
            if candidate.is_file() {
                return Config::load(&candidate).map(Some);
            }
        }
        Ok(None)
    }

    /// Environment `name` of .kage.yaml (which must then exist); `None` when no name is given.
    pub fn named_env(explicit: Option<&Path>, name: Option<&str>) -> Result<Option<Environment>> {
        let Some(name) = name else {
            return Ok(None);
        };
        Ok(Some(Config::require(explicit)?.env(name)?.clone()))
    }

    /// Like [`Config::find`], but a missing file is an error.
    pub fn require(explicit: Option<&Path>) -> Result<Config> {
        Config::find(explicit)?.ok_or_else(|| {
            user(format!(
                "no {FILE_NAME} in the working directory or any parent"
            ))
            .hint("create one (see docs/cli.md), pass --config FILE, or give recipients with -r/-R")
            .into()
        })
    }

    /// Reads and checks one file.
    pub fn load(path: &Path) -> Result<Config> {
        let bytes = crate::io::read_file(path)?;
        Config::parse(path, &bytes).with_context(|| format!("reading {}", path.display()))
    }

    /// Parses the text of a `.kage.yaml` found at `path`.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Config> {
        kage_core::limits::check_size(bytes.len(), "YAML")?;
        let text = std::str::from_utf8(bytes).map_err(|_| user("not UTF-8 text"))?;
        let mut field = String::new();
        let raw: RawConfig = serde_saphyr::with_deserializer_from_str_with_options(
            text,
            kage_core::limits::yaml_options(),
            |de| {
                serde_path_to_error::deserialize(de).map_err(|e| {
                    field = e.path().to_string();
                    e.into_inner()
                })
            },
        )
        .map_err(|e| -> anyhow::Error {
            match kage_core::limits::from_yaml_error(&e) {
                Some(limit) => limit.into(),
                None => config_error(&e, &field).into(),
            }
        })?;
        let mut globs = Vec::new();
        for (i, env) in raw.environments.iter().enumerate() {
            if env.name.is_empty() {
                return Err(user(format!("environments[{i}] has an empty name")).into());
            }
            if raw.environments[..i].iter().any(|e| e.name == env.name) {
                return Err(user(format!("environment {:?} is defined twice", env.name)).into());
            }
            if let Some(scope) = &env.scope {
                scope.parse::<kage_core::sealed::Scope>().map_err(|_| {
                    user(format!(
                        "environment {}: scope {scope:?} is not strict, namespace or cluster",
                        env.name
                    ))
                })?;
            }
            for r in env.recipients.iter().chain(&env.extra_recipients) {
                r.parse::<kage_core::keys::Recipient>()
                    .map_err(|e| user(format!("environment {}: recipient {r:?}: {e}", env.name)))?;
            }
            let mut set = GlobSetBuilder::new();
            for p in &env.paths {
                set.add(glob(p).map_err(|e| {
                    user(format!("environment {}: path glob {p:?}: {e}", env.name))
                })?);
            }
            globs.push(
                set.build()
                    .map_err(|e| user(format!("environment {}: {e}", env.name)))?,
            );
        }
        let path = absolute(path)?;
        let root = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let shown = std::env::current_dir()
            .ok()
            .and_then(|cwd| path.strip_prefix(cwd).ok().map(|p| p.display().to_string()))
            .unwrap_or_else(|| path.display().to_string());
        Ok(Config {
            root,
            shown,
            environments: raw.environments,
            globs,
        })
    }

    /// The environment called `name`.
    pub fn env(&self, name: &str) -> Result<&Environment> {
        self.environments
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = self.environments.iter().map(|e| e.name.as_str()).collect();
                user(format!("no environment {name:?} in {}", self.shown))
                    .hint(format!("known environments: {}", list_or_none(&known)))
                    .exit(Exit::Usage)
                    .into()
            })
    }

    /// The environment whose `paths` match `file`: exactly one, else an error naming them.
    pub fn env_for_path(&self, file: &Path) -> Result<&Environment> {
        let rel = self.relative(file)?;
        let matches: Vec<&Environment> = self
            .environments
            .iter()
            .zip(&self.globs)
            .filter(|(_, g)| g.is_match(&rel))
            .map(|(e, _)| e)
            .collect();
        match matches.as_slice() {
            [one] => Ok(one),
            [] => Err(
                user(format!("under no environment's paths in {}", self.shown))
                    .hint("pass --env NAME, or add the path to an environment's `paths`")
                    .into(),
            ),
            many => {
                let names: Vec<&str> = many.iter().map(|e| e.name.as_str()).collect();
                Err(user(format!(
                    "matches the paths of several environments: {}",
                    names.join(", ")
                ))
                .hint("pass --env NAME, or make the environments' `paths` disjoint")
                .into())
            }
        }
    }

    /// `file` relative to the config's directory, with `/` separators.
    fn relative(&self, file: &Path) -> Result<String> {
        let abs = absolute(file)?;
        let rel = abs.strip_prefix(&self.root).map_err(|_| {
            user(format!(
                "outside {}, the directory of {}",
                self.root.display(),
                self.shown
            ))
            .hint("pass --env NAME")
        })?;
        Ok(rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/"))
    }
}

/// The error for a `.kage.yaml` that does not parse into [`RawConfig`]: the line, the field
/// path (`environments[0].extraRecipient`) and, for an unknown field, the nearest known one.
fn config_error(e: &serde_saphyr::Error, field: &str) -> crate::exit::UserError {
    let at = e
        .location()
        .map(|l| format!(" at line {}", l.line()))
        .unwrap_or_default();
    let e = e.without_snippet();
    if let serde_saphyr::Error::SerdeUnknownField {
        field: name,
        expected,
        ..
    } = e
    {
        let err = user(format!("invalid .kage.yaml{at}: unknown field {field}"));
        return match nearest(name, expected) {
            Some(near) => err.hint(format!("did you mean `{near}`?")),
            None => err.hint(format!("the fields here are {}", expected.join(", "))),
        };
    }
    let field = match field {
        "" | "." => String::new(),
        f => format!("{f}: "),
    };
    user(format!("invalid .kage.yaml{at}: {field}{e}"))
}

/// The known name closest to `name` (case, `-` and `_` aside), if it is close: at most a third
/// of its letters differ.
fn nearest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let norm = |s: &str| -> Vec<char> {
        s.chars()
            .filter(|c| !matches!(c, '-' | '_'))
            .flat_map(char::to_lowercase)
            .collect()
    };
    let n = norm(name);
    known
        .iter()
        .map(|k| (edit_distance(&n, &norm(k)), *k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance (insertions, deletions, substitutions).
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// Resolves `.` and `..` without touching the file system (the file may not exist yet).
pub fn absolute(path: &Path) -> Result<PathBuf> {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .context("reading the working directory")?
            .join(path)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Ok(out)
}

fn glob(pattern: &str) -> Result<Glob, globset::Error> {
    let pattern = pattern.strip_prefix("./").unwrap_or(pattern);
    GlobBuilder::new(pattern).literal_separator(true).build()
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "(none)".to_string()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R1: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

    fn cfg(text: &str) -> Config {
        Config::parse(Path::new("/repo/.kage.yaml"), text.as_bytes()).unwrap()
    }

    #[test]
    fn picks_environment_by_path() {
        let c = cfg(&format!(
            "environments:\n- name: prod\n  paths: [\"clusters/prod/**\"]\n  recipients: [{R1}]\n\
             - name: dev\n  paths: [\"clusters/dev/*.yaml\"]\n  recipients: [{R1}]\n  scope: namespace\n"
        ));
        assert_eq!(
            c.env_for_path(Path::new("/repo/clusters/prod/a/b.yaml"))
                .unwrap()
                .name,
            "prod"
        );
        assert_eq!(
            c.env_for_path(Path::new("/repo/clusters/dev/x.yaml"))
                .unwrap()
                .name,
            "dev"
        );
        // `*` does not cross directories
        let err = c
            .env_for_path(Path::new("/repo/clusters/dev/sub/x.yaml"))
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("under no environment"),
            "{err:#}"
        );
        let err = c.env_for_path(Path::new("/elsewhere/x.yaml")).unwrap_err();
        assert!(format!("{err:#}").contains("outside"), "{err:#}");
    }

    #[test]
    fn overlapping_paths_are_an_error_naming_both() {
        let c = cfg(&format!(
            "environments:\n- name: a\n  paths: [\"**\"]\n  recipients: [{R1}]\n\
             - name: b\n  paths: [\"x/**\"]\n  recipients: [{R1}]\n"
        ));
        let err = c.env_for_path(Path::new("/repo/x/y.yaml")).unwrap_err();
        assert!(
            format!("{err:#}").contains("several environments: a, b"),
            "{err:#}"
        );
    }

    #[test]
    fn bad_configs() {
        for (text, want) in [
            ("environments:\n- name: a\n- name: a\n", "defined twice"),
            (
                "environments:\n- name: a\n  recipients: [nope]\n",
                "recipient",
            ),
            ("environments:\n- name: a\n  scope: wide\n", "scope"),
            ("environments:\n- name: a\n  paths: [\"a/[\"]\n", "glob"),
            ("environments: [", "invalid .kage.yaml"),
            (
                "environments:\n- name: a\n  recipients: [x]\n  scope: [1]\n",
                "line 4: environments[0].scope: ",
            ),
        ] {
            let err = Config::parse(Path::new("/r/.kage.yaml"), text.as_bytes()).unwrap_err();
            assert!(format!("{err:#}").contains(want), "{want}: {err:#}");
        }
    }

    #[test]
    fn unknown_fields_are_refused_with_the_nearest_name() {
        for (text, want, hint) in [
            (
                "environments:\n- name: a\n  extraRecipient: [x]\n",
                "invalid .kage.yaml at line 3: unknown field environments[0].extraRecipient",
                Some("did you mean `extraRecipients`?"),
            ),
            (
                "enviroments:\n- name: a\n",
                "at line 1: unknown field enviroments",
                Some("did you mean `environments`?"),
            ),
            (
                "environments:\n- name: a\n  cluster: {context: x, namepsace: y}\n",
                "unknown field environments[0].cluster.namepsace",
                Some("did you mean `namespace`?"),
            ),
            (
                "environments:\n- name: a\n  extra_recipients: []\n",
                "unknown field environments[0].extra_recipients",
                Some("did you mean `extraRecipients`?"),
            ),
            (
                "version: 1\nenvironments: []\n",
                "unknown field version",
                Some("the fields here are environments"),
            ),
        ] {
            let err = Config::parse(Path::new("/r/.kage.yaml"), text.as_bytes()).unwrap_err();
            let msg = format!("{err:#}");
            assert!(msg.contains(want), "{text}: {msg}");
            let report = crate::exit::classify(&err);
            assert_eq!(report.exit, Exit::Error);
            assert_eq!(report.hint.as_deref(), hint, "{text}");
        }
    }

    #[test]
    fn nearest_names() {
        let known = [
            "name",
            "paths",
            "recipients",
            "extraRecipients",
            "scope",
            "cluster",
        ];
        assert_eq!(nearest("recipient", &known), Some("recipients"));
        assert_eq!(nearest("Scope", &known), Some("scope"));
        assert_eq!(nearest("path", &known), Some("paths"));
        assert_eq!(nearest("banana", &known), None);
        assert_eq!(nearest("x", &known), None);
    }
}
