//! What imgtool keeps in a bundle directory beside `config.json` and `rootfs`, and how a bundle
//! of ours is recognised and taken apart, whatever moment a kill left it in.
//!
//! - `DIR/.imgtool-unpacking` (the marker): written right after `unpack` claims DIR, removed
//!   last. While it is there the bundle is unfinished, whatever else DIR holds (a record
//!   included), and once its pid is dead `bundle rm`, `bundle prune`, `fsck --repair` and a
//!   new `unpack` into DIR may remove it, mount and layer refs included.
//! - `DIR/imgtool-bundle.json` (the record): how a finished bundle was made, so `bundle rm|info`
//!   can undo and measure it.
//!
//! Both are written whole (temp file + rename inside DIR), and a bundle is removed with the
//! marker and the record last, so a kill at any moment leaves DIR either recognisable as ours
//! or empty.
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::snapshot;
use crate::unpack;

/// What a bundle's rootfs is.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotMode {
    /// A plain directory with every layer applied (portable, as umoci makes).
    Copy,
    /// An overlay mount of per-layer cache dirs in the store (near-instant once cached; root only).
    Overlay,
}

/// DIR/imgtool-bundle.json.
#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct BundleRecord {
    pub image: String,
    pub image_id: String,
    pub snapshot: SnapshotMode,
    pub store: PathBuf,
    /// diff_ids, base first.
    pub layers: Vec<String>,
    /// Overlay mode: the chain IDs keying the layer cache dirs this bundle holds refs on.
    #[serde(default)]
    pub chain_ids: Vec<String>,
}

pub const RECORD: &str = "imgtool-bundle.json";

/// DIR/.imgtool-unpacking: who is unpacking here, and what it may have taken in the store.
#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Unfinished {
    pub pid: i32,
    pub snapshot: SnapshotMode,
    pub store: PathBuf,
    #[serde(default)]
    pub chain_ids: Vec<String>,
}

pub const UNFINISHED: &str = ".imgtool-unpacking";

/// What a directory is, as far as imgtool is concerned.
pub enum State {
    /// Nothing of ours: no marker, no record (possibly empty, possibly someone else's).
    Foreign,
    /// An unpack claimed it and has not finished; `None` when it was killed while writing its
    /// marker, so DIR holds nothing but that marker's temp file (or a marker cut short by an
    /// older imgtool that wrote it in place).
    Unfinished(Option<Unfinished>),
    /// A finished bundle.
    Finished,
}

impl State {
    /// Whether a dead unpack left it: removable by anyone without asking. A marker naming our
    /// own pid is a dead unpack's too: no command of ours looks at a DIR it is unpacking, so
    /// the pid was reused.
    pub fn is_dead_unpack(&self) -> bool {
        match self {
            State::Unfinished(Some(u)) => {
                u.pid == std::process::id() as i32 || !crate::store::process_alive(u.pid)
            }
            State::Unfinished(None) => true,
            _ => false,
        }
    }
}

/// Look at DIR: marker first (a record beside it was written by an unpack killed before it
/// could remove the marker, so the bundle is still unfinished).
pub fn state(dir: &Path) -> State {
    let marker = dir.join(UNFINISHED);
    match fs::read(&marker) {
        Ok(data) => match serde_json::from_slice::<Unfinished>(&data) {
            Ok(u) => State::Unfinished(Some(u)),
            // The marker is written whole (rename), so a bad one is only ours when DIR holds
            // nothing else: an older imgtool that wrote it in place, killed mid-write.
            Err(_) if only_entry(dir, UNFINISHED) => State::Unfinished(None),
            Err(_) => State::Foreign,
        },
        Err(_) if dir.join(RECORD).exists() => State::Finished,
        Err(_) if only_dead_marker_temps(dir) => State::Unfinished(None),
        Err(_) => State::Foreign,
    }
}

/// DIR holds nothing but temp files of markers whose writers are dead.
fn only_dead_marker_temps(dir: &Path) -> bool {
    let prefix = format!(".{UNFINISHED}.tmp-");
    let Ok(rd) = fs::read_dir(dir) else {
        return false;
    };
    let mut any = false;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let dead = name
            .strip_prefix(&prefix)
            .and_then(|pid| pid.parse::<i32>().ok())
            .is_some_and(|pid| !crate::store::process_alive(pid));
        if !dead {
            return false;
        }
        any = true;
    }
    any
}

fn only_entry(dir: &Path, name: &str) -> bool {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .all(|e| e.file_name().to_string_lossy() == name)
        })
        .unwrap_or(false)
}

/// Write `data` to DIR/name whole: a temp file beside it, then a rename, so a kill leaves either
/// the old content or the new, never half of it.
fn write_whole(dir: &Path, name: &str, data: &[u8]) -> Result<(), Error> {
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io("write", &tmp)(e));
    }
    let dest = dir.join(name);
    fs::rename(&tmp, &dest).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io("rename into place", &dest)(e)
    })
}

pub fn write_unfinished(dir: &Path, u: &Unfinished) -> Result<(), Error> {
    let json =
        serde_json::to_vec(u).map_err(|e| Error::Unpack(format!("encode {UNFINISHED}: {e}")))?;
    write_whole(dir, UNFINISHED, &json)
}

pub fn write_record(dir: &Path, rec: &BundleRecord) -> Result<(), Error> {
    let json = serde_json::to_vec_pretty(rec)
        .map_err(|e| Error::Unpack(format!("encode {RECORD}: {e}")))?;
    write_whole(dir, RECORD, &json)
}

/// The record of a finished bundle, or an error saying what DIR is instead.
pub fn read_record(dir: &Path) -> Result<BundleRecord, Error> {
    if let State::Unfinished(_) = state(dir) {
        return Err(Error::Unpack(format!(
            "{}: its unpack never finished (bundle rm removes it)",
            dir.display()
        )));
    }
    let p = dir.join(RECORD);
    let data = fs::read(&p).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Unpack(format!(
                "{}: not a bundle made by imgtool unpack (no {RECORD})",
                dir.display()
            ))
        } else {
            Error::io("read", &p)(e)
        }
    })?;
    serde_json::from_slice(&data).map_err(|e| Error::Parse {
        what: p.display().to_string(),
        reason: e.to_string(),
    })
}

/// Remove a path and everything below it without following symlinks; directories a rootless
/// unpack left read-only are made writable first.
pub fn remove_tree(p: &Path) -> std::io::Result<()> {
    let parent = p.parent().unwrap_or(Path::new("/"));
    let name = p
        .file_name()
        .map(|n| n.as_encoded_bytes().to_vec())
        .unwrap_or_default();
    let fd = unpack::resolve::open_root(parent)?;
    match unpack::tree::remove_tree(std::os::fd::AsFd::as_fd(&fd), &name) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// Remove a bundle directory with what makes it ours last: everything else, then the record,
/// then the marker, then DIR. A kill in the middle leaves a bundle the next `bundle rm` still
/// knows, or an empty directory.
pub fn remove_bundle_dir(dir: &Path) -> Result<(), Error> {
    let rd = fs::read_dir(dir).map_err(Error::io("read bundle dir", dir))?;
    let mut names: Vec<_> = rd.flatten().map(|e| e.file_name()).collect();
    let last = |n: &std::ffi::OsString| match n.to_str() {
        Some(RECORD) => 1,
        Some(UNFINISHED) => 2,
        _ => 0,
    };
    names.sort_by_key(last);
    for n in names {
        let p = dir.join(&n);
        remove_tree(&p).map_err(Error::io("remove", &p))?;
    }
    match fs::remove_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io("remove bundle", dir)(e))
        }
        _ => Ok(()),
    }
}

/// Undo what an unpack that never finished did in DIR: its mount, its layer refs, the directory.
pub fn remove_unfinished(dir: &Path, u: Option<&Unfinished>) -> Result<(), Error> {
    let rootfs = dir.join("rootfs");
    if u.is_some_and(|u| u.snapshot == SnapshotMode::Overlay) && snapshot::is_mountpoint(&rootfs) {
        snapshot::unmount(&rootfs)?;
    }
    if snapshot::is_mountpoint(&rootfs) {
        return Err(Error::Unpack(format!(
            "{}: still mounted, not removing",
            rootfs.display()
        )));
    }
    if let Some(u) = u {
        snapshot::remove_refs(&u.store, &u.chain_ids, dir);
    }
    remove_bundle_dir(dir)
}
