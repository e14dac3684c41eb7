# SPDX-License-Identifier: MIT
"""aegis-check's linearizability checker on hand-made and generated histories (no cluster).

Shows the checker can fail: a stale read, a lost acknowledged write, a CAS that swapped
against a value the register did not hold and an INCR that skipped a value are each
reported non-linearizable (and `aegis-check --check-history` exits 1 on a saved broken
history, with the failing sub-history shrunk to the operations that explain it), while
concurrent reads that may see either value, writes of unknown outcome that did or did not
take effect, and 200 generated histories of a real register with random overlapping
intervals are all accepted (no false alarms).
"""
import importlib.util
import json
import os
import random
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(HERE, "..", "..", "cmd", "aegis-check.py")
spec = importlib.util.spec_from_file_location("aegis_check", TOOL)
ac = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ac)


def op(f, args, result, call, ret, outcome="ok", client=0, key="k"):
    return {"client": client, "key": key, "f": f, "args": list(args), "result": result,
            "call": call, "ret": ret, "outcome": outcome}


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def lin(ops):
    return ac.linearizable(sorted(ops, key=lambda o: o["call"]))


def generated(rng, n_ops=40, clients=4):
    """A history of a real register: each op takes effect at a point inside its interval."""
    ops, t, state = [], 0, None
    points = []
    for i in range(n_ops):
        call = t + rng.randrange(0, 5)
        point = call + rng.randrange(1, 10)
        ret = point + rng.randrange(1, 10)
        t += rng.randrange(1, 4)
        points.append((point, i, call, ret))
    points.sort()
    for point, i, call, ret in points:
        f = rng.choice(ac.OPS)
        if f == "get":
            ops.append(op(f, [], state, call, ret))
        elif f == "set":
            v = str(1000 + i)
            ops.append(op(f, [v], "OK", call, ret))
            state = v
        elif f == "cas":
            exp = state if rng.random() < 0.5 and state is not None else "x"
            new = str(1000 + i)
            swapped = state == exp
            ops.append(op(f, [exp, new], 1 if swapped else 0, call, ret))
            state = new if swapped else state
        else:
            v = int(state) if state is not None else 0
            state = str(v + 1)
            ops.append(op(f, [], v + 1, call, ret))
    for o in ops:
        if rng.random() < 0.1 and o["f"] != "get":
            o["outcome"], o["ret"] = "info", None  # took effect, the client never heard
    return ops


def main():
    # Sequential stale read: SET 1, SET 2, then GET returns 1.
    stale = [op("set", ["1"], "OK", 0, 1), op("set", ["2"], "OK", 2, 3),
             op("get", [], "1", 4, 5), op("get", [], "2", 0, 6)]
    check(not lin(stale), "stale read accepted")
    small = ac.shrink(sorted(stale, key=lambda o: o["call"]))
    check(len(small) == 3, "shrunk to %d ops, want the 3 that explain it" % len(small))
    # Shrinking keeps the write an INCR counted from: INCR -> 2 needs the SET 1.
    inc = [op("set", ["1"], "OK", 0, 1), op("incr", [], 2, 2, 3), op("set", ["5"], "OK", 4, 5),
           op("get", [], "2", 6, 7)]
    small = ac.shrink(inc)
    check(not lin(inc) and len(small) == 4, "INCR history shrunk to %s" % small)
    # The same read overlapping the second SET may see either value.
    check(lin([op("set", ["1"], "OK", 0, 1), op("set", ["2"], "OK", 2, 6),
               op("get", [], "1", 4, 5)]), "concurrent read rejected")
    # Lost acknowledged write: SET ok, later read sees nothing.
    check(not lin([op("set", ["7"], "OK", 0, 1), op("get", [], None, 2, 3)]),
          "lost write accepted")
    # Unknown outcome: both "applied" and "not applied" are fine, even much later.
    check(lin([op("set", ["7"], None, 0, None, "info"), op("get", [], None, 2, 3),
               op("get", [], "7", 50, 51)]), "unknown write that applied late rejected")
    check(lin([op("set", ["7"], None, 0, None, "info"), op("get", [], None, 2, 3)]),
          "unknown write that never applied rejected")
    # But an unknown write cannot take effect before it was invoked.
    check(not lin([op("get", [], "7", 0, 1), op("set", ["7"], None, 2, None, "info")]),
          "read from the future accepted")
    # CAS and INCR semantics.
    check(not lin([op("set", ["1"], "OK", 0, 1), op("cas", ["2", "3"], 1, 2, 3)]),
          "CAS swapped against a wrong value accepted")
    check(lin([op("set", ["1"], "OK", 0, 1), op("cas", ["1", "3"], 1, 2, 3),
               op("get", [], "3", 4, 5)]), "good CAS rejected")
    check(not lin([op("incr", [], 1, 0, 1), op("incr", [], 3, 2, 3)]),
          "INCR skipping a value accepted")
    check(lin([op("incr", [], 1, 0, 5), op("incr", [], 2, 1, 3)]), "concurrent INCR rejected")
    # No false alarms on generated real-register histories.
    rng = random.Random(15)
    for i in range(200):
        h = generated(rng)
        check(lin(h), "generated history %d rejected: %s" % (i, h))
    # The command line: a saved broken history exits 1, a good one 0, bad usage 2.
    with tempfile.TemporaryDirectory() as d:
        bad, good = os.path.join(d, "bad.json"), os.path.join(d, "good.json")
        with open(bad, "w") as f:
            json.dump({"history": stale}, f)
        with open(good, "w") as f:
            json.dump({"history": generated(random.Random(1))}, f)
        r = subprocess.run([sys.executable, TOOL, "--check-history", bad],
                           stdout=subprocess.PIPE, universal_newlines=True)
        sys.stderr.write(r.stdout)
        check(r.returncode == 1, "broken history: exit %d" % r.returncode)
        check("NOT LINEARIZABLE: key k" in r.stdout, "no anomaly printed")
        r = subprocess.run([sys.executable, TOOL, "--check-history", good],
                           stdout=subprocess.PIPE)
        check(r.returncode == 0, "good history: exit %d" % r.returncode)
        r = subprocess.run([sys.executable, TOOL, "--duration", "1"], stderr=subprocess.PIPE)
        check(r.returncode == 2, "no targets: exit %d" % r.returncode)
        r = subprocess.run([sys.executable, TOOL, "--targets", "[::1:7", "--duration", "1"],
                           stderr=subprocess.PIPE)
        check(r.returncode == 2, "bad target: exit %d" % r.returncode)
    check(ac.parse_hostport("[::1]:7001") == ("::1", 7001), "v6 target")
    check(ac.parse_hostport("10.0.0.1:6379") == ("10.0.0.1", 6379), "v4 target")
    sys.stderr.write("check_model: all cases behaved\n")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        sys.stderr.write("FAILED: %s\n" % e)
        sys.exit(1)
