//! `linux.resources` → the cgroup v2 files and values that express it, computed (and checked) before
//! anything is created, so a bad value leaves nothing behind. The v1-shaped fields of the spec are
//! converted the way runc converts them (shares → weight, memory+swap → swap, blkio weight → io.weight).

use std::collections::BTreeSet;

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};

use super::error::CgroupError;

/// One value to write into one cgroup file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The spec field this comes from, for error messages.
    pub field: String,
    pub file: String,
    pub value: String,
    /// Written instead when `file` does not exist (io.bfq.weight → io.weight without BFQ).
    pub fallback: Option<(String, String)>,
}

#[derive(Debug, Default, Clone)]
pub struct Plan {
    pub writes: Vec<Write>,
    /// Controllers that must be enabled above the cgroup, each with the first field needing it.
    pub controllers: Vec<(String, String)>,
    /// v1-only fields that clients still send (field, why): dropped with a warning, as runc's fs2 manager and
    /// crun do.
    pub ignored: Vec<(String, &'static str)>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    fn push(&mut self, field: &str, file: &str, value: impl Into<String>) {
        self.writes.push(Write {
            field: field.into(),
            file: file.into(),
            value: value.into(),
            fallback: None,
        });
    }
}

/// Files that manage membership or the tree, never limits: `unified` must not reach them.
const UNIFIED_FORBIDDEN: &[&str] = &[
    "cgroup.procs",
    "cgroup.threads",
    "cgroup.subtree_control",
    "cgroup.kill",
    "cgroup.freeze",
    "cgroup.type",
];

fn bad(field: &str, reason: impl Into<String>) -> CgroupError {
    CgroupError::BadValue {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The writes for `r`. `current_memory_limit` is the container's memory.max when `r` comes from an
/// update that changes swap without memory (the v1 swap value is memory+swap).
pub fn plan(r: &LinuxResources, current_memory_limit: Option<i64>) -> Result<Plan, CgroupError> {
    let mut p = Plan::default();
    if let Some(m) = r.memory() {
        memory(&mut p, m, current_memory_limit)?;
    }
    if let Some(c) = r.cpu() {
        cpu(&mut p, c)?;
    }
    if let Some(pids) = r.pids() {
        // runtime-spec: a limit of 0 or less means "no limit".
        let v = if pids.limit() > 0 {
            pids.limit().to_string()
        } else {
            "max".into()
        };
        p.push("linux.resources.pids.limit", "pids.max", v);
    }
    if let Some(b) = r.block_io() {
        block_io(&mut p, b)?;
    }
    for h in r.hugepage_limits().as_deref().unwrap_or(&[]) {
        let field = "linux.resources.hugepageLimits";
        let size = h.page_size();
        if size.is_empty() || !size.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(bad(
                field,
                format!("pageSize {size:?} is not a size like 2MB or 1GB"),
            ));
        }
        if h.limit() < 0 {
            return Err(bad(
                field,
                format!("limit {} for {size} is negative", h.limit()),
            ));
        }
        p.push(field, &format!("hugetlb.{size}.max"), h.limit().to_string());
    }
    if let Some(rdma) = r.rdma() {
        let mut devs: Vec<_> = rdma.iter().collect();
        devs.sort_by(|a, b| a.0.cmp(b.0));
        for (dev, lim) in devs {
            if dev.is_empty() || dev.contains(char::is_whitespace) {
                return Err(bad(
                    "linux.resources.rdma",
                    format!("device name {dev:?} is not valid"),
                ));
            }
            let num = |v: Option<u32>| v.map(|n| n.to_string()).unwrap_or_else(|| "max".into());
            p.push(
                "linux.resources.rdma",
                "rdma.max",
                format!(
                    "{dev} hca_handle={} hca_object={}",
                    num(lim.hca_handles()),
                    num(lim.hca_objects())
                ),
            );
        }
    }
    if let Some(n) = r.network() {
        if n.class_id().is_some() || n.priorities().as_ref().is_some_and(|v| !v.is_empty()) {
            p.ignored.push((
                "linux.resources.network".into(),
                "net_cls/net_prio are cgroup v1 controllers: not available on cgroup v2",
            ));
        }
    }
    if let Some(u) = r.unified() {
        unified(&mut p, u)?;
    }
    let mut seen = BTreeSet::new();
    for w in &p.writes {
        let ctrl = controller_of(&w.file);
        if ctrl != "cgroup" && seen.insert(ctrl.to_string()) {
            p.controllers.push((ctrl.to_string(), w.field.clone()));
        }
    }
    Ok(p)
}

/// `memory.max` → `memory`; `cgroup.*` files belong to the core, not to a controller.
pub fn controller_of(file: &str) -> &str {
    file.split('.').next().unwrap_or(file)
}

/// v1 memory values: -1 is "no limit", 0 is "not set".
fn mem_value(field: &str, v: i64) -> Result<Option<String>, CgroupError> {
    match v {
        0 => Ok(None),
        -1 => Ok(Some("max".into())),
        v if v < 0 => Err(bad(field, format!("{v} is negative (use -1 for no limit)"))),
        v => Ok(Some(v.to_string())),
    }
}

fn memory(p: &mut Plan, m: &LinuxMemory, current_limit: Option<i64>) -> Result<(), CgroupError> {
    let limit = m.limit();
    if let Some(l) = limit {
        if let Some(v) = mem_value("linux.resources.memory.limit", l)? {
            p.push("linux.resources.memory.limit", "memory.max", v);
        }
    }
    if let Some(r) = m.reservation() {
        if let Some(v) = mem_value("linux.resources.memory.reservation", r)? {
            p.push("linux.resources.memory.reservation", "memory.low", v);
        }
    }
    let swap_field = "linux.resources.memory.swap";
    let mem_for_swap = limit.or(current_limit).unwrap_or(0);
    match (m.swap(), limit) {
        // runc: memory set to unlimited without a swap value means swap unlimited too.
        (None | Some(0), Some(-1)) => p.push(swap_field, "memory.swap.max", "max"),
        (None | Some(0), _) => {}
        (Some(-1), _) => p.push(swap_field, "memory.swap.max", "max"),
        (Some(s), _) if s < 0 => {
            return Err(bad(
                swap_field,
                format!("{s} is negative (use -1 for no limit)"),
            ))
        }
        (Some(s), _) => {
            if mem_for_swap <= 0 {
                return Err(bad(
                    swap_field,
                    "a swap limit needs a memory limit (swap is memory+swap, as in cgroup v1)",
                ));
            }
            if s < mem_for_swap {
                return Err(bad(
                    swap_field,
                    format!("{s} is below the memory limit {mem_for_swap}: swap is memory+swap"),
                ));
            }
            p.push(
                swap_field,
                "memory.swap.max",
                (s - mem_for_swap).to_string(),
            );
        }
    }
    // Fields of cgroup v1 with no v2 file. Docker, podman and the CRI still fill them in (often with
    // defaults), so refusing them would refuse ordinary containers.
    if m.kernel_tcp().is_some_and(|v| v != 0) {
        p.ignored.push((
            "linux.resources.memory.kernelTCP".into(),
            "kernel TCP memory limits do not exist in cgroup v2",
        ));
    }
    if m.kernel().is_some_and(|v| v != 0) {
        p.ignored.push((
            "linux.resources.memory.kernel".into(),
            "kernel memory limits do not exist in cgroup v2 (the field is deprecated)",
        ));
    }
    if m.swappiness().is_some() {
        p.ignored.push((
            "linux.resources.memory.swappiness".into(),
            "per-cgroup swappiness does not exist in cgroup v2",
        ));
    }
    if m.disable_oom_killer() == Some(true) {
        p.ignored.push((
            "linux.resources.memory.disableOOMKiller".into(),
            "the OOM killer cannot be disabled per cgroup in cgroup v2",
        ));
    }
    Ok(())
}

/// runc's (and crun's) conversion of cpu.shares [2, 262144] to cpu.weight [1, 10000].
pub fn shares_to_weight(shares: u64) -> u64 {
    1 + (shares.clamp(2, 262144) - 2) * 9999 / 262142
}

/// `0-3,5,7-8`: what the kernel accepts for cpuset.cpus / cpuset.mems.
pub fn valid_cpu_list(s: &str) -> bool {
    let s = s.trim();
    s.is_empty()
        || s.split(',').all(|part| {
            let mut ends = part.splitn(2, '-');
            let a = ends.next().map(|x| x.parse::<u32>());
            let b = ends.next().map(|x| x.parse::<u32>());
            match (a, b) {
                (Some(Ok(_)), None) => true,
                (Some(Ok(a)), Some(Ok(b))) => a <= b,
                _ => false,
            }
        })
}

fn cpu(p: &mut Plan, c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(s) = c.shares() {
        if s != 0 {
            if !(2..=262144).contains(&s) {
                return Err(bad(
                    "linux.resources.cpu.shares",
                    format!("{s} is outside 2..262144"),
                ));
            }
            p.push(
                "linux.resources.cpu.shares",
                "cpu.weight",
                shares_to_weight(s).to_string(),
            );
        }
    }
    let quota = c.quota().unwrap_or(0);
    let period = c.period().unwrap_or(0);
    if quota != 0 || period != 0 {
        let field = "linux.resources.cpu.quota";
        if quota < -1 {
            return Err(bad(
                field,
                format!("{quota} is negative (use -1 for no limit)"),
            ));
        }
        if period != 0 && !(1000..=1_000_000).contains(&period) {
            return Err(bad(
                "linux.resources.cpu.period",
                format!("{period} is outside 1000..1000000 microseconds"),
            ));
        }
        let q = if quota > 0 {
            quota.to_string()
        } else {
            "max".into()
        };
        // Without a period the kernel keeps the current one (100000 by default).
        let v = if period != 0 {
            format!("{q} {period}")
        } else {
            q
        };
        p.push(field, "cpu.max", v);
    }
    if let Some(b) = c.burst() {
        p.push("linux.resources.cpu.burst", "cpu.max.burst", b.to_string());
    }
    if let Some(i) = c.idle() {
        if i != 0 && i != 1 {
            return Err(bad(
                "linux.resources.cpu.idle",
                format!("{i} is not 0 or 1"),
            ));
        }
        p.push("linux.resources.cpu.idle", "cpu.idle", i.to_string());
    }
    if c.realtime_runtime().is_some_and(|v| v != 0) || c.realtime_period().is_some_and(|v| v != 0) {
        return Err(bad(
            "linux.resources.cpu.realtimeRuntime",
            "real-time CPU bandwidth does not exist in cgroup v2",
        ));
    }
    for (field, file, v) in [
        ("linux.resources.cpu.cpus", "cpuset.cpus", c.cpus()),
        ("linux.resources.cpu.mems", "cpuset.mems", c.mems()),
    ] {
        if let Some(v) = v {
            if !valid_cpu_list(v) {
                return Err(bad(field, format!("{v:?} is not a list like 0-3,5")));
            }
            if !v.trim().is_empty() {
                p.push(field, file, v.trim());
            }
        }
    }
    Ok(())
}

/// runc's conversion of blkio.weight [10, 1000] to io.weight [1, 10000].
pub fn blkio_to_io_weight(w: u16) -> u64 {
    1 + (u64::from(w).clamp(10, 1000) - 10) * 9999 / 990
}

fn block_io(p: &mut Plan, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    let check = |field: &str, w: u16| {
        if (10..=1000).contains(&w) {
            Ok(())
        } else {
            Err(bad(field, format!("{w} is outside 10..1000")))
        }
    };
    if let Some(w) = b.weight() {
        if w != 0 {
            check("linux.resources.blockIO.weight", w)?;
            p.writes.push(Write {
                field: "linux.resources.blockIO.weight".into(),
                file: "io.bfq.weight".into(),
                value: w.to_string(),
                fallback: Some((
                    "io.weight".into(),
                    format!("default {}", blkio_to_io_weight(w)),
                )),
            });
        }
    }
    if b.leaf_weight().is_some_and(|w| w != 0) {
        p.ignored.push((
            "linux.resources.blockIO.leafWeight".into(),
            "leaf weights do not exist in cgroup v2",
        ));
    }
    for d in b.weight_device().as_deref().unwrap_or(&[]) {
        let field = "linux.resources.blockIO.weightDevice";
        if d.leaf_weight().is_some_and(|w| w != 0) {
            p.ignored.push((
                format!("{field}.leafWeight"),
                "leaf weights do not exist in cgroup v2",
            ));
        }
        if let Some(w) = d.weight() {
            check(field, w)?;
            let dev = device(field, d.major(), d.minor())?;
            p.writes.push(Write {
                field: field.into(),
                file: "io.bfq.weight".into(),
                value: format!("{dev} {w}"),
                fallback: Some((
                    "io.weight".into(),
                    format!("{dev} {}", blkio_to_io_weight(w)),
                )),
            });
        }
    }
    for (name, key, list) in [
        (
            "throttleReadBpsDevice",
            "rbps",
            b.throttle_read_bps_device(),
        ),
        (
            "throttleWriteBpsDevice",
            "wbps",
            b.throttle_write_bps_device(),
        ),
        (
            "throttleReadIOPSDevice",
            "riops",
            b.throttle_read_iops_device(),
        ),
        (
            "throttleWriteIOPSDevice",
            "wiops",
            b.throttle_write_iops_device(),
        ),
    ] {
        let field = format!("linux.resources.blockIO.{name}");
        for d in list.as_deref().unwrap_or(&[]) {
            let dev = device(&field, d.major(), d.minor())?;
            // v1 semantics: a rate of 0 removes the throttle.
            let rate = if d.rate() == 0 {
                "max".to_string()
            } else {
                d.rate().to_string()
            };
            p.push(&field, "io.max", format!("{dev} {key}={rate}"));
        }
    }
    Ok(())
}

fn device(field: &str, major: i64, minor: i64) -> Result<String, CgroupError> {
    if major < 0 || minor < 0 {
        return Err(bad(
            field,
            format!("device {major}:{minor} is not a block device number"),
        ));
    }
    Ok(format!("{major}:{minor}"))
}

fn unified(p: &mut Plan, u: &std::collections::HashMap<String, String>) -> Result<(), CgroupError> {
    let mut keys: Vec<_> = u.iter().collect();
    keys.sort_by(|a, b| a.0.cmp(b.0));
    for (k, v) in keys {
        let field = format!("linux.resources.unified[{k:?}]");
        if k.is_empty() || k.contains('/') || !k.contains('.') || k.starts_with('.') {
            return Err(bad(&field, "not a cgroup file name like memory.high"));
        }
        if UNIFIED_FORBIDDEN.contains(&k.as_str()) {
            return Err(bad(&field, "manages cgroup membership, not a resource"));
        }
        p.push(&field, k, v.clone());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    fn files(p: &Plan) -> Vec<(String, String)> {
        p.writes
            .iter()
            .map(|w| (w.file.clone(), w.value.clone()))
            .collect()
    }

    fn pair(a: &str, b: &str) -> (String, String) {
        (a.into(), b.into())
    }

    #[test]
    fn memory_limits_and_swap_convert_as_runc_does() {
        let p = plan(
            &res(r#"{"memory":{"limit":1048576,"reservation":524288,"swap":3145728}}"#),
            None,
        )
        .unwrap();
        assert_eq!(
            files(&p),
            vec![
                pair("memory.max", "1048576"),
                pair("memory.low", "524288"),
                pair("memory.swap.max", "2097152")
            ]
        );
        let p = plan(&res(r#"{"memory":{"limit":-1}}"#), None).unwrap();
        assert_eq!(
            files(&p),
            vec![pair("memory.max", "max"), pair("memory.swap.max", "max")]
        );
        let e = plan(&res(r#"{"memory":{"limit":-5}}"#), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("linux.resources.memory.limit: -5 is negative"),
            "{e}"
        );
        assert!(plan(&res(r#"{"memory":{"limit":100,"swap":50}}"#), None).is_err());
        // update --memory-swap alone: swap is relative to the current limit
        let p = plan(&res(r#"{"memory":{"swap":300}}"#), Some(100)).unwrap();
        assert_eq!(files(&p), vec![pair("memory.swap.max", "200")]);
    }

    #[test]
    fn v1_only_memory_fields_are_ignored_with_a_reason_and_write_nothing() {
        let p = plan(
            &res(r#"{"memory":{"kernel":1048576,"kernelTCP":1048576,"swappiness":60,"disableOOMKiller":true}}"#),
            None,
        )
        .unwrap();
        assert!(p.writes.is_empty());
        let fields: Vec<&str> = p.ignored.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "linux.resources.memory.kernelTCP",
                "linux.resources.memory.kernel",
                "linux.resources.memory.swappiness",
                "linux.resources.memory.disableOOMKiller"
            ]
        );
        // A limit beside them is still applied.
        let p = plan(&res(r#"{"memory":{"limit":1048576,"kernelTCP":0}}"#), None).unwrap();
        assert_eq!(p.writes.len(), 1);
        assert!(p.ignored.is_empty());
    }

    #[test]
    fn v1_only_network_and_leaf_weights_are_ignored_but_the_weights_beside_them_apply() {
        let p = plan(
            &res(r#"{"network":{"classID":1048577,"priorities":[{"name":"eth0","priority":5}]},
                     "blockIO":{"weight":500,"leafWeight":300,"weightDevice":[{"major":8,"minor":0,"weight":500,"leafWeight":300}]}}"#),
            None,
        )
        .unwrap();
        let fields: Vec<&str> = p.ignored.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "linux.resources.blockIO.leafWeight",
                "linux.resources.blockIO.weightDevice.leafWeight",
                "linux.resources.network"
            ]
        );
        assert_eq!(p.writes.len(), 2, "{:?}", p.writes);
    }

    #[test]
    fn cpu_fields_convert_as_runc_does() {
        let p = plan(
            &res(r#"{"cpu":{"shares":1024,"quota":50000,"period":100000,"cpus":"0","mems":"0","idle":0,"burst":1000}}"#),
            None,
        )
        .unwrap();
        assert_eq!(
            files(&p),
            vec![
                pair("cpu.weight", "39"),
                pair("cpu.max", "50000 100000"),
                pair("cpu.max.burst", "1000"),
                pair("cpu.idle", "0"),
                pair("cpuset.cpus", "0"),
                pair("cpuset.mems", "0")
            ]
        );
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262144), 10000);
        let e = plan(&res(r#"{"cpu":{"cpus":"abc"}}"#), None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "linux.resources.cpu.cpus: \"abc\" is not a list like 0-3,5"
        );
        assert!(valid_cpu_list("0-3,5,7-8"));
        assert!(!valid_cpu_list("3-1"));
        let p = plan(&res(r#"{"cpu":{"quota":-1}}"#), None).unwrap();
        assert_eq!(files(&p), vec![pair("cpu.max", "max")]);
    }

    #[test]
    fn io_hugetlb_rdma_pids_and_unified() {
        let p = plan(
            &res(r#"{"pids":{"limit":0},"blockIO":{"weight":500,"throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1000}]},
                 "hugepageLimits":[{"pageSize":"2MB","limit":4194304}],"rdma":{"mlx4_0":{"hcaHandles":2}},
                 "unified":{"memory.high":"1000000"}}"#),
            None,
        )
        .unwrap();
        assert_eq!(
            files(&p),
            vec![
                pair("pids.max", "max"),
                pair("io.bfq.weight", "500"),
                pair("io.max", "8:0 rbps=1000"),
                pair("hugetlb.2MB.max", "4194304"),
                pair("rdma.max", "mlx4_0 hca_handle=2 hca_object=max"),
                pair("memory.high", "1000000"),
            ]
        );
        assert_eq!(
            p.writes[1].fallback,
            Some(pair(
                "io.weight",
                &format!("default {}", blkio_to_io_weight(500))
            ))
        );
        let names: Vec<_> = p.controllers.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(names, ["pids", "io", "hugetlb", "rdma", "memory"]);
        assert!(plan(&res(r#"{"unified":{"cgroup.procs":"1"}}"#), None).is_err());
        assert!(plan(&res(r#"{"unified":{"../x":"1"}}"#), None).is_err());
    }
}
