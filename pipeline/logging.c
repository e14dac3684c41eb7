/* SPDX-License-Identifier: MIT */
/* Logging; see logging.h. */
#include "pipeline/logging.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int aegis__log_level = AEGIS_LOG_INFO;
static aegis_node_id log_node;

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void aegis__log_setup(int level, aegis_node_id node)
{
    __atomic_store_n(&aegis__log_level, level, __ATOMIC_RELAXED);
    log_node = node;
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

__attribute__((format(printf, 5, 0))) static void
log_vwrite(int level, const char *file, int line, uint64_t suppressed, const char *fmt, va_list ap)
{
    char buf[1024], thread[16] = "?";
    struct timespec ts;
    struct tm tm;
    const char *base = strrchr(file, '/');
    size_t n;
    int k;

    if (level < AEGIS_LOG_DEBUG || level > AEGIS_LOG_ERROR) {
        level = AEGIS_LOG_ERROR;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    pthread_getname_np(pthread_self(), thread, sizeof(thread));
    k = snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ n%llu %s %s %s:%d ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                 tm.tm_sec, ts.tv_nsec / 1000000, (unsigned long long)log_node, thread,
                 level_names[level], base != NULL ? base + 1 : file, line);
    n = k > 0 ? (size_t)k : 0;
    if (n < sizeof(buf)) {
        k = vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
        n += k > 0 ? (size_t)k : 0;
    }
    if (suppressed > 0 && n < sizeof(buf)) {
        k = snprintf(buf + n, sizeof(buf) - n, " (suppressed %llu)",
                     (unsigned long long)suppressed);
        n += k > 0 ? (size_t)k : 0;
    }
    if (n > sizeof(buf) - 2) {
        n = sizeof(buf) - 2;
    }
    buf[n++] = '\n';
    /* One write(2) per line: lines from different threads never interleave. */
    if (write(STDERR_FILENO, buf, n) < 0) {
        return;
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
