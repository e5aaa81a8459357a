//! Directories, the rootfs itself (`./`) included: created, or merged with one a lower layer
//! made; their mode (rootless) and times are kept and set only in `finish`, deepest first,
//! because writing below a directory changes them.
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use tar::EntryType;

use super::applier::{Applier, Ctx, DirMeta};
use crate::unpack::error::UnpackError;
use crate::unpack::meta::{read_meta, Meta};
use crate::unpack::resolve::{self, CleanPath};

impl Applier {
    /// `./` itself: only a directory makes sense; its owner/mode/time go on the rootfs.
    pub(super) fn apply_root_entry<R: Read>(
        &mut self,
        cx: &Ctx<'_>,
        entry: &mut tar::Entry<'_, R>,
        kind: EntryType,
    ) -> Result<(), UnpackError> {
        if kind != EntryType::Directory {
            return Err(UnpackError::UnsupportedEntry {
                layer: cx.layer.to_string(),
                entry: cx.entry.to_string(),
                kind: format!("{kind:?} as the rootfs itself (only a directory can be \".\")"),
            });
        }
        let meta = read_meta(entry).map_err(cx.io("read header"))?;
        let root = self.root.try_clone().map_err(cx.io("dup rootfs fd"))?;
        let dirfd = nix::fcntl::openat(
            root.as_fd(),
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(cx.apply("open rootfs"))?;
        let f = File::from(dirfd);
        self.set_owner_mode_xattrs_fd(cx, &f, &meta, true)?;
        self.dirs.insert(
            b".".to_vec(),
            DirMeta {
                mode: meta.mode,
                mtime: meta.mtime,
            },
        );
        Ok(())
    }

    pub(super) fn make_dir(
        &mut self,
        cx: &Ctx<'_>,
        dir: BorrowedFd<'_>,
        path: &CleanPath,
        name: &[u8],
        meta: &Meta,
    ) -> Result<(), UnpackError> {
        match nix::sys::stat::mkdirat(dir, resolve::os(name), Mode::from_bits_truncate(0o700)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(cx.apply("create directory")(e)),
        }
        let fd = nix::fcntl::openat(
            dir,
            resolve::os(name),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(cx.apply("open directory"))?;
        let f = File::from(fd);
        self.set_owner_mode_xattrs_fd(cx, &f, meta, true)?;
        self.dirs.insert(
            path.to_bytes(),
            DirMeta {
                mode: meta.mode,
                mtime: meta.mtime,
            },
        );
        Ok(())
    }

    /// Set directory modes (rootless) and times now that nothing more is written below them.
    pub fn finish(mut self) -> Result<(), UnpackError> {
        let dirs = std::mem::take(&mut self.dirs);
        // Deepest first, so setting a child's time does not disturb its parent's afterwards.
        let mut list: Vec<_> = dirs.into_iter().collect();
        list.sort_by_key(|(p, _)| std::cmp::Reverse(p.iter().filter(|b| **b == b'/').count()));
        for (p, m) in list {
            let parts = CleanPath::parse(&p).unwrap_or(CleanPath(vec![]));
            let fd = match resolve::open_dir_beneath_with(
                self.root.as_fd(),
                &parts.0,
                OFlag::O_RDONLY,
            ) {
                Ok(fd) => fd,
                // Removed or replaced by a later layer.
                Err(_) => continue,
            };
            let fail = |step: &'static str| {
                let path = resolve::os(&p).to_path_buf();
                move |e: Errno| UnpackError::Root {
                    step,
                    path,
                    source: e.into(),
                }
            };
            if self.opts.rootless {
                nix::sys::stat::fchmod(fd.as_fd(), Mode::from_bits_truncate(m.mode))
                    .map_err(fail("set directory mode"))?;
            }
            nix::sys::stat::futimens(fd.as_fd(), &m.mtime, &m.mtime)
                .map_err(fail("set directory times"))?;
        }
        Ok(())
    }
}
