/* SPDX-License-Identifier: MIT */
/* The simulated world: Raft cores, network, disks, faults and the step loop.
 *
 * A step is the unit of simulated time. In each step, in this order:
 *   1. faults: scheduled heals, restarts and resumes happen, and new partitions, crashes,
 *      pauses and disk stalls start by chance (none in the final phase);
 *   2. clients start, retry, time out and are served (sim_client.c);
 *   3. every running node whose tick is due ticks;
 *   4. the network delivers every message due (ordered by time, then send order);
 *   5. every running node's disk completes the writes that are due, in order;
 *   6. the safety checkers run (sim_check.c).
 * After anything reaches a node (tick, message, disk completion, proposal) the node is
 * driven: its readies are taken and handled until it has none.
 *
 * Handling a ready (sim_drive): the hard state, entries and received snapshot become one
 * disk write holding clones of msgs_after_persist; rd.msgs are sent at once; committed
 * entries are applied to the node's key-value state; ReadIndex results go to the clients.
 * A disk write completes after a random latency, never before the writes queued before
 * it; completing it updates the durable state, sends its messages and reports
 * aegis__raft_persisted(). A crash destroys the core and every write still queued
 * (optionally leaving a torn prefix of the first one), and a restart builds a new core
 * from the durable hard state, snapshot and entries.
 *
 * The network deep-copies a message when it is sent (aegis__msg_clone) and releases it
 * after delivery. It drops, duplicates and delays (which reorders) messages at random,
 * and loses messages across partitions, which may be one-way: blocked[a][b] cuts a -> b
 * only. Messages for a crashed node are lost; messages for a paused node wait. */
#include "sim.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <aegis/error.h>

#include "engine/assert.h"
#include "engine/conf.h"

void *sim_xcalloc(size_t count, size_t size)
{
    void *p = calloc(count == 0 ? 1 : count, size == 0 ? 1 : size);

    AEGIS_ASSERT(p != NULL);
    return p;
}

void *sim_xrealloc(void *p, size_t count, size_t size)
{
    void *q = realloc(p, (count == 0 ? 1 : count) * size);

    AEGIS_ASSERT(q != NULL);
    return q;
}

void sim_trace(struct sim_world *w, aegis_node_id node, const char *what, uint64_t a,
               uint64_t b)
{
    struct sim_trace_ev *ev = &w->trace[w->trace_count % SIM_TRACE_KEEP];

    *ev = (struct sim_trace_ev){.step = w->now, .node = node, .what = what, .a = a, .b = b};
    w->trace_count++;
    if (w->opt.verbose) {
        fprintf(stderr, "%8" PRIu64 " n%" PRIu64 " %-24s %" PRIu64 " %" PRIu64 "\n", w->now,
                node, what, a, b);
    }
}

static void trace_from_core(void *data, aegis_node_id node, const char *what, uint64_t a,
                            uint64_t b)
{
    sim_trace(data, node, what, a, b);
}

void sim_dump_trace(const struct sim_world *w, FILE *f)
{
    uint64_t first = w->trace_count > SIM_TRACE_KEEP ? w->trace_count - SIM_TRACE_KEEP : 0;

    fprintf(f, "last %" PRIu64 " trace events (step node event a b):\n",
            w->trace_count - first);
    for (uint64_t i = first; i < w->trace_count; i++) {
        const struct sim_trace_ev *ev = &w->trace[i % SIM_TRACE_KEEP];

        fprintf(f, "%8" PRIu64 " n%" PRIu64 " %-24s %" PRIu64 " %" PRIu64 "\n", ev->step,
                ev->node, ev->what, ev->a, ev->b);
    }
}

void sim_fail(struct sim_world *w, const char *property, const char *fmt, ...)
{
    va_list ap;
    int len;

    if (w->failed) {
        return; /* Keep the first violation. */
    }
    w->failed = true;
    w->fail_step = w->now;
    w->fail_property = property;
    len = snprintf(w->failure, sizeof(w->failure), "%s: ", property);
    va_start(ap, fmt);
    vsnprintf(w->failure + len, sizeof(w->failure) - (size_t)len, fmt, ap);
    va_end(ap);
    sim_trace(w, 0, "VIOLATION", 0, 0);
}

struct sim_node *sim_node(struct sim_world *w, aegis_node_id id)
{
    if (id < 1 || id > w->n) {
        return NULL;
    }
    return &w->nodes[id - 1];
}

static uint64_t rnd(struct sim_world *w, uint64_t lo, uint64_t hi)
{
    return aegis__rng_range(&w->rng, lo, hi);
}

static bool chance(struct sim_world *w, uint32_t ppm)
{
    return ppm > 0 && aegis__rng_chance(&w->rng, ppm);
}

static bool heap_less(const struct sim_packet *a, const struct sim_packet *b)
{
    return a->time != b->time ? a->time < b->time : a->seq < b->seq;
}

static void heap_push(struct sim_world *w, struct sim_packet *p)
{
    size_t i;

    if (w->heap_len == w->heap_cap) {
        w->heap_cap = w->heap_cap == 0 ? 256 : w->heap_cap * 2;
        w->heap = sim_xrealloc(w->heap, w->heap_cap, sizeof(*w->heap));
    }
    i = w->heap_len++;
    w->heap[i] = p;
    while (i > 0 && heap_less(w->heap[i], w->heap[(i - 1) / 2])) {
        struct sim_packet *t = w->heap[i];

        w->heap[i] = w->heap[(i - 1) / 2];
        w->heap[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static struct sim_packet *heap_pop(struct sim_world *w)
{
    struct sim_packet *top = w->heap[0];
    size_t i = 0;

    w->heap[0] = w->heap[--w->heap_len];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        struct sim_packet *t;

        if (l < w->heap_len && heap_less(w->heap[l], w->heap[m])) {
            m = l;
        }
        if (r < w->heap_len && heap_less(w->heap[r], w->heap[m])) {
            m = r;
        }
        if (m == i) {
            break;
        }
        t = w->heap[i];
        w->heap[i] = w->heap[m];
        w->heap[m] = t;
        i = m;
    }
    return top;
}

static void packet_free(struct sim_packet *p)
{
    aegis__msg_release(&p->msg, NULL);
    free(p);
}

static void enqueue_copy(struct sim_world *w, const struct aegis_msg *m, uint64_t time)
{
    struct sim_packet *p = sim_xcalloc(1, sizeof(*p));

    AEGIS_ASSERT(aegis__msg_clone(&p->msg, m, NULL) == 0);
    p->time = time;
    p->seq = w->packet_seq++;
    heap_push(w, p);
}

/* Send @m (borrowed) from its sender: lost, delayed, maybe duplicated. */
static void net_send(struct sim_world *w, const struct aegis_msg *m)
{
    w->stats.msgs_sent++;
    if (m->to < 1 || m->to > w->n || m->from < 1 || m->from > w->n) {
        sim_fail(w, "Message", "node %" PRIu64 " sent type %u to unknown node %" PRIu64,
                 m->from, m->type, m->to);
        return;
    }
    if (w->blocked[m->from][m->to] || chance(w, w->p.drop_ppm)) {
        w->stats.msgs_dropped++;
        sim_trace(w, m->from, "net.drop", m->type, m->to);
        return;
    }
    enqueue_copy(w, m, w->now + rnd(w, 1, w->p.delay_max));
    if (chance(w, w->p.dup_ppm)) {
        w->stats.msgs_duplicated++;
        enqueue_copy(w, m, w->now + rnd(w, 1, w->p.delay_max * 2));
    }
}

static void write_free(struct sim_write *wr)
{
    for (uint32_t i = 0; i < wr->entries_count; i++) {
        aegis__entry_unref(&wr->entries[i]);
    }
    free(wr->entries);
    for (uint32_t i = 0; i < wr->msgs_count; i++) {
        aegis__msg_release(&wr->msgs[i], NULL);
    }
    free(wr->msgs);
    aegis__buf_unref(wr->snap_data);
    free(wr);
}

static aegis_index disk_last(const struct sim_disk *d)
{
    return d->first + d->count - 1;
}

static void disk_truncate(struct sim_disk *d, aegis_index from)
{
    while (d->count > 0 && disk_last(d) >= from) {
        aegis__entry_unref(&d->entries[--d->count]);
    }
}

/* Forget durable entries up to @index (covered by a snapshot). */
static void disk_compact(struct sim_disk *d, aegis_index index)
{
    uint32_t drop = 0;

    while (drop < d->count && d->first + drop <= index) {
        aegis__entry_unref(&d->entries[drop++]);
    }
    memmove(d->entries, d->entries + drop, (d->count - drop) * sizeof(*d->entries));
    d->count -= drop;
    d->first += drop;
    if (d->first <= index) {
        d->first = index + 1; /* Nothing left: the log resumes after the snapshot. */
    }
}

/* Make a snapshot durable. Raft §7: keep the log after the snapshot when it holds the
 * snapshot's last entry, else discard all of it. */
/* The operator deleted the data directory: nothing durable is left. */
static void disk_wipe(struct sim_disk *d)
{
    disk_truncate(d, 0);
    aegis__buf_unref(d->snap_data);
    d->snap_data = NULL;
    d->has_snapshot = false;
    memset(&d->snap_meta, 0, sizeof(d->snap_meta));
    memset(&d->hs, 0, sizeof(d->hs));
    d->first = 1;
}

static void disk_install_snapshot(struct sim_disk *d, const struct aegis_snapshot_meta *meta,
                                  struct aegis_buf *data)
{
    aegis_index si = meta->index;
    bool keep = d->count > 0 && si >= d->first && si <= disk_last(d) &&
                d->entries[si - d->first].term == meta->term;

    if (d->has_snapshot && si <= d->snap_meta.index) {
        /* A received snapshot whose write completes after the node already took a newer
         * one of its own: the newer one stays. */
        return;
    }
    if (keep) {
        disk_compact(d, si);
    } else {
        disk_truncate(d, 0);
        d->first = si + 1;
    }
    aegis__buf_ref(data);
    aegis__buf_unref(d->snap_data);
    d->has_snapshot = true;
    d->snap_meta = *meta;
    d->snap_data = data;
}

/* Make @wr's entries durable: truncate a conflicting suffix, then append. Entries at or
 * below the durable snapshot are already covered. With @limit < entries_count only a
 * prefix survives (a torn write). */
static void disk_write_entries(struct sim_world *w, struct sim_node *nd,
                               const struct sim_write *wr, uint32_t limit)
{
    struct sim_disk *d = &nd->disk;

    for (uint32_t i = 0; i < limit; i++) {
        struct aegis_entry e = wr->entries[i];

        if (d->has_snapshot && e.index <= d->snap_meta.index) {
            continue;
        }
        if (e.index > disk_last(d) + 1) {
            sim_fail(w, "Storage", "node %" PRIu64 " writes entry %" PRIu64
                     " after a durable log ending at %" PRIu64, nd->id, e.index,
                     disk_last(d));
            return;
        }
        disk_truncate(d, e.index);
        if (d->count == d->cap) {
            d->cap = d->cap == 0 ? 64 : d->cap * 2;
            d->entries = sim_xrealloc(d->entries, d->cap, sizeof(*d->entries));
        }
        aegis__entry_ref(&e);
        d->entries[d->count++] = e;
    }
}

static void disk_complete(struct sim_world *w, struct sim_node *nd, struct sim_write *wr)
{
    struct sim_disk *d = &nd->disk;

    if (wr->has_snapshot) {
        disk_install_snapshot(d, &wr->snap_meta, wr->snap_data);
    }
    if (wr->hs_changed) {
        d->hs = wr->hs;
    }
    disk_write_entries(w, nd, wr, wr->entries_count);
    sim_trace(w, nd->id, "disk.done", wr->entries_count,
              wr->entries_count > 0 ? wr->entries[wr->entries_count - 1].index : 0);
    for (uint32_t i = 0; i < wr->msgs_count; i++) {
        net_send(w, &wr->msgs[i]);
    }
    if (wr->entries_count > 0) {
        const struct aegis_entry *last = &wr->entries[wr->entries_count - 1];

        aegis__raft_persisted(nd->raft, last->index, last->term);
    } else if (wr->has_snapshot) {
        aegis__raft_persisted(nd->raft, wr->snap_meta.index, wr->snap_meta.term);
    }
}

static void disk_submit(struct sim_world *w, struct sim_node *nd, const struct aegis_ready *rd)
{
    struct sim_disk *d = &nd->disk;
    struct sim_write *wr;
    uint64_t done;

    if (!rd->hs_changed && rd->entries_count == 0 && rd->snapshot_meta == NULL &&
        rd->msgs_after_persist_count == 0) {
        return;
    }
    wr = sim_xcalloc(1, sizeof(*wr));
    wr->hs_changed = rd->hs_changed;
    wr->hs = rd->hs;
    if (rd->entries_count > 0) {
        wr->entries = sim_xcalloc(rd->entries_count, sizeof(*wr->entries));
        wr->entries_count = rd->entries_count;
        for (uint32_t i = 0; i < rd->entries_count; i++) {
            wr->entries[i] = rd->entries[i];
            aegis__entry_ref(&wr->entries[i]);
        }
    }
    if (rd->snapshot_meta != NULL) {
        wr->has_snapshot = true;
        wr->snap_meta = *rd->snapshot_meta;
        wr->snap_data = nd->snapio.data; /* snap-install: handle_ready took it in. */
        AEGIS_ASSERT(wr->snap_data != NULL);
        aegis__buf_ref(wr->snap_data);
    }
    if (rd->msgs_after_persist_count > 0) {
        wr->msgs = sim_xcalloc(rd->msgs_after_persist_count, sizeof(*wr->msgs));
        wr->msgs_count = rd->msgs_after_persist_count;
        for (uint32_t i = 0; i < wr->msgs_count; i++) {
            AEGIS_ASSERT(aegis__msg_clone(&wr->msgs[i], &rd->msgs_after_persist[i], NULL) == 0);
        }
    }
    done = w->now + rnd(w, 0, w->p.disk_latency_max);
    if (d->tail != NULL && d->tail->done_at > done) {
        done = d->tail->done_at;
    }
    wr->done_at = done;
    if (d->tail == NULL) {
        d->head = wr;
    } else {
        d->tail->next = wr;
    }
    d->tail = wr;
}

static void disk_step(struct sim_world *w, struct sim_node *nd)
{
    struct sim_disk *d = &nd->disk;

    while (nd->up && !nd->paused && d->head != NULL && d->head->done_at <= w->now &&
           d->stall_until <= w->now) {
        struct sim_write *wr = d->head;

        d->head = wr->next;
        if (d->head == NULL) {
            d->tail = NULL;
        }
        disk_complete(w, nd, wr);
        write_free(wr);
        sim_drive(w, nd);
    }
}

/* Take a snapshot of the state machine at the applied index (rd.snapshot_wanted). It is
 * durable at once, as if written before the call returns. */
static void take_snapshot(struct sim_world *w, struct sim_node *nd)
{
    struct aegis_snapshot_meta meta = {.index = nd->applied};
    struct sim_slog *l = &nd->log;
    struct aegis_buf *data;

    if (nd->applied == 0 || nd->applied < l->base) {
        return;
    }
    meta.term = nd->applied == l->base ? l->base_term : l->e[nd->applied - l->base - 1].term;
    if (aegis__raft_conf_at(nd->raft, meta.index, &meta.conf) != 0) {
        sim_fail(w, "Snapshot", "node %" PRIu64 " has no configuration at applied index %"
                 PRIu64, nd->id, meta.index);
        return;
    }
    data = sim_kv_snapshot(nd);
    disk_install_snapshot(&nd->disk, &meta, data);
    w->stats.snapshots_taken++;
    sim_trace(w, nd->id, "sim.snapshot_taken", meta.index, meta.term);
    AEGIS_ASSERT(aegis__raft_snapshot_taken(nd->raft, &meta, data->len) == 0);
    aegis__snapshot_mem_set(&nd->snapio, &meta, data); /* snap-install */
    /* Log retention: the disk dropped the entries the snapshot covers (disk_compact). */
    aegis__raft_compact(nd->raft, meta.index);
    aegis__buf_unref(data);
}

static void apply_committed(struct sim_world *w, struct sim_node *nd,
                            const struct aegis_ready *rd)
{
    for (uint32_t i = 0; i < rd->committed_count && !w->failed; i++) {
        const struct aegis_entry *e = &rd->committed[i];
        int64_t out = 0;
        uint64_t op_id;

        if (e->index != nd->applied + 1) {
            sim_fail(w, "Apply order", "node %" PRIu64 " applies %" PRIu64
                     " after %" PRIu64, nd->id, e->index, nd->applied);
            return;
        }
        op_id = sim_kv_apply(w, nd, e, &out);
        nd->applied = e->index;
        sim_check_apply(w, nd, e, op_id);
        if (op_id != 0) {
            sim_clients_applied(w, nd, e->index, op_id, out);
        }
    }
}

static void node_crash(struct sim_world *w, struct sim_node *nd);
static struct sim_node *current_leader(struct sim_world *w);

/* A leader that has just applied newly committed entries may crash before anything else
 * of the ready happens (its messages never leave, its entries never reach the disk). The
 * first commit of a new leader is the riskiest moment, so it has its own, higher chance:
 * it is where a leader that commits an earlier term's entries by counting replicas
 * (Figure 8) leaves a committed entry that a later leader can overwrite. */
static bool commit_kill(struct sim_world *w, struct sim_node *nd, const struct aegis_ready *rd)
{
    aegis_term term;
    uint32_t ppm;

    if (w->final_phase || rd->committed_count == 0 ||
        aegis__raft_role(nd->raft) != AEGIS_ROLE_LEADER) {
        return false;
    }
    term = aegis__raft_term(nd->raft);
    ppm = nd->commit_term != term ? w->p.first_commit_kill_ppm : w->p.commit_kill_ppm;
    nd->commit_term = term;
    if (!aegis__rng_chance(&w->rng, ppm)) {
        return false;
    }
    w->stats.commit_kills++;
    sim_trace(w, nd->id, "sim.commit_kill", rd->committed[rd->committed_count - 1].index, 0);
    node_crash(w, nd);
    return true;
}

/* Handle one ready; returns false when the node crashed in the middle of it. */
static bool handle_ready(struct sim_world *w, struct sim_node *nd, struct aegis_ready *rd)
{
    if (rd->snapshot_meta != NULL) {
        const struct aegis_snapshot_meta *meta = rd->snapshot_meta;

        sim_trace(w, nd->id, "sim.snapshot_install", meta->index, meta->term);
        w->stats.snapshots_installed++;
        if (!sim_kv_restore(nd, aegis__snapshot_mem_installed(&nd->snapio, meta))) {
            sim_fail(w, "Snapshot", "node %" PRIu64 " got undecodable snapshot data",
                     nd->id);
            return true;
        }
        nd->applied = meta->index;
        sim_check_snapshot(w, nd, meta);
        sim_clients_snapshot_installed(w, nd);
    }
    if (rd->entries_count > 0) {
        sim_check_append(w, nd, rd->entries, rd->entries_count);
    }
    apply_committed(w, nd, rd);
    if (commit_kill(w, nd, rd)) {
        return false;
    }
    disk_submit(w, nd, rd);
    for (uint32_t i = 0; i < rd->msgs_count; i++) {
        net_send(w, &rd->msgs[i]);
    }
    for (uint32_t i = 0; i < rd->reads_count; i++) {
        sim_clients_read_state(w, nd, rd->reads[i].ctx, rd->reads[i].index);
    }
    return true;
}

/* The amnesia guard stopped @nd (its storage was empty and the cluster exists): it stays
 * down until the leader removed it, then restarts the operator's way (--join). A node the
 * guard stopped although it lost nothing (it started empty and missed the bootstrap,
 * e.g. behind a partition) is restarted at once with the guard off and its bootstrap
 * membership (a shortcut of the simulation, safe because it lost nothing; the runtime's
 * way is the same remove / --join / add): waiting for its removal could need its own
 * vote (a group shrunk to two voters). */
static void amnesia_stop(struct sim_world *w, struct sim_node *nd)
{
    w->stats.amnesia_stops++;
    sim_trace(w, nd->id, "sim.amnesia_stop", nd->wipe_commit, 0);
    node_crash(w, nd);
    if (nd->wipe_commit == 0) {
        nd->unguarded = true;
        return;
    }
    nd->wiped_out = true;
}

/* Log retention: answer the core's read of evicted entries at once, from the durable
 * log (the runtime's log reader, synchronous here). */
static void answer_fetch(struct sim_node *nd, const struct aegis_log_fetch *f)
{
    struct sim_disk *d = &nd->disk;
    uint64_t bytes = 0;
    uint32_t n = 0;

    if (d->count == 0 || f->from < d->first || f->from > disk_last(d)) {
        (void)aegis__raft_fetched(nd->raft, f->from, NULL, 0, AEGIS_ECOMPACTED);
        return;
    }
    while (f->from + n <= disk_last(d) && n < f->count_max) {
        uint32_t len = aegis__entry_len(&d->entries[f->from - d->first + n]);

        if (n > 0 && bytes + len > f->bytes_max) {
            break;
        }
        bytes += len;
        n++;
    }
    (void)aegis__raft_fetched(nd->raft, f->from, &d->entries[f->from - d->first], n, 0);
}

void sim_drive(struct sim_world *w, struct sim_node *nd)
{
    for (uint32_t rounds = 0; nd->up && aegis__raft_has_ready(nd->raft); rounds++) {
        struct aegis_ready rd;
        struct aegis_log_fetch fetch;
        bool want;
        int fatal;

        if (rounds == 10000) {
            sim_fail(w, "Progress", "node %" PRIu64 " has a ready after 10000 rounds",
                     nd->id);
            return;
        }
        memset(&rd, 0, sizeof(rd));
        aegis__raft_ready(nd->raft, &rd);
        want = rd.snapshot_wanted;
        fatal = rd.fatal;
        fetch = rd.fetch;
        if (!handle_ready(w, nd, &rd)) {
            return; /* Crashed: the core is gone, with its ready. */
        }
        aegis__raft_advance(nd->raft, &rd);
        if (fatal != 0) {
            amnesia_stop(w, nd);
            return;
        }
        if (fetch.from != 0) {
            answer_fetch(nd, &fetch);
        }
        if (nd->applied != nd->applied_reported) {
            nd->applied_reported = nd->applied;
            aegis__raft_applied(nd->raft, nd->applied);
        }
        if (want) {
            take_snapshot(w, nd);
        }
        if (w->failed) {
            return;
        }
    }
    if (nd->up) {
        sim_clients_serve_reads(w, nd);
        sim_check_node(w, nd);
    }
}

static void node_start(struct sim_world *w, struct sim_node *nd)
{
    struct sim_disk *d = &nd->disk;
    struct aegis_raft_restore restore = {
        .hs = d->hs,
        .snapshot_meta = d->has_snapshot ? &d->snap_meta : NULL,
        .snapshot_bytes = d->has_snapshot && d->snap_data != NULL ? d->snap_data->len : 0,
        .entries = d->entries,
        .entries_count = d->count,
        .bootstrap = w->conf,
    };
    struct aegis_raft_config cfg = w->config;
    int rv;

    if (nd->joining) {
        cfg.fresh = false;            /* --join: the guard is off ... */
        restore.bootstrap.count = 0;  /* ... and it is a member of nothing until added. */
    }
    cfg.fresh = cfg.fresh && !nd->unguarded;
    cfg.id = nd->id;
    aegis__snapshot_mem_close(&nd->snapio); /* snap-install: what the disk holds. */
    aegis__snapshot_mem_init(&nd->snapio, NULL);
    if (d->has_snapshot) {
        aegis__snapshot_mem_set(&nd->snapio, &d->snap_meta, d->snap_data);
    }
    aegis__snapshot_mem_io(&nd->snapio, &cfg.snapshot_io);
    aegis__rng_seed(&nd->rng, aegis__rng_next(&w->rng));
    rv = aegis__raft_create(&nd->raft, &cfg, &restore, &nd->rng, &w->tracer, NULL);
    AEGIS_ASSERT(rv == 0);
    nd->up = true;
    nd->paused = false;
    nd->incarnation++;
    for (uint32_t k = 0; k < SIM_KEYS_MAX; k++) {
        nd->kv[k] = SIM_KV_ABSENT;
    }
    nd->applied = 0;
    if (d->has_snapshot) {
        AEGIS_ASSERT(sim_kv_restore(nd, d->snap_data));
        nd->applied = d->snap_meta.index;
    }
    nd->applied_reported = nd->applied;
    nd->next_tick = w->now + rnd(w, 1, nd->tick_period);
    sim_check_rebuild(w, nd);
    sim_trace(w, nd->id, "sim.start", d->hs.term, d->count);
    sim_drive(w, nd);
}

/* Whether @nd may lack entries it acknowledged (wiped and not holding again everything
 * committed at the time). */
static bool amnesiac(struct sim_world *w, struct sim_node *nd)
{
    if (nd->wipe_commit != 0 && !nd->wiped_out && nd->up &&
        disk_last(&nd->disk) >= nd->wipe_commit) {
        nd->wipe_commit = 0;
        sim_trace(w, nd->id, "sim.wipe_recovered", disk_last(&nd->disk), 0);
    }
    return nd->wipe_commit != 0;
}

/* With --wipe, some crashes also erase the node's storage; it restarts with its old
 * configuration (config.fresh), which the amnesia guard must make harmless. Only one
 * node at a time may have lost what it acknowledged, and only while every other node
 * holds the committed log: no protocol survives a majority losing its storage (two
 * wiped nodes could elect each other with empty logs). */
static bool any_amnesiac(struct sim_world *w)
{
    for (unsigned i = 0; i < w->n; i++) {
        if (amnesiac(w, &w->nodes[i])) {
            return true;
        }
    }
    return false;
}

static void maybe_wipe(struct sim_world *w, struct sim_node *nd)
{
    struct sim_node *leader = current_leader(w);

    /* And only with every node a voter: a wiped voter of a group whose third member is
     * still a learner leaves no quorum to remove it with (the operator's deadlock). */
    if (!w->opt.wipe || w->final_phase || leader == NULL ||
        aegis__conf_voter_count(aegis__raft_conf(leader->raft)) != w->n) {
        return;
    }
    if (any_amnesiac(w)) {
        return;
    }
    /* The others hold every committed entry: the wiped node's copies were never the only
     * ones a quorum could count on (a node that missed the bootstrap and a wiped one
     * would otherwise be a majority without the data, guard or not). */
    for (unsigned i = 0; i < w->n; i++) {
        const struct sim_node *o = &w->nodes[i];

        if (o != nd && disk_last(&o->disk) < w->commit_max) {
            return;
        }
    }
    if (!chance(w, 300000)) {
        return;
    }
    disk_wipe(&nd->disk);
    nd->joining = false; /* Restarted with its original flags. */
    nd->unguarded = false;
    nd->wipe_commit = w->commit_max > 0 ? w->commit_max : 1;
    w->stats.wipes++;
    w->last_wipe = w->now;
    sim_trace(w, nd->id, "sim.wipe", nd->wipe_commit, 0);
}

static void node_crash(struct sim_world *w, struct sim_node *nd)
{
    struct sim_disk *d = &nd->disk;
    bool torn = d->head != NULL && d->head->entries_count > 1 && !d->head->has_snapshot &&
                chance(w, w->p.torn_ppm);

    w->stats.crashes++;
    if (torn) {
        /* A crash mid-write: a prefix of the entries made it, nothing else did. */
        uint32_t keep = (uint32_t)rnd(w, 1, d->head->entries_count - 1);

        w->stats.torn++;
        disk_write_entries(w, nd, d->head, keep);
        sim_trace(w, nd->id, "sim.torn_write", keep, d->head->entries_count);
    }
    while (d->head != NULL) {
        struct sim_write *wr = d->head;

        d->head = wr->next;
        write_free(wr);
    }
    d->tail = NULL;
    aegis__raft_destroy(nd->raft);
    nd->raft = NULL;
    nd->up = false;
    nd->paused = false;
    nd->restart_at = w->now + rnd(w, 1, w->p.restart_delay_max);
    sim_trace(w, nd->id, "sim.crash", nd->restart_at, torn);
    maybe_wipe(w, nd);
    sim_clients_node_lost(w, nd);
}

static struct sim_node *current_leader(struct sim_world *w)
{
    struct sim_node *best = NULL;

    for (unsigned i = 0; i < w->n; i++) {
        struct sim_node *nd = &w->nodes[i];

        if (nd->up && aegis__raft_role(nd->raft) == AEGIS_ROLE_LEADER &&
            (best == NULL || aegis__raft_term(nd->raft) > aegis__raft_term(best->raft))) {
            best = nd;
        }
    }
    return best;
}

/* A node to hit with a fault: the leader half of the time, else any running node. */
static struct sim_node *fault_target(struct sim_world *w)
{
    struct sim_node *leader = current_leader(w);

    if (leader != NULL && rnd(w, 0, 1) == 0) {
        return leader;
    }
    return &w->nodes[rnd(w, 0, w->n - 1)];
}

static void start_partition(struct sim_world *w)
{
    struct sim_node *t = fault_target(w);
    aegis_node_id x = t->id;
    uint64_t kind = rnd(w, 0, 4);

    memset(w->blocked, 0, sizeof(w->blocked));
    for (aegis_node_id a = 1; a <= w->n; a++) {
        for (aegis_node_id b = 1; b <= w->n; b++) {
            bool cut = false;

            switch (kind) {
            case 0: /* Isolate x both ways. */
                cut = (a == x) != (b == x);
                break;
            case 1: /* x can send but hears nobody. */
                cut = b == x && a != x;
                break;
            case 2: /* x hears everybody but nobody hears x. */
                cut = a == x && b != x;
                break;
            default: /* Random groups (kind 3), or random one-way links (kind 4). */
                break;
            }
            w->blocked[a][b] = cut;
        }
    }
    if (kind == 3) {
        unsigned group = (unsigned)rnd(w, 1, (1u << w->n) - 2);

        for (aegis_node_id a = 1; a <= w->n; a++) {
            for (aegis_node_id b = 1; b <= w->n; b++) {
                w->blocked[a][b] = ((group >> (a - 1)) & 1) != ((group >> (b - 1)) & 1);
            }
        }
    } else if (kind == 4) {
        for (uint64_t links = rnd(w, 1, w->n * 2); links > 0; links--) {
            aegis_node_id a = rnd(w, 1, w->n), b = rnd(w, 1, w->n);

            w->blocked[a][b] = a != b;
        }
    }
    w->heal_at = w->now + rnd(w, 1, w->p.partition_len_max);
    w->stats.partitions++;
    sim_trace(w, x, "sim.partition", kind, w->heal_at);
}

static void heal(struct sim_world *w)
{
    memset(w->blocked, 0, sizeof(w->blocked));
    w->heal_at = 0;
    sim_trace(w, 0, "sim.heal", 0, 0);
}

/* A leader that accepted a proposal may crash a few steps later, before it has
 * replicated it everywhere (the nemesis of the MIT 6.824 Figure 8 tests): logs diverge
 * in their uncommitted tails, and leaders change often. */
void sim_propose_kill(struct sim_world *w, struct sim_node *nd)
{
    if (w->final_phase || nd->crash_at != 0 || !chance(w, w->p.propose_kill_ppm)) {
        return;
    }
    nd->crash_at = w->now + rnd(w, 0, w->p.propose_kill_delay_max);
    sim_trace(w, nd->id, "sim.crash_scheduled", nd->crash_at, 0);
}

static unsigned nodes_up(const struct sim_world *w)
{
    unsigned up = 0;

    for (unsigned i = 0; i < w->n; i++) {
        up += w->nodes[i].up;
    }
    return up;
}

/* One membership change through the leader, one server at a time: promote a learner,
 * else add a missing node back as a learner, else (unless @restore) remove a voter. The
 * final phase calls it with @restore until every node is a voter again. */
static void membership_step(struct sim_world *w, bool restore)
{
    struct sim_node *leader = current_leader(w);
    aegis_node_id missing = 0, learner = 0, stopped = 0;
    const struct aegis_conf *c;
    aegis_index index = 0;
    const char *what;
    int rv;

    if (leader == NULL || leader->paused) {
        return;
    }
    c = aegis__raft_conf(leader->raft);
    for (aegis_node_id id = 1; id <= w->n; id++) {
        bool found = false;

        for (uint32_t k = 0; k < c->count; k++) {
            if (c->members[k].id == id) {
                found = true;
                learner = c->members[k].role == AEGIS_MEMBER_LEARNER ? id : learner;
            }
        }
        if (found && sim_node(w, id)->wiped_out) {
            stopped = id;
        }
        missing = found || sim_node(w, id)->wiped_out ? missing : id;
    }
    if (stopped != 0) {
        /* The operator removes a node the amnesia guard stopped before adding it back. */
        what = "sim.conf_remove_amnesiac";
        missing = stopped;
        learner = 0;
        rv = aegis__raft_remove(leader->raft, stopped, &index);
    } else if (learner != 0) {
        what = "sim.conf_promote";
        rv = aegis__raft_promote(leader->raft, learner, &index);
    } else if (missing != 0) {
        what = "sim.conf_add_learner";
        rv = aegis__raft_add_learner(leader->raft, missing, &index);
    } else if (!restore && !any_amnesiac(w)) {
        /* Not while a node lost its storage: removing a healthy voter then could leave
         * no quorum to remove the wiped one with. */
        what = "sim.conf_remove";
        missing = rnd(w, 1, w->n);
        rv = aegis__raft_remove(leader->raft, missing, &index);
    } else {
        return;
    }
    w->stats.conf_changes += rv == 0;
    sim_trace(w, leader->id, what, learner != 0 ? learner : missing, (uint64_t)-rv);
    sim_drive(w, leader);
}

/* The operator's remedy for a node the amnesia guard stopped: once the leader's
 * committed configuration no longer lists it, start it with --join (membership_step then
 * adds it back as a learner and promotes it when it caught up). */
static void readmit(struct sim_world *w, struct sim_node *nd)
{
    struct sim_node *leader = current_leader(w);
    struct aegis_conf c;

    if (leader == NULL ||
        aegis__raft_conf_at(leader->raft, aegis__raft_commit_index(leader->raft), &c) != 0 ||
        aegis__conf_find(&c, nd->id) != NULL) {
        return;
    }
    nd->wiped_out = false;
    nd->joining = true;
    nd->restart_at = w->now;
    sim_trace(w, nd->id, "sim.readmit", 0, 0);
}

static void faults_step(struct sim_world *w)
{
    if (w->heal_at != 0 && w->now >= w->heal_at) {
        heal(w);
    }
    for (unsigned i = 0; i < w->n; i++) {
        struct sim_node *nd = &w->nodes[i];

        if (nd->wiped_out) {
            readmit(w, nd);
        }
        if (!nd->up && !nd->wiped_out && w->now >= nd->restart_at) {
            node_start(w, nd);
        }
        if (nd->up && nd->crash_at != 0 && w->now >= nd->crash_at) {
            if (!w->final_phase && nodes_up(w) > 1) {
                node_crash(w, nd);
            }
            nd->crash_at = 0;
        }
        if (nd->up && nd->paused && w->now >= nd->pause_until) {
            nd->paused = false;
            sim_trace(w, nd->id, "sim.resume", 0, 0);
        }
    }
    if (w->final_phase) {
        if (w->now % 20 == 0) {
            membership_step(w, true);
        }
        return;
    }
    if (chance(w, w->p.membership_ppm)) {
        membership_step(w, false);
    }
    if (w->heal_at == 0 && chance(w, w->p.partition_ppm)) {
        start_partition(w);
    }
    if (chance(w, w->p.crash_ppm) && nodes_up(w) > 1) {
        struct sim_node *nd = fault_target(w);

        if (nd->up) {
            node_crash(w, nd);
        }
    }
    if (chance(w, w->p.pause_ppm)) {
        struct sim_node *nd = fault_target(w);

        if (nd->up && !nd->paused) {
            nd->paused = true;
            nd->pause_until = w->now + rnd(w, 1, w->p.pause_len_max);
            w->stats.pauses++;
            sim_trace(w, nd->id, "sim.pause", nd->pause_until, 0);
        }
    }
    if (chance(w, w->p.transfer_ppm)) {
        struct sim_node *leader = current_leader(w);
        aegis_node_id target = rnd(w, 1, w->n);

        if (leader != NULL && !leader->paused && target != leader->id) {
            int rv = aegis__raft_transfer(leader->raft, target);

            w->stats.transfers++;
            sim_trace(w, leader->id, "sim.transfer", target, (uint64_t)-rv);
            sim_drive(w, leader);
        }
    }
    if (chance(w, w->p.disk_stall_ppm)) {
        struct sim_node *nd = &w->nodes[rnd(w, 0, w->n - 1)];

        nd->disk.stall_until = w->now + rnd(w, 1, w->p.disk_stall_len_max);
        sim_trace(w, nd->id, "sim.disk_stall", nd->disk.stall_until, 0);
    }
}

static void ticks_step(struct sim_world *w)
{
    for (unsigned i = 0; i < w->n; i++) {
        struct sim_node *nd = &w->nodes[i];

        if (!nd->up || nd->paused || w->now < nd->next_tick) {
            continue;
        }
        nd->next_tick = w->now + nd->tick_period;
        aegis__raft_tick(nd->raft);
        sim_drive(w, nd);
    }
}

static const char *msg_name(uint8_t type)
{
    static const char *names[] = {
        "?", "recv.vote_req", "recv.vote_resp", "recv.append_req", "recv.append_resp",
        "recv.snapshot_req", "recv.snapshot_resp", "recv.heartbeat", "recv.heartbeat_resp",
        "recv.timeout_now", "recv.read_index_req", "recv.read_index_resp", "recv.client_req",
        "recv.client_resp",
    };

    return type < sizeof(names) / sizeof(names[0]) ? names[type] : "recv.?";
}

static void net_step(struct sim_world *w)
{
    while (w->heap_len > 0 && w->heap[0]->time <= w->now && !w->failed) {
        struct sim_packet *p = heap_pop(w);
        struct sim_node *to = sim_node(w, p->msg.to);
        int rv;

        if (w->blocked[p->msg.from][p->msg.to] || to == NULL || !to->up) {
            w->stats.msgs_dropped++;
            packet_free(p);
            continue;
        }
        if (to->paused) {
            p->time = to->pause_until;
            p->seq = w->packet_seq++;
            heap_push(w, p);
            continue;
        }
        if (w->opt.verbose) {
            /* Only when verbose: deliveries would crowd everything else out of the
             * failure dump. Tracing does not touch the generator, so this does not change
             * the run. */
            sim_trace(w, to->id, msg_name(p->msg.type), p->msg.from, p->msg.term);
        }
        rv = aegis__raft_step(to->raft, &p->msg);
        if (rv != 0) {
            sim_trace(w, to->id, "sim.step_error", p->msg.type, (uint64_t)-rv);
        }
        packet_free(p);
        sim_drive(w, to);
    }
}

const char *sim_profile_name(enum sim_profile profile)
{
    static const char *names[] = {"mixed", "chaos", "figure8", "crash", "partition"};

    return profile <= SIM_PROFILE_PARTITION ? names[profile] : "?";
}

/* Generic intensities: each seed picks its own mix, some calm, some brutal. */
static void draw_chaos(struct sim_world *w)
{
    struct sim_params *p = &w->p;
    uint32_t storm = (uint32_t)rnd(w, 0, 3);

    p->drop_ppm = (uint32_t)rnd(w, 0, 1 + 20000 * storm);
    p->dup_ppm = (uint32_t)rnd(w, 0, 20000);
    p->delay_max = (uint32_t)rnd(w, 1, 10);
    p->partition_ppm = (uint32_t)rnd(w, 0, 1000 + 1500 * storm);
    p->partition_len_max = (uint32_t)rnd(w, 50, 800);
    p->crash_ppm = (uint32_t)rnd(w, 0, 400 + 700 * storm);
    p->restart_delay_max = (uint32_t)rnd(w, 5, 600);
    p->torn_ppm = (uint32_t)rnd(w, 0, 500000);
    p->commit_kill_ppm = rnd(w, 0, 1) == 0 ? 0 : (uint32_t)rnd(w, 0, 20000);
    p->first_commit_kill_ppm = rnd(w, 0, 1) == 0 ? 0 : (uint32_t)rnd(w, 0, 300000);
    p->transfer_ppm = (uint32_t)rnd(w, 0, 2000);
    p->membership_ppm = rnd(w, 0, 1) == 0 ? 0 : (uint32_t)rnd(w, 0, 2000);
    p->pause_ppm = (uint32_t)rnd(w, 0, 600);
    p->pause_len_max = (uint32_t)rnd(w, 20, 400);
    p->disk_latency_max = (uint32_t)rnd(w, 0, 20);
    p->disk_stall_ppm = (uint32_t)rnd(w, 0, 500);
    p->disk_stall_len_max = (uint32_t)rnd(w, 10, 200);
    p->clients = (uint32_t)rnd(w, 2, SIM_CLIENTS_MAX);
    p->keys = (uint32_t)rnd(w, 1, SIM_KEYS_MAX);
    p->think_max = (uint32_t)rnd(w, 0, 30);
    p->client_timeout = (uint32_t)rnd(w, 100, 800);
    p->random_target_pct = (uint32_t)rnd(w, 10, 60);
}

static void draw_params(struct sim_world *w)
{
    struct sim_params *p = &w->p;

    draw_chaos(w);
    switch (w->profile) {
    case SIM_PROFILE_FIGURE8:
        /* The nemesis of the MIT 6.824 Figure 8 tests: leaders die soon after taking
         * proposals (so uncommitted tails diverge) and at their first commit, and come
         * back quickly; a majority stays up. */
        p->propose_kill_ppm = (uint32_t)rnd(w, 300000, 700000);
        p->propose_kill_delay_max = (uint32_t)rnd(w, 0, 10);
        p->first_commit_kill_ppm = (uint32_t)rnd(w, 850000, 1000000);
        p->restart_delay_max = (uint32_t)rnd(w, 5, 100);
        p->partition_ppm /= 4;
        p->drop_ppm /= 4;
        break;
    case SIM_PROFILE_CRASH:
        /* Frequent crashes against slow disks: whatever was acknowledged but not durable
         * is lost. */
        p->crash_ppm = (uint32_t)rnd(w, 2000, 6000);
        p->restart_delay_max = (uint32_t)rnd(w, 5, 200);
        p->disk_latency_max = (uint32_t)rnd(w, 10, 30);
        p->partition_ppm /= 4;
        break;
    case SIM_PROFILE_PARTITION:
        /* Long partitions, most isolating the leader, and paused leaders: an old leader
         * keeps running beside a new one, and clients keep talking to it. */
        p->partition_ppm = (uint32_t)rnd(w, 2000, 5000);
        p->partition_len_max = (uint32_t)rnd(w, 200, 1500);
        p->pause_ppm = (uint32_t)rnd(w, 500, 2000);
        p->pause_len_max = (uint32_t)rnd(w, 100, 600);
        p->crash_ppm /= 4;
        p->random_target_pct = (uint32_t)rnd(w, 30, 70);
        break;
    default:
        break;
    }
}

static void draw_config(struct sim_world *w)
{
    struct aegis_raft_config *c = &w->config;

    aegis__raft_config_default(c);
    c->bugs = w->opt.bugs;
    c->election_timeout_min_ticks = (uint32_t)rnd(w, 8, 12);
    c->election_timeout_max_ticks = c->election_timeout_min_ticks * 2;
    c->heartbeat_interval_ticks = (uint32_t)rnd(w, 1, 3);
    c->snapshot_threshold = rnd(w, 8, 200);
    c->snapshot_trailing = rnd(w, 0, 20);
    /* Small windows and one entry per AppendEntries (append_bytes_max 1) in a third of
     * the seeds (always under the Figure 8 nemesis): followers then acknowledge entry by
     * entry. */
    c->inflight_msgs_max = rnd(w, 0, 2) == 0 ? 1 : (uint32_t)rnd(w, 1, 16);
    /* A byte window that binds before the message window in a quarter of the seeds. */
    c->inflight_bytes_max = rnd(w, 0, 3) == 0 ? rnd(w, 128, 2048) : rnd(w, 256, 65536);
    c->append_bytes_max = rnd(w, 0, 2) == 0 ? 1 : rnd(w, 40, 4096);
    c->snapshot_chunk_bytes = (uint32_t)rnd(w, 8, 256);
    /* Log retention: a tiny entry cache (a few entries, read back from the durable log) in
     * half the seeds, derived from a draw above so the random stream stays as it was. */
    c->log_cache_bytes = c->snapshot_chunk_bytes % 2 == 0 ? 8u * c->snapshot_chunk_bytes : 0;
    c->pre_vote = rnd(w, 0, 3) != 0;
    c->check_quorum = rnd(w, 0, 3) != 0;
    if (w->profile == SIM_PROFILE_FIGURE8) {
        c->append_bytes_max = 1;
    }
    /* A learner that has not caught up within this many leader ticks is removed rather
     * than promoted (raft_membership.c); derived, not drawn, so seeds replay as before. */
    c->catchup_timeout_ticks = c->election_timeout_min_ticks * 20;
    if (w->profile == SIM_PROFILE_PARTITION && rnd(w, 0, 1) == 0) {
        c->check_quorum = false; /* An isolated leader then never steps down by itself. */
    }
}

void sim_world_init(struct sim_world *w, const struct sim_options *opt)
{
    memset(w, 0, sizeof(*w));
    w->opt = *opt;
    w->n = opt->nodes;
    AEGIS_ASSERT(w->n >= 1 && w->n <= SIM_NODES_MAX);
    aegis__rng_seed(&w->rng, opt->seed);
    w->profile = opt->profile;
    if (w->profile == SIM_PROFILE_MIXED) {
        static const enum sim_profile mix[] = {
            SIM_PROFILE_CHAOS, SIM_PROFILE_CHAOS, SIM_PROFILE_FIGURE8, SIM_PROFILE_CRASH,
            SIM_PROFILE_PARTITION,
        };

        w->profile = mix[rnd(w, 0, sizeof(mix) / sizeof(mix[0]) - 1)];
    }
    w->tracer = (struct aegis_raft_tracer){.event = trace_from_core, .data = w};
    draw_params(w);
    draw_config(w);
    w->config.fresh = opt->wipe; /* Every node starts empty, without --join. */
    w->conf.count = w->n;
    for (unsigned i = 0; i < w->n; i++) {
        struct sim_node *nd = &w->nodes[i];

        w->conf.members[i] = (struct aegis_member){.id = i + 1, .role = AEGIS_MEMBER_VOTER};
        nd->id = i + 1;
        nd->tick_period = (uint32_t)rnd(w, 8, 12);
        nd->disk.first = 1;
    }
    sim_clients_init(w);
    sim_trace(w, 0, "sim.params.profile", w->profile, 0);
    sim_trace(w, 0, "sim.params.drop_dup", w->p.drop_ppm, w->p.dup_ppm);
    sim_trace(w, 0, "sim.params.part_crash", w->p.partition_ppm, w->p.crash_ppm);
    sim_trace(w, 0, "sim.params.prevote_cq", w->config.pre_vote, w->config.check_quorum);
    for (unsigned i = 0; i < w->n; i++) {
        node_start(w, &w->nodes[i]);
    }
}

static void one_step(struct sim_world *w)
{
    faults_step(w);
    sim_clients_step(w);
    ticks_step(w);
    net_step(w);
    for (unsigned i = 0; i < w->n && !w->failed; i++) {
        disk_step(w, &w->nodes[i]);
    }
    if (!w->failed) {
        sim_check_step(w);
    }
}

/* Stop the faults: heal, restart and resume everyone, deliver reliably. */
static void enter_final_phase(struct sim_world *w)
{
    w->final_phase = true;
    heal(w);
    w->p.drop_ppm = 0;
    w->p.dup_ppm = 0;
    /* Raft's timing requirement (broadcast time well below the election timeout) must
     * hold for liveness: quick messages and disks from now on. */
    w->p.delay_max = w->p.delay_max < 5 ? w->p.delay_max : 5;
    w->p.disk_latency_max = w->p.disk_latency_max < 5 ? w->p.disk_latency_max : 5;
    for (unsigned i = 0; i < w->n; i++) {
        struct sim_node *nd = &w->nodes[i];

        nd->restart_at = w->now;
        nd->pause_until = w->now;
        nd->disk.stall_until = 0;
        /* Clock drift is a fault too: with it, a node that cannot win (its log is
         * behind) but always times out first keeps bumping the term when pre-vote is
         * off, and the others never get to campaign. */
        nd->tick_period = 10;
    }
    sim_trace(w, 0, "sim.final_phase", w->now, 0);
}

bool sim_world_run(struct sim_world *w)
{
    uint64_t quiet_max = 4000;
    bool converged = false;

    for (w->now = 1; w->now <= w->opt.steps && !w->failed; w->now++) {
        one_step(w);
    }
    if (w->failed) {
        return false;
    }
    enter_final_phase(w);
    for (uint64_t end = w->now + quiet_max; w->now < end && !w->failed; w->now++) {
        one_step(w);
        if (sim_check_converged(w)) {
            converged = true;
            break;
        }
    }
    if (!w->failed) {
        sim_check_final(w, converged);
    }
    return !w->failed;
}

void sim_world_close(struct sim_world *w)
{
    for (unsigned i = 0; i < w->n; i++) {
        struct sim_node *nd = &w->nodes[i];
        struct sim_disk *d = &nd->disk;

        while (d->head != NULL) {
            struct sim_write *wr = d->head;

            d->head = wr->next;
            write_free(wr);
        }
        disk_truncate(d, 0);
        free(d->entries);
        aegis__buf_unref(d->snap_data);
        aegis__snapshot_mem_close(&nd->snapio); /* snap-install */
        if (nd->raft != NULL) {
            aegis__raft_destroy(nd->raft);
        }
        sim_slog_free(&nd->log);
    }
    while (w->heap_len > 0) {
        packet_free(heap_pop(w));
    }
    free(w->heap);
    free(w->hist);
    free(w->commits);
    free(w->leader_of);
    free(w->lm);
}
