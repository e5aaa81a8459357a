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

ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
RUNS=${RUNS:-3}
IMGTOOL=${IMGTOOL_BIN:-$ROOT/target/release/imgtool}
if [ ! -x "$IMGTOOL" ]; then
    (cd "$ROOT" && cargo build --release -p imgtool >&2)
fi
for t in skopeo docker-registry python3; do
    command -v "$t" >/dev/null || { echo "pull.sh: $t is needed" >&2; exit 1; }
done

W=$(mktemp -d /tmp/imgtool-pull-bench.XXXXXX)
. "$(dirname "$0")/registry.sh"
cleanup() {
    registry_stop
    umount -l "$W" 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT
mount -t tmpfs -o size=3g tmpfs "$W"

# --- the image: host files in 5 gzip layers, ~100 MB compressed in total -------------------
python3 - "$W/layout" <<'EOF'
import gzip, hashlib, io, json, os, sys, tarfile
out = sys.argv[1]
os.makedirs(out + "/blobs/sha256")
def put(data):
    d = hashlib.sha256(data).hexdigest()
    with open(f"{out}/blobs/sha256/{d}", "wb") as f:
        f.write(data)
    return "sha256:" + d
files = []
for base in ["/usr/lib/x86_64-linux-gnu", "/usr/lib", "/usr/share", "/usr/bin"]:
    for d, dirs, fs in os.walk(base):
        dirs.sort()
        for f in sorted(fs):
            p = os.path.join(d, f)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            try:
                files.append((p, os.path.getsize(p)))
            except OSError:
                pass
seen, layers, cur, csize, total = set(), [], [], 0, 0
target = 100 << 20
for p, s in files:
    if p in seen or s > 30 << 20:
        continue
    seen.add(p)
    cur.append(p)
    csize += s
    if csize >= 55 << 20:
        layers.append(cur)
        cur, csize = [], 0
        if len(layers) == 5:
            break
if cur and len(layers) < 5:
    layers.append(cur)
descs, diff_ids = [], []
for ps in layers:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for p in ps:
            try:
                t.add(p, arcname=p.lstrip("/"), recursive=False)
            except OSError:
                pass
    raw = buf.getvalue()
    diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
    gz = gzip.compress(raw, compresslevel=6, mtime=0)
    descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(gz), "size": len(gz)})
config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
                     "config": {"Cmd": ["/bin/sh"]},
                     "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(config), "size": len(config)},
                       "layers": descs}).encode()
md = put(manifest)
with open(out + "/oci-layout", "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
with open(out + "/index.json", "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
              "digest": md, "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}, f)
total = sum(d["size"] for d in descs)
print(f"image: {len(descs)} layers, {total / 1e6:.1f} MB compressed", file=sys.stderr)
EOF

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
