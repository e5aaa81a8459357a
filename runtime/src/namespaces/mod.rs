//! Namespaces: which ones the clone creates, and joining the ones given by `path` (user first). The files
//! beside this one are the namespace-specific fields: id maps (userns), time offsets (timens), network devices
//! (netdev) and sysctls (sysctl, only for a namespace the container owns).

pub mod netdev;
pub mod sysctl;
pub mod timens;
pub mod userns;

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

pub fn name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

pub fn clone_flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        // CLONE_NEWTIME shares its bit with CSIGNAL's range in clone(2) but is valid for clone3/unshare.
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// Whether the container gets a namespace of type `t` of its own (listed, with no path to join).
pub fn is_new(spec: &Spec, t: LinuxNamespaceType) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .and_then(|v| v.iter().find(|n| n.typ() == t))
        .is_some_and(|n| n.path().is_none())
}

/// `linux.namespaces[].path` must name a namespace of that type.
pub fn check_path(t: LinuxNamespaceType, path: &Path) -> Result<(), String> {
    let fd = open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| e.desc().to_string())?;
    let Ok(kind) = crate::sys::ns_get_type(fd.as_fd()) else {
        return Err("not a namespace file".into());
    };
    if kind as i64 != clone_flag(t).bits() as i64 {
        return Err(format!("not a {} namespace", name(t)));
    }
    Ok(())
}

/// The namespaces this container gets: new ones (cloned) and existing ones (joined by path).
pub struct Plan {
    pub clone_flags: CloneFlags,
    /// In the order they must be joined: user first (it grants the rights for the rest), mount last.
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
}

pub fn plan(spec: &Spec) -> Plan {
    let mut clone_flags = CloneFlags::empty();
    let mut join = Vec::new();
    for ns in spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
    {
        match ns.path() {
            Some(p) => join.push((ns.typ(), p.clone())),
            None => clone_flags |= clone_flag(ns.typ()),
        }
    }
    let rank = |t: &LinuxNamespaceType| match t {
        LinuxNamespaceType::User => 0,
        LinuxNamespaceType::Mount => 2,
        _ => 1,
    };
    join.sort_by_key(|(t, _)| rank(t));
    Plan { clone_flags, join }
}

/// Open every namespace to join up front (in the host's mount namespace), so the child can setns by fd.
pub fn open_all(
    join: &[(LinuxNamespaceType, PathBuf)],
) -> Result<Vec<(LinuxNamespaceType, OwnedFd)>, (PathBuf, nix::Error)> {
    join.iter()
        .map(|(t, p)| {
            open(p, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
                .map(|fd| (*t, fd))
                .map_err(|e| (p.clone(), e))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(namespaces: serde_json::Value) -> Spec {
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.0",
            "linux": {"namespaces": namespaces}
        }))
        .unwrap()
    }

    #[test]
    fn new_namespaces_become_clone_flags_and_paths_are_joined_instead() {
        let p = plan(&spec(serde_json::json!([
            {"type": "pid"}, {"type": "mount"}, {"type": "network", "path": "/run/netns/x"}
        ])));
        assert_eq!(
            p.clone_flags,
            CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS
        );
        assert_eq!(
            p.join,
            [(LinuxNamespaceType::Network, PathBuf::from("/run/netns/x"))]
        );
    }

    #[test]
    fn the_user_namespace_is_joined_first_and_the_mount_namespace_last() {
        let p = plan(&spec(serde_json::json!([
            {"type": "mount", "path": "/m"}, {"type": "ipc", "path": "/i"}, {"type": "user", "path": "/u"}
        ])));
        let order: Vec<_> = p.join.iter().map(|(t, _)| name(*t)).collect();
        assert_eq!(order, ["user", "ipc", "mount"]);
        assert!(p.clone_flags.is_empty());
    }

    #[test]
    fn a_time_namespace_has_its_own_clone_bit() {
        assert_eq!(
            clone_flag(LinuxNamespaceType::Time).bits(),
            libc::CLONE_NEWTIME
        );
    }
}
