//! A container as the commands see it: its saved record (state.rs) plus the live status derived from the kernel,
//! and the config it is made from (config.rs: loaded and checked before anything exists on the host).

pub mod config;
pub mod state;

/// The runtime-spec version gruntime implements.
pub const SPEC_VERSION: &str = "1.3.0";

use std::path::Path;

use serde::Serialize;

use crate::cgroups;
use crate::container::state::{Saved, StateDir};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        };
        f.write_str(s)
    }
}

/// Field 22 (starttime) and field 3 (state) of /proc/<pid>/stat.
pub fn proc_start_time(pid: i32) -> Option<(u64, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parentheses: the fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((start, state))
}

pub struct Container {
    pub dir: StateDir,
    pub saved: Saved,
}

impl Container {
    pub fn load(root: &Path, id: &str) -> Result<Container> {
        let dir = StateDir::open(root, id)?;
        let saved = dir.load()?;
        Ok(Container { dir, saved })
    }

    pub fn id(&self) -> &str {
        &self.saved.id
    }

    /// Is the init we made still alive? A pid reused by another process has another start time.
    pub fn init_alive(&self) -> bool {
        if self.saved.pid <= 0 {
            return false;
        }
        matches!(proc_start_time(self.saved.pid), Some((t, s)) if t == self.saved.start_time && s != 'Z' && s != 'X')
    }

    pub fn status(&self) -> Status {
        if !self.init_alive() {
            return Status::Stopped;
        }
        if let Some(cg) = &self.saved.cgroup {
            if cgroups::is_frozen(cg) {
                return Status::Paused;
            }
        }
        if self.saved.started {
            Status::Running
        } else {
            Status::Created
        }
    }

    /// The runtime-spec state object, with runc's extra fields (rootfs, created, owner).
    pub fn oci_state(&self) -> serde_json::Value {
        let status = self.status();
        let pid = if status == Status::Stopped {
            0
        } else {
            self.saved.pid
        };
        oci_state_json(&self.saved, status, pid)
    }

    pub fn require_status(&self, allowed: &[Status], what: &str) -> Result<Status> {
        let s = self.status();
        if allowed.contains(&s) {
            Ok(s)
        } else if s == Status::Stopped && what != "start" {
            Err(Error::BadState {
                id: self.id().into(),
                reason: "container not running".into(),
            })
        } else {
            Err(Error::BadState {
                id: self.id().into(),
                reason: format!("cannot {what} a container that is {s}"),
            })
        }
    }
}

pub fn oci_state_json(saved: &Saved, status: Status, pid: i32) -> serde_json::Value {
    serde_json::json!({
        "ociVersion": SPEC_VERSION,
        "id": saved.id,
        "pid": pid,
        "status": status,
        "bundle": saved.bundle,
        "rootfs": saved.rootfs,
        "created": saved.created,
        "owner": saved.owner,
        "annotations": saved.annotations,
    })
}
