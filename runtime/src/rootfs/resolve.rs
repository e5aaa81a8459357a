//! Paths inside the rootfs: every mount destination and device node is resolved with openat2(RESOLVE_IN_ROOT),
//! so a symlink or `..` in the image can never send a mount to the host; missing mount points are made one
//! component at a time, each resolved again inside the root.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Component, Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::error::{InitResult, Step};

/// openat2(dirfd, path, flags, RESOLVE_IN_ROOT): `path` is looked up as if `root` were `/`.
pub fn openat_in_root(root: RawFd, path: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
    crate::sys::openat2_in_root(root, path, flags)
}

/// The path under which the kernel reaches an fd's object: mount(2) follows it to that exact inode.
pub fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Lexically clean a destination into components below `/` (`..` cannot climb above the root).
pub fn inside(dest: &Path) -> PathBuf {
    let mut out = PathBuf::from(".");
    for c in dest.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir if out != Path::new(".") => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Make `dest` (and its parents) inside the root if missing: a directory, or an empty file when `file`.
/// Returns an O_PATH fd of the (possibly pre-existing) target, resolved inside the root.
pub fn mkdir_in_root(root: RawFd, dest: &Path, file: bool) -> InitResult<OwnedFd> {
    let rel = inside(dest);
    if let Ok(fd) = openat_in_root(root, &rel, OFlag::O_PATH) {
        return Ok(fd);
    }
    let comps: Vec<_> = rel
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    let mut cur = PathBuf::from("/");
    for (i, c) in comps.iter().enumerate() {
        let parent = openat_in_root(root, &cur, OFlag::O_PATH | OFlag::O_DIRECTORY)
            .step(|| format!("resolve {} inside the rootfs", cur.display()))?;
        cur.push(c);
        if openat_in_root(root, &cur, OFlag::O_PATH).is_ok() {
            continue;
        }
        let last = i + 1 == comps.len();
        if last && file {
            nix::fcntl::openat(
                &parent,
                c.as_os_str(),
                OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o644),
            )
            .step(|| format!("create mount point {}", cur.display()))?;
        } else {
            match nix::sys::stat::mkdirat(&parent, c.as_os_str(), Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                Err(e) => return Err(e).step(|| format!("create mount point {}", cur.display())),
            }
        }
    }
    openat_in_root(root, &rel, OFlag::O_PATH)
        .step(|| format!("resolve {} inside the rootfs", dest.display()))
}
