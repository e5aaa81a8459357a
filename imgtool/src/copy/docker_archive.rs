//! `docker-archive:FILE[:NAME:TAG]` as a copy's destination, in `docker save`'s layout:
//! `<config-hex>.json`, `<diffid-hex>/layer.tar` uncompressed, `manifest.json` naming the image
//! by its RepoTag. The layers are decompressed (each checked against its diff_id) into a temp
//! file beside FILE that is renamed into place only when complete.
use std::collections::HashMap;
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};

pub struct DockerArchiveDest {
    file: PathBuf,
    /// `name:tag` as normalised (`docker.io/library/x:1`), or none.
    repo_tag: Option<String>,
    /// Where each blob the copy brought is (kept alive by the engine until the commit).
    blobs: Mutex<HashMap<String, PathBuf>>,
}

fn dest_err(file: &Path, reason: impl Into<String>) -> Error {
    Error::Source {
        source_name: file.display().to_string(),
        reason: reason.into(),
    }
}

impl DockerArchiveDest {
    pub fn open(file: &Path, name: Option<&str>) -> Result<DockerArchiveDest> {
        super::layout::archive_parent(file)?;
        if std::fs::metadata(file).is_ok_and(|m| m.len() > 0) {
            // As skopeo: a docker-archive is written whole, never added to.
            return Err(dest_err(
                file,
                "exists; a docker-archive is not modified (remove it first)",
            ));
        }
        let repo_tag = name
            .map(|n| crate::reference::parse_reference(n).map(|r| crate::reference::store_name(&r)))
            .transpose()?;
        Ok(DockerArchiveDest {
            file: file.to_path_buf(),
            repo_tag,
            blobs: Mutex::new(HashMap::new()),
        })
    }

    pub fn put_blob(&self, digest: &str, path: &Path) {
        self.blobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(digest.to_string(), path.to_path_buf());
    }

    fn blob(&self, digest: &str) -> Result<PathBuf> {
        self.blobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
            .cloned()
            .ok_or_else(|| dest_err(&self.file, format!("blob {digest} was not copied")))
    }

    /// Write the archive for the image manifest `raw`.
    pub fn commit(self, raw: &[u8]) -> Result<()> {
        let manifest: serde_json::Value =
            serde_json::from_slice(raw).map_err(|e| Error::Parse {
                what: "manifest".into(),
                reason: e.to_string(),
            })?;
        let config_digest = manifest
            .pointer("/config/digest")
            .and_then(|d| d.as_str())
            .ok_or_else(|| dest_err(&self.file, "manifest has no config"))?;
        let config_path = self.blob(config_digest)?;
        let config_raw = std::fs::read(&config_path).map_err(Error::io("read", &config_path))?;
        let config: serde_json::Value =
            serde_json::from_slice(&config_raw).map_err(|e| Error::Parse {
                what: format!("image config {config_digest}"),
                reason: e.to_string(),
            })?;
        let diff_ids: Vec<String> = config
            .pointer("/rootfs/diff_ids")
            .and_then(|d| d.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let layers: Vec<String> = manifest["layers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| l["digest"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if layers.len() != diff_ids.len() {
            return Err(Error::LayerCountMismatch {
                image: config_digest.to_string(),
                layers: layers.len(),
                diff_ids: diff_ids.len(),
            });
        }
        let parent = super::layout::archive_parent(&self.file)?;
        let tmp = tempfile::NamedTempFile::new_in(&parent)
            .map_err(Error::io("create temp archive in", &parent))?;
        let werr = |e| Error::io("write archive", &self.file)(e);
        {
            let mut tar = tar::Builder::new(std::io::BufWriter::new(tmp.as_file()));
            let config_file = format!("{}.json", config_digest.trim_start_matches("sha256:"));
            append(
                &mut tar,
                &config_file,
                &mut std::io::Cursor::new(&config_raw),
                config_raw.len() as u64,
            )
            .map_err(werr)?;
            let mut files = vec![];
            for (digest, diff_id) in layers.iter().zip(&diff_ids) {
                let blob = self.blob(digest)?;
                let file = format!("{}/layer.tar", diff_id.trim_start_matches("sha256:"));
                // A tar header needs the size up front: decompress into an unnamed temp file.
                let mut plain = tempfile::tempfile_in(&parent)
                    .map_err(Error::io("create temp file in", &parent))?;
                let src = std::fs::File::open(&blob).map_err(Error::io("open layer", &blob))?;
                let dec =
                    crate::verify::decompressed(src).map_err(Error::io("decompress", &blob))?;
                let mut hashing = crate::verify::HashingReader::new(dec);
                let n = std::io::copy(&mut hashing, &mut plain)
                    .map_err(Error::io("decompress", &blob))?;
                crate::verify::expect_diff_id(digest, diff_id, hashing.finish())?;
                plain.rewind().map_err(Error::io("rewind", &parent))?;
                if !files.contains(&file) {
                    append(&mut tar, &file, &mut plain, n).map_err(werr)?;
                }
                files.push(file);
            }
            let m = serde_json::json!([{
                "Config": config_file,
                "RepoTags": self.repo_tag.iter().collect::<Vec<_>>(),
                "Layers": files,
            }]);
            let m = serde_json::to_vec(&m).map_err(|e| Error::Other(e.to_string()))?;
            append(
                &mut tar,
                "manifest.json",
                &mut std::io::Cursor::new(&m),
                m.len() as u64,
            )
            .map_err(werr)?;
            let mut w = tar.into_inner().map_err(werr)?;
            w.flush().map_err(werr)?;
        }
        tmp.as_file().sync_all().map_err(werr)?;
        tmp.persist(&self.file)
            .map_err(|e| Error::io("move archive into place", &self.file)(e.error))?;
        Ok(())
    }
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    data: &mut impl std::io::Read,
    size: u64,
) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    tar.append_data(&mut h, path, data)
}
