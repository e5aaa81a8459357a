//! `linux.seccomp` → one BPF program.
//!
//! Shape of the program (x86_64):
//!
//! ```text
//!   load arch
//!   x86_64?  → load nr; nr has the x32 bit? → x32 section (or KILL_PROCESS) ; else native section
//!   i386?    → i386 section (or KILL_PROCESS)
//!   anything else → KILL_PROCESS
//! section (one per ABI, each with that ABI's syscall numbers):
//!   one group per distinct action, most restrictive first (the order the kernel itself uses
//!   between stacked filters), so a call matching rules of two actions gets the stricter one;
//!   each group = a binary search over its unconditional syscalls
//!   then seccompiler's rule chains for syscalls with argument conditions; a miss falls through
//!   to the next group;
//!   RET defaultAction
//! ```
//!
//! seccompiler compiles the argument conditions (64-bit comparisons done on both halves); its
//! filter prologue is dropped and its two return values are rewritten: the match return becomes
//! the group's action, the mismatch return becomes a jump to the next group.

use std::collections::{BTreeMap, BTreeSet};

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
    LinuxSyscall,
};
use seccompiler::{
    sock_filter, BackendError, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp,
    SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

use super::{install, syscalls, SeccompError, SeccompProgram};

/// BPF_MAXINSNS: the kernel refuses longer classic BPF programs.
const BPF_MAXINSNS: usize = 4096;

/// BPF_LD | BPF_W | BPF_ABS (the first two are 0).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10;
const BPF_JMP_JGE_K: u16 = 0x05 | 0x30;
const BPF_RET_K: u16 = 0x06;

/// Offsets in `struct seccomp_data`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
const AUDIT_ARCH_I386: u32 = 3 | 0x4000_0000;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// What a syscall made through an ABI the profile does not list gets.
const BAD_ABI_ACTION: u32 = libc::SECCOMP_RET_KILL_PROCESS;

/// Errno for SCMP_ACT_ERRNO / SCMP_ACT_TRACE without errnoRet (what runc and crun use).
const DEFAULT_ERRNO: u32 = libc::EPERM as u32;

/// Leaves of the search tree over unconditional syscalls test up to this many numbers in a row.
const LEAF_LEN: usize = 16;

/// Compile at create time in the parent, so a bad profile fails before anything is made.
pub fn compile(spec: &LinuxSeccomp) -> Result<SeccompProgram, SeccompError> {
    let default = default_action(spec)?;
    let abis = listed_abis(spec);
    let entries = collect_entries(spec, default)?;
    let uses_notify = entries
        .iter()
        .any(|e| e.action == libc::SECCOMP_RET_USER_NOTIF);
    check_listener(spec, uses_notify)?;
    check_notify_handover(&entries)?;
    check_actions_available(spec, &entries)?;
    let flags = filter_flags(spec, uses_notify)?;
    let groups = group_by_action(&entries);
    let bpf = assemble(&groups, default, abis)?;
    let prog = SeccompProgram {
        bpf,
        flags,
        uses_notify,
    };
    crate::log::debug(&format!(
        "linux.seccomp: {} BPF instructions, seccomp(2) flags {:#x}",
        prog.len(),
        prog.flags()
    ));
    Ok(prog)
}

/// One `syscalls[]` entry after validation.
struct Entry {
    field: String,
    action: u32,
    names: Vec<String>,
    /// `None`: the entry matches whatever the arguments. `Some`: it matches when any one of the
    /// alternatives matches, each alternative being an AND of conditions.
    alternatives: Option<Vec<Vec<SeccompCondition>>>,
}

/// The kernel return value for an action, with its errno/trace data.
fn action_value(
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    field: &str,
) -> Result<u32, SeccompError> {
    use LinuxSeccompAction::*;
    let data = match (action, errno_ret) {
        (ScmpActErrno | ScmpActTrace, Some(v)) if v > 0xffff => {
            return Err(SeccompError::ErrnoRetOutOfRange {
                field: field.to_string(),
                value: v,
            })
        }
        (ScmpActErrno | ScmpActTrace, v) => v.unwrap_or(DEFAULT_ERRNO),
        (_, Some(_)) => {
            return Err(SeccompError::ErrnoRetNotAllowed {
                field: field.to_string(),
                action: action.to_string(),
            })
        }
        (_, None) => 0,
    };
    Ok(match action {
        ScmpActKill | ScmpActKillThread => libc::SECCOMP_RET_KILL_THREAD,
        ScmpActKillProcess => libc::SECCOMP_RET_KILL_PROCESS,
        ScmpActTrap => libc::SECCOMP_RET_TRAP,
        ScmpActErrno => libc::SECCOMP_RET_ERRNO | data,
        ScmpActTrace => libc::SECCOMP_RET_TRACE | data,
        ScmpActNotify => libc::SECCOMP_RET_USER_NOTIF,
        ScmpActLog => libc::SECCOMP_RET_LOG,
        ScmpActAllow => libc::SECCOMP_RET_ALLOW,
    })
}

fn default_action(spec: &LinuxSeccomp) -> Result<u32, SeccompError> {
    if spec.default_action() == LinuxSeccompAction::ScmpActNotify {
        return Err(SeccompError::NotifyAsDefault);
    }
    action_value(
        spec.default_action(),
        spec.default_errno_ret(),
        "linux.seccomp.defaultErrnoRet",
    )
}

/// Which non-native ABIs get the rules (the others are killed).
#[derive(Clone, Copy, Debug, Default)]
struct Abis {
    i386: bool,
    x32: bool,
}

fn listed_abis(spec: &LinuxSeccomp) -> Abis {
    let mut abis = Abis::default();
    for arch in spec.architectures().iter().flatten() {
        match arch {
            Arch::ScmpArchX86 => abis.i386 = true,
            Arch::ScmpArchX32 => abis.x32 = true,
            Arch::ScmpArchNative | Arch::ScmpArchX86_64 => {}
            other => crate::log::debug(&format!(
                "linux.seccomp.architectures: {other} cannot run on this kernel, ignored"
            )),
        }
    }
    abis
}

fn collect_entries(spec: &LinuxSeccomp, default: u32) -> Result<Vec<Entry>, SeccompError> {
    let mut entries = Vec::new();
    for (i, syscall) in spec.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let entry = entry(syscall, &field)?;
        // libseccomp refuses a rule whose action is the default one and runc skips it: it could
        // only shadow a less strict rule for the same syscall.
        if entry.action == default {
            crate::log::debug(&format!("{field}: action equals defaultAction, skipped"));
            continue;
        }
        entries.push(entry);
    }
    Ok(entries)
}

fn entry(syscall: &LinuxSyscall, field: &str) -> Result<Entry, SeccompError> {
    let action = action_value(
        syscall.action(),
        syscall.errno_ret(),
        &format!("{field}.errnoRet"),
    )?;
    if syscall.names().is_empty() {
        return Err(SeccompError::EmptyNames {
            field: format!("{field}.names"),
        });
    }
    for (j, name) in syscall.names().iter().enumerate() {
        let plain = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !plain {
            return Err(SeccompError::BadSyscallName {
                field: format!("{field}.names[{j}]"),
                name: name.clone(),
            });
        }
    }
    Ok(Entry {
        field: field.to_string(),
        action,
        names: syscall.names().clone(),
        alternatives: alternatives(syscall, field)?,
    })
}

/// `args` → conditions. Like runc, when one argument index appears more than once the
/// conditions are alternatives (OR) instead of all required (AND): profiles written for Docker
/// rely on that.
fn alternatives(
    syscall: &LinuxSyscall,
    field: &str,
) -> Result<Option<Vec<Vec<SeccompCondition>>>, SeccompError> {
    let args = match syscall.args() {
        Some(a) if !a.is_empty() => a,
        _ => return Ok(None),
    };
    let mut conditions = Vec::with_capacity(args.len());
    let mut seen = BTreeSet::new();
    let mut repeated = false;
    for (k, arg) in args.iter().enumerate() {
        let arg_field = format!("{field}.args[{k}]");
        if arg.index() > 5 {
            return Err(SeccompError::ArgIndexOutOfRange {
                field: format!("{arg_field}.index"),
                index: arg.index(),
            });
        }
        repeated |= !seen.insert(arg.index());
        let (op, value) = match arg.op() {
            LinuxSeccompOperator::ScmpCmpNe => (SeccompCmpOp::Ne, arg.value()),
            LinuxSeccompOperator::ScmpCmpLt => (SeccompCmpOp::Lt, arg.value()),
            LinuxSeccompOperator::ScmpCmpLe => (SeccompCmpOp::Le, arg.value()),
            LinuxSeccompOperator::ScmpCmpEq => (SeccompCmpOp::Eq, arg.value()),
            LinuxSeccompOperator::ScmpCmpGe => (SeccompCmpOp::Ge, arg.value()),
            LinuxSeccompOperator::ScmpCmpGt => (SeccompCmpOp::Gt, arg.value()),
            // As in libseccomp: value is the mask, valueTwo the masked argument's expected value.
            LinuxSeccompOperator::ScmpCmpMaskedEq => (
                SeccompCmpOp::MaskedEq(arg.value()),
                arg.value_two().unwrap_or(0),
            ),
        };
        let cond = SeccompCondition::new(arg.index() as u8, SeccompCmpArgLen::Qword, op, value)
            .map_err(|source| SeccompError::Rule {
                field: arg_field,
                source,
            })?;
        conditions.push(cond);
    }
    Ok(Some(if repeated {
        conditions.into_iter().map(|c| vec![c]).collect()
    } else {
        vec![conditions]
    }))
}

/// The init hands the notify fd over with sendmsg right after installing the filter: were
/// sendmsg itself notified, it would wait for an agent that cannot have the fd yet, and create
/// would hang. runc has the same constraint; a clear error beats a hang.
const HANDOVER_SYSCALL: &str = "sendmsg";

fn check_notify_handover(entries: &[Entry]) -> Result<(), SeccompError> {
    for e in entries {
        if e.action == libc::SECCOMP_RET_USER_NOTIF && e.names.iter().any(|n| n == HANDOVER_SYSCALL)
        {
            return Err(SeccompError::NotifyOnHandover {
                field: format!("{}.names", e.field),
            });
        }
    }
    Ok(())
}

fn check_listener(spec: &LinuxSeccomp, uses_notify: bool) -> Result<(), SeccompError> {
    if uses_notify && spec.listener_path().is_none() {
        let first = spec
            .syscalls()
            .iter()
            .flatten()
            .position(|s| s.action() == LinuxSeccompAction::ScmpActNotify)
            .unwrap_or(0);
        return Err(SeccompError::NotifyWithoutListener {
            field: format!("linux.seccomp.syscalls[{first}].action"),
        });
    }
    Ok(())
}

/// Fail at create time when the kernel lacks an action (KILL_PROCESS, LOG < 4.14, NOTIFY < 5.0).
fn check_actions_available(spec: &LinuxSeccomp, entries: &[Entry]) -> Result<(), SeccompError> {
    let default = spec.default_action();
    let default_value = action_value(default, spec.default_errno_ret(), "")?;
    if !install::action_available(default_value) {
        return Err(SeccompError::ActionUnavailable {
            field: "linux.seccomp.defaultAction".into(),
            action: default.to_string(),
        });
    }
    for e in entries {
        if !install::action_available(e.action) {
            return Err(SeccompError::ActionUnavailable {
                field: format!("{}.action", e.field),
                action: format!("seccomp action {:#x}", e.action),
            });
        }
    }
    Ok(())
}

pub(super) fn flag_bit(flag: LinuxSeccompFilterFlag) -> libc::c_ulong {
    match flag {
        LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
        LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
        LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
        LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
            libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
        }
    }
}

fn filter_flags(spec: &LinuxSeccomp, uses_notify: bool) -> Result<libc::c_ulong, SeccompError> {
    let mut flags = 0;
    for (i, flag) in spec.flags().iter().flatten().enumerate() {
        let bit = flag_bit(*flag);
        if !install::flag_supported(bit) {
            return Err(SeccompError::FlagUnsupported {
                field: format!("linux.seccomp.flags[{i}]"),
                flag: flag.to_string(),
            });
        }
        flags |= bit;
    }
    if !uses_notify && flags & libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV != 0 {
        // It only changes how a notified syscall waits, and the kernel refuses it without a
        // listener: with no SCMP_ACT_NOTIFY rule it has nothing to do.
        crate::log::debug(
            "linux.seccomp.flags: WAIT_KILLABLE_RECV without SCMP_ACT_NOTIFY, dropped",
        );
        flags &= !libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
    }
    if uses_notify {
        flags |= libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
        // The kernel refuses TSYNC with NEW_LISTENER unless a TSYNC failure is reported as ESRCH
        // (the return value would otherwise be ambiguous: a thread id or the listener fd).
        if flags & libc::SECCOMP_FILTER_FLAG_TSYNC != 0 {
            if !install::flag_supported(libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH) {
                return Err(SeccompError::FlagUnsupported {
                    field: "linux.seccomp.flags".into(),
                    flag: "SECCOMP_FILTER_FLAG_TSYNC with SCMP_ACT_NOTIFY (TSYNC_ESRCH)".into(),
                });
            }
            flags |= libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
        }
    }
    Ok(flags)
}

/// The rules of one action, by syscall name.
#[derive(Default)]
struct Group {
    unconditional: BTreeSet<String>,
    conditional: BTreeMap<String, Vec<Vec<SeccompCondition>>>,
    /// The entry each name came from, for error messages.
    fields: BTreeMap<String, String>,
}

/// Kernel precedence of a return value: lower is stricter (KILL_PROCESS < KILL_THREAD < TRAP <
/// ERRNO < USER_NOTIF < TRACE < LOG < ALLOW), as `seccomp_run_filters` compares them.
fn precedence(action: u32) -> (i32, u32) {
    ((action & libc::SECCOMP_RET_ACTION_FULL) as i32, action)
}

fn group_by_action(entries: &[Entry]) -> BTreeMap<(i32, u32), Group> {
    let mut groups: BTreeMap<(i32, u32), Group> = BTreeMap::new();
    for e in entries {
        let g = groups.entry(precedence(e.action)).or_default();
        for name in &e.names {
            g.fields
                .entry(name.clone())
                .or_insert_with(|| e.field.clone());
            match &e.alternatives {
                None => {
                    g.unconditional.insert(name.clone());
                }
                Some(alts) => g
                    .conditional
                    .entry(name.clone())
                    .or_default()
                    .extend(alts.iter().cloned()),
            }
        }
    }
    groups
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// A syscall table for one ABI.
type Table = &'static [(&'static str, u32)];

fn lookup(table: Table, name: &str) -> Option<u32> {
    table
        .binary_search_by(|(n, _)| (*n).cmp(name))
        .ok()
        .map(|i| table[i].1)
}

fn assemble(
    groups: &BTreeMap<(i32, u32), Group>,
    default: u32,
    abis: Abis,
) -> Result<Vec<sock_filter>, SeccompError> {
    if !cfg!(target_arch = "x86_64") {
        return Err(SeccompError::UnsupportedBuildArch(std::env::consts::ARCH));
    }
    let native = section(groups, default, syscalls::X86_64, "x86_64")?;
    let i386 = match abis.i386 {
        true => Some(section(groups, default, syscalls::I386, "x86")?),
        false => None,
    };
    let x32 = match abis.x32 {
        true => Some(section(groups, default, syscalls::X32, "x32")?),
        false => None,
    };

    // Fixed-size dispatch; all jumps forward, so sections go after it in the order
    // native, i386, x32.
    const DISPATCH_LEN: usize = 9;
    let native_at = DISPATCH_LEN;
    let i386_at = native_at + native.len();
    let x32_at = i386_at + i386.as_ref().map_or(0, Vec::len);
    let ja_to = |from: usize, to: usize| stmt(BPF_JMP_JA, (to - from - 1) as u32);
    let mut prog = Vec::with_capacity(x32_at + x32.as_ref().map_or(0, Vec::len));
    prog.push(stmt(BPF_LD_W_ABS, DATA_ARCH)); // 0
    prog.push(jump(BPF_JMP_JEQ_K, AUDIT_ARCH_X86_64, 0, 1)); // 1
    prog.push(ja_to(2, 6)); // 2: x86_64 → check the x32 bit
    prog.push(jump(BPF_JMP_JEQ_K, AUDIT_ARCH_I386, 0, 1)); // 3
    prog.push(match i386 {
        Some(_) => ja_to(4, i386_at),
        None => stmt(BPF_RET_K, BAD_ABI_ACTION),
    }); // 4
    prog.push(stmt(BPF_RET_K, BAD_ABI_ACTION)); // 5: an arch this kernel cannot have
    prog.push(stmt(BPF_LD_W_ABS, DATA_NR)); // 6
    prog.push(jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, 0, 1)); // 7
    prog.push(match x32 {
        Some(_) => ja_to(8, x32_at),
        None => stmt(BPF_RET_K, BAD_ABI_ACTION),
    }); // 8
    debug_assert_eq!(prog.len(), DISPATCH_LEN);
    prog.extend(native);
    prog.extend(i386.into_iter().flatten());
    prog.extend(x32.into_iter().flatten());
    if prog.len() > BPF_MAXINSNS {
        return Err(SeccompError::TooLong {
            len: prog.len(),
            max: BPF_MAXINSNS,
        });
    }
    Ok(prog)
}

/// All groups for one ABI, then the default action.
fn section(
    groups: &BTreeMap<(i32, u32), Group>,
    default: u32,
    table: Table,
    abi: &str,
) -> Result<Vec<sock_filter>, SeccompError> {
    let mut out = Vec::new();
    for (&(_, action), group) in groups {
        out.extend(group_code(group, action, table, abi)?);
    }
    out.push(stmt(BPF_RET_K, default));
    Ok(out)
}

/// The code for one action in one ABI; falls through to the instruction after it on a miss.
fn group_code(
    group: &Group,
    action: u32,
    table: Table,
    abi: &str,
) -> Result<Vec<sock_filter>, SeccompError> {
    let resolve = |name: &String| {
        let nr = lookup(table, name);
        if nr.is_none() {
            // runc skips names libseccomp does not know; a profile lists syscalls of many arches.
            crate::log::debug(&format!(
                "{}: syscall {name:?} does not exist on {abi}, skipped",
                group.fields[name]
            ));
        }
        nr
    };
    let mut unconditional: Vec<u32> = group.unconditional.iter().filter_map(resolve).collect();
    unconditional.sort_unstable();
    unconditional.dedup();

    let mut conditional: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (name, alts) in &group.conditional {
        if group.unconditional.contains(name) {
            continue;
        }
        let Some(nr) = resolve(name) else { continue };
        for conds in alts {
            let rule = SeccompRule::new(conds.clone()).map_err(|source| SeccompError::Rule {
                field: group.fields[name].clone(),
                source,
            })?;
            conditional.entry(i64::from(nr)).or_default().push(rule);
        }
    }

    let mut out = Vec::new();
    if !unconditional.is_empty() {
        out.push(stmt(BPF_LD_W_ABS, DATA_NR));
        out.extend(search_tree(&unconditional, action));
    }
    if !conditional.is_empty() {
        out.extend(rule_chains(conditional, action, &group.fields)?);
    }
    Ok(out)
}

/// A binary search over sorted syscall numbers (in the accumulator): RET `action` on a hit,
/// fall off the end on a miss. A syscall costs at most ~2·log2(n/16) + 16 instructions, not n, and
/// the kernel's action-cache emulation at install time shrinks alike. Offsets past 8 bits go
/// through JA.
///
/// ```text
/// node:  JGE pivot ? next : skip 1 ; JA right ; <left> ; JA end ; <right>
/// leaf:  JEQ nr_1 → ret ; … ; JEQ nr_k → ret ; JA end ; ret: RET action
/// ```
fn search_tree(nrs: &[u32], action: u32) -> Vec<sock_filter> {
    if nrs.len() <= LEAF_LEN {
        let k = nrs.len();
        let mut out: Vec<sock_filter> = nrs
            .iter()
            .enumerate()
            .map(|(i, nr)| jump(BPF_JMP_JEQ_K, *nr, (k - i) as u8, 0))
            .collect();
        out.push(stmt(BPF_JMP_JA, 1));
        out.push(stmt(BPF_RET_K, action));
        return out;
    }
    let mid = nrs.len() / 2;
    let left = search_tree(&nrs[..mid], action);
    let right = search_tree(&nrs[mid..], action);
    let mut out = Vec::with_capacity(left.len() + right.len() + 3);
    out.push(jump(BPF_JMP_JGE_K, nrs[mid], 0, 1));
    out.push(stmt(BPF_JMP_JA, (left.len() + 1) as u32));
    out.extend(left);
    out.push(stmt(BPF_JMP_JA, right.len() as u32));
    out.extend(right);
    out
}

/// seccompiler's code for the argument rules, re-targeted: its match return becomes `action`,
/// its mismatch return a jump past the end of this code.
fn rule_chains(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    action: u32,
    fields: &BTreeMap<String, String>,
) -> Result<Vec<sock_filter>, SeccompError> {
    const MATCH: SeccompAction = SeccompAction::Allow;
    const MISMATCH: SeccompAction = SeccompAction::KillThread;
    let field = || fields.values().next().cloned().unwrap_or_default();
    let filter =
        SeccompFilter::new(rules, MISMATCH, MATCH, TargetArch::x86_64).map_err(|source| {
            SeccompError::Rule {
                field: field(),
                source,
            }
        })?;
    let mut code: BpfProgram = filter.try_into().map_err(|e| match e {
        BackendError::FilterTooLarge(len) => SeccompError::TooLong {
            len,
            max: BPF_MAXINSNS,
        },
        source => SeccompError::Rule {
            field: field(),
            source,
        },
    })?;
    // seccompiler's own prologue: load arch, compare, kill. Ours already dispatched on the ABI.
    code.drain(..3);
    let len = code.len();
    for (i, ins) in code.iter_mut().enumerate() {
        if ins.code != BPF_RET_K {
            continue;
        }
        if ins.k == u32::from(MATCH) {
            ins.k = action;
        } else {
            debug_assert_eq!(ins.k, u32::from(MISMATCH));
            *ins = stmt(BPF_JMP_JA, (len - i - 1) as u32);
        }
    }
    Ok(code)
}
