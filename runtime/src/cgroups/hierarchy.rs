//! Where the cgroup v2 hierarchy is and where a container's cgroup goes in it.
//!
//! The mount is read from /proc/self/mountinfo (hybrid hosts mount it at /sys/fs/cgroup/unified, pure v2
//! hosts at /sys/fs/cgroup); our own cgroup from the `0::` line of /proc/self/cgroup. `linux.cgroupsPath`
//! follows runc: absolute = under the hierarchy's root, relative = under our own cgroup; absent =
//! `<own>/gruntime/<id>`, so a runtime started in a delegated subtree never writes outside it.

use std::path::{Component, Path, PathBuf};

use super::error::CgroupError;

/// The parent of every container cgroup made without a `linux.cgroupsPath`.
pub const DEFAULT_PARENT: &str = "gruntime";

#[derive(Debug, Clone)]
pub struct Hierarchy {
    /// Where the cgroup2 filesystem is mounted.
    pub mount: PathBuf,
    /// Our own cgroup, relative to the mount (empty at the root).
    pub own: PathBuf,
}

impl Hierarchy {
    /// The cgroup2 hierarchy this process sees, if any.
    pub fn find() -> Option<Hierarchy> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let mount = cgroup2_mount(&mountinfo)?;
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .ok()
            .and_then(|s| own_cgroup(&s))
            .unwrap_or_default();
        Some(Hierarchy { mount, own })
    }

    /// The directory of the container's cgroup.
    pub fn resolve(&self, cgroups_path: Option<&Path>, id: &str) -> Result<PathBuf, CgroupError> {
        let inner = match cgroups_path {
            Some(p) if !p.as_os_str().is_empty() => {
                let clean = clean_relative(p)?;
                if p.is_absolute() {
                    clean
                } else {
                    self.own.join(clean)
                }
            }
            _ => self.own.join(DEFAULT_PARENT).join(id),
        };
        if inner.as_os_str().is_empty() {
            return Err(CgroupError::BadValue {
                field: "linux.cgroupsPath".into(),
                reason: "names the root of the cgroup hierarchy: a container needs its own cgroup"
                    .into(),
            });
        }
        Ok(self.mount.join(inner))
    }

    /// Controllers the hierarchy's root offers (`cgroup.controllers`).
    pub fn available_controllers(&self) -> Vec<String> {
        std::fs::read_to_string(self.mount.join("cgroup.controllers"))
            .map(|s| s.split_whitespace().map(String::from).collect())
            .unwrap_or_default()
    }
}

/// `/a/../b` and friends are refused rather than resolved: a cgroup path must not climb out of where it
/// points. Returns the path without its root, so it can be joined under the mount or our own cgroup.
fn clean_relative(p: &Path) -> Result<PathBuf, CgroupError> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(CgroupError::BadValue {
                    field: "linux.cgroupsPath".into(),
                    reason: format!("{}: must not contain `..`", p.display()),
                })
            }
        }
    }
    Ok(out)
}

/// The mount point of the first cgroup2 filesystem in a mountinfo text.
pub fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    crate::mountinfo::parse(mountinfo)
        .into_iter()
        .find(|m| m.fstype == "cgroup2")
        .map(|m| m.mount_point)
}

/// Our cgroup v2 path (the `0::` line), without the leading `/`.
pub fn own_cgroup(proc_self_cgroup: &str) -> Option<PathBuf> {
    proc_self_cgroup.lines().find_map(|l| {
        let rest = l.strip_prefix("0::")?;
        // "(deleted)" follows a cgroup that was removed under us; the path is still the best guess.
        let rest = rest.trim_end_matches(" (deleted)");
        Some(PathBuf::from(rest.trim_start_matches('/')))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount_of_a_hybrid_host() {
        let mi = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                  32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
                  41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_mount(mi),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(
            cgroup2_mount("1 2 0:1 / /x\\040y rw - cgroup2 none rw\n"),
            Some(PathBuf::from("/x y"))
        );
        assert_eq!(
            cgroup2_mount(&mi.lines().take(2).collect::<Vec<_>>().join("\n")),
            None
        );
    }

    #[test]
    fn own_cgroup_is_the_v2_line() {
        assert_eq!(
            own_cgroup("4:memory:/a\n0::/user.slice/x\n"),
            Some(PathBuf::from("user.slice/x"))
        );
        assert_eq!(own_cgroup("0::/\n"), Some(PathBuf::new()));
        assert_eq!(own_cgroup("4:memory:/a\n"), None);
    }

    #[test]
    fn cgroups_path_is_absolute_under_the_root_relative_under_our_own() {
        let h = Hierarchy {
            mount: "/cg".into(),
            own: "me".into(),
        };
        assert_eq!(
            h.resolve(Some(Path::new("/a/b")), "c1").unwrap(),
            PathBuf::from("/cg/a/b")
        );
        assert_eq!(
            h.resolve(Some(Path::new("a/b")), "c1").unwrap(),
            PathBuf::from("/cg/me/a/b")
        );
        assert_eq!(
            h.resolve(None, "c1").unwrap(),
            PathBuf::from("/cg/me/gruntime/c1")
        );
        assert!(h.resolve(Some(Path::new("/a/../../etc")), "c1").is_err());
        assert!(h.resolve(Some(Path::new("/")), "c1").is_err());
    }
}
