#!/bin/bash
# Benchmark of gruntime's seccomp against crun (libseccomp) with the same profile: podman's
# default profile from golang-github-containers-common (/usr/share/containers/seccomp.json),
# converted to the runtime-spec form the way the engine does (podman's default capabilities,
# amd64).
#
#   tests/integration/bench/seccomp.sh            # uses target/release/gruntime (built if missing)
#   GRUNTIME_BIN=... RUNS=10 LOOPS=1000000 LOOP_RUNS=3 tests/integration/bench/seccomp.sh
#
# Prints: compile and install time of the profile in gruntime and its BPF length; container
# start (`run` of /bin/true, median of $RUNS) with and without the profile; the cost (best of
# $LOOP_RUNS containers of $LOOPS calls) of a
# cheap syscall in a loop inside the container: getppid (unconditionally allowed: the kernel's
# seccomp action cache can skip the filter) and personality(0xffffffff) (allowed by an argument
# rule: the BPF program really runs). crun refuses this cgroup v1/v2 hybrid host, so it runs
# with --cgroup-manager=disabled in a private mount namespace where the v2 mount is hidden.
# Needs root, crun, gcc + libc6-dev (static probe), busybox-static, python3.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
RUNS=${RUNS:-20}
LOOPS=${LOOPS:-2000000}
LOOP_RUNS=${LOOP_RUNS:-5}
GRUNTIME=${GRUNTIME_BIN:-$ROOT/target/release/gruntime}
if [ ! -x "$GRUNTIME" ]; then
    (cd "$ROOT" && cargo build --release -p gruntime >&2)
fi
for t in crun gcc python3 /bin/busybox /usr/share/containers/seccomp.json; do
    command -v "$t" >/dev/null || [ -e "$t" ] || { echo "seccomp.sh: $t is needed" >&2; exit 1; }
done

W=$(mktemp -d /tmp/gruntime-seccomp-bench.XXXXXX)
IDS=()
CRUN=(unshare -m sh -c 'mount -t tmpfs none /sys/fs/cgroup/unified 2>/dev/null; exec crun --cgroup-manager=disabled "$@"' crun)
cleanup() {
    for id in "${IDS[@]}"; do
        "$GRUNTIME" delete --force "$id" >/dev/null 2>&1 || true
        "${CRUN[@]}" delete --force "$id" >/dev/null 2>&1 || true
    done
    rm -rf "$W"
}
trap cleanup EXIT

# --- the profile, converted as the engine does ---------------------------------------------
python3 - /usr/share/containers/seccomp.json "$W/profile.json" <<'EOF'
import json, sys
caps = {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
        "CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID",
        "CAP_SYS_CHROOT"}
arch, native = "amd64", "SCMP_ARCH_X86_64"
p = json.load(open(sys.argv[1]))
out = {"defaultAction": p["defaultAction"], "defaultErrnoRet": p.get("defaultErrnoRet")}
for m in p.get("archMap", []):
    if m["architecture"] == native:
        out["architectures"] = [native] + m.get("subArchitectures", [])
calls = []
for s in p["syscalls"]:
    inc, exc = s.get("includes") or {}, s.get("excludes") or {}
    if arch in (exc.get("arches") or []) or caps & set(exc.get("caps") or []):
        continue
    if inc.get("arches") and arch not in inc["arches"]:
        continue
    if not set(inc.get("caps") or []) <= caps:
        continue
    c = {"names": s.get("names") or [s["name"]], "action": s["action"]}
    if s.get("errnoRet") is not None:
        c["errnoRet"] = s["errnoRet"]
    if s.get("args"):
        c["args"] = s["args"]
    calls.append(c)
out["syscalls"] = calls
json.dump(out, open(sys.argv[2], "w"))
EOF

# --- compile + install in gruntime (the runtime's own code, release build) -------------------
echo "== gruntime seccomp compile/install (default profile, median of 200)"
(cd "$ROOT" && GRUNTIME_SECCOMP_BENCH_PROFILE="$W/profile.json" \
    cargo test -q --release -p gruntime bench_compile_install -- --ignored --nocapture 2>/dev/null) \
    | grep '^bench' || echo "   (failed)"

# --- bundles ---------------------------------------------------------------------------------
cat >"$W/loop.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
/* loop NR COUNT [ARG0]: ns per raw syscall */
int main(int argc, char **argv) {
    long nr = strtol(argv[1], 0, 0), n = strtol(argv[2], 0, 0);
    unsigned long a0 = argc > 3 ? strtoul(argv[3], 0, 0) : 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) syscall(nr, a0, 0, 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%.1f\n", ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / n);
    return 0;
}
EOF
gcc -static -O2 -o "$W/loop" "$W/loop.c"

make_bundle() { # dir seccomp(yes|no) args-json
    local b=$1
    mkdir -p "$b/rootfs"/{bin,dev,proc,sys,tmp,etc}
    cp /bin/busybox "$b/rootfs/bin/busybox"
    ln -sf busybox "$b/rootfs/bin/sh"
    ln -sf busybox "$b/rootfs/bin/true"
    cp "$W/loop" "$b/rootfs/bin/loop"
    python3 - "$b/config.json" "$2" "$3" "$W/profile.json" <<'EOF'
import json, sys
caps = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
        "CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID",
        "CAP_SYS_CHROOT"]
cfg = {
    "ociVersion": "1.0.2",
    "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": json.loads(sys.argv[3]),
                "env": ["PATH=/bin"], "cwd": "/", "noNewPrivileges": True,
                "capabilities": {"bounding": caps, "effective": caps, "permitted": caps}},
    "root": {"path": "rootfs"},
    "hostname": "bench",
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
               {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]}],
    "linux": {"namespaces": [{"type": t} for t in ["pid", "mount", "ipc", "uts", "network"]]},
}
if sys.argv[2] == "yes":
    cfg["linux"]["seccomp"] = json.load(open(sys.argv[4]))
json.dump(cfg, open(sys.argv[1], "w"))
EOF
}

N=0
run_rt() { # runtime bundle -> stdout of the container
    local id="seccomp-bench-$$-$N"
    N=$((N + 1))
    IDS+=("$id")
    if [ "$1" = gruntime ]; then
        "$GRUNTIME" run --bundle "$2" "$id" </dev/null
    else
        "${CRUN[@]}" run --bundle "$2" "$id" </dev/null
    fi
}

median() { sort -n | awk '{a[NR]=$1} END {if (NR == 0) print "n/a"; else print a[int((NR + 1) / 2)]}'; }
best() { sort -n | awk 'NR == 1 {print $1} END {if (NR == 0) print "n/a"}'; }

start_ms() { # runtime bundle -> one start time in ms, or nothing if it failed
    local t0 t1
    t0=$(date +%s%N)
    run_rt "$1" "$2" >/dev/null 2>&1 || return 0
    t1=$(date +%s%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f\n", (b - a) / 1e6 }'
}

GETPPID=110
PERSONALITY=135
make_bundle "$W/true-seccomp" yes '["/bin/true"]'
make_bundle "$W/true-plain" no '["/bin/true"]'
make_bundle "$W/getppid-seccomp" yes "[\"/bin/loop\", \"$GETPPID\", \"$LOOPS\"]"
make_bundle "$W/getppid-plain" no "[\"/bin/loop\", \"$GETPPID\", \"$LOOPS\"]"
make_bundle "$W/personality-seccomp" yes "[\"/bin/loop\", \"$PERSONALITY\", \"$LOOPS\", \"0xffffffff\"]"

# The two runtimes alternate, so both see the same machine load.
mkdir "$W/res"
for _ in $(seq "$RUNS"); do
    for rt in gruntime crun; do
        start_ms $rt "$W/true-plain" >>"$W/res/start-plain-$rt"
        start_ms $rt "$W/true-seccomp" >>"$W/res/start-seccomp-$rt"
    done
done
for _ in $(seq "$LOOP_RUNS"); do
    for rt in gruntime crun; do
        for m in getppid-plain getppid-seccomp personality-seccomp; do
            run_rt $rt "$W/$m" 2>/dev/null >>"$W/res/$m-$rt" || true
        done
    done
done
row() { # label file-stem stat
    printf '%-46s %12s %12s\n' "$1" "$($3 <"$W/res/$2-gruntime")" "$($3 <"$W/res/$2-crun")"
}
printf '\n%-46s %12s %12s\n' "== container (median of $RUNS / best of $LOOP_RUNS)" gruntime crun
row "run /bin/true, no seccomp (ms)" start-plain median
row "run /bin/true, default profile (ms)" start-seccomp median
row "getppid, no seccomp (ns/call)" getppid-plain best
row "getppid, default profile (ns/call)" getppid-seccomp best
row "personality(0xffffffff), profile (ns/call)" personality-seccomp best
