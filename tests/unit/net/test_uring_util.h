/* SPDX-License-Identifier: MIT */
/* Helpers shared by the io_uring loop tests: a test node (a loop plus what its callbacks
 * saw), pumping several loops from one thread with run_once, frames with a checkable
 * pattern, and raw loopback sockets that speak the wire format by hand. */
#ifndef AEGIS_TEST_URING_UTIL_H
#define AEGIS_TEST_URING_UTIL_H

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <aegis/error.h>

#include "lib/test.h"
#include "net/uring_loop.h"

#define TN_PEERS 8
#define TN_FRAMES_MAX 4096

struct tnode {
    struct aegis_uring_loop *loop;
    struct aegis_uring_config cfg;
    aegis_node_id id;
    /* What on_frame saw, per sending peer id (index). */
    uint64_t frames[TN_PEERS];
    uint64_t bytes[TN_PEERS];
    uint32_t next_seq[TN_PEERS];
    uint64_t bad_frames;
    size_t last_len;
    /* on_peer_state. */
    int ups[TN_PEERS];
    int downs[TN_PEERS];
    int last_down_status[TN_PEERS];
    uint64_t ticks;
    uint64_t wakes;
    void *user;
};

/* Frame body: 4-byte little-endian sequence number, then bytes (seq * 7 + i) & 0xff.
 * Bodies shorter than 4 bytes carry only the pattern. */
static inline uint8_t frame_byte(uint32_t seq, size_t i)
{
    return (uint8_t)((seq * 7u + (uint32_t)i) & 0xffu);
}

static inline uint8_t *frame_make(uint32_t seq, size_t len)
{
    uint8_t *p = malloc(len > 0 ? len : 1);

    for (size_t i = 0; i < len; i++) {
        p[i] = frame_byte(seq, i);
    }
    if (len >= 4) {
        p[0] = (uint8_t)seq;
        p[1] = (uint8_t)(seq >> 8);
        p[2] = (uint8_t)(seq >> 16);
        p[3] = (uint8_t)(seq >> 24);
    }
    return p;
}

static inline bool frame_check(const uint8_t *p, size_t len, uint32_t expect_seq)
{
    size_t i = 0;

    if (len >= 4) {
        uint32_t seq = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                       (uint32_t)p[3] << 24;
        if (seq != expect_seq) {
            return false;
        }
        i = 4;
    }
    for (; i < len; i++) {
        if (p[i] != frame_byte(expect_seq, i)) {
            return false;
        }
    }
    return true;
}

static inline void tn_on_frame(struct aegis_uring_loop *loop, aegis_node_id peer,
                               const uint8_t *frame, size_t len, void *data)
{
    struct tnode *n = data;

    (void)loop;
    if (peer >= TN_PEERS || !frame_check(frame, len, n->next_seq[peer])) {
        n->bad_frames++;
    }
    if (peer < TN_PEERS) {
        n->next_seq[peer]++;
        n->frames[peer]++;
        n->bytes[peer] += len;
    }
    n->last_len = len;
}

static inline void tn_on_peer_state(struct aegis_uring_loop *loop, aegis_node_id peer, bool up,
                                    int status, void *data)
{
    struct tnode *n = data;

    (void)loop;
    if (peer < TN_PEERS) {
        if (up) {
            n->ups[peer]++;
        } else {
            n->downs[peer]++;
            n->last_down_status[peer] = status;
        }
    }
}

static inline void tn_on_tick(struct aegis_uring_loop *loop, uint64_t now_ms, void *data)
{
    (void)loop;
    (void)now_ms;
    ((struct tnode *)data)->ticks++;
}

static inline void tn_on_wake(struct aegis_uring_loop *loop, void *data)
{
    (void)loop;
    ((struct tnode *)data)->wakes++;
}

static inline void tn_config(struct tnode *n, aegis_node_id id, uint64_t cluster)
{
    memset(&n->cfg, 0, sizeof(n->cfg));
    n->id = id;
    n->cfg.self_id = id;
    n->cfg.cluster_id = cluster;
    n->cfg.frame_bytes_max = 2u << 20;
    n->cfg.peer_read_bytes = 4096;
    n->cfg.backoff_base_ms = 10;
    n->cfg.backoff_max_ms = 80;
    n->cfg.tick_ms = 5;
    n->cfg.log_level = getenv("AEGIS_NET_LOG") ? AEGIS_URING_LOG_DEBUG : AEGIS_URING_LOG_ERROR;
}

static inline int tn_start_with(struct tnode *n, const struct aegis_uring_callbacks *extra)
{
    struct aegis_uring_callbacks cb;
    char err[AEGIS_URING_ERRMSG_BYTES] = "";
    int rv;

    memset(&cb, 0, sizeof(cb));
    if (extra != NULL) {
        cb = *extra;
    }
    if (cb.on_frame == NULL) {
        cb.on_frame = tn_on_frame;
    }
    if (cb.on_peer_state == NULL) {
        cb.on_peer_state = tn_on_peer_state;
    }
    if (cb.on_tick == NULL) {
        cb.on_tick = tn_on_tick;
    }
    if (cb.on_wake == NULL) {
        cb.on_wake = tn_on_wake;
    }
    if (cb.data == NULL) {
        cb.data = n;
    }
    rv = aegis__uring_loop_create(&n->cfg, &cb, &n->loop, err, sizeof(err));
    if (rv != 0 && getenv("AEGIS_NET_LOG") != NULL) {
        fprintf(stderr, "  create: %s\n", err);
    }
    return rv;
}

static inline int tn_start(struct tnode *n)
{
    return tn_start_with(n, NULL);
}

static inline void tn_stop(struct tnode *n)
{
    aegis__uring_loop_destroy(n->loop);
    n->loop = NULL;
}

/* Skip when this kernel or sandbox has no io_uring. */
static inline bool uring_missing(void)
{
    struct aegis_uring_loop *loop;
    struct aegis_uring_config cfg;
    char err[AEGIS_URING_ERRMSG_BYTES];
    int rv;

    memset(&cfg, 0, sizeof(cfg));
    cfg.self_id = 1;
    cfg.cluster_id = 1;
    rv = aegis__uring_loop_create(&cfg, NULL, &loop, err, sizeof(err));
    if (rv == AEGIS_ENOSYS || rv == AEGIS_EPERM) {
        fprintf(stderr, "  %s\n", err);
        return true;
    }
    aegis__uring_loop_destroy(loop);
    return false;
}

#define SKIP_WITHOUT_URING()                                                               \
    do {                                                                                   \
        if (uring_missing()) {                                                             \
            SKIP("io_uring unavailable");                                                  \
        }                                                                                  \
    } while (0)

/* Tell each node of @nodes about every other. */
static inline int tn_mesh(struct tnode **nodes, int count)
{
    for (int i = 0; i < count; i++) {
        for (int j = 0; j < count; j++) {
            if (i == j) {
                continue;
            }
            int rv = aegis__uring_loop_peer_add(nodes[i]->loop, nodes[j]->id, "127.0.0.1",
                                                aegis__uring_loop_peer_port(nodes[j]->loop));
            if (rv != 0) {
                return rv;
            }
        }
    }
    return 0;
}

/* One run_once (waiting up to 1 ms) on each live node. */
static inline void tn_pump_once(struct tnode **nodes, int count)
{
    for (int i = 0; i < count; i++) {
        if (nodes[i] != NULL && nodes[i]->loop != NULL) {
            aegis__uring_loop_run_once(nodes[i]->loop, 1);
        }
    }
}

/* Pump until @cond holds or @timeout_ms passes; the condition is re-evaluated each round. */
#define PUMP_UNTIL(nodes, count, cond, timeout_ms)                                         \
    do {                                                                                   \
        uint64_t deadline_ = aegis__uring_loop_now_ms() + (timeout_ms);                    \
        while (!(cond) && aegis__uring_loop_now_ms() < deadline_) {                        \
            tn_pump_once((nodes), (count));                                                \
        }                                                                                  \
    } while (0)

static inline bool tn_connected(struct tnode *n, aegis_node_id peer)
{
    return aegis__uring_loop_peer_state(n->loop, peer) == AEGIS_PEER_CONNECTED;
}

/* A raw loopback socket, non-blocking, connected to @port. */
static inline int raw_connect(uint16_t port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Write all @len bytes, pumping the nodes while the socket buffer is full. */
static inline bool raw_write(int fd, const void *buf, size_t len, struct tnode **nodes,
                             int count)
{
    const uint8_t *p = buf;
    uint64_t deadline = aegis__uring_loop_now_ms() + 5000;

    while (len > 0 && aegis__uring_loop_now_ms() < deadline) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
            tn_pump_once(nodes, count);
            continue;
        }
        if (n <= 0) {
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return len == 0;
}

/* Read exactly @len bytes, pumping the nodes while waiting. Returns the bytes read (less
 * on EOF, error or timeout). */
static inline size_t raw_read(int fd, void *buf, size_t len, struct tnode **nodes, int count,
                              int timeout_ms)
{
    uint8_t *p = buf;
    size_t got = 0;
    uint64_t deadline = aegis__uring_loop_now_ms() + (uint64_t)timeout_ms;

    while (got < len && aegis__uring_loop_now_ms() < deadline) {
        ssize_t n = recv(fd, p + got, len - got, MSG_DONTWAIT);
        if (n == 0) {
            break;
        }
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (errno != EAGAIN && errno != EINTR) {
            break;
        }
        tn_pump_once(nodes, count);
    }
    return got;
}

/* True when the other side closed @fd (EOF or reset) within @timeout_ms. */
static inline bool raw_eof(int fd, struct tnode **nodes, int count, int timeout_ms)
{
    uint64_t deadline = aegis__uring_loop_now_ms() + (uint64_t)timeout_ms;
    uint8_t sink[4096];

    while (aegis__uring_loop_now_ms() < deadline) {
        ssize_t n = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            return true;
        }
        if (n < 0) {
            tn_pump_once(nodes, count);
        }
    }
    return false;
}

static inline void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static inline uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--) {
        v = v << 8 | p[i];
    }
    return v;
}

/* The 32-byte hello, built by hand from the documented layout (not with the loop's own
 * encoder, so the test checks the format). */
static inline void hello_by_hand(uint8_t *h, uint64_t cluster, uint64_t from, uint64_t to)
{
    memcpy(h, "AEGN", 4);
    h[4] = 1;
    h[5] = 0;
    h[6] = 0;
    h[7] = 0;
    put64(h + 8, cluster);
    put64(h + 16, from);
    put64(h + 24, to);
}

#endif /* AEGIS_TEST_URING_UTIL_H */
