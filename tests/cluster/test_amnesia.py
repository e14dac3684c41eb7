# SPDX-License-Identifier: MIT
"""Issue 11, amnesia: a follower killed, its data directory deleted, and restarted with
the same flags must not cost an acknowledged write.

Nodes 1-3 start as a group. A SET writer and an INCR writer run through every node while
a follower is killed with SIGKILL, its data directory deleted, and the follower restarted
with exactly the flags it had (no --join). Checks: the restarted node exits non-zero
within 20 s, its log names the cause and the remedy (--join); every acknowledged SET reads
back with its value, and every counter is at least the last value an acknowledged INCR
returned, on both surviving nodes, after more writes went through them.

Then the operator's remedy: AEGIS.REMOVE on the leader, the node started with --join on
the same (now empty) directory, AEGIS.ADD: it answers +OK once the node caught up and was
promoted, and the node reads back every acknowledged write.

On main before the guard the wiped node came back with term 0, voted, and helped elect a
node lacking committed entries (thousands of acknowledged SETs and INCRs lost); here the
kill lands while writes flow, so that the other follower's log is behind the leader's.
"""
import os
import shutil
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aegis_cluster import (Cluster, Conn, RespError, Writer, check, log, main,  # noqa: E402
                           read_all, verify_writes, wait_until)

COUNTERS = 8


class IncrWriter(threading.Thread):
    """INCRs counters ctr:0..COUNTERS-1 in turn, pipelined, through the given nodes;
    records the highest value an acknowledged INCR returned per counter."""

    def __init__(self, ports_fn, window=8):
        super().__init__(daemon=True)
        self.ports_fn = ports_fn
        self.window = window
        self.acked = {}      # counter -> highest value acknowledged
        self.count = 0
        self.other = []
        self.stop_flag = threading.Event()

    def run(self):
        conn, turn, k = None, 0, 0
        while not self.stop_flag.is_set():
            if conn is None:
                ports = self.ports_fn()
                try:
                    conn = Conn(ports[turn % len(ports)], timeout=10.0)
                except (OSError, RespError):
                    time.sleep(0.05)
                    continue
                finally:
                    turn += 1
            keys = ["ctr:%d" % ((k + i) % COUNTERS) for i in range(self.window)]
            k += self.window
            replies = []
            try:
                conn.send(*[("INCR", key) for key in keys])
                for _ in keys:
                    replies.append(conn.read_reply())
            except (OSError, ValueError):
                conn.close()
                conn = None
            for key, r in zip(keys, replies):
                if isinstance(r, int):
                    self.count += 1
                    self.acked[key] = max(self.acked.get(key, 0), r)
                elif not isinstance(r, RespError):
                    self.other.append((key, r))
            if replies and all(isinstance(r, RespError) for r in replies):
                time.sleep(0.02)

    def finish(self):
        self.stop_flag.set()
        self.join(30)
        check(not self.is_alive(), "INCR writer did not stop")
        check(not self.other, "INCR writer got unexpected replies: %s" % self.other[:5])
        log("INCR writer: %d acknowledged" % self.count)


def verify_counters(node, iw):
    keys = sorted(iw.acked)
    vals = read_all(node, keys)
    low = [(k, v, iw.acked[k]) for k, v in zip(keys, vals)
           if v is None or int(v) < iw.acked[k]]
    check(not low, "node %d: counters below an acknowledged INCR (key, got, acked): %s" %
          (node.id, low))
    log("node %d: %d counters at or above their acknowledged INCRs" % (node.id, len(keys)))


def admin(leader, *args, timeout=60.0):
    try:
        r = leader.call(*args, timeout=timeout)
    except RespError as e:
        raise AssertionError("%s on node %d: -%s" % (" ".join(map(str, args)), leader.id,
                                                     e.msg))
    check(r == "OK", "%s answered %r" % (args, r))
    log("%s on leader %d: OK" % (" ".join(map(str, args)), leader.id))


def scenario(opts):
    with Cluster(opts, 3, name="amnesia") as c:
        c.start()
        leader = c.leader()
        members = {1, 2, 3}

        def targets():
            return [c.nodes[i].client_port for i in sorted(members) if c.nodes[i].alive()]
        sw = Writer("s", targets)
        iw = IncrWriter(lambda: targets()[::-1])
        sw.start()
        iw.start()
        wait_until(lambda: len(sw.acked) >= 2000 and iw.count >= 500, 60, "writes flowing")

        victim = c.nodes[min(i for i in members if i != leader.id)]
        members.discard(victim.id)
        victim.kill()
        shutil.rmtree(victim.data_dir)
        log("node %d: data directory %s deleted" % (victim.id, victim.data_dir))
        victim.start(c.peers())  # The same flags, no --join.
        wait_until(lambda: not victim.alive(), 20, "the wiped node %d to exit" % victim.id)
        rc = victim.proc.returncode
        check(rc != 0, "the wiped node exited with status %d" % rc)
        with open(victim.log_path, "rb") as f:
            text = f.read().decode(errors="replace")
        check("was not started with --join" in text and "AEGIS.REMOVE %d" % victim.id in text,
              "the wiped node's log does not say what happened:\n%s" % text[-2000:])
        log("node %d exited with status %d and says why" % (victim.id, rc))

        # The group goes on with the two others; nothing acknowledged is lost.
        base_s, base_i = len(sw.acked), iw.count
        wait_until(lambda: len(sw.acked) >= base_s + 1000 and iw.count >= base_i + 200, 60,
                   "writes after the wiped node's exit")
        sw.finish()
        iw.finish()
        survivors = [c.nodes[i] for i in sorted(members)]
        leader = c.leader(among=survivors)
        c.wait_caught_up(survivors, timeout=30)
        for n in survivors:
            verify_writes(n, [sw])
            verify_counters(n, iw)

        # The remedy the log names: remove, start with --join, add back.
        admin(leader, "AEGIS.REMOVE", victim.id)
        victim.start(c.peers(), join=True)
        wait_until(victim.ping, 20, "node %d to answer PING" % victim.id)
        admin(leader, "AEGIS.ADD", victim.id, victim.peer_addr)
        members.add(victim.id)
        wait_until(lambda: leader.info()["member"].get(victim.id, {}).get("voter") == 1, 20,
                   "node %d to be a voter again" % victim.id)
        c.wait_caught_up([victim], timeout=60, index=leader.info()["commit_index"])
        verify_writes(victim, [sw])
        verify_counters(victim, iw)
        for n in c.running():
            n.stop()
    return 0


if __name__ == "__main__":
    main(scenario)
