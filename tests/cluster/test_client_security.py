# SPDX-License-Identifier: MIT
"""Scenario: the client port's security (issue 12, items 4 and 5), each part an attack that
worked on the code before it:

1. users and roles: a users file (one line made by `aegis-cli hash-password`, the others
   by the documented sha256 recipe) plus the default user's password from a file; the
   password is not in /proc/PID/cmdline; before AUTH everything but AUTH is -NOAUTH; a
   read user may read but not write, a write user may write; every admin command
   (AEGIS.ADD/REMOVE/TRANSFER/SNAPSHOT, CONFIG RESETSTAT) is -NOPERM for both and passes
   the check for an admin; CONFIG SET is an error and CONFIG GET answers save/appendonly;
   a value of exactly 1 MiB is stored, one byte more is refused;
2. AUTH guessing: 1000 wrong AUTHs pipelined on one connection get at most a handful of
   replies in a 2 s window (before: all 1000 within milliseconds), auth_failures counts
   them, and the connection is closed in the end; the right password still works;
3. the admin reserve: with the non-reserved connections taken by a write user, another
   write user's AUTH is refused on a reserved slot while an admin gets in;
4. idle and slow sockets: an open node with --max-clients 32 is filled with 16 idle and
   16 slow (one byte of an unfinished command every 0.3 s) sockets; a legitimate client
   is locked out at first, then served once the idle timeout and the request deadline
   closed them (before: locked out for good);
5. the metrics endpoint answers a scrape while one client trickles a request byte by
   byte and another sits idle, and closes the trickler at its deadline (before: one
   scrape waited as long as the trickle went on);
6. start-up refusals: a client port on 0.0.0.0 without a password and a peer port on
   0.0.0.0 without TLS exit non-zero naming what to add, and start with --insecure;
   --requirepass is refused (argv is world-readable); a password from AEGIS_REQUIREPASS
   works and is not in cmdline; one over 512 bytes is refused, not cut.
"""

import hashlib
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request

from aegis_cluster import (Cluster, Conn, ConnClosed, RespError, check, encode, free_port,
                           log, main, parse_info, wait_until)

ADMIN_PW = "adm1n-" + "x" * 300  # Over 255 bytes: it used to be cut silently.


def users_line(name, role, pw, salt):
    h = hashlib.sha256((salt + pw).encode()).hexdigest()
    return "%s %s %s %s" % (name, role, h, salt)


def write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def auth_conn(port, user, pw):
    c = Conn(port, timeout=5.0)
    c.call("AUTH", user, pw)
    return c


def is_err(r, prefix):
    return isinstance(r, RespError) and r.msg.startswith(prefix)


def cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read()


ADMIN_CMDS = [("AEGIS.ADD",), ("AEGIS.REMOVE",), ("AEGIS.TRANSFER",), ("AEGIS.SNAPSHOT",),
              ("CONFIG", "RESETSTAT")]


def roles(opts, c, node):
    port = node.client_port
    check(ADMIN_PW.encode() not in cmdline(node.proc.pid), "the password is in cmdline")
    with Conn(port, timeout=5.0) as anon:
        r = anon.pipeline([("GET", "k"), ("SET", "k", "v"), ("AEGIS.SNAPSHOT",)])
        check(all(is_err(x, "NOAUTH") for x in r), "before AUTH: %r" % (r,))
    with auth_conn(port, "reader", "rpw") as rd, auth_conn(port, "writer", "wpw") as wr, \
            auth_conn(port, "boss", "bpw") as ad:
        check(wr.call("SET", "k", "v") == "OK", "writer SET")
        check(rd.call("GET", "k") == b"v", "reader GET")
        r = rd.pipeline([("SET", "k", "w")])[0]
        check(is_err(r, "NOPERM"), "reader SET: %r" % (r,))
        for cmd in ADMIN_CMDS:
            for who, conn in (("reader", rd), ("writer", wr)):
                r = conn.pipeline([cmd])[0]
                check(is_err(r, "NOPERM"), "%s %s: %r" % (who, cmd, r))
            r = ad.pipeline([cmd])[0]
            check(not is_err(r, "NOPERM") and not is_err(r, "NOAUTH"),
                  "admin %s: %r" % (cmd, r))
        check(ad.call("AEGIS.SNAPSHOT") == "OK", "admin AEGIS.SNAPSHOT")
        check(ad.call("CONFIG", "RESETSTAT") == "OK", "admin CONFIG RESETSTAT")
        r = ad.pipeline([("CONFIG", "SET", "requirepass", "x")])[0]
        check(is_err(r, "ERR CONFIG SET is not supported"), "CONFIG SET: %r" % (r,))
        check(ad.call("CONFIG", "GET", "save") == [b"save", b""], "CONFIG GET save")
        check(ad.call("CONFIG", "GET", "appendonly") == [b"appendonly", b"no"],
              "CONFIG GET appendonly")
        # The documented limit, exactly: 1 MiB is a value, 1 MiB + 1 is not.
        check(wr.call("SET", "big", b"x" * (1 << 20)) == "OK", "SET of exactly 1 MiB")
        check(len(wr.call("GET", "big")) == 1 << 20, "GET of 1 MiB")
    with Conn(port, timeout=5.0, password=ADMIN_PW) as big:
        try:
            r = big.pipeline([("SET", "big2", b"x" * ((1 << 20) + 1))])[0]
        except (ConnClosed, ConnectionResetError, BrokenPipeError) as e:
            r = RespError("closed: %r" % e)  # Refused from the header, then closed.
        check(isinstance(r, RespError), "SET of 1 MiB + 1: %r" % (r,))
    # The default user (AUTH with one argument) is the admin from --requirepass-file.
    with Conn(port, timeout=5.0, password=ADMIN_PW) as d:
        check(d.call("AEGIS.SNAPSHOT") == "OK", "default user is admin")
    log("roles: NOAUTH, NOPERM for %d admin commands x 2 roles, CONFIG, 1 MiB: ok" %
        len(ADMIN_CMDS))


def guessing(node):
    port = node.client_port
    before = parse_info(node.call("INFO", "stats")).get("auth_failures")
    check(before is not None, "INFO stats has no auth_failures")
    s = socket.create_connection(("127.0.0.1", port), timeout=5.0)
    s.sendall(b"".join(encode(("AUTH", "default", "guess%d" % i)) for i in range(1000)))
    # Count the replies that arrive in a fixed window.
    s.settimeout(0.2)
    got, end = b"", time.monotonic() + 2.0
    while time.monotonic() < end:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        got += chunk
    replies = got.count(b"\r\n")
    check(all(line.startswith(b"-WRONGPASS") for line in got.split(b"\r\n") if line),
          "replies: %r" % got[:200])
    check(1 <= replies <= 10, "%d replies to 1000 wrong AUTHs in 2 s" % replies)
    after = int(parse_info(node.call("INFO", "stats"))["auth_failures"])
    check(after - int(before) >= replies, "auth_failures %s -> %d" % (before, after))
    # The connection ends (request deadline or the 10th failure), not 1000 answers.
    s.settimeout(20.0)
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        got += chunk
    s.close()
    check(got.count(b"\r\n") <= 10, "%d replies before the close" % got.count(b"\r\n"))
    with Conn(port, timeout=5.0, password=ADMIN_PW) as ok:
        check(ok.call("PING") == "PONG", "the right password after the guesses")
    log("guessing: %d replies in 2 s to 1000 wrong AUTHs, %d in all, auth_failures %d" %
        (replies, got.count(b"\r\n"), after))


def connected(node):
    return parse_info(node.call("INFO", "stats"))["connected_clients"]


def reserve(node, max_clients, reserve_n):
    port = node.client_port
    # Only the probe itself is connected.
    wait_until(lambda: connected(node) == 1, 10, "other connections to close")
    time.sleep(0.5)  # The probe's own close reaches the server (not an assertion).
    held = [auth_conn(port, "writer", "wpw") for _ in range(max_clients - reserve_n)]
    try:
        c = Conn(port, timeout=5.0)
        r = c.pipeline([("AUTH", "writer", "wpw")])[0]
        check(is_err(r, "ERR max number of clients reached"), "writer on a reserved slot: %r"
              % (r,))
        try:
            more = c.read_reply()
            raise AssertionError("reserved slot not closed: %r" % (more,))
        except (ConnClosed, OSError):
            pass
        c.close()
        with auth_conn(port, "boss", "bpw") as ad:
            check(b"role:leader" in ad.call("AEGIS.STATUS"), "admin through the reserve")
    finally:
        for h in held:
            h.close()
    log("reserve: %d write connections held, a writer refused, an admin served" % len(held))


def lockout(opts):
    max_clients = 32
    flags = ["--max-clients", str(max_clients), "--client-idle-ms", "4000",
             "--client-request-ms", "3000", "--admin-reserve", "0"]
    with Cluster(opts, 1, flags=flags, name="lockout") as c:
        c.start()
        node = c.nodes[1]
        socks = []
        for i in range(max_clients):
            s = socket.create_connection(("127.0.0.1", node.client_port), timeout=5.0)
            if i % 2 == 1:
                s.sendall(b"*2\r\n$4\r\nECHO\r\n$100000\r\n")  # Never completed.
            socks.append(s)
        stop = threading.Event()

        def trickle():
            while not stop.is_set():
                for s in socks[1::2]:
                    try:
                        s.send(b"x")
                    except OSError:
                        pass
                stop.wait(0.3)
        t = threading.Thread(target=trickle, daemon=True)
        t.start()
        try:
            time.sleep(0.5)  # Every socket accepted by the server (not an assertion).
            # Locked out at first: the node is full.
            try:
                with Conn(node.client_port, timeout=2.0) as probe:
                    r = probe.call("PING")
                    raise AssertionError("served while full: %r" % (r,))
            except (ConnClosed, OSError):
                pass

            def served():
                with Conn(node.client_port, timeout=2.0) as probe:
                    return probe.call("PING") == "PONG"
            wait_until(served, 15, "a legitimate client to be served", interval=0.2)
            for i, s in enumerate(socks):
                s.settimeout(10.0)
                try:
                    while s.recv(4096):
                        pass
                except (ConnectionResetError, socket.timeout) as e:
                    check(isinstance(e, ConnectionResetError), "socket %d not closed" % i)
            info = parse_info(node.call("INFO", "stats"))
            check(int(info["client_timeouts"]) >= max_clients, "client_timeouts %s" %
                  info["client_timeouts"])
        finally:
            stop.set()
            t.join()
            for s in socks:
                s.close()
        node.stop()
    log("lockout: %d idle/slow sockets closed by their deadlines, a client served" %
        max_clients)


def metrics(opts):
    mport = free_port()
    with Cluster(opts, 1, flags=["--metrics", "127.0.0.1:%d" % mport],
                 name="metrics") as c:
        c.start()
        slow = socket.create_connection(("127.0.0.1", mport), timeout=10.0)
        idle = socket.create_connection(("127.0.0.1", mport), timeout=10.0)
        stop = threading.Event()

        def trickle():
            for b in b"GET /metrics HTTP/1.1\r\n":
                if stop.wait(0.5):
                    return
                try:
                    slow.send(bytes([b]))
                except OSError:
                    return
        t = threading.Thread(target=trickle, daemon=True)
        t.start()
        try:
            time.sleep(0.6)  # The trickle has begun: the old server sat in its recv.
            for _ in range(3):
                body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport,
                                              timeout=5.0).read().decode()
                check("aegis_auth_failures_total" in body, "no auth failures counter")
                check("aegis_client_timeouts_total" in body, "no client timeouts counter")
            # The trickler is cut off at its deadline (2 s), long before its request ends.
            end = b""
            try:
                end = slow.recv(4096)
            except ConnectionResetError:
                pass
            check(end == b"" or end.startswith(b"HTTP/1.1 400"), "trickler got %r" % end)
        finally:
            stop.set()
            t.join()
            slow.close()
            idle.close()
        c.nodes[1].stop()
    log("metrics: 3 scrapes served while a client trickled; the trickler closed")


_dirs = []


def run_aegisd(opts, args, env=None, timeout=10.0):
    """Start aegisd; return (exit status or None when still running, output, proc)."""
    d = os.path.join("/tmp", "aegis-sec-%d-%d" % (os.getpid(), free_port()))
    _dirs.append(d)
    proc = subprocess.Popen([opts.aegisd, "--id", "1", "--data-dir", d] + args,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=dict(os.environ, **(env or {})))
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out.decode(errors="replace"), None
    except subprocess.TimeoutExpired:
        return None, "", proc


def refusals(opts):
    peer, cport = free_port(), free_port()
    loop_peers = ["--peers", "1=127.0.0.1:%d" % peer]
    rc, out, _ = run_aegisd(opts, loop_peers + ["--client", "0.0.0.0:%d" % cport])
    check(rc not in (None, 0) and "--requirepass-file" in out and "--insecure" in out,
          "open client port on 0.0.0.0: rc %r, %r" % (rc, out))
    rc, out, _ = run_aegisd(opts, ["--peers", "1=0.0.0.0:%d" % peer, "--client",
                                   "127.0.0.1:%d" % cport])
    check(rc not in (None, 0) and "--tls-cert" in out and "--insecure" in out,
          "plaintext peer port on 0.0.0.0: rc %r, %r" % (rc, out))
    rc, out, _ = run_aegisd(opts, loop_peers + ["--requirepass", "hunter2"])
    check(rc not in (None, 0) and "--requirepass-file" in out, "--requirepass: %r" % out)
    rc, out, _ = run_aegisd(opts, loop_peers, env={"AEGIS_REQUIREPASS": "p" * 513})
    check(rc not in (None, 0) and "512" in out, "a 513-byte password: rc %r %r" % (rc, out))
    # With --insecure (and a password from the environment) it starts and serves.
    pw = "env-secret-" + "y" * 50
    rc, out, proc = run_aegisd(opts, ["--peers", "1=0.0.0.0:%d" % peer, "--client",
                                      "0.0.0.0:%d" % cport, "--insecure"],
                               env={"AEGIS_REQUIREPASS": pw}, timeout=1.0)
    check(proc is not None, "--insecure: exited %r: %s" % (rc, out))
    try:
        check(pw.encode() not in cmdline(proc.pid), "the env password is in cmdline")

        def up():
            with Conn(cport, timeout=2.0, password=pw) as conn:
                return conn.call("PING") == "PONG"
        wait_until(up, 20, "aegisd --insecure to serve")
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
        for d in _dirs:
            shutil.rmtree(d, ignore_errors=True)
    log("refusals: 0.0.0.0 client and peer ports refused, --requirepass and a 513-byte "
        "password refused, --insecure starts")


def scenario(opts):
    refusals(opts)
    # The users file: one line from aegis-cli hash-password, the rest by the recipe.
    if opts.aegis_cli:
        r = subprocess.run([opts.aegis_cli, "hash-password", "boss", "admin"], input=b"bpw\n",
                           capture_output=True, timeout=10)
        check(r.returncode == 0, "hash-password: %r" % r.stderr)
        boss = r.stdout.decode().strip()
    else:
        boss = users_line("boss", "admin", "bpw", "00112233445566778899aabbccddeeff")
    max_clients, reserve_n = 24, 4
    with Cluster(opts, 1, name="csec", password=ADMIN_PW,
                 flags=["--max-clients", str(max_clients),
                        "--admin-reserve", str(reserve_n)]) as c:
        path = os.path.join(c.dir, "users")
        write_private(path, "# test users\n%s\n%s\n%s\n" % (
            users_line("reader", "read", "rpw", "0123456789abcdef"),
            users_line("writer", "write", "wpw", "fedcba9876543210fedcba9876543210"), boss))
        c.flags += ["--users", path]
        c.start()
        node = c.leader()
        roles(opts, c, node)
        guessing(node)
        reserve(node, max_clients, reserve_n)
        node.stop()
    lockout(opts)
    metrics(opts)


if __name__ == "__main__":
    main(scenario)
