#!/usr/bin/env bash
# Run a command in a private mount + cgroup namespace whose cgroup v1/v2 mounts are re-mounted, so their root
# is the caller's own cgroup (PRIVATE_CGNS_NO_V2=1: the cgroup2 mount is removed instead): runc/crun (which put cgroups at the hierarchy root) then only create children of
# our cgroups and never touch the host supervisor's. Usage: private-cgroupns.sh CMD...
set -euo pipefail
if [ "${GRUNTIME_IN_PRIVATE_CGNS:-}" != 1 ]; then
	exec env GRUNTIME_IN_PRIVATE_CGNS=1 unshare --mount --cgroup --propagation private "$0" "$@"
fi
# mountinfo: "... mountpoint opts [optional...] - fstype source superopts"
awk '{ split($0, h, " - "); split(h[1], l, " "); split(h[2], r, " "); if (r[1] ~ /^cgroup2?$/) print l[5], r[1], r[3] }' /proc/self/mountinfo |
	while read -r mnt fstype opts; do
		if [ "$fstype" = cgroup2 ] && [ "${PRIVATE_CGNS_NO_V2:-}" = 1 ]; then
			# crun 1.8 refuses a hybrid layout whose v2 side has controllers: show it a pure v1 host.
			umount "$mnt"
		elif [ "$fstype" = cgroup2 ]; then
			umount "$mnt" && mount -t cgroup2 cgroup2 "$mnt"
		else
			ctrl=$(echo "$opts" | tr , '\n' | grep -vE '^(rw|ro|nosuid|nodev|noexec|relatime)$' | paste -sd, -)
			umount "$mnt" && mount -t cgroup -o "$ctrl" cgroup "$mnt"
		fi
	done
exec "$@"
