//! `exec`: a new process inside a running container. The same clone3 + sync handshake as `create`, but the
//! child joins the init's namespaces (user first, mount last: it lands in the container's root) and is born in
//! the container's cgroup; then the per-process steps shared with the init (init::prepare_process) and execve.
//! The pid namespace is joined by the parent before the clone, so no third process is needed.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

use crate::container::Container;
use crate::error::{fail, InitResult, Step};
use crate::error::{Error, Result};
use crate::namespaces;
use crate::seccomp::{self, SeccompProgram};
use crate::spawn::console;
use crate::spawn::create;
use crate::spawn::init;
use crate::spawn::sync::{self, Msg};
use crate::spawn::Console;

pub struct ExecOpts<'a> {
    pub process: Process,
    pub console: Console,
    pub pid_file: Option<&'a Path>,
    pub preserve_fds: i32,
}

pub struct Spawned {
    pub pid: Pid,
    pub console_master: Option<OwnedFd>,
}

/// /proc/<pid>/ns/<name> for each namespace type.
fn proc_ns_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Network => "net",
        // Until `start` the init itself is still outside the container's time namespace (timens.rs).
        LinuxNamespaceType::Time => "time_for_children",
        other => namespaces::name(other),
    }
}

/// The init's namespaces that differ from ours, in joining order (user first, mount last).
fn namespaces_to_join(spec: &Spec, init: i32) -> Result<Vec<(LinuxNamespaceType, OwnedFd)>> {
    let mut types: Vec<LinuxNamespaceType> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .map(|v| v.iter().map(|n| n.typ()).collect())
        .unwrap_or_default();
    let rank = |t: &LinuxNamespaceType| match t {
        LinuxNamespaceType::User => 0,
        LinuxNamespaceType::Mount => 2,
        _ => 1,
    };
    types.sort_by_key(rank);
    let mut out = Vec::new();
    for t in types {
        let theirs = PathBuf::from(format!("/proc/{init}/ns/{}", proc_ns_name(t)));
        let ours = PathBuf::from(format!("/proc/self/ns/{}", proc_ns_name(t)));
        let same = match (std::fs::metadata(&theirs), std::fs::metadata(&ours)) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            (Err(e), _) => return Err(Error::io("open the container's namespace", &theirs, e)),
            _ => false,
        };
        if !same {
            let fd = open(&theirs, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
                .map_err(|e| Error::sys(format!("open {}", theirs.display()), e))?;
            out.push((t, fd));
        }
    }
    Ok(out)
}

/// Start `opts.process` in container `c`. Returns once it has exec'd (or with the step that failed).
pub fn spawn(c: &Container, spec: &Spec, opts: ExecOpts) -> Result<Spawned> {
    let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Some(seccomp::compile(s).map_err(|e| Error::InvalidArgument(e.to_string()))?),
        None => None,
    };
    let listener = create::listener_of(spec);
    let mut join = namespaces_to_join(spec, c.saved.pid)?;
    if let Some(i) = join.iter().position(|(t, _)| *t == LinuxNamespaceType::Pid) {
        let (_, fd) = join.remove(i);
        // The pid namespace belongs to the container's user namespace: an unprivileged caller may only
        // enter it from inside that user namespace, so this (short-lived) parent joins it first.
        if !nix::unistd::geteuid().is_root() {
            if let Some(u) = join
                .iter()
                .position(|(t, _)| *t == LinuxNamespaceType::User)
            {
                let (_, ufd) = join.remove(u);
                nix::sched::setns(&ufd, CloneFlags::CLONE_NEWUSER)
                    .map_err(|e| Error::sys("join the container's user namespace", e))?;
            }
        }
        nix::sched::setns(&fd, CloneFlags::CLONE_NEWPID)
            .map_err(|e| Error::sys("join the container's pid namespace", e))?;
    }
    let joins_user = join.iter().any(|(t, _)| *t == LinuxNamespaceType::User);
    let (console_ours, console_child) = opts.console.open()?;
    let (parent_sock, child_sock) =
        sync::pair().map_err(|e| Error::sys("make sync socketpair", e))?;
    let cgroup_fd = c.saved.cgroup.as_ref().and_then(|p| {
        open(
            p,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ok()
    });

    let pid = match crate::sys::clone3(
        CloneFlags::empty(),
        cgroup_fd.as_ref().map(|f| f.as_raw_fd()),
    ) {
        Err(e) => return Err(Error::sys("clone the exec process", e)),
        Ok(0) => {
            drop(parent_sock);
            drop(console_ours);
            let err = match child(
                spec,
                &opts,
                &join,
                joins_user,
                console_child,
                seccomp.as_ref(),
                &child_sock,
            ) {
                Ok(never) => match never {},
                Err(e) => e,
            };
            let _ = sync::send(
                child_sock.as_fd(),
                &Msg::Error {
                    step: err.step,
                    errno: err.errno,
                },
                None,
            );
            // SAFETY: leave the forked copy without running the parent's destructors.
            unsafe { libc::_exit(1) }
        }
        Ok(pid) => Pid::from_raw(pid),
    };
    drop(child_sock);
    drop(console_child);
    loop {
        match sync::recv(parent_sock.as_fd()) {
            // The socket is CLOEXEC: EOF means execve succeeded.
            Ok(None) => break,
            Ok(Some((Msg::SeccompFd, Some(fd)))) => {
                create::forward_notify_fd(&listener, &c.saved, pid.as_raw(), fd.as_fd())?
            }
            Ok(Some((Msg::Error { step, errno }, _))) => {
                let _ = nix::sys::wait::waitpid(pid, None);
                return Err(Error::Init { step, errno });
            }
            Ok(Some((m, _))) => {
                return Err(Error::Init {
                    step: format!("unexpected message {m:?}"),
                    errno: 0,
                })
            }
            Err(e) => return Err(Error::sys("read from the exec process", e)),
        }
    }
    if let Some(p) = opts.pid_file {
        create::write_pid_file(p, pid.as_raw())?;
    }
    Ok(Spawned {
        pid,
        console_master: console_ours,
    })
}

enum Never {}

fn child(
    spec: &Spec,
    opts: &ExecOpts,
    join: &[(LinuxNamespaceType, OwnedFd)],
    joins_user: bool,
    console: Option<OwnedFd>,
    seccomp: Option<&SeccompProgram>,
    sync_sock: &OwnedFd,
) -> InitResult<Never> {
    // SAFETY: prctl with integer arguments; keeps /proc/<pid>/exe (the host binary) out of reach until exec.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    crate::process::affinity::apply_initial(&opts.process)?;
    for (t, fd) in join {
        nix::sched::setns(fd, namespaces::clone_flag(*t))
            .step(|| format!("join the container's {} namespace", namespaces::name(*t)))?;
        if *t == LinuxNamespaceType::User && joins_user {
            init::become_root_in_userns()?;
        }
    }
    let process = &opts.process;
    if process.terminal().unwrap_or(false) {
        let sock = console
            .as_ref()
            .ok_or_else(|| fail("process.terminal is true but there is no console socket"))?;
        console::setup_console(process, sock.as_fd())?;
    }
    // The container's memory policy and personality hold for every process in it.
    crate::process::mempolicy::apply(spec)?;
    crate::process::personality::apply(spec)?;
    let ready = init::prepare_process(process, seccomp, sync_sock.as_fd(), &[], opts.preserve_fds)?;
    if ready.nnp {
        init::install_seccomp(seccomp, sync_sock.as_fd())?;
    }
    let e = nix::unistd::execve(&ready.exe, &ready.argv, &ready.env).unwrap_err();
    Err(e).step(|| format!("exec {}", cstr(&ready.exe)))
}

fn cstr(c: &CString) -> String {
    c.to_string_lossy().into_owned()
}
