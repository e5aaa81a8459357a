//! Helpers of the `imgtool unpack` tests: a generator of OCI image layouts with hand-made layers
//! (any entry a tar can hold, hostile ones included), and a comparable snapshot of a rootfs tree.
use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use sha2::{Digest, Sha256};

/// What a layer entry is.
#[derive(Clone, Debug)]
pub enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
    Hardlink(String),
    Fifo,
    Char(u32, u32),
    Block(u32, u32),
}

/// One tar entry; the path is written into the header verbatim (no cleaning), so hostile names
/// like `../x` or `/x` reach the unpacker as an attacker would send them.
#[derive(Clone, Debug)]
pub struct Entry {
    pub path: String,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl Entry {
    fn new(path: &str, kind: Kind, mode: u32) -> Entry {
        Entry {
            path: path.into(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: 1_700_000_000,
            xattrs: vec![],
        }
    }
    pub fn owner(mut self, uid: u64, gid: u64) -> Entry {
        self.uid = uid;
        self.gid = gid;
        self
    }
    pub fn mode(mut self, mode: u32) -> Entry {
        self.mode = mode;
        self
    }
    pub fn xattr(mut self, k: &str, v: &[u8]) -> Entry {
        self.xattrs.push((k.into(), v.to_vec()));
        self
    }
}

pub fn dir(p: &str) -> Entry {
    Entry::new(p, Kind::Dir, 0o755)
}
pub fn file(p: &str, data: &str) -> Entry {
    Entry::new(p, Kind::File(data.as_bytes().to_vec()), 0o644)
}
pub fn file_bytes(p: &str, data: &[u8]) -> Entry {
    Entry::new(p, Kind::File(data.to_vec()), 0o644)
}
pub fn symlink(p: &str, target: &str) -> Entry {
    Entry::new(p, Kind::Symlink(target.into()), 0o777)
}
pub fn hardlink(p: &str, target: &str) -> Entry {
    Entry::new(p, Kind::Hardlink(target.into()), 0o644)
}
pub fn fifo(p: &str) -> Entry {
    Entry::new(p, Kind::Fifo, 0o644)
}
pub fn chardev(p: &str, major: u32, minor: u32) -> Entry {
    Entry::new(p, Kind::Char(major, minor), 0o666)
}
pub fn blockdev(p: &str, major: u32, minor: u32) -> Entry {
    Entry::new(p, Kind::Block(major, minor), 0o660)
}
/// `.wh.NAME` in `dir` (`""` for the top).
pub fn whiteout(dir_: &str, name: &str) -> Entry {
    let p = if dir_.is_empty() {
        format!(".wh.{name}")
    } else {
        format!("{dir_}/.wh.{name}")
    };
    Entry::new(&p, Kind::File(vec![]), 0o644)
}
pub fn opaque(dir_: &str) -> Entry {
    Entry::new(&format!("{dir_}/.wh..wh..opq"), Kind::File(vec![]), 0o644)
}

/// A `security.capability` value (VFS_CAP_REVISION_2) granting `cap` permitted+effective.
pub fn file_cap(cap: u32) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(0x0200_0000u32 | 1).to_le_bytes()); // revision 2, effective bit
    v.extend_from_slice(&(1u32 << cap).to_le_bytes()); // permitted lo
    v.extend_from_slice(&0u32.to_le_bytes()); // inheritable lo
    v.extend_from_slice(&0u32.to_le_bytes()); // permitted hi
    v.extend_from_slice(&0u32.to_le_bytes()); // inheritable hi
    v
}

fn set_raw_name(h: &mut tar::Header, name: &[u8]) {
    assert!(name.len() < 100, "generator keeps names short: {name:?}");
    let old = h.as_old_mut();
    old.name = [0; 100];
    old.name[..name.len()].copy_from_slice(name);
}

/// The uncompressed tar of a layer.
pub fn layer_tar(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        if !e.xattrs.is_empty() {
            let pax: Vec<(String, &[u8])> = e
                .xattrs
                .iter()
                .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.as_slice()))
                .collect();
            b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), *v)))
                .unwrap();
        }
        let mut h = tar::Header::new_ustar();
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        h.set_mtime(e.mtime);
        h.set_size(0);
        let mut data: &[u8] = &[];
        match &e.kind {
            Kind::Dir => h.set_entry_type(tar::EntryType::Directory),
            Kind::File(d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(d.len() as u64);
                data = d;
            }
            Kind::Symlink(t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_link_name_literal(t.as_bytes()).unwrap();
            }
            Kind::Hardlink(t) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_link_name_literal(t.as_bytes()).unwrap();
            }
            Kind::Fifo => h.set_entry_type(tar::EntryType::Fifo),
            Kind::Char(ma, mi) | Kind::Block(ma, mi) => {
                h.set_entry_type(if matches!(e.kind, Kind::Char(..)) {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                });
                h.set_device_major(*ma).unwrap();
                h.set_device_minor(*mi).unwrap();
            }
        }
        set_raw_name(&mut h, e.path.as_bytes());
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

/// The uncompressed tar of a directory tree (owners, modes, times as on disk).
pub fn tar_of_dir(dir_: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.mode(tar::HeaderMode::Complete);
    b.append_dir_all(".", dir_).unwrap();
    b.into_inner().unwrap()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

fn compress(tool: &str, args: &[&str], data: &[u8]) -> Vec<u8> {
    use std::process::{Command, Stdio};
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "{tool} failed");
    out.stdout
}

pub fn sha256_hex(data: &[u8]) -> String {
    if data.len() > 1 << 20 {
        // sha256sum: the sha2 crate is slow in an unoptimised test build.
        let out = compress("sha256sum", &[], data);
        return String::from_utf8_lossy(&out[..64]).into_owned();
    }
    format!("{:x}", Sha256::digest(data))
}

/// A file's bytes, compared byte for byte and shown by length and sha256.
#[derive(Clone, PartialEq, Eq)]
pub struct Content(pub Vec<u8>);

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes sha256:{}", self.0.len(), sha256_hex(&self.0))
    }
}

/// An OCI image layout written to disk, the `oci:DIR:TAG` source of imgtool and umoci.
pub struct OciImage {
    layers: Vec<(Vec<u8>, Compression)>,
    pub config: serde_json::Value,
    /// Overrides the computed diff_ids (to make a lying config).
    pub diff_ids_override: Option<Vec<String>>,
}

impl OciImage {
    /// An image whose config runs `cmd`.
    pub fn new(cmd: &[&str]) -> OciImage {
        OciImage {
            layers: vec![],
            config: serde_json::json!({
                "architecture": "amd64", "os": "linux",
                "config": { "Cmd": cmd, "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] },
                "rootfs": { "type": "layers", "diff_ids": [] },
                "history": []
            }),
            diff_ids_override: None,
        }
    }

    pub fn layer(mut self, tar: Vec<u8>, c: Compression) -> OciImage {
        self.layers.push((tar, c));
        self
    }

    /// Set `config.config.KEY` (User, WorkingDir, Env, Entrypoint...).
    pub fn set(mut self, key: &str, v: serde_json::Value) -> OciImage {
        self.config["config"][key] = v;
        self
    }

    fn put_blob(dir_: &Path, data: &[u8]) -> String {
        let hex = sha256_hex(data);
        std::fs::write(dir_.join("blobs/sha256").join(&hex), data).unwrap();
        format!("sha256:{hex}")
    }

    /// Write the layout at `dir` with `tag` as its `org.opencontainers.image.ref.name`.
    pub fn write(&self, dir_: &Path, tag: &str) {
        std::fs::create_dir_all(dir_.join("blobs/sha256")).unwrap();
        std::fs::write(dir_.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let mut descs = vec![];
        let mut diff_ids = vec![];
        for (tar, c) in &self.layers {
            diff_ids.push(format!("sha256:{}", sha256_hex(tar)));
            let (blob, mt) = match c {
                Compression::None => (tar.clone(), "application/vnd.oci.image.layer.v1.tar"),
                // The CLI tools: much faster than the crates in an unoptimised test build.
                Compression::Gzip => (
                    compress("gzip", &["-1", "-c"], tar),
                    "application/vnd.oci.image.layer.v1.tar+gzip",
                ),
                Compression::Zstd => (
                    compress("zstd", &["-3", "-q", "-c"], tar),
                    "application/vnd.oci.image.layer.v1.tar+zstd",
                ),
            };
            let digest = Self::put_blob(dir_, &blob);
            descs.push(serde_json::json!({"mediaType": mt, "digest": digest, "size": blob.len()}));
        }
        let mut config = self.config.clone();
        config["rootfs"]["diff_ids"] =
            serde_json::json!(self.diff_ids_override.clone().unwrap_or(diff_ids));
        let config = serde_json::to_vec(&config).unwrap();
        let cdigest = Self::put_blob(dir_, &config);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdigest, "size": config.len()},
            "layers": descs,
        }))
        .unwrap();
        let mdigest = Self::put_blob(dir_, &manifest);
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": mdigest, "size": manifest.len(),
                "annotations": {"org.opencontainers.image.ref.name": tag}
            }]
        });
        std::fs::write(dir_.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    }
}

/// What the fidelity tests compare for each path of a rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: char,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u64,
    pub link: Option<String>,
    pub rdev: Option<u64>,
    pub content: Option<Content>,
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

fn xattrs_of(p: &Path) -> BTreeMap<String, Vec<u8>> {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut out = BTreeMap::new();
    let mut names = vec![0u8; 65536];
    // SAFETY: `c` is NUL-terminated and `names` is a writable buffer of the length passed.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return out;
    }
    for name in names[..n as usize]
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
    {
        let key = String::from_utf8_lossy(name).into_owned();
        // overlayfs bookkeeping and SELinux labels are not image content.
        if key.starts_with("trusted.overlay.") || key == "security.selinux" {
            continue;
        }
        let cname = CString::new(name).unwrap();
        let mut val = vec![0u8; 65536];
        // SAFETY: as above; `val` is writable for its length.
        let m = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                cname.as_ptr(),
                val.as_mut_ptr().cast(),
                val.len(),
            )
        };
        if m >= 0 {
            val.truncate(m as usize);
            out.insert(key, val);
        }
    }
    out
}

/// Every path below `root` (relative, `.` for the root itself) with what it is.
pub fn snapshot_tree(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let rel = if rel.is_empty() { ".".to_string() } else { rel };
        let kind = if ft.is_dir() {
            'd'
        } else if ft.is_symlink() {
            'l'
        } else if ft.is_file() {
            'f'
        } else if ft.is_fifo() {
            'p'
        } else if ft.is_char_device() {
            'c'
        } else if ft.is_block_device() {
            'b'
        } else {
            's'
        };
        let node = Node {
            kind,
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            nlink: if kind == 'd' { 0 } else { m.nlink() },
            link: (kind == 'l').then(|| {
                std::fs::read_link(&p)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            }),
            rdev: matches!(kind, 'c' | 'b').then(|| m.rdev()),
            content: (kind == 'f').then(|| Content(std::fs::read(&p).unwrap())),
            xattrs: xattrs_of(&p),
        };
        if kind == 'd' {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
        out.insert(rel, node);
    }
    out
}

/// A readable list of the differences between two snapshots (empty when equal).
pub fn diff_trees(a: &BTreeMap<String, Node>, b: &BTreeMap<String, Node>) -> Vec<String> {
    let mut d = vec![];
    for (k, v) in a {
        match b.get(k) {
            None => d.push(format!("only in imgtool's: {k} {v:?}")),
            Some(w) if w != v => d.push(format!("{k}:\n  imgtool: {v:?}\n  other:   {w:?}")),
            _ => {}
        }
    }
    for (k, w) in b {
        if !a.contains_key(k) {
            d.push(format!("only in other: {k} {w:?}"));
        }
    }
    d
}
