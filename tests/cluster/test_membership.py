# SPDX-License-Identifier: MIT
"""Scenario 5: grow the cluster 3 -> 5 and shrink it back to 3 while writes go on.

Nodes 1-3 start as the group; 3000 keys are written first so that a new member has a log
to catch up on. Two writers run through the whole scenario, through members only. Nodes 4
and 5 start with --join and the full --peers list (1-5, themselves included); AEGIS.ADD
id host:port on the leader adds each as a learner and answers +OK once it has caught up and
been promoted to voter. Checks after growing: every node lists five voters, the new nodes
are followers of the same leader and have applied the commit index.

Then AEGIS.REMOVE on the leader takes out one original follower and then the leader
itself. Checks after shrinking: the three remaining nodes (two of them new) elect a leader
among themselves, which lists exactly them; over the next 1.5 s of writes the removed
nodes' commit index does not move (they no longer receive appends), the old leader no
longer says it leads, the group's commit index moves on and the new leader keeps its
term (the removed nodes do not disrupt the group). Finally every acknowledged write reads
back through each remaining member, no -TRYAGAIN write is present, and the removed nodes
exit cleanly on SIGTERM.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aegis_cluster import (Cluster, RespError, Writer, check, fill, log, main,  # noqa: E402
                           verify_data, verify_writes, wait_until)


def admin(leader, *args, timeout=60.0):
    t0 = time.monotonic()
    try:
        r = leader.call(*args, timeout=timeout)
    except RespError as e:
        raise AssertionError("%s on node %d: -%s" % (" ".join(map(str, args)), leader.id,
                                                     e.msg))
    log("%s on leader %d: %r after %.2fs" % (" ".join(map(str, args)), leader.id, r,
                                             time.monotonic() - t0))
    check(r == "OK", "%s answered %r" % (args, r))


def scenario(opts):
    with Cluster(opts, 3, name="membership") as c:
        c.add_node(4)
        c.add_node(5)
        c.start(ids=[1, 2, 3], peer_ids=[1, 2, 3])
        leader = c.leader()
        term = leader.info()["term"]
        base = fill(leader, "pre", 3000)
        members = {1, 2, 3}

        def targets():
            return [c.nodes[i].client_port for i in sorted(members) if c.nodes[i].alive()]
        writers = [Writer("a", targets), Writer("b", lambda: targets()[::-1])]
        for w in writers:
            w.start()
        wait_until(lambda: all(len(w.acked) >= 100 for w in writers), 30, "writes flowing")

        for new_id in (4, 5):
            node = c.nodes[new_id]
            node.start(c.peers([1, 2, 3, 4, 5]), join=True)
            wait_until(node.ping, 20, "node %d to answer PING" % new_id)
            check(new_id not in leader.info()["member"], "node %d is a member before "
                  "AEGIS.ADD" % new_id)
            admin(leader, "AEGIS.ADD", new_id, node.peer_addr)
            members.add(new_id)
            linfo = leader.info()
            check(linfo["member"].get(new_id, {}).get("voter") == 1,
                  "after AEGIS.ADD %d the leader lists %s" % (new_id, linfo["member"]))
            c.wait_caught_up([node], timeout=30, index=linfo["commit_index"])
            ninfo = node.info()
            check(ninfo["role"] == "follower" and ninfo["leader_id"] == leader.id,
                  "node %d is %s with leader %d" % (new_id, ninfo["role"], ninfo["leader_id"]))
            verify_data(node, base)

        wait_until(lambda: all(sorted(c.nodes[i].info()["member"]) == [1, 2, 3, 4, 5] and
                               all(m["voter"] == 1 for m in c.nodes[i].info()["member"].values())
                               for i in members), 30, "every node to list five voters")
        log("grown to five voters")
        wait_until(lambda: sum(len(w.acked) for w in writers) >= 1000, 30, "writes at five")

        # Shrink: first an original follower, then the leader itself (it steps down and
        # the remaining three, two of them new, elect one of their own).
        follower = min(i for i in (1, 2, 3) if i != leader.id)
        victims = [follower, leader.id]
        for v in victims:
            members.discard(v)  # Writers move off the victims first.
        time.sleep(0.2)
        for v in victims:
            admin(leader, "AEGIS.REMOVE", v)
        remaining = [c.nodes[i] for i in sorted(members)]
        new = c.leader(among=remaining, timeout=30)
        check(new.id in members, "node %d leads after the removals" % new.id)
        wait_until(lambda: sorted(new.info()["member"]) == sorted(members), 30,
                   "the new leader to list members %s" % sorted(members))
        term = new.info()["term"]
        log("removed %s; node %d leads %s in term %d" % (victims, new.id, sorted(members),
                                                        term))

        # Removed nodes stop taking part: their commit index freezes while the group's
        # moves on, and they do not disturb the new leader.
        time.sleep(0.5)
        frozen = {v: c.nodes[v].info()["commit_index"] for v in victims}
        commit0 = new.info()["commit_index"]
        time.sleep(1.5)
        linfo = new.info()
        check(linfo["commit_index"] > commit0 + 50, "the group committed only %d entries "
              "after the removal" % (linfo["commit_index"] - commit0))
        for v in victims:
            vi = c.nodes[v].info()
            check(vi["commit_index"] == frozen[v], "removed node %d still advances its commit "
                  "index (%d -> %d)" % (v, frozen[v], vi["commit_index"]))
            check(vi["role"] != "leader", "removed node %d still says it leads" % v)
            log("removed node %d: role %s, commit %d frozen, members listed %s" %
                (v, vi["role"], vi["commit_index"], sorted(vi["member"])))
        check(linfo["role"] == "leader" and linfo["term"] == term,
              "leader %d is %s in term %d (was leader in term %d)" %
              (new.id, linfo["role"], linfo["term"], term))

        for w in writers:
            w.finish()
        c.wait_caught_up(remaining, timeout=30, index=new.info()["commit_index"])
        for n in remaining:
            check(sorted(n.info()["member"]) == sorted(members), "node %d lists members %s"
                  % (n.id, sorted(n.info()["member"])))
            verify_writes(n, writers)
            verify_data(n, base)
        for v in victims:
            c.nodes[v].stop()
        for n in remaining:
            n.stop()
    return 0


if __name__ == "__main__":
    main(scenario)
