//! Load `<bundle>/config.json` and refuse what cannot be run, before anything is made on the host.
//! Every error names the file and the field. The rules ask the machine only through `Host` (is the rootfs a
//! directory, are we root, is a namespace path of the right type), so they are unit-tested without root.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};

/// What validation asks of the machine.
pub trait Host {
    /// Some(true): a directory; Some(false): something else; None: nothing there.
    fn dir_kind(&self, p: &Path) -> Option<bool>;
    fn is_root(&self) -> bool;
    /// `linux.namespaces[].path` names a namespace of type `t`.
    fn check_namespace_path(
        &self,
        t: LinuxNamespaceType,
        p: &Path,
    ) -> std::result::Result<(), String>;
}

/// The running machine.
pub struct Machine;

impl Host for Machine {
    fn dir_kind(&self, p: &Path) -> Option<bool> {
        std::fs::metadata(p).ok().map(|m| m.is_dir())
    }
    fn is_root(&self) -> bool {
        nix::unistd::geteuid().is_root()
    }
    fn check_namespace_path(
        &self,
        t: LinuxNamespaceType,
        p: &Path,
    ) -> std::result::Result<(), String> {
        crate::namespaces::check_path(t, p)
    }
}

pub struct Bundle {
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub raw: Vec<u8>,
    pub spec: Spec,
    pub rootfs: PathBuf,
}

pub fn load(bundle: &Path) -> Result<Bundle> {
    let dir = std::fs::canonicalize(bundle).map_err(|e| Error::ReadConfig {
        path: bundle.to_path_buf(),
        source: e,
    })?;
    let config_path = dir.join("config.json");
    let raw = std::fs::read(&config_path).map_err(|e| Error::ReadConfig {
        path: config_path.clone(),
        source: e,
    })?;
    let (spec, rootfs) = check(&Machine, &config_path, &dir, &raw)?;
    Ok(Bundle {
        dir,
        config_path,
        raw,
        spec,
        rootfs,
    })
}

/// Everything `load` checks of config.json's bytes, asking the machine only through `host`: the
/// seccomp section on the raw JSON, the types, the rules. Returns the spec and the absolute rootfs.
/// (The `config` fuzz target calls it with a made-up host.)
pub fn check(
    host: &impl Host,
    config_path: &Path,
    bundle: &Path,
    raw: &[u8],
) -> Result<(Spec, PathBuf)> {
    // The seccomp section is checked on the raw JSON first, so a bad value is named by its path
    // ("linux.seccomp.syscalls[1].action: ...") rather than by serde's line and column.
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(raw) {
        crate::seccomp::validate_raw(&v).map_err(|e| Error::config(config_path, e.to_string()))?;
    }
    let spec = parse(config_path, raw)?;
    let rootfs = validate(host, config_path, bundle, &spec)?;
    Ok((spec, rootfs))
}

/// Parse config.json; a type error names the field's path (e.g. `process.rlimits[0].type`).
pub fn parse(config_path: &Path, raw: &[u8]) -> Result<Spec> {
    let mut value: serde_json::Value = serde_json::from_slice(raw)
        .map_err(|e| Error::config(config_path, format!("invalid config: {e}")))?;
    crate::process::scheduler::normalize_flag_names(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        Error::config(
            config_path,
            format!("invalid config: {}: {}", e.path(), e.inner()),
        )
    })
}

/// Parse an `exec --process` file with the same field paths and the same checks as config.json's process.
pub fn parse_process(path: &Path, raw: &[u8]) -> Result<oci_spec::runtime::Process> {
    let mut value: serde_json::Value = serde_json::from_slice(raw)
        .map_err(|e| Error::config(path, format!("invalid process: {e}")))?;
    let mut wrapped = serde_json::json!({ "process": value.take() });
    crate::process::scheduler::normalize_flag_names(&mut wrapped);
    let process: oci_spec::runtime::Process =
        serde_path_to_error::deserialize(wrapped["process"].take()).map_err(|e| {
            Error::config(
                path,
                format!("invalid process: {}: {}", e.path(), e.inner()),
            )
        })?;
    for check in [
        crate::process::ioprio::check,
        crate::process::scheduler::check,
        crate::process::affinity::check,
    ] {
        check(&process).map_err(|r| Error::config(path, r))?;
    }
    Ok(process)
}

fn ns_types(spec: &Spec) -> Vec<LinuxNamespaceType> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .map(|v| v.iter().map(|n| n.typ()).collect())
        .unwrap_or_default()
}

/// Returns the absolute rootfs path.
fn validate(host: &impl Host, cfg: &Path, bundle: &Path, spec: &Spec) -> Result<PathBuf> {
    let bad = |reason: String| Error::config(cfg, reason);
    let version = spec.version();
    if version.split('.').next() != Some("1") {
        return Err(bad(format!(
            "ociVersion {version:?}: unsupported major version (gruntime runs 1.x.y)"
        )));
    }
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| bad("root: missing".into()))?;
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        bundle.join(root.path())
    };
    match host.dir_kind(&rootfs) {
        Some(true) => {}
        Some(false) => {
            return Err(bad(format!(
                "root.path {}: not a directory",
                rootfs.display()
            )))
        }
        None => {
            return Err(bad(format!(
                "root.path {}: does not exist",
                rootfs.display()
            )))
        }
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| bad("process: missing".into()))?;
    if process
        .args()
        .as_ref()
        .map(|a| a.is_empty())
        .unwrap_or(true)
    {
        return Err(bad("process.args: must not be empty".into()));
    }
    if !process.cwd().is_absolute() {
        return Err(bad(format!(
            "process.cwd {:?}: must be an absolute path",
            process.cwd()
        )));
    }
    if let Some(adj) = process.oom_score_adj() {
        if !(-1000..=1000).contains(&adj) {
            return Err(bad(format!(
                "process.oomScoreAdj {adj}: out of range -1000..1000"
            )));
        }
    }
    let types = ns_types(spec);
    let mut seen = HashSet::new();
    for t in &types {
        if !seen.insert(*t) {
            return Err(bad(format!(
                "linux.namespaces: {} namespace listed twice",
                crate::namespaces::name(*t)
            )));
        }
    }
    let new_uts = types.contains(&LinuxNamespaceType::Uts);
    if spec.hostname().as_ref().is_some_and(|h| !h.is_empty()) && !new_uts {
        return Err(bad(
            "hostname: set without a private uts namespace (it would rename the host)".into(),
        ));
    }
    if spec.domainname().as_ref().is_some_and(|h| !h.is_empty()) && !new_uts {
        return Err(bad(
            "domainname: set without a private uts namespace (it would rename the host)".into(),
        ));
    }
    if let Some(linux) = spec.linux() {
        let has_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
            || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
        if has_maps && !types.contains(&LinuxNamespaceType::User) {
            return Err(bad(
                "linux.uidMappings: given but no user namespace is created".into(),
            ));
        }
        let new_user = linux.namespaces().as_ref().is_some_and(|v| {
            v.iter()
                .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none())
        });
        if new_user && !has_maps && host.is_root() {
            return Err(bad(
                "linux.uidMappings: a new user namespace needs uid and gid mappings".into(),
            ));
        }
        for ns in linux.namespaces().iter().flatten() {
            if let Some(p) = ns.path() {
                host.check_namespace_path(ns.typ(), p).map_err(|r| {
                    bad(format!(
                        "linux.namespaces[{}].path {}: {r}",
                        crate::namespaces::name(ns.typ()),
                        p.display()
                    ))
                })?;
            }
        }
    }
    for check in [
        crate::namespaces::timens::check,
        crate::process::personality::check,
        crate::process::mempolicy::check,
        crate::namespaces::sysctl::check,
        crate::rootfs::idmap::check,
        crate::process::lsm::check,
        crate::namespaces::netdev::check,
    ] {
        check(spec).map_err(bad)?;
    }
    for check in [
        crate::process::ioprio::check,
        crate::process::scheduler::check,
        crate::process::affinity::check,
    ] {
        check(process).map_err(bad)?;
    }
    Ok(rootfs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A machine where only `/b/rootfs` exists (a directory) and `/b/file` is a file.
    struct Fake {
        root: bool,
    }

    impl Host for Fake {
        fn dir_kind(&self, p: &Path) -> Option<bool> {
            match p.to_str()? {
                "/b/rootfs" => Some(true),
                "/b/file" => Some(false),
                _ => None,
            }
        }
        fn is_root(&self) -> bool {
            self.root
        }
        fn check_namespace_path(
            &self,
            t: LinuxNamespaceType,
            p: &Path,
        ) -> std::result::Result<(), String> {
            if p == Path::new("/proc/1/ns/net") && t == LinuxNamespaceType::Network {
                Ok(())
            } else {
                Err("not a namespace of that type".into())
            }
        }
    }

    fn base() -> serde_json::Value {
        serde_json::json!({
            "ociVersion": "1.3.0",
            "root": {"path": "rootfs"},
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}]}
        })
    }

    /// Validate `base()` changed by `edit` on a root machine; the error text or the rootfs.
    fn check_as(
        root: bool,
        edit: impl FnOnce(&mut serde_json::Value),
    ) -> std::result::Result<PathBuf, String> {
        let mut v = base();
        edit(&mut v);
        let cfg = Path::new("/b/config.json");
        let spec = parse(cfg, &serde_json::to_vec(&v).unwrap()).map_err(|e| e.to_string())?;
        validate(&Fake { root }, cfg, Path::new("/b"), &spec).map_err(|e| e.to_string())
    }

    fn check(edit: impl FnOnce(&mut serde_json::Value)) -> std::result::Result<PathBuf, String> {
        check_as(true, edit)
    }

    #[test]
    fn a_valid_config_gives_the_rootfs_under_the_bundle() {
        assert_eq!(check(|_| {}), Ok(PathBuf::from("/b/rootfs")));
    }

    #[test]
    fn every_error_names_the_config_file_and_the_field() {
        let e = check(|v| v["ociVersion"] = "2.0.0".into()).unwrap_err();
        assert!(e.starts_with("/b/config.json: ociVersion \"2.0.0\""), "{e}");
    }

    #[test]
    fn a_missing_rootfs_and_a_rootfs_that_is_a_file_are_refused() {
        let e = check(|v| v["root"]["path"] = "nope".into()).unwrap_err();
        assert!(e.contains("root.path /b/nope: does not exist"), "{e}");
        let e = check(|v| v["root"]["path"] = "/b/file".into()).unwrap_err();
        assert!(e.contains("root.path /b/file: not a directory"), "{e}");
    }

    #[test]
    fn process_needs_args_an_absolute_cwd_and_a_sane_oom_score() {
        assert!(check(|v| v["process"]["args"] = serde_json::json!([]))
            .unwrap_err()
            .contains("process.args"));
        assert!(check(|v| v["process"]["cwd"] = "rel".into())
            .unwrap_err()
            .contains("process.cwd"));
        let e = check(|v| v["process"]["oomScoreAdj"] = 1001.into()).unwrap_err();
        assert!(e.contains("process.oomScoreAdj 1001: out of range"), "{e}");
        assert!(check(|v| v["process"]["oomScoreAdj"] = (-1000).into()).is_ok());
    }

    #[test]
    fn a_type_error_names_the_fields_path() {
        let e = check(|v| v["process"]["rlimits"] = serde_json::json!([{"type": 5}])).unwrap_err();
        assert!(e.contains("process.rlimits[0].type"), "{e}");
    }

    #[test]
    fn a_namespace_listed_twice_is_refused() {
        let e = check(|v| {
            v["linux"]["namespaces"] = serde_json::json!([{"type": "pid"}, {"type": "pid"}])
        })
        .unwrap_err();
        assert!(
            e.contains("linux.namespaces: pid namespace listed twice"),
            "{e}"
        );
    }

    #[test]
    fn a_hostname_without_a_private_uts_namespace_would_rename_the_host() {
        let e = check(|v| v["hostname"] = "c1".into()).unwrap_err();
        assert!(
            e.contains("hostname: set without a private uts namespace"),
            "{e}"
        );
        assert!(check(|v| {
            v["hostname"] = "c1".into();
            v["linux"]["namespaces"] = serde_json::json!([{"type": "uts"}]);
        })
        .is_ok());
    }

    #[test]
    fn id_mappings_need_a_user_namespace_and_root_needs_mappings_for_a_new_one() {
        let maps = serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
        let e = check(|v| v["linux"]["uidMappings"] = maps.clone()).unwrap_err();
        assert!(
            e.contains("linux.uidMappings: given but no user namespace"),
            "{e}"
        );
        let userns = |v: &mut serde_json::Value| {
            v["linux"]["namespaces"] = serde_json::json!([{"type": "user"}])
        };
        assert!(check(userns)
            .unwrap_err()
            .contains("needs uid and gid mappings"));
        // Not root (rootless): the runtime maps its own ids itself.
        assert!(check_as(false, userns).is_ok());
    }

    #[test]
    fn a_namespace_path_is_checked_by_the_host_and_named_in_the_error() {
        assert!(check(|v| v["linux"]["namespaces"] =
            serde_json::json!([{"type": "network", "path": "/proc/1/ns/net"}]))
        .is_ok());
        let e = check(|v| {
            v["linux"]["namespaces"] =
                serde_json::json!([{"type": "ipc", "path": "/proc/1/ns/net"}])
        })
        .unwrap_err();
        assert!(
            e.contains("linux.namespaces[ipc].path /proc/1/ns/net: not a namespace of that type"),
            "{e}"
        );
    }
}
