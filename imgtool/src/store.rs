//! The image store: an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/<hex>`) that
//! skopeo and umoci read as `oci:DIR`, plus imgtool's own bookkeeping under `.imgtool/`
//! (`lock`, `tmp/` for blobs being written, `diffids/` remembering each verified layer's diff_id).
//!
//! `index.json` holds one manifest descriptor per image name: the name is the standard
//! `org.opencontainers.image.ref.name` annotation holding the full normalised reference
//! (`docker.io/library/busybox:latest`), so `skopeo copy oci:STORE:docker.io/library/busybox:latest …`
//! works. An entry without a name is a dangling image (its name moved to a newer pull).
//!
//! An image's sigstore signatures are kept beside it as any layout keeps them
//! (transport/layout_signatures.rs): an entry named `sha256-<hex>.sig` for the manifest
//! `sha256:<hex>`, whose blobs garbage collection therefore counts as referenced. `entries`
//! lists images only; an attachment entry lives exactly as long as some image entry has its
//! manifest digest (`index_section` drops it with the last one, so `rmi` removes it and the
//! next collection its blobs).
//!
//! Crash safety: a blob is written to `.imgtool/tmp`, verified, fsynced and renamed into
//! `blobs/sha256/`; so a blob path that exists is always complete and verified. `index.json` is
//! replaced the same way. A `kill -9` leaves at most orphan temp files (named after the writer's
//! pid, removed by the next imgtool once that pid is gone) and unreferenced blobs (removed by the
//! next garbage collection).
//!
//! Locking, two `flock`s:
//! - `.imgtool/lock` (the GC lock): every `Store` holds it shared for its lifetime, so garbage
//!   collection, which converts it to exclusive, never removes a blob someone is reading (an
//!   unpack) or about to reference (a pull). GC waits for those; nothing else does.
//! - `.imgtool/index.lock`: held exclusive only while `index.json` is read-modified-written, so
//!   a pull can record its image while a long unpack has the store open.
use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use oci_spec::image::{Descriptor, ImageIndex, ImageIndexBuilder, MediaType};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::verify::{check_digest, Hasher};

/// Annotation holding an image's full name (standard OCI layout annotation).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Digest the registry resolved the name to (the index digest for a multi-arch image): what
/// `images --digests` shows and what `name@digest` matches.
pub const ANNOTATION_REPO_DIGEST: &str = "io.imgtool.repo-digest";
/// RFC 3339 time the name was written into the store.
pub const ANNOTATION_PULLED: &str = "io.imgtool.pulled";

/// Where snapshot.rs caches overlay layers; named here so that opening the store can sweep the
/// extraction dirs of dead unpacks.
pub const LAYER_CACHE: &str = "snapshots/layers";

/// An open store holding a shared lock.
pub struct Store {
    root: PathBuf,
    lock: Arc<LockHandle>,
}

/// One GC-lock file descriptor per store per process: flock locks belong to an open file
/// description, so two `Store`s of one process with their own descriptors would block each
/// other. Every `Store` on the same root shares this, and `exclusive` serialises the
/// conversions to an exclusive lock between threads.
struct LockHandle {
    file: File,
    path: PathBuf,
    exclusive: Mutex<()>,
}

static LOCKS: Mutex<Vec<(PathBuf, Weak<LockHandle>)>> = Mutex::new(Vec::new());

fn lock_handle(root: &Path) -> Result<Arc<LockHandle>> {
    let key = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let mut locks = LOCKS.lock().unwrap_or_else(|p| p.into_inner());
    locks.retain(|(_, w)| w.strong_count() > 0);
    if let Some(h) = locks
        .iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, w)| w.upgrade())
    {
        return Ok(h);
    }
    let path = root.join(".imgtool/lock");
    let file = open_locked(&path, LockMode::Shared, "open store lock")?;
    let h = Arc::new(LockHandle {
        file,
        path,
        exclusive: Mutex::new(()),
    });
    locks.push((key, Arc::downgrade(&h)));
    Ok(h)
}

static TEMP_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A blob being written: hashed as it is written, committed only when its digest matches.
pub struct BlobWriter<'s> {
    store: &'s Store,
    file: File,
    path: PathBuf,
    hasher: Hasher,
    len: u64,
    finished: bool,
}

impl Drop for BlobWriter<'_> {
    fn drop(&mut self) {
        // A writer dropped on an error path (or a cancelled download) leaves nothing behind.
        if !self.finished {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl BlobWriter<'_> {
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        self.hasher.update(data);
        self.len += data.len() as u64;
        self.file
            .write_all(data)
            .map_err(Error::io("write temp blob", &self.path))
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Another handle on the temp file, for an unpack reading the blob while it is written.
    pub fn reading_handle(&self) -> Result<File> {
        File::open(&self.path).map_err(Error::io("reopen temp blob", &self.path))
    }

    /// The digest of everything written so far.
    pub fn digest(&self) -> String {
        self.hasher.clone().finish()
    }

    /// Verify against `expected` (`what` names the blob in the error: "layer", "config"…), fsync
    /// and move into place. On mismatch the temp file is removed and nothing enters the store.
    pub fn commit(mut self, what: &'static str, expected: &str) -> Result<()> {
        let actual = self.digest();
        if actual != expected {
            return Err(Error::DigestMismatch {
                what,
                digest: expected.to_string(),
                actual,
            });
        }
        self.store.commit_temp(&self.file, &self.path, expected)?;
        self.finished = true;
        Ok(())
    }

    /// Throw the partial blob away.
    pub fn abort(self) {
        drop(self)
    }
}

fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("fsync directory", dir))
}

/// Write `data` to `path` atomically: temp file beside it, fsync, rename, fsync the directory.
pub fn write_file_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io("write", &tmp)(e));
    }
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io("rename into place", path)(e)
    })?;
    fsync_dir(dir)
}

enum LockMode {
    Shared,
    Exclusive,
}

/// Open (creating) the lock file at `path` and take the lock.
fn open_locked(path: &Path, mode: LockMode, step: &'static str) -> Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(Error::io(step, path))?;
    flock(&file, mode, path)?;
    Ok(file)
}

fn flock(file: &File, mode: LockMode, path: &Path) -> Result<()> {
    let op = match mode {
        LockMode::Shared => libc::LOCK_SH,
        LockMode::Exclusive => libc::LOCK_EX,
    };
    loop {
        // SAFETY: flock on a file descriptor we own for the lifetime of `file`; no memory involved.
        let r = unsafe { libc::flock(file.as_raw_fd(), op) };
        if r == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(Error::StoreLock {
                path: path.to_path_buf(),
                reason: e.to_string(),
            });
        }
    }
}

impl Store {
    /// Open (creating if needed) the store named by the context and take a shared lock.
    pub fn open(ctx: &Context) -> Result<Store> {
        Store::open_at(&ctx.store_dir)
    }

    /// Open an existing store as it is, for `fsck`: nothing is created (but the lock file) and
    /// nothing swept, so that what dead processes left is reported rather than cleared.
    pub fn open_existing(root: &Path) -> Result<Store> {
        if !root.join("oci-layout").is_file() && !root.join(".imgtool").is_dir() {
            return Err(Error::StoreCorrupt {
                path: root.to_path_buf(),
                reason: "not an imgtool store (no oci-layout, no .imgtool)".into(),
            });
        }
        let meta = root.join(".imgtool");
        fs::create_dir_all(&meta).map_err(Error::io("create store directory", &meta))?;
        Ok(Store {
            root: root.to_path_buf(),
            lock: lock_handle(root)?,
        })
    }

    /// Open (creating if needed) the store at `root` and take a shared lock.
    pub fn open_at(root: &Path) -> Result<Store> {
        let meta = root.join(".imgtool");
        for d in [
            root.join("blobs/sha256"),
            meta.join("tmp"),
            meta.join("diffids"),
        ] {
            fs::create_dir_all(&d).map_err(Error::io("create store directory", &d))?;
        }
        let lock = lock_handle(root)?;
        let store = Store {
            root: root.to_path_buf(),
            lock,
        };
        store.sweep_dead_temp_files();
        if !root.join("oci-layout").exists() || !root.join("index.json").exists() {
            store.with_exclusive(|_| Ok(()))?;
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with this digest is (or would be). Errors on a malformed digest, so a
    /// digest from a manifest can never name a path outside `blobs/sha256`.
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        let hex = check_digest(digest)?;
        Ok(self.root.join("blobs/sha256").join(hex))
    }

    /// Whether a (complete, verified) blob is present.
    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).map(|p| p.exists()).unwrap_or(false)
    }

    /// Read a small blob (manifest, config) and check its digest again: these are tiny and a
    /// corrupted one would mislead everything after it.
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.blob_path(digest)?;
        let data = fs::read(&path).map_err(Error::io("read blob", &path))?;
        let actual = crate::verify::sha256_digest(&data);
        if actual != digest {
            return Err(Error::StoreCorrupt {
                path,
                reason: format!("content digest is {actual}"),
            });
        }
        Ok(data)
    }

    /// Store a small blob held in memory, verified against `expected`.
    pub fn put_blob(&self, what: &'static str, expected: &str, data: &[u8]) -> Result<()> {
        check_digest(expected)?;
        if self.has_blob(expected) {
            return Ok(());
        }
        let mut w = self.blob_writer()?;
        w.write(data)?;
        w.commit(what, expected)
    }

    /// Start writing a blob into a temp file.
    pub fn blob_writer(&self) -> Result<BlobWriter<'_>> {
        let path = self.root.join(".imgtool/tmp").join(format!(
            "{}-{}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .map_err(Error::io("create temp blob", &path))?;
        Ok(BlobWriter {
            store: self,
            file,
            path,
            hasher: Hasher::default(),
            len: 0,
            finished: false,
        })
    }

    fn commit_temp(&self, file: &File, tmp: &Path, digest: &str) -> Result<()> {
        file.sync_all().map_err(Error::io("fsync temp blob", tmp))?;
        let dest = self.blob_path(digest)?;
        fs::rename(tmp, &dest).map_err(|e| {
            let _ = fs::remove_file(tmp);
            Error::io("move blob into store", &dest)(e)
        })?;
        fsync_dir(dest.parent().unwrap_or(&self.root))
    }

    /// The diff_id recorded when this layer blob was verified, if any.
    pub fn cached_diff_id(&self, layer_digest: &str) -> Option<String> {
        let hex = check_digest(layer_digest).ok()?;
        let s = fs::read_to_string(self.root.join(".imgtool/diffids").join(hex)).ok()?;
        let s = s.trim().to_string();
        check_digest(&s).ok()?;
        Some(s)
    }

    /// Remember a layer's verified diff_id (computed from its content, never taken from a config).
    pub fn record_diff_id(&self, layer_digest: &str, diff_id: &str) -> Result<()> {
        let hex = check_digest(layer_digest)?;
        write_file_atomic(
            &self.root.join(".imgtool/diffids").join(hex),
            diff_id.as_bytes(),
        )
    }

    /// The layer's diff_id from its content: from the cache, else computed from the blob and
    /// recorded.
    pub fn diff_id(&self, layer_digest: &str) -> Result<String> {
        if let Some(d) = self.cached_diff_id(layer_digest) {
            return Ok(d);
        }
        let d = crate::verify::diff_id_of_file(&self.blob_path(layer_digest)?)?;
        self.record_diff_id(layer_digest, &d)?;
        Ok(d)
    }

    /// The image entries of `index.json` (one per name, plus dangling images), without the
    /// signatures kept beside them.
    pub fn entries(&self) -> Result<Vec<Descriptor>> {
        Ok(self
            .all_entries()?
            .into_iter()
            .filter(is_image_entry)
            .collect())
    }

    /// Every entry of `index.json`, images and attachments.
    fn all_entries(&self) -> Result<Vec<Descriptor>> {
        let path = self.root.join("index.json");
        let data = fs::read(&path).map_err(Error::io("read", &path))?;
        let idx: ImageIndex = serde_json::from_slice(&data).map_err(|e| Error::StoreCorrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Ok(idx.manifests().clone())
    }

    /// Run `f` on the index entries (images and attachments) under the index lock and write
    /// them back atomically if `f` changed them.
    pub fn with_exclusive<R>(
        &self,
        f: impl FnOnce(&mut Vec<Descriptor>) -> Result<R>,
    ) -> Result<R> {
        let path = self.root.join(".imgtool/index.lock");
        let _held = open_locked(&path, LockMode::Exclusive, "open index lock")?;
        // Unlocked when `_held` is closed at the end of this function.
        self.index_section(f)
    }

    fn index_section<R>(&self, f: impl FnOnce(&mut Vec<Descriptor>) -> Result<R>) -> Result<R> {
        self.sweep_dead_temp_files();
        let layout = self.root.join("oci-layout");
        if !layout.exists() {
            write_file_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        let index_path = self.root.join("index.json");
        let before = if index_path.exists() {
            self.all_entries()?
        } else {
            Vec::new()
        };
        let mut entries = before.clone();
        let r = f(&mut entries)?;
        drop_unattached_signatures(&mut entries);
        if entries != before || !index_path.exists() {
            self.write_index(&entries)?;
        }
        Ok(r)
    }

    fn write_index(&self, entries: &[Descriptor]) -> Result<()> {
        let idx = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(entries.to_vec())
            .build()
            .map_err(|e| Error::Other(format!("build index.json: {e}")))?;
        let data = serde_json::to_vec_pretty(&idx)
            .map_err(|e| Error::Other(format!("serialise index.json: {e}")))?;
        write_file_atomic(&self.root.join("index.json"), &data)
    }

    /// What opening the store does first, for commands that find a store without opening it
    /// (`bundle rm` of a bundle made from it).
    pub fn sweep(&self) {
        self.sweep_dead_temp_files();
    }

    /// Remove temp files and extraction dirs whose writer process is gone. Safe at any time:
    /// a dead process writes nothing more, and live writers' files are left alone.
    fn sweep_dead_temp_files(&self) {
        for t in self.temp_entries() {
            if t.owner.is_some_and(|pid| !process_alive(pid)) {
                let _ = remove_path(&t.path);
            }
        }
    }

    /// Everything a writer keeps in the store only until it finishes: temp blobs and archive
    /// extraction dirs in `.imgtool/tmp`, atomic-replace temp files beside `index.json`,
    /// `oci-layout` and the diff_id records, and overlay layers being extracted. Each with the
    /// pid its name carries (none for a name in `.imgtool/tmp` that carries none).
    pub fn temp_entries(&self) -> Vec<TempEntry> {
        let mut out = Vec::new();
        // In tmp/ every entry is a temp file; elsewhere only `.x.tmp-<pid>-<n>` ones are.
        let dirs = [
            (self.root.join(".imgtool/tmp"), true),
            (self.root.join(".imgtool/diffids"), false),
            (self.root.clone(), false),
        ];
        for (dir, all_temp) in dirs {
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !all_temp && !name.contains(".tmp-") {
                    continue;
                }
                out.push(TempEntry {
                    path: e.path(),
                    owner: temp_owner(&name),
                });
            }
        }
        // An overlay layer being extracted is `.tmp-<chain id>-<pid>` (the pid last).
        if let Ok(rd) = fs::read_dir(self.root.join(LAYER_CACHE)) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(rest) = name.strip_prefix(".tmp-") {
                    out.push(TempEntry {
                        path: e.path(),
                        owner: rest.rsplit('-').next().and_then(|p| p.parse().ok()),
                    });
                }
            }
        }
        out
    }

    /// Blobs reachable from the index: each manifest, its config and layers (and, for an
    /// index entry, the manifests it lists when present).
    fn referenced_blobs(&self, entries: &[Descriptor]) -> Result<BTreeSet<String>> {
        let mut keep = BTreeSet::new();
        let mut todo: Vec<String> = entries.iter().map(|d| d.digest().to_string()).collect();
        while let Some(d) = todo.pop() {
            if !keep.insert(d.clone()) || !self.has_blob(&d) {
                continue;
            }
            let data = self.read_blob(&d)?;
            let v: serde_json::Value = serde_json::from_slice(&data).unwrap_or_default();
            if let Some(c) = v.pointer("/config/digest").and_then(|x| x.as_str()) {
                keep.insert(c.to_string());
            }
            for key in ["layers", "manifests"] {
                if let Some(arr) = v.get(key).and_then(|x| x.as_array()) {
                    for l in arr {
                        if let Some(ld) = l.get("digest").and_then(|x| x.as_str()) {
                            if key == "manifests" {
                                todo.push(ld.to_string());
                            } else {
                                keep.insert(ld.to_string());
                            }
                        }
                    }
                }
            }
        }
        Ok(keep)
    }

    /// Remove every blob (and diff_id record) no index entry reaches. Returns how many blobs
    /// were removed. Waits until no other imgtool has the store open (the GC lock).
    pub fn gc(&self) -> Result<usize> {
        self.with_gc_lock(|| self.with_exclusive(|entries| self.gc_section(entries)))
    }

    /// `gc`, but only if no other imgtool has the store open right now; `None` when one has
    /// (its blobs are then left for the next `rmi` or `fsck --repair`).
    pub fn try_gc(&self) -> Result<Option<usize>> {
        let h = &self.lock;
        let _serialised = h.exclusive.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: flock on a descriptor owned by `h` for its lifetime; no memory involved.
        if unsafe { libc::flock(h.file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Ok(None);
        }
        let r = self.with_exclusive(|entries| self.gc_section(entries));
        let back = flock(&h.file, LockMode::Shared, &h.path);
        let r = r?;
        back?;
        Ok(Some(r))
    }

    /// Run `f` while no other imgtool has the store open: the shared GC lock every `Store`
    /// holds is converted to exclusive (waiting for the others) and back afterwards.
    pub fn with_gc_lock<R>(&self, f: impl FnOnce() -> Result<R>) -> Result<R> {
        let h = &self.lock;
        let _serialised = h.exclusive.lock().unwrap_or_else(|p| p.into_inner());
        flock(&h.file, LockMode::Exclusive, &h.path)?;
        let r = f();
        let back = flock(&h.file, LockMode::Shared, &h.path);
        let r = r?;
        back?;
        Ok(r)
    }

    fn gc_section(&self, entries: &[Descriptor]) -> Result<usize> {
        let keep = self.referenced_blobs(entries)?;
        let mut removed = 0;
        let blobs = self.root.join("blobs/sha256");
        let rd = fs::read_dir(&blobs).map_err(Error::io("list blobs", &blobs))?;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !keep.contains(&format!("sha256:{name}")) {
                fs::remove_file(e.path()).map_err(Error::io("remove blob", e.path()))?;
                let _ = fs::remove_file(self.root.join(".imgtool/diffids").join(&name));
                removed += 1;
            }
        }
        let diffids = self.root.join(".imgtool/diffids");
        if let Ok(rd) = fs::read_dir(&diffids) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !name.starts_with('.') && !keep.contains(&format!("sha256:{name}")) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        fsync_dir(&blobs)?;
        Ok(removed)
    }
}

/// Remove the attachment entries whose image has no entry left: signatures go with the
/// last name (or dangling entry) of the manifest they sign.
fn drop_unattached_signatures(entries: &mut Vec<Descriptor>) {
    let images: BTreeSet<String> = entries
        .iter()
        .filter(|e| is_image_entry(e))
        .map(|e| e.digest().to_string())
        .collect();
    entries.retain(
        |e| match entry_name(e).and_then(crate::trust::sigstore::signed_digest) {
            Some(signed) => images.contains(&signed),
            None => true,
        },
    );
}

/// A temp file or directory in the store and the pid of the process writing it.
pub struct TempEntry {
    pub path: PathBuf,
    pub owner: Option<i32>,
}

/// Remove a file, or a directory with everything in it.
pub fn remove_path(p: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The pid a temp file name carries: `<pid>-<n>` (blob temp files), `extract-<pid>-…`
/// (archive extraction dirs), `.<name>.tmp-<pid>-<n>` (atomic file replacement).
fn temp_owner(name: &str) -> Option<i32> {
    let rest = if let Some(r) = name.strip_prefix("extract-") {
        r
    } else if let Some(i) = name.find(".tmp-") {
        &name[i + 5..]
    } else if name.starts_with(|c: char| c.is_ascii_digit()) {
        name
    } else {
        return None;
    };
    rest.split('-').next()?.parse().ok()
}

pub fn process_alive(pid: i32) -> bool {
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(nix::errno::Errno::ESRCH) => false,
        // EPERM: it exists but is not ours to signal.
        Err(_) => true,
    }
}

/// A small blob (manifest, config, signature) of the OCI layout at `dir` (an `oci:` directory,
/// an extracted archive, the store), checked against its digest; a damaged one is an error
/// naming its file (`what` says what it is).
pub fn read_layout_blob(dir: &Path, digest: &str, what: &'static str) -> Result<Vec<u8>> {
    let p = dir.join("blobs/sha256").join(check_digest(digest)?);
    let data = fs::read(&p).map_err(Error::io("read blob", &p))?;
    let actual = crate::verify::sha256_digest(&data);
    if actual != digest {
        return Err(Error::Source {
            source_name: p.display().to_string(),
            reason: format!("{what} {digest}: digest mismatch, got {actual}"),
        });
    }
    Ok(data)
}

/// The name annotation of an index entry, if it has one.
pub fn entry_name(d: &Descriptor) -> Option<&str> {
    d.annotations()
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_REF_NAME))
        .map(String::as_str)
}

/// Whether an index entry is an image rather than the signatures kept beside one.
pub fn is_image_entry(d: &Descriptor) -> bool {
    !entry_name(d).is_some_and(crate::trust::sigstore::is_attachment_tag)
}

/// An annotation of an index entry.
pub fn entry_annotation<'d>(d: &'d Descriptor, key: &str) -> Option<&'d str> {
    d.annotations()
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// A manifest descriptor for the index, with the given annotations.
pub fn index_entry(
    media_type: &str,
    digest: &str,
    size: u64,
    annotations: HashMap<String, String>,
) -> Result<Descriptor> {
    let digest: oci_spec::image::Digest = digest.parse().map_err(|e| Error::Parse {
        what: format!("digest {digest:?}"),
        reason: format!("{e}"),
    })?;
    let mut d = Descriptor::new(MediaType::from(media_type), size, digest);
    if !annotations.is_empty() {
        d.set_annotations(Some(annotations));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(digest: &str, name: &str) -> Descriptor {
        let ann = HashMap::from([(ANNOTATION_REF_NAME.to_string(), name.to_string())]);
        index_entry(crate::manifest::OCI_MANIFEST, digest, 1, ann).unwrap()
    }

    #[test]
    fn signatures_stay_while_their_image_has_an_entry_and_go_with_the_last() {
        let (img, att) = (
            format!("sha256:{}", "a".repeat(64)),
            format!("sha256:{}", "b".repeat(64)),
        );
        let sig = entry(&att, &format!("sha256-{}.sig", "a".repeat(64)));
        let mut entries = vec![entry(&img, "r/x:1"), entry(&img, "r/x:2"), sig.clone()];
        entries.remove(0);
        drop_unattached_signatures(&mut entries);
        assert_eq!(entries.len(), 2, "another name still holds the image");
        entries.remove(0);
        drop_unattached_signatures(&mut entries);
        assert!(entries.is_empty(), "{entries:?}");
    }

    #[test]
    fn the_store_lists_images_without_the_signatures_kept_beside_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_at(dir.path()).unwrap();
        let img = format!("sha256:{}", "a".repeat(64));
        let sig = entry(
            &format!("sha256:{}", "b".repeat(64)),
            &format!("sha256-{}.sig", "a".repeat(64)),
        );
        store
            .with_exclusive(|e| {
                e.push(entry(&img, "r/x:1"));
                e.push(sig.clone());
                Ok(())
            })
            .unwrap();
        assert_eq!(store.entries().unwrap().len(), 1);
        assert_eq!(store.all_entries().unwrap().len(), 2);
        store
            .with_exclusive(|e| {
                e.retain(|d| d.digest().to_string() != img);
                Ok(())
            })
            .unwrap();
        assert!(store.all_entries().unwrap().is_empty());
    }
}
