# SPDX-License-Identifier: MIT
"""aegis-check against a real cluster, and against a deliberately broken target (issue 15).

A three-node cluster runs on loopback (tests/cluster harness). `aegis-check --targets` at
its three client ports for 4 s must exit 0 (linearizable, nothing acknowledged lost). Then
a proxy in this process stands in front of the leader: it forwards every command, but
answers GET from a cache of the first value it saw for the key and never invalidates it
(a stale read after any later write). aegis-check run through the proxy must exit 1 and
print a non-linearizable key with its failing sub-history. The same run also checks the
--json output (history and report) and that a target that is not listening is survived.
"""
import json
import os
import socket
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "cluster"))
from aegis_cluster import Cluster, check, free_port, log, main  # noqa: E402

TOOL = os.path.join(HERE, "..", "..", "cmd", "aegis-check.py")


def read_command(f):
    line = f.readline()
    if not line.startswith(b"*"):
        return None
    args = []
    for _ in range(int(line[1:])):
        n = int(f.readline()[1:])
        args.append(f.read(n + 2)[:-2])
    return args


def encode_reply(cmd, r):
    if isinstance(r, str) and cmd == b"SET":
        return b"+%s\r\n" % r.encode()
    if r is None:
        return b"$-1\r\n"
    if isinstance(r, int):
        return b":%d\r\n" % r
    if isinstance(r, str):
        return b"$%d\r\n%s\r\n" % (len(r.encode()), r.encode())
    return b"-%s\r\n" % r.msg.encode()


class StaleProxy(threading.Thread):
    def __init__(self, ac, backend_port):
        super().__init__(daemon=True)
        self.ac = ac
        self.backend_port = backend_port
        self.cache = {}
        self.lock = threading.Lock()
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.port = free_port()
        self.lsock.bind(("127.0.0.1", self.port))
        self.lsock.listen(64)

    def run(self):
        while True:
            s, _ = self.lsock.accept()
            threading.Thread(target=self.serve, args=(s,), daemon=True).start()

    def serve(self, s):
        f = s.makefile("rb")
        try:
            back = self.ac.Conn("127.0.0.1", self.backend_port, 10.0)
            while True:
                args = read_command(f)
                if args is None:
                    break
                cmd = args[0].upper()
                key = args[1] if len(args) > 1 else None
                with self.lock:
                    hit = self.cache.get(key, False) if cmd == b"GET" else False
                if hit is not False:
                    s.sendall(encode_reply(cmd, hit))  # The bug: never invalidated.
                    continue
                r = back.call(*args)
                if cmd == b"GET" and isinstance(r, (str, type(None))):
                    with self.lock:
                        self.cache.setdefault(key, r)
                s.sendall(encode_reply(cmd, r))
        except OSError:
            pass
        finally:
            s.close()


def run_check(targets, seconds, json_path=None):
    args = [sys.executable, "-B", TOOL, "--targets", targets, "--duration", str(seconds),
            "--clients", "3", "--seed", "15"]
    if json_path:
        args += ["--json", json_path]
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=120)
    sys.stderr.write(r.stdout[-3000:])
    return r


def scenario(opts):
    import importlib.util
    spec = importlib.util.spec_from_file_location("aegis_check", TOOL)
    ac = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ac)
    with Cluster(opts, 3, name="check-stale") as c:
        c.start()
        leader = c.leader()
        targets = ",".join("127.0.0.1:%d" % n.client_port for n in c.nodes.values())
        path = os.path.join(c.dir, "good.json")
        r = run_check(targets + ",127.0.0.1:%d" % free_port(), 4, path)
        check(r.returncode == 0, "aegis-check on the real cluster: exit %d" % r.returncode)
        with open(path) as f:
            doc = json.load(f)
        check(doc["operations"] == len(doc["history"]) > 100, "json history too short")
        check(not doc["anomalies"], "json lists anomalies")
        proxy = StaleProxy(ac, leader.client_port)
        proxy.start()
        r = run_check("127.0.0.1:%d" % proxy.port, 4)
        check(r.returncode == 1, "aegis-check through the stale proxy: exit %d, want 1" %
              r.returncode)
        check("NOT LINEARIZABLE" in r.stdout, "no failing sub-history printed")
        log("the stale-read proxy was caught (exit 1)")


if __name__ == "__main__":
    main(scenario)
