//! Load `<bundle>/config.json` and refuse what cannot be run, before anything is made on the host.
//! Every error names the file and the field.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};

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
    // The seccomp section is checked on the raw JSON first, so a bad value is named by its path
    // ("linux.seccomp.syscalls[1].action: ...") rather than by serde's line and column.
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&raw) {
        crate::seccomp::validate_raw(&v).map_err(|e| Error::config(&config_path, e.to_string()))?;
    }
    let spec = parse(&config_path, &raw)?;
    let rootfs = validate(&config_path, &dir, &spec)?;
    Ok(Bundle {
        dir,
        config_path,
        raw,
        spec,
        rootfs,
    })
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
fn validate(cfg: &Path, bundle: &Path, spec: &Spec) -> Result<PathBuf> {
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
    match std::fs::metadata(&rootfs) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(bad(format!(
                "root.path {}: not a directory",
                rootfs.display()
            )))
        }
        Err(_) => {
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
        if new_user && !has_maps && nix::unistd::geteuid().is_root() {
            return Err(bad(
                "linux.uidMappings: a new user namespace needs uid and gid mappings".into(),
            ));
        }
        for ns in linux.namespaces().iter().flatten() {
            if let Some(p) = ns.path() {
                crate::namespaces::check_path(ns.typ(), p).map_err(|r| {
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
