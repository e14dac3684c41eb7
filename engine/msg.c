/* SPDX-License-Identifier: MIT */
/* Ownership helpers for struct aegis_msg, and the stateless check of a message received
 * from a peer (aegis__msg_validate); see msg.h.
 *
 * Validation design. A peer message is input from the network: whatever a correct peer
 * never sends is refused here, before the core, the metrics or a log line reads a field.
 * The rules are the ones every correct sender obeys by construction, so refusing them
 * costs nothing in availability:
 *   - a known type and a non-zero sender;
 *   - every term below AEGIS_TERM_MAX and every index below AEGIS_INDEX_MAX, including
 *     the last index an AppendEntries would create (prev_index + entries_count);
 *   - no term named inside a message above the message's own term (a log's last term, a
 *     previous or entry term, a snapshot's term, a conflict term): the sender's term is
 *     at least every term in its log;
 *   - messages only a leader or candidate sends carry a term of at least 1;
 *   - appended entries: consecutive indexes from prev_index + 1, terms non-decreasing
 *     from prev_term, known entry types;
 *   - a snapshot chunk: metadata index and term at least 1, a valid membership with a
 *     voter, total within AEGIS_SNAPSHOT_BYTES_MAX, the chunk inside the total, "done" exactly
 *     when it reaches the total;
 *   - a pre-vote never carries the transfer flag; a TimeoutNow names its target.
 * Every loop here runs over the message's own decoded array, never over a range of
 * values taken from it. */
#include "engine/msg.h"

#include <string.h>

#include <aegis/error.h>

#include "engine/conf.h"

static struct aegis_buf **msg_buf_slot(struct aegis_msg *m)
{
    switch (m->type) {
    case AEGIS_MSG_SNAPSHOT_REQ:
        return &m->snapshot_req.chunk;
    case AEGIS_MSG_CLIENT_REQ:
        return &m->client_req.command;
    case AEGIS_MSG_CLIENT_RESP:
        return &m->client_resp.value;
    default:
        return NULL;
    }
}

void aegis__msg_release(struct aegis_msg *m, const struct aegis_allocator *a)
{
    struct aegis_buf **slot;

    if (m->type == AEGIS_MSG_APPEND_REQ && m->append_req.entries != NULL) {
        for (uint32_t i = 0; i < m->append_req.entries_count; i++) {
            aegis__entry_unref(&m->append_req.entries[i]);
        }
        aegis__free(a, m->append_req.entries);
    }
    slot = msg_buf_slot(m);
    if (slot != NULL) {
        aegis__buf_unref(*slot);
    }
    memset(m, 0, sizeof(*m));
}

int aegis__msg_clone(struct aegis_msg *dst, const struct aegis_msg *src,
                     const struct aegis_allocator *a)
{
    struct aegis_buf **slot;

    *dst = *src;
    if (src->type == AEGIS_MSG_APPEND_REQ) {
        uint32_t n = src->append_req.entries_count;

        dst->append_req.entries = NULL;
        if (n > 0) {
            dst->append_req.entries = aegis__calloc(a, n, sizeof(struct aegis_entry));
            if (dst->append_req.entries == NULL) {
                dst->append_req.entries_count = 0;
                return AEGIS_ENOMEM;
            }
            memcpy(dst->append_req.entries, src->append_req.entries,
                   n * sizeof(struct aegis_entry));
            for (uint32_t i = 0; i < n; i++) {
                aegis__entry_ref(&dst->append_req.entries[i]);
            }
        }
    }
    slot = msg_buf_slot(dst);
    if (slot != NULL && *slot != NULL) {
        aegis__buf_ref(*slot);
    }
    return 0;
}

static bool term_ok(aegis_term t)
{
    return t < AEGIS_TERM_MAX;
}

static bool index_ok(aegis_index i)
{
    return i < AEGIS_INDEX_MAX;
}

static bool vote_req_ok(const struct aegis_msg *m)
{
    const struct aegis_vote_req *v = &m->vote_req;

    return m->term >= 1 && index_ok(v->last_log_index) && v->last_log_term <= m->term &&
           !(v->pre_vote && v->leadership_transfer);
}

static bool append_req_ok(const struct aegis_msg *m)
{
    const struct aegis_append_req *a = &m->append_req;
    aegis_term prev_term = a->prev_term;

    if (m->term < 1 || !index_ok(a->prev_index) || !index_ok(a->commit) ||
        a->prev_term > m->term || a->entries_count >= AEGIS_INDEX_MAX - a->prev_index ||
        (a->entries_count > 0 && a->entries == NULL)) {
        return false;
    }
    for (uint32_t i = 0; i < a->entries_count; i++) {
        const struct aegis_entry *e = &a->entries[i];

        if (e->index != a->prev_index + 1 + i || e->term == 0 || e->term < prev_term ||
            e->term > m->term || e->type < AEGIS_ENTRY_COMMAND || e->type > AEGIS_ENTRY_NOOP) {
            return false;
        }
        prev_term = e->term;
    }
    return true;
}

static bool append_resp_ok(const struct aegis_msg *m)
{
    const struct aegis_append_resp *a = &m->append_resp;

    return index_ok(a->match_index) && index_ok(a->conflict_index) &&
           index_ok(a->last_index) && a->conflict_term <= m->term;
}

static bool snapshot_req_ok(const struct aegis_msg *m)
{
    const struct aegis_snapshot_req *s = &m->snapshot_req;
    uint64_t len = s->chunk != NULL ? s->chunk->len : 0;

    return m->term >= 1 && s->meta.index >= 1 && index_ok(s->meta.index) &&
           s->meta.term >= 1 && s->meta.term <= m->term && aegis__conf_valid(&s->meta.conf) &&
           aegis__conf_voter_count(&s->meta.conf) >= 1 &&
           s->total_bytes <= AEGIS_SNAPSHOT_BYTES_MAX && s->offset <= s->total_bytes &&
           len <= s->total_bytes - s->offset &&
           s->done == (s->offset + len == s->total_bytes);
}

static bool body_ok(const struct aegis_msg *m)
{
    switch (m->type) {
    case AEGIS_MSG_VOTE_REQ:
        return vote_req_ok(m);
    case AEGIS_MSG_APPEND_REQ:
        return append_req_ok(m);
    case AEGIS_MSG_APPEND_RESP:
        return append_resp_ok(m);
    case AEGIS_MSG_SNAPSHOT_REQ:
        return snapshot_req_ok(m);
    case AEGIS_MSG_SNAPSHOT_RESP:
        return index_ok(m->snapshot_resp.index) &&
               m->snapshot_resp.next_offset <= AEGIS_SNAPSHOT_BYTES_MAX;
    case AEGIS_MSG_HEARTBEAT:
        return m->term >= 1 && index_ok(m->heartbeat.commit);
    case AEGIS_MSG_TIMEOUT_NOW:
        return m->term >= 1 && m->timeout_now.target != AEGIS_NODE_NONE;
    case AEGIS_MSG_READ_INDEX_RESP:
        return index_ok(m->read_index_resp.index);
    case AEGIS_MSG_CLIENT_RESP:
        return index_ok(m->client_resp.index);
    default:
        return true; /* VOTE_RESP, HEARTBEAT_RESP, READ_INDEX_REQ, CLIENT_REQ: no values
                        the core acts on beyond the header's. */
    }
}

int aegis__msg_validate(const struct aegis_msg *m)
{
    if (m->type < AEGIS_MSG_TYPE_MIN || m->type > AEGIS_MSG_TYPE_MAX ||
        m->from == AEGIS_NODE_NONE || !term_ok(m->term) || !body_ok(m)) {
        return AEGIS_ECORRUPT;
    }
    return 0;
}
