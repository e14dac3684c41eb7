# SPDX-License-Identifier: MIT
"""Scenario: the data directory's lock and identity, with real processes.

- A second aegisd started on a live node's --data-dir (same flags, another client port)
  exits non-zero at once, naming the directory and the running node's pid; the live node
  keeps serving and the cluster keeps its leader.
- A node's data directory started under another --id (or --cluster-id) is refused with an
  error naming both values; the node then restarts under its own id and catches up.
- The data directory is 0700 and every file in it 0600.
- A damaged log record is refused at start with the segment file, the byte offset and the
  index in the message.
"""
import os
import stat
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aegis_cluster import (Cluster, check, free_port, log, main, read_all,  # noqa: E402
                           wait_until)


def run_refused(c, node_id, data_dir, extra=()):
    """Run aegisd once with @node_id on @data_dir; it must exit non-zero within 20 s.
    Returns (status, its stderr)."""
    args = [c.aegisd, "--id", str(node_id), "--peers", c.peers(),
            "--client", "127.0.0.1:%d" % free_port(), "--data-dir", data_dir] + list(extra)
    try:
        p = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=20)
    except subprocess.TimeoutExpired:
        raise AssertionError("aegisd --id %d on %s was not refused: still running after 20s"
                             % (node_id, data_dir))
    out = p.stdout.decode(errors="replace")
    log("aegisd --id %d on %s: exit %d: %s" % (node_id, data_dir, p.returncode,
                                                  out.strip().splitlines()[-2:]))
    check(p.returncode != 0, "aegisd --id %d on %s exited 0" % (node_id, data_dir))
    return p.returncode, out


def scenario(opts):
    with Cluster(opts, 3, name="datadir-guard") as c:
        c.start()
        leader = c.leader()
        term = leader.info()["term"]
        r = leader.call("SET", "k", "v1")
        check(r == "OK", "SET: %r" % (r,))

        n2 = c.nodes[2]
        _, out = run_refused(c, 2, n2.data_dir)
        check("in use by another process (pid %d" % n2.proc.pid in out,
              "the refusal does not name the holder's pid %d" % n2.proc.pid)
        check(n2.data_dir in out, "the refusal does not name the directory")
        check(n2.alive() and n2.ping(), "node 2 stopped serving")
        check(c.leader().id == leader.id and leader.info()["term"] == term,
              "the cluster changed leader or term")

        n3 = c.nodes[3]
        if n3.id == leader.id:
            n3 = c.nodes[1]
        n3.stop()
        other = 2 if n3.id != 2 else 1
        _, out = run_refused(c, other, n3.data_dir)
        want = "belongs to node %d of cluster 1, but this start has --id %d --cluster-id 1" % (
            n3.id, other)
        check(want in out, "the refusal does not name both ids (%r)" % want)
        _, out = run_refused(c, n3.id, n3.data_dir, ["--cluster-id", "9"])
        check("--id %d --cluster-id 9" % n3.id in out, "the refusal does not name the cluster")

        mode = stat.S_IMODE(os.stat(n3.data_dir).st_mode)
        check(mode == 0o700, "data directory mode %o, want 700" % mode)
        for name in sorted(os.listdir(n3.data_dir)):
            mode = stat.S_IMODE(os.stat(os.path.join(n3.data_dir, name)).st_mode)
            check(mode == 0o600, "%s has mode %o, want 600" % (name, mode))
        log("modes: directory 700, files 600 (%s)" % ", ".join(sorted(os.listdir(n3.data_dir))))

        # A damaged record: refused, naming the file, the byte offset and the index.
        seg = os.path.join(n3.data_dir, "%020d.seg" % 1)
        with open(seg, "rb") as f:
            data = bytearray(f.read())
        at = data.find(b"v1")
        check(at > 0, "the value v1 is not in %s" % seg)
        data[at] ^= 0x20
        with open(seg, "wb") as f:
            f.write(data)
        _, out = run_refused(c, n3.id, n3.data_dir)
        check("corrupt log segment %s at byte offset " % seg in out and "(index " in out,
              "the refusal does not name the segment, offset and index")
        data[at] ^= 0x20
        with open(seg, "wb") as f:
            f.write(data)

        n3.start(c.peers())
        wait_until(n3.ping, 20, "node %d back under its own id" % n3.id)
        r = c.leader().call("SET", "k", "v2")
        check(r == "OK", "SET: %r" % (r,))
        c.wait_caught_up([n3], timeout=30)
        check(read_all(n3, ["k"]) == ["v2"], "node %d does not read the new value" % n3.id)
        for n in c.running():
            n.stop()
    return 0


if __name__ == "__main__":
    main(scenario)
