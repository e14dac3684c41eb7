# SPDX-License-Identifier: MIT
"""Issue 14, item 3: a node added to a compacted cluster catches up through a snapshot
streamed in small chunks, and a transfer cut by a crash of the receiver resumes.

Three nodes with --snapshot-threshold 200, --snapshot-chunk-bytes 4096 (about a
thousand chunks per transfer: the streaming path, not one message) and
--log-retention-bytes 0 (no segments kept behind a snapshot: else node 4 would catch up
from the log read back from disk). 4000 keys of 1000
bytes are written (4 MB of state), so the leader has taken snapshots and compacted its
log far past index 1. Node 4 starts empty with --join and is added with AEGIS.ADD: it can
only catch up through InstallSnapshot. As soon as its partial file
(snap-<index>-<term>-<leader>-<size>.recv) holds 256 KiB it is SIGKILLed; the partial
file must still be there. Restarted, it logs that it resumes from the bytes it kept, the
AEGIS.ADD completes, node 4 installs the snapshot (snapshots_installed moves), applies the
leader's commit index, no partial file is left, and every key reads back through it.
Finally node 4 is SIGKILLed and restarted once more: it recovers from its own snapshot.
"""
import glob
import os
import signal
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aegis_cluster import (Cluster, RespError, check, log, main, verify_data,  # noqa: E402
                           wait_until)

KEYS = 4000
VALUE_BYTES = 1000
CUT_AT = 256 << 10


def fill_big(node, prefix, count, size):
    data = {}
    with node.conn(timeout=30.0) as conn:
        for start in range(0, count, 100):
            cmds = []
            for i in range(start, min(count, start + 100)):
                v = ("%s-%d-" % (prefix, i)) * (size // 8 + 1)
                cmds.append(("SET", "%s:%d" % (prefix, i), v[:size]))
            for cmd, r in zip(cmds, conn.pipeline(cmds)):
                check(r == "OK", "SET %s answered %r" % (cmd[1], r))
                data[cmd[1]] = cmd[2]
    return data


def partial(node):
    files = glob.glob(os.path.join(node.data_dir, "snap-*.recv"))
    return (files[0], os.path.getsize(files[0])) if files else None


def scenario(opts):
    flags = ["--snapshot-threshold", "200", "--snapshot-chunk-bytes", "4096",
             "--log-retention-bytes", "0"]
    with Cluster(opts, 3, flags=flags, name="snapstream") as c:
        c.start()
        leader = c.leader()
        data = fill_big(leader, "k", KEYS, VALUE_BYTES)
        linfo = wait_until(lambda: (lambda i: i if i["snapshot_index"] > 1000 else None)(
            leader.info("all")), 30, "the leader to snapshot")
        log("leader %d: snapshot_index %d, commit %d" %
            (leader.id, linfo["snapshot_index"], linfo["commit_index"]))

        new = c.add_node(4)
        new.start(c.peers([1, 2, 3, 4]), join=True)
        wait_until(new.ping, 20, "node 4 to answer PING")
        result = {}

        def add():
            try:
                result["r"] = leader.call("AEGIS.ADD", 4, new.peer_addr, timeout=120.0)
            except (RespError, OSError) as e:
                result["e"] = e
        adder = threading.Thread(target=add, daemon=True)
        adder.start()

        cut = wait_until(lambda: (lambda p: p if p and p[1] >= CUT_AT else None)(partial(new)),
                         60, "node 4's partial snapshot to reach %d bytes" % CUT_AT,
                         interval=0.002)
        new.signal(signal.SIGKILL)
        new.proc.wait()
        kept = partial(new)
        check(kept is not None and kept[1] >= CUT_AT,
              "the partial snapshot is gone after the crash: %r" % (kept,))
        log("node 4 killed with %d bytes of %s kept" % (kept[1], os.path.basename(kept[0])))

        new.start(c.peers([1, 2, 3, 4]), join=True)
        adder.join(120)
        check(result.get("r") == "OK", "AEGIS.ADD 4 answered %r" % (result,))
        c.wait_caught_up([new], timeout=60, index=leader.info()["commit_index"])
        ninfo = new.info("all")
        check(ninfo["snapshots_installed"] >= 1, "node 4 caught up without a snapshot")
        with open(new.log_path, "rb") as f:
            text = f.read().decode(errors="replace")
        check("the transfer resumes there" in text, "node 4 did not resume its transfer")
        check(partial(new) is None, "a partial snapshot is left: %r" % (partial(new),))
        verify_data(new, data)
        log("node 4 resumed from %d bytes, installed the snapshot and serves %d keys" %
            (cut[1], len(data)))

        new.signal(signal.SIGKILL)
        new.proc.wait()
        new.start(c.peers([1, 2, 3, 4]), join=True)
        c.wait_caught_up([new], timeout=30, index=leader.info()["commit_index"])
        verify_data(new, data)
        log("node 4 restarted from its own snapshot")


if __name__ == "__main__":
    main(scenario)
