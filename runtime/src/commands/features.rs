//! `gruntime features`: what this build really supports (runtime-spec features.md). Nothing is listed that
//! does not work.

use crate::commands::Globals;
use crate::error::Result;

pub fn features_json() -> serde_json::Value {
    let mount_options: Vec<&str> = vec![
        "async",
        "atime",
        "bind",
        "defaults",
        "dev",
        "diratime",
        "dirsync",
        "exec",
        "lazytime",
        "mand",
        "noatime",
        "nodev",
        "nodiratime",
        "noexec",
        "nomand",
        "norelatime",
        "nostrictatime",
        "nosuid",
        "private",
        "rbind",
        "relatime",
        "remount",
        "ro",
        "rprivate",
        "rshared",
        "rslave",
        "runbindable",
        "rw",
        "shared",
        "slave",
        "strictatime",
        "suid",
        "sync",
        "unbindable",
        "rro",
        "rrw",
        "rnosuid",
        "rsuid",
        "rnodev",
        "rdev",
        "rnoexec",
        "rexec",
        "rnoatime",
        "ratime",
        "rnodiratime",
        "rdiratime",
        "rrelatime",
        "rnorelatime",
        "rstrictatime",
        "rnostrictatime",
        "idmap",
        "ridmap",
    ];
    let caps: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    let mut linux = serde_json::json!({
        "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time"],
        "capabilities": caps,
        "cgroup": crate::cgroups::features(),
        "seccomp": crate::seccomp::features_json(),
        "apparmor": { "enabled": crate::process::lsm::apparmor_enabled() },
        "selinux": { "enabled": crate::process::lsm::selinux_enabled() },
        "intelRdt": { "enabled": false },
        "mountExtensions": { "idmap": { "enabled": true } },
        "memoryPolicy": { "modes": crate::process::mempolicy::MODES, "flags": crate::process::mempolicy::FLAGS },
        "netDevices": { "enabled": crate::namespaces::netdev::SUPPORTED },
    });
    if linux["seccomp"].is_null() {
        linux["seccomp"] = serde_json::json!({ "enabled": false });
    }
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": crate::container::SPEC_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": mount_options,
        "linux": linux,
        "annotations": {
            "org.opencontainers.runc.version": "gruntime",
            // runc's key: checkpoint/restore are there (they need a criu binary when called).
            "org.opencontainers.runc.checkpoint.enabled": "true",
            "io.github.gruntime.version": env!("CARGO_PKG_VERSION"),
            // runtime-spec's features have no place for these: listed here, as crun does with its own keys.
            "io.github.gruntime.scheduler.policies": crate::process::scheduler::POLICIES.join(","),
            "io.github.gruntime.scheduler.flags": crate::process::scheduler::FLAGS.join(","),
            "io.github.gruntime.personality.domains": "LINUX,LINUX32",
            "io.github.gruntime.personality.flags": crate::process::personality::flag_names().join(","),
        },
    })
}

pub fn run(_g: &Globals) -> Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(&features_json()).expect("json")
    );
    Ok(())
}
