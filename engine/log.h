/* SPDX-License-Identifier: MIT */
/* ReplicatedLog: the Raft log of one node, held partly in memory and partly on disk.
 *
 * Regions. The log holds indexes offset+1 .. last. "offset" is the compaction point: the
 * last index a snapshot covers that the log no longer answers for (0 for a log never
 * compacted); its term is kept in offset_term so that term_at(offset) still answers,
 * which AppendEntries consistency checks need. Above it:
 *   offset+1 .. ring_base     "on disk": evicted from memory, readable only from the
 *                             runtime's storage (aegis__log_range answers 0 there unless
 *                             the read-back window holds them);
 *   ring_base+1 .. last       the entry cache, in memory.
 * A log whose cache is unbounded (cache_bytes_max 0) never evicts: ring_base == offset.
 *
 * Cache. Entries live in a ring (a power-of-two array with a head slot) so that appending
 * at the tail, dropping at the head and reading any index are all O(1); index i sits in
 * slot (head + i - ring_base - 1) & (cap - 1). Its size is counted in record bytes (the
 * 40-byte record header plus the payload, what the entry takes on disk). The owner calls
 * aegis__log_evict(l, upto) with the highest index that may leave memory (the core: what
 * is durable, committed and already handed out to apply); entries above that are never
 * evicted, whatever the bound, so the cache can exceed its bound while writes are not yet
 * durable or not yet applied (bounded elsewhere: the core refuses proposals past
 * AEGIS_RAFT_UNPERSISTED_MAX entries not durable).
 *
 * On disk, the log keeps only what is needed without the payloads: the terms, as runs
 * (first index, term) -- terms never decrease along a log, so a run per term change, a
 * handful in practice -- and the ConfigChange entries (rare and small), whole, so that
 * term_at, match and the membership history still answer from memory. Entries read back
 * from storage go into the read-back window (one contiguous range, replaced by the next
 * read), from which aegis__log_range and aegis__log_get serve them like cached ones.
 *
 * Ownership. Each entry's payload is a refcounted buffer (engine/buf.h). The log takes one
 * reference on append (and on entries put into the window) and drops it when the entry
 * leaves through eviction, truncate, compact, reset or close. Pointers returned by
 * aegis__log_get() are valid until the next mutation.
 *
 * The commit index lives here too: it is monotonic, never past the last index, and the
 * log refuses to truncate at or below it (committed entries are never lost). Evicted
 * entries are committed, so a truncation never reaches the disk region. */
#ifndef AEGIS_LOG_H
#define AEGIS_LOG_H

#include "engine/entry.h"

/* A run of equal terms in the disk region: indexes from @first up to the next run's
 * first - 1 (the last run: up to ring_base) all have @term. */
struct aegis_log_run {
    aegis_index first;
    aegis_term term;
};

/* Record bytes of an entry: what the cache bound counts (segment.h's record size). */
#define AEGIS_LOG_RECORD_OVERHEAD 40u

struct aegis_log {
    const struct aegis_allocator *alloc;
    struct aegis_entry *ring; /* cap slots; NULL while cap == 0. */
    size_t cap;               /* Zero or a power of two. */
    size_t head;              /* Slot of index ring_base + 1. */
    size_t count;             /* Entries in the cache. */
    aegis_index offset;       /* Last compacted index (0: none). */
    aegis_term offset_term;   /* Term of the entry at offset (0 when offset is 0). */
    aegis_index ring_base;    /* Last index on disk only (offset when none evicted). */
    aegis_index commit;       /* Highest index known committed. */
    uint64_t cache_bytes;     /* Record bytes of the cached entries. */
    uint64_t cache_bytes_max; /* 0: unbounded, never evict. */
    uint64_t evicted_bytes;   /* Record bytes ever evicted (statistics). */
    struct aegis_log_run *runs; /* Terms of offset+1 .. ring_base; empty when none. */
    uint32_t runs_count;
    uint32_t runs_cap;
    struct aegis_entry *confs;  /* ConfigChange entries of the disk region, in order. */
    uint32_t confs_count;
    uint32_t confs_cap;
    struct aegis_entry *win;    /* Read-back window: win_count entries from win_first. */
    uint32_t win_count;
    uint32_t win_cap;
    aegis_index win_first;
};

/* Outcome of matching a leader's AppendEntries against this log (aegis__log_match). */
struct aegis_log_match {
    bool ok;                /* The entry at prev_index has prev_term (or is compacted). */
    aegis_index first_new;  /* ok: index of the first entry of the request that is not
                               already in the log (a conflict, or past the last index);
                               0 when every entry is already present. */
    aegis_index hint_index; /* !ok: first index of hint_term, or last index + 1 when the
                               log is too short to hold prev_index. */
    aegis_term hint_term;   /* !ok: the term found at prev_index, 0 when too short. */
};

/* Initialise an empty log on caller storage. @a may be NULL (default heap). */
void aegis__log_init(struct aegis_log *l, const struct aegis_allocator *a);

/* Drop every entry's reference and free the ring. */
void aegis__log_close(struct aegis_log *l);

/* Append a copy of @e, taking one reference on its payload. @e->index must be
 * last_index + 1 and @e->term at least the last term. Returns 0, AEGIS_EINVAL (index or
 * term out of order; nothing changed) or AEGIS_ENOMEM (nothing changed). */
int aegis__log_append(struct aegis_log *l, const struct aegis_entry *e);

/* The entry at @index, or NULL when it is compacted, on disk (and not in the read-back
 * window, nor a ConfigChange) or past the end. O(1) in the cache. The entry is borrowed:
 * valid until the log next changes. */
const struct aegis_entry *aegis__log_get(const struct aegis_log *l, aegis_index index);

/* Copy up to @count_max entries starting at @from into @out, stopping before the payload
 * total would pass @bytes_max (at least one entry is copied when @from is held). Each copy
 * carries a new reference the caller must drop (aegis__entry_unref). Entries come from the
 * read-back window and the cache; the range stops at the first index held in neither.
 * Returns the number copied: 0 when @from is compacted, on disk only, or past the end. */
uint32_t aegis__log_range(const struct aegis_log *l, aegis_index from, uint32_t count_max,
                          uint64_t bytes_max, struct aegis_entry *out);

/* Term of the entry at @index (cached or on disk): the offset's term at the compaction
 * point, 0 for index 0, for a compacted index below the offset, or past the end. */
aegis_term aegis__log_term_at(const struct aegis_log *l, aegis_index index);

aegis_index aegis__log_first_index(const struct aegis_log *l); /* offset + 1. */
aegis_index aegis__log_last_index(const struct aegis_log *l);  /* offset when empty. */
aegis_term aegis__log_first_term(const struct aegis_log *l);   /* 0 when empty. */
aegis_term aegis__log_last_term(const struct aegis_log *l);    /* offset_term when empty. */

/* Raise the commit index to @index. Lower or equal values are a no-op (monotonic).
 * Returns 0 or AEGIS_ERANGE when @index is past the last index (nothing changed). */
int aegis__log_commit(struct aegis_log *l, aegis_index index);

/* Remove every entry after @index, dropping their references. Returns 0, AEGIS_EPERM when
 * that would remove a committed entry (@index < commit), or AEGIS_ECOMPACTED when @index is
 * below the compaction point. Truncating at or past the last index is a no-op. */
int aegis__log_truncate(struct aegis_log *l, aegis_index index);

/* Drop every entry up to and including @index (a snapshot covers them), keeping @index's
 * term as the new offset term; on disk or cached alike. Returns 0 (also when @index is
 * already compacted), AEGIS_EPERM when @index is past the commit index. */
int aegis__log_compact(struct aegis_log *l, aegis_index index);

/* Drop every entry and restart the log after a snapshot ending at (@index, @term); the
 * commit index becomes @index. Used when a follower installs a leader's snapshot. */
void aegis__log_reset(struct aegis_log *l, aegis_index index, aegis_term term);

/* Match a leader's AppendEntries (@prev_index, @prev_term, @entries[@n]) against the log;
 * see struct aegis_log_match. Entries at or below the compaction point count as matching:
 * they are committed, and committed entries agree everywhere. Pure: nothing changes. */
void aegis__log_match(const struct aegis_log *l, aegis_index prev_index, aegis_term prev_term,
                      const struct aegis_entry *entries, uint32_t n,
                      struct aegis_log_match *out);

/* The leader's side of the conflict hint: the last index at or below @max_index whose
 * term is @term, or 0 when the log holds no entry of that term there. */
aegis_index aegis__log_last_of_term(const struct aegis_log *l, aegis_term term,
                                    aegis_index max_index);

/* Cache. Set the bound in record bytes (0: unbounded); it applies at the next evict. */
void aegis__log_set_cache_max(struct aegis_log *l, uint64_t bytes);

/* Evict cached entries from the oldest while the cache is above its bound, none above
 * @upto (the caller's limit: durable, committed and handed out to apply). Evicted entries
 * are on disk from then on. Returns the number evicted. */
uint64_t aegis__log_evict(struct aegis_log *l, aegis_index upto);

/* True when @index is on disk only: above the compaction point, below the cache and not
 * in the read-back window. */
bool aegis__log_on_disk(const struct aegis_log *l, aegis_index index);

/* Put @n entries read back from storage, starting at @entries[0].index, into the window
 * (replacing what it held; a reference is taken on each). They must be consecutive, each
 * with the term the log knows for its index; those at or below the compaction point or
 * past the disk region (cached already) are left out. Returns 0, AEGIS_ECORRUPT (an entry
 * does not match the log: nothing changed) or AEGIS_ENOMEM. */
int aegis__log_window_set(struct aegis_log *l, const struct aegis_entry *entries, uint32_t n);

/* True when @index is served from the read-back window (for counting reads from disk). */
bool aegis__log_in_window(const struct aegis_log *l, aegis_index index);

/* The latest ConfigChange entry at or below @index still in the log (cached or on disk),
 * or NULL. Bounded by the cached entries plus the ConfigChanges on disk. */
const struct aegis_entry *aegis__log_last_conf(const struct aegis_log *l, aegis_index index);

#endif /* AEGIS_LOG_H */
