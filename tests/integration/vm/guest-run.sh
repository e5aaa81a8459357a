# PID 1 of the test VM after switch_root (run by the host's /bin/bash, from the
# job share at /run/vm): run the job's command, record its outcome in the job
# share, power off.
#
# The job share (written by run.sh on the host):
#   cmd     the bash script to run (sets PATH, env, cwd, then runs the command)
#   stdout  stderr   the command's output, written here as it runs
#   status  the command's exit status, written when it ends
#   error   why the guest could not run the command (instead of status)

JOB=/run/vm

run_command() {
    bash "$JOB/cmd" </dev/null >"$JOB/stdout" 2>"$JOB/stderr"
    echo "$?" >"$JOB/status.tmp" && mv "$JOB/status.tmp" "$JOB/status"
}

# Daemons the command left behind (containerd, conmon, ...) die with the VM.
power_off() {
    sync
    # sysrq 'o' powers off at once, without needing any userspace tool.
    echo o >/proc/sysrq-trigger
    sleep 30
    # Never reached unless sysrq failed: PID 1 exiting panics the kernel and
    # qemu (-no-reboot, panic=-1) exits.
    exit 1
}

run_command
power_off
