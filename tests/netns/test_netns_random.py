# SPDX-License-Identifier: MIT
"""The long random fault run (label slow; issue 15): five aegisd, each in its own network
namespace, aegis-check's workload from the root namespace, and faults drawn from a seed.

Runs only with AEGIS_SLOW_TESTS=1 (otherwise exits 77, skipped). AEGIS_NETNS_RUNS runs
(default 1) of AEGIS_NETNS_SECONDS seconds (default 60); run r uses seed AEGIS_NETNS_SEED+r
(default: random, printed). The seed fixes the schedule -- the kinds, their times, hold
times and which node (the leader, or the k-th follower in id order) -- so the same seed
replays the same schedule; it is printed before the run.

Fault kinds: isolate the leader (clients still reach it); a minority/majority split (2|3,
the leader on a random side); a one-way cut (the leader's packets to one follower, or one
follower's to the leader, dropped); a flapping link (a node cut off and healed every
0.3 s); kill -9 and restart; SIGSTOP/SIGCONT; and a follower whose data directory is lost,
replaced through membership (AEGIS.REMOVE, a fresh node with a new id and --join on the
same host, AEGIS.ADD). Each fault is held 1.5-4 s, then healed, and the harness waits for
the affected node to be back in the leader's replication (timed, per kind).

Checks: every run's history is linearizable on every key, nothing acknowledged was lost,
every node ends caught up. Printed: operations by outcome, anomalies, and per fault kind
the failover time (fault in place -> first acknowledged write invoked after it), the heal
(or restart) -> back-in-replication time, and the heal (or exec) -> links up time from the
node's log (a cut shorter than the 1 s TCP_USER_TIMEOUT may leave a link up: "kept"),
median and max over all runs.
"""
import os
import random
import shutil
import signal
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netns_cluster as nc  # noqa: E402
from netns_cluster import check, log  # noqa: E402

KINDS = ("isolate_leader", "split", "one_way", "flap", "kill_restart", "pause", "lose_data")


def schedule(seed, seconds):
    rng = random.Random(seed)
    out, t = [], 2.0
    while t < seconds - 8:
        kind = rng.choice(KINDS)
        out.append({"at": round(t, 2), "kind": kind, "hold": round(rng.uniform(1.5, 4.0), 2),
                    "pick": rng.randrange(1000), "leader_side": rng.random() < 0.5})
        t += out[-1]["hold"] + rng.uniform(3.0, 6.0)
    return out


class Faults:
    def __init__(self, c):
        self.c = c
        self.next_id = max(c.nodes) + 1
        self.rejoin = {}    # kind -> [seconds]
        self.applied = None
        self.links = {}     # kind -> [seconds from heal/exec to links up]
        self.kept = {}      # kind -> links that never dropped

    def leader(self):
        return self.c.nodes[nc.wait_until(lambda: nc.leader_id(self.c), 30, "a leader")]

    def follower(self, leader, pick):
        fs = sorted((n for n in self.c.nodes.values() if n.id != leader.id), key=lambda n: n.id)
        return fs[pick % len(fs)]

    def settle(self, kind, node, t, wall=None, peers=()):
        """Time @node back in replication from @t; with @wall (time.time() at the heal or
        the exec) also its links to @peers up again, from its log (a link that survived a
        short cut, TCP retransmitting, has no new "link up": counted as kept)."""
        self.rejoin.setdefault(kind, []).append(nc.time_to_rejoin(self.c, node, t, 40))
        if wall is None or not peers:
            return
        try:
            d = nc.link_up_delay(node, peers, wall, timeout=5.0)
            self.links.setdefault(kind, []).append(d)
        except AssertionError:
            self.kept[kind] = self.kept.get(kind, 0) + 1

    def run(self, f):
        c, kind, hold = self.c, f["kind"], f["hold"]
        leader = self.leader()
        other = self.follower(leader, f["pick"])
        if kind == "isolate_leader":
            c.isolate(leader)
            self.applied = time.monotonic_ns()
            time.sleep(hold)
            t, wall = time.monotonic(), time.time()
            c.net.heal()
            self.settle(kind, leader, t, wall, [i for i in c.nodes if i != leader.id])
        elif kind == "split":
            rest = [n.id for n in c.nodes.values() if n.id not in (leader.id, other.id)]
            minority = [leader.id, other.id] if f["leader_side"] else rest[:2]
            log(c.split(minority))
            self.applied = time.monotonic_ns()
            time.sleep(hold)
            t, wall = time.monotonic(), time.time()
            c.net.heal()
            for i in minority:
                self.settle(kind, c.nodes[i], t, wall, [j for j in c.nodes if j not in minority])
        elif kind == "one_way":
            a, b = (leader, other) if f["leader_side"] else (other, leader)
            c.net.cut(a.slot, b.slot)
            self.applied = time.monotonic_ns()
            log("one-way cut: node %d -> node %d dropped" % (a.id, b.id))
            time.sleep(hold)
            t, wall = time.monotonic(), time.time()
            c.net.heal()
            self.settle(kind, other, t, wall, [leader.id])
        elif kind == "flap":
            node = leader if f["leader_side"] else other
            end = time.monotonic() + hold
            self.applied = time.monotonic_ns()
            while time.monotonic() < end:
                c.isolate(node)
                time.sleep(0.3)
                c.net.heal()
                time.sleep(0.3)
            self.settle(kind, node, time.monotonic())
        elif kind == "kill_restart":
            node = leader if f["leader_side"] else other
            self.applied = time.monotonic_ns()
            node.kill()
            time.sleep(hold)
            wall = time.time()
            node.start(c.peers())
            nc.wait_until(node.ping, 20, "node %d PING" % node.id, interval=0.01)
            self.settle(kind, node, time.monotonic(), wall, [i for i in c.nodes if i != node.id])
        elif kind == "pause":
            node = leader if f["leader_side"] else other
            self.applied = time.monotonic_ns()
            node.signal(signal.SIGSTOP)
            time.sleep(hold)
            t = time.monotonic()
            node.signal(signal.SIGCONT)
            self.settle(kind, node, t)
        elif kind == "lose_data":
            self.lose_data(leader, other, hold)
        else:
            raise AssertionError("unknown fault %s" % kind)
        return self.applied  # When the fault took effect: failover is measured from here.

    def lose_data(self, leader, old, hold):
        c = self.c
        self.applied = time.monotonic_ns()
        old.kill()
        shutil.rmtree(old.data_dir, ignore_errors=True)
        time.sleep(hold)
        leader = self.leader()
        r = leader.call("AEGIS.REMOVE", old.id, timeout=30)
        check(r == "OK", "AEGIS.REMOVE %d: %r" % (old.id, r))
        del c.nodes[old.id]
        new = c.add_node(self.next_id, slot=old.slot)
        self.next_id += 1
        new.start(c.peers(), join=True)
        nc.wait_until(new.ping, 20, "node %d PING" % new.id)
        t = time.monotonic()
        leader = self.leader()
        r = leader.call("AEGIS.ADD", new.id, new.peer_addr, timeout=60)
        check(r == "OK", "AEGIS.ADD %d: %r" % (new.id, r))
        log("node %d (lost its data) replaced by node %d" % (old.id, new.id))
        self.settle("lose_data", new, t)


def one_run(opts, seed, seconds, figures):
    sched = schedule(seed, seconds)
    log("run seed %d (replay: AEGIS_NETNS_SEED=%d AEGIS_NETNS_RUNS=1), schedule:" %
        (seed, seed))
    for f in sched:
        log("  %6.2fs %-14s hold %.2fs pick %d leader_side %s" %
            (f["at"], f["kind"], f["hold"], f["pick"], f["leader_side"]))
    with nc.NsCluster(opts, 5, name="netns-random") as c:
        c.start()
        c.leader(timeout=30)
        faults = Faults(c)
        chk = nc.aegis_check.Checker(
            c.targets(), seconds, clients=5, seed=seed, log=log,
            faults=[(f["at"], f["kind"], lambda f=f: faults.run(f)) for f in sched])
        rep = chk.run()
        nc.aegis_check.print_report(rep, sys.stderr)
        for f in rep["faults"]:
            figures.setdefault("failover " + f["fault"], []).append(
                f["failover_s"] if f["failover_s"] is not None else float("inf"))
        for k, v in faults.rejoin.items():
            figures.setdefault("back in replication " + k, []).extend(v)
        for k, v in faults.links.items():
            figures.setdefault("links up " + k, []).extend(v)
        for k, v in faults.kept.items():
            figures.setdefault("links kept " + k, []).append(v)
        figures.setdefault("operations", []).append(rep["operations"])
        figures.setdefault("anomalies", []).append(len(rep["anomalies"]))
        check(not rep["anomalies"], "seed %d: %d non-linearizable keys" %
              (seed, len(rep["anomalies"])))
        c.wait_caught_up([n for n in c.nodes.values() if n.alive()], timeout=60)


def scenario(opts):
    if os.environ.get("AEGIS_SLOW_TESTS") != "1":
        log("SKIP: the long random fault run needs AEGIS_SLOW_TESTS=1 (label slow)")
        return nc.acl.SKIP
    runs = int(os.environ.get("AEGIS_NETNS_RUNS", "1"))
    seconds = float(os.environ.get("AEGIS_NETNS_SECONDS", "60"))
    base = int(os.environ.get("AEGIS_NETNS_SEED", str(random.randrange(1, 1 << 30))))
    figures = {}
    try:
        for r in range(runs):
            one_run(opts, base + r, seconds, figures)
    finally:
        log("figures over %d run(s) of %.0f s from seed %d:" % (runs, seconds, base))
        for k in sorted(figures):
            v = figures[k]
            if k in ("operations", "anomalies") or k.startswith("links kept"):
                log("  %-40s total %d" % (k, sum(v)))
            else:
                log("  %-40s n %2d median %.3fs max %.3fs" %
                    (k, len(v), statistics.median(v), max(v)))


if __name__ == "__main__":
    nc.run_scenario(scenario)
