# SPDX-License-Identifier: MIT
"""Forged peer frames (issue 12): an outsider on the host talks to live nodes' plaintext
peer ports and sends the messages that broke main, then the cluster must be unharmed.

The outsider does the peer hello as node 1 (net/uring_peer.c's top comment: 32 bytes,
"AEGN", version 1, cluster id, sender, receiver; the acceptor answers with its own) to
nodes 2 and 3, then sends, framed by a u32 length and encoded as docs/wire-format.md
says:
  - RequestVote with the leadership-transfer flag at term 2^64-1 and at 2^62 (before:
    granted, every node stored the term, no election could succeed again);
  - AppendEntries with prev_index 2^64-2 at term 0, one entry (before: the raft thread
    spun at 100% CPU forever and SIGTERM no longer stopped the node);
  - an InstallSnapshot chunk, whole, from node 1 at the current term, with junk data for
    an index far ahead (before: installed, then the follower went fatal, no more writes);
  - TimeoutNow naming the victim, and a heartbeat with commit 2^64-1.
Node 1 is first made the leader (AEGIS.TRANSFER), so the forged chunk comes "from the
leader" and only the snapshot check stands between it and the victim's log.
Each frame goes on a link of its own: one with values no honest peer sends (a term or
index at or above 2^62) closes its link at once, logged "closing the link", so frames
after it on that link would never be read; well-formed frames that are out of place are
refused by the core and the link stays.
Then: the victims counted the refusals (peer_msgs_rejected); the cluster elects,
serves writes and reads on every node; terms stay small; a further election works
(transfer to node 3, with the TimeoutNow notices); SIGTERM stops every node promptly.
"""
import os
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aegis_cluster import Cluster, check, log, main, wait_until  # noqa: E402

TOP = (1 << 64) - 1
CLUSTER_ID = 1

VOTE_REQ, APPEND_REQ, SNAPSHOT_REQ, HEARTBEAT, TIMEOUT_NOW = 1, 3, 5, 7, 9


def hello(sender, receiver):
    return struct.pack("<IHHQQQ", 0x4E474541, 1, 0, CLUSTER_ID, sender, receiver)


def frame(mtype, sender, receiver, term, body):
    header = struct.pack("<IBBHIQQQ", 0x52474541, 1, mtype, 0, len(body), sender, receiver,
                         term)
    msg = header + body
    return struct.pack("<I", len(msg)) + msg


def vote_req(sender, receiver, term, transfer):
    body = struct.pack("<QQBB", 1 << 20, term, 0, 1 if transfer else 0)
    return frame(VOTE_REQ, sender, receiver, term, body)


def append_req(sender, receiver, term, prev_index, commit, entry_term):
    payload = b"\x01forged"
    body = struct.pack("<QQQI", prev_index, 0, commit, 1)
    body += struct.pack("<QQIB", entry_term, 0, len(payload), 1) + payload
    return frame(APPEND_REQ, sender, receiver, term, body)


def snapshot_req(sender, receiver, term, index, junk):
    members = [(1, 1), (2, 1), (3, 1)]
    body = struct.pack("<QQB", index, term, len(members))
    for mid, role in members:
        body += struct.pack("<QB", mid, role)
    body += struct.pack("<QQBI", 0, len(junk), 1, len(junk)) + junk
    return frame(SNAPSHOT_REQ, sender, receiver, term, body)


def heartbeat(sender, receiver, term, commit):
    return frame(HEARTBEAT, sender, receiver, term, struct.pack("<QQ", commit, 0))


def timeout_now(sender, receiver, term, target):
    return frame(TIMEOUT_NOW, sender, receiver, term, struct.pack("<Q", target))


def forge_once(node, sender, frames, taken):
    with socket.create_connection(("127.0.0.1", node.peer_port), timeout=5) as s:
        s.sendall(hello(sender, node.id))
        answer = b""
        while len(answer) < 32:
            chunk = s.recv(32 - len(answer))
            check(chunk, "node %d closed the link during the hello" % node.id)
            answer += chunk
        check(struct.unpack("<I", answer[:4])[0] == 0x4E474541, "hello answer magic")
        for f in frames:
            s.sendall(f)
        try:
            wait_until(taken, 3, "node %d to take the forged frames in" % node.id)
            return True
        except AssertionError:
            return False


def forge(node, sender, frames, taken):
    """Connect to @node's peer port as @sender, do the hello, send @frames and wait until
    taken() says the node took them in. The forged link replaces the real node's, which
    redials and may replace ours before our frames are read: then try again."""
    for attempt in range(10):
        if forge_once(node, sender, frames, taken):
            return
        log("node %d: forged link replaced before the frames were read; again" % node.id)
    check(False, "node %d never took the forged frames in" % node.id)


def rejected(node):
    return int(node.info("stats").get("peer_msgs_rejected", "0"))  # Absent before the fix.


def scenario(opts):
    with Cluster(opts, 3, name="forged") as c:
        c.start()
        leader = c.leader()
        if leader.id != 1:
            check(leader.call("AEGIS.TRANSFER", "1") == "OK", "transfer to node 1")
            wait_until(lambda: c.leader().id == 1, 20, "node 1 to lead")
        leader = c.nodes[1]
        check(leader.call("SET", "before", "1") == "OK", "SET before the attack")
        term = leader.info()["term"]
        log("node 1 leads at term %d; forging frames as node 1 to nodes 2 and 3" % term)

        for victim in (c.nodes[2], c.nodes[3]):
            last = victim.info()["last_index"]
            frames = [
                vote_req(1, victim.id, TOP, True),
                vote_req(1, victim.id, 1 << 62, True),
                append_req(1, victim.id, 0, TOP - 1, TOP - 1, 1),
                snapshot_req(1, victim.id, term, last + 1000, b"\x00junk-not-a-snapshot"),
                heartbeat(1, victim.id, term, TOP),
                timeout_now(1, victim.id, term + 5, victim.id),
            ]
            # One forged frame per link: a frame with impossible values closes its link, so
            # what follows it on the same link would never be read. Taken in: refused and
            # counted (now), or the term moved (before the fix).
            for f in frames:
                k = rejected(victim) + 1
                forge(victim, 1, [f], lambda v=victim, k=k: rejected(v) >= k or
                      v.info()["term"] != term)

        # The cluster is unharmed: one leader, small terms, writes and reads everywhere.
        leader = c.leader(timeout=30)
        for n in c.nodes.values():
            t = n.info()["term"]
            check(t < term + 10, "node %d's term went to %d (was %d)" % (n.id, t, term))
        check(leader.call("SET", "after", "2") == "OK", "SET after the attack")
        c.wait_caught_up(list(c.nodes.values()), timeout=30)
        for n in c.nodes.values():
            check(n.call("GET", "before") == b"1", "GET before on node %d" % n.id)
            check(n.call("GET", "after") == b"2", "GET after on node %d" % n.id)
            check(n.call("GET", "pwned") is None, "node %d serves a forged key" % n.id)

        # Each refusal was counted (INFO peer_msgs_rejected) and logged, rate-limited.
        for victim in (c.nodes[2], c.nodes[3]):
            check(rejected(victim) >= 6, "node %d counted %d refusals" %
                  (victim.id, rejected(victim)))
            with open(victim.log_path, "rb") as f:
                lines = [ln for ln in f.read().split(b"\n") if b"refused a " in ln]
            check(lines, "node %d logged no refusal" % victim.id)
            with open(victim.log_path, "rb") as f:
                downs = [ln for ln in f.read().split(b"\n")
                         if b"peer=1 state=down err=\"malformed or corrupt data\"" in ln]
            check(downs, "node %d did not close a link that sent impossible values" % victim.id)
            log("node %d refused %d; logged: %s" % (victim.id, rejected(victim),
                                                    lines[0].decode(errors="replace")))

        # Elections still work (a transfer needs the other voters to honour its vote).
        check(leader.call("AEGIS.TRANSFER", "3") == "OK", "transfer to node 3")
        wait_until(lambda: c.leader().id == 3, 20, "node 3 to lead")
        check(c.nodes[3].call("SET", "later", "3") == "OK", "SET on the new leader")
        for n in c.nodes.values():
            t = n.info()["term"]
            check(t < term + 10, "node %d's term went to %d" % (n.id, t))

        # SIGTERM still stops every node promptly (the raft thread is not spinning).
        for n in c.nodes.values():
            n.stop(timeout=10)
    return 0


if __name__ == "__main__":
    main(scenario)
