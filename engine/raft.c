/* SPDX-License-Identifier: MIT */
/* The Raft core: creation, the step/tick/propose entry points, the ready/advance cycle,
 * persistence and apply reports, and queries. Roles and votes live in raft_election.c,
 * replication in raft_replicate.c, snapshots in raft_snapshot.c, ReadIndex in
 * raft_read.c and membership in raft_membership.c; raft_impl.h describes the state and
 * the output boxes.
 *
 * Determinism: the core's only inputs are the calls made on it and the rng it is given;
 * it reads no clock and allocates only through its allocator. */
#include "engine/raft.h"

#include <string.h>

#include <aegis/error.h>

#include "engine/assert.h"
#include "engine/raft_impl.h"

void aegis__raft_config_default(struct aegis_raft_config *c)
{
    memset(c, 0, sizeof(*c));
    c->election_timeout_min_ticks = 10;
    c->election_timeout_max_ticks = 20;
    c->heartbeat_interval_ticks = 2;
    c->snapshot_threshold = 10000;
    c->snapshot_trailing = 1000;
    c->inflight_msgs_max = 256;
    c->inflight_bytes_max = 16u << 20;
    c->append_bytes_max = 1u << 20;
    c->snapshot_chunk_bytes = 1u << 20;
    c->snapshot_chunks_inflight_max = 4;
    c->pre_vote = true;
    c->check_quorum = true;
}

#ifdef AEGIS_SIM_BUGS
bool aegis__raft_bug(const struct aegis_raft *r, uint32_t bug)
{
    return (r->cfg.bugs & bug) != 0;
}
#endif

void aegis__raft_trace(const struct aegis_raft *r, const char *what, uint64_t a, uint64_t b)
{
    if (r->tracer != NULL && r->tracer->event != NULL) {
        r->tracer->event(r->tracer->data, r->id, what, a, b);
    }
}

static bool config_valid(const struct aegis_raft_config *c)
{
    return c->id != AEGIS_NODE_NONE && c->election_timeout_min_ticks >= 1 &&
           c->election_timeout_max_ticks >= c->election_timeout_min_ticks &&
           c->heartbeat_interval_ticks >= 1 &&
           c->heartbeat_interval_ticks < c->election_timeout_min_ticks &&
           c->inflight_msgs_max >= 1 && c->inflight_bytes_max >= 1 &&
           c->append_bytes_max >= 1 && c->snapshot_chunk_bytes >= 1 &&
           c->snapshot_chunk_bytes <= AEGIS_BUF_LEN_MAX && c->snapshot_chunks_inflight_max >= 1;
}

/* Grow @*arr (of @*cap elements of @size bytes) to hold at least @need, doubling, never
 * past @max. Returns false when that is impossible. */
static bool grow_array(struct aegis_raft *r, void **arr, uint32_t *cap, uint32_t need,
                       size_t size, uint32_t max)
{
    uint32_t n = *cap == 0 ? 64 : *cap;
    void *p;

    if (need <= *cap) {
        return true;
    }
    if (need > max) {
        return false;
    }
    while (n < need) {
        n = n > max / 2 ? max : n * 2;
    }
    p = aegis__realloc(r->alloc, *arr, (size_t)n * size);
    if (p == NULL) {
        return false;
    }
    *arr = p;
    *cap = n;
    return true;
}

struct aegis_msg *aegis__raft_push(struct aegis_raft *r, uint8_t type, aegis_node_id to,
                                   bool after_persist)
{
    struct aegis_raft_box *b = &r->boxes[r->cur];
    struct aegis_msg *m;

    AEGIS_ASSERT(to != r->id);
    if (after_persist) {
        if (!grow_array(r, (void **)&b->after, &b->after_cap, b->after_count + 1,
                        sizeof(*b->after), AEGIS_RAFT_MSGS_MAX)) {
            r->msgs_dropped++;
            return NULL;
        }
        m = &b->after[b->after_count++];
    } else {
        uint32_t cap = b->msgs_cap;

        if (!grow_array(r, (void **)&b->msgs, &b->msgs_cap, b->msgs_count + 1,
                        sizeof(*b->msgs), AEGIS_RAFT_MSGS_MAX) ||
            !grow_array(r, (void **)&b->msgs_pool_off, &cap, b->msgs_cap,
                        sizeof(*b->msgs_pool_off), AEGIS_RAFT_MSGS_MAX)) {
            r->msgs_dropped++;
            return NULL;
        }
        b->msgs_pool_off[b->msgs_count] = 0;
        m = &b->msgs[b->msgs_count++];
    }
    memset(m, 0, sizeof(*m));
    m->type = type;
    m->from = r->id;
    m->to = to;
    m->term = r->term;
    return m;
}

struct aegis_entry *aegis__raft_push_entries(struct aegis_raft *r, struct aegis_msg *m,
                                             uint32_t n)
{
    struct aegis_raft_box *b = &r->boxes[r->cur];

    AEGIS_ASSERT(m == &b->msgs[b->msgs_count - 1]);
    AEGIS_ASSERT(m->type == AEGIS_MSG_APPEND_REQ);
    if (!grow_array(r, (void **)&b->pool, &b->pool_cap, b->pool_count + n, sizeof(*b->pool),
                    AEGIS_RAFT_MSGS_MAX * AEGIS_RAFT_APPEND_ENTRIES_MAX)) {
        return NULL;
    }
    b->msgs_pool_off[b->msgs_count - 1] = b->pool_count;
    return &b->pool[b->pool_count];
}

void aegis__raft_push_read(struct aegis_raft *r, uint64_t ctx, aegis_index index)
{
    struct aegis_raft_box *b = &r->boxes[r->cur];

    if (!grow_array(r, (void **)&b->reads, &b->reads_cap, b->reads_count + 1,
                    sizeof(*b->reads), AEGIS_RAFT_READS_MAX)) {
        return; /* Dropped: the runtime times the read out. */
    }
    b->reads[b->reads_count++] = (struct aegis_read_state){.ctx = ctx, .index = index};
}

struct aegis_progress *aegis__raft_progress_of(struct aegis_raft *r, aegis_node_id id)
{
    if (id == AEGIS_NODE_NONE) {
        return NULL;
    }
    for (uint32_t i = 0; i < AEGIS_MEMBERS_MAX; i++) {
        if (r->prs[i].id == id) {
            return &r->prs[i];
        }
    }
    return NULL;
}

bool aegis__raft_promotable(const struct aegis_raft *r)
{
    return aegis__conf_is_voter(&r->conf, r->id);
}

static int alloc_state(struct aegis_raft *r)
{
    int rv;

    for (uint32_t i = 0; i < AEGIS_MEMBERS_MAX; i++) {
        rv = aegis__progress_init(&r->prs[i], r->cfg.inflight_msgs_max, r->alloc);
        if (rv != 0) {
            return rv;
        }
    }
    r->reads = aegis__calloc(r->alloc, AEGIS_RAFT_READS_MAX, sizeof(*r->reads));
    r->rd_entries = aegis__calloc(r->alloc, AEGIS_RAFT_READY_ENTRIES_MAX,
                                  sizeof(struct aegis_entry));
    r->rd_committed = aegis__calloc(r->alloc, AEGIS_RAFT_READY_ENTRIES_MAX,
                                    sizeof(struct aegis_entry));
    if (r->reads == NULL || r->rd_entries == NULL || r->rd_committed == NULL) {
        return AEGIS_ENOMEM;
    }
    return 0;
}

/* Load the durable state: snapshot, entries after it, hard state, membership. */
static int restore(struct aegis_raft *r, const struct aegis_raft_restore *rs)
{
    int rv;

    r->base_conf = rs->bootstrap;
    if (rs->snapshot_meta != NULL) {
        if (!aegis__conf_valid(&rs->snapshot_meta->conf)) {
            return AEGIS_ECONFIG;
        }
        aegis__log_reset(&r->log, rs->snapshot_meta->index, rs->snapshot_meta->term);
        r->snap_meta = *rs->snapshot_meta;
        r->snap_bytes = rs->snapshot_bytes;
        if (r->snap_bytes > AEGIS_SNAPSHOT_BYTES_MAX) {
            return AEGIS_ECONFIG;
        }
        r->base_conf = rs->snapshot_meta->conf;
        r->applied = r->snap_meta.index;
    }
    if (!aegis__conf_valid(&r->base_conf)) {
        return AEGIS_ECONFIG;
    }
    r->conf = r->base_conf;
    for (uint32_t i = 0; i < rs->entries_count; i++) {
        rv = aegis__log_append(&r->log, &rs->entries[i]);
        if (rv != 0) {
            return rv == AEGIS_EINVAL ? AEGIS_ECORRUPT : rv;
        }
        if (rs->entries[i].type == AEGIS_ENTRY_CONFIG_CHANGE) {
            aegis__raft_conf_appended(r, &rs->entries[i]);
        }
    }
    if (rs->hs.term >= AEGIS_TERM_MAX) {
        return AEGIS_ECORRUPT; /* No election could ever follow (msg.h, AEGIS_TERM_MAX). */
    }
    r->term = rs->hs.term;
    r->vote = rs->hs.vote;
    if (r->log.commit < rs->hs.commit) {
        aegis_index last = aegis__log_last_index(&r->log);

        aegis__log_commit(&r->log, rs->hs.commit < last ? rs->hs.commit : last);
    }
    r->hs_handed = aegis__raft_hard_state(r);
    r->persisted_index = aegis__log_last_index(&r->log);
    r->unstable_from = r->persisted_index + 1;
    r->handed_commit = r->snap_meta.index;
    return 0;
}

int aegis__raft_create(struct aegis_raft **out, const struct aegis_raft_config *config,
                       const struct aegis_raft_restore *restore_from, struct aegis_rng *rng,
                       const struct aegis_raft_tracer *tracer,
                       const struct aegis_allocator *a)
{
    struct aegis_raft *r;
    int rv;

    AEGIS_ASSERT(rng != NULL);
    if (!config_valid(config)) {
        return AEGIS_ECONFIG;
    }
    a = aegis__alloc_or_default(a);
    r = aegis__calloc(a, 1, sizeof(*r));
    if (r == NULL) {
        return AEGIS_ENOMEM;
    }
    r->alloc = a;
    r->cfg = *config;
    r->rng = rng;
    r->tracer = tracer;
    r->id = config->id;
    r->fresh = config->fresh && !aegis__raft_bug(r, AEGIS_RAFT_BUG_NO_AMNESIA_GUARD);
    aegis__log_init(&r->log, a);
    aegis__log_set_cache_max(&r->log, config->log_cache_bytes);
    rv = alloc_state(r);
    if (rv == 0) {
        rv = restore(r, restore_from);
    }
    if (rv != 0) {
        aegis__raft_destroy(r);
        return rv;
    }
    r->role = aegis__conf_find(&r->conf, r->id) != NULL &&
                      !aegis__conf_is_voter(&r->conf, r->id)
                  ? AEGIS_ROLE_LEARNER
                  : AEGIS_ROLE_FOLLOWER;
    aegis__raft_reset_timeout(r);
    *out = r;
    return 0;
}

static void box_release(struct aegis_raft *r, struct aegis_raft_box *b)
{
    for (uint32_t i = 0; i < b->pool_count; i++) {
        aegis__entry_unref(&b->pool[i]);
    }
    for (uint32_t i = 0; i < b->msgs_count; i++) {
        if (b->msgs[i].type == AEGIS_MSG_SNAPSHOT_REQ) {
            aegis__buf_unref(b->msgs[i].snapshot_req.chunk);
        }
    }
    (void)r;
    b->pool_count = 0;
    b->msgs_count = 0;
    b->after_count = 0;
    b->reads_count = 0;
}

static void release_ready(struct aegis_raft *r)
{
    for (uint32_t i = 0; i < r->rd_entries_count; i++) {
        aegis__entry_unref(&r->rd_entries[i]);
    }
    for (uint32_t i = 0; i < r->rd_committed_count; i++) {
        aegis__entry_unref(&r->rd_committed[i]);
    }
    r->rd_entries_count = 0;
    r->rd_committed_count = 0;
    box_release(r, &r->boxes[r->cur ^ 1u]);
}

void aegis__raft_destroy(struct aegis_raft *r)
{
    if (r == NULL) {
        return;
    }
    release_ready(r);
    box_release(r, &r->boxes[r->cur]);
    for (uint32_t i = 0; i < 2; i++) {
        struct aegis_raft_box *b = &r->boxes[i];

        aegis__free(r->alloc, b->msgs);
        aegis__free(r->alloc, b->msgs_pool_off);
        aegis__free(r->alloc, b->after);
        aegis__free(r->alloc, b->pool);
        aegis__free(r->alloc, b->reads);
    }
    for (uint32_t i = 0; i < AEGIS_MEMBERS_MAX; i++) {
        aegis__progress_close(&r->prs[i], r->alloc);
    }
    aegis__log_close(&r->log);
    aegis__free(r->alloc, r->reads);
    aegis__free(r->alloc, r->rd_entries);
    aegis__free(r->alloc, r->rd_committed);
    aegis__free(r->alloc, r);
}

/* Whether @m comes from a node that currently acts as leader towards us. */
static bool from_leader(uint8_t type)
{
    return type == AEGIS_MSG_APPEND_REQ || type == AEGIS_MSG_HEARTBEAT ||
           type == AEGIS_MSG_SNAPSHOT_REQ;
}

/* Tell a stale leader (or pre-candidate) about our newer term (etcd: with check-quorum or
 * pre-vote a node ignoring lower terms would otherwise leave it stuck). */
static void answer_lower_term(struct aegis_raft *r, const struct aegis_msg *m)
{
    struct aegis_msg *resp;

    if (from_leader(m->type) && (r->cfg.check_quorum || r->cfg.pre_vote)) {
        resp = aegis__raft_push(r, AEGIS_MSG_APPEND_RESP, m->from, true);
        if (resp != NULL) {
            resp->append_resp.last_index = aegis__log_last_index(&r->log);
        }
    } else if (m->type == AEGIS_MSG_VOTE_REQ && m->vote_req.pre_vote) {
        resp = aegis__raft_push(r, AEGIS_MSG_VOTE_RESP, m->from, false);
        if (resp != NULL) {
            resp->vote_resp.pre_vote = true;
        }
    } else if (m->type == AEGIS_MSG_VOTE_REQ) {
        /* §5.1: answer a stale RequestVote with a rejection carrying our term, so that a
         * candidate behind in terms learns the current one. Without it a candidate whose
         * peers all moved on (crashes, membership change, pre-vote off) could campaign
         * in a stale term forever (found by the simulation, seed 528, chaos profile). */
        resp = aegis__raft_push(r, AEGIS_MSG_VOTE_RESP, m->from, true);
        if (resp != NULL) {
            resp->vote_resp.granted = false;
        }
    }
}

/* Term rules of §5.1 (and etcd's refinements for pre-vote and leader stickiness).
 * Returns false when the message is to be dropped. */
static bool step_term(struct aegis_raft *r, const struct aegis_msg *m)
{
    if (m->term > r->term) {
        if (m->type == AEGIS_MSG_VOTE_REQ) {
            /* Leader stickiness (thesis §4.2.3): while a leader is heard from, ignore
             * elections unless the leader itself asked for one (transfer). */
            bool in_lease = r->cfg.check_quorum && r->leader != AEGIS_NODE_NONE &&
                            r->election_elapsed < r->cfg.election_timeout_min_ticks;

            if (in_lease && !aegis__raft_transfer_sanctioned(r, m)) {
                return false;
            }
            if (m->vote_req.pre_vote) {
                return true; /* A pre-vote never changes our term. */
            }
        }
        if (m->type == AEGIS_MSG_VOTE_RESP && m->vote_resp.pre_vote && m->vote_resp.granted) {
            return true; /* Granted pre-votes carry the term we would campaign in. */
        }
        aegis__raft_become_follower(r, m->term,
                                    from_leader(m->type) ? m->from : AEGIS_NODE_NONE);
        return true;
    }
    if (m->term < r->term) {
        answer_lower_term(r, m);
        return false;
    }
    return true;
}

/* A message from the current term's leader: learn it and reset the election timer. */
static bool step_from_leader(struct aegis_raft *r, const struct aegis_msg *m)
{
    /* check_in_place refused a second leader in our term; a higher term made us follow. */
    AEGIS_ASSERT(r->role != AEGIS_ROLE_LEADER);
    if (r->role == AEGIS_ROLE_CANDIDATE || r->role == AEGIS_ROLE_PRECANDIDATE ||
        r->leader != m->from) {
        aegis__raft_become_follower(r, m->term, m->from);
    }
    r->election_elapsed = 0;
    return true;
}

static int step_leader_side(struct aegis_raft *r, const struct aegis_msg *m)
{
    struct aegis_progress *pr;

    if (r->role != AEGIS_ROLE_LEADER) {
        return 0;
    }
    pr = aegis__raft_progress_of(r, m->from);
    if (pr == NULL) {
        return 0; /* Unknown sender: ignored. */
    }
    pr->recent_active = true;
    switch (m->type) {
    case AEGIS_MSG_APPEND_RESP:
        aegis__raft_handle_append_resp(r, pr, m);
        break;
    case AEGIS_MSG_HEARTBEAT_RESP:
        aegis__raft_handle_heartbeat_resp(r, pr, m);
        break;
    case AEGIS_MSG_SNAPSHOT_RESP:
        aegis__raft_handle_snapshot_resp(r, pr, m);
        break;
    default:
        AEGIS_UNREACHABLE();
    }
    return 0;
}

/* Checks that depend on our state, made before the term rules so that a refused message
 * changes nothing (not even the term). Returns 0 or AEGIS_EINVAL. */
static int check_in_place(const struct aegis_raft *r, const struct aegis_msg *m)
{
    bool leader_msg = from_leader(m->type) || m->type == AEGIS_MSG_TIMEOUT_NOW;

    if (m->from == r->id || (m->to != AEGIS_NODE_NONE && m->to != r->id)) {
        return AEGIS_EINVAL;
    }
    /* Election safety (§5.2): one leader per term. Leader traffic in our term from
     * another node than the leader we know (or while we lead) is forged or broken. */
    if (leader_msg && m->term == r->term &&
        (r->role == AEGIS_ROLE_LEADER ||
         (r->leader != AEGIS_NODE_NONE && r->leader != m->from))) {
        return AEGIS_EINVAL;
    }
    /* A TimeoutNow comes from the leader we know in our term: one from a higher term, or
     * before we know a leader, is from nobody we follow (a lower one is stale and is
     * dropped by the term rules). */
    if (m->type == AEGIS_MSG_TIMEOUT_NOW &&
        (m->term > r->term || (m->term == r->term && r->leader != m->from))) {
        return AEGIS_EINVAL;
    }
    return 0;
}

int aegis__raft_step(struct aegis_raft *r, const struct aegis_msg *m)
{
    int rv = aegis__msg_validate(m);

    if (rv != 0) {
        return rv;
    }
    if (m->type == AEGIS_MSG_CLIENT_REQ || m->type == AEGIS_MSG_CLIENT_RESP) {
        return 0; /* The runtime's business. */
    }
    rv = check_in_place(r, m);
    if (rv != 0) {
        return rv;
    }
    if (aegis__raft_amnesia_guard(r, m)) {
        return 0; /* Refused before it changes anything; rd.fatal says why. */
    }
    if (!step_term(r, m)) {
        return 0;
    }
    switch (m->type) {
    case AEGIS_MSG_VOTE_REQ:
        aegis__raft_handle_vote_req(r, m);
        return 0;
    case AEGIS_MSG_VOTE_RESP:
        aegis__raft_handle_vote_resp(r, m);
        return 0;
    case AEGIS_MSG_APPEND_REQ:
        return step_from_leader(r, m) ? aegis__raft_handle_append_req(r, m) : 0;
    case AEGIS_MSG_HEARTBEAT:
        if (step_from_leader(r, m)) {
            aegis__raft_handle_heartbeat(r, m);
        }
        return 0;
    case AEGIS_MSG_SNAPSHOT_REQ:
        return step_from_leader(r, m) ? aegis__raft_handle_snapshot_req(r, m) : 0;
    case AEGIS_MSG_TIMEOUT_NOW:
        aegis__raft_handle_timeout_now(r, m);
        return 0;
    case AEGIS_MSG_READ_INDEX_REQ:
        aegis__raft_handle_read_index_req(r, m);
        return 0;
    case AEGIS_MSG_READ_INDEX_RESP:
        aegis__raft_handle_read_index_resp(r, m);
        return 0;
    default:
        return step_leader_side(r, m);
    }
}

void aegis__raft_tick(struct aegis_raft *r)
{
    if (r->fatal != 0) {
        return;
    }
    if (r->role == AEGIS_ROLE_LEADER) {
        aegis__raft_tick_leader(r);
        if (r->role == AEGIS_ROLE_LEADER) {
            aegis__raft_tick_learners(r);
        }
    } else {
        aegis__raft_tick_follower(r);
    }
}

void aegis__raft_campaign(struct aegis_raft *r)
{
    if (r->role == AEGIS_ROLE_LEADER || !aegis__raft_promotable(r) || r->fatal != 0) {
        return;
    }
    aegis__raft_start_election(r, r->cfg.pre_vote, false);
}

/* Check a proposed ConfigChange payload: it must be one valid step from the current
 * configuration. */
static int check_conf_change(const struct aegis_raft *r, const struct aegis_buf *buf)
{
    struct aegis_conf_change cc;
    struct aegis_conf next;

    if (buf == NULL || aegis__conf_decode(buf->data, buf->len, &cc) != 0) {
        return AEGIS_EINVAL;
    }
    if (aegis__conf_change(&r->conf, cc.op, cc.id, &next) != 0 ||
        !aegis__conf_equal(&next, &cc.conf)) {
        return AEGIS_EINVAL;
    }
    return 0;
}

int aegis__raft_propose(struct aegis_raft *r, uint8_t type, struct aegis_buf *buf,
                        aegis_index *index_out)
{
    int rv;

    if (type != AEGIS_ENTRY_COMMAND && type != AEGIS_ENTRY_NOOP &&
        type != AEGIS_ENTRY_CONFIG_CHANGE) {
        return AEGIS_EINVAL;
    }
    if (r->role != AEGIS_ROLE_LEADER) {
        return AEGIS_ENOTLEADER;
    }
    if (r->transfer_target != AEGIS_NODE_NONE) {
        return AEGIS_EBUSY;
    }
    if (type == AEGIS_ENTRY_CONFIG_CHANGE) {
        if (r->conf_index > r->log.commit) {
            return AEGIS_EBUSY;
        }
        rv = check_conf_change(r, buf);
        if (rv != 0) {
            return rv;
        }
    }
    if (aegis__log_last_index(&r->log) - r->persisted_index >= AEGIS_RAFT_UNPERSISTED_MAX) {
        return AEGIS_EFULL;
    }
    rv = aegis__raft_append_local(r, type, buf, index_out);
    if (rv != 0) {
        return rv;
    }
    r->appends_pending = true;
    return 0;
}

static bool hs_equal(const struct aegis_hard_state *a, const struct aegis_hard_state *b)
{
    return a->term == b->term && a->vote == b->vote && a->commit == b->commit;
}

/* The last index that may be handed out to apply: committed and durable here (a node
 * applies only what it has persisted, so applied never runs ahead of its own log). */
static aegis_index applicable_index(const struct aegis_raft *r)
{
    return r->log.commit < r->persisted_index ? r->log.commit : r->persisted_index;
}

static bool snapshot_wanted(const struct aegis_raft *r)
{
    return !r->snap_asked && r->cfg.snapshot_threshold > 0 &&
           r->applied >= r->snap_meta.index + r->cfg.snapshot_threshold;
}

bool aegis__raft_has_ready(const struct aegis_raft *r)
{
    struct aegis_hard_state hs = aegis__raft_hard_state(r);
    const struct aegis_raft_box *b = &r->boxes[r->cur];

    return !hs_equal(&hs, &r->hs_handed) ||
           r->unstable_from <= aegis__log_last_index(&r->log) || b->msgs_count > 0 ||
           b->after_count > 0 || b->reads_count > 0 || r->handed_commit < applicable_index(r) ||
           r->snap_out || snapshot_wanted(r) || (r->fatal != 0 && !r->fatal_reported) ||
           (r->fetch.from != 0 && !r->fetch.handed);
}

static void ready_entries(struct aegis_raft *r, struct aegis_ready *rd)
{
    aegis_index last = aegis__log_last_index(&r->log);
    aegis_index upto = applicable_index(r);

    if (r->unstable_from <= last) {
        r->rd_entries_count = aegis__log_range(&r->log, r->unstable_from,
                                               AEGIS_RAFT_READY_ENTRIES_MAX, UINT64_MAX,
                                               r->rd_entries);
        AEGIS_ASSERT(r->rd_entries_count > 0);
        r->unstable_from += r->rd_entries_count;
    }
    if (r->handed_commit < upto) {
        aegis_index want = upto - r->handed_commit;
        uint32_t max = want < AEGIS_RAFT_READY_ENTRIES_MAX ? (uint32_t)want
                                                           : AEGIS_RAFT_READY_ENTRIES_MAX;

        r->rd_committed_count = aegis__log_range(&r->log, r->handed_commit + 1, max,
                                                 UINT64_MAX, r->rd_committed);
        AEGIS_ASSERT(r->rd_committed_count == max);
        r->handed_commit += r->rd_committed_count;
    }
    rd->entries = r->rd_entries;
    rd->entries_count = r->rd_entries_count;
    rd->committed = r->rd_committed;
    rd->committed_count = r->rd_committed_count;
}

void aegis__raft_ready(struct aegis_raft *r, struct aegis_ready *rd)
{
    struct aegis_raft_box *b = &r->boxes[r->cur];

    AEGIS_ASSERT(!r->ready_out);
    if (r->appends_pending) {
        r->appends_pending = false;
        if (r->role == AEGIS_ROLE_LEADER) {
            aegis__raft_broadcast_appends(r);
        }
    }
    memset(rd, 0, sizeof(*rd));
    rd->hs = aegis__raft_hard_state(r);
    rd->hs_changed = !hs_equal(&rd->hs, &r->hs_handed);
    r->hs_handed = rd->hs;
    ready_entries(r, rd);
    for (uint32_t i = 0; i < b->msgs_count; i++) {
        if (b->msgs[i].type == AEGIS_MSG_APPEND_REQ && b->msgs[i].append_req.entries_count > 0) {
            b->msgs[i].append_req.entries = &b->pool[b->msgs_pool_off[i]];
        }
    }
    rd->msgs = b->msgs;
    rd->msgs_count = b->msgs_count;
    rd->msgs_after_persist = b->after;
    rd->msgs_after_persist_count = b->after_count;
    rd->reads = b->reads;
    rd->reads_count = b->reads_count;
    if (r->snap_out) {
        r->rd_snap_meta = r->snap_meta;
        rd->snapshot_meta = &r->rd_snap_meta;
        r->snap_out = false;
    }
    if (snapshot_wanted(r)) {
        rd->snapshot_wanted = true;
        r->snap_asked = true;
    }
    if (r->fetch.from != 0 && !r->fetch.handed) {
        aegis_index span = r->log.ring_base >= r->fetch.from
                               ? r->log.ring_base - r->fetch.from + 1 : 1;

        /* Only the disk region: durable and committed, so the storage holds it whole. */
        rd->fetch.from = r->fetch.from;
        rd->fetch.count_max = span < AEGIS_RAFT_FETCH_ENTRIES_MAX ? (uint32_t)span
                                                                  : AEGIS_RAFT_FETCH_ENTRIES_MAX;
        rd->fetch.bytes_max = AEGIS_RAFT_FETCH_BYTES_MAX;
        r->fetch.handed = true;
    }
    /* Handed out to apply (with references of their own): may leave the cache now. */
    (void)aegis__log_evict(&r->log, r->handed_commit);
    rd->fatal = r->fatal;
    r->fatal_reported = r->fatal != 0;
    r->cur ^= 1u;
    AEGIS_ASSERT(r->boxes[r->cur].msgs_count == 0);
    r->ready_out = true;
}

void aegis__raft_advance(struct aegis_raft *r, struct aegis_ready *rd)
{
    AEGIS_ASSERT(r->ready_out);
    AEGIS_ASSERT(rd->entries == r->rd_entries);
    release_ready(r);
    memset(rd, 0, sizeof(*rd));
    r->ready_out = false;
}

void aegis__raft_persisted(struct aegis_raft *r, aegis_index index, aegis_term term)
{
    /* A report for entries since truncated (their term differs now) or never handed out
     * says nothing about the current log. */
    if (index < r->unstable_from && index > r->persisted_index &&
        aegis__log_term_at(&r->log, index) == term) {
        r->persisted_index = index;
        if (r->role == AEGIS_ROLE_LEADER) {
            aegis__raft_maybe_commit(r);
        }
    }
}

void aegis__raft_applied(struct aegis_raft *r, aegis_index index)
{
    if (index > r->applied) {
        r->applied = index;
    }
}

int aegis__raft_fatal(const struct aegis_raft *r)
{
    return r->fatal;
}

enum aegis_role aegis__raft_role(const struct aegis_raft *r)
{
    return r->role;
}

aegis_term aegis__raft_term(const struct aegis_raft *r)
{
    return r->term;
}

aegis_node_id aegis__raft_leader(const struct aegis_raft *r)
{
    return r->leader;
}

aegis_index aegis__raft_commit_index(const struct aegis_raft *r)
{
    return r->log.commit;
}

aegis_index aegis__raft_last_index(const struct aegis_raft *r)
{
    return aegis__log_last_index(&r->log);
}

aegis_term aegis__raft_term_at(const struct aegis_raft *r, aegis_index index)
{
    return aegis__log_term_at(&r->log, index);
}

const struct aegis_conf *aegis__raft_conf(const struct aegis_raft *r)
{
    return &r->conf;
}

struct aegis_hard_state aegis__raft_hard_state(const struct aegis_raft *r)
{
    return (struct aegis_hard_state){.term = r->term, .vote = r->vote, .commit = r->log.commit};
}

bool aegis__raft_progress(const struct aegis_raft *r, aegis_node_id id,
                          aegis_index *match_out, aegis_index *next_out)
{
    if (r->role != AEGIS_ROLE_LEADER) {
        return false;
    }
    if (id == r->id) {
        *match_out = r->persisted_index;
        *next_out = aegis__log_last_index(&r->log) + 1;
        return true;
    }
    for (uint32_t i = 0; i < AEGIS_MEMBERS_MAX; i++) {
        if (r->prs[i].id == id) {
            *match_out = r->prs[i].match;
            *next_out = r->prs[i].next;
            return true;
        }
    }
    return false;
}
