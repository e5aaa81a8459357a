//! Regular files' contents and metadata written by a small pool of threads.
//!
//! The tar stream is read by one thread, and most of an unpack's time is the kernel copying file
//! data into the page cache. The reading thread creates each file itself (so names appear in tar
//! order and later entries — hardlinks, whiteouts, overwrites — see them), then hands the open
//! file and its bytes to a writer. Nothing later in the layer depends on a file's content or
//! metadata being done (a link shares the inode; an overwrite or whiteout unlinks the name and
//! the pending write lands in an orphan), so the only synchronisation is the join at the end of
//! the layer, before directory times are set or the rootfs is declared complete.
use std::collections::HashSet;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid};

use super::error::UnpackError;
use super::meta::Meta;

/// Files up to this size go to the pool; bigger ones are streamed by the reading thread, so the
/// memory held by queued jobs stays bounded (QUEUE × this).
pub const MAX_POOLED_FILE: u64 = 4 << 20;
const QUEUE: usize = 32;

/// Warnings already printed (shared by the reading thread and the writers).
pub type Warnings = Arc<Mutex<HashSet<String>>>;

pub fn warn_once(warnings: &Warnings, msg: String) {
    let mut w = warnings.lock().unwrap_or_else(|p| p.into_inner());
    if w.insert(msg.clone()) {
        errln!("imgtool: warning: {msg}");
    }
}

/// An xattr the filesystem (or, rootless, our privileges) cannot hold is a warning; anything
/// else is an error.
pub fn xattr_failure(
    warnings: &Warnings,
    rootless: bool,
    layer: &str,
    entry: &str,
    key: &CString,
    e: io::Error,
) -> Result<(), UnpackError> {
    let tolerable = match e.raw_os_error() {
        Some(libc::ENOTSUP) => true,
        Some(libc::EPERM) | Some(libc::EACCES) => rootless,
        _ => false,
    };
    if tolerable {
        warn_once(
            warnings,
            format!(
                "xattr {} not set on {entry:?} (layer {layer}) and similar: {e}",
                key.to_string_lossy()
            ),
        );
        Ok(())
    } else {
        Err(UnpackError::Apply {
            layer: layer.to_string(),
            entry: entry.to_string(),
            step: "set xattr",
            source: e,
            root: None,
        })
    }
}

/// Owner, then mode (chown clears setuid bits), then xattrs (chown also drops
/// `security.capability`), then times, on a file whose content is written.
pub fn finish_file(
    f: &File,
    meta: &Meta,
    rootless: bool,
    layer: &str,
    entry: &str,
    warnings: &Warnings,
) -> Result<(), UnpackError> {
    set_owner_mode_xattrs(f, meta, meta.mode, rootless, layer, entry, warnings)?;
    let atime = meta.atime.unwrap_or(meta.mtime);
    nix::sys::stat::futimens(f.as_fd(), &atime, &meta.mtime).map_err(apply_err(
        layer,
        entry,
        "set times",
    ))?;
    Ok(())
}

/// Owner (not rootless), then `mode`, then xattrs, on an open file or directory: the order
/// `finish_file` needs, shared with the directories the reading thread makes.
pub fn set_owner_mode_xattrs(
    f: &File,
    meta: &Meta,
    mode: u32,
    rootless: bool,
    layer: &str,
    entry: &str,
    warnings: &Warnings,
) -> Result<(), UnpackError> {
    if !rootless {
        nix::unistd::fchown(
            f.as_fd(),
            Some(Uid::from_raw(meta.uid as u32)),
            Some(Gid::from_raw(meta.gid as u32)),
        )
        .map_err(apply_err(layer, entry, "set owner"))?;
    }
    nix::sys::stat::fchmod(f.as_fd(), Mode::from_bits_truncate(mode))
        .map_err(apply_err(layer, entry, "set mode"))?;
    for (k, v) in &meta.xattrs {
        // SAFETY: `k` is a NUL-terminated C string and `v` a live buffer of `v.len()` bytes,
        // both outliving the call; the fd is open.
        let r =
            unsafe { libc::fsetxattr(f.as_raw_fd(), k.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
        if r != 0 {
            xattr_failure(
                warnings,
                rootless,
                layer,
                entry,
                k,
                io::Error::last_os_error(),
            )?;
        }
    }
    Ok(())
}

fn apply_err<'a>(
    layer: &'a str,
    entry: &'a str,
    step: &'static str,
) -> impl FnOnce(nix::Error) -> UnpackError + 'a {
    move |e| UnpackError::Apply {
        layer: layer.to_string(),
        entry: entry.to_string(),
        step,
        source: e.into(),
        root: None,
    }
}

/// A created file waiting for its bytes and metadata.
pub struct FileJob {
    pub file: File,
    pub data: Vec<u8>,
    pub meta: Meta,
    pub layer: Arc<str>,
    pub entry: String,
}

struct Shared {
    error: Mutex<Option<UnpackError>>,
    failed: AtomicBool,
}

pub struct WriterPool {
    tx: Option<SyncSender<FileJob>>,
    workers: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl WriterPool {
    pub fn new(threads: usize, rootless: bool, warnings: Warnings) -> io::Result<WriterPool> {
        let (tx, rx) = sync_channel::<FileJob>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let shared = Arc::new(Shared {
            error: Mutex::new(None),
            failed: AtomicBool::new(false),
        });
        let mut workers = Vec::new();
        for i in 0..threads.max(1) {
            let (rx, shared, warnings) = (rx.clone(), shared.clone(), warnings.clone());
            workers.push(
                std::thread::Builder::new()
                    .name(format!("layer-write-{i}"))
                    .spawn(move || loop {
                        let job = match rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
                            Ok(j) => j,
                            Err(_) => return,
                        };
                        if shared.failed.load(Ordering::Relaxed) {
                            continue;
                        }
                        let r = (&job.file)
                            .write_all(&job.data)
                            .map_err(|source| UnpackError::Apply {
                                layer: job.layer.to_string(),
                                entry: job.entry.clone(),
                                step: "write file",
                                source,
                                root: None,
                            })
                            .and_then(|()| {
                                finish_file(
                                    &job.file, &job.meta, rootless, &job.layer, &job.entry,
                                    &warnings,
                                )
                            });
                        if let Err(e) = r {
                            let mut slot = shared.error.lock().unwrap_or_else(|p| p.into_inner());
                            if slot.is_none() {
                                *slot = Some(e);
                            }
                            shared.failed.store(true, Ordering::Relaxed);
                        }
                    })?,
            );
        }
        Ok(WriterPool {
            tx: Some(tx),
            workers,
            shared,
        })
    }

    /// Queue a file; fails early when a writer has already failed.
    pub fn submit(&self, job: FileJob) -> Result<(), UnpackError> {
        if self.shared.failed.load(Ordering::Relaxed) {
            return self.finish_error();
        }
        if let Some(tx) = &self.tx {
            // A send only fails when every worker is gone, which they never are while `tx` lives.
            let _ = tx.send(job);
        }
        Ok(())
    }

    fn finish_error(&self) -> Result<(), UnpackError> {
        match self
            .shared
            .error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Wait for every queued file; the first error of any writer.
    pub fn finish(mut self) -> Result<(), UnpackError> {
        self.join();
        self.finish_error()
    }

    fn join(&mut self) {
        self.tx = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Drop for WriterPool {
    fn drop(&mut self) {
        self.join();
    }
}
