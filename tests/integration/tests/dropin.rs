//! Drop-in proof (issues 7 and 14): containerd 1.6 (ctr + containerd-shim-runc-v2) and podman 4.3
//! (+ conmon) drive gruntime exactly as they drive runc, in the cgroup-v2 VM: with the cgroupfs
//! driver in the busybox-init guest, and with the systemd driver in the systemd guest (podman's
//! default `cgroup_manager`; the runc options {BinaryName, SystemdCgroup = true} of a kubeadm
//! node's CRI handler, with the kubelet's `<pod slice>:cri-containerd:<id>` cgroupsPath). Every
//! scenario runs against gruntime and, as the control, Debian's runc (`<scenario>::runc_*`): a
//! scenario failing only for gruntime is ours. Docker is in docker.rs.
//!
//! One VM boot per client and driver runs all its scenarios for both runtimes
//! (tests/integration/dropin/*.sh); the tests share that batch's output and each checks one
//! section. Needs `cargo build --workspace` and the apt packages containerd, podman, conmon, runc,
//! umoci, skopeo, qemu-system-x86, linux-image-amd64, systemd.

use integration::dropin::{calls, scenario, section, Client, Driver, Runtime, Scenario};
use integration::every_setup;

fn ctr(d: Driver, rt: Runtime, name: &str) -> Scenario {
    scenario(Client::Containerd, d, rt, name)
}

fn podman(d: Driver, rt: Runtime, name: &str) -> Scenario {
    scenario(Client::Podman, d, rt, name)
}

/// Under the systemd driver, the container's scope `<prefix>-<id>.scope` is active and is the
/// cgroup the container's processes are in.
fn assert_active_scope(s: &Scenario, prefix: &str) {
    let scope = s.expect_value("scope");
    assert!(
        scope.starts_with(&format!("{prefix}-")) && scope.ends_with(".scope"),
        "not a {prefix}-<id>.scope: {s}"
    );
    assert_value(s, "scope-active", "active");
    assert!(
        s.expect_value("cgroup-dir").ends_with(&format!("/{scope}")),
        "the container's cgroup is not its scope: {s}"
    );
}

fn assert_line(s: &Scenario, line: &str) {
    assert!(
        s.text.lines().any(|l| l.trim() == line),
        "no line `{line}` in {s}"
    );
}

fn assert_value(s: &Scenario, key: &str, want: &str) {
    assert_eq!(s.expect_value(key), want, "{key} in {s}");
}

/// The runtime's own reason for a failed start reaches the client's user: the path it could not
/// run, and why.
fn assert_error_reaches_user(s: &Scenario) {
    assert_ne!(s.rc, 0, "running /nonexistent succeeded: {s}");
    let text = s.text.to_lowercase();
    assert!(
        text.contains("/nonexistent"),
        "error does not name /nonexistent: {s}"
    );
    assert!(
        text.contains("no such file") || text.contains("not found"),
        "error does not say why: {s}"
    );
}

// ---------------------------------------------------------------- containerd

#[test]
fn containerd_imports_busybox_oci_archive() {
    for d in [Driver::Cgroupfs, Driver::Systemd] {
        section(Client::Containerd, d, "import").assert_ok();
    }
}

every_setup!(
    /// `ctr run --rm --runc-binary <runtime path> IMG ID echo hi`.
    containerd_run_rm_echo,
    |d, rt| {
        let s = ctr(d, rt, "echo");
        s.assert_ok();
        assert_line(&s, "hi");
    }
);

every_setup!(
    /// `ctr run --memory-limit 64 MiB`: the container sees the limit in its own cgroup.
    containerd_memory_limit_seen_inside,
    |d, rt| {
        let s = ctr(d, rt, "memory-limit");
        s.assert_ok();
        assert_value(&s, "memory.max", "67108864");
    }
);

every_setup!(
    /// `ctr run -d --memory-limit 64 MiB`: a detached task, left running for the next scenarios,
    /// with the limit in its cgroup. Under the systemd driver that cgroup is the active scope
    /// cri-containerd-<id>.scope in the pod's slice (nested under kubepods.slice as systemd names
    /// it), and systemd has the limit as the scope's MemoryMax.
    containerd_run_detached,
    |d, rt| {
        let s = ctr(d, rt, "run-detached");
        s.assert_ok();
        assert_value(&s, "status", "RUNNING");
        assert_value(&s, "cgroup-memory.max", "67108864");
        if d == Driver::Systemd {
            assert_active_scope(&s, "cri-containerd");
            assert_value(&s, "scope-slice", "kubepods-besteffort-pod0dr0p1n.slice");
            assert!(
                s.expect_value("cgroup-dir").starts_with(
                    "/sys/fs/cgroup/kubepods.slice/kubepods-besteffort.slice/\
                     kubepods-besteffort-pod0dr0p1n.slice/"
                ),
                "{s}"
            );
            assert_value(&s, "MemoryMax", "67108864");
        }
    }
);

every_setup!(
    /// `ctr task exec` into the detached task: same pid namespace (pid 1 is its sleep).
    containerd_task_exec,
    |d, rt| {
        let s = ctr(d, rt, "task-exec");
        s.assert_ok();
        assert_line(&s, "from-exec");
        assert_value(&s, "pid1", "sleep");
    }
);

every_setup!(
    /// `ctr task ps` (the shim's `ps --format json`) lists the task's init.
    containerd_task_ps,
    |d, rt| {
        let s = ctr(d, rt, "task-ps");
        s.assert_ok();
        let pid = s.expect_value("task-pid");
        assert!(!pid.is_empty(), "{s}");
        assert!(
            s.text
                .lines()
                .any(|l| l.split_whitespace().next() == Some(pid)),
            "task pid {pid} not listed: {s}"
        );
    }
);

every_setup!(
    /// `ctr task pause`: PAUSED, and the container's cgroup is frozen.
    containerd_task_pause,
    |d, rt| {
        let s = ctr(d, rt, "pause");
        s.assert_ok();
        assert_value(&s, "status", "PAUSED");
        assert_value(&s, "cgroup-frozen", "frozen 1");
    }
);

every_setup!(
    /// `ctr task resume`: RUNNING again, cgroup thawed.
    containerd_task_resume,
    |d, rt| {
        let s = ctr(d, rt, "resume");
        s.assert_ok();
        assert_value(&s, "status", "RUNNING");
        assert_value(&s, "cgroup-frozen", "frozen 0");
    }
);

every_setup!(
    /// `ctr task kill --signal SIGKILL`: the task stops.
    containerd_task_kill,
    |d, rt| {
        let s = ctr(d, rt, "kill");
        s.assert_ok();
        assert_value(&s, "status", "STOPPED");
    }
);

every_setup!(
    /// `ctr task delete` + `ctr container delete`: nothing left, cgroup removed (and under the
    /// systemd driver its scope).
    containerd_task_delete,
    |d, rt| {
        let s = ctr(d, rt, "delete");
        s.assert_ok();
        assert_value(&s, "tasks-left", "0");
        assert_value(&s, "containers-left", "0");
        assert_value(&s, "cgroup-left", "no");
        if d == Driver::Systemd {
            assert_value(&s, "scope-active", "inactive");
        }
    }
);

every_setup!(
    /// After every scenario: no cgroup left below ctr's namespace (cgroupfs), no cri-containerd
    /// scope nor failed unit (systemd).
    containerd_leaves_nothing_behind,
    |d, rt| {
        let s = ctr(d, rt, "leftovers");
        s.assert_ok();
        match d {
            Driver::Cgroupfs => assert_value(&s, "cgroups-left", "0"),
            Driver::Systemd => {
                assert_value(&s, "scopes-left", "0");
                assert_value(&s, "failed-units", "0");
            }
        }
    }
);

every_setup!(
    /// `ctr run -t` (the shim's `--console-socket`): the container's stdin is a pty.
    containerd_run_tty,
    |d, rt| {
        let s = ctr(d, rt, "tty");
        s.assert_ok();
        assert!(s.text.contains("/dev/pts/"), "{s}");
        assert_line(&s, "stdin-is-a-tty");
    }
);

every_setup!(
    /// A command that does not exist: the runtime's error (from log.json) reaches the ctr user.
    containerd_error_reaches_user,
    |d, rt| assert_error_reaches_user(&ctr(d, rt, "error"))
);

every_setup!(
    /// What containerd-shim-runc-v2 sends, seen by a logging wrapper: the same for both runtimes.
    containerd_shim_calls,
    |d, rt| {
        let calls = calls(Client::Containerd, d, rt);
        assert!(!calls.is_empty(), "no calls logged");
        let find = |sub: &str| -> Vec<&Vec<String>> {
            calls
                .iter()
                .map(|(argv, _)| argv)
                .filter(|argv| argv.iter().any(|a| a == sub))
                .collect()
        };
        let creates = find("create");
        assert!(!creates.is_empty(), "no create in {calls:?}");
        for argv in &creates {
            let at = |a: &str| argv.iter().position(|x| x == a);
            let sub = at("create").unwrap();
            for global in ["--root", "--log", "--log-format"] {
                let g = at(global).unwrap_or_else(|| panic!("create without {global}: {argv:?}"));
                assert!(g < sub, "{global} after the subcommand: {argv:?}");
            }
            assert!(argv[at("--log").unwrap() + 1].ends_with("/log.json"), "{argv:?}");
            assert_eq!(argv[at("--log-format").unwrap() + 1], "json", "{argv:?}");
            assert!(at("--bundle").is_some() && at("--pid-file").is_some(), "{argv:?}");
            // The shim's SystemdCgroup option, as the CRI handler's `SystemdCgroup = true` sets it.
            match d {
                Driver::Cgroupfs => assert!(at("--systemd-cgroup").is_none(), "{argv:?}"),
                Driver::Systemd => {
                    assert!(at("--systemd-cgroup").is_some_and(|g| g < sub), "{argv:?}")
                }
            }
        }
        assert!(
            creates.iter().any(|a| a.iter().any(|x| x == "--console-socket")),
            "no create with --console-socket (ctr run -t): {creates:?}"
        );
        for sub in ["start", "kill", "delete", "pause", "resume"] {
            assert!(!find(sub).is_empty(), "no `{sub}` call in {calls:?}");
        }
        let execs = find("exec");
        assert!(
            execs.iter().any(|a| ["--process", "--detach", "--pid-file"]
                .iter()
                .all(|f| a.iter().any(|x| x == f))),
            "no `exec --process F --detach --pid-file P` in {execs:?}"
        );
        assert!(
            find("ps").iter().any(|a| a.windows(2).any(|w| w[0] == "--format" && w[1] == "json")),
            "no `ps --format json` in {calls:?}"
        );
    }
);

// ---------------------------------------------------------------- podman

#[test]
fn podman_imports_busybox_rootfs() {
    for d in [Driver::Cgroupfs, Driver::Systemd] {
        section(Client::Podman, d, "import").assert_ok();
    }
}

every_setup!(
    /// `podman --runtime <runtime path> run --rm IMG echo hi`.
    podman_run_rm_echo,
    |d, rt| {
        let s = podman(d, rt, "echo");
        s.assert_ok();
        assert_line(&s, "hi");
    }
);

every_setup!(
    /// `podman run -d`: running, left for exec/stop/rm.
    podman_run_detached,
    |d, rt| {
        let s = podman(d, rt, "run-detached");
        s.assert_ok();
        assert_value(&s, "status", "running");
    }
);

every_setup!(
    /// `podman exec` into the detached container: same pid namespace.
    podman_exec,
    |d, rt| {
        let s = podman(d, rt, "exec");
        s.assert_ok();
        assert_line(&s, "from-exec");
        assert_value(&s, "pid1", "sleep");
    }
);

every_setup!(
    /// `podman stop -t 1`: sleep (pid 1) ignores SIGTERM, so podman ends with SIGKILL; exited.
    podman_stop,
    |d, rt| {
        let s = podman(d, rt, "stop");
        s.assert_ok();
        assert_value(&s, "status", "exited");
    }
);

every_setup!(
    /// `podman rm`: the container is gone from `podman ps -a`.
    podman_rm,
    |d, rt| {
        let s = podman(d, rt, "rm");
        s.assert_ok();
        assert_value(&s, "containers-left", "0");
    }
);

every_setup!(
    /// `--memory 64m --pids-limit 50`: seen inside the container and in its cgroup files; under
    /// the systemd cgroup manager that cgroup is the active scope libpod-<id>.scope (in
    /// machine.slice, podman's default parent), and systemd has the limits as its properties.
    podman_memory_and_pids_limits,
    |d, rt| {
        let s = podman(d, rt, "limits");
        s.assert_ok();
        assert_value(&s, "inside-memory.max", "67108864");
        assert_value(&s, "inside-pids.max", "50");
        assert_value(&s, "cgroup-memory.max", "67108864");
        assert_value(&s, "cgroup-pids.max", "50");
        if d == Driver::Systemd {
            assert_active_scope(&s, "libpod");
            assert!(
                s.expect_value("cgroup-dir").starts_with("/sys/fs/cgroup/machine.slice/libpod-"),
                "{s}"
            );
            assert_value(&s, "MemoryMax", "67108864");
            assert_value(&s, "TasksMax", "50");
        }
    }
);

every_setup!(
    /// `podman rm -f` of the limited container: its cgroup is gone, and under the systemd cgroup
    /// manager so is its scope.
    podman_rm_leaves_no_cgroup_or_scope,
    |d, rt| {
        let s = podman(d, rt, "limits-removed");
        s.assert_ok();
        assert_value(&s, "cgroup-left", "no");
        if d == Driver::Systemd {
            assert_value(&s, "scope-active", "inactive");
        }
    }
);

every_setup!(
    /// After every scenario: no container; under systemd no libpod scope nor failed unit.
    podman_leaves_nothing_behind,
    |d, rt| {
        let s = podman(d, rt, "leftovers");
        s.assert_ok();
        assert_value(&s, "containers-left", "0");
        if d == Driver::Systemd {
            assert_value(&s, "scopes-left", "0");
            assert_value(&s, "failed-units", "0");
        }
    }
);

every_setup!(
    /// `podman pause`: paused, cgroup frozen.
    podman_pause,
    |d, rt| {
        let s = podman(d, rt, "pause");
        s.assert_ok();
        assert_value(&s, "status", "paused");
        assert_value(&s, "cgroup-frozen", "frozen 1");
    }
);

every_setup!(
    /// `podman unpause`: running, thawed, and exec works again.
    podman_unpause,
    |d, rt| {
        let s = podman(d, rt, "unpause");
        s.assert_ok();
        assert_value(&s, "status", "running");
        assert_value(&s, "cgroup-frozen", "frozen 0");
        assert_line(&s, "alive-after-unpause");
    }
);

every_setup!(
    /// `podman run -t` (conmon's console socket): the container's stdin is a pty.
    podman_run_tty,
    |d, rt| {
        let s = podman(d, rt, "tty");
        s.assert_ok();
        assert!(s.text.contains("/dev/pts/"), "{s}");
        assert_line(&s, "stdin-is-a-tty");
    }
);

every_setup!(
    /// A command that does not exist: the runtime's error text reaches the podman user, and
    /// podman recognises it as "command not found" (exit 127, as `docker run` does).
    podman_error_reaches_user,
    |d, rt| {
        let s = podman(d, rt, "error");
        assert_error_reaches_user(&s);
        assert_eq!(s.rc, 127, "{s}");
    }
);

every_setup!(
    /// What podman and conmon send: never `--root`; the calls podman makes itself (kill, pause,
    /// resume, delete, state) with only XDG_RUNTIME_DIR in the environment; create and exec
    /// through conmon with `--log-format=json --log FILE` (runtime_supports_json).
    podman_calls,
    |d, rt| {
        let calls = calls(Client::Podman, d, rt);
        assert!(!calls.is_empty(), "no calls logged");
        let sub_of = |argv: &[String]| -> String {
            let mut it = argv.iter();
            while let Some(a) = it.next() {
                if a == "--log" {
                    it.next();
                } else if !a.starts_with('-') {
                    return a.clone();
                }
            }
            String::new()
        };
        for (argv, _) in &calls {
            assert!(!argv.iter().any(|a| a == "--root"), "--root passed: {argv:?}");
        }
        for sub in ["create", "start", "exec", "kill", "pause", "resume", "delete"] {
            assert!(
                calls.iter().any(|(argv, _)| sub_of(argv) == sub),
                "no `{sub}` call in {calls:?}"
            );
        }
        for (argv, env) in &calls {
            let sub = sub_of(argv);
            if ["kill", "pause", "resume", "delete", "state"].contains(&sub.as_str()) {
                // PWD is the logging wrapper's own shell's doing.
                let env: Vec<_> = env.iter().filter(|e| *e != "PWD").collect();
                assert_eq!(env, ["XDG_RUNTIME_DIR"], "environment of {argv:?}");
            }
            if sub == "create" || sub == "exec" {
                // The systemd cgroup manager's flag comes first, from podman's runtime flags.
                let globals = match argv.first().map(String::as_str) {
                    Some("--systemd-cgroup") => &argv[1..],
                    _ => &argv[..],
                };
                if sub == "create" {
                    assert_eq!(globals.len() < argv.len(), d == Driver::Systemd, "{argv:?}");
                }
                assert_eq!(
                    globals[..2],
                    ["--log-format=json".to_string(), "--log".to_string()],
                    "{argv:?}"
                );
            }
        }
    }
);
