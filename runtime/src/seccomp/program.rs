//! A compiled filter: the BPF instructions and seccomp(2) flags made at create time, so the init only installs
//! it (install.rs) and never allocates after the clone.

/// A compiled filter, ready to install in the container's init.
#[derive(Clone, Debug)]
pub struct SeccompProgram {
    /// The BPF instructions, made at create time so `install` does not allocate after fork.
    pub(super) bpf: Vec<seccompiler::sock_filter>,
    /// `SECCOMP_FILTER_FLAG_*` bits for seccomp(2), NEW_LISTENER included when notify is used.
    pub(super) flags: libc::c_ulong,
    pub(super) uses_notify: bool,
}

impl SeccompProgram {
    /// Whether `install` returns a notify fd that must go to `listenerPath`.
    #[allow(dead_code)] // part of the API the core calls; it currently checks install's result
    pub fn uses_notify(&self) -> bool {
        self.uses_notify
    }

    /// Number of BPF instructions (for the benchmark and debug logs).
    pub fn len(&self) -> usize {
        self.bpf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bpf.is_empty()
    }

    pub fn flags(&self) -> libc::c_ulong {
        self.flags
    }
}
