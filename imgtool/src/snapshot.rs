//! `--snapshot overlay`: each layer extracted once into a per-layer cache directory in the store,
//! and a bundle's `rootfs` an overlay mount of them with the bundle's own upper and work dirs.
//!
//! Layout (the gocker layout of seed 001, keyed by chain ID so images share layers): a cache dir
//! depends on the layers below it (copy-ups, directories created over lower symlinks), so the key
//! is the chain ID of the layer stack, as containerd's snapshotters use, not the bare diff_id.
//! ```text
//! STORE/snapshots/layers/<chain id hex>/fs          the layer, overlay-style whiteouts
//! STORE/snapshots/layers/<chain id hex>/refs/<key>  one file per live bundle using it
//! BUNDLE/overlay/upper, BUNDLE/overlay/work        the bundle's writable layer
//! ```
//! A layer directory with refs is in use: `layer_in_use` tells `rmi`/gc to leave it alone.
use std::fs;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use sha2::{Digest, Sha256};

use crate::unpack::{self, Applier, ApplyOptions, LayerInput, UnpackError, WhiteoutMode};

#[derive(Debug)]
pub enum SnapshotError {
    /// A filesystem step on the cache or the bundle failed.
    Io {
        step: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// Extracting a layer into its cache dir failed.
    Layer(UnpackError),
    /// The overlay mount failed.
    Mount { target: PathBuf, source: nix::Error },
    /// Too many layers for one overlay mount's option string.
    TooManyLayers { layers: usize, bytes: usize },
}

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotError::Io { step, path, source } => write!(f, "{step} {}: {source}", path.display()),
            SnapshotError::Layer(e) => write!(f, "{e}"),
            SnapshotError::Mount { target, source } => {
                write!(f, "mount overlay on {}: {source}", target.display())
            }
            SnapshotError::TooManyLayers { layers, bytes } => write!(
                f,
                "{layers} layers make a {bytes}-byte overlay option string (the kernel takes one page)"
            ),
        }
    }
}

impl std::error::Error for SnapshotError {}

impl From<SnapshotError> for crate::error::Error {
    fn from(e: SnapshotError) -> Self {
        crate::error::Error::Unpack(e.to_string())
    }
}

fn io_err(step: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SnapshotError {
    let path = path.to_path_buf();
    move |source| SnapshotError::Io { step, path, source }
}

fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// The OCI chain IDs of a layer stack: ChainID(L0) = DiffID(L0), ChainID(Ln) =
/// sha256(ChainID(Ln-1) + " " + DiffID(Ln)).
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let id = match out.last() {
            None => d.clone(),
            Some(prev) => format!(
                "sha256:{:x}",
                Sha256::digest(format!("{prev} {d}").as_bytes())
            ),
        };
        out.push(id);
    }
    out
}

pub fn layers_dir(store: &Path) -> PathBuf {
    store.join(crate::store::LAYER_CACHE)
}

pub fn layer_dir(store: &Path, chain_id: &str) -> PathBuf {
    layers_dir(store).join(hex(chain_id))
}

/// The per-bundle key of a ref file: sha256 of the bundle's absolute path.
pub fn bundle_key(bundle: &Path) -> String {
    format!(
        "{:x}",
        Sha256::digest(bundle.as_os_str().as_encoded_bytes())
    )
}

/// The layer's cache dir (its `fs`), extracting it first if this is the first bundle to use it;
/// the flag says whether this call extracted it (and so checked the blob's diff_id).
/// Extraction goes to a temporary dir renamed into place after the diff_id checks out, so a
/// crash or a bad layer never leaves a half layer that later bundles would trust.
///
/// `lowers` are the cache dirs of the layers below (base first): a hardlink to a file of theirs
/// is copied up, as overlayfs would.
pub fn ensure_layer(
    store: &Path,
    index: usize,
    layer: &LayerInput,
    chain_id: &str,
    lowers: &[PathBuf],
) -> Result<(PathBuf, bool), SnapshotError> {
    let dir = layer_dir(store, chain_id);
    let fs_dir = dir.join("fs");
    if fs_dir.is_dir() {
        return Ok((fs_dir, false));
    }
    let parent = layers_dir(store);
    fs::create_dir_all(&parent).map_err(io_err("create layer cache", &parent))?;
    let tmp = parent.join(format!(".tmp-{}-{}", hex(chain_id), std::process::id()));
    let tmp_fs = tmp.join("fs");
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp_fs).map_err(io_err("create layer cache", &tmp_fs))?;
    fs::create_dir_all(tmp.join("refs")).map_err(io_err("create layer cache", &tmp))?;
    let opts = ApplyOptions {
        rootless: false,
        whiteouts: WhiteoutMode::Overlay,
    };
    let result = Applier::new(&tmp_fs, opts).and_then(|a| {
        let mut a = a.with_lowers(lowers)?;
        unpack::apply_layer(&mut a, &layer.label(index), layer)?;
        a.finish()
    });
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&tmp);
        return Err(SnapshotError::Layer(e.under(&tmp_fs)));
    }
    match fs::rename(&tmp, &dir) {
        Ok(()) => Ok((fs_dir, true)),
        // Another unpack cached the same layer meanwhile: use theirs.
        Err(_) if fs_dir.is_dir() => {
            let _ = fs::remove_dir_all(&tmp);
            Ok((fs_dir, true))
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            Err(io_err("move layer into cache", &dir)(e))
        }
    }
}

/// Record that `bundle` uses these layers.
pub fn add_refs(store: &Path, chain_ids: &[String], bundle: &Path) -> Result<(), SnapshotError> {
    let key = bundle_key(bundle);
    for d in chain_ids {
        let refs = layer_dir(store, d).join("refs");
        fs::create_dir_all(&refs).map_err(io_err("create refs dir", &refs))?;
        let f = refs.join(&key);
        fs::write(&f, bundle.as_os_str().as_encoded_bytes())
            .map_err(io_err("write layer ref", &f))?;
    }
    Ok(())
}

/// Drop `bundle`'s references; a layer without references stays cached until `prune_unused`.
pub fn remove_refs(store: &Path, chain_ids: &[String], bundle: &Path) {
    let key = bundle_key(bundle);
    for d in chain_ids {
        let _ = fs::remove_file(layer_dir(store, d).join("refs").join(&key));
    }
}

/// The bundle dirs that hold refs on any cached layer (each once).
pub fn referencing_bundles(store: &Path) -> Vec<PathBuf> {
    let mut out = std::collections::BTreeSet::new();
    let Ok(rd) = fs::read_dir(layers_dir(store)) else {
        return Vec::new();
    };
    for layer in rd.flatten() {
        let Ok(refs) = fs::read_dir(layer.path().join("refs")) else {
            continue;
        };
        for r in refs.flatten() {
            if let Ok(p) = fs::read(r.path()) {
                out.insert(PathBuf::from(std::ffi::OsString::from_vec(p)));
            }
        }
    }
    out.into_iter().collect()
}

/// Whether a live bundle still uses the layer (for `rmi` and store gc).
pub fn layer_in_use(store: &Path, chain_id: &str) -> bool {
    fs::read_dir(layer_dir(store, chain_id).join("refs"))
        .map(|mut r| r.next().is_some())
        .unwrap_or(false)
}

/// Remove cached layers no bundle uses; returns how many were removed.
pub fn prune_unused(store: &Path) -> io::Result<usize> {
    let mut n = 0;
    let Ok(rd) = fs::read_dir(layers_dir(store)) else {
        return Ok(0);
    };
    for e in rd {
        let e = e?;
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if !layer_in_use(store, &name.to_string_lossy()) {
            remove_layer(&e.path())?;
            n += 1;
        }
    }
    Ok(n)
}

/// Remove a cached layer dir. It is first renamed out of the cache (to a temp name the next
/// command sweeps once we are gone): removed in place, a kill half way would leave a layer
/// whose `fs` lacks files, which the next unpack would take for the whole layer.
pub fn remove_layer(dir: &Path) -> io::Result<()> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let doomed = dir.with_file_name(format!(".tmp-{name}-removing-{}", std::process::id()));
    fs::rename(dir, &doomed)?;
    fs::remove_dir_all(&doomed)
}

/// Mount `rootfs` as overlay of `lowers` (base first) with `upper`/`work`.
pub fn mount_overlay(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    rootfs: &Path,
) -> Result<(), SnapshotError> {
    // overlayfs lists lowerdirs top first.
    let lower: Vec<String> = lowers
        .iter()
        .rev()
        .map(|p| escape_overlay_path(p))
        .collect();
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        escape_overlay_path(upper),
        escape_overlay_path(work)
    );
    if data.len() >= 4096 {
        return Err(SnapshotError::TooManyLayers {
            layers: lowers.len(),
            bytes: data.len(),
        });
    }
    mount(
        Some("overlay"),
        rootfs,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    )
    .map_err(|source| SnapshotError::Mount {
        target: rootfs.to_path_buf(),
        source,
    })
}

/// overlayfs splits options on `,` and lowerdirs on `:`; both are escaped with a backslash.
fn escape_overlay_path(p: &Path) -> String {
    let s = p.to_string_lossy();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, ',' | ':' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Unmount an overlay rootfs (lazily if busy: a container may still hold it).
pub fn unmount(rootfs: &Path) -> Result<(), SnapshotError> {
    match umount2(rootfs, MntFlags::empty()) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => Ok(()),
        Err(nix::Error::EBUSY) => {
            umount2(rootfs, MntFlags::MNT_DETACH).map_err(|source| SnapshotError::Mount {
                target: rootfs.to_path_buf(),
                source,
            })
        }
        Err(source) => Err(SnapshotError::Mount {
            target: rootfs.to_path_buf(),
            source,
        }),
    }
}

/// Whether `path` is a mount point (its device differs from its parent's, or /proc says so).
pub fn is_mountpoint(path: &Path) -> bool {
    let Ok(canon) = path.canonicalize() else {
        return false;
    };
    let Ok(m) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = canon.to_string_lossy().replace(' ', "\\040");
    m.lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

/// Bytes of regular files and symlinks below `dir` (hardlinks counted once), not following
/// symlinks or crossing into other mounts.
pub fn tree_size(dir: &Path) -> u64 {
    let mut seen = std::collections::HashSet::new();
    let Ok(top) = fs::symlink_metadata(dir) else {
        return 0;
    };
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                if m.dev() == top.dev() {
                    stack.push(e.path());
                }
            } else if (m.is_file() || m.file_type().is_symlink())
                && (m.nlink() <= 1 || seen.insert((m.dev(), m.ino())))
            {
                total += m.len();
            }
        }
    }
    total
}
