//! `process.apparmorProfile`, `process.selinuxLabel`, `linux.mountLabel`, `linux.intelRdt`: applied where the
//! kernel has the facility, otherwise handled as runc does (see README, "Security modules and Intel RDT"):
//! - apparmorProfile: AppArmor enabled → the profile is set for the exec; disabled → error (runc fails when it
//!   writes the profile).
//! - selinuxLabel: SELinux enabled → the label is set for the exec; disabled → error (runc's config validator).
//! - mountLabel: ignored when SELinux is disabled (runc formats no context= option then); with SELinux enabled
//!   gruntime refuses it, as it does not label mounts.
//! - intelRdt: resctrl not mounted → error (runc's validator); mounted → refused, gruntime has no RDT support.

use std::path::Path;

use oci_spec::runtime::{Process, Spec};

use crate::error::{InitResult, Step};

pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.starts_with('Y'))
}

pub fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

fn resctrl_mounted() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .is_ok_and(|m| m.lines().any(|l| l.contains(" - resctrl ")))
}

pub fn check(spec: &Spec) -> Result<(), String> {
    let process = spec.process().as_ref();
    if let Some(p) = process
        .and_then(|p| p.apparmor_profile().as_deref())
        .filter(|p| !p.is_empty())
    {
        if !apparmor_enabled() {
            return Err(format!(
                "process.apparmorProfile {p:?}: AppArmor is not enabled on this host"
            ));
        }
    }
    if let Some(l) = process
        .and_then(|p| p.selinux_label().as_deref())
        .filter(|l| !l.is_empty())
    {
        if !selinux_enabled() {
            return Err(format!(
                "process.selinuxLabel {l:?}: SELinux is disabled or not supported on this host"
            ));
        }
    }
    let linux = spec.linux().as_ref();
    if let Some(l) = linux
        .and_then(|l| l.mount_label().as_deref())
        .filter(|l| !l.is_empty())
    {
        if selinux_enabled() {
            return Err(format!(
                "linux.mountLabel {l:?}: labelling mounts is not supported by gruntime"
            ));
        }
    }
    if linux.and_then(|l| l.intel_rdt().as_ref()).is_some() {
        return Err(if resctrl_mounted() {
            "linux.intelRdt: Intel RDT is not supported by gruntime".into()
        } else {
            "linux.intelRdt: Intel RDT is not supported or enabled on this host (resctrl is not mounted)".into()
        });
    }
    Ok(())
}

/// Label the coming exec (both facilities take the label at execve).
pub fn apply(process: &Process) -> InitResult<()> {
    if let Some(p) = process
        .apparmor_profile()
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        let attr = if Path::new("/proc/self/attr/apparmor/exec").exists() {
            "/proc/self/attr/apparmor/exec"
        } else {
            "/proc/self/attr/exec"
        };
        std::fs::write(attr, format!("exec {p}"))
            .step(|| format!("process.apparmorProfile {p}: write {attr}"))?;
    }
    if let Some(l) = process.selinux_label().as_deref().filter(|l| !l.is_empty()) {
        std::fs::write("/proc/self/attr/exec", l)
            .step(|| format!("process.selinuxLabel {l}: write /proc/self/attr/exec"))?;
    }
    Ok(())
}
