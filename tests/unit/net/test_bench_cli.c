/* SPDX-License-Identifier: MIT */
/* Tests of aegis-bench: its RESP reply parser and option parsing (the cmd/bench_*.h
 * headers, included directly), and the program itself run end to end against a real
 * redis-server on a free loopback port (skipped when redis-server is not installed).
 *
 * The aegis-bench binary is found relative to this test's own executable: tests are built
 * in build/<preset>/tests/ and programs in build/<preset>/. Every run is short (about one
 * second of load), so the whole file stays well under five seconds. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <aegis/aegis.h>

#include "cmd/bench_config.h"
#include "cmd/bench_resp.h"
#include "lib/test.h"

TEST(bench_resp, simple_replies)
{
    struct bench_reply r;

    ASSERT_EQ_I64(bench_resp_parse("+OK\r\n", 5, &r), 5);
    ASSERT_EQ_I64(r.type, BENCH_REPLY_STATUS);
    ASSERT_EQ_U64(r.len, 2);
    ASSERT_MEM_EQ(r.str, "OK", 2);
    ASSERT_EQ_I64(bench_resp_parse("-TRYAGAIN no leader\r\n", 21, &r), 21);
    ASSERT_EQ_I64(r.type, BENCH_REPLY_ERROR);
    ASSERT_MEM_EQ(r.str, "TRYAGAIN no leader", 18);
    ASSERT_EQ_I64(bench_resp_parse(":-42\r\n", 6, &r), 6);
    ASSERT_EQ_I64(r.type, BENCH_REPLY_INT);
    ASSERT_EQ_I64(r.integer, -42);
    ASSERT_EQ_I64(bench_resp_parse("$3\r\nfoo\r\n+OK\r\n", 14, &r), 9);
    ASSERT_EQ_I64(r.type, BENCH_REPLY_BULK);
    ASSERT_MEM_EQ(r.str, "foo", 3);
    ASSERT_EQ_I64(bench_resp_parse("$0\r\n\r\n", 6, &r), 6);
    ASSERT_EQ_U64(r.len, 0);
    ASSERT_EQ_I64(bench_resp_parse("$-1\r\n", 5, &r), 5);
    ASSERT_EQ_I64(r.type, BENCH_REPLY_NIL);
    ASSERT_EQ_I64(bench_resp_parse("*2\r\n$1\r\na\r\n*1\r\n:1\r\n", 19, &r), 19);
    ASSERT_EQ_I64(r.type, BENCH_REPLY_ARRAY);
    ASSERT_EQ_I64(r.integer, 2);
    ASSERT_EQ_I64(bench_resp_parse("*-1\r\n", 5, &r), 5);
    ASSERT_EQ_I64(r.type, BENCH_REPLY_NIL);
    ASSERT_EQ_I64(bench_resp_parse(":9223372036854775807\r\n", 22, &r), 22);
    ASSERT_EQ_I64(r.integer, INT64_MAX);
    ASSERT_EQ_I64(bench_resp_parse(":-9223372036854775808\r\n", 23, &r), 23);
    ASSERT_EQ_I64(r.integer, INT64_MIN);
    return TEST_PASS;
}

/* Every proper prefix of a reply asks for more bytes; the whole takes exactly its length. */
TEST(bench_resp, every_split_point_needs_more)
{
    static const char *const replies[] = {
        "+OK\r\n", "-ERR unknown command 'CAS'\r\n", ":12345\r\n", "$5\r\nhello\r\n",
        "$-1\r\n", "*3\r\n$1\r\na\r\n:2\r\n*1\r\n+x\r\n",
    };
    size_t i, cut;

    for (i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
        size_t len = strlen(replies[i]);
        struct bench_reply r;

        for (cut = 0; cut < len; cut++) {
            if (bench_resp_parse(replies[i], cut, &r) != BENCH_RESP_MORE) {
                FAIL("reply %zu cut at %zu did not ask for more", i, cut);
            }
        }
        ASSERT_EQ_I64(bench_resp_parse(replies[i], len, &r), (int64_t)len);
    }
    return TEST_PASS;
}

TEST(bench_resp, malformed_input_is_an_error)
{
    static const char *const bad[] = {
        "?x\r\n", ":12a\r\n", ":\r\n", "$-2\r\n", "$3\r\nfooXY", "+OK\rX",
        ":99999999999999999999\r\n", "*-5\r\n", "$999999999999\r\n",
        "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
    };
    static char long_line[BENCH_RESP_LINE_MAX + 16];
    struct bench_reply r;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (bench_resp_parse(bad[i], strlen(bad[i]), &r) != BENCH_RESP_ERROR) {
            FAIL("accepted malformed reply %zu", i);
        }
    }
    /* A status line that never ends is refused once it exceeds the line limit. */
    memset(long_line, 'a', sizeof(long_line));
    long_line[0] = '+';
    ASSERT_EQ_I64(bench_resp_parse(long_line, sizeof(long_line), &r), BENCH_RESP_ERROR);
    ASSERT_EQ_I64(bench_resp_parse(long_line, 100, &r), BENCH_RESP_MORE);
    return TEST_PASS;
}

/* Numbers follow pipeline/args.c: strtoull alone took " 1", " -1" (as 2^64-1) and an
 * overflowing value (as 2^64-1). */
TEST(bench_config, numbers_strict)
{
    uint64_t v = 7;

    ASSERT_TRUE(bench_parse_u64("42", 0, UINT64_MAX, &v));
    ASSERT_EQ_U64(v, 42);
    ASSERT_FALSE(bench_parse_u64(" 1", 0, UINT64_MAX, &v));
    ASSERT_FALSE(bench_parse_u64(" -1", 0, UINT64_MAX, &v));
    ASSERT_FALSE(bench_parse_u64("1 ", 0, UINT64_MAX, &v));
    ASSERT_FALSE(bench_parse_u64("+1", 0, UINT64_MAX, &v));
    ASSERT_FALSE(bench_parse_u64("18446744073709551616", 0, UINT64_MAX, &v));
    ASSERT_EQ_U64(v, 42);
    return TEST_PASS;
}

TEST(bench_config, seconds_strict)
{
    static const char *const bad[] = {" 1", "1 ", "+1", "-0", "1e3", "0x10", "inf", "nan",
                                      ".", "1..2", "1.2.3", "", "86401"};
    double d = -1;

    ASSERT_TRUE(bench_parse_seconds("10", &d) && d == 10.0);
    ASSERT_TRUE(bench_parse_seconds("0.5", &d) && d == 0.5);
    ASSERT_TRUE(bench_parse_seconds(".25", &d) && d == 0.25);
    ASSERT_TRUE(bench_parse_seconds("3.", &d) && d == 3.0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (bench_parse_seconds(bad[i], &d)) {
            FAIL("'%s' accepted as %g", bad[i], d);
        }
    }
    return TEST_PASS;
}

TEST(bench_config, ratio_syntaxes)
{
    unsigned w[BENCH_OP_COUNT];

    ASSERT_TRUE(bench_parse_ratio("1:0", w));
    ASSERT_EQ_U64(w[BENCH_OP_SET], 1);
    ASSERT_EQ_U64(w[BENCH_OP_GET], 0);
    ASSERT_TRUE(bench_parse_ratio("1:2:3:4", w));
    ASSERT_EQ_U64(w[BENCH_OP_INCR], 3);
    ASSERT_EQ_U64(w[BENCH_OP_CAS], 4);
    ASSERT_TRUE(bench_parse_ratio("get=20,set=70,incr=10,cas=0", w));
    ASSERT_EQ_U64(w[BENCH_OP_SET], 70);
    ASSERT_EQ_U64(w[BENCH_OP_GET], 20);
    ASSERT_EQ_U64(w[BENCH_OP_INCR], 10);
    ASSERT_EQ_U64(w[BENCH_OP_CAS], 0);
    ASSERT_TRUE(bench_parse_ratio("INCR=1", w));
    ASSERT_EQ_U64(w[BENCH_OP_SET], 0);
    ASSERT_EQ_U64(w[BENCH_OP_INCR], 1);
    ASSERT_FALSE(bench_parse_ratio("0:0", w));
    ASSERT_FALSE(bench_parse_ratio("1:1:1:1:1", w));
    ASSERT_FALSE(bench_parse_ratio("del=1", w));
    ASSERT_FALSE(bench_parse_ratio("set=x", w));
    ASSERT_FALSE(bench_parse_ratio("set=-1,get=2", w));
    ASSERT_FALSE(bench_parse_ratio("", w));
    return TEST_PASS;
}

TEST(bench_config, targets_and_pairing)
{
    static struct bench_config c;
    const char *hosts[] = {"a", "b"}, *ports[] = {"1", "2"}, *one[] = {"7000"};
    struct bench_target t;

    ASSERT_TRUE(bench_parse_target("10.0.0.1:6379", &t));
    ASSERT_STR_EQ(t.host, "10.0.0.1");
    ASSERT_STR_EQ(t.port, "6379");
    ASSERT_TRUE(bench_parse_target("[::1]:7000", &t));
    ASSERT_STR_EQ(t.host, "::1");
    ASSERT_FALSE(bench_parse_target("host", &t));
    ASSERT_FALSE(bench_parse_target("host:0", &t));
    ASSERT_FALSE(bench_parse_target(":80", &t));
    ASSERT_FALSE(bench_parse_target("::1:7000", &t)); /* An IPv6 address needs brackets. */
    ASSERT_FALSE(bench_parse_target("host: 80", &t));

    memset(&c, 0, sizeof(c));
    ASSERT_TRUE(bench_pair_hosts_ports(&c, hosts, 2, ports, 2));
    ASSERT_EQ_U64(c.targets_count, 2);
    ASSERT_STR_EQ(c.targets[1].host, "b");
    ASSERT_STR_EQ(c.targets[1].port, "2");
    ASSERT_TRUE(bench_pair_hosts_ports(&c, hosts, 2, one, 1));
    ASSERT_EQ_U64(c.targets_count, 4);
    ASSERT_STR_EQ(c.targets[3].port, "7000");
    ASSERT_TRUE(bench_pair_hosts_ports(&c, NULL, 0, ports, 2));
    ASSERT_STR_EQ(c.targets[5].host, "127.0.0.1");
    ASSERT_FALSE(bench_pair_hosts_ports(&c, hosts, 2, (const char *[]){"1", "2", "3"}, 3));
    return TEST_PASS;
}

/* The directory holding this executable's parent build directory's programs. */
static bool find_program(const char *name, char *out, size_t cap)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

    if (n <= 0) {
        return false;
    }
    self[n] = '\0';
    snprintf(out, cap, "%s/../%s", dirname(self), name);
    return access(out, X_OK) == 0;
}

static bool find_in_path(const char *name, char *out, size_t cap)
{
    const char *path = getenv("PATH");
    char buf[4096], *save = NULL, *dir;

    snprintf(buf, sizeof(buf), "%s", path ? path : "/usr/bin:/bin");
    for (dir = strtok_r(buf, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        snprintf(out, cap, "%s/%s", dir, name);
        if (access(out, X_OK) == 0) {
            return true;
        }
    }
    return false;
}

static unsigned free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    unsigned port = 0;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0) {
        port = ntohs(sa.sin_port);
    }
    if (fd >= 0) {
        close(fd);
    }
    return port;
}

static bool port_accepts(unsigned port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    bool ok;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* Start @argv with stdout and stderr to @out_path (or /dev/null). */
static pid_t start(char *const *argv, const char *out_path)
{
    pid_t pid = fork();

    if (pid == 0) {
        int fd = open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);

        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Wait up to @timeout_ms for @pid; kill it on timeout. Returns its exit status or -1. */
static int wait_exit(pid_t pid, long timeout_ms)
{
    int status;
    long waited;

    for (waited = 0; waited < timeout_ms; waited += 10) {
        if (waitpid(pid, &status, WNOHANG) == pid) {
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

struct fixture {
    char bench[PATH_MAX];
    char dir[64];
    char port[16];
    pid_t redis;
};

/* Start redis-server on a free port; false (and a skip reason) when impossible. */
static bool fixture_up(struct fixture *f, const char **why)
{
    char redis[PATH_MAX];
    unsigned port = free_port();
    char *argv[] = {redis, "--port", f->port, "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", NULL};
    int tries;

    memset(f, 0, sizeof(*f));
    if (!find_program("aegis-bench", f->bench, sizeof(f->bench))) {
        *why = "aegis-bench not built next to the tests";
        return false;
    }
    if (!find_in_path("redis-server", redis, sizeof(redis))) {
        *why = "redis-server not installed";
        return false;
    }
    snprintf(f->dir, sizeof(f->dir), "/tmp/aegis-bench-test-XXXXXX");
    if (port == 0 || mkdtemp(f->dir) == NULL) {
        *why = "no free port or temporary directory";
        return false;
    }
    snprintf(f->port, sizeof(f->port), "%u", port);
    argv[2] = f->port;
    f->redis = start(argv, NULL);
    for (tries = 0; tries < 300 && !port_accepts(port); tries++) {
        sleep_ms(10);
    }
    if (tries == 300) {
        *why = "redis-server did not start";
        kill(f->redis, SIGKILL);
        waitpid(f->redis, NULL, 0);
        return false;
    }
    return true;
}

static void fixture_down(struct fixture *f)
{
    char cmd[128];

    kill(f->redis, SIGTERM);
    wait_exit(f->redis, 5000);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "  could not remove %s\n", f->dir);
    }
}

/* Read a whole (small) file into @buf; false if it cannot be read. */
static bool slurp(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    size_t n;

    if (f == NULL) {
        return false;
    }
    n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
    return n > 0;
}

/* The number after "@key": in @json, or -1. */
static int64_t json_number(const char *json, const char *key)
{
    char pat[64];
    const char *p;

    snprintf(pat, sizeof(pat), "\"%s\": ", key);
    p = strstr(json, pat);
    return p == NULL ? -1 : strtoll(p + strlen(pat), NULL, 10);
}

/* The number after "@key": inside the object that follows "@section":. */
static int64_t json_number_in(const char *json, const char *section, const char *key)
{
    char pat[64];
    const char *p;

    snprintf(pat, sizeof(pat), "\"%s\": {", section);
    p = strstr(json, pat);
    return p == NULL ? -1 : json_number(p, key);
}

TEST(bench_cli, one_second_against_redis_writes_json_and_histogram)
{
    struct fixture f;
    const char *why = "";
    char json_path[128], hgrm_path[128], out_path[128];
    static char text[65536];
    int rv;

    if (!fixture_up(&f, &why)) {
        SKIP(why);
    }
    snprintf(json_path, sizeof(json_path), "%s/report.json", f.dir);
    snprintf(hgrm_path, sizeof(hgrm_path), "%s/latency.hgrm", f.dir);
    snprintf(out_path, sizeof(out_path), "%s/stdout", f.dir);
    {
        char *argv[] = {f.bench, "--port", f.port, "--clients", "8", "--pipeline", "4",
                        "--duration", "1", "--warmup", "0.2", "--ratio",
                        "set=50,get=40,incr=10", "--json", json_path, "--histogram",
                        hgrm_path, NULL};

        rv = wait_exit(start(argv, out_path), 10000);
    }
    ASSERT_EQ_I64(rv, 0);
    ASSERT_TRUE(slurp(out_path, text, sizeof(text)));
    ASSERT_TRUE(strstr(text, "aegis-bench report") != NULL);
    ASSERT_TRUE(slurp(json_path, text, sizeof(text)));
    ASSERT_TRUE(json_number(text, "ops") > 0);
    ASSERT_EQ_I64(json_number(text, "errors"), 0);
    ASSERT_EQ_I64(json_number(text, "clients"), 8);
    ASSERT_EQ_I64(json_number(text, "pipeline"), 4);
    /* Every command of the mix ran. */
    ASSERT_TRUE(json_number_in(text, "ops_by_command", "incr") > 0);
    ASSERT_TRUE(strstr(text, "\"p99_9\": ") != NULL);
    ASSERT_TRUE(slurp(hgrm_path, text, sizeof(text)));
    ASSERT_TRUE(strstr(text, "Percentile") != NULL);
    ASSERT_TRUE(strstr(text, "1.000000000000") != NULL);
    ASSERT_TRUE(strstr(text, "#[Max") != NULL);
    fixture_down(&f);
    return TEST_PASS;
}

/* --requests N issues exactly N measured requests; CAS is not a Redis command, so each CAS
 * comes back as an -ERR, counted by its prefix. */
TEST(bench_cli, requests_mode_counts_exactly_and_sorts_errors)
{
    struct fixture f;
    const char *why = "";
    char json_path[128];
    static char text[65536];
    int64_t ops, errors;
    int rv;

    if (!fixture_up(&f, &why)) {
        SKIP(why);
    }
    snprintf(json_path, sizeof(json_path), "%s/report.json", f.dir);
    {
        char *argv[] = {f.bench, "--target", NULL, "--clients", "3", "--pipeline", "5",
                        "--threads", "2", "--requests", "3000", "--warmup", "0", "--ratio",
                        "1:1:0:1", "--json", json_path, NULL};
        char target[64];

        snprintf(target, sizeof(target), "127.0.0.1:%s", f.port);
        argv[2] = target;
        rv = wait_exit(start(argv, NULL), 10000);
    }
    ASSERT_EQ_I64(rv, 0);
    ASSERT_TRUE(slurp(json_path, text, sizeof(text)));
    ops = json_number(text, "ops");
    errors = json_number(text, "errors");
    ASSERT_EQ_I64(json_number(text, "issued"), 3000);
    ASSERT_EQ_I64(ops + errors, 3000);
    ASSERT_TRUE(errors > 0);
    ASSERT_EQ_I64(json_number_in(text, "errors_by_kind", "ERR"), errors);
    ASSERT_EQ_I64(json_number_in(text, "ops_by_command", "cas"), 0);
    ASSERT_TRUE(json_number_in(text, "ops_by_command", "get") > 0);
    fixture_down(&f);
    return TEST_PASS;
}

TEST(bench_cli, exit_codes)
{
    char bench[PATH_MAX], port[16];
    int rv;

    if (!find_program("aegis-bench", bench, sizeof(bench))) {
        SKIP("aegis-bench not built next to the tests");
    }
    snprintf(port, sizeof(port), "%u", free_port()); /* Nobody listens there. */
    {
        char *argv[] = {bench, "--port", port, "--duration", "5", "--clients", "4", NULL};

        rv = wait_exit(start(argv, NULL), 4000); /* Gives up well before the duration. */
    }
    ASSERT_EQ_I64(rv, 1); /* No connection: a runtime failure, as aegis-cli's. */
    {
        char *argv[] = {bench, "--ratio", "get=x", NULL};

        ASSERT_EQ_I64(wait_exit(start(argv, NULL), 4000), 2); /* Bad usage. */
    }
    {
        char *argv[] = {bench, "--host", "a", "--host", "b", "--port", "1", "--port", "2",
                        "--port", "3", NULL};

        ASSERT_EQ_I64(wait_exit(start(argv, NULL), 4000), 2); /* Bad usage. */
    }
    {
        char *argv[] = {bench, "--help", NULL};

        ASSERT_EQ_I64(wait_exit(start(argv, NULL), 4000), 0);
    }
    {
        char *argv[] = {bench, "--no-such-flag", NULL};

        ASSERT_EQ_I64(wait_exit(start(argv, NULL), 4000), 2);
    }
    return TEST_PASS;
}

/* aegis_version() is MAJOR.MINOR.PATCH, and each program's --version prints
 * "PROGRAM VERSION (commit C)" with that same version and exits 0 (issue 18). */
TEST(bench_cli, version)
{
    static const char *const progs[] = {"aegisd", "aegis-cli", "aegis-bench"};
    const char *v = aegis_version();
    unsigned major, minor, patch;
    char out_path[] = "/tmp/aegis-version-XXXXXX", text[256], want[128];
    int fd, end = 0;

    ASSERT_TRUE(v != NULL);
    ASSERT_TRUE(sscanf(v, "%u.%u.%u%n", &major, &minor, &patch, &end) == 3);
    ASSERT_TRUE(end > 0 && v[end] == '\0');
    fd = mkstemp(out_path);
    ASSERT_TRUE(fd >= 0);
    close(fd);
    for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
        char prog[PATH_MAX];
        char *argv[] = {prog, "--version", NULL};

        if (!find_program(progs[i], prog, sizeof(prog))) {
            unlink(out_path);
            SKIP("the programs are not built next to the tests");
        }
        ASSERT_EQ_I64(wait_exit(start(argv, out_path), 4000), 0);
        ASSERT_TRUE(slurp(out_path, text, sizeof(text)));
        snprintf(want, sizeof(want), "%s %s (commit ", progs[i], v);
        ASSERT_TRUE(strncmp(text, want, strlen(want)) == 0);
        ASSERT_TRUE(strchr(text, ')') != NULL && strchr(text, '\n') != NULL);
    }
    unlink(out_path);
    return TEST_PASS;
}

/* A stand-in for aegisd until it exists: it checks nothing but serves its --client port
 * with redis-server and records its arguments in $FAKE_ARGS_DIR/args-node-<id>. */
static const char fake_aegisd[] =
    "#!/bin/sh\n"
    "args=\"$*\"\n"
    "while [ $# -gt 0 ]; do\n"
    "  case \"$1\" in --client) client=$2; shift;; --data-dir) dir=$2; shift;; esac\n"
    "  shift\n"
    "done\n"
    "mkdir -p \"$dir\" && echo \"$args\" > \"$FAKE_ARGS_DIR/args-$(basename \"$dir\")\"\n"
    "exec redis-server --port \"${client##*:}\" --bind 127.0.0.1 --save '' "
    "--appendonly no --dir \"$dir\"\n";

/* Count the entries of @dir whose name starts with @prefix. */
static int count_entries(const char *dir, const char *prefix)
{
    char cmd[PATH_MAX + 64], line[64] = "";
    FILE *p;

    snprintf(cmd, sizeof(cmd), "ls -1 '%s' | grep -c '^%s'", dir, prefix);
    p = popen(cmd, "r");
    if (p == NULL || fgets(line, sizeof(line), p) == NULL) {
        line[0] = '\0';
    }
    if (p != NULL) {
        pclose(p);
    }
    return atoi(line);
}

/* --spawn 3 with the stand-in: nodes get the issue-6 flags and --fsync, the run spreads
 * over the nodes (none says role:leader), the report names the cluster, and afterwards no
 * node listens and the temporary directory is gone. */
TEST(bench_cli, spawn_plumbing_with_a_stand_in_aegisd)
{
    struct fixture f;
    const char *why = "";
    char cmd[2 * PATH_MAX + 64], bench_copy[PATH_MAX], json_path[128], tmp[128];
    static char text[65536];
    const char *p;
    FILE *script;
    int rv, ports = 0;

    if (!fixture_up(&f, &why)) {
        SKIP(why);
    }
    snprintf(bench_copy, sizeof(bench_copy), "%s/aegis-bench", f.dir);
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", f.bench, bench_copy);
    ASSERT_EQ_I64(system(cmd), 0);
    snprintf(cmd, sizeof(cmd), "%s/aegisd", f.dir);
    script = fopen(cmd, "w");
    ASSERT_TRUE(script != NULL);
    fputs(fake_aegisd, script);
    fclose(script);
    ASSERT_EQ_I64(chmod(cmd, 0755), 0);
    snprintf(tmp, sizeof(tmp), "%s/tmp", f.dir);
    ASSERT_EQ_I64(mkdir(tmp, 0755), 0);
    setenv("TMPDIR", tmp, 1);
    setenv("FAKE_ARGS_DIR", f.dir, 1);
    snprintf(json_path, sizeof(json_path), "%s/report.json", f.dir);
    {
        char *argv[] = {bench_copy, "--spawn", "3", "--fsync", "none", "--clients", "6",
                        "--duration", "0.5", "--warmup", "0", "--json", json_path, NULL};

        rv = wait_exit(start(argv, NULL), 15000);
    }
    unsetenv("TMPDIR");
    unsetenv("FAKE_ARGS_DIR");
    ASSERT_EQ_I64(rv, 0);
    snprintf(cmd, sizeof(cmd), "%s/args-node-2", f.dir);
    ASSERT_TRUE(slurp(cmd, text, sizeof(text)));
    ASSERT_TRUE(strstr(text, "--id 2 --peers 1=127.0.0.1:") != NULL);
    ASSERT_TRUE(strstr(text, ",3=127.0.0.1:") != NULL);
    ASSERT_TRUE(strstr(text, "--client 127.0.0.1:") != NULL);
    ASSERT_TRUE(strstr(text, "/node-2 --fsync none") != NULL);
    ASSERT_TRUE(slurp(json_path, text, sizeof(text)));
    ASSERT_EQ_I64(json_number(text, "spawn"), 3);
    ASSERT_TRUE(strstr(text, "\"fsync\": \"none\"") != NULL);
    ASSERT_EQ_I64(json_number_in(text, "cluster", "nodes"), 3);
    ASSERT_TRUE(json_number(text, "ops") > 0);
    ASSERT_EQ_I64(json_number(text, "errors"), 0);
    /* Every node was a target, and none listens any more. */
    for (p = strstr(text, "127.0.0.1:"); p != NULL && p < strstr(text, "\"clients\"");
         p = strstr(p + 1, "127.0.0.1:")) {
        ASSERT_FALSE(port_accepts((unsigned)atoi(p + strlen("127.0.0.1:"))));
        ports++;
    }
    ASSERT_EQ_I64(ports, 3);
    ASSERT_EQ_I64(count_entries(tmp, "aegis-bench-"), 0);
    fixture_down(&f);
    return TEST_PASS;
}
