//! linux.seccomp → BPF (seccompiler) and its installation with seccomp(2). (Placeholder on main until the
//! seccomp work lands: a config with linux.seccomp is refused, never silently run unfiltered.)

use std::os::fd::OwnedFd;

#[derive(Debug)]
pub struct SeccompError(String);

impl std::fmt::Display for SeccompError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub struct SeccompProgram;

pub fn compile(_spec: &oci_spec::runtime::LinuxSeccomp) -> Result<SeccompProgram, SeccompError> {
    Err(SeccompError(
        "linux.seccomp: not supported by this build".into(),
    ))
}

impl SeccompProgram {
    pub fn uses_notify(&self) -> bool {
        false
    }

    pub fn install(&self) -> Result<Option<OwnedFd>, SeccompError> {
        Ok(None)
    }
}

pub fn send_to_listener(
    _listener_path: &std::path::Path,
    _metadata: Option<&str>,
    _state: &oci_spec::runtime::State,
    _pid: i32,
    _fd: std::os::fd::BorrowedFd,
) -> Result<(), SeccompError> {
    Ok(())
}

/// For `gruntime features`: nothing until seccomp lands.
pub fn features_json() -> serde_json::Value {
    serde_json::json!({ "enabled": false })
}
