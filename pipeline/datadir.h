/* SPDX-License-Identifier: MIT */
/* The data directory's guard rails: who may use it, and whose it is.
 *
 * Lock. "DIR/lock" (0600) is held with flock(LOCK_EX | LOCK_NB) for as long as the
 * directory is open, and holds the holder's pid in decimal. A second process on the same
 * directory is refused at once with the directory and that pid in the error, before it
 * reads or writes anything else there. The lock dies with its process (kill -9
 * included), so a stale lock file never blocks a restart.
 *
 * Identity. "DIR/identity" (64 bytes, 0600, CRC32C-protected; format byte by byte in
 * docs/storage.md and datadir.c) records the cluster id, the node id and a random 128-bit
 * cluster UUID (getrandom) made when the directory is first initialised. It is written
 * once, atomically (identity.tmp, write, fdatasync, close, rename, fsync of the
 * directory). A later start with another --id or --cluster-id is refused, naming both
 * values; a damaged identity file is refused too (the operator decides).
 *
 * Freshness. `fresh` is true when the directory held no identity, no hard state, no log
 * segment and no snapshot when it was opened: this start created it. A directory from
 * before identity files existed (a log or hard state but no identity) is not fresh: it
 * gets an identity with the ids of this start (logged).
 *
 * Permissions: the directory is created 0700 and every file in it 0600.
 * Thread use: open and close from the controlling thread. */
#ifndef AEGIS_PIPELINE_DATADIR_H
#define AEGIS_PIPELINE_DATADIR_H

#include <aegis/types.h>

#include "pipeline/fileio.h"

#define AEGIS_IDENTITY_BYTES 64u
#define AEGIS_DATADIR_MSG_MAX 9216u

struct aegis_identity {
    uint64_t cluster_id;
    aegis_node_id node_id;
    uint8_t uuid[16];
};

struct aegis_datadir {
    int lock_fd;                 /* -1 when not held. */
    bool fresh;                  /* See the file comment. */
    struct aegis_identity id;    /* As on disk after open. */
    char msg[AEGIS_DATADIR_MSG_MAX]; /* Why open failed (for the operator), or "". */
};

/* Create @dir (0700) if absent, take its lock, check or write its identity. Returns 0,
 * AEGIS_EBUSY (locked by another process: d->msg names the pid), AEGIS_EIDENTITY (another
 * node or cluster: d->msg names both), AEGIS_ECORRUPT (identity file damaged), or an OS
 * error. On error nothing stays held. @io: NULL for the real files. */
int aegis__datadir_open(struct aegis_datadir *d, const char *dir, uint64_t cluster_id,
                        aegis_node_id node_id, struct aegis_fileio *io);

/* Release the lock (the lock file stays). Safe on a closed or failed directory. */
void aegis__datadir_close(struct aegis_datadir *d);

/* Encode and decode the 64-byte identity record. Decode never trusts its input: 0, or
 * AEGIS_ECORRUPT (bad magic, version, reserved bytes or CRC). */
void aegis__identity_encode(const struct aegis_identity *id, uint8_t out[AEGIS_IDENTITY_BYTES]);
int aegis__identity_decode(const uint8_t *buf, size_t len, struct aegis_identity *out);

#endif /* AEGIS_PIPELINE_DATADIR_H */
