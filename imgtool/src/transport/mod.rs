//! Getting images into the store from each kind of source, and recording them under a name.
pub mod archive;
pub mod layout;
pub mod registry;

use std::collections::HashMap;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::reference::Source;
use crate::store::{self, Store};

/// Bring the image `source` names into the store; returns its manifest digest.
pub fn fetch(ctx: &Context, store: &Store, source: &Source, progress: &Progress) -> Result<String> {
    let r = match source {
        Source::Registry(r) => registry::pull(ctx, store, r, progress),
        Source::OciLayout { dir, tag } => layout::import_dir(
            store,
            dir,
            tag.as_deref(),
            &ctx.registry.platform,
            None,
            progress,
        )
        .map_err(|e| source_err(&dir.display().to_string(), e)),
        Source::OciArchive { path, tag } => archive::import_oci_archive(
            store,
            path,
            tag.as_deref(),
            &ctx.registry.platform,
            progress,
        ),
        Source::DockerArchive { path, name } => {
            archive::import_docker_archive(store, path, name.as_deref(), progress)
                .map(|mut v| v.remove(0))
        }
    };
    progress.finish();
    r
}

fn source_err(src: &str, e: Error) -> Error {
    match e {
        Error::Source { .. } => e,
        other => Error::Source {
            source_name: src.to_string(),
            reason: other.to_string(),
        },
    }
}

/// What `record_image` writes for one image.
pub struct Record<'a> {
    pub manifest_digest: &'a str,
    pub media_type: &'a str,
    pub size: u64,
    /// Full name (`registry/repo:tag`); `None` keeps the image without a name.
    pub name: Option<String>,
    pub repo_digest: Option<String>,
}

/// Point `name` at the manifest in `index.json` (atomically, under the exclusive lock). A name
/// that pointed elsewhere moves; the image it leaves keeps a nameless (dangling) entry if no
/// other name refers to it, as Docker shows `<none>:<none>`. Checks first that the manifest and
/// everything it references are in the store: a concurrent garbage collection between our
/// downloads and this moment is reported instead of leaving a broken entry.
pub fn record_image(store: &Store, rec: Record<'_>) -> Result<()> {
    check_complete(store, rec.manifest_digest)?;
    if already_recorded(store, &rec)? {
        // A warm pull changes nothing: no exclusive lock (which would wait for every other
        // imgtool on this store), no index rewrite.
        return Ok(());
    }
    store.with_exclusive(|entries| {
        check_complete(store, rec.manifest_digest)?;
        let mut annotations = HashMap::new();
        if let Some(n) = &rec.name {
            annotations.insert(store::ANNOTATION_REF_NAME.to_string(), n.clone());
        }
        if let Some(d) = &rec.repo_digest {
            annotations.insert(store::ANNOTATION_REPO_DIGEST.to_string(), d.clone());
        }
        annotations.insert(
            store::ANNOTATION_PULLED.to_string(),
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
        let new_entry =
            store::index_entry(rec.media_type, rec.manifest_digest, rec.size, annotations)?;
        set_name(entries, new_entry, rec.name.as_deref());
        Ok(())
    })
}

fn already_recorded(store: &Store, rec: &Record<'_>) -> Result<bool> {
    Ok(store.entries()?.iter().any(|e| {
        e.digest().to_string() == rec.manifest_digest
            && store::entry_name(e) == rec.name.as_deref()
            && (rec.repo_digest.is_none()
                || store::entry_annotation(e, store::ANNOTATION_REPO_DIGEST)
                    == rec.repo_digest.as_deref())
    }))
}

/// Put `new_entry` into `entries`, moving `name` away from any other image.
pub fn set_name(
    entries: &mut Vec<oci_spec::image::Descriptor>,
    new_entry: oci_spec::image::Descriptor,
    name: Option<&str>,
) {
    let digest = new_entry.digest().to_string();
    let mut orphaned: Vec<oci_spec::image::Descriptor> = Vec::new();
    if let Some(n) = name {
        entries.retain(|e| {
            if store::entry_name(e) == Some(n) {
                if e.digest().to_string() != digest {
                    orphaned.push(e.clone());
                }
                false
            } else {
                true
            }
        });
    } else if entries.iter().any(|e| e.digest().to_string() == digest) {
        // Already present under some name: an unnamed record adds nothing.
        return;
    }
    // The image now named needs no dangling placeholder.
    entries.retain(|e| !(e.digest().to_string() == digest && store::entry_name(e).is_none()));
    entries.push(new_entry);
    for old in orphaned {
        let d = old.digest().to_string();
        if !entries.iter().any(|e| e.digest().to_string() == d) {
            let mut dangling = old.clone();
            let ann = old.annotations().clone().map(|mut a| {
                a.remove(store::ANNOTATION_REF_NAME);
                a
            });
            dangling.set_annotations(ann);
            entries.push(dangling);
        }
    }
}

/// The manifest and all the blobs it references are present.
fn check_complete(store: &Store, manifest_digest: &str) -> Result<()> {
    let raw = store.read_blob(manifest_digest)?;
    let v: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| Error::Parse {
        what: format!("manifest {manifest_digest}"),
        reason: e.to_string(),
    })?;
    let mut digests = vec![];
    if let Some(c) = v.pointer("/config/digest").and_then(|x| x.as_str()) {
        digests.push(c.to_string());
    }
    for l in v
        .get("layers")
        .and_then(|x| x.as_array())
        .into_iter()
        .flatten()
    {
        if let Some(d) = l.get("digest").and_then(|x| x.as_str()) {
            digests.push(d.to_string());
        }
    }
    for d in digests {
        if !store.has_blob(&d) {
            return Err(Error::StoreCorrupt {
                path: store.blob_path(&d)?,
                reason: format!(
                    "blob {d} of manifest {manifest_digest} vanished (removed by a concurrent rmi?); run the command again"
                ),
            });
        }
    }
    Ok(())
}
