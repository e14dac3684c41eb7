/* Peer links: dialing, the hello, frames.
 *
 * Establishment. The node with the lower id dials (net/conn_pool.h). Once TCP connects,
 * the dialer sends its hello and waits for the acceptor's. The acceptor reads the
 * dialer's hello, checks it, and answers with its own: on success it binds the connection
 * to the peer (replacing an older one from the same peer) and the link is up; on failure
 * it still answers -- so the dialer can log the real reason, "another cluster" rather than
 * "connection closed" -- and closes once its hello is written. The dialer checks the
 * acceptor's hello the same way. Connect plus hellos must finish within
 * connect_timeout_ms. Every failure schedules a redial with backoff (dialer side).
 *
 * The hello, 32 bytes, little-endian, no length prefix (it is always the first 32 bytes
 * each side sends):
 *
 *   offset  size  field
 *        0     4  magic 0x4e474541, the bytes "AEGN"
 *        4     2  version, 1
 *        6     2  flags, 0 (reserved: sent as 0, ignored on receipt by version 1)
 *        8     8  cluster id; must equal the receiver's (else AEGIS_ECLUSTER)
 *       16     8  sender's node id; must be a peer the receiver knows
 *       24     8  receiver's node id as the sender believes it (a misdirected dial to
 *                 the wrong address is caught here)
 *
 * A hello is refused for: a wrong magic (AEGIS_ECORRUPT: not our protocol, closed without
 * an answer), another version (AEGIS_EVERSION), another cluster (AEGIS_ECLUSTER), an
 * unknown sender, a wrong receiver id (AEGIS_EUNKNOWNNODE), or a dial from the higher id
 * to the lower (AEGIS_EINVAL: the two nodes disagree about who dials).
 *
 * Frames, after the hellos, in each direction:
 *
 *   offset  size  field
 *        0     4  body length n, little-endian; n <= frame_bytes_max of the receiver
 *        4     n  body, opaque to this layer
 *
 * A length above the limit closes the link (the stream cannot be resynchronised) and is
 * logged and counted (oversize_frames). Bodies of length 0 are legal. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <aegis/error.h>

#include "engine/assert.h"
#include "net/uring_loop_int.h"

static void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

void aegis__uring_hello_encode(uint8_t *out, uint64_t cluster_id, aegis_node_id sender,
                               aegis_node_id receiver)
{
    out[0] = (uint8_t)AEGIS_URING_MAGIC;
    out[1] = (uint8_t)(AEGIS_URING_MAGIC >> 8);
    out[2] = (uint8_t)(AEGIS_URING_MAGIC >> 16);
    out[3] = (uint8_t)(AEGIS_URING_MAGIC >> 24);
    put_le16(out + 4, AEGIS_URING_VERSION);
    put_le16(out + 6, 0);
    put_le64(out + 8, cluster_id);
    put_le64(out + 16, sender);
    put_le64(out + 24, receiver);
}

struct hello {
    uint32_t magic;
    uint16_t version;
    uint64_t cluster_id;
    aegis_node_id sender;
    aegis_node_id receiver;
};

static void hello_decode(const uint8_t *in, struct hello *h)
{
    h->magic = get_le32(in);
    h->version = (uint16_t)(in[4] | in[5] << 8);
    h->cluster_id = get_le64(in + 8);
    h->sender = get_le64(in + 16);
    h->receiver = get_le64(in + 24);
}

/* The checks both sides make; the acceptor adds the peer table and direction checks. */
static int hello_check_common(const struct aegis_uring_loop *loop, const struct hello *h)
{
    if (h->magic != AEGIS_URING_MAGIC) {
        return AEGIS_ECORRUPT;
    }
    if (h->version != AEGIS_URING_VERSION) {
        return AEGIS_EVERSION;
    }
    if (h->cluster_id != loop->config.cluster_id) {
        return AEGIS_ECLUSTER;
    }
    if (h->receiver != loop->config.self_id) {
        return AEGIS_EUNKNOWNNODE;
    }
    return 0;
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
    aegis__uring_socket_options(fd);
    conn = aegis__uring_conn_open(loop, URING_CONN_PEER_OUT, fd);
    if (conn == NULL) {
        close(fd);
        aegis__uring_log(loop, AEGIS_URING_LOG_ERROR,
                         "dial peer %" PRIu64 ": no free slot or no memory", peer->id);
        aegis__conn_pool_on_failure(&loop->pool, peer, loop->now_ms, &loop->rng);
        return;
    }
    memcpy(&conn->addr, &peer->addr, sizeof(conn->addr));
    conn->addr_len = peer->addr_len;
    conn->peer = peer;
    conn->deadline_ms = loop->now_ms + loop->config.connect_timeout_ms;
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
            aegis__uring_log(loop, AEGIS_URING_LOG_DEBUG, "peer link setup timed out");
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
    aegis__uring_log(loop, was_up ? AEGIS_URING_LOG_WARN : failure_level(peer->attempts),
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
    aegis__uring_hello_encode(conn->hello_out, conn->loop->config.cluster_id,
                              conn->loop->config.self_id, peer->id);
    conn->hello_out_len = AEGIS_URING_HELLO_BYTES;
    aegis__uring_conn_dirty(conn);
}

void aegis__uring_peer_accepted(struct aegis_uring_loop *loop, int fd)
{
    struct aegis_uring_conn *conn = NULL;

    loop->stats.peer_accepts++;
    if (loop->peers_pending < URING_PEER_PENDING_MAX) {
        conn = aegis__uring_conn_open(loop, URING_CONN_PEER_IN, fd);
    }
    if (conn == NULL) {
        aegis__uring_log(loop, AEGIS_URING_LOG_WARN,
                         "peer listener: too many connections in their hello; closing one");
        close(fd);
        return;
    }
    aegis__uring_socket_options(fd);
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
    aegis__uring_log(loop, AEGIS_URING_LOG_INFO, "peer %" PRIu64 " link up (%s)", peer->id,
                     conn->kind == URING_CONN_PEER_OUT ? "dialed" : "accepted");
    aegis__uring_conn_dirty(conn);
    if (loop->cb.on_peer_state != NULL) {
        loop->cb.on_peer_state(loop, peer->id, true, 0, loop->cb.data);
    }
}

static void hello_refuse(struct aegis_uring_conn *conn, const struct hello *h, int status)
{
    struct aegis_uring_loop *loop = conn->loop;

    loop->stats.peer_hello_rejects++;
    aegis__uring_log(loop, AEGIS_URING_LOG_WARN,
                     "refused hello from node %" PRIu64 " (cluster %" PRIu64 ", to node %" PRIu64
                     "): %s",
                     h->sender, h->cluster_id, h->receiver, aegis_strerror(status));
    if (status == AEGIS_ECORRUPT) {
        aegis__uring_conn_close(conn, status);
        return;
    }
    conn->hello_reject = status;
    aegis__uring_hello_encode(conn->hello_out, loop->config.cluster_id, loop->config.self_id,
                              h->sender);
    conn->hello_out_len = AEGIS_URING_HELLO_BYTES;
    aegis__uring_conn_dirty(conn);
}

static void hello_accept(struct aegis_uring_conn *conn, const struct hello *h)
{
    struct aegis_uring_loop *loop = conn->loop;
    struct aegis_peer *peer = NULL;
    int status = hello_check_common(loop, h);

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
    aegis__uring_hello_encode(conn->hello_out, loop->config.cluster_id, loop->config.self_id,
                              peer->id);
    conn->hello_out_len = AEGIS_URING_HELLO_BYTES;
    link_up(conn, peer);
}

static void hello_reply(struct aegis_uring_conn *conn, const struct hello *h)
{
    struct aegis_peer *peer = conn->peer;
    int status = hello_check_common(conn->loop, h);

    AEGIS_ASSERT(peer != NULL);
    if (status == 0 && h->sender != peer->id) {
        status = AEGIS_EUNKNOWNNODE;
    }
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
    size_t need;

    /* Bounded by the bytes buffered: each pass consumes a frame or stops. */
    while (!conn->closing && conn->peer != NULL && conn->rlen - off >= AEGIS_URING_FRAME_HDR) {
        struct aegis_peer *peer = conn->peer;
        uint32_t len = get_le32(conn->rbuf + off);

        if (len > loop->config.frame_bytes_max) {
            peer->stats.oversize_frames++;
            aegis__uring_log(loop, AEGIS_URING_LOG_WARN,
                             "peer %" PRIu64 " sent a frame of %u bytes, above the limit of %u:"
                             " closing the link",
                             peer->id, len, loop->config.frame_bytes_max);
            aegis__uring_conn_close(conn, AEGIS_ETOOBIG);
            return;
        }
        if (conn->rlen - off - AEGIS_URING_FRAME_HDR < len) {
            break;
        }
        peer->stats.frames_in++;
        if (loop->cb.on_frame != NULL) {
            loop->cb.on_frame(loop, peer->id, conn->rbuf + off + AEGIS_URING_FRAME_HDR, len,
                              loop->cb.data);
        }
        off += AEGIS_URING_FRAME_HDR + len;
    }
    if (conn->closing) {
        return;
    }
    AEGIS_ASSERT(off <= conn->rlen);
    memmove(conn->rbuf, conn->rbuf + off, conn->rlen - off);
    conn->rlen -= off;
    /* A frame larger than the buffer: grow it to hold the whole frame (bounded by
     * frame_bytes_max + 4, checked above). */
    need = conn->rlen >= AEGIS_URING_FRAME_HDR
               ? AEGIS_URING_FRAME_HDR + (size_t)get_le32(conn->rbuf)
               : AEGIS_URING_FRAME_HDR;
    if (aegis__uring_conn_reserve(conn, need) != 0) {
        aegis__uring_conn_close(conn, AEGIS_ENOMEM);
        return;
    }
    AEGIS_ASSERT(conn->rlen < conn->rcap);
}

void aegis__uring_peer_read(struct aegis_uring_conn *conn)
{
    struct hello h;

    AEGIS_ASSERT(conn->kind != URING_CONN_CLIENT);
    if (conn->hello_reject != 0) {
        conn->rlen = 0; /* Closing once our answer is out: ignore what follows. */
        return;
    }
    if (!conn->hello_in) {
        if (conn->rlen < AEGIS_URING_HELLO_BYTES) {
            return;
        }
        hello_decode(conn->rbuf, &h);
        if (conn->kind == URING_CONN_PEER_IN) {
            hello_accept(conn, &h);
        } else {
            hello_reply(conn, &h);
        }
        if (conn->closing || conn->hello_reject != 0) {
            conn->rlen = 0;
            return;
        }
        read_frames(conn, AEGIS_URING_HELLO_BYTES);
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
