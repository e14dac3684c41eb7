# SPDX-License-Identifier: MIT
"""Scenario 3: SIGSTOP a follower for a while under writes, then SIGCONT: it catches up.

Two writers go through the leader and the running follower. One follower is SIGSTOPped
for 3 seconds. Checks:
- the leader keeps acknowledging writes while the follower is stopped (a majority of two
  is enough), and its commit index moves past the stopped follower's;
- the leader's resident memory does not run away while it holds entries the stopped
  follower has not taken (loose bound: 256 MiB of growth, far above the window and the
  rings; it guards against unbounded buffering, not against a few MiB);
- after SIGCONT the follower's last_applied reaches the leader's commit index, it still
  follows the same leader in the same term (it did not disrupt the cluster), and every
  acknowledged write reads back through it.
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aegis_cluster import (Cluster, Writer, check, log, main, verify_writes,  # noqa: E402
                           wait_until)


def rss_kib(node):
    with open("/proc/%d/status" % node.proc.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for node %d" % node.id)


def scenario(opts):
    with Cluster(opts, 3, name="follower-pause") as c:
        c.start()
        leader = c.leader()
        term = leader.info()["term"]
        paused, other = c.followers(leader)
        writers = [Writer("a", lambda: [leader.client_port]),
                   Writer("b", lambda: [other.client_port])]
        for w in writers:
            w.start()
        wait_until(lambda: all(len(w.acked) >= 100 for w in writers), 30,
                   "100 writes acknowledged per writer")
        rss0 = rss_kib(leader)
        paused.signal(signal.SIGSTOP)
        log("SIGSTOPped follower %d" % paused.id)
        acked0 = sum(len(w.acked) for w in writers)
        time.sleep(3.0)
        acked1 = sum(len(w.acked) for w in writers)
        check(acked1 > acked0 + 100, "the leader took only %d writes while follower %d was "
              "stopped" % (acked1 - acked0, paused.id))
        linfo = leader.info()
        growth = rss_kib(leader) - rss0
        log("%d writes acknowledged while stopped; leader commit %d; leader RSS grew %d KiB"
            % (acked1 - acked0, linfo["commit_index"], growth))
        check(growth < 256 * 1024, "leader RSS grew by %d KiB while a follower was stopped" %
              growth)
        paused.signal(signal.SIGCONT)
        log("SIGCONTinued follower %d" % paused.id)
        t0 = time.monotonic()
        target = leader.info()["commit_index"]
        wait_until(lambda: paused.info()["last_applied"] >= target, 30,
                   "follower %d to apply the leader's commit index %d" % (paused.id, target))
        log("follower %d applied %d, %.2fs after SIGCONT (writes still going)" %
            (paused.id, target, time.monotonic() - t0))
        for w in writers:
            w.finish()
        final = leader.info()
        check(final["role"] == "leader" and final["term"] == term,
              "leadership changed (node %d: %s in term %d, was leader in term %d)" %
              (leader.id, final["role"], final["term"], term))
        c.wait_caught_up([paused, other], timeout=30, index=final["commit_index"])
        pinfo = paused.info()
        check(pinfo["leader_id"] == leader.id and pinfo["term"] == term,
              "follower %d: leader %d term %d" % (paused.id, pinfo["leader_id"], pinfo["term"]))
        wait_until(lambda: leader.info()["member"][paused.id]["match_index"] >=
                   final["commit_index"], 20, "the leader's match_index for node %d to reach "
                   "the commit index %d" % (paused.id, final["commit_index"]))
        for n in (paused, other, leader):
            verify_writes(n, writers)
        for n in c.running():
            n.stop()
    return 0


if __name__ == "__main__":
    main(scenario)
