//! `kage-testcluster`: filled by the test-cluster issue.
fn main() {
    println!("kage-testcluster {}", env!("CARGO_PKG_VERSION"));
}
