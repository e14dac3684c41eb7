/* SPDX-License-Identifier: MIT */
/* The node: lifecycle and the public embedding API (include/aegis/aegis.h).
 *
 * create() recovers the data directory (log segments, hard state, newest snapshot),
 * restores the state machine and builds the Raft core from what was durable. start()
 * opens the network and starts the four threads. API calls from any thread land in the
 * inbox (node_int.h) and wake the raft thread. stop() winds the threads down in pipeline
 * order: raft first (no new work), then the log thread (its queued batches are written
 * and fdatasynced), then apply (pending callbacks fail with AEGIS_ELEADERLOST: the outcome
 * of an unapplied command is unknown), then the network. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "pipeline/log_reader.h"
#include "pipeline/envelope.h"
#include "pipeline/logging.h"
#include "pipeline/node_int.h"
#include "pipeline/snapshot_file.h"

#define RING_SLOTS 16384u

void aegis_node_config_init(struct aegis_node_config *c)
{
    memset(c, 0, sizeof(*c));
    c->cluster_id = 1;
    c->fsync = AEGIS_FSYNC_BATCH;
    c->tick_ms = 10;
    c->election_ticks = 30;
    c->heartbeat_ticks = 5;
    c->snapshot_threshold = 100000;
    c->snapshot_chunk_bytes = 1u << 20;
    c->segment_bytes = 64u << 20;
    c->max_command_bytes = 1u << 20;
    c->max_pending = 65536;
    c->fail_stop_ms = 2000;
    c->catchup_timeout_ms = 60000;
    c->log_cache_bytes = AEGIS_LOG_CACHE_BYTES_DEFAULT;
    c->log_retention_bytes = AEGIS_LOG_RETENTION_BYTES_DEFAULT;
}

static int config_check(const struct aegis_node_config *c)
{
    bool self = false;

    if (c->id == AEGIS_NODE_NONE || c->data_dir == NULL || c->data_dir[0] == '\0') {
        return AEGIS_EINVAL;
    }
    if (c->peers_count == 0 || c->peers_count > AEGIS_PEERS_MAX) {
        return AEGIS_ECONFIG;
    }
    for (uint32_t i = 0; i < c->peers_count; i++) {
        if (c->peers[i].id == AEGIS_NODE_NONE || c->peers[i].port == 0) {
            return AEGIS_ECONFIG;
        }
        for (uint32_t k = 0; k < i; k++) {
            if (c->peers[k].id == c->peers[i].id) {
                return AEGIS_ECONFIG;
            }
        }
        self = self || c->peers[i].id == c->id;
    }
    if (!self || c->tick_ms == 0 || c->election_ticks <= c->heartbeat_ticks ||
        c->heartbeat_ticks == 0 || c->max_pending == 0 || c->fsync > AEGIS_FSYNC_NONE) {
        return AEGIS_ECONFIG;
    }
    if (c->sm != NULL && (c->sm->apply == NULL || /* Streaming sets: all or none (aegis.h). */
                          (c->sm->snapshot_open == NULL) != (c->sm->snapshot_read == NULL) ||
                          (c->sm->snapshot_open == NULL) != (c->sm->snapshot_close == NULL) ||
                          (c->sm->restore_begin == NULL) != (c->sm->restore_feed == NULL) ||
                          (c->sm->restore_begin == NULL) != (c->sm->restore_end == NULL))) {
        return AEGIS_EINVAL;
    }
    return 0;
}

void aegis__node_fail(struct aegis_node *n, int rv, const char *what)
{
    int expected = 0;

    if (__atomic_compare_exchange_n(&n->fatal, &expected, rv != 0 ? rv : AEGIS_EINTERNAL,
                                    false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        AEGIS_LOG(AEGIS_LOG_ERROR, "fatal: %s: %s; the node stops taking writes", what,
                  aegis_strerror(rv));
    }
}

static void raft_trace(void *data, aegis_node_id node, const char *what, uint64_t a,
                       uint64_t b)
{
    (void)data;
    aegis__log_raft_event(node, what, a, b); /* Names the numbers: term=, index=, ... */
}

static const struct aegis_raft_tracer tracer = {.event = raft_trace};

static int inbox_init(struct aegis_node *n)
{
    struct aegis_inbox *in = &n->inbox;

    in->cap = n->config.max_pending;
    in->items = aegis__calloc(n->alloc, in->cap, sizeof(*in->items));
    in->spare = aegis__calloc(n->alloc, in->cap, sizeof(*in->spare));
    if (in->items == NULL || in->spare == NULL) {
        return AEGIS_ENOMEM;
    }
    pthread_mutex_init(&in->lock, NULL);
    return 0;
}

static int rings_init(struct aegis_node *n)
{
    int rv;

    rv = aegis__waker_init(&n->raft_waker);
    if (rv == 0) {
        rv = aegis__waker_init(&n->apply_waker);
    }
    if (rv == 0) {
        rv = aegis__ring_peer_msg_init(&n->peer_ring, RING_SLOTS, &n->raft_waker, n->alloc);
    }
    if (rv == 0) {
        rv = aegis__ring_report_init(&n->report_ring, 1024, &n->raft_waker, n->alloc);
    }
    if (rv == 0) {
        rv = aegis__ring_apply_init(&n->apply_ring, RING_SLOTS * 4, &n->apply_waker, n->alloc);
    }
    if (rv == 0) {
        rv = aegis__ring_net_post_init(&n->raft_post, RING_SLOTS * 4, NULL, n->alloc);
    }
    if (rv == 0) {
        rv = aegis__ring_net_post_init(&n->apply_post, RING_SLOTS * 4, NULL, n->alloc);
    }
    return rv;
}

static void raft_config_from(const struct aegis_node *n, struct aegis_raft_config *rc)
{
    aegis__raft_config_default(rc);
    rc->id = n->config.id;
    rc->election_timeout_min_ticks = n->config.election_ticks;
    rc->election_timeout_max_ticks = n->config.election_ticks * 2;
    rc->heartbeat_interval_ticks = n->config.heartbeat_ticks;
    rc->snapshot_threshold = n->config.snapshot_threshold;
    rc->snapshot_trailing = n->config.snapshot_threshold / 10 + 16;
    if (n->config.snapshot_chunk_bytes > 0) {
        rc->snapshot_chunk_bytes = n->config.snapshot_chunk_bytes;
    }
    rc->catchup_timeout_ticks = n->config.catchup_timeout_ms == 0
                                    ? 0 /* No limit. */
                                    : n->config.catchup_timeout_ms / n->config.tick_ms + 1;
    rc->fresh = n->datadir_fresh && !n->config.join;
    /* Log retention (log_reader.h): no segments to read back without durability. */
    rc->log_cache_bytes = n->config.fsync == AEGIS_FSYNC_NONE ? 0 : n->config.log_cache_bytes;
}

/* Whether the data directory held nothing a peer could have counted on: no snapshot and
 * no log entry. (The hard state does not count: a node stopped by the amnesia guard may
 * have written a term, and must stay guarded when restarted on the same directory.) */
static bool datadir_fresh(const struct aegis_log_state *rec)
{
    return !rec->has_snapshot && rec->entries_count == 0;
}

/* Restore the state machine from the snapshot the node starts with, read from its file as
 * a stream (the log writer verified it; it is read again chunk by chunk, so the state is
 * never held twice). */
static int restore_snapshot(struct aegis_node *n, const struct aegis_snapshot_meta *meta)
{
    struct aegis_peer_addr addrs[AEGIS_PEERS_MAX];
    char path[AEGIS_SNAPSHOT_PATH_MAX];
    uint32_t count = 0;
    int rv;

    aegis__snapshot_file_path(n->data_dir, meta->index, path, sizeof(path));
    rv = aegis__apply_restore_file(n, path, meta, addrs, &count);
    if (rv != 0) {
        return rv;
    }
    aegis__apply_restored(n, meta, addrs, count);
    n->snapshot_index = meta->index;
    return 0;
}

static int recover(struct aegis_node *n)
{
    struct aegis_log_config lc;
    struct aegis_log_state rec;
    struct aegis_raft_config rc;
    struct aegis_raft_restore restore;
    int rv;

    if (n->config.fsync != AEGIS_FSYNC_NONE) {
        /* Lock and identity first: nothing else in the directory is read or written by a
         * second process or under another node's name. */
        rv = aegis__datadir_open(&n->datadir, n->data_dir, n->config.cluster_id,
                                 n->config.id, NULL);
        if (rv != 0) {
            AEGIS_LOG(AEGIS_LOG_ERROR, "%s", n->datadir.msg);
            return rv;
        }
    }
    memset(&lc, 0, sizeof(lc));
    lc.dir = n->data_dir;
    lc.segment_bytes = n->config.segment_bytes;
    lc.durability = n->config.fsync == AEGIS_FSYNC_NONE ? AEGIS_DURABILITY_NONE
                                                        : AEGIS_DURABILITY_BATCH;
    lc.alloc = n->alloc;
    lc.report_waker = &n->raft_waker;
    lc.metrics = &n->metrics;
    lc.retention_bytes = n->config.log_retention_bytes; /* Log retention. */
    rv = aegis__log_writer_open(&n->log, &lc, &rec);
    if (rv == 0) {
        rv = aegis__log_reader_create(&n->reader, n->data_dir, &n->raft_waker, n->alloc);
    }
    if (rv == AEGIS_ENOSYS || rv == AEGIS_EPERM) {
        /* The log writer is the first user of io_uring: say plainly what is missing. */
        AEGIS_LOG(AEGIS_LOG_ERROR,
                  "io_uring unavailable (%s): Aegis needs Linux 5.6 or later with io_uring "
                  "allowed (check seccomp and the kernel.io_uring_disabled sysctl)",
                  aegis_strerror(rv));
        return rv;
    }
    if (rv != 0) {
        AEGIS_LOG(AEGIS_LOG_ERROR, "cannot open the log in %s: %s", n->data_dir,
                  aegis_strerror(rv));
        return rv;
    }
    memset(&restore, 0, sizeof(restore));
    restore.hs = rec.hs;
    /* The log thread syncs hard state and entries in parallel: after a crash the entries
     * may carry a newer term than the hard state. Nothing that depended on either left
     * the node, so the newer term is safe to adopt (with no vote in it). */
    if (rec.last_term > restore.hs.term) {
        restore.hs.term = rec.last_term;
        restore.hs.vote = AEGIS_NODE_NONE;
    }
    if (rec.has_snapshot) {
        rv = restore_snapshot(n, &rec.snapshot_meta);
        if (rv != 0) {
            AEGIS_LOG(AEGIS_LOG_ERROR, "cannot restore the snapshot at index %llu: %s",
                      (unsigned long long)rec.snapshot_meta.index, aegis_strerror(rv));
            aegis__log_state_release(&rec, n->alloc);
            return rv;
        }
        restore.snapshot_meta = &rec.snapshot_meta;
        restore.snapshot_bytes = aegis__snap_transfer_file_bytes(n, rec.snapshot_meta.index);
    }
    restore.entries = rec.entries;
    restore.entries_count = rec.entries_count;
    if (!n->config.join) {
        for (uint32_t i = 0; i < n->config.peers_count; i++) {
            restore.bootstrap.members[i].id = n->config.peers[i].id;
            restore.bootstrap.members[i].role = AEGIS_MEMBER_VOTER;
        }
        restore.bootstrap.count = n->config.peers_count;
    }
    n->hs_term = restore.hs.term;
    n->hs_vote = restore.hs.vote;
    n->datadir_fresh = datadir_fresh(&rec);
    raft_config_from(n, &rc);
    aegis__snap_transfer_init(&n->snapx, n); /* snap-install: the core's snapshot_io. */
    aegis__snap_transfer_io(&n->snapx, &rc.snapshot_io);
    aegis__rng_seed(&n->rng, n->rng_seed);
    rv = aegis__raft_create(&n->raft, &rc, &restore, &n->rng, &tracer, n->alloc);
    if (rv == 0 && rec.hs_fallback) {
        /* The newer hard state slot was unreadable: a vote in it may have been sent. Never
         * give that vote twice: no vote (and no campaign) until a leader of this term or
         * a newer one is heard from. */
        aegis__raft_withhold_votes(n->raft);
        AEGIS_LOG(AEGIS_LOG_WARN,
                  "votes withheld until a current leader is heard from (the hard state fell "
                  "back to the older slot: term %llu, vote %llu may be stale)",
                  (unsigned long long)rec.hs.term, (unsigned long long)rec.hs.vote);
    }
    AEGIS_LOG(AEGIS_LOG_INFO,
              "recovered %s: term %llu, vote %llu, commit %llu, snapshot %llu, %u entries",
              n->data_dir, (unsigned long long)rec.hs.term, (unsigned long long)rec.hs.vote,
              (unsigned long long)rec.hs.commit,
              (unsigned long long)(rec.has_snapshot ? rec.snapshot_meta.index : 0),
              rec.entries_count);
    aegis__log_state_release(&rec, n->alloc);
    return rv;
}

int aegis_node_create(struct aegis_node **out, const struct aegis_node_config *c)
{
    struct aegis_node *n;
    uint32_t cap = 1;
    int rv;

    rv = config_check(c);
    if (rv != 0) {
        return rv;
    }
    n = calloc(1, sizeof(*n));
    if (n == NULL) {
        return AEGIS_ENOMEM;
    }
    n->datadir.lock_fd = -1;
    aegis__metrics_init(&n->metrics);
    n->config = *c;
    snprintf(n->data_dir, sizeof(n->data_dir), "%s", c->data_dir);
    n->config.data_dir = n->data_dir;
    snprintf(n->tls_cert, sizeof(n->tls_cert), "%s", c->tls_cert != NULL ? c->tls_cert : "");
    snprintf(n->tls_key, sizeof(n->tls_key), "%s", c->tls_key != NULL ? c->tls_key : "");
    snprintf(n->tls_ca, sizeof(n->tls_ca), "%s", c->tls_ca != NULL ? c->tls_ca : "");
    n->config.tls_cert = n->tls_cert[0] != '\0' ? n->tls_cert : NULL;
    n->config.tls_key = n->tls_key[0] != '\0' ? n->tls_key : NULL;
    n->config.tls_ca = n->tls_ca[0] != '\0' ? n->tls_ca : NULL;
    n->alloc = aegis__alloc_default();
    n->sm = c->sm;
    if (getrandom(&n->rng_seed, sizeof(n->rng_seed), 0) != (ssize_t)sizeof(n->rng_seed)) {
        n->rng_seed = aegis__now_ns() ^ c->id;
    }
    pthread_mutex_init(&n->status_lock, NULL);
    while (cap < c->max_pending) {
        cap <<= 1;
    }
    n->forwards = aegis__calloc(n->alloc, cap, sizeof(*n->forwards));
    n->forwards_mask = cap - 1;
    for (uint32_t b = 0; b < AEGIS_READ_BATCHES; b++) {
        n->read_batches[b].reads = aegis__calloc(n->alloc, AEGIS_READ_BATCH_MAX,
                                                 sizeof(struct aegis_read_req));
        if (n->read_batches[b].reads == NULL) {
            rv = AEGIS_ENOMEM;
        }
    }
    n->read_wait = aegis__calloc(n->alloc, AEGIS_READ_BATCH_MAX, sizeof(*n->read_wait));
    if (n->read_wait == NULL) {
        rv = AEGIS_ENOMEM;
    }
    if (n->forwards == NULL || rv != 0) {
        rv = AEGIS_ENOMEM;
        goto err;
    }
    rv = inbox_init(n);
    if (rv == 0) {
        rv = rings_init(n);
    }
    if (rv == 0) {
        rv = aegis__kv_init(&n->kv, n->alloc, n->rng_seed);
    }
    if (rv == 0) {
        rv = aegis__apply_init(n);
    }
    if (rv == 0) {
        rv = recover(n);
    }
    if (rv != 0) {
        goto err;
    }
    n->status.id = c->id;
    n->status.role = AEGIS_NODE_FOLLOWER;
    /* What was recovered, so that status is true before the raft thread's first pass. */
    n->status.term = aegis__raft_term(n->raft);
    n->status.commit_index = aegis__raft_commit_index(n->raft);
    n->status.last_index = aegis__raft_last_index(n->raft);
    n->status.snapshot_index = n->snapshot_index;
    n->status.applied_index = n->applied_index;
    *out = n;
    return 0;

err:
    aegis_node_destroy(n);
    return rv;
}

void aegis__node_set_client_hooks(struct aegis_node *n, const struct aegis_client_hooks *h)
{
    AEGIS_ASSERT(!n->started);
    n->client = *h;
}

void aegis__node_set_client_port(struct aegis_node *n, const char *host, uint16_t port,
                                 uint32_t clients_max, uint32_t read_bytes_max)
{
    AEGIS_ASSERT(!n->started);
    snprintf(n->client_host, sizeof(n->client_host), "%s", host);
    n->client_port = port;
    n->clients_max = clients_max;
    n->client_read_bytes_max = read_bytes_max;
}

uint16_t aegis__node_client_port(const struct aegis_node *n)
{
    return n->loop != NULL ? aegis__uring_loop_client_port(n->loop) : 0;
}

int aegis_node_start(struct aegis_node *n)
{
    char errmsg[AEGIS_URING_ERRMSG_BYTES] = "";
    int rv;

    if (n->started) {
        return AEGIS_EBUSY;
    }
    rv = aegis__net_init(n, errmsg, sizeof(errmsg));
    if (rv != 0) {
        AEGIS_LOG(AEGIS_LOG_ERROR, "cannot start the network: %s",
                  errmsg[0] != '\0' ? errmsg : aegis_strerror(rv));
        return rv;
    }
    rv = aegis__log_writer_start(n->log);
    if (rv == 0) {
        rv = aegis__log_reader_start(n->reader); /* Log retention. */
    }
    if (rv != 0) {
        return rv;
    }
    n->started = true;
    if (pthread_create(&n->apply_thread, NULL, aegis__apply_thread_main, n) != 0 ||
        pthread_create(&n->raft_thread, NULL, aegis__raft_thread_main, n) != 0 ||
        pthread_create(&n->net_thread, NULL, aegis__net_thread_main, n) != 0) {
        AEGIS_LOG(AEGIS_LOG_ERROR, "cannot start threads");
        abort(); /* Half-started threads cannot be unwound safely. */
    }
    AEGIS_LOG(AEGIS_LOG_INFO, "node %llu started (%s durability, data in %s)",
              (unsigned long long)n->config.id,
              n->config.fsync == AEGIS_FSYNC_NONE ? "none" : "batch", n->data_dir);
    return 0;
}

static int inbox_push(struct aegis_node *n, const struct aegis_req *q)
{
    struct aegis_inbox *in = &n->inbox;
    uint32_t count;

    if (__atomic_load_n(&n->stopping, __ATOMIC_ACQUIRE) != 0 || !n->started) {
        return AEGIS_ESHUTDOWN;
    }
    if (__atomic_load_n(&n->storage_err, __ATOMIC_ACQUIRE) != 0) {
        return AEGIS_ESTORAGE;
    }
    if (__atomic_load_n(&n->fatal, __ATOMIC_ACQUIRE) != 0) {
        return AEGIS_ESHUTDOWN;
    }
    pthread_mutex_lock(&in->lock);
    count = in->count;
    /* Backpressure at the door: with max_pending proposals in flight or queued, refuse
     * new ones here (the caller still holds them and can wait, as the RESP server does
     * by pausing the connection) rather than accept and then fail them. */
    if (count == in->cap ||
        (q->kind == AEGIS_REQ_PROPOSE &&
         count + __atomic_load_n(&n->inflight, __ATOMIC_ACQUIRE) >= n->config.max_pending)) {
        pthread_mutex_unlock(&in->lock);
        __atomic_fetch_add(&n->stats.backpressure, 1, __ATOMIC_RELAXED);
        return AEGIS_EFULL;
    }
    in->items[count] = *q;
    /* Release: the item is written before the count the raft thread checks. */
    __atomic_store_n(&in->count, count + 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&in->lock);
    if (aegis__net_thread_node == n) {
        /* From the net thread (the RESP server): wake the raft thread once per loop
         * iteration, after every command parsed in it, so that it takes them as one
         * batch (one AppendEntries, one log write) rather than one by one. */
        n->raft_wake_deferred = true;
    } else {
        aegis__waker_wake(&n->raft_waker);
    }
    return 0;
}

static int submit_buf(struct aegis_node *n, uint8_t kind, struct aegis_buf *buf,
                      aegis_done_cb cb, void *data)
{
    struct aegis_req q = {.kind = kind, .buf = buf, .cb = cb, .data = data,
                          .stamp_ns = aegis__now_ns()};
    int rv;

    if (buf == NULL) {
        return AEGIS_ENOMEM;
    }
    rv = inbox_push(n, &q);
    if (rv != 0) {
        aegis__buf_unref(buf);
    }
    return rv;
}

int aegis_node_propose(struct aegis_node *n, const void *cmd, size_t len, aegis_done_cb cb,
                       void *data)
{
    if (len > n->config.max_command_bytes) {
        return AEGIS_ETOOBIG;
    }
    return submit_buf(n, AEGIS_REQ_PROPOSE, aegis__env_command(n->alloc, cmd, len), cb, data);
}

int aegis_node_read(struct aegis_node *n, const void *query, size_t len, aegis_done_cb cb,
                    void *data)
{
    if (len > n->config.max_command_bytes) {
        return AEGIS_ETOOBIG;
    }
    return submit_buf(n, AEGIS_REQ_READ, aegis__buf_from(n->alloc, query, len), cb, data);
}

/* The blocking convenience: a callback that fills a waiter and signals it. */
struct sync_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    struct aegis_result res;
    void *value_buf;
    size_t value_cap;
};

static void sync_done(void *data, const struct aegis_result *res)
{
    struct sync_wait *w = data;

    pthread_mutex_lock(&w->lock);
    w->res = *res;
    if (res->value != NULL && w->value_buf != NULL) {
        size_t n = res->value_len < w->value_cap ? res->value_len : w->value_cap;

        memcpy(w->value_buf, res->value, n);
        w->res.value = w->value_buf;
        w->res.value_len = n;
    } else {
        w->res.value = NULL;
    }
    w->done = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

int aegis_node_propose_sync(struct aegis_node *n, const void *cmd, size_t len,
                            struct aegis_result *res, void *value_buf, size_t value_cap)
{
    struct sync_wait w = {.value_buf = value_buf, .value_cap = value_cap};
    int rv;

    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.cond, NULL);
    rv = aegis_node_propose(n, cmd, len, sync_done, &w);
    if (rv == 0) {
        pthread_mutex_lock(&w.lock);
        while (!w.done) {
            pthread_cond_wait(&w.cond, &w.lock);
        }
        pthread_mutex_unlock(&w.lock);
        if (res != NULL) {
            *res = w.res;
        }
        rv = w.res.status;
    }
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.lock);
    return rv;
}

int aegis_node_status(struct aegis_node *n, struct aegis_status *out)
{
    pthread_mutex_lock(&n->status_lock);
    *out = n->status;
    pthread_mutex_unlock(&n->status_lock);
    return 0;
}

int aegis_node_add_member(struct aegis_node *n, const struct aegis_peer_addr *peer,
                          aegis_done_cb cb, void *data)
{
    struct aegis_req q = {.kind = AEGIS_REQ_ADD, .peer = *peer, .cb = cb, .data = data};

    if (peer->id == AEGIS_NODE_NONE || peer->port == 0 || peer->host[0] == '\0') {
        return AEGIS_EINVAL;
    }
    return inbox_push(n, &q);
}

int aegis_node_remove_member(struct aegis_node *n, aegis_node_id id, aegis_done_cb cb,
                             void *data)
{
    struct aegis_req q = {.kind = AEGIS_REQ_REMOVE, .target = id, .cb = cb, .data = data};

    return inbox_push(n, &q);
}

int aegis_node_transfer_leadership(struct aegis_node *n, aegis_node_id target)
{
    struct aegis_req q = {.kind = AEGIS_REQ_TRANSFER, .target = target};
    struct aegis_status s;

    aegis_node_status(n, &s);
    if (s.role != AEGIS_NODE_LEADER) {
        return AEGIS_ENOTLEADER;
    }
    return inbox_push(n, &q);
}

int aegis__node_transfer(struct aegis_node *n, aegis_node_id target, aegis_done_cb cb,
                         void *data)
{
    struct aegis_req q = {.kind = AEGIS_REQ_TRANSFER, .target = target, .cb = cb,
                          .data = data};

    return inbox_push(n, &q);
}

int aegis_node_snapshot_async(struct aegis_node *n, aegis_done_cb cb, void *data)
{
    struct aegis_req q = {.kind = AEGIS_REQ_SNAPSHOT, .cb = cb, .data = data};

    return inbox_push(n, &q);
}

int aegis_node_snapshot(struct aegis_node *n)
{
    struct sync_wait w = {.value_buf = NULL};
    int rv;

    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.cond, NULL);
    rv = aegis_node_snapshot_async(n, sync_done, &w);
    if (rv == 0) {
        pthread_mutex_lock(&w.lock);
        while (!w.done) {
            pthread_cond_wait(&w.cond, &w.lock);
        }
        pthread_mutex_unlock(&w.lock);
        rv = w.res.status;
    }
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.lock);
    return rv;
}

static void stop_stage(struct aegis_node *n, int stage)
{
    __atomic_store_n(&n->stopping, stage, __ATOMIC_RELEASE);
    aegis__waker_wake(&n->raft_waker);
    aegis__waker_wake(&n->apply_waker);
}

static void complete_leftovers(struct aegis_node *n);

int aegis_node_stop(struct aegis_node *n)
{
    int rv;

    if (!n->started) {
        return 0;
    }
    /* 1: the raft thread stops taking work and exits. */
    stop_stage(n, 1);
    aegis__waker_wake(&n->raft_waker);
    pthread_join(n->raft_thread, NULL);
    aegis__log_reader_stop(n->reader); /* Log retention: nothing reads back any more. */
    /* The log thread writes and fdatasyncs what was queued, then exits. */
    aegis__log_writer_stop(n->log);
    rv = __atomic_load_n(&n->fatal, __ATOMIC_ACQUIRE);
    /* 2: the apply thread applies what it has, fails what waits, exits. */
    stop_stage(n, 2);
    pthread_join(n->apply_thread, NULL);
    /* 3: the network closes. */
    stop_stage(n, 3);
    aegis__uring_loop_stop(n->loop);
    aegis__uring_loop_wake(n->loop);
    pthread_join(n->net_thread, NULL);
    complete_leftovers(n);
    n->started = false;
    AEGIS_LOG(AEGIS_LOG_INFO, "node %llu stopped", (unsigned long long)n->config.id);
    return rv;
}

static void drain_leftovers(struct aegis_node *n)
{
    struct aegis_peer_msg pm;
    struct aegis_apply_report rep;

    while (aegis__ring_peer_msg_pop_sc(&n->peer_ring, &pm)) {
        aegis__msg_release(pm.msg, n->alloc);
        aegis__free(n->alloc, pm.msg);
    }
    while (aegis__ring_report_pop_sc(&n->report_ring, &rep)) {
        aegis__free(n->alloc, rep.meta);
    }
    for (uint32_t i = 0; i < n->held_count; i++) {
        aegis__msg_release(&n->held[i], n->alloc);
    }
    n->held_count = 0;
}

static void complete_one(aegis_done_cb cb, void *data, int status)
{
    struct aegis_result res = {.status = status};

    if (cb != NULL) {
        cb(data, &res);
    }
}

/* Every thread is joined: run, on the stopping thread, the callback of each request the
 * raft thread still held, so that every accepted call is answered exactly once (a
 * propose_sync caller would otherwise wait forever). Commands that may have reached a
 * leader (forwarded, registered, a membership change) get AEGIS_ELEADERLOST; the rest
 * were never proposed and get AEGIS_ESHUTDOWN. */
static void complete_leftovers(struct aegis_node *n)
{
    struct aegis_inbox *in = &n->inbox;

    for (uint32_t i = 0; i < in->count; i++) {
        complete_one(in->items[i].cb, in->items[i].data, AEGIS_ESHUTDOWN);
        aegis__buf_unref(in->items[i].buf);
    }
    in->count = 0;
    for (uint32_t i = 0; i <= n->forwards_mask; i++) {
        if (n->forwards[i].request_id != 0) {
            complete_one(n->forwards[i].cb, n->forwards[i].data, AEGIS_ELEADERLOST);
            n->forwards[i].request_id = 0;
        }
    }
    if (n->admin_forward.request_id != 0) {
        complete_one(n->admin_forward.cb, n->admin_forward.data, AEGIS_ELEADERLOST);
        n->admin_forward.request_id = 0;
    }
    if (n->adding.id != AEGIS_NODE_NONE) {
        complete_one(n->adding.cb, n->adding.data, AEGIS_ELEADERLOST);
        n->adding.id = AEGIS_NODE_NONE;
    }
    for (uint32_t i = 0; i < n->apply_backlog_count; i++) {
        struct aegis_apply_item *it = &n->apply_backlog[i];

        if (it->kind == AEGIS_APPLY_REGISTER) {
            complete_one(it->cb, it->data, AEGIS_ELEADERLOST);
        } else if (it->kind == AEGIS_APPLY_COMPLETE || it->kind == AEGIS_APPLY_RESULT) {
            complete_one(it->cb, it->data, it->status); /* Decided: keep the answer. */
        } else if (it->kind == AEGIS_APPLY_READ || it->kind == AEGIS_APPLY_SNAPSHOT_NOW) {
            complete_one(it->cb, it->data, AEGIS_ESHUTDOWN);
        }
        aegis__entry_unref(&it->entry);
        aegis__buf_unref(it->buf);
        aegis__free(n->alloc, it->meta);
    }
    n->apply_backlog_count = 0;
    for (uint32_t b = 0; b < AEGIS_READ_BATCHES; b++) {
        for (uint32_t k = 0; k < n->read_batches[b].count; k++) {
            complete_one(n->read_batches[b].reads[k].cb, n->read_batches[b].reads[k].data,
                         AEGIS_ESHUTDOWN);
            aegis__buf_unref(n->read_batches[b].reads[k].query);
        }
        n->read_batches[b].count = 0;
        n->read_batches[b].ctx = 0;
    }
    for (uint32_t k = 0; k < n->read_wait_count; k++) {
        complete_one(n->read_wait[k].cb, n->read_wait[k].data, AEGIS_ESHUTDOWN);
        aegis__buf_unref(n->read_wait[k].query);
    }
    n->read_wait_count = 0;
}

void aegis_node_destroy(struct aegis_node *n)
{
    if (n == NULL) {
        return;
    }
    aegis_node_stop(n);
    drain_leftovers(n);
    aegis__uring_loop_destroy(n->loop);
    aegis__raft_destroy(n->raft);
    aegis__snap_transfer_close(&n->snapx);
    if (n->log != NULL) {
        aegis__log_writer_close(n->log);
    }
    aegis__log_reader_close(n->reader);
    aegis__apply_close(n);
    aegis__kv_close(&n->kv);
    aegis__ring_peer_msg_close(&n->peer_ring);
    aegis__ring_report_close(&n->report_ring);
    aegis__ring_apply_close(&n->apply_ring);
    aegis__ring_net_post_close(&n->raft_post);
    aegis__ring_net_post_close(&n->apply_post);
    aegis__waker_close(&n->raft_waker);
    aegis__waker_close(&n->apply_waker);
    aegis__free(n->alloc, n->inbox.items);
    aegis__free(n->alloc, n->inbox.spare);
    aegis__free(n->alloc, n->forwards);
    aegis__free(n->alloc, n->held);
    aegis__free(n->alloc, n->held_seq);
    aegis__free(n->alloc, n->apply_backlog);
    for (uint32_t b = 0; b < AEGIS_READ_BATCHES; b++) {
        aegis__free(n->alloc, n->read_batches[b].reads);
    }
    aegis__free(n->alloc, n->read_wait);
    aegis__metrics_close(&n->metrics);
    aegis__datadir_close(&n->datadir); /* Last: the directory is ours until here. */
    free(n);
}
