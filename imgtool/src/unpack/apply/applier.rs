//! What one rootfs under construction holds from entry to entry (`Applier`), how errors name
//! the entry at fault (`Ctx`), and the two steps every kind of entry starts with: finding its
//! parent directory inside the rootfs, and clearing its name.
use std::collections::{BTreeMap, HashSet};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::fstatat;
use nix::sys::time::TimeSpec;
use nix::unistd::UnlinkatFlags;

use crate::unpack::copy_up;
use crate::unpack::error::{Escape, UnpackError};
use crate::unpack::resolve::{self, OpenDirError};
use crate::unpack::tree::remove_tree;
use crate::unpack::writer::{self, Warnings, WriterPool};

/// How whiteouts in a layer are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutMode {
    /// Layers are stacked in one directory: a whiteout removes what lower layers put there.
    Apply,
    /// Each layer gets its own directory for overlayfs: whiteouts become 0/0 char devices and
    /// opaque dirs get `trusted.overlay.opaque=y`, as overlayfs expects in a lower dir.
    Overlay,
}

#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions {
    /// Running without root: owners are not set, devices are skipped, and directories stay
    /// writable for us until the end so later entries can still be written into them.
    pub rootless: bool,
    pub whiteouts: WhiteoutMode,
}

/// A directory's metadata that must be applied after everything below it is written.
#[derive(Debug, Clone, Copy)]
pub(super) struct DirMeta {
    pub(super) mode: u32,
    pub(super) mtime: TimeSpec,
}

/// The state of one rootfs being built from a sequence of layers.
pub struct Applier {
    pub(super) root: OwnedFd,
    pub(super) opts: ApplyOptions,
    /// Directory metadata to set at the end, keyed by path (deepest last in byte order).
    pub(super) dirs: BTreeMap<Vec<u8>, DirMeta>,
    /// Paths written by the current layer: an opaque dir hides only what lower layers wrote.
    pub(super) this_layer: HashSet<Vec<u8>>,
    /// The last parent directory used: layers list a directory's entries together.
    pub(super) parent_cache: Option<(Vec<Vec<u8>>, OwnedFd)>,
    pub(super) buf: Vec<u8>,
    pub(super) warnings: Warnings,
    /// Writes regular files' contents while this thread reads on (one per layer).
    pub(super) pool: Option<WriterPool>,
    pub(super) layer_label: Arc<str>,
    /// Overlay mode: the directories of the layers below (top first), for hardlink copy-up.
    pub(super) lowers: Vec<OwnedFd>,
}

/// Labels for error messages.
pub(super) struct Ctx<'a> {
    pub(super) layer: &'a str,
    pub(super) entry: &'a str,
}

impl Ctx<'_> {
    pub(super) fn apply(&self, step: &'static str) -> impl FnOnce(Errno) -> UnpackError + '_ {
        move |e| UnpackError::Apply {
            layer: self.layer.to_string(),
            entry: self.entry.to_string(),
            step,
            source: e.into(),
            root: None,
        }
    }
    pub(super) fn io(&self, step: &'static str) -> impl FnOnce(io::Error) -> UnpackError + '_ {
        move |e| UnpackError::Apply {
            layer: self.layer.to_string(),
            entry: self.entry.to_string(),
            step,
            source: e,
            root: None,
        }
    }
    pub(super) fn escape(&self, why: Escape) -> UnpackError {
        UnpackError::Escape {
            layer: self.layer.to_string(),
            entry: self.entry.to_string(),
            why,
        }
    }
    pub(super) fn open_dir(&self, step: &'static str, e: OpenDirError) -> UnpackError {
        match e {
            OpenDirError::Escape(why) => self.escape(why),
            OpenDirError::Missing => self.io(step)(io::Error::from(io::ErrorKind::NotFound)),
            OpenDirError::NotDir => self.io(step)(io::Error::from_raw_os_error(libc::ENOTDIR)),
            OpenDirError::Io(e) => self.io(step)(e),
        }
    }
}

impl Applier {
    /// Start applying layers into `root` (an existing, normally empty, directory).
    pub fn new(root: &std::path::Path, opts: ApplyOptions) -> Result<Applier, UnpackError> {
        let fd = resolve::open_root(root).map_err(|source| UnpackError::Root {
            step: "open rootfs",
            path: root.to_path_buf(),
            source,
        })?;
        Ok(Applier {
            root: fd,
            opts,
            dirs: BTreeMap::new(),
            this_layer: HashSet::new(),
            parent_cache: None,
            buf: vec![0u8; 1 << 20],
            warnings: Warnings::default(),
            pool: None,
            layer_label: Arc::from(""),
            lowers: Vec::new(),
        })
    }

    /// Overlay mode: the cache dirs of the layers below this one, base first.
    pub fn with_lowers(mut self, lowers: &[std::path::PathBuf]) -> Result<Applier, UnpackError> {
        for l in lowers.iter().rev() {
            let fd = resolve::open_root(l).map_err(|source| UnpackError::Root {
                step: "open lower layer",
                path: l.clone(),
                source,
            })?;
            self.lowers.push(fd);
        }
        Ok(self)
    }

    pub(super) fn warn_once(&mut self, key: String) {
        writer::warn_once(&self.warnings, key);
    }

    /// The parent directory of an entry, created if the layer did not list it.
    pub(super) fn parent_dir(
        &mut self,
        cx: &Ctx<'_>,
        parent: &[Vec<u8>],
    ) -> Result<OwnedFd, UnpackError> {
        if let Some((p, fd)) = &self.parent_cache {
            if p.as_slice() == parent {
                return fd.try_clone().map_err(cx.io("dup parent fd"));
            }
        }
        let fd = if self.lowers.is_empty() {
            resolve::mkdir_all_beneath(self.root.as_fd(), parent, 0o755)
        } else {
            copy_up::merged_parent(self.root.as_fd(), &self.lowers, parent)
        }
        .map_err(|e| cx.open_dir("open parent directory", e))?;
        self.parent_cache = Some((
            parent.to_vec(),
            fd.try_clone().map_err(cx.io("dup parent fd"))?,
        ));
        Ok(fd)
    }

    /// Make room for the entry: an existing directory stays when the entry is a directory too
    /// (the layers merge), anything else is removed first.
    pub(super) fn clear_destination(
        &mut self,
        cx: &Ctx<'_>,
        dir: BorrowedFd<'_>,
        name: &[u8],
        entry_is_dir: bool,
    ) -> Result<(), UnpackError> {
        let st = match fstatat(dir, resolve::os(name), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(cx.apply("stat existing entry")(e)),
        };
        let fmt = st.st_mode & libc::S_IFMT;
        if fmt == libc::S_IFDIR {
            if entry_is_dir {
                return Ok(());
            }
            self.parent_cache = None;
            remove_tree(dir, name).map_err(cx.io("remove existing directory"))?;
        } else {
            if fmt == libc::S_IFLNK {
                self.parent_cache = None;
            }
            nix::unistd::unlinkat(dir, resolve::os(name), UnlinkatFlags::NoRemoveDir)
                .map_err(cx.apply("remove existing entry"))?;
        }
        Ok(())
    }
}
