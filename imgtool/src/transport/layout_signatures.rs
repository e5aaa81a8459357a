//! Sigstore signatures kept inside an OCI image layout (an `oci:` directory, an extracted
//! `oci-archive:`, and the store, which is a layout too), laid out as a registry keeps them:
//! an attachment manifest (trust/sigstore.rs) whose `index.json` entry is named
//! `sha256-<hex>.sig` after the manifest it signs, its config and one payload blob per
//! signature in `blobs/sha256`. Being an ordinary index entry is what makes the store's
//! garbage collection (and any layout walker) see its blobs as referenced.
//!
//! This file reads such an entry and says which bytes make one up; writing them is left to
//! each kind of layout (copy/layout.rs for `oci:`/`oci-archive:`, record.rs for the store,
//! commands/save.rs straight into a tarball), so that each keeps its own atomicity.
use std::path::Path;

use oci_spec::image::{Descriptor, ImageIndex};

use crate::error::{Error, Result};
use crate::store;
use crate::trust::sigstore::{self, Signature};
use crate::verify::sha256_digest;

/// The attachment for the signatures of one manifest, as bytes to write.
pub struct Attachment {
    /// `sha256-<hex>.sig`: the index entry's `ref.name`.
    pub tag: String,
    /// The attachment manifest and its digest.
    pub manifest: Vec<u8>,
    pub digest: String,
    /// Every blob it references (the payloads, then the config), with their digests.
    pub blobs: Vec<(String, Vec<u8>)>,
}

impl Attachment {
    /// Every blob to write, in the order that never leaves a manifest naming a missing blob:
    /// the payloads, the config, then the manifest.
    pub fn blobs_then_manifest(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.blobs
            .iter()
            .map(|(d, b)| (d.as_str(), b.as_slice()))
            .chain([(self.digest.as_str(), self.manifest.as_slice())])
    }

    /// The `index.json` entry naming it.
    pub fn entry(&self) -> Result<Descriptor> {
        let ann = std::collections::HashMap::from([(
            store::ANNOTATION_REF_NAME.to_string(),
            self.tag.clone(),
        )]);
        store::index_entry(
            crate::manifest::OCI_MANIFEST,
            &self.digest,
            self.manifest.len() as u64,
            ann,
        )
    }
}

/// The attachment holding `sigs` for the manifest `digest`; `None` when there is nothing to
/// keep (no signatures, or a digest that is not sha256 and so has no attachment tag).
pub fn attachment(digest: &str, sigs: &[Signature]) -> Option<Attachment> {
    if sigs.is_empty() {
        return None;
    }
    let tag = sigstore::attachment_tag(digest)?;
    let (manifest, config) = sigstore::attachment_manifest(sigs);
    let mut blobs: Vec<(String, Vec<u8>)> = sigs
        .iter()
        .map(|s| (sha256_digest(&s.payload), s.payload.clone()))
        .collect();
    blobs.push((sha256_digest(&config), config));
    Some(Attachment {
        tag,
        digest: sha256_digest(&manifest),
        manifest,
        blobs,
    })
}

/// `old` followed by those of `new` it does not have yet (a signature is never repeated, and
/// the ones already kept stay first, as a registry's attachment grows).
pub fn merged(old: &[Signature], new: &[Signature]) -> Vec<Signature> {
    let mut all = old.to_vec();
    for s in new {
        if !all.contains(s) {
            all.push(s.clone());
        }
    }
    all
}

/// The sigstore signatures the layout at `dir` keeps beside the manifest `digest`; none when
/// its `index.json` has no `sha256-<hex>.sig` entry.
pub fn signatures_in(dir: &Path, digest: &str) -> Result<Vec<Signature>> {
    let Some(tag) = sigstore::attachment_tag(digest) else {
        return Ok(vec![]);
    };
    let p = dir.join("index.json");
    let data = std::fs::read(&p).map_err(Error::io("read", &p))?;
    let index: ImageIndex = serde_json::from_slice(&data).map_err(|e| Error::Parse {
        what: p.display().to_string(),
        reason: e.to_string(),
    })?;
    match index
        .manifests()
        .iter()
        .find(|e| store::entry_name(e) == Some(tag.as_str()))
    {
        Some(entry) => read_attachment(dir, entry),
        None => Ok(vec![]),
    }
}

/// The signatures of the attachment entry `entry` of the layout at `dir`, every blob checked
/// against its digest.
pub fn read_attachment(dir: &Path, entry: &Descriptor) -> Result<Vec<Signature>> {
    let raw = store::read_layout_blob(dir, entry.digest().as_ref(), "signatures")?;
    let layers = sigstore::attachment_layers(&raw).map_err(|reason| Error::Parse {
        what: format!(
            "{} {}",
            dir.display(),
            store::entry_name(entry).unwrap_or("signatures")
        ),
        reason,
    })?;
    layers
        .into_iter()
        .map(|(d, _size, annotations)| {
            Ok(Signature {
                payload: store::read_layout_blob(dir, &d, "signature payload")?,
                annotations,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789012345678901234567890123456789012345678901234567890123";

    fn sig(n: u8) -> Signature {
        Signature {
            payload: vec![n],
            annotations: Default::default(),
        }
    }

    #[test]
    fn merging_keeps_the_old_ones_first_and_repeats_none() {
        assert_eq!(
            merged(&[sig(1), sig(2)], &[sig(2), sig(3)]),
            vec![sig(1), sig(2), sig(3)]
        );
    }

    #[test]
    fn an_attachment_lists_every_blob_its_manifest_references() {
        let a = attachment(D, &[sig(1), sig(2)]).unwrap();
        assert_eq!(a.tag, format!("sha256-{}.sig", &D[7..]));
        assert_eq!(a.digest, sha256_digest(&a.manifest));
        let text = String::from_utf8(a.manifest.clone()).unwrap();
        for (d, bytes) in &a.blobs {
            assert_eq!(*d, sha256_digest(bytes));
            assert!(text.contains(d.as_str()), "{d} not in {text}");
        }
        assert_eq!(a.blobs.len(), 3);
        assert!(attachment(D, &[]).is_none());
        assert!(attachment("sha512:00", &[sig(1)]).is_none());
    }

    #[test]
    fn an_attachment_written_into_a_layout_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        let a = attachment(D, &[sig(7)]).unwrap();
        for (d, bytes) in a
            .blobs
            .iter()
            .chain([&(a.digest.clone(), a.manifest.clone())])
        {
            std::fs::write(dir.path().join("blobs/sha256").join(&d[7..]), bytes).unwrap();
        }
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [a.entry().unwrap()]});
        std::fs::write(dir.path().join("index.json"), index.to_string()).unwrap();
        assert_eq!(signatures_in(dir.path(), D).unwrap(), vec![sig(7)]);
        let other = format!("sha256:{}", "f".repeat(64));
        assert!(signatures_in(dir.path(), &other).unwrap().is_empty());
    }
}
