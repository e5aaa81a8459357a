//! `restore`: a new container from a bundle and CRIU's images, the way runc restores one. The state dir
//! and the cgroup (limits applied; a systemd scope under `--systemd-cgroup`) are made first; `criu swrk`
//! is put into that cgroup, which CRIU is given as its cgroup root, so the restored tasks land there under
//! any id. CRIU rebuilds the container's own mount namespace on a bind of the rootfs; the mount points it
//! needs are made in the rootfs first, with the bind mounts of the config temporarily in place so points
//! inside them can be made too (runc's order). Those mounts are made in a private mount namespace of this
//! command, so they vanish with it whatever happens.
//!
//! Notifications: "setup-namespaces" runs the prestart and createRuntime hooks with the restored pid,
//! "orphan-pts-master" hands the pty master of a terminal container to `--console-socket`, "post-restore"
//! gives the restored init's pid. Any failure removes the state dir and the cgroup and kills what CRIU
//! may have restored: a failed restore leaves nothing behind.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::unistd::Pid;
use oci_spec::runtime::LinuxNamespaceType;
use rust_criu::rust_criu_protobuf::rpc::{Cgroup_root, Criu_req_type, Ext_mount_map, Inherit_fd};

use crate::cgroups::{self, Cgroup};
use crate::container::config::{self, Bundle};
use crate::container::state::{write_atomic, Saved, StateDir};
use crate::container::{proc_start_time, Container};
use crate::criu::{descriptors, failure, mounts, namespaces, open_dir, rpc, Opts};
use crate::error::{Error, Result};
use crate::log;
use crate::rootfs::resolve::{fd_path, mkdir_in_root};

pub struct RestoreOpts<'a> {
    pub root: &'a Path,
    pub id: &'a str,
    pub bundle: &'a Path,
    pub console_socket: Option<&'a Path>,
    pub pid_file: Option<&'a Path>,
    pub systemd_cgroup: bool,
    pub criu: Opts,
}

/// What a failing restore must undo, in reverse order.
struct Made {
    dir: Option<StateDir>,
    cgroup: Option<Cgroup>,
    restored: Option<i32>,
}

impl Drop for Made {
    fn drop(&mut self) {
        if let Some(pid) = self.restored.take() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
        }
        if let Some(cg) = self.cgroup.take() {
            let _ = cgroups::kill_all(&cg.path, Signal::SIGKILL);
            let _ = cg.remove();
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.remove();
        }
    }
}

pub fn restore(o: &RestoreOpts) -> Result<Container> {
    if crate::rootless::is_rootless() {
        return Err(Error::Unsupported(
            "restore of a rootless container (CRIU needs root)".into(),
        ));
    }
    let criu = crate::criu::locate(&o.criu.criu)?;
    // Everything that can be checked is, before anything exists on the host.
    let bundle = config::load(o.bundle)?;
    let spec = &bundle.spec;
    let inherit_pipes = descriptors::inherit(&o.criu.image_path)?;
    // The mounts made below are this command's own: a private mount namespace takes them away with it.
    // Before any directory is opened: CRIU mounts in its work directory, which must be of this namespace.
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| Error::sys("unshare the mount namespace", e))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| Error::sys("make / rslave", e))?;
    let images = open_dir(&o.criu.image_path, false, "image directory")?;
    let work = match &o.criu.work_path {
        Some(p) => Some(open_dir(p, true, "work directory")?),
        None => None,
    };
    let ns_fds = namespaces::for_restore(spec)?;
    let scope = if o.systemd_cgroup {
        Some(cgroups::prepare_systemd(spec, o.id)?)
    } else {
        None
    };
    // The record is kept up to date with what is made (the cgroup) while `creating`, as create
    // keeps it: a restore killed at any point leaves a stopped container that `delete` cleans.
    let mut saved = Saved {
        id: o.id.to_string(),
        pid: 0,
        start_time: 0,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: log::now_rfc3339(),
        owner: String::new(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        started: true,
        cgroup: None,
        systemd_unit: None,
        creating: true,
    };
    let mut made = Made {
        dir: Some(StateDir::create(o.root, o.id, &saved)?),
        cgroup: None,
        restored: None,
    };
    if scope.is_none() {
        let dir = made.dir.as_ref().expect("state dir");
        made.cgroup = cgroups::prepare(spec, o.id, &mut |path| {
            saved.cgroup = Some(path.to_path_buf());
            dir.save(&saved)
        })?;
    }
    let dir_path = made.dir.as_ref().expect("state dir").path.clone();
    let root = RestoreRoot::prepare(&dir_path, &bundle)?;

    let log_file = "restore.log";
    let mut opts = o.criu.base(log_file);
    opts.set_images_dir_fd(images.as_raw_fd());
    if let Some(w) = &work {
        opts.set_work_dir_fd(w.as_raw_fd());
    }
    // The restored tree becomes our child (not criu's), as with runc: a foreground restore waits for it.
    opts.set_rst_sibling(true);
    opts.set_evasive_devices(true);
    opts.set_root(root.criu_root.to_string_lossy().into_owned());
    opts.ext_mnt = mounts::for_restore(spec, &bundle.dir)
        .into_iter()
        .map(|(key, val)| {
            let mut m = Ext_mount_map::new();
            m.set_key(key);
            m.set_val(val);
            m
        })
        .collect();
    opts.inherit_fd = inherit_pipes;
    let mut pass = vec![images.as_fd()];
    if let Some(w) = &work {
        pass.push(w.as_fd());
    }
    for (key, fd) in &ns_fds {
        let mut f = Inherit_fd::new();
        f.set_key(key.clone());
        f.set_fd(fd.as_raw_fd());
        opts.inherit_fd.push(f);
        pass.push(fd.as_fd());
    }

    let call = rpc::Call {
        kind: Criu_req_type::RESTORE,
        opts,
        pass,
        inherit_stdio: true,
    };
    let mut notified_pid = None;
    let cgroup_slot = &mut made.cgroup;
    let started = |criu_pid: u32, opts: &mut rust_criu::rust_criu_protobuf::rpc::Criu_opts| {
        if let Some(scope) = &scope {
            *cgroup_slot = Some(scope.start(criu_pid as i32)?);
        } else if let Some(cg) = cgroup_slot.as_ref() {
            cg.add(criu_pid as i32)?;
        }
        if cgroup_slot.is_some() {
            // Named as CRIU itself sees it (its cgroup namespace), as runc reads it.
            if let Some(path) = own_cgroup(criu_pid) {
                let mut r = Cgroup_root::new();
                r.set_path(path);
                opts.cg_root.push(r);
            }
        }
        Ok(())
    };
    let saved_for_hooks = saved.clone();
    // A network namespace of its own (not joined by path), which CRIU recreates empty.
    let new_netns = crate::namespaces::is_new(spec, LinuxNamespaceType::Network);
    let mut on_notify = |script: &str,
                         n: &rust_criu::rust_criu_protobuf::rpc::Criu_notify,
                         fd: Option<OwnedFd>|
     -> Result<()> {
        match script {
            "setup-namespaces" => {
                if new_netns {
                    crate::namespaces::netdev::loopback_up(n.pid())?;
                }
                crate::container::run_create_hooks(spec, &saved_for_hooks, n.pid())
            }
            "post-restore" => {
                notified_pid = Some(n.pid());
                Ok(())
            }
            "orphan-pts-master" => send_console(o.console_socket, fd),
            _ => Ok(()),
        }
    };
    let result = rpc::call(&criu, call, started, &mut on_notify);
    let resp = match result {
        Ok(r) => r,
        Err(e) => {
            drop(root);
            return Err(failure(
                e,
                "restore: criu restore failed",
                &criu,
                o.criu.log_path(log_file),
            ));
        }
    };
    let pid = match resp.restore.as_ref().map(|r| r.pid()) {
        Some(p) if p > 0 => p,
        _ => notified_pid.unwrap_or(0),
    };
    if pid <= 0 {
        return Err(Error::Criu {
            what: "restore: criu did not report the restored pid".into(),
            log: Some(o.criu.log_path(log_file)),
        });
    }
    made.restored = Some(pid);
    drop(root);
    saved.pid = pid;
    saved.start_time = proc_start_time(pid).map(|(t, _)| t).unwrap_or(0);
    saved.cgroup = made.cgroup.as_ref().map(|c| c.path.clone());
    saved.systemd_unit = made.cgroup.as_ref().and_then(|c| c.unit.clone());
    saved.creating = false;
    let dir = made.dir.as_ref().expect("state dir");
    dir.save_config(&bundle.raw)?;
    dir.save(&saved)?;
    if let Some(p) = o.pid_file {
        let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        write_atomic(&abs, pid.to_string().as_bytes(), 0o644)?;
    }
    made.restored = None;
    made.cgroup = None;
    let dir = made.dir.take().expect("state dir");
    Ok(Container { dir, saved })
}

/// The cgroup v2 path of `pid` as /proc shows it (`0::/path`).
fn own_cgroup(pid: u32) -> Option<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string)
}

/// The restored terminal's master goes where a created container's would: to `--console-socket`.
fn send_console(socket: Option<&Path>, fd: Option<OwnedFd>) -> Result<()> {
    let Some(fd) = fd else {
        return Ok(());
    };
    let Some(path) = socket else {
        log::warn("restore: the container has a terminal but no --console-socket was given: its pty master is closed");
        return Ok(());
    };
    let s =
        UnixStream::connect(path).map_err(|e| Error::io("connect to console socket", path, e))?;
    crate::spawn::console::send_fd(s.as_fd(), "orphan-pts-master", fd.as_fd())
        .map_err(|e| Error::sys("send the pty master to the console socket", e))
}

/// `<state dir>/criu-root`: a recursive bind of the rootfs for CRIU's root, plus the mount points and
/// temporary binds it needs; all unmounted when dropped (and private to this command in any case).
struct RestoreRoot {
    criu_root: PathBuf,
    mounted: Vec<PathBuf>,
    /// Kept open: the temporary binds were made through these fds' /proc paths, and are unmounted by them.
    bind_targets: Vec<OwnedFd>,
}

impl RestoreRoot {
    fn prepare(state_dir: &Path, bundle: &Bundle) -> Result<RestoreRoot> {
        let criu_root = state_dir.join("criu-root");
        std::fs::create_dir(&criu_root)
            .map_err(|e| Error::io("create the restore root", &criu_root, e))?;
        let mut r = RestoreRoot {
            criu_root: criu_root.clone(),
            mounted: Vec::new(),
            bind_targets: Vec::new(),
        };
        mount(
            Some(&bundle.rootfs),
            &criu_root,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| {
            Error::sys(
                format!("bind the rootfs {} for criu", bundle.rootfs.display()),
                e,
            )
        })?;
        r.mounted.push(criu_root);
        let rootfs = open(
            &bundle.rootfs,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::sys(format!("open the rootfs {}", bundle.rootfs.display()), e))?;
        for m in mounts::needing_mountpoints(&bundle.spec) {
            let bind = mounts::is_bind(m);
            let source = mounts::source_of(m, &bundle.dir);
            let file = bind && std::fs::metadata(&source).is_ok_and(|md| !md.is_dir());
            let dest = m.destination();
            let target =
                mkdir_in_root(rootfs.as_raw_fd(), dest, file).map_err(|e| Error::Init {
                    step: format!("restore: mount point {}: {}", dest.display(), e.step),
                    errno: e.errno,
                })?;
            if bind {
                mount(
                    Some(&source),
                    &fd_path(&target),
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(|e| {
                    Error::sys(
                        format!(
                            "restore: bind {} on {} in the rootfs",
                            source.display(),
                            dest.display()
                        ),
                        e,
                    )
                })?;
                // Reopen: the fd above names the directory under the new bind.
                let over = open(
                    &bundle.rootfs.join(crate::rootfs::resolve::inside(dest)),
                    OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
                    Mode::empty(),
                )
                .unwrap_or(target);
                r.bind_targets.push(over);
            }
        }
        Ok(r)
    }
}

impl Drop for RestoreRoot {
    fn drop(&mut self) {
        for fd in self.bind_targets.drain(..).rev() {
            let _ = umount2(&fd_path(&fd), MntFlags::MNT_DETACH);
        }
        for p in self.mounted.drain(..).rev() {
            let _ = umount2(&p, MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir(&self.criu_root);
    }
}
