//! `.kage.yaml`: environment selection, `env list`, `keys list`, `sops-config`.

use crate::harness::{Dir, secret_yaml};

fn repo() -> (Dir, String, String) {
    let dir = Dir::new();
    let prod = dir.keygen("prod.key");
    let dev = dir.keygen("dev.key");
    dir.write(
        ".kage.yaml",
        format!(
            "environments:\n  - name: prod\n    paths: [\"clusters/prod/**\"]\n    recipients: [\"{prod}\"]\n    scope: strict\n\
             \x20 - name: dev\n    paths: [\"clusters/dev/**\", \"shared/**\"]\n    recipients: [\"{dev}\"]\n    scope: namespace\n\
             \x20 - name: all\n    paths: [\"shared/**\"]\n    recipients: [\"{dev}\"]\n"
        ),
    );
    (dir, prod, dev)
}

#[test]
fn path_picks_environment() {
    let (dir, _, _) = repo();
    dir.write("clusters/prod/db.yaml", secret_yaml("db", "prod"));
    dir.write("clusters/dev/db.yaml", secret_yaml("db", "dev"));
    let p = dir.kage(&["seal", "clusters/prod/db.yaml"]).run().ok();
    dir.write("p.yaml", &p);
    dir.kage(&["unseal", "p.yaml", "-i", "prod.key"]).run().ok();
    dir.kage(&["unseal", "p.yaml", "-i", "dev.key"])
        .run()
        .fails(3);
    let d = dir.kage(&["seal", "clusters/dev/db.yaml"]).run().ok();
    assert!(d.contains("scope: namespace"), "{d}");
    dir.write("d.yaml", &d);
    dir.kage(&["unseal", "d.yaml", "-i", "dev.key"]).run().ok();
    // --env overrides the path
    let o = dir
        .kage(&["seal", "clusters/dev/db.yaml", "--env", "prod"])
        .run()
        .ok();
    dir.write("o.yaml", &o);
    dir.kage(&["unseal", "o.yaml", "-i", "prod.key"]).run().ok();
}

#[test]
fn output_path_picks_the_environment_when_the_input_is_outside() {
    let (dir, _, _) = repo();
    dir.write("secret.yaml", secret_yaml("db", "prod"));
    dir.write("clusters/prod/.keep", "");
    dir.kage(&["seal", "secret.yaml", "-o", "clusters/prod/db.yaml"])
        .run()
        .ok();
    dir.kage(&["unseal", "clusters/prod/db.yaml", "-i", "prod.key"])
        .run()
        .ok();
    // Neither path under an environment: the error names the input.
    let err = dir
        .kage(&["seal", "secret.yaml", "-o", "elsewhere.yaml"])
        .run()
        .fails(1);
    assert!(
        err.contains("secret.yaml: under no environment's paths"),
        "{err}"
    );
}

#[test]
fn found_from_a_subdirectory() {
    let (dir, _, _) = repo();
    dir.write("clusters/prod/db.yaml", secret_yaml("db", "prod"));
    let out = std::process::Command::new(crate::harness::kage_bin())
        .args(["seal", "db.yaml"])
        .current_dir(dir.path("clusters/prod"))
        .env_remove("KAGE_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn no_or_several_environments_are_errors_naming_them() {
    let (dir, _, _) = repo();
    dir.write("elsewhere/db.yaml", secret_yaml("db", "prod"));
    let err = dir.kage(&["seal", "elsewhere/db.yaml"]).run().fails(1);
    assert!(err.contains("under no environment's paths"), "{err}");
    dir.write("shared/db.yaml", secret_yaml("db", "prod"));
    let err = dir.kage(&["seal", "shared/db.yaml"]).run().fails(1);
    assert!(err.contains("several environments: dev, all"), "{err}");
    let err = dir
        .kage(&["seal", "--env", "nope"])
        .stdin(secret_yaml("a", "b"))
        .run()
        .fails(2);
    assert!(err.contains("known environments: prod, dev, all"), "{err}");
    let err = dir
        .kage(&["seal"])
        .stdin(secret_yaml("a", "b"))
        .run()
        .fails(2);
    assert!(err.contains("no path to pick an environment"), "{err}");
}

#[test]
fn listing_and_sops_config() {
    let (dir, prod, dev) = repo();
    let envs = dir.kage(&["env", "list"]).run().ok();
    assert!(
        envs.contains("prod\tstrict\t1\tclusters/prod/**\t-"),
        "{envs}"
    );
    let keys = dir.kage(&["keys", "list", "--env", "dev"]).run().ok();
    assert!(keys.contains(&format!("\tcurrent\t{dev}")), "{keys}");
    assert!(!keys.contains(&prod));
    dir.kage(&["sops-config", "--check"]).run().fails(1);
    dir.kage(&["sops-config"]).run().ok();
    dir.kage(&["sops-config", "--check"]).run().ok();
    let sops = dir.read(".sops.yaml");
    assert!(
        sops.contains(r#"path_regex: "^(\\./)?clusters/prod/.*$""#),
        "{sops}"
    );
    assert!(sops.contains(&format!("age: {prod}")), "{sops}");
}

#[test]
fn unknown_fields_are_refused_with_a_suggestion() {
    let dir = Dir::new();
    let r = dir.keygen("k.txt");
    dir.write("s.yaml", secret_yaml("db", "prod"));
    for (text, field, near) in [
        (
            format!(
                "environments:\n  - name: prod\n    paths: [\"**\"]\n    recipients: [\"{r}\"]\n    extraRecipient: [\"{r}\"]\n"
            ),
            "line 5: unknown field environments[0].extraRecipient",
            "extraRecipients",
        ),
        (
            format!("enviroments:\n  - name: prod\n    recipients: [\"{r}\"]\n"),
            "line 1: unknown field enviroments",
            "environments",
        ),
    ] {
        dir.write(".kage.yaml", &text);
        let err = dir.kage(&["seal", "s.yaml"]).run().fails(1);
        assert!(
            err.contains(&format!(".kage.yaml: invalid .kage.yaml at {field}")),
            "{err}"
        );
        assert!(
            err.contains(&format!("hint: did you mean `{near}`?")),
            "{err}"
        );
        // also where .kage.yaml is only consulted for recipients
        dir.kage(&["env", "list"]).run().fails(1);
    }
}
