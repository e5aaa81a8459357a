//! Black-box tests of signature policy and sigstore signatures: imgtool's
//! `generate-sigstore-key`, `copy --sign-by-sigstore-private-key`, policy.json enforced at
//! pull, copy and unpack, and signatures kept in the store (through save, rmi, load and push),
//! against a real `docker-registry` with Debian's skopeo 1.9 on the other side.
//!
//! Debian builds skopeo 1.9 with sigstore signing and verification patched out ("Debian-local
//! change: sigstore disabled"): it reads and writes `sha256-<digest>.sig` attachments and
//! enforces every other part of policy.json, but cannot check a sigstore signature. So the
//! interop checks here are what that skopeo can do: it finds imgtool's signatures where it
//! looks for them, carries them in its own copies (which imgtool then verifies), refuses what
//! imgtool refuses, and agrees with imgtool on every scope decision.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use integration::registry::{digest_of, BuiltImage, Comp, Flavor, LayerSpec, Layout, TestRegistry};
use integration::{imgtool_bin, run, stderr, stdout};

/// A store, keys, policies and a registries.d in one temp dir; imgtool run on them with no
/// configuration from the machine.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("imgtool-trust-")
            .tempdir()
            .unwrap();
        let rd = dir.path().join("registries.d");
        std::fs::create_dir_all(&rd).unwrap();
        std::fs::write(
            rd.join("default.yaml"),
            "default-docker:\n  use-sigstore-attachments: true\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("pass"), "correct horse\n").unwrap();
        Env { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn p(&self, rel: &str) -> String {
        self.path(rel).display().to_string()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(imgtool_bin());
        c.arg("--store")
            .arg(self.path("store"))
            .arg("--registries.d")
            .arg(self.path("registries.d"))
            .args(args);
        c.env_remove("IMGTOOL_STORE");
        c.env("HOME", self.path("home"));
        c.env("TMPDIR", self.path(""));
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        run(&mut self.cmd(args))
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "imgtool {args:?} failed: {}{}",
            stdout(&o),
            stderr(&o)
        );
        stdout(&o)
    }

    /// Run and require exit 1 with one `imgtool: ` error line (progress lines aside).
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
        assert!(lines[0].starts_with("imgtool: "), "{err}");
        lines[0].to_string()
    }

    /// A key pair at `prefix` (.private/.pub) protected by the passphrase file.
    fn key(&self, prefix: &str) -> (String, String) {
        self.ok(&[
            "generate-sigstore-key",
            "--output-prefix",
            &self.p(prefix),
            "--passphrase-file",
            &self.p("pass"),
        ]);
        (
            self.p(&format!("{prefix}.private")),
            self.p(&format!("{prefix}.pub")),
        )
    }

    /// Write a policy file; returns its path.
    fn policy(&self, name: &str, json: &str) -> String {
        std::fs::write(self.path(name), json).unwrap();
        self.p(name)
    }

    /// Copy `src` to `dest` signed with `key`, plus `extra` flags.
    fn push_signed(&self, src: &str, dest: &str, key: &str, extra: &[&str]) {
        let mut args = vec![
            "copy",
            "-q",
            "--dest-tls-verify=false",
            "--sign-by-sigstore-private-key",
            key,
            "--sign-passphrase-file",
        ];
        let pass = self.p("pass");
        args.push(&pass);
        args.extend_from_slice(extra);
        args.push(src);
        args.push(dest);
        self.ok(&args);
    }

    /// Whether the store holds any blob.
    fn store_is_empty(&self) -> bool {
        std::fs::read_dir(self.path("store/blobs/sha256"))
            .map(|d| d.count() == 0)
            .unwrap_or(true)
    }
}

fn skopeo(env: &Env, policy: &str, args: &[&str]) -> Output {
    run(Command::new("skopeo")
        .arg("--policy")
        .arg(policy)
        .arg("--registries.d")
        .arg(env.path("registries.d"))
        .args(args))
}

/// A sigstoreSigned policy for every image, with `key` and `identity` (JSON).
fn sigstore_policy(key: &str, identity: &str) -> String {
    format!(
        r#"{{"default":[{{"type":"sigstoreSigned","keyPath":"{key}","signedIdentity":{identity}}}]}}"#
    )
}

const EXACT_OR_DIGEST: &str = r#"{"type":"matchRepoDigestOrExact"}"#;

fn image(dir: &Path, tag: &str) -> (Layout, BuiltImage) {
    let layout = Layout::create(dir);
    let img = layout.tagged_image(
        tag,
        Flavor::Oci,
        &[
            LayerSpec::busybox(Comp::Gzip),
            LayerSpec::files(Comp::Gzip, &[("etc/marker", tag.as_bytes())]),
        ],
        tag,
    );
    (layout, img)
}

fn oci(dir: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", dir.display())
}

/// The raw manifest at `reference` (docker://…), as skopeo reads it.
fn raw_manifest(reference: &str) -> serde_json::Value {
    let o = run(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", reference]));
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

fn sig_tag(digest: &str) -> String {
    format!("sha256-{}.sig", &digest["sha256:".len()..])
}

#[test]
fn an_image_signed_with_an_imgtool_key_is_accepted_and_its_signature_is_where_skopeo_finds_it() {
    let env = Env::new();
    let reg = TestRegistry::plain();
    let (layout, img) = image(&env.path("layout"), "v1");
    let (private, public) = env.key("k");
    let pem = std::fs::read_to_string(&private).unwrap();
    assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"));
    let name = format!("{}/signed/app:v1", reg.addr);
    env.push_signed(
        &oci(&layout.dir, "v1"),
        &format!("docker://{name}"),
        &private,
        &[],
    );

    // The attachment, as cosign and skopeo lay it out.
    let sig = raw_manifest(&format!(
        "docker://{}/signed/app:{}",
        reg.addr,
        sig_tag(&img.manifest_digest)
    ));
    let layer = &sig["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    assert!(layer["annotations"]["dev.cosignproject.cosign/signature"].is_string());

    let policy = env.policy("p.json", &sigstore_policy(&public, EXACT_OR_DIGEST));
    env.ok(&["--policy", &policy, "pull", "--tls-verify=false", &name]);
    assert!(!env.store_is_empty());

    // skopeo finds the signature (it would say "no signature exists" otherwise); Debian's
    // build then cannot verify it.
    let o = skopeo(
        &env,
        &policy,
        &[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{name}"),
            &oci(&env.path("sk"), "x"),
        ],
    );
    assert!(!o.status.success());
    assert!(
        !stderr(&o).contains("no signature exists"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn signatures_skopeo_carries_in_its_copy_verify_in_imgtool_at_the_new_name_only_when_remapped() {
    let env = Env::new();
    let reg = TestRegistry::plain();
    let (layout, _) = image(&env.path("layout"), "v1");
    let (private, public) = env.key("k");
    let origin = format!("{}/origin/app:v1", reg.addr);
    let mirror = format!("{}/mirror/app:v1", reg.addr);
    env.push_signed(
        &oci(&layout.dir, "v1"),
        &format!("docker://{origin}"),
        &private,
        &[],
    );
    let any = env.policy(
        "any.json",
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    );
    let o = skopeo(
        &env,
        &any,
        &[
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &format!("docker://{origin}"),
            &format!("docker://{mirror}"),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));

    let strict = env.policy("strict.json", &sigstore_policy(&public, EXACT_OR_DIGEST));
    let err = env.fails(&["--policy", &strict, "pull", "--tls-verify=false", &mirror]);
    assert!(
        err.contains("signedIdentity matchRepoDigestOrExact does not accept"),
        "{err}"
    );
    assert!(env.store_is_empty());
    let remap = env.policy(
        "remap.json",
        &sigstore_policy(
            &public,
            &format!(
                r#"{{"type":"remapIdentity","prefix":"{0}/mirror","signedPrefix":"{0}/origin"}}"#,
                reg.addr
            ),
        ),
    );
    env.ok(&["--policy", &remap, "pull", "--tls-verify=false", &mirror]);
}

#[test]
fn a_tampered_signature_a_wrong_key_another_identity_and_no_signature_are_each_refused_by_both() {
    let env = Env::new();
    let reg = TestRegistry::plain();
    let (layout, img) = image(&env.path("layout"), "v1");
    let (private, public) = env.key("k");
    let (_, other_public) = env.key("other");
    let src = oci(&layout.dir, "v1");
    let strict = env.policy("strict.json", &sigstore_policy(&public, EXACT_OR_DIGEST));
    let refused = |name: &str, why: &str| {
        let err = env.fails(&["--policy", &strict, "pull", "--tls-verify=false", name]);
        assert!(
            err.contains("rejected by policy") && err.contains("(default)") && err.contains(why),
            "{err}"
        );
        assert!(env.store_is_empty(), "nothing of a refused image is stored");
        let o = skopeo(
            &env,
            &strict,
            &[
                "copy",
                "--src-tls-verify=false",
                &format!("docker://{name}"),
                &oci(&env.path("sk"), "x"),
            ],
        );
        assert!(!o.status.success(), "skopeo accepted {name}");
        stderr(&o)
    };

    // Unsigned: both say why in the same words.
    let unsigned = format!("{}/unsigned/app:v1", reg.addr);
    env.ok(&[
        "copy",
        "-q",
        "--dest-tls-verify=false",
        &src,
        &format!("docker://{unsigned}"),
    ]);
    let sk = refused(&unsigned, "no signature exists");
    assert!(sk.contains("no signature exists"), "{sk}");

    // Signed under another name than the one pulled.
    let other_id = format!("{}/elsewhere/app:v1", reg.addr);
    let renamed = format!("{}/renamed/app:v1", reg.addr);
    env.push_signed(
        &src,
        &format!("docker://{renamed}"),
        &private,
        &["--sign-identity", &other_id],
    );
    refused(&renamed, "does not accept");
    let exact = env.policy(
        "exact.json",
        &sigstore_policy(
            &public,
            &format!(r#"{{"type":"exactReference","dockerReference":"{other_id}"}}"#),
        ),
    );
    env.ok(&["--policy", &exact, "pull", "--tls-verify=false", &renamed]);
    std::fs::remove_dir_all(env.path("store")).unwrap();

    // Signed, checked against another key.
    let signed = format!("{}/signed/app:v1", reg.addr);
    env.push_signed(&src, &format!("docker://{signed}"), &private, &[]);
    let wrong = env.policy(
        "wrong.json",
        &sigstore_policy(&other_public, EXACT_OR_DIGEST),
    );
    let err = env.fails(&["--policy", &wrong, "pull", "--tls-verify=false", &signed]);
    assert!(err.contains("verification failed"), "{err}");
    assert!(env.store_is_empty());

    // Tampered: the signature annotation of another payload put on this one.
    let tampered = format!("{}/tampered/app:v1", reg.addr);
    env.push_signed(&src, &format!("docker://{tampered}"), &private, &[]);
    let sig_ref = format!(
        "docker://{}/tampered/app:{}",
        reg.addr,
        sig_tag(&img.manifest_digest)
    );
    let from = raw_manifest(&format!(
        "docker://{}/signed/app:{}",
        reg.addr,
        sig_tag(&img.manifest_digest)
    ));
    let sig_dir = env.path("sigcopy");
    let o = skopeo(
        &env,
        &env.policy(
            "any.json",
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        ),
        &[
            "copy",
            "--src-tls-verify=false",
            &sig_ref,
            &oci(&sig_dir, "sig"),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let sig_layout = Layout {
        dir: sig_dir.clone(),
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sig_dir.join("index.json")).unwrap()).unwrap();
    let md = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(sig_dir.join("blobs/sha256").join(&md[7..])).unwrap(),
    )
    .unwrap();
    assert_ne!(
        m["layers"][0]["digest"], from["layers"][0]["digest"],
        "two payloads"
    );
    m["layers"][0]["annotations"] = from["layers"][0]["annotations"].clone();
    let raw = serde_json::to_vec(&m).unwrap();
    let d = sig_layout.put(&raw);
    sig_layout.tag(
        "bad",
        "application/vnd.oci.image.manifest.v1+json",
        &d,
        raw.len() as u64,
    );
    let o = skopeo(
        &env,
        &env.p("any.json"),
        &[
            "copy",
            "--dest-tls-verify=false",
            &oci(&sig_dir, "bad"),
            &sig_ref,
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    refused(&tampered, "cryptographic signature verification failed");

    // An unpack of a refused image makes no bundle.
    let bundle = env.path("bundle");
    let err = env.fails(&[
        "--policy",
        &strict,
        "unpack",
        "--tls-verify=false",
        &unsigned,
        bundle.to_str().unwrap(),
    ]);
    assert!(err.contains("no signature exists"), "{err}");
    assert!(!bundle.exists());
}

#[test]
fn the_most_specific_scope_decides_and_skopeo_decides_the_same() {
    let env = Env::new();
    let reg = TestRegistry::plain();
    let (layout, _) = image(&env.path("layout"), "v1");
    let src = oci(&layout.dir, "v1");
    for tag in ["good", "bad"] {
        env.ok(&[
            "--insecure-policy",
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &src,
            &format!("docker://{}/ok/app:{tag}", reg.addr),
        ]);
    }
    env.ok(&[
        "--insecure-policy",
        "copy",
        "-q",
        "--dest-tls-verify=false",
        &src,
        &format!("docker://{}/other/app:v1", reg.addr),
    ]);
    let policy = env.policy(
        "scopes.json",
        &format!(
            r#"{{"default":[{{"type":"reject"}}],
                "transports":{{"docker":{{
                    "{0}/ok":[{{"type":"insecureAcceptAnything"}}],
                    "{0}/ok/app:bad":[{{"type":"reject"}}]}}}}}}"#,
            reg.addr
        ),
    );
    for (name, accepted, scope) in [
        ("ok/app:good", true, ""),
        ("ok/app:bad", false, "/ok/app:bad\"]"),
        ("other/app:v1", false, "(default)"),
    ] {
        let full = format!("{}/{name}", reg.addr);
        let out = env.path(&format!("out-{}", name.replace(['/', ':'], "-")));
        let sk = skopeo(
            &env,
            &policy,
            &[
                "copy",
                "--src-tls-verify=false",
                &format!("docker://{full}"),
                &oci(&out, "x"),
            ],
        );
        assert_eq!(
            sk.status.success(),
            accepted,
            "skopeo on {name}: {}",
            stderr(&sk)
        );
        if accepted {
            env.ok(&[
                "--policy",
                &policy,
                "copy",
                "-q",
                "--src-tls-verify=false",
                &format!("docker://{full}"),
                &oci(&env.path("im"), name),
            ]);
        } else {
            let err = env.fails(&[
                "--policy",
                &policy,
                "copy",
                "--src-tls-verify=false",
                &format!("docker://{full}"),
                &oci(&env.path("im"), "x"),
            ]);
            assert!(
                err.contains(scope) && err.contains("rejects every image"),
                "{err}"
            );
        }
    }
    // A local layout is checked by its path.
    let dir_policy = env.policy(
        "dir.json",
        &format!(
            r#"{{"default":[{{"type":"insecureAcceptAnything"}}],"transports":{{"oci":{{"{}":[{{"type":"reject"}}]}}}}}}"#,
            layout.dir.display()
        ),
    );
    let out = env.path("from-layout");
    let err = env.fails(&["--policy", &dir_policy, "copy", &src, &oci(&out, "x")]);
    assert!(err.contains("transports.oci"), "{err}");
    assert!(!out.exists());
    let sk = skopeo(&env, &dir_policy, &["copy", &src, &oci(&out, "x")]);
    assert!(!sk.status.success());
}

#[test]
fn bad_policies_keys_and_passphrases_are_one_line_errors_and_nothing_is_pushed() {
    let env = Env::new();
    let reg = TestRegistry::plain();
    let (layout, _) = image(&env.path("layout"), "v1");
    let src = oci(&layout.dir, "v1");
    let (private, public) = env.key("k");

    let misspelt = env.policy(
        "bad.json",
        "{\n  \"default\": [\n    {\"type\": \"sigstoreSigned\", \"keyPth\": \"/k\"}]}\n",
    );
    let err = env.fails(&[
        "--policy",
        &misspelt,
        "copy",
        &src,
        &oci(&env.path("o"), "x"),
    ]);
    assert!(
        err.contains("bad.json") && err.contains("keyPth") && err.contains("line 3"),
        "{err}"
    );

    let err = env.fails(&["--policy", &misspelt, "--insecure-policy", "images"]);
    assert!(err.contains("--insecure-policy"), "{err}");

    std::fs::write(env.path("wrong-pass"), "battery staple\n").unwrap();
    let dest = format!("docker://{}/never/app:v1", reg.addr);
    let err = env.fails(&[
        "copy",
        "--dest-tls-verify=false",
        "--sign-by-sigstore-private-key",
        &private,
        "--sign-passphrase-file",
        &env.p("wrong-pass"),
        &src,
        &dest,
    ]);
    assert!(
        err.contains("wrong passphrase") && err.contains("k.private"),
        "{err}"
    );
    let err = env.fails(&[
        "copy",
        "--dest-tls-verify=false",
        "--sign-by-sigstore-private-key",
        &public,
        &src,
        &dest,
    ]);
    assert!(err.contains("\"PUBLIC KEY\""), "{err}");
    let pass = env.p("pass");
    let err = env.fails(&[
        "copy",
        "--sign-by-sigstore-private-key",
        &private,
        "--sign-passphrase-file",
        &pass,
        &src,
        &oci(&env.path("o"), "x"),
    ]);
    assert!(err.contains("docker:// destination"), "{err}");
    std::fs::write(
        env.path("registries.d/default.yaml"),
        "default-docker:\n  use-sigstore-attachments: false\n",
    )
    .unwrap();
    let err = env.fails(&[
        "copy",
        "--dest-tls-verify=false",
        "--sign-by-sigstore-private-key",
        &private,
        "--sign-passphrase-file",
        &pass,
        &src,
        &dest,
    ]);
    assert!(err.contains("use-sigstore-attachments"), "{err}");
    // A policy that wants signatures registries.d does not let imgtool read says so.
    let plain = format!("{}/plain/app:v1", reg.addr);
    env.ok(&[
        "--insecure-policy",
        "copy",
        "-q",
        "--dest-tls-verify=false",
        &src,
        &format!("docker://{plain}"),
    ]);
    let strict = env.policy("strict.json", &sigstore_policy(&public, EXACT_OR_DIGEST));
    let err = env.fails(&["--policy", &strict, "pull", "--tls-verify=false", &plain]);
    assert!(
        err.contains("no signature exists (registries.d does not set use-sigstore-attachments"),
        "{err}"
    );
    std::fs::write(
        env.path("registries.d/default.yaml"),
        "default-docker:\n  use-sigstore-attachmnts: true\n",
    )
    .unwrap();
    let err = env.fails(&[
        "copy",
        "--dest-tls-verify=false",
        "--sign-by-sigstore-private-key",
        &private,
        "--sign-passphrase-file",
        &pass,
        &src,
        &dest,
    ]);
    assert!(
        err.contains("default.yaml") && err.contains("line 2"),
        "{err}"
    );
    let o = run(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", &dest]));
    assert!(!o.status.success(), "no manifest was pushed");
    assert!(!env.path("o").exists());

    let err = env.fails(&["generate-sigstore-key", "--output-prefix", &env.p("k")]);
    assert!(err.contains("already exists"), "{err}");
    let leftovers: Vec<_> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".imgtool") || n.starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A throwaway GnuPG home with one signing key; its gpg-agent is stopped on drop.
struct GpgHome {
    dir: tempfile::TempDir,
    fingerprint: String,
}

impl GpgHome {
    fn new(name: &str) -> GpgHome {
        let dir = tempfile::Builder::new()
            .prefix("imgtool-gpg-")
            .tempdir()
            .unwrap();
        let gpg = |args: &[&str]| {
            let o = run(Command::new("gpg")
                .arg("--homedir")
                .arg(dir.path())
                .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
                .args(args));
            assert!(o.status.success(), "gpg {args:?}: {}", stderr(&o));
            stdout(&o)
        };
        gpg(&[
            "--quick-gen-key",
            &format!("{name} <{name}@example.com>"),
            "ed25519",
            "sign",
            "never",
        ]);
        let listing = gpg(&["--list-keys", "--with-colons"]);
        let fingerprint = listing
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .and_then(|l| l.trim_matches(':').split(':').next_back())
            .unwrap()
            .to_string();
        let armored = gpg(&["--export", "--armor", &fingerprint]);
        std::fs::write(dir.path().join("public.asc"), armored).unwrap();
        GpgHome { dir, fingerprint }
    }

    fn public(&self) -> String {
        self.dir.path().join("public.asc").display().to_string()
    }
}

impl Drop for GpgHome {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.dir.path())
            .args(["--kill", "all"])
            .status();
    }
}

#[test]
fn a_gpg_signature_skopeo_made_is_verified_by_imgtool_and_refused_by_both_when_wrong() {
    let env = Env::new();
    let reg = TestRegistry::plain();
    let (layout, img) = image(&env.path("layout"), "v1");
    let signer = GpgHome::new("signer");
    let stranger = GpgHome::new("stranger");
    let look = env.path("lookaside");
    std::fs::write(
        env.path("registries.d/default.yaml"),
        format!("default-docker:\n  lookaside: file://{}\n", look.display()),
    )
    .unwrap();
    let any = env.policy(
        "any.json",
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    );
    let src = oci(&layout.dir, "v1");
    let signed = format!("{}/gpg/app:v1", reg.addr);
    let o = run(Command::new("skopeo")
        .env("GNUPGHOME", signer.dir.path())
        .args(["--policy", &any, "--registries.d", &env.p("registries.d")])
        .args([
            "copy",
            "-q",
            "--dest-tls-verify=false",
            "--sign-by",
            &signer.fingerprint,
            &src,
            &format!("docker://{signed}"),
        ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let sig_dir = look.join(format!("gpg/app@sha256={}", &img.manifest_digest[7..]));
    assert!(sig_dir.join("signature-1").exists());

    let signed_by = |key: &str, identity: &str| {
        format!(
            r#"{{"default":[{{"type":"signedBy","keyType":"GPGKeys","keyPath":"{key}","signedIdentity":{identity}}}]}}"#
        )
    };
    let good = env.policy("gpg.json", &signed_by(&signer.public(), EXACT_OR_DIGEST));
    let wrong = env.policy(
        "gpg-wrong.json",
        &signed_by(&stranger.public(), EXACT_OR_DIGEST),
    );
    let both = |policy: &str, name: &str| -> (bool, String, String) {
        let im = env.run(&["--policy", policy, "pull", "--tls-verify=false", name]);
        // An oci: layout cannot hold simple signatures: skopeo is told to leave them.
        let sk = skopeo(
            &env,
            policy,
            &[
                "copy",
                "--remove-signatures",
                "--src-tls-verify=false",
                &format!("docker://{name}"),
                &oci(&env.path("sk"), "x"),
            ],
        );
        assert_eq!(
            im.status.success(),
            sk.status.success(),
            "imgtool and skopeo disagree on {name} under {policy}: {} / {}",
            stderr(&im),
            stderr(&sk)
        );
        (im.status.success(), stderr(&im), stderr(&sk))
    };

    let (ok, err, _) = both(&good, &signed);
    assert!(ok, "{err}");
    std::fs::remove_dir_all(env.path("store")).unwrap();

    let (ok, err, _) = both(&wrong, &signed);
    assert!(!ok && err.contains("does not trust"), "{err}");
    assert!(env.store_is_empty());

    // The same image under another name: the signature names gpg/app.
    let other = format!("{}/gpg/other:v1", reg.addr);
    env.ok(&[
        "--insecure-policy",
        "copy",
        "-q",
        "--dest-tls-verify=false",
        &src,
        &format!("docker://{other}"),
    ]);
    let other_dir = look.join(format!("gpg/other@sha256={}", &img.manifest_digest[7..]));
    std::fs::create_dir_all(&other_dir).unwrap();
    std::fs::copy(sig_dir.join("signature-1"), other_dir.join("signature-1")).unwrap();
    let (ok, err, _) = both(&good, &other);
    assert!(!ok && err.contains("does not accept"), "{err}");

    // Tampered: one byte of the signed message changed.
    let mut bytes = std::fs::read(sig_dir.join("signature-1")).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x20;
    std::fs::write(sig_dir.join("signature-1"), &bytes).unwrap();
    let (ok, err, _) = both(&good, &signed);
    assert!(!ok && err.contains("rejected by policy"), "{err}");

    // Unsigned.
    std::fs::remove_dir_all(&look).unwrap();
    let (ok, err, sk) = both(&good, &signed);
    assert!(
        !ok && err.contains("no signature exists") && sk.contains("no signature exists"),
        "{err} / {sk}"
    );
    assert!(env.store_is_empty());
}

#[test]
fn a_gpg_signature_imgtool_made_is_verified_by_skopeo_and_by_imgtool() {
    let env = Env::new();
    let reg = TestRegistry::plain();
    let (layout, img) = image(&env.path("layout"), "v1");
    let signer = GpgHome::new("signer");
    let stranger = GpgHome::new("stranger");
    let look = env.path("lookaside");
    std::fs::write(
        env.path("registries.d/default.yaml"),
        format!("default-docker:\n  lookaside: file://{}\n", look.display()),
    )
    .unwrap();
    let signed = format!("{}/imgtool-gpg/app:v1", reg.addr);
    let o = run(env
        .cmd(&[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            "--sign-by",
            &signer.fingerprint,
            &oci(&layout.dir, "v1"),
            &format!("docker://{signed}"),
        ])
        .env("GNUPGHOME", signer.dir.path()));
    assert!(o.status.success(), "{}", stderr(&o));
    let sig = look.join(format!(
        "imgtool-gpg/app@sha256={}/signature-1",
        &img.manifest_digest[7..]
    ));
    assert!(sig.exists());

    for (key, accepted) in [(signer.public(), true), (stranger.public(), false)] {
        let policy = env.policy(
            "gpg.json",
            &format!(
                r#"{{"default":[{{"type":"signedBy","keyType":"GPGKeys","keyPath":"{key}"}}]}}"#
            ),
        );
        let sk = skopeo(
            &env,
            &policy,
            &[
                "copy",
                "--remove-signatures",
                "--src-tls-verify=false",
                &format!("docker://{signed}"),
                &oci(&env.path("sk"), "x"),
            ],
        );
        assert_eq!(sk.status.success(), accepted, "skopeo: {}", stderr(&sk));
        let im = env.run(&["--policy", &policy, "pull", "--tls-verify=false", &signed]);
        assert_eq!(im.status.success(), accepted, "imgtool: {}", stderr(&im));
    }

    // No lookaside to write to: refused before anything is pushed.
    std::fs::write(env.path("registries.d/default.yaml"), "").unwrap();
    let never = format!("docker://{}/never/app:v1", reg.addr);
    let err = env.fails(&[
        "copy",
        "--dest-tls-verify=false",
        "--sign-by",
        &signer.fingerprint,
        &oci(&layout.dir, "v1"),
        &never,
    ]);
    assert!(
        err.contains("--sign-by") && err.contains("lookaside"),
        "{err}"
    );
    assert!(
        !run(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", &never]))
            .status
            .success()
    );
}

#[test]
fn sigstore_signatures_travel_through_an_oci_archive_and_back_to_a_registry() {
    let env = Env::new();
    let reg = TestRegistry::plain();
    let (layout, img) = image(&env.path("layout"), "v1");
    let (private, public) = env.key("k");
    let origin = format!("{}/origin/app:v1", reg.addr);
    env.push_signed(
        &oci(&layout.dir, "v1"),
        &format!("docker://{origin}"),
        &private,
        &[],
    );
    let exact = env.policy(
        "exact.json",
        &sigstore_policy(
            &public,
            &format!(r#"{{"type":"exactReference","dockerReference":"{origin}"}}"#),
        ),
    );

    let archive = env.path("signed.tar");
    let archive_ref = format!("oci-archive:{}:v1", archive.display());
    env.ok(&[
        "--policy",
        &exact,
        "copy",
        "-q",
        "--src-tls-verify=false",
        &format!("docker://{origin}"),
        &archive_ref,
    ]);
    // The archive's own policy scope is checked with the signatures it carries: an import
    // and a copy out of it are accepted, with the signature's original name.
    env.ok(&["--policy", &exact, "pull", &archive_ref]);
    // load takes the image and leaves the signatures entry aside (it is no image).
    let loaded = env.ok(&[
        "--policy",
        &exact,
        "load",
        "-q",
        "-i",
        archive.to_str().unwrap(),
    ]);
    assert!(!loaded.contains(".sig"), "{loaded}");
    let back = format!("{}/back/app:v1", reg.addr);
    env.ok(&[
        "--policy",
        &exact,
        "copy",
        "-q",
        "--dest-tls-verify=false",
        &archive_ref,
        &format!("docker://{back}"),
    ]);
    let sig = raw_manifest(&format!(
        "docker://{}/back/app:{}",
        reg.addr,
        sig_tag(&img.manifest_digest)
    ));
    assert_eq!(sig["layers"].as_array().unwrap().len(), 1);
    env.ok(&["--policy", &exact, "pull", "--tls-verify=false", &back]);

    // --remove-signatures leaves them behind, and then the policy refuses the copy.
    let bare = env.path("bare.tar");
    let bare_ref = format!("oci-archive:{}:v1", bare.display());
    env.ok(&[
        "--policy",
        &exact,
        "copy",
        "-q",
        "--remove-signatures",
        "--src-tls-verify=false",
        &format!("docker://{origin}"),
        &bare_ref,
    ]);
    let err = env.fails(&[
        "--policy",
        &exact,
        "copy",
        &bare_ref,
        &oci(&env.path("o"), "x"),
    ]);
    assert!(err.contains("no signature exists"), "{err}");
}

/// The store's `index.json` entries as (name, digest).
fn store_entries(store: &Path) -> Vec<(String, String)> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let name = e["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap_or("")
                .to_string();
            (name, e["digest"].as_str().unwrap().to_string())
        })
        .collect()
}

/// What `imgtool fsck` checks of the blobs, by hand: every blob hashes to its name, every
/// digest reachable from `index.json` (manifests, configs, layers) is present, and nothing
/// else is (no orphan).
fn assert_store_is_whole(store: &Path) {
    let blobs = store.join("blobs/sha256");
    let mut present = std::collections::BTreeSet::new();
    for e in std::fs::read_dir(&blobs).unwrap() {
        let e = e.unwrap();
        let name = format!("sha256:{}", e.file_name().to_string_lossy());
        assert_eq!(
            digest_of(&std::fs::read(e.path()).unwrap()),
            name,
            "corrupt blob"
        );
        present.insert(name);
    }
    let mut reached = std::collections::BTreeSet::new();
    let mut todo: Vec<String> = store_entries(store).into_iter().map(|(_, d)| d).collect();
    while let Some(d) = todo.pop() {
        if !reached.insert(d.clone()) {
            continue;
        }
        assert!(present.contains(&d), "missing manifest {d}");
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(blobs.join(&d["sha256:".len()..])).unwrap())
                .unwrap();
        todo.extend(
            v["manifests"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| m["digest"].as_str().unwrap().to_string()),
        );
        for b in std::iter::once(&v["config"]).chain(v["layers"].as_array().into_iter().flatten()) {
            if let Some(bd) = b["digest"].as_str() {
                assert!(present.contains(bd), "missing blob {bd} of {d}");
                reached.insert(bd.to_string());
            }
        }
    }
    let orphans: Vec<_> = present.difference(&reached).collect();
    assert!(orphans.is_empty(), "orphan blobs: {orphans:?}");
}

/// Push a signed image to `reg` as `origin/app:v1`; returns (its name, its manifest digest,
/// a policy requiring the signature under that name).
fn signed_origin(env: &Env, reg: &TestRegistry) -> (String, String, String) {
    let (layout, img) = image(&env.path("layout"), "v1");
    let (private, public) = env.key("k");
    let origin = format!("{}/origin/app:v1", reg.addr);
    env.push_signed(
        &oci(&layout.dir, "v1"),
        &format!("docker://{origin}"),
        &private,
        &[],
    );
    let exact = env.policy(
        "exact.json",
        &sigstore_policy(
            &public,
            &format!(r#"{{"type":"exactReference","dockerReference":"{origin}"}}"#),
        ),
    );
    (origin, img.manifest_digest, exact)
}

#[test]
fn signatures_kept_in_the_store_survive_save_rmi_load_and_a_push_to_another_registry() {
    let env = Env::new();
    let reg = TestRegistry::plain();
    let other = TestRegistry::plain();
    let (origin, digest, exact) = signed_origin(&env, &reg);
    env.ok(&[
        "--policy",
        &exact,
        "pull",
        "-q",
        "--tls-verify=false",
        &origin,
    ]);
    let kept = store_entries(&env.path("store"));
    assert!(
        kept.iter().any(|(n, _)| *n == sig_tag(&digest)),
        "the pull keeps the signatures: {kept:?}"
    );

    // save → rmi → load: the archive carries them, and its own scope of the same policy
    // accepts the load only because it does (without them it has no signature).
    let archive = env.path("saved.tar");
    env.ok(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        archive.to_str().unwrap(),
        &origin,
    ]);
    env.ok(&["rmi", &origin]);
    assert!(env.store_is_empty(), "rmi leaves no signature blobs behind");
    let loaded = env.ok(&[
        "--policy",
        &exact,
        "load",
        "-q",
        "-i",
        archive.to_str().unwrap(),
    ]);
    assert!(loaded.contains(&origin), "{loaded}");
    assert!(!loaded.contains(".sig"), "{loaded}");
    assert!(!env.ok(&["images"]).contains(".sig"));

    // copy from the store into an oci-archive keeps them too: a copy out of that archive
    // passes the archive's scope of the policy.
    let copied = format!("oci-archive:{}:v1", env.p("copied.tar"));
    env.ok(&["--policy", &exact, "copy", "-q", &origin, &copied]);
    env.ok(&[
        "--policy",
        &exact,
        "copy",
        "-q",
        &copied,
        &oci(&env.path("o"), "v1"),
    ]);

    // push from the store to another registry: the signatures go along, and a verifier with
    // the same policy accepts the image there.
    let second = format!("{}/second/app:v1", other.addr);
    env.ok(&[
        "--policy",
        &exact,
        "push",
        "-q",
        "--dest-tls-verify=false",
        &origin,
        &format!("docker://{second}"),
    ]);
    let sig = raw_manifest(&format!(
        "docker://{}/second/app:{}",
        other.addr,
        sig_tag(&digest)
    ));
    assert_eq!(sig["layers"].as_array().unwrap().len(), 1);
    env.ok(&["rmi", &origin]);
    env.ok(&[
        "--policy",
        &exact,
        "pull",
        "-q",
        "--tls-verify=false",
        &second,
    ]);

    // The same push without the store's signatures: the verifier refuses the image.
    let bare = format!("{}/bare/app:v1", other.addr);
    env.ok(&[
        "push",
        "-q",
        "--remove-signatures",
        "--dest-tls-verify=false",
        &second,
        &format!("docker://{bare}"),
    ]);
    let err = env.fails(&[
        "--policy",
        &exact,
        "pull",
        "-q",
        "--tls-verify=false",
        &bare,
    ]);
    assert!(err.contains("no signature exists"), "{err}");
}

#[test]
fn a_store_with_signatures_is_whole_and_rmi_of_the_last_name_removes_them() {
    let env = Env::new();
    let reg = TestRegistry::plain();
    let (origin, digest, exact) = signed_origin(&env, &reg);
    env.ok(&[
        "--policy",
        &exact,
        "pull",
        "-q",
        "--tls-verify=false",
        &origin,
    ]);
    let store = env.path("store");
    let names: Vec<String> = store_entries(&store).into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&sig_tag(&digest)), "{names:?}");
    assert_store_is_whole(&store);
    // `images` lists the image, not the signatures beside it.
    let listed = env.ok(&["images"]);
    assert_eq!(listed.lines().count(), 2, "{listed}");

    // A damaged signature blob: save and push each fail with one line, before writing
    // anything (no archive, no manifest in the registry).
    let (_, sig_manifest) = store_entries(&store)
        .into_iter()
        .find(|(n, _)| *n == sig_tag(&digest))
        .unwrap();
    let blob = |d: &str| store.join("blobs/sha256").join(&d["sha256:".len()..]);
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(&sig_manifest)).unwrap()).unwrap();
    let payload = blob(m["layers"][0]["digest"].as_str().unwrap());
    let good = std::fs::read(&payload).unwrap();
    std::fs::write(&payload, b"{}").unwrap();
    let archive = env.path("damaged.tar");
    let err = env.fails(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        archive.to_str().unwrap(),
        &origin,
    ]);
    assert!(
        err.contains(payload.to_str().unwrap()),
        "names the file: {err}"
    );
    assert!(!archive.exists());
    let leftovers: Vec<_> = std::fs::read_dir(env.path(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".imgtool-save"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let dest = format!("docker://{}/damaged/app:v1", reg.addr);
    let err = env.fails(&["push", "-q", "--dest-tls-verify=false", &origin, &dest]);
    assert!(err.contains("signature payload"), "{err}");
    let o = run(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", &dest]));
    assert!(!o.status.success(), "nothing was pushed");
    std::fs::write(&payload, good).unwrap();

    // A second name keeps the signatures; removing the last removes them, blobs and all.
    let alias = format!("{}/alias/app:v1", reg.addr);
    env.ok(&["tag", &origin, &alias]);
    env.ok(&["rmi", &origin]);
    assert!(store_entries(&store)
        .iter()
        .any(|(n, _)| *n == sig_tag(&digest)));
    assert_store_is_whole(&store);
    env.ok(&["rmi", &alias]);
    assert!(
        store_entries(&store).is_empty(),
        "{:?}",
        store_entries(&store)
    );
    assert!(env.store_is_empty());
}
