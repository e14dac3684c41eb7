/* SPDX-License-Identifier: MIT */
/* Roles, elections and timers (§5.2, thesis §3.4, §4.2.3, §9.6, §3.10).
 *
 * Elections. A voter whose randomised election timeout expires first runs a pre-vote
 * (thesis §9.6) when enabled: as a pre-candidate it asks the voters whether they would
 * vote for it at term + 1, without changing any term, and campaigns for real only once a
 * quorum says yes. A real campaign increments the term and votes for itself; its vote
 * requests go out in msgs_after_persist, so the new term and the self-vote are durable
 * before anyone hears of the candidacy, and the self-vote may count at once.
 *
 * Leader stickiness: a node that has heard from a leader within the minimum election
 * timeout ignores (pre-)vote requests of higher terms (raft.c step_term), unless they
 * carry leadership_transfer, so a partitioned node rejoining cannot depose a healthy
 * leader. Check-quorum: a leader that has not heard from a quorum within an election
 * timeout steps down, which keeps stickiness from pinning followers to a dead leader.
 *
 * The transfer flag is a claim by the candidate, so it is not believed on its own word:
 * when the leader hands over it sends TimeoutNow to the target and a TimeoutNow naming
 * the target to every other voter (a notice). A node honours the flag only on a real
 * vote for exactly the next term from the target its leader named in this term (or, on
 * the leader, from its own transfer target); any other flagged vote is an ordinary one.
 *
 * The term ceiling: no term at or above AEGIS_TERM_MAX is ever taken (msg.h); a node
 * whose term is AEGIS_TERM_MAX - 1 does not campaign (no history reaches it).
 *
 * Withheld votes (aegis__raft_withhold_votes): after the runtime lost the newer copy of
 * its hard state, the core neither grants a vote nor campaigns until it accepts a leader
 * of its current term or a newer one (become_follower with a leader), so a vote it may
 * have given and forgotten is never given again in that term. */
#include <aegis/error.h>

#include "engine/assert.h"
#include "engine/raft_impl.h"

void aegis__raft_reset_timeout(struct aegis_raft *r)
{
    r->election_elapsed = 0;
    r->election_timeout = (uint32_t)aegis__rng_range(r->rng, r->cfg.election_timeout_min_ticks,
                                                     r->cfg.election_timeout_max_ticks);
}

static void clear_leader_state(struct aegis_raft *r)
{
    for (uint32_t i = 0; i < AEGIS_MEMBERS_MAX; i++) {
        aegis__progress_reset(&r->prs[i], AEGIS_NODE_NONE, 0);
    }
    r->transfer_target = AEGIS_NODE_NONE;
    r->transfer_elapsed = 0;
    aegis__raft_reads_drop(r);
}

void aegis__raft_become_follower(struct aegis_raft *r, aegis_term term, aegis_node_id leader)
{
    bool was_leader = r->role == AEGIS_ROLE_LEADER;

    AEGIS_ASSERT(term >= r->term);
    if (term > r->term) {
        r->term = term;
        r->vote = AEGIS_NODE_NONE;
    }
    r->role = aegis__conf_find(&r->conf, r->id) != NULL && !aegis__raft_promotable(r)
                  ? AEGIS_ROLE_LEARNER
                  : AEGIS_ROLE_FOLLOWER;
    r->leader = leader;
    if (leader != AEGIS_NODE_NONE && r->votes_withheld) {
        /* A leader of this term or a newer one is accepted: whatever vote was forgotten
         * belongs to a finished election. */
        r->votes_withheld = false;
        aegis__raft_trace(r, "votes_restored", r->term, leader);
    }
    r->votes_count = 0;
    r->heartbeat_elapsed = 0;
    aegis__raft_reset_timeout(r);
    if (was_leader) {
        clear_leader_state(r);
        aegis__raft_trace(r, "step_down", r->term, leader);
    }
    AEGIS_ASSERT(r->role != AEGIS_ROLE_LEADER);
}

static void become_leader(struct aegis_raft *r)
{
    int rv;

    AEGIS_ASSERT(r->role == AEGIS_ROLE_CANDIDATE);
    AEGIS_ASSERT(r->vote == r->id);
    r->role = AEGIS_ROLE_LEADER;
    r->leader = r->id;
    r->heartbeat_elapsed = 0;
    r->election_elapsed = 0;
    r->read_round = 0;
    clear_leader_state(r);
    aegis__raft_sync_progress(r);
    aegis__raft_trace(r, "became_leader", r->term, aegis__log_last_index(&r->log));
    /* §8 / thesis §6.4: a NoOp at the start of the term lets the leader commit (and learn
     * the commit index of) everything before it. */
    rv = aegis__raft_append_local(r, AEGIS_ENTRY_NOOP, NULL, NULL);
    if (rv != 0) {
        /* Out of memory for the log: lead without it; the next proposal retries. */
        aegis__raft_trace(r, "noop_failed", r->term, (uint64_t)(-(int64_t)rv));
    }
    aegis__raft_broadcast_appends(r);
    aegis__raft_maybe_commit(r);
}

/* Count the recorded votes of current voters, our own included. */
static void tally(const struct aegis_raft *r, uint32_t *granted_out, uint32_t *rejected_out)
{
    *granted_out = 0;
    *rejected_out = 0;
    for (uint32_t i = 0; i < r->votes_count; i++) {
        if (!aegis__conf_is_voter(&r->conf, r->votes[i].id)) {
            continue;
        }
        if (r->votes[i].granted) {
            (*granted_out)++;
        } else {
            (*rejected_out)++;
        }
    }
}

static void record_vote(struct aegis_raft *r, aegis_node_id id, bool granted)
{
    for (uint32_t i = 0; i < r->votes_count; i++) {
        if (r->votes[i].id == id) {
            return;
        }
    }
    AEGIS_ASSERT(r->votes_count < AEGIS_MEMBERS_MAX);
    r->votes[r->votes_count++] = (struct aegis_vote_record){.id = id, .granted = granted};
}

/* After a vote is recorded: win, lose, or keep waiting. */
static void poll(struct aegis_raft *r)
{
    uint32_t granted, rejected, quorum = aegis__conf_quorum(&r->conf);

    tally(r, &granted, &rejected);
    if (granted >= quorum) {
        if (r->role == AEGIS_ROLE_PRECANDIDATE) {
            aegis__raft_start_election(r, false, false);
        } else {
            become_leader(r);
        }
    } else if (rejected >= quorum) {
        aegis__raft_become_follower(r, r->term, AEGIS_NODE_NONE);
    }
}

void aegis__raft_start_election(struct aegis_raft *r, bool pre_vote, bool transfer)
{
    aegis_term term;

    AEGIS_ASSERT(aegis__raft_promotable(r));
    AEGIS_ASSERT(r->role != AEGIS_ROLE_LEADER);
    AEGIS_ASSERT(r->term < AEGIS_TERM_MAX);
    if (r->term + 1 >= AEGIS_TERM_MAX) {
        aegis__raft_trace(r, "term_exhausted", r->term, 0);
        aegis__raft_reset_timeout(r);
        return;
    }
    if (r->votes_withheld &&
        !(aegis__conf_quorum(&r->conf) == 1 && aegis__conf_is_voter(&r->conf, r->id))) {
        /* A campaign votes for ourselves: not while a forgotten vote may exist (unless we
         * are the only voter: there is nobody else we could have voted for). */
        aegis__raft_reset_timeout(r);
        aegis__raft_trace(r, "campaign_withheld", r->term, 0);
        return;
    }
    if (pre_vote) {
        r->role = AEGIS_ROLE_PRECANDIDATE;
        term = r->term + 1;
    } else {
        r->role = AEGIS_ROLE_CANDIDATE;
        r->term++;
        r->vote = r->id;
        term = r->term;
    }
    r->leader = AEGIS_NODE_NONE;
    r->votes_count = 0;
    aegis__raft_reset_timeout(r);
    aegis__raft_trace(r, "election_start", term, pre_vote);
    for (uint32_t i = 0; i < r->conf.count; i++) {
        const struct aegis_member *mb = &r->conf.members[i];
        struct aegis_msg *m;

        if (mb->id == r->id || mb->role != AEGIS_MEMBER_VOTER) {
            continue;
        }
        /* A real vote request depends on the new term and self-vote being durable. */
        m = aegis__raft_push(r, AEGIS_MSG_VOTE_REQ, mb->id, !pre_vote);
        if (m == NULL) {
            continue;
        }
        m->term = term;
        m->vote_req.last_log_index = aegis__log_last_index(&r->log);
        m->vote_req.last_log_term = aegis__log_last_term(&r->log);
        m->vote_req.pre_vote = pre_vote;
        m->vote_req.leadership_transfer = transfer;
    }
    record_vote(r, r->id, true);
    poll(r);
}

/* §5.4.1: the candidate's log is at least as up-to-date as ours. */
static bool log_up_to_date(const struct aegis_raft *r, const struct aegis_vote_req *v)
{
    aegis_term last_term = aegis__log_last_term(&r->log);

    if (aegis__raft_bug(r, AEGIS_RAFT_BUG_VOTE_ANY_LOG)) {
        return true;
    }
    return v->last_log_term > last_term ||
           (v->last_log_term == last_term &&
            v->last_log_index >= aegis__log_last_index(&r->log));
}

void aegis__raft_handle_vote_req(struct aegis_raft *r, const struct aegis_msg *m)
{
    bool pre = m->vote_req.pre_vote;
    bool can_vote = r->vote == m->from ||
                    (r->vote == AEGIS_NODE_NONE && r->leader == AEGIS_NODE_NONE) ||
                    (pre && m->term > r->term);
    bool grant = can_vote && log_up_to_date(r, &m->vote_req) && (pre || !r->votes_withheld);
    struct aegis_msg *resp;

    AEGIS_ASSERT(pre || m->term <= r->term);
    if (grant && !pre) {
        r->vote = m->from;
        r->election_elapsed = 0;
    }
    /* A granted vote must be durable before the grant leaves; a pre-vote changes nothing. */
    resp = aegis__raft_push(r, AEGIS_MSG_VOTE_RESP, m->from, !pre);
    if (resp == NULL) {
        return;
    }
    resp->vote_resp.pre_vote = pre;
    resp->vote_resp.granted = grant;
    if (grant) {
        resp->term = m->term; /* For a pre-vote: the term the candidate would use. */
    }
}

void aegis__raft_handle_vote_resp(struct aegis_raft *r, const struct aegis_msg *m)
{
    bool pre = m->vote_resp.pre_vote;

    if (pre ? r->role != AEGIS_ROLE_PRECANDIDATE : r->role != AEGIS_ROLE_CANDIDATE) {
        return;
    }
    if (pre && m->vote_resp.granted && m->term != r->term + 1) {
        return; /* From an earlier pre-vote round. */
    }
    if (!aegis__conf_is_voter(&r->conf, m->from)) {
        return;
    }
    record_vote(r, m->from, m->vote_resp.granted);
    poll(r);
}

bool aegis__raft_transfer_sanctioned(const struct aegis_raft *r, const struct aegis_msg *m)
{
    const struct aegis_vote_req *v = &m->vote_req;

    if (!v->leadership_transfer || v->pre_vote || m->term != r->term + 1) {
        return false;
    }
    if (r->role == AEGIS_ROLE_LEADER) {
        return r->transfer_target == m->from;
    }
    return r->transfer_notice.term == r->term && r->transfer_notice.leader == r->leader &&
           r->leader != AEGIS_NODE_NONE && r->transfer_notice.target == m->from;
}

void aegis__raft_handle_timeout_now(struct aegis_raft *r, const struct aegis_msg *m)
{
    /* raft.c check_in_place: from the leader we know, in our term. */
    AEGIS_ASSERT(m->term == r->term && m->from == r->leader);
    if (m->timeout_now.target != r->id) {
        r->transfer_notice.term = r->term;
        r->transfer_notice.leader = m->from;
        r->transfer_notice.target = m->timeout_now.target;
        return;
    }
    if (r->role == AEGIS_ROLE_LEADER || !aegis__raft_promotable(r)) {
        return;
    }
    aegis__raft_trace(r, "transfer_campaign", r->term, m->from);
    /* The leader asked for it: skip the pre-vote, bypass stickiness (thesis §3.10). */
    aegis__raft_start_election(r, false, true);
}

void aegis__raft_tick_follower(struct aegis_raft *r)
{
    AEGIS_ASSERT(r->role != AEGIS_ROLE_LEADER);
    if (r->election_elapsed < UINT32_MAX) {
        r->election_elapsed++;
    }
    if (aegis__raft_promotable(r) && r->election_elapsed >= r->election_timeout) {
        aegis__raft_start_election(r, r->cfg.pre_vote, false);
    }
}

static bool quorum_active(const struct aegis_raft *r)
{
    uint32_t active = aegis__raft_promotable(r) ? 1 : 0;

    for (uint32_t i = 0; i < AEGIS_MEMBERS_MAX; i++) {
        const struct aegis_progress *pr = &r->prs[i];

        if (pr->id != AEGIS_NODE_NONE && pr->recent_active &&
            aegis__conf_is_voter(&r->conf, pr->id)) {
            active++;
        }
    }
    return active >= aegis__conf_quorum(&r->conf);
}

/* Once per election timeout: check-quorum and the transfer deadline. Returns false when
 * the leader stepped down. */
static bool leader_round(struct aegis_raft *r)
{
    if (r->cfg.check_quorum && !quorum_active(r)) {
        aegis__raft_trace(r, "check_quorum_lost", r->term, 0);
        aegis__raft_become_follower(r, r->term, AEGIS_NODE_NONE);
        return false;
    }
    for (uint32_t i = 0; i < AEGIS_MEMBERS_MAX; i++) {
        r->prs[i].recent_active = false;
    }
    return true;
}

void aegis__raft_tick_leader(struct aegis_raft *r)
{
    AEGIS_ASSERT(r->role == AEGIS_ROLE_LEADER);
    r->heartbeat_elapsed++;
    r->election_elapsed++;
    aegis__raft_tick_snapshots(r);
    if (r->transfer_target != AEGIS_NODE_NONE &&
        ++r->transfer_elapsed >= r->cfg.election_timeout_min_ticks) {
        aegis__raft_trace(r, "transfer_abandoned", r->term, r->transfer_target);
        r->transfer_target = AEGIS_NODE_NONE;
        r->transfer_elapsed = 0;
    }
    if (r->election_elapsed >= r->cfg.election_timeout_min_ticks) {
        r->election_elapsed = 0;
        if (!leader_round(r)) {
            return;
        }
    }
    if (r->heartbeat_elapsed >= r->cfg.heartbeat_interval_ticks) {
        r->heartbeat_elapsed = 0;
        aegis__raft_broadcast_heartbeat(r, r->reads_count > 0 ? r->read_round : 0);
    }
}

void aegis__raft_transfer_check(struct aegis_raft *r, struct aegis_progress *pr)
{
    struct aegis_msg *m;

    if (r->transfer_target != pr->id || pr->match != aegis__log_last_index(&r->log)) {
        return;
    }
    m = aegis__raft_push(r, AEGIS_MSG_TIMEOUT_NOW, pr->id, false);
    if (m == NULL) {
        return;
    }
    m->timeout_now.target = pr->id;
    aegis__raft_trace(r, "transfer_timeout_now", r->term, pr->id);
    /* The notices: the other voters may then honour the target's transfer vote. */
    for (uint32_t i = 0; i < r->conf.count; i++) {
        const struct aegis_member *mb = &r->conf.members[i];

        if (mb->id == r->id || mb->id == pr->id || mb->role != AEGIS_MEMBER_VOTER) {
            continue;
        }
        m = aegis__raft_push(r, AEGIS_MSG_TIMEOUT_NOW, mb->id, false);
        if (m != NULL) {
            m->timeout_now.target = pr->id;
        }
    }
}

int aegis__raft_transfer(struct aegis_raft *r, aegis_node_id target)
{
    struct aegis_progress *pr;

    if (r->role != AEGIS_ROLE_LEADER) {
        return AEGIS_ENOTLEADER;
    }
    if (target == r->id) {
        return 0;
    }
    pr = aegis__raft_progress_of(r, target);
    if (pr == NULL || !aegis__conf_is_voter(&r->conf, target)) {
        return AEGIS_EUNKNOWNNODE;
    }
    r->transfer_target = target;
    r->transfer_elapsed = 0;
    aegis__raft_trace(r, "transfer_start", r->term, target);
    if (pr->match == aegis__log_last_index(&r->log)) {
        aegis__raft_transfer_check(r, pr);
        return 0;
    }
    if (pr->state == AEGIS_PROGRESS_REPLICATE && pr->next > aegis__log_last_index(&r->log)) {
        /* Everything is in flight yet the target is behind: resend rather than wait for
         * the next heartbeat answer, the transfer has a deadline. */
        aegis__progress_to_probe(pr);
    }
    aegis__raft_send_appends(r, pr);
    return 0;
}

void aegis__raft_withhold_votes(struct aegis_raft *r)
{
    r->votes_withheld = true;
    aegis__raft_trace(r, "votes_withheld", r->term, r->vote);
}

bool aegis__raft_votes_withheld(const struct aegis_raft *r)
{
    return r->votes_withheld;
}
