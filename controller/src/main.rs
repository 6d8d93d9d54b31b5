//! `kage-controller`: filled by the controller issue.
fn main() {
    println!("kage-controller {}", env!("CARGO_PKG_VERSION"));
}
