//! `gruntime run`: create + start; in the foreground, forward signals, relay a terminal when we own it,
//! wait, delete (unless --keep) and exit with the container's status.

use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{self, SigHandler, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use crate::cli::CreateArgs;
use crate::commands::{create, delete, start, Globals};
use crate::error::{Error, Result};
use crate::spawn::console;
use crate::spawn::{self, Console};

static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = CHILD.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

const FORWARDED: [Signal; 8] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGCONT,
    Signal::SIGPIPE,
];

pub fn run(
    g: &Globals,
    a: &CreateArgs,
    detach: bool,
    keep: bool,
    no_subreaper: bool,
) -> Result<i32> {
    let terminal = crate::container::config::load(&a.bundle)
        .ok()
        .and_then(|b| b.spec.process().as_ref().and_then(|p| p.terminal()))
        .unwrap_or(false);
    let console = match (&a.console_socket, terminal, detach) {
        (Some(p), _, _) => Console::Socket(p.clone()),
        (None, true, false) => Console::Receive,
        _ => Console::None,
    };
    if !detach && !no_subreaper {
        // Orphans of a container without its own pid namespace come back to us, not to the host's init.
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    let created = spawn::create(create::opts(g, a, console))?;
    let mut c = created.container;
    let pid = c.saved.pid;
    CHILD.store(pid, Ordering::Relaxed);
    for s in FORWARDED {
        // SAFETY: `forward` only calls kill(2), which is async-signal-safe.
        unsafe { signal::signal(s, SigHandler::Handler(forward)) }
            .map_err(|e| Error::sys("install signal forwarder", e))?;
    }
    if let Err(e) = start::start(&mut c) {
        let _ = delete::destroy(c);
        return Err(e);
    }
    if detach {
        return Ok(0);
    }
    if let Some(sock) = created.console_master {
        console::relay(&sock)?;
    }
    let code = wait_child(pid);
    if !keep {
        delete::destroy(c)?;
    }
    Ok(code)
}

/// Forward the usual signals to `pid` and wait for it (exec's foreground mode).
pub fn wait_child_forwarding(pid: i32) -> i32 {
    CHILD.store(pid, Ordering::Relaxed);
    for s in FORWARDED {
        // SAFETY: `forward` only calls kill(2), which is async-signal-safe.
        let _ = unsafe { signal::signal(s, SigHandler::Handler(forward)) };
    }
    wait_child(pid)
}

/// Wait for the init; reap any other orphan that comes to us meanwhile. 128+signal when killed, as a shell.
fn wait_child(pid: i32) -> i32 {
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(WaitStatus::Exited(p, code)) if p.as_raw() == pid => return code,
            Ok(WaitStatus::Signaled(p, sig, _)) if p.as_raw() == pid => return 128 + sig as i32,
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return 255,
        }
    }
}
