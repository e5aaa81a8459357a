//! Handing the seccomp notify fd to the agent at `listenerPath`, as the runtime spec describes:
//! one message on a unix stream socket carrying the fd with SCM_RIGHTS and, as payload, the
//! container process state JSON (`ociVersion`, `fds: ["seccompFd"]`, `pid`, `metadata`, `state`).

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
use oci_spec::runtime::{ContainerProcessState, State, SECCOMP_FD_NAME};

use super::SeccompError;

/// Called by the runtime process (host mount namespace) once the init handed it the notify fd.
pub fn send_to_listener(
    listener_path: &Path,
    metadata: Option<&str>,
    state: &State,
    pid: i32,
    fd: BorrowedFd,
) -> Result<(), SeccompError> {
    let payload = process_state_json(metadata, state, pid)?;
    let stream =
        UnixStream::connect(listener_path).map_err(|source| SeccompError::ListenerConnect {
            path: listener_path.to_path_buf(),
            source,
        })?;
    send_fd(&stream, &payload, fd).map_err(|source| SeccompError::ListenerSend {
        path: listener_path.to_path_buf(),
        source,
    })
}

fn process_state_json(
    metadata: Option<&str>,
    state: &State,
    pid: i32,
) -> Result<Vec<u8>, SeccompError> {
    let mut cps = ContainerProcessState::default();
    cps.set_version(state.version().clone());
    cps.set_fds(vec![SECCOMP_FD_NAME.to_string()]);
    cps.set_pid(pid);
    cps.set_metadata(metadata.map(str::to_string));
    cps.set_state(state.clone());
    serde_json::to_vec(&cps).map_err(SeccompError::StateJson)
}

/// One sendmsg: the agent reads the fd and the whole JSON in a single recvmsg.
fn send_fd(stream: &UnixStream, payload: &[u8], fd: BorrowedFd) -> std::io::Result<()> {
    let fds = [fd.as_raw_fd()];
    let cmsgs = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(payload)];
    let sent = sendmsg::<UnixAddr>(stream.as_raw_fd(), &iov, &cmsgs, MsgFlags::empty(), None)
        .map_err(std::io::Error::from)?;
    if sent != payload.len() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            format!("sent {sent} of {} bytes of the state", payload.len()),
        ));
    }
    Ok(())
}
