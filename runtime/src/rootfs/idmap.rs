//! `mounts[].uidMappings/gidMappings`: idmapped bind mounts.
//!
//! Idmapping a mount of a host filesystem needs CAP_SYS_ADMIN in the user namespace the filesystem was mounted
//! in, i.e. the host's, which the init may not have (it can be in a user namespace). So the parent prepares each
//! idmapped mount before the clone as a detached mount (open_tree OPEN_TREE_CLONE + mount_setattr
//! MOUNT_ATTR_IDMAP with a throwaway user namespace carrying the mount's mappings); the init inherits the fd and
//! only attaches it inside the rootfs with move_mount.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxIdMapping, Mount, Spec};

use crate::error::{Error, Result};
use crate::error::{InitResult, Step};
use crate::namespaces::userns::render;
use crate::sys::{self, MountAttr, MOUNT_ATTR_IDMAP};

/// One idmapped mount made by the parent: `mounts[index]`, as a detached mount fd.
pub struct Prepared {
    pub index: usize,
    pub fd: OwnedFd,
}

fn maps(m: &Mount) -> (&[LinuxIdMapping], &[LinuxIdMapping]) {
    (
        m.uid_mappings().as_deref().unwrap_or(&[]),
        m.gid_mappings().as_deref().unwrap_or(&[]),
    )
}

fn is_idmapped(m: &Mount) -> bool {
    let (u, g) = maps(m);
    !u.is_empty() || !g.is_empty()
}

fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .iter()
            .flatten()
            .any(|o| o == "bind" || o == "rbind")
}

/// Idmapped mounts are bind mounts with both mappings.
pub fn check(spec: &Spec) -> std::result::Result<(), String> {
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if !is_idmapped(m) {
            continue;
        }
        let (u, g) = maps(m);
        if u.is_empty() || g.is_empty() {
            return Err(format!(
                "mounts[{i}] ({}): an idmapped mount needs both uidMappings and gidMappings",
                m.destination().display()
            ));
        }
        if !is_bind(m) {
            return Err(format!(
                "mounts[{i}] ({}): uidMappings/gidMappings are only supported on bind mounts",
                m.destination().display()
            ));
        }
    }
    Ok(())
}

/// Parent side, before the clone: a detached idmapped mount for every mount with mappings.
pub fn prepare_all(spec: &Spec) -> Result<Vec<Prepared>> {
    let mut out = Vec::new();
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if is_idmapped(m) {
            out.push(Prepared {
                index: i,
                fd: prepare_one(i, m)?,
            });
        }
    }
    Ok(out)
}

fn prepare_one(index: usize, m: &Mount) -> Result<OwnedFd> {
    let what = |s: &str| format!("mounts[{index}] ({}): {s}", m.destination().display());
    let source = m.source().clone().unwrap_or_default();
    let opts = m.options().clone().unwrap_or_default();
    let recursive_tree = opts.iter().any(|o| o == "rbind");
    let recursive_idmap = opts.iter().any(|o| o == "ridmap") || recursive_tree;
    let (u, g) = maps(m);
    let userns = userns_with_maps(u, g)
        .map_err(|e| Error::sys(what("make a user namespace for the idmapping"), e))?;
    let tree = sys::open_tree_clone(&source, recursive_tree)
        .map_err(|e| Error::sys(what(&format!("open_tree {}", source.display())), e))?;
    set_idmap(&tree, &userns, recursive_idmap).map_err(|e| {
        Error::sys(
            what(&format!(
                "idmap {} (mount_setattr MOUNT_ATTR_IDMAP; the filesystem may not support idmapped mounts)",
                source.display()
            )),
            e,
        )
    })?;
    Ok(tree)
}

fn set_idmap(tree: &OwnedFd, userns: &OwnedFd, recursive: bool) -> nix::Result<()> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        userns_fd: userns.as_raw_fd() as u64,
        ..Default::default()
    };
    sys::mount_setattr_fd(tree.as_fd(), recursive, &attr)
}

/// A user namespace carrying `uid`/`gid` maps, held by an fd: a child is cloned into a new user namespace,
/// its maps are written from here, its namespace is opened, and the child is reaped.
fn userns_with_maps(uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> nix::Result<OwnedFd> {
    let (rd, wr) = nix::unistd::pipe()?;
    let pid = match sys::clone3(CloneFlags::CLONE_NEWUSER, None)? {
        0 => {
            drop(wr);
            let mut b = [0u8; 1];
            // Wait until the parent is done with our namespace (EOF), then go.
            let _ = nix::unistd::read(&rd, &mut b);
            // SAFETY: leave the forked copy without running the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        p => Pid::from_raw(p),
    };
    drop(rd);
    let result = (|| {
        write_map(pid, "uid_map", uid)?;
        write_map(pid, "gid_map", gid)?;
        nix::fcntl::open(
            format!("/proc/{pid}/ns/user").as_str(),
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
    })();
    drop(wr);
    if result.is_err() {
        let _ = kill(pid, Signal::SIGKILL);
    }
    let _ = waitpid(pid, None);
    result
}

fn write_map(pid: Pid, file: &str, maps: &[LinuxIdMapping]) -> nix::Result<()> {
    std::fs::write(format!("/proc/{pid}/{file}"), render(maps))
        .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EINVAL)))
}

/// Init side: attach the prepared mount onto `target` (an O_PATH fd resolved inside the rootfs).
pub fn attach(
    prepared: &Prepared,
    target: &OwnedFd,
    what: impl FnOnce() -> String,
) -> InitResult<()> {
    sys::move_mount_onto(prepared.fd.as_fd(), target.as_fd())
        .step(|| format!("{} (attach the idmapped mount)", what()))
}

/// The prepared mount for `mounts[index]`, if it is idmapped.
pub fn find(prepared: &[Prepared], index: usize) -> Option<&Prepared> {
    prepared.iter().find(|p| p.index == index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(mounts: serde_json::Value) -> Spec {
        serde_json::from_value(serde_json::json!({"ociVersion": "1.0.0", "mounts": mounts}))
            .unwrap()
    }

    fn maps() -> serde_json::Value {
        serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 1}])
    }

    #[test]
    fn an_idmapped_bind_mount_with_both_mappings_is_accepted() {
        let s = spec(
            serde_json::json!([{"destination": "/d", "source": "/s", "options": ["rbind"],
            "uidMappings": maps(), "gidMappings": maps()}]),
        );
        assert_eq!(check(&s), Ok(()));
    }

    #[test]
    fn an_idmapped_mount_needs_both_mappings_and_names_the_mount() {
        let s = spec(
            serde_json::json!([{"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/d", "type": "bind", "source": "/s", "uidMappings": maps()}]),
        );
        let e = check(&s).unwrap_err();
        assert!(
            e.starts_with("mounts[1] (/d): an idmapped mount needs both"),
            "{e}"
        );
    }

    #[test]
    fn only_bind_mounts_can_be_idmapped() {
        let s = spec(
            serde_json::json!([{"destination": "/t", "type": "tmpfs", "source": "tmpfs",
            "uidMappings": maps(), "gidMappings": maps()}]),
        );
        assert!(check(&s)
            .unwrap_err()
            .contains("only supported on bind mounts"));
    }
}
