//! `--rootless true|false|auto` as runc: auto means rootless when not root, or when root only inside a user
//! namespace that does not map uid 0 to the host's root (podman's rootless mode runs us that way).

use std::sync::atomic::{AtomicBool, Ordering};

static ROOTLESS: AtomicBool = AtomicBool::new(false);

/// Is uid 0 of our user namespace the host's root? Only in the initial namespace ("0 0 4294967295").
fn root_is_host_root() -> bool {
    let Ok(map) = std::fs::read_to_string("/proc/self/uid_map") else {
        return true;
    };
    map.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() == 3 && f[0] == "0" && f[1] == "0"
    })
}

pub fn decide(flag: Option<&str>) -> bool {
    let r = match flag {
        Some("true") => true,
        Some("false") => false,
        _ => !nix::unistd::geteuid().is_root() || !root_is_host_root(),
    };
    ROOTLESS.store(r, Ordering::Relaxed);
    r
}

/// The decision made at start-up (see `decide`).
pub fn is_rootless() -> bool {
    ROOTLESS.load(Ordering::Relaxed)
}
