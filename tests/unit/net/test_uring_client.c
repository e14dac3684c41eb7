/* SPDX-License-Identifier: MIT */
/* Client connections of the io_uring loop: partial consumption, ordered writes, pause and
 * resume, the connection limit, the per-connection memory bound, closing. */
#include "test_uring_util.h"

struct echo {
    aegis_uring_client_id last_open;
    int opens;
    int closes;
    int last_close_status;
    bool pause_next;      /* Pause the client and consume nothing on the next delivery. */
    bool consume_nothing;
    bool close_after_reply;
    size_t offered_max;
    int deliveries;
};

static struct echo echo_state;

static void on_open(struct aegis_uring_loop *loop, aegis_uring_client_id c, void *data)
{
    (void)loop;
    (void)data;
    echo_state.opens++;
    echo_state.last_open = c;
}

static void on_close(struct aegis_uring_loop *loop, aegis_uring_client_id c, int status,
                     void *data)
{
    (void)loop;
    (void)c;
    (void)data;
    echo_state.closes++;
    echo_state.last_close_status = status;
}

/* Echo whole lines only; a partial line stays buffered in the loop. */
static size_t on_data(struct aegis_uring_loop *loop, aegis_uring_client_id c,
                      const uint8_t *bytes, size_t len, void *data)
{
    size_t used = 0;

    (void)data;
    echo_state.deliveries++;
    if (len > echo_state.offered_max) {
        echo_state.offered_max = len;
    }
    if (echo_state.pause_next) {
        echo_state.pause_next = false;
        aegis__uring_loop_client_pause(loop, c);
        return 0;
    }
    if (echo_state.consume_nothing) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        if (bytes[i] == '\n') {
            used = i + 1;
        }
    }
    if (used > 0) {
        /* Two writes per reply: order on the connection must hold. */
        aegis__uring_loop_client_write_copy(loop, c, bytes, used / 2);
        aegis__uring_loop_client_write_copy(loop, c, bytes + used / 2, used - used / 2);
        if (echo_state.close_after_reply) {
            aegis__uring_loop_client_close(loop, c, true);
        }
    }
    return used;
}

static int start_server(struct tnode *n, uint32_t clients_max, uint32_t read_bytes,
                        uint32_t read_max)
{
    struct aegis_uring_callbacks cb;

    memset(&echo_state, 0, sizeof(echo_state));
    memset(n, 0, sizeof(*n));
    tn_config(n, 1, 1);
    n->cfg.client_host = "127.0.0.1";
    n->cfg.clients_max = clients_max;
    n->cfg.client_read_bytes = read_bytes;
    n->cfg.client_read_bytes_max = read_max;
    memset(&cb, 0, sizeof(cb));
    cb.on_client_open = on_open;
    cb.on_client_close = on_close;
    cb.on_client_data = on_data;
    return tn_start_with(n, &cb);
}

TEST(uring_client, echo_with_partial_consumption)
{
    struct tnode n;
    struct tnode *nodes[] = {&n};
    char got[64];
    int fd;

    SKIP_WITHOUT_URING();
    ASSERT_OK(start_server(&n, 8, 0, 0));
    ASSERT_TRUE(aegis__uring_loop_client_port(n.loop) != 0);
    fd = raw_connect(aegis__uring_loop_client_port(n.loop));
    ASSERT_TRUE(fd >= 0);
    PUMP_UNTIL(nodes, 1, echo_state.opens == 1, 1000);
    ASSERT_EQ_I64(echo_state.opens, 1);
    ASSERT_TRUE(raw_write(fd, "hel", 3, nodes, 1));
    PUMP_UNTIL(nodes, 1, echo_state.deliveries >= 1, 1000);
    ASSERT_TRUE(raw_write(fd, "lo\nwor", 6, nodes, 1));
    PUMP_UNTIL(nodes, 1, echo_state.deliveries >= 2, 1000);
    ASSERT_TRUE(raw_write(fd, "ld\n", 3, nodes, 1));
    ASSERT_EQ_U64(raw_read(fd, got, 12, nodes, 1, 2000), 12);
    ASSERT_MEM_EQ(got, "hello\nworld\n", 12);
    close(fd);
    PUMP_UNTIL(nodes, 1, echo_state.closes == 1, 1000);
    ASSERT_EQ_I64(echo_state.closes, 1);
    ASSERT_EQ_I64(echo_state.last_close_status, 0);
    /* The handle died with the connection. */
    ASSERT_ERR(aegis__uring_loop_client_write_copy(n.loop, echo_state.last_open, "x", 1),
               AEGIS_ENOTFOUND);
    tn_stop(&n);
    return TEST_PASS;
}

TEST(uring_client, many_pipelined_lines_keep_order)
{
    struct tnode n;
    struct tnode *nodes[] = {&n};
    char *out = malloc(200000), *in = malloc(200000);
    size_t len = 0;
    int fd;

    SKIP_WITHOUT_URING();
    ASSERT_OK(start_server(&n, 8, 512, 4096));
    for (int i = 0; len < 150000; i++) {
        len += (size_t)snprintf(out + len, 200000 - len, "line %d of the test\n", i);
    }
    fd = raw_connect(aegis__uring_loop_client_port(n.loop));
    ASSERT_TRUE(fd >= 0);
    ASSERT_TRUE(raw_write(fd, out, len, nodes, 1));
    ASSERT_EQ_U64(raw_read(fd, in, len, nodes, 1, 5000), len);
    ASSERT_MEM_EQ(in, out, len);
    close(fd);
    tn_stop(&n);
    free(out);
    free(in);
    return TEST_PASS;
}

TEST(uring_client, pause_then_resume_redelivers)
{
    struct tnode n;
    struct tnode *nodes[] = {&n};
    char got[16];
    int fd, deliveries;

    SKIP_WITHOUT_URING();
    ASSERT_OK(start_server(&n, 8, 0, 0));
    fd = raw_connect(aegis__uring_loop_client_port(n.loop));
    ASSERT_TRUE(fd >= 0);
    PUMP_UNTIL(nodes, 1, echo_state.opens == 1, 1000);
    echo_state.pause_next = true;
    ASSERT_TRUE(raw_write(fd, "ab\n", 3, nodes, 1));
    PUMP_UNTIL(nodes, 1, echo_state.deliveries == 1, 1000);
    ASSERT_EQ_I64(echo_state.deliveries, 1);
    /* Paused: more bytes arrive, nothing is offered, nothing is answered. */
    ASSERT_TRUE(raw_write(fd, "cd\n", 3, nodes, 1));
    PUMP_UNTIL(nodes, 1, 0, 50);
    ASSERT_EQ_I64(echo_state.deliveries, 1);
    ASSERT_EQ_U64(raw_read(fd, got, 1, nodes, 1, 20), 0);
    deliveries = echo_state.deliveries;
    ASSERT_OK(aegis__uring_loop_client_resume(n.loop, echo_state.last_open));
    ASSERT_EQ_U64(raw_read(fd, got, 6, nodes, 1, 2000), 6);
    ASSERT_MEM_EQ(got, "ab\ncd\n", 6);
    ASSERT_TRUE(echo_state.deliveries > deliveries);
    /* The same through the global switch. */
    aegis__uring_loop_clients_pause_all(n.loop, true);
    ASSERT_TRUE(raw_write(fd, "ef\n", 3, nodes, 1));
    ASSERT_EQ_U64(raw_read(fd, got, 1, nodes, 1, 50), 0);
    aegis__uring_loop_clients_pause_all(n.loop, false);
    ASSERT_EQ_U64(raw_read(fd, got, 3, nodes, 1, 2000), 3);
    ASSERT_MEM_EQ(got, "ef\n", 3);
    close(fd);
    tn_stop(&n);
    return TEST_PASS;
}

TEST(uring_client, connection_limit)
{
    struct tnode n;
    struct tnode *nodes[] = {&n};
    struct aegis_uring_stats st;
    int fds[3];

    SKIP_WITHOUT_URING();
    ASSERT_OK(start_server(&n, 2, 0, 0));
    for (int i = 0; i < 3; i++) {
        fds[i] = raw_connect(aegis__uring_loop_client_port(n.loop));
        ASSERT_TRUE(fds[i] >= 0);
        PUMP_UNTIL(nodes, 1, (aegis__uring_loop_stats(n.loop, &st),
                              st.client_accepts + st.client_rejects == (uint64_t)i + 1), 1000);
    }
    ASSERT_EQ_I64(echo_state.opens, 2);
    ASSERT_TRUE(raw_eof(fds[2], nodes, 1, 1000));
    ASSERT_FALSE(raw_eof(fds[0], nodes, 1, 20));
    aegis__uring_loop_stats(n.loop, &st);
    ASSERT_EQ_U64(st.client_rejects, 1);
    for (int i = 0; i < 3; i++) {
        close(fds[i]);
    }
    /* Slots come back once clients leave. */
    PUMP_UNTIL(nodes, 1, echo_state.closes == 2, 1000);
    fds[0] = raw_connect(aegis__uring_loop_client_port(n.loop));
    PUMP_UNTIL(nodes, 1, echo_state.opens == 3, 1000);
    ASSERT_EQ_I64(echo_state.opens, 3);
    close(fds[0]);
    tn_stop(&n);
    return TEST_PASS;
}

TEST(uring_client, oversized_request_closes_connection)
{
    struct tnode n;
    struct tnode *nodes[] = {&n};
    char big[5000];
    int fd;

    SKIP_WITHOUT_URING();
    ASSERT_OK(start_server(&n, 8, 1024, 4096));
    echo_state.consume_nothing = true;
    fd = raw_connect(aegis__uring_loop_client_port(n.loop));
    ASSERT_TRUE(fd >= 0);
    memset(big, 'a', sizeof(big));
    raw_write(fd, big, sizeof(big), nodes, 1);
    ASSERT_TRUE(raw_eof(fd, nodes, 1, 2000));
    PUMP_UNTIL(nodes, 1, echo_state.closes == 1, 1000);
    ASSERT_EQ_I64(echo_state.closes, 1);
    ASSERT_ERR(echo_state.last_close_status, AEGIS_ETOOBIG);
    /* The buffer grew up to the ceiling and no further. */
    ASSERT_EQ_U64(echo_state.offered_max, 4096);
    close(fd);
    tn_stop(&n);
    return TEST_PASS;
}

TEST(uring_client, close_with_flush_sends_reply_first)
{
    struct tnode n;
    struct tnode *nodes[] = {&n};
    char got[8];
    int fd;

    SKIP_WITHOUT_URING();
    ASSERT_OK(start_server(&n, 8, 0, 0));
    echo_state.close_after_reply = true;
    fd = raw_connect(aegis__uring_loop_client_port(n.loop));
    ASSERT_TRUE(fd >= 0);
    ASSERT_TRUE(raw_write(fd, "bye\n", 4, nodes, 1));
    ASSERT_EQ_U64(raw_read(fd, got, 4, nodes, 1, 2000), 4);
    ASSERT_MEM_EQ(got, "bye\n", 4);
    ASSERT_TRUE(raw_eof(fd, nodes, 1, 2000));
    PUMP_UNTIL(nodes, 1, echo_state.closes == 1, 1000);
    ASSERT_EQ_I64(echo_state.closes, 1);
    close(fd);
    tn_stop(&n);
    return TEST_PASS;
}

TEST(uring_client, destroy_closes_open_clients)
{
    struct tnode n;
    struct tnode *nodes[] = {&n};
    int fd;

    SKIP_WITHOUT_URING();
    ASSERT_OK(start_server(&n, 8, 0, 0));
    fd = raw_connect(aegis__uring_loop_client_port(n.loop));
    PUMP_UNTIL(nodes, 1, echo_state.opens == 1, 1000);
    ASSERT_EQ_I64(echo_state.opens, 1);
    tn_stop(&n);
    ASSERT_EQ_I64(echo_state.closes, 1);
    ASSERT_ERR(echo_state.last_close_status, AEGIS_ESHUTDOWN);
    close(fd);
    return TEST_PASS;
}

TEST(uring_client, resume_all_with_many_clients)
{
    enum { C = 60 };
    struct tnode n;
    struct tnode *nodes[] = {&n};
    int fds[C];
    char got[8];

    SKIP_WITHOUT_URING();
    ASSERT_OK(start_server(&n, C, 0, 0));
    for (int i = 0; i < C; i++) {
        fds[i] = raw_connect(aegis__uring_loop_client_port(n.loop));
        ASSERT_TRUE(fds[i] >= 0);
    }
    PUMP_UNTIL(nodes, 1, echo_state.opens == C, 2000);
    ASSERT_EQ_I64(echo_state.opens, C);
    /* Every client has a line buffered when reading resumes: each replies from inside the
     * same prepare pass, so the pass revisits more connections than there are slots. */
    aegis__uring_loop_clients_pause_all(n.loop, true);
    for (int i = 0; i < C; i++) {
        char line[8];
        snprintf(line, sizeof(line), "%03d\n", i);
        ASSERT_TRUE(raw_write(fds[i], line, 4, nodes, 1));
    }
    PUMP_UNTIL(nodes, 1, 0, 30);
    ASSERT_EQ_I64(echo_state.deliveries, 0);
    aegis__uring_loop_clients_pause_all(n.loop, false);
    for (int i = 0; i < C; i++) {
        char want[8];
        snprintf(want, sizeof(want), "%03d\n", i);
        ASSERT_EQ_U64(raw_read(fds[i], got, 4, nodes, 1, 2000), 4);
        ASSERT_MEM_EQ(got, want, 4);
        close(fds[i]);
    }
    tn_stop(&n);
    return TEST_PASS;
}
