//! afl wrapper of the `layer` target (see src/lib.rs), run as root: the process first makes
//! itself a jail (a private mount namespace, a nodev tmpfs as its root with a read-only /proc for
//! the xattr calls), so a layer that escaped its root could reach nothing of the host, and the
//! target can see the escape as a file beside `work`.
use std::path::Path;

use nix::mount::{mount, MsFlags};

/// Name a failed step.
fn e(what: &'static str) -> impl Fn(nix::Error) -> String {
    move |err| format!("{what}: {err}")
}

fn jail() -> Result<(), String> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(e("unshare mount ns"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(e("make / private"))?;
    // make fuzz names an empty directory it removes afterwards.
    let dir = std::env::var_os("FUZZ_JAIL")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("fuzz-layer-jail-{}", std::process::id()))
        });
    std::fs::create_dir_all(&dir).map_err(|err| format!("{}: {err}", dir.display()))?;
    mount(
        Some("tmpfs"),
        &dir,
        Some("tmpfs"),
        MsFlags::MS_NODEV | MsFlags::MS_NOSUID,
        Some("size=256m"),
    )
    .map_err(e("mount the jail's tmpfs"))?;
    std::fs::create_dir(dir.join("proc")).map_err(|err| format!("jail proc: {err}"))?;
    mount(
        Some("proc"),
        &dir.join("proc"),
        Some("proc"),
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(e("mount proc in the jail"))?;
    nix::unistd::chroot(&dir).map_err(e("chroot"))?;
    std::env::set_current_dir("/").map_err(|err| format!("chdir /: {err}"))?;
    Ok(())
}

fn main() {
    if let Err(e) = jail() {
        eprintln!("fuzz layer: cannot make the jail (run as root): {e}");
        std::process::exit(2);
    }
    afl::fuzz!(|data: &[u8]| fuzz::layer(Path::new("/"), data));
}
