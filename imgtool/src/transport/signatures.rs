//! The signatures of a registry image that a policy asks for: sigstore attachments from the
//! registry itself (when registries.d's `use-sigstore-attachments` says it keeps them) and GPG
//! simple signatures from the registries.d `lookaside` store, `file://` or `http(s)://`, at
//! `<lookaside>/<repository>@sha256=<hex>/signature-N` for N = 1, 2, … up to the first missing
//! one (as containers/image reads them). `store_simple` writes a new one there (a `file://`
//! `lookaside-staging` or `lookaside` only, as skopeo writes).
use crate::error::{Error, Result};
use crate::reference::Parts;
use crate::transport::registry::Conn;
use crate::trust::{Signatures, Wants};

/// More simple signatures than this for one image is taken as a broken store.
const MAX_SIMPLE: usize = 64;
/// A simple signature is a few hundred bytes.
const MAX_SIMPLE_SIZE: usize = 1 << 20;

/// The signatures `wants` names for the manifest `digest` of `image`, read through `conn`.
pub async fn fetch(conn: &Conn, image: &Parts, digest: &str, wants: Wants) -> Result<Signatures> {
    let mut out = Signatures::default();
    let rd = crate::accept::registries_d()?;
    if wants.sigstore {
        if rd.use_sigstore_attachments(image) {
            out.sigstore = super::sigstore_attachments::fetch(conn, digest).await?;
        } else {
            out.not_looked.push(format!(
                "registries.d does not set use-sigstore-attachments for {}",
                image.name()
            ));
        }
    }
    if wants.simple {
        match rd.lookaside(image) {
            Some(base) => out.simple = lookaside(&base, image, digest).await?,
            None => out.not_looked.push(format!(
                "registries.d names no lookaside for {}",
                image.name()
            )),
        }
    }
    Ok(out)
}

async fn lookaside(base: &str, image: &Parts, digest: &str) -> Result<Vec<Vec<u8>>> {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    let dir = format!(
        "{}/{}@sha256={hex}",
        base.trim_end_matches('/'),
        image.repository
    );
    let fail = |reason: String| Error::Registry {
        reference: image.to_string(),
        step: "read lookaside signatures",
        reason,
    };
    let mut out = vec![];
    for n in 1..=MAX_SIMPLE {
        let url = format!("{dir}/signature-{n}");
        let got = if let Some(path) = url.strip_prefix("file://") {
            match std::fs::read(path) {
                Ok(d) => Some(d),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(fail(format!("{path}: {e}"))),
            }
        } else if url.starts_with("http://") || url.starts_with("https://") {
            let resp = reqwest::get(&url)
                .await
                .map_err(|e| fail(format!("{url}: {e}")))?;
            match resp.status().as_u16() {
                404 => None,
                200 => Some(
                    resp.bytes()
                        .await
                        .map_err(|e| fail(format!("{url}: {e}")))?
                        .to_vec(),
                ),
                s => return Err(fail(format!("{url}: HTTP {s}"))),
            }
        } else {
            return Err(fail(format!(
                "lookaside {base:?} is neither file:// nor http(s)://"
            )));
        };
        match got {
            Some(d) if d.len() > MAX_SIMPLE_SIZE => {
                return Err(fail(format!("{url} is {} bytes", d.len())))
            }
            Some(d) => out.push(d),
            None => break,
        }
    }
    Ok(out)
}

/// The local directory where simple signatures of `image`'s manifest `digest` are written.
pub fn simple_store_dir(image: &Parts, digest: &str) -> Result<std::path::PathBuf> {
    let d = crate::accept::registries_d()?;
    let Some(base) = d.lookaside_write(image) else {
        return Err(Error::Other(format!(
            "{}: no lookaside (or lookaside-staging) in registries.d to store signatures in",
            image.name()
        )));
    };
    let Some(path) = base.strip_prefix("file://") else {
        return Err(Error::Other(format!(
            "{}: signatures can only be written to a file:// lookaside, not {base}",
            image.name()
        )));
    };
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    Ok(std::path::Path::new(path).join(format!("{}@sha256={hex}", image.repository)))
}

/// Add the simple signature `sig` for the manifest `digest` of `image`: the next free
/// `signature-N`, written beside it and renamed without replacing one that appeared.
pub fn store_simple(image: &Parts, digest: &str, sig: &[u8]) -> Result<()> {
    let dir = simple_store_dir(image, digest)?;
    std::fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
    for n in 1..=MAX_SIMPLE {
        let p = dir.join(format!("signature-{n}"));
        match std::fs::read(&p) {
            // Already there: nothing to add.
            Ok(existing) if existing == sig => return Ok(()),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("read", &p)(e)),
        }
        let mut tmp = tempfile::Builder::new()
            .prefix(".imgtool-signature-")
            .tempfile_in(&dir)
            .map_err(Error::io("create temp file in", &dir))?;
        std::io::Write::write_all(&mut tmp, sig).map_err(Error::io("write", tmp.path()))?;
        match tmp.persist_noclobber(&p) {
            Ok(_) => return Ok(()),
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io("write", &p)(e.error)),
        }
    }
    Err(Error::Other(format!(
        "{}: more than {MAX_SIMPLE} signatures",
        dir.display()
    )))
}
