/* SPDX-License-Identifier: MIT */
/* A tiny in-test cluster for the Raft core tests (test_raft.c, test_raft_paper.c):
 * 1..CL_NODES_MAX cores wired by a FIFO message queue, each with an instant "disk".
 *
 * cl_settle() runs every node's ready/advance cycle (writing entries and hard state to
 * the node's durable copy at once, reporting persisted, applying committed entries) and
 * delivers queued messages until nothing moves. Links can be cut (cl_cut / cl_isolate)
 * and a filter can drop chosen messages. cl_restart() rebuilds a core from its durable
 * copy, losing everything else, as a crash would.
 *
 * Everything is static inline so each test file takes only what it uses. */
#ifndef AEGIS_TEST_RAFT_CLUSTER_H
#define AEGIS_TEST_RAFT_CLUSTER_H

#include <stdlib.h>
#include <string.h>

#include <aegis/error.h>

#include "engine/conf.h"
#include "engine/raft.h"
#include "engine/snapshot_mem.h"
#include "lib/test.h"

#define CL_NODES_MAX 7
#define CL_QUEUE_MAX 65536
#define CL_READS_MAX 256

struct cl_node {
    struct aegis_raft *r;
    struct aegis_rng rng;
    /* The durable copy (the "disk"). */
    struct aegis_hard_state hs;
    struct aegis_entry *log; /* Entries after the snapshot, each holding a reference. */
    size_t log_count;
    size_t log_cap;
    bool has_snap;
    struct aegis_snapshot_meta snap_meta;
    struct aegis_buf *snap_data;
    /* The core's snapshot_io: the source (snap_data) and the sink's partial offer, both
     * on the "disk" (they survive cl_restart). */
    struct aegis_snapshot_mem mem;
    struct aegis_snapshot_io io_override; /* Used instead of mem's when it has callbacks
                                             (from the next cl_restart). */
    /* The state machine: every entry applied, in order (each holding a reference). */
    struct aegis_entry *applied;
    size_t applied_count;
    size_t applied_cap;
    aegis_index applied_index;
    aegis_index snapshot_restored; /* Last snapshot index restored from a ready. */
    bool snapshot_wanted;
    struct aegis_read_state reads[CL_READS_MAX];
    uint32_t reads_count;
    bool hold; /* Do not process this node's readies (its disk is stalled). */
    /* Reading evicted entries back (rd.fetch), from the durable copy: answered at once
     * unless fetch_defer (then cl_answer_fetch); fetch_fail answers with that error. */
    struct aegis_log_fetch fetch;
    bool fetch_defer;
    int fetch_fail;
    uint32_t fetches;
};

struct cluster;
typedef bool (*cl_filter)(struct cluster *c, const struct aegis_msg *m);

struct cluster {
    uint32_t n;
    struct cl_node nodes[CL_NODES_MAX + 1]; /* Indexed by node id, 1..n. */
    struct aegis_raft_config cfg;
    struct aegis_conf conf;
    struct aegis_msg *queue;
    size_t q_head;
    size_t q_count;
    bool cut[CL_NODES_MAX + 1][CL_NODES_MAX + 1];
    cl_filter filter;
    uint64_t delivered;
    uint64_t dropped;
};

static inline void cl_die(const char *what)
{
    fprintf(stderr, "raft cluster fixture: %s\n", what);
    abort();
}

static inline void cl_default_config(struct aegis_raft_config *cfg)
{
    aegis__raft_config_default(cfg);
    cfg->election_timeout_min_ticks = 10;
    cfg->election_timeout_max_ticks = 20;
    cfg->heartbeat_interval_ticks = 1;
}

static inline void cl_start_node(struct cluster *c, aegis_node_id id)
{
    struct cl_node *nd = &c->nodes[id];
    struct aegis_raft_restore rs = {.hs = nd->hs, .bootstrap = c->conf};
    struct aegis_raft_config cfg = c->cfg;

    cfg.id = id;
    if (nd->io_override.read != NULL || nd->io_override.recv_open != NULL) {
        cfg.snapshot_io = nd->io_override;
    } else {
        aegis__snapshot_mem_io(&nd->mem, &cfg.snapshot_io);
    }
    rs.entries = nd->log;
    rs.entries_count = (uint32_t)nd->log_count;
    if (nd->has_snap) {
        rs.snapshot_meta = &nd->snap_meta;
        rs.snapshot_bytes = nd->snap_data != NULL ? nd->snap_data->len : 0;
    }
    if (aegis__raft_create(&nd->r, &cfg, &rs, &nd->rng, NULL, NULL) != 0) {
        cl_die("create");
    }
}

/* A cluster of @n nodes, ids 1..n; the first @voters are voters, the rest learners.
 * @cfg may be NULL for cl_default_config. */
static inline struct cluster *cl_new_mixed(uint32_t n, uint32_t voters,
                                           const struct aegis_raft_config *cfg, uint64_t seed)
{
    struct cluster *c = calloc(1, sizeof(*c));

    if (c == NULL || n > CL_NODES_MAX) {
        cl_die("new");
    }
    c->n = n;
    c->queue = calloc(CL_QUEUE_MAX, sizeof(*c->queue));
    if (cfg != NULL) {
        c->cfg = *cfg;
    } else {
        cl_default_config(&c->cfg);
    }
    c->conf.count = n;
    for (uint32_t i = 0; i < n; i++) {
        c->conf.members[i].id = i + 1;
        c->conf.members[i].role = i < voters ? AEGIS_MEMBER_VOTER : AEGIS_MEMBER_LEARNER;
    }
    for (aegis_node_id id = 1; id <= n; id++) {
        aegis__rng_seed(&c->nodes[id].rng, seed * 100 + id);
        aegis__snapshot_mem_init(&c->nodes[id].mem, NULL);
        cl_start_node(c, id);
    }
    return c;
}

static inline struct cluster *cl_new(uint32_t n, const struct aegis_raft_config *cfg)
{
    return cl_new_mixed(n, n, cfg, 1);
}

static inline struct aegis_raft *cl_r(struct cluster *c, aegis_node_id id)
{
    return c->nodes[id].r;
}

static inline void cl_enqueue(struct cluster *c, const struct aegis_msg *m)
{
    struct aegis_msg *slot;

    if (c->cut[m->from][m->to] || (c->filter != NULL && c->filter(c, m))) {
        c->dropped++;
        return;
    }
    if (c->q_count == CL_QUEUE_MAX) {
        cl_die("queue full");
    }
    slot = &c->queue[(c->q_head + c->q_count) % CL_QUEUE_MAX];
    if (aegis__msg_clone(slot, m, NULL) != 0) {
        cl_die("clone");
    }
    c->q_count++;
}

static inline void cl_disk_write(struct cl_node *nd, const struct aegis_ready *rd)
{
    if (rd->snapshot_meta != NULL) {
        for (size_t i = 0; i < nd->log_count; i++) {
            aegis__entry_unref(&nd->log[i]);
        }
        nd->log_count = 0;
        aegis__buf_unref(nd->snap_data);
        nd->snap_data = aegis__snapshot_mem_installed(&nd->mem, rd->snapshot_meta);
        if (nd->snap_data != NULL) {
            aegis__buf_ref(nd->snap_data);
        }
        nd->snap_meta = *rd->snapshot_meta;
        nd->has_snap = true;
    }
    if (rd->hs_changed) {
        nd->hs = rd->hs;
    }
    for (uint32_t i = 0; i < rd->entries_count; i++) {
        struct aegis_entry e = rd->entries[i];
        aegis_index first = nd->has_snap ? nd->snap_meta.index + 1 : 1;

        /* Truncate the suffix from e.index, then append. */
        while (nd->log_count > 0 && first + nd->log_count - 1 >= e.index) {
            aegis__entry_unref(&nd->log[--nd->log_count]);
        }
        if (first + nd->log_count != e.index) {
            cl_die("disk: entries not contiguous");
        }
        if (nd->log_count == nd->log_cap) {
            nd->log_cap = nd->log_cap == 0 ? 64 : nd->log_cap * 2;
            nd->log = realloc(nd->log, nd->log_cap * sizeof(*nd->log));
        }
        aegis__entry_ref(&e);
        nd->log[nd->log_count++] = e;
    }
}

static inline void cl_apply(struct cl_node *nd, const struct aegis_ready *rd)
{
    if (rd->snapshot_meta != NULL) {
        nd->snapshot_restored = rd->snapshot_meta->index;
        nd->applied_index = rd->snapshot_meta->index;
    }
    for (uint32_t i = 0; i < rd->committed_count; i++) {
        struct aegis_entry e = rd->committed[i];

        if (e.index != nd->applied_index + 1) {
            cl_die("apply out of order");
        }
        if (nd->applied_count == nd->applied_cap) {
            nd->applied_cap = nd->applied_cap == 0 ? 64 : nd->applied_cap * 2;
            nd->applied = realloc(nd->applied, nd->applied_cap * sizeof(*nd->applied));
        }
        aegis__entry_ref(&e);
        nd->applied[nd->applied_count++] = e;
        nd->applied_index = e.index;
    }
    for (uint32_t i = 0; i < rd->reads_count && nd->reads_count < CL_READS_MAX; i++) {
        nd->reads[nd->reads_count++] = rd->reads[i];
    }
    if (rd->snapshot_wanted) {
        nd->snapshot_wanted = true;
    }
}

/* Answer node @id's pending fetch from its durable copy (or with fetch_fail). */
static inline void cl_answer_fetch(struct cluster *c, aegis_node_id id)
{
    struct cl_node *nd = &c->nodes[id];
    struct aegis_log_fetch f = nd->fetch;
    aegis_index first = nd->has_snap ? nd->snap_meta.index + 1 : 1;
    uint64_t bytes = 0;
    uint32_t n = 0;
    int err = nd->fetch_fail;

    if (f.from == 0 || nd->r == NULL) {
        return;
    }
    memset(&nd->fetch, 0, sizeof(nd->fetch));
    nd->fetches++;
    if (err == 0 && (f.from < first || f.from >= first + nd->log_count)) {
        err = AEGIS_ECOMPACTED;
    }
    if (err == 0) {
        size_t k = (size_t)(f.from - first);

        while (k + n < nd->log_count && n < f.count_max &&
               (n == 0 || bytes + aegis__entry_len(&nd->log[k + n]) <= f.bytes_max)) {
            bytes += aegis__entry_len(&nd->log[k + n]);
            n++;
        }
        (void)aegis__raft_fetched(nd->r, f.from, &nd->log[k], n, 0);
        return;
    }
    (void)aegis__raft_fetched(nd->r, f.from, NULL, 0, err);
}

/* Run one ready/advance cycle on node @id. Returns whether there was one. */
static inline bool cl_process(struct cluster *c, aegis_node_id id)
{
    struct cl_node *nd = &c->nodes[id];
    struct aegis_ready rd;

    if (nd->r == NULL || nd->hold || !aegis__raft_has_ready(nd->r)) {
        return false;
    }
    aegis__raft_ready(nd->r, &rd);
    cl_disk_write(nd, &rd);
    for (uint32_t i = 0; i < rd.msgs_count; i++) {
        cl_enqueue(c, &rd.msgs[i]);
    }
    for (uint32_t i = 0; i < rd.msgs_after_persist_count; i++) {
        cl_enqueue(c, &rd.msgs_after_persist[i]);
    }
    cl_apply(nd, &rd);
    if (rd.fetch.from != 0) {
        nd->fetch = rd.fetch;
    }
    if (rd.entries_count > 0) {
        aegis_index index = rd.entries[rd.entries_count - 1].index;
        aegis_term term = rd.entries[rd.entries_count - 1].term;

        aegis__raft_advance(nd->r, &rd);
        aegis__raft_persisted(nd->r, index, term);
    } else {
        aegis__raft_advance(nd->r, &rd);
    }
    aegis__raft_applied(nd->r, nd->applied_index);
    if (!nd->fetch_defer) {
        cl_answer_fetch(c, id);
    }
    return true;
}

/* Deliver the oldest queued message. Returns false when the queue is empty. */
static inline bool cl_deliver_one(struct cluster *c)
{
    struct aegis_msg *m;

    if (c->q_count == 0) {
        return false;
    }
    m = &c->queue[c->q_head];
    c->q_head = (c->q_head + 1) % CL_QUEUE_MAX;
    c->q_count--;
    if (m->to >= 1 && m->to <= c->n && c->nodes[m->to].r != NULL && !c->cut[m->from][m->to]) {
        (void)aegis__raft_step(c->nodes[m->to].r, m);
        c->delivered++;
    }
    aegis__msg_release(m, NULL);
    return true;
}

/* Process readies and deliver messages until nothing is left to do. */
static inline void cl_settle(struct cluster *c)
{
    for (int rounds = 0; rounds < 100000; rounds++) {
        bool moved = false;

        for (aegis_node_id id = 1; id <= c->n; id++) {
            moved |= cl_process(c, id);
        }
        while (cl_deliver_one(c)) {
            moved = true;
            for (aegis_node_id id = 1; id <= c->n; id++) {
                moved |= cl_process(c, id);
            }
        }
        if (!moved) {
            return;
        }
    }
    cl_die("cluster does not settle");
}

/* Drop every queued message (a network that lost everything in flight). */
static inline void cl_drop_queue(struct cluster *c)
{
    while (c->q_count > 0) {
        aegis__msg_release(&c->queue[c->q_head], NULL);
        c->q_head = (c->q_head + 1) % CL_QUEUE_MAX;
        c->q_count--;
    }
}

/* Tick every running node once, then settle. */
static inline void cl_tick_all(struct cluster *c, uint32_t ticks)
{
    for (uint32_t t = 0; t < ticks; t++) {
        for (aegis_node_id id = 1; id <= c->n; id++) {
            if (c->nodes[id].r != NULL) {
                aegis__raft_tick(c->nodes[id].r);
            }
        }
        cl_settle(c);
    }
}

/* Make @id campaign and settle; returns whether it became leader. */
static inline bool cl_elect(struct cluster *c, aegis_node_id id)
{
    aegis__raft_campaign(cl_r(c, id));
    cl_settle(c);
    return aegis__raft_role(cl_r(c, id)) == AEGIS_ROLE_LEADER;
}

static inline void cl_cut(struct cluster *c, aegis_node_id a, aegis_node_id b)
{
    c->cut[a][b] = true;
    c->cut[b][a] = true;
}

static inline void cl_isolate(struct cluster *c, aegis_node_id id)
{
    for (aegis_node_id o = 1; o <= c->n; o++) {
        if (o != id) {
            cl_cut(c, id, o);
        }
    }
}

static inline void cl_heal(struct cluster *c)
{
    memset(c->cut, 0, sizeof(c->cut));
}

/* Propose a command holding @text on @id. Returns the core's answer. */
static inline int cl_propose(struct cluster *c, aegis_node_id id, const char *text,
                             aegis_index *index_out)
{
    struct aegis_buf *b = aegis__buf_from(NULL, text, strlen(text));
    int rv = aegis__raft_propose(cl_r(c, id), AEGIS_ENTRY_COMMAND, b, index_out);

    aegis__buf_unref(b);
    return rv;
}

/* How many entries of type COMMAND node @id applied, and whether the @k-th holds @text. */
static inline size_t cl_commands(const struct cluster *c, aegis_node_id id)
{
    const struct cl_node *nd = &c->nodes[id];
    size_t n = 0;

    for (size_t i = 0; i < nd->applied_count; i++) {
        n += nd->applied[i].type == AEGIS_ENTRY_COMMAND ? 1u : 0u;
    }
    return n;
}

static inline bool cl_applied_has(const struct cluster *c, aegis_node_id id, const char *text)
{
    const struct cl_node *nd = &c->nodes[id];
    size_t len = strlen(text);

    for (size_t i = 0; i < nd->applied_count; i++) {
        const struct aegis_entry *e = &nd->applied[i];

        if (e->type == AEGIS_ENTRY_COMMAND && aegis__entry_len(e) == len &&
            memcmp(aegis__entry_data(e), text, len) == 0) {
            return true;
        }
    }
    return false;
}

static inline void cl_node_stop(struct cluster *c, aegis_node_id id)
{
    struct cl_node *nd = &c->nodes[id];

    if (nd->r != NULL) {
        aegis__raft_destroy(nd->r);
        nd->r = NULL;
    }
}

/* Crash @id (losing all volatile state) and start it again from its durable copy. The
 * state machine restarts from the snapshot, if any. */
static inline void cl_restart(struct cluster *c, aegis_node_id id)
{
    struct cl_node *nd = &c->nodes[id];

    cl_node_stop(c, id);
    for (size_t i = 0; i < nd->applied_count; i++) {
        aegis__entry_unref(&nd->applied[i]);
    }
    nd->applied_count = 0;
    nd->applied_index = nd->has_snap ? nd->snap_meta.index : 0;
    nd->reads_count = 0;
    cl_start_node(c, id);
}

static inline void cl_free(struct cluster *c)
{
    cl_drop_queue(c);
    for (aegis_node_id id = 1; id <= c->n; id++) {
        struct cl_node *nd = &c->nodes[id];

        cl_node_stop(c, id);
        for (size_t i = 0; i < nd->log_count; i++) {
            aegis__entry_unref(&nd->log[i]);
        }
        for (size_t i = 0; i < nd->applied_count; i++) {
            aegis__entry_unref(&nd->applied[i]);
        }
        aegis__buf_unref(nd->snap_data);
        aegis__snapshot_mem_close(&nd->mem);
        free(nd->log);
        free(nd->applied);
    }
    free(c->queue);
    free(c);
}

/* The leader among running nodes with the highest term, or 0. */
static inline aegis_node_id cl_leader(const struct cluster *c)
{
    aegis_node_id best = 0;

    for (aegis_node_id id = 1; id <= c->n; id++) {
        const struct aegis_raft *r = c->nodes[id].r;

        if (r != NULL && aegis__raft_role(r) == AEGIS_ROLE_LEADER &&
            (best == 0 || aegis__raft_term(r) > aegis__raft_term(c->nodes[best].r))) {
            best = id;
        }
    }
    return best;
}

#endif /* AEGIS_TEST_RAFT_CLUSTER_H */
