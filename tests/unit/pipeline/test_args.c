/* SPDX-License-Identifier: MIT */
/* Tests of the flag value parsers (pipeline/args.c): numbers refuse a sign, spaces, an
 * empty value and overflow with a message naming the flag; addresses take IPv6 literals
 * in brackets; peer lists refuse ids below 1, empty entries and duplicates; whatever is
 * accepted formats back to a string that parses to the same value. */
#include <aegis/aegis.h>

#include "lib/test.h"
#include <getopt.h>

#include "pipeline/args.h"

/* @s is refused by the number parser for flag --id with @rv, and the message names the
 * flag and the value. */
static bool u64_refused(const char *s, int rv)
{
    char err[AEGIS_ARGS_ERR_BYTES] = "";
    uint64_t v = 42;
    char quoted[64];

    snprintf(quoted, sizeof(quoted), "'%s'", s);
    return aegis__args_u64("--id", s, 1, UINT64_MAX, &v, err, sizeof(err)) == rv && v == 42 &&
           strncmp(err, "--id: ", 6) == 0 && strstr(err, quoted) != NULL;
}

TEST(args, numbers_refuse_sign_spaces_empty_overflow)
{
    ASSERT_TRUE(u64_refused("-1", AEGIS_EINVAL));
    ASSERT_TRUE(u64_refused(" -1", AEGIS_EINVAL));
    ASSERT_TRUE(u64_refused(" 1", AEGIS_EINVAL));
    ASSERT_TRUE(u64_refused("1 ", AEGIS_EINVAL));
    ASSERT_TRUE(u64_refused("+1", AEGIS_EINVAL));
    ASSERT_TRUE(u64_refused("", AEGIS_EINVAL));
    ASSERT_TRUE(u64_refused("0x10", AEGIS_EINVAL));
    ASSERT_TRUE(u64_refused("1e3", AEGIS_EINVAL));
    ASSERT_TRUE(u64_refused("18446744073709551616", AEGIS_ERANGE));
    ASSERT_TRUE(u64_refused("99999999999999999999999", AEGIS_ERANGE));
    ASSERT_TRUE(u64_refused("0", AEGIS_ERANGE)); /* Below the minimum. */
    ASSERT_ERR(aegis__args_u64("--id", "\t1", 1, 9, &(uint64_t){0}, NULL, 0), AEGIS_EINVAL);
    ASSERT_ERR(aegis__args_u64("--id", "1\n", 1, 9, &(uint64_t){0}, NULL, 0), AEGIS_EINVAL);
    return TEST_PASS;
}

TEST(args, sizes_with_units)
{
    char err[AEGIS_ARGS_ERR_BYTES];
    uint64_t v = 7;

    ASSERT_OK(aegis__args_bytes("--log-cache-bytes", "0", 0, UINT64_MAX, &v, err, sizeof(err)));
    ASSERT_EQ_U64(v, 0);
    ASSERT_OK(aegis__args_bytes("--x", "65536", 0, UINT64_MAX, &v, err, sizeof(err)));
    ASSERT_EQ_U64(v, 65536);
    ASSERT_OK(aegis__args_bytes("--x", "64M", 0, UINT64_MAX, &v, err, sizeof(err)));
    ASSERT_EQ_U64(v, 64u << 20);
    ASSERT_OK(aegis__args_bytes("--x", "2g", 0, UINT64_MAX, &v, err, sizeof(err)));
    ASSERT_EQ_U64(v, (uint64_t)2 << 30);
    ASSERT_OK(aegis__args_bytes("--x", "3k", 0, UINT64_MAX, &v, err, sizeof(err)));
    ASSERT_EQ_U64(v, 3072);
    v = 7;
    ASSERT_ERR(aegis__args_bytes("--x", "M", 0, UINT64_MAX, &v, err, sizeof(err)), AEGIS_EINVAL);
    ASSERT_ERR(aegis__args_bytes("--x", "", 0, UINT64_MAX, &v, err, sizeof(err)), AEGIS_EINVAL);
    ASSERT_ERR(aegis__args_bytes("--x", "1MB", 0, UINT64_MAX, &v, err, sizeof(err)), AEGIS_EINVAL);
    ASSERT_ERR(aegis__args_bytes("--x", "-1", 0, UINT64_MAX, &v, err, sizeof(err)), AEGIS_EINVAL);
    ASSERT_ERR(aegis__args_bytes("--x", "17179869184T", 0, UINT64_MAX, &v, err, sizeof(err)),
               AEGIS_ERANGE);
    ASSERT_ERR(aegis__args_bytes("--x", "1K", 4096, UINT64_MAX, &v, err, sizeof(err)),
               AEGIS_ERANGE);
    ASSERT_TRUE(strstr(err, "--x") != NULL && strstr(err, "'1K'") != NULL);
    ASSERT_EQ_U64(v, 7);
    return TEST_PASS;
}

TEST(args, numbers_in_range)
{
    char err[AEGIS_ARGS_ERR_BYTES];
    uint64_t v = 0;

    ASSERT_OK(aegis__args_u64("--id", "18446744073709551615", 1, UINT64_MAX, &v, err,
                              sizeof(err)));
    ASSERT_EQ_U64(v, UINT64_MAX);
    ASSERT_OK(aegis__args_u64("--tick-ms", "1000", 1, 1000, &v, NULL, 0));
    ASSERT_EQ_U64(v, 1000);
    ASSERT_OK(aegis__args_u64("--seed", "0", 0, UINT64_MAX, &v, NULL, 0));
    ASSERT_EQ_U64(v, 0);
    ASSERT_ERR(aegis__args_u64("--tick-ms", "1001", 1, 1000, &v, err, sizeof(err)),
               AEGIS_ERANGE);
    ASSERT_STR_EQ(err, "--tick-ms: expected an integer in [1, 1000], got '1001' (out of range)");
    return TEST_PASS;
}

TEST(args, message_quotes_a_printable_excerpt)
{
    char err[AEGIS_ARGS_ERR_BYTES], longval[200];

    ASSERT_ERR(aegis__args_u64("--id", "1\033[2J", 1, 9, &(uint64_t){0}, err, sizeof(err)),
               AEGIS_EINVAL);
    ASSERT_TRUE(strchr(err, '\033') == NULL);
    ASSERT_TRUE(strstr(err, "'1?[2J'") != NULL);
    memset(longval, '7', sizeof(longval) - 1);
    longval[sizeof(longval) - 1] = '\0';
    ASSERT_ERR(aegis__args_u64("--id", longval, 1, 9, &(uint64_t){0}, err, sizeof(err)),
               AEGIS_ERANGE);
    ASSERT_TRUE(strstr(err, "...'") != NULL && strlen(err) < 200);
    return TEST_PASS;
}

TEST(args, hostport_plain_and_ipv6_in_brackets)
{
    char host[AEGIS_HOST_MAX], err[AEGIS_ARGS_ERR_BYTES];
    uint16_t port = 0;

    ASSERT_OK(aegis__args_hostport("--client", "127.0.0.1:6379", host, sizeof(host), &port,
                                   err, sizeof(err)));
    ASSERT_STR_EQ(host, "127.0.0.1");
    ASSERT_EQ_U64(port, 6379);
    ASSERT_OK(aegis__args_hostport("--client", "[::1]:7001", host, sizeof(host), &port, err,
                                   sizeof(err)));
    ASSERT_STR_EQ(host, "::1");
    ASSERT_EQ_U64(port, 7001);
    ASSERT_OK(aegis__args_hostport("--client", "[fe80::1%lo]:65535", host, sizeof(host), &port,
                                   err, sizeof(err)));
    ASSERT_STR_EQ(host, "fe80::1%lo");
    ASSERT_OK(aegis__args_hostport("--client", "node-a.example_1:1", host, sizeof(host), &port,
                                   err, sizeof(err)));
    ASSERT_STR_EQ(host, "node-a.example_1");
    return TEST_PASS;
}

static int hostport_rv(const char *s, char *err)
{
    char host[AEGIS_HOST_MAX] = "untouched";
    uint16_t port = 9;
    int rv = aegis__args_hostport("--client", s, host, sizeof(host), &port, err,
                                  AEGIS_ARGS_ERR_BYTES);

    if (rv != 0 && (strcmp(host, "untouched") != 0 || port != 9)) {
        return 1; /* An output written on error. */
    }
    return rv;
}

TEST(args, hostport_refused)
{
    static const char *const bad[] = {
        "127.0.0.1",    "127.0.0.1:",  ":6379",     "h:0",         "h:65536",     "h:-1",
        "h: 1",         "h:1 ",        "h:+1",      "::1:7001",    "[::1]7001",   "[::1",
        "[]:1",         "[host]:1",    "h h:1",     "h,x:1",       "h=x:1",       "[::1]:",
        "[::1]:7001]",  "h/x:1",       "",          "[::1]:1:2",
    };
    char err[AEGIS_ARGS_ERR_BYTES];
    char longhost[AEGIS_HOST_MAX + 8];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rv = hostport_rv(bad[i], err);

        if (rv != AEGIS_EINVAL && rv != AEGIS_ERANGE) {
            FAIL("'%s' gave %d", bad[i], rv);
        }
        if (strncmp(err, "--client: ", 10) != 0) {
            FAIL("'%s': message '%s' does not name the flag", bad[i], err);
        }
    }
    memset(longhost, 'a', AEGIS_HOST_MAX);
    memcpy(longhost + AEGIS_HOST_MAX, ":1", 3);
    ASSERT_ERR(hostport_rv(longhost, err), AEGIS_EINVAL);
    longhost[AEGIS_HOST_MAX - 1] = ':'; /* 63 bytes of host: the longest allowed. */
    longhost[AEGIS_HOST_MAX] = '1';
    longhost[AEGIS_HOST_MAX + 1] = '\0';
    ASSERT_OK(hostport_rv(longhost, err));
    return TEST_PASS;
}

TEST(args, peers_parsed)
{
    struct aegis_peer_addr p[AEGIS_PEERS_MAX];
    char err[AEGIS_ARGS_ERR_BYTES];
    uint32_t n = 0;

    ASSERT_OK(aegis__args_peers("--peers", "1=127.0.0.1:7001,2=[::1]:7002,3=node-c:7003", p,
                                AEGIS_PEERS_MAX, &n, err, sizeof(err)));
    ASSERT_EQ_U64(n, 3);
    ASSERT_EQ_U64(p[0].id, 1);
    ASSERT_STR_EQ(p[0].host, "127.0.0.1");
    ASSERT_EQ_U64(p[0].port, 7001);
    ASSERT_EQ_U64(p[1].id, 2);
    ASSERT_STR_EQ(p[1].host, "::1");
    ASSERT_EQ_U64(p[1].port, 7002);
    ASSERT_STR_EQ(p[2].host, "node-c");
    return TEST_PASS;
}

/* @s is refused with @rv, the outputs untouched and the message starting "--peers: ". */
static bool peers_refused(const char *s, int rv, const char *why)
{
    struct aegis_peer_addr p[AEGIS_PEERS_MAX] = {{.id = 77}};
    char err[AEGIS_ARGS_ERR_BYTES] = "";
    uint32_t n = 5;

    if (aegis__args_peers("--peers", s, p, AEGIS_PEERS_MAX, &n, err, sizeof(err)) != rv ||
        n != 5 || p[0].id != 77 || strncmp(err, "--peers: ", 9) != 0 ||
        strstr(err, why) == NULL) {
        fprintf(stderr, "  '%s': '%s'\n", s, err);
        return false;
    }
    return true;
}

TEST(args, peers_refused)
{
    char many[1024] = "";

    ASSERT_TRUE(peers_refused("-1=host:7001", AEGIS_EINVAL, "peer id"));
    ASSERT_TRUE(peers_refused(" 1=host:7001", AEGIS_EINVAL, "spaces"));
    ASSERT_TRUE(peers_refused("0=host:7001", AEGIS_ERANGE, "peer id"));
    ASSERT_TRUE(peers_refused("18446744073709551616=h:1", AEGIS_ERANGE, "larger"));
    ASSERT_TRUE(peers_refused("=host:7001", AEGIS_EINVAL, "empty"));
    ASSERT_TRUE(peers_refused("1host:7001", AEGIS_EINVAL, "ID=HOST:PORT"));
    ASSERT_TRUE(peers_refused("", AEGIS_EINVAL, "empty"));
    ASSERT_TRUE(peers_refused("1=h:1,", AEGIS_EINVAL, "entry 2 is empty"));
    ASSERT_TRUE(peers_refused(",1=h:1", AEGIS_EINVAL, "entry 1 is empty"));
    ASSERT_TRUE(peers_refused("1=h:1,,2=h:2", AEGIS_EINVAL, "entry 2 is empty"));
    ASSERT_TRUE(peers_refused("1=h:1,1=g:2", AEGIS_EEXIST, "peer id 1 given twice"));
    ASSERT_TRUE(peers_refused("1=h:1,2=h:1", AEGIS_EEXIST, "address h:1 given twice"));
    ASSERT_TRUE(peers_refused("1=[::1]:1,2=[::1]:1", AEGIS_EEXIST, "[::1]:1 given twice"));
    ASSERT_TRUE(peers_refused("1=::1:7001", AEGIS_EINVAL, "brackets"));
    ASSERT_TRUE(peers_refused("1=h:-1", AEGIS_EINVAL, "port"));
    ASSERT_TRUE(peers_refused("1=h:1=2", AEGIS_EINVAL, "port"));
    for (int i = 1; i <= AEGIS_PEERS_MAX + 1; i++) {
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s%d=h:%d",
                 i == 1 ? "" : ",", i, i);
    }
    ASSERT_TRUE(peers_refused(many, AEGIS_ERANGE, "more than 16 peers"));
    return TEST_PASS;
}

/* Every accepted value formats to a string that parses to the same value. */
TEST(args, format_round_trip)
{
    struct aegis_peer_addr p[AEGIS_PEERS_MAX], q[AEGIS_PEERS_MAX];
    char text[AEGIS_PEERS_MAX * 100], a[AEGIS_ARGS_HOSTPORT_BYTES], host[AEGIS_HOST_MAX];
    uint32_t n = 0, m = 0;
    uint16_t port = 0;

    ASSERT_OK(aegis__args_peers("--peers", "7=[fe80::1%eth0]:1,18446744073709551615=a.b:65535",
                                p, AEGIS_PEERS_MAX, &n, NULL, 0));
    ASSERT_TRUE(aegis__args_format_peers(p, n, text, sizeof(text)) > 0);
    ASSERT_STR_EQ(text, "7=[fe80::1%eth0]:1,18446744073709551615=a.b:65535");
    ASSERT_OK(aegis__args_peers("--peers", text, q, AEGIS_PEERS_MAX, &m, NULL, 0));
    ASSERT_EQ_U64(m, n);
    ASSERT_MEM_EQ(p, q, n * sizeof(p[0]));
    ASSERT_EQ_U64(aegis__args_format_hostport("::1", 7001, a, sizeof(a)), 10);
    ASSERT_STR_EQ(a, "[::1]:7001");
    ASSERT_OK(aegis__args_hostport("x", a, host, sizeof(host), &port, NULL, 0));
    ASSERT_STR_EQ(host, "::1");
    ASSERT_EQ_U64(aegis__args_format_hostport("::1", 7001, a, 10), 0); /* Does not fit. */
    return TEST_PASS;
}

/* ---- Config files (aegis__args_config): the rules in args.h. ---- */

static const struct option conf_opts[] = {
    {"id", required_argument, NULL, 1},     {"peers", required_argument, NULL, 2},
    {"join", no_argument, NULL, 3},         {"config", required_argument, NULL, 4},
    {"log-file", required_argument, NULL, 5}, {NULL, 0, NULL, 0},
};

/* Parse @text as file "f.conf"; the return code, the entries in @e, the message in @err. */
static int conf(const char *text, struct aegis_args_conf_entry *e, uint32_t *count, char *err)
{
    static char buf[8192];
    size_t len = strlen(text);

    memcpy(buf, text, len + 1);
    return aegis__args_config("f.conf", buf, len, conf_opts, e, 8, count, err,
                              AEGIS_ARGS_ERR_BYTES);
}

TEST(args, config_reads_name_value_lines)
{
    struct aegis_args_conf_entry e[8];
    char err[AEGIS_ARGS_ERR_BYTES] = "";
    uint32_t n = 0;

    ASSERT_OK(conf("# a comment\n\n  id   7  \r\n\tjoin\npeers 1=a:1,2=b:2\n"
                   "log-file /var/log/a#b.log\n   # indented comment",
                   e, &n, err));
    ASSERT_EQ_U64(n, 4);
    ASSERT_STR_EQ(e[0].opt->name, "id");
    ASSERT_STR_EQ(e[0].value, "7"); /* Spaces around the value and a CR are cut. */
    ASSERT_EQ_U64(e[0].line, 3);
    ASSERT_STR_EQ(e[1].opt->name, "join");
    ASSERT_TRUE(e[1].value == NULL);
    ASSERT_STR_EQ(e[2].value, "1=a:1,2=b:2");
    ASSERT_STR_EQ(e[3].value, "/var/log/a#b.log"); /* '#' mid-line is part of the value. */
    ASSERT_EQ_U64(e[3].line, 6);
    ASSERT_OK(conf("", e, &n, err));
    ASSERT_EQ_U64(n, 0);
    return TEST_PASS;
}

/* @text is refused and the message is exactly @want. */
static bool conf_refused(const char *text, const char *want)
{
    struct aegis_args_conf_entry e[8];
    char err[AEGIS_ARGS_ERR_BYTES] = "";
    uint32_t n = 0;
    int rv = conf(text, e, &n, err);

    if (rv != AEGIS_EINVAL || strcmp(err, want) != 0) {
        fprintf(stderr, "got %d '%s', want '%s'\n", rv, err, want);
        return false;
    }
    return true;
}

TEST(args, config_refuses_with_file_and_line)
{
    ASSERT_TRUE(conf_refused("id 1\nbogus 3\n", "f.conf:2: unknown flag: 'bogus 3'"));
    ASSERT_TRUE(conf_refused("# x\nid\n", "f.conf:2: missing value: 'id'"));
    ASSERT_TRUE(conf_refused("join yes\n", "f.conf:1: this flag takes no value: 'join'"));
    ASSERT_TRUE(conf_refused("id 1\nid 2\n", "f.conf:2: given twice in the file: 'id'"));
    ASSERT_TRUE(conf_refused("config other.conf\n",
                             "f.conf:1: this flag is for the command line only: "
                             "'config other.conf'"));
    ASSERT_TRUE(conf_refused("--id 1\n",
                             "f.conf:1: write the flag's name without '--': '--id 1'"));
    ASSERT_TRUE(conf_refused("id 1\x1b[2J\n",
                             "f.conf:1: a control byte (or NUL) in the line: 'id 1?[2J'"));
    ASSERT_TRUE(conf_refused("i 1\n", "f.conf:1: unknown flag: 'i 1'")); /* No prefixes. */
    return TEST_PASS;
}

TEST(args, config_refuses_nul_long_lines_and_too_many)
{
    static char big[AEGIS_ARGS_CONF_LINE_MAX + 64];
    struct aegis_args_conf_entry e[8];
    char err[AEGIS_ARGS_ERR_BYTES] = "", nul[] = "id 1\nlog-file a\0b\n";
    uint32_t n = 0;

    ASSERT_ERR(aegis__args_config("f.conf", nul, sizeof(nul) - 1, conf_opts, e, 8, &n, err,
                                  sizeof(err)),
               AEGIS_EINVAL);
    ASSERT_TRUE(strncmp(err, "f.conf:2: a control byte (or NUL)", 33) == 0);
    memcpy(big, "log-file ", 9);
    memset(big + 9, 'x', AEGIS_ARGS_CONF_LINE_MAX);
    ASSERT_ERR(conf(big, e, &n, err), AEGIS_EINVAL);
    ASSERT_TRUE(strncmp(err, "f.conf:1: line too long", 23) == 0);
    ASSERT_ERR(aegis__args_config("f.conf", (char[]){"id 1\njoin\n"}, 10, conf_opts, e, 1, &n,
                                  err, sizeof(err)),
               AEGIS_EINVAL);
    ASSERT_TRUE(strncmp(err, "f.conf:2: too many flags", 24) == 0);
    return TEST_PASS;
}
