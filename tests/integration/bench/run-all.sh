#!/usr/bin/env bash
# make bench: every benchmark, side by side with the peers, one after the other.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
status=0
run() { echo; echo "=== $*"; "$@" || { echo "!!! $1 failed"; status=1; }; }
run python3 "$here/lifecycle.py"
run python3 "$here/rootless.py"
for b in seccomp.sh pull.sh push.sh unpack.sh lifecycle_vm.sh systemd_vm.sh dropin_vm.sh checkpoint_vm.sh; do
	[ -x "$here/$b" ] || [ -f "$here/$b" ] && run bash "$here/$b"
done
exit $status
