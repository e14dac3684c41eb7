/* SPDX-License-Identifier: MIT */
/* ReplicatedLog; see log.h for the ring layout and ownership rules.
 *
 * Growth doubles the ring (an allocation bounded by the number of entries kept between
 * snapshots, so by snapshot_threshold + snapshot_trailing in steady state). The ring never
 * shrinks: a log that once held N entries is likely to hold N again. */
#include "engine/log.h"

#include <string.h>

#include <aegis/error.h>

#include "engine/assert.h"

#define LOG_CAP_MIN 16u

static size_t slot_of(const struct aegis_log *l, aegis_index index)
{
    AEGIS_ASSERT(index > l->offset);
    AEGIS_ASSERT(index - l->offset <= l->count);
    return (l->head + (size_t)(index - l->offset - 1)) & (l->cap - 1);
}

void aegis__log_init(struct aegis_log *l, const struct aegis_allocator *a)
{
    memset(l, 0, sizeof(*l));
    l->alloc = aegis__alloc_or_default(a);
}

/* Unreference and forget the @n entries at the head of the ring. */
static void drop_head(struct aegis_log *l, size_t n)
{
    AEGIS_ASSERT(n <= l->count);
    for (size_t i = 0; i < n; i++) {
        aegis__entry_unref(&l->ring[(l->head + i) & (l->cap - 1)]);
    }
    if (n > 0) {
        l->head = (l->head + n) & (l->cap - 1);
    }
    l->count -= n;
    l->offset += n;
}

/* Unreference and forget the @n entries at the tail of the ring. */
static void drop_tail(struct aegis_log *l, size_t n)
{
    AEGIS_ASSERT(n <= l->count);
    for (size_t i = 0; i < n; i++) {
        aegis__entry_unref(&l->ring[(l->head + l->count - 1 - i) & (l->cap - 1)]);
    }
    l->count -= n;
}

void aegis__log_close(struct aegis_log *l)
{
    if (l->count > 0) {
        drop_tail(l, l->count);
    }
    aegis__free(l->alloc, l->ring);
    l->ring = NULL;
    l->cap = 0;
}

/* Double the ring, unwrapping it so the head lands in slot 0. */
static int grow(struct aegis_log *l)
{
    size_t cap = l->cap == 0 ? LOG_CAP_MIN : l->cap * 2;
    struct aegis_entry *ring;

    AEGIS_ASSERT(l->count == l->cap);
    if (cap > SIZE_MAX / sizeof(*ring)) {
        return AEGIS_ENOMEM;
    }
    ring = aegis__malloc(l->alloc, cap * sizeof(*ring));
    if (ring == NULL) {
        return AEGIS_ENOMEM;
    }
    for (size_t i = 0; i < l->count; i++) {
        ring[i] = l->ring[(l->head + i) & (l->cap - 1)];
    }
    aegis__free(l->alloc, l->ring);
    l->ring = ring;
    l->cap = cap;
    l->head = 0;
    return 0;
}

int aegis__log_append(struct aegis_log *l, const struct aegis_entry *e)
{
    struct aegis_entry *slot;
    int rv;

    if (e->index != aegis__log_last_index(l) + 1 || e->term < aegis__log_last_term(l) ||
        e->term == 0) {
        return AEGIS_EINVAL;
    }
    if (l->count == l->cap) {
        rv = grow(l);
        if (rv != 0) {
            return rv;
        }
    }
    slot = &l->ring[(l->head + l->count) & (l->cap - 1)];
    *slot = *e;
    aegis__entry_ref(slot);
    l->count++;
    AEGIS_ASSERT(aegis__log_last_index(l) == e->index);
    return 0;
}

const struct aegis_entry *aegis__log_get(const struct aegis_log *l, aegis_index index)
{
    if (index <= l->offset || index - l->offset > l->count) {
        return NULL;
    }
    return &l->ring[slot_of(l, index)];
}

uint32_t aegis__log_range(const struct aegis_log *l, aegis_index from, uint32_t count_max,
                          uint64_t bytes_max, struct aegis_entry *out)
{
    aegis_index last = aegis__log_last_index(l);
    uint64_t bytes = 0;
    uint32_t n = 0;

    if (from <= l->offset) {
        return 0;
    }
    for (aegis_index i = from; i <= last && n < count_max; i++) {
        const struct aegis_entry *e = &l->ring[slot_of(l, i)];
        uint64_t len = aegis__entry_len(e);

        if (n > 0 && bytes + len > bytes_max) {
            break;
        }
        bytes += len;
        out[n] = *e;
        aegis__entry_ref(&out[n]);
        n++;
    }
    return n;
}

aegis_term aegis__log_term_at(const struct aegis_log *l, aegis_index index)
{
    const struct aegis_entry *e;

    if (index == l->offset) {
        return l->offset_term;
    }
    e = aegis__log_get(l, index);
    return e != NULL ? e->term : 0;
}

aegis_index aegis__log_first_index(const struct aegis_log *l)
{
    return l->offset + 1;
}

aegis_index aegis__log_last_index(const struct aegis_log *l)
{
    return l->offset + l->count;
}

aegis_term aegis__log_first_term(const struct aegis_log *l)
{
    return l->count > 0 ? l->ring[l->head].term : 0;
}

aegis_term aegis__log_last_term(const struct aegis_log *l)
{
    return aegis__log_term_at(l, aegis__log_last_index(l));
}

int aegis__log_commit(struct aegis_log *l, aegis_index index)
{
    if (index > aegis__log_last_index(l)) {
        return AEGIS_ERANGE;
    }
    if (index > l->commit) {
        l->commit = index;
    }
    return 0;
}

int aegis__log_truncate(struct aegis_log *l, aegis_index index)
{
    aegis_index last = aegis__log_last_index(l);

    if (index < l->commit) {
        return AEGIS_EPERM;
    }
    if (index < l->offset) {
        return AEGIS_ECOMPACTED;
    }
    if (index >= last) {
        return 0;
    }
    drop_tail(l, (size_t)(last - index));
    AEGIS_ASSERT(aegis__log_last_index(l) == index);
    return 0;
}

int aegis__log_compact(struct aegis_log *l, aegis_index index)
{
    aegis_term term;

    if (index > l->commit) {
        return AEGIS_EPERM;
    }
    if (index <= l->offset) {
        return 0;
    }
    term = aegis__log_term_at(l, index);
    AEGIS_ASSERT(term != 0); /* offset < index <= commit <= last. */
    drop_head(l, (size_t)(index - l->offset));
    l->offset_term = term;
    AEGIS_ASSERT(l->offset == index);
    return 0;
}

void aegis__log_reset(struct aegis_log *l, aegis_index index, aegis_term term)
{
    drop_tail(l, l->count);
    l->head = 0;
    l->offset = index;
    l->offset_term = term;
    l->commit = index;
}

/* First index of the run of @term that contains @index, scanning back no further than the
 * entry after the commit index (committed entries never conflict) or the compaction
 * point. Bounded by the length of one term's run in the log. */
static aegis_index first_of_term(const struct aegis_log *l, aegis_index index, aegis_term term)
{
    aegis_index floor = l->commit > l->offset ? l->commit : l->offset;

    while (index > floor + 1 && aegis__log_term_at(l, index - 1) == term) {
        index--;
    }
    return index;
}

void aegis__log_match(const struct aegis_log *l, aegis_index prev_index, aegis_term prev_term,
                      const struct aegis_entry *entries, uint32_t n,
                      struct aegis_log_match *out)
{
    aegis_index last = aegis__log_last_index(l);

    memset(out, 0, sizeof(*out));
    if (prev_index > last) {
        out->hint_index = last + 1;
        return;
    }
    if (prev_index >= l->offset && aegis__log_term_at(l, prev_index) != prev_term) {
        out->hint_term = aegis__log_term_at(l, prev_index);
        out->hint_index = first_of_term(l, prev_index, out->hint_term);
        return;
    }
    out->ok = true;
    for (uint32_t i = 0; i < n; i++) {
        const struct aegis_entry *e = &entries[i];

        AEGIS_ASSERT(e->index == prev_index + 1 + i);
        if (e->index <= l->offset) {
            continue;
        }
        if (e->index > last || aegis__log_term_at(l, e->index) != e->term) {
            out->first_new = e->index;
            return;
        }
    }
}

aegis_index aegis__log_last_of_term(const struct aegis_log *l, aegis_term term,
                                    aegis_index max_index)
{
    aegis_index i = max_index < aegis__log_last_index(l) ? max_index : aegis__log_last_index(l);

    /* Terms never decrease along the log, so stop at the first term below @term. */
    while (i >= l->offset) {
        aegis_term t = aegis__log_term_at(l, i);

        if (t == term) {
            return i;
        }
        if (t < term || i == 0) {
            return 0;
        }
        i--;
    }
    return 0;
}
