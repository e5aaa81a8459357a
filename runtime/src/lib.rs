//! gruntime's library: every module of the runtime. The binary (main.rs) is its command line;
//! the fuzz targets (fuzz/) call the pure entry points (config parsing and validation, seccomp
//! compilation) directly.

pub mod cgroups;
pub mod cli;
pub mod commands;
pub mod container;
pub mod criu;
pub mod error;
pub mod hooks;
pub mod log;
pub mod mountinfo;
pub mod namespaces;
pub mod process;
pub mod rootfs;
pub mod rootless;
pub mod seccomp;
pub mod spawn;
pub mod sys;
