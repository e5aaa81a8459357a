//! Installing a filter with flags, and asking the kernel which actions and flags it has (the raw seccomp(2)
//! calls are in sys.rs). seccompiler's `apply_filter` always sets NO_NEW_PRIVS and takes no
//! flags, which the runtime spec's timing and `flags` rule out.

use std::os::fd::{FromRawFd, OwnedFd};

use super::{SeccompError, SeccompProgram};

impl SeccompProgram {
    /// Install on the calling thread (all threads with TSYNC). Does not allocate: the caller is a
    /// forked child of a multi-threaded parent. Needs NO_NEW_PRIVS or CAP_SYS_ADMIN, which is the
    /// caller's choice of timing. Returns the notify fd when the filter uses SCMP_ACT_NOTIFY.
    pub fn install(&self) -> Result<Option<OwnedFd>, SeccompError> {
        let rc = crate::sys::seccomp_set_filter(&self.bpf, self.flags).map_err(|source| {
            SeccompError::Install {
                flags: self.flags,
                source,
            }
        })?;
        if self.flags & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER != 0 {
            // SAFETY: with NEW_LISTENER a successful seccomp(2) returns a new fd we now own.
            return Ok(Some(unsafe { OwnedFd::from_raw_fd(rc as i32) }));
        }
        if rc > 0 {
            // Without NEW_LISTENER a positive return is the thread TSYNC could not synchronise.
            return Err(SeccompError::ThreadSync { tid: rc });
        }
        Ok(None)
    }
}

/// Whether the running kernel knows a seccomp return action.
pub(super) fn action_available(action: u32) -> bool {
    crate::sys::seccomp_action_available(action & libc::SECCOMP_RET_ACTION_FULL)
}

/// Whether the running kernel knows a SECCOMP_SET_MODE_FILTER flag. The kernel checks the flags
/// before reading the program, so a NULL program gives EFAULT for a known flag and EINVAL for an
/// unknown one, without installing anything (the probe libseccomp uses).
pub(super) fn flag_supported(flag: libc::c_ulong) -> bool {
    // The kernel refuses WAIT_KILLABLE_RECV without NEW_LISTENER whatever its version.
    let flag = if flag & libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV != 0 {
        flag | libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
    } else {
        flag
    };
    crate::sys::seccomp_flag_known(flag)
}
