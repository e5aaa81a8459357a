//! Helpers for the seccomp tests: the engine-format → runtime-spec profile converter (what
//! podman/containers-common does before handing a profile to the runtime), the static syscall
//! probe the tests put in the rootfs, and a minimal bundle config.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Map, Value};

/// Debian's golang-github-containers-common: podman's default profile, engine format.
pub const CONTAINERS_DEFAULT_PROFILE: &str = "/usr/share/containers/seccomp.json";

/// The capabilities podman gives a container by default (containers.conf `default_capabilities`).
pub const PODMAN_DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

fn strings(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Whether an engine-format entry applies to a container with `caps` on `goarch`, the way
/// containers/common decides: excluded when its arch is excluded or it holds any excluded
/// capability; kept only when its arch is included (if any are listed) and it holds every
/// included capability.
fn entry_applies(entry: &Value, caps: &[&str], goarch: &str) -> bool {
    fn field<'a>(v: Option<&'a Value>, k: &str) -> Vec<&'a str> {
        strings(v.and_then(|o| o.get(k)))
    }
    let inc = entry.get("includes");
    let exc = entry.get("excludes");
    if field(exc, "arches").contains(&goarch) {
        return false;
    }
    if field(exc, "caps").iter().any(|c| caps.contains(c)) {
        return false;
    }
    let inc_arches = field(inc, "arches");
    if !inc_arches.is_empty() && !inc_arches.contains(&goarch) {
        return false;
    }
    field(inc, "caps").iter().all(|c| caps.contains(c))
}

/// Engine format → `linux.seccomp`: `archMap` → `architectures` (the native arch and its
/// sub-architectures), entries filtered by [`entry_applies`], and the engine-only keys
/// (`comment`, `includes`, `excludes`, `defaultErrno`, `archMap`) dropped.
pub fn convert_engine_profile(engine: &Value, caps: &[&str], native: &str, goarch: &str) -> Value {
    let mut out = Map::new();
    out.insert("defaultAction".into(), engine["defaultAction"].clone());
    if let Some(e) = engine.get("defaultErrnoRet") {
        out.insert("defaultErrnoRet".into(), e.clone());
    }
    let mut arches = Vec::new();
    for m in engine["archMap"].as_array().into_iter().flatten() {
        if m["architecture"] == native {
            arches.push(Value::from(native));
            arches.extend(
                m["subArchitectures"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
        }
    }
    if !arches.is_empty() {
        out.insert("architectures".into(), Value::Array(arches));
    }
    for key in ["flags", "listenerPath", "listenerMetadata"] {
        if let Some(v) = engine.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    let mut syscalls = Vec::new();
    for entry in engine["syscalls"].as_array().into_iter().flatten() {
        if !entry_applies(entry, caps, goarch) {
            continue;
        }
        let mut s = Map::new();
        let names = match entry.get("name") {
            // The engine format's older single-name form.
            Some(n) if entry.get("names").is_none() => json!([n]),
            _ => entry["names"].clone(),
        };
        s.insert("names".into(), names);
        s.insert("action".into(), entry["action"].clone());
        for key in ["errnoRet", "args"] {
            match entry.get(key) {
                Some(Value::Null) | None => {}
                Some(Value::Array(a)) if a.is_empty() => {}
                Some(v) => {
                    s.insert(key.into(), v.clone());
                }
            }
        }
        syscalls.push(Value::Object(s));
    }
    out.insert("syscalls".into(), Value::Array(syscalls));
    Value::Object(out)
}

/// The containers-common default profile converted for a podman-default container on x86_64.
pub fn containers_default_profile() -> Value {
    let text = std::fs::read_to_string(CONTAINERS_DEFAULT_PROFILE).unwrap_or_else(|e| {
        panic!(
            "{CONTAINERS_DEFAULT_PROFILE}: {e} (apt-get install golang-github-containers-common)"
        )
    });
    let engine: Value = serde_json::from_str(&text).expect("engine profile is JSON");
    convert_engine_profile(&engine, PODMAN_DEFAULT_CAPS, "SCMP_ARCH_X86_64", "amd64")
}

/// A static program that makes one raw syscall: `probe NR [ARG...]` prints `ok <ret>` (exit 0)
/// or `errno <n>` (exit 1). Static, so it runs in a busybox rootfs.
const PROBE_C: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: probe NR [ARG...]\n"); return 2; }
    long nr = strtol(argv[1], 0, 0);
    unsigned long a[6] = {0};
    for (int i = 2; i < argc && i < 8; i++) a[i - 2] = strtoul(argv[i], 0, 0);
    errno = 0;
    long r = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    if (r == -1) { printf("errno %d\n", errno); return 1; }
    printf("ok %ld\n", r);
    return 0;
}
"#;

/// Build the probe with `gcc -static` (apt: gcc, libc6-dev) to `dest`.
pub fn build_probe(dest: &Path) {
    let src = dest.with_extension("c");
    std::fs::write(&src, PROBE_C).unwrap();
    let out = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(dest)
        .arg(&src)
        .output()
        .expect("gcc runs (apt-get install gcc libc6-dev)");
    std::fs::remove_file(&src).unwrap();
    assert!(
        out.status.success(),
        "building the probe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A minimal config.json: busybox rootfs at `rootfs`, the given process args, podman's default
/// capabilities, and `seccomp` as `linux.seccomp` (omitted when null).
pub fn bundle_config(args: &[&str], seccomp: Value) -> Value {
    let caps: Vec<&str> = PODMAN_DEFAULT_CAPS.to_vec();
    let mut linux = json!({
        "namespaces": [
            {"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}, {"type": "network"}
        ],
        "maskedPaths": ["/proc/kcore", "/proc/keys"],
        "readonlyPaths": ["/proc/sys"]
    });
    if !seccomp.is_null() {
        linux["seccomp"] = seccomp;
    }
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/bin:/usr/bin:/sbin", "HOME=/root"],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps
            },
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "seccomp-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}
        ],
        "linux": linux
    })
}
