/* SPDX-License-Identifier: MIT */
/* InstallSnapshot streamed through the core's snapshot_io (engine/raft_snapshot.c): the
 * leader's window of chunks, a source that is not ready, a sink that verifies later (and
 * refuses), the follower's answers to out-of-order, duplicate and stale chunks, and a
 * follower restarted in the middle of a transfer resuming where its sink stood. */
#include "raft_cluster.h"

#define SNAP_BYTES 1050u
#define CHUNK 100u

static uint8_t snap_byte(size_t i)
{
    return (uint8_t)(i * 7 + 3);
}

/* Node @id snapshots at its applied index: @len bytes, served by its mem source. */
static int take_snapshot(struct cluster *c, aegis_node_id id, size_t len)
{
    struct cl_node *nd = &c->nodes[id];
    struct aegis_snapshot_meta meta = {.index = nd->applied_index};
    struct aegis_buf *data = aegis__buf_create(NULL, len);
    int rv;

    for (size_t i = 0; i < len; i++) {
        data->data[i] = snap_byte(i);
    }
    meta.term = nd->applied[nd->applied_count - 1].term;
    if (aegis__raft_conf_at(nd->r, meta.index, &meta.conf) != 0) {
        cl_die("conf_at");
    }
    rv = aegis__raft_snapshot_taken(nd->r, &meta, len);
    if (rv == 0) {
        aegis__snapshot_mem_set(&nd->mem, &meta, data);
    }
    aegis__buf_unref(data);
    return rv;
}

/* Three nodes; node 3 is cut off while the leader (1) commits 30 entries and snapshots
 * at 31 with SNAP_BYTES bytes, compacting past node 3's log. The network stays cut. */
static struct cluster *lagging(uint32_t window)
{
    struct aegis_raft_config cfg;

    cl_default_config(&cfg);
    cfg.snapshot_threshold = 20;
    cfg.snapshot_trailing = 2;
    cfg.snapshot_chunk_bytes = CHUNK;
    cfg.snapshot_chunks_inflight_max = window;
    return cl_new(3, &cfg);
}

static bool lag_behind(struct cluster *c)
{
    char text[16];

    if (!cl_elect(c, 1)) {
        return false;
    }
    cl_isolate(c, 3);
    for (int i = 0; i < 30; i++) {
        snprintf(text, sizeof(text), "v%d", i);
        if (cl_propose(c, 1, text, NULL) != 0) {
            return false;
        }
        cl_settle(c);
    }
    return c->nodes[1].applied_index == 31 && take_snapshot(c, 1, SNAP_BYTES) == 0;
}

static bool installed_right(const struct cluster *c, aegis_node_id id)
{
    const struct cl_node *nd = &c->nodes[id];

    if (nd->snapshot_restored != 31 || nd->snap_data == NULL ||
        nd->snap_data->len != SNAP_BYTES) {
        return false;
    }
    for (size_t i = 0; i < SNAP_BYTES; i++) {
        if (nd->snap_data->data[i] != snap_byte(i)) {
            return false;
        }
    }
    return true;
}

static void tick_until_installed(struct cluster *c, aegis_node_id id, uint32_t max)
{
    for (uint32_t t = 0; t < max && c->nodes[id].snapshot_restored == 0; t++) {
        cl_tick_all(c, 1);
    }
}

/* Chunks sent to node 3 and their bytes, node 3's answers, and the most chunks out
 * unanswered at any time (counted as they are queued). */
static uint32_t chunks_to_3;
static uint64_t bytes_to_3;
static uint32_t answers_from_3;
static uint32_t out_max;

static bool hold_on_first_chunk; /* Node 3 then answers nothing until released. */

static bool count_chunks(struct cluster *c, const struct aegis_msg *m)
{
    if (m->type == AEGIS_MSG_SNAPSHOT_REQ && m->to == 3) {
        c->nodes[3].hold |= hold_on_first_chunk && chunks_to_3 == 0;
        chunks_to_3++;
        bytes_to_3 += m->snapshot_req.chunk != NULL ? m->snapshot_req.chunk->len : 0;
        if (chunks_to_3 - answers_from_3 > out_max) {
            out_max = chunks_to_3 - answers_from_3;
        }
    }
    if (m->type == AEGIS_MSG_SNAPSHOT_RESP && m->from == 3) {
        answers_from_3++;
    }
    return false;
}

TEST(snapshot_stream, window_bounds_the_chunks_in_flight)
{
    struct cluster *c = lagging(3);

    ASSERT_TRUE(lag_behind(c));
    c->filter = count_chunks;
    chunks_to_3 = 0;
    bytes_to_3 = 0;
    answers_from_3 = 0;
    out_max = 0;
    hold_on_first_chunk = true; /* Node 3 takes chunks in and answers none. */
    cl_heal(c);
    cl_tick_all(c, 4);
    ASSERT_EQ_U64(chunks_to_3, 3); /* The window, not the whole snapshot. */
    hold_on_first_chunk = false;
    c->nodes[3].hold = false;
    tick_until_installed(c, 3, 40);
    ASSERT_TRUE(installed_right(c, 3));
    ASSERT_EQ_U64(bytes_to_3, SNAP_BYTES); /* Nothing sent twice. */
    ASSERT_EQ_U64(out_max, 3);              /* Never more than the window out. */
    ASSERT_OK(cl_propose(c, 1, "after", NULL));
    cl_tick_all(c, 3);
    ASSERT_TRUE(cl_applied_has(c, 3, "after"));
    cl_free(c);
    return TEST_PASS;
}

/* A source that is not ready until told (the runtime reading off its thread). */
struct slow_source {
    struct aegis_snapshot_io mem;
    bool block;
    uint32_t eagain;
};

static int slow_read(void *data, const struct aegis_snapshot_meta *meta, uint64_t offset,
                     uint32_t len, struct aegis_buf **chunk_out)
{
    struct slow_source *s = data;

    if (s->block) {
        s->eagain++;
        return AEGIS_EAGAIN;
    }
    return s->mem.read(s->mem.data, meta, offset, len, chunk_out);
}

TEST(snapshot_stream, source_not_ready_then_readable)
{
    struct cluster *c = lagging(4);
    struct slow_source src = {.block = true};

    aegis__snapshot_mem_io(&c->nodes[1].mem, &src.mem);
    c->nodes[1].io_override = src.mem;
    c->nodes[1].io_override.read = slow_read;
    c->nodes[1].io_override.data = &src;
    cl_restart(c, 1);
    ASSERT_TRUE(lag_behind(c));
    c->filter = count_chunks;
    chunks_to_3 = 0;
    bytes_to_3 = 0;
    cl_heal(c);
    cl_tick_all(c, 5);
    ASSERT_EQ_U64(chunks_to_3, 0);
    ASSERT_TRUE(src.eagain >= 2); /* Asked again on the tick. */
    src.block = false;
    aegis__raft_snapshot_readable(cl_r(c, 1));
    cl_settle(c); /* No tick needed: each answer pulls the next chunks. */
    ASSERT_TRUE(installed_right(c, 3));
    ASSERT_EQ_U64(bytes_to_3, SNAP_BYTES);
    cl_free(c);
    return TEST_PASS;
}

/* A sink whose verdict comes later (the runtime verifying the file off its thread). */
struct slow_sink {
    struct aegis_snapshot_io mem;
    uint32_t finishes;
};

static int slow_finish(void *data, const struct aegis_snapshot_meta *meta, uint64_t total)
{
    struct slow_sink *s = data;
    int rv = s->mem.recv_finish(s->mem.data, meta, total);

    s->finishes++;
    return rv != 0 ? rv : AEGIS_EAGAIN;
}

static uint32_t installed_answers;

static bool count_installed(struct cluster *c, const struct aegis_msg *m)
{
    if (m->type == AEGIS_MSG_SNAPSHOT_RESP && m->snapshot_resp.success &&
        m->snapshot_resp.next_offset == SNAP_BYTES) {
        installed_answers++;
    }
    return count_chunks(c, m);
}

TEST(snapshot_stream, follower_without_a_sink_is_told_no_and_stays_healthy)
{
    struct cluster *c = lagging(4);
    struct slow_sink sink = {0};

    aegis__snapshot_mem_io(&c->nodes[3].mem, &sink.mem);
    c->nodes[3].io_override = sink.mem;
    c->nodes[3].io_override.recv_open = NULL; /* Takes in no snapshot. */
    cl_restart(c, 3);
    ASSERT_TRUE(lag_behind(c));
    c->filter = count_installed;
    installed_answers = 0;
    cl_heal(c);
    cl_tick_all(c, 30);
    ASSERT_EQ_U64(c->nodes[3].snapshot_restored, 0);
    ASSERT_EQ_U64(installed_answers, 0);
    ASSERT_EQ_U64(aegis__raft_role(cl_r(c, 1)), AEGIS_ROLE_LEADER);
    ASSERT_OK(cl_propose(c, 1, "still", NULL));
    cl_tick_all(c, 3);
    ASSERT_TRUE(cl_applied_has(c, 2, "still"));
    cl_free(c);
    return TEST_PASS;
}

/* Every callback of a slow sink but finish goes to the mem sink. */
static int sink_open(void *data, const struct aegis_snapshot_meta *meta, aegis_node_id leader,
                     uint64_t total, uint64_t *have_out)
{
    struct slow_sink *s = data;

    return s->mem.recv_open(s->mem.data, meta, leader, total, have_out);
}

static int sink_write(void *data, const struct aegis_snapshot_meta *meta, uint64_t offset,
                      struct aegis_buf *chunk)
{
    struct slow_sink *s = data;

    return s->mem.recv_write(s->mem.data, meta, offset, chunk);
}

TEST(snapshot_stream, install_waits_for_the_verdict_and_a_refusal_restarts)
{
    struct cluster *c = lagging(4);
    struct slow_sink sink = {0};
    aegis_index match = 0, next = 0;

    aegis__snapshot_mem_io(&c->nodes[3].mem, &sink.mem);
    c->nodes[3].io_override = (struct aegis_snapshot_io){
        .recv_open = sink_open, .recv_write = sink_write, .recv_finish = slow_finish,
        .data = &sink};
    cl_restart(c, 3);
    ASSERT_TRUE(lag_behind(c));
    c->filter = count_installed;
    chunks_to_3 = 0;
    bytes_to_3 = 0;
    installed_answers = 0;
    cl_heal(c);
    for (int t = 0; t < 20 && sink.finishes == 0; t++) {
        cl_tick_all(c, 1);
    }
    ASSERT_EQ_U64(sink.finishes, 1);
    /* Verifying: well past a retransmission timeout, the leader resends what it has not
     * heard about, and never takes an answer for "installed". */
    cl_tick_all(c, 30);
    ASSERT_EQ_U64(installed_answers, 0);
    ASSERT_TRUE(aegis__raft_progress(cl_r(c, 1), 3, &match, &next));
    ASSERT_TRUE(match < 31);
    ASSERT_EQ_U64(c->nodes[3].snapshot_restored, 0);
    ASSERT_EQ_U64(sink.finishes, 1); /* Duplicates did not finish it again. */
    /* Refused: the sink dropped the bytes, the leader starts again from 0. */
    ASSERT_ERR(aegis__raft_snapshot_verified(cl_r(c, 3), 30, 1, 0), AEGIS_ESTALE);
    bytes_to_3 = 0;
    aegis__snapshot_mem_close(&c->nodes[3].mem); /* What a refusing sink does. */
    aegis__snapshot_mem_init(&c->nodes[3].mem, NULL);
    ASSERT_OK(aegis__raft_snapshot_verified(cl_r(c, 3), 31,
                                            aegis__raft_term_at(cl_r(c, 1), 31),
                                            AEGIS_ECORRUPT));
    cl_settle(c);
    for (int t = 0; t < 20 && sink.finishes == 1; t++) {
        cl_tick_all(c, 1);
    }
    ASSERT_EQ_U64(sink.finishes, 2);
    ASSERT_EQ_U64(bytes_to_3, SNAP_BYTES); /* All of it again, from 0. */
    ASSERT_EQ_U64(c->nodes[3].snapshot_restored, 0);
    /* Accepted: installed, and only now answered "installed". */
    ASSERT_OK(aegis__raft_snapshot_verified(cl_r(c, 3), 31,
                                            aegis__raft_term_at(cl_r(c, 1), 31), 0));
    cl_settle(c);
    ASSERT_TRUE(installed_right(c, 3));
    ASSERT_EQ_U64(installed_answers, 1);
    ASSERT_TRUE(aegis__raft_progress(cl_r(c, 1), 3, &match, &next));
    ASSERT_TRUE(match >= 31);
    /* A verdict for an offer no longer finishing changes nothing. */
    ASSERT_ERR(aegis__raft_snapshot_verified(cl_r(c, 3), 31, 1, 0), AEGIS_ESTALE);
    cl_free(c);
    return TEST_PASS;
}

/* The follower's answers, captured (and kept from the leader). */
static struct aegis_snapshot_resp last_resp;
static uint32_t resps;

static bool capture_resp(struct cluster *c, const struct aegis_msg *m)
{
    (void)c;
    if (m->type == AEGIS_MSG_SNAPSHOT_RESP && m->from == 2) {
        last_resp = m->snapshot_resp;
        resps++;
        return true;
    }
    return false;
}

static struct aegis_msg chunk_msg(aegis_term term, aegis_index index, aegis_term snap_term,
                                  uint64_t offset, uint64_t len, uint64_t total,
                                  const struct aegis_conf *conf, struct aegis_buf **buf_out)
{
    struct aegis_msg m = {.type = AEGIS_MSG_SNAPSHOT_REQ, .from = 1, .to = 2, .term = term};

    *buf_out = NULL;
    if (len > 0) {
        *buf_out = aegis__buf_create(NULL, len);
        for (uint64_t i = 0; i < len; i++) {
            (*buf_out)->data[i] = snap_byte(offset + i);
        }
    }
    m.snapshot_req.meta.index = index;
    m.snapshot_req.meta.term = snap_term;
    m.snapshot_req.meta.conf = *conf;
    m.snapshot_req.offset = offset;
    m.snapshot_req.total_bytes = total;
    m.snapshot_req.chunk = *buf_out;
    m.snapshot_req.done = offset + len == total;
    return m;
}

/* Step one chunk into node 2 and settle; returns the number of answers it gave. */
static uint32_t feed(struct cluster *c, aegis_term term, aegis_index index, uint64_t offset,
                     uint64_t len, uint64_t total)
{
    struct aegis_buf *buf;
    struct aegis_msg m = chunk_msg(term, index, term, offset, len, total, &c->conf, &buf);
    uint32_t before = resps;

    (void)aegis__raft_step(cl_r(c, 2), &m);
    aegis__buf_unref(buf);
    cl_settle(c);
    return resps - before;
}

#define EXPECT_RESP(ok, next)                                                              \
    do {                                                                                   \
        ASSERT_EQ_U64(last_resp.success, (ok));                                            \
        ASSERT_EQ_U64(last_resp.next_offset, (next));                                      \
    } while (0)

TEST(snapshot_stream, follower_answers_out_of_order_duplicate_and_stale_chunks)
{
    struct cluster *c = cl_new(3, NULL);
    aegis_term term;
    aegis_index far;

    ASSERT_TRUE(cl_elect(c, 1));
    cl_settle(c);
    c->filter = capture_resp;
    resps = 0;
    term = aegis__raft_term(cl_r(c, 2));
    far = aegis__raft_last_index(cl_r(c, 2)) + 100; /* Beyond its log: a real install. */

    ASSERT_EQ_U64(feed(c, term, far, 0, 10, 40), 1);
    EXPECT_RESP(true, 10);
    ASSERT_EQ_U64(c->nodes[2].mem.recv_len, 10);
    ASSERT_EQ_U64(feed(c, term, far, 0, 10, 40), 1); /* Duplicate: nothing written. */
    EXPECT_RESP(true, 10);
    ASSERT_EQ_U64(c->nodes[2].mem.recv_len, 10);
    ASSERT_EQ_U64(feed(c, term, far, 20, 10, 40), 1); /* Ahead: one was lost. */
    EXPECT_RESP(false, 10);
    ASSERT_EQ_U64(c->nodes[2].mem.recv_len, 10);
    ASSERT_EQ_U64(feed(c, term, far, 10, 10, 40), 1);
    EXPECT_RESP(true, 20);
    ASSERT_EQ_U64(feed(c, term, far, 15, 10, 40), 1); /* Straddles what it holds. */
    EXPECT_RESP(false, 20);
    ASSERT_EQ_U64(feed(c, term, far + 1, 10, 10, 40), 1); /* Another offer, mid-way. */
    EXPECT_RESP(false, 0);
    ASSERT_EQ_U64(last_resp.index, far + 1);
    ASSERT_EQ_U64(feed(c, term, far, 20, 10, 48), 1); /* Another size: another offer. */
    EXPECT_RESP(false, 0);
    ASSERT_EQ_U64(feed(c, term - 1, far, 20, 10, 40), 0); /* An older term: dropped. */
    ASSERT_EQ_U64(c->nodes[2].mem.recv_len, 20);
    ASSERT_EQ_U64(feed(c, term, 1, 0, 10, 40), 1); /* Covered by its commit: no bytes. */
    EXPECT_RESP(true, 40);
    /* That dropped nothing of the offer at far (a newer index): it goes on. */
    ASSERT_EQ_U64(feed(c, term, far, 20, 10, 40), 1);
    EXPECT_RESP(true, 30);
    ASSERT_EQ_U64(c->nodes[2].snapshot_restored, 0);
    ASSERT_EQ_U64(feed(c, term, far, 30, 10, 40), 1);
    EXPECT_RESP(true, 40); /* Installed (and durable: this answer waited for the ready). */
    ASSERT_EQ_U64(c->nodes[2].snapshot_restored, far);
    ASSERT_EQ_U64(aegis__raft_last_index(cl_r(c, 2)), far);
    for (size_t i = 0; i < 40; i++) {
        ASSERT_EQ_U64(c->nodes[2].snap_data->data[i], snap_byte(i));
    }
    ASSERT_EQ_U64(feed(c, term, far, 30, 10, 40), 1); /* Late duplicate: nothing to do. */
    EXPECT_RESP(true, 40);
    cl_free(c);
    return TEST_PASS;
}

TEST(snapshot_stream, follower_restarted_mid_transfer_resumes)
{
    struct cluster *c = lagging(2);
    uint64_t held;

    ASSERT_TRUE(lag_behind(c));
    c->filter = count_chunks;
    cl_heal(c);
    for (int t = 0; t < 40 && c->nodes[3].mem.recv_len < SNAP_BYTES / 2; t++) {
        aegis__raft_tick(cl_r(c, 1));
        cl_process(c, 1);
        while (c->nodes[3].mem.recv_len < SNAP_BYTES / 2 && cl_deliver_one(c)) {
            for (aegis_node_id id = 1; id <= 3; id++) {
                cl_process(c, id);
            }
        }
    }
    held = c->nodes[3].mem.recv_len;
    ASSERT_TRUE(held >= SNAP_BYTES / 2 && held < SNAP_BYTES);
    /* Node 3 crashes: its partial snapshot stays with its sink (the .recv file); what was
     * in flight is lost. */
    cl_drop_queue(c);
    cl_restart(c, 3);
    chunks_to_3 = 0;
    bytes_to_3 = 0;
    tick_until_installed(c, 3, 60);
    ASSERT_TRUE(installed_right(c, 3));
    /* Resumed: the leader sent what the sink lacked (plus at most a window it had out). */
    ASSERT_TRUE(bytes_to_3 <= SNAP_BYTES - held + 2 * CHUNK);
    ASSERT_TRUE(bytes_to_3 < SNAP_BYTES);
    cl_free(c);
    return TEST_PASS;
}
