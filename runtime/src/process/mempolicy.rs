//! `linux.memoryPolicy`: the NUMA memory policy of the user process via set_mempolicy(2), set in the init just
//! before exec (the policy survives execve).

use oci_spec::runtime::{LinuxMemoryPolicy, MemoryPolicyFlagType, MemoryPolicyModeType, Spec};

use crate::error::{fail, InitResult, Step};
use crate::process::affinity;

pub const MODES: &[&str] = &[
    "MPOL_DEFAULT",
    "MPOL_PREFERRED",
    "MPOL_BIND",
    "MPOL_INTERLEAVE",
    "MPOL_LOCAL",
    "MPOL_PREFERRED_MANY",
    "MPOL_WEIGHTED_INTERLEAVE",
];

pub const FLAGS: &[&str] = &[
    "MPOL_F_NUMA_BALANCING",
    "MPOL_F_RELATIVE_NODES",
    "MPOL_F_STATIC_NODES",
];

fn mode_value(m: MemoryPolicyModeType) -> libc::c_int {
    match m {
        MemoryPolicyModeType::MpolDefault => 0,
        MemoryPolicyModeType::MpolPreferred => 1,
        MemoryPolicyModeType::MpolBind => 2,
        MemoryPolicyModeType::MpolInterleave => 3,
        MemoryPolicyModeType::MpolLocal => 4,
        MemoryPolicyModeType::MpolPreferredMany => 5,
        MemoryPolicyModeType::MpolWeightedInterleave => 6,
    }
}

fn flag_value(f: MemoryPolicyFlagType) -> libc::c_int {
    match f {
        MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
        MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
        MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
    }
}

/// Node mask words as set_mempolicy wants them (the node list has the CPU list's syntax).
fn node_mask(nodes: &str) -> Result<(Vec<libc::c_ulong>, usize), String> {
    let bits = 8 * std::mem::size_of::<libc::c_ulong>();
    let mut mask: Vec<libc::c_ulong> = Vec::new();
    let set = affinity::parse_list(nodes)?;
    for n in 0..nix::sched::CpuSet::count() {
        if set.is_set(n).unwrap_or(false) {
            if mask.len() <= n / bits {
                mask.resize(n / bits + 1, 0);
            }
            mask[n / bits] |= 1 << (n % bits);
        }
    }
    // maxnode counts one past the highest bit the kernel should read.
    let maxnode = mask.len() * bits + 1;
    Ok((mask, maxnode))
}

/// The spec's `linux.memoryPolicy`, when it has one.
fn policy(spec: &Spec) -> Option<&LinuxMemoryPolicy> {
    spec.linux().as_ref()?.memory_policy().as_ref()
}

pub fn check(spec: &Spec) -> Result<(), String> {
    let Some(p) = policy(spec) else {
        return Ok(());
    };
    let nodes = p.nodes().as_deref().filter(|n| !n.is_empty());
    let mode = p.mode();
    if let Some(n) = nodes {
        node_mask(n).map_err(|e| format!("linux.memoryPolicy.nodes {n:?}: {e}"))?;
    }
    match mode {
        MemoryPolicyModeType::MpolDefault | MemoryPolicyModeType::MpolLocal if nodes.is_some() => {
            return Err(format!("linux.memoryPolicy.nodes: {mode} takes no nodes"))
        }
        MemoryPolicyModeType::MpolBind
        | MemoryPolicyModeType::MpolInterleave
        | MemoryPolicyModeType::MpolWeightedInterleave
        | MemoryPolicyModeType::MpolPreferredMany
            if nodes.is_none() =>
        {
            return Err(format!("linux.memoryPolicy.nodes: required for {mode}"))
        }
        _ => {}
    }
    let flags = p.flags().clone().unwrap_or_default();
    if flags.contains(&MemoryPolicyFlagType::MpolFStaticNodes)
        && flags.contains(&MemoryPolicyFlagType::MpolFRelativeNodes)
    {
        return Err(
            "linux.memoryPolicy.flags: MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other"
                .into(),
        );
    }
    if !flags.is_empty()
        && matches!(
            mode,
            MemoryPolicyModeType::MpolDefault | MemoryPolicyModeType::MpolLocal
        )
    {
        return Err(format!("linux.memoryPolicy.flags: {mode} takes no flags"));
    }
    if flags.contains(&MemoryPolicyFlagType::MpolFNumaBalancing)
        && !matches!(
            mode,
            MemoryPolicyModeType::MpolBind | MemoryPolicyModeType::MpolPreferredMany
        )
    {
        return Err(format!(
            "linux.memoryPolicy.flags: MPOL_F_NUMA_BALANCING needs MPOL_BIND or MPOL_PREFERRED_MANY, not {mode}"
        ));
    }
    Ok(())
}

pub fn apply(spec: &Spec) -> InitResult<()> {
    let Some(p) = policy(spec) else {
        return Ok(());
    };
    let mut mode = mode_value(p.mode());
    for f in p.flags().iter().flatten() {
        mode |= flag_value(*f);
    }
    let (mask, maxnode) = match p.nodes().as_deref().filter(|n| !n.is_empty()) {
        Some(n) => node_mask(n).map_err(|e| fail(format!("linux.memoryPolicy.nodes: {e}")))?,
        None => (Vec::new(), 0),
    };
    crate::sys::set_mempolicy(mode, &mask, maxnode as libc::c_ulong).step(|| {
        format!(
            "linux.memoryPolicy: set_mempolicy {} nodes {:?}",
            p.mode(),
            p.nodes().as_deref().unwrap_or("")
        )
    })?;
    Ok(())
}
