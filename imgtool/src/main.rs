//! imgtool: registries → a local content-addressed store → OCI runtime bundles.
//! (Skeleton: the pull/store work replaces this file; the unpack work owns unpack_cli.rs.)
mod context;
mod error;
mod unpack_cli;

fn main() {}
