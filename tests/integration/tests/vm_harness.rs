//! Tests of the cgroup-v2 VM harness itself (tests/integration/vm/, src/vm.rs): the guest has a
//! pure cgroup v2 hierarchy with every controller enabled, sees the host's files, can do what
//! container tests need, returns output and exit status, and never outlives its timeout or its
//! caller.
//!
//! Most checks share one VM boot (`GUEST`): each test reads its own section of that batch.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use integration::vm::{self, Init, Vm, VmError, VmOutput};
use integration::{gruntime_bin, run, shell_quote, stderr};

/// Controllers the Debian kernel offers on cgroup v2 (cgroup_no_v1=all leaves them all to v2).
const EXPECTED_CONTROLLERS: &[&str] = &[
    "cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc",
];

const GUEST_STATUS: i32 = 42;
const HOST_ROOT_MARKER: &str = "/etc/gruntime-vm-harness-marker";

struct Guest {
    out: VmOutput,
    /// What the guest wrote into the shared directory, read on the host after the VM is gone.
    shared_back: Option<String>,
    test_exe: String,
}

/// One boot for all the environment checks; each `== NAME` section is one check's output.
static GUEST: LazyLock<Result<Guest, String>> = LazyLock::new(|| {
    let share = tempfile::Builder::new()
        .prefix("vm-harness-share-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    std::fs::write(share.path().join("in.txt"), "from-host\n").map_err(|e| e.to_string())?;
    let test_exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // Not gruntime_bin(): its "not built" panic belongs to the one test that needs the binary,
    // not to the batch every other test shares.
    let gruntime = std::env::var("GRUNTIME_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            std::env::var("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|_| integration::workspace_root().join("target"))
                .join("debug/gruntime")
        });
    let script = format!(
        r#"
section() {{ echo "== $1"; }}
section controllers; cat /sys/fs/cgroup/cgroup.controllers
section subtree_control; cat /sys/fs/cgroup/cgroup.subtree_control
section self_cgroup; cat /proc/self/cgroup
section cgroup_fs_types; awk '$3 ~ /cgroup/ {{print $3}}' /proc/mounts
section child_cgroup
mkdir /sys/fs/cgroup/harness
echo 12582912 > /sys/fs/cgroup/harness/memory.max
echo 7 > /sys/fs/cgroup/harness/pids.max
sh -c 'echo $$ > /sys/fs/cgroup/harness/cgroup.procs; cat /proc/self/cgroup'
cat /sys/fs/cgroup/harness/memory.max /sys/fs/cgroup/harness/pids.max
rmdir /sys/fs/cgroup/harness && echo removed
section test_exe; sha256sum {test_exe} | cut -d' ' -f1
section gruntime; sha256sum {gruntime} | cut -d' ' -f1
section runc; runc --version 2>&1 | head -n1
section cwd; pwd
section env; echo "$HARNESS_VALUE"
section namespaces
unshare --mount --pid --net --uts --ipc --cgroup --user --map-root-user --fork \
    sh -c 'hostname inner && hostname && id -u && echo "pid $$"' 2>&1
section overlay
mkdir -p /tmp/ov/l /tmp/ov/u /tmp/ov/w /tmp/ov/m && echo lower > /tmp/ov/l/f &&
mount -t overlay ov -o lowerdir=/tmp/ov/l,upperdir=/tmp/ov/u,workdir=/tmp/ov/w /tmp/ov/m &&
echo upper > /tmp/ov/m/g && cat /tmp/ov/m/f && ls /tmp/ov/u && umount /tmp/ov/m && echo unmounted
section useradd
useradd -m harnessuser 2>&1 && getent passwd harnessuser | cut -d: -f1,6 && test -d /home/harnessuser && echo home
section host_root_write; echo guest > {marker} && cat {marker}
section share; cat {share}/in.txt && echo from-guest > {share}/out.txt && echo written
echo to-stderr >&2
exit {status}
"#,
        test_exe = shell_quote(&test_exe),
        gruntime = shell_quote(&gruntime),
        marker = HOST_ROOT_MARKER,
        share = shell_quote(share.path()),
        status = GUEST_STATUS,
    );
    let out = Vm::new()
        .share(share.path())
        .env("HARNESS_VALUE", "value with spaces 'and quotes'")
        .timeout(Duration::from_secs(300))
        .run(&script)
        .map_err(|e| e.to_string())?;
    let shared_back = std::fs::read_to_string(share.path().join("out.txt")).ok();
    Ok(Guest {
        out,
        shared_back,
        test_exe: test_exe.display().to_string(),
    })
});

fn guest() -> &'static Guest {
    match &*GUEST {
        Ok(g) => g,
        Err(e) => panic!("the shared VM batch failed: {e}"),
    }
}

fn sha256_of(path: &Path) -> String {
    let out = run(Command::new("sha256sum").arg(path));
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Processes (other than this test) whose command line mentions `needle`, e.g. a job dir.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
            continue;
        }
        if let Ok(raw) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
            if cmdline.contains(needle) {
                found.push(format!("{name}: {cmdline}"));
            }
        }
    }
    found
}

/// Kills the child (and its process group's qemu, via its parent-death signal) if the test fails
/// before it does.
struct KillOnPanic(std::process::Child);

impl Drop for KillOnPanic {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn guest_has_every_cgroup2_controller_enabled_at_the_root() {
    let g = guest();
    let controllers = g.out.section("controllers");
    let available: Vec<&str> = controllers.split_whitespace().collect();
    for c in EXPECTED_CONTROLLERS {
        assert!(available.contains(c), "controller {c} missing:\n{}", g.out);
    }
    let subtree_control = g.out.section("subtree_control");
    let enabled: Vec<&str> = subtree_control.split_whitespace().collect();
    assert_eq!(enabled, available, "not all enabled:\n{}", g.out);
}

#[test]
fn guest_is_pure_cgroup_v2() {
    let g = guest();
    assert_eq!(g.out.section("self_cgroup"), "0::/\n", "{}", g.out);
    assert_eq!(g.out.section("cgroup_fs_types"), "cgroup2\n", "{}", g.out);
}

#[test]
fn guest_cgroup_limits_land_in_a_child_cgroup() {
    let g = guest();
    assert_eq!(
        g.out.section("child_cgroup"),
        "0::/harness\n12582912\n7\nremoved\n",
        "{}",
        g.out
    );
}

#[test]
fn host_binaries_are_visible_at_their_host_paths() {
    let g = guest();
    assert_eq!(
        g.out.section("test_exe").trim(),
        sha256_of(Path::new(&g.test_exe)),
        "{}",
        g.out
    );
    assert_eq!(
        g.out.section("gruntime").trim(),
        sha256_of(&gruntime_bin()),
        "{}",
        g.out
    );
    assert!(
        g.out.section("runc").starts_with("runc version "),
        "{}",
        g.out
    );
}

#[test]
fn batch_runs_in_the_callers_cwd_with_its_env() {
    let g = guest();
    assert_eq!(
        g.out.section("cwd").trim(),
        integration::workspace_root().display().to_string()
    );
    assert_eq!(g.out.section("env"), "value with spaces 'and quotes'\n");
}

#[test]
fn exit_status_stdout_and_stderr_come_back_separately() {
    let g = guest();
    assert_eq!(g.out.status, GUEST_STATUS, "{}", g.out);
    assert!(!g.out.success());
    assert_eq!(g.out.stderr, "to-stderr\n", "{}", g.out);
    assert!(!g.out.stdout.contains("to-stderr"), "{}", g.out);
}

#[test]
fn guest_can_create_namespaces() {
    let g = guest();
    assert_eq!(
        g.out.section("namespaces"),
        "inner\n0\npid 1\n",
        "{}",
        g.out
    );
}

#[test]
fn guest_can_mount_overlays_on_its_tmp() {
    let g = guest();
    assert_eq!(
        g.out.section("overlay"),
        "lower\ng\nunmounted\n",
        "{}",
        g.out
    );
}

#[test]
fn guest_can_add_a_user_without_touching_the_host() {
    let g = guest();
    assert_eq!(
        g.out.section("useradd"),
        "harnessuser:/home/harnessuser\nhome\n",
        "{}",
        g.out
    );
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    assert!(
        !passwd.contains("harnessuser"),
        "useradd in the guest reached the host"
    );
}

#[test]
fn guest_writes_to_the_host_root_stay_in_the_guest() {
    let g = guest();
    assert_eq!(g.out.section("host_root_write"), "guest\n", "{}", g.out);
    assert!(
        !Path::new(HOST_ROOT_MARKER).exists(),
        "{HOST_ROOT_MARKER} written in the guest appeared on the host"
    );
}

#[test]
fn shared_directory_is_read_write_at_its_host_path() {
    let g = guest();
    assert_eq!(g.out.section("share"), "from-host\nwritten\n", "{}", g.out);
    assert_eq!(g.shared_back.as_deref(), Some("from-guest\n"));
}

/// A batch sleeping 600 s under `vm` (whose timeout is `timeout`) is killed at about that timeout,
/// keeps what it printed, and leaves no process behind.
fn assert_timed_out(vm: Vm, timeout: Duration) {
    let err = vm
        .timeout(timeout)
        .run("echo started; sleep 600; echo never")
        .expect_err("a batch sleeping 600 s must hit its timeout");
    // run.sh's own time: the wait for another test's VM to finish is not the timeout's.
    let elapsed = match &err {
        VmError::Timeout {
            job_dir,
            stdout,
            ran,
            ..
        } => {
            assert_eq!(stdout, "started\n", "{err}");
            let left = processes_mentioning(&job_dir.display().to_string());
            assert!(left.is_empty(), "processes left behind: {left:?}");
            *ran
        }
        other => panic!("expected a timeout, got: {other}"),
    };
    assert!(
        elapsed >= timeout - Duration::from_secs(1) && elapsed < timeout + Duration::from_secs(30),
        "timed out after {elapsed:?}, not at ~{timeout:?}"
    );
}

#[test]
fn timeout_kills_the_vm_and_keeps_partial_output() {
    assert_timed_out(Vm::new(), Duration::from_secs(30));
}

#[test]
fn qemu_dies_with_a_killed_run_script() {
    let out_dir = tempfile::Builder::new()
        .prefix("vm-harness-kill-")
        .tempdir()
        .unwrap();
    let job = out_dir.path().join("job");
    let job_str = job.display().to_string();
    let child = Command::new("bash")
        .arg(vm::run_script())
        .args([
            "--timeout",
            "300",
            "--output-dir",
            &job_str,
            "--",
            "sleep",
            "600",
        ])
        .current_dir(integration::workspace_root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnPanic(child);
    let qemu_running = || {
        processes_mentioning(&job_str)
            .iter()
            .any(|p| p.contains("qemu-system"))
    };
    wait_for("qemu to start", Duration::from_secs(60), qemu_running);
    // SIGKILL: run.sh gets no chance to clean up; qemu's parent-death signal must end it.
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    wait_for("qemu to die with run.sh", Duration::from_secs(10), || {
        processes_mentioning(&job_str).is_empty()
    });
}

#[test]
fn run_script_by_hand_prints_output_and_passes_the_exit_status() {
    // TMPDIR: run.sh's job dir goes there, so the test can see it is removed afterwards.
    let tmp = tempfile::tempdir().unwrap();
    let out = run(Command::new("bash")
        .arg(vm::run_script())
        .args([
            "--timeout",
            "120",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ])
        .current_dir(integration::workspace_root())
        .env("TMPDIR", tmp.path()));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(integration::stdout(&out), "out\n");
    assert_eq!(stderr(&out), "err\n");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "run.sh left {left:?} behind");
}

/// Set to a marker when this test binary runs as the helper of
/// `a_dying_test_process_leaves_no_vm_behind`.
const HELPER_ENV: &str = "VM_HARNESS_HELPER_MARKER";

#[test]
#[ignore = "helper process of a_dying_test_process_leaves_no_vm_behind, run by it"]
fn helper_boots_a_vm_and_sleeps() {
    let marker =
        std::env::var(HELPER_ENV).expect("only run by a_dying_test_process_leaves_no_vm_behind");
    let _ = Vm::new()
        .env("MARKER", marker)
        .timeout(Duration::from_secs(300))
        .run("sleep 600");
}

/// The pid of the first process whose parent is `ppid` and whose command line contains `needle`.
fn child_mentioning(ppid: &str, needle: &str) -> Option<String> {
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        let parent = status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .map(str::trim);
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if parent == Some(ppid) && String::from_utf8_lossy(&cmdline).contains(needle) {
            return Some(pid);
        }
    }
    None
}

fn alive(pid: &str) -> bool {
    // A zombie has an empty cmdline; it is gone for our purposes.
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
}

#[test]
fn a_dying_test_process_leaves_no_vm_behind() {
    let marker = integration::unique_id("vm-harness-helper");
    let helper = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "helper_boots_a_vm_and_sleeps"])
        .env(HELPER_ENV, &marker)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut helper = KillOnPanic(helper);
    let mut run_sh = None;
    wait_for("the helper's run.sh", Duration::from_secs(60), || {
        run_sh = processes_mentioning(&format!("MARKER={marker}"))
            .first()
            .map(|p| p.split(':').next().unwrap().to_string());
        run_sh.is_some()
    });
    let run_sh = run_sh.unwrap();
    let mut qemu = None;
    wait_for("the helper's qemu", Duration::from_secs(60), || {
        qemu = child_mentioning(&run_sh, "qemu-system");
        qemu.is_some()
    });
    let qemu = qemu.unwrap();
    // The helper's temp dir (the parent of run.sh's --output-dir), which its death leaves.
    let raw = std::fs::read(format!("/proc/{run_sh}/cmdline")).unwrap();
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let job_dir = args
        .iter()
        .position(|a| a == "--output-dir")
        .map(|i| Path::new(&args[i + 1]).to_path_buf())
        .expect("run.sh has --output-dir");
    let helper_tmp = job_dir.parent().unwrap().to_path_buf();
    assert!(
        helper_tmp
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("gruntime-vm-"),
        "unexpected job dir {}",
        job_dir.display()
    );
    // SIGKILL: no unwinding, no Drop; only the parent-death signals can clean up.
    helper.0.kill().unwrap();
    helper.0.wait().unwrap();
    let died = std::panic::catch_unwind(|| {
        wait_for(
            "run.sh and qemu to die with the test process",
            Duration::from_secs(10),
            || !alive(&run_sh) && !alive(&qemu),
        )
    });
    if died.is_err() {
        // Do not leave the VM this test found running.
        for pid in [&run_sh, &qemu] {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid.parse().unwrap()),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    std::fs::remove_dir_all(&helper_tmp).unwrap();
    if let Err(panic) = died {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn missing_kernel_fails_loudly() {
    let out = run(Command::new("bash")
        .arg(vm::run_script())
        .args(["--", "true"])
        .env("GRUNTIME_VM_KERNEL", "/nonexistent/vmlinuz-0.0"));
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("GRUNTIME_VM_KERNEL=/nonexistent/vmlinuz-0.0: no such readable kernel image"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn missing_qemu_fails_loudly() {
    let out = run(Command::new("bash")
        .arg(vm::run_script())
        .args(["--", "true"])
        .env("GRUNTIME_VM_QEMU", "/nonexistent/qemu-system-x86_64"));
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("/nonexistent/qemu-system-x86_64 not found: apt-get install qemu-system-x86"),
        "{}",
        stderr(&out)
    );
}

/// One boot of the systemd guest for its checks; each `== NAME` section is one check's output.
static SYSTEMD_GUEST: LazyLock<Result<VmOutput, String>> = LazyLock::new(|| {
    let script = r#"
section() { echo "== $1"; }
section state; systemctl is-system-running
section failed; systemctl list-units --failed --no-legend --plain
section pid1; readlink /proc/1/exe; cat /proc/1/comm
section job_cgroup; cat /proc/self/cgroup
section cgroup_fs_types; awk '$3 ~ /cgroup/ {print $3}' /proc/mounts
section cgroup_controllers; cat /sys/fs/cgroup/cgroup.controllers
section bus
test -S /run/dbus/system_bus_socket && echo socket
busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus GetNameOwner s org.freedesktop.systemd1 >/dev/null && echo systemd-on-the-bus
section scope
systemd-run --quiet --scope --unit harness-scope -p MemoryMax=33554432 sh -c 'cat /proc/self/cgroup; cat /sys/fs/cgroup/system.slice/harness-scope.scope/memory.max' 2>&1
echo "rc=$?"
systemd-run --quiet --scope true; echo "true-rc=$?"
section masked; systemctl is-enabled docker.socket containerd.service 2>&1; systemctl is-active docker.socket containerd.service getty.target 2>&1
section cwd; pwd
section env; echo "$HARNESS_VALUE"
echo to-stderr >&2
exit 42
"#;
    Vm::systemd()
        .env("HARNESS_VALUE", "value with spaces 'and quotes'")
        .timeout(Duration::from_secs(300))
        .run(script)
        .map_err(|e| e.to_string())
});

fn systemd_guest() -> &'static VmOutput {
    match &*SYSTEMD_GUEST {
        Ok(out) => out,
        Err(e) => panic!("the systemd guest's batch failed: {e}"),
    }
}

#[test]
fn systemd_guest_has_finished_booting_when_the_batch_runs() {
    let out = systemd_guest();
    let state = out.section("state");
    assert!(
        state == "running\n" || state == "degraded\n",
        "is-system-running says {state:?}; failed units: {}\n{out}",
        out.section("failed")
    );
}

#[test]
fn systemd_guest_runs_systemd_as_pid_1() {
    let out = systemd_guest();
    assert_eq!(
        out.section("pid1"),
        "/usr/lib/systemd/systemd\nsystemd\n",
        "{out}"
    );
    // The batch is a service of that systemd, not a child of an init script.
    assert_eq!(
        out.section("job_cgroup"),
        "0::/system.slice/gruntime-vm-job.service\n",
        "{out}"
    );
}

#[test]
fn systemd_guest_is_pure_cgroup_v2_managed_by_systemd() {
    let out = systemd_guest();
    assert_eq!(out.section("cgroup_fs_types"), "cgroup2\n", "{out}");
    let controllers = out.section("cgroup_controllers");
    for c in ["cpu", "io", "memory", "pids", "cpuset"] {
        assert!(
            controllers.split_whitespace().any(|x| x == c),
            "controller {c} missing: {out}"
        );
    }
}

#[test]
fn systemd_guest_has_the_system_bus_with_systemd_on_it() {
    let out = systemd_guest();
    assert_eq!(out.section("bus"), "socket\nsystemd-on-the-bus\n", "{out}");
}

#[test]
fn systemd_run_scope_works_in_the_systemd_guest() {
    let out = systemd_guest();
    let scope = out.section("scope");
    assert!(
        scope.contains("0::/system.slice/harness-scope.scope\n33554432\nrc=0\n"),
        "{out}"
    );
    assert!(scope.contains("true-rc=0\n"), "{out}");
}

#[test]
fn systemd_guest_starts_no_container_engine_of_its_own() {
    let out = systemd_guest();
    assert_eq!(
        out.section("masked"),
        "masked\nmasked\ninactive\ninactive\ninactive\n",
        "{out}"
    );
}

#[test]
fn systemd_guest_returns_exit_status_stdout_stderr_cwd_and_env_as_the_busybox_guest() {
    let out = systemd_guest();
    assert_eq!(out.status, 42, "{out}");
    assert_eq!(out.stderr, "to-stderr\n", "{out}");
    assert!(!out.stdout.contains("to-stderr"), "{out}");
    assert_eq!(
        out.section("cwd").trim(),
        integration::workspace_root().display().to_string()
    );
    assert_eq!(out.section("env"), "value with spaces 'and quotes'\n");
}

#[test]
fn systemd_guest_timeout_kills_the_vm_and_keeps_partial_output() {
    // Long enough for the boot on a busy host (~20 s idle under TCG), so `started` is printed.
    assert_timed_out(Vm::new().init(Init::Systemd), Duration::from_secs(90));
}

#[test]
fn bad_options_are_rejected_before_booting() {
    for (args, reason) in [
        (
            &["--timeout", "soon", "--", "true"][..],
            "--timeout soon: not a positive number of seconds",
        ),
        (
            &["--share", "relative/dir", "--", "true"],
            "--share relative/dir: not an absolute path",
        ),
        (
            &["--env", "1BAD=x", "--", "true"],
            "--env 1BAD=x: not NAME=VALUE",
        ),
        (
            &["--init", "openrc", "--", "true"],
            "--init openrc: not busybox or systemd",
        ),
    ] {
        let out = run(Command::new("bash").arg(vm::run_script()).args(args));
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        assert!(stderr(&out).contains(reason), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn a_cwd_at_a_tmpfs_mount_point_keeps_the_guests_own_tmpfs() {
    // Sharing /run itself would hide the job share at /run/vm, and an overlay on /tmp could not
    // be an overlay's upper layer in the guest.
    let out = Vm::new()
        .cwd("/run")
        .timeout(Duration::from_secs(180))
        .run("pwd; findmnt -n -o FSTYPE /run; findmnt -n -o FSTYPE /tmp")
        .unwrap_or_else(|e| panic!("VM: {e}"));
    assert_eq!(out.status, 0, "{out}");
    assert_eq!(out.stdout, "/run\ntmpfs\ntmpfs\n", "{out}");
}

#[test]
fn invisible_cwd_is_a_clear_guest_error() {
    // Host directories under the guest's tmpfs are shared on their own now; a host process's
    // /proc directory is one the guest cannot have: its processes are few, their pids small.
    let mut child = Command::new("sleep").arg("300").spawn().unwrap();
    while child.id() < 5000 {
        child.kill().unwrap();
        child.wait().unwrap();
        child = Command::new("sleep").arg("300").spawn().unwrap();
    }
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let child = Reap(child);
    let hidden = PathBuf::from(format!("/proc/{}", child.0.id()));
    let err = Vm::new()
        .cwd(&hidden)
        .timeout(Duration::from_secs(120))
        .run("true")
        .expect_err("a cwd hidden from the guest must be an error");
    match &err {
        VmError::Harness { reason, .. } => assert!(
            reason.contains(&format!(
                "the working directory {} is not visible in the guest",
                hidden.display()
            )),
            "{err}"
        ),
        other => panic!("expected a harness error, got: {other}"),
    }
}

/// What the kernel's watchdog prints when a CPU is stuck; the guest writes it to /dev/kmsg at
/// KERN_EMERG so it reaches the console exactly as a real report would.
fn fake_lockup(secs: u32) -> String {
    format!("echo '<0>watchdog: BUG: soft lockup - CPU#1 stuck for {secs}s! [fake:1]' >/dev/kmsg")
}

#[test]
fn a_guest_kernel_lockup_ends_the_vm_without_waiting_for_the_timeout() {
    // A 23 s report is the watchdog's first, which a busy host can cause without a lockup: the
    // batch goes on (the harness looks every 5 s, hence the sleep). A 61 s one ends it.
    let script = format!(
        "{}; sleep 7; echo survived; {}; sleep 600; echo never",
        fake_lockup(23),
        fake_lockup(61)
    );
    let err = Vm::new()
        .timeout(Duration::from_secs(400))
        .run(&script)
        .expect_err("a batch whose kernel locks up must fail");
    match &err {
        VmError::GuestLockup {
            line,
            stdout,
            console,
            ..
        } => {
            assert!(line.contains("stuck for 61s! [fake:1]"), "{err}");
            assert_eq!(stdout, "survived\n", "{err}");
            assert!(console.contains("stuck for 23s"), "{err}");
        }
        other => panic!("expected a guest lockup, got: {other}"),
    }
}

#[test]
fn a_batch_that_may_run_twice_is_booted_again_after_a_lockup() {
    let shared = tempfile::Builder::new()
        .prefix("vm-harness-lockup-")
        .tempdir()
        .unwrap();
    let marker = shared.path().join("first-boot");
    let script = format!(
        "if [ ! -e {m} ]; then touch {m}; echo first; {}; sleep 600; fi; echo second",
        fake_lockup(75),
        m = marker.display()
    );
    let out = Vm::new()
        .share(shared.path())
        .timeout(Duration::from_secs(400))
        .retry_on_lockup(1)
        .run(&script)
        .unwrap_or_else(|e| panic!("the second boot must run the batch: {e}"));
    assert_eq!(out.status, 0, "{out}");
    assert_eq!(out.stdout, "second\n", "{out}");
    assert!(marker.exists(), "the first boot never ran");

    // Without retries the same lockup is the batch's outcome.
    std::fs::remove_file(&marker).unwrap();
    let err = Vm::new()
        .share(shared.path())
        .timeout(Duration::from_secs(400))
        .run(&script)
        .expect_err("no retry: the lockup is the outcome");
    assert!(matches!(err, VmError::GuestLockup { .. }), "{err}");
}
