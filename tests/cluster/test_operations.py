# SPDX-License-Identifier: MIT
"""Scenario: day-two operations basics (issue 18), on three nodes.

- aegisd --version and aegis-cli --version print "PROGRAM VERSION (commit C)" and exit 0;
  INFO server's aegis_version and aegis_git_sha1 on every node are that version and commit.
- DBSIZE (redis-cli when installed) answers 0 on an empty store, N after N SETs of
  distinct keys, the same after overwriting one, N-1 after a DEL; through a follower too.
- SIGHUP does not stop aegisd: the node logs a "sighup" event, still answers
  PING, and later exits 0 on SIGTERM.
- aegis-cli status exits 0 with a leader, 1 once the remaining node knows no leader (no
  quorum) and 1 when every node is down; bad usage exits 2 on aegisd and aegis-cli.
"""
import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aegis_cluster import Cluster, check, fill, log, main, wait_until  # noqa: E402

KEYS = 137


def run(args):
    r = subprocess.run([str(a) for a in args], capture_output=True, timeout=30)
    return r.returncode, r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")


def version_of(prog, name):
    rc, out = run([prog, "--version"])
    check(rc == 0, "%s --version exited %d: %s" % (name, rc, out))
    m = re.match(r"^%s (\d+\.\d+\.\d+) \(commit ([0-9a-f]+|unknown)\)\n$" % re.escape(name), out)
    check(m is not None, "%s --version printed %r" % (name, out))
    return m.group(1), m.group(2)


def dbsize(opts, node):
    if opts.redis_cli:
        rc, out = run([opts.redis_cli, "-p", node.client_port, "DBSIZE"])
        check(rc == 0, "redis-cli DBSIZE exited %d: %s" % (rc, out))
        return int(out.strip())
    return node.call("DBSIZE")


def status(opts, c):
    nodes = ",".join("127.0.0.1:%d" % n.client_port for n in c.nodes.values())
    return run([opts.aegis_cli, "--nodes", nodes, "status"])


def scenario(opts):
    if not opts.aegis_cli:
        log("aegis-cli not given: skipped")
        return 77
    version, commit = version_of(opts.aegisd, "aegisd")
    check(version_of(opts.aegis_cli, "aegis-cli") == (version, commit),
          "aegis-cli and aegisd versions differ")
    for prog, args in ((opts.aegisd, ["--no-such-flag"]), (opts.aegis_cli, ["frobnicate"]),
                       (opts.aegis_cli, ["--no-such-flag", "status"])):
        rc, out = run([prog] + args)
        check(rc == 2, "%s %s exited %d (bad usage must be 2): %s" % (prog, args, rc, out))
    log("--version: %s (commit %s); bad usage exits 2" % (version, commit))

    with Cluster(opts, 3, name="operations") as c:
        c.start()
        leader = c.leader()
        for n in c.nodes.values():
            info = n.info("server")
            check(info.get("aegis_version") == version and info.get("aegis_git_sha1") == commit,
                  "node %d INFO server: aegis_version=%r aegis_git_sha1=%r" %
                  (n.id, info.get("aegis_version"), info.get("aegis_git_sha1")))

        check(dbsize(opts, leader) == 0, "DBSIZE of an empty store")
        fill(leader, "db", KEYS)
        check(dbsize(opts, leader) == KEYS, "DBSIZE after %d SETs" % KEYS)
        check(leader.call("SET", "db:0", "again") == "OK", "overwrite")
        check(leader.call("DEL", "db:1") == 1, "DEL")
        follower = c.followers(leader)[0]
        check(dbsize(opts, leader) == KEYS - 1, "DBSIZE after an overwrite and a DEL")
        check(dbsize(opts, follower) == KEYS - 1, "DBSIZE through follower %d" % follower.id)
        log("DBSIZE: 0, %d, %d (leader and follower)" % (KEYS, KEYS - 1))

        rc, out = status(opts, c)
        check(rc == 0, "aegis-cli status with a leader exited %d:\n%s" % (rc, out))

        hup = follower
        hup.signal(signal.SIGHUP)
        wait_until(lambda: b" sighup node=" in open(hup.log_path, "rb").read()
                   or not hup.alive(), 20, "node %d to log the SIGHUP" % hup.id)
        check(hup.alive(), "node %d died on SIGHUP (exit %s)" % (hup.id, hup.proc.returncode))
        check(hup.ping(), "node %d does not answer PING after SIGHUP" % hup.id)
        check(dbsize(opts, hup) == KEYS - 1, "DBSIZE after SIGHUP")
        log("SIGHUP: node %d logged it and still answers" % hup.id)

        others = [n for n in c.nodes.values() if n is not hup]
        for n in others:
            n.stop()
        wait_until(lambda: status(opts, c)[0] == 1, 30,
                   "aegis-cli status to exit 1 with one node of three (no quorum)")
        rc, out = status(opts, c)
        check("no node knows a leader" in out, "status without quorum said:\n%s" % out)
        hup.stop()  # SIGTERM after the SIGHUP: exit 0, checked by stop().
        rc, out = status(opts, c)
        check(rc == 1 and "no node answers" in out,
              "aegis-cli status with every node down exited %d:\n%s" % (rc, out))
        log("aegis-cli status: 0 with a leader, 1 without quorum, 1 with every node down")
    return 0


if __name__ == "__main__":
    main(scenario)
