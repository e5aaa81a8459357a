#!/usr/bin/env python3
"""compare.py OUT EXPECTED.tsv [--write-expected]

Reads the results of a conformance run in OUT:
  OUT/{host,vm}/<runtime>/results.tsv   program, exit status, ok points, not-ok points, seconds (rt-run.sh)
  OUT/{host,vm}/<runtime>/<program>.tap its output
  OUT/cri/<runtime>/results.tsv         PASS|FAIL|SKIP, seconds, spec (cri/cri-report.py)
A runtime-tools program is
  fail   when it printed a "not ok" point, or no point at all but a diagnostic with an "error"
         (the lifecycle programs - hooks, prestart, poststop... - report a failed check that way);
  error  when it exited non-zero otherwise (util.Fatal: create failed where the program did not
         expect it, a crash, the timeout);
  pass   otherwise (the *_fail programs print nothing and exit 0 when the runtime refused the config).
prints one table row per program/spec (gruntime beside runc), the totals, and every difference from
EXPECTED.tsv, and writes the same into OUT/report.txt. Exit 1 on any difference: a new failure, a
known failure that now passes (flip its line to pass), a result that is missing.

EXPECTED.tsv: tab-separated "place runtime test expect reason"; place host|vm|cri, runtime
gruntime|runc, expect pass|fail|error|skip|flaky ("flaky": seen both passing and not, for a reason
written down; either is accepted). A test without a line must pass. '#' starts a comment line. Only
places/runtimes present in OUT are checked. runc is the control: its differences are listed (they say
the environment or the suite changed) but fail the run only with CONFORMANCE_STRICT_CONTROL=1.
With CONFORMANCE_PARTIAL=1 (CRI_FOCUS, CONFORMANCE_PROGRAMS) what did not run is not checked.
--write-expected: rewrite EXPECTED.tsv from OUT's results, keeping the reasons already written for
lines whose expectation is unchanged (and "TODO" where a reason is missing).
"""
import os, re, sys
from collections import defaultdict

out, exp_path = sys.argv[1], sys.argv[2]
write = "--write-expected" in sys.argv[3:]
PLACES = ("host", "vm", "cri")
RUNTIMES = ("gruntime", "runc")

ERR_DIAG = re.compile(r'^\s+"error": "(?!")', re.M)

def classify(rc, ok, nok, text):
    if nok > 0:
        return "fail"
    if ok == 0 and ERR_DIAG.search(text):
        return "fail"
    if rc != 0:
        return "error"
    return "pass"

def why(text, rc):
    """One line: the first not-ok point, the runtime's error message, or the diagnostic."""
    parts = []
    m = re.search(r"^not ok \d+ - (.*)$", text, re.M)
    if m:
        parts.append(m.group(1)[:120])
    m = re.search(r'level=error msg="((?:[^"\\]|\\.)*)"', text)
    if m:
        parts.append(m.group(1).replace('\\"', '"')[:200])
    elif not parts:
        m = re.search(r'^\s+"error": "(.+?)(?:\\n|")', text, re.M)
        if m:
            parts.append(m.group(1)[:200])
    if rc not in (0,) and not parts:
        lines = [l for l in text.splitlines() if l.strip()]
        parts.append("exit %d: %s" % (rc, lines[-1][:200] if lines else "no output"))
    return " | ".join(parts)

WHY = {}
res = {}            # (place, rt) -> {test: (state, detail)}
for place in PLACES:
    for rt in RUNTIMES:
        p = os.path.join(out, place, rt, "results.tsv")
        if not os.path.exists(p):
            continue
        d = {}
        for line in open(p):
            f = line.rstrip("\n").split("\t")
            if place == "cri":
                if len(f) < 3:
                    continue
                d[f[2]] = ({"PASS": "pass", "FAIL": "fail", "SKIP": "skip"}.get(f[0], "error"), "%ss" % f[1])
            else:
                if len(f) < 5:
                    continue
                rc, ok, nok = int(f[1]), int(f[2]), int(f[3])
                tap = os.path.join(out, place, rt, f[0] + ".tap")
                text = open(tap, errors="replace").read() if os.path.exists(tap) else ""
                d[f[0]] = (classify(rc, ok, nok, text), "%d/%d" % (ok, nok))
                WHY[(place, rt, f[0])] = why(text, rc)
        res[(place, rt)] = d

# programs that should have run but left no line (VM died, rt-run aborted)
for place, lst in (("host", "programs-host.txt"), ("vm", "programs-vm.txt")):
    p = os.path.join(out, lst)
    if os.path.exists(p):
        want = [l.strip() for l in open(p) if l.strip()]
        for rt in RUNTIMES:
            if (place, rt) in res:
                for t in want:
                    res[(place, rt)].setdefault(t, ("error", "no result"))

exp = {}
comments = []
if os.path.exists(exp_path):
    for n, line in enumerate(open(exp_path), 1):
        if line.startswith("#") or not line.strip():
            comments.append(line) if not exp else None
            continue
        f = line.rstrip("\n").split("\t")
        if len(f) < 4 or f[0] not in PLACES or f[1] not in RUNTIMES or f[3] not in ("pass", "fail", "error", "skip", "flaky"):
            sys.exit("compare.py: %s:%d: bad line (want: place runtime test pass|fail|error|skip|flaky reason)" % (exp_path, n))
        exp[(f[0], f[1], f[2])] = (f[3], f[4] if len(f) > 4 else "")

partial = os.environ.get("CONFORMANCE_PARTIAL") == "1"
VERBOSE = os.environ.get("CONFORMANCE_QUIET") != "1"
lines, diffs, control = [], [], []
strict = os.environ.get("CONFORMANCE_STRICT_CONTROL") == "1"
def say(s=""):
    lines.append(s)

for place in PLACES:
    rts = [rt for rt in RUNTIMES if (place, rt) in res]
    if not rts:
        continue
    tests = sorted(set().union(*(res[(place, rt)].keys() for rt in rts)) |
                   {t for (pl, rt, t) in exp if pl == place and rt in rts})
    say("## %s  (%s)" % (place, "  vs  ".join(rts)))
    tot = {rt: defaultdict(int) for rt in rts}
    pts = {rt: [0, 0] for rt in rts}
    for t in tests:
        cells = []
        for rt in rts:
            st, det = res[(place, rt)].get(t, ("missing", ""))
            if partial and (st == "missing" or (place == "cri" and st == "skip")):
                cells.append("%-8s" % "-"); continue
            tot[rt][st] += 1
            if place != "cri" and "/" in det:
                a, b = det.split("/"); pts[rt][0] += int(a); pts[rt][1] += int(b)
            e, why = exp.get((place, rt, t), ("pass", ""))
            mark = ""
            if st != e and not (e == "flaky" and st != "missing"):
                mark = "!"
                kind = ("NEW FAILURE" if e in ("pass", "skip") and st not in ("pass", "skip")
                        else "NOW PASSES (flip expected.tsv to pass)" if st == "pass"
                        else "CHANGED")
                msg = "%s %s %s: expected %s, got %s%s  [%s]" % (place, rt, t, e, st, " (%s)" % det if det else "", kind)
                (control if rt == "runc" and not strict else diffs).append(msg)
            cells.append("%-8s" % (mark + st + (" " + det if place != "cri" and det else "")))
        say("  ".join("%-14s" % c for c in cells) + "  " + t)
        for rt in rts:
            st = res[(place, rt)].get(t, ("missing", ""))[0]
            if st not in ("pass", "skip", "missing") and WHY.get((place, rt, t)) and VERBOSE:
                say("    %s: %s" % (rt, WHY[(place, rt, t)]))
    for rt in rts:
        t = tot[rt]
        extra = "" if place == "cri" else ", points %d ok / %d not ok" % tuple(pts[rt])
        say("%s %s: %d pass, %d fail, %d error, %d skip, %d missing%s" % (
            place, rt, t["pass"], t["fail"], t["error"], t["skip"], t["missing"], extra))
    say()

# every (place, runtime) the run was asked for must have results (critest or a VM that never ran)
for pr in os.environ.get("CONFORMANCE_RAN", "").split():
    place, _, rt = pr.partition(":")
    if not res.get((place, rt)):
        (control if rt == "runc" and not strict else diffs).append(
            "%s %s: no results at all (see the run's %s log)" % (place, rt, place))

if control:
    say("control (runc) differs from %s in %d result(s) - not a failure of gruntime's:" % (os.path.basename(exp_path), len(control)))
    for d in control:
        say("  " + d)
if diffs:
    say("DIFFERENCES FROM %s (%d):" % (os.path.basename(exp_path), len(diffs)))
    for d in diffs:
        say("  " + d)
else:
    say("gruntime's results match %s" % os.path.basename(exp_path))
txt = "\n".join(lines) + "\n"
sys.stdout.write(txt)
open(os.path.join(out, "report.txt"), "w").write(txt)

if write:
    rows = []
    for (place, rt), d in sorted(res.items(), key=lambda kv: (PLACES.index(kv[0][0]), RUNTIMES.index(kv[0][1]))):
        for t in sorted(d):
            st = d[t][0]
            if st == "missing":
                continue
            e, why = exp.get((place, rt, t), (None, ""))
            if e == "flaky":
                st = "flaky"
            elif st == "pass":
                why = ""
            elif e != st or not why:
                why = why or "TODO"
            if st == "pass":
                continue          # no line: a test without one must pass
            rows.append("\t".join((place, rt, t, st, why)))
    # keep lines of places/runtimes this run did not cover
    covered = set(res)
    for (place, rt, t), (e, why) in sorted(exp.items()):
        if (place, rt) not in covered:
            rows.append("\t".join((place, rt, t, e, why)))
    with open(exp_path, "w") as f:
        f.writelines(comments)
        f.write("\n".join(rows) + "\n")
    print("wrote %s (%d lines)" % (exp_path, len(rows)))

sys.exit(1 if diffs else 0)
