/* SPDX-License-Identifier: MIT */
/* Per-follower replication progress, kept by the leader (etcd's Progress, thesis §3.5).
 *
 * A follower is in one of three states:
 *   PROBE      the leader does not know where the logs match: it sends one AppendEntries
 *              and waits for the answer (or the next heartbeat answer) before another;
 *   REPLICATE  the logs match up to match: the leader streams AppendEntries optimistically,
 *              advancing next as it sends, within a window of in-flight messages bounded
 *              by count (inflight_msgs_max) and by payload bytes (inflight_bytes_max);
 *   SNAPSHOT   the entries the follower needs are compacted: the leader streams the
 *              snapshot in chunks, at most snapshot_chunks_inflight_max unanswered. It
 *              holds no bytes: only which snapshot, its size, the next offset to send
 *              (snap_next) and the prefix the follower said it holds (snap_acked); the
 *              bytes in flight are snap_next - snap_acked (raft_snapshot.c).
 *
 * The in-flight window is a ring of (last index, bytes) pairs, one per AppendEntries sent
 * in REPLICATE, allocated once at init with inflight_msgs_max slots: an acknowledgement up
 * to index m frees every message whose last index is <= m. */
#ifndef AEGIS_PROGRESS_H
#define AEGIS_PROGRESS_H

#include "engine/entry.h"

enum aegis_progress_state {
    AEGIS_PROGRESS_PROBE = 1,
    AEGIS_PROGRESS_REPLICATE = 2,
    AEGIS_PROGRESS_SNAPSHOT = 3,
};

struct aegis_inflight {
    aegis_index last;
    uint64_t bytes;
};

struct aegis_progress {
    aegis_node_id id;     /* AEGIS_NODE_NONE: slot unused. */
    uint8_t state;        /* enum aegis_progress_state. */
    aegis_index match;    /* Highest index known replicated (durable) there. */
    aegis_index next;     /* Next index to send. */
    bool probe_sent;      /* PROBE: an AppendEntries is out; wait for an answer. */
    bool recent_active;   /* Heard from it since the last check-quorum round. */
    uint64_t read_acked;  /* Highest ReadIndex round it confirmed. */

    /* Learners (raft_membership.c): promotable once match >= catchup_index; the leader
     * ticks spent waiting for it. */
    aegis_index catchup_index;
    uint32_t catchup_ticks;

    /* The in-flight window (REPLICATE). */
    struct aegis_inflight *inflights;
    uint32_t inflights_cap;
    uint32_t inflights_start;
    uint32_t inflights_count;
    uint64_t inflights_bytes;

    /* The snapshot transfer (SNAPSHOT). snap_acked <= snap_next <= snap_total. */
    struct aegis_snapshot_meta snap_meta;
    uint64_t snap_total;      /* Its size in bytes. */
    uint64_t snap_next;       /* Next byte to send. */
    uint64_t snap_acked;      /* The follower holds bytes [0, snap_acked). */
    bool snap_done_sent;      /* The last chunk is out: nothing more to send for now. */
    bool snap_waiting;        /* The source answered AEGIS_EAGAIN: ask again later. */
    bool snap_rewound;        /* Went back to snap_acked since the last progress: one
                                 rewind per loss, not one per out-of-order answer. */
    uint32_t snap_idle_ticks; /* Ticks without progress while chunks are out (resend
                                 from snap_acked after a timeout). */
};

/* Allocate the window of @cap slots. Returns 0 or AEGIS_ENOMEM. */
int aegis__progress_init(struct aegis_progress *p, uint32_t cap, const struct aegis_allocator *a);
void aegis__progress_close(struct aegis_progress *p, const struct aegis_allocator *a);

/* Start tracking follower @id whose logs are unknown: PROBE from @last_index + 1. Any
 * snapshot transfer is abandoned. */
void aegis__progress_reset(struct aegis_progress *p, aegis_node_id id, aegis_index last_index);

void aegis__progress_to_probe(struct aegis_progress *p);
void aegis__progress_to_replicate(struct aegis_progress *p);

/* Enter SNAPSHOT for @meta, @total_bytes long, from offset 0. */
void aegis__progress_to_snapshot(struct aegis_progress *p, const struct aegis_snapshot_meta *meta,
                                 uint64_t total_bytes);

/* Whether the window has room for another AppendEntries (REPLICATE). */
bool aegis__progress_window_open(const struct aegis_progress *p, uint64_t bytes_max);

/* Record an AppendEntries ending at @last carrying @bytes (REPLICATE: advances next). */
void aegis__progress_sent(struct aegis_progress *p, aegis_index last, uint64_t bytes);

/* A successful acknowledgement up to @match. Returns true when match moved forward. */
bool aegis__progress_ack(struct aegis_progress *p, aegis_index match);

/* Free the oldest in-flight message (a heartbeat answer while the window is full: some
 * message was probably lost). */
void aegis__progress_free_first(struct aegis_progress *p);

#endif /* AEGIS_PROGRESS_H */
