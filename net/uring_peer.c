/* SPDX-License-Identifier: MIT */
/* Peer links: dialing, TLS, the hello, frames.
 *
 * Establishment. The node with the lower id dials (net/conn_pool.h). Once TCP connects:
 *   1. with TLS (--tls-cert/--tls-key/--tls-ca), the TLS handshake, both sides presenting
 *      a certificate that chains to the cluster CA (uring_tls.c, tls.c). The dialer then
 *      checks that the acceptor's certificate names the node it dialed; the acceptor
 *      notes the node id its peer's certificate names (aegis__uring_peer_tls_up);
 *   2. the dialer sends its hello and waits for the acceptor's. The acceptor reads the
 *      dialer's hello and checks it -- with TLS the sender must be the node named by the
 *      certificate -- and answers with its own: on success it binds the connection to
 *      the peer (replacing an older one from the same peer) and the link is up. On
 *      failure it answers nothing: it closes the connection and logs the reason locally
 *      (rate-limited), so a stranger learns nothing about the cluster, not even its id.
 *      The dialer checks the acceptor's hello the same way.
 * The TCP connect must finish within aegis__conn_pool_connect_stage_ms (at most 500 ms, so a
 * dial into a partition is retried with a fresh SYN instead of waiting out the kernel's
 * SYN backoff), the TLS handshake and hellos within connect_timeout_ms after it. Every
 * failure schedules a redial with backoff (dialer side), capped low so that a peer that
 * comes back is redialed promptly (conn_pool.h, "Prompt redial"). Established peer links
 * carry TCP_USER_TIMEOUT = aegis__conn_pool_unacked_ms (1 s at most): bytes unacknowledged
 * that long (a silent partition) drop the link, which is then redialed, rather than
 * leaving it to TCP's retransmission backoff of many seconds after the heal. No frame is
 * read before both checks.
 *
 * The hello and the frame format are in peer_frame.h (the pure decoders). A hello is
 * refused for: a wrong magic or a reserved flag set (AEGIS_ECORRUPT), another version
 * (AEGIS_EVERSION), another cluster (AEGIS_ECLUSTER), an unknown sender, a wrong
 * receiver id, a sender other than the certificate's node (AEGIS_EUNKNOWNNODE), or a dial
 * from the higher id to the lower (AEGIS_EINVAL: the two nodes disagree about who dials).
 *
 * A frame length above frame_bytes_max closes the link (the stream cannot be
 * resynchronised) and is logged and counted (oversize_frames). Bodies of length 0 are
 * legal.
 *
 * Log lines about inbound connections that have not passed the hello (refusals,
 * timeouts, too many at once) go through one rate limiter (loop->rl_peer): a flood of
 * strangers costs one line per second. */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <aegis/error.h>

#include "engine/assert.h"
#include "net/peer_frame.h"
#include "net/uring_loop_int.h"

static int hello_expect_check(const struct aegis_uring_loop *loop, const struct aegis_hello *h,
                              aegis_node_id sender_id)
{
    struct aegis_hello_expect e = {
        .cluster_id = loop->config.cluster_id,
        .self_id = loop->config.self_id,
        .sender_id = sender_id,
    };

    return aegis__hello_check(h, &e);
}

/* A peer socket gives up on bytes left unacknowledged for aegis__conn_pool_unacked_ms (see
 * the top comment). Best effort: without it, the link is still found dead by keepalive. */
static void peer_socket_options(const struct aegis_uring_loop *loop, int fd)
{
    unsigned int user_timeout_ms =
        (unsigned int)aegis__conn_pool_unacked_ms(loop->config.connect_timeout_ms);

    AEGIS_ASSERT(fd >= 0);
    AEGIS_ASSERT(user_timeout_ms > 0);
    aegis__uring_socket_options(fd);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms,
                     sizeof(user_timeout_ms));
}

/* Log repeated failures only at attempts 1, 2, 4, 8, ... (rate limit). */
static int failure_level(uint32_t attempts)
{
    return (attempts & (attempts - 1)) == 0 ? AEGIS_URING_LOG_WARN : AEGIS_URING_LOG_DEBUG;
}

static void dial(struct aegis_uring_loop *loop, struct aegis_peer *peer)
{
    struct aegis_uring_conn *conn;
    struct io_uring_sqe *sqe;
    int fd;

    AEGIS_ASSERT(peer->dials);
    AEGIS_ASSERT(peer->conn == NULL);
    fd = socket(peer->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        aegis__uring_log(loop, AEGIS_URING_LOG_ERROR, "socket: %s", strerror(errno));
        aegis__conn_pool_on_failure(&loop->pool, peer, loop->now_ms, &loop->rng);
        return;
    }
    peer_socket_options(loop, fd);
    conn = aegis__uring_conn_open(loop, URING_CONN_PEER_OUT, fd);
    if (conn == NULL) {
        close(fd);
        aegis__uring_log(loop, AEGIS_URING_LOG_ERROR,
                         "dial peer %" PRIu64 ": no free slot or no memory", peer->id);
        aegis__conn_pool_on_failure(&loop->pool, peer, loop->now_ms, &loop->rng);
        return;
    }
    if (loop->peer_tls != NULL && aegis__uring_tls_start(conn, loop->peer_tls, false) != 0) {
        aegis__uring_log(loop, AEGIS_URING_LOG_ERROR,
                         "dial peer %" PRIu64 ": no memory for TLS", peer->id);
        conn->peer = NULL;
        aegis__uring_conn_close(conn, AEGIS_ENOMEM);
        aegis__conn_pool_on_failure(&loop->pool, peer, loop->now_ms, &loop->rng);
        return;
    }
    memcpy(&conn->addr, &peer->addr, sizeof(conn->addr));
    conn->addr_len = peer->addr_len;
    conn->peer = peer;
    conn->deadline_ms =
        loop->now_ms + aegis__conn_pool_connect_stage_ms(loop->config.connect_timeout_ms);
    peer->conn = conn;
    peer->state = AEGIS_PEER_CONNECTING;
    sqe = aegis__uring_sqe(loop, (uint64_t)(uintptr_t)conn | URING_OP_CONNECT);
    io_uring_prep_connect(sqe, fd, (struct sockaddr *)&conn->addr, conn->addr_len);
    conn->connect_armed = true;
    conn->inflight++;
}

void aegis__uring_peer_service(struct aegis_uring_loop *loop)
{
    for (uint32_t i = 0; i < loop->pool.peers_max; i++) {
        struct aegis_peer *peer = aegis__conn_pool_slot(&loop->pool, i);
        if (peer->in_use && aegis__conn_pool_dial_due(peer, loop->now_ms)) {
            dial(loop, peer);
        }
    }
    for (uint32_t i = 0; i < loop->peer_slots; i++) {
        struct aegis_uring_conn *conn = &loop->conns[i];
        if (conn->in_use && !conn->closing && !conn->ready && loop->now_ms >= conn->deadline_ms) {
            if (conn->kind == URING_CONN_PEER_IN) {
                aegis__uring_log_limited(loop, &loop->rl_peer, AEGIS_URING_LOG_WARN,
                                         "inbound peer connection closed: no %s within %u ms",
                                         conn->tls != NULL && !conn->tls_up ? "TLS handshake"
                                                                             : "hello",
                                         loop->config.connect_timeout_ms);
            } else {
                aegis__uring_log(loop, AEGIS_URING_LOG_DEBUG, "peer link setup timed out");
            }
            aegis__uring_conn_close(conn, AEGIS_ETIMEDOUT);
        }
    }
}

void aegis__uring_peer_detach(struct aegis_uring_conn *conn, int status)
{
    struct aegis_uring_loop *loop = conn->loop;
    struct aegis_peer *peer = conn->peer;
    bool was_up;
    uint64_t delay;

    if (peer == NULL) {
        return;
    }
    AEGIS_ASSERT(peer->conn == conn);
    was_up = peer->state == AEGIS_PEER_CONNECTED;
    peer->conn = NULL;
    conn->peer = NULL;
    if (status == 0) {
        status = AEGIS_ECONNRESET; /* The peer closed the stream. */
    }
    if (was_up) {
        peer->stats.disconnects++;
    } else if (conn->kind == URING_CONN_PEER_OUT) {
        peer->stats.connect_failures++;
    }
    delay = aegis__conn_pool_on_failure(&loop->pool, peer, loop->now_ms, &loop->rng);
    if (status == AEGIS_ESHUTDOWN) {
        return; /* Removed or shutting down: no news, no callback. */
    }
    /* A lost link is reported once by on_peer_state's line: here it is a debug detail. */
    aegis__uring_log(loop, was_up ? AEGIS_URING_LOG_DEBUG : failure_level(peer->attempts),
                     "peer %" PRIu64 " (%s:%u) %s: %s; attempt %u, next dial in %" PRIu64 " ms",
                     peer->id, peer->host, (unsigned)peer->port,
                     was_up ? "link lost" : "unreachable", aegis__uring_errtext(status),
                     peer->attempts, delay);
    if (was_up && loop->cb.on_peer_state != NULL) {
        loop->cb.on_peer_state(loop, peer->id, false, status, loop->cb.data);
    }
}

void aegis__uring_peer_connected(struct aegis_uring_conn *conn, int res)
{
    struct aegis_peer *peer = conn->peer;

    AEGIS_ASSERT(conn->kind == URING_CONN_PEER_OUT);
    AEGIS_ASSERT(peer != NULL);
    if (res < 0) {
        aegis__uring_conn_close(conn, res);
        return;
    }
    peer->state = AEGIS_PEER_HANDSHAKE;
    /* TCP is up: the TLS handshake and the hellos get the whole budget from here. */
    conn->deadline_ms = conn->loop->now_ms + conn->loop->config.connect_timeout_ms;
    aegis__hello_encode(conn->hello_out, conn->loop->config.cluster_id,
                        conn->loop->config.self_id, peer->id);
    conn->hello_out_len = AEGIS_URING_HELLO_BYTES;
    if (conn->tls != NULL) {
        aegis__uring_tls_kick(conn); /* The ClientHello; the hello waits for the end. */
        return;
    }
    aegis__uring_conn_dirty(conn);
}

int aegis__uring_peer_tls_up(struct aegis_uring_conn *conn)
{
    struct aegis_uring_loop *loop = conn->loop;
    char why[AEGIS_TLS_ERR_BYTES];
    aegis_node_id id = AEGIS_NODE_NONE;
    int rv = aegis__tls_peer_node_id(conn->tls, &id, why, sizeof(why));

    if (rv == 0 && conn->kind == URING_CONN_PEER_OUT && id != conn->peer->id) {
        snprintf(why, sizeof(why), "its certificate names node %" PRIu64, id);
        rv = AEGIS_EACCES;
    }
    if (rv == 0 && id == loop->config.self_id) {
        snprintf(why, sizeof(why), "its certificate names this node (%" PRIu64 ")", id);
        rv = AEGIS_EACCES;
    }
    if (rv != 0) {
        if (conn->kind == URING_CONN_PEER_IN) {
            loop->stats.peer_hello_rejects++;
            aegis__uring_log_limited(loop, &loop->rl_peer, AEGIS_URING_LOG_WARN,
                                     "inbound peer connection refused: %s", why);
        } else {
            conn->peer->stats.handshake_rejects++;
            aegis__uring_log_limited(loop, &loop->rl_peer, AEGIS_URING_LOG_WARN,
                                     "peer %" PRIu64 " at %s:%u refused: %s", conn->peer->id,
                                     conn->peer->host, (unsigned)conn->peer->port, why);
        }
        aegis__uring_conn_close(conn, rv);
        return rv;
    }
    conn->tls_node = id;
    return 0;
}

void aegis__uring_peer_accepted(struct aegis_uring_loop *loop, int fd)
{
    struct aegis_uring_conn *conn = NULL;

    loop->stats.peer_accepts++;
    if (loop->peers_pending < URING_PEER_PENDING_MAX) {
        conn = aegis__uring_conn_open(loop, URING_CONN_PEER_IN, fd);
    }
    if (conn == NULL) {
        aegis__uring_log_limited(loop, &loop->rl_peer, AEGIS_URING_LOG_WARN,
                                 "peer listener: too many connections in their hello; "
                                 "closing one");
        close(fd);
        return;
    }
    if (loop->peer_tls != NULL && aegis__uring_tls_start(conn, loop->peer_tls, true) != 0) {
        loop->peers_pending++; /* finalize counts it down. */
        aegis__uring_conn_close(conn, AEGIS_ENOMEM);
        return;
    }
    peer_socket_options(loop, fd);
    loop->peers_pending++;
    conn->deadline_ms = loop->now_ms + loop->config.connect_timeout_ms;
    aegis__uring_conn_dirty(conn);
}

static void link_up(struct aegis_uring_conn *conn, struct aegis_peer *peer)
{
    struct aegis_uring_loop *loop = conn->loop;

    conn->hello_in = true;
    conn->ready = true;
    aegis__conn_pool_on_connected(&loop->pool, peer);
    aegis__uring_log(loop, AEGIS_URING_LOG_DEBUG, "peer %" PRIu64 " link up (%s)", peer->id,
                     conn->kind == URING_CONN_PEER_OUT ? "dialed" : "accepted");
    aegis__uring_conn_dirty(conn);
    if (loop->cb.on_peer_state != NULL) {
        loop->cb.on_peer_state(loop, peer->id, true, 0, loop->cb.data);
    }
}

/* Refuse an inbound hello: close without an answer (a stranger learns nothing about the
 * cluster) and log the real reason here, rate-limited. */
static void hello_refuse(struct aegis_uring_conn *conn, const struct aegis_hello *h,
                         int status)
{
    struct aegis_uring_loop *loop = conn->loop;

    loop->stats.peer_hello_rejects++;
    if (conn->tls != NULL && conn->tls_node != h->sender) {
        aegis__uring_log_limited(loop, &loop->rl_peer, AEGIS_URING_LOG_WARN,
                                 "refused hello from node %" PRIu64 ": its TLS certificate "
                                 "names node %" PRIu64,
                                 h->sender, conn->tls_node);
    } else {
        char why[160];

        aegis__hello_describe(status, h, why, sizeof(why)); /* Both versions on EVERSION. */
        aegis__uring_log_limited(loop, &loop->rl_peer, AEGIS_URING_LOG_WARN,
                                 "refused hello from node %" PRIu64 " (cluster %" PRIu64
                                 ", to node %" PRIu64 "%s): %s",
                                 h->sender, h->cluster_id, h->receiver,
                                 conn->tls != NULL ? ", TLS" : "", why);
    }
    aegis__uring_conn_close(conn, status);
}

static void hello_accept(struct aegis_uring_conn *conn, const struct aegis_hello *h)
{
    struct aegis_uring_loop *loop = conn->loop;
    struct aegis_peer *peer = NULL;
    int status = hello_expect_check(loop, h, conn->tls != NULL ? conn->tls_node
                                                               : AEGIS_NODE_NONE);

    if (status == 0) {
        peer = aegis__conn_pool_get(&loop->pool, h->sender);
        if (peer == NULL) {
            status = AEGIS_EUNKNOWNNODE;
        } else if (peer->dials) {
            status = AEGIS_EINVAL;
        }
    }
    if (status != 0) {
        if (peer != NULL) {
            peer->stats.handshake_rejects++;
        }
        hello_refuse(conn, h, status);
        return;
    }
    AEGIS_ASSERT(loop->peers_pending > 0);
    loop->peers_pending--;
    conn->hello_in = true;
    if (peer->conn != NULL) {
        /* The dialer holds one connection at a time: a new one means the old is dead. */
        aegis__uring_conn_close(peer->conn, AEGIS_ECONNRESET);
    }
    AEGIS_ASSERT(peer->conn == NULL);
    peer->conn = conn;
    conn->peer = peer;
    aegis__hello_encode(conn->hello_out, loop->config.cluster_id, loop->config.self_id,
                        peer->id);
    conn->hello_out_len = AEGIS_URING_HELLO_BYTES;
    link_up(conn, peer);
}

static void hello_reply(struct aegis_uring_conn *conn, const struct aegis_hello *h)
{
    struct aegis_peer *peer = conn->peer;
    int status;

    AEGIS_ASSERT(peer != NULL);
    status = hello_expect_check(conn->loop, h, peer->id);
    if (status != 0) {
        peer->stats.handshake_rejects++;
        aegis__uring_log(conn->loop, failure_level(peer->attempts + 1),
                         "peer %" PRIu64 " at %s:%u answered as node %" PRIu64
                         " of cluster %" PRIu64 ": %s",
                         peer->id, peer->host, (unsigned)peer->port, h->sender, h->cluster_id,
                         aegis_strerror(status));
        aegis__uring_conn_close(conn, status);
        return;
    }
    link_up(conn, peer);
}

/* Deliver every complete frame buffered from @off; keep the partial tail. */
static void read_frames(struct aegis_uring_conn *conn, size_t off)
{
    struct aegis_uring_loop *loop = conn->loop;
    size_t need = AEGIS_FRAME_HDR;

    /* Bounded by the bytes buffered: each pass consumes a frame or stops. */
    while (!conn->closing && conn->peer != NULL) {
        struct aegis_peer *peer = conn->peer;
        uint32_t len = 0;
        int rv = aegis__frame_next(conn->rbuf + off, conn->rlen - off,
                                   loop->config.frame_bytes_max, &len, &need);

        if (rv == AEGIS_ETOOBIG) {
            peer->stats.oversize_frames++;
            aegis__uring_log(loop, AEGIS_URING_LOG_WARN,
                             "peer %" PRIu64 " sent a frame of %u bytes, above the limit of %u:"
                             " closing the link",
                             peer->id, len, loop->config.frame_bytes_max);
            aegis__uring_conn_close(conn, AEGIS_ETOOBIG);
            return;
        }
        if (rv == 0) {
            break;
        }
        peer->stats.frames_in++;
        if (loop->cb.on_frame != NULL) {
            loop->cb.on_frame(loop, peer->id, conn->rbuf + off + AEGIS_FRAME_HDR, len,
                              loop->cb.data);
        }
        off += AEGIS_FRAME_HDR + len;
        need = AEGIS_FRAME_HDR;
    }
    if (conn->closing) {
        return;
    }
    AEGIS_ASSERT(off <= conn->rlen);
    memmove(conn->rbuf, conn->rbuf + off, conn->rlen - off);
    conn->rlen -= off;
    /* A frame larger than the buffer: grow it to hold the whole frame (need is at most
     * frame_bytes_max + 4, checked by aegis__frame_next). */
    if (aegis__uring_conn_reserve(conn, need) != 0) {
        aegis__uring_conn_close(conn, AEGIS_ENOMEM);
        return;
    }
    AEGIS_ASSERT(conn->rlen < conn->rcap);
}

void aegis__uring_peer_read(struct aegis_uring_conn *conn)
{
    struct aegis_hello h;
    int rv;

    AEGIS_ASSERT(conn->kind != URING_CONN_CLIENT);
    if (!conn->hello_in) {
        rv = aegis__hello_decode(conn->rbuf, conn->rlen, &h);
        if (rv == AEGIS_EAGAIN) {
            return;
        }
        if (rv != 0 && conn->kind == URING_CONN_PEER_IN) {
            hello_refuse(conn, &h, rv);
        } else if (rv != 0) {
            char why[160];

            aegis__hello_describe(rv, &h, why, sizeof(why));
            conn->peer->stats.handshake_rejects++;
            aegis__uring_log(conn->loop, failure_level(conn->peer->attempts + 1),
                             "peer %" PRIu64 " at %s:%u answered with a bad hello: %s",
                             conn->peer->id, conn->peer->host, (unsigned)conn->peer->port,
                             why);
            aegis__uring_conn_close(conn, rv);
        } else if (conn->kind == URING_CONN_PEER_IN) {
            hello_accept(conn, &h);
        } else {
            hello_reply(conn, &h);
        }
        if (conn->closing) {
            conn->rlen = 0;
            return;
        }
        read_frames(conn, AEGIS_HELLO_BYTES);
        return;
    }
    read_frames(conn, 0);
}

void aegis__uring_peer_wrote(struct aegis_uring_conn *conn, uint64_t frames, size_t bytes)
{
    if (conn->peer != NULL) {
        conn->peer->stats.frames_out += frames;
        conn->peer->stats.bytes_out += bytes;
    }
}

int aegis__uring_loop_send(struct aegis_uring_loop *loop, aegis_node_id id,
                           const struct iovec *iov, int iovcnt, aegis_uring_send_cb cb,
                           void *data)
{
    struct aegis_peer *peer;
    uint64_t body = 0;
    int rv;

    AEGIS_ASSERT(loop != NULL);
    if (loop->destroying) {
        return AEGIS_ESHUTDOWN;
    }
    if (iov == NULL || iovcnt < 1 || iovcnt > AEGIS_URING_SEND_IOV_MAX) {
        return AEGIS_EINVAL;
    }
    peer = aegis__conn_pool_get(&loop->pool, id);
    if (peer == NULL) {
        return AEGIS_EUNKNOWNNODE;
    }
    for (int i = 0; i < iovcnt; i++) {
        body += iov[i].iov_len;
    }
    if (body > loop->config.frame_bytes_max) {
        return AEGIS_ETOOBIG;
    }
    if (peer->conn == NULL) {
        return AEGIS_ENOTCONN;
    }
    rv = aegis__uring_conn_enqueue(peer->conn, iov, iovcnt, true, cb, data);
    if (rv == AEGIS_EFULL) {
        peer->stats.sends_full++;
    }
    return rv;
}

int aegis__uring_loop_peer_queued(struct aegis_uring_loop *loop, aegis_node_id id)
{
    struct aegis_peer *peer = aegis__conn_pool_get(&loop->pool, id);
    const struct aegis_uring_conn *conn;

    if (peer == NULL) {
        return AEGIS_EUNKNOWNNODE;
    }
    conn = peer->conn;
    if (conn == NULL) {
        return 0;
    }
    AEGIS_ASSERT(conn->q.req_tail - conn->q.req_head <= conn->q.reqs_cap);
    return (int)(conn->q.req_tail - conn->q.req_head);
}
