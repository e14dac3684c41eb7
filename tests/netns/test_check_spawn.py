# SPDX-License-Identifier: MIT
"""`aegis-check --spawn 3` end to end: it starts its own local cluster, injects process
faults from a seed and cleans up (issue 15).

The tool runs for 6 s with kill, stop and restart faults every 2 s (held 1 s) from seed 3.
It must exit 0 (linearizable, nothing acknowledged lost), print the seed it used and one
report line per fault and heal with its failover time, and leave nothing behind in its
TMPDIR (the temporary cluster directory is removed, no aegisd is left running). Replay:
the fault schedule (times, kinds, roles) built from one seed is the same twice and differs
for another seed. The checker's ability to fail is shown by netns.check_stale (exit 1
through a stale-read proxy) and netns.check_model.
"""
import importlib.util
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "cluster"))
from aegis_cluster import check, log, main  # noqa: E402

TOOL = os.path.join(HERE, "..", "..", "cmd", "aegis-check.py")


def load_tool():
    spec = importlib.util.spec_from_file_location("aegis_check", TOOL)
    ac = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ac)
    return ac


def schedule(ac, seed):
    faults = ac.process_faults(None, list(ac.FAULT_KINDS), 30.0, seed, 2.0, 1.0)
    return [(at, name) for at, name, _ in faults]


def scenario(opts):
    ac = load_tool()
    check(schedule(ac, 11) == schedule(ac, 11), "one seed gave two fault schedules")
    check(schedule(ac, 11) != schedule(ac, 12), "two seeds gave one fault schedule")
    tmp = tempfile.mkdtemp(prefix="aegis-check-spawn.")
    args = [sys.executable, "-B", TOOL, "--spawn", "3", "--aegisd", opts.aegisd,
            "--duration", "6", "--seed", "3", "--clients", "3", "--fault-interval", "2",
            "--fault-hold", "1", "--faults", "kill,stop,restart"]
    log("running %s" % " ".join(args))
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=120, env=dict(os.environ, TMPDIR=tmp))
    sys.stderr.write(r.stdout[-4000:])
    check(r.returncode == 0, "aegis-check --spawn 3: exit %d, want 0" % r.returncode)
    check("--seed 3 replays" in r.stdout, "the seed is not printed")
    faults = re.findall(r"fault at +[0-9.]+s ((?:heal )?\w+) node \d.*first write after it: (\S+)",
                        r.stdout)
    check(len([f for f in faults if not f[0].startswith("heal")]) >= 2,
          "fewer than two faults reported: %s" % faults)
    check(len([f for f in faults if f[0].startswith("heal")]) >= 2, "heals not reported")
    left = os.listdir(tmp)
    check(not left, "aegis-check left %s in its TMPDIR" % left)
    os.rmdir(tmp)
    log("aegis-check --spawn: exit 0, %d faults and heals reported, cleaned up" % len(faults))


if __name__ == "__main__":
    main(scenario)
