#!/bin/bash
# Benchmark of `imgtool push` (and `inspect docker://`) against `skopeo copy` (and `skopeo
# inspect`) to the same local docker-registry (plain HTTP on 127.0.0.1, both told
# --dest-tls-verify=false), for the ~100 MB (compressed) 5-layer gzip image of image.py.
# Prints a table with ratios.
#
#   tests/integration/bench/push.sh            # uses target/release/imgtool (built if missing)
#   IMGTOOL_BIN=... RUNS=5 tests/integration/bench/push.sh
#
# Cold = an empty registry (restarted on empty storage before each cold push, so neither tool
# can skip or mount a blob); re-push = every blob already there (both HEAD each blob and put
# the manifest again). imgtool pushes from its store, skopeo from the same image as an OCI
# layout: both read local files from the same tmpfs. Each figure is the median of $RUNS
# runs, the tools interleaved. Needs root (tmpfs), docker-registry, skopeo, python3.
set -euo pipefail

RUNS=${RUNS:-3}
. "$(dirname "$0")/registry.sh"
registry_bench push

python3 "$(dirname "$0")/image.py" "$W/layout"
"$IMGTOOL" --store "$W/store" copy -q "oci:$W/layout:v1" bench/image:v1

# A fresh registry on empty storage: sets REG.
fresh_registry() {
    registry_stop
    rm -rf "$W/registry"
    registry_start "$W"
}

now_ms() { date +%s%N | awk '{printf "%.1f", $1 / 1e6}'; }
time_ms() {
    local t0 t1
    t0=$(now_ms)
    "$@" >/dev/null 2>&1 || { echo "push.sh: failed: $*" >&2; exit 1; }
    t1=$(now_ms)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", b - a }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

for f in sk_cold sk_warm im_cold im_warm sk_insp im_insp; do : >"$W/$f"; done
for _ in $(seq "$RUNS"); do
    fresh_registry
    time_ms skopeo copy -q --dest-tls-verify=false "oci:$W/layout:v1" "docker://$REG/bench/image:v1" >>"$W/sk_cold"
    time_ms skopeo copy -q --dest-tls-verify=false "oci:$W/layout:v1" "docker://$REG/bench/image:v1" >>"$W/sk_warm"
    time_ms skopeo inspect --tls-verify=false "docker://$REG/bench/image:v1" >>"$W/sk_insp"
    fresh_registry
    time_ms "$IMGTOOL" --store "$W/store" push -q --dest-tls-verify=false bench/image:v1 "docker://$REG/bench/image:v1" >>"$W/im_cold"
    time_ms "$IMGTOOL" --store "$W/store" push -q --dest-tls-verify=false bench/image:v1 "docker://$REG/bench/image:v1" >>"$W/im_warm"
    time_ms "$IMGTOOL" --store "$W/store" inspect --tls-verify=false "docker://$REG/bench/image:v1" >>"$W/im_insp"
done
SC=$(median <"$W/sk_cold"); SW=$(median <"$W/sk_warm"); SI=$(median <"$W/sk_insp")
IC=$(median <"$W/im_cold"); IW=$(median <"$W/im_warm"); II=$(median <"$W/im_insp")

printf '\nimgtool push / inspect docker:// vs skopeo copy / inspect (median of %s runs, ms)\n' "$RUNS"
printf '%-8s %12s %12s %12s\n' "" "imgtool" "skopeo" "ratio"
awk -v a="$IC" -v b="$SC" 'BEGIN { printf "%-8s %12.1f %12.1f %11.2fx\n", "cold", a, b, a / b }'
awk -v a="$IW" -v b="$SW" 'BEGIN { printf "%-8s %12.1f %12.1f %11.2fx\n", "re-push", a, b, a / b }'
awk -v a="$II" -v b="$SI" 'BEGIN { printf "%-8s %12.1f %12.1f %11.2fx\n", "inspect", a, b, a / b }'
printf '(ratio = imgtool / skopeo; targets: cold <= 0.7x, re-push imgtool <= 50 ms, inspect <= 1x)\n'
