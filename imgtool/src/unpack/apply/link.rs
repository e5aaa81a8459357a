//! Symlinks (the target is stored, never followed) and hardlinks (the target must resolve
//! inside the rootfs; in overlay mode it may first be copied up from a lower layer).
use std::os::fd::{AsFd, BorrowedFd};

use nix::errno::Errno;
use nix::fcntl::AtFlags;

use super::applier::{Applier, Ctx};
use super::attrs::set_times_at;
use crate::unpack::copy_up;
use crate::unpack::error::{Escape, UnpackError};
use crate::unpack::meta::Meta;
use crate::unpack::resolve::{self, CleanPath, OpenDirError};

impl Applier {
    pub(super) fn make_symlink(
        &mut self,
        cx: &Ctx<'_>,
        dir: BorrowedFd<'_>,
        name: &[u8],
        target: &[u8],
        meta: &Meta,
    ) -> Result<(), UnpackError> {
        // The target is stored, never followed here: later entries through it are resolved
        // BENEATH the rootfs, so a link pointing out cannot be written through.
        nix::unistd::symlinkat(resolve::os(target), dir, resolve::os(name))
            .map_err(cx.apply("create symlink"))?;
        self.set_owner_at(cx, dir, name, meta)?;
        self.set_xattrs_at(cx, dir, name, meta)?;
        set_times_at(cx, dir, name, meta, "set symlink times")
    }

    pub(super) fn make_hardlink(
        &mut self,
        cx: &Ctx<'_>,
        dir: BorrowedFd<'_>,
        name: &[u8],
        target: &[u8],
    ) -> Result<(), UnpackError> {
        let label = String::from_utf8_lossy(target).into_owned();
        let outside = || cx.escape(Escape::HardlinkOutside(label.clone()));
        let tpath = CleanPath::parse(target).map_err(|_| outside())?;
        let Some((tparent, tname)) = tpath.split_last() else {
            return Err(outside());
        };
        let tdir = match resolve::open_dir_beneath(self.root.as_fd(), tparent) {
            Ok(fd) => fd,
            Err(OpenDirError::Escape(_)) => return Err(outside()),
            // The target's directory may exist only in a lower layer (overlay mode).
            Err(OpenDirError::Missing) if !self.lowers.is_empty() => {
                self.root.try_clone().map_err(cx.io("dup rootfs fd"))?
            }
            Err(e) => return Err(cx.open_dir("open hardlink target directory", e)),
        };
        // linkat without AT_SYMLINK_FOLLOW links the target name itself, never what it points to.
        let link = |tdir: BorrowedFd<'_>| {
            nix::unistd::linkat(
                tdir,
                resolve::os(tname),
                dir,
                resolve::os(name),
                AtFlags::empty(),
            )
        };
        match link(tdir.as_fd()) {
            Err(Errno::ENOENT) if !self.lowers.is_empty() => {
                let copied = copy_up::copy_up(self.root.as_fd(), &self.lowers, &tpath)
                    .map_err(cx.io("copy hardlink target up from a lower layer"))?;
                if !copied {
                    return Err(cx.apply("create hardlink")(Errno::ENOENT));
                }
                let tdir = resolve::open_dir_beneath(self.root.as_fd(), tparent)
                    .map_err(|e| cx.open_dir("open hardlink target directory", e))?;
                link(tdir.as_fd()).map_err(cx.apply("create hardlink"))
            }
            r => r.map_err(cx.apply("create hardlink")),
        }
    }
}
