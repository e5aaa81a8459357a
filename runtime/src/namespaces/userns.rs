//! Id maps of a new user namespace, written by the parent while the init waits. As root: straight into
//! /proc/<pid>/{uid,gid}_map. As an unprivileged user: a single mapping of our own ids is written directly
//! (after `setgroups deny`, which the kernel requires for that), anything else goes through the setuid
//! helpers newuidmap/newgidmap (package uidmap), which check /etc/subuid and /etc/subgid as runc and podman do.

use std::path::PathBuf;
use std::process::Command;

use nix::unistd::{getegid, geteuid, Pid};
use oci_spec::runtime::{Linux, LinuxIdMapping};

use crate::error::{Error, Result};

fn field(file: &str) -> &'static str {
    if file == "uid_map" {
        "linux.uidMappings"
    } else {
        "linux.gidMappings"
    }
}

/// The text a uid_map/gid_map file takes: one "inside outside count" line per mapping.
pub fn render(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

fn write(pid: Pid, file: &str, body: &str) -> Result<()> {
    let path = PathBuf::from(format!("/proc/{pid}/{file}"));
    std::fs::write(&path, body).map_err(|e| Error::io(format!("{}: write", field(file)), &path, e))
}

/// Only our own id, once: what an unprivileged process may map by itself.
fn is_own_single(maps: &[LinuxIdMapping], own: u32) -> bool {
    matches!(maps, [m] if m.host_id() == own && m.size() == 1)
}

fn via_helper(helper: &str, pid: Pid, file: &str, maps: &[LinuxIdMapping]) -> Result<()> {
    let mut cmd = Command::new(helper);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([
            m.container_id().to_string(),
            m.host_id().to_string(),
            m.size().to_string(),
        ]);
    }
    let out = cmd.output().map_err(|e| {
        Error::InvalidArgument(format!(
            "{}: {helper} is needed for these ranges (apt-get install uidmap): {e}",
            field(file)
        ))
    })?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(Error::InvalidArgument(format!(
            "{}: {} not allowed for this user: {why}",
            field(file),
            render(maps).trim().replace('\n', ", ")
        )));
    }
    Ok(())
}

pub fn write_maps(pid: Pid, linux: &Linux) -> Result<()> {
    let uids = linux.uid_mappings().as_deref().unwrap_or(&[]);
    let gids = linux.gid_mappings().as_deref().unwrap_or(&[]);
    if geteuid().is_root() {
        write(pid, "uid_map", &render(uids))?;
        return write(pid, "gid_map", &render(gids));
    }
    if is_own_single(uids, geteuid().as_raw()) {
        write(pid, "uid_map", &render(uids))?;
    } else {
        via_helper("newuidmap", pid, "uid_map", uids)?;
    }
    if is_own_single(gids, getegid().as_raw()) {
        // Without CAP_SETGID in the parent namespace the kernel only takes a gid map after setgroups is denied.
        write(pid, "setgroups", "deny")?;
        write(pid, "gid_map", &render(gids))
    } else {
        via_helper("newgidmap", pid, "gid_map", gids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(c: u32, h: u32, n: u32) -> LinuxIdMapping {
        serde_json::from_value(serde_json::json!({"containerID": c, "hostID": h, "size": n}))
            .unwrap()
    }

    #[test]
    fn maps_render_one_line_per_range_in_the_kernels_order() {
        assert_eq!(
            render(&[map(0, 1000, 1), map(1, 100000, 65536)]),
            "0 1000 1\n1 100000 65536\n"
        );
        assert_eq!(render(&[]), "");
    }

    #[test]
    fn only_a_single_mapping_of_our_own_id_is_written_without_the_setuid_helpers() {
        assert!(is_own_single(&[map(0, 1000, 1)], 1000));
        assert!(!is_own_single(&[map(0, 1000, 2)], 1000));
        assert!(!is_own_single(&[map(0, 1001, 1)], 1000));
        assert!(!is_own_single(&[map(0, 1000, 1), map(1, 100000, 10)], 1000));
    }
}
