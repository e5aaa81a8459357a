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

    /// Has the init exec'd the user process? `start` records it, but a `start` killed between its
    /// go and that record leaves a running container recorded as not started: the kernel says
    /// which (until its exec the init is a copy of this binary). An init we may not look at (a
    /// rootless caller and a non-dumpable init) is judged by the record alone.
    pub fn init_execd(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        let id = |p: &str| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
        match (
            id(&format!("/proc/{}/exe", self.saved.pid)),
            id("/proc/self/exe"),
        ) {
            (Some(init), Some(me)) => init != me,
            _ => false,
        }
    }

    pub fn status(&self) -> Status {
        // A create that never finished (killed): its init exits on its own and never runs.
        if self.saved.creating || !self.init_alive() {
            return Status::Stopped;
        }
        if let Some(cg) = &self.saved.cgroup {
            if cgroups::is_frozen(cg) {
                return Status::Paused;
            }
        }
        if self.saved.started || self.init_execd() {
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

/// prestart then createRuntime hooks, in the runtime's namespaces once the container's exist: while
/// the init waits after its mounts (create), or at CRIU's "setup-namespaces" (restore, as runc runs
/// them). prestart hooks see the status `created` (they once ran at `start`; crun and the
/// runtime-tools suite agree), createRuntime hooks `creating`, as the spec's lifecycle says.
pub fn run_create_hooks(spec: &oci_spec::runtime::Spec, saved: &Saved, pid: i32) -> Result<()> {
    let Some(h) = spec.hooks() else {
        return Ok(());
    };
    for (kind, list, status) in [
        ("prestart", h.prestart(), Status::Created),
        ("createRuntime", h.create_runtime(), Status::Creating),
    ] {
        let state = oci_state_json(saved, status, pid).to_string();
        crate::hooks::run_all(kind, list.as_deref().unwrap_or(&[]), &state).map_err(|e| {
            Error::Hook {
                kind,
                index: e.index,
                reason: e.reason,
            }
        })?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn container_of(pid: i32, creating: bool) -> (tempfile::TempDir, Container) {
        let root = tempfile::tempdir().unwrap();
        let mut saved = state::tests::record("c1");
        saved.pid = pid;
        saved.start_time = proc_start_time(pid).unwrap().0;
        saved.creating = creating;
        let dir = StateDir::create(root.path(), "c1", &saved).unwrap();
        (root, Container { dir, saved })
    }

    #[test]
    fn an_abandoned_create_is_stopped_even_while_its_init_lives() {
        // This process plays an init that has not exec'd (it runs this binary).
        let me = std::process::id() as i32;
        let (_root, c) = container_of(me, true);
        assert!(c.init_alive());
        assert_eq!(c.status(), Status::Stopped);
        assert_eq!(c.oci_state()["pid"], 0);
        let (_root, c) = container_of(me, false);
        assert_eq!(c.status(), Status::Created);
    }

    #[test]
    fn an_init_that_has_execd_is_running_even_if_no_start_recorded_it() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        // Wait for the exec: until then the child runs this binary.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::read_link(format!("/proc/{}/exe", child.id()))
            .is_ok_and(|e| !e.ends_with("sleep"))
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let (_root, c) = container_of(child.id() as i32, false);
        assert!(!c.saved.started);
        let status = c.status();
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(status, Status::Running);
    }
}
