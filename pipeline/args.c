/* SPDX-License-Identifier: MIT */
/* Command-line value parsing; the rules are in args.h.
 *
 * Every parser works on a span (pointer and length) of the caller's string so that the
 * peer list needs no copy and no strtok: an entry is a span, its id and address are
 * spans within it. Numbers are read digit by digit (strtoull skips spaces, accepts a sign
 * and negates "-1" into 2^64-1, which is how aegisd once took " -1" as a node id). A
 * message quotes at most EXCERPT_MAX bytes of the value, with control bytes shown as '?'
 * so that a hostile argument cannot write escape sequences to a terminal. */
#include "pipeline/args.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <aegis/aegis.h>

#define EXCERPT_MAX 48u

_Static_assert(AEGIS_ARGS_HOSTPORT_BYTES >= 2 + (AEGIS_HOST_MAX - 1) + 1 + 5 + 1,
               "AEGIS_ARGS_HOSTPORT_BYTES holds the longest [host]:port");

struct span {
    const char *p;
    size_t len;
};

static void set_err(char *err, size_t err_bytes, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t err_bytes, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || err_bytes == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err, err_bytes, fmt, ap);
    va_end(ap);
}

/* A printable copy of @s for a message: at most EXCERPT_MAX bytes, then "...". */
static void excerpt(struct span s, char out[EXCERPT_MAX + 4])
{
    size_t n = s.len < EXCERPT_MAX ? s.len : EXCERPT_MAX;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.p[i];

        out[i] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
    }
    memcpy(out + n, s.len > n ? "..." : "", s.len > n ? 4 : 1);
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Why @s is not a plain decimal that fits in 64 bits, or NULL (and the value in @out). */
static const char *read_decimal(struct span s, uint64_t *out, int *rv_out)
{
    uint64_t v = 0;

    *rv_out = AEGIS_EINVAL;
    if (s.len == 0) {
        return "empty";
    }
    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];

        if (c == '-' || c == '+') {
            return "a sign is not allowed";
        }
        if (c == ' ' || (c >= '\t' && c <= '\r')) {
            return "spaces are not allowed";
        }
        if (!is_digit(c)) {
            return "not a decimal integer";
        }
    }
    for (size_t i = 0; i < s.len; i++) {
        uint64_t d = (uint64_t)(s.p[i] - '0');

        if (v > (UINT64_MAX - d) / 10) {
            *rv_out = AEGIS_ERANGE;
            return "larger than 18446744073709551615";
        }
        v = v * 10 + d;
    }
    *out = v;
    *rv_out = 0;
    return NULL;
}

/* Parse the number @s in [@min, @max]; on error the message is "@ctx: expected ...". */
static int u64_span(const char *ctx, struct span s, uint64_t min, uint64_t max, uint64_t *out,
                    char *err, size_t err_bytes)
{
    char ex[EXCERPT_MAX + 4];
    const char *why;
    uint64_t v = 0;
    int rv;

    why = read_decimal(s, &v, &rv);
    if (why == NULL && (v < min || v > max)) {
        why = "out of range";
        rv = AEGIS_ERANGE;
    }
    if (why != NULL) {
        excerpt(s, ex);
        set_err(err, err_bytes,
                "%s: expected an integer in [%" PRIu64 ", %" PRIu64 "], got '%s' (%s)", ctx,
                min, max, ex, why);
        return rv;
    }
    *out = v;
    return 0;
}

int aegis__args_u64(const char *flag, const char *s, uint64_t min, uint64_t max,
                    uint64_t *out, char *err, size_t err_bytes)
{
    return u64_span(flag, (struct span){s, strlen(s)}, min, max, out, err, err_bytes);
}

int aegis__args_bytes(const char *flag, const char *s, uint64_t min, uint64_t max,
                      uint64_t *out, char *err, size_t err_bytes)
{
    static const char units[] = "KMGT";
    size_t len = strlen(s);
    const char *u = len > 0 ? strchr(units, s[len - 1] & ~0x20) : NULL;
    unsigned shift = 0;
    uint64_t v;
    int rv;

    if (u != NULL && *u != '\0') {
        shift = 10u * (unsigned)(u - units + 1);
        len--; /* "64M": the digits, then one unit of 1024^k. */
    }
    rv = u64_span(flag, (struct span){s, len}, 0, UINT64_MAX >> shift, &v, err, err_bytes);
    if (rv == 0 && ((v << shift) < min || (v << shift) > max)) {
        char ex[EXCERPT_MAX + 4];

        excerpt((struct span){s, strlen(s)}, ex);
        set_err(err, err_bytes, "%s: expected a size in [%" PRIu64 ", %" PRIu64 "] bytes, "
                "got '%s' (out of range)", flag, min, max, ex);
        rv = AEGIS_ERANGE;
    }
    if (rv == 0) {
        *out = v << shift;
    }
    return rv;
}

static bool host_char(char c, bool bracketed)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '.' ||
           c == '-' || c == '_' || (bracketed && (c == ':' || c == '%'));
}

/* Split @s into host and port spans; the reason when malformed, or NULL. */
static const char *split_hostport(struct span s, struct span *host, struct span *port)
{
    const char *colon;
    bool bracketed = s.len > 0 && s.p[0] == '[';

    if (bracketed) {
        const char *close = memchr(s.p, ']', s.len);

        if (close == NULL) {
            return "missing ']' after an IPv6 address";
        }
        *host = (struct span){s.p + 1, (size_t)(close - s.p - 1)};
        colon = close + 1;
        if (colon == s.p + s.len || *colon != ':') {
            return "expected ':PORT' after ']'";
        }
        if (memchr(host->p, ':', host->len) == NULL) {
            return "brackets are for IPv6 addresses only";
        }
    } else {
        colon = memchr(s.p, ':', s.len);
        if (colon == NULL) {
            return "expected HOST:PORT";
        }
        *host = (struct span){s.p, (size_t)(colon - s.p)};
        if (memchr(colon + 1, ':', s.len - host->len - 1) != NULL) {
            return "an IPv6 address needs brackets, as in [::1]:7001";
        }
    }
    *port = (struct span){colon + 1, (size_t)(s.p + s.len - colon - 1)};
    if (host->len == 0) {
        return "empty host";
    }
    if (host->len >= AEGIS_HOST_MAX) {
        return "host longer than 63 bytes";
    }
    for (size_t i = 0; i < host->len; i++) {
        if (!host_char(host->p[i], bracketed)) {
            return "a host has only letters, digits and . - _ (and : % inside [])";
        }
    }
    return NULL;
}

/* Parse @s as HOST:PORT; messages start with @ctx. */
static int hostport_span(const char *ctx, struct span s, char *host, size_t host_bytes,
                         uint16_t *port, char *err, size_t err_bytes)
{
    char ex[EXCERPT_MAX + 4], port_ctx[EXCERPT_MAX + 96];
    struct span h = {NULL, 0}, p = {NULL, 0};
    const char *why = split_hostport(s, &h, &p);
    uint64_t v = 0;
    int rv;

    if (why == NULL && h.len >= host_bytes) {
        why = "host too long";
    }
    excerpt(s, ex);
    if (why != NULL) {
        set_err(err, err_bytes, "%s: expected HOST:PORT or [IPV6]:PORT, got '%s' (%s)", ctx, ex,
                why);
        return AEGIS_EINVAL;
    }
    snprintf(port_ctx, sizeof(port_ctx), "%s: '%s': port", ctx, ex);
    rv = u64_span(port_ctx, p, 1, 65535, &v, err, err_bytes);
    if (rv != 0) {
        return rv;
    }
    memcpy(host, h.p, h.len);
    host[h.len] = '\0';
    *port = (uint16_t)v;
    return 0;
}

int aegis__args_hostport(const char *flag, const char *s, char *host, size_t host_bytes,
                         uint16_t *port, char *err, size_t err_bytes)
{
    return hostport_span(flag, (struct span){s, strlen(s)}, host, host_bytes, port, err,
                         err_bytes);
}

/* Parse one entry ID=HOST:PORT (@n-th, from 1) into @p. */
static int peer_span(const char *flag, uint32_t n, struct span s, struct aegis_peer_addr *p,
                     char *err, size_t err_bytes)
{
    char ex[EXCERPT_MAX + 4], ctx[EXCERPT_MAX + 96];
    const char *eq = s.len > 0 ? memchr(s.p, '=', s.len) : NULL;
    struct span id, addr;
    int rv;

    excerpt(s, ex);
    if (eq == NULL) {
        set_err(err, err_bytes, "%s: entry %" PRIu32 " '%s': expected ID=HOST:PORT", flag, n,
                ex);
        return AEGIS_EINVAL;
    }
    id = (struct span){s.p, (size_t)(eq - s.p)};
    addr = (struct span){eq + 1, s.len - id.len - 1};
    snprintf(ctx, sizeof(ctx), "%s: entry %" PRIu32 " '%s': peer id", flag, n, ex);
    memset(p, 0, sizeof(*p));
    rv = u64_span(ctx, id, 1, UINT64_MAX, &p->id, err, err_bytes);
    if (rv == 0) {
        snprintf(ctx, sizeof(ctx), "%s: entry %" PRIu32, flag, n);
        rv = hostport_span(ctx, addr, p->host, sizeof(p->host), &p->port, err, err_bytes);
    }
    return rv;
}

/* AEGIS_EEXIST with a message if @p repeats an id or address of @prev[0..count). */
static int check_unique(const char *flag, const struct aegis_peer_addr *prev, uint32_t count,
                        const struct aegis_peer_addr *p, char *err, size_t err_bytes)
{
    for (uint32_t i = 0; i < count; i++) {
        if (prev[i].id == p->id) {
            set_err(err, err_bytes, "%s: peer id %" PRIu64 " given twice", flag, p->id);
            return AEGIS_EEXIST;
        }
        if (prev[i].port == p->port && strcmp(prev[i].host, p->host) == 0) {
            char a[AEGIS_ARGS_HOSTPORT_BYTES];

            aegis__args_format_hostport(p->host, p->port, a, sizeof(a));
            set_err(err, err_bytes,
                    "%s: address %s given twice (peers %" PRIu64 " and %" PRIu64 ")", flag, a,
                    prev[i].id, p->id);
            return AEGIS_EEXIST;
        }
    }
    return 0;
}

int aegis__args_peers(const char *flag, const char *s, struct aegis_peer_addr *peers,
                      uint32_t peers_max, uint32_t *count_out, char *err, size_t err_bytes)
{
    struct aegis_peer_addr got[AEGIS_PEERS_MAX];
    uint32_t cap = peers_max < AEGIS_PEERS_MAX ? peers_max : AEGIS_PEERS_MAX, count = 0;
    size_t len = strlen(s), off = 0;

    if (len == 0) {
        set_err(err, err_bytes, "%s: expected ID=HOST:PORT,... got an empty list", flag);
        return AEGIS_EINVAL;
    }
    while (off <= len) {
        const char *comma = memchr(s + off, ',', len - off);
        struct span e = {s + off, comma == NULL ? len - off : (size_t)(comma - (s + off))};
        int rv;

        if (count == cap) {
            set_err(err, err_bytes, "%s: more than %" PRIu32 " peers", flag, cap);
            return AEGIS_ERANGE;
        }
        if (e.len == 0) {
            set_err(err, err_bytes, "%s: entry %" PRIu32 " is empty (a stray ',')", flag,
                    count + 1);
            return AEGIS_EINVAL;
        }
        rv = peer_span(flag, count + 1, e, &got[count], err, err_bytes);
        if (rv == 0) {
            rv = check_unique(flag, got, count, &got[count], err, err_bytes);
        }
        if (rv != 0) {
            return rv;
        }
        count++;
        off += e.len + 1; /* Past the comma; past the end (len + 1) after the last entry. */
    }
    memcpy(peers, got, count * sizeof(got[0]));
    *count_out = count;
    return 0;
}

size_t aegis__args_format_hostport(const char *host, uint16_t port, char *out,
                                   size_t out_bytes)
{
    bool v6 = strchr(host, ':') != NULL;
    int n = snprintf(out, out_bytes, v6 ? "[%s]:%u" : "%s:%u", host, (unsigned)port);

    return n < 0 || (size_t)n >= out_bytes ? 0 : (size_t)n;
}

size_t aegis__args_format_peers(const struct aegis_peer_addr *peers, uint32_t count, char *out,
                                size_t out_bytes)
{
    size_t off = 0;

    if (out_bytes == 0) {
        return 0;
    }
    out[0] = '\0';
    for (uint32_t i = 0; i < count; i++) {
        char a[AEGIS_ARGS_HOSTPORT_BYTES];
        int n;

        if (aegis__args_format_hostport(peers[i].host, peers[i].port, a, sizeof(a)) == 0) {
            return 0;
        }
        n = snprintf(out + off, out_bytes - off, "%s%" PRIu64 "=%s", i == 0 ? "" : ",",
                     peers[i].id, a);
        if (n < 0 || (size_t)n >= out_bytes - off) {
            return 0;
        }
        off += (size_t)n;
    }
    return off;
}

/* ---- Config files (aegisd --config): rules in args.h. ---- */

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static const struct option *conf_find(const struct option *opts, struct span name)
{
    for (const struct option *o = opts; o->name != NULL; o++) {
        if (strlen(o->name) == name.len && memcmp(o->name, name.p, name.len) == 0) {
            return o;
        }
    }
    return NULL;
}

/* Why line @l (NUL-terminated in place by the caller's split) is refused, or NULL; a flag
 * line fills @e. @l.p is writable. */
static const char *conf_line(char *p, size_t len, const struct option *opts,
                             struct aegis_args_conf_entry *e, bool *is_flag)
{
    static const char *const refused[] = {"config", "help", "version"};
    size_t i = 0, name_end, v;
    struct span name;

    *is_flag = false;
    if (len > AEGIS_ARGS_CONF_LINE_MAX) {
        return "line too long";
    }
    for (size_t k = 0; k < len; k++) {
        unsigned char c = (unsigned char)p[k];

        if ((c < 0x20 && c != '\t' && !(c == '\r' && k + 1 == len)) || c == 0x7f) {
            return "a control byte (or NUL) in the line";
        }
    }
    if (len > 0 && p[len - 1] == '\r') {
        len--; /* A file written on Windows. */
    }
    while (i < len && is_blank(p[i])) {
        i++;
    }
    if (i == len || p[i] == '#') {
        return NULL;
    }
    name_end = i;
    while (name_end < len && !is_blank(p[name_end])) {
        name_end++;
    }
    name = (struct span){p + i, name_end - i};
    if (name.len >= 2 && name.p[0] == '-' && name.p[1] == '-') {
        return "write the flag's name without '--'";
    }
    for (size_t k = 0; k < sizeof(refused) / sizeof(refused[0]); k++) {
        if (strlen(refused[k]) == name.len && memcmp(refused[k], name.p, name.len) == 0) {
            return "this flag is for the command line only";
        }
    }
    e->opt = conf_find(opts, name);
    if (e->opt == NULL) {
        return "unknown flag";
    }
    v = name_end;
    while (v < len && is_blank(p[v])) {
        v++;
    }
    while (len > v && is_blank(p[len - 1])) {
        len--;
    }
    p[name_end] = '\0';
    if (e->opt->has_arg == no_argument && v < len) {
        return "this flag takes no value";
    }
    if (e->opt->has_arg == required_argument && v == len) {
        return "missing value";
    }
    p[len] = '\0';
    e->value = v < len ? p + v : NULL;
    *is_flag = true;
    return NULL;
}

int aegis__args_config(const char *path, char *text, size_t len, const struct option *opts,
                       struct aegis_args_conf_entry *out, uint32_t out_max,
                       uint32_t *count_out, char *err, size_t err_bytes)
{
    uint32_t count = 0, line = 0;
    size_t off = 0;

    text[len] = '\0';
    /* Bounded by @len: each round consumes one line. */
    while (off < len) {
        char *nl = memchr(text + off, '\n', len - off);
        size_t l = nl == NULL ? len - off : (size_t)(nl - (text + off));
        struct aegis_args_conf_entry e = {0};
        const char *why;
        bool is_flag;

        line++;
        why = conf_line(text + off, l, opts, &e, &is_flag);
        if (why == NULL && is_flag) {
            for (uint32_t k = 0; k < count; k++) {
                if (out[k].opt == e.opt) {
                    why = "given twice in the file";
                }
            }
            if (why == NULL && count == out_max) {
                why = "too many flags";
            }
        }
        if (why != NULL) {
            char ex[EXCERPT_MAX + 4];

            excerpt((struct span){text + off, strnlen(text + off, l)}, ex);
            set_err(err, err_bytes, "%s:%" PRIu32 ": %s: '%s'", path, line, why, ex);
            return AEGIS_EINVAL;
        }
        if (is_flag) {
            e.line = line;
            out[count++] = e;
        }
        off += l + 1;
    }
    *count_out = count;
    return 0;
}
