# SPDX-License-Identifier: MIT
"""Scenario: the admin side and the password, on three nodes started with --requirepass-file.

- Without AUTH every command but AUTH/QUIT answers -NOAUTH; a wrong password answers
  -WRONGPASS and stays unauthenticated; the right one answers +OK (redis-cli -a works too).
- aegis-cli --password status prints one row per member (id, address, role, term, commit,
  applied, lag) with exactly one leader and the others followers in the same term, and,
  once writes are applied everywhere, the same commit and applied index on every row.
- AEGIS.MEMBERS through a follower lists the three members; aegis-cli snapshot makes the
  node it talks to take a snapshot (its snapshot_index reaches the index it had applied
  before the command).
- aegis-cli transfer ID moves leadership to that follower (higher term, everyone agrees);
  writes through the old leader are then forwarded and acknowledged; every acknowledged
  write of a writer running throughout reads back through every node.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aegis_cluster import (Cluster, Conn, RespError, Writer, check, fill, log,  # noqa: E402
                           main, verify_data, verify_writes, wait_until)

PASSWORD = "s3cret pass"


def cli(opts, c, *args, port=None):
    nodes = ",".join("127.0.0.1:%d" % n.client_port for n in c.nodes.values())
    cmd = [opts.aegis_cli, "--password", PASSWORD, "--nodes", nodes]
    if port is not None:
        cmd += ["--host", "127.0.0.1", "--port", str(port)]
    r = subprocess.run(cmd + [str(a) for a in args], capture_output=True, timeout=30)
    out = r.stdout.decode(errors="replace").replace("\r", "")
    check(r.returncode == 0, "aegis-cli %s exited %d:\n%s%s" %
          (" ".join(map(str, args)), r.returncode, out, r.stderr.decode(errors="replace")))
    return out


def status_rows(opts, c):
    out = cli(opts, c, "status")
    lines = [x.split() for x in out.splitlines() if x.strip()]
    check(lines and lines[0][:3] == ["id", "address", "role"],
          "aegis-cli status header: %r" % out)
    rows = {}
    for f in lines[1:]:
        check(len(f) >= 8, "aegis-cli status row %r" % (f,))
        rows[int(f[0])] = {"addr": f[1], "role": f[2], "term": int(f[3]),
                           "commit": int(f[5]), "applied": int(f[6])}
    return rows, out


def auth_checks(opts, node):
    with Conn(node.client_port) as conn:
        for cmd in (("GET", "k"), ("SET", "k", "v"), ("INFO",), ("AEGIS.MEMBERS",)):
            r = conn.send(cmd) or conn.read_reply()
            check(isinstance(r, RespError) and r.msg.startswith("NOAUTH"),
                  "node %d: %s before AUTH answered %r" % (node.id, cmd[0], r))
        conn.send(("AUTH", "wrong"))
        r = conn.read_reply()
        check(isinstance(r, RespError) and r.msg.startswith("WRONGPASS"),
              "wrong password answered %r" % (r,))
        conn.send(("GET", "k"))
        r = conn.read_reply()
        check(isinstance(r, RespError) and r.msg.startswith("NOAUTH"),
              "GET after a wrong password answered %r" % (r,))
        check(conn.call("AUTH", PASSWORD) == "OK", "AUTH with the password")
        check(conn.call("SET", "auth:%d" % node.id, "ok") == "OK", "SET after AUTH")
    if opts.redis_cli:
        r = subprocess.run([opts.redis_cli, "--no-auth-warning", "-a", PASSWORD, "-p",
                            str(node.client_port), "GET", "auth:%d" % node.id],
                           capture_output=True, timeout=30)
        check(r.stdout.decode().strip() == "ok", "redis-cli -a: %r" % r.stdout)
    log("node %d: NOAUTH before AUTH, WRONGPASS, then AUTH ok" % node.id)


def scenario(opts):
    if not opts.aegis_cli:
        log("aegis-cli not given: skipped")
        return 77
    with Cluster(opts, 3, name="admin", password=PASSWORD) as c:
        c.start()
        leader = c.leader()
        for n in c.nodes.values():
            auth_checks(opts, n)
        data = fill(leader, "adm", 500)
        w = Writer("aw", lambda: [n.client_port for n in c.running()], password=PASSWORD)
        w.start()

        rows, out = status_rows(opts, c)
        check(sorted(rows) == [1, 2, 3], "aegis-cli status rows %s:\n%s" % (sorted(rows), out))
        roles = sorted(r["role"] for r in rows.values())
        check(roles == ["follower", "follower", "leader"], "roles %s:\n%s" % (roles, out))
        check(rows[leader.id]["role"] == "leader", "status names another leader:\n%s" % out)
        check(len({r["term"] for r in rows.values()}) == 1, "terms differ:\n%s" % out)
        for i, n in c.nodes.items():
            check(rows[i]["addr"].endswith(":%d" % n.client_port) or
                  rows[i]["addr"].endswith(":%d" % n.peer_port),
                  "row %d address %s" % (i, rows[i]["addr"]))
        log("aegis-cli status:\n%s" % out.rstrip())

        follower = c.followers(leader)[0]
        members = parse_members(follower)
        check(members == [1, 2, 3], "AEGIS.MEMBERS through node %d lists %s" %
              (follower.id, members))

        applied = follower.info()["last_applied"]
        cli(opts, c, "snapshot", port=follower.client_port)
        wait_until(lambda: follower.info()["snapshot_index"] >= applied, 20,
                   "node %d to take a snapshot at or past %d" % (follower.id, applied))
        log("aegis-cli snapshot: node %d snapshot_index %d" %
            (follower.id, follower.info()["snapshot_index"]))

        term = leader.info()["term"]
        cli(opts, c, "transfer", follower.id, port=leader.client_port)
        new = wait_until(lambda: (lambda ld: ld if ld.id == follower.id else None)(
            c.leader(timeout=20)), 20, "leadership to move to node %d" % follower.id)
        check(new.info()["term"] > term, "transfer did not start a new term")
        log("aegis-cli transfer %d: node %d leads in term %d" %
            (follower.id, new.id, new.info()["term"]))
        data.update(fill(leader, "after", 300))  # Through the old leader: forwarded.
        time.sleep(0.3)
        w.finish()
        index = new.info()["commit_index"]
        c.wait_caught_up(list(c.nodes.values()), index=index)
        rows, out = status_rows(opts, c)
        check(all(r["applied"] >= index for r in rows.values()),
              "aegis-cli status after catch-up:\n%s" % out)
        for n in c.nodes.values():
            verify_data(n, data)
            verify_writes(n, [w])
        for n in c.nodes.values():
            n.stop()
    return 0


def parse_members(node):
    with node.conn() as conn:
        text = conn.call("AEGIS.MEMBERS").decode()
    return sorted(int(line.split(":", 1)[0][len("member_"):])
                  for line in text.split("\r\n") if line.startswith("member_"))



if __name__ == "__main__":
    main(scenario)
