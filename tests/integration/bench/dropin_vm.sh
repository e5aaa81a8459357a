#!/usr/bin/env bash
# make bench: gruntime as a drop-in, side by side with crun and runc.
#   1. `podman run --rm IMG true` in the cgroup-v2 VM (podman 4.3 + conmon, cgroupfs, no network),
#      BENCH_PODMAN_N runs per runtime after one warm-up; median and mean wall ms.
#   2. `RUNTIME exec ID /bin/true` into a running busybox container on the host, BENCH_EXEC_N runs
#      with hyperfine, inside one private mount+cgroup namespace (private-cgroupns.sh) so that the
#      cgroups runc and crun make are children of ours.
# Env: GRUNTIME_BIN (default target/release/gruntime), BENCH_PODMAN_N (10), BENCH_EXEC_N (200).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ws=$(cd "$here/../../.." && pwd)
GRUNTIME=${GRUNTIME_BIN:-$ws/target/release/gruntime}
PODMAN_N=${BENCH_PODMAN_N:-10}
EXEC_N=${BENCH_EXEC_N:-200}
[ -x "$GRUNTIME" ] || { echo "no $GRUNTIME: cargo build --release first" >&2; exit 1; }

work=$(mktemp -d /tmp/bench-dropin.XXXXXX)
trap 'rm -rf "$work"' EXIT

make_rootfs() {
	mkdir -p "$1"/{bin,dev,proc,sys,tmp,etc,root,run}
	cp /bin/busybox "$1/bin/busybox"
	for a in $(/bin/busybox --list); do [ -e "$1/bin/$a" ] || ln -s busybox "$1/bin/$a"; done
	echo 'root:x:0:0:root:/root:/bin/sh' >"$1/etc/passwd"
	echo 'root:x:0:' >"$1/etc/group"
}

# ---- 1. podman run --rm in the VM
make_rootfs "$work/rootfs"
tar -C "$work/rootfs" -cf "$work/busybox-rootfs.tar" .
cat >"$work/guest.sh" <<'GUEST'
set -eu
T=$(mktemp -d /tmp/bench-podman.XXXXXX)
cat >"$T/containers.conf" <<CONF
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime_supports_json = ["crun", "runc", "kata", "runsc", "youki", "krun", "gruntime"]
CONF
export CONTAINERS_CONF=$T/containers.conf
pm() { podman --root "$T/root" --runroot "$T/runroot" --tmpdir "$T/libpod" --storage-driver overlay "$@"; }
pm import "$WORK/busybox-rootfs.tar" localhost/busybox >/dev/null
bin() { case $1 in gruntime) echo "$GRUNTIME" ;; crun) echo /usr/bin/crun ;; runc) echo /usr/sbin/runc ;; esac; }
for rt in gruntime crun runc; do
	pm --runtime "$(bin $rt)" run --rm --network none localhost/busybox true # warm-up (storage, page cache)
done
# Rounds of one run per runtime, so that drift in the (shared, TCG) machine's speed hits all three alike.
for i in $(seq "$N"); do
	for rt in gruntime crun runc; do
		s=$(date +%s%N)
		pm --runtime "$(bin $rt)" run --rm --network none localhost/busybox true
		e=$(date +%s%N)
		echo "podman-run $rt $(((e - s) / 1000))"
	done
done
GUEST
echo "== podman run --rm IMG true in the VM (TCG, 2 vCPUs), N=$PODMAN_N per runtime"
"$ws/tests/integration/vm/run.sh" --timeout 1200 --share "$work" \
	--env GRUNTIME="$GRUNTIME" --env WORK="$work" --env N="$PODMAN_N" \
	-- bash "$work/guest.sh" >"$work/podman.out"
summary() { # lines "TAG RUNTIME MICROSECONDS" on stdin
	python3 -c '
import statistics, sys
runs = {}
for line in sys.stdin:
    tag, rt, us = line.split()
    runs.setdefault(rt, []).append(int(us) / 1000)
base = statistics.median(runs["crun"])
print("%-10s %10s %9s %8s %6s" % ("runtime", "median ms", "mean ms", "min ms", "/crun"))
for rt, t in runs.items():
    print(f"{rt:<10} {statistics.median(t):>10.1f} {statistics.mean(t):>9.1f} {min(t):>8.1f} {statistics.median(t)/base:>6.2f}")
'
}
grep '^podman-run ' "$work/podman.out" | summary

# ---- 2. exec /bin/true into a running container, on the host
echo
echo "== RUNTIME exec ID /bin/true into a running busybox container (host), N=$EXEC_N"
bundle=$work/bundle
make_rootfs "$bundle/rootfs"
"$GRUNTIME" spec --bundle "$bundle"
python3 - "$bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["sleep", "3600"]
json.dump(c, open(p, "w"))
PY
cat >"$work/exec-inner.sh" <<'INNER'
set -eu
id=bench-exec-$$
results=$work/exec.json
cleanup() {
	for rt in gruntime crun runc; do
		"$(rt_bin $rt)" --root "$work/root-$rt" delete --force "$id" >/dev/null 2>&1 || true
	done
}
rt_bin() { case $1 in gruntime) echo "$GRUNTIME" ;; crun) echo /usr/bin/crun ;; runc) echo /usr/sbin/runc ;; esac; }
trap cleanup EXIT
cmds=()
for rt in gruntime crun runc; do
	b=$(rt_bin $rt)
	"$b" --root "$work/root-$rt" run -d -b "$work/bundle" "$id" </dev/null >/dev/null 2>&1
	# hyperfine -N splits the command line as a shell would: quote the binary's path (the checkout's).
	cmds+=(--command-name "$rt" "$(printf %q "$b") --root $work/root-$rt exec $id /bin/true")
done
hyperfine -N --warmup 10 --runs "$EXEC_N" --export-json "$results" "${cmds[@]}" >/dev/null
python3 - "$results" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
base = r["crun"]["median"]
print(f"{'runtime':<10} {'median ms':>10} {'mean ms':>9} {'min ms':>8} {'/crun':>6}")
for name, x in r.items():
    print(f"{name:<10} {x['median']*1000:>10.2f} {x['mean']*1000:>9.2f} {x['min']*1000:>8.2f} {x['median']/base:>6.2f}")
PY
INNER
PRIVATE_CGNS_NO_V2=1 work=$work GRUNTIME=$GRUNTIME EXEC_N=$EXEC_N \
	"$here/private-cgroupns.sh" bash "$work/exec-inner.sh"
