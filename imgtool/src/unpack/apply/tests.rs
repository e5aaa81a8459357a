//! The applier against real layers built in memory, in a temp dir: overwrites, whiteouts and
//! opaque dirs across layers, and hostile entries that must never write outside the rootfs.
use std::io;
use std::path::Path;

use tar::EntryType;

use super::{Applier, ApplyOptions, WhiteoutMode};
use crate::unpack::error::UnpackError;

/// A tiny layer builder: (path, kind, data-or-link-target).
enum E<'a> {
    Dir(&'a str),
    File(&'a str, &'a str),
    Sym(&'a str, &'a str),
    Hard(&'a str, &'a str),
    /// Raw path bytes written into the header as-is (for `..`/absolute names).
    RawFile(&'a [u8]),
}

fn layer(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        match e {
            E::Dir(p) => {
                h.set_entry_type(EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, p, io::empty()).unwrap();
            }
            E::File(p, d) => {
                h.set_entry_type(EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(d.len() as u64);
                b.append_data(&mut h, p, d.as_bytes()).unwrap();
            }
            E::Sym(p, t) => {
                h.set_entry_type(EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, p, t).unwrap();
            }
            E::Hard(p, t) => {
                h.set_entry_type(EntryType::Link);
                h.set_mode(0o644);
                h.set_size(0);
                // append_link refuses nothing, so hostile targets go in verbatim.
                h.set_link_name_literal(t.as_bytes()).unwrap();
                h.set_path("placeholder").unwrap();
                let name = h.as_old_mut().name.as_mut_ptr();
                // SAFETY: writing within the 100-byte name field of the header we own.
                unsafe {
                    std::ptr::write_bytes(name, 0, 100);
                    std::ptr::copy_nonoverlapping(p.as_ptr(), name, p.len());
                }
                h.set_cksum();
                b.append(&h, io::empty()).unwrap();
            }
            E::RawFile(p) => {
                h.set_entry_type(EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(4);
                h.set_path("placeholder").unwrap();
                h.as_old_mut().name = [0; 100];
                h.as_old_mut().name[..p.len()].copy_from_slice(p);
                h.set_cksum();
                b.append(&h, &b"evil"[..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn opts() -> ApplyOptions {
    ApplyOptions {
        rootless: !nix::unistd::geteuid().is_root(),
        whiteouts: WhiteoutMode::Apply,
    }
}

fn apply(root: &Path, layers: &[Vec<u8>]) -> Result<(), UnpackError> {
    let mut a = Applier::new(root, opts())?;
    for (i, l) in layers.iter().enumerate() {
        a.apply_layer(&format!("{}", i + 1), &l[..])?;
    }
    a.finish()
}

fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("rootfs");
    std::fs::create_dir(&root).unwrap();
    std::fs::create_dir(t.path().join("canary")).unwrap();
    (t, root)
}

fn canary_untouched(t: &tempfile::TempDir) {
    assert_eq!(
        std::fs::read_dir(t.path().join("canary")).unwrap().count(),
        0
    );
    let mut names: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["canary", "rootfs"]);
}

#[test]
fn whiteouts_opaque_and_overwrites() {
    let (_t, root) = setup();
    let l1 = layer(&[
        E::Dir("a"),
        E::File("a/keep", "1"),
        E::File("a/gone", "1"),
        E::Dir("o"),
        E::File("o/old", "1"),
        E::Dir("o/sub"),
        E::File("o/sub/old", "1"),
        E::Dir("d"),
        E::File("d/x", "1"),
        E::File("f", "file"),
    ]);
    let l2 = layer(&[
        E::File("a/.wh.gone", ""),
        E::Dir("o"),
        E::Dir("o/sub"),
        E::File("o/sub/new", "2"),
        E::File("o/.wh..wh..opq", ""),
        E::File("o/new", "2"),
        E::File(".wh.d", ""),
        E::Dir("f"),
        E::Hard("a/link", "a/keep"),
    ]);
    apply(&root, &[l1, l2]).unwrap();
    assert!(root.join("a/keep").exists() && !root.join("a/gone").exists());
    assert!(!root.join("o/old").exists() && !root.join("o/sub/old").exists());
    assert!(root.join("o/new").exists() && root.join("o/sub/new").exists());
    assert!(!root.join("d").exists());
    assert!(root.join("f").is_dir());
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(root.join("a/link")).unwrap().ino(),
        std::fs::metadata(root.join("a/keep")).unwrap().ino()
    );
    assert_eq!(
        std::fs::metadata(root.join("a")).unwrap().mtime(),
        1_600_000_000
    );
}

#[test]
fn symlinks_inside_are_followed_for_parents() {
    let (_t, root) = setup();
    let l1 = layer(&[E::Dir("usr"), E::Dir("usr/lib"), E::Sym("lib", "usr/lib")]);
    let l2 = layer(&[E::File("lib/libx.so", "x")]);
    apply(&root, &[l1, l2]).unwrap();
    assert_eq!(std::fs::read(root.join("usr/lib/libx.so")).unwrap(), b"x");
}

fn hostile(layers: &[Vec<u8>], want: &str) {
    let (t, root) = setup();
    let err = apply(&root, layers).unwrap_err().to_string();
    assert!(err.contains(want), "{err}");
    canary_untouched(&t);
}

#[test]
fn hostile_entries_are_refused() {
    hostile(
        &[layer(&[E::RawFile(b"../canary/pwned")])],
        "\"..\" component",
    );
    hostile(&[layer(&[E::RawFile(b"/canary/pwned")])], "absolute path");
    let abs = format!("{}/../canary", std::env::temp_dir().display());
    let _ = abs;
    hostile(
        &[layer(&[
            E::Sym("evil", "../canary"),
            E::File("evil/pwned", "x"),
        ])],
        "symlink that leads out",
    );
    hostile(
        &[
            layer(&[E::Sym("evil", "../canary")]),
            layer(&[E::File("evil/pwned", "x")]),
        ],
        "layer 2: entry \"evil/pwned\"",
    );
    hostile(
        &[
            layer(&[E::Sym("evil", "/")]),
            layer(&[E::File("evil/x", "x")]),
        ],
        "symlink that leads out",
    );
    hostile(&[layer(&[E::Hard("h", "../canary/f")])], "hardlink target");
    hostile(
        &[layer(&[
            E::Sym("evil", ".."),
            E::Hard("h", "evil/canary/f"),
        ])],
        "hardlink target",
    );
    hostile(
        &[layer(&[
            E::Sym("evil", ".."),
            E::File("evil/.wh.canary", ""),
        ])],
        "symlink that leads out",
    );
    hostile(
        &[layer(&[E::RawFile(b"../.wh.canary")])],
        "\"..\" component",
    );
}

#[test]
fn replacing_a_planted_symlink_never_writes_through_it() {
    let (t, root) = setup();
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(t.path().join("canary/keep"), "untouched").unwrap();
    std::fs::set_permissions(
        t.path().join("canary"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let l1 = layer(&[
        E::Sym("f", "../canary/keep"),
        E::Sym("d", "../canary"),
        E::Sym("h", "../canary/keep"),
    ]);
    let l2 = layer(&[
        E::File("f", "pwned?"),
        E::Dir("d"),
        E::File("x", "x"),
        E::Hard("h", "x"),
    ]);
    apply(&root, &[l1, l2]).unwrap();
    assert_eq!(
        std::fs::read_to_string(t.path().join("canary/keep")).unwrap(),
        "untouched"
    );
    assert_eq!(std::fs::read_to_string(root.join("f")).unwrap(), "pwned?");
    assert!(root.join("d").symlink_metadata().unwrap().is_dir());
    assert_eq!(std::fs::read_to_string(root.join("h")).unwrap(), "x");
    let canary_mode = std::fs::metadata(t.path().join("canary"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        canary_mode & 0o7777,
        0o700,
        "the dir entry's mode was not applied through the link"
    );
}

#[test]
fn overlay_mode_writes_overlayfs_whiteouts() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let (_t, root) = setup();
    let l = layer(&[
        E::Dir("a"),
        E::File("a/.wh..wh..opq", ""),
        E::File("a/.wh.gone", ""),
        E::File("a/kept", "k"),
    ]);
    let mut a = Applier::new(
        &root,
        ApplyOptions {
            rootless: false,
            whiteouts: WhiteoutMode::Overlay,
        },
    )
    .unwrap();
    a.apply_layer("1", &l[..]).unwrap();
    a.finish().unwrap();
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let wh = std::fs::symlink_metadata(root.join("a/gone")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
    let mut v = [0u8; 4];
    let p = std::ffi::CString::new(root.join("a").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: NUL-terminated strings and a writable 4-byte buffer for the call.
    let n = unsafe {
        libc::lgetxattr(
            p.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            v.as_mut_ptr().cast(),
            4,
        )
    };
    assert_eq!(&v[..n as usize], b"y");
    assert!(root.join("a/kept").exists());
}

#[test]
fn a_whiteout_does_not_hide_its_own_layer() {
    let (_t, root) = setup();
    let l1 = layer(&[E::File("x", "lower")]);
    let l2 = layer(&[E::File("x", "same layer"), E::File(".wh.x", "")]);
    apply(&root, &[l1, l2]).unwrap();
    assert_eq!(
        std::fs::read_to_string(root.join("x")).unwrap(),
        "same layer"
    );
}
