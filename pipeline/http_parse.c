/* SPDX-License-Identifier: MIT */
/* The metrics endpoint's request parser; see http_parse.h. */
#include "pipeline/http_parse.h"

#include <string.h>

/* Offset just past the empty line ending the head, or 0 when there is none yet. */
static size_t head_end(const char *buf, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (buf[i] != '\n') {
            continue;
        }
        if (buf[i + 1] == '\n') {
            return i + 2;
        }
        if (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n') {
            return i + 3;
        }
    }
    return 0;
}

/* Length of the token at @p (bytes in [lo, hi]) before @end, at most @max + 1. */
static size_t token(const char *p, const char *end, char lo, char hi, size_t max)
{
    size_t n = 0;

    while (p + n < end && n <= max && p[n] >= lo && p[n] <= hi) {
        n++;
    }
    return n;
}

static bool is_version(const char *p, size_t len)
{
    return len == 8 && memcmp(p, "HTTP/", 5) == 0 && p[5] >= '0' && p[5] <= '9' &&
           p[6] == '.' && p[7] >= '0' && p[7] <= '9';
}

static int parse_line(const char *p, const char *end, struct aegis_http_request *out)
{
    size_t m = token(p, end, 'A', 'Z', 15), t, plen;
    const char *target;

    if (m == 0 || m > 15 || p + m >= end || p[m] != ' ') {
        return 400;
    }
    target = p + m + 1;
    t = token(target, end, '!', '~', 255);
    if (t == 0 || t > 255 || target + t >= end || target[t] != ' ' ||
        !is_version(target + t + 1, (size_t)(end - (target + t + 1)))) {
        return 400;
    }
    out->head_only = m == 4 && memcmp(p, "HEAD", 4) == 0;
    if (!out->head_only && !(m == 3 && memcmp(p, "GET", 3) == 0)) {
        return 405;
    }
    /* The query string, if any, is ignored (Prometheus sends none by default). */
    for (plen = 0; plen < t && target[plen] != '?'; plen++) {
    }
    if ((plen == 8 && memcmp(target, "/metrics", 8) == 0) || (plen == 1 && target[0] == '/')) {
        return 200;
    }
    if (plen == 7 && memcmp(target, "/health", 7) == 0) {
        out->health = true;
        return 200;
    }
    return 404;
}

int aegis__http_parse(const char *buf, size_t len, struct aegis_http_request *out)
{
    size_t end = head_end(buf, len < AEGIS_HTTP_HEAD_MAX ? len : AEGIS_HTTP_HEAD_MAX);
    const char *nl;
    size_t line;

    *out = (struct aegis_http_request){.status = 400};
    if (end == 0) {
        return len >= AEGIS_HTTP_HEAD_MAX ? 1 : 0;
    }
    nl = memchr(buf, '\n', end);
    line = (size_t)(nl - buf);
    if (line > 0 && buf[line - 1] == '\r') {
        line--;
    }
    out->status = parse_line(buf, buf + line, out);
    if (out->status == 400) {
        out->head_only = false;
    }
    return 1;
}
