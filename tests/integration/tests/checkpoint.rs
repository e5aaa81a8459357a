//! `gruntime checkpoint` / `restore` with CRIU, black-box.
//!
//! Everything that needs CRIU and cgroup v2 runs in one VM boot (Debian's criu 3.17 on the host's root),
//! one `== NAME` section per check; each test asserts on its section. A container's stdio is a pipe
//! (`piped`), as conmon and containerd's shim give it: CRIU re-attaches pipes at restore, while an fd of a
//! host file outside the container cannot be dumped (runc alike). The flags gruntime refuses are checked
//! on the host, where no container is needed.

use std::path::Path;
use std::process::Command;
use std::sync::LazyLock;
use std::time::Duration;

use integration::cgroups::{add_bind, add_capability, make_bundle};
use integration::vm::{has_line, Vm, VmOutput};
use integration::{gruntime_bin, make_busybox_rootfs, run, stderr};
use serde_json::{json, Value};

const GUEST_SCRIPT: &str = r#"
mkdir -p /run/gt-bin && ln -s "$GRUNTIME" /run/gt-bin/gruntime
G=/run/gt-bin/gruntime; S="--root /run/gt"; B="$BUNDLES"; W=/tmp/ck
CG=/sys/fs/cgroup/gruntime
mkdir -p $W
section() { echo "== $1"; echo "section $1 at ${SECONDS}s" >&2; }
wait_until() { local n=$(($1 * 10)); shift; while ! "$@" 2>/dev/null; do n=$((n - 1)); [ $n -gt 0 ] || return 1; sleep 0.1; done; }
status_of() { $G $S state "$1" 2>&1 | grep -o '"status": "[a-z]*"\|does not exist' | sed 's/"status": //; s/"//g'; }
pid_of() { $G $S state "$1" | grep -o '"pid": [0-9]*' | grep -o '[0-9]*$'; }
lines() { wc -l < "$1" 2>/dev/null || echo 0; }
more_lines() { test "$(lines "$1")" -gt "$2"; }
# piped LOG CMD...: CMD with stdin and stdout/stderr on pipes, which the container inherits; returns
# CMD's status once it has exited (a detached container keeps the pipe to `cat` open).
piped() {
    local log=$1; shift; rm -f "$log.rc"
    { : | "$@" 2>&1; echo $? > "$log.rc"; } | cat > "$log" &
    while [ ! -e "$log.rc" ]; do sleep 0.1; done
    return "$(cat "$log.rc")"
}
# A counter's log must be consecutive numbers: a restore that started over would repeat 1, a lost
# state would skip.
sequence() { awk 'NR == 1 {s = $1} $1 != s + NR - 1 {bad = 1} END {if (bad || NR == 0) print "sequence broken"; else print "sequence unbroken"}' "$1"; }
leftovers() {
    echo "state dir of $1: $(test -e /run/gt/$1 && echo left || echo none)"
    echo "cgroup of $1: $(test -e $CG/$1 && echo left || echo none)"
    echo "criu-root mounts: $(grep -c criu-root /proc/self/mountinfo)"
}

section counter
mkdir -p /tmp/out-counter
piped /tmp/counter.log $G $S run -d --bundle $B/counter counter; echo "run: $?"
wait_until 60 more_lines /tmp/out-counter/log 5; echo "counting: $?"
$G $S checkpoint --image-path $W/counter counter; echo "checkpoint: $?"
n=$(lines /tmp/out-counter/log)
echo "status after checkpoint: $(status_of counter)"
leftovers counter
sleep 1; [ "$(lines /tmp/out-counter/log)" = "$n" ] && echo "counter stopped"
piped /tmp/counter-r.log $G $S restore -d --bundle $B/counter --image-path $W/counter counter; echo "restore: $?"
cat /tmp/counter-r.log
echo "status after restore: $(status_of counter)"
wait_until 30 more_lines /tmp/out-counter/log $((n + 5)); echo "counting again: $?"
[ "$(sed -n "$((n + 1))p" /tmp/out-counter/log)" = "$((n + 1))" ] && echo "continues from the next value"
sequence /tmp/out-counter/log
grep -qx "$(pid_of counter)" $CG/counter/cgroup.procs && echo "restored init is in the container's cgroup"
$G $S delete -f counter; echo "delete: $?"

section leave_running
mkdir -p /tmp/out-lr /tmp/out-lr2
piped /tmp/lr.log $G $S run -d --bundle $B/lr lr; echo "run: $?"
wait_until 60 more_lines /tmp/out-lr/log 5; echo "counting: $?"
$G $S checkpoint --leave-running --image-path $W/lr lr; echo "checkpoint --leave-running: $?"
echo "status after checkpoint: $(status_of lr)"
n=$(lines /tmp/out-lr/log); wait_until 30 more_lines /tmp/out-lr/log $((n + 3)); echo "original still counting: $?"
piped /tmp/lr2.log $G $S restore -d --bundle $B/lr2 --image-path $W/lr lr2; echo "restore as lr2: $?"
cat /tmp/lr2.log
echo "status lr: $(status_of lr) lr2: $(status_of lr2)"
wait_until 30 more_lines /tmp/out-lr2/log 3; echo "copy counting: $?"
first=$(head -n1 /tmp/out-lr2/log)
[ "$first" -gt 5 ] && [ "$first" -le "$n" ] && echo "copy continues from the checkpoint"
sequence /tmp/out-lr2/log
grep -qx "$(pid_of lr2)" $CG/lr2/cgroup.procs && echo "copy is in its own cgroup"
$G $S delete -f lr; $G $S delete -f lr2; echo "deleted: $?"

section pre_dump
mkdir -p /tmp/out-pd $W/pd
piped /tmp/pd.log $G $S run -d --bundle $B/pd pd; echo "run: $?"
wait_until 60 more_lines /tmp/out-pd/log 5; echo "counting: $?"
$G $S checkpoint --pre-dump --image-path $W/pd/1 pd; echo "pre-dump: $?"
echo "status after pre-dump: $(status_of pd)"
$G $S checkpoint --image-path $W/pd/2 --parent-path ../1 pd; echo "dump with parent: $?"
echo "status after dump: $(status_of pd)"
test -L $W/pd/2/parent && echo "dump links its parent"
n=$(lines /tmp/out-pd/log)
piped /tmp/pd-r.log $G $S restore -d --bundle $B/pd --image-path $W/pd/2 pd; echo "restore: $?"
cat /tmp/pd-r.log
wait_until 30 more_lines /tmp/out-pd/log $((n + 3)); echo "counting again: $?"
sequence /tmp/out-pd/log
$G $S delete -f pd; echo "delete: $?"

section state_kept
mkdir -p /tmp/out-hold
piped /tmp/hold.log $G $S run -d --bundle $B/hold hold; echo "run: $?"
wait_until 120 grep -q ready /tmp/out-hold/report; echo "ready: $?"
$G $S checkpoint --image-path $W/hold hold; echo "checkpoint: $?"
echo "status after checkpoint: $(status_of hold)"
piped /tmp/hold-r.log $G $S restore -d --bundle $B/hold --image-path $W/hold hold; echo "restore: $?"
cat /tmp/hold-r.log
touch /tmp/out-hold/verify
wait_until 120 grep -q tmpfs /tmp/out-hold/report; echo "verified: $?"
sed 's/^/report: /' /tmp/out-hold/report
$G $S delete -f hold; echo "delete: $?"

section tcp
mkdir -p /tmp/out-tcp
piped /tmp/tcp.log $G $S run -d --bundle $B/tcp tcp; echo "run: $?"
wait_until 60 more_lines /tmp/out-tcp/tcp 5; echo "talking: $?"
$G $S checkpoint --image-path $W/tcp-no tcp 2>/tmp/tcp-err; echo "checkpoint without --tcp-established: $?"
sed 's/.*msg="\(.*\)"$/\1/' /tmp/tcp-err
echo "status after the failed checkpoint: $(status_of tcp)"
n=$(lines /tmp/out-tcp/tcp); wait_until 30 more_lines /tmp/out-tcp/tcp $((n + 3)); echo "still talking: $?"
$G $S checkpoint --tcp-established --image-path $W/tcp tcp; echo "checkpoint --tcp-established: $?"
echo "status after checkpoint: $(status_of tcp)"

section failed_restore
# CRIU refuses the established connection in the images without --tcp-established, once the state dir,
# the cgroup and the restore's mounts exist and it has begun.
piped /tmp/bad.log $G $S restore -d --bundle $B/tcp --image-path $W/tcp tcp; echo "restore: $?"
sed 's/.*msg="\(.*\)"$/\1/' /tmp/bad.log
echo "status: $(status_of tcp)"
leftovers tcp
echo "processes of the image left: $(ps -eo args | grep -c '[n]c 127.0.0.1')"
piped /tmp/bad2.log $G $S restore -d --bundle $B/counter --image-path /tmp/nowhere bad; echo "restore from no images: $?"
sed 's/.*msg="\(.*\)"$/\1/' /tmp/bad2.log
leftovers bad

section tcp_restore
n=$(lines /tmp/out-tcp/tcp)
piped /tmp/tcp-r.log $G $S restore -d --tcp-established --bundle $B/tcp --image-path $W/tcp tcp; echo "restore --tcp-established: $?"
cat /tmp/tcp-r.log
wait_until 30 more_lines /tmp/out-tcp/tcp $((n + 5)); echo "talking again: $?"
sequence /tmp/out-tcp/tcp
$G $S delete -f tcp; echo "delete: $?"

section no_criu
mkdir -p /tmp/out-nc
piped /tmp/nc.log $G $S run -d --bundle $B/nc nc; echo "run: $?"
wait_until 60 more_lines /tmp/out-nc/log 2
PATH=/usr/bin:/bin $G $S checkpoint --image-path $W/nc nc 2>/tmp/nc-err; echo "checkpoint without criu: $?"
sed 's/.*msg="\(.*\)"$/\1/' /tmp/nc-err
echo "status: $(status_of nc)"
test -e $W/nc && echo "image dir made" || echo "no image dir"
$G $S checkpoint --image-path $W/nc nc; echo "checkpoint: $?"
PATH=/usr/bin:/bin $G $S restore -d --bundle $B/nc --image-path $W/nc nc 2>/tmp/nc-err; echo "restore without criu: $?"
sed 's/.*msg="\(.*\)"$/\1/' /tmp/nc-err
leftovers nc

section ext_unix_sk
# The container's stdin is one end of a socketpair whose other end stays outside, with python.
python3 - "$G" "$B" <<'PY' >/dev/null 2>&1 &
import socket, subprocess, sys, time
g, b = sys.argv[1], sys.argv[2]
a, other = socket.socketpair()
subprocess.run([g, "--root", "/run/gt", "run", "-d", "--bundle", b + "/sk", "sk"], stdin=a,
               stdout=a, stderr=a)
open("/tmp/sk-started", "w").close()
time.sleep(600)
PY
SK_HOLDER=$!
wait_until 60 test -e /tmp/sk-started; echo "started: $?"
echo "status: $(status_of sk)"
$G $S checkpoint --image-path $W/sk sk 2>/tmp/sk-err; echo "checkpoint: $?"
sed 's/.*msg="\(.*\)"$/\1/' /tmp/sk-err
echo "status after the failed checkpoint: $(status_of sk)"
$G $S checkpoint --ext-unix-sk --leave-running --image-path $W/sk2 sk 2>&1 | sed 's/.*msg="\(.*\)"$/\1/'
echo "checkpoint --ext-unix-sk: ${PIPESTATUS[0]}"
$G $S delete -f sk
kill $SK_HOLDER

section console
# A terminal container (`run -t` as a shim or conmon starts it): its pty master goes to a console socket;
# the restored one's new master goes to the restore's --console-socket, and what is typed there reaches
# the same shell, which goes on counting lines.
P=$TTY_PEER
python3 $P console $W/con1.sock $W/con1 &
wait_until 30 test -S $W/con1.sock
$G $S run -d --console-socket $W/con1.sock --bundle $B/tty tty; echo "run: $?"
echo a > $W/con1.type; wait_until 30 grep -q "got 1:a" $W/con1; echo "typed before: $?"
$G $S checkpoint --image-path $W/tty tty; echo "checkpoint: $?"
echo "status after checkpoint: $(status_of tty)"
touch $W/con1.stop
python3 $P console $W/con2.sock $W/con2 &
wait_until 30 test -S $W/con2.sock
$G $S restore -d --console-socket $W/con2.sock --bundle $B/tty --image-path $W/tty tty; echo "restore: $?"
echo "status after restore: $(status_of tty)"
echo b > $W/con2.type; wait_until 30 grep -q "got 2:b" $W/con2 && echo "the restored shell answers on the new terminal: got 2:b"
$G $S delete -f tty; echo "delete: $?"
touch $W/con2.stop

section host_pty
# A job whose stdio is a terminal of the host (a shell job): CRIU 3.17 cannot dump the host's devpts file
# from the container's mount namespace, with --shell-job or without, and runc 1.1 fails alike. The
# failure is one line naming CRIU's reason, and the container runs on.
python3 $P shell $W/job1 -- $G $S run -d --bundle $B/sj sj &
wait_until 30 test -e $W/job1.rc; echo "run: $(cat $W/job1.rc)"
echo a > $W/job1.type; wait_until 30 grep -q "got 1:a" $W/job1; echo "typed: $?"
$G $S checkpoint --shell-job --image-path $W/sj sj 2>$W/sj.err; echo "checkpoint --shell-job: $?"
echo "error lines: $(wc -l < $W/sj.err)"
sed 's/.*msg="\(.*\)"$/\1/' $W/sj.err
echo "status after the failed checkpoint: $(status_of sj)"
echo b > $W/job1.type; wait_until 30 grep -q "got 2:b" $W/job1 && echo "still answering: got 2:b"
$G $S delete -f sj; touch $W/job1.stop

section foreground_restore
# Without -d, restore waits for the restored container and exits with its status, as run does.
mkdir -p /tmp/out-fg
piped /tmp/fg.log $G $S run -d --bundle $B/fg fg; echo "run: $?"
wait_until 60 more_lines /tmp/out-fg/log 5; echo "counting: $?"
$G $S checkpoint --image-path $W/fg fg; echo "checkpoint: $?"
n=$(lines /tmp/out-fg/log)
piped /tmp/fg-r.log $G $S restore --bundle $B/fg --image-path $W/fg fg; echo "restore in the foreground: $?"
cat /tmp/fg-r.log
echo "last value: $(tail -n1 /tmp/out-fg/log)"
[ "$n" -lt 40 ] && echo "checkpointed before the end"
sequence /tmp/out-fg/log
# As with run, the exited container is deleted (runc alike).
echo "status after exit: $(status_of fg)"
leftovers fg

section end
echo "containers left: $($G $S list -q | wc -l)"
"#;

struct Guest {
    out: VmOutput,
}

fn counter_bundle(dir: &Path, rootfs: &Path, out: &str) {
    make_bundle(
        dir,
        rootfs,
        &[
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i >> /out/log; sleep 0.1; done",
        ],
        |c| add_bind(c, out, "/out"),
    );
}

/// The holder (tests/integration/checkpoint/holder.c), built static for the busybox rootfs.
fn build_holder(dest: &Path) {
    let src = integration::workspace_root().join("tests/integration/checkpoint/holder.c");
    let out = run(Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(dest)
        .arg(&src));
    assert!(out.status.success(), "cc holder.c: {}", stderr(&out));
}

fn bundles(dir: &Path) {
    let rootfs = dir.join("rootfs");
    make_busybox_rootfs(&rootfs);
    std::fs::create_dir_all(rootfs.join("var")).unwrap();
    build_holder(&rootfs.join("bin/holder"));
    for (name, out) in [
        ("counter", "/tmp/out-counter"),
        ("lr", "/tmp/out-lr"),
        ("lr2", "/tmp/out-lr2"),
        ("pd", "/tmp/out-pd"),
        ("nc", "/tmp/out-nc"),
    ] {
        counter_bundle(&dir.join(name), &rootfs, out);
    }
    make_bundle(&dir.join("hold"), &rootfs, &["holder"], |c| {
        add_bind(c, "/tmp/out-hold", "/out");
        c["mounts"].as_array_mut().unwrap().push(
            json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}),
        );
    });
    // A server and a client talking over loopback inside the container (gruntime, like runc without
    // its libcontainer network setup... brings no interface up: the container does, with NET_ADMIN).
    make_bundle(
        &dir.join("tcp"),
        &rootfs,
        &[
            "sh",
            "-c",
            "ip link set lo up; sleep 100000 | nc -l -p 7000 > /out/tcp & sleep 1; \
             i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done | nc 127.0.0.1 7000",
        ],
        |c: &mut Value| {
            add_bind(c, "/tmp/out-tcp", "/out");
            add_capability(c, "CAP_NET_ADMIN");
        },
    );
    make_bundle(&dir.join("sk"), &rootfs, &["sleep", "1000"], |_| {});
    // A shell numbering the lines typed at its terminal: its count is the state a restore must keep.
    let reader = &[
        "sh",
        "-c",
        "n=0; while read l; do n=$((n+1)); echo \"got $n:$l\"; done",
    ][..];
    make_bundle(&dir.join("tty"), &rootfs, reader, |c| {
        c["process"]["terminal"] = json!(true)
    });
    make_bundle(&dir.join("sj"), &rootfs, reader, |_| {});
    // Counts to 40 and exits 7.
    make_bundle(
        &dir.join("fg"),
        &rootfs,
        &[
            "sh",
            "-c",
            "i=0; while [ $i -lt 40 ]; do i=$((i+1)); echo $i >> /out/log; sleep 0.1; done; exit 7",
        ],
        |c| add_bind(c, "/tmp/out-fg", "/out"),
    );
}

static GUEST: LazyLock<Result<Guest, String>> = LazyLock::new(|| {
    let share = tempfile::Builder::new()
        .prefix("checkpoint-vm-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    bundles(share.path());
    let out = Vm::new()
        .share(share.path())
        .env("GRUNTIME", gruntime_bin().display().to_string())
        .env("BUNDLES", share.path().display().to_string())
        .env(
            "TTY_PEER",
            integration::workspace_root()
                .join("tests/integration/checkpoint/tty_peer.py")
                .display()
                .to_string(),
        )
        .timeout(Duration::from_secs(900))
        .run(GUEST_SCRIPT)
        .map_err(|e| e.to_string())?;
    Ok(Guest { out })
});

fn section(name: &str) -> (String, &'static VmOutput) {
    match &*GUEST {
        Ok(g) => (g.out.section(name), &g.out),
        Err(e) => panic!("the checkpoint VM batch failed: {e}"),
    }
}

fn assert_lines(name: &str, want: &[&str]) -> String {
    section(name).1.assert_lines(name, want)
}

#[test]
fn a_checkpointed_counter_is_gone_and_after_restore_continues_from_the_next_value() {
    assert_lines(
        "counter",
        &[
            "run: 0",
            "counting: 0",
            "checkpoint: 0",
            "status after checkpoint: does not exist",
            "state dir of counter: none",
            "cgroup of counter: none",
            "counter stopped",
            "restore: 0",
            "status after restore: running",
            "counting again: 0",
            "continues from the next value",
            "sequence unbroken",
            "restored init is in the container's cgroup",
            "delete: 0",
        ],
    );
}

#[test]
fn leave_running_keeps_the_original_and_a_second_id_restores_a_copy_from_the_same_images() {
    assert_lines(
        "leave_running",
        &[
            "checkpoint --leave-running: 0",
            "status after checkpoint: running",
            "original still counting: 0",
            "restore as lr2: 0",
            "status lr: running lr2: running",
            "copy counting: 0",
            "copy continues from the checkpoint",
            "sequence unbroken",
            "copy is in its own cgroup",
        ],
    );
}

#[test]
fn a_pre_dump_keeps_the_container_running_and_a_dump_on_top_of_it_restores() {
    assert_lines(
        "pre_dump",
        &[
            "pre-dump: 0",
            "status after pre-dump: running",
            "dump with parent: 0",
            "status after dump: does not exist",
            "dump links its parent",
            "restore: 0",
            "counting again: 0",
            "sequence unbroken",
        ],
    );
}

#[test]
fn a_terminal_container_restores_onto_the_new_console_socket_and_its_shell_keeps_its_state() {
    assert_lines(
        "console",
        &[
            "run: 0",
            "typed before: 0",
            "checkpoint: 0",
            "status after checkpoint: does not exist",
            "restore: 0",
            "status after restore: running",
            "the restored shell answers on the new terminal: got 2:b",
            "delete: 0",
        ],
    );
}

#[test]
fn a_job_on_a_host_terminal_fails_to_checkpoint_in_one_line_and_runs_on_as_with_runc() {
    let s = assert_lines(
        "host_pty",
        &[
            "run: 0",
            "typed: 0",
            "checkpoint --shell-job: 1",
            "error lines: 1",
            "status after the failed checkpoint: running",
            "still answering: got 2:b",
        ],
    );
    assert!(
        s.contains("criu dump failed") && s.contains("dump.log"),
        "no CRIU reason or log path:\n{s}"
    );
}

#[test]
fn a_foreground_restore_waits_and_exits_with_the_containers_status_then_deletes_it() {
    assert_lines(
        "foreground_restore",
        &[
            "run: 0",
            "checkpoint: 0",
            "restore in the foreground: 7",
            "last value: 40",
            "checkpointed before the end",
            "sequence unbroken",
            "status after exit: does not exist",
            "state dir of fg: none",
            "cgroup of fg: none",
            "criu-root mounts: 0",
        ],
    );
}

#[test]
fn memory_an_open_file_a_pipe_and_a_private_tmpfs_are_the_same_after_restore() {
    assert_lines(
        "state_kept",
        &[
            "ready: 0",
            "checkpoint: 0",
            "status after checkpoint: does not exist",
            "restore: 0",
            "verified: 0",
            "report: memory same",
            "report: file offset 4",
            "report: file read 6 456789",
            "report: pipe read 11 in-the-pipe",
            "report: tmpfs read 8 on-tmpfs",
        ],
    );
}

#[test]
fn an_established_tcp_connection_survives_with_tcp_established_and_fails_cleanly_without() {
    let s = assert_lines(
        "tcp",
        &[
            "talking: 0",
            "checkpoint without --tcp-established: 1",
            "status after the failed checkpoint: running",
            "still talking: 0",
            "checkpoint --tcp-established: 0",
            "status after checkpoint: does not exist",
        ],
    );
    assert!(
        s.contains("checkpoint: criu dump failed: Error (criu/sk-inet.c:189): inet: Connected TCP socket, consider using --tcp-established option. (CRIU's log: /tmp/ck/tcp-no/dump.log)"),
        "the error names CRIU's reason and its log:\n{s}"
    );
    assert_lines(
        "tcp_restore",
        &[
            "restore --tcp-established: 0",
            "talking again: 0",
            "sequence unbroken",
            "delete: 0",
        ],
    );
}

#[test]
fn without_a_criu_binary_checkpoint_and_restore_fail_naming_it_and_change_nothing() {
    let s = assert_lines(
        "no_criu",
        &[
            "checkpoint without criu: 1",
            "status: running",
            "no image dir",
            "checkpoint: 0",
            "restore without criu: 1",
            "state dir of nc: none",
            "cgroup of nc: none",
            "criu-root mounts: 0",
        ],
    );
    assert!(
        s.contains("criu not found: install CRIU (3.x) or give the criu binary's path with --criu"),
        "{s}"
    );
}

#[test]
fn an_external_unix_socket_without_ext_unix_sk_fails_the_checkpoint_and_the_container_runs_on() {
    let s = assert_lines(
        "ext_unix_sk",
        &[
            "started: 0",
            "status: running",
            "checkpoint: 1",
            "status after the failed checkpoint: running",
        ],
    );
    assert!(
        s.contains("checkpoint: criu dump failed")
            && s.contains("(CRIU's log: /tmp/ck/sk/dump.log)"),
        "{s}"
    );
}

#[test]
fn a_restore_that_criu_fails_leaves_no_state_cgroup_mount_or_process() {
    let s = assert_lines(
        "failed_restore",
        &[
            "restore: 1",
            "status: does not exist",
            "state dir of tcp: none",
            "cgroup of tcp: none",
            "criu-root mounts: 0",
            "processes of the image left: 0",
            "restore from no images: 1",
            "state dir of bad: none",
            "cgroup of bad: none",
        ],
    );
    assert!(
        s.contains("restore: criu restore failed: Error (criu/sk-inet.c:857): inet: Connected TCP socket in image (CRIU's log: /tmp/ck/tcp/restore.log)"),
        "{s}"
    );
    assert!(
        s.contains("/tmp/nowhere/descriptors.json: No such file or directory"),
        "{s}"
    );
    assert_lines("end", &["containers left: 0"]);
}

// ---- on the host: flags refused before any container is looked at ----

fn gruntime(args: &[&str]) -> std::process::Output {
    let root = tempfile::tempdir().unwrap();
    run(Command::new(gruntime_bin())
        .arg("--root")
        .arg(root.path())
        .args(args))
}

#[test]
fn checkpoint_help_succeeds_which_is_how_podman_learns_a_runtime_can_checkpoint() {
    let out = gruntime(&["checkpoint", "--help"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = gruntime(&["restore", "--help"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn lazy_pages_page_server_and_status_fd_are_errors_naming_the_flag() {
    for (args, flag) in [
        (&["checkpoint", "--lazy-pages", "c1"][..], "--lazy-pages"),
        (
            &["checkpoint", "--page-server", "10.0.0.1:27", "c1"][..],
            "--page-server",
        ),
        (&["checkpoint", "--status-fd", "3", "c1"][..], "--status-fd"),
        (&["restore", "--lazy-pages", "c1"][..], "--lazy-pages"),
    ] {
        let out = gruntime(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            stderr(&out).contains(&format!("{flag} ")) && stderr(&out).contains("not implemented"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn lsm_flags_of_restore_are_refused_on_a_host_without_an_lsm() {
    let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y");
    let selinux = Path::new("/sys/fs/selinux/enforce").exists();
    if apparmor || selinux {
        return;
    }
    let out = gruntime(&["restore", "--lsm-profile", "x", "c1"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--lsm-profile: this host has no LSM (AppArmor or SELinux) enabled"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_unknown_manage_cgroups_mode_is_refused() {
    let out = gruntime(&["checkpoint", "--manage-cgroups-mode", "bogus", "c1"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out)
            .contains("--manage-cgroups-mode \\\"bogus\\\": use soft, full, strict or ignore")
            || stderr(&out)
                .contains("--manage-cgroups-mode \"bogus\": use soft, full, strict or ignore"),
        "{}",
        stderr(&out)
    );
}

// ---- podman 4.3 (+ conmon) checkpointing through gruntime, runc as the control: one more boot ----

static PODMAN: LazyLock<Result<VmOutput, String>> = LazyLock::new(|| {
    let work = tempfile::Builder::new()
        .prefix("checkpoint-podman-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    let rootfs = work.path().join("rootfs");
    make_busybox_rootfs(&rootfs);
    let out = run(Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(work.path().join("busybox-rootfs.tar"))
        .arg("."));
    assert!(out.status.success(), "tar: {}", stderr(&out));
    let script = integration::workspace_root().join("tests/integration/checkpoint/podman.sh");
    Vm::new()
        .share(work.path())
        .env("GRUNTIME", gruntime_bin().display().to_string())
        .env("CK_WORK", work.path().display().to_string())
        .timeout(Duration::from_secs(900))
        // The guest only reads its share and writes to its own tmpfs: a lockup retry is safe (the
        // podman batches of tests/dropin.rs are where TCG lockups have been seen).
        .retry_on_lockup(2)
        .run(&format!("bash {}", integration::shell_quote(&script)))
        .map_err(|e| e.to_string())
});

/// A section of the podman batch and its `rc=`.
fn podman(name: &str) -> (String, i32) {
    let out = match &*PODMAN {
        Ok(o) => o,
        Err(e) => panic!("the podman checkpoint VM batch failed: {e}"),
    };
    let s = out.section(&format!("podman/{name}"));
    let rc = s
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("rc="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("section podman/{name} has no rc=\n{out}"));
    (s, rc)
}

fn assert_podman(name: &str, want: &[&str]) {
    let (s, rc) = podman(name);
    assert_eq!(rc, 0, "podman/{name} failed:\n{s}");
    for w in want {
        assert!(has_line(&s, w), "podman/{name}: missing `{w}`:\n{s}");
    }
}

#[test]
fn podman_container_checkpoint_and_restore_work_through_gruntime_as_through_runc() {
    assert_podman("import", &[]);
    for rt in ["runc", "gruntime"] {
        assert_podman(&format!("{rt}/checkpoint"), &["run=0", "status=exited"]);
        assert_podman(
            &format!("{rt}/restore"),
            &[
                "status=running",
                "counting-again=yes",
                "sequence unbroken",
                "exec-after-restore",
            ],
        );
    }
    let (calls, _) = podman("gruntime/calls");
    assert!(
        calls.contains(" checkpoint ") && calls.contains(" restore "),
        "{calls}"
    );
}

#[test]
fn podman_checkpoint_export_rm_and_restore_import_move_a_container_through_gruntime_as_through_runc(
) {
    for rt in ["runc", "gruntime"] {
        assert_podman(&format!("{rt}/export"), &["exported=yes", "removed=0"]);
        assert_podman(&format!("{rt}/import"), &["status=running"]);
        assert_podman(&format!("{rt}/cleanup"), &["containers-left=0"]);
    }
    // The imported counter goes on from the value it was exported at, in the file the archive's
    // rootfs diff carried (podman's log of an imported container starts empty). Asserted for
    // gruntime; runc is the control of the steps above.
    assert_podman(
        "gruntime/import",
        &["next-value-after-export=yes", "sequence unbroken"],
    );
}
