/* SPDX-License-Identifier: MIT */
/* Typed single-producer single-consumer rings between pipeline stages, and the eventfd
 * wake-up that lets a consumer sleep without anyone spinning.
 *
 * Rings. AEGIS_RING_DEFINE(name, type) declares struct aegis_ring_<name>, a bounded ring
 * of `struct type` values copied in and out by value (ck's CK_RING_PROTOTYPE), with
 *   aegis__ring_<name>_init(r, slots, consumer_waker, alloc)   slots: power of two >= 4;
 *   aegis__ring_<name>_close(r)
 *   aegis__ring_<name>_push_sp(r, &item)        copy in and wake the consumer if asleep;
 *   aegis__ring_<name>_push_sp_defer(r, &item)  copy in, no wake (then call _wake once);
 *   aegis__ring_<name>_wake(r)                  wake the consumer if it said it sleeps;
 *   aegis__ring_<name>_pop_sc(r, &item_out)     copy out, false when empty;
 *   aegis__ring_<name>_count(r), _empty(r)      racy snapshots, exact from the consumer
 *                                               for "is there more" after prepare.
 * Exactly one thread may push and exactly one thread may pop (ck's spsc contract). A
 * ring of S slots holds S - 1 items (ck keeps one slot free to tell full from empty).
 * A push transfers ownership of whatever the item refers to only when it returns true;
 * on false (full) the producer still owns it and must push back (AEGIS_EFULL upstream).
 *
 * Under ThreadSanitizer (gcc -fsanitize=thread defines __SANITIZE_THREAD__) the ring
 * uses a twin implementation on the same fields with __atomic acquire/release, because
 * ck's x86 port orders memory with inline assembly and plain volatile accesses that TSan
 * cannot see and would report as races. Both implementations obey the same protocol:
 * the producer writes the slot then publishes p_tail (release); the consumer reads
 * p_tail (acquire), copies the slot, then publishes c_head (release) so the producer
 * (acquire) may reuse the slot.
 *
 * Wake-ups. A struct aegis_waker belongs to one consuming thread and may serve several
 * rings that feed it. The consumer's loop is:
 *
 *     for (;;) {
 *         drain every input ring;
 *         aegis__waker_prepare(w);               announce: "I am about to sleep";
 *         if (any input ring is non-empty) {      re-check after the announcement;
 *             aegis__waker_cancel(w);
 *             continue;
 *         }
 *         aegis__waker_wait(w, timeout_ms);       block on the eventfd;
 *     }
 *
 * and a producer, after pushing, calls aegis__waker_wake(w), which writes the eventfd
 * only when the consumer has announced it sleeps. This is Dekker's pattern: the consumer
 * stores `sleeping` then loads the ring's tail; the producer stores the tail then loads
 * `sleeping`; a full fence sits between the store and the load on both sides, so at
 * least one of them sees the other's store: either the consumer sees the item and does
 * not sleep, or the producer sees `sleeping` and writes the eventfd. A wake-up can never
 * be lost, and under load (consumer busy, `sleeping` == 0) a push costs no syscall. A
 * spare eventfd count (producer woke a consumer that then found the work itself) only
 * causes one extra pass through the loop. */
#ifndef AEGIS_PIPELINE_RING_H
#define AEGIS_PIPELINE_RING_H

#include <stdbool.h>
#include <string.h>

#include <aegis/error.h>

#include "engine/alloc.h"
#include "engine/assert.h"

struct aegis_waker {
    int fd;       /* eventfd; owned by the consumer, written by producers. */
    char pad0[60];
    int sleeping; /* 1 while the consumer is (about to be) blocked. Written by the consumer
                   * (prepare/cancel/wait) and by the producer that wakes it (exchange to
                   * 0); always accessed with __atomic, seq_cst. Own cache line: it is
                   * touched by both threads on every push. */
    char pad1[60];
    uint64_t wakes; /* eventfd writes done by producers (relaxed; statistics). */
    int fence_word; /* Under TSan only: the target of the RMW that stands in for the
                     * fences (TSan does not model fences; two acq_rel RMWs on one
                     * location order the two sides the same way). */
};

/* Create the eventfd. Returns 0 or a negative errno (AEGIS_EMFILE, ...). */
int aegis__waker_init(struct aegis_waker *w);
void aegis__waker_close(struct aegis_waker *w);

/* Consumer: announce that it is about to sleep. After this, re-check every input ring and
 * either aegis__waker_cancel() (work found) or aegis__waker_wait(). */
void aegis__waker_prepare(struct aegis_waker *w);

/* Consumer: found work after prepare; do not sleep. */
void aegis__waker_cancel(struct aegis_waker *w);

/* Consumer: block until a producer wakes it or @timeout_ms passes (-1: no timeout). Must
 * follow aegis__waker_prepare(). Returns 1 when woken, 0 on timeout, or a negative errno.
 * On return the consumer is awake (`sleeping` == 0). */
int aegis__waker_wait(struct aegis_waker *w, int timeout_ms);

/* Consumer that polls the eventfd through its own io_uring instead of
 * aegis__waker_wait(): once the fd is readable, call this to reset the count and mark
 * itself awake. Returns 0 or a negative errno. */
int aegis__waker_consume(struct aegis_waker *w);

/* Producer: wake the consumer if it announced it sleeps. Call after a push (or a run of
 * deferred pushes). Any producer thread. */
void aegis__waker_wake(struct aegis_waker *w);

/* ck's headers are C only (implicit void * conversions): C++ code (bench/ only) sees the
 * waker API above and not the rings. */
#ifndef __cplusplus
#include <ck_ring.h>

#if defined(__SANITIZE_THREAD__)
#define AEGIS_RING_TSAN_ 1
#else
#define AEGIS_RING_TSAN_ 0
#endif

/* The TSan twin of ck's _ck_ring_enqueue_sp / _ck_ring_dequeue_sc for one value of
 * @size bytes. Same fields, same protocol, orderings spelled with __atomic. */
static inline bool aegis__ring_tsan_push(struct ck_ring *r, void *slots, const void *item,
                                         unsigned int size)
{
    unsigned int consumer, producer, delta;

    /* Acquire pairs with the consumer's release of c_head: the slot we may overwrite
     * has been copied out. */
    consumer = __atomic_load_n(&r->c_head, __ATOMIC_ACQUIRE);
    producer = r->p_tail; /* Only this thread writes p_tail. */
    delta = producer + 1;
    if ((delta & r->mask) == (consumer & r->mask)) {
        return false;
    }
    memcpy((char *)slots + (size_t)size * (producer & r->mask), item, size);
    /* Release publishes the slot's bytes before the new tail. */
    __atomic_store_n(&r->p_tail, delta, __ATOMIC_RELEASE);
    return true;
}

static inline bool aegis__ring_tsan_pop(struct ck_ring *r, const void *slots, void *item_out,
                                        unsigned int size)
{
    unsigned int consumer, producer;

    consumer = r->c_head; /* Only this thread writes c_head. */
    /* Acquire pairs with the producer's release of p_tail: the slot's bytes are visible. */
    producer = __atomic_load_n(&r->p_tail, __ATOMIC_ACQUIRE);
    if (consumer == producer) {
        return false;
    }
    memcpy(item_out, (const char *)slots + (size_t)size * (consumer & r->mask), size);
    /* Release orders the copy-out before the producer may reuse the slot. */
    __atomic_store_n(&r->c_head, consumer + 1, __ATOMIC_RELEASE);
    return true;
}

/* Number of items queued. Exact for the consumer when called after
 * aegis__waker_prepare() (the fence there orders it after the announcement). */
static inline unsigned int aegis__ring_count_(const struct ck_ring *r)
{
    unsigned int c = __atomic_load_n(&r->c_head, __ATOMIC_ACQUIRE);
    unsigned int p = __atomic_load_n(&r->p_tail, __ATOMIC_ACQUIRE);

    return (p - c) & r->mask;
}

#define AEGIS_RING_DEFINE(name, type)                                                      \
    CK_RING_PROTOTYPE(aegis_##name, type)                                                  \
    struct aegis_ring_##name {                                                             \
        struct ck_ring ring;         /* Indexes: ck's own padded layout. */                \
        struct type *slots;          /* slots_count values; allocated at init. */          \
        struct aegis_waker *waker;   /* The consumer's; borrowed, may be NULL. */          \
        const struct aegis_allocator *alloc;                                               \
    };                                                                                     \
    static inline int aegis__ring_##name##_init(struct aegis_ring_##name *r,               \
                                                unsigned int slots_count,                  \
                                                struct aegis_waker *waker,                 \
                                                const struct aegis_allocator *alloc)       \
    {                                                                                      \
        AEGIS_ASSERT(slots_count >= 4);                                                    \
        AEGIS_ASSERT((slots_count & (slots_count - 1)) == 0);                              \
        r->slots = aegis__calloc(alloc, slots_count, sizeof(struct type));                 \
        if (r->slots == NULL) {                                                            \
            return AEGIS_ENOMEM;                                                           \
        }                                                                                  \
        ck_ring_init(&r->ring, slots_count);                                               \
        r->waker = waker;                                                                  \
        r->alloc = alloc;                                                                  \
        return 0;                                                                          \
    }                                                                                      \
    static inline void aegis__ring_##name##_close(struct aegis_ring_##name *r)             \
    {                                                                                      \
        aegis__free(r->alloc, r->slots);                                                   \
        r->slots = NULL;                                                                   \
    }                                                                                      \
    static inline bool aegis__ring_##name##_push_sp_defer(struct aegis_ring_##name *r,     \
                                                          const struct type *item)         \
    {                                                                                      \
        if (AEGIS_RING_TSAN_) {                                                            \
            return aegis__ring_tsan_push(&r->ring, r->slots, item,                         \
                                         (unsigned int)sizeof(struct type));               \
        }                                                                                  \
        /* ck stores the slot, then a store fence, then p_tail: release semantics. */      \
        return ck_ring_enqueue_spsc_aegis_##name(&r->ring, r->slots,                       \
                                                 (struct type *)(uintptr_t)item);          \
    }                                                                                      \
    static inline void aegis__ring_##name##_wake(struct aegis_ring_##name *r)              \
    {                                                                                      \
        if (r->waker != NULL) {                                                            \
            aegis__waker_wake(r->waker);                                                   \
        }                                                                                  \
    }                                                                                      \
    static inline bool aegis__ring_##name##_push_sp(struct aegis_ring_##name *r,           \
                                                    const struct type *item)               \
    {                                                                                      \
        if (!aegis__ring_##name##_push_sp_defer(r, item)) {                                \
            return false;                                                                  \
        }                                                                                  \
        aegis__ring_##name##_wake(r);                                                      \
        return true;                                                                       \
    }                                                                                      \
    static inline bool aegis__ring_##name##_pop_sc(struct aegis_ring_##name *r,            \
                                                   struct type *item_out)                  \
    {                                                                                      \
        if (AEGIS_RING_TSAN_) {                                                            \
            return aegis__ring_tsan_pop(&r->ring, r->slots, item_out,                      \
                                        (unsigned int)sizeof(struct type));                \
        }                                                                                  \
        /* ck loads p_tail, a load fence, copies the slot, a store-atomic fence, then      \
         * publishes c_head: acquire on entry, release on exit. */                         \
        return ck_ring_dequeue_spsc_aegis_##name(&r->ring, r->slots, item_out);            \
    }                                                                                      \
    static inline unsigned int aegis__ring_##name##_count(const struct aegis_ring_##name *r) \
    {                                                                                      \
        return aegis__ring_count_(&r->ring);                                               \
    }                                                                                      \
    static inline bool aegis__ring_##name##_empty(const struct aegis_ring_##name *r)       \
    {                                                                                      \
        return aegis__ring_count_(&r->ring) == 0;                                          \
    }                                                                                      \
    static inline unsigned int aegis__ring_##name##_capacity(                              \
        const struct aegis_ring_##name *r)                                                 \
    {                                                                                      \
        return r->ring.size - 1;                                                           \
    }

#endif /* !__cplusplus */

#endif /* AEGIS_PIPELINE_RING_H */
