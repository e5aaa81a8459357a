//! What `--format oci|v2s2` and `--dest-compress-format gzip|zstd` change: media types of the
//! manifest, config and layers, and each layer recompressed where asked (the config and with it
//! the diff_ids stay as they are, so only the layer digests and the manifest's change). A layer
//! already in the wanted compression is kept byte for byte, as containers/image does.
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::manifest::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use crate::verify::Hasher;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Oci,
    V2s2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compress {
    None,
    Gzip,
    Zstd,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format> {
        match s {
            "oci" => Ok(Format::Oci),
            "v2s2" => Ok(Format::V2s2),
            _ => Err(Error::InvalidArgument {
                arg: "--format",
                reason: format!("{s:?}: expected oci or v2s2"),
            }),
        }
    }

    pub fn of(media_type: &str) -> Format {
        if media_type == DOCKER_MANIFEST || media_type == DOCKER_LIST {
            Format::V2s2
        } else {
            Format::Oci
        }
    }

    pub fn manifest_type(self) -> &'static str {
        match self {
            Format::Oci => OCI_MANIFEST,
            Format::V2s2 => DOCKER_MANIFEST,
        }
    }

    pub fn index_type(self) -> &'static str {
        match self {
            Format::Oci => OCI_INDEX,
            Format::V2s2 => DOCKER_LIST,
        }
    }

    fn config_type(self) -> &'static str {
        match self {
            Format::Oci => "application/vnd.oci.image.config.v1+json",
            Format::V2s2 => "application/vnd.docker.container.image.v1+json",
        }
    }
}

impl Compress {
    pub fn parse(s: &str) -> Result<Compress> {
        match s {
            "gzip" => Ok(Compress::Gzip),
            "zstd" => Ok(Compress::Zstd),
            _ => Err(Error::InvalidArgument {
                arg: "--dest-compress-format",
                reason: format!("{s:?}: expected gzip or zstd"),
            }),
        }
    }

    /// A layer's compression by its media type; `None` for a blob that is not a plain image
    /// layer (foreign, non-distributable, an artifact), which is never touched.
    fn of_layer(media_type: &str) -> Option<Compress> {
        let layer = media_type.starts_with("application/vnd.oci.image.layer.v1.tar")
            || media_type.starts_with("application/vnd.docker.image.rootfs.diff.tar");
        if !layer {
            return None;
        }
        Some(if media_type.ends_with("gzip") {
            Compress::Gzip
        } else if media_type.ends_with("zstd") {
            Compress::Zstd
        } else {
            Compress::None
        })
    }
}

fn layer_type(format: Format, c: Compress) -> Result<&'static str> {
    Ok(match (format, c) {
        (Format::Oci, Compress::None) => "application/vnd.oci.image.layer.v1.tar",
        (Format::Oci, Compress::Gzip) => "application/vnd.oci.image.layer.v1.tar+gzip",
        (Format::Oci, Compress::Zstd) => "application/vnd.oci.image.layer.v1.tar+zstd",
        (Format::V2s2, Compress::None) => "application/vnd.docker.image.rootfs.diff.tar",
        (Format::V2s2, Compress::Gzip) => "application/vnd.docker.image.rootfs.diff.tar.gzip",
        (Format::V2s2, Compress::Zstd) => {
            return Err(Error::InvalidArgument {
                arg: "--format",
                reason: "v2s2 cannot hold zstd layers (add --dest-compress-format gzip)".into(),
            })
        }
    })
}

/// What a conversion wants.
#[derive(Clone, Copy, Debug, Default)]
pub struct Want {
    pub format: Option<Format>,
    pub compress: Option<Compress>,
}

/// One layer to recompress: which blob, into what.
pub struct Recompress {
    pub index: usize,
    pub digest: String,
    pub size: u64,
    pub to: Compress,
}

/// The layers of manifest `v` that need recompressing for `want`.
pub fn layers_to_recompress(v: &serde_json::Value, want: Want) -> Vec<Recompress> {
    let Some(to) = want.compress else {
        return vec![];
    };
    let layers = v["layers"].as_array().cloned().unwrap_or_default();
    layers
        .iter()
        .enumerate()
        .filter_map(|(index, l)| {
            let from = Compress::of_layer(l["mediaType"].as_str().unwrap_or(""))?;
            (from != to).then(|| Recompress {
                index,
                digest: l["digest"].as_str().unwrap_or("").to_string(),
                size: l["size"].as_u64().unwrap_or(0),
                to,
            })
        })
        .collect()
}

/// Rewrite image manifest `v` for `want`: `recompressed` gives each recompressed layer's index,
/// new digest and size. Returns the new raw manifest and its media type.
pub fn rewrite_manifest(
    v: &mut serde_json::Value,
    media_type: &str,
    want: Want,
    recompressed: &[(usize, String, u64, Compress)],
) -> Result<(Vec<u8>, String)> {
    let format = want.format.unwrap_or(Format::of(media_type));
    if let Some(layers) = v.get_mut("layers").and_then(|l| l.as_array_mut()) {
        for (i, l) in layers.iter_mut().enumerate() {
            let Some(mut c) = Compress::of_layer(l["mediaType"].as_str().unwrap_or("")) else {
                if format == Format::V2s2 && want.format.is_some() {
                    return Err(Error::InvalidArgument {
                        arg: "--format",
                        reason: format!(
                            "layer media type {} has no v2s2 equivalent",
                            l["mediaType"]
                        ),
                    });
                }
                continue;
            };
            if let Some((_, d, s, to)) = recompressed.iter().find(|r| r.0 == i) {
                l["digest"] = d.clone().into();
                l["size"] = (*s).into();
                c = *to;
            }
            l["mediaType"] = layer_type(format, c)?.into();
        }
    }
    if let Some(cfg) = v.get_mut("config") {
        let cmt = cfg["mediaType"].as_str().unwrap_or("");
        // Only image configs change type; an artifact's config keeps its own.
        if cmt == Format::Oci.config_type() || cmt == Format::V2s2.config_type() {
            cfg["mediaType"] = format.config_type().into();
        }
    }
    v["mediaType"] = format.manifest_type().into();
    let raw = serde_json::to_vec(v).map_err(|e| Error::Other(e.to_string()))?;
    Ok((raw, format.manifest_type().to_string()))
}

/// Decompress `src` and compress it again as `to`, into a new file under `dir`; returns its
/// digest, size and path.
pub fn recompress(src: &Path, to: Compress, dir: &Path) -> Result<(String, u64, PathBuf)> {
    let f = std::fs::File::open(src).map_err(Error::io("open layer", src))?;
    let mut plain = crate::verify::decompressed(f).map_err(Error::io("decompress", src))?;
    let out =
        tempfile::NamedTempFile::new_in(dir).map_err(Error::io("create temp file in", dir))?;
    let file = out
        .reopen()
        .map_err(Error::io("reopen temp file", out.path()))?;
    let hashing = HashingWriter {
        inner: std::io::BufWriter::new(file),
        hasher: Hasher::default(),
        len: 0,
    };
    let werr = |e| Error::io("recompress", src)(e);
    let hashing = match to {
        Compress::Gzip => {
            let mut e = flate2::write::GzEncoder::new(hashing, flate2::Compression::default());
            std::io::copy(&mut plain, &mut e).map_err(werr)?;
            e.finish().map_err(werr)?
        }
        Compress::Zstd => {
            let mut e = zstd::Encoder::new(hashing, 3).map_err(werr)?;
            std::io::copy(&mut plain, &mut e).map_err(werr)?;
            e.finish().map_err(werr)?
        }
        Compress::None => {
            let mut h = hashing;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = plain.read(&mut buf).map_err(werr)?;
                if n == 0 {
                    break h;
                }
                h.write_all(&buf[..n]).map_err(werr)?;
            }
        }
    };
    let HashingWriter {
        mut inner,
        hasher,
        len,
    } = hashing;
    inner.flush().map_err(werr)?;
    drop(inner);
    let digest = hasher.finish();
    let (_, path) = out
        .keep()
        .map_err(|e| Error::io("keep temp file", dir)(e.error))?;
    let dest = dir.join(crate::verify::check_digest(&digest)?);
    std::fs::rename(&path, &dest).map_err(Error::io("rename", &dest))?;
    Ok((digest, len, dest))
}

struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
    len: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2s2_refuses_zstd_layers() {
        let mut v = serde_json::json!({
            "schemaVersion": 2,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:x", "size": 1},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": "sha256:y", "size": 1}],
        });
        let want = Want {
            format: Some(Format::V2s2),
            compress: None,
        };
        let e = rewrite_manifest(&mut v, OCI_MANIFEST, want, &[]).unwrap_err();
        assert!(e.to_string().contains("zstd"), "{e}");
    }

    #[test]
    fn oci_to_v2s2_changes_only_media_types() {
        let mut v = serde_json::json!({
            "schemaVersion": 2,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:x", "size": 1},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:y", "size": 1}],
        });
        let want = Want {
            format: Some(Format::V2s2),
            compress: None,
        };
        let (_, mt) = rewrite_manifest(&mut v, OCI_MANIFEST, want, &[]).unwrap();
        assert_eq!(mt, DOCKER_MANIFEST);
        assert_eq!(v["layers"][0]["digest"], "sha256:y");
        assert_eq!(
            v["layers"][0]["mediaType"],
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        );
        assert_eq!(
            v["config"]["mediaType"],
            "application/vnd.docker.container.image.v1+json"
        );
    }
}
