//! gruntime's cgroup v2 manager, black-box.
//!
//! Most checks need a pure cgroup v2 kernel with every controller: they run in one VM boot (the
//! harness of `integration::vm`), one `== NAME` section of output per check, and each test below
//! asserts on its section. The last tests run on the host itself, whose cgroups are a v1/v2 hybrid:
//! there gruntime must still freeze and kill through the cgroup2 hierarchy.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use integration::cgroups::{add_bind, add_capability, make_bundle, set_resources};
use integration::vm::{has_line, Vm, VmOutput};
use integration::{gruntime_bin, make_busybox_rootfs, run, stderr, stdout, unique_id};
use serde_json::{json, Value};

/// The guest's root cgroup has no processes but the batch, so the default cgroup of a container is
/// `/sys/fs/cgroup/gruntime/<id>`.
const GUEST_SCRIPT: &str = r#"
# $G is used unquoted: give it a path without the spaces the checkout's may have.
mkdir -p /run/gt-bin && ln -s "$GRUNTIME" /run/gt-bin/gruntime
G=/run/gt-bin/gruntime; S="--root /run/gt"; B="$BUNDLES"
CG=/sys/fs/cgroup/gruntime
section() { echo "== $1"; echo "section $1 at ${SECONDS}s" >&2; }
# wait_until SECONDS COMMAND...: poll every 0.1 s.
wait_until() { local n=$(($1 * 10)); shift; while ! "$@" 2>/dev/null; do n=$((n - 1)); [ $n -gt 0 ] || return 1; sleep 0.1; done; }
count_of() { cat /tmp/pause-out/count 2>/dev/null; }
# No python in the polling helpers: each start costs a second of TCG time.
status_of() { $G $S state "$1" | grep -o '"status": "[a-z]*"' | cut -d'"' -f4; }
npids() { $G $S ps --format json "$1" | tr ',' '\n' | grep -c '[0-9]'; }
# Re-evaluated on every poll of wait_until.
has_npids() { test "$(npids "$1")" = "$2"; }
has_status() { test "$(status_of "$1")" = "$2"; }

section memory_oom
mkdir -p /tmp/mem-go
$G $S run -d --bundle $B/mem mem >/tmp/mem.out 2>&1; echo "run: $?"
$G $S events --interval 1s mem >/tmp/mem-events 2>&1 &
EV=$!
# The first stats event means the stream has read its OOM baseline: only then may dd start.
wait_until 60 test -s /tmp/mem-events; touch /tmp/mem-go/go
echo "memory.max $(cat $CG/mem/memory.max)"
echo "memory.swap.max $(cat $CG/mem/memory.swap.max)"
wait_until 60 grep -q 'dd-status' /tmp/mem.out; echo "dd finished: $?"
sleep 1.5
grep -o '^oom_kill [0-9]*' $CG/mem/memory.events
grep -o 'dd-status=[0-9]*' /tmp/mem.out
kill $EV; wait $EV 2>/dev/null
echo "oom events: $(grep -c '"type":"oom"' /tmp/mem-events)"
echo "stats events: $(grep -c '"type":"stats"' /tmp/mem-events)"
$G $S events --stats mem >/tmp/mem-stats
python3 -c 'import json,sys; e=json.load(sys.stdin); print("stats:", e["type"], e["id"], e["data"]["memory"]["usage"]["limit"], "pids", e["data"]["pids"]["current"] > 0)' </tmp/mem-stats

section pids
$G $S run -d --bundle $B/pids pids >/tmp/pids.out 2>&1; echo "run: $?"
wait_until 60 grep -q started /tmp/pids.out; echo "started: $?"
echo "pids.max $(cat $CG/pids/pids.max)"
[ "$(cat $CG/pids/pids.current)" -le 10 ] && echo "pids.current within the limit"
grep -q "can't fork" /tmp/pids.out && echo "fork failed in the container"
grep -o 'inner-exit=[0-9]*' /tmp/pids.out

section cpu
$G $S run -d --bundle $B/cpu cpu >/dev/null 2>&1; echo "run: $?"
D=/sys/fs/cgroup/gruntime-test/cpu
for f in cpu.weight cpu.max cpuset.cpus cpuset.mems memory.high memory.low hugetlb.2MB.max; do echo "$f $(cat $D/$f)"; done
echo "procs $(wc -l < $D/cgroup.procs)"

section devices
$G $S run --bundle $B/dev-allowed dev-allowed 2>&1 | sed 's/^/allowed: /'
$G $S run --bundle $B/dev-denied dev-denied 2>&1 | sed 's/^/denied: /'

section pause
mkdir -p /tmp/pause-out
$G $S run -d --bundle $B/pause pause >/dev/null 2>&1; echo "run: $?"
wait_until 60 test -s /tmp/pause-out/count; echo "counting: $?"
$G $S pause pause; echo "pause: $?"
echo "status $(status_of pause)"
grep frozen $CG/pause/cgroup.events
a=$(count_of); sleep 1.5; b=$(count_of)
[ "$a" = "$b" ] && echo "counter stopped" || echo "counter moved while paused: $a -> $b"
$G $S resume pause; echo "resume: $?"
echo "status $(status_of pause)"
sleep 1.5; c=$(count_of)
[ "$c" -gt "$b" ] && echo "counter moves again" || echo "counter stuck after resume: $b -> $c"
$G $S resume pause 2>&1 | grep -o 'cannot resume[^"]*'

section kill_all
$G $S run -d --bundle $B/killall killall >/dev/null 2>&1; echo "run: $?"
wait_until 60 has_npids killall 4; echo "pids before: $(npids killall)"
echo "sleeps in ps table: $($G $S ps killall | awk '$8 == "sleep"' | wc -l)"
$G $S ps killall | head -n1 | grep -q PID && echo "ps table has its header"
$G $S kill --all killall TERM; echo "kill TERM: $?"
wait_until 30 has_npids killall 1; echo "pids after TERM: $(npids killall)"
$G $S kill --all killall KILL; echo "kill KILL: $?"
wait_until 30 has_status killall stopped; echo "status $(status_of killall)"
echo "procs left: $(cat $CG/killall/cgroup.procs | wc -l)"

section update
$G $S run -d --bundle $B/upd upd >/dev/null 2>&1; echo "run: $?"
echo "before $(cat $CG/upd/memory.max)"
$G $S update --memory 48m upd; echo "update --memory: $?"
echo "memory.max $(cat $CG/upd/memory.max)"
echo '{"pids":{"limit":20},"cpu":{"quota":30000,"period":100000}}' | $G $S update --resources - upd; echo "update --resources -: $?"
echo "pids.max $(cat $CG/upd/pids.max)"
echo "cpu.max $(cat $CG/upd/cpu.max)"
echo '{"memory":{"limit":41943040}}' > /tmp/upd.json
$G $S update --resources /tmp/upd.json --pids-limit 25 --cpu-shares 1024 upd; echo "update file+flags: $?"
echo "memory.max $(cat $CG/upd/memory.max)"
echo "pids.max $(cat $CG/upd/pids.max)"
echo "cpu.weight $(cat $CG/upd/cpu.weight)"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["linux"]["resources"]; print("saved", r["memory"]["limit"], r["pids"]["limit"], r["cpu"]["quota"])' /run/gt/upd/config.json
$G $S update --memory -5 upd 2>&1 | grep -o 'linux.resources.memory.limit: [^"]*'
echo "after bad update $(cat $CG/upd/memory.max)"

section pod_stop
# A pod's containers share a pid namespace that none of them owns: the init's death leaves its children
# running in its cgroup. containerd's shim then calls kill --all and delete on the stopped container.
for c in side1 side2; do $G $S run -d --bundle $B/sidecar $c >/dev/null 2>&1; echo "run $c: $?"; done
for c in side1 side2; do wait_until 60 has_npids $c 2; $G $S kill $c KILL; wait_until 30 has_status $c stopped; done
echo "status $(status_of side1) $(status_of side2)"
echo "left in side1: $(cat $CG/side1/cgroup.procs | wc -l)"
$G $S kill --all side1 KILL; echo "kill --all stopped: $?"
wait_until 30 test ! -s $CG/side1/cgroup.procs; echo "side1 emptied: $?"
$G $S delete side1; echo "delete side1: $?"
echo "left in side2: $(cat $CG/side2/cgroup.procs | wc -l)"
$G $S delete side2; echo "delete side2 with leftovers: $?"
ls -d $CG/side1 $CG/side2 2>/dev/null | wc -l | sed 's/^/cgroups left: /'
$G $S kill --all side1 KILL 2>&1 | grep -o 'does not exist\|not found' | head -n1 | sed 's/^/kill --all gone: /'

section delete
for c in mem pids cpu pause killall upd; do $G $S delete --force $c || echo "delete $c failed"; done
echo "containers left: $($G $S list -q | wc -l)"
ls -d $CG /sys/fs/cgroup/gruntime-test/cpu 2>&1 | sed 's/.*cannot access/gone/'

section bad_values
for b in bad-memory bad-unified bad-cpus bad-kernel-cpus; do
    $G $S run -d --bundle $B/$b $b >/dev/null 2>/tmp/err; echo "$b rc=$?"; sed 's/.*msg="\(.*\)"$/\1/' /tmp/err
done
echo "state dirs left: $(ls /run/gt | wc -l)"
echo "cgroups left: $(ls -d $CG/bad-* /sys/fs/cgroup/gruntime-bad 2>/dev/null | wc -l)"

section done
"#;

struct Guest {
    out: VmOutput,
}

fn bundles(dir: &Path) {
    let rootfs = dir.join("rootfs");
    make_busybox_rootfs(&rootfs);
    let mb = |n: i64| n << 20;
    let b = |name: &str, args: &[&str], edit: &dyn Fn(&mut Value)| {
        make_bundle(&dir.join(name), &rootfs, args, edit)
    };
    b(
        "mem",
        &[
            "sh",
            "-c",
            "until [ -e /go/go ]; do sleep 0.1; done; \
             dd if=/dev/zero of=/dev/null bs=64M count=1; echo dd-status=$?; sleep 1000",
        ],
        &|c| {
            add_bind(c, "/tmp/mem-go", "/go");
            set_resources(c, json!({"memory": {"limit": mb(32), "swap": mb(32)}}))
        },
    );
    b(
        "pids",
        &[
            "sh",
            "-c",
            "sh -c 'for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 1000 & done'; echo inner-exit=$?; echo started; sleep 1000",
        ],
        &|c| set_resources(c, json!({"pids": {"limit": 10}})),
    );
    b("cpu", &["sleep", "1000"], &|c| {
        c["linux"]["cgroupsPath"] = json!("/gruntime-test/cpu");
        set_resources(
            c,
            json!({"cpu": {"shares": 512, "quota": 20000, "period": 100000, "cpus": "0", "mems": "0"},
                   "memory": {"reservation": 16 << 20},
                   "hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}],
                   "unified": {"memory.high": "50000000"}}),
        )
    });
    // Both try the same thing; only the device rules differ. runc (and gruntime) always allow mknod,
    // so the node is created in both — using it is what the filter refuses.
    // The node goes on the container's /dev (a tmpfs without nodev, unlike /tmp).
    let dev_script = "mknod /dev/kmsg-test c 1 11 && echo mknod-ok; \
                      (echo x > /dev/kmsg-test) 2>/dev/null && echo kmsg-open-ok || echo kmsg-open-denied; \
                      (echo y > /dev/null) && echo null-ok; \
                      (head -c 1 /dev/zero | wc -c) 2>&1";
    b("dev-allowed", &["sh", "-c", dev_script], &|c| {
        add_capability(c, "CAP_MKNOD");
        set_resources(
            c,
            json!({"devices": [{"allow": false, "access": "rwm"},
                               {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "w"}]}),
        )
    });
    b("dev-denied", &["sh", "-c", dev_script], &|c| {
        add_capability(c, "CAP_MKNOD");
        set_resources(c, json!({"devices": [{"allow": false, "access": "rwm"}]}))
    });
    b(
        "pause",
        &[
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i > /out/count; sleep 0.1; done",
        ],
        &|c| add_bind(c, "/tmp/pause-out", "/out"),
    );
    b(
        "killall",
        &[
            "sh",
            "-c",
            "sleep 1000 & sleep 1000 & sleep 1000 & exec sleep 1000",
        ],
        &|_| {},
    );
    b(
        "sidecar",
        &["sh", "-c", "sleep 1000 & exec sleep 1001"],
        &|c| {
            let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
            ns.retain(|n| n["type"] != "pid");
        },
    );
    b("upd", &["sleep", "1000"], &|c| {
        set_resources(c, json!({"memory": {"limit": mb(64)}}))
    });
    b("bad-memory", &["true"], &|c| {
        set_resources(c, json!({"memory": {"limit": -5}}))
    });
    b("bad-unified", &["true"], &|c| {
        set_resources(c, json!({"unified": {"nosuchctl.max": "1"}}))
    });
    // Syntax the manager accepts but the kernel refuses (no such CPUs), in a cgroup path whose
    // ancestors this create makes: they must go too.
    b("bad-kernel-cpus", &["true"], &|c| {
        c["linux"]["cgroupsPath"] = json!("/gruntime-bad/deep/leaf");
        set_resources(c, json!({"cpu": {"cpus": "0-999"}}))
    });
    b("bad-cpus", &["true"], &|c| {
        set_resources(c, json!({"cpu": {"cpus": "abc"}}))
    });
}

static GUEST: LazyLock<Result<Guest, String>> = LazyLock::new(|| {
    let share = tempfile::Builder::new()
        .prefix("cgroups-vm-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    bundles(share.path());
    let out = Vm::new()
        .share(share.path())
        .env("GRUNTIME", gruntime_bin().display().to_string())
        .env("BUNDLES", share.path().display().to_string())
        .timeout(Duration::from_secs(540))
        .run(GUEST_SCRIPT)
        .map_err(|e| e.to_string())?;
    Ok(Guest { out })
});

fn section(name: &str) -> (String, &'static VmOutput) {
    match &*GUEST {
        Ok(g) => (g.out.section(name), &g.out),
        Err(e) => panic!("the cgroups VM batch failed: {e}"),
    }
}

#[test]
fn memory_limit_is_enforced_and_the_oom_kill_is_an_event() {
    let (s, out) = section("memory_oom");
    for want in [
        "run: 0",
        "memory.max 33554432",
        "memory.swap.max 0",
        "dd finished: 0",
        "oom_kill 1",
        "dd-status=137",
        "oom events: 1",
        "stats: stats mem 33554432 pids True",
    ] {
        assert!(has_line(&s, want), "missing `{want}`:\n{out}");
    }
    let stats_events: usize = s
        .lines()
        .find_map(|l| l.strip_prefix("stats events: "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        stats_events >= 2,
        "fewer than 2 periodic stats events:\n{out}"
    );
}

#[test]
fn pids_limit_makes_fork_fail() {
    let (s, out) = section("pids");
    for want in [
        "run: 0",
        "started: 0",
        "pids.max 10",
        "pids.current within the limit",
        "fork failed in the container",
        "inner-exit=2",
    ] {
        assert!(has_line(&s, want), "missing `{want}`:\n{out}");
    }
}

#[test]
fn cpu_cpuset_hugetlb_and_unified_values_land_in_the_files_of_an_absolute_cgroups_path() {
    let (s, out) = section("cpu");
    // shares 512 → weight 1 + (512-2)*9999/262142 = 20, as runc converts it.
    for want in [
        "run: 0",
        "cpu.weight 20",
        "cpu.max 20000 100000",
        "cpuset.cpus 0",
        "cpuset.mems 0",
        "memory.high 49999872",
        "memory.low 16777216",
        "hugetlb.2MB.max 4194304",
        "procs 1",
    ] {
        assert!(has_line(&s, want), "missing `{want}`:\n{out}");
    }
}

#[test]
fn a_stopped_container_with_processes_left_in_its_cgroup_can_be_killed_and_deleted_like_a_pod_member(
) {
    let (s, out) = section("pod_stop");
    for want in [
        "run side1: 0",
        "run side2: 0",
        "status stopped stopped",
        "left in side1: 1",
        "kill --all stopped: 0",
        "side1 emptied: 0",
        "delete side1: 0",
        "left in side2: 1",
        "delete side2 with leftovers: 0",
        "cgroups left: 0",
    ] {
        assert!(has_line(&s, want), "missing `{want}`:\n{out}");
    }
}

#[test]
fn denied_device_cannot_be_used_while_an_allowed_one_can() {
    let (s, out) = section("devices");
    for want in [
        "allowed: mknod-ok",
        "allowed: kmsg-open-ok",
        "allowed: null-ok",
        "allowed: 1",
        "denied: mknod-ok",
        "denied: kmsg-open-denied",
        "denied: null-ok",
        "denied: 1",
    ] {
        assert!(has_line(&s, want), "missing `{want}`:\n{out}");
    }
}

#[test]
fn pause_freezes_and_resume_thaws() {
    let (s, out) = section("pause");
    for want in [
        "run: 0",
        "counting: 0",
        "pause: 0",
        "status paused",
        "frozen 1",
        "counter stopped",
        "resume: 0",
        "status running",
        "counter moves again",
        "cannot resume a container that is running",
    ] {
        assert!(has_line(&s, want), "missing `{want}`:\n{out}");
    }
}

#[test]
fn kill_all_signals_every_process_and_ps_lists_them() {
    let (s, out) = section("kill_all");
    for want in [
        "run: 0",
        "pids before: 4",
        "sleeps in ps table: 4",
        "ps table has its header",
        "kill TERM: 0",
        "pids after TERM: 1",
        "kill KILL: 0",
        "status stopped",
        "procs left: 0",
    ] {
        assert!(has_line(&s, want), "missing `{want}`:\n{out}");
    }
}

#[test]
fn update_changes_the_limits_of_a_running_container() {
    let (s, out) = section("update");
    for want in [
        "run: 0",
        "before 67108864",
        "update --memory: 0",
        "memory.max 50331648",
        "update --resources -: 0",
        "pids.max 20",
        "cpu.max 30000 100000",
        "update file+flags: 0",
        "memory.max 41943040",
        "pids.max 25",
        "cpu.weight 39",
        "saved 41943040 25 30000",
        "linux.resources.memory.limit: -5 is negative (use -1 for no limit)",
        "after bad update 41943040",
    ] {
        assert!(has_line(&s, want), "missing `{want}`:\n{out}");
    }
}

#[test]
fn delete_leaves_no_cgroup_behind() {
    let (s, out) = section("delete");
    assert!(!s.contains("failed"), "{out}");
    assert!(has_line(&s, "containers left: 0"), "{out}");
    let gone = s.lines().filter(|l| l.starts_with("gone")).count();
    assert_eq!(gone, 2, "a cgroup is left:\n{out}");
}

#[test]
fn bad_values_are_clear_errors_and_leave_nothing_behind() {
    let (s, out) = section("bad_values");
    for want in [
        "bad-memory rc=1",
        "linux.resources.memory.limit: -5 is negative (use -1 for no limit)",
        "bad-unified rc=1",
        "bad-cpus rc=1",
        "linux.resources.cpu.cpus: \\\"abc\\\" is not a list like 0-3,5",
        "bad-kernel-cpus rc=1",
        "linux.resources.cpu.cpus: write \\\"0-999\\\" to /sys/fs/cgroup/gruntime-bad/deep/leaf/cpuset.cpus: Numerical result out of range (os error 34)",
        "state dirs left: 0",
        "cgroups left: 0",
    ] {
        assert!(has_line(&s, want), "missing `{want}`:\n{out}");
    }
    assert!(
        s.contains("linux.resources.unified[\\\"nosuchctl.max\\\"]: the nosuchctl controller is not available"),
        "{out}"
    );
    let (done, _) = section("done");
    assert_eq!(done, "", "{out}");
    assert_eq!(out.status, 0, "{out}");
}

// ---- on the host (hybrid v1/v2) ----

/// A container on the host that is deleted (with --force) whatever the test does.
struct HostContainer {
    root: PathBuf,
    id: String,
}

impl HostContainer {
    /// `run -d`: the container inherits stdout/stderr, so they must not be pipes we wait on.
    fn run_detached(&self, bundle: &Path) {
        let err = self.root.with_extension("stderr");
        let status = Command::new(gruntime_bin())
            .arg("--root")
            .arg(&self.root)
            .args(["run", "-d", "--bundle"])
            .arg(bundle)
            .arg(&self.id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .status()
            .unwrap();
        let msg = std::fs::read_to_string(&err).unwrap_or_default();
        assert!(status.success(), "run -d: {msg}");
    }

    fn gruntime(&self, args: &[&str]) -> std::process::Output {
        run(Command::new(gruntime_bin())
            .arg("--root")
            .arg(&self.root)
            .args(args))
    }

    fn state(&self) -> Value {
        let o = self.gruntime(&["state", &self.id]);
        assert!(o.status.success(), "state: {}", stderr(&o));
        serde_json::from_str(&stdout(&o)).unwrap()
    }

    fn saved_cgroup(&self) -> Option<PathBuf> {
        let raw = std::fs::read(self.root.join(&self.id).join("state.json")).ok()?;
        let v: Value = serde_json::from_slice(&raw).ok()?;
        v["cgroup"].as_str().map(PathBuf::from)
    }
}

impl Drop for HostContainer {
    fn drop(&mut self) {
        let _ = self.gruntime(&["delete", "--force", &self.id]);
    }
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read_count(p: &Path) -> u64 {
    std::fs::read_to_string(p)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn host_pause_resume_and_kill_all_work_in_the_hybrid_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs");
    make_busybox_rootfs(&rootfs);
    let out_dir = tmp.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let bundle = tmp.path().join("bundle");
    make_bundle(
        &bundle,
        &rootfs,
        &[
            "sh",
            "-c",
            "sleep 1000 & i=0; while true; do i=$((i+1)); echo $i > /out/count; sleep 0.05; done",
        ],
        |c| add_bind(c, out_dir.to_str().unwrap(), "/out"),
    );
    let c = HostContainer {
        root: tmp.path().join("state"),
        id: unique_id("cg-host"),
    };
    c.run_detached(&bundle);
    let cg = c
        .saved_cgroup()
        .expect("the container has a cgroup2 directory");
    assert!(cg.join("cgroup.procs").exists(), "{}", cg.display());
    let count = out_dir.join("count");
    wait_for("the counter to start", Duration::from_secs(10), || {
        read_count(&count) > 0
    });

    let o = c.gruntime(&["pause", &c.id]);
    assert!(o.status.success(), "pause: {}", stderr(&o));
    assert_eq!(c.state()["status"], "paused");
    let a = read_count(&count);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(read_count(&count), a, "the counter moved while paused");

    let o = c.gruntime(&["resume", &c.id]);
    assert!(o.status.success(), "resume: {}", stderr(&o));
    assert_eq!(c.state()["status"], "running");
    wait_for("the counter to move again", Duration::from_secs(10), || {
        read_count(&count) > a
    });

    let o = c.gruntime(&["ps", "--format", "json", &c.id]);
    let pids: Vec<i32> = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(pids.len() >= 2, "init and its sleep: {pids:?}");

    let o = c.gruntime(&["kill", "--all", &c.id, "KILL"]);
    assert!(o.status.success(), "kill --all: {}", stderr(&o));
    wait_for("every process to die", Duration::from_secs(10), || {
        pids.iter()
            .all(|p| !Path::new(&format!("/proc/{p}")).exists())
    });
    assert_eq!(c.state()["status"], "stopped");
    let o = c.gruntime(&["delete", &c.id]);
    assert!(o.status.success(), "delete: {}", stderr(&o));
    assert!(!cg.exists(), "{} left behind", cg.display());
}

#[test]
fn host_limit_without_its_controller_is_a_clear_error_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs");
    make_busybox_rootfs(&rootfs);
    let bundle = tmp.path().join("bundle");
    make_bundle(&bundle, &rootfs, &["true"], |c| {
        set_resources(c, json!({"pids": {"limit": 5}}))
    });
    let c = HostContainer {
        root: tmp.path().join("state"),
        id: unique_id("cg-host-bad"),
    };
    let o = c.gruntime(&["run", "--bundle", bundle.to_str().unwrap(), &c.id]);
    let mount = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.contains(" - cgroup2 "))
        .and_then(|l| l.split_whitespace().nth(4).map(String::from))
        .expect("a cgroup2 mount");
    let controllers =
        std::fs::read_to_string(Path::new(&mount).join("cgroup.controllers")).unwrap();
    if controllers.split_whitespace().any(|c| c == "pids") {
        // A pure v2 host: the limit simply works.
        assert!(o.status.success(), "{}", stderr(&o));
    } else {
        assert_eq!(o.status.code(), Some(1));
        let want = format!(
            "linux.resources.pids.limit: the pids controller is not available in the cgroup v2 hierarchy at {mount}"
        );
        assert!(stderr(&o).contains(&want), "{}", stderr(&o));
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    }
    assert!(!c.root.join(&c.id).exists(), "state left behind");
    assert!(
        !Path::new(&mount).join("gruntime").join(&c.id).exists(),
        "cgroup left behind"
    );
}

#[test]
fn features_reports_cgroup_v2_support() {
    let o = run(Command::new(gruntime_bin()).arg("features"));
    assert!(o.status.success(), "{}", stderr(&o));
    let f: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let has_v2 = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(" - cgroup2 ");
    assert_eq!(f["linux"]["cgroup"]["v2"], json!(has_v2), "{f}");
    assert_eq!(f["linux"]["cgroup"]["v1"], json!(false), "{f}");
    // The systemd driver is built in; whether a systemd answers is a create-time matter (systemd.rs).
    assert_eq!(f["linux"]["cgroup"]["systemd"], json!(true), "{f}");
    assert_eq!(f["linux"]["cgroup"]["systemdUser"], json!(true), "{f}");
}
