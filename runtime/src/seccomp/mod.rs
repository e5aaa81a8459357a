//! `linux.seccomp` → a BPF program, and its installation with gruntime's own `seccomp(2)` call.
//!
//! No libseccomp: seccompiler compiles the argument rules, gruntime lays out the ABI dispatch and
//! the tables of unconditional syscalls around them (see `compile.rs` for the program's shape).
//!
//! Non-native ABIs (decided here, since the runtime spec is silent): on x86_64 a process can also
//! make syscalls through the i386 ABI (`int 0x80`, `AUDIT_ARCH_I386`) and the x32 ABI
//! (`AUDIT_ARCH_X86_64` with bit 30 set in the syscall number). A syscall number means a different
//! syscall in each ABI, so each ABI the profile lists (`SCMP_ARCH_X86`, `SCMP_ARCH_X32`) gets the
//! profile's rules translated with its own syscall table; an ABI the profile does not list gets
//! `SECCOMP_RET_KILL_PROCESS` for every syscall (libseccomp's "bad arch" action, made
//! process-wide). Either way no syscall reaches the kernel unfiltered through another ABI.
//! Architectures a kernel of the build architecture can never run (ARM on x86_64, ...) are
//! accepted and ignored.

mod compile;
mod error;
mod features;
mod install;
mod notify;
mod program;
mod syscalls;
mod validate;

#[cfg(test)]
mod tests;

pub use compile::compile;
pub use error::SeccompError;
pub use features::features;
pub use notify::send_to_listener;
pub use program::SeccompProgram;
pub use validate::validate_raw;

/// `features()` as JSON, for `gruntime features`' `linux.seccomp`.
pub fn features_json() -> serde_json::Value {
    serde_json::to_value(features()).unwrap_or_else(|_| serde_json::json!({ "enabled": false }))
}
