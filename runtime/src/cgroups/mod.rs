//! The cgroup v2 manager: where a container's cgroup goes, what goes into it, and the freezer/kill/ps
//! operations on it. The lifecycle calls in here at fixed points — create: `prepare` before the init runs
//! user code (the init is cloned straight into the cgroup); pause/resume: `freeze`/`thaw`; kill --all:
//! `kill_all`; delete: `Cgroup::remove`.
//!
//! On a hybrid host (v1 controllers owned by someone else, cgroup2 mounted beside them) the container
//! still gets a cgroup2 directory for membership, freezing and killing; a limit whose controller that
//! hierarchy lacks is an error naming the controller.

mod bpf;
pub mod devices;
mod error;
pub mod hierarchy;
pub mod resources;
pub mod stats;
pub mod systemd;

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use oci_spec::runtime::{LinuxResources, Spec};

pub use error::CgroupError;
use hierarchy::{Hierarchy, DEFAULT_PARENT};
use resources::Plan;

use crate::error::Result;
use crate::log;

/// How long pause/resume and delete wait for the kernel to settle a cgroup.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// A container's cgroup directory, and the systemd unit that owns it under `--systemd-cgroup`.
pub struct Cgroup {
    pub path: PathBuf,
    pub unit: Option<systemd::Unit>,
}

/// The device rules of a spec, or `None` when it has no `linux.resources.devices`.
fn device_rules(spec: &Spec) -> std::result::Result<Option<Vec<devices::Rule>>, CgroupError> {
    let Some(linux) = spec.linux() else {
        return Ok(None);
    };
    let Some(list) = linux
        .resources()
        .as_ref()
        .and_then(|r| r.devices().as_ref())
    else {
        return Ok(None);
    };
    devices::rules(list, linux.devices().as_deref().unwrap_or(&[])).map(Some)
}

fn warn_ignored(plan: &Plan) {
    for (field, why) in &plan.ignored {
        log::warn(&format!("{field}: ignored: {why}"));
    }
}

/// The resources of `spec` as cgroup files and device rules, checked; warns about the ignored ones.
/// Check `linux.resources` as `prepare` does before it makes anything (the values, their
/// translation into cgroup v2 files, the device rules), without a hierarchy.
pub fn check_resources(spec: &Spec) -> Result<()> {
    plan_of(spec).map(|_| ()).map_err(Into::into)
}

fn plan_of(spec: &Spec) -> std::result::Result<(Plan, Option<Vec<devices::Rule>>), CgroupError> {
    let res = spec.linux().as_ref().and_then(|l| l.resources().as_ref());
    let plan = match res {
        Some(r) => resources::plan(r, None)?,
        None => Plan::default(),
    };
    warn_ignored(&plan);
    Ok((plan, device_rules(spec)?))
}

/// `--systemd-cgroup`: decide the scope now (every value checked), start it once the init exists.
pub fn prepare_systemd(spec: &Spec, id: &str) -> Result<systemd::Scope> {
    let (plan, rules) = plan_of(spec)?;
    if let Some(h) = Hierarchy::find() {
        check_controllers(&h, &plan)?;
    } else {
        return Err(CgroupError::NoHierarchy {
            field: "--systemd-cgroup".into(),
        }
        .into());
    }
    Ok(systemd::Scope::plan(spec, id, plan, rules)?)
}

/// Decide the container's cgroup, create it, apply its resources. `None`: no cgroup2 hierarchy to use
/// and nothing asked of one; the container then stays in the caller's cgroups.
///
/// `record` learns the path just before the directory is made: `create` writes it into the
/// container's record then, so a create killed from there on leaves a cgroup `delete` knows of.
pub fn prepare(
    spec: &Spec,
    id: &str,
    record: &mut dyn FnMut(&Path) -> Result<()>,
) -> Result<Option<Cgroup>> {
    let linux = spec.linux().as_ref();
    // Everything is computed and checked before a directory exists: a bad value leaves nothing behind.
    let (plan, rules) = plan_of(spec)?;
    let explicit_path = linux.and_then(|l| l.cgroups_path().as_deref());
    let Some(h) = Hierarchy::find() else {
        if let Some(w) = plan.writes.first() {
            return Err(CgroupError::NoHierarchy {
                field: w.field.clone(),
            }
            .into());
        }
        return Ok(None);
    };
    check_controllers(&h, &plan)?;
    let path = h.resolve(explicit_path, id)?;
    // What this create makes and a failure must take back: `path` and any missing ancestors.
    let topmost_new = topmost_missing(&h.mount, &path);
    let undo = |cg: Option<&Cgroup>| {
        if let Some(cg) = cg {
            let _ = cg.remove();
        }
        if let Some(top) = &topmost_new {
            remove_empty_ancestors(&path, top);
        }
    };
    record(&path)?;
    let cg = match create(&h, &path, &plan) {
        Ok(cg) => cg,
        Err(e) => {
            undo(None);
            return match e {
                // Only the bare membership cgroup is optional: a host that will not let us make one
                // still runs containers that asked for nothing from it.
                e @ CgroupError::Mkdir { .. } if plan.is_empty() && explicit_path.is_none() => {
                    let msg = format!("{e}: the container stays in the caller's cgroup");
                    // Expected for an unprivileged user without a delegated cgroup (as runc, quietly).
                    if crate::rootless::is_rootless() {
                        log::debug(&msg);
                    } else {
                        log::warn(&msg);
                    }
                    Ok(None)
                }
                // Root inside a user namespace that is not the host's (podman's rootless mode) and no
                // delegated cgroup: such clients always send limits (podman: pids.limit), so they are
                // skipped with a warning, as runc and crun do. An unprivileged user calling us directly
                // still gets the error below.
                e @ CgroupError::Mkdir { .. }
                    if crate::rootless::is_rootless() && nix::unistd::geteuid().is_root() =>
                {
                    let field = plan
                        .writes
                        .first()
                        .map(|w| w.field.clone())
                        .unwrap_or_else(|| "linux.cgroupsPath".into());
                    log::warn(&format!("{e}: rootless without a delegated cgroup: {field} and the other limits are not applied"));
                    Ok(None)
                }
                e @ CgroupError::Mkdir { .. } if !plan.is_empty() => {
                    Err(CgroupError::NeedsCgroup {
                        field: plan.writes[0].field.clone(),
                        cause: Box::new(e),
                    }
                    .into())
                }
                e => Err(e.into()),
            };
        }
    };
    if let Err(e) = cg.apply(&plan, rules.as_deref()) {
        undo(Some(&cg));
        return Err(e.into());
    }
    Ok(Some(cg))
}

/// The highest directory on the way from `mount` to `path` that does not exist yet.
fn topmost_missing(mount: &Path, path: &Path) -> Option<PathBuf> {
    let rel = path.strip_prefix(mount).ok()?;
    let mut dir = mount.to_path_buf();
    for comp in rel.components() {
        dir.push(comp);
        if !dir.exists() {
            return Some(dir);
        }
    }
    None
}

/// rmdir the (empty) ancestors of `path` up to and including `top`; stops at the first one in use.
fn remove_empty_ancestors(path: &Path, top: &Path) {
    let _ = std::fs::remove_dir(path);
    let mut dir = path.parent();
    while let Some(d) = dir {
        if !d.starts_with(top) || std::fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

/// Every controller the plan writes to must exist in the hierarchy.
fn check_controllers(h: &Hierarchy, plan: &Plan) -> std::result::Result<(), CgroupError> {
    let available = h.available_controllers();
    for (ctrl, field) in &plan.controllers {
        if !available.contains(ctrl) {
            return Err(CgroupError::ControllerUnavailable {
                field: field.clone(),
                controller: ctrl.clone(),
                root: h.mount.clone(),
                available,
            });
        }
    }
    Ok(())
}

/// Make the cgroup directory and every missing ancestor, enabling the plan's controllers on the way down.
fn create(h: &Hierarchy, path: &Path, plan: &Plan) -> std::result::Result<Cgroup, CgroupError> {
    let wanted: Vec<&str> = plan.controllers.iter().map(|(c, _)| c.as_str()).collect();
    // A concurrent delete may remove the shared default parent between our mkdirs: try again.
    for attempt in 0.. {
        match create_once(h, path, &wanted) {
            Err(CgroupError::Mkdir { source, .. })
                if source.raw_os_error() == Some(libc::ENOENT) && attempt < 5 => {}
            Err(CgroupError::EnableControllers { source, .. })
                if source.raw_os_error() == Some(libc::ENOENT) && attempt < 5 => {}
            r => return r,
        }
    }
    unreachable!()
}

fn create_once(
    h: &Hierarchy,
    path: &Path,
    wanted: &[&str],
) -> std::result::Result<Cgroup, CgroupError> {
    let dir = enable_down_to(h, path, wanted, true)?;
    let procs = procs_of(&dir).len();
    if procs > 0 {
        return Err(CgroupError::NotEmpty { path: dir, procs });
    }
    Ok(Cgroup {
        path: dir,
        unit: None,
    })
}

/// Walk from the hierarchy's root to `path`, enabling controllers in each ancestor's subtree_control
/// (and, with `mkdir`, creating the missing directories). Returns `path`.
///
/// The controllers the limits need are enabled all the way down. Below our own cgroup — directories
/// that are ours — every controller available there is enabled too, as runc does, so `events --stats`
/// sees every counter and a later `update` can add a limit; our own cgroup and those above it are
/// only touched for what is needed.
fn enable_down_to(
    h: &Hierarchy,
    path: &Path,
    wanted: &[&str],
    mkdir: bool,
) -> std::result::Result<PathBuf, CgroupError> {
    let rel = path.strip_prefix(&h.mount).unwrap_or(path);
    let own = h.mount.join(&h.own);
    let mut dir = h.mount.clone();
    for comp in rel.components() {
        let ours = dir != own && dir.starts_with(&own);
        enable_controllers(&dir, wanted, ours)?;
        dir.push(comp);
        if !mkdir {
            continue;
        }
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(CgroupError::Mkdir { path: dir, source }),
        }
    }
    Ok(dir)
}

fn words(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// `+ctrl` into `dir/cgroup.subtree_control` for each controller not already enabled there: the wanted
/// ones, or (with `all`) every one `dir` has, falling back to the wanted ones if that is refused.
fn enable_controllers(
    dir: &Path,
    wanted: &[&str],
    all: bool,
) -> std::result::Result<(), CgroupError> {
    let file = dir.join("cgroup.subtree_control");
    let enabled = words(&file);
    let missing = |list: Vec<String>| -> Vec<String> {
        list.into_iter()
            .filter(|c| !enabled.contains(c))
            .map(|c| format!("+{c}"))
            .collect()
    };
    if all {
        let every = missing(words(&dir.join("cgroup.controllers")));
        if every.is_empty() || std::fs::write(&file, every.join(" ")).is_ok() {
            let now = words(&file);
            if wanted.iter().all(|w| now.iter().any(|n| n == w)) {
                return Ok(());
            }
        }
    }
    let need = missing(wanted.iter().map(|w| w.to_string()).collect());
    if need.is_empty() {
        return Ok(());
    }
    let line = need.join(" ");
    std::fs::write(&file, &line).map_err(|source| CgroupError::EnableControllers {
        path: file,
        controllers: line,
        source,
    })
}

impl Cgroup {
    /// Write the plan's values and install the device filter.
    pub(super) fn apply(
        &self,
        plan: &Plan,
        rules: Option<&[devices::Rule]>,
    ) -> std::result::Result<(), CgroupError> {
        for w in &plan.writes {
            write_value(&self.path, w)?;
        }
        if let Some(rules) = rules {
            let dir = self.open_dir()?;
            devices::apply(dir.as_fd(), rules)?;
        }
        Ok(())
    }

    /// Apply new resources to a live container (`update`): controllers are enabled as needed first.
    pub fn update(
        &self,
        r: &LinuxResources,
        nodes: &[oci_spec::runtime::LinuxDevice],
    ) -> Result<()> {
        let current = read_memory_max(&self.path);
        let plan = resources::plan(r, current)?;
        warn_ignored(&plan);
        let rules = match r.devices() {
            Some(list) => Some(devices::rules(list, nodes)?),
            None => None,
        };
        if let Some(h) = Hierarchy::find() {
            check_controllers(&h, &plan)?;
            // systemd owns the slices above a scope and has delegated every controller to it.
            if self.unit.is_none() {
                let wanted: Vec<&str> = plan.controllers.iter().map(|(c, _)| c.as_str()).collect();
                enable_down_to(&h, &self.path, &wanted, false)?;
            }
        }
        if let Some(unit) = &self.unit {
            systemd::set(unit, &plan, rules.as_deref())?;
        }
        self.apply(&plan, rules.as_deref()).map_err(Into::into)
    }

    /// Move `pid` into this cgroup (used when clone3's CLONE_INTO_CGROUP was not available).
    pub fn add(&self, pid: i32) -> Result<()> {
        let file = self.path.join("cgroup.procs");
        std::fs::write(&file, pid.to_string()).map_err(|source| {
            CgroupError::Write {
                field: "cgroup membership".into(),
                file,
                value: pid.to_string(),
                source,
            }
            .into()
        })
    }

    fn open_dir(&self) -> std::result::Result<OwnedFd, CgroupError> {
        nix::fcntl::open(
            &self.path,
            nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| CgroupError::Open {
            path: self.path.clone(),
            source: e.into(),
        })
    }

    /// An fd of the cgroup directory for clone3's CLONE_INTO_CGROUP.
    pub fn open_fd(&self) -> Option<OwnedFd> {
        nix::fcntl::open(
            &self.path,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ok()
    }

    /// Remove the cgroup (and any cgroups the container made inside it) once its processes are gone;
    /// then the shared default parent, if this was its last child.
    pub fn remove(&self) -> Result<()> {
        if let Some(unit) = &self.unit {
            // systemd removes the scope's cgroup with the unit; what a nested runtime left is ours.
            systemd::stop(unit)?;
            return remove_tree(&self.path).map_err(Into::into);
        }
        if !self.path.exists() {
            return Ok(());
        }
        remove_tree(&self.path)?;
        if let Some(parent) = self.path.parent() {
            if parent.file_name().is_some_and(|n| n == DEFAULT_PARENT) {
                // Fails harmlessly while other containers live there.
                let _ = std::fs::remove_dir(parent);
            }
        }
        Ok(())
    }
}

/// rmdir children first; a cgroup whose last processes are still exiting is busy for a moment.
fn remove_tree(dir: &Path) -> std::result::Result<(), CgroupError> {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path())?;
            }
        }
    }
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            // Busy while its processes are dying (killed, exiting, unreaped zombies still pin a
            // cgroup): wait. Busy with a process nobody is killing: not ours to wait for, fail now.
            Err(e)
                if e.raw_os_error() == Some(libc::EBUSY)
                    && procs_of(dir).into_iter().all(dying)
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(source) => {
                return Err(CgroupError::Rmdir {
                    path: dir.to_path_buf(),
                    source,
                })
            }
        }
    }
}

fn write_value(dir: &Path, w: &resources::Write) -> std::result::Result<(), CgroupError> {
    let (file, value) = match &w.fallback {
        Some((f, v)) if !dir.join(&w.file).exists() => (dir.join(f), v.as_str()),
        _ => (dir.join(&w.file), w.value.as_str()),
    };
    // O_WRONLY without O_CREAT: a missing file means a missing controller, never a new plain file.
    let r = std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .and_then(|mut f| std::io::Write::write_all(&mut f, value.as_bytes()));
    r.map_err(|source| CgroupError::Write {
        field: w.field.clone(),
        file,
        value: value.to_string(),
        source,
    })
}

/// memory.max as a number (-1 for "max"), if the cgroup has one.
fn read_memory_max(dir: &Path) -> Option<i64> {
    let s = std::fs::read_to_string(dir.join("memory.max")).ok()?;
    match s.trim() {
        "max" => Some(-1),
        v => v.parse().ok(),
    }
}

/// Is `pid` on its way out: gone, a zombie, exiting, or with a SIGKILL pending? A process that has taken
/// its SIGKILL off the queue but not finished exiting shows none of the others: PF_EXITING (in the flags of
/// /proc/PID/stat) covers that window, which is wide on a loaded machine.
fn dying(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    if stat_says_dying(&stat) {
        return true;
    }
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return true;
    };
    const SIGKILL_BIT: u64 = 1 << (libc::SIGKILL - 1);
    status.lines().any(|l| {
        let pending = l
            .strip_prefix("ShdPnd:")
            .or_else(|| l.strip_prefix("SigPnd:"));
        pending
            .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            .is_some_and(|m| m & SIGKILL_BIT != 0)
    })
}

/// `/proc/PID/stat`: the state (field 3) is a zombie or dead, or the flags (field 9) have PF_EXITING.
fn stat_says_dying(stat: &str) -> bool {
    const PF_EXITING: u64 = 0x4;
    // The command name (field 2) may hold spaces and parentheses: fields are counted after its last ')'.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return false;
    };
    let mut f = rest.split_whitespace();
    let state = f.next().unwrap_or("");
    let flags = f.nth(5).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    state == "Z" || state == "X" || flags & PF_EXITING != 0
}

/// Pids listed in `dir/cgroup.procs`.
fn procs_of(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Every process in the cgroup and the cgroups below it.
pub fn pids(cgroup: &Path) -> Vec<i32> {
    let mut out = procs_of(cgroup);
    if let Ok(rd) = std::fs::read_dir(cgroup) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(pids(&e.path()));
            }
        }
    }
    out
}

/// Has `pause` asked for this cgroup to be frozen?
pub fn is_frozen(cgroup: &Path) -> bool {
    std::fs::read_to_string(cgroup.join("cgroup.freeze"))
        .map(|s| s.trim() == "1")
        .unwrap_or(false)
}

/// Set cgroup.freeze and wait until `cgroup.events` says the whole subtree reached that state.
fn set_frozen(cgroup: &Path, frozen: bool) -> std::result::Result<(), CgroupError> {
    let file = cgroup.join("cgroup.freeze");
    let value = if frozen { "1" } else { "0" };
    std::fs::write(&file, value).map_err(|source| CgroupError::Write {
        field: if frozen { "pause" } else { "resume" }.into(),
        file,
        value: value.into(),
        source,
    })?;
    let events = cgroup.join("cgroup.events");
    let want = format!("frozen {value}");
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let s = std::fs::read_to_string(&events).map_err(|source| CgroupError::Read {
            path: events.clone(),
            source,
        })?;
        if s.lines().any(|l| l.trim() == want) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(CgroupError::FreezeTimeout {
                path: cgroup.to_path_buf(),
                frozen,
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn freeze(cgroup: &Path) -> Result<()> {
    set_frozen(cgroup, true).map_err(Into::into)
}

pub fn thaw(cgroup: &Path) -> Result<()> {
    set_frozen(cgroup, false).map_err(Into::into)
}

/// Signal every process of the cgroup. SIGKILL goes through cgroup.kill (no pid races, reaches frozen
/// processes); other signals are sent with the cgroup frozen so a forking process cannot slip through.
pub fn kill_all(cgroup: &Path, sig: Signal) -> Result<()> {
    if sig == Signal::SIGKILL {
        let file = cgroup.join("cgroup.kill");
        if file.exists() {
            return std::fs::write(&file, "1").map_err(|source| {
                CgroupError::Write {
                    field: "kill --all".into(),
                    file,
                    value: "1".into(),
                    source,
                }
                .into()
            });
        }
    }
    let was_frozen = is_frozen(cgroup);
    let froze =
        !was_frozen && cgroup.join("cgroup.freeze").exists() && set_frozen(cgroup, true).is_ok();
    for pid in pids(cgroup) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
    }
    if froze {
        set_frozen(cgroup, false)?;
    }
    Ok(())
}

/// For `gruntime features`: only what works on this host.
pub fn features() -> serde_json::Value {
    let v2 = Hierarchy::find().is_some();
    // The systemd driver is always built in; whether a manager answers is a matter of the host at create.
    serde_json::json!({ "v1": false, "v2": v2, "systemd": true, "systemdUser": true, "rdma": v2 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_dying_when_a_zombie_or_exiting_whatever_its_name() {
        // pid (comm) state ppid pgrp session tty_nr tpgid flags ...
        assert!(!stat_says_dying("42 (sleep) S 1 42 42 0 -1 4194304 100 0"));
        assert!(stat_says_dying("42 (sleep) Z 1 42 42 0 -1 4194308 100 0"));
        assert!(stat_says_dying("42 (a) b) R 1 42 42 0 -1 4194308 100 0"));
        assert!(!stat_says_dying("42 (a) Z b) S 1 42 42 0 -1 4194304 100 0"));
    }
}
