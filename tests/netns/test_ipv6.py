# SPDX-License-Identifier: MIT
"""A three-node cluster on [::1] (issue 15, item 7).

Every address is IPv6 in brackets: --peers 1=[::1]:P1,2=[::1]:P2,3=[::1]:P3 and
--client [::1]:C. The nodes must elect a leader, a SET through the leader must be
acknowledged, and a GET through every node must return the value; then
`aegis-check --targets [::1]:C1,[::1]:C2,[::1]:C3` runs 2 s and must exit 0. Exits 77
(skipped) with the reason when this machine has no ::1 (IPv6 disabled).
"""
import importlib.util
import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "cluster"))
from aegis_cluster import SKIP, check, log, main  # noqa: E402

TOOL = os.path.join(HERE, "..", "..", "cmd", "aegis-check.py")


def have_ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            s.bind(("::1", 0))
        finally:
            s.close()
        return True
    except OSError as e:
        log("SKIP: cannot bind [::1] (%s): IPv6 loopback is not available here" % e)
        return False


def call(ac, port, *args):
    c = ac.Conn("::1", port, 5.0)
    try:
        return c.call(*args)
    finally:
        c.close()


def scenario(opts):
    if not have_ipv6_loopback():
        return SKIP
    spec = importlib.util.spec_from_file_location("aegis_check", TOOL)
    ac = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ac)
    cluster = ac.LocalCluster(opts.aegisd, 3, host="::1", log=log)
    failed = True
    try:
        log("peers %s" % cluster.peers())
        check(cluster.peers().count("[::1]:") == 3, "peers are not [::1]:port")
        cluster.start_all()
        lead = cluster.leader()
        check(lead is not None, "no leader")
        deadline = time.monotonic() + 20
        while True:
            r = call(ac, cluster.client_port[lead], "SET", "v6key", "v6value")
            if r == "OK" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
            lead = cluster.leader() or lead
        check(r == "OK", "SET over [::1] through node %d: %r" % (lead, r))
        for i in cluster.ids:
            got = call(ac, cluster.client_port[i], "GET", "v6key")
            check(got == "v6value", "GET over [::1] through node %d: %r" % (i, got))
        targets = ",".join("[::1]:%d" % cluster.client_port[i] for i in cluster.ids)
        r = subprocess.run([sys.executable, "-B", TOOL, "--targets", targets, "--duration",
                            "2", "--clients", "2", "--seed", "6"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True, timeout=60)
        sys.stderr.write(r.stdout[-2000:])
        check(r.returncode == 0, "aegis-check over [::1]: exit %d" % r.returncode)
        failed = False
        log("a write and reads through every node over [::1], aegis-check exit 0")
    finally:
        cluster.close(failed)


if __name__ == "__main__":
    main(scenario)
