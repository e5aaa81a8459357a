//! Time namespace with `linux.timeOffsets`.
//!
//! clone3(CLONE_NEWTIME) would put the init into the new namespace at once, and offsets can only be written
//! while no process is in it. So the init (already in the container's user namespace, which then owns the
//! time namespace) unshares CLONE_NEWTIME for its children, writes the offsets to /proc/self/timens_offsets,
//! and execve(2) moves it into that namespace (Linux ≥ 5.18 switches to time_for_children on exec). Hooks
//! forked by the init (createContainer, startContainer) are born in it too. This is what runc does.
//! Joining by `path` is an ordinary setns in `init::join_namespaces`.

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{InitResult, Step};

/// Is a new (not joined) time namespace requested?
fn wants_new(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|v| {
            v.iter()
                .any(|n| n.typ() == LinuxNamespaceType::Time && n.path().is_none())
        })
}

/// Linux 5.18 is the first to move a process into its time_for_children namespace on execve.
fn kernel_enters_on_exec() -> bool {
    // SAFETY: utsname is plain data, all-zero is a valid value.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uname fills the struct it is given and keeps no reference to it.
    if unsafe { libc::uname(&mut u) } != 0 {
        return false;
    }
    // SAFETY: the kernel NUL-terminates release.
    let release = unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor) >= (5, 18)
}

/// `linux.timeOffsets` needs a new time namespace and only knows the clocks the kernel can shift.
pub fn check(spec: &Spec) -> Result<(), String> {
    if wants_new(spec) && !kernel_enters_on_exec() {
        return Err(
            "linux.namespaces: a new time namespace needs Linux 5.18 or later (execve must enter it)".into(),
        );
    }
    let Some(offsets) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
    else {
        return Ok(());
    };
    if offsets.is_empty() {
        return Ok(());
    }
    if !wants_new(spec) {
        return Err(
            "linux.timeOffsets: given without a new time namespace (offsets can only be set on a namespace the runtime creates)"
                .into(),
        );
    }
    for (clock, off) in offsets {
        if clock != "monotonic" && clock != "boottime" {
            return Err(format!(
                "linux.timeOffsets.{clock}: unknown clock (only monotonic and boottime can be offset)"
            ));
        }
        if off.nanosecs().unwrap_or(0) >= 1_000_000_000 {
            return Err(format!(
                "linux.timeOffsets.{clock}.nanosecs: must be below 1000000000"
            ));
        }
    }
    Ok(())
}

/// The contents for /proc/self/timens_offsets: one "<clock> <secs> <nanosecs>" line per clock.
fn offsets_text(spec: &Spec) -> String {
    let mut text = String::new();
    for (clock, off) in spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
        .into_iter()
        .flatten()
    {
        text.push_str(&format!(
            "{clock} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    text
}

/// In the init, before it forks anything: make the new time namespace for its children (and its exec).
pub fn enter_new(spec: &Spec) -> InitResult<()> {
    if !wants_new(spec) {
        return Ok(());
    }
    // SAFETY: unshare with a flag only changes this (single-threaded) process's namespace for children.
    let r = unsafe { libc::unshare(libc::CLONE_NEWTIME) };
    nix::errno::Errno::result(r).step(|| "unshare the time namespace".into())?;
    let text = offsets_text(spec);
    if !text.is_empty() {
        // One write per clock: the kernel takes each line as a separate offset.
        for line in text.lines() {
            std::fs::write("/proc/self/timens_offsets", line).step(|| {
                format!("linux.timeOffsets: write {line:?} to /proc/self/timens_offsets")
            })?;
        }
    }
    Ok(())
}
