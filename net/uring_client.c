/* SPDX-License-Identifier: MIT */
/* Client connections: raw bytes in, queued vectored writes out.
 *
 * Reading. Each client has a read buffer of client_read_bytes. After each read the
 * buffered bytes are offered to on_client_data, which says how many it consumed; the
 * rest stays at the front of the buffer. When the buffer is full and nothing more can be
 * consumed (one request larger than the buffer), it doubles, up to client_read_bytes_max;
 * past that the connection is closed with AEGIS_ETOOBIG. So a client costs at most
 * client_read_bytes_max plus its write queue.
 *
 * Backpressure. A paused client (or all clients, after clients_pause_all) is neither read
 * nor offered its buffered bytes: its socket buffer fills and TCP stops the sender. A read
 * already in flight may still complete; its bytes are kept for later. Resume offers the
 * buffered bytes on the next iteration, then reads again.
 *
 * Handles are slot | generation << 32; the generation changes when a slot is freed, so a
 * handle kept after on_client_close is refused (AEGIS_ENOTFOUND), never misdirected. */
#include <string.h>
#include <unistd.h>

#include <aegis/error.h>

#include "engine/assert.h"
#include "net/uring_loop_int.h"

static aegis_uring_client_id client_id(const struct aegis_uring_conn *conn)
{
    return (uint64_t)conn->gen << 32 | conn->slot;
}

static struct aegis_uring_conn *client_find(struct aegis_uring_loop *loop,
                                            aegis_uring_client_id id)
{
    uint32_t slot = (uint32_t)id;
    struct aegis_uring_conn *conn;

    if (slot < loop->peer_slots || slot >= loop->conns_count) {
        return NULL;
    }
    conn = &loop->conns[slot];
    if (!conn->in_use || conn->closing || conn->gen != (uint32_t)(id >> 32)) {
        return NULL;
    }
    AEGIS_ASSERT(conn->kind == URING_CONN_CLIENT);
    return conn;
}

void aegis__uring_client_accepted(struct aegis_uring_loop *loop, int fd)
{
    struct aegis_uring_conn *conn = NULL;

    if (loop->clients_open < loop->config.clients_max) {
        conn = aegis__uring_conn_open(loop, URING_CONN_CLIENT, fd);
    }
    if (conn == NULL) {
        /* Over the limit: close at once, so the client sees an end rather than a hang. */
        loop->stats.client_rejects++;
        aegis__uring_log(loop, loop->stats.client_rejects == 1 ? AEGIS_URING_LOG_WARN
                                                               : AEGIS_URING_LOG_DEBUG,
                         "client refused: %u connections open (limit %u)", loop->clients_open,
                         loop->config.clients_max);
        close(fd);
        return;
    }
    aegis__uring_socket_options(fd);
    loop->clients_open++;
    loop->stats.client_accepts++;
    aegis__uring_conn_dirty(conn);
    if (loop->cb.on_client_open != NULL) {
        loop->cb.on_client_open(loop, client_id(conn), loop->cb.data);
    }
    /* TLS: the handshake starts with the client's first bytes (uring_tls.c). */
    if (loop->client_tls != NULL && !conn->closing &&
        aegis__uring_tls_start(conn, loop->client_tls, true) != 0) {
        aegis__uring_conn_close(conn, AEGIS_ENOMEM);
    }
}

/* A full buffer that the callback could not shrink holds one request larger than the
 * buffer: grow it, up to the ceiling, or give up on the client. */
static void grow_or_close(struct aegis_uring_conn *conn)
{
    struct aegis_uring_loop *loop = conn->loop;
    size_t cap;

    if (conn->rcap >= loop->config.client_read_bytes_max) {
        aegis__uring_log(loop, AEGIS_URING_LOG_WARN,
                         "client request above %u bytes unconsumed: closing it",
                         loop->config.client_read_bytes_max);
        aegis__uring_conn_close(conn, AEGIS_ETOOBIG);
        return;
    }
    cap = conn->rcap * 2;
    if (cap > loop->config.client_read_bytes_max) {
        cap = loop->config.client_read_bytes_max;
    }
    if (aegis__uring_conn_reserve(conn, cap) != 0) {
        aegis__uring_conn_close(conn, AEGIS_ENOMEM);
    }
}

void aegis__uring_client_deliver(struct aegis_uring_conn *conn)
{
    struct aegis_uring_loop *loop = conn->loop;
    size_t used;

    AEGIS_ASSERT(conn->kind == URING_CONN_CLIENT);
    if (conn->paused || loop->clients_paused || conn->closing || conn->close_after_flush ||
        conn->rlen == 0 || loop->cb.on_client_data == NULL) {
        return;
    }
    used = loop->cb.on_client_data(loop, client_id(conn), conn->rbuf, conn->rlen,
                                   loop->cb.data);
    AEGIS_ASSERT(used <= conn->rlen);
    if (conn->closing) {
        return;
    }
    memmove(conn->rbuf, conn->rbuf + used, conn->rlen - used);
    conn->rlen -= used;
    /* Paused by the callback with a full buffer: resume will offer the bytes again. */
    if (conn->rlen == conn->rcap && !conn->paused && !loop->clients_paused &&
        !conn->close_after_flush) {
        grow_or_close(conn);
    }
}

void aegis__uring_client_read(struct aegis_uring_conn *conn)
{
    if (conn->close_after_flush) {
        conn->rlen = 0; /* Closing: what the client sends now is not read. */
        return;
    }
    aegis__uring_client_deliver(conn);
}

void aegis__uring_client_finalize(struct aegis_uring_conn *conn)
{
    struct aegis_uring_loop *loop = conn->loop;

    AEGIS_ASSERT(loop->clients_open > 0);
    loop->clients_open--;
    if (loop->cb.on_client_close != NULL) {
        loop->cb.on_client_close(loop, client_id(conn), conn->close_status, loop->cb.data);
    }
}

int aegis__uring_loop_client_write(struct aegis_uring_loop *loop, aegis_uring_client_id client,
                                   const struct iovec *iov, int iovcnt, aegis_uring_send_cb cb,
                                   void *data)
{
    struct aegis_uring_conn *conn;
    size_t total = 0;

    AEGIS_ASSERT(loop != NULL);
    if (loop->destroying) {
        return AEGIS_ESHUTDOWN;
    }
    if (iov == NULL || iovcnt < 1 || iovcnt > AEGIS_URING_SEND_IOV_MAX) {
        return AEGIS_EINVAL;
    }
    for (int i = 0; i < iovcnt; i++) {
        total += iov[i].iov_len;
    }
    if (total == 0) {
        return AEGIS_EINVAL;
    }
    conn = client_find(loop, client);
    if (conn == NULL || conn->close_after_flush) {
        return AEGIS_ENOTFOUND;
    }
    return aegis__uring_conn_enqueue(conn, iov, iovcnt, false, cb, data);
}

static void free_copy(struct aegis_uring_loop *loop, int status, void *data)
{
    (void)status;
    aegis__free(loop->alloc, data);
}

int aegis__uring_loop_client_write_copy(struct aegis_uring_loop *loop,
                                        aegis_uring_client_id client, const void *bytes,
                                        size_t len)
{
    struct iovec iov;
    void *copy;
    int rv;

    if (len == 0) {
        return AEGIS_EINVAL;
    }
    /* One allocation per reply, bounded by the queue size. */
    copy = aegis__malloc(loop->alloc, len);
    if (copy == NULL) {
        return AEGIS_ENOMEM;
    }
    memcpy(copy, bytes, len);
    iov.iov_base = copy;
    iov.iov_len = len;
    rv = aegis__uring_loop_client_write(loop, client, &iov, 1, free_copy, copy);
    if (rv != 0) {
        aegis__free(loop->alloc, copy);
    }
    return rv;
}

int aegis__uring_loop_client_pause(struct aegis_uring_loop *loop, aegis_uring_client_id client)
{
    struct aegis_uring_conn *conn = client_find(loop, client);

    if (conn == NULL) {
        return AEGIS_ENOTFOUND;
    }
    conn->paused = true;
    return 0;
}

int aegis__uring_loop_client_resume(struct aegis_uring_loop *loop,
                                    aegis_uring_client_id client)
{
    struct aegis_uring_conn *conn = client_find(loop, client);

    if (conn == NULL) {
        return AEGIS_ENOTFOUND;
    }
    if (conn->paused) {
        conn->paused = false;
        conn->redeliver = true;
        aegis__uring_conn_dirty(conn);
    }
    return 0;
}

void aegis__uring_loop_clients_pause_all(struct aegis_uring_loop *loop, bool paused)
{
    bool was = loop->clients_paused;

    loop->clients_paused = paused;
    if (was && !paused) {
        /* O(clients), on the rare transition out of overload. */
        for (uint32_t i = loop->peer_slots; i < loop->conns_count; i++) {
            struct aegis_uring_conn *conn = &loop->conns[i];
            if (conn->in_use && !conn->closing) {
                conn->redeliver = true;
                aegis__uring_conn_dirty(conn);
            }
        }
    }
}

int aegis__uring_loop_client_close(struct aegis_uring_loop *loop, aegis_uring_client_id client,
                                   bool flush)
{
    struct aegis_uring_conn *conn = client_find(loop, client);

    if (conn == NULL) {
        return AEGIS_ENOTFOUND;
    }
    if (flush) {
        conn->close_after_flush = true;
        aegis__uring_conn_dirty(conn);
        return 0;
    }
    aegis__uring_conn_close(conn, AEGIS_ECANCELED);
    return 0;
}
