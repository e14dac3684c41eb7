/* SPDX-License-Identifier: MIT */
/* Logging for the threaded layers (net/, pipeline/, cmd/). engine/ never prints.
 *
 * AEGIS_LOG(level, fmt, ...) checks the level before formatting (as Redis' serverLog
 * does) and writes one line to stderr:
 *   2026-11-26T14:31:38.123Z n2 aegis-raft INFO raft.c:120 became leader term=3
 * A line is written with a single write(2) so lines from different threads never
 * interleave. AEGIS_LOG_RATELIMITED writes at most AEGIS_LOG_RATELIMIT_LINES lines per
 * second from one call site; the lines it drops are counted and the next line that gets
 * through ends with "(suppressed K)". Per-message events use counters, not lines. */
#ifndef AEGIS_LOGGING_H
#define AEGIS_LOGGING_H

#include <aegis/types.h>

enum aegis_log_level {
    AEGIS_LOG_DEBUG = 0,
    AEGIS_LOG_INFO = 1,
    AEGIS_LOG_WARN = 2,
    AEGIS_LOG_ERROR = 3,
    AEGIS_LOG_OFF = 4,
};

/* The process-wide threshold; written at startup, read by every thread (relaxed). */
extern int aegis__log_level;

/* Set the threshold and the node id shown on each line. Call before starting threads. */
void aegis__log_setup(int level, aegis_node_id node);

/* Parse "debug", "info", "warn", "error" or "off"; -1 when unknown. */
int aegis__log_level_parse(const char *s);

void aegis__log_write(int level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define AEGIS_LOG(level, ...)                                                              \
    do {                                                                                   \
        if ((int)(level) >= __atomic_load_n(&aegis__log_level, __ATOMIC_RELAXED)) {        \
            aegis__log_write((level), __FILE__, __LINE__, __VA_ARGS__);                    \
        }                                                                                  \
    } while (0)

/* Like aegis__log_write, ending the line with " (suppressed K)" when @suppressed > 0. */
void aegis__log_write_suppressed(int level, const char *file, int line, uint64_t suppressed,
                                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#define AEGIS_LOG_RATELIMIT_LINES 3u /* Per call site and per second. */

/* One call site's budget: the current one-second window, the lines written in it and the
 * lines dropped since the last one written. Fields are updated with relaxed atomics (a
 * site may be reached from several threads; a race costs at most a line more or less). */
struct aegis_log_limit {
    uint64_t window_ns;
    uint64_t lines;
    uint64_t suppressed;
};

/* Whether a line may be written now; if so, *@suppressed_out takes (and resets) the
 * count of lines dropped since the last one written. */
bool aegis__log_ratelimit(struct aegis_log_limit *l, uint64_t *suppressed_out);

/* At most AEGIS_LOG_RATELIMIT_LINES lines per second from this call site; the rest are
 * counted and the count is reported at the end of the next line that gets through. */
#define AEGIS_LOG_RATELIMITED(level, ...)                                                  \
    do {                                                                                   \
        static struct aegis_log_limit rl_limit_;                                           \
        uint64_t rl_suppressed_;                                                           \
        if ((int)(level) >= __atomic_load_n(&aegis__log_level, __ATOMIC_RELAXED) &&        \
            aegis__log_ratelimit(&rl_limit_, &rl_suppressed_)) {                           \
            aegis__log_write_suppressed((level), __FILE__, __LINE__, rl_suppressed_,       \
                                        __VA_ARGS__);                                      \
        }                                                                                  \
    } while (0)

/* Monotonic clock in nanoseconds (CLOCK_MONOTONIC). */
uint64_t aegis__now_ns(void);

#endif /* AEGIS_LOGGING_H */
