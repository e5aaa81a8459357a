//! `gruntime restore`: a container from a bundle and a checkpoint (criu/restore.rs). In the foreground it
//! waits for the restored init, forwarding signals, then deletes the container and exits with its status,
//! as `run` does; `--detach` leaves it running.

use crate::cli::RestoreArgs;
use crate::commands::checkpoint::criu_opts;
use crate::commands::{delete, run as run_cmd, Globals};
use crate::criu::restore::{self, RestoreOpts};
use crate::error::{Error, Result};

pub fn run(g: &Globals, a: &RestoreArgs) -> Result<i32> {
    for (flag, value) in [
        ("--lsm-profile", &a.lsm_profile),
        ("--lsm-mount-context", &a.lsm_mount_context),
    ] {
        if value.is_some() {
            let lsm =
                crate::process::lsm::apparmor_enabled() || crate::process::lsm::selinux_enabled();
            return Err(Error::Unsupported(if lsm {
                format!("{flag} is not implemented by gruntime")
            } else {
                format!("{flag}: this host has no LSM (AppArmor or SELinux) enabled")
            }));
        }
    }
    let opts = RestoreOpts {
        root: &g.root,
        id: &a.id,
        bundle: &a.bundle,
        console_socket: a.console_socket.as_deref(),
        pid_file: a.pid_file.as_deref(),
        systemd_cgroup: g.systemd_cgroup,
        criu: criu_opts(g, &a.criu)?,
    };
    if !a.detach && !a.no_subreaper {
        // The restored init is our child; its orphans come back to us, not to the host's init.
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    let c = restore::restore(&opts)?;
    if a.detach {
        return Ok(0);
    }
    let code = run_cmd::wait_child_forwarding(c.saved.pid);
    delete::destroy(c)?;
    Ok(code)
}
