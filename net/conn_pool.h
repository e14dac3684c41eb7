/* SPDX-License-Identifier: MIT */
/* The connection pool: the table of peers a node talks to and the state of its link to each
 * (the seed's ConnectionPool).
 *
 * Design. The pool is bookkeeping only: it owns no sockets and issues no I/O. The io_uring
 * loop (net/uring_loop.c) asks it whom to dial and when, and tells it what happened. Each
 * peer has a fixed slot (pointers to a slot stay valid until the peer is removed), its
 * address resolved once when it is added, a link state, the reconnect schedule and
 * counters.
 *
 * Who dials. Exactly one side of each pair opens the TCP connection: the node with the
 * lower id dials the node with the higher id (aegis__conn_pool_dials). The higher id only
 * accepts. So a pair never holds two connections at once, and no tie-break is needed; a
 * new inbound connection from a peer replaces the old one (the dialer only ever has one).
 *
 * Backoff. After the n-th consecutive failure (connect refused, handshake rejected, link
 * lost) the next dial waits d = min(backoff_max, backoff_base * 2^(n-1)) milliseconds with
 * "equal jitter": a uniform draw in [d/2, d] from the seeded rng, so a restarted cluster
 * does not reconnect in lock step. A completed handshake resets n to 0.
 *
 * Prompt redial (issue 15). Only the dialer can notice that a peer is back, so the backoff
 * ceiling is what a restarted or healed acceptor waits for: with the old ceiling of 2 s a
 * node restarted after a few seconds down was redialed up to 2 s after it listened again,
 * long enough to time out and call elections. The default ceiling is therefore low
 * (AEGIS_CONN_POOL_BACKOFF_MAX_MS_DEFAULT, a few heartbeats): a failed dial costs one
 * SYN and one RST, and clusters have a handful of peers. A dial into a silent drop (a
 * partition) would otherwise sit in the kernel's SYN retransmission (1 s, 3 s, ...), so the
 * TCP connect stage has its own short deadline (aegis__conn_pool_connect_stage_ms) and the
 * next attempt sends a fresh SYN; the TLS handshake and the hellos get the full
 * connect_timeout_ms once TCP is up. An established link whose bytes go unacknowledged for
 * aegis__conn_pool_unacked_ms (at most 1 s) is dropped by the kernel (TCP_USER_TIMEOUT,
 * set in uring_peer.c), so a link cut by a partition is redialed instead of waiting out
 * TCP's retransmission backoff (0.2, 0.4, 0.8, 1.6, 3.2 s ...) after the heal. The cost of
 * a false alarm (three losses in a row of one segment) is one redial. The worst case from
 * "reachable again" to "dial sent" is then aegis__conn_pool_redial_gap_max_ms (plus one
 * loop tick).
 *
 * Threading: a pool belongs to one thread (the net thread); nothing here is atomic. */
#ifndef AEGIS_CONN_POOL_H
#define AEGIS_CONN_POOL_H

#include <sys/socket.h>

#include <aegis/types.h>

#include "engine/alloc.h"
#include "engine/rng.h"

/* Longest host name or address text accepted, without the terminating NUL. */
#define AEGIS_PEER_HOST_LEN_MAX 255u

/* Redial delays used when the loop's config leaves them 0: the first delay ceiling and the
 * largest (see "Prompt redial" above). */
#define AEGIS_CONN_POOL_BACKOFF_BASE_MS_DEFAULT 50u
#define AEGIS_CONN_POOL_BACKOFF_MAX_MS_DEFAULT 200u

/* The longest a TCP connect may stay in flight before the attempt is dropped and retried
 * with a fresh SYN (never longer than the loop's connect_timeout_ms). Below the kernel's
 * first SYN retransmission (1 s), so a dial started inside a partition does not wait out
 * the kernel's SYN backoff after the heal. */
#define AEGIS_CONN_POOL_CONNECT_STAGE_MS_MAX 500u

/* The longest bytes sent on an established peer link may stay unacknowledged before the
 * kernel drops the link (TCP_USER_TIMEOUT; never longer than connect_timeout_ms). */
#define AEGIS_CONN_POOL_UNACKED_MS_MAX 1000u

/* The most peers one pool may hold (a sanity bound; clusters have 3 to 7 voters). */
#define AEGIS_CONN_POOL_PEERS_MAX 64u

enum aegis_peer_state {
    AEGIS_PEER_IDLE = 0,    /* No link. The dialer dials now; the acceptor waits. */
    AEGIS_PEER_BACKOFF,     /* No link; the dialer waits until backoff_until_ms. */
    AEGIS_PEER_CONNECTING,  /* TCP connect in flight (dialer only). */
    AEGIS_PEER_HANDSHAKE,   /* Connected; our hello sent, waiting for the peer's. */
    AEGIS_PEER_CONNECTED    /* Handshake done both ways: frames flow. */
};

struct aegis_peer_stats {
    uint64_t bytes_in;           /* Frame bytes received, length prefixes included. */
    uint64_t bytes_out;          /* Bytes the kernel accepted for sending. */
    uint64_t frames_in;          /* Frames delivered through on_frame. */
    uint64_t frames_out;         /* Frames fully handed to the kernel. */
    uint64_t connects;           /* Handshakes completed. */
    uint64_t reconnects;         /* Handshakes completed after the first. */
    uint64_t disconnects;        /* Established links lost. */
    uint64_t connect_failures;   /* Dials that failed before the handshake completed. */
    uint64_t handshake_rejects;  /* Hellos from or about this peer that we refused. */
    uint64_t oversize_frames;    /* Links closed for a frame above the size limit. */
    uint64_t sends_full;         /* Sends refused with AEGIS_EFULL (backpressure). */
};

struct aegis_peer {
    bool in_use;
    aegis_node_id id;
    char host[AEGIS_PEER_HOST_LEN_MAX + 1];
    uint16_t port;
    struct sockaddr_storage addr; /* Resolved at add time. */
    socklen_t addr_len;
    bool dials;                  /* True when this node opens the connection. */
    enum aegis_peer_state state;
    uint64_t backoff_until_ms;   /* Meaningful in AEGIS_PEER_BACKOFF. */
    uint32_t attempts;           /* Consecutive failures since the last handshake. */
    void *conn;                  /* The loop's current connection, or NULL. Opaque here. */
    struct aegis_peer_stats stats;
};

struct aegis_conn_pool {
    aegis_node_id self_id;
    uint32_t peers_max;
    uint32_t peers_count;
    uint32_t backoff_base_ms;
    uint32_t backoff_max_ms;
    struct aegis_peer *peers; /* peers_max slots; in_use marks the live ones. */
    const struct aegis_allocator *alloc;
};

/* Build an empty pool in @pool for node @self_id (non-zero) with room for @peers_max peers
 * (1..AEGIS_CONN_POOL_PEERS_MAX). Backoff delays run from @backoff_base_ms (> 0) up to
 * @backoff_max_ms (>= base). @alloc may be NULL (default heap); it must outlive the pool.
 * Returns 0, AEGIS_EINVAL for bad arguments or AEGIS_ENOMEM. */
int aegis__conn_pool_init(struct aegis_conn_pool *pool, aegis_node_id self_id,
                          uint32_t peers_max, uint32_t backoff_base_ms, uint32_t backoff_max_ms,
                          const struct aegis_allocator *alloc);

/* Free the table. Every connection must already be gone. */
void aegis__conn_pool_close(struct aegis_conn_pool *pool);

/* Add peer @id at @host:@port. @host is copied. The address is resolved now with
 * getaddrinfo (numeric addresses do not block; names may). The new peer starts IDLE.
 * Returns 0 and the slot in @peer_out (may be NULL); AEGIS_EINVAL for id 0, our own id,
 * port 0 or an overlong host; AEGIS_EEXIST when @id is present; AEGIS_EFULL when the
 * table is full; AEGIS_ENOENT when @host does not resolve. */
int aegis__conn_pool_add(struct aegis_conn_pool *pool, aegis_node_id id, const char *host,
                         uint16_t port, struct aegis_peer **peer_out);

/* Remove peer @id. The caller has closed its connection (peer->conn == NULL). Returns 0
 * or AEGIS_EUNKNOWNNODE. */
int aegis__conn_pool_remove(struct aegis_conn_pool *pool, aegis_node_id id);

/* The slot of peer @id, or NULL. */
struct aegis_peer *aegis__conn_pool_get(struct aegis_conn_pool *pool, aegis_node_id id);

/* The @i-th slot (0 <= i < peers_max), used or not: for iteration. */
struct aegis_peer *aegis__conn_pool_slot(struct aegis_conn_pool *pool, uint32_t i);

/* True when this node dials @id (our id is the lower one). */
bool aegis__conn_pool_dials(const struct aegis_conn_pool *pool, aegis_node_id id);

/* True when @peer is a dialed peer whose next attempt is due at @now_ms. */
bool aegis__conn_pool_dial_due(const struct aegis_peer *peer, uint64_t now_ms);

/* Record a failed attempt or a lost link at @now_ms: attempts++, and for a dialed peer
 * state BACKOFF until a jittered deadline drawn from @rng (state IDLE for the acceptor).
 * Returns the delay chosen in milliseconds (0 for the acceptor). */
uint64_t aegis__conn_pool_on_failure(struct aegis_conn_pool *pool, struct aegis_peer *peer,
                                     uint64_t now_ms, struct aegis_rng *rng);

/* Record a completed handshake: state CONNECTED, attempts 0, connects (and reconnects)
 * counted. */
void aegis__conn_pool_on_connected(struct aegis_conn_pool *pool, struct aegis_peer *peer);

/* The backoff ceiling before jitter for @attempts consecutive failures (>= 1). Pure. */
uint64_t aegis__conn_pool_backoff_cap_ms(const struct aegis_conn_pool *pool,
                                         uint32_t attempts);

/* The deadline, in ms after the dial, of the TCP connect stage for a loop whose whole
 * connect-plus-hello budget is @connect_timeout_ms (> 0). Pure. */
uint64_t aegis__conn_pool_connect_stage_ms(uint32_t connect_timeout_ms);

/* The TCP_USER_TIMEOUT of a peer link for a loop whose connect_timeout_ms is
 * @connect_timeout_ms (> 0). Pure. */
uint64_t aegis__conn_pool_unacked_ms(uint32_t connect_timeout_ms);

/* The longest a dialed peer that failed before can wait, once it is reachable again, for
 * the next dial to start (the worst jittered backoff plus an attempt already in flight into
 * the silence), given @connect_timeout_ms. Pure. */
uint64_t aegis__conn_pool_redial_gap_max_ms(const struct aegis_conn_pool *pool,
                                            uint32_t connect_timeout_ms);

/* Split "host:port" or "[v6addr]:port" at @text into @host_out (@host_bytes long, NUL
 * terminated) and @port_out. Returns 0, or AEGIS_EINVAL when malformed, the port is not in
 * 1..65535 or the host does not fit. */
int aegis__conn_pool_parse_hostport(const char *text, char *host_out, size_t host_bytes,
                                    uint16_t *port_out);

/* The name of @state ("connected"). */
const char *aegis__peer_state_name(enum aegis_peer_state state);

#endif /* AEGIS_CONN_POOL_H */
