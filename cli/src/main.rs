//! `kage`: the command line. Filled by the CLI issue.
fn main() {
    println!("kage {}", env!("CARGO_PKG_VERSION"));
}
