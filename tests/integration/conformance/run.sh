#!/bin/bash
# run.sh [--report OUT]
# `make conformance`: the OCI runtime-tools validation suite and Kubernetes' critest against gruntime
# and, as the control in the same run, Debian's runc; then a per-program/per-spec table and a check
# against expected.tsv (a new failure, or a known failure that passes, fails the run).
#   1. build.sh: both suites from $CONFORMANCE_DIR, offline, cached outside the checkout;
#   2. runtime-tools on the host: every program that needs no cgroup (the host's cgroups are not ours);
#   3. runtime-tools in the project's cgroup-v2 VM (tests/integration/vm/run.sh): every program;
#   4. critest in the suite's own VM harness (cri/cri-suite.sh: containerd 1.6 + the runc shim).
# --report OUT: only redo the table and the check from the results of an earlier run in OUT.
# Env: GRUNTIME (default <checkout>/target/debug/gruntime), RUNC (default /usr/sbin/runc),
#      CONFORMANCE_DIR (default <checkout>/../shared/conformance), CONFORMANCE_CACHE (see build.sh),
#      CONFORMANCE_OUT (default <checkout>/target/conformance/<UTC time>),
#      CONFORMANCE_PLACES (default "host vm cri"), CONFORMANCE_RUNTIMES (default "gruntime runc"),
#      CONFORMANCE_ARGV=1: log every runtime call critest's shim makes (cri/argv-wrapper.sh; ~50 % slower),
#      CRI_FOCUS / CRI_SKIP: passed to cri-suite.sh (a focused run is reported, not checked).
# Exit: 0 iff every result matches expected.tsv.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(git -C "$HERE" rev-parse --show-toplevel 2>/dev/null || (cd "$HERE/../../.." && pwd))
EXPECTED=${CONFORMANCE_EXPECTED:-$HERE/expected.tsv}
log() { printf '== %s %s\n' "$(date -u +%T)" "$*"; }

if [ "${1:-}" = "--report" ]; then
  [ -n "${2:-}" ] && [ -d "$2" ] || { echo "run.sh: --report needs the OUT dir of an earlier run" >&2; exit 2; }
  exec python3 "$HERE/compare.py" "$2" "$EXPECTED"
fi
[ $# -eq 0 ] || { echo "run.sh: unexpected argument '$1' (usage: run.sh [--report OUT])" >&2; exit 2; }

CDIR=${CONFORMANCE_DIR:-$TOP/../shared/conformance}
[ -d "$CDIR" ] || { echo "run.sh: no conformance dir '$CDIR' (set CONFORMANCE_DIR)" >&2; exit 2; }
CDIR=$(cd "$CDIR" && pwd)
GRUNTIME=${GRUNTIME:-$TOP/target/debug/gruntime}
RUNC=${RUNC:-/usr/sbin/runc}
PLACES=${CONFORMANCE_PLACES:-host vm cri}
RUNTIMES=${CONFORMANCE_RUNTIMES:-gruntime runc}
for p in $PLACES; do case $p in host|vm|cri) ;; *) echo "run.sh: unknown place '$p' in CONFORMANCE_PLACES (host vm cri)" >&2; exit 2 ;; esac; done
for r in $RUNTIMES; do case $r in gruntime|runc) ;; *) echo "run.sh: unknown runtime '$r' in CONFORMANCE_RUNTIMES (gruntime runc)" >&2; exit 2 ;; esac; done
[ -x "$GRUNTIME" ] || { echo "run.sh: no gruntime at '$GRUNTIME' (cargo build -p gruntime, or set GRUNTIME)" >&2; exit 2; }
[ -x "$RUNC" ] || { echo "run.sh: no runc at '$RUNC' (apt-get install runc, or set RUNC)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (the suites create containers)" >&2; exit 2; }

T0=$(date +%s)
OUT=${CONFORMANCE_OUT:-$TOP/target/conformance/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
log "results in $OUT"

# ---------------------------------------------------------------- build (cached)
# Only what the places need: the host and VM places run runtime-tools, the cri place critest.
WHAT=all
if [[ " $PLACES " != *" cri "* ]]; then WHAT=runtime-tools
elif [[ " $PLACES " != *" host "* && " $PLACES " != *" vm "* ]]; then WHAT=critest; fi
BUILD_OUT=$("$HERE/build.sh" "$WHAT")
RT_BIN=$(sed -n 's/^RT_BIN=//p' <<<"$BUILD_OUT")
CRI_WORK=$(sed -n 's/^CRI_WORK=//p' <<<"$BUILD_OUT")
log "runtime-tools: $RT_BIN; critest: $CRI_WORK/bin"

# The runtimes travel with the results: the VMs share OUT, and a checkout under /tmp is hidden in them.
mkdir -p "$OUT/bin"
# (copy + rename: another run.sh on the same OUT may be running the old copy). gruntime's copy loses its
# debug info (same code): a debug build is ~60 MB, and the guests read it through 9p on every call.
for f in "$GRUNTIME:gruntime" "$HERE/rt-run.sh:rt-run.sh"; do
  cp "${f%%:*}" "$OUT/bin/.${f#*:}.new"; mv -f "$OUT/bin/.${f#*:}.new" "$OUT/bin/${f#*:}"
done
strip --strip-debug "$OUT/bin/gruntime" 2>/dev/null || true
rtpath() { case $1 in gruntime) echo "$OUT/bin/gruntime" ;; runc) echo "$RUNC" ;; esac; }
{ echo "gruntime: $GRUNTIME ($("$GRUNTIME" --version 2>&1 | head -1))"
  echo "gruntime commit: $(git -C "$TOP" rev-parse HEAD 2>/dev/null || echo unknown)"
  echo "runc: $RUNC ($("$RUNC" --version 2>&1 | head -1))"
  echo "kernel (host): $(uname -r)"
  echo "runtime-tools: $(basename "$(ls "$CDIR"/runtime-tools-*.tar.gz)")"
} > "$OUT/versions.txt"

ALL=$(cd "$RT_BIN" && for f in *; do [ -x "$f" ] && [ "$f" != runtimetest ] && echo "$f"; done)
if [ -n "${CONFORMANCE_PROGRAMS:-}" ]; then   # a subset (reported, not checked as a whole)
  for p in $CONFORMANCE_PROGRAMS; do grep -qx -- "$p" <<<"$ALL" || { echo "run.sh: no runtime-tools program '$p'" >&2; exit 2; }; done
  ALL=$(tr ' ' '\n' <<<"$CONFORMANCE_PROGRAMS" | grep .)
fi
# Host: not the programs that make cgroups at fixed places (/sys/fs/cgroup/pids/cgrouptest, cgroupsPath
# /cgrouptest…): the host's cgroups belong to its supervisor, and tests stay inside their own.
HOSTP=$(grep -vE '^(linux_cgroups_|delete_resources$|delete_only_create_resources$)' <<<"$ALL")
echo "$ALL" > "$OUT/programs-vm.txt"; echo "$HOSTP" > "$OUT/programs-host.txt"

# Each (place, runtime) is one job: the host runs, one VM per runtime for runtime-tools, one critest VM
# per runtime. With CONFORMANCE_JOBS > 1 (default 4) they run side by side: the VMs are TCG-bound and
# each gets its own share of a busy machine (memory: up to 2 x 4 GB + 2 x 2 GB).
host_job() {
  log "runtime-tools host $1 ($(wc -l <<<"$HOSTP") programs)"
  # shellcheck disable=SC2086
  "$HERE/rt-run.sh" "$RT_BIN" "$OUT/host" "$1" "$(rtpath "$1")" $HOSTP > "$OUT/host-$1.log" 2>&1 \
    || { echo "run.sh: runtime-tools host $1: rt-run.sh failed (see $OUT/host-$1.log)" >&2; tail -5 "$OUT/host-$1.log" >&2; }
  log "runtime-tools host $1 done"
}

vm_job() {
  local r=$1 vrc try
  log "runtime-tools vm $r ($(wc -l <<<"$ALL") programs)"
  # In the guest the runtime runs from its tmpfs: OUT is a 9p share without caching.
  # shellcheck disable=SC2086
  { printf 'set -e\ncp %q /tmp/%q\n' "$(rtpath "$r")" "$r"
    printf 'bash %q %q %q %q %q %s\n' "$OUT/bin/rt-run.sh" "$RT_BIN" "$OUT/vm" "$r" "/tmp/$r" "$(echo $ALL)"
  } > "$OUT/bin/vm-batch-$r.sh"
  # A guest that never got to the command (125 and no result yet: under a loaded TCG host the kernel
  # can panic at boot, "IO-APIC + timer doesn't work") boots again, twice at most.
  for try in 1 2 3; do
    set +e
    ( cd "$OUT" && "$TOP/tests/integration/vm/run.sh" --timeout "${CONFORMANCE_VM_TIMEOUT:-4800}" \
        --share "$OUT" --share "$RT_BIN" --mem "${CONFORMANCE_VM_MEM:-2048}" -- bash "$OUT/bin/vm-batch-$r.sh" ) > "$OUT/vm-$r.log" 2>&1
    vrc=$?
    set -e
    [ "$vrc" -eq 125 ] && [ ! -s "$OUT/vm/$r/results.tsv" ] && [ "$try" -lt 3 ] || break
    cp "$OUT/vm-$r.log" "$OUT/vm-$r.boot-failure-$try.log"
    log "runtime-tools vm $r: the VM did not run the command (status 125), booting again"
  done
  [ "$vrc" -eq 0 ] || { echo "run.sh: the runtime-tools VM for $r ended with status $vrc (see $OUT/vm-$r.log)" >&2; tail -5 "$OUT/vm-$r.log" >&2; }
  log "runtime-tools vm $r done"
}

cri_job() {
  local r=$1 co rt crc envs=()
  log "critest $r"
  co=$OUT/cri/$r; mkdir -p "$co/rt"
  # The guest has fresh tmpfs on /tmp, /var/tmp and /run and sees only CRI_OUT of ours: the runtime
  # (and the argv wrapper) must be in there when they live under those paths on the host.
  # Best from the host's root, which the guest caches; else from CRI_OUT (a 9p share without caching).
  rt=$(rtpath "$r")
  case $rt in
    /tmp/*|/var/tmp/*|/run/*)
      case $TOP in
        /tmp/*|/var/tmp/*|/run/*) cp "$rt" "$co/rt/$r"; rt=$co/rt/$r ;;
        *) mkdir -p "$TOP/target/conformance-bin"
           cp "$rt" "$TOP/target/conformance-bin/.$r.new"; mv -f "$TOP/target/conformance-bin/.$r.new" "$TOP/target/conformance-bin/$r"
           rt=$TOP/target/conformance-bin/$r ;;
      esac ;;
  esac
  if [ "${CONFORMANCE_ARGV:-0}" = 1 ]; then
    cp "$CDIR/cri/argv-wrapper.sh" "$co/rt/argv-wrapper.sh"
    envs=(ARGV_REAL_RUNTIME="$rt"); rt=$co/rt/argv-wrapper.sh
  fi
  set +e
  env "${envs[@]}" CRI_OUT="$co" CRI_WORK="$CRI_WORK" "$CDIR/cri/cri-suite.sh" "$rt" > "$OUT/cri-$r.log" 2>&1
  crc=$?
  set -e
  [ -s "$co/results.tsv" ] || { echo "run.sh: critest $r gave no results (status $crc, see $OUT/cri-$r.log)" >&2; tail -5 "$OUT/cri-$r.log" >&2; }
  # the stand-in images are rebuilt on every run; the logs are what is worth keeping
  rm -rf "$co/assets/oci" "$co/assets/preload.tar" "$co/cri-bin" 2>/dev/null || true
  log "critest $r done"
}

JOBS=()
for p in cri vm host; do
  [[ " $PLACES " == *" $p "* ]] || continue
  for r in $RUNTIMES; do JOBS+=("$p:$r"); done
done
PIDS=()
# job control: each job is its own process group, so that stopping the run stops its VMs and containers
set -m
stop_jobs() { local p; for p in "${PIDS[@]}"; do kill -- "-$p" 2>/dev/null || true; done; wait; }
trap 'stop_jobs; exit 130' INT TERM HUP
MAXJ=${CONFORMANCE_JOBS:-4}
for j in "${JOBS[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$MAXJ" ]; do wait -n || true; done
  "${j%%:*}_job" "${j#*:}" &
  PIDS+=($!)
done
wait
set +m
trap - INT TERM HUP

log "done in $(( $(date +%s) - T0 )) s"
[ -z "${CRI_FOCUS:-}${CRI_SKIP:-}${CONFORMANCE_PROGRAMS:-}" ] || export CONFORMANCE_PARTIAL=1
export CONFORMANCE_RAN="${JOBS[*]}"
python3 "$HERE/compare.py" "$OUT" "$EXPECTED"
