#!/bin/bash
# Build (or reuse) the busybox initramfs that boots the cgroup-v2 test VM.
#
# Usage: build-initramfs.sh KERNEL_VERSION OUT_DIR
# Prints the path of the initramfs on stdout. The file is cached as
# OUT_DIR/initramfs-<kernel version>-<hash of the harness files>.cpio.gz, so a
# new kernel or an edited `init` gives a new file and an unchanged one is reused.
#
# The initramfs holds only what is needed to reach the host's root over 9p:
# a static busybox, the `init` script and the modules for virtio-pci, 9p and
# overlayfs (in modules.dep order). Everything else (veth, bridge, tun, ...) is
# loaded later in the guest with the host's modprobe from the host's
# /lib/modules/<kernel version>, which the guest sees through the 9p share.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUSYBOX=${GRUNTIME_VM_BUSYBOX:-/bin/busybox}
# Modules the guest needs before it can see the host's root filesystem.
BOOT_MODULES=(virtio_pci 9pnet_virtio 9p overlay)

die() { echo "vm: build-initramfs: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: build-initramfs.sh KERNEL_VERSION OUT_DIR"
KVER=$1
OUT_DIR=$2
MODDIR=/lib/modules/$KVER

check_inputs() {
    [ -f "$MODDIR/modules.dep" ] ||
        die "$MODDIR/modules.dep missing: install the modules of kernel $KVER (apt-get install linux-image-amd64)"
    [ -x "$BUSYBOX" ] || die "$BUSYBOX missing: apt-get install busybox-static"
    # A dynamically linked busybox would need the host's libc inside the initramfs.
    if ldd "$BUSYBOX" >/dev/null 2>&1; then
        die "$BUSYBOX is dynamically linked: apt-get install busybox-static"
    fi
    command -v cpio >/dev/null || die "cpio missing: apt-get install cpio"
}

# The cache key: anything that changes what ends up in the initramfs.
cache_key() {
    cat "$HERE/build-initramfs.sh" "$HERE/init" "$BUSYBOX" "$MODDIR/modules.dep" |
        sha256sum | cut -c1-16
}

# Print the module files (relative to $MODDIR) for one module name, its
# dependencies first. modules.dep lists every transitive dependency of a module
# in an order where loading the list backwards satisfies each one's own needs.
module_files() {
    local name=$1 line
    line=$(grep -E "(^|/)${name}\.ko(\.[gx]z|\.zst)?:" "$MODDIR/modules.dep" || true)
    if [ -z "$line" ]; then
        # Built into the kernel: nothing to load.
        grep -qE "(^|/)${name}\.ko$" "$MODDIR/modules.builtin" ||
            die "module $name is neither in $MODDIR/modules.dep nor built in"
        return 0
    fi
    local mod=${line%%:*} deps=${line#*:} d
    local -a rev=()
    for d in $deps; do rev=("$d" "${rev[@]}"); done
    for d in "${rev[@]}"; do echo "$d"; done
    echo "$mod"
}

# The ordered, de-duplicated list of module files to load at boot.
boot_module_list() {
    local m
    for m in "${BOOT_MODULES[@]}"; do module_files "$m"; done | awk '!seen[$0]++'
}

# Copy busybox, init and the modules into the staging tree $1.
populate() {
    local root=$1 f
    mkdir -p "$root"/{bin,dev,proc,sys,mnt,lib/modules}
    cp "$BUSYBOX" "$root/bin/busybox"
    ln -s busybox "$root/bin/sh"
    # The kernel opens /dev/console for init's stdio before init can mount devtmpfs.
    mknod -m 0600 "$root/dev/console" c 5 1
    cp "$HERE/init" "$root/init"
    chmod 0755 "$root/init"
    : >"$root/lib/modules/load-order"
    while read -r f; do
        case $f in
        *.ko) cp "$MODDIR/$f" "$root/lib/modules/" ;;
        *.ko.xz) xz -dc "$MODDIR/$f" >"$root/lib/modules/$(basename "${f%.xz}")" ;;
        *.ko.gz) gzip -dc "$MODDIR/$f" >"$root/lib/modules/$(basename "${f%.gz}")" ;;
        *.ko.zst) zstd -qdc "$MODDIR/$f" >"$root/lib/modules/$(basename "${f%.zst}")" ;;
        *) die "unexpected module file $f" ;;
        esac
        basename "${f%.ko*}.ko" >>"$root/lib/modules/load-order"
    done < <(boot_module_list)
}

main() {
    check_inputs
    mkdir -p "$OUT_DIR"
    local out
    out="$OUT_DIR/initramfs-$KVER-$(cache_key).cpio.gz"
    # Several test binaries may start a VM at once: one builds, the others wait.
    exec 9>"$OUT_DIR/.build.lock"
    flock -w 300 9 || die "timed out waiting for $OUT_DIR/.build.lock"
    if [ ! -s "$out" ]; then
        STAGE=$(mktemp -d "$OUT_DIR/.stage.XXXXXX")
        OUT_TMP=$out.tmp
        trap 'rm -rf "$STAGE" "$OUT_TMP"' EXIT
        populate "$STAGE"
        (cd "$STAGE" && find . -print0 | sort -z |
            cpio --null --create --format=newc --quiet --owner=0:0) | gzip -1 >"$out.tmp"
        mv "$out.tmp" "$out"
        # Older initramfses of this kernel are left alone: a checkout with an
        # older `init` sharing this target dir may be about to boot one.
    fi
    echo "$out"
}

main
