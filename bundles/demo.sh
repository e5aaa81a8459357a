#!/usr/bin/env bash
# make demo: image → container, offline.
#   1. build a small OCI image from Debian's busybox-static (umoci, into bundles/busybox-image)
#   2. imgtool unpack oci:bundles/busybox-image:latest bundles/busybox
#   3. gruntime run it, printing what the container sees of itself.
set -euo pipefail
bin=${1:-target/release}
here=$(cd "$(dirname "$0")" && pwd)
img=$here/busybox-image
bundle=$here/busybox
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ ! -f "$img/index.json" ]; then
	echo "== building an OCI image from /bin/busybox (busybox-static) into $img"
	rm -rf "$img"
	umoci init --layout "$img"
	umoci new --image "$img:latest"
	umoci unpack --image "$img:latest" "$work/b" >/dev/null
	mkdir -p "$work/b/rootfs"/{bin,etc,proc,sys,dev,tmp,root}
	cp /bin/busybox "$work/b/rootfs/bin/busybox"
	for a in $(/bin/busybox --list); do [ -e "$work/b/rootfs/bin/$a" ] || ln -s busybox "$work/b/rootfs/bin/$a"; done
	echo 'root:x:0:0:root:/root:/bin/sh' >"$work/b/rootfs/etc/passwd"
	echo 'root:x:0:' >"$work/b/rootfs/etc/group"
	umoci repack --image "$img:latest" "$work/b"
	umoci config --image "$img:latest" --config.cmd sh --config.cmd -c \
		--config.cmd 'echo "hello from $(hostname), I am pid $$ as $(id)"; echo "my mounts:"; cut -d" " -f5,9 /proc/self/mountinfo' \
		--config.env PATH=/bin --config.workingdir /
fi

echo "== imgtool unpack oci:$img:latest $bundle"
rm -rf "$bundle"
"$bin/imgtool" unpack --hostname gruntime-demo "oci:$img:latest" "$bundle"
echo "== gruntime run -b $bundle demo"
"${GRUNTIME:-$bin/gruntime}" run -b "$bundle" "demo-$$"
