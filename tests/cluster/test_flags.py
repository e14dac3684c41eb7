# SPDX-License-Identifier: MIT
"""Scenario: aegisd's flag values, end to end (the parsers are pipeline/args.c).

- Malformed numbers and peer lists are refused before anything starts: exit status 2, one
  message on stderr that names the flag, and no data directory created. Before the
  shared parser, strtoull took " -1" as node id 2^64-1, "18446744073709551615"+1 as
  2^64-1 too, and "-1=host:port" as a peer.
- IPv6: three nodes started with --peers 1=[::1]:P1,2=[::1]:P2,3=[::1]:P3 and --client
  [::1]:C elect a leader, replicate writes to every node, show the members as [::1]:P in
  INFO, and aegis-cli status reaches them with --nodes [::1]:C,... (before, the brackets
  were kept in the host and aegisd exited with "no such file or directory"). Skipped
  (the rest still runs) when the machine has no IPv6 loopback.
"""
import os
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aegis_cluster import (Cluster, Conn, Node, check, fill, log, main,  # noqa: E402
                           verify_data)

BAD = [
    (["--id", "-1"], "--id"),
    (["--id", " -1"], "--id"),
    (["--id", " 1"], "--id"),
    (["--id", "1 "], "--id"),
    (["--id", "+1"], "--id"),
    (["--id", "18446744073709551616"], "--id"),
    (["--id", ""], "--id"),
    (["--tick-ms", "-5"], "--tick-ms"),
    (["--cluster-id", " -1"], "--cluster-id"),
    (["--max-clients", "65536 "], "--max-clients"),
    (["--peers", "-1=127.0.0.1:7001"], "--peers"),
    (["--peers", "1=127.0.0.1:7001,1=127.0.0.1:7002"], "--peers"),
    (["--peers", "1=127.0.0.1:7001,2=127.0.0.1:7001"], "--peers"),
    (["--peers", "1=127.0.0.1:7001,,2=127.0.0.1:7002"], "--peers"),
    (["--peers", "1=127.0.0.1:-7001"], "--peers"),
    (["--peers", "1=::1:7001"], "--peers"),
    (["--client", "127.0.0.1: 6379"], "--client"),
    (["--metrics", "[::1]"], "--metrics"),
]


def refusals(opts):
    base = {"--id": "1", "--peers": "1=127.0.0.1:7001"}
    with tempfile.TemporaryDirectory(prefix="aegis-flags.") as tmp:
        for i, (flags, flag) in enumerate(BAD):
            data_dir = os.path.join(tmp, "d%d" % i)
            args = [opts.aegisd, "--data-dir", data_dir]
            for k, v in base.items():
                if k not in flags:
                    args += [k, v]
            args += flags
            r = subprocess.run(args, capture_output=True, timeout=20)
            err = r.stderr.decode(errors="replace").strip()
            check(r.returncode == 2, "aegisd %r: exit %d, want 2 (stderr %r)" %
                  (flags, r.returncode, err))
            check(err.startswith("aegisd: %s: " % flag),
                  "aegisd %r: message %r does not name %s" % (flags, err, flag))
            check(not os.path.exists(data_dir), "aegisd %r created its data directory" %
                  (flags,))
            log("refused %r: %s" % (flags, err))


class V6Node(Node):
    """A node whose peer and client addresses are on [::1]."""

    @property
    def peer_addr(self):
        return "[::1]:%d" % self.peer_port

    def start(self, peers, join=False, extra=(), **kw):
        # The last --client wins: this one replaces the harness's 127.0.0.1 address.
        super().start(peers, join, list(extra) + ["--client", "[::1]:%d" % self.client_port],
                      **kw)

    def conn(self, timeout=10.0):
        return Conn(self.client_port, timeout=timeout, host="::1")


def have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def ipv6_cluster(opts):
    if not have_ipv6_loopback():
        log("skip: no IPv6 loopback on this machine")
        return
    with Cluster(opts, 3, name="flags-v6") as c:
        for n in c.nodes.values():
            n.__class__ = V6Node
        check(c.peers().startswith("1=[::1]:"), "peer list %r" % c.peers())
        c.start()
        leader = c.leader(timeout=30)
        log("IPv6: node %d leads" % leader.id)
        data = fill(leader, "v6", 300)
        c.wait_caught_up(list(c.nodes.values()))
        for n in c.nodes.values():
            verify_data(n, data)
        info = leader.call("INFO", "replication").decode()
        for n in c.nodes.values():
            want = "member_%d:id=%d,addr=[::1]:%d," % (n.id, n.id, n.peer_port)
            check(want in info, "INFO replication lacks %r:\n%s" % (want, info))
        if opts.aegis_cli:
            nodes = ",".join("[::1]:%d" % n.client_port for n in c.nodes.values())
            r = subprocess.run([opts.aegis_cli, "--nodes", nodes, "status"],
                               capture_output=True, timeout=30)
            out = r.stdout.decode(errors="replace")
            rows = [line.split() for line in out.splitlines()[1:] if line.strip()]
            check(r.returncode == 0 and sorted(f[2] for f in rows) ==
                  ["follower", "follower", "leader"] and
                  all(f[1].startswith("[::1]:") for f in rows),
                  "aegis-cli status over IPv6 exited %d:\n%s%s" %
                  (r.returncode, out, r.stderr.decode(errors="replace")))
        log("IPv6: 300 writes replicated to the 3 nodes over [::1]")


def scenario(opts):
    refusals(opts)
    ipv6_cluster(opts)


if __name__ == "__main__":
    main(scenario)
