/* SPDX-License-Identifier: MIT */
/* What every TCP connection of the loop shares: slots, the bounded write queue, reads,
 * closing. The write queue's layout is described in uring_loop_int.h.
 *
 * Closing. aegis__uring_conn_close() detaches the connection from its peer at once (so
 * new sends see no link and a redial may start), shuts the socket down and cancels its
 * operations. The connection is finalised -- queued sends failed, socket closed, buffers
 * freed, slot returned -- only when its last operation has completed, because until then
 * the kernel may still be reading the iovecs or writing into the read buffer.
 *
 * TLS. A connection with conn->tls set sends and receives through uring_tls.c: flush,
 * arming a read and the two completions hand over to it, and it comes back here with
 * plaintext (aegis__uring_conn_deliver_read) and with bytes encrypted from the queue
 * (aegis__uring_outq_advance). */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <aegis/error.h>

#include "engine/assert.h"
#include "net/uring_loop_int.h"

int aegis__uring_socket_options(int fd)
{
    int one = 1;

    /* Frames and replies are written whole by sendmsg: no need for Nagle's delay. */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
        return -errno;
    }
    /* A peer whose host vanished without a FIN is found by keepalive eventually. */
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    return 0;
}

static uint64_t conn_ud(struct aegis_uring_conn *conn, uint64_t op)
{
    uint64_t ud = (uint64_t)(uintptr_t)conn;

    AEGIS_ASSERT((ud & URING_OP_MASK) == 0);
    AEGIS_ASSERT(op != 0 && op <= URING_OP_MASK);
    return ud | op;
}

static struct aegis_uring_conn *slot_take(struct aegis_uring_loop *loop,
                                          enum uring_conn_kind kind)
{
    uint32_t first = kind == URING_CONN_CLIENT ? loop->peer_slots : 0;
    uint32_t end = kind == URING_CONN_CLIENT ? loop->conns_count : loop->peer_slots;

    for (uint32_t i = first; i < end; i++) {
        if (!loop->conns[i].in_use) {
            return &loop->conns[i];
        }
    }
    return NULL;
}

static int outq_init(struct aegis_uring_conn *conn, uint32_t reqs_cap)
{
    struct uring_outq *q = &conn->q;
    const struct aegis_allocator *a = conn->loop->alloc;

    memset(q, 0, sizeof(*q));
    q->reqs_cap = reqs_cap;
    /* Four iovecs per send on average, and room for the largest single send twice. */
    q->iov_cap = reqs_cap * 4;
    if (q->iov_cap < 2 * (AEGIS_URING_SEND_IOV_MAX + 1)) {
        q->iov_cap = 2 * (AEGIS_URING_SEND_IOV_MAX + 1);
    }
    q->reqs = aegis__calloc(a, q->reqs_cap, sizeof(*q->reqs));
    q->iov = aegis__calloc(a, q->iov_cap, sizeof(*q->iov));
    if (q->reqs == NULL || q->iov == NULL) {
        return AEGIS_ENOMEM;
    }
    return 0;
}

static void conn_free_memory(struct aegis_uring_conn *conn)
{
    const struct aegis_allocator *a = conn->loop->alloc;

    aegis__free(a, conn->rbuf);
    aegis__free(a, conn->q.reqs);
    aegis__free(a, conn->q.iov);
    aegis__uring_tls_free(conn);
    conn->rbuf = NULL;
    conn->q.reqs = NULL;
    conn->q.iov = NULL;
}

struct aegis_uring_conn *aegis__uring_conn_open(struct aegis_uring_loop *loop,
                                                enum uring_conn_kind kind, int fd)
{
    struct aegis_uring_conn *conn = slot_take(loop, kind);
    bool client = kind == URING_CONN_CLIENT;
    uint32_t slot, gen;

    AEGIS_ASSERT(fd >= 0);
    if (conn == NULL) {
        return NULL;
    }
    AEGIS_ASSERT(!conn->in_dirty);
    slot = conn->slot;
    gen = conn->gen;
    memset(conn, 0, sizeof(*conn));
    conn->slot = slot;
    conn->gen = gen;
    conn->loop = loop;
    conn->kind = kind;
    conn->fd = fd;
    conn->rcap = client ? loop->config.client_read_bytes : loop->config.peer_read_bytes;
    conn->rbuf = aegis__malloc(loop->alloc, conn->rcap);
    if (conn->rbuf == NULL ||
        outq_init(conn, client ? loop->config.client_queue_max : loop->config.peer_queue_max)) {
        conn_free_memory(conn);
        conn->fd = -1;
        return NULL;
    }
    conn->in_use = true;
    return conn;
}

/* Drop visited and forgotten entries, keeping the pending ones in order. */
static void dirty_compact(struct aegis_uring_loop *loop)
{
    uint32_t w = 0;

    for (uint32_t r = loop->dirty_head; r < loop->dirty_count; r++) {
        struct aegis_uring_conn *c = loop->dirty[r];
        if (c != NULL) {
            c->dirty_index = w;
            loop->dirty[w++] = c;
        }
    }
    loop->dirty_head = 0;
    loop->dirty_count = w;
}

void aegis__uring_conn_dirty(struct aegis_uring_conn *conn)
{
    struct aegis_uring_loop *loop = conn->loop;

    if (conn->in_dirty) {
        return;
    }
    if (loop->dirty_count == loop->conns_count) {
        /* Each connection is pending at most once, so compacting always makes room. */
        dirty_compact(loop);
    }
    AEGIS_ASSERT(loop->dirty_count < loop->conns_count);
    conn->in_dirty = true;
    conn->dirty_index = loop->dirty_count;
    loop->dirty[loop->dirty_count++] = conn;
}

static void dirty_forget(struct aegis_uring_conn *conn)
{
    if (conn->in_dirty) {
        AEGIS_ASSERT(conn->loop->dirty[conn->dirty_index] == conn);
        conn->loop->dirty[conn->dirty_index] = NULL;
        conn->in_dirty = false;
    }
}

int aegis__uring_conn_enqueue(struct aegis_uring_conn *conn, const struct iovec *iov, int iovcnt,
                              bool framed, aegis_uring_send_cb cb, void *data)
{
    struct uring_outq *q = &conn->q;
    uint32_t n = (uint32_t)iovcnt + (framed ? 1u : 0u);
    uint32_t pos = (uint32_t)(q->iov_tail % q->iov_cap);
    uint64_t skip = pos + n > q->iov_cap ? q->iov_cap - pos : 0;
    struct uring_send_req *req;
    struct iovec *slots;
    uint64_t body = 0;

    AEGIS_ASSERT(iovcnt >= 1 && iovcnt <= AEGIS_URING_SEND_IOV_MAX);
    AEGIS_ASSERT(q->req_tail - q->req_head <= q->reqs_cap);
    if (q->req_tail - q->req_head == q->reqs_cap ||
        q->iov_cap - (q->iov_tail - q->iov_head) < skip + n) {
        return AEGIS_EFULL;
    }
    req = &q->reqs[q->req_tail % q->reqs_cap];
    req->cb = cb;
    req->data = data;
    req->iov_first = q->iov_tail + skip;
    req->iov_end = req->iov_first + n;
    slots = &q->iov[req->iov_first % q->iov_cap];
    for (int i = 0; i < iovcnt; i++) {
        body += iov[i].iov_len;
    }
    if (framed) {
        AEGIS_ASSERT(body <= UINT32_MAX);
        req->prefix[0] = (uint8_t)body;
        req->prefix[1] = (uint8_t)(body >> 8);
        req->prefix[2] = (uint8_t)(body >> 16);
        req->prefix[3] = (uint8_t)(body >> 24);
        slots[0].iov_base = req->prefix;
        slots[0].iov_len = sizeof(req->prefix);
        slots++;
    }
    memcpy(slots, iov, (size_t)iovcnt * sizeof(*iov));
    if (q->req_tail == q->req_head) {
        q->wcur = req->iov_first;
    }
    q->iov_tail = req->iov_end;
    q->req_tail++;
    AEGIS_ASSERT(q->iov_tail - q->iov_head <= q->iov_cap);
    aegis__uring_conn_dirty(conn);
    return 0;
}

/* Pop the oldest request and run its callback. The queue is consistent before the call,
 * so the callback may send again or close the connection. */
static void complete_head(struct aegis_uring_conn *conn, int status)
{
    struct uring_outq *q = &conn->q;
    struct uring_send_req *req;
    aegis_uring_send_cb cb;
    void *data;

    AEGIS_ASSERT(q->req_head < q->req_tail);
    req = &q->reqs[q->req_head % q->reqs_cap];
    cb = req->cb;
    data = req->data;
    q->iov_head = req->iov_end;
    q->req_head++;
    if (q->req_head < q->req_tail) {
        q->wcur = q->reqs[q->req_head % q->reqs_cap].iov_first;
    } else {
        q->wcur = q->iov_tail;
    }
    if (cb != NULL) {
        cb(conn->loop, status, data);
    }
}

/* Account @n bytes the kernel took: trim iovecs, complete the requests wholly written.
 * Returns the number of requests completed. */
uint64_t aegis__uring_outq_advance(struct aegis_uring_conn *conn, size_t n)
{
    struct uring_outq *q = &conn->q;
    uint64_t done = 0;

    /* Bounded by the iovecs queued: each pass consumes one or stops. */
    while (q->req_head < q->req_tail && !conn->closing) {
        struct uring_send_req *req = &q->reqs[q->req_head % q->reqs_cap];
        struct iovec *v;

        if (q->wcur == req->iov_end) {
            complete_head(conn, 0);
            done++;
            continue;
        }
        v = &q->iov[q->wcur % q->iov_cap];
        if (v->iov_len <= n) {
            n -= v->iov_len;
            v->iov_len = 0;
            q->wcur++;
            continue;
        }
        if (n == 0) {
            break;
        }
        v->iov_base = (uint8_t *)v->iov_base + n;
        v->iov_len -= n;
        n = 0;
        break;
    }
    AEGIS_ASSERT(n == 0 || conn->closing);
    return done;
}

void aegis__uring_conn_prep_send(struct aegis_uring_conn *conn, struct iovec *iov,
                                 size_t iovlen)
{
    struct io_uring_sqe *sqe;

    memset(&conn->msg, 0, sizeof(conn->msg));
    conn->msg.msg_iov = iov;
    conn->msg.msg_iovlen = iovlen;
    sqe = aegis__uring_sqe(conn->loop, conn_ud(conn, URING_OP_WRITE));
    /* MSG_NOSIGNAL: a peer that went away gives EPIPE, not a process-killing SIGPIPE. */
    io_uring_prep_sendmsg(sqe, conn->fd, &conn->msg, MSG_NOSIGNAL);
    conn->write_armed = true;
    conn->inflight++;
}

/* Start one sendmsg if none is in flight: the hello first, then every queued request
 * contiguous in the iovec ring from the cursor. */
void aegis__uring_conn_flush(struct aegis_uring_conn *conn)
{
    struct uring_outq *q = &conn->q;
    uint64_t end, req_i;

    if (conn->write_armed || conn->closing) {
        return;
    }
    if (conn->tls != NULL) {
        aegis__uring_tls_flush(conn);
        return;
    }
    if (conn->hello_out_off < conn->hello_out_len) {
        conn->hello_iov.iov_base = conn->hello_out + conn->hello_out_off;
        conn->hello_iov.iov_len = conn->hello_out_len - conn->hello_out_off;
        conn->writing_hello = true;
        aegis__uring_conn_prep_send(conn, &conn->hello_iov, 1);
        return;
    }
    if (conn->kind != URING_CONN_CLIENT && !conn->ready) {
        return;
    }
    if (q->req_head == q->req_tail) {
        if (conn->close_after_flush) {
            aegis__uring_conn_close(conn, 0);
        }
        return;
    }
    /* Extend the run over following requests while they start where it ends, do not
     * wrap in memory, and stay within UIO_MAXIOV (1024) iovecs. */
    end = q->reqs[q->req_head % q->reqs_cap].iov_end;
    for (req_i = q->req_head + 1; req_i < q->req_tail; req_i++) {
        struct uring_send_req *r = &q->reqs[req_i % q->reqs_cap];
        if (r->iov_first != end || end % q->iov_cap == 0 || r->iov_end - q->wcur > 1024) {
            break;
        }
        end = r->iov_end;
    }
    AEGIS_ASSERT(end > q->wcur);
    AEGIS_ASSERT((q->wcur % q->iov_cap) + (end - q->wcur) <= q->iov_cap);
    conn->writing_hello = false;
    aegis__uring_conn_prep_send(conn, &q->iov[q->wcur % q->iov_cap], (size_t)(end - q->wcur));
}

void aegis__uring_conn_arm_read(struct aegis_uring_conn *conn)
{
    struct io_uring_sqe *sqe;
    uint8_t *buf;
    size_t len;

    if (conn->read_armed || conn->closing || conn->close_after_flush || conn->paused) {
        return;
    }
    if (conn->kind == URING_CONN_CLIENT && conn->loop->clients_paused) {
        return;
    }
    if (conn->rlen == conn->rcap) {
        return; /* A paused client with a full buffer: resume makes room first. */
    }
    buf = conn->rbuf + conn->rlen;
    len = conn->rcap - conn->rlen;
    if (conn->tls != NULL && !aegis__uring_tls_read_buf(conn, &buf, &len)) {
        return; /* Enough ciphertext buffered: decrypting it makes room first. */
    }
    sqe = aegis__uring_sqe(conn->loop, conn_ud(conn, URING_OP_READ));
    io_uring_prep_recv(sqe, conn->fd, buf, len, 0);
    conn->read_armed = true;
    conn->inflight++;
}

int aegis__uring_conn_reserve(struct aegis_uring_conn *conn, size_t need)
{
    uint8_t *p;

    if (need <= conn->rcap) {
        return 0;
    }
    /* Bounded by the caller: frame_bytes_max + 4 for peers, client_read_bytes_max. */
    p = aegis__realloc(conn->loop->alloc, conn->rbuf, need);
    if (p == NULL) {
        return AEGIS_ENOMEM;
    }
    conn->rbuf = p;
    conn->rcap = need;
    return 0;
}

static void finalize(struct aegis_uring_conn *conn)
{
    struct aegis_uring_loop *loop = conn->loop;
    /* Queued writes fail with what closed the connection; an orderly end (0) is a reset
     * for a peer link and a cancellation for a client. */
    int status = conn->close_status < 0                ? conn->close_status
                 : conn->kind == URING_CONN_CLIENT ? AEGIS_ECANCELED
                                                     : AEGIS_ECONNRESET;

    AEGIS_ASSERT(conn->closing);
    AEGIS_ASSERT(conn->inflight == 0);
    AEGIS_ASSERT(conn->peer == NULL);
    dirty_forget(conn);
    /* Bounded by the queue size; complete_head keeps the queue consistent per call. */
    while (conn->q.req_head < conn->q.req_tail) {
        complete_head(conn, status);
    }
    if (conn->kind == URING_CONN_CLIENT) {
        aegis__uring_client_finalize(conn);
    } else if (conn->kind == URING_CONN_PEER_IN && !conn->hello_in) {
        AEGIS_ASSERT(loop->peers_pending > 0);
        loop->peers_pending--;
    }
    close(conn->fd);
    conn_free_memory(conn);
    conn->fd = -1;
    conn->gen++;
    if (conn->gen == 0) {
        conn->gen = 1;
    }
    conn->in_use = false;
}

void aegis__uring_conn_close(struct aegis_uring_conn *conn, int status)
{
    struct io_uring_sqe *sqe;

    AEGIS_ASSERT(conn->in_use);
    if (conn->closing) {
        return;
    }
    conn->closing = true;
    conn->close_status = status;
    if (conn->kind != URING_CONN_CLIENT) {
        aegis__uring_peer_detach(conn, status);
    }
    AEGIS_ASSERT(conn->peer == NULL);
    if (conn->inflight == 0) {
        /* Finalise from the next prepare, never inside the caller's call. */
        aegis__uring_conn_dirty(conn);
        return;
    }
    /* Make every operation of this socket complete: shutdown ends reads and writes,
     * the cancel also ends a connect still in flight. */
    shutdown(conn->fd, SHUT_RDWR);
    sqe = aegis__uring_sqe(conn->loop, conn_ud(conn, URING_OP_CANCEL));
    io_uring_prep_cancel_fd(sqe, conn->fd, IORING_ASYNC_CANCEL_ALL);
    conn->cancel_armed = true;
    conn->inflight++;
}

static void complete_write(struct aegis_uring_conn *conn, int res)
{
    uint64_t frames;

    conn->write_armed = false;
    if (conn->closing) {
        return;
    }
    if (res == -EINTR || res == -EAGAIN) {
        aegis__uring_conn_dirty(conn);
        return;
    }
    if (res <= 0) {
        aegis__uring_conn_close(conn, res < 0 ? res : AEGIS_EPIPE);
        return;
    }
    if (conn->tls != NULL) {
        aegis__uring_tls_wrote(conn, (size_t)res);
        return;
    }
    if (conn->writing_hello) {
        conn->hello_out_off += (uint32_t)res;
        AEGIS_ASSERT(conn->hello_out_off <= conn->hello_out_len);
        aegis__uring_conn_dirty(conn);
        return;
    }
    frames = aegis__uring_outq_advance(conn, (size_t)res);
    if (conn->kind == URING_CONN_CLIENT) {
        conn->loop->stats.client_bytes_out += (uint64_t)res;
    } else {
        aegis__uring_peer_wrote(conn, frames, (size_t)res);
    }
    if (!conn->closing) {
        aegis__uring_conn_dirty(conn);
    }
}

static void complete_read(struct aegis_uring_conn *conn, int res)
{
    conn->read_armed = false;
    if (conn->closing) {
        return;
    }
    if (res == -EINTR || res == -EAGAIN || res == -ENOBUFS) {
        aegis__uring_conn_dirty(conn);
        return;
    }
    if (res <= 0) {
        /* 0 is an orderly end of stream from the other side. */
        aegis__uring_conn_close(conn, res);
        return;
    }
    if (conn->kind == URING_CONN_CLIENT) {
        conn->loop->stats.client_bytes_in += (uint64_t)res;
    } else if (conn->peer != NULL) {
        conn->peer->stats.bytes_in += (uint64_t)res;
    }
    if (conn->tls != NULL) {
        aegis__uring_tls_received(conn, (size_t)res);
    } else {
        AEGIS_ASSERT((size_t)res <= conn->rcap - conn->rlen);
        conn->rlen += (size_t)res;
        aegis__uring_conn_deliver_read(conn);
    }
    if (!conn->closing) {
        aegis__uring_conn_dirty(conn);
    }
}

void aegis__uring_conn_deliver_read(struct aegis_uring_conn *conn)
{
    if (conn->kind == URING_CONN_CLIENT) {
        aegis__uring_client_read(conn);
    } else {
        aegis__uring_peer_read(conn);
    }
}

void aegis__uring_conn_complete(struct aegis_uring_conn *conn, uint64_t op, int res)
{
    AEGIS_ASSERT(conn->in_use);
    AEGIS_ASSERT(conn->inflight > 0);
    switch (op) {
    case URING_OP_READ:
        AEGIS_ASSERT(conn->read_armed);
        complete_read(conn, res);
        break;
    case URING_OP_WRITE:
        AEGIS_ASSERT(conn->write_armed);
        complete_write(conn, res);
        break;
    case URING_OP_CONNECT:
        AEGIS_ASSERT(conn->connect_armed);
        conn->connect_armed = false;
        if (!conn->closing) {
            aegis__uring_peer_connected(conn, res);
        }
        break;
    case URING_OP_CANCEL:
        conn->cancel_armed = false;
        break;
    default:
        AEGIS_UNREACHABLE();
    }
    /* The operation is counted until its handler is done, so nothing above could
     * finalise the connection under our feet. */
    conn->inflight--;
    if (conn->closing && conn->inflight == 0) {
        finalize(conn);
    }
}

void aegis__uring_conn_prepare(struct aegis_uring_loop *loop)
{
    /* A queue: connections marked while we walk (a callback that writes) are appended and
     * visited in this same pass, so nothing waits for the next iteration while the loop
     * sleeps. Bounded: a visit re-marks a connection only through a state change. */
    while (loop->dirty_head < loop->dirty_count) {
        struct aegis_uring_conn *conn = loop->dirty[loop->dirty_head];

        loop->dirty[loop->dirty_head++] = NULL;
        if (conn == NULL) {
            continue;
        }
        conn->in_dirty = false;
        if (conn->closing) {
            if (conn->inflight == 0) {
                finalize(conn);
            }
            continue;
        }
        if (conn->redeliver) {
            conn->redeliver = false;
            aegis__uring_client_deliver(conn);
            if (conn->closing) {
                continue;
            }
        }
        if (conn->tls != NULL) {
            aegis__uring_tls_prepare(conn);
            if (conn->closing) {
                continue;
            }
        }
        aegis__uring_conn_flush(conn);
        if (!conn->closing && (conn->kind != URING_CONN_PEER_OUT || conn->hello_out_len > 0)) {
            aegis__uring_conn_arm_read(conn);
        }
    }
    loop->dirty_head = 0;
    loop->dirty_count = 0;
}

void aegis__uring_conns_close_all(struct aegis_uring_loop *loop, int status)
{
    for (uint32_t i = 0; loop->conns != NULL && i < loop->conns_count; i++) {
        if (loop->conns[i].in_use) {
            aegis__uring_conn_close(&loop->conns[i], status);
        }
    }
}

void aegis__uring_conns_finalize_idle(struct aegis_uring_loop *loop)
{
    for (uint32_t i = 0; loop->conns != NULL && i < loop->conns_count; i++) {
        struct aegis_uring_conn *conn = &loop->conns[i];
        if (conn->in_use && conn->closing && conn->inflight == 0) {
            finalize(conn);
        }
    }
}
