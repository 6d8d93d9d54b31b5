//! trycmd snapshots of every help text and the user-facing errors (`tests/cmd/**`).

#[test]
fn snapshots() {
    trycmd::TestCases::new()
        .default_bin_name("kage")
        .env("NO_COLOR", "1")
        .case("tests/cmd/*/*.toml");
}
