# containerd 1.6 (ctr + containerd-shim-runc-v2) driving gruntime and runc, in the VM guest.
# Env: GRUNTIME (binary), DROPIN_WORK (host dir shared with the guest, holding busybox-oci.tar),
# DROPIN_CGROUP_DRIVER (cgroupfs, the busybox guest; systemd, the systemd guest), DROPIN_RUNTIMES
# (default "gruntime runc"). Prints one `== <client>/<runtime>/<scenario>` section per scenario,
# <client> being ctr (cgroupfs) or ctr-systemd; see tests/integration/tests/dropin.rs for what
# each must show.
#
# Under the systemd driver every container gets what a Kubernetes node's CRI plugin gives it with
# `SystemdCgroup = true` in its runc handler's options: the shim's runc options
# {BinaryName, SystemdCgroup: true} (ctr --runc-binary --runc-systemd-cgroup), so the runtime is
# called with --systemd-cgroup, and a cgroupsPath of the kubelet's shape
# `<pod slice>:cri-containerd:<id>`, the scope cri-containerd-<id>.scope in a nested pod slice.
set -u
. "$(dirname "$0")/common.sh"

DRIVER=${DROPIN_CGROUP_DRIVER:-cgroupfs}
case $DRIVER in
cgroupfs) C=ctr ;;
systemd) C=ctr-systemd ;;
*) echo "DROPIN_CGROUP_DRIVER=$DRIVER: not cgroupfs or systemd" >&2; exit 2 ;;
esac
POD_SLICE=kubepods-besteffort-pod0dr0p1n.slice

# cgroup_opts ID: the ctr run options that place container ID's cgroup.
cgroup_opts() {
	[ "$DRIVER" = systemd ] && echo "--runc-systemd-cgroup --cgroup $POD_SLICE:cri-containerd:$1"
}

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
section "$C/import"
ctr images import --base-name localhost/busybox "$DROPIN_WORK/busybox-oci.tar" 2>&1
rc $?

task_status() { ctr task ls | awk -v id="$1" '$1 == id { print $3 }'; }
task_stopped() { [ "$(task_status "$1")" = STOPPED ]; }
task_pid() { ctr task ls | awk -v id="$1" '$1 == id { print $2 }'; }

# scope_state ID: the systemd driver's scope for container ID, and its limits as systemd has them
# (`systemctl is-active` prints inactive for a unit that is gone).
scope_state() {
	echo "scope=cri-containerd-$1.scope"
	echo "scope-active=$(systemctl is-active "cri-containerd-$1.scope" 2>&1)"
	echo "scope-slice=$(systemctl show -P Slice "cri-containerd-$1.scope" 2>&1)"
}

for name in ${DROPIN_RUNTIMES:-gruntime runc}; do
	rt=$(real_runtime "$name")
	w=$WRAP/$name
	c=d-$name

	section "$C/$name/echo"
	# shellcheck disable=SC2046 # cgroup_opts prints separate options
	ctr run --rm --runc-binary "$rt" $(cgroup_opts "e-$name") "$IMG" "e-$name" echo hi 2>&1
	rc $?

	section "$C/$name/memory-limit"
	# ctr's default spec has no cgroup namespace nor cgroup mount: mount the hierarchy and read
	# the container's own cgroup, as /proc/self/cgroup names it.
	# shellcheck disable=SC2046
	ctr run --rm --runc-binary "$w" $(cgroup_opts "m-$name") --memory-limit 67108864 \
		--mount type=cgroup,src=cgroup,dst=/sys/fs/cgroup,options=ro:nosuid:nodev:noexec "$IMG" "m-$name" \
		sh -c 'echo memory.max=$(cat /sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)/memory.max)' 2>&1
	rc $?

	section "$C/$name/run-detached"
	# shellcheck disable=SC2046
	ctr run -d --runc-binary "$w" $(cgroup_opts "$c") --memory-limit 67108864 "$IMG" "$c" sleep 1000 2>&1
	r=$?
	echo "status=$(task_status "$c")"
	cg=/sys/fs/cgroup$(cut -d: -f3 "/proc/$(task_pid "$c")/cgroup")
	echo "cgroup-dir=$cg"
	echo "cgroup-memory.max=$(cat "$cg/memory.max" 2>&1)"
	if [ "$DRIVER" = systemd ]; then
		scope_state "$c"
		systemctl show -p MemoryMax -p Delegate "cri-containerd-$c.scope" 2>&1
	fi
	rc $r

	section "$C/$name/task-exec"
	ctr task exec --exec-id x1 "$c" sh -c 'echo from-exec; echo pid1=$(cat /proc/1/comm)' 2>&1
	rc $?

	section "$C/$name/task-ps"
	ctr task ps "$c" 2>&1
	r=$?
	echo "task-pid=$(task_pid "$c")"
	rc $r

	section "$C/$name/pause"
	ctr task pause "$c" 2>&1
	r=$?
	echo "status=$(task_status "$c")"
	echo "cgroup-frozen=$(grep frozen "$cg/cgroup.events" 2>&1)"
	rc $r

	section "$C/$name/resume"
	ctr task resume "$c" 2>&1
	r=$?
	echo "status=$(task_status "$c")"
	echo "cgroup-frozen=$(grep frozen "$cg/cgroup.events" 2>&1)"
	rc $r

	section "$C/$name/kill"
	# sleep is the container's pid 1, which ignores SIGTERM without a handler: SIGKILL.
	ctr task kill --signal SIGKILL "$c" 2>&1
	r=$?
	wait_for 20 task_stopped "$c"
	echo "status=$(task_status "$c")"
	rc $r

	section "$C/$name/delete"
	ctr task delete "$c" 2>&1
	r=$?
	ctr container delete "$c" 2>&1
	echo "tasks-left=$(ctr task ls -q | grep -c -- "-$name\$")"
	echo "containers-left=$(ctr container ls -q | grep -c -- "-$name\$")"
	echo "cgroup-left=$([ -d "$cg" ] && echo yes || echo no)"
	[ "$DRIVER" = systemd ] && scope_state "$c"
	rc $r

	section "$C/$name/tty"
	script -qec "timeout --foreground $T_OUT /usr/bin/ctr --address $T/containerd.sock --namespace dropin run --rm -t --runc-binary $w $(cgroup_opts "t-$name") $IMG t-$name sh -c 'tty; [ -t 0 ] && echo stdin-is-a-tty'" /dev/null 2>&1 | tr -d '\r'
	rc ${PIPESTATUS[0]}

	section "$C/$name/error"
	# shellcheck disable=SC2046
	ctr run --rm --runc-binary "$w" $(cgroup_opts "x-$name") "$IMG" "x-$name" /nonexistent 2>&1
	rc $?
	ctr container delete "x-$name" >/dev/null 2>&1

	section "$C/$name/leftovers"
	if [ "$DRIVER" = systemd ]; then
		echo "scopes-left=$(systemctl list-units --all --no-legend --plain 'cri-containerd-*.scope' | wc -l)"
		echo "failed-units=$(systemctl list-units --failed --no-legend --plain | wc -l)"
	else
		echo "cgroups-left=$(find /sys/fs/cgroup/dropin -mindepth 1 -maxdepth 1 -type d -name "*-$name" 2>/dev/null | wc -l)"
	fi
	rc 0

	section "$C/$name/calls"
	cat "$WRAP/$name.log"
	rc 0
done
