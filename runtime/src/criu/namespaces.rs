//! Namespaces the container joined by path (a pod's network namespace, a shared pid namespace) belong to
//! someone else: CRIU must neither dump nor recreate them. As runc does, the network and pid namespaces
//! given by path are declared at dump as `external` `<type>[<inode>]:extRoot<Type>NS`, and at restore the
//! namespace at that path (the same or another with the same role) is handed to CRIU as an inherited fd
//! under that key, so the restored tasks rejoin it.

use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};

/// The kinds runc treats as external when joined by path.
const KINDS: [(LinuxNamespaceType, &str); 2] = [
    (LinuxNamespaceType::Network, "net"),
    (LinuxNamespaceType::Pid, "pid"),
];

/// runc's key: `extRoot` + the CRIU name capitalised + `NS` (extRootNetNS, extRootPidNS).
pub fn key(criu_name: &str) -> String {
    let mut c = criu_name.chars();
    let first = c.next().map(|f| f.to_ascii_uppercase().to_string());
    format!("extRoot{}{}NS", first.unwrap_or_default(), c.as_str())
}

fn joined(spec: &Spec) -> Vec<(&'static str, PathBuf)> {
    let nss = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    KINDS
        .iter()
        .filter_map(|(t, name)| {
            nss.iter()
                .find(|n| n.typ() == *t)
                .and_then(|n| n.path().clone())
                .map(|p| (*name, p))
        })
        .collect()
}

/// `external` entries for a dump.
pub fn for_dump(spec: &Spec) -> Result<Vec<String>> {
    joined(spec)
        .into_iter()
        .map(|(name, path)| {
            let md = std::fs::metadata(&path)
                .map_err(|e| Error::io(format!("stat the {name} namespace"), &path, e))?;
            Ok(format!("{name}[{}]:{}", md.ino(), key(name)))
        })
        .collect()
}

/// The namespaces to hand to a restore: (key, an fd of the namespace).
pub fn for_restore(spec: &Spec) -> Result<Vec<(String, OwnedFd)>> {
    joined(spec)
        .into_iter()
        .map(|(name, path)| {
            let fd =
                open(&path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).map_err(|e| {
                    Error::sys(format!("open the {name} namespace {}", path.display()), e)
                })?;
            Ok((key(name), fd))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_runcs() {
        assert_eq!(super::key("net"), "extRootNetNS");
        assert_eq!(super::key("pid"), "extRootPidNS");
    }
}
