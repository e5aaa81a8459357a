# Docker Engine 20.10 (Debian's docker.io: dockerd + its containerd + containerd-shim-runc-v2)
# driving gruntime and, as the control, docker's own runc, in the VM guest. No network bridge.
# Env: GRUNTIME (binary), DROPIN_WORK (host dir shared with the guest, holding busybox-docker.tar),
# DROPIN_CGROUP_DRIVER (cgroupfs, the busybox guest; systemd, the systemd guest), DROPIN_RUNTIMES
# (default "gruntime runc"). Prints one `== <client>/<runtime>/<scenario>` section per scenario,
# <client> being docker (cgroupfs) or docker-systemd; see tests/integration/tests/docker.rs.
set -u
. "$(dirname "$0")/common.sh"

DRIVER=${DROPIN_CGROUP_DRIVER:-cgroupfs}
case $DRIVER in
cgroupfs) C=docker ;;
systemd) C=docker-systemd ;;
*) echo "DROPIN_CGROUP_DRIVER=$DRIVER: not cgroupfs or systemd" >&2; exit 2 ;;
esac

T=$(mktemp -d /tmp/dropin-docker.XXXXXX)
WRAP=$T/bin
make_wrappers "$WRAP"
# Docker's own defaults wherever they work in the VM (exec-root /var/run/docker, the socket, the
# config in /etc/docker: all on guest tmpfs or overlay, gone with the VM), and the daemon.json
# of docs/dropin.md. The data root gets a real tmpfs (overlay2's upper layers cannot sit on the
# guest's overlay root); no bridge or iptables: the VM has no network and every container runs
# with --network none.
mkdir -p /var/lib/docker /etc/docker
mount -t tmpfs -o mode=0711 tmpfs /var/lib/docker
cat >/etc/docker/daemon.json <<CONF
{
  "runtimes": { "gruntime": { "path": "$WRAP/gruntime" } },
  "exec-opts": ["native.cgroupdriver=$DRIVER"],
  "bridge": "none",
  "iptables": false,
  "ip-forward": false,
  "ip-masq": false
}
CONF
dockerd >"$T/dockerd.log" 2>&1 &
DOCKERD_PID=$!
trap 'kill $DOCKERD_PID 2>/dev/null; wait $DOCKERD_PID 2>/dev/null' EXIT

# Debian's client by path: a newer `docker` may come first in PATH.
export DOCKER_CONFIG=$T/cli
docker() { timeout $T_OUT /usr/bin/docker "$@"; }
if ! wait_for 90 docker version; then
	echo "dockerd did not start:"
	cat "$T/dockerd.log"
	exit 1
fi
section "$C/info"
docker info --format 'cgroup-driver={{.CgroupDriver}}
cgroup-version={{.CgroupVersion}}
runtimes={{range $k, $v := .Runtimes}}{{$k}} {{end}}
security={{.SecurityOptions}}' 2>&1
rc $?

IMG=localhost/busybox:latest
section "$C/load"
docker load -i "$DROPIN_WORK/busybox-docker.tar" 2>&1
rc $?

# cgroup_dir CONTAINER: the container's cgroup directory, from its init's /proc/PID/cgroup.
cgroup_dir() {
	local pid
	pid=$(docker inspect -f '{{.State.Pid}}' "$1") || return 1
	echo "/sys/fs/cgroup$(cut -d: -f3 "/proc/$pid/cgroup")"
}

# scope_state ID: the systemd driver's scope for a container, docker-<full id>.scope
# (`systemctl is-active` prints inactive for a unit that is gone).
scope_state() {
	echo "scope=docker-$1.scope"
	echo "scope-active=$(systemctl is-active "docker-$1.scope" 2>&1)"
}

for name in ${DROPIN_RUNTIMES:-gruntime runc}; do
	d() { docker "$@"; }
	run() { docker run --runtime "$name" --network none "$@"; }
	dd=d-$name
	l=l-$name

	section "$C/$name/echo"
	run --rm "$IMG" echo hi 2>&1
	rc $?

	section "$C/$name/run-detached"
	run -d --name "$dd" "$IMG" sh -c 'echo hello-from-log; exec sleep 1000' >/dev/null 2>"$T/err"
	r=$?
	cat "$T/err"
	echo "status=$(d inspect -f '{{.State.Status}}' "$dd" 2>&1)"
	echo "runtime=$(d inspect -f '{{.HostConfig.Runtime}}' "$dd" 2>&1)"
	rc $r

	section "$C/$name/exec"
	d exec "$dd" sh -c 'echo from-exec; echo pid1=$(cat /proc/1/comm)' 2>&1
	rc $?

	section "$C/$name/logs"
	# The log line may reach the log file a moment after the container started.
	wait_for 10 sh -c "/usr/bin/docker logs $dd 2>&1 | grep -q hello-from-log"
	d logs "$dd" 2>&1
	rc $?

	section "$C/$name/top"
	d top "$dd" 2>&1
	rc $?

	section "$C/$name/stop"
	# sleep is pid 1 and ignores SIGTERM without a handler: docker ends it with SIGKILL after 1 s.
	d stop -t 1 "$dd" >/dev/null 2>"$T/err"
	r=$?
	cat "$T/err"
	echo "status=$(d inspect -f '{{.State.Status}}' "$dd" 2>&1)"
	echo "exit-code=$(d inspect -f '{{.State.ExitCode}}' "$dd" 2>&1)"
	rc $r

	section "$C/$name/rm"
	d rm "$dd" >/dev/null 2>"$T/err"
	r=$?
	cat "$T/err"
	echo "containers-left=$(d ps -a --format '{{.Names}}' | grep -c -- "-$name\$")"
	rc $r

	section "$C/$name/limits"
	run -d --name "$l" --memory 64m --cpus 0.5 --pids-limit 50 "$IMG" sleep 1000 >/dev/null 2>"$T/err"
	r=$?
	cat "$T/err"
	id=$(d inspect -f '{{.Id}}' "$l" 2>/dev/null)
	d exec "$l" sh -c 'echo inside-memory.max=$(cat /sys/fs/cgroup/memory.max)
echo inside-cpu.max=$(cat /sys/fs/cgroup/cpu.max)
echo inside-pids.max=$(cat /sys/fs/cgroup/pids.max)' 2>&1
	cg=$(cgroup_dir "$l")
	echo "cgroup-dir=$cg"
	echo "cgroup-memory.max=$(cat "$cg/memory.max" 2>&1)"
	echo "cgroup-cpu.max=$(cat "$cg/cpu.max" 2>&1)"
	echo "cgroup-pids.max=$(cat "$cg/pids.max" 2>&1)"
	if [ "$DRIVER" = systemd ]; then
		scope_state "$id"
		systemctl show -p MemoryMax -p TasksMax -p CPUQuotaPerSecUSec -p Delegate "docker-$id.scope" 2>&1
	fi
	rc $r

	section "$C/$name/stats"
	d stats --no-stream --format 'mem-usage={{.MemUsage}}' "$l" 2>&1
	rc $?

	section "$C/$name/pause"
	d pause "$l" >/dev/null 2>"$T/err"
	r=$?
	cat "$T/err"
	echo "status=$(d inspect -f '{{.State.Status}}' "$l" 2>&1)"
	echo "cgroup-frozen=$(grep frozen "$cg/cgroup.events" 2>&1)"
	rc $r

	section "$C/$name/unpause"
	d unpause "$l" >/dev/null 2>"$T/err"
	r=$?
	cat "$T/err"
	echo "status=$(d inspect -f '{{.State.Status}}' "$l" 2>&1)"
	echo "cgroup-frozen=$(grep frozen "$cg/cgroup.events" 2>&1)"
	d exec "$l" echo alive-after-unpause 2>&1
	rc $r

	section "$C/$name/limits-removed"
	d rm -f "$l" >/dev/null 2>"$T/err"
	r=$?
	cat "$T/err"
	echo "cgroup-left=$([ -d "$cg" ] && echo yes || echo no)"
	[ "$DRIVER" = systemd ] && scope_state "$id"
	rc $r

	section "$C/$name/restart"
	# Exits 3 every time: docker starts it again twice, then leaves it exited.
	rr=r-$name
	run -d --name "$rr" --restart on-failure:2 "$IMG" sh -c 'echo attempt; exit 3' >/dev/null 2>"$T/err"
	r=$?
	cat "$T/err"
	restarts_done() { [ "$(d inspect -f '{{.RestartCount}} {{.State.Status}}' "$rr" 2>&1)" = "2 exited" ]; }
	wait_for 60 restarts_done
	echo "restart-count=$(d inspect -f '{{.RestartCount}}' "$rr" 2>&1)"
	echo "status=$(d inspect -f '{{.State.Status}}' "$rr" 2>&1)"
	echo "exit-code=$(d inspect -f '{{.State.ExitCode}}' "$rr" 2>&1)"
	echo "attempts=$(d logs "$rr" 2>&1 | grep -c attempt)"
	d rm -f "$rr" >/dev/null 2>&1
	rc $r

	section "$C/$name/init"
	run --rm --init "$IMG" sh -c 'echo pid1=$(cat /proc/1/comm); echo self-pid-is-1=$([ $$ = 1 ] && echo yes || echo no)' 2>&1
	rc $?

	section "$C/$name/read-only"
	run --rm --read-only "$IMG" sh -c 'touch /x 2>&1; echo touch-rc=$?; touch /tmp/x 2>&1; echo tmp-touch-rc=$?' 2>&1
	rc $?

	section "$C/$name/cap-drop"
	run --rm --cap-drop ALL "$IMG" sh -c 'grep -E "^Cap(Eff|Bnd|Prm)" /proc/self/status | tr -d "\t" | sed "s/:/=/"' 2>&1
	rc $?

	section "$C/$name/no-new-privileges"
	run --rm --security-opt no-new-privileges "$IMG" sh -c 'grep NoNewPrivs /proc/self/status | tr -d "\t" | sed "s/:/=/"' 2>&1
	rc $?

	section "$C/$name/seccomp"
	# docker's default profile allows unshare(2) only with CAP_SYS_ADMIN; the kernel itself lets
	# root make a user namespace. So `unshare -U` fails under the profile and works without it.
	run --rm "$IMG" sh -c 'grep -E "^Seccomp:" /proc/self/status | tr -d "\t" | sed "s/:/=/"
unshare -U true 2>&1; echo unshare-rc=$?' 2>&1
	r=$?
	run --rm --security-opt seccomp=unconfined "$IMG" sh -c 'unshare -U true 2>&1; echo unconfined-unshare-rc=$?' 2>&1
	rc $r

	section "$C/$name/tty"
	script -qec "timeout --foreground $T_OUT /usr/bin/docker run --runtime $name --network none --rm -it $IMG sh -c 'tty; [ -t 0 ] && echo stdin-is-a-tty'" /dev/null 2>&1 | tr -d '\r'
	rc ${PIPESTATUS[0]}

	section "$C/$name/error"
	run --rm "$IMG" /nonexistent 2>&1
	rc $?

	section "$C/$name/leftovers"
	echo "containers-left=$(d ps -a --format '{{.Names}}' | grep -c -- "-$name\$")"
	if [ "$DRIVER" = systemd ]; then
		echo "scopes-left=$(systemctl list-units --all --no-legend --plain 'docker-*.scope' | wc -l)"
		echo "failed-units=$(systemctl list-units --failed --no-legend --plain | wc -l)"
	else
		echo "cgroups-left=$(find /sys/fs/cgroup/docker -mindepth 1 -maxdepth 1 -type d 2>/dev/null | wc -l)"
	fi
	rc 0
done

section "$C/gruntime/calls"
cat "$WRAP/gruntime.log" 2>&1
rc 0
