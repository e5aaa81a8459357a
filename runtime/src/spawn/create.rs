//! The parent side of `create`: validate, make the state dir, clone the init with every new namespace at
//! once, write its id maps, place it in its cgroup, answer its hook request, wait for Ready, record the state.
//! Anything that fails on the way removes what was made (state dir, cgroup, the half-made init).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::cgroups::{self, Cgroup};
use crate::container::config::{self, Bundle};
use crate::container::state::{write_atomic, Saved, StateDir};
use crate::container::{oci_state_json, proc_start_time, Container, Status};
use crate::error::{Error, Result};
use crate::process::caps;
use crate::seccomp::{self, SeccompProgram};
use crate::spawn::console::Console;
use crate::spawn::init::{self, InitArgs};
use crate::spawn::sync::{self, Msg};
use crate::{log, namespaces};

pub struct CreateOpts<'a> {
    pub root: &'a Path,
    pub id: &'a str,
    pub bundle: &'a Path,
    pub pid_file: Option<&'a Path>,
    pub console: Console,
    pub no_pivot: bool,
    pub preserve_fds: i32,
    /// Make the cgroup a systemd scope (`--systemd-cgroup`) instead of a cgroupfs directory.
    pub systemd_cgroup: bool,
}

pub struct Created {
    pub container: Container,
    /// Our end of the `Receive` console socket: the pty master arrives on it.
    pub console_master: Option<OwnedFd>,
}

pub fn create(opts: CreateOpts) -> Result<Created> {
    let bundle = config::load(opts.bundle)?;
    let spec = &bundle.spec;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    if terminal && matches!(opts.console, Console::None) {
        return Err(Error::InvalidArgument(
            "process.terminal is true: --console-socket is required when the runtime detaches"
                .into(),
        ));
    }
    if let Some(lc) = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
    {
        for name in caps::unknown_to_kernel(lc) {
            log::warn(&format!(
                "process.capabilities: {name} is not known to this kernel: dropped"
            ));
        }
    }
    // Compile before anything exists on the host: a bad profile leaves nothing behind.
    let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Some(
            seccomp::compile(s).map_err(|e| Error::config(&bundle.config_path, e.to_string()))?,
        ),
        None => None,
    };
    let listener = listener_of(spec);
    // The record is kept up to date with everything made (the cgroup, the init) while `creating`:
    // a create killed at any point leaves a stopped container that `delete` cleans.
    let mut saved = Saved {
        id: opts.id.to_string(),
        pid: 0,
        start_time: 0,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: log::now_rfc3339(),
        owner: String::new(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        started: false,
        cgroup: None,
        systemd_unit: None,
        creating: true,
    };
    let dir = StateDir::create(opts.root, opts.id, &saved)?;
    let mut made = Made {
        dir: Some(dir),
        cgroup: None,
        child: None,
    };
    match create_in(
        &opts,
        &bundle,
        seccomp.as_ref(),
        listener.clone(),
        &mut made,
        &mut saved,
    ) {
        Ok(console_master) => {
            let dir = made.dir.take().expect("state dir");
            made.child = None;
            // The container owns its cgroup now: the undo list must not remove it.
            made.cgroup = None;
            Ok(Created {
                container: Container { dir, saved },
                console_master,
            })
        }
        Err(e) => Err(e), // `made` is dropped here and undoes everything
    }
}

/// What a failing create must undo, in reverse order.
struct Made {
    dir: Option<StateDir>,
    cgroup: Option<Cgroup>,
    child: Option<Pid>,
}

impl Drop for Made {
    fn drop(&mut self) {
        if let Some(pid) = self.child.take() {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
        if let Some(cg) = self.cgroup.take() {
            let _ = cg.remove();
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.remove();
        }
    }
}

fn create_in(
    opts: &CreateOpts,
    bundle: &Bundle,
    seccomp: Option<&SeccompProgram>,
    listener: Option<(PathBuf, Option<String>)>,
    made: &mut Made,
    saved: &mut Saved,
) -> Result<Option<OwnedFd>> {
    let spec = &bundle.spec;
    let dir_path = made.dir.as_ref().expect("state dir").path.clone();
    let plan = namespaces::plan(spec);
    let mut join = namespaces::open_all(&plan.join).map_err(|(p, e)| {
        Error::config(
            &bundle.config_path,
            format!("linux.namespaces: open {}: {}", p.display(), e.desc()),
        )
    })?;
    // A pid namespace is entered by the children of the caller of setns: join it here, before the clone.
    if let Some(i) = join.iter().position(|(t, _)| *t == LinuxNamespaceType::Pid) {
        let (_, fd) = join.remove(i);
        nix::sched::setns(&fd, CloneFlags::CLONE_NEWPID)
            .map_err(|e| Error::sys("join pid namespace", e))?;
    }
    // Under systemd the scope needs the init's pid, so it is started after the clone; its values are
    // all checked here, before anything exists.
    let scope = if opts.systemd_cgroup {
        Some(cgroups::prepare_systemd(spec, opts.id)?)
    } else {
        let dir = made.dir.as_ref().expect("state dir");
        made.cgroup = cgroups::prepare(spec, opts.id, &mut |path| {
            saved.cgroup = Some(path.to_path_buf());
            dir.save(saved)
        })?;
        None
    };
    let idmapped = crate::rootfs::idmap::prepare_all(spec)?;

    let (console_ours, console_child) = opts.console.open()?;
    let start_path = dir_path.join(crate::container::state::START_SOCKET);
    let start_listener = sync::listen(&start_path)
        .map_err(|e| Error::sys(format!("bind start socket {}", start_path.display()), e))?;
    let (parent_sock, child_sock) =
        sync::pair().map_err(|e| Error::sys("make sync socketpair", e))?;

    let new_userns = plan.clone_flags.contains(CloneFlags::CLONE_NEWUSER);
    let in_userns = new_userns
        || plan
            .join
            .iter()
            .any(|(t, _)| *t == LinuxNamespaceType::User)
        // Already inside a user namespace that is not the host's (podman rootless): mknod and sysfs are
        // refused there too.
        || crate::rootless::is_rootless();
    let has_create_hooks = spec.hooks().as_ref().is_some_and(|h| {
        h.prestart().as_ref().is_some_and(|v| !v.is_empty())
            || h.create_runtime().as_ref().is_some_and(|v| !v.is_empty())
    });
    let (preserve_fds, extra_env) = listen_fds(opts.preserve_fds);
    let hook_state = oci_state_json(saved, Status::Creating, 0).to_string();

    // Clone flags exclude the time namespace: its offsets must be written before a process enters it.
    let mut flags = plan.clone_flags & !namespaces::clone_flag(LinuxNamespaceType::Time);
    let cgroup_fd = made.cgroup.as_ref().and_then(|c| c.open_fd());
    // Placed in its cgroup after the clone: the init makes its cgroup namespace once it is there.
    let late_cgroupns = cgroup_fd.is_none()
        && (made.cgroup.is_some() || scope.is_some())
        && flags.contains(CloneFlags::CLONE_NEWCGROUP);
    if late_cgroupns {
        flags.remove(CloneFlags::CLONE_NEWCGROUP);
    }
    let pid = match crate::sys::clone3(flags, cgroup_fd.as_ref().map(|f| f.as_raw_fd())) {
        Err(e) => return Err(Error::sys("clone the container init", e)),
        Ok(0) => {
            if let Some(dir) = &made.dir {
                dir.close_lock_copy();
            }
            drop(parent_sock);
            drop(console_ours);
            init::run(InitArgs {
                spec,
                rootfs: &bundle.rootfs,
                sync: child_sock,
                start_listener,
                console_socket: console_child,
                join: join.into_iter().collect(),
                new_userns,
                in_userns,
                no_pivot: opts.no_pivot,
                has_create_hooks,
                seccomp,
                preserve_fds,
                extra_env,
                hook_state,
                idmapped,
                late_cgroupns,
            })
        }
        Ok(pid) => Pid::from_raw(pid),
    };
    made.child = Some(pid);
    drop(child_sock);
    drop(console_child);
    drop(start_listener);
    drop(idmapped);
    let sock = parent_sock.as_fd();

    if new_userns {
        if let Some(linux) = spec.linux() {
            crate::namespaces::userns::write_maps(pid, linux)?;
        }
    }
    let net_devices = crate::namespaces::netdev::move_all(spec, pid.as_raw())?;
    if let (Some(cg), None) = (&made.cgroup, &cgroup_fd) {
        cg.add(pid.as_raw())?;
    }
    saved.pid = pid.as_raw();
    // Our child cannot be reaped (its pid reused) before we wait for it: its start time is final.
    saved.start_time = proc_start_time(pid.as_raw()).map(|(t, _)| t).unwrap_or(0);
    if let Some(scope) = &scope {
        // Recorded before systemd is asked: a create killed while the scope starts leaves a record
        // by which `delete --force` stops the unit (the chaos soak found such scopes left running).
        saved.systemd_unit = Some(scope.unit.clone());
        made.dir.as_ref().expect("state dir").save(saved)?;
        made.cgroup = Some(scope.start(pid.as_raw())?);
    }
    saved.cgroup = made.cgroup.as_ref().map(|c| c.path.clone());
    saved.systemd_unit = made.cgroup.as_ref().and_then(|c| c.unit.clone());
    // Until Go, a create killed here leaves an init that sees EOF and exits.
    made.dir.as_ref().expect("state dir").save(saved)?;
    sync::send(sock, &Msg::Go, None).map_err(|e| Error::sys("start the init", e))?;

    loop {
        match recv(sock)? {
            (Msg::RunCreateHooks, _) => {
                crate::container::run_create_hooks(spec, saved, pid.as_raw())?;
                sync::send(sock, &Msg::HooksDone, None)
                    .map_err(|e| Error::sys("resume the init after hooks", e))?;
            }
            (Msg::SeccompFd, Some(fd)) => {
                forward_notify_fd(&listener, saved, pid.as_raw(), fd.as_fd())?
            }
            (Msg::Ready, _) => break,
            (Msg::Error { step, errno }, _) => return Err(Error::Init { step, errno }),
            (m, _) => {
                return Err(Error::Init {
                    step: format!("unexpected message {m:?}"),
                    errno: 0,
                })
            }
        }
    }
    net_devices.keep();
    saved.creating = false;
    let dir = made.dir.as_ref().expect("state dir");
    dir.save_config(&bundle.raw)?;
    dir.save(saved)?;
    if let Some(p) = opts.pid_file {
        write_pid_file(p, pid.as_raw())?;
    }
    // Only now may the init wait for `start`: one whose create died before this record exits.
    sync::send(sock, &Msg::Committed, None)
        .map_err(|e| Error::sys("tell the init its container is recorded", e))?;
    Ok(console_ours)
}

fn recv(sock: BorrowedFd) -> Result<(Msg, Option<OwnedFd>)> {
    match sync::recv(sock) {
        Ok(Some(m)) => Ok(m),
        Ok(None) => Err(Error::Init {
            step: "the init exited during setup".into(),
            errno: 0,
        }),
        Err(e) => Err(Error::sys("read from the init", e)),
    }
}

pub fn forward_notify_fd(
    listener: &Option<(PathBuf, Option<String>)>,
    saved: &Saved,
    pid: i32,
    fd: BorrowedFd,
) -> Result<()> {
    let Some((path, meta)) = listener else {
        return Err(Error::InvalidArgument(
            "linux.seccomp: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath".into(),
        ));
    };
    let state: oci_spec::runtime::State =
        serde_json::from_value(oci_state_json(saved, Status::Creating, pid))
            .expect("state converts");
    seccomp::send_to_listener(path, meta.as_deref(), &state, pid, fd)
        .map_err(|e| Error::InvalidArgument(e.to_string()))
}

pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    write_atomic(&abs, pid.to_string().as_bytes(), 0o644)
}

/// The fds to pass (3..3+N, with LISTEN_FDS) must be open when gruntime starts. If one were not, the first
/// fd gruntime opens itself (the state lock, the rootfs) would take its number and be handed to the container.
/// Call before anything keeps an fd open.
pub fn check_passed_fds(preserve: i32) -> Result<()> {
    let (total, _) = listen_fds(preserve);
    for fd in 3..3 + total {
        // SAFETY: F_GETFD only queries the descriptor table.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(Error::InvalidArgument(format!(
                "--preserve-fds {preserve}: fd {fd} is not open"
            )));
        }
    }
    Ok(())
}

/// systemd socket activation: LISTEN_FDS fds after stdio pass through, as runc does.
fn listen_fds(preserve: i32) -> (i32, Vec<String>) {
    match std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    {
        Some(n) if n > 0 => (
            preserve + n,
            vec![format!("LISTEN_FDS={n}"), "LISTEN_PID=1".into()],
        ),
        _ => (preserve, Vec::new()),
    }
}

/// Hand the init its go: connect to its start socket, ask it to exec, and learn whether exec succeeded
/// (the socket closes on exec: EOF = running; a message = the step that failed).
pub fn start_init(c: &Container, listener: &Option<(PathBuf, Option<String>)>) -> Result<()> {
    let path = c.dir.start_socket();
    let fd = sync::connect(&path).map_err(|e| {
        Error::sys(
            format!("connect to the init's start socket {}", path.display()),
            e,
        )
    })?;
    sync::send(fd.as_fd(), &Msg::Start, None)
        .map_err(|e| Error::sys("send start to the init", e))?;
    loop {
        match sync::recv(fd.as_fd()) {
            Ok(None) => return Ok(()),
            Ok(Some((Msg::SeccompFd, Some(nfd)))) => {
                forward_notify_fd(listener, &c.saved, c.saved.pid, nfd.as_fd())?
            }
            Ok(Some((Msg::Error { step, errno }, _))) => return Err(Error::Init { step, errno }),
            Ok(Some((m, _))) => {
                return Err(Error::Init {
                    step: format!("unexpected message {m:?}"),
                    errno: 0,
                })
            }
            Err(e) => return Err(Error::sys("read from the init", e)),
        }
    }
}

pub fn listener_of(spec: &Spec) -> Option<(PathBuf, Option<String>)> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .and_then(|s| {
            s.listener_path()
                .as_ref()
                .map(|p| (p.clone(), s.listener_metadata().clone()))
        })
}
