# SPDX-License-Identifier: MIT
"""Scenario: admin commands sent to a follower, transfer refusals, runtime members' addresses.

Nodes 1-3 form the group (each started with --peers 1-3 only); node 4 starts with --join.
- AEGIS.ADD 4 <addr> sent to a follower is forwarded to the leader and answers +OK once
  node 4 is a voter (before: -TRYAGAIN "no leader known" while INFO named the leader).
- Every node, node 4 included, lists member 4 with its peer address in INFO replication
  and AEGIS.MEMBERS (before: addr=? on the nodes that did not have it in --peers), and
  every member's address is known on every node.
- AEGIS.TRANSFER to a node that is not a member answers an error, through the leader and
  through a follower (before: +OK while the core refused); AEGIS.TRANSFER <id> sent to a
  follower moves leadership to <id>.
- AEGIS.SNAPSHOT sent to a follower makes that follower take a snapshot (it is a per-node
  command, not forwarded).
- AEGIS.REMOVE 4 sent to a follower is forwarded and answers +OK; every node then lists
  the three original members.
redis-cli (when installed) sends one of the forwarded commands.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aegis_cluster import Cluster, RespError, check, log, main, wait_until  # noqa: E402


def call(node, *args, timeout=90.0):
    try:
        return node.call(*args, timeout=timeout)
    except RespError as e:
        return e


def members(node):
    with node.conn() as c:
        text = c.call("AEGIS.MEMBERS").decode()
    out = {}
    for line in text.split("\r\n"):
        if line.startswith("member_"):
            fields = dict(kv.split("=", 1) for kv in line.split(":", 1)[1].split(","))
            out[int(fields["id"])] = fields
    return out


def scenario(opts):
    with Cluster(opts, 3, name="admin-follower") as c:
        new = c.add_node(4)
        c.start(ids=[1, 2, 3], peer_ids=[1, 2, 3])
        leader = c.leader()
        f1, f2 = c.followers(leader)[:2]
        check(f1.info()["leader_id"] == leader.id, "follower %d does not name the leader" %
              f1.id)
        new.start(c.peers([1, 2, 3, 4]), join=True)
        wait_until(new.ping, 20, "node 4 to answer PING")

        r = call(f1, "AEGIS.ADD", 4, new.peer_addr)
        log("AEGIS.ADD 4 %s through follower %d: %r" % (new.peer_addr, f1.id, r))
        check(r == "OK", "AEGIS.ADD through follower %d answered %r" % (f1.id, r))
        want = {i: c.nodes[i].peer_addr for i in (1, 2, 3, 4)}

        def addrs_everywhere():
            for n in c.nodes.values():
                m = members(n)
                if sorted(m) != [1, 2, 3, 4] or m[4]["voter"] != "1":
                    return False
                got = {i: m[i]["addr"] for i in m}
                if got != want:
                    log("node %d lists addresses %s" % (n.id, got))
                    return False
                info = n.info()["member"]
                if {i: info[i]["addr"] for i in info} != want:
                    return False
            return True
        wait_until(addrs_everywhere, 30, "every node to list 4 voters with their addresses",
                   interval=0.5)
        log("every node lists members 1-4 with their addresses %s" % want)

        for via in (leader, f2):
            r = call(via, "AEGIS.TRANSFER", 9)
            check(isinstance(r, RespError) and r.msg.startswith("ERR"),
                  "AEGIS.TRANSFER 9 (not a member) through node %d answered %r" % (via.id, r))
            log("AEGIS.TRANSFER 9 through node %d: -%s" % (via.id, r.msg))
        check(c.leader().id == leader.id, "a refused transfer moved leadership")

        term = leader.info()["term"]
        r = call(f1, "AEGIS.TRANSFER", f2.id)
        check(r == "OK", "AEGIS.TRANSFER %d through follower %d answered %r" %
              (f2.id, f1.id, r))
        wait_until(lambda: c.leader(timeout=20).id == f2.id, 20,
                   "leadership to move to node %d" % f2.id)
        check(f2.info()["term"] > term, "the transfer did not start a new term")
        log("AEGIS.TRANSFER %d through follower %d: node %d leads" % (f2.id, f1.id, f2.id))
        leader = f2
        followers = c.followers(leader)

        snap = followers[0]
        applied = snap.info()["last_applied"]
        check(call(snap, "AEGIS.SNAPSHOT") == "OK", "AEGIS.SNAPSHOT on node %d" % snap.id)
        wait_until(lambda: snap.info()["snapshot_index"] >= applied, 20,
                   "node %d to take a snapshot at or past %d" % (snap.id, applied))

        via = next(n for n in followers if n.id != 4)
        if opts.redis_cli:
            out = subprocess.run([opts.redis_cli, "-p", str(via.client_port), "AEGIS.REMOVE",
                                  "4"], capture_output=True, timeout=60)
            r = out.stdout.decode().strip()
        else:
            r = call(via, "AEGIS.REMOVE", 4)
        check(r == "OK", "AEGIS.REMOVE 4 through follower %d answered %r" % (via.id, r))
        wait_until(lambda: all(sorted(members(c.nodes[i])) == [1, 2, 3] for i in (1, 2, 3)),
                   30, "nodes 1-3 to list members 1-3")
        log("AEGIS.REMOVE 4 through follower %d: members 1-3 everywhere" % via.id)
        for i in (1, 2, 3):
            c.nodes[i].stop()
        new.stop()
    return 0


if __name__ == "__main__":
    main(scenario)
