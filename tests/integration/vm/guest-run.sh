# Runs the job's command in the guest, records its outcome in the job share, powers off.
# `guest-run.sh` (no argument): PID 1 of the busybox-init guest after switch_root, run by the
# host's /bin/bash from the job share at /run/vm. `guest-run.sh systemd`: the systemd guest's
# gruntime-vm-job.service (systemd/ next to this script), which first waits for the boot to finish.
#
# The job share (written by run.sh on the host):
#   cmd     the bash script to run (sets PATH, env, cwd, then runs the command)
#   stdout  stderr   the command's output, written here as it runs
#   status  the command's exit status, written when it ends
#   error   why the guest could not run the command (instead of status)

JOB=/run/vm
# Bound on systemd's boot: far more than it takes, far less than a batch's timeout.
BOOT_WAIT_SECS=120

run_command() {
    bash "$JOB/cmd" </dev/null >"$JOB/stdout" 2>"$JOB/stderr"
    echo "$?" >"$JOB/status.tmp" && mv "$JOB/status.tmp" "$JOB/status"
}

# Daemons the command left behind (containerd, conmon, ...) die with the VM.
power_off() {
    sync
    # sysrq 'o' powers off at once, without needing any userspace tool (or systemd's shutdown:
    # nothing in the guest is worth keeping).
    echo o >/proc/sysrq-trigger
    sleep 30
    # Never reached unless sysrq failed: PID 1 exiting panics the kernel and
    # qemu (-no-reboot, panic=-1) exits.
    exit 1
}

# The systemd guest: the command runs once the boot is over, as on a host that has finished
# booting. `degraded` (a unit failed) still runs it; the failed units go to the console.
wait_for_systemd() {
    local state
    state=$(timeout "$BOOT_WAIT_SECS" systemctl is-system-running --wait 2>&1)
    case $state in
    running) ;;
    degraded) systemctl --failed --no-pager --plain --no-legend ;;
    *)
        systemctl list-jobs --no-pager
        systemctl --failed --no-pager
        echo "systemd did not finish booting within ${BOOT_WAIT_SECS}s: is-system-running says '${state:-nothing}'" >"$JOB/error"
        power_off
        ;;
    esac
    # The unit's stdio is the journal's; the command's goes to the job share.
    unset JOURNAL_STREAM
}

[ "${1:-}" = systemd ] && wait_for_systemd
run_command
power_off
