#!/bin/bash
# Benchmark of checkpoint and restore with CRIU (Debian's criu 3.17) in the project's cgroup-v2 VM
# (tests/integration/vm): a container holding 100 MiB of dirty anonymous memory
# (tests/integration/checkpoint/holder.c) is checkpointed, then restored from its images, by gruntime
# and by runc, N rounds (default 5) interleaved (gruntime, runc, gruntime, …). Prints the median of each
# step in ms per runtime and the ratios gruntime/runc. Debian's crun is built without CRIU: not compared.
#
#   tests/integration/bench/checkpoint_vm.sh      # uses target/release/gruntime (built if missing)
#   N=9 GRUNTIME_BIN=... tests/integration/bench/checkpoint_vm.sh
#
# The VM is TCG (no KVM here): absolute times are several times a native host's and move with the
# host's load; the ratios are what compares. Needs qemu-system-x86, linux-image-amd64, busybox-static,
# runc, criu, python3, a C compiler with a static libc.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
N=${N:-5}
GRUNTIME=${GRUNTIME_BIN:-$ROOT/target/release/gruntime}
if [ ! -x "$GRUNTIME" ]; then
    (cd "$ROOT" && cargo build --release -p gruntime >&2)
fi
for t in runc criu python3 busybox cc; do
    command -v "$t" >/dev/null || { echo "checkpoint_vm.sh: $t is needed" >&2; exit 1; }
done
[[ $N =~ ^[1-9][0-9]*$ ]] || { echo "checkpoint_vm.sh: N=$N: not a positive number" >&2; exit 2; }
SHARE=$(mktemp -d /tmp/checkpoint-bench.XXXXXX)
trap 'rm -rf "$SHARE"' EXIT
cc -static -O2 -o "$SHARE/holder" "$ROOT/tests/integration/checkpoint/holder.c"

GUEST=$(cat <<'EOF'
set -euo pipefail
W=/tmp/ckbench; mkdir -p $W/bundle/rootfs/bin $W/times
cd $W/bundle
cp "$(command -v busybox)" rootfs/bin/busybox
cp "$SHARE/holder" rootfs/bin/holder
for a in sh sleep; do ln -s busybox rootfs/bin/$a; done
mkdir -p rootfs/proc rootfs/sys rootfs/dev rootfs/tmp rootfs/etc rootfs/var rootfs/out rootfs/scratch
runc spec
python3 - <<'PY'
import json
c = json.load(open("config.json"))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/holder"]
c["root"]["readonly"] = False
c["mounts"] += [
    {"destination": "/out", "type": "bind", "source": "/tmp/ckbench/out", "options": ["rbind"]},
    {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]},
]
json.dump(c, open("config.json", "w"), indent=1)
PY
now_ns() { date +%s%N; }
bin_of() { if [ "$1" = gruntime ]; then echo "$GRUNTIME"; else echo "$1"; fi; }
# The container's stdio are pipes, as a shim or conmon gives them (CRIU re-attaches pipes).
piped() {
    local log=$1; shift; rm -f "$log.rc"
    { : | "$@" 2>&1; echo $? > "$log.rc"; } | cat > "$log" &
    while [ ! -e "$log.rc" ]; do sleep 0.05; done
    return "$(cat "$log.rc")"
}
ready() { grep -q ready $W/out/report 2>/dev/null; }
: > $W/times/gruntime-checkpoint; : > $W/times/gruntime-restore
: > $W/times/runc-checkpoint; : > $W/times/runc-restore
round() {
    local rt=$1 id=$2 bin; bin=$(bin_of $rt)
    rm -rf $W/out $W/img; mkdir -p $W/out
    piped $W/run.log "$bin" --root /run/bench-$rt run -d --bundle $W/bundle $id || { cat $W/run.log >&2; exit 1; }
    while ! ready; do sleep 0.1; done
    t0=$(now_ns)
    "$bin" --root /run/bench-$rt checkpoint --image-path $W/img $id
    t1=$(now_ns)
    piped $W/restore.log "$bin" --root /run/bench-$rt restore -d --bundle $W/bundle --image-path $W/img $id || { cat $W/restore.log >&2; exit 1; }
    t2=$(now_ns)
    "$bin" --root /run/bench-$rt delete -f $id
    echo $(( (t1 - t0) / 1000 )) >> $W/times/$rt-checkpoint
    echo $(( (t2 - t1) / 1000 )) >> $W/times/$rt-restore
}
# One warm-up round each, not counted; then interleaved rounds, so a change of the host's load
# weighs on both alike.
round gruntime warm-gruntime; round runc warm-runc
: > $W/times/gruntime-checkpoint; : > $W/times/gruntime-restore
: > $W/times/runc-checkpoint; : > $W/times/runc-restore
echo "checkpoint_vm: $N rounds of gruntime, runc" >&2
for i in $(seq 1 "$N"); do
    for rt in gruntime runc; do round $rt c-$rt-$i; done
done
python3 - "$W/times" "$N" <<'PY'
import statistics, sys
d, n = sys.argv[1], sys.argv[2]
med = {}
for rt in ("gruntime", "runc"):
    for step in ("checkpoint", "restore"):
        med[rt, step] = statistics.median(int(x) / 1000 for x in open(f"{d}/{rt}-{step}"))
print(f"checkpoint/restore of a container with 100 MiB dirty memory (criu 3.17), median of N={n}, in the cgroup-v2 VM (TCG)")
print(f"{'step':<12}{'gruntime ms':>13}{'runc ms':>10}{'gruntime/runc':>15}")
for step in ("checkpoint", "restore"):
    g, r = med["gruntime", step], med["runc", step]
    print(f"{step:<12}{g:>13.1f}{r:>10.1f}{g / r:>15.2f}")
PY
EOF
)

"$ROOT/tests/integration/vm/run.sh" --timeout "${TIMEOUT:-1500}" --share "$SHARE" \
    --env "GRUNTIME=$GRUNTIME" --env "N=$N" --env "SHARE=$SHARE" -- bash -c "$GUEST"
