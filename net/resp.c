/* SPDX-License-Identifier: MIT */
/* RESP2 request parsing, reply writing and reply parsing; see resp.h for the design.
 *
 * Wire format (https://redis.io/docs/reference/protocol-spec/), as used here:
 *   request, multibulk:  "*" N CRLF, then N times: "$" LEN CRLF, LEN bytes, CRLF
 *                        (N <= args_max, LEN <= bulk_bytes_max; N <= 0 is an empty
 *                        command that is skipped)
 *   request, inline:     any line not starting with '*', ended by LF (an optional CR
 *                        before it is dropped), split into words as Redis'
 *                        sdssplitargs() does: blanks separate words; "double quotes"
 *                        understand \n \r \t \b \a \\ \" and \xHH; 'single quotes'
 *                        understand \'; a closing quote must end the word.
 *   replies:             "+" text CRLF | "-" text CRLF | ":" integer CRLF |
 *                        "$" LEN CRLF bytes CRLF | "$-1" CRLF (null) |
 *                        "*" N CRLF then N replies | "*-1" CRLF (null array)
 * Integers are decimal as Redis' string2ll() reads them: an optional '-', no '+', no
 * leading zeros, no blanks, at most 20 characters. */
#include "net/resp.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <aegis/error.h>

#include "engine/assert.h"

#define ARGV_CAP_INITIAL 16u

struct aegis_resp_limits aegis__resp_limits_default(void)
{
    struct aegis_resp_limits l = {
        .args_max = AEGIS_RESP_ARGS_MAX_DEFAULT,
        .bulk_bytes_max = AEGIS_RESP_BULK_BYTES_MAX_DEFAULT,
        .inline_bytes_max = AEGIS_RESP_INLINE_BYTES_MAX_DEFAULT,
    };

    return l;
}

/* Redis' string2ll(): strict decimal. Returns false on anything else or on overflow. */
static bool parse_ll(const char *s, size_t n, int64_t *out)
{
    uint64_t v = 0;
    bool neg = false;
    size_t i = 0;

    if (n == 0 || n > 20) {
        return false;
    }
    if (n == 1 && s[0] == '0') {
        *out = 0;
        return true;
    }
    if (s[0] == '-') {
        neg = true;
        i = 1;
        if (n == 1) {
            return false;
        }
    }
    if (s[i] < '1' || s[i] > '9') {
        return false;
    }
    for (; i < n; i++) {
        unsigned d = (unsigned)(unsigned char)s[i] - '0';

        if (d > 9 || v > (UINT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1) {
            return false;
        }
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
        return true;
    }
    if (v > (uint64_t)INT64_MAX) {
        return false;
    }
    *out = (int64_t)v;
    return true;
}

void aegis__resp_parser_init(struct aegis_resp_parser *p, const struct aegis_resp_limits *limits,
                             const struct aegis_allocator *a)
{
    memset(p, 0, sizeof(*p));
    p->limits = limits != NULL ? *limits : aegis__resp_limits_default();
    AEGIS_ASSERT(p->limits.args_max > 0);
    AEGIS_ASSERT(p->limits.inline_bytes_max > 0);
    p->alloc = a;
    p->bulk_len = -1;
}

void aegis__resp_parser_close(struct aegis_resp_parser *p)
{
    aegis__free(p->alloc, p->argv);
    p->argv = NULL;
    p->argv_cap = 0;
}

static void reset_command(struct aegis_resp_parser *p)
{
    p->multibulk = false;
    p->argc = 0;
    p->argi = 0;
    p->pos = 0;
    p->bulk_len = -1;
    p->need = 0;
}

/* Record the error text "ERR Protocol error: @what" (plus @c quoted, when non-zero, for
 * "expected '$', got 'x'") and return @rv. */
static int fail(struct aegis_resp_parser *p, int rv, const char *what, char c)
{
    static const char prefix[] = "ERR Protocol error: ";
    size_t n = sizeof(prefix) - 1, w = strlen(what);

    AEGIS_ASSERT(n + w + 4 < sizeof(p->err));
    memcpy(p->err, prefix, n);
    memcpy(p->err + n, what, w);
    n += w;
    if (c != 0) {
        p->err[n++] = '\'';
        p->err[n++] = c;
        p->err[n++] = '\'';
    }
    p->err[n] = '\0';
    reset_command(p);
    return rv;
}

/* Make room for argument number p->argi. Growth follows the arguments that actually
 * arrived, never the count a client announced. */
static int argv_reserve(struct aegis_resp_parser *p)
{
    struct aegis_resp_arg *grown;
    uint32_t cap;

    if (p->argi < p->argv_cap) {
        return 0;
    }
    AEGIS_ASSERT(p->argi < p->limits.args_max);
    cap = p->argv_cap == 0 ? ARGV_CAP_INITIAL : p->argv_cap * 2;
    if (cap > p->limits.args_max || cap < p->argv_cap) {
        cap = p->limits.args_max;
    }
    grown = aegis__realloc(p->alloc, p->argv, (size_t)cap * sizeof(*grown));
    if (grown == NULL) {
        return AEGIS_ENOMEM;
    }
    p->argv = grown;
    p->argv_cap = cap;
    return 0;
}

/* Read the "<c>N\r\n" line at @buf[@pos], whose text before CR may be at most @max bytes.
 * Returns 1 with *n_out and *end_out (the byte after the LF), 0 when the line is
 * incomplete, -1 when the line is complete but not a number followed by CRLF, -2 when
 * no CR comes within @max + 1 bytes. The outcome depends only on the line's bytes, never
 * on how much of what follows has arrived. */
static int read_count_line(const char *buf, size_t len, size_t pos, size_t max, int64_t *n_out,
                           size_t *end_out)
{
    size_t avail = len - pos;
    const char *cr = memchr(buf + pos, '\r', avail < max + 1 ? avail : max + 1);
    size_t r;

    if (cr == NULL) {
        return avail > max ? -2 : 0;
    }
    r = (size_t)(cr - buf);
    if (r + 1 >= len) {
        return 0;
    }
    if (buf[r + 1] != '\n' || !parse_ll(buf + pos + 1, r - pos - 1, n_out)) {
        return -1;
    }
    *end_out = r + 2;
    return 1;
}

static int parse_multibulk_count(struct aegis_resp_parser *p, const char *buf, size_t len)
{
    int64_t n = 0;
    size_t end = 0;
    int rv = read_count_line(buf, len, 0, p->limits.inline_bytes_max, &n, &end);

    if (rv == -2) {
        return fail(p, AEGIS_ETOOBIG, "too big mbulk count string", 0);
    }
    if (rv == 0) {
        p->need = len + 1;
        return 0;
    }
    if (rv < 0 || n > INT32_MAX) {
        return fail(p, AEGIS_ECORRUPT, "invalid multibulk length", 0);
    }
    if (n > (int64_t)p->limits.args_max) {
        return fail(p, AEGIS_ETOOBIG, "invalid multibulk length", 0);
    }
    p->multibulk = true;
    p->argc = n > 0 ? (uint32_t)n : 0;
    p->pos = end;
    return 1;
}

/* Parse the "$N\r\n" header of the next bulk. 1: p->bulk_len set; 0: need more; <0. */
static int parse_bulk_header(struct aegis_resp_parser *p, const char *buf, size_t len)
{
    int64_t n = 0;
    size_t end = 0;
    int rv;

    if (p->pos >= len) {
        p->need = p->pos + 1;
        return 0;
    }
    if (buf[p->pos] != '$') {
        return fail(p, AEGIS_ECORRUPT, "expected '$', got ", buf[p->pos]);
    }
    rv = read_count_line(buf, len, p->pos, p->limits.inline_bytes_max, &n, &end);
    if (rv == -2) {
        return fail(p, AEGIS_ETOOBIG, "too big bulk count string", 0);
    }
    if (rv == 0) {
        p->need = len + 1;
        return 0;
    }
    if (rv < 0 || n < 0) {
        return fail(p, AEGIS_ECORRUPT, "invalid bulk length", 0);
    }
    /* Refused from the header alone: nothing is allocated for the claimed size. */
    if ((uint64_t)n > p->limits.bulk_bytes_max) {
        return fail(p, AEGIS_ETOOBIG, "invalid bulk length", 0);
    }
    p->bulk_len = n;
    p->pos = end;
    return 1;
}

static int parse_multibulk(struct aegis_resp_parser *p, const char *buf, size_t len)
{
    int rv;

    if (!p->multibulk) {
        rv = parse_multibulk_count(p, buf, len);
        if (rv <= 0) {
            return rv;
        }
    }
    /* Budget: one iteration per argument, at most args_max. */
    while (p->argi < p->argc) {
        uint64_t bulk;

        if (p->bulk_len < 0) {
            rv = parse_bulk_header(p, buf, len);
            if (rv <= 0) {
                return rv;
            }
        }
        bulk = (uint64_t)p->bulk_len;
        if ((uint64_t)(len - p->pos) < bulk + 2) {
            p->need = (size_t)(p->pos + bulk + 2);
            return 0;
        }
        if (buf[p->pos + bulk] != '\r' || buf[p->pos + bulk + 1] != '\n') {
            return fail(p, AEGIS_ECORRUPT, "expected CRLF after bulk", 0);
        }
        rv = argv_reserve(p);
        if (rv != 0) {
            reset_command(p);
            return rv;
        }
        p->argv[p->argi].off = p->pos;
        p->argv[p->argi].len = (size_t)bulk;
        p->argi++;
        p->pos += (size_t)bulk + 2;
        p->bulk_len = -1;
    }
    return 1;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static char unescape(char c)
{
    switch (c) {
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    case 'b':
        return '\b';
    case 'a':
        return '\a';
    default:
        return c;
    }
}

/* Split one word of @line (@n bytes) starting at *r, writing its unescaped bytes at *w
 * (never ahead of *r, so in place is safe). Returns false on unbalanced quotes. */
static bool split_word(char *line, size_t n, size_t *r, size_t *w)
{
    bool dq = false, sq = false, closed = false;
    size_t i = *r, o = *w;

    /* Budget: each iteration consumes at least one byte of the line. */
    while (i < n && !closed) {
        char c = line[i];

        if (dq) {
            if (c == '\\' && i + 3 < n && line[i + 1] == 'x' && hex_digit(line[i + 2]) >= 0 &&
                hex_digit(line[i + 3]) >= 0) {
                line[o++] = (char)(hex_digit(line[i + 2]) * 16 + hex_digit(line[i + 3]));
                i += 4;
            } else if (c == '\\' && i + 1 < n) {
                line[o++] = unescape(line[i + 1]);
                i += 2;
            } else if (c == '"') {
                closed = true;
                i++;
            } else {
                line[o++] = c;
                i++;
            }
        } else if (sq) {
            if (c == '\\' && i + 1 < n && line[i + 1] == '\'') {
                line[o++] = '\'';
                i += 2;
            } else if (c == '\'') {
                closed = true;
                i++;
            } else {
                line[o++] = c;
                i++;
            }
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            break;
        } else if (c == '"') {
            dq = true;
            i++;
        } else if (c == '\'') {
            sq = true;
            i++;
        } else {
            line[o++] = c;
            i++;
        }
    }
    if ((dq || sq) && !closed) {
        return false; /* The line ended inside quotes. */
    }
    if (closed && i < n && !is_blank(line[i])) {
        return false; /* A closing quote must end the word, as in sdssplitargs(). */
    }
    *r = i;
    *w = o;
    return true;
}

static int parse_inline(struct aegis_resp_parser *p, char *buf, size_t len)
{
    const char *lf = memchr(buf, '\n', len);
    size_t n, r = 0, w = 0;

    if (lf == NULL || (size_t)(lf - buf) > p->limits.inline_bytes_max) {
        if (lf != NULL || len > p->limits.inline_bytes_max) {
            return fail(p, AEGIS_ETOOBIG, "too big inline request", 0);
        }
        p->need = len + 1;
        return 0;
    }
    n = (size_t)(lf - buf);
    p->pos = n + 1;
    if (n > 0 && buf[n - 1] == '\r') {
        n--;
    }
    /* Budget: each word consumes at least one byte of the line. */
    for (;;) {
        size_t start;
        int rv;

        while (r < n && is_blank(buf[r])) {
            r++;
        }
        if (r == n) {
            break;
        }
        if (p->argi == p->limits.args_max) {
            return fail(p, AEGIS_ETOOBIG, "too many arguments in inline request", 0);
        }
        rv = argv_reserve(p);
        if (rv != 0) {
            reset_command(p);
            return rv;
        }
        start = w;
        if (!split_word(buf, n, &r, &w)) {
            return fail(p, AEGIS_ECORRUPT, "unbalanced quotes in request", 0);
        }
        p->argv[p->argi].off = start;
        p->argv[p->argi].len = w - start;
        p->argi++;
    }
    p->argc = p->argi;
    return 1;
}

int aegis__resp_parse(struct aegis_resp_parser *p, char *buf, size_t len,
                      struct aegis_resp_cmd *cmd_out)
{
    int rv;

    AEGIS_ASSERT(len >= p->pos);
    if (len == 0) {
        p->need = 1;
        return 0;
    }
    if (p->multibulk || buf[0] == '*') {
        rv = parse_multibulk(p, buf, len);
    } else {
        rv = parse_inline(p, buf, len);
    }
    if (rv <= 0) {
        return rv;
    }
    AEGIS_ASSERT(p->argi == p->argc);
    AEGIS_ASSERT(p->pos <= len);
    /* Offsets become pointers into the buffer of this, the completing, call. */
    for (uint32_t i = 0; i < p->argc; i++) {
        size_t off = p->argv[i].off;

        AEGIS_ASSERT(off + p->argv[i].len <= p->pos);
        p->argv[i].ptr = buf + off;
    }
    cmd_out->argc = p->argc;
    cmd_out->argv = p->argv;
    cmd_out->bytes = p->pos;
    reset_command(p);
    return 1;
}

void aegis__resp_wbuf_init(struct aegis_resp_wbuf *w, const struct aegis_allocator *a,
                           size_t bytes_max)
{
    memset(w, 0, sizeof(*w));
    w->alloc = a;
    w->bytes_max = bytes_max;
}

void aegis__resp_wbuf_close(struct aegis_resp_wbuf *w)
{
    aegis__free(w->alloc, w->data);
    memset(w, 0, sizeof(*w));
}

void aegis__resp_wbuf_consume(struct aegis_resp_wbuf *w, size_t n)
{
    AEGIS_ASSERT(n <= w->len);
    memmove(w->data, w->data + n, w->len - n);
    w->len -= n;
}

void aegis__resp_wbuf_swap(struct aegis_resp_wbuf *a, struct aegis_resp_wbuf *b)
{
    struct aegis_resp_wbuf t = *a;

    AEGIS_ASSERT(a != b);
    *a = *b;
    *b = t;
}

/* Make room for @n more bytes; returns where they go, or NULL with *rv set. */
static char *wbuf_reserve(struct aegis_resp_wbuf *w, size_t n, int *rv)
{
    size_t want, cap;
    char *grown;

    if (n > SIZE_MAX - w->len || (w->bytes_max != 0 && w->len + n > w->bytes_max)) {
        *rv = AEGIS_ETOOBIG;
        return NULL;
    }
    want = w->len + n;
    if (want > w->cap) {
        cap = w->cap < 256 ? 256 : w->cap;
        while (cap < want) {
            cap = cap > SIZE_MAX / 2 ? want : cap * 2;
        }
        if (w->bytes_max != 0 && cap > w->bytes_max) {
            cap = w->bytes_max;
        }
        grown = aegis__realloc(w->alloc, w->data, cap);
        if (grown == NULL) {
            *rv = AEGIS_ENOMEM;
            return NULL;
        }
        w->data = grown;
        w->cap = cap;
    }
    *rv = 0;
    return w->data + w->len;
}

int aegis__resp_add_raw(struct aegis_resp_wbuf *w, const void *data, size_t len)
{
    int rv;
    char *p = wbuf_reserve(w, len, &rv);

    if (p == NULL) {
        return rv;
    }
    if (len > 0) {
        memcpy(p, data, len);
    }
    w->len += len;
    return 0;
}

/* Format @v in decimal into @out (at least 20 bytes); returns the length. */
static size_t format_i64(char *out, int64_t v)
{
    char tmp[20];
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    size_t n = 0, len = 0;

    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0) {
        out[len++] = '-';
    }
    while (n > 0) {
        out[len++] = tmp[--n];
    }
    return len;
}

/* "<c><v>\r\n", all or nothing. */
static int add_line_int(struct aegis_resp_wbuf *w, char c, int64_t v)
{
    char line[24];
    size_t n = 0;

    line[n++] = c;
    n += format_i64(line + n, v);
    line[n++] = '\r';
    line[n++] = '\n';
    return aegis__resp_add_raw(w, line, n);
}

/* "<c>@s\r\n" with CR and LF of @s turned into spaces. */
static int add_line_text(struct aegis_resp_wbuf *w, char c, const char *s)
{
    size_t n = strlen(s);
    int rv;
    char *p = wbuf_reserve(w, n + 3, &rv);

    if (p == NULL) {
        return rv;
    }
    p[0] = c;
    for (size_t i = 0; i < n; i++) {
        p[1 + i] = (s[i] == '\r' || s[i] == '\n') ? ' ' : s[i];
    }
    p[n + 1] = '\r';
    p[n + 2] = '\n';
    w->len += n + 3;
    return 0;
}

int aegis__resp_add_simple(struct aegis_resp_wbuf *w, const char *s)
{
    AEGIS_ASSERT(strpbrk(s, "\r\n") == NULL);
    return add_line_text(w, '+', s);
}

int aegis__resp_add_error(struct aegis_resp_wbuf *w, const char *s)
{
    return add_line_text(w, '-', s);
}

/* Format into @line (512 bytes); returns the length kept (cut at 511), 0 on error. */
static size_t vformat_line(char *line, const char *fmt, va_list ap)
{
    int n = vsnprintf(line, 512, fmt, ap);

    if (n < 0) {
        line[0] = '\0';
        return 0;
    }
    return (size_t)n < 512 ? (size_t)n : 511;
}

int aegis__resp_add_errorf(struct aegis_resp_wbuf *w, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    va_start(ap, fmt);
    (void)vformat_line(line, fmt, ap);
    va_end(ap);
    return aegis__resp_add_error(w, line);
}

int aegis__resp_add_rawf(struct aegis_resp_wbuf *w, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    size_t n;

    va_start(ap, fmt);
    n = vformat_line(line, fmt, ap);
    va_end(ap);
    return aegis__resp_add_raw(w, line, n);
}

int aegis__resp_add_int(struct aegis_resp_wbuf *w, int64_t v)
{
    return add_line_int(w, ':', v);
}

int aegis__resp_add_bulk_header(struct aegis_resp_wbuf *w, size_t len)
{
    AEGIS_ASSERT(len <= INT64_MAX);
    return add_line_int(w, '$', (int64_t)len);
}

int aegis__resp_add_bulk(struct aegis_resp_wbuf *w, const void *data, size_t len)
{
    size_t before = w->len;
    int rv;

    rv = aegis__resp_add_bulk_header(w, len);
    if (rv == 0) {
        rv = aegis__resp_add_raw(w, data, len);
    }
    if (rv == 0) {
        rv = aegis__resp_add_raw(w, "\r\n", 2);
    }
    if (rv != 0) {
        w->len = before; /* All or nothing. */
    }
    return rv;
}

int aegis__resp_add_null(struct aegis_resp_wbuf *w)
{
    return aegis__resp_add_raw(w, "$-1\r\n", 5);
}

int aegis__resp_add_array(struct aegis_resp_wbuf *w, size_t count)
{
    AEGIS_ASSERT(count <= INT64_MAX);
    return add_line_int(w, '*', (int64_t)count);
}

int aegis__resp_add_null_array(struct aegis_resp_wbuf *w)
{
    return aegis__resp_add_raw(w, "*-1\r\n", 5);
}

int aegis__resp_add_verbatim(struct aegis_resp_wbuf *w, const char *fmt, const void *data,
                             size_t len, int proto)
{
    size_t before = w->len;
    int rv;

    AEGIS_ASSERT(strlen(fmt) == 3);
    AEGIS_ASSERT(proto == 2 || proto == 3);
    if (proto == 2) {
        return aegis__resp_add_bulk(w, data, len);
    }
    AEGIS_ASSERT(len <= INT64_MAX - 4);
    rv = add_line_int(w, '=', (int64_t)len + 4);
    if (rv == 0) {
        rv = aegis__resp_add_raw(w, fmt, 3);
    }
    if (rv == 0) {
        rv = aegis__resp_add_raw(w, ":", 1);
    }
    if (rv == 0) {
        rv = aegis__resp_add_raw(w, data, len);
    }
    if (rv == 0) {
        rv = aegis__resp_add_raw(w, "\r\n", 2);
    }
    if (rv != 0) {
        w->len = before;
    }
    return rv;
}

int aegis__resp_add_command(struct aegis_resp_wbuf *w, uint32_t argc, const char *const *argv,
                            const size_t *lens)
{
    size_t before = w->len;
    int rv;

    rv = aegis__resp_add_array(w, argc);
    for (uint32_t i = 0; i < argc && rv == 0; i++) {
        rv = aegis__resp_add_bulk(w, argv[i], lens[i]);
    }
    if (rv != 0) {
        w->len = before;
    }
    return rv;
}

/* Parse the value whose type byte is at @buf[@pos] into *v; *end_out is the byte after
 * it (after its header line, for an array). 1, 0 (need more) or AEGIS_ECORRUPT. */
static int parse_reply_value(const char *buf, size_t len, size_t pos,
                             struct aegis_resp_value *v, size_t *end_out)
{
    const char *cr = memchr(buf + pos, '\r', len - pos);
    const char *line = buf + pos + 1;
    size_t r, n;
    int64_t x = 0;

    memset(v, 0, sizeof(*v));
    v->type = buf[pos];
    if (cr == NULL) {
        return 0;
    }
    r = (size_t)(cr - buf);
    if (r + 1 >= len) {
        return 0;
    }
    if (buf[r + 1] != '\n') {
        return AEGIS_ECORRUPT;
    }
    n = r - pos - 1;
    *end_out = r + 2;
    switch (v->type) {
    case AEGIS_RESP_SIMPLE:
    case AEGIS_RESP_ERROR:
        v->str = line;
        v->len = n;
        return 1;
    case AEGIS_RESP_INT:
        return parse_ll(line, n, &v->integer) ? 1 : AEGIS_ECORRUPT;
    case AEGIS_RESP_BULK:
    case AEGIS_RESP_ARRAY:
        break;
    default:
        return AEGIS_ECORRUPT;
    }
    if (!parse_ll(line, n, &x) || x < -1) {
        return AEGIS_ECORRUPT;
    }
    if (x == -1) {
        v->null = true;
        return 1;
    }
    v->integer = x;
    if (v->type == AEGIS_RESP_ARRAY) {
        return x <= AEGIS_RESP_REPLY_ELEMS_MAX ? 1 : AEGIS_ECORRUPT;
    }
    if ((uint64_t)x > AEGIS_RESP_BULK_BYTES_MAX_DEFAULT) {
        return AEGIS_ECORRUPT;
    }
    if ((uint64_t)(len - *end_out) < (uint64_t)x + 2) {
        return 0;
    }
    v->str = buf + *end_out;
    v->len = (size_t)x;
    if (v->str[x] != '\r' || v->str[x + 1] != '\n') {
        return AEGIS_ECORRUPT;
    }
    *end_out += (size_t)x + 2;
    return 1;
}

int aegis__resp_reply_parse(const char *buf, size_t len, struct aegis_resp_value *vals,
                            size_t vals_cap, size_t *vals_count_out, size_t *bytes_out)
{
    int64_t left[AEGIS_RESP_REPLY_DEPTH_MAX]; /* Elements still due per open array. */
    unsigned depth = 0;
    size_t pos = 0, count = 0;

    /* Budget: every value consumes at least 3 bytes ("+\r\n"), so at most len / 3. */
    for (;;) {
        struct aegis_resp_value v;
        size_t end = 0;
        int rv;

        if (pos >= len) {
            return 0;
        }
        rv = parse_reply_value(buf, len, pos, &v, &end);
        if (rv <= 0) {
            return rv;
        }
        AEGIS_ASSERT(end > pos);
        if (count < vals_cap) {
            vals[count] = v;
        }
        count++;
        pos = end;
        if (v.type == AEGIS_RESP_ARRAY && !v.null && v.integer > 0) {
            if (depth == AEGIS_RESP_REPLY_DEPTH_MAX) {
                return AEGIS_ECORRUPT;
            }
            left[depth++] = v.integer;
            continue;
        }
        /* A complete value: it fills one slot of its array, which may complete too. */
        while (depth > 0 && --left[depth - 1] == 0) {
            depth--;
        }
        if (depth == 0) {
            break;
        }
    }
    *vals_count_out = count;
    *bytes_out = pos;
    return 1;
}
