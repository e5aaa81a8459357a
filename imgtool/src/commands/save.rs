//! `imgtool save -o FILE IMAGE...`: several images into one docker-archive (`docker save`
//! layout: `<config-hex>.json`, `<diffid-hex>/layer.tar` uncompressed, `manifest.json`) or
//! oci-archive (a tarred OCI layout whose `ref.name` annotations are the full image names,
//! with each image's sigstore signatures beside it as `sha256-<hex>.sig`, as copy writes them).
//! The tarball appears at its path whole or not at all (`whole_file.rs`): a failure or a kill
//! leaves no half file.
use std::collections::{BTreeSet, HashMap};
use std::io::{Seek, Write};
use std::path::PathBuf;
use std::sync::Arc;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::image::{self, Image};
use crate::store::{self, Store};
use crate::transport::layout_signatures::{attachment, signatures_in};
use crate::whole_file::WholeFile;

#[derive(clap::Args, Debug)]
pub struct SaveArgs {
    /// Images (names, IDs or ID prefixes)
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Output file
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Archive format
    #[arg(long, default_value = "docker-archive", value_parser = ["docker-archive", "oci-archive"])]
    pub format: String,
}

/// The name a save argument stands for: the name given, if it is one of the image's names.
fn chosen_names(input: &str, img: &Image) -> Vec<String> {
    let names = img.names();
    if let Ok(r) = crate::reference::parse_reference(input) {
        let n = crate::reference::store_name(&r);
        if names.contains(&n) {
            return vec![n];
        }
    }
    names
}

fn append_bytes<W: Write>(tar: &mut tar::Builder<W>, path: &str, data: &[u8]) -> Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    tar.append_data(&mut h, path, data)
        .map_err(|e| Error::Other(format!("write {path} into archive: {e}")))
}

fn append_file<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    file: &mut std::fs::File,
) -> Result<()> {
    let len = file
        .metadata()
        .map_err(|e| Error::Other(format!("stat blob for {path}: {e}")))?
        .len();
    file.rewind()
        .map_err(|e| Error::Other(format!("rewind blob for {path}: {e}")))?;
    let mut h = tar::Header::new_gnu();
    h.set_size(len);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    tar.append_data(&mut h, path, file)
        .map_err(|e| Error::Other(format!("write {path} into archive: {e}")))
}

fn append_dir<W: Write>(tar: &mut tar::Builder<W>, path: &str) -> Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    h.set_mode(0o755);
    h.set_mtime(0);
    h.set_cksum();
    tar.append_data(&mut h, path, std::io::empty())
        .map_err(|e| Error::Other(format!("write {path} into archive: {e}")))
}

fn write_docker_archive<W: Write>(
    store: &Store,
    tar: &mut tar::Builder<W>,
    images: &[(Image, Vec<String>)],
) -> Result<()> {
    let mut manifest = vec![];
    let mut written = BTreeSet::new();
    for (img, names) in images {
        let config_file = format!("{}.json", img.id.trim_start_matches("sha256:"));
        if written.insert(config_file.clone()) {
            append_bytes(tar, &config_file, &img.config_raw)?;
        }
        let mut layer_files = vec![];
        for layer in img.layers()? {
            let dir = layer.diff_id.trim_start_matches("sha256:").to_string();
            let file = format!("{dir}/layer.tar");
            if written.insert(file.clone()) {
                // Docker archives carry uncompressed layers; decompress into an unnamed temp
                // file first because a tar header needs the size up front.
                let mut tmp = tempfile::tempfile_in(store.root().join(".imgtool/tmp"))
                    .map_err(Error::io("create temp file in", store.root()))?;
                let blob = std::fs::File::open(&layer.blob_path)
                    .map_err(Error::io("open layer blob", &layer.blob_path))?;
                let dec = crate::verify::decompressed(blob)
                    .map_err(Error::io("decompress layer blob", &layer.blob_path))?;
                // The archive names the layer by its diff_id: hash what we write and check it.
                let mut hashing = crate::verify::HashingReader::new(dec);
                std::io::copy(&mut hashing, &mut tmp)
                    .map_err(Error::io("decompress layer blob", &layer.blob_path))?;
                let digest = layer.descriptor.digest().to_string();
                let actual =
                    crate::verify::expect_diff_id(&digest, &layer.diff_id, hashing.finish())?;
                if !layer.verified {
                    store.record_diff_id(&digest, &actual)?;
                }
                append_dir(tar, &dir)?;
                append_file(tar, &file, &mut tmp)?;
            }
            layer_files.push(file);
        }
        let tags: Vec<String> = names.iter().filter(|n| !n.contains('@')).cloned().collect();
        manifest.push(serde_json::json!({
            "Config": config_file,
            "RepoTags": if tags.is_empty() { serde_json::Value::Null } else { serde_json::json!(tags) },
            "Layers": layer_files,
        }));
    }
    let data = serde_json::to_vec(&manifest).unwrap_or_default();
    append_bytes(tar, "manifest.json", &data)
}

fn write_oci_archive<W: Write>(
    store: &Store,
    tar: &mut tar::Builder<W>,
    images: &[(Image, Vec<String>)],
) -> Result<()> {
    append_bytes(tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    append_dir(tar, "blobs")?;
    append_dir(tar, "blobs/sha256")?;
    let mut written = BTreeSet::new();
    let mut entries = vec![];
    for (img, names) in images {
        let mut digests = vec![img.manifest_digest.clone(), img.id.clone()];
        digests.extend(
            img.layers()?
                .iter()
                .map(|l| l.descriptor.digest().to_string()),
        );
        for d in digests {
            if written.insert(d.clone()) {
                let p = store.blob_path(&d)?;
                let mut f = std::fs::File::open(&p).map_err(Error::io("open blob", &p))?;
                append_file(
                    tar,
                    &format!("blobs/sha256/{}", d.trim_start_matches("sha256:")),
                    &mut f,
                )?;
            }
        }
        // The signatures kept with the image go in as copy writes them into an oci-archive,
        // so that `load` (or a copy out of the archive) brings them back.
        let sigs = signatures_in(store.root(), &img.manifest_digest)?;
        if let Some(att) = attachment(&img.manifest_digest, &sigs) {
            // An image saved under two names has one attachment.
            if !written.contains(&att.digest) {
                for (d, bytes) in att.blobs_then_manifest() {
                    if written.insert(d.to_string()) {
                        let path = format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
                        append_bytes(tar, &path, bytes)?;
                    }
                }
                entries.push(att.entry()?);
            }
        }
        let mt = crate::manifest::manifest_media_type(&img.manifest_raw);
        let size = img.manifest_raw.len() as u64;
        if names.is_empty() {
            entries.push(store::index_entry(
                &mt,
                &img.manifest_digest,
                size,
                HashMap::new(),
            )?);
        }
        for n in names {
            let ann = HashMap::from([(store::ANNOTATION_REF_NAME.to_string(), n.clone())]);
            entries.push(store::index_entry(&mt, &img.manifest_digest, size, ann)?);
        }
    }
    let idx = oci_spec::image::ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(oci_spec::image::MediaType::ImageIndex)
        .manifests(entries)
        .build()
        .map_err(|e| Error::Other(format!("build index.json: {e}")))?;
    let data = serde_json::to_vec(&idx).unwrap_or_default();
    append_bytes(tar, "index.json", &data)
}

pub fn run(ctx: &Context, args: SaveArgs) -> Result<()> {
    let store = Arc::new(Store::open(ctx)?);
    let mut images = vec![];
    for input in &args.images {
        let img = image::find_in(&store, input)?;
        let names = chosen_names(input, &img);
        images.push((img, names));
    }
    let dest = &args.output;
    let mut out = WholeFile::create(dest)?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(&mut out));
    match args.format.as_str() {
        "oci-archive" => write_oci_archive(&store, &mut tar, &images)?,
        _ => {
            for (img, _) in &images {
                if !signatures_in(store.root(), &img.manifest_digest)?.is_empty() {
                    errln!(
                        "imgtool: warning: the signatures of {} are not saved: a docker-archive has no place for them (--format oci-archive keeps them)",
                        img.short_id()
                    );
                }
            }
            write_docker_archive(&store, &mut tar, &images)?
        }
    }
    let buf = tar
        .into_inner()
        .map_err(|e| Error::Other(format!("finish archive {}: {e}", dest.display())))?;
    buf.into_inner()
        .map_err(|e| Error::Other(format!("write archive {}: {}", dest.display(), e.error())))?;
    out.persist()?;
    Ok(())
}
