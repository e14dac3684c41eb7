/* SPDX-License-Identifier: MIT */
/* The ReplicationEngine facade; see engine.h for the contract.
 *
 * Design. The engine owns three things: the Raft core (created lazily, at the first call
 * that drives it, so that peers added before then form the initial configuration), the
 * key-value state machine and the cluster view. drain() is the heart: it takes every
 * ready the core has, in order, and does synchronously what the threaded runtime does
 * with rings and threads:
 *
 *   rd.snapshot_meta   restore the state machine from the leader's snapshot;
 *   rd.msgs            clone into the outbox;
 *   rd.msgs_after_persist  clone into the outbox too: this ready is durable the moment
 *                      it is handed over (memory durability), so nothing needs to wait;
 *   rd.committed       take a reference and queue for apply_committed();
 *   advance, then report the ready's entries persisted, and loop.
 *
 * The outbox is allocated once (outbox_msgs_max slots). The apply queue is a ring that
 * doubles when full: its size is bounded by how far the caller lets applying fall behind
 * committing. Every allocation goes through the engine's allocator. */
#include "engine/engine.h"

#include <string.h>

#include <aegis/error.h>

#include "engine/assert.h"
#include "engine/snapshot_mem.h"

struct aegis_engine {
    const struct aegis_allocator *alloc;
    struct aegis_replication_config config;
    struct aegis_node_info self;
    struct aegis_cluster cluster;
    struct aegis_kv kv;
    struct aegis_rng rng;
    struct aegis_raft *raft;     /* NULL until started. */
    struct aegis_snapshot_mem snap; /* snap-install: the core's snapshot_io, in memory. */
    struct aegis_conf bootstrap; /* Self and the peers added before the start. */
    uint64_t ticks;

    struct aegis_msg *outbox;    /* outbox_msgs_max slots; first outbox_count used. */
    uint32_t outbox_count;
    uint64_t msgs_dropped;

    struct aegis_entry *applyq;  /* Ring of committed entries, each with a reference. */
    uint32_t applyq_head;
    uint32_t applyq_count;
    uint32_t applyq_cap;
    bool snapshot_wanted;
    uint64_t snapshots_taken;
    uint64_t snapshots_installed;

    /* Learners added after the start, to promote once caught up. */
    uint32_t promote_count;
    aegis_node_id promote[AEGIS_MEMBERS_MAX];

    /* Observations since the last tick or poll. */
    uint32_t committed_since;
    uint32_t elections_since;
    uint32_t leader_changes_since;
    uint32_t failed_count;
    aegis_node_id failed[AEGIS_CLUSTER_NODES_MAX];
    aegis_node_id last_leader;
    enum aegis_role last_role;
    aegis_term last_term;
};

void aegis__replication_config_default(struct aegis_replication_config *c)
{
    AEGIS_ASSERT(c != NULL);
    memset(c, 0, sizeof(*c));
    aegis__raft_config_default(&c->raft);
    aegis__cluster_config_default(&c->cluster, "aegis");
    c->tick_ms = 100;
    c->rng_seed = 1;
    c->kv_hash_seed = 0x5eed;
    c->outbox_msgs_max = 4096;
}

void aegis__tick_result_release(struct aegis_tick_result *tr, const struct aegis_allocator *a)
{
    AEGIS_ASSERT(tr != NULL);
    for (uint32_t i = 0; i < tr->msgs_count; i++) {
        aegis__msg_release(&tr->msgs[i], a);
    }
    aegis__free(a, tr->msgs);
    tr->msgs = NULL;
    tr->msgs_count = 0;
}

static uint64_t now_ms(const struct aegis_engine *e)
{
    return e->ticks * e->config.tick_ms;
}

static int conf_find(const struct aegis_conf *conf, aegis_node_id id)
{
    for (uint32_t i = 0; i < conf->count; i++) {
        if (conf->members[i].id == id) {
            return (int)i;
        }
    }
    return -1;
}

int aegis__engine_create(struct aegis_engine **out, const struct aegis_node_info *node,
                         const struct aegis_replication_config *config,
                         const struct aegis_allocator *a)
{
    struct aegis_engine *e;
    int rv;

    AEGIS_ASSERT(out != NULL && node != NULL && config != NULL);
    if (config->tick_ms == 0 || config->outbox_msgs_max == 0) {
        return AEGIS_ECONFIG;
    }
    e = aegis__calloc(a, 1, sizeof(*e));
    if (e == NULL) {
        rv = AEGIS_ENOMEM;
        goto err;
    }
    e->alloc = a;
    e->config = *config;
    e->config.raft.id = node->id;
    e->self = *node;
    rv = aegis__cluster_init(&e->cluster, node, &config->cluster, 0);
    if (rv != 0) {
        goto err_after_alloc;
    }
    e->outbox = aegis__calloc(a, config->outbox_msgs_max, sizeof(struct aegis_msg));
    if (e->outbox == NULL) {
        rv = AEGIS_ENOMEM;
        goto err_after_alloc;
    }
    rv = aegis__kv_init(&e->kv, a, config->kv_hash_seed);
    if (rv != 0) {
        goto err_after_outbox;
    }
    aegis__rng_seed(&e->rng, config->rng_seed);
    aegis__snapshot_mem_init(&e->snap, a); /* snap-install */
    aegis__snapshot_mem_io(&e->snap, &e->config.raft.snapshot_io);
    e->bootstrap.count = 1;
    e->bootstrap.members[0] = (struct aegis_member){.id = node->id, .role = AEGIS_MEMBER_VOTER};
    e->last_role = AEGIS_ROLE_FOLLOWER;
    *out = e;
    return 0;

err_after_outbox:
    aegis__free(a, e->outbox);
err_after_alloc:
    aegis__free(a, e);
err:
    AEGIS_ASSERT(rv != 0);
    return rv;
}

void aegis__engine_destroy(struct aegis_engine *e)
{
    if (e == NULL) {
        return;
    }
    for (uint32_t i = 0; i < e->outbox_count; i++) {
        aegis__msg_release(&e->outbox[i], e->alloc);
    }
    for (uint32_t i = 0; i < e->applyq_count; i++) {
        aegis__entry_unref(&e->applyq[(e->applyq_head + i) % e->applyq_cap]);
    }
    aegis__free(e->alloc, e->applyq);
    aegis__free(e->alloc, e->outbox);
    if (e->raft != NULL) {
        aegis__raft_destroy(e->raft);
    }
    aegis__snapshot_mem_close(&e->snap); /* snap-install */
    aegis__kv_close(&e->kv);
    aegis__cluster_close(&e->cluster);
    aegis__free(e->alloc, e);
}

/* Create the core on first use, with the peers known so far as its initial voters. */
static int ensure_started(struct aegis_engine *e)
{
    struct aegis_raft_restore restore;

    if (e->raft != NULL) {
        return 0;
    }
    memset(&restore, 0, sizeof(restore));
    if (!e->config.joining) {
        restore.bootstrap = e->bootstrap;
    }
    return aegis__raft_create(&e->raft, &e->config.raft, &restore, &e->rng, NULL, e->alloc);
}

static void outbox_push(struct aegis_engine *e, const struct aegis_msg *m)
{
    if (e->outbox_count == e->config.outbox_msgs_max ||
        aegis__msg_clone(&e->outbox[e->outbox_count], m, e->alloc) != 0) {
        /* Dropped: Raft treats it as lost on the network and retransmits. */
        e->msgs_dropped++;
        return;
    }
    e->outbox_count++;
}

/* Append a reference to @entry to the apply queue, doubling the ring when full. */
static int applyq_push(struct aegis_engine *e, const struct aegis_entry *entry)
{
    if (e->applyq_count == e->applyq_cap) {
        uint32_t cap = e->applyq_cap == 0 ? 64 : e->applyq_cap * 2;
        struct aegis_entry *q = aegis__calloc(e->alloc, cap, sizeof(*q));

        if (q == NULL) {
            return AEGIS_ENOMEM;
        }
        for (uint32_t i = 0; i < e->applyq_count; i++) {
            q[i] = e->applyq[(e->applyq_head + i) % e->applyq_cap];
        }
        aegis__free(e->alloc, e->applyq);
        e->applyq = q;
        e->applyq_cap = cap;
        e->applyq_head = 0;
    }
    e->applyq[(e->applyq_head + e->applyq_count) % e->applyq_cap] = *entry;
    aegis__entry_ref(&e->applyq[(e->applyq_head + e->applyq_count) % e->applyq_cap]);
    e->applyq_count++;
    return 0;
}

static void applyq_pop(struct aegis_engine *e)
{
    AEGIS_ASSERT(e->applyq_count > 0);
    aegis__entry_unref(&e->applyq[e->applyq_head]);
    e->applyq_head = (e->applyq_head + 1) % e->applyq_cap;
    e->applyq_count--;
}

/* A snapshot from the leader replaces the state machine; queued entries it covers go. */
static void install_snapshot(struct aegis_engine *e, const struct aegis_snapshot_meta *meta,
                             const struct aegis_buf *data)
{
    int rv;

    while (e->applyq_count > 0 && e->applyq[e->applyq_head].index <= meta->index) {
        applyq_pop(e);
    }
    rv = aegis__kv_restore(&e->kv, data != NULL ? data->data : NULL,
                           data != NULL ? data->len : 0);
    /* The core only hands over a snapshot that a leader built from a state machine; a
     * corrupt one means memory corruption, and running on would diverge. */
    AEGIS_ASSERT(rv == 0);
    e->snapshots_installed++;
}

static enum aegis_node_role node_role(enum aegis_role r)
{
    switch (r) {
    case AEGIS_ROLE_LEADER:
        return AEGIS_NODE_LEADER;
    case AEGIS_ROLE_CANDIDATE:
    case AEGIS_ROLE_PRECANDIDATE:
        return AEGIS_NODE_CANDIDATE;
    case AEGIS_ROLE_LEARNER:
        return AEGIS_NODE_LEARNER;
    case AEGIS_ROLE_FOLLOWER:
        break;
    }
    return AEGIS_NODE_FOLLOWER;
}

/* Compare the core's role, term and leader with what was seen last and count the
 * elections and leader changes; keep the cluster view's leader and roles in step. */
static void observe(struct aegis_engine *e)
{
    enum aegis_role role = aegis__raft_role(e->raft);
    aegis_term term = aegis__raft_term(e->raft);
    aegis_node_id leader = aegis__raft_leader(e->raft);

    /* A pre-vote round that turns into a real vote is one election, not two. */
    if ((role == AEGIS_ROLE_PRECANDIDATE &&
         (e->last_role != AEGIS_ROLE_PRECANDIDATE || term != e->last_term)) ||
        (role == AEGIS_ROLE_CANDIDATE && e->last_role != AEGIS_ROLE_PRECANDIDATE &&
         (e->last_role != AEGIS_ROLE_CANDIDATE || term != e->last_term))) {
        e->elections_since++;
    }
    if (leader != e->last_leader) {
        e->leader_changes_since++;
    }
    /* The view may learn of the leader's membership later than Raft learns of its
     * leadership (a joining node), so reconcile rather than only follow changes. */
    if (aegis__cluster_leader(&e->cluster) != leader) {
        (void)aegis__cluster_set_leader(&e->cluster,
                                        aegis__cluster_contains(&e->cluster, leader)
                                            ? leader
                                            : AEGIS_NODE_NONE);
    }
    (void)aegis__cluster_set_role(&e->cluster, e->self.id, node_role(role));
    e->last_role = role;
    e->last_term = term;
    e->last_leader = leader;
}

/* Take over one ready: see the top of this file. */
static void take_ready(struct aegis_engine *e, struct aegis_ready *rd)
{
    if (rd->snapshot_meta != NULL) {
        install_snapshot(e, rd->snapshot_meta,
                         aegis__snapshot_mem_installed(&e->snap, rd->snapshot_meta));
    }
    for (uint32_t i = 0; i < rd->msgs_count; i++) {
        outbox_push(e, &rd->msgs[i]);
    }
    for (uint32_t i = 0; i < rd->msgs_after_persist_count; i++) {
        outbox_push(e, &rd->msgs_after_persist[i]);
    }
    for (uint32_t i = 0; i < rd->committed_count; i++) {
        /* Out of memory here cannot be handed back to the core (it has moved its commit
         * on); an engine that cannot queue a committed entry cannot stay correct. */
        int rv = applyq_push(e, &rd->committed[i]);

        AEGIS_ASSERT(rv == 0);
    }
    e->committed_since += rd->committed_count;
    if (rd->snapshot_wanted) {
        e->snapshot_wanted = true;
    }
}

static void drain(struct aegis_engine *e)
{
    struct aegis_ready rd;

    while (aegis__raft_has_ready(e->raft)) {
        struct aegis_entry last = {0};

        aegis__raft_ready(e->raft, &rd);
        take_ready(e, &rd);
        if (rd.entries_count > 0) {
            last = rd.entries[rd.entries_count - 1];
        }
        aegis__raft_advance(e->raft, &rd);
        /* Memory durability: written as soon as handed over. */
        if (last.index != 0) {
            aegis__raft_persisted(e->raft, last.index, last.term);
        }
    }
    observe(e);
}

int aegis__engine_add_peer(struct aegis_engine *e, const struct aegis_node_info *peer)
{
    aegis_index index;
    int rv;

    AEGIS_ASSERT(e != NULL && peer != NULL);
    if (peer->id == AEGIS_NODE_NONE || peer->id == e->self.id) {
        return AEGIS_EINVAL;
    }
    if (aegis__cluster_contains(&e->cluster, peer->id)) {
        return AEGIS_EEXIST;
    }
    if (e->raft == NULL) {
        if (e->bootstrap.count == AEGIS_MEMBERS_MAX) {
            return AEGIS_EFULL;
        }
        rv = aegis__cluster_add_node(&e->cluster, peer, now_ms(e));
        if (rv != 0) {
            return rv;
        }
        e->bootstrap.members[e->bootstrap.count++] =
            (struct aegis_member){.id = peer->id, .role = AEGIS_MEMBER_VOTER};
        return 0;
    }
    if (e->promote_count == AEGIS_MEMBERS_MAX) {
        return AEGIS_EBUSY;
    }
    rv = aegis__raft_add_learner(e->raft, peer->id, &index);
    if (rv != 0) {
        return rv;
    }
    /* The cluster view may refuse (nodes_max) while Raft accepted; Raft is the authority
     * on membership, the view only tracks addresses and health. */
    (void)aegis__cluster_add_node(&e->cluster, peer, now_ms(e));
    (void)aegis__cluster_set_role(&e->cluster, peer->id, AEGIS_NODE_LEARNER);
    e->promote[e->promote_count++] = peer->id;
    drain(e);
    return 0;
}

int aegis__engine_remove_peer(struct aegis_engine *e, aegis_node_id id)
{
    aegis_index index;
    int i;
    int rv;

    AEGIS_ASSERT(e != NULL);
    if (id == e->self.id) {
        return AEGIS_EINVAL;
    }
    if (e->raft == NULL) {
        i = conf_find(&e->bootstrap, id);
        if (i < 0) {
            return AEGIS_EUNKNOWNNODE;
        }
        e->bootstrap.members[i] = e->bootstrap.members[--e->bootstrap.count];
        return aegis__cluster_remove_node(&e->cluster, id);
    }
    rv = aegis__raft_remove(e->raft, id, &index);
    if (rv != 0) {
        return rv;
    }
    (void)aegis__cluster_remove_node(&e->cluster, id);
    for (uint32_t k = 0; k < e->promote_count; k++) {
        if (e->promote[k] == id) {
            e->promote[k] = e->promote[--e->promote_count];
            break;
        }
    }
    drain(e);
    return 0;
}

int aegis__engine_start_election(struct aegis_engine *e, struct aegis_msg *request_out)
{
    uint32_t first = e->outbox_count;
    int rv;

    AEGIS_ASSERT(e != NULL);
    rv = ensure_started(e);
    if (rv != 0) {
        return rv;
    }
    aegis__raft_campaign(e->raft);
    drain(e);
    if (request_out == NULL) {
        return 0;
    }
    memset(request_out, 0, sizeof(*request_out));
    for (uint32_t i = first; i < e->outbox_count; i++) {
        if (e->outbox[i].type == AEGIS_MSG_VOTE_REQ) {
            *request_out = e->outbox[i]; /* A vote request holds no payload references. */
            break;
        }
    }
    return 0;
}

int aegis__engine_process_message(struct aegis_engine *e, const struct aegis_msg *m)
{
    int rv;

    AEGIS_ASSERT(e != NULL && m != NULL);
    rv = ensure_started(e);
    if (rv != 0) {
        return rv;
    }
    /* Peer input: refused before anything (the cluster view included) takes note of it;
     * the core's step checks it again along with its own state (engine/msg.h). */
    rv = aegis__msg_validate(m);
    if (rv != 0) {
        return rv;
    }
    if (m->from != e->self.id && aegis__cluster_contains(&e->cluster, m->from)) {
        (void)aegis__cluster_heartbeat(&e->cluster, m->from, now_ms(e));
    }
    rv = aegis__raft_step(e->raft, m);
    drain(e);
    return rv;
}

bool aegis__engine_handle_vote_response(struct aegis_engine *e, const struct aegis_msg *resp)
{
    bool was_leader;

    AEGIS_ASSERT(e != NULL && resp != NULL);
    AEGIS_ASSERT(resp->type == AEGIS_MSG_VOTE_RESP);
    was_leader = aegis__engine_is_leader(e);
    (void)aegis__engine_process_message(e, resp);
    return !was_leader && aegis__engine_is_leader(e);
}

/* Promote learners added after the start, one change at a time. The rule (caught up with
 * the leader's log as of the add, or removed after config.raft.catchup_timeout_ticks) is
 * the core's: aegis__raft_promote() applies it. */
static void promote_caught_up(struct aegis_engine *e)
{
    aegis_index index;

    if (e->promote_count == 0 || aegis__raft_role(e->raft) != AEGIS_ROLE_LEADER) {
        return;
    }
    for (uint32_t k = 0; k < e->promote_count; k++) {
        aegis_node_id id = e->promote[k];
        int rv = aegis__raft_promote(e->raft, id, &index);

        if (rv == AEGIS_EBUSY) {
            return; /* The previous change has not committed yet; try next tick. */
        }
        if (rv == AEGIS_EAGAIN) {
            continue; /* Not caught up yet. */
        }
        /* Promoted, removed for never catching up, or no longer promotable (e.g. removed
         * meanwhile): stop tracking. */
        if (rv == 0) {
            (void)aegis__cluster_set_role(&e->cluster, id, AEGIS_NODE_FOLLOWER);
        } else if (rv == AEGIS_ECATCHUP) {
            (void)aegis__cluster_remove_node(&e->cluster, id);
        }
        e->promote[k] = e->promote[--e->promote_count];
        drain(e);
        return;
    }
}

void aegis__engine_poll(struct aegis_engine *e, struct aegis_tick_result *tr)
{
    AEGIS_ASSERT(e != NULL && tr != NULL);
    memset(tr, 0, sizeof(*tr));
    if (e->raft == NULL) {
        return;
    }
    drain(e);
    if (e->outbox_count > 0) {
        tr->msgs = aegis__calloc(e->alloc, e->outbox_count, sizeof(struct aegis_msg));
        /* Without memory the messages stay in the outbox for the next poll. */
        if (tr->msgs != NULL) {
            memcpy(tr->msgs, e->outbox, e->outbox_count * sizeof(struct aegis_msg));
            tr->msgs_count = e->outbox_count;
            memset(e->outbox, 0, e->outbox_count * sizeof(struct aegis_msg));
            e->outbox_count = 0;
        }
    }
    tr->committed_count = e->committed_since;
    tr->elections_started = e->elections_since;
    tr->leader_changes = e->leader_changes_since;
    tr->leader = aegis__raft_leader(e->raft);
    tr->term = aegis__raft_term(e->raft);
    tr->commit_index = aegis__raft_commit_index(e->raft);
    tr->failed_count = e->failed_count;
    memcpy(tr->failed, e->failed, sizeof(tr->failed));
    e->committed_since = 0;
    e->elections_since = 0;
    e->leader_changes_since = 0;
    e->failed_count = 0;
}

void aegis__engine_tick(struct aegis_engine *e, struct aegis_tick_result *tr)
{
    aegis_node_id failed[AEGIS_CLUSTER_NODES_MAX];
    uint32_t n;

    AEGIS_ASSERT(e != NULL && tr != NULL);
    if (ensure_started(e) != 0) {
        memset(tr, 0, sizeof(*tr));
        return;
    }
    e->ticks++;
    aegis__raft_tick(e->raft);
    n = aegis__cluster_check_failures(&e->cluster, now_ms(e), failed, AEGIS_CLUSTER_NODES_MAX);
    for (uint32_t i = 0; i < n && e->failed_count < AEGIS_CLUSTER_NODES_MAX; i++) {
        e->failed[e->failed_count++] = failed[i];
    }
    drain(e);
    promote_caught_up(e);
    aegis__engine_poll(e, tr);
}

int aegis__engine_propose(struct aegis_engine *e, struct aegis_buf *command,
                          aegis_index *index_out)
{
    aegis_index index = 0;
    int rv;

    AEGIS_ASSERT(e != NULL && command != NULL);
    rv = ensure_started(e);
    if (rv != 0) {
        return rv;
    }
    rv = aegis__raft_propose(e->raft, AEGIS_ENTRY_COMMAND, command, &index);
    if (rv != 0) {
        return rv;
    }
    drain(e);
    if (index_out != NULL) {
        *index_out = index;
    }
    return 0;
}

/* Propose an encoded command and drop the encoder's reference (the core took its own). */
static int propose_encoded(struct aegis_engine *e, int encode_rv, struct aegis_buf *buf,
                           aegis_index *index_out)
{
    int rv;

    if (encode_rv != 0) {
        return encode_rv;
    }
    rv = aegis__engine_propose(e, buf, index_out);
    aegis__buf_unref(buf);
    return rv;
}

int aegis__engine_set(struct aegis_engine *e, const void *key, size_t key_len,
                      const void *value, size_t value_len, aegis_index *index_out)
{
    struct aegis_buf *buf = NULL;
    int rv = aegis__kv_encode_set(e->alloc, key, key_len, value, value_len, &buf);

    return propose_encoded(e, rv, buf, index_out);
}

int aegis__engine_delete(struct aegis_engine *e, const void *key, size_t key_len,
                         aegis_index *index_out)
{
    struct aegis_kv_bytes k = {.data = key, .len = key_len};
    struct aegis_buf *buf = NULL;
    int rv = aegis__kv_encode_delete(e->alloc, &k, 1, &buf);

    return propose_encoded(e, rv, buf, index_out);
}

int aegis__engine_compare_and_swap(struct aegis_engine *e, const void *key, size_t key_len,
                                   const struct aegis_kv_bytes *expected, const void *value,
                                   size_t value_len, aegis_index *index_out)
{
    struct aegis_buf *buf = NULL;
    int rv = aegis__kv_encode_cas(e->alloc, key, key_len, expected, value, value_len, &buf);

    return propose_encoded(e, rv, buf, index_out);
}

int aegis__engine_increment(struct aegis_engine *e, const void *key, size_t key_len,
                            int64_t delta, aegis_index *index_out)
{
    struct aegis_buf *buf = NULL;
    int rv = aegis__kv_encode_increment(e->alloc, key, key_len, delta, &buf);

    return propose_encoded(e, rv, buf, index_out);
}

int aegis__engine_get(const struct aegis_engine *e, const void *key, size_t key_len,
                      struct aegis_buf **value_out, aegis_index *version_out)
{
    AEGIS_ASSERT(e != NULL);
    return aegis__kv_get(&e->kv, key, key_len, value_out, version_out);
}

/* After a ConfigChange applies, bring the cluster view's membership in line with the
 * core's configuration: members the view does not know are added without an address
 * (the runtime fills it in with an update), and peers Raft dropped are removed. */
static void sync_cluster_with_conf(struct aegis_engine *e)
{
    const struct aegis_conf *conf = aegis__raft_conf(e->raft);
    struct aegis_node_info info;

    for (uint32_t i = 0; i < conf->count; i++) {
        if (!aegis__cluster_contains(&e->cluster, conf->members[i].id) &&
            aegis__node_info_init(&info, conf->members[i].id, "", 0) == 0) {
            if (conf->members[i].role == AEGIS_MEMBER_LEARNER) {
                info.role = AEGIS_NODE_LEARNER;
            }
            (void)aegis__cluster_add_node(&e->cluster, &info, now_ms(e));
        }
    }
    for (uint32_t i = 0; i < e->cluster.count;) {
        aegis_node_id id = e->cluster.members[i].info.id;

        if (id != e->self.id && conf_find(conf, id) < 0) {
            (void)aegis__cluster_remove_node(&e->cluster, id); /* Refills slot i. */
            continue;
        }
        i++;
    }
}

/* The core asked for a snapshot: take one at the applied index and hand it over. */
static void take_snapshot(struct aegis_engine *e)
{
    struct aegis_snapshot_meta meta;
    struct aegis_buf *data;

    if (aegis__kv_snapshot(&e->kv, &data) != 0) {
        return; /* Asked again at the next threshold; the log just stays longer. */
    }
    memset(&meta, 0, sizeof(meta));
    meta.index = aegis__kv_applied_index(&e->kv);
    meta.term = aegis__kv_applied_term(&e->kv);
    meta.conf = *aegis__raft_conf(e->raft); /* The core puts in the one at meta.index. */
    if (aegis__raft_snapshot_taken(e->raft, &meta, data != NULL ? data->len : 0) == 0) {
        aegis__snapshot_mem_set(&e->snap, &meta, data); /* snap-install: the source's. */
        e->snapshots_taken++;
    }
    aegis__buf_unref(data);
    e->snapshot_wanted = false;
}

int aegis__engine_apply_committed(struct aegis_engine *e, struct aegis_engine_applied *out,
                                  uint32_t cap, uint32_t *count_out)
{
    uint32_t n = 0;
    bool conf_changed = false;
    int rv = 0;

    AEGIS_ASSERT(e != NULL);
    while (e->applyq_count > 0 && (out == NULL || n < cap)) {
        const struct aegis_entry *entry = &e->applyq[e->applyq_head];
        struct aegis_kv_result res;

        if (entry->index <= aegis__kv_applied_index(&e->kv)) {
            applyq_pop(e); /* Covered by an installed snapshot. */
            continue;
        }
        rv = aegis__kv_apply_entry(&e->kv, entry, &res);
        if (rv != 0) {
            aegis__kv_result_release(&res);
            break; /* AEGIS_ENOMEM: nothing changed; the entry stays queued. */
        }
        conf_changed |= entry->type == AEGIS_ENTRY_CONFIG_CHANGE;
        if (out != NULL) {
            out[n] = (struct aegis_engine_applied){
                .index = entry->index, .term = entry->term, .type = entry->type, .result = res};
        } else {
            aegis__kv_result_release(&res);
        }
        n++;
        applyq_pop(e);
    }
    if (n > 0 && e->raft != NULL) {
        aegis__raft_applied(e->raft, aegis__kv_applied_index(&e->kv));
        if (conf_changed) {
            sync_cluster_with_conf(e);
        }
        drain(e);
        if (e->snapshot_wanted) {
            take_snapshot(e);
            drain(e);
        }
    }
    if (count_out != NULL) {
        *count_out = n;
    }
    return rv;
}

void aegis__engine_applied_release(struct aegis_engine_applied *out, uint32_t count)
{
    for (uint32_t i = 0; i < count; i++) {
        aegis__kv_result_release(&out[i].result);
    }
}

bool aegis__engine_is_leader(const struct aegis_engine *e)
{
    return e->raft != NULL && aegis__raft_role(e->raft) == AEGIS_ROLE_LEADER;
}

aegis_node_id aegis__engine_id(const struct aegis_engine *e)
{
    return e->self.id;
}

aegis_node_id aegis__engine_leader(const struct aegis_engine *e)
{
    return e->raft != NULL ? aegis__raft_leader(e->raft) : AEGIS_NODE_NONE;
}

aegis_term aegis__engine_term(const struct aegis_engine *e)
{
    return e->raft != NULL ? aegis__raft_term(e->raft) : 0;
}

enum aegis_node_role aegis__engine_role(const struct aegis_engine *e)
{
    return e->raft != NULL ? node_role(aegis__raft_role(e->raft)) : AEGIS_NODE_FOLLOWER;
}

aegis_index aegis__engine_commit_index(const struct aegis_engine *e)
{
    return e->raft != NULL ? aegis__raft_commit_index(e->raft) : 0;
}

aegis_index aegis__engine_applied_index(const struct aegis_engine *e)
{
    return aegis__kv_applied_index(&e->kv);
}

uint32_t aegis__engine_pending_apply(const struct aegis_engine *e)
{
    return e->applyq_count;
}

uint64_t aegis__engine_msgs_dropped(const struct aegis_engine *e)
{
    return e->msgs_dropped;
}

uint64_t aegis__engine_snapshots_taken(const struct aegis_engine *e)
{
    return e->snapshots_taken;
}

uint64_t aegis__engine_snapshots_installed(const struct aegis_engine *e)
{
    return e->snapshots_installed;
}

const struct aegis_cluster *aegis__engine_cluster(const struct aegis_engine *e)
{
    return &e->cluster;
}

const struct aegis_kv *aegis__engine_kv(const struct aegis_engine *e)
{
    return &e->kv;
}

const struct aegis_allocator *aegis__engine_allocator(const struct aegis_engine *e)
{
    return e->alloc;
}

struct aegis_raft *aegis__engine_raft(struct aegis_engine *e)
{
    return e->raft;
}
