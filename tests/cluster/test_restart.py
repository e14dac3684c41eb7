# SPDX-License-Identifier: MIT
"""Scenario 4: restart all three nodes from their data directories; the state is intact.

Round 1 writes keys, counters (INCR), a CAS'd key and deletes, then stops all three with
SIGTERM (each must exit 0) and restarts them with the same --id, --peers and --data-dir.
Round 2 writes more and SIGKILLs all three at once (batch durability: every acknowledged
write was fdatasynced on a majority), restarts them, and checks again. Round 3 SIGKILLs
all three while a writer is running: every acknowledged write must survive the restart
and no write answered -TRYAGAIN may appear. After each restart:
a leader is elected in a term no lower than before, its commit index gets back to at
least where it was,
every node applies up to it, and every key reads back with its value through every node.
"""
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aegis_cluster import (Cluster, Writer, check, fill, log, main,  # noqa: E402
                           verify_data, verify_writes, wait_until)


def mixed_writes(node, prefix, data):
    """Counters, CAS and DEL on top of plain SETs; updates @data to the expected state."""
    with node.conn() as c:
        for i in range(50):
            c.call("INCRBY", prefix + ":ctr", 3)
        data[prefix + ":ctr"] = "150"
        check(c.call("SET", prefix + ":cas", "a") == "OK", "SET")
        check(c.call("CAS", prefix + ":cas", "a", "b") == 1, "CAS a->b")
        check(c.call("CAS", prefix + ":cas", "a", "c") == 0, "CAS a->c must not swap")
        data[prefix + ":cas"] = "b"
        gone = [k for k in sorted(data) if k.startswith(prefix + ":") and k.endswith("7")]
        check(c.call("DEL", *gone) == len(gone), "DEL count")
        for k in gone:
            data[k] = None


def check_all(c, data, term_floor, commit_floor):
    leader = c.leader(timeout=30)
    info = leader.info()
    check(info["term"] >= term_floor, "term went back: %d < %d" % (info["term"], term_floor))
    # The commit index is volatile (not in the hard state): a new leader learns it by
    # committing an entry of its term, so it is waited for, not sampled.
    wait_until(lambda: leader.info()["commit_index"] >= commit_floor, 30,
               "leader %d's commit index to reach %d again" % (leader.id, commit_floor))
    info = leader.info()
    c.wait_caught_up(list(c.nodes.values()), timeout=30, index=commit_floor)
    for n in c.nodes.values():
        verify_data(n, data)
    log("leader %d, term %d, commit %d; all %d keys intact on every node" %
        (leader.id, info["term"], info["commit_index"], len(data)))
    return leader


def scenario(opts):
    with Cluster(opts, 3, name="restart") as c:
        c.start()
        leader = c.leader()
        data = fill(leader, "r1", 3000)
        mixed_writes(c.followers(leader)[0], "r1", data)
        info = leader.info()
        c.wait_caught_up(list(c.nodes.values()), index=info["commit_index"])

        for n in c.nodes.values():
            n.stop()
        c.start()
        leader = check_all(c, data, info["term"], info["commit_index"])

        more = fill(c.followers(leader)[0], "r2", 3000)
        data.update(more)
        mixed_writes(leader, "r2", data)
        info = leader.info()
        for n in c.nodes.values():
            n.signal(signal.SIGKILL)
        for n in c.nodes.values():
            n.proc.wait()
        log("SIGKILLed all three nodes at commit %d" % info["commit_index"])
        c.start()
        leader = check_all(c, data, info["term"], info["commit_index"])

        # Round 3: SIGKILL all three in the middle of a write load; every acknowledged
        # write survives, every -TRYAGAIN one stays absent.
        w = Writer("r3", lambda: [n.client_port for n in c.running()])
        w.start()
        wait_until(lambda: len(w.acked) >= 500, 30, "500 writes acknowledged in round 3")
        for n in c.nodes.values():
            n.signal(signal.SIGKILL)
        for n in c.nodes.values():
            n.proc.wait()
        log("SIGKILLed all three nodes under write load")
        w.finish()
        c.start()
        leader = check_all(c, data, info["term"], info["commit_index"])
        c.wait_caught_up(list(c.nodes.values()), timeout=30)
        for n in c.nodes.values():
            verify_writes(n, [w])
        for n in c.nodes.values():
            n.stop()
    return 0


if __name__ == "__main__":
    main(scenario)
