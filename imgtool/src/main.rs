//! imgtool: registries → a local content-addressed store → OCI runtime bundles.
fn main() {}
