//! The store's integrity, black-box: `imgtool fsck` (and `images --verify`) against stores
//! damaged by hand (a flipped byte, a deleted blob, stray temp files, overlay layers and refs
//! nobody holds), and a full disk (a small tmpfs as the store and as the bundle directory, in
//! a mount namespace of the test's own) under pull, unpack and save.
//! Needs (root): docker-registry, skopeo.
use std::path::PathBuf;

use integration::imgstore::{dead_pid, ImgStore};
use integration::private_tmpfs::with_tmpfs;
use integration::registry::{Comp, Fault, FaultProxy, Flavor, LayerSpec, Layout, TestRegistry};
use integration::stderr;
use integration::unpack::{dir, file, file_bytes, layer_tar, Compression, OciImage};

struct Fixture {
    tmp: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            tmp: tempfile::Builder::new()
                .prefix("imgtool-store-test")
                .tempdir()
                .unwrap(),
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    fn store(&self) -> ImgStore {
        ImgStore::at(&self.path("store"))
    }

    /// An OCI layout holding `img` under the full name `name`; returns its `oci:` source.
    fn layout(&self, dir_: &str, name: &str, img: &OciImage) -> String {
        let d = self.path(dir_);
        img.write(&d, name);
        format!("oci:{}:{name}", d.display())
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Overlay bundles a failing test left mounted must not keep the temp dir busy.
        if let Ok(m) = std::fs::read_to_string("/proc/self/mountinfo") {
            let base = self.tmp.path().to_string_lossy().into_owned();
            for l in m.lines() {
                if let Some(mp) = l.split(' ').nth(4).filter(|mp| mp.starts_with(&base)) {
                    let _ = nix::mount::umount2(mp, nix::mount::MntFlags::MNT_DETACH);
                }
            }
        }
    }
}

/// A two-layer image: a directory of small files, then one more file.
fn two_layer_image(marker: &str) -> OciImage {
    let mut entries = vec![dir("etc")];
    for i in 0..20 {
        entries.push(file(&format!("etc/f{i}"), marker));
    }
    OciImage::new(&["/bin/sh"])
        .layer(layer_tar(&entries), Compression::Gzip)
        .layer(layer_tar(&[file("marker", marker)]), Compression::Gzip)
}

/// The image's blobs as pulled into the store: (manifest, config, layers).
fn image_blobs(store: &ImgStore, name: &str) -> (String, String, Vec<String>) {
    let v: serde_json::Value =
        serde_json::from_str(&store.ok(&["inspect", "--format", "json", name])).unwrap();
    let layers = v["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["Digest"].as_str().unwrap().to_string())
        .collect();
    (
        v["Digest"].as_str().unwrap().to_string(),
        v["Id"].as_str().unwrap().to_string(),
        layers,
    )
}

#[test]
fn fsck_of_a_sound_store_reports_nothing_and_exits_0() {
    let f = Fixture::new();
    let store = f.store();
    for m in ["a", "b"] {
        let src = f.layout(m, &format!("localhost/fsck/{m}:1"), &two_layer_image(m));
        store.ok(&["pull", "-q", &src]);
    }
    let r = store.fsck(&[]);
    r.assert_clean();
    assert!(
        r.summary.contains("8 blobs and 2 index entries"),
        "{}",
        r.summary
    );
    // `images --verify` is the same check.
    let o = store.run(&["images", "--verify"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(integration::stdout(&o).lines().count(), 1);
}

#[test]
fn fsck_names_a_blob_with_a_flipped_byte_and_the_image_that_needs_it() {
    let f = Fixture::new();
    let store = f.store();
    let name = "localhost/fsck/flip:1";
    let src = f.layout("flip", name, &two_layer_image("flip"));
    store.ok(&["pull", "-q", &src]);
    let (_, _, layers) = image_blobs(&store, name);
    let blob = store.blob_path(&layers[0]);
    let mut data = std::fs::read(&blob).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0x01;
    std::fs::write(&blob, &data).unwrap();

    let r = store.fsck(&[]);
    assert_eq!(r.code, Some(1), "{r:?}");
    let corrupt = r.of("corrupt");
    assert_eq!(corrupt.len(), 1, "{r:?}");
    assert_eq!(corrupt[0].path, blob);
    assert!(
        corrupt[0].what.contains("content hashes to sha256:")
            && corrupt[0].what.contains(&format!("not {}", layers[0]))
            && corrupt[0].what.contains(&format!("layer 1 of {name}")),
        "{:?}",
        corrupt[0]
    );
    assert_eq!(r.problems.len(), 1, "{r:?}");
    let err: Vec<&str> = r.stderr.lines().collect();
    assert!(
        err.len() == 1 && err[0].starts_with("imgtool: store ") && err[0].contains("damaged"),
        "{}",
        r.stderr
    );
    assert_eq!(store.run(&["images", "--verify"]).status.code(), Some(1));

    // Repair removes the bad blob (the image now misses it), and a new pull restores it.
    let r = store.fsck(&["--repair"]);
    assert_eq!(r.code, Some(1));
    assert!(r.of("corrupt")[0].what.ends_with("(removed)"), "{r:?}");
    assert!(!blob.exists());
    let r = store.fsck(&[]);
    let missing = r.of("missing");
    assert!(
        missing.len() == 1 && missing[0].path == blob,
        "{:?}",
        r.problems
    );
    store.ok(&["pull", "-q", &src]);
    store.fsck(&[]).assert_clean();
}

#[test]
fn fsck_names_a_deleted_blob_as_missing_for_every_image_that_needs_it() {
    let f = Fixture::new();
    let store = f.store();
    // Two images sharing their first layer.
    let base = layer_tar(&[dir("usr"), file("usr/shared", "same")]);
    let names = ["localhost/fsck/one:1", "localhost/fsck/two:1"];
    for (i, n) in names.iter().enumerate() {
        let img = OciImage::new(&["/bin/sh"])
            .layer(base.clone(), Compression::Gzip)
            .layer(layer_tar(&[file("own", n)]), Compression::Gzip);
        let src = f.layout(&format!("l{i}"), n, &img);
        store.ok(&["pull", "-q", &src]);
    }
    let (_, config, layers) = image_blobs(&store, names[0]);
    std::fs::remove_file(store.blob_path(&layers[0])).unwrap();
    std::fs::remove_file(store.blob_path(&config)).unwrap();

    let r = store.fsck(&[]);
    assert_eq!(r.code, Some(1), "{r:?}");
    let missing = r.of("missing");
    assert_eq!(missing.len(), 2, "{:?}", r.problems);
    let shared = missing
        .iter()
        .find(|p| p.path == store.blob_path(&layers[0]))
        .expect("the shared layer is reported");
    for n in names {
        assert!(
            shared.what.contains(&format!("layer 1 of {n}")),
            "{shared:?}"
        );
    }
    let cfg = missing
        .iter()
        .find(|p| p.path == store.blob_path(&config))
        .expect("the config is reported");
    assert!(
        cfg.what.contains(&format!("config of {}", names[0])),
        "{cfg:?}"
    );
    assert!(r.stderr.contains("2 missing"), "{}", r.stderr);
}

#[test]
fn fsck_lists_stray_temp_files_and_orphans_and_repair_removes_them() {
    let f = Fixture::new();
    let store = f.store();
    let name = "localhost/fsck/debris:1";
    let src = f.layout("d", name, &two_layer_image("debris"));
    store.ok(&["pull", "-q", &src]);
    let before = store.blobs();
    let pid = dead_pid();
    // What interrupted commands leave: a temp blob, an archive extraction dir, a half-written
    // index.json, a diff_id record being written; and whole blobs that nothing uses.
    let temps = [
        store.dir.join(format!(".imgtool/tmp/{pid}-0")),
        store.dir.join(format!(".imgtool/tmp/extract-{pid}-x")),
        store.dir.join(format!(".index.json.tmp-{pid}-3")),
        store
            .dir
            .join(format!(".imgtool/diffids/.{}.tmp-{pid}-0", "a".repeat(64))),
    ];
    for t in &temps {
        if t.to_string_lossy().contains("extract-") {
            std::fs::create_dir_all(t.join("blobs")).unwrap();
        } else {
            std::fs::write(t, b"half").unwrap();
        }
    }
    let orphan = b"a blob that no image uses";
    let orphan_digest = integration::registry::digest_of(orphan);
    std::fs::write(store.blob_path(&orphan_digest), orphan).unwrap();
    let record = store.dir.join(".imgtool/diffids").join("b".repeat(64));
    std::fs::write(&record, &orphan_digest).unwrap();

    let r = store.fsck(&[]);
    assert_eq!(r.code, Some(0), "orphans and debris are no damage: {r:?}");
    let debris: Vec<&PathBuf> = r.of("debris").iter().map(|p| &p.path).collect();
    for t in &temps {
        assert!(
            debris.contains(&t),
            "{} not reported: {:?}",
            t.display(),
            r.problems
        );
    }
    assert!(
        r.of("debris")
            .iter()
            .all(|p| p.what.contains(&format!("pid {pid}"))),
        "{:?}",
        r.problems
    );
    let orphans: Vec<&PathBuf> = r.of("orphan").iter().map(|p| &p.path).collect();
    assert!(
        orphans.contains(&&store.blob_path(&orphan_digest)) && orphans.contains(&&record),
        "{:?}",
        r.problems
    );
    assert_eq!(r.problems.len(), temps.len() + 2, "{:?}", r.problems);

    let r = store.fsck(&["--repair"]);
    assert_eq!(r.code, Some(0));
    assert!(
        r.problems.iter().all(|p| p.what.ends_with("(removed)")),
        "{:?}",
        r.problems
    );
    for t in &temps {
        assert!(!t.exists(), "{} survived --repair", t.display());
    }
    store.fsck(&[]).assert_clean();
    assert_eq!(store.blobs(), before);
    store.ok(&["inspect", name]);
}

#[test]
fn fsck_lists_layer_refs_of_a_vanished_bundle_and_layers_nobody_uses() {
    let f = Fixture::new();
    let store = f.store();
    let src = f.layout("o", "localhost/fsck/overlay:1", &two_layer_image("o"));
    let (kept, gone) = (f.path("kept"), f.path("gone"));
    for b in [&kept, &gone] {
        store.ok(&["unpack", "--snapshot", "overlay", &src, b.to_str().unwrap()]);
    }
    store.fsck(&[]).assert_clean();
    // A bundle removed behind imgtool's back: its refs pin the layers for ever.
    nix::mount::umount2(&gone.join("rootfs"), nix::mount::MntFlags::empty()).unwrap();
    std::fs::remove_dir_all(&gone).unwrap();
    let r = store.fsck(&[]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let orphans = r.of("orphan");
    assert_eq!(orphans.len(), 2, "one ref per layer: {:?}", r.problems);
    for p in &orphans {
        assert!(
            p.path.to_string_lossy().contains("/snapshots/layers/")
                && p.path.to_string_lossy().contains("/refs/")
                && p.what
                    .contains(&format!("bundle {}, which is gone", gone.display())),
            "{p:?}"
        );
    }
    // The bundle still there keeps its layers: only the dead refs go.
    store.fsck(&["--repair"]);
    store.fsck(&[]).assert_clean();
    assert!(kept.join("rootfs/marker").is_file());
    store.ok(&["bundle", "rm", kept.to_str().unwrap()]);
    // Now no bundle uses the layers.
    let r = store.fsck(&[]);
    let unused = r.of("orphan");
    assert!(
        unused.len() == 2
            && unused
                .iter()
                .all(|p| p.what.contains("cached overlay layer that no bundle uses")),
        "{:?}",
        r.problems
    );
    store.fsck(&["--repair"]);
    store.fsck(&[]).assert_clean();
    assert_eq!(
        std::fs::read_dir(store.dir.join("snapshots/layers"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn fsck_of_a_directory_that_is_no_store_is_a_one_line_error() {
    let f = Fixture::new();
    let nowhere = ImgStore::at(&f.path("nowhere"));
    let err = nowhere.fails(&["fsck"]);
    assert!(
        err.contains(&f.path("nowhere").display().to_string())
            && err.contains("not an imgtool store"),
        "{err}"
    );
    assert!(!f.path("nowhere").exists(), "fsck made a store");
}

/// Bytes that do not compress (a layer that takes its full size on disk), from a seed.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn a_pull_into_a_full_store_fails_naming_the_path_and_leaves_the_store_as_it_was() {
    let f = Fixture::new();
    let reg = TestRegistry::plain();
    let layout = Layout::create(&f.path("layout"));
    let small = noise(1 << 20, 1);
    let (other, big) = (noise(1 << 20, 3), noise(12 << 20, 2));
    let images = [
        ("fits", vec![("small", &small)]),
        ("too-big", vec![("other", &other), ("big", &big)]),
    ];
    for (tag, files) in &images {
        let layers: Vec<LayerSpec> = files
            .iter()
            .map(|(p, d)| LayerSpec::files(Comp::None, &[(*p, d.as_slice())]))
            .collect();
        layout.tagged_image(tag, Flavor::Oci, &layers, tag);
        reg.push(&layout.dir, tag, "full/disk", tag);
    }
    let store_dir = f.path("store");
    std::fs::create_dir(&store_dir).unwrap();
    let store = ImgStore::at(&store_dir);
    let fits = format!("{}/full/disk:fits", reg.addr);
    let too_big = format!("{}/full/disk:too-big", reg.addr);
    with_tmpfs(&[&store_dir], "8m", || {
        store.ok(&["--plain-http", "pull", "-q", &fits]);
        let blobs = store.blobs();
        let images = store.images();
        let err = store.fails(&["--plain-http", "pull", "-q", &too_big]);
        assert!(
            err.to_lowercase().contains("no space left on device")
                && err.contains(&store_dir.display().to_string()),
            "{err}"
        );
        // As it was: the same blobs (none of the failed pull's), the same images, no temp
        // files, nothing for fsck to say, and the earlier image still unpacks.
        assert_eq!(store.blobs(), blobs);
        assert_eq!(store.images(), images);
        assert!(store.debris().is_empty(), "{:?}", store.debris());
        store.fsck(&[]).assert_clean();
        let b = f.path("bundle");
        store.ok(&["unpack", &fits, b.to_str().unwrap()]);
        assert_eq!(std::fs::read(b.join("rootfs/small")).unwrap(), small);
    });
}

#[test]
fn an_unpack_into_a_full_directory_fails_naming_the_file_and_leaves_no_bundle() {
    let f = Fixture::new();
    let store = f.store();
    // 12 MiB of zeros: a tiny blob, a big file.
    let zeros = vec![0u8; 12 << 20];
    let img = OciImage::new(&["/bin/sh"]).layer(
        layer_tar(&[dir("data"), file_bytes("data/zeros", &zeros)]),
        Compression::Gzip,
    );
    let src = f.layout("z", "localhost/full/zeros:1", &img);
    store.ok(&["pull", "-q", &src]);
    let small = f.path("small");
    std::fs::create_dir(&small).unwrap();
    with_tmpfs(&[&small], "8m", || {
        let b = small.join("bundle");
        let err = store.fails(&["unpack", &src, b.to_str().unwrap()]);
        assert!(
            err.to_lowercase().contains("no space left on device")
                && err.contains(&b.join("rootfs/data/zeros").display().to_string()),
            "{err}"
        );
        assert!(!b.exists(), "a partial bundle is left");
        assert_eq!(std::fs::read_dir(&small).unwrap().count(), 0);
        // save onto the full disk: an error, and no half archive.
        std::fs::write(small.join("filler"), noise(7 << 20, 4)).unwrap();
        let out = small.join("zeros.tar");
        let err = store.fails(&[
            "save",
            "-o",
            out.to_str().unwrap(),
            "localhost/full/zeros:1",
        ]);
        assert!(
            err.to_lowercase().contains("no space left on device"),
            "{err}"
        );
        let left: Vec<_> = std::fs::read_dir(&small)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("filler")]);
    });
    store.fsck(&[]).assert_clean();
}

#[test]
fn an_overlay_unpack_into_a_full_store_leaves_no_half_layer_and_the_store_intact() {
    let f = Fixture::new();
    let store_dir = f.path("store");
    std::fs::create_dir(&store_dir).unwrap();
    let store = ImgStore::at(&store_dir);
    let zeros = vec![0u8; 12 << 20];
    let img = OciImage::new(&["/bin/sh"])
        .layer(layer_tar(&[file_bytes("zeros", &zeros)]), Compression::Gzip);
    let src = f.layout("z", "localhost/full/overlay:1", &img);
    let b = f.path("bundle");
    with_tmpfs(&[&store_dir], "8m", || {
        store.ok(&["pull", "-q", &src]);
        let blobs = store.blobs();
        let err = store.fails(&["unpack", "--snapshot", "overlay", &src, b.to_str().unwrap()]);
        assert!(
            err.to_lowercase().contains("no space left on device")
                && err.contains(&store_dir.join("snapshots/layers").display().to_string()),
            "{err}"
        );
        assert!(!b.exists(), "a partial bundle is left");
        assert!(store.debris().is_empty(), "{:?}", store.debris());
        assert_eq!(store.blobs(), blobs);
        store.fsck(&[]).assert_clean();
        // Mounts made in this namespace die with it; none may be left meanwhile either.
        let mounts = std::fs::read_to_string("/proc/thread-self/mountinfo").unwrap();
        assert!(!mounts.contains(b.to_str().unwrap()), "{mounts}");
    });
}

#[test]
fn a_save_killed_half_way_leaves_no_partial_archive() {
    let f = Fixture::new();
    let store = f.store();
    let zeros = vec![0u8; 16 << 20];
    let img = OciImage::new(&["/bin/sh"])
        .layer(layer_tar(&[file_bytes("zeros", &zeros)]), Compression::Gzip);
    let name = "localhost/save/killed:1";
    store.ok(&["pull", "-q", &f.layout("z", name, &img)]);
    let out = f.path("out");
    std::fs::create_dir(&out).unwrap();
    let tarball = out.join("img.tar");
    let mut child = store
        .cmd(&["save", "-o", tarball.to_str().unwrap(), name])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Killed while the archive is open in its directory, unfinished.
    integration::signal_when(&mut child, nix::sys::signal::Signal::SIGKILL, || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|rd| {
                rd.flatten()
                    .any(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.starts_with(&out)))
            })
            .unwrap_or(false)
    });
    child.wait().unwrap();
    let left: Vec<_> = std::fs::read_dir(&out).unwrap().flatten().collect();
    assert!(left.is_empty(), "the killed save left {left:?}");
    store.ok(&["save", "-o", tarball.to_str().unwrap(), name]);
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1);
    assert!(store.debris().is_empty(), "{:?}", store.debris());
}

#[test]
fn bundle_rm_of_an_unpack_killed_while_it_pulled_clears_its_temp_blobs_from_the_store() {
    let f = Fixture::new();
    let reg = TestRegistry::plain();
    let layout = Layout::create(&f.path("layout"));
    let data = noise(4 << 20, 5);
    layout.tagged_image(
        "slow",
        Flavor::Oci,
        &[LayerSpec::files(Comp::None, &[("data", &data)])],
        "slow",
    );
    reg.push(&layout.dir, "slow", "killed/unpack", "slow");
    let proxy = FaultProxy::start(&reg.addr, Fault::Slow(256 * 1024));
    let store = f.store();
    let b = f.path("b");
    let name = format!("{}/killed/unpack:slow", proxy.addr);
    let mut child = store
        .cmd(&["--plain-http", "unpack", "-q", &name, b.to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed with the bundle claimed and the layer half downloaded into a temp blob.
    integration::signal_when(&mut child, nix::sys::signal::Signal::SIGKILL, || {
        b.join(".imgtool-unpacking").exists() && !store.debris().is_empty()
    });
    child.wait().unwrap();
    store.ok(&["bundle", "rm", b.to_str().unwrap()]);
    assert!(!b.exists());
    assert!(store.debris().is_empty(), "{:?}", store.debris());
    store.fsck(&[]).assert_clean();
}
