//! `kage-controller` binary (wip).
fn main() {}
