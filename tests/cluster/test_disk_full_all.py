# SPDX-License-Identifier: MIT
"""Scenario: every node's disk fills up (ENOSPC) under write load.

As test_disk_full.py, but all three tmpfs data directories are filled. Before the
fail-stop, this ran the cluster into an election storm (term 1 to 81 in 17 s) that did not
end when the space came back. Checks:
- the nodes whose storage failed exit with status 3 (none with anything else), and no node
  campaigns its way up in terms meanwhile (the highest term seen stays within 2 of the
  term before the disks filled);
- once the space is freed and the nodes are restarted, a leader is elected, every
  acknowledged write is readable and new writes are acknowledged.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aegis_cluster import (SKIP, Cluster, check, log, main, read_all,  # noqa: E402
                           wait_until)
from test_disk_full import FAIL_STOP_MS, fill_disk, write_until_storage_error  # noqa: E402


def scenario(opts):
    flags = ["--segment-mb", "1", "--fail-stop-ms", str(FAIL_STOP_MS)]
    with Cluster(opts, 3, flags=flags, name="disk-full-all") as c:
        for n in c.nodes.values():
            if not c.mount_tmpfs(n.data_dir, "8m"):
                log("SKIP: cannot mount a tmpfs here (needs root and mount(8))")
                return SKIP
        c.start()
        leader = c.leader()
        term0 = leader.info()["term"]
        log("leader %d in term %d" % (leader.id, term0))
        fillers = [fill_disk(n.data_dir) for n in c.nodes.values()]
        acked = {}
        msg = write_until_storage_error(leader, acked)
        log("leader %d after %d acknowledged writes: -%s" % (leader.id, len(acked), msg))

        # Watch for an election storm while the nodes wind down.
        top = term0
        deadline = time.monotonic() + FAIL_STOP_MS / 1000.0 + 6.0
        while time.monotonic() < deadline:
            for n in c.running():
                try:
                    top = max(top, n.info(timeout=1.0)["term"])
                except OSError:
                    pass
            time.sleep(0.1)
        log("highest term seen: %d (term before the disks filled: %d)" % (top, term0))
        check(top <= term0 + 2, "terms ran from %d to %d: an election storm" % (term0, top))
        exited = {n.id: n.proc.returncode for n in c.nodes.values() if not n.alive()}
        log("exited: %s; still running: %s" % (exited, [n.id for n in c.running()]))
        check(leader.id in exited, "the leader (node %d) did not exit" % leader.id)
        check(all(rc == 3 for rc in exited.values()), "exit statuses %s, want 3" % exited)

        for f in fillers:
            os.unlink(f)
        for n in c.running():
            n.stop()
        c.start()
        new = c.leader(timeout=30)
        term = new.info()["term"]
        log("after the restarts node %d leads in term %d" % (new.id, term))
        check(term <= term0 + 4, "term %d after the restarts (was %d)" % (term, term0))
        r = new.call("SET", "after-restart", "1")
        check(r == "OK", "SET after the restarts: %r" % (r,))
        acked["after-restart"] = "1"
        c.wait_caught_up(list(c.nodes.values()), timeout=30)
        for n in c.nodes.values():
            keys = sorted(acked)
            vals = read_all(n, keys)
            lost = [k for k, v in zip(keys, vals) if v != acked[k]]
            check(not lost, "node %d: %d acknowledged writes lost, e.g. %s" %
                  (n.id, len(lost), lost[:5]))
            log("node %d: all %d acknowledged writes present" % (n.id, len(keys)))
        wait_until(lambda: all(n.ping() for n in c.nodes.values()), 10, "every node up")
        for n in c.running():
            n.stop()
    return 0


if __name__ == "__main__":
    main(scenario)
