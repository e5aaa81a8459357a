//! Pulling from a registry: the manifest (choosing the platform from an index ourselves, variant
//! included), the policy gate and the image's signatures, the config, then the missing layers
//! concurrently, each verified against its digest while it streams into a temp file, retried with
//! backoff and resumed with a Range request after a transient failure. Diff_ids are checked by the
//! pass that first decompresses a layer (see `image.rs`), or here while the layer streams in with
//! `--verify-diff-ids`. The connection, retries and errors are `registry.rs`'s.

use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use oci_client::client::BlobResponse;
use oci_client::errors::OciDistributionError;
use oci_client::{Client, Reference};
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::follow::{Announce, Follow, FollowedLayer};
use crate::manifest::{
    choose_platform, is_index, manifest_media_type, DOCKER_MANIFEST, OCI_MANIFEST,
};
use crate::progress::Progress;
use crate::store::{BlobWriter, Store};
use crate::transport::record::{record_image, Record};
use crate::transport::registry::{
    backoff, connect_for_pull, fetch_manifest, registry_err, stall_reason, stalled, transient,
    warn_stall, Conn, CONCURRENT_LAYERS,
};
use crate::verify::{expect_diff_id, sha256_digest, StreamingDiffId};

/// Pass the image the user named `named`, read from `conn`, through the policy gate; returns
/// its sigstore signatures, to be kept with it in the store. GPG signatures are fetched only
/// when the policy needs them; sigstore attachments also wherever registries.d says the
/// registry keeps them, as podman keeps an image's signatures in its storage, so that the
/// image can be pushed or saved later with them.
pub async fn accept_pulled(
    conn: &Conn,
    named: &Reference,
    digest: &str,
) -> Result<Vec<crate::trust::sigstore::Signature>> {
    let parts = crate::reference::parts_of(named);
    let gate = crate::accept::Gate::new(
        crate::trust::scope::Scoped::Docker(parts.clone()),
        format!("docker://{}", named.whole()),
    )?;
    let wants = gate.wants();
    let mut sigs = if wants.any() {
        super::signatures::fetch(conn, &parts, digest, wants).await?
    } else {
        crate::trust::Signatures::default()
    };
    gate.check(digest, &sigs)?;
    if !wants.sigstore && crate::accept::uses_attachments(&parts)? {
        // Only kept, not needed: a registry that fails to say costs the signatures, not the
        // pull.
        match super::sigstore_attachments::fetch(conn, digest).await {
            Ok(s) => sigs.sigstore = s,
            Err(e) => errln!("imgtool: warning: the image's signatures are not kept: {e}"),
        }
    }
    Ok(sigs.sigstore)
}

/// Pull `r` into the store, record its name; returns the manifest digest.
pub fn pull(ctx: &Context, store: &Store, r: &Reference, progress: &Progress) -> Result<String> {
    pull_announcing(ctx, store, r, progress, None)
}

/// `pull`, and once the layers are known send them to `announce`, each with a `Follow` that
/// lets the receiver read the layer while it downloads.
pub fn pull_announcing(
    ctx: &Context,
    store: &Store,
    r: &Reference,
    progress: &Progress,
    announce: Option<Announce>,
) -> Result<String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("start async runtime: {e}")))?;
    rt.block_on(pull_async(ctx, store, r, progress, announce))
}

async fn pull_async(
    ctx: &Context,
    store: &Store,
    r: &Reference,
    progress: &Progress,
    announce: Option<Announce>,
) -> Result<String> {
    let retries = ctx.registry.retries;
    let named = r;
    let (conn, raw, digest) = connect_for_pull(ctx, r).await?;
    let mut signatures = accept_pulled(&conn, named, &digest).await?;
    let (client, auth, r) = (&conn.client, &conn.auth, &conn.reference);
    let repo_digest = digest.clone();
    let mut media_type = manifest_media_type(&raw);
    let (raw, digest) = if is_index(&media_type) {
        let index: ImageIndex = serde_json::from_slice(&raw).map_err(|e| Error::Parse {
            what: format!("image index {digest} of {}", r.whole()),
            reason: e.to_string(),
        })?;
        let chosen = choose_platform(&index, &ctx.registry.platform).map_err(|available| {
            Error::NoMatchingPlatform {
                reference: r.whole(),
                platform: ctx.registry.platform.to_string(),
                available,
            }
        })?;
        let child = r.clone_with_digest(chosen.digest().to_string());
        let (raw, d) = fetch_manifest(client, auth, &child, retries).await?;
        media_type = manifest_media_type(&raw);
        // They sign the index, which the store does not keep: they would sign nothing there.
        signatures.clear();
        (raw, d)
    } else {
        (raw, digest)
    };
    if media_type != OCI_MANIFEST && media_type != DOCKER_MANIFEST {
        return Err(Error::UnsupportedMediaType {
            what: "manifest",
            digest,
            media_type,
        });
    }
    let manifest: ImageManifest = serde_json::from_slice(&raw).map_err(|e| Error::Parse {
        what: format!("manifest {digest} of {}", r.whole()),
        reason: e.to_string(),
    })?;

    let config_desc = manifest.config();
    let config_digest = config_desc.digest().to_string();
    let config_raw = if store.has_blob(&config_digest) {
        store.read_blob(&config_digest)?
    } else {
        let mut attempt = 0;
        loop {
            let mut buf = Vec::new();
            match client.pull_blob(r, config_digest.as_str(), &mut buf).await {
                Ok(()) => break buf,
                Err(e) if attempt < retries && transient(&e) => {
                    warn_stall(r, "fetch config", &e, attempt);
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                Err(OciDistributionError::DigestError(_)) => {
                    return Err(Error::DigestMismatch {
                        what: "config",
                        digest: config_digest.clone(),
                        actual: sha256_digest(&buf),
                    })
                }
                Err(e) => return Err(registry_err(r, "fetch config", e)),
            }
        }
    };
    let actual = sha256_digest(&config_raw);
    if actual != config_digest {
        return Err(Error::DigestMismatch {
            what: "config",
            digest: config_digest,
            actual,
        });
    }
    let config: ImageConfiguration =
        serde_json::from_slice(&config_raw).map_err(|e| Error::Parse {
            what: format!("image config {config_digest}"),
            reason: e.to_string(),
        })?;
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers().len() {
        return Err(Error::LayerCountMismatch {
            image: config_digest,
            layers: manifest.layers().len(),
            diff_ids: diff_ids.len(),
        });
    }

    // One Follow per layer when an unpack reads along, none otherwise.
    let follows: Vec<Arc<Follow>> = match &announce {
        Some(a) => {
            let follows: Vec<_> = manifest.layers().iter().map(|_| Follow::new()).collect();
            let layers = manifest.layers().iter().zip(diff_ids).zip(&follows);
            // A receiver that went away just does not follow.
            let _ = a.layers.send(
                layers
                    .map(|((d, id), f)| FollowedLayer {
                        descriptor: d.clone(),
                        diff_id: id.clone(),
                        follow: Arc::clone(f),
                    })
                    .collect(),
            );
            follows
        }
        None => Vec::new(),
    };
    // Layers start in manifest order, so a follower reading base first gets its bytes first.
    let pulling = Pulling {
        client,
        r,
        store,
        progress,
        retries,
        announce: announce.as_ref(),
    };
    let pulling = &pulling;
    let follows = &follows;
    let results: Vec<Result<()>> =
        futures_util::stream::iter(manifest.layers().iter().zip(diff_ids).enumerate())
            .map(|(i, (layer, diff_id))| async move {
                let verify = ctx.verify_diff_ids.then_some(diff_id.as_str());
                let follow = follows.get(i).map(Arc::as_ref);
                let res = fetch_layer(pulling, layer, verify, follow).await;
                if let Some(f) = follow {
                    match (&res, store.blob_path(layer.digest().as_ref())) {
                        (Ok(()), Ok(path)) => f.finish(&path),
                        (Err(e), _) => f.fail(e.to_string()),
                        (_, Err(e)) => f.fail(e.to_string()),
                    }
                }
                res
            })
            .buffer_unordered(CONCURRENT_LAYERS)
            .collect()
            .await;
    // Results come in completion order; a real failure explains the cancellations it caused.
    let (cancelled, failed): (Vec<_>, Vec<_>) = results
        .into_iter()
        .filter_map(|r| r.err())
        .partition(|e| matches!(e, Error::PullCancelled { .. }));
    if let Some(e) = failed.into_iter().chain(cancelled).next() {
        return Err(e);
    }

    store.put_blob("config", &config_digest, &config_raw)?;
    store.put_blob("manifest", &digest, &raw)?;
    progress.message("Writing manifest to image destination");
    let name = Some(crate::reference::store_name(named));
    record_image(
        store,
        Record {
            manifest_digest: &digest,
            media_type: &media_type,
            size: raw.len() as u64,
            name,
            repo_digest: Some(repo_digest),
            signatures: &signatures,
        },
    )?;
    Ok(digest)
}

/// What every layer download of one pull shares.
struct Pulling<'a> {
    client: &'a Client,
    r: &'a Reference,
    store: &'a Store,
    progress: &'a Progress,
    retries: u32,
    announce: Option<&'a Announce>,
}

/// Make sure one layer is in the store with a verified digest, and with its diff_id checked
/// against `verify_diff_id` when that is given; `follow` is told how far the download got.
async fn fetch_layer(
    p: &Pulling<'_>,
    layer: &Descriptor,
    verify_diff_id: Option<&str>,
    follow: Option<&Follow>,
) -> Result<()> {
    let Pulling {
        client,
        r,
        store,
        progress,
        retries,
        announce,
    } = *p;
    let digest = layer.digest().to_string();
    let bar = progress.blob("blob", &digest, layer.size());
    if store.has_blob(&digest) {
        if let Some(expected) = verify_diff_id {
            let actual = tokio::task::block_in_place(|| store.diff_id(&digest))?;
            expect_diff_id(&digest, expected, actual)?;
        }
        bar.skipped();
        return Ok(());
    }

    let layer_ref = digest.as_str();
    let new_writer = || -> Result<BlobWriter<'_>> {
        let w = store.blob_writer()?;
        if let Some(f) = follow {
            f.restart(w.reading_handle()?);
        }
        Ok(w)
    };
    let mut w = new_writer()?;
    let start_diff = || verify_diff_id.map(|_| StreamingDiffId::start());
    let mut diff = start_diff();
    let mut attempt = 0u32;
    loop {
        let offset = w.len();
        // Always a Range request (`bytes=0-` at first): a 206 answer is not hashed again by
        // oci-client, whose check would repeat the one the blob writer makes anyway (and only
        // ours covers a resumed download).
        let res = match client
            .pull_blob_stream_partial(r, layer_ref, offset, None)
            .await
        {
            Ok(BlobResponse::Partial(s)) => Ok((s, false)),
            Ok(BlobResponse::Full(s)) => Ok((s, offset > 0)),
            Err(e) => Err(e),
        };
        let mut stream = match res {
            Ok((s, restart)) => {
                if restart {
                    // The registry ignored our Range: start the blob over.
                    bar.rewind(offset);
                    w.abort();
                    w = new_writer()?;
                    diff = start_diff();
                }
                s.stream
            }
            Err(e) if attempt < retries && transient(&e) => {
                warn_stall(r, "fetch layer", &e, attempt);
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
                continue;
            }
            Err(e) => {
                w.abort();
                return Err(registry_err(r, "fetch layer", e));
            }
        };
        let mut failure = None;
        loop {
            match stream.try_next().await {
                Ok(Some(_)) if announce.is_some_and(Announce::cancelled) => {
                    return Err(Error::PullCancelled {
                        reference: r.whole(),
                    });
                }
                Ok(Some(chunk)) if w.len() + chunk.len() as u64 > layer.size() => {
                    // Never store (or let an unpack read) more than the manifest promised: a
                    // registry streaming without end would otherwise fill the disk.
                    return Err(Error::Registry {
                        reference: r.whole(),
                        step: "fetch layer",
                        reason: format!(
                            "{digest}: the registry sent more than the {} bytes the manifest gives",
                            layer.size()
                        ),
                    });
                }
                Ok(Some(chunk)) => {
                    w.write(&chunk)?;
                    if let Some(f) = follow {
                        f.grew(w.len());
                    }
                    bar.inc(chunk.len() as u64);
                    if let Some(d) = &mut diff {
                        d.feed(chunk);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let short = w.len() < layer.size();
        match failure {
            // All bytes arrived: any stream error is oci-client's own digest check, which
            // ours below reports with the layer's digest.
            Some(_) if !short => break,
            None if !short => break,
            Some(_) | None if attempt < retries => {
                tracing::debug!("layer {digest} interrupted at {} bytes, resuming", w.len());
                if let Some(e) = &failure {
                    warn_stall(r, "fetch layer", e, attempt);
                }
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
            }
            Some(e) => {
                w.abort();
                let reason = if stalled(&e) {
                    stall_reason(r.registry())
                } else {
                    e.to_string()
                };
                return Err(Error::Registry {
                    reference: r.whole(),
                    step: "fetch layer",
                    reason: format!("{digest}: {reason}"),
                });
            }
            None => {
                let got = w.len();
                w.abort();
                return Err(Error::Registry {
                    reference: r.whole(),
                    step: "fetch layer",
                    reason: format!(
                        "{digest}: connection ended after {got} of {} bytes",
                        layer.size()
                    ),
                });
            }
        }
    }

    let actual = w.digest();
    if actual != digest {
        w.abort();
        return Err(Error::DigestMismatch {
            what: "layer",
            digest,
            actual,
        });
    }
    let diff_id = match (diff, verify_diff_id) {
        (Some(diff), Some(expected)) => match check_streamed_diff_id(diff, &digest, expected) {
            Ok(d) => Some(d),
            Err(e) => {
                w.abort();
                return Err(e);
            }
        },
        _ => None,
    };
    w.commit("layer", &digest)?;
    if let Some(d) = diff_id {
        store.record_diff_id(&digest, &d)?;
    }
    bar.done("done");
    Ok(())
}

/// The diff_id computed while the layer streamed in, if it is the one the config promises.
fn check_streamed_diff_id(diff: StreamingDiffId, digest: &str, expected: &str) -> Result<String> {
    let actual = tokio::task::block_in_place(|| diff.finish()).map_err(|e| Error::Parse {
        what: format!("layer {digest}"),
        reason: format!("content does not decompress: {e}"),
    })?;
    expect_diff_id(digest, expected, actual)
}
