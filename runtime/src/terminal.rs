//! `run -t` without a console socket: gruntime receives the pty master itself and relays its own terminal
//! (raw mode, window size now and on SIGWINCH, restored on exit). EOF on our stdin stops reading it and
//! hang-up of the pty ends the relay: the loop never spins on a dead fd.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};

use crate::error::{Error, Result};

static WINCH: AtomicBool = AtomicBool::new(false);

extern "C" fn on_winch(_: libc::c_int) {
    WINCH.store(true, Ordering::Relaxed);
}

/// The master fd sent over SCM_RIGHTS by the init.
pub fn recv_master(sock: BorrowedFd) -> Result<OwnedFd> {
    let mut buf = [0u8; 256];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| Error::sys("receive the pty master", e))?;
    for c in msg
        .cmsgs()
        .map_err(|e| Error::sys("receive the pty master", e))?
    {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel installed this fd for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(Error::Init {
        step: "the init sent no pty master".into(),
        errno: 0,
    })
}

fn copy_winsize(from: RawFd, to: RawFd) {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ read/write a winsize through a valid pointer.
    unsafe {
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
}

pub fn relay(console_sock: &OwnedFd) -> Result<()> {
    let master = recv_master(console_sock.as_fd())?;
    let stdin = std::io::stdin();
    let is_tty = nix::unistd::isatty(stdin.as_fd()).unwrap_or(false);
    let saved = if is_tty {
        tcgetattr(stdin.as_fd()).ok()
    } else {
        None
    };
    if let Some(t) = &saved {
        let mut raw = t.clone();
        cfmakeraw(&mut raw);
        let _ = tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        copy_winsize(0, master.as_raw_fd());
        // SAFETY: the handler only stores to an atomic.
        let _ = unsafe {
            nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGWINCH,
                nix::sys::signal::SigHandler::Handler(on_winch),
            )
        };
    }
    let r = pump(master.as_raw_fd(), is_tty);
    if let Some(t) = &saved {
        let _ = tcsetattr(stdin.as_fd(), SetArg::TCSANOW, t);
    }
    r
}

fn pump(master: RawFd, is_tty: bool) -> Result<()> {
    let mut buf = [0u8; 8192];
    let mut stdin_open = true;
    loop {
        if WINCH.swap(false, Ordering::Relaxed) && is_tty {
            copy_winsize(0, master);
        }
        let mut fds = [
            libc::pollfd {
                fd: master,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if stdin_open { 0 } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: fds is a valid array of two pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            if nix::errno::Errno::last() == nix::errno::Errno::EINTR {
                continue;
            }
            return Err(Error::sys("poll the terminal", nix::errno::Errno::last()));
        }
        if fds[0].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            match nix::unistd::read(unsafe { BorrowedFd::borrow_raw(master) }, &mut buf) {
                Ok(0) | Err(nix::errno::Errno::EIO) => return Ok(()), // every slave is closed: the container is gone
                Ok(k) => write_all(1, &buf[..k]),
                Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => {}
                Err(e) => return Err(Error::sys("read the pty", e)),
            }
        }
        if stdin_open && fds[1].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            match nix::unistd::read(std::io::stdin().as_fd(), &mut buf) {
                Ok(0) => {
                    // Our input ended: pass an EOF character on, then stop watching stdin (no busy loop).
                    write_all(master, &[4]);
                    stdin_open = false;
                }
                Ok(k) => write_all(master, &buf[..k]),
                Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => {}
                Err(_) => stdin_open = false,
            }
        }
    }
}

fn write_all(fd: RawFd, mut data: &[u8]) {
    while !data.is_empty() {
        // SAFETY: fd stays open during the call; data is a valid buffer.
        match nix::unistd::write(unsafe { BorrowedFd::borrow_raw(fd) }, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return,
        }
    }
}
