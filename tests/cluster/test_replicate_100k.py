# SPDX-License-Identifier: MIT
"""Issue 5's multi-process test: three nodes as three processes elect a leader, replicate
100k commands, lose the leader (SIGTERM), elect another, and the old leader restarted
from its data directory catches up.

100000 SETs of distinct keys go through the leader, 1000 pipelined per round trip
(default batch durability); every reply must be +OK. Checks: all three nodes apply the
commit index and serve all 100000 keys; after the leader stops gracefully (exit 0) the two
others elect a new leader in a higher term, which takes 1000 more writes; the old leader,
restarted from its data directory, rejoins as a follower, applies the new commit index
and serves every key.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aegis_cluster import (Cluster, check, fill, log, main, verify_data,  # noqa: E402
                           wait_until)

COUNT = 100000


def scenario(opts):
    with Cluster(opts, 3, name="replicate") as c:
        c.start()
        old = c.leader()
        term = old.info()["term"]
        data = fill(old, "k", COUNT, window=1000)
        log("%d SETs acknowledged by leader %d" % (COUNT, old.id))
        commit = old.info()["commit_index"]
        check(commit >= COUNT, "commit index %d below %d" % (commit, COUNT))
        c.wait_caught_up(list(c.nodes.values()), timeout=60, index=commit)
        for n in c.nodes.values():
            verify_data(n, data)
        log("all %d keys on every node" % COUNT)

        old.stop()
        new = c.leader(among=c.running(), timeout=30)
        check(new.id != old.id and new.info()["term"] > term,
              "no new leader after the old one stopped")
        log("node %d leads in term %d" % (new.id, new.info()["term"]))
        data.update(fill(new, "after", 1000))

        old.start(c.peers())
        wait_until(old.ping, 20, "node %d to answer PING" % old.id)
        c.wait_caught_up([old], timeout=60, index=new.info()["commit_index"])
        info = old.info()
        check(info["role"] == "follower" and info["leader_id"] == new.id,
              "restarted node %d is %s with leader %d" % (old.id, info["role"],
                                                          info["leader_id"]))
        verify_data(old, data)
        log("old leader %d restarted and caught up (applied %d)" %
            (old.id, info["last_applied"]))
        for n in c.nodes.values():
            n.stop()
    return 0


if __name__ == "__main__":
    main(scenario)
