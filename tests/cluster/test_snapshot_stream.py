# SPDX-License-Identifier: MIT
"""Streamed snapshots with small chunks while writes continue, and a restart from one.

Three nodes; every aegisd runs with AEGIS_SNAPSHOT_CHUNK_BYTES=4096 (a test knob, see
docs/runtime.md) so that a state of about 1 MiB spans hundreds of chunks, and
--snapshot-threshold high enough that only the snapshots asked for are taken.
1. 4000 keys of 200-byte values are written, then a Writer keeps writing through the
   leader while AEGIS.SNAPSHOT is sent to a follower, twice: each reply must be +OK, given
   once the file is durable (INFO memory then shows snapshot_last_index at or above the
   index the follower had applied before asking, and the file on disk has that size).
2. The file is checked as docs/storage.md specifies: version 2 header, chunks of at most
   4096 bytes (many of them), each chunk's CRC32C, the end chunk, nothing after it.
3. The writer stops; the follower is SIGKILLed and restarted: it restores from that
   snapshot (a stream), replays the log after it, and every key reads back right.
4. It is stopped, one byte in the middle of its snapshot file is flipped, and it is
   started again: its log names the file and the byte offset of the bad chunk.
"""
import os
import signal
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aegis_cluster import (Cluster, Writer, check, log, main, verify_data,  # noqa: E402
                           wait_until)

CHUNK = 4096


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC_TABLE = _crc32c_table()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def check_file(path):
    """Walk a version 2 snapshot file; return (index, chunk count, stream bytes)."""
    with open(path, "rb") as f:
        raw = f.read()
    check(raw[:8] == b"AEGISSNP", "%s: bad magic" % path)
    version, header_bytes, index = struct.unpack_from("<IIQ", raw, 8)
    check(version == 2 and header_bytes == 320, "%s: version %d header %d" %
          (path, version, header_bytes))
    check(struct.unpack_from("<I", raw, 316)[0] == crc32c(raw[:316]), "header CRC")
    stream_len = struct.unpack_from("<Q", raw, 40)[0]
    off, seq, total = 320, 0, 0
    while True:
        length, crc = struct.unpack_from("<II", raw, off)
        body = raw[off + 8:off + 8 + (length if length else 16)]
        want = crc32c(struct.pack("<Q", seq) + raw[off:off + 4] + body)
        check(crc == want, "%s: chunk %d at offset %d: CRC" % (path, seq, off))
        if length == 0:
            check(struct.unpack("<QQ", body) == (total, seq), "end chunk totals")
            off += 24
            break
        check(length <= CHUNK, "chunk %d of %d bytes > %d" % (seq, length, CHUNK))
        off += 8 + length
        seq += 1
        total += length
    check(off == len(raw), "%s: %d bytes after the end chunk" % (path, len(raw) - off))
    check(total == stream_len, "stream length %d, header says %d" % (total, stream_len))
    return index, seq, total


def snapshot_files(node):
    return sorted(f for f in os.listdir(node.data_dir) if f.endswith(".snap"))


def scenario(opts):
    env = {"AEGIS_SNAPSHOT_CHUNK_BYTES": str(CHUNK)}
    with Cluster(opts, 3, flags=["--snapshot-threshold", "1000000"], name="snapstream") as c:
        c.start(env=env)
        leader = c.leader()
        f = c.followers(leader)[0]
        data = {}
        with leader.conn(timeout=20.0) as conn:
            for start in range(0, 4000, 200):
                cmds = [("SET", "big:%d" % i, ("%d" % i) * (200 // len(str(i))))
                        for i in range(start, start + 200)]
                for cmd, r in zip(cmds, conn.pipeline(cmds)):
                    check(r == "OK", "SET %s: %r" % (cmd[1], r))
                    data[cmd[1]] = cmd[2]
        c.wait_caught_up([f], index=leader.info()["commit_index"])

        w = Writer("w", lambda: [leader.client_port], window=16)
        w.start()
        for _ in range(2):
            applied = f.info()["last_applied"]
            r = f.call("AEGIS.SNAPSHOT", timeout=60.0)
            check(r == "OK", "AEGIS.SNAPSHOT on node %d: %r" % (f.id, r))
            mem = {k: int(v) for k, v in f.info("memory").items()
                   if k.startswith(("snapshot", "state"))}
            check(mem["snapshot_last_index"] >= applied, "snapshot index %d < applied %d" %
                  (mem["snapshot_last_index"], applied))
            files = snapshot_files(f)
            check(files, "no snapshot file on node %d" % f.id)
            path = os.path.join(f.data_dir, files[-1])
            check(os.path.getsize(path) == mem["snapshot_last_bytes"],
                  "file %d bytes, INFO says %d" % (os.path.getsize(path),
                                                   mem["snapshot_last_bytes"]))
            index, chunks, total = check_file(path)
            check(index == mem["snapshot_last_index"], "file index %d" % index)
            check(chunks >= 200, "only %d chunks" % chunks)
            log("node %d: snapshot at %d durable when answered: %d chunks, %d stream bytes, "
                "%d ms; state_bytes %d" % (f.id, index, chunks, total,
                                           mem["snapshot_last_duration_ms"],
                                           mem["state_bytes"]))
        check(w.n > 0, "the writer wrote nothing")
        w.finish()
        data.update(w.acked)
        commit = leader.info()["commit_index"]
        c.wait_caught_up([f], index=commit)

        f.signal(signal.SIGKILL)
        f.proc.wait()
        f.start(c.peers(), env=env)
        wait_until(f.ping, 20, "node %d to answer PING" % f.id)
        c.wait_caught_up([f], timeout=30, index=commit)
        check(f.info()["snapshot_index"] >= index, "restarted without its snapshot")
        verify_data(f, data)
        log("node %d restarted from snapshot %d: %d keys intact" % (f.id, index, len(data)))

        f.stop()
        path = os.path.join(f.data_dir, snapshot_files(f)[-1])
        with open(path, "r+b") as fh:
            size = os.path.getsize(path)
            fh.seek(size // 2)
            b = fh.read(1)
            fh.seek(size // 2)
            fh.write(bytes([b[0] ^ 0x10]))
        f.start(c.peers(), env=env)
        wait_until(lambda: "chunk CRC mismatch at byte offset" in open(
            f.log_path, "rb").read().decode(errors="replace"), 20,
            "node %d to report the bad chunk" % f.id)
        with open(f.log_path, "rb") as fh:
            text = fh.read().decode(errors="replace")
        line = [x for x in text.splitlines() if "chunk CRC mismatch" in x][-1]
        check(path in line, "the message does not name the file: %s" % line)
        log("flipped byte refused: %s" % line.strip())
        f.signal(signal.SIGKILL)
        f.proc.wait()
    return 0


if __name__ == "__main__":
    main(scenario)
