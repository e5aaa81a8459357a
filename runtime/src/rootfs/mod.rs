//! The container's filesystem view: root propagation, the rootfs bind, every `mounts[]` entry with its
//! destination resolved inside the rootfs (openat2 RESOLVE_IN_ROOT: a symlink in the image can never send a
//! mount to the host), pivot_root (or MS_MOVE + chroot), masked and read-only paths, a read-only root.

pub mod devices;
pub mod idmap;
pub mod mounts;
pub mod resolve;

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use nix::unistd::{chdir, chroot, fchdir, pivot_root};
use oci_spec::runtime::{Mount, Spec};

use crate::error::{fail, InitResult, Step};
use mounts::parse_options;
use resolve::{fd_path, inside, mkdir_in_root, openat_in_root};

fn sys_mount(
    src: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> nix::Result<()> {
    mount(src, target, fstype, flags, data)
}

/// Before anything is mounted: make our copy of the host's mounts private/slave so nothing leaks back, then
/// bind the rootfs onto itself so it is a mount point pivot_root can use.
/// With a shared /, the mount the rootfs lives on must be private: the rootfs bind and every mount made inside
/// it would otherwise propagate to the host, and pivot_root refuses a shared parent (runc does the same).
fn parent_mount_private(rootfs: &Path) -> InitResult<()> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .step(|| "read /proc/self/mountinfo".into())?;
    let mounts = crate::mountinfo::parse(&text);
    let Some(parent) = crate::mountinfo::mount_of(&mounts, rootfs).filter(|m| m.is_shared()) else {
        return Ok(());
    };
    sys_mount(None, &parent.mount_point, None, MsFlags::MS_PRIVATE, None).step(|| {
        format!(
            "make the rootfs's parent mount {} private",
            parent.mount_point.display()
        )
    })
}

pub fn prepare_root(spec: &Spec, rootfs: &Path) -> InitResult<()> {
    let prop = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone());
    let flag = match prop.as_deref() {
        None | Some("") => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        Some(p) => mounts::propagation_flag(p).ok_or_else(|| {
            fail(format!(
                "linux.rootfsPropagation {p:?}: unknown propagation"
            ))
        })?,
    };
    // An unbindable / would refuse the rootfs bind below: build under rslave, set it at the end.
    let build_flag = if flag.contains(MsFlags::MS_UNBINDABLE) {
        MsFlags::MS_SLAVE | MsFlags::MS_REC
    } else {
        flag
    };
    // A shared / stays in the host's peer groups, so volumes bound with `rshared` propagate both ways (as
    // Kubernetes' Bidirectional volumes need); a slave would only receive.
    sys_mount(None, Path::new("/"), None, build_flag, None)
        .step(|| "set the propagation of / before building the rootfs".into())?;
    if flag.contains(MsFlags::MS_SHARED) {
        parent_mount_private(rootfs)?;
    }
    sys_mount(
        Some(rootfs),
        rootfs,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )
    .step(|| format!("bind rootfs {} onto itself", rootfs.display()))?;
    Ok(())
}

/// Mount every `mounts[]` entry inside the rootfs, in order.
pub fn mount_all(
    spec: &Spec,
    rootfs: &Path,
    in_userns: bool,
    idmapped: &[crate::rootfs::idmap::Prepared],
) -> InitResult<()> {
    let root = open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .step(|| format!("open rootfs {}", rootfs.display()))?;
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let idm = crate::rootfs::idmap::find(idmapped, i);
        mount_one(root.as_raw_fd(), rootfs, i, m, in_userns, idm)?;
    }
    Ok(())
}

fn mount_one(
    root: RawFd,
    rootfs: &Path,
    index: usize,
    m: &Mount,
    in_userns: bool,
    idmapped: Option<&crate::rootfs::idmap::Prepared>,
) -> InitResult<()> {
    let dest = m.destination();
    let typ = m.typ().as_deref().unwrap_or("");
    let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
    let what = || {
        format!(
            "mounts[{index}] {} on {}",
            typ_or_bind(typ, &opts),
            dest.display()
        )
    };
    let is_bind = opts.bind || typ == "bind";
    let source = m.source().clone().unwrap_or_default();
    let file_target = is_bind
        && std::fs::metadata(&source)
            .map(|md| !md.is_dir())
            .unwrap_or(false);
    let target_fd = mkdir_in_root(root, dest, file_target)?;
    let target = fd_path(&target_fd);
    let data = if opts.data.is_empty() {
        None
    } else {
        Some(opts.data.join(","))
    };

    if is_bind {
        let flags = MsFlags::MS_BIND
            | if opts.recursive_bind {
                MsFlags::MS_REC
            } else {
                MsFlags::empty()
            };
        match idmapped {
            Some(p) => crate::rootfs::idmap::attach(p, &target_fd, what)?,
            None => sys_mount(Some(&source), &target, None, flags, None)
                .step(|| format!("{} (source {})", what(), source.display()))?,
        }
        // The bind itself ignores other flags: a remount applies them, keeping what the kernel locked.
        let extra = opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if !extra.is_empty() || !opts.cleared.is_empty() {
            let mounted = openat_in_root(root, &inside(dest), OFlag::O_PATH).step(what)?;
            // The fd must outlive the mount call: the path below is only valid while it is open.
            let target = fd_path(&mounted);
            let keep = if in_userns {
                mounts::locked_flags(&target) & !opts.cleared
            } else {
                MsFlags::empty()
            };
            sys_mount(
                None,
                &target,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | extra | keep,
                None,
            )
            .step(|| format!("{} (remount with options)", what()))?;
        }
    } else {
        let fstype = match typ {
            "cgroup" => "cgroup2", // the container sees the unified hierarchy
            t => t,
        };
        let r = sys_mount(
            Some(Path::new(if source.as_os_str().is_empty() {
                fstype
            } else {
                source.to_str().unwrap_or(fstype)
            })),
            &target,
            Some(fstype),
            opts.flags,
            data.as_deref(),
        );
        match r {
            Ok(()) => {}
            // A user namespace that does not own the network namespace may not mount sysfs: bind the host's, as runc does.
            // Likewise cgroup2 without a cgroup namespace of our own (EPERM), or where the rbound /sys
            // already has it at that very place (EBUSY): bind the host's hierarchy read-only, as runc does.
            Err(nix::errno::Errno::EPERM | nix::errno::Errno::EBUSY)
                if (fstype == "sysfs" || fstype == "cgroup2") && in_userns =>
            {
                let host = if fstype == "sysfs" {
                    "/sys"
                } else {
                    "/sys/fs/cgroup"
                };
                sys_mount(
                    Some(Path::new(host)),
                    &target,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None,
                )
                .step(what)?;
                let mounted = openat_in_root(root, &inside(dest), OFlag::O_PATH).step(what)?;
                // The fd must outlive the mount call: the path below is only valid while it is open.
                let target = fd_path(&mounted);
                let keep = mounts::locked_flags(&target);
                let _ = sys_mount(
                    None,
                    &target,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | keep,
                    None,
                );
            }
            Err(e) => return Err(e).step(what),
        }
    }
    if opts.attr_set != 0 || opts.attr_clr != 0 {
        let mounted = openat_in_root(root, &inside(dest), OFlag::O_PATH).step(what)?;
        // The fd must outlive the mount call: the path below is only valid while it is open.
        let target = fd_path(&mounted);
        mounts::set_recursive_attrs(&target, opts.attr_set, opts.attr_clr)
            .step(|| format!("{} (recursive attributes)", what()))?;
    }
    for p in &opts.propagation {
        let mounted = openat_in_root(root, &inside(dest), OFlag::O_PATH).step(what)?;
        // The fd must outlive the mount call: the path below is only valid while it is open.
        let target = fd_path(&mounted);
        sys_mount(None, &target, None, *p, None).step(|| format!("{} (propagation)", what()))?;
    }
    let _ = rootfs;
    Ok(())
}

fn typ_or_bind(typ: &str, opts: &mounts::Options) -> String {
    if typ.is_empty() || typ == "none" {
        if opts.bind {
            "bind".into()
        } else {
            "mount".into()
        }
    } else {
        typ.to_string()
    }
}

/// pivot_root into the rootfs and detach the old root (runc's fd dance: no temporary directory needed).
pub fn pivot(rootfs: &Path) -> InitResult<()> {
    let old = open(
        "/",
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .step(|| "open old root".into())?;
    let new = open(
        rootfs,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .step(|| format!("open rootfs {}", rootfs.display()))?;
    fchdir(&new).step(|| "chdir into rootfs".into())?;
    pivot_root(".", ".").step(|| format!("pivot_root into {}", rootfs.display()))?;
    fchdir(&old).step(|| "chdir to old root".into())?;
    // The old root must not propagate our unmount back to the host.
    sys_mount(
        None,
        Path::new("."),
        None,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None,
    )
    .step(|| "make old root rslave".into())?;
    umount2(".", MntFlags::MNT_DETACH).step(|| "detach old root".into())?;
    chdir("/").step(|| "chdir /".into())?;
    Ok(())
}

/// `--no-pivot`: move the rootfs mount onto / and chroot (for ramfs roots where pivot_root is impossible).
pub fn move_root(rootfs: &Path) -> InitResult<()> {
    chdir(rootfs).step(|| format!("chdir {}", rootfs.display()))?;
    sys_mount(Some(rootfs), Path::new("/"), None, MsFlags::MS_MOVE, None)
        .step(|| "move rootfs onto /".into())?;
    chroot(".").step(|| "chroot into rootfs".into())?;
    chdir("/").step(|| "chdir /".into())?;
    Ok(())
}

/// After pivot_root: set the requested propagation of the new root.
pub fn finish_propagation(spec: &Spec) -> InitResult<()> {
    if let Some(p) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone())
    {
        if let Some(f) = mounts::propagation_flag(&p) {
            sys_mount(None, Path::new("/"), None, f, None)
                .step(|| format!("set rootfs propagation {p}"))?;
        }
    }
    Ok(())
}

/// Each listed path that exists in the container's root (after pivot_root), as an O_PATH fd; missing
/// paths are skipped, as runc does.
/// `p` resolved inside the new root, as it is now (after earlier mounts); None when it does not exist.
fn existing_path(p: &str, field: &str) -> InitResult<Option<OwnedFd>> {
    let root = open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .step(|| "open /".into())?;
    match openat_in_root(root.as_raw_fd(), &inside(Path::new(p)), OFlag::O_PATH) {
        Ok(fd) => Ok(Some(fd)),
        Err(nix::errno::Errno::ENOENT) => Ok(None),
        Err(e) => Err(e).step(|| format!("{field} {p}")),
    }
}

/// maskedPaths: a file gets /dev/null bound over it, a directory an empty read-only tmpfs.
pub fn mask_paths(spec: &Spec) -> InitResult<()> {
    let list = spec.linux().as_ref().and_then(|l| l.masked_paths().clone());
    for p in list.unwrap_or_default() {
        let Some(fd) = existing_path(&p, "maskedPaths")? else {
            continue;
        };
        let target = fd_path(&fd);
        let is_dir = std::fs::metadata(&target)
            .map(|m| m.is_dir())
            .unwrap_or(false);
        let r = if is_dir {
            sys_mount(
                Some(Path::new("tmpfs")),
                &target,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None,
            )
        } else {
            sys_mount(
                Some(Path::new("/dev/null")),
                &target,
                None,
                MsFlags::MS_BIND,
                None,
            )
        };
        r.step(|| format!("mask {p}"))?;
    }
    Ok(())
}

/// readonlyPaths: bind the path onto itself and remount it read-only.
pub fn readonly_paths(spec: &Spec) -> InitResult<()> {
    let list = spec
        .linux()
        .as_ref()
        .and_then(|l| l.readonly_paths().clone());
    for p in list.unwrap_or_default() {
        // Resolved now, after the paths before it: `/a/b` listed after `/a` is bound within `/a`'s
        // read-only bind, where it can be remounted.
        let Some(fd) = existing_path(&p, "readonlyPaths")? else {
            continue;
        };
        let target = fd_path(&fd);
        sys_mount(
            Some(&target),
            &target,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )
        .step(|| format!("bind readonly path {p}"))?;
        // Reopen: the fd above still names the directory under the new bind mount.
        let fd = existing_path(&p, "readonlyPaths")?
            .ok_or_else(|| fail(format!("readonlyPaths {p}: gone after its bind mount")))?;
        let target = fd_path(&fd);
        let keep = mounts::locked_flags(&target);
        sys_mount(
            None,
            &target,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC | keep,
            None,
        )
        .step(|| format!("remount {p} read-only"))?;
    }
    Ok(())
}

/// root.readonly: remount / read-only (keeping the flags the kernel locked).
pub fn readonly_root() -> InitResult<()> {
    let keep = mounts::locked_flags(Path::new("/"));
    sys_mount(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | keep,
        None,
    )
    .step(|| "remount root read-only".into())
}
