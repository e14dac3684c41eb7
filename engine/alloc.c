/* SPDX-License-Identifier: MIT */
/* The default allocator: the process heap. */
#include "engine/alloc.h"

#include <stdlib.h>
#include <string.h>

static void *heap_malloc(void *data, size_t size)
{
    (void)data;
    return malloc(size);
}

static void *heap_realloc(void *data, void *ptr, size_t size)
{
    (void)data;
    return realloc(ptr, size);
}

static void heap_free(void *data, void *ptr)
{
    (void)data;
    free(ptr);
}

static const struct aegis_allocator heap_allocator = {
    .malloc = heap_malloc,
    .realloc = heap_realloc,
    .free = heap_free,
    .data = NULL,
};

const struct aegis_allocator *aegis__alloc_default(void)
{
    return &heap_allocator;
}

void *aegis__calloc(const struct aegis_allocator *a, size_t count, size_t size)
{
    void *p;

    if (size != 0 && count > SIZE_MAX / size) {
        return NULL;
    }
    p = aegis__malloc(a, count * size);
    if (p != NULL) {
        memset(p, 0, count * size);
    }
    return p;
}
