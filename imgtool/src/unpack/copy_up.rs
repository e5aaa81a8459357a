//! Overlay mode only: a hardlink whose target lives in a lower layer. Each layer is extracted
//! into its own directory, so the target is not there to link to; overlayfs would copy the
//! target up into the layer being written and link to the copy, and this does the same, so the
//! merged view shows what a plain unpack (and umoci) shows: both names, one inode.
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstatat, FileStat, Mode};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};

use super::resolve::{self, CleanPath};

/// Find `path` in the lowers (top first): its parent dir fd in that lower and its stat. A 0/0
/// character device is an overlay whiteout: the path was deleted there, so it is not found.
fn find_in_lowers(lowers: &[OwnedFd], parts: &[Vec<u8>]) -> Option<(OwnedFd, FileStat)> {
    let (name, parent) = parts.split_last()?;
    for lower in lowers {
        let Ok(dir) = resolve::open_dir_beneath(lower.as_fd(), parent) else {
            continue;
        };
        match fstatat(dir.as_fd(), resolve::os(name), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0 => return None,
            Ok(st) => return Some((dir, st)),
            Err(_) => continue,
        }
    }
    None
}

fn copy_xattrs(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
    let mut names = vec![0u8; 65536];
    // SAFETY: `names` is a writable buffer of the length passed; the fd is open.
    let n = unsafe { libc::flistxattr(from.as_raw_fd(), names.as_mut_ptr().cast(), names.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    for name in names[..n as usize]
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
    {
        let cname = CString::new(name).map_err(io::Error::other)?;
        let mut val = vec![0u8; 65536];
        // SAFETY: NUL-terminated name, writable buffer of the length passed, open fd.
        let m = unsafe {
            libc::fgetxattr(
                from.as_raw_fd(),
                cname.as_ptr(),
                val.as_mut_ptr().cast(),
                val.len(),
            )
        };
        if m < 0 {
            continue;
        }
        // SAFETY: NUL-terminated name, buffer of `m` bytes, open fd.
        let r = unsafe {
            libc::fsetxattr(
                to.as_raw_fd(),
                cname.as_ptr(),
                val.as_ptr().cast(),
                m as usize,
                0,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Give `to` the owner, mode, xattrs and times of `st`/`from` (owner first: chown clears setuid).
fn copy_meta(from: BorrowedFd<'_>, to: BorrowedFd<'_>, st: &FileStat) -> io::Result<()> {
    nix::unistd::fchown(
        to,
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
    )?;
    nix::sys::stat::fchmod(to, Mode::from_bits_truncate(st.st_mode & 0o7777))?;
    copy_xattrs(from, to)?;
    let mtime = TimeSpec::new(st.st_mtime, st.st_mtime_nsec);
    nix::sys::stat::futimens(to, &mtime, &mtime)?;
    Ok(())
}

fn open_ro(dir: BorrowedFd<'_>, name: &[u8], extra: OFlag) -> io::Result<OwnedFd> {
    Ok(nix::fcntl::openat(
        dir,
        resolve::os(name),
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | extra,
        Mode::empty(),
    )?)
}

/// Copy the regular file at `path` from the lowers into `upper` (parents too, with their
/// metadata). Returns false when no lower has a regular file there.
pub fn copy_up(upper: BorrowedFd<'_>, lowers: &[OwnedFd], path: &CleanPath) -> io::Result<bool> {
    let Some((src_dir, st)) = find_in_lowers(lowers, &path.0) else {
        return Ok(false);
    };
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Ok(false);
    }
    // Parents: create the missing ones as copies of the lower directories.
    let mut dir = upper.try_clone_to_owned()?;
    let parents = &path.0[..path.0.len() - 1];
    for i in 0..parents.len() {
        let name = &parents[i];
        match resolve::open_dir_beneath(upper, &parents[..=i]) {
            Ok(fd) => {
                dir = fd;
                continue;
            }
            Err(resolve::OpenDirError::Missing) => {}
            Err(_) => return Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
        }
        match nix::sys::stat::mkdirat(
            dir.as_fd(),
            resolve::os(name),
            Mode::from_bits_truncate(0o700),
        ) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
        let new = open_ro(dir.as_fd(), name, OFlag::O_DIRECTORY)?;
        if let Some((ldir, lst)) = find_in_lowers(lowers, &parents[..=i]) {
            let lfd = open_ro(ldir.as_fd(), name, OFlag::O_DIRECTORY)?;
            copy_meta(lfd.as_fd(), new.as_fd(), &lst)?;
        }
        dir = new;
    }
    let name = path.0.last().expect("non-empty path");
    let src = File::from(open_ro(src_dir.as_fd(), name, OFlag::empty())?);
    let dst = File::from(nix::fcntl::openat(
        dir.as_fd(),
        resolve::os(name),
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )?);
    io::copy(&mut &src, &mut &dst)?;
    copy_meta(src.as_fd(), dst.as_fd(), &st)?;
    Ok(true)
}

fn is_opaque(dir: BorrowedFd<'_>) -> bool {
    let mut v = [0u8; 1];
    // SAFETY: NUL-terminated name; `v` is a writable 1-byte buffer; the fd is open.
    let n = unsafe {
        libc::fgetxattr(
            dir.as_raw_fd(),
            c"trusted.overlay.opaque".as_ptr(),
            v.as_mut_ptr().cast(),
            1,
        )
    };
    n == 1 && v[0] == b'y'
}

/// What a path is in the merged view of `upper` over `lowers`.
enum Found {
    Missing,
    Dir,
    Symlink(Vec<u8>),
    Other,
}

fn lookup_merged(upper: BorrowedFd<'_>, lowers: &[OwnedFd], parts: &[Vec<u8>]) -> Found {
    let (name, parent) = parts.split_last().expect("non-empty");
    let classify = |dir: BorrowedFd<'_>, st: &FileStat| match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => Found::Dir,
        libc::S_IFLNK => nix::fcntl::readlinkat(dir, resolve::os(name))
            .map(|t| Found::Symlink(t.as_encoded_bytes().to_vec()))
            .unwrap_or(Found::Other),
        libc::S_IFCHR if st.st_rdev == 0 => Found::Missing,
        _ => Found::Other,
    };
    let mut hidden_below = false;
    if let Ok(dir) = resolve::open_dir_beneath_with(upper, parent, OFlag::O_RDONLY) {
        if let Ok(st) = fstatat(dir.as_fd(), resolve::os(name), AtFlags::AT_SYMLINK_NOFOLLOW) {
            return classify(dir.as_fd(), &st);
        }
        hidden_below = is_opaque(dir.as_fd());
    }
    if hidden_below {
        return Found::Missing;
    }
    for lower in lowers {
        let Ok(dir) = resolve::open_dir_beneath_with(lower.as_fd(), parent, OFlag::O_RDONLY) else {
            continue;
        };
        if let Ok(st) = fstatat(dir.as_fd(), resolve::os(name), AtFlags::AT_SYMLINK_NOFOLLOW) {
            return classify(dir.as_fd(), &st);
        }
        if is_opaque(dir.as_fd()) {
            break;
        }
    }
    Found::Missing
}

/// Overlay mode: the parent directory `parts` as the merged view of this layer over the lowers
/// sees it, created in this layer. Symlinks of lower layers on the way are followed (a layer
/// writing `lib/x` over a lower `lib -> usr/lib` writes `usr/lib/x`), with the same rule as a
/// plain unpack: a link leading out of the rootfs is an escape. Directories that exist only
/// below are created with their lower metadata, as overlayfs copy-up does.
pub fn merged_parent(
    upper: BorrowedFd<'_>,
    lowers: &[OwnedFd],
    parts: &[Vec<u8>],
) -> Result<OwnedFd, resolve::OpenDirError> {
    use resolve::OpenDirError;
    use std::collections::VecDeque;
    let mut queue: VecDeque<Vec<u8>> = parts.iter().cloned().collect();
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut hops = 0;
    while let Some(c) = queue.pop_front() {
        if c.is_empty() || c == b"." {
            continue;
        }
        if c == b".." {
            if out.pop().is_none() {
                return Err(OpenDirError::Escape(super::error::Escape::ThroughSymlink));
            }
            continue;
        }
        let mut candidate = out.clone();
        candidate.push(c.clone());
        match lookup_merged(upper, lowers, &candidate) {
            Found::Symlink(target) => {
                hops += 1;
                if hops > 40 || target.first() == Some(&b'/') {
                    return Err(OpenDirError::Escape(super::error::Escape::ThroughSymlink));
                }
                for t in target.split(|b| *b == b'/').rev() {
                    queue.push_front(t.to_vec());
                }
            }
            Found::Other => return Err(OpenDirError::NotDir),
            Found::Dir | Found::Missing => out = candidate,
        }
    }
    // Create what is missing in this layer, copying lower directories' metadata.
    let mut dir = upper.try_clone_to_owned().map_err(OpenDirError::Io)?;
    for i in 0..out.len() {
        match resolve::open_dir_beneath(upper, &out[..=i]) {
            Ok(fd) => {
                dir = fd;
                continue;
            }
            Err(OpenDirError::Missing) => {}
            Err(e) => return Err(e),
        }
        let name = &out[i];
        let lower_meta = find_in_lowers(lowers, &out[..=i]);
        let mode = if lower_meta.is_some() { 0o700 } else { 0o755 };
        match nix::sys::stat::mkdirat(
            dir.as_fd(),
            resolve::os(name),
            Mode::from_bits_truncate(mode),
        ) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(OpenDirError::Io(e.into())),
        }
        let new = open_ro(dir.as_fd(), name, OFlag::O_DIRECTORY).map_err(OpenDirError::Io)?;
        if let Some((ldir, lst)) = lower_meta {
            if lst.st_mode & libc::S_IFMT == libc::S_IFDIR {
                let lfd =
                    open_ro(ldir.as_fd(), name, OFlag::O_DIRECTORY).map_err(OpenDirError::Io)?;
                copy_meta(lfd.as_fd(), new.as_fd(), &lst).map_err(OpenDirError::Io)?;
            }
        }
        dir = new;
    }
    resolve::open_dir_beneath(upper, &out)
}
