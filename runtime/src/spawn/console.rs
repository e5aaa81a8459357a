//! Both ends of a container's pty. `Console` says where the master goes: to a `--console-socket`, or back to
//! gruntime itself (`run -t`/`exec -t` without a socket). Child side, in the init after pivot_root: the pty is
//! made from the container's own devpts, the slave becomes the controlling terminal, stdio and /dev/console, and
//! the master leaves with SCM_RIGHTS. Parent side: gruntime receives the master and relays its own terminal (raw
//! mode, window size now and on SIGWINCH, restored on exit); EOF on our stdin stops reading it and hang-up of
//! the pty ends the relay, so the loop never spins on a dead fd.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::fcntl::{open, OFlag};
use nix::mount::{mount, MsFlags};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use nix::sys::stat::Mode;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
use oci_spec::runtime::Process;

use crate::error::{Error, InitResult, Result, Step};
use crate::spawn::sync;

/// Where the pty master of a `terminal: true` container goes.
pub enum Console {
    None,
    /// `--console-socket PATH`: send it to whoever listens there.
    Socket(PathBuf),
    /// `run -t` without a socket: gruntime receives it and relays its own terminal.
    Receive,
}

impl Console {
    /// (our end, the end the new process gets): where its pty master will be sent.
    pub fn open(&self) -> Result<(Option<OwnedFd>, Option<OwnedFd>)> {
        match self {
            Console::None => Ok((None, None)),
            Console::Socket(p) => {
                let s = UnixStream::connect(p)
                    .map_err(|e| Error::io("connect to console socket", p, e))?;
                Ok((None, Some(OwnedFd::from(s))))
            }
            Console::Receive => {
                let (a, b) = sync::pair().map_err(|e| Error::sys("make console socketpair", e))?;
                Ok((Some(a), Some(b)))
            }
        }
    }
}

// ---- child side: in the init ----

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

// ---- parent side: gruntime relays its own terminal ----

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
    // SAFETY: winsize is plain integers; all-zero is a valid value.
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
            // SAFETY: master stays open for the whole relay.
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
