/* SPDX-License-Identifier: MIT */
/* Reference-counted immutable byte buffers: the payload of every log entry.
 *
 * One buffer is created when a command's bytes first arrive (from a client, or decoded
 * from a peer's frame) and then shared: the log, the log writer's iovecs, the send queues
 * and the apply queue each hold a reference, and nobody copies the bytes. A buffer is
 * writable only by its creator before it is first shared (refs == 1); after that it is
 * immutable. The count is atomic because references cross threads (acq_rel on the last
 * unref so the freeing thread sees every write made before other threads let go).
 *
 * Layout: header and bytes in one allocation (data[] is a flexible array member). */
#ifndef AEGIS_BUF_H
#define AEGIS_BUF_H

#include "engine/alloc.h"

struct aegis_buf {
    uint32_t refs; /* Atomic; any thread holding a reference. */
    uint32_t len;  /* Immutable after create. */
    const struct aegis_allocator *alloc;
    uint8_t data[];
};

/* The largest payload a buffer may hold (entries, snapshot chunks, values). */
#define AEGIS_BUF_LEN_MAX ((uint32_t)(256u << 20))

/* Allocate a buffer of @len bytes (uninitialised) with one reference owned by the caller.
 * Returns NULL when @len > AEGIS_BUF_LEN_MAX or memory is exhausted. */
struct aegis_buf *aegis__buf_create(const struct aegis_allocator *a, size_t len);

/* Allocate a buffer holding a copy of @len bytes at @src. @src stays the caller's. */
struct aegis_buf *aegis__buf_from(const struct aegis_allocator *a, const void *src, size_t len);

/* Take one more reference. @b must be non-NULL and alive. Any thread. */
static inline struct aegis_buf *aegis__buf_ref(struct aegis_buf *b)
{
    /* Relaxed is enough to add a reference: the caller already holds one, so the buffer
     * cannot be freed concurrently. */
    __atomic_fetch_add(&b->refs, 1, __ATOMIC_RELAXED);
    return b;
}

/* Drop one reference; frees the buffer when it was the last. NULL is a no-op. */
void aegis__buf_unref(struct aegis_buf *b);

#endif /* AEGIS_BUF_H */
