/* SPDX-License-Identifier: MIT */
/* Tests of the metrics endpoint's request parser (pipeline/http_parse.h): the answers
 * for well-formed and malformed heads, partial heads, the head size limit. */
#include <stdlib.h>

#include "lib/test.h"
#include "pipeline/http_parse.h"

static int parse(const char *s, struct aegis_http_request *r)
{
    return aegis__http_parse(s, strlen(s), r);
}

TEST(http_parse, answers)
{
    static const struct {
        const char *in;
        int status;
        bool head_only;
        bool health;
    } v[] = {
        {"GET /health HTTP/1.1\r\n\r\n", 200, false, true},
        {"GET /health?verbose HTTP/1.1\r\n\r\n", 200, false, true},
        {"HEAD /health HTTP/1.1\r\n\r\n", 200, true, true},
        {"GET /healthz HTTP/1.1\r\n\r\n", 404, false, false},
        {"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 200, false, false},
        {"GET / HTTP/1.0\n\n", 200, false, false},
        {"GET /metrics?x=1 HTTP/1.1\r\n\r\n", 200, false, false},
        {"HEAD /metrics HTTP/1.1\r\n\r\n", 200, true, false},
        {"HEAD /nope HTTP/1.1\r\n\r\n", 404, true, false},
        {"GET /metricsx HTTP/1.1\r\n\r\n", 404, false, false},
        {"POST /metrics HTTP/1.1\r\n\r\n", 405, false, false},
        {"get /metrics HTTP/1.1\r\n\r\n", 400, false, false},
        {"GET  /metrics HTTP/1.1\r\n\r\n", 400, false, false},
        {"GET /metrics\r\n\r\n", 400, false, false},
        {"GET /metrics HTTP/1.1 x\r\n\r\n", 400, false, false},
        {"GET /metrics FTP/1.1\r\n\r\n", 400, false, false},
        {"\r\n\r\n", 400, false, false},
        {"ABCDEFGHIJKLMNOP /metrics HTTP/1.1\r\n\r\n", 400, false, false},
    };
    struct aegis_http_request r;

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        if (parse(v[i].in, &r) != 1 || r.status != v[i].status ||
            r.head_only != v[i].head_only || r.health != v[i].health) {
            FAIL("case %zu: status %d head_only %d", i, r.status, r.head_only);
        }
    }
    return TEST_PASS;
}

TEST(http_parse, partial_and_limit)
{
    struct aegis_http_request r;
    char *big = malloc(AEGIS_HTTP_HEAD_MAX + 16);

    ASSERT_TRUE(big != NULL);
    ASSERT_EQ_I64(parse("GET /metrics HTTP/1.1\r\nHost: x\r\n", &r), 0);
    ASSERT_EQ_I64(parse("GET /metrics HTTP/1.1\r\n\r", &r), 0);
    ASSERT_EQ_I64(aegis__http_parse("", 0, &r), 0);
    /* A NUL byte is a byte: it does not end the head early, nor hide its end. */
    ASSERT_EQ_I64(aegis__http_parse("GET /a\0b HTTP/1.1\r\n\r\n", 22, &r), 1);
    ASSERT_EQ_I64(r.status, 400);
    memset(big, 'a', AEGIS_HTTP_HEAD_MAX + 16);
    memcpy(big, "GET /metrics HTTP/1.1\r\nX: ", 26);
    ASSERT_EQ_I64(aegis__http_parse(big, AEGIS_HTTP_HEAD_MAX - 1, &r), 0);
    ASSERT_EQ_I64(aegis__http_parse(big, AEGIS_HTTP_HEAD_MAX, &r), 1);
    ASSERT_EQ_I64(r.status, 400);
    /* The end of the head past the limit does not count. */
    memcpy(big + AEGIS_HTTP_HEAD_MAX + 2, "\r\n\r\n", 4);
    ASSERT_EQ_I64(aegis__http_parse(big, AEGIS_HTTP_HEAD_MAX + 16, &r), 1);
    ASSERT_EQ_I64(r.status, 400);
    free(big);
    return TEST_PASS;
}
