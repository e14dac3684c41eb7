/* SPDX-License-Identifier: MIT */
/* Fuzz target for the command-line value parsers (pipeline/args.c, used by aegisd,
 * aegis-cli, aegis-bench and AEGIS.ADD) and aegis-bench's own option parsers
 * (cmd/bench_config.h).
 *
 * The first input byte chooses the parser and its bounds; the rest, up to its first NUL,
 * is the argument string (as argv gives it):
 *   byte >= 240    aegis__args_config over the raw bytes (NULs included) as a file, with
 *                  room for 1 + (byte - 240) % 8 flags; otherwise
 *   byte % 5 == 0  aegis__args_u64 with the [min, max] of one of aegisd's flags
 *               1  aegis__args_hostport with a host buffer of AEGIS_HOST_MAX or less
 *               2  aegis__args_peers with room for 1..AEGIS_PEERS_MAX peers
 *               3  bench_parse_target, bench_parse_u64 and bench_parse_seconds
 *               4  bench_parse_ratio
 *
 * Properties (abort() on violation): no crash, no read past the string; a refusal
 * returns AEGIS_EINVAL, AEGIS_ERANGE or AEGIS_EEXIST, leaves the outputs untouched and
 * writes a terminated, printable message that starts with the flag's name; an accepted
 * value is within its bounds (numbers in [min, max] and all digits; hosts 1..63 bytes;
 * ports 1..65535; peer ids >= 1, no id or address twice) and round-trips: formatted back
 * (PRIu64, aegis__args_format_hostport, aegis__args_format_peers) it parses again to
 * exactly the same value. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aegis/aegis.h>

#include "cmd/bench_config.h"
#include "pipeline/args.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FLAG "--flag"

static const uint64_t ranges[][2] = {
    {1, UINT64_MAX}, {0, UINT64_MAX}, {1, 1000},    {2, 100000}, {16, UINT64_MAX},
    {1, 4096},       {16, 64u << 20}, {1, 65536},   {16, 1u << 22}, {1, 65535},
    {0, 0},          {UINT64_MAX, UINT64_MAX},
};

static void check(bool ok)
{
    if (!ok) {
        abort();
    }
}

/* A refusal: a known code and a terminated, printable message naming the flag. */
static void check_refusal(int rv, const char *err, size_t err_bytes)
{
    size_t n = strnlen(err, err_bytes);

    check(rv == AEGIS_EINVAL || rv == AEGIS_ERANGE || rv == AEGIS_EEXIST);
    check(n < err_bytes && strncmp(err, FLAG ": ", strlen(FLAG) + 2) == 0);
    for (size_t i = 0; i < n; i++) {
        check((unsigned char)err[i] >= 0x20 && (unsigned char)err[i] < 0x7f);
    }
}

static void fuzz_u64(const char *s, unsigned sel)
{
    const uint64_t *r = ranges[sel % (sizeof(ranges) / sizeof(ranges[0]))];
    char err[AEGIS_ARGS_ERR_BYTES], text[32];
    uint64_t v = 12345, w = 0;
    int rv = aegis__args_u64(FLAG, s, r[0], r[1], &v, err, sizeof(err));

    if (rv != 0) {
        check_refusal(rv, err, sizeof(err));
        check(v == 12345);
        return;
    }
    check(v >= r[0] && v <= r[1]);
    check(s[0] != '\0' && strspn(s, "0123456789") == strlen(s));
    snprintf(text, sizeof(text), "%" PRIu64, v);
    check(aegis__args_u64(FLAG, text, r[0], r[1], &w, NULL, 0) == 0 && w == v);
}

static void fuzz_hostport(const char *s, unsigned sel)
{
    size_t host_bytes = sel % 4 == 0 ? 1 + sel % AEGIS_HOST_MAX : AEGIS_HOST_MAX;
    char host[AEGIS_HOST_MAX], host2[AEGIS_HOST_MAX], err[AEGIS_ARGS_ERR_BYTES];
    char text[AEGIS_ARGS_HOSTPORT_BYTES];
    uint16_t port = 7, port2 = 0;
    int rv;

    memcpy(host, "untouched", 10);
    rv = aegis__args_hostport(FLAG, s, host, host_bytes, &port, err, sizeof(err));
    if (rv != 0) {
        check_refusal(rv, err, sizeof(err));
        check(port == 7 && strcmp(host, "untouched") == 0);
        return;
    }
    check(host[0] != '\0' && strlen(host) < host_bytes && port >= 1);
    check(aegis__args_format_hostport(host, port, text, sizeof(text)) > 0);
    check(aegis__args_hostport(FLAG, text, host2, sizeof(host2), &port2, NULL, 0) == 0);
    check(strcmp(host, host2) == 0 && port == port2);
}

static void fuzz_peers(const char *s, unsigned sel)
{
    struct aegis_peer_addr p[AEGIS_PEERS_MAX], q[AEGIS_PEERS_MAX];
    char err[AEGIS_ARGS_ERR_BYTES], text[AEGIS_PEERS_MAX * (21 + AEGIS_ARGS_HOSTPORT_BYTES)];
    uint32_t max = 1 + sel % AEGIS_PEERS_MAX, n = 99, m = 0;
    int rv;

    memset(p, 0xee, sizeof(p));
    rv = aegis__args_peers(FLAG, s, p, max, &n, err, sizeof(err));
    if (rv != 0) {
        check_refusal(rv, err, sizeof(err));
        check(n == 99 && p[0].id == 0xeeeeeeeeeeeeeeeeu);
        return;
    }
    check(n >= 1 && n <= max);
    for (uint32_t i = 0; i < n; i++) {
        check(p[i].id >= 1 && p[i].host[0] != '\0' && p[i].port >= 1);
        check(strnlen(p[i].host, AEGIS_HOST_MAX) < AEGIS_HOST_MAX);
        for (uint32_t j = 0; j < i; j++) {
            check(p[i].id != p[j].id);
            check(p[i].port != p[j].port || strcmp(p[i].host, p[j].host) != 0);
        }
    }
    check(aegis__args_format_peers(p, n, text, sizeof(text)) > 0);
    check(aegis__args_peers(FLAG, text, q, max, &m, NULL, 0) == 0 && m == n);
    for (uint32_t i = 0; i < n; i++) {
        check(q[i].id == p[i].id && q[i].port == p[i].port && strcmp(q[i].host, p[i].host) == 0);
    }
}

static void fuzz_bench(const char *s, unsigned sel)
{
    struct bench_target t, t2;
    uint64_t v = 0;
    double d = -1;
    char text[32];

    if (bench_parse_target(s, &t)) {
        char again[AEGIS_ARGS_HOSTPORT_BYTES + 2];

        check(bench_parse_u64(t.port, 1, 65535, &v));
        snprintf(again, sizeof(again), strchr(t.host, ':') ? "[%s]:%s" : "%s:%s", t.host,
                 t.port);
        check(bench_parse_target(again, &t2) && strcmp(t.host, t2.host) == 0 &&
              strcmp(t.port, t2.port) == 0);
    }
    if (bench_parse_u64(s, 0, ranges[sel % 12][1], &v)) {
        uint64_t w = 0;

        snprintf(text, sizeof(text), "%" PRIu64, v);
        check(bench_parse_u64(text, 0, UINT64_MAX, &w) && w == v);
    }
    if (bench_parse_seconds(s, &d)) {
        check(d >= 0.0 && d <= 86400.0 && strspn(s, "0123456789.") == strlen(s));
    }
}

static void fuzz_ratio(const char *s)
{
    unsigned w[BENCH_OP_COUNT];
    unsigned total = 0;

    if (!bench_parse_ratio(s, w)) {
        return;
    }
    for (int i = 0; i < BENCH_OP_COUNT; i++) {
        check(w[i] <= 1000000);
        total += w[i];
    }
    check(total > 0);
}

static const struct option conf_opts[] = {
    {"id", required_argument, NULL, 1},
    {"peers", required_argument, NULL, 2},
    {"join", no_argument, NULL, 3},
    {"log-file", required_argument, NULL, 4},
    {NULL, 0, NULL, 0},
};

/* A config file of the raw bytes @p (NULs included): refused with "f.conf:LINE: ..." or
 * read into entries of the table, each once, with values free of control bytes and of
 * blanks at either end. */
static void fuzz_config(const uint8_t *p, size_t n, unsigned sel)
{
    struct aegis_args_conf_entry e[8];
    char err[AEGIS_ARGS_ERR_BYTES];
    uint32_t max = 1 + sel % 8, count = 99;
    char *text = malloc(n + 1);
    int rv;

    check(text != NULL);
    memcpy(text, p, n);
    rv = aegis__args_config("f.conf", text, n, conf_opts, e, max, &count, err, sizeof(err));
    if (rv != 0) {
        size_t len = strnlen(err, sizeof(err));

        check(rv == AEGIS_EINVAL && len < sizeof(err) && strncmp(err, "f.conf:", 7) == 0);
        for (size_t i = 0; i < len; i++) {
            check((unsigned char)err[i] >= 0x20 && (unsigned char)err[i] < 0x7f);
        }
        free(text);
        return;
    }
    check(count <= max);
    for (uint32_t i = 0; i < count; i++) {
        const char *v = e[i].value;

        check(e[i].opt >= conf_opts && e[i].opt < conf_opts + 4 && e[i].line >= 1);
        check((v == NULL) == (e[i].opt->has_arg == no_argument));
        for (uint32_t j = 0; j < i; j++) {
            check(e[j].opt != e[i].opt && e[j].line < e[i].line);
        }
        if (v != NULL) {
            size_t len = strlen(v);

            check(len > 0 && v[0] != ' ' && v[0] != '\t' && v[len - 1] != ' ' &&
                  v[len - 1] != '\t' && v >= text && v + len <= text + n);
            for (size_t k = 0; k < len; k++) {
                check((unsigned char)v[k] >= 0x20 || v[k] == '\t');
            }
        }
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s;
    unsigned sel;

    if (size == 0) {
        return 0;
    }
    sel = data[0];
    s = malloc(size);
    check(s != NULL);
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    if (sel >= 240) {
        fuzz_config(data + 1, size - 1, sel - 240);
        free(s);
        return 0;
    }
    switch (sel % 5) {
    case 0:
        fuzz_u64(s, sel / 5);
        break;
    case 1:
        fuzz_hostport(s, sel / 5);
        break;
    case 2:
        fuzz_peers(s, sel / 5);
        break;
    case 3:
        fuzz_bench(s, sel / 5);
        break;
    default:
        fuzz_ratio(s);
        break;
    }
    free(s);
    return 0;
}
