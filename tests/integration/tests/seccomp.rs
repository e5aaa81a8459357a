//! linux.seccomp with real containers: `gruntime run` of a busybox bundle under a profile.
//! Syscalls the shell does not make are driven by a static probe program built for the test.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use integration::seccomp::{build_probe, bundle_config, containers_default_profile};
use integration::{gruntime_bin, make_busybox_rootfs, run, stderr, stdout, unique_id};
use serde_json::{json, Value};

/// A bundle in a temp dir and the container id; deletes the container (if any) when dropped.
struct Bundle {
    dir: tempfile::TempDir,
    id: String,
}

impl Bundle {
    fn new(args: &[&str], seccomp: Value) -> Bundle {
        Bundle::with_no_new_privileges(args, seccomp, true)
    }

    /// With `nnp` false the runtime must install the filter while the init still has
    /// CAP_SYS_ADMIN (before dropping capabilities): the kernel refuses it afterwards.
    fn with_no_new_privileges(args: &[&str], seccomp: Value, nnp: bool) -> Bundle {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        make_busybox_rootfs(&rootfs);
        build_probe(&rootfs.join("bin/probe"));
        let mut config = bundle_config(args, seccomp);
        config["process"]["noNewPrivileges"] = Value::Bool(nnp);
        std::fs::write(
            dir.path().join("config.json"),
            serde_json::to_vec_pretty(&config).unwrap(),
        )
        .unwrap();
        Bundle {
            dir,
            id: unique_id("seccomp"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `gruntime run --bundle B ID`, foreground, stdin closed.
    fn run(&self) -> Output {
        run(Command::new(gruntime_bin())
            .arg("run")
            .arg("--bundle")
            .arg(self.path())
            .arg(&self.id)
            .stdin(Stdio::null()))
    }

    /// Whether the runtime still knows the container.
    fn exists(&self) -> bool {
        run(Command::new(gruntime_bin()).arg("state").arg(&self.id))
            .status
            .success()
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = Command::new(gruntime_bin())
            .args(["delete", "--force", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn describe(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        stdout(o),
        stderr(o)
    )
}

fn sh(script: &str) -> Vec<&str> {
    vec!["/bin/sh", "-c", script]
}

#[test]
fn mkdir_gets_eperm_and_chmod_a_custom_errno() {
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["chmod", "fchmod", "fchmodat", "fchmodat2"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42}
        ]
    });
    let b = Bundle::new(
        &sh("mkdir /tmp/d; echo mkdir=$?; touch /tmp/f && echo touched; chmod 600 /tmp/f; echo chmod=$?"),
        profile,
    );
    let o = b.run();
    assert!(o.status.success(), "{}", describe(&o));
    let out = stdout(&o);
    let err = stderr(&o);
    assert!(out.contains("mkdir=1"), "{}", describe(&o));
    assert!(out.contains("touched"), "{}", describe(&o));
    assert!(out.contains("chmod=1"), "{}", describe(&o));
    assert!(err.contains("Operation not permitted"), "{}", describe(&o));
    // errno 42 is ENOMSG.
    assert!(
        err.contains("No message of desired type"),
        "{}",
        describe(&o)
    );
}

#[test]
fn filter_is_on_without_no_new_privileges() {
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
    });
    let b = Bundle::with_no_new_privileges(
        &sh("grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; mkdir /tmp/d; echo mkdir=$?"),
        profile,
        false,
    );
    let o = b.run();
    assert!(o.status.success(), "{}", describe(&o));
    let out = stdout(&o);
    assert!(out.contains("NoNewPrivs:\t0"), "{}", describe(&o));
    assert!(out.contains("Seccomp:\t2"), "{}", describe(&o));
    assert!(out.contains("mkdir=1"), "{}", describe(&o));
    assert!(stderr(&o).contains("Permission denied"), "{}", describe(&o));
}

#[test]
fn kill_process_ends_the_container_with_sigsys() {
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getpriority"], "action": "SCMP_ACT_KILL_PROCESS"}]
    });
    let nr = libc::SYS_getpriority.to_string();
    let b = Bundle::new(&["/bin/probe", &nr, "0", "0"], profile);
    let o = b.run();
    // The runc convention for a process killed by a signal: 128 + signal number.
    assert_eq!(
        o.status.code(),
        Some(128 + libc::SIGSYS),
        "{}",
        describe(&o)
    );
    assert!(!stdout(&o).contains("ok"), "{}", describe(&o));
}

#[test]
fn personality_is_allowed_for_one_value_only() {
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                      "args": [{"index": 0, "value": 0xffffffffu64, "op": "SCMP_CMP_NE"}]}]
    });
    let nr = libc::SYS_personality;
    let script =
        format!("/bin/probe {nr} 0xffffffff; /bin/probe {nr} 0x0008; /bin/probe {nr} 0x1ffffffff");
    let b = Bundle::new(&sh(&script), profile);
    let o = b.run();
    let lines: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 3, "{}", describe(&o));
    assert!(lines[0].starts_with("ok "), "{}", describe(&o));
    assert_eq!(lines[1], "errno 1", "{}", describe(&o));
    // Differs from the allowed value only in the upper 32 bits: the comparison is 64-bit.
    assert_eq!(lines[2], "errno 1", "{}", describe(&o));
}

/// Receive one message with one fd (SCM_RIGHTS) on `conn`.
fn recv_fd_and_payload(conn: &impl AsRawFd) -> (OwnedFd, Vec<u8>) {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buf = vec![0u8; 64 * 1024];
    let mut cmsg = nix::cmsg_space!([i32; 1]);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )
    .expect("recvmsg from the runtime");
    let mut fd = None;
    for c in msg.cmsgs().expect("control messages") {
        if let ControlMessageOwned::ScmRights(fds) = c {
            fd = fds.first().copied();
        }
    }
    let n = msg.bytes;
    let fd = fd.expect("the runtime sent an fd");
    // SAFETY: SCM_RIGHTS gave this process a new fd that nothing else owns.
    (unsafe { OwnedFd::from_raw_fd(fd) }, buf[..n].to_vec())
}

/// The seccomp agent: answer one notification with `val`; returns the syscall number it saw.
fn answer_one(fd: &OwnedFd, val: i64) -> i32 {
    // SAFETY: seccomp_notif is plain data and must be zeroed before NOTIF_RECV.
    let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: req is a valid seccomp_notif for the kernel to fill.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) };
    assert_eq!(rc, 0, "NOTIF_RECV: {}", std::io::Error::last_os_error());
    let mut resp = libc::seccomp_notif_resp {
        id: req.id,
        val,
        error: 0,
        flags: 0,
    };
    // SAFETY: resp answers the request just received.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
    assert_eq!(rc, 0, "NOTIF_SEND: {}", std::io::Error::last_os_error());
    req.data.nr
}

/// Accept one connection, or panic after `limit` (the runtime failed before connecting).
fn accept_within(
    listener: &UnixListener,
    limit: std::time::Duration,
) -> std::os::unix::net::UnixStream {
    listener.set_nonblocking(true).unwrap();
    let start = std::time::Instant::now();
    loop {
        match listener.accept() {
            Ok((conn, _)) => {
                conn.set_nonblocking(false).unwrap();
                return conn;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && start.elapsed() < limit => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("the runtime never connected to the listener: {e}"),
        }
    }
}

#[test]
fn notify_reaches_the_test_listener() {
    notify_roundtrip(true);
}

#[test]
fn notify_reaches_the_test_listener_without_no_new_privileges() {
    notify_roundtrip(false);
}

fn notify_roundtrip(nnp: bool) {
    let agent_dir = tempfile::tempdir().unwrap();
    let sock: PathBuf = agent_dir.path().join("agent.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock,
        "listenerMetadata": "seccomp-test-metadata",
        "syscalls": [{"names": ["getpriority"], "action": "SCMP_ACT_NOTIFY"}]
    });
    let nr = libc::SYS_getpriority;
    let b =
        Bundle::with_no_new_privileges(&["/bin/probe", &nr.to_string(), "0", "0"], profile, nnp);
    let agent = std::thread::spawn(move || {
        let conn = accept_within(&listener, std::time::Duration::from_secs(60));
        let (fd, payload) = recv_fd_and_payload(&conn);
        let state: Value = serde_json::from_slice(&payload).expect("state JSON");
        let seen = answer_one(&fd, 4242);
        (state, seen)
    });
    let o = b.run();
    let (state, seen) = agent.join().unwrap();
    assert_eq!(i64::from(seen), nr);
    assert_eq!(stdout(&o).trim(), "ok 4242", "{}", describe(&o));
    assert!(o.status.success(), "{}", describe(&o));
    assert_eq!(state["fds"], json!(["seccompFd"]), "{state}");
    assert_eq!(state["metadata"], "seccomp-test-metadata", "{state}");
    assert_eq!(state["state"]["id"], b.id.as_str(), "{state}");
    assert!(state["pid"].as_i64().unwrap_or(0) > 0, "{state}");
    assert!(state["ociVersion"].is_string(), "{state}");
}

#[test]
fn ordinary_commands_work_under_the_containers_default_profile() {
    let script = "ls / | grep -c . ; echo hello world | tr a-z A-Z | cut -d' ' -f2; \
                  ps | grep -c ps ; date +%Y >/dev/null && echo date-ok; cat /proc/self/status | grep Seccomp:";
    let b = Bundle::new(&sh(script), containers_default_profile());
    let o = b.run();
    assert!(o.status.success(), "{}", describe(&o));
    let out = stdout(&o);
    assert!(out.contains("WORLD"), "{}", describe(&o));
    assert!(out.contains("date-ok"), "{}", describe(&o));
    // Mode 2 is SECCOMP_MODE_FILTER: the profile really is on.
    assert!(out.contains("Seccomp:\t2"), "{}", describe(&o));
    let first: usize = out.lines().next().unwrap_or("").trim().parse().unwrap_or(0);
    assert!(first >= 5, "ls / listed too little: {}", describe(&o));
}

#[test]
fn containers_default_profile_returns_enosys_outside_its_allow_list() {
    let profile = containers_default_profile();
    assert_eq!(profile["defaultErrnoRet"], 38, "ENOSYS in this version");
    let script = format!(
        "/bin/probe {}; /bin/probe {}; /bin/probe {} 0xffffffff; /bin/probe {} 0x1234",
        libc::SYS_add_key,
        libc::SYS_getppid,
        libc::SYS_personality,
        libc::SYS_personality
    );
    let b = Bundle::new(&sh(&script), profile);
    let o = b.run();
    let lines: Vec<String> = stdout(&o).lines().map(|l| l.trim().to_string()).collect();
    assert_eq!(lines.len(), 4, "{}", describe(&o));
    // add_key is in no allow-list entry: the profile's default errno.
    assert_eq!(lines[0], "errno 38", "{}", describe(&o));
    assert!(lines[1].starts_with("ok "), "{}", describe(&o));
    // personality is allowed for a few values only.
    assert!(lines[2].starts_with("ok "), "{}", describe(&o));
    assert_eq!(lines[3], "errno 38", "{}", describe(&o));
}

#[test]
fn bad_seccomp_sections_fail_with_the_entry_named_and_leave_nothing() {
    let cases = [
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["chmod"], "action": "SCMP_ACT_EXPLODE"}]}),
            "linux.seccomp.syscalls[1].action",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_SOMETIMES"}]}]}),
            "linux.seccomp.syscalls[0].args[0].op",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
            "linux.seccomp.syscalls[0].args[0].index",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
            "listenerPath",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]}),
            "linux.seccomp.syscalls[0].names",
        ),
    ];
    for (profile, field) in cases {
        let b = Bundle::new(&["/bin/true"], profile);
        let o = b.run();
        assert!(!o.status.success(), "{field}: {}", describe(&o));
        let err = stderr(&o);
        let first = err.lines().find(|l| l.contains(field));
        assert!(first.is_some(), "error must name {field}: {}", describe(&o));
        assert!(!b.exists(), "{field}: the container was left behind");
    }
}

#[test]
fn features_reports_the_seccomp_support() {
    let o = run(Command::new(gruntime_bin()).arg("features"));
    assert!(o.status.success(), "{}", describe(&o));
    let f: Value = serde_json::from_slice(&o.stdout).expect("features prints JSON");
    let s = &f["linux"]["seccomp"];
    assert_eq!(s["enabled"], true, "{s}");
    let list = |k: &str| -> Vec<String> {
        s[k].as_array()
            .unwrap_or_else(|| panic!("{k} missing: {s}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    for a in [
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_NOTIFY",
        "SCMP_ACT_LOG",
    ] {
        assert!(list("actions").contains(&a.to_string()), "{a}: {s}");
    }
    assert_eq!(list("operators").len(), 7, "{s}");
    assert!(
        list("archs").contains(&"SCMP_ARCH_X86_64".to_string()),
        "{s}"
    );
    assert!(
        list("supportedFlags").contains(&"SECCOMP_FILTER_FLAG_LOG".to_string()),
        "{s}"
    );
    assert_eq!(list("knownFlags").len(), 4, "{s}");
}

/// An agent that lets every notified syscall continue, until the filter has no process left.
/// Returns the syscall numbers it saw.
fn continue_all(fd: OwnedFd) -> Vec<i32> {
    let mut seen = Vec::new();
    loop {
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, 30_000) };
        assert!(n > 0, "no notification and no hang-up within 30s");
        if pfd.revents & libc::POLLIN == 0 {
            return seen; // POLLHUP: every process under the filter is gone
        }
        // SAFETY: zeroed plain data, as NOTIF_RECV requires.
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: req is a valid seccomp_notif for the kernel to fill.
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) } != 0 {
            continue; // the caller died between poll and recv
        }
        seen.push(req.data.nr);
        let mut resp = libc::seccomp_notif_resp {
            id: req.id,
            val: 0,
            error: 0,
            flags: libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
        };
        // SAFETY: resp answers the request just received (it may have gone away: ignored).
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
    }
}

/// Like runc's test: syscalls the runtime itself may make after the filter is on (before and
/// around exec) can be notified, and the container still starts once the agent has the fd.
#[test]
fn notify_on_the_syscalls_around_exec() {
    for nnp in [true, false] {
        let agent_dir = tempfile::tempdir().unwrap();
        let sock = agent_dir.path().join("agent.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let profile = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock,
            "syscalls": [{"names": ["execve", "openat", "open", "read", "close"], "action": "SCMP_ACT_NOTIFY"}]
        });
        let b = Bundle::with_no_new_privileges(&["/bin/true"], profile, nnp);
        let agent = std::thread::spawn(move || {
            let conn = accept_within(&listener, std::time::Duration::from_secs(60));
            let (fd, _) = recv_fd_and_payload(&conn);
            continue_all(fd)
        });
        let o = b.run();
        let seen = agent.join().unwrap();
        assert!(o.status.success(), "nnp={nnp}: {}", describe(&o));
        assert!(
            seen.contains(&(libc::SYS_execve as i32)),
            "nnp={nnp}: the agent never saw execve: {seen:?}"
        );
    }
}

#[test]
fn notify_on_the_handover_syscall_is_refused() {
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/nonexistent/agent.sock",
        "syscalls": [{"names": ["sendmsg"], "action": "SCMP_ACT_NOTIFY"}]
    });
    let b = Bundle::new(&["/bin/true"], profile);
    let o = b.run();
    assert!(!o.status.success(), "{}", describe(&o));
    assert!(
        stderr(&o).contains("linux.seccomp.syscalls[0].names: SCMP_ACT_NOTIFY on sendmsg"),
        "{}",
        describe(&o)
    );
    assert!(!b.exists());
}
