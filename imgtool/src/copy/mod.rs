//! `copy`: one image (or every platform of an index) from any transport to any other, as
//! skopeo copies. The source's top manifest is read and passed through `accept` before
//! anything is written; then the blobs go across, several at once (each skipped when the
//! destination has it, mounted when it is in another repository of the same registry), then
//! the manifests, children before their index, and last the name (a tag, an `index.json`
//! entry, an archive renamed into place). Bytes go across unchanged unless `--format` or
//! `--dest-compress-format` asks otherwise, so digests are preserved. The source's sigstore
//! signatures (a registry's attachments, or the entry a layout or the store keeps beside the
//! image) go along when the manifest is unchanged, and new ones (`--sign-by-sigstore-
//! private-key`, `--sign-by`) are added after the manifest is in place.
pub mod convert;
mod docker_archive;
mod layout;
pub mod name;
mod push;
mod source;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::manifest::{choose_platform, is_index};
use crate::progress::Progress;
use convert::Want;
use name::ImageName;
use source::{Source, Top};

/// How many blobs cross at once.
const CONCURRENT_BLOBS: usize = 4;
/// How many "does the destination have it" checks are in flight at once.
const CONCURRENT_CHECKS: usize = 16;

#[derive(Default)]
pub struct Options {
    /// `--all`: every platform of an index, and the index itself.
    pub all: bool,
    pub want: Want,
    pub quiet: bool,
    /// `--sign-by-sigstore-private-key`: sign the manifest written at the destination.
    pub sign: Option<p256::ecdsa::SigningKey>,
    /// `--sign-by FINGERPRINT`: sign with this GPG key (simple signing, to the lookaside).
    pub sign_by: Option<String>,
    /// `--sign-passphrase-file` for `--sign-by` (the sigstore key is opened before the copy).
    pub gpg_passphrase_file: Option<PathBuf>,
    /// `--sign-identity`: the reference the signature names (default: the destination's).
    pub sign_identity: Option<String>,
    /// `--remove-signatures`: do not carry the source's signatures across.
    pub remove_signatures: bool,
}

enum Dest {
    Registry(Box<push::RegistryDest>),
    Layout(layout::LayoutDest),
    DockerArchive(docker_archive::DockerArchiveDest),
}

impl Dest {
    async fn open(ctx: &Context, name: &ImageName) -> Result<Dest> {
        Ok(match name {
            ImageName::Registry(r) => {
                Dest::Registry(Box::new(push::RegistryDest::open(ctx, r).await?))
            }
            ImageName::Oci { dir, tag } => {
                Dest::Layout(layout::LayoutDest::oci_dir(dir, tag.clone())?)
            }
            ImageName::OciArchive { path, tag } => {
                Dest::Layout(layout::LayoutDest::oci_archive(path, tag.clone())?)
            }
            ImageName::DockerArchive { path, name } => Dest::DockerArchive(
                docker_archive::DockerArchiveDest::open(path, name.as_deref())?,
            ),
            ImageName::Store(n) => {
                let r = crate::reference::parse_reference(n)?;
                let store = Arc::new(crate::store::Store::open(ctx)?);
                Dest::Layout(layout::LayoutDest::store(
                    store,
                    crate::reference::store_name(&r),
                ))
            }
        })
    }

    /// Whether the destination can hold an index (the store and a docker-archive keep one
    /// image per name).
    fn holds_index(&self) -> bool {
        match self {
            Dest::Registry(_) => true,
            Dest::Layout(l) => !matches!(l, layout::LayoutDest::Store { .. }),
            Dest::DockerArchive(_) => false,
        }
    }

    async fn has_blob(&self, digest: &str) -> Result<bool> {
        match self {
            Dest::Registry(r) => r.has_blob(digest).await,
            Dest::Layout(l) => Ok(l.has_blob(digest)),
            Dest::DockerArchive(_) => Ok(false),
        }
    }
}

/// An image manifest to copy, as it will be written.
struct Image {
    raw: Vec<u8>,
    digest: String,
    media_type: String,
    /// The index entry it had (platform, annotations), for an index being rewritten.
    entry: Option<serde_json::Value>,
}

/// A blob to copy.
#[derive(Clone)]
struct Blob {
    digest: String,
    size: u64,
}

/// Copy `src` to `dest`; returns the digest of the manifest written at the destination.
pub fn copy(
    src_ctx: &Context,
    dest_ctx: &Context,
    src: &ImageName,
    dest: &ImageName,
    opts: &Options,
) -> Result<String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(CONCURRENT_BLOBS)
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("start async runtime: {e}")))?;
    // An `oci:` directory this copy creates is removed again when the copy fails (a refused
    // image, a missing blob): nothing is left half written.
    let fresh_dir = match dest {
        ImageName::Oci { dir, .. } if dir.symlink_metadata().is_err() => Some(dir),
        _ => None,
    };
    let r = rt.block_on(copy_async(src_ctx, dest_ctx, src, dest, opts));
    if let (Err(_), Some(dir)) = (&r, fresh_dir) {
        let _ = std::fs::remove_dir_all(dir);
    }
    r
}

/// Where downloads and recompressed layers wait: inside the store when that is the
/// destination (same filesystem, swept after a crash), else the system temp directory.
fn work_root(dest_ctx: &Context, dest: &ImageName) -> PathBuf {
    match dest {
        ImageName::Store(_) => dest_ctx.store_dir.join(".imgtool/tmp"),
        _ => std::env::temp_dir(),
    }
}

async fn copy_async(
    src_ctx: &Context,
    dest_ctx: &Context,
    src: &ImageName,
    dest_name: &ImageName,
    opts: &Options,
) -> Result<String> {
    // The destination first: a directory that is not a layout, an archive that cannot be
    // written or a registry that refuses us fails before anything is read or sent.
    let dest = Dest::open(dest_ctx, dest_name).await?;
    let root = work_root(dest_ctx, dest_name);
    let work = tempfile::Builder::new()
        .prefix(".imgtool-copy-")
        .tempdir_in(&root)
        .map_err(Error::io("create temp directory in", &root))?;
    let sign_as = signing_identity(dest_name, opts)?;
    let (source, top) = source::open(src_ctx, src, work.path()).await?;
    let carried = accept_source(src, &source, &top.digest, opts).await?;
    let progress = Progress::new(opts.quiet);

    let index = is_index(&top.media_type);
    if index && opts.all && !dest.holds_index() {
        return Err(Error::InvalidArgument {
            arg: "--all",
            reason: format!(
                "{} holds one image, not an index; copy one platform (without --all)",
                dest_name.display()
            ),
        });
    }
    let mut images = select_images(src_ctx, &source, &top, opts.all).await?;
    let mut overrides: HashMap<String, PathBuf> = HashMap::new();
    let changed =
        convert_images(&source, &mut images, opts.want, work.path(), &mut overrides).await?;

    // The top: the (possibly rewritten) index with --all, else the one image.
    let top_out = if index && opts.all {
        let raw = if changed {
            rewrite_index(&top, &images, opts.want)?
        } else {
            top.raw.clone()
        };
        Some(Image {
            digest: crate::verify::sha256_digest(&raw),
            media_type: match opts.want.format {
                Some(f) => f.index_type().to_string(),
                None => top.media_type.clone(),
            },
            raw,
            entry: None,
        })
    } else {
        None
    };

    let mut blobs: BTreeMap<String, Blob> = BTreeMap::new();
    for img in &images {
        for b in blobs_of(img)? {
            blobs.entry(b.digest.clone()).or_insert(b);
        }
    }
    let ctx = Transfer {
        source: &source,
        dest: &dest,
        work: work.path(),
        overrides: &overrides,
        progress: &progress,
    };
    let ctx = &ctx;
    // Every HEAD at once (they are small), then the transfers four at a time: a re-push of
    // an image the registry has is one round of HEADs.
    let dest_ref = &dest;
    let checked: Vec<Result<(Blob, bool)>> = futures_util::stream::iter(blobs.into_values())
        .map(|b| async move {
            let has = dest_ref.has_blob(&b.digest).await?;
            Ok((b, has))
        })
        .buffer_unordered(CONCURRENT_CHECKS)
        .collect()
        .await;
    let checked: Vec<(Blob, bool)> = checked.into_iter().collect::<Result<_>>()?;
    let results: Vec<Result<()>> = futures_util::stream::iter(checked)
        .map(|(b, has)| async move { transfer(ctx, &b, has).await })
        .buffer_unordered(CONCURRENT_BLOBS)
        .collect()
        .await;
    progress.finish();
    if let Some(e) = results.into_iter().find_map(|r| r.err()) {
        return Err(e);
    }

    progress.message("Writing manifest to image destination");
    let (last, children) = match top_out {
        Some(t) => (t, images),
        None => {
            let mut images = images;
            let one = images
                .pop()
                .ok_or_else(|| Error::Other("no image to copy".into()))?;
            (one, vec![])
        }
    };
    for c in &children {
        match &dest {
            Dest::Registry(r) => {
                r.put_manifest(&c.raw, &c.media_type, Some(&c.digest))
                    .await?
            }
            Dest::Layout(l) => tokio::task::block_in_place(|| l.put_manifest(&c.raw, &c.digest))?,
            Dest::DockerArchive(_) => {}
        }
    }
    match dest {
        Dest::Registry(r) => {
            if let Some(d) = r.reference().digest() {
                if d != last.digest {
                    return Err(Error::DigestMismatch {
                        what: "manifest",
                        digest: d.to_string(),
                        actual: last.digest,
                    });
                }
            }
            r.put_manifest(&last.raw, &last.media_type, None).await?;
            let mut sigs = vec![];
            if !carried.is_empty() {
                let dest_parts = match dest_name {
                    ImageName::Registry(d) => Some(crate::reference::parts_of(d)),
                    _ => None,
                };
                let keeps = match &dest_parts {
                    Some(p) => crate::accept::uses_attachments(p)?,
                    None => false,
                };
                if !keeps {
                    errln!(
                        "imgtool: warning: the source's signatures are not copied: {} does not keep sigstore attachments (registries.d use-sigstore-attachments)",
                        dest_name.display()
                    );
                } else if last.digest == top.digest {
                    sigs = carried;
                } else {
                    errln!(
                        "imgtool: warning: the source's signatures are not copied: the manifest changed ({} is now {})",
                        top.digest,
                        last.digest
                    );
                }
            }
            if let (Some(key), Some((identity, _))) = (&opts.sign, &sign_as) {
                progress.message("Signing manifest using a sigstore signature");
                sigs.push(crate::trust::sigstore::sign(key, &last.digest, identity));
            }
            if let (Some(fpr), Some((identity, dest_parts))) = (&opts.sign_by, &sign_as) {
                progress.message("Signing manifest using simple signing");
                let payload = crate::trust::gpg::payload(&last.digest, identity);
                let sig =
                    crate::trust::gpg::sign(fpr, &payload, opts.gpg_passphrase_file.as_deref())
                        .map_err(|reason| Error::InvalidArgument {
                            arg: "--sign-by",
                            reason,
                        })?;
                crate::transport::signatures::store_simple(dest_parts, &last.digest, &sig)?;
            }
            if !sigs.is_empty() {
                progress.message("Storing signatures");
                crate::transport::sigstore_attachments::store(r.conn(), &last.digest, &sigs)
                    .await?;
            }
        }
        Dest::Layout(l) => {
            let sigs = if carried.is_empty() || last.digest == top.digest {
                carried
            } else {
                errln!(
                    "imgtool: warning: the source's signatures are not copied: the manifest changed ({} is now {})",
                    top.digest,
                    last.digest
                );
                vec![]
            };
            tokio::task::block_in_place(|| {
                l.commit(&last.raw, &last.digest, &last.media_type, &sigs)
            })?
        }
        Dest::DockerArchive(a) => tokio::task::block_in_place(|| a.commit(&last.raw))?,
    }
    drop(source);
    Ok(last.digest)
}

/// The reference a `--sign-by-sigstore-private-key` or `--sign-by` signature names, and the
/// destination's own name, checked before anything is copied: the destination must be a
/// registry that keeps sigstore attachments, or (GPG) one with a file:// lookaside.
fn signing_identity(
    dest: &ImageName,
    opts: &Options,
) -> Result<Option<(String, crate::reference::Parts)>> {
    let arg = match (&opts.sign, &opts.sign_by) {
        (None, None) => return Ok(None),
        (Some(_), _) => "--sign-by-sigstore-private-key",
        (None, Some(_)) => "--sign-by",
    };
    let bad = |reason: String| Error::InvalidArgument { arg, reason };
    let ImageName::Registry(r) = dest else {
        return Err(bad(format!(
            "{}: signatures can only be stored for a docker:// destination",
            dest.display()
        )));
    };
    let parts = crate::reference::parts_of(r);
    if opts.sign.is_some() && !crate::accept::uses_attachments(&parts)? {
        return Err(bad(format!(
            "{}: writing sigstore attachments is disabled by configuration (set use-sigstore-attachments: true in registries.d)",
            parts.name()
        )));
    }
    if opts.sign_by.is_some() {
        crate::transport::signatures::simple_store_dir(&parts, "sha256:0").map_err(|e| {
            Error::InvalidArgument {
                arg: "--sign-by",
                reason: e.to_string(),
            }
        })?;
    }
    if let Some(i) = &opts.sign_identity {
        let p = crate::reference::parse_parts(i)?;
        if p.tag.is_none() && p.digest.is_none() {
            return Err(Error::InvalidArgument {
                arg: "--sign-identity",
                reason: format!("{i:?} must be a fully specified reference with a tag or digest"),
            });
        }
        return Ok(Some((p.to_string(), parts)));
    }
    if parts.tag.is_none() {
        return Err(bad(format!(
            "{}: a destination named by digest needs --sign-identity",
            dest.display()
        )));
    }
    // The destination as the user named it (not a registries.conf location), as skopeo signs.
    let identity = format!("{}:{}", parts.name(), parts.tag.clone().unwrap_or_default());
    Ok(Some((identity, parts)))
}

/// Pass the source through the policy gate; returns the source's sigstore signatures (from a
/// registry's attachments or a layout's `sha256-<hex>.sig` entry, the store's included) to
/// carry to the destination. An image from the store is not checked again: it passed the gate
/// when it came in.
async fn accept_source(
    src: &ImageName,
    source: &Source,
    digest: &str,
    opts: &Options,
) -> Result<Vec<crate::trust::sigstore::Signature>> {
    use crate::accept::{accept_local, Gate};
    match src {
        ImageName::Registry(r) => {
            let parts = crate::reference::parts_of(r);
            let gate = Gate::new(
                crate::trust::scope::Scoped::Docker(parts.clone()),
                src.display(),
            )?;
            let mut wants = gate.wants();
            // Sigstore signatures are read to be carried across too.
            wants.sigstore |= !opts.remove_signatures;
            let sigs = match source {
                Source::Registry(conn) if wants.any() => {
                    crate::transport::signatures::fetch(conn, &parts, digest, wants).await?
                }
                _ => crate::trust::Signatures::default(),
            };
            gate.check(digest, &sigs)?;
            Ok(if opts.remove_signatures {
                vec![]
            } else {
                sigs.sigstore
            })
        }
        ImageName::Oci { dir: path, tag } | ImageName::OciArchive { path, tag } => {
            let transport = if matches!(src, ImageName::Oci { .. }) {
                "oci"
            } else {
                "oci-archive"
            };
            let sigs = source.layout_signatures(digest)?;
            accept_local(transport, path, tag.as_deref(), digest, sigs.clone())?;
            Ok(if opts.remove_signatures { vec![] } else { sigs })
        }
        ImageName::DockerArchive { path, .. } => {
            accept_local("docker-archive", path, None, digest, vec![]).map(|()| vec![])
        }
        ImageName::Store(_) if opts.remove_signatures => Ok(vec![]),
        ImageName::Store(_) => source.layout_signatures(digest),
    }
}

/// The image manifests to copy: every entry of an index with `all`, else the one for the
/// platform (or the top itself when it is an image).
async fn select_images(ctx: &Context, source: &Source, top: &Top, all: bool) -> Result<Vec<Image>> {
    if !is_index(&top.media_type) {
        return Ok(vec![Image {
            raw: top.raw.clone(),
            digest: top.digest.clone(),
            media_type: top.media_type.clone(),
            entry: None,
        }]);
    }
    let parse = |e: serde_json::Error| Error::Parse {
        what: format!("image index {}", top.digest),
        reason: e.to_string(),
    };
    let entries: Vec<serde_json::Value> = if all {
        let v: serde_json::Value = serde_json::from_slice(&top.raw).map_err(parse)?;
        v["manifests"].as_array().cloned().unwrap_or_default()
    } else {
        let index: oci_spec::image::ImageIndex = serde_json::from_slice(&top.raw).map_err(parse)?;
        let chosen = choose_platform(&index, &ctx.registry.platform).map_err(|available| {
            Error::NoMatchingPlatform {
                reference: top.digest.clone(),
                platform: ctx.registry.platform.to_string(),
                available,
            }
        })?;
        vec![serde_json::to_value(&chosen).map_err(parse)?]
    };
    let mut out = vec![];
    for e in entries {
        let digest = e["digest"].as_str().unwrap_or("").to_string();
        let raw = source.manifest(&digest).await?;
        let media_type = crate::manifest::manifest_media_type(&raw);
        if is_index(&media_type) {
            return Err(Error::UnsupportedMediaType {
                what: "index entry",
                digest,
                media_type,
            });
        }
        out.push(Image {
            raw,
            digest,
            media_type,
            entry: Some(e),
        });
    }
    Ok(out)
}

/// Apply `--format`/`--dest-compress-format` to each image; whether anything changed.
async fn convert_images(
    source: &Source,
    images: &mut [Image],
    want: Want,
    work: &Path,
    overrides: &mut HashMap<String, PathBuf>,
) -> Result<bool> {
    if want.format.is_none() && want.compress.is_none() {
        return Ok(false);
    }
    let mut changed = false;
    for img in images.iter_mut() {
        let mut v: serde_json::Value =
            serde_json::from_slice(&img.raw).map_err(|e| Error::Parse {
                what: format!("manifest {}", img.digest),
                reason: e.to_string(),
            })?;
        let mut done = vec![];
        for r in convert::layers_to_recompress(&v, want) {
            let src = source.blob_file(&r.digest, r.size, work).await?;
            let work = work.to_path_buf();
            let (d, s, p) =
                tokio::task::spawn_blocking(move || convert::recompress(&src, r.to, &work))
                    .await
                    .map_err(|e| Error::Other(format!("recompress {}: {e}", r.digest)))??;
            overrides.insert(d.clone(), p);
            done.push((r.index, d, s, r.to));
        }
        let (raw, mt) = convert::rewrite_manifest(&mut v, &img.media_type, want, &done)?;
        if raw != img.raw {
            changed = true;
            img.digest = crate::verify::sha256_digest(&raw);
            img.raw = raw;
            img.media_type = mt;
        }
    }
    Ok(changed)
}

/// The index with its entries pointing at the rewritten images.
fn rewrite_index(top: &Top, images: &[Image], want: Want) -> Result<Vec<u8>> {
    let mut v: serde_json::Value = serde_json::from_slice(&top.raw).map_err(|e| Error::Parse {
        what: format!("image index {}", top.digest),
        reason: e.to_string(),
    })?;
    let manifests: Vec<serde_json::Value> = images
        .iter()
        .map(|img| {
            let mut e = img.entry.clone().unwrap_or_default();
            e["digest"] = img.digest.clone().into();
            e["size"] = (img.raw.len() as u64).into();
            e["mediaType"] = img.media_type.clone().into();
            e
        })
        .collect();
    v["manifests"] = manifests.into();
    if let Some(f) = want.format {
        v["mediaType"] = f.index_type().into();
    }
    serde_json::to_vec(&v).map_err(|e| Error::Other(e.to_string()))
}

/// Config and layers of an image manifest.
fn blobs_of(img: &Image) -> Result<Vec<Blob>> {
    let v: serde_json::Value = serde_json::from_slice(&img.raw).map_err(|e| Error::Parse {
        what: format!("manifest {}", img.digest),
        reason: e.to_string(),
    })?;
    let mut out = vec![];
    let descs = std::iter::once(&v["config"]).chain(v["layers"].as_array().into_iter().flatten());
    for d in descs {
        let digest = d["digest"].as_str().ok_or_else(|| Error::Parse {
            what: format!("manifest {}", img.digest),
            reason: "a descriptor has no digest".into(),
        })?;
        crate::verify::check_digest(digest)?;
        out.push(Blob {
            digest: digest.to_string(),
            size: d["size"].as_u64().unwrap_or(0),
        });
    }
    Ok(out)
}

/// What every blob transfer of one copy shares.
struct Transfer<'a> {
    source: &'a Source,
    dest: &'a Dest,
    work: &'a Path,
    overrides: &'a HashMap<String, PathBuf>,
    progress: &'a Progress,
}

/// Bring one blob to the destination; `present` says the destination already has it.
async fn transfer(t: &Transfer<'_>, b: &Blob, present: bool) -> Result<()> {
    let bar = Arc::new(t.progress.blob("blob", &b.digest, b.size));
    if present {
        bar.skipped();
        return Ok(());
    }
    if let Dest::Registry(r) = t.dest {
        if r.try_mount(t.source.reference(), &b.digest).await {
            bar.skipped_as("mounted");
            return Ok(());
        }
    }
    let path = match t.overrides.get(&b.digest) {
        Some(p) => p.clone(),
        None => t.source.blob_file(&b.digest, b.size, t.work).await?,
    };
    match t.dest {
        Dest::Registry(r) => r.put_blob(&b.digest, b.size, &path, &bar).await?,
        Dest::Layout(l) => tokio::task::block_in_place(|| l.put_blob(&b.digest, &path, &bar))?,
        Dest::DockerArchive(a) => a.put_blob(&b.digest, &path),
    }
    bar.done("done");
    Ok(())
}
