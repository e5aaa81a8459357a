//! `process.terminal`: a pty made inside the container (from its own devpts), the slave becomes the
//! process's controlling terminal and stdio and /dev/console, the master goes to `--console-socket` with
//! SCM_RIGHTS.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::mount::{mount, MsFlags};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use nix::sys::stat::Mode;
use oci_spec::runtime::Process;

use crate::init_error::{InitResult, Step};

/// Send `fd` over a unix socket, with a file name as the payload (as runc does: clients ignore or log it).
pub fn send_fd(sock: BorrowedFd, name: &str, fd: BorrowedFd) -> nix::Result<()> {
    let iov = [IoSlice::new(name.as_bytes())];
    let fds = [fd.as_raw_fd()];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map(drop)
}

/// In the init, after pivot_root: make the pty, hand the master out, keep the slave as stdio.
pub fn setup_console(process: &Process, console_socket: BorrowedFd) -> InitResult<()> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .step(|| "open /dev/ptmx in the container".into())?;
    grantpt(&master).step(|| "grantpt".into())?;
    unlockpt(&master).step(|| "unlockpt".into())?;
    let slave_name = ptsname_r(&master).step(|| "ptsname".into())?;
    let slave: OwnedFd = open(
        Path::new(&slave_name),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .step(|| format!("open {slave_name}"))?;
    if let Some(sz) = process.console_size() {
        let ws = libc::winsize {
            ws_row: sz.height() as u16,
            ws_col: sz.width() as u16,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize from the pointer, valid for the call.
        let r = unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        nix::errno::Errno::result(r).step(|| "set console size".into())?;
    }
    bind_console(&slave_name)?;
    // SAFETY: master is a live fd owned by `master` for the duration of the call.
    let mfd = unsafe { BorrowedFd::borrow_raw(master.as_raw_fd()) };
    send_fd(console_socket, "/dev/ptmx", mfd)
        .step(|| "send the pty master to --console-socket".into())?;
    drop(master);
    nix::unistd::setsid().step(|| "setsid".into())?;
    // SAFETY: TIOCSCTTY takes an int argument; slave is a valid tty fd.
    let r = unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) };
    nix::errno::Errno::result(r).step(|| "make the pty the controlling terminal".into())?;
    for target in 0..3 {
        // SAFETY: dup2 onto the standard fds; slave stays valid.
        let r = unsafe { libc::dup2(slave.as_raw_fd(), target) };
        nix::errno::Errno::result(r).step(|| format!("dup2 pty onto fd {target}"))?;
    }
    Ok(())
}

/// /dev/console is the pty slave, as in runc.
fn bind_console(slave: &str) -> InitResult<()> {
    let console = Path::new("/dev/console");
    if !console.exists() {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(console)
            .step(|| "create /dev/console".into())?;
    }
    mount(
        Some(slave),
        console,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .step(|| format!("bind {slave} onto /dev/console"))
}
