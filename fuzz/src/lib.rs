//! The fuzz targets: one function per target, taking the fuzzer's bytes. Each must return for
//! every input (a panic is a crash) and asserts what must hold whatever the input: an error is
//! one line (naming the file where there is one); what is accepted survives a round trip; a layer
//! never creates anything outside the root it is applied to.
//!
//! `make fuzz` runs the afl wrappers in src/bin/ (cargo-afl, stable toolchain); the tests below
//! replay the checked-in corpus and crash reproducers through the same functions on every
//! `cargo test`.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use oci_spec::runtime::{LinuxNamespaceType, LinuxSeccomp};

/// Every target, by the name of its binary and corpus directory.
pub const TARGETS: &[&str] = &[
    "config",
    "seccomp",
    "reference",
    "manifest",
    "auth",
    "layer",
];

fn one_line(what: &str, e: impl std::fmt::Display) -> String {
    let msg = e.to_string();
    assert!(
        !msg.trim_end().contains('\n'),
        "{what}: the error is not one line: {msg:?}"
    );
    msg
}

/// A machine on which every path is a directory and we are root: validation gets as far as the
/// rules go.
struct AnyHost;

impl gruntime::container::config::Host for AnyHost {
    fn dir_kind(&self, p: &Path) -> Option<bool> {
        Some(!p.as_os_str().is_empty())
    }
    fn is_root(&self) -> bool {
        true
    }
    fn check_namespace_path(&self, _t: LinuxNamespaceType, p: &Path) -> Result<(), String> {
        if p.starts_with("/proc") {
            Ok(())
        } else {
            Err("not a namespace file".into())
        }
    }
}

/// gruntime's config.json: parsing and every check `create` makes before it makes anything
/// (the rules, the cgroup values, the seccomp profile).
pub fn config(data: &[u8]) {
    let cfg = Path::new("/bundle/config.json");
    match gruntime::container::config::check(&AnyHost, cfg, Path::new("/bundle"), data) {
        Err(e) => {
            let msg = one_line("config", e);
            assert!(
                msg.contains("/bundle/config.json"),
                "config: the error does not name the file: {msg}"
            );
        }
        Ok((spec, rootfs)) => {
            assert!(rootfs.is_absolute(), "config: rootfs {rootfs:?}");
            if let Err(e) = gruntime::cgroups::check_resources(&spec) {
                one_line("config: linux.resources", e);
            }
            let _ = gruntime::namespaces::plan(&spec);
            if let Some(s) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
                if let Err(e) = gruntime::seccomp::compile(s) {
                    one_line("config: linux.seccomp", e);
                }
            }
        }
    }
}

/// gruntime's seccomp compiler: a `linux.seccomp` object to BPF.
pub fn seccomp(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let whole = serde_json::json!({ "linux": { "seccomp": v.clone() } });
    if let Err(e) = gruntime::seccomp::validate_raw(&whole) {
        one_line("seccomp: validate", e);
        return;
    }
    let Ok(s) = serde_json::from_value::<LinuxSeccomp>(v) else {
        return;
    };
    match gruntime::seccomp::compile(&s) {
        Ok(p) => assert!(!p.is_empty(), "seccomp: an empty program"),
        Err(e) => {
            one_line("seccomp: compile", e);
        }
    }
}

/// imgtool's image references and sources (`docker://`, `oci:`, archives): what parses prints
/// back to a reference that parses to the same.
pub fn reference(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match imgtool::reference::parse_reference(s) {
        Err(e) => {
            one_line("reference", e);
        }
        Ok(r) => {
            let _ = imgtool::reference::store_name(&r);
            let printed = r.to_string();
            match imgtool::reference::parse_reference(&printed) {
                Ok(again) => assert_eq!(
                    again.to_string(),
                    printed,
                    "reference: {s:?} prints as {printed:?}, which parses differently"
                ),
                Err(e) => panic!("reference: {s:?} prints as {printed:?}, which fails: {e}"),
            }
        }
    }
    if let Err(e) = imgtool::reference::Source::parse(s) {
        one_line("source", e);
    }
}

fn empty_rootfs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("empty-rootfs")
}

/// imgtool's manifests, indexes and image configs: the media type, the platform choice, and the
/// runtime config made from an image config, which gruntime must read back.
pub fn manifest(data: &[u8]) {
    let _ = imgtool::manifest::manifest_media_type(data);
    let _ = serde_json::from_slice::<ImageManifest>(data);
    if let Ok(index) = serde_json::from_slice::<ImageIndex>(data) {
        for (os, arch, variant) in [("linux", "amd64", ""), ("linux", "arm64", "v8")] {
            let want = imgtool::context::Platform {
                os: os.into(),
                architecture: arch.into(),
                variant: variant.into(),
            };
            if let Err(e) = imgtool::manifest::choose_platform(&index, &want) {
                one_line("manifest: choose_platform", e);
            }
        }
    }
    if let Ok(image) = serde_json::from_slice::<ImageConfiguration>(data) {
        let opts = imgtool::bundle::ConfigOptions::default();
        match imgtool::bundle::make_spec(&image, &empty_rootfs(), &opts) {
            Err(e) => {
                one_line("manifest: make_spec", e);
            }
            Ok(spec) => {
                let raw = serde_json::to_vec(&spec).expect("a spec serialises");
                if let Err(e) =
                    gruntime::container::config::parse(Path::new("/bundle/config.json"), &raw)
                {
                    panic!("manifest: gruntime cannot read the config imgtool made: {e}");
                }
            }
        }
    }
}

/// imgtool's auth files: the `auths` map and the lookup of a registry's entry in it.
pub fn auth(data: &[u8]) {
    let path = Path::new("/auth.json");
    let auths = match imgtool::auth::parse_auth_file(path, data) {
        Ok(a) => a,
        Err(e) => {
            one_line("auth", e);
            return;
        }
    };
    let mut registries: Vec<String> = auths.keys().cloned().collect();
    registries.extend(["docker.io".to_string(), "localhost:5000".to_string()]);
    for registry in &registries {
        let (host, repo) = registry.split_once('/').unwrap_or((registry, "library/x"));
        if let Err(e) = imgtool::auth::lookup(path, &auths, host, repo) {
            let msg = one_line("auth: lookup", e);
            assert!(
                msg.contains("/auth.json"),
                "auth: the error does not name the file: {msg}"
            );
        }
    }
}

/// imgtool's layer application: a tar stream (uncompressed) applied into `jail/work`, in copy
/// mode or as an overlay lower layer (the first byte chooses). Nothing may appear in `jail` but
/// `work` (and the `proc` the fuzz binary mounts there for xattrs).
pub fn layer(jail: &Path, data: &[u8]) {
    use imgtool::unpack::apply::{ApplyOptions, WhiteoutMode};
    let Some((&mode, tar)) = data.split_first() else {
        return;
    };
    let root = jail.join("work");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir(&root).expect("make the work dir");
    let opts = ApplyOptions {
        rootless: mode & 2 != 0,
        whiteouts: if mode & 1 == 0 {
            WhiteoutMode::Apply
        } else {
            WhiteoutMode::Overlay
        },
    };
    match imgtool::unpack::apply::Applier::new(&root, opts) {
        Err(e) => panic!("layer: cannot open the work dir: {e}"),
        Ok(mut applier) => {
            let r = applier
                .apply_layer("fuzz", Cursor::new(tar))
                .and_then(|()| applier.finish());
            if let Err(e) = r {
                one_line("layer", e);
            }
        }
    }
    let outside: Vec<String> = std::fs::read_dir(jail)
        .expect("read the jail")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "work" && n != "proc")
        .collect();
    assert!(
        outside.is_empty(),
        "layer: created outside the root: {outside:?}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of `fuzz/<dir>/<target>/`.
    fn inputs(dir: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
        let d = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir).join(target);
        let Ok(rd) = std::fs::read_dir(&d) else {
            return Vec::new();
        };
        let mut v: Vec<(PathBuf, Vec<u8>)> = rd
            .flatten()
            .filter(|e| e.file_name() != "README")
            .map(|e| (e.path(), std::fs::read(e.path()).expect("read input")))
            .collect();
        v.sort();
        v
    }

    fn replay(target: &str, dir: &str) -> usize {
        let jail = tempfile::tempdir().expect("temp dir");
        let all = inputs(dir, target);
        for (path, data) in &all {
            eprintln!("{target}: {}", path.display());
            match target {
                "config" => config(data),
                "seccomp" => seccomp(data),
                "reference" => reference(data),
                "manifest" => manifest(data),
                "auth" => auth(data),
                "layer" => layer(jail.path(), data),
                t => panic!("unknown target {t}"),
            }
        }
        all.len()
    }

    #[test]
    fn every_target_has_a_seed_corpus_that_it_runs_through() {
        for t in TARGETS {
            assert!(replay(t, "corpus") > 0, "{t}: no seeds in fuzz/corpus/{t}");
        }
    }

    #[test]
    fn every_crash_the_fuzzers_found_is_fixed() {
        for t in TARGETS {
            replay(t, "crashes");
        }
    }
}
