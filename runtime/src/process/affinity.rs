//! `process.execCPUAffinity`: `initial` is the CPU set the runtime's process inside the container runs on while
//! it sets the container up, `final` the set of the user process (applied just before exec). Both use the
//! spec's CPU list syntax, e.g. `0-3,7`.

use nix::sched::{sched_setaffinity, CpuSet};
use nix::unistd::Pid;
use oci_spec::runtime::Process;

use crate::error::{fail, InitResult, Step};

/// Parse `0-3,7` into a CPU set; the error says what is wrong with which part.
pub fn parse_list(list: &str) -> Result<CpuSet, String> {
    let mut set = CpuSet::new();
    for part in list.split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let lo: usize = lo
            .trim()
            .parse()
            .map_err(|_| format!("{part:?}: not a CPU number or range"))?;
        let hi: usize = hi
            .trim()
            .parse()
            .map_err(|_| format!("{part:?}: not a CPU number or range"))?;
        if lo > hi {
            return Err(format!("{part:?}: range goes backwards"));
        }
        for cpu in lo..=hi {
            set.set(cpu).map_err(|_| {
                format!(
                    "CPU {cpu}: above the largest CPU number {}",
                    CpuSet::count() - 1
                )
            })?;
        }
    }
    Ok(set)
}

fn lists(process: &Process) -> [(&'static str, Option<&str>); 2] {
    let a = process.exec_cpu_affinity().as_ref();
    [
        ("initial", a.and_then(|a| a.initial().as_deref())),
        ("final", a.and_then(|a| a.cpu_affinity_final().as_deref())),
    ]
}

pub fn check(process: &Process) -> Result<(), String> {
    for (field, list) in lists(process) {
        if let Some(l) = list.filter(|l| !l.is_empty()) {
            parse_list(l).map_err(|e| format!("process.execCPUAffinity.{field} {l:?}: {e}"))?;
        }
    }
    Ok(())
}

fn apply_one(process: &Process, which: usize) -> InitResult<()> {
    let (field, list) = lists(process)[which];
    let Some(l) = list.filter(|l| !l.is_empty()) else {
        return Ok(());
    };
    let set = parse_list(l).map_err(|e| fail(format!("process.execCPUAffinity.{field}: {e}")))?;
    sched_setaffinity(Pid::from_raw(0), &set)
        .step(|| format!("process.execCPUAffinity.{field} {l}: sched_setaffinity"))
}

/// First thing in the container's process, while the runtime works inside it.
pub fn apply_initial(process: &Process) -> InitResult<()> {
    apply_one(process, 0)
}

/// Last thing before the user process is exec'd. Without `final`, the affinity is what the kernel gives a
/// process moved into the container's cgroup (its cpuset), not `initial`: our processes are born in the cgroup,
/// so the kernel never resets it, and asking for every CPU gets exactly the cpuset's.
pub fn apply_final(process: &Process) -> InitResult<()> {
    let [(_, initial), (_, fin)] = lists(process);
    let unset = |l: Option<&str>| l.is_none_or(str::is_empty);
    if unset(fin) && !unset(initial) {
        let mut all = CpuSet::new();
        for cpu in 0..CpuSet::count() {
            let _ = all.set(cpu);
        }
        return sched_setaffinity(Pid::from_raw(0), &all)
            .step(|| "process.execCPUAffinity: reset the affinity after initial".into());
    }
    apply_one(process, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_as_the_spec_writes_them() {
        let s = parse_list("0-3,7").unwrap();
        let set: Vec<usize> = (0..16).filter(|c| s.is_set(*c).unwrap()).collect();
        assert_eq!(set, vec![0, 1, 2, 3, 7]);
        assert_eq!(
            parse_list("3-1").unwrap_err(),
            "\"3-1\": range goes backwards"
        );
        assert!(parse_list("a").unwrap_err().contains("not a CPU number"));
        assert!(parse_list("1,,2").is_err());
        assert!(parse_list("99999")
            .unwrap_err()
            .contains("above the largest CPU number"));
    }
}
