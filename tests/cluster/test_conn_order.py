# SPDX-License-Identifier: MIT
"""Scenario: each connection's commands take effect in the order it sent them, on the
leader and through a follower (docs/operations.md, "Consistency").

On three nodes, for the leader and then a follower, over one connection each:
- 200 rounds of a pipelined pair SET k<i> v<i> / GET k<i> (distinct keys): every GET
  answers the value its own SET wrote just before (read-your-writes; before the fix 85 of
  200 missed on the leader and 185 of 200 on a follower);
- then the same 200 pairs as one pipeline of 400 commands;
- SET pc 5 / INCR pc / GET pc pipelined answers +OK, :6, $1 6 (20 times, fresh keys);
- one key written and read alternately in one pipeline (SET 1, GET, SET 2, GET, INCR,
  GET, DEL, EXISTS, MSET, MGET): every read sees exactly the writes before it and none
  after it (a write never overtakes an earlier read of its connection);
- the same with inline commands (telnet style, quotes and escapes unescaped in place by the
  parser): a held command runs as it was parsed, not parsed again from rewritten bytes;
- monotonic reads: while another connection INCRs a counter through the leader, 20
  pipelines of 50 GETs of it through the follower never see the value go down, within a
  pipeline or from one pipeline to the next.
redis-cli (when installed) reads back through the follower what a pipelined write set.
"""
import os
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aegis_cluster import Cluster, RespError, check, log, main  # noqa: E402

ROUNDS = 200


def pairs_one_by_one(node, tag):
    misses = []
    with node.conn() as c:
        for i in range(ROUNDS):
            k, v = "%s:rw:%d" % (tag, i), "v%d" % i
            r = c.pipeline([("SET", k, v), ("GET", k)])
            if r[0] != "OK" or r[1] != v.encode():
                misses.append((k, r))
    log("node %d: %d of %d pipelined SET/GET pairs missed their own write" %
        (node.id, len(misses), ROUNDS))
    check(not misses, "node %d: %d of %d pipelined SET k v / GET k answered wrong, e.g. %s" %
          (node.id, len(misses), ROUNDS, misses[:3]))


def pairs_one_pipeline(node, tag):
    cmds = []
    for i in range(ROUNDS):
        k = "%s:rwp:%d" % (tag, i)
        cmds += [("SET", k, "w%d" % i), ("GET", k)]
    with node.conn() as c:
        r = c.pipeline(cmds)
    bad = [(i, r[2 * i], r[2 * i + 1]) for i in range(ROUNDS)
           if r[2 * i] != "OK" or r[2 * i + 1] != ("w%d" % i).encode()]
    check(not bad, "node %d: one pipeline of %d SET/GET pairs: %d wrong, e.g. %s" %
          (node.id, ROUNDS, len(bad), bad[:3]))


def set_incr_get(node, tag):
    with node.conn() as c:
        for i in range(20):
            k = "%s:pc:%d" % (tag, i)
            r = c.pipeline([("SET", k, "5"), ("INCR", k), ("GET", k)])
            check(r == ["OK", 6, b"6"], "node %d: SET %s 5 / INCR / GET answered %r" %
                  (node.id, k, r))


def alternate(node, tag):
    with node.conn() as c:
        for i in range(30):
            k = "%s:alt:%d" % (tag, i)
            r = c.pipeline([("SET", k, "1"), ("GET", k), ("SET", k, "2"), ("GET", k),
                            ("INCR", k), ("GET", k), ("DEL", k), ("EXISTS", k),
                            ("MSET", k, "x", k + ":b", "y"), ("MGET", k, k + ":b"),
                            ("SET", k, "z"), ("GET", k)])
            want = ["OK", b"1", "OK", b"2", 3, b"3", 1, 0, "OK", [b"x", b"y"], "OK", b"z"]
            check(r == want, "node %d: alternating pipeline on %s answered %r, want %r" %
                  (node.id, k, r, want))


def inline(node, tag):
    k = "%s:inl" % tag
    raw = ('SET %s 1\r\nGET %s\r\nSET %s "a b\\x41"\r\nGET %s\r\nINCR %s:c\r\n'
           'GET %s:c\r\nDEL %s\r\nEXISTS %s\r\n' % ((k,) * 8)).encode()
    with node.conn() as c:
        c.send_raw(raw)
        r = [c.read_reply() for _ in range(8)]
    want = ["OK", b"1", "OK", b"a bA", 1, b"1", 1, 0]
    check(r == want, "node %d: inline pipeline answered %r, want %r" % (node.id, r, want))


def monotonic(leader, follower, tag):
    k = "%s:mono" % tag
    leader.call("SET", k, "0")
    stop = threading.Event()
    errors = []

    def incr():
        try:
            with leader.conn() as c:
                while not stop.is_set():
                    c.pipeline([("INCR", k)] * 8)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    t = threading.Thread(target=incr, daemon=True)
    t.start()
    last = -1
    try:
        with follower.conn() as c:
            for _ in range(20):
                vals = c.pipeline([("GET", k)] * 50)
                check(not any(isinstance(v, RespError) for v in vals),
                      "GET through node %d failed: %r" % (follower.id, vals))
                nums = [int(v) for v in vals]
                for v in nums:
                    check(v >= last, "node %d: reads on one connection went back from %d "
                          "to %d" % (follower.id, last, v))
                    last = v
    finally:
        stop.set()
        t.join(10)
    check(not errors, "the INCR connection failed: %r" % errors)
    log("monotonic reads through node %d up to %d" % (follower.id, last))


def redis_cli(opts, node, tag):
    if not opts.redis_cli:
        log("redis-cli not installed: its check is skipped")
        return
    k = "%s:cli" % tag
    with node.conn() as c:
        c.pipeline([("SET", k, "a"), ("SET", k, "b")])
    r = subprocess.run([opts.redis_cli, "-p", str(node.client_port), "GET", k],
                       capture_output=True, timeout=30)
    check(r.stdout.decode().strip() == "b", "redis-cli GET %s through node %d: %r" %
          (k, node.id, r.stdout))


def scenario(opts):
    with Cluster(opts, 3, name="conn-order") as c:
        c.start()
        leader = c.leader()
        follower = c.followers(leader)[0]
        for node, tag in ((leader, "L"), (follower, "F")):
            pairs_one_by_one(node, tag)
            pairs_one_pipeline(node, tag)
            set_incr_get(node, tag)
            alternate(node, tag)
            inline(node, tag)
            log("node %d (%s): every pipelined read saw exactly its connection's earlier "
                "writes" % (node.id, "leader" if node is leader else "follower"))
        monotonic(leader, follower, "M")
        redis_cli(opts, follower, "F")
        for n in c.nodes.values():
            n.stop()
    return 0


if __name__ == "__main__":
    main(scenario)
