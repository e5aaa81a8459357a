//! Docker Engine as a drop-in client (issue 14): Debian's dockerd 20.10, with its own containerd
//! and runc shim, runs containers with `--runtime gruntime` (registered in daemon.json's
//! `runtimes`) exactly as with its default runc, in the cgroup-v2 VM: with
//! `native.cgroupdriver=cgroupfs` in the busybox-init guest and with `native.cgroupdriver=systemd`
//! (Docker's default on a systemd host with cgroup v2) in the systemd guest. Every scenario runs
//! with gruntime and, as the control, runc, in the same boot.
//!
//! One VM boot per driver runs all scenarios (tests/integration/dropin/docker.sh); each test
//! checks one section. Needs `cargo build --workspace` and the apt packages docker.io, runc,
//! umoci, skopeo, qemu-system-x86, linux-image-amd64, systemd.

use integration::dropin::{calls, scenario, section, Client, Driver, Runtime, Scenario};
use integration::every_setup;

fn docker(d: Driver, rt: Runtime, name: &str) -> Scenario {
    scenario(Client::Docker, d, rt, name)
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

/// The systemd driver's unit for a container is `docker-<full id>.scope`.
fn assert_docker_scope(s: &Scenario) {
    let scope = s.expect_value("scope");
    assert!(
        scope.starts_with("docker-") && scope.ends_with(".scope") && scope.len() == 7 + 64 + 6,
        "not docker-<id>.scope: {s}"
    );
}

#[test]
fn dockerd_runs_with_the_cgroupfs_driver_on_cgroup_v2_and_lists_gruntime() {
    let s = section(Client::Docker, Driver::Cgroupfs, "info");
    s.assert_ok();
    assert_value(&s, "cgroup-driver", "cgroupfs");
    assert_value(&s, "cgroup-version", "2");
    let runtimes: Vec<&str> = s.expect_value("runtimes").split_whitespace().collect();
    assert!(
        runtimes.contains(&"gruntime") && runtimes.contains(&"runc"),
        "{s}"
    );
}

#[test]
fn dockerd_runs_with_the_systemd_driver_on_cgroup_v2_and_lists_gruntime() {
    let s = section(Client::Docker, Driver::Systemd, "info");
    s.assert_ok();
    assert_value(&s, "cgroup-driver", "systemd");
    assert_value(&s, "cgroup-version", "2");
    let runtimes: Vec<&str> = s.expect_value("runtimes").split_whitespace().collect();
    assert!(
        runtimes.contains(&"gruntime") && runtimes.contains(&"runc"),
        "{s}"
    );
}

#[test]
fn docker_loads_the_busybox_archive_made_offline() {
    for d in [Driver::Cgroupfs, Driver::Systemd] {
        let s = section(Client::Docker, d, "load");
        s.assert_ok();
        assert_line(&s, "Loaded image: localhost/busybox:latest");
    }
}

every_setup!(
    /// `docker run --rm IMG echo hi` prints hi.
    docker_run_rm_prints_the_containers_output,
    |d, rt| {
        let s = docker(d, rt, "echo");
        s.assert_ok();
        assert_line(&s, "hi");
    }
);

every_setup!(
    /// `docker run -d`: the container runs, with the runtime it was asked for.
    docker_run_detached_keeps_the_container_running,
    |d, rt: Runtime| {
        let s = docker(d, rt, "run-detached");
        s.assert_ok();
        assert_value(&s, "status", "running");
        assert_value(&s, "runtime", rt.name());
    }
);

every_setup!(
    /// `docker exec` runs in the detached container's pid namespace (pid 1 is its sleep).
    docker_exec_joins_the_running_container,
    |d, rt| {
        let s = docker(d, rt, "exec");
        s.assert_ok();
        assert_line(&s, "from-exec");
        assert_value(&s, "pid1", "sleep");
    }
);

every_setup!(
    /// `docker logs` shows what the detached container printed.
    docker_logs_shows_the_containers_output,
    |d, rt| {
        let s = docker(d, rt, "logs");
        s.assert_ok();
        assert_line(&s, "hello-from-log");
    }
);

every_setup!(
    /// `docker top` (the shim's `ps --format json`, then the host's ps) lists the container's sleep.
    docker_top_lists_the_containers_processes,
    |d, rt| {
        let s = docker(d, rt, "top");
        s.assert_ok();
        assert!(
            s.text.lines().any(|l| l.trim_end().ends_with("sleep 1000")),
            "{s}"
        );
    }
);

every_setup!(
    /// `docker stop -t 1`: sleep (pid 1) ignores SIGTERM, docker kills it; exited with 137.
    docker_stop_ends_the_container,
    |d, rt| {
        let s = docker(d, rt, "stop");
        s.assert_ok();
        assert_value(&s, "status", "exited");
        assert_value(&s, "exit-code", "137");
    }
);

every_setup!(
    /// `docker rm`: the container is gone from `docker ps -a`.
    docker_rm_removes_the_container,
    |d, rt| {
        let s = docker(d, rt, "rm");
        s.assert_ok();
        assert_value(&s, "containers-left", "0");
    }
);

every_setup!(
    /// `--memory 64m --cpus 0.5 --pids-limit 50`: seen inside the container and in its cgroup
    /// files; under the systemd driver the cgroup is the active scope docker-<id>.scope, with the
    /// limits as its properties.
    docker_memory_cpu_and_pids_limits_reach_the_cgroup,
    |d, rt| {
        let s = docker(d, rt, "limits");
        s.assert_ok();
        for (key, want) in [
            ("memory.max", "67108864"),
            ("cpu.max", "50000 100000"),
            ("pids.max", "50"),
        ] {
            assert_value(&s, &format!("inside-{key}"), want);
            assert_value(&s, &format!("cgroup-{key}"), want);
        }
        let dir = s.expect_value("cgroup-dir");
        match d {
            Driver::Cgroupfs => assert!(dir.starts_with("/sys/fs/cgroup/docker/"), "{s}"),
            Driver::Systemd => {
                assert_docker_scope(&s);
                let scope = s.expect_value("scope");
                assert_eq!(dir, format!("/sys/fs/cgroup/system.slice/{scope}"), "{s}");
                assert_value(&s, "scope-active", "active");
                assert_value(&s, "MemoryMax", "67108864");
                assert_value(&s, "TasksMax", "50");
                assert_value(&s, "CPUQuotaPerSecUSec", "500ms");
            }
        }
    }
);

every_setup!(
    /// `docker stats --no-stream` reads the container's cgroup: the memory limit is its total.
    docker_stats_shows_the_memory_limit,
    |d, rt| {
        let s = docker(d, rt, "stats");
        s.assert_ok();
        let usage = s.expect_value("mem-usage");
        assert!(usage.ends_with("/ 64MiB"), "{s}");
    }
);

every_setup!(
    /// `docker pause`: paused, cgroup frozen.
    docker_pause_freezes_the_cgroup,
    |d, rt| {
        let s = docker(d, rt, "pause");
        s.assert_ok();
        assert_value(&s, "status", "paused");
        assert_value(&s, "cgroup-frozen", "frozen 1");
    }
);

every_setup!(
    /// `docker unpause`: running, thawed, and exec works again.
    docker_unpause_thaws_the_cgroup,
    |d, rt| {
        let s = docker(d, rt, "unpause");
        s.assert_ok();
        assert_value(&s, "status", "running");
        assert_value(&s, "cgroup-frozen", "frozen 0");
        assert_line(&s, "alive-after-unpause");
    }
);

every_setup!(
    /// `docker rm -f` of the limited container: its cgroup is gone, and under the systemd driver
    /// so is its scope.
    docker_rm_leaves_no_cgroup_or_scope,
    |d, rt| {
        let s = docker(d, rt, "limits-removed");
        s.assert_ok();
        assert_value(&s, "cgroup-left", "no");
        if d == Driver::Systemd {
            assert_docker_scope(&s);
            assert_value(&s, "scope-active", "inactive");
        }
    }
);

every_setup!(
    /// `--restart on-failure:2` of a command exiting 3: started three times, then left exited.
    docker_restart_on_failure_restarts_twice,
    |d, rt| {
        let s = docker(d, rt, "restart");
        s.assert_ok();
        assert_value(&s, "restart-count", "2");
        assert_value(&s, "status", "exited");
        assert_value(&s, "exit-code", "3");
        assert_value(&s, "attempts", "3");
    }
);

every_setup!(
    /// `--init`: docker-init (tini) is pid 1 and the command its child.
    docker_init_runs_tini_as_pid_1,
    |d, rt| {
        let s = docker(d, rt, "init");
        s.assert_ok();
        assert_value(&s, "pid1", "docker-init");
        assert_value(&s, "self-pid-is-1", "no");
    }
);

every_setup!(
    /// `--read-only`: the root filesystem refuses writes.
    docker_read_only_root_refuses_writes,
    |d, rt| {
        let s = docker(d, rt, "read-only");
        s.assert_ok();
        assert_value(&s, "touch-rc", "1");
        assert!(s.text.contains("/x: Read-only file system"), "{s}");
    }
);

every_setup!(
    /// `--cap-drop ALL`: no capability left in any set.
    docker_cap_drop_all_leaves_no_capability,
    |d, rt| {
        let s = docker(d, rt, "cap-drop");
        s.assert_ok();
        for set in ["CapPrm", "CapEff", "CapBnd"] {
            assert_value(&s, set, "0000000000000000");
        }
    }
);

every_setup!(
    /// `--security-opt no-new-privileges`: the process has no_new_privs.
    docker_no_new_privileges_sets_the_flag,
    |d, rt| {
        let s = docker(d, rt, "no-new-privileges");
        s.assert_ok();
        assert_value(&s, "NoNewPrivs", "1");
    }
);

every_setup!(
    /// docker's default seccomp profile is in force (filter mode): `unshare -U`, which the kernel
    /// allows root but the profile denies without CAP_SYS_ADMIN, fails with EPERM, and works with
    /// `--security-opt seccomp=unconfined`.
    docker_default_seccomp_profile_is_enforced,
    |d, rt| {
        let s = docker(d, rt, "seccomp");
        s.assert_ok();
        assert_value(&s, "Seccomp", "2");
        assert_value(&s, "unshare-rc", "1");
        assert!(s.text.contains("Operation not permitted"), "{s}");
        assert_value(&s, "unconfined-unshare-rc", "0");
    }
);

every_setup!(
    /// `docker run -it` through a pty (`script`): the container's stdin is a terminal.
    docker_run_it_gives_the_container_a_tty,
    |d, rt| {
        let s = docker(d, rt, "tty");
        s.assert_ok();
        assert!(s.text.contains("/dev/pts/"), "{s}");
        assert_line(&s, "stdin-is-a-tty");
    }
);

every_setup!(
    /// A command that does not exist: the runtime's reason reaches the docker user, and docker
    /// recognises it as "command not found" (exit 127).
    docker_missing_command_fails_with_127_and_the_reason,
    |d, rt| {
        let s = docker(d, rt, "error");
        assert_eq!(s.rc, 127, "{s}");
        let text = s.text.to_lowercase();
        assert!(text.contains("/nonexistent"), "{s}");
        assert!(text.contains("no such file"), "{s}");
    }
);

every_setup!(
    /// After every scenario: no container, no cgroup below docker's parent (cgroupfs), and no
    /// docker scope nor failed unit (systemd).
    docker_leaves_nothing_behind,
    |d, rt| {
        let s = docker(d, rt, "leftovers");
        s.assert_ok();
        assert_value(&s, "containers-left", "0");
        match d {
            Driver::Cgroupfs => assert_value(&s, "cgroups-left", "0"),
            Driver::Systemd => {
                assert_value(&s, "scopes-left", "0");
                assert_value(&s, "failed-units", "0");
            }
        }
    }
);

/// What docker's shim sends gruntime: runc's global flags before the subcommand, docker's own
/// state root, and `--systemd-cgroup` exactly under the systemd driver.
fn check_docker_calls(d: Driver) {
    let calls = calls(Client::Docker, d, Runtime::Gruntime);
    let creates: Vec<&Vec<String>> = calls
        .iter()
        .map(|(argv, _)| argv)
        .filter(|argv| argv.iter().any(|a| a == "create"))
        .collect();
    assert!(!creates.is_empty(), "no create in {calls:?}");
    for argv in &creates {
        let at = |a: &str| argv.iter().position(|x| x == a);
        let sub = at("create").unwrap();
        let root = at("--root").unwrap_or_else(|| panic!("no --root: {argv:?}"));
        assert!(root < sub, "{argv:?}");
        assert!(
            argv[root + 1].starts_with("/var/run/docker/runtime-"),
            "{argv:?}"
        );
        match d {
            Driver::Cgroupfs => assert!(at("--systemd-cgroup").is_none(), "{argv:?}"),
            Driver::Systemd => {
                assert!(at("--systemd-cgroup").is_some_and(|g| g < sub), "{argv:?}")
            }
        }
    }
}

#[test]
fn docker_calls_gruntime_as_runc_under_cgroupfs() {
    check_docker_calls(Driver::Cgroupfs)
}

#[test]
fn docker_calls_gruntime_as_runc_with_systemd_cgroup_under_systemd() {
    check_docker_calls(Driver::Systemd)
}
