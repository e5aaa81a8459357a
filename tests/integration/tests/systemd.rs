//! gruntime's systemd cgroup driver (`--systemd-cgroup`), black-box.
//!
//! On the host (no systemd as init here): what is refused before systemd is asked, and what a create
//! that cannot reach systemd leaves behind (nothing). The driver against a real systemd — scopes,
//! properties, update, pause, kill, delete, the user manager — runs in the systemd-booted VM guest
//! (`systemd_guest_*` tests below, one boot).

use std::path::Path;
use std::sync::LazyLock;
use std::time::Duration;

use integration::cgroups::{add_bind, add_capability, make_bundle, set_resources};
use integration::vm::{has_line, Vm, VmOutput};
use integration::{gruntime_bin, make_busybox_rootfs, stderr, stdout, unique_id, TestBundle};
use serde_json::{json, Value};

fn sh(script: &str) -> TestBundle {
    TestBundle::new(&["sh", "-c", script])
}

/// `gruntime --systemd-cgroup run` with the given system-bus address.
fn run_systemd(b: &TestBundle, id: &str, bus: &str) -> std::process::Output {
    integration::run_via_files(
        b.cmd(&[
            "--systemd-cgroup",
            "run",
            "--bundle",
            b.path().to_str().unwrap(),
            id,
        ])
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus),
    )
}

fn assert_nothing_left(b: &TestBundle) {
    assert!(b.listed().is_empty(), "state left: {:?}", b.listed());
    assert!(
        b.leftover_processes().is_empty(),
        "processes left: {:?}",
        b.leftover_processes()
    );
    assert!(
        b.leftover_mounts().is_empty(),
        "mounts left: {:?}",
        b.leftover_mounts()
    );
}

#[test]
fn a_malformed_systemd_cgroups_path_is_refused_naming_the_value_before_anything_exists() {
    let b = sh("echo should-not-run");
    for (path, words) in [
        ("/sys/fs/cgroup/mine", "slice:prefix:name"),
        ("system.slice:docker", "slice:prefix:name"),
        ("system:docker:abc", "must end in .slice"),
        ("kube--pods.slice:cri:abc", "empty component"),
        ("system.slice:docker:", "name"),
        ("system.slice:doc ker:abc", "not a valid systemd unit name"),
    ] {
        b.edit(|c| c["linux"]["cgroupsPath"] = path.into());
        let out = run_systemd(&b, &unique_id("sdbad"), "unix:path=/nonexistent/bus");
        let err = stderr(&out);
        assert!(!out.status.success(), "{path}: accepted");
        assert!(
            err.contains("linux.cgroupsPath") && err.contains(path) && err.contains(words),
            "{path}: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{path}: not one line: {err}");
        assert!(!stdout(&out).contains("should-not-run"), "{path}: ran");
        assert_nothing_left(&b);
    }
}

#[test]
fn a_bad_systemd_property_annotation_is_refused_naming_the_annotation() {
    let b = sh("echo should-not-run");
    b.edit(|c| {
        c["annotations"] = serde_json::json!({"org.systemd.property.TasksMax": "uint64 many"})
    });
    let out = run_systemd(&b, &unique_id("sdann"), "unix:path=/nonexistent/bus");
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("org.systemd.property.TasksMax")
            && err.contains("many")
            && err.contains("uint64"),
        "{err}"
    );
    assert_nothing_left(&b);
}

#[test]
fn without_a_reachable_systemd_create_names_the_socket_and_leaves_nothing() {
    // Where systemd is this host's init its private socket answers, which is the fallback this test
    // would otherwise check: the systemd guest's tests cover that host.
    if Path::new("/run/systemd/private").exists() {
        eprintln!("skipped: systemd runs on this host");
        return;
    }
    let b = sh("echo should-not-run");
    let id = unique_id("sdnobus");
    let out = run_systemd(&b, &id, "unix:path=/nonexistent/system_bus_socket");
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("--systemd-cgroup")
            && err.contains("/nonexistent/system_bus_socket")
            && err.contains("/run/systemd/private"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
    assert!(!stdout(&out).contains("should-not-run"));
    assert_nothing_left(&b);
}

#[test]
fn features_reports_the_systemd_drivers() {
    let b = sh("true");
    let out = b.gruntime(&["features"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let f: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(f["linux"]["cgroup"]["systemd"], true, "{f}");
    assert_eq!(f["linux"]["cgroup"]["systemdUser"], true, "{f}");
}

// ---- Against a real systemd: one boot of the systemd guest ----

/// Each `== NAME` section is one check; the Rust tests below assert on their section.
const GUEST_SCRIPT: &str = r#"
mkdir -p /run/gt-bin && ln -s "$GRUNTIME" /run/gt-bin/gruntime
G=/run/gt-bin/gruntime; S="--root /run/gt --systemd-cgroup"; B="$BUNDLES"
section() { echo "== $1"; echo "section $1 at ${SECONDS}s" >&2; }
wait_until() { local n=$(($1 * 10)); shift; while ! "$@" 2>/dev/null; do n=$((n - 1)); [ $n -gt 0 ] || return 1; sleep 0.1; done; }
status_of() { $G $S state "$1" | grep -o '"status": "[a-z]*"' | cut -d'"' -f4; }
has_status() { test "$(status_of "$1")" = "$2"; }
show() { systemctl show -p "$2" --value "$1"; }
units_like() { systemctl list-units --all --no-legend --plain "$1" | wc -l; }
msg() { sed 's/.*msg="\(.*\)"$/\1/' "$@"; }

section scope
$G $S run -d --bundle $B/lim lim >/tmp/lim.out 2>&1; echo "run: $?"
U=gtest-lim.scope
echo "active $(systemctl is-active $U)"
for p in Slice Delegate MemoryMax TasksMax CPUQuotaPerSecUSec AllowedCPUs ControlGroup DevicePolicy; do echo "$p=$(show $U $p)"; done
CG=/sys/fs/cgroup$(show $U ControlGroup)
for f in memory.max pids.max cpu.max cpuset.cpus; do echo "$f $(cat $CG/$f)"; done
echo "init in scope: $(grep -c "^$($G $S state lim | grep -o '"pid": [0-9]*' | grep -o '[0-9]*')\$" $CG/cgroup.procs)"
echo "state cgroup matches: $(grep -c "\"cgroup\":\"$CG\"" /run/gt/lim/state.json)"
$G $S exec lim cat /proc/self/cgroup | sed 's/^/exec sees: /'

section pause_kill_ps
$G $S pause lim; echo "pause: $?"; echo "status $(status_of lim)"; grep frozen $CG/cgroup.events
$G $S resume lim; echo "resume: $?"; echo "status $(status_of lim)"
echo "ps pids: $($G $S ps --format json lim | tr ',' '\n' | grep -c '[0-9]')"
$G $S events --stats lim | python3 -c 'import json,sys; print("stats memory limit", json.load(sys.stdin)["data"]["memory"]["usage"]["limit"])'

section update
$G $S update --memory 48m --pids-limit 30 lim; echo "update: $?"
echo "MemoryMax=$(show $U MemoryMax) TasksMax=$(show $U TasksMax)"
echo "memory.max $(cat $CG/memory.max) pids.max $(cat $CG/pids.max)"

section delete
$G $S kill lim KILL; wait_until 30 has_status lim stopped; echo "status $(status_of lim)"
$G $S delete lim; echo "delete: $?"
echo "units left: $(units_like 'gtest-*')"
echo "failed units: $(systemctl list-units --failed --no-legend --plain | wc -l)"
test -d $CG && echo "cgroup left" || echo "cgroup gone"

section default_path
$G $S run -d --bundle $B/dflt dflt >/dev/null 2>&1; echo "run: $?"
echo "unit $(systemctl is-active gruntime-dflt.scope) $(show gruntime-dflt.scope Slice)"
$G $S delete --force dflt; echo "delete --force: $?"
echo "units left: $(units_like 'gruntime-dflt*')"

section nested_slice
$G $S run -d --bundle $B/pod pod >/dev/null 2>&1; echo "run: $?"
echo "ControlGroup=$(show cri-containerd-podc1.scope ControlGroup)"
$G $S delete --force pod; echo "delete --force: $?"
echo "units left: $(units_like 'cri-containerd-podc1*')"

section devices
$G $S run --bundle $B/dev dev 2>&1 | sed 's/^/out: /'
echo "exit: ${PIPESTATUS[0]}"

section annotations
$G $S run -d --bundle $B/ann ann >/dev/null 2>&1; echo "run: $?"
echo "TimeoutStopUSec=$(show gtest-ann.scope TimeoutStopUSec) CollectMode=$(show gtest-ann.scope CollectMode)"
$G $S delete --force ann >/dev/null 2>&1

section foreground_exit
$G $S run --bundle $B/exit3 exit3 >/dev/null 2>&1; echo "exit: $?"
echo "units left: $(units_like 'gtest-exit3*')"
echo "state left: $(ls /run/gt | wc -l)"

section unit_exists
$G $S run -d --bundle $B/dup dup1 >/dev/null 2>&1; echo "first: $?"
$G $S run -d --bundle $B/dup dup2 >/dev/null 2>/tmp/dup.err; echo "second: $?"
msg /tmp/dup.err
echo "second state: $(ls /run/gt | grep -c dup2)"
echo "first still active: $(systemctl is-active gtest-dup.scope)"
$G $S delete --force dup1

section private_socket
DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent $G $S run --bundle $B/exit3 priv >/dev/null 2>/tmp/priv.err; echo "exit: $?"
msg /tmp/priv.err
echo "units left: $(units_like 'gtest-exit3*')"

section bad_kernel_value
$G $S run -d --bundle $B/badcpus badcpus >/dev/null 2>/tmp/bad.err; echo "run: $?"
msg /tmp/bad.err
echo "units left: $(units_like 'gtest-badcpus*')"
echo "state left: $(ls /run/gt | grep -c badcpus)"

section checkpoint_restore
# CRIU under the systemd driver: the restore starts a new scope (criu swrk is its first process) and the
# restored counter goes on inside it.
mkdir -p /tmp/out-ck
$G $S run -d --bundle $B/ck ck </dev/null >/dev/null 2>&1; echo "run: $?"
more_lines() { test "$(wc -l < "$1")" -gt "$2"; }
wait_until 60 more_lines /tmp/out-ck/log 5; echo "counting: $?"
$G $S checkpoint --image-path /tmp/ck-img ck; echo "checkpoint: $?"
echo "units after checkpoint: $(units_like 'gtest-ck*')"
n=$(wc -l < /tmp/out-ck/log)
$G $S restore -d --bundle $B/ck --image-path /tmp/ck-img ck </dev/null >/tmp/ck-r.out 2>&1; echo "restore: $?"
msg /tmp/ck-r.out
echo "unit after restore: $(systemctl is-active gtest-ck.scope)"
CKCG=/sys/fs/cgroup$(show gtest-ck.scope ControlGroup)
grep -qx "$($G $S state ck | grep -o '"pid": [0-9]*' | grep -o '[0-9]*$')" $CKCG/cgroup.procs && echo "restored init in the scope"
wait_until 30 more_lines /tmp/out-ck/log $((n + 3)); echo "counting again: $?"
[ "$(sed -n "$((n + 1))p" /tmp/out-ck/log)" = "$((n + 1))" ] && echo "continues from the next value"
$G $S delete -f ck; echo "delete: $?"
echo "units left: $(units_like 'gtest-ck*')"

section rootless
useradd -m -s /bin/sh grtsd >/dev/null 2>&1
UID_=$(id -u grtsd)
systemctl start user@$UID_.service; echo "user manager: $?"
cp -r $B/rootless /tmp/rootless-bundle && chown -R grtsd: /tmp/rootless-bundle
# `spec --rootless` maps the id of whoever ran it (root, on the host): map the test user's instead.
python3 -c 'import json,sys; p=sys.argv[1]; c=json.load(open(p)); [m.update(hostID=int(sys.argv[2])) for k in ("uidMappings","gidMappings") for m in c["linux"][k]]; json.dump(c,open(p,"w"))' /tmp/rootless-bundle/config.json "$UID_"
cp "$GRUNTIME" /tmp/gruntime-user && chmod 755 /tmp/gruntime-user
RUN_USER="runuser -u grtsd -- env XDG_RUNTIME_DIR=/run/user/$UID_ DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/$UID_/bus"
$RUN_USER /tmp/gruntime-user --root /run/user/$UID_/gt --systemd-cgroup run -d --bundle /tmp/rootless-bundle rl >/tmp/rl.out 2>&1; echo "run: $?"; msg /tmp/rl.out
echo "user unit: $($RUN_USER systemctl --user is-active gtest-rl.scope)"
echo "ControlGroup=$($RUN_USER systemctl --user show -p ControlGroup --value gtest-rl.scope)"
$RUN_USER /tmp/gruntime-user --root /run/user/$UID_/gt --systemd-cgroup delete --force rl; echo "delete: $?"
echo "user units left: $($RUN_USER systemctl --user list-units --all --no-legend --plain 'gtest-*' | wc -l)"

section end
echo "scopes left: $(systemctl list-units --all --no-legend --plain '*.scope' | grep -v -e '^init.scope' -e '^session-' | wc -l)"
"#;

fn bundles(dir: &Path) {
    let rootfs = dir.join("rootfs");
    make_busybox_rootfs(&rootfs);
    let b = |name: &str, path: Option<&str>, args: &[&str], edit: &dyn Fn(&mut Value)| {
        make_bundle(&dir.join(name), &rootfs, args, |c| {
            match path {
                Some(p) => c["linux"]["cgroupsPath"] = json!(p),
                None => {
                    c["linux"].as_object_mut().unwrap().remove("cgroupsPath");
                }
            }
            edit(c)
        })
    };
    let sleep = &["sleep", "1000"][..];
    b("lim", Some("system.slice:gtest:lim"), sleep, &|c| {
        set_resources(
            c,
            json!({"memory": {"limit": 64 << 20}, "pids": {"limit": 20},
                   "cpu": {"quota": 50000, "period": 100000, "cpus": "0"}}),
        )
    });
    b("dflt", None, sleep, &|_| {});
    b(
        "pod",
        Some("kubepods-besteffort-pod123.slice:cri-containerd:podc1"),
        sleep,
        &|_| {},
    );
    // The node goes on the container's /dev; the rules allow writing it and nothing else new: both
    // systemd's device program and ours must let the write through, and /dev/full stays allowed.
    b(
        "dev",
        Some("system.slice:gtest:dev"),
        &[
            "sh",
            "-c",
            "mknod /dev/kmsg-test c 1 11 && echo mknod-ok; \
             (echo x > /dev/kmsg-test) 2>/dev/null && echo kmsg-open-ok || echo kmsg-open-denied; \
             mknod /dev/mem-test c 1 1; (head -c 1 /dev/mem-test >/dev/null) 2>/dev/null && echo mem-open-ok || echo mem-open-denied; \
             (echo y > /dev/null) && echo null-ok",
        ],
        &|c| {
            add_capability(c, "CAP_MKNOD");
            set_resources(
                c,
                json!({"devices": [{"allow": false, "access": "rwm"},
                                   {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "w"}]}),
            )
        },
    );
    b("ann", Some("system.slice:gtest:ann"), sleep, &|c| {
        c["annotations"] = json!({
            "org.systemd.property.TimeoutStopSec": "uint64 7",
            "org.systemd.property.CollectMode": "'inactive-or-failed'"
        })
    });
    b(
        "exit3",
        Some("system.slice:gtest:exit3"),
        &["sh", "-c", "exit 3"],
        &|_| {},
    );
    b("dup", Some("system.slice:gtest:dup"), sleep, &|_| {});
    b(
        "ck",
        Some("system.slice:gtest:ck"),
        &[
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i >> /out/log; sleep 0.1; done",
        ],
        &|c| add_bind(c, "/tmp/out-ck", "/out"),
    );
    b("badcpus", Some("system.slice:gtest:badcpus"), sleep, &|c| {
        set_resources(c, json!({"cpu": {"cpus": "0-999"}}))
    });
    // Rootless: `gruntime spec --rootless` (a user namespace mapping the user's own id), its own rootfs
    // (the guest copies the bundle and gives it to the test user).
    let rl = dir.join("rootless");
    std::fs::create_dir_all(&rl).unwrap();
    let out = integration::run(
        std::process::Command::new(gruntime_bin())
            .args(["spec", "--rootless", "--bundle"])
            .arg(&rl),
    );
    assert!(out.status.success(), "spec --rootless: {}", stderr(&out));
    make_busybox_rootfs(&rl.join("rootfs"));
    let cfg = rl.join("config.json");
    let mut c: Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    c["process"]["args"] = json!(["sleep", "1000"]);
    c["process"]["terminal"] = json!(false);
    c["linux"]["cgroupsPath"] = json!(":gtest:rl");
    std::fs::write(&cfg, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
}

static GUEST: LazyLock<Result<VmOutput, String>> = LazyLock::new(|| {
    let share = tempfile::Builder::new()
        .prefix("systemd-vm-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    bundles(share.path());
    Vm::systemd()
        .share(share.path())
        .env("GRUNTIME", gruntime_bin().display().to_string())
        .env("BUNDLES", share.path().display().to_string())
        .timeout(Duration::from_secs(600))
        .run(GUEST_SCRIPT)
        .map_err(|e| e.to_string())
});

fn section(name: &str) -> (String, &'static VmOutput) {
    match &*GUEST {
        Ok(out) => (out.section(name), out),
        Err(e) => panic!("the systemd VM batch failed: {e}"),
    }
}

fn assert_lines(name: &str, want: &[&str]) {
    section(name).1.assert_lines(name, want);
}

#[test]
fn systemd_guest_a_container_is_a_delegated_scope_with_its_limits_as_properties_and_files() {
    assert_lines(
        "scope",
        &[
            "run: 0",
            "active active",
            "Slice=system.slice",
            "Delegate=yes",
            "MemoryMax=67108864",
            "TasksMax=20",
            "CPUQuotaPerSecUSec=500ms",
            "AllowedCPUs=0",
            "ControlGroup=/system.slice/gtest-lim.scope",
            "memory.max 67108864",
            "pids.max 20",
            "cpu.max 50000 100000",
            "cpuset.cpus 0",
            "init in scope: 1",
            "state cgroup matches: 1",
            "exec sees: 0::/",
            "DevicePolicy=strict",
        ],
    );
}

#[test]
fn systemd_guest_pause_resume_ps_and_stats_work_on_the_scope() {
    assert_lines(
        "pause_kill_ps",
        &[
            "pause: 0",
            "status paused",
            "frozen 1",
            "resume: 0",
            "status running",
            "ps pids: 1",
            "stats memory limit 67108864",
        ],
    );
}

#[test]
fn systemd_guest_update_sets_the_units_properties_and_the_files() {
    assert_lines(
        "update",
        &[
            "update: 0",
            "MemoryMax=50331648 TasksMax=30",
            "memory.max 50331648 pids.max 30",
        ],
    );
}

#[test]
fn systemd_guest_delete_stops_the_unit_and_leaves_no_failed_unit_or_cgroup() {
    assert_lines(
        "delete",
        &[
            "status stopped",
            "delete: 0",
            "units left: 0",
            "failed units: 0",
            "cgroup gone",
        ],
    );
    assert_lines(
        "default_path",
        &[
            "run: 0",
            "unit active system.slice",
            "delete --force: 0",
            "units left: 0",
        ],
    );
}

#[test]
fn systemd_guest_a_nested_slice_is_placed_under_its_parent_slices() {
    assert_lines(
        "nested_slice",
        &[
            "run: 0",
            "ControlGroup=/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod123.slice/cri-containerd-podc1.scope",
            "delete --force: 0",
            "units left: 0",
        ],
    );
}

#[test]
fn systemd_guest_device_rules_hold_under_systemds_device_policy() {
    assert_lines(
        "devices",
        &[
            "out: mknod-ok",
            "out: kmsg-open-ok",
            "out: mem-open-denied",
            "out: null-ok",
            "exit: 0",
        ],
    );
}

#[test]
fn systemd_guest_property_annotations_reach_the_unit() {
    assert_lines(
        "annotations",
        &[
            "run: 0",
            "TimeoutStopUSec=7s CollectMode=inactive-or-failed",
        ],
    );
}

#[test]
fn systemd_guest_a_foreground_run_returns_the_exit_status_and_leaves_no_unit() {
    assert_lines(
        "foreground_exit",
        &["exit: 3", "units left: 0", "state left: 0"],
    );
}

/// With no system bus the private socket of systemd is used, as runc falls back. This failed in the
/// batch (never alone) until gruntime sent `BEGIN` with `AUTH`: systemd leaves a first message unanswered
/// when it arrives in the same read as `BEGIN`, which a busy guest made likely.
#[test]
fn systemd_guest_the_private_socket_serves_when_the_bus_address_is_dead() {
    assert_lines("private_socket", &["exit: 3", "units left: 0"]);
}

#[test]
fn systemd_guest_a_unit_that_already_exists_is_an_error_naming_it_and_the_first_container_keeps_it()
{
    let (s, out) = section("unit_exists");
    assert!(
        has_line(&s, "first: 0") && has_line(&s, "second: 1"),
        "{out}"
    );
    assert!(
        s.contains("gtest-dup.scope") && s.contains("--systemd-cgroup"),
        "the error does not name the unit:\n{out}"
    );
    assert!(has_line(&s, "second state: 0"), "{out}");
    assert!(has_line(&s, "first still active: active"), "{out}");
}

#[test]
fn systemd_guest_a_value_the_kernel_refuses_stops_the_unit_and_leaves_nothing() {
    let (s, out) = section("bad_kernel_value");
    assert!(has_line(&s, "run: 1"), "{out}");
    assert!(
        s.contains("cpuset.cpus"),
        "the error does not name the file:\n{out}"
    );
    assert!(
        has_line(&s, "units left: 0") && has_line(&s, "state left: 0"),
        "{out}"
    );
}

#[test]
fn systemd_guest_a_checkpointed_container_restores_into_a_new_scope_and_goes_on_counting() {
    assert_lines(
        "checkpoint_restore",
        &[
            "run: 0",
            "counting: 0",
            "checkpoint: 0",
            "units after checkpoint: 0",
            "restore: 0",
            "unit after restore: active",
            "restored init in the scope",
            "counting again: 0",
            "continues from the next value",
            "delete: 0",
            "units left: 0",
        ],
    );
}

#[test]
fn systemd_guest_rootless_containers_are_scopes_of_the_users_own_manager() {
    let (s, out) = section("rootless");
    for want in [
        "user manager: 0",
        "run: 0",
        "user unit: active",
        "delete: 0",
        "user units left: 0",
    ] {
        assert!(has_line(&s, want), "missing `{want}`:\n{out}");
    }
    let cg = s
        .lines()
        .find_map(|l| l.strip_prefix("ControlGroup="))
        .unwrap_or("");
    assert!(
        cg.starts_with("/user.slice/user-") && cg.ends_with("/user.slice/gtest-rl.scope"),
        "not under the user's manager: {cg:?}\n{out}"
    );
}

#[test]
fn systemd_guest_no_unit_of_the_batch_survives_it() {
    assert_lines("end", &["scopes left: 0"]);
}
