/* SPDX-License-Identifier: MIT */
/* Reference-counted immutable buffers; see buf.h. */
#include "engine/buf.h"

#include <string.h>

#include "engine/assert.h"

struct aegis_buf *aegis__buf_create(const struct aegis_allocator *a, size_t len)
{
    struct aegis_buf *b;

    if (len > AEGIS_BUF_LEN_MAX) {
        return NULL;
    }
    a = aegis__alloc_or_default(a);
    b = aegis__malloc(a, sizeof(*b) + len);
    if (b == NULL) {
        return NULL;
    }
    b->refs = 1;
    b->len = (uint32_t)len;
    b->alloc = a;
    return b;
}

struct aegis_buf *aegis__buf_from(const struct aegis_allocator *a, const void *src, size_t len)
{
    struct aegis_buf *b = aegis__buf_create(a, len);

    if (b != NULL && len > 0) {
        memcpy(b->data, src, len);
    }
    return b;
}

void aegis__buf_unref(struct aegis_buf *b)
{
    uint32_t before;

    if (b == NULL) {
        return;
    }
    /* acq_rel: the release orders this thread's reads of the bytes before the count drop;
     * the acquire, taken by whoever drops the last reference, orders the free after every
     * other holder's reads. */
    before = __atomic_fetch_sub(&b->refs, 1, __ATOMIC_ACQ_REL);
    AEGIS_ASSERT(before > 0);
    if (before == 1) {
        aegis__free(b->alloc, b);
    }
}
