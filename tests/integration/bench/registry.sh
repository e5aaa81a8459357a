# Sourced by the imgtool benchmarks (pull.sh, push.sh, unpack.sh): a docker-registry serving plain
# HTTP on a free 127.0.0.1 port, its storage and config under a work dir.
#
#   registry_start DIR    # sets REG (127.0.0.1:PORT) and REGISTRY_PID, returns once it answers
#   registry_stop         # in the caller's cleanup trap
#   registry_bench NAME   # pull.sh's and push.sh's set-up: IMGTOOL, the tools checked, W a tmpfs

REGISTRY_PID=

registry_start() {
    local dir=$1 port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    REG=127.0.0.1:$port
    printf 'version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n' \
        "$dir/registry" "$REG" >"$dir/registry.yml"
    docker-registry serve "$dir/registry.yml" >/dev/null 2>"$dir/registry.log" &
    REGISTRY_PID=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "docker-registry did not answer on $REG: $(cat "$dir/registry.log")" >&2
    return 1
}

registry_stop() {
    if [ -n "$REGISTRY_PID" ]; then
        kill "$REGISTRY_PID" 2>/dev/null || true
        wait "$REGISTRY_PID" 2>/dev/null || true
    fi
}

# registry_bench NAME: IMGTOOL (IMGTOOL_BIN, or the release build, built when missing), skopeo,
# docker-registry and python3 checked, and W a private 3 GB tmpfs that an EXIT trap unmounts and
# removes, the registry stopped first.
registry_bench() {
    local name=$1 t root
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
    IMGTOOL=${IMGTOOL_BIN:-$root/target/release/imgtool}
    if [ ! -x "$IMGTOOL" ]; then
        (cd "$root" && cargo build --release -p imgtool >&2)
    fi
    for t in skopeo docker-registry python3; do
        command -v "$t" >/dev/null || { echo "$name.sh: $t is needed" >&2; exit 1; }
    done
    W=$(mktemp -d "/tmp/imgtool-$name-bench.XXXXXX")
    trap registry_bench_cleanup EXIT
    mount -t tmpfs -o size=3g tmpfs "$W"
}

registry_bench_cleanup() {
    registry_stop
    umount -l "$W" 2>/dev/null || true
    rm -rf "$W"
}
