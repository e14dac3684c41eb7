/* SPDX-License-Identifier: MIT */
/* Memory-backed snapshot source and sink for the core's snapshot_io (raft.h): the
 * snapshot is one aegis_buf (so at most AEGIS_BUF_LEN_MAX bytes). For the engine facade,
 * the simulation and unit tests; the pipeline streams files instead
 * (pipeline/snap_transfer.c).
 *
 * Source: the node's latest snapshot, set with aegis__snapshot_mem_set(); read copies a
 * range into a new buffer. Sink: one offer at a time assembled into a buffer of its
 * size; recv_open of the same offer (same leader, index, term, size) answers the bytes
 * already held, so an offer survives a core re-created over the same sink (a restart
 * that kept its partial snapshot). recv_finish runs the optional check on the whole
 * buffer (0 or a refusal, never AEGIS_EAGAIN); a refused offer is dropped. After a ready
 * names a received snapshot, aegis__snapshot_mem_installed() makes those bytes the
 * source's and returns them.
 *
 * Pure; single-threaded like the core it serves. */
#ifndef AEGIS_SNAPSHOT_MEM_H
#define AEGIS_SNAPSHOT_MEM_H

#include "engine/raft.h"

struct aegis_snapshot_mem {
    const struct aegis_allocator *alloc;
    struct aegis_snapshot_meta meta; /* Source: the node's snapshot (index 0: none). */
    struct aegis_buf *data;          /* One reference. */
    struct aegis_snapshot_meta recv_meta; /* Sink: the offer being assembled. */
    aegis_node_id recv_leader;
    struct aegis_buf *recv;          /* recv_meta's size; filled up to recv_len. */
    uint64_t recv_len;
    bool recv_done;                  /* Verified: waits for aegis__snapshot_mem_installed. */
    /* Optional check of a complete received snapshot; non-zero refuses it. */
    int (*check)(void *data, const struct aegis_snapshot_meta *meta,
                 const struct aegis_buf *snapshot);
    void *check_data;
};

void aegis__snapshot_mem_init(struct aegis_snapshot_mem *m, const struct aegis_allocator *a);
void aegis__snapshot_mem_close(struct aegis_snapshot_mem *m);

/* Fill @io with callbacks on @m (borrowed for as long as a core uses @io). */
void aegis__snapshot_mem_io(struct aegis_snapshot_mem *m, struct aegis_snapshot_io *io);

/* The node's snapshot is now @data for @meta (a reference is taken; NULL: empty). */
void aegis__snapshot_mem_set(struct aegis_snapshot_mem *m, const struct aegis_snapshot_meta *meta,
                             struct aegis_buf *data);

/* A ready named the received snapshot @meta: it becomes the source's too. Returns its
 * bytes (borrowed from @m; NULL for an empty snapshot). */
struct aegis_buf *aegis__snapshot_mem_installed(struct aegis_snapshot_mem *m,
                                                const struct aegis_snapshot_meta *meta);

#endif /* AEGIS_SNAPSHOT_MEM_H */
