//! Apply the entries of one layer's tar stream to a directory, never outside it.
//!
//! Every entry's parent directory is resolved with `resolve::mkdir_all_beneath` (openat2
//! RESOLVE_BENEATH from the rootfs fd); the last component is then created, replaced or removed
//! with `*at` calls on that parent fd that never follow it. Metadata is set in the order the kernel
//! requires: content, owner (chown clears setuid bits and file capabilities), mode, xattrs
//! (incl. `security.capability`), then times. Directory times are set at the very end, because
//! creating children changes them.
use std::collections::{BTreeMap, HashSet};
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fchmodat, fstatat, mknodat, FchmodatFlags, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, Gid, Uid, UnlinkatFlags};
use tar::EntryType;

use super::error::{Escape, UnpackError};
use super::meta::{read_meta, record_rootless_owner, Meta};
use super::resolve::{self, CleanPath, OpenDirError};
use super::writer::{self, FileJob, Warnings, WriterPool};
use std::sync::Arc;

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
struct DirMeta {
    mode: u32,
    mtime: TimeSpec,
}

/// The state of one rootfs being built from a sequence of layers.
pub struct Applier {
    root: OwnedFd,
    opts: ApplyOptions,
    /// Directory metadata to set at the end, keyed by path (deepest last in byte order).
    dirs: BTreeMap<Vec<u8>, DirMeta>,
    /// Paths written by the current layer: an opaque dir hides only what lower layers wrote.
    this_layer: HashSet<Vec<u8>>,
    /// The last parent directory used: layers list a directory's entries together.
    parent_cache: Option<(Vec<Vec<u8>>, OwnedFd)>,
    buf: Vec<u8>,
    warnings: Warnings,
    /// Writes regular files' contents while this thread reads on (one per layer).
    pool: Option<WriterPool>,
    layer_label: Arc<str>,
    /// Overlay mode: the directories of the layers below (top first), for hardlink copy-up.
    lowers: Vec<OwnedFd>,
}

/// Labels for error messages.
struct Ctx<'a> {
    layer: &'a str,
    entry: &'a str,
}

impl Ctx<'_> {
    fn apply(&self, step: &'static str) -> impl FnOnce(Errno) -> UnpackError + '_ {
        move |e| UnpackError::Apply {
            layer: self.layer.to_string(),
            entry: self.entry.to_string(),
            step,
            source: e.into(),
        }
    }
    fn io(&self, step: &'static str) -> impl FnOnce(io::Error) -> UnpackError + '_ {
        move |e| UnpackError::Apply {
            layer: self.layer.to_string(),
            entry: self.entry.to_string(),
            step,
            source: e,
        }
    }
    fn escape(&self, why: Escape) -> UnpackError {
        UnpackError::Escape {
            layer: self.layer.to_string(),
            entry: self.entry.to_string(),
            why,
        }
    }
    fn open_dir(&self, step: &'static str, e: OpenDirError) -> UnpackError {
        match e {
            OpenDirError::Escape(why) => self.escape(why),
            OpenDirError::Missing => self.io(step)(io::Error::from(io::ErrorKind::NotFound)),
            OpenDirError::NotDir => self.io(step)(io::Error::from_raw_os_error(libc::ENOTDIR)),
            OpenDirError::Io(e) => self.io(step)(e),
        }
    }
}

/// atime (or mtime when the layer has none) and mtime of `name` in `dir`, never following a symlink.
fn set_times_at(
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

fn proc_fd_path(dir: BorrowedFd<'_>, name: &[u8]) -> CString {
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name);
    resolve::cstr(&p)
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

    fn warn_once(&mut self, key: String) {
        writer::warn_once(&self.warnings, key);
    }

    /// Apply every entry of one layer's uncompressed tar stream.
    pub fn apply_layer<R: Read>(&mut self, layer: &str, tar_stream: R) -> Result<(), UnpackError> {
        self.this_layer.clear();
        self.parent_cache = None;
        self.layer_label = Arc::from(layer);
        let writers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(4);
        self.pool = Some(
            WriterPool::new(writers, self.opts.rootless, self.warnings.clone()).map_err(
                |source| UnpackError::Root {
                    step: "start writer threads for layer",
                    path: layer.into(),
                    source,
                },
            )?,
        );
        let result = self.apply_entries(layer, tar_stream);
        // Always wait for the writers, also on error: nothing may write after we return.
        let written = self.pool.take().map(WriterPool::finish).unwrap_or(Ok(()));
        result.and(written)
    }

    fn apply_entries<R: Read>(&mut self, layer: &str, tar_stream: R) -> Result<(), UnpackError> {
        let mut archive = tar::Archive::new(tar_stream);
        let entries = archive.entries().map_err(|source| UnpackError::ReadLayer {
            layer: layer.to_string(),
            source,
        })?;
        for entry in entries {
            let mut entry = entry.map_err(|source| UnpackError::ReadLayer {
                layer: layer.to_string(),
                source,
            })?;
            if crate::interrupt::interrupted() {
                return Err(UnpackError::Interrupted);
            }
            self.apply_entry(layer, &mut entry)?;
        }
        Ok(())
    }

    fn apply_entry<R: Read>(
        &mut self,
        layer: &str,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<(), UnpackError> {
        let raw = entry.path_bytes().into_owned();
        let label = String::from_utf8_lossy(&raw).into_owned();
        let cx = Ctx {
            layer,
            entry: &label,
        };
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let path = CleanPath::parse(&raw).map_err(|why| cx.escape(why))?;
        let Some((parent, name)) = path.split_last() else {
            return self.apply_root_entry(&cx, entry, kind);
        };
        let (parent, name) = (parent.to_vec(), name.to_vec());
        if name.starts_with(b".wh.") {
            return self.apply_whiteout(&cx, &parent, &name);
        }
        let mut meta = read_meta(entry).map_err(|source| UnpackError::ReadLayer {
            layer: layer.to_string(),
            source,
        })?;
        if self.opts.rootless && !matches!(kind, EntryType::Symlink | EntryType::Link) {
            record_rootless_owner(&mut meta);
        }
        let dir = self.parent_dir(&cx, &parent)?;
        let is_dir = kind == EntryType::Directory;
        self.clear_destination(&cx, dir.as_fd(), &name, is_dir)?;
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.write_file(&cx, dir.as_fd(), &name, entry, meta)?
            }
            EntryType::Directory => self.make_dir(&cx, dir.as_fd(), &path, &name, &meta)?,
            EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                self.make_symlink(&cx, dir.as_fd(), &name, &target, &meta)?
            }
            EntryType::Link => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                self.make_hardlink(&cx, dir.as_fd(), &name, &target)?
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (major, minor) = (
                    entry.header().device_major().ok().flatten().unwrap_or(0),
                    entry.header().device_minor().ok().flatten().unwrap_or(0),
                );
                self.make_node(&cx, dir.as_fd(), &name, kind, major, minor, &meta)?
            }
            other => {
                return Err(UnpackError::UnsupportedEntry {
                    layer: layer.to_string(),
                    entry: label.clone(),
                    kind: format!("{other:?}"),
                })
            }
        }
        self.this_layer.insert(path.to_bytes());
        Ok(())
    }

    /// `./` itself: only a directory makes sense; its owner/mode/time go on the rootfs.
    fn apply_root_entry<R: Read>(
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

    /// The parent directory of an entry, created if the layer did not list it.
    fn parent_dir(&mut self, cx: &Ctx<'_>, parent: &[Vec<u8>]) -> Result<OwnedFd, UnpackError> {
        if let Some((p, fd)) = &self.parent_cache {
            if p.as_slice() == parent {
                return fd.try_clone().map_err(cx.io("dup parent fd"));
            }
        }
        let fd = if self.lowers.is_empty() {
            resolve::mkdir_all_beneath(self.root.as_fd(), parent, 0o755)
        } else {
            super::copy_up::merged_parent(self.root.as_fd(), &self.lowers, parent)
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
    fn clear_destination(
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

    fn write_file<R: Read>(
        &mut self,
        cx: &Ctx<'_>,
        dir: BorrowedFd<'_>,
        name: &[u8],
        entry: &mut tar::Entry<'_, R>,
        meta: Meta,
    ) -> Result<(), UnpackError> {
        let read_err = |source| UnpackError::ReadLayer {
            layer: cx.layer.to_string(),
            source,
        };
        let size = entry.size();
        // Small files: read the bytes now (the stream moves on), let a writer do the rest.
        let pooled = if self.pool.is_some() && size <= writer::MAX_POOLED_FILE {
            let mut data = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut data).map_err(read_err)?;
            Some(data)
        } else {
            None
        };
        let fd = nix::fcntl::openat(
            dir,
            resolve::os(name),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(cx.apply("create file"))?;
        let mut f = File::from(fd);
        if let (Some(data), Some(pool)) = (pooled, &self.pool) {
            return pool.submit(FileJob {
                file: f,
                data,
                meta,
                layer: self.layer_label.clone(),
                entry: cx.entry.to_string(),
            });
        }
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(read_err(source)),
            };
            f.write_all(&self.buf[..n]).map_err(cx.io("write file"))?;
        }
        writer::finish_file(
            &f,
            &meta,
            self.opts.rootless,
            cx.layer,
            cx.entry,
            &self.warnings,
        )
    }

    fn make_dir(
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

    fn make_symlink(
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

    fn make_hardlink(
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
                let copied = super::copy_up::copy_up(self.root.as_fd(), &self.lowers, &tpath)
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

    #[allow(clippy::too_many_arguments)]
    fn make_node(
        &mut self,
        cx: &Ctx<'_>,
        dir: BorrowedFd<'_>,
        name: &[u8],
        kind: EntryType,
        major: u32,
        minor: u32,
        meta: &Meta,
    ) -> Result<(), UnpackError> {
        let sflag = match kind {
            EntryType::Char => SFlag::S_IFCHR,
            EntryType::Block => SFlag::S_IFBLK,
            _ => SFlag::S_IFIFO,
        };
        if self.opts.rootless && kind != EntryType::Fifo {
            self.warn_once(format!(
                "layer {}: device node {:?} skipped: creating devices needs root",
                cx.layer, cx.entry
            ));
            return Ok(());
        }
        let dev = libc::makedev(major, minor);
        mknodat(
            dir,
            resolve::os(name),
            sflag,
            Mode::from_bits_truncate(0o600),
            dev,
        )
        .map_err(cx.apply("create device node"))?;
        self.set_owner_at(cx, dir, name, meta)?;
        // The node was just created by us and is not a symlink, so following is safe here.
        fchmodat(
            dir,
            resolve::os(name),
            Mode::from_bits_truncate(meta.mode),
            FchmodatFlags::FollowSymlink,
        )
        .map_err(cx.apply("set mode"))?;
        self.set_xattrs_at(cx, dir, name, meta)?;
        set_times_at(cx, dir, name, meta, "set times")
    }

    /// Owner, then mode, then xattrs on an open file or directory.
    fn set_owner_mode_xattrs_fd(
        &mut self,
        cx: &Ctx<'_>,
        f: &File,
        meta: &Meta,
        is_dir: bool,
    ) -> Result<(), UnpackError> {
        if !self.opts.rootless {
            nix::unistd::fchown(
                f.as_fd(),
                Some(Uid::from_raw(meta.uid as u32)),
                Some(Gid::from_raw(meta.gid as u32)),
            )
            .map_err(cx.apply("set owner"))?;
        }
        // Rootless: a directory we could not write into would stop later entries; its real mode
        // is applied in `finish`.
        let mode = if self.opts.rootless && is_dir {
            meta.mode | 0o700
        } else {
            meta.mode
        };
        nix::sys::stat::fchmod(f.as_fd(), Mode::from_bits_truncate(mode))
            .map_err(cx.apply("set mode"))?;
        for (k, v) in &meta.xattrs {
            // SAFETY: `k` is a NUL-terminated C string and `v` a live buffer of `v.len()` bytes,
            // both outliving the call; the fd is open.
            let r = unsafe {
                libc::fsetxattr(f.as_raw_fd(), k.as_ptr(), v.as_ptr().cast(), v.len(), 0)
            };
            if r != 0 {
                self.xattr_failed(cx, k, io::Error::last_os_error())?;
            }
        }
        Ok(())
    }

    fn set_owner_at(
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

    fn set_xattrs_at(
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
    fn xattr_failed(
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

    fn apply_whiteout(
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
    fn clear_opaque(
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A tiny layer builder: (path, kind, data-or-link-target).
    enum E<'a> {
        Dir(&'a str),
        File(&'a str, &'a str),
        Sym(&'a str, &'a str),
        Hard(&'a str, &'a str),
        /// Raw path bytes written into the header as-is (for `..`/absolute names).
        RawFile(&'a [u8]),
    }

    fn layer(entries: &[E<'_>]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for e in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mtime(1_600_000_000);
            h.set_uid(0);
            h.set_gid(0);
            match e {
                E::Dir(p) => {
                    h.set_entry_type(EntryType::Directory);
                    h.set_mode(0o755);
                    h.set_size(0);
                    b.append_data(&mut h, p, io::empty()).unwrap();
                }
                E::File(p, d) => {
                    h.set_entry_type(EntryType::Regular);
                    h.set_mode(0o644);
                    h.set_size(d.len() as u64);
                    b.append_data(&mut h, p, d.as_bytes()).unwrap();
                }
                E::Sym(p, t) => {
                    h.set_entry_type(EntryType::Symlink);
                    h.set_mode(0o777);
                    h.set_size(0);
                    b.append_link(&mut h, p, t).unwrap();
                }
                E::Hard(p, t) => {
                    h.set_entry_type(EntryType::Link);
                    h.set_mode(0o644);
                    h.set_size(0);
                    // append_link refuses nothing, so hostile targets go in verbatim.
                    h.set_link_name_literal(t.as_bytes()).unwrap();
                    h.set_path("placeholder").unwrap();
                    let name = h.as_old_mut().name.as_mut_ptr();
                    // SAFETY: writing within the 100-byte name field of the header we own.
                    unsafe {
                        std::ptr::write_bytes(name, 0, 100);
                        std::ptr::copy_nonoverlapping(p.as_ptr(), name, p.len());
                    }
                    h.set_cksum();
                    b.append(&h, io::empty()).unwrap();
                }
                E::RawFile(p) => {
                    h.set_entry_type(EntryType::Regular);
                    h.set_mode(0o644);
                    h.set_size(4);
                    h.set_path("placeholder").unwrap();
                    h.as_old_mut().name = [0; 100];
                    h.as_old_mut().name[..p.len()].copy_from_slice(p);
                    h.set_cksum();
                    b.append(&h, &b"evil"[..]).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    fn opts() -> ApplyOptions {
        ApplyOptions {
            rootless: !nix::unistd::geteuid().is_root(),
            whiteouts: WhiteoutMode::Apply,
        }
    }

    fn apply(root: &Path, layers: &[Vec<u8>]) -> Result<(), UnpackError> {
        let mut a = Applier::new(root, opts())?;
        for (i, l) in layers.iter().enumerate() {
            a.apply_layer(&format!("{}", i + 1), &l[..])?;
        }
        a.finish()
    }

    fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("rootfs");
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir(t.path().join("canary")).unwrap();
        (t, root)
    }

    fn canary_untouched(t: &tempfile::TempDir) {
        assert_eq!(
            std::fs::read_dir(t.path().join("canary")).unwrap().count(),
            0
        );
        let mut names: Vec<_> = std::fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["canary", "rootfs"]);
    }

    #[test]
    fn whiteouts_opaque_and_overwrites() {
        let (_t, root) = setup();
        let l1 = layer(&[
            E::Dir("a"),
            E::File("a/keep", "1"),
            E::File("a/gone", "1"),
            E::Dir("o"),
            E::File("o/old", "1"),
            E::Dir("o/sub"),
            E::File("o/sub/old", "1"),
            E::Dir("d"),
            E::File("d/x", "1"),
            E::File("f", "file"),
        ]);
        let l2 = layer(&[
            E::File("a/.wh.gone", ""),
            E::Dir("o"),
            E::Dir("o/sub"),
            E::File("o/sub/new", "2"),
            E::File("o/.wh..wh..opq", ""),
            E::File("o/new", "2"),
            E::File(".wh.d", ""),
            E::Dir("f"),
            E::Hard("a/link", "a/keep"),
        ]);
        apply(&root, &[l1, l2]).unwrap();
        assert!(root.join("a/keep").exists() && !root.join("a/gone").exists());
        assert!(!root.join("o/old").exists() && !root.join("o/sub/old").exists());
        assert!(root.join("o/new").exists() && root.join("o/sub/new").exists());
        assert!(!root.join("d").exists());
        assert!(root.join("f").is_dir());
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(root.join("a/link")).unwrap().ino(),
            std::fs::metadata(root.join("a/keep")).unwrap().ino()
        );
        assert_eq!(
            std::fs::metadata(root.join("a")).unwrap().mtime(),
            1_600_000_000
        );
    }

    #[test]
    fn symlinks_inside_are_followed_for_parents() {
        let (_t, root) = setup();
        let l1 = layer(&[E::Dir("usr"), E::Dir("usr/lib"), E::Sym("lib", "usr/lib")]);
        let l2 = layer(&[E::File("lib/libx.so", "x")]);
        apply(&root, &[l1, l2]).unwrap();
        assert_eq!(std::fs::read(root.join("usr/lib/libx.so")).unwrap(), b"x");
    }

    fn hostile(layers: &[Vec<u8>], want: &str) {
        let (t, root) = setup();
        let err = apply(&root, layers).unwrap_err().to_string();
        assert!(err.contains(want), "{err}");
        canary_untouched(&t);
    }

    #[test]
    fn hostile_entries_are_refused() {
        hostile(
            &[layer(&[E::RawFile(b"../canary/pwned")])],
            "\"..\" component",
        );
        hostile(&[layer(&[E::RawFile(b"/canary/pwned")])], "absolute path");
        let abs = format!("{}/../canary", std::env::temp_dir().display());
        let _ = abs;
        hostile(
            &[layer(&[
                E::Sym("evil", "../canary"),
                E::File("evil/pwned", "x"),
            ])],
            "symlink that leads out",
        );
        hostile(
            &[
                layer(&[E::Sym("evil", "../canary")]),
                layer(&[E::File("evil/pwned", "x")]),
            ],
            "layer 2: entry \"evil/pwned\"",
        );
        hostile(
            &[
                layer(&[E::Sym("evil", "/")]),
                layer(&[E::File("evil/x", "x")]),
            ],
            "symlink that leads out",
        );
        hostile(&[layer(&[E::Hard("h", "../canary/f")])], "hardlink target");
        hostile(
            &[layer(&[
                E::Sym("evil", ".."),
                E::Hard("h", "evil/canary/f"),
            ])],
            "hardlink target",
        );
        hostile(
            &[layer(&[
                E::Sym("evil", ".."),
                E::File("evil/.wh.canary", ""),
            ])],
            "symlink that leads out",
        );
        hostile(
            &[layer(&[E::RawFile(b"../.wh.canary")])],
            "\"..\" component",
        );
    }

    #[test]
    fn replacing_a_planted_symlink_never_writes_through_it() {
        let (t, root) = setup();
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(t.path().join("canary/keep"), "untouched").unwrap();
        std::fs::set_permissions(
            t.path().join("canary"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        let l1 = layer(&[
            E::Sym("f", "../canary/keep"),
            E::Sym("d", "../canary"),
            E::Sym("h", "../canary/keep"),
        ]);
        let l2 = layer(&[
            E::File("f", "pwned?"),
            E::Dir("d"),
            E::File("x", "x"),
            E::Hard("h", "x"),
        ]);
        apply(&root, &[l1, l2]).unwrap();
        assert_eq!(
            std::fs::read_to_string(t.path().join("canary/keep")).unwrap(),
            "untouched"
        );
        assert_eq!(std::fs::read_to_string(root.join("f")).unwrap(), "pwned?");
        assert!(root.join("d").symlink_metadata().unwrap().is_dir());
        assert_eq!(std::fs::read_to_string(root.join("h")).unwrap(), "x");
        let canary_mode = std::fs::metadata(t.path().join("canary"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            canary_mode & 0o7777,
            0o700,
            "the dir entry's mode was not applied through the link"
        );
    }

    #[test]
    fn overlay_mode_writes_overlayfs_whiteouts() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let (_t, root) = setup();
        let l = layer(&[
            E::Dir("a"),
            E::File("a/.wh..wh..opq", ""),
            E::File("a/.wh.gone", ""),
            E::File("a/kept", "k"),
        ]);
        let mut a = Applier::new(
            &root,
            ApplyOptions {
                rootless: false,
                whiteouts: WhiteoutMode::Overlay,
            },
        )
        .unwrap();
        a.apply_layer("1", &l[..]).unwrap();
        a.finish().unwrap();
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let wh = std::fs::symlink_metadata(root.join("a/gone")).unwrap();
        assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
        let mut v = [0u8; 4];
        let p = std::ffi::CString::new(root.join("a").as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: NUL-terminated strings and a writable 4-byte buffer for the call.
        let n = unsafe {
            libc::lgetxattr(
                p.as_ptr(),
                c"trusted.overlay.opaque".as_ptr(),
                v.as_mut_ptr().cast(),
                4,
            )
        };
        assert_eq!(&v[..n as usize], b"y");
        assert!(root.join("a/kept").exists());
    }

    #[test]
    fn a_whiteout_does_not_hide_its_own_layer() {
        let (_t, root) = setup();
        let l1 = layer(&[E::File("x", "lower")]);
        let l2 = layer(&[E::File("x", "same layer"), E::File(".wh.x", "")]);
        apply(&root, &[l1, l2]).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("x")).unwrap(),
            "same layer"
        );
    }
}
