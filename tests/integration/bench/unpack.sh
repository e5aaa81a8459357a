#!/bin/bash
# Benchmark of `imgtool unpack` (import + unpack) against `skopeo copy` + `umoci unpack`, and the
# floor `gzip -dc | tar -x` / `zstd -dc | tar -x` of the same layers, for a ~100 MB 5-layer gzip
# image and its zstd twin, everything on a private tmpfs. Prints a table with ratios.
#
#   tests/integration/bench/unpack.sh            # uses target/release/imgtool (built if missing)
#   IMGTOOL_BIN=... RUNS=5 tests/integration/bench/unpack.sh
#
# The images are served by a local docker-registry (plain HTTP on 127.0.0.1) for the pull cases,
# and read as oci: layouts for the import cases. Cold = empty store / destination; warm = the image
# already in imgtool's store (or, for umoci, already copied by skopeo). Each figure is the median
# of $RUNS runs. Needs root (tmpfs, overlay), docker-registry, skopeo, umoci, gzip, zstd, python3.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
RUNS=${RUNS:-3}
IMGTOOL=${IMGTOOL_BIN:-$ROOT/target/release/imgtool}
if [ ! -x "$IMGTOOL" ]; then
    (cd "$ROOT" && cargo build --release -p imgtool >&2)
fi
for t in docker-registry skopeo umoci gzip zstd python3; do
    command -v "$t" >/dev/null || { echo "unpack.sh: $t is needed" >&2; exit 1; }
done

# The commands measured are bash -c strings: the binary's path (the checkout's) quoted once.
IMGTOOL_Q=$(printf %q "$IMGTOOL")

W=$(mktemp -d /tmp/imgtool-bench.XXXXXX)
. "$(dirname "$0")/registry.sh"
cleanup() {
    registry_stop
    for m in $(awk -v w="$W" '$5 ~ "^"w {print $5}' /proc/self/mountinfo | sort -r); do
        umount -l "$m" 2>/dev/null || true
    done
    umount -l "$W" 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT
mount -t tmpfs -o size=6g tmpfs "$W"

# --- the image: host files in 5 layers of ~33 MB each (uncompressed; ~100 MB gzip in all), plus a whiteout
python3 - "$W" <<'EOF'
import hashlib, io, json, os, subprocess, sys, tarfile
w = sys.argv[1]
files = []
for base in ["/usr/lib/x86_64-linux-gnu", "/usr/share", "/usr/bin"]:
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
layers, cur, size = [], [], 0
for p, s in files:
    if size >= 33 << 20:
        layers.append(cur); cur, size = [], 0
        if len(layers) == 5:
            break
    cur.append(p); size += s
if len(layers) < 5:
    layers.append(cur)
for i, ps in enumerate(layers):
    lst = os.path.join(w, f"layer{i}.list")
    with open(lst, "w") as f:
        f.write("\n".join(ps) + "\n")
    subprocess.run(["tar", "-cf", os.path.join(w, f"layer{i}.tar"), "--numeric-owner",
                    "-P", "--transform=s,^/,,", "-T", lst], check=True, stderr=subprocess.DEVNULL)
# A later layer deletes a file of the first (a whiteout), as real images do.
victim = layers[0][0].lstrip("/")
d, n = os.path.split(victim)
ti = tarfile.TarInfo(os.path.join(d, ".wh." + n)); ti.size = 0
with tarfile.open(os.path.join(w, "layer5.tar"), "w", format=tarfile.PAX_FORMAT) as t:
    t.addfile(ti, io.BytesIO(b""))

def blob(root, data):
    h = hashlib.sha256(data).hexdigest()
    os.makedirs(os.path.join(root, "blobs/sha256"), exist_ok=True)
    with open(os.path.join(root, "blobs/sha256", h), "wb") as f:
        f.write(data)
    return "sha256:" + h, len(data)

for comp, mt, cmd in [("gz", "application/vnd.oci.image.layer.v1.tar+gzip", ["gzip", "-6", "-c"]),
                      ("zst", "application/vnd.oci.image.layer.v1.tar+zstd", ["zstd", "-3", "-q", "-c"])]:
    root = os.path.join(w, "img-" + comp)
    os.makedirs(root)
    descs, diff_ids = [], []
    for i in range(6):
        tarp = os.path.join(w, f"layer{i}.tar")
        raw = open(tarp, "rb").read()
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        data = subprocess.run(cmd + [tarp], check=True, capture_output=True).stdout
        with open(os.path.join(w, f"layer{i}.tar.{comp}"), "wb") as f:
            f.write(data)
        dg, sz = blob(root, data)
        descs.append({"mediaType": mt, "digest": dg, "size": sz})
    cfg = json.dumps({"architecture": "amd64", "os": "linux",
                      "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/usr/bin:/bin"]},
                      "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    cd, cs = blob(root, cfg)
    man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
                      "layers": descs}).encode()
    md, ms = blob(root, man)
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "digest": md, "size": ms, "annotations": {"org.opencontainers.image.ref.name": "t"}}]}, f)
    with open(os.path.join(root, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
EOF
rm -f "$W"/layer*.tar "$W"/layer*.list
gz_mb=$(du -cm "$W"/img-gz/blobs/sha256/* | tail -1 | cut -f1)
zst_mb=$(du -cm "$W"/img-zst/blobs/sha256/* | tail -1 | cut -f1)

# --- a local registry serving both images ------------------------------------------------
registry_start "$W"
for c in gz zst; do
    skopeo copy -q --dest-tls-verify=false "oci:$W/img-$c:t" "docker://$REG/bench:$c"
done

now() { date +%s.%N; }
# The run with the median wall time, printed as "WALL CPU" (CPU = user + system seconds of the
# command and its children: the machine may be shared, and CPU time shows the work done).
median() { sort -n | awk '{w[NR]=$1; c[NR]=$2} END {m=int((NR+1)/2); printf "%.3f %.3f", w[m], c[m]}'; }

# measure KEY SETUP CMD: runs SETUP (untimed) then CMD (timed), $RUNS times; sets R[KEY] (wall
# seconds, median run) and C[KEY] (CPU seconds of that run).
measure() {
    local key=$1 setup=$2 cmd=$3 i t0 t1 out
    out=$(for ((i = 0; i < RUNS; i++)); do
        eval "$setup" >/dev/null 2>&1
        t0=$(now)
        /usr/bin/time -f "%U %S" -o "$W/cpu" bash -c "$cmd" >/dev/null 2>"$W/err" ||
            { echo "FAILED: $cmd" >&2; cat "$W/err" >&2; exit 1; }
        t1=$(now)
        awk -v a="$t0" -v b="$t1" -v cpu="$(tail -1 "$W/cpu")" \
            'BEGIN {split(cpu, c, " "); printf "%.4f %.4f\n", b - a, c[1] + c[2]}'
    done | median) || exit 1
    R[$key]=${out% *}
    C[$key]=${out#* }
}

S=$W/store
floor_gz="rm -rf $W/f; mkdir $W/f; for l in $W/layer{0..5}.tar.gz; do gzip -dc \$l | tar -x -C $W/f; done"
floor_zst="rm -rf $W/f; mkdir $W/f; for l in $W/layer{0..5}.tar.zst; do zstd -dcq \$l | tar -x -C $W/f; done"
rm_bundles="rm -rf $W/b $W/u $W/dst"

declare -A R C
measure floor_gz "rm -rf $W/f" "$floor_gz"
measure floor_zst "rm -rf $W/f" "$floor_zst"
measure umoci_cold "$rm_bundles" "skopeo copy -q --src-tls-verify=false docker://$REG/bench:gz oci:$W/dst:t && umoci unpack --image $W/dst:t $W/u"
measure umoci_oci_cold "$rm_bundles" "skopeo copy -q oci:$W/img-gz:t oci:$W/dst:t && umoci unpack --image $W/dst:t $W/u"
skopeo copy -q "oci:$W/img-gz:t" "oci:$W/dst:t"
measure umoci_warm "rm -rf $W/u" "umoci unpack --image $W/dst:t $W/u"
# Warm: the image is in the store and named by its ID, as `imgtool unpack NAME` of a pulled image.
image_id() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["imageId"])' "$W/b/imgtool-bundle.json"; }
for c in gz zst; do
    measure imgtool_${c}_pull "rm -rf $W/b $S" "$IMGTOOL_Q --store $S --plain-http unpack $REG/bench:$c $W/b"
    measure imgtool_${c}_cold "rm -rf $W/b $S" "$IMGTOOL_Q --store $S unpack oci:$W/img-$c:t $W/b"
    id=$(image_id)
    measure imgtool_${c}_warm "rm -rf $W/b" "$IMGTOOL_Q --store $S unpack $id $W/b"
done
# Overlay: cold extracts the layer cache; warm finds it and only mounts.
ov_rm="$IMGTOOL_Q --store $S bundle rm $W/b 2>/dev/null; rm -rf $W/b"
measure imgtool_ov_cold "$ov_rm; rm -rf $S" "$IMGTOOL_Q --store $S unpack --snapshot overlay oci:$W/img-gz:t $W/b"
id=$(image_id)
measure imgtool_ov_warm "$ov_rm" "$IMGTOOL_Q --store $S unpack --snapshot overlay $id $W/b"
eval "$ov_rm"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2fx", a / b}'; }
echo
echo "imgtool unpack benchmark: 6 layers (5 x ~33 MB uncompressed + a whiteout), gzip ${gz_mb} MB / zstd ${zst_mb} MB, tmpfs, median of $RUNS"
printf "%-46s %9s %9s %10s %10s\n" "case" "wall s" "CPU s" "vs umoci" "vs floor"
# row LABEL KEY [vs-umoci] [vs-floor]
row() { printf "%-46s %9s %9s %10s %10s\n" "$1" "${R[$2]}" "${C[$2]}" "${3:--}" "${4:--}"; }
row "floor gzip -dc | tar -x (layer files)" floor_gz
row "floor zstd -dc | tar -x (layer files)" floor_zst
row "skopeo copy registry + umoci unpack (cold)" umoci_cold
row "skopeo copy oci: + umoci unpack (cold)" umoci_oci_cold
row "umoci unpack (warm)" umoci_warm
row "imgtool unpack registry gzip (cold pull)" imgtool_gz_pull "$(ratio "${R[imgtool_gz_pull]}" "${R[umoci_cold]}")" "$(ratio "${R[imgtool_gz_pull]}" "${R[floor_gz]}")"
row "imgtool unpack registry zstd (cold pull)" imgtool_zst_pull "-" "$(ratio "${R[imgtool_zst_pull]}" "${R[floor_zst]}")"
row "imgtool unpack oci: gzip (cold import)" imgtool_gz_cold "$(ratio "${R[imgtool_gz_cold]}" "${R[umoci_oci_cold]}")" "$(ratio "${R[imgtool_gz_cold]}" "${R[floor_gz]}")"
row "imgtool unpack oci: zstd (cold import)" imgtool_zst_cold "-" "$(ratio "${R[imgtool_zst_cold]}" "${R[floor_zst]}")"
row "imgtool unpack gzip (warm, in store)" imgtool_gz_warm "$(ratio "${R[imgtool_gz_warm]}" "${R[umoci_warm]}")" "$(ratio "${R[imgtool_gz_warm]}" "${R[floor_gz]}")"
row "imgtool unpack zstd (warm, in store)" imgtool_zst_warm "-" "$(ratio "${R[imgtool_zst_warm]}" "${R[floor_zst]}")"
row "imgtool unpack --snapshot overlay (cold)" imgtool_ov_cold "$(ratio "${R[imgtool_ov_cold]}" "${R[umoci_oci_cold]}")" "-"
row "imgtool unpack --snapshot overlay (warm)" imgtool_ov_warm "$(ratio "${R[imgtool_ov_warm]}" "${R[umoci_warm]}")" "-"
echo "load average during the run: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
echo "targets: cold <= 1.5 s, warm copy <= 1.0 s, warm overlay <= 0.05 s, zstd cold <= 0.6 s"
