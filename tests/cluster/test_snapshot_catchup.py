# SPDX-License-Identifier: MIT
"""Scenario 7: a follower restarted after falling behind the compaction point catches up
through a snapshot.

Three nodes with --snapshot-threshold 200 and --log-retention-bytes 0. 300 keys are written, one follower is stopped
(SIGTERM), 3000 more keys, counters and deletes are written, so the leader takes several
snapshots and compacts its log past the stopped follower's last index (checked through
INFO: the leader's snapshot_index is above it). The follower is restarted from its data
directory. Checks: its snapshots_installed counter moves (it could not be served from the
log), its last_applied reaches the leader's commit index, and every key reads back right
through it. Then it is SIGKILLed and restarted again (it now recovers from its own
snapshot plus log), and finally all three are SIGKILLed and restarted: the data is intact
on every node each time. At the end every node's snapshot_index is within two thresholds
of the commit index: no node stopped taking snapshots.
"""
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aegis_cluster import (Cluster, check, fill, log, main, verify_data,  # noqa: E402
                           wait_until)


def scenario(opts):
    # No log retention: the follower's entries must be gone so that it needs the snapshot
    # (with retention it catches up from the log: cluster.log_catchup).
    with Cluster(opts, 3, flags=["--snapshot-threshold", "200", "--log-retention-bytes", "0"],
                 name="snapshot") as c:
        c.start()
        leader = c.leader()
        lag = c.followers(leader)[0]
        data = fill(leader, "a", 300)
        c.wait_caught_up([lag], index=leader.info()["commit_index"])
        lag_last = lag.info()["last_index"]
        lag.stop()

        data.update(fill(leader, "b", 3000))
        with leader.conn() as conn:
            for i in range(100):
                conn.call("INCR", "ctr")
            data["ctr"] = "100"
            check(conn.call("DEL", *["b:%d" % i for i in range(0, 3000, 3)]) == 1000, "DEL")
        for i in range(0, 3000, 3):
            data["b:%d" % i] = None
        linfo = wait_until(lambda: (lambda i: i if i["snapshot_index"] > lag_last else None)(
            leader.info("all")), 20, "the leader to snapshot past index %d" % lag_last)
        log("leader %d: snapshot_index %d (%d taken), commit %d; stopped follower %d had "
            "last_index %d" % (leader.id, linfo["snapshot_index"], linfo["snapshots_taken"],
                               linfo["commit_index"], lag.id, lag_last))

        lag.start(c.peers())
        wait_until(lag.ping, 20, "node %d to answer PING" % lag.id)
        c.wait_caught_up([lag], timeout=30, index=linfo["commit_index"])
        finfo = lag.info("all")
        check(finfo["snapshots_installed"] >= 1, "node %d caught up without installing a "
              "snapshot (snapshots_installed %d)" % (lag.id, finfo["snapshots_installed"]))
        log("node %d caught up: applied %d, %d snapshot(s) installed" %
            (lag.id, finfo["last_applied"], finfo["snapshots_installed"]))
        verify_data(lag, data)

        # Restart from its own snapshot plus log.
        data.update(fill(leader, "c", 300))
        lag.signal(signal.SIGKILL)
        lag.proc.wait()
        lag.start(c.peers())
        c.wait_caught_up([lag], timeout=30, index=leader.info()["commit_index"])
        verify_data(lag, data)
        log("node %d recovered from its own snapshot and log" % lag.id)

        commit = leader.info()["commit_index"]
        for n in c.nodes.values():
            n.signal(signal.SIGKILL)
        for n in c.nodes.values():
            n.proc.wait()
        c.start()
        new = c.leader(timeout=30)
        wait_until(lambda: new.info()["commit_index"] >= commit, 30,
                   "the commit index to get back to %d" % commit)
        c.wait_caught_up(list(c.nodes.values()), timeout=30, index=commit)
        for n in c.nodes.values():
            verify_data(n, data)
        log("all three restarted after SIGKILL with %d keys intact" % len(data))

        # Snapshots keep coming on every node (a refused snapshot report once stopped a
        # node from ever snapshotting again): 600 more writes, then each node's
        # snapshot_index is within two thresholds of the commit index.
        data.update(fill(new, "d", 600))
        commit = new.info()["commit_index"]
        c.wait_caught_up(list(c.nodes.values()), timeout=30, index=commit)
        for n in c.nodes.values():
            wait_until(lambda: n.info()["snapshot_index"] >= commit - 400, 10,
                       "node %d's snapshot_index to reach %d" % (n.id, commit - 400))
        log("every node keeps snapshotting (snapshot_index within 400 of commit %d)" % commit)
        for n in c.nodes.values():
            n.stop()
    return 0


if __name__ == "__main__":
    main(scenario)
