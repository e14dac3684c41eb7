#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""TLS on the peer and client ports (docs/security.md).

1. Three nodes with mutual TLS on the peer port and --client-tls replicate: writes are
   acknowledged by the leader and read back from every node.
2. Impostors: an aegisd claiming to be node 1 (it dials nodes 2 and 3, as the real node 1
   does) with (a) a certificate for node 1 from another CA, (b) an expired certificate for
   node 1 from the cluster CA, (c) a valid certificate from the cluster CA that names
   node 4. Each is refused by nodes 2 and 3 -- the refusal is in their logs, the
   impostor's links never come up -- and the cluster's term and leader do not change.
   (Without these checks the impostor would take over node 1's links and campaign.)
3. A plaintext client on the TLS client port is refused (the connection is closed, no
   reply) and the node keeps serving TLS clients.
4. redis-cli --tls --cacert ca.crt -p PORT ping answers PONG (when redis-cli has --tls).
"""

import os
import subprocess
import time

from aegis_cluster import (Cluster, Conn, ConnClosed, check, free_port, log, main,
                           make_certs, wait_until)

STEADY_S = 3.0  # How long an impostor tries (it redials every 50 ms .. 2 s).


def term_and_leader(cluster, ids):
    infos = [cluster.nodes[i].info() for i in ids]
    return {(i["term"], i["leader_id"]) for i in infos}


def log_text(node):
    with open(node.log_path, "rb") as f:
        return f.read().decode(errors="replace")


def impostor(opts, cluster, certs_dir, cert, key, name):
    """Run an aegisd that says it is node 1 with @cert/@key for STEADY_S seconds; check
    that the cluster refused it and did not change its term or leader."""
    ids = [2, 3]
    before = term_and_leader(cluster, ids)
    check(len(before) == 1, "nodes 2 and 3 disagree before the impostor: %s" % (before,))
    lens = {i: len(log_text(cluster.nodes[i])) for i in ids}
    d = os.path.join(cluster.dir, "impostor-" + name)
    os.makedirs(d)
    peers = "1=127.0.0.1:%d,2=%s,3=%s" % (free_port(), cluster.nodes[2].peer_addr,
                                          cluster.nodes[3].peer_addr)
    logp = os.path.join(d, "aegisd.log")
    with open(logp, "wb") as logf:
        p = subprocess.Popen([opts.aegisd, "--id", "1", "--peers", peers,
                              "--client", "127.0.0.1:%d" % free_port(),
                              "--data-dir", os.path.join(d, "data"), "--tick-ms", "10",
                              "--tls-cert", cert, "--tls-key", key,
                              "--tls-ca", os.path.join(certs_dir, "ca.crt")],
                             stdout=logf, stderr=logf, stdin=subprocess.DEVNULL)
    try:
        time.sleep(STEADY_S)
        check(p.poll() is None, "impostor %s exited early (%s)" % (name, p.returncode))
    finally:
        p.kill()
        p.wait()
    with open(logp, "rb") as f:
        ilog = f.read().decode(errors="replace")
    check("state=up" not in ilog, "impostor %s got a link up:\n%s" % (name, ilog[-2000:]))
    for i in ids:
        new = log_text(cluster.nodes[i])[lens[i]:]
        check("refused" in new, "node %d logged no refusal of impostor %s:\n%s" %
              (i, name, new[-2000:]))
        log("node %d: %s" % (i, [l for l in new.splitlines() if "refused" in l][0][-160:]))
    after = term_and_leader(cluster, ids + [1])
    check(after == before, "term/leader changed from %s to %s (impostor %s)" %
          (before, after, name))
    log("impostor %s refused; term and leader unchanged %s" % (name, before))


def scenario(opts):
    with Cluster(opts, 3, name="tls", flags=["--tick-ms", "10"]) as c0:
        certs = make_certs(os.path.join(c0.dir, "certs"), 4)
        other = make_certs(os.path.join(c0.dir, "other"), 1)   # Another CA.
        expired = os.path.join(c0.dir, "expired")               # The cluster CA, expired.
        os.makedirs(expired)
        for f in ("ca.crt", "ca.key"):
            with open(os.path.join(certs, f), "rb") as src, \
                    open(os.path.join(expired, f), "wb") as dst:
                dst.write(src.read())
        make_certs(expired, 1, days=-1)
        with Cluster(opts, 3, name="tls", tls=certs, client_tls=True,
                     flags=["--tick-ms", "10"]) as c:
            c.start()
            leader = c.leader()
            log("leader %d" % leader.id)
            # 1. Replication over mutual TLS, read back from every node.
            with leader.conn() as conn:
                replies = conn.pipeline([("SET", "tls-k%d" % i, "v%d" % i) for i in range(200)])
            check(all(r == "OK" for r in replies), "SETs not acknowledged: %s" % replies[:5])
            c.wait_caught_up(list(c.nodes.values()))
            for n in c.nodes.values():
                with n.conn() as conn:
                    got = conn.call("GET", "tls-k199")
                check(got == b"v199", "node %d GET tls-k199 = %r" % (n.id, got))
                log("node %d serves the writes over TLS" % n.id)
            # 2. Impostors claiming to be node 1.
            impostor(opts, c, certs, os.path.join(other, "node1.crt"),
                     os.path.join(other, "node1.key"), "other-ca")
            impostor(opts, c, certs, os.path.join(expired, "node1.crt"),
                     os.path.join(expired, "node1.key"), "expired")
            impostor(opts, c, certs, os.path.join(certs, "node4.crt"),
                     os.path.join(certs, "node4.key"), "names-node4")
            # 3. A plaintext client on the TLS client port.
            n2 = c.nodes[2]
            with Conn(n2.client_port, timeout=5.0) as plain:
                try:
                    plain.send(("PING",))
                    r = plain.read_reply()
                    check(False, "a plaintext client got a reply: %r" % (r,))
                except (ConnClosed, ConnectionResetError, BrokenPipeError):
                    pass
            check(n2.ping(), "node 2 stopped serving TLS clients after a plaintext one")
            log("plaintext client refused; TLS clients still served")
            # 4. redis-cli --tls.
            if opts.redis_cli:
                helptext = subprocess.run([opts.redis_cli, "--help"], capture_output=True,
                                          text=True).stdout + ""
                if "--tls" in helptext:
                    out = subprocess.run([opts.redis_cli, "--tls", "--cacert",
                                          os.path.join(certs, "ca.crt"), "-p",
                                          str(leader.client_port), "ping"],
                                         capture_output=True, text=True, timeout=10)
                    check(out.stdout.strip() == "PONG", "redis-cli --tls ping: %r %r" %
                          (out.stdout, out.stderr))
                    log("redis-cli --tls ping: PONG")
                else:
                    log("redis-cli has no --tls: skipped that check")
            # The cluster still replicates.
            with c.leader().conn() as conn:
                check(conn.call("SET", "tls-after", "x") == "OK", "SET after the impostors")
    return 0


if __name__ == "__main__":
    main(scenario)
