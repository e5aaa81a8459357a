//! `oci:DIR[:ref]`: importing an image from an OCI image layout directory. Every blob copied is
//! verified against its digest, as for a pull; the layout's sigstore signatures of the image
//! (layout_signatures.rs) are checked by the policy and kept with it in the store.
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};

use crate::context::Platform;
use crate::error::{Error, Result};
use crate::manifest::{choose_platform, is_index, manifest_media_type};
use crate::progress::Progress;
use crate::store::{self, Store};
use crate::transport::layout_signatures::signatures_in;
use crate::transport::record::{import_blob_file, record_image, Record};
use crate::trust::sigstore::Signature;
use crate::verify::check_digest;

fn blob_in(dir: &Path, digest: &str) -> Result<PathBuf> {
    let hex = check_digest(digest)?;
    Ok(dir.join("blobs/sha256").join(hex))
}

/// Copy the layers of `manifest` (found in `dir`) into the store, each verified against its
/// digest. Their diff_ids are checked by the first pass that decompresses them (see `image.rs`).
pub fn import_layers(
    store: &Store,
    dir: &Path,
    manifest: &ImageManifest,
    config: &ImageConfiguration,
    progress: &Progress,
) -> Result<()> {
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers().len() {
        return Err(Error::LayerCountMismatch {
            image: manifest.config().digest().to_string(),
            layers: manifest.layers().len(),
            diff_ids: diff_ids.len(),
        });
    }
    for layer in manifest.layers() {
        let d = layer.digest().to_string();
        import_blob_file(store, &blob_in(dir, &d)?, &d, "layer", progress)?;
    }
    Ok(())
}

/// The one index entry `tag` names (or the only entry when `tag` is `None`).
fn pick_entry(dir: &Path, tag: Option<&str>) -> Result<Descriptor> {
    let p = dir.join("index.json");
    let data = std::fs::read(&p).map_err(Error::io("read", &p))?;
    let index: ImageIndex = serde_json::from_slice(&data).map_err(|e| Error::Parse {
        what: p.display().to_string(),
        reason: e.to_string(),
    })?;
    let entries: Vec<&Descriptor> = index
        .manifests()
        .iter()
        .filter(|e| store::is_image_entry(e))
        .collect();
    match tag {
        Some(t) => entries
            .iter()
            .find(|e| store::entry_name(e) == Some(t))
            .copied()
            .cloned()
            .ok_or_else(|| Error::Source {
                source_name: dir.display().to_string(),
                reason: format!("no image named {t:?} in index.json"),
            }),
        None if entries.len() == 1 => Ok(entries[0].clone()),
        None => Err(Error::Source {
            source_name: dir.display().to_string(),
            reason: format!("holds {} images; name one with oci:DIR:REF", entries.len()),
        }),
    }
}

/// A layout's ref.name becomes the image's store name only when it is a full image name
/// (`host/repo:tag`); a bare tag like `latest` says nothing about the repository.
pub fn name_from_ref(ref_name: Option<&str>) -> Option<String> {
    let n = ref_name?;
    if !n.contains('/') {
        return None;
    }
    crate::reference::parse_reference(n)
        .ok()
        .map(|r| crate::reference::store_name(&r))
}

/// An image whose blobs are in the store but which is not yet recorded in the index (recording
/// sweeps the temp directory an archive was extracted to, so it comes after all imports).
pub struct Imported {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    pub name: Option<String>,
    /// The layout's sigstore signatures of this manifest, kept with it in the store.
    pub signatures: Vec<Signature>,
}

impl Imported {
    pub fn record(&self, store: &Store) -> Result<()> {
        record_image(
            store,
            Record {
                manifest_digest: &self.digest,
                media_type: &self.media_type,
                size: self.size,
                name: self.name.clone(),
                repo_digest: None,
                signatures: &self.signatures,
            },
        )
    }
}

/// Import the image `tag` names from the layout at `dir` and record it; returns its manifest
/// digest.
pub fn import_dir(
    store: &Store,
    dir: &Path,
    tag: Option<&str>,
    platform: &Platform,
    name_override: Option<String>,
    progress: &Progress,
    origin: Origin<'_>,
) -> Result<String> {
    let imported = import_dir_blobs(store, dir, tag, platform, name_override, progress, origin)?;
    imported.record(store)?;
    Ok(imported.digest)
}

/// What the user named for a layout being imported, for the policy: an `oci:` directory, or
/// the `oci-archive:` file that was extracted to it.
#[derive(Clone, Copy)]
pub struct Origin<'a> {
    pub transport: &'static str,
    pub path: &'a Path,
}

/// Copy the image `tag` names from the layout at `dir` into the store without recording it.
pub fn import_dir_blobs(
    store: &Store,
    dir: &Path,
    tag: Option<&str>,
    platform: &Platform,
    name_override: Option<String>,
    progress: &Progress,
    origin: Origin<'_>,
) -> Result<Imported> {
    if !dir.join("oci-layout").exists() {
        return Err(Error::Source {
            source_name: dir.display().to_string(),
            reason: "not an OCI image layout (no oci-layout file)".into(),
        });
    }
    let entry = pick_entry(dir, tag)?;
    let name = name_override.or_else(|| name_from_ref(store::entry_name(&entry)));
    let mut digest = entry.digest().to_string();
    let mut sigs = signatures_in(dir, &digest)?;
    crate::accept::accept_local(origin.transport, origin.path, tag, &digest, sigs.clone())?;
    let mut raw = store::read_layout_blob(dir, &digest, "manifest")?;
    let mt = manifest_media_type(&raw);
    if is_index(&mt) {
        let index: ImageIndex = serde_json::from_slice(&raw).map_err(|e| Error::Parse {
            what: format!("image index {digest}"),
            reason: e.to_string(),
        })?;
        let chosen =
            choose_platform(&index, platform).map_err(|available| Error::NoMatchingPlatform {
                reference: dir.display().to_string(),
                platform: platform.to_string(),
                available,
            })?;
        digest = chosen.digest().to_string();
        raw = store::read_layout_blob(dir, &digest, "manifest")?;
        // They sign the index, which the store does not keep: they would sign nothing there.
        sigs.clear();
    }
    let media_type = manifest_media_type(&raw);
    let manifest: ImageManifest = serde_json::from_slice(&raw).map_err(|e| Error::Parse {
        what: format!("manifest {digest}"),
        reason: e.to_string(),
    })?;
    let config_digest = manifest.config().digest().to_string();
    let config_raw = store::read_layout_blob(dir, &config_digest, "config")?;
    let config: ImageConfiguration =
        serde_json::from_slice(&config_raw).map_err(|e| Error::Parse {
            what: format!("image config {config_digest}"),
            reason: e.to_string(),
        })?;
    import_layers(store, dir, &manifest, &config, progress)?;
    store.put_blob("config", &config_digest, &config_raw)?;
    store.put_blob("manifest", &digest, &raw)?;
    Ok(Imported {
        digest,
        media_type,
        size: raw.len() as u64,
        name,
        signatures: sigs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layouts_bare_tag_does_not_name_the_image() {
        assert_eq!(name_from_ref(Some("latest")), None);
        assert_eq!(name_from_ref(None), None);
    }

    #[test]
    fn a_layouts_full_image_name_is_normalised_like_a_pull() {
        assert_eq!(
            name_from_ref(Some("library/alpine:3")).as_deref(),
            Some("docker.io/library/alpine:3")
        );
    }
}
