//! What every transport does with the store once it has an image's bytes: copy a blob file in,
//! verified against its digest, and finally record the image under its name in `index.json`,
//! together with the sigstore signatures it came with (layout_signatures.rs: an attachment
//! entry beside it, merged with the ones already kept). One place, so an `oci:` import, an
//! archive, a pull, a copy and `tag` record images alike (and a manifest whose blobs a
//! concurrent `rmi` removed is reported, never recorded).
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::store::{self, Store};
use crate::transport::layout_signatures;
use crate::trust::sigstore::Signature;
use crate::verify::check_digest;

/// Copy a blob file into the store, verifying its digest while copying.
pub fn import_blob_file(
    store: &Store,
    src: &Path,
    digest: &str,
    what: &'static str,
    progress: &Progress,
) -> Result<()> {
    check_digest(digest)?;
    if store.has_blob(digest) {
        return Ok(());
    }
    let mut f = std::fs::File::open(src).map_err(Error::io("open blob", src))?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = progress.blob(what, digest, size);
    let mut w = store.blob_writer()?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(Error::io("read blob", src))?;
        if n == 0 {
            break;
        }
        w.write(&buf[..n])?;
        bar.inc(n as u64);
    }
    w.commit(what, digest)?;
    bar.done("done");
    Ok(())
}

/// What `record_image` writes for one image.
pub struct Record<'a> {
    pub manifest_digest: &'a str,
    pub media_type: &'a str,
    pub size: u64,
    /// Full name (`registry/repo:tag`); `None` keeps the image without a name.
    pub name: Option<String>,
    pub repo_digest: Option<String>,
    /// Sigstore signatures of the manifest to keep beside it (added to those already kept).
    pub signatures: &'a [Signature],
}

/// Point `name` at the manifest in `index.json` (atomically, under the exclusive lock). A name
/// that pointed elsewhere moves; the image it leaves keeps a nameless (dangling) entry if no
/// other name refers to it, as Docker shows `<none>:<none>`. Checks first that the manifest and
/// everything it references are in the store: a concurrent garbage collection between our
/// downloads and this moment is reported instead of leaving a broken entry. The signatures
/// in `rec` not kept yet are added to the image's attachment entry in the same index write.
pub fn record_image(store: &Store, rec: Record<'_>) -> Result<()> {
    check_complete(store, rec.manifest_digest)?;
    let new_sigs = signatures_to_keep(store, &rec)?;
    if new_sigs.is_none() && already_recorded(store, &rec)? {
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
        if let Some(sigs) = &new_sigs {
            keep_signatures(store, entries, rec.manifest_digest, sigs)?;
        }
        Ok(())
    })
}

/// The signatures of `rec` not kept yet; `None` when there is nothing new.
fn signatures_to_keep(store: &Store, rec: &Record<'_>) -> Result<Option<Vec<Signature>>> {
    if rec.signatures.is_empty() {
        return Ok(None);
    }
    let kept = layout_signatures::signatures_in(store.root(), rec.manifest_digest)?;
    let new: Vec<Signature> = rec
        .signatures
        .iter()
        .filter(|s| !kept.contains(s))
        .cloned()
        .collect();
    Ok((!new.is_empty()).then_some(new))
}

/// Merge `new` into the attachment entry of `digest` among `entries` (the signatures kept
/// there stay, read again under the index lock in case another command added some). Its
/// blobs are written here, before `with_exclusive` writes index.json naming them, so a crash
/// in between leaves only unreferenced blobs for the next garbage collection.
fn keep_signatures(
    store: &Store,
    entries: &mut Vec<oci_spec::image::Descriptor>,
    digest: &str,
    new: &[Signature],
) -> Result<()> {
    let Some(tag) = crate::trust::sigstore::attachment_tag(digest) else {
        return Ok(());
    };
    let old_entry = entries
        .iter()
        .position(|e| store::entry_name(e) == Some(tag.as_str()));
    let old = match old_entry {
        Some(i) => layout_signatures::read_attachment(store.root(), &entries[i])?,
        None => vec![],
    };
    let all = layout_signatures::merged(&old, new);
    let Some(att) = layout_signatures::attachment(digest, &all) else {
        return Ok(());
    };
    for (d, bytes) in att.blobs_then_manifest() {
        store.put_blob("signatures", d, bytes)?;
    }
    if let Some(i) = old_entry {
        entries.remove(i);
    }
    entries.push(att.entry()?);
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::OCI_MANIFEST;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn entry(c: char, name: Option<&str>) -> oci_spec::image::Descriptor {
        let mut ann = HashMap::new();
        if let Some(n) = name {
            ann.insert(store::ANNOTATION_REF_NAME.to_string(), n.to_string());
        }
        store::index_entry(OCI_MANIFEST, &digest(c), 1, ann).unwrap()
    }

    /// (digest's hex digit, name) of every entry, in order.
    fn listed(entries: &[oci_spec::image::Descriptor]) -> Vec<(char, Option<String>)> {
        entries
            .iter()
            .map(|e| {
                let c = e.digest().to_string().chars().last().unwrap();
                (c, store::entry_name(e).map(String::from))
            })
            .collect()
    }

    const NAME: &str = "docker.io/library/alpine:latest";

    #[test]
    fn a_name_that_moves_leaves_its_old_image_as_a_nameless_entry() {
        let mut entries = vec![entry('a', Some(NAME))];
        set_name(&mut entries, entry('b', Some(NAME)), Some(NAME));
        assert_eq!(
            listed(&entries),
            vec![('b', Some(NAME.to_string())), ('a', None)]
        );
    }

    #[test]
    fn an_old_image_with_another_name_left_gets_no_nameless_entry() {
        let other = "docker.io/library/alpine:3";
        let mut entries = vec![entry('a', Some(NAME)), entry('a', Some(other))];
        set_name(&mut entries, entry('b', Some(NAME)), Some(NAME));
        assert_eq!(
            listed(&entries),
            vec![
                ('a', Some(other.to_string())),
                ('b', Some(NAME.to_string()))
            ]
        );
    }

    #[test]
    fn naming_an_image_removes_its_nameless_placeholder() {
        let mut entries = vec![entry('a', None)];
        set_name(&mut entries, entry('a', Some(NAME)), Some(NAME));
        assert_eq!(listed(&entries), vec![('a', Some(NAME.to_string()))]);
    }

    #[test]
    fn a_nameless_record_of_an_image_already_listed_adds_nothing() {
        let mut entries = vec![entry('a', Some(NAME))];
        set_name(&mut entries, entry('a', None), None);
        assert_eq!(listed(&entries), vec![('a', Some(NAME.to_string()))]);
    }
}
