/* SPDX-License-Identifier: MIT */
/* Tests of pipeline/metrics: the stamp ring's stage samples (leader and follower paths),
 * counter shards, election and leader-change counting, the INFO latency baseline; then a
 * real 3-node cluster in this process (io_uring, loopback, RESP server, the Prometheus
 * endpoint): a known number of writes gives known counts in INFO and in /metrics, and
 * /metrics parses as the Prometheus text exposition format (a checker below). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cmd/bench_breakdown.h"
#include "lib/test.h"
#include "pipeline/logging.h"
#include "pipeline/metrics.h"
#include "pipeline/node_int.h"
#include "pipeline/server.h"

static struct aegis_metrics *metrics_new(void)
{
    struct aegis_metrics *m = malloc(sizeof(*m));

    if (m != NULL) {
        aegis__metrics_init(m);
    }
    return m;
}

static void metrics_free(struct aegis_metrics *m)
{
    aegis__metrics_close(m);
    free(m);
}

static uint64_t hist_count(struct aegis_metrics *m, enum aegis_mhist h)
{
    struct aegis_hist *x = aegis__hist_create(NULL);
    uint64_t c;

    aegis__metrics_hist(m, h, x);
    c = aegis__hist_count(x);
    aegis__hist_destroy(NULL, x);
    return c;
}

static uint64_t hist_max(struct aegis_metrics *m, enum aegis_mhist h)
{
    struct aegis_hist *x = aegis__hist_create(NULL);
    uint64_t v;

    aegis__metrics_hist(m, h, x);
    v = aegis__hist_max(x);
    aegis__hist_destroy(NULL, x);
    return v;
}

TEST(metrics, leader_stages_from_stamps)
{
    struct aegis_metrics *m = metrics_new();

    ASSERT_TRUE(m != NULL);
    /* Ten proposals at t=1000+i, received 100 ns earlier each. */
    for (aegis_index i = 1; i <= 10; i++) {
        aegis__metrics_proposed(m, i, 900 + i, 1000 + i);
    }
    ASSERT_EQ_U64(hist_count(m, AEGIS_MH_RECEIVE_PROPOSE), 10);
    ASSERT_EQ_U64(hist_max(m, AEGIS_MH_RECEIVE_PROPOSE), 100);
    aegis__metrics_durable(m, 6, 2000);
    ASSERT_EQ_U64(hist_count(m, AEGIS_MH_PROPOSE_DURABLE), 6);
    ASSERT_EQ_U64(hist_max(m, AEGIS_MH_PROPOSE_DURABLE), 999); /* 2000 - 1001. */
    aegis__metrics_durable(m, 6, 2500); /* Nothing new. */
    ASSERT_EQ_U64(hist_count(m, AEGIS_MH_PROPOSE_DURABLE), 6);
    aegis__metrics_durable(m, 10, 3000);
    ASSERT_EQ_U64(hist_count(m, AEGIS_MH_PROPOSE_DURABLE), 10);
    aegis__metrics_committed(m, 4, 3500);
    aegis__metrics_committed(m, 10, 4000);
    ASSERT_EQ_U64(hist_count(m, AEGIS_MH_PROPOSE_COMMIT), 10);
    ASSERT_EQ_U64(hist_max(m, AEGIS_MH_PROPOSE_COMMIT), 4000 - 1005); /* Index 5. */
    /* Follower stages saw nothing. */
    ASSERT_EQ_U64(hist_count(m, AEGIS_MH_FOLLOWER_RECEIVE_DURABLE), 0);
    ASSERT_EQ_U64(hist_count(m, AEGIS_MH_FOLLOWER_DURABLE_ACK), 0);
    metrics_free(m);
    return TEST_PASS;
}

TEST(metrics, follower_stages_and_retransmits)
{
    struct aegis_metrics *m = metrics_new();

    ASSERT_TRUE(m != NULL);
    aegis__metrics_appended(m, 1, 5, 100);
    aegis__metrics_appended(m, 3, 5, 150); /* Retransmitted: the first arrival counts. */
    aegis__metrics_durable(m, 5, 400);
    ASSERT_EQ_U64(hist_count(m, AEGIS_MH_FOLLOWER_RECEIVE_DURABLE), 5);
    ASSERT_EQ_U64(hist_max(m, AEGIS_MH_FOLLOWER_RECEIVE_DURABLE), 300);
    aegis__metrics_acked(m, 5, 450);
    ASSERT_EQ_U64(hist_count(m, AEGIS_MH_FOLLOWER_DURABLE_ACK), 5);
    ASSERT_EQ_U64(hist_max(m, AEGIS_MH_FOLLOWER_DURABLE_ACK), 50);
    /* A new leader overwrites 4..6: they are sampled again from their new arrival. */
    aegis__metrics_appended(m, 4, 6, 1000);
    aegis__metrics_durable(m, 6, 1100);
    ASSERT_EQ_U64(hist_count(m, AEGIS_MH_FOLLOWER_RECEIVE_DURABLE), 8);
    aegis__metrics_acked(m, 6, 1120);
    ASSERT_EQ_U64(hist_count(m, AEGIS_MH_FOLLOWER_DURABLE_ACK), 8);
    /* Nothing of this is a leader stage. */
    ASSERT_EQ_U64(hist_count(m, AEGIS_MH_PROPOSE_DURABLE), 0);
    aegis__metrics_committed(m, 6, 1200);
    ASSERT_EQ_U64(hist_count(m, AEGIS_MH_PROPOSE_COMMIT), 0);
    metrics_free(m);
    return TEST_PASS;
}

TEST(metrics, walk_is_bounded_by_the_ring)
{
    struct aegis_metrics *m = metrics_new();
    aegis_index last = 3 * AEGIS_METRICS_STAMPS;

    ASSERT_TRUE(m != NULL);
    for (aegis_index i = 1; i <= last; i++) {
        aegis__metrics_proposed(m, i, 0, i);
    }
    ASSERT_EQ_U64(hist_count(m, AEGIS_MH_RECEIVE_PROPOSE), 0); /* Receive time unknown. */
    /* Only the newest ring's worth still has stamps: the older entries are not sampled. */
    aegis__metrics_durable(m, last, last + 1);
    ASSERT_EQ_U64(hist_count(m, AEGIS_MH_PROPOSE_DURABLE), AEGIS_METRICS_STAMPS);
    metrics_free(m);
    return TEST_PASS;
}

/* Issue 12: an AppendEntries at prev_index 2^64-2 made the stamp walk loop to UINT64_MAX
 * (the loop's index wrapped before passing its bound): the raft thread spun forever.
 * Every walk counts at most a ring's worth of iterations, whatever the values. */
TEST(metrics, walks_end_at_the_top_of_the_index_range)
{
    struct aegis_metrics *m = metrics_new();

    ASSERT_TRUE(m != NULL);
    aegis__metrics_appended(m, UINT64_MAX, UINT64_MAX, 100);
    aegis__metrics_appended(m, UINT64_MAX - 3, UINT64_MAX, 100);
    aegis__metrics_appended(m, 1, UINT64_MAX, 100);
    aegis__metrics_appended(m, 9, 3, 100); /* An empty range. */
    aegis__metrics_durable(m, UINT64_MAX, 200);
    ASSERT_EQ_U64(hist_count(m, AEGIS_MH_FOLLOWER_RECEIVE_DURABLE), AEGIS_METRICS_STAMPS);
    aegis__metrics_acked(m, UINT64_MAX, 300);
    ASSERT_EQ_U64(hist_count(m, AEGIS_MH_FOLLOWER_DURABLE_ACK), AEGIS_METRICS_STAMPS);
    aegis__metrics_committed(m, UINT64_MAX, 400);
    metrics_free(m);
    return TEST_PASS;
}

TEST(metrics, counters_sum_shards_and_observe_counts_elections)
{
    struct aegis_metrics *m = metrics_new();

    ASSERT_TRUE(m != NULL);
    aegis__metrics_add(m, AEGIS_MT_NET, AEGIS_MC_PEER_BYTES_OUT, 10);
    aegis__metrics_add(m, AEGIS_MT_RAFT, AEGIS_MC_PEER_BYTES_OUT, 5);
    aegis__metrics_add(m, AEGIS_MT_LOG, AEGIS_MC_LOG_BYTES, 7);
    ASSERT_EQ_U64(aegis__metrics_counter(m, AEGIS_MC_PEER_BYTES_OUT), 15);
    ASSERT_EQ_U64(aegis__metrics_counter(m, AEGIS_MC_LOG_BYTES), 7);
    ASSERT_EQ_U64(aegis__metrics_counter(m, AEGIS_MC_APPLY_ENTRIES), 0);

    aegis__metrics_observe(m, AEGIS_ROLE_FOLLOWER, 1, AEGIS_NODE_NONE);
    aegis__metrics_observe(m, AEGIS_ROLE_PRECANDIDATE, 1, AEGIS_NODE_NONE);
    aegis__metrics_observe(m, AEGIS_ROLE_CANDIDATE, 2, AEGIS_NODE_NONE);
    aegis__metrics_observe(m, AEGIS_ROLE_CANDIDATE, 2, AEGIS_NODE_NONE); /* Same election. */
    aegis__metrics_observe(m, AEGIS_ROLE_CANDIDATE, 3, AEGIS_NODE_NONE); /* Split vote. */
    aegis__metrics_observe(m, AEGIS_ROLE_LEADER, 3, 1);
    aegis__metrics_observe(m, AEGIS_ROLE_LEADER, 3, 1);
    aegis__metrics_observe(m, AEGIS_ROLE_FOLLOWER, 4, 2);
    ASSERT_EQ_U64(aegis__metrics_counter(m, AEGIS_MC_ELECTIONS), 2);
    ASSERT_EQ_U64(aegis__metrics_counter(m, AEGIS_MC_LEADER_CHANGES), 2);
    metrics_free(m);
    return TEST_PASS;
}

TEST(metrics, baseline_reports_samples_since_reset)
{
    struct aegis_metrics *m = metrics_new();
    struct aegis_hist *x = aegis__hist_create(NULL);

    ASSERT_TRUE(m != NULL && x != NULL);
    for (int i = 0; i < 5; i++) {
        aegis__metrics_record(m, AEGIS_MH_REQUEST, 1000);
    }
    aegis__metrics_hist_since_reset(m, AEGIS_MH_REQUEST, x);
    ASSERT_EQ_U64(aegis__hist_count(x), 5);
    ASSERT_EQ_U64(aegis__metrics_reset_baseline(m), 0);
    aegis__metrics_record(m, AEGIS_MH_REQUEST, 50000);
    aegis__hist_init(x);
    aegis__metrics_hist_since_reset(m, AEGIS_MH_REQUEST, x);
    ASSERT_EQ_U64(aegis__hist_count(x), 1);
    ASSERT_TRUE(aegis__hist_percentile(x, 50) > 49000);
    /* The cumulative view (Prometheus) keeps everything. */
    ASSERT_EQ_U64(hist_count(m, AEGIS_MH_REQUEST), 6);
    aegis__hist_destroy(NULL, x);
    metrics_free(m);
    return TEST_PASS;
}

TEST(metrics, text_buffer_grows)
{
    struct aegis_text t = {0};

    for (int i = 0; i < 2000; i++) {
        aegis__text_printf(&t, "line %d %s\n", i, "0123456789012345678901234567890123456789");
    }
    ASSERT_FALSE(t.failed);
    ASSERT_TRUE(t.len > 2000 * 40);
    ASSERT_TRUE(strncmp(t.data, "line 0 ", 7) == 0);
    ASSERT_TRUE(strstr(t.data, "line 1999 0123") != NULL);
    aegis__text_free(&t);
    return TEST_PASS;
}

/* A checker for the Prometheus text exposition format 0.0.4: every line is a comment,
 * HELP, TYPE or sample; names and labels are well formed; a family's TYPE comes once and
 * before its samples; summary samples are quantiles (with a quantile label), _sum or
 * _count; no series repeats; values parse. It also finds a series' value for the test. */
#define PROM_SERIES_MAX 512

struct prom_doc {
    char families[128][96];
    char types[128][16];
    uint32_t families_count;
    char series[PROM_SERIES_MAX][192];
    double values[PROM_SERIES_MAX];
    uint32_t series_count;
    char err[256];
};

static bool prom_name_ok(const char *p, size_t len)
{
    if (len == 0) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';

        if (!alpha && !(i > 0 && c >= '0' && c <= '9')) {
            return false;
        }
    }
    return true;
}

static int prom_family_of(struct prom_doc *d, const char *name)
{
    for (uint32_t i = 0; i < d->families_count; i++) {
        if (strcmp(d->families[i], name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* The family a sample name belongs to: itself, or for summaries and histograms the name
 * without _sum / _count / _bucket. */
static int prom_sample_family(struct prom_doc *d, const char *name, const char **suffix)
{
    static const char *const sfx[] = {"_sum", "_count", "_bucket"};
    int f = prom_family_of(d, name);
    size_t len = strlen(name);

    *suffix = "";
    if (f >= 0) {
        return f;
    }
    for (size_t i = 0; i < 3; i++) {
        size_t sl = strlen(sfx[i]);
        char base[96];

        if (len > sl && len - sl < sizeof(base) && strcmp(name + len - sl, sfx[i]) == 0) {
            memcpy(base, name, len - sl);
            base[len - sl] = '\0';
            f = prom_family_of(d, base);
            if (f >= 0) {
                *suffix = sfx[i];
                return f;
            }
        }
    }
    return -1;
}

/* Parse '{a="b",c="d"}' at @p; set *has_quantile. Returns the end or NULL. */
static const char *prom_labels(const char *p, bool *has_quantile)
{
    *has_quantile = false;
    p++; /* '{' */
    while (*p != '}') {
        const char *name = p;

        while (*p != '=' && *p != '\0' && *p != '\n') {
            p++;
        }
        if (*p != '=' || !prom_name_ok(name, (size_t)(p - name)) || p[1] != '"') {
            return NULL;
        }
        if (p - name == 8 && strncmp(name, "quantile", 8) == 0) {
            *has_quantile = true;
        }
        p += 2;
        while (*p != '"') {
            if (*p == '\0' || *p == '\n') {
                return NULL;
            }
            if (*p == '\\') {
                if (p[1] != '\\' && p[1] != '"' && p[1] != 'n') {
                    return NULL;
                }
                p++;
            }
            p++;
        }
        p++;
        if (*p == ',') {
            p++;
        } else if (*p != '}') {
            return NULL;
        }
    }
    return p + 1;
}

static bool prom_line(struct prom_doc *d, const char *line, size_t len)
{
    char buf[512], name[96];
    const char *p, *q, *suffix;
    bool has_quantile = false;
    char *end;
    int f;

    if (len == 0 || len >= sizeof(buf)) {
        return len == 0;
    }
    memcpy(buf, line, len);
    buf[len] = '\0';
    if (strncmp(buf, "# TYPE ", 7) == 0) {
        char type[16];

        if (sscanf(buf + 7, "%95s %15s", name, type) != 2 || !prom_name_ok(name, strlen(name)) ||
            prom_family_of(d, name) >= 0 || d->families_count == 128) {
            return false;
        }
        if (strcmp(type, "counter") != 0 && strcmp(type, "gauge") != 0 &&
            strcmp(type, "summary") != 0 && strcmp(type, "histogram") != 0 &&
            strcmp(type, "untyped") != 0) {
            return false;
        }
        snprintf(d->families[d->families_count], sizeof(d->families[0]), "%s", name);
        snprintf(d->types[d->families_count], sizeof(d->types[0]), "%s", type);
        d->families_count++;
        return true;
    }
    if (buf[0] == '#') {
        return strncmp(buf, "# HELP ", 7) != 0 ||
               (sscanf(buf + 7, "%95s", name) == 1 && prom_name_ok(name, strlen(name)));
    }
    for (p = buf; *p != '\0' && *p != '{' && *p != ' '; p++) {
    }
    if (!prom_name_ok(buf, (size_t)(p - buf)) || (size_t)(p - buf) >= sizeof(name)) {
        return false;
    }
    memcpy(name, buf, (size_t)(p - buf));
    name[p - buf] = '\0';
    q = p;
    if (*p == '{') {
        p = prom_labels(p, &has_quantile);
        if (p == NULL) {
            return false;
        }
    }
    if (*p != ' ') {
        return false;
    }
    f = prom_sample_family(d, name, &suffix);
    if (f < 0) {
        return false; /* A sample before (or without) its TYPE. */
    }
    if (strcmp(d->types[f], "summary") == 0 && suffix[0] == '\0' && !has_quantile) {
        return false;
    }
    if (strcmp(d->types[f], "counter") == 0 && strstr(name, "_total") == NULL) {
        return false; /* Our convention: counters end in _total. */
    }
    if (d->series_count == PROM_SERIES_MAX) {
        return false;
    }
    snprintf(d->series[d->series_count], sizeof(d->series[0]), "%.*s", (int)(p - buf), buf);
    (void)q;
    for (uint32_t i = 0; i < d->series_count; i++) {
        if (strcmp(d->series[i], d->series[d->series_count]) == 0) {
            return false; /* Repeated series. */
        }
    }
    d->values[d->series_count] = strtod(p + 1, &end);
    if (end == p + 1 || (*end != '\0' && *end != ' ')) {
        return false;
    }
    d->series_count++;
    return true;
}

static bool prom_parse(struct prom_doc *d, const char *text, size_t len)
{
    size_t at = 0, lineno = 1;

    memset(d, 0, sizeof(*d));
    if (len == 0 || text[len - 1] != '\n') {
        snprintf(d->err, sizeof(d->err), "empty or no final newline");
        return false;
    }
    while (at < len) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t l = (size_t)(nl - (text + at));

        if (!prom_line(d, text + at, l)) {
            snprintf(d->err, sizeof(d->err), "line %zu: %.*s", lineno, (int)(l < 200 ? l : 200),
                     text + at);
            return false;
        }
        at += l + 1;
        lineno++;
    }
    return true;
}

static bool prom_value(const struct prom_doc *d, const char *series, double *out)
{
    for (uint32_t i = 0; i < d->series_count; i++) {
        if (strcmp(d->series[i], series) == 0) {
            *out = d->values[i];
            return true;
        }
    }
    return false;
}

TEST(metrics, prometheus_checker_rejects_bad_text)
{
    static struct prom_doc d;
    static const char *const bad[] = {
        "x 1\n",                                         /* No TYPE. */
        "# TYPE x counter\nx 1\n",                       /* Counter without _total. */
        "# TYPE x_total counter\nx_total{a=b} 1\n",      /* Unquoted label. */
        "# TYPE x_total counter\nx_total 1\nx_total 2\n", /* Repeated series. */
        "# TYPE s summary\ns 1\n",                       /* Summary sample without quantile. */
        "# TYPE g gauge\ng one\n",                       /* Not a number. */
        "# TYPE g gauge\ng 1",                           /* No final newline. */
        "# TYPE 9g gauge\n",                             /* Bad name. */
    };
    const char *good = "# HELP s A summary.\n# TYPE s summary\ns{quantile=\"0.5\"} 1.5e-06\n"
                       "s_sum 3\ns_count 2\n# TYPE c_total counter\nc_total{k=\"a\\\"b\"} 7\n";

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (prom_parse(&d, bad[i], strlen(bad[i]))) {
            FAIL("accepted bad text %zu", i);
        }
    }
    ASSERT_TRUE(prom_parse(&d, good, strlen(good)));
    ASSERT_EQ_U64(d.series_count, 4);
    return TEST_PASS;
}

/* The cluster. */

#define NODES 3
#define WRITES 100

static uint16_t free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    uint16_t port = 0;

    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
        port = ntohs(a.sin_port);
    }
    if (fd >= 0) {
        close(fd);
    }
    return port;
}

static int dial(uint16_t port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 5};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0) {
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool send_str(int fd, const char *s)
{
    size_t len = strlen(s);

    while (len > 0) {
        ssize_t n = send(fd, s, len, MSG_NOSIGNAL);

        if (n <= 0) {
            return false;
        }
        s += n;
        len -= (size_t)n;
    }
    return true;
}

/* Read until @want occurrences of "\r\n" arrived (simple replies) into @buf. */
static size_t read_lines(int fd, char *buf, size_t cap, unsigned want)
{
    size_t len = 0;
    unsigned seen = 0;

    while (seen < want && len + 1 < cap) {
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);

        if (n <= 0) {
            break;
        }
        for (ssize_t i = 0; i < n; i++) {
            seen += buf[len + (size_t)i] == '\n';
        }
        len += (size_t)n;
    }
    buf[len] = '\0';
    return len;
}

/* Send an INFO command and read its bulk reply into @out. */
static bool info(uint16_t port, const char *section, char *out, size_t cap)
{
    char cmd[128];
    int fd = dial(port);
    size_t len = 0;
    long want = -1;

    if (fd < 0) {
        return false;
    }
    snprintf(cmd, sizeof(cmd), "INFO %s\r\n", section);
    send_str(fd, cmd);
    while (len + 1 < cap) {
        ssize_t n = recv(fd, out + len, cap - 1 - len, 0);
        char *nl;

        if (n <= 0) {
            break;
        }
        len += (size_t)n;
        out[len] = '\0';
        nl = strstr(out, "\r\n");
        if (want < 0 && out[0] == '$' && nl != NULL) {
            want = strtol(out + 1, NULL, 10) + (nl - out) + 4;
        }
        if (want >= 0 && (long)len >= want) {
            break;
        }
    }
    close(fd);
    return want >= 0 && (long)len >= want;
}

/* The value of "key:" in INFO text, or of "key:count=" for a histogram line. */
static uint64_t info_u64(const char *text, const char *key)
{
    char pat[128];
    const char *p;

    snprintf(pat, sizeof(pat), "\r\n%s:", key);
    p = strstr(text, pat);
    if (p == NULL) {
        return UINT64_MAX;
    }
    p += strlen(pat);
    if (strncmp(p, "count=", 6) == 0) {
        p += 6;
    }
    return strtoull(p, NULL, 10);
}

static size_t http_get(uint16_t port, const char *path, char *out, size_t cap)
{
    char req[256];
    int fd = dial(port);
    size_t len = 0;

    if (fd < 0) {
        return 0;
    }
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", path);
    send_str(fd, req);
    while (len + 1 < cap) {
        ssize_t n = recv(fd, out + len, cap - 1 - len, 0);

        if (n <= 0) {
            break; /* Connection: close ends the body. */
        }
        len += (size_t)n;
    }
    out[len] = '\0';
    close(fd);
    return len;
}

struct cluster {
    char dir[64];
    struct aegis_node *nodes[NODES];
    struct aegis_server *servers[NODES];
    struct aegis_metrics_http *http[NODES];
    uint16_t client_ports[NODES];
};

static void cluster_stop(struct cluster *c)
{
    char cmd[128];

    for (int i = 0; i < NODES; i++) {
        aegis__metrics_http_stop(c->http[i]);
        if (c->nodes[i] != NULL) {
            aegis_node_destroy(c->nodes[i]);
        }
        aegis__server_destroy(c->servers[i]);
    }
    snprintf(cmd, sizeof(cmd), "rm -rf %s", c->dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", c->dir);
    }
}

/* Start the cluster; 0, or the error of the first node that failed (AEGIS_ENOSYS: no
 * io_uring here). */
static int cluster_start(struct cluster *c)
{
    struct aegis_node_config cfg;

    memset(c, 0, sizeof(*c));
    snprintf(c->dir, sizeof(c->dir), "/tmp/aegis-test-metrics-XXXXXX");
    if (mkdtemp(c->dir) == NULL) {
        return AEGIS_EIO;
    }
    aegis_node_config_init(&cfg);
    cfg.peers_count = NODES;
    for (int i = 0; i < NODES; i++) {
        cfg.peers[i].id = (aegis_node_id)(i + 1);
        snprintf(cfg.peers[i].host, sizeof(cfg.peers[i].host), "127.0.0.1");
        cfg.peers[i].port = free_port();
    }
    for (int i = 0; i < NODES; i++) {
        char dir[128];
        struct aegis_server_config sc = {.host = "127.0.0.1", .port = 0, .clients_max = 64,
                                         .value_bytes_max = 1u << 20, .pipeline_max = 1024};
        int rv;

        snprintf(dir, sizeof(dir), "%s/%d", c->dir, i + 1);
        cfg.id = (aegis_node_id)(i + 1);
        cfg.data_dir = dir;
        rv = aegis_node_create(&c->nodes[i], &cfg);
        if (rv == 0) {
            rv = aegis__server_create(&c->servers[i], c->nodes[i], &sc);
        }
        if (rv == 0) {
            rv = aegis_node_start(c->nodes[i]);
        }
        if (rv == 0) {
            rv = aegis__metrics_http_start(&c->http[i], c->nodes[i], "127.0.0.1", 0);
        }
        if (rv != 0) {
            return rv;
        }
        c->client_ports[i] = aegis__node_client_port(c->nodes[i]);
    }
    return 0;
}

/* The index of the leader once every node agrees on it, or -1 after 10 s. */
static int wait_leader(struct cluster *c)
{
    for (int tries = 0; tries < 1000; tries++) {
        struct aegis_status s[NODES];
        bool agree = true;

        for (int i = 0; i < NODES; i++) {
            aegis_node_status(c->nodes[i], &s[i]);
            agree = agree && s[i].leader != AEGIS_NODE_NONE && s[i].leader == s[0].leader;
        }
        if (agree) {
            return (int)s[0].leader - 1;
        }
        nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
    }
    return -1;
}

/* Wait until every node applied @index. */
static bool wait_applied(struct cluster *c, aegis_index index)
{
    for (int tries = 0; tries < 1000; tries++) {
        bool all = true;

        for (int i = 0; i < NODES; i++) {
            struct aegis_status s;

            aegis_node_status(c->nodes[i], &s);
            all = all && s.applied_index >= index;
        }
        if (all) {
            return true;
        }
        nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
    }
    return false;
}

/* WRITES pipelined SETs and one failing INCR on one connection to the leader. */
static bool write_load(uint16_t port)
{
    static char buf[1 << 16];
    char cmd[128];
    int fd = dial(port);
    bool ok;

    if (fd < 0) {
        return false;
    }
    for (int i = 0; i < WRITES; i++) {
        snprintf(cmd, sizeof(cmd), "*3\r\n$3\r\nSET\r\n$6\r\nkey%03d\r\n$3\r\nval\r\n", i);
        send_str(fd, cmd);
    }
    send_str(fd, "INCR key000\r\n");
    read_lines(fd, buf, sizeof(buf), WRITES + 1);
    ok = strncmp(buf, "+OK\r\n", 5) == 0 && strstr(buf, "-ERR value is not an integer") != NULL;
    close(fd);
    return ok;
}

static bool check_info(struct cluster *c, int leader, const char *all, char *text, size_t cap)
{
    struct aegis_status s;

    aegis_node_status(c->nodes[leader], &s);
    if (strstr(all, "# Server") == NULL || strstr(all, "# Replication") == NULL ||
        strstr(all, "# Stats") == NULL || strstr(all, "# Latency") == NULL ||
        strstr(all, "# Persistence") == NULL) {
        return false;
    }
    for (int i = 0; i < NODES; i++) {
        uint64_t entries;

        if (!info(c->client_ports[i], "persistence", text, cap)) {
            return false;
        }
        /* Every node wrote each entry of the log exactly once. */
        entries = info_u64(text, "log_entries");
        if (entries != s.last_index || info_u64(text, "log_sync_usec") == 0 ||
            info_u64(text, "log_sync_usec") > info_u64(text, "log_batches")) {
            fprintf(stderr, "node %d: log_entries %llu, last index %llu\n", i + 1,
                    (unsigned long long)entries, (unsigned long long)s.last_index);
            return false;
        }
        if (i == leader || !info(c->client_ports[i], "latency", text, cap)) {
            continue;
        }
        if (info_u64(text, "stage_follower_receive_durable_usec") < WRITES ||
            info_u64(text, "stage_follower_durable_ack_usec") < WRITES ||
            info_u64(text, "stage_commit_apply_usec") < WRITES ||
            info_u64(text, "stage_request_usec") != 0) {
            fprintf(stderr, "follower %d latency:\n%s", i + 1, text);
            return false;
        }
    }
    return true;
}

TEST(metrics, cluster_counts_writes)
{
    static char text[1 << 16], body[1 << 17];
    static struct prom_doc d;
    struct cluster c;
    struct aegis_status s;
    size_t len;
    double v;
    int leader, rv;
    const char *hdr_end;

    aegis__log_setup(AEGIS_LOG_WARN, 0);
    rv = cluster_start(&c);
    if (rv == AEGIS_ENOSYS || rv == AEGIS_EPERM) {
        cluster_stop(&c);
        SKIP("io_uring unavailable");
    }
    ASSERT_EQ_U64(rv, 0);
    leader = wait_leader(&c);
    ASSERT_TRUE(leader >= 0);
    ASSERT_TRUE(write_load(c.client_ports[leader]));
    aegis_node_status(c.nodes[leader], &s);
    ASSERT_TRUE(wait_applied(&c, s.last_index));

    ASSERT_TRUE(info(c.client_ports[leader], "stats", text, sizeof(text)));
    ASSERT_EQ_U64(info_u64(text, "proposals"), WRITES + 1);
    ASSERT_EQ_U64(info_u64(text, "errors_other"), 1); /* The INCR of a non-integer. */
    ASSERT_EQ_U64(info_u64(text, "errors_tryagain"), 0);
    ASSERT_TRUE(info_u64(text, "leader_changes") >= 1);
    ASSERT_TRUE(info_u64(text, "append_entries_sent") >= 2 * (WRITES + 1));
    ASSERT_EQ_U64(info_u64(text, "total_connections_received"), 2); /* Load, this INFO. */
    ASSERT_EQ_U64(info_u64(text, "connected_clients"), 1);
    ASSERT_TRUE(info(c.client_ports[leader], "latency", text, sizeof(text)));
    /* Each stage of the leader saw every write exactly once (the INCR too). */
    ASSERT_EQ_U64(info_u64(text, "stage_receive_propose_usec"), WRITES + 1);
    ASSERT_EQ_U64(info_u64(text, "stage_propose_durable_usec"), WRITES + 1);
    ASSERT_EQ_U64(info_u64(text, "stage_propose_commit_usec"), WRITES + 1);
    ASSERT_EQ_U64(info_u64(text, "stage_apply_reply_usec"), WRITES + 1);
    ASSERT_EQ_U64(info_u64(text, "stage_request_usec"), WRITES + 1);
    ASSERT_TRUE(info_u64(text, "stage_commit_apply_usec") >= WRITES + 1);
    ASSERT_EQ_U64(info_u64(text, "stage_follower_receive_durable_usec"), 0);
    {
        /* aegis-bench --breakdown reads the same lines. */
        struct breakdown_stat st = breakdown_stat(text, "stage_request_usec");

        ASSERT_TRUE(st.found);
        ASSERT_TRUE(st.count == WRITES + 1);
        ASSERT_TRUE(st.p50 > 0 && st.p50 <= st.p99 && st.p99 <= st.max);
    }
    ASSERT_TRUE(info(c.client_ports[leader], "all", text, sizeof(text)));
    ASSERT_TRUE(check_info(&c, leader, text, body, sizeof(body)));

    /* CONFIG RESETSTAT: INFO latency starts again; /metrics stays cumulative. */
    {
        int fd = dial(c.client_ports[leader]);

        ASSERT_TRUE(fd >= 0);
        send_str(fd, "CONFIG RESETSTAT\r\n");
        read_lines(fd, text, sizeof(text), 1);
        close(fd);
        ASSERT_TRUE(strcmp(text, "+OK\r\n") == 0);
    }
    ASSERT_TRUE(info(c.client_ports[leader], "latency", text, sizeof(text)));
    ASSERT_EQ_U64(info_u64(text, "stage_request_usec"), 0);

    len = http_get(aegis__metrics_http_port(c.http[leader]), "/metrics", body, sizeof(body));
    ASSERT_TRUE(strncmp(body, "HTTP/1.1 200 OK\r\n", 17) == 0);
    ASSERT_TRUE(strstr(body, "Content-Type: text/plain; version=0.0.4") != NULL);
    hdr_end = strstr(body, "\r\n\r\n");
    ASSERT_TRUE(hdr_end != NULL);
    hdr_end += 4;
    if (!prom_parse(&d, hdr_end, len - (size_t)(hdr_end - body))) {
        FAIL("/metrics does not parse: %s", d.err);
    }
    ASSERT_TRUE(prom_value(&d, "aegis_proposals_total", &v));
    ASSERT_TRUE(v == WRITES + 1);
    ASSERT_TRUE(prom_value(&d, "aegis_stage_seconds_count{stage=\"request\"}", &v));
    ASSERT_TRUE(v == WRITES + 1);
    ASSERT_TRUE(prom_value(&d, "aegis_errors_total{kind=\"client_other\"}", &v));
    ASSERT_TRUE(v == 1);
    ASSERT_TRUE(prom_value(&d, "aegis_is_leader", &v));
    ASSERT_TRUE(v == 1);
    ASSERT_TRUE(prom_value(&d, "aegis_log_entries_total", &v));
    ASSERT_TRUE(v == (double)s.last_index);
    ASSERT_TRUE(prom_value(&d, "aegis_stage_seconds{stage=\"propose_commit\",quantile=\"0.99\"}",
                           &v));
    ASSERT_TRUE(v > 0 && v < 10);
    len = http_get(aegis__metrics_http_port(c.http[leader]), "/nope", body, sizeof(body));
    ASSERT_TRUE(strncmp(body, "HTTP/1.1 404", 12) == 0);
    cluster_stop(&c);
    return TEST_PASS;
}
