//! The one place where the cgroup manager plugs into the lifecycle (filled in by the cgroups work).
//! create: `prepare` before the init runs user code; pause/resume: `freeze`/`thaw`; kill --all: `kill_all`;
//! delete: `remove`. With no cgroup support yet, a container runs in the caller's cgroups and any
//! `linux.resources` is refused instead of being silently dropped.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::error::{Error, Result};

/// A container's cgroup directory.
pub struct Cgroup {
    pub path: PathBuf,
}

/// Decide the container's cgroup and apply its resources. `None`: the container stays in the caller's cgroups.
pub fn prepare(spec: &Spec, _id: &str) -> Result<Option<Cgroup>> {
    let wants_resources = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .map(|r| {
            // Every client sends a device list (at least "deny all"): without a device controller the
            // container's /dev holds only what the config lists, so the list alone is no request for limits.
            let mut r = r.clone();
            r.set_devices(None);
            r != Default::default()
        })
        .unwrap_or(false);
    if wants_resources {
        return Err(Error::Unsupported(
            "linux.resources: no cgroup manager on this build".into(),
        ));
    }
    Ok(None)
}

impl Cgroup {
    /// Move `pid` into this cgroup (used when clone3's CLONE_INTO_CGROUP was not available).
    pub fn add(&self, _pid: i32) -> Result<()> {
        Ok(())
    }

    /// An fd of the cgroup directory for clone3's CLONE_INTO_CGROUP.
    pub fn open_fd(&self) -> Option<std::os::fd::OwnedFd> {
        None
    }

    pub fn remove(&self) -> Result<()> {
        Ok(())
    }
}

pub fn is_frozen(cgroup: &Path) -> bool {
    std::fs::read_to_string(cgroup.join("cgroup.freeze"))
        .map(|s| s.trim() == "1")
        .unwrap_or(false)
}

pub fn thaw(_cgroup: &Path) -> Result<()> {
    Ok(())
}

pub fn kill_all(cgroup: &Path, sig: nix::sys::signal::Signal) -> Result<()> {
    let procs = cgroup.join("cgroup.procs");
    let list = std::fs::read_to_string(&procs).map_err(|e| Error::io("read", &procs, e))?;
    for pid in list.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
    }
    Ok(())
}

/// For `gruntime features`.
pub fn features() -> serde_json::Value {
    serde_json::json!({ "v1": false, "v2": false, "systemd": false, "systemdUser": false, "rdma": false })
}
