# SPDX-License-Identifier: MIT
"""A follower stopped past several snapshots catches up from the log, not a snapshot.

Three nodes with a small entry cache (--log-cache-bytes 256K), snapshots every 1000
entries and 1 MiB segments, default retention. Two writers run through the leader and
the other follower while one follower is SIGSTOPped until the leader has taken at least
three snapshots past the follower's log. Checks:
- while it is stopped, the leader's entry cache stays under its bound (INFO
  log_cache_bytes; bound + what is not yet applied), once it retains a segment behind
  the snapshot (log_retained_bytes > 0);
- after SIGCONT the follower applies the leader's commit index and the leader sent it
  entries read back from disk (log_entries_sent_from_disk grows) and no snapshot
  (snapshots_sent stays 0 on the leader, snapshots_installed 0 on the follower);
- every acknowledged write reads back through all three nodes.
LOG_CATCHUP_RETENTION=0 in the environment runs the same scenario without retention: the
follower then needs a snapshot, which the checks above must catch (they fail).
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aegis_cluster import (Cluster, Writer, check, log, main, verify_writes,  # noqa: E402
                           wait_until)

CACHE = 256 * 1024


def counters(node):
    d = node.info("stats")
    d.update(node.info("persistence"))
    return {k: int(d.get(k, "0")) for k in (
        "snapshots_sent", "snapshots_installed", "snapshots_taken", "log_cache_bytes",
        "log_retained_bytes", "log_entries_sent_from_disk", "log_entries_sent_from_cache",
        "log_reads", "log_read_errors")}


def scenario(opts):
    flags = ["--snapshot-threshold", "1000", "--log-cache-bytes", "256K", "--segment-mb", "1"]
    if os.environ.get("LOG_CATCHUP_RETENTION") is not None:
        flags += ["--log-retention-bytes", os.environ["LOG_CATCHUP_RETENTION"]]
    with Cluster(opts, 3, flags=flags, name="log-catchup") as c:
        c.start()
        leader = c.leader()
        term = leader.info()["term"]
        stopped, other = c.followers(leader)
        writers = [Writer("a", lambda: [leader.client_port], window=32),
                   Writer("b", lambda: [other.client_port], window=32)]
        for w in writers:
            w.start()
        wait_until(lambda: all(len(w.acked) >= 200 for w in writers), 30,
                   "200 writes acknowledged per writer")
        stopped.signal(signal.SIGSTOP)
        last = leader.info()["commit_index"]
        snaps0 = counters(leader)["snapshots_taken"]
        log("SIGSTOPped follower %d near index %d" % (stopped.id, last))
        no_retention = os.environ.get("LOG_CATCHUP_RETENTION") == "0"
        # Past three snapshots, and past a whole segment behind the latest one (the
        # follower's entries are then in a segment that only retention keeps).
        wait_until(lambda: counters(leader)["snapshots_taken"] >= snaps0 + 3 and
                   leader.info()["snapshot_index"] > last + 2000 and
                   (no_retention or counters(leader)["log_retained_bytes"] > 0), 90,
                   "three leader snapshots and a segment past the stopped follower's log")
        mid = counters(leader)
        log("leader while stopped: %s" % mid)
        check(mid["log_cache_bytes"] < CACHE + 8 * 1024 * 1024,
              "leader cache %d bytes, bound %d" % (mid["log_cache_bytes"], CACHE))
        stopped.signal(signal.SIGCONT)
        t0 = time.monotonic()
        target = leader.info()["commit_index"]
        wait_until(lambda: stopped.info()["last_applied"] >= target, 60,
                   "follower %d to apply the leader's commit index %d" % (stopped.id, target))
        log("follower %d applied %d, %.2fs after SIGCONT" % (stopped.id, target,
                                                             time.monotonic() - t0))
        for w in writers:
            w.finish()
        final = leader.info()
        check(final["role"] == "leader" and final["term"] == term, "leadership changed")
        c.wait_caught_up([stopped, other], timeout=30, index=final["commit_index"])
        lc, fc = counters(leader), counters(stopped)
        log("leader after: %s" % lc)
        log("follower after: %s" % fc)
        check(lc["log_entries_sent_from_disk"] > mid["log_entries_sent_from_disk"],
              "the leader read nothing back from disk for the follower")
        check(lc["log_read_errors"] == 0, "read-back errors on the leader")
        check(lc["snapshots_sent"] == 0, "the leader sent %d snapshots" % lc["snapshots_sent"])
        check(fc["snapshots_installed"] == 0,
              "the follower installed %d snapshots" % fc["snapshots_installed"])
        for n in (stopped, other, leader):
            verify_writes(n, writers)
        for n in c.running():
            n.stop()
    return 0


if __name__ == "__main__":
    main(scenario)
