//! `update`: change the cgroup limits of a live container. Resources come from `--resources FILE` (or `-`
//! for stdin), a linux.resources JSON object, with runc's per-field flags (`--memory`, `--cpu-quota` …)
//! applied on top. Only the fields given are written.

use std::io::Read;

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

use crate::cgroups::Cgroup;
use crate::cli::UpdateArgs;
use crate::commands::Globals;
use crate::container::{Container, Status};
use crate::error::{Error, Result};

/// runc's memory syntax (docker's RAMInBytes): a number with an optional binary unit, or -1.
pub fn parse_bytes(flag: &str, s: &str) -> Result<i64> {
    let bad = || Error::InvalidArgument(format!("--{flag} {s:?}: not a size like 512m, 1g or -1"));
    let t = s.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: f64 = match unit.trim() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    if unit.is_empty() {
        return num.parse::<i64>().map_err(|_| bad());
    }
    let n: f64 = num.parse().map_err(|_| bad())?;
    Ok((n * mult) as i64)
}

fn read_resources(src: &str) -> Result<LinuxResources> {
    let data = if src == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Error::io("read resources from", "stdin", e))?;
        s
    } else {
        std::fs::read_to_string(src).map_err(|e| Error::ReadConfig {
            path: src.into(),
            source: e,
        })?
    };
    serde_json::from_str(&data).map_err(|e| {
        Error::InvalidArgument(format!(
            "--resources {}: not a linux.resources object: {e}",
            if src == "-" { "(stdin)" } else { src }
        ))
    })
}

/// The resources the command asks for: the JSON, then each flag over it.
fn requested(a: &UpdateArgs) -> Result<LinuxResources> {
    let mut r = match &a.resources {
        Some(src) => read_resources(src)?,
        None => LinuxResources::default(),
    };
    if a.memory.is_some() || a.memory_reservation.is_some() || a.memory_swap.is_some() {
        let mut m: LinuxMemory = r.memory().unwrap_or_default();
        if let Some(v) = &a.memory {
            m.set_limit(Some(parse_bytes("memory", v)?));
        }
        if let Some(v) = &a.memory_reservation {
            m.set_reservation(Some(parse_bytes("memory-reservation", v)?));
        }
        if let Some(v) = &a.memory_swap {
            m.set_swap(Some(parse_bytes("memory-swap", v)?));
        }
        r.set_memory(Some(m));
    }
    let cpu_flags = a.cpu_quota.is_some()
        || a.cpu_period.is_some()
        || a.cpu_shares.is_some()
        || a.cpu_burst.is_some()
        || a.cpu_idle.is_some()
        || a.cpu_rt_period.is_some()
        || a.cpu_rt_runtime.is_some()
        || a.cpuset_cpus.is_some()
        || a.cpuset_mems.is_some();
    if cpu_flags {
        let mut c: LinuxCpu = r.cpu().clone().unwrap_or_default();
        if a.cpu_quota.is_some() {
            c.set_quota(a.cpu_quota);
        }
        if a.cpu_period.is_some() {
            c.set_period(a.cpu_period);
        }
        if a.cpu_shares.is_some() {
            c.set_shares(a.cpu_shares);
        }
        if a.cpu_burst.is_some() {
            c.set_burst(a.cpu_burst);
        }
        if a.cpu_idle.is_some() {
            c.set_idle(a.cpu_idle);
        }
        if a.cpu_rt_period.is_some() {
            c.set_realtime_period(a.cpu_rt_period);
        }
        if a.cpu_rt_runtime.is_some() {
            c.set_realtime_runtime(a.cpu_rt_runtime);
        }
        if a.cpuset_cpus.is_some() {
            c.set_cpus(a.cpuset_cpus.clone());
        }
        if a.cpuset_mems.is_some() {
            c.set_mems(a.cpuset_mems.clone());
        }
        r.set_cpu(Some(c));
    }
    if let Some(l) = a.pids_limit {
        let mut p = LinuxPids::default();
        p.set_limit(l);
        r.set_pids(Some(p));
    }
    if let Some(w) = a.blkio_weight {
        let mut b: LinuxBlockIo = r.block_io().clone().unwrap_or_default();
        b.set_weight(Some(w));
        r.set_block_io(Some(b));
    }
    Ok(r)
}

/// memory.checkBeforeUpdate: refuse a limit below what the container already uses.
fn check_before_update(r: &LinuxResources, cgroup: &std::path::Path) -> Result<()> {
    let Some(m) = r.memory() else { return Ok(()) };
    let (Some(true), Some(limit)) = (m.check_before_update(), m.limit()) else {
        return Ok(());
    };
    let current: i64 = std::fs::read_to_string(cgroup.join("memory.current"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    if limit > 0 && limit < current {
        return Err(Error::InvalidArgument(format!(
            "linux.resources.memory.limit: {limit} is below the current usage {current} (checkBeforeUpdate)"
        )));
    }
    Ok(())
}

pub fn run(g: &Globals, a: &UpdateArgs) -> Result<()> {
    let r = requested(a)?;
    let c = Container::load(&g.root, &a.id)?;
    c.require_status(
        &[Status::Created, Status::Running, Status::Paused],
        "update",
    )?;
    let Some(path) = c.saved.cgroup.clone() else {
        return Err(Error::BadState {
            id: a.id.clone(),
            reason: "cannot update: the container has no cgroup".into(),
        });
    };
    check_before_update(&r, &path)?;
    let nodes = c
        .dir
        .load_config()
        .ok()
        .and_then(|s| s.linux().as_ref().and_then(|l| l.devices().clone()))
        .unwrap_or_default();
    Cgroup {
        path,
        unit: c.saved.systemd_unit.clone(),
    }
    .update(&r, &nodes)?;
    remember(&c, &r)
}

/// Objects merge key by key, anything else replaces: `{"memory":{"limit":1}}` over a config keeps the
/// other memory fields.
fn merge(base: &mut serde_json::Value, over: serde_json::Value) {
    match (base, over) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (b, o) => *b = o,
    }
}

/// Record the new limits in the container's saved config, as runc does, so later commands (another
/// `update`, `exec`) see what the container now runs with.
fn remember(c: &Container, r: &LinuxResources) -> Result<()> {
    let p = c.dir.path.join(crate::container::state::CONFIG_FILE);
    let Ok(raw) = std::fs::read(&p) else {
        return Ok(());
    };
    let mut config: serde_json::Value = serde_json::from_slice(&raw)
        .map_err(|e| Error::config(&p, format!("corrupt saved config: {e}")))?;
    let over = serde_json::to_value(r).expect("resources serialise");
    merge(&mut config["linux"]["resources"], over);
    c.dir
        .save_config(&serde_json::to_vec(&config).expect("config serialises"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_merge_into_the_saved_resources() {
        let mut c = serde_json::json!({"linux": {"resources": {"memory": {"limit": 1, "swap": 2}, "pids": {"limit": 3}}}});
        merge(
            &mut c["linux"]["resources"],
            serde_json::json!({"memory": {"limit": 5}, "cpu": {"shares": 9}}),
        );
        assert_eq!(
            c,
            serde_json::json!({"linux": {"resources": {"memory": {"limit": 5, "swap": 2}, "pids": {"limit": 3}, "cpu": {"shares": 9}}}})
        );
    }

    #[test]
    fn memory_sizes_parse_like_runc() {
        assert_eq!(parse_bytes("memory", "1048576").unwrap(), 1048576);
        assert_eq!(parse_bytes("memory", "512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("memory", "1G").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("memory", "-1").unwrap(), -1);
        assert!(parse_bytes("memory", "lots").is_err());
    }
}
