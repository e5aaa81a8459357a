//! A registry as a copy's destination: a blob the repository already has is skipped after a
//! HEAD; one in another repository of the same registry is mounted; any other is uploaded from
//! its file in one PUT, or in chunks when the registry refuses that. Manifests go last, the
//! children of an index before the index, so a registry never holds a manifest whose blobs it
//! lacks.
use std::path::Path;
use std::sync::Arc;

use futures_util::StreamExt;
use oci_client::errors::OciDistributionError;
use oci_client::{Client, Reference, RegistryOperation};
use tokio::io::AsyncReadExt;
use tokio::sync::OnceCell;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::progress::BlobProgress;
use crate::transport::registry::{self, Conn};

pub struct RegistryDest {
    conn: Conn,
    ctx: Context,
    insecure: bool,
    /// A second client for chunked uploads, made when a registry refuses a monolithic one.
    chunked: OnceCell<Client>,
}

impl RegistryDest {
    pub async fn open(ctx: &Context, r: &Reference) -> Result<RegistryDest> {
        let conn = registry::connect(ctx, r, RegistryOperation::Push).await?;
        let conf = crate::registries_conf::for_context(ctx)?;
        let insecure = conf.insecure(conn.reference.registry());
        Ok(RegistryDest {
            conn,
            ctx: ctx.clone(),
            insecure,
            chunked: OnceCell::new(),
        })
    }

    pub fn reference(&self) -> &Reference {
        &self.conn.reference
    }

    /// The connection, for requests beyond blobs and manifests (signatures).
    pub fn conn(&self) -> &Conn {
        &self.conn
    }

    pub async fn has_blob(&self, digest: &str) -> Result<bool> {
        let r = &self.conn.reference;
        registry::with_retries(r, "check blob", self.conn.retries, || {
            self.conn.client.blob_exists(r, digest)
        })
        .await
        .map_err(|e| registry::registry_err(r, "check blob", e))
    }

    /// Mount `digest` from `from` when it is another repository of this registry; whether
    /// that worked (a registry may answer a mount by opening an upload instead).
    pub async fn try_mount(&self, from: Option<&Reference>, digest: &str) -> bool {
        let r = &self.conn.reference;
        let Some(from) = from else { return false };
        if from.registry() != r.registry() || from.repository() == r.repository() {
            return false;
        }
        self.conn.client.mount_blob(r, from, digest).await.is_ok()
    }

    /// Upload the blob in `path`; `bar` counts the bytes as they go.
    pub async fn put_blob(
        &self,
        digest: &str,
        size: u64,
        path: &Path,
        bar: &Arc<BlobProgress>,
    ) -> Result<()> {
        let r = &self.conn.reference;
        let mut attempt = 0;
        let mut client = &self.conn.client;
        loop {
            let stream = file_stream(path, Arc::clone(bar)).await?;
            match client.push_blob_stream(r, stream, digest, Some(size)).await {
                Ok(_) => return Ok(()),
                Err(e) if attempt < self.conn.retries && registry::transient(&e) => {
                    tokio::time::sleep(registry::backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) if refuses_monolithic(&e) && std::ptr::eq(client, &self.conn.client) => {
                    tracing::debug!("monolithic upload refused ({e}); uploading in chunks");
                    client = self.chunked_client().await?;
                }
                Err(e) => return Err(registry::registry_err(r, "upload blob", e)),
            }
        }
    }

    async fn chunked_client(&self) -> Result<&Client> {
        self.chunked
            .get_or_try_init(|| async {
                let r = &self.conn.reference;
                let c =
                    registry::client_with(&self.ctx, r.registry(), self.insecure, false).await?;
                c.auth(r, &self.conn.auth, RegistryOperation::Push)
                    .await
                    .map_err(|e| registry::registry_err(r, "authenticate", e))?;
                Ok(c)
            })
            .await
    }

    /// PUT a manifest under `digest` (a child of an index) or, with `digest` `None`, under the
    /// destination's own tag or digest.
    pub async fn put_manifest(
        &self,
        raw: &[u8],
        media_type: &str,
        digest: Option<&str>,
    ) -> Result<()> {
        let base = &self.conn.reference;
        let r = match digest {
            Some(d) => Reference::with_digest(
                base.registry().to_string(),
                base.repository().to_string(),
                d.to_string(),
            ),
            None => base.clone(),
        };
        let ct: reqwest::header::HeaderValue =
            media_type
                .parse()
                .map_err(|_| Error::UnsupportedMediaType {
                    what: "manifest",
                    digest: crate::verify::sha256_digest(raw),
                    media_type: media_type.to_string(),
                })?;
        let body = bytes::Bytes::copy_from_slice(raw);
        registry::with_retries(&r, "push manifest", self.conn.retries, || {
            self.conn
                .client
                .push_manifest_raw(&r, body.clone(), ct.clone())
        })
        .await
        .map(|_| ())
        .map_err(|e| registry::registry_err(&r, "push manifest", e))
    }
}

/// A registry that wants chunks answers a monolithic PUT with a client error other than an
/// authentication one.
fn refuses_monolithic(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::ServerError { code, .. } => matches!(code, 400 | 405 | 413 | 416),
        OciDistributionError::SpecViolationError(_) => true,
        _ => false,
    }
}

/// The file's bytes as a stream of 1 MiB chunks, counted on `bar`.
async fn file_stream(
    path: &Path,
    bar: Arc<BlobProgress>,
) -> Result<
    impl futures_util::Stream<Item = oci_client::errors::Result<bytes::Bytes>> + Send + 'static,
> {
    let f = tokio::fs::File::open(path)
        .await
        .map_err(Error::io("open blob", path))?;
    Ok(
        futures_util::stream::unfold(Some((f, bar)), |state| async move {
            let (mut f, bar) = state?;
            let mut buf = bytes::BytesMut::with_capacity(1 << 20);
            match f.read_buf(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    bar.inc(n as u64);
                    Some((Ok(buf.freeze()), Some((f, bar))))
                }
                // The error ends the stream: the upload fails and is retried from the start.
                Err(e) => Some((Err(OciDistributionError::IoError(e)), None)),
            }
        })
        .boxed(),
    )
}
