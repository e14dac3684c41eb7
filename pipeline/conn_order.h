/* SPDX-License-Identifier: MIT */
/* Per-connection command order for the RESP server (pipeline/server.c).
 *
 * Design. A Redis client expects each connection's commands to take effect in the order
 * it sent them (redis-py pipelines, redis-cli --pipe): SET k v then GET k must answer v;
 * GET k then SET k w must not answer w. Writes of one connection are ordered among
 * themselves by the log (the raft thread proposes them in inbox order; a follower forwards
 * them over one peer link, in order). Reads are served through ReadIndex at "applied >=
 * the leader's commit index when the read was confirmed", which says nothing about a
 * write the same connection sent just before (not yet committed: the read misses it) or
 * just after (committed and applied before the read is served: the read sees it).
 *
 * So a connection alternates between two kinds of in-flight commands: any number of
 * writes, or any number of reads, never both. (The server sends a GET that arrives while
 * writes are in flight through the log, right behind them, as a write: it needs no wait.
 * MGET and EXISTS have no log form and wait.) A read that arrives while the connection
 * has writes outstanding waits until they are answered (a write is answered after it
 * was applied on the leader, so a ReadIndex started afterwards, on the leader or through
 * a follower, has a read index at or past it); a write that arrives while reads are
 * outstanding waits until they are answered (so it gets a log index past every state
 * those reads saw). Waiting costs nothing: the server simply stops parsing that
 * connection (the bytes stay in the loop's buffer, as on backpressure) and resumes when
 * the last command of the other kind is answered. A connection that only reads or only
 * writes pipelines exactly as before; the fast path is one comparison.
 *
 * Reads in flight together stay monotonic through the apply thread, which serves reads
 * in the order they were issued and never at an older state than an earlier read
 * (pipeline/apply.c: the read floor; pipeline/raft_thread.c: read rounds released in
 * order).
 *
 * Pure: no allocation, no threads; the server calls it on the net thread. */
#ifndef AEGIS_PIPELINE_CONN_ORDER_H
#define AEGIS_PIPELINE_CONN_ORDER_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/assert.h"

enum aegis_order_class {
    AEGIS_ORDER_NONE = 0,  /* Not ordered against the store (PING, INFO, admin). */
    AEGIS_ORDER_READ = 1,  /* GET, EXISTS, MGET: served through ReadIndex. */
    AEGIS_ORDER_WRITE = 2, /* SET, INCR, DEL, MSET, CAS, ...: through the log. */
};

struct aegis_conn_order {
    uint32_t reads;  /* Reads submitted and not yet answered. */
    uint32_t writes; /* Writes submitted and not yet answered. */
};

/* Whether a command of class @k may be submitted now; when not, the connection holds it
 * (stops parsing) until aegis__order_done says the way is free. */
static inline bool aegis__order_may_start(const struct aegis_conn_order *o,
                                          enum aegis_order_class k)
{
    switch (k) {
    case AEGIS_ORDER_READ:
        return o->writes == 0;
    case AEGIS_ORDER_WRITE:
        return o->reads == 0;
    default:
        return true;
    }
}

/* A command of class @k was submitted (it will be answered once). */
static inline void aegis__order_started(struct aegis_conn_order *o, enum aegis_order_class k)
{
    AEGIS_ASSERT(aegis__order_may_start(o, k));
    if (k == AEGIS_ORDER_READ) {
        o->reads++;
    } else if (k == AEGIS_ORDER_WRITE) {
        o->writes++;
    }
}

/* A command of class @k was answered. Returns true when it was the last of its class in
 * flight: a held command of the other class may go now. */
static inline bool aegis__order_done(struct aegis_conn_order *o, enum aegis_order_class k)
{
    if (k == AEGIS_ORDER_READ) {
        AEGIS_ASSERT(o->reads > 0);
        return --o->reads == 0;
    }
    if (k == AEGIS_ORDER_WRITE) {
        AEGIS_ASSERT(o->writes > 0);
        return --o->writes == 0;
    }
    return false;
}

/* The apply thread's read floor: reads are served in the order they reach it, each at an
 * index at least that of every read before it, so a later read never sees an older state
 * than an earlier one, even when the rounds that confirmed them answered with indices out
 * of order (a follower whose leader changed between two rounds). Returns the index the
 * read must wait for and raises @floor to it. */
static inline uint64_t aegis__read_floor(uint64_t *floor, uint64_t read_index)
{
    if (read_index > *floor) {
        *floor = read_index;
    }
    return *floor;
}

#endif /* AEGIS_PIPELINE_CONN_ORDER_H */
