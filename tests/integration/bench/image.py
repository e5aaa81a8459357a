# The benchmarks' image (pull.sh, push.sh): host files in 5 gzip layers, ~100 MB compressed,
# written as an OCI layout tagged v1 at argv[1].
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
