//! Profiles compiled and installed for real in forked children, which then make real syscalls.
//! The children only make raw syscalls between fork and _exit: the test harness is
//! multi-threaded, so they must not allocate.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};

use oci_spec::runtime::LinuxSeccomp;
use serde_json::json;

use super::*;

fn profile(v: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(v).expect("test profile parses")
}

fn compiled(v: serde_json::Value) -> SeccompProgram {
    compile(&profile(v)).expect("test profile compiles")
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Exited(i32),
    Signaled(i32),
}

/// Fork; the child installs `prog` and exits with what `body` returns (200 if install failed).
fn run_filtered(prog: &SeccompProgram, body: impl FnOnce() -> i32) -> Outcome {
    // SAFETY: the child only installs the filter (no allocation), makes raw syscalls and _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = match prog.install() {
            Ok(_) => body(),
            Err(_) => 200,
        };
        // SAFETY: leaving the child without running the parent's atexit handlers.
        unsafe { libc::_exit(code) }
    }
    wait(pid)
}

fn wait(pid: libc::pid_t) -> Outcome {
    let mut status = 0;
    // SAFETY: status is a valid out pointer; pid is our child.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(rc, pid, "waitpid");
    if libc::WIFEXITED(status) {
        Outcome::Exited(libc::WEXITSTATUS(status))
    } else {
        Outcome::Signaled(libc::WTERMSIG(status))
    }
}

/// A raw syscall: Ok(return value) or Err(errno). No allocation.
fn sys(nr: libc::c_long, a: [u64; 3]) -> Result<i64, i32> {
    // SAFETY: the tests only pass syscalls whose arguments are integers or valid C strings.
    let rc = unsafe { libc::syscall(nr, a[0], a[1], a[2]) };
    if rc < 0 {
        // SAFETY: errno location is thread-local and always valid.
        Err(unsafe { *libc::__errno_location() })
    } else {
        Ok(rc)
    }
}

/// Exit code for a child: 0 on success, the errno on failure.
fn errno_code(r: Result<i64, i32>) -> i32 {
    r.err().unwrap_or(0)
}

const NONEXISTENT: &[u8] = b"/nonexistent-gruntime-seccomp-test/x\0";

fn path_arg() -> u64 {
    NONEXISTENT.as_ptr() as u64
}

#[test]
fn errno_action_uses_errno_ret_or_eperm() {
    let prog = compiled(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["chmod", "fchmodat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42}
        ]
    }));
    // Without the filter both fail with ENOENT (the parent does not exist).
    let mkdir = || errno_code(sys(libc::SYS_mkdir, [path_arg(), 0o755, 0]));
    let chmod = || errno_code(sys(libc::SYS_chmod, [path_arg(), 0o755, 0]));
    assert_eq!(
        run_filtered(
            &compiled(
                json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}]})
            ),
            mkdir
        ),
        Outcome::Exited(libc::ENOENT)
    );
    assert_eq!(run_filtered(&prog, mkdir), Outcome::Exited(libc::EPERM));
    assert_eq!(run_filtered(&prog, chmod), Outcome::Exited(42));
    assert_eq!(
        run_filtered(&prog, || errno_code(sys(libc::SYS_getppid, [0; 3]))),
        Outcome::Exited(0)
    );
}

fn one_rule(action: &str) -> SeccompProgram {
    compiled(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getppid"], "action": action}]
    }))
}

fn getppid() -> i32 {
    errno_code(sys(libc::SYS_getppid, [0; 3]))
}

#[test]
fn kill_actions_end_the_child_with_sigsys() {
    for action in [
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_TRAP",
    ] {
        assert_eq!(
            run_filtered(&one_rule(action), getppid),
            Outcome::Signaled(libc::SIGSYS),
            "{action}"
        );
    }
}

#[test]
fn trace_without_tracer_gives_enosys_and_log_allows() {
    assert_eq!(
        run_filtered(&one_rule("SCMP_ACT_TRACE"), getppid),
        Outcome::Exited(libc::ENOSYS)
    );
    assert_eq!(
        run_filtered(&one_rule("SCMP_ACT_LOG"), getppid),
        Outcome::Exited(0)
    );
}

#[test]
fn allow_list_with_errno_default() {
    let prog = compiled(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "syscalls": [{"names": ["getppid", "exit_group", "exit"], "action": "SCMP_ACT_ALLOW"}]
    }));
    assert_eq!(run_filtered(&prog, getppid), Outcome::Exited(0));
    assert_eq!(
        run_filtered(&prog, || errno_code(sys(libc::SYS_getpid, [0; 3]))),
        Outcome::Exited(libc::ENOSYS)
    );
}

/// getppid ignores its arguments, but seccomp sees the registers: a free probe for conditions.
fn getppid_with(arg0: u64) -> i32 {
    errno_code(sys(libc::SYS_getppid, [arg0, 0, 0]))
}

const HI: u64 = 1 << 32;

#[test]
fn every_operator_with_64_bit_values() {
    // (op, value, valueTwo, [(arg, matches)])
    type Case<'a> = (&'a str, u64, u64, &'a [(u64, bool)]);
    let cases: &[Case] = &[
        (
            "SCMP_CMP_EQ",
            HI | 5,
            0,
            &[
                (HI | 5, true),
                (5, false),
                (HI, false),
                ((2 * HI) | 5, false),
            ],
        ),
        (
            "SCMP_CMP_NE",
            HI | 5,
            0,
            &[(HI | 5, false), (5, true), (HI | 6, true)],
        ),
        (
            "SCMP_CMP_LT",
            HI | 5,
            0,
            &[
                (HI | 4, true),
                (HI | 5, false),
                (6, true),
                (2 * HI, false),
                (u64::MAX, false),
            ],
        ),
        (
            "SCMP_CMP_LE",
            HI | 5,
            0,
            &[
                (HI | 5, true),
                (HI | 6, false),
                (5, true),
                ((2 * HI) | 1, false),
            ],
        ),
        (
            "SCMP_CMP_GT",
            HI | 5,
            0,
            &[
                (HI | 6, true),
                (HI | 5, false),
                (0xffff_ffff, false),
                (2 * HI, true),
            ],
        ),
        (
            "SCMP_CMP_GE",
            HI | 5,
            0,
            &[(HI | 5, true), (HI | 4, false), (2 * HI, true), (6, false)],
        ),
        (
            "SCMP_CMP_MASKED_EQ",
            0xff00_0000_00ff,
            0x1200_0000_0034,
            &[
                (0x1200_0000_0034, true),
                (0x12ab_cdef_0134, true),
                (0x1300_0000_0034, false),
                (0x34, false),
            ],
        ),
    ];
    for (op, value, value_two, probes) in cases {
        let prog = compiled(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 99,
                          "args": [{"index": 0, "value": value, "valueTwo": value_two, "op": op}]}]
        }));
        for (arg, matches) in *probes {
            let want = if *matches { 99 } else { 0 };
            assert_eq!(
                run_filtered(&prog, || getppid_with(*arg)),
                Outcome::Exited(want),
                "{op} {value:#x} on {arg:#x}"
            );
        }
    }
}

#[test]
fn args_of_one_entry_are_and_entries_are_or() {
    let prog = compiled(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 11,
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"}]},
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 11,
             "args": [{"index": 2, "value": 3, "op": "SCMP_CMP_EQ"}]}
        ]
    }));
    let call = |a: [u64; 3]| move || errno_code(sys(libc::SYS_getppid, a));
    assert_eq!(run_filtered(&prog, call([1, 2, 0])), Outcome::Exited(11));
    assert_eq!(run_filtered(&prog, call([1, 0, 0])), Outcome::Exited(0));
    assert_eq!(run_filtered(&prog, call([0, 2, 0])), Outcome::Exited(0));
    assert_eq!(run_filtered(&prog, call([0, 0, 3])), Outcome::Exited(11));
}

#[test]
fn repeated_index_means_any_like_runc() {
    let prog = compiled(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["exit_group", "exit"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 0xffffffffu64, "op": "SCMP_CMP_EQ"}]}
        ]
    }));
    let personality = |p: u64| move || errno_code(sys(libc::SYS_personality, [p, 0, 0]));
    assert_eq!(
        run_filtered(&prog, personality(0xffff_ffff)),
        Outcome::Exited(0)
    );
    assert_eq!(run_filtered(&prog, personality(0)), Outcome::Exited(0));
    assert_eq!(
        run_filtered(&prog, personality(8)),
        Outcome::Exited(libc::EPERM)
    );
}

#[test]
fn stricter_action_wins_when_rules_overlap() {
    // The shape of the containers-common socket rules: ERRNO for one argument, ALLOW otherwise.
    let prog = compiled(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["exit_group", "exit", "getppid"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
             "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_EQ"}]}
        ]
    }));
    assert_eq!(
        run_filtered(&prog, || getppid_with(16)),
        Outcome::Exited(22)
    );
    assert_eq!(run_filtered(&prog, || getppid_with(17)), Outcome::Exited(0));
}

#[test]
fn rules_with_the_default_action_are_ignored() {
    let prog = compiled(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["exit_group", "exit", "getppid"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}
        ]
    }));
    assert_eq!(run_filtered(&prog, getppid), Outcome::Exited(0));
}

/// getppid through the x32 ABI: x86_64 arch, syscall number with bit 30 set. The kernel here has
/// no x32 support, but seccomp runs before the syscall table is consulted.
fn x32_getppid() -> i32 {
    errno_code(sys(0x4000_0000 | libc::SYS_getppid, [0; 3]))
}

/// getppid (i386 number 64) through `int 0x80`: AUDIT_ARCH_I386. Returns -errno or the pid.
#[cfg(target_arch = "x86_64")]
fn i386_getppid() -> i32 {
    let mut eax: i32 = 64;
    // SAFETY: int 0x80 with eax=64 is i386 getppid: no arguments, no memory access; the compat
    // entry preserves every register but eax.
    unsafe { std::arch::asm!("int 0x80", inout("eax") eax, options(nostack)) };
    if eax < 0 {
        -eax
    } else {
        0
    }
}

#[test]
fn unlisted_abis_are_killed() {
    let prog = one_rule("SCMP_ACT_ERRNO");
    assert_eq!(
        run_filtered(&prog, x32_getppid),
        Outcome::Signaled(libc::SIGSYS)
    );
    assert_eq!(
        run_filtered(&prog, i386_getppid),
        Outcome::Signaled(libc::SIGSYS)
    );
    // The native ABI still works under the same filter.
    assert_eq!(
        run_filtered(&prog, || errno_code(sys(libc::SYS_getpid, [0; 3]))),
        Outcome::Exited(0)
    );
}

#[test]
fn listed_abis_get_the_rules_with_their_own_numbers() {
    let prog = compiled(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 77}]
    }));
    assert_eq!(run_filtered(&prog, getppid), Outcome::Exited(77));
    assert_eq!(run_filtered(&prog, x32_getppid), Outcome::Exited(77));
    assert_eq!(run_filtered(&prog, i386_getppid), Outcome::Exited(77));
    // i386 getpid (20) is not getppid: allowed, where x86_64 number 64 would be semget.
    let i386_getpid = || {
        let mut eax: i32 = 20;
        // SAFETY: i386 getpid: no arguments, no memory access.
        unsafe { std::arch::asm!("int 0x80", inout("eax") eax, options(nostack)) };
        i32::from(eax < 0)
    };
    assert_eq!(run_filtered(&prog, i386_getpid), Outcome::Exited(0));
}

#[test]
fn unknown_syscall_names_are_skipped() {
    let prog = compiled(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["no_such_syscall", "arm_fadvise64_64", "getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5}]
    }));
    assert_eq!(run_filtered(&prog, getppid), Outcome::Exited(5));
}

fn compile_err(v: serde_json::Value) -> String {
    compile(&profile(v))
        .expect_err("profile must be refused")
        .to_string()
}

#[test]
fn bad_profiles_get_errors_naming_the_field() {
    let cases = [
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}, {"names": [], "action": "SCMP_ACT_ERRNO"}]}),
            "linux.seccomp.syscalls[1].names: no syscall names",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getppid", "SCMP_ACT_ERRNO"], "action": "SCMP_ACT_ERRNO"}]}),
            "linux.seccomp.syscalls[0].names[1]: \"SCMP_ACT_ERRNO\" is not a syscall name",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
            "linux.seccomp.syscalls[0].args[0].index: argument index 6 out of range 0..=5",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}]}),
            "linux.seccomp.syscalls[0].errnoRet: errnoRet is only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not SCMP_ACT_ALLOW",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}]}),
            "linux.seccomp.syscalls[0].errnoRet: 70000 does not fit in 16 bits",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_NOTIFY"}),
            "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}, {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
            "linux.seccomp.syscalls[1].action: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath to be set",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock", "syscalls": [{"names": ["mkdir", "sendmsg"], "action": "SCMP_ACT_NOTIFY"}]}),
            "linux.seccomp.syscalls[0].names: SCMP_ACT_NOTIFY on sendmsg is not supported: the container's init needs it to hand the notify fd to the runtime",
        ),
    ];
    for (p, want) in cases {
        assert_eq!(compile_err(p), want);
    }
}

#[test]
fn raw_config_errors_name_the_entry() {
    let cfg =
        |seccomp: serde_json::Value| json!({"ociVersion": "1.2.0", "linux": {"seccomp": seccomp}});
    let err = |seccomp| validate_raw(&cfg(seccomp)).unwrap_err().to_string();
    assert_eq!(
        err(
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW"}, {"names": ["a"], "action": "SCMP_ACT_ALLOW"}, {"names": ["a"], "action": "SCMP_ACT_ALLOW"}, {"names": ["a"], "action": "X"}]})
        ),
        "linux.seccomp.syscalls[3].action: unknown action \"X\""
    );
    assert_eq!(
        err(
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ALMOST"}]}]})
        ),
        "linux.seccomp.syscalls[0].args[0].op: unknown operator \"SCMP_CMP_ALMOST\""
    );
    assert_eq!(
        err(json!({"defaultAction": "SCMP_ACT_DENY"})),
        "linux.seccomp.defaultAction: unknown action \"SCMP_ACT_DENY\""
    );
    assert_eq!(
        err(json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]})),
        "linux.seccomp.architectures[0]: unknown architecture \"SCMP_ARCH_Z80\""
    );
    assert_eq!(
        err(json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_FAST"]})),
        "linux.seccomp.flags[0]: unknown flag \"SECCOMP_FILTER_FLAG_FAST\""
    );
    assert_eq!(
        err(
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": "mkdir", "action": "SCMP_ACT_ERRNO"}]})
        ),
        "linux.seccomp.syscalls[0].names: not an array"
    );
    assert_eq!(
        err(
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "args": [{"index": -1, "value": 1, "op": "SCMP_CMP_EQ"}]}]})
        ),
        "linux.seccomp.syscalls[0].args[0].index: missing or not an unsigned integer"
    );
    assert!(validate_raw(&json!({"ociVersion": "1.2.0"})).is_ok());
    let good: serde_json::Value = json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, "architectures": ["SCMP_ARCH_X86_64"], "flags": ["SECCOMP_FILTER_FLAG_LOG"], "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "valueTwo": 1, "op": "SCMP_CMP_MASKED_EQ"}]}]});
    assert!(validate_raw(&cfg(good)).is_ok());
}

#[test]
fn filter_flags_install_and_unknown_flags_are_detected() {
    for flag in [
        "SECCOMP_FILTER_FLAG_TSYNC",
        "SECCOMP_FILTER_FLAG_LOG",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
    ] {
        let prog = compiled(json!({
            "defaultAction": "SCMP_ACT_ALLOW", "flags": [flag],
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 3}]
        }));
        if flag != "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" {
            assert_ne!(prog.flags(), 0, "{flag}");
        }
        assert_eq!(run_filtered(&prog, getppid), Outcome::Exited(3), "{flag}");
    }
    // A flag bit no kernel has: the probe must say so rather than pretend.
    assert!(!install::flag_supported(1 << 30));
    assert!(install::flag_supported(libc::SECCOMP_FILTER_FLAG_LOG));
}

#[test]
fn features_lists_what_works() {
    let f = features();
    assert_eq!(f.enabled(), &Some(true));
    assert_eq!(f.actions().as_ref().unwrap().len(), 9);
    assert_eq!(f.operators().as_ref().unwrap().len(), 7);
    let supported = f.supported_flags().as_ref().unwrap();
    assert!(supported.contains(&"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV".to_string()));
    let json = serde_json::to_value(&f).unwrap();
    assert!(json["archs"]
        .as_array()
        .unwrap()
        .contains(&json!("SCMP_ARCH_X86_64")));
}

#[test]
fn notify_fd_reaches_the_listener_with_the_process_state() {
    use std::os::unix::net::{UnixListener, UnixStream};
    let dir = tempfile::tempdir().unwrap();
    let listener_path = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&listener_path).unwrap();
    let prog = compiled(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": listener_path,
        "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", "SECCOMP_FILTER_FLAG_TSYNC"],
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]
    }));
    assert!(prog.uses_notify());
    assert_eq!(
        prog.flags(),
        libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
            | libc::SECCOMP_FILTER_FLAG_TSYNC
            | libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH
            | libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
    );

    // The child (the container init) passes its notify fd to us (the runtime) over a socketpair.
    let (ours, theirs) = UnixStream::pair().unwrap();
    let theirs_fd = std::os::fd::AsRawFd::as_raw_fd(&theirs);
    // SAFETY: the child installs the filter, sends one fd with a stack-built sendmsg and _exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let code = match prog.install() {
            Ok(Some(fd)) => {
                let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
                if send_fd_raw(theirs_fd, raw) {
                    // 4242 is what the agent answers: proof the call went through the listener.
                    i32::from(sys(libc::SYS_getppid, [0; 3]) != Ok(4242))
                } else {
                    2
                }
            }
            _ => 3,
        };
        // SAFETY: see run_filtered.
        unsafe { libc::_exit(code) }
    }
    drop(theirs);
    let notify_fd = recv_fd(&ours);

    let agent = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let (fd, payload) = recv_fd_and_payload(&conn);
        let state: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        answer_one_notification(&fd, 4242);
        state
    });
    let mut state = oci_spec::runtime::State::default();
    state.set_version("1.2.0".into());
    state.set_id("ctr-notify".into());
    state.set_pid(Some(pid));
    send_to_listener(
        &listener_path,
        Some("meta-data"),
        &state,
        pid,
        notify_fd.as_fd(),
    )
    .unwrap();
    let got = agent.join().unwrap();
    assert_eq!(wait(pid), Outcome::Exited(0));
    assert_eq!(got["ociVersion"], "1.2.0");
    assert_eq!(got["fds"], json!(["seccompFd"]));
    assert_eq!(got["pid"], pid);
    assert_eq!(got["metadata"], "meta-data");
    assert_eq!(got["state"]["id"], "ctr-notify");
}

#[test]
fn listener_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nobody-listens.sock");
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let err = send_to_listener(&path, None, &Default::default(), 1, a.as_fd()).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "linux.seccomp.listenerPath {}: cannot connect:",
            path.display()
        )),
        "{err}"
    );
}

/// sendmsg with one SCM_RIGHTS fd, built on the stack (used in a forked child).
fn send_fd_raw(sock: i32, fd: i32) -> bool {
    #[repr(C)]
    union Cmsg {
        buf: [u8; 64],
        _align: libc::cmsghdr,
    }
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut cmsg = Cmsg { buf: [0; 64] };
    // SAFETY: msghdr/cmsghdr are plain C structs; the control buffer is large and aligned enough
    // for one cmsghdr carrying one int.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg.buf.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(4) as usize;
        let hdr = libc::CMSG_FIRSTHDR(&msg);
        (*hdr).cmsg_level = libc::SOL_SOCKET;
        (*hdr).cmsg_type = libc::SCM_RIGHTS;
        (*hdr).cmsg_len = libc::CMSG_LEN(4) as usize;
        std::ptr::copy_nonoverlapping(&fd as *const i32 as *const u8, libc::CMSG_DATA(hdr), 4);
        libc::sendmsg(sock, &msg, 0) == 1
    }
}

fn recv_fd_and_payload(sock: &impl std::os::fd::AsRawFd) -> (OwnedFd, Vec<u8>) {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buf = vec![0u8; 64 * 1024];
    let mut cmsg = nix::cmsg_space!([i32; 1]);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )
    .expect("recvmsg");
    let mut fd = None;
    for c in msg.cmsgs().expect("control messages") {
        if let ControlMessageOwned::ScmRights(fds) = c {
            fd = fds.first().copied();
        }
    }
    let n = msg.bytes;
    let fd = fd.expect("an fd came with the message");
    // SAFETY: SCM_RIGHTS gave us a new fd that nothing else owns.
    (unsafe { OwnedFd::from_raw_fd(fd) }, buf[..n].to_vec())
}

fn recv_fd(sock: &impl std::os::fd::AsRawFd) -> OwnedFd {
    recv_fd_and_payload(sock).0
}

/// Act as the seccomp agent for one notification: answer getppid with `val`.
fn answer_one_notification(fd: &OwnedFd, val: i64) {
    let raw = std::os::fd::AsRawFd::as_raw_fd(fd);
    // SAFETY: seccomp_notif is plain data; the kernel requires it zeroed before NOTIF_RECV.
    let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: req is a valid seccomp_notif the kernel fills.
    let rc = unsafe { libc::ioctl(raw, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) };
    assert_eq!(rc, 0, "NOTIF_RECV: {}", std::io::Error::last_os_error());
    assert_eq!(i64::from(req.data.nr), libc::SYS_getppid);
    let mut resp = libc::seccomp_notif_resp {
        id: req.id,
        val,
        error: 0,
        flags: 0,
    };
    // SAFETY: resp is a valid seccomp_notif_resp for the request just received.
    let rc = unsafe { libc::ioctl(raw, libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
    assert_eq!(rc, 0, "NOTIF_SEND: {}", std::io::Error::last_os_error());
}

#[test]
fn program_fits_with_three_abis() {
    // 350 unconditional syscalls, three ABI sections: the search trees cost under two
    // instructions a syscall, well inside the kernel's 4096.
    let names: Vec<&str> = syscalls::X86_64.iter().map(|(n, _)| *n).take(350).collect();
    let prog = compiled(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]
    }));
    assert!(prog.len() < 3 * 2 * 350, "{} instructions", prog.len());
}

#[test]
fn search_tree_hits_every_listed_syscall_and_nothing_else() {
    // Every x86_64 syscall but getpid gets errno 77 (EBADFD, which none of them returns here):
    // the tree must find each of ~380 numbers, the smallest and largest included, and miss the
    // one left out.
    let names: Vec<&str> = syscalls::X86_64
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !matches!(*n, "getpid" | "exit" | "exit_group"))
        .collect();
    let prog = compiled(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": 77}]
    }));
    let call = |nr: libc::c_long| move || errno_code(sys(nr, [0; 3]));
    assert_eq!(
        run_filtered(&prog, call(libc::SYS_getpid)),
        Outcome::Exited(0)
    );
    for nr in [
        libc::SYS_read,
        libc::SYS_getppid,
        libc::SYS_personality,
        libc::SYS_getpriority,
        libc::SYS_io_uring_setup,
        469, // file_setattr, the last in the table
    ] {
        assert_eq!(
            run_filtered(&prog, call(nr)),
            Outcome::Exited(77),
            "nr {nr}"
        );
    }
    // A number no syscall has is not in the table: the default action (ALLOW → ENOSYS).
    assert_eq!(
        run_filtered(&prog, call(1000)),
        Outcome::Exited(libc::ENOSYS)
    );
}

/// For tests/integration/bench/seccomp.sh: compile and install times of the profile at
/// $GRUNTIME_SECCOMP_BENCH_PROFILE (a converted default profile) and its BPF length. Timings are
/// printed, never asserted.
#[test]
#[ignore = "benchmark, run by tests/integration/bench/seccomp.sh"]
fn bench_compile_install() {
    use std::time::{Duration, Instant};
    let Ok(path) = std::env::var("GRUNTIME_SECCOMP_BENCH_PROFILE") else {
        eprintln!("GRUNTIME_SECCOMP_BENCH_PROFILE is not set");
        return;
    };
    let spec: LinuxSeccomp =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let runs = 200;
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let mut compile_times = Vec::with_capacity(runs);
    let mut prog = None;
    for _ in 0..runs {
        let t = Instant::now();
        prog = Some(compile(&spec).unwrap());
        compile_times.push(t.elapsed());
    }
    let prog = prog.unwrap();
    let mut install_times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let mut fds = [0; 2];
        // SAFETY: fds is a valid out array for pipe(2).
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: the child installs, writes 8 bytes to the pipe and _exits; no allocation.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let t = Instant::now();
            let ok = prog.install().is_ok();
            let ns: u64 = if ok { t.elapsed().as_nanos() as u64 } else { 0 };
            // SAFETY: writing 8 bytes from a local to our pipe.
            unsafe {
                libc::write(fds[1], (&ns as *const u64).cast(), 8);
                libc::_exit(0)
            }
        }
        let mut ns = 0u64;
        // SAFETY: reading 8 bytes into a local from our pipe.
        unsafe {
            libc::close(fds[1]);
            libc::read(fds[0], (&mut ns as *mut u64).cast(), 8);
            libc::close(fds[0]);
        }
        assert_eq!(wait(pid), Outcome::Exited(0));
        assert_ne!(ns, 0, "install failed");
        install_times.push(Duration::from_nanos(ns));
    }
    println!(
        "bench seccomp compile_us={:.1} install_us={:.1} bpf_len={}",
        median(compile_times).as_secs_f64() * 1e6,
        median(install_times).as_secs_f64() * 1e6,
        prog.len()
    );
}

/// The real-world profile: podman's default from golang-github-containers-common, read as is
/// (serde ignores the engine-only keys, so every conditional entry is in: the stricter one wins
/// where an ALLOW and an ERRNO variant overlap). It must fit the kernel's limit with all three
/// x86 ABIs and behave: allowed syscalls work, others get its defaultErrnoRet (ENOSYS).
#[test]
fn containers_common_profile_compiles_and_filters() {
    let text = std::fs::read_to_string("/usr/share/containers/seccomp.json")
        .expect("apt-get install golang-github-containers-common");
    let mut spec: LinuxSeccomp = serde_json::from_str(&text).unwrap();
    spec.set_architectures(Some(vec![
        oci_spec::runtime::Arch::ScmpArchX86_64,
        oci_spec::runtime::Arch::ScmpArchX86,
        oci_spec::runtime::Arch::ScmpArchX32,
    ]));
    let prog = compile(&spec).unwrap();
    assert!(prog.len() < 4096);
    assert_eq!(run_filtered(&prog, getppid), Outcome::Exited(0));
    assert_eq!(run_filtered(&prog, i386_getppid), Outcome::Exited(0));
    assert_eq!(
        run_filtered(&prog, || errno_code(sys(libc::SYS_add_key, [0; 3]))),
        Outcome::Exited(libc::ENOSYS)
    );
    assert_eq!(
        run_filtered(&prog, || errno_code(sys(
            libc::SYS_personality,
            [0xffff_ffff, 0, 0]
        ))),
        Outcome::Exited(0)
    );
    assert_eq!(
        run_filtered(&prog, || errno_code(sys(
            libc::SYS_personality,
            [0x1234, 0, 0]
        ))),
        Outcome::Exited(libc::ENOSYS)
    );
}
