# containerd 1.6 (ctr + containerd-shim-runc-v2) driving gruntime and runc, in the VM guest.
# Env: GRUNTIME (binary), DROPIN_WORK (host dir shared with the guest, holding busybox-oci.tar),
# DROPIN_RUNTIMES (default "gruntime runc"). Prints one `== ctr/<runtime>/<scenario>` section per
# scenario; see tests/integration/tests/dropin.rs for what each must show.
set -u
. "$(dirname "$0")/common.sh"

T=$(mktemp -d /tmp/dropin-ctrd.XXXXXX)
WRAP=$T/bin
make_wrappers "$WRAP"
cat >"$T/config.toml" <<CONF
version = 2
root = "$T/root"
state = "$T/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$T/containerd.sock"
[ttrpc]
  address = "$T/containerd.sock.ttrpc"
CONF
containerd --config "$T/config.toml" >"$T/containerd.log" 2>&1 &
CONTAINERD_PID=$!
trap 'kill $CONTAINERD_PID 2>/dev/null; wait $CONTAINERD_PID 2>/dev/null' EXIT

ctr() { timeout $T_OUT /usr/bin/ctr --address "$T/containerd.sock" --namespace dropin "$@"; }
if ! wait_for 60 ctr version; then
	echo "containerd did not start:"
	cat "$T/containerd.log"
	exit 1
fi
IMG=localhost/busybox:latest
section ctr/import
ctr images import --base-name localhost/busybox "$DROPIN_WORK/busybox-oci.tar" 2>&1
rc $?

task_status() { ctr task ls | awk -v id="$1" '$1 == id { print $3 }'; }
task_stopped() { [ "$(task_status "$1")" = STOPPED ]; }

for name in ${DROPIN_RUNTIMES:-gruntime runc}; do
	rt=$(real_runtime "$name")
	w=$WRAP/$name
	c=d-$name

	section "ctr/$name/echo"
	ctr run --rm --runc-binary "$rt" "$IMG" "e-$name" echo hi 2>&1
	rc $?

	section "ctr/$name/memory-limit"
	# ctr's default spec has no cgroup namespace nor cgroup mount: mount the hierarchy and read
	# the container's own cgroup, as /proc/self/cgroup names it.
	ctr run --rm --runc-binary "$w" --memory-limit 67108864 \
		--mount type=cgroup,src=cgroup,dst=/sys/fs/cgroup,options=ro:nosuid:nodev:noexec "$IMG" "m-$name" \
		sh -c 'echo memory.max=$(cat /sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)/memory.max)' 2>&1
	rc $?

	section "ctr/$name/run-detached"
	ctr run -d --runc-binary "$w" --memory-limit 67108864 "$IMG" "$c" sleep 1000 2>&1
	r=$?
	echo "status=$(task_status "$c")"
	rc $r

	section "ctr/$name/task-exec"
	ctr task exec --exec-id x1 "$c" sh -c 'echo from-exec; echo pid1=$(cat /proc/1/comm)' 2>&1
	rc $?

	section "ctr/$name/task-ps"
	ctr task ps "$c" 2>&1
	r=$?
	echo "task-pid=$(ctr task ls | awk -v id="$c" '$1 == id { print $2 }')"
	rc $r

	section "ctr/$name/pause"
	ctr task pause "$c" 2>&1
	r=$?
	echo "status=$(task_status "$c")"
	echo "cgroup-frozen=$(grep frozen /sys/fs/cgroup/dropin/$c/cgroup.events 2>&1)"
	rc $r

	section "ctr/$name/resume"
	ctr task resume "$c" 2>&1
	r=$?
	echo "status=$(task_status "$c")"
	echo "cgroup-frozen=$(grep frozen /sys/fs/cgroup/dropin/$c/cgroup.events 2>&1)"
	rc $r

	section "ctr/$name/kill"
	# sleep is the container's pid 1, which ignores SIGTERM without a handler: SIGKILL.
	ctr task kill --signal SIGKILL "$c" 2>&1
	r=$?
	wait_for 20 task_stopped "$c"
	echo "status=$(task_status "$c")"
	rc $r

	section "ctr/$name/delete"
	ctr task delete "$c" 2>&1
	r=$?
	ctr container delete "$c" 2>&1
	echo "tasks-left=$(ctr task ls -q | grep -c -- "-$name\$")"
	echo "containers-left=$(ctr container ls -q | grep -c -- "-$name\$")"
	echo "cgroup-left=$([ -d /sys/fs/cgroup/dropin/$c ] && echo yes || echo no)"
	rc $r

	section "ctr/$name/tty"
	script -qec "timeout --foreground $T_OUT /usr/bin/ctr --address $T/containerd.sock --namespace dropin run --rm -t --runc-binary $w $IMG t-$name sh -c 'tty; [ -t 0 ] && echo stdin-is-a-tty'" /dev/null 2>&1 | tr -d '\r'
	rc ${PIPESTATUS[0]}

	section "ctr/$name/error"
	ctr run --rm --runc-binary "$w" "$IMG" "x-$name" /nonexistent 2>&1
	rc $?
	ctr container delete "x-$name" >/dev/null 2>&1

	section "ctr/$name/calls"
	cat "$WRAP/$name.log"
	rc 0
done
