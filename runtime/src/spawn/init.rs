//! The container's init, child side of the one clone: everything below runs in the new namespaces, top to
//! bottom in the order the runtime spec gives, then waits for `start` and execs the user process.
//! Each step's failure goes back to the parent as (step, errno) and the init exits.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

use nix::sys::socket::accept4;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{fail, InitError, InitResult, Step};
use crate::hooks;
use crate::namespaces::{netdev, sysctl, timens};
use crate::process::{
    self, affinity, caps, ioprio, lsm, mempolicy, personality, rlimits, scheduler,
};
use crate::rootfs::{self, devices};
use crate::seccomp::SeccompProgram;
use crate::spawn::console;
use crate::spawn::sync::{self, Msg};

/// Everything the init needs, prepared by the parent before the clone (so the child allocates little and
/// cannot fail on host-side lookups).
pub struct InitArgs<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub sync: OwnedFd,
    pub start_listener: OwnedFd,
    pub console_socket: Option<OwnedFd>,
    /// Namespaces joined by path, opened by the parent, in joining order.
    pub join: Vec<(LinuxNamespaceType, OwnedFd)>,
    pub new_userns: bool,
    pub in_userns: bool,
    pub no_pivot: bool,
    pub has_create_hooks: bool,
    pub seccomp: Option<&'a SeccompProgram>,
    /// fds 3..3+preserve_fds pass through to the user process.
    pub preserve_fds: i32,
    pub extra_env: Vec<String>,
    /// The state JSON for createContainer/startContainer hooks (pid filled in by the init itself).
    pub hook_state: String,
    /// Idmapped mounts the parent prepared (detached), attached by `rootfs::mount_all`.
    pub idmapped: Vec<crate::rootfs::idmap::Prepared>,
    /// The new cgroup namespace is made here, after Go, not by the clone: the parent places us in
    /// our cgroup only after the clone (a systemd scope, or no CLONE_INTO_CGROUP), and a namespace
    /// made before that would be rooted in the caller's cgroup.
    pub late_cgroupns: bool,
}

/// Never returns: execs the user process or exits.
pub fn run(args: InitArgs) -> ! {
    let sync_fd = args.sync.as_raw_fd();
    let err = match setup(&args) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    // SAFETY: sync_fd stays open until we exit below.
    let sync = unsafe { BorrowedFd::borrow_raw(sync_fd) };
    let _ = sync::send(
        sync,
        &Msg::Error {
            step: err.step,
            errno: err.errno,
        },
        None,
    );
    // SAFETY: _exit skips atexit handlers and destructors that belong to the parent's copy of the process.
    unsafe { libc::_exit(1) }
}

enum Never {}

fn wait_for(sync: BorrowedFd, want: Msg) -> InitResult<()> {
    match sync::recv(sync).step(|| "read from the runtime".into())? {
        Some((m, _)) if m == want => Ok(()),
        Some((m, _)) => Err(fail(format!("unexpected message from the runtime: {m:?}"))),
        // The parent died or gave up: nothing to report to.
        // SAFETY: _exit skips the destructors that belong to the parent's copy of the process.
        None => unsafe { libc::_exit(1) },
    }
}

fn setup(a: &InitArgs) -> InitResult<Never> {
    let spec = a.spec;
    let sync = a.sync.as_fd();
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| fail("process: missing"))?;
    affinity::apply_initial(process)?;
    // The parent writes our id maps first: an unprivileged parent can only do that while we are dumpable.
    // Nothing of the container runs or sees us before Go.
    wait_for(sync, Msg::Go)?;
    // Until exec, nothing in the container may open /proc/<init>/exe (the host binary) or ptrace us.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if a.new_userns {
        become_root_in_userns()?;
    }
    join_namespaces(&a.join)?;
    timens::enter_new(spec)?;
    if a.late_cgroupns {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
            .step(|| "unshare the cgroup namespace".into())?;
    }
    set_names(spec)?;
    if crate::namespaces::is_new(spec, LinuxNamespaceType::Network) {
        netdev::loopback_up_here().step(|| "bring lo up in the new network namespace".into())?;
    }

    let has_mountns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|v| v.iter().any(|n| n.typ() == LinuxNamespaceType::Mount));
    if has_mountns {
        rootfs::prepare_root(spec, a.rootfs)?;
        rootfs::mount_all(spec, a.rootfs, a.in_userns, &a.idmapped)?;
        devices::create_all(spec, a.rootfs, a.in_userns)?;
    }
    make_cwd(a.rootfs, process.cwd())?;

    if a.has_create_hooks {
        sync::send(sync, &Msg::RunCreateHooks, None)
            .step(|| "ask the runtime to run createRuntime hooks".into())?;
        wait_for(sync, Msg::HooksDone)?;
    }
    let hook_state = a
        .hook_state
        .replace("\"pid\":0", &format!("\"pid\":{}", std::process::id()));
    if let Some(hs) = spec
        .hooks()
        .as_ref()
        .and_then(|h| h.create_container().as_ref())
    {
        hooks::run_all("createContainer", hs, &hook_state).map_err(|e| fail(e.reason))?;
    }

    if has_mountns {
        if a.no_pivot {
            rootfs::move_root(a.rootfs)?;
        } else {
            rootfs::pivot(a.rootfs)?;
        }
        rootfs::finish_propagation(spec)?;
    } else {
        nix::unistd::chroot(a.rootfs).step(|| format!("chroot {}", a.rootfs.display()))?;
        nix::unistd::chdir("/").step(|| "chdir /".into())?;
    }

    rootfs::devices::reopen_dev_null()?;
    if process.terminal().unwrap_or(false) {
        let sock = a
            .console_socket
            .as_ref()
            .ok_or_else(|| fail("process.terminal is true but there is no console socket"))?;
        console::setup_console(process, sock.as_fd())?;
    } else {
        // A session of its own, as runc's init always has (setup_console makes one for a terminal):
        // CRIU dumps a tree whose session leader is inside the container without --shell-job.
        nix::unistd::setsid().step(|| "setsid".into())?;
    }
    sysctl::write_all(spec)?;
    if has_mountns {
        rootfs::mask_paths(spec)?;
        rootfs::readonly_paths(spec)?;
        if spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false)
        {
            rootfs::readonly_root()?;
        }
    }
    mempolicy::apply(spec)?;
    personality::apply(spec)?;
    let ready = prepare_process(process, a.seccomp, sync, &a.extra_env, a.preserve_fds)?;

    sync::send(sync, &Msg::Ready, None).step(|| "tell the runtime we are ready".into())?;
    wait_for(sync, Msg::Committed)?;
    let conn = wait_for_start(a.start_listener.as_raw_fd())?;
    // From here on, errors go to `start` over its connection.
    start_and_exec(a, spec, &hook_state, &conn, &ready)
}

fn start_and_exec(
    a: &InitArgs,
    spec: &Spec,
    hook_state: &str,
    conn: &OwnedFd,
    ready: &Prepared,
) -> InitResult<Never> {
    let (nnp, exe, argv, env) = (ready.nnp, &ready.exe, &ready.argv, &ready.env);
    let report = |e: InitError| -> InitError {
        let _ = sync::send(
            conn.as_fd(),
            &Msg::Error {
                step: e.step.clone(),
                errno: e.errno,
            },
            None,
        );
        // SAFETY: exit the init without running the parent's destructors.
        unsafe { libc::_exit(1) }
    };
    if let Some(hs) = spec
        .hooks()
        .as_ref()
        .and_then(|h| h.start_container().as_ref())
    {
        let st = hook_state.replace("\"status\":\"creating\"", "\"status\":\"created\"");
        hooks::run_all("startContainer", hs, &st).map_err(|e| report(fail(e.reason)))?;
    }
    if nnp {
        install_seccomp(a.seccomp, conn.as_fd()).map_err(report)?;
    }
    let e = nix::unistd::execve(exe, argv, env).unwrap_err();
    Err(report(InitError {
        step: format!("exec {}", exe.to_string_lossy()),
        errno: e as i32,
    }))
}

pub fn install_seccomp(prog: Option<&SeccompProgram>, peer: BorrowedFd) -> InitResult<()> {
    let Some(prog) = prog else { return Ok(()) };
    let fd = prog
        .install()
        .map_err(|e| fail(format!("install seccomp filter: {e}")))?;
    if let Some(fd) = fd {
        sync::send(peer, &Msg::SeccompFd, Some(fd.as_raw_fd()))
            .step(|| "send the seccomp notify fd to the runtime".into())?;
    }
    Ok(())
}

fn wait_for_start(listener: RawFd) -> InitResult<OwnedFd> {
    loop {
        match accept4(
            // SAFETY: the listener fd stays open for the whole wait.
            unsafe { BorrowedFd::borrow_raw(listener) },
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        ) {
            Ok(conn) => {
                match sync::recv(conn.as_fd()) {
                    Ok(Some((Msg::Start, _))) => return Ok(conn),
                    _ => continue, // not a start request (e.g. a probe): wait for the next one
                }
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).step(|| "wait for start".into()),
        }
    }
}

pub fn become_root_in_userns() -> InitResult<()> {
    nix::unistd::setresgid(0.into(), 0.into(), 0.into())
        .step(|| "setgid 0 in the user namespace".into())?;
    nix::unistd::setresuid(0.into(), 0.into(), 0.into())
        .step(|| "setuid 0 in the user namespace".into())?;
    Ok(())
}

fn join_namespaces(join: &[(LinuxNamespaceType, OwnedFd)]) -> InitResult<()> {
    for (t, fd) in join {
        nix::sched::setns(fd, crate::namespaces::clone_flag(*t))
            .step(|| format!("join {} namespace", crate::namespaces::name(*t)))?;
        if *t == LinuxNamespaceType::User {
            become_root_in_userns()?;
        }
    }
    Ok(())
}

fn set_names(spec: &Spec) -> InitResult<()> {
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).step(|| format!("sethostname {h}"))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        // SAFETY: d points to d.len() valid bytes for the call.
        let r = unsafe { libc::setdomainname(d.as_ptr() as *const libc::c_char, d.len()) };
        nix::errno::Errno::result(r).step(|| format!("setdomainname {d}"))?;
    }
    Ok(())
}

fn make_cwd(rootfs: &Path, cwd: &Path) -> InitResult<()> {
    let root = nix::fcntl::open(
        rootfs,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .step(|| format!("open rootfs {}", rootfs.display()))?;
    rootfs::resolve::mkdir_in_root(root.as_raw_fd(), cwd, false).map(drop)
}

/// fds 3..3+n stay open across exec; every other fd above 2 is closed by exec. Done without listing
/// /proc/self/fd: a container that joins the host's mount namespace by path has no /proc of its own here.
fn pass_fds(n: i32) -> InitResult<()> {
    if crate::sys::cloexec_from(3 + n).is_err() {
        // Before Linux 5.11 (ENOSYS, EINVAL), or denied: list the fds instead, where /proc is there to list them.
        cloexec_listed(n)?;
    }
    for fd in 3..3 + n {
        set_cloexec(fd, false);
    }
    Ok(())
}

/// FD_CLOEXEC on or off for an fd number; a closed or stale number is left alone.
fn set_cloexec(fd: RawFd, on: bool) {
    // SAFETY: F_GETFD/F_SETFD only read and write the descriptor flags; a closed number just fails.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 {
            let want = if on {
                flags | libc::FD_CLOEXEC
            } else {
                flags & !libc::FD_CLOEXEC
            };
            libc::fcntl(fd, libc::F_SETFD, want);
        }
    }
}

fn cloexec_listed(n: i32) -> InitResult<()> {
    let fds: Vec<RawFd> = match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|fd| *fd >= 3 + n)
            .collect(),
        // No /proc either: every number the fd limit allows.
        Err(_) => {
            let (soft, _) =
                nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
                    .step(|| "read RLIMIT_NOFILE".into())?;
            (3 + n..soft.min(1 << 20) as RawFd).collect()
        }
    };
    for fd in fds {
        set_cloexec(fd, true);
    }
    Ok(())
}

/// The user process, ready for execve.
pub struct Prepared {
    pub exe: CString,
    pub argv: Vec<CString>,
    pub env: Vec<CString>,
    /// no_new_privs is set: the seccomp filter is still to be installed, right before execve.
    pub nnp: bool,
}

/// The per-process steps shared by the container's init and `exec`, in runc's order: oomScoreAdj, rlimits,
/// cwd, seccomp (here when no_new_privs is off: it needs CAP_SYS_ADMIN), bounding set, user, capabilities,
/// no_new_privs, and the executable lookup (so "not found" is an error before anything runs).
pub fn prepare_process(
    process: &oci_spec::runtime::Process,
    seccomp: Option<&SeccompProgram>,
    peer: BorrowedFd,
    extra_env: &[String],
    preserve_fds: i32,
) -> InitResult<Prepared> {
    // First: a seccomp profile installed below may deny close_range (runtime-tools' default profile does).
    pass_fds(preserve_fds)?;
    if let Some(adj) = process.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .step(|| format!("write oomScoreAdj {adj}"))?;
    }
    rlimits::apply(process.rlimits().as_deref().unwrap_or(&[]))?;
    // Before capabilities are dropped: RT classes and policies need CAP_SYS_NICE/CAP_SYS_ADMIN.
    ioprio::apply(process)?;
    scheduler::apply(process)?;
    lsm::apply(process)?;
    let cwd = process.cwd();
    nix::unistd::chdir(cwd).step(|| format!("chdir to process.cwd {}", cwd.display()))?;

    let nnp = process.no_new_privileges().unwrap_or(false);
    // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: do it while we still have it.
    if !nnp {
        install_seccomp(seccomp, peer)?;
    }
    if let Some(lc) = process.capabilities() {
        caps::drop_bounding(lc)?;
    }
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
    process::switch_user(process)?;
    // SAFETY: as above.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    match process.capabilities() {
        Some(lc) => caps::apply(lc)?,
        None => caps::apply(&Default::default())?,
    }
    if nnp {
        // SAFETY: prctl with integer arguments.
        let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        nix::errno::Errno::result(r).step(|| "set no_new_privs".into())?;
    }

    let mut env = process::env_of(process);
    env.extend(extra_env.iter().cloned());
    let argv = process.args().clone().unwrap_or_default();
    let exe = process::find_executable(&argv[0], &env)?;
    let exe_c = CString::new(exe.as_os_str().as_encoded_bytes())
        .map_err(|_| fail("executable path contains NUL"))?;
    let argv_c = process::cstrings(&argv)?;
    let env_c = process::cstrings(&env)?;
    affinity::apply_final(process)?;
    process::default_sigpipe();

    Ok(Prepared {
        exe: exe_c,
        argv: argv_c,
        env: env_c,
        nnp,
    })
}
