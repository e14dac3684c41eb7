/* SPDX-License-Identifier: MIT */
/* Tests of RESP2 (net/resp.c): the request parser (multibulk, inline, pipelining, every
 * split point, limits and Redis' error texts), the reply writers and the reply parser. */
#include <stdlib.h>

#include <aegis/error.h>

#include "lib/test.h"
#include "net/resp.h"

/* Parse every command in @in (as one buffer) and render them as "argc:arg|arg;..." */
static int render_all(const char *in, size_t len, char *out, size_t cap, size_t *used)
{
    struct aegis_resp_parser p;
    struct aegis_resp_cmd cmd;
    char *buf = malloc(len + 1);
    size_t off = 0, o = 0;
    int rv = 0;

    memcpy(buf, in, len);
    aegis__resp_parser_init(&p, NULL, NULL);
    while (off < len) {
        rv = aegis__resp_parse(&p, buf + off, len - off, &cmd);
        if (rv <= 0) {
            break;
        }
        o += (size_t)snprintf(out + o, cap - o, "%u:", cmd.argc);
        for (uint32_t i = 0; i < cmd.argc; i++) {
            o += (size_t)snprintf(out + o, cap - o, "%.*s|", (int)cmd.argv[i].len,
                                  cmd.argv[i].ptr);
        }
        o += (size_t)snprintf(out + o, cap - o, ";");
        off += cmd.bytes;
    }
    out[o] = '\0';
    *used = off;
    aegis__resp_parser_close(&p);
    free(buf);
    return rv;
}

#define PIPELINE                                                                           \
    "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\n"                                    \
    "PING\r\n"                                                                             \
    "*1\r\n$4\r\nPING\r\n"                                                                 \
    "\r\n"                                                                                 \
    "*0\r\n"                                                                               \
    "  ECHO   \"a b\\x41\\n\"  'it\\'s'\n"                                                 \
    "*-1\r\n"                                                                              \
    "*2\r\n$3\r\nGET\r\n$0\r\n\r\n"
TEST(resp, pipelined_commands_in_one_buffer)
{
    char out[512];
    size_t used;

    ASSERT_EQ_I64(render_all(PIPELINE, sizeof(PIPELINE) - 1, out, sizeof(out), &used), 1);
    ASSERT_EQ_U64(used, sizeof(PIPELINE) - 1);
    /* The empty line, "*0" and "*-1" are empty commands (argc 0). */
    ASSERT_STR_EQ(out, "3:SET|key|va\r\nl|;1:PING|;1:PING|;0:;0:;3:ECHO|a bA\n|it's|;0:;"
                       "2:GET||;");
    return TEST_PASS;
}

/* Feed @in as growing prefixes: the buffer is re-copied to a new place before every call
 * (the parser must keep offsets, not pointers), and the input is consumed as commands
 * complete. The rendering must equal a one-shot parse. */
static enum test_result split_everywhere(const char *in, size_t len)
{
    char whole[1024], split[1024];
    size_t used, start = 0, o = 0;
    struct aegis_resp_parser p;
    struct aegis_resp_cmd cmd;

    ASSERT_EQ_I64(render_all(in, len, whole, sizeof(whole), &used), 1);
    aegis__resp_parser_init(&p, NULL, NULL);
    for (size_t end = 1; end <= len; end++) {
        char *buf = malloc(end - start);
        int rv;

        memcpy(buf, in + start, end - start);
        /* Several commands may complete at once only at the very end; loop anyway. */
        for (;;) {
            rv = aegis__resp_parse(&p, buf, end - start, &cmd);
            ASSERT_TRUE(rv >= 0);
            if (rv == 0) {
                ASSERT_TRUE(p.need > end - start);
                break;
            }
            o += (size_t)snprintf(split + o, sizeof(split) - o, "%u:", cmd.argc);
            for (uint32_t i = 0; i < cmd.argc; i++) {
                o += (size_t)snprintf(split + o, sizeof(split) - o, "%.*s|",
                                      (int)cmd.argv[i].len, cmd.argv[i].ptr);
            }
            o += (size_t)snprintf(split + o, sizeof(split) - o, ";");
            memmove(buf, buf + cmd.bytes, end - start - cmd.bytes);
            start += cmd.bytes;
            if (start == end) {
                break;
            }
        }
        free(buf);
    }
    split[o] = '\0';
    aegis__resp_parser_close(&p);
    ASSERT_EQ_U64(start, len);
    ASSERT_STR_EQ(split, whole);
    return TEST_PASS;
}

TEST(resp, split_at_every_byte_boundary)
{
    return split_everywhere(PIPELINE, sizeof(PIPELINE) - 1);
}

TEST(resp, need_hint_sizes_the_bulk)
{
    static char in[] = "*2\r\n$3\r\nSET\r\n$100\r\n";
    struct aegis_resp_parser p;
    struct aegis_resp_cmd cmd;

    aegis__resp_parser_init(&p, NULL, NULL);
    ASSERT_EQ_I64(aegis__resp_parse(&p, in, sizeof(in) - 1, &cmd), 0);
    ASSERT_EQ_U64(p.need, sizeof(in) - 1 + 100 + 2);
    aegis__resp_parser_close(&p);
    return TEST_PASS;
}

/* Parse @in with @limits (NULL: defaults); expect error @want with text @text. */
static enum test_result expect_error(const char *in, const struct aegis_resp_limits *limits,
                                     int want, const char *text)
{
    struct aegis_resp_parser p;
    struct aegis_resp_cmd cmd;
    size_t len = strlen(in);
    char *buf = malloc(len + 1);
    int rv;

    memcpy(buf, in, len + 1);
    aegis__resp_parser_init(&p, limits, NULL);
    rv = aegis__resp_parse(&p, buf, len, &cmd);
    aegis__resp_parser_close(&p);
    free(buf);
    ASSERT_ERR(rv, want);
    ASSERT_STR_EQ(p.err, text);
    return TEST_PASS;
}

#define EXPECT_ERROR(in, limits, want, text)                                               \
    do {                                                                                   \
        if (expect_error((in), (limits), (want), (text)) != TEST_PASS) {                   \
            return TEST_FAIL;                                                              \
        }                                                                                  \
    } while (0)

TEST(resp, redis_error_texts)
{
    EXPECT_ERROR("*x\r\n", NULL, AEGIS_ECORRUPT, "ERR Protocol error: invalid multibulk length");
    EXPECT_ERROR("*01\r\n", NULL, AEGIS_ECORRUPT, "ERR Protocol error: invalid multibulk length");
    EXPECT_ERROR("*3000000000\r\n", NULL, AEGIS_ECORRUPT,
                 "ERR Protocol error: invalid multibulk length");
    EXPECT_ERROR("*1\r\n+PING\r\n", NULL, AEGIS_ECORRUPT,
                 "ERR Protocol error: expected '$', got '+'");
    EXPECT_ERROR("*1\r\n$-3\r\n", NULL, AEGIS_ECORRUPT, "ERR Protocol error: invalid bulk length");
    EXPECT_ERROR("*1\r\n$ 3\r\n", NULL, AEGIS_ECORRUPT, "ERR Protocol error: invalid bulk length");
    EXPECT_ERROR("*1\r\n$3\rX", NULL, AEGIS_ECORRUPT, "ERR Protocol error: invalid bulk length");
    EXPECT_ERROR("*1\r\n$3\r\nabcd\r\n", NULL, AEGIS_ECORRUPT,
                 "ERR Protocol error: expected CRLF after bulk");
    EXPECT_ERROR("SET \"abc\r\n", NULL, AEGIS_ECORRUPT,
                 "ERR Protocol error: unbalanced quotes in request");
    EXPECT_ERROR("SET \"a\"b\r\n", NULL, AEGIS_ECORRUPT,
                 "ERR Protocol error: unbalanced quotes in request");
    EXPECT_ERROR("SET 'a\r\n", NULL, AEGIS_ECORRUPT,
                 "ERR Protocol error: unbalanced quotes in request");
    return TEST_PASS;
}

TEST(resp, limits_are_refused_without_allocating)
{
    struct aegis_resp_limits l = {.args_max = 4, .bulk_bytes_max = 1000,
                                  .inline_bytes_max = 64};
    char big[200];

    EXPECT_ERROR("*5\r\n", &l, AEGIS_ETOOBIG, "ERR Protocol error: invalid multibulk length");
    /* A bulk claiming 1 GB is refused from its header: no buffer, no allocation. */
    EXPECT_ERROR("*1\r\n$1000000000\r\n", &l, AEGIS_ETOOBIG,
                 "ERR Protocol error: invalid bulk length");
    EXPECT_ERROR("*1\r\n$1001\r\n", &l, AEGIS_ETOOBIG, "ERR Protocol error: invalid bulk length");
    EXPECT_ERROR("a b c d e\r\n", &l, AEGIS_ETOOBIG,
                 "ERR Protocol error: too many arguments in inline request");
    memset(big, 'a', sizeof(big));
    big[sizeof(big) - 1] = '\0';
    EXPECT_ERROR(big, &l, AEGIS_ETOOBIG, "ERR Protocol error: too big inline request");
    big[0] = '*';
    EXPECT_ERROR(big, &l, AEGIS_ETOOBIG, "ERR Protocol error: too big mbulk count string");
    memcpy(big, "*1\r\n$", 5);
    EXPECT_ERROR(big, &l, AEGIS_ETOOBIG, "ERR Protocol error: too big bulk count string");
    /* At the limits everything is accepted. */
    {
        static char ok[] = "*4\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$0\r\n\r\n";
        struct aegis_resp_parser p;
        struct aegis_resp_cmd cmd;

        aegis__resp_parser_init(&p, &l, NULL);
        ASSERT_EQ_I64(aegis__resp_parse(&p, ok, sizeof(ok) - 1, &cmd), 1);
        ASSERT_EQ_U64(cmd.argc, 4);
        ASSERT_EQ_U64(p.argv_cap, 4); /* Grown to the arguments seen, capped at args_max. */
        aegis__resp_parser_close(&p);
    }
    return TEST_PASS;
}

/* Counting allocator: records the largest request, fails after @budget allocations. */
struct count_heap {
    size_t largest;
    int allocs;
    int budget;
    struct aegis_allocator a;
};

static void *count_malloc(void *data, size_t size)
{
    struct count_heap *h = data;

    if (h->budget >= 0 && h->allocs >= h->budget) {
        return NULL;
    }
    h->allocs++;
    h->largest = size > h->largest ? size : h->largest;
    return malloc(size);
}

static void *count_realloc(void *data, void *ptr, size_t size)
{
    struct count_heap *h = data;

    if (h->budget >= 0 && h->allocs >= h->budget) {
        return NULL;
    }
    h->allocs++;
    h->largest = size > h->largest ? size : h->largest;
    return realloc(ptr, size);
}

static void count_free(void *data, void *ptr)
{
    (void)data;
    free(ptr);
}

TEST(resp, argv_grows_with_arguments_not_announced_counts)
{
    struct count_heap heap = {0, 0, -1, {count_malloc, count_realloc, count_free, NULL}};
    static char in[] = "*60000\r\n$1\r\na\r\n";
    struct aegis_resp_parser p;
    struct aegis_resp_cmd cmd;

    heap.a.data = &heap;
    aegis__resp_parser_init(&p, NULL, &heap.a);
    ASSERT_EQ_I64(aegis__resp_parse(&p, in, sizeof(in) - 1, &cmd), 0);
    ASSERT_TRUE(heap.largest <= 16 * sizeof(struct aegis_resp_arg));
    aegis__resp_parser_close(&p);

    /* Growth failure is reported, not a crash. */
    heap.budget = 0;
    heap.allocs = 0;
    aegis__resp_parser_init(&p, NULL, &heap.a);
    ASSERT_ERR(aegis__resp_parse(&p, in, sizeof(in) - 1, &cmd), AEGIS_ENOMEM);
    aegis__resp_parser_close(&p);
    return TEST_PASS;
}

TEST(resp, many_arguments_split_everywhere)
{
    char in[1024];
    size_t n = 0;

    n += (size_t)snprintf(in + n, sizeof(in) - n, "*40\r\n");
    for (int i = 0; i < 40; i++) {
        n += (size_t)snprintf(in + n, sizeof(in) - n, "$%d\r\n%.*s\r\n", i % 7,
                              i % 7, "abcdefg");
    }
    n += (size_t)snprintf(in + n, sizeof(in) - n, "MSET a 1 b 2\n");
    return split_everywhere(in, n);
}

TEST(resp, inline_quoting_like_sdssplitargs)
{
    char out[256];
    size_t used;
    static const char in[] = "SET \"k\\t\\\"q\\\"\" 'a\\'b' x\"y z\" \"\\x4a\\x4Z\"\r\n";

    ASSERT_EQ_I64(render_all(in, sizeof(in) - 1, out, sizeof(out), &used), 1);
    ASSERT_STR_EQ(out, "5:SET|k\t\"q\"|a'b|xy z|Jx4Z|;");
    ASSERT_EQ_U64(used, sizeof(in) - 1);
    return TEST_PASS;
}

static enum test_result expect_out(struct aegis_resp_wbuf *w, const char *want)
{
    ASSERT_EQ_U64(w->len, strlen(want));
    ASSERT_MEM_EQ(w->data, want, w->len);
    w->len = 0;
    return TEST_PASS;
}

#define EXPECT_OUT(w, want)                                                                \
    do {                                                                                   \
        if (expect_out((w), (want)) != TEST_PASS) {                                        \
            return TEST_FAIL;                                                              \
        }                                                                                  \
    } while (0)

TEST(resp, reply_writers)
{
    struct aegis_resp_wbuf w;

    aegis__resp_wbuf_init(&w, NULL, 0);
    ASSERT_OK(aegis__resp_add_simple(&w, "OK"));
    EXPECT_OUT(&w, "+OK\r\n");
    ASSERT_OK(aegis__resp_add_error(&w, "ERR bad\r\nthing"));
    EXPECT_OUT(&w, "-ERR bad  thing\r\n");
    ASSERT_OK(aegis__resp_add_int(&w, 0));
    ASSERT_OK(aegis__resp_add_int(&w, -42));
    ASSERT_OK(aegis__resp_add_int(&w, INT64_MIN));
    ASSERT_OK(aegis__resp_add_int(&w, INT64_MAX));
    EXPECT_OUT(&w, ":0\r\n:-42\r\n:-9223372036854775808\r\n:9223372036854775807\r\n");
    ASSERT_OK(aegis__resp_add_bulk(&w, "a\r\nb", 4));
    ASSERT_OK(aegis__resp_add_bulk(&w, "", 0));
    ASSERT_OK(aegis__resp_add_null(&w));
    EXPECT_OUT(&w, "$4\r\na\r\nb\r\n$0\r\n\r\n$-1\r\n");
    ASSERT_OK(aegis__resp_add_array(&w, 2));
    ASSERT_OK(aegis__resp_add_bulk_header(&w, 123));
    ASSERT_OK(aegis__resp_add_null_array(&w));
    EXPECT_OUT(&w, "*2\r\n$123\r\n*-1\r\n");
    ASSERT_OK(aegis__resp_add_verbatim(&w, "txt", "# Replication", 13, 3));
    EXPECT_OUT(&w, "=17\r\ntxt:# Replication\r\n");
    ASSERT_OK(aegis__resp_add_verbatim(&w, "txt", "# Replication", 13, 2));
    EXPECT_OUT(&w, "$13\r\n# Replication\r\n");
    ASSERT_OK(aegis__resp_add_raw(&w, "abc", 3));
    aegis__resp_wbuf_consume(&w, 1);
    EXPECT_OUT(&w, "bc");
    aegis__resp_wbuf_close(&w);
    return TEST_PASS;
}

TEST(resp, writers_respect_bytes_max_all_or_nothing)
{
    struct aegis_resp_wbuf w;
    char big[100] = {0};

    aegis__resp_wbuf_init(&w, NULL, 16);
    ASSERT_OK(aegis__resp_add_simple(&w, "OK"));
    ASSERT_ERR(aegis__resp_add_bulk(&w, big, 10), AEGIS_ETOOBIG); /* 5 + 4 + 10 + 2 > 16 */
    ASSERT_EQ_U64(w.len, 5);
    ASSERT_ERR(aegis__resp_add_raw(&w, big, sizeof(big)), AEGIS_ETOOBIG);
    ASSERT_OK(aegis__resp_add_bulk(&w, big, 4)); /* 5 + 4 + 4 + 2 = 15 */
    ASSERT_EQ_U64(w.len, 15);
    ASSERT_OK(aegis__resp_add_raw(&w, "x", 1));
    ASSERT_ERR(aegis__resp_add_raw(&w, "x", 1), AEGIS_ETOOBIG);
    ASSERT_TRUE(w.cap <= 16);
    aegis__resp_wbuf_close(&w);
    return TEST_PASS;
}

TEST(resp, command_writer_round_trips_through_the_parser)
{
    const char *argv[] = {"SET", "key", "a\r\nvalue", ""};
    const size_t lens[] = {3, 3, 9, 0};
    struct aegis_resp_wbuf w;
    struct aegis_resp_parser p;
    struct aegis_resp_cmd cmd;

    aegis__resp_wbuf_init(&w, NULL, 0);
    ASSERT_OK(aegis__resp_add_command(&w, 4, argv, lens));
    aegis__resp_parser_init(&p, NULL, NULL);
    ASSERT_EQ_I64(aegis__resp_parse(&p, w.data, w.len, &cmd), 1);
    ASSERT_EQ_U64(cmd.bytes, w.len);
    ASSERT_EQ_U64(cmd.argc, 4);
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ_U64(cmd.argv[i].len, lens[i]);
        ASSERT_MEM_EQ(cmd.argv[i].ptr, argv[i], lens[i]);
    }
    aegis__resp_parser_close(&p);
    aegis__resp_wbuf_close(&w);
    return TEST_PASS;
}

#define REPLIES                                                                            \
    "+OK\r\n-ERR no\r\n:-7\r\n$5\r\nhe\r\nl\r\n$-1\r\n$0\r\n\r\n*-1\r\n*0\r\n"               \
    "*3\r\n:1\r\n*2\r\n$1\r\na\r\n*0\r\n+x\r\n"

TEST(resp, reply_parser_types_and_nesting)
{
    static const char in[] = REPLIES;
    struct aegis_resp_value v[8];
    size_t n, bytes, off = 0;

    ASSERT_EQ_I64(aegis__resp_reply_parse(in, sizeof(in) - 1, v, 8, &n, &bytes), 1);
    ASSERT_EQ_U64(n, 1);
    ASSERT_EQ_U64(v[0].type, '+');
    ASSERT_EQ_U64(v[0].len, 2);
    ASSERT_MEM_EQ(v[0].str, "OK", 2);
    off += bytes;
    ASSERT_EQ_I64(aegis__resp_reply_parse(in + off, sizeof(in) - 1 - off, v, 8, &n, &bytes), 1);
    ASSERT_EQ_U64(v[0].type, '-');
    ASSERT_MEM_EQ(v[0].str, "ERR no", 6);
    off += bytes;
    ASSERT_EQ_I64(aegis__resp_reply_parse(in + off, sizeof(in) - 1 - off, v, 8, &n, &bytes), 1);
    ASSERT_EQ_I64(v[0].integer, -7);
    off += bytes;
    ASSERT_EQ_I64(aegis__resp_reply_parse(in + off, sizeof(in) - 1 - off, v, 8, &n, &bytes), 1);
    ASSERT_EQ_U64(v[0].len, 5);
    ASSERT_MEM_EQ(v[0].str, "he\r\nl", 5);
    off += bytes;
    ASSERT_EQ_I64(aegis__resp_reply_parse(in + off, sizeof(in) - 1 - off, v, 8, &n, &bytes), 1);
    ASSERT_TRUE(v[0].null && v[0].type == '$');
    off += bytes;
    ASSERT_EQ_I64(aegis__resp_reply_parse(in + off, sizeof(in) - 1 - off, v, 8, &n, &bytes), 1);
    ASSERT_TRUE(!v[0].null && v[0].len == 0);
    off += bytes;
    ASSERT_EQ_I64(aegis__resp_reply_parse(in + off, sizeof(in) - 1 - off, v, 8, &n, &bytes), 1);
    ASSERT_TRUE(v[0].null && v[0].type == '*');
    off += bytes;
    ASSERT_EQ_I64(aegis__resp_reply_parse(in + off, sizeof(in) - 1 - off, v, 8, &n, &bytes), 1);
    ASSERT_TRUE(!v[0].null && v[0].type == '*' && v[0].integer == 0 && n == 1);
    off += bytes;
    /* [1, ["a", []], "x"] flattened in pre-order. */
    ASSERT_EQ_I64(aegis__resp_reply_parse(in + off, sizeof(in) - 1 - off, v, 8, &n, &bytes), 1);
    ASSERT_EQ_U64(n, 6);
    ASSERT_EQ_I64(v[0].integer, 3);
    ASSERT_EQ_I64(v[1].integer, 1);
    ASSERT_EQ_I64(v[2].integer, 2);
    ASSERT_MEM_EQ(v[3].str, "a", 1);
    ASSERT_EQ_I64(v[4].integer, 0);
    ASSERT_MEM_EQ(v[5].str, "x", 1);
    off += bytes;
    ASSERT_EQ_U64(off, sizeof(in) - 1);
    return TEST_PASS;
}

TEST(resp, reply_parser_every_prefix_needs_more)
{
    static const char in[] = REPLIES;
    size_t off = 0, n, bytes, total;
    int replies = 0;

    while (off < sizeof(in) - 1) {
        ASSERT_EQ_I64(aegis__resp_reply_parse(in + off, sizeof(in) - 1 - off, NULL, 0, &n,
                                              &total), 1);
        for (size_t cut = 0; cut < total; cut++) {
            ASSERT_EQ_I64(aegis__resp_reply_parse(in + off, cut, NULL, 0, &n, &bytes), 0);
        }
        off += total;
        replies++;
    }
    ASSERT_EQ_I64(replies, 9);
    return TEST_PASS;
}

TEST(resp, reply_parser_refuses_garbage)
{
    char deep[200];
    size_t n, bytes;

    ASSERT_ERR(aegis__resp_reply_parse("?x\r\n", 4, NULL, 0, &n, &bytes), AEGIS_ECORRUPT);
    ASSERT_ERR(aegis__resp_reply_parse(":1x\r\n", 5, NULL, 0, &n, &bytes), AEGIS_ECORRUPT);
    ASSERT_ERR(aegis__resp_reply_parse("$-2\r\n", 5, NULL, 0, &n, &bytes), AEGIS_ECORRUPT);
    ASSERT_ERR(aegis__resp_reply_parse("$1\r\nab\r\n", 8, NULL, 0, &n, &bytes), AEGIS_ECORRUPT);
    ASSERT_ERR(aegis__resp_reply_parse("+OK\rx", 5, NULL, 0, &n, &bytes), AEGIS_ECORRUPT);
    ASSERT_ERR(aegis__resp_reply_parse("$99999999999\r\n", 15, NULL, 0, &n, &bytes),
               AEGIS_ECORRUPT);
    memset(deep, 0, sizeof(deep));
    for (unsigned i = 0; i <= AEGIS_RESP_REPLY_DEPTH_MAX; i++) {
        memcpy(deep + i * 4, "*1\r\n", 4);
    }
    ASSERT_ERR(aegis__resp_reply_parse(deep, strlen(deep), NULL, 0, &n, &bytes),
               AEGIS_ECORRUPT);
    /* One level shallower nests fine and just needs its leaf. */
    ASSERT_EQ_I64(aegis__resp_reply_parse(deep, AEGIS_RESP_REPLY_DEPTH_MAX * 4, NULL, 0, &n,
                                          &bytes), 0);
    return TEST_PASS;
}

/* Read a committed capture of real client traffic (tests/fuzz/corpus/resp/<name>, whose
 * first byte is the fuzz target's split seed and is skipped). */
static char *read_capture(const char *name, size_t *len_out)
{
    char path[1024];
    const char *tail = strstr(__FILE__, "unit/net/test_resp.c");
    FILE *f;
    char *data;
    long size;

    if (tail == NULL) {
        return NULL;
    }
    snprintf(path, sizeof(path), "%.*sfuzz/corpus/resp/%s", (int)(tail - __FILE__), __FILE__,
             name);
    f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);
    data = malloc((size_t)size);
    *len_out = fread(data, 1, (size_t)size, f);
    fclose(f);
    return data;
}

/* redis-benchmark -n 4 -c 1 -P 2 -t ping,set,get,incr,mset -d 5, as redis-server 7.0 saw
 * it: CONFIG GET twice, PING inline and as multibulk, then SET/GET/INCR/MSET (10 keys). */
TEST(resp, parses_real_redis_benchmark_traffic)
{
    struct aegis_resp_parser p;
    struct aegis_resp_cmd cmd;
    size_t len, off = 1;
    char *data = read_capture("redis_benchmark.txt", &len);
    int count = 0, inline_ping = 0, mset = 0;

    if (data == NULL) {
        SKIP("capture not found next to the sources");
    }
    aegis__resp_parser_init(&p, NULL, NULL);
    while (off < len) {
        ASSERT_EQ_I64(aegis__resp_parse(&p, data + off, len - off, &cmd), 1);
        if (count == 0) {
            ASSERT_EQ_U64(cmd.argc, 3);
            ASSERT_MEM_EQ(cmd.argv[0].ptr, "CONFIG", 6);
            ASSERT_MEM_EQ(cmd.argv[2].ptr, "save", 4);
        }
        if (cmd.argc == 1 && data[off] == 'P') {
            inline_ping++;
        }
        if (cmd.argc == 21) {
            ASSERT_MEM_EQ(cmd.argv[0].ptr, "MSET", 4);
            mset++;
        }
        off += cmd.bytes;
        count++;
    }
    ASSERT_EQ_U64(off, len);
    ASSERT_EQ_I64(count, 26);
    ASSERT_EQ_I64(inline_ping, 4);
    ASSERT_EQ_I64(mset, 4);
    aegis__resp_parser_close(&p);
    free(data);
    return TEST_PASS;
}

TEST(resp, reply_parser_counts_values_beyond_capacity)
{
    static const char in[] = "*3\r\n:1\r\n:2\r\n:3\r\n";
    struct aegis_resp_value v[2];
    size_t n, bytes;

    ASSERT_EQ_I64(aegis__resp_reply_parse(in, sizeof(in) - 1, v, 2, &n, &bytes), 1);
    ASSERT_EQ_U64(n, 4);
    ASSERT_EQ_U64(bytes, sizeof(in) - 1);
    ASSERT_EQ_I64(v[1].integer, 1);
    return TEST_PASS;
}
