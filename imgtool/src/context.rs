//! What every command gets: the store location and the registry options. Built once in `main`
//! from the global flags and environment; commands never read the environment themselves.
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The platform an image is chosen for from a multi-arch index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    /// Empty when the user did not ask for one (then any variant of the architecture fits).
    pub variant: String,
}

impl Platform {
    /// The host's platform in OCI/Go spelling (`x86_64` → `amd64`, `aarch64` → `arm64`).
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", ""),
            "aarch64" => ("arm64", ""),
            "x86" => ("386", ""),
            "arm" => ("arm", "v7"),
            "powerpc64" => ("ppc64le", ""),
            "riscv64" => ("riscv64", ""),
            "s390x" => ("s390x", ""),
            other => (other, ""),
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: variant.into(),
        }
    }

    /// Parse `os/arch[/variant]`.
    pub fn parse(input: &str) -> Result<Platform> {
        let parts: Vec<&str> = input.split('/').collect();
        let bad = || Error::InvalidPlatform {
            input: input.to_string(),
        };
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        match parts.as_slice() {
            [os, arch] => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: String::new(),
            }),
            [os, arch, variant] => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: variant.to_string(),
            }),
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

/// How to talk to registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// `--creds user:pass`: wins over any auth file.
    pub creds: Option<(String, String)>,
    /// `--authfile`: read (and for login/logout, written) instead of the default auth.json.
    pub authfile: Option<PathBuf>,
    /// `--tls-verify=false` turns certificate checks off (for the registries named on the
    /// command line only: one command talks to one registry).
    pub tls_verify: bool,
    /// `--cert-dir`: extra CA certificates (`*.crt`) trusted besides the system roots.
    pub cert_dir: Option<PathBuf>,
    /// `--plain-http`: talk HTTP, allowed for localhost/127.0.0.1/::1 registries only.
    pub plain_http: bool,
    pub platform: Platform,
    /// How many times a transient failure (5xx, reset, timeout) is retried.
    pub retries: u32,
    /// `--timeout`: how long a registry may send nothing (connecting, or between two reads)
    /// before the request counts as stalled.
    pub timeout: std::time::Duration,
    /// `--registries-conf`: the one registries.conf to read instead of the default files.
    pub registries_conf: Option<PathBuf>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            creds: None,
            authfile: None,
            tls_verify: true,
            cert_dir: None,
            plain_http: false,
            platform: Platform::host(),
            retries: 3,
            timeout: std::time::Duration::from_secs(30),
            registries_conf: None,
        }
    }
}

/// What every command gets.
#[derive(Debug, Clone)]
pub struct Context {
    /// The image store: an OCI image layout (see `store.rs`).
    pub store_dir: PathBuf,
    pub registry: RegistryOptions,
    /// `--quiet`: no progress output at all.
    pub quiet: bool,
    /// `pull --verify-diff-ids`: decompress every layer while it arrives and check its diff_id
    /// then, instead of in the first pass that unpacks it (the default, as containerd does).
    pub verify_diff_ids: bool,
}

impl Context {
    /// The store directory when neither `--store` nor `IMGTOOL_STORE` names one:
    /// `/var/lib/imgtool` for root, `$XDG_DATA_HOME/imgtool` (or `~/.local/share/imgtool`) otherwise.
    pub fn default_store_dir() -> PathBuf {
        if nix::unistd::geteuid().is_root() {
            return PathBuf::from("/var/lib/imgtool");
        }
        if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
            return Path::new(&d).join("imgtool");
        }
        let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
        Path::new(&home).join(".local/share/imgtool")
    }

    /// A context with default registry options, for a given store (used by tests and callers
    /// that do not go through the command line).
    #[allow(dead_code)]
    pub fn with_store(store_dir: impl Into<PathBuf>) -> Context {
        Context {
            store_dir: store_dir.into(),
            registry: RegistryOptions::default(),
            quiet: true,
            verify_diff_ids: false,
        }
    }
}
