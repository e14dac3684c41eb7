/* SPDX-License-Identifier: MIT */
/* Logging for the threaded layers (net/, pipeline/, cmd/). engine/ never prints.
 *
 * AEGIS_LOG(level, fmt, ...) checks the level before formatting (as Redis' serverLog
 * does) and writes one line per event, "time level thread event key=value ...":
 *   2026-11-26T14:31:38.123Z INFO aegis-raft became_leader node=2 term=3 index=41
 *   2026-11-26T14:31:38.200Z WARN aegis-net message node=2 text="peer 3 ... link lost"
 * AEGIS_LOG_EVENT(level, "event", "key=%llu ...", ...) writes a named event with its
 * fields; AEGIS_LOG's free text becomes the event "message" with the text quoted in
 * text="..." (a '"' or '\' inside is escaped with '\', a control byte shown as '?'), so
 * that every line splits the same way. Every line ends with src=FILE:LINE. Raft core
 * events (the engine's tracer) go through aegis__log_raft_event, whose table names each
 * event's two numbers (term=, leader=, index=, ...).
 *
 * Where lines go: stderr by default; aegis__log_open_file (aegisd --log-file) appends to
 * a file instead and aegis__log_reopen (SIGHUP, for logrotate) reopens the same path:
 * the new file is dup2()ed over the old descriptor, so a thread writing meanwhile writes
 * to one file or the other, never to a closed descriptor. An embedder may take every line
 * instead through aegis_set_log_fn (aegis.h); then nothing is written to the descriptor.
 * A line is written with a single write(2) (or one callback call) so lines from
 * different threads never interleave. AEGIS_LOG_RATELIMITED writes at most
 * AEGIS_LOG_RATELIMIT_LINES lines per second from one call site; the lines it drops are
 * counted and the next line that gets through ends with suppressed=K. Per-message events
 * use counters, not lines. */
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

/* Append the lines to @path (created 0640 if missing) instead of stderr. Returns 0 or a
 * negative errno. Call before starting threads. */
int aegis__log_open_file(const char *path);

/* Reopen the --log-file path (logrotate moved the old file away). Returns 0 (also when
 * there is no log file) or a negative errno (the old file stays in use). Any thread. */
int aegis__log_reopen(void);

/* Free text: the event "message" with text="...". */
void aegis__log_write(int level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The event @event with the fields @fmt formats ("key=value key=value"). */
void aegis__log_event(int level, const char *file, int line, const char *event,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#define AEGIS_LOG_EVENT(level, event, ...)                                                 \
    do {                                                                                   \
        if ((int)(level) >= __atomic_load_n(&aegis__log_level, __ATOMIC_RELAXED)) {        \
            aegis__log_event((level), __FILE__, __LINE__, (event), __VA_ARGS__);           \
        }                                                                                  \
    } while (0)

/* A Raft core trace (engine/raft.h's tracer: an event name and two numbers) as a line
 * whose fields are named by the event's row in logging.c (e.g. "conf" -> index= voters=;
 * an event without a row gets a= b=). "commit" is a debug event (once per round). */
void aegis__log_raft_event(aegis_node_id node, const char *what, uint64_t a, uint64_t b);

/* The field names of Raft event @what (tests; NULL names when @what has no row). */
void aegis__log_raft_fields(const char *what, const char **a_name, const char **b_name);

#define AEGIS_LOG(level, ...)                                                              \
    do {                                                                                   \
        if ((int)(level) >= __atomic_load_n(&aegis__log_level, __ATOMIC_RELAXED)) {        \
            aegis__log_write((level), __FILE__, __LINE__, __VA_ARGS__);                    \
        }                                                                                  \
    } while (0)

/* Like aegis__log_write, with the field suppressed=K when @suppressed > 0. */
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
 * counted and the count is reported (suppressed=K) by the next line that gets through. */
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
