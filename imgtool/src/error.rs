//! imgtool's error type: one variant per step that can fail, each naming the step, the thing it
//! worked on (path, digest, reference) and why, in one line. `main` prints `imgtool: <error>`.
use std::path::PathBuf;

/// Text from outside (a key of an auth file, a tar header field quoted by the tar reader) as it
/// may appear in a one-line message: control characters escaped (`\n`, `\u{1}`), the rest kept.
pub fn printable(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A catch-all for callers that have nothing better; prefer a specific variant.
    #[error("{0}")]
    Other(String),

    /// Failures inside the unpack/bundle work (issue 6) that have no variant of their own.
    #[error("{0}")]
    Unpack(String),

    /// An I/O failure with the step and path it happened on.
    #[error("{step} {}: {source}", path.display())]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An I/O failure without more context (from `?` on a bare `std::io::Error`).
    #[error("I/O error: {0}")]
    PlainIo(#[from] std::io::Error),

    #[error("invalid reference {input:?}: {reason}")]
    InvalidReference { input: String, reason: String },

    #[error("invalid platform {input:?}: expected os/arch[/variant]")]
    InvalidPlatform { input: String },

    #[error("invalid argument {arg}: {reason}")]
    InvalidArgument { arg: &'static str, reason: String },

    #[error("lock store {}: {reason}", path.display())]
    StoreLock { path: PathBuf, reason: String },

    #[error("store {}: {reason}", path.display())]
    StoreCorrupt { path: PathBuf, reason: String },

    #[error(
        "store {}: damaged: {corrupt} corrupt and {missing} missing (listed above)",
        path.display()
    )]
    StoreDamaged {
        path: PathBuf,
        corrupt: usize,
        missing: usize,
    },

    #[error("parse {what}: {reason}")]
    Parse { what: String, reason: String },

    #[error("{what} {digest}: digest mismatch, got {actual}")]
    DigestMismatch {
        what: &'static str,
        digest: String,
        actual: String,
    },

    #[error(
        "layer {layer}: diff_id mismatch: image config says {expected}, layer content is {actual}"
    )]
    DiffIdMismatch {
        layer: String,
        expected: String,
        actual: String,
    },

    #[error(
        "image {image}: manifest lists {layers} layers but config rootfs.diff_ids has {diff_ids}"
    )]
    LayerCountMismatch {
        image: String,
        layers: usize,
        diff_ids: usize,
    },

    #[error("{what} {digest}: unsupported media type {media_type:?}")]
    UnsupportedMediaType {
        what: &'static str,
        digest: String,
        media_type: String,
    },

    #[error("{reference}: no image for platform {platform} (available: {available})")]
    NoMatchingPlatform {
        reference: String,
        platform: String,
        available: String,
    },

    #[error("{reference}: {step}: {reason}")]
    Registry {
        reference: String,
        step: &'static str,
        reason: String,
    },

    #[error("{registry}: authentication failed: {reason}")]
    Auth { registry: String, reason: String },

    #[error("auth file {}: {reason}", path.display())]
    AuthFile { path: PathBuf, reason: String },

    #[error("{source_name}: {reason}")]
    Source { source_name: String, reason: String },

    #[error("image not known: {0}")]
    ImageNotFound(String),

    #[error("image ID prefix {prefix:?} is ambiguous: matches {matches}")]
    AmbiguousId { prefix: String, matches: String },

    #[error("image {image} is in use by names {names}; untag them or use -f")]
    ImageHasNames { image: String, names: String },

    /// A sigstore key file that cannot be used (not PEM, wrong type, wrong passphrase).
    #[error("key {}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },

    /// A policy.json or registries.d file that does not parse or makes no sense.
    #[error("{}: {reason}", path.display())]
    PolicyFile { path: PathBuf, reason: String },

    /// The signature policy refused the image: `scope` is the policy.json entry that applied.
    #[error("{image} rejected by policy {} ({scope}): {reason}", path.display())]
    Rejected {
        image: String,
        path: PathBuf,
        scope: String,
        reason: String,
    },

    /// The unpack reading a pull as it downloads failed or was interrupted, so the pull stopped.
    #[error("pull of {reference} stopped: the unpack reading it ended")]
    PullCancelled { reference: String },
}

impl Error {
    /// Whether the error is a full disk (ENOSPC) or a used-up quota (EDQUOT), however far up it
    /// was wrapped (several steps carry only the text of the error they wrap).
    pub fn out_of_space(&self) -> bool {
        let errno = |e: &std::io::Error| {
            matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        };
        match self {
            Error::Io { source, .. } | Error::PlainIo(source) => errno(source),
            other => {
                let text = other.to_string();
                [libc::ENOSPC, libc::EDQUOT]
                    .iter()
                    .any(|n| text.contains(&format!("(os error {n})")))
            }
        }
    }

    /// Shorthand for wrapping an `io::Error` with the step and path it happened on.
    pub fn io(
        step: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { step, path, source }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    #[test]
    fn printable_escapes_control_characters_and_keeps_the_rest() {
        assert_eq!(super::printable("a\nb\u{1}c é"), "a\\nb\\u{1}c é");
    }
}
