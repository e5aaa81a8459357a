//! `oci-archive:FILE` (a tar of an OCI layout) and `docker-archive:FILE` (`docker save` format:
//! `manifest.json` listing each image's config, RepoTags and layer tars). Archives are unpacked
//! into a temp directory inside the store (same filesystem, swept after a crash) and imported
//! blob by blob with the same verification as a pull.
use std::path::{Path, PathBuf};

use oci_spec::image::{ImageConfiguration, ImageManifestBuilder, MediaType};
use serde::Deserialize;

use crate::context::Platform;
use crate::error::{Error, Result};
use crate::manifest::OCI_MANIFEST;
use crate::progress::Progress;
use crate::store::Store;
use crate::transport::record::{import_blob_file, record_image, Record};
use crate::verify::{sha256_digest, Compression};

/// Unpack `archive` into a fresh temp directory under the store.
fn extract(store: &Store, archive: &Path) -> Result<tempfile::TempDir> {
    extract_in(
        archive,
        &store.root().join(".imgtool/tmp"),
        &format!("extract-{}-", std::process::id()),
    )
}

/// Unpack `archive` into a fresh temp directory `prefix…` under `tmp_root` (`copy` reads archives
/// there without importing them).
pub(crate) fn extract_in(
    archive: &Path,
    tmp_root: &Path,
    prefix: &str,
) -> Result<tempfile::TempDir> {
    let f = std::fs::File::open(archive).map_err(Error::io("open archive", archive))?;
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(tmp_root)
        .map_err(Error::io("create temp directory in", tmp_root))?;
    let mut ar = tar::Archive::new(std::io::BufReader::new(f));
    ar.set_preserve_permissions(false);
    ar.set_overwrite(true);
    // `unpack` refuses entries that would land outside the directory.
    ar.unpack(dir.path()).map_err(|e| Error::Source {
        source_name: archive.display().to_string(),
        reason: format!("cannot read as a tar archive: {e}"),
    })?;
    Ok(dir)
}

/// Import an `oci-archive:`; returns the manifest digest.
pub fn import_oci_archive(
    store: &Store,
    archive: &Path,
    tag: Option<&str>,
    platform: &Platform,
    progress: &Progress,
) -> Result<String> {
    let dir = extract(store, archive)?;
    let origin = super::layout::Origin {
        transport: "oci-archive",
        path: archive,
    };
    super::layout::import_dir(store, dir.path(), tag, platform, None, progress, origin)
        .map_err(|e| wrap(archive, e))
}

/// An error while importing `archive`, named after it (a policy rejection already names it).
fn wrap(archive: &Path, e: Error) -> Error {
    match e {
        Error::Rejected { .. } => e,
        other => Error::Source {
            source_name: archive.display().to_string(),
            reason: other.to_string(),
        },
    }
}

/// Import every image of an OCI archive (for `load`); returns (manifest digest, name) pairs.
pub fn import_oci_archive_all(
    store: &Store,
    archive: &Path,
    platform: &Platform,
    progress: &Progress,
) -> Result<Vec<(String, Option<String>)>> {
    let dir = extract(store, archive)?;
    let idx_path = dir.path().join("index.json");
    let data = std::fs::read(&idx_path).map_err(|_| Error::Source {
        source_name: archive.display().to_string(),
        reason: "no index.json: not an OCI archive".into(),
    })?;
    let index: oci_spec::image::ImageIndex =
        serde_json::from_slice(&data).map_err(|e| Error::Source {
            source_name: archive.display().to_string(),
            reason: format!("index.json: {e}"),
        })?;
    // Signatures kept beside an image are not images to load.
    let images: Vec<_> = index
        .manifests()
        .iter()
        .filter(|e| crate::store::is_image_entry(e))
        .collect();
    let names: Vec<Option<String>> = images
        .iter()
        .map(|e| crate::store::entry_name(e).map(String::from))
        .collect();
    let mut imported = vec![];
    for n in names {
        if n.is_none() && images.len() > 1 {
            continue;
        }
        let origin = super::layout::Origin {
            transport: "oci-archive",
            path: archive,
        };
        let i = super::layout::import_dir_blobs(
            store,
            dir.path(),
            n.as_deref(),
            platform,
            None,
            progress,
            origin,
        )
        .map_err(|e| wrap(archive, e))?;
        imported.push(i);
    }
    let mut out = vec![];
    for i in imported {
        i.record(store)?;
        out.push((i.digest, i.name));
    }
    Ok(out)
}

/// One image of a docker-archive's `manifest.json`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DockerManifestEntry {
    pub config: String,
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    pub layers: Vec<String>,
}

/// A path from `manifest.json`, kept inside the extracted directory; errors name `source_name`.
pub(crate) fn inside(dir: &Path, rel: &str, source_name: &str) -> Result<PathBuf> {
    let p = Path::new(rel);
    if p.is_absolute()
        || p.components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(Error::Source {
            source_name: source_name.to_string(),
            reason: format!("manifest.json path {rel:?} leaves the archive"),
        });
    }
    Ok(dir.join(p))
}

/// Import every image of a docker-archive (or only the one `want` names); returns their
/// manifest digests, in archive order.
pub fn import_docker_archive(
    store: &Store,
    archive: &Path,
    want: Option<&str>,
    progress: &Progress,
) -> Result<Vec<String>> {
    let src = archive.display().to_string();
    let bad = |reason: String| Error::Source {
        source_name: src.clone(),
        reason,
    };
    let dir = extract(store, archive)?;
    let mpath = dir.path().join("manifest.json");
    let data =
        std::fs::read(&mpath).map_err(|_| bad("no manifest.json: not a docker-archive".into()))?;
    let entries: Vec<DockerManifestEntry> =
        serde_json::from_slice(&data).map_err(|e| bad(format!("manifest.json: {e}")))?;
    let want_name = match want {
        Some(w) => Some(crate::reference::store_name(
            &crate::reference::parse_reference(w)?,
        )),
        None => None,
    };
    let mut records = vec![];
    for entry in &entries {
        let names: Vec<String> = entry
            .repo_tags
            .clone()
            .unwrap_or_default()
            .iter()
            .filter_map(|t| crate::reference::parse_reference(t).ok())
            .map(|r| crate::reference::store_name(&r))
            .collect();
        if let Some(w) = &want_name {
            if !names.contains(w) {
                continue;
            }
        }
        let config_path = inside(dir.path(), &entry.config, &src)?;
        let config_raw =
            std::fs::read(&config_path).map_err(Error::io("read image config", &config_path))?;
        let config_digest = sha256_digest(&config_raw);
        // A docker-archive has no manifest of its own: the image is known by its config.
        crate::accept::accept_local("docker-archive", archive, None, &config_digest, vec![])?;
        let config: ImageConfiguration = serde_json::from_slice(&config_raw)
            .map_err(|e| bad(format!("{}: {e}", entry.config)))?;
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != entry.layers.len() {
            return Err(Error::LayerCountMismatch {
                image: config_digest,
                layers: entry.layers.len(),
                diff_ids: diff_ids.len(),
            });
        }
        let mut layer_descs = vec![];
        for (rel, expected) in entry.layers.iter().zip(diff_ids) {
            let lp = inside(dir.path(), rel, &src)?;
            let (digest, size, compression) = file_digest(&lp)?;
            import_blob_file(store, &lp, &digest, "layer", progress)?;
            if compression == Compression::None {
                // An uncompressed layer's digest is its diff_id: checked here for free.
                let layer = format!("{rel} ({digest})");
                crate::verify::expect_diff_id(&layer, expected, digest.clone())?;
                store.record_diff_id(&digest, &digest)?;
            }
            let mt = match compression {
                Compression::None => MediaType::ImageLayer,
                Compression::Gzip => MediaType::ImageLayerGzip,
                Compression::Zstd => MediaType::ImageLayerZstd,
            };
            let digest_parsed: oci_spec::image::Digest =
                digest.parse().map_err(|e| bad(format!("{digest}: {e}")))?;
            layer_descs.push(oci_spec::image::Descriptor::new(mt, size, digest_parsed));
        }
        store.put_blob("config", &config_digest, &config_raw)?;
        let config_desc = oci_spec::image::Descriptor::new(
            MediaType::ImageConfig,
            config_raw.len() as u64,
            config_digest
                .parse::<oci_spec::image::Digest>()
                .map_err(|e| bad(e.to_string()))?,
        );
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config_desc)
            .layers(layer_descs)
            .build()
            .map_err(|e| bad(format!("build manifest: {e}")))?;
        let raw = serde_json::to_vec(&manifest).map_err(|e| bad(e.to_string()))?;
        let mdigest = sha256_digest(&raw);
        store.put_blob("manifest", &mdigest, &raw)?;
        records.push((mdigest, raw.len() as u64, names));
    }
    if records.is_empty() {
        return Err(bad(match want {
            Some(w) => format!("no image named {w} in the archive"),
            None => "the archive holds no images".into(),
        }));
    }
    let mut out = vec![];
    for (mdigest, size, names) in records {
        if names.is_empty() {
            record_image(
                store,
                Record {
                    manifest_digest: &mdigest,
                    media_type: OCI_MANIFEST,
                    size,
                    name: None,
                    repo_digest: None,
                    signatures: &[],
                },
            )?;
        }
        for n in names {
            record_image(
                store,
                Record {
                    manifest_digest: &mdigest,
                    media_type: OCI_MANIFEST,
                    size,
                    name: Some(n),
                    repo_digest: None,
                    signatures: &[],
                },
            )?;
        }
        out.push(mdigest);
    }
    drop(dir);
    Ok(out)
}

/// sha256, size and compression of a file.
fn file_digest(p: &Path) -> Result<(String, u64, Compression)> {
    use std::io::Read;
    let mut f = std::fs::File::open(p).map_err(Error::io("open layer", p))?;
    let mut h = crate::verify::Hasher::default();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    let mut head = Vec::new();
    loop {
        let n = f.read(&mut buf).map_err(Error::io("read layer", p))?;
        if n == 0 {
            break;
        }
        if head.len() < 8 {
            head.extend_from_slice(&buf[..n.min(8)]);
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((h.finish(), size, Compression::detect(&head)))
}
