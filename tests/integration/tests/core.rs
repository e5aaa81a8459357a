//! gruntime core, black-box: real containers from a busybox bundle on this kernel, checked from inside.

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use integration::{stderr, stdout, unique_id, TestBundle};
use serde_json::json;

fn sh(script: &str) -> TestBundle {
    TestBundle::new(&["sh", "-c", script])
}

fn ok_run(b: &TestBundle) -> String {
    let id = unique_id("run");
    let out = b.run_container(&id);
    assert!(
        out.status.success(),
        "run failed: status {:?}, stderr: {}",
        out.status,
        stderr(&out)
    );
    assert!(
        b.listed().is_empty(),
        "run left state behind: {:?}",
        b.listed()
    );
    stdout(&out)
}

fn state(b: &TestBundle, id: &str) -> serde_json::Value {
    let out = b.gruntime(&["state", id]);
    assert!(out.status.success(), "state: {}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

fn wait_status(b: &TestBundle, id: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while state(b, id)["status"] != want {
        assert!(
            Instant::now() < deadline,
            "{id} never became {want}: {}",
            state(b, id)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_process_is_pid_1_with_the_configured_hostname() {
    let b = sh("echo pid=$$; hostname");
    b.edit(|c| c["hostname"] = "box1".into());
    let out = ok_run(&b);
    assert_eq!(out, "pid=1\nbox1\n");
}

/// runc and crun bring `lo` up in a network namespace of the container's own (a `podman run
/// --network none` container listens on 127.0.0.1); flags 0x9 = IFF_UP | IFF_LOOPBACK, 0x8 down.
#[test]
fn a_new_network_namespace_has_lo_up_as_with_runc() {
    let b = sh("cat /sys/class/net/lo/flags");
    b.edit(|c| {
        let ns = c["linux"]["namespaces"].as_array().unwrap();
        assert!(
            ns.iter()
                .any(|n| n["type"] == "network" && n.get("path").is_none()),
            "the test bundle has no network namespace of its own: {ns:?}"
        );
    });
    assert_eq!(ok_run(&b), "0x9\n");
}

#[test]
fn exit_status_of_the_container_is_the_exit_status_of_run() {
    let b = sh("exit 7");
    let out = b.run_container(&unique_id("exit"));
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    // Without a pid namespace the shell is not a pid-namespace init, so SIGKILL to itself is not ignored.
    let b = sh("kill -9 $$");
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "pid")
    });
    let out = b.run_container(&unique_id("sig"));
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
}

#[test]
fn after_pivot_root_only_the_containers_mounts_are_visible() {
    let b = sh("cat /proc/self/mountinfo");
    let out = ok_run(&b);
    let mounts: Vec<&str> = out
        .lines()
        .map(|l| l.split_whitespace().nth(4).unwrap())
        .collect();
    for want in [
        "/",
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
    ] {
        assert!(mounts.contains(&want), "{want} missing from {mounts:?}");
    }
    let host_only = ["/work", "/tmp", "/run", "/boot", "/home"];
    for m in &mounts {
        assert!(
            !host_only.iter().any(|h| m.starts_with(h)),
            "host mount {m} visible inside: {mounts:?}"
        );
    }
    assert!(mounts.len() < 30, "too many mounts: {mounts:?}");
}

#[test]
fn masked_paths_are_unreadable_and_readonly_paths_are_read_only() {
    let b = sh("wc -c < /proc/version; ls /proc/driver | wc -l; echo x > /proc/sys/kernel/domainname && echo writable || echo readonly");
    b.edit(|c| {
        c["linux"]["maskedPaths"] = json!(["/proc/version", "/proc/driver", "/does/not/exist"]);
        c["linux"]["readonlyPaths"] = json!(["/proc/sys"]);
    });
    let out = ok_run(&b);
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(lines, vec!["0", "0", "readonly"], "{out}");
}

#[test]
fn a_container_without_a_mount_namespace_runs_in_a_rootfs_that_has_no_proc() {
    // Joining the host's namespaces (runtime-tools' linux_ns_itype) leaves the init without /proc:
    // nothing before exec may depend on it.
    let b = sh("ls /proc | wc -l");
    b.edit(|c| {
        c.as_object_mut().unwrap().remove("hostname");
        c["linux"]["namespaces"] = json!([]);
        c["linux"]["maskedPaths"] = json!([]);
        c["linux"]["readonlyPaths"] = json!([]);
    });
    let out = ok_run(&b);
    assert_eq!(out.lines().next().map(str::trim), Some("0"), "{out}");
}

#[test]
fn a_seccomp_profile_that_denies_close_range_does_not_stop_the_container_from_starting() {
    // Without no_new_privs the filter goes in before the user switch, i.e. before gruntime's own last
    // steps: those must not need a syscall the profile may deny (runtime-tools' default profile does).
    // The last case has no /proc to list fds in either (no mount namespace).
    for (nnp, own_mountns) in [(false, true), (true, true), (false, false)] {
        let b = sh("echo started");
        b.edit(|c| {
            if !own_mountns {
                c.as_object_mut().unwrap().remove("hostname");
                c["linux"]["namespaces"] = json!([]);
                c["linux"]["maskedPaths"] = json!([]);
                c["linux"]["readonlyPaths"] = json!([]);
            }
            c["process"]["noNewPrivileges"] = nnp.into();
            c["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["close_range"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
            });
        });
        assert_eq!(
            ok_run(&b),
            "started\n",
            "noNewPrivileges {nnp}, mount namespace {own_mountns}"
        );
    }
}

#[test]
fn a_fifo_or_device_node_as_a_readonly_path_does_not_hang_create() {
    // Opening a FIFO blocks until a writer comes: nothing on the way may open the read-only path itself.
    let b = sh("echo started");
    nix::unistd::mkfifo(
        &b.rootfs().join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o666),
    )
    .unwrap();
    nix::sys::stat::mknod(
        &b.rootfs().join("chr"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        0,
    )
    .unwrap();
    b.edit(|c| c["linux"]["readonlyPaths"] = json!(["/fifo", "/chr"]));
    assert_eq!(ok_run(&b), "started\n");
}

#[test]
fn nested_readonly_paths_are_read_only_in_either_order() {
    for order in [["/ro", "/ro/sub"], ["/ro/sub", "/ro"]] {
        let b = sh("for f in /ro/x /ro/sub/y; do touch $f 2>/dev/null && echo $f-writable || echo $f-readonly; done");
        std::fs::create_dir_all(b.rootfs().join("ro/sub")).unwrap();
        b.edit(|c| c["linux"]["readonlyPaths"] = json!(order));
        let out = ok_run(&b);
        assert_eq!(out, "/ro/x-readonly\n/ro/sub/y-readonly\n", "{order:?}");
    }
}

#[test]
fn an_rshared_volume_propagates_mounts_both_ways_between_host_and_container() {
    // Kubernetes' Bidirectional volumes: the CRI asks for rootfsPropagation rshared and an rshared bind.
    // The "host" is a private mount namespace of this test, so nothing it mounts outlives it.
    let b = sh("mkdir -p /vol/in && mount -t tmpfs c /vol/in && touch /vol/ready; \
                i=0; while [ ! -e /vol/out/flag ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; \
                [ -e /vol/out/flag ] && echo container-sees-host-mount");
    let vol = b.path().join("vol");
    std::fs::create_dir(&vol).unwrap();
    b.edit(|c| {
        c["linux"]["rootfsPropagation"] = "rshared".into();
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/vol", "type": "bind", "source": vol, "options": ["rbind", "rshared"]
        }));
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push("CAP_SYS_ADMIN".into());
        }
    });
    let script = r#"set -e
        mount -t tmpfs vol "$VOL"; mount --make-shared "$VOL"; mkdir "$VOL/out"
        "$G" --root "$ROOT" run --bundle "$B" "$ID" > "$B/out.txt" 2>&1 &
        i=0; while [ ! -e "$VOL/ready" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
        grep -q " $VOL/in " /proc/self/mountinfo && echo host-sees-container-mount
        mount -t tmpfs h "$VOL/out"; touch "$VOL/out/flag"
        wait
        cat "$B/out.txt""#;
    let out = integration::run(
        std::process::Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", script])
            .env("VOL", &vol)
            .env("G", integration::gruntime_bin())
            .env("ROOT", b.root.path())
            .env("B", b.path())
            .env("ID", unique_id("rshared")),
    );
    let text = stdout(&out);
    assert!(
        text.contains("host-sees-container-mount"),
        "{text}{}",
        stderr(&out)
    );
    assert!(
        text.contains("container-sees-host-mount"),
        "{text}{}",
        stderr(&out)
    );
}

#[test]
fn the_containers_process_does_not_ignore_sigpipe_and_a_closed_stdout_ends_gruntime_quietly() {
    // grep is exec'd by sh: its SigIgn is what execve gave it (busybox sh itself ignores SIGQUIT).
    let b = sh("exec grep SigIgn /proc/self/status");
    let out = ok_run(&b);
    let mask = u64::from_str_radix(out.trim().trim_start_matches("SigIgn:").trim(), 16).unwrap();
    assert_eq!(
        mask & (1 << (libc::SIGPIPE - 1)),
        0,
        "SIGPIPE is ignored: {out}"
    );
    // `state ID | head -c1`: the reader goes away; gruntime must not panic about a broken pipe.
    let id = unique_id("pipe");
    let created = b.gruntime(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(created.status.success(), "{}", stderr(&created));
    let (reader, writer) = nix::unistd::pipe().unwrap();
    drop(reader);
    let mut cmd = b.cmd(&["state", &id]);
    cmd.stdout(std::process::Stdio::from(writer))
        .stderr(std::process::Stdio::piped());
    let out = cmd.output().unwrap();
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}", out.status);
    assert!(b.gruntime(&["delete", "--force", &id]).status.success());
}

#[test]
fn root_readonly_makes_the_rootfs_read_only() {
    let b = sh("touch /x 2>&1 || true; touch /dev/shm/ok && echo tmpfs-writable");
    b.edit(|c| c["root"]["readonly"] = true.into());
    let out = ok_run(&b);
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(out.contains("tmpfs-writable"), "{out}");
}

#[test]
fn capability_sets_are_as_configured() {
    let b = sh("grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status");
    b.edit(|c| {
        let set = json!(["CAP_CHOWN", "CAP_KILL"]);
        c["process"]["capabilities"] = json!({ "bounding": set, "effective": set, "permitted": set, "inheritable": [], "ambient": [] });
    });
    let out = ok_run(&b);
    // CAP_CHOWN = bit 0, CAP_KILL = bit 5.
    for l in [
        "CapPrm:\t0000000000000021",
        "CapEff:\t0000000000000021",
        "CapBnd:\t0000000000000021",
        "CapInh:\t0000000000000000",
    ] {
        assert!(out.contains(l), "missing {l:?} in {out}");
    }
}

#[test]
fn rlimits_are_applied() {
    let b = sh("ulimit -n; ulimit -c");
    b.edit(|c| {
        c["process"]["rlimits"] = json!([
            { "type": "RLIMIT_NOFILE", "hard": 777, "soft": 777 },
            { "type": "RLIMIT_CORE", "hard": 4096, "soft": 2048 }
        ])
    });
    let out = ok_run(&b);
    // busybox ulimit -c reports 512-byte blocks.
    assert_eq!(out, "777\n4\n");
}

#[test]
fn user_group_and_supplementary_groups_are_applied() {
    let b = sh("id -u; id -g; id -G; umask");
    b.edit(|c| {
        c["process"]["user"] =
            json!({ "uid": 1000, "gid": 1001, "additionalGids": [10, 20], "umask": 63 })
    });
    let out = ok_run(&b);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1000");
    assert_eq!(lines[1], "1001");
    let groups: Vec<&str> = lines[2].split_whitespace().collect();
    assert!(groups.contains(&"10") && groups.contains(&"20"), "{out}");
    assert_eq!(lines[3], "0077");
}

#[test]
fn a_user_namespace_gets_the_configured_maps() {
    let b = sh("cat /proc/self/uid_map /proc/self/gid_map; id -u");
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "type": "user" }));
        c["linux"]["uidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
        c["linux"]["gidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    });
    let out = ok_run(&b);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], vec!["0", "100000", "65536"], "{out}");
    assert_eq!(rows[1], vec!["0", "100000", "65536"], "{out}");
    assert_eq!(rows[2], vec!["0"]);
}

#[test]
fn lifecycle_created_running_stopped_with_kill_by_name_and_number() {
    let b = TestBundle::new(&["sleep", "1000"]);
    let id = unique_id("life");
    let pidfile = b.path().join("init.pid");
    let out = b.gruntime(&[
        "create",
        "--bundle",
        b.path().to_str().unwrap(),
        "--pid-file",
        pidfile.to_str().unwrap(),
        &id,
    ]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let st = state(&b, &id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["bundle"], b.path().to_str().unwrap());
    let pid = st["pid"].as_i64().unwrap();
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap().trim(),
        pid.to_string()
    );
    assert!(b.gruntime(&["start", &id]).status.success());
    assert_eq!(state(&b, &id)["status"], "running");
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(cmdline, "sleep\x001000\x00");

    let out = b.gruntime(&["delete", &id]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not stopped"), "{}", stderr(&out));
    assert_eq!(state(&b, &id)["status"], "running");

    let out = b.gruntime(&["kill", &id, "KILL"]);
    assert!(out.status.success(), "kill: {}", stderr(&out));
    wait_status(&b, &id, "stopped");
    assert_eq!(state(&b, &id)["pid"], 0);
    let out = b.gruntime(&["kill", &id, "9"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("container not running"),
        "{}",
        stderr(&out)
    );
    assert!(b.gruntime(&["delete", &id]).status.success());
    let out = b.gruntime(&["state", &id]);
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));

    // kill by number, SIG-prefixed name, and delete --force of a running container.
    // A pid-namespace init ignores signals it has no handler for, except SIGKILL: use it by number and name.
    for (n, sig) in [("2", "9"), ("3", "SIGKILL")] {
        let id = format!("{id}-{n}");
        assert!(b
            .gruntime(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id])
            .status
            .success());
        assert_eq!(state(&b, &id)["status"], "running");
        assert!(b.gruntime(&["kill", &id, sig]).status.success());
        wait_status(&b, &id, "stopped");
        assert!(b.gruntime(&["delete", &id]).status.success());
    }
    let id2 = format!("{id}-force");
    assert!(b
        .gruntime(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id2])
        .status
        .success());
    let out = b.gruntime(&["delete", "--force", &id2]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(b.listed().is_empty());
    assert!(b.leftover_processes().is_empty());
    assert!(b.leftover_mounts().is_empty());
}

#[test]
fn list_shows_containers_as_table_json_and_quiet() {
    let b = TestBundle::new(&["sleep", "1000"]);
    let id = unique_id("list");
    assert!(b
        .gruntime(&["create", "-b", b.path().to_str().unwrap(), &id])
        .status
        .success());
    let q = stdout(&b.gruntime(&["list", "-q"]));
    assert_eq!(q.trim(), id);
    let j: serde_json::Value =
        serde_json::from_str(&stdout(&b.gruntime(&["list", "--format", "json"]))).unwrap();
    assert_eq!(j[0]["id"], id.as_str());
    assert_eq!(j[0]["status"], "created");
    let t = stdout(&b.gruntime(&["list"]));
    assert!(
        t.starts_with("ID") && t.contains(&id) && t.contains("created"),
        "{t}"
    );
    // A created container can be deleted without --force (runc does the same).
    assert!(b.gruntime(&["delete", &id]).status.success());
    assert!(b.leftover_processes().is_empty());
}

#[test]
fn hooks_run_in_order_with_the_state_on_stdin() {
    let b = sh("echo user-process >> /hooks.log");
    let host_log = b.rootfs().join("hooks.log");
    let hook = |name: &str, log: &str, shell: &str| json!({ "path": shell, "args": ["sh", "-c", format!("s=$(cat); echo {name} ${{s#*\\\"status\\\":}} | cut -d, -f1 >> {log}")] });
    let hl = host_log.to_str().unwrap().to_string();
    b.edit(|c| {
        c["root"]["readonly"] = false.into();
        c["hooks"] = json!({
            "prestart": [hook("prestart", &hl, "/bin/sh")],
            "createRuntime": [hook("createRuntime", &hl, "/bin/sh")],
            "createContainer": [hook("createContainer", &hl, "/bin/sh")],
            "startContainer": [hook("startContainer", "/hooks.log", "/bin/sh")],
            "poststart": [hook("poststart", &hl, "/bin/sh")],
            "poststop": [hook("poststop", &hl, "/bin/sh")],
        });
    });
    ok_run(&b);
    let log = std::fs::read_to_string(&host_log).unwrap();
    let names: Vec<&str> = log
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    // poststart runs before `start` returns, so it may land before or after the user process's line.
    let mut without_user: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| *n != "user-process")
        .collect();
    assert_eq!(
        without_user,
        vec![
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ],
        "{log}"
    );
    assert!(names.contains(&"user-process"));
    without_user.clear();
    for l in log.lines().filter(|l| !l.starts_with("user-process")) {
        let (name, status) = l.split_once(' ').unwrap();
        let want = match name {
            "createRuntime" | "createContainer" => "\"creating\"",
            // As crun, and as runtime-tools' hooks_stdin checks: prestart once ran at `start`.
            "prestart" | "startContainer" => "\"created\"",
            "poststart" => "\"running\"",
            _ => "\"stopped\"",
        };
        assert_eq!(status.trim().trim_end_matches('}'), want, "{log}");
    }
}

#[test]
fn a_hook_that_never_reads_its_stdin_does_not_kill_the_runtime() {
    // The state on the hook's stdin is larger than a pipe holds, and the hook closes its end unread.
    let b = TestBundle::new(&["true"]);
    b.edit(|c| {
        c["annotations"] = json!({ "big": "x".repeat(1 << 20) });
        c["hooks"] = json!({ "createRuntime": [{ "path": "/bin/sh", "args": ["sh", "-c", "exec 0<&-; sleep 0.2"] }] });
    });
    let out = b.run_container(&unique_id("nostdin"));
    assert!(out.status.success(), "{:?} {}", out.status, stderr(&out));
    assert!(b.listed().is_empty());
}

#[test]
fn a_failing_prestart_hook_fails_create_and_leaves_nothing() {
    let b = TestBundle::new(&["true"]);
    b.edit(|c| c["hooks"] = json!({ "prestart": [{ "path": "/bin/sh", "args": ["sh", "-c", "echo hook-broke >&2; exit 3"] }] }));
    let out = b.gruntime(&[
        "create",
        "-b",
        b.path().to_str().unwrap(),
        &unique_id("hook"),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("prestart") && err.contains("hook-broke"),
        "{err}"
    );
    assert!(b.listed().is_empty());
    assert!(b.leftover_processes().is_empty());
    assert!(b.leftover_mounts().is_empty());
}

fn recv_fd(sock: &std::os::unix::net::UnixStream) -> OwnedFd {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buf = [0u8; 256];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )
    .unwrap();
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the kernel installed this fd for us with SCM_RIGHTS; nothing else owns it.
            return unsafe { OwnedFd::from_raw_fd(fds[0]) };
        }
    }
    panic!("no fd received on the console socket");
}

#[test]
fn console_socket_receives_a_pty_master() {
    let b = sh("tty; echo hello-from-the-pty");
    b.edit(|c| c["process"]["terminal"] = true.into());
    let sock_path = b.path().join("console.sock");
    let listener = UnixListener::bind(&sock_path).unwrap();
    let id = unique_id("tty");
    let out = b.gruntime(&[
        "create",
        "-b",
        b.path().to_str().unwrap(),
        "--console-socket",
        sock_path.to_str().unwrap(),
        &id,
    ]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let (conn, _) = listener.accept().unwrap();
    let master = recv_fd(&conn);
    assert!(
        nix::unistd::isatty(&master).unwrap(),
        "received fd is not a terminal"
    );
    assert!(b.gruntime(&["start", &id]).status.success());
    let mut f = std::fs::File::from(master);
    let mut all = Vec::new();
    let mut buf = [0u8; 1024];
    use std::io::Read;
    loop {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break, // EIO once the container has exited
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&all);
    assert!(text.contains("/dev/pts/0"), "{text}");
    assert!(text.contains("hello-from-the-pty"), "{text}");
    wait_status(&b, &id, "stopped");
    assert!(b.gruntime(&["delete", &id]).status.success());
}

/// Every bad input: a one-line error naming the cause, non-zero exit, and nothing left behind.
fn assert_refused(b: &TestBundle, args: &[&str], want: &str) {
    let out = b.gruntime(args);
    let err = stderr(&out);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(err.contains(want), "{args:?}: want {want:?} in {err:?}");
    assert_eq!(err.trim().lines().count(), 1, "more than one line: {err}");
    assert!(
        b.listed().is_empty(),
        "{args:?} left state: {:?}",
        b.listed()
    );
    assert!(b.leftover_processes().is_empty(), "{args:?} left processes");
    assert!(b.leftover_mounts().is_empty(), "{args:?} left mounts");
}

#[test]
fn bad_input_is_refused_with_a_clear_error_and_nothing_left_behind() {
    let b = TestBundle::new(&["true"]);
    let bp = b.path().to_str().unwrap().to_string();
    for bad in ["../x", "a/b", ""] {
        assert_refused(&b, &["create", "-b", &bp, bad], "invalid container id");
    }
    assert_refused(
        &b,
        &["create", "-b", "/nonexistent-bundle", "c1"],
        "does not exist",
    );
    assert_refused(&b, &["start", "nope"], "does not exist");
    assert_refused(&b, &["kill", "nope"], "does not exist");

    b.edit(|c| c["process"]["args"] = json!(["no-such-binary"]));
    assert_refused(
        &b,
        &["create", "-b", &bp, "c2"],
        "executable file not found in $PATH",
    );
    b.edit(|c| c["process"]["args"] = json!(["true"]));

    b.edit(|c| c["ociVersion"] = "2.0.0".into());
    assert_refused(&b, &["create", "-b", &bp, "c3"], "ociVersion");
    b.edit(|c| c["ociVersion"] = "1.3.0".into());

    b.edit(|c| c["root"]["path"] = "missing-rootfs".into());
    assert_refused(&b, &["create", "-b", &bp, "c4"], "root.path");
    b.edit(|c| c["root"]["path"] = "rootfs".into());

    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "type": "pid" }))
    });
    assert_refused(
        &b,
        &["create", "-b", &bp, "c5"],
        "pid namespace listed twice",
    );
    b.edit(|c| {
        c["linux"]["namespaces"].as_array_mut().unwrap().pop();
    });

    let cfg = b.path().join("config.json");
    let good = std::fs::read(&cfg).unwrap();
    std::fs::write(&cfg, b"{ not json").unwrap();
    assert_refused(&b, &["create", "-b", &bp, "c6"], "config.json");
    std::fs::write(&cfg, &good).unwrap();

    // Duplicate id: exactly one create wins.
    let id = unique_id("dup");
    assert!(b.gruntime(&["create", "-b", &bp, &id]).status.success());
    let out = b.gruntime(&["create", "-b", &bp, &id]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert!(b.gruntime(&["delete", "--force", &id]).status.success());
    assert!(b.listed().is_empty());
}

#[test]
fn concurrent_creates_of_one_id_have_exactly_one_winner() {
    let b = TestBundle::new(&["sleep", "100"]);
    let id = unique_id("race");
    let children: Vec<_> = (0..4)
        .map(|_| {
            b.cmd(&["create", "-b", b.path().to_str().unwrap(), &id])
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let wins = children
        .into_iter()
        .map(|mut c| c.wait().unwrap().success())
        .filter(|s| *s)
        .count();
    assert_eq!(wins, 1);
    assert!(b.gruntime(&["delete", "--force", &id]).status.success());
}

#[test]
fn json_log_format_writes_one_object_per_line_and_stderr_still_gets_errors() {
    let b = TestBundle::new(&["true"]);
    let log = b.path().join("log.json");
    let out = b.gruntime(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "start",
        "missing",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("does not exist"));
    let text = std::fs::read_to_string(&log).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error");
    assert!(last["msg"].as_str().unwrap().contains("does not exist"));
    assert!(humantime_like(last["time"].as_str().unwrap()), "{last}");
}

fn humantime_like(t: &str) -> bool {
    t.len() >= 20 && t.as_bytes()[4] == b'-' && t.as_bytes()[10] == b'T' && t.ends_with('Z')
}

#[test]
fn version_and_spec_and_go_style_flags() {
    let b = TestBundle::new(&["true"]);
    let v = stdout(&b.gruntime(&["--version"]));
    let mut lines = v.lines();
    assert!(lines.next().unwrap().starts_with("gruntime version "));
    assert!(lines.next().unwrap().starts_with("spec: 1."));
    // containerd's shim style: single-dash long flags, options after the id.
    let id = unique_id("go");
    let out = b.gruntime(&[
        "run",
        &id,
        "-bundle",
        b.path().to_str().unwrap(),
        "-no-subreaper",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(b.listed().is_empty());
    let f: serde_json::Value = serde_json::from_str(&stdout(&b.gruntime(&["features"]))).unwrap();
    assert!(f["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .contains(&json!("pid")));
}

#[test]
fn no_pivot_runs_the_container_with_move_and_chroot() {
    let b = sh("echo pid=$$; ls /");
    let id = unique_id("nopivot");
    let out = integration::run_via_files(&mut b.cmd(&[
        "run",
        "--no-pivot",
        "-b",
        b.path().to_str().unwrap(),
        &id,
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let o = stdout(&out);
    assert!(
        o.starts_with("pid=1\n") && o.contains("bin") && o.contains("proc"),
        "{o}"
    );
    assert!(b.listed().is_empty());
}

#[test]
fn preserve_fds_passes_extra_fds_and_nothing_else() {
    use std::os::unix::process::CommandExt;
    let b = sh("ls /proc/self/fd | sort -n | tr '\\n' ' '; cat <&3");
    let payload = b.path().join("payload");
    std::fs::write(&payload, "through-fd-3").unwrap();
    let f = std::fs::File::open(&payload).unwrap();
    let raw = f.as_raw_fd();
    let id = unique_id("fds");
    let mut cmd = b.cmd(&[
        "run",
        "--preserve-fds",
        "1",
        "-b",
        b.path().to_str().unwrap(),
        &id,
    ]);
    // SAFETY: dup2 in the child before exec puts the payload file at fd 3.
    unsafe {
        cmd.pre_exec(move || {
            // dup2(3, 3) would keep O_CLOEXEC when the file already is fd 3: clear it explicitly.
            if libc::dup2(raw, 3) < 0 || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = integration::run_via_files(&mut cmd);
    assert!(out.status.success(), "{}", stderr(&out));
    let o = stdout(&out);
    // 0 1 2 3, plus the fd `ls` itself opens for /proc/self/fd: nothing of gruntime's leaks in.
    let fds: Vec<u32> = o
        .split("through")
        .next()
        .unwrap()
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(&fds[..4], &[0, 1, 2, 3], "{o}");
    assert!(fds.len() <= 5, "leaked fds: {o}");
    assert!(o.contains("through-fd-3"), "{o}");

    // Asking for an fd that is not open is refused: gruntime's own fds must never take its place.
    let out = b.gruntime(&[
        "run",
        "--preserve-fds",
        "5",
        "-b",
        b.path().to_str().unwrap(),
        &unique_id("fds"),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--preserve-fds 5: fd"),
        "{}",
        stderr(&out)
    );
    assert!(b.listed().is_empty());
}

#[test]
fn linux_devices_are_created_with_type_numbers_mode_and_owner() {
    let b = sh("stat -c '%F %t:%T %a %u:%g' /dev/mynull /dev/null /dev/zero; (echo x > /dev/mynull) 2>/dev/null && echo writable || echo denied; ls -l /dev/ptmx /dev/fd | cut -c1");
    b.edit(|c| {
        c["linux"]["devices"] = json!([{ "path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 432, "uid": 7, "gid": 8 }]);
    });
    let out = ok_run(&b);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "character special file 1:3 660 7:8", "{out}");
    assert_eq!(lines[1], "character special file 1:3 666 0:0", "{out}");
    assert_eq!(lines[2], "character special file 1:5 666 0:0", "{out}");
    // 0660 owned by 7:8, and the default capabilities have no CAP_DAC_OVERRIDE: root is refused.
    assert_eq!(lines[3], "denied");
    assert_eq!(&lines[4..6], &["l", "l"], "ptmx and fd are symlinks: {out}");
}

#[test]
fn recursive_mount_attributes_and_bind_options_apply() {
    let b = sh("touch /data/x 2>&1; touch /data/sub/y 2>&1; grep -E ' /data(/sub)? ' /proc/self/mountinfo | cut -d' ' -f5,6");
    let data = b.path().join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    // A submount under the bind source: rro must make it read-only too, plain ro would not.
    let sub = b.path().join("data/sub");
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&sub)
        .status()
        .unwrap();
    assert!(st.success());
    b.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({ "destination": "/data", "type": "bind", "source": data, "options": ["rbind", "rro", "nosuid"] }));
    });
    let out = b.run_container(&unique_id("rro"));
    let _ = std::process::Command::new("umount").arg(&sub).status();
    assert!(out.status.success(), "{}", stderr(&out));
    let o = stdout(&out);
    assert_eq!(o.matches("Read-only file system").count(), 2, "{o}");
    // rro reaches the submount; nosuid (not recursive) only the top of the bind, as in runc.
    let opts = |m: &str| {
        o.lines()
            .find(|l| l.split(' ').next() == Some(m))
            .map(|l| {
                l.split(' ')
                    .nth(1)
                    .unwrap()
                    .split(',')
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .unwrap()
    };
    assert!(
        opts("/data").contains(&"ro".into()) && opts("/data").contains(&"nosuid".into()),
        "{o}"
    );
    assert!(opts("/data/sub").contains(&"ro".into()), "{o}");
}

#[test]
fn ambient_capabilities_without_inheritable_ones_are_skipped_as_runc_does() {
    // What Debian's `runc spec` writes: an ambient set, no inheritable set.
    let b = sh("grep -E '^Cap(Amb|Eff)' /proc/self/status");
    b.edit(|c| {
        let set = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
        c["process"]["capabilities"] =
            json!({ "bounding": set, "effective": set, "permitted": set, "ambient": set });
    });
    let out = ok_run(&b);
    assert!(out.contains("CapAmb:\t0000000000000000"), "{out}");
    assert!(out.contains("CapEff:\t0000000020000420"), "{out}");
    // With the inheritable set too, they are raised.
    b.edit(|c| {
        c["process"]["capabilities"]["inheritable"] =
            c["process"]["capabilities"]["ambient"].clone()
    });
    let out = ok_run(&b);
    assert!(out.contains("CapAmb:\t0000000020000420"), "{out}");
}

/// Docker keeps runc's state in /var/run/docker/runtime-runc/moby and names containers with 64 hex
/// digits: the state dir's start socket is then longer than a Unix socket address can hold.
#[test]
fn a_state_root_and_id_as_long_as_dockers_still_create_start_and_delete() {
    let b = sh("echo long-path-ok; sleep 30");
    let root = b.root.path().join("var/run/docker/runtime-runc/moby");
    let id = format!("{:0<64}", unique_id("long"));
    let socket = root.join(&id).join("start.sock");
    assert!(socket.as_os_str().len() > 108, "{}", socket.display());
    let g = |args: &[&str]| {
        let mut c = std::process::Command::new(integration::gruntime_bin());
        c.arg("--root").arg(&root).args(args).current_dir(b.path());
        integration::run_via_files(&mut c)
    };
    let out = g(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let out = g(&["start", &id]);
    assert!(out.status.success(), "start: {}", stderr(&out));
    let out = g(&["state", &id]);
    assert!(stdout(&out).contains("\"running\""), "{}", stdout(&out));
    let out = g(&["delete", "--force", &id]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    assert!(!root.join(&id).exists());
}
