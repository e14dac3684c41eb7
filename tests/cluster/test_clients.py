# SPDX-License-Identifier: MIT
"""Scenario 1: three aegisd; redis-cli and redis-benchmark against the leader and against
a follower get correct answers.

redis-cli runs every data command (SET GET DEL EXISTS INCR INCRBY DECR DECRBY CAS MGET
MSET) through the leader and through a follower; each output is compared with what Redis
prints. A write through one node is read back through the others (a follower forwards
writes and serves reads by ReadIndex, so the read after a write's reply must see it).
INCR of a non-integer must give Redis' error and change nothing. INFO must have a
"# Replication" section with role, node_id, leader_id, term, commit_index, last_applied
and one member line per member. redis-benchmark (SET GET INCR MSET, pipelined and not)
must run cleanly against both, and the INCR counter it hammers must end at exactly the
number of INCRs it sent, on every node.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aegis_cluster import (SKIP, Cluster, check, log, main)  # noqa: E402


def redis_cli(opts, node, *args):
    r = subprocess.run([opts.redis_cli, "--no-raw", "-h", "127.0.0.1", "-p",
                        str(node.client_port)] + [str(a) for a in args],
                       capture_output=True, timeout=30)
    return r.stdout.decode().rstrip("\n")


def expect(opts, node, args, want):
    got = redis_cli(opts, node, *args)
    check(got == want, "node %d: redis-cli %s printed %r, expected %r" %
          (node.id, " ".join(str(a) for a in args), got, want))


def data_commands(opts, via, others, p):
    """Every data command through @via; writes read back through @others too."""
    e = lambda args, want: expect(opts, via, args, want)  # noqa: E731
    e(["PING"], "PONG")
    e(["ECHO", "hi"], '"hi"')
    e(["SET", p + "k", "hello world"], "OK")
    for o in others:
        expect(opts, o, ["GET", p + "k"], '"hello world"')
    e(["GET", p + "missing"], "(nil)")
    e(["EXISTS", p + "k", p + "missing", p + "k"], "(integer) 2")
    e(["INCR", p + "n"], "(integer) 1")
    e(["INCRBY", p + "n", "41"], "(integer) 42")
    e(["DECR", p + "n"], "(integer) 41")
    e(["DECRBY", p + "n", "50"], "(integer) -9")
    e(["INCRBY", p + "n", "-1"], "(integer) -10")
    for o in others:
        expect(opts, o, ["GET", p + "n"], '"-10"')
    # INCR of a non-integer: Redis' error, and nothing changes.
    e(["SET", p + "s", "abc"], "OK")
    for cmd in (["INCR", p + "s"], ["DECR", p + "s"], ["INCRBY", p + "s", "2"],
                ["DECRBY", p + "s", "2"]):
        e(cmd, "(error) ERR value is not an integer or out of range")
    e(["INCRBY", p + "n", "x"], "(error) ERR value is not an integer or out of range")
    e(["SET", p + "big", "9223372036854775807"], "OK")
    e(["INCR", p + "big"], "(error) ERR increment or decrement would overflow")
    for o in [via] + others:
        expect(opts, o, ["GET", p + "s"], '"abc"')
        expect(opts, o, ["GET", p + "n"], '"-10"')
        expect(opts, o, ["GET", p + "big"], '"9223372036854775807"')
    # CAS key expected new: :1 when it swapped, :0 when not.
    e(["CAS", p + "k", "hello world", "v2"], "(integer) 1")
    e(["CAS", p + "k", "hello world", "v3"], "(integer) 0")
    for o in [via] + others:
        expect(opts, o, ["GET", p + "k"], '"v2"')
    # MSET / MGET.
    e(["MSET", p + "a", "1", p + "b", "2", p + "c", "3"], "OK")
    for o in [via] + others:
        expect(opts, o, ["MGET", p + "a", p + "b", p + "missing", p + "c"],
               '1) "1"\n2) "2"\n3) (nil)\n4) "3"')
    e(["MSET", p + "a"], "(error) ERR wrong number of arguments for 'mset' command")
    # DEL counts the keys it removed.
    e(["DEL", p + "a", p + "b", p + "missing"], "(integer) 2")
    for o in [via] + others:
        expect(opts, o, ["EXISTS", p + "a", p + "b", p + "c"], "(integer) 1")
        expect(opts, o, ["GET", p + "a"], "(nil)")
    # Redis' errors for bad arity and unknown commands.
    e(["GET"], "(error) ERR wrong number of arguments for 'get' command")
    got = redis_cli(opts, via, "NOSUCHCMD", "x")
    check(got.startswith("(error) ERR unknown command"), "unknown command gave %r" % got)


def check_info(opts, node, ids):
    out = subprocess.run([opts.redis_cli, "-p", str(node.client_port), "INFO"],
                         capture_output=True, timeout=30).stdout.decode()
    lines = [x.rstrip("\r") for x in out.splitlines()]
    check("# Replication" in lines, "node %d: INFO has no '# Replication' section:\n%s" %
          (node.id, out))
    sec = lines[lines.index("# Replication") + 1:]
    sec = sec[:sec.index("")] if "" in sec else sec
    kv = dict(x.split(":", 1) for x in sec if ":" in x)
    for k in ("role", "node_id", "leader_id", "term", "commit_index", "last_applied"):
        check(k in kv, "node %d: INFO replication lacks %s:\n%s" % (node.id, k, out))
    check(kv["role"] in ("leader", "follower"), "node %d: role %r" % (node.id, kv["role"]))
    check(kv["node_id"] == str(node.id), "node %d: node_id %r" % (node.id, kv["node_id"]))
    for i in ids:
        check(("member_%d" % i) in kv, "node %d: INFO replication has no member_%d line:\n%s"
              % (node.id, i, out))
    return kv


def benchmark(opts, node, tests, n, pipeline):
    args = [opts.redis_benchmark, "-h", "127.0.0.1", "-p", str(node.client_port), "-q",
            "-t", tests, "-n", str(n), "-c", "8", "-P", str(pipeline)]
    r = subprocess.run(args, capture_output=True, timeout=60)
    out = (r.stdout + r.stderr).decode(errors="replace")
    check(r.returncode == 0, "redis-benchmark against node %d exited %d:\n%s" %
          (node.id, r.returncode, out))
    for t in tests.split(","):
        check(any(line.lstrip().upper().startswith(t.upper()) and "requests per second" in line
                  for line in out.replace("\r", "\n").splitlines()),
              "redis-benchmark -t %s against node %d printed no result for %s:\n%s" %
              (tests, node.id, t, out))
    check("error" not in out.lower(), "redis-benchmark against node %d reported errors:\n%s"
          % (node.id, out))
    # CONFIG GET answers save and appendonly (it used to answer an empty array).
    check("could not fetch server config" not in out.lower(),
          "redis-benchmark could not read CONFIG from node %d:\n%s" % (node.id, out))
    log("redis-benchmark -t %s -n %d -P %d against node %d: ok" % (tests, n, pipeline, node.id))


def scenario(opts):
    if not (opts.redis_cli and opts.redis_benchmark):
        log("redis-cli or redis-benchmark not found (Debian package redis-tools): skipped")
        return SKIP
    with Cluster(opts, 3, name="clients") as c:
        c.start()
        leader = c.leader()
        follower = c.followers(leader)[0]
        log("leader %d, follower %d" % (leader.id, follower.id))
        nodes = list(c.nodes.values())
        data_commands(opts, leader, [n for n in nodes if n is not leader], "L.")
        log("data commands through the leader: ok")
        data_commands(opts, follower, [n for n in nodes if n is not follower], "F.")
        log("data commands through a follower: ok")
        for n in nodes:
            kv = check_info(opts, n, [1, 2, 3])
            check(kv["leader_id"] == str(leader.id), "node %d says leader %s, not %d" %
                  (n.id, kv["leader_id"], leader.id))
        log("INFO replication on every node: ok")

        incrs = 0
        for node in (leader, follower):
            benchmark(opts, node, "set,get,incr,mset", 2000, 1)
            benchmark(opts, node, "set,get,incr", 4000, 16)
            incrs += 2000 + 4000
        # redis-benchmark without -r uses the literal keys below.
        payload = redis_cli(opts, leader, "GET", "key:__rand_int__")
        check(len(payload) == 5 and payload[0] == '"', "SET payload %r" % payload)
        for n in nodes:
            expect(opts, n, ["GET", "counter:__rand_int__"], '"%d"' % incrs)
            expect(opts, n, ["GET", "key:__rand_int__"], payload)
        log("benchmark INCR counter = %d on every node" % incrs)
        for n in nodes:
            n.stop()
    return 0


if __name__ == "__main__":
    main(scenario)
