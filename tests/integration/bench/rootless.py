#!/usr/bin/env python3
"""make bench: `run /bin/true` rootless, gruntime vs crun vs runc as the same unprivileged user (made for the
run and removed after), on one `gruntime spec --rootless` busybox bundle. crun and runc run without cgroups
(crun --cgroup-manager=disabled; runc skips cgroups it may not write as a rootless user)."""
import json, os, shutil, statistics, subprocess, sys, tempfile

N = int(os.environ.get("BENCH_N", "100"))
HERE = os.path.dirname(os.path.abspath(__file__))
GRUNTIME = os.environ.get("GRUNTIME_BIN", os.path.join(HERE, "../../../target/release/gruntime"))
# Per run: users are host-wide, and another checkout may be benchmarking at the same time.
USER = f"grt-bench-{os.getpid()}"


def sh(*a, **kw):
    return subprocess.run(list(a), check=True, **kw)


def inner(spec):
    rows = []
    for name, argv in spec["cases"]:
        times, rss = [], 0
        for i in range(N):
            p = subprocess.run(spec["user"] + [spec["launcher"]] + argv + [f"b{i}"], capture_output=True, text=True)
            if p.returncode != 0:
                sys.exit(f"{name}: failed ({p.returncode}): {p.stderr.strip()}")
            ms, kb = p.stdout.split()
            times.append(float(ms))
            rss = max(rss, int(kb))
        times.sort()
        rows.append((name, statistics.median(times), times[int(len(times) * 0.9)], rss))
    print(json.dumps(rows))


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--inner":
        return inner(json.loads(sys.argv[2]))
    subprocess.run(["userdel", "-r", USER], capture_output=True)
    sh("useradd", "-m", USER)
    uid = int(subprocess.check_output(["id", "-u", USER]))
    d = tempfile.mkdtemp(prefix="bench-rootless-")
    try:
        os.chmod(d, 0o755)
        launcher = os.path.join(d, "spawn-rss")
        sh("gcc", "-O2", "-o", launcher, os.path.join(HERE, "spawn-rss.c"))
        shutil.copy(GRUNTIME, os.path.join(d, "gruntime"))
        rootfs = os.path.join(d, "bundle/rootfs")
        for sub in ["bin", "proc", "sys", "dev", "tmp", "etc"]:
            os.makedirs(os.path.join(rootfs, sub))
        shutil.copy("/bin/busybox", os.path.join(rootfs, "bin/busybox"))
        os.symlink("busybox", os.path.join(rootfs, "bin/true"))
        os.makedirs(os.path.join(d, "xdg"))
        sh("chown", "-R", f"{USER}:{USER}", d)
        user = ["setpriv", "--reuid", str(uid), "--regid", str(uid), "--init-groups", "--reset-env", "env", f"XDG_RUNTIME_DIR={d}/xdg", "PATH=/usr/bin:/bin"]
        b = os.path.join(d, "bundle")
        sh(*user, os.path.join(d, "gruntime"), "spec", "--rootless", "--bundle", b)
        cfg = json.load(open(os.path.join(b, "config.json")))
        cfg["process"]["terminal"] = False
        cfg["process"]["args"] = ["/bin/true"]
        json.dump(cfg, open(os.path.join(b, "config.json"), "w"))
        cases = [
            ("gruntime", [os.path.join(d, "gruntime"), "--root", d + "/xdg/g", "run", "-b", b]),
            ("crun --cgroup-manager=disabled", ["crun", "--root", d + "/xdg/c", "--cgroup-manager=disabled", "run", "-b", b]),
            ("runc --rootless", ["runc", "--root", d + "/xdg/r", "--rootless", "true", "run", "-b", b]),
        ]
        env = dict(os.environ, PRIVATE_CGNS_NO_V2="1")
        # crun 1.8 refuses this hybrid host: measure inside a private mount namespace without the cgroup2 mount.
        out = subprocess.run([os.path.join(HERE, "private-cgroupns.sh"), sys.executable, __file__, "--inner",
                              json.dumps({"user": user, "launcher": launcher, "cases": cases})],
                             env=env, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(out.stderr)
        rows = json.loads(out.stdout.strip().splitlines()[-1])
        base = next((r for r in rows if r[0].startswith("crun")), rows[0])
        print(f"\nrootless: run /bin/true as an unprivileged user, N={N}")
        print(f"{'runtime':<32} {'median ms':>10} {'p90 ms':>8} {'peak RSS MB':>12} {'time/crun':>10}")
        for name, med, p90, rss in rows:
            print(f"{name:<32} {med:>10.2f} {p90:>8.2f} {rss/1024:>12.2f} {med/base[1]:>10.2f}")
    finally:
        shutil.rmtree(d, ignore_errors=True)
        subprocess.run(["userdel", "-r", USER], capture_output=True)


if __name__ == "__main__":
    main()
