/* SPDX-License-Identifier: MIT */
/* The raft thread (aegis-raft): owns the Raft core and routes its ready output.
 *
 * One pass of its loop: fire due ticks; drain the peer ring (step each message), the
 * log thread's durable reports (aegis__raft_persisted, then release the messages that
 * waited for durability), the apply thread's reports (applied index, snapshots taken)
 * and the inbox (proposals, reads, membership); then turn every ready into work for the
 * other threads. Nothing here blocks except the final sleep on the raft waker, bounded by
 * the next tick.
 *
 * Ready routing (the contract of engine/raft.h):
 *   hard state + entries (+ a received snapshot)  -> log thread, as one request with a
 *                                                    sequence number;
 *   msgs                                          -> net thread at once (thesis §10.2.1:
 *                                                    the leader sends while it writes);
 *   msgs_after_persist                            -> held until the log thread reports
 *                                                    that request's sequence durable;
 *   committed entries, reads, snapshot installs   -> apply ring, in order.
 *
 * Proposals from a follower are forwarded to the leader as CLIENT_REQ; the leader
 * registers them with the apply thread, which answers with CLIENT_RESP once applied.
 * Reads gathered during one pass share one ReadIndex round.
 *
 * Storage fail-stop: when the log thread reports that a log or hard state write or sync
 * failed, the node stops driving the core at once: no more ticks (no heartbeat, no
 * election), no peer message stepped (no vote), no ready routed, and the messages held
 * for durability are dropped, so nothing that depends on state that is not durable ever
 * leaves. To its peers it is as good as dead: they elect another leader once their
 * election timeout passes. Requests are answered AEGIS_ESTORAGE (a follower's forwarded
 * command: AEGIS_ENOTLEADER, it was not proposed), and config.fail_stop_ms later the
 * fail hook runs once (aegisd exits with status 3 so that a supervisor restarts it). */
#include <string.h>

#include "engine/conf.h"
#include "net/codec.h"
#include "pipeline/envelope.h"
#include "pipeline/log_reader.h"
#include "pipeline/logging.h"
#include "pipeline/node_int.h"
#include "pipeline/probes.h"

#define FORWARD_TIMEOUT_TICKS(n) (10000u / (n)->config.tick_ms)
#define READ_TIMEOUT_TICKS(n) (5000u / (n)->config.tick_ms)
#define HELD_MAX 65536u
#define SNAPSHOT_RETRY_TICKS(n) (10000u / (n)->config.tick_ms)

static void send_post(struct aegis_node *n, void *arg, uint64_t u)
{
    (void)u;
    aegis__net_send_msg(n, arg);
}

/* Counters, stage samples and probes of a message leaving the raft thread (metrics.h). */
static void note_sent(struct aegis_node *n, const struct aegis_msg *m)
{
    struct aegis_metrics *mx = &n->metrics;

    if (m->type == AEGIS_MSG_APPEND_REQ) {
        aegis__metrics_add(mx, AEGIS_MT_RAFT, AEGIS_MC_APPEND_SENT, 1);
        aegis__metrics_add(mx, AEGIS_MT_RAFT, AEGIS_MC_APPEND_ENTRIES_SENT,
                           m->append_req.entries_count);
        if (m->append_req.entries_count > 0) {
            aegis__metrics_record(mx, AEGIS_MH_APPEND_ENTRIES, m->append_req.entries_count);
        }
        AEGIS_PROBE3(append_sent, m->to, m->append_req.prev_index, m->append_req.entries_count);
    } else if (m->type == AEGIS_MSG_APPEND_RESP && m->append_resp.success) {
        aegis__metrics_add(mx, AEGIS_MT_RAFT, AEGIS_MC_APPEND_ACKED, 1);
        aegis__metrics_acked(mx, m->append_resp.match_index, aegis__now_ns());
        AEGIS_PROBE2(append_acked, m->to, m->append_resp.match_index);
    } else if (m->type == AEGIS_MSG_SNAPSHOT_REQ && m->snapshot_req.done) {
        aegis__metrics_add(mx, AEGIS_MT_RAFT, AEGIS_MC_SNAPSHOTS_SENT, 1);
    }
}

/* Send a copy of @m (the original stays the core's). */
static void send_copy(struct aegis_node *n, const struct aegis_msg *m)
{
    struct aegis_msg *copy = aegis__malloc(n->alloc, sizeof(*copy));
    struct aegis_net_post p;

    note_sent(n, m);
    if (copy == NULL || aegis__msg_clone(copy, m, n->alloc) != 0) {
        aegis__free(n->alloc, copy);
        return; /* Dropped: Raft retransmits. */
    }
    p = (struct aegis_net_post){.fn = send_post, .arg = copy};
    aegis__net_post_from_raft(n, &p);
}

/* Items a ring had no room for wait in a backlog array on the raft thread, in order, and
 * go out first at the next flush. Two backlogs use these: the apply ring's and the log
 * ring's. Grows by doubling; the callers say what bounds them. */
static void *backlog_append(const struct aegis_allocator *a, void **items, uint32_t *count,
                            uint32_t *cap, size_t item_size)
{
    if (*count == *cap) {
        uint32_t grown = *cap != 0 ? *cap * 2 : 1024;
        void *p = aegis__realloc(a, *items, grown * item_size);

        AEGIS_ASSERT(p != NULL);
        *items = p;
        *cap = grown;
    }
    return (char *)*items + (size_t)(*count)++ * item_size;
}

/* Drop the first @done items (now in the ring). */
static void backlog_drop(void *items, uint32_t *count, uint32_t done, size_t item_size)
{
    AEGIS_ASSERT(done <= *count);
    if (done == 0) {
        return; /* @items may still be NULL: nothing was ever backlogged. */
    }
    memmove(items, (char *)items + (size_t)done * item_size, (*count - done) * item_size);
    *count -= done;
}

static void apply_push(struct aegis_node *n, const struct aegis_apply_item *it)
{
    struct aegis_apply_item *slot;

    /* Keep order: once something waits in the backlog, everything goes behind it. */
    if (n->apply_backlog_count == 0 && aegis__ring_apply_push_sp(&n->apply_ring, it)) {
        return;
    }
    aegis__metrics_add(&n->metrics, AEGIS_MT_RAFT, AEGIS_MC_RING_FULL_APPLY, 1);
    /* Bounded by the commit - applied gap, itself bounded by the log. */
    slot = backlog_append(n->alloc, (void **)&n->apply_backlog, &n->apply_backlog_count,
                          &n->apply_backlog_cap, sizeof(*slot));
    *slot = *it;
}

static void apply_flush_backlog(struct aegis_node *n)
{
    uint32_t done = 0;

    while (done < n->apply_backlog_count &&
           aegis__ring_apply_push_sp_defer(&n->apply_ring, &n->apply_backlog[done])) {
        done++;
    }
    if (done > 0) {
        aegis__ring_apply_wake(&n->apply_ring);
        backlog_drop(n->apply_backlog, &n->apply_backlog_count, done,
                     sizeof(*n->apply_backlog));
    }
}

static void complete_now(struct aegis_node *n, aegis_done_cb cb, void *data, int status,
                         aegis_node_id hint)
{
    struct aegis_apply_item it = {.kind = AEGIS_APPLY_COMPLETE, .status = status, .cb = cb,
                                  .data = data, .leader_hint = hint};

    apply_push(n, &it);
}

static void register_proposal(struct aegis_node *n, aegis_index index, aegis_done_cb cb,
                              void *data, aegis_node_id remote, uint64_t request_id)
{
    struct aegis_apply_item it = {.kind = AEGIS_APPLY_REGISTER, .cb = cb, .data = data,
                                  .remote = remote, .request_id = request_id};

    it.entry.index = index;
    it.entry.term = aegis__raft_term(n->raft);
    __atomic_fetch_add(&n->inflight, 1, __ATOMIC_RELAXED);
    apply_push(n, &it);
}

/* Whether another proposal may be registered. Callers are stopped at the door at
 * max_pending (aegis_node_propose); this is the hard bound behind it, with slack for
 * what passed the door while the raft thread was between draining the inbox and
 * registering. A proposal refused here was never proposed: a definite failure. */
static bool inflight_room(struct aegis_node *n)
{
    return __atomic_load_n(&n->inflight, __ATOMIC_ACQUIRE) < 2 * n->config.max_pending;
}

static void reply_client(struct aegis_node *n, const struct aegis_msg *req, int status)
{
    struct aegis_msg m = {.type = AEGIS_MSG_CLIENT_RESP, .from = n->config.id,
                          .to = req->from};

    m.client_resp.request_id = req->client_req.request_id;
    m.client_resp.status = status;
    m.client_resp.leader_hint = aegis__raft_leader(n->raft);
    send_copy(n, &m);
}

/* A forwarded admin request's completion on the leader: answer the follower. Runs where
 * completions run (the apply thread; the stopping thread for leftovers at shutdown). */
struct remote_admin {
    struct aegis_node *n;
    aegis_node_id remote;
    uint64_t request_id;
};

static void remote_admin_done(void *data, const struct aegis_result *res)
{
    struct remote_admin *ra = data;
    struct aegis_node *n = ra->n;
    struct aegis_msg *m;
    struct aegis_net_post p;

    if (__atomic_load_n(&n->stopping, __ATOMIC_ACQUIRE) < 3 &&
        (m = aegis__calloc(n->alloc, 1, sizeof(*m))) != NULL) {
        m->type = AEGIS_MSG_CLIENT_RESP;
        m->from = n->config.id;
        m->to = ra->remote;
        m->client_resp.request_id = ra->request_id;
        m->client_resp.status = res->status;
        m->client_resp.leader_hint = res->leader_hint;
        m->client_resp.index = res->index;
        p = (struct aegis_net_post){.fn = send_post, .arg = m};
        aegis__net_post_from_apply(n, &p);
    } /* Else the follower times the request out as unknown. */
    aegis__free(n->alloc, ra);
}

static void handle_req(struct aegis_node *n, struct aegis_req *q, uint64_t now);

/* A follower forwarded an admin request ('A' envelope): run it as if asked here. Not
 * forwarded again when this node no longer leads (no ping-pong between two nodes that
 * each believe the other leads): the follower gets AEGIS_ENOTLEADER and its client
 * retries. */
static void handle_admin_req(struct aegis_node *n, const struct aegis_msg *m, uint64_t recv_ns)
{
    const struct aegis_buf *cmd = m->client_req.command;
    struct aegis_req q = {.stamp_ns = recv_ns};
    struct remote_admin *ra;
    uint8_t op;

    if (aegis__env_admin_decode(cmd->data + 1, cmd->len - 1, &op, &q.target, &q.peer) != 0) {
        reply_client(n, m, AEGIS_EINVAL);
        return;
    }
    if (aegis__raft_role(n->raft) != AEGIS_ROLE_LEADER) {
        reply_client(n, m, AEGIS_ENOTLEADER);
        return;
    }
    ra = aegis__malloc(n->alloc, sizeof(*ra));
    if (ra == NULL) {
        reply_client(n, m, AEGIS_ENOMEM);
        return;
    }
    *ra = (struct remote_admin){.n = n, .remote = m->from,
                                .request_id = m->client_req.request_id};
    q.kind = op == AEGIS_ENV_ADMIN_ADD      ? AEGIS_REQ_ADD
             : op == AEGIS_ENV_ADMIN_REMOVE ? AEGIS_REQ_REMOVE
                                            : AEGIS_REQ_TRANSFER;
    q.cb = remote_admin_done;
    q.data = ra;
    handle_req(n, &q, recv_ns);
}

/* A follower forwarded a client command to us; it arrived at @recv_ns. */
static void handle_client_req(struct aegis_node *n, const struct aegis_msg *m, uint64_t recv_ns)
{
    aegis_index index;
    int rv;

    if (m->client_req.command == NULL) {
        reply_client(n, m, AEGIS_EINVAL);
        return;
    }
    if (m->client_req.command->len > 0 && m->client_req.command->data[0] == AEGIS_ENV_ADMIN) {
        handle_admin_req(n, m, recv_ns);
        return;
    }
    if (!inflight_room(n)) {
        reply_client(n, m, AEGIS_EFULL);
        return;
    }
    rv = aegis__raft_propose(n->raft, AEGIS_ENTRY_COMMAND, m->client_req.command, &index);
    if (rv != 0) {
        reply_client(n, m, rv);
        return;
    }
    AEGIS_STAT_INC(n->stats.proposals);
    aegis__metrics_proposed(&n->metrics, index, recv_ns, aegis__now_ns());
    AEGIS_PROBE2(request_proposed, m->client_req.request_id, index);
    register_proposal(n, index, NULL, NULL, m->from, m->client_req.request_id);
}

/* The leader answered a command we forwarded. */
static void handle_client_resp(struct aegis_node *n, const struct aegis_msg *m)
{
    struct aegis_forward *f = &n->forwards[m->client_resp.request_id & n->forwards_mask];
    struct aegis_apply_item it;

    if (n->admin_forward.request_id == m->client_resp.request_id) {
        f = &n->admin_forward;
    }
    if (f->request_id != m->client_resp.request_id || f->request_id == 0) {
        return; /* Timed out already. */
    }
    __atomic_fetch_sub(&n->inflight, 1, __ATOMIC_RELEASE);
    it = (struct aegis_apply_item){
        .kind = AEGIS_APPLY_RESULT,
        .status = m->client_resp.status,
        .cb = f->cb,
        .data = f->data,
        .index = m->client_resp.index,
        .version = m->client_resp.version,
        .integer = m->client_resp.integer,
        .leader_hint = m->client_resp.leader_hint,
        .buf = m->client_resp.value != NULL ? aegis__buf_ref(m->client_resp.value) : NULL,
    };
    apply_push(n, &it);
    f->request_id = 0;
}

/* A peer message refused by the core (out of place): it changed nothing. It is dropped
 * and counted (peer_msgs_rejected), with a rate-limited line; the link stays. Messages
 * with impossible values never get here: the net thread refused them with
 * aegis__msg_validate and closed their link (net_thread.c on_frame). */
static void reject_peer(struct aegis_node *n, const struct aegis_msg *m, int rv)
{
    aegis__metrics_add(&n->metrics, AEGIS_MT_RAFT, AEGIS_MC_PEER_REJECTED, 1);
    AEGIS_LOG_RATELIMITED(AEGIS_LOG_WARN, "refused a %s from node %llu at term %llu: %s",
                          aegis__codec_type_name(m->type), (unsigned long long)m->from,
                          (unsigned long long)m->term, aegis_strerror(rv));
}

/* Metrics of an AppendEntries the core took: stamps only for indexes the log now holds,
 * so the walk is bounded by local state, never by the message's range. */
static void note_append_received(struct aegis_node *n, const struct aegis_msg *m,
                                 uint64_t recv_ns)
{
    aegis_index first = m->append_req.prev_index + 1;
    aegis_index last = aegis__raft_last_index(n->raft);

    aegis__metrics_add(&n->metrics, AEGIS_MT_RAFT, AEGIS_MC_APPEND_RECEIVED, 1);
    AEGIS_PROBE3(append_received, m->from, m->append_req.prev_index,
                 m->append_req.entries_count);
    if (m->append_req.entries_count == 0) {
        return;
    }
    if (m->append_req.prev_index + m->append_req.entries_count < last) {
        last = m->append_req.prev_index + m->append_req.entries_count;
    }
    if (first <= last) {
        aegis__metrics_appended(&n->metrics, first, last, recv_ns);
    }
}

static bool storage_failed(const struct aegis_node *n)
{
    return n->storage_err != 0; /* Written by this thread only. */
}

static void drain_peer(struct aegis_node *n)
{
    struct aegis_peer_msg pm;

    while (aegis__ring_peer_msg_pop_sc(&n->peer_ring, &pm)) {
        struct aegis_msg *m = pm.msg; /* Validated by the net thread (on_frame). */
        int rv;

        if (storage_failed(n) && m->type != AEGIS_MSG_CLIENT_RESP) {
            /* Fail-stopped: the core hears nothing more (it would vote or acknowledge);
             * a forwarded command was not proposed, so its follower may retry it. */
            if (m->type == AEGIS_MSG_CLIENT_REQ) {
                reply_client(n, m, AEGIS_ENOTLEADER);
            }
        } else if (m->type == AEGIS_MSG_CLIENT_REQ) {
            handle_client_req(n, m, pm.recv_ns);
        } else if (m->type == AEGIS_MSG_CLIENT_RESP) {
            handle_client_resp(n, m);
        } else if ((rv = aegis__raft_step(n->raft, m)) != 0) {
            reject_peer(n, m, rv);
        } else if (m->type == AEGIS_MSG_APPEND_REQ) {
            note_append_received(n, m, pm.recv_ns);
        }
        aegis__msg_release(m, n->alloc);
        aegis__free(n->alloc, m);
    }
}

static void release_held(struct aegis_node *n)
{
    uint32_t i = 0;

    while (i < n->held_count && n->held_seq[i] <= n->durable_seq) {
        struct aegis_net_post p;
        struct aegis_msg *m = aegis__malloc(n->alloc, sizeof(*m));

        note_sent(n, &n->held[i]);
        if (m != NULL) {
            *m = n->held[i]; /* Hand over the clone's references. */
            p = (struct aegis_net_post){.fn = send_post, .arg = m};
            aegis__net_post_from_raft(n, &p);
        } else {
            aegis__msg_release(&n->held[i], n->alloc);
        }
        i++;
    }
    if (i > 0) {
        memmove(n->held, n->held + i, (n->held_count - i) * sizeof(*n->held));
        memmove(n->held_seq, n->held_seq + i, (n->held_count - i) * sizeof(*n->held_seq));
        n->held_count -= i;
    }
}

static void hold(struct aegis_node *n, const struct aegis_msg *m, uint64_t seq)
{
    if (n->held_count == n->held_cap) {
        uint32_t cap = n->held_cap != 0 ? n->held_cap * 2 : 256;
        struct aegis_msg *h;
        uint64_t *s;

        if (cap > HELD_MAX) {
            return; /* Dropped: the peer retransmits; bounded memory wins. */
        }
        h = aegis__realloc(n->alloc, n->held, cap * sizeof(*h));
        if (h == NULL) {
            return;
        }
        n->held = h;
        s = aegis__realloc(n->alloc, n->held_seq, cap * sizeof(*s));
        if (s == NULL) {
            return;
        }
        n->held_seq = s;
        n->held_cap = cap;
    }
    if (aegis__msg_clone(&n->held[n->held_count], m, n->alloc) != 0) {
        return;
    }
    n->held_seq[n->held_count++] = seq;
}

static void log_push(struct aegis_node *n, const struct aegis_log_req *req)
{
    struct aegis_log_req *slot;

    /* Keep order: once something waits in the backlog, everything goes behind it. */
    if (n->log_backlog_count == 0 && aegis__log_writer_push_sp_defer(n->log, req)) {
        n->log_reqs_pushed++;
        return;
    }
    aegis__metrics_add(&n->metrics, AEGIS_MT_RAFT, AEGIS_MC_RING_FULL_LOG, 1);
    /* Bounded: the core refuses proposals once 65536 entries are not yet durable. */
    slot = backlog_append(n->alloc, (void **)&n->log_backlog, &n->log_backlog_count,
                          &n->log_backlog_cap, sizeof(*slot));
    *slot = *req;
    n->log_reqs_pushed++;
}

static void log_flush_backlog(struct aegis_node *n)
{
    uint32_t done = 0;

    while (done < n->log_backlog_count &&
           aegis__log_writer_push_sp_defer(n->log, &n->log_backlog[done])) {
        done++;
    }
    backlog_drop(n->log_backlog, &n->log_backlog_count, done, sizeof(*n->log_backlog));
    aegis__log_writer_flush(n->log);
}

/* snap-install: for pipeline/snap_transfer.c. */
void aegis__raft_thread_log_push(struct aegis_node *n, const struct aegis_log_req *req)
{
    log_push(n, req);
}

void aegis__raft_thread_apply_push(struct aegis_node *n, const struct aegis_apply_item *it)
{
    apply_push(n, it);
}

/* Whether a ready's hard state must reach disk. Term and vote must be durable before any
 * message that depends on them (§5.1, the core puts those in msgs_after_persist). The
 * commit index alone need not be: a restarted node learns it again from the leader (the
 * paper keeps it volatile), and writing it whenever it moves cost a second fdatasync per
 * write at low load (a hard-state-only batch right behind every entry batch). It still
 * reaches disk with every term or vote change. */
static bool hs_needs_write(const struct aegis_node *n, const struct aegis_ready *rd)
{
    return rd->hs_changed && (rd->hs.term != n->hs_term || rd->hs.vote != n->hs_vote);
}

/* Hand a ready's hard state, entries and received snapshot to the log thread. Returns the
 * cumulative request count that must be durable before this ready's
 * msgs_after_persist may leave. */
static uint64_t log_submit(struct aegis_node *n, const struct aegis_ready *rd)
{
    struct aegis_log_req req;

    if (rd->snapshot_meta != NULL) {
        aegis__snap_transfer_commit(&n->snapx, rd->snapshot_meta); /* snap-install */
    }
    for (uint32_t i = 0; i < rd->entries_count; i++) {
        memset(&req, 0, sizeof(req));
        req.op = AEGIS_LOG_OP_ENTRY;
        req.entry = rd->entries[i];
        aegis__entry_ref(&req.entry);
        log_push(n, &req);
    }
    if (hs_needs_write(n, rd)) {
        memset(&req, 0, sizeof(req));
        req.op = AEGIS_LOG_OP_HARD_STATE;
        req.hs = rd->hs;
        log_push(n, &req);
        n->hs_term = rd->hs.term;
        n->hs_vote = rd->hs.vote;
    }
    AEGIS_STAT_INC(n->stats.log_batches);
    return n->log_reqs_pushed;
}

static void fail_reads(struct aegis_node *n, struct aegis_read_req *reads, uint32_t count,
                       int status);

/* The log thread could not make something durable: fail-stop (see the file comment). */
static void storage_fail(struct aegis_node *n, const struct aegis_log_report *rep)
{
    if (storage_failed(n)) {
        return;
    }
    AEGIS_LOG(AEGIS_LOG_ERROR,
              "storage failed: %s at byte offset %llu: %s; the node stops now acting as "
              "leader, candidate or voter and exits in %u ms",
              rep->file, (unsigned long long)rep->offset, aegis_strerror(rep->err),
              n->config.fail_stop_ms);
    __atomic_store_n(&n->storage_err, rep->err, __ATOMIC_RELEASE);
    n->fail_deadline_ns = aegis__now_ns() + (uint64_t)n->config.fail_stop_ms * 1000000u;
    aegis__node_fail(n, rep->err, "storage");
    /* Votes and acknowledgements waiting for a durability that will never come. */
    for (uint32_t i = 0; i < n->held_count; i++) {
        aegis__msg_release(&n->held[i], n->alloc);
    }
    n->held_count = 0;
    fail_reads(n, n->read_wait, n->read_wait_count, AEGIS_ESTORAGE);
    n->read_wait_count = 0;
    for (uint32_t b = 0; b < AEGIS_READ_BATCHES; b++) {
        fail_reads(n, n->read_batches[b].reads, n->read_batches[b].count, AEGIS_ESTORAGE);
        n->read_batches[b].count = 0;
        n->read_batches[b].ctx = 0;
    }
    aegis__waker_wake(&n->apply_waker); /* It fails the registered proposals (apply.c). */
}

/* Once fail_stop_ms has passed since the storage failed: the embedder's on_fatal, once. */
static void fail_stop_check(struct aegis_node *n, uint64_t now)
{
    if (!storage_failed(n) || n->fail_stop_reported || now < n->fail_deadline_ns) {
        return;
    }
    n->fail_stop_reported = true;
    AEGIS_LOG(AEGIS_LOG_ERROR, "storage failed %u ms ago (%s): stopping",
              n->config.fail_stop_ms, aegis_strerror(n->storage_err));
    if (n->config.on_fatal != NULL) {
        n->config.on_fatal(n->config.on_fatal_data, n->storage_err);
    }
}

/* Log retention: the first index the segments still hold (0 before any compaction). */
static aegis_index retained_first(struct aegis_node *n)
{
    uint64_t bytes;

    return n->log != NULL ? aegis__log_writer_retained(n->log, &bytes) : 0;
}

static void drain_log(struct aegis_node *n)
{
    struct aegis_log_report rep;

    while (aegis__log_writer_pop_sc(n->log, &rep)) {
        if (rep.kind == AEGIS_LOG_REPORT_SNAPSHOT) { /* snap-install */
            aegis__snap_transfer_on_verdict(&n->snapx, rep.index, rep.term, rep.err);
            continue;
        }
        if (rep.kind == AEGIS_LOG_REPORT_ERROR) {
            storage_fail(n, &rep);
            aegis__metrics_add(&n->metrics, AEGIS_MT_RAFT, AEGIS_MC_ERR_LOG_WRITE, 1);
            continue;
        }
        n->durable_seq = rep.reqs_done;
        aegis__snap_transfer_on_durable(&n->snapx, n->durable_seq); /* snap-install */
        if (rep.index > 0) {
            aegis__metrics_durable(&n->metrics, rep.index, aegis__now_ns());
            AEGIS_PROBE1(log_durable, rep.index);
            aegis__raft_persisted(n->raft, rep.index, rep.term);
        }
    }
}

/* The batch with the smallest context in (0, @ctx], or NULL. */
static struct aegis_read_batch *oldest_batch_upto(struct aegis_node *n, uint64_t ctx)
{
    struct aegis_read_batch *best = NULL;

    for (uint32_t b = 0; b < AEGIS_READ_BATCHES; b++) {
        struct aegis_read_batch *batch = &n->read_batches[b];

        if (batch->ctx != 0 && batch->ctx <= ctx && (best == NULL || batch->ctx < best->ctx)) {
            best = batch;
        }
    }
    return best;
}

/* Hand confirmed reads to the apply thread in the order their batches started, so that
 * the apply thread serves a connection's reads in the order it sent them
 * (pipeline/conn_order.h). A round confirmed at @index also confirms every batch started
 * before it: their reads began before that round's read index was taken, so @index is a
 * valid read index for them too (a follower's older round may be lost with its leader). */
static void route_reads(struct aegis_node *n, const struct aegis_ready *rd)
{
    for (uint32_t i = 0; i < rd->reads_count; i++) {
        struct aegis_read_batch *batch;

        while ((batch = oldest_batch_upto(n, rd->reads[i].ctx)) != NULL) {
            for (uint32_t k = 0; k < batch->count; k++) {
                struct aegis_read_req *q = &batch->reads[k];
                struct aegis_apply_item it = {.kind = AEGIS_APPLY_READ,
                                              .index = rd->reads[i].index,
                                              .buf = q->query, .cb = q->cb, .data = q->data};

                apply_push(n, &it);
            }
            batch->count = 0;
            batch->ctx = 0;
        }
    }
}

/* The core refused a message showing that the cluster exists while this node's data
 * directory was empty (engine/raft_membership.c, the amnesia guard): say what to do and
 * have the process stop. The core ignores every message from now on. */
static void amnesia_stop(struct aegis_node *n, int err)
{
    if (n->fatal_reported) {
        return;
    }
    n->fatal_reported = true;
    AEGIS_LOG(AEGIS_LOG_ERROR,
              "fatal: the data directory %s was empty at start and this node was not "
              "started with --join, but a peer shows that the cluster already exists: this "
              "node may have lost votes and entries it acknowledged, so it refuses to vote "
              "or acknowledge and stops. Remove it on the leader (AEGIS.REMOVE %llu), then "
              "start it with --join and add it back (AEGIS.ADD %llu HOST:PORT)",
              n->data_dir, (unsigned long long)n->config.id, (unsigned long long)n->config.id);
    aegis__node_fail(n, err, "amnesia guard");
    if (n->config.on_fatal != NULL) {
        n->config.on_fatal(n->config.on_fatal_data, err);
    }
}

static void process_ready(struct aegis_node *n)
{
    struct aegis_ready rd;
    uint64_t seq = n->log_reqs_pushed;
    uint64_t now = 0;

    aegis__raft_ready(n->raft, &rd);
    if (rd.fatal != 0) {
        amnesia_stop(n, rd.fatal);
    }
    if (hs_needs_write(n, &rd) || rd.entries_count > 0 || rd.snapshot_meta != NULL) {
        seq = log_submit(n, &rd);
    }
    if (rd.fetch.from != 0) {
        aegis__log_reader_submit(n->reader, &rd.fetch); /* Log retention (log_reader.h). */
    }
    for (uint32_t i = 0; i < rd.msgs_count; i++) {
        send_copy(n, &rd.msgs[i]);
    }
    for (uint32_t i = 0; i < rd.msgs_after_persist_count; i++) {
        if (seq <= n->durable_seq) {
            send_copy(n, &rd.msgs_after_persist[i]);
        } else {
            hold(n, &rd.msgs_after_persist[i], seq);
        }
    }
    if (rd.snapshot_meta != NULL) {
        /* snap-install: the apply INSTALL waits for the COMMIT to be durable. */
        aegis__snap_transfer_installed(&n->snapx, rd.snapshot_meta, seq);
        n->snapshot_index = rd.snapshot_meta->index;
        aegis__metrics_add(&n->metrics, AEGIS_MT_RAFT, AEGIS_MC_SNAPSHOTS_RECEIVED, 1);
    }
    if (rd.committed_count > 0) {
        now = aegis__now_ns(); /* One clock read for the whole committed range. */
        aegis__metrics_committed(&n->metrics, rd.committed[rd.committed_count - 1].index, now);
        AEGIS_PROBE1(committed, rd.committed[rd.committed_count - 1].index);
    }
    for (uint32_t i = 0; i < rd.committed_count; i++) {
        struct aegis_apply_item it = {.kind = AEGIS_APPLY_ENTRY, .entry = rd.committed[i],
                                      .stamp_ns = now};

        aegis__entry_ref(&it.entry);
        apply_push(n, &it);
    }
    route_reads(n, &rd);
    if (rd.snapshot_wanted && !n->snapshot_requested) {
        struct aegis_apply_item it = {.kind = AEGIS_APPLY_SNAPSHOT_NOW};

        n->snapshot_requested = true;
        apply_push(n, &it);
    }
    aegis__raft_advance(n->raft, &rd);
}

static void drain_reports(struct aegis_node *n)
{
    struct aegis_apply_report rep;

    while (aegis__ring_report_pop_sc(&n->report_ring, &rep)) {
        switch (rep.kind) {
        case AEGIS_REPORT_APPLIED:
            aegis__raft_applied(n->raft, rep.applied);
            break;
        case AEGIS_REPORT_SNAPSHOT:
            n->snapshot_requested = false;
            if (rep.meta == NULL) {
                /* It failed (rep.status): the core asks only once, so retry later. */
                n->snapshot_retry_tick = n->tick_count + SNAPSHOT_RETRY_TICKS(n);
                break;
            }
            /* The apply thread took it at its applied index and reports that index only
             * after its batch, behind this report: say it first, or the core refuses the
             * snapshot (index > applied) and, having asked once, never asks again. */
            aegis__raft_applied(n->raft, rep.meta->index);
            /* snap-install: the file on disk is the core's source (snap_transfer.h). */
            if (aegis__snap_transfer_taken(&n->snapx, rep.meta, rep.file_bytes) == 0) {
                struct aegis_log_req req = {.op = AEGIS_LOG_OP_COMPACT};

                n->snapshot_index = rep.meta->index;
                req.compact_index = rep.meta->index;
                log_push(n, &req);
            }
            aegis__free(n->alloc, rep.meta);
            break;
        default:
            aegis__node_fail(n, rep.status, "state machine");
            break;
        }
    }
}

/* Fail every read of @reads[0..count) with @status (a definite failure: reads change
 * nothing). */
static void fail_reads(struct aegis_node *n, struct aegis_read_req *reads, uint32_t count,
                       int status)
{
    for (uint32_t k = 0; k < count; k++) {
        complete_now(n, reads[k].cb, reads[k].data, status, aegis__raft_leader(n->raft));
        aegis__buf_unref(reads[k].query);
    }
}

/* Turn the waiting reads into a batch with one ReadIndex round, if a batch is free. */
static void start_read_round(struct aegis_node *n)
{
    struct aegis_read_batch *batch = NULL;
    struct aegis_read_req *swap;
    uint64_t ctx;
    int rv;

    if (n->read_wait_count == 0) {
        return;
    }
    for (uint32_t b = 0; b < AEGIS_READ_BATCHES && batch == NULL; b++) {
        if (n->read_batches[b].ctx == 0) {
            batch = &n->read_batches[b];
        }
    }
    if (batch == NULL) {
        return; /* Every batch has a round in flight: these wait for the next one. */
    }
    ctx = ++n->next_read_ctx;
    rv = aegis__raft_read_index(n->raft, ctx);
    if (rv != 0) {
        fail_reads(n, n->read_wait, n->read_wait_count, rv);
        n->read_wait_count = 0;
        return;
    }
    swap = batch->reads;
    batch->reads = n->read_wait;
    batch->count = n->read_wait_count;
    batch->ctx = ctx;
    batch->deadline_tick = n->tick_count + READ_TIMEOUT_TICKS(n);
    batch->leader = aegis__raft_leader(n->raft);
    n->read_wait = swap;
    n->read_wait_count = 0;
}

/* Send @q's command (q->buf) to @leader as a CLIENT_REQ; its answer (CLIENT_RESP) or its
 * expiry after @timeout_ticks completes q->cb. A forward that waits longer than a write
 * (a member addition) takes the single admin_forward slot instead of the ring. */
static void forward(struct aegis_node *n, struct aegis_req *q, aegis_node_id leader,
                    uint64_t timeout_ticks)
{
    uint64_t id = ++n->next_request_id;
    bool long_wait = timeout_ticks > FORWARD_TIMEOUT_TICKS(n);
    struct aegis_forward *f = long_wait ? &n->admin_forward
                                        : &n->forwards[id & n->forwards_mask];
    struct aegis_msg m = {.type = AEGIS_MSG_CLIENT_REQ, .from = n->config.id, .to = leader};

    if (f->request_id != 0) {
        complete_now(n, q->cb, q->data, long_wait ? AEGIS_EBUSY : AEGIS_EFULL, leader);
        return;
    }
    *f = (struct aegis_forward){.request_id = id, .cb = q->cb, .data = q->data,
                                .deadline_tick = n->tick_count + timeout_ticks,
                                .leader = leader};
    /* Forwarded commands count as in flight here too, so a follower pushes back on its
     * clients as the leader would. */
    __atomic_fetch_add(&n->inflight, 1, __ATOMIC_RELAXED);
    m.client_req.request_id = id;
    m.client_req.command = q->buf;
    send_copy(n, &m);
    AEGIS_STAT_INC(n->stats.forwarded);
}

static void handle_propose(struct aegis_node *n, struct aegis_req *q, uint64_t now)
{
    aegis_node_id leader = aegis__raft_leader(n->raft);
    aegis_index index;
    int rv;

    if (aegis__raft_role(n->raft) != AEGIS_ROLE_LEADER) {
        if (leader != AEGIS_NODE_NONE && leader != n->config.id) {
            forward(n, q, leader, FORWARD_TIMEOUT_TICKS(n));
        } else {
            complete_now(n, q->cb, q->data, AEGIS_ENOTLEADER, AEGIS_NODE_NONE);
        }
        return;
    }
    if (!inflight_room(n)) {
        complete_now(n, q->cb, q->data, AEGIS_EFULL, leader);
        return;
    }
    rv = aegis__raft_propose(n->raft, AEGIS_ENTRY_COMMAND, q->buf, &index);
    if (rv != 0) {
        complete_now(n, q->cb, q->data, rv, leader);
        return;
    }
    AEGIS_STAT_INC(n->stats.proposals);
    aegis__metrics_proposed(&n->metrics, index, q->stamp_ns, now);
    AEGIS_PROBE2(request_proposed, q->data, index);
    register_proposal(n, index, q->cb, q->data, AEGIS_NODE_NONE, 0);
}

/* How long a forwarded admin request waits for the leader's answer: an addition as long
 * as the leader may wait for the new member to catch up (--catchup-timeout-ms), and then
 * the time of a write. */
static uint64_t admin_wait_ticks(const struct aegis_node *n, const struct aegis_req *q)
{
    if (q->kind != AEGIS_REQ_ADD) {
        return FORWARD_TIMEOUT_TICKS(n);
    }
    if (n->config.catchup_timeout_ms == 0) {
        return FORWARD_TIMEOUT_TICKS(n) * 7; /* No limit on the leader: a long wait. */
    }
    return FORWARD_TIMEOUT_TICKS(n) + n->config.catchup_timeout_ms / n->config.tick_ms;
}

/* An admin request (add, remove, transfer) on a node that does not lead: forward it to
 * the leader as writes are forwarded (an 'A' envelope in a CLIENT_REQ, pipeline/envelope.h)
 * and complete q->cb with its answer. Returns false when this node leads: run it here. */
static bool admin_forwarded(struct aegis_node *n, struct aegis_req *q)
{
    aegis_node_id leader = aegis__raft_leader(n->raft);
    uint8_t op = q->kind == AEGIS_REQ_ADD      ? AEGIS_ENV_ADMIN_ADD
                 : q->kind == AEGIS_REQ_REMOVE ? AEGIS_ENV_ADMIN_REMOVE
                                               : AEGIS_ENV_ADMIN_TRANSFER;
    aegis_node_id target = q->kind == AEGIS_REQ_ADD ? q->peer.id : q->target;
    struct aegis_buf *buf;

    if (aegis__raft_role(n->raft) == AEGIS_ROLE_LEADER) {
        return false;
    }
    if (leader == AEGIS_NODE_NONE || leader == n->config.id) {
        complete_now(n, q->cb, q->data, AEGIS_ENOTLEADER, AEGIS_NODE_NONE);
        return true;
    }
    buf = aegis__env_admin(n->alloc, op, target, q->kind == AEGIS_REQ_ADD ? &q->peer : NULL);
    if (buf == NULL) {
        complete_now(n, q->cb, q->data, AEGIS_EINVAL, leader);
        return true;
    }
    aegis__buf_unref(q->buf);
    q->buf = buf; /* handle_req drops it after the send took its own reference. */
    forward(n, q, leader, admin_wait_ticks(n, q));
    return true;
}

static void handle_add(struct aegis_node *n, struct aegis_req *q)
{
    struct aegis_buf *meta;
    aegis_index index;
    int rv;

    if (admin_forwarded(n, q)) {
        return;
    }
    if (n->adding.id != 0) {
        complete_now(n, q->cb, q->data, AEGIS_EBUSY, n->config.id);
        return;
    }
    /* First the address, so that every node can dial the new member, then the member. */
    meta = aegis__env_meta_addr(n->alloc, &q->peer);
    if (meta == NULL) {
        complete_now(n, q->cb, q->data, AEGIS_EINVAL, n->config.id);
        return;
    }
    rv = aegis__raft_propose(n->raft, AEGIS_ENTRY_COMMAND, meta, &index);
    aegis__buf_unref(meta);
    if (rv == 0) {
        rv = aegis__raft_add_learner(n->raft, q->peer.id, &index);
    }
    if (rv != 0) {
        complete_now(n, q->cb, q->data, rv, n->config.id);
        return;
    }
    n->adding = (struct aegis_pending_add){.id = q->peer.id, .cb = q->cb, .data = q->data,
                                           .catchup_hint = index};
}

/* A learner added through aegis_node_add_member becomes a voter once it has caught up.
 * The rule is the core's (aegis__raft_promote, engine/raft_membership.c): caught up with
 * the leader's log as of the add, else, after config.catchup_timeout_ms, removed and
 * AEGIS_ECATCHUP for the caller. */
static void promote_when_caught_up(struct aegis_node *n)
{
    aegis_index index = 0;
    int rv;

    if (n->adding.id == 0) {
        return;
    }
    if (aegis__raft_role(n->raft) != AEGIS_ROLE_LEADER) {
        complete_now(n, n->adding.cb, n->adding.data, AEGIS_ELEADERLOST,
                     aegis__raft_leader(n->raft));
        n->adding.id = 0;
        return;
    }
    rv = aegis__raft_promote(n->raft, n->adding.id, &index);
    if (rv == AEGIS_EBUSY || rv == AEGIS_EAGAIN) {
        return; /* Its own change has not committed, or it is behind; next tick. */
    }
    if (rv == 0) {
        register_proposal(n, index, n->adding.cb, n->adding.data, AEGIS_NODE_NONE, 0);
    } else {
        if (rv == AEGIS_ECATCHUP) {
            AEGIS_LOG(AEGIS_LOG_WARN,
                      "AEGIS.ADD %llu: the node acknowledged nothing up to index %llu within "
                      "%u ms; it is removed (entry %llu) and stays out of the voters",
                      (unsigned long long)n->adding.id,
                      (unsigned long long)n->adding.catchup_hint,
                      n->config.catchup_timeout_ms, (unsigned long long)index);
        }
        complete_now(n, n->adding.cb, n->adding.data, rv, n->config.id);
    }
    n->adding.id = 0;
}

static void handle_req(struct aegis_node *n, struct aegis_req *q, uint64_t now)
{
    aegis_index index;
    int rv;

    if (storage_failed(n)) {
        if (q->cb != NULL || (q->kind != AEGIS_REQ_SNAPSHOT && q->kind != AEGIS_REQ_TRANSFER)) {
            complete_now(n, q->cb, q->data, AEGIS_ESTORAGE, AEGIS_NODE_NONE);
        }
        aegis__buf_unref(q->buf);
        return;
    }
    switch (q->kind) {
    case AEGIS_REQ_PROPOSE:
        handle_propose(n, q, now);
        break;
    case AEGIS_REQ_READ:
        AEGIS_STAT_INC(n->stats.reads);
        if (aegis__raft_leader(n->raft) == AEGIS_NODE_NONE) {
            complete_now(n, q->cb, q->data, AEGIS_ENOTLEADER, AEGIS_NODE_NONE);
            break;
        }
        if (n->read_wait_count == AEGIS_READ_BATCH_MAX) {
            complete_now(n, q->cb, q->data, AEGIS_EFULL, aegis__raft_leader(n->raft));
            break;
        }
        n->read_wait[n->read_wait_count++] =
            (struct aegis_read_req){.query = q->buf, .cb = q->cb, .data = q->data};
        return; /* The waiting list owns the query now. */
    case AEGIS_REQ_ADD:
        handle_add(n, q);
        break;
    case AEGIS_REQ_REMOVE:
        if (admin_forwarded(n, q)) {
            break;
        }
        rv = aegis__raft_remove(n->raft, q->target, &index);
        if (rv != 0) {
            complete_now(n, q->cb, q->data, rv, aegis__raft_leader(n->raft));
        } else {
            register_proposal(n, index, q->cb, q->data, AEGIS_NODE_NONE, 0);
        }
        break;
    case AEGIS_REQ_TRANSFER:
        if (q->cb != NULL && admin_forwarded(n, q)) {
            break;
        }
        rv = aegis__raft_transfer(n->raft, q->target);
        if (rv != 0) {
            AEGIS_LOG(AEGIS_LOG_WARN, "leadership transfer to %llu refused: %s",
                      (unsigned long long)q->target, aegis_strerror(rv));
        }
        if (q->cb != NULL) {
            /* 0: the transfer started (the core abandons it after an election timeout
             * if the target does not take over); otherwise the core's refusal. */
            complete_now(n, q->cb, q->data, rv, aegis__raft_leader(n->raft));
        }
        break;
    case AEGIS_REQ_SNAPSHOT:
        if (!n->snapshot_requested || q->cb != NULL) { /* A caller waits: the apply thread
                                                        * answers it (apply.c). */
            struct aegis_apply_item it = {.kind = AEGIS_APPLY_SNAPSHOT_NOW, .cb = q->cb,
                                          .data = q->data};

            n->snapshot_requested = true;
            apply_push(n, &it);
        }
        break;
    default:
        AEGIS_UNREACHABLE();
    }
    aegis__buf_unref(q->buf);
}

static void drain_inbox(struct aegis_node *n)
{
    struct aegis_inbox *in = &n->inbox;
    struct aegis_req *items;
    uint32_t count;

    pthread_mutex_lock(&in->lock);
    items = in->items;
    count = in->count;
    in->items = in->spare;
    in->count = 0;
    pthread_mutex_unlock(&in->lock);
    in->spare = items;
    if (count > 0) {
        uint64_t now = aegis__now_ns(); /* One clock read per drain. */

        aegis__metrics_record(&n->metrics, AEGIS_MH_PROPOSE_BATCH, count);
        for (uint32_t i = 0; i < count; i++) {
            handle_req(n, &items[i], now);
        }
    }
    start_read_round(n);
}

/* Once per tick: forwarded commands and reads that got no answer, and those whose leader
 * is no longer the leader (it will not answer, or its answer no longer matters): their
 * clients learn it now rather than after the full timeout. */
static void expire(struct aegis_node *n)
{
    aegis_node_id leader = aegis__raft_leader(n->raft);

    while (n->forward_oldest < n->next_request_id) {
        struct aegis_forward *f = &n->forwards[(n->forward_oldest + 1) & n->forwards_mask];

        if (f->request_id == n->forward_oldest + 1 && f->deadline_tick > n->tick_count &&
            f->leader == leader) {
            break;
        }
        if (f->request_id == n->forward_oldest + 1) {
            /* The leader may have applied it: the outcome is unknown. */
            complete_now(n, f->cb, f->data, AEGIS_ELEADERLOST, aegis__raft_leader(n->raft));
            f->request_id = 0;
            __atomic_fetch_sub(&n->inflight, 1, __ATOMIC_RELEASE);
        }
        n->forward_oldest++;
    }
    if (n->admin_forward.request_id != 0 &&
        (n->admin_forward.deadline_tick <= n->tick_count || n->admin_forward.leader != leader)) {
        complete_now(n, n->admin_forward.cb, n->admin_forward.data, AEGIS_ELEADERLOST, leader);
        n->admin_forward.request_id = 0;
        __atomic_fetch_sub(&n->inflight, 1, __ATOMIC_RELEASE);
    }
    for (uint32_t b = 0; b < AEGIS_READ_BATCHES; b++) {
        struct aegis_read_batch *batch = &n->read_batches[b];

        if (batch->ctx == 0 ||
            (batch->deadline_tick > n->tick_count && batch->leader == leader)) {
            continue;
        }
        /* The core drops a round silently when leadership changes: time it out. */
        fail_reads(n, batch->reads, batch->count, AEGIS_ETIMEDOUT);
        batch->count = 0;
        batch->ctx = 0;
    }
}

static enum aegis_node_role public_role(enum aegis_role r)
{
    switch (r) {
    case AEGIS_ROLE_LEADER:
        return AEGIS_NODE_LEADER;
    case AEGIS_ROLE_CANDIDATE:
    case AEGIS_ROLE_PRECANDIDATE:
        return AEGIS_NODE_CANDIDATE;
    case AEGIS_ROLE_LEARNER:
        return AEGIS_NODE_LEARNER;
    default:
        return AEGIS_NODE_FOLLOWER;
    }
}

static void update_status(struct aegis_node *n)
{
    const struct aegis_conf *conf = aegis__raft_conf(n->raft);
    struct aegis_status s = {0};

    s.id = n->config.id;
    s.role = public_role(aegis__raft_role(n->raft));
    s.term = aegis__raft_term(n->raft);
    s.leader = aegis__raft_leader(n->raft);
    s.commit_index = aegis__raft_commit_index(n->raft);
    s.applied_index = __atomic_load_n(&n->applied_index, __ATOMIC_RELAXED);
    s.last_index = aegis__raft_last_index(n->raft);
    s.snapshot_index = n->snapshot_index;
    if (storage_failed(n)) {
        s.role = AEGIS_NODE_FOLLOWER; /* Whatever the core last was, it acts as nothing. */
        s.leader = AEGIS_NODE_NONE;
    }
    aegis__metrics_observe(&n->metrics, aegis__raft_role(n->raft), s.term, s.leader);
    for (uint32_t i = 0; i < conf->count && i < AEGIS_PEERS_MAX; i++) {
        aegis_index match = 0, next = 0;

        s.members[i].id = conf->members[i].id;
        s.members[i].voter = conf->members[i].role == AEGIS_MEMBER_VOTER;
        if (aegis__raft_progress(n->raft, conf->members[i].id, &match, &next)) {
            s.members[i].match_index = match;
        }
        s.members_count++;
    }
    pthread_mutex_lock(&n->status_lock);
    n->status = s;
    pthread_mutex_unlock(&n->status_lock);
}

static bool inputs_pending(struct aegis_node *n)
{
    return !aegis__ring_peer_msg_empty(&n->peer_ring) ||
           !aegis__ring_report_empty(&n->report_ring) ||
           __atomic_load_n(&n->inbox.count, __ATOMIC_ACQUIRE) > 0 ||
           !aegis__log_writer_reports_empty(n->log) ||
           !aegis__log_reader_idle(n->reader) || /* Log retention. */
           (!storage_failed(n) && aegis__raft_has_ready(n->raft));
}

int aegis__node_storage_error(const struct aegis_node *n)
{
    return __atomic_load_n(&n->storage_err, __ATOMIC_ACQUIRE);
}

void *aegis__raft_thread_main(void *arg)
{
    struct aegis_node *n = arg;
    uint64_t tick_ns = (uint64_t)n->config.tick_ms * 1000000u;
    uint64_t next_tick = aegis__now_ns() + tick_ns;

    pthread_setname_np(pthread_self(), "aegis-raft");
    while (__atomic_load_n(&n->stopping, __ATOMIC_ACQUIRE) == 0) {
        uint64_t now = aegis__now_ns();
        int wait_ms;

        fail_stop_check(n, now);
        if (now >= next_tick && storage_failed(n)) {
            n->tick_count++; /* No tick for the core: it neither heartbeats nor campaigns. */
            expire(n);
            next_tick = now + tick_ns;
        } else if (now >= next_tick) {
            aegis__raft_tick(n->raft);
            n->tick_count++;
            expire(n);
            promote_when_caught_up(n);
            if (n->snapshot_retry_tick != 0 && n->tick_count >= n->snapshot_retry_tick &&
                !n->snapshot_requested) {
                struct aegis_apply_item it = {.kind = AEGIS_APPLY_SNAPSHOT_NOW};

                n->snapshot_retry_tick = 0;
                n->snapshot_requested = true;
                apply_push(n, &it);
            }
            next_tick += tick_ns;
            if (now > next_tick + 10 * tick_ns) {
                next_tick = now + tick_ns; /* We were descheduled: do not fire a burst. */
            }
        }
        drain_peer(n);
        drain_log(n);
        aegis__log_reader_pump(n->reader, n->raft, retained_first(n)); /* Log retention. */
        drain_reports(n);
        drain_inbox(n);
        while (!storage_failed(n) && aegis__raft_has_ready(n->raft)) {
            process_ready(n);
        }
        if (!storage_failed(n)) {
            start_read_round(n); /* A round that finished above frees a batch. */
        }
        while (!storage_failed(n) && aegis__raft_has_ready(n->raft)) {
            process_ready(n);
        }
        log_flush_backlog(n);
        release_held(n);
        apply_flush_backlog(n);
        update_status(n);
        aegis__waker_prepare(&n->raft_waker);
        if (inputs_pending(n)) {
            aegis__waker_cancel(&n->raft_waker);
            continue;
        }
        now = aegis__now_ns();
        wait_ms = next_tick > now ? (int)((next_tick - now + 999999) / 1000000) : 0;
        aegis__waker_wait(&n->raft_waker, wait_ms);
    }
    return NULL;
}
