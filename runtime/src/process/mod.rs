//! The user process: identity (groups, gid, uid, umask), environment, and the executable lookup that makes
//! "executable file not found in $PATH" a create-time error as in runc. The files beside this one are the other
//! per-process attributes of `process` and `linux` (capabilities, rlimits, I/O priority, scheduler, CPU affinity,
//! memory policy, personality, security labels), each checked before create and applied in the init or `exec`.

pub mod affinity;
pub mod caps;
pub mod ioprio;
pub mod lsm;
pub mod mempolicy;
pub mod personality;
pub mod rlimits;
pub mod scheduler;

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::Process;

use crate::error::{fail, InitResult, Step};

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub fn env_of(process: &Process) -> Vec<String> {
    let mut env = process.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push("HOME=/".into());
    }
    env
}

/// Resolve args[0] the way execvp would, in the container's root (we are past pivot_root).
pub fn find_executable(arg0: &str, env: &[String]) -> InitResult<PathBuf> {
    let is_exec = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        if is_exec(&p) {
            return Ok(p);
        }
        if !p.exists() {
            return Err(fail(format!("exec: {arg0:?}: no such file or directory")));
        }
        return Err(fail(format!("exec: {arg0:?}: permission denied")));
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = Path::new(dir).join(arg0);
        if is_exec(&cand) {
            return Ok(cand);
        }
    }
    Err(fail(format!(
        "exec: {arg0:?}: executable file not found in $PATH"
    )))
}

/// groups → gid → uid: the gid change needs the privilege the uid change gives up.
pub fn switch_user(process: &Process) -> InitResult<()> {
    let u = process.user();
    let mut groups: Vec<Gid> = u
        .additional_gids()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(Gid::from_raw)
        .collect();
    groups.dedup();
    // setgroups is refused in a user namespace whose setgroups file says deny; only then is it skippable.
    match setgroups(&groups) {
        Ok(()) => {}
        Err(nix::errno::Errno::EPERM) if groups.is_empty() => {}
        Err(e) => return Err(e).step(|| format!("setgroups {:?}", u.additional_gids())),
    }
    let gid = Gid::from_raw(u.gid());
    setresgid(gid, gid, gid).step(|| format!("setgid {}", u.gid()))?;
    let uid = Uid::from_raw(u.uid());
    setresuid(uid, uid, uid).step(|| format!("setuid {}", u.uid()))?;
    if let Some(mask) = u.umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }
    Ok(())
}

pub fn cstrings(v: &[String]) -> InitResult<Vec<CString>> {
    v.iter()
        .map(|s| {
            CString::new(s.as_bytes()).map_err(|_| fail(format!("{s:?}: contains a NUL byte")))
        })
        .collect()
}

/// SIGPIPE back to its default. Rust starts every program with it ignored, and an ignored signal survives
/// execve: the user process must not inherit that.
pub fn default_sigpipe() {
    // SAFETY: setting the default disposition installs no handler; nothing else runs signal code here.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
}
