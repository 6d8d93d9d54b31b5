//! Each test names the Kubernetes function whose behaviour it pins down.

use super::*;

fn ok(errs: Vec<String>) -> bool {
    errs.is_empty()
}

/// apimachinery `validation.IsConfigMapKey` (the Secret data key rule of `ValidateSecret`).
#[test]
fn is_config_map_key_mirrors_apimachinery() {
    for good in [
        "a", "key.name", "KEY_NAME", "key-name", ".a", "a..b", "a.", "_", "-",
    ] {
        assert!(ok(is_config_map_key(good)), "{good}");
    }
    assert!(ok(is_config_map_key(&"a".repeat(253))));
    assert_eq!(
        is_config_map_key(&"a".repeat(254)),
        vec!["must be no more than 253 characters"]
    );
    assert_eq!(is_config_map_key("."), vec!["must not be '.'"]);
    assert_eq!(is_config_map_key(".."), vec!["must not be '..'"]);
    assert_eq!(is_config_map_key("..x"), vec!["must not start with '..'"]);
    assert_eq!(is_config_map_key("...."), vec!["must not start with '..'"]);
    assert_eq!(
        is_config_map_key("bad key"),
        vec![
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
        ]
    );
    assert_eq!(is_config_map_key("").len(), 1);
    assert_eq!(is_config_map_key("a/b").len(), 1);
    assert_eq!(is_config_map_key("é").len(), 1);
}

/// apimachinery `validation.IsDNS1123Label` (namespace names: `ValidateNamespaceName`).
#[test]
fn is_dns1123_label_mirrors_apimachinery() {
    for good in ["a", "kage-system", "123-abc", "0"] {
        assert!(ok(is_dns1123_label(good)), "{good}");
    }
    assert!(ok(is_dns1123_label(&"a".repeat(63))));
    assert_eq!(
        is_dns1123_label(&"a".repeat(64)),
        vec!["must be no more than 63 characters"]
    );
    assert_eq!(is_dns1123_label("a.b"), vec!["must not contain dots"]);
    for bad in ["", "-a", "a-", "A", "a_b"] {
        let errs = is_dns1123_label(bad);
        assert_eq!(errs.len(), 1, "{bad}");
        assert!(errs[0].starts_with("a lowercase RFC 1123 label must consist"));
        assert!(errs[0].ends_with(
            "(e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        ));
    }
}

/// apimachinery `validation.IsDNS1123Subdomain` (Secret names: `ValidateSecretName`).
#[test]
fn is_dns1123_subdomain_mirrors_apimachinery() {
    for good in ["a", "a.b-c.d", "example.com", "1.2"] {
        assert!(ok(is_dns1123_subdomain(good)), "{good}");
    }
    // No per-label limit in a subdomain: only the total of 253.
    assert!(ok(is_dns1123_subdomain(&"a".repeat(200))));
    assert_eq!(
        is_dns1123_subdomain(&"a".repeat(254)),
        vec!["must be no more than 253 characters"]
    );
    for bad in ["", "Bad_Name", "-a", "a.", ".a", "a..b", "a.-b"] {
        assert_eq!(is_dns1123_subdomain(bad).len(), 1, "{bad}");
    }
}

/// apimachinery `validation.IsQualifiedName` (label and annotation keys).
#[test]
fn is_qualified_name_mirrors_apimachinery() {
    for good in [
        "a",
        "MyName",
        "my.name",
        "123-abc",
        "app.kubernetes.io/name",
        "a/B_c",
    ] {
        assert!(ok(is_qualified_name(good)), "{good}");
    }
    assert!(ok(is_qualified_name(&"a".repeat(63))));
    assert_eq!(
        is_qualified_name(&"a".repeat(64)),
        vec!["name part must be no more than 63 characters"]
    );
    assert_eq!(
        is_qualified_name("/a"),
        vec!["prefix part must be non-empty"]
    );
    assert_eq!(is_qualified_name("a/").len(), 2); // empty, and the regex
    assert!(is_qualified_name("a/b/c")[0].starts_with("a qualified name must consist"));
    assert!(is_qualified_name("Upper.Case/x")[0].starts_with("prefix part a lowercase RFC 1123"));
    assert!(is_qualified_name("-a")[0].starts_with("name part must consist"));
}

/// apimachinery `validation.IsValidLabelValue`.
#[test]
fn is_valid_label_value_mirrors_apimachinery() {
    for good in ["", "a", "MyValue", "my_value", "12345", "a.b-c"] {
        assert!(ok(is_valid_label_value(good)), "{good}");
    }
    assert_eq!(
        is_valid_label_value(&"a".repeat(64)),
        vec!["must be no more than 63 characters"]
    );
    for bad in ["-a", "a-", "a b", "a/b"] {
        assert!(
            is_valid_label_value(bad)[0].starts_with("a valid label must be an empty string"),
            "{bad}"
        );
    }
}

/// apimachinery `metav1validation.ValidateLabels` and `apimachinery/pkg/api/validation`
/// `ValidateAnnotations` (keys lowercased; 256 KiB in all).
#[test]
fn labels_and_annotations_mirror_apimachinery() {
    assert!(validate_labels([("app", "x"), ("a.io/b", "")], "metadata.labels").is_empty());
    let errs = validate_labels([("a", "-x")], "metadata.labels");
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].field, "metadata.labels");
    assert_eq!(errs[0].bad_value.as_deref(), Some("-x"));

    // Upper case is fine in an annotation prefix: keys are checked lowercased.
    assert!(validate_annotations([("Example.COM/x", "v")], "metadata.annotations").is_empty());
    assert_eq!(
        validate_annotations([("bad key", "v")], "metadata.annotations").len(),
        1
    );
    let big = "v".repeat(TOTAL_ANNOTATION_SIZE_LIMIT - 1);
    assert!(validate_annotations([("k", big.as_str())], "a").is_empty());
    let over = "v".repeat(TOTAL_ANNOTATION_SIZE_LIMIT);
    let errs = validate_annotations([("k", over.as_str())], "metadata.annotations");
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].type_, ErrorType::TooLong);
    assert_eq!(
        errs[0].to_string(),
        "metadata.annotations: Too long: may not be more than 262144 bytes"
    );
}

fn secret<'a>(type_: &'a str, data: &'a [(&'a str, &'a [u8])]) -> SecretFields<'a> {
    SecretFields {
        name: Some("db"),
        namespace: Some("prod"),
        type_: Some(type_),
        data,
        ..SecretFields::default()
    }
}

fn fields(errs: &[FieldError]) -> Vec<&str> {
    errs.iter().map(|e| e.field.as_str()).collect()
}

/// kubernetes `core/validation.ValidateSecret`: keys, names and the `core.MaxSecretSize` limit.
#[test]
fn validate_secret_keys_names_and_size() {
    assert!(validate_secret(&secret("Opaque", &[("a", b"x")])).is_empty());
    let errs = validate_secret(&secret("Opaque", &[("..x", b"x")]));
    assert_eq!(errs.len(), 1);
    assert_eq!(
        errs[0].to_string(),
        "data[..x]: Invalid value: \"..x\": must not start with '..'"
    );
    let bad_name = SecretFields {
        name: Some("Bad"),
        namespace: Some("a.b"),
        ..SecretFields::default()
    };
    assert_eq!(
        fields(&validate_secret(&bad_name)),
        ["metadata.name", "metadata.namespace"]
    );
    // The limit counts values only, not keys.
    let full = vec![0u8; MAX_SECRET_SIZE];
    assert!(validate_secret(&secret("Opaque", &[("long-key-name", &full)])).is_empty());
    let half = vec![0u8; MAX_SECRET_SIZE / 2 + 1];
    let errs = validate_secret(&secret("Opaque", &[("a", &half), ("b", &half)]));
    assert_eq!(
        errs.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["data: Too long: may not be more than 1048576 bytes"]
    );
    // An empty type is Opaque.
    assert!(validate_secret(&secret("", &[])).is_empty());
}

/// kubernetes `core/validation.ValidateSecret`: the keys each built-in type requires.
#[test]
fn validate_secret_required_keys_per_type() {
    let t = |ty, data: &[(&str, &[u8])]| fields(&validate_secret(&secret(ty, data))).join(",");
    assert_eq!(t("kubernetes.io/tls", &[]), "data[tls.crt],data[tls.key]");
    assert_eq!(t("kubernetes.io/tls", &[("tls.crt", b"")]), "data[tls.key]");
    assert_eq!(
        t("kubernetes.io/tls", &[("tls.crt", b""), ("tls.key", b"")]),
        ""
    );
    assert_eq!(
        t("kubernetes.io/dockerconfigjson", &[]),
        "data[.dockerconfigjson]"
    );
    assert_eq!(
        t(
            "kubernetes.io/dockerconfigjson",
            &[(".dockerconfigjson", b"{}")]
        ),
        ""
    );
    // Not a JSON object: invalid, with the value redacted.
    let errs = validate_secret(&secret(
        "kubernetes.io/dockerconfigjson",
        &[(".dockerconfigjson", b"[\"hunter2\"]")],
    ));
    assert_eq!(errs.len(), 1);
    assert_eq!(
        errs[0].bad_value.as_deref(),
        Some("<secret contents redacted>")
    );
    assert!(!errs[0].to_string().contains("hunter2"));
    assert_eq!(t("kubernetes.io/dockercfg", &[]), "data[.dockercfg]");
    assert_eq!(
        t("kubernetes.io/basic-auth", &[]),
        "data[username],data[password]"
    );
    assert_eq!(t("kubernetes.io/basic-auth", &[("password", b"")]), "");
    assert_eq!(
        t("kubernetes.io/ssh-auth", &[("ssh-privatekey", b"")]),
        "data[ssh-privatekey]"
    );
    assert_eq!(t("kubernetes.io/ssh-auth", &[("ssh-privatekey", b"k")]), "");
    assert_eq!(
        t("kubernetes.io/service-account-token", &[]),
        "metadata.annotations[kubernetes.io/service-account.name]"
    );
    let named = SecretFields {
        type_: Some(secret_type::SERVICE_ACCOUNT_TOKEN),
        annotations: &[(secret_type::SERVICE_ACCOUNT_NAME_KEY, "sa")],
        ..SecretFields::default()
    };
    assert!(validate_secret(&named).is_empty());
    assert_eq!(t("example.com/custom", &[]), "");
}

/// kubernetes `core/validation.ValidateSecretUpdate`: type immutable, immutable data frozen.
#[test]
fn validate_secret_update_immutable_rules() {
    let old = SecretFields {
        immutable: Some(true),
        data: &[("a", b"1"), ("b", b"2")],
        ..SecretFields::default()
    };
    let same = SecretFields {
        data: &[("b", b"2"), ("a", b"1")],
        ..old
    };
    assert!(validate_secret_update(&same, &old).is_empty());
    let changed = SecretFields {
        data: &[("a", b"1"), ("b", b"3")],
        ..old
    };
    let errs = validate_secret_update(&changed, &old);
    assert_eq!(fields(&errs), ["data"]);
    assert_eq!(errs[0].type_, ErrorType::Forbidden);
    let unfrozen = SecretFields {
        immutable: None,
        ..old
    };
    assert_eq!(
        fields(&validate_secret_update(&unfrozen, &old)),
        ["immutable"]
    );
    // The type never changes, immutable or not.
    let mutable = SecretFields::default();
    let retyped = SecretFields {
        type_: Some("kubernetes.io/tls"),
        ..mutable
    };
    assert_eq!(
        fields(&validate_secret_update(&retyped, &mutable)),
        ["type"]
    );
    let opaque = SecretFields {
        type_: Some("Opaque"),
        ..mutable
    };
    assert!(validate_secret_update(&opaque, &mutable).is_empty());
    // A mutable Secret's data may change.
    let m_old = SecretFields {
        data: &[("a", b"1")],
        ..mutable
    };
    assert!(validate_secret_update(&mutable, &m_old).is_empty());
}

#[test]
fn api_names_agree() {
    assert_eq!(API_VERSION, format!("{GROUP}/{VERSION}"));
}
