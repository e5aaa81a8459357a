//! Listing and removing a directory tree beneath a directory fd, never following a symlink:
//! what replacing an entry, a whiteout and removing a bundle all need.
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::unistd::UnlinkatFlags;

use super::resolve;

/// The names in a directory (without `.` and `..`).
pub fn list_dir(fd: &OwnedFd) -> io::Result<Vec<Vec<u8>>> {
    use std::os::unix::ffi::OsStrExt;
    let dup = fd.try_clone()?;
    let d = nix::dir::Dir::from_fd(dup)?;
    let mut out = Vec::new();
    for e in d.into_iter() {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(std::ffi::OsStr::from_bytes(n).as_encoded_bytes().to_vec());
        }
    }
    Ok(out)
}

/// Remove `name` in `dir` and, for a directory, everything below it, never following symlinks.
pub fn remove_tree(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    match nix::unistd::unlinkat(dir, resolve::os(name), UnlinkatFlags::NoRemoveDir) {
        Ok(()) => return Ok(()),
        Err(Errno::EISDIR) | Err(Errno::EPERM) => {}
        Err(e) => return Err(e.into()),
    }
    let sub = nix::fcntl::openat(
        dir,
        resolve::os(name),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // A rootless user may own a directory it cannot write into yet.
    let _ = nix::sys::stat::fchmod(sub.as_fd(), Mode::from_bits_truncate(0o700));
    for n in list_dir(&sub)? {
        remove_tree(sub.as_fd(), &n)?;
    }
    nix::unistd::unlinkat(dir, resolve::os(name), UnlinkatFlags::RemoveDir)?;
    Ok(())
}
