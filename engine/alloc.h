/* SPDX-License-Identifier: MIT */
/* The allocator passed in at init, per instance (like ck's struct ck_malloc).
 *
 * Every allocation in Aegis goes through one of these. Production uses the process heap
 * (jemalloc, linked by the programs); tests pass a fault-injecting heap. A NULL allocator
 * pointer anywhere means aegis__alloc_default(). */
#ifndef AEGIS_ALLOC_H
#define AEGIS_ALLOC_H

#include <aegis/types.h>

struct aegis_allocator {
    void *(*malloc)(void *data, size_t size);
    void *(*realloc)(void *data, void *ptr, size_t size);
    void (*free)(void *data, void *ptr);
    void *data;
};

/* The process heap. Never NULL; the returned object is static. */
const struct aegis_allocator *aegis__alloc_default(void);

static inline const struct aegis_allocator *aegis__alloc_or_default(
    const struct aegis_allocator *a)
{
    return a != NULL ? a : aegis__alloc_default();
}

static inline void *aegis__malloc(const struct aegis_allocator *a, size_t size)
{
    a = aegis__alloc_or_default(a);
    return a->malloc(a->data, size);
}

static inline void *aegis__realloc(const struct aegis_allocator *a, void *ptr, size_t size)
{
    a = aegis__alloc_or_default(a);
    return a->realloc(a->data, ptr, size);
}

static inline void aegis__free(const struct aegis_allocator *a, void *ptr)
{
    if (ptr == NULL) {
        return;
    }
    a = aegis__alloc_or_default(a);
    a->free(a->data, ptr);
}

/* Zeroed allocation of @count * @size bytes, NULL on overflow or exhaustion. */
void *aegis__calloc(const struct aegis_allocator *a, size_t count, size_t size);

#endif /* AEGIS_ALLOC_H */
