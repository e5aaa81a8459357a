#!/bin/bash
# Benchmark of the container lifecycle under real cgroup v2 limits, in the project's cgroup-v2 VM
# (tests/integration/vm): `RUNTIME run` (= create + start + wait + delete) of /bin/true, N times
# each, for gruntime, runc and crun (Debian's), same bundle, same limits. Prints the median and the
# mean in ms per runtime and the ratios to crun.
#
#   tests/integration/bench/lifecycle_vm.sh          # uses target/release/gruntime (built if missing)
#   N=100 GRUNTIME_BIN=... tests/integration/bench/lifecycle_vm.sh
#
# The bundle: a busybox rootfs on the guest's tmpfs, `runc spec` + /bin/true + memory (256 MiB, no
# swap), pids (128), cpu (shares 512, quota 50 ms / 100 ms, cpuset 0) and the default deny-all device
# list (each runtime adds its default allow list: a BPF device filter in all three). One warm-up run
# per runtime is not counted; the runs are interleaved (gruntime, runc, crun, gruntime, …). The VM
# is TCG (no KVM here): absolute times are several times a native host's and move with the host's
# load, the ratios are what compares. Needs qemu-system-x86, linux-image-amd64,
# busybox-static, runc, crun, python3.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
N=${N:-50}
GRUNTIME=${GRUNTIME_BIN:-$ROOT/target/release/gruntime}
if [ ! -x "$GRUNTIME" ]; then
    (cd "$ROOT" && cargo build --release -p gruntime >&2)
fi
for t in runc crun python3 busybox; do
    command -v "$t" >/dev/null || { echo "lifecycle_vm.sh: $t is needed" >&2; exit 1; }
done
[[ $N =~ ^[1-9][0-9]*$ ]] || { echo "lifecycle_vm.sh: N=$N: not a positive number" >&2; exit 2; }

# The guest part: everything happens on the guest's own tmpfs, nothing reaches the host.
GUEST=$(cat <<'EOF'
set -euo pipefail
W=/tmp/lifecycle; mkdir -p $W/bundle/rootfs/bin $W/times
cd $W/bundle
cp "$(command -v busybox)" rootfs/bin/busybox
for a in sh true; do ln -s busybox rootfs/bin/$a; done
mkdir -p rootfs/proc rootfs/sys rootfs/dev rootfs/tmp rootfs/etc
runc spec
python3 - <<'PY'
import json
c = json.load(open("config.json"))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
c["root"]["readonly"] = True
c["linux"]["resources"].update({
    "memory": {"limit": 256 << 20, "swap": 256 << 20},
    "pids": {"limit": 128},
    "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"},
})
json.dump(c, open("config.json", "w"), indent=1)
PY
now_ns() { date +%s%N; }
bin_of() { if [ "$1" = gruntime ]; then echo "$GRUNTIME"; else echo "$1"; fi; }
for rt in gruntime runc crun; do
    "$(bin_of $rt)" --root /run/bench-$rt run --bundle $W/bundle warmup-$rt >/dev/null
    : > $W/times/$rt
done
# Interleaved, one run of each per round: a change of load on the host (TCG shares its CPUs with
# everything else) then weighs on the three alike instead of on whichever ran during it.
echo "lifecycle_vm: $N rounds of gruntime, runc, crun" >&2
for i in $(seq 1 "$N"); do
    for rt in gruntime runc crun; do
        bin=$(bin_of $rt)
        t0=$(now_ns)
        "$bin" --root /run/bench-$rt run --bundle $W/bundle c-$rt-$i >/dev/null
        t1=$(now_ns)
        echo $(( (t1 - t0) / 1000 )) >> $W/times/$rt
    done
done
for rt in gruntime runc crun; do
    left=$(ls /run/bench-$rt | wc -l)
    [ "$left" = 0 ] || { echo "$rt left $left containers behind" >&2; exit 1; }
done
left=$(find /sys/fs/cgroup -mindepth 1 -type d | wc -l)
python3 - "$W/times" "$N" "$left" <<'PY'
import statistics, sys
d, n, left = sys.argv[1], sys.argv[2], sys.argv[3]
t = {rt: [int(x) / 1000 for x in open(f"{d}/{rt}")] for rt in ("gruntime", "runc", "crun")}
med = {rt: statistics.median(v) for rt, v in t.items()}
print(f"lifecycle: run (create+start+wait+delete) of /bin/true with cgroup v2 limits, N={n}, in the cgroup-v2 VM (TCG)")
print(f"{'runtime':<10}{'median ms':>12}{'mean ms':>10}{'min ms':>10}{'ratio to crun (median)':>25}")
for rt in ("gruntime", "runc", "crun"):
    v = t[rt]
    print(f"{rt:<10}{med[rt]:>12.1f}{statistics.mean(v):>10.1f}{min(v):>10.1f}{med[rt] / med['crun']:>25.2f}")
print(f"cgroups left in the guest after all runs: {left}")
PY
EOF
)

exec "$ROOT/tests/integration/vm/run.sh" --timeout "${TIMEOUT:-1500}" \
    --env "GRUNTIME=$GRUNTIME" --env "N=$N" -- bash -c "$GUEST"
