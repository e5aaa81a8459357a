//! What `gruntime features` reports under `linux.seccomp`: only what this build and the running
//! kernel really do.

use oci_spec::runtime::{Arch, LinuxSeccompAction, LinuxSeccompFilterFlag, Seccomp};

use super::compile::flag_bit;
use super::install;
use super::validate::OPERATORS;

const ACTIONS: [(LinuxSeccompAction, u32); 9] = [
    (LinuxSeccompAction::ScmpActAllow, libc::SECCOMP_RET_ALLOW),
    (LinuxSeccompAction::ScmpActErrno, libc::SECCOMP_RET_ERRNO),
    (
        LinuxSeccompAction::ScmpActKill,
        libc::SECCOMP_RET_KILL_THREAD,
    ),
    (
        LinuxSeccompAction::ScmpActKillProcess,
        libc::SECCOMP_RET_KILL_PROCESS,
    ),
    (
        LinuxSeccompAction::ScmpActKillThread,
        libc::SECCOMP_RET_KILL_THREAD,
    ),
    (LinuxSeccompAction::ScmpActLog, libc::SECCOMP_RET_LOG),
    (
        LinuxSeccompAction::ScmpActNotify,
        libc::SECCOMP_RET_USER_NOTIF,
    ),
    (LinuxSeccompAction::ScmpActTrace, libc::SECCOMP_RET_TRACE),
    (LinuxSeccompAction::ScmpActTrap, libc::SECCOMP_RET_TRAP),
];

const FLAGS: [LinuxSeccompFilterFlag; 4] = [
    LinuxSeccompFilterFlag::SeccompFilterFlagTsync,
    LinuxSeccompFilterFlag::SeccompFilterFlagLog,
    LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow,
    LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv,
];

pub fn features() -> Seccomp {
    let mut f = Seccomp::default();
    f.set_enabled(Some(cfg!(target_arch = "x86_64")));
    f.set_actions(Some(
        ACTIONS
            .iter()
            .filter(|(_, v)| install::action_available(*v))
            .map(|(a, _)| *a)
            .collect(),
    ));
    f.set_operators(Some(OPERATORS.iter().map(|s| s.to_string()).collect()));
    // The ABIs an x86_64 kernel runs, each filtered with its own syscall table.
    f.set_archs(Some(if cfg!(target_arch = "x86_64") {
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    } else {
        vec![]
    }));
    f.set_known_flags(Some(FLAGS.iter().map(|fl| fl.to_string()).collect()));
    f.set_supported_flags(Some(
        FLAGS
            .iter()
            .filter(|fl| install::flag_supported(flag_bit(**fl)))
            .map(|fl| fl.to_string())
            .collect(),
    ));
    f
}
