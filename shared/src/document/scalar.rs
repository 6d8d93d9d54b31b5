//! Scalars typed as go-yaml v3 resolves them, and their canonical text (sops's MAC bytes).

/// A typed scalar.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// `null`, `~` or empty.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A 64-bit integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// A string.
    Str(String),
    /// A timestamp, kept as its canonical RFC 3339 text (nanoseconds, trailing zeros dropped).
    Time(String),
}

impl Scalar {
    /// The canonical text sops feeds to the MAC and encrypts: `True`/`False`, shortest
    /// non-exponent floats, decimal integers, RFC 3339 times; `None` for null.
    pub fn canonical(&self) -> Option<String> {
        match self {
            Scalar::Null => None,
            Scalar::Bool(true) => Some("True".into()),
            Scalar::Bool(false) => Some("False".into()),
            Scalar::Int(i) => Some(i.to_string()),
            Scalar::Float(f) => Some(format_float(*f)),
            Scalar::Str(s) => Some(s.clone()),
            Scalar::Time(t) => Some(t.clone()),
        }
    }

    /// The sops type tag of this scalar.
    pub fn sops_type(&self) -> &'static str {
        match self {
            Scalar::Null | Scalar::Str(_) => "str",
            Scalar::Bool(_) => "bool",
            Scalar::Int(_) => "int",
            Scalar::Float(_) => "float",
            Scalar::Time(_) => "time",
        }
    }

    /// Convert to JSON (timestamps become strings, non-finite floats become strings).
    pub fn to_json_value(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Scalar::Null => Value::Null,
            Scalar::Bool(b) => Value::Bool(*b),
            Scalar::Int(i) => Value::from(*i),
            Scalar::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(format_float(*f))),
            Scalar::Str(s) | Scalar::Time(s) => Value::String(s.clone()),
        }
    }
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)` plus sops's spellings of infinities and NaN.
/// Rust's `Display` for `f64` is the shortest round-trip digits without an exponent.
pub(crate) fn format_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{f}")
    }
}

pub(crate) fn from_json_number(n: &serde_json::Number) -> Scalar {
    if let Some(i) = n.as_i64() {
        Scalar::Int(i)
    } else {
        Scalar::Float(n.as_f64().unwrap_or(f64::NAN))
    }
}

/// go-yaml's float syntax: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
/// Hand-written: compiling a regex costs milliseconds per process, more than a whole `kage`
/// invocation should take.
fn is_yaml_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'-' | b'+')) {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    let int_digits = digits(&mut i);
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let frac = digits(&mut i);
        if int_digits == 0 && frac == 0 {
            return false;
        }
    } else if int_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// A run of 1..=max ASCII digits at `*i`, parsed.
fn take_digits(b: &[u8], i: &mut usize, min: usize, max: usize) -> Option<i64> {
    let start = *i;
    while *i < b.len() && *i - start < max && b[*i].is_ascii_digit() {
        *i += 1;
    }
    if *i - start < min {
        return None;
    }
    std::str::from_utf8(&b[start..*i]).ok()?.parse().ok()
}

/// Resolve a plain (unquoted, untagged) scalar as go-yaml v3 does.
pub(crate) fn resolve_plain(text: &str) -> Scalar {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Scalar::Null,
        "true" | "True" | "TRUE" => return Scalar::Bool(true),
        "false" | "False" | "FALSE" => return Scalar::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Scalar::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Scalar::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Scalar::Float(f64::NAN),
        _ => {}
    }
    let first = text.as_bytes()[0];
    if !(first.is_ascii_digit() || first == b'+' || first == b'-' || first == b'.') {
        return Scalar::Str(text.to_string());
    }
    if let Some(t) = parse_timestamp(text) {
        return Scalar::Time(t);
    }
    let plain = text.replace('_', "");
    if let Some(i) = parse_go_int(&plain) {
        return Scalar::Int(i);
    }
    if is_yaml_float(&plain)
        && let Ok(f) = plain.parse::<f64>()
    {
        return Scalar::Float(f);
    }
    Scalar::Str(text.to_string())
}

/// `strconv.ParseInt(s, 0, 64)`: sign, then `0x`/`0o`/`0b` prefixes or a leading `0` (octal).
fn parse_go_int(s: &str) -> Option<i64> {
    let (neg, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return None;
    }
    let lower = digits.to_ascii_lowercase();
    let (radix, body) = if let Some(b) = lower.strip_prefix("0x") {
        (16, b)
    } else if let Some(b) = lower.strip_prefix("0o") {
        (8, b)
    } else if let Some(b) = lower.strip_prefix("0b") {
        (2, b)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(body, radix).ok()?;
    if neg {
        if magnitude <= i64::MAX as u64 + 1 {
            Some((magnitude as i128).wrapping_neg() as i64)
        } else {
            None
        }
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// go-yaml v3's timestamp formats (`2006-1-2T15:4:5.999999999Z07:00`, the same with `t`,
/// `2006-1-2 15:4:5.999999999`, `2006-1-2`), rendered as Go's RFC3339Nano.
fn parse_timestamp(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut i = 0;
    let year = take_digits(b, &mut i, 4, 4)?;
    let expect = |i: &mut usize, c: u8| (b.get(*i) == Some(&c)).then(|| *i += 1);
    expect(&mut i, b'-')?;
    let month = take_digits(b, &mut i, 1, 2)?;
    expect(&mut i, b'-')?;
    let day = take_digits(b, &mut i, 1, 2)?;
    let (mut h, mut m, mut sec, mut frac, mut zone) = (0, 0, 0, String::new(), "Z".to_string());
    if i < b.len() {
        let sep = b[i];
        if !matches!(sep, b'T' | b't' | b' ') {
            return None;
        }
        i += 1;
        h = take_digits(b, &mut i, 1, 2)?;
        expect(&mut i, b':')?;
        m = take_digits(b, &mut i, 1, 2)?;
        expect(&mut i, b':')?;
        sec = take_digits(b, &mut i, 1, 2)?;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i == start {
                return None;
            }
            frac = text[start..i].chars().take(9).collect();
            while frac.ends_with('0') {
                frac.pop();
            }
        }
        if sep == b' ' {
            // The space-separated form has no zone.
            if i != b.len() {
                return None;
            }
        } else {
            let z = &text[i..];
            zone = match z {
                "Z" | "+00:00" | "-00:00" => "Z".to_string(),
                _ => {
                    let zb = z.as_bytes();
                    let ok = zb.len() == 6
                        && matches!(zb[0], b'+' | b'-')
                        && zb[1..3].iter().all(u8::is_ascii_digit)
                        && zb[3] == b':'
                        && zb[4..6].iter().all(u8::is_ascii_digit);
                    if !ok {
                        return None;
                    }
                    z.to_string()
                }
            };
        }
    }
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    // Validate the calendar date (e.g. no February 30th).
    jiff::civil::Date::new(year as i16, month as i8, day as i8).ok()?;
    let frac = if frac.is_empty() {
        String::new()
    } else {
        format!(".{frac}")
    };
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{sec:02}{frac}{zone}"
    ))
}

/// A character that must be escaped in YAML: not in YAML's printable set (controls, U+FFFE,
/// U+FFFF), or one a reader may treat specially (BOM, line and paragraph separators, NEL).
pub(crate) fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{feff}' | '\u{2028}' | '\u{2029}' | '\u{85}' | '\u{fffe}' | '\u{ffff}'
        )
}

/// Whether a string must be quoted to stay a string in YAML (1.2 core, go-yaml, or 1.1 readers).
pub(crate) fn needs_quotes(s: &str) -> bool {
    if s.is_empty() || s.trim() != s {
        return true;
    }
    if !matches!(resolve_plain(s), Scalar::Str(_)) {
        return true;
    }
    // YAML 1.1 booleans and other 1.1-isms: quote them so older readers keep a string.
    const YAML11: &[&str] = &[
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
        "OFF", "=", "<<",
    ];
    if YAML11.contains(&s) {
        return true;
    }
    let bytes = s.as_bytes();
    let first = bytes[0];
    if b"-?:,[]{}#&*!|>'\"%@`".contains(&first) {
        // `-x`, `?x` and `:x` are plain-safe, but quoting them costs nothing.
        return true;
    }
    if s.starts_with("---") || s.starts_with("...") {
        return true;
    }
    // A number-looking string in YAML 1.1 (base 60 `1:20`, `0b101`, `.5`, `1_000`).
    if first.is_ascii_digit() || first == b'.' || first == b'+' {
        return true;
    }
    s.contains(": ") || s.contains(" #") || s.ends_with(':') || s.chars().any(needs_escape)
}

/// A double-quoted YAML/JSON-compatible string literal.
pub(crate) fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if needs_escape(c) => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_yaml_resolution() {
        assert_eq!(resolve_plain("0x1F"), Scalar::Int(31));
        assert_eq!(resolve_plain("0o17"), Scalar::Int(15));
        assert_eq!(resolve_plain("1_000"), Scalar::Int(1000));
        assert_eq!(resolve_plain("-7"), Scalar::Int(-7));
        assert_eq!(resolve_plain("1.50"), Scalar::Float(1.5));
        assert_eq!(resolve_plain("1e3"), Scalar::Float(1000.0));
        assert_eq!(resolve_plain("yes"), Scalar::Str("yes".into()));
        assert_eq!(resolve_plain("TRUE"), Scalar::Bool(true));
        assert_eq!(resolve_plain("~"), Scalar::Null);
        assert_eq!(
            resolve_plain("2024-01-02"),
            Scalar::Time("2024-01-02T00:00:00Z".into())
        );
        assert_eq!(
            resolve_plain("2001-12-14t21:59:43.10-05:00"),
            Scalar::Time("2001-12-14T21:59:43.1-05:00".into())
        );
        assert_eq!(
            resolve_plain("2024-02-30"),
            Scalar::Str("2024-02-30".into())
        );
        // Beyond int64: go-yaml makes it a uint64 (which sops refuses); a float here.
        assert!(matches!(
            resolve_plain("12345678901234567890"),
            Scalar::Float(_)
        ));
        assert_eq!(resolve_plain("1.2.3"), Scalar::Str("1.2.3".into()));
    }

    #[test]
    fn canonical_floats_match_sops() {
        let cases = [
            ("1.0", "1"),
            ("2.50", "2.5"),
            ("1e21", "1000000000000000000000"),
            ("-0.0", "-0"),
            ("1.5e-7", "0.00000015"),
            (".inf", "+Inf"),
            ("-.inf", "-Inf"),
            (".nan", "NaN"),
        ];
        for (src, want) in cases {
            assert_eq!(resolve_plain(src).canonical().unwrap(), want, "{src}");
        }
        assert_eq!(resolve_plain("1e300").canonical().unwrap().len(), 301);
    }

    #[test]
    fn quoting() {
        for s in [
            "",
            "true",
            "1",
            "y",
            "no",
            "a: b",
            "x #y",
            "- x",
            " lead",
            "2024-01-02",
            "1.5",
        ] {
            assert!(needs_quotes(s), "{s:?}");
        }
        for s in [
            "hello",
            "age1abc",
            "a-b_c.d",
            "kage:v1:abc:def",
            "ENC[AES256_GCM,data:x]",
        ] {
            assert!(!needs_quotes(s), "{s:?}");
        }
        assert_eq!(double_quoted("a\"b\\\n\u{1}"), "\"a\\\"b\\\\\\n\\u0001\"");
    }
}
