//! trycmd snapshots of every help text and the user-facing errors (`tests/cmd/<sub>/*.toml`,
//! run in `tests/cmd/fixtures`); rebless with `TRYCMD=overwrite`.

#[test]
fn snapshots() {
    let cases = trycmd::TestCases::new();
    cases.default_bin_name("kage").env("NO_COLOR", "1");
    for var in [
        "KAGE_IDENTITY",
        "KAGE_CONFIG",
        "SOPS_AGE_KEY_FILE",
        "SOPS_AGE_KEY",
        "EDITOR",
        "VISUAL",
    ] {
        cases.env(var, "");
    }
    cases.case("tests/cmd/*/*.toml");
}
