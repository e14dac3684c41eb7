# SPDX-License-Identifier: MIT
"""Harness for the network-namespace cluster tests (tests/netns/test_netns_*.py, issue 15).

Design. Each aegisd runs as its own host: a network namespace per node, joined to a bridge
in the root namespace by a veth pair (eth0 inside), with an address from a private test
subnet 10.213.<k>.0/24 (node slot i has .i, the bridge .254). Clients -- the harness and
aegis-check -- stay in the root namespace and reach every node through the bridge, so a
fault between nodes never cuts a client off. Every name the test creates starts with
"aegt-<pid>-" (namespaces aegt-<pid>-n<i>, the bridge aegt-<pid>-br, host-side veths
aegt-<pid>-h<i>); nothing else is ever touched. Net.close() (try/finally, a `with` block)
removes them, also on failure; at start, namespaces and links left by a harness whose pid
no longer runs (a SIGKILLed run) are removed, again only under the "aegt-" prefix.

Faults between hosts are drops on the sending side: each namespace has an nftables table
(inet aegt) whose output chain drops packets to the addresses in its set "cut". cut(a, b)
adds b's address to a's set: a's packets to b vanish silently (a one-way cut: b still
reaches a, though TCP between them stalls since a's acknowledgements are lost too, and a
still receives what b sends). Without nft, a blackhole route in a's namespace does the same
except that a's own connects fail at once. A partition is both directions between two
groups; healing empties the set. Process faults (kill -9, SIGSTOP/SIGCONT, restart, a lost
data directory) act on the node's process as in tests/cluster.

Measures: time_to_rejoin() polls until a node follows the leader and applied its commit
index; link_up_delay() reads, from the node's own log timestamps, when its links to its
peers were up again after a heal or a restart (the redial delay).

Where namespaces cannot be made (not root, no `ip`, no CAP_NET_ADMIN) the scenario exits 77
(ctest SKIP_RETURN_CODE) with the reason. Nodes, RESP clients and verification come from
tests/cluster/aegis_cluster.py; the workload and the linearizability check from
cmd/aegis-check.py.
"""
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "cluster"))
import aegis_cluster as acl  # noqa: E402
from aegis_cluster import check, log, wait_until  # noqa: E402,F401

_spec = importlib.util.spec_from_file_location(
    "aegis_check", os.path.join(HERE, "..", "..", "cmd", "aegis-check.py"))
aegis_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(aegis_check)

PREFIX = "aegt-%d-" % os.getpid()
PEER_PORT = 7000
CLIENT_PORT = 6379
SLOTS_MAX = 9


def sh(args, check_rc=True, timeout=20):
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
                       universal_newlines=True)
    if check_rc and r.returncode != 0:
        raise AssertionError("%s: exit %d: %s" % (" ".join(args), r.returncode, r.stdout.strip()))
    return r


def unavailable():
    """None when namespaces can be made here, else the reason."""
    if os.geteuid() != 0:
        return "not root: network namespaces need CAP_NET_ADMIN (run as root)"
    if shutil.which("ip") is None:
        return "no ip(8) (apt-get install iproute2, or scripts/deps.sh)"
    probe = PREFIX + "probe"
    r = sh(["ip", "netns", "add", probe], check_rc=False)
    if r.returncode != 0:
        return "cannot create a network namespace: %s" % r.stdout.strip()
    sh(["ip", "netns", "del", probe], check_rc=False)
    return None


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_stale():
    """Remove namespaces and links named aegt-<pid>-* whose harness pid is gone."""
    pat = re.compile(r"^aegt-(\d+)-")
    for line in sh(["ip", "netns", "list"], check_rc=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = pat.match(name)
        if m and not _pid_alive(int(m.group(1))):
            log("removing stale namespace %s" % name)
            sh(["ip", "netns", "del", name], check_rc=False)
    for line in sh(["ip", "-o", "link", "show"], check_rc=False).stdout.splitlines():
        parts = line.split(":")
        if len(parts) < 2:
            continue
        name = parts[1].strip().split("@")[0]
        m = pat.match(name)
        if m and not _pid_alive(int(m.group(1))):
            log("removing stale link %s" % name)
            sh(["ip", "link", "del", name], check_rc=False)


def _pick_subnet():
    used = sh(["ip", "-4", "-o", "addr", "show"], check_rc=False).stdout
    for k in [(os.getpid() + j) % 240 + 10 for j in range(240)]:
        if ("10.213.%d." % k) not in used:
            return "10.213.%d" % k
    raise AssertionError("no free 10.213.x.0/24 subnet")


class Net:
    """The bridge, one namespace per host slot, and the cuts between them."""

    def __init__(self):
        cleanup_stale()
        self.subnet = _pick_subnet()
        self.bridge = PREFIX + "br"
        self.hosts = {}              # slot -> namespace name
        self.cuts = set()            # (from_slot, to_slot)
        self.nft = shutil.which("nft") is not None
        sh(["ip", "link", "add", self.bridge, "type", "bridge"])
        try:
            sh(["ip", "addr", "add", "%s.254/24" % self.subnet, "dev", self.bridge])
            sh(["ip", "link", "set", self.bridge, "up"])
        except AssertionError:
            self.close()
            raise
        log("net: bridge %s, subnet %s.0/24, drops via %s" %
            (self.bridge, self.subnet, "nft" if self.nft else "blackhole routes"))

    def addr(self, slot):
        return "%s.%d" % (self.subnet, slot)

    def ns(self, slot):
        return self.hosts[slot]

    def add_host(self, slot):
        check(1 <= slot <= SLOTS_MAX and slot not in self.hosts, "bad host slot %d" % slot)
        ns, veth = "%sn%d" % (PREFIX, slot), "%sh%d" % (PREFIX, slot)
        sh(["ip", "netns", "add", ns])
        self.hosts[slot] = ns
        sh(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
        sh(["ip", "link", "set", veth, "master", self.bridge, "up"])
        sh(["ip", "-n", ns, "addr", "add", "%s/24" % self.addr(slot), "dev", "eth0"])
        sh(["ip", "-n", ns, "link", "set", "eth0", "up"])
        sh(["ip", "-n", ns, "link", "set", "lo", "up"])
        if self.nft:
            sh(["ip", "netns", "exec", ns, "nft", "-f", "-"], check_rc=False)
            rules = ("table inet aegt {\n set cut { type ipv4_addr; }\n"
                     " chain out { type filter hook output priority 0; policy accept;"
                     " ip daddr @cut drop; }\n}\n")
            r = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=rules,
                               universal_newlines=True, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
            if r.returncode != 0:
                log("nft unusable here (%s): blackhole routes instead" % r.stdout.strip())
                self.nft = False
        return ns

    def _run_all(self, cmds):
        """Run @cmds (argument lists) at once and wait for all: a partition takes effect
        everywhere within one command's time, not one per cut."""
        procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  universal_newlines=True) for c in cmds]
        for c, p in zip(cmds, procs):
            out, _ = p.communicate(timeout=20)
            check(p.returncode == 0, "%s: exit %d: %s" % (" ".join(c), p.returncode, out))

    def cut_many(self, pairs):
        """Drop what slot a sends to slot b, for each (a, b) in @pairs (one way each)."""
        new = sorted(set(pairs) - self.cuts)
        by_src = {}
        for a, b in new:
            by_src.setdefault(a, []).append(self.addr(b))
        cmds = []
        for a, addrs in by_src.items():
            if self.nft:
                cmds.append(["ip", "netns", "exec", self.ns(a), "nft", "add", "element", "inet",
                             "aegt", "cut", "{ %s }" % ", ".join(addrs)])
            else:
                cmds += [["ip", "-n", self.ns(a), "route", "add", "blackhole", "%s/32" % x]
                         for x in addrs]
        self._run_all(cmds)
        self.cuts.update(new)

    def cut(self, a, b):
        """Drop what slot @a sends to slot @b (one way)."""
        self.cut_many([(a, b)])

    def partition(self, group_a, group_b):
        self.cut_many([(a, b) for a in group_a for b in group_b] +
                      [(b, a) for a in group_a for b in group_b])

    def heal(self):
        cmds = []
        for a in sorted({a for a, _ in self.cuts}):
            if self.nft:
                cmds.append(["ip", "netns", "exec", self.ns(a), "nft", "flush", "set", "inet",
                             "aegt", "cut"])
            else:
                cmds += [["ip", "-n", self.ns(a), "route", "del", "blackhole",
                          "%s/32" % self.addr(b)] for x, b in self.cuts if x == a]
        self._run_all(cmds)
        self.cuts = set()

    def close(self):
        for slot in sorted(self.hosts):
            sh(["ip", "netns", "del", self.hosts[slot]], check_rc=False)
        self.hosts = {}
        sh(["ip", "link", "del", self.bridge], check_rc=False)


class NsNode(acl.Node):
    """An aegisd in namespace slot @slot: peer and client ports on its own address."""

    def __init__(self, cluster, node_id, slot):
        super().__init__(cluster, node_id)
        self.slot = slot
        self.host = cluster.net.addr(slot)
        self.peer_port = PEER_PORT
        self.client_port = CLIENT_PORT
        if slot not in cluster.net.hosts:
            cluster.net.add_host(slot)  # A replacement node reuses its predecessor's host.

    @property
    def peer_addr(self):
        return "%s:%d" % (self.host, PEER_PORT)

    @property
    def target(self):
        return (self.host, CLIENT_PORT)

    def start(self, peers, join=False, extra=(), env=None):
        check(self.proc is None or self.proc.poll() is not None,
              "node %d already running" % self.id)
        args = ["ip", "netns", "exec", self.cluster.net.ns(self.slot), self.cluster.aegisd,
                "--id", str(self.id), "--peers", peers, "--client",
                "%s:%d" % (self.host, CLIENT_PORT), "--data-dir", self.data_dir]
        args += self.cluster.flags + list(extra)
        if join:
            args.append("--join")
        self.starts += 1
        with open(self.log_path, "ab") as logf:
            logf.write(("=== start %d: %s\n" % (self.starts, " ".join(args))).encode())
            logf.flush()
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=logf, preexec_fn=acl._child_setup)
        log("node %d started in %s (pid %d, %s)%s" %
            (self.id, self.cluster.net.ns(self.slot), self.proc.pid, self.host,
             " --join" if join else ""))

    def conn(self, timeout=10.0):
        return acl.Conn(CLIENT_PORT, timeout=timeout, host=self.host)


class NsCluster(acl.Cluster):
    """A cluster of @n nodes, node i in namespace slot i. Use as a context manager."""

    def __init__(self, opts, n, flags=(), name="netns"):
        self.net = Net()
        try:
            # The client port is on the private test subnet, reached only from this host.
            super().__init__(opts, 0, flags=["--insecure"] + list(flags), name=name)
            for i in range(1, n + 1):
                self.add_node(i)
        except BaseException:
            self.net.close()
            raise

    def add_node(self, node_id, slot=None):
        slot = node_id if slot is None else slot
        self.nodes[node_id] = NsNode(self, node_id, slot)
        return self.nodes[node_id]

    def targets(self):
        return [n.target for n in self.nodes.values()]

    def close(self):
        try:
            super().close()
        finally:
            self.net.close()

    # Fault helpers (return a short description for the report).

    def isolate(self, node):
        others = [n.slot for n in self.nodes.values() if n.id != node.id]
        self.net.partition([node.slot], others)
        return "isolate node %d" % node.id

    def split(self, minority):
        a = [self.nodes[i].slot for i in minority]
        b = [n.slot for n in self.nodes.values() if n.id not in minority]
        self.net.partition(a, b)
        return "split %s | %s" % (sorted(minority),
                                  sorted(i for i in self.nodes if i not in minority))


def leader_id(cluster, nodes=None):
    """The id of a node that says it leads and that a majority of answering nodes follow,
    or None (no waiting)."""
    votes = {}
    for n in (nodes or [m for m in cluster.nodes.values() if m.alive()]):
        try:
            info = n.info(timeout=1.0)
        except (OSError, acl.RespError, ValueError):
            continue
        votes[info["leader_id"]] = votes.get(info["leader_id"], 0) + 1
        if info.get("role") == "leader":
            votes.setdefault("self", set()).add(info["node_id"])
    leaders = votes.get("self", set())
    for lid in leaders:
        if votes.get(lid, 0) * 2 > len(cluster.nodes):
            return lid
    return None


def time_to_rejoin(cluster, node, since, timeout=20.0):
    """Seconds from @since (time.monotonic()) until @node follows a leader and has applied
    that leader's commit index as read when polled (back in the leader's replication)."""
    def back():
        lid = leader_id(cluster)
        if lid is None or lid == node.id:
            return lid == node.id
        commit = cluster.nodes[lid].info(timeout=1.0)["commit_index"]
        info = node.info(timeout=1.0)
        return info["leader_id"] == lid and info["last_applied"] >= commit
    wait_until(back, timeout, "node %d back in the leader's replication" % node.id,
               interval=0.02)
    return time.monotonic() - since


_LINK_UP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z \S+ aegis-net peer_link "
                      r"node=\d+ peer=(\d+) state=up src=")


def _links_up_since(node, since_wall):
    """{peer id: first wall time (s) of "peer P link up" in @node's log at or after
    @since_wall}."""
    import datetime
    out = {}
    try:
        with open(node.log_path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for line in lines:
        m = _LINK_UP.match(line)
        if not m:
            continue
        t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(
            tzinfo=datetime.timezone.utc).timestamp()
        peer = int(m.group(2))
        if t >= since_wall and peer not in out:
            out[peer] = t
    return out


def link_up_delay(node, peer_ids, since_wall, timeout=20.0):
    """Seconds from @since_wall (time.time() at a heal or a restart) until @node's log shows
    its links to every peer in @peer_ids up again (the redial delay of issue 15), read
    from the nodes' own log timestamps, so harness polling does not add to it."""
    def done():
        ups = _links_up_since(node, since_wall)
        return all(p in ups for p in peer_ids) and ups
    ups = wait_until(done, timeout, "node %d's links to %s up" % (node.id, sorted(peer_ids)))
    return max(ups[p] for p in peer_ids) - since_wall


def run_scenario(scenario):
    """acl.main, but first skip (77) with a clear message where namespaces cannot be made."""
    why = unavailable()
    if why is not None:
        log("SKIP: %s" % why)
        sys.exit(acl.SKIP)
    acl.main(scenario)

