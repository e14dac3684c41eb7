/* SPDX-License-Identifier: MIT */
/* The io_uring TCP event loop that the net thread (aegis-net) runs.
 *
 * One struct aegis_uring_loop owns one io_uring and every socket of a node: a listener for
 * peers, one link per peer, an optional listener for clients and its connections, an
 * eventfd other threads write to wake the loop, and a periodic timer. It knows nothing of
 * Raft: it moves opaque length-prefixed frames between peers and raw bytes to and from
 * clients. The codec and the pipeline sit above it.
 *
 * Peer links. The lower id dials the higher (net/conn_pool.h), with exponential backoff
 * and jitter. With TLS configured, a mutual TLS handshake comes first (uring_tls.c). Both
 * sides open with a 32-byte hello (magic, version, cluster id, sender id,
 * expected receiver id; format in peer_frame.h) and a link carries frames only once both
 * hellos are accepted. A frame on the wire is a 4-byte little-endian body length and the
 * body; a body above frame_bytes_max closes the link. A lost link is redialed; frames
 * queued on it fail (their callback gets the error) and Raft retransmits.
 *
 * Sending does not copy payloads: aegis__uring_loop_send() records the caller's iovecs and
 * the kernel reads the bytes in place. The caller's callback runs exactly once per
 * accepted send, after the kernel is done with the iovecs (status 0), or when the send is
 * dropped (status < 0: link lost, peer removed, loop destroyed). Per-peer order holds.
 * Queues are bounded: a full one returns AEGIS_EFULL (backpressure).
 *
 * Threading. A loop belongs to one thread at a time, the net thread: every function here
 * except aegis__uring_loop_wake() and aegis__uring_loop_stop() must be called on that
 * thread (from inside a callback, or between run_once calls). Callbacks run on that thread,
 * inside run/run_once. Cross-thread work goes through the caller's own rings: push, then
 * call wake(); the loop then calls on_wake, where the pipeline drains its rings. */
#ifndef AEGIS_URING_LOOP_H
#define AEGIS_URING_LOOP_H

#include <sys/uio.h>

#include <aegis/types.h>

#include "engine/alloc.h"
#include "net/conn_pool.h"

struct aegis_uring_loop;

/* A client connection's handle: slot and generation, so a stale handle (the connection has
 * closed and its slot was reused) is detected, never confused with the new one. 0 is
 * never a valid handle. */
typedef uint64_t aegis_uring_client_id;

/* The hello's magic ("AEGN") and the wire version this code speaks. */
#define AEGIS_URING_MAGIC         0x4e474541u
#define AEGIS_URING_VERSION       1u
#define AEGIS_URING_HELLO_BYTES   32u
#define AEGIS_URING_FRAME_HDR     4u
/* Hard ceiling on frame_bytes_max: the aegis_buf ceiling. */
#define AEGIS_URING_FRAME_MAX     (256u << 20)
/* The most iovecs one send may carry (plus the loop's own length prefix). */
#define AEGIS_URING_SEND_IOV_MAX  1023 /* Plus the length prefix: UIO_MAXIOV. */
/* Room for the text of a creation error. */
#define AEGIS_URING_ERRMSG_BYTES  256u

enum aegis_uring_log_level {
    AEGIS_URING_LOG_ERROR = 0,
    AEGIS_URING_LOG_WARN = 1,
    AEGIS_URING_LOG_INFO = 2,
    AEGIS_URING_LOG_DEBUG = 3
};

/* One entry of the initial peers table. */
struct aegis_uring_peer_addr {
    aegis_node_id id;
    const char *host; /* Copied. */
    uint16_t port;
};

/* Called once per send or client write accepted by the loop: @status is 0 when every byte
 * was handed to the kernel (the iovecs are no longer referenced), or a negative AEGIS_E*
 * code when the bytes were dropped. Runs on the net thread. */
typedef void (*aegis_uring_send_cb)(struct aegis_uring_loop *loop, int status, void *data);

struct aegis_uring_callbacks {
    /* One complete frame from a connected peer; @frame excludes the length prefix and is
     * valid only during the call (copy what you keep). */
    void (*on_frame)(struct aegis_uring_loop *loop, aegis_node_id peer, const uint8_t *frame,
                     size_t len, void *data);
    /* A peer link came up (@up, @status 0) or went down (@status says why). */
    void (*on_peer_state)(struct aegis_uring_loop *loop, aegis_node_id peer, bool up,
                          int status, void *data);
    /* A client connected; @client is its handle until on_client_close. */
    void (*on_client_open)(struct aegis_uring_loop *loop, aegis_uring_client_id client,
                           void *data);
    /* Bytes from a client: everything buffered and not yet consumed. Return how many bytes
     * were consumed (<= @len); the rest stays buffered and is offered again, with what
     * follows, on the next read or on resume. Not called while the client is paused. */
    size_t (*on_client_data)(struct aegis_uring_loop *loop, aegis_uring_client_id client,
                             const uint8_t *bytes, size_t len, void *data);
    /* The connection is gone (peer closed, error, client_close, loop destroyed); the handle
     * is dead once this returns. @status 0 means an orderly end. */
    void (*on_client_close)(struct aegis_uring_loop *loop, aegis_uring_client_id client,
                            int status, void *data);
    /* Somebody called aegis__uring_loop_wake(). */
    void (*on_wake)(struct aegis_uring_loop *loop, void *data);
    /* Every tick_ms milliseconds; @now_ms is CLOCK_MONOTONIC in milliseconds. */
    void (*on_tick)(struct aegis_uring_loop *loop, uint64_t now_ms, void *data);
    /* A log line (no trailing newline). NULL: lines at or below log_level go to stderr. */
    void (*on_log)(int level, const char *line, void *data);
    void *data;
};

/* Zero fields take the defaults noted. The config is copied by create; the strings too. */
struct aegis_uring_config {
    aegis_node_id self_id;           /* Required, non-zero. */
    uint64_t cluster_id;             /* Required, non-zero: hellos must match it. */
    const char *peer_host;           /* Peer listener address. NULL: "127.0.0.1". */
    uint16_t peer_port;              /* 0: an ephemeral port (read it back with peer_port). */
    const struct aegis_uring_peer_addr *peers; /* Entries with self_id are skipped. */
    uint32_t peers_count;
    uint32_t peers_max;              /* Peer table size. 0: 16. */
    const char *client_host;         /* Client listener address; NULL: no client port. */
    uint16_t client_port;            /* 0: ephemeral. */
    uint32_t clients_max;            /* Client connections at once. 0: 1024. */
    uint32_t frame_bytes_max;        /* Largest frame body. 0: 16 MiB. */
    uint32_t peer_read_bytes;        /* Initial per-link read buffer. 0: 256 KiB. It grows
                                      * to fit one frame, up to frame_bytes_max + 4. */
    uint32_t peer_queue_max;         /* Queued sends per peer link. 0: 1024. */
    uint32_t client_read_bytes;      /* Initial per-client read buffer. 0: 16 KiB. */
    uint32_t client_read_bytes_max;  /* Per-client read buffer ceiling. 0: 1 MiB + 64 KiB. */
    uint32_t client_queue_max;       /* Queued writes per client. 0: 256. */
    uint32_t backoff_base_ms;        /* First redial delay ceiling. 0: 50. */
    uint32_t backoff_max_ms;         /* Largest redial delay. 0: 200. */
    uint32_t connect_timeout_ms;     /* Dial plus hello exchange. 0: 3000. */
    uint32_t tick_ms;                /* Timer period. 0: 10. */
    uint32_t ring_entries;           /* io_uring SQ size. 0: 256. */
    uint64_t rng_seed;               /* Jitter seed. 0: derived from self_id. */
    int log_level;                   /* enum aegis_uring_log_level; 0 = errors only. */
    /* TLS (net/tls.h), PEM file paths read by create. With tls_cert, tls_key and tls_ca
     * all set, peer links use mutual TLS: each side's certificate must chain to tls_ca
     * and name its node id (a SAN URI aegis://node/<id>), which must match the hello.
     * client_tls (needs the three files) makes the client port speak TLS with the same
     * certificate; client certificates are optional there. NULL / false: plaintext. */
    const char *tls_cert;
    const char *tls_key;
    const char *tls_ca;
    bool client_tls;
    const struct aegis_allocator *alloc; /* NULL: default heap. Must outlive the loop. */
};

/* Loop-wide counters (per-peer counters live in struct aegis_peer_stats). */
struct aegis_uring_stats {
    uint64_t loop_iterations;
    uint64_t submits;            /* io_uring_submit calls. */
    uint64_t cqes;
    uint64_t wakes;              /* on_wake calls. */
    uint64_t ticks;
    uint64_t peer_accepts;
    uint64_t peer_hello_rejects; /* Inbound hellos refused (any reason). */
    uint64_t client_accepts;
    uint64_t client_rejects;     /* Closed at accept: clients_max reached. */
    uint64_t client_bytes_in;
    uint64_t client_bytes_out;
};

/* Create a loop from @config: set up the io_uring, the eventfd, the listeners (bound and
 * listening when this returns) and the peers table; dialing starts on the first run_once.
 * @callbacks is copied. On failure, when @errmsg is not NULL, a line for the operator is
 * written there (at most @errmsg_bytes with the NUL), for example
 * "io_uring unavailable: io_uring_queue_init: Operation not permitted (...)".
 * Returns 0 and the loop in @loop_out, or: AEGIS_ENOSYS / AEGIS_EPERM when io_uring is
 * unavailable (old kernel, seccomp, kernel.io_uring_disabled), AEGIS_EINVAL for a bad
 * config, AEGIS_EADDRINUSE and other socket errors for the listeners, AEGIS_ENOMEM.
 * Any thread; the loop then belongs to the thread that runs it. */
int aegis__uring_loop_create(const struct aegis_uring_config *config,
                             const struct aegis_uring_callbacks *callbacks,
                             struct aegis_uring_loop **loop_out, char *errmsg,
                             size_t errmsg_bytes);

/* Close every connection and free the loop. Pending sends and client writes complete with
 * AEGIS_ESHUTDOWN, open clients get on_client_close(AEGIS_ESHUTDOWN); callbacks must not
 * call back into the loop except to read stats. Call after run() returned, on the thread
 * that ran it (or any thread once no thread runs it). NULL is a no-op. */
void aegis__uring_loop_destroy(struct aegis_uring_loop *loop);

/* One iteration: submit what is prepared, wait up to @timeout_ms for completions (0: do not
 * wait, < 0: wait until something happens), then handle every completion ready, running
 * callbacks. Returns the number of completions handled (0 on timeout) or a negative
 * AEGIS_E* code for a failure of the ring itself. Net thread. */
int aegis__uring_loop_run_once(struct aegis_uring_loop *loop, int timeout_ms);

/* Run iterations until aegis__uring_loop_stop(). Never spins: it sleeps in the kernel
 * between events and ticks. Returns 0 after stop, or the error of run_once. */
int aegis__uring_loop_run(struct aegis_uring_loop *loop);

/* Ask run() to return after its current iteration. Any thread; async-signal-unsafe. */
void aegis__uring_loop_stop(struct aegis_uring_loop *loop);

/* Wake the loop: on_wake runs on the net thread after this call, at least once, and that
 * call starts after this one began, so whatever the caller published before waking (for
 * example a ring push) is visible to on_wake. Calls made while a wake is still pending
 * coalesce into one eventfd write. Any thread; lock-free. */
void aegis__uring_loop_wake(struct aegis_uring_loop *loop);

/* Queue a frame for peer @peer whose body is the concatenation of @iovcnt (1..
 * AEGIS_URING_SEND_IOV_MAX) buffers at @iov. The iovec array is copied; the bytes are not:
 * they must stay valid and unchanged until @cb(status) runs (exactly once, on the net
 * thread, never from inside this call). The loop adds the length prefix.
 * Returns 0 when queued; otherwise @cb is not called and: AEGIS_EUNKNOWNNODE (not in the
 * table), AEGIS_ENOTCONN (no link and none being made: the acceptor side waiting to be
 * dialed, or the dialer in backoff), AEGIS_ETOOBIG (body > frame_bytes_max),
 * AEGIS_EFULL (the link's queue is full), AEGIS_EINVAL (bad iovcnt), AEGIS_ESHUTDOWN.
 * Frames queued while the link is being made go out once the hellos are exchanged. */
int aegis__uring_loop_send(struct aegis_uring_loop *loop, aegis_node_id peer,
                           const struct iovec *iov, int iovcnt, aegis_uring_send_cb cb,
                           void *data);

/* Add peer @id at @host:@port at run time (membership change). Returns 0 or the errors of
 * aegis__conn_pool_add. Dialing, if ours to do, starts on the next iteration. */
int aegis__uring_loop_peer_add(struct aegis_uring_loop *loop, aegis_node_id id,
                               const char *host, uint16_t port);

/* Remove peer @id: close its link (queued sends fail with AEGIS_ESHUTDOWN) and forget it.
 * Returns 0 or AEGIS_EUNKNOWNNODE. */
int aegis__uring_loop_peer_remove(struct aegis_uring_loop *loop, aegis_node_id id);
/* Close @id's current link with @status (e.g. it sent a malformed frame); the peer stays
 * known and the link is re-established as usual (the lower id redials with backoff). Safe
 * from inside on_frame: the connection is finalised later, never in the caller's call.
 * AEGIS_EUNKNOWNNODE if @id is not a peer; 0 if it had no link. Loop thread only. */
int aegis__uring_loop_peer_reset(struct aegis_uring_loop *loop, aegis_node_id id, int status);

/* The link state of peer @id, or -1 when unknown. */
int aegis__uring_loop_peer_state(struct aegis_uring_loop *loop, aegis_node_id id);

/* How many frames are queued to peer @id and not yet completed (0 without a link), or
 * AEGIS_EUNKNOWNNODE. With peer_queue_max, this tells a sender how close it is to EFULL. */
int aegis__uring_loop_peer_queued(struct aegis_uring_loop *loop, aegis_node_id id);

/* Copy peer @id's counters to @stats_out. Returns 0 or AEGIS_EUNKNOWNNODE. */
int aegis__uring_loop_peer_stats(struct aegis_uring_loop *loop, aegis_node_id id,
                                 struct aegis_peer_stats *stats_out);

/* The bound ports of the listeners (0 when there is no client listener). */
uint16_t aegis__uring_loop_peer_port(const struct aegis_uring_loop *loop);
uint16_t aegis__uring_loop_client_port(const struct aegis_uring_loop *loop);

/* Copy the loop-wide counters. */
void aegis__uring_loop_stats(const struct aegis_uring_loop *loop,
                             struct aegis_uring_stats *stats_out);

/* CLOCK_MONOTONIC in milliseconds, the clock of on_tick and backoff deadlines. */
uint64_t aegis__uring_loop_now_ms(void);

/* Queue bytes to client @client, in order after what was queued before. Same ownership
 * and callback rules as aegis__uring_loop_send (no prefix is added). Returns 0, or
 * AEGIS_ENOTFOUND (stale handle or closing), AEGIS_EFULL, AEGIS_EINVAL, AEGIS_ESHUTDOWN. */
int aegis__uring_loop_client_write(struct aegis_uring_loop *loop, aegis_uring_client_id client,
                                   const struct iovec *iov, int iovcnt, aegis_uring_send_cb cb,
                                   void *data);

/* Like client_write for @len bytes at @bytes, which are copied (into one allocation from
 * the loop's allocator, freed when the kernel is done): for small replies. Also returns
 * AEGIS_ENOMEM. */
int aegis__uring_loop_client_write_copy(struct aegis_uring_loop *loop,
                                        aegis_uring_client_id client, const void *bytes,
                                        size_t len);

/* Stop offering a client's bytes to on_client_data and stop reading its socket (TCP then
 * pushes back on the client), or start again. Bytes already buffered are offered again on
 * the iteration after resume. Returns 0 or AEGIS_ENOTFOUND. */
int aegis__uring_loop_client_pause(struct aegis_uring_loop *loop, aegis_uring_client_id client);
int aegis__uring_loop_client_resume(struct aegis_uring_loop *loop,
                                    aegis_uring_client_id client);

/* Pause or resume reading from every client at once (overload), on top of per-client
 * pauses. */
void aegis__uring_loop_clients_pause_all(struct aegis_uring_loop *loop, bool paused);

/* Close client @client. With @flush, reading stops at once and the socket closes after
 * the queued writes are sent (an error reply before closing); without, queued writes are
 * dropped (their callbacks get AEGIS_ECANCELED). on_client_close follows, from the loop.
 * Returns 0 or AEGIS_ENOTFOUND. */
int aegis__uring_loop_client_close(struct aegis_uring_loop *loop, aegis_uring_client_id client,
                                   bool flush);

#endif /* AEGIS_URING_LOOP_H */
