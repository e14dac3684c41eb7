/* SPDX-License-Identifier: MIT */
/* Metrics of one node: recording (the stamp ring of the raft thread), reading (merges of
 * live histograms, sums of counter shards) and the two text reports built from them: the
 * INFO sections "stats", "latency", "persistence" and "memory" (Redis' format) and the Prometheus
 * text exposition format. See metrics.h for the design and the stages.
 *
 * Report formats.
 *   INFO latency: one line per histogram,
 *     <name>:count=N,mean=X,p50=X,p90=X,p99=X,p99.9=X,max=X
 *   where <name> is "stage_<stage>_usec" or "<dist>_usec" (times in microseconds, three
 *   decimals) or "<dist>" (counts). Samples since the last CONFIG RESETSTAT (or start).
 *   Prometheus: times as summaries in seconds (aegis_stage_seconds{stage="..."},
 *   aegis_log_sync_seconds), sizes as summaries of counts, counters as *_total, gauges
 *   bare; always cumulative since the process started. */
#include "pipeline/metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pipeline/log_reader.h"
#include "pipeline/node_int.h"

struct mhist_desc {
    const char *name;     /* INFO key stem and Prometheus label or family. */
    bool is_time;
    bool is_stage;
    const char *help;
};

static const struct mhist_desc mhist_descs[AEGIS_MH_COUNT] = {
    [AEGIS_MH_RECEIVE_PROPOSE] = {"receive_propose", true, true, NULL},
    [AEGIS_MH_PROPOSE_DURABLE] = {"propose_durable", true, true, NULL},
    [AEGIS_MH_PROPOSE_COMMIT] = {"propose_commit", true, true, NULL},
    [AEGIS_MH_COMMIT_APPLY] = {"commit_apply", true, true, NULL},
    [AEGIS_MH_APPLY_REPLY] = {"apply_reply", true, true, NULL},
    [AEGIS_MH_REQUEST] = {"request", true, true, NULL},
    [AEGIS_MH_FOLLOWER_RECEIVE_DURABLE] = {"follower_receive_durable", true, true, NULL},
    [AEGIS_MH_FOLLOWER_DURABLE_ACK] = {"follower_durable_ack", true, true, NULL},
    [AEGIS_MH_LOG_SYNC] = {"log_sync", true, false,
                           "Time of one group commit: a batch's writes and fdatasyncs."},
    [AEGIS_MH_LOG_BATCH_ENTRIES] = {"log_batch_entries", false, false,
                                    "Entries per batch written by the log thread."},
    [AEGIS_MH_APPEND_ENTRIES] = {"append_batch_entries", false, false,
                                 "Entries per AppendEntries message sent."},
    [AEGIS_MH_APPLY_BATCH_ENTRIES] = {"apply_batch_entries", false, false,
                                      "Entries applied per apply-thread batch."},
    [AEGIS_MH_PROPOSE_BATCH] = {"propose_batch_requests", false, false,
                                "Proposals taken per drain of the inbox."},
};

void aegis__metrics_init(struct aegis_metrics *m)
{
    memset(m, 0, sizeof(*m));
    for (uint32_t i = 0; i < AEGIS_MH_COUNT; i++) {
        aegis__hist_init(&m->hist[i]);
    }
    m->last_role = AEGIS_ROLE_FOLLOWER;
    pthread_mutex_init(&m->baseline_lock, NULL);
}

void aegis__metrics_close(struct aegis_metrics *m)
{
    for (uint32_t i = 0; i < AEGIS_MH_COUNT; i++) {
        aegis__hist_destroy(NULL, m->baseline[i]);
        m->baseline[i] = NULL;
    }
    pthread_mutex_destroy(&m->baseline_lock);
}

static struct aegis_metrics_stamp *stamp_of(struct aegis_metrics *m, aegis_index index)
{
    return &m->stamps[index & (AEGIS_METRICS_STAMPS - 1)];
}

void aegis__metrics_proposed(struct aegis_metrics *m, aegis_index index, uint64_t received_ns,
                             uint64_t now_ns)
{
    struct aegis_metrics_stamp *s = stamp_of(m, index);

    AEGIS_ASSERT(index > 0);
    *s = (struct aegis_metrics_stamp){.index = index, .in_ns = now_ns,
                                      .kind = AEGIS_STAMP_PROPOSED};
    aegis__metrics_since(m, AEGIS_MH_RECEIVE_PROPOSE, received_ns, now_ns);
}

/* The number of indexes in [@first, @last] to walk, at most the ring's worth (so a loop
 * over them is bounded by AEGIS_METRICS_STAMPS whatever the values: the walks below
 * count iterations, they never compare an index against a bound that could be the last
 * value of the type). */
static uint64_t walk_count(aegis_index first, aegis_index last)
{
    if (last < first) {
        return 0;
    }
    return last - first >= AEGIS_METRICS_STAMPS ? AEGIS_METRICS_STAMPS : last - first + 1;
}

void aegis__metrics_appended(struct aegis_metrics *m, aegis_index first, aegis_index last,
                             uint64_t recv_ns)
{
    uint64_t n;

    AEGIS_ASSERT(first > 0);
    n = walk_count(first, last);
    if (n == 0) {
        return;
    }
    first = last - (n - 1); /* Only the newest fit. */
    for (uint64_t k = 0; k < n; k++) {
        aegis_index i = first + k;
        struct aegis_metrics_stamp *s = stamp_of(m, i);

        if (s->index == i && s->kind == AEGIS_STAMP_RECEIVED && s->durable_ns == 0) {
            continue; /* A retransmission: keep the first arrival. */
        }
        *s = (struct aegis_metrics_stamp){.index = i, .in_ns = recv_ns,
                                          .kind = AEGIS_STAMP_RECEIVED};
    }
    /* Entries at or above @first are new (a suffix may have been replaced): let the
     * durable and ack walks see them again. */
    if (m->durable_seen >= first) {
        m->durable_seen = first - 1;
    }
    if (m->acked_seen >= first) {
        m->acked_seen = first - 1;
    }
}

/* The indexes (@seen, @upto] to walk, at most the ring's worth (older ones are gone). */
static aegis_index walk_start(aegis_index seen, aegis_index upto)
{
    if (upto - seen > AEGIS_METRICS_STAMPS) {
        return upto - AEGIS_METRICS_STAMPS + 1;
    }
    return seen + 1;
}

/* What one walk does with a stamp of its range that is still in the ring. */
typedef void (*stamp_visit_fn)(struct aegis_metrics *m, struct aegis_metrics_stamp *s,
                               uint64_t now_ns);

/* The one stamp walk: visit the stamps of indexes (*seen, upto] still in the ring (at
 * most the ring's worth), then mark them seen. */
static void stamp_walk(struct aegis_metrics *m, aegis_index *seen, aegis_index upto,
                       uint64_t now_ns, stamp_visit_fn visit)
{
    aegis_index from;

    AEGIS_ASSERT(upto > *seen);
    from = walk_start(*seen, upto);
    for (uint64_t k = 0, n = walk_count(from, upto); k < n; k++) {
        aegis_index i = from + k;
        struct aegis_metrics_stamp *s = stamp_of(m, i);

        if (s->index == i) {
            visit(m, s, now_ns);
        }
    }
    *seen = upto;
}

static void visit_durable(struct aegis_metrics *m, struct aegis_metrics_stamp *s,
                          uint64_t now_ns)
{
    if (s->durable_ns != 0) {
        return;
    }
    s->durable_ns = now_ns;
    aegis__metrics_since(m,
                         s->kind == AEGIS_STAMP_PROPOSED ? AEGIS_MH_PROPOSE_DURABLE
                                                         : AEGIS_MH_FOLLOWER_RECEIVE_DURABLE,
                         s->in_ns, now_ns);
}

static void visit_committed(struct aegis_metrics *m, struct aegis_metrics_stamp *s,
                            uint64_t now_ns)
{
    if (s->kind == AEGIS_STAMP_PROPOSED) {
        aegis__metrics_since(m, AEGIS_MH_PROPOSE_COMMIT, s->in_ns, now_ns);
    }
}

static void visit_acked(struct aegis_metrics *m, struct aegis_metrics_stamp *s, uint64_t now_ns)
{
    if (s->kind == AEGIS_STAMP_RECEIVED) {
        aegis__metrics_since(m, AEGIS_MH_FOLLOWER_DURABLE_ACK, s->durable_ns, now_ns);
    }
}

void aegis__metrics_durable(struct aegis_metrics *m, aegis_index index, uint64_t now_ns)
{
    if (index <= m->durable_seen) {
        m->durable_seen = index; /* The log was cut back: walk again from there. */
        return;
    }
    stamp_walk(m, &m->durable_seen, index, now_ns, visit_durable);
}

void aegis__metrics_committed(struct aegis_metrics *m, aegis_index index, uint64_t now_ns)
{
    if (index > m->commit_seen) {
        stamp_walk(m, &m->commit_seen, index, now_ns, visit_committed);
    }
}

void aegis__metrics_acked(struct aegis_metrics *m, aegis_index index, uint64_t now_ns)
{
    if (index > m->acked_seen) {
        stamp_walk(m, &m->acked_seen, index, now_ns, visit_acked);
    }
}

void aegis__metrics_observe(struct aegis_metrics *m, enum aegis_role role, aegis_term term,
                            aegis_node_id leader)
{
    if (role == AEGIS_ROLE_CANDIDATE && (m->last_role != AEGIS_ROLE_CANDIDATE ||
                                         term != m->last_term)) {
        aegis__metrics_add(m, AEGIS_MT_RAFT, AEGIS_MC_ELECTIONS, 1);
    }
    if (leader != AEGIS_NODE_NONE && leader != m->last_leader) {
        aegis__metrics_add(m, AEGIS_MT_RAFT, AEGIS_MC_LEADER_CHANGES, 1);
        m->last_leader = leader;
    }
    m->last_role = role;
    m->last_term = term;
}

uint64_t aegis__metrics_counter(const struct aegis_metrics *m, enum aegis_mctr c)
{
    uint64_t sum = 0;

    AEGIS_ASSERT((unsigned)c < AEGIS_MC_COUNT);
    for (uint32_t t = 0; t < AEGIS_MT_COUNT; t++) {
        sum += __atomic_load_n(&m->shard[t].c[c], __ATOMIC_RELAXED);
    }
    return sum;
}

void aegis__metrics_hist(const struct aegis_metrics *m, enum aegis_mhist h,
                         struct aegis_hist *out)
{
    AEGIS_ASSERT((unsigned)h < AEGIS_MH_COUNT);
    aegis__hist_merge(out, &m->hist[h]);
}

const char *aegis__metrics_hist_name(enum aegis_mhist h)
{
    AEGIS_ASSERT((unsigned)h < AEGIS_MH_COUNT);
    return mhist_descs[h].name;
}

bool aegis__metrics_hist_is_time(enum aegis_mhist h)
{
    AEGIS_ASSERT((unsigned)h < AEGIS_MH_COUNT);
    return mhist_descs[h].is_time;
}

int aegis__metrics_reset_baseline(struct aegis_metrics *m)
{
    int rv = 0;

    pthread_mutex_lock(&m->baseline_lock);
    for (uint32_t i = 0; i < AEGIS_MH_COUNT; i++) {
        if (m->baseline[i] == NULL) {
            m->baseline[i] = aegis__hist_create(NULL);
            if (m->baseline[i] == NULL) {
                rv = AEGIS_ENOMEM;
                break;
            }
        }
        aegis__hist_init(m->baseline[i]);
        aegis__hist_merge(m->baseline[i], &m->hist[i]);
    }
    pthread_mutex_unlock(&m->baseline_lock);
    return rv;
}

void aegis__metrics_hist_since_reset(struct aegis_metrics *m, enum aegis_mhist h,
                                     struct aegis_hist *out)
{
    AEGIS_ASSERT((unsigned)h < AEGIS_MH_COUNT);
    pthread_mutex_lock(&m->baseline_lock);
    aegis__hist_merge(out, &m->hist[h]);
    if (m->baseline[h] != NULL) {
        aegis__hist_sub(out, m->baseline[h]);
    }
    pthread_mutex_unlock(&m->baseline_lock);
}

void aegis__text_printf(struct aegis_text *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (t->failed) {
        return;
    }
    /* Bounded: at most two rounds, the second with room for the whole line. */
    for (int round = 0; round < 2; round++) {
        size_t room = t->cap - t->len;

        va_start(ap, fmt);
        n = vsnprintf(t->data != NULL ? t->data + t->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if ((size_t)n < room) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap != 0 ? t->cap : 4096;

        while (cap - t->len <= (size_t)n) {
            cap *= 2;
        }
        char *p = realloc(t->data, cap);

        if (p == NULL) {
            t->failed = true;
            return;
        }
        t->data = p;
        t->cap = cap;
    }
}

void aegis__text_free(struct aegis_text *t)
{
    free(t->data);
    *t = (struct aegis_text){0};
}

static bool wanted(const char *want, const char *name)
{
    return want == NULL || strcasecmp(want, "all") == 0 || strcasecmp(want, "everything") == 0 ||
           strcasecmp(want, name) == 0;
}

/* One INFO line for a histogram: counts as they are, times in microseconds. */
static void info_hist(struct aegis_text *t, const char *prefix, enum aegis_mhist h,
                      const struct aegis_hist *x)
{
    static const double qs[] = {50.0, 90.0, 99.0, 99.9};
    static const char *const qn[] = {"p50", "p90", "p99", "p99.9"};
    double div = mhist_descs[h].is_time ? 1000.0 : 1.0;
    const char *unit = mhist_descs[h].is_time ? "_usec" : "";

    aegis__text_printf(t, "%s%s%s:count=%llu,mean=%.3f", prefix, mhist_descs[h].name, unit,
                       (unsigned long long)aegis__hist_count(x), aegis__hist_mean(x) / div);
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        aegis__text_printf(t, ",%s=%.3f", qn[i], (double)aegis__hist_percentile(x, qs[i]) / div);
    }
    aegis__text_printf(t, ",max=%.3f\r\n", (double)aegis__hist_max(x) / div);
}

static uint64_t ctr(struct aegis_node *n, enum aegis_mctr c)
{
    return aegis__metrics_counter(&n->metrics, c);
}

static uint64_t stat_load(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void info_stats(struct aegis_node *n, struct aegis_text *t)
{
    const struct aegis_node_stats *st = &n->stats;
    uint64_t opened = ctr(n, AEGIS_MC_CLIENT_OPENED), closed = ctr(n, AEGIS_MC_CLIENT_CLOSED);

    aegis__text_printf(t, "# Stats\r\nconnected_clients:%llu\r\n"
                          "total_connections_received:%llu\r\n",
                       (unsigned long long)(opened - closed), (unsigned long long)opened);
    aegis__text_printf(t, "proposals:%llu\r\nforwarded:%llu\r\nreads:%llu\r\n"
                          "applied_entries:%llu\r\napply_batches:%llu\r\n",
                       (unsigned long long)stat_load(&st->proposals),
                       (unsigned long long)stat_load(&st->forwarded),
                       (unsigned long long)stat_load(&st->reads),
                       (unsigned long long)ctr(n, AEGIS_MC_APPLY_ENTRIES),
                       (unsigned long long)ctr(n, AEGIS_MC_APPLY_BATCHES));
    aegis__text_printf(t, "append_sent:%llu\r\nappend_entries_sent:%llu\r\n"
                          "append_received:%llu\r\nappend_acked:%llu\r\n",
                       (unsigned long long)ctr(n, AEGIS_MC_APPEND_SENT),
                       (unsigned long long)ctr(n, AEGIS_MC_APPEND_ENTRIES_SENT),
                       (unsigned long long)ctr(n, AEGIS_MC_APPEND_RECEIVED),
                       (unsigned long long)ctr(n, AEGIS_MC_APPEND_ACKED));
    aegis__text_printf(t, "peer_msgs_in:%llu\r\npeer_msgs_out:%llu\r\npeer_msgs_dropped:%llu\r\n"
                          "peer_msgs_rejected:%llu\r\n"
                          "peer_send_failed:%llu\r\npeer_bytes_in:%llu\r\npeer_bytes_out:%llu\r\n"
                          "client_bytes_in:%llu\r\nclient_bytes_out:%llu\r\n",
                       (unsigned long long)stat_load(&st->peer_msgs_in),
                       (unsigned long long)stat_load(&st->peer_msgs_out),
                       (unsigned long long)stat_load(&st->peer_msgs_dropped),
                       (unsigned long long)ctr(n, AEGIS_MC_PEER_REJECTED),
                       (unsigned long long)stat_load(&st->peer_send_failed),
                       (unsigned long long)ctr(n, AEGIS_MC_PEER_BYTES_IN),
                       (unsigned long long)ctr(n, AEGIS_MC_PEER_BYTES_OUT),
                       (unsigned long long)ctr(n, AEGIS_MC_CLIENT_BYTES_IN),
                       (unsigned long long)ctr(n, AEGIS_MC_CLIENT_BYTES_OUT));
    aegis__text_printf(t, "backpressure:%llu\r\nring_full_peer:%llu\r\nring_full_log:%llu\r\n"
                          "ring_full_apply:%llu\r\nelections:%llu\r\nleader_changes:%llu\r\n"
                          "snapshots_taken:%llu\r\nsnapshots_installed:%llu\r\n"
                          "snapshots_sent:%llu\r\nsnapshots_received:%llu\r\n",
                       (unsigned long long)stat_load(&st->backpressure),
                       (unsigned long long)ctr(n, AEGIS_MC_RING_FULL_PEER),
                       (unsigned long long)ctr(n, AEGIS_MC_RING_FULL_LOG),
                       (unsigned long long)ctr(n, AEGIS_MC_RING_FULL_APPLY),
                       (unsigned long long)ctr(n, AEGIS_MC_ELECTIONS),
                       (unsigned long long)ctr(n, AEGIS_MC_LEADER_CHANGES),
                       (unsigned long long)stat_load(&st->snapshots_taken),
                       (unsigned long long)stat_load(&st->snapshots_installed),
                       (unsigned long long)ctr(n, AEGIS_MC_SNAPSHOTS_SENT),
                       (unsigned long long)ctr(n, AEGIS_MC_SNAPSHOTS_RECEIVED));
    aegis__text_printf(t, "errors_tryagain:%llu\r\nerrors_unknown:%llu\r\nerrors_other:%llu\r\n"
                          "errors_peer_decode:%llu\r\nerrors_log_write:%llu\r\n"
                          "auth_failures:%llu\r\nclient_timeouts:%llu\r\n\r\n",
                       (unsigned long long)ctr(n, AEGIS_MC_ERR_CLIENT_TRYAGAIN),
                       (unsigned long long)ctr(n, AEGIS_MC_ERR_CLIENT_UNKNOWN),
                       (unsigned long long)ctr(n, AEGIS_MC_ERR_CLIENT_OTHER),
                       (unsigned long long)ctr(n, AEGIS_MC_ERR_PEER_DECODE),
                       (unsigned long long)ctr(n, AEGIS_MC_ERR_LOG_WRITE),
                       (unsigned long long)ctr(n, AEGIS_MC_AUTH_FAILURES),
                       (unsigned long long)ctr(n, AEGIS_MC_CLIENT_TIMEOUTS));
}

static void info_latency(struct aegis_node *n, struct aegis_text *t, struct aegis_hist *x)
{
    aegis__text_printf(t, "# Latency\r\n");
    for (uint32_t h = 0; h < AEGIS_MH_COUNT; h++) {
        if (h == AEGIS_MH_LOG_SYNC || h == AEGIS_MH_LOG_BATCH_ENTRIES) {
            continue; /* In # Persistence. */
        }
        aegis__hist_init(x);
        aegis__metrics_hist_since_reset(&n->metrics, (enum aegis_mhist)h, x);
        info_hist(t, h < AEGIS_MH_STAGE_COUNT ? "stage_" : "", (enum aegis_mhist)h, x);
    }
    aegis__text_printf(t, "\r\n");
}

static void info_persistence(struct aegis_node *n, struct aegis_text *t, struct aegis_hist *x)
{
    aegis__text_printf(t, "# Persistence\r\nfsync:%s\r\nlog_batches:%llu\r\nlog_entries:%llu\r\n"
                          "log_bytes:%llu\r\nfsyncs:%llu\r\n",
                       n->config.fsync == AEGIS_FSYNC_NONE ? "none" : "batch",
                       (unsigned long long)ctr(n, AEGIS_MC_LOG_BATCHES),
                       (unsigned long long)ctr(n, AEGIS_MC_LOG_ENTRIES),
                       (unsigned long long)ctr(n, AEGIS_MC_LOG_BYTES),
                       (unsigned long long)(n->log != NULL ? aegis__log_writer_syncs(n->log) : 0));
    {   /* Log retention (log_reader.h). */
        struct aegis_log_reader_stats ls;
        uint64_t kept = 0;

        aegis__log_reader_stats(n->reader, &ls);
        if (n->log != NULL) {
            (void)aegis__log_writer_retained(n->log, &kept);
        }
        aegis__text_printf(t, "log_cache_bytes:%llu\r\nlog_cache_entries:%llu\r\n"
                              "log_retained_bytes:%llu\r\nlog_entries_sent_from_cache:%llu\r\n"
                              "log_entries_sent_from_disk:%llu\r\nlog_reads:%llu\r\n"
                              "log_read_errors:%llu\r\n",
                           (unsigned long long)ls.cache_bytes, (unsigned long long)ls.cache_entries,
                           (unsigned long long)kept, (unsigned long long)ls.sent_from_cache,
                           (unsigned long long)ls.sent_from_disk, (unsigned long long)ls.reads,
                           (unsigned long long)ls.errors);
    }
    aegis__hist_init(x);
    aegis__metrics_hist_since_reset(&n->metrics, AEGIS_MH_LOG_SYNC, x);
    info_hist(t, "", AEGIS_MH_LOG_SYNC, x);
    aegis__hist_init(x);
    aegis__metrics_hist_since_reset(&n->metrics, AEGIS_MH_LOG_BATCH_ENTRIES, x);
    info_hist(t, "", AEGIS_MH_LOG_BATCH_ENTRIES, x);
    aegis__text_printf(t, "\r\n");
}

/* INFO memory: what the state and the snapshot hold. state_bytes is the built-in KV's
 * keys and values (0 for an embedder's machine); log_cache_entries estimates the entries
 * the core keeps in memory (those after its snapshot's index less snapshot_trailing: the
 * core does not count bytes yet); the snapshot_* lines come from the snapshot writer. */
static void info_memory(struct aegis_node *n, struct aegis_text *t)
{
    struct aegis_snap_stats *ss = &n->snap_stats;
    uint64_t trailing = n->config.snapshot_threshold / 10 + 16, floor;
    struct aegis_status s;

    aegis_node_status(n, &s);
    floor = s.snapshot_index > trailing ? s.snapshot_index - trailing : 0;
    aegis__text_printf(
        t,
        "# Memory\r\nstate_bytes:%llu\r\nlog_cache_entries:%llu\r\n"
        "snapshot_in_progress:%llu\r\nsnapshot_bytes_written:%llu\r\n"
        "snapshot_last_index:%llu\r\nsnapshot_last_bytes:%llu\r\n"
        "snapshot_last_duration_ms:%llu\r\nsnapshots_failed:%llu\r\n\r\n",
        (unsigned long long)stat_load(&ss->state_bytes),
        (unsigned long long)(s.last_index > floor ? s.last_index - floor : 0),
        (unsigned long long)stat_load(&ss->in_progress),
        (unsigned long long)stat_load(&ss->written_bytes),
        (unsigned long long)stat_load(&ss->last_index),
        (unsigned long long)stat_load(&ss->last_bytes),
        (unsigned long long)(stat_load(&ss->last_ns) / 1000000u),
        (unsigned long long)stat_load(&ss->failed));
}

void aegis__metrics_info(struct aegis_node *n, const char *want, struct aegis_text *t)
{
    struct aegis_hist *x = NULL;

    if (wanted(want, "stats")) {
        info_stats(n, t);
    }
    if (wanted(want, "memory")) {
        info_memory(n, t);
    }
    if (!wanted(want, "latency") && !wanted(want, "persistence")) {
        return;
    }
    x = aegis__hist_create(NULL);
    if (x == NULL) {
        t->failed = true;
        return;
    }
    if (wanted(want, "latency")) {
        info_latency(n, t, x);
    }
    if (wanted(want, "persistence")) {
        info_persistence(n, t, x);
    }
    aegis__hist_destroy(NULL, x);
}

/* Prometheus. */

static void prom_family(struct aegis_text *t, const char *name, const char *type,
                        const char *help)
{
    aegis__text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The samples of one summary: quantiles, _sum and _count, with an optional label. */
static void prom_summary(struct aegis_text *t, const char *family, const char *label,
                         const struct aegis_hist *x, bool is_time)
{
    static const char *const qn[] = {"0.5", "0.9", "0.99", "0.999"};
    static const double qs[] = {50.0, 90.0, 99.0, 99.9};
    double div = is_time ? 1e9 : 1.0;
    const char *sep = label != NULL ? "," : "";

    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        aegis__text_printf(t, "%s{%s%squantile=\"%s\"} %.9g\n", family,
                           label != NULL ? label : "", sep, qn[i],
                           (double)aegis__hist_percentile(x, qs[i]) / div);
    }
    aegis__text_printf(t, "%s_sum%s%s%s %.9g\n%s_count%s%s%s %llu\n", family,
                       label != NULL ? "{" : "", label != NULL ? label : "",
                       label != NULL ? "}" : "", (double)x->sum / div, family,
                       label != NULL ? "{" : "", label != NULL ? label : "",
                       label != NULL ? "}" : "", (unsigned long long)aegis__hist_count(x));
}

static void prom_hists(struct aegis_node *n, struct aegis_text *t, struct aegis_hist *x)
{
    char family[96], label[96];

    prom_family(t, "aegis_stage_seconds", "summary",
                "Time between the stages of a write (see docs/profiling.md).");
    for (uint32_t h = 0; h < AEGIS_MH_STAGE_COUNT; h++) {
        aegis__hist_init(x);
        aegis__metrics_hist(&n->metrics, (enum aegis_mhist)h, x);
        snprintf(label, sizeof(label), "stage=\"%s\"", mhist_descs[h].name);
        prom_summary(t, "aegis_stage_seconds", label, x, true);
    }
    for (uint32_t h = AEGIS_MH_STAGE_COUNT; h < AEGIS_MH_COUNT; h++) {
        const struct mhist_desc *d = &mhist_descs[h];

        snprintf(family, sizeof(family), "aegis_%s%s", d->name, d->is_time ? "_seconds" : "");
        prom_family(t, family, "summary", d->help);
        aegis__hist_init(x);
        aegis__metrics_hist(&n->metrics, (enum aegis_mhist)h, x);
        prom_summary(t, family, NULL, x, d->is_time);
    }
}

struct prom_counter {
    const char *family; /* Consecutive entries of one family share HELP and TYPE. */
    const char *label;  /* NULL or 'name="value"'. */
    const char *help;
    int mctr;           /* enum aegis_mctr, or -1: the node stat at stat_offset. */
    size_t stat_offset;
};

#define MC(fam, lab, help, c) {(fam), (lab), (help), (c), 0}
#define NS(fam, lab, help, field)                                                          \
    {(fam), (lab), (help), -1, offsetof(struct aegis_node_stats, field)}

static const struct prom_counter prom_counters[] = {
    MC("aegis_log_batches_total", NULL, "Batches written by the log thread.",
       AEGIS_MC_LOG_BATCHES),
    MC("aegis_log_entries_total", NULL, "Entries written by the log thread.",
       AEGIS_MC_LOG_ENTRIES),
    MC("aegis_log_written_bytes_total", NULL, "Record bytes appended to log segments.",
       AEGIS_MC_LOG_BYTES),
    MC("aegis_append_messages_sent_total", NULL, "AppendEntries messages sent.",
       AEGIS_MC_APPEND_SENT),
    MC("aegis_append_entries_sent_total", NULL, "Entries sent in AppendEntries messages.",
       AEGIS_MC_APPEND_ENTRIES_SENT),
    MC("aegis_append_messages_received_total", NULL, "AppendEntries messages received.",
       AEGIS_MC_APPEND_RECEIVED),
    MC("aegis_append_acks_sent_total", NULL, "Successful AppendEntries responses sent.",
       AEGIS_MC_APPEND_ACKED),
    MC("aegis_apply_batches_total", NULL, "Apply-thread batches that applied entries.",
       AEGIS_MC_APPLY_BATCHES),
    MC("aegis_applied_entries_total", NULL, "Entries applied to the state machine.",
       AEGIS_MC_APPLY_ENTRIES),
    MC("aegis_network_sent_bytes_total", "link=\"peer\"", "Bytes queued for sending.",
       AEGIS_MC_PEER_BYTES_OUT),
    MC("aegis_network_sent_bytes_total", "link=\"client\"", NULL, AEGIS_MC_CLIENT_BYTES_OUT),
    MC("aegis_network_received_bytes_total", "link=\"peer\"", "Bytes received.",
       AEGIS_MC_PEER_BYTES_IN),
    MC("aegis_network_received_bytes_total", "link=\"client\"", NULL,
       AEGIS_MC_CLIENT_BYTES_IN),
    MC("aegis_client_connections_total", NULL, "Client connections accepted.",
       AEGIS_MC_CLIENT_OPENED),
    NS("aegis_ring_full_total", "ring=\"inbox\"",
       "Times a bounded queue between threads was full (backpressure).", backpressure),
    MC("aegis_ring_full_total", "ring=\"peer\"", NULL, AEGIS_MC_RING_FULL_PEER),
    MC("aegis_ring_full_total", "ring=\"log\"", NULL, AEGIS_MC_RING_FULL_LOG),
    MC("aegis_ring_full_total", "ring=\"apply\"", NULL, AEGIS_MC_RING_FULL_APPLY),
    MC("aegis_elections_total", NULL, "Elections this node started.", AEGIS_MC_ELECTIONS),
    MC("aegis_leader_changes_total", NULL, "Changes of the known leader.",
       AEGIS_MC_LEADER_CHANGES),
    MC("aegis_snapshots_sent_total", NULL, "Snapshots sent to followers.",
       AEGIS_MC_SNAPSHOTS_SENT),
    MC("aegis_snapshots_received_total", NULL, "Snapshots received from the leader.",
       AEGIS_MC_SNAPSHOTS_RECEIVED),
    NS("aegis_snapshots_taken_total", NULL, "Snapshots taken by this node.", snapshots_taken),
    NS("aegis_proposals_total", NULL, "Commands proposed by this node as leader.", proposals),
    NS("aegis_forwarded_total", NULL, "Commands forwarded to the leader.", forwarded),
    NS("aegis_reads_total", NULL, "Linearizable reads requested.", reads),
    NS("aegis_peer_messages_sent_total", NULL, "Raft messages sent.", peer_msgs_out),
    NS("aegis_peer_messages_received_total", NULL, "Raft messages received.", peer_msgs_in),
    MC("aegis_peer_messages_rejected_total", NULL,
       "Peer messages refused: invalid values or out of place (peer_msgs_rejected).",
       AEGIS_MC_PEER_REJECTED),
    MC("aegis_errors_total", "kind=\"client_tryagain\"", "Errors by kind.",
       AEGIS_MC_ERR_CLIENT_TRYAGAIN),
    MC("aegis_errors_total", "kind=\"client_unknown\"", NULL, AEGIS_MC_ERR_CLIENT_UNKNOWN),
    MC("aegis_errors_total", "kind=\"client_other\"", NULL, AEGIS_MC_ERR_CLIENT_OTHER),
    MC("aegis_errors_total", "kind=\"peer_decode\"", NULL, AEGIS_MC_ERR_PEER_DECODE),
    NS("aegis_errors_total", "kind=\"peer_send\"", NULL, peer_send_failed),
    NS("aegis_errors_total", "kind=\"peer_dropped\"", NULL, peer_msgs_dropped),
    MC("aegis_errors_total", "kind=\"log_write\"", NULL, AEGIS_MC_ERR_LOG_WRITE),
    MC("aegis_auth_failures_total", NULL, "Client AUTH attempts refused.",
       AEGIS_MC_AUTH_FAILURES),
    MC("aegis_client_timeouts_total", NULL,
       "Client connections closed by the idle timeout or a request deadline.",
       AEGIS_MC_CLIENT_TIMEOUTS),
};

static void prom_counters_all(struct aegis_node *n, struct aegis_text *t)
{
    const char *last = "";

    for (size_t i = 0; i < sizeof(prom_counters) / sizeof(prom_counters[0]); i++) {
        const struct prom_counter *c = &prom_counters[i];
        uint64_t v;

        if (c->mctr >= 0) {
            v = ctr(n, (enum aegis_mctr)c->mctr);
        } else {
            v = stat_load((const uint64_t *)((const char *)&n->stats + c->stat_offset));
        }
        if (strcmp(last, c->family) != 0) {
            AEGIS_ASSERT(c->help != NULL);
            prom_family(t, c->family, "counter", c->help);
            last = c->family;
        }
        aegis__text_printf(t, "%s%s%s%s %llu\n", c->family, c->label != NULL ? "{" : "",
                           c->label != NULL ? c->label : "", c->label != NULL ? "}" : "",
                           (unsigned long long)v);
    }
    prom_family(t, "aegis_fsyncs_total", "counter", "fdatasync calls issued by the log thread.");
    aegis__text_printf(t, "aegis_fsyncs_total %llu\n",
                       (unsigned long long)(n->log != NULL ? aegis__log_writer_syncs(n->log) : 0));
}

static void prom_gauges(struct aegis_node *n, struct aegis_text *t)
{
    struct aegis_status s;
    uint64_t opened = ctr(n, AEGIS_MC_CLIENT_OPENED), closed = ctr(n, AEGIS_MC_CLIENT_CLOSED);

    aegis_node_status(n, &s);
    prom_family(t, "aegis_node_info", "gauge", "Constant 1, labelled with the node's settings.");
    aegis__text_printf(t, "aegis_node_info{id=\"%llu\",fsync=\"%s\"} 1\n",
                       (unsigned long long)n->config.id,
                       n->config.fsync == AEGIS_FSYNC_NONE ? "none" : "batch");
    prom_family(t, "aegis_is_leader", "gauge", "1 on the leader, 0 elsewhere.");
    aegis__text_printf(t, "aegis_is_leader %d\n", s.role == AEGIS_NODE_LEADER ? 1 : 0);
    prom_family(t, "aegis_term", "gauge", "Current Raft term.");
    aegis__text_printf(t, "aegis_term %llu\n", (unsigned long long)s.term);
    prom_family(t, "aegis_log_index", "gauge", "Log positions of this node.");
    aegis__text_printf(t, "aegis_log_index{position=\"last\"} %llu\n"
                          "aegis_log_index{position=\"commit\"} %llu\n"
                          "aegis_log_index{position=\"applied\"} %llu\n"
                          "aegis_log_index{position=\"snapshot\"} %llu\n",
                       (unsigned long long)s.last_index, (unsigned long long)s.commit_index,
                       (unsigned long long)s.applied_index, (unsigned long long)s.snapshot_index);
    prom_family(t, "aegis_client_connections", "gauge", "Client connections open.");
    aegis__text_printf(t, "aegis_client_connections %llu\n",
                       (unsigned long long)(opened - closed));
}

void aegis__metrics_prometheus(struct aegis_node *n, struct aegis_text *t)
{
    struct aegis_hist *x = aegis__hist_create(NULL);

    if (x == NULL) {
        t->failed = true;
        return;
    }
    prom_gauges(n, t);
    prom_counters_all(n, t);
    prom_hists(n, t, x);
    aegis__hist_destroy(NULL, x);
}
