#!/bin/bash
# Benchmark of the container lifecycle under the systemd cgroup driver, in the project's VM booted
# with systemd as PID 1 (tests/integration/vm, --init systemd): `RUNTIME --systemd-cgroup run`
# (= create + start + wait + delete, a transient scope per container, started and stopped over
# D-Bus) of /bin/true, N times each, for gruntime, runc and crun (Debian's), same bundle, same
# limits. Prints the median and the mean in ms per runtime and the ratios to crun, and gruntime's
# peak RSS (GNU time) for one run with and one without --systemd-cgroup.
#
#   tests/integration/bench/systemd_vm.sh          # uses target/release/gruntime (built if missing)
#   N=100 GRUNTIME_BIN=... tests/integration/bench/systemd_vm.sh
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
for t in runc crun python3 busybox /usr/bin/time; do
    command -v "$t" >/dev/null || { echo "systemd_vm.sh: $t is needed" >&2; exit 1; }
done
[[ $N =~ ^[1-9][0-9]*$ ]] || { echo "systemd_vm.sh: N=$N: not a positive number" >&2; exit 2; }

# The guest part: everything happens on the guest's own tmpfs, nothing reaches the host.
GUEST=$(cat <<'EOF'
set -euo pipefail
W=/tmp/sdbench; mkdir -p $W/bundle/rootfs/bin $W/times
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
    "$(bin_of $rt)" --root /run/bench-$rt --systemd-cgroup run --bundle $W/bundle warmup-$rt >/dev/null
    : > $W/times/$rt
done
# Interleaved, one run of each per round: a change of load on the host (TCG shares its CPUs with
# everything else) then weighs on the three alike instead of on whichever ran during it.
echo "systemd_vm: $N rounds of gruntime, runc, crun (--systemd-cgroup)" >&2
for i in $(seq 1 "$N"); do
    for rt in gruntime runc crun; do
        bin=$(bin_of $rt)
        t0=$(now_ns)
        "$bin" --root /run/bench-$rt --systemd-cgroup run --bundle $W/bundle c-$rt-$i >/dev/null
        t1=$(now_ns)
        echo $(( (t1 - t0) / 1000 )) >> $W/times/$rt
    done
done
for rt in gruntime runc crun; do
    left=$(ls /run/bench-$rt | wc -l)
    [ "$left" = 0 ] || { echo "$rt left $left containers behind" >&2; exit 1; }
done
systemctl list-units --all --no-legend --plain '*.scope' | grep -v -e '^init.scope' -e '^session-' >$W/units || true
left=$(wc -l <$W/units)
[ "$left" = 0 ] || { echo "units left:"; cat $W/units; } >&2
failed=$(systemctl list-units --failed --no-legend --plain | wc -l)
# Without --systemd-cgroup the cgroup goes under our own, a systemd service's cgroup that holds
# processes (no controllers can be enabled there): an absolute cgroupsPath puts it at the root.
cp -r $W/bundle $W/bundle-fs
python3 -c 'import json,sys; p=sys.argv[1]; c=json.load(open(p)); c["linux"]["cgroupsPath"]="/bench-rss"; json.dump(c,open(p,"w"))' $W/bundle-fs/config.json
rss() { /usr/bin/time -f %M "$GRUNTIME" --root /run/bench-rss "$@" rss 2>&1 >/dev/null | tail -n1; }
rss_sd=$(rss --systemd-cgroup run --bundle $W/bundle); rss_fs=$(rss run --bundle $W/bundle-fs)
python3 - "$W/times" "$N" "$left" "$failed" "$rss_sd" "$rss_fs" <<'PY'
import statistics, sys
d, n, left, failed, rss_sd, rss_fs = sys.argv[1:7]
t = {rt: [int(x) / 1000 for x in open(f"{d}/{rt}")] for rt in ("gruntime", "runc", "crun")}
med = {rt: statistics.median(v) for rt, v in t.items()}
print(f"systemd driver: --systemd-cgroup run (create+start+wait+delete) of /bin/true with limits, N={n}, systemd guest (TCG)")
print(f"{'runtime':<10}{'median ms':>12}{'mean ms':>10}{'min ms':>10}{'ratio to crun (median)':>25}")
for rt in ("gruntime", "runc", "crun"):
    v = t[rt]
    print(f"{rt:<10}{med[rt]:>12.1f}{statistics.mean(v):>10.1f}{min(v):>10.1f}{med[rt] / med['crun']:>25.2f}")
print(f"units left after all runs: {left}, failed units: {failed}")
print(f"gruntime peak RSS of one run: {rss_sd} KiB with --systemd-cgroup (D-Bus client), {rss_fs} KiB without")
PY
EOF
)

exec "$ROOT/tests/integration/vm/run.sh" --init systemd --timeout "${TIMEOUT:-1500}" \
    --env "GRUNTIME=$GRUNTIME" --env "N=$N" -- bash -c "$GUEST"
