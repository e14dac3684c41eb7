/* SPDX-License-Identifier: MIT */
/* Logging; see logging.h. */
#include "pipeline/logging.h"

#include <aegis/aegis.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int aegis__log_level = AEGIS_LOG_INFO;
static aegis_node_id log_node;
static int log_fd = STDERR_FILENO; /* --log-file: a descriptor of our own, reopened. */
static char log_path[4096];
static pthread_mutex_t reopen_lock = PTHREAD_MUTEX_INITIALIZER;
/* The embedder's callback (aegis_set_log_fn) and its argument, read with acquire. */
static aegis_log_fn log_fn;
static void *log_fn_data;

_Static_assert((int)AEGIS_LOGLEVEL_DEBUG == (int)AEGIS_LOG_DEBUG &&
                   (int)AEGIS_LOGLEVEL_INFO == (int)AEGIS_LOG_INFO &&
                   (int)AEGIS_LOGLEVEL_WARN == (int)AEGIS_LOG_WARN &&
                   (int)AEGIS_LOGLEVEL_ERROR == (int)AEGIS_LOG_ERROR &&
                   (int)AEGIS_LOGLEVEL_OFF == (int)AEGIS_LOG_OFF,
               "the public levels are the internal ones");

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

/* The names of each Raft core event's two numbers (engine/raft*.c, aegis__raft_trace). */
static const struct {
    const char *event, *a, *b;
} raft_fields[] = {
    {"votes_restored", "term", "leader"},  {"step_down", "term", "leader"},
    {"became_leader", "term", "index"},    {"noop_failed", "term", "err"},
    {"term_exhausted", "term", NULL},      {"campaign_withheld", "term", NULL},
    {"election_start", "term", "pre_vote"}, {"transfer_campaign", "term", "from"},
    {"check_quorum_lost", "term", NULL},   {"transfer_abandoned", "term", "target"},
    {"transfer_timeout_now", "term", "target"}, {"transfer_start", "term", "target"},
    {"votes_withheld", "term", "vote"},    {"conf", "index", "members"},
    {"conf_corrupt", "index", "term"},     {"removed_self", "term", "conf_index"},
    {"catchup_timeout", "peer", "match"},  {"amnesia", "from", "msg_type"},
    {"snapshot_send", "peer", "index"},    {"commit", "from", "index"},
    {"snapshot_install", "index", "term"}, {"snapshot_refused", "index", "term"},
    {"snapshot_sent", "peer", "index"},    {"snapshot_taken", "index", "term"},
};

void aegis__log_setup(int level, aegis_node_id node)
{
    __atomic_store_n(&aegis__log_level, level, __ATOMIC_RELAXED);
    log_node = node;
}

void aegis_set_log_level(int level)
{
    if (level < AEGIS_LOG_DEBUG || level > AEGIS_LOG_OFF) {
        level = AEGIS_LOG_OFF;
    }
    __atomic_store_n(&aegis__log_level, level, __ATOMIC_RELAXED);
}

void aegis_set_log_fn(aegis_log_fn fn, void *data)
{
    __atomic_store_n(&log_fn_data, data, __ATOMIC_RELAXED);
    __atomic_store_n(&log_fn, fn, __ATOMIC_RELEASE);
}

static int open_log(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

    return fd < 0 ? -errno : fd;
}

int aegis__log_open_file(const char *path)
{
    int fd;

    if (strlen(path) >= sizeof(log_path)) {
        return -ENAMETOOLONG;
    }
    fd = open_log(path);
    if (fd < 0) {
        return fd;
    }
    snprintf(log_path, sizeof(log_path), "%s", path);
    log_fd = fd;
    return 0;
}

int aegis__log_reopen(void)
{
    int fd, rv = 0;

    if (log_fd == STDERR_FILENO) {
        return 0;
    }
    pthread_mutex_lock(&reopen_lock);
    fd = open_log(log_path);
    if (fd < 0) {
        rv = fd;
    } else {
        /* Atomic swap of what log_fd names: writers never see it closed. */
        if (dup2(fd, log_fd) < 0) {
            rv = -errno;
        }
        close(fd);
    }
    pthread_mutex_unlock(&reopen_lock);
    return rv;
}

int aegis__log_level_parse(const char *s)
{
    static const char *const names[] = {"debug", "info", "warn", "error", "off"};

    for (int i = 0; i < 5; i++) {
        if (strcmp(s, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

uint64_t aegis__now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

bool aegis__log_ratelimit(struct aegis_log_limit *l, uint64_t *suppressed_out)
{
    uint64_t now = aegis__now_ns();
    uint64_t window = __atomic_load_n(&l->window_ns, __ATOMIC_RELAXED);

    if (window == 0 || now - window >= 1000000000ull) {
        __atomic_store_n(&l->window_ns, now, __ATOMIC_RELAXED);
        __atomic_store_n(&l->lines, 0, __ATOMIC_RELAXED);
    }
    if (__atomic_fetch_add(&l->lines, 1, __ATOMIC_RELAXED) >= AEGIS_LOG_RATELIMIT_LINES) {
        __atomic_fetch_add(&l->suppressed, 1, __ATOMIC_RELAXED);
        return false;
    }
    *suppressed_out = __atomic_exchange_n(&l->suppressed, 0, __ATOMIC_RELAXED);
    return true;
}

/* Append @fmt's text to @buf as a quoted value: '"' and '\\' escaped, control bytes '?'. */
__attribute__((format(printf, 4, 0))) static size_t quote_text(char *buf, size_t cap, size_t n,
                                                               const char *fmt, va_list ap)
{
    char text[768];
    int k = vsnprintf(text, sizeof(text), fmt, ap);
    size_t len = k < 0 ? 0 : (size_t)k < sizeof(text) ? (size_t)k : sizeof(text) - 1;

    if (n + 8 >= cap) {
        return n;
    }
    memcpy(buf + n, "text=\"", 6);
    n += 6;
    for (size_t i = 0; i < len && n + 3 < cap; i++) {
        unsigned char c = (unsigned char)text[i];

        if (c == '"' || c == '\\') {
            buf[n++] = '\\';
        }
        buf[n++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    buf[n++] = '"';
    return n;
}

/* The line's head: "time LEVEL thread event node=N ". */
static size_t line_head(char *buf, size_t cap, int level, const char *event, aegis_node_id node)
{
    char thread[16] = "?";
    struct timespec ts;
    struct tm tm;
    int k;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    pthread_getname_np(pthread_self(), thread, sizeof(thread));
    k = snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s %s node=%llu ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                 tm.tm_sec, ts.tv_nsec / 1000000, level_names[level], thread, event,
                 (unsigned long long)node);
    return k > 0 ? ((size_t)k < cap ? (size_t)k : cap - 1) : 0;
}

/* Finish the line (suppressed=, src=, newline) and hand it to the callback or the fd. */
static void line_emit(char *buf, size_t cap, size_t n, int level, const char *file, int line,
                      uint64_t suppressed)
{
    const char *base = file != NULL ? strrchr(file, '/') : NULL;
    aegis_log_fn fn = __atomic_load_n(&log_fn, __ATOMIC_ACQUIRE);
    int k;

    if (suppressed > 0 && n < cap) {
        k = snprintf(buf + n, cap - n, " suppressed=%llu", (unsigned long long)suppressed);
        n += k > 0 ? (size_t)k : 0;
    }
    if (file != NULL && n < cap) {
        k = snprintf(buf + n, cap - n, " src=%s:%d", base != NULL ? base + 1 : file, line);
        n += k > 0 ? (size_t)k : 0;
    }
    if (n > cap - 2) {
        n = cap - 2;
    }
    if (fn != NULL) {
        buf[n] = '\0';
        fn(__atomic_load_n(&log_fn_data, __ATOMIC_RELAXED), level, buf);
        return;
    }
    buf[n++] = '\n';
    /* One write(2) per line: lines from different threads never interleave. */
    if (write(__atomic_load_n(&log_fd, __ATOMIC_RELAXED), buf, n) < 0) {
        return;
    }
}

static int clamp_level(int level)
{
    return level < AEGIS_LOG_DEBUG || level > AEGIS_LOG_ERROR ? AEGIS_LOG_ERROR : level;
}

__attribute__((format(printf, 5, 0))) static void
log_vwrite(int level, const char *file, int line, uint64_t suppressed, const char *fmt, va_list ap)
{
    char buf[1024];
    size_t n;

    level = clamp_level(level);
    n = line_head(buf, sizeof(buf), level, "message", log_node);
    n = quote_text(buf, sizeof(buf), n, fmt, ap);
    line_emit(buf, sizeof(buf), n, level, file, line, suppressed);
}

__attribute__((format(printf, 6, 0))) static void
event_vwrite(aegis_node_id node, int level, const char *file, int line, const char *event,
             const char *fmt, va_list ap)
{
    char buf[1024];
    size_t n;
    int k;

    level = clamp_level(level);
    n = line_head(buf, sizeof(buf), level, event, node);
    k = vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
    n += k > 0 ? (size_t)k : 0;
    if (n >= sizeof(buf)) {
        n = sizeof(buf) - 1;
    }
    while (n > 0 && buf[n - 1] == ' ') {
        n--; /* An event without fields. */
    }
    line_emit(buf, sizeof(buf), n, level, file, line, 0);
}

__attribute__((format(printf, 4, 5))) static void
event_write(aegis_node_id node, int level, const char *event, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    event_vwrite(node, level, NULL, 0, event, fmt, ap);
    va_end(ap);
}

void aegis__log_event(int level, const char *file, int line, const char *event,
                      const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    event_vwrite(log_node, level, file, line, event, fmt, ap);
    va_end(ap);
}

void aegis__log_raft_fields(const char *what, const char **a_name, const char **b_name)
{
    *a_name = *b_name = NULL;
    for (size_t i = 0; i < sizeof(raft_fields) / sizeof(raft_fields[0]); i++) {
        if (strcmp(raft_fields[i].event, what) == 0) {
            *a_name = raft_fields[i].a;
            *b_name = raft_fields[i].b;
            return;
        }
    }
}

void aegis__log_raft_event(aegis_node_id node, const char *what, uint64_t a, uint64_t b)
{
    /* A commit advance happens once per replication round: a line each would flood the
     * log under load, so it is a debug event. */
    int level = strcmp(what, "commit") == 0 ? AEGIS_LOG_DEBUG : AEGIS_LOG_INFO;
    const char *an, *bn;
    bool known;

    if (level < __atomic_load_n(&aegis__log_level, __ATOMIC_RELAXED)) {
        return;
    }
    aegis__log_raft_fields(what, &an, &bn);
    known = an != NULL;
    /* node= is the core's own id (an embedder may run several nodes in one process). */
    if (known && bn == NULL) {
        event_write(node, level, what, "%s=%llu", an, (unsigned long long)a);
    } else {
        event_write(node, level, what, "%s=%llu %s=%llu", known ? an : "a",
                    (unsigned long long)a, known ? bn : "b", (unsigned long long)b);
    }
}

void aegis__log_write(int level, const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vwrite(level, file, line, 0, fmt, ap);
    va_end(ap);
}

void aegis__log_write_suppressed(int level, const char *file, int line, uint64_t suppressed,
                                 const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vwrite(level, file, line, suppressed, fmt, ap);
    va_end(ap);
}
