//! `<root>/<id>/`: one directory per container holding `state.json` (written atomically: temp + rename),
//! `config.json` (the config the container was created from, for exec/delete/hooks) and the start socket.
//! An flock on the directory serialises commands on one id; `mkdir` makes "two creates, one winner" atomic.

use std::fs::{self, File};
use std::io::Write;
use std::os::fd::AsRawFd;
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
    /// `create` has not finished: the record of what it has made so far (the cgroup, the init), so
    /// that a create killed on the way leaves a stopped container that `delete` cleans, never a
    /// cgroup or a process that no command knows of. Another command only ever reads it once the
    /// creator is gone (the creator holds the lock), so it means "abandoned".
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub creating: bool,
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

    /// Make the directory for a new container, holding `first` as its state file; fails with
    /// "already exists" when another create won. The directory is made under a temporary name and
    /// renamed into place with its state file (RENAME_NOREPLACE): a create killed at any moment
    /// leaves either a container that `delete` cleans, or a temporary directory `sweep` removes.
    pub fn create(root: &Path, id: &str, first: &Saved) -> Result<StateDir> {
        validate_id(id)?;
        Self::ensure_root(root)?;
        sweep(root);
        let path = root.join(id);
        if path.exists() {
            return Err(Error::ContainerExists(id.to_string()));
        }
        let tmp = root.join(format!("{NEW}{}.{id}", std::process::id()));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&tmp)
            .map_err(|e| Error::io("create state dir", &tmp, e))?;
        let mut dir = StateDir {
            path: tmp.clone(),
            lock: None,
        };
        let placed = dir.lock().and_then(|()| dir.save(first)).and_then(|()| {
            nix::fcntl::renameat2(
                nix::fcntl::AT_FDCWD,
                &tmp,
                nix::fcntl::AT_FDCWD,
                &path,
                nix::fcntl::RenameFlags::RENAME_NOREPLACE,
            )
            .map_err(|e| match e {
                nix::errno::Errno::EEXIST | nix::errno::Errno::ENOTEMPTY => {
                    Error::ContainerExists(id.to_string())
                }
                e => Error::sys(format!("rename {} into place", path.display()), e),
            })
        });
        if let Err(e) = placed {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        dir.path = path;
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

    /// In a child that shares our fds (the init before its exec): close its copy of the lock's
    /// fd without unlocking (an unlock would end ours too). A copy that stayed open would hold
    /// the lock for as long as the child lives once we are gone: a create SIGKILLed before it
    /// unlocks would leave `start`, `state` and `delete` of the id waiting forever.
    pub fn close_lock_copy(&self) {
        if let Some(l) = &self.lock {
            let _ = nix::unistd::close(l.as_raw_fd());
        }
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

    /// Remove the directory and everything in it (the lock goes with it). It is renamed out of
    /// the way first, so the container is gone at once: a removal cut short leaves a directory
    /// `sweep` removes, never half a container.
    pub fn remove(mut self) -> Result<()> {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let gone = self
            .path
            .with_file_name(format!("{GONE}{}.{name}", std::process::id()));
        let r =
            fs::rename(&self.path, &gone).map_err(|e| Error::io("remove state dir", &self.path, e));
        if r.is_ok() {
            // What is left here is the next sweep's.
            let _ = fs::remove_dir_all(&gone);
        }
        self.lock = None;
        r
    }
}

/// The names of directories in the root that are no container (no id holds a `~`): a create's
/// directory before it is renamed into place, a deleted container's before it is emptied. Each
/// carries the pid of the command that made it.
const NEW: &str = "~new.";
const GONE: &str = "~gone.";

/// Remove what commands killed half-way left in the root: the temporary directories of creates
/// and deletes whose process is gone. Best effort (a failure leaves them to the next sweep).
pub fn sweep(root: &Path) {
    let Ok(rd) = fs::read_dir(root) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(NEW).or_else(|| name.strip_prefix(GONE)) else {
            continue;
        };
        let pid = rest.split('.').next().and_then(|p| p.parse::<u32>().ok());
        let owner_alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if !owner_alive {
            let _ = fs::remove_dir_all(e.path());
        }
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
        .filter(|e| !e.file_name().to_string_lossy().contains('~'))
        .filter(|e| e.path().join(STATE_FILE).exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    ids
}

#[cfg(test)]
pub(crate) mod tests {
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

    /// A fresh record of container `id`, as create writes it first.
    pub(crate) fn record(id: &str) -> Saved {
        Saved {
            id: id.into(),
            pid: 0,
            start_time: 0,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "now".into(),
            owner: String::new(),
            annotations: Default::default(),
            started: false,
            cgroup: None,
            systemd_unit: None,
            creating: true,
        }
    }

    fn entries(root: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(root)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_created_state_dir_holds_its_record_and_no_temporary_dir_is_left() {
        let root = tempfile::tempdir().unwrap();
        let dir = StateDir::create(root.path(), "c1", &record("c1")).unwrap();
        assert_eq!(dir.path, root.path().join("c1"));
        assert!(dir.load().unwrap().creating);
        assert_eq!(entries(root.path()), ["c1"]);
        assert_eq!(list_ids(root.path()), ["c1"]);
    }

    #[test]
    fn a_second_create_of_an_id_is_refused_and_leaves_the_first_as_it_was() {
        let root = tempfile::tempdir().unwrap();
        let _first = StateDir::create(root.path(), "c1", &record("c1")).unwrap();
        let mut other = record("c1");
        other.pid = 42;
        match StateDir::create(root.path(), "c1", &other) {
            Err(Error::ContainerExists(id)) => assert_eq!(id, "c1"),
            r => panic!("expected ContainerExists, got {:?}", r.map(|d| d.path)),
        }
        assert_eq!(entries(root.path()), ["c1"]);
        let saved: Saved =
            serde_json::from_slice(&fs::read(root.path().join("c1/state.json")).unwrap()).unwrap();
        assert_eq!(saved.pid, 0);
    }

    #[test]
    fn a_removed_container_is_gone_at_once_and_its_id_is_free_again() {
        let root = tempfile::tempdir().unwrap();
        let dir = StateDir::create(root.path(), "c1", &record("c1")).unwrap();
        dir.remove().unwrap();
        assert!(entries(root.path()).is_empty());
        StateDir::create(root.path(), "c1", &record("c1")).unwrap();
    }

    #[test]
    fn sweep_removes_the_temporary_dirs_of_dead_commands_and_keeps_those_of_live_ones() {
        let root = tempfile::tempdir().unwrap();
        // Above any pid_max: a command that is surely gone.
        let dead = 999_999_999;
        let live = std::process::id();
        for name in [
            format!("{NEW}{dead}.a"),
            format!("{GONE}{dead}.b"),
            format!("{NEW}{live}.c"),
        ] {
            fs::create_dir_all(root.path().join(name).join("sub")).unwrap();
        }
        fs::create_dir(root.path().join("c1")).unwrap();
        fs::write(root.path().join("c1/state.json"), b"{}").unwrap();
        assert_eq!(list_ids(root.path()), ["c1"]);
        sweep(root.path());
        assert_eq!(
            entries(root.path()),
            ["c1".to_string(), format!("{NEW}{live}.c")]
        );
    }

    #[test]
    fn a_record_written_before_the_creating_field_existed_reads_as_a_finished_create() {
        let mut v = serde_json::to_value(record("c1")).unwrap();
        v.as_object_mut().unwrap().remove("creating");
        let saved: Saved = serde_json::from_value(v).unwrap();
        assert!(!saved.creating);
        // And a finished record does not carry the field.
        let mut done = record("c1");
        done.creating = false;
        assert!(serde_json::to_value(done)
            .unwrap()
            .get("creating")
            .is_none());
    }
}
