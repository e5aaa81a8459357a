# podman 4.3 + conmon 2.1 driving gruntime and runc, in the VM guest (root, no network).
# Env: GRUNTIME (binary), DROPIN_WORK (host dir shared with the guest, holding busybox-rootfs.tar),
# DROPIN_CGROUP_DRIVER (podman's cgroup_manager: cgroupfs in the busybox guest; systemd, podman's
# default on a systemd host, in the systemd guest), DROPIN_RUNTIMES (default "gruntime runc").
# Prints one `== <client>/<runtime>/<scenario>` section per scenario, <client> being podman
# (cgroupfs) or podman-systemd; see tests/integration/tests/dropin.rs for what each must show.
set -u
. "$(dirname "$0")/common.sh"

DRIVER=${DROPIN_CGROUP_DRIVER:-cgroupfs}
case $DRIVER in
cgroupfs) C=podman ;;
systemd) C=podman-systemd ;;
*) echo "DROPIN_CGROUP_DRIVER=$DRIVER: not cgroupfs or systemd" >&2; exit 2 ;;
esac

podman_env "$(mktemp -d /tmp/dropin-podman.XXXXXX)" "$DRIVER"
IMG=localhost/busybox:latest
section "$C/import"
podman import "$DROPIN_WORK/busybox-rootfs.tar" "$IMG" 2>&1
rc $?

# cgroup_dir CONTAINER: the container's cgroup directory, from its init's /proc/PID/cgroup.
cgroup_dir() {
	local pid
	pid=$(podman --runtime "$rt" inspect -f '{{.State.Pid}}' "$1") || return 1
	echo "/sys/fs/cgroup$(cut -d: -f3 "/proc/$pid/cgroup")"
}

# scope_state ID: the systemd cgroup manager's scope for a container, libpod-<full id>.scope
# (`systemctl is-active` prints inactive for a unit that is gone).
scope_state() {
	echo "scope=libpod-$1.scope"
	echo "scope-active=$(systemctl is-active "libpod-$1.scope" 2>&1)"
}

for name in ${DROPIN_RUNTIMES:-gruntime runc}; do
	rt=$WRAP/$name
	p() { podman --runtime "$rt" "$@"; }
	d=d-$name
	l=l-$name

	section "$C/$name/echo"
	podman --runtime "$(real_runtime "$name")" run --rm --network none "$IMG" echo hi 2>&1
	rc $?

	section "$C/$name/run-detached"
	p run -d --name "$d" --network none "$IMG" sleep 1000 >/dev/null 2>"$T/err"
	r=$?
	cat "$T/err"
	echo "status=$(p inspect -f '{{.State.Status}}' "$d" 2>&1)"
	rc $r

	section "$C/$name/exec"
	p exec "$d" sh -c 'echo from-exec; echo pid1=$(cat /proc/1/comm)' 2>&1
	rc $?

	section "$C/$name/stop"
	p stop -t 1 "$d" >/dev/null 2>"$T/err"
	r=$?
	cat "$T/err"
	echo "status=$(p inspect -f '{{.State.Status}}' "$d" 2>&1)"
	rc $r

	section "$C/$name/rm"
	p rm "$d" >/dev/null 2>"$T/err"
	r=$?
	cat "$T/err"
	echo "containers-left=$(p ps -a --format '{{.Names}}' | grep -c -- "-$name\$")"
	rc $r

	section "$C/$name/limits"
	p run -d --name "$l" --network none --memory 64m --pids-limit 50 "$IMG" sleep 1000 >/dev/null 2>"$T/err"
	r=$?
	cat "$T/err"
	p exec "$l" sh -c 'echo inside-memory.max=$(cat /sys/fs/cgroup/memory.max); echo inside-pids.max=$(cat /sys/fs/cgroup/pids.max)' 2>&1
	cg=$(cgroup_dir "$l")
	echo "cgroup-dir=$cg"
	echo "cgroup-memory.max=$(cat "$cg/memory.max" 2>&1)"
	echo "cgroup-pids.max=$(cat "$cg/pids.max" 2>&1)"
	id=$(p inspect -f '{{.Id}}' "$l" 2>&1)
	if [ "$DRIVER" = systemd ]; then
		scope_state "$id"
		systemctl show -p MemoryMax -p TasksMax -p Delegate "libpod-$id.scope" 2>&1
	fi
	rc $r

	section "$C/$name/pause"
	p pause "$l" >/dev/null 2>"$T/err"
	r=$?
	cat "$T/err"
	echo "status=$(p inspect -f '{{.State.Status}}' "$l" 2>&1)"
	echo "cgroup-frozen=$(grep frozen "$cg/cgroup.events" 2>&1)"
	rc $r

	section "$C/$name/unpause"
	p unpause "$l" >/dev/null 2>"$T/err"
	r=$?
	cat "$T/err"
	echo "status=$(p inspect -f '{{.State.Status}}' "$l" 2>&1)"
	echo "cgroup-frozen=$(grep frozen "$cg/cgroup.events" 2>&1)"
	p exec "$l" echo alive-after-unpause 2>&1
	rc $r

	section "$C/$name/limits-removed"
	p rm -f -t 0 "$l" >/dev/null 2>"$T/err"
	r=$?
	cat "$T/err"
	echo "cgroup-left=$([ -d "$cg" ] && echo yes || echo no)"
	[ "$DRIVER" = systemd ] && scope_state "$id"
	rc $r

	section "$C/$name/tty"
	script -qec "timeout --foreground $T_OUT /usr/bin/podman --root $T/root --runroot $T/runroot --tmpdir $T/libpod --storage-driver overlay --runtime $rt run --rm -t --network none $IMG sh -c 'tty; [ -t 0 ] && echo stdin-is-a-tty'" /dev/null 2>&1 | tr -d '\r'
	rc ${PIPESTATUS[0]}

	section "$C/$name/error"
	p run --rm --network none "$IMG" /nonexistent 2>&1
	rc $?

	section "$C/$name/leftovers"
	echo "containers-left=$(p ps -a --format '{{.Names}}' | grep -c -- "-$name\$")"
	if [ "$DRIVER" = systemd ]; then
		echo "scopes-left=$(systemctl list-units --all --no-legend --plain 'libpod-*.scope' | wc -l)"
		echo "failed-units=$(systemctl list-units --failed --no-legend --plain | wc -l)"
	fi
	rc 0

	section "$C/$name/calls"
	cat "$WRAP/$name.log"
	rc 0
done
