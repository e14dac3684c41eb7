/* SPDX-License-Identifier: MIT */
/* Snapshots (§7, thesis §5): compaction on the runtime's word, InstallSnapshot streamed.
 *
 * The core never holds a snapshot's bytes. A snapshot is a byte string of known size that
 * lives with the runtime (for the pipeline: the snapshot file as on disk); the core moves
 * it in chunks through config.snapshot_io, a source on the leader and a sink on the
 * follower (raft.h). The engine facade and the simulation plug in memory-backed ones
 * (engine/snapshot_mem.h); the pipeline plugs in files (pipeline/snap_transfer.c).
 *
 * Taking one. When applied - last snapshot index reaches snapshot_threshold, a ready says
 * snapshot_wanted (once). The runtime writes its state machine at some applied index and
 * calls aegis__raft_snapshot_taken() with its metadata and size: the core compacts its
 * log through index - snapshot_trailing, so a follower a little behind still catches up
 * from entries rather than the whole snapshot. With a bounded entry cache
 * (config.log_cache_bytes) it does not: the runtime's retention compacts
 * (aegis__raft_compact, raft_replicate.c).
 *
 * Sending one. A follower whose next entry is compacted enters SNAPSHOT (progress.h). The
 * leader asks the source for chunks of snapshot_chunk_bytes and sends them in order,
 * at most snapshot_chunks_inflight_max unanswered, so the bytes it holds for a transfer
 * are bounded by chunk size x window (and the runtime's reads, not the core, decide
 * where they come from). The source may answer "not yet" (AEGIS_EAGAIN): the runtime
 * reads off its own thread and calls aegis__raft_snapshot_readable(); the retransmission
 * tick asks again too. Each answer says how many leading bytes the follower holds
 * (snap_acked moves up to there, and jumps ahead when the follower already had more: a
 * resumed transfer); a failure says where to go back to. Only one rewind per loss: out-
 * of-order answers that follow it do not rewind again (snap_rewound). No progress for an
 * election timeout with chunks out: back to snap_acked and send again. Heartbeats keep
 * flowing meanwhile, so the follower does not start an election while a large snapshot
 * crawls in.
 *
 * Receiving one. An offer is one snapshot (index, term, size) from one leader. A chunk
 * of an offer other than the one in progress opens it (recv_open) when it is at offset 0
 * or when no offer is in progress (a restarted follower); the sink answers how many
 * leading bytes of that very offer it kept from an earlier attempt, and the transfer
 * resumes there: the chunk is then a duplicate, answered with that count, and the leader
 * jumps ahead. Within the offer: a chunk at exactly the bytes held goes to the sink
 * (recv_write) and is answered with the new count; a chunk wholly below it (a duplicate)
 * is answered with the count; a chunk beyond it (one was lost) is answered "failure,
 * resume at the count". Nothing a leader sends is treated as fatal. The answers go in
 * msgs_after_persist, so a runtime whose sink writes through its log thread acknowledges
 * only bytes it has written. Once all bytes are in, recv_finish verifies them (at once, or
 * later through aegis__raft_snapshot_verified(): meanwhile chunks of the offer are not
 * answered, so the leader cannot take a resent chunk's answer for "installed"). A
 * refused snapshot is dropped and the leader is told to start from 0. A good one either
 * fast-forwards the commit index (the log already holds its last entry) or resets the
 * log to it and comes out in the next ready (snapshot_meta), which the runtime makes
 * durable and restores before applying anything later (until that ready, no other offer
 * opens: the sink still holds those bytes). The answer "installed"
 * (next_offset == total) goes in msgs_after_persist, so the leader hears it only once
 * the snapshot is durable. A snapshot the log already covers (index at or below the
 * commit index, or its last entry held with its term) is answered "installed" at once,
 * with no bytes moved. */
#include <string.h>

#include <aegis/error.h>

#include "engine/assert.h"
#include "engine/raft_impl.h"

static void recv_drop(struct aegis_raft *r)
{
    memset(&r->recv, 0, sizeof(r->recv));
}

/* Chunks of this transfer that are out, unanswered. */
static uint64_t chunks_out(const struct aegis_raft *r, const struct aegis_progress *pr)
{
    uint64_t bytes = pr->snap_next - pr->snap_acked;

    return (bytes + r->cfg.snapshot_chunk_bytes - 1) / r->cfg.snapshot_chunk_bytes;
}

/* Send the chunk at pr->snap_next. Returns false when nothing went out (the source
 * waits or failed, or the output box is full). */
static bool send_one_chunk(struct aegis_raft *r, struct aegis_progress *pr)
{
    uint64_t len = pr->snap_total - pr->snap_next;
    struct aegis_buf *chunk = NULL;
    struct aegis_msg *m;
    int rv;

    if (len > r->cfg.snapshot_chunk_bytes) {
        len = r->cfg.snapshot_chunk_bytes;
    }
    if (len > 0) {
        rv = r->cfg.snapshot_io.read(r->cfg.snapshot_io.data, &pr->snap_meta, pr->snap_next,
                                     (uint32_t)len, &chunk);
        if (rv == AEGIS_EAGAIN) {
            pr->snap_waiting = true;
            return false;
        }
        if (rv != 0 || chunk == NULL || chunk->len != len) {
            /* The source cannot give it (the snapshot was replaced, a read error): give
             * up this transfer; the follower's next answer starts one anew. */
            aegis__buf_unref(chunk);
            aegis__raft_trace(r, "snapshot_read_failed", pr->id, pr->snap_next);
            aegis__progress_to_probe(pr);
            return false;
        }
    }
    pr->snap_waiting = false;
    m = aegis__raft_push(r, AEGIS_MSG_SNAPSHOT_REQ, pr->id, false);
    if (m == NULL) {
        aegis__buf_unref(chunk);
        return false; /* Counted as dropped; resent after the timeout. */
    }
    m->snapshot_req.meta = pr->snap_meta;
    m->snapshot_req.offset = pr->snap_next;
    m->snapshot_req.total_bytes = pr->snap_total;
    m->snapshot_req.done = pr->snap_next + len == pr->snap_total;
    m->snapshot_req.chunk = chunk; /* The box owns this reference until advance. */
    pr->snap_next += len;
    pr->snap_done_sent = m->snapshot_req.done;
    AEGIS_ASSERT(pr->snap_next <= pr->snap_total);
    return true;
}

void aegis__raft_send_snapshot_chunks(struct aegis_raft *r, struct aegis_progress *pr)
{
    /* Budget: at most snapshot_chunks_inflight_max chunks per call. */
    for (uint32_t i = 0; i < r->cfg.snapshot_chunks_inflight_max; i++) {
        AEGIS_ASSERT(pr->state == AEGIS_PROGRESS_SNAPSHOT);
        AEGIS_ASSERT(pr->snap_acked <= pr->snap_next);
        if (pr->snap_done_sent || chunks_out(r, pr) >= r->cfg.snapshot_chunks_inflight_max ||
            !send_one_chunk(r, pr)) {
            return;
        }
        if (pr->state != AEGIS_PROGRESS_SNAPSHOT) {
            return;
        }
    }
}

void aegis__raft_snapshot_readable(struct aegis_raft *r)
{
    for (uint32_t i = 0; i < AEGIS_MEMBERS_MAX; i++) {
        struct aegis_progress *pr = &r->prs[i];

        if (pr->id != AEGIS_NODE_NONE && pr->state == AEGIS_PROGRESS_SNAPSHOT &&
            pr->snap_waiting && r->role == AEGIS_ROLE_LEADER) {
            aegis__raft_send_snapshot_chunks(r, pr);
        }
    }
}

static void reply_snapshot(struct aegis_raft *r, aegis_node_id to, aegis_index index,
                           bool success, uint64_t next_offset)
{
    bool after = !aegis__raft_bug(r, AEGIS_RAFT_BUG_ACK_BEFORE_DURABLE);
    struct aegis_msg *resp = aegis__raft_push(r, AEGIS_MSG_SNAPSHOT_RESP, to, after);

    if (resp != NULL) {
        resp->snapshot_resp.index = index;
        resp->snapshot_resp.next_offset = next_offset;
        resp->snapshot_resp.success = success;
    }
}

/* The offer in progress is verified: make it the node's snapshot and reset the log to
 * it, unless the log already holds its last entry. */
static void install(struct aegis_raft *r)
{
    struct aegis_snapshot_meta meta = r->recv.meta; /* recv is dropped below. */
    uint64_t total = r->recv.total;

    AEGIS_ASSERT(r->recv.active);
    AEGIS_ASSERT(r->recv.received == total);
    recv_drop(r);
    if (aegis__log_term_at(&r->log, meta.index) == meta.term) {
        /* Our log already holds the snapshot's last entry: just learn that it is
         * committed (thesis §5.3: keep the entries that follow). */
        aegis__raft_commit_to(r, meta.index);
        return;
    }
    aegis__raft_trace(r, "snapshot_install", meta.index, meta.term);
    aegis__log_reset(&r->log, meta.index, meta.term);
    r->snap_meta = meta;
    r->snap_bytes = total;
    r->snap_out = true;
    r->snap_asked = false;
    r->unstable_from = meta.index + 1;
    r->persisted_index = meta.index;
    r->handed_commit = meta.index;
    r->applied = meta.index;
    r->base_conf = meta.conf;
    aegis__raft_conf_set(r, &meta.conf, 0);
}

/* All bytes of the offer are in: have the sink verify them. Returns 0 or
 * AEGIS_ECORRUPT (refused). */
static int finish(struct aegis_raft *r)
{
    aegis_node_id leader = r->recv.leader;
    aegis_index index = r->recv.meta.index;
    uint64_t total = r->recv.total;
    int rv;

    AEGIS_ASSERT(r->recv.active && !r->recv.finishing);
    rv = r->cfg.snapshot_io.recv_finish(r->cfg.snapshot_io.data, &r->recv.meta, total);
    if (rv == AEGIS_EAGAIN) {
        r->recv.finishing = true; /* aegis__raft_snapshot_verified() goes on. */
        return 0;
    }
    if (rv != 0) {
        aegis__raft_trace(r, "snapshot_refused", index, r->recv.meta.term);
        recv_drop(r);
        reply_snapshot(r, leader, index, false, 0);
        return AEGIS_ECORRUPT;
    }
    install(r);
    reply_snapshot(r, leader, index, true, total);
    return 0;
}

int aegis__raft_snapshot_verified(struct aegis_raft *r, aegis_index index, aegis_term term,
                                  int status)
{
    aegis_node_id leader = r->recv.leader;
    uint64_t total = r->recv.total;

    if (!r->recv.active || !r->recv.finishing || r->recv.meta.index != index ||
        r->recv.meta.term != term) {
        return AEGIS_ESTALE;
    }
    if (r->role == AEGIS_ROLE_LEADER) {
        recv_drop(r); /* Elected meanwhile: our log holds every committed entry. */
        return AEGIS_ESTALE;
    }
    if (status != 0 || index <= r->log.commit) {
        if (status != 0) {
            aegis__raft_trace(r, "snapshot_refused", index, term);
        }
        recv_drop(r);
        reply_snapshot(r, leader, index, status == 0, status == 0 ? total : 0);
        return 0;
    }
    install(r);
    reply_snapshot(r, leader, index, true, total);
    return 0;
}

/* Whether @m belongs to the offer in progress (same leader, snapshot and size). */
static bool same_offer(const struct aegis_raft *r, const struct aegis_msg *m)
{
    const struct aegis_snapshot_req *s = &m->snapshot_req;

    return r->recv.active && r->recv.leader == m->from && r->recv.meta.index == s->meta.index &&
           r->recv.meta.term == s->meta.term && r->recv.total == s->total_bytes;
}

/* Make @m's offer the one in progress. Returns false when the sink refuses it. */
static bool open_offer(struct aegis_raft *r, const struct aegis_msg *m)
{
    const struct aegis_snapshot_req *s = &m->snapshot_req;
    uint64_t have = 0;
    int rv;

    recv_drop(r);
    rv = r->cfg.snapshot_io.recv_open(r->cfg.snapshot_io.data, &s->meta, m->from,
                                      s->total_bytes, &have);
    if (rv != 0 || have > s->total_bytes) {
        return false;
    }
    r->recv.active = true;
    r->recv.meta = s->meta;
    r->recv.leader = m->from;
    r->recv.total = s->total_bytes;
    r->recv.received = have;
    if (have > 0) {
        aegis__raft_trace(r, "snapshot_resume", s->meta.index, have);
    }
    return true;
}

/* A chunk of the offer in progress. Returns 0 or AEGIS_ECORRUPT (refused at finish). */
static int take_chunk(struct aegis_raft *r, const struct aegis_msg *m)
{
    const struct aegis_snapshot_req *s = &m->snapshot_req;
    uint64_t len = s->chunk != NULL ? s->chunk->len : 0;
    int rv;

    AEGIS_ASSERT(same_offer(r, m));
    if (r->recv.finishing) {
        return 0; /* Being verified: the answer comes with the verdict. */
    }
    if (s->offset > r->recv.received ||
        (s->offset < r->recv.received && s->offset + len > r->recv.received)) {
        /* Beyond what we hold (a chunk was lost), or straddling it (never from a correct
         * leader of this offer): send again from what we hold. */
        reply_snapshot(r, m->from, s->meta.index, false, r->recv.received);
        return 0;
    }
    if (s->offset == r->recv.received && len > 0) {
        rv = r->cfg.snapshot_io.recv_write(r->cfg.snapshot_io.data, &r->recv.meta, s->offset,
                                           s->chunk);
        if (rv != 0) {
            aegis__raft_trace(r, "snapshot_write_failed", s->meta.index, s->offset);
            recv_drop(r);
            reply_snapshot(r, m->from, s->meta.index, false, 0);
            return 0;
        }
        r->recv.received += len;
    }
    AEGIS_ASSERT(r->recv.received <= r->recv.total);
    if (r->recv.received == r->recv.total) {
        return finish(r);
    }
    reply_snapshot(r, m->from, s->meta.index, true, r->recv.received);
    return 0;
}

int aegis__raft_handle_snapshot_req(struct aegis_raft *r, const struct aegis_msg *m)
{
    const struct aegis_snapshot_req *s = &m->snapshot_req;

    /* aegis__msg_validate checked the metadata and the chunk's bounds. */
    AEGIS_ASSERT(aegis__conf_valid(&s->meta.conf) && s->meta.index > 0 && s->meta.term > 0 &&
                 s->meta.term <= m->term);
    AEGIS_ASSERT(s->total_bytes <= AEGIS_SNAPSHOT_BYTES_MAX);
    if (s->meta.index <= r->log.commit ||
        aegis__log_term_at(&r->log, s->meta.index) == s->meta.term) {
        /* Nothing to install: committed already, or our log holds its last entry (then it
         * is committed: thesis §5.3, keep the entries that follow). */
        if (s->meta.index > r->log.commit) {
            aegis__raft_commit_to(r, s->meta.index);
        }
        if (r->recv.active && r->recv.meta.index <= s->meta.index) {
            recv_drop(r);
        }
        reply_snapshot(r, m->from, s->meta.index, true, s->total_bytes);
        return 0;
    }
    if (r->cfg.snapshot_io.recv_open == NULL) {
        reply_snapshot(r, m->from, s->meta.index, false, 0); /* We take in no snapshot. */
        return 0;
    }
    if (r->snap_out) {
        /* A snapshot installed from the sink waits for the next ready: the sink is not
         * reopened before the runtime took it. The leader sends again after a timeout. */
        return 0;
    }
    if (!same_offer(r, m)) {
        if (r->recv.active && s->offset != 0) {
            /* A chunk of another offer while one is in progress: a late one, or a new
             * leader that should start at 0. Start that offer from 0 if it is current. */
            reply_snapshot(r, m->from, s->meta.index, false, 0);
            return 0;
        }
        if (!open_offer(r, m)) {
            reply_snapshot(r, m->from, s->meta.index, false, 0);
            return 0;
        }
    }
    return take_chunk(r, m);
}

void aegis__raft_handle_snapshot_resp(struct aegis_raft *r, struct aegis_progress *pr,
                                      const struct aegis_msg *m)
{
    const struct aegis_snapshot_resp *s = &m->snapshot_resp;

    if (pr->state != AEGIS_PROGRESS_SNAPSHOT || s->index != pr->snap_meta.index ||
        s->next_offset > pr->snap_total) {
        return; /* Stale, or a broken peer. */
    }
    if (s->success && s->next_offset == pr->snap_total) {
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
    if (s->success) {
        if (s->next_offset <= pr->snap_acked) {
            return; /* An older answer: nothing new. */
        }
        pr->snap_acked = s->next_offset;
        if (pr->snap_next < pr->snap_acked) {
            pr->snap_next = pr->snap_acked; /* It held more already: resume there. */
        }
        pr->snap_rewound = false;
        pr->snap_idle_ticks = 0;
    } else {
        if (s->next_offset == pr->snap_acked && pr->snap_rewound) {
            return; /* This loss was handled: answers to the chunks that followed it. */
        }
        pr->snap_acked = s->next_offset;
        pr->snap_next = s->next_offset;
        pr->snap_done_sent = false;
        pr->snap_rewound = true;
        pr->snap_idle_ticks = 0;
    }
    AEGIS_ASSERT(pr->snap_acked <= pr->snap_next);
    aegis__raft_send_snapshot_chunks(r, pr);
}

int aegis__raft_snapshot_taken(struct aegis_raft *r, const struct aegis_snapshot_meta *meta,
                               uint64_t total_bytes)
{
    struct aegis_conf conf;
    aegis_index compact_to;
    int rv;

    if (total_bytes > AEGIS_SNAPSHOT_BYTES_MAX) {
        return AEGIS_EINVAL;
    }
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
    r->snap_bytes = total_bytes;
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
