#!/bin/bash
# Print the kernel image qemu should boot for KERNEL (a /boot/vmlinuz-VER).
#
# Usage: extract-kernel.sh KERNEL OUT_DIR
#
# A compressed bzImage spends ~3 s of TCG time decompressing itself before the
# kernel prints a line; qemu can boot the uncompressed ELF vmlinux directly
# through its PVH entry point instead. So when the kernel has CONFIG_PVH and its
# payload is xz/gzip/zstd, extract it once to OUT_DIR/vmlinux-VER-<hash>
# (cached like the initramfs) and print that; otherwise print KERNEL itself.
set -euo pipefail

die() { echo "vm: extract-kernel: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: extract-kernel.sh KERNEL OUT_DIR"
KERNEL=$1
OUT_DIR=$2
KVER=$(basename "$KERNEL")
KVER=${KVER#vmlinuz-}

has_pvh_entry() {
    grep -qx 'CONFIG_PVH=y' "/boot/config-$KVER" 2>/dev/null
}

# The byte offset of the first occurrence of a magic string in KERNEL (bash
# strings end at a NUL, so the magics below leave out their trailing zero byte).
magic_offset() {
    LC_ALL=C grep -abo -m1 "$1" "$KERNEL" 2>/dev/null | head -n1 | cut -d: -f1
}

# Decompress the payload that starts at the first known magic into $1.
decompress_payload() {
    local out=$1 off
    if off=$(magic_offset $'\xfd7zXZ') && [ -n "$off" ]; then
        tail -c +$((off + 1)) "$KERNEL" | xz -dc >"$out" 2>/dev/null || true
    elif off=$(magic_offset $'\x28\xb5\x2f\xfd') && [ -n "$off" ]; then
        tail -c +$((off + 1)) "$KERNEL" | zstd -qdc >"$out" 2>/dev/null || true
    elif off=$(magic_offset $'\x1f\x8b\x08') && [ -n "$off" ]; then
        tail -c +$((off + 1)) "$KERNEL" | gzip -dc >"$out" 2>/dev/null || true
    fi
    # Trailing data after the compressed stream makes the tools complain; what
    # matters is that a whole ELF came out.
    [ -s "$out" ] && [ "$(head -c4 "$out")" = $'\x7fELF' ]
}

main() {
    [ -r "$KERNEL" ] || die "$KERNEL: not readable"
    if ! has_pvh_entry; then
        echo "$KERNEL"
        return
    fi
    mkdir -p "$OUT_DIR"
    local key out
    key=$(sha256sum "$KERNEL" | cut -c1-16)
    out="$OUT_DIR/vmlinux-$KVER-$key"
    exec 9>"$OUT_DIR/.kernel.lock"
    flock -w 300 9 || die "timed out waiting for $OUT_DIR/.kernel.lock"
    if [ ! -s "$out" ]; then
        OUT_TMP=$out.tmp
        trap 'rm -f "$OUT_TMP"' EXIT
        if ! decompress_payload "$OUT_TMP"; then
            echo "$KERNEL"
            return
        fi
        mv "$OUT_TMP" "$out"
        find "$OUT_DIR" -maxdepth 1 -name "vmlinux-$KVER-*" ! -path "$out" -delete
    fi
    echo "$out"
}

main
