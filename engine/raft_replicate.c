/* SPDX-License-Identifier: MIT */
/* Log replication (§5.3, §5.4.2, thesis §3.5, §10.2.1): AppendEntries out and in,
 * heartbeats, and the commit rule.
 *
 * The leader keeps one struct aegis_progress per other member (progress.h): PROBE sends
 * one AppendEntries at a time until the logs are known to match; REPLICATE streams
 * AppendEntries optimistically within the in-flight window, each message at most
 * append_bytes_max of payload (and AEGIS_RAFT_APPEND_ENTRIES_MAX entries). A rejection
 * carries the follower's conflict hint (term at prev_index and the first index of that
 * term), so the leader skips back a whole term per round trip instead of one entry.
 * A rejection echoes the rejected prev_index in append_resp.match_index, which lets the
 * leader ignore rejections of messages older than what it already knows.
 *
 * Persistence (thesis §10.2.1): the leader sends entries before its own write is durable
 * and counts itself toward the quorum only up to the index the runtime reported durable
 * (aegis__raft_persisted). A follower's acknowledgement goes in msgs_after_persist, so it
 * leaves only once the entries it acknowledges are durable.
 *
 * Commit (§5.4.2, Figure 8): the leader commits the highest index a quorum of voters
 * holds, and only if that entry belongs to its current term; earlier entries commit
 * indirectly. Heartbeats carry min(commit, the follower's match) so that a follower never
 * marks as committed an entry it may not hold.
 *
 * Reading evicted entries back (config.log_cache_bytes, engine/log.h). When the entries a
 * follower needs next are on disk only, the leader asks the runtime for a range through
 * the ready (rd.fetch: from the follower's next index, AEGIS_RAFT_FETCH_ENTRIES_MAX
 * entries or AEGIS_RAFT_FETCH_BYTES_MAX bytes) and sends nothing to that follower until
 * the answer (aegis__raft_fetched) fills the log's read-back window; then every follower
 * is offered what it can use. One fetch is outstanding at a time; a follower that sent
 * the window's last entry asks for the next range at once, so disk reads overlap with
 * the network. A follower whose next index is at or below the compaction point still
 * gets the snapshot. A failed read compacts the log up to the latest snapshot (so the
 * followers behind it get the snapshot) and backs off an election timeout before the
 * next request, so a corrupt segment costs a loud error, never a busy loop. */
#include <string.h>

#include <aegis/error.h>

#include "engine/assert.h"
#include "engine/raft_impl.h"

int aegis__raft_append_local(struct aegis_raft *r, uint8_t type, struct aegis_buf *buf,
                             aegis_index *index_out)
{
    struct aegis_entry e = {
        .index = aegis__log_last_index(&r->log) + 1,
        .term = r->term,
        .type = type,
        .buf = buf,
    };
    int rv;

    AEGIS_ASSERT(r->role == AEGIS_ROLE_LEADER);
    rv = aegis__log_append(&r->log, &e);
    if (rv != 0) {
        return rv;
    }
    if (type == AEGIS_ENTRY_CONFIG_CHANGE) {
        aegis__raft_conf_appended(r, &e);
    }
    if (index_out != NULL) {
        *index_out = e.index;
    }
    /* A single-voter cluster commits as soon as the entry is durable; nothing to do
     * here, aegis__raft_persisted() advances the commit index. */
    return 0;
}

/* Switch @pr to sending the snapshot when the entries it needs are compacted. Returns
 * true when it did. */
static bool need_snapshot(struct aegis_raft *r, struct aegis_progress *pr)
{
    if (pr->next > r->log.offset) {
        return false;
    }
    if (r->snap_meta.index == 0 || r->cfg.snapshot_io.read == NULL) {
        return true; /* Nothing to send from: stay stuck, loudly. */
    }
    aegis__raft_trace(r, "snapshot_send", pr->id, r->snap_meta.index);
    aegis__progress_to_snapshot(pr, &r->snap_meta, r->snap_bytes);
    aegis__raft_send_snapshot_chunks(r, pr);
    return true;
}

/* Ask the runtime for evicted entries from @from (one fetch at a time). */
static void request_fetch(struct aegis_raft *r, aegis_index from)
{
    if (r->fetch.from != 0 || r->fetch.backoff > 0) {
        return;
    }
    r->fetch.from = from;
    r->fetch.handed = false;
    aegis__raft_trace(r, "fetch", from, aegis__log_first_index(&r->log));
}

/* Count the entries of an AppendEntries by where they came from. */
static void count_sent(struct aegis_raft *r, const struct aegis_entry *slots, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (aegis__log_in_window(&r->log, slots[i].index) && slots[i].index <= r->log.ring_base) {
            r->fetch.sent_disk++;
        } else {
            r->fetch.sent_cache++;
        }
    }
}

/* Queue one AppendEntries to @pr if its state allows. Returns true when a message with
 * entries went out (so the caller may try another). */
static bool send_one_append(struct aegis_raft *r, struct aegis_progress *pr, bool allow_empty)
{
    aegis_index prev = pr->next - 1;
    struct aegis_entry *slots;
    struct aegis_msg *m;
    uint64_t bytes = 0;
    uint32_t n;

    if (pr->state == AEGIS_PROGRESS_SNAPSHOT || need_snapshot(r, pr) ||
        (pr->state == AEGIS_PROGRESS_PROBE && pr->probe_sent) ||
        (pr->state == AEGIS_PROGRESS_REPLICATE &&
         !aegis__progress_window_open(pr, r->cfg.inflight_bytes_max))) {
        return false;
    }
    if (pr->next > aegis__log_last_index(&r->log) && !allow_empty &&
        pr->state == AEGIS_PROGRESS_REPLICATE) {
        return false;
    }
    if (aegis__log_on_disk(&r->log, pr->next)) {
        request_fetch(r, pr->next); /* Resumed by aegis__raft_fetched. */
        return false;
    }
    m = aegis__raft_push(r, AEGIS_MSG_APPEND_REQ, pr->id, false);
    if (m == NULL) {
        return false;
    }
    m->append_req.prev_index = prev;
    m->append_req.prev_term = aegis__log_term_at(&r->log, prev);
    m->append_req.commit = r->log.commit;
    slots = aegis__raft_push_entries(r, m, AEGIS_RAFT_APPEND_ENTRIES_MAX);
    n = slots == NULL ? 0
                      : aegis__log_range(&r->log, pr->next, AEGIS_RAFT_APPEND_ENTRIES_MAX,
                                         r->cfg.append_bytes_max, slots);
    r->boxes[r->cur].pool_count += n;
    m->append_req.entries_count = n;
    for (uint32_t i = 0; i < n; i++) {
        bytes += aegis__entry_len(&slots[i]);
    }
    count_sent(r, slots, n);
    if (n > 0 && aegis__log_on_disk(&r->log, pr->next + n)) {
        request_fetch(r, pr->next + n); /* The next range, while this one travels. */
    }
    if (pr->state == AEGIS_PROGRESS_PROBE) {
        pr->probe_sent = true;
    } else if (n > 0) {
        aegis__progress_sent(pr, prev + n, bytes);
    }
    return n > 0;
}

void aegis__raft_send_append(struct aegis_raft *r, struct aegis_progress *pr, bool allow_empty)
{
    (void)send_one_append(r, pr, allow_empty);
}

void aegis__raft_send_appends(struct aegis_raft *r, struct aegis_progress *pr)
{
    /* Bounded by the window (inflight_msgs_max) in REPLICATE, one message otherwise. */
    while (send_one_append(r, pr, false) && pr->state == AEGIS_PROGRESS_REPLICATE) {
    }
}

void aegis__raft_broadcast_appends(struct aegis_raft *r)
{
    for (uint32_t i = 0; i < AEGIS_MEMBERS_MAX; i++) {
        if (r->prs[i].id != AEGIS_NODE_NONE) {
            aegis__raft_send_appends(r, &r->prs[i]);
        }
    }
}

void aegis__raft_broadcast_heartbeat(struct aegis_raft *r, uint64_t read_ctx)
{
    for (uint32_t i = 0; i < AEGIS_MEMBERS_MAX; i++) {
        struct aegis_progress *pr = &r->prs[i];
        struct aegis_msg *m;

        if (pr->id == AEGIS_NODE_NONE) {
            continue;
        }
        m = aegis__raft_push(r, AEGIS_MSG_HEARTBEAT, pr->id, false);
        if (m == NULL) {
            return;
        }
        m->heartbeat.commit = r->log.commit < pr->match ? r->log.commit : pr->match;
        m->heartbeat.read_ctx = read_ctx;
    }
}

void aegis__raft_commit_to(struct aegis_raft *r, aegis_index index)
{
    aegis_index before = r->log.commit;

    if (index <= before) {
        return;
    }
    AEGIS_ASSERT(index <= aegis__log_last_index(&r->log));
    aegis__log_commit(&r->log, index);
    aegis__raft_trace(r, "commit", before, index);
    if (r->role == AEGIS_ROLE_LEADER) {
        aegis__raft_reads_on_commit(r);
        aegis__raft_conf_on_commit(r);
    }
}

/* The index that the @k-th largest of the voters' matches reaches. */
void aegis__raft_maybe_commit(struct aegis_raft *r)
{
    aegis_index matches[AEGIS_MEMBERS_MAX];
    uint32_t n = 0, quorum = aegis__conf_quorum(&r->conf);
    aegis_index candidate;

    AEGIS_ASSERT(r->role == AEGIS_ROLE_LEADER);
    if (aegis__raft_promotable(r)) {
        matches[n++] = r->persisted_index;
    }
    for (uint32_t i = 0; i < AEGIS_MEMBERS_MAX; i++) {
        if (r->prs[i].id != AEGIS_NODE_NONE && aegis__conf_is_voter(&r->conf, r->prs[i].id)) {
            matches[n++] = r->prs[i].match;
        }
    }
    if (n < quorum) {
        return;
    }
    /* Insertion sort, descending: at most AEGIS_MEMBERS_MAX values. */
    for (uint32_t i = 1; i < n; i++) {
        for (uint32_t j = i; j > 0 && matches[j] > matches[j - 1]; j--) {
            aegis_index t = matches[j];

            matches[j] = matches[j - 1];
            matches[j - 1] = t;
        }
    }
    candidate = matches[quorum - 1];
    if (candidate <= r->log.commit || candidate > aegis__log_last_index(&r->log)) {
        return;
    }
    if (aegis__log_term_at(&r->log, candidate) != r->term &&
        !aegis__raft_bug(r, AEGIS_RAFT_BUG_COMMIT_OLD_TERM)) {
        return; /* Figure 8: never commit an earlier term's entry by counting replicas. */
    }
    aegis__raft_commit_to(r, candidate);
}

static void reply_append(struct aegis_raft *r, const struct aegis_msg *m,
                         const struct aegis_log_match *res, aegis_index match)
{
    /* An acknowledgement leaves only once what it acknowledges is durable (unless the
     * injected bug says otherwise). */
    bool after = !aegis__raft_bug(r, AEGIS_RAFT_BUG_ACK_BEFORE_DURABLE);
    struct aegis_msg *resp = aegis__raft_push(r, AEGIS_MSG_APPEND_RESP, m->from, after);

    if (resp == NULL) {
        return;
    }
    resp->append_resp.last_index = aegis__log_last_index(&r->log);
    if (res->ok) {
        resp->append_resp.success = true;
        resp->append_resp.match_index = match;
    } else {
        resp->append_resp.match_index = m->append_req.prev_index; /* The rejected index. */
        resp->append_resp.conflict_index = res->hint_index;
        resp->append_resp.conflict_term = res->hint_term;
    }
}

/* Replace the log's suffix from @first_new with @entries (starting at @prev + 1). */
static int append_new(struct aegis_raft *r, aegis_index prev, const struct aegis_entry *entries,
                      uint32_t n, aegis_index first_new)
{
    int rv;

    if (first_new <= aegis__log_last_index(&r->log)) {
        rv = aegis__log_truncate(&r->log, first_new - 1);
        if (rv != 0) {
            return AEGIS_ECORRUPT; /* The leader contradicts a committed entry. */
        }
        if (r->unstable_from > first_new) {
            r->unstable_from = first_new;
        }
        if (r->persisted_index >= first_new) {
            r->persisted_index = first_new - 1;
        }
        aegis__raft_conf_truncated(r);
    }
    for (aegis_index i = first_new; i <= prev + n; i++) {
        const struct aegis_entry *e = &entries[i - prev - 1];

        rv = aegis__log_append(&r->log, e);
        if (rv != 0) {
            return rv;
        }
        if (e->type == AEGIS_ENTRY_CONFIG_CHANGE) {
            aegis__raft_conf_appended(r, e);
        }
    }
    return 0;
}

int aegis__raft_handle_append_req(struct aegis_raft *r, const struct aegis_msg *m)
{
    aegis_index prev = m->append_req.prev_index;
    aegis_term prev_term = m->append_req.prev_term;
    const struct aegis_entry *entries = m->append_req.entries;
    uint32_t n = m->append_req.entries_count;
    aegis_index commit = r->log.commit;
    struct aegis_log_match res;
    int rv;

    /* aegis__msg_validate (in step) checked the entries' indexes, terms and types, and
     * that prev_index + n stays below AEGIS_INDEX_MAX. */
    if (prev < commit) {
        /* Everything up to our commit index is known to match: skip it. */
        uint32_t skip = commit - prev >= n ? n : (uint32_t)(commit - prev);

        entries += skip;
        n -= skip;
        prev = n > 0 ? commit : prev + skip;
        prev_term = aegis__log_term_at(&r->log, prev);
    }
    aegis__log_match(&r->log, prev, prev_term, entries, n, &res);
    if (res.ok && res.first_new != 0) {
        rv = append_new(r, prev, entries, n, res.first_new);
        if (rv != 0) {
            return rv;
        }
    }
    if (res.ok) {
        aegis_index last_new = prev + n;

        aegis__raft_commit_to(r, m->append_req.commit < last_new ? m->append_req.commit
                                                                  : last_new);
        reply_append(r, m, &res, last_new);
    } else {
        reply_append(r, m, &res, 0);
    }
    return 0;
}

static void handle_reject(struct aegis_raft *r, struct aegis_progress *pr,
                          const struct aegis_append_resp *a)
{
    aegis_index rejected = a->match_index;
    aegis_index next = a->conflict_index;

    if (pr->state == AEGIS_PROGRESS_SNAPSHOT ||
        (pr->state == AEGIS_PROGRESS_REPLICATE && rejected <= pr->match) ||
        (pr->state == AEGIS_PROGRESS_PROBE && rejected != pr->next - 1)) {
        return; /* Stale: answers a message older than what we know. */
    }
    if (a->conflict_term != 0) {
        aegis_index k = aegis__log_last_of_term(&r->log, a->conflict_term, rejected);

        next = k != 0 ? k + 1 : a->conflict_index;
    }
    if (next > rejected) {
        next = rejected; /* Always move back at least one entry. */
    }
    aegis__progress_to_probe(pr);
    if (next > pr->match) {
        pr->next = next;
    }
    aegis__raft_send_append(r, pr, true);
}

void aegis__raft_handle_append_resp(struct aegis_raft *r, struct aegis_progress *pr,
                                    const struct aegis_msg *m)
{
    const struct aegis_append_resp *a = &m->append_resp;

    if (!a->success) {
        handle_reject(r, pr, a);
        return;
    }
    if (a->match_index > aegis__log_last_index(&r->log)) {
        return; /* Claims entries we never sent: a broken peer. */
    }
    if (aegis__progress_ack(pr, a->match_index)) {
        aegis__raft_maybe_commit(r);
        if (r->role != AEGIS_ROLE_LEADER) {
            return; /* Committing our own removal made us step down. */
        }
    }
    if (pr->state == AEGIS_PROGRESS_PROBE) {
        aegis__progress_to_replicate(pr);
    } else if (pr->state == AEGIS_PROGRESS_SNAPSHOT && pr->match >= pr->snap_meta.index) {
        aegis__progress_to_probe(pr);
    }
    aegis__raft_transfer_check(r, pr);
    aegis__raft_send_appends(r, pr);
}

void aegis__raft_handle_heartbeat(struct aegis_raft *r, const struct aegis_msg *m)
{
    aegis_index last = aegis__log_last_index(&r->log);
    struct aegis_msg *resp;

    aegis__raft_commit_to(r, m->heartbeat.commit < last ? m->heartbeat.commit : last);
    resp = aegis__raft_push(r, AEGIS_MSG_HEARTBEAT_RESP, m->from, true);
    if (resp != NULL) {
        resp->heartbeat_resp.read_ctx = m->heartbeat.read_ctx;
    }
}

void aegis__raft_handle_heartbeat_resp(struct aegis_raft *r, struct aegis_progress *pr,
                                       const struct aegis_msg *m)
{
    aegis__raft_reads_on_ack(r, pr, m->heartbeat_resp.read_ctx);
    if (r->role != AEGIS_ROLE_LEADER || pr->match >= aegis__log_last_index(&r->log)) {
        return;
    }
    switch (pr->state) {
    case AEGIS_PROGRESS_PROBE:
        pr->probe_sent = false;
        aegis__raft_send_append(r, pr, true);
        break;
    case AEGIS_PROGRESS_REPLICATE:
        /* Behind with everything sent: messages or answers may have been lost. An empty
         * AppendEntries at next - 1 settles it (etcd does the same): the follower either
         * acknowledges up to there or rejects, which sends us back to PROBE. */
        /* The window may be closed by bytes as well as by count (found by the
         * simulation: a window full of large entries, all lost, stalled forever). */
        if (pr->inflights_count > 0 &&
            !aegis__progress_window_open(pr, r->cfg.inflight_bytes_max)) {
            aegis__progress_free_first(pr);
        }
        aegis__raft_send_append(r, pr, true);
        break;
    default:
        break; /* SNAPSHOT: chunks have their own retransmission timer. */
    }
}

void aegis__raft_compact_log(struct aegis_raft *r, aegis_index index)
{
    struct aegis_conf conf;
    int rv;

    AEGIS_ASSERT(index <= r->log.commit);
    if (index <= r->log.offset) {
        return;
    }
    rv = aegis__raft_conf_at(r, index, &conf);
    AEGIS_ASSERT(rv == 0);
    rv = aegis__log_compact(&r->log, index);
    AEGIS_ASSERT(rv == 0);
    r->base_conf = conf;
    aegis__raft_trace(r, "compact", index, r->snap_meta.index);
}

void aegis__raft_compact(struct aegis_raft *r, aegis_index index)
{
    if (index > r->snap_meta.index) {
        index = r->snap_meta.index; /* Only a snapshot stands for compacted entries. */
    }
    if (index > r->log.commit) {
        index = r->log.commit;
    }
    aegis__raft_compact_log(r, index);
}

int aegis__raft_fetched(struct aegis_raft *r, aegis_index from, const struct aegis_entry *entries,
                        uint32_t n, int err)
{
    if (r->fetch.from == 0 || from != r->fetch.from) {
        return 0; /* Answers nothing pending (a request dropped by a reset). */
    }
    r->fetch.from = 0;
    r->fetch.handed = false;
    if (err == 0 && (n == 0 || entries[0].index != from)) {
        err = n == 0 ? AEGIS_ECOMPACTED : AEGIS_ECORRUPT;
    }
    if (err == 0) {
        err = aegis__log_window_set(&r->log, entries, n);
    }
    if (err != 0) {
        aegis_index to = r->snap_meta.index < r->log.ring_base ? r->snap_meta.index
                                                               : r->log.ring_base;

        r->fetch.errors++;
        r->fetch.backoff = r->cfg.election_timeout_min_ticks;
        aegis__raft_trace(r, "fetch_failed", from, (uint64_t)(-err));
        aegis__raft_compact_log(r, to < r->log.commit ? to : r->log.commit);
    } else {
        r->fetch.done++;
    }
    if (r->role == AEGIS_ROLE_LEADER) {
        aegis__raft_broadcast_appends(r);
    }
    return err;
}

void aegis__raft_log_stats(const struct aegis_raft *r, struct aegis_raft_log_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->cache_bytes = r->log.cache_bytes;
    out->cache_entries = r->log.count;
    out->first_index = aegis__log_first_index(&r->log);
    out->cache_first = r->log.ring_base + 1;
    out->sent_from_cache = r->fetch.sent_cache;
    out->sent_from_disk = r->fetch.sent_disk;
    out->fetches = r->fetch.done;
    out->fetch_errors = r->fetch.errors;
}

void aegis__raft_tick_snapshots(struct aegis_raft *r)
{
    if (r->fetch.backoff > 0) {
        r->fetch.backoff--;
    }
    for (uint32_t i = 0; i < AEGIS_MEMBERS_MAX; i++) {
        struct aegis_progress *pr = &r->prs[i];

        if (pr->id == AEGIS_NODE_NONE || pr->state != AEGIS_PROGRESS_SNAPSHOT) {
            continue;
        }
        if (pr->snap_next == pr->snap_acked && !pr->snap_done_sent) {
            aegis__raft_send_snapshot_chunks(r, pr); /* Nothing out: the source waited. */
            continue;
        }
        if (++pr->snap_idle_ticks >= r->cfg.election_timeout_min_ticks) {
            /* No progress for a timeout: chunks or answers were lost; go back to what the
             * follower holds. */
            pr->snap_next = pr->snap_acked;
            pr->snap_done_sent = false;
            pr->snap_idle_ticks = 0;
            aegis__raft_send_snapshot_chunks(r, pr);
        }
    }
}
