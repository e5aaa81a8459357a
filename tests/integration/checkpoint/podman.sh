# podman 4.3 + conmon checkpointing and restoring through gruntime, and through runc as the control,
# in the VM guest (root, no network, cgroupfs driver). Env: GRUNTIME, CK_WORK (shared host dir with
# busybox-rootfs.tar). One `== podman/<runtime>/<scenario>` section each, ending with rc=N; see
# tests/integration/tests/checkpoint.rs.
set -u
. "$(dirname "$0")/../dropin/common.sh"

podman_env "$(mktemp -d /tmp/ck-podman.XXXXXX)" cgroupfs
IMG=localhost/busybox:latest
section "podman/import"
podman import "$CK_WORK/busybox-rootfs.tar" "$IMG" 2>&1
rc $?

# The counter prints consecutive numbers to its stdout (conmon's pipe, podman's log), from a random
# start: a container started anew instead of restored would not go on with the next number.
# It also appends them to /count in its root, which `--export` carries in the archive's rootfs diff.
COUNTER='i=$((RANDOM * 1000)); while true; do i=$((i+1)); echo $i; echo $i >> /count; sleep 0.1; done'
loglines() { podman logs "$1" 2>/dev/null | wc -l; }
more_logs() { test "$(loglines "$1")" -gt "$2"; }
sequence() {
	awk 'NR == 1 {s = $1} $1 != s + NR - 1 {bad = 1} END {if (bad || NR == 0) print "sequence broken"; else print "sequence unbroken"}'
}

for name in gruntime runc; do
	rt=$WRAP/$name
	p() { podman --runtime "$rt" "$@"; }
	c=ck-$name
	x=ex-$name

	section "podman/$name/checkpoint"
	p run -d --name "$c" --network none "$IMG" sh -c "$COUNTER" >/dev/null 2>&1
	echo "run=$?"
	wait_for 60 more_logs "$c" 5
	p container checkpoint "$c" >/dev/null 2>"$T/err"
	r=$?
	cat "$T/err"
	echo "status=$(p inspect -f '{{.State.Status}}' "$c" 2>&1)"
	n=$(loglines "$c")
	rc $r

	section "podman/$name/restore"
	p container restore "$c" >/dev/null 2>"$T/err"
	r=$?
	cat "$T/err"
	echo "status=$(p inspect -f '{{.State.Status}}' "$c" 2>&1)"
	wait_for 30 more_logs "$c" $((n + 5)) && echo "counting-again=yes"
	podman logs "$c" 2>/dev/null | sequence
	p exec "$c" echo exec-after-restore 2>&1
	rc $r

	section "podman/$name/export"
	p run -d --name "$x" --network none "$IMG" sh -c "$COUNTER" >/dev/null 2>&1
	wait_for 60 more_logs "$x" 5
	p container checkpoint --export="$T/$x.tar.gz" "$x" >/dev/null 2>"$T/err"
	r=$?
	cat "$T/err"
	n=$(podman logs "$x" 2>/dev/null | tail -n1)
	echo "exported=$([ -s "$T/$x.tar.gz" ] && echo yes || echo no)"
	p rm "$x" >/dev/null 2>&1
	echo "removed=$(p ps -a --format '{{.Names}}' | grep -cx "$x")"
	rc $r

	section "podman/$name/import"
	p container restore --import="$T/$x.tar.gz" >/dev/null 2>"$T/err"
	r=$?
	cat "$T/err"
	echo "status=$(p inspect -f '{{.State.Status}}' "$x" 2>&1)"
	# podman's log of an imported container starts empty: the counter's own file tells. Bounded in
	# seconds: each podman exec takes seconds under TCG.
	echo "exported-last=$n"
	sleep 3
	echo "count-tail=$(p exec "$x" tail -n1 /count 2>&1)"
	p exec "$x" grep -qx "$((n + 1))" /count 2>/dev/null && echo "next-value-after-export=yes"
	p exec "$x" cat /count 2>/dev/null | sequence
	rc $r

	section "podman/$name/cleanup"
	p rm -f -t 0 "$c" "$x" >/dev/null 2>&1
	r=$?
	echo "containers-left=$(p ps -a --format '{{.Names}}' | grep -c -- "-$name\$")"
	rc $r

	section "podman/$name/calls"
	grep -E 'ARGV.* (checkpoint|restore) ' "$WRAP/$name.log"
	rc 0
done
