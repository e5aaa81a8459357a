//! `imgtool unpack` / `imgtool bundle` against the real kernel, Debian's umoci and runc.
//!
//! Fidelity: imgtool's rootfs is compared with `umoci unpack` of the same OCI layout (paths,
//! types, modes, owners, link counts, link targets, device numbers, xattrs, content hashes).
//! Hostile layers: each escape attempt must fail with an error naming layer and entry, leave no
//! bundle behind, and leave the canary directory beside the bundle untouched.
//! Needs (root): umoci, runc, busybox-static.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use integration::unpack::*;
use integration::{imgtool_bin, make_busybox_rootfs, run, stderr, stdout, unique_id};

struct Fixture {
    tmp: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::Builder::new()
            .prefix("unpack-test")
            .tempdir()
            .unwrap();
        Fixture { tmp }
    }
    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }
    fn store(&self) -> PathBuf {
        self.path("store")
    }
    fn imgtool(&self, args: &[&str]) -> Output {
        run(Command::new(imgtool_bin())
            .arg("--store")
            .arg(self.store())
            .args(args))
    }
    /// `imgtool unpack`, asserting success.
    fn unpack(&self, image: &str, bundle: &Path, extra: &[&str]) {
        let mut args = vec!["unpack", image, bundle.to_str().unwrap()];
        args.extend_from_slice(extra);
        let o = self.imgtool(&args);
        assert!(
            o.status.success(),
            "imgtool {args:?} failed: {}",
            stderr(&o)
        );
    }
    /// Write `img` as an OCI layout and return its `oci:DIR:TAG` source.
    fn layout(&self, name: &str, img: &OciImage) -> String {
        let d = self.path(name);
        img.write(&d, "t");
        format!("oci:{}:t", d.display())
    }
    fn umoci_unpack(&self, layout: &str, bundle: &Path) {
        let o = run(Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{layout}:t"))
            .arg(bundle));
        assert!(o.status.success(), "umoci unpack failed: {}", stderr(&o));
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Overlay bundles a failing test left mounted must not keep the temp dir busy.
        if let Ok(m) = std::fs::read_to_string("/proc/self/mountinfo") {
            let base = self.tmp.path().to_string_lossy().into_owned();
            for l in m.lines() {
                if let Some(mp) = l.split(' ').nth(4) {
                    if mp.starts_with(&base) {
                        let _ = nix::mount::umount2(mp, nix::mount::MntFlags::MNT_DETACH);
                    }
                }
            }
        }
    }
}

fn assert_same_tree(ours: &Path, theirs: &Path) {
    assert_same_trees(snapshot_tree(ours), snapshot_tree(theirs));
}

fn assert_same_trees(a: BTreeMap<String, Node>, b: BTreeMap<String, Node>) {
    let d = diff_trees(&a, &b);
    assert!(d.is_empty(), "{} differences:\n{}", d.len(), d.join("\n"));
    assert!(a.len() > 3, "suspiciously small tree: {a:?}");
}

/// Exactly one `imgtool: ...` error line (the import's progress lines may precede it).
fn assert_one_line_error(err: &str) {
    let errors: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("imgtool: ") && !l.starts_with("imgtool: warning"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line expected: {err}");
    assert_eq!(
        err.trim_end().lines().last(),
        Some(errors[0]),
        "the error comes last: {err}"
    );
}

fn busybox_layer() -> Vec<u8> {
    let t = tempfile::tempdir().unwrap();
    make_busybox_rootfs(t.path());
    tar_of_dir(t.path())
}

/// Three layers exercising everything a layer can hold, and every kind of whiteout.
fn rich_layers() -> Vec<Vec<u8>> {
    let l1 = layer_tar(&[
        dir("etc"),
        file(
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        ),
        file("etc/group", "root:x:0:\napp:x:1000:\nwheel:x:10:app\n"),
        file("etc/old-file", "old"),
        dir("usr"),
        dir("usr/bin"),
        dir("usr/lib"),
        symlink("usr/lib64", "lib"),
        symlink("bin", "/usr/bin"),
        file("usr/bin/tool", "#!/bin/sh\necho tool\n").mode(0o755),
        hardlink("usr/bin/tool-link", "usr/bin/tool"),
        file("usr/bin/su", "setuid").mode(0o4755),
        file("usr/bin/ping", "caps")
            .mode(0o755)
            .xattr("security.capability", &file_cap(13)),
        dir("var"),
        dir("var/shared").mode(0o2775).owner(0, 50),
        dir("tmp").mode(0o1777),
        dir("data"),
        file("data/x", "with xattr").xattr("user.comment", b"hello"),
        dir("home"),
        dir("home/app").mode(0o700).owner(1000, 1000),
        file("home/app/.profile", "export A=1\n")
            .owner(1000, 1000)
            .mode(0o600),
        dir("run"),
        fifo("run/fifo").mode(0o620),
        dir("dev"),
        chardev("dev/null2", 1, 3),
        blockdev("dev/loopx", 7, 0),
        dir("opq"),
        file("opq/old", "lower"),
        dir("opq/sub"),
        file("opq/sub/deep", "lower"),
        dir("gone"),
        file("gone/a", "1"),
        file("replace-me", "file first"),
        dir("dir-to-file"),
        file("dir-to-file/child", "1"),
        file("sym-to-file", "x"),
    ]);
    let l2 = layer_tar(&[
        whiteout("", "gone"),
        whiteout("etc", "old-file"),
        dir("opq"),
        opaque("opq"),
        file("opq/new", "upper"),
        dir("replace-me"),
        file("replace-me/child", "now a dir"),
        file("dir-to-file", "now a file"),
        file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nsvc:x:77:77::/:/bin/false\n"),
        file("usr/bin/tool", "#!/bin/sh\necho tool v2\n").mode(0o700),
        file("usr/lib/libz.so", "lib"),
        file("l2-only", "temporary"),
        // A whiteout hides lower layers only (OCI layer spec), never its own layer's entries.
        file("l2-self", "kept"),
        whiteout("", "l2-self"),
        dir("data").xattr("user.dirattr", b"d"),
    ]);
    let l3 = layer_tar(&[
        whiteout("", "l2-only"),
        file("usr/lib64/through-symlink", "via lib64 -> lib"),
        symlink("sym-to-file", "etc/passwd"),
        hardlink("usr/bin/su-link", "usr/bin/su"),
        file("new/deep/implicit", "parents not listed"),
    ]);
    vec![l1, l2, l3]
}

fn rich_image(c: Compression) -> OciImage {
    let mut img = OciImage::new(&["/bin/sh"]);
    for l in rich_layers() {
        img = img.layer(l, c);
    }
    img
}

#[test]
fn busybox_rootfs_matches_umoci() {
    let f = Fixture::new();
    let img = OciImage::new(&["/bin/sh"]).layer(busybox_layer(), Compression::Gzip);
    let src = f.layout("bb", &img);
    let o = f.imgtool(&["unpack", "-q", &src, f.path("ours").to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o), "", "-q: no progress output");
    f.umoci_unpack(&f.path("bb").to_string_lossy(), &f.path("theirs"));
    assert_same_tree(&f.path("ours/rootfs"), &f.path("theirs/rootfs"));
}

/// A real Debian tree, built offline: this host's /etc, /usr/sbin, zoneinfo, perl-base, dpkg
/// alternatives and setuid binaries, tarred by GNU tar with xattrs, then a layer deleting some.
#[test]
fn debian_system_tree_matches_umoci() {
    let f = Fixture::new();
    let mut tar = Command::new("tar");
    tar.args([
        "--xattrs",
        "--xattrs-include=*",
        "--numeric-owner",
        "-cf",
        "-",
        "-C",
        "/",
    ]);
    tar.args([
        "etc",
        "usr/sbin",
        "usr/share/zoneinfo",
        "usr/lib/x86_64-linux-gnu/perl-base",
        "var/lib/dpkg/alternatives",
    ]);
    for b in [
        "usr/bin/gpasswd",
        "usr/bin/newgrp",
        "usr/bin/passwd",
        "usr/bin/su",
        "usr/bin/mount",
    ] {
        if Path::new("/").join(b).exists() {
            tar.arg(b);
        }
    }
    let o = run(&mut tar);
    // Exit status 1 is GNU tar's "a file changed as we read it" (the host is live); the archive
    // is still whole, and both unpackers read the same bytes.
    assert!(
        matches!(o.status.code(), Some(0) | Some(1)),
        "tar: {}",
        stderr(&o)
    );
    assert!(o.stdout.len() > 10 << 20, "a real tree is expected");
    let deletions = || {
        layer_tar(&[
            whiteout("etc", "passwd"),
            whiteout("usr", "sbin"),
            opaque("usr/share/zoneinfo/Europe"),
            file("usr/share/zoneinfo/Europe/Only", "tz"),
        ])
    };
    // Ours reads a zstd top layer; umoci (no zstd) the gzip twin of the same image.
    let ours = OciImage::new(&["/bin/sh"])
        .layer(o.stdout.clone(), Compression::Gzip)
        .layer(deletions(), Compression::Zstd);
    let twin = OciImage::new(&["/bin/sh"])
        .layer(o.stdout, Compression::Gzip)
        .layer(deletions(), Compression::Gzip);
    let src = f.layout("debian", &ours);
    f.unpack(&src, &f.path("ours"), &[]);
    f.layout("debian-gz", &twin);
    f.umoci_unpack(&f.path("debian-gz").to_string_lossy(), &f.path("theirs"));
    assert_same_tree(&f.path("ours/rootfs"), &f.path("theirs/rootfs"));
    let t = snapshot_tree(&f.path("ours/rootfs"));
    assert!(!t.contains_key("etc/passwd") && !t.contains_key("usr/sbin"));
    assert!(t.contains_key("etc/group"));
    let europe: Vec<_> = t
        .keys()
        .filter(|k| k.starts_with("usr/share/zoneinfo/Europe/"))
        .collect();
    assert_eq!(
        europe,
        ["usr/share/zoneinfo/Europe/Only"],
        "opaque dir keeps only the upper entry"
    );
    if Path::new("/usr/bin/passwd").exists() {
        assert_eq!(t["usr/bin/passwd"].mode & 0o4000, 0o4000, "setuid kept");
    }
}

#[test]
fn multilayer_whiteouts_links_devices_xattrs_match_umoci() {
    let f = Fixture::new();
    let src = f.layout("rich", &rich_image(Compression::Gzip));
    f.unpack(&src, &f.path("ours"), &[]);
    f.umoci_unpack(&f.path("rich").to_string_lossy(), &f.path("theirs"));
    assert_same_tree(&f.path("ours/rootfs"), &f.path("theirs/rootfs"));
    // Spot checks of what the comparison covers, so a tool bug shared by both still shows.
    let t = snapshot_tree(&f.path("ours/rootfs"));
    assert!(
        !t.contains_key("gone") && !t.contains_key("etc/old-file") && !t.contains_key("l2-only")
    );
    assert!(!t.contains_key("opq/old") && !t.contains_key("opq/sub") && t.contains_key("opq/new"));
    assert_eq!(t["usr/bin/su"].mode, 0o4755);
    assert_eq!(t["usr/bin/su"].nlink, 2);
    assert!(t.contains_key("l2-self"));
    assert_eq!(
        t["usr/bin/ping"].xattrs["security.capability"],
        file_cap(13)
    );
    assert_eq!(t["data/x"].xattrs["user.comment"], b"hello");
    assert_eq!(t["run/fifo"].kind, 'p');
    assert_eq!(t["dev/null2"].rdev, Some(libc::makedev(1, 3)));
    assert_eq!(t["home/app"].uid, 1000);
    assert_eq!(t["replace-me"].kind, 'd');
    assert_eq!(t["dir-to-file"].kind, 'f');
    assert_eq!(t["usr/lib/through-symlink"].kind, 'f');
}

#[test]
fn zstd_and_plain_tar_layers_give_the_same_tree_as_umoci_of_gzip() {
    // umoci 0.4.7 cannot read zstd: its gzip twin is the reference.
    let f = Fixture::new();
    f.layout("gz", &rich_image(Compression::Gzip));
    f.umoci_unpack(&f.path("gz").to_string_lossy(), &f.path("theirs"));
    for (name, c) in [("zst", Compression::Zstd), ("tar", Compression::None)] {
        let src = f.layout(name, &rich_image(c));
        let b = f.path(&format!("ours-{name}"));
        f.unpack(&src, &b, &[]);
        assert_same_tree(&b.join("rootfs"), &f.path("theirs/rootfs"));
    }
}

#[test]
fn overlay_snapshot_shows_the_same_tree_and_bundle_rm_cleans_up() {
    let f = Fixture::new();
    let src = f.layout("rich", &rich_image(Compression::Gzip));
    f.umoci_unpack(&f.path("rich").to_string_lossy(), &f.path("theirs"));
    let b1 = f.path("ov1");
    f.unpack(&src, &b1, &["--snapshot", "overlay"]);
    // Link counts are the one thing overlayfs shows differently: a lower-layer hardlink pair
    // keeps nlink 2 even after an upper layer replaced one of the names.
    let no_nlink = |mut t: BTreeMap<String, Node>| {
        t.values_mut().for_each(|n| n.nlink = 0);
        t
    };
    assert_same_trees(
        no_nlink(snapshot_tree(&b1.join("rootfs"))),
        no_nlink(snapshot_tree(&f.path("theirs/rootfs"))),
    );
    // A second bundle reuses the cached layers; both are live at once.
    let b2 = f.path("ov2");
    f.unpack(&src, &b2, &["--snapshot", "overlay"]);
    std::fs::write(b2.join("rootfs/written"), vec![7u8; 10_000]).unwrap();
    assert!(
        !b1.join("rootfs/written").exists(),
        "bundles share an upper dir"
    );
    let info = f.imgtool(&["bundle", "info", b2.to_str().unwrap()]);
    assert!(info.status.success(), "{}", stderr(&info));
    let v: serde_json::Value = serde_json::from_str(&stdout(&info)).unwrap();
    let (rw, total) = (
        v["SizeRw"].as_u64().unwrap(),
        v["SizeRootFs"].as_u64().unwrap(),
    );
    assert!((10_000..20_000).contains(&rw), "SizeRw {rw}");
    assert!(
        total > rw + 100,
        "SizeRootFs {total} should include the layers"
    );
    let layers_dir = f.store().join("snapshots/layers");
    let cached: Vec<_> = std::fs::read_dir(&layers_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(cached.len(), 3, "one cache dir per layer: {cached:?}");
    for c in &cached {
        assert_eq!(
            std::fs::read_dir(c.join("refs")).unwrap().count(),
            2,
            "two bundles hold {c:?}"
        );
    }
    for b in [&b1, &b2] {
        let o = f.imgtool(&["bundle", "rm", b.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(!b.exists());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(f.tmp.path().to_str().unwrap()),
        "a bundle is still mounted"
    );
    for c in &cached {
        assert_eq!(std::fs::read_dir(c.join("refs")).unwrap().count(), 0);
        assert!(
            std::fs::read_dir(c.join("fs")).unwrap().count() > 0,
            "the layer cache survives bundle rm"
        );
    }
}

#[test]
fn rmi_cannot_pull_layers_from_under_a_live_overlay_bundle() {
    let f = Fixture::new();
    let src = f.layout("rich", &rich_image(Compression::Gzip));
    let b = f.path("ov");
    f.unpack(&src, &b, &["--snapshot", "overlay"]);
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("imgtool-bundle.json")).unwrap()).unwrap();
    let id = rec["imageId"].as_str().unwrap().to_string();
    let o = f.imgtool(&["rmi", "-f", &id]);
    assert!(o.status.success(), "rmi: {}", stderr(&o));
    // The image is gone from the store, the bundle still sees its whole tree.
    let o = f.imgtool(&["images"]);
    assert!(
        !stdout(&o).contains(&id["sha256:".len()..][..12]),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        std::fs::read_to_string(b.join("rootfs/opq/new")).unwrap(),
        "upper"
    );
    let o = f.imgtool(&["bundle", "prune"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("removed 0 "),
        "live layers pruned: {}",
        stdout(&o)
    );
    assert_eq!(
        std::fs::read_to_string(b.join("rootfs/usr/bin/su")).unwrap(),
        "setuid"
    );
    let o = f.imgtool(&["bundle", "rm", b.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = f.imgtool(&["bundle", "prune"]);
    assert!(stdout(&o).contains("removed 3 "), "{}", stdout(&o));
    let left = std::fs::read_dir(f.store().join("snapshots/layers"))
        .unwrap()
        .count();
    assert_eq!(left, 0);
}

fn runc_run(bundle: &Path, root: &Path) -> Output {
    let id = unique_id("imgtool-unpack");
    let o = run(Command::new("runc")
        .arg("--root")
        .arg(root)
        .args(["run", "-b"])
        .arg(bundle)
        .arg(&id)
        .stdin(std::process::Stdio::null()));
    let _ = run(Command::new("runc")
        .arg("--root")
        .arg(root)
        .args(["delete", "-f", &id]));
    o
}

/// An image whose process reports who and where it is.
fn identity_image() -> OciImage {
    let l2 = layer_tar(&[
        file(
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        ),
        file("etc/group", "root:x:0:\napp:x:1000:\nwheel:x:10:app\n"),
        dir("home"),
        dir("home/app").owner(1000, 1000),
    ]);
    OciImage::new(&[
        "sh",
        "-c",
        "echo uid=$(id -u) gid=$(id -g) groups=$(id -G) cwd=$(pwd) home=$HOME greeting=$GREETING",
    ])
    .layer(busybox_layer(), Compression::Gzip)
    .layer(l2, Compression::Gzip)
    .set("User", serde_json::json!("app"))
    .set("WorkingDir", serde_json::json!("/home/app/work"))
    .set(
        "Env",
        serde_json::json!(["PATH=/bin:/usr/bin", "GREETING=hello"]),
    )
}

#[test]
fn generated_config_runs_under_runc_as_the_image_user() {
    let f = Fixture::new();
    let src = f.layout("id", &identity_image());
    let b = f.path("bundle");
    f.unpack(&src, &b, &[]);
    let o = runc_run(&b, &f.path("runc"));
    assert!(o.status.success(), "runc run failed: {}", stderr(&o));
    assert_eq!(
        stdout(&o).trim(),
        "uid=1000 gid=1000 groups=1000 10 cwd=/home/app/work home=/home/app greeting=hello"
    );
    // And with the overrides of the command line.
    let b2 = f.path("bundle2");
    f.unpack(
        &src,
        &b2,
        &[
            "--env",
            "GREETING=bye",
            "--args",
            r#"["sh","-c","echo $GREETING $(hostname)"]"#,
            "--hostname",
            "box",
        ],
    );
    let o = runc_run(&b2, &f.path("runc"));
    assert!(o.status.success(), "runc run failed: {}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "bye box");
}

#[test]
fn generated_config_runs_under_gruntime_as_the_image_user() {
    let f = Fixture::new();
    let src = f.layout("id", &identity_image());
    // A copy bundle and an overlay bundle of the same image.
    for (name, mode) in [
        ("bundle", &[][..]),
        ("overlay", &["--snapshot", "overlay"][..]),
    ] {
        let b = f.path(name);
        f.unpack(&src, &b, mode);
        let root = f.path("gruntime-root");
        let id = unique_id("imgtool-unpack-gr");
        let o = run(Command::new(integration::gruntime_bin())
            .arg("--root")
            .arg(&root)
            .args(["run", "-b"])
            .arg(&b)
            .arg(&id)
            .stdin(std::process::Stdio::null()));
        let _ = run(Command::new(integration::gruntime_bin())
            .arg("--root")
            .arg(&root)
            .args(["delete", "--force", &id]));
        assert!(
            o.status.success(),
            "{name}: gruntime run failed: {}",
            stderr(&o)
        );
        assert_eq!(
            stdout(&o).trim(),
            "uid=1000 gid=1000 groups=1000 10 cwd=/home/app/work home=/home/app greeting=hello",
            "{name}"
        );
        let o = f.imgtool(&["bundle", "rm", b.to_str().unwrap()]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
    }
}

#[test]
fn generated_config_follows_the_image_config() {
    let f = Fixture::new();
    let img = identity_image()
        .set("Entrypoint", serde_json::json!(["/bin/echo"]))
        .set("Cmd", serde_json::json!(["a", "b"]))
        .set("Volumes", serde_json::json!({"/data": {}}))
        .set("ExposedPorts", serde_json::json!({"8080/tcp": {}}))
        .set("StopSignal", serde_json::json!("SIGINT"))
        .set("Labels", serde_json::json!({"com.example.l": "v"}))
        .set("User", serde_json::json!("app:wheel"));
    let src = f.layout("cfg", &img);
    let b = f.path("b");
    f.unpack(
        &src,
        &b,
        &[
            "--terminal",
            "--mount",
            "type=bind,source=/etc,destination=/host-etc,ro",
        ],
    );
    let c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        c["process"]["args"],
        serde_json::json!(["/bin/echo", "a", "b"])
    );
    assert_eq!(c["process"]["user"]["uid"], 1000);
    assert_eq!(c["process"]["user"]["gid"], 10);
    assert_eq!(c["process"]["terminal"], true);
    assert!(c["process"]["env"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("TERM=xterm")));
    assert_eq!(c["root"]["path"], "rootfs");
    let ann = &c["annotations"];
    assert_eq!(ann["org.opencontainers.image.exposedPorts"], "8080/tcp");
    assert_eq!(ann["org.opencontainers.image.stopSignal"], "SIGINT");
    assert_eq!(ann["org.opencontainers.image.os"], "linux");
    assert_eq!(ann["com.example.l"], "v");
    let mounts = c["mounts"].as_array().unwrap();
    let data = mounts
        .iter()
        .find(|m| m["destination"] == "/data")
        .expect("volume mount");
    assert_eq!(data["type"], "tmpfs");
    let he = mounts
        .iter()
        .find(|m| m["destination"] == "/host-etc")
        .expect("--mount");
    assert_eq!(he["options"], serde_json::json!(["ro", "rbind"]));
    let ns: Vec<&str> = c["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    for want in ["pid", "network", "ipc", "uts", "mount"] {
        assert!(ns.contains(&want), "{want} namespace missing: {ns:?}");
    }
    assert!(c["linux"]["maskedPaths"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("/proc/kcore")));
    // --args replaces Cmd but keeps the Entrypoint; --entrypoint drops Cmd.
    let b2 = f.path("b2");
    f.unpack(&src, &b2, &["--args", "z"]);
    let c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b2.join("config.json")).unwrap()).unwrap();
    assert_eq!(c["process"]["args"], serde_json::json!(["/bin/echo", "z"]));
    let b3 = f.path("b3");
    f.unpack(&src, &b3, &["--entrypoint", "/bin/true"]);
    let c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b3.join("config.json")).unwrap()).unwrap();
    assert_eq!(c["process"]["args"], serde_json::json!(["/bin/true"]));
}

/// Unpack a hostile image: it must fail naming the layer and entry, leave no bundle, and leave
/// the canary beside the bundle exactly as it was.
fn assert_refused(layers: impl Fn(&Path) -> Vec<Vec<u8>>, want_in_error: &[&str]) {
    for mode in [&[][..], &["--snapshot", "overlay"][..]] {
        let f = Fixture::new();
        let canary = f.path("canary");
        std::fs::create_dir(&canary).unwrap();
        std::fs::write(canary.join("keep"), "untouched").unwrap();
        let mut img = OciImage::new(&["/bin/sh"]);
        for l in layers(&canary) {
            img = img.layer(l, Compression::Gzip);
        }
        let src = f.layout("evil", &img);
        let bundle = f.path("bundle");
        let mut args = vec!["unpack", &src, bundle.to_str().unwrap()];
        args.extend_from_slice(mode);
        let o = f.imgtool(&args);
        let err = stderr(&o);
        assert!(
            !o.status.success(),
            "{mode:?}: hostile image was unpacked: {err}"
        );
        for w in want_in_error {
            assert!(
                err.contains(w),
                "{mode:?}: error should mention {w:?}: {err}"
            );
        }
        assert_one_line_error(&err);
        assert!(!bundle.exists(), "{mode:?}: partial bundle left behind");
        let names: Vec<_> = std::fs::read_dir(&canary)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["keep"], "{mode:?}: canary dir changed");
        assert_eq!(
            std::fs::read_to_string(canary.join("keep")).unwrap(),
            "untouched"
        );
        // Nothing new beside the bundle either (the canary is at bundle/../canary).
        let mut top: Vec<_> = std::fs::read_dir(f.tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        top.sort();
        assert_eq!(top, ["canary", "evil", "store"], "{mode:?}");
        // Overlay mode: no half-extracted layer is left in the cache either.
        if let Ok(rd) = std::fs::read_dir(f.store().join("snapshots/layers")) {
            let left: Vec<_> = rd.map(|e| e.unwrap().file_name()).collect();
            assert!(
                left.iter()
                    .all(|n| !n.to_string_lossy().starts_with(".tmp")),
                "{left:?}"
            );
        }
    }
}

#[test]
fn hostile_dotdot_path_is_refused() {
    assert_refused(
        |_| vec![layer_tar(&[dir("etc"), file("../../canary/pwned", "x")])],
        &["layer 1", "\"../../canary/pwned\"", ".."],
    );
}

#[test]
fn hostile_absolute_path_is_refused() {
    assert_refused(
        |canary| {
            vec![layer_tar(&[file(
                &format!("{}/pwned", canary.display()),
                "x",
            )])]
        },
        &["layer 1", "absolute path"],
    );
}

#[test]
fn hostile_write_through_symlink_in_same_layer_is_refused() {
    assert_refused(
        |_| {
            vec![layer_tar(&[
                symlink("evil", "../../canary"),
                file("evil/pwned", "x"),
            ])]
        },
        &["layer 1", "\"evil/pwned\"", "symlink"],
    );
}

#[test]
fn hostile_write_through_symlink_from_earlier_layer_is_refused() {
    assert_refused(
        |_| {
            vec![
                layer_tar(&[dir("etc"), symlink("etc/evil", "../../../canary")]),
                layer_tar(&[file("etc/evil/pwned", "x")]),
            ]
        },
        &["layer 2", "\"etc/evil/pwned\"", "symlink"],
    );
}

#[test]
fn hostile_write_through_absolute_symlink_is_refused() {
    assert_refused(
        |canary| {
            vec![
                layer_tar(&[symlink("evil", canary.to_str().unwrap())]),
                layer_tar(&[file("evil/pwned", "x")]),
            ]
        },
        &["layer 2", "\"evil/pwned\"", "symlink"],
    );
}

#[test]
fn hostile_hardlink_outside_is_refused() {
    assert_refused(
        |_| vec![layer_tar(&[hardlink("h", "../../canary/keep")])],
        &["layer 1", "\"h\"", "hardlink target"],
    );
}

#[test]
fn hostile_hardlink_through_symlink_is_refused() {
    assert_refused(
        |_| {
            vec![layer_tar(&[
                symlink("up", "../.."),
                hardlink("h", "up/canary/keep"),
            ])]
        },
        &["layer 1", "\"h\"", "hardlink target"],
    );
}

#[test]
fn hostile_whiteout_outside_is_refused() {
    assert_refused(
        |_| {
            vec![
                layer_tar(&[dir("a")]),
                layer_tar(&[file("../../.wh.canary", "")]),
            ]
        },
        &["layer 2", ".."],
    );
}

#[test]
fn hostile_whiteout_through_symlink_is_refused() {
    assert_refused(
        |_| {
            vec![
                layer_tar(&[symlink("up", "../..")]),
                layer_tar(&[whiteout("up", "canary")]),
            ]
        },
        &["layer 2", "\"up/.wh.canary\"", "symlink"],
    );
}

#[test]
fn lying_diff_id_is_refused_and_leaves_nothing() {
    let f = Fixture::new();
    let mut img =
        OciImage::new(&["/bin/sh"]).layer(layer_tar(&[file("a", "1")]), Compression::Gzip);
    img.diff_ids_override = Some(vec![format!("sha256:{}", "0".repeat(64))]);
    let src = f.layout("lie", &img);
    let b = f.path("b");
    let o = f.imgtool(&["unpack", &src, b.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("diff_id"), "{}", stderr(&o));
    assert!(!b.exists());
}

#[test]
fn bad_input_is_a_one_line_error_and_leaves_nothing() {
    let f = Fixture::new();
    let src = f.layout(
        "nocmd",
        &OciImage::new(&[]).layer(layer_tar(&[file("a", "1")]), Compression::Gzip),
    );
    let b = f.path("b");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["unpack", &src, b.to_str().unwrap()],
            "Entrypoint and Cmd are both empty",
        ),
        (
            vec![
                "unpack",
                &src,
                b.to_str().unwrap(),
                "--args",
                "x",
                "--env",
                "NOEQUALS",
            ],
            "--env \"NOEQUALS\"",
        ),
        (
            vec![
                "unpack",
                &src,
                b.to_str().unwrap(),
                "--args",
                "x",
                "--mount",
                "type=bind,source=/x",
            ],
            "destination",
        ),
        (
            vec!["unpack", &src, b.to_str().unwrap(), "--args", "[1,2]"],
            "--args",
        ),
    ];
    for (args, want) in cases {
        let o = f.imgtool(&args);
        let err = stderr(&o);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_one_line_error(&err);
        assert!(!b.exists(), "{args:?} left {}", b.display());
    }
    // An existing non-empty directory is never unpacked into.
    std::fs::create_dir(&b).unwrap();
    std::fs::write(b.join("mine"), "x").unwrap();
    let o = f.imgtool(&["unpack", &src, b.to_str().unwrap(), "--args", "x"]);
    assert!(stderr(&o).contains("not empty"), "{}", stderr(&o));
    assert_eq!(std::fs::read_dir(&b).unwrap().count(), 1);
    let o = f.imgtool(&["bundle", "rm", b.to_str().unwrap()]);
    assert!(
        !o.status.success() && stderr(&o).contains("not a bundle"),
        "{}",
        stderr(&o)
    );
    assert!(b.join("mine").exists());
}

#[test]
fn rootless_unpack_as_an_unprivileged_user() {
    let f = Fixture::new();
    let src = f.layout("rich", &rich_image(Compression::Gzip));
    // The unprivileged user needs to reach the layout and write its own store and bundle.
    let work = f.path("work");
    std::fs::create_dir(&work).unwrap();
    nix::unistd::chown(
        &work,
        Some(nix::unistd::Uid::from_raw(65534)),
        Some(nix::unistd::Gid::from_raw(65534)),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(f.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let b = work.join("bundle");
    let o = run(Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(imgtool_bin())
        .arg("--store")
        .arg(work.join("store"))
        .args(["unpack", "--rootless", &src])
        .arg(&b)
        .env("HOME", &work));
    assert!(o.status.success(), "rootless unpack failed: {}", stderr(&o));
    assert!(
        stderr(&o).contains("device node"),
        "devices are skipped with a warning: {}",
        stderr(&o)
    );
    // umoci's own rootless unpack of the same image, as the same user, is the reference, down to
    // the user.rootlesscontainers xattrs that record the image's owners.
    let theirs = work.join("umoci");
    let o = run(Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(["umoci", "unpack", "--rootless", "--image"])
        .arg(format!("{}:t", f.path("rich").display()))
        .arg(&theirs)
        .env("HOME", &work));
    assert!(o.status.success(), "umoci rootless unpack: {}", stderr(&o));
    let strip = |t: BTreeMap<String, Node>| t;
    // umoci leaves empty placeholder files for the device nodes it cannot create; imgtool skips
    // them (with the warning checked above), as the issue asks.
    let mut reference = strip(snapshot_tree(&theirs.join("rootfs")));
    for dev in ["dev/null2", "dev/loopx"] {
        assert_eq!(reference.remove(dev).map(|n| n.kind), Some('f'));
    }
    assert_same_trees(strip(snapshot_tree(&b.join("rootfs"))), reference);
    let t = snapshot_tree(&b.join("rootfs"));
    assert!(
        t.values().all(|n| n.uid == 65534),
        "everything is owned by the caller"
    );
    assert!(!t.contains_key("dev/null2") && !t.contains_key("gone") && t.contains_key("opq/new"));
    assert_eq!(
        t["home/app"].mode, 0o700,
        "final modes applied after writing"
    );
    assert_eq!(t["usr/bin/su"].mode, 0o4755);
    assert_eq!(t["run/fifo"].kind, 'p');
    let c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("config.json")).unwrap()).unwrap();
    assert_eq!(c["linux"]["uidMappings"][0]["hostID"], 65534);
    assert_eq!(c["linux"]["uidMappings"][0]["containerID"], 0);
    let ns: Vec<&str> = c["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert!(ns.contains(&"user") && !ns.contains(&"network"), "{ns:?}");
    // The unprivileged user can remove its bundle again, read-only dirs included.
    let o = run(Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(imgtool_bin())
        .arg("--store")
        .arg(work.join("store"))
        .args(["bundle", "rm"])
        .arg(&b)
        .env("HOME", &work));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!b.exists());
}

#[test]
fn rootless_bundle_runs_under_runc_as_an_unprivileged_user() {
    let f = Fixture::new();
    let img = OciImage::new(&[
        "sh",
        "-c",
        "echo uid=$(id -u) cwd=$(pwd) owner=$(stat -c %u /bin/busybox)",
    ])
    .layer(busybox_layer(), Compression::Gzip)
    .set("WorkingDir", serde_json::json!("/w"));
    let src = f.layout("bb", &img);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(f.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let work = f.path("work");
    std::fs::create_dir(&work).unwrap();
    let nobody = (
        nix::unistd::Uid::from_raw(65534),
        nix::unistd::Gid::from_raw(65534),
    );
    nix::unistd::chown(&work, Some(nobody.0), Some(nobody.1)).unwrap();
    let as_nobody = |prog: &Path| {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(prog)
            .env("HOME", &work)
            .env("XDG_RUNTIME_DIR", &work)
            .stdin(std::process::Stdio::null());
        c
    };
    let b = work.join("bundle");
    let o = run(as_nobody(&imgtool_bin())
        .arg("--store")
        .arg(work.join("store"))
        .args(["unpack", "--rootless", &src])
        .arg(&b));
    assert!(o.status.success(), "rootless unpack: {}", stderr(&o));
    let id = unique_id("imgtool-rootless");
    let o = run(as_nobody(Path::new("runc"))
        .arg("--root")
        .arg(work.join("runc"))
        .args(["run", "-b"])
        .arg(&b)
        .arg(&id));
    let _ = run(as_nobody(Path::new("runc"))
        .arg("--root")
        .arg(work.join("runc"))
        .args(["delete", "-f", &id]));
    assert!(o.status.success(), "rootless runc run: {}", stderr(&o));
    // Root inside is the unprivileged caller outside, and owns the files it unpacked.
    assert_eq!(stdout(&o).trim(), "uid=0 cwd=/w owner=0");
}

#[test]
fn interrupted_unpack_removes_its_partial_bundle() {
    let f = Fixture::new();
    // Many small files: long enough to interrupt half way.
    let mut entries = vec![];
    for d in 0..100 {
        entries.push(dir(&format!("d{d}")));
        for i in 0..300 {
            entries.push(file(&format!("d{d}/f{i}"), "x"));
        }
    }
    let img = OciImage::new(&["/bin/sh"]).layer(layer_tar(&entries), Compression::Gzip);
    let src = f.layout("many", &img);
    let b = f.path("b");
    let mut child = integration::sigint_as_from_a_shell(
        Command::new(imgtool_bin())
            .arg("--store")
            .arg(f.store())
            .args(["unpack", &src])
            .arg(&b)
            .stderr(std::process::Stdio::piped()),
    )
    .spawn()
    .unwrap();
    // Interrupt as Ctrl-C would once extraction is under way.
    integration::interrupt_when(&mut child, || b.join("rootfs/d1").exists());
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "interrupted unpack reported success");
    assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
    assert!(!b.exists(), "partial bundle left behind");
}

/// `imgtool unpack REF DIR` pulls first when the image is not in the store: from a real
/// docker-registry, as an OCI manifest and as a Docker schema 2 one (gzip layers either way).
#[test]
fn unpack_pulls_from_a_registry_first() {
    let f = Fixture::new();
    f.layout("rich", &rich_image(Compression::Gzip));
    f.umoci_unpack(&f.path("rich").to_string_lossy(), &f.path("theirs"));
    let reg = integration::registry::TestRegistry::plain();
    reg.push(&f.path("rich"), "t", "unpack/rich", "oci");
    reg.push_schema2(&f.path("rich"), "t", "unpack/rich", "v2s2");
    for tag in ["oci", "v2s2"] {
        let b = f.path(&format!("b-{tag}"));
        let reference = format!("{}/unpack/rich:{tag}", reg.addr);
        f.unpack(&reference, &b, &["--plain-http"]);
        assert_same_tree(&b.join("rootfs"), &f.path("theirs/rootfs"));
        let rec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(b.join("imgtool-bundle.json")).unwrap()).unwrap();
        assert_eq!(rec["image"], reference);
    }
}

/// docker-archive (uncompressed layers, Docker media types) and oci-archive sources, written by
/// skopeo from the same image, give the same tree as umoci.
#[test]
fn archive_sources_match_umoci() {
    let f = Fixture::new();
    f.layout("rich", &rich_image(Compression::Gzip));
    f.umoci_unpack(&f.path("rich").to_string_lossy(), &f.path("theirs"));
    let oci = format!("oci:{}:t", f.path("rich").display());
    for (kind, file) in [
        ("docker-archive", "rich-docker.tar"),
        ("oci-archive", "rich-oci.tar"),
    ] {
        let dest = format!("{kind}:{}", f.path(file).display());
        let dest = if kind == "docker-archive" {
            format!("{dest}:rich:t")
        } else {
            dest
        };
        let o = run(Command::new("skopeo").args(["copy", "-q", &oci, &dest]));
        assert!(o.status.success(), "skopeo copy to {kind}: {}", stderr(&o));
        let b = f.path(&format!("b-{kind}"));
        f.unpack(&format!("{kind}:{}", f.path(file).display()), &b, &[]);
        assert_same_tree(&b.join("rootfs"), &f.path("theirs/rootfs"));
    }
}

#[test]
fn a_closed_stdout_ends_a_command_quietly() {
    let f = Fixture::new();
    let src = f.layout("rich", &rich_image(Compression::Gzip));
    let o = f.imgtool(&["pull", "-q", &src]);
    assert!(o.status.success(), "{}", stderr(&o));
    let id = stdout(&o).trim().to_string();
    let b = f.path("b");
    f.unpack(&src, &b, &[]);
    let b = b.to_str().unwrap();
    for args in [
        &["images", "--format", "json"][..],
        &["images"],
        &["inspect", &id],
        &["inspect", "--format", "json", &id],
        &["bundle", "info", b],
    ] {
        // A reader that is gone before anything is written, as `| grep -q` is once it matched.
        let (read, write) = nix::unistd::pipe().unwrap();
        drop(read);
        let o = run(Command::new(imgtool_bin())
            .arg("--store")
            .arg(f.store())
            .args(args)
            .stdout(write));
        assert!(
            o.status.success() && stderr(&o).is_empty(),
            "imgtool {args:?} with stdout closed: {} {}",
            o.status,
            stderr(&o)
        );
    }
}

/// An image of many small files: long enough to kill or signal half way through.
fn many_files_image() -> OciImage {
    let mut entries = vec![];
    for d in 0..100 {
        entries.push(dir(&format!("d{d}")));
        for i in 0..300 {
            entries.push(file(&format!("d{d}/f{i}"), "x"));
        }
    }
    OciImage::new(&["/bin/sh"]).layer(layer_tar(&entries), Compression::Gzip)
}
#[test]
fn nohup_keeps_an_unpack_going_when_the_terminal_hangs_up() {
    let f = Fixture::new();
    let src = f.layout("many", &many_files_image());
    let b = f.path("b");
    let mut child = Command::new("nohup")
        .arg(imgtool_bin())
        .arg("--store")
        .arg(f.store())
        .args(["unpack", &src])
        .arg(&b)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // nohup execs imgtool: the hangup goes to imgtool itself, half way through the layer.
    integration::signal_when(&mut child, nix::sys::signal::Signal::SIGHUP, || {
        b.join("rootfs/d1").exists()
    });
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(b.join("config.json").is_file() && b.join("rootfs/d99/f299").is_file());
}

#[test]
fn two_unpacks_of_one_image_give_byte_identical_config_json() {
    let f = Fixture::new();
    let labels: serde_json::Map<String, serde_json::Value> = (0..16)
        .map(|i| (format!("label.{i}"), serde_json::json!(format!("v{i}"))))
        .collect();
    let img = rich_image(Compression::Gzip)
        .set("Labels", serde_json::Value::Object(labels))
        .set("StopSignal", serde_json::json!("SIGQUIT"))
        .set(
            "ExposedPorts",
            serde_json::json!({"80/tcp": {}, "443/tcp": {}}),
        );
    let src = f.layout("rich", &img);
    let configs: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            let b = f.path(&format!("b{i}"));
            f.unpack(&src, &b, &[]);
            std::fs::read(b.join("config.json")).unwrap()
        })
        .collect();
    assert!(
        configs.windows(2).all(|w| w[0] == w[1]),
        "config.json differs between unpacks"
    );
}

#[test]
fn bundle_rm_from_another_directory_releases_the_layers_of_a_relative_store() {
    let f = Fixture::new();
    let src = f.layout("rich", &rich_image(Compression::Gzip));
    let o = run(Command::new(imgtool_bin()).current_dir(f.tmp.path()).args([
        "--store",
        "store",
        "unpack",
        "--snapshot",
        "overlay",
        &src,
        "b",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let b = f.path("b");
    assert!(b.join("rootfs").is_dir());
    let o = run(Command::new(imgtool_bin())
        .current_dir("/")
        .arg("--store")
        .arg(f.store())
        .args(["bundle", "rm"])
        .arg(&b));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!b.exists());
    // Nothing pins the three layers any more.
    let o = f.imgtool(&["bundle", "prune"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("removed 3 unused cached layers"),
        "{}",
        stdout(&o)
    );
}

/// Wait (at most a minute) for `ready`, then SIGKILL `child` and reap it.
fn kill_when(child: &mut std::process::Child, ready: impl Fn() -> bool) {
    integration::signal_when(child, nix::sys::signal::Signal::SIGKILL, ready);
    child.wait().unwrap();
}
#[test]
fn the_next_command_clears_what_a_killed_overlay_unpack_left() {
    let f = Fixture::new();
    let src = f.layout("many", &many_files_image());
    let layers = f.store().join("snapshots/layers");
    let debris = || -> Vec<PathBuf> {
        std::fs::read_dir(&layers)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .unwrap()
                            .to_string_lossy()
                            .starts_with(".tmp-")
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let o = f.imgtool(&["pull", "-q", &src]);
    assert!(o.status.success(), "{}", stderr(&o));
    let id = stdout(&o).trim().to_string();
    // Any command that opens the store clears it, whatever it was asked to do.
    let small = f.layout(
        "small",
        &OciImage::new(&["/bin/sh"]).layer(layer_tar(&[file("f", "x")]), Compression::Gzip),
    );
    let other = f.path("other").to_string_lossy().into_owned();
    for next in [
        &["bundle", "prune"][..],
        &["unpack", &small, &other],
        &["rmi", &id],
    ] {
        let b = f.path("b");
        let mut child = Command::new(imgtool_bin())
            .arg("--store")
            .arg(f.store())
            .args(["unpack", "--snapshot", "overlay", &src])
            .arg(&b)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Killed while the layer is being extracted into its temporary cache dir.
        kill_when(&mut child, || {
            debris().iter().any(|d| d.join("fs/d1").exists())
        });
        assert!(!debris().is_empty());
        let o = f.imgtool(next);
        assert!(o.status.success(), "{next:?}: {}", stderr(&o));
        assert!(debris().is_empty(), "{next:?} left: {:?}", debris());
        // The unfinished bundle is ours: bundle rm removes it.
        let o = f.imgtool(&["bundle", "rm", b.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(!b.exists());
    }
}

#[test]
fn bundle_rm_removes_a_copy_bundle_whose_unpack_was_killed() {
    let f = Fixture::new();
    let src = f.layout("many", &many_files_image());
    let b = f.path("b");
    let mut child = Command::new(imgtool_bin())
        .arg("--store")
        .arg(f.store())
        .args(["unpack", &src])
        .arg(&b)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    kill_when(&mut child, || b.join("rootfs/d1").exists());
    assert!(b.join("rootfs").is_dir() && !b.join("config.json").exists());
    let o = f.imgtool(&["bundle", "info", b.to_str().unwrap()]);
    assert!(!o.status.success());
    assert_one_line_error(&stderr(&o));
    assert!(stderr(&o).contains("never finished"), "{}", stderr(&o));
    let o = f.imgtool(&["bundle", "rm", b.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!b.exists(), "the partial bundle is still there");
    // A directory that is not ours is still refused.
    std::fs::create_dir_all(f.path("other/rootfs")).unwrap();
    let o = f.imgtool(&["bundle", "rm", f.path("other").to_str().unwrap()]);
    assert!(!o.status.success());
    assert_one_line_error(&stderr(&o));
    assert!(f.path("other/rootfs").is_dir());
}

#[test]
fn bundle_prune_removes_an_unfinished_overlay_bundle_that_pins_layers() {
    let f = Fixture::new();
    let src = f.layout("rich", &rich_image(Compression::Gzip));
    let b = f.path("b");
    f.unpack(&src, &b, &["--snapshot", "overlay"]);
    // The state an unpack killed after taking its layer refs and mounting leaves (too short a
    // moment to hit with a real kill): refs, a mount, the marker naming a dead pid, no record.
    let mut dead = Command::new("true").spawn().unwrap();
    let pid = dead.id();
    dead.wait().unwrap();
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("imgtool-bundle.json")).unwrap()).unwrap();
    std::fs::remove_file(b.join("imgtool-bundle.json")).unwrap();
    std::fs::write(
        b.join(".imgtool-unpacking"),
        serde_json::json!({
            "pid": pid, "snapshot": "overlay", "store": f.store(),
            "chainIds": record["chainIds"],
        })
        .to_string(),
    )
    .unwrap();
    let o = f.imgtool(&["bundle", "prune"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("removed 1 unfinished bundles")
            && stdout(&o).contains("removed 3 unused cached layers"),
        "{}",
        stdout(&o)
    );
    assert!(!b.exists());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(f.tmp.path().to_str().unwrap()),
        "still mounted"
    );
}

#[test]
fn an_unpack_into_the_directory_a_killed_unpack_left_takes_it_over() {
    let f = Fixture::new();
    let src = f.layout("many", &many_files_image());
    for mode in ["copy", "overlay"] {
        let b = f.path(&format!("b-{mode}"));
        let mut child = Command::new(imgtool_bin())
            .arg("--store")
            .arg(f.store())
            .args(["unpack", "--snapshot", mode, &src])
            .arg(&b)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        kill_when(&mut child, || b.join(".imgtool-unpacking").exists());
        assert!(b.is_dir(), "{mode}: the killed unpack left no directory");
        f.unpack(&src, &b, &["--snapshot", mode]);
        assert!(b.join("rootfs/d99/f299").is_file(), "{mode}");
        let o = f.imgtool(&["bundle", "rm", b.to_str().unwrap()]);
        assert!(o.status.success(), "{mode}: {}", stderr(&o));
    }
    // The dead unpack's layer refs went with it: nothing pins the cached layer now.
    let o = f.imgtool(&["bundle", "prune"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("removed 1 unused cached layers"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn bundle_rm_finishes_a_removal_that_was_killed_half_way() {
    let f = Fixture::new();
    let src = f.layout("many", &many_files_image());
    let b = f.path("b");
    f.unpack(&src, &b, &[]);
    let rootfs = b.join("rootfs");
    let mut child = Command::new(imgtool_bin())
        .args(["bundle", "rm"])
        .arg(&b)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    kill_when(&mut child, || {
        std::fs::read_dir(&rootfs).is_ok_and(|rd| rd.count() < 90)
    });
    // What makes the bundle ours goes last, so it is still known as one.
    assert!(b.join("imgtool-bundle.json").is_file());
    let o = f.imgtool(&["bundle", "rm", b.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!b.exists());
    // A removal killed after the record went leaves an empty directory: removable too.
    std::fs::create_dir(&b).unwrap();
    let o = f.imgtool(&["bundle", "rm", b.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!b.exists());
}

#[test]
fn a_bundle_prune_killed_half_way_leaves_no_half_layer_for_the_next_unpack() {
    let f = Fixture::new();
    let src = f.layout("many", &many_files_image());
    let b = f.path("b");
    f.unpack(&src, &b, &["--snapshot", "overlay"]);
    let o = f.imgtool(&["bundle", "rm", b.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The cached layer's directories, wherever its removal has moved it.
    let layers = f.store().join("snapshots/layers");
    let dirs_left = || -> usize {
        std::fs::read_dir(&layers)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|l| std::fs::read_dir(l.path().join("fs")).ok())
                    .map(|fs| fs.count())
                    .sum()
            })
            .unwrap_or(0)
    };
    assert_eq!(dirs_left(), 100);
    let mut child = Command::new(imgtool_bin())
        .arg("--store")
        .arg(f.store())
        .args(["bundle", "prune"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    kill_when(&mut child, || (1..90).contains(&dirs_left()));
    // The next overlay unpack must not take what is left for the layer.
    f.unpack(&src, &b, &["--snapshot", "overlay"]);
    assert_eq!(std::fs::read_dir(b.join("rootfs")).unwrap().count(), 100);
    assert!(b.join("rootfs/d0/f0").is_file() && b.join("rootfs/d99/f299").is_file());
    let o = f.imgtool(&["bundle", "rm", b.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
}
