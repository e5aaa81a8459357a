#!/bin/bash
# Benchmark the VM harness: wall time of `run.sh -- true` (qemu start, kernel
# boot, initramfs, 9p + overlay root, cgroup2 setup, run, power off).
#
# Usage: bench-boot.sh [RUNS] [busybox|systemd]   (default 5 runs of the busybox guest; the
# first run also warms the caches and is not counted)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUNS=${1:-5}
INIT=${2:-busybox}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "bench-boot: RUNS must be a positive number" >&2; exit 2; }
case $INIT in busybox | systemd) ;; *) echo "bench-boot: the init is busybox or systemd" >&2; exit 2 ;; esac

"$HERE/run.sh" --init "$INIT" --timeout 120 -- true # builds target/vm caches; not counted

times=()
for _ in $(seq "$RUNS"); do
    start=${EPOCHREALTIME/./}
    "$HERE/run.sh" --init "$INIT" --timeout 120 -- true
    times+=($(((${EPOCHREALTIME/./} - start) / 1000)))
done
mapfile -t sorted < <(printf '%s\n' "${times[@]}" | sort -n)
printf 'vm (%s) boot+run+poweroff, %d runs: min %d ms, median %d ms, max %d ms\n' \
    "$INIT" "$RUNS" "${sorted[0]}" "${sorted[$((RUNS / 2))]}" "${sorted[$((RUNS - 1))]}"
