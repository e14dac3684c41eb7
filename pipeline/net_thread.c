/* SPDX-License-Identifier: MIT */
/* The net thread (aegis-net): runs the node's io_uring loop (net/uring_loop.h).
 *
 * Inbound: each peer frame is decoded (net/codec.h, hostile input) and its values checked
 * (aegis__msg_validate, engine/msg.h) into a heap message pushed to the raft thread's
 * peer ring. A frame that does not decode, claims another sender than its link or holds
 * values no honest peer sends is counted (peer_msgs_rejected), logged at most a few
 * lines a second, and closes that link: the stream is not trusted further (the peer
 * redials; Raft retransmits). Messages that are well formed but out of place are the
 * raft thread's to refuse (raft_thread.c reject_peer). A full ring drops the message:
 * Raft tolerates loss, and dropping keeps the net thread from blocking on a busy raft
 * thread.
 *
 * Outbound: the raft and apply threads post closures (send this message, add that peer)
 * through their SPSC rings and wake the loop; on_wake drains both. A message is encoded
 * with the codec's vectored encoder: headers go to a scratch area allocated with the send
 * context, payload iovecs point into the entries' reference-counted buffers, and the
 * message (holding those references) lives until the loop's completion callback.
 * Messages whose iovec count exceeds what one send may carry are flattened (copied) —
 * only AppendEntries with hundreds of entries reach that. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "net/codec.h"
#include "pipeline/logging.h"
#include "pipeline/node_int.h"

_Thread_local struct aegis_node *aegis__net_thread_node;

struct send_ctx {
    struct aegis_node *n;
    struct aegis_msg *msg;   /* Owned: released when the kernel is done. */
    uint8_t *flat;           /* Flattened frame, when used. */
    size_t iov_count;
    struct iovec iov[];      /* Followed by the scratch bytes. */
};

static void msg_free(struct aegis_node *n, struct aegis_msg *m)
{
    aegis__msg_release(m, n->alloc);
    aegis__free(n->alloc, m);
}

static void send_done(struct aegis_uring_loop *loop, int status, void *data)
{
    struct send_ctx *ctx = data;
    struct aegis_node *n = ctx->n;

    (void)loop;
    if (status != 0) {
        AEGIS_STAT_INC(n->stats.peer_send_failed);
    }
    msg_free(n, ctx->msg);
    aegis__free(n->alloc, ctx->flat);
    aegis__free(n->alloc, ctx);
}

/* A link with this many frames not yet handed to the kernel is stalled (a healthy one
 * drains at every loop pass): snapshot chunks to it are dropped, see below. */
#define SNAPSHOT_QUEUED_MAX 16

void aegis__net_send_msg(struct aegis_node *n, struct aegis_msg *m)
{
    struct aegis_codec_size size;
    struct send_ctx *ctx;
    size_t iov_count = 0, frame_bytes = 0;
    int rv;

    /* The core copies each snapshot chunk (up to 1 MiB) and resends it after an election
     * timeout without an answer. To a peer that stopped reading (SIGSTOP, a hung host)
     * every resend would queue another copy, up to the link's peer_queue_max frames:
     * gigabytes. Dropping chunks on a stalled link bounds them to SNAPSHOT_QUEUED_MAX
     * per peer; the core resends once the peer answers again. */
    if (m->type == AEGIS_MSG_SNAPSHOT_REQ &&
        aegis__uring_loop_peer_queued(n->loop, m->to) >= SNAPSHOT_QUEUED_MAX) {
        AEGIS_STAT_INC(n->stats.peer_send_failed);
        goto err_drop;
    }
    rv = aegis__codec_encode_size(m, &size);
    if (rv != 0) {
        goto err_drop;
    }
    if (size.iov_count <= AEGIS_URING_SEND_IOV_MAX) {
        ctx = aegis__malloc(n->alloc, sizeof(*ctx) + size.iov_count * sizeof(struct iovec) +
                                          size.scratch_bytes);
        if (ctx == NULL) {
            goto err_drop;
        }
        ctx->flat = NULL;
        rv = aegis__codec_encode_iov(m, (uint8_t *)&ctx->iov[size.iov_count],
                                     size.scratch_bytes, ctx->iov, size.iov_count, &iov_count,
                                     &frame_bytes);
        AEGIS_ASSERT(rv == 0);
    } else {
        ctx = aegis__malloc(n->alloc, sizeof(*ctx) + sizeof(struct iovec));
        if (ctx == NULL) {
            goto err_drop;
        }
        rv = aegis__codec_encode_alloc(m, n->alloc, &ctx->flat, &frame_bytes);
        if (rv != 0) {
            aegis__free(n->alloc, ctx);
            goto err_drop;
        }
        ctx->iov[0] = (struct iovec){.iov_base = ctx->flat, .iov_len = frame_bytes};
        iov_count = 1;
    }
    ctx->n = n;
    ctx->msg = m;
    ctx->iov_count = iov_count;
    rv = aegis__uring_loop_send(n->loop, m->to, ctx->iov, (int)iov_count, send_done, ctx);
    if (rv != 0) {
        AEGIS_STAT_INC(n->stats.peer_send_failed);
        aegis__free(n->alloc, ctx->flat);
        aegis__free(n->alloc, ctx);
        goto err_drop;
    }
    AEGIS_STAT_INC(n->stats.peer_msgs_out);
    aegis__metrics_add(&n->metrics, AEGIS_MT_NET, AEGIS_MC_PEER_BYTES_OUT, frame_bytes);
    return;

err_drop:
    msg_free(n, m);
}

static void on_frame(struct aegis_uring_loop *loop, aegis_node_id peer, const uint8_t *frame,
                     size_t len, void *data)
{
    struct aegis_node *n = data;
    struct aegis_peer_msg pm;
    int rv;

    pm.recv_ns = aegis__now_ns(); /* Per frame: a frame is a batch of entries. */
    aegis__metrics_add(&n->metrics, AEGIS_MT_NET, AEGIS_MC_PEER_BYTES_IN, len);
    pm.msg = aegis__malloc(n->alloc, sizeof(*pm.msg));
    if (pm.msg == NULL) {
        AEGIS_STAT_INC(n->stats.peer_msgs_dropped);
        return;
    }
    rv = aegis__codec_decode(frame, len, pm.msg, n->alloc);
    if (rv == 0) {
        rv = pm.msg->from != peer ? AEGIS_ECORRUPT : aegis__msg_validate(pm.msg);
        if (rv != 0) {
            aegis__msg_release(pm.msg, n->alloc);
        }
    }
    if (rv != 0) {
        AEGIS_LOG_RATELIMITED(AEGIS_LOG_WARN,
                              "refused a bad frame from node %llu (%s): closing the link",
                              (unsigned long long)peer, aegis_strerror(rv));
        aegis__free(n->alloc, pm.msg);
        AEGIS_STAT_INC(n->stats.peer_msgs_dropped);
        aegis__metrics_add(&n->metrics, AEGIS_MT_NET, AEGIS_MC_ERR_PEER_DECODE, 1);
        aegis__metrics_add(&n->metrics, AEGIS_MT_NET, AEGIS_MC_PEER_REJECTED, 1);
        aegis__uring_loop_peer_reset(loop, peer, rv);
        return;
    }
    if (!aegis__ring_peer_msg_push_sp(&n->peer_ring, &pm)) {
        msg_free(n, pm.msg);
        AEGIS_STAT_INC(n->stats.peer_msgs_dropped);
        aegis__metrics_add(&n->metrics, AEGIS_MT_NET, AEGIS_MC_RING_FULL_PEER, 1);
        return;
    }
    AEGIS_STAT_INC(n->stats.peer_msgs_in);
}

static void on_peer_state(struct aegis_uring_loop *loop, aegis_node_id peer, bool up,
                          int status, void *data)
{
    (void)loop;
    (void)data;
    /* The one line per link change (net/uring_peer.c's own is a debug line). */
    AEGIS_LOG_EVENT(up ? AEGIS_LOG_INFO : AEGIS_LOG_WARN, "peer_link", "peer=%llu state=%s%s%s%s",
                    (unsigned long long)peer, up ? "up" : "down", status != 0 ? " err=\"" : "",
                    status != 0 ? aegis_strerror(status) : "", status != 0 ? "\"" : "");
}

static void drain_posts(struct aegis_node *n, struct aegis_ring_net_post *ring)
{
    struct aegis_net_post p;

    while (aegis__ring_net_post_pop_sc(ring, &p)) {
        p.fn(n, p.arg, p.u);
    }
}

static void on_wake(struct aegis_uring_loop *loop, void *data)
{
    struct aegis_node *n = data;

    n->metrics.net_wake_ns = aegis__now_ns(); /* One clock read for this drain (metrics). */
    drain_posts(n, &n->raft_post);
    drain_posts(n, &n->apply_post);
    if (n->client.on_flush != NULL) {
        n->client.on_flush(n, n->client.data);
    }
    if (__atomic_load_n(&n->stopping, __ATOMIC_ACQUIRE) >= 3) {
        aegis__uring_loop_stop(loop);
    }
}

static void on_client_open(struct aegis_uring_loop *loop, aegis_uring_client_id c, void *data)
{
    struct aegis_node *n = data;

    (void)loop;
    aegis__metrics_add(&n->metrics, AEGIS_MT_NET, AEGIS_MC_CLIENT_OPENED, 1);
    if (n->client.on_open != NULL) {
        n->client.on_open(n, c, n->client.data);
    }
}

static size_t on_client_data(struct aegis_uring_loop *loop, aegis_uring_client_id c,
                             const uint8_t *bytes, size_t len, void *data)
{
    struct aegis_node *n = data;
    size_t used;

    (void)loop;
    if (n->client.on_data == NULL) {
        return len;
    }
    used = n->client.on_data(n, c, bytes, len, n->client.data);
    /* Unconsumed bytes come back in a later call: count what was taken. */
    aegis__metrics_add(&n->metrics, AEGIS_MT_NET, AEGIS_MC_CLIENT_BYTES_IN, used);
    return used;
}

static void on_client_close(struct aegis_uring_loop *loop, aegis_uring_client_id c, int status,
                            void *data)
{
    struct aegis_node *n = data;

    (void)loop;
    aegis__metrics_add(&n->metrics, AEGIS_MT_NET, AEGIS_MC_CLIENT_CLOSED, 1);
    if (n->client.on_close != NULL) {
        n->client.on_close(n, c, status, n->client.data);
    }
}

static void on_tick(struct aegis_uring_loop *loop, uint64_t now_ms, void *data)
{
    struct aegis_node *n = data;

    (void)loop;
    if (n->client.on_tick != NULL) {
        n->client.on_tick(n, now_ms, n->client.data);
    }
}

static void on_log(int level, const char *line, void *data)
{
    static const int map[] = {AEGIS_LOG_ERROR, AEGIS_LOG_WARN, AEGIS_LOG_INFO,
                              AEGIS_LOG_DEBUG};

    (void)data;
    AEGIS_LOG(level >= 0 && level <= 3 ? map[level] : AEGIS_LOG_ERROR, "%s", line);
}

int aegis__net_init(struct aegis_node *n, char *errmsg, size_t errmsg_len)
{
    struct aegis_uring_peer_addr peers[AEGIS_PEERS_MAX];
    struct aegis_uring_config c;
    struct aegis_uring_callbacks cb = {
        .on_frame = on_frame,
        .on_peer_state = on_peer_state,
        .on_client_open = on_client_open,
        .on_client_data = on_client_data,
        .on_client_close = on_client_close,
        .on_wake = on_wake,
        .on_tick = on_tick,
        .on_log = on_log,
        .data = n,
    };
    const struct aegis_peer_addr *self = NULL;

    memset(&c, 0, sizeof(c));
    for (uint32_t i = 0; i < n->config.peers_count; i++) {
        const struct aegis_peer_addr *p = &n->config.peers[i];

        peers[i] = (struct aegis_uring_peer_addr){.id = p->id, .host = p->host,
                                                  .port = p->port};
        if (p->id == n->config.id) {
            self = p;
        }
    }
    if (self == NULL) {
        snprintf(errmsg, errmsg_len, "node %llu is not in its own peers list",
                 (unsigned long long)n->config.id);
        return AEGIS_ECONFIG;
    }
    c.self_id = n->config.id;
    c.cluster_id = n->config.cluster_id != 0 ? n->config.cluster_id : 1;
    c.peer_host = self->host;
    c.peer_port = self->port;
    c.peers = peers;
    c.peers_count = n->config.peers_count;
    c.peers_max = AEGIS_PEERS_MAX;
    c.client_host = n->client_host[0] != '\0' ? n->client_host : NULL;
    c.client_port = n->client_port;
    c.clients_max = n->clients_max;
    c.frame_bytes_max = 64u << 20;
    c.peer_queue_max = 4096;
    c.client_read_bytes_max = n->client_read_bytes_max;
    c.tick_ms = 100;
    c.rng_seed = n->rng_seed;
    c.log_level = aegis__log_level <= AEGIS_LOG_DEBUG ? AEGIS_URING_LOG_DEBUG
                  : aegis__log_level <= AEGIS_LOG_INFO ? AEGIS_URING_LOG_INFO
                                                       : AEGIS_URING_LOG_WARN;
    c.tls_cert = n->config.tls_cert;
    c.tls_key = n->config.tls_key;
    c.tls_ca = n->config.tls_ca;
    c.client_tls = n->config.client_tls;
    c.alloc = n->alloc;
    cb.on_log = on_log;
    return aegis__uring_loop_create(&c, &cb, &n->loop, errmsg, errmsg_len);
}

void *aegis__net_thread_main(void *arg)
{
    struct aegis_node *n = arg;
    int rv;

    pthread_setname_np(pthread_self(), "aegis-net");
    aegis__net_thread_node = n;
    /* Not bounded by design: the net thread ends only when the node stops (on_wake sees
     * stopping >= 3). */
    for (;;) {
        rv = aegis__uring_loop_run_once(n->loop, -1);
        if (n->raft_wake_deferred) {
            n->raft_wake_deferred = false;
            aegis__waker_wake(&n->raft_waker);
        }
        if (rv < 0) {
            aegis__node_fail(n, rv, "network loop");
            break;
        }
        if (__atomic_load_n(&n->stopping, __ATOMIC_ACQUIRE) >= 3) {
            break;
        }
    }
    aegis__net_thread_node = NULL;
    /* Whatever was posted after the loop stopped is dropped here. */
    drain_posts(n, &n->raft_post);
    drain_posts(n, &n->apply_post);
    return NULL;
}

static void post(struct aegis_node *n, struct aegis_ring_net_post *ring,
                 const struct aegis_net_post *p)
{
    /* The rings are sized for the window and the pending limit; a full one means the net
     * thread is behind. Wait for it (sleeping, not spinning) rather than drop a reply or
     * a membership change. */
    while (!aegis__ring_net_post_push_sp(ring, p)) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 100000};

        aegis__uring_loop_wake(n->loop);
        nanosleep(&ts, NULL);
    }
    aegis__uring_loop_wake(n->loop);
}

void aegis__net_post_from_raft(struct aegis_node *n, const struct aegis_net_post *p)
{
    post(n, &n->raft_post, p);
}

void aegis__net_post_from_apply(struct aegis_node *n, const struct aegis_net_post *p)
{
    post(n, &n->apply_post, p);
}

int aegis__node_client_write(struct aegis_node *n, aegis_uring_client_id c, const void *bytes,
                             size_t len)
{
    aegis__metrics_add(&n->metrics, AEGIS_MT_NET, AEGIS_MC_CLIENT_BYTES_OUT, len);
    return aegis__uring_loop_client_write_copy(n->loop, c, bytes, len);
}
