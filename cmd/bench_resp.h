/* SPDX-License-Identifier: MIT */
/* aegis-bench's own RESP2 reply parser: small, allocation-free, resumable.
 *
 * A load generator only needs to know where each reply ends and what kind it is, so this
 * parser does not build values: it is handed the bytes received so far and either reports
 * one complete reply (its type, its status/error text or bulk payload, its integer) and how
 * many bytes it took, or says that more bytes are needed, or that the bytes cannot be RESP.
 * "Resumable" means the caller keeps the unconsumed tail and calls again when more bytes
 * arrive; re-scanning a partial reply costs only its header lines, because a bulk's length
 * is checked against what is buffered without reading its payload.
 *
 * Grammar accepted (RESP2): "+text\r\n", "-text\r\n", ":int\r\n", "$len\r\n<len bytes>\r\n",
 * "$-1\r\n" (nil), "*n\r\n" followed by n replies (nested up to BENCH_RESP_DEPTH_MAX), and
 * "*-1\r\n" (nil array). A line longer than BENCH_RESP_LINE_MAX without its CRLF, a bulk
 * longer than BENCH_RESP_BULK_MAX, an array longer than BENCH_RESP_ARRAY_MAX, or any other
 * byte where a type byte is expected is a protocol error: the caller closes the connection.
 *
 * It lives in a header because every cmd/ source becomes its own program; only aegis-bench and
 * its test include it. (net/resp.{h,c} is the server's parser, written separately.) */
#ifndef AEGIS_BENCH_RESP_H
#define AEGIS_BENCH_RESP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define BENCH_RESP_LINE_MAX  65536
#define BENCH_RESP_BULK_MAX  (512L * 1024 * 1024)
#define BENCH_RESP_ARRAY_MAX (1L << 20)
#define BENCH_RESP_DEPTH_MAX 8

enum bench_reply_type {
    BENCH_REPLY_STATUS = 1, /* +OK */
    BENCH_REPLY_ERROR,      /* -ERR ... */
    BENCH_REPLY_INT,        /* :42 */
    BENCH_REPLY_BULK,       /* $3 foo */
    BENCH_REPLY_NIL,        /* $-1 or *-1 */
    BENCH_REPLY_ARRAY       /* *n ... */
};

struct bench_reply {
    enum bench_reply_type type;
    const char *str; /* STATUS/ERROR text or BULK payload (not NUL-terminated); borrowed. */
    size_t len;      /* Bytes at @str. */
    int64_t integer; /* INT value; ARRAY element count. */
};

/* Results other than a byte count. */
#define BENCH_RESP_MORE  0L  /* Incomplete: call again with more bytes. */
#define BENCH_RESP_ERROR -1L /* Not RESP: close the connection. */

/* Find the CRLF that ends the line starting at @buf. Returns the line's length (without
 * CRLF), BENCH_RESP_MORE-style -2 when incomplete, or -1 when the line is malformed. */
static inline long bench_resp_line(const char *buf, size_t len)
{
    size_t scan = len < BENCH_RESP_LINE_MAX + 2 ? len : BENCH_RESP_LINE_MAX + 2;
    const char *cr = memchr(buf, '\r', scan);

    if (cr == NULL) {
        return scan == len ? -2 : -1;
    }
    if ((size_t)(cr - buf) + 1 >= len) {
        return -2; /* The '\n' has not arrived yet. */
    }
    if (cr[1] != '\n') {
        return -1;
    }
    return (long)(cr - buf);
}

/* Parse a signed decimal of @n bytes at @s into @out; 0 on success, -1 if malformed or out
 * of the int64 range. */
static inline int bench_resp_int(const char *s, long n, int64_t *out)
{
    uint64_t v = 0, limit = (uint64_t)INT64_MAX;
    long i = 0;
    int neg = 0;

    if (n > 0 && s[0] == '-') {
        neg = 1;
        limit = (uint64_t)INT64_MAX + 1u;
        i = 1;
    }
    if (i == n || n > 20) {
        return -1;
    }
    for (; i < n; i++) {
        unsigned d = (unsigned)(unsigned char)s[i] - '0';

        if (d > 9 || v > (limit - d) / 10u) {
            return -1;
        }
        v = v * 10u + d;
    }
    if (neg) {
        *out = v == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)v;
    } else {
        *out = (int64_t)v;
    }
    return 0;
}

static inline long bench_resp_parse_depth(const char *buf, size_t len, struct bench_reply *out,
                                          int depth);

/* The elements of an array whose header took @off bytes: each parsed and skipped. */
static inline long bench_resp_parse_elements(const char *buf, size_t len, size_t off,
                                             int64_t count, int depth)
{
    struct bench_reply elem;
    int64_t i;

    for (i = 0; i < count; i++) {
        long n = bench_resp_parse_depth(buf + off, len - off, &elem, depth + 1);

        if (n <= 0) {
            return n;
        }
        off += (size_t)n;
    }
    return (long)off;
}

static inline long bench_resp_parse_depth(const char *buf, size_t len, struct bench_reply *out,
                                          int depth)
{
    long line;
    size_t off;

    if (len == 0) {
        return BENCH_RESP_MORE;
    }
    if (depth > BENCH_RESP_DEPTH_MAX) {
        return BENCH_RESP_ERROR;
    }
    line = bench_resp_line(buf + 1, len - 1);
    if (line == -2) {
        return BENCH_RESP_MORE;
    }
    if (line < 0) {
        return BENCH_RESP_ERROR;
    }
    off = (size_t)line + 3; /* Type byte, line, CRLF. */
    out->str = buf + 1;
    out->len = (size_t)line;
    out->integer = 0;
    switch (buf[0]) {
    case '+':
        out->type = BENCH_REPLY_STATUS;
        return (long)off;
    case '-':
        out->type = BENCH_REPLY_ERROR;
        return (long)off;
    case ':':
        out->type = BENCH_REPLY_INT;
        return bench_resp_int(buf + 1, line, &out->integer) == 0 ? (long)off : BENCH_RESP_ERROR;
    case '$':
        if (bench_resp_int(buf + 1, line, &out->integer) != 0 || out->integer < -1 ||
            out->integer > BENCH_RESP_BULK_MAX) {
            return BENCH_RESP_ERROR;
        }
        if (out->integer == -1) {
            out->type = BENCH_REPLY_NIL;
            return (long)off;
        }
        out->type = BENCH_REPLY_BULK;
        out->str = buf + off;
        out->len = (size_t)out->integer;
        if (len < off + out->len + 2) {
            return BENCH_RESP_MORE;
        }
        if (buf[off + out->len] != '\r' || buf[off + out->len + 1] != '\n') {
            return BENCH_RESP_ERROR;
        }
        return (long)(off + out->len + 2);
    case '*':
        if (bench_resp_int(buf + 1, line, &out->integer) != 0 || out->integer < -1 ||
            out->integer > BENCH_RESP_ARRAY_MAX) {
            return BENCH_RESP_ERROR;
        }
        out->type = out->integer == -1 ? BENCH_REPLY_NIL : BENCH_REPLY_ARRAY;
        return bench_resp_parse_elements(buf, len, off, out->integer, depth);
    default:
        return BENCH_RESP_ERROR;
    }
}

/* Parse one reply from the @len bytes at @buf. Returns the bytes it took (> 0) and fills
 * @out, or BENCH_RESP_MORE, or BENCH_RESP_ERROR. @out points into @buf. */
static inline long bench_resp_parse(const char *buf, size_t len, struct bench_reply *out)
{
    return bench_resp_parse_depth(buf, len, out, 0);
}

#endif /* AEGIS_BENCH_RESP_H */
