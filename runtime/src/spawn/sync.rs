//! The one parent↔init handshake: typed messages over a SOCK_SEQPACKET socketpair (one message per packet),
//! with an fd attached when one must cross (the seccomp notify fd). Nothing else crosses it.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType, UnixAddr,
};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub enum Msg {
    /// parent → init: id maps written, cgroup placed; go on with the setup.
    Go,
    /// init → parent: mounts are done, run the prestart/createRuntime hooks now (before pivot_root).
    RunCreateHooks,
    /// parent → init: the hooks ran.
    HooksDone,
    /// init → parent: a seccomp notify fd is attached.
    SeccompFd,
    /// init → parent: everything is set up.
    Ready,
    /// parent → init: the container is recorded; wait for `start`. An init whose parent dies
    /// before this (EOF) exits: no init waits for a `start` that no record leads to.
    Committed,
    /// either way: a step failed.
    Error { step: String, errno: i32 },
    /// start → init: exec the user process now.
    Start,
}

/// A close-on-exec SOCK_SEQPACKET Unix socket: either end of the start socket.
fn seqpacket_socket() -> nix::Result<OwnedFd> {
    nix::sys::socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
}

/// The longest path a Unix socket address holds (`sun_path` is 108 bytes with its NUL).
const SUN_PATH_MAX: usize = 107;

/// The address of the socket at `path`. A path too long for `sun_path` is reached through an
/// O_PATH fd on its directory, as `/proc/self/fd/N/NAME`: Docker's state root and 64-digit ids
/// make `/var/run/docker/runtime-runc/moby/<id>/start.sock` 109 bytes. The fd must stay open
/// until the bind or connect is done.
fn address(path: &Path) -> nix::Result<(UnixAddr, Option<OwnedFd>)> {
    if path.as_os_str().len() <= SUN_PATH_MAX {
        return Ok((UnixAddr::new(path)?, None));
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(nix::errno::Errno::ENAMETOOLONG);
    };
    let dir = nix::fcntl::open(
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    let short = Path::new("/proc/self/fd")
        .join(dir.as_raw_fd().to_string())
        .join(name);
    Ok((UnixAddr::new(&short)?, Some(dir)))
}

/// The init's start socket: a SOCK_SEQPACKET listener at `path` (in the 0700 state dir).
pub fn listen(path: &Path) -> nix::Result<OwnedFd> {
    use nix::sys::socket::{bind, listen as listen_on, Backlog};
    let fd = seqpacket_socket()?;
    let (addr, _dir) = address(path)?;
    bind(fd.as_raw_fd(), &addr)?;
    listen_on(&fd, Backlog::new(4)?)?;
    Ok(fd)
}

pub fn connect(path: &Path) -> nix::Result<OwnedFd> {
    use nix::sys::socket::connect as connect_to;
    let fd = seqpacket_socket()?;
    let (addr, _dir) = address(path)?;
    connect_to(fd.as_raw_fd(), &addr)?;
    Ok(fd)
}

pub fn pair() -> nix::Result<(OwnedFd, OwnedFd)> {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
}

pub fn send(sock: BorrowedFd, msg: &Msg, fd: Option<RawFd>) -> nix::Result<()> {
    let buf = serde_json::to_vec(msg).expect("message serialises");
    let iov = [IoSlice::new(&buf)];
    let fds = fd.map(|f| [f]);
    let cmsgs: Vec<ControlMessage> = fds
        .as_ref()
        .map(|f| vec![ControlMessage::ScmRights(f)])
        .unwrap_or_default();
    sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsgs, MsgFlags::MSG_NOSIGNAL, None)?;
    Ok(())
}

/// Receive one message; `Ok(None)` when the peer closed the socket (it exited, or exec'd: our fds are CLOEXEC).
pub fn recv(sock: BorrowedFd) -> nix::Result<Option<(Msg, Option<OwnedFd>)>> {
    let mut buf = [0u8; 4096];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let (n, fd) = loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(r) => {
                let mut fd = None;
                for c in r.cmsgs()? {
                    if let ControlMessageOwned::ScmRights(fds) = c {
                        // SAFETY: the kernel just installed these fds in our table for us; we own them now.
                        fd = fds.first().map(|f| unsafe { OwnedFd::from_raw_fd(*f) });
                    }
                }
                break (r.bytes, fd);
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    };
    if n == 0 {
        return Ok(None);
    }
    let msg = serde_json::from_slice(&buf[..n]).map_err(|_| nix::errno::Errno::EBADMSG)?;
    Ok(Some((msg, fd)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// Docker's state root with a 64-digit id puts the start socket past sun_path's 108 bytes.
    #[test]
    fn a_start_socket_path_longer_than_sun_path_still_binds_and_connects() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("runtime-runc/moby").join("a".repeat(64));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("start.sock");
        assert!(path.as_os_str().len() > SUN_PATH_MAX, "{}", path.display());
        let listener = listen(&path).unwrap();
        assert!(path.exists(), "the socket is at its real path");
        let ours = connect(&path).unwrap();
        let theirs = nix::sys::socket::accept(&listener).unwrap();
        send(ours.as_fd(), &Msg::Start, None).unwrap();
        let (msg, _) = recv(theirs.as_fd()).unwrap().unwrap();
        assert_eq!(msg, Msg::Start);
    }
}
