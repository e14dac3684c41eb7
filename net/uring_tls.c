/* SPDX-License-Identifier: MIT */
/* The TLS layer of the loop's connections: between the socket, which carries ciphertext,
 * and rbuf / the write queue, which hold plaintext. net/tls.c does the cryptography on
 * memory buffers; this file moves bytes between those buffers and io_uring.
 *
 * Receiving. A recv lands in tls_rx (TLS_RX_PEER or TLS_RX_CLIENT bytes); the bytes are
 * fed to TLS and decrypted into rbuf, and each run of plaintext goes to the peer or client
 * code exactly as a plaintext read would. While the plaintext buffer is full (a paused client) the
 * ciphertext stays in TLS; no recv is armed once TLS_IN_MAX bytes wait there, so TCP
 * pushes back as it does without TLS. Decrypting resumes from prepare once there is room.
 *
 * Handshake. The acceptor waits for the ClientHello; the dialer starts as soon as TCP
 * connects (aegis__uring_tls_kick). Nothing of the plaintext protocol moves before the
 * handshake is complete: for peers, the certificate then has to name a node id
 * (uring_peer.c checks it against the dialed peer or, on the acceptor, against the
 * hello), and only then is the hello written or read. A failed handshake closes the
 * connection with AEGIS_ETLS and one rate-limited log line.
 *
 * Sending. One sendmsg at a time carries tls_tx. When it is done, flush encrypts the
 * next batch -- the hello, then queued requests from the write cursor, up to
 * TLS_PT_BUDGET bytes of plaintext -- and the requests wholly encrypted complete (their
 * buffers are no longer needed: TLS copied them). Their bytes count as written then. */
#include <inttypes.h>
#include <string.h>

#include <aegis/error.h>

#include "engine/assert.h"
#include "net/uring_loop_int.h"

#define TLS_RX_PEER (64u << 10)   /* One recv of ciphertext on a peer link. */
#define TLS_RX_CLIENT (17u << 10) /* On a client connection: one whole record (16 KiB plus
                                   * overhead), so 1024 clients cost 17 MiB, not 64. */
#define TLS_IN_MAX (256u << 10)   /* Ciphertext waiting in TLS above which no recv. */
#define TLS_PT_BUDGET (256u << 10) /* Plaintext encrypted per sendmsg. */

int aegis__uring_tls_start(struct aegis_uring_conn *conn, struct aegis_tls_ctx *ctx,
                           bool server)
{
    int rv;

    AEGIS_ASSERT(conn->tls == NULL);
    rv = aegis__tls_new(&conn->tls, ctx, server);
    if (rv != 0) {
        return rv;
    }
    conn->tls_rx_cap = conn->kind == URING_CONN_CLIENT ? TLS_RX_CLIENT : TLS_RX_PEER;
    conn->tls_rx = aegis__malloc(conn->loop->alloc, conn->tls_rx_cap);
    if (conn->tls_rx == NULL) {
        aegis__uring_tls_free(conn);
        return AEGIS_ENOMEM;
    }
    return 0;
}

void aegis__uring_tls_free(struct aegis_uring_conn *conn)
{
    aegis__tls_free(conn->tls);
    aegis__free(conn->loop->alloc, conn->tls_rx);
    aegis__free(conn->loop->alloc, conn->tls_tx);
    conn->tls = NULL;
    conn->tls_rx = NULL;
    conn->tls_tx = NULL;
    conn->tls_tx_cap = conn->tls_tx_len = conn->tls_tx_off = conn->tls_rx_cap = 0;
    conn->tls_up = false;
}

static void tls_fail(struct aegis_uring_conn *conn, int status, const char *why)
{
    struct aegis_uring_loop *loop = conn->loop;

    if (conn->kind == URING_CONN_CLIENT) {
        aegis__uring_log_limited(loop, &loop->rl_client, AEGIS_URING_LOG_WARN,
                                 "client connection refused: %s", why);
    } else if (conn->kind == URING_CONN_PEER_IN) {
        loop->stats.peer_hello_rejects++;
        aegis__uring_log_limited(loop, &loop->rl_peer, AEGIS_URING_LOG_WARN,
                                 "inbound peer connection refused: %s", why);
    } else {
        aegis__uring_log_limited(loop, &loop->rl_peer, AEGIS_URING_LOG_WARN,
                                 "peer %" PRIu64 ": %s",
                                 conn->peer != NULL ? conn->peer->id : 0, why);
        if (conn->peer != NULL) {
            conn->peer->stats.handshake_rejects++;
        }
    }
    aegis__uring_conn_close(conn, status);
}

/* Advance the handshake. Returns 1 once it is complete (and the peer's id checked),
 * 0 while it goes on, < 0 when it failed (the connection is closing). */
static int handshake(struct aegis_uring_conn *conn)
{
    char why[AEGIS_TLS_ERR_BYTES];
    int rv;

    why[0] = '\0';
    rv = aegis__tls_handshake(conn->tls, why, sizeof(why));
    if (rv == 0) {
        return 0;
    }
    if (rv < 0) {
        tls_fail(conn, rv, why);
        return rv;
    }
    if (conn->kind != URING_CONN_CLIENT) {
        rv = aegis__uring_peer_tls_up(conn);
        if (rv != 0) {
            return rv;
        }
    }
    conn->tls_up = true;
    return 1;
}

void aegis__uring_tls_kick(struct aegis_uring_conn *conn)
{
    if (handshake(conn) >= 0) {
        aegis__uring_conn_dirty(conn);
    }
}

/* Decrypt into rbuf while there is room, handing each run of plaintext on. */
static void pump(struct aegis_uring_conn *conn)
{
    char why[AEGIS_TLS_ERR_BYTES];

    /* Bounded by the ciphertext buffered (at most TLS_IN_MAX + tls_rx_cap): each pass
     * decrypts at least one byte or stops. */
    while (!conn->closing && conn->rlen < conn->rcap) {
        size_t n = 0;
        int rv = aegis__tls_read(conn->tls, conn->rbuf + conn->rlen, conn->rcap - conn->rlen,
                                 &n, why, sizeof(why));
        if (rv < 0) {
            tls_fail(conn, rv, why);
            return;
        }
        if (rv == 1) {
            aegis__uring_conn_close(conn, 0); /* close_notify: an orderly end. */
            return;
        }
        if (n == 0) {
            return;
        }
        conn->rlen += n;
        aegis__uring_conn_deliver_read(conn);
    }
}

static void input(struct aegis_uring_conn *conn)
{
    if (!conn->tls_up && handshake(conn) <= 0) {
        return;
    }
    pump(conn);
}

void aegis__uring_tls_received(struct aegis_uring_conn *conn, size_t n)
{
    AEGIS_ASSERT(n <= conn->tls_rx_cap);
    if (aegis__tls_feed(conn->tls, conn->tls_rx, n) != 0) {
        aegis__uring_conn_close(conn, AEGIS_ENOMEM);
        return;
    }
    input(conn);
}

bool aegis__uring_tls_read_buf(struct aegis_uring_conn *conn, uint8_t **buf, size_t *len)
{
    if (aegis__tls_in_pending(conn->tls) >= TLS_IN_MAX) {
        return false;
    }
    *buf = conn->tls_rx;
    *len = conn->tls_rx_cap;
    return true;
}

void aegis__uring_tls_prepare(struct aegis_uring_conn *conn)
{
    bool paused = conn->kind == URING_CONN_CLIENT &&
                  (conn->paused || conn->loop->clients_paused || conn->close_after_flush);

    if (conn->tls_up && !paused && conn->rlen < conn->rcap &&
        aegis__tls_in_pending(conn->tls) > 0) {
        pump(conn);
    }
}

/* Encrypt the hello and queued requests from the cursor, up to TLS_PT_BUDGET bytes;
 * complete what was wholly encrypted. Returns 0, or < 0 when the connection closed. */
static int encrypt(struct aegis_uring_conn *conn)
{
    struct uring_outq *q = &conn->q;
    size_t fed = 0;
    uint64_t frames;

    if (conn->hello_out_off < conn->hello_out_len) {
        if (aegis__tls_write(conn->tls, conn->hello_out + conn->hello_out_off,
                             conn->hello_out_len - conn->hello_out_off) != 0) {
            tls_fail(conn, AEGIS_ETLS, "cannot encrypt the hello");
            return AEGIS_ETLS;
        }
        conn->hello_out_off = conn->hello_out_len;
    }
    if (conn->kind == URING_CONN_CLIENT || conn->ready) {
        /* Bounded by the requests queued and by the budget. */
        for (uint64_t r = q->req_head; r < q->req_tail && fed < TLS_PT_BUDGET; r++) {
            const struct uring_send_req *req = &q->reqs[r % q->reqs_cap];
            uint64_t k = r == q->req_head ? q->wcur : req->iov_first;

            for (; k < req->iov_end && fed < TLS_PT_BUDGET; k++) {
                const struct iovec *v = &q->iov[k % q->iov_cap];
                size_t take = v->iov_len < TLS_PT_BUDGET - fed ? v->iov_len
                                                               : TLS_PT_BUDGET - fed;

                if (aegis__tls_write(conn->tls, v->iov_base, take) != 0) {
                    tls_fail(conn, AEGIS_ETLS, "cannot encrypt");
                    return AEGIS_ETLS;
                }
                fed += take;
            }
        }
    }
    if (aegis__tls_push(conn->tls) != 0) {
        tls_fail(conn, AEGIS_ETLS, "cannot encrypt");
        return AEGIS_ETLS;
    }
    if (fed == 0) {
        return 0;
    }
    frames = aegis__uring_outq_advance(conn, fed);
    if (conn->kind == URING_CONN_CLIENT) {
        conn->loop->stats.client_bytes_out += fed;
    } else {
        aegis__uring_peer_wrote(conn, frames, fed);
    }
    return conn->closing ? AEGIS_ESHUTDOWN : 0;
}

static void send_tx(struct aegis_uring_conn *conn)
{
    conn->hello_iov.iov_base = conn->tls_tx + conn->tls_tx_off;
    conn->hello_iov.iov_len = conn->tls_tx_len - conn->tls_tx_off;
    conn->writing_hello = false;
    aegis__uring_conn_prep_send(conn, &conn->hello_iov, 1);
}

void aegis__uring_tls_flush(struct aegis_uring_conn *conn)
{
    size_t pending;

    AEGIS_ASSERT(!conn->write_armed && !conn->closing);
    if (conn->tls_tx_off < conn->tls_tx_len) {
        send_tx(conn);
        return;
    }
    conn->tls_tx_off = conn->tls_tx_len = 0;
    if (conn->tls_up && encrypt(conn) != 0) {
        return;
    }
    pending = aegis__tls_out_pending(conn->tls);
    if (pending == 0) {
        if (conn->close_after_flush && conn->q.req_head == conn->q.req_tail) {
            aegis__uring_conn_close(conn, 0);
        }
        return;
    }
    if (pending > conn->tls_tx_cap) {
        /* Bounded by TLS_PT_BUDGET plus record overhead, or one handshake flight. */
        uint8_t *p = aegis__realloc(conn->loop->alloc, conn->tls_tx, pending);
        if (p == NULL) {
            aegis__uring_conn_close(conn, AEGIS_ENOMEM);
            return;
        }
        conn->tls_tx = p;
        conn->tls_tx_cap = pending;
    }
    conn->tls_tx_len = aegis__tls_take(conn->tls, conn->tls_tx, pending);
    AEGIS_ASSERT(conn->tls_tx_len == pending);
    send_tx(conn);
}

void aegis__uring_tls_wrote(struct aegis_uring_conn *conn, size_t n)
{
    conn->tls_tx_off += n;
    AEGIS_ASSERT(conn->tls_tx_off <= conn->tls_tx_len);
    aegis__uring_conn_dirty(conn);
}
