//! What can go wrong with `linux.seccomp`, from the profile's fields to installing the filter and handing the
//! notify fd over. Profile errors name the field as a path into config.json.

use std::fmt;
use std::path::PathBuf;

/// Every way compiling, installing or handing over a filter can fail. Profile errors name the
/// field as a path into config.json (`linux.seccomp.syscalls[3].action`).
#[derive(Debug)]
pub enum SeccompError {
    /// A string field holds a value the runtime spec does not define.
    UnknownValue {
        field: String,
        kind: &'static str,
        value: String,
    },
    /// A field has the wrong JSON type or is missing.
    BadField { field: String, reason: String },
    /// `names` is empty, so the entry would silently match nothing.
    EmptyNames { field: String },
    /// A syscall name that is not a plain identifier (likely a value put in the wrong field).
    BadSyscallName { field: String, name: String },
    /// `args[].index` is past the 6 syscall arguments.
    ArgIndexOutOfRange { field: String, index: usize },
    /// `errnoRet` given with an action that returns no errno.
    ErrnoRetNotAllowed { field: String, action: String },
    /// `errnoRet` does not fit in the 16 data bits of a seccomp return value.
    ErrnoRetOutOfRange { field: String, value: u32 },
    /// `SCMP_ACT_NOTIFY` as default action: the init could not even hand over the listener fd.
    NotifyAsDefault,
    /// `SCMP_ACT_NOTIFY` used but `listenerPath` unset: nobody would answer the notifications.
    NotifyWithoutListener { field: String },
    /// SCMP_ACT_NOTIFY on the syscall the init needs to hand the notify fd over.
    NotifyOnHandover { field: String },
    /// The running kernel does not implement an action the profile uses.
    ActionUnavailable { field: String, action: String },
    /// The running kernel does not implement a filter flag the profile asks for.
    FlagUnsupported { field: String, flag: String },
    /// The build architecture has no syscall table here.
    UnsupportedBuildArch(&'static str),
    /// seccompiler refused a rule.
    Rule {
        field: String,
        source: seccompiler::BackendError,
    },
    /// The whole program is longer than the kernel accepts.
    TooLong { len: usize, max: usize },
    /// seccomp(2) SECCOMP_SET_MODE_FILTER failed.
    Install {
        flags: libc::c_ulong,
        source: std::io::Error,
    },
    /// TSYNC could not synchronise another thread of the process.
    ThreadSync { tid: libc::c_long },
    /// Connecting to `listenerPath` failed.
    ListenerConnect {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Sending the notify fd and state over the listener socket failed.
    ListenerSend {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The container process state could not be serialised.
    StateJson(serde_json::Error),
}

impl fmt::Display for SeccompError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use SeccompError::*;
        match self {
            UnknownValue { field, kind, value } => {
                write!(f, "{field}: unknown {kind} {value:?}")
            }
            BadField { field, reason } => write!(f, "{field}: {reason}"),
            EmptyNames { field } => write!(f, "{field}: no syscall names"),
            BadSyscallName { field, name } => {
                write!(f, "{field}: {name:?} is not a syscall name")
            }
            ArgIndexOutOfRange { field, index } => {
                write!(f, "{field}: argument index {index} out of range 0..=5")
            }
            ErrnoRetNotAllowed { field, action } => write!(
                f,
                "{field}: errnoRet is only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not {action}"
            ),
            ErrnoRetOutOfRange { field, value } => {
                write!(f, "{field}: {value} does not fit in 16 bits")
            }
            NotifyAsDefault => write!(
                f,
                "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action"
            ),
            NotifyWithoutListener { field } => write!(
                f,
                "{field}: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath to be set"
            ),
            NotifyOnHandover { field } => write!(
                f,
                "{field}: SCMP_ACT_NOTIFY on sendmsg is not supported: the container's init needs it to hand the notify fd to the runtime"
            ),
            ActionUnavailable { field, action } => {
                write!(f, "{field}: the running kernel does not support {action}")
            }
            FlagUnsupported { field, flag } => {
                write!(f, "{field}: the running kernel does not support {flag}")
            }
            UnsupportedBuildArch(arch) => {
                write!(f, "linux.seccomp: no syscall table for architecture {arch}")
            }
            Rule { field, source } => write!(f, "{field}: {source}"),
            TooLong { len, max } => write!(
                f,
                "linux.seccomp: the filter has {len} BPF instructions, the kernel takes at most {max}"
            ),
            Install { flags, source } => write!(
                f,
                "installing the seccomp filter (seccomp(2) flags {flags:#x}): {source}"
            ),
            ThreadSync { tid } => write!(
                f,
                "installing the seccomp filter: thread {tid} could not be synchronised (TSYNC)"
            ),
            ListenerConnect { path, source } => write!(
                f,
                "linux.seccomp.listenerPath {}: cannot connect: {source}",
                path.display()
            ),
            ListenerSend { path, source } => write!(
                f,
                "linux.seccomp.listenerPath {}: cannot send the notify fd: {source}",
                path.display()
            ),
            StateJson(e) => write!(f, "seccomp listener state: {e}"),
        }
    }
}

impl std::error::Error for SeccompError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        use SeccompError::*;
        match self {
            Rule { source, .. } => Some(source),
            Install { source, .. }
            | ListenerConnect { source, .. }
            | ListenerSend { source, .. } => Some(source),
            StateJson(e) => Some(e),
            _ => None,
        }
    }
}
