//! Local destinations that are OCI image layouts: an `oci:DIR` (created, or added to when it
//! already is a layout; anything else there is refused before a byte is copied), an
//! `oci-archive:FILE` (a layout built in a temp directory beside FILE, tarred to a temp file
//! and renamed, so a failed copy leaves no partial archive), and the local store (blobs through
//! its verified writer, the name recorded in its index). Blobs are copied with their digest
//! checked, into a temp file renamed into place. The source's sigstore signatures are kept
//! beside the image in each (transport/layout_signatures.rs), the store included.
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::manifest::OCI_MANIFEST;
use crate::progress::BlobProgress;
use crate::store::{self, Store};
use crate::transport::layout_signatures;
use crate::transport::record::{record_image, Record};
use crate::trust::sigstore::Signature;
use crate::verify::{check_digest, Hasher};

pub enum LayoutDest {
    /// `dir` is the layout; for an archive, `archive` is the file it becomes at commit.
    Dir {
        dir: PathBuf,
        tag: Option<String>,
        archive: Option<(PathBuf, tempfile::TempDir)>,
    },
    Store {
        store: Arc<Store>,
        name: String,
    },
}

fn dest_err(name: &Path, reason: impl Into<String>) -> Error {
    Error::Source {
        source_name: name.display().to_string(),
        reason: reason.into(),
    }
}

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
const EMPTY_INDEX: &str =
    r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;

fn init_layout(dir: &Path) -> Result<()> {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(Error::io("create", &blobs))?;
    let l = dir.join("oci-layout");
    if !l.exists() {
        store::write_file_atomic(&l, OCI_LAYOUT)?;
    }
    let i = dir.join("index.json");
    if !i.exists() {
        store::write_file_atomic(&i, EMPTY_INDEX.as_bytes())?;
    }
    Ok(())
}

impl LayoutDest {
    /// `oci:DIR[:tag]`: DIR may be missing, empty, or a layout.
    pub fn oci_dir(dir: &Path, tag: Option<String>) -> Result<LayoutDest> {
        match std::fs::read_dir(dir) {
            Ok(mut rd) => {
                if !dir.join("oci-layout").exists() && rd.next().is_some() {
                    return Err(dest_err(
                        dir,
                        "exists and is not an OCI image layout (no oci-layout file); refusing to write into it",
                    ));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
                return Err(dest_err(dir, "exists and is not a directory"))
            }
            Err(e) => return Err(Error::io("read directory", dir)(e)),
        }
        init_layout(dir)?;
        Ok(LayoutDest::Dir {
            dir: dir.to_path_buf(),
            tag,
            archive: None,
        })
    }

    /// `oci-archive:FILE[:tag]`: a fresh layout in a temp directory beside FILE.
    pub fn oci_archive(file: &Path, tag: Option<String>) -> Result<LayoutDest> {
        let parent = archive_parent(file)?;
        let tmp = tempfile::Builder::new()
            .prefix(".imgtool-oci-archive-")
            .tempdir_in(&parent)
            .map_err(Error::io("create temp directory in", &parent))?;
        init_layout(tmp.path())?;
        Ok(LayoutDest::Dir {
            dir: tmp.path().to_path_buf(),
            tag,
            archive: Some((file.to_path_buf(), tmp)),
        })
    }

    pub fn store(store: Arc<Store>, name: String) -> LayoutDest {
        LayoutDest::Store { store, name }
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        match self {
            LayoutDest::Dir { dir, .. } => check_digest(digest)
                .map(|h| dir.join("blobs/sha256").join(h).exists())
                .unwrap_or(false),
            LayoutDest::Store { store, .. } => store.has_blob(digest),
        }
    }

    /// Copy the blob file in, checking its digest.
    pub fn put_blob(&self, digest: &str, src: &Path, bar: &BlobProgress) -> Result<()> {
        let mut f = std::fs::File::open(src).map_err(Error::io("open blob", src))?;
        let mut buf = vec![0u8; 1 << 20];
        match self {
            LayoutDest::Store { store, .. } => {
                let mut w = store.blob_writer()?;
                loop {
                    let n = f.read(&mut buf).map_err(Error::io("read blob", src))?;
                    if n == 0 {
                        break;
                    }
                    w.write(&buf[..n])?;
                    bar.inc(n as u64);
                }
                w.commit("blob", digest)
            }
            LayoutDest::Dir { dir, .. } => {
                let dest = dir.join("blobs/sha256").join(check_digest(digest)?);
                let tmp = tempfile::NamedTempFile::new_in(dir.join("blobs/sha256"))
                    .map_err(Error::io("create temp blob in", dir))?;
                let mut h = Hasher::default();
                let mut out = tmp.as_file();
                loop {
                    let n = f.read(&mut buf).map_err(Error::io("read blob", src))?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                    out.write_all(&buf[..n])
                        .map_err(Error::io("write blob", tmp.path()))?;
                    bar.inc(n as u64);
                }
                let actual = h.finish();
                if actual != digest {
                    return Err(Error::DigestMismatch {
                        what: "blob",
                        digest: digest.to_string(),
                        actual,
                    });
                }
                tmp.persist(&dest)
                    .map_err(|e| Error::io("move blob into place", &dest)(e.error))?;
                Ok(())
            }
        }
    }

    /// Store a manifest (or index) held in memory.
    pub fn put_manifest(&self, raw: &[u8], digest: &str) -> Result<()> {
        match self {
            LayoutDest::Store { store, .. } => store.put_blob("manifest", digest, raw),
            LayoutDest::Dir { dir, .. } => put_layout_blob(dir, digest, raw),
        }
    }

    /// Name the top manifest `digest`, with `sigs` (its sigstore signatures) kept beside it:
    /// the store's index, or the layout's `index.json` (an entry with the same `ref.name` is
    /// replaced, the signatures' under `sha256-<hex>.sig` as a registry tags them), then for
    /// an archive the tarball, renamed into place.
    pub fn commit(
        self,
        raw: &[u8],
        digest: &str,
        media_type: &str,
        sigs: &[Signature],
    ) -> Result<()> {
        self.put_manifest(raw, digest)?;
        match self {
            LayoutDest::Store { store, name } => record_image(
                &store,
                Record {
                    manifest_digest: digest,
                    media_type,
                    size: raw.len() as u64,
                    name: Some(name),
                    repo_digest: None,
                    signatures: sigs,
                },
            ),
            LayoutDest::Dir { dir, tag, archive } => {
                if let Some(att) = layout_signatures::attachment(digest, sigs) {
                    for (d, bytes) in att.blobs_then_manifest() {
                        put_layout_blob(&dir, d, bytes)?;
                    }
                    let size = att.manifest.len() as u64;
                    add_index_entry(&dir, Some(&att.tag), size, &att.digest, OCI_MANIFEST)?;
                }
                add_index_entry(&dir, tag.as_deref(), raw.len() as u64, digest, media_type)?;
                if let Some((file, tmp)) = archive {
                    tar_dir(tmp.path(), &file)?;
                }
                Ok(())
            }
        }
    }
}

/// Write a blob held in memory into the layout at `dir` (atomically; kept when present).
fn put_layout_blob(dir: &Path, digest: &str, raw: &[u8]) -> Result<()> {
    let dest = dir.join("blobs/sha256").join(check_digest(digest)?);
    if !dest.exists() {
        store::write_file_atomic(&dest, raw)?;
    }
    Ok(())
}

/// The directory an archive is written in (it must exist), refusing a directory as the file.
pub fn archive_parent(file: &Path) -> Result<PathBuf> {
    if file.is_dir() {
        return Err(dest_err(file, "is a directory, not an archive file"));
    }
    let parent = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(dest_err(
            file,
            format!("directory {} does not exist", parent.display()),
        ));
    }
    Ok(parent)
}

fn add_index_entry(
    dir: &Path,
    tag: Option<&str>,
    size: u64,
    digest: &str,
    media_type: &str,
) -> Result<()> {
    let p = dir.join("index.json");
    let data = std::fs::read(&p).map_err(Error::io("read", &p))?;
    let mut index: serde_json::Value = serde_json::from_slice(&data).map_err(|e| Error::Parse {
        what: p.display().to_string(),
        reason: e.to_string(),
    })?;
    let Some(entries) = index.get_mut("manifests").and_then(|m| m.as_array_mut()) else {
        return Err(Error::Parse {
            what: p.display().to_string(),
            reason: "no manifests array".into(),
        });
    };
    let name_of = |e: &serde_json::Value| {
        e.pointer(&format!(
            "/annotations/{}",
            store::ANNOTATION_REF_NAME.replace('/', "~1")
        ))
        .and_then(|v| v.as_str())
        .map(String::from)
    };
    entries.retain(|e| match tag {
        Some(t) => name_of(e).as_deref() != Some(t),
        None => !(name_of(e).is_none() && e["digest"] == digest),
    });
    let mut entry = serde_json::json!({"mediaType": media_type, "digest": digest, "size": size});
    if let Some(t) = tag {
        entry["annotations"] = serde_json::json!({ store::ANNOTATION_REF_NAME: t });
    }
    entries.push(entry);
    let out = serde_json::to_vec(&index).map_err(|e| Error::Other(e.to_string()))?;
    store::write_file_atomic(&p, &out)
}

/// Tar the layout at `dir` into `file` through a temp file beside it.
fn tar_dir(dir: &Path, file: &Path) -> Result<()> {
    let parent = archive_parent(file)?;
    let tmp = tempfile::NamedTempFile::new_in(&parent)
        .map_err(Error::io("create temp archive in", &parent))?;
    {
        let mut b = tar::Builder::new(std::io::BufWriter::new(tmp.as_file()));
        b.mode(tar::HeaderMode::Deterministic);
        b.follow_symlinks(false);
        for name in ["oci-layout", "index.json"] {
            b.append_path_with_name(dir.join(name), name)
                .map_err(Error::io("write into archive", file))?;
        }
        b.append_dir_all("blobs", dir.join("blobs"))
            .map_err(Error::io("write into archive", file))?;
        let mut w = b.into_inner().map_err(Error::io("write archive", file))?;
        w.flush().map_err(Error::io("write archive", file))?;
    }
    tmp.as_file()
        .sync_all()
        .map_err(Error::io("fsync archive", file))?;
    tmp.persist(file)
        .map_err(|e| Error::io("move archive into place", file)(e.error))?;
    Ok(())
}
