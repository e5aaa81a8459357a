//! /proc/self/mountinfo, parsed: where each mount is, its filesystem type and its propagation tags. The
//! cgroup manager finds the cgroup2 mount here, the rootfs code the mount its rootfs lives on.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    pub mount_point: PathBuf,
    pub fstype: String,
    /// The optional fields: `shared:N`, `master:N`, `propagate_from:N`, `unbindable`.
    pub optional: Vec<String>,
}

impl Mount {
    pub fn is_shared(&self) -> bool {
        self.optional.iter().any(|o| o.starts_with("shared:"))
    }
}

/// Every well-formed line of a mountinfo text, in its order (a later mount hides an earlier one).
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mut f = left.split_whitespace();
            let mount_point = f.nth(4)?;
            let optional = f.skip(1).map(String::from).collect();
            Some(Mount {
                mount_point: PathBuf::from(unescape(mount_point)),
                fstype: right.split_whitespace().next()?.to_string(),
                optional,
            })
        })
        .collect()
}

/// The mount `path` lives on: the last mount whose mount point is `path` or one of its ancestors.
pub fn mount_of<'a>(mounts: &'a [Mount], path: &Path) -> Option<&'a Mount> {
    mounts
        .iter()
        .rev()
        .find(|m| path.starts_with(&m.mount_point))
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MI: &str = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
                      30 22 0:26 / /tmp rw,nosuid shared:12 master:3 - tmpfs tmpfs rw\n\
                      31 30 0:27 / /tmp/a\\040b rw - tmpfs tmpfs rw\n\
                      bogus line\n";

    #[test]
    fn lines_give_mount_point_type_and_propagation_tags() {
        let m = parse(MI);
        assert_eq!(m.len(), 3);
        assert_eq!(m[1].mount_point, PathBuf::from("/tmp"));
        assert_eq!(m[1].fstype, "tmpfs");
        assert_eq!(m[1].optional, ["shared:12", "master:3"]);
        assert!(m[1].is_shared() && !m[2].is_shared());
        assert_eq!(m[2].mount_point, PathBuf::from("/tmp/a b"));
    }

    #[test]
    fn a_path_lives_on_its_nearest_mount_not_on_a_sibling_with_the_same_prefix() {
        let m = parse(MI);
        let at = |p: &str| mount_of(&m, Path::new(p)).map(|m| m.mount_point.display().to_string());
        assert_eq!(at("/tmp/a b/rootfs").as_deref(), Some("/tmp/a b"));
        assert_eq!(at("/tmp/ab/rootfs").as_deref(), Some("/tmp"));
        assert_eq!(at("/var/lib").as_deref(), Some("/"));
    }
}
