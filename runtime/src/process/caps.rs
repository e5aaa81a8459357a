//! The five capability sets. The bounding set is dropped first (it needs CAP_SETPCAP), the others are set
//! in one capset(2) after the uid switch, then the ambient set is raised.

use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

use crate::error::{InitResult, Step};
use crate::sys::{capset, CapData};

/// "CAP_CHOWN" → its number, via the caps crate's table.
pub fn number(c: &Capability) -> Option<u8> {
    let name = serde_json::to_value(c).ok()?.as_str()?.to_string();
    name.parse::<caps::Capability>().ok().map(|c| c.index())
}

/// The highest capability this kernel knows (/proc/sys/kernel/cap_last_cap).
pub fn last_cap() -> u8 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Capability names the kernel does not know: the caller warns and they are dropped (runc's behaviour).
pub fn unknown_to_kernel(lc: &LinuxCapabilities) -> Vec<String> {
    let last = last_cap();
    let mut out = Vec::new();
    for set in [
        lc.bounding(),
        lc.effective(),
        lc.permitted(),
        lc.inheritable(),
        lc.ambient(),
    ]
    .into_iter()
    .flatten()
    {
        for c in set {
            if number(c).map(|n| n > last).unwrap_or(true) {
                let n = serde_json::to_value(c)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                if !out.contains(&n) {
                    out.push(n);
                }
            }
        }
    }
    out
}

fn mask(set: &Option<Capabilities>) -> u64 {
    let last = last_cap();
    set.iter()
        .flatten()
        .filter_map(number)
        .filter(|n| *n <= last)
        .fold(0u64, |m, n| m | (1u64 << n))
}

pub fn drop_bounding(lc: &LinuxCapabilities) -> InitResult<()> {
    let keep = mask(lc.bounding());
    for n in 0..=last_cap() {
        if keep & (1 << n) == 0 {
            // SAFETY: PR_CAPBSET_DROP takes a capability number and touches no memory.
            let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, n as libc::c_ulong, 0, 0, 0) };
            nix::errno::Errno::result(r)
                .step(|| format!("drop capability {n} from the bounding set"))?;
        }
    }
    Ok(())
}

pub fn apply(lc: &LinuxCapabilities) -> InitResult<()> {
    let (e, p, i) = (
        mask(lc.effective()),
        mask(lc.permitted()),
        mask(lc.inheritable()),
    );
    let data = [
        CapData {
            effective: e as u32,
            permitted: p as u32,
            inheritable: i as u32,
        },
        CapData {
            effective: (e >> 32) as u32,
            permitted: (p >> 32) as u32,
            inheritable: (i >> 32) as u32,
        },
    ];
    capset(data).step(|| "set effective/permitted/inheritable capabilities".into())?;
    // SAFETY: ambient prctls take integers only.
    let r = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    nix::errno::Errno::result(r).step(|| "clear ambient capabilities".into())?;
    // The kernel only raises an ambient capability that is also permitted and inheritable. `runc spec`
    // writes ambient sets without inheritable ones and runc/crun skip what cannot be raised: do the same,
    // so such configs run unchanged.
    let amb = mask(lc.ambient()) & p & i;
    for n in 0..64u64 {
        if amb & (1 << n) != 0 {
            // SAFETY: as above.
            let r = unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    n as libc::c_ulong,
                    0,
                    0,
                )
            };
            nix::errno::Errno::result(r).step(|| format!("raise ambient capability {n}"))?;
        }
    }
    Ok(())
}
