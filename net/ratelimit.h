/* SPDX-License-Identifier: MIT */
/* A tiny log rate limiter for the net thread: at most one line per period from one
 * limiter; the lines held back are counted and the count goes out with the next line
 * that passes ("... (37 similar suppressed)"). Single-threaded (one loop owns it); the
 * caller passes the clock, so tests can drive it. Kept in net/ so the loop does not
 * depend on pipeline/logging. */
#ifndef AEGIS_NET_RATELIMIT_H
#define AEGIS_NET_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct aegis_ratelimit {
    uint64_t next_ms;    /* The next line may pass at or after this time. */
    uint64_t suppressed; /* Lines held back since the last one that passed. */
};

#define AEGIS_RATELIMIT_PERIOD_MS 1000u

/* True when a line may be written at @now_ms; then *@suppressed_out is how many were held
 * back before it (and the count restarts). False: the line is counted and dropped. */
static inline bool aegis__ratelimit_pass(struct aegis_ratelimit *rl, uint64_t now_ms,
                                         uint64_t *suppressed_out)
{
    if (now_ms < rl->next_ms) {
        rl->suppressed++;
        return false;
    }
    *suppressed_out = rl->suppressed;
    rl->suppressed = 0;
    rl->next_ms = now_ms + AEGIS_RATELIMIT_PERIOD_MS;
    return true;
}

#endif /* AEGIS_NET_RATELIMIT_H */
