//! Bundles for the cgroup tests: `gruntime spec` plus edits, all sharing one busybox rootfs.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::{gruntime_bin, run, stderr};

/// Write `dir/config.json`: gruntime's default spec running `args` in `rootfs` (absolute path, so many
/// bundles share one rootfs), writable root, a private tmpfs on /tmp, then `edit` on top.
pub fn make_bundle(dir: &Path, rootfs: &Path, args: &[&str], edit: impl FnOnce(&mut Value)) {
    std::fs::create_dir_all(dir).unwrap();
    let out = run(Command::new(gruntime_bin())
        .args(["spec", "--bundle"])
        .arg(dir));
    assert!(out.status.success(), "gruntime spec: {}", stderr(&out));
    let path = dir.join("config.json");
    let mut c: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    c["root"] = json!({ "path": rootfs, "readonly": false });
    c["process"]["args"] = json!(args);
    c["process"]["terminal"] = json!(false);
    c["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}));
    edit(&mut c);
    std::fs::write(&path, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
}

/// Set `linux.resources` (keeping gruntime spec's device list unless `res` has one).
pub fn set_resources(c: &mut Value, res: Value) {
    let mut r = c["linux"]["resources"].clone();
    for (k, v) in res.as_object().unwrap() {
        r[k] = v.clone();
    }
    c["linux"]["resources"] = r;
}

/// Give the process a capability in every set (the default spec has only three).
pub fn add_capability(c: &mut Value, cap: &str) {
    for set in ["bounding", "effective", "permitted"] {
        c["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!(cap));
    }
}

/// Bind-mount a directory of the host (or guest) into the container, read-write.
pub fn add_bind(c: &mut Value, source: &str, dest: &str) {
    c["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": dest, "type": "bind", "source": source, "options": ["rbind"]}));
}
