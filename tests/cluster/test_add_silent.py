# SPDX-License-Identifier: MIT
"""Issue 11, membership: AEGIS.ADD of a node that never answers (a mistyped address).

Nodes 1-3 run with --catchup-timeout-ms 3000 and a few hundred keys written. AEGIS.ADD 4
with an address nobody listens on: while it waits, a second connection polls the
leader's INFO, and the member must never be listed as a voter; the command answers an
error saying the node never caught up, no sooner than the timeout; afterwards the group
lists its three voters and no node 4 (the learner was removed), and still commits.

On main before the rule the leader promoted such a node within 10 ms (commit index below
64), and the group had four voters with one dead.
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aegis_cluster import (Cluster, RespError, check, fill, free_port, log, main,  # noqa: E402
                           verify_data, wait_until)

TIMEOUT_MS = 3000


def scenario(opts):
    with Cluster(opts, 3, name="addsilent",
                 flags=["--catchup-timeout-ms", str(TIMEOUT_MS)]) as c:
        c.start()
        leader = c.leader()
        data = fill(leader, "k", 300)
        dead = "127.0.0.1:%d" % free_port()  # Nobody listens there.
        seen = {"voters_max": 0, "member4_voter": False, "polls": 0}
        done = threading.Event()

        def poll():
            while not done.is_set():
                try:
                    members = leader.info()["member"]
                except (OSError, RespError):
                    continue
                seen["polls"] += 1
                seen["voters_max"] = max(seen["voters_max"],
                                         sum(m["voter"] for m in members.values()))
                seen["member4_voter"] |= members.get(4, {}).get("voter") == 1
                time.sleep(0.01)
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        t0 = time.monotonic()
        try:
            r = leader.call("AEGIS.ADD", 4, dead, timeout=60.0)
            err = None
        except RespError as e:
            r, err = None, e.msg
        took = time.monotonic() - t0
        done.set()
        poller.join(10)
        log("AEGIS.ADD 4 %s: %r / -%s after %.2fs; %d INFO polls, at most %d voters" %
            (dead, r, err, took, seen["polls"], seen["voters_max"]))
        check(err is not None, "AEGIS.ADD of a silent node answered %r" % (r,))
        check("never caught up" in err, "AEGIS.ADD answered -%s" % err)
        check(took >= TIMEOUT_MS / 1000.0 * 0.9, "AEGIS.ADD failed after %.2fs, before its "
              "timeout" % took)
        check(seen["polls"] > 10, "too few INFO polls (%d)" % seen["polls"])
        check(not seen["member4_voter"] and seen["voters_max"] == 3,
              "the silent node was listed as a voter (at most %d voters seen)" %
              seen["voters_max"])
        # The learner is removed: every node lists exactly 1-3, all voters.
        for n in c.running():
            wait_until(lambda: sorted(n.info()["member"]) == [1, 2, 3], 20,
                       "node %d to list members 1-3" % n.id)
            check(all(m["voter"] == 1 for m in n.info()["member"].values()),
                  "node %d lists %s" % (n.id, n.info()["member"]))
        more = fill(leader, "after", 100)
        for n in c.running():
            c.wait_caught_up([n], timeout=30)
            verify_data(n, data)
            verify_data(n, more)
        for n in c.running():
            n.stop()
    return 0


if __name__ == "__main__":
    main(scenario)
