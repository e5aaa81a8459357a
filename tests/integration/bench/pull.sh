#!/bin/bash
# Benchmark of `imgtool pull` against `skopeo copy docker://… oci:…` from the same local
# docker-registry (plain HTTP on 127.0.0.1), for a ~100 MB (compressed) 5-layer gzip image made
# from host files. Prints a table with ratios.
#
#   tests/integration/bench/pull.sh            # uses target/release/imgtool (built if missing)
#   IMGTOOL_BIN=... RUNS=5 tests/integration/bench/pull.sh
#
# Cold = empty store / destination directory; warm = the image already there (imgtool: a
# manifest round trip; skopeo: it re-checks every blob of the destination). Each figure is the
# median of $RUNS runs. Registry storage, store and destinations are on a private tmpfs, so
# the figures compare the pull paths, not the disk. Needs root (tmpfs), docker-registry,
# skopeo, python3.
set -euo pipefail

RUNS=${RUNS:-3}
. "$(dirname "$0")/registry.sh"
registry_bench pull

# --- the image: host files in 5 gzip layers, ~100 MB compressed in total -------------------
python3 "$(dirname "$0")/image.py" "$W/layout"

# --- the registry ----------------------------------------------------------------------------
registry_start "$W"
REF=$REG/bench/image:v1
skopeo copy -q --dest-tls-verify=false "oci:$W/layout:v1" "docker://$REF"

# --- timings -----------------------------------------------------------------------------------
now_ms() { date +%s%N | awk '{printf "%.1f", $1 / 1e6}'; }
time_ms() {
    local t0 t1
    t0=$(now_ms)
    "$@" >/dev/null 2>&1 || { echo "pull.sh: failed: $*" >&2; exit 1; }
    t1=$(now_ms)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", b - a }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

: >"$W/sk_cold"; : >"$W/sk_warm"; : >"$W/im_cold"; : >"$W/im_warm"
for _ in $(seq "$RUNS"); do
    rm -rf "$W/skopeo-dest" "$W/store"
    time_ms skopeo copy -q --src-tls-verify=false "docker://$REF" "oci:$W/skopeo-dest:v1" >>"$W/sk_cold"
    time_ms skopeo copy -q --src-tls-verify=false "docker://$REF" "oci:$W/skopeo-dest:v1" >>"$W/sk_warm"
    time_ms "$IMGTOOL" --store "$W/store" --plain-http pull -q "$REF" >>"$W/im_cold"
    time_ms "$IMGTOOL" --store "$W/store" --plain-http pull -q "$REF" >>"$W/im_warm"
done
SC=$(median <"$W/sk_cold"); SW=$(median <"$W/sk_warm")
IC=$(median <"$W/im_cold"); IW=$(median <"$W/im_warm")

printf '\nimgtool pull vs skopeo copy docker:// → oci: (median of %s runs, ms)\n' "$RUNS"
printf '%-6s %12s %12s %12s\n' "" "imgtool" "skopeo" "ratio"
awk -v a="$IC" -v b="$SC" 'BEGIN { printf "%-6s %12.1f %12.1f %11.2fx\n", "cold", a, b, a / b }'
awk -v a="$IW" -v b="$SW" 'BEGIN { printf "%-6s %12.1f %12.1f %11.2fx\n", "warm", a, b, a / b }'
printf '(ratio = imgtool / skopeo; targets: cold ratio <= 1, warm imgtool < 50 ms)\n'
