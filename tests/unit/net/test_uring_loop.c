/* SPDX-License-Identifier: MIT */
/* The io_uring loop over real loopback TCP, several loops driven alternately from one
 * thread with run_once. Ports are chosen by the kernel (bind port 0, read it back). */
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "test_uring_util.h"

/* One queued send and what its callback saw. */
struct sent {
    uint8_t *buf;
    int calls;
    int status;
};

static void sent_cb(struct aegis_uring_loop *loop, int status, void *data)
{
    struct sent *s = data;

    (void)loop;
    s->calls++;
    s->status = status;
}

/* Queue frame @seq of @len bytes to @peer split over @parts iovecs. */
static int send_frame(struct tnode *n, aegis_node_id peer, uint32_t seq, size_t len, int parts,
                      struct sent *s)
{
    struct iovec iov[8];
    size_t off = 0;

    s->buf = frame_make(seq, len);
    s->calls = 0;
    s->status = 1;
    for (int i = 0; i < parts; i++) {
        size_t piece = i == parts - 1 ? len - off : len / (size_t)parts;
        iov[i].iov_base = s->buf + off;
        iov[i].iov_len = piece;
        off += piece;
    }
    return aegis__uring_loop_send(n->loop, peer, iov, parts, sent_cb, s);
}

static void sent_free(struct sent *s, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(s[i].buf);
        s[i].buf = NULL;
    }
}

static bool all_called(const struct sent *s, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (s[i].calls == 0) {
            return false;
        }
    }
    return true;
}

TEST(uring, handshake_two_loops)
{
    struct tnode a, b;
    struct tnode *nodes[] = {&a, &b};
    struct aegis_peer_stats st;

    SKIP_WITHOUT_URING();
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    tn_config(&a, 1, 77);
    tn_config(&b, 2, 77);
    ASSERT_OK(tn_start(&a));
    ASSERT_OK(tn_start(&b));
    ASSERT_TRUE(aegis__uring_loop_peer_port(a.loop) != 0);
    ASSERT_OK(tn_mesh(nodes, 2));
    /* The acceptor has no link until it is dialed. */
    ASSERT_EQ_I64(aegis__uring_loop_peer_state(b.loop, 1), AEGIS_PEER_IDLE);
    PUMP_UNTIL(nodes, 2, tn_connected(&a, 2) && tn_connected(&b, 1), 2000);
    ASSERT_TRUE(tn_connected(&a, 2));
    ASSERT_TRUE(tn_connected(&b, 1));
    ASSERT_EQ_I64(a.ups[2], 1);
    ASSERT_EQ_I64(b.ups[1], 1);
    ASSERT_OK(aegis__uring_loop_peer_stats(a.loop, 2, &st));
    ASSERT_EQ_U64(st.connects, 1);
    ASSERT_EQ_U64(st.reconnects, 0);
    ASSERT_ERR(aegis__uring_loop_peer_stats(a.loop, 9, &st), AEGIS_EUNKNOWNNODE);
    tn_stop(&a);
    tn_stop(&b);
    return TEST_PASS;
}

TEST(uring, frames_of_many_sizes_both_ways)
{
    static const size_t sizes[] = {0,     1,     2,     3,      4,      5,       7,
                                   8,     100,   4095,  4096,   4097,   65535,   65536,
                                   65537, 300000, 1u << 20, (2u << 20) - 1, 2u << 20};
    enum { N = sizeof(sizes) / sizeof(sizes[0]) };
    struct tnode a, b;
    struct tnode *nodes[] = {&a, &b};
    struct sent sa[N], sb[N];
    struct aegis_peer_stats st;

    SKIP_WITHOUT_URING();
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    tn_config(&a, 1, 5);
    tn_config(&b, 2, 5);
    ASSERT_OK(tn_start(&a));
    ASSERT_OK(tn_start(&b));
    ASSERT_OK(tn_mesh(nodes, 2));
    PUMP_UNTIL(nodes, 2, tn_connected(&a, 2) && tn_connected(&b, 1), 2000);
    ASSERT_TRUE(tn_connected(&b, 1));
    for (uint32_t i = 0; i < N; i++) {
        ASSERT_OK(send_frame(&a, 2, i, sizes[i], 1 + (int)(i % 3), &sa[i]));
        ASSERT_OK(send_frame(&b, 1, i, sizes[i], 1 + (int)((i + 1) % 4), &sb[i]));
    }
    /* Callbacks never run inside send. */
    ASSERT_EQ_I64(sa[0].calls, 0);
    PUMP_UNTIL(nodes, 2, b.frames[1] == N && a.frames[2] == N, 5000);
    PUMP_UNTIL(nodes, 2, all_called(sa, N) && all_called(sb, N), 2000);
    ASSERT_EQ_U64(b.frames[1], N);
    ASSERT_EQ_U64(a.frames[2], N);
    ASSERT_EQ_U64(a.bad_frames + b.bad_frames, 0);
    ASSERT_EQ_U64(b.last_len, 2u << 20);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ_I64(sa[i].calls, 1);
        ASSERT_EQ_I64(sa[i].status, 0);
        ASSERT_EQ_I64(sb[i].calls, 1);
        ASSERT_EQ_I64(sb[i].status, 0);
    }
    ASSERT_OK(aegis__uring_loop_peer_stats(a.loop, 2, &st));
    ASSERT_EQ_U64(st.frames_out, N);
    ASSERT_EQ_U64(st.frames_in, N);
    tn_stop(&a);
    tn_stop(&b);
    sent_free(sa, N);
    sent_free(sb, N);
    return TEST_PASS;
}

TEST(uring, send_argument_errors)
{
    struct tnode a, b;
    struct tnode *nodes[] = {&a, &b};
    struct sent s = {0};
    struct iovec iov[AEGIS_URING_SEND_IOV_MAX + 1];
    uint8_t byte = 0;

    SKIP_WITHOUT_URING();
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    tn_config(&a, 1, 5);
    tn_config(&b, 2, 5);
    ASSERT_OK(tn_start(&a));
    ASSERT_OK(tn_start(&b));
    ASSERT_OK(tn_mesh(nodes, 2));
    for (int i = 0; i <= AEGIS_URING_SEND_IOV_MAX; i++) {
        iov[i].iov_base = &byte;
        iov[i].iov_len = 1;
    }
    ASSERT_ERR(aegis__uring_loop_send(a.loop, 7, iov, 1, sent_cb, &s), AEGIS_EUNKNOWNNODE);
    ASSERT_ERR(aegis__uring_loop_send(a.loop, 2, iov, 0, sent_cb, &s), AEGIS_EINVAL);
    ASSERT_ERR(aegis__uring_loop_send(a.loop, 2, iov, AEGIS_URING_SEND_IOV_MAX + 1, sent_cb, &s),
               AEGIS_EINVAL);
    /* The acceptor side has no link until the dialer comes. */
    ASSERT_ERR(aegis__uring_loop_send(b.loop, 1, iov, 1, sent_cb, &s), AEGIS_ENOTCONN);
    /* max + 1 is refused at the sender. */
    ASSERT_ERR(send_frame(&a, 2, 0, (2u << 20) + 1, 2, &s), AEGIS_ETOOBIG);
    free(s.buf);
    ASSERT_EQ_I64(s.calls, 0);
    ASSERT_ERR(aegis__uring_loop_peer_add(a.loop, 2, "127.0.0.1", 1), AEGIS_EEXIST);
    ASSERT_ERR(aegis__uring_loop_peer_add(a.loop, 1, "127.0.0.1", 1), AEGIS_EINVAL);
    tn_stop(&a);
    tn_stop(&b);
    return TEST_PASS;
}

TEST(uring, frames_queued_while_connecting_go_out_after_hello)
{
    struct tnode a, b;
    struct tnode *nodes[] = {&a, &b};
    struct sent s[10];

    SKIP_WITHOUT_URING();
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    tn_config(&a, 1, 5);
    tn_config(&b, 2, 5);
    ASSERT_OK(tn_start(&a));
    ASSERT_OK(tn_start(&b));
    ASSERT_OK(tn_mesh(nodes, 2));
    /* One iteration starts the dial; the link is not up yet. */
    aegis__uring_loop_run_once(a.loop, 0);
    ASSERT_FALSE(tn_connected(&a, 2));
    for (uint32_t i = 0; i < 10; i++) {
        ASSERT_OK(send_frame(&a, 2, i, 100 + i, 2, &s[i]));
    }
    PUMP_UNTIL(nodes, 2, b.frames[1] == 10 && all_called(s, 10), 2000);
    ASSERT_EQ_U64(b.frames[1], 10);
    ASSERT_EQ_U64(b.bad_frames, 0);
    tn_stop(&a);
    tn_stop(&b);
    sent_free(s, 10);
    return TEST_PASS;
}

TEST(uring, oversize_frame_closes_link_then_redial)
{
    struct tnode a, b;
    struct tnode *nodes[] = {&a, &b};
    struct sent s[2];
    struct aegis_peer_stats st;

    SKIP_WITHOUT_URING();
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    tn_config(&a, 1, 5);
    tn_config(&b, 2, 5);
    b.cfg.frame_bytes_max = 65536;
    ASSERT_OK(tn_start(&a));
    ASSERT_OK(tn_start(&b));
    ASSERT_OK(tn_mesh(nodes, 2));
    PUMP_UNTIL(nodes, 2, tn_connected(&a, 2) && tn_connected(&b, 1), 2000);
    ASSERT_TRUE(tn_connected(&b, 1));
    /* b's limit + 1: a accepts it (its own limit is higher), b must drop the link. */
    ASSERT_OK(send_frame(&a, 2, 0, 65537, 1, &s[0]));
    PUMP_UNTIL(nodes, 2, a.downs[2] == 1 && b.downs[1] == 1, 2000);
    ASSERT_EQ_I64(b.downs[1], 1);
    ASSERT_EQ_I64(b.last_down_status[1], AEGIS_ETOOBIG);
    ASSERT_EQ_U64(b.frames[1], 0);
    ASSERT_OK(aegis__uring_loop_peer_stats(b.loop, 1, &st));
    ASSERT_EQ_U64(st.oversize_frames, 1);
    /* The dialer comes back; exactly the limit passes. */
    PUMP_UNTIL(nodes, 2, tn_connected(&a, 2) && tn_connected(&b, 1), 3000);
    ASSERT_TRUE(tn_connected(&a, 2));
    b.next_seq[1] = 1;
    ASSERT_OK(send_frame(&a, 2, 1, 65536, 3, &s[1]));
    PUMP_UNTIL(nodes, 2, b.frames[1] == 1 && s[1].calls == 1, 2000);
    ASSERT_EQ_U64(b.frames[1], 1);
    ASSERT_EQ_U64(b.bad_frames, 0);
    ASSERT_EQ_I64(s[0].calls, 1);
    ASSERT_OK(aegis__uring_loop_peer_stats(a.loop, 2, &st));
    ASSERT_EQ_U64(st.reconnects, 1);
    tn_stop(&a);
    tn_stop(&b);
    sent_free(s, 2);
    return TEST_PASS;
}

TEST(uring, wrong_cluster_is_rejected_both_ways)
{
    struct tnode a, b;
    struct tnode *nodes[] = {&a, &b};
    struct aegis_peer_stats st;
    struct aegis_uring_stats ls;

    SKIP_WITHOUT_URING();
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    tn_config(&a, 1, 100);
    tn_config(&b, 2, 200);
    ASSERT_OK(tn_start(&a));
    ASSERT_OK(tn_start(&b));
    ASSERT_OK(tn_mesh(nodes, 2));
    aegis__uring_loop_stats(b.loop, &ls);
    PUMP_UNTIL(nodes, 2, (aegis__uring_loop_stats(b.loop, &ls), ls.peer_hello_rejects >= 2), 2000);
    ASSERT_TRUE(ls.peer_hello_rejects >= 2);
    ASSERT_FALSE(tn_connected(&a, 2));
    ASSERT_FALSE(tn_connected(&b, 1));
    ASSERT_EQ_I64(a.ups[2] + b.ups[1], 0);
    /* The acceptor answered nothing (a refused hello says nothing about the cluster):
     * the dialer saw the connection closed, never a hello of another cluster. */
    ASSERT_OK(aegis__uring_loop_peer_stats(a.loop, 2, &st));
    ASSERT_EQ_U64(st.handshake_rejects, 0);
    ASSERT_TRUE(st.connect_failures >= 1);
    ASSERT_EQ_U64(st.connects, 0);
    tn_stop(&a);
    tn_stop(&b);
    return TEST_PASS;
}

TEST(uring, raw_hello_format_and_unknown_node)
{
    struct tnode b;
    struct tnode *nodes[] = {&b};
    uint8_t hello[32], reply[32];
    int fd;

    SKIP_WITHOUT_URING();
    memset(&b, 0, sizeof(b));
    tn_config(&b, 5, 0x1122334455667788ull);
    ASSERT_OK(tn_start(&b));
    /* Node 3 is unknown to node 5: it closes without an answer (nothing about the
     * cluster, not even its id, goes to a stranger). */
    fd = raw_connect(aegis__uring_loop_peer_port(b.loop));
    ASSERT_TRUE(fd >= 0);
    hello_by_hand(hello, 0x1122334455667788ull, 3, 5);
    ASSERT_TRUE(raw_write(fd, hello, sizeof(hello), nodes, 1));
    ASSERT_EQ_U64(raw_read(fd, reply, sizeof(reply), nodes, 1, 2000), 0);
    ASSERT_TRUE(raw_eof(fd, nodes, 1, 2000));
    close(fd);
    /* Node 4 is known (it dials 5), but its hello sets a reserved flag: refused too. */
    ASSERT_OK(aegis__uring_loop_peer_add(b.loop, 4, "127.0.0.1", 9));
    fd = raw_connect(aegis__uring_loop_peer_port(b.loop));
    ASSERT_TRUE(fd >= 0);
    hello_by_hand(hello, 0x1122334455667788ull, 4, 5);
    hello[6] = 1;
    ASSERT_TRUE(raw_write(fd, hello, sizeof(hello), nodes, 1));
    ASSERT_EQ_U64(raw_read(fd, reply, sizeof(reply), nodes, 1, 2000), 0);
    close(fd);
    /* The same hello with the flags clear is answered: node 5's hello. */
    fd = raw_connect(aegis__uring_loop_peer_port(b.loop));
    ASSERT_TRUE(fd >= 0);
    hello_by_hand(hello, 0x1122334455667788ull, 4, 5);
    ASSERT_TRUE(raw_write(fd, hello, sizeof(hello), nodes, 1));
    ASSERT_EQ_U64(raw_read(fd, reply, sizeof(reply), nodes, 1, 2000), 32);
    ASSERT_MEM_EQ(reply, "AEGN", 4);
    ASSERT_EQ_U64(reply[4] | reply[5] << 8, 1);
    ASSERT_EQ_U64(reply[6] | reply[7] << 8, 0);
    ASSERT_EQ_U64(get64(reply + 8), 0x1122334455667788ull);
    ASSERT_EQ_U64(get64(reply + 16), 5);
    ASSERT_EQ_U64(get64(reply + 24), 4);
    close(fd);
    /* A stranger speaking another protocol gets no answer at all. */
    fd = raw_connect(aegis__uring_loop_peer_port(b.loop));
    ASSERT_TRUE(fd >= 0);
    memset(hello, 'x', sizeof(hello));
    ASSERT_TRUE(raw_write(fd, hello, sizeof(hello), nodes, 1));
    ASSERT_EQ_U64(raw_read(fd, reply, sizeof(reply), nodes, 1, 2000), 0);
    close(fd);
    tn_stop(&b);
    return TEST_PASS;
}

/* Connect a raw socket as node @from to @n (which must know @from, @from < n->id) and
 * complete the hello. */
static int raw_peer(struct tnode *n, uint64_t from, struct tnode **nodes, int count)
{
    uint8_t hello[32], reply[32];
    int fd = raw_connect(aegis__uring_loop_peer_port(n->loop));

    if (fd < 0) {
        return -1;
    }
    hello_by_hand(hello, n->cfg.cluster_id, from, n->id);
    if (!raw_write(fd, hello, sizeof(hello), nodes, count) ||
        raw_read(fd, reply, sizeof(reply), nodes, count, 2000) != 32 ||
        get64(reply + 16) != n->id) {
        close(fd);
        return -1;
    }
    return fd;
}

TEST(uring, partial_frames_are_reassembled)
{
    struct tnode b;
    struct tnode *nodes[] = {&b};
    struct aegis_rng rng;
    uint8_t *stream;
    size_t stream_len = 0, off = 0;
    enum { FRAMES = 60 };
    int fd;

    SKIP_WITHOUT_URING();
    memset(&b, 0, sizeof(b));
    tn_config(&b, 2, 9);
    b.cfg.peer_read_bytes = 64; /* Small: frames straddle reads and force growth. */
    ASSERT_OK(tn_start(&b));
    ASSERT_OK(aegis__uring_loop_peer_add(b.loop, 1, "127.0.0.1", 1));
    fd = raw_peer(&b, 1, nodes, 1);
    ASSERT_TRUE(fd >= 0);
    ASSERT_TRUE(tn_connected(&b, 1));
    /* Build the frames by hand: 4-byte little-endian length, then the body. */
    stream = malloc(FRAMES * (4 + 5000));
    for (uint32_t i = 0; i < FRAMES; i++) {
        size_t len = (i * 733u) % 5000u;
        uint8_t *body = frame_make(i, len);
        stream[stream_len++] = (uint8_t)len;
        stream[stream_len++] = (uint8_t)(len >> 8);
        stream[stream_len++] = (uint8_t)(len >> 16);
        stream[stream_len++] = (uint8_t)(len >> 24);
        memcpy(stream + stream_len, body, len);
        stream_len += len;
        free(body);
    }
    /* Dribble it in pieces of 1 to 300 bytes, letting the loop read between pieces. */
    aegis__rng_seed(&rng, test_seed());
    while (off < stream_len) {
        size_t piece = (size_t)aegis__rng_range(&rng, 1, 300);
        if (piece > stream_len - off) {
            piece = stream_len - off;
        }
        ASSERT_TRUE(raw_write(fd, stream + off, piece, nodes, 1));
        off += piece;
        aegis__uring_loop_run_once(b.loop, 0);
    }
    PUMP_UNTIL(nodes, 1, b.frames[1] == FRAMES, 3000);
    ASSERT_EQ_U64(b.frames[1], FRAMES);
    ASSERT_EQ_U64(b.bad_frames, 0);
    close(fd);
    free(stream);
    tn_stop(&b);
    return TEST_PASS;
}

TEST(uring, loop_writes_the_documented_frame_format)
{
    struct tnode b;
    struct tnode *nodes[] = {&b};
    struct sent s[3];
    uint8_t hdr[4], body[300];
    int fd;

    SKIP_WITHOUT_URING();
    memset(&b, 0, sizeof(b));
    tn_config(&b, 2, 9);
    ASSERT_OK(tn_start(&b));
    ASSERT_OK(aegis__uring_loop_peer_add(b.loop, 1, "127.0.0.1", 1));
    fd = raw_peer(&b, 1, nodes, 1);
    ASSERT_TRUE(fd >= 0);
    for (uint32_t i = 0; i < 3; i++) {
        ASSERT_OK(send_frame(&b, 1, i, 100 * i, 3, &s[i]));
    }
    for (uint32_t i = 0; i < 3; i++) {
        ASSERT_EQ_U64(raw_read(fd, hdr, 4, nodes, 1, 2000), 4);
        ASSERT_EQ_U64((uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 |
                          (uint32_t)hdr[3] << 24,
                      100 * i);
        ASSERT_EQ_U64(raw_read(fd, body, 100 * i, nodes, 1, 2000), 100 * i);
        ASSERT_TRUE(frame_check(body, 100 * i, i));
    }
    PUMP_UNTIL(nodes, 1, all_called(s, 3), 1000);
    ASSERT_EQ_I64(s[2].calls, 1);
    close(fd);
    tn_stop(&b);
    sent_free(s, 3);
    return TEST_PASS;
}

TEST(uring, vectored_sends_complete_exactly_once)
{
    enum { N = 600 };
    struct tnode a, b;
    struct tnode *nodes[] = {&a, &b};
    struct sent *s = calloc(N, sizeof(*s));
    struct aegis_peer_stats st;
    uint32_t queued = 0;

    SKIP_WITHOUT_URING();
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    tn_config(&a, 1, 5);
    tn_config(&b, 2, 5);
    a.cfg.peer_queue_max = 64; /* Small, so the iovec ring wraps many times. */
    ASSERT_OK(tn_start(&a));
    ASSERT_OK(tn_start(&b));
    ASSERT_OK(tn_mesh(nodes, 2));
    PUMP_UNTIL(nodes, 2, tn_connected(&a, 2) && tn_connected(&b, 1), 2000);
    while (queued < N) {
        int rv = send_frame(&a, 2, queued, 10 + (queued * 37u) % 3000u, 1 + (int)(queued % 7),
                            &s[queued]);
        if (rv == AEGIS_EFULL) {
            free(s[queued].buf);
            s[queued].buf = NULL;
            tn_pump_once(nodes, 2);
            continue;
        }
        ASSERT_OK(rv);
        queued++;
    }
    PUMP_UNTIL(nodes, 2, b.frames[1] == N && all_called(s, N), 5000);
    ASSERT_EQ_U64(b.frames[1], N);
    ASSERT_EQ_U64(b.bad_frames, 0);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ_I64(s[i].calls, 1);
        ASSERT_EQ_I64(s[i].status, 0);
    }
    /* A few more rounds: no callback runs twice. */
    for (int r = 0; r < 10; r++) {
        tn_pump_once(nodes, 2);
    }
    for (int i = 0; i < N; i++) {
        ASSERT_EQ_I64(s[i].calls, 1);
    }
    ASSERT_OK(aegis__uring_loop_peer_stats(a.loop, 2, &st));
    ASSERT_EQ_U64(st.frames_out, N);
    tn_stop(&a);
    tn_stop(&b);
    sent_free(s, N);
    free(s);
    return TEST_PASS;
}

TEST(uring, backpressure_when_peer_stops_reading)
{
    enum { MAXQ = 4096, LEN = 65536 };
    struct tnode b;
    struct tnode *nodes[] = {&b};
    struct sent *s = calloc(MAXQ, sizeof(*s));
    struct aegis_peer_stats st;
    uint8_t *sink = malloc(LEN + 4);
    uint32_t queued = 0, read_frames = 0;
    int fd, rv = 0;

    SKIP_WITHOUT_URING();
    memset(&b, 0, sizeof(b));
    tn_config(&b, 2, 9);
    b.cfg.peer_queue_max = 16;
    ASSERT_OK(tn_start(&b));
    ASSERT_OK(aegis__uring_loop_peer_add(b.loop, 1, "127.0.0.1", 1));
    fd = raw_peer(&b, 1, nodes, 1);
    ASSERT_TRUE(fd >= 0);
    /* The raw peer reads nothing: socket buffers fill, then the queue, then EFULL. */
    while (queued < MAXQ) {
        rv = send_frame(&b, 1, queued, LEN, 2, &s[queued]);
        if (rv != 0) {
            free(s[queued].buf);
            s[queued].buf = NULL;
            break;
        }
        queued++;
        tn_pump_once(nodes, 1);
    }
    ASSERT_ERR(rv, AEGIS_EFULL);
    ASSERT_TRUE(queued >= 16);
    ASSERT_EQ_I64(aegis__uring_loop_peer_queued(b.loop, 1), 16);
    ASSERT_ERR(aegis__uring_loop_peer_queued(b.loop, 9), AEGIS_EUNKNOWNNODE);
    ASSERT_FALSE(all_called(s, queued));
    ASSERT_OK(aegis__uring_loop_peer_stats(b.loop, 1, &st));
    ASSERT_EQ_U64(st.sends_full, 1);
    /* The peer reads again: everything queued drains, each callback once, in order. */
    for (uint32_t i = 0; i < queued; i++) {
        ASSERT_EQ_U64(raw_read(fd, sink, LEN + 4, nodes, 1, 3000), LEN + 4);
        ASSERT_TRUE(frame_check(sink + 4, LEN, i));
        read_frames++;
    }
    PUMP_UNTIL(nodes, 1, all_called(s, queued), 2000);
    ASSERT_EQ_I64(aegis__uring_loop_peer_queued(b.loop, 1), 0);
    for (uint32_t i = 0; i < queued; i++) {
        ASSERT_EQ_I64(s[i].calls, 1);
        ASSERT_EQ_I64(s[i].status, 0);
    }
    ASSERT_EQ_U64(read_frames, queued);
    close(fd);
    tn_stop(&b);
    sent_free(s, queued);
    free(s);
    free(sink);
    return TEST_PASS;
}

TEST(uring, reconnect_after_peer_restarts)
{
    struct tnode a, b;
    struct tnode *nodes[] = {&a, &b};
    struct sent s[4];
    struct aegis_peer_stats st;
    uint16_t port;

    SKIP_WITHOUT_URING();
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    tn_config(&a, 1, 5);
    tn_config(&b, 2, 5);
    ASSERT_OK(tn_start(&a));
    ASSERT_OK(tn_start(&b));
    ASSERT_OK(tn_mesh(nodes, 2));
    PUMP_UNTIL(nodes, 2, tn_connected(&a, 2) && tn_connected(&b, 1), 2000);
    ASSERT_OK(send_frame(&a, 2, 0, 1000, 1, &s[0]));
    PUMP_UNTIL(nodes, 2, b.frames[1] == 1, 2000);
    ASSERT_EQ_U64(b.frames[1], 1);
    /* b goes away; a notices and backs off. */
    port = aegis__uring_loop_peer_port(b.loop);
    tn_stop(&b);
    PUMP_UNTIL(nodes, 2, a.downs[2] == 1, 2000);
    ASSERT_EQ_I64(a.downs[2], 1);
    ASSERT_FALSE(tn_connected(&a, 2));
    /* Frames sent while b is down are dropped with an error or refused. */
    {
        int rv = send_frame(&a, 2, 1, 10, 1, &s[1]);
        if (rv == 0) {
            PUMP_UNTIL(nodes, 2, s[1].calls == 1, 3000);
            ASSERT_EQ_I64(s[1].calls, 1);
            ASSERT_TRUE(s[1].status < 0);
        } else {
            ASSERT_ERR(rv, AEGIS_ENOTCONN);
        }
    }
    /* b restarts on the same port; a redials. */
    PUMP_UNTIL(nodes, 2, 0, 100);
    memset(&b, 0, sizeof(b));
    tn_config(&b, 2, 5);
    b.cfg.peer_port = port;
    ASSERT_OK(tn_start(&b));
    ASSERT_OK(aegis__uring_loop_peer_add(b.loop, 1, "127.0.0.1",
                                         aegis__uring_loop_peer_port(a.loop)));
    PUMP_UNTIL(nodes, 2, tn_connected(&a, 2) && tn_connected(&b, 1), 3000);
    ASSERT_TRUE(tn_connected(&a, 2));
    ASSERT_EQ_I64(a.ups[2], 2);
    ASSERT_OK(send_frame(&a, 2, 0, 2000, 2, &s[2]));
    PUMP_UNTIL(nodes, 2, b.frames[1] == 1, 2000);
    ASSERT_EQ_U64(b.frames[1], 1);
    ASSERT_EQ_U64(b.bad_frames, 0);
    ASSERT_OK(aegis__uring_loop_peer_stats(a.loop, 2, &st));
    ASSERT_EQ_U64(st.connects, 2);
    ASSERT_EQ_U64(st.reconnects, 1);
    ASSERT_EQ_U64(st.disconnects, 1);
    tn_stop(&a);
    tn_stop(&b);
    free(s[0].buf);
    free(s[1].buf);
    free(s[2].buf);
    return TEST_PASS;
}

TEST(uring, three_loops_full_mesh)
{
    enum { N = 50 };
    struct tnode n1, n2, n3;
    struct tnode *nodes[] = {&n1, &n2, &n3};
    static struct sent s[3][3][N];

    SKIP_WITHOUT_URING();
    memset(&n1, 0, sizeof(n1));
    memset(&n2, 0, sizeof(n2));
    memset(&n3, 0, sizeof(n3));
    tn_config(&n1, 1, 3);
    tn_config(&n2, 2, 3);
    tn_config(&n3, 3, 3);
    for (int i = 0; i < 3; i++) {
        ASSERT_OK(tn_start(nodes[i]));
    }
    ASSERT_OK(tn_mesh(nodes, 3));
    PUMP_UNTIL(nodes, 3,
               tn_connected(&n1, 2) && tn_connected(&n1, 3) && tn_connected(&n2, 3) &&
                   tn_connected(&n2, 1) && tn_connected(&n3, 1) && tn_connected(&n3, 2),
               3000);
    for (uint32_t k = 0; k < N; k++) {
        for (int i = 0; i < 3; i++) {
            for (int j = 0; j < 3; j++) {
                if (i != j) {
                    ASSERT_OK(send_frame(nodes[i], (aegis_node_id)(j + 1), k, 50 + k * 13, 2,
                                         &s[i][j][k]));
                }
            }
        }
    }
    PUMP_UNTIL(nodes, 3,
               n1.frames[2] == N && n1.frames[3] == N && n2.frames[1] == N &&
                   n2.frames[3] == N && n3.frames[1] == N && n3.frames[2] == N,
               3000);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ_U64(nodes[i]->bad_frames, 0);
        for (int j = 0; j < 3; j++) {
            if (i != j) {
                ASSERT_EQ_U64(nodes[j]->frames[i + 1], N);
            }
        }
    }
    for (int i = 0; i < 3; i++) {
        tn_stop(nodes[i]);
    }
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++) {
            for (int k = 0; k < N; k++) {
                if (i != j) {
                    ASSERT_EQ_I64(s[i][j][k].calls, 1);
                }
            }
            sent_free(s[i][j], N);
        }
    }
    return TEST_PASS;
}

TEST(uring, peer_remove_fails_queued_sends_and_drops_link)
{
    struct tnode a, b;
    struct tnode *nodes[] = {&a, &b};
    struct sent s;

    SKIP_WITHOUT_URING();
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    tn_config(&a, 1, 5);
    tn_config(&b, 2, 5);
    ASSERT_OK(tn_start(&a));
    ASSERT_OK(tn_start(&b));
    ASSERT_OK(tn_mesh(nodes, 2));
    PUMP_UNTIL(nodes, 2, tn_connected(&a, 2) && tn_connected(&b, 1), 2000);
    ASSERT_OK(send_frame(&a, 2, 0, 100, 1, &s));
    ASSERT_OK(aegis__uring_loop_peer_remove(a.loop, 2));
    ASSERT_EQ_I64(aegis__uring_loop_peer_state(a.loop, 2), -1);
    PUMP_UNTIL(nodes, 2, s.calls == 1 && b.downs[1] == 1, 2000);
    ASSERT_EQ_I64(s.calls, 1);
    ASSERT_ERR(s.status, AEGIS_ESHUTDOWN);
    ASSERT_EQ_I64(b.downs[1], 1);
    ASSERT_ERR(aegis__uring_loop_peer_remove(a.loop, 2), AEGIS_EUNKNOWNNODE);
    tn_stop(&a);
    tn_stop(&b);
    free(s.buf);
    return TEST_PASS;
}

TEST(uring, destroy_fails_pending_sends_with_eshutdown)
{
    struct tnode b;
    struct tnode *nodes[] = {&b};
    struct sent s[64];
    uint32_t queued = 0;
    int fd;

    SKIP_WITHOUT_URING();
    memset(&b, 0, sizeof(b));
    tn_config(&b, 2, 9);
    b.cfg.peer_queue_max = 64;
    ASSERT_OK(tn_start(&b));
    ASSERT_OK(aegis__uring_loop_peer_add(b.loop, 1, "127.0.0.1", 1));
    fd = raw_peer(&b, 1, nodes, 1);
    ASSERT_TRUE(fd >= 0);
    while (queued < 64 && send_frame(&b, 1, queued, 65536, 1, &s[queued]) == 0) {
        queued++;
        tn_pump_once(nodes, 1);
    }
    tn_stop(&b);
    for (uint32_t i = 0; i < queued; i++) {
        ASSERT_EQ_I64(s[i].calls, 1);
    }
    ASSERT_ERR(s[queued - 1].status, AEGIS_ESHUTDOWN);
    sent_free(s, queued);
    if (queued < 64) {
        free(s[queued].buf);
    }
    close(fd);
    return TEST_PASS;
}

TEST(uring, ticks_and_create_errors)
{
    struct tnode a, b;
    struct tnode *nodes[] = {&a};
    char err[AEGIS_URING_ERRMSG_BYTES];
    struct aegis_uring_loop *loop = NULL;
    struct aegis_uring_config cfg;

    SKIP_WITHOUT_URING();
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    tn_config(&a, 1, 5);
    ASSERT_OK(tn_start(&a));
    PUMP_UNTIL(nodes, 1, a.ticks >= 5, 1000);
    ASSERT_TRUE(a.ticks >= 5);
    /* The same port twice: the second loop cannot listen and says why. */
    tn_config(&b, 2, 5);
    b.cfg.peer_port = aegis__uring_loop_peer_port(a.loop);
    ASSERT_ERR(tn_start(&b), AEGIS_EADDRINUSE);
    memset(&cfg, 0, sizeof(cfg));
    cfg.self_id = 0;
    cfg.cluster_id = 1;
    ASSERT_ERR(aegis__uring_loop_create(&cfg, NULL, &loop, err, sizeof(err)), AEGIS_EINVAL);
    ASSERT_TRUE(loop == NULL);
    ASSERT_TRUE(strstr(err, "self_id") != NULL);
    cfg.self_id = 1;
    cfg.peer_port = aegis__uring_loop_peer_port(a.loop);
    ASSERT_ERR(aegis__uring_loop_create(&cfg, NULL, &loop, err, sizeof(err)), AEGIS_EADDRINUSE);
    ASSERT_TRUE(strstr(err, "listen 127.0.0.1:") != NULL);
    tn_stop(&a);
    return TEST_PASS;
}

/* In a child process, make io_uring_setup fail with @err through a seccomp filter, as a
 * sandbox would, and check what create reports. Returns the child's verdict. */
static bool create_reports_unavailable(int err, int want_rv)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((uint32_t)err & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof(filter) / sizeof(filter[0]), .filter = filter};
    int status = 0;
    pid_t pid = fork();

    if (pid == 0) {
        struct aegis_uring_config cfg;
        struct aegis_uring_loop *loop = NULL;
        char msg[AEGIS_URING_ERRMSG_BYTES] = "";
        int rv;

        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
            prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
            _exit(3);
        }
        memset(&cfg, 0, sizeof(cfg));
        cfg.self_id = 1;
        cfg.cluster_id = 1;
        rv = aegis__uring_loop_create(&cfg, NULL, &loop, msg, sizeof(msg));
        _exit(rv == want_rv && loop == NULL &&
                      strncmp(msg, "io_uring unavailable: ", 22) == 0 && uring_missing()
                  ? 0
                  : 1);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid) {
        return false;
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

TEST(uring, unavailable_io_uring_is_reported_plainly)
{
    SKIP_WITHOUT_URING();
    ASSERT_TRUE(create_reports_unavailable(EPERM, AEGIS_EPERM));
    ASSERT_TRUE(create_reports_unavailable(ENOSYS, AEGIS_ENOSYS));
    return TEST_PASS;
}

/* Random sends between three loops while nodes restart at random: every accepted send
 * gets exactly one callback, frames that arrive are intact and in order per link
 * incarnation, and nothing leaks (asan). Seeded: AEGIS_SEED=<n> replays a run. */
TEST(uring, churn_with_restarts)
{
    enum { ROUNDS = 400, SENDS_MAX = 4000 };
    struct tnode n[3];
    struct tnode *nodes[] = {&n[0], &n[1], &n[2]};
    struct sent *s = calloc(SENDS_MAX, sizeof(*s));
    uint32_t seq[3][3] = {{0}};
    uint16_t ports[3];
    struct aegis_rng rng;
    uint32_t count = 0;

    SKIP_WITHOUT_URING();
    aegis__rng_seed(&rng, test_seed());
    for (int i = 0; i < 3; i++) {
        memset(&n[i], 0, sizeof(n[i]));
        tn_config(&n[i], (aegis_node_id)(i + 1), 11);
        n[i].cfg.peer_queue_max = 8;
        ASSERT_OK(tn_start(&n[i]));
        ports[i] = aegis__uring_loop_peer_port(n[i].loop);
    }
    ASSERT_OK(tn_mesh(nodes, 3));
    for (int round = 0; round < ROUNDS && count < SENDS_MAX; round++) {
        int from = (int)aegis__rng_range(&rng, 0, 2);
        int to = (from + (int)aegis__rng_range(&rng, 1, 2)) % 3;
        size_t len = (size_t)aegis__rng_range(&rng, 0, 70000);

        if (aegis__rng_chance(&rng, 20000)) {
            /* Restart node `to` on its port: it forgets its sequence numbers. */
            tn_stop(&n[to]);
            memset(&n[to], 0, sizeof(n[to]));
            tn_config(&n[to], (aegis_node_id)(to + 1), 11);
            n[to].cfg.peer_queue_max = 8;
            n[to].cfg.peer_port = ports[to];
            ASSERT_OK(tn_start(&n[to]));
            for (int j = 0; j < 3; j++) {
                if (j != to) {
                    ASSERT_OK(aegis__uring_loop_peer_add(n[to].loop, (aegis_node_id)(j + 1),
                                                         "127.0.0.1", ports[j]));
                }
            }
            continue;
        }
        if (send_frame(&n[from], (aegis_node_id)(to + 1), 0, len, 1 + (int)(len % 5),
                       &s[count]) == 0) {
            seq[from][to]++;
            count++;
        } else {
            free(s[count].buf);
            s[count].buf = NULL;
        }
        tn_pump_once(nodes, 3);
    }
    PUMP_UNTIL(nodes, 3, all_called(s, count), 3000);
    for (int i = 0; i < 3; i++) {
        tn_stop(&n[i]);
    }
    for (uint32_t i = 0; i < count; i++) {
        ASSERT_EQ_I64(s[i].calls, 1);
    }
    ASSERT_TRUE(count > 50);
    sent_free(s, count);
    free(s);
    return TEST_PASS;
}

/* What a flood test's on_log saw. */
struct log_count {
    int warn_lines;
    int suppressed_lines; /* Lines that report held-back ones. */
};

static void count_log(int level, const char *line, void *data)
{
    struct tnode *n = data;
    struct log_count *lc = n->user;

    if (level <= AEGIS_URING_LOG_WARN) {
        lc->warn_lines++;
        if (strstr(line, "similar suppressed") != NULL) {
            lc->suppressed_lines++;
        }
    }
}

/* One stranger connection that sends 32 bytes of another protocol; wait for the close. */
static bool stranger(struct tnode *b, struct tnode **nodes)
{
    uint8_t junk[32];
    int fd = raw_connect(aegis__uring_loop_peer_port(b->loop));
    bool ok;

    if (fd < 0) {
        return false;
    }
    memset(junk, 'x', sizeof(junk));
    ok = raw_write(fd, junk, sizeof(junk), nodes, 1) && raw_eof(fd, nodes, 1, 2000);
    close(fd);
    return ok;
}

/* A flood of peer connections that never pass the hello writes about one warning per
 * second, not one per connection; the count held back is reported with the next line. */
TEST(uring, stranger_flood_is_rate_limited_in_the_log)
{
    struct tnode b;
    struct tnode *nodes[] = {&b};
    struct aegis_uring_callbacks cb = {.on_log = count_log};
    struct aegis_uring_stats ls;
    struct log_count lc = {0, 0};
    uint64_t t0, elapsed;
    int before;

    SKIP_WITHOUT_URING();
    memset(&b, 0, sizeof(b));
    tn_config(&b, 5, 1);
    b.cfg.log_level = AEGIS_URING_LOG_WARN;
    b.user = &lc;
    ASSERT_OK(tn_start_with(&b, &cb));
    t0 = aegis__uring_loop_now_ms();
    for (int i = 0; i < 60; i++) {
        ASSERT_TRUE(stranger(&b, nodes));
    }
    elapsed = aegis__uring_loop_now_ms() - t0;
    aegis__uring_loop_stats(b.loop, &ls);
    ASSERT_EQ_U64(ls.peer_hello_rejects, 60); /* Every one counted... */
    ASSERT_TRUE(lc.warn_lines >= 1);
    /* ... but at most one line per started second. */
    ASSERT_TRUE((uint64_t)lc.warn_lines <= elapsed / 1000 + 1);
    /* A second later, the next refusal is logged with the count held back. */
    before = lc.warn_lines;
    PUMP_UNTIL(nodes, 1, aegis__uring_loop_now_ms() >= t0 + elapsed + 1100, 1500);
    ASSERT_TRUE(stranger(&b, nodes));
    ASSERT_EQ_I64(lc.warn_lines, before + 1);
    ASSERT_EQ_I64(lc.suppressed_lines, 1);
    tn_stop(&b);
    return TEST_PASS;
}
