//! One file per subcommand; each loads the container, acts, saves.

pub mod checkpoint;
pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod features;
pub mod kill;
pub mod list;
pub mod pause;
pub mod ps;
pub mod restore;
pub mod run;
pub mod spec;
pub mod start;
pub mod state;
pub mod update;

use std::path::PathBuf;

/// What every command needs from the global flags.
pub struct Globals {
    pub root: PathBuf,
    /// `--systemd-cgroup`: new containers get a systemd scope (cgroups::systemd).
    pub systemd_cgroup: bool,
    /// `--criu`: the criu binary for checkpoint/restore.
    pub criu: PathBuf,
}
