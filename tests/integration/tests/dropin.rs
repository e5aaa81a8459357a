//! Drop-in proof (issue 7): containerd 1.6 (ctr + containerd-shim-runc-v2) and podman 4.3 (+ conmon)
//! drive gruntime exactly as they drive runc, in the cgroup-v2 VM. Every scenario runs against
//! gruntime and, as the control, Debian's runc (`<scenario>::runc`): a scenario failing only for
//! gruntime is ours.
//!
//! One VM boot per client runs all its scenarios for both runtimes (tests/integration/dropin/*.sh);
//! the tests share that batch's output and each checks one section. Needs `cargo build --workspace`
//! and the apt packages containerd, podman, conmon, runc, umoci, qemu-system-x86, linux-image-amd64.

use integration::dropin::{calls, scenario, section, Client, Runtime, Scenario};

/// `name::gruntime` and `name::runc`, each running `$check(Runtime)`.
macro_rules! both_runtimes {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn gruntime() {
                ($check)(Runtime::Gruntime)
            }
            #[test]
            fn runc() {
                ($check)(Runtime::Runc)
            }
        }
    };
}

fn ctr(rt: Runtime, name: &str) -> Scenario {
    scenario(Client::Containerd, rt, name)
}

fn podman(rt: Runtime, name: &str) -> Scenario {
    scenario(Client::Podman, rt, name)
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
    section(Client::Containerd, "import").assert_ok();
}

both_runtimes!(
    /// `ctr run --rm --runc-binary <runtime path> IMG ID echo hi`.
    containerd_run_rm_echo,
    |rt| {
        let s = ctr(rt, "echo");
        s.assert_ok();
        assert_line(&s, "hi");
    }
);

both_runtimes!(
    /// `ctr run --memory-limit 64 MiB`: the container sees the limit in its own cgroup.
    containerd_memory_limit_seen_inside,
    |rt| {
        let s = ctr(rt, "memory-limit");
        s.assert_ok();
        assert_value(&s, "memory.max", "67108864");
    }
);

both_runtimes!(
    /// `ctr run -d`: a detached task, left running for the next scenarios.
    containerd_run_detached,
    |rt| {
        let s = ctr(rt, "run-detached");
        s.assert_ok();
        assert_value(&s, "status", "RUNNING");
    }
);

both_runtimes!(
    /// `ctr task exec` into the detached task: same pid namespace (pid 1 is its sleep).
    containerd_task_exec,
    |rt| {
        let s = ctr(rt, "task-exec");
        s.assert_ok();
        assert_line(&s, "from-exec");
        assert_value(&s, "pid1", "sleep");
    }
);

both_runtimes!(
    /// `ctr task ps` (the shim's `ps --format json`) lists the task's init.
    containerd_task_ps,
    |rt| {
        let s = ctr(rt, "task-ps");
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

both_runtimes!(
    /// `ctr task pause`: PAUSED, and the container's cgroup is frozen.
    containerd_task_pause,
    |rt| {
        let s = ctr(rt, "pause");
        s.assert_ok();
        assert_value(&s, "status", "PAUSED");
        assert_value(&s, "cgroup-frozen", "frozen 1");
    }
);

both_runtimes!(
    /// `ctr task resume`: RUNNING again, cgroup thawed.
    containerd_task_resume,
    |rt| {
        let s = ctr(rt, "resume");
        s.assert_ok();
        assert_value(&s, "status", "RUNNING");
        assert_value(&s, "cgroup-frozen", "frozen 0");
    }
);

both_runtimes!(
    /// `ctr task kill --signal SIGKILL`: the task stops.
    containerd_task_kill,
    |rt| {
        let s = ctr(rt, "kill");
        s.assert_ok();
        assert_value(&s, "status", "STOPPED");
    }
);

both_runtimes!(
    /// `ctr task delete` + `ctr container delete`: nothing left, cgroup removed.
    containerd_task_delete,
    |rt| {
        let s = ctr(rt, "delete");
        s.assert_ok();
        assert_value(&s, "tasks-left", "0");
        assert_value(&s, "containers-left", "0");
        assert_value(&s, "cgroup-left", "no");
    }
);

both_runtimes!(
    /// `ctr run -t` (the shim's `--console-socket`): the container's stdin is a pty.
    containerd_run_tty,
    |rt| {
        let s = ctr(rt, "tty");
        s.assert_ok();
        assert!(s.text.contains("/dev/pts/"), "{s}");
        assert_line(&s, "stdin-is-a-tty");
    }
);

both_runtimes!(
    /// A command that does not exist: the runtime's error (from log.json) reaches the ctr user.
    containerd_error_reaches_user,
    |rt| assert_error_reaches_user(&ctr(rt, "error"))
);

both_runtimes!(
    /// What containerd-shim-runc-v2 sends, seen by a logging wrapper: the same for both runtimes.
    containerd_shim_calls,
    |rt| {
        let calls = calls(Client::Containerd, rt);
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
    section(Client::Podman, "import").assert_ok();
}

both_runtimes!(
    /// `podman --runtime <runtime path> run --rm IMG echo hi`.
    podman_run_rm_echo,
    |rt| {
        let s = podman(rt, "echo");
        s.assert_ok();
        assert_line(&s, "hi");
    }
);

both_runtimes!(
    /// `podman run -d`: running, left for exec/stop/rm.
    podman_run_detached,
    |rt| {
        let s = podman(rt, "run-detached");
        s.assert_ok();
        assert_value(&s, "status", "running");
    }
);

both_runtimes!(
    /// `podman exec` into the detached container: same pid namespace.
    podman_exec,
    |rt| {
        let s = podman(rt, "exec");
        s.assert_ok();
        assert_line(&s, "from-exec");
        assert_value(&s, "pid1", "sleep");
    }
);

both_runtimes!(
    /// `podman stop -t 1`: sleep (pid 1) ignores SIGTERM, so podman ends with SIGKILL; exited.
    podman_stop,
    |rt| {
        let s = podman(rt, "stop");
        s.assert_ok();
        assert_value(&s, "status", "exited");
    }
);

both_runtimes!(
    /// `podman rm`: the container is gone from `podman ps -a`.
    podman_rm,
    |rt| {
        let s = podman(rt, "rm");
        s.assert_ok();
        assert_value(&s, "containers-left", "0");
    }
);

both_runtimes!(
    /// `--memory 64m --pids-limit 50`: seen inside the container and in its cgroup files.
    podman_memory_and_pids_limits,
    |rt| {
        let s = podman(rt, "limits");
        s.assert_ok();
        assert_value(&s, "inside-memory.max", "67108864");
        assert_value(&s, "inside-pids.max", "50");
        assert_value(&s, "cgroup-memory.max", "67108864");
        assert_value(&s, "cgroup-pids.max", "50");
    }
);

both_runtimes!(
    /// `podman pause`: paused, cgroup frozen.
    podman_pause,
    |rt| {
        let s = podman(rt, "pause");
        s.assert_ok();
        assert_value(&s, "status", "paused");
        assert_value(&s, "cgroup-frozen", "frozen 1");
    }
);

both_runtimes!(
    /// `podman unpause`: running, thawed, and exec works again.
    podman_unpause,
    |rt| {
        let s = podman(rt, "unpause");
        s.assert_ok();
        assert_value(&s, "status", "running");
        assert_value(&s, "cgroup-frozen", "frozen 0");
        assert_line(&s, "alive-after-unpause");
    }
);

both_runtimes!(
    /// `podman run -t` (conmon's console socket): the container's stdin is a pty.
    podman_run_tty,
    |rt| {
        let s = podman(rt, "tty");
        s.assert_ok();
        assert!(s.text.contains("/dev/pts/"), "{s}");
        assert_line(&s, "stdin-is-a-tty");
    }
);

both_runtimes!(
    /// A command that does not exist: the runtime's error text reaches the podman user, and
    /// podman recognises it as "command not found" (exit 127, as `docker run` does).
    podman_error_reaches_user,
    |rt| {
        let s = podman(rt, "error");
        assert_error_reaches_user(&s);
        assert_eq!(s.rc, 127, "{s}");
    }
);

both_runtimes!(
    /// What podman and conmon send: never `--root`; the calls podman makes itself (kill, pause,
    /// resume, delete, state) with only XDG_RUNTIME_DIR in the environment; create and exec
    /// through conmon with `--log-format=json --log FILE` (runtime_supports_json).
    podman_calls,
    |rt| {
        let calls = calls(Client::Podman, rt);
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
                assert_eq!(
                    argv[..2],
                    ["--log-format=json".to_string(), "--log".to_string()],
                    "{argv:?}"
                );
            }
        }
    }
);
