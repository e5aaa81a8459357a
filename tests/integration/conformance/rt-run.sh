#!/bin/bash
# rt-run.sh RT_BIN OUT NAME RUNTIME PROGRAM...
# Runs runtime-tools validation programs (built by build.sh into RT_BIN) against RUNTIME, one at a
# time, on the host or in the VM. For each program: OUT/NAME/<program>.tap (stdout + stderr) and a
# line "<program>\t<exit status>\t<ok points>\t<not-ok points>\t<seconds>" in OUT/NAME/results.tsv.
# compare.py turns these into pass/fail/error (the programs do not all report through TAP points).
# The runtime runs with a private --root (through a generated wrapper) so that leftovers of ours can be
# found and removed and nobody else's containers are touched; bundles go to a private TMPDIR.
# Env: RT_TIMEOUT (per program, default 180 s).
set -euo pipefail
[ $# -ge 5 ] || { echo "usage: rt-run.sh RT_BIN OUT NAME RUNTIME PROGRAM..." >&2; exit 2; }
BIN=$1 OUT=$2 NAME=$3 RT=$4; shift 4
[ -x "$BIN/runtimetest" ] || { echo "rt-run.sh: no runtimetest in '$BIN' (run build.sh)" >&2; exit 2; }
[ -x "$RT" ] || { echo "rt-run.sh: runtime '$RT' is not executable" >&2; exit 2; }
D=$OUT/$NAME; mkdir -p "$D"; : > "$D/results.tsv"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rt-run.XXXXXX")
ROOT=$WORK/root; mkdir -p "$ROOT" "$WORK/tmp"
# mktemp makes 0700 directories: a container whose root is mapped to another uid (user namespace) must
# still reach its bundle under them.
chmod 0755 "$WORK" "$WORK/tmp"
cat > "$WORK/runtime" <<W
#!/bin/sh
exec "$RT" --root "$ROOT" "\$@"
W
chmod +x "$WORK/runtime"
# Programs that run a container without a mount namespace (linux_ns_itype) leave its rootfs mounts
# (bind, proc, sysfs, dev…) in ours: unmount everything under WORK, deepest first.
umount_under() {
  local m
  awk -v w="$1/" 'index($5 "/", w) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
    umount -l "$(printf '%b' "$m")" 2>/dev/null || true
  done
}
delete_left() {
  local id
  for id in $("$RT" --root "$ROOT" list -q 2>/dev/null || true); do
    "$RT" --root "$ROOT" delete --force "$id" >/dev/null 2>&1 || true
  done
  # A runtime process the program's timeout orphaned before its container was recorded (an init stuck
  # in its setup) is not listed: every process still started with this run's private --root goes.
  pkill -KILL -f -- "--root $ROOT " 2>/dev/null || true
}
cleanup() {
  delete_left
  umount_under "$WORK"
  rm -rf "$WORK" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
for p in "$@"; do
  [ -x "$BIN/$p" ] || { echo "rt-run.sh: no program '$p' in $BIN" >&2; exit 2; }
  t0=$(date +%s)
  set +e
  ( cd "$BIN" && RUNTIME="$WORK/runtime" TMPDIR="$WORK/tmp" timeout -k 10 "${RT_TIMEOUT:-180}" "./$p" ) > "$D/$p.tap" 2>&1 < /dev/null
  rc=$?
  set -e
  ok=$(grep -cE '^ok ' "$D/$p.tap" || true)
  nok=$(grep -cE '^not ok ' "$D/$p.tap" || true)
  secs=$(( $(date +%s) - t0 ))
  printf '%s\t%s\t%s\t%s\t%s\n' "$p" "$rc" "$ok" "$nok" "$secs" >> "$D/results.tsv"
  printf 'rt-run: %-8s %-40s %3s ok %3s not-ok rc=%s %ss\n' "$NAME" "$p" "$ok" "$nok" "$rc" "$secs"
  # what a program left behind (a failed delete, mounts) must not leak into the next one
  delete_left
  umount_under "$WORK/tmp"
  rm -rf "$WORK/tmp"/* 2>/dev/null || true
done
