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
 * commits, and then steps down (thesis §4.2.2). */
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
    struct aegis_conf_change cc;

    for (aegis_index i = index; i > r->log.offset; i--) {
        const struct aegis_entry *e = aegis__log_get(&r->log, i);

        if (e->type == AEGIS_ENTRY_CONFIG_CHANGE &&
            aegis__conf_decode(aegis__entry_data(e), aegis__entry_len(e), &cc) == 0) {
            *out = cc.conf;
            return i;
        }
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

int aegis__raft_promote(struct aegis_raft *r, aegis_node_id id, aegis_index *index_out)
{
    return change(r, AEGIS_CONF_PROMOTE, id, index_out);
}

int aegis__raft_remove(struct aegis_raft *r, aegis_node_id id, aegis_index *index_out)
{
    return change(r, AEGIS_CONF_REMOVE, id, index_out);
}
