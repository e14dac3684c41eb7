/* SPDX-License-Identifier: MIT */
/* Membership change one server at a time (thesis §4.1, §4.2.1, §4.3).
 *
 * A change is a ConfigChange entry holding the whole new configuration (conf.h). A node
 * uses the latest configuration in its log as soon as the entry is appended, committed or
 * not; if the entry is truncated away, the node falls back to the latest one still in its
 * log, or to base_conf, the configuration as of the compaction point. The leader accepts
 * a new change only once the previous one has committed (AEGIS_EBUSY otherwise), so at
 * most one change is ever uncommitted and any two consecutive configurations share a
 * majority.
 *
 * New servers join as learners: they receive the log (the leader tracks their progress)
 * but never vote and never count toward commit or quorum; a later change promotes them. A
 * leader that removes itself keeps leading, without counting itself, until the removal
 * commits, and then steps down (thesis §4.2.2).
 *
 * Promotion (the one rule, for every driver). When the leader starts tracking a learner
 * it records the learner's catch-up index: its last log index at that moment, which for a
 * learner just added is the index of the AddLearner entry itself (so above the commit
 * index the leader had when the change was asked for), and at least 1. aegis__raft_promote
 * refuses (AEGIS_EAGAIN) until the learner's acknowledged match index reached it: a node
 * that never answers (a mistyped address) can never become a voter. The leader counts its
 * ticks while a learner is behind its catch-up index; past config.catchup_timeout_ticks,
 * aegis__raft_promote proposes the learner's removal instead and answers AEGIS_ECATCHUP
 * (the voter count never changed). A new leader starts the count afresh, with its own
 * last index as the catch-up index.
 *
 * Amnesia guard (config.fresh). A node whose storage was wiped and that restarts with its
 * old flags has forgotten its term, its vote and what it acknowledged: if it voted again
 * it could elect a node that lacks committed entries. With config.fresh the runtime says
 * "my storage was empty and I was not started to join"; while the log has never held an
 * entry, a message showing that the cluster already has a log (a (pre-)vote request whose
 * candidate has entries, an AppendEntries with prev_index above 0, a heartbeat carrying a
 * commit index, which the leader caps at what this node acknowledged, any snapshot) is
 * refused before it can change anything, and
 * the node turns fatal (AEGIS_EAMNESIA in every ready): it ignores every message and
 * never campaigns, and the runtime stops it. A normal first bootstrap passes: every node
 * starts empty, the first candidate has no entries, and the first leader's AppendEntries
 * to a node that never acknowledged anything start at prev_index 0 (a node started a
 * little later than the others receives the whole log that way, commit index included);
 * from the first entry it holds the guard is off. The cost: a node that missed the
 * initial bootstrap by a leader change or a compaction must be added with --join. */
#include <aegis/error.h>

#include "engine/assert.h"
#include "engine/raft_impl.h"

void aegis__raft_sync_progress(struct aegis_raft *r)
{
    aegis_index last = aegis__log_last_index(&r->log);

    AEGIS_ASSERT(r->role == AEGIS_ROLE_LEADER);
    for (uint32_t i = 0; i < AEGIS_MEMBERS_MAX; i++) {
        struct aegis_progress *pr = &r->prs[i];

        if (pr->id != AEGIS_NODE_NONE && aegis__conf_find(&r->conf, pr->id) == NULL) {
            aegis__progress_reset(pr, AEGIS_NODE_NONE, 0);
        }
    }
    for (uint32_t i = 0; i < r->conf.count; i++) {
        aegis_node_id id = r->conf.members[i].id;
        uint32_t slot = 0;

        if (id == r->id || aegis__raft_progress_of(r, id) != NULL) {
            continue;
        }
        while (r->prs[slot].id != AEGIS_NODE_NONE) {
            slot++;
            AEGIS_ASSERT(slot < AEGIS_MEMBERS_MAX);
        }
        aegis__progress_reset(&r->prs[slot], id, last);
        r->prs[slot].catchup_index = last > 0 ? last : 1;
    }
    if (r->transfer_target != AEGIS_NODE_NONE &&
        !aegis__conf_is_voter(&r->conf, r->transfer_target)) {
        r->transfer_target = AEGIS_NODE_NONE;
    }
}

void aegis__raft_conf_set(struct aegis_raft *r, const struct aegis_conf *c, aegis_index index)
{
    AEGIS_ASSERT(aegis__conf_valid(c));
    r->conf = *c;
    r->conf_index = index;
    if (r->role == AEGIS_ROLE_FOLLOWER || r->role == AEGIS_ROLE_LEARNER) {
        r->role = aegis__conf_find(c, r->id) != NULL && !aegis__conf_is_voter(c, r->id)
                      ? AEGIS_ROLE_LEARNER
                      : AEGIS_ROLE_FOLLOWER;
    } else if (r->role == AEGIS_ROLE_LEADER) {
        aegis__raft_sync_progress(r);
    }
    aegis__raft_trace(r, "conf", index, c->count);
}

void aegis__raft_conf_appended(struct aegis_raft *r, const struct aegis_entry *e)
{
    struct aegis_conf_change cc;

    AEGIS_ASSERT(e->type == AEGIS_ENTRY_CONFIG_CHANGE);
    if (aegis__conf_decode(aegis__entry_data(e), aegis__entry_len(e), &cc) != 0) {
        aegis__raft_trace(r, "conf_corrupt", e->index, e->term);
        return; /* The leader checked it; a corrupt copy changes nothing here. */
    }
    aegis__raft_conf_set(r, &cc.conf, e->index);
}

/* The latest ConfigChange at or below @index still in the log (decoded into @out), or 0
 * with base_conf. Bounded by the entries since the compaction point. */
static aegis_index latest_conf(const struct aegis_raft *r, aegis_index index,
                               struct aegis_conf *out)
{
    const struct aegis_entry *e;
    struct aegis_conf_change cc;

    while ((e = aegis__log_last_conf(&r->log, index)) != NULL) {
        if (aegis__conf_decode(aegis__entry_data(e), aegis__entry_len(e), &cc) == 0) {
            *out = cc.conf;
            return e->index;
        }
        index = e->index - 1;
    }
    *out = r->base_conf;
    return 0;
}

void aegis__raft_conf_truncated(struct aegis_raft *r)
{
    struct aegis_conf c;
    aegis_index index;

    if (r->conf_index <= aegis__log_last_index(&r->log)) {
        return;
    }
    index = latest_conf(r, aegis__log_last_index(&r->log), &c);
    aegis__raft_conf_set(r, &c, index);
}

int aegis__raft_conf_at(const struct aegis_raft *r, aegis_index index, struct aegis_conf *out)
{
    if (index > aegis__log_last_index(&r->log)) {
        return AEGIS_ERANGE;
    }
    if (index < r->log.offset) {
        return AEGIS_ECOMPACTED;
    }
    if (r->conf_index != 0 && index >= r->conf_index) {
        *out = r->conf;
        return 0;
    }
    (void)latest_conf(r, index, out);
    return 0;
}

void aegis__raft_conf_on_commit(struct aegis_raft *r)
{
    AEGIS_ASSERT(r->role == AEGIS_ROLE_LEADER);
    if (r->conf_index != 0 && r->conf_index <= r->log.commit &&
        aegis__conf_find(&r->conf, r->id) == NULL) {
        aegis__raft_trace(r, "removed_self", r->term, r->conf_index);
        aegis__raft_become_follower(r, r->term, AEGIS_NODE_NONE);
    }
}

static int change(struct aegis_raft *r, uint8_t op, aegis_node_id id, aegis_index *index_out)
{
    struct aegis_conf_change cc = {.op = op, .id = id};
    struct aegis_buf *buf;
    int rv;

    if (r->role != AEGIS_ROLE_LEADER) {
        return AEGIS_ENOTLEADER;
    }
    if (r->transfer_target != AEGIS_NODE_NONE || r->conf_index > r->log.commit) {
        return AEGIS_EBUSY;
    }
    rv = aegis__conf_change(&r->conf, op, id, &cc.conf);
    if (rv != 0) {
        return rv;
    }
    buf = aegis__conf_encode_buf(&cc, r->alloc);
    if (buf == NULL) {
        return AEGIS_ENOMEM;
    }
    rv = aegis__raft_propose(r, AEGIS_ENTRY_CONFIG_CHANGE, buf, index_out);
    aegis__buf_unref(buf); /* The log took its own reference. */
    return rv;
}

int aegis__raft_add_learner(struct aegis_raft *r, aegis_node_id id, aegis_index *index_out)
{
    return change(r, AEGIS_CONF_ADD_LEARNER, id, index_out);
}

/* Whether a learner (leader side) has acknowledged everything up to its catch-up index. */
static bool caught_up(const struct aegis_progress *pr)
{
    return pr->match >= pr->catchup_index && pr->match > 0;
}

int aegis__raft_promote(struct aegis_raft *r, aegis_node_id id, aegis_index *index_out)
{
    struct aegis_progress *pr;
    int rv;

    if (r->role != AEGIS_ROLE_LEADER) {
        return AEGIS_ENOTLEADER;
    }
    if (r->transfer_target != AEGIS_NODE_NONE || r->conf_index > r->log.commit) {
        return AEGIS_EBUSY;
    }
    pr = aegis__raft_progress_of(r, id);
    if (pr == NULL || aegis__conf_is_voter(&r->conf, id)) {
        return change(r, AEGIS_CONF_PROMOTE, id, index_out); /* Its own error. */
    }
    if (caught_up(pr)) {
        return change(r, AEGIS_CONF_PROMOTE, id, index_out);
    }
    if (r->cfg.catchup_timeout_ticks == 0 || pr->catchup_ticks < r->cfg.catchup_timeout_ticks) {
        return AEGIS_EAGAIN;
    }
    aegis__raft_trace(r, "catchup_timeout", id, pr->match);
    rv = change(r, AEGIS_CONF_REMOVE, id, index_out);
    return rv == 0 ? AEGIS_ECATCHUP : rv;
}

void aegis__raft_tick_learners(struct aegis_raft *r)
{
    AEGIS_ASSERT(r->role == AEGIS_ROLE_LEADER);
    for (uint32_t i = 0; i < AEGIS_MEMBERS_MAX; i++) {
        struct aegis_progress *pr = &r->prs[i];

        if (pr->id != AEGIS_NODE_NONE && !caught_up(pr) && pr->catchup_ticks < UINT32_MAX &&
            !aegis__conf_is_voter(&r->conf, pr->id)) {
            pr->catchup_ticks++;
        }
    }
}

/* Whether @m shows that the cluster already has a log (see the file comment). */
static bool shows_cluster(const struct aegis_msg *m)
{
    switch (m->type) {
    case AEGIS_MSG_VOTE_REQ:
        return m->vote_req.last_log_index > 0;
    case AEGIS_MSG_APPEND_REQ:
        /* Not the commit index: from index 1 the leader hands over its whole log, which
         * is how a node that started after the first commit catches up. */
        return m->append_req.prev_index > 0;
    case AEGIS_MSG_HEARTBEAT:
        /* min(commit, our match): above 0 only if we acknowledged entries before. */
        return m->heartbeat.commit > 0;
    case AEGIS_MSG_SNAPSHOT_REQ:
        return true;
    default:
        return false;
    }
}

bool aegis__raft_amnesia_guard(struct aegis_raft *r, const struct aegis_msg *m)
{
    if (r->fatal != 0) {
        return true;
    }
    if (!r->fresh) {
        return false;
    }
    if (aegis__log_last_index(&r->log) > 0 || r->snap_meta.index > 0) {
        r->fresh = false; /* It held an entry: no longer empty, for good. */
        return false;
    }
    if (!shows_cluster(m)) {
        return false;
    }
    r->fatal = AEGIS_EAMNESIA;
    aegis__raft_trace(r, "amnesia", m->from, m->type);
    if (r->role == AEGIS_ROLE_CANDIDATE || r->role == AEGIS_ROLE_PRECANDIDATE) {
        aegis__raft_become_follower(r, r->term, AEGIS_NODE_NONE);
    }
    return true;
}

int aegis__raft_remove(struct aegis_raft *r, aegis_node_id id, aegis_index *index_out)
{
    return change(r, AEGIS_CONF_REMOVE, id, index_out);
}
