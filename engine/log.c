/* SPDX-License-Identifier: MIT */
/* ReplicatedLog; see log.h for the regions, the ring layout and ownership rules.
 *
 * Growth doubles the ring (an allocation bounded by the number of entries cached: with a
 * bounded cache, by its bound over the smallest record; unbounded, by the entries kept
 * between snapshots). The ring never shrinks: a log that once held N entries is likely to
 * hold N again.
 *
 * Eviction moves the oldest cached entry to the disk region: its term extends the last
 * run (or starts one), a ConfigChange is kept whole in confs, the payload reference goes.
 * Compaction drops runs, confs, window entries and cached entries up to its index. The
 * read-back window is one contiguous range of the disk region; it is cleared by
 * compaction and reset, and replaced by the next aegis__log_window_set. */
#include "engine/log.h"

#include <string.h>

#include <aegis/error.h>

#include "engine/assert.h"

#define LOG_CAP_MIN 16u

static size_t slot_of(const struct aegis_log *l, aegis_index index)
{
    AEGIS_ASSERT(index > l->ring_base);
    AEGIS_ASSERT(index - l->ring_base <= l->count);
    return (l->head + (size_t)(index - l->ring_base - 1)) & (l->cap - 1);
}

static uint64_t record_bytes(const struct aegis_entry *e)
{
    return AEGIS_LOG_RECORD_OVERHEAD + (uint64_t)aegis__entry_len(e);
}

void aegis__log_init(struct aegis_log *l, const struct aegis_allocator *a)
{
    memset(l, 0, sizeof(*l));
    l->alloc = aegis__alloc_or_default(a);
}

void aegis__log_set_cache_max(struct aegis_log *l, uint64_t bytes)
{
    l->cache_bytes_max = bytes;
}

/* Drop the read-back window's entries. */
static void window_clear(struct aegis_log *l)
{
    for (uint32_t i = 0; i < l->win_count; i++) {
        aegis__entry_unref(&l->win[i]);
    }
    l->win_count = 0;
    l->win_first = 0;
}

/* Forget the disk region's runs and ConfigChanges at or below @index. */
static void disk_drop_upto(struct aegis_log *l, aegis_index index)
{
    uint32_t k = 0;

    while (l->runs_count - k > 1 && l->runs[k + 1].first <= index + 1) {
        k++;
    }
    if (k > 0) {
        memmove(l->runs, l->runs + k, (l->runs_count - k) * sizeof(*l->runs));
        l->runs_count -= k;
    }
    if (l->runs_count > 0 && l->runs[0].first <= index) {
        l->runs[0].first = index + 1;
    }
    if (l->runs_count > 0 && index >= l->ring_base) {
        l->runs_count = 0;
    }
    k = 0;
    while (k < l->confs_count && l->confs[k].index <= index) {
        aegis__entry_unref(&l->confs[k]);
        k++;
    }
    if (k > 0) {
        memmove(l->confs, l->confs + k, (l->confs_count - k) * sizeof(*l->confs));
        l->confs_count -= k;
    }
    if (l->win_count > 0 && l->win_first + l->win_count - 1 <= index) {
        window_clear(l);
    }
}

/* Unreference and forget the @n entries at the head of the ring. */
static void drop_head(struct aegis_log *l, size_t n)
{
    AEGIS_ASSERT(n <= l->count);
    for (size_t i = 0; i < n; i++) {
        struct aegis_entry *e = &l->ring[(l->head + i) & (l->cap - 1)];

        l->cache_bytes -= record_bytes(e);
        aegis__entry_unref(e);
    }
    if (n > 0) {
        l->head = (l->head + n) & (l->cap - 1);
    }
    l->count -= n;
    l->ring_base += n;
}

/* Unreference and forget the @n entries at the tail of the ring. */
static void drop_tail(struct aegis_log *l, size_t n)
{
    AEGIS_ASSERT(n <= l->count);
    for (size_t i = 0; i < n; i++) {
        struct aegis_entry *e = &l->ring[(l->head + l->count - 1 - i) & (l->cap - 1)];

        l->cache_bytes -= record_bytes(e);
        aegis__entry_unref(e);
    }
    l->count -= n;
}

void aegis__log_close(struct aegis_log *l)
{
    if (l->count > 0) {
        drop_tail(l, l->count);
    }
    disk_drop_upto(l, UINT64_MAX - 1);
    window_clear(l);
    aegis__free(l->alloc, l->ring);
    aegis__free(l->alloc, l->runs);
    aegis__free(l->alloc, l->confs);
    aegis__free(l->alloc, l->win);
    l->ring = NULL;
    l->runs = NULL;
    l->confs = NULL;
    l->win = NULL;
    l->cap = 0;
    l->runs_cap = l->confs_cap = l->win_cap = 0;
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

/* Make room for one more item in an array of @size-byte items. */
static int reserve(const struct aegis_allocator *a, void **items, uint32_t count, uint32_t *cap,
                   size_t size)
{
    uint32_t grown;
    void *p;

    if (count < *cap) {
        return 0;
    }
    grown = *cap == 0 ? 8 : *cap * 2;
    if (grown < *cap) {
        return AEGIS_ENOMEM;
    }
    p = aegis__realloc(a, *items, (size_t)grown * size);
    if (p == NULL) {
        return AEGIS_ENOMEM;
    }
    *items = p;
    *cap = grown;
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
    l->cache_bytes += record_bytes(e);
    AEGIS_ASSERT(aegis__log_last_index(l) == e->index);
    return 0;
}

/* Move the oldest cached entry to the disk region. Returns 0 or AEGIS_ENOMEM (nothing
 * changed: the entry stays cached). */
static int evict_one(struct aegis_log *l)
{
    struct aegis_entry *e = &l->ring[l->head];
    int rv;

    AEGIS_ASSERT(l->count > 0);
    if (l->runs_count == 0 || l->runs[l->runs_count - 1].term != e->term) {
        rv = reserve(l->alloc, (void **)&l->runs, l->runs_count, &l->runs_cap, sizeof(*l->runs));
        if (rv != 0) {
            return rv;
        }
    }
    if (e->type == AEGIS_ENTRY_CONFIG_CHANGE) {
        rv = reserve(l->alloc, (void **)&l->confs, l->confs_count, &l->confs_cap,
                     sizeof(*l->confs));
        if (rv != 0) {
            return rv;
        }
        l->confs[l->confs_count] = *e;
        aegis__entry_ref(&l->confs[l->confs_count++]);
    }
    if (l->runs_count == 0 || l->runs[l->runs_count - 1].term != e->term) {
        l->runs[l->runs_count++] = (struct aegis_log_run){.first = e->index, .term = e->term};
    }
    l->evicted_bytes += record_bytes(e);
    drop_head(l, 1);
    return 0;
}

uint64_t aegis__log_evict(struct aegis_log *l, aegis_index upto)
{
    uint64_t n = 0;

    if (upto > l->commit) {
        upto = l->commit; /* Never evict what a truncation could still remove. */
    }
    while (l->cache_bytes_max > 0 && l->cache_bytes > l->cache_bytes_max && l->count > 0 &&
           l->ring_base + 1 <= upto) {
        if (evict_one(l) != 0) {
            break; /* Out of memory: keep it cached, try again at the next call. */
        }
        n++;
    }
    return n;
}

/* Term of @index in the disk region (offset < index <= ring_base), from the runs. */
static aegis_term disk_term(const struct aegis_log *l, aegis_index index)
{
    uint32_t lo = 0, hi = l->runs_count;

    AEGIS_ASSERT(index > l->offset && index <= l->ring_base);
    AEGIS_ASSERT(l->runs_count > 0 && l->runs[0].first <= index);
    /* The last run whose first is <= index. */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;

        if (l->runs[mid].first <= index) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return l->runs[lo].term;
}

static const struct aegis_entry *window_get(const struct aegis_log *l, aegis_index index)
{
    if (l->win_count == 0 || index < l->win_first || index - l->win_first >= l->win_count) {
        return NULL;
    }
    return &l->win[index - l->win_first];
}

static const struct aegis_entry *conf_get(const struct aegis_log *l, aegis_index index)
{
    for (uint32_t i = l->confs_count; i > 0; i--) {
        if (l->confs[i - 1].index == index) {
            return &l->confs[i - 1];
        }
        if (l->confs[i - 1].index < index) {
            break;
        }
    }
    return NULL;
}

const struct aegis_entry *aegis__log_get(const struct aegis_log *l, aegis_index index)
{
    const struct aegis_entry *e;

    if (index <= l->offset || index > aegis__log_last_index(l)) {
        return NULL;
    }
    if (index > l->ring_base) {
        return &l->ring[slot_of(l, index)];
    }
    e = window_get(l, index);
    return e != NULL ? e : conf_get(l, index);
}

bool aegis__log_on_disk(const struct aegis_log *l, aegis_index index)
{
    return index > l->offset && index <= l->ring_base && window_get(l, index) == NULL;
}

bool aegis__log_in_window(const struct aegis_log *l, aegis_index index)
{
    return index > l->offset && window_get(l, index) != NULL;
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
        const struct aegis_entry *e =
            i > l->ring_base ? &l->ring[slot_of(l, i)] : window_get(l, i);
        uint64_t len;

        if (e == NULL) {
            break; /* On disk only. */
        }
        len = aegis__entry_len(e);
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
    if (index == l->offset) {
        return l->offset_term;
    }
    if (index < l->offset || index > aegis__log_last_index(l)) {
        return 0;
    }
    if (index <= l->ring_base) {
        return disk_term(l, index);
    }
    return l->ring[slot_of(l, index)].term;
}

aegis_index aegis__log_first_index(const struct aegis_log *l)
{
    return l->offset + 1;
}

aegis_index aegis__log_last_index(const struct aegis_log *l)
{
    return l->ring_base + l->count;
}

aegis_term aegis__log_first_term(const struct aegis_log *l)
{
    if (l->runs_count > 0) {
        return l->runs[0].term;
    }
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
    AEGIS_ASSERT(index >= l->ring_base); /* Evicted entries are committed. */
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
    disk_drop_upto(l, index);
    if (index > l->ring_base) {
        drop_head(l, (size_t)(index - l->ring_base));
    }
    l->offset = index;
    l->offset_term = term;
    AEGIS_ASSERT(l->ring_base >= l->offset);
    return 0;
}

void aegis__log_reset(struct aegis_log *l, aegis_index index, aegis_term term)
{
    drop_tail(l, l->count);
    disk_drop_upto(l, UINT64_MAX - 1);
    window_clear(l);
    l->head = 0;
    l->offset = index;
    l->ring_base = index;
    l->offset_term = term;
    l->commit = index;
}

int aegis__log_window_set(struct aegis_log *l, const struct aegis_entry *entries, uint32_t n)
{
    uint32_t skip = 0;

    while (skip < n && entries[skip].index <= l->offset) {
        skip++;
    }
    for (uint32_t i = skip; i < n; i++) {
        const struct aegis_entry *e = &entries[i];

        if (e->index != entries[skip].index + (i - skip)) {
            return AEGIS_ECORRUPT;
        }
        if (e->index > l->ring_base) {
            n = i; /* Cached already: the window needs only the disk region. */
            break;
        }
        if (disk_term(l, e->index) != e->term) {
            return AEGIS_ECORRUPT;
        }
    }
    window_clear(l);
    if (n - skip > l->win_cap) {
        void *p = aegis__realloc(l->alloc, l->win, (size_t)(n - skip) * sizeof(*l->win));

        if (p == NULL) {
            return AEGIS_ENOMEM;
        }
        l->win = p;
        l->win_cap = n - skip;
    }
    for (uint32_t i = skip; i < n; i++) {
        l->win[i - skip] = entries[i];
        aegis__entry_ref(&l->win[i - skip]);
    }
    l->win_count = n - skip;
    l->win_first = n > skip ? entries[skip].index : 0;
    return 0;
}

const struct aegis_entry *aegis__log_last_conf(const struct aegis_log *l, aegis_index index)
{
    aegis_index last = aegis__log_last_index(l);

    for (aegis_index i = index < last ? index : last; i > l->ring_base; i--) {
        const struct aegis_entry *e = &l->ring[slot_of(l, i)];

        if (e->type == AEGIS_ENTRY_CONFIG_CHANGE) {
            return e;
        }
    }
    for (uint32_t k = l->confs_count; k > 0; k--) {
        if (l->confs[k - 1].index <= index) {
            return &l->confs[k - 1];
        }
    }
    return NULL;
}

/* First index of the run of @term that contains @index, scanning back no further than the
 * entry after the commit index (committed entries never conflict) or the compaction
 * point. Bounded by the length of one term's run in the cache (evicted entries are
 * committed, so the scan never reaches them). */
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

/* The disk region's part of aegis__log_last_of_term: the last index at or below @i (in
 * the disk region) whose term is @term, from the runs. */
static aegis_index disk_last_of_term(const struct aegis_log *l, aegis_term term, aegis_index i)
{
    for (uint32_t k = l->runs_count; k > 0; k--) {
        const struct aegis_log_run *run = &l->runs[k - 1];

        if (run->first > i) {
            continue;
        }
        if (run->term == term) {
            return i; /* i is within this run (the runs after it start above i). */
        }
        if (run->term < term) {
            return 0;
        }
        i = run->first - 1;
    }
    return i == l->offset && l->offset_term == term ? i : 0;
}

aegis_index aegis__log_last_of_term(const struct aegis_log *l, aegis_term term,
                                    aegis_index max_index)
{
    aegis_index i = max_index < aegis__log_last_index(l) ? max_index : aegis__log_last_index(l);

    /* Terms never decrease along the log, so stop at the first term below @term. */
    while (i > l->ring_base) {
        aegis_term t = aegis__log_term_at(l, i);

        if (t == term) {
            return i;
        }
        if (t < term) {
            return 0;
        }
        i--;
    }
    if (i > l->offset) {
        return disk_last_of_term(l, term, i);
    }
    if (i == l->offset && i > 0 && l->offset_term == term) {
        return i;
    }
    return 0;
}
