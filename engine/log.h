/* SPDX-License-Identifier: MIT */
/* ReplicatedLog: the in-memory Raft log of one node.
 *
 * Design. Entries live in a ring (a power-of-two array with a head slot) so that appending
 * at the tail, compacting at the head and reading any index are all O(1). Index arithmetic:
 * the log holds indexes offset+1 .. offset+count, and index i sits in slot
 * (head + i - offset - 1) & (cap - 1). "offset" is the last compacted index (0 for a log
 * that was never compacted); its term is kept in offset_term so that term_at(offset) still
 * answers after a compaction or a snapshot, which AppendEntries consistency checks need.
 *
 * Ownership. Each entry's payload is a refcounted buffer (engine/buf.h). The log takes one
 * reference on append and drops it when the entry leaves through truncate, compact, reset
 * or close. Pointers returned by aegis__log_get() are valid until the next mutation.
 *
 * The commit index lives here too: it is monotonic, never past the last index, and the
 * log refuses to truncate at or below it (committed entries are never lost). */
#ifndef AEGIS_LOG_H
#define AEGIS_LOG_H

#include "engine/entry.h"

struct aegis_log {
    const struct aegis_allocator *alloc;
    struct aegis_entry *ring; /* cap slots; NULL while cap == 0. */
    size_t cap;               /* Zero or a power of two. */
    size_t head;              /* Slot of index offset + 1. */
    size_t count;             /* Entries held. */
    aegis_index offset;       /* Last compacted index (0: none). */
    aegis_term offset_term;   /* Term of the entry at offset (0 when offset is 0). */
    aegis_index commit;       /* Highest index known committed. */
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

/* The entry at @index, or NULL when it is compacted or past the end. O(1). The entry is
 * borrowed: valid until the log next changes. */
const struct aegis_entry *aegis__log_get(const struct aegis_log *l, aegis_index index);

/* Copy up to @count_max entries starting at @from into @out, stopping before the payload
 * total would pass @bytes_max (at least one entry is copied when @from is held). Each copy
 * carries a new reference the caller must drop (aegis__entry_unref). Returns the number
 * copied: 0 when @from is compacted or past the end. */
uint32_t aegis__log_range(const struct aegis_log *l, aegis_index from, uint32_t count_max,
                          uint64_t bytes_max, struct aegis_entry *out);

/* Term of the entry at @index: the offset's term at the compaction point, 0 for index 0,
 * for a compacted index below the offset, or past the end. */
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
 * term as the new offset term. Returns 0 (also when @index is already compacted),
 * AEGIS_EPERM when @index is past the commit index. */
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

#endif /* AEGIS_LOG_H */
