# Shared by the drop-in guest scripts (containerd.sh, podman.sh, docker.sh) and checkpoint/podman.sh:
# sections, logging runtime wrappers, a private podman.
# Sourced in the VM guest. Needs GRUNTIME (the gruntime binary) in the environment.

# Every section ends with `rc=N`, the status of its key command, which the Rust tests parse.
section() { echo "== $1"; }
rc() { echo "rc=$1"; }

# Give up on a client command that hangs instead of hanging the whole batch.
T_OUT=90

# make_wrappers DIR: DIR/gruntime and DIR/runc log each call's argv and the names of its
# environment variables to DIR/<name>.log, then exec the real runtime, so a section can show what
# the client sent. The wrapper keeps the runtime's name because podman decides by name whether a
# runtime takes `--log-format=json` (containers.conf `runtime_supports_json`). Absolute paths
# only: podman calls `state` with no PATH.
make_wrappers() {
	local dir=$1 name real
	mkdir -p "$dir"
	for name in gruntime runc; do
		case $name in
		gruntime) real=$GRUNTIME ;;
		runc) real=/usr/sbin/runc ;;
		esac
		cat >"$dir/$name" <<WRAP
#!/bin/sh
{
	printf 'ARGV'
	for a in "\$@"; do printf ' %s' "\$a"; done
	printf '\nENV'
	/usr/bin/env | /usr/bin/cut -d= -f1 | /usr/bin/sort | /usr/bin/tr '\n' ' '
	printf '\n'
} >>"$dir/$name.log"
exec "$real" "\$@"
WRAP
		chmod +x "$dir/$name"
	done
}

# podman_env DIR DRIVER: a private podman under DIR (its own root, runroot, tmpdir and
# containers.conf) with the cgroup manager DRIVER, the logging wrappers in $WRAP (DIR/bin), and
# `podman` as a function that runs it. The containers.conf lines of docs/dropin.md: gruntime by name,
# and in runtime_supports_json so podman passes it `--log-format=json --log FILE` and reports its errors.
podman_env() {
	T=$1
	WRAP=$T/bin
	make_wrappers "$WRAP"
	cat >"$T/containers.conf" <<CONF
[engine]
cgroup_manager = "$2"
events_logger = "file"
runtime_supports_json = ["crun", "runc", "kata", "runsc", "youki", "krun", "gruntime"]

[engine.runtimes]
gruntime = ["$GRUNTIME"]
CONF
	export CONTAINERS_CONF=$T/containers.conf
	podman() {
		timeout $T_OUT /usr/bin/podman --root "$T/root" --runroot "$T/runroot" --tmpdir "$T/libpod" \
			--storage-driver overlay "$@"
	}
}

# real_runtime NAME: the runtime binary itself, for the scenarios that name it directly.
real_runtime() {
	case $1 in
	gruntime) echo "$GRUNTIME" ;;
	runc) echo /usr/sbin/runc ;;
	esac
}

# wait_for SECS CMD...: retry CMD every 0.2 s until it succeeds or SECS pass.
wait_for() {
	local n=$(($1 * 5))
	shift
	while [ $n -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
		n=$((n - 1))
	done
	return 1
}

# DROPIN_TRACE=1: trace every command with a timestamp on stderr (where a slow batch spends its time).
if [ "${DROPIN_TRACE:-}" = 1 ]; then
	PS4='+ $(date +%T.%N | cut -c1-12) '
	set -x
fi
