//! `process.scheduler`: policy, nice, static priority, flags and the DEADLINE parameters via sched_setattr(2).
//! Combinations the kernel would reject or silently ignore are refused up front, naming the field.

use oci_spec::runtime::{LinuxSchedulerFlag, LinuxSchedulerPolicy, Process, Scheduler};

use crate::error::{InitResult, Step};
use crate::sys::{sched_setattr_self, SchedAttr};

/// struct sched_attr, SCHED_ATTR_SIZE_VER1.
/// The policies Linux implements, by spec name (SCHED_ISO is reserved but never implemented by Linux).
pub const POLICIES: &[&str] = &[
    "SCHED_OTHER",
    "SCHED_FIFO",
    "SCHED_RR",
    "SCHED_BATCH",
    "SCHED_IDLE",
    "SCHED_DEADLINE",
];

pub const FLAGS: &[&str] = &[
    "SCHED_FLAG_RESET_ON_FORK",
    "SCHED_FLAG_RECLAIM",
    "SCHED_FLAG_DL_OVERRUN",
    "SCHED_FLAG_KEEP_POLICY",
    "SCHED_FLAG_KEEP_PARAMS",
    "SCHED_FLAG_UTIL_CLAMP_MIN",
    "SCHED_FLAG_UTIL_CLAMP_MAX",
];

fn policy_value(p: LinuxSchedulerPolicy) -> Option<u32> {
    Some(match p {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        LinuxSchedulerPolicy::SchedIso => return None,
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    })
}

fn flag_value(f: LinuxSchedulerFlag) -> u64 {
    match f {
        LinuxSchedulerFlag::SchedResetOnFork => 0x01,
        LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
        LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
        LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
        LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
        LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
        LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
    }
}

/// oci-spec 0.10 spells the flags differently from runtime-spec (e.g. SCHED_RESET_ON_FORK,
/// SCHED_FLAG_D_L_OVERRUN): rewrite the spec's names in the raw JSON before it is parsed.
pub fn normalize_flag_names(config: &mut serde_json::Value) {
    let Some(flags) = config
        .pointer_mut("/process/scheduler/flags")
        .and_then(|f| f.as_array_mut())
    else {
        return;
    };
    for f in flags {
        let parsed = |name: &str| -> Option<String> {
            let want = match name {
                "SCHED_FLAG_RESET_ON_FORK" => LinuxSchedulerFlag::SchedResetOnFork,
                "SCHED_FLAG_RECLAIM" => LinuxSchedulerFlag::SchedFlagReclaim,
                "SCHED_FLAG_DL_OVERRUN" => LinuxSchedulerFlag::SchedFlagDLOverrun,
                "SCHED_FLAG_KEEP_POLICY" => LinuxSchedulerFlag::SchedFlagKeepPolicy,
                "SCHED_FLAG_KEEP_PARAMS" => LinuxSchedulerFlag::SchedFlagKeepParams,
                "SCHED_FLAG_UTIL_CLAMP_MIN" => LinuxSchedulerFlag::SchedFlagUtilClampMin,
                "SCHED_FLAG_UTIL_CLAMP_MAX" => LinuxSchedulerFlag::SchedFlagUtilClampMax,
                _ => return None,
            };
            serde_json::to_value(want).ok()?.as_str().map(String::from)
        };
        if let Some(n) = f.as_str().and_then(parsed) {
            *f = n.into();
        }
    }
}

pub fn check(process: &Process) -> Result<(), String> {
    let Some(s) = process.scheduler() else {
        return Ok(());
    };
    check_scheduler(s)
}

fn check_scheduler(s: &Scheduler) -> Result<(), String> {
    let policy = *s.policy();
    if policy_value(policy).is_none() {
        return Err(
            "process.scheduler.policy SCHED_ISO: not implemented by the Linux kernel".into(),
        );
    }
    let rt = matches!(
        policy,
        LinuxSchedulerPolicy::SchedFifo | LinuxSchedulerPolicy::SchedRr
    );
    let dl = policy == LinuxSchedulerPolicy::SchedDeadline;
    if let Some(n) = *s.nice() {
        if !(-20..=19).contains(&n) {
            return Err(format!("process.scheduler.nice {n}: out of range -20..19"));
        }
        if rt || dl {
            return Err(format!(
                "process.scheduler.nice: has no effect with policy {policy} (only SCHED_OTHER, SCHED_BATCH and SCHED_IDLE use it)"
            ));
        }
    }
    match (*s.priority(), rt) {
        (Some(p), true) if !(1..=99).contains(&p) => {
            return Err(format!(
                "process.scheduler.priority {p}: out of range 1..99 for {policy}"
            ))
        }
        (None, true) => {
            return Err(format!(
                "process.scheduler.priority: required for {policy} (1..99)"
            ))
        }
        (Some(p), false) if p != 0 => {
            return Err(format!(
                "process.scheduler.priority {p}: only SCHED_FIFO and SCHED_RR take a priority"
            ))
        }
        _ => {}
    }
    let (runtime, deadline, period) = (*s.runtime(), *s.deadline(), *s.period());
    if !dl {
        if runtime.is_some() || deadline.is_some() || period.is_some() {
            return Err(
                "process.scheduler.runtime/deadline/period: only SCHED_DEADLINE takes them".into(),
            );
        }
        return Ok(());
    }
    let runtime = runtime.unwrap_or(0);
    let deadline = deadline.unwrap_or(0);
    let period = period.unwrap_or(0);
    if runtime == 0 || deadline == 0 {
        return Err(
            "process.scheduler: SCHED_DEADLINE needs runtime and deadline (nanoseconds)".into(),
        );
    }
    if runtime < 1024 {
        return Err(format!(
            "process.scheduler.runtime {runtime}: SCHED_DEADLINE needs at least 1024 ns"
        ));
    }
    if runtime > deadline || (period != 0 && deadline > period) {
        return Err(format!(
            "process.scheduler: SCHED_DEADLINE needs runtime ({runtime}) <= deadline ({deadline}) <= period ({period})"
        ));
    }
    Ok(())
}

pub fn apply(process: &Process) -> InitResult<()> {
    let Some(s) = process.scheduler() else {
        return Ok(());
    };
    let mut attr = SchedAttr {
        sched_policy: policy_value(*s.policy()).unwrap_or(0),
        sched_nice: s.nice().unwrap_or(0),
        sched_priority: s.priority().unwrap_or(0) as u32,
        sched_runtime: s.runtime().unwrap_or(0),
        sched_deadline: s.deadline().unwrap_or(0),
        sched_period: s.period().unwrap_or(0),
        ..Default::default()
    };
    for f in s.flags().iter().flatten() {
        attr.sched_flags |= flag_value(*f);
    }
    sched_setattr_self(attr)
        .step(|| format!("process.scheduler: sched_setattr policy {}", s.policy()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_flag_names_become_oci_spec_names_and_parse() {
        let mut v = serde_json::json!({"process": {"scheduler": {"policy": "SCHED_OTHER",
            "flags": ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_DL_OVERRUN", "SCHED_FLAG_UTIL_CLAMP_MAX"]}}});
        normalize_flag_names(&mut v);
        let s: Scheduler = serde_json::from_value(v["process"]["scheduler"].take()).unwrap();
        let bits: u64 = s.flags().iter().flatten().map(|f| flag_value(*f)).sum();
        assert_eq!(bits, 0x01 | 0x04 | 0x40);
    }
}
