//! The mounts CRIU must not dump, declared as external the way runc declares them, so a checkpoint made
//! by either restores with either:
//!
//! - bind mounts: dumped as `dest → key dest`, restored as `key dest → source` (the host path, which may
//!   differ on another machine or for another bundle);
//! - masked paths that are files (runc's and gruntime's /dev/null binds): dumped as `path → key /dev/null`,
//!   restored as `/dev/null → /dev/null`; masked directories are read-only tmpfs, whose (empty) content
//!   CRIU dumps itself;
//! - device nodes (the defaults and `linux.devices`): `path → path` both ways; they are binds of the host's
//!   nodes in a user namespace, plain nodes on the /dev tmpfs otherwise (then CRIU finds no such mount and
//!   the entry is unused).
//!
//! Everything else (the /dev tmpfs, /dev/pts, /proc, /sys, a private tmpfs) is CRIU's to dump and restore.
//! The functions here are pure: they read the spec and, for masked paths, ask a predicate.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{Mount, Spec};

use crate::rootfs::mounts::parse_options;

/// One `ext_mnt` pair of CRIU's RPC: at dump (mount point inside, key), at restore (key, host path).
pub type ExtMount = (String, String);

/// Is `m` a bind mount (type `bind`, or any type with a `bind`/`rbind` option), as runc's `Device == "bind"`.
pub fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind") || parse_options(m.options().as_deref().unwrap_or(&[])).bind
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The external mounts of a dump. `masked_is_file(path)` says whether a masked path exists in the
/// running container as something other than a directory (runc stats `/proc/<pid>/root/<path>`).
pub fn for_dump(spec: &Spec, masked_is_file: impl Fn(&str) -> bool) -> Vec<ExtMount> {
    let mut out = Vec::new();
    for m in spec.mounts().iter().flatten().filter(|m| is_bind(m)) {
        let d = s(m.destination());
        out.push((d.clone(), d));
    }
    for p in masked(spec) {
        if masked_is_file(p) {
            out.push((p.clone(), "/dev/null".into()));
        }
    }
    for d in crate::rootfs::devices::node_paths(spec) {
        let d = s(&d);
        out.push((d.clone(), d));
    }
    out
}

/// The external mounts of a restore; relative bind sources are the bundle's, as at create.
pub fn for_restore(spec: &Spec, bundle: &Path) -> Vec<ExtMount> {
    let mut out = Vec::new();
    for m in spec.mounts().iter().flatten().filter(|m| is_bind(m)) {
        out.push((s(m.destination()), s(&source_of(m, bundle))));
    }
    if !masked(spec).is_empty() {
        out.push(("/dev/null".into(), "/dev/null".into()));
    }
    for d in crate::rootfs::devices::node_paths(spec) {
        let d = s(&d);
        out.push((d.clone(), d));
    }
    out
}

/// A mount's source as a host path: relative ones are taken from the bundle directory.
pub fn source_of(m: &Mount, bundle: &Path) -> PathBuf {
    let src = m.source().clone().unwrap_or_default();
    if src.is_absolute() {
        src
    } else {
        bundle.join(src)
    }
}

fn masked(spec: &Spec) -> &[String] {
    spec.linux()
        .as_ref()
        .and_then(|l| l.masked_paths().as_deref())
        .unwrap_or(&[])
}

/// The mounts whose mount points restore must make in the rootfs first (CRIU mounts onto existing
/// paths): every mount not below a tmpfs of the config, whose content CRIU brings back from the images.
pub fn needing_mountpoints(spec: &Spec) -> Vec<&Mount> {
    let mounts: Vec<&Mount> = spec.mounts().iter().flatten().collect();
    let tmpfs: Vec<&Path> = mounts
        .iter()
        .filter(|m| m.typ().as_deref() == Some("tmpfs"))
        .map(|m| m.destination().as_path())
        .collect();
    mounts
        .into_iter()
        .filter(|m| {
            !tmpfs
                .iter()
                .any(|t| m.destination() != *t && m.destination().starts_with(t))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> Spec {
        serde_json::from_value(json).unwrap()
    }

    fn sample() -> Spec {
        spec(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs"},
                {"destination": "/dev/shm", "type": "tmpfs", "source": "shm"},
                {"destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind"]},
                {"destination": "/etc/hosts", "type": "none", "source": "hosts", "options": ["bind", "ro"]}
            ],
            "linux": {
                "maskedPaths": ["/proc/kcore", "/proc/acpi", "/proc/nothere"],
                "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]
            }
        }))
    }

    #[test]
    fn a_dump_declares_binds_masked_files_and_device_nodes_as_runc_does() {
        let ext = for_dump(&sample(), |p| p == "/proc/kcore");
        let has = |k: &str, v: &str| ext.iter().any(|(a, b)| a == k && b == v);
        assert!(has("/data", "/data"));
        assert!(has("/etc/hosts", "/etc/hosts"));
        assert!(has("/proc/kcore", "/dev/null"));
        assert!(!ext
            .iter()
            .any(|(a, _)| a == "/proc/acpi" || a == "/proc/nothere"));
        assert!(has("/dev/null", "/dev/null"));
        assert!(has("/dev/fuse", "/dev/fuse"));
        assert!(!ext.iter().any(|(a, _)| a == "/proc" || a == "/dev/shm"));
    }

    #[test]
    fn a_restore_maps_each_key_to_the_host_path_and_relative_sources_to_the_bundle() {
        let ext = for_restore(&sample(), Path::new("/b"));
        let has = |k: &str, v: &str| ext.iter().any(|(a, b)| a == k && b == v);
        assert!(has("/data", "/srv/data"));
        assert!(has("/etc/hosts", "/b/hosts"));
        assert!(has("/dev/null", "/dev/null"));
        assert!(has("/dev/tty", "/dev/tty"));
    }

    #[test]
    fn mounts_below_a_tmpfs_need_no_mount_point_in_the_rootfs() {
        let sp = sample();
        let dests: Vec<_> = needing_mountpoints(&sp)
            .iter()
            .map(|m| m.destination().clone())
            .collect();
        assert!(dests.contains(&PathBuf::from("/dev")));
        assert!(dests.contains(&PathBuf::from("/data")));
        assert!(!dests.contains(&PathBuf::from("/dev/shm")));
    }
}
