//! Owner, mode, xattrs and times of what an entry created, in the order the kernel needs them
//! (chown clears setuid bits and file capabilities, so mode and xattrs come after it), for the
//! directories, links and nodes the reading thread makes itself; regular files get the same
//! steps from `writer::finish_file`, on whichever thread wrote them.
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::fcntl::AtFlags;
use nix::sys::stat::UtimensatFlags;
use nix::unistd::{fchownat, Gid, Uid};

use super::applier::{Applier, Ctx};
use crate::unpack::error::UnpackError;
use crate::unpack::meta::Meta;
use crate::unpack::resolve;
use crate::unpack::writer;

/// atime (or mtime when the layer has none) and mtime of `name` in `dir`, never following a symlink.
pub(super) fn set_times_at(
    cx: &Ctx<'_>,
    dir: BorrowedFd<'_>,
    name: &[u8],
    meta: &Meta,
    step: &'static str,
) -> Result<(), UnpackError> {
    let atime = meta.atime.unwrap_or(meta.mtime);
    nix::sys::stat::utimensat(
        dir,
        resolve::os(name),
        &atime,
        &meta.mtime,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(cx.apply(step))
}

pub(super) fn proc_fd_path(dir: BorrowedFd<'_>, name: &[u8]) -> CString {
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name);
    resolve::cstr(&p)
}

impl Applier {
    /// Owner, then mode, then xattrs on an open file or directory.
    pub(super) fn set_owner_mode_xattrs_fd(
        &mut self,
        cx: &Ctx<'_>,
        f: &File,
        meta: &Meta,
        is_dir: bool,
    ) -> Result<(), UnpackError> {
        // Rootless: a directory we could not write into would stop later entries; its real mode
        // is applied in `finish`.
        let mode = if self.opts.rootless && is_dir {
            meta.mode | 0o700
        } else {
            meta.mode
        };
        writer::set_owner_mode_xattrs(
            f,
            meta,
            mode,
            self.opts.rootless,
            cx.layer,
            cx.entry,
            &self.warnings,
        )
    }

    pub(super) fn set_owner_at(
        &mut self,
        cx: &Ctx<'_>,
        dir: BorrowedFd<'_>,
        name: &[u8],
        meta: &Meta,
    ) -> Result<(), UnpackError> {
        if self.opts.rootless {
            return Ok(());
        }
        fchownat(
            dir,
            resolve::os(name),
            Some(Uid::from_raw(meta.uid as u32)),
            Some(Gid::from_raw(meta.gid as u32)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(cx.apply("set owner"))
    }

    pub(super) fn set_xattrs_at(
        &mut self,
        cx: &Ctx<'_>,
        dir: BorrowedFd<'_>,
        name: &[u8],
        meta: &Meta,
    ) -> Result<(), UnpackError> {
        if meta.xattrs.is_empty() {
            return Ok(());
        }
        // /proc/self/fd/N is the parent we resolved safely; lsetxattr does not follow `name`.
        let p = proc_fd_path(dir, name);
        for (k, v) in &meta.xattrs {
            // SAFETY: all pointers are to live NUL-terminated strings / a buffer of `v.len()`
            // bytes for the duration of the call.
            let r =
                unsafe { libc::lsetxattr(p.as_ptr(), k.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
            if r != 0 {
                self.xattr_failed(cx, k, io::Error::last_os_error())?;
            }
        }
        Ok(())
    }

    /// An xattr the filesystem (or, rootless, our privileges) cannot hold is a warning; anything
    /// else is an error.
    pub(super) fn xattr_failed(
        &mut self,
        cx: &Ctx<'_>,
        key: &CString,
        e: io::Error,
    ) -> Result<(), UnpackError> {
        writer::xattr_failure(
            &self.warnings,
            self.opts.rootless,
            cx.layer,
            cx.entry,
            key,
            e,
        )
    }
}
