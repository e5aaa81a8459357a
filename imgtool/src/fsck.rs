//! `imgtool fsck`: the store checked against itself. Every blob is hashed again and compared
//! with the digest its name claims; every reference from `index.json` down (manifest or index,
//! config, layers) must resolve to a good blob of the size its descriptor gives; the recorded
//! diff_ids must agree with the configs; and whatever nothing uses is listed: blobs no image
//! reaches, diff_id records of absent blobs, temp files and extraction dirs of interrupted
//! commands, overlay layers no bundle uses, and layer refs of bundles that are gone or were
//! never finished.
//!
//! The check runs under the GC lock held exclusively (as `rmi`'s garbage collection does): it
//! waits for the other imgtool commands on the store, and while it runs none can start, so
//! every temp file it sees is debris and every unreferenced blob is really an orphan. With
//! `repair`, orphans and debris are removed and so are corrupt blobs (a new pull of the image
//! fetches them again); a missing blob cannot be repaired here. Orphan blobs are neither
//! listed nor removed while some manifest cannot be read: what it references is unknown then.
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use oci_spec::image::ImageConfiguration;

use crate::bundle_dir::{self, State};
use crate::error::{Error, Result};
use crate::snapshot;
use crate::store::{self, Store};
use crate::verify::{check_digest, Hasher};

/// What is wrong with a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Content that is not what it claims to be (a blob that does not hash to its name, an
    /// index or manifest that does not parse, a size that disagrees): data is damaged.
    Corrupt,
    /// Something an image needs is not in the store.
    Missing,
    /// Whole, but nothing uses it.
    Orphan,
    /// Left behind by an interrupted command.
    Debris,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Corrupt => "corrupt",
            Kind::Missing => "missing",
            Kind::Orphan => "orphan",
            Kind::Debris => "debris",
        }
    }
}

/// One problem: one output line.
#[derive(Debug)]
pub struct Problem {
    pub kind: Kind,
    pub path: PathBuf,
    pub what: String,
    /// With `repair`: `Some(Ok)` once removed, `Some(Err(why))` when removing failed.
    pub repaired: Option<std::result::Result<(), String>>,
}

#[derive(Debug, Default)]
pub struct Report {
    pub problems: Vec<Problem>,
    /// Blob files hashed.
    pub blobs: usize,
    /// Entries of index.json.
    pub images: usize,
    /// Why orphan blobs were not looked for, if they were not.
    pub orphans_unknown: Option<String>,
}

impl Report {
    pub fn count(&self, kind: Kind) -> usize {
        self.problems.iter().filter(|p| p.kind == kind).count()
    }

    /// The command's error when the store is damaged (corrupt or missing data).
    pub fn damage(&self, root: &Path) -> Option<Error> {
        let (corrupt, missing) = (self.count(Kind::Corrupt), self.count(Kind::Missing));
        (corrupt + missing > 0).then(|| Error::StoreDamaged {
            path: root.to_path_buf(),
            corrupt,
            missing,
        })
    }
}

/// Check the store (and with `repair`, clean it), holding the GC lock exclusively.
pub fn check(store: &Store, repair: bool) -> Result<Report> {
    store.with_gc_lock(|| {
        let mut c = Checker {
            store,
            root: store.root().to_path_buf(),
            repair,
            report: Report::default(),
            good: BTreeMap::new(),
            corrupt: BTreeMap::new(),
            referenced: BTreeSet::new(),
            missing: BTreeMap::new(),
            graph_complete: true,
        };
        c.layout_file();
        let entries = c.index();
        c.blobs();
        if let Some(entries) = entries {
            c.references(&entries);
        }
        c.corrupt_blobs();
        c.missing_blobs();
        c.diff_id_records();
        c.orphan_blobs();
        c.temp_files();
        c.snapshots();
        Ok(c.report)
    })
}

struct Checker<'s> {
    store: &'s Store,
    root: PathBuf,
    repair: bool,
    report: Report,
    /// Blobs whose content matches their name, with their sizes.
    good: BTreeMap<String, u64>,
    /// Blobs whose content does not, with what they hash to.
    corrupt: BTreeMap<String, String>,
    /// Every digest some image reaches.
    referenced: BTreeSet<String>,
    /// Referenced digests that are absent or corrupt, with who needs them.
    missing: BTreeMap<String, Vec<String>>,
    /// Every manifest and index could be read, so `referenced` is all there is.
    graph_complete: bool,
}

/// The role a blob plays for an image, for messages: `layer 2 of docker.io/library/x:1`.
fn role(what: &str, image: &str) -> String {
    format!("{what} of {image}")
}

impl Checker<'_> {
    fn problem(&mut self, kind: Kind, path: PathBuf, what: String) {
        self.report.problems.push(Problem {
            kind,
            path,
            what,
            repaired: None,
        });
    }

    /// A problem that `repair` fixes by running `fix`.
    fn fixable(
        &mut self,
        kind: Kind,
        path: PathBuf,
        what: String,
        fix: impl FnOnce(&Path) -> std::result::Result<(), String>,
    ) {
        let repaired = self.repair.then(|| fix(&path));
        self.report.problems.push(Problem {
            kind,
            path,
            what,
            repaired,
        });
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.root.join("blobs/sha256").join(hex)
    }

    fn layout_file(&mut self) {
        let p = self.root.join("oci-layout");
        let ok = fs::read(&p)
            .ok()
            .and_then(|d| serde_json::from_slice::<serde_json::Value>(&d).ok())
            .is_some_and(|v| v.get("imageLayoutVersion").is_some_and(|x| x.is_string()));
        if !ok {
            self.fixable(
                Kind::Corrupt,
                p,
                "missing or not an OCI layout file".into(),
                |p| {
                    store::write_file_atomic(p, br#"{"imageLayoutVersion":"1.0.0"}"#)
                        .map_err(|e| e.to_string())
                },
            );
        }
    }

    /// The entries of index.json, or `None` (reported) when it cannot be read.
    fn index(&mut self) -> Option<Vec<oci_spec::image::Descriptor>> {
        let p = self.root.join("index.json");
        let data = match fs::read(&p) {
            Ok(d) => d,
            Err(e) => {
                self.graph_complete = false;
                self.problem(Kind::Corrupt, p, format!("cannot be read: {e}"));
                return None;
            }
        };
        match serde_json::from_slice::<oci_spec::image::ImageIndex>(&data) {
            Ok(idx) => {
                self.report.images = idx.manifests().len();
                Some(idx.manifests().clone())
            }
            Err(e) => {
                self.graph_complete = false;
                self.problem(Kind::Corrupt, p, format!("does not parse: {e}"));
                None
            }
        }
    }

    /// Hash every blob again.
    fn blobs(&mut self) {
        let dir = self.root.join("blobs/sha256");
        let mut names: Vec<_> = match fs::read_dir(&dir) {
            Ok(rd) => rd.flatten().map(|e| e.file_name()).collect(),
            Err(e) => {
                self.problem(Kind::Corrupt, dir, format!("cannot be listed: {e}"));
                return;
            }
        };
        names.sort();
        for name in names {
            let p = dir.join(&name);
            let name = name.to_string_lossy().into_owned();
            let digest = format!("sha256:{name}");
            let is_file = fs::symlink_metadata(&p).is_ok_and(|m| m.is_file());
            if check_digest(&digest).is_err() || !is_file {
                self.fixable(
                    Kind::Debris,
                    p,
                    "not a blob (blobs are files named by their sha256)".into(),
                    remove,
                );
                continue;
            }
            self.report.blobs += 1;
            match hash_file(&p) {
                Ok((actual, size)) if actual == digest => {
                    self.good.insert(digest, size);
                }
                Ok((actual, _)) => {
                    self.corrupt
                        .insert(digest, format!("content hashes to {actual}"));
                }
                Err(e) => {
                    self.corrupt.insert(digest, format!("cannot be read: {e}"));
                }
            }
        }
    }

    /// Follow every index entry down to its layers.
    fn references(&mut self, entries: &[oci_spec::image::Descriptor]) {
        for (i, e) in entries.iter().enumerate() {
            let image = match store::entry_name(e) {
                Some(n) => n.to_string(),
                None => format!("nameless image {}", e.digest()),
            };
            let digest = e.digest().to_string();
            if check_digest(&digest).is_err() {
                let p = self.root.join("index.json");
                self.problem(
                    Kind::Corrupt,
                    p,
                    format!(
                        "entry {} ({image}) has the malformed digest {digest:?}",
                        i + 1
                    ),
                );
                continue;
            }
            self.manifest(&digest, e.size(), "manifest", &image);
        }
    }

    /// Whether `digest` is a good blob of `size` bytes; what is wrong is reported.
    fn resolve(&mut self, digest: &str, size: u64, who: String) -> bool {
        self.referenced.insert(digest.to_string());
        let Some(&actual) = self.good.get(digest) else {
            self.missing
                .entry(digest.to_string())
                .or_default()
                .push(who);
            return false;
        };
        if actual != size {
            let p = self.blob_path(digest);
            self.problem(
                Kind::Corrupt,
                p,
                format!("{who}: its descriptor says {size} bytes, the blob has {actual}"),
            );
        }
        true
    }

    fn read_json(&mut self, digest: &str, who: &str) -> Option<serde_json::Value> {
        let p = self.blob_path(digest);
        let parsed = fs::read(&p)
            .map_err(|e| e.to_string())
            .and_then(|d| serde_json::from_slice(&d).map_err(|e| e.to_string()));
        match parsed {
            Ok(v) => Some(v),
            Err(e) => {
                self.graph_complete = false;
                self.problem(Kind::Corrupt, p, format!("{who} does not parse: {e}"));
                None
            }
        }
    }

    /// A manifest or an index, and everything below it.
    fn manifest(&mut self, digest: &str, size: u64, what: &str, image: &str) {
        let who = role(what, image);
        if !self.resolve(digest, size, who.clone()) {
            if !self.good.contains_key(digest) {
                // What it references cannot be known.
                self.graph_complete = false;
            }
            return;
        }
        let Some(v) = self.read_json(digest, &who) else {
            return;
        };
        if let Some(children) = v.get("manifests").and_then(|m| m.as_array()) {
            for c in children.clone() {
                let Some((d, s)) = self.descriptor(&c, digest, &who) else {
                    continue;
                };
                let platform = c
                    .get("platform")
                    .map(|p| {
                        let part = |k: &str| p.get(k).and_then(|x| x.as_str()).unwrap_or("");
                        format!("{}/{}", part("os"), part("architecture"))
                    })
                    .unwrap_or_else(|| "an entry".into());
                self.manifest(&d, s, &format!("manifest for {platform}"), image);
            }
            return;
        }
        let config = v
            .get("config")
            .and_then(|c| self.descriptor(c, digest, &who));
        let layers: Vec<(String, u64)> = v
            .get("layers")
            .and_then(|l| l.as_array())
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|l| self.descriptor(l, digest, &who))
            .collect();
        let mut diff_ids = None;
        if let Some((cd, cs)) = config {
            let cwho = role("config", image);
            if self.resolve(&cd, cs, cwho.clone()) {
                let p = self.blob_path(&cd);
                let parsed = fs::read(&p).map_err(|e| e.to_string()).and_then(|d| {
                    serde_json::from_slice::<ImageConfiguration>(&d).map_err(|e| e.to_string())
                });
                match parsed {
                    Ok(c) => diff_ids = Some(c.rootfs().diff_ids().clone()),
                    Err(e) => self.problem(Kind::Corrupt, p, format!("{cwho} does not parse: {e}")),
                }
            }
        } else {
            let p = self.blob_path(digest);
            self.problem(Kind::Corrupt, p, format!("{who} names no config"));
        }
        if let Some(ids) = &diff_ids {
            if ids.len() != layers.len() {
                let p = self.blob_path(digest);
                self.problem(
                    Kind::Corrupt,
                    p,
                    format!(
                        "{who} lists {} layers, its config {} diff_ids",
                        layers.len(),
                        ids.len()
                    ),
                );
            }
        }
        for (i, (ld, ls)) in layers.iter().enumerate() {
            let lwho = role(&format!("layer {}", i + 1), image);
            self.resolve(ld, *ls, lwho.clone());
            let expected = diff_ids.as_ref().and_then(|ids| ids.get(i));
            if let (Some(expected), Some(recorded)) = (expected, self.store.cached_diff_id(ld)) {
                if recorded != *expected {
                    let p = self.diff_id_path(ld);
                    self.problem(
                        Kind::Corrupt,
                        p,
                        format!(
                            "{lwho}: its content was found to have diff_id {recorded}, \
                             the config says {expected}"
                        ),
                    );
                }
            }
        }
    }

    /// The digest and size of a descriptor in `parent`, or `None` (reported) if it has none.
    fn descriptor(
        &mut self,
        d: &serde_json::Value,
        parent: &str,
        who: &str,
    ) -> Option<(String, u64)> {
        let digest = d.get("digest").and_then(|x| x.as_str()).unwrap_or("");
        let size = d.get("size").and_then(|x| x.as_u64());
        match (check_digest(digest), size) {
            (Ok(_), Some(s)) => Some((digest.to_string(), s)),
            _ => {
                self.graph_complete = false;
                let p = self.blob_path(parent);
                self.problem(
                    Kind::Corrupt,
                    p,
                    format!("{who} has a descriptor without a valid sha256 digest and size"),
                );
                None
            }
        }
    }

    fn diff_id_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.root.join(".imgtool/diffids").join(hex)
    }

    fn corrupt_blobs(&mut self) {
        for (digest, why) in std::mem::take(&mut self.corrupt) {
            let users = self.missing.remove(&digest).unwrap_or_default();
            let what = if users.is_empty() {
                format!("{why}, not {digest}")
            } else {
                format!(
                    "{why}, not {digest}; needed as {} (pull again to restore)",
                    users.join(", ")
                )
            };
            let diffid = self.diff_id_path(&digest);
            let p = self.blob_path(&digest);
            self.fixable(Kind::Corrupt, p, what, |p| {
                let _ = fs::remove_file(&diffid);
                remove(p)
            });
        }
    }

    fn missing_blobs(&mut self) {
        for (digest, users) in std::mem::take(&mut self.missing) {
            let p = self.blob_path(&digest);
            self.problem(
                Kind::Missing,
                p,
                format!("needed as {} (pull again to restore)", users.join(", ")),
            );
        }
    }

    fn diff_id_records(&mut self) {
        let dir = self.root.join(".imgtool/diffids");
        let Ok(rd) = fs::read_dir(&dir) else { return };
        let mut names: Vec<_> = rd.flatten().map(|e| e.file_name()).collect();
        names.sort();
        for name in names {
            let name = name.to_string_lossy().into_owned();
            if name.contains(".tmp-") {
                continue; // a temp file: `temp_files` reports it
            }
            let p = dir.join(&name);
            let digest = format!("sha256:{name}");
            if check_digest(&digest).is_err() || self.store.cached_diff_id(&digest).is_none() {
                self.fixable(
                    Kind::Corrupt,
                    p,
                    "not a diff_id record (a sha256 digest, in a file named by a blob's)".into(),
                    remove,
                );
            } else if !self.good.contains_key(&digest) {
                self.fixable(
                    Kind::Orphan,
                    p,
                    format!("diff_id record of {digest}, which is not in the store"),
                    remove,
                );
            }
        }
    }

    fn orphan_blobs(&mut self) {
        if !self.graph_complete {
            self.report.orphans_unknown =
                Some("some index or manifest cannot be read, so what it uses is unknown".into());
            return;
        }
        let orphans: Vec<(String, u64)> = self
            .good
            .iter()
            .filter(|(d, _)| !self.referenced.contains(*d))
            .map(|(d, s)| (d.clone(), *s))
            .collect();
        for (digest, size) in orphans {
            let diffid = self.diff_id_path(&digest);
            let p = self.blob_path(&digest);
            self.fixable(
                Kind::Orphan,
                p,
                format!("no image uses this blob ({size} bytes)"),
                |p| {
                    let _ = fs::remove_file(&diffid);
                    remove(p)
                },
            );
        }
    }

    fn temp_files(&mut self) {
        let me = std::process::id() as i32;
        let mut temps = self.store.temp_entries();
        temps.sort_by(|a, b| a.path.cmp(&b.path));
        for t in temps {
            // Under the exclusive lock no other imgtool has the store open, so whoever wrote
            // these is gone, whatever process now has its pid.
            let what = match t.owner {
                Some(me_) if me_ == me => continue,
                Some(pid) => format!("left by an interrupted imgtool (pid {pid})"),
                None => "left in the store's temp directory by an interrupted command".into(),
            };
            self.fixable(Kind::Debris, t.path, what, remove);
        }
    }

    /// The overlay layer cache: its layers, and the refs bundles hold on them.
    fn snapshots(&mut self) {
        let dir = snapshot::layers_dir(&self.root);
        let Ok(rd) = fs::read_dir(&dir) else { return };
        let mut names: Vec<_> = rd.flatten().map(|e| e.file_name()).collect();
        names.sort();
        let mut unfinished_seen = BTreeSet::new();
        for name in names {
            let name = name.to_string_lossy().into_owned();
            if name.starts_with(".tmp-") {
                continue; // a layer being extracted: `temp_files` reports it
            }
            let p = dir.join(&name);
            let chain = format!("sha256:{name}");
            if check_digest(&chain).is_err() {
                self.fixable(
                    Kind::Debris,
                    p,
                    "not a cached layer (those are named by a chain ID)".into(),
                    remove,
                );
                continue;
            }
            if !p.join("fs").is_dir() {
                self.fixable(
                    Kind::Debris,
                    p,
                    "cached layer without its fs directory".into(),
                    remove,
                );
                continue;
            }
            let live = self.layer_refs(&p, &chain, &mut unfinished_seen);
            if live == 0 {
                self.fixable(
                    Kind::Orphan,
                    p,
                    "cached overlay layer that no bundle uses".into(),
                    |p| snapshot::remove_layer(p).map_err(|e| e.to_string()),
                );
            }
        }
    }

    /// Check the refs on one cached layer; returns how many are still held by live bundles.
    fn layer_refs(
        &mut self,
        layer: &Path,
        chain: &str,
        unfinished_seen: &mut BTreeSet<PathBuf>,
    ) -> usize {
        let refs = layer.join("refs");
        let Ok(rd) = fs::read_dir(&refs) else {
            return 0;
        };
        let mut files: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        files.sort();
        let mut live = 0;
        for f in files {
            let bundle = match fs::read(&f) {
                Ok(b) => PathBuf::from(std::ffi::OsString::from_vec(b)),
                Err(e) => {
                    self.fixable(Kind::Corrupt, f, format!("cannot be read: {e}"), remove);
                    continue;
                }
            };
            let key_ok = f
                .file_name()
                .is_some_and(|n| n.to_string_lossy() == snapshot::bundle_key(&bundle));
            if !key_ok {
                self.fixable(
                    Kind::Corrupt,
                    f,
                    format!(
                        "layer ref naming bundle {} is not filed under that bundle's key",
                        bundle.display()
                    ),
                    remove,
                );
                continue;
            }
            match bundle_dir::state(&bundle) {
                _ if !bundle.exists() => self.fixable(
                    Kind::Orphan,
                    f,
                    format!("layer ref of bundle {}, which is gone", bundle.display()),
                    remove,
                ),
                State::Unfinished(u) if u.as_ref().is_none_or(|u| u.store == self.root) => {
                    // Under the exclusive lock no unpack into this store is running.
                    if unfinished_seen.insert(bundle.clone()) {
                        let pid = u.as_ref().map_or("?".into(), |u| u.pid.to_string());
                        self.fixable(
                            Kind::Orphan,
                            bundle.clone(),
                            format!(
                                "unfinished bundle holding layer refs: its unpack (pid {pid}) \
                                 was interrupted"
                            ),
                            |b| {
                                bundle_dir::remove_unfinished(b, u.as_ref())
                                    .map_err(|e| e.to_string())
                            },
                        );
                    }
                }
                State::Finished => match bundle_dir::read_record(&bundle) {
                    Ok(rec)
                        if rec.chain_ids.iter().any(|c| c == chain)
                            && (rec.store == self.root || rec.store.is_relative()) =>
                    {
                        live += 1
                    }
                    Ok(_) => self.fixable(
                        Kind::Orphan,
                        f,
                        format!(
                            "layer ref of bundle {}, whose record does not use this layer",
                            bundle.display()
                        ),
                        remove,
                    ),
                    // An unreadable record: the bundle may still be mounted on the layer.
                    Err(_) => live += 1,
                },
                _ => self.fixable(
                    Kind::Orphan,
                    f,
                    format!(
                        "layer ref of {}, which is not a bundle of this store",
                        bundle.display()
                    ),
                    remove,
                ),
            }
        }
        live
    }
}

fn remove(p: &Path) -> std::result::Result<(), String> {
    store::remove_path(p).map_err(|e| e.to_string())
}

/// sha256 and size of a file, read in 1 MiB pieces.
fn hash_file(p: &Path) -> std::io::Result<(String, u64)> {
    let mut f = fs::File::open(p)?;
    let mut h = Hasher::default();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((h.finish(), size))
}
