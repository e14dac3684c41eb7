# SPDX-License-Identifier: MIT
"""Scenario 6: malformed RESP, oversized bulks and a flood of connections neither crash a
node nor lose data.

Three nodes with --max-value-bytes 65536 and --max-clients 1024; 2000 keys seeded and a
writer running through a third node the whole time. Against the leader and a follower:
- protocol errors (bad multibulk and bulk lengths, a non-'$' argument, unbalanced quotes,
  a multibulk count of 10^11) get "-ERR Protocol error: ..." and the connection is closed;
  valid commands pipelined before the garbage in the same packet are answered (in order)
  and applied;
- a bulk of max-value-bytes is accepted (and reads back whole through another node), one
  byte more is refused; a bulk claiming 1 GiB is refused from its header alone: the reply
  comes without the data being sent, and the node's peak RSS (VmHWM) grows by far less
  than the claim;
- a 60000-byte value trickled in 100 pieces is assembled and stored;
- a slow reader: 600 pairs (ECHO i, GET of a 60000-byte value) sent in separate packets
  without reading, then read: all 1200 replies arrive, in order (this once lost replies
  when the loop's per-client write queue was full);
- 300 connections of seeded random bytes (half-closed so that the node sees EOF) are
  answered or closed, never hang;
- 2000 sockets opened at once (twice the client limit), each sending PING: every socket
  gets +PONG or is closed by the node within the deadline; then 2000 connect-and-reset
  sockets. Afterwards connected_clients falls back to a handful.
Finally: every node is still running, the seeded keys and every acknowledged write read
back through every node, and every node exits 0 on SIGTERM (under the asan preset that
also means no leak).
"""
import os
import random
import selectors
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aegis_cluster import (Cluster, Conn, ConnClosed, RespError, Writer, check, fill,  # noqa: E402
                           log, main, verify_data, verify_writes, wait_until)

MAX_VALUE = 65536


def read_until_close(sock, timeout=5.0):
    """Everything the server sends until it closes the connection."""
    sock.settimeout(timeout)
    out = b""
    deadline = time.monotonic() + timeout
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return out
        except socket.timeout:
            raise AssertionError("the node did not close the connection within %.0fs "
                                 "(got %r)" % (timeout, out[:200]))
        if not chunk:
            return out
        out += chunk
        if time.monotonic() > deadline:
            raise AssertionError("connection still open after %.0fs" % timeout)


def raw(node, data, shut=False, timeout=5.0):
    s = socket.create_connection(("127.0.0.1", node.client_port), timeout=timeout)
    try:
        try:
            s.sendall(data)
            if shut:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_until_close(s, timeout)
    finally:
        s.close()


def protocol_errors(node):
    cases = [
        (b"*abc\r\n", "invalid multibulk length"),
        (b"*99999999999\r\n", "invalid multibulk length"),
        (b"*1\r\n+PING\r\n", "expected '$'"),
        (b"*2\r\n$3\r\nGET\r\n$-5\r\n", "invalid bulk length"),
        (b"*2\r\n$3\r\nGET\r\n$abc\r\n", "invalid bulk length"),
        (b"*2\r\n$3\r\nGET\r\n$99999999999999999999999\r\n", "invalid bulk length"),
        (b'SET "foo bar\r\n', "unbalanced quotes"),
        (b"SET 'a\r\n", "unbalanced quotes"),
        (b'SET "a"b c\r\n', "unbalanced quotes"),
    ]
    for data, want in cases:
        out = raw(node, data).decode(errors="replace")
        check(out.startswith("-ERR Protocol error: ") and want in out and out.endswith("\r\n")
              and out.count("\r\n") == 1,
              "node %d: %r got %r, expected one '-ERR Protocol error: ...%s...' and close" %
              (node.id, data, out, want))
    # Valid commands before the garbage, in the same packet, are answered and applied.
    pre = (b"*3\r\n$3\r\nSET\r\n$7\r\nhost:ok\r\n$3\r\nyes\r\nPING\r\n"
           b"*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n*x\r\n")
    out = raw(node, pre).decode(errors="replace")
    check(out.startswith("+OK\r\n+PONG\r\n$2\r\nhi\r\n-ERR Protocol error: invalid multibulk"),
          "node %d: pipelined commands then garbage got %r" % (node.id, out))
    check(node.call("GET", "host:ok") == b"yes", "the SET before the garbage was not applied")
    log("node %d: protocol errors answered and closed" % node.id)


def hwm_kib(node):
    with open("/proc/%d/status" % node.proc.pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def oversized(node, other):
    key = "big:%d" % node.id
    value = bytes(random.Random(node.id).choices(b"abcdefghij", k=MAX_VALUE))
    with node.conn() as c:
        check(c.call("SET", key, value) == "OK", "SET of exactly max-value-bytes refused")
    check(other.call("GET", key) == value, "the max-size value read back wrong")
    out = raw(node, b"*3\r\n$3\r\nSET\r\n$8\r\nbig:over\r\n$%d\r\n" % (MAX_VALUE + 1) +
              b"x" * (MAX_VALUE + 1) + b"\r\n").decode(errors="replace")
    check(out.startswith("-ERR Protocol error: invalid bulk length"),
          "node %d: a bulk of max+1 bytes got %r" % (node.id, out[:200]))
    check(other.call("EXISTS", "big:over") == 0, "the oversized value was stored")
    hwm0 = hwm_kib(node)
    for claim in (1 << 30, (1 << 31) - 1, 1 << 40):
        t0 = time.monotonic()
        # Header only, no data: the refusal must not wait for (or buffer) the claim.
        out = raw(node, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\nxxxx" % claim, timeout=5.0)
        check(out.startswith(b"-ERR Protocol error: invalid bulk length"),
              "node %d: claim of %d bytes got %r" % (node.id, claim, out[:200]))
        check(time.monotonic() - t0 < 5.0, "refusal took too long")
    growth = hwm_kib(node) - hwm0
    check(growth < 64 * 1024, "node %d: peak RSS grew %d KiB after bulks claiming >= 1 GiB" %
          (node.id, growth))
    # A value trickled in 100 pieces.
    value = bytes(random.Random(7).choices(b"0123456789", k=60000))
    msg = b"*3\r\n$3\r\nSET\r\n$10\r\ntrickle:%02d\r\n$60000\r\n" % node.id + value + b"\r\n"
    s = socket.create_connection(("127.0.0.1", node.client_port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    step = len(msg) // 100 + 1
    for i in range(0, len(msg), step):
        s.sendall(msg[i:i + step])
        time.sleep(0.002)
    s.settimeout(10)
    check(s.recv(100) == b"+OK\r\n", "trickled SET not acknowledged")
    s.close()
    check(other.call("GET", "trickle:%02d" % node.id) == value, "trickled value wrong")
    log("node %d: max-size value stored, max+1 and 1 GiB claims refused (HWM +%d KiB), "
        "trickled value stored" % (node.id, growth))


def slow_reader(node, pairs=600):
    """Pipeline (ECHO i, GET <60 KB value>) pairs, each in its own packet, without reading
    a byte, then read everything: every reply must come, in order."""
    value = b"s" * 60000
    check(node.call("SET", "slow:value", value) == "OK", "SET slow:value")
    s = socket.create_connection(("127.0.0.1", node.client_port), timeout=20)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(pairs):
        s.sendall(b"*2\r\n$4\r\nECHO\r\n$%d\r\n%d\r\n" % (len(str(i)), i) +
                  b"*2\r\n$3\r\nGET\r\n$10\r\nslow:value\r\n")
        if i % 8 == 0:
            time.sleep(0.001)
    conn = Conn.__new__(Conn)
    conn.port, conn.sock, conn.f = node.client_port, s, s.makefile("rb")
    retried = 0
    try:
        for i in range(pairs):
            r = conn.read_reply()
            check(r == str(i).encode(), "node %d: slow reader's reply %d is %r, not ECHO %d"
                  % (node.id, 2 * i, r if not isinstance(r, bytes) else r[:20], i))
            r = conn.read_reply()
            # A read that no leader confirmed in time (an election under a loaded machine)
            # is a definite -TRYAGAIN; anything else must be the value.
            if isinstance(r, RespError) and str(r).startswith("TRYAGAIN"):
                retried += 1
                continue
            check(r == value, "node %d: slow reader's GET %d is wrong: %r"
                  % (node.id, i, r if not isinstance(r, bytes) else r[:20]))
    except (OSError, ConnClosed) as e:
        raise AssertionError("node %d: slow reader got %d of %d reply pairs, then %r" %
                             (node.id, i, pairs, e))
    finally:
        conn.close()
    check(retried < pairs // 2, "node %d: %d of %d slow reads refused" % (node.id, retried, pairs))
    log("node %d: slow reader got all %d reply pairs in order (%d reads -TRYAGAIN)"
        % (node.id, pairs, retried))


def random_garbage(node, count=300):
    rng = random.Random(1000 + node.id)
    for i in range(count):
        kind = rng.randrange(4)
        if kind == 0:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        elif kind == 1:  # Mutated valid command.
            data = bytearray(b"*3\r\n$3\r\nSET\r\n$4\r\nfuzz\r\n$5\r\nvalue\r\n")
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data)
        elif kind == 2:  # Random structure.
            data = b"*%d\r\n" % rng.randrange(-3, 5) + b"".join(
                b"$%d\r\n%s\r\n" % (rng.randrange(-2, 8), b"x" * rng.randrange(8))
                for _ in range(rng.randrange(5)))
        else:  # Inline noise.
            data = b" ".join(bytes(rng.choice(b"ab\"'\\x ") for _ in range(rng.randrange(8)))
                             for _ in range(rng.randrange(1, 6))) + b"\r\n"
        raw(node, data, shut=True, timeout=5.0)
    log("node %d: %d connections of random bytes handled" % (node.id, count))


def flood(node, count=2000, deadline=20.0):
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", node.client_port))
        socks.append(s)
        sel.register(s, selectors.EVENT_WRITE)
    state = {}  # sock -> 'sent' | 'pong' | 'closed'
    bufs = {}
    end = time.monotonic() + deadline
    while len([v for v in state.values() if v in ("pong", "closed")]) < count:
        left = end - time.monotonic()
        if left <= 0:
            break
        for key, ev in sel.select(timeout=min(left, 1.0)):
            s = key.fileobj
            if ev & selectors.EVENT_WRITE and s not in state:
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err != 0:
                    state[s] = "closed"
                    sel.unregister(s)
                    continue
                try:
                    s.send(b"PING\r\n")
                    state[s] = "sent"
                    bufs[s] = b""
                    sel.modify(s, selectors.EVENT_READ)
                except OSError:
                    state[s] = "closed"
                    sel.unregister(s)
            elif ev & selectors.EVENT_READ:
                try:
                    chunk = s.recv(100)
                except OSError:
                    chunk = b""
                if not chunk:
                    state[s] = "closed"
                    sel.unregister(s)
                    continue
                bufs[s] += chunk
                if bufs[s] == b"+PONG\r\n":
                    state[s] = "pong"
                    sel.unregister(s)
                elif not b"+PONG\r\n".startswith(bufs[s]) and not bufs[s].startswith(b"-"):
                    raise AssertionError("flood socket got %r" % bufs[s])
                elif bufs[s].startswith(b"-") and bufs[s].endswith(b"\r\n"):
                    state[s] = "closed"  # An error reply (e.g. too many clients).
                    sel.unregister(s)
    pong = sum(1 for v in state.values() if v == "pong")
    closed = sum(1 for v in state.values() if v == "closed")
    hung = count - pong - closed
    sel.close()
    for s in socks:
        s.close()
    log("node %d: flood of %d sockets: %d PONG, %d closed/refused, %d no answer" %
        (node.id, count, pong, closed, hung))
    check(hung == 0, "node %d: %d of %d flood sockets got neither a reply nor a close "
          "within %.0fs" % (node.id, hung, count, deadline))
    check(pong >= 500, "node %d: only %d of %d flood sockets were served" %
          (node.id, pong, count))
    # Connect and reset at once.
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        try:
            s.connect(("127.0.0.1", node.client_port))
        except OSError:
            pass
        s.close()
    wait_until(lambda: node.info("stats")["connected_clients"] <= 3, 20,
               "node %d's connected_clients to fall back after the flood" % node.id)
    check(node.call("PING") == "PONG", "node %d does not answer after the flood" % node.id)


def scenario(opts):
    flags = ["--max-value-bytes", str(MAX_VALUE), "--max-clients", "1024"]
    with Cluster(opts, 3, flags=flags, name="hostile") as c:
        c.start()
        leader = c.leader()
        f1, f2 = c.followers(leader)
        base = fill(leader, "seed", 2000)
        writer = Writer("hw", lambda: [f2.client_port], pause=0.005)
        writer.start()
        for node, other in ((leader, f1), (f1, leader)):
            protocol_errors(node)
            oversized(node, other)
            slow_reader(node)
            random_garbage(node)
            flood(node)
            check(all(n.alive() for n in c.nodes.values()), "a node died")
        writer.finish()
        check(len(writer.acked) > 0, "the writer got nothing acknowledged")
        c.wait_caught_up(list(c.nodes.values()), timeout=30)
        for n in c.nodes.values():
            check(n.alive(), "node %d died" % n.id)
            verify_data(n, base)
            verify_writes(n, [writer])
        for n in c.nodes.values():
            n.stop()
    return 0


if __name__ == "__main__":
    main(scenario)
