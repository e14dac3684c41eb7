/* SPDX-License-Identifier: MIT */
/* Tests of the key-value state machine (engine/kv.h): the command encoding, every
 * command's semantics, ordering, custom handlers, the hash table under growth and
 * deletion, snapshots (round trip, truncation, bit flips, structural corruption) and
 * out-of-memory at every allocation. */
#include <stdlib.h>

#include <aegis/error.h>

#include "engine/crc32c.h"
#include "engine/kv.h"
#include "engine/rng.h"
#include "lib/test.h"

#define B(s) ((struct aegis_kv_bytes){(const uint8_t *)(s), sizeof(s) - 1})

/* A heap that fails the allocation numbered fail_at (0-based) and counts live blocks. */
struct fault_heap {
    long calls;
    long fail_at; /* -1: never fail. */
    long live;
};

static void *fault_malloc(void *data, size_t size)
{
    struct fault_heap *h = data;

    if (h->calls++ == h->fail_at) {
        return NULL;
    }
    h->live++;
    return malloc(size);
}

static void *fault_realloc(void *data, void *ptr, size_t size)
{
    struct fault_heap *h = data;

    if (h->calls++ == h->fail_at) {
        return NULL;
    }
    if (ptr == NULL) {
        h->live++;
    }
    return realloc(ptr, size);
}

static void fault_free(void *data, void *ptr)
{
    struct fault_heap *h = data;

    h->live--;
    free(ptr);
}

/* State of one test machine: the next index to apply, and the current term. */
struct fixture {
    struct aegis_kv kv;
    aegis_index next;
    aegis_term term;
};

static int fixture_init(struct fixture *f, const struct aegis_allocator *a, uint64_t seed)
{
    f->next = 1;
    f->term = 1;
    return aegis__kv_init(&f->kv, a, seed);
}

/* Apply the command in @cmd (reference consumed) at the next index. */
static int run(struct fixture *f, struct aegis_buf *cmd, struct aegis_kv_result *r)
{
    int rv;

    if (cmd == NULL) {
        return AEGIS_ENOMEM;
    }
    rv = aegis__kv_apply(&f->kv, f->next, f->term, AEGIS_ENTRY_COMMAND, cmd->data, cmd->len,
                         r);
    aegis__buf_unref(cmd);
    if (rv == 0) {
        f->next++;
    }
    return rv;
}

static struct aegis_buf *enc_set(const char *k, const char *v)
{
    struct aegis_buf *b = NULL;

    if (aegis__kv_encode_set(NULL, k, strlen(k), v, strlen(v), &b) != 0) {
        return NULL;
    }
    return b;
}

static struct aegis_buf *enc_get(const char *k)
{
    struct aegis_buf *b = NULL;

    return aegis__kv_encode_get(NULL, k, strlen(k), &b) == 0 ? b : NULL;
}

static struct aegis_buf *enc_incr(const char *k, int64_t delta)
{
    struct aegis_buf *b = NULL;

    return aegis__kv_encode_increment(NULL, k, strlen(k), delta, &b) == 0 ? b : NULL;
}

static struct aegis_buf *enc_cas(const char *k, const char *expected, const char *v)
{
    struct aegis_buf *b = NULL;
    struct aegis_kv_bytes e;

    if (expected != NULL) {
        e.data = (const uint8_t *)expected;
        e.len = strlen(expected);
    }
    if (aegis__kv_encode_cas(NULL, k, strlen(k), expected != NULL ? &e : NULL, v, strlen(v),
                             &b) != 0) {
        return NULL;
    }
    return b;
}

/* Apply a command expected to succeed at the level of apply; return its status. */
static int run_status(struct fixture *f, struct aegis_buf *cmd)
{
    struct aegis_kv_result r;
    int rv = run(f, cmd, &r);

    aegis__kv_result_release(&r);
    return rv != 0 ? rv : r.status;
}

/* True when @key holds exactly @value. */
static bool holds(const struct aegis_kv *kv, const char *key, const char *value)
{
    struct aegis_buf *v = NULL;
    bool ok;

    if (aegis__kv_get(kv, key, strlen(key), &v, NULL) != 0) {
        return false;
    }
    ok = v->len == strlen(value) && memcmp(v->data, value, v->len) == 0;
    aegis__buf_unref(v);
    return ok;
}

static aegis_index version_of(const struct aegis_kv *kv, const char *key)
{
    aegis_index version = 0;

    if (aegis__kv_get(kv, key, strlen(key), NULL, &version) != 0) {
        return 0;
    }
    return version;
}

/* Re-encode a decoded command with the public encoders (used to check canonicity). */
static int reencode(const struct aegis_kv_cmd *c, struct aegis_buf **out)
{
    struct aegis_kv_bytes keys[64], values[64];
    size_t offset = 0, n = 0;

    switch (c->type) {
    case AEGIS_KV_GET:
        return aegis__kv_encode_get(NULL, c->key.data, c->key.len, out);
    case AEGIS_KV_SET:
        return aegis__kv_encode_set(NULL, c->key.data, c->key.len, c->value.data,
                                    c->value.len, out);
    case AEGIS_KV_CAS:
        return aegis__kv_encode_cas(NULL, c->key.data, c->key.len,
                                    c->expected_present ? &c->expected : NULL, c->value.data,
                                    c->value.len, out);
    case AEGIS_KV_INCREMENT:
        return aegis__kv_encode_increment(NULL, c->key.data, c->key.len, c->delta, out);
    case AEGIS_KV_CUSTOM:
        return aegis__kv_encode_custom(NULL, c->name.data, c->name.len, c->args.data,
                                       c->args.len, out);
    default:
        break;
    }
    if (c->count > 64) {
        return AEGIS_ETOOBIG;
    }
    while (aegis__kv_cmd_next(c, &offset, &keys[n], &values[n])) {
        n++;
    }
    if (n != c->count) {
        return AEGIS_EINTERNAL;
    }
    if (c->type == AEGIS_KV_DELETE) {
        return aegis__kv_encode_delete(NULL, keys, n, out);
    }
    return aegis__kv_encode_mset(NULL, keys, values, n, out);
}

/* A sample of every command, including edge cases of each field. */
static int sample_commands(struct aegis_buf **cmds, size_t *count)
{
    struct aegis_kv_bytes keys[3] = {B("a"), B(""), B("ccc")};
    struct aegis_kv_bytes vals[3] = {B("1"), B("two"), B("")};
    static uint8_t big[300];
    size_t n = 0;
    int rv = 0;

    memset(big, 0xab, sizeof(big));
    rv |= aegis__kv_encode_get(NULL, "key", 3, &cmds[n++]);
    rv |= aegis__kv_encode_get(NULL, "", 0, &cmds[n++]);
    rv |= aegis__kv_encode_set(NULL, "k", 1, "v", 1, &cmds[n++]);
    rv |= aegis__kv_encode_set(NULL, big, 200, big, sizeof(big), &cmds[n++]);
    rv |= aegis__kv_encode_delete(NULL, keys, 3, &cmds[n++]);
    rv |= aegis__kv_encode_delete(NULL, keys, 1, &cmds[n++]);
    rv |= aegis__kv_encode_mset(NULL, keys, vals, 3, &cmds[n++]);
    rv |= aegis__kv_encode_cas(NULL, "k", 1, NULL, "new", 3, &cmds[n++]);
    rv |= aegis__kv_encode_cas(NULL, "k", 1, &vals[1], "new", 3, &cmds[n++]);
    rv |= aegis__kv_encode_cas(NULL, "k", 1, &vals[2], "", 0, &cmds[n++]);
    rv |= aegis__kv_encode_increment(NULL, "n", 1, 1, &cmds[n++]);
    rv |= aegis__kv_encode_increment(NULL, "n", 1, -1, &cmds[n++]);
    rv |= aegis__kv_encode_increment(NULL, "n", 1, INT64_MAX, &cmds[n++]);
    rv |= aegis__kv_encode_increment(NULL, "n", 1, INT64_MIN, &cmds[n++]);
    rv |= aegis__kv_encode_custom(NULL, "op", 2, "args", 4, &cmds[n++]);
    rv |= aegis__kv_encode_custom(NULL, "", 0, "", 0, &cmds[n++]);
    *count = n;
    return rv;
}

static void free_commands(struct aegis_buf **cmds, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        aegis__buf_unref(cmds[i]);
    }
}

TEST(kv_codec, exact_bytes)
{
    static const uint8_t set_kv[] = {0x02, 0x01, 'k', 0x01, 'v'};
    static const uint8_t incr_n[] = {0x05, 0x01, 'n', 0x01};
    static const uint8_t incr_big[] = {0x05, 0x00, 0x80, 0x01}; /* delta 64 */
    static const uint8_t del_ab[] = {0x03, 0x02, 0x01, 'a', 0x01, 'b'};
    struct aegis_kv_bytes keys[2] = {B("a"), B("b")};
    struct aegis_buf *b;

    ASSERT_OK(aegis__kv_encode_set(NULL, "k", 1, "v", 1, &b));
    ASSERT_EQ_U64(b->len, sizeof(set_kv));
    ASSERT_MEM_EQ(b->data, set_kv, sizeof(set_kv));
    aegis__buf_unref(b);
    ASSERT_OK(aegis__kv_encode_increment(NULL, "n", 1, -1, &b));
    ASSERT_EQ_U64(b->len, sizeof(incr_n));
    ASSERT_MEM_EQ(b->data, incr_n, sizeof(incr_n));
    aegis__buf_unref(b);
    ASSERT_OK(aegis__kv_encode_increment(NULL, "", 0, 64, &b));
    ASSERT_EQ_U64(b->len, sizeof(incr_big));
    ASSERT_MEM_EQ(b->data, incr_big, sizeof(incr_big));
    aegis__buf_unref(b);
    ASSERT_OK(aegis__kv_encode_delete(NULL, keys, 2, &b));
    ASSERT_EQ_U64(b->len, sizeof(del_ab));
    ASSERT_MEM_EQ(b->data, del_ab, sizeof(del_ab));
    aegis__buf_unref(b);
    return TEST_PASS;
}

TEST(kv_codec, round_trip_every_command)
{
    struct aegis_buf *cmds[32];
    struct aegis_kv_cmd c;
    struct aegis_kv_bytes k, v;
    size_t n, offset = 0;

    ASSERT_OK(sample_commands(cmds, &n));
    for (size_t i = 0; i < n; i++) {
        struct aegis_buf *again = NULL;

        ASSERT_OK(aegis__kv_cmd_decode(cmds[i]->data, cmds[i]->len, &c));
        ASSERT_OK(reencode(&c, &again));
        ASSERT_EQ_U64(again->len, cmds[i]->len);
        ASSERT_MEM_EQ(again->data, cmds[i]->data, again->len);
        aegis__buf_unref(again);
    }
    /* Field by field for a few. */
    ASSERT_OK(aegis__kv_cmd_decode(cmds[2]->data, cmds[2]->len, &c));
    ASSERT_EQ_U64(c.type, AEGIS_KV_SET);
    ASSERT_TRUE(c.key.len == 1 && c.key.data[0] == 'k');
    ASSERT_TRUE(c.value.len == 1 && c.value.data[0] == 'v');
    ASSERT_TRUE(c.key.data >= cmds[2]->data && c.key.data < cmds[2]->data + cmds[2]->len);
    ASSERT_OK(aegis__kv_cmd_decode(cmds[6]->data, cmds[6]->len, &c));
    ASSERT_EQ_U64(c.type, AEGIS_KV_MSET);
    ASSERT_EQ_U64(c.count, 3);
    ASSERT_TRUE(aegis__kv_cmd_next(&c, &offset, &k, &v));
    ASSERT_TRUE(k.len == 1 && k.data[0] == 'a' && v.len == 1 && v.data[0] == '1');
    ASSERT_TRUE(aegis__kv_cmd_next(&c, &offset, &k, &v));
    ASSERT_TRUE(k.len == 0 && v.len == 3 && memcmp(v.data, "two", 3) == 0);
    ASSERT_TRUE(aegis__kv_cmd_next(&c, &offset, &k, &v));
    ASSERT_TRUE(k.len == 3 && v.len == 0);
    ASSERT_FALSE(aegis__kv_cmd_next(&c, &offset, &k, &v));
    ASSERT_OK(aegis__kv_cmd_decode(cmds[7]->data, cmds[7]->len, &c));
    ASSERT_FALSE(c.expected_present);
    ASSERT_OK(aegis__kv_cmd_decode(cmds[9]->data, cmds[9]->len, &c));
    ASSERT_TRUE(c.expected_present);
    ASSERT_EQ_U64(c.expected.len, 0);
    ASSERT_OK(aegis__kv_cmd_decode(cmds[13]->data, cmds[13]->len, &c));
    ASSERT_EQ_I64(c.delta, INT64_MIN);
    ASSERT_OK(aegis__kv_cmd_decode(cmds[14]->data, cmds[14]->len, &c));
    ASSERT_TRUE(c.name.len == 2 && memcmp(c.name.data, "op", 2) == 0);
    ASSERT_TRUE(c.args.len == 4 && memcmp(c.args.data, "args", 4) == 0);
    free_commands(cmds, n);
    return TEST_PASS;
}

TEST(kv_codec, truncated_at_every_length_and_trailing_bytes)
{
    struct aegis_buf *cmds[32];
    struct aegis_kv_cmd c;
    uint8_t longer[1024];
    size_t n;

    ASSERT_OK(sample_commands(cmds, &n));
    for (size_t i = 0; i < n; i++) {
        for (size_t len = 0; len < cmds[i]->len; len++) {
            /* A copy of exactly @len bytes, so ASan catches a read past the end. */
            uint8_t *copy = malloc(len + 1);

            memcpy(copy, cmds[i]->data, len);
            ASSERT_ERR(aegis__kv_cmd_decode(len > 0 ? copy : NULL, len, &c), AEGIS_ECORRUPT);
            free(copy);
        }
        ASSERT_TRUE(cmds[i]->len < sizeof(longer));
        memcpy(longer, cmds[i]->data, cmds[i]->len);
        longer[cmds[i]->len] = 0;
        ASSERT_ERR(aegis__kv_cmd_decode(longer, cmds[i]->len + 1, &c), AEGIS_ECORRUPT);
    }
    free_commands(cmds, n);
    return TEST_PASS;
}

TEST(kv_codec, rejects_malformed)
{
    static const struct {
        uint8_t bytes[16];
        size_t len;
    } bad[] = {
        {{0x00, 0x00}, 2},                         /* Type 0. */
        {{0x08, 0x00}, 2},                         /* Unknown type. */
        {{0xff, 0x00}, 2},                         /* Unknown type. */
        {{0x01, 0x81, 0x00}, 3},                   /* Non-minimal varint. */
        {{0x01, 0x80, 0x80, 0x05}, 4},             /* Key of 81920 bytes > max. */
        {{0x03, 0x00}, 2},                         /* DELETE of zero keys. */
        {{0x03, 0x81, 0x80, 0x04, 0x00}, 5},       /* DELETE of 65537 keys. */
        {{0x07, 0x00}, 2},                         /* MSET of zero pairs. */
        {{0x04, 0x01, 'k', 0x02, 0x00}, 5},        /* CAS flags 2. */
        {{0x05, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, 12},
        {{0x05, 0x00, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, 13},
        {{0x06, 0xff, 0x01}, 3},                   /* Name of 255 bytes, truncated. */
        {{0x06, 0x80, 0x02, 0x00}, 4},             /* Name of 256 bytes. */
        {{0x02, 0x01, 'k', 0x05, 'v'}, 5},         /* Value longer than the input. */
    };
    struct aegis_kv_cmd c;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (aegis__kv_cmd_decode(bad[i].bytes, bad[i].len, &c) != AEGIS_ECORRUPT) {
            FAIL("case %zu decoded", i);
        }
    }
    return TEST_PASS;
}

TEST(kv_codec, bit_flips_decode_or_fail_and_stay_canonical)
{
    struct aegis_buf *cmds[32];
    struct aegis_rng rng;
    struct aegis_kv_cmd c;
    size_t n, decoded = 0;

    aegis__rng_seed(&rng, test_seed());
    ASSERT_OK(sample_commands(cmds, &n));
    for (int round = 0; round < 20000; round++) {
        struct aegis_buf *src = cmds[aegis__rng_range(&rng, 0, n - 1)];
        struct aegis_buf *copy = aegis__buf_from(NULL, src->data, src->len);
        int flips = (int)aegis__rng_range(&rng, 1, 3);

        for (int f = 0; f < flips; f++) {
            size_t bit = aegis__rng_range(&rng, 0, (uint64_t)copy->len * 8 - 1);

            copy->data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        }
        if (aegis__kv_cmd_decode(copy->data, copy->len, &c) == 0) {
            struct aegis_buf *again = NULL;

            decoded++;
            ASSERT_OK(reencode(&c, &again));
            ASSERT_EQ_U64(again->len, copy->len);
            ASSERT_MEM_EQ(again->data, copy->data, copy->len);
            aegis__buf_unref(again);
        }
        aegis__buf_unref(copy);
    }
    ASSERT_TRUE(decoded > 0); /* Some flips (in key or value bytes) keep it valid. */
    free_commands(cmds, n);
    return TEST_PASS;
}

TEST(kv_codec, encoder_limits)
{
    static uint8_t key[AEGIS_KV_KEY_LEN_MAX + 1];
    struct aegis_kv_bytes k = {key, sizeof(key)};
    struct aegis_kv_bytes ok = {key, AEGIS_KV_KEY_LEN_MAX};
    struct aegis_buf *b = NULL;
    struct aegis_kv_cmd c;

    ASSERT_ERR(aegis__kv_encode_get(NULL, key, sizeof(key), &b), AEGIS_ETOOBIG);
    ASSERT_ERR(aegis__kv_encode_delete(NULL, &k, 1, &b), AEGIS_ETOOBIG);
    ASSERT_ERR(aegis__kv_encode_delete(NULL, &k, 0, &b), AEGIS_EINVAL);
    ASSERT_ERR(aegis__kv_encode_delete(NULL, &k, AEGIS_KV_MULTI_MAX + 1, &b), AEGIS_ETOOBIG);
    ASSERT_ERR(aegis__kv_encode_custom(NULL, key, 256, "", 0, &b), AEGIS_ETOOBIG);
    ASSERT_ERR(aegis__kv_encode_set(NULL, "k", 1, key, (size_t)AEGIS_BUF_LEN_MAX, &b),
               AEGIS_ETOOBIG);
    ASSERT_TRUE(b == NULL);
    /* The largest key encodes and decodes. */
    ASSERT_OK(aegis__kv_encode_delete(NULL, &ok, 1, &b));
    ASSERT_OK(aegis__kv_cmd_decode(b->data, b->len, &c));
    ASSERT_EQ_U64(c.count, 1);
    aegis__buf_unref(b);
    return TEST_PASS;
}

TEST(kv, set_get_and_versions)
{
    struct fixture f;
    struct aegis_kv_result r;
    struct aegis_buf *direct = NULL;
    aegis_index version = 0;

    ASSERT_OK(fixture_init(&f, NULL, 1));
    ASSERT_OK(run(&f, enc_set("a", "1"), &r));
    ASSERT_OK(r.status);
    ASSERT_EQ_U64(r.version, 1);
    ASSERT_EQ_U64(r.applied_index, 1);
    ASSERT_TRUE(r.value == NULL);
    ASSERT_OK(run_status(&f, enc_set("b", "2")));
    ASSERT_OK(run_status(&f, enc_set("a", "3")));
    ASSERT_EQ_U64(version_of(&f.kv, "a"), 3);
    ASSERT_EQ_U64(version_of(&f.kv, "b"), 2);
    ASSERT_TRUE(holds(&f.kv, "a", "3"));
    /* GET through the log: the value and version, shared with the store (no copy). */
    ASSERT_OK(run(&f, enc_get("a"), &r));
    ASSERT_OK(r.status);
    ASSERT_EQ_U64(r.version, 3);
    ASSERT_EQ_U64(r.applied_index, 4);
    ASSERT_OK(aegis__kv_get(&f.kv, "a", 1, &direct, &version));
    ASSERT_TRUE(direct == r.value);
    ASSERT_EQ_U64(version, 3);
    ASSERT_EQ_U64(direct->refs, 3); /* Store, result, direct. */
    aegis__buf_unref(direct);
    aegis__kv_result_release(&r);
    aegis__kv_result_release(&r); /* Idempotent. */
    ASSERT_EQ_U64(aegis__kv_applied_index(&f.kv), 4);
    ASSERT_EQ_U64(aegis__kv_count(&f.kv), 2);
    /* Absent keys. */
    ASSERT_ERR(aegis__kv_get(&f.kv, "zz", 2, NULL, NULL), AEGIS_ENOTFOUND);
    ASSERT_OK(run(&f, enc_get("zz"), &r));
    ASSERT_ERR(r.status, AEGIS_ENOTFOUND);
    ASSERT_TRUE(r.value == NULL);
    ASSERT_EQ_U64(r.applied_index, 5);
    /* Empty key and empty value are ordinary. */
    ASSERT_OK(run_status(&f, enc_set("", "")));
    ASSERT_TRUE(holds(&f.kv, "", ""));
    aegis__kv_close(&f.kv);
    return TEST_PASS;
}

TEST(kv, delete_counts_existing_keys)
{
    struct aegis_kv_bytes keys[4] = {B("a"), B("missing"), B("c"), B("a")};
    struct fixture f;
    struct aegis_kv_result r;
    struct aegis_buf *cmd;

    ASSERT_OK(fixture_init(&f, NULL, 2));
    ASSERT_OK(run_status(&f, enc_set("a", "1")));
    ASSERT_OK(run_status(&f, enc_set("b", "2")));
    ASSERT_OK(run_status(&f, enc_set("c", "3")));
    ASSERT_OK(aegis__kv_encode_delete(NULL, keys, 4, &cmd));
    ASSERT_OK(run(&f, cmd, &r));
    ASSERT_OK(r.status);
    ASSERT_EQ_U64(r.count, 2); /* "a" counted once, "missing" not at all. */
    ASSERT_EQ_U64(aegis__kv_count(&f.kv), 1);
    ASSERT_TRUE(holds(&f.kv, "b", "2"));
    ASSERT_ERR(aegis__kv_get(&f.kv, "a", 1, NULL, NULL), AEGIS_ENOTFOUND);
    ASSERT_OK(aegis__kv_encode_delete(NULL, keys, 1, &cmd));
    ASSERT_OK(run(&f, cmd, &r));
    ASSERT_OK(r.status);
    ASSERT_EQ_U64(r.count, 0);
    aegis__kv_close(&f.kv);
    return TEST_PASS;
}

TEST(kv, mset_writes_every_pair)
{
    struct aegis_kv_bytes keys[3] = {B("x"), B("y"), B("x")};
    struct aegis_kv_bytes vals[3] = {B("1"), B("2"), B("3")};
    struct fixture f;
    struct aegis_kv_result r;
    struct aegis_buf *cmd;

    ASSERT_OK(fixture_init(&f, NULL, 3));
    ASSERT_OK(run_status(&f, enc_set("y", "old")));
    ASSERT_OK(aegis__kv_encode_mset(NULL, keys, vals, 3, &cmd));
    ASSERT_OK(run(&f, cmd, &r));
    ASSERT_OK(r.status);
    ASSERT_EQ_U64(r.count, 3);
    ASSERT_TRUE(holds(&f.kv, "x", "3")); /* Later pairs win. */
    ASSERT_TRUE(holds(&f.kv, "y", "2"));
    ASSERT_EQ_U64(version_of(&f.kv, "x"), 2);
    ASSERT_EQ_U64(version_of(&f.kv, "y"), 2);
    ASSERT_EQ_U64(aegis__kv_count(&f.kv), 2);
    aegis__kv_close(&f.kv);
    return TEST_PASS;
}

TEST(kv, increment_absent_existing_and_negative)
{
    struct fixture f;
    struct aegis_kv_result r;

    ASSERT_OK(fixture_init(&f, NULL, 4));
    ASSERT_OK(run(&f, enc_incr("n", 1), &r));
    ASSERT_OK(r.status);
    ASSERT_EQ_I64(r.integer, 1);
    ASSERT_TRUE(r.value != NULL && r.value->len == 1 && r.value->data[0] == '1');
    ASSERT_EQ_U64(r.version, 1);
    aegis__kv_result_release(&r);
    ASSERT_OK(run(&f, enc_incr("n", -11), &r));
    ASSERT_EQ_I64(r.integer, -10);
    aegis__kv_result_release(&r);
    ASSERT_TRUE(holds(&f.kv, "n", "-10"));
    ASSERT_EQ_U64(version_of(&f.kv, "n"), 2);
    ASSERT_OK(run_status(&f, enc_set("m", "-9223372036854775807")));
    ASSERT_OK(run(&f, enc_incr("m", -1), &r));
    ASSERT_EQ_I64(r.integer, INT64_MIN);
    aegis__kv_result_release(&r);
    ASSERT_TRUE(holds(&f.kv, "m", "-9223372036854775808"));
    ASSERT_OK(run_status(&f, enc_set("z", "0")));
    ASSERT_OK(run(&f, enc_incr("z", INT64_MAX), &r));
    ASSERT_EQ_I64(r.integer, INT64_MAX);
    aegis__kv_result_release(&r);
    ASSERT_TRUE(holds(&f.kv, "z", "9223372036854775807"));
    aegis__kv_close(&f.kv);
    return TEST_PASS;
}

TEST(kv, increment_errors_change_nothing)
{
    static const char *not_integers[] = {
        "abc", "", " 1", "1 ", "+1", "01", "-0", "-", "1.5", "0x10", "--1", "1a",
        "9223372036854775808", "-9223372036854775809", "99999999999999999999",
        "123456789012345678901",
    };
    struct fixture f;
    struct aegis_kv_result r;

    ASSERT_OK(fixture_init(&f, NULL, 5));
    for (size_t i = 0; i < sizeof(not_integers) / sizeof(not_integers[0]); i++) {
        aegis_index before;

        ASSERT_OK(run_status(&f, enc_set("k", not_integers[i])));
        before = version_of(&f.kv, "k");
        ASSERT_OK(run(&f, enc_incr("k", 1), &r));
        if (r.status != AEGIS_ETYPE) {
            FAIL("INCR of \"%s\" gave %d", not_integers[i], r.status);
        }
        ASSERT_TRUE(r.value == NULL);
        ASSERT_EQ_U64(r.applied_index, f.next - 1); /* The entry is consumed. */
        ASSERT_TRUE(holds(&f.kv, "k", not_integers[i]));
        ASSERT_EQ_U64(version_of(&f.kv, "k"), before);
    }
    ASSERT_OK(run_status(&f, enc_set("k", "9223372036854775807")));
    ASSERT_ERR(run_status(&f, enc_incr("k", 1)), AEGIS_EOVERFLOW);
    ASSERT_TRUE(holds(&f.kv, "k", "9223372036854775807"));
    ASSERT_OK(run_status(&f, enc_set("k", "-9223372036854775808")));
    ASSERT_ERR(run_status(&f, enc_incr("k", -1)), AEGIS_EOVERFLOW);
    ASSERT_ERR(run_status(&f, enc_incr("k", INT64_MIN)), AEGIS_EOVERFLOW);
    ASSERT_TRUE(holds(&f.kv, "k", "-9223372036854775808"));
    ASSERT_EQ_U64(version_of(&f.kv, "k"), f.next - 3);
    aegis__kv_close(&f.kv);
    return TEST_PASS;
}

TEST(kv, compare_and_swap)
{
    struct fixture f;
    struct aegis_kv_result r;

    ASSERT_OK(fixture_init(&f, NULL, 6));
    /* Absent key: only an absent expectation matches. */
    ASSERT_OK(run(&f, enc_cas("k", "", "v1"), &r));
    ASSERT_ERR(r.status, AEGIS_ECASMISMATCH);
    ASSERT_FALSE(r.swapped);
    ASSERT_TRUE(r.value == NULL);
    ASSERT_EQ_U64(r.version, 0);
    ASSERT_ERR(aegis__kv_get(&f.kv, "k", 1, NULL, NULL), AEGIS_ENOTFOUND);
    ASSERT_OK(run(&f, enc_cas("k", NULL, "v1"), &r));
    ASSERT_OK(r.status);
    ASSERT_TRUE(r.swapped);
    ASSERT_EQ_U64(r.version, 2);
    ASSERT_TRUE(holds(&f.kv, "k", "v1"));
    /* Present key: an absent expectation, a prefix and a longer value all mismatch. */
    ASSERT_OK(run(&f, enc_cas("k", NULL, "v2"), &r));
    ASSERT_ERR(r.status, AEGIS_ECASMISMATCH);
    ASSERT_TRUE(r.value != NULL && r.value->len == 2 && memcmp(r.value->data, "v1", 2) == 0);
    ASSERT_EQ_U64(r.version, 2);
    aegis__kv_result_release(&r);
    ASSERT_ERR(run_status(&f, enc_cas("k", "v", "v2")), AEGIS_ECASMISMATCH);
    ASSERT_ERR(run_status(&f, enc_cas("k", "v1x", "v2")), AEGIS_ECASMISMATCH);
    ASSERT_ERR(run_status(&f, enc_cas("k", "v2", "v2")), AEGIS_ECASMISMATCH);
    ASSERT_TRUE(holds(&f.kv, "k", "v1"));
    ASSERT_EQ_U64(version_of(&f.kv, "k"), 2);
    /* The whole value matches. */
    ASSERT_OK(run(&f, enc_cas("k", "v1", "v2"), &r));
    ASSERT_OK(r.status);
    ASSERT_TRUE(r.swapped);
    ASSERT_TRUE(holds(&f.kv, "k", "v2"));
    ASSERT_EQ_U64(version_of(&f.kv, "k"), f.next - 1);
    /* An empty value is present, not absent. */
    ASSERT_OK(run_status(&f, enc_set("e", "")));
    ASSERT_ERR(run_status(&f, enc_cas("e", NULL, "x")), AEGIS_ECASMISMATCH);
    ASSERT_OK(run_status(&f, enc_cas("e", "", "x")));
    ASSERT_TRUE(holds(&f.kv, "e", "x"));
    aegis__kv_close(&f.kv);
    return TEST_PASS;
}

TEST(kv, apply_refuses_out_of_order_and_duplicates)
{
    struct fixture f;
    struct aegis_kv_result r;
    struct aegis_buf *cmd = enc_set("a", "1");

    ASSERT_OK(fixture_init(&f, NULL, 7));
    ASSERT_ERR(aegis__kv_apply(&f.kv, 2, 1, AEGIS_ENTRY_COMMAND, cmd->data, cmd->len, &r),
               AEGIS_EORDER);
    ASSERT_ERR(r.status, AEGIS_EORDER);
    ASSERT_EQ_U64(r.applied_index, 0);
    ASSERT_ERR(aegis__kv_apply(&f.kv, 0, 1, AEGIS_ENTRY_COMMAND, cmd->data, cmd->len, &r),
               AEGIS_EORDER);
    ASSERT_EQ_U64(aegis__kv_count(&f.kv), 0);
    ASSERT_OK(aegis__kv_apply(&f.kv, 1, 2, AEGIS_ENTRY_COMMAND, cmd->data, cmd->len, &r));
    /* Twice: refused, and the key keeps its version. */
    ASSERT_ERR(aegis__kv_apply(&f.kv, 1, 2, AEGIS_ENTRY_COMMAND, cmd->data, cmd->len, &r),
               AEGIS_EORDER);
    ASSERT_EQ_U64(r.applied_index, 1);
    /* A lower term than the last applied one is out of order too. */
    ASSERT_ERR(aegis__kv_apply(&f.kv, 2, 1, AEGIS_ENTRY_COMMAND, cmd->data, cmd->len, &r),
               AEGIS_EORDER);
    ASSERT_EQ_U64(aegis__kv_applied_index(&f.kv), 1);
    ASSERT_EQ_U64(aegis__kv_applied_term(&f.kv), 2);
    ASSERT_EQ_U64(version_of(&f.kv, "a"), 1);
    /* NoOp and ConfigChange advance the index only. */
    ASSERT_OK(aegis__kv_apply(&f.kv, 2, 3, AEGIS_ENTRY_NOOP, NULL, 0, &r));
    ASSERT_OK(r.status);
    ASSERT_OK(aegis__kv_apply(&f.kv, 3, 3, AEGIS_ENTRY_CONFIG_CHANGE, cmd->data, cmd->len, &r));
    ASSERT_OK(r.status);
    ASSERT_EQ_U64(aegis__kv_applied_index(&f.kv), 3);
    ASSERT_EQ_U64(aegis__kv_applied_term(&f.kv), 3);
    ASSERT_EQ_U64(version_of(&f.kv, "a"), 1);
    /* Corrupt payloads and unknown entry types are consumed with ECORRUPT. */
    ASSERT_OK(aegis__kv_apply(&f.kv, 4, 3, AEGIS_ENTRY_COMMAND, NULL, 0, &r));
    ASSERT_ERR(r.status, AEGIS_ECORRUPT);
    ASSERT_OK(aegis__kv_apply(&f.kv, 5, 3, AEGIS_ENTRY_COMMAND, cmd->data, cmd->len - 1, &r));
    ASSERT_ERR(r.status, AEGIS_ECORRUPT);
    ASSERT_OK(aegis__kv_apply(&f.kv, 6, 3, 99, cmd->data, cmd->len, &r));
    ASSERT_ERR(r.status, AEGIS_ECORRUPT);
    ASSERT_EQ_U64(r.applied_index, 6);
    ASSERT_EQ_U64(aegis__kv_count(&f.kv), 1);
    aegis__buf_unref(cmd);
    aegis__kv_close(&f.kv);
    return TEST_PASS;
}

TEST(kv, apply_entry_borrows_the_buffer)
{
    struct aegis_kv kv;
    struct aegis_kv_result r;
    struct aegis_entry e = {.index = 1, .term = 1, .type = AEGIS_ENTRY_COMMAND};

    ASSERT_OK(aegis__kv_init(&kv, NULL, 8));
    e.buf = enc_set("k", "v");
    ASSERT_OK(aegis__kv_apply_entry(&kv, &e, &r));
    ASSERT_OK(r.status);
    ASSERT_EQ_U64(e.buf->refs, 1);
    aegis__entry_unref(&e);
    ASSERT_TRUE(holds(&kv, "k", "v"));
    aegis__kv_close(&kv);
    return TEST_PASS;
}

/* A custom handler: "put" stores args under key "custom" and returns the count of keys;
 * "del" deletes "custom"; "fail" returns ETYPE after reading. */
static int custom_handler(struct aegis_kv *kv, aegis_index index, struct aegis_kv_bytes name,
                          struct aegis_kv_bytes args, struct aegis_kv_result *result,
                          void *data)
{
    int *calls = data;
    aegis_index version = 0;
    int rv;

    (*calls)++;
    if (name.len == 3 && memcmp(name.data, "put", 3) == 0) {
        rv = aegis__kv_custom_put(kv, "custom", 6, args.data, args.len);
        if (rv != 0) {
            return rv;
        }
        if (aegis__kv_get(kv, "custom", 6, &result->value, &version) != 0 || version != index) {
            return AEGIS_EINTERNAL;
        }
        result->count = aegis__kv_count(kv);
        return 0;
    }
    if (name.len == 3 && memcmp(name.data, "del", 3) == 0) {
        return aegis__kv_custom_delete(kv, "custom", 6);
    }
    return AEGIS_ETYPE;
}

TEST(kv, custom_with_and_without_handler)
{
    struct fixture f;
    struct aegis_kv_result r;
    struct aegis_buf *cmd;
    int calls = 0;

    ASSERT_OK(fixture_init(&f, NULL, 9));
    ASSERT_OK(aegis__kv_encode_custom(NULL, "put", 3, "hello", 5, &cmd));
    ASSERT_ERR(run_status(&f, aegis__buf_ref(cmd)), AEGIS_ENOHANDLER);
    ASSERT_EQ_U64(aegis__kv_applied_index(&f.kv), 1);
    ASSERT_EQ_U64(aegis__kv_count(&f.kv), 0);
    aegis__kv_set_custom_handler(&f.kv, custom_handler, &calls);
    ASSERT_OK(run(&f, cmd, &r));
    ASSERT_OK(r.status);
    ASSERT_EQ_U64(calls, 1);
    ASSERT_EQ_U64(r.count, 1);
    ASSERT_TRUE(r.value != NULL && r.value->len == 5);
    aegis__kv_result_release(&r);
    ASSERT_TRUE(holds(&f.kv, "custom", "hello"));
    ASSERT_EQ_U64(version_of(&f.kv, "custom"), 2);
    ASSERT_OK(aegis__kv_encode_custom(NULL, "other", 5, NULL, 0, &cmd));
    ASSERT_ERR(run_status(&f, cmd), AEGIS_ETYPE);
    ASSERT_OK(aegis__kv_encode_custom(NULL, "del", 3, NULL, 0, &cmd));
    ASSERT_OK(run_status(&f, aegis__buf_ref(cmd)));
    ASSERT_ERR(run_status(&f, cmd), AEGIS_ENOTFOUND);
    ASSERT_EQ_U64(aegis__kv_count(&f.kv), 0);
    ASSERT_EQ_U64(calls, 4);
    aegis__kv_set_custom_handler(&f.kv, NULL, NULL);
    ASSERT_OK(aegis__kv_encode_custom(NULL, "put", 3, "x", 1, &cmd));
    ASSERT_ERR(run_status(&f, cmd), AEGIS_ENOHANDLER);
    aegis__kv_close(&f.kv);
    return TEST_PASS;
}

/* A model for randomized tests: key i is "key<i>", present when versions[i] != 0. */
#define MODEL_KEYS 4000

struct model {
    int64_t values[MODEL_KEYS];
    aegis_index versions[MODEL_KEYS];
};

static void key_name(char *out, size_t i)
{
    /* Keys of varied lengths so that the tail path of the hash is exercised. */
    static const char pad[] = "pppppppppppppppp";
    size_t n = i % 13;
    char digits[24];
    size_t d = sizeof(digits);

    digits[--d] = '\0';
    do {
        digits[--d] = (char)('0' + i % 10);
        i /= 10;
    } while (i != 0);
    memcpy(out, "key", 3);
    memcpy(out + 3, pad, n);
    strcpy(out + 3 + n, digits + d);
}

static bool model_matches(const struct model *m, const struct aegis_kv *kv)
{
    size_t present = 0;
    char key[64], text[32];

    for (size_t i = 0; i < MODEL_KEYS; i++) {
        key_name(key, i);
        if (m->versions[i] == 0) {
            if (aegis__kv_get(kv, key, strlen(key), NULL, NULL) != AEGIS_ENOTFOUND) {
                return false;
            }
            continue;
        }
        present++;
        snprintf(text, sizeof(text), "%" PRId64, m->values[i]);
        if (!holds(kv, key, text) || version_of(kv, key) != m->versions[i]) {
            return false;
        }
    }
    return present == aegis__kv_count(kv);
}

TEST(kv, table_growth_and_deletion_against_model)
{
    static struct model m;
    struct fixture f;
    struct aegis_rng rng;
    char key[64], text[32];

    memset(&m, 0, sizeof(m));
    aegis__rng_seed(&rng, test_seed());
    ASSERT_OK(fixture_init(&f, NULL, test_seed()));
    /* Thousands of keys: the table grows from 16 slots through many doublings. */
    for (size_t i = 0; i < MODEL_KEYS; i++) {
        key_name(key, i);
        snprintf(text, sizeof(text), "%zu", i);
        ASSERT_OK(run_status(&f, enc_set(key, text)));
        m.values[i] = (int64_t)i;
        m.versions[i] = f.next - 1;
    }
    ASSERT_TRUE(model_matches(&m, &f.kv));
    /* Random sets, deletes and increments; deletes shift runs back. */
    for (int op = 0; op < 30000; op++) {
        size_t i = aegis__rng_range(&rng, 0, MODEL_KEYS - 1);
        uint64_t kind = aegis__rng_range(&rng, 0, 2);
        struct aegis_kv_bytes k;
        struct aegis_buf *cmd;

        key_name(key, i);
        if (kind == 0) {
            int64_t v = (int64_t)aegis__rng_range(&rng, 0, 2000000) - 1000000;

            snprintf(text, sizeof(text), "%" PRId64, v);
            ASSERT_OK(run_status(&f, enc_set(key, text)));
            m.values[i] = v;
            m.versions[i] = f.next - 1;
        } else if (kind == 1) {
            k.data = (const uint8_t *)key;
            k.len = strlen(key);
            ASSERT_OK(aegis__kv_encode_delete(NULL, &k, 1, &cmd));
            ASSERT_OK(run_status(&f, cmd));
            m.versions[i] = 0;
        } else {
            ASSERT_OK(run_status(&f, enc_incr(key, 7)));
            m.values[i] = (m.versions[i] != 0 ? m.values[i] : 0) + 7;
            m.versions[i] = f.next - 1;
        }
    }
    ASSERT_TRUE(model_matches(&m, &f.kv));
    aegis__kv_close(&f.kv);
    return TEST_PASS;
}

/* Fill @f with @count keys of varied shapes: empty key, empty and binary values. */
static int fill(struct fixture *f, size_t count)
{
    char key[64], text[64];

    if (run_status(f, enc_set("", "empty key")) != 0) {
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        key_name(key, i);
        snprintf(text, sizeof(text), "v%zu%s", i * 7919, i % 5 == 0 ? "" : "-tail");
        if (run_status(f, enc_set(key, i % 17 == 0 ? "" : text)) != 0) {
            return -1;
        }
    }
    f->term++;
    return run_status(f, enc_incr("counter", 42));
}

TEST(kv_snapshot, round_trip_many_keys)
{
    struct fixture a, b;
    struct aegis_buf *snap, *again;
    struct aegis_kv_result r;

    ASSERT_OK(fixture_init(&a, NULL, 11));
    ASSERT_OK(fixture_init(&b, NULL, 12345)); /* Another hash seed: another slot order. */
    ASSERT_OK(fill(&a, 5000));
    ASSERT_OK(aegis__kv_snapshot(&a.kv, &snap));
    ASSERT_OK(run_status(&b, enc_set("stale", "gone after restore")));
    ASSERT_OK(aegis__kv_restore(&b.kv, snap->data, snap->len));
    ASSERT_TRUE(aegis__kv_equal(&a.kv, &b.kv));
    ASSERT_EQ_U64(aegis__kv_applied_index(&b.kv), a.next - 1);
    ASSERT_EQ_U64(aegis__kv_applied_term(&b.kv), 2);
    ASSERT_ERR(aegis__kv_get(&b.kv, "stale", 5, NULL, NULL), AEGIS_ENOTFOUND);
    /* Records come in table order (so the bytes differ across seeds), but the length and
     * the state they describe do not. */
    ASSERT_OK(aegis__kv_snapshot(&b.kv, &again));
    ASSERT_EQ_U64(again->len, snap->len);
    ASSERT_OK(aegis__kv_restore(&a.kv, again->data, again->len));
    ASSERT_TRUE(aegis__kv_equal(&a.kv, &b.kv));
    /* The restored machine continues at the next index and refuses older ones. */
    ASSERT_ERR(aegis__kv_apply(&b.kv, a.next - 1, 2, AEGIS_ENTRY_NOOP, NULL, 0, &r),
               AEGIS_EORDER);
    ASSERT_OK(aegis__kv_apply(&b.kv, a.next, 2, AEGIS_ENTRY_NOOP, NULL, 0, &r));
    ASSERT_FALSE(aegis__kv_equal(&a.kv, &b.kv));
    aegis__buf_unref(again);
    aegis__buf_unref(snap);
    aegis__kv_close(&a.kv);
    aegis__kv_close(&b.kv);
    return TEST_PASS;
}

/* A view read in odd-sized chunks while the store keeps changing yields the state at the
 * index it was opened at; a load fed in other chunks restores exactly that state. */
TEST(kv_snapshot, stream_is_point_in_time_and_loads_in_chunks)
{
    struct fixture a, b, at_open;
    struct aegis_kv_snap *view;
    struct aegis_kv_load *load;
    uint8_t *bytes;
    size_t len = 0, n;
    uint64_t size;
    aegis_index index;

    ASSERT_OK(fixture_init(&a, NULL, 11));
    ASSERT_OK(fixture_init(&b, NULL, 99));
    ASSERT_OK(fixture_init(&at_open, NULL, 7));
    ASSERT_OK(fill(&a, 3000));
    ASSERT_OK(aegis__kv_snap_open(&a.kv, &view));
    ASSERT_ERR(aegis__kv_snap_open(&a.kv, &view), AEGIS_EBUSY);
    ASSERT_EQ_U64(aegis__kv_snap_index(view), a.next - 1);
    index = aegis__kv_snap_index(view);
    size = aegis__kv_snap_size(view);
    bytes = malloc((size_t)size);
    ASSERT_TRUE(bytes != NULL);
    for (int round = 0;; round++) {
        ASSERT_OK(aegis__kv_snap_read(view, bytes + len, (size_t)(7 + round % 4093), &n));
        if (n == 0) {
            break;
        }
        len += n;
        ASSERT_TRUE(len <= size);
        /* The store changes between reads: overwrite and delete keys already written. */
        if (round % 3 == 0) {
            ASSERT_OK(run_status(&a, enc_set("key-17", "changed after the view")));
            ASSERT_OK(run_status(&a, enc_set("new-key", "not in the view")));
        }
    }
    ASSERT_EQ_U64(len, size);
    aegis__kv_snap_close(view);
    ASSERT_OK(aegis__kv_snap_open(&a.kv, &view)); /* Closed: another may open. */
    aegis__kv_snap_close(view);
    ASSERT_OK(aegis__kv_restore(&at_open.kv, bytes, len));
    ASSERT_EQ_U64(aegis__kv_applied_index(&at_open.kv), index);
    ASSERT_ERR(aegis__kv_get(&at_open.kv, "new-key", 7, NULL, NULL), AEGIS_ENOTFOUND);
    ASSERT_OK(aegis__kv_load_open(&b.kv, &load));
    for (size_t off = 0; off < len; off += n) {
        n = len - off < 1000 ? len - off : 1000;
        ASSERT_OK(aegis__kv_load_feed(load, bytes + off, n));
    }
    ASSERT_OK(aegis__kv_load_finish(load, &b.kv));
    ASSERT_TRUE(aegis__kv_equal(&b.kv, &at_open.kv));
    /* A truncated stream is refused and changes nothing. */
    ASSERT_OK(aegis__kv_load_open(&b.kv, &load));
    ASSERT_OK(aegis__kv_load_feed(load, bytes, len - 1));
    ASSERT_ERR(aegis__kv_load_finish(load, &b.kv), AEGIS_ECORRUPT);
    ASSERT_TRUE(aegis__kv_equal(&b.kv, &at_open.kv));
    free(bytes);
    aegis__kv_close(&a.kv);
    aegis__kv_close(&b.kv);
    aegis__kv_close(&at_open.kv);
    return TEST_PASS;
}

/* A target machine and a twin built identically, to check a failed restore changed
 * nothing. */
static int target_pair(struct fixture *t, struct fixture *twin)
{
    if (fixture_init(t, NULL, 21) != 0 || fixture_init(twin, NULL, 21) != 0) {
        return -1;
    }
    if (run_status(t, enc_set("mine", "1")) != 0 || run_status(twin, enc_set("mine", "1"))) {
        return -1;
    }
    return 0;
}

/* Custom handler of the view tests: "put" writes args = "77", "del" deletes args. */
static int view_custom(struct aegis_kv *kv, aegis_index index, struct aegis_kv_bytes name,
                       struct aegis_kv_bytes args, struct aegis_kv_result *result, void *data)
{
    (void)index;
    (void)result;
    (void)data;
    if (name.len == 3 && memcmp(name.data, "put", 3) == 0) {
        return aegis__kv_custom_put(kv, args.data, args.len, "77", 2);
    }
    return aegis__kv_custom_delete(kv, args.data, args.len);
}

/* One random write to key @i (and @j) of @f, mirrored in @m. Every kind of write the
 * store has: SET, DELETE of one or two keys, INCREMENT, MSET, CAS, custom put and delete. */
static int random_write(struct fixture *f, struct model *m, struct aegis_rng *rng, size_t i,
                        size_t j)
{
    char key[64], key2[64], text[32];
    struct aegis_kv_bytes k[2], v[2];
    struct aegis_buf *cmd = NULL;
    int64_t x = (int64_t)aegis__rng_range(rng, 0, 2000000) - 1000000;
    int rv = 0;

    key_name(key, i);
    key_name(key2, j);
    k[0] = (struct aegis_kv_bytes){(const uint8_t *)key, strlen(key)};
    k[1] = (struct aegis_kv_bytes){(const uint8_t *)key2, strlen(key2)};
    snprintf(text, sizeof(text), "%" PRId64, x);
    switch (aegis__rng_range(rng, 0, 6)) {
    case 0:
        rv = run_status(f, enc_set(key, text));
        m->values[i] = x;
        m->versions[i] = f->next - 1;
        break;
    case 1:
        rv = aegis__kv_encode_delete(NULL, k, 2, &cmd) != 0 ? -1 : run_status(f, cmd);
        m->versions[i] = m->versions[j] = 0;
        break;
    case 2:
        rv = run_status(f, enc_incr(key, 3));
        m->values[i] = (m->versions[i] != 0 ? m->values[i] : 0) + 3;
        m->versions[i] = f->next - 1;
        break;
    case 3:
        v[0] = v[1] = (struct aegis_kv_bytes){(const uint8_t *)text, strlen(text)};
        rv = aegis__kv_encode_mset(NULL, k, v, 2, &cmd) != 0 ? -1 : run_status(f, cmd);
        m->values[i] = m->values[j] = x;
        m->versions[i] = m->versions[j] = f->next - 1;
        break;
    case 4: /* CAS on the current value (swaps) or on a wrong one (changes nothing). */
        if (m->versions[i] != 0) {
            char cur[32];

            snprintf(cur, sizeof(cur), "%" PRId64, m->values[i]);
            rv = run_status(f, enc_cas(key, cur, text));
            m->values[i] = x;
            m->versions[i] = f->next - 1;
        } else {
            rv = run_status(f, enc_cas(key, "nope", text)) == AEGIS_ECASMISMATCH ? 0 : -1;
        }
        break;
    case 5:
        rv = aegis__kv_encode_custom(NULL, "put", 3, key, strlen(key), &cmd) != 0
                 ? -1
                 : run_status(f, cmd);
        m->values[i] = 77;
        m->versions[i] = f->next - 1;
        break;
    default:
        rv = aegis__kv_encode_custom(NULL, "del", 3, key, strlen(key), &cmd) != 0
                 ? -1
                 : run_status(f, cmd);
        if (rv == AEGIS_ENOTFOUND && m->versions[i] == 0) {
            rv = 0;
        }
        m->versions[i] = 0;
        break;
    }
    return rv;
}

/* Read @view to the end in random chunk sizes, running up to @writes_max random writes
 * (keys below @keys) between reads; the bytes go to *@bytes_out (malloc'd). With
 * @restore_at > 0, the store is replaced by an empty restore after that many reads. */
static int read_while_writing(struct fixture *f, struct model *m, struct aegis_rng *rng,
                              struct aegis_kv_snap *view, size_t keys, uint64_t writes_max,
                              int restore_at, uint8_t **bytes_out, size_t *len_out)
{
    uint64_t size = aegis__kv_snap_size(view);
    uint8_t *bytes = malloc((size_t)size + 1);
    size_t len = 0, n;
    bool writing = true;

    for (int round = 1;; round++) {
        size_t cap = aegis__rng_range(rng, 0, 3) == 0 ? 1 : aegis__rng_range(rng, 1, 3000);

        if (len + cap > size + 1) {
            cap = (size_t)(size + 1 - len);
        }
        if (aegis__kv_snap_read(view, bytes + len, cap, &n) != 0) {
            free(bytes);
            return -1;
        }
        if (n == 0) {
            break;
        }
        len += n;
        if (round == restore_at) {
            struct aegis_kv empty;
            struct aegis_buf *snap;

            if (aegis__kv_init(&empty, NULL, 1) != 0 || aegis__kv_snapshot(&empty, &snap) != 0 ||
                aegis__kv_restore(&f->kv, snap->data, snap->len) != 0) {
                return -1;
            }
            aegis__buf_unref(snap);
            aegis__kv_close(&empty);
            writing = false; /* The model no longer describes the store. */
        }
        for (uint64_t w = aegis__rng_range(rng, 0, writes_max); writing && w > 0; w--) {
            size_t i = aegis__rng_range(rng, 0, keys - 1), j = aegis__rng_range(rng, 0, keys - 1);

            if (random_write(f, m, rng, i, j) != 0) {
                free(bytes);
                return -1;
            }
        }
    }
    *bytes_out = bytes;
    *len_out = len;
    return len == size ? 0 : -1;
}

/* Feed @len bytes to a load of @kv in random chunks and finish it. */
static int load_in_chunks(struct aegis_kv *kv, struct aegis_rng *rng, const uint8_t *bytes,
                          size_t len)
{
    struct aegis_kv_load *load;
    int rv;

    rv = aegis__kv_load_open(kv, &load);
    if (rv != 0) {
        return rv;
    }
    for (size_t off = 0, n; off < len; off += n) {
        n = (size_t)aegis__rng_range(rng, 1, 5000);
        n = n < len - off ? n : len - off;
        rv = aegis__kv_load_feed(load, bytes + off, n);
        if (rv != 0) {
            aegis__kv_load_abort(load);
            return rv;
        }
    }
    return aegis__kv_load_finish(load, kv);
}

/* A view opened on a store, then read in random chunk sizes while random writes of every
 * kind (including inserts that grow the table through several doublings, deletes that
 * shift runs back, and a restore that replaces the whole table) run between the reads,
 * yields exactly the state at its index: checked against a model copied at open. Rounds
 * cover large tables, and tiny ones whose clusters wrap around the end. */
TEST(kv_snapshot, view_is_point_in_time_under_random_writes)
{
    static struct model m, at_open;
    struct fault_heap heap = {0, -1, 0};
    struct aegis_allocator a = {fault_malloc, fault_realloc, fault_free, &heap};
    struct aegis_rng rng;
    static const struct {
        size_t keys, prefill;
        uint64_t writes_max;
        int restore_at;
    } rounds[] = {
        {4000, 300, 40, 0},   /* Grows 512 -> 8192 slots while the view is open. */
        {4000, 4000, 20, 0},  /* Full store: overwrites and deletes. */
        {4000, 2000, 30, 25}, /* Replaced by a restore while the view is open. */
        {12, 12, 3, 0},       /* 16/32 slots: clusters wrap around the end. */
        {12, 5, 4, 0},        {3, 3, 2, 0},  {40, 0, 5, 0},
    };

    aegis__rng_seed(&rng, test_seed());
    for (size_t r = 0; r < sizeof(rounds) / sizeof(rounds[0]); r++) {
        for (int rep = 0; rep < (rounds[r].keys < 100 ? 60 : 2); rep++) {
            struct fixture f, back;
            struct aegis_kv_snap *view;
            uint8_t *bytes;
            size_t len;
            aegis_index index;

            memset(&m, 0, sizeof(m));
            ASSERT_OK(fixture_init(&f, &a, aegis__rng_next(&rng)));
            aegis__kv_set_custom_handler(&f.kv, view_custom, NULL);
            for (size_t i = 0; i < rounds[r].prefill; i++) {
                ASSERT_OK(random_write(&f, &m, &rng, i, i));
            }
            at_open = m;
            ASSERT_OK(aegis__kv_snap_open(&f.kv, &view));
            index = aegis__kv_snap_index(view);
            ASSERT_EQ_U64(index, f.next - 1);
            ASSERT_OK(read_while_writing(&f, &m, &rng, view, rounds[r].keys,
                                         rounds[r].writes_max, rounds[r].restore_at, &bytes,
                                         &len));
            aegis__kv_snap_close(view);
            if (rounds[r].restore_at == 0) {
                ASSERT_TRUE(model_matches(&m, &f.kv)); /* The writes happened. */
            }
            ASSERT_OK(fixture_init(&back, &a, aegis__rng_next(&rng)));
            ASSERT_OK(load_in_chunks(&back.kv, &rng, bytes, len));
            ASSERT_EQ_U64(aegis__kv_applied_index(&back.kv), index);
            ASSERT_TRUE(model_matches(&at_open, &back.kv));
            free(bytes);
            aegis__kv_close(&f.kv);
            aegis__kv_close(&back.kv);
        }
    }
    ASSERT_EQ_I64(heap.live, 0); /* Side list, pending batch and old items all freed. */
    return TEST_PASS;
}

/* A load fed in two pieces split at every point (and one byte at a time) restores the
 * same state; cut short at every point it is refused and changes nothing. */
TEST(kv_snapshot, load_split_at_every_point)
{
    struct fixture src, t, twin;
    struct aegis_buf *snap;
    struct aegis_kv_load *load;

    ASSERT_OK(fixture_init(&src, NULL, 60));
    ASSERT_OK(fill(&src, 20));
    ASSERT_OK(aegis__kv_snapshot(&src.kv, &snap));
    ASSERT_OK(target_pair(&t, &twin));
    for (size_t split = 0; split <= snap->len; split++) {
        ASSERT_OK(aegis__kv_load_open(&t.kv, &load));
        ASSERT_OK(aegis__kv_load_feed(load, snap->data, split));
        ASSERT_OK(aegis__kv_load_feed(load, snap->data + split, snap->len - split));
        ASSERT_OK(aegis__kv_load_finish(load, &t.kv));
        ASSERT_TRUE(aegis__kv_equal(&t.kv, &src.kv));
        /* Truncated at @split: refused, the store as it was. */
        ASSERT_OK(aegis__kv_load_open(&t.kv, &load));
        ASSERT_OK(aegis__kv_load_feed(load, snap->data, split == snap->len ? 0 : split));
        if (split < snap->len) {
            ASSERT_ERR(aegis__kv_load_finish(load, &t.kv), AEGIS_ECORRUPT);
        } else {
            aegis__kv_load_abort(load);
        }
        ASSERT_TRUE(aegis__kv_equal(&t.kv, &src.kv));
    }
    ASSERT_OK(aegis__kv_load_open(&twin.kv, &load));
    for (size_t i = 0; i < snap->len; i++) {
        ASSERT_OK(aegis__kv_load_feed(load, snap->data + i, 1));
    }
    ASSERT_OK(aegis__kv_load_feed(load, NULL, 0));
    ASSERT_OK(aegis__kv_load_finish(load, &twin.kv));
    ASSERT_TRUE(aegis__kv_equal(&twin.kv, &src.kv));
    /* A byte past the CRC is refused at once. */
    ASSERT_OK(aegis__kv_load_open(&twin.kv, &load));
    ASSERT_OK(aegis__kv_load_feed(load, snap->data, snap->len));
    ASSERT_ERR(aegis__kv_load_feed(load, snap->data, 1), AEGIS_ECORRUPT);
    ASSERT_ERR(aegis__kv_load_feed(load, snap->data, 1), AEGIS_ECORRUPT); /* Sticky. */
    ASSERT_ERR(aegis__kv_load_finish(load, &twin.kv), AEGIS_ECORRUPT);
    ASSERT_TRUE(aegis__kv_equal(&twin.kv, &src.kv));
    aegis__buf_unref(snap);
    aegis__kv_close(&src.kv);
    aegis__kv_close(&t.kv);
    aegis__kv_close(&twin.kv);
    return TEST_PASS;
}

/* Every single bit flip of a stream fed in chunks of 7 bytes is refused, by feed or by
 * finish, and the store stays as it was. */
TEST(kv_snapshot, load_refuses_every_bit_flip)
{
    struct fixture src, t, twin;
    struct aegis_buf *snap;

    ASSERT_OK(fixture_init(&src, NULL, 61));
    ASSERT_OK(fill(&src, 10));
    ASSERT_OK(aegis__kv_snapshot(&src.kv, &snap));
    ASSERT_OK(target_pair(&t, &twin));
    for (size_t bit = 0; bit < (size_t)snap->len * 8; bit++) {
        struct aegis_kv_load *load;
        int rv = 0;

        snap->data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        ASSERT_OK(aegis__kv_load_open(&t.kv, &load));
        for (size_t off = 0; rv == 0 && off < snap->len; off += 7) {
            rv = aegis__kv_load_feed(load, snap->data + off,
                                     snap->len - off < 7 ? snap->len - off : 7);
        }
        rv = aegis__kv_load_finish(load, &t.kv);
        ASSERT_ERR(rv, AEGIS_ECORRUPT);
        snap->data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        ASSERT_TRUE(aegis__kv_equal(&t.kv, &twin.kv));
    }
    aegis__buf_unref(snap);
    aegis__kv_close(&src.kv);
    aegis__kv_close(&t.kv);
    aegis__kv_close(&twin.kv);
    return TEST_PASS;
}

/* Out of memory while a view is open: opening fails cleanly; a read that cannot take its
 * next batch returns AEGIS_ENOMEM and is retried; a write that cannot get room to keep an
 * old item for the view changes nothing (store and view); a load that runs out changes
 * nothing. Every allocation fails in turn. */
TEST(kv_snapshot, view_and_load_out_of_memory_change_nothing)
{
    static struct model m, m_twin;
    struct fault_heap heap = {0, -1, 0};
    struct aegis_allocator a = {fault_malloc, fault_realloc, fault_free, &heap};
    struct aegis_rng rng, rng_twin;
    struct fixture f, twin, back, expect;
    struct aegis_kv_snap *view;
    struct aegis_buf *at_open, *snap;
    uint8_t *bytes;
    size_t len = 0, n, enomem_writes = 0;

    aegis__rng_seed(&rng, test_seed());
    memset(&m, 0, sizeof(m));
    ASSERT_OK(fixture_init(&f, &a, 70));
    ASSERT_OK(fixture_init(&twin, NULL, 70));
    aegis__kv_set_custom_handler(&f.kv, view_custom, NULL);
    aegis__kv_set_custom_handler(&twin.kv, view_custom, NULL);
    for (size_t i = 0; i < 500; i++) {
        rng_twin = rng;
        m_twin = m;
        ASSERT_OK(random_write(&f, &m, &rng, i, i));
        ASSERT_OK(random_write(&twin, &m_twin, &rng_twin, i, i));
    }
    ASSERT_OK(aegis__kv_snapshot(&f.kv, &at_open));
    heap.fail_at = heap.calls;
    ASSERT_ERR(aegis__kv_snap_open(&f.kv, &view), AEGIS_ENOMEM);
    heap.fail_at = -1;
    ASSERT_OK(aegis__kv_snap_open(&f.kv, &view));
    bytes = malloc((size_t)aegis__kv_snap_size(view));
    ASSERT_OK(aegis__kv_snap_read(view, bytes, 32, &len)); /* The header. */
    ASSERT_EQ_U64(len, 32);
    heap.fail_at = heap.calls; /* The first batch cannot be taken: nothing is consumed. */
    ASSERT_ERR(aegis__kv_snap_read(view, bytes + len, 97, &n), AEGIS_ENOMEM);
    ASSERT_EQ_U64(n, 0);
    heap.fail_at = -1;
    while (len < aegis__kv_snap_size(view)) {
        size_t i = aegis__rng_range(&rng, 0, 999), j = aegis__rng_range(&rng, 0, 999);
        int rv;

        heap.fail_at = heap.calls + (long)aegis__rng_range(&rng, 0, 2);
        rv = aegis__kv_snap_read(view, bytes + len, 97, &n);
        heap.fail_at = -1;
        if (rv != 0) {
            ASSERT_ERR(rv, AEGIS_ENOMEM);
            ASSERT_EQ_U64(n, 0);
        }
        len += n;
        /* A write with its allocations failing in turn: applied once, as on the twin. */
        for (long k = 0;; k++) {
            struct aegis_rng saved = rng;
            struct model m_saved = m;

            heap.fail_at = heap.calls + k;
            rv = random_write(&f, &m, &rng, i, j);
            heap.fail_at = -1;
            if (rv == AEGIS_ENOMEM) {
                enomem_writes++;
                rng = saved;
                m = m_saved;
                ASSERT_TRUE(aegis__kv_equal(&f.kv, &twin.kv));
                continue;
            }
            rng_twin = saved;
            ASSERT_OK(rv);
            ASSERT_OK(random_write(&twin, &m_twin, &rng_twin, i, j));
            ASSERT_TRUE(aegis__kv_equal(&f.kv, &twin.kv));
            break;
        }
    }
    ASSERT_OK(aegis__kv_snap_read(view, bytes + len, 1, &n));
    ASSERT_EQ_U64(n, 0);
    aegis__kv_snap_close(view);
    ASSERT_TRUE(enomem_writes > 0);
    /* The stream is the state at open. */
    ASSERT_OK(fixture_init(&back, &a, 72));
    ASSERT_OK(load_in_chunks(&back.kv, &rng, bytes, len));
    ASSERT_OK(fixture_init(&expect, NULL, 73));
    ASSERT_OK(aegis__kv_restore(&expect.kv, at_open->data, at_open->len));
    ASSERT_TRUE(aegis__kv_equal(&back.kv, &expect.kv));
    /* Loading the current state with each allocation failing in turn changes nothing,
     * until it succeeds. */
    ASSERT_OK(aegis__kv_snapshot(&f.kv, &snap));
    for (long k = 0;; k++) {
        int rv;

        heap.fail_at = heap.calls + k;
        rv = load_in_chunks(&back.kv, &rng, snap->data, snap->len);
        heap.fail_at = -1;
        if (rv == 0) {
            ASSERT_TRUE(aegis__kv_equal(&back.kv, &f.kv));
            break;
        }
        ASSERT_ERR(rv, AEGIS_ENOMEM);
        ASSERT_TRUE(aegis__kv_equal(&back.kv, &expect.kv));
    }
    aegis__buf_unref(snap);
    aegis__kv_close(&expect.kv);
    free(bytes);
    aegis__buf_unref(at_open);
    aegis__kv_close(&f.kv);
    aegis__kv_close(&twin.kv);
    aegis__kv_close(&back.kv);
    ASSERT_EQ_I64(heap.live, 0);
    return TEST_PASS;
}

TEST(kv_snapshot, empty_state_layout)
{
    struct aegis_kv kv, other;
    struct aegis_buf *snap;

    ASSERT_OK(aegis__kv_init(&kv, NULL, 1));
    ASSERT_OK(aegis__kv_init(&other, NULL, 2));
    ASSERT_OK(aegis__kv_snapshot(&kv, &snap));
    ASSERT_EQ_U64(snap->len, 36);
    ASSERT_MEM_EQ(snap->data, "AKVS\x02\x00\x00\x00", 8);
    ASSERT_EQ_U64(aegis__crc32c(0, snap->data, 32),
                  (uint32_t)snap->data[32] | (uint32_t)snap->data[33] << 8 |
                      (uint32_t)snap->data[34] << 16 | (uint32_t)snap->data[35] << 24);
    ASSERT_OK(aegis__kv_restore(&other, snap->data, snap->len));
    ASSERT_TRUE(aegis__kv_equal(&kv, &other));
    aegis__buf_unref(snap);
    aegis__kv_close(&kv);
    aegis__kv_close(&other);
    return TEST_PASS;
}

TEST(kv_snapshot, truncated_at_every_length_changes_nothing)
{
    struct fixture src, t, twin;
    struct aegis_buf *snap;

    ASSERT_OK(fixture_init(&src, NULL, 20));
    ASSERT_OK(fill(&src, 12));
    ASSERT_OK(aegis__kv_snapshot(&src.kv, &snap));
    ASSERT_OK(target_pair(&t, &twin));
    for (size_t len = 0; len < snap->len; len++) {
        uint8_t *copy = malloc(len + 1);

        memcpy(copy, snap->data, len);
        ASSERT_ERR(aegis__kv_restore(&t.kv, len > 0 ? copy : NULL, len), AEGIS_ECORRUPT);
        free(copy);
        ASSERT_TRUE(aegis__kv_equal(&t.kv, &twin.kv));
    }
    ASSERT_OK(aegis__kv_restore(&t.kv, snap->data, snap->len));
    ASSERT_TRUE(aegis__kv_equal(&t.kv, &src.kv));
    aegis__buf_unref(snap);
    aegis__kv_close(&src.kv);
    aegis__kv_close(&t.kv);
    aegis__kv_close(&twin.kv);
    return TEST_PASS;
}

TEST(kv_snapshot, every_bit_flip_is_refused)
{
    struct fixture src, t, twin;
    struct aegis_buf *snap;

    ASSERT_OK(fixture_init(&src, NULL, 30));
    ASSERT_OK(fill(&src, 10));
    ASSERT_OK(aegis__kv_snapshot(&src.kv, &snap));
    ASSERT_OK(target_pair(&t, &twin));
    for (size_t bit = 0; bit < (size_t)snap->len * 8; bit++) {
        snap->data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        ASSERT_ERR(aegis__kv_restore(&t.kv, snap->data, snap->len), AEGIS_ECORRUPT);
        snap->data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        ASSERT_TRUE(aegis__kv_equal(&t.kv, &twin.kv));
    }
    aegis__buf_unref(snap);
    aegis__kv_close(&src.kv);
    aegis__kv_close(&t.kv);
    aegis__kv_close(&twin.kv);
    return TEST_PASS;
}

static void put_le(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void fix_crc(uint8_t *p, size_t len)
{
    put_le(p + len - 4, aegis__crc32c(0, p, len - 4), 4);
}

/* Snapshot bytes built by hand: header, then records of (key, value, version). */
struct hand {
    uint8_t bytes[512];
    size_t len;
};

static void hand_header(struct hand *h, uint64_t index, uint64_t term, uint64_t count)
{
    memcpy(h->bytes, "AKVS\x02\x00\x00\x00", 8);
    put_le(h->bytes + 8, index, 8);
    put_le(h->bytes + 16, term, 8);
    put_le(h->bytes + 24, count, 8);
    h->len = 32;
}

static void hand_record(struct hand *h, const char *key, const char *value, uint64_t version)
{
    put_le(h->bytes + h->len, strlen(key), 4);
    put_le(h->bytes + h->len + 4, strlen(value), 4);
    put_le(h->bytes + h->len + 8, version, 8);
    h->len += 16;
    memcpy(h->bytes + h->len, key, strlen(key));
    h->len += strlen(key);
    memcpy(h->bytes + h->len, value, strlen(value));
    h->len += strlen(value);
}

/* Recompute the CRC of a hand snapshot already finished by hand_restore. */
static void hand_restore_again(struct hand *h)
{
    fix_crc(h->bytes, h->len);
}

static int hand_restore(struct aegis_kv *kv, struct hand *h)
{
    h->len += 4;
    fix_crc(h->bytes, h->len);
    return aegis__kv_restore(kv, h->bytes, h->len);
}

TEST(kv_snapshot, structural_corruption_with_valid_crc)
{
    struct fixture t, twin;
    struct hand h;

    ASSERT_OK(target_pair(&t, &twin));
    /* The well-formed base case restores. */
    hand_header(&h, 9, 2, 2);
    hand_record(&h, "a", "1", 3);
    hand_record(&h, "b", "2", 9);
    ASSERT_OK(hand_restore(&twin.kv, &h));
    ASSERT_TRUE(holds(&twin.kv, "b", "2"));
    ASSERT_EQ_U64(aegis__kv_applied_index(&twin.kv), 9);
    aegis__kv_close(&twin.kv);
    ASSERT_OK(fixture_init(&twin, NULL, 21));
    ASSERT_OK(run_status(&twin, enc_set("mine", "1")));

    hand_header(&h, 9, 2, 2); /* Any order is fine (format 2)... */
    hand_record(&h, "b", "1", 3);
    hand_record(&h, "a", "2", 4);
    ASSERT_OK(hand_restore(&twin.kv, &h));
    ASSERT_TRUE(holds(&twin.kv, "a", "2"));
    h.bytes[4] = 1; /* ...and format 1 (sorted) loads the same way. */
    hand_restore_again(&h);
    ASSERT_OK(aegis__kv_restore(&twin.kv, h.bytes, h.len));
    aegis__kv_close(&twin.kv);
    ASSERT_OK(fixture_init(&twin, NULL, 21));
    ASSERT_OK(run_status(&twin, enc_set("mine", "1")));
    hand_header(&h, 9, 2, 2); /* Duplicate key. */
    hand_record(&h, "a", "1", 3);
    hand_record(&h, "a", "2", 4);
    ASSERT_ERR(hand_restore(&t.kv, &h), AEGIS_ECORRUPT);
    hand_header(&h, 9, 2, 1); /* Version 0. */
    hand_record(&h, "a", "1", 0);
    ASSERT_ERR(hand_restore(&t.kv, &h), AEGIS_ECORRUPT);
    hand_header(&h, 9, 2, 1); /* Version past the applied index. */
    hand_record(&h, "a", "1", 10);
    ASSERT_ERR(hand_restore(&t.kv, &h), AEGIS_ECORRUPT);
    hand_header(&h, 9, 2, 1); /* Trailing bytes before the CRC. */
    hand_record(&h, "a", "1", 1);
    h.bytes[h.len++] = 0;
    ASSERT_ERR(hand_restore(&t.kv, &h), AEGIS_ECORRUPT);
    hand_header(&h, 9, 2, 2); /* Count larger than the records present. */
    hand_record(&h, "a", "1", 1);
    ASSERT_ERR(hand_restore(&t.kv, &h), AEGIS_ECORRUPT);
    hand_header(&h, 9, 2, UINT64_MAX); /* Count that would size a huge table. */
    ASSERT_ERR(hand_restore(&t.kv, &h), AEGIS_ECORRUPT);
    hand_header(&h, 0, 1, 0); /* Index 0 with a term. */
    ASSERT_ERR(hand_restore(&t.kv, &h), AEGIS_ECORRUPT);
    hand_header(&h, 9, 2, 1); /* Value length past the end. */
    hand_record(&h, "a", "1", 1);
    put_le(h.bytes + 32 + 4, 1000, 4);
    ASSERT_ERR(hand_restore(&t.kv, &h), AEGIS_ECORRUPT);
    hand_header(&h, 9, 2, 1); /* Key longer than the limit. */
    hand_record(&h, "a", "1", 1);
    put_le(h.bytes + 32, AEGIS_KV_KEY_LEN_MAX + 1, 4);
    ASSERT_ERR(hand_restore(&t.kv, &h), AEGIS_ECORRUPT);
    hand_header(&h, 9, 2, 0); /* Reserved flags. */
    h.bytes[6] = 1;
    ASSERT_ERR(hand_restore(&t.kv, &h), AEGIS_ECORRUPT);
    hand_header(&h, 9, 2, 0); /* A future format version. */
    h.bytes[4] = 3;
    ASSERT_ERR(hand_restore(&t.kv, &h), AEGIS_EVERSION);
    hand_header(&h, 9, 2, 0); /* Bad magic. */
    h.bytes[0] = 'X';
    ASSERT_ERR(hand_restore(&t.kv, &h), AEGIS_ECORRUPT);
    ASSERT_TRUE(aegis__kv_equal(&t.kv, &twin.kv));
    aegis__kv_close(&t.kv);
    aegis__kv_close(&twin.kv);
    return TEST_PASS;
}

/* The machine every out-of-memory test starts from: 11 keys, so that one more insert
 * grows the table (12 is 3/4 of 16 slots). */
static int oom_setup(struct fixture *f)
{
    struct aegis_kv_bytes keys[2] = {B("a"), B("num")};
    struct aegis_kv_bytes vals[2] = {B("1"), B("5")};
    struct aegis_buf *cmd;

    if (aegis__kv_encode_mset(NULL, keys, vals, 2, &cmd) != 0) {
        return -1;
    }
    for (int i = 0; i < 9; i++) {
        char k[8] = {'f', (char)('a' + i), 0};

        if (run_status(f, enc_set(k, "x")) != 0) {
            aegis__buf_unref(cmd);
            return -1;
        }
    }
    return run_status(f, cmd);
}

TEST(kv, out_of_memory_changes_nothing)
{
    struct fault_heap heap = {0, -1, 0};
    struct aegis_allocator a = {fault_malloc, fault_realloc, fault_free, &heap};
    struct aegis_kv_bytes keys[3] = {B("n1"), B("a"), B("n2")};
    struct aegis_kv_bytes vals[3] = {B("1"), B("2"), B("3")};
    struct aegis_buf *cmds[6];
    int failures = 0;

    ASSERT_OK(aegis__kv_encode_mset(NULL, keys, vals, 3, &cmds[0]));
    cmds[1] = enc_set("n3", "4");
    cmds[2] = enc_incr("num", 1);
    cmds[3] = enc_incr("fresh", 1);
    cmds[4] = enc_cas("a", "1", "3");
    cmds[5] = enc_cas("absent", NULL, "3");
    for (size_t c = 0; c < 6; c++) {
        bool done = false;

        for (long n = 0; !done && n < 1000; n++) {
            struct fixture f, twin;
            struct aegis_kv_result r;
            int rv;

            heap.fail_at = -1;
            ASSERT_OK(fixture_init(&f, &a, 40));
            ASSERT_OK(fixture_init(&twin, NULL, 40));
            ASSERT_OK(oom_setup(&f));
            ASSERT_OK(oom_setup(&twin));
            heap.fail_at = heap.calls + n;
            rv = aegis__kv_apply(&f.kv, f.next, 1, AEGIS_ENTRY_COMMAND, cmds[c]->data,
                                 cmds[c]->len, &r);
            heap.fail_at = -1;
            if (rv == 0) {
                ASSERT_OK(r.status);
                done = true;
                ASSERT_FALSE(aegis__kv_equal(&f.kv, &twin.kv));
            } else {
                ASSERT_ERR(rv, AEGIS_ENOMEM);
                ASSERT_ERR(r.status, AEGIS_ENOMEM);
                ASSERT_TRUE(r.value == NULL);
                ASSERT_TRUE(aegis__kv_equal(&f.kv, &twin.kv));
                failures++;
            }
            aegis__kv_result_release(&r);
            aegis__kv_close(&f.kv);
            aegis__kv_close(&twin.kv);
        }
        ASSERT_TRUE(done);
    }
    ASSERT_TRUE(failures >= 6); /* Each command needs at least one allocation. */
    ASSERT_EQ_I64(heap.live, 0);
    free_commands(cmds, 6);
    return TEST_PASS;
}

TEST(kv_snapshot, out_of_memory_changes_nothing)
{
    struct fault_heap heap = {0, -1, 0};
    struct aegis_allocator a = {fault_malloc, fault_realloc, fault_free, &heap};
    struct fixture src, f, twin;
    struct aegis_buf *snap = NULL;
    bool done = false;

    ASSERT_OK(fixture_init(&src, &a, 50));
    ASSERT_OK(fill(&src, 30));
    for (long n = 0; !done && n < 1000; n++) {
        heap.fail_at = heap.calls + n;
        if (aegis__kv_snapshot(&src.kv, &snap) == 0) {
            done = true;
        }
    }
    heap.fail_at = -1;
    ASSERT_TRUE(done);
    done = false;
    for (long n = 0; !done && n < 1000; n++) {
        int rv;

        heap.fail_at = -1;
        ASSERT_OK(fixture_init(&f, &a, 51));
        ASSERT_OK(fixture_init(&twin, NULL, 51));
        ASSERT_OK(oom_setup(&f));
        ASSERT_OK(oom_setup(&twin));
        heap.fail_at = heap.calls + n;
        rv = aegis__kv_restore(&f.kv, snap->data, snap->len);
        heap.fail_at = -1;
        if (rv == 0) {
            done = true;
            ASSERT_TRUE(aegis__kv_equal(&f.kv, &src.kv));
        } else {
            ASSERT_ERR(rv, AEGIS_ENOMEM);
            ASSERT_TRUE(aegis__kv_equal(&f.kv, &twin.kv));
        }
        aegis__kv_close(&f.kv);
        aegis__kv_close(&twin.kv);
    }
    ASSERT_TRUE(done);
    aegis__buf_unref(snap);
    aegis__kv_close(&src.kv);
    ASSERT_EQ_I64(heap.live, 0);
    return TEST_PASS;
}
