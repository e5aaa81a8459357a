use std::str::FromStr;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::cgroups;
use crate::commands::Globals;
use crate::container::{Container, Status};
use crate::error::{Error, Result};

/// `KILL`, `SIGKILL`, `kill` or `9`.
pub fn parse_signal(s: &str) -> Result<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n)
            .map_err(|_| Error::InvalidArgument(format!("invalid signal {s:?}")));
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    Signal::from_str(&name).map_err(|_| Error::InvalidArgument(format!("invalid signal {s:?}")))
}

pub fn run(g: &Globals, id: &str, signal: Option<&str>, all: bool) -> Result<()> {
    let sig = parse_signal(signal.unwrap_or("SIGTERM"))?;
    let c = Container::load(&g.root, id)?;
    if all && c.status() == Status::Stopped {
        // As runc: --all on a stopped container reaps what is left in its cgroup. In a pod the containers
        // share a pid namespace none of them owns, so the init's death does not end its children, and
        // containerd's shim sends `kill --all` before `delete` to clear them.
        return match &c.saved.cgroup {
            Some(cg) if cg.exists() => cgroups::kill_all(cg, sig),
            _ => Ok(()),
        };
    }
    c.require_status(&[Status::Created, Status::Running, Status::Paused], "kill")?;
    if all {
        return kill_all(&c, sig);
    }
    match kill(Pid::from_raw(c.saved.pid), sig) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::ESRCH) => Err(Error::NoSuchProcess),
        Err(e) => Err(Error::sys(format!("kill {} {sig}", c.saved.pid), e)),
    }
}

/// Every process of the container: through its cgroup when it has one, else every process in its pid namespace.
pub fn kill_all(c: &Container, sig: Signal) -> Result<()> {
    if let Some(cg) = &c.saved.cgroup {
        return cgroups::kill_all(cg, sig);
    }
    let ns = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let target = ns(c.saved.pid);
    let own = ns(std::process::id() as i32);
    if target.is_none() || target == own {
        // Shares our pid namespace: only the init is known to be the container's.
        return kill(Pid::from_raw(c.saved.pid), sig).map_err(|e| Error::sys("kill", e));
    }
    for e in std::fs::read_dir("/proc")
        .map_err(|e| Error::io("list", "/proc", e))?
        .flatten()
    {
        if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
            if ns(pid) == target {
                let _ = kill(Pid::from_raw(pid), sig);
            }
        }
    }
    Ok(())
}
