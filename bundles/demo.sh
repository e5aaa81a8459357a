#!/usr/bin/env bash
# make demo: image → container, offline, with this project's two tools and nothing else.
#   1. build a one-layer OCI image layout from Debian's busybox-static with tar, gzip, sha256sum
#      and printf (into bundles/busybox-image)
#   2. imgtool pull oci:bundles/busybox-image:latest   (into a store of this checkout's own)
#   3. imgtool unpack IMAGE-ID bundles/busybox
#   4. gruntime run it, printing what the container sees of itself.
# Usage: demo.sh [BIN_DIR]   (default target/release; GRUNTIME=... picks another gruntime)
set -euo pipefail
bin=${1:-target/release}
here=$(cd "$(dirname "$0")" && pwd)
img=$here/busybox-image
store=$here/imgtool-store
bundle=$here/busybox
imgtool=$bin/imgtool
gruntime=${GRUNTIME:-$bin/gruntime}
busybox=/bin/busybox

die() { echo "demo: $*" >&2; exit 1; }
[ -x "$imgtool" ] || die "$imgtool: not built (make release, or pass the directory holding imgtool)"
[ -x "$gruntime" ] || die "$gruntime: not built (make release, or set GRUNTIME)"
[ -x "$busybox" ] || die "$busybox missing: apt-get install busybox-static"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The image's Cmd: what the container prints about itself.
CMD='echo "hello from $(hostname), I am pid $$ as $(id)"; echo "my mounts:"; cut -d" " -f5,9 /proc/self/mountinfo'

# JSON string literal of $1 (no control characters in what we quote).
json_str() {
	local s=${1//\\/\\\\}
	printf '"%s"' "${s//\"/\\\"}"
}

# Put file $1 into the layout's blobs under its digest; print "sha256:HEX SIZE".
add_blob() {
	local hex
	hex=$(sha256sum "$1" | cut -d' ' -f1)
	cp "$1" "$img.tmp/blobs/sha256/$hex"
	echo "sha256:$hex $(stat -c %s "$1")"
}

oci_arch() {
	case $(uname -m) in
	x86_64) echo amd64 ;;
	aarch64) echo arm64 ;;
	*) uname -m ;;
	esac
}

build_image() {
	local r=$work/rootfs a layer diff_id config manifest
	mkdir -p "$r"/{bin,etc,proc,sys,dev,tmp,root}
	cp "$busybox" "$r/bin/busybox"
	for a in $("$busybox" --list); do [ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"; done
	echo 'root:x:0:0:root:/root:/bin/sh' >"$r/etc/passwd"
	echo 'root:x:0:' >"$r/etc/group"
	# Fixed owners, order and times: the same busybox gives the same layer digest.
	tar --sort=name --numeric-owner --owner=0 --group=0 --mtime=@0 -C "$r" -cf "$work/layer.tar" .
	diff_id=sha256:$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
	gzip -n -c "$work/layer.tar" >"$work/layer.tar.gz"

	rm -rf "$img.tmp"
	mkdir -p "$img.tmp/blobs/sha256"
	layer=$(add_blob "$work/layer.tar.gz")
	printf '{"architecture":"%s","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["sh","-c",%s],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["%s"]},"history":[{"created_by":"bundles/demo.sh: busybox-static"}]}' \
		"$(oci_arch)" "$(json_str "$CMD")" "$diff_id" >"$work/config.json"
	config=$(add_blob "$work/config.json")
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%s}]}' \
		"${config% *}" "${config#* }" "${layer% *}" "${layer#* }" >"$work/manifest.json"
	manifest=$(add_blob "$work/manifest.json")
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}' \
		"${manifest% *}" "${manifest#* }" >"$img.tmp/index.json"
	echo '{"imageLayoutVersion":"1.0.0"}' >"$img.tmp/oci-layout"
	rm -rf "$img"
	mv "$img.tmp" "$img"
}

if [ ! -f "$img/index.json" ]; then
	echo "== building an OCI image layout from $busybox (busybox-static) into $img"
	build_image
fi

echo "== imgtool pull oci:$img:latest (store: $store)"
id=$("$imgtool" --store "$store" pull -q "oci:$img:latest")
echo "$id"
echo "== imgtool unpack $id $bundle"
rm -rf "$bundle"
"$imgtool" --store "$store" unpack -q --hostname gruntime-demo "$id" "$bundle"
echo "== gruntime run -b $bundle demo-$$"
"$gruntime" run -b "$bundle" "demo-$$"
