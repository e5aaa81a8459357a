//! Path resolution that cannot leave the rootfs, whatever a layer says.
//!
//! Entry paths are cleaned first (absolute paths and `..` are refused outright), then every
//! lookup goes through `openat2(RESOLVE_BENEATH)` relative to an fd of the rootfs: the kernel
//! follows symlinks planted by earlier entries only while they stay below the rootfs, and fails
//! with EXDEV when one would lead out, which we report as an escape. Only the parent directory is
//! resolved this way; the last component is always created/removed with `*at` calls that do not
//! follow it.
use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use super::error::Escape;

/// An entry path split into clean components (no `.`, no empties, no `..`, not absolute).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CleanPath(pub Vec<Vec<u8>>);

impl CleanPath {
    /// Clean a raw tar path. `./a//b/` → `a/b`; `/a` and `a/../b` are escapes.
    pub fn parse(raw: &[u8]) -> Result<CleanPath, Escape> {
        if raw.first() == Some(&b'/') {
            return Err(Escape::AbsolutePath);
        }
        let mut parts = Vec::new();
        for c in raw.split(|b| *b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => return Err(Escape::DotDot),
                _ => parts.push(c.to_vec()),
            }
        }
        Ok(CleanPath(parts))
    }

    /// The parent's components and the last name; None for the root itself.
    pub fn split_last(&self) -> Option<(&[Vec<u8>], &[u8])> {
        self.0
            .split_last()
            .map(|(last, parent)| (parent, last.as_slice()))
    }

    pub fn join(&self, name: &[u8]) -> CleanPath {
        let mut v = self.0.clone();
        v.push(name.to_vec());
        CleanPath(v)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        join_components(&self.0)
    }
}

pub fn join_components(parts: &[Vec<u8>]) -> Vec<u8> {
    if parts.is_empty() {
        return b".".to_vec();
    }
    parts.join(&b'/')
}

pub fn cstr(name: &[u8]) -> CString {
    // Tar names cannot contain NUL (the header field is NUL-terminated), so this never fails for
    // names that came from a tar entry; a NUL would make the name a different file anyway.
    CString::new(name).unwrap_or_else(|_| CString::new("\u{fffd}").expect("static"))
}

pub fn os(name: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(name))
}

fn beneath(flags: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .mode(Mode::empty())
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

/// Why a directory could not be opened below the root.
#[derive(Debug)]
pub enum OpenDirError {
    Escape(Escape),
    Missing,
    NotDir,
    Io(std::io::Error),
}

/// Open the directory at `parts` below `root` (symlinks followed while they stay below root).
pub fn open_dir_beneath(root: BorrowedFd<'_>, parts: &[Vec<u8>]) -> Result<OwnedFd, OpenDirError> {
    open_dir_beneath_with(root, parts, OFlag::O_PATH)
}

/// As `open_dir_beneath`, opened with `flags` (e.g. O_RDONLY to change its mode or times).
pub fn open_dir_beneath_with(
    root: BorrowedFd<'_>,
    parts: &[Vec<u8>],
    flags: OFlag,
) -> Result<OwnedFd, OpenDirError> {
    let path = join_components(parts);
    match openat2(root, os(&path), beneath(flags | OFlag::O_DIRECTORY)) {
        Ok(fd) => Ok(fd),
        Err(Errno::EXDEV) | Err(Errno::ELOOP) => Err(OpenDirError::Escape(Escape::ThroughSymlink)),
        Err(Errno::ENOENT) => Err(OpenDirError::Missing),
        Err(Errno::ENOTDIR) => Err(OpenDirError::NotDir),
        Err(e) => Err(OpenDirError::Io(e.into())),
    }
}

/// Open the directory at `parts` below `root`, creating missing components (mode 0755, as
/// docker/umoci do for directories a layer implies but does not list).
pub fn mkdir_all_beneath(
    root: BorrowedFd<'_>,
    parts: &[Vec<u8>],
    mode: u32,
) -> Result<OwnedFd, OpenDirError> {
    match open_dir_beneath(root, parts) {
        Err(OpenDirError::Missing) => {}
        other => return other,
    }
    // Walk prefix by prefix, each resolved from the root, so that a symlink anywhere on the way
    // is judged against the rootfs and not against the directory it sits in.
    let mut parent = root_dup(root)?;
    for i in 0..parts.len() {
        let dir = match open_dir_beneath(root, &parts[..=i]) {
            Ok(fd) => fd,
            Err(OpenDirError::Missing) => {
                match nix::sys::stat::mkdirat(
                    parent.as_fd(),
                    os(&parts[i]),
                    Mode::from_bits_truncate(mode),
                ) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(OpenDirError::Io(e.into())),
                }
                open_dir_beneath(root, &parts[..=i])?
            }
            Err(e) => return Err(e),
        };
        parent = dir;
    }
    Ok(parent)
}

fn root_dup(root: BorrowedFd<'_>) -> Result<OwnedFd, OpenDirError> {
    root.try_clone_to_owned().map_err(OpenDirError::Io)
}

/// Open a directory path on the host as the rootfs anchor.
pub fn open_root(path: &Path) -> std::io::Result<OwnedFd> {
    nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(Into::into)
}

/// Open a file below root for reading, resolving symlinks as the container would see them
/// (RESOLVE_IN_ROOT: absolute links and `..` are taken relative to the rootfs, never the host).
pub fn open_file_in_root(root: BorrowedFd<'_>, path: &str) -> std::io::Result<std::fs::File> {
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = openat2(root, Path::new(path.trim_start_matches('/')), how)?;
    Ok(std::fs::File::from(fd))
}

/// Create directory `path` (absolute in container terms) below root. Each prefix is resolved
/// with RESOLVE_IN_ROOT, so symlinks on the way are followed as the container would see them.
pub fn mkdir_all_in_root(root: BorrowedFd<'_>, path: &str) -> std::io::Result<()> {
    let in_root = || {
        OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
    };
    let comps: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    let mut parent = root.try_clone_to_owned()?;
    for i in 0..comps.len() {
        if comps[i] == ".." {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "path has a \"..\" component",
            ));
        }
        let prefix = comps[..=i].join("/");
        parent = match openat2(root, prefix.as_str(), in_root()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                match nix::sys::stat::mkdirat(
                    parent.as_fd(),
                    comps[i],
                    Mode::from_bits_truncate(0o755),
                ) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                openat2(root, prefix.as_str(), in_root())?
            }
            Err(e) => return Err(e.into()),
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        assert_eq!(
            CleanPath::parse(b"./a//b/").unwrap().0,
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        assert!(CleanPath::parse(b"./").unwrap().0.is_empty());
        assert_eq!(CleanPath::parse(b"/etc/passwd"), Err(Escape::AbsolutePath));
        assert_eq!(CleanPath::parse(b"a/../../b"), Err(Escape::DotDot));
        assert_eq!(CleanPath::parse(b"a/..b").unwrap().0.len(), 2);
    }

    #[test]
    fn symlink_out_is_escape_but_inside_is_followed() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
        std::os::unix::fs::symlink("../..", root.join("up")).unwrap();
        std::os::unix::fs::symlink("/", root.join("abs")).unwrap();
        let fd = open_root(&root).unwrap();
        assert!(open_dir_beneath(fd.as_fd(), &[b"lib".to_vec()]).is_ok());
        for bad in ["up", "abs"] {
            assert!(matches!(
                open_dir_beneath(fd.as_fd(), &[bad.as_bytes().to_vec()]),
                Err(OpenDirError::Escape(Escape::ThroughSymlink))
            ));
            assert!(matches!(
                mkdir_all_beneath(fd.as_fd(), &[bad.as_bytes().to_vec(), b"x".to_vec()], 0o755),
                Err(OpenDirError::Escape(Escape::ThroughSymlink))
            ));
        }
        assert!(!t.path().join("x").exists());
        mkdir_all_beneath(fd.as_fd(), &[b"lib".to_vec(), b"new".to_vec()], 0o755).unwrap();
        assert!(root.join("usr/lib/new").is_dir());
    }

    #[test]
    fn the_rootfs_itself_has_no_parent_and_is_written_as_dot() {
        let root = CleanPath::parse(b"./").unwrap();
        assert!(root.split_last().is_none());
        assert_eq!(root.to_bytes(), b".".to_vec());
        let p = CleanPath::parse(b"usr/lib/x").unwrap();
        let (parent, name) = p.split_last().unwrap();
        assert_eq!(
            (join_components(parent), name),
            (b"usr/lib".to_vec(), &b"x"[..])
        );
        assert_eq!(root.join(b"etc").to_bytes(), b"etc".to_vec());
    }
}
