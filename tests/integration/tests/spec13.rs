//! runtime-spec 1.3 beyond the core (issue 9), black-box: each field is checked from inside a real container,
//! and every config the spec says must fail is refused with a one-line error and nothing left behind.

use std::path::Path;
use std::time::Duration;

use integration::{stderr, stdout, unique_id, TestBundle};
use serde_json::{json, Value};

fn sh(script: &str) -> TestBundle {
    TestBundle::new(&["sh", "-c", script])
}

fn ok_run(b: &TestBundle) -> String {
    let out = b.run_container(&unique_id("s13"));
    assert!(
        out.status.success(),
        "run failed: status {:?}, stderr: {}",
        out.status,
        stderr(&out)
    );
    assert!(b.listed().is_empty(), "run left state: {:?}", b.listed());
    stdout(&out)
}

/// `run` must fail before anything is made: one line naming the cause, no state, process or mount left.
fn assert_refused(b: &TestBundle, want: &str) {
    let id = unique_id("bad");
    let out = b.run_container(&id);
    // The log line quotes the message: compare with its escapes undone.
    let err = stderr(&out).replace("\\\"", "\"");
    assert!(!out.status.success(), "run succeeded; want {want:?}");
    assert!(err.contains(want), "want {want:?} in {err:?}");
    assert_eq!(err.trim().lines().count(), 1, "more than one line: {err}");
    assert!(b.listed().is_empty(), "left state: {:?}", b.listed());
    assert!(b.leftover_processes().is_empty(), "left processes");
    assert!(b.leftover_mounts().is_empty(), "left mounts");
}

fn add_namespace(c: &mut Value, ns: Value) {
    c["linux"]["namespaces"].as_array_mut().unwrap().push(ns);
}

fn drop_namespace(c: &mut Value, typ: &str) {
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != typ);
}

/// Fields of /proc/PID/stat after the command (comm) field: index 0 is field 3 (state).
fn stat_fields(line: &str) -> Vec<String> {
    let rest = &line[line.rfind(')').unwrap() + 2..];
    rest.split_whitespace().map(String::from).collect()
}

/// (priority, nice, rt_priority, policy) from a /proc/PID/stat line.
fn sched_fields(line: &str) -> (i64, i64, u64, u64) {
    let f = stat_fields(line);
    (
        f[15].parse().unwrap(),
        f[16].parse().unwrap(),
        f[37].parse().unwrap(),
        f[38].parse().unwrap(),
    )
}

// ---------------------------------------------------------------- ociVersion

#[test]
fn any_1_x_y_oci_version_runs_and_another_major_is_refused() {
    let b = TestBundle::new(&["true"]);
    b.edit(|c| c["ociVersion"] = "1.3.0".into());
    ok_run(&b);
    b.edit(|c| c["ociVersion"] = "1.0.2-dev".into());
    ok_run(&b);
    b.edit(|c| c["ociVersion"] = "2.0.0".into());
    assert_refused(&b, "ociVersion \"2.0.0\"");
}

// ---------------------------------------------------------------- time namespace

#[test]
fn time_namespace_offsets_shift_monotonic_and_boottime() {
    let b = sh("cat /proc/self/timens_offsets; cut -d' ' -f1 /proc/uptime");
    b.edit(|c| {
        add_namespace(c, json!({"type": "time"}));
        c["linux"]["timeOffsets"] = json!({
            "monotonic": {"secs": 3600},
            "boottime": {"secs": 864000, "nanosecs": 17},
        });
    });
    let host_uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let out = ok_run(&b);
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(lines.contains(&vec!["monotonic", "3600", "0"]), "{out}");
    assert!(lines.contains(&vec!["boottime", "864000", "17"]), "{out}");
    let inside: f64 = lines.last().unwrap()[0].parse().unwrap();
    assert!(
        inside >= host_uptime + 864000.0 && inside < host_uptime + 864000.0 + 60.0,
        "uptime inside {inside}, host {host_uptime}: {out}"
    );
}

#[test]
fn a_container_joins_a_time_namespace_by_path() {
    // The first container owns a time namespace with offsets; the second joins it through /proc/PID/ns/time.
    let owner = TestBundle::new(&["sleep", "60"]);
    owner.edit(|c| {
        add_namespace(c, json!({"type": "time"}));
        c["linux"]["timeOffsets"] = json!({"boottime": {"secs": 7200}});
    });
    let id = unique_id("timens-owner");
    let bundle = owner.path().to_str().unwrap().to_string();
    let out = owner.gruntime(&["create", "--bundle", &bundle, &id]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let out = owner.gruntime(&["start", &id]);
    assert!(out.status.success(), "start: {}", stderr(&out));
    let st: Value = serde_json::from_str(&stdout(&owner.gruntime(&["state", &id]))).unwrap();
    let pid = st["pid"].as_i64().unwrap();

    let joiner = sh("cat /proc/self/timens_offsets");
    joiner.edit(|c| {
        add_namespace(
            c,
            json!({"type": "time", "path": format!("/proc/{pid}/ns/time")}),
        )
    });
    let out = ok_run(&joiner);
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(lines.contains(&vec!["boottime", "7200", "0"]), "{out}");

    let out = owner.gruntime(&["delete", "--force", &id]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
}

#[test]
fn time_offsets_without_a_new_time_namespace_or_for_another_clock_are_refused() {
    let b = TestBundle::new(&["true"]);
    b.edit(|c| c["linux"]["timeOffsets"] = json!({"boottime": {"secs": 1}}));
    assert_refused(&b, "linux.timeOffsets: given without a new time namespace");
    b.edit(|c| {
        add_namespace(c, json!({"type": "time"}));
        c["linux"]["timeOffsets"] = json!({"realtime": {"secs": 1}});
    });
    assert_refused(&b, "linux.timeOffsets.realtime: unknown clock");
}

// ---------------------------------------------------------------- personality

#[test]
fn personality_linux32_with_flags_is_seen_inside() {
    let b = sh("uname -m; cat /proc/self/personality");
    b.edit(|c| {
        c["linux"]["personality"] = json!({"domain": "LINUX32", "flags": ["ADDR_NO_RANDOMIZE"]})
    });
    let out = ok_run(&b);
    let lines: Vec<&str> = out.lines().collect();
    if std::env::consts::ARCH == "x86_64" {
        assert_eq!(lines[0], "i686", "{out}");
    }
    // PER_LINUX32 (0x0008) | ADDR_NO_RANDOMIZE (0x0040000)
    assert_eq!(lines[1], "00040008", "{out}");

    b.edit(|c| c["linux"]["personality"] = json!({"domain": "LINUX"}));
    let out = ok_run(&b);
    assert_eq!(out.lines().nth(1), Some("00000000"), "{out}");

    b.edit(|c| c["linux"]["personality"] = json!({"domain": "LINUX", "flags": ["NO_SUCH_FLAG"]}));
    assert_refused(
        &b,
        "linux.personality.flags[0] \"NO_SUCH_FLAG\": unknown personality flag",
    );
}

// ---------------------------------------------------------------- ioPriority

#[test]
fn io_priority_class_and_level_are_applied() {
    let b = sh("ionice -p $$");
    for (class, prio, want) in [
        ("IOPRIO_CLASS_BE", 3, "best-effort: prio 3"),
        ("IOPRIO_CLASS_RT", 2, "realtime: prio 2"),
        ("IOPRIO_CLASS_IDLE", 0, "idle"),
    ] {
        b.edit(|c| c["process"]["ioPriority"] = json!({"class": class, "priority": prio}));
        let out = ok_run(&b);
        assert_eq!(out.trim(), want, "{class}");
    }
    b.edit(|c| c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 8}));
    assert_refused(&b, "process.ioPriority.priority 8: out of range 0..7");
}

// ---------------------------------------------------------------- scheduler

#[test]
fn scheduler_policies_are_applied() {
    // The shell's own stat ($$): a child would show the same unless SCHED_FLAG_RESET_ON_FORK is set.
    // `; true`: busybox sh would exec a last command in place of itself.
    let b = sh("cat /proc/$$/stat; cat /proc/self/stat; true");
    b.edit(|c| c["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7}));
    let out = ok_run(&b);
    let (_, nice, _, policy) = sched_fields(out.lines().next().unwrap());
    assert_eq!((nice, policy), (7, 3), "{out}");

    b.edit(|c| c["process"]["scheduler"] = json!({"policy": "SCHED_IDLE"}));
    let out = ok_run(&b);
    assert_eq!(sched_fields(out.lines().next().unwrap()).3, 5, "{out}");

    b.edit(|c| {
        c["process"]["scheduler"] =
            json!({"policy": "SCHED_FIFO", "priority": 10, "flags": ["SCHED_FLAG_RESET_ON_FORK"]})
    });
    let out = ok_run(&b);
    let mut lines = out.lines();
    let (_, _, rt, policy) = sched_fields(lines.next().unwrap());
    assert_eq!((rt, policy), (10, 1), "{out}");
    // Reset on fork: the shell's child `cat` is back to SCHED_OTHER.
    let (_, _, rt, policy) = sched_fields(lines.next().unwrap());
    assert_eq!((rt, policy), (0, 0), "{out}");

    b.edit(|c| c["process"]["scheduler"] = json!({"policy": "SCHED_RR", "priority": 5}));
    let out = ok_run(&b);
    let (_, _, rt, policy) = sched_fields(out.lines().next().unwrap());
    assert_eq!((rt, policy), (5, 2), "{out}");

    // A deadline task cannot fork: the container's process is `cat` itself.
    let b = TestBundle::new(&["cat", "/proc/self/stat"]);
    b.edit(|c| {
        c["process"]["scheduler"] = json!({"policy": "SCHED_DEADLINE",
            "runtime": 1_000_000, "deadline": 10_000_000, "period": 10_000_000})
    });
    let out = ok_run(&b);
    assert_eq!(sched_fields(out.lines().next().unwrap()).3, 6, "{out}");
}

#[test]
fn invalid_scheduler_combinations_are_refused_naming_the_field() {
    let b = TestBundle::new(&["true"]);
    for (sched, want) in [
        (
            json!({"policy": "SCHED_FIFO"}),
            "process.scheduler.priority: required for SCHED_FIFO",
        ),
        (
            json!({"policy": "SCHED_RR", "priority": 100}),
            "process.scheduler.priority 100: out of range 1..99",
        ),
        (
            json!({"policy": "SCHED_OTHER", "priority": 5}),
            "process.scheduler.priority 5: only SCHED_FIFO and SCHED_RR",
        ),
        (
            json!({"policy": "SCHED_FIFO", "priority": 5, "nice": 3}),
            "process.scheduler.nice: has no effect with policy SCHED_FIFO",
        ),
        (
            json!({"policy": "SCHED_OTHER", "nice": 20}),
            "process.scheduler.nice 20: out of range -20..19",
        ),
        (
            json!({"policy": "SCHED_BATCH", "runtime": 5000}),
            "process.scheduler.runtime/deadline/period: only SCHED_DEADLINE",
        ),
        (
            json!({"policy": "SCHED_DEADLINE", "runtime": 5000}),
            "SCHED_DEADLINE needs runtime and deadline",
        ),
        (
            json!({"policy": "SCHED_DEADLINE", "runtime": 50000, "deadline": 10000}),
            "SCHED_DEADLINE needs runtime (50000) <= deadline (10000)",
        ),
        (
            json!({"policy": "SCHED_ISO"}),
            "process.scheduler.policy SCHED_ISO: not implemented",
        ),
        (
            json!({"policy": "SCHED_NOPE"}),
            "process.scheduler.policy: unknown variant `SCHED_NOPE`",
        ),
        (
            json!({"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_NOPE"]}),
            "process.scheduler.flags[0]: unknown variant",
        ),
    ] {
        b.edit(|c| c["process"]["scheduler"] = sched.clone());
        assert_refused(&b, want);
    }
}

// ---------------------------------------------------------------- execCPUAffinity

#[test]
fn exec_cpu_affinity_initial_while_setting_up_and_final_for_the_process() {
    let cpus = std::thread::available_parallelism().unwrap().get();
    let last = cpus - 1;
    let b = sh("grep Cpus_allowed_list /proc/self/status");
    let seen_by_hook = b.path().join("initial.txt");
    // A createContainer hook is forked by the init while it works inside the container: it has `initial`.
    let hook = json!({"path": "/bin/sh", "args": ["sh", "-c",
        format!("grep Cpus_allowed_list /proc/self/status > {}", seen_by_hook.display())]});
    b.edit(|c| {
        c["process"]["execCPUAffinity"] = json!({"initial": format!("{last}"), "final": "0"});
        c["hooks"] = json!({"createContainer": [hook]});
    });
    let out = ok_run(&b);
    assert_eq!(out.split_whitespace().last(), Some("0"), "{out}");
    let initial = std::fs::read_to_string(&seen_by_hook).unwrap();
    assert_eq!(
        initial.split_whitespace().last(),
        Some(last.to_string().as_str()),
        "{initial}"
    );

    if cpus >= 2 {
        // Without `final` the process is not left on `initial`: it gets every CPU of its cgroup.
        b.edit(|c| c["process"]["execCPUAffinity"] = json!({"initial": "0"}));
        let out = ok_run(&b);
        assert_eq!(
            out.split_whitespace().last(),
            Some(format!("0-{last}").as_str()),
            "{out}"
        );
        b.edit(|c| c["process"]["execCPUAffinity"] = json!({"final": format!("0-{last}")}));
        let out = ok_run(&b);
        assert_eq!(
            out.split_whitespace().last(),
            Some(format!("0-{last}").as_str()),
            "{out}"
        );
    }

    b.edit(|c| c["process"]["execCPUAffinity"] = json!({"final": "3-1"}));
    assert_refused(
        &b,
        "process.execCPUAffinity.final \"3-1\": \"3-1\": range goes backwards",
    );
    b.edit(|c| c["process"]["execCPUAffinity"] = json!({"initial": "0,x"}));
    assert_refused(
        &b,
        "process.execCPUAffinity.initial: Invalid execCPUAffinity format",
    );
}

// ---------------------------------------------------------------- memoryPolicy

#[test]
fn memory_policy_is_seen_in_numa_maps() {
    let b = TestBundle::new(&["cat", "/proc/self/numa_maps"]);
    for (mode, flags, want) in [
        ("MPOL_BIND", json!([]), "bind:0"),
        ("MPOL_INTERLEAVE", json!([]), "interleave:0"),
        ("MPOL_PREFERRED", json!([]), "prefer:0"),
        ("MPOL_BIND", json!(["MPOL_F_STATIC_NODES"]), "bind=static:0"),
    ] {
        b.edit(|c| {
            c["linux"]["memoryPolicy"] = json!({"mode": mode, "nodes": "0", "flags": flags})
        });
        let out = ok_run(&b);
        let first = out.lines().next().unwrap_or("");
        assert_eq!(first.split_whitespace().nth(1), Some(want), "{mode}: {out}");
    }
    b.edit(|c| c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_LOCAL"}));
    let out = ok_run(&b);
    assert_eq!(
        out.lines().next().unwrap().split_whitespace().nth(1),
        Some("local"),
        "{out}"
    );
}

#[test]
fn invalid_memory_policies_are_refused_naming_the_field() {
    let b = TestBundle::new(&["true"]);
    for (pol, want) in [
        (
            json!({"mode": "MPOL_BIND"}),
            "linux.memoryPolicy.nodes: required for MPOL_BIND",
        ),
        (
            json!({"mode": "MPOL_DEFAULT", "nodes": "0"}),
            "linux.memoryPolicy.nodes: MPOL_DEFAULT takes no nodes",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]}),
            "exclude each other",
        ),
        (
            json!({"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_NUMA_BALANCING"]}),
            "MPOL_F_NUMA_BALANCING needs MPOL_BIND",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "1-0"}),
            "linux.memoryPolicy.nodes \"1-0\"",
        ),
        (
            json!({"mode": "MPOL_NOPE"}),
            "linux.memoryPolicy.mode: unknown variant",
        ),
    ] {
        b.edit(|c| c["linux"]["memoryPolicy"] = pol.clone());
        assert_refused(&b, want);
    }
    // A node this machine does not have: set_mempolicy refuses it in the init, and nothing is left.
    b.edit(|c| c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "1000"}));
    assert_refused(
        &b,
        "linux.memoryPolicy: set_mempolicy MPOL_BIND nodes \"1000\"",
    );
}

// ---------------------------------------------------------------- idmapped mounts

#[test]
fn idmapped_bind_mount_shows_files_under_the_mapped_ids() {
    let src = tempfile::Builder::new()
        .prefix("gruntime-idmap-")
        .tempdir()
        .unwrap();
    std::fs::write(src.path().join("owned-by-root"), "x").unwrap();
    std::fs::set_permissions(
        src.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    // On-disk root appears as 1000 through the mount; the process runs as 1000 and its new file lands as 0.
    let b = sh("stat -c '%u:%g' /data/owned-by-root; touch /data/made-inside; stat -c '%u:%g' /data/made-inside");
    b.edit(|c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/data", "type": "bind", "source": src.path(), "options": ["bind", "idmap"],
            "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
            "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
        }));
    });
    let out = ok_run(&b);
    assert_eq!(out, "1000:1000\n1000:1000\n");
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(src.path().join("made-inside")).unwrap();
    assert_eq!(
        (md.uid(), md.gid()),
        (0, 0),
        "the file is root's on the host"
    );
    assert!(b.leftover_mounts().is_empty());
}

#[test]
fn idmapped_mount_in_a_user_namespace_makes_host_root_files_the_containers_root_files() {
    let src = tempfile::Builder::new()
        .prefix("gruntime-idmap-")
        .tempdir()
        .unwrap();
    std::fs::write(src.path().join("f"), "hi\n").unwrap();
    // /root exists in the rootfs: the user namespace's root may not create mount points in a host-owned rootfs.
    let maps = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let b = sh("stat -c '%u:%g' /root/f; cat /root/f; touch /root/g");
    b.edit(|c| {
        add_namespace(c, json!({"type": "user"}));
        c["linux"]["uidMappings"] = maps.clone();
        c["linux"]["gidMappings"] = maps.clone();
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/root", "type": "bind", "source": src.path(), "options": ["bind"],
            "uidMappings": maps, "gidMappings": maps,
        }));
    });
    let out = ok_run(&b);
    assert_eq!(out, "0:0\nhi\n");
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(src.path().join("g")).unwrap();
    assert_eq!(
        (md.uid(), md.gid()),
        (0, 0),
        "container root writes as host root through the mount"
    );
}

#[test]
fn idmapped_mounts_that_cannot_be_made_are_refused() {
    let b = TestBundle::new(&["true"]);
    let maps = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
    let set = |m: Value| b.edit(|c| c["mounts"].as_array_mut().unwrap().push(m));
    set(
        json!({"destination": "/t", "type": "tmpfs", "source": "tmpfs", "uidMappings": maps, "gidMappings": maps}),
    );
    assert_refused(
        &b,
        "uidMappings/gidMappings are only supported on bind mounts",
    );
    b.edit(|c| {
        c["mounts"].as_array_mut().unwrap().pop();
    });
    set(
        json!({"destination": "/t", "type": "bind", "source": "/tmp", "options": ["bind"], "uidMappings": maps}),
    );
    assert_refused(
        &b,
        "an idmapped mount needs both uidMappings and gidMappings",
    );
    b.edit(|c| {
        c["mounts"].as_array_mut().unwrap().pop();
    });
    // sysfs cannot be idmapped.
    set(
        json!({"destination": "/t", "type": "bind", "source": "/sys/kernel", "options": ["bind"], "uidMappings": maps, "gidMappings": maps}),
    );
    assert_refused(&b, "idmap /sys/kernel (mount_setattr MOUNT_ATTR_IDMAP; the filesystem may not support idmapped mounts): Invalid argument");
}

// ---------------------------------------------------------------- domainname, sysctl

#[test]
fn domainname_and_namespaced_sysctls_are_applied_in_the_container() {
    let b = sh("cat /proc/sys/kernel/domainname /proc/sys/kernel/shmmax /proc/sys/net/ipv4/ip_forward /proc/sys/fs/mqueue/msg_max");
    b.edit(|c| {
        c["domainname"] = "example.org".into();
        c["linux"]["sysctl"] = json!({"kernel.shmmax": "123456", "net/ipv4/ip_forward": "1", "fs.mqueue.msg_max": "42"});
    });
    let host_domain = std::fs::read_to_string("/proc/sys/kernel/domainname").unwrap();
    let host_shmmax = std::fs::read_to_string("/proc/sys/kernel/shmmax").unwrap();
    let out = ok_run(&b);
    assert_eq!(out, "example.org\n123456\n1\n42\n");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/domainname").unwrap(),
        host_domain
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/shmmax").unwrap(),
        host_shmmax
    );
}

#[test]
fn sysctls_outside_the_containers_namespaces_are_refused() {
    let b = TestBundle::new(&["true"]);
    b.edit(|c| c["linux"]["sysctl"] = json!({"vm.swappiness": "10"}));
    assert_refused(
        &b,
        "linux.sysctl vm.swappiness: not in any namespace the container has of its own",
    );
    b.edit(|c| {
        c["linux"]["sysctl"] = json!({"kernel.shmmax": "1"});
        drop_namespace(c, "ipc");
    });
    assert_refused(&b, "linux.sysctl kernel.shmmax: belongs to the ipc namespace, which the container shares with the host");
    b.edit(|c| add_namespace(c, json!({"type": "ipc", "path": "/proc/self/ns/ipc"})));
    assert_refused(
        &b,
        "linux.sysctl kernel.shmmax: belongs to the ipc namespace",
    );
    b.edit(|c| {
        drop_namespace(c, "ipc");
        add_namespace(c, json!({"type": "ipc"}));
        drop_namespace(c, "network");
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    });
    assert_refused(
        &b,
        "linux.sysctl net.ipv4.ip_forward: belongs to the network namespace",
    );
}

// ---------------------------------------------------------------- LSMs and Intel RDT on this host

#[test]
fn security_labels_and_rdt_follow_what_the_host_has() {
    let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.starts_with('Y'));
    let selinux = Path::new("/sys/fs/selinux/enforce").exists();
    let resctrl = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(" - resctrl ");
    let b = TestBundle::new(&["true"]);
    if !apparmor {
        b.edit(|c| c["process"]["apparmorProfile"] = "some-profile".into());
        assert_refused(
            &b,
            "process.apparmorProfile \"some-profile\": AppArmor is not enabled on this host",
        );
        b.edit(|c| c["process"]["apparmorProfile"] = "".into());
    }
    if !selinux {
        b.edit(|c| c["process"]["selinuxLabel"] = "system_u:system_r:container_t:s0".into());
        assert_refused(
            &b,
            "process.selinuxLabel \"system_u:system_r:container_t:s0\": SELinux is disabled",
        );
        b.edit(|c| c["process"]["selinuxLabel"] = "".into());
        // runc ignores a mount label without SELinux.
        b.edit(|c| c["linux"]["mountLabel"] = "system_u:object_r:container_file_t:s0".into());
        ok_run(&b);
    }
    if !resctrl {
        b.edit(|c| c["linux"]["intelRdt"] = json!({"closID": "c1", "l3CacheSchema": "L3:0=f"}));
        assert_refused(
            &b,
            "linux.intelRdt: Intel RDT is not supported or enabled on this host",
        );
    }
}

// ---------------------------------------------------------------- hooks

#[test]
fn poststart_runs_before_start_returns_and_failing_poststart_or_poststop_only_warn() {
    let b = TestBundle::new(&["sleep", "30"]);
    let marker = b.path().join("poststart-done");
    let stopped = b.path().join("poststop-ran");
    b.edit(|c| {
        c["hooks"] = json!({
            "poststart": [
                {"path": "/bin/sh", "args": ["sh", "-c", format!("sleep 0.3; touch {}", marker.display())]},
                {"path": "/bin/false"},
            ],
            "poststop": [
                {"path": "/bin/false"},
                {"path": "/bin/sh", "args": ["sh", "-c", format!("touch {}", stopped.display())]},
            ],
        });
    });
    let id = unique_id("hooks");
    let bundle = b.path().to_str().unwrap().to_string();
    let out = b.gruntime(&["create", "--bundle", &bundle, &id]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let out = b.gruntime(&["start", &id]);
    assert!(
        out.status.success(),
        "a failing poststart hook failed start: {}",
        stderr(&out)
    );
    assert!(
        marker.exists(),
        "start returned before the poststart hook finished"
    );
    assert!(
        stderr(&out).contains("poststart hook #1"),
        "no warning: {}",
        stderr(&out)
    );
    let st: Value = serde_json::from_str(&stdout(&b.gruntime(&["state", &id]))).unwrap();
    assert_eq!(st["status"], "running");

    let out = b.gruntime(&["delete", "--force", &id]);
    assert!(
        out.status.success(),
        "a failing poststop hook failed delete: {}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("poststop hook #0"),
        "no warning: {}",
        stderr(&out)
    );
    assert!(
        stopped.exists(),
        "the poststop hook after the failing one did not run"
    );
    assert!(b.listed().is_empty());
}

// ---------------------------------------------------------------- MUST-fail rules

#[test]
fn configs_the_spec_says_must_fail_are_refused_and_leave_nothing() {
    let b = TestBundle::new(&["true"]);
    let reset = |b: &TestBundle| {
        let fresh = TestBundle::new(&["true"]);
        let c = fresh.config();
        b.edit(|x| *x = c);
    };
    b.edit(|c| {
        c["process"]["capabilities"]["bounding"]
            .as_array_mut()
            .unwrap()
            .push("CAP_NO_SUCH".into())
    });
    assert_refused(&b, "process.capabilities.bounding[");
    reset(&b);
    b.edit(|c| add_namespace(c, json!({"type": "pid"})));
    assert_refused(&b, "linux.namespaces: pid namespace listed twice");
    reset(&b);
    b.edit(|c| {
        c["hostname"] = "box".into();
        drop_namespace(c, "uts");
    });
    assert_refused(&b, "hostname: set without a private uts namespace");
    reset(&b);
    b.edit(|c| {
        c["hostname"] = "".into();
        c["domainname"] = "example.org".into();
        drop_namespace(c, "uts");
    });
    assert_refused(&b, "domainname: set without a private uts namespace");
    reset(&b);
    b.edit(|c| {
        drop_namespace(c, "network");
        add_namespace(c, json!({"type": "network", "path": "/proc/self/ns/ipc"}));
    });
    assert_refused(&b, "not a network namespace");
    reset(&b);
    b.edit(|c| c["process"]["rlimits"] = json!([{"type": "RLIMIT_NO_SUCH", "hard": 1, "soft": 1}]));
    assert_refused(
        &b,
        "process.rlimits[0].type: unknown variant `RLIMIT_NO_SUCH`",
    );
    reset(&b);
    b.edit(|c| c["process"]["oomScoreAdj"] = 1001.into());
    assert_refused(&b, "process.oomScoreAdj 1001: out of range");
    reset(&b);
    b.edit(|c| {
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    });
    assert_refused(
        &b,
        "linux.uidMappings: given but no user namespace is created",
    );
}

#[test]
fn a_relative_mount_destination_is_taken_relative_to_root() {
    let b = sh("grep ' /rel/dir ' /proc/self/mountinfo | cut -d' ' -f5,9");
    b.edit(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "rel/dir", "type": "tmpfs", "source": "tmpfs"}))
    });
    let out = ok_run(&b);
    assert_eq!(out.trim(), "/rel/dir tmpfs");
}

// ---------------------------------------------------------------- features

#[test]
fn features_lists_what_works() {
    let b = TestBundle::new(&["true"]);
    let out = b.gruntime(&["features"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let f: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let ns: Vec<&str> = f["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for want in [
        "cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time",
    ] {
        assert!(ns.contains(&want), "{want} missing from {ns:?}");
    }
    assert_eq!(f["linux"]["mountExtensions"]["idmap"]["enabled"], true);
    let modes = f["linux"]["memoryPolicy"]["modes"].as_array().unwrap();
    assert_eq!(modes.len(), 7, "{modes:?}");
    assert_eq!(
        f["linux"]["memoryPolicy"]["flags"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let policies = f["annotations"]["io.github.gruntime.scheduler.policies"]
        .as_str()
        .unwrap();
    assert_eq!(
        policies,
        "SCHED_OTHER,SCHED_FIFO,SCHED_RR,SCHED_BATCH,SCHED_IDLE,SCHED_DEADLINE"
    );
    assert!(f["mountOptions"]
        .as_array()
        .unwrap()
        .contains(&json!("idmap")));
    assert!(f["linux"]["netDevices"]["enabled"].is_boolean());
}

// ---------------------------------------------------------------- netDevices (in the VM: dummy interfaces)

#[test]
fn net_devices_move_into_the_container_with_their_addresses_and_fail_back_cleanly() {
    use integration::vm::Vm;
    let moved = sh("ip -o addr show; ip -o link show");
    moved.edit(|c| c["linux"]["netDevices"] = json!({"d0": {"name": "eth7"}, "d1": {}}));
    let revert = TestBundle::new(&["true"]);
    revert.edit(|c| c["linux"]["netDevices"] = json!({"d2": {}, "nosuch": {}}));
    let clash = TestBundle::new(&["true"]);
    clash.edit(|c| c["linux"]["netDevices"] = json!({"d3": {"name": "lo"}}));
    let g = integration::gruntime_bin();
    let run = |b: &TestBundle, id: &str| {
        format!(
            "{} --root /run/s13-root run --bundle {} {id} 2>&1",
            integration::shell_quote(&g),
            integration::shell_quote(b.path())
        )
    };
    let script = format!(
        r#"
section() {{ echo "== $1"; }}
ip link add d0 type dummy && ip addr add 10.9.8.7/24 dev d0 && ip addr add fd00::7/64 dev d0 nodad && ip link set d0 up
ip link add d1 type dummy
ip link add d2 type dummy && ip addr add 10.1.2.3/16 dev d2
ip link add d3 type dummy
section moved; {moved}; echo "rc=$?"
section host_after_moved; ip -o link show
section revert; {revert}; echo "rc=$?"
section host_after_revert; ip -o addr show dev d2
section clash; {clash}; echo "rc=$?"
section host_after_clash; ip -o link show dev d3
section state_left; ls /run/s13-root
"#,
        moved = run(&moved, "nd-moved"),
        revert = run(&revert, "nd-revert"),
        clash = run(&clash, "nd-clash"),
    );
    let mut vm = Vm::new().timeout(Duration::from_secs(300));
    for b in [&moved, &revert, &clash] {
        // The state root stays in the guest's /run: its unix sockets cannot live on a 9p share.
        vm = vm.share(b.path());
    }
    let out = vm.run(&script).expect("the VM runs the batch");

    let inside = out.section("moved");
    assert!(inside.contains("rc=0"), "{out}");
    let addr_line = |name: &str, addr: &str| {
        inside
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some(name) && l.contains(addr))
    };
    assert!(addr_line("eth7", "inet 10.9.8.7/24"), "{inside}");
    assert!(addr_line("eth7", "inet6 fd00::7/64"), "{inside}");
    assert!(
        inside
            .lines()
            .any(|l| l.contains(": eth7: <") && l.contains(",UP")),
        "eth7 is not up inside: {inside}"
    );
    assert!(inside.contains(": d1: <"), "{inside}");
    // The container's namespace is gone: the kernel destroyed the virtual devices with it.
    let host = out.section("host_after_moved");
    assert!(
        !host.contains(": d0:") && !host.contains(": d1:") && !host.contains("eth7"),
        "{host}"
    );

    let revert_out = out.section("revert");
    assert!(
        revert_out.contains("linux.netDevices.nosuch: find the host device"),
        "{out}"
    );
    assert!(!revert_out.contains("rc=0"), "{out}");
    assert!(
        out.section("host_after_revert")
            .contains("inet 10.1.2.3/16"),
        "{out}"
    );

    let clash_out = out.section("clash");
    assert!(
        clash_out.contains("linux.netDevices.d3: move into the container as lo"),
        "{out}"
    );
    assert!(out.section("host_after_clash").contains(": d3:"), "{out}");
    assert_eq!(out.section("state_left"), "", "{out}");
}

#[test]
fn net_devices_without_a_network_namespace_or_with_bad_names_are_refused() {
    let b = TestBundle::new(&["true"]);
    b.edit(|c| {
        c["linux"]["netDevices"] = json!({"d0": {}});
        drop_namespace(c, "network");
    });
    assert_refused(
        &b,
        "linux.netDevices: needs a network namespace of the container's own",
    );
    b.edit(|c| {
        add_namespace(c, json!({"type": "network"}));
        c["linux"]["netDevices"] = json!({"d0": {"name": "x"}, "d1": {"name": "x"}});
    });
    assert_refused(
        &b,
        "linux.netDevices.d1.name \"x\": two devices get the same name",
    );
    b.edit(|c| c["linux"]["netDevices"] = json!({"d0": {"name": "a/b"}}));
    assert_refused(
        &b,
        "linux.netDevices.d0.name \"a/b\": not a valid interface name",
    );
    b.edit(|c| c["linux"]["netDevices"] = json!({"no-such-dev0": {}}));
    assert_refused(
        &b,
        "linux.netDevices.no-such-dev0: find the host device: No such device",
    );
}

// ---------------------------------------------------------------- the same fields for `exec`

/// `create` (and `start` unless `created_only`) a `sleep` container; returns its id.
fn sleeping(b: &TestBundle, created_only: bool) -> String {
    let id = unique_id("s13-exec");
    let bundle = b.path().to_str().unwrap().to_string();
    let out = b.gruntime(&["create", "--bundle", &bundle, &id]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    if !created_only {
        let out = b.gruntime(&["start", &id]);
        assert!(out.status.success(), "start: {}", stderr(&out));
    }
    id
}

#[test]
fn exec_joins_the_time_namespace_even_before_start_and_inherits_the_container_settings() {
    let b = TestBundle::new(&["sleep", "60"]);
    b.edit(|c| {
        add_namespace(c, json!({"type": "time"}));
        c["linux"]["timeOffsets"] = json!({"boottime": {"secs": 5000}});
        c["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 4});
        c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6});
        c["process"]["execCPUAffinity"] = json!({"final": "0"});
        c["linux"]["personality"] = json!({"domain": "LINUX32"});
        c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_INTERLEAVE", "nodes": "0"});
    });
    for created_only in [true, false] {
        let id = sleeping(&b, created_only);
        let out = b.gruntime(&[
            "exec",
            &id,
            "sh",
            "-c",
            "cat /proc/self/timens_offsets; cat /proc/$$/personality; head -1 /proc/$$/numa_maps; ionice -p $$; grep Cpus_allowed_list /proc/self/status; cat /proc/$$/stat; true",
        ]);
        assert!(out.status.success(), "exec: {}", stderr(&out));
        let o = stdout(&out);
        let lines: Vec<&str> = o.lines().collect();
        assert!(
            o.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["boottime", "5000", "0"]),
            "created_only={created_only}: {o}"
        );
        assert!(lines.contains(&"best-effort: prio 6"), "{o}");
        assert!(lines.contains(&"00000008"), "personality LINUX32: {o}");
        assert!(
            lines
                .iter()
                .any(|l| l.split_whitespace().nth(1) == Some("interleave:0")),
            "{o}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("Cpus_allowed_list:") && l.ends_with("\t0")),
            "{o}"
        );
        let (_, nice, _, policy) = sched_fields(lines.last().unwrap());
        assert_eq!((nice, policy), (4, 3), "{o}");
        assert!(b.gruntime(&["delete", "--force", &id]).status.success());
    }
}

#[test]
fn exec_process_file_sets_its_own_io_priority_scheduler_and_affinity_or_is_refused() {
    let b = TestBundle::new(&["sleep", "60"]);
    let id = sleeping(&b, false);
    let cpus = std::thread::available_parallelism().unwrap().get();
    let last = cpus - 1;
    let mut process = b.config()["process"].clone();
    process["args"] = json!([
        "sh",
        "-c",
        "ionice -p $$; grep Cpus_allowed_list /proc/self/status; cat /proc/$$/stat; true"
    ]);
    process["ioPriority"] = json!({"class": "IOPRIO_CLASS_RT", "priority": 1});
    process["scheduler"] =
        json!({"policy": "SCHED_RR", "priority": 3, "flags": ["SCHED_FLAG_RESET_ON_FORK"]});
    process["execCPUAffinity"] = json!({"initial": "0", "final": format!("{last}")});
    let pfile = b.path().join("process.json");
    std::fs::write(&pfile, serde_json::to_vec(&process).unwrap()).unwrap();
    let out = b.gruntime(&["exec", "--process", pfile.to_str().unwrap(), &id]);
    assert!(out.status.success(), "exec: {}", stderr(&out));
    let o = stdout(&out);
    let lines: Vec<&str> = o.lines().collect();
    assert_eq!(lines[0], "realtime: prio 1", "{o}");
    assert_eq!(
        lines[1].split_whitespace().last(),
        Some(last.to_string().as_str()),
        "{o}"
    );
    let (_, _, rt, policy) = sched_fields(lines[2]);
    assert_eq!((rt, policy), (3, 2), "{o}");

    process["scheduler"] = json!({"policy": "SCHED_RR"});
    std::fs::write(&pfile, serde_json::to_vec(&process).unwrap()).unwrap();
    let out = b.gruntime(&["exec", "--process", pfile.to_str().unwrap(), &id]);
    assert!(!out.status.success());
    let err = stderr(&out).replace("\\\"", "\"");
    assert!(
        err.contains("process.json: process.scheduler.priority: required for SCHED_RR"),
        "{err}"
    );
    process["scheduler"] = json!({"policy": "SCHED_OTHER"});
    process["ioPriority"] = json!({"class": "IOPRIO_CLASS_NOPE", "priority": 1});
    std::fs::write(&pfile, serde_json::to_vec(&process).unwrap()).unwrap();
    let out = b.gruntime(&["exec", "--process", pfile.to_str().unwrap(), &id]);
    let err = stderr(&out).replace("\\\"", "\"");
    assert!(
        err.contains("invalid process: ioPriority.class: unknown variant `IOPRIO_CLASS_NOPE`"),
        "{err}"
    );
    assert!(b.gruntime(&["delete", "--force", &id]).status.success());
}
