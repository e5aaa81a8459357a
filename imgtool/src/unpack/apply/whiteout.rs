//! Whiteouts (`.wh.NAME`) and opaque directories (`.wh..wh..opq`): applied by removing what
//! lower layers put there, or, in overlay mode, written as overlayfs expects in a lower dir.
//! A whiteout hides lower layers only, never what its own layer wrote.
use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstatat, mknodat, Mode, SFlag};

use super::applier::{Applier, Ctx, WhiteoutMode};
use super::attrs::proc_fd_path;
use crate::unpack::error::{Escape, UnpackError};
use crate::unpack::resolve::{self, CleanPath, OpenDirError};
use crate::unpack::tree::{list_dir, remove_tree};

impl Applier {
    pub(super) fn apply_whiteout(
        &mut self,
        cx: &Ctx<'_>,
        parent: &[Vec<u8>],
        name: &[u8],
    ) -> Result<(), UnpackError> {
        let opaque = name == b".wh..wh..opq";
        if !opaque && name.starts_with(b".wh..wh.") {
            // aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not part of the filesystem.
            return Ok(());
        }
        let target = &name[4..];
        if !opaque && (target.is_empty() || target == b"." || target == b"..") {
            return Err(cx.escape(Escape::BadWhiteout));
        }
        // A whiteout hides lower layers only (OCI layer spec); what this layer wrote stays.
        if !opaque
            && self
                .this_layer
                .contains(&CleanPath(parent.to_vec()).join(target).to_bytes())
        {
            return Ok(());
        }
        self.parent_cache = None;
        match self.opts.whiteouts {
            WhiteoutMode::Apply => {
                let dir = match resolve::open_dir_beneath(self.root.as_fd(), parent) {
                    Ok(fd) => fd,
                    // Nothing below to hide.
                    Err(OpenDirError::Missing) | Err(OpenDirError::NotDir) => return Ok(()),
                    Err(e) => return Err(cx.open_dir("open whiteout directory", e)),
                };
                if opaque {
                    let dir_path = CleanPath(parent.to_vec());
                    self.clear_opaque(cx, dir.as_fd(), &dir_path)
                } else {
                    match remove_tree(dir.as_fd(), target) {
                        Ok(()) => Ok(()),
                        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
                        Err(e) => Err(cx.io("remove whited-out entry")(e)),
                    }
                }
            }
            WhiteoutMode::Overlay => {
                let dir = self.parent_dir(cx, parent)?;
                if opaque {
                    let p = proc_fd_path(dir.as_fd(), b".");
                    let (k, v) = (c"trusted.overlay.opaque", b"y");
                    // SAFETY: live NUL-terminated strings and a 1-byte buffer for the call.
                    let r =
                        unsafe { libc::setxattr(p.as_ptr(), k.as_ptr(), v.as_ptr().cast(), 1, 0) };
                    if r != 0 {
                        return Err(cx.io("mark directory opaque")(io::Error::last_os_error()));
                    }
                    Ok(())
                } else {
                    self.clear_destination(cx, dir.as_fd(), target, false)?;
                    mknodat(
                        dir.as_fd(),
                        resolve::os(target),
                        SFlag::S_IFCHR,
                        Mode::empty(),
                        libc::makedev(0, 0),
                    )
                    .map_err(cx.apply("create overlay whiteout"))
                }
            }
        }
    }

    /// Remove what lower layers put in `dir`, keeping what this layer wrote (at any depth).
    pub(super) fn clear_opaque(
        &mut self,
        cx: &Ctx<'_>,
        dir: BorrowedFd<'_>,
        dir_path: &CleanPath,
    ) -> Result<(), UnpackError> {
        let fd = nix::fcntl::openat(
            dir,
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(cx.apply("open opaque directory"))?;
        let names = list_dir(&fd).map_err(cx.io("list opaque directory"))?;
        for n in names {
            let child = dir_path.join(&n);
            if self.this_layer.contains(&child.to_bytes()) {
                let st = fstatat(fd.as_fd(), resolve::os(&n), AtFlags::AT_SYMLINK_NOFOLLOW)
                    .map_err(cx.apply("stat opaque child"))?;
                if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                    let sub = nix::fcntl::openat(
                        fd.as_fd(),
                        resolve::os(&n),
                        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(cx.apply("open opaque child"))?;
                    self.clear_opaque(cx, sub.as_fd(), &child)?;
                }
            } else {
                remove_tree(fd.as_fd(), &n)
                    .map_err(cx.io("remove entry hidden by opaque directory"))?;
            }
        }
        Ok(())
    }
}
