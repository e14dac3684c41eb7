/* SPDX-License-Identifier: MIT */
/* Snapshots (§7, thesis §5): compaction on the runtime's word, InstallSnapshot in chunks.
 *
 * Taking one. When applied - last snapshot index reaches snapshot_threshold, a ready says
 * snapshot_wanted (once). The runtime serialises its state machine at some applied index
 * and calls aegis__raft_snapshot_taken(): the core keeps a reference on the data (to send
 * to followers) and compacts its log through index - snapshot_trailing, so a follower a
 * little behind still catches up from entries rather than the whole snapshot. With a
 * bounded entry cache (config.log_cache_bytes) it does not: the runtime's retention
 * compacts (aegis__raft_compact, raft_replicate.c).
 *
 * Sending one. A follower whose next entry is compacted enters SNAPSHOT (progress.h). The
 * leader sends the data in chunks of snapshot_chunk_bytes, one chunk in flight; each
 * answer says the next offset the follower expects (or, on failure, where to restart).
 * A chunk lost is sent again after an election timeout. Heartbeats keep flowing to the
 * follower meanwhile (they do not depend on the transfer), so it does not start an
 * election while a large snapshot crawls in.
 *
 * Receiving one. The follower assembles chunks in order into one buffer of total_bytes
 * (bounded by AEGIS_BUF_LEN_MAX); offset 0 restarts the assembly. A chunk extends the
 * offer in progress only when it matches it: same term and leader as its first chunk,
 * same snapshot index and term, same total, and its offset exactly where the assembly
 * stands; anything else changes nothing and is answered with where the follower stands
 * (or 0), never treated as fatal. Once complete, the runtime's snapshot_check (when
 * given) must accept the data before it replaces anything. On the last chunk it
 * either fast-forwards its commit index (its log already holds the snapshot's last entry)
 * or resets its log to the snapshot and hands it out in the next ready (snapshot_meta and
 * snapshot_data), which the runtime persists and restores before applying anything later.
 * Its answers go in msgs_after_persist, so the leader hears "installed" only once the
 * snapshot is durable. */
#include <string.h>

#include <aegis/error.h>

#include "engine/assert.h"
#include "engine/raft_impl.h"

void aegis__raft_recv_reset(struct aegis_raft *r)
{
    aegis__buf_unref(r->recv.buf);
    memset(&r->recv, 0, sizeof(r->recv));
}

void aegis__raft_send_snapshot_chunk(struct aegis_raft *r, struct aegis_progress *pr)
{
    uint64_t total, len;
    struct aegis_buf *chunk = NULL;
    struct aegis_msg *m;

    AEGIS_ASSERT(pr->state == AEGIS_PROGRESS_SNAPSHOT);
    if (pr->snap_inflight) {
        return;
    }
    total = pr->snap_data->len;
    AEGIS_ASSERT(pr->snap_offset <= total);
    len = total - pr->snap_offset;
    if (len > r->cfg.snapshot_chunk_bytes) {
        len = r->cfg.snapshot_chunk_bytes;
    }
    if (len > 0) {
        chunk = aegis__buf_from(r->alloc, pr->snap_data->data + pr->snap_offset, len);
        if (chunk == NULL) {
            return; /* Retried on the next tick round. */
        }
    }
    m = aegis__raft_push(r, AEGIS_MSG_SNAPSHOT_REQ, pr->id, false);
    if (m == NULL) {
        aegis__buf_unref(chunk);
        return;
    }
    m->snapshot_req.meta = pr->snap_meta;
    m->snapshot_req.offset = pr->snap_offset;
    m->snapshot_req.total_bytes = total;
    m->snapshot_req.done = pr->snap_offset + len == total;
    m->snapshot_req.chunk = chunk; /* The box owns this reference until advance. */
    pr->snap_inflight = true;
    pr->snap_idle_ticks = 0;
}

static void reply_snapshot(struct aegis_raft *r, const struct aegis_msg *m, bool success,
                           uint64_t next_offset)
{
    bool after = !aegis__raft_bug(r, AEGIS_RAFT_BUG_ACK_BEFORE_DURABLE);
    struct aegis_msg *resp = aegis__raft_push(r, AEGIS_MSG_SNAPSHOT_RESP, m->from, after);

    if (resp != NULL) {
        resp->snapshot_resp.index = m->snapshot_req.meta.index;
        resp->snapshot_resp.next_offset = next_offset;
        resp->snapshot_resp.success = success;
    }
}

static void install(struct aegis_raft *r)
{
    struct aegis_snapshot_meta copy = r->recv.meta; /* recv is reset below. */
    const struct aegis_snapshot_meta *meta = &copy;

    if (aegis__log_term_at(&r->log, meta->index) == meta->term) {
        /* Our log already holds the snapshot's last entry: just learn that it is
         * committed (thesis §5.3: keep the entries that follow). */
        aegis__raft_commit_to(r, meta->index);
        aegis__raft_recv_reset(r);
        return;
    }
    aegis__raft_trace(r, "snapshot_install", meta->index, meta->term);
    aegis__log_reset(&r->log, meta->index, meta->term);
    aegis__buf_unref(r->snap_data);
    r->snap_meta = *meta;
    r->snap_data = r->recv.buf; /* The reference moves. */
    r->recv.buf = NULL;
    aegis__raft_recv_reset(r);
    r->snap_out = true;
    r->snap_asked = false;
    r->unstable_from = meta->index + 1;
    r->persisted_index = meta->index;
    r->handed_commit = meta->index;
    r->applied = meta->index;
    r->base_conf = meta->conf;
    aegis__raft_conf_set(r, &meta->conf, 0);
}

/* Take in one chunk. Returns false when it does not follow on from what was assembled
 * (or the assembly cannot start): the leader then restarts from where we are. */
/* Whether @m belongs to the offer being assembled (same sender, term and snapshot). */
static bool same_offer(const struct aegis_raft *r, const struct aegis_msg *m)
{
    const struct aegis_snapshot_req *s = &m->snapshot_req;

    return r->recv.buf != NULL && r->recv.term == m->term && r->recv.leader == m->from &&
           r->recv.meta.index == s->meta.index && r->recv.meta.term == s->meta.term &&
           r->recv.buf->len == s->total_bytes;
}

static bool take_chunk(struct aegis_raft *r, const struct aegis_msg *m)
{
    const struct aegis_snapshot_req *s = &m->snapshot_req;
    uint64_t len = s->chunk != NULL ? s->chunk->len : 0;

    AEGIS_ASSERT(s->total_bytes <= AEGIS_BUF_LEN_MAX); /* aegis__msg_validate. */
    if (s->offset == 0) {
        aegis__raft_recv_reset(r);
        r->recv.buf = aegis__buf_create(r->alloc, (size_t)s->total_bytes);
        if (r->recv.buf == NULL) {
            return false;
        }
        r->recv.meta = s->meta;
        r->recv.term = m->term;
        r->recv.leader = m->from;
    }
    if (!same_offer(r, m) || s->offset != r->recv.received ||
        len > s->total_bytes - s->offset) {
        return false;
    }
    if (len > 0) {
        memcpy(r->recv.buf->data + s->offset, s->chunk->data, (size_t)len);
    }
    r->recv.received += len;
    return true;
}

/* The runtime's verdict on the assembled data (0 when it gave no check). */
static int check_assembled(const struct aegis_raft *r)
{
    if (r->cfg.snapshot_check == NULL) {
        return 0;
    }
    return r->cfg.snapshot_check(r->cfg.snapshot_check_data, &r->recv.meta, r->recv.buf);
}

int aegis__raft_handle_snapshot_req(struct aegis_raft *r, const struct aegis_msg *m)
{
    const struct aegis_snapshot_req *s = &m->snapshot_req;

    /* aegis__msg_validate checked the metadata and the chunk's bounds. */
    AEGIS_ASSERT(aegis__conf_valid(&s->meta.conf) && s->meta.index > 0 && s->meta.term > 0 &&
                 s->meta.term <= m->term);
    if (s->meta.index <= r->log.commit) {
        aegis__raft_recv_reset(r);
        reply_snapshot(r, m, true, s->total_bytes); /* Nothing to install. */
        return 0;
    }
    if (!take_chunk(r, m)) {
        reply_snapshot(r, m, false, same_offer(r, m) ? r->recv.received : 0);
        return 0;
    }
    if (s->done) {
        /* Validated: done means offset + len == total, and offset was where we stood. */
        AEGIS_ASSERT(r->recv.received == r->recv.buf->len);
        if (s->offset > 0 && check_assembled(r) != 0) { /* Offset 0: raft.c checked it. */
            aegis__raft_trace(r, "snapshot_refused", s->meta.index, s->meta.term);
            aegis__raft_recv_reset(r);
            reply_snapshot(r, m, false, 0);
            return AEGIS_ECORRUPT;
        }
        install(r);
        reply_snapshot(r, m, true, s->total_bytes);
        return 0;
    }
    reply_snapshot(r, m, true, r->recv.received);
    return 0;
}

void aegis__raft_handle_snapshot_resp(struct aegis_raft *r, struct aegis_progress *pr,
                                      const struct aegis_msg *m)
{
    const struct aegis_snapshot_resp *s = &m->snapshot_resp;

    if (pr->state != AEGIS_PROGRESS_SNAPSHOT || s->index != pr->snap_meta.index ||
        s->next_offset > pr->snap_data->len) {
        return; /* Stale, or a broken peer. */
    }
    pr->snap_inflight = false;
    if (s->success && s->next_offset == pr->snap_data->len && s->next_offset >= pr->snap_offset) {
        aegis_index index = pr->snap_meta.index;

        aegis__raft_trace(r, "snapshot_sent", pr->id, index);
        aegis__progress_ack(pr, index);
        aegis__progress_to_probe(pr);
        aegis__raft_maybe_commit(r);
        if (r->role == AEGIS_ROLE_LEADER) {
            aegis__raft_send_append(r, pr, true);
        }
        return;
    }
    pr->snap_offset = s->next_offset;
    aegis__raft_send_snapshot_chunk(r, pr);
}

int aegis__raft_snapshot_taken(struct aegis_raft *r, const struct aegis_snapshot_meta *meta,
                               struct aegis_buf *data)
{
    struct aegis_conf conf;
    aegis_index compact_to;
    int rv;

    AEGIS_ASSERT(data != NULL);
    if (meta->index <= r->snap_meta.index) {
        return AEGIS_ESTALE;
    }
    if (meta->index > r->log.commit || meta->index > r->applied ||
        aegis__log_term_at(&r->log, meta->index) != meta->term) {
        return AEGIS_EINVAL;
    }
    rv = aegis__raft_conf_at(r, meta->index, &conf);
    if (rv != 0) {
        return rv;
    }
    aegis__buf_unref(r->snap_data);
    r->snap_data = aegis__buf_ref(data);
    r->snap_meta = *meta;
    r->snap_meta.conf = conf; /* The core knows the membership at that index. */
    r->snap_asked = false;
    aegis__raft_trace(r, "snapshot_taken", meta->index, meta->term);
    /* With a bounded cache the runtime's retention compacts (aegis__raft_compact). */
    if (r->cfg.log_cache_bytes == 0 && meta->index > r->cfg.snapshot_trailing) {
        compact_to = meta->index - r->cfg.snapshot_trailing;
        aegis__raft_compact_log(r, compact_to);
    }
    return 0;
}
