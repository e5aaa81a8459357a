//! `<root>/<id>/`: one directory per container holding `state.json` (written atomically: temp + rename),
//! `config.json` (the config the container was created from, for exec/delete/hooks) and the start socket.
//! An flock on the directory serialises commands on one id; `mkdir` makes "two creates, one winner" atomic.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const STATE_FILE: &str = "state.json";
pub const CONFIG_FILE: &str = "config.json";
pub const START_SOCKET: &str = "start.sock";

/// What gruntime remembers about a container between commands.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Saved {
    pub id: String,
    /// Host pid of the container's init; 0 once it is known to be gone.
    pub pid: i32,
    /// Field 22 of /proc/<pid>/stat when the init was made: tells a reused pid from ours.
    pub start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: std::collections::HashMap<String, String>,
    /// `start` has handed the init its go: the user process has been exec'd.
    pub started: bool,
    /// Absolute path of the container's cgroup directory, when it has one.
    #[serde(default)]
    pub cgroup: Option<PathBuf>,
    /// The systemd unit owning that cgroup, when it was made with `--systemd-cgroup`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_unit: Option<crate::cgroups::systemd::Unit>,
}

/// Default state root: `/run/gruntime` for root, `$XDG_RUNTIME_DIR/gruntime` when rootless (rootless.rs).
pub fn default_root() -> Result<PathBuf> {
    if !crate::rootless::is_rootless() {
        return Ok(PathBuf::from("/run/gruntime"));
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => Ok(PathBuf::from(d).join("gruntime")),
        _ => Err(Error::InvalidArgument(
            "XDG_RUNTIME_DIR is not set: give --root for the state directory".into(),
        )),
    }
}

/// runc's rule: an id is non-empty and made of letters, digits, `_ + - .`, and is not `.` or `..`.
pub fn validate_id(id: &str) -> Result<()> {
    let ok_chars = id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
    if id.is_empty() || id == "." || id == ".." || !ok_chars || id.len() > 1024 {
        return Err(Error::InvalidArgument(format!(
            "invalid container id {id:?}: use letters, digits and _+-."
        )));
    }
    Ok(())
}

pub struct StateDir {
    pub path: PathBuf,
    lock: Option<Flock<File>>,
}

impl StateDir {
    fn ensure_root(root: &Path) -> Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|e| Error::io("create state root", root, e))
    }

    /// Make the directory for a new container; fails with "already exists" when another create won.
    pub fn create(root: &Path, id: &str) -> Result<StateDir> {
        validate_id(id)?;
        Self::ensure_root(root)?;
        let path = root.join(id);
        match fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::ContainerExists(id.to_string()))
            }
            Err(e) => return Err(Error::io("create state dir", &path, e)),
        }
        let mut dir = StateDir { path, lock: None };
        dir.lock()?;
        Ok(dir)
    }

    /// Open (and lock) the directory of an existing container.
    pub fn open(root: &Path, id: &str) -> Result<StateDir> {
        validate_id(id)?;
        let path = root.join(id);
        if !path.join(STATE_FILE).exists() {
            return Err(Error::ContainerNotFound(id.to_string()));
        }
        let mut dir = StateDir { path, lock: None };
        dir.lock()?;
        // A concurrent delete may have removed it while we waited for the lock.
        if !dir.path.join(STATE_FILE).exists() {
            return Err(Error::ContainerNotFound(id.to_string()));
        }
        Ok(dir)
    }

    fn lock(&mut self) -> Result<()> {
        let f = File::open(&self.path).map_err(|e| Error::io("open state dir", &self.path, e))?;
        let l = Flock::lock(f, FlockArg::LockExclusive)
            .map_err(|(_, e)| Error::sys(format!("lock {}", self.path.display()), e))?;
        self.lock = Some(l);
        Ok(())
    }

    pub fn load(&self) -> Result<Saved> {
        let p = self.path.join(STATE_FILE);
        let data = fs::read(&p).map_err(|e| Error::io("read state", &p, e))?;
        serde_json::from_slice(&data).map_err(|e| Error::config(&p, format!("corrupt state: {e}")))
    }

    pub fn save(&self, saved: &Saved) -> Result<()> {
        let data = serde_json::to_vec(saved).expect("state serialises");
        write_atomic(&self.path.join(STATE_FILE), &data, 0o600)
    }

    pub fn save_config(&self, raw: &[u8]) -> Result<()> {
        write_atomic(&self.path.join(CONFIG_FILE), raw, 0o600)
    }

    pub fn load_config(&self) -> Result<oci_spec::runtime::Spec> {
        let p = self.path.join(CONFIG_FILE);
        let data = fs::read(&p).map_err(|e| Error::io("read saved config", &p, e))?;
        crate::container::config::parse(&p, &data)
    }

    pub fn start_socket(&self) -> PathBuf {
        self.path.join(START_SOCKET)
    }

    /// Remove the directory and everything in it (the lock goes with it).
    pub fn remove(mut self) -> Result<()> {
        let r = fs::remove_dir_all(&self.path)
            .map_err(|e| Error::io("remove state dir", &self.path, e));
        self.lock = None;
        r
    }
}

/// temp file in the same directory → write → rename (the root is a tmpfs: no fsync): readers see the old or the new file, never half.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    ));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| Error::io("write", &tmp, e))?;
    f.write_all(data).map_err(|e| Error::io("write", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io("rename into place", path, e))
}

/// List container ids under the root (directories holding a state file).
pub fn list_ids(root: &Path) -> Vec<String> {
    let Ok(rd) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut ids: Vec<String> = rd
        .flatten()
        .filter(|e| e.path().join(STATE_FILE).exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_follow_runcs_rule() {
        for ok in ["c1", "a.b_c+d-e", "X"] {
            assert!(validate_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "../x", &"x".repeat(1025)] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }
}
