#!/usr/bin/env python3
"""make bench: `RUNTIME run` of /bin/true N times (create+start+wait+delete), gruntime vs runc vs crun in one
run on the same busybox bundle. Prints median/p90 ms, peak RSS of the runtime process tree, and ratios to crun.

The host's cgroups are a v1/v2 hybrid owned by the machine: runc and crun run inside a private mount + cgroup
namespace (private-cgroupns.sh) so the cgroups they make are children of ours; crun is also measured with
--cgroup-manager=disabled. gruntime makes no cgroup on this host unless asked.
"""
import json, os, shutil, statistics, subprocess, sys, tempfile, time

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


def measure(name, argv_for):
    times, rss = [], 0
    for i in range(N):
        argv = argv_for(f"bench-{os.getpid()}-{i}")
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, ru = os.wait4(p.pid, 0)
        times.append((time.perf_counter() - t0) * 1000)
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            sys.exit(f"{name}: {' '.join(argv)} failed ({p.returncode}): {p.stderr.read().decode()}")
        rss = max(rss, ru.ru_maxrss)
    times.sort()
    return {"name": name, "median": statistics.median(times), "p90": times[int(len(times) * 0.9)], "rss_kb": rss}


def main():
    d = tempfile.mkdtemp(prefix="bench-bundle-")
    root = tempfile.mkdtemp(prefix="bench-root-")
    try:
        make_bundle(d)
        wrap = [os.path.join(HERE, "private-cgroupns.sh")]
        cases = [
            ("gruntime", lambda i: [GRUNTIME, "--root", root + "/g", "run", "-b", d, i]),
            ("crun (no cgroup)", lambda i: ["crun", "--root", root + "/c", "--cgroup-manager=disabled", "run", "-b", d, i]),
        ]
        if shutil.which("runc"):
            cases.append(("runc (private cgroupns)", lambda i: wrap + ["runc", "--root", root + "/r", "run", "-b", d, i]))
        cases.append(("crun (private cgroupns)", lambda i: wrap + ["crun", "--root", root + "/c2", "run", "-b", d, i]))
        # The wrapper's own cost, to read the wrapped rows fairly.
        cases.append(("(wrapper alone)", lambda i: wrap + ["true"]))
        results = [measure(n, f) for n, f in cases]
        base = next(r for r in results if r["name"] == "crun (no cgroup)")
        print(f"\nlifecycle: run /bin/true, N={N} (create+start+wait+delete), busybox bundle")
        print(f"{'runtime':<26} {'median ms':>10} {'p90 ms':>8} {'peak RSS MB':>12} {'time/crun':>10} {'RSS/crun':>9}")
        for r in results:
            print(f"{r['name']:<26} {r['median']:>10.2f} {r['p90']:>8.2f} {r['rss_kb']/1024:>12.2f} "
                  f"{r['median']/base['median']:>10.2f} {r['rss_kb']/base['rss_kb']:>9.2f}")
    finally:
        shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
