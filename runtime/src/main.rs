//! gruntime: an OCI runtime with runc's command line.
#![allow(dead_code)]
mod seccomp;

fn main() {}
