# SPDX-License-Identifier: MIT
"""Scenario: aegisd --config, --log-file with SIGHUP reopening it, and /health (issue 18),
on three nodes.

- Every node starts with --config FILE (comments, blank lines, metrics, log-file, tuning);
  node 3's command line gives another --metrics: the command line wins (the file's port
  is not served). A config file with an unknown flag is refused with exit 2 and a message
  naming the file and the line.
- Log lines go to the --log-file, not to stderr, one event per line:
  "time LEVEL thread event node=N key=value ..."; the Raft events name their numbers
  (became_leader node=N term=T index=I).
- logrotate: the log file is renamed, SIGHUP, and the node writes to a new file at the
  path (its "sighup" event first) and nothing more to the renamed one; it keeps serving.
- /health answers 200 with {"healthy":true, role, leader, term, commit, applied,
  has_quorum} on every node of a healthy cluster, all naming the same leader; with two of
  three nodes stopped the last one answers 503 with the reason "no leader known".
"""
import http.client
import json
import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aegis_cluster import Cluster, check, fill, free_port, log, main, wait_until  # noqa: E402

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARN|ERROR) \S+ "
                  r"[a-z_]+ node=\d+( [a-z_]+=(\"([^\"\\]|\\.)*\"|\S*))*$")


def http_get(port, path):
    """(status, body) of GET @path on 127.0.0.1:@port, or (None, error text)."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read().decode()
        c.close()
        return r.status, body
    except OSError as e:
        return None, str(e)


def write_config(node, metrics_port, extra=""):
    path = os.path.join(node.dir, "aegisd.conf")
    with open(path, "w") as f:
        f.write("# aegisd node %d (written by test_config_logs.py)\n\n"
                "metrics   127.0.0.1:%d\n"
                "log-file  %s   \n"
                "\t# tuning\n"
                "tick-ms 10\n"
                "election-ticks 30\n%s" % (node.id, metrics_port, node.app_log, extra))
    return path


def log_text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def scenario(opts):
    with Cluster(opts, 3, name="config-logs") as c:
        # A bad file: refused before anything starts, naming FILE:LINE.
        bad = os.path.join(c.dir, "bad.conf")
        with open(bad, "w") as f:
            f.write("# ok\ntick-ms 10\nno-such-flag 1\n")
        r = subprocess.run([opts.aegisd, "--config", bad, "--id", "1", "--peers",
                            "1=127.0.0.1:1", "--data-dir", os.path.join(c.dir, "x")],
                           capture_output=True, timeout=30)
        err = r.stderr.decode(errors="replace")
        check(r.returncode == 2 and "%s:3: unknown flag" % bad in err,
              "bad config: exit %d, stderr %r" % (r.returncode, err))
        log("a config with an unknown flag: exit 2, %s" % err.strip())

        metrics = {}
        for n in c.nodes.values():
            n.app_log = os.path.join(n.dir, "app.log")
            metrics[n.id] = free_port()
            extra = []
            if n.id == 3:
                file_port = free_port()
                path = write_config(n, file_port)
                extra = ["--metrics", "127.0.0.1:%d" % metrics[3]]
            else:
                path = write_config(n, metrics[n.id])
            n.start(c.peers(), extra=["--config", path] + extra)
        for n in c.nodes.values():
            wait_until(n.ping, 20, "node %d to answer PING" % n.id)
        leader = c.leader()
        fill(leader, "cfg", 50)

        # The command line's --metrics won over the file's on node 3.
        check(http_get(file_port, "/metrics")[0] is None,
              "node 3 serves the config file's metrics port despite --metrics")
        check(http_get(metrics[3], "/metrics")[0] == 200, "node 3's --metrics port")

        # /health on every node: 200, the same leader.
        def all_healthy():
            out = {}
            for n in c.nodes.values():
                st, body = http_get(metrics[n.id], "/health")
                if st != 200 or json.loads(body)["commit"] < 50:
                    return None  # The follower learns the commit with the next heartbeat.
                out[n.id] = json.loads(body)
            return out
        wait_until(lambda: all_healthy() is not None, 20, "every node healthy")
        h = all_healthy()
        for i, d in h.items():
            check(d["healthy"] is True and d["has_quorum"] is True and d["reason"] == "ok",
                  "node %d health %r" % (i, d))
            check(d["leader"] == leader.id and d["id"] == i, "node %d health %r" % (i, d))
            check(d["commit"] >= 50 and d["term"] >= 1, "node %d health %r" % (i, d))
        check(h[leader.id]["role"] == "leader", "leader's role %r" % h[leader.id])
        log("/health: 200 on all three, leader %d" % leader.id)

        # The log file, not stderr, has the lines; each is one event with key=value.
        for n in c.nodes.values():
            text = log_text(n.app_log)
            check("node=%d" % n.id in text, "node %d: no lines in %s" % (n.id, n.app_log))
            for line in text.splitlines():
                check(LINE.match(line), "node %d: malformed log line %r" % (n.id, line))
            stderr = log_text(n.log_path)
            check(" INFO " not in stderr, "node %d wrote lines to stderr:\n%s" % (n.id, stderr))
        check(re.search(r" became_leader node=%d term=\d+ index=\d+$" % leader.id,
                        log_text(leader.app_log), re.M),
              "no became_leader line with term= and index=")

        # logrotate: rename, SIGHUP, a new file at the path.
        f = c.followers(leader)[0]
        rotated = f.app_log + ".1"
        os.rename(f.app_log, rotated)
        f.signal(signal.SIGHUP)
        wait_until(lambda: " sighup node=%d" % f.id in log_text(f.app_log), 20,
                   "node %d to reopen its log file" % f.id)
        check(f.alive() and f.ping(), "node %d after SIGHUP" % f.id)
        before = log_text(rotated)
        check(" sighup " not in before, "the sighup event went to the rotated file")
        leader.stop()  # An event on the follower: the link to the old leader goes down.
        wait_until(lambda: " peer_link node=%d peer=%d state=down" % (f.id, leader.id)
                   in log_text(f.app_log), 20, "node %d to log the lost link" % f.id)
        check(log_text(rotated) == before, "the rotated file still grows after SIGHUP")
        log("SIGHUP: node %d reopened %s; the rotated file is untouched" % (f.id, f.app_log))

        # Two of three down: the last node knows no leader and answers 503.
        others = [n for n in c.running() if n is not f]
        for n in others:
            n.stop()

        def unhealthy():
            st, body = http_get(metrics[f.id], "/health")
            return st == 503 and json.loads(body)["reason"] == "no leader known"
        wait_until(unhealthy, 30, "node %d /health to answer 503" % f.id)
        st, body = http_get(metrics[f.id], "/health")
        d = json.loads(body)
        check(d["healthy"] is False and d["has_quorum"] is False and d["leader"] == 0,
              "alone: %r" % d)
        log("/health alone: 503 %s" % body.strip())
        f.stop()
    return 0


if __name__ == "__main__":
    main(scenario)
