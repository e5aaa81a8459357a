//! The side a copy reads: every local kind (the store, `oci:`, an extracted `oci-archive:`, a
//! `docker-archive:` whose manifest is made up here as skopeo does) is a directory of blobs by
//! digest, plus a few files found elsewhere; a registry is read with oci-client. Either way the
//! engine asks for the top manifest, a child manifest by digest, and a blob as a file.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oci_client::Reference;

use super::name::ImageName;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::manifest::{manifest_media_type, DOCKER_MANIFEST};
use crate::store::{self, Store};
use crate::transport::archive::{self, inside, DockerManifestEntry};
use crate::transport::registry::{self, Conn};
use crate::trust::sigstore::Signature;
use crate::verify::{check_digest, sha256_digest};

/// The manifest a copy starts from.
pub struct Top {
    pub raw: Vec<u8>,
    pub digest: String,
    pub media_type: String,
}

pub enum Source {
    Local {
        /// `blobs/sha256` of a layout.
        blobs: PathBuf,
        /// Blobs that live elsewhere (a docker-archive's layer files, its made-up manifest).
        extra: HashMap<String, PathBuf>,
        /// Made-up blobs held in memory (a docker-archive's manifest).
        memory: HashMap<String, Vec<u8>>,
        /// Keeps an extracted archive, or the store's shared lock, alive for the copy.
        _tmp: Option<tempfile::TempDir>,
        _store: Option<Arc<Store>>,
    },
    Registry(Conn),
}

fn src_err(name: &str, reason: impl Into<String>) -> Error {
    Error::Source {
        source_name: name.to_string(),
        reason: reason.into(),
    }
}

/// The manifest a layout's `index.json` entry names (by `ref.name`, or the only entry).
fn layout_top(dir: &Path, tag: Option<&str>, name: &str) -> Result<String> {
    if !dir.join("oci-layout").exists() {
        return Err(src_err(
            name,
            "not an OCI image layout (no oci-layout file)",
        ));
    }
    let p = dir.join("index.json");
    let data = std::fs::read(&p).map_err(Error::io("read", &p))?;
    let index: oci_spec::image::ImageIndex =
        serde_json::from_slice(&data).map_err(|e| Error::Parse {
            what: p.display().to_string(),
            reason: e.to_string(),
        })?;
    let entries: Vec<_> = index
        .manifests()
        .iter()
        .filter(|e| store::is_image_entry(e))
        .collect();
    let e = match tag {
        Some(t) => entries
            .iter()
            .find(|e| store::entry_name(e) == Some(t))
            .copied(),
        None if entries.len() == 1 => entries.first().copied(),
        None => {
            return Err(src_err(
                name,
                format!("holds {} images; name one with :REF", entries.len()),
            ))
        }
    };
    e.map(|e| e.digest().to_string()).ok_or_else(|| {
        src_err(
            name,
            format!("no image named {:?} in index.json", tag.unwrap_or("")),
        )
    })
}

/// sha256 and size of a file, and its first bytes (to tell its compression).
fn file_digest(p: &Path) -> Result<(String, u64, crate::verify::Compression)> {
    use std::io::Read;
    let mut f = std::fs::File::open(p).map_err(Error::io("open", p))?;
    let mut h = crate::verify::Hasher::default();
    let mut buf = vec![0u8; 1 << 20];
    let (mut size, mut head) = (0u64, Vec::new());
    loop {
        let n = f.read(&mut buf).map_err(Error::io("read", p))?;
        if n == 0 {
            break;
        }
        if head.len() < 8 {
            head.extend_from_slice(&buf[..n.min(8)]);
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((h.finish(), size, crate::verify::Compression::detect(&head)))
}

/// A docker-archive's image as a Docker schema 2 manifest over its files, as skopeo reads it.
fn docker_archive(path: &Path, want: Option<&str>, tmp_root: &Path) -> Result<(Source, Top)> {
    let name = path.display().to_string();
    let dir = archive::extract_in(path, tmp_root, ".imgtool-extract-")?;
    let mpath = dir.path().join("manifest.json");
    let data = std::fs::read(&mpath)
        .map_err(|_| src_err(&name, "no manifest.json: not a docker-archive"))?;
    let entries: Vec<DockerManifestEntry> =
        serde_json::from_slice(&data).map_err(|e| src_err(&name, format!("manifest.json: {e}")))?;
    let want_name = want
        .map(|w| crate::reference::parse_reference(w).map(|r| crate::reference::store_name(&r)))
        .transpose()?;
    let entry = match &want_name {
        Some(w) => entries.iter().find(|e| {
            e.repo_tags.iter().flatten().any(|t| {
                crate::reference::parse_reference(t)
                    .map(|r| crate::reference::store_name(&r) == *w)
                    .unwrap_or(false)
            })
        }),
        None if entries.len() == 1 => entries.first(),
        None => {
            return Err(src_err(
                &name,
                format!("holds {} images; name one with :NAME:TAG", entries.len()),
            ))
        }
    }
    .ok_or_else(|| {
        src_err(
            &name,
            format!("no image named {} in the archive", want.unwrap_or("")),
        )
    })?;
    let mut extra = HashMap::new();
    let config_path = inside(dir.path(), &entry.config, &name)?;
    let (config_digest, config_size, _) = file_digest(&config_path)?;
    extra.insert(config_digest.clone(), config_path);
    let mut layers = vec![];
    for rel in &entry.layers {
        let lp = inside(dir.path(), rel, &name)?;
        let (digest, size, comp) = file_digest(&lp)?;
        let mt = match comp {
            crate::verify::Compression::None => "application/vnd.docker.image.rootfs.diff.tar",
            _ => "application/vnd.docker.image.rootfs.diff.tar.gzip",
        };
        layers.push(serde_json::json!({"mediaType": mt, "size": size, "digest": digest}));
        extra.insert(digest, lp);
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": config_size,
            "digest": config_digest,
        },
        "layers": layers,
    });
    let raw = serde_json::to_vec_pretty(&manifest).map_err(|e| src_err(&name, e.to_string()))?;
    let digest = sha256_digest(&raw);
    let mut memory = HashMap::new();
    memory.insert(digest.clone(), raw.clone());
    let src = Source::Local {
        blobs: dir.path().join("blobs/sha256"),
        extra,
        memory,
        _tmp: Some(dir),
        _store: None,
    };
    Ok((
        src,
        Top {
            raw,
            digest,
            media_type: DOCKER_MANIFEST.to_string(),
        },
    ))
}

/// Open the source and read its top manifest. `tmp_root` is where archives are extracted.
pub async fn open(ctx: &Context, name: &ImageName, tmp_root: &Path) -> Result<(Source, Top)> {
    let label = name.display();
    let (src, digest) = match name {
        ImageName::Registry(r) => {
            let (conn, raw, digest) = registry::connect_for_pull(ctx, r).await?;
            let media_type = manifest_media_type(&raw);
            return Ok((
                Source::Registry(conn),
                Top {
                    raw,
                    digest,
                    media_type,
                },
            ));
        }
        ImageName::DockerArchive { path, name } => {
            return docker_archive(path, name.as_deref(), tmp_root)
        }
        ImageName::Store(n) => {
            let store = Arc::new(Store::open(ctx)?);
            let digest =
                crate::image::lookup(&store, n)?.ok_or_else(|| Error::ImageNotFound(n.clone()))?;
            let src = Source::Local {
                blobs: store.root().join("blobs/sha256"),
                extra: HashMap::new(),
                memory: HashMap::new(),
                _tmp: None,
                _store: Some(store),
            };
            (src, digest)
        }
        ImageName::Oci { dir, tag } => {
            let digest = layout_top(dir, tag.as_deref(), &label)?;
            let src = Source::Local {
                blobs: dir.join("blobs/sha256"),
                extra: HashMap::new(),
                memory: HashMap::new(),
                _tmp: None,
                _store: None,
            };
            (src, digest)
        }
        ImageName::OciArchive { path, tag } => {
            let tmp = archive::extract_in(path, tmp_root, ".imgtool-extract-")?;
            let digest = layout_top(tmp.path(), tag.as_deref(), &label)?;
            let src = Source::Local {
                blobs: tmp.path().join("blobs/sha256"),
                extra: HashMap::new(),
                memory: HashMap::new(),
                _tmp: Some(tmp),
                _store: None,
            };
            (src, digest)
        }
    };
    let raw = src.manifest(&digest).await?;
    let media_type = manifest_media_type(&raw);
    Ok((
        src,
        Top {
            raw,
            digest,
            media_type,
        },
    ))
}

impl Source {
    /// The registry reference, for cross-repository mounts.
    pub fn reference(&self) -> Option<&Reference> {
        match self {
            Source::Registry(c) => Some(&c.reference),
            Source::Local { .. } => None,
        }
    }

    /// The sigstore signatures an OCI layout source (the store included) keeps beside the
    /// manifest `digest` (transport/layout_signatures.rs); none for a docker-archive or a
    /// registry.
    pub fn layout_signatures(&self, digest: &str) -> Result<Vec<Signature>> {
        match self {
            Source::Local { blobs, .. } => match blobs.parent().and_then(Path::parent) {
                Some(dir) if dir.join("index.json").exists() => {
                    crate::transport::layout_signatures::signatures_in(dir, digest)
                }
                _ => Ok(vec![]),
            },
            _ => Ok(vec![]),
        }
    }

    /// A manifest by digest, checked against it.
    pub async fn manifest(&self, digest: &str) -> Result<Vec<u8>> {
        match self {
            Source::Registry(c) => {
                let child = c.reference.clone_with_digest(digest.to_string());
                let (raw, _) =
                    registry::fetch_manifest(&c.client, &c.auth, &child, c.retries).await?;
                Ok(raw)
            }
            Source::Local { memory, .. } => {
                if let Some(m) = memory.get(digest) {
                    return Ok(m.clone());
                }
                let p = self.local_path(digest)?;
                let data = std::fs::read(&p).map_err(Error::io("read manifest", &p))?;
                let actual = sha256_digest(&data);
                if actual != digest {
                    return Err(Error::DigestMismatch {
                        what: "manifest",
                        digest: digest.to_string(),
                        actual,
                    });
                }
                Ok(data)
            }
        }
    }

    fn local_path(&self, digest: &str) -> Result<PathBuf> {
        match self {
            Source::Local { blobs, extra, .. } => match extra.get(digest) {
                Some(p) => Ok(p.clone()),
                None => Ok(blobs.join(check_digest(digest)?)),
            },
            Source::Registry(_) => Err(Error::Other("a registry blob has no local path".into())),
        }
    }

    /// The blob as a file: where it is for a local source (its digest is checked by whoever
    /// reads it), downloaded into `tmp` and verified for a registry.
    pub async fn blob_file(&self, digest: &str, size: u64, tmp: &Path) -> Result<PathBuf> {
        match self {
            Source::Local { .. } => {
                let p = self.local_path(digest)?;
                if !p.exists() {
                    return Err(Error::Source {
                        source_name: p.display().to_string(),
                        reason: format!("blob {digest} is missing"),
                    });
                }
                Ok(p)
            }
            Source::Registry(c) => download(c, digest, size, tmp).await,
        }
    }
}

/// Download a blob into a file under `tmp`, retried from the start on a transient failure,
/// and check its digest and size.
async fn download(c: &Conn, digest: &str, size: u64, tmp: &Path) -> Result<PathBuf> {
    let path = tmp.join(check_digest(digest)?);
    let r = &c.reference;
    let mut attempt = 0;
    loop {
        let mut f = tokio::fs::File::create(&path)
            .await
            .map_err(Error::io("create", &path))?;
        match c.client.pull_blob(r, digest, &mut f).await {
            Ok(()) => break,
            Err(e) if attempt < c.retries && registry::transient(&e) => {
                tokio::time::sleep(registry::backoff(attempt)).await;
                attempt += 1;
            }
            Err(e) => return Err(registry::registry_err(r, "fetch blob", e)),
        }
    }
    let p = path.clone();
    let (actual, got, _) = tokio::task::spawn_blocking(move || file_digest(&p))
        .await
        .map_err(|e| Error::Other(format!("hash {digest}: {e}")))??;
    if actual != digest || got != size {
        let _ = std::fs::remove_file(&path);
        return Err(Error::DigestMismatch {
            what: "blob",
            digest: digest.to_string(),
            actual,
        });
    }
    Ok(path)
}
