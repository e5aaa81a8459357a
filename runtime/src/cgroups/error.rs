//! What can go wrong in the cgroup manager. Each variant names the step (or the config field) and the
//! reason, so the user sees one line saying which limit or which cgroup file failed and why.

use std::path::PathBuf;

use nix::errno::Errno;

#[derive(Debug)]
pub enum CgroupError {
    /// A value of `linux.resources` (or of an `update` flag) that cannot be expressed in cgroup v2.
    BadValue { field: String, reason: String },
    /// The field needs a controller the cgroup v2 hierarchy does not offer.
    ControllerUnavailable {
        field: String,
        controller: String,
        root: PathBuf,
        available: Vec<String>,
    },
    /// Resources were asked for but no cgroup2 filesystem is mounted.
    NoHierarchy { field: String },
    /// The container's cgroup already holds processes (runc refuses to share a cgroup the same way).
    NotEmpty { path: PathBuf, procs: usize },
    Mkdir {
        path: PathBuf,
        source: std::io::Error,
    },
    EnableControllers {
        path: PathBuf,
        controllers: String,
        source: std::io::Error,
    },
    /// A limit was asked for but its cgroup could not be made (e.g. no delegated cgroup when rootless).
    NeedsCgroup {
        field: String,
        cause: Box<CgroupError>,
    },
    /// Writing one limit into its file.
    Write {
        field: String,
        file: PathBuf,
        value: String,
        source: std::io::Error,
    },
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    Rmdir {
        path: PathBuf,
        source: std::io::Error,
    },
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A freeze or thaw that the kernel did not complete in time.
    FreezeTimeout { path: PathBuf, frozen: bool },
    /// systemd refused or failed an action on the container's unit (`--systemd-cgroup`).
    Systemd {
        action: String,
        unit: String,
        bus: String,
        reason: String,
    },
    /// No systemd manager could be reached on `socket`.
    SystemdBus { socket: String, reason: String },
    /// One step of loading/attaching the device filter (bpf(2)); `log` is the verifier's output.
    Bpf {
        step: &'static str,
        errno: Errno,
        log: String,
    },
}

impl std::fmt::Display for CgroupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use CgroupError::*;
        match self {
            BadValue { field, reason } => write!(f, "{field}: {reason}"),
            ControllerUnavailable {
                field,
                controller,
                root,
                available,
            } => write!(
                f,
                "{field}: the {controller} controller is not available in the cgroup v2 hierarchy at {} (available: {})",
                root.display(),
                if available.is_empty() { "none".to_string() } else { available.join(" ") }
            ),
            NoHierarchy { field } => write!(f, "{field}: no cgroup v2 filesystem is mounted"),
            NotEmpty { path, procs } => write!(
                f,
                "cgroup {} already holds {procs} process(es): refusing to share it",
                path.display()
            ),
            Mkdir { path, source } => write!(f, "create cgroup {}: {source}", path.display()),
            NeedsCgroup { field, cause } => write!(f, "{field}: needs a cgroup: {cause}"),
            EnableControllers {
                path,
                controllers,
                source,
            } => write!(
                f,
                "enable controllers {controllers:?} in {}: {source}",
                path.display()
            ),
            Write {
                field,
                file,
                value,
                source,
            } => write!(f, "{field}: write {value:?} to {}: {source}", file.display()),
            Read { path, source } => write!(f, "read {}: {source}", path.display()),
            Rmdir { path, source } => write!(f, "remove cgroup {}: {source}", path.display()),
            Open { path, source } => write!(f, "open cgroup {}: {source}", path.display()),
            FreezeTimeout { path, frozen } => write!(
                f,
                "cgroup {}: the kernel did not {} it within the timeout",
                path.display(),
                if *frozen { "freeze" } else { "thaw" }
            ),
            Systemd {
                action,
                unit,
                bus,
                reason,
            } => write!(f, "--systemd-cgroup: {action} unit {unit} (systemd on {bus}): {reason}"),
            SystemdBus { socket, reason } => {
                write!(f, "--systemd-cgroup: connect to systemd on {socket}: {reason}")
            }
            Bpf { step, errno, log } => {
                write!(f, "linux.resources.devices: {step}: {}", errno.desc())?;
                if !log.is_empty() {
                    write!(f, " (verifier: {})", log.trim().replace('\n', "; "))?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for CgroupError {}

impl From<CgroupError> for crate::error::Error {
    fn from(e: CgroupError) -> Self {
        use crate::error::Error;
        match e {
            CgroupError::Mkdir { path, source } => Error::io("create cgroup", path, source),
            CgroupError::Read { path, source } => Error::io("read", path, source),
            CgroupError::Rmdir { path, source } => Error::io("remove cgroup", path, source),
            CgroupError::Open { path, source } => Error::io("open cgroup", path, source),
            other => Error::InvalidArgument(other.to_string()),
        }
    }
}
