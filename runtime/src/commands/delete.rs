use std::time::Duration;

use nix::sys::signal::Signal;

use crate::commands::Globals;
use crate::container::{Container, Status};
use crate::error::{Error, Result};
use crate::{cgroups, hooks};

pub fn run(g: &Globals, id: &str, force: bool) -> Result<()> {
    let c = match Container::load(&g.root, id) {
        // runc: deleting a container that is already gone with --force is not an error. What
        // commands killed half-way left in the root goes too.
        Err(Error::ContainerNotFound(_)) if force => {
            crate::container::state::sweep(&g.root);
            return Ok(());
        }
        r => r?,
    };
    match c.status() {
        Status::Stopped | Status::Created => {}
        s if force => {
            let _ = s;
        }
        s => {
            return Err(Error::BadState {
                id: id.into(),
                reason: format!("cannot delete container that is not stopped: {s}"),
            })
        }
    }
    destroy(c)
}

/// Kill what is left (the init, then anything else in its cgroup), wait for it, run poststop hooks (warn on failure), remove the cgroup and the state.
pub fn destroy(c: Container) -> Result<()> {
    let init_alive = c.init_alive();
    // Processes the init's death did not end (a shared pid namespace, as in a pod) still pin the cgroup:
    // kill_all reaches them through it, as runc's destroy does, and the removal below waits while they die.
    let leftovers = c
        .saved
        .cgroup
        .as_ref()
        .is_some_and(|cg| !cgroups::pids(cg).is_empty());
    if init_alive || leftovers {
        let _ = crate::commands::kill::kill_all(&c, Signal::SIGKILL);
        if let Some(cg) = &c.saved.cgroup {
            let _ = cgroups::thaw(cg);
        }
    }
    if init_alive {
        wait_gone(c.saved.pid, Duration::from_secs(10))?;
    }
    if let Ok(spec) = c.dir.load_config() {
        if let Some(hs) = spec.hooks().as_ref().and_then(|h| h.poststop().as_ref()) {
            let state = crate::container::oci_state_json(&c.saved, Status::Stopped, 0).to_string();
            hooks::run_all_warn("poststop", hs, &state);
        }
    }
    if let Some(cg) = &c.saved.cgroup {
        cgroups::Cgroup {
            path: cg.clone(),
            unit: c.saved.systemd_unit.clone(),
        }
        .remove()?;
    } else if let Some(unit) = &c.saved.systemd_unit {
        // A create killed while systemd started its scope: the unit is known, its cgroup never was.
        cgroups::systemd::stop(unit)?;
    }
    c.dir.remove()
}

/// Wait until a process (not necessarily our child) is gone: poll its pidfd.
pub fn wait_gone(pid: i32, timeout: Duration) -> Result<()> {
    let gone = crate::sys::wait_pid_gone(pid, timeout)
        .map_err(|e| Error::sys(format!("wait for pid {pid} to exit"), e))?;
    if !gone {
        return Err(Error::sys(
            format!("wait for pid {pid} to exit"),
            nix::errno::Errno::ETIMEDOUT,
        ));
    }
    Ok(())
}
