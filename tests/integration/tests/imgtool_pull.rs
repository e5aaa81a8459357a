//! Black-box tests of `imgtool pull` and the image store against a real `docker-registry`
//! (plain HTTP, TLS, basic auth, token auth), with images generated here from /bin/busybox and
//! pushed with skopeo, registry faults injected by a proxy, and skopeo reading our store.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use integration::registry::{
    digest_of, Auth, BuiltImage, Comp, Fault, FaultProxy, Flavor, LayerSpec, Layout, TestRegistry,
};
use integration::{imgtool_bin, run, stderr, stdout};

/// A store in a temp dir plus helpers to run imgtool on it.
struct Store {
    dir: tempfile::TempDir,
}

impl Store {
    fn new() -> Store {
        Store {
            dir: tempfile::Builder::new()
                .prefix("imgtool-store-")
                .tempdir()
                .unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(imgtool_bin());
        c.arg("--store").arg(self.path()).args(args);
        c.env_remove("IMGTOOL_STORE");
        // No stray credentials from the machine running the tests.
        c.env("HOME", self.path().join("home"));
        c.env("XDG_RUNTIME_DIR", self.path().join("run"));
        c.env_remove("REGISTRY_AUTH_FILE");
        c.env_remove("DOCKER_CONFIG");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        run(&mut self.cmd(args))
    }

    /// Run and require success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "imgtool {args:?} failed ({}): {}{}",
            o.status,
            stdout(&o),
            stderr(&o)
        );
        stdout(&o)
    }

    /// Run and require failure with exit 1 and a one-line `imgtool: ...` error; returns it.
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
        let last = err.lines().last().unwrap_or("").to_string();
        assert!(last.starts_with("imgtool: "), "error line: {err}");
        last
    }

    fn blobs(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.path().join("blobs/sha256"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| format!("sha256:{}", e.file_name().to_string_lossy()))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    fn temp_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.path().join(".imgtool/tmp"))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }

    fn images_json(&self) -> Vec<serde_json::Value> {
        serde_json::from_str(&self.ok(&["images", "--format", "json"])).unwrap()
    }

    fn inspect(&self, image: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["inspect", "--format", "json", image])).unwrap()
    }
}

/// A layout dir with generated images, removed on drop.
struct Images {
    dir: tempfile::TempDir,
    layout: Layout,
}

impl Images {
    fn new() -> Images {
        let dir = tempfile::Builder::new()
            .prefix("imgtool-images-")
            .tempdir()
            .unwrap();
        let layout = Layout::create(&dir.path().join("layout"));
        Images { dir, layout }
    }
}

/// A two-layer busybox image (busybox + a small file layer), pushed as `repo:tag`.
fn push_basic(
    reg: &TestRegistry,
    imgs: &Images,
    repo: &str,
    tag: &str,
    marker: &str,
) -> BuiltImage {
    let img = imgs.layout.tagged_image(
        marker,
        Flavor::Oci,
        &[
            LayerSpec::busybox(Comp::Gzip),
            LayerSpec::files(Comp::Gzip, &[("etc/marker", marker.as_bytes())]),
        ],
        marker,
    );
    let pushed = reg.push(&imgs.layout.dir, marker, repo, tag);
    assert_eq!(pushed, img.manifest_digest);
    img
}

fn id_hex(img: &BuiltImage) -> String {
    img.config_digest.trim_start_matches("sha256:").to_string()
}

#[test]
fn pull_by_tag_and_digest_from_plain_http_registry() {
    let reg = TestRegistry::plain();
    let imgs = Images::new();
    let img = push_basic(&reg, &imgs, "test/busybox", "v1", "plain-1");
    let store = Store::new();
    let name = format!("{}/test/busybox:v1", reg.addr);

    let out = store.ok(&["--plain-http", "pull", &name]);
    assert_eq!(out.trim(), id_hex(&img), "pull prints the image ID");

    // Every blob of the image is in the store, verified, and nothing else.
    let mut want = vec![img.manifest_digest.clone(), img.config_digest.clone()];
    want.extend(img.layer_digests.iter().cloned());
    want.sort();
    assert_eq!(store.blobs(), want);
    for d in &want {
        let data = std::fs::read(store.path().join("blobs/sha256").join(&d[7..])).unwrap();
        assert_eq!(&digest_of(&data), d);
    }

    // inspect: the layer table carries the generator's diff_ids and the image ID.
    let info = store.inspect(&name);
    assert_eq!(info["Id"], img.config_digest.as_str());
    let diff_ids: Vec<String> = info["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["DiffID"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(diff_ids, img.diff_ids);
    assert_eq!(info["Layers"][0]["ChainID"], img.diff_ids[0].as_str());

    // By digest: same image, no blob fetched again.
    let by_digest = format!("{}/test/busybox@{}", reg.addr, img.manifest_digest);
    let o = store.run(&["--plain-http", "pull", &by_digest]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), id_hex(&img));
    assert!(
        !stderr(&o).contains(" done"),
        "warm pull copied a blob: {}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("already exists"));

    // Short ID prefixes resolve; the images table lists the name.
    let short = &id_hex(&img)[..12];
    assert_eq!(store.inspect(short)["Id"], img.config_digest.as_str());
    let table = store.ok(&["images"]);
    assert!(
        table.contains(&format!("{}/test/busybox", reg.addr)) && table.contains(short),
        "{table}"
    );
    assert!(store.temp_files().is_empty());
}

#[test]
fn skopeo_reads_our_store_as_oci_layout() {
    let reg = TestRegistry::plain();
    let imgs = Images::new();
    let img = push_basic(&reg, &imgs, "test/skopeo", "latest", "skopeo-1");
    let store = Store::new();
    let name = format!("{}/test/skopeo:latest", reg.addr);
    store.ok(&["--plain-http", "pull", &name]);

    let o = run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:{name}", store.path().display())));
    assert!(o.status.success(), "skopeo inspect: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["Digest"], img.manifest_digest.as_str());
    assert_eq!(v["Layers"].as_array().unwrap().len(), 2);

    let out = imgs.dir.path().join("copy");
    let o = run(Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(format!("oci:{}:{name}", store.path().display()))
        .arg(format!("oci:{}:x", out.display())));
    assert!(o.status.success(), "skopeo copy: {}", stderr(&o));
    assert!(out
        .join("blobs/sha256")
        .join(&img.config_digest[7..])
        .exists());
}

#[test]
fn schema2_and_all_layer_compressions() {
    let reg = TestRegistry::plain();
    let imgs = Images::new();
    let docker = imgs.layout.tagged_image(
        "docker",
        Flavor::Oci,
        &[
            LayerSpec::busybox(Comp::Gzip),
            LayerSpec::files(Comp::Gzip, &[("etc/a", b"a")]),
        ],
        "docker-gzip",
    );
    let schema2_digest = reg.push_schema2(&imgs.layout.dir, "docker", "test/schema2", "v1");
    let mixed = imgs.layout.tagged_image(
        "mixed",
        Flavor::Oci,
        &[
            LayerSpec::busybox(Comp::Zstd),
            LayerSpec::files(Comp::None, &[("etc/plain", b"plain")]),
            LayerSpec::files(Comp::Gzip, &[("etc/gz", b"gz")]),
        ],
        "oci-mixed",
    );
    assert_eq!(
        reg.push(&imgs.layout.dir, "mixed", "test/mixed", "v1"),
        mixed.manifest_digest
    );

    let store = Store::new();
    for (repo, img, manifest_digest) in [
        ("test/schema2", &docker, &schema2_digest),
        ("test/mixed", &mixed, &mixed.manifest_digest),
    ] {
        let name = format!("{}/{repo}:v1", reg.addr);
        assert_eq!(
            store.ok(&["--plain-http", "pull", &name]).trim(),
            id_hex(img)
        );
        let info = store.inspect(&name);
        assert_eq!(
            info["Digest"],
            manifest_digest.as_str(),
            "manifest kept byte for byte"
        );
        let layers = info["Layers"].as_array().unwrap();
        assert_eq!(layers.len(), img.diff_ids.len());
        for (l, d) in layers.iter().zip(&img.diff_ids) {
            assert_eq!(l["DiffID"], d.as_str());
        }
    }
    let info = store.inspect(&format!("{}/test/schema2:v1", reg.addr));
    assert_eq!(
        info["Manifest"]["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
}

#[test]
fn multi_arch_index_platform_and_variant_choice() {
    let reg = TestRegistry::plain();
    let imgs = Images::new();
    let l = |m: &str| vec![LayerSpec::files(Comp::Gzip, &[("etc/arch", m.as_bytes())])];
    let amd64 = imgs
        .layout
        .image(Flavor::Oci, "amd64", None, &l("amd64"), "amd64");
    let arm64 = imgs
        .layout
        .image(Flavor::Oci, "arm64", Some("v8"), &l("arm64"), "arm64");
    let armv6 = imgs
        .layout
        .image(Flavor::Oci, "arm", Some("v6"), &l("armv6"), "armv6");
    let armv7 = imgs
        .layout
        .image(Flavor::Oci, "arm", Some("v7"), &l("armv7"), "armv7");
    let index = imgs.layout.tagged_index(
        "multi",
        Flavor::Oci,
        &[
            (&amd64, "amd64", None),
            (&arm64, "arm64", Some("v8")),
            (&armv6, "arm", Some("v6")),
            (&armv7, "arm", Some("v7")),
        ],
    );
    assert_eq!(
        reg.push(&imgs.layout.dir, "multi", "test/multi", "v1"),
        index
    );
    let name = format!("{}/test/multi:v1", reg.addr);

    let cases = [
        ("linux/amd64", &amd64),
        ("linux/arm64", &arm64),
        ("linux/arm64/v8", &arm64),
        ("linux/arm/v7", &armv7),
        ("linux/arm/v6", &armv6),
    ];
    for (platform, want) in cases {
        let store = Store::new();
        let out = store.ok(&["--plain-http", "--platform", platform, "pull", &name]);
        assert_eq!(out.trim(), id_hex(want), "platform {platform}");
        // The index digest is what the name resolved to; the stored manifest is the platform's.
        let info = store.inspect(&name);
        assert_eq!(info["Digest"], want.manifest_digest.as_str());
        assert!(info["RepoDigests"][0].as_str().unwrap().ends_with(&index));
    }
    let store = Store::new();
    let err = store.fails(&["--plain-http", "--platform", "linux/s390x", "pull", &name]);
    assert!(
        err.contains("linux/s390x") && err.contains("linux/arm/v7"),
        "{err}"
    );
    let err = store.fails(&["--plain-http", "--platform", "linux", "pull", &name]);
    assert!(err.contains("invalid platform"), "{err}");
    assert!(store.blobs().is_empty());
}

#[test]
fn basic_auth_registry() {
    let auth = Auth::Basic {
        user: "alice".into(),
        pass: "s3cret".into(),
    };
    let reg = TestRegistry::start(false, auth);
    let imgs = Images::new();
    let img = push_basic(&reg, &imgs, "private/app", "v1", "basic-1");
    let name = format!("{}/private/app:v1", reg.addr);
    let store = Store::new();

    let err = store.fails(&["--plain-http", "pull", &name]);
    assert!(
        err.contains("authentication failed") || err.contains("unauthorized"),
        "{err}"
    );
    let err = store.fails(&["--plain-http", "--creds", "alice:wrong", "pull", &name]);
    assert!(
        err.contains(&reg.addr) && err.contains("authentication failed"),
        "{err}"
    );
    assert!(
        store.images_json().is_empty(),
        "no image after failed pulls"
    );

    assert_eq!(
        store
            .ok(&["--plain-http", "--creds", "alice:s3cret", "pull", &name])
            .trim(),
        id_hex(&img)
    );

    // login checks and stores credentials; later pulls find them; logout removes them.
    let authfile = store.path().join("auth.json");
    let af = authfile.to_str().unwrap();
    let err = store.fails(&[
        "--plain-http",
        "--authfile",
        af,
        "login",
        "-u",
        "alice",
        "-p",
        "nope",
        &reg.addr,
    ]);
    assert!(err.contains("invalid username or password"), "{err}");
    assert!(!authfile.exists());
    store.ok(&[
        "--plain-http",
        "--authfile",
        af,
        "login",
        "-u",
        "alice",
        "-p",
        "s3cret",
        &reg.addr,
    ]);
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&authfile).unwrap()).unwrap();
    assert!(saved["auths"][&reg.addr]["auth"].is_string());
    let store2 = Store::new();
    store2.ok(&["--plain-http", "--authfile", af, "pull", &name]);
    store.ok(&["--authfile", af, "logout", &reg.addr]);
    let store3 = Store::new();
    store3.fails(&["--plain-http", "--authfile", af, "pull", &name]);

    // Docker's config.json under $HOME is read too.
    let store4 = Store::new();
    let docker_dir = store4.path().join("home/.docker");
    std::fs::create_dir_all(&docker_dir).unwrap();
    std::fs::write(
        docker_dir.join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"YWxpY2U6czNjcmV0"}}}}}}"#,
            reg.addr
        ),
    )
    .unwrap();
    assert_eq!(
        store4.ok(&["--plain-http", "pull", &name]).trim(),
        id_hex(&img)
    );

    // A Docker credential helper named by credHelpers is asked (get, registry on stdin).
    let store5 = Store::new();
    let bin = store5.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-imgtooltest");
    let asked = store5.path().join("asked");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\ncat > {}\necho '{{\"ServerURL\":\"x\",\"Username\":\"alice\",\"Secret\":\"s3cret\"}}'\n",
            asked.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let docker_dir = store5.path().join("home/.docker");
    std::fs::create_dir_all(&docker_dir).unwrap();
    std::fs::write(
        docker_dir.join("config.json"),
        format!(r#"{{"credHelpers":{{"{}":"imgtooltest"}}}}"#, reg.addr),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = run(store5
        .cmd(&["--plain-http", "pull", &name])
        .env("PATH", path));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&asked).unwrap().trim(), reg.addr);
}

#[test]
fn token_auth_registry() {
    let auth = Auth::Token {
        user: "bob".into(),
        pass: "tok-pass".into(),
    };
    let reg = TestRegistry::start(false, auth);
    let imgs = Images::new();
    let img = push_basic(&reg, &imgs, "team/app", "v1", "token-1");
    let name = format!("{}/team/app:v1", reg.addr);
    let store = Store::new();

    let err = store.fails(&["--plain-http", "pull", &name]);
    assert!(err.contains("authentication failed"), "anonymous: {err}");
    let err = store.fails(&["--plain-http", "--creds", "bob:bad", "pull", &name]);
    assert!(
        err.contains("authentication failed"),
        "wrong password: {err}"
    );
    assert!(store.images_json().is_empty());

    let ts = reg.token_server.as_ref().unwrap();
    ts.requests.lock().unwrap().clear();
    assert_eq!(
        store
            .ok(&["--plain-http", "--creds", "bob:tok-pass", "pull", &name])
            .trim(),
        id_hex(&img)
    );
    let reqs = ts.requests.lock().unwrap().clone();
    assert!(
        reqs.iter().any(|r| r == "bob repository:team/app:pull"),
        "token requested for the pull scope: {reqs:?}"
    );

    let af = store.path().join("auth.json");
    let af = af.to_str().unwrap();
    let err = store.fails(&[
        "--plain-http",
        "--authfile",
        af,
        "login",
        "-u",
        "bob",
        "-p",
        "bad",
        &reg.addr,
    ]);
    assert!(err.contains("invalid username or password"), "{err}");
    store.ok(&[
        "--plain-http",
        "--authfile",
        af,
        "login",
        "-u",
        "bob",
        "-p",
        "tok-pass",
        &reg.addr,
    ]);
    Store::new().ok(&["--plain-http", "--authfile", af, "pull", &name]);
}

#[test]
fn tls_registry_with_test_ca() {
    let reg = TestRegistry::start(true, Auth::None);
    let imgs = Images::new();
    let img = push_basic(&reg, &imgs, "secure/app", "v1", "tls-1");
    let name = format!("{}/secure/app:v1", reg.addr);
    let ca = reg.ca.as_ref().unwrap();
    let store = Store::new();

    let err = store.fails(&["pull", &name]);
    assert!(
        err.to_lowercase().contains("certificate"),
        "untrusted CA: {err}"
    );
    let cert_dir = ca.cert_dir.to_str().unwrap();
    assert_eq!(
        store.ok(&["--cert-dir", cert_dir, "pull", &name]).trim(),
        id_hex(&img)
    );
    let store2 = Store::new();
    assert_eq!(
        store2.ok(&["--tls-verify=false", "pull", &name]).trim(),
        id_hex(&img)
    );
    // Plain HTTP to a TLS port is not silently tried.
    let store3 = Store::new();
    store3.fails(&["--plain-http", "pull", &name]);
    // login goes through the same trust settings.
    let af = store3.path().join("auth.json");
    let af = af.to_str().unwrap();
    let err = store3.fails(&["--authfile", af, "login", "-u", "u", "-p", "p", &reg.addr]);
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    store3.ok(&[
        "--authfile",
        af,
        "--cert-dir",
        cert_dir,
        "login",
        "-u",
        "u",
        "-p",
        "p",
        &reg.addr,
    ]);
}

#[test]
fn plain_http_only_for_loopback_and_bad_references() {
    let store = Store::new();
    let err = store.fails(&["--plain-http", "pull", "registry.example.com/app:v1"]);
    assert!(
        err.contains("--plain-http") && err.contains("registry.example.com"),
        "{err}"
    );
    let err = store.fails(&["pull", "UPPER/Case:v1"]);
    assert!(
        err.contains("invalid reference") && err.contains("UPPER/Case"),
        "{err}"
    );
    let err = store.fails(&["pull", "busybox@sha256:abc"]);
    assert!(err.contains("invalid reference"), "{err}");
    let err = store.fails(&["inspect", "nothere:v1"]);
    assert!(err.contains("image not known"), "{err}");
    assert!(store.blobs().is_empty());

    // IMGTOOL_STORE names the store when --store does not.
    let env_store = store.path().join("from-env");
    let o = run(Command::new(imgtool_bin())
        .arg("images")
        .env("IMGTOOL_STORE", &env_store));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(env_store.join("oci-layout").exists() && env_store.join("index.json").exists());
}

#[test]
fn transient_500s_are_retried() {
    let reg = TestRegistry::plain();
    let imgs = Images::new();
    let img = push_basic(&reg, &imgs, "test/flaky", "v1", "flaky-1");
    let proxy = FaultProxy::start(&reg.addr, Fault::Error500(2));
    let store = Store::new();
    let name = format!("{}/test/flaky:v1", proxy.addr);
    assert_eq!(
        store.ok(&["--plain-http", "pull", &name]).trim(),
        id_hex(&img)
    );
    let blob_gets = proxy
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET") && r.contains("/blobs/"))
        .count();
    assert!(
        blob_gets >= 3 + 2,
        "3 blobs + 2 retried: {:?}",
        proxy.requests()
    );

    // A registry that keeps failing: a clear error after the retries, nothing stored.
    proxy.set(Fault::Error500(usize::MAX));
    let store2 = Store::new();
    let err = store2.fails(&["--plain-http", "--retry-times", "1", "pull", &name]);
    assert!(err.contains("500"), "{err}");
    assert!(store2.images_json().is_empty());
    assert!(store2.temp_files().is_empty());
}

#[test]
fn connection_cut_mid_blob_resumes_with_range() {
    let reg = TestRegistry::plain();
    let imgs = Images::new();
    let img = push_basic(&reg, &imgs, "test/cut", "v1", "cut-1");
    let proxy = FaultProxy::start(&reg.addr, Fault::CutMidBlob(1));
    let store = Store::new();
    let name = format!("{}/test/cut:v1", proxy.addr);
    assert_eq!(
        store.ok(&["--plain-http", "pull", &name]).trim(),
        id_hex(&img)
    );
    let reqs = proxy.requests();
    assert!(
        reqs.iter()
            .any(|r| r.contains("/blobs/") && r.contains("bytes=") && !r.contains("bytes=0-")),
        "resumed with a Range request: {reqs:?}"
    );
    assert!(store.inspect(&name)["Layers"][0]["DiffID"] == img.diff_ids[0].as_str());
}

#[test]
fn blob_with_wrong_content_is_rejected_and_store_stays_clean() {
    let reg = TestRegistry::plain();
    let imgs = Images::new();
    let img = push_basic(&reg, &imgs, "test/evil", "v1", "evil-1");
    let bad = img.layer_digests[0].clone();
    let proxy = FaultProxy::start(&reg.addr, Fault::CorruptBlob(bad[7..].to_string()));
    let store = Store::new();
    let name = format!("{}/test/evil:v1", proxy.addr);
    let err = store.fails(&["--plain-http", "pull", &name]);
    assert!(
        err.contains(&bad) && err.contains("digest mismatch"),
        "{err}"
    );
    assert!(!store.blobs().contains(&bad), "corrupt blob kept");
    assert!(!store.blobs().contains(&img.manifest_digest));
    assert!(store.images_json().is_empty());
    assert!(store.temp_files().is_empty(), "{:?}", store.temp_files());

    // A registry that sends more than the manifest's size is cut off at that size.
    proxy.set(Fault::Oversize(bad[7..].to_string()));
    let err = store.fails(&["--plain-http", "pull", &name]);
    assert!(err.contains(&bad) && err.contains("more than"), "{err}");
    assert!(!store.blobs().contains(&bad));
    assert!(store.temp_files().is_empty(), "{:?}", store.temp_files());

    // The registry heals: the next pull works in the same store.
    proxy.set(Fault::None);
    assert_eq!(
        store.ok(&["--plain-http", "pull", &name]).trim(),
        id_hex(&img)
    );
}

/// Re-tag `img` under `tag` with a config whose diff_id for `layer` is wrong (the layers are
/// untouched, so every blob digest still checks out); returns the lying manifest's digest.
fn lie_about_diff_id(layout: &Layout, img: &BuiltImage, layer: usize, tag: &str) -> String {
    let blob = |d: &str| std::fs::read(layout.dir.join("blobs/sha256").join(&d[7..])).unwrap();
    let mut config: serde_json::Value = serde_json::from_slice(&blob(&img.config_digest)).unwrap();
    config["rootfs"]["diff_ids"][layer] = format!("sha256:{}", "0".repeat(64)).into();
    let config_raw = serde_json::to_vec(&config).unwrap();
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&blob(&img.manifest_digest)).unwrap();
    manifest["config"]["digest"] = layout.put(&config_raw).into();
    manifest["config"]["size"] = config_raw.len().into();
    let raw = serde_json::to_vec(&manifest).unwrap();
    let digest = layout.put(&raw);
    layout.tag(tag, &img.media_type, &digest, raw.len() as u64);
    digest
}

#[test]
fn lying_diff_id_is_refused_before_any_rootfs_is_used() {
    let reg = TestRegistry::plain();
    let imgs = Images::new();
    let img = push_basic(&reg, &imgs, "test/honest", "v1", "lie-1");
    lie_about_diff_id(&imgs.layout, &img, 1, "lie");
    reg.push(&imgs.layout.dir, "lie", "test/lie", "v1");
    let name = format!("{}/test/lie:v1", reg.addr);
    let bad_layer = &img.layer_digests[1];

    // --verify-diff-ids checks while the layers stream in: the error names the layer, and
    // neither that layer nor the image is kept.
    let store = Store::new();
    let err = store.fails(&["--plain-http", "pull", "--verify-diff-ids", &name]);
    assert!(
        err.contains(bad_layer.as_str()) && err.contains("diff_id mismatch"),
        "{err}"
    );
    assert!(!store.blobs().contains(bad_layer), "unverified layer kept");
    assert!(store.images_json().is_empty());
    assert!(store.temp_files().is_empty(), "{:?}", store.temp_files());

    // A plain pull checks every blob digest (as skopeo and containerd's fetch do); the diff_id
    // is checked by the pass that first decompresses the layer, before any rootfs is used.
    let store = Store::new();
    store.ok(&["--plain-http", "pull", "-q", &name]);
    let bundle = store.path().join("bundle");
    let err = store.fails(&["unpack", &name, bundle.to_str().unwrap()]);
    assert!(err.contains("diff_id mismatch"), "{err}");
    assert!(!bundle.exists(), "a refused unpack leaves no bundle");
    let archive = store.path().join("lie.tar");
    let err = store.fails(&["save", "-o", archive.to_str().unwrap(), &name]);
    assert!(
        err.contains(bad_layer.as_str()) && err.contains("diff_id mismatch"),
        "{err}"
    );
    let err = store.fails(&["--plain-http", "pull", "--verify-diff-ids", &name]);
    assert!(err.contains(bad_layer.as_str()), "{err}");

    // The honest image sharing those layers unpacks from the same store, and its layers are
    // then known as verified.
    let honest = format!("{}/test/honest:v1", reg.addr);
    store.ok(&["--plain-http", "pull", "-q", &honest]);
    store.ok(&["unpack", "-q", &honest, bundle.to_str().unwrap()]);
    assert!(bundle.join("rootfs/etc/marker").is_file());
    let verified = store.path().join(".imgtool/diffids").join(&bad_layer[7..]);
    assert_eq!(
        std::fs::read_to_string(verified).unwrap().trim(),
        img.diff_ids[1]
    );
}

#[test]
fn unpack_from_a_registry_reads_layers_while_they_download() {
    let reg = TestRegistry::plain();
    let imgs = Images::new();
    let img = push_basic(&reg, &imgs, "test/follow", "v1", "follow-1");
    let store = Store::new();
    let bundle = store.path().join("bundle");
    let b = bundle.to_str().unwrap();

    // A connection cut mid-layer: the download resumes (Range) and the unpack reading behind
    // it carries on; the rootfs is complete and the diff_ids it checked are recorded.
    let proxy = FaultProxy::start(&reg.addr, Fault::CutMidBlob(1));
    let name = format!("{}/test/follow:v1", proxy.addr);
    store.ok(&["--plain-http", "unpack", "-q", &name, b]);
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/etc/marker")).unwrap(),
        "follow-1"
    );
    assert!(bundle.join("rootfs/bin/busybox").is_file());
    for (layer, diff_id) in img.layer_digests.iter().zip(&img.diff_ids) {
        let rec = store.path().join(".imgtool/diffids").join(&layer[7..]);
        assert_eq!(std::fs::read_to_string(rec).unwrap().trim(), diff_id);
    }
    assert!(proxy
        .requests()
        .iter()
        .any(|r| r.contains("/blobs/") && r.contains("bytes=") && !r.contains("bytes=0-")));

    // A layer whose bytes do not match its digest: the unpack that already applied part of
    // it fails with the pull's error naming the blob, and leaves no bundle, no blob, no image.
    let store = Store::new();
    let bundle = store.path().join("bundle");
    let bad = img.layer_digests[0].clone();
    proxy.set(Fault::CorruptBlob(bad[7..].to_string()));
    let err = store.fails(&[
        "--plain-http",
        "unpack",
        "-q",
        &name,
        bundle.to_str().unwrap(),
    ]);
    assert!(
        err.contains(&bad) && err.contains("digest mismatch"),
        "{err}"
    );
    assert!(!bundle.exists(), "partial bundle left");
    assert!(!store.blobs().contains(&bad), "corrupt blob kept");
    assert!(store.images_json().is_empty());
    assert!(store.temp_files().is_empty(), "{:?}", store.temp_files());
}

#[test]
fn interrupted_unpack_stops_the_download_it_follows() {
    let reg = TestRegistry::plain();
    let imgs = Images::new();
    let img = push_basic(&reg, &imgs, "test/slow", "v1", "slow-1");
    let proxy = FaultProxy::start(&reg.addr, Fault::Slow(100_000));
    let store = Store::new();
    let bundle = store.path().join("bundle");
    let name = format!("{}/test/slow:v1", proxy.addr);
    let mut cmd = store.cmd(&[
        "--plain-http",
        "unpack",
        "-q",
        &name,
        bundle.to_str().unwrap(),
    ]);
    let mut child = integration::sigint_as_from_a_shell(cmd.stderr(std::process::Stdio::piped()))
        .spawn()
        .unwrap();
    // The rootfs exists once the layers are announced and the unpack reads behind the pull.
    integration::interrupt_when(&mut child, || bundle.join("rootfs").exists());
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "interrupted unpack reported success");
    assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
    assert!(!bundle.exists(), "partial bundle left behind");
    // The slow busybox layer was still downloading: the pull stopped with the unpack rather
    // than finishing it, and left no temp blob and no image behind.
    assert!(
        !store.blobs().contains(&img.layer_digests[0]),
        "the download went on after the unpack gave up"
    );
    assert!(store.temp_files().is_empty(), "{:?}", store.temp_files());
    assert!(store.images_json().is_empty());
}

#[test]
fn concurrent_pulls_of_one_image_both_succeed() {
    let reg = TestRegistry::plain();
    let imgs = Images::new();
    let img = push_basic(&reg, &imgs, "test/race", "v1", "race-1");
    let store = Store::new();
    let name = format!("{}/test/race:v1", reg.addr);
    let children: Vec<_> = (0..4)
        .map(|_| {
            store
                .cmd(&["--plain-http", "pull", "-q", &name])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stdout(&o).trim(), id_hex(&img));
    }
    let imgs_json = store.images_json();
    assert_eq!(imgs_json.len(), 1, "{imgs_json:?}");
    assert_eq!(store.blobs().len(), 4);
}

#[test]
fn kill_9_during_pull_then_pull_again() {
    let reg = TestRegistry::plain();
    let imgs = Images::new();
    let img = push_basic(&reg, &imgs, "test/killed", "v1", "kill-1");
    let proxy = FaultProxy::start(&reg.addr, Fault::Slow(200_000));
    let store = Store::new();
    let name = format!("{}/test/killed:v1", proxy.addr);
    let mut child = store
        .cmd(&["--plain-http", "pull", "-q", &name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the layer download has started (a temp file exists), then kill -9.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while store.temp_files().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!store.temp_files().is_empty(), "pull never started writing");
    std::thread::sleep(std::time::Duration::from_millis(300));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();

    // The store is usable as is, and the next pull completes it.
    assert!(store.images_json().is_empty());
    proxy.set(Fault::None);
    assert_eq!(
        store.ok(&["--plain-http", "pull", &name]).trim(),
        id_hex(&img)
    );
    assert!(store.temp_files().is_empty(), "crash leftovers swept");
    store.ok(&["inspect", &name]);
}

#[test]
fn images_filters_tag_and_dangling() {
    let reg = TestRegistry::plain();
    let imgs = Images::new();
    let a = push_basic(&reg, &imgs, "app/alpha", "v1", "alpha");
    push_basic(&reg, &imgs, "app/beta", "v1", "beta");
    push_basic(&reg, &imgs, "lib/gamma", "v1", "gamma");
    let store = Store::new();
    for r in ["app/alpha", "app/beta", "lib/gamma"] {
        store.ok(&["--plain-http", "pull", &format!("{}/{r}:v1", reg.addr)]);
    }
    store.ok(&["tag", &format!("{}/app/alpha:v1", reg.addr), "alpha:mine"]);

    let names = |filters: &[&str]| -> Vec<String> {
        let mut args = vec!["images", "--format", "json"];
        for f in filters {
            args.push("--filter");
            args.push(f);
        }
        let v: Vec<serde_json::Value> = serde_json::from_str(&store.ok(&args)).unwrap();
        let mut n: Vec<String> = v
            .iter()
            .map(|i| i["Name"].as_str().unwrap_or("<none>").to_string())
            .collect();
        n.sort();
        n
    };
    let addr = &reg.addr;
    assert_eq!(
        names(&[&format!("reference={addr}/app/*")]),
        vec![
            format!("{addr}/app/alpha:v1"),
            format!("{addr}/app/beta:v1")
        ]
    );
    // Two reference filters are OR'ed.
    assert_eq!(
        names(&[&format!("reference={addr}/lib/*"), "reference=alpha:*"]),
        vec![
            format!("{addr}/lib/gamma:v1"),
            "docker.io/library/alpha:mine".to_string()
        ]
    );
    // As in Docker, `*` does not cross a `/`.
    assert!(names(&["reference=*/gamma:v1"]).is_empty());
    assert_eq!(names(&["reference=*/*/gamma:v1"]).len(), 1);
    assert!(names(&["dangling=true"]).is_empty());

    // Moving a tag to another image leaves the old one dangling (if it has no other name).
    let beta = format!("{addr}/app/beta:v1");
    store.ok(&["tag", &format!("{addr}/lib/gamma:v1"), &beta]);
    let dangling: Vec<serde_json::Value> = serde_json::from_str(&store.ok(&[
        "images",
        "--format",
        "json",
        "--filter",
        "dangling=true",
    ]))
    .unwrap();
    assert_eq!(dangling.len(), 1, "{dangling:?}");
    assert_eq!(
        store
            .ok(&["images", "-q", "--filter", "dangling=true"])
            .lines()
            .count(),
        1
    );

    let err = store.fails(&["images", "--filter", "colour=blue"]);
    assert!(
        err.contains("--filter") && err.contains("colour=blue"),
        "{err}"
    );
    let ids = store.ok(&["images", "-q", "--no-trunc"]);
    assert!(ids.lines().any(|l| l == a.config_digest), "{ids}");
}

#[test]
fn rmi_untags_deletes_and_collects_garbage() {
    let reg = TestRegistry::plain();
    let imgs = Images::new();
    let one = push_basic(&reg, &imgs, "app/one", "v1", "one");
    let two = push_basic(&reg, &imgs, "app/two", "v1", "two");
    let store = Store::new();
    let n1 = format!("{}/app/one:v1", reg.addr);
    let n2 = format!("{}/app/two:v1", reg.addr);
    store.ok(&["--plain-http", "pull", &n1]);
    store.ok(&["--plain-http", "pull", &n2]);
    // The busybox layer is shared: 2 manifests + 2 configs + 1 shared + 2 marker layers.
    assert_eq!(store.blobs().len(), 7);
    store.ok(&["tag", &n1, "one:extra"]);

    // By ID with two names needs -f.
    let err = store.fails(&["rmi", &id_hex(&one)[..12]]);
    assert!(err.contains("-f"), "{err}");
    // Untag one name: the image stays.
    let out = store.ok(&["rmi", "one:extra"]);
    assert!(
        out.contains("Untagged: docker.io/library/one:extra") && !out.contains("Deleted"),
        "{out}"
    );
    assert_eq!(store.blobs().len(), 7);
    // Removing the last name deletes the image; the shared layer stays for `two`.
    let out = store.ok(&["rmi", &n1]);
    assert!(
        out.contains(&format!("Deleted: {}", one.config_digest)),
        "{out}"
    );
    let blobs = store.blobs();
    assert_eq!(blobs.len(), 4, "{blobs:?}");
    assert!(blobs.contains(&one.layer_digests[0]) && !blobs.contains(&one.layer_digests[1]));
    // Ambiguity is a clear error, unknown names too.
    store.fails(&["rmi", "nothere:v1"]);
    store.ok(&["rmi", &id_hex(&two)]);
    assert!(store.blobs().is_empty(), "orphans: {:?}", store.blobs());
    assert!(store.images_json().is_empty());
}

#[test]
fn save_and_load_round_trip_both_formats() {
    let reg = TestRegistry::plain();
    let imgs = Images::new();
    let a = push_basic(&reg, &imgs, "app/a", "v1", "save-a");
    let b = push_basic(&reg, &imgs, "app/b", "v1", "save-b");
    let store = Store::new();
    let na = format!("{}/app/a:v1", reg.addr);
    let nb = format!("{}/app/b:v1", reg.addr);
    store.ok(&["--plain-http", "pull", &na]);
    store.ok(&["--plain-http", "pull", &nb]);
    let out = imgs.dir.path();
    let docker_tar = out.join("images-docker.tar");
    let oci_tar = out.join("images-oci.tar");
    store.ok(&["save", "-o", docker_tar.to_str().unwrap(), &na, &nb]);
    store.ok(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        oci_tar.to_str().unwrap(),
        &na,
        &nb,
    ]);

    // Independent readers accept both archives.
    for src in [
        format!("docker-archive:{}:{na}", docker_tar.display()),
        format!("oci-archive:{}:{na}", oci_tar.display()),
    ] {
        let o = run(Command::new("skopeo").arg("inspect").arg(&src));
        assert!(o.status.success(), "skopeo inspect {src}: {}", stderr(&o));
    }

    for tarball in [&docker_tar, &oci_tar] {
        let fresh = Store::new();
        let out = fresh.ok(&["load", "-i", tarball.to_str().unwrap()]);
        assert!(
            out.contains(&format!("Loaded image: {na}"))
                && out.contains(&format!("Loaded image: {nb}")),
            "{out}"
        );
        for (n, img) in [(&na, &a), (&nb, &b)] {
            let info = fresh.inspect(n);
            assert_eq!(
                info["Id"],
                img.config_digest.as_str(),
                "image ID survives {}",
                tarball.display()
            );
            let diffs: Vec<&str> = info["Layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["DiffID"].as_str().unwrap())
                .collect();
            assert_eq!(
                diffs,
                img.diff_ids.iter().map(String::as_str).collect::<Vec<_>>()
            );
        }
    }
    // Not an archive: a clear error naming the file.
    let junk = out.join("junk.tar");
    std::fs::write(&junk, b"not a tarball at all").unwrap();
    let err = Store::new().fails(&["load", "-i", junk.to_str().unwrap()]);
    assert!(err.contains("junk.tar"), "{err}");
}

#[test]
fn oci_layout_source_is_imported() {
    let imgs = Images::new();
    let img = imgs.layout.tagged_image(
        "v1",
        Flavor::Oci,
        &[LayerSpec::busybox(Comp::Gzip)],
        "layout-src",
    );
    let store = Store::new();
    let src = format!("oci:{}:v1", imgs.layout.dir.display());
    assert_eq!(store.ok(&["pull", &src]).trim(), id_hex(&img));
    assert_eq!(
        store.inspect(&id_hex(&img))["Layers"][0]["DiffID"],
        img.diff_ids[0].as_str()
    );
    let err = store.fails(&["pull", &format!("oci:{}:nope", imgs.layout.dir.display())]);
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn archive_sources_and_ambiguous_id_prefixes() {
    // Images whose IDs share a first hex digit: generate until two collide (1 in 16 each).
    let imgs = Images::new();
    let store = Store::new();
    let mut seen: std::collections::HashMap<char, String> = Default::default();
    let mut pair = None;
    for i in 0..64 {
        let tag = format!("t{i}");
        let img = imgs.layout.tagged_image(
            &tag,
            Flavor::Oci,
            &[LayerSpec::files(Comp::Gzip, &[("etc/n", tag.as_bytes())])],
            &tag,
        );
        let first = id_hex(&img).chars().next().unwrap();
        if let Some(other) = seen.get(&first) {
            pair = Some((other.clone(), tag, first));
            break;
        }
        seen.insert(first, tag);
    }
    let (t1, t2, first) = pair.expect("two IDs with one first digit");
    let layout = imgs.layout.dir.display().to_string();
    store.ok(&["pull", &format!("oci:{layout}:{t1}")]);
    store.ok(&["pull", &format!("oci:{layout}:{t2}")]);
    let err = store.fails(&["inspect", &first.to_string()]);
    assert!(err.contains("ambiguous"), "{err}");

    // docker-archive: and oci-archive: sources, as written by skopeo from the same layout.
    let docker_tar = imgs.dir.path().join("skopeo-docker.tar");
    let oci_tar = imgs.dir.path().join("skopeo-oci.tar");
    let o = run(Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(format!("oci:{layout}:{t1}"))
        .arg(format!(
            "docker-archive:{}:example.com/from/skopeo:v1",
            docker_tar.display()
        )));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(format!("oci:{layout}:{t1}"))
        .arg(format!("oci-archive:{}:v1", oci_tar.display())));
    assert!(o.status.success(), "{}", stderr(&o));
    let fresh = Store::new();
    let id1 = fresh.ok(&["pull", &format!("docker-archive:{}", docker_tar.display())]);
    let id2 = fresh.ok(&["pull", &format!("oci-archive:{}:v1", oci_tar.display())]);
    assert_eq!(id1.trim(), id2.trim(), "same image ID from both archives");
    let names: Vec<String> = fresh
        .images_json()
        .iter()
        .filter_map(|i| i["Name"].as_str().map(String::from))
        .collect();
    assert!(
        names.contains(&"example.com/from/skopeo:v1".to_string()),
        "{names:?}"
    );
}

#[test]
fn image_built_by_umoci_pulls_with_its_diff_ids() {
    let reg = TestRegistry::plain();
    let imgs = Images::new();
    let layout = imgs.dir.path().join("umoci");
    let bundle = imgs.dir.path().join("bundle");
    let umoci = |args: &[&str]| {
        let o = run(Command::new("umoci").args(args));
        assert!(o.status.success(), "umoci {args:?}: {}", stderr(&o));
    };
    let l = layout.to_str().unwrap();
    let img_ref = format!("{l}:latest");
    umoci(&["init", "--layout", l]);
    umoci(&["new", "--image", &img_ref]);
    umoci(&["unpack", "--image", &img_ref, bundle.to_str().unwrap()]);
    integration::make_busybox_rootfs(&bundle.join("rootfs"));
    umoci(&["repack", "--image", &img_ref, bundle.to_str().unwrap()]);
    umoci(&["config", "--image", &img_ref, "--config.cmd", "/bin/sh"]);
    let pushed = reg.push(&layout, "latest", "umoci/busybox", "v1");

    let store = Store::new();
    let name = format!("{}/umoci/busybox:v1", reg.addr);
    store.ok(&["--plain-http", "pull", &name]);
    let info = store.inspect(&name);
    assert_eq!(info["Digest"], pushed.as_str());
    // The diff_id umoci wrote into its config is what we verified against and report.
    let cfg_digest = info["Id"].as_str().unwrap();
    let cfg: serde_json::Value = serde_json::from_slice(
        &std::fs::read(layout.join("blobs/sha256").join(&cfg_digest[7..])).unwrap(),
    )
    .unwrap();
    assert_eq!(info["Layers"][0]["DiffID"], cfg["rootfs"]["diff_ids"][0]);
    assert_eq!(info["Config"]["Cmd"][0], "/bin/sh");
}

#[test]
fn progress_bars_on_a_terminal_plain_lines_otherwise() {
    let reg = TestRegistry::plain();
    let imgs = Images::new();
    let img = push_basic(&reg, &imgs, "test/progress", "v1", "progress-1");
    let name = format!("{}/test/progress:v1", reg.addr);
    let short = &img.layer_digests[0][7..19];

    // Not a terminal: one plain line per blob on stderr.
    let store = Store::new();
    let o = store.run(&["--plain-http", "pull", &name]);
    assert!(o.status.success());
    assert!(
        stderr(&o).contains(&format!("Copying blob {short} done")),
        "{}",
        stderr(&o)
    );
    // --quiet: nothing but the ID.
    let store_q = Store::new();
    let o = store_q.run(&["--plain-http", "pull", "-q", &name]);
    assert!(
        o.status.success() && stderr(&o).is_empty(),
        "{}",
        stderr(&o)
    );

    // On a terminal (script(1) gives it a pty): indicatif bars with byte counts.
    let store_t = Store::new();
    let cmdline = format!(
        "{} --store {} --plain-http pull {name}",
        integration::shell_quote(&imgtool_bin()),
        store_t.path().display()
    );
    let o = run(Command::new("script")
        .args(["-qec", &cmdline, "/dev/null"])
        .env("HOME", store_t.path()));
    let out = stdout(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains(&format!("blob {short} [")), "no bar: {out:?}");
    assert!(
        !out.contains("Copying blob"),
        "plain lines on a tty: {out:?}"
    );
}

#[test]
fn a_long_pull_does_not_block_another_pull_and_gc_waits_for_it() {
    let reg = TestRegistry::plain();
    let imgs = Images::new();
    push_basic(&reg, &imgs, "test/slow", "v1", "slow-1");
    let fast = push_basic(&reg, &imgs, "test/fast", "v1", "fast-1");
    let proxy = FaultProxy::start(&reg.addr, Fault::Slow(300_000));
    let store = Store::new();
    let mut slow = store
        .cmd(&[
            "--plain-http",
            "pull",
            "-q",
            &format!("{}/test/slow:v1", proxy.addr),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while store.temp_files().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!store.temp_files().is_empty(), "slow pull never started");

    // Another pull records its image while the slow one still has the store open.
    let n = format!("{}/test/fast:v1", reg.addr);
    assert_eq!(
        store.ok(&["--plain-http", "pull", "-q", &n]).trim(),
        id_hex(&fast)
    );
    assert!(
        slow.try_wait().unwrap().is_none(),
        "slow pull ended too early for this test"
    );
    // Garbage collection (rmi) waits for it instead of deleting its blobs under it.
    store.ok(&["rmi", &n]);
    let st = slow.wait().unwrap();
    assert!(st.success(), "slow pull failed after a concurrent rmi");
    let names: Vec<String> = store
        .images_json()
        .iter()
        .filter_map(|i| i["Name"].as_str().map(String::from))
        .collect();
    assert_eq!(names, vec![format!("{}/test/slow:v1", proxy.addr)]);
    store.ok(&["inspect", &names[0]]);
}

/// A registry that accepts connections and never answers them (holding each one open).
fn silent_registry() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = vec![];
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    addr
}

#[test]
fn a_registry_that_never_answers_is_a_stall_error_naming_it_after_the_retries() {
    let addr = silent_registry();
    let store = Store::new();
    let name = format!("{addr}/test/silent:v1");
    let started = std::time::Instant::now();
    let err = store.fails(&[
        "--plain-http",
        "--timeout",
        "1",
        "--retry-times",
        "1",
        "pull",
        &name,
    ]);
    let took = started.elapsed();
    assert!(
        err.contains(&addr) && err.contains("manifest") && err.contains("sent nothing for 1 s"),
        "the error names the registry, what was fetched and the stall: {err}"
    );
    // One retry of a 1 s stall (the ping and the manifest each): seconds, not minutes.
    assert!(took < std::time::Duration::from_secs(20), "took {took:?}");
    assert!(store.images_json().is_empty());
    assert!(store.temp_files().is_empty());
}

#[test]
fn a_registry_that_stalls_mid_blob_is_retried_and_then_reported() {
    let reg = TestRegistry::plain();
    let imgs = Images::new();
    let img = push_basic(&reg, &imgs, "test/stall", "v1", "stall-1");
    // One stall: the retry resumes the layer and the pull completes.
    let proxy = FaultProxy::start(&reg.addr, Fault::StallMidBlob(1));
    let store = Store::new();
    let name = format!("{}/test/stall:v1", proxy.addr);
    let started = std::time::Instant::now();
    assert_eq!(
        store
            .ok(&["--plain-http", "--timeout", "1", "pull", "-q", &name])
            .trim(),
        id_hex(&img)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));

    // Stalls every time: a one-line error naming the registry, the layer and the stall, and
    // nothing half-made in the store.
    let proxy = FaultProxy::start(&reg.addr, Fault::StallMidBlob(usize::MAX));
    let store = Store::new();
    let name = format!("{}/test/stall:v1", proxy.addr);
    let err = store.fails(&[
        "--plain-http",
        "--timeout",
        "1",
        "--retry-times",
        "1",
        "pull",
        &name,
    ]);
    assert!(
        err.contains(&proxy.addr)
            && err.contains("fetch layer")
            && err.contains("sent nothing for 1 s"),
        "{err}"
    );
    assert!(store.images_json().is_empty());
    assert!(store.temp_files().is_empty());
}
