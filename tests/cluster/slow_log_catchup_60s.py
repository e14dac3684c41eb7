# SPDX-License-Identifier: MIT
"""Issue 14's figure: a follower SIGSTOPped for 60 s under 50x16 load catches up from the
log, with the default cache and retention, without a snapshot being sent.

Label `slow` (registered only with -DAEGIS_SLOW_TESTS=ON; about 2 minutes). Three nodes
with the defaults (--snapshot-threshold 100000, --log-cache-bytes 64M,
--log-retention-bytes 2G); aegis-bench drives the leader with 50 clients x 16 pipelined
SETs of 128 bytes. Five seconds in, one follower is SIGSTOPped for 60 s, then SIGCONTed.
Checks: the follower applies the leader's commit index within 120 s of SIGCONT, the
leader sent no snapshot and did send entries read back from disk, and no read-back
error. Prints the figures (writes during the stop, snapshots taken, retained bytes,
catch-up time and the leader's peak RSS) for docs/benchmarking.md.
"""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aegis_cluster import Cluster, check, log, main, wait_until  # noqa: E402

STOP_S = float(os.environ.get("LOG_CATCHUP_STOP_S", "60"))


def stats(node):
    d = node.info("stats")
    d.update(node.info("persistence"))
    d.update(node.info("replication"))
    keys = ("snapshots_sent", "snapshots_installed", "snapshots_taken", "log_cache_bytes",
            "log_retained_bytes", "log_entries_sent_from_disk", "log_entries_sent_from_cache",
            "log_reads", "log_read_errors", "commit_index", "last_applied")
    return {k: int(d.get(k, "0")) for k in keys}


def rss_peak_kib(node):
    with open("/proc/%d/status" % node.proc.pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def scenario(opts):
    bench = os.path.join(os.path.dirname(opts.aegisd), "aegis-bench")
    check(os.access(bench, os.X_OK), "aegis-bench not found next to aegisd")
    with Cluster(opts, 3, name="log-catchup-60s") as c:
        c.start()
        leader = c.leader()
        stopped, _ = c.followers(leader)
        load = subprocess.Popen(
            [bench, "--port", str(leader.client_port), "--clients", "50", "--pipeline", "16",
             "--value-size", "128", "--keys", "1000000", "--duration", str(STOP_S + 60),
             "--warmup", "0", "--no-baseline"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            time.sleep(5)
            s0 = stats(leader)
            stopped.signal(signal.SIGSTOP)
            log("SIGSTOPped follower %d at commit %d" % (stopped.id, s0["commit_index"]))
            time.sleep(STOP_S)
            s1 = stats(leader)
            log("after %.0f s: leader %s" % (STOP_S, s1))
            stopped.signal(signal.SIGCONT)
            t0 = time.monotonic()
            target = s1["commit_index"]
            wait_until(lambda: stopped.info()["last_applied"] >= target, 120,
                       "follower %d to apply %d" % (stopped.id, target))
            catchup = time.monotonic() - t0
        finally:
            out, _ = load.communicate(timeout=STOP_S + 120)
        s2 = stats(leader)
        f2 = stats(stopped)
        log("bench:\n" + "\n".join(out.splitlines()[-12:]))
        log("FIGURES: %d writes committed during the %.0f s stop (%.0f/s), %d snapshots "
            "taken meanwhile, %d MiB retained behind the snapshot, follower applied the "
            "stop's end %.1f s after SIGCONT; leader sent %d entries from disk in %d reads, "
            "%d snapshots; follower installed %d; leader peak RSS %d MiB" %
            (s1["commit_index"] - s0["commit_index"], STOP_S,
             (s1["commit_index"] - s0["commit_index"]) / STOP_S,
             s1["snapshots_taken"] - s0["snapshots_taken"], s1["log_retained_bytes"] >> 20,
             catchup, s2["log_entries_sent_from_disk"], s2["log_reads"], s2["snapshots_sent"],
             f2["snapshots_installed"], rss_peak_kib(leader) >> 10))
        check(s2["snapshots_sent"] == 0, "the leader sent %d snapshots" % s2["snapshots_sent"])
        check(f2["snapshots_installed"] == 0, "the follower installed a snapshot")
        check(s2["log_entries_sent_from_disk"] > 0, "nothing was read back from disk")
        check(s2["log_read_errors"] == 0, "read-back errors")
        for n in c.running():
            n.stop()
    return 0


if __name__ == "__main__":
    main(scenario)
