#!/usr/bin/env python3
"""make bench: `RUNTIME run` of /bin/true N times (create+start+wait+delete), gruntime vs runc vs crun in one
run on the same busybox bundle. Prints median/p90 ms, peak RSS of the runtime process tree, and ratios to crun.

The host's cgroups are a v1/v2 hybrid owned by the machine: the whole measurement runs inside ONE private mount
+ cgroup namespace (private-cgroupns.sh) whose cgroup mounts are rooted at our own cgroup, so the cgroups runc
and crun make are children of ours. crun 1.8 refuses hybrid hosts whose v2 side has controllers, so the cgroup2
mount is hidden there (crun then uses v1). Each run goes through spawn-rss (a tiny C launcher) for wall time
and peak RSS.
"""
import json, os, shutil, statistics, subprocess, sys, tempfile

N = int(os.environ.get("BENCH_N", "200"))
HERE = os.path.dirname(os.path.abspath(__file__))
GRUNTIME = os.environ.get("GRUNTIME_BIN", os.path.join(HERE, "../../../target/release/gruntime"))


def make_bundle(d):
    rootfs = os.path.join(d, "rootfs")
    for sub in ["bin", "proc", "sys", "dev", "tmp", "etc"]:
        os.makedirs(os.path.join(rootfs, sub), exist_ok=True)
    shutil.copy("/bin/busybox", os.path.join(rootfs, "bin/busybox"))
    os.symlink("busybox", os.path.join(rootfs, "bin/true"))
    subprocess.run([GRUNTIME, "spec", "--bundle", d], check=True)
    cfg = json.load(open(os.path.join(d, "config.json")))
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["/bin/true"]
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))


def measure(launcher, name, argv_for):
    times, rss = [], 0
    for i in range(N):
        argv = argv_for(f"bench-{os.getpid()}-{i}")
        p = subprocess.run([launcher] + argv, capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"{name}: {' '.join(argv)} failed ({p.returncode}): {p.stderr}")
        ms, kb = p.stdout.split()
        times.append(float(ms))
        rss = max(rss, int(kb))
    times.sort()
    return {"name": name, "median": statistics.median(times), "p90": times[int(len(times) * 0.9)], "rss_kb": rss}


def inner(d, root, launcher):
    cases = [
        ("gruntime", lambda i: [GRUNTIME, "--root", root + "/g", "run", "-b", d, i]),
        ("crun --cgroup-manager=disabled", lambda i: ["crun", "--root", root + "/c", "--cgroup-manager=disabled", "run", "-b", d, i]),
        ("crun (v1 cgroups)", lambda i: ["crun", "--root", root + "/c2", "run", "-b", d, i]),
    ]
    if shutil.which("runc"):
        cases.append(("runc (v1 cgroups)", lambda i: ["runc", "--root", root + "/r", "run", "-b", d, i]))
    cases.append(("unshare+chroot floor", lambda i: ["unshare", "-fmuipn", "--mount-proc=" + d + "/rootfs/proc", "chroot", d + "/rootfs", "/bin/true"]))
    print(json.dumps([measure(launcher, n, f) for n, f in cases]))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--inner":
        return inner(*sys.argv[2:5])
    d = tempfile.mkdtemp(prefix="bench-bundle-")
    root = tempfile.mkdtemp(prefix="bench-root-")
    try:
        launcher = os.path.join(root, "spawn-rss")
        subprocess.run(["gcc", "-O2", "-o", launcher, os.path.join(HERE, "spawn-rss.c")], check=True)
        make_bundle(d)
        env = dict(os.environ, PRIVATE_CGNS_NO_V2="1")
        out = subprocess.run([os.path.join(HERE, "private-cgroupns.sh"), sys.executable, __file__, "--inner", d, root, launcher],
                             env=env, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(out.stderr)
        results = json.loads(out.stdout.strip().splitlines()[-1])
        base = next(r for r in results if r["name"].startswith("crun --cgroup"))
        print(f"\nlifecycle: run /bin/true, N={N} (create+start+wait+delete), busybox bundle")
        print(f"{'runtime':<32} {'median ms':>10} {'p90 ms':>8} {'peak RSS MB':>12} {'time/crun':>10} {'RSS/crun':>9}")
        for r in results:
            print(f"{r['name']:<32} {r['median']:>10.2f} {r['p90']:>8.2f} {r['rss_kb']/1024:>12.2f} "
                  f"{r['median']/base['median']:>10.2f} {r['rss_kb']/base['rss_kb']:>9.2f}")
    finally:
        shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
