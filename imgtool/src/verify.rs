//! Digests and compression: sha256 of blobs, the magic-number sniffing and decoders every layer
//! reader uses, and the diff_id of a decompressed layer: of a file, or (`pull
//! --verify-diff-ids`) on a helper thread while the compressed bytes arrive.
use std::io::{self, Read};
use std::path::Path;
use std::sync::mpsc;

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// `sha256:<hex>` of a byte slice.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

/// A digest string is `sha256:` followed by 64 lowercase hex digits; nothing else is accepted
/// because blob paths are built from it.
pub fn check_digest(digest: &str) -> Result<&str> {
    let hex = digest.strip_prefix("sha256:").ok_or_else(|| Error::Parse {
        what: format!("digest {digest:?}"),
        reason: "only sha256 digests are supported".into(),
    })?;
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(Error::Parse {
            what: format!("digest {digest:?}"),
            reason: "expected sha256: and 64 lowercase hex digits".into(),
        });
    }
    Ok(hex)
}

/// A running sha256 that yields `sha256:<hex>`.
#[derive(Clone, Default)]
pub struct Hasher(Sha256);

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    pub fn finish(self) -> String {
        format!("sha256:{:x}", self.0.finalize())
    }
}

/// How a layer blob is compressed. Detected from its first bytes rather than trusted from the
/// media type: registries and archives mislabel layers, the magic numbers do not lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Wrap `reader` (positioned at the start of a layer blob) in the right decompressor.
/// Public for the unpack work: it reads verified blobs from the store through this.
pub fn decompressed(reader: impl Read + Send + 'static) -> io::Result<Box<dyn Read + Send>> {
    let mut reader = io::BufReader::with_capacity(1 << 20, reader);
    let head = io::BufRead::fill_buf(&mut reader)?;
    Ok(match Compression::detect(head) {
        // Multi-member: pigz and some builders write several gzip members back to back.
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(reader)?),
        Compression::None => Box::new(reader),
    })
}

/// sha256 of the decompressed content of a reader: the layer's diff_id.
pub fn diff_id_of(reader: impl Read + Send + 'static) -> io::Result<String> {
    let mut h = HashingReader::new(decompressed(reader)?);
    io::copy(&mut h, &mut io::sink())?;
    Ok(h.finish())
}

/// `actual` (a diff_id computed from `layer`'s content) if it is the one the image config
/// promises, else the mismatch error naming the layer.
pub fn expect_diff_id(layer: &str, expected: &str, actual: String) -> Result<String> {
    if actual != expected {
        return Err(Error::DiffIdMismatch {
            layer: layer.to_string(),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(actual)
}

/// A reader that hashes what passes through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::default(),
        }
    }

    /// `sha256:<hex>` of everything read so far.
    pub fn finish(self) -> String {
        self.hasher.finish()
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// diff_id of a blob file in the store.
pub fn diff_id_of_file(path: &Path) -> Result<String> {
    let f = std::fs::File::open(path).map_err(Error::io("open layer blob", path))?;
    diff_id_of(f).map_err(Error::io("decompress layer blob", path))
}

/// Reads the chunks sent over a channel as one byte stream; EOF when the sender is dropped.
struct ChannelReader {
    rx: mpsc::Receiver<bytes::Bytes>,
    cur: bytes::Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.recv() {
                Ok(b) => self.cur = b,
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        bytes::Buf::advance(&mut self.cur, n);
        Ok(n)
    }
}

/// Computes a layer's diff_id on a helper thread from compressed chunks fed in order.
pub struct StreamingDiffId {
    tx: Option<mpsc::SyncSender<bytes::Bytes>>,
    thread: Option<std::thread::JoinHandle<io::Result<String>>>,
}

impl StreamingDiffId {
    pub fn start() -> StreamingDiffId {
        let (tx, rx) = mpsc::sync_channel::<bytes::Bytes>(64);
        let thread = std::thread::spawn(move || {
            diff_id_of(ChannelReader {
                rx,
                cur: bytes::Bytes::new(),
            })
        });
        StreamingDiffId {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    /// Feed the next compressed chunk. Blocks briefly when the decompressor lags behind, which
    /// is the back-pressure we want. A decompressor that already failed is reported by `finish`.
    pub fn feed(&mut self, chunk: bytes::Bytes) {
        if let Some(tx) = &self.tx {
            if tx.send(chunk).is_err() {
                self.tx = None;
            }
        }
    }

    /// End of the blob: the diff_id, or why the content does not decompress.
    pub fn finish(mut self) -> io::Result<String> {
        self.tx = None;
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            _ => Err(io::Error::other("diff_id thread panicked")),
        }
    }
}

impl Drop for StreamingDiffId {
    fn drop(&mut self) {
        // Closing the channel ends the helper thread; nobody waits for its result.
        self.tx = None;
    }
}
