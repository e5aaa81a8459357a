//! What can go wrong while turning layers into a rootfs: every variant names the layer, and the
//! tar entry when there is one, so a user can find the culprit in the image.
use std::fmt;
use std::path::PathBuf;

/// Why an entry was refused as an attempt to write outside the rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Escape {
    /// The entry's path starts with `/`.
    AbsolutePath,
    /// The entry's path has a `..` component.
    DotDot,
    /// The path goes through a symlink (planted by an earlier entry or layer) that leads out of
    /// the rootfs.
    ThroughSymlink,
    /// A hardlink whose target is absolute, has `..`, or resolves outside the rootfs.
    HardlinkOutside(String),
    /// A whiteout whose name is empty, `.`/`..`, or that would remove the rootfs itself.
    BadWhiteout,
}

impl fmt::Display for Escape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Escape::AbsolutePath => write!(f, "absolute path"),
            Escape::DotDot => write!(f, "path has a \"..\" component"),
            Escape::ThroughSymlink => write!(
                f,
                "path goes through a symlink that leads out of the rootfs"
            ),
            Escape::HardlinkOutside(t) => write!(f, "hardlink target {t:?} is outside the rootfs"),
            Escape::BadWhiteout => write!(f, "whiteout names no entry inside the rootfs"),
        }
    }
}

#[derive(Debug)]
pub enum UnpackError {
    /// The layer blob file could not be opened.
    OpenLayer {
        layer: String,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The media type is not a tar layer we know.
    UnsupportedMediaType { layer: String, media_type: String },
    /// Decompression or tar framing failed (corrupt or truncated layer).
    ReadLayer {
        layer: String,
        source: std::io::Error,
    },
    /// An entry tried to escape the rootfs.
    Escape {
        layer: String,
        entry: String,
        why: Escape,
    },
    /// A tar entry type we cannot represent (e.g. GNU volume headers).
    UnsupportedEntry {
        layer: String,
        entry: String,
        kind: String,
    },
    /// A filesystem step failed while applying an entry.
    Apply {
        layer: String,
        entry: String,
        step: &'static str,
        source: std::io::Error,
        /// The directory the layer was applied into, once known (`under`): with it the
        /// message names the file on disk, which is what a full disk or a denied write is about.
        root: Option<PathBuf>,
    },
    /// The uncompressed layer does not hash to the diff_id the image config promises.
    DiffIdMismatch {
        layer: String,
        expected: String,
        actual: String,
    },
    /// A signal asked us to stop; the partial output is removed.
    Interrupted,
    /// Setting up or finishing the rootfs itself failed.
    Root {
        step: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl fmt::Display for UnpackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnpackError::OpenLayer { layer, path, source } => {
                write!(f, "layer {layer}: open blob {}: {source}", path.display())
            }
            UnpackError::UnsupportedMediaType { layer, media_type } => {
                write!(f, "layer {layer}: unsupported media type {media_type:?}")
            }
            // The tar reader quotes header fields as they are: a hostile layer's newlines stay
            // escaped, so the error is still one line (found by the layer fuzz target).
            UnpackError::ReadLayer { layer, source } => write!(
                f,
                "layer {layer}: read: {}",
                crate::error::printable(&source.to_string())
            ),
            UnpackError::Escape { layer, entry, why } => {
                write!(f, "layer {layer}: entry {entry:?} refused: {why}")
            }
            UnpackError::UnsupportedEntry { layer, entry, kind } => {
                write!(f, "layer {layer}: entry {entry:?}: unsupported tar entry type {kind}")
            }
            UnpackError::Apply { layer, entry, step, source, root: None } => {
                write!(f, "layer {layer}: entry {entry:?}: {step}: {source}")
            }
            UnpackError::Apply { layer, entry, step, source, root: Some(root) } => {
                let on_disk = root.join(entry.trim_start_matches('/'));
                write!(f, "layer {layer}: entry {entry:?}: {step} {}: {source}", on_disk.display())
            }
            UnpackError::DiffIdMismatch { layer, expected, actual } => write!(
                f,
                "layer {layer}: diff_id mismatch: image config says {expected}, layer content is {actual}"
            ),
            UnpackError::Interrupted => write!(f, "interrupted by a signal: partial bundle removed"),
            UnpackError::Root { step, path, source } => {
                write!(f, "{step} {}: {source}", path.display())
            }
        }
    }
}

impl UnpackError {
    /// Say which directory the layer was being applied into.
    pub fn under(self, dir: &std::path::Path) -> UnpackError {
        match self {
            UnpackError::Apply {
                layer,
                entry,
                step,
                source,
                root: None,
            } => UnpackError::Apply {
                layer,
                entry,
                step,
                source,
                root: Some(dir.to_path_buf()),
            },
            other => other,
        }
    }
}

impl std::error::Error for UnpackError {}

impl From<UnpackError> for crate::error::Error {
    fn from(e: UnpackError) -> Self {
        crate::error::Error::Unpack(e.to_string())
    }
}

#[cfg(test)]
mod one_line_tests {
    use super::*;

    #[test]
    fn a_read_error_quoting_a_hostile_header_field_is_one_line() {
        let e = UnpackError::ReadLayer {
            layer: "1 (sha256:abc)".into(),
            source: std::io::Error::other(
                "numeric field was not a number: \n12\u{1} when getting cksum for a\nb",
            ),
        };
        let msg = e.to_string();
        assert!(!msg.contains('\n'), "{msg}");
        assert!(msg.contains("for a\\nb"), "{msg}");
    }
}
