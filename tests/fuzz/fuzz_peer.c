/* SPDX-License-Identifier: MIT */
/* Semantic fuzz target for the whole peer path into the Raft core: aegis__msg_validate
 * and aegis__raft_step (with the runtime's order: validate, then step), driven inside a
 * small in-memory cluster of three pure cores.
 *
 * The input is a program. Its bytes are read in order (0 once they run out) as a list of
 * operations, at most OPS_MAX:
 *   op % 8 == 0  tick every node 1..8 times, delivering the cluster's own traffic;
 *   op % 8 == 1  propose a command on the node that leads, if any;
 *   op % 8 == 2  deliver the cluster's queued traffic until it settles (bounded);
 *   op % 8 == 3  lose the oldest queued message;
 *   otherwise    inject one forged message into a victim node (1..3).
 * A forged message has a fuzzer-chosen type, sender (a member, the victim's leader, 0, or
 * an outsider) and fields; every term, index, offset and size is drawn by pick() from the
 * boundaries around the victim's state: 0, 1, 2, its term - 1 / term / term + 1, its last
 * index - 1 / last / last + 1, its commit, 2^62 - 1, 2^62, 2^63, 2^64 - 2, 2^64 - 1, or 8
 * raw bytes. Appended entries, snapshot chunks, memberships and flags are chosen the
 * same way, sometimes broken on purpose (a gap in indexes, a bad type, an empty
 * membership, a "done" that lies).
 *
 * Invariants, checked after every operation (abort() on violation):
 *   always:  no crash, no assertion, no hang (every loop here is bounded); a node's term
 *            never decreases and stays below AEGIS_TERM_MAX; its commit never decreases
 *            and never passes its last index; a message the victim refuses (non-zero
 *            from validate or step) changes nothing of its hard state, role, leader or
 *            log;
 *   while every injected message so far was refused (the cluster then saw only its own
 *   traffic plus refusals):
 *            the cluster's own messages are never refused; at most one leader per term;
 *            an entry handed out to apply was stored by a quorum (2 of 3) and every node
 *            applies the same term at each index (State Machine Safety).
 * A forged message the core accepts (valid values, in place) is indistinguishable from a
 * member's: what it may then do is the business of peer authentication (mutual TLS), so
 * after one the quorum and agreement checks stand down and the rest stay on.
 *
 * Seeds: tests/fuzz/corpus/peer/: <name>.bin made by gen_corpus.c (gen_peer), one per
 * attack of issue 12 and a few plain runs, and found-* kept from a libFuzzer campaign
 * (ASan + UBSan, 150 s, then -merge=1 -use_counters=0: the fewest inputs keeping every
 * edge), which reach states the named ones do not. */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include <aegis/error.h>

#include "engine/conf.h"
#include "engine/msg.h"
#include "engine/raft.h"
#include "engine/snapshot_mem.h"

#define NODES 3
#define OUTSIDER 9
#define OPS_MAX 64
#define QUEUE_MAX 4096
#define DELIVER_MAX 20000
#define DISK_MAX 2048 /* Indexes tracked on each node's "disk" (a run stays far below). */

struct node {
    struct aegis_raft *r;
    struct aegis_rng rng;
    aegis_term disk[DISK_MAX]; /* Term stored durably at each index (0: none). */
    aegis_index disk_last;
    aegis_index applied;
    aegis_term term_seen;
    aegis_index commit_seen;
    struct aegis_snapshot_mem snapio; /* The core's snapshot_io, in memory. */
};

struct reader {
    const uint8_t *p;
    size_t n;
};

static struct node nodes[NODES + 1];
static struct aegis_msg queue[QUEUE_MAX];
static size_t q_head, q_count;
static aegis_term gterm[DISK_MAX]; /* Term applied at each index, by anyone. */
static bool tainted;               /* An injected message was accepted. */
static struct aegis_conf conf;

static void check(bool ok)
{
    if (!ok) {
        abort();
    }
}

static uint8_t u8(struct reader *rd)
{
    if (rd->n == 0) {
        return 0;
    }
    rd->n--;
    return *rd->p++;
}

static uint64_t raw64(struct reader *rd)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++) {
        v = v << 8 | u8(rd);
    }
    return v;
}

/* A value around the boundaries of @r's state. */
static uint64_t pick(struct reader *rd, const struct aegis_raft *r)
{
    aegis_term term = aegis__raft_term(r);
    aegis_index last = aegis__raft_last_index(r);

    switch (u8(rd) % 16) {
    case 0: return 0;
    case 1: return 1;
    case 2: return 2;
    case 3: return term - 1;
    case 4: return term;
    case 5: return term + 1;
    case 6: return last - 1;
    case 7: return last;
    case 8: return last + 1;
    case 9: return aegis__raft_commit_index(r);
    case 10: return ((uint64_t)1 << 62) - 1;
    case 11: return (uint64_t)1 << 62;
    case 12: return (uint64_t)1 << 63;
    case 13: return UINT64_MAX - 1;
    case 14: return UINT64_MAX;
    default: return raw64(rd);
    }
}

static void enqueue(const struct aegis_msg *m)
{
    struct aegis_msg *slot;

    if (q_count == QUEUE_MAX || m->to < 1 || m->to > NODES) {
        return; /* Lost: Raft tolerates it. */
    }
    slot = &queue[(q_head + q_count) % QUEUE_MAX];
    check(aegis__msg_clone(slot, m, NULL) == 0);
    q_count++;
}

static void persist(struct node *nd, const struct aegis_ready *rd)
{
    if (rd->snapshot_meta != NULL) {
        aegis_index si = rd->snapshot_meta->index;

        (void)aegis__snapshot_mem_installed(&nd->snapio, rd->snapshot_meta);

        if (!tainted && si < DISK_MAX) {
            /* A snapshot holds committed entries only: they are what was applied. */
            check(gterm[si] == 0 || gterm[si] == rd->snapshot_meta->term);
            for (aegis_index i = 1; i <= si; i++) {
                nd->disk[i] = gterm[i];
            }
        }
        for (aegis_index i = si + 1; i <= nd->disk_last && i < DISK_MAX; i++) {
            nd->disk[i] = 0;
        }
        nd->disk_last = si < DISK_MAX ? si : DISK_MAX - 1;
        nd->applied = si;
    }
    for (uint32_t i = 0; i < rd->entries_count; i++) {
        const struct aegis_entry *e = &rd->entries[i];

        if (e->index < DISK_MAX) {
            nd->disk[e->index] = e->term;
        }
    }
    if (rd->entries_count > 0) {
        aegis_index last = rd->entries[rd->entries_count - 1].index;

        for (aegis_index i = last + 1; i <= nd->disk_last && i < DISK_MAX; i++) {
            nd->disk[i] = 0; /* Truncated behind the batch. */
        }
        nd->disk_last = last < DISK_MAX ? last : DISK_MAX - 1;
    }
}

static void apply(struct node *nd, const struct aegis_ready *rd)
{
    for (uint32_t i = 0; i < rd->committed_count; i++) {
        const struct aegis_entry *e = &rd->committed[i];
        uint32_t stored = 0;

        check(e->index == nd->applied + 1);
        nd->applied = e->index;
        if (tainted || e->index >= DISK_MAX) {
            continue;
        }
        for (int j = 1; j <= NODES; j++) {
            stored += nodes[j].disk[e->index] == e->term ? 1u : 0u;
        }
        check(stored >= 2);
        check(gterm[e->index] == 0 || gterm[e->index] == e->term);
        gterm[e->index] = e->term;
    }
}

static bool process(int id)
{
    struct node *nd = &nodes[id];
    struct aegis_ready rd;

    if (!aegis__raft_has_ready(nd->r)) {
        return false;
    }
    aegis__raft_ready(nd->r, &rd);
    persist(nd, &rd);
    for (uint32_t i = 0; i < rd.msgs_count; i++) {
        enqueue(&rd.msgs[i]);
    }
    for (uint32_t i = 0; i < rd.msgs_after_persist_count; i++) {
        enqueue(&rd.msgs_after_persist[i]);
    }
    apply(nd, &rd);
    if (rd.snapshot_wanted && nd->applied > 0) {
        struct aegis_snapshot_meta meta = {.index = nd->applied,
                                           .term = aegis__raft_term_at(nd->r, nd->applied)};
        struct aegis_buf *data = aegis__buf_from(NULL, "SNAP", 4);

        check(data != NULL);
        if (aegis__raft_snapshot_taken(nd->r, &meta, data->len) == 0) {
            aegis__snapshot_mem_set(&nd->snapio, &meta, data);
        }
        aegis__buf_unref(data);
    }
    if (rd.entries_count > 0) {
        aegis_index index = rd.entries[rd.entries_count - 1].index;
        aegis_term term = rd.entries[rd.entries_count - 1].term;

        aegis__raft_advance(nd->r, &rd);
        aegis__raft_persisted(nd->r, index, term);
    } else {
        aegis__raft_advance(nd->r, &rd);
    }
    aegis__raft_applied(nd->r, nd->applied);
    return true;
}

static void process_all(void)
{
    for (int round = 0; round < 8; round++) {
        bool moved = false;

        for (int id = 1; id <= NODES; id++) {
            moved |= process(id);
        }
        if (!moved) {
            return;
        }
    }
}

/* The cluster's own traffic: validated and stepped as the runtime does. */
static bool deliver_one(void)
{
    struct aegis_msg *m;
    int rv;

    if (q_count == 0) {
        return false;
    }
    m = &queue[q_head];
    q_head = (q_head + 1) % QUEUE_MAX;
    q_count--;
    rv = aegis__msg_validate(m);
    if (rv == 0) {
        rv = aegis__raft_step(nodes[m->to].r, m);
    }
    check(rv == 0 || tainted);
    aegis__msg_release(m, NULL);
    process_all();
    return true;
}

static void settle(void)
{
    for (int i = 0; i < DELIVER_MAX && deliver_one(); i++) {
    }
}

static void check_invariants(void)
{
    for (int id = 1; id <= NODES; id++) {
        struct node *nd = &nodes[id];
        aegis_term term = aegis__raft_term(nd->r);
        aegis_index commit = aegis__raft_commit_index(nd->r);

        check(term >= nd->term_seen && term < AEGIS_TERM_MAX);
        check(commit >= nd->commit_seen && commit <= aegis__raft_last_index(nd->r));
        check(aegis__raft_hard_state(nd->r).term == term);
        nd->term_seen = term;
        nd->commit_seen = commit;
        if (tainted || aegis__raft_role(nd->r) != AEGIS_ROLE_LEADER) {
            continue;
        }
        for (int j = id + 1; j <= NODES; j++) {
            check(aegis__raft_role(nodes[j].r) != AEGIS_ROLE_LEADER ||
                  aegis__raft_term(nodes[j].r) != term);
        }
    }
}

static aegis_node_id pick_from(struct reader *rd, const struct aegis_raft *victim)
{
    switch (u8(rd) % 6) {
    case 0: return 1;
    case 1: return 2;
    case 2: return 3;
    case 3: return aegis__raft_leader(victim);
    case 4: return 0;
    default: return OUTSIDER;
    }
}

static struct aegis_entry *forge_entries(struct reader *rd, const struct aegis_raft *v,
                                         struct aegis_msg *m)
{
    uint32_t n = u8(rd) % 4;
    bool gap = u8(rd) % 8 == 0;
    struct aegis_entry *es;

    if (n == 0) {
        return NULL;
    }
    es = calloc(n, sizeof(*es));
    check(es != NULL);
    for (uint32_t i = 0; i < n; i++) {
        es[i].index = m->append_req.prev_index + 1 + i + (gap && i == n - 1 ? 1 : 0);
        es[i].term = u8(rd) % 2 == 0 ? m->term : pick(rd, v);
        es[i].type = (uint8_t)(u8(rd) % 5); /* 0 and 4 are not entry types. */
        if (es[i].type == AEGIS_ENTRY_COMMAND) {
            es[i].buf = aegis__buf_from(NULL, "forged", 6);
        }
    }
    m->append_req.entries = es;
    m->append_req.entries_count = n;
    return es;
}

static void forge_snapshot(struct reader *rd, const struct aegis_raft *v, struct aegis_msg *m)
{
    struct aegis_snapshot_req *s = &m->snapshot_req;
    uint8_t shape = u8(rd);
    uint8_t bytes[16];
    size_t len = u8(rd) % 16;

    s->meta.index = pick(rd, v);
    s->meta.term = u8(rd) % 2 == 0 ? m->term : pick(rd, v);
    s->meta.conf = conf;
    if (shape % 8 == 0) {
        s->meta.conf.count = 0;
    } else if (shape % 8 == 1) {
        s->meta.conf.members[1].id = s->meta.conf.members[0].id; /* A duplicate. */
    }
    s->offset = shape & 0x10 ? pick(rd, v) : u8(rd) % 16;
    s->total_bytes = shape & 0x20 ? pick(rd, v) : s->offset + len + u8(rd) % 4;
    for (size_t i = 0; i < len; i++) {
        bytes[i] = i == 0 && u8(rd) % 2 == 0 ? 'S' : u8(rd);
    }
    s->chunk = len > 0 ? aegis__buf_from(NULL, bytes, len) : NULL;
    s->done = shape & 0x40 ? !(s->offset + len == s->total_bytes)
                           : s->offset + len == s->total_bytes;
}

static void forge_body(struct reader *rd, const struct aegis_raft *v, struct aegis_msg *m)
{
    switch (m->type) {
    case AEGIS_MSG_VOTE_REQ:
        m->vote_req.last_log_index = pick(rd, v);
        m->vote_req.last_log_term = pick(rd, v);
        m->vote_req.pre_vote = u8(rd) % 2;
        m->vote_req.leadership_transfer = u8(rd) % 2;
        break;
    case AEGIS_MSG_VOTE_RESP:
        m->vote_resp.granted = u8(rd) % 2;
        m->vote_resp.pre_vote = u8(rd) % 2;
        break;
    case AEGIS_MSG_APPEND_REQ:
        m->append_req.prev_index = pick(rd, v);
        m->append_req.prev_term = pick(rd, v);
        m->append_req.commit = pick(rd, v);
        (void)forge_entries(rd, v, m);
        break;
    case AEGIS_MSG_APPEND_RESP:
        m->append_resp.success = u8(rd) % 2;
        m->append_resp.match_index = pick(rd, v);
        m->append_resp.conflict_index = pick(rd, v);
        m->append_resp.conflict_term = pick(rd, v);
        m->append_resp.last_index = pick(rd, v);
        break;
    case AEGIS_MSG_SNAPSHOT_REQ:
        forge_snapshot(rd, v, m);
        break;
    case AEGIS_MSG_SNAPSHOT_RESP:
        m->snapshot_resp.index = pick(rd, v);
        m->snapshot_resp.next_offset = pick(rd, v);
        m->snapshot_resp.success = u8(rd) % 2;
        break;
    case AEGIS_MSG_HEARTBEAT:
        m->heartbeat.commit = pick(rd, v);
        m->heartbeat.read_ctx = u8(rd);
        break;
    case AEGIS_MSG_HEARTBEAT_RESP:
        m->heartbeat_resp.read_ctx = u8(rd);
        break;
    case AEGIS_MSG_TIMEOUT_NOW:
        m->timeout_now.target = u8(rd) % (NODES + 2);
        break;
    case AEGIS_MSG_READ_INDEX_REQ:
        m->read_index_req.ctx = u8(rd);
        break;
    case AEGIS_MSG_READ_INDEX_RESP:
        m->read_index_resp.ctx = u8(rd);
        m->read_index_resp.index = pick(rd, v);
        m->read_index_resp.ok = u8(rd) % 2;
        break;
    default:
        break; /* CLIENT_*: the runtime's; the core ignores them. */
    }
}

struct state {
    struct aegis_hard_state hs;
    enum aegis_role role;
    aegis_node_id leader;
    aegis_index last;
    aegis_term last_term;
};

static struct state state_of(const struct aegis_raft *r)
{
    aegis_index last = aegis__raft_last_index(r);

    return (struct state){aegis__raft_hard_state(r), aegis__raft_role(r),
                          aegis__raft_leader(r), last, aegis__raft_term_at(r, last)};
}

static void inject(struct reader *rd)
{
    int id = 1 + u8(rd) % NODES;
    struct aegis_raft *v = nodes[id].r;
    struct aegis_msg m = {0};
    struct state before, after;
    int rv;

    m.type = (uint8_t)(1 + u8(rd) % AEGIS_MSG_TYPE_MAX);
    m.from = pick_from(rd, v);
    m.to = u8(rd) % 8 == 0 ? OUTSIDER : (aegis_node_id)id;
    m.term = pick(rd, v);
    forge_body(rd, v, &m);
    before = state_of(v);
    rv = aegis__msg_validate(&m);
    if (rv == 0) {
        rv = aegis__raft_step(v, &m);
    }
    after = state_of(v);
    if (rv != 0) {
        check(memcmp(&before.hs, &after.hs, sizeof(before.hs)) == 0);
        check(before.role == after.role && before.leader == after.leader &&
              before.last == after.last && before.last_term == after.last_term);
    } else if (m.type != AEGIS_MSG_CLIENT_REQ && m.type != AEGIS_MSG_CLIENT_RESP) {
        tainted = true;
    }
    aegis__msg_release(&m, NULL); /* Frees the forged entries array and buffers. */
    process_all();
}

static void start(void)
{
    struct aegis_raft_config cfg;
    struct aegis_raft_restore rs = {0};

    memset(nodes, 0, sizeof(nodes));
    memset(gterm, 0, sizeof(gterm));
    q_head = q_count = 0;
    tainted = false;
    conf = (struct aegis_conf){0};
    conf.count = NODES;
    for (uint32_t i = 0; i < NODES; i++) {
        conf.members[i] = (struct aegis_member){i + 1, AEGIS_MEMBER_VOTER};
    }
    aegis__raft_config_default(&cfg);
    cfg.election_timeout_min_ticks = 5;
    cfg.election_timeout_max_ticks = 10;
    cfg.heartbeat_interval_ticks = 1;
    cfg.snapshot_threshold = 16;
    cfg.snapshot_trailing = 4;
    cfg.snapshot_chunk_bytes = 2;
    rs.bootstrap = conf;
    for (int id = 1; id <= NODES; id++) {
        cfg.id = (aegis_node_id)id;
        aegis__rng_seed(&nodes[id].rng, (uint64_t)id);
        aegis__snapshot_mem_init(&nodes[id].snapio, NULL);
        aegis__snapshot_mem_io(&nodes[id].snapio, &cfg.snapshot_io);
        check(aegis__raft_create(&nodes[id].r, &cfg, &rs, &nodes[id].rng, NULL, NULL) == 0);
    }
    aegis__raft_campaign(nodes[1].r);
    process_all();
    settle();
}

static void stop(void)
{
    while (q_count > 0) {
        aegis__msg_release(&queue[q_head], NULL);
        q_head = (q_head + 1) % QUEUE_MAX;
        q_count--;
    }
    for (int id = 1; id <= NODES; id++) {
        aegis__raft_destroy(nodes[id].r);
        nodes[id].r = NULL;
        aegis__snapshot_mem_close(&nodes[id].snapio);
    }
}

static void tick(struct reader *rd)
{
    uint32_t n = 1 + u8(rd) % 8;

    for (uint32_t t = 0; t < n; t++) {
        for (int id = 1; id <= NODES; id++) {
            aegis__raft_tick(nodes[id].r);
        }
        process_all();
        for (int i = 0; i < 64 && deliver_one(); i++) {
        }
    }
}

static void propose(void)
{
    for (int id = 1; id <= NODES; id++) {
        if (aegis__raft_role(nodes[id].r) == AEGIS_ROLE_LEADER) {
            struct aegis_buf *b = aegis__buf_from(NULL, "cmd", 3);

            check(b != NULL);
            (void)aegis__raft_propose(nodes[id].r, AEGIS_ENTRY_COMMAND, b, NULL);
            aegis__buf_unref(b);
            process_all();
            return;
        }
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Each input creates three cores (about a megabyte of fixed tables each): keep freed
 * memory in the heap rather than returning it to the kernel and faulting it back in,
 * which otherwise costs most of the time of an input. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct reader rd = {data, size};

    start();
    check_invariants();
    for (int op = 0; op < OPS_MAX && rd.n > 0; op++) {
        switch (u8(&rd) % 8) {
        case 0:
            tick(&rd);
            break;
        case 1:
            propose();
            break;
        case 2:
            settle();
            break;
        case 3:
            if (q_count > 0) {
                aegis__msg_release(&queue[q_head], NULL);
                q_head = (q_head + 1) % QUEUE_MAX;
                q_count--;
            }
            break;
        default:
            inject(&rd);
            break;
        }
        check_invariants();
    }
    /* Whatever happened, the cluster still settles (no endless exchange). */
    settle();
    check_invariants();
    stop();
    return 0;
}
