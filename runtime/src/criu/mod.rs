//! Checkpoint and restore with CRIU, with runc's flags and runc's way of describing a container to CRIU,
//! so images move between the two runtimes and podman's checkpoint/restore works through either.
//!
//! dump.rs: `checkpoint` (a running container → images; pre-dump, --parent-path) · restore.rs: `restore`
//! (images + bundle → a running container under a new state dir and cgroup) · rpc.rs: the `criu swrk` client ·
//! mounts.rs: external mounts as runc declares them · namespaces.rs: namespaces joined by path, external ·
//! descriptors.rs: the init's stdio, recorded at dump so pipes are re-attached at restore.
//!
//! Nothing here runs unless one of the two commands is called: the CRIU messages are only built there.

mod descriptors;
pub mod dump;
mod mounts;
mod namespaces;
pub mod restore;
mod rpc;

use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use rust_criu::rust_criu_protobuf::rpc::{Criu_cg_mode, Criu_opts};

use crate::error::{Error, Result};

/// runc's `--manage-cgroups-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgMode {
    Soft,
    Full,
    Strict,
    Ignore,
}

impl CgMode {
    pub fn parse(s: &str) -> Result<CgMode> {
        match s {
            "soft" => Ok(CgMode::Soft),
            "full" => Ok(CgMode::Full),
            "strict" => Ok(CgMode::Strict),
            "ignore" => Ok(CgMode::Ignore),
            _ => Err(Error::InvalidArgument(format!(
                "--manage-cgroups-mode {s:?}: use soft, full, strict or ignore"
            ))),
        }
    }

    fn rpc(self) -> Criu_cg_mode {
        match self {
            CgMode::Soft => Criu_cg_mode::SOFT,
            CgMode::Full => Criu_cg_mode::FULL,
            CgMode::Strict => Criu_cg_mode::STRICT,
            CgMode::Ignore => Criu_cg_mode::IGNORE,
        }
    }
}

/// The flags checkpoint and restore share (runc's CriuOpts).
#[derive(Debug, Clone, Default)]
pub struct Opts {
    /// The criu binary (global `--criu`, default `criu` from PATH).
    pub criu: PathBuf,
    pub image_path: PathBuf,
    /// Where CRIU writes its log and temporary files (default: the image directory).
    pub work_path: Option<PathBuf>,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub manage_cgroups_mode: Option<CgMode>,
    /// CLONE_NEW* bits of the namespaces CRIU creates empty instead of restoring ([`empty_ns_mask`]).
    pub empty_ns: u32,
    pub auto_dedup: bool,
}

/// The namespaces CRIU recreates empty instead of dumping and restoring their contents: always the
/// network namespace, as runc does (a runtime does not manage interfaces, routes or firewall rules; the
/// engine that set them up does, and dumping them runs `ip` and `iptables-save` eight times: 0.75 s of
/// a 2.35 s dump in the bench's TCG VM), plus each `--empty-ns NAME` (runc accepts only `network`).
pub fn empty_ns_mask(names: &[String]) -> Result<u32> {
    let mut mask = libc::CLONE_NEWNET as u32;
    for name in names {
        mask |= match name.as_str() {
            "network" => libc::CLONE_NEWNET as u32,
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "--empty-ns {name:?}: namespace is not supported (only \"network\")"
                )))
            }
        };
    }
    Ok(mask)
}

/// The criu binary to run: an explicit path as given, a bare name looked up in PATH. Not found is an
/// error before anything of the container is touched.
pub fn locate(criu: &Path) -> Result<PathBuf> {
    let not_found = || Error::Criu {
        what: format!(
            "{} not found: install CRIU (3.x) or give the criu binary's path with --criu",
            criu.display()
        ),
        log: None,
    };
    if criu.components().count() > 1 {
        return if criu.is_file() {
            Ok(criu.to_path_buf())
        } else {
            Err(not_found())
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(criu))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(not_found)
}

/// Make (when `create`) and open a directory for CRIU; the fd is CLOEXEC, rpc.rs passes it on.
fn open_dir(path: &Path, create: bool, what: &str) -> Result<OwnedFd> {
    if create {
        match std::fs::DirBuilder::new().mode(0o700).create(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(format!("create the {what}"), path, e)),
        }
    }
    open(
        path,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io(format!("open the {what}"), path, e.into()))
}

impl Opts {
    /// The options every request carries; runc sets the same.
    fn base(&self, log_file: &str) -> Criu_opts {
        let mut o = Criu_opts::new();
        o.set_log_level(4);
        o.set_log_file(log_file.into());
        o.set_manage_cgroups(true);
        o.set_notify_scripts(true);
        o.set_shell_job(self.shell_job);
        o.set_tcp_established(self.tcp_established);
        o.set_ext_unix_sk(self.ext_unix_sk);
        o.set_file_locks(self.file_locks);
        o.set_empty_ns(self.empty_ns);
        o.set_orphan_pts_master(true);
        o.set_auto_dedup(self.auto_dedup);
        if let Some(m) = self.manage_cgroups_mode {
            o.set_manage_cgroups_mode(m.rpc());
        }
        o
    }

    /// Where CRIU's log of a request goes: the work directory, or the image directory.
    fn log_path(&self, log_file: &str) -> PathBuf {
        let dir = self.work_path.as_ref().unwrap_or(&self.image_path);
        std::path::absolute(dir)
            .unwrap_or_else(|_| dir.clone())
            .join(log_file)
    }
}

/// A failed call, as the one line the user sees: what failed, CRIU's reason, and where its log is.
fn failure(e: rpc::CallError, what: &str, criu: &Path, log: PathBuf) -> Error {
    let what = match e {
        rpc::CallError::Spawn(err) => {
            return Error::Criu {
                what: format!("{what}: cannot run {}: {err}", criu.display()),
                log: None,
            }
        }
        rpc::CallError::Notify(err) => return err,
        rpc::CallError::Transport(m) => format!("{what}: {m}"),
        rpc::CallError::Failed { errmsg, errno } if !errmsg.is_empty() => {
            let errmsg = errmsg.trim_end();
            if errno != 0 {
                format!(
                    "{what}: {errmsg}: {}",
                    nix::errno::Errno::from_raw(errno).desc()
                )
            } else {
                format!("{what}: {errmsg}")
            }
        }
        rpc::CallError::Failed { errno, .. } if errno != 0 => {
            format!("{what}: {}", nix::errno::Errno::from_raw(errno).desc())
        }
        rpc::CallError::Failed { .. } => format!("{what}: criu failed"),
    };
    Error::Criu {
        what,
        log: Some(log),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_network_namespace_is_always_left_empty_as_runc_leaves_it() {
        let net = libc::CLONE_NEWNET as u32;
        assert_eq!(empty_ns_mask(&[]).unwrap(), net);
        assert_eq!(empty_ns_mask(&["network".into()]).unwrap(), net);
    }

    #[test]
    fn an_empty_ns_other_than_network_is_refused_naming_it() {
        let e = empty_ns_mask(&["pid".into()]).unwrap_err().to_string();
        assert!(e.contains("--empty-ns \"pid\""), "{e}");
    }
}
