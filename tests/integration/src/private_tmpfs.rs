//! tmpfs mounts that only a test's own commands see: a full disk on demand (a small one), or
//! fast scratch space for a test that makes and removes many files (the soak).
//!
//! The work runs on a thread of its own that leaves the process's mount namespace
//! (`unshare(CLONE_NEWNS)` is per thread), makes every mount in the copy private and mounts a
//! tmpfs of the given size on each directory. Commands the thread starts inherit the namespace;
//! when the thread ends the namespace, and the mounts with it, are gone, however the test ends
//! (a panic, or the whole test process killed), and the host never sees them.
use std::path::Path;

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};

/// Run `f` with a tmpfs of `size` (`8m`, as mount(8) spells it) on each of `dirs`, which must
/// exist; a panic in `f` is the test's.
pub fn with_tmpfs<R: Send>(dirs: &[&Path], size: &str, f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| {
        let worker = s.spawn(|| {
            unshare(CloneFlags::CLONE_NEWNS).expect("unshare the mount namespace");
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .expect("make the mount namespace private");
            for d in dirs {
                mount(
                    Some("tmpfs"),
                    *d,
                    Some("tmpfs"),
                    MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                    Some(format!("size={size},mode=0755").as_str()),
                )
                .unwrap_or_else(|e| panic!("mount a {size} tmpfs on {}: {e}", d.display()));
            }
            f()
        });
        match worker.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}
