#!/bin/bash
# Run a command as root in a throw-away cgroup-v2 VM and return its output and
# exit status. See README.md next to this script.
#
# Usage: run.sh [--timeout SECS] [--share DIR]... [--env NAME=VALUE]... [--init busybox|systemd]
#               [--output-dir DIR] [--mem MB] [--cpus N] -- CMD [ARG...]
#
# --init systemd boots the guest with the host's systemd as PID 1 and runs CMD
# once `systemctl is-system-running` says running or degraded.
#
# The workspace, the cargo target dir and the cwd are shared read-only on their
# own when they lie under a path the guest hides (/tmp, /run, ...).
#
# Exit status: CMD's own exit status; 124 when the VM ran past --timeout (it is
# killed); 125 when the VM could not run CMD (no qemu, no kernel, guest boot
# failure), with the reason on stderr.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORKSPACE=$(cd "$HERE/../../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$WORKSPACE/target}
QEMU=${GRUNTIME_VM_QEMU:-qemu-system-x86_64}

TIMEOUT=300
MEM_MB=3072
CPUS=2
INIT=busybox
OUTPUT_DIR=
SHARES=()
ENVS=()

EXIT_TIMEOUT=124
EXIT_HARNESS=125

# A guest CPU stuck in its kernel this long is locked up for good, not slowed down by a busy
# host: the kernel's watchdog first reports at 20 s and then every ~28 s while it lasts.
LOCKUP_SECS=60

# Paths where the guest mounts fresh tmpfs over the host's (see init): host files there are only
# visible through a share.
SHADOWED=(/tmp /var/tmp /run /dev/shm /var/lib/containers /var/lib/containerd)

# Print the usage lines from the header; exit with $1 (default 2, a usage error).
usage() {
    sed -n '5,6p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit "${1:-2}"
}

# A harness failure: say why, write it to the result file, exit 125.
fail() {
    echo "vm: $*" >&2
    [ -n "$JOB" ] && [ -d "$JOB" ] && echo "error $*" >"$JOB/result"
    exit $EXIT_HARNESS
}

parse_args() {
    while [ $# -gt 0 ]; do
        case $1 in
        --timeout) TIMEOUT=${2:?--timeout needs SECS}; shift 2 ;;
        --share) SHARES+=("${2:?--share needs DIR}"); shift 2 ;;
        --env) ENVS+=("${2:?--env needs NAME=VALUE}"); shift 2 ;;
        --output-dir) OUTPUT_DIR=${2:?--output-dir needs DIR}; shift 2 ;;
        --mem) MEM_MB=${2:?--mem needs MB}; shift 2 ;;
        --cpus) CPUS=${2:?--cpus needs N}; shift 2 ;;
        --init) INIT=${2:?--init needs busybox or systemd}; shift 2 ;;
        --) shift; break ;;
        -h | --help) usage 0 ;;
        *) echo "vm: unknown option $1" >&2; usage ;;
        esac
    done
    [ $# -gt 0 ] || { echo "vm: no command given" >&2; usage; }
    CMD=("$@")
    [[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || fail "--timeout $TIMEOUT: not a positive number of seconds"
    [[ $MEM_MB =~ ^[1-9][0-9]*$ ]] || fail "--mem $MEM_MB: not a positive number of MB"
    [[ $CPUS =~ ^[1-9][0-9]*$ ]] || fail "--cpus $CPUS: not a positive number"
    case $INIT in
    busybox) ;;
    systemd) [ -x /lib/systemd/systemd ] || fail "--init systemd: /lib/systemd/systemd missing (apt-get install systemd)" ;;
    *) fail "--init $INIT: not busybox or systemd" ;;
    esac
    local s e
    for s in "${SHARES[@]}"; do
        [[ $s == /* ]] || fail "--share $s: not an absolute path"
        [ -d "$s" ] || fail "--share $s: not a directory"
        [[ $s != *$'\n'* ]] || fail "--share: a path with a newline cannot be shared"
    done
    for e in "${ENVS[@]}"; do
        [[ $e =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || fail "--env $e: not NAME=VALUE"
    done
}

# The newest Debian kernel whose modules are installed: the host's own kernel
# may be a custom one without modules. GRUNTIME_VM_KERNEL picks another.
find_kernel() {
    if [ -n "${GRUNTIME_VM_KERNEL:-}" ]; then
        KERNEL=$GRUNTIME_VM_KERNEL
        [ -r "$KERNEL" ] || fail "GRUNTIME_VM_KERNEL=$KERNEL: no such readable kernel image"
        KVER=$(basename "$KERNEL")
        KVER=${KVER#vmlinuz-}
        [ -d "/lib/modules/$KVER" ] || fail "kernel $KERNEL: no /lib/modules/$KVER for its modules"
        return
    fi
    local k v
    KERNEL=
    for k in $(printf '%s\n' /boot/vmlinuz-* | sort -V -r); do
        v=${k#/boot/vmlinuz-}
        if [ -f "/lib/modules/$v/modules.dep" ]; then
            KERNEL=$k
            KVER=$v
            return
        fi
    done
    fail "no VM kernel: need /boot/vmlinuz-VER with /lib/modules/VER (apt-get install linux-image-amd64)"
}

find_qemu() {
    command -v "$QEMU" >/dev/null ||
        fail "$QEMU not found: apt-get install qemu-system-x86"
    command -v setpriv >/dev/null || fail "setpriv not found: apt-get install util-linux"
}

# The job directory is shared read-write with the guest (tag vmjob, at /run/vm):
# it carries the command in and the output and status out.
make_job_dir() {
    if [ -n "$OUTPUT_DIR" ]; then
        mkdir -p "$OUTPUT_DIR" || fail "--output-dir $OUTPUT_DIR: cannot create it"
        JOB=$(cd "$OUTPUT_DIR" && pwd)
        [ -z "$(ls -A "$JOB")" ] || { JOB=; fail "--output-dir $OUTPUT_DIR: not empty"; }
        KEEP_JOB=1
    else
        JOB=$(mktemp -d "${TMPDIR:-/tmp}/gruntime-vm.XXXXXX") || fail "cannot make a job directory"
        KEEP_JOB=0
    fi
}

# Whether path $1 lies below one of the guest's tmpfs mounts. The mount points themselves are
# not: the guest needs its own, real tmpfs there (an overlay upper layer cannot be on an overlay).
# Nor is the job share's /run/vm: a share there would hide it.
shadowed() {
    local d
    [[ $1 == /run/vm || $1 == /run/vm/* ]] && return 1
    for d in "${SHADOWED[@]}"; do
        [[ $1 == "$d"/* ]] && return 0
    done
    return 1
}

# Whether path $1 is $2 or lies under it.
within() { [[ $1 == "$2" || $1 == "$2"/* ]]; }

# The workspace (its scripts and built binaries), the target dir and the cwd must be where the
# guest expects them, wherever the checkout lives: those the guest's tmpfs would hide are shared
# read-only, under a tmpfs overlay in the guest, so the guest sees them as it sees the rest of
# the host's root (writable, and nothing it writes reaches the host). A path an explicit --share
# already covers is left to it; nested paths are shared once.
# Fills AUTO_SHARES; explicit shares stay read-write.
auto_shares() {
    AUTO_SHARES=()
    local p real s covered
    for p in "$WORKSPACE" "$TARGET_DIR" "$PWD"; do
        real=$(realpath -m -- "$p")
        shadowed "$real" || continue
        # A target dir cargo has not made yet has nothing to show.
        [ -d "$real" ] || continue
        [[ $real != *$'\n'* ]] || fail "$real: a path with a newline cannot be shared with the guest"
        covered=0
        for s in "${SHARES[@]}" "${AUTO_SHARES[@]}"; do
            within "$real" "$(realpath -m -- "$s")" && covered=1
        done
        [ $covered = 1 ] && continue
        # A parent shared after its child would hide the child's mount: keep only the parent.
        local -a kept=()
        for s in "${AUTO_SHARES[@]}"; do
            within "$s" "$real" || kept+=("$s")
        done
        AUTO_SHARES=("${kept[@]}" "$real")
    done
}

# The guest runs this with the host's PATH and cwd, as root.
write_job() {
    local e i
    {
        echo "export PATH=$(printf %q "$PATH")"
        echo "export HOME=/root"
        for e in "${ENVS[@]}"; do
            echo "export ${e%%=*}=$(printf %q "${e#*=}")"
        done
        printf 'cd %q 2>/dev/null || { echo %q >/run/vm/error; exit 1; }\n' \
            "$PWD" "the working directory $PWD is not visible in the guest (hidden by its tmpfs? pass it with --share)"
        printf '%q ' "${CMD[@]}"
        echo
    } >"$JOB/cmd"
    # "TAG MODE PATH" lines, mounted in this order: sorted by path, so a share inside another
    # is mounted after it (on top) rather than hidden by it.
    ALL_SHARES=()
    for i in "${!AUTO_SHARES[@]}"; do ALL_SHARES+=("ro ${AUTO_SHARES[$i]}"); done
    for i in "${!SHARES[@]}"; do ALL_SHARES+=("rw ${SHARES[$i]}"); done
    mapfile -t ALL_SHARES < <(for i in "${ALL_SHARES[@]}"; do echo "$i"; done | LC_ALL=C sort -t " " -k 2)
    : >"$JOB/shares"
    for i in "${!ALL_SHARES[@]}"; do
        echo "share$i ${ALL_SHARES[$i]}" >>"$JOB/shares"
    done
    cp "$HERE/guest-run.sh" "$JOB/guest-run.sh"
    if [ "$INIT" = systemd ]; then
        cp -r "$HERE/systemd" "$JOB/systemd"
    fi
}

# Kernel arguments for the guest's init. systemd: boot gruntime-vm.target (systemd/), a pure
# cgroup v2 hierarchy, and no mounts from the host's fstab (its disks are not the guest's).
init_args() {
    case $INIT in
    busybox) ;;
    systemd) echo "gruntime_vm.init=systemd systemd.unit=gruntime-vm.target systemd.unified_cgroup_hierarchy=1 fstab=0" ;;
    esac
}

# qemu's option syntax doubles commas inside values.
qemu_escape() { echo "${1//,/,,}"; }

start_qemu() {
    local initrd boot_kernel
    initrd=$("$HERE/build-initramfs.sh" "$KVER" "$TARGET_DIR/vm") || fail "building the initramfs failed"
    boot_kernel=$("$HERE/extract-kernel.sh" "$KERNEL" "$TARGET_DIR/vm") || fail "preparing the kernel $KERNEL failed"
    # shellcheck disable=SC2054 # the commas are inside qemu option values
    local -a args=(
        -nodefaults -no-user-config -display none -no-reboot
        -accel tcg,thread=multi -cpu max -smp "$CPUS" -m "$MEM_MB"
        -kernel "$boot_kernel" -initrd "$initrd"
        # loglevel=5 and softlockup_all_cpu_backtrace: a lockup's stacks reach console.log.
        -append "console=ttyS0 panic=-1 cgroup_no_v1=all quiet loglevel=5 softlockup_all_cpu_backtrace=1 $(init_args) ${GRUNTIME_VM_APPEND:-}"
        -chardev "file,id=console,path=$(qemu_escape "$JOB/console.log")" -serial chardev:console
        -fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap
        -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot
        -fsdev "local,id=vmjob,path=$(qemu_escape "$JOB"),security_model=none,multidevs=remap"
        -device virtio-9p-pci,fsdev=vmjob,mount_tag=vmjob
    )
    local i mode path ro
    for i in "${!ALL_SHARES[@]}"; do
        mode=${ALL_SHARES[$i]%% *}
        path=${ALL_SHARES[$i]#* }
        ro=
        [ "$mode" = ro ] && ro=,readonly=on
        args+=(-fsdev "local,id=share$i,path=$(qemu_escape "$path"),security_model=none,multidevs=remap$ro"
            -device "virtio-9p-pci,fsdev=share$i,mount_tag=share$i")
    done
    # --pdeathsig: qemu dies with this script even if it is SIGKILLed.
    setpriv --pdeathsig KILL -- "$QEMU" "${args[@]}" </dev/null >"$JOB/qemu.log" 2>&1 &
    QEMU_PID=$!
}

# shellcheck disable=SC2317 # run from the EXIT trap
cleanup() {
    if [ -n "${QEMU_PID:-}" ]; then
        kill -KILL "$QEMU_PID" 2>/dev/null || true
        wait "$QEMU_PID" 2>/dev/null || true
    fi
    if [ "${KEEP_JOB:-1}" = 0 ] && [ -n "${JOB:-}" ]; then
        rm -rf "$JOB"
    fi
}

# Copy what the guest appended to $JOB/$1 since the last call to fd $2. The
# guest writes through 9p with cache=none, so the host file grows as it runs.
# shellcheck disable=SC2034 # read through ${!var}
OUT_OFFSET_stdout=0 OUT_OFFSET_stderr=0
forward_new_output() {
    local name=$1 fd=$2 var=OUT_OFFSET_$1 size
    size=$(stat -c %s "$JOB/$name" 2>/dev/null) || return 0
    if [ "$size" -gt "${!var}" ]; then
        tail -c +$((${!var} + 1)) "$JOB/$name" | head -c $((size - ${!var})) >&"$fd"
        printf -v "$var" %s "$size"
    fi
}

# Without --output-dir the command's output is streamed to ours as it comes.
stream_output() {
    if [ "$KEEP_JOB" = 0 ]; then
        forward_new_output stdout 1
        forward_new_output stderr 2
    fi
}

# The first watchdog line of console.log saying a CPU has been stuck for LOCKUP_SECS or more.
# Under TCG a guest kernel now and then locks up for good (seen with podman + conmon, both CPUs
# spinning); waiting for the batch's timeout then only wastes its minutes.
lockup_line() {
    local line secs
    while IFS= read -r line; do
        secs=${line##*stuck for }
        secs=${secs%%s!*}
        if [[ $secs =~ ^[0-9]+$ ]] && [ "$secs" -ge $LOCKUP_SECS ]; then
            echo "$line"
            return 0
        fi
    done < <(grep -E 'soft lockup - CPU#[0-9]+ stuck for [0-9]+s' "$JOB/console.log" 2>/dev/null)
    return 1
}

kill_qemu() {
    kill -KILL "$QEMU_PID" 2>/dev/null || true
    wait "$QEMU_PID" 2>/dev/null || true
    QEMU_PID=
    stream_output
}

# Wait for qemu to exit, killing it at the deadline or when the guest kernel locks up.
# Returns 1 on timeout, 2 on a lockup (LOCKUP holds the watchdog's line).
wait_for_qemu() {
    # Microseconds: $SECONDS counts whole seconds and could cut the timeout short by up to one.
    local deadline=$((${EPOCHREALTIME/./} + TIMEOUT * 1000000)) polls=0
    while kill -0 "$QEMU_PID" 2>/dev/null; do
        if [ "${EPOCHREALTIME/./}" -ge $deadline ]; then
            kill_qemu
            return 1
        fi
        # Every 5 s: the watchdog writes at most once every few seconds.
        if [ $((++polls % 25)) = 0 ] && LOCKUP=$(lockup_line); then
            kill_qemu
            return 2
        fi
        stream_output
        sleep 0.2
    done
    QEMU_RC=0
    wait "$QEMU_PID" || QEMU_RC=$?
    QEMU_PID=
    stream_output
    return 0
}

console_tail() {
    echo "--- guest console, last lines ---"
    tail -n 25 "$JOB/console.log" 2>/dev/null || true
    if [ -s "$JOB/qemu.log" ]; then
        echo "--- qemu's own output ---"
        tail -n 10 "$JOB/qemu.log"
    fi
}

# The console from the first lockup report on (its stacks say where the CPUs spin).
lockup_report() {
    echo "--- guest console, from the first lockup report ---"
    sed -n '/soft lockup - CPU#/,$p' "$JOB/console.log" | head -n 120
}

# Turn the outcome recorded in the job dir into this script's exit status.
report() {
    if [ -s "$JOB/error" ]; then
        console_tail >&2
        fail "the guest could not run the command: $(cat "$JOB/error")"
    fi
    if [ ! -s "$JOB/status" ]; then
        console_tail >&2
        fail "qemu exited (status $QEMU_RC) before the guest reported the command's exit status"
    fi
    local status
    status=$(cat "$JOB/status")
    echo "exit $status" >"$JOB/result"
    exit "$status"
}

main() {
    JOB=
    parse_args "$@"
    find_qemu
    find_kernel
    make_job_dir
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM HUP
    auto_shares
    write_job
    start_qemu
    local waited=0
    wait_for_qemu || waited=$?
    case $waited in
    1)
        console_tail >&2
        echo "vm: timed out after ${TIMEOUT}s: qemu killed" >&2
        echo "timeout $TIMEOUT" >"$JOB/result"
        exit $EXIT_TIMEOUT
        ;;
    2)
        lockup_report >&2
        echo "vm: the guest kernel locked up, qemu killed: ${LOCKUP#*] }" >&2
        echo "lockup ${LOCKUP#*] }" >"$JOB/result"
        exit $EXIT_HARNESS
        ;;
    esac
    report
}

main "$@"
