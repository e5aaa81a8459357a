//! A layer blob as a stream of uncompressed tar bytes, hashed on the way (the diff_id).
//!
//! Decompression runs on its own thread and hands whole chunks to the extracting thread through a
//! small bounded channel; the extracting thread hashes each chunk as it takes it. So gunzip/zstd
//! on one core overlaps sha256 and the filesystem writes on the other, in one pass over the blob
//! (decompression and sha256 on one thread made that thread the bottleneck for zstd layers).
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::JoinHandle;

use crate::verify::{Compression, Hasher};

/// The compression a layer media type promises; None when the media type is not a tar layer.
pub fn compression_for_media_type(media_type: &str) -> Option<Compression> {
    let mt = media_type.trim();
    match mt {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar"
        | "application/vnd.docker.image.rootfs.diff.tar"
        | "application/x-tar"
        | "" => Some(Compression::None),
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Some(Compression::Gzip),
        "application/vnd.oci.image.layer.v1.tar+zstd"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => Some(Compression::Zstd),
        _ => None,
    }
}

const CHUNK: usize = 1 << 20;

/// The uncompressed tar stream of a layer; `finish` drains it and returns the sha256 hex.
pub struct LayerStream {
    rx: Receiver<io::Result<Vec<u8>>>,
    /// Spent chunks go back to the decoder for reuse (no allocation or zeroing per chunk).
    spent: std::sync::mpsc::Sender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
    hasher: Hasher,
    worker: Option<JoinHandle<()>>,
}

impl LayerStream {
    pub fn open(path: &Path) -> io::Result<LayerStream> {
        LayerStream::from_reader(Box::new(File::open(path)?))
    }

    /// The layer blob read from `blob` (a file, or a download being followed).
    pub fn from_reader(blob: Box<dyn Read + Send>) -> io::Result<LayerStream> {
        // The bytes decide the decoder, not the media type (see `verify::Compression`).
        let decoder = crate::verify::decompressed(blob)?;
        let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(8);
        let (spent, recycled) = std::sync::mpsc::channel::<Vec<u8>>();
        let worker = std::thread::Builder::new()
            .name("layer-decode".into())
            .spawn(move || decode(decoder, tx, recycled))?;
        Ok(LayerStream {
            rx,
            spent,
            cur: Vec::new(),
            pos: 0,
            done: false,
            hasher: Hasher::default(),
            worker: Some(worker),
        })
    }

    /// Read whatever the tar reader left (trailing zero blocks, padding) so the digest covers the
    /// whole uncompressed blob, then return that digest as `sha256:<hex>`.
    pub fn finish(mut self) -> io::Result<String> {
        io::copy(&mut self, &mut io::sink())?;
        let worker = self.worker.take().expect("finish called once");
        worker
            .join()
            .map_err(|_| io::Error::other("layer decoder thread panicked"))?;
        Ok(std::mem::take(&mut self.hasher).finish())
    }
}

fn decode(
    mut decoder: Box<dyn Read + Send>,
    tx: std::sync::mpsc::SyncSender<io::Result<Vec<u8>>>,
    recycled: Receiver<Vec<u8>>,
) {
    loop {
        let mut buf = recycled.try_recv().unwrap_or_default();
        buf.resize(CHUNK, 0);
        let mut filled = 0;
        // Fill whole chunks: decoders return small reads and each channel hop has a cost.
        let res = loop {
            match decoder.read(&mut buf[filled..]) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    filled += n;
                    if filled == buf.len() {
                        break Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        buf.truncate(filled);
        let eof = filled == 0;
        if filled > 0 && tx.send(Ok(buf)).is_err() {
            break;
        }
        if let Err(e) = res {
            let _ = tx.send(Err(e));
            break;
        }
        if eof {
            break;
        }
    }
}

impl Read for LayerStream {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.hasher.update(&chunk);
                    let old = std::mem::replace(&mut self.cur, chunk);
                    let _ = self.spent.send(old);
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Ok(0);
                }
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Drop for LayerStream {
    fn drop(&mut self) {
        // Dropping the receiver makes the decoder's next send fail, so the thread ends promptly.
        if let Some(w) = self.worker.take() {
            let (_tx, rx) = sync_channel(0);
            self.rx = rx;
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};
    use std::io::Write;

    #[test]
    fn gzip_and_zstd_streams_hash_the_uncompressed_bytes() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let want = format!("sha256:{:x}", Sha256::digest(&data));
        let t = tempfile::tempdir().unwrap();
        let gz = t.path().join("l.gz");
        let mut e = flate2::write::GzEncoder::new(File::create(&gz).unwrap(), Default::default());
        e.write_all(&data).unwrap();
        e.finish().unwrap();
        let zs = t.path().join("l.zst");
        std::fs::write(&zs, zstd::encode_all(&data[..], 3).unwrap()).unwrap();
        let raw = t.path().join("l.tar");
        std::fs::write(&raw, &data).unwrap();
        for p in [gz, zs, raw] {
            let mut s = LayerStream::open(&p).unwrap();
            let mut first = vec![0u8; 1000];
            s.read_exact(&mut first).unwrap();
            assert_eq!(&first[..], &data[..1000]);
            assert_eq!(s.finish().unwrap(), want, "{}", p.display());
        }
    }

    #[test]
    fn corrupt_gzip_is_a_read_error() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("bad.gz");
        std::fs::write(&p, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3, 4, 5]).unwrap();
        let mut s = LayerStream::open(&p).unwrap();
        assert!(io::copy(&mut s, &mut io::sink()).is_err());
    }

    #[test]
    fn a_layer_media_type_promises_its_compression_and_any_other_type_is_no_layer() {
        let c = compression_for_media_type;
        assert_eq!(
            c("application/vnd.oci.image.layer.v1.tar"),
            Some(Compression::None)
        );
        assert_eq!(
            c("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            Some(Compression::Gzip)
        );
        assert_eq!(
            c(" application/vnd.oci.image.layer.v1.tar+zstd "),
            Some(Compression::Zstd)
        );
        assert_eq!(c("application/vnd.oci.image.config.v1+json"), None);
    }
}
