//! The one parent↔init handshake: typed messages over a SOCK_SEQPACKET socketpair (one message per packet),
//! with an fd attached when one must cross (the seccomp notify fd). Nothing else crosses it.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
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

/// The init's start socket: a SOCK_SEQPACKET listener at `path` (in the 0700 state dir).
pub fn listen(path: &std::path::Path) -> nix::Result<OwnedFd> {
    use nix::sys::socket::{bind, listen as listen_on, Backlog, UnixAddr};
    let fd = seqpacket_socket()?;
    bind(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    listen_on(&fd, Backlog::new(4)?)?;
    Ok(fd)
}

pub fn connect(path: &std::path::Path) -> nix::Result<OwnedFd> {
    use nix::sys::socket::{connect as connect_to, UnixAddr};
    let fd = seqpacket_socket()?;
    connect_to(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
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
