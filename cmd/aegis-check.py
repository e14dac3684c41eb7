#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""aegis-check: run a client workload against a running Aegis cluster, record what the
clients saw, and check that the history is linearizable (issue 15).

Design. N client threads (--clients) each hold one RESP2 connection to one of the --targets
(HOST:PORT or [v6]:PORT; a lost connection moves the client to the next target) and issue
GET, SET, CAS and INCR on a small set of rotating keys: a new generation of --keys keys
starts every --ops-per-generation operations, so each key's history stays short enough for
an exact check. Every operation is recorded with its invoke and complete times
(time.monotonic_ns), arguments and outcome:
  ok      the node answered (the result is checked);
  fail    -TRYAGAIN: definitely not applied (dropped from the history);
  info    -UNKNOWN, a lost connection or a timeout: it may or may not have been applied,
          so it is checked as an operation that may take effect at any time after its
          invocation (its completion is +infinity) with any result.
After the run every key is read once more (retrying -TRYAGAIN), so an acknowledged write
that was lost shows up as a read that no order explains.

The check is Wing and Gong's search with Lowe's memoisation (the algorithm of
tests/sim/lincheck.c and of Porcupine), per key (a register: GET returns the value or nil,
SET v, CAS expected new answers 1 and swaps when the value equals expected, 0 otherwise,
INCR answers value + 1, nil counting as 0). When a key's history has no linearization, the
failing history is shrunk greedily -- an operation is dropped when the rest still fails and
no remaining operation reads or expects the value it wrote -- and printed.

Faults. --nemesis CMD runs `CMD start` and `CMD stop` alternately every --nemesis-interval
seconds (ending with a stop), so a user can cut links, kill or pause nodes with their own
tooling; the tests drive faults in-process through Checker(faults=...). For each fault the
report gives the time from the fault to the completion of the first write invoked after it
and acknowledged (failover).

Spawn. --spawn N starts N aegisd processes on 127.0.0.1 (or [::1] with --ipv6) in a
temporary directory (LocalCluster), injects process faults from the seed -- kill -9 and a
restart, SIGSTOP and SIGCONT, SIGTERM and a restart, on the leader or a follower -- while
the workload runs, and removes everything afterwards (--keep, or an anomaly, keeps the
directory with the nodes' logs). The seed is printed; --seed replays the fault schedule.

Usage:
  aegis-check --targets HOST:PORT,... --duration SECONDS [--json FILE] [--clients N] ...
  aegis-check --spawn N [--aegisd PATH] --duration SECONDS [--faults kill,stop,restart]
  aegis-check --check-history FILE      check a history saved with --json
Exit status: 0 linearizable and nothing acknowledged lost, 1 an anomaly was found, 2 bad
usage or no target reachable. Only the python3 standard library is used.
"""

import argparse
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

INF = math.inf
OPS = ("get", "set", "cas", "incr")


# ---------------------------------------------------------------------------------------
# RESP2


class RespError(Exception):
    def __init__(self, msg):
        super().__init__(msg)
        self.msg = msg

    def kind(self):
        return self.msg.split(" ", 1)[0]


def parse_hostport(text):
    """'host:port' or '[v6]:port' -> (host, port). Raises ValueError."""
    text = text.strip()
    if text.startswith("["):
        end = text.find("]:")
        if end < 0:
            raise ValueError("bad address %r (want [v6addr]:port)" % text)
        host, port = text[1:end], text[end + 2:]
    else:
        host, sep, port = text.rpartition(":")
        if not sep or not host:
            raise ValueError("bad address %r (want host:port)" % text)
    port = int(port)
    if not 0 < port < 65536:
        raise ValueError("bad port in %r" % text)
    return host, port


def encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, host, port, timeout, password=None):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.sock.makefile("rb")
        if password:
            r = self.call("AUTH", password)
            if isinstance(r, RespError):
                raise OSError("AUTH refused: %s" % r.msg)

    def close(self):
        try:
            self.f.close()
            self.sock.close()
        except OSError:
            pass

    def _line(self):
        line = self.f.readline()
        if not line.endswith(b"\r\n"):
            raise OSError("connection closed")
        return line[:-2]

    def reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return RespError(rest.decode(errors="replace"))
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            if len(data) != n + 2:
                raise OSError("truncated bulk")
            return data[:-2].decode(errors="replace")
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise OSError("bad reply %r" % line)

    def call(self, *args):
        self.sock.sendall(encode(args))
        return self.reply()


# ---------------------------------------------------------------------------------------
# The model and the checker


def step(state, op):
    """Apply @op to the register value @state (str or None). Returns (ok, new_state): ok is
    False when the recorded result cannot come from @state. An info op (unknown result)
    accepts any result."""
    f, args, res, known = op["f"], op["args"], op.get("result"), op["outcome"] == "ok"
    if f == "get":
        return ((not known) or res == state), state
    if f == "set":
        return True, args[0]
    if f == "cas":
        swapped = state is not None and state == args[0]
        if known and res != (1 if swapped else 0):
            return False, state
        return True, args[1] if swapped else state
    if f == "incr":
        try:
            v = int(state) if state is not None else 0
        except ValueError:
            return (not known), state
        if known and res != v + 1:
            return False, state
        return True, str(v + 1)
    raise ValueError("unknown operation %r" % f)


def linearizable(ops, init=None):
    """Wing-Gong-Lowe search over @ops of one key. An op's "ret" of None means unknown:
    it is given a completion after every other event. Returns True or False."""
    n = len(ops)
    if n == 0:
        return True
    events = []
    for i, op in enumerate(ops):
        events.append((op["call"], 0, i))
        ret = op.get("ret")
        events.append((INF if ret is None else ret, 1, i))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    # Doubly linked list of events: index 0 is the head sentinel.
    kinds = [None] + [e[1] for e in events]
    opi = [None] + [e[2] for e in events]
    nxt = list(range(1, len(events) + 2))
    nxt[-1] = None
    prv = [None] + list(range(0, len(events)))
    nxt[len(events)] = None
    match = [None] * (len(events) + 1)
    call_at = {}
    for pos in range(1, len(events) + 1):
        if kinds[pos] == 0:
            call_at[opi[pos]] = pos
        else:
            match[call_at[opi[pos]]] = pos

    def lift(p):
        m = match[p]
        nxt[prv[p]] = nxt[p]
        prv[nxt[p]] = prv[p]
        nxt[prv[m]] = nxt[m]
        if nxt[m] is not None:
            prv[nxt[m]] = prv[m]

    def unlift(p):
        m = match[p]
        nxt[prv[m]] = m
        if nxt[m] is not None:
            prv[nxt[m]] = m
        nxt[prv[p]] = p
        prv[nxt[p]] = p

    cache = set()
    stack = []
    state = init
    lin = 0
    p = nxt[0]
    # Bounded: every state (linearized set, value) is entered at most once (cache).
    while nxt[0] is not None:
        if kinds[p] == 0:
            i = opi[p]
            ok, new_state = step(state, ops[i])
            if ok:
                key = (lin | (1 << i), new_state)
                if key not in cache:
                    cache.add(key)
                    stack.append((p, state))
                    state = new_state
                    lin |= 1 << i
                    lift(p)
                    p = nxt[0]
                    continue
            p = nxt[p]
        else:
            if not stack:
                return False
            p, state = stack.pop()
            lin &= ~(1 << opi[p])
            unlift(p)
            p = nxt[p]
    return True


def _writes_value(op):
    if op["f"] == "set":
        return op["args"][0]
    if op["f"] == "cas" and op.get("result") == 1:
        return op["args"][1]
    if op["f"] == "incr":
        return str(op.get("result"))
    return None


def _reads_values(op):
    if op["f"] == "get" and op["outcome"] == "ok":
        return {op.get("result")}
    if op["f"] == "cas":
        return {op["args"][0]}
    if op["f"] == "incr" and op["outcome"] == "ok" and isinstance(op.get("result"), int):
        r = op["result"]
        return {str(r - 1), None} if r == 1 else {str(r - 1)}  # It read the value before.
    return set()


def shrink(ops):
    """A small failing sub-history of a non-linearizable @ops (greedy, see the top)."""
    cur = list(ops)
    changed = True
    while changed:
        changed = False
        for j in range(len(cur) - 1, -1, -1):
            w = _writes_value(cur[j])
            rest = cur[:j] + cur[j + 1:]
            if cur[j]["outcome"] == "info" and cur[j]["f"] != "get":
                continue  # It may have written any value a remaining read saw.
            if w is not None and any(w in _reads_values(o) for o in rest):
                continue
            if not linearizable(rest):
                cur = rest
                changed = True
    return cur


def check_history(history):
    """@history: list of op dicts. Returns (anomalies, stats); an anomaly is a dict with the
    key and its shrunk failing sub-history."""
    by_key = {}
    for op in history:
        if op["outcome"] == "fail":
            continue  # -TRYAGAIN: not applied
        by_key.setdefault(op["key"], []).append(op)
    anomalies = []
    for key in sorted(by_key):
        ops = sorted(by_key[key], key=lambda o: o["call"])
        if not linearizable(ops):
            anomalies.append({"key": key, "ops": len(ops), "history": shrink(ops)})
    return anomalies, {"keys": len(by_key)}


def format_op(op, t0):
    ret = "?" if op.get("ret") is None else "%.3f" % ((op["ret"] - t0) / 1e9)
    args = " ".join(str(a) for a in op["args"])
    res = op.get("result") if op["outcome"] == "ok" else op["outcome"]
    return "  client %-3s %-4s %-24s -> %-12s [%.3f, %s]" % (
        op.get("client", "?"), op["f"].upper(), args, res, (op["call"] - t0) / 1e9, ret)


def print_anomalies(anomalies, t0, out=sys.stdout):
    for a in anomalies:
        out.write("NOT LINEARIZABLE: key %s (%d operations); a failing sub-history of %d:\n" %
                  (a["key"], a["ops"], len(a["history"])))
        for op in sorted(a["history"], key=lambda o: o["call"]):
            out.write(format_op(op, t0) + "\n")


# ---------------------------------------------------------------------------------------
# The workload


class Checker:
    """Run the workload against @targets [(host, port)] for @duration seconds; @faults is
    a list of (at_seconds, name, fn) called from the driver thread (fault injection); fn may
    return the time.monotonic_ns() at which its fault took effect (default: its call)."""

    def __init__(self, targets, duration, clients=4, keys=4, ops_per_generation=240,
                 seed=None, timeout=5.0, password=None, faults=(), prefix=None, log=None):
        self.targets = list(targets)
        self.duration = duration
        self.clients = clients
        self.keys = keys
        self.ops_per_generation = ops_per_generation
        self.seed = seed if seed is not None else random.randrange(1 << 30)
        self.timeout = timeout
        self.password = password
        self.faults = sorted(faults, key=lambda f: f[0])
        self.prefix = prefix or "ac%d" % self.seed
        self.log = log or (lambda m: sys.stderr.write(m + "\n"))
        self.history = []
        self.lock = threading.Lock()
        self.started = 0
        self.stop = threading.Event()
        self.fault_log = []          # (time_ns, name)
        self.t0 = 0
        self.unexpected = []

    def _key(self, rng):
        with self.lock:
            n = self.started
            self.started += 1
        return "%s:%d:%d" % (self.prefix, n // self.ops_per_generation, rng.randrange(self.keys))

    def _invoke(self, conn, f, key, args):
        cmd = {"get": ("GET", key), "set": ("SET", key) + tuple(args),
               "cas": ("CAS", key) + tuple(args), "incr": ("INCR", key)}[f]
        return conn.call(*cmd)

    def _client(self, cid):
        rng = random.Random(self.seed * 1000 + cid)
        conn, turn, seq, seen = None, cid, 0, {}
        while not self.stop.is_set():
            if conn is None:
                host, port = self.targets[turn % len(self.targets)]
                turn += 1
                try:
                    conn = Conn(host, port, self.timeout, self.password)
                except OSError:
                    time.sleep(0.05)
                    continue
            key = self._key(rng)
            f = rng.choices(OPS, weights=(4, 3, 2, 1))[0]
            seq += 1
            args = ()
            if f == "set":
                args = (str(cid * 10**9 + seq),)
            elif f == "cas":
                args = (seen.get(key, str(rng.randrange(10))), str(cid * 10**9 + seq))
            op = {"client": cid, "key": key, "f": f, "args": list(args),
                  "call": time.monotonic_ns()}
            try:
                r = self._invoke(conn, f, key, args)
            except (OSError, ValueError):
                r = None
                op["outcome"] = "info"
                conn.close()
                conn = None
            op["ret"] = time.monotonic_ns()
            if "outcome" not in op:
                if isinstance(r, RespError):
                    kind = r.kind()
                    op["outcome"] = "fail" if kind == "TRYAGAIN" else "info"
                    if kind not in ("TRYAGAIN", "UNKNOWN"):
                        self.unexpected.append((f, key, r.msg))
                    if kind == "TRYAGAIN":
                        time.sleep(0.02)
                else:
                    op["outcome"] = "ok"
                    op["result"] = r
                    if f == "get" and r is not None:
                        seen[key] = r
                    elif f in ("set", "cas"):
                        seen[key] = args[-1]
            if op["outcome"] == "info":
                op["ret"] = None
            with self.lock:
                self.history.append(op)
        if conn is not None:
            conn.close()

    def _final_reads(self):
        keys = sorted({op["key"] for op in self.history})
        deadline = time.monotonic() + 30
        for key in keys:
            done = False
            while not done and time.monotonic() < deadline:
                for host, port in self.targets:
                    op = {"client": "final", "key": key, "f": "get", "args": [],
                          "call": time.monotonic_ns()}
                    try:
                        c = Conn(host, port, self.timeout, self.password)
                        r = c.call("GET", key)
                        c.close()
                    except OSError:
                        continue
                    if isinstance(r, RespError):
                        continue
                    op.update(ret=time.monotonic_ns(), outcome="ok", result=r)
                    self.history.append(op)
                    done = True
                    break
                if not done:
                    time.sleep(0.1)
            if not done:
                self.log("final read of %s failed on every target" % key)

    def run(self):
        self.t0 = time.monotonic_ns()
        threads = [threading.Thread(target=self._client, args=(i,), daemon=True)
                   for i in range(self.clients)]
        for t in threads:
            t.start()
        end = time.monotonic() + self.duration
        for at, name, fn in self.faults:
            wait = self.t0 / 1e9 + at - time.monotonic()
            if wait > 0:
                time.sleep(min(wait, max(0.0, end - time.monotonic())))
            if time.monotonic() >= end:
                break
            before = time.monotonic_ns()
            self.log("[%6.2fs] fault: %s" % ((before - self.t0) / 1e9, name))
            took = fn()
            if isinstance(took, tuple):
                took, name = took  # (time it took effect, a name naming the node)
            # A fault function may return when (monotonic_ns) the fault took effect.
            self.fault_log.append((took if isinstance(took, int) else before, name))
        rest = end - time.monotonic()
        if rest > 0:
            time.sleep(rest)
        self.stop.set()
        for t in threads:
            t.join(self.timeout + 5)
        self._final_reads()
        return self.report()

    def failovers(self):
        """For each fault: seconds from it to the first write invoked after it that was
        acknowledged (completion time)."""
        writes = sorted((op["call"], op["ret"]) for op in self.history
                        if op["outcome"] == "ok" and op["f"] != "get")
        out = []
        for at, name in self.fault_log:
            rets = [r for c, r in writes if c >= at]
            out.append({"fault": name, "at_s": (at - self.t0) / 1e9,
                        "failover_s": (min(rets) - at) / 1e9 if rets else None})
        return out

    def report(self):
        anomalies, stats = check_history(self.history)
        outcomes = {}
        for op in self.history:
            k = "%s %s" % (op["f"], op["outcome"])
            outcomes[k] = outcomes.get(k, 0) + 1
        return {"seed": self.seed, "operations": len(self.history), "outcomes": outcomes,
                "keys": stats["keys"], "anomalies": anomalies, "faults": self.failovers(),
                "unexpected_errors": self.unexpected[:20], "t0": self.t0}


def print_report(rep, out=sys.stdout):
    out.write("aegis-check: seed %d, %d operations on %d keys\n" %
              (rep["seed"], rep["operations"], rep["keys"]))
    for k in sorted(rep["outcomes"]):
        out.write("  %-12s %d\n" % (k, rep["outcomes"][k]))
    for f in rep["faults"]:
        fo = "none" if f["failover_s"] is None else "%.3fs" % f["failover_s"]
        out.write("  fault at %7.2fs %-32s first write after it: %s\n" %
                  (f["at_s"], f["fault"], fo))
    if rep["unexpected_errors"]:
        out.write("  unexpected error replies: %s\n" % rep["unexpected_errors"][:5])
    print_anomalies(rep["anomalies"], rep["t0"], out)
    out.write("result: %s\n" % ("NOT linearizable (%d keys)" % len(rep["anomalies"])
                                if rep["anomalies"] else "linearizable"))


def nemesis_faults(cmd, interval, duration):
    faults, t, start = [], interval, True
    while t < duration:
        verb = "start" if start else "stop"
        faults.append((t, "%s %s" % (cmd, verb),
                       lambda v=verb: subprocess.run("%s %s" % (cmd, v), shell=True)))
        start = not start
        t += interval
    if not start:
        faults.append((duration - 0.01, "%s stop" % cmd,
                       lambda: subprocess.run("%s stop" % cmd, shell=True)))
    return faults


# ---------------------------------------------------------------------------------------
# --spawn: a local cluster of aegisd processes, and process faults on it


def _die_with_parent():
    # The nodes die with aegis-check even when it is SIGKILLed (PR_SET_PDEATHSIG).
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _free_port(host, used):
    """A port free on @host now and not in @used. Taken below the kernel's ephemeral range
    when there is room, so a killed node's port cannot become some connection's source
    port before the node restarts."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        lo = 32768
    rng = random.Random()
    for attempt in range(400):
        port = rng.randrange(10000, lo) if lo > 12000 and attempt < 200 else 0
        s = socket.socket(fam, socket.SOCK_STREAM)
        try:
            s.bind((host, port))
            port = s.getsockname()[1]
        except OSError:
            continue
        finally:
            s.close()
        if port not in used:
            used.add(port)
            return port
    raise OSError("no free port on %s" % host)


def _fmt_addr(host, port):
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


class LocalCluster:
    """@n aegisd processes on @host (127.0.0.1 or ::1) in a fresh temporary directory, each
    with its data directory and log there. close() SIGKILLs them and removes the directory
    (kept with keep=True or when a node failed to start)."""

    def __init__(self, aegisd, n, host="127.0.0.1", keep=False, log=None):
        self.aegisd, self.host, self.keep = aegisd, host, keep
        self.log = log or (lambda m: sys.stderr.write(m + "\n"))
        self.dir = tempfile.mkdtemp(prefix="aegis-check.")
        used = set()
        self.ids = list(range(1, n + 1))
        self.peer_port = {i: _free_port(host, used) for i in self.ids}
        self.client_port = {i: _free_port(host, used) for i in self.ids}
        self.proc = {}
        self.stopped = set()   # SIGSTOPped node ids

    def peers(self):
        return ",".join("%d=%s" % (i, _fmt_addr(self.host, self.peer_port[i]))
                        for i in self.ids)

    def targets(self):
        return [(self.host, self.client_port[i]) for i in self.ids]

    def start(self, i):
        d = os.path.join(self.dir, "n%d" % i)
        os.makedirs(d, exist_ok=True)
        args = [self.aegisd, "--id", str(i), "--peers", self.peers(),
                "--client", _fmt_addr(self.host, self.client_port[i]),
                "--data-dir", os.path.join(d, "data")]
        with open(os.path.join(d, "aegisd.log"), "ab") as logf:
            logf.write(("=== start: %s\n" % " ".join(args)).encode())
            logf.flush()
            self.proc[i] = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=logf,
                                            stderr=logf, preexec_fn=_die_with_parent)

    def alive(self, i):
        return i in self.proc and self.proc[i].poll() is None

    def info(self, i):
        c = Conn(self.host, self.client_port[i], 1.0)
        try:
            r = c.call("INFO", "replication")
        finally:
            c.close()
        if isinstance(r, RespError):
            raise OSError(r.msg)
        return dict(l.split(":", 1) for l in r.split("\r\n") if ":" in l)

    def leader(self):
        """The id of a node that says it is leader, or None."""
        for i in self.ids:
            if self.alive(i) and i not in self.stopped:
                try:
                    if self.info(i).get("role") == "leader":
                        return i
                except (OSError, ValueError):
                    pass
        return None

    def start_all(self, timeout=30.0):
        for i in self.ids:
            self.start(i)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [i for i in self.ids if not self.alive(i)]
            if dead:
                raise OSError("node %d exited at start (log in %s)" % (dead[0], self.dir))
            if self.leader() is not None:
                return
            time.sleep(0.05)
        raise OSError("no leader within %.0fs (logs in %s)" % (timeout, self.dir))

    def kill(self, i):
        if self.alive(i):
            self.proc[i].send_signal(signal.SIGKILL)
        self.proc[i].wait()
        self.stopped.discard(i)

    def close(self, failed=False):
        for i in self.ids:
            if self.alive(i):
                self.proc[i].send_signal(signal.SIGKILL)
                self.proc[i].wait()
        if self.keep or failed:
            self.log("aegis-check: cluster directory kept: %s" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


FAULT_KINDS = ("kill", "stop", "restart")


def process_faults(cluster, kinds, duration, seed, interval=None, hold=None):
    """A schedule of process faults for @cluster from @seed: every @interval seconds one
    fault of a kind from @kinds on the leader or a follower (chosen from the seed; the node
    id is resolved when the fault fires), healed @hold seconds later:
      kill     SIGKILL, then a restart on the same data directory;
      stop     SIGSTOP, then SIGCONT (a paused process: its sockets stay open);
      restart  SIGTERM (graceful stop), then a restart.
    Returns [(at_seconds, name, fn)] for Checker(faults=...). The last heal comes at least
    a second before the end, so the final reads see a whole cluster."""
    rng = random.Random(seed ^ 0x5eed)
    interval = interval or max(2.0, duration / 4.0)
    hold = hold or min(2.0, interval / 2.0)
    faults, t = [], interval * 0.5
    while t + hold + 1.0 <= duration and kinds:
        kind = rng.choice(kinds)
        role = rng.choice(("leader", "leader", "follower"))
        pick = rng.randrange(1 << 16)
        victim = {}

        def fire(kind=kind, role=role, pick=pick, victim=victim):
            lead = cluster.leader()
            up = [i for i in cluster.ids if cluster.alive(i) and i not in cluster.stopped]
            cands = [lead] if role == "leader" and lead else \
                [i for i in up if i != lead] or up
            i = victim["id"] = cands[pick % len(cands)]
            cluster.log("aegis-check: %s node %d (%s)" % (kind, i, role))
            if kind == "kill":
                cluster.kill(i)
            elif kind == "stop":
                cluster.proc[i].send_signal(signal.SIGSTOP)
                cluster.stopped.add(i)
            else:
                cluster.proc[i].send_signal(signal.SIGTERM)
                try:
                    cluster.proc[i].wait(10)
                except subprocess.TimeoutExpired:
                    cluster.kill(i)
            return time.monotonic_ns(), "%s node %d (%s)" % (kind, i, role)

        def heal(kind=kind, victim=victim):
            i = victim.get("id")
            if i is None:
                return None
            if kind == "stop":
                cluster.proc[i].send_signal(signal.SIGCONT)
                cluster.stopped.discard(i)
            elif not cluster.alive(i):
                cluster.start(i)
            return time.monotonic_ns(), "heal %s node %d" % (kind, i)

        faults.append((t, "%s %s" % (kind, role), fire))
        faults.append((t + hold, "heal %s %s" % (kind, role), heal))
        t += interval
    return faults


def find_aegisd(given):
    if given:
        return given
    here = os.path.dirname(os.path.realpath(__file__))
    for cand in (os.path.join(here, "aegisd"), shutil.which("aegisd")):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


def run_spawned(a):
    """--spawn N: start a local cluster, run the workload with process faults, report."""
    aegisd = find_aegisd(a.aegisd)
    if not aegisd or not os.access(aegisd, os.X_OK):
        sys.stderr.write("aegis-check: aegisd not found (give --aegisd PATH)\n")
        return 2, None, None
    kinds = [k for k in a.faults.split(",") if k and k != "none"]
    bad = [k for k in kinds if k not in FAULT_KINDS]
    if bad or not 1 <= a.spawn <= 9:
        sys.stderr.write("aegis-check: bad --faults %s or --spawn %d (1..9)\n" %
                         (",".join(bad), a.spawn))
        return 2, None, None
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    sys.stderr.write("aegis-check: seed %d (--seed %d replays the fault schedule)\n" %
                     (seed, seed))
    host = "::1" if a.ipv6 else "127.0.0.1"
    cluster = LocalCluster(aegisd, a.spawn, host=host, keep=a.keep)
    failed = True
    try:
        try:
            cluster.start_all()
        except OSError as e:
            sys.stderr.write("aegis-check: cannot start the cluster: %s\n" % e)
            return 2, None, None
        faults = process_faults(cluster, kinds if a.spawn > 1 else [], a.duration, seed,
                                a.fault_interval, a.fault_hold)
        chk = Checker(cluster.targets(), a.duration, clients=a.clients, keys=a.keys,
                      ops_per_generation=a.ops_per_generation, seed=seed,
                      timeout=a.timeout, faults=faults)
        rep = chk.run()
        failed = bool(rep["anomalies"])
        return None, rep, chk
    finally:
        for i in list(cluster.stopped):
            if cluster.alive(i):
                cluster.proc[i].send_signal(signal.SIGCONT)
        cluster.close(failed)


def main(argv=None):
    p = argparse.ArgumentParser(prog="aegis-check", description=__doc__.split("\n\n")[0])
    p.add_argument("--targets", help="HOST:PORT,HOST:PORT,... (client ports)")
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--keys", type=int, default=4, help="keys per generation")
    p.add_argument("--ops-per-generation", type=int, default=240)
    p.add_argument("--seed", type=int)
    p.add_argument("--timeout", type=float, default=5.0, help="per operation, seconds")
    p.add_argument("--password-file", help="AUTH with the first line of this file")
    p.add_argument("--nemesis", help="run 'CMD start' / 'CMD stop' alternately")
    p.add_argument("--nemesis-interval", type=float, default=5.0)
    p.add_argument("--json", help="write the report and history to FILE")
    p.add_argument("--check-history", metavar="FILE",
                   help="only check the history in FILE (written by --json)")
    p.add_argument("--spawn", type=int, metavar="N",
                   help="start N local aegisd processes on loopback and check them")
    p.add_argument("--aegisd", help="with --spawn: the aegisd binary (default: beside "
                   "this program, then $PATH)")
    p.add_argument("--faults", default="kill,stop,restart",
                   help="with --spawn: process faults to inject (kill,stop,restart|none)")
    p.add_argument("--fault-interval", type=float, help="with --spawn: seconds between "
                   "faults (default: duration/4, at least 2)")
    p.add_argument("--fault-hold", type=float, help="with --spawn: seconds until a fault "
                   "is healed (default: min(2, interval/2))")
    p.add_argument("--ipv6", action="store_true", help="with --spawn: run on [::1]")
    p.add_argument("--keep", action="store_true",
                   help="with --spawn: keep the cluster directory (logs, data)")
    try:
        a = p.parse_args(argv)
    except SystemExit as e:
        return 0 if e.code == 0 else 2
    if a.check_history:
        try:
            with open(a.check_history) as f:
                doc = json.load(f)
            history = doc["history"] if isinstance(doc, dict) else doc
        except (OSError, ValueError, KeyError) as e:
            sys.stderr.write("aegis-check: cannot read %s: %s\n" % (a.check_history, e))
            return 2
        anomalies, stats = check_history(history)
        t0 = min((op["call"] for op in history), default=0)
        print_anomalies(anomalies, t0)
        sys.stdout.write("result: %s (%d operations, %d keys)\n" %
                         ("NOT linearizable" if anomalies else "linearizable", len(history),
                          stats["keys"]))
        return 1 if anomalies else 0
    if a.duration <= 0 or a.clients < 1 or a.keys < 1 or bool(a.targets) == bool(a.spawn):
        sys.stderr.write("aegis-check: --targets or --spawn N (one of them) and a positive "
                         "--duration are needed\n")
        return 2
    if a.spawn:
        rc, rep, chk = run_spawned(a)
        return rc if rc is not None else finish(a, rep, chk)
    try:
        targets = [parse_hostport(t) for t in a.targets.split(",") if t]
    except ValueError as e:
        sys.stderr.write("aegis-check: %s\n" % e)
        return 2
    password = None
    if a.password_file:
        with open(a.password_file) as f:
            password = f.readline().strip()
    faults = nemesis_faults(a.nemesis, a.nemesis_interval, a.duration) if a.nemesis else ()
    chk = Checker(targets, a.duration, clients=a.clients, keys=a.keys,
                  ops_per_generation=a.ops_per_generation, seed=a.seed, timeout=a.timeout,
                  password=password, faults=faults)
    return finish(a, chk.run(), chk)


def finish(a, rep, chk):
    """Print the report, write --json, and return the exit status."""
    ok_ops = sum(v for k, v in rep["outcomes"].items() if k.endswith(" ok"))
    print_report(rep)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(rep, history=chk.history), f)
    if ok_ops == 0:
        sys.stderr.write("aegis-check: no operation succeeded: is the cluster reachable?\n")
        return 2
    return 1 if rep["anomalies"] else 0


if __name__ == "__main__":
    sys.exit(main())
