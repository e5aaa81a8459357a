//! Shared helpers for the black-box tests: where the built binaries are, and how to make test rootfses.
//!
//! The tests drive the built binaries (`target/debug/gruntime`, `target/debug/imgtool` unless
//! `GRUNTIME_BIN` / `IMGTOOL_BIN` say otherwise) as root against the real kernel.

pub mod seccomp;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

fn built_binary(env_var: &str, name: &str) -> PathBuf {
    if let Ok(p) = std::env::var(env_var) {
        return PathBuf::from(p);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("target"));
    let p = target.join("debug").join(name);
    assert!(
        p.exists(),
        "{} is not built: run `cargo build --workspace` first (or set {env_var})",
        p.display()
    );
    p
}

pub fn gruntime_bin() -> PathBuf {
    built_binary("GRUNTIME_BIN", "gruntime")
}

pub fn imgtool_bin() -> PathBuf {
    built_binary("IMGTOOL_BIN", "imgtool")
}

/// Debian's busybox-static, installed by `make test` / `.ci/run`.
pub const BUSYBOX: &str = "/bin/busybox";

/// Make a minimal busybox rootfs at `rootfs`: /bin/busybox plus one symlink per applet, and the
/// directories a runtime mounts onto.
pub fn make_busybox_rootfs(rootfs: &Path) {
    assert!(
        Path::new(BUSYBOX).exists(),
        "{BUSYBOX} missing: apt-get install busybox-static"
    );
    for d in [
        "bin", "dev", "proc", "sys", "tmp", "etc", "root", "run", "usr/bin", "sbin",
    ] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy(BUSYBOX, rootfs.join("bin/busybox")).unwrap();
    let out = Command::new(BUSYBOX).arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let link = rootfs.join("bin").join(applet);
        if applet != "busybox" && !link.exists() {
            std::os::unix::fs::symlink("busybox", &link).unwrap();
        }
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
}

/// Run a command and return its output; panics with context when it cannot be started at all.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A unique id for a test container or image, so tests can run in parallel.
pub fn unique_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}
