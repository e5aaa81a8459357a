//! Regular files: small ones are read off the stream and handed to a writer thread, big ones
//! are streamed here; either way the file is created `O_EXCL|O_NOFOLLOW` in its resolved parent.
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::BorrowedFd;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::applier::{Applier, Ctx};
use crate::unpack::error::UnpackError;
use crate::unpack::meta::Meta;
use crate::unpack::resolve;
use crate::unpack::writer::{self, FileJob};

impl Applier {
    pub(super) fn write_file<R: Read>(
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
}
