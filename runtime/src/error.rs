//! The runtime's two error types. `Error` is what a command returns: each variant names the step that failed
//! and keeps the cause (path, field, errno), so a user sees one line that says what went wrong where.
//! `InitError` is a step inside the container's init: a description and an errno, small enough to cross the
//! sync socket to the parent, where it becomes `Error::Init` ("mount /proc on /x/rootfs/proc: Permission denied").

use std::path::PathBuf;

use nix::errno::Errno;

#[derive(Debug)]
pub enum Error {
    /// The user gave us something unusable (a flag, an id, a field of config.json).
    InvalidArgument(String),
    /// `<field>: <reason>` in config.json.
    InvalidConfig {
        path: PathBuf,
        reason: String,
    },
    ReadConfig {
        path: PathBuf,
        source: std::io::Error,
    },
    ContainerNotFound(String),
    ContainerExists(String),
    /// The container is not in a state that allows the command.
    BadState {
        id: String,
        reason: String,
    },
    NoSuchProcess,
    /// A filesystem step of the runtime itself (state dir, pid file, log file).
    Io {
        step: String,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A syscall made by the runtime process.
    Sys {
        step: String,
        errno: Errno,
    },
    /// A step inside the container's init failed; reported back over the sync socket.
    Init {
        step: String,
        errno: i32,
    },
    Hook {
        kind: &'static str,
        index: usize,
        reason: String,
    },
    Unsupported(String),
    /// A checkpoint or restore that CRIU refused or could not do; CRIU's own account is in its log.
    Criu {
        what: String,
        log: Option<PathBuf>,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::InvalidArgument(m) => write!(f, "{m}"),
            Error::InvalidConfig { path, reason } => write!(f, "{}: {reason}", path.display()),
            Error::ReadConfig { path, source } => {
                if source.kind() == std::io::ErrorKind::NotFound {
                    write!(f, "{}: does not exist", path.display())
                } else {
                    write!(f, "read {}: {source}", path.display())
                }
            }
            Error::ContainerNotFound(id) => write!(f, "container {id} does not exist"),
            Error::ContainerExists(id) => write!(f, "container with id {id} already exists"),
            Error::BadState { id, reason } => write!(f, "container {id}: {reason}"),
            Error::NoSuchProcess => write!(f, "container not running: no such process"),
            Error::Io { step, path, source } => write!(f, "{step} {}: {source}", path.display()),
            Error::Sys { step, errno } => write!(f, "{step}: {}", errno.desc()),
            Error::Init { step, errno } => {
                if *errno == 0 {
                    write!(f, "container init: {step}")
                } else {
                    write!(
                        f,
                        "container init: {step}: {}",
                        Errno::from_raw(*errno).desc()
                    )
                }
            }
            Error::Hook {
                kind,
                index,
                reason,
            } => write!(f, "{kind} hook #{index}: {reason}"),
            Error::Unsupported(m) => write!(f, "not supported: {m}"),
            Error::Criu {
                what,
                log: Some(log),
            } => {
                write!(f, "{what} (CRIU's log: {})", log.display())
            }
            Error::Criu { what, log: None } => write!(f, "{what}"),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    pub fn io(step: impl Into<String>, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            step: step.into(),
            path: path.into(),
            source,
        }
    }

    pub fn sys(step: impl Into<String>, errno: Errno) -> Self {
        Error::Sys {
            step: step.into(),
            errno,
        }
    }

    pub fn config(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::InvalidConfig {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

// ---- errors of the container's init ----

#[derive(Debug)]
pub struct InitError {
    pub step: String,
    pub errno: i32,
}

pub type InitResult<T> = std::result::Result<T, InitError>;

pub fn fail(step: impl Into<String>) -> InitError {
    InitError {
        step: step.into(),
        errno: 0,
    }
}

pub trait Step<T> {
    fn step(self, what: impl FnOnce() -> String) -> InitResult<T>;
}

impl<T> Step<T> for nix::Result<T> {
    fn step(self, what: impl FnOnce() -> String) -> InitResult<T> {
        self.map_err(|e| InitError {
            step: what(),
            errno: e as i32,
        })
    }
}

impl<T> Step<T> for std::io::Result<T> {
    fn step(self, what: impl FnOnce() -> String) -> InitResult<T> {
        self.map_err(|e| InitError {
            step: what(),
            errno: e.raw_os_error().unwrap_or(0),
        })
    }
}
