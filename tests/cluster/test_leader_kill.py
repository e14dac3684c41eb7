# SPDX-License-Identifier: MIT
"""Scenario 2: kill -9 the leader under write load.

Three writers (one starting on each node, moving on when a connection breaks) SET distinct
keys, a window of 8 pipelined commands at a time, and record every reply. The leader is
SIGKILLed mid-load. Checks:
- the two survivors elect a new leader in a higher term, and writes are acknowledged
  again after it;
- -TRYAGAIN and -UNKNOWN replies are allowed during the failover, nothing else;
- every acknowledged (+OK) write is then readable, with its value, through each survivor
  (MGET is a ReadIndex read, so each answer is linearizable), and no write answered
  -TRYAGAIN ("not applied and will not be") is present;
- the old leader, restarted from its data directory, catches up and serves the same.
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aegis_cluster import (Cluster, Writer, check, log, main, verify_writes,  # noqa: E402
                           wait_until)


def scenario(opts):
    with Cluster(opts, 3, name="leader-kill") as c:
        c.start()
        old = c.leader()
        term0 = old.info()["term"]
        log("leader %d in term %d" % (old.id, term0))

        def ports():
            return [n.client_port for n in c.running()]
        writers = []
        for i, n in enumerate(sorted(c.nodes.values(), key=lambda x: x.id)):
            w = Writer("w%d" % i, lambda first=n.client_port: [first] + ports())
            writers.append(w)
            w.start()
        wait_until(lambda: all(len(w.acked) >= 200 for w in writers), 30,
                   "every writer to have 200 writes acknowledged")
        before = sum(len(w.acked) for w in writers)
        old.signal(signal.SIGKILL)
        old.proc.wait()
        t_kill = time.monotonic()
        log("SIGKILLed leader %d with %d writes acknowledged" % (old.id, before))

        new = c.leader(among=c.running(), timeout=30)
        t_elect = time.monotonic() - t_kill
        info = new.info()
        check(new.id != old.id, "the killed node is still the leader")
        check(info["term"] > term0, "new leader's term %d is not above %d" %
              (info["term"], term0))
        log("node %d leads in term %d, %.2fs after the kill" % (new.id, info["term"], t_elect))
        at_elect = sum(len(w.acked) for w in writers)
        wait_until(lambda: sum(len(w.acked) for w in writers) >= at_elect + 500, 30,
                   "500 more writes acknowledged under the new leader")
        for w in writers:
            w.finish()

        for n in c.running():
            verify_writes(n, writers)

        old.start(c.peers())
        wait_until(old.ping, 20, "the old leader to answer PING again")
        c.wait_caught_up([old], timeout=30)
        check(old.info()["role"] == "follower", "restarted node is %s" % old.info()["role"])
        verify_writes(old, writers)
        for n in c.running():
            n.stop()
    return 0


if __name__ == "__main__":
    main(scenario)
