/* SPDX-License-Identifier: MIT */
/* ReadIndex: linearizable reads without writing to the log (thesis §6.4).
 *
 * The leader records its commit index as the read's index, then confirms that it is still
 * the leader by a round of heartbeats: each round has a number (read_round, carried in the
 * heartbeat's read_ctx and echoed back), and a read of round k is confirmed once a quorum
 * of voters, the leader included, has echoed a round >= k. Reads are kept in a FIFO ring
 * (AEGIS_RAFT_READS_MAX, beyond which read_index answers AEGIS_EFULL) and rounds only grow,
 * so confirmed reads leave from the head in order.
 *
 * A leader that has not yet committed an entry of its own term does not know the latest
 * commit index (its NoOp settles that): its reads wait, with round 0, until the NoOp
 * commits. A follower forwards the read to the leader (READ_INDEX_REQ) and, when the
 * leader's answer comes back, outputs the read state itself. The runtime serves a read
 * state once it has applied up to its index. A read whose leader steps down is dropped
 * silently: the runtime times it out and retries. */
#include <aegis/error.h>

#include "engine/assert.h"
#include "engine/raft_impl.h"

static bool committed_in_term(const struct aegis_raft *r)
{
    return aegis__log_term_at(&r->log, r->log.commit) == r->term;
}

static void answer(struct aegis_raft *r, uint64_t ctx, aegis_node_id from, aegis_index index)
{
    struct aegis_msg *m;

    if (from == r->id) {
        aegis__raft_push_read(r, ctx, index);
        return;
    }
    m = aegis__raft_push(r, AEGIS_MSG_READ_INDEX_RESP, from, false);
    if (m != NULL) {
        m->read_index_resp.ctx = ctx;
        m->read_index_resp.index = index;
        m->read_index_resp.ok = true;
    }
}

static bool confirmed(const struct aegis_raft *r, uint64_t round)
{
    uint32_t acks = aegis__raft_promotable(r) ? 1 : 0;

    for (uint32_t i = 0; i < AEGIS_MEMBERS_MAX; i++) {
        const struct aegis_progress *pr = &r->prs[i];

        if (pr->id != AEGIS_NODE_NONE && pr->read_acked >= round &&
            aegis__conf_is_voter(&r->conf, pr->id)) {
            acks++;
        }
    }
    return acks >= aegis__conf_quorum(&r->conf);
}

static void release(struct aegis_raft *r)
{
    while (r->reads_count > 0) {
        struct aegis_read_pending *p = &r->reads[r->reads_start];

        if (p->round == 0 || !confirmed(r, p->round)) {
            return;
        }
        answer(r, p->ctx, p->from, p->index);
        r->reads_start = (r->reads_start + 1) % AEGIS_RAFT_READS_MAX;
        r->reads_count--;
    }
}

/* Give every waiting read the current commit index and a new heartbeat round. */
static void start_round(struct aegis_raft *r)
{
    bool any = false;

    AEGIS_ASSERT(committed_in_term(r));
    for (uint32_t i = 0; i < r->reads_count; i++) {
        struct aegis_read_pending *p = &r->reads[(r->reads_start + i) % AEGIS_RAFT_READS_MAX];

        if (p->round == 0) {
            p->index = r->log.commit;
            p->round = r->read_round + 1;
            any = true;
        }
    }
    if (!any) {
        return;
    }
    r->read_round++;
    release(r);
    if (r->reads_count > 0) {
        aegis__raft_broadcast_heartbeat(r, r->read_round);
    }
}

static int leader_read(struct aegis_raft *r, uint64_t ctx, aegis_node_id from)
{
    AEGIS_ASSERT(r->role == AEGIS_ROLE_LEADER);
    if (aegis__raft_bug(r, AEGIS_RAFT_BUG_READ_WITHOUT_INDEX)) {
        answer(r, ctx, from, r->log.commit); /* No confirmation round: stale leaders lie. */
        return 0;
    }
    if (r->reads_count == AEGIS_RAFT_READS_MAX) {
        return AEGIS_EFULL;
    }
    r->reads[(r->reads_start + r->reads_count) % AEGIS_RAFT_READS_MAX] =
        (struct aegis_read_pending){.ctx = ctx, .from = from};
    r->reads_count++;
    if (committed_in_term(r)) {
        start_round(r);
    }
    return 0;
}

int aegis__raft_read_index(struct aegis_raft *r, uint64_t ctx)
{
    struct aegis_msg *m;

    if (ctx == 0) {
        return AEGIS_EINVAL;
    }
    if (r->role == AEGIS_ROLE_LEADER) {
        return leader_read(r, ctx, r->id);
    }
    if (r->leader == AEGIS_NODE_NONE) {
        return AEGIS_ENOTLEADER;
    }
    m = aegis__raft_push(r, AEGIS_MSG_READ_INDEX_REQ, r->leader, false);
    if (m == NULL) {
        return AEGIS_EFULL;
    }
    m->read_index_req.ctx = ctx;
    return 0;
}

void aegis__raft_reads_on_commit(struct aegis_raft *r)
{
    if (r->reads_count > 0 && committed_in_term(r)) {
        start_round(r);
    }
}

void aegis__raft_reads_on_ack(struct aegis_raft *r, struct aegis_progress *pr, uint64_t round)
{
    if (round == 0 || round > r->read_round) {
        return;
    }
    if (round > pr->read_acked) {
        pr->read_acked = round;
    }
    release(r);
}

void aegis__raft_reads_drop(struct aegis_raft *r)
{
    r->reads_start = 0;
    r->reads_count = 0;
}

void aegis__raft_handle_read_index_req(struct aegis_raft *r, const struct aegis_msg *m)
{
    struct aegis_msg *resp;

    if (r->role == AEGIS_ROLE_LEADER && m->read_index_req.ctx != 0 &&
        leader_read(r, m->read_index_req.ctx, m->from) == 0) {
        return;
    }
    resp = aegis__raft_push(r, AEGIS_MSG_READ_INDEX_RESP, m->from, false);
    if (resp != NULL) {
        resp->read_index_resp.ctx = m->read_index_req.ctx;
        resp->read_index_resp.ok = false;
    }
}

void aegis__raft_handle_read_index_resp(struct aegis_raft *r, const struct aegis_msg *m)
{
    if (m->read_index_resp.ok && m->read_index_resp.ctx != 0) {
        aegis__raft_push_read(r, m->read_index_resp.ctx, m->read_index_resp.index);
    }
}
