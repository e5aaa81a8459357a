//! An image in the store and how to get one: the API the other commands (and the unpack work)
//! build on.
//!
//! ```ignore
//! let image = image::ensure_image(&ctx, "busybox:latest")?;      // pulls if not in the store
//! let config = image.config();                                    // ImageConfiguration
//! for layer in image.layers()? {                                  // in order, base first
//!     // layer.descriptor.media_type(), layer.diff_id, layer.blob_path (verified blob)
//!     let tar = crate::verify::decompressed(std::fs::File::open(&layer.blob_path)?)?;
//! }
//! ```
//!
//! `ensure_image` is synchronous (it runs its own async runtime for registry pulls): do not
//! call it from inside a tokio runtime.
//!
//! Guarantees: every blob path handed out exists and its content matched its digest when it
//! entered the store. A layer's diff_id is the config's `rootfs.diff_ids` entry; `verified` says
//! whether the store has already checked it against the layer's content. Whoever decompresses an
//! unverified layer (unpack, overlay snapshots, docker-archive save) hashes it in that same pass,
//! refuses it on a mismatch and records the result (`record_diff_id`), so the layer is read
//! once, not once by the pull and again by the unpack. A layer whose recorded diff_id differs from
//! the config is refused here without reading it. The `Image` keeps the store's shared lock, so
//! no concurrent `rmi` garbage-collects its blobs while it is alive.
use std::path::PathBuf;
use std::sync::Arc;

use oci_spec::image::{Descriptor, ImageConfiguration, ImageManifest};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::reference::{self, Source};
use crate::store::{self, Store};
use crate::verify::expect_diff_id;

/// A layer of an image, base first.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The manifest's descriptor: media type (compression), digest, size, annotations.
    pub descriptor: Descriptor,
    /// `sha256:…` of the uncompressed tar: the config's rootfs.diff_ids entry.
    pub diff_id: String,
    /// The store has checked `diff_id` against the layer's content. When false, the first
    /// reader of the decompressed content must hash it and compare (see `record_diff_id`).
    pub verified: bool,
    /// The compressed (or plain tar) blob in the store, verified against its digest.
    pub blob_path: PathBuf,
}

/// An image in the store.
pub struct Image {
    /// Image ID: the config digest (`sha256:…`).
    pub id: String,
    /// Digest of the (platform-specific) image manifest in the store.
    pub manifest_digest: String,
    pub manifest: ImageManifest,
    pub config: ImageConfiguration,
    /// Raw config bytes as stored (for `inspect` and exports that must keep the digest).
    pub config_raw: Vec<u8>,
    /// Raw manifest bytes as stored.
    pub manifest_raw: Vec<u8>,
    /// The store's index entries pointing at this manifest (names, repo digests).
    pub entries: Vec<Descriptor>,
    store: Arc<Store>,
}

impl Image {
    /// The image's configuration (Entrypoint, Cmd, Env, rootfs.diff_ids, history…).
    pub fn config(&self) -> &ImageConfiguration {
        &self.config
    }

    /// The manifest as stored.
    #[allow(dead_code)] // part of the API the unpack work uses
    pub fn manifest(&self) -> &ImageManifest {
        &self.manifest
    }

    /// The first 12 hex digits of the ID.
    pub fn short_id(&self) -> &str {
        reference::short_id(&self.id)
    }

    /// The names (`registry/repo:tag` or `registry/repo@digest`) the image has.
    pub fn names(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter_map(|e| store::entry_name(e).map(String::from))
            .collect()
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The layers in order, base first, with their blob paths and diff_ids. Checks cheaply
    /// (no decompression) that the blobs are present and that no diff_id the store already
    /// computed from a layer's content contradicts the config.
    pub fn layers(&self) -> Result<Vec<Layer>> {
        let diff_ids = self.config.rootfs().diff_ids();
        let layers = self.manifest.layers();
        if diff_ids.len() != layers.len() {
            return Err(Error::LayerCountMismatch {
                image: self.id.clone(),
                layers: layers.len(),
                diff_ids: diff_ids.len(),
            });
        }
        let mut out = Vec::with_capacity(layers.len());
        for (desc, expected) in layers.iter().zip(diff_ids) {
            let digest = desc.digest().to_string();
            let blob_path = self.store.blob_path(&digest)?;
            if !blob_path.exists() {
                return Err(Error::StoreCorrupt {
                    path: blob_path,
                    reason: format!("layer {digest} of image {} is missing", self.id),
                });
            }
            let verified = match self.store.cached_diff_id(&digest) {
                Some(actual) => expect_diff_id(&digest, expected, actual).map(|_| true)?,
                None => false,
            };
            out.push(Layer {
                descriptor: desc.clone(),
                diff_id: expected.clone(),
                verified,
                blob_path,
            });
        }
        Ok(out)
    }

    /// Decompress every layer not verified yet and check its diff_id now (`pull
    /// --verify-diff-ids`).
    pub fn verify_diff_ids(&self) -> Result<()> {
        for layer in self.layers()?.iter().filter(|l| !l.verified) {
            let digest = layer.descriptor.digest().to_string();
            expect_diff_id(&digest, &layer.diff_id, self.store.diff_id(&digest)?)?;
        }
        Ok(())
    }
}

/// Read an image from the store by manifest digest.
pub fn load(store: &Arc<Store>, manifest_digest: &str) -> Result<Image> {
    let manifest_raw = store.read_blob(manifest_digest)?;
    let manifest: ImageManifest =
        serde_json::from_slice(&manifest_raw).map_err(|e| Error::Parse {
            what: format!("manifest {manifest_digest}"),
            reason: e.to_string(),
        })?;
    let id = manifest.config().digest().to_string();
    let config_raw = store.read_blob(&id)?;
    let config: ImageConfiguration =
        serde_json::from_slice(&config_raw).map_err(|e| Error::Parse {
            what: format!("image config {id}"),
            reason: e.to_string(),
        })?;
    let entries = store
        .entries()?
        .into_iter()
        .filter(|e| e.digest().to_string() == manifest_digest)
        .collect();
    Ok(Image {
        id,
        manifest_digest: manifest_digest.to_string(),
        manifest,
        config,
        config_raw,
        manifest_raw,
        entries,
        store: store.clone(),
    })
}

/// The image ID (config digest) of an index entry.
pub fn entry_image_id(store: &Store, entry: &Descriptor) -> Result<String> {
    let d = entry.digest().to_string();
    let raw = store.read_blob(&d)?;
    let v: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| Error::Parse {
        what: format!("manifest {d}"),
        reason: e.to_string(),
    })?;
    v.pointer("/config/digest")
        .and_then(|x| x.as_str())
        .map(String::from)
        .ok_or_else(|| Error::Parse {
            what: format!("manifest {d}"),
            reason: "no config digest".into(),
        })
}

/// Find the manifest digest an input names in the store: a full name, a name with a digest,
/// or an image ID (full or any unique prefix, with or without `sha256:`). `None` if absent.
pub fn lookup(store: &Store, input: &str) -> Result<Option<String>> {
    let entries = store.entries()?;
    let hexish = {
        let h = input.strip_prefix("sha256:").unwrap_or(input);
        (!h.is_empty() && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))).then_some(h)
    };
    let full_id = hexish.is_some_and(|h| h.len() == 64);
    if !full_id {
        if let Ok(r) = reference::parse_reference(input) {
            let name = reference::store_name(&r);
            if let Some(e) = entries.iter().find(|e| store::entry_name(e) == Some(&name)) {
                return Ok(Some(e.digest().to_string()));
            }
            if let Some(d) = r.digest() {
                let repo = format!("{}/{}", r.registry(), r.repository());
                let hit = entries.iter().find(|e| {
                    let same_repo =
                        store::entry_name(e).is_some_and(|n| reference::split_name(n).0 == repo);
                    same_repo
                        && (e.digest().to_string() == d
                            || store::entry_annotation(e, store::ANNOTATION_REPO_DIGEST) == Some(d))
                });
                if let Some(e) = hit {
                    return Ok(Some(e.digest().to_string()));
                }
            }
        }
    }
    let Some(prefix) = hexish else {
        return Ok(None);
    };
    let mut matches: Vec<(String, String)> = Vec::new();
    for e in &entries {
        let id = entry_image_id(store, e)?;
        let md = e.digest().to_string();
        if id["sha256:".len()..].starts_with(prefix) && !matches.iter().any(|(i, _)| *i == id) {
            matches.push((id, md));
        }
    }
    match matches.len() {
        0 => Ok(None),
        1 => Ok(Some(matches.remove(0).1)),
        _ => Err(Error::AmbiguousId {
            prefix: input.to_string(),
            matches: matches
                .iter()
                .map(|(i, _)| reference::short_id(i).to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Open the store and find an image already in it (by name, name@digest or ID prefix).
pub fn find(ctx: &Context, input: &str) -> Result<Image> {
    let store = Arc::new(Store::open(ctx)?);
    find_in(&store, input)
}

/// Find an image in an open store, or `ImageNotFound`.
pub fn find_in(store: &Arc<Store>, input: &str) -> Result<Image> {
    match lookup(store, input)? {
        Some(d) => load(store, &d),
        None => Err(Error::ImageNotFound(input.to_string())),
    }
}

/// The image a reference or source names, pulled/imported into the store first when it is not
/// there yet. Accepts registry names (`busybox`, `host:5000/app:tag`, `name@sha256:…`), image IDs
/// and prefixes of images already stored, and `oci:DIR[:tag]`, `docker-archive:FILE`,
/// `oci-archive:FILE[:tag]` sources (always imported; blobs already present are not copied).
pub fn ensure_image(ctx: &Context, reference_or_source: &str) -> Result<Image> {
    let store = Arc::new(Store::open(ctx)?);
    if !Source::has_transport(reference_or_source) {
        if let Some(d) = lookup(&store, reference_or_source)? {
            let image = load(&store, &d)?;
            image.layers()?;
            return Ok(image);
        }
    }
    let source = Source::parse(reference_or_source)?;
    let progress = crate::progress::Progress::new(ctx.quiet);
    let digest = crate::transport::fetch(ctx, &store, &source, &progress)?;
    let image = load(&store, &digest)?;
    image.layers()?;
    Ok(image)
}

/// A registry pull running on its own thread while the caller reads its layers as they arrive
/// (see `follow.rs`). `finish` waits for it and returns the image, recorded in the store.
pub struct PullInProgress {
    /// The image's layers, base first, each readable while it downloads.
    pub layers: Vec<crate::follow::FollowedLayer>,
    store: Arc<Store>,
    cancel: Arc<std::sync::atomic::AtomicBool>,
    /// Taken by `finish`; a pull dropped unfinished is cancelled and waited for, so no
    /// download outlives the command (and its temp blob is removed).
    thread: Option<std::thread::JoinHandle<Result<String>>>,
}

/// Start pulling `r` into `store` on a helper thread; returns once the manifest and config
/// are in and the layers are known (or with the pull's error if it failed before that).
pub fn start_pull(
    ctx: &Context,
    store: Arc<Store>,
    r: oci_client::Reference,
) -> Result<PullInProgress> {
    let (tx, rx) = std::sync::mpsc::channel();
    let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let announce = crate::follow::Announce {
        layers: tx,
        cancel: Arc::clone(&cancel),
    };
    let thread = {
        let (ctx, store) = (ctx.clone(), Arc::clone(&store));
        std::thread::Builder::new()
            .name("pull".into())
            .spawn(move || {
                let progress = crate::progress::Progress::new(ctx.quiet);
                let res = crate::transport::registry_pull::pull_announcing(
                    &ctx,
                    &store,
                    &r,
                    &progress,
                    Some(announce),
                );
                progress.finish();
                res
            })
            .map_err(|e| Error::Other(format!("start pull thread: {e}")))?
    };
    match rx.recv() {
        Ok(layers) => Ok(PullInProgress {
            layers,
            store,
            cancel,
            thread: Some(thread),
        }),
        // The pull ended before it knew the layers: its error says why.
        Err(_) => Err(join_pull(thread).err().unwrap_or_else(|| {
            Error::Other("the pull ended without announcing its layers".into())
        })),
    }
}

fn join_pull(thread: std::thread::JoinHandle<Result<String>>) -> Result<String> {
    thread
        .join()
        .unwrap_or_else(|_| Err(Error::Other("the pull thread panicked".into())))
}

impl PullInProgress {
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Stop the downloads (the reader gave up).
    pub fn cancel(&self) {
        self.cancel.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Wait for the pull to end; the image it recorded.
    pub fn finish(mut self) -> Result<Image> {
        let thread = self.thread.take().expect("finish is called once");
        let digest = join_pull(thread)?;
        let image = load(&self.store, &digest)?;
        image.layers()?;
        Ok(image)
    }
}

impl Drop for PullInProgress {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.cancel();
            let _ = join_pull(thread);
        }
    }
}
