/* SPDX-License-Identifier: MIT */
/* aegis_node_stats(): the counters and stage latencies behind INFO and /metrics, copied
 * into the embedder's struct aegis_stats (include/aegis/aegis.h).
 *
 * Design. One table maps each metrics counter (pipeline/metrics.h, enum aegis_mctr) and
 * each node stat to its field's offset, so a field is filled by one row and a new
 * counter is one more row (and a field at the end of the public struct). The struct is
 * filled whole on the stack and then copied up to the caller's size: a caller built
 * against an older, shorter struct gets its prefix, never a byte past it. Reading is what
 * INFO does: relaxed loads of per-thread shards, histograms merged into a private copy
 * (heap: a histogram is tens of KiB), nothing reset. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <aegis/aegis.h>

#include "pipeline/metrics.h"
#include "pipeline/node_int.h"

#define F(field) offsetof(struct aegis_stats, field)

static const struct {
    enum aegis_mctr c;
    size_t off;
} counter_rows[] = {
    {AEGIS_MC_LOG_BATCHES, F(log_batches)},
    {AEGIS_MC_LOG_ENTRIES, F(log_entries)},
    {AEGIS_MC_LOG_BYTES, F(log_bytes)},
    {AEGIS_MC_ERR_LOG_WRITE, F(log_write_errors)},
    {AEGIS_MC_APPEND_SENT, F(append_sent)},
    {AEGIS_MC_APPEND_ENTRIES_SENT, F(append_entries_sent)},
    {AEGIS_MC_APPEND_RECEIVED, F(append_received)},
    {AEGIS_MC_APPEND_ACKED, F(append_acked)},
    {AEGIS_MC_APPLY_BATCHES, F(apply_batches)},
    {AEGIS_MC_APPLY_ENTRIES, F(apply_entries)},
    {AEGIS_MC_ELECTIONS, F(elections)},
    {AEGIS_MC_LEADER_CHANGES, F(leader_changes)},
    {AEGIS_MC_SNAPSHOTS_SENT, F(snapshots_sent)},
    {AEGIS_MC_SNAPSHOTS_RECEIVED, F(snapshots_received)},
    {AEGIS_MC_PEER_BYTES_OUT, F(peer_bytes_out)},
    {AEGIS_MC_PEER_BYTES_IN, F(peer_bytes_in)},
    {AEGIS_MC_ERR_PEER_DECODE, F(peer_decode_errors)},
    {AEGIS_MC_PEER_REJECTED, F(peer_rejected)},
    {AEGIS_MC_RING_FULL_PEER, F(ring_full_peer)},
    {AEGIS_MC_RING_FULL_LOG, F(ring_full_log)},
    {AEGIS_MC_RING_FULL_APPLY, F(ring_full_apply)},
    {AEGIS_MC_CLIENT_BYTES_OUT, F(client_bytes_out)},
    {AEGIS_MC_CLIENT_BYTES_IN, F(client_bytes_in)},
    {AEGIS_MC_CLIENT_OPENED, F(clients_opened)},
    {AEGIS_MC_CLIENT_CLOSED, F(clients_closed)},
    {AEGIS_MC_ERR_CLIENT_TRYAGAIN, F(client_err_tryagain)},
    {AEGIS_MC_ERR_CLIENT_UNKNOWN, F(client_err_unknown)},
    {AEGIS_MC_ERR_CLIENT_OTHER, F(client_err_other)},
    {AEGIS_MC_AUTH_FAILURES, F(auth_failures)},
    {AEGIS_MC_CLIENT_TIMEOUTS, F(client_timeouts)},
};

/* The node's own counters (struct aegis_node_stats in node_int.h). */
static const struct {
    size_t src, off;
} stat_rows[] = {
    {offsetof(struct aegis_node_stats, proposals), F(proposals)},
    {offsetof(struct aegis_node_stats, forwarded), F(forwarded)},
    {offsetof(struct aegis_node_stats, reads), F(reads)},
    {offsetof(struct aegis_node_stats, backpressure), F(backpressure)},
};

_Static_assert(AEGIS_STATS_STAGES == AEGIS_MH_STAGE_COUNT,
               "one public stage per stage histogram");

static void put(struct aegis_stats *s, size_t off, uint64_t v)
{
    memcpy((char *)s + off, &v, sizeof(v));
}

int aegis_node_stats(struct aegis_node *n, struct aegis_stats *out)
{
    struct aegis_stats s;
    struct aegis_hist *h;
    size_t want;

    if (n == NULL || out == NULL || out->size < offsetof(struct aegis_stats, log_batches)) {
        return AEGIS_EINVAL;
    }
    memset(&s, 0, sizeof(s));
    for (size_t i = 0; i < sizeof(counter_rows) / sizeof(counter_rows[0]); i++) {
        put(&s, counter_rows[i].off, aegis__metrics_counter(&n->metrics, counter_rows[i].c));
    }
    for (size_t i = 0; i < sizeof(stat_rows) / sizeof(stat_rows[0]); i++) {
        const uint64_t *p = (const uint64_t *)((const char *)&n->stats + stat_rows[i].src);

        put(&s, stat_rows[i].off, __atomic_load_n(p, __ATOMIC_RELAXED));
    }
    h = malloc(sizeof(*h));
    if (h == NULL) {
        return AEGIS_ENOMEM;
    }
    for (uint32_t i = 0; i < AEGIS_STATS_STAGES; i++) {
        aegis__hist_init(h);
        aegis__metrics_hist(&n->metrics, (enum aegis_mhist)i, h);
        s.stages[i] = (struct aegis_stage_stats){
            .count = aegis__hist_count(h),
            .p50_ns = aegis__hist_count(h) > 0 ? aegis__hist_percentile(h, 50.0) : 0,
            .p99_ns = aegis__hist_count(h) > 0 ? aegis__hist_percentile(h, 99.0) : 0,
            .max_ns = aegis__hist_max(h),
        };
    }
    free(h);
    want = out->size < sizeof(s) ? out->size : sizeof(s);
    s.size = (uint32_t)want;
    memcpy(out, &s, want);
    return 0;
}
