//! Layers → rootfs: each layer blob is read once, decompressed, hashed (diff_id) and applied
//! entry by entry into the rootfs, with every path resolved inside it.
pub mod apply;
pub mod copy_up;
pub mod error;
pub mod meta;
pub mod resolve;
pub mod stream;
pub mod tree;
pub mod writer;

use std::path::{Path, PathBuf};

pub use apply::{Applier, ApplyOptions, WhiteoutMode};
pub use error::UnpackError;

/// One layer to apply: its verified blob in the store and what the image says about it.
#[derive(Debug, Clone)]
pub struct LayerInput {
    pub blob: PathBuf,
    pub media_type: String,
    /// The blob digest (compressed), for messages.
    pub digest: String,
    /// `sha256:<hex>` of the uncompressed tar, from the image config's rootfs.diff_ids.
    pub diff_id: String,
    /// Set while the blob is still downloading: read it through this instead of `blob`.
    pub follow: Option<std::sync::Arc<crate::follow::Follow>>,
}

impl LayerInput {
    /// `3 (sha256:0123abcd…)`: position in the image (1-based) and short blob digest.
    pub fn label(&self, index: usize) -> String {
        let short: String = self.digest.chars().take(7 + 12).collect();
        format!("{} ({short})", index + 1)
    }
}

/// Apply `layers` in order into `rootfs` (an existing directory, normally empty). On error the
/// caller removes the partial rootfs; nothing is ever written outside it.
pub fn unpack_layers(
    rootfs: &Path,
    layers: &[LayerInput],
    opts: ApplyOptions,
) -> Result<(), UnpackError> {
    let mut applier = Applier::new(rootfs, opts)?;
    for (i, layer) in layers.iter().enumerate() {
        apply_layer(&mut applier, &layer.label(i), layer).map_err(|e| e.under(rootfs))?;
    }
    applier.finish().map_err(|e| e.under(rootfs))
}

/// One pass over one blob: read → decompress → sha256 → tar → apply; then check the diff_id.
pub fn apply_layer(
    applier: &mut Applier,
    label: &str,
    layer: &LayerInput,
) -> Result<(), UnpackError> {
    if stream::compression_for_media_type(&layer.media_type).is_none() {
        return Err(UnpackError::UnsupportedMediaType {
            layer: label.to_string(),
            media_type: layer.media_type.clone(),
        });
    }
    let opened = match &layer.follow {
        Some(f) => stream::LayerStream::from_reader(Box::new(f.reader())),
        None => stream::LayerStream::open(&layer.blob),
    };
    let mut s = opened.map_err(|source| UnpackError::OpenLayer {
        layer: label.to_string(),
        path: layer.blob.clone(),
        source,
    })?;
    applier.apply_layer(label, &mut s)?;
    let actual = s.finish().map_err(|source| UnpackError::ReadLayer {
        layer: label.to_string(),
        source,
    })?;
    if actual != layer.diff_id {
        return Err(UnpackError::DiffIdMismatch {
            layer: label.to_string(),
            expected: layer.diff_id.clone(),
            actual,
        });
    }
    Ok(())
}
