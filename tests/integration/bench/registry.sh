# Sourced by the imgtool benchmarks (pull.sh, unpack.sh): a docker-registry serving plain HTTP
# on a free 127.0.0.1 port, its storage and config under a work dir.
#
#   registry_start DIR    # sets REG (127.0.0.1:PORT) and REGISTRY_PID, returns once it answers
#   registry_stop         # in the caller's cleanup trap

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
