//! The client of CRIU's RPC, as runc drives it: `criu swrk <fd>` is started with one end of a
//! SOCK_SEQPACKET socketpair, gets one `criu_req` (the messages are the CRIU project's own, generated
//! from its rpc.proto by the `rust-criu` crate), and answers with `criu_resp` datagrams: notifications
//! ("setup-namespaces", "post-restore", "orphan-pts-master" with a pty master fd attached, …), each
//! acknowledged before CRIU goes on, then the final answer. CRIU's own errors are in its log file in the
//! work directory; this file only reports that the call failed and CRIU's one-line reason.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};
use protobuf::Message;
use rust_criu::rust_criu_protobuf::rpc::{
    Criu_notify, Criu_opts, Criu_req, Criu_req_type, Criu_resp,
};

/// Why a call did not succeed. `Failed` is CRIU's own refusal; the others are about reaching it.
#[derive(Debug)]
pub enum CallError {
    /// The criu binary could not be started (not installed, not executable).
    Spawn(std::io::Error),
    /// The socket to CRIU failed, or CRIU went away without an answer (killed, crashed).
    Transport(String),
    /// CRIU answered that the request failed: its message (3.15+) or errno.
    Failed { errmsg: String, errno: i32 },
    /// Our handler of a notification failed; CRIU was told and aborted.
    Notify(crate::error::Error),
}

/// What the caller does with each notification. The fd is the one CRIU attached (only
/// "orphan-pts-master" has one).
pub type OnNotify<'a> =
    dyn FnMut(&str, &Criu_notify, Option<OwnedFd>) -> crate::error::Result<()> + 'a;

/// A request of one type with its options, and the fds CRIU must inherit at the numbers the options
/// name (images dir, work dir, namespaces for inherit_fd).
pub struct Call<'a> {
    pub kind: Criu_req_type,
    pub opts: Criu_opts,
    pub pass: Vec<BorrowedFd<'a>>,
    /// CRIU's stdio: the restored tasks' pipes are inherited from it (inherit_fd keys "pipe:[…]").
    pub inherit_stdio: bool,
}

/// Start `criu swrk`, let `started` see its pid and complete the options (restore puts it into the
/// container's cgroup and names that cgroup to CRIU before anything is restored), send the request,
/// answer notifications, return the final answer.
pub fn call(
    criu: &Path,
    mut c: Call,
    started: impl FnOnce(u32, &mut Criu_opts) -> crate::error::Result<()>,
    on_notify: &mut OnNotify,
) -> Result<Criu_resp, CallError> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| CallError::Transport(format!("socketpair: {}", e.desc())))?;
    let mut keep: Vec<RawFd> = c.pass.iter().map(|f| f.as_raw_fd()).collect();
    keep.push(theirs.as_raw_fd());
    let mut cmd = Command::new(criu);
    cmd.arg("swrk").arg(theirs.as_raw_fd().to_string());
    if !c.inherit_stdio {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
    }
    // SAFETY: the closure runs in the forked child before exec and only calls fcntl(2), which is
    // async-signal-safe; it touches no memory shared with the parent beyond the read-only `keep`.
    unsafe {
        cmd.pre_exec(move || {
            // Our fds are all CLOEXEC; these few must survive the exec at the same numbers.
            for &fd in &keep {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(CallError::Spawn)?;
    drop(theirs);
    let mut guard = Reap(Some(child));
    if let Err(e) = started(guard.pid(), &mut c.opts) {
        return Err(CallError::Notify(e));
    }
    let mut req = Criu_req::new();
    req.set_type(c.kind);
    req.opts = protobuf::MessageField::some(c.opts);
    send(ours.as_fd(), &req)?;
    loop {
        let (resp, fd) = recv(ours.as_fd())?;
        if !resp.success() {
            return Err(CallError::Failed {
                errmsg: resp.cr_errmsg().to_string(),
                errno: resp.cr_errno(),
            });
        }
        if resp.type_() != Criu_req_type::NOTIFY {
            drop(ours);
            guard.wait();
            return Ok(resp);
        }
        let notify = resp.notify.get_or_default();
        let result = on_notify(notify.script(), notify, fd);
        let mut ack = Criu_req::new();
        ack.set_type(Criu_req_type::NOTIFY);
        ack.set_notify_success(result.is_ok());
        send(ours.as_fd(), &ack)?;
        if let Err(e) = result {
            return Err(CallError::Notify(e));
        }
    }
}

/// Waits for `criu swrk` whatever happens: on an error path it is killed first, so no CRIU process
/// outlives the command.
struct Reap(Option<Child>);

impl Reap {
    fn pid(&self) -> u32 {
        self.0.as_ref().map(|c| c.id()).unwrap_or(0)
    }
    fn wait(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.wait();
        }
    }
}

impl Drop for Reap {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn send(sock: BorrowedFd, req: &Criu_req) -> Result<(), CallError> {
    let bytes = req
        .write_to_bytes()
        .map_err(|e| CallError::Transport(format!("encode request: {e}")))?;
    sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(&bytes)],
        &[],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| CallError::Transport(format!("send to criu: {}", e.desc())))?;
    Ok(())
}

/// CRIU's answers are a few hundred bytes; a datagram that does not fit is refused, never half-read.
const MAX_RESPONSE: usize = 1 << 20;

fn recv(sock: BorrowedFd) -> Result<(Criu_resp, Option<OwnedFd>), CallError> {
    let mut buf = vec![0u8; MAX_RESPONSE];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let msg = loop {
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => break r,
        }
    }
    .map_err(|e| CallError::Transport(format!("read from criu: {}", e.desc())))?;
    let mut fd = None;
    for c in msg.cmsgs().into_iter().flatten() {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for raw in fds {
                // SAFETY: SCM_RIGHTS just installed this fd in our table; nothing else owns it.
                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                fd.get_or_insert(owned);
            }
        }
    }
    if msg.flags.contains(MsgFlags::MSG_TRUNC) {
        return Err(CallError::Transport("criu's answer was too large".into()));
    }
    let n = msg.bytes;
    if n == 0 {
        return Err(CallError::Transport("criu exited without answering".into()));
    }
    let resp = Criu_resp::parse_from_bytes(&buf[..n])
        .map_err(|e| CallError::Transport(format!("decode criu's answer: {e}")))?;
    Ok((resp, fd))
}
