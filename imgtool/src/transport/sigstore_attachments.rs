//! Sigstore signatures in a registry, where skopeo and cosign keep them: the OCI manifest
//! tagged `sha256-<hex>.sig` in the image's repository, one payload layer per signature
//! (formats in trust/sigstore.rs). `fetch` reads them (none when the tag does not exist);
//! `store` adds signatures to what is there, blobs first and the manifest last, so a
//! registry never holds a signature manifest whose payloads it lacks.
use oci_client::errors::OciDistributionError;
use oci_client::Reference;

use crate::error::{Error, Result};
use crate::transport::registry::{self, Conn};
use crate::trust::sigstore::{self, Signature};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// A signature payload is a few hundred bytes; anything far larger is not one.
const MAX_PAYLOAD: u64 = 4 << 20;

fn tag_ref(conn: &Conn, digest: &str) -> Result<Reference> {
    let tag = sigstore::attachment_tag(digest).ok_or_else(|| {
        Error::Other(format!(
            "{digest}: only sha256 manifests can carry sigstore signatures"
        ))
    })?;
    Ok(Reference::with_tag(
        conn.reference.registry().to_string(),
        conn.reference.repository().to_string(),
        tag,
    ))
}

fn not_found(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::ServerError { code, .. } => *code == 404,
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|x| {
            matches!(
                format!("{:?}", x.code).as_str(),
                "ManifestUnknown" | "NameUnknown"
            )
        }),
        _ => false,
    }
}

/// The raw attachment manifest of `digest`, if there is one.
async fn attachment_manifest(conn: &Conn, r: &Reference) -> Result<Option<Vec<u8>>> {
    let got = registry::with_retries(r, "fetch signatures", conn.retries, || {
        conn.client
            .pull_manifest_raw(r, &conn.auth, &[OCI_MANIFEST])
    })
    .await;
    match got {
        Ok((raw, _)) => Ok(Some(raw.to_vec())),
        Err(e) if not_found(&e) => Ok(None),
        Err(e) => Err(registry::registry_err(r, "fetch signatures", e)),
    }
}

/// The sigstore signatures the registry holds for the manifest `digest` of `conn`'s image.
pub async fn fetch(conn: &Conn, digest: &str) -> Result<Vec<Signature>> {
    let r = tag_ref(conn, digest)?;
    let Some(raw) = attachment_manifest(conn, &r).await? else {
        return Ok(vec![]);
    };
    let layers = sigstore::attachment_layers(&raw).map_err(|reason| Error::Registry {
        reference: r.whole(),
        step: "read signatures",
        reason,
    })?;
    let mut out = vec![];
    for (d, size, annotations) in layers {
        if size > MAX_PAYLOAD {
            return Err(Error::Registry {
                reference: r.whole(),
                step: "read signatures",
                reason: format!("signature payload {d} is {size} bytes"),
            });
        }
        let payload = registry::with_retries(&r, "fetch signature", conn.retries, || async {
            let mut buf = Vec::new();
            conn.client
                .pull_blob(&r, d.as_str(), &mut buf)
                .await
                .map(|()| buf)
        })
        .await
        .map_err(|e| registry::registry_err(&r, "fetch signature", e))?;
        let actual = crate::verify::sha256_digest(&payload);
        if actual != d {
            return Err(Error::DigestMismatch {
                what: "signature payload",
                digest: d,
                actual,
            });
        }
        out.push(Signature {
            payload,
            annotations,
        });
    }
    Ok(out)
}

/// Add `new` to the signatures the registry holds for the manifest `digest` (ones already
/// there are not repeated).
pub async fn store(conn: &Conn, digest: &str, new: &[Signature]) -> Result<()> {
    let mut all = fetch(conn, digest).await?;
    let before = all.len();
    for s in new {
        if !all.contains(s) {
            all.push(s.clone());
        }
    }
    if all.len() == before {
        return Ok(());
    }
    let r = tag_ref(conn, digest)?;
    let (manifest, config) = sigstore::attachment_manifest(&all);
    let mut blobs: Vec<&[u8]> = all.iter().map(|s| s.payload.as_slice()).collect();
    blobs.push(&config);
    for b in blobs {
        let d = crate::verify::sha256_digest(b);
        let has = registry::with_retries(&r, "check blob", conn.retries, || {
            conn.client.blob_exists(&r, &d)
        })
        .await
        .map_err(|e| registry::registry_err(&r, "check blob", e))?;
        if has {
            continue;
        }
        let body = bytes::Bytes::copy_from_slice(b);
        registry::with_retries(&r, "upload signature", conn.retries, || {
            conn.client.push_blob(&r, body.clone(), &d)
        })
        .await
        .map_err(|e| registry::registry_err(&r, "upload signature", e))?;
    }
    let ct = reqwest::header::HeaderValue::from_static(OCI_MANIFEST);
    let body = bytes::Bytes::from(manifest);
    registry::with_retries(&r, "push signatures", conn.retries, || {
        conn.client.push_manifest_raw(&r, body.clone(), ct.clone())
    })
    .await
    .map(|_| ())
    .map_err(|e| registry::registry_err(&r, "push signatures", e))
}
