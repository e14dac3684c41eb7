#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Compare two directories of Google Benchmark JSON files (bench/run.sh output).

    bench/compare.py BASELINE_DIR NOW_DIR

For every benchmark present in both, prints the baseline and current real time (in the
benchmark's unit) and the ratio now / baseline: below 1.00 is faster. Each file's machine
context (host, CPUs, load average, date, Aegis commit) is printed first, since a ratio
between different machines, or a busy and a quiet one, says little. Exit status 1 if a
directory holds no results. Standard library only."""
import json
import os
import sys


def load(directory):
    runs = {}
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(directory, name)) as f:
                runs[name[:-5]] = json.load(f)
        except ValueError:
            # Empty when a --benchmark_filter matched nothing in that executable.
            print("compare.py: %s/%s: no results, skipped" % (directory, name),
                  file=sys.stderr)
    return runs


def context(data):
    c = data.get("context", {})
    return "host %s, %s CPUs, load %s, %s, commit %s" % (
        c.get("host_name", "?"), c.get("num_cpus", "?"),
        "/".join("%.1f" % x for x in c.get("load_avg", [])) or "?",
        c.get("date", "?"), c.get("aegis_commit", "?"))


def times(data):
    out = {}
    for b in data.get("benchmarks", []):
        if b.get("run_type", "iteration") == "iteration":
            out[b["name"]] = (b["cpu_time"], b.get("time_unit", "ns"))
    return out


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    base, now = load(sys.argv[1]), load(sys.argv[2])
    if not base or not now:
        print("compare.py: no results in %s" % (sys.argv[1] if not base else sys.argv[2]),
              file=sys.stderr)
        return 1
    for exe in sorted(set(base) & set(now)):
        print("%s\n  baseline: %s\n  now:      %s" % (exe, context(base[exe]),
                                                    context(now[exe])))
        tb, tn = times(base[exe]), times(now[exe])
        print("  %-58s %12s %12s %7s" % ("benchmark (CPU time)", "baseline", "now", "ratio"))
        for name in tb:
            if name not in tn:
                continue
            (b, unit), (n, _) = tb[name], tn[name]
            print("  %-58s %10.1f%-2s %10.1f%-2s %6.2fx" % (name[:58], b, unit, n, unit,
                                                          n / b if b > 0 else float("nan")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
