# SPDX-License-Identifier: MIT
"""Issue 14, item 3 (label slow; runs only with AEGIS_SLOW=1, else skipped): memory of a
streamed InstallSnapshot of more than 64 MiB, on the sender and on the receiver.

Three nodes with --snapshot-threshold 20000 and --log-retention-bytes 0 (so the new node
needs the snapshot; default 1 MiB chunks, 4 in flight). 90,000
keys of 1 KiB are written (about 95 MiB of state; its last snapshot, at 80,000 entries,
is larger than 64 MiB, checked). Once the leader's snapshots have settled, node 4 starts empty with --join
and is added with AEGIS.ADD; it catches up only through the snapshot. While its partial
file exists, the leader's and node 4's resident set sizes (VmRSS) are sampled every 10 ms.
Checks: the leader's peak during the transfer is at most 64 MiB above its RSS before it,
and node 4's peak while receiving is at most 64 MiB above its RSS before the transfer
(the snapshot is streamed to a file, not assembled in memory; restoring it afterwards
grows the state, which is not the transfer's memory). The figures are logged.
"""
import glob
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aegis_cluster import (SKIP, Cluster, RespError, check, log, main,  # noqa: E402
                           wait_until)

KEYS = int(os.environ.get("AEGIS_BIG_KEYS", "90000"))
VALUE_BYTES = 1024
EXTRA_MAX = 64 << 20


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def fill_big(node, count, size):
    with node.conn(timeout=60.0) as conn:
        for start in range(0, count, 200):
            cmds = [("SET", "k:%d" % i, ("%08d" % i) * (size // 8))
                    for i in range(start, min(count, start + 200))]
            for cmd, r in zip(cmds, conn.pipeline(cmds)):
                check(r == "OK", "SET %s answered %r" % (cmd[1], r))


def snap_files(node, pattern):
    return glob.glob(os.path.join(node.data_dir, pattern))


def scenario(opts):
    if os.environ.get("AEGIS_SLOW") != "1":
        log("slow scenario: set AEGIS_SLOW=1 to run it")
        return SKIP
    flags = ["--snapshot-threshold", "20000", "--log-retention-bytes", "0"]
    with Cluster(opts, 3, flags=flags, name="snapbig") as c:
        c.start()
        leader = c.leader()
        fill_big(leader, KEYS, VALUE_BYTES)
        want = KEYS - 20000
        wait_until(lambda: leader.info("all")["snapshot_index"] >= want, 120,
                   "the leader to snapshot past %d" % want)
        time.sleep(3)  # Let the other nodes' snapshots finish too.
        files = snap_files(leader, "*.snap")
        check(files, "no snapshot file on the leader")
        size = max(os.path.getsize(f) for f in files)
        check(size > 64 << 20, "the snapshot file is only %d bytes" % size)

        new = c.add_node(4)
        new.start(c.peers([1, 2, 3, 4]), join=True)
        wait_until(new.ping, 20, "node 4 to answer PING")
        time.sleep(1)
        base = {"leader": rss(leader.proc.pid), "new": rss(new.proc.pid)}
        peak = dict(base)
        seen = {"samples": 0}
        done = threading.Event()

        def sample():
            while not done.is_set():
                try:
                    if snap_files(new, "snap-*.recv"):
                        seen["samples"] += 1
                        peak["leader"] = max(peak["leader"], rss(leader.proc.pid))
                        peak["new"] = max(peak["new"], rss(new.proc.pid))
                except OSError:
                    pass
                time.sleep(0.01)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.monotonic()
        try:
            r = leader.call("AEGIS.ADD", 4, new.peer_addr, timeout=300.0)
        except RespError as e:
            r = e
        took = time.monotonic() - t0
        done.set()
        sampler.join(5)
        check(r == "OK", "AEGIS.ADD 4 answered %r" % (r,))
        wait_until(lambda: new.info("all")["snapshots_installed"] >= 1, 60,
                   "node 4 to install the snapshot")
        log("snapshot file %.1f MiB moved in %.1f s (%d samples); RSS MiB: leader %.1f -> "
            "peak %.1f (+%.1f), receiver %.1f -> peak %.1f (+%.1f)" %
            (size / 2**20, took, seen["samples"], base["leader"] / 2**20,
             peak["leader"] / 2**20, (peak["leader"] - base["leader"]) / 2**20,
             base["new"] / 2**20, peak["new"] / 2**20, (peak["new"] - base["new"]) / 2**20))
        check(seen["samples"] >= 3, "too few samples during the transfer")
        check(peak["leader"] - base["leader"] <= EXTRA_MAX, "the sender grew by more than 64 MiB")
        check(peak["new"] - base["new"] <= EXTRA_MAX, "the receiver grew by more than 64 MiB")


if __name__ == "__main__":
    main(scenario)
