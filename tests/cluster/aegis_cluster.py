# SPDX-License-Identifier: MIT
"""Harness for the multi-process cluster tests (tests/cluster/test_*.py).

Design. Every scenario is one Python program run by ctest. It builds a Cluster: a fresh
temporary directory, free loopback ports chosen at run time (bind port 0, ask the OS),
and one real aegisd process per node with its data directory and its log (stderr) under
that directory. Processes are started with PR_SET_PDEATHSIG=SIGKILL, so they die with the
harness even if ctest kills it; Cluster.close() (run from a `with` block, also on failure)
SIGKILLs whatever is still running and removes the directory. On failure the tail of every
node's log is printed and, with AEGIS_CLUSTER_KEEP=1, the directory is kept.

TLS (optional): make_certs() runs scripts/make-certs.sh; Cluster(..., tls=CERTS_DIR) starts
every node with --tls-cert/--tls-key/--tls-ca (node<i>.crt/.key and ca.crt from that
directory; Node.tls_files overrides one node's pair), and client_tls=True adds
--client-tls, after which Conn speaks TLS to the client port (verifying it with ca.crt).

Clients speak RESP2 over plain sockets (Conn). A Writer thread issues SET commands with
distinct keys and sorts every reply into three sets: acknowledged (+OK: must never be
lost), rejected (-TRYAGAIN: definitely not applied, so the key must never appear) and
unknown (-UNKNOWN, a dropped connection or a timeout: either outcome is allowed).
verify_writes() checks those rules through any node with MGET, which the node serves as a
linearizable ReadIndex read.

Only Debian's python3 standard library is used. Scenarios exit 0 on success, 1 on a failed
check (AssertionError) and 77 when a needed tool is missing (ctest SKIP_RETURN_CODE).
"""

import argparse
import ctypes
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

SKIP = 77
_T0 = time.monotonic()


def log(msg):
    sys.stderr.write("[%7.2fs] %s\n" % (time.monotonic() - _T0, msg))
    sys.stderr.flush()


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def wait_until(pred, timeout, what, interval=0.05):
    """Poll pred() until it returns a true value (returned) or timeout seconds pass."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except (OSError, RespError, ValueError, KeyError) as e:
            last_exc = e
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s%s" %
                                 (timeout, what, " (last error: %r)" % (last_exc,)
                                  if last_exc else ""))
        time.sleep(interval)


_used_ports = set()
_port_rng = random.Random()


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def free_port():
    """A loopback port that is free now and never handed out before here. It is taken
    below the kernel's ephemeral range when there is room: a port from that range could
    become some connection's source port while its node is down (between a kill and a
    restart), and the restart would then fail to bind."""
    lo, _ = _ephemeral_range()
    for _ in range(200 if lo > 12000 else 0):
        port = _port_rng.randrange(10000, lo)
        if port in _used_ports:
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        _used_ports.add(port)
        return port
    while True:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _used_ports:
            _used_ports.add(port)
            return port


# ---------------------------------------------------------------------------------------
# RESP2 client


class RespError(Exception):
    """An error reply (-ERR ..., -TRYAGAIN ..., -UNKNOWN ...): .msg holds its text."""

    def __init__(self, msg):
        super().__init__(msg)
        self.msg = msg

    def kind(self):
        return self.msg.split(" ", 1)[0]


class ConnClosed(OSError):
    pass


def encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    """One RESP2 connection. Error replies are returned as RespError objects (not raised)
    by read_reply(); call() raises them."""

    def __init__(self, port, timeout=10.0, host="127.0.0.1", password=None, tls_ca=None):
        self.port = port
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls_ca is not None:
            ctx = ssl.create_default_context(cafile=tls_ca)
            self.sock = ctx.wrap_socket(self.sock, server_hostname=host)
        self.f = self.sock.makefile("rb")
        if password is not None:
            self.call("AUTH", password)

    def close(self):
        try:
            self.f.close()
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, *cmds):
        self.sock.sendall(b"".join(encode(c) for c in cmds))

    def _line(self):
        line = self.f.readline()
        if not line:
            raise ConnClosed("connection closed by the server")
        if not line.endswith(b"\r\n"):
            raise ConnClosed("truncated reply line %r" % (line,))
        return line[:-2]

    def read_reply(self):
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
                raise ConnClosed("truncated bulk")
            return data[:-2]
        if t == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self.read_reply() for _ in range(n)]
        raise ValueError("bad reply type %r" % (line,))

    def call(self, *args):
        self.send(args)
        r = self.read_reply()
        if isinstance(r, RespError):
            raise r
        return r

    def pipeline(self, cmds):
        """Send every command at once; return the replies (errors as RespError)."""
        self.sock.sendall(b"".join(encode(c) for c in cmds))
        return [self.read_reply() for _ in cmds]


def parse_info(text):
    """INFO text -> dict of key:value strings; member lines also go to ["member"] as
    {id: {'addr':..., 'voter': int, 'match_index': int}}."""
    if isinstance(text, bytes):
        text = text.decode()
    d = {"member": {}, "sections": []}
    for line in text.split("\r\n"):
        if line.startswith("# "):
            d["sections"].append(line[2:])
            continue
        if ":" not in line:
            continue
        k, v = line.split(":", 1)
        d[k] = v
        if k.startswith("member_"):
            fields = dict(kv.split("=", 1) for kv in v.split(","))
            d["member"][int(fields["id"])] = {
                "addr": fields.get("addr", ""),
                "voter": int(fields.get("voter", "0")),
                "match_index": int(fields.get("match_index", "0")),
            }
    for k in ("node_id", "leader_id", "term", "commit_index", "last_applied", "last_index",
              "snapshot_index", "snapshots_installed", "snapshots_taken",
              "connected_clients"):
        if k in d:
            d[k] = int(d[k])
    return d


# ---------------------------------------------------------------------------------------
# Processes


def _child_setup():
    # Die with the harness (ctest may SIGKILL it on a timeout).
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


class Node:
    def __init__(self, cluster, node_id):
        self.cluster = cluster
        self.id = node_id
        self.peer_port = free_port()
        self.client_port = free_port()
        self.dir = os.path.join(cluster.dir, "n%d" % node_id)
        self.data_dir = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "aegisd.log")
        self.proc = None
        self.starts = 0
        self.tls_files = None  # (cert, key) instead of the cluster's node<id> pair.
        os.makedirs(self.dir, exist_ok=True)

    @property
    def peer_addr(self):
        return "127.0.0.1:%d" % self.peer_port

    def start(self, peers, join=False, extra=(), env=None):
        """@env: extra environment variables for aegisd (e.g. AEGIS_REQUIREPASS)."""
        check(self.proc is None or self.proc.poll() is not None,
              "node %d already running" % self.id)
        args = [self.cluster.aegisd, "--id", str(self.id), "--peers", peers,
                "--client", "127.0.0.1:%d" % self.client_port, "--data-dir", self.data_dir]
        args += self.cluster.flags + self.cluster.tls_flags(self) + list(extra)
        if join:
            args.append("--join")
        self.starts += 1
        logf = open(self.log_path, "ab")
        logf.write(("=== start %d: %s\n" % (self.starts, " ".join(args))).encode())
        logf.flush()
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                     preexec_fn=_child_setup,
                                     env=dict(os.environ, **env) if env else None)
        logf.close()
        log("node %d started (pid %d, client %d, peer %d)%s" %
            (self.id, self.proc.pid, self.client_port, self.peer_port, " --join" if join else ""))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        check(self.alive(), "node %d is not running (exit %s)" %
              (self.id, self.proc.returncode if self.proc else None))
        self.proc.send_signal(sig)

    def kill(self):
        """SIGKILL and reap."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()
        log("node %d killed (SIGKILL)" % self.id)

    def stop(self, timeout=20.0):
        """SIGTERM, wait for a graceful exit, return the exit status (must be 0)."""
        check(self.alive(), "node %d is not running before SIGTERM (exit %s)" %
              (self.id, self.proc.returncode if self.proc else None))
        self.proc.send_signal(signal.SIGCONT)
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("node %d did not stop within %.0fs of SIGTERM" %
                                 (self.id, timeout))
        log("node %d stopped (SIGTERM), exit %d" % (self.id, rc))
        check(rc == 0, "node %d exited with status %d after SIGTERM" % (self.id, rc))
        return rc

    def conn(self, timeout=10.0):
        return Conn(self.client_port, timeout=timeout, password=self.cluster.password,
                    tls_ca=self.cluster.client_tls_ca)

    def call(self, *args, timeout=10.0):
        with self.conn(timeout) as c:
            return c.call(*args)

    def info(self, section="replication", timeout=5.0):
        return parse_info(self.call("INFO", section, timeout=timeout))

    def ping(self):
        try:
            return self.call("PING", timeout=2.0) == "PONG"
        except OSError:
            return False


class Cluster:
    """A set of aegisd processes in one temporary directory. Use as a context manager."""

    def __init__(self, opts, n, flags=(), name="cluster", password=None, tls=None,
                 client_tls=False):
        self.aegisd = opts.aegisd
        self.opts = opts
        self.flags = list(flags)
        self.tls = tls                    # Certificates directory (make_certs) or None.
        self.client_tls_ca = os.path.join(tls, "ca.crt") if tls and client_tls else None
        if self.client_tls_ca:
            self.flags.append("--client-tls")
        self.password = password          # The default user's; the harness AUTHs with it.
        self.dir = tempfile.mkdtemp(prefix="aegis-%s." % name)
        if password is not None:
            # Never in argv (/proc/PID/cmdline is world-readable): a file only we read.
            path = os.path.join(self.dir, "requirepass")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(password + "\n")
            self.flags += ["--requirepass-file", path]
        self.nodes = {}
        self.failed = False
        self.mounts = []                  # tmpfs mounted by mount_tmpfs(), unmounted at close
        for i in range(1, n + 1):
            self.nodes[i] = Node(self, i)
        log("cluster dir %s" % self.dir)

    def tls_flags(self, node):
        if self.tls is None:
            return []
        cert, key = node.tls_files or (os.path.join(self.tls, "node%d.crt" % node.id),
                                       os.path.join(self.tls, "node%d.key" % node.id))
        return ["--tls-cert", cert, "--tls-key", key,
                "--tls-ca", os.path.join(self.tls, "ca.crt")]

    def __enter__(self):
        return self

    def __exit__(self, etype, exc, tb):
        self.failed = etype is not None
        self.close()
        return False

    def add_node(self, node_id):
        self.nodes[node_id] = Node(self, node_id)
        return self.nodes[node_id]

    def peers(self, ids=None):
        ids = sorted(self.nodes) if ids is None else sorted(ids)
        return ",".join("%d=%s" % (i, self.nodes[i].peer_addr) for i in ids)

    def start(self, ids=None, peer_ids=None, extra=(), env=None):
        ids = sorted(self.nodes) if ids is None else ids
        peers = self.peers(peer_ids)
        for i in ids:
            self.nodes[i].start(peers, extra=extra, env=env)
        for i in ids:
            wait_until(self.nodes[i].ping, 20, "node %d to answer PING" % i)

    def running(self):
        return [n for n in self.nodes.values() if n.alive()]

    def leader(self, among=None, timeout=20.0):
        """Wait until the running nodes in @among (default: all running) agree on one
        leader that says it is leader; return its Node."""
        def agreed():
            nodes = among if among is not None else self.running()
            infos = [n.info() for n in nodes]
            leaders = {i["leader_id"] for i in infos}
            if len(leaders) != 1:
                return None
            lid = leaders.pop()
            if lid == 0 or lid not in self.nodes or not self.nodes[lid].alive():
                return None
            if self.nodes[lid].info()["role"] != "leader":
                return None
            return self.nodes[lid]
        return wait_until(agreed, timeout, "the nodes to agree on a leader")

    def followers(self, leader):
        return [n for n in self.running() if n.id != leader.id]

    def wait_caught_up(self, nodes, timeout=30.0, index=None):
        """Wait until every node in @nodes has applied at least @index (default: the
        leader's commit index when called)."""
        if index is None:
            index = self.leader(among=nodes).info()["commit_index"]

        def done():
            return all(n.info()["last_applied"] >= index for n in nodes)
        wait_until(done, timeout, "nodes %s to apply index %d" %
                   ([n.id for n in nodes], index))
        return index

    def mount_tmpfs(self, path, size="8m"):
        """Mount a tmpfs of @size on @path (created), to be unmounted by close(). Returns
        False (and mounts nothing) when this machine does not allow it (not root, no
        mount(8), a container without CAP_SYS_ADMIN): the caller skips its scenario."""
        os.makedirs(path, exist_ok=True)
        try:
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % size,
                                "tmpfs", path], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=20)
        except (OSError, subprocess.TimeoutExpired) as e:
            log("cannot mount a tmpfs on %s: %s" % (path, e))
            return False
        if r.returncode != 0:
            log("cannot mount a tmpfs on %s: %s" % (path, r.stdout.decode(errors="replace")))
            return False
        self.mounts.append(path)
        return True

    def close(self):
        for n in self.nodes.values():
            if n.alive():
                n.proc.send_signal(signal.SIGKILL)
                n.proc.wait()
        for path in reversed(self.mounts):
            if subprocess.run(["umount", path]).returncode != 0:
                subprocess.run(["umount", "-l", path])
        self.mounts = []
        if self.failed:
            for n in self.nodes.values():
                dump_log(n)
        if self.failed and os.environ.get("AEGIS_CLUSTER_KEEP"):
            log("keeping %s" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def dump_log(node, lines=40):
    try:
        with open(node.log_path, "rb") as f:
            tail = f.read().decode(errors="replace").splitlines()[-lines:]
    except OSError:
        return
    sys.stderr.write("---- node %d log (last %d lines) ----\n" % (node.id, len(tail)))
    for line in tail:
        sys.stderr.write(line + "\n")


# ---------------------------------------------------------------------------------------
# Load and verification


class Writer(threading.Thread):
    """SETs distinct keys "<prefix>:<n>" with value "v<n>.<prefix>", @window commands per
    round trip, through the nodes given (moving to the next one when a connection fails),
    and records every outcome."""

    def __init__(self, prefix, ports_fn, window=8, pause=0.0, password=None):
        super().__init__(daemon=True)
        self.password = password
        self.prefix = prefix
        self.ports_fn = ports_fn          # () -> list of client ports to try in turn
        self.window = window
        self.pause = pause
        self.acked = {}                   # key -> value
        self.rejected = set()             # -TRYAGAIN: never applied
        self.unknown = set()
        self.other_errors = []
        self.stop_flag = threading.Event()
        self.n = 0
        self.errors_by_kind = {}
        self.reconnects = 0

    def value(self, n):
        return "v%d.%s" % (n, self.prefix)

    def run(self):
        conn = None
        turn = 0
        while not self.stop_flag.is_set():
            if conn is None:
                ports = self.ports_fn()
                if not ports:
                    time.sleep(0.05)
                    continue
                port = ports[turn % len(ports)]
                turn += 1
                try:
                    conn = Conn(port, timeout=10.0, password=self.password)
                except (OSError, RespError):
                    time.sleep(0.05)
                    continue
            batch = list(range(self.n, self.n + self.window))
            self.n += self.window
            keys = ["%s:%d" % (self.prefix, i) for i in batch]
            replies = []
            try:
                conn.send(*[("SET", k, self.value(i)) for k, i in zip(keys, batch)])
                for _ in keys:
                    replies.append(conn.read_reply())
            except (OSError, ValueError):
                conn.close()
                conn = None
                self.reconnects += 1
                time.sleep(0.02)
            for j, k in enumerate(keys):
                if j >= len(replies):
                    self.unknown.add(k)
                    continue
                r = replies[j]
                if r == "OK":
                    self.acked[k] = self.value(batch[j])
                elif isinstance(r, RespError):
                    kind = r.kind()
                    self.errors_by_kind[kind] = self.errors_by_kind.get(kind, 0) + 1
                    if kind == "TRYAGAIN":
                        self.rejected.add(k)
                    elif kind == "UNKNOWN":
                        self.unknown.add(k)
                    else:
                        self.other_errors.append((k, r.msg))
                        self.unknown.add(k)
                else:
                    self.other_errors.append((k, repr(r)))
                    self.unknown.add(k)
            if replies and all(isinstance(r, RespError) for r in replies):
                time.sleep(0.02)  # Failover in progress: do not spin.
            if self.pause:
                time.sleep(self.pause)
            if conn is not None and conn.port not in self.ports_fn():
                conn.close()  # That node is no longer a target (removed, stopped).
                conn = None
        if conn is not None:
            conn.close()

    def finish(self):
        self.stop_flag.set()
        self.join(30)
        check(not self.is_alive(), "writer %s did not stop" % self.prefix)
        log("writer %s: %d sent, %d acknowledged, %d rejected (-TRYAGAIN), %d unknown, "
            "errors %s, reconnects %d" % (self.prefix, self.n, len(self.acked),
                                          len(self.rejected), len(self.unknown),
                                          self.errors_by_kind, self.reconnects))
        check(not self.other_errors, "writer %s got unexpected replies: %s" %
              (self.prefix, self.other_errors[:5]))


def mget(conn, keys, chunk=500):
    """Values of @keys (str or None) through one connection, chunked."""
    out = []
    for i in range(0, len(keys), chunk):
        part = keys[i:i + chunk]
        r = conn.call("MGET", *part)
        check(isinstance(r, list) and len(r) == len(part), "MGET returned %r" % (r,))
        out.extend(None if v is None else v.decode() for v in r)
    return out


def read_all(node, keys, timeout=20.0):
    """MGET @keys through @node, retrying while it answers -TRYAGAIN (no leader yet)."""
    def attempt():
        with node.conn() as c:
            return mget(c, keys)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return attempt()
        except RespError as e:
            if e.kind() != "TRYAGAIN" or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def verify_writes(node, writers):
    """Every acknowledged write readable with its value through @node, no rejected one
    present at all."""
    total = 0
    for w in writers:
        keys = sorted(w.acked)
        vals = read_all(node, keys)
        lost = [(k, v) for k, v in zip(keys, vals) if v != w.acked[k]]
        check(not lost, "node %d: %d acknowledged writes of %s lost or wrong, e.g. %s" %
              (node.id, len(lost), w.prefix, lost[:5]))
        rej = sorted(w.rejected)
        vals = read_all(node, rej)
        present = [(k, v) for k, v in zip(rej, vals) if v is not None]
        check(not present, "node %d: %d writes answered -TRYAGAIN were applied anyway, e.g. "
              "%s" % (node.id, len(present), present[:5]))
        total += len(keys)
    log("node %d: all %d acknowledged writes present, no -TRYAGAIN write applied" %
        (node.id, total))


def fill(node, prefix, count, window=200, timeout=30.0):
    """SET "<prefix>:<n>" = "v<n>" for n < count through @node, @window pipelined per
    round trip; returns the dict written. Every SET must end acknowledged: one answered
    -TRYAGAIN (not applied) or -UNKNOWN is sent again (SET of the same value is
    idempotent), so an election in the middle (a slow sanitizer build) is no failure;
    any other reply is."""
    data = {}
    retried = 0
    with node.conn(timeout=20.0) as c:
        for start in range(0, count, window):
            cmds = [("SET", "%s:%d" % (prefix, i), "v%d" % i)
                    for i in range(start, min(count, start + window))]
            deadline = time.monotonic() + timeout
            while cmds:
                replies = c.pipeline(cmds)
                again = []
                for cmd, r in zip(cmds, replies):
                    if r == "OK":
                        data[cmd[1]] = cmd[2]
                    elif (isinstance(r, RespError) and r.kind() in ("TRYAGAIN", "UNKNOWN") and
                          time.monotonic() < deadline):
                        again.append(cmd)
                    else:
                        raise AssertionError("SET %s through node %d: %r" %
                                             (cmd[1], node.id, r))
                if again:
                    retried += len(again)
                    time.sleep(0.05)
                cmds = again
    if retried:
        log("fill %s through node %d: %d SETs sent again after -TRYAGAIN/-UNKNOWN" %
            (prefix, node.id, retried))
    return data


def verify_data(node, data):
    keys = sorted(data)
    vals = read_all(node, keys)
    bad = [(k, v, data[k]) for k, v in zip(keys, vals) if v != data[k]]
    check(not bad, "node %d: %d of %d keys wrong, e.g. (key, got, want) %s" %
          (node.id, len(bad), len(keys), bad[:5]))


# ---------------------------------------------------------------------------------------
# Entry point


MAKE_CERTS = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                          "..", "..", "scripts", "make-certs.sh"))


def make_certs(directory, n, days=None):
    """scripts/make-certs.sh DIRECTORY N (reusing DIRECTORY/ca.* when present); @days sets
    CERT_DAYS (negative: already expired)."""
    env = dict(os.environ)
    if days is not None:
        env["CERT_DAYS"] = str(days)
    subprocess.run([MAKE_CERTS, directory, str(n)], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return directory


def options(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--aegisd", required=True)
    p.add_argument("--aegis-cli", default="")
    p.add_argument("--redis-cli", default="")
    p.add_argument("--redis-benchmark", default="")
    return p.parse_args(argv)


def main(scenario):
    """Run scenario(opts); map the outcome to an exit status."""
    # ctest's timeout, or Ctrl-C: unwind through the `with` blocks so nodes are killed.
    def on_term(signum, frame):
        raise SystemExit("harness got signal %d" % signum)
    signal.signal(signal.SIGTERM, on_term)
    opts = options()
    if not os.access(opts.aegisd, os.X_OK):
        log("aegisd not found at %s" % opts.aegisd)
        sys.exit(1)
    t0 = time.monotonic()
    try:
        rv = scenario(opts)
    except AssertionError as e:
        log("FAILED: %s" % e)
        sys.exit(1)
    if rv == SKIP:
        sys.exit(SKIP)
    log("PASSED in %.1fs" % (time.monotonic() - t0))
    sys.exit(0)
