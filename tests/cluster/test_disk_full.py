# SPDX-License-Identifier: MIT
"""Scenario: the leader's disk fills up (ENOSPC) under write load.

Each node's data directory is a tmpfs of 8 MiB mounted by the test (skipped with a message
when the machine does not allow mounting); segments are 1 MiB. Once a leader is elected
its tmpfs is filled to the last byte by a filler file; then 4 KiB SETs go to the leader
until it can no longer roll to a new segment. Checks (docs/operations.md, "Storage
failure"):
- the leader answers "-ERR storage failed: no space left on device (node is stopping)",
  and from that moment says it is not the leader (it stepped down at once);
- a write sent to a follower meanwhile gets a reply (it is not left hanging);
- the leader exits with status 3 within --fail-stop-ms (2 s) plus slack, by itself;
- the two others elect a new leader in a higher term and take writes;
- every acknowledged write is readable, with its value, through both survivors;
- once the space is freed the old leader restarts from its directory and catches up.
"""
import errno
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aegis_cluster import (SKIP, Cluster, RespError, check, log, main,  # noqa: E402
                           read_all, wait_until)

FAIL_STOP_MS = 2000
VALUE = "x" * 4096


def fill_disk(path):
    """Write a filler file into @path until the file system is full; return its path."""
    filler = os.path.join(path, "filler")
    chunk = b"\0" * 65536
    with open(filler, "wb", buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                break
        # Fill the last partial chunk too.
        for size in (4096, 512, 1):
            while True:
                try:
                    f.write(b"\0" * size)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    log("filled %s (%d bytes of filler)" % (path, os.path.getsize(filler)))
    return filler


def write_until_storage_error(node, acked, limit=20000):
    """SET 4 KiB values through @node, 16 pipelined at a time, recording acknowledged
    ones in @acked, until a reply says the storage failed; return that reply's text."""
    with node.conn(timeout=20.0) as c:
        n = len(acked)
        while n < limit:
            keys = ["big:%d" % i for i in range(n, n + 16)]
            n += 16
            replies = c.pipeline([("SET", k, VALUE) for k in keys])
            storage = None
            for k, r in zip(keys, replies):
                if r == "OK":
                    acked[k] = VALUE
                elif isinstance(r, RespError) and "storage failed" in r.msg:
                    storage = storage or r.msg
                elif isinstance(r, RespError) and r.kind() in ("TRYAGAIN", "UNKNOWN"):
                    pass
                else:
                    raise AssertionError("SET %s: unexpected reply %r" % (k, r))
            if storage is not None:
                return storage
    raise AssertionError("no storage error after %d writes of 4 KiB" % limit)


def scenario(opts):
    flags = ["--segment-mb", "1", "--fail-stop-ms", str(FAIL_STOP_MS)]
    with Cluster(opts, 3, flags=flags, name="disk-full") as c:
        for n in c.nodes.values():
            if not c.mount_tmpfs(n.data_dir, "8m"):
                log("SKIP: cannot mount a tmpfs here (needs root and mount(8))")
                return SKIP
        c.start()
        old = c.leader()
        term0 = old.info()["term"]
        log("leader %d in term %d" % (old.id, term0))
        others = [n for n in c.nodes.values() if n.id != old.id]
        filler = fill_disk(old.data_dir)

        acked = {}
        msg = write_until_storage_error(old, acked)
        t_fail = time.monotonic()
        log("leader %d after %d acknowledged 4 KiB writes: -%s" % (old.id, len(acked), msg))
        check(msg == "ERR storage failed: no space left on device (node is stopping)",
              "unexpected storage error text %r" % msg)
        # Stepped down at once: it no longer says it leads (it may already be gone).
        try:
            role = old.info(timeout=2.0)["role"]
            check(role != "leader", "node %d still says it is the leader after its "
                  "storage failed" % old.id)
        except OSError:
            pass
        # A write sent to a follower gets an answer (forwarded, refused or served).
        with others[0].conn(timeout=15.0) as fc:
            r = fc.call("PING")
            check(r == "PONG", "follower PING: %r" % (r,))
            fc.send(("SET", "via-follower", "1"))
            r = fc.read_reply()
            log("SET through follower %d during the failure: %r" % (others[0].id, r))
            if r == "OK":
                acked["via-follower"] = "1"

        # The others fail over while the old leader still runs (it stopped heartbeating).
        new = c.leader(among=others, timeout=20)
        t_elect = time.monotonic() - t_fail
        try:
            rc = old.proc.wait(FAIL_STOP_MS / 1000.0 + 8.0)
        except Exception:
            raise AssertionError("node %d did not exit within %.1fs of its storage failure" %
                                 (old.id, FAIL_STOP_MS / 1000.0 + 8.0))
        t_exit = time.monotonic() - t_fail
        log("node %d exited with status %d, %.2fs after the failure" % (old.id, rc, t_exit))
        check(rc == 3, "exit status %d, want 3" % rc)
        check(t_exit >= FAIL_STOP_MS / 1000.0 - 0.5, "exited after %.2fs, before the "
              "documented %d ms" % (t_exit, FAIL_STOP_MS))

        info = new.info()
        check(info["term"] > term0, "new term %d not above %d" % (info["term"], term0))
        log("node %d leads in term %d, %.2fs after the failure" % (new.id, info["term"],
                                                                      t_elect))
        r = new.call("SET", "after-failover", "1")
        check(r == "OK", "SET on the new leader: %r" % (r,))
        acked["after-failover"] = "1"
        for n in others:
            keys = sorted(acked)
            vals = read_all(n, keys)
            lost = [k for k, v in zip(keys, vals)
                    if (v.decode() if isinstance(v, bytes) else v) != acked[k]]
            check(not lost, "node %d: %d acknowledged writes lost, e.g. %s" %
                  (n.id, len(lost), lost[:5]))
            log("node %d: all %d acknowledged writes present" % (n.id, len(keys)))

        os.unlink(filler)
        old.start(c.peers())
        wait_until(old.ping, 20, "the old leader to answer PING after space returned")
        c.wait_caught_up([old], timeout=30)
        vals = read_all(old, ["after-failover"])
        check(vals == ["1"], "restarted node reads %r" % (vals,))
        for n in c.running():
            n.stop()
    return 0


if __name__ == "__main__":
    main(scenario)
