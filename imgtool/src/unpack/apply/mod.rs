//! Apply the entries of one layer's tar stream to a directory, never outside it.
//!
//! Every entry's parent directory is resolved with `resolve::mkdir_all_beneath` (openat2
//! RESOLVE_BENEATH from the rootfs fd); the last component is then created, replaced or removed
//! with `*at` calls on that parent fd that never follow it. Metadata is set in the order the kernel
//! requires: content, owner (chown clears setuid bits and file capabilities), mode, xattrs
//! (incl. `security.capability`), then times. Directory times are set at the very end, because
//! creating children changes them.
//!
//! This file reads a layer's entries and hands each to the file of its kind (`file`, `dir`,
//! `link`, `node`, `whiteout`); `applier` holds the state they share and `attrs` the metadata
//! they all set.
mod applier;
mod attrs;
mod dir;
mod file;
mod link;
mod node;
#[cfg(test)]
mod tests;
mod whiteout;

use std::io::Read;
use std::os::fd::AsFd;
use std::sync::Arc;

use tar::EntryType;

use crate::unpack::error::UnpackError;
use crate::unpack::meta::{read_meta, record_rootless_owner};
use crate::unpack::resolve::CleanPath;
use crate::unpack::writer::WriterPool;
use applier::Ctx;
pub use applier::{Applier, ApplyOptions, WhiteoutMode};

impl Applier {
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

    pub(super) fn apply_entries<R: Read>(
        &mut self,
        layer: &str,
        tar_stream: R,
    ) -> Result<(), UnpackError> {
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

    pub(super) fn apply_entry<R: Read>(
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
}
