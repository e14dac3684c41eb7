/* SPDX-License-Identifier: MIT */
/* The eventfd wake-up protocol of ring.h: the consumer announces it is about to sleep,
 * re-checks its rings, then blocks on the eventfd; a producer writes the eventfd only
 * when the consumer has announced. Every access to `sleeping` is a seq_cst __atomic
 * operation, and each side puts a full fence between its store and its load (Dekker):
 * consumer: store sleeping=1; fence; load ring tails.
 * producer: store ring tail;  fence; load sleeping.
 * With both fences, the two loads cannot both miss the other side's store. */
#include "pipeline/ring.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* The full fence between a side's store and its load. */
static inline void full_fence(struct aegis_waker *w)
{
#if defined(__SANITIZE_THREAD__)
    __atomic_fetch_add(&w->fence_word, 0, __ATOMIC_SEQ_CST);
#else
    (void)w;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

int aegis__waker_init(struct aegis_waker *w)
{
    memset(w, 0, sizeof(*w));
    w->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->fd < 0) {
        return -errno;
    }
    return 0;
}

void aegis__waker_close(struct aegis_waker *w)
{
    if (w->fd >= 0) {
        close(w->fd);
    }
    w->fd = -1;
}

void aegis__waker_prepare(struct aegis_waker *w)
{
    AEGIS_ASSERT(w->fd >= 0);
    /* seq_cst store: the announcement. */
    __atomic_store_n(&w->sleeping, 1, __ATOMIC_SEQ_CST);
    /* Full fence: orders the announcement before the caller's re-check loads of the ring
     * tails (a store followed by a load may otherwise be reordered, even on x86). Pairs
     * with the fence in aegis__waker_wake(). */
    full_fence(w);
}

void aegis__waker_cancel(struct aegis_waker *w)
{
    /* Withdraw the announcement. If a producer already took it (exchanged it to 0), it
     * has written or is writing the eventfd: that spare count costs one extra loop. */
    __atomic_store_n(&w->sleeping, 0, __ATOMIC_SEQ_CST);
}

static int drain_eventfd(struct aegis_waker *w)
{
    uint64_t count;
    ssize_t n = read(w->fd, &count, sizeof(count));

    if (n < 0) {
        return errno == EAGAIN ? 0 : -errno;
    }
    AEGIS_ASSERT(n == (ssize_t)sizeof(count));
    return 0;
}

int aegis__waker_wait(struct aegis_waker *w, int timeout_ms)
{
    struct pollfd pfd = {.fd = w->fd, .events = POLLIN};
    int rv;

    AEGIS_ASSERT(w->fd >= 0);
    do {
        rv = poll(&pfd, 1, timeout_ms);
    } while (rv < 0 && errno == EINTR);
    if (rv < 0) {
        rv = -errno;
        aegis__waker_cancel(w);
        return rv;
    }
    /* Mark ourselves awake before reading the count, so a producer that pushes from now on
     * does not write the eventfd again for nothing. */
    aegis__waker_cancel(w);
    if (rv == 0) {
        return 0;
    }
    rv = drain_eventfd(w);
    return rv < 0 ? rv : 1;
}

int aegis__waker_consume(struct aegis_waker *w)
{
    aegis__waker_cancel(w);
    return drain_eventfd(w);
}

void aegis__waker_wake(struct aegis_waker *w)
{
    uint64_t one = 1;
    ssize_t n;

    /* Full fence: orders the caller's ring-tail store before the load of `sleeping`.
     * Pairs with the fence in aegis__waker_prepare(). */
    full_fence(w);
    /* A plain load first keeps the common case (consumer awake) free of a locked
     * instruction; the exchange makes only one producer write for one announcement. */
    if (__atomic_load_n(&w->sleeping, __ATOMIC_SEQ_CST) == 0) {
        return;
    }
    if (__atomic_exchange_n(&w->sleeping, 0, __ATOMIC_SEQ_CST) == 0) {
        return;
    }
    __atomic_fetch_add(&w->wakes, 1, __ATOMIC_RELAXED);
    do {
        n = write(w->fd, &one, sizeof(one));
    } while (n < 0 && errno == EINTR);
    /* An eventfd write fails only when the counter would overflow 2^64-2: impossible with
     * one write per announcement. */
    AEGIS_ASSERT(n == (ssize_t)sizeof(one));
}
