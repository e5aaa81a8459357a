//! Black-box tests of `imgtool copy`/`push`/`inspect docker://`/`list-tags`/`delete` and
//! registries.conf against a real `docker-registry` (plain HTTP, TLS with a test CA, basic and
//! token auth), with skopeo 1.9 on the other side of every interop check.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use integration::registry::{Auth, BuiltImage, Comp, Flavor, LayerSpec, Layout, TestRegistry};
use integration::{imgtool_bin, run, stderr, stdout};

/// A store and a scratch directory in one temp dir, and imgtool run on them with no stray
/// credentials or registries.conf from the machine.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::Builder::new()
                .prefix("imgtool-copy-")
                .tempdir()
                .unwrap(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(imgtool_bin());
        c.arg("--store").arg(self.path("store")).args(args);
        c.env_remove("IMGTOOL_STORE");
        c.env("HOME", self.path("home"));
        c.env("XDG_RUNTIME_DIR", self.path("run"));
        c.env("TMPDIR", self.path(""));
        for v in [
            "REGISTRY_AUTH_FILE",
            "DOCKER_CONFIG",
            "CONTAINERS_REGISTRIES_CONF",
        ] {
            c.env_remove(v);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        run(&mut self.cmd(args))
    }

    fn ok(&self, args: &[&str]) -> (String, String) {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "imgtool {args:?} failed ({}): {}{}",
            o.status,
            stdout(&o),
            stderr(&o)
        );
        (stdout(&o), stderr(&o))
    }

    /// Run and require exit 1 with a one-line `imgtool: ...` error; returns it.
    fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(
            o.status.code(),
            Some(1),
            "imgtool {args:?} should fail: {}{}",
            stdout(&o),
            stderr(&o)
        );
        let err = stderr(&o);
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| !l.starts_with("Copying ") && !l.starts_with("Writing "))
            .collect();
        assert_eq!(lines.len(), 1, "one error line: {err}");
        assert!(lines[0].starts_with("imgtool: "), "error line: {err}");
        lines[0].to_string()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.ok(args).0).unwrap()
    }

    /// Temp entries imgtool left in the scratch dir (TMPDIR) besides what tests made.
    fn leftovers(&self) -> Vec<String> {
        std::fs::read_dir(self.dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".imgtool") || n.starts_with(".tmp"))
            .collect()
    }
}

fn skopeo(args: &[&str]) -> Output {
    run(Command::new("skopeo").args(args))
}

fn skopeo_ok(args: &[&str]) -> String {
    let o = skopeo(args);
    assert!(
        o.status.success(),
        "skopeo {args:?} failed: {}{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

fn skopeo_json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&skopeo_ok(args)).unwrap()
}

/// An OCI layout with a two-layer busybox image tagged `tag`.
fn image(dir: &Path, tag: &str, comp: Comp) -> (Layout, BuiltImage) {
    let layout = Layout::create(dir);
    let img = layout.tagged_image(
        tag,
        Flavor::Oci,
        &[
            LayerSpec::busybox(comp),
            LayerSpec::files(comp, &[("etc/marker", tag.as_bytes())]),
        ],
        tag,
    );
    (layout, img)
}

fn oci(dir: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", dir.display())
}

/// Lines of imgtool's plain progress saying how each blob went.
fn blob_lines(err: &str) -> Vec<&str> {
    err.lines()
        .filter(|l| l.starts_with("Copying blob"))
        .collect()
}

#[test]
fn a_push_keeps_every_digest_and_skopeo_reads_the_image_back() {
    let env = Env::new();
    let reg = TestRegistry::plain();
    let (layout, img) = image(&env.path("layout"), "v1", Comp::Gzip);
    let dest = format!("docker://{}/team/app:v1", reg.addr);
    let digestfile = env.path("digest");
    let (_, err) = env.ok(&[
        "copy",
        "--dest-tls-verify=false",
        "--digestfile",
        digestfile.to_str().unwrap(),
        &oci(&layout.dir, "v1"),
        &dest,
    ]);
    assert_eq!(blob_lines(&err).len(), 3, "{err}");
    assert_eq!(
        std::fs::read_to_string(&digestfile).unwrap(),
        img.manifest_digest
    );
    let seen = skopeo_json(&["inspect", "--tls-verify=false", &dest]);
    assert_eq!(seen["Digest"], img.manifest_digest.as_str());
    assert_eq!(seen["Layers"], serde_json::json!(img.layer_digests));
    let back = env.path("back");
    skopeo_ok(&[
        "copy",
        "-q",
        "--src-tls-verify=false",
        &dest,
        &oci(&back, "x"),
    ]);
    let idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(back.join("index.json")).unwrap()).unwrap();
    assert_eq!(idx["manifests"][0]["digest"], img.manifest_digest.as_str());
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

#[test]
fn a_repush_skips_every_blob_the_registry_already_has() {
    let env = Env::new();
    let reg = TestRegistry::plain();
    let (layout, _) = image(&env.path("layout"), "v1", Comp::Gzip);
    let src = oci(&layout.dir, "v1");
    let dest = format!("docker://{}/app:v1", reg.addr);
    env.ok(&["copy", "--dest-tls-verify=false", &src, &dest]);
    let (_, err) = env.ok(&["copy", "--dest-tls-verify=false", &src, &dest]);
    let lines = blob_lines(&err);
    assert_eq!(lines.len(), 3, "{err}");
    assert!(lines.iter().all(|l| l.ends_with("already exists")), "{err}");
}

#[test]
fn an_image_skopeo_pushed_is_inspected_and_copied_by_imgtool_as_skopeo_sees_it() {
    let env = Env::new();
    let reg = TestRegistry::plain();
    let (layout, img) = image(&env.path("layout"), "v1", Comp::Gzip);
    reg.push(&layout.dir, "v1", "skopeo/pushed", "1.0");
    let name = format!("docker://{}/skopeo/pushed:1.0", reg.addr);
    let ours = env.json(&["inspect", "--tls-verify=false", &name]);
    let theirs = skopeo_json(&["inspect", "--tls-verify=false", &name]);
    for key in [
        "Name",
        "Digest",
        "RepoTags",
        "Architecture",
        "Os",
        "Layers",
        "Env",
        "Labels",
    ] {
        assert_eq!(ours[key], theirs[key], "{key}");
    }
    let raw = env.ok(&["inspect", "--raw", "--tls-verify=false", &name]).0;
    assert_eq!(
        raw.trim_end(),
        skopeo_ok(&["inspect", "--raw", "--tls-verify=false", &name]).trim_end()
    );
    let config: serde_json::Value = serde_json::from_str(
        &env.ok(&["inspect", "--config", "--tls-verify=false", &name])
            .0,
    )
    .unwrap();
    assert_eq!(
        config["rootfs"]["diff_ids"],
        serde_json::json!(img.diff_ids)
    );
    // Into the store, then out to a layout skopeo reads: same manifest throughout.
    env.ok(&["copy", "--src-tls-verify=false", &name, "local/app:1"]);
    let out = env.path("out");
    env.ok(&["copy", "local/app:1", &oci(&out, "t")]);
    let seen = skopeo_json(&["inspect", &oci(&out, "t")]);
    assert_eq!(seen["Digest"], img.manifest_digest.as_str());
}

#[test]
fn an_image_goes_through_every_transport_and_comes_back_with_its_digest() {
    let env = Env::new();
    let reg = TestRegistry::plain();
    let (layout, img) = image(&env.path("layout"), "v1", Comp::Gzip);
    let oa = env.path("img.oci.tar");
    let da = env.path("img.docker.tar");
    let oa_ref = format!("oci-archive:{}:t", oa.display());
    let da_ref = format!("docker-archive:{}:example.com/round/trip:2", da.display());
    env.ok(&["copy", &oci(&layout.dir, "v1"), "store:round/trip:1"]);
    env.ok(&["copy", "round/trip:1", &oa_ref]);
    env.ok(&["copy", &oa_ref, &oci(&env.path("again"), "a")]);
    env.ok(&[
        "push",
        "--dest-tls-verify=false",
        "round/trip:1",
        &format!("{}/rt:1", reg.addr),
    ]);
    for name in [
        oa_ref.clone(),
        oci(&env.path("again"), "a"),
        format!("docker://{}/rt:1", reg.addr),
    ] {
        let seen = skopeo_json(&["inspect", "--tls-verify=false", &name]);
        assert_eq!(seen["Digest"], img.manifest_digest.as_str(), "{name}");
    }
    // A docker-archive holds uncompressed layers: new layer digests, the same diff_ids.
    env.ok(&["copy", "round/trip:1", &da_ref]);
    let seen = skopeo_json(&[
        "inspect",
        "--config",
        &format!("docker-archive:{}", da.display()),
    ]);
    assert_eq!(seen["rootfs"]["diff_ids"], serde_json::json!(img.diff_ids));
    let tags = skopeo_json(&["inspect", &format!("docker-archive:{}", da.display())]);
    assert!(
        tags["RepoTags"].to_string().contains("round/trip")
            || tags["RepoTags"] == serde_json::json!([])
    );
    env.ok(&[
        "copy",
        &format!("docker-archive:{}", da.display()),
        "from/archive:1",
    ]);
    let inspected: serde_json::Value =
        serde_json::from_str(&env.ok(&["inspect", "--format", "json", "from/archive:1"]).0)
            .unwrap();
    let ids: Vec<String> = inspected["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["DiffID"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, img.diff_ids);
    // And skopeo's own docker-archive is read too.
    let theirs = env.path("skopeo.docker.tar");
    skopeo_ok(&[
        "copy",
        "-q",
        &oci(&layout.dir, "v1"),
        &format!("docker-archive:{}:skopeo/made:1", theirs.display()),
    ]);
    env.ok(&[
        "copy",
        &format!("docker-archive:{}", theirs.display()),
        "skopeo/made:1",
    ]);
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

#[test]
fn all_copies_every_platform_of_an_index_and_the_default_only_the_chosen_one() {
    let env = Env::new();
    let reg = TestRegistry::plain();
    let layout = Layout::create(&env.path("layout"));
    let layers = [LayerSpec::busybox(Comp::Gzip)];
    let amd = layout.image(Flavor::Oci, "amd64", None, &layers, "amd");
    let arm = layout.image(Flavor::Oci, "arm64", None, &layers, "arm");
    let index = layout.tagged_index(
        "multi",
        Flavor::Oci,
        &[(&amd, "amd64", None), (&arm, "arm64", None)],
    );
    let all = format!("docker://{}/multi:all", reg.addr);
    let one = format!("docker://{}/multi:one", reg.addr);
    env.ok(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &oci(&layout.dir, "multi"),
        &all,
    ]);
    let raw = skopeo_json(&["inspect", "--raw", "--tls-verify=false", &all]);
    assert_eq!(raw["manifests"].as_array().unwrap().len(), 2);
    let ours = env.json(&[
        "inspect",
        "--tls-verify=false",
        "--platform",
        "linux/arm64",
        &all,
    ]);
    assert_eq!(ours["Digest"], index.as_str());
    assert_eq!(ours["Architecture"], "arm64");
    assert_eq!(
        ours["Platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64"])
    );
    env.ok(&[
        "copy",
        "--platform",
        "linux/arm64",
        "--dest-tls-verify=false",
        &oci(&layout.dir, "multi"),
        &one,
    ]);
    let raw = skopeo_json(&["inspect", "--raw", "--tls-verify=false", &one]);
    assert_eq!(
        raw["config"]["digest"].as_str(),
        Some(arm.config_digest.as_str())
    );
    // The store keeps one image per name: --all of an index into it is refused up front.
    let err = env.fails(&["copy", "--all", &oci(&layout.dir, "multi"), "multi:1"]);
    assert!(err.contains("--all"), "{err}");
}

#[test]
fn format_and_compression_conversions_change_layer_digests_but_not_diff_ids() {
    let env = Env::new();
    let reg = TestRegistry::plain();
    let (layout, img) = image(&env.path("layout"), "v1", Comp::Gzip);
    let zstd = format!("docker://{}/conv:zstd", reg.addr);
    env.ok(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-compress-format",
        "zstd",
        &oci(&layout.dir, "v1"),
        &zstd,
    ]);
    let raw = skopeo_json(&["inspect", "--raw", "--tls-verify=false", &zstd]);
    for (l, old) in raw["layers"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&img.layer_digests)
    {
        assert_eq!(
            l["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
        assert_ne!(l["digest"].as_str(), Some(old.as_str()));
    }
    let config = skopeo_json(&["inspect", "--config", "--tls-verify=false", &zstd]);
    assert_eq!(
        config["rootfs"]["diff_ids"],
        serde_json::json!(img.diff_ids)
    );
    // zstd has no Docker schema 2 media type: refused, nothing pushed.
    let v2 = format!("docker://{}/conv:v2s2", reg.addr);
    let err = env.fails(&["copy", "--tls-verify=false", "--format", "v2s2", &zstd, &v2]);
    assert!(err.contains("zstd"), "{err}");
    env.ok(&[
        "copy",
        "--tls-verify=false",
        "--format",
        "v2s2",
        "--dest-compress-format",
        "gzip",
        &zstd,
        &v2,
    ]);
    let raw = skopeo_json(&["inspect", "--raw", "--tls-verify=false", &v2]);
    assert_eq!(
        raw["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    // skopeo pulls and checks the converted image end to end.
    skopeo_ok(&[
        "copy",
        "-q",
        "--src-tls-verify=false",
        &v2,
        &oci(&env.path("v2"), "x"),
    ]);
}

#[test]
fn a_push_to_another_repository_of_the_same_registry_mounts_the_blobs() {
    let env = Env::new();
    let reg = TestRegistry::plain();
    let (layout, img) = image(&env.path("layout"), "v1", Comp::Gzip);
    let first = format!("docker://{}/first/app:1", reg.addr);
    let second = format!("docker://{}/second/app:1", reg.addr);
    env.ok(&[
        "copy",
        "--dest-tls-verify=false",
        &oci(&layout.dir, "v1"),
        &first,
    ]);
    let (_, err) = env.ok(&["copy", "--tls-verify=false", &first, &second]);
    let lines = blob_lines(&err);
    assert_eq!(lines.len(), 3, "{err}");
    assert!(lines.iter().all(|l| l.ends_with("mounted")), "{err}");
    let seen = skopeo_json(&["inspect", "--tls-verify=false", &second]);
    assert_eq!(seen["Digest"], img.manifest_digest.as_str());
    skopeo_ok(&[
        "copy",
        "-q",
        "--src-tls-verify=false",
        &second,
        &oci(&env.path("o"), "x"),
    ]);
}

#[test]
fn source_and_destination_take_their_own_credentials_and_tls_options() {
    let env = Env::new();
    let auth = |u: &str| (u.to_string(), format!("{u}-secret"));
    let (su, sp) = auth("alice");
    let (du, dp) = auth("bob");
    let src = TestRegistry::start(
        true,
        Auth::Basic {
            user: su.clone(),
            pass: sp.clone(),
        },
    );
    let dst = TestRegistry::start(
        false,
        Auth::Token {
            user: du.clone(),
            pass: dp.clone(),
        },
    );
    let (layout, img) = image(&env.path("layout"), "v1", Comp::Gzip);
    src.push(&layout.dir, "v1", "secret/app", "1");
    let src_ca = src
        .ca
        .as_ref()
        .unwrap()
        .cert_dir
        .to_str()
        .unwrap()
        .to_string();
    let from = format!("docker://{}/secret/app:1", src.addr);
    let to = format!("docker://{}/copied/app:1", dst.addr);
    let src_creds = format!("{su}:{sp}");
    let dest_creds = format!("{du}:{dp}");
    // Each side's credentials are its own: swapped, the source refuses.
    let err = env.fails(&[
        "copy",
        "--src-cert-dir",
        &src_ca,
        "--src-creds",
        &dest_creds,
        "--dest-creds",
        &src_creds,
        "--dest-tls-verify=false",
        &from,
        &to,
    ]);
    assert!(
        err.contains("authentication") || err.contains("unauthorized"),
        "{err}"
    );
    env.ok(&[
        "copy",
        "--src-cert-dir",
        &src_ca,
        "--src-creds",
        &src_creds,
        "--dest-creds",
        &dest_creds,
        "--dest-tls-verify=false",
        &from,
        &to,
    ]);
    let seen = skopeo_json(&["inspect", "--tls-verify=false", "--creds", &dest_creds, &to]);
    assert_eq!(seen["Digest"], img.manifest_digest.as_str());
    let tags = env.json(&[
        "list-tags",
        "--tls-verify=false",
        "--creds",
        &dest_creds,
        &format!("docker://{}/copied/app", dst.addr),
    ]);
    assert_eq!(tags["Tags"], serde_json::json!(["1"]));
}

#[test]
fn tls_verify_false_reaches_a_tls_registry_without_its_ca_and_a_plain_http_one() {
    let env = Env::new();
    let tls = TestRegistry::start(true, Auth::None);
    let plain = TestRegistry::plain();
    let (layout, img) = image(&env.path("layout"), "v1", Comp::Gzip);
    let a = format!("docker://{}/x:1", tls.addr);
    let b = format!("docker://{}/x:1", plain.addr);
    // Verified by default: the test CA is not trusted.
    let err = env.fails(&["copy", &oci(&layout.dir, "v1"), &a]);
    assert!(
        err.contains("certificate") || err.contains("UnknownIssuer"),
        "{err}"
    );
    env.ok(&[
        "copy",
        "--dest-tls-verify=false",
        &oci(&layout.dir, "v1"),
        &a,
    ]);
    env.ok(&["copy", "--tls-verify=false", &a, &b]);
    let seen = env.json(&["inspect", "--tls-verify=false", &b]);
    assert_eq!(seen["Digest"], img.manifest_digest.as_str());
    // --plain-http keeps working for a loopback registry.
    let seen = env.json(&["inspect", "--plain-http", &b]);
    assert_eq!(seen["Digest"], img.manifest_digest.as_str());
}

#[test]
fn list_tags_prints_skopeos_shape_and_delete_removes_the_image() {
    let env = Env::new();
    let reg = TestRegistry::plain();
    let (layout, _) = image(&env.path("layout"), "v1", Comp::Gzip);
    for t in ["1", "2"] {
        env.ok(&[
            "copy",
            "--dest-tls-verify=false",
            &oci(&layout.dir, "v1"),
            &format!("docker://{}/tags/app:{t}", reg.addr),
        ]);
    }
    let repo = format!("docker://{}/tags/app", reg.addr);
    let ours = env.ok(&["list-tags", "--tls-verify=false", &repo]).0;
    let theirs = skopeo_ok(&["list-tags", "--tls-verify=false", &repo]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&ours).unwrap(),
        serde_json::from_str::<serde_json::Value>(&theirs).unwrap()
    );
    assert!(
        ours.trim_start().starts_with("{\n  \"Repository\""),
        "{ours}"
    );
    env.ok(&["delete", "--tls-verify=false", &format!("{repo}:2")]);
    // Both tags named the same manifest, which is gone now.
    let err = env.fails(&["inspect", "--tls-verify=false", &format!("{repo}:1")]);
    assert!(
        err.contains("manifest unknown") || err.contains("ManifestUnknown"),
        "{err}"
    );
    let err = env.fails(&["delete", "--tls-verify=false", &format!("{repo}:1")]);
    assert!(err.contains("unknown"), "{err}");
}

#[test]
fn a_mirror_that_is_down_falls_back_to_the_location_and_a_blocked_registry_is_refused() {
    let env = Env::new();
    let reg = TestRegistry::plain();
    let (layout, img) = image(&env.path("layout"), "v1", Comp::Gzip);
    reg.push(&layout.dir, "v1", "real/app", "1");
    // A port nothing listens on: bind one, note it, close it.
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let conf = env.path("registries.conf");
    std::fs::write(
        &conf,
        format!(
            r#"
[[registry]]
prefix = "example.test/app"
location = "{reg}/real/app"
insecure = true
[[registry.mirror]]
location = "{down}/mirror/app"
insecure = true

[[registry]]
location = "blocked.test"
blocked = true
"#,
            reg = reg.addr
        ),
    )
    .unwrap();
    let conf_s = conf.to_str().unwrap();
    let (_, err) = env.ok(&["--registries-conf", conf_s, "pull", "example.test/app:1"]);
    assert!(err.contains("mirror") && err.contains(&down), "{err}");
    let seen = env.json(&[
        "--registries-conf",
        conf_s,
        "inspect",
        "docker://example.test/app:1",
    ]);
    assert_eq!(seen["Digest"], img.manifest_digest.as_str());
    let err = env.fails(&["--registries-conf", conf_s, "pull", "blocked.test/x:1"]);
    assert!(err.contains("blocked") && err.contains(conf_s), "{err}");
    let err = env.fails(&[
        "--registries-conf",
        conf_s,
        "copy",
        &oci(&layout.dir, "v1"),
        "docker://blocked.test/x:1",
    ]);
    assert!(
        err.contains("blocked") && err.contains("blocked.test"),
        "{err}"
    );
}

#[test]
fn bad_input_is_a_one_line_error_and_leaves_nothing_half_written() {
    let env = Env::new();
    let reg = TestRegistry::plain();
    let (layout, img) = image(&env.path("layout"), "v1", Comp::Gzip);
    let src = oci(&layout.dir, "v1");

    let err = env.fails(&["copy", "ftp://host/x", "y:1"]);
    assert!(err.contains("unknown transport \"ftp\""), "{err}");
    let err = env.fails(&["copy", &src, "containers-storage:x"]);
    assert!(err.contains("unknown transport"), "{err}");

    let not_layout = env.path("notalayout");
    std::fs::create_dir_all(&not_layout).unwrap();
    std::fs::write(not_layout.join("precious"), "keep").unwrap();
    let err = env.fails(&["copy", &src, &oci(&not_layout, "x")]);
    assert!(
        err.contains("not an OCI image layout") && err.contains("notalayout"),
        "{err}"
    );
    let names: Vec<_> = std::fs::read_dir(&not_layout)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names.len(), 1);

    let conf = env.path("broken.conf");
    std::fs::write(&conf, "[[registry]]\nlocation = \"a\"\nmirrors = 3\n").unwrap();
    let err = env.fails(&[
        "--registries-conf",
        conf.to_str().unwrap(),
        "inspect",
        "docker://a/b:1",
    ]);
    assert!(
        err.contains("broken.conf line 3") && err.contains("mirrors"),
        "{err}"
    );

    // A layer missing from the source: no archive appears, and the registry gets no manifest.
    std::fs::remove_file(
        layout
            .dir
            .join("blobs/sha256")
            .join(&img.layer_digests[1]["sha256:".len()..]),
    )
    .unwrap();
    let archive = env.path("out.tar");
    env.fails(&["copy", &src, &format!("oci-archive:{}", archive.display())]);
    env.fails(&[
        "copy",
        &src,
        &format!("docker-archive:{}", archive.display()),
    ]);
    assert!(!archive.exists());
    let dest = format!("docker://{}/half/app:1", reg.addr);
    env.fails(&["copy", "--dest-tls-verify=false", &src, &dest]);
    assert!(!skopeo(&["inspect", "--raw", "--tls-verify=false", &dest])
        .status
        .success());
    let leftovers: Vec<String> = env
        .leftovers()
        .into_iter()
        .chain(
            std::fs::read_dir(env.dir.path())
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains("oci-archive") || n.starts_with(".tmp")),
        )
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
