/* SPDX-License-Identifier: MIT */
/* Tests of the Raft wire codec (net/codec.c): round trips of every message type, vectored
 * against flat encoding, the exact bytes of the format, truncation at every length, random
 * bit flips, size limits, field validation and allocation failure. */
#include <stdlib.h>

#include <aegis/error.h>

#include "engine/rng.h"
#include "lib/test.h"
#include "net/codec.h"

/* An allocator that counts allocations and fails every one after the first @budget. */
struct count_heap {
    int allocs;
    int budget; /* -1: never fail. */
    struct aegis_allocator a;
};

static void *count_malloc(void *data, size_t size)
{
    struct count_heap *h = data;

    if (h->budget >= 0 && h->allocs >= h->budget) {
        return NULL;
    }
    h->allocs++;
    return malloc(size);
}

static void *count_realloc(void *data, void *ptr, size_t size)
{
    (void)data;
    return realloc(ptr, size);
}

static void count_free(void *data, void *ptr)
{
    (void)data;
    free(ptr);
}

static void count_heap_init(struct count_heap *h, int budget)
{
    h->allocs = 0;
    h->budget = budget;
    h->a.malloc = count_malloc;
    h->a.realloc = count_realloc;
    h->a.free = count_free;
    h->a.data = h;
}

/* Sample messages. Variants exercise 0, 1 and many entries, empty and non-empty payloads,
 * empty and full memberships, NULL and empty client values. The test owns every buffer
 * through the pool and drops it at the end. */
#define POOL_MAX 512
static struct aegis_buf *pool[POOL_MAX];
static int pool_len;
static struct aegis_entry entries[64];

static struct aegis_buf *pool_buf(size_t len, uint8_t fill)
{
    struct aegis_buf *b = aegis__buf_create(NULL, len);

    if (b == NULL || pool_len >= POOL_MAX) {
        abort();
    }
    for (size_t i = 0; i < len; i++) {
        b->data[i] = (uint8_t)(fill + i);
    }
    pool[pool_len++] = b;
    return b;
}

static void pool_drop(void)
{
    for (int i = 0; i < pool_len; i++) {
        aegis__buf_unref(pool[i]);
    }
    pool_len = 0;
}

static void fill_append(struct aegis_msg *m, uint32_t n)
{
    m->append_req.prev_index = 1000;
    m->append_req.prev_term = 6;
    m->append_req.commit = 990;
    m->append_req.entries_count = n;
    m->append_req.entries = n > 0 ? entries : NULL;
    for (uint32_t i = 0; i < n; i++) {
        entries[i].index = 1001 + i;
        entries[i].term = 6 + i / 10;
        entries[i].type = (uint8_t)(1 + i % 3);
        entries[i].timestamp = 0x1122334455667788u + i;
        /* Every third entry is empty (NULL), one is an empty non-NULL buffer. */
        if (i % 3 == 2) {
            entries[i].buf = NULL;
        } else if (i == 4) {
            entries[i].buf = pool_buf(0, 0);
        } else {
            entries[i].buf = pool_buf(1 + i * 7, (uint8_t)i);
        }
    }
}

static void fill_conf(struct aegis_conf *c, uint32_t n)
{
    c->count = n;
    for (uint32_t i = 0; i < n; i++) {
        c->members[i].id = 100 + i;
        c->members[i].role = i % 4 == 3 ? AEGIS_MEMBER_LEARNER : AEGIS_MEMBER_VOTER;
    }
}

/* Build sample @variant (0..VARIANTS-1) into @m. Returns false past the last one. */
#define VARIANTS 24
static bool sample(int variant, struct aegis_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->from = 3;
    m->to = 0x0102030405060708u;
    m->term = 0xfedcba9876543210u;
    switch (variant) {
    case 0:
        m->type = AEGIS_MSG_VOTE_REQ;
        m->vote_req = (struct aegis_vote_req){41, 7, true, false};
        return true;
    case 1:
        m->type = AEGIS_MSG_VOTE_REQ;
        m->vote_req = (struct aegis_vote_req){UINT64_MAX, 0, false, true};
        return true;
    case 2:
        m->type = AEGIS_MSG_VOTE_RESP;
        m->vote_resp = (struct aegis_vote_resp){true, true};
        return true;
    case 3:
        m->type = AEGIS_MSG_APPEND_REQ;
        fill_append(m, 0);
        return true;
    case 4:
        m->type = AEGIS_MSG_APPEND_REQ;
        fill_append(m, 1);
        return true;
    case 5:
        m->type = AEGIS_MSG_APPEND_REQ;
        fill_append(m, 64);
        return true;
    case 6:
        m->type = AEGIS_MSG_APPEND_RESP;
        m->append_resp = (struct aegis_append_resp){false, 0, 77, 5, 99};
        return true;
    case 7:
        m->type = AEGIS_MSG_APPEND_RESP;
        m->append_resp = (struct aegis_append_resp){true, 1064, 0, 0, 1064};
        return true;
    case 8:
        m->type = AEGIS_MSG_SNAPSHOT_REQ;
        m->snapshot_req.meta.index = 500;
        m->snapshot_req.meta.term = 4;
        fill_conf(&m->snapshot_req.meta.conf, AEGIS_MEMBERS_MAX);
        m->snapshot_req.offset = 0;
        m->snapshot_req.total_bytes = 1000;
        m->snapshot_req.chunk = pool_buf(300, 9);
        return true;
    case 9:
        m->type = AEGIS_MSG_SNAPSHOT_REQ;
        m->snapshot_req.meta.index = 500;
        fill_conf(&m->snapshot_req.meta.conf, 3);
        m->snapshot_req.offset = 700;
        m->snapshot_req.total_bytes = 1000;
        m->snapshot_req.done = true;
        m->snapshot_req.chunk = pool_buf(300, 1);
        return true;
    case 10:
        m->type = AEGIS_MSG_SNAPSHOT_REQ; /* Empty snapshot, empty conf, a single done. */
        m->snapshot_req.done = true;
        return true;
    case 11:
        m->type = AEGIS_MSG_SNAPSHOT_RESP;
        m->snapshot_resp = (struct aegis_snapshot_resp){500, 300, true};
        return true;
    case 12:
        m->type = AEGIS_MSG_HEARTBEAT;
        m->heartbeat = (struct aegis_heartbeat){12345, 0};
        return true;
    case 13:
        m->type = AEGIS_MSG_HEARTBEAT;
        m->heartbeat = (struct aegis_heartbeat){12345, 42};
        return true;
    case 14:
        m->type = AEGIS_MSG_HEARTBEAT_RESP;
        m->heartbeat_resp.read_ctx = 42;
        return true;
    case 15:
        m->type = AEGIS_MSG_TIMEOUT_NOW;
        m->timeout_now.target = 3;
        return true;
    case 16:
        m->type = AEGIS_MSG_READ_INDEX_REQ;
        m->read_index_req.ctx = 9;
        return true;
    case 17:
        m->type = AEGIS_MSG_READ_INDEX_RESP;
        m->read_index_resp = (struct aegis_read_index_resp){9, 1064, true};
        return true;
    case 18:
        m->type = AEGIS_MSG_CLIENT_REQ;
        m->client_req.request_id = 77;
        m->client_req.command = pool_buf(40, 3);
        return true;
    case 19:
        m->type = AEGIS_MSG_CLIENT_REQ;
        m->client_req.request_id = 78;
        return true;
    case 20:
        m->type = AEGIS_MSG_CLIENT_RESP;
        m->client_resp = (struct aegis_client_resp){77, 0, 1, 1064, 1064, -7, NULL};
        m->client_resp.value = pool_buf(12, 5);
        return true;
    case 21:
        m->type = AEGIS_MSG_CLIENT_RESP;
        m->client_resp = (struct aegis_client_resp){78, AEGIS_ENOTLEADER, 2, 0, 0, -7, NULL};
        return true;
    case 22:
        m->type = AEGIS_MSG_CLIENT_RESP; /* An empty value, distinct from no value. */
        m->client_resp = (struct aegis_client_resp){79, 0, 1, 5, 5, -7, NULL};
        m->client_resp.value = pool_buf(0, 0);
        return true;
    case 23:
        m->type = AEGIS_MSG_CLIENT_RESP;
        m->client_resp = (struct aegis_client_resp){80, INT32_MIN, 0, 0, 0, -7, NULL};
        return true;
    default:
        return false;
    }
}

static bool buf_equal(const struct aegis_buf *a, const struct aegis_buf *b, bool null_is_empty)
{
    uint32_t la = a != NULL ? a->len : 0, lb = b != NULL ? b->len : 0;

    if (!null_is_empty && (a == NULL) != (b == NULL)) {
        return false;
    }
    return la == lb && (la == 0 || memcmp(a->data, b->data, la) == 0);
}

static bool append_equal(const struct aegis_append_req *a, const struct aegis_append_req *b)
{
    if (a->prev_index != b->prev_index || a->prev_term != b->prev_term ||
        a->commit != b->commit || a->entries_count != b->entries_count) {
        return false;
    }
    for (uint32_t i = 0; i < a->entries_count; i++) {
        const struct aegis_entry *x = &a->entries[i], *y = &b->entries[i];

        if (x->index != y->index || x->term != y->term || x->type != y->type ||
            x->timestamp != y->timestamp || !buf_equal(x->buf, y->buf, true)) {
            return false;
        }
    }
    return true;
}

static bool snapshot_equal(const struct aegis_snapshot_req *a, const struct aegis_snapshot_req *b)
{
    if (a->meta.index != b->meta.index || a->meta.term != b->meta.term ||
        a->meta.conf.count != b->meta.conf.count || a->offset != b->offset ||
        a->total_bytes != b->total_bytes || a->done != b->done) {
        return false;
    }
    for (uint32_t i = 0; i < a->meta.conf.count; i++) {
        if (a->meta.conf.members[i].id != b->meta.conf.members[i].id ||
            a->meta.conf.members[i].role != b->meta.conf.members[i].role) {
            return false;
        }
    }
    return buf_equal(a->chunk, b->chunk, true);
}

static bool client_resp_equal(const struct aegis_client_resp *a,
                              const struct aegis_client_resp *b)
{
    return a->request_id == b->request_id && a->status == b->status &&
           a->leader_hint == b->leader_hint && a->index == b->index &&
           a->version == b->version && a->integer == b->integer &&
           buf_equal(a->value, b->value, false);
}

static bool msg_equal(const struct aegis_msg *a, const struct aegis_msg *b)
{
    if (a->type != b->type || a->from != b->from || a->to != b->to || a->term != b->term) {
        return false;
    }
    switch (a->type) {
    case AEGIS_MSG_VOTE_REQ:
        return a->vote_req.last_log_index == b->vote_req.last_log_index &&
               a->vote_req.last_log_term == b->vote_req.last_log_term &&
               a->vote_req.pre_vote == b->vote_req.pre_vote &&
               a->vote_req.leadership_transfer == b->vote_req.leadership_transfer;
    case AEGIS_MSG_VOTE_RESP:
        return a->vote_resp.granted == b->vote_resp.granted &&
               a->vote_resp.pre_vote == b->vote_resp.pre_vote;
    case AEGIS_MSG_APPEND_REQ:
        return append_equal(&a->append_req, &b->append_req);
    case AEGIS_MSG_APPEND_RESP:
        return a->append_resp.success == b->append_resp.success &&
               a->append_resp.match_index == b->append_resp.match_index &&
               a->append_resp.conflict_index == b->append_resp.conflict_index &&
               a->append_resp.conflict_term == b->append_resp.conflict_term &&
               a->append_resp.last_index == b->append_resp.last_index;
    case AEGIS_MSG_SNAPSHOT_REQ:
        return snapshot_equal(&a->snapshot_req, &b->snapshot_req);
    case AEGIS_MSG_SNAPSHOT_RESP:
        return a->snapshot_resp.index == b->snapshot_resp.index &&
               a->snapshot_resp.next_offset == b->snapshot_resp.next_offset &&
               a->snapshot_resp.success == b->snapshot_resp.success;
    case AEGIS_MSG_HEARTBEAT:
        return a->heartbeat.commit == b->heartbeat.commit &&
               a->heartbeat.read_ctx == b->heartbeat.read_ctx;
    case AEGIS_MSG_HEARTBEAT_RESP:
        return a->heartbeat_resp.read_ctx == b->heartbeat_resp.read_ctx;
    case AEGIS_MSG_TIMEOUT_NOW:
        return a->timeout_now.target == b->timeout_now.target;
    case AEGIS_MSG_READ_INDEX_REQ:
        return a->read_index_req.ctx == b->read_index_req.ctx;
    case AEGIS_MSG_READ_INDEX_RESP:
        return a->read_index_resp.ctx == b->read_index_resp.ctx &&
               a->read_index_resp.index == b->read_index_resp.index &&
               a->read_index_resp.ok == b->read_index_resp.ok;
    case AEGIS_MSG_CLIENT_REQ:
        return a->client_req.request_id == b->client_req.request_id &&
               buf_equal(a->client_req.command, b->client_req.command, true);
    case AEGIS_MSG_CLIENT_RESP:
        return client_resp_equal(&a->client_resp, &b->client_resp);
    default:
        return false;
    }
}

static uint8_t frame[1 << 16];

TEST(codec, round_trip_every_type)
{
    struct aegis_msg m, d;
    bool seen[AEGIS_MSG_TYPE_MAX + 1] = {false};
    size_t len;

    for (int v = 0; sample(v, &m); v++) {
        ASSERT_OK(aegis__codec_encode(&m, frame, sizeof(frame), &len));
        ASSERT_OK(aegis__codec_decode(frame, len, &d, NULL));
        if (!msg_equal(&m, &d)) {
            FAIL("variant %d (%s) did not round trip", v, aegis__codec_type_name(m.type));
        }
        seen[m.type] = true;
        aegis__msg_release(&d, NULL);
        ASSERT_EQ_U64(d.type, 0);
        pool_drop();
    }
    for (unsigned t = AEGIS_MSG_TYPE_MIN; t <= AEGIS_MSG_TYPE_MAX; t++) {
        ASSERT_TRUE(seen[t]);
    }
    return TEST_PASS;
}

TEST(codec, decoded_payloads_are_own_refcounted_buffers)
{
    struct aegis_msg m, d;
    size_t len;

    ASSERT_TRUE(sample(5, &m));
    ASSERT_OK(aegis__codec_encode(&m, frame, sizeof(frame), &len));
    ASSERT_OK(aegis__codec_decode(frame, len, &d, NULL));
    ASSERT_EQ_U64(d.append_req.entries_count, 64);
    ASSERT_EQ_U64(d.append_req.entries[0].index, 1001);
    ASSERT_EQ_U64(d.append_req.entries[63].index, 1064);
    ASSERT_TRUE(d.append_req.entries[2].buf == NULL); /* Empty payloads decode as NULL. */
    ASSERT_TRUE(d.append_req.entries[4].buf == NULL);
    ASSERT_TRUE(d.append_req.entries[1].buf != NULL);
    ASSERT_EQ_U64(d.append_req.entries[1].buf->refs, 1);
    ASSERT_TRUE(d.append_req.entries[1].buf != entries[1].buf);
    /* The decoded message lives on after the frame bytes are overwritten. */
    memset(frame, 0xee, len);
    ASSERT_MEM_EQ(d.append_req.entries[1].buf->data, entries[1].buf->data, 8);
    aegis__msg_release(&d, NULL);
    pool_drop();
    return TEST_PASS;
}

/* Concatenate @iov into @out, checking each payload iovec points into a message buffer. */
static size_t gather(const struct iovec *iov, size_t n, uint8_t *out)
{
    size_t len = 0;

    for (size_t i = 0; i < n; i++) {
        memcpy(out + len, iov[i].iov_base, iov[i].iov_len);
        len += iov[i].iov_len;
    }
    return len;
}

static bool points_into_pool(const void *p)
{
    for (int i = 0; i < pool_len; i++) {
        if (p == pool[i]->data) {
            return true;
        }
    }
    return false;
}

static uint8_t gathered[1 << 16];
static uint8_t scratch[1 << 14];

TEST(codec, vectored_equals_flat_and_does_not_copy_payloads)
{
    struct aegis_msg m;
    struct aegis_codec_size size;
    struct iovec iov[256];
    size_t len, n, frame_bytes;

    for (int v = 0; sample(v, &m); v++) {
        int payload_iovs = 0;

        ASSERT_OK(aegis__codec_encode_size(&m, &size));
        ASSERT_TRUE(size.iov_count <= 256);
        ASSERT_TRUE(size.scratch_bytes <= size.frame_bytes);
        ASSERT_OK(aegis__codec_encode(&m, frame, sizeof(frame), &len));
        ASSERT_EQ_U64(len, size.frame_bytes);
        ASSERT_OK(aegis__codec_encode_iov(&m, scratch, size.scratch_bytes, iov, size.iov_count,
                                          &n, &frame_bytes));
        ASSERT_EQ_U64(n, size.iov_count);
        ASSERT_EQ_U64(frame_bytes, len);
        ASSERT_EQ_U64(gather(iov, n, gathered), len);
        ASSERT_MEM_EQ(gathered, frame, len);
        for (size_t i = 0; i < n; i++) {
            const uint8_t *base = iov[i].iov_base;

            ASSERT_TRUE(iov[i].iov_len > 0);
            if (base >= scratch && base < scratch + sizeof(scratch)) {
                continue;
            }
            ASSERT_TRUE(points_into_pool(base));
            payload_iovs++;
        }
        if (v == 5) {
            /* 64 entries: 21 empty (every third), one empty buffer, 42 with bytes. */
            ASSERT_EQ_U64(payload_iovs, 42);
            ASSERT_EQ_U64(size.scratch_bytes, 36 + 28 + 64 * 21);
        }
        pool_drop();
    }
    return TEST_PASS;
}

TEST(codec, exact_bytes_of_a_heartbeat_and_an_entry)
{
    struct aegis_msg m = {.type = AEGIS_MSG_HEARTBEAT, .from = 1, .to = 2, .term = 3};
    struct aegis_entry e = {.index = 8, .term = 3, .type = AEGIS_ENTRY_COMMAND, .timestamp = 9};
    static const uint8_t hb[] = {
        'A', 'E', 'G', 'R', 1, 7, 0, 0, 16, 0, 0, 0,     /* magic version type flags len */
        1,   0,   0,   0,   0, 0, 0, 0,                  /* from */
        2,   0,   0,   0,   0, 0, 0, 0,                  /* to */
        3,   0,   0,   0,   0, 0, 0, 0,                  /* term */
        0x10, 0x0f, 0, 0, 0, 0, 0, 0,                    /* commit 3856 */
        0xff, 0, 0, 0, 0, 0, 0, 0x80,                    /* read_ctx */
    };
    size_t len;

    m.heartbeat.commit = 3856;
    m.heartbeat.read_ctx = 0x80000000000000ffu;
    ASSERT_OK(aegis__codec_encode(&m, frame, sizeof(frame), &len));
    ASSERT_EQ_U64(len, sizeof(hb));
    ASSERT_MEM_EQ(frame, hb, sizeof(hb));

    memset(&m, 0, sizeof(m));
    m.type = AEGIS_MSG_APPEND_REQ;
    m.append_req.prev_index = 7;
    m.append_req.entries_count = 1;
    m.append_req.entries = &e;
    e.buf = aegis__buf_from(NULL, "xy", 2);
    ASSERT_OK(aegis__codec_encode(&m, frame, sizeof(frame), &len));
    ASSERT_EQ_U64(len, 36 + 28 + 21 + 2);
    ASSERT_EQ_U64(frame[8], 28 + 21 + 2);
    ASSERT_EQ_U64(frame[36 + 24], 1);      /* entries_count */
    ASSERT_EQ_U64(frame[36 + 28], 3);      /* entry term */
    ASSERT_EQ_U64(frame[36 + 28 + 8], 9);  /* timestamp */
    ASSERT_EQ_U64(frame[36 + 28 + 16], 2); /* len */
    ASSERT_EQ_U64(frame[36 + 28 + 20], AEGIS_ENTRY_COMMAND);
    ASSERT_MEM_EQ(frame + 36 + 28 + 21, "xy", 2);
    aegis__buf_unref(e.buf);
    return TEST_PASS;
}

TEST(codec, every_truncation_is_refused)
{
    struct aegis_msg m, d;
    size_t len, need;

    for (int v = 0; sample(v, &m); v++) {
        ASSERT_OK(aegis__codec_encode(&m, frame, sizeof(frame), &len));
        for (size_t cut = 0; cut < len; cut++) {
            int rv = aegis__codec_peek(frame, cut, SIZE_MAX, &need);

            /* A strict prefix is never a whole frame. */
            ASSERT_EQ_I64(rv, 0);
            ASSERT_EQ_U64(need, cut < 12 ? AEGIS_CODEC_HEADER_BYTES : len);
            ASSERT_ERR(aegis__codec_decode(frame, cut, &d, NULL), AEGIS_ECORRUPT);
            ASSERT_EQ_U64(d.type, 0);
        }
        ASSERT_EQ_I64(aegis__codec_peek(frame, len, SIZE_MAX, &need), 1);
        ASSERT_EQ_U64(need, len);
        /* Trailing garbage inside the declared frame is refused, and so is a frame with
         * one byte too many. */
        frame[len] = 0;
        ASSERT_ERR(aegis__codec_decode(frame, len + 1, &d, NULL), AEGIS_ECORRUPT);
        pool_drop();
    }
    return TEST_PASS;
}

/* Reframe @body_len by hand: the body grows by one zero byte that no field explains. */
TEST(codec, trailing_bytes_inside_the_body_are_refused)
{
    struct aegis_msg m, d;
    size_t len;

    for (int v = 0; sample(v, &m); v++) {
        ASSERT_OK(aegis__codec_encode(&m, frame, sizeof(frame), &len));
        frame[len] = 0;
        frame[8] = (uint8_t)(frame[8] + 1); /* No sample body is 255 bytes long mod 256. */
        if (frame[8] == 0) {
            frame[9]++;
        }
        ASSERT_ERR(aegis__codec_decode(frame, len + 1, &d, NULL), AEGIS_ECORRUPT);
        pool_drop();
    }
    return TEST_PASS;
}

TEST(codec, random_bit_flips_give_an_error_or_a_canonical_message)
{
    static uint8_t copy[1 << 16], again[1 << 16];
    struct aegis_rng rng;
    struct aegis_msg m, d;
    size_t len, len2;
    int valid = 0, refused = 0;

    aegis__rng_seed(&rng, test_seed());
    for (int v = 0; sample(v, &m); v++) {
        ASSERT_OK(aegis__codec_encode(&m, frame, sizeof(frame), &len));
        for (int round = 0; round < 400; round++) {
            int flips = (int)aegis__rng_range(&rng, 1, 3);
            int rv;

            memcpy(copy, frame, len);
            for (int f = 0; f < flips; f++) {
                size_t bit = (size_t)aegis__rng_range(&rng, 0, len * 8 - 1);

                copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            }
            rv = aegis__codec_decode(copy, len, &d, NULL);
            if (rv == 0) {
                /* Whatever decodes re-encodes to exactly the bytes it came from. */
                ASSERT_OK(aegis__codec_encode(&d, again, sizeof(again), &len2));
                ASSERT_EQ_U64(len2, len);
                ASSERT_MEM_EQ(again, copy, len);
                aegis__msg_release(&d, NULL);
                valid++;
            } else {
                ASSERT_TRUE(rv == AEGIS_ECORRUPT || rv == AEGIS_EVERSION);
                ASSERT_EQ_U64(d.type, 0);
                refused++;
            }
        }
        pool_drop();
    }
    /* Both outcomes must occur: flips in ids or payloads are valid, in magic are not. */
    ASSERT_TRUE(valid > 0);
    ASSERT_TRUE(refused > 0);
    return TEST_PASS;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

TEST(codec, peek_refuses_bad_headers_early)
{
    struct aegis_msg m;
    size_t len, need;

    ASSERT_TRUE(sample(12, &m));
    ASSERT_OK(aegis__codec_encode(&m, frame, sizeof(frame), &len));
    ASSERT_EQ_I64(aegis__codec_peek(frame, 0, 100, &need), 0);
    ASSERT_EQ_U64(need, AEGIS_CODEC_HEADER_BYTES);

    frame[0] ^= 1; /* Bad magic: refused as soon as 4 bytes are in. */
    ASSERT_EQ_I64(aegis__codec_peek(frame, 3, 100, &need), 0);
    ASSERT_ERR(aegis__codec_peek(frame, 4, 100, &need), AEGIS_ECORRUPT);
    frame[0] ^= 1;
    frame[4] = 2;
    ASSERT_ERR(aegis__codec_peek(frame, 5, 100, &need), AEGIS_EVERSION);
    frame[4] = 1;
    frame[5] = 0;
    ASSERT_ERR(aegis__codec_peek(frame, 6, 100, &need), AEGIS_ECORRUPT);
    frame[5] = AEGIS_MSG_TYPE_MAX + 1;
    ASSERT_ERR(aegis__codec_peek(frame, 6, 100, &need), AEGIS_ECORRUPT);
    frame[5] = AEGIS_MSG_HEARTBEAT;
    frame[7] = 0x80; /* Reserved flags. */
    ASSERT_ERR(aegis__codec_peek(frame, 8, 100, &need), AEGIS_ECORRUPT);
    frame[7] = 0;
    put_u32(frame + 8, 17); /* A heartbeat body is exactly 16 bytes. */
    ASSERT_ERR(aegis__codec_peek(frame, 12, 100, &need), AEGIS_ECORRUPT);
    put_u32(frame + 8, 16);
    ASSERT_EQ_I64(aegis__codec_peek(frame, 12, 100, &need), 0);
    ASSERT_EQ_U64(need, 52);
    ASSERT_EQ_I64(aegis__codec_peek(frame, len, 100, &need), 1);
    return TEST_PASS;
}

TEST(codec, oversize_frames_are_refused_before_allocation)
{
    struct aegis_msg m, d;
    struct count_heap heap;
    size_t len, need;

    ASSERT_TRUE(sample(18, &m)); /* A client request: 36 + 12 + 40 bytes. */
    ASSERT_OK(aegis__codec_encode(&m, frame, sizeof(frame), &len));
    ASSERT_EQ_U64(len, 88);
    ASSERT_EQ_I64(aegis__codec_peek(frame, len, 88, &need), 1);
    ASSERT_ERR(aegis__codec_peek(frame, 12, 87, &need), AEGIS_ETOOBIG);
    put_u32(frame + 8, UINT32_MAX);
    ASSERT_ERR(aegis__codec_peek(frame, 12, AEGIS_CODEC_FRAME_BYTES_MAX_DEFAULT, &need),
               AEGIS_ETOOBIG);
    /* A payload length claiming more than the frame holds allocates nothing. */
    put_u32(frame + 8, 12 + 40);
    put_u32(frame + 36 + 8, UINT32_MAX);
    count_heap_init(&heap, -1);
    ASSERT_ERR(aegis__codec_decode(frame, len, &d, &heap.a), AEGIS_ECORRUPT);
    ASSERT_EQ_I64(heap.allocs, 0);
    pool_drop();
    return TEST_PASS;
}

/* Encode sample @v, apply @patch at body offset @off (with @n bytes), expect @want. */
static int patched_decode(int v, size_t off, const uint8_t *patch, size_t n)
{
    struct aegis_msg m, d;
    size_t len;
    int rv;

    if (!sample(v, &m) || aegis__codec_encode(&m, frame, sizeof(frame), &len) != 0) {
        abort();
    }
    memcpy(frame + AEGIS_CODEC_HEADER_BYTES + off, patch, n);
    rv = aegis__codec_decode(frame, len, &d, NULL);
    if (rv == 0) {
        aegis__msg_release(&d, NULL);
    }
    pool_drop();
    return rv;
}

TEST(codec, field_validation)
{
    static const uint8_t two = 2, zero = 0, four = 4, three = 3, seventeen = 17;
    static const uint8_t one = 1, big[4] = {0xff, 0xff, 0xff, 0x0f}, pos_status[4] = {1};
    static const uint8_t id_zero[8] = {0}, id_dup[8] = {100}, huge_index[8] = {
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

    /* Bools other than 0/1. */
    ASSERT_ERR(patched_decode(0, 16, &two, 1), AEGIS_ECORRUPT);
    ASSERT_ERR(patched_decode(0, 17, &two, 1), AEGIS_ECORRUPT);
    ASSERT_ERR(patched_decode(2, 0, &two, 1), AEGIS_ECORRUPT);
    ASSERT_ERR(patched_decode(6, 0, &two, 1), AEGIS_ECORRUPT);
    ASSERT_ERR(patched_decode(11, 16, &two, 1), AEGIS_ECORRUPT);
    ASSERT_ERR(patched_decode(17, 16, &two, 1), AEGIS_ECORRUPT);
    /* Entry types 0 and 4 (variant 4: one entry, type at body offset 28 + 20). */
    ASSERT_ERR(patched_decode(4, 48, &zero, 1), AEGIS_ECORRUPT);
    ASSERT_ERR(patched_decode(4, 48, &four, 1), AEGIS_ECORRUPT);
    ASSERT_OK(patched_decode(4, 48, &three, 1));
    /* An entry count the bytes cannot hold. */
    ASSERT_ERR(patched_decode(4, 24, big, 4), AEGIS_ECORRUPT);
    /* prev_index + count overflowing. */
    ASSERT_ERR(patched_decode(4, 0, huge_index, 8), AEGIS_ECORRUPT);
    /* Membership: count above AEGIS_MEMBERS_MAX, zero id, duplicate id, bad role. */
    ASSERT_ERR(patched_decode(8, 16, &seventeen, 1), AEGIS_ECORRUPT);
    ASSERT_ERR(patched_decode(9, 17, id_zero, 8), AEGIS_ECORRUPT);
    ASSERT_ERR(patched_decode(9, 17 + 9, id_dup, 8), AEGIS_ECORRUPT);
    ASSERT_ERR(patched_decode(9, 17 + 8, &three, 1), AEGIS_ECORRUPT);
    ASSERT_OK(patched_decode(9, 17 + 8, &two, 1));
    /* Snapshot: done with bytes missing (variant 8 has offset 0, total 1000, 300 bytes);
     * a chunk past total_bytes (variant 9: offset 700 -> 701). */
    ASSERT_ERR(patched_decode(8, 17 + 16 * 9 + 16, &one, 1), AEGIS_ECORRUPT);
    ASSERT_ERR(patched_decode(9, 17 + 3 * 9, (const uint8_t[]){0xbd, 0x02}, 2),
               AEGIS_ECORRUPT);
    /* Client response: positive status; a length without a value. */
    ASSERT_ERR(patched_decode(20, 8, pos_status, 4), AEGIS_ECORRUPT);
    ASSERT_ERR(patched_decode(20, 44, &zero, 1), AEGIS_ECORRUPT);
    return TEST_PASS;
}

TEST(codec, allocation_failure_leaves_nothing_behind)
{
    struct aegis_msg m, d;
    struct count_heap heap;
    size_t len;
    int rv = AEGIS_ENOMEM;

    ASSERT_TRUE(sample(5, &m));
    ASSERT_OK(aegis__codec_encode(&m, frame, sizeof(frame), &len));
    /* One array plus 42 payloads: every budget below 43 fails cleanly (ASan checks that
     * nothing leaks), and 43 succeeds. */
    for (int budget = 0; budget <= 43; budget++) {
        count_heap_init(&heap, budget);
        rv = aegis__codec_decode(frame, len, &d, &heap.a);
        if (budget < 43) {
            ASSERT_ERR(rv, AEGIS_ENOMEM);
            ASSERT_EQ_U64(d.type, 0);
        }
    }
    ASSERT_OK(rv);
    ASSERT_TRUE(msg_equal(&m, &d));
    aegis__msg_release(&d, &heap.a);
    pool_drop();
    return TEST_PASS;
}

TEST(codec, encode_alloc_and_small_buffers)
{
    struct aegis_msg m, d;
    uint8_t *bytes = NULL;
    size_t len, len2;

    ASSERT_TRUE(sample(9, &m));
    ASSERT_OK(aegis__codec_encode_alloc(&m, NULL, &bytes, &len));
    ASSERT_ERR(aegis__codec_encode(&m, frame, len - 1, &len2), AEGIS_ETOOBIG);
    ASSERT_OK(aegis__codec_decode(bytes, len, &d, NULL));
    ASSERT_TRUE(msg_equal(&m, &d));
    aegis__msg_release(&d, NULL);
    aegis__free(NULL, bytes);
    pool_drop();
    ASSERT_STR_EQ(aegis__codec_type_name(AEGIS_MSG_TIMEOUT_NOW), "timeout_now");
    ASSERT_STR_EQ(aegis__codec_type_name(0), "unknown");
    return TEST_PASS;
}

TEST(codec, frames_back_to_back_are_split_by_peek)
{
    struct aegis_msg m, d;
    size_t off = 0, total = 0, len, need;
    int count = 0;

    for (int v = 0; sample(v, &m); v++) {
        ASSERT_OK(aegis__codec_encode(&m, frame + total, sizeof(frame) - total, &len));
        total += len;
        pool_drop();
    }
    while (off < total) {
        ASSERT_EQ_I64(aegis__codec_peek(frame + off, total - off, SIZE_MAX, &need), 1);
        ASSERT_OK(aegis__codec_decode(frame + off, need, &d, NULL));
        ASSERT_TRUE(sample(count, &m));
        ASSERT_TRUE(msg_equal(&m, &d));
        aegis__msg_release(&d, NULL);
        pool_drop();
        off += need;
        count++;
    }
    ASSERT_EQ_U64(count, VARIANTS);
    return TEST_PASS;
}
