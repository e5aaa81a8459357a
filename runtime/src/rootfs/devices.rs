//! /dev inside the container: the default devices, `linux.devices`, and the standard symlinks. Device nodes
//! are made with mknod, or bind-mounted from the host in a user namespace (where mknod is not allowed).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, mknodat, Mode, SFlag};
use nix::unistd::{fchownat, Gid, Uid};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Spec};

use crate::error::{InitResult, Step};
use crate::rootfs::resolve::{fd_path, mkdir_in_root, openat_in_root};

#[derive(Debug, PartialEq)]
pub struct Dev {
    path: PathBuf,
    kind: SFlag,
    major: i64,
    minor: i64,
    mode: u32,
    uid: u32,
    gid: u32,
}

/// The devices every container gets (runtime-spec "Default Devices").
fn defaults() -> Vec<Dev> {
    [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .iter()
    .map(|(n, ma, mi)| Dev {
        path: PathBuf::from("/dev").join(n),
        kind: SFlag::S_IFCHR,
        major: *ma,
        minor: *mi,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

fn from_spec(d: &LinuxDevice) -> Dev {
    let kind = match d.typ() {
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        _ => SFlag::S_IFCHR,
    };
    Dev {
        path: d.path().clone(),
        kind,
        major: d.major(),
        minor: d.minor(),
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    }
}

/// Only when the config mounts its own /dev (otherwise the rootfs's /dev is the user's business, as in runc).
pub fn dev_is_mounted(spec: &Spec) -> bool {
    spec.mounts()
        .iter()
        .flatten()
        .any(|m| m.destination() == Path::new("/dev") && m.typ().as_deref() != Some("bind"))
}

/// The device nodes to make: the defaults when the config mounts its own /dev, then `linux.devices`, where a
/// config entry replaces a default of the same path.
pub fn plan(spec: &Spec) -> Vec<Dev> {
    let mut devs = Vec::new();
    if dev_is_mounted(spec) {
        devs = defaults();
    }
    for d in spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
    {
        let d = from_spec(d);
        devs.retain(|x| x.path != d.path);
        devs.push(d);
    }
    devs
}

/// After pivot_root: any of fds 0-2 that is a /dev/null (the caller's, from the host: conmon and
/// `run -d </dev/null` give one) is replaced by the container's own /dev/null, as runc does. The same
/// device, but a file of the container's mount namespace: CRIU cannot dump an fd of a host mount.
pub fn reopen_dev_null() -> InitResult<()> {
    let null = open(
        "/dev/null",
        OFlag::O_RDWR | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    );
    // A rootfs without /dev/null (no /dev mount, an image without the node): nothing to reopen.
    let Ok(null) = null else {
        return Ok(());
    };
    let null_rdev = nix::sys::stat::fstat(&null)
        .step(|| "stat /dev/null".into())?
        .st_rdev;
    for fd in 0..3 {
        // SAFETY: fds 0-2 are only looked at here; a closed one fails fstat and is skipped.
        let stdio = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let Ok(st) = nix::sys::stat::fstat(stdio) else {
            continue;
        };
        if st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == null_rdev {
            // SAFETY: dup2 onto a standard fd from a live fd owned by `null`.
            let r = unsafe { libc::dup2(null.as_raw_fd(), fd) };
            nix::errno::Errno::result(r).step(|| format!("reopen /dev/null as fd {fd}"))?;
        }
    }
    Ok(())
}

/// The paths of the device nodes `plan` makes: CRIU is told of them as external (criu/mounts.rs).
pub fn node_paths(spec: &Spec) -> Vec<PathBuf> {
    plan(spec).into_iter().map(|d| d.path).collect()
}

/// Make every device of the plan under `rootfs` (before pivot_root), then the symlinks.
pub fn create_all(spec: &Spec, rootfs: &Path, in_userns: bool) -> InitResult<()> {
    let root = open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .step(|| format!("open rootfs {}", rootfs.display()))?;
    for d in &plan(spec) {
        make_device(&root, d, in_userns)?;
    }
    if dev_is_mounted(spec) {
        symlinks(&root)?;
    }
    Ok(())
}

fn make_device(root: &OwnedFd, d: &Dev, in_userns: bool) -> InitResult<()> {
    let parent = d.path.parent().unwrap_or(Path::new("/dev"));
    let dir = mkdir_in_root(root.as_raw_fd(), parent, false)?;
    let name = d.path.file_name().unwrap_or_default();
    if in_userns {
        // mknod is refused in a user namespace: bind the host's node onto an empty file.
        let target = mkdir_in_root(root.as_raw_fd(), &d.path, true)?;
        return mount(
            Some(&d.path),
            &fd_path(&target),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .step(|| format!("bind device {} from the host", d.path.display()));
    }
    let _ = nix::unistd::unlinkat(&dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
    let dev = makedev(d.major as u64, d.minor as u64);
    mknodat(&dir, name, d.kind, Mode::from_bits_truncate(d.mode), dev)
        .step(|| format!("mknod {}", d.path.display()))?;
    // mknod is subject to the umask: set the mode and owner explicitly.
    nix::sys::stat::fchmodat(
        &dir,
        name,
        Mode::from_bits_truncate(d.mode),
        nix::sys::stat::FchmodatFlags::NoFollowSymlink,
    )
    .or_else(|e| {
        if e == nix::errno::Errno::EOPNOTSUPP {
            nix::sys::stat::fchmodat(
                &dir,
                name,
                Mode::from_bits_truncate(d.mode),
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )
        } else {
            Err(e)
        }
    })
    .step(|| format!("chmod {}", d.path.display()))?;
    fchownat(
        &dir,
        name,
        Some(Uid::from_raw(d.uid)),
        Some(Gid::from_raw(d.gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .step(|| format!("chown {}", d.path.display()))?;
    Ok(())
}

fn symlinks(root: &OwnedFd) -> InitResult<()> {
    let dev = openat_in_root(
        root.as_raw_fd(),
        Path::new("dev"),
        OFlag::O_PATH | OFlag::O_DIRECTORY,
    )
    .step(|| "open /dev".into())?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        match nix::unistd::symlinkat(target, &dev, name) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(e).step(|| format!("symlink /dev/{name}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> Spec {
        let mut base = serde_json::json!({"ociVersion": "1.0.0", "root": {"path": "rootfs"}});
        base.as_object_mut()
            .unwrap()
            .extend(json.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    fn paths(devs: &[Dev]) -> Vec<String> {
        devs.iter().map(|d| d.path.display().to_string()).collect()
    }

    #[test]
    fn a_config_that_mounts_its_own_dev_gets_the_six_default_devices() {
        let s = spec(
            serde_json::json!({"mounts": [{"destination": "/dev", "type": "tmpfs", "source": "tmpfs"}]}),
        );
        assert_eq!(
            paths(&plan(&s)),
            [
                "/dev/null",
                "/dev/zero",
                "/dev/full",
                "/dev/random",
                "/dev/urandom",
                "/dev/tty"
            ]
        );
    }

    #[test]
    fn a_bind_mounted_dev_is_the_users_business_and_gets_no_defaults() {
        let s = spec(
            serde_json::json!({"mounts": [{"destination": "/dev", "type": "bind", "source": "/dev"}]}),
        );
        assert!(plan(&s).is_empty());
    }

    #[test]
    fn a_config_device_replaces_the_default_of_the_same_path() {
        let s = spec(serde_json::json!({
            "mounts": [{"destination": "/dev", "type": "tmpfs", "source": "tmpfs"}],
            "linux": {"devices": [
                {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600, "uid": 5, "gid": 6},
                {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}
            ]}
        }));
        let devs = plan(&s);
        assert_eq!(
            devs.iter()
                .filter(|d| d.path == Path::new("/dev/null"))
                .count(),
            1
        );
        let null = devs
            .iter()
            .find(|d| d.path == Path::new("/dev/null"))
            .unwrap();
        assert_eq!((null.mode, null.uid, null.gid), (0o600, 5, 6));
        let fuse = devs.last().unwrap();
        assert_eq!((fuse.major, fuse.minor, fuse.mode), (10, 229, 0o666));
    }

    #[test]
    fn block_and_fifo_devices_keep_their_kind() {
        let s = spec(serde_json::json!({"linux": {"devices": [
            {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0},
            {"path": "/dev/fifo", "type": "p"}
        ]}}));
        let kinds: Vec<SFlag> = plan(&s).iter().map(|d| d.kind).collect();
        assert_eq!(kinds, [SFlag::S_IFBLK, SFlag::S_IFIFO]);
    }
}
