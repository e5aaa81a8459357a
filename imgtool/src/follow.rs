//! A layer read while it downloads: the pull writes the blob into its temp file in the store as
//! usual and reports how far it got; an unpack reads the same file behind it. So a cold
//! `imgtool unpack REGISTRY/IMAGE DIR` decompresses and applies each layer while its bytes are
//! still arriving instead of after the whole pull (the one pass `socket → sha256 → decompress →
//! apply` of the design).
//!
//! Nothing read this way is trusted early: the unpack hashes the uncompressed stream (diff_id)
//! itself, and a layer whose blob digest turns out wrong when its download ends is reported to
//! the reader as an error, which fails the unpack and removes its partial rootfs.
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use oci_spec::image::Descriptor;

/// How a pull talks to the unpack following it: the layers once known, and a flag the unpack
/// raises when it gives up (an error, Ctrl-C), which stops the downloads.
pub struct Announce {
    pub layers: Sender<Vec<FollowedLayer>>,
    pub cancel: Arc<AtomicBool>,
}

impl Announce {
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }
}

/// A layer of an image being pulled, as announced to the unpack when the pull knows its
/// manifest and config.
#[derive(Debug, Clone)]
pub struct FollowedLayer {
    pub descriptor: Descriptor,
    /// The config's rootfs.diff_ids entry (checked by the unpack's own hash).
    pub diff_id: String,
    pub follow: Arc<Follow>,
}

/// The writer's side, shared with the readers.
#[derive(Default)]
pub struct Follow {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// The file holding the blob's first `len` bytes (the temp file, later renamed into place).
    file: Option<Arc<File>>,
    len: u64,
    /// `Some(Ok)` once every byte is there and the blob digest checked out.
    end: Option<Result<(), String>>,
}

/// How often a waiting reader looks at the interrupt flag.
const INTERRUPT_POLL: std::time::Duration = std::time::Duration::from_millis(50);

impl std::fmt::Debug for Follow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.lock();
        f.debug_struct("Follow")
            .field("len", &st.len)
            .field("end", &st.end)
            .finish()
    }
}

impl Follow {
    pub fn new() -> Arc<Follow> {
        Arc::new(Follow::default())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.lock());
        self.changed.notify_all();
    }

    /// The blob is (again) being written from byte 0 into `file`. After a restart the content
    /// is the same blob, so a reader further along simply waits for the new file to catch up.
    pub fn restart(&self, file: File) {
        self.update(|st| {
            st.file = Some(Arc::new(file));
            st.len = 0;
        });
    }

    /// The first `len` bytes are written.
    pub fn grew(&self, len: u64) {
        self.update(|st| st.len = len);
    }

    /// The blob is complete and verified at `path` (it may have been in the store already).
    pub fn finish(&self, path: &Path) {
        let reopened = File::open(path).and_then(|f| Ok((f.metadata()?.len(), f)));
        self.update(|st| match reopened {
            Ok((len, f)) => {
                st.file = Some(Arc::new(f));
                st.len = len;
                st.end = Some(Ok(()));
            }
            Err(e) => st.end = Some(Err(format!("open {}: {e}", path.display()))),
        });
    }

    /// The download failed (or ended without finishing this blob): readers get `why`.
    pub fn fail(&self, why: String) {
        self.update(|st| {
            if !matches!(st.end, Some(Ok(()))) {
                st.end = Some(Err(why));
            }
        });
    }

    pub fn reader(self: &Arc<Self>) -> FollowReader {
        FollowReader {
            follow: Arc::clone(self),
            pos: 0,
        }
    }
}

/// Reads a followed blob from the start, waiting for bytes that are not written yet.
pub struct FollowReader {
    follow: Arc<Follow>,
    pos: u64,
}

impl Read for FollowReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut st = self.follow.lock();
        loop {
            // Ctrl-C must not wait for a slow download to deliver the rest of a big file.
            if crate::interrupt::interrupted() {
                // Not ErrorKind::Interrupted: read loops retry that one.
                return Err(io::Error::other("interrupted by a signal"));
            }
            if let Some(Err(why)) = &st.end {
                return Err(io::Error::other(why.clone()));
            }
            if self.pos < st.len {
                if let Some(file) = st.file.clone() {
                    let want = buf.len().min((st.len - self.pos) as usize);
                    drop(st);
                    let n = file.read_at(&mut buf[..want], self.pos)?;
                    self.pos += n as u64;
                    return Ok(n);
                }
            }
            if matches!(st.end, Some(Ok(()))) {
                return Ok(0);
            }
            st = self
                .follow
                .changed
                .wait_timeout(st, INTERRUPT_POLL)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reader_follows_writes_restarts_and_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let follow = Follow::new();
        let mut r = follow.reader();
        let writer = {
            let follow = Arc::clone(&follow);
            let dir = dir.path().to_path_buf();
            std::thread::spawn(move || {
                let p1 = dir.join("t1");
                let mut f = File::create(&p1).unwrap();
                // A read handle, as the pull gives (BlobWriter::reading_handle).
                follow.restart(File::open(&p1).unwrap());
                f.write_all(b"hello ").unwrap();
                follow.grew(6);
                std::thread::sleep(std::time::Duration::from_millis(20));
                // The connection dropped: start over in a new file with the same content.
                let p2 = dir.join("t2");
                let mut f = File::create(&p2).unwrap();
                follow.restart(File::open(&p2).unwrap());
                for (i, part) in [&b"hello "[..], b"world"].into_iter().enumerate() {
                    f.write_all(part).unwrap();
                    follow.grew(if i == 0 { 6 } else { 11 });
                }
                follow.finish(&p2);
            })
        };
        let mut got = String::new();
        r.read_to_string(&mut got).unwrap();
        writer.join().unwrap();
        assert_eq!(got, "hello world");
    }

    #[test]
    fn a_failed_download_is_a_read_error() {
        let follow = Follow::new();
        let mut r = follow.reader();
        let f2 = Arc::clone(&follow);
        std::thread::spawn(move || f2.fail("digest mismatch".into()));
        let err = r.read(&mut [0u8; 4]).unwrap_err();
        assert!(err.to_string().contains("digest mismatch"));
    }
}
