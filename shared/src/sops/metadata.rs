//! The `sops:` metadata block: wire form (a document node) <-> domain form.
//!
//! Key types other than age (pgp, kms, gcp_kms, azure_kv, hc_vault, …) are kept verbatim so a
//! rewrite never drops a master key kage cannot use itself.

use crate::document::{MapItem, Node, Scalar, SeqItem};
use crate::error::{Error, Result};

use super::Selection;

/// The sops version kage writes (the one its output is tested against).
pub const WRITER_VERSION: &str = "3.11.0";

/// One age master key: a recipient and the data key (or share) wrapped to it.
#[derive(Debug, Clone, PartialEq)]
pub struct AgeKey {
    /// `age1…`.
    pub recipient: String,
    /// ASCII-armored age file.
    pub enc: String,
}

/// A key group: every master key in it wraps the same data key (or the same share).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KeyGroup {
    /// age keys.
    pub age: Vec<AgeKey>,
    /// Other key types, verbatim (`pgp`, `kms`, …), in file order.
    pub others: Vec<(String, Node)>,
}

/// The sops metadata of a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    /// Key groups (one for the flat layout).
    pub key_groups: Vec<KeyGroup>,
    /// Shamir threshold (0 = not set).
    pub shamir_threshold: usize,
    /// `lastmodified` as stored.
    pub lastmodified: String,
    /// The encrypted MAC.
    pub mac: String,
    /// Which leaves are encrypted.
    pub selection: Selection,
    /// MAC only the encrypted values.
    pub mac_only_encrypted: bool,
    /// The sops version that wrote the file.
    pub version: String,
    /// Unknown metadata keys, kept verbatim.
    pub extra: Vec<(String, Node)>,
}

const OTHER_KEY_TYPES: &[&str] = &["pgp", "kms", "gcp_kms", "azure_kv", "hc_vault", "hckms"];

fn field_str(node: &Node, path: &str) -> Result<String> {
    match node {
        Node::Scalar(Scalar::Str(s)) | Node::Scalar(Scalar::Time(s)) => Ok(s.clone()),
        Node::Scalar(s) => s
            .canonical()
            .ok_or_else(|| Error::sops(format!("{path} is empty"))),
        _ => Err(Error::sops(format!("{path} must be a string"))),
    }
}

fn seq_values(node: &Node) -> Vec<&Node> {
    match node {
        Node::Seq(items) => items
            .iter()
            .filter_map(|i| match i {
                SeqItem::Value(v) => Some(v),
                SeqItem::Comment(_) => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn is_empty_list(node: &Node) -> bool {
    node.is_null() || seq_values(node).is_empty()
}

fn parse_age_list(node: &Node, path: &str) -> Result<Vec<AgeKey>> {
    if node.is_null() {
        return Ok(Vec::new());
    }
    if !matches!(node, Node::Seq(_)) {
        return Err(Error::sops(format!("{path} must be a list")));
    }
    seq_values(node)
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let get = |k: &str| {
                entry
                    .get(k)
                    .ok_or_else(|| Error::sops(format!("{path}[{i}] has no {k}")))
                    .and_then(|n| field_str(n, &format!("{path}[{i}].{k}")))
            };
            Ok(AgeKey {
                recipient: get("recipient")?,
                enc: get("enc")?,
            })
        })
        .collect()
}

fn parse_group(node: &Node, path: &str) -> Result<KeyGroup> {
    let mut group = KeyGroup::default();
    for (k, v) in node.entries() {
        if k == "age" {
            group.age = parse_age_list(v, &format!("{path}.age"))?;
        } else {
            group.others.push((k.to_string(), v.clone()));
        }
    }
    Ok(group)
}

impl Metadata {
    /// Read the metadata block (`sops:` of the first document).
    pub fn from_node(node: &Node) -> Result<Metadata> {
        if !matches!(node, Node::Map(_)) {
            return Err(Error::sops("the sops block must be a mapping"));
        }
        let mut rules = Vec::new();
        let mut flat = KeyGroup::default();
        let mut groups = None;
        let mut md = Metadata {
            key_groups: Vec::new(),
            shamir_threshold: 0,
            lastmodified: String::new(),
            mac: String::new(),
            selection: Selection::default(),
            mac_only_encrypted: false,
            version: String::new(),
            extra: Vec::new(),
        };
        for (k, v) in node.entries() {
            match k {
                "age" => flat.age = parse_age_list(v, "sops.age")?,
                "key_groups" => {
                    groups = Some(
                        seq_values(v)
                            .into_iter()
                            .enumerate()
                            .map(|(i, g)| parse_group(g, &format!("sops.key_groups[{i}]")))
                            .collect::<Result<Vec<_>>>()?,
                    )
                }
                "shamir_threshold" => {
                    md.shamir_threshold = match v {
                        Node::Scalar(Scalar::Int(i)) if *i >= 0 => *i as usize,
                        Node::Scalar(Scalar::Null) => 0,
                        _ => return Err(Error::sops("shamir_threshold must be an integer")),
                    }
                }
                "lastmodified" => md.lastmodified = field_str(v, "sops.lastmodified")?,
                "mac" => md.mac = field_str(v, "sops.mac")?,
                "mac_only_encrypted" => {
                    md.mac_only_encrypted = match v {
                        Node::Scalar(Scalar::Bool(b)) => *b,
                        Node::Scalar(Scalar::Null) => false,
                        _ => return Err(Error::sops("mac_only_encrypted must be a boolean")),
                    }
                }
                "version" => md.version = field_str(v, "sops.version")?,
                "unencrypted_suffix"
                | "encrypted_suffix"
                | "unencrypted_regex"
                | "encrypted_regex"
                | "unencrypted_comment_regex"
                | "encrypted_comment_regex" => {
                    let value = field_str(v, &format!("sops.{k}"))?;
                    if !value.is_empty() {
                        rules.push(Selection::from_key(k, value));
                    }
                }
                k if OTHER_KEY_TYPES.contains(&k) => {
                    if !is_empty_list(v) {
                        flat.others.push((k.to_string(), v.clone()));
                    }
                }
                _ => md.extra.push((k.to_string(), v.clone())),
            }
        }
        md.key_groups = match groups {
            Some(g) if !g.is_empty() => g,
            _ => vec![flat],
        };
        if rules.len() > 1 {
            return Err(Error::sops(
                "more than one selection rule (only one of unencrypted_suffix, encrypted_suffix, unencrypted_regex, encrypted_regex, unencrypted_comment_regex, encrypted_comment_regex may be set)",
            ));
        }
        if let Some(rule) = rules.pop() {
            md.selection = rule;
        }
        md.selection.compile()?;
        if md.version.is_empty() {
            return Err(Error::sops("version is missing (Version string empty)"));
        }
        check_semver(&md.version)?;
        if md.lastmodified.is_empty() {
            return Err(Error::sops("lastmodified is missing"));
        }
        mac_aad(&md.lastmodified)?;
        if md.mac.is_empty() {
            return Err(Error::MacMissing);
        }
        Ok(md)
    }

    /// Write the block in the field order sops 3.11 uses.
    pub fn to_node(&self, json: bool) -> Node {
        let mut items = Vec::new();
        let entry = |k: &str, v: Node| MapItem::Entry(k.to_string(), v);
        let age_list = |keys: &[AgeKey]| {
            Node::Seq(
                keys.iter()
                    .map(|k| {
                        SeqItem::Value(Node::Map(vec![
                            entry("recipient", Node::string(&k.recipient)),
                            entry("enc", Node::string(&k.enc)),
                        ]))
                    })
                    .collect(),
            )
        };
        if self.shamir_threshold > 0 {
            items.push(entry(
                "shamir_threshold",
                Node::Scalar(Scalar::Int(self.shamir_threshold as i64)),
            ));
        }
        let mut flat_pgp = None;
        if self.key_groups.len() > 1 {
            let groups = self
                .key_groups
                .iter()
                .map(|g| {
                    let mut gi = Vec::new();
                    for name in ["pgp", "kms", "gcp_kms", "azure_kv"] {
                        if let Some((_, v)) = g.others.iter().find(|(k, _)| k == name) {
                            gi.push(entry(name, v.clone()));
                        }
                    }
                    let vault = g
                        .others
                        .iter()
                        .find(|(k, _)| k == "hc_vault")
                        .map(|(_, v)| v.clone())
                        .unwrap_or(if json {
                            Node::Scalar(Scalar::Null)
                        } else {
                            Node::Seq(Vec::new())
                        });
                    gi.push(entry("hc_vault", vault));
                    for (k, v) in &g.others {
                        if !["pgp", "kms", "gcp_kms", "azure_kv", "hc_vault"].contains(&k.as_str())
                        {
                            gi.push(entry(k, v.clone()));
                        }
                    }
                    gi.push(entry("age", age_list(&g.age)));
                    SeqItem::Value(Node::Map(gi))
                })
                .collect();
            items.push(entry("key_groups", Node::Seq(groups)));
        } else if let Some(g) = self.key_groups.first() {
            for name in ["kms", "gcp_kms", "azure_kv", "hc_vault"] {
                if let Some((_, v)) = g.others.iter().find(|(k, _)| k == name) {
                    items.push(entry(name, v.clone()));
                }
            }
            for (k, v) in &g.others {
                if !["pgp", "kms", "gcp_kms", "azure_kv", "hc_vault"].contains(&k.as_str()) {
                    items.push(entry(k, v.clone()));
                }
            }
            if !g.age.is_empty() {
                items.push(entry("age", age_list(&g.age)));
            }
            flat_pgp = g.others.iter().find(|(k, _)| k == "pgp").map(|(_, v)| v);
        }
        items.push(entry(
            "lastmodified",
            Node::Scalar(Scalar::Str(self.lastmodified.clone())),
        ));
        items.push(entry("mac", Node::string(&self.mac)));
        if let Some(pgp) = flat_pgp {
            items.push(entry("pgp", pgp.clone()));
        }
        let (rule_key, rule_value) = self.selection.key_value();
        items.push(entry(rule_key, Node::string(rule_value)));
        if self.mac_only_encrypted {
            items.push(entry(
                "mac_only_encrypted",
                Node::Scalar(Scalar::Bool(true)),
            ));
        }
        for (k, v) in &self.extra {
            items.push(entry(k, v.clone()));
        }
        items.push(entry("version", Node::string(&self.version)));
        Node::Map(items)
    }
}

/// sops requires `version` to be semver (a leading `v` is tolerated).
fn check_semver(version: &str) -> Result<()> {
    let v = version.strip_prefix('v').unwrap_or(version);
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    let ok = parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    // sops special-cases 1.x (the Python era).
    if ok || v.starts_with("1.") {
        Ok(())
    } else {
        Err(Error::sops(format!(
            "version {version:?} is not semver (No Major.Minor.Patch elements found)"
        )))
    }
}

/// The MAC's AAD: `lastmodified` re-rendered as RFC 3339 with whole seconds.
pub(crate) fn mac_aad(lastmodified: &str) -> Result<String> {
    let bad = || {
        Error::sops(format!(
            "lastmodified {lastmodified:?} is not an RFC 3339 time"
        ))
    };
    let zoned: jiff::Zoned = if let Ok(ts) = lastmodified.parse::<jiff::Timestamp>() {
        // Keep the written offset (Go keeps it when re-rendering).
        let offset = parse_offset(lastmodified).ok_or_else(bad)?;
        ts.to_zoned(jiff::tz::TimeZone::fixed(offset))
    } else {
        return Err(bad());
    };
    let offset = zoned.offset();
    let base = zoned.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    if offset.seconds() == 0 {
        Ok(format!("{base}Z"))
    } else {
        let secs = offset.seconds();
        let sign = if secs < 0 { '-' } else { '+' };
        let abs = secs.abs();
        Ok(format!(
            "{base}{sign}{:02}:{:02}",
            abs / 3600,
            (abs % 3600) / 60
        ))
    }
}

fn parse_offset(s: &str) -> Option<jiff::tz::Offset> {
    if s.ends_with('Z') || s.ends_with('z') {
        return Some(jiff::tz::Offset::UTC);
    }
    let tail = s.get(s.len().checked_sub(6)?..)?;
    let sign = match tail.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let h: i32 = tail.get(1..3)?.parse().ok()?;
    let m: i32 = tail.get(4..6)?.parse().ok()?;
    jiff::tz::Offset::from_seconds(sign * (h * 3600 + m * 60)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_aad_normalises() {
        assert_eq!(
            mac_aad("2026-11-28T09:28:55Z").unwrap(),
            "2026-11-28T09:28:55Z"
        );
        assert_eq!(
            mac_aad("2026-11-28T09:28:55+00:00").unwrap(),
            "2026-11-28T09:28:55Z"
        );
        assert_eq!(
            mac_aad("2026-11-28T09:28:55.5Z").unwrap(),
            "2026-11-28T09:28:55Z"
        );
        assert_eq!(
            mac_aad("2026-11-28T09:28:55+02:00").unwrap(),
            "2026-11-28T09:28:55+02:00"
        );
        assert!(mac_aad("yesterday").is_err());
    }

    #[test]
    fn semver() {
        assert!(check_semver("3.11.0").is_ok());
        assert!(check_semver("v3.7.1").is_ok());
        assert!(check_semver("3.0").is_err());
        assert!(check_semver("").is_err());
    }
}
