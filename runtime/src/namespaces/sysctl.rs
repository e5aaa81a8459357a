//! `linux.sysctl` is only written when the key belongs to a namespace the container has of its own;
//! anything else would change the host, so it is refused before anything is made (`check`). The init writes
//! the keys through its own /proc/sys (`write_all`).

use std::os::unix::fs::MetadataExt;

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{InitResult, Step};

/// The namespace a sysctl key lives in, or None for a host-global one.
fn namespace_of(key: &str) -> Option<LinuxNamespaceType> {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
        "kernel.msg_next_id",
        "kernel.sem_next_id",
        "kernel.shm_next_id",
    ];
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        Some(LinuxNamespaceType::Ipc)
    } else if key.starts_with("net.") {
        Some(LinuxNamespaceType::Network)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some(LinuxNamespaceType::Uts)
    } else if key.starts_with("user.") {
        Some(LinuxNamespaceType::User)
    } else {
        None
    }
}

/// Is the namespace `path` the one gruntime itself runs in (the host's)?
fn is_hosts(t: LinuxNamespaceType, path: &std::path::Path) -> bool {
    let own = format!("/proc/self/ns/{}", proc_name(t));
    match (std::fs::metadata(path), std::fs::metadata(own)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Mount => "mnt",
        t => crate::namespaces::name(t),
    }
}

pub fn check(spec: &Spec) -> Result<(), String> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    let namespaces = linux.namespaces().clone().unwrap_or_default();
    for key in linux.sysctl().iter().flatten().map(|(k, _)| k) {
        let norm = key.replace('/', ".");
        let Some(t) = namespace_of(&norm) else {
            return Err(format!(
                "linux.sysctl {key}: not in any namespace the container has of its own (it would change the host)"
            ));
        };
        let ns = namespaces.iter().find(|n| n.typ() == t);
        let owned = match ns {
            None => false,
            Some(n) => n.path().as_ref().is_none_or(|p| !is_hosts(t, p)),
        };
        if !owned {
            return Err(format!(
                "linux.sysctl {key}: belongs to the {} namespace, which the container shares with the host",
                crate::namespaces::name(t)
            ));
        }
    }
    Ok(())
}

/// In the init, after the mounts (it writes /proc/sys of the container's namespaces): every checked key.
pub fn write_all(spec: &Spec) -> InitResult<()> {
    for (k, v) in spec
        .linux()
        .as_ref()
        .and_then(|l| l.sysctl().clone())
        .unwrap_or_default()
    {
        let path = std::path::PathBuf::from("/proc/sys").join(k.replace('.', "/"));
        std::fs::write(&path, v.as_bytes()).step(|| format!("linux.sysctl {k}={v}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctls_map_to_their_namespaces() {
        assert_eq!(namespace_of("kernel.shmmax"), Some(LinuxNamespaceType::Ipc));
        assert_eq!(
            namespace_of("fs.mqueue.msg_max"),
            Some(LinuxNamespaceType::Ipc)
        );
        assert_eq!(
            namespace_of("net.ipv4.ip_forward"),
            Some(LinuxNamespaceType::Network)
        );
        assert_eq!(
            namespace_of("kernel.domainname"),
            Some(LinuxNamespaceType::Uts)
        );
        assert_eq!(
            namespace_of("user.max_user_namespaces"),
            Some(LinuxNamespaceType::User)
        );
        assert_eq!(namespace_of("vm.swappiness"), None);
        assert_eq!(namespace_of("kernel.pid_max"), None);
    }
}
