use std::time::Duration;

use nix::sys::signal::Signal;

use crate::commands::Globals;
use crate::container::{Container, Status};
use crate::error::{Error, Result};
use crate::{cgroups, hooks};

pub fn run(g: &Globals, id: &str, force: bool) -> Result<()> {
    let c = match Container::load(&g.root, id) {
        // runc: deleting a container that is already gone with --force is not an error.
        Err(Error::ContainerNotFound(_)) if force => return Ok(()),
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

/// Kill what is left, wait for it, run poststop hooks (warn on failure), remove the cgroup and the state.
pub fn destroy(c: Container) -> Result<()> {
    if c.init_alive() {
        let _ = crate::commands::kill::kill_all(&c, Signal::SIGKILL);
        if let Some(cg) = &c.saved.cgroup {
            let _ = cgroups::thaw(cg);
        }
        wait_gone(c.saved.pid, Duration::from_secs(10))?;
    }
    if let Ok(spec) = c.dir.load_config() {
        if let Some(hs) = spec.hooks().as_ref().and_then(|h| h.poststop().as_ref()) {
            let state = crate::container::oci_state_json(&c.saved, Status::Stopped, 0).to_string();
            hooks::run_all_warn("poststop", hs, &state);
        }
    }
    if let Some(cg) = &c.saved.cgroup {
        cgroups::Cgroup { path: cg.clone() }.remove()?;
    }
    c.dir.remove()
}

/// Wait until a process (not necessarily our child) is gone: poll its pidfd.
pub fn wait_gone(pid: i32, timeout: Duration) -> Result<()> {
    // SAFETY: pidfd_open takes a pid and flags; the returned fd is ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Ok(()); // already gone
    }
    let mut pfd = libc::pollfd {
        fd: fd as i32,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: pfd is valid for the call; fd is closed right after.
    let r = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as i32) };
    // SAFETY: fd is ours and not used after this.
    unsafe { libc::close(fd as i32) };
    if r == 0 {
        return Err(Error::sys(
            format!("wait for pid {pid} to exit"),
            nix::errno::Errno::ETIMEDOUT,
        ));
    }
    Ok(())
}
