/* SPDX-License-Identifier: MIT */
/* Internals of the io_uring loop shared by its three source files:
 *   uring_loop.c    the ring, the iteration (prepare, submit once, reap), timer, wake,
 *                   listeners, create/destroy;
 *   uring_conn.c    connection slots and the machinery every TCP connection shares: the
 *                   bounded write queue of vectored sends, reads, closing;
 *   uring_peer.c    peer links: dialing, the hello, frames;
 *   uring_client.c  client connections;
 *   uring_tls.c     the TLS layer between the socket and the plaintext those see.
 *
 * Completion routing. Every SQE carries a user_data that says what completed. Connection
 * operations carry the connection's address with the operation kind in its low three bits
 * (struct aegis_uring_conn is 8-byte aligned); loop-wide operations carry a small integer
 * below 8. Each operation kind is in flight at most once per connection, so one flag per
 * kind is enough, and a connection's memory is released only when its count of operations
 * in flight is zero: no completion can ever name freed memory.
 *
 * Write queue. A connection's sends wait in two rings allocated when it opens: requests
 * (one per send: callback, length prefix) and iovecs. A request takes a contiguous run of
 * iovec slots; when the run would wrap, the slots up to the end of the ring are skipped.
 * One sendmsg is in flight per connection at a time (order), covering as many queued
 * requests as are contiguous in the iovec ring (up to UIO_MAXIOV). A short write advances
 * the cursor and trims the first unwritten iovec in place; the rest goes in the next
 * sendmsg. A request's callback runs when the cursor passes its last iovec. */
#ifndef AEGIS_URING_LOOP_INT_H
#define AEGIS_URING_LOOP_INT_H

#include <liburing.h>

#include "engine/rng.h"
#include "net/conn_pool.h"
#include "net/ratelimit.h"
#include "net/tls.h"
#include "net/uring_loop.h"

/* Loop-wide user_data values (connection operations carry a pointer instead). */
enum {
    URING_UD_IGNORE = 1, /* Cancel requests: their completion needs no handling. */
    URING_UD_ACCEPT_PEER = 2,
    URING_UD_ACCEPT_CLIENT = 3,
    URING_UD_WAKE = 4,
    URING_UD_TIMER = 5
};

/* Connection operation kinds, in the low bits of user_data. */
enum {
    URING_OP_READ = 1,
    URING_OP_WRITE = 2,
    URING_OP_CONNECT = 3,
    URING_OP_CANCEL = 4
};
#define URING_OP_MASK ((uint64_t)7)

/* Inbound peer connections still in their hello, at most. */
#define URING_PEER_PENDING_MAX 16u

enum uring_conn_kind { URING_CONN_PEER_OUT = 1, URING_CONN_PEER_IN, URING_CONN_CLIENT };

struct uring_send_req {
    aegis_uring_send_cb cb;
    void *data;
    uint64_t iov_first;   /* Monotonic slot numbers in the iovec ring: [first, end). */
    uint64_t iov_end;
    uint8_t prefix[AEGIS_URING_FRAME_HDR]; /* Peer frames: the little-endian length. */
};

struct uring_outq {
    struct uring_send_req *reqs;
    uint32_t reqs_cap;
    uint64_t req_head;   /* Monotonic; the oldest request not completed. */
    uint64_t req_tail;
    struct iovec *iov;
    uint32_t iov_cap;
    uint64_t iov_head;   /* Slots before this are free. */
    uint64_t iov_tail;
    uint64_t wcur;       /* First slot not fully written. */
};

struct aegis_uring_conn {
    struct aegis_uring_loop *loop;
    enum uring_conn_kind kind;
    bool in_use;
    int fd;
    uint32_t slot;
    uint32_t gen;            /* Bumped when the slot is freed (client handles). */
    uint32_t inflight;       /* Operations submitted and not yet completed. */
    bool read_armed;
    bool write_armed;
    bool connect_armed;
    bool cancel_armed;
    bool closing;            /* close started; finalised when inflight reaches 0. */
    int close_status;
    bool close_after_flush;  /* Clients: close once the queue is empty. */
    bool paused;             /* Clients: not read, not offered. */
    bool redeliver;          /* Clients: offer buffered bytes in the next prepare. */
    bool in_dirty;           /* Listed in loop->dirty. */
    uint32_t dirty_index;
    /* Peers. */
    struct aegis_peer *peer; /* The bound peer, NULL until the hello (inbound) or after
                              * the link is detached by close. */
    bool ready;              /* Hellos exchanged: frames may be written. */
    bool hello_in;           /* The peer's hello was received and accepted. */
    uint64_t deadline_ms;    /* Connect plus hello must finish by then. */
    struct sockaddr_storage addr; /* Dialer: the address connect reads. */
    socklen_t addr_len;
    uint8_t hello_out[AEGIS_URING_HELLO_BYTES];
    uint32_t hello_out_off;
    uint32_t hello_out_len;
    bool writing_hello;
    /* Reading. */
    uint8_t *rbuf;
    size_t rcap;
    size_t rlen;
    /* Writing. */
    struct uring_outq q;
    struct msghdr msg;
    struct iovec hello_iov;
    /* TLS (uring_tls.c); tls is NULL on a plaintext connection. Reads land in tls_rx
     * (ciphertext) and are decrypted into rbuf; writes are encrypted into tls_tx, which
     * one sendmsg at a time sends (tls_tx_off: bytes of it already sent). */
    struct aegis_tls *tls;
    bool tls_up;             /* Handshake complete (and, for peers, the certificate's
                              * node id checked). */
    aegis_node_id tls_node;  /* Peers: the node id the peer's certificate names. */
    uint8_t *tls_rx;
    size_t tls_rx_cap;
    uint8_t *tls_tx;
    size_t tls_tx_cap;
    size_t tls_tx_len;
    size_t tls_tx_off;
} __attribute__((aligned(8)));

struct aegis_uring_loop {
    struct io_uring ring;
    bool ring_ready;
    struct aegis_uring_config config; /* Defaults filled in. */
    struct aegis_uring_callbacks cb;
    const struct aegis_allocator *alloc;
    struct aegis_conn_pool pool;
    struct aegis_rng rng;
    char peer_host[AEGIS_PEER_HOST_LEN_MAX + 1];
    char client_host[AEGIS_PEER_HOST_LEN_MAX + 1];
    int peer_lfd;
    int client_lfd;
    uint16_t peer_port;
    uint16_t client_port;
    bool accept_peer_armed;
    bool accept_client_armed;
    bool accept_retry;        /* An accept failed: re-arm on the next tick, not at once. */
    int wake_fd;
    uint64_t wake_value;      /* The eventfd read's buffer. */
    bool wake_armed;
    bool timer_armed;
    struct __kernel_timespec tick_ts; /* Absolute deadline of the armed timer. */
    uint64_t next_tick_ms;
    uint64_t now_ms;          /* Clock read once per iteration. */
    uint32_t wake_pending;    /* Any thread: exchange (acq_rel). See aegis__uring_loop_wake. */
    uint32_t stop_requested;  /* Any thread writes (release), net thread reads (acquire). */
    bool destroying;
    bool service_due;         /* Peers need a look (dial, deadlines) in the next prepare. */
    bool clients_paused;
    uint64_t ops_inflight;    /* Every SQE prepared and not yet reaped. */
    /* Connection slots: [0, peer_slots) for peer links, then clients. */
    struct aegis_uring_conn *conns;
    uint32_t conns_count;
    uint32_t peer_slots;
    uint32_t clients_open;
    uint32_t peers_pending;   /* Inbound peer connections before their hello. */
    struct aegis_uring_conn **dirty; /* Connections to look at in the next prepare. */
    uint32_t dirty_head;      /* Entries before it were visited by this prepare. */
    uint32_t dirty_count;
    struct aegis_uring_stats stats;
    struct aegis_tls_ctx *peer_tls;   /* NULL: plaintext peer port. */
    struct aegis_tls_ctx *client_tls; /* NULL: plaintext client port. */
    struct aegis_ratelimit rl_peer;   /* Warnings about inbound peer connections. */
    struct aegis_ratelimit rl_client; /* Warnings about client TLS handshakes. */
};

/* uring_loop.c */
struct io_uring_sqe *aegis__uring_sqe(struct aegis_uring_loop *loop, uint64_t user_data);
void aegis__uring_log(struct aegis_uring_loop *loop, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *aegis__uring_errtext(int err);

/* uring_conn.c */
struct aegis_uring_conn *aegis__uring_conn_open(struct aegis_uring_loop *loop,
                                                enum uring_conn_kind kind, int fd);
int aegis__uring_conn_enqueue(struct aegis_uring_conn *conn, const struct iovec *iov, int iovcnt,
                              bool framed, aegis_uring_send_cb cb, void *data);
void aegis__uring_conn_dirty(struct aegis_uring_conn *conn);
void aegis__uring_conn_flush(struct aegis_uring_conn *conn);
void aegis__uring_conn_arm_read(struct aegis_uring_conn *conn);
int aegis__uring_conn_reserve(struct aegis_uring_conn *conn, size_t need);
void aegis__uring_conn_close(struct aegis_uring_conn *conn, int status);
void aegis__uring_conn_complete(struct aegis_uring_conn *conn, uint64_t op, int res);
void aegis__uring_conn_prepare(struct aegis_uring_loop *loop);
void aegis__uring_conns_close_all(struct aegis_uring_loop *loop, int status);
void aegis__uring_conns_finalize_idle(struct aegis_uring_loop *loop);
int aegis__uring_socket_options(int fd);

/* uring_tls.c */
int aegis__uring_tls_start(struct aegis_uring_conn *conn, struct aegis_tls_ctx *ctx,
                           bool server);
void aegis__uring_tls_free(struct aegis_uring_conn *conn);
void aegis__uring_tls_flush(struct aegis_uring_conn *conn);
bool aegis__uring_tls_read_buf(struct aegis_uring_conn *conn, uint8_t **buf, size_t *len);
void aegis__uring_tls_received(struct aegis_uring_conn *conn, size_t n);
void aegis__uring_tls_wrote(struct aegis_uring_conn *conn, size_t n);
void aegis__uring_tls_prepare(struct aegis_uring_conn *conn);
void aegis__uring_tls_kick(struct aegis_uring_conn *conn);
uint64_t aegis__uring_outq_advance(struct aegis_uring_conn *conn, size_t n);
void aegis__uring_conn_deliver_read(struct aegis_uring_conn *conn);
void aegis__uring_conn_prep_send(struct aegis_uring_conn *conn, struct iovec *iov,
                                 size_t iovlen);
/* Log through @rl: at most one line per second, with the count of lines held back. */
void aegis__uring_log_limited(struct aegis_uring_loop *loop, struct aegis_ratelimit *rl,
                              int level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* uring_peer.c */
int aegis__uring_peer_tls_up(struct aegis_uring_conn *conn);
void aegis__uring_peer_service(struct aegis_uring_loop *loop);
void aegis__uring_peer_accepted(struct aegis_uring_loop *loop, int fd);
void aegis__uring_peer_connected(struct aegis_uring_conn *conn, int res);
void aegis__uring_peer_read(struct aegis_uring_conn *conn);
void aegis__uring_peer_wrote(struct aegis_uring_conn *conn, uint64_t frames, size_t bytes);
void aegis__uring_peer_detach(struct aegis_uring_conn *conn, int status);

/* uring_client.c */
void aegis__uring_client_accepted(struct aegis_uring_loop *loop, int fd);
void aegis__uring_client_read(struct aegis_uring_conn *conn);
void aegis__uring_client_deliver(struct aegis_uring_conn *conn);
void aegis__uring_client_finalize(struct aegis_uring_conn *conn);

#endif /* AEGIS_URING_LOOP_INT_H */
