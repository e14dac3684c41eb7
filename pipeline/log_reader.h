/* SPDX-License-Identifier: MIT */
/* The log reader (aegis-logread): reads ranges of evicted log entries back from the
 * segment files for the raft thread, so that the raft thread never touches a file.
 *
 * The Raft core keeps a bounded cache of entries (engine/log.h); when the leader needs
 * older ones for a lagging follower it asks for them in its ready (rd.fetch). The raft
 * thread hands that request to this thread (aegis__log_reader_submit), which reads the
 * range with the segment read path (segment.h: pread in 1 MiB chunks, every record's CRCs,
 * index sequence and terms checked) and pushes the result back through a ring whose
 * consumer waker is the raft thread's; the raft thread gives it to the core
 * (aegis__log_reader_pump, once per loop pass). One request is in flight at a time (the
 * core asks for one range at a time), so the rings hold a few slots.
 *
 * Errors are results, never crashes: a corrupt record is logged once per request with
 * the file, byte offset and reason, and the core is told (it falls back to sending a
 * snapshot to the follower that needed the range); a segment that retention deleted
 * reads as AEGIS_ECOMPACTED.
 *
 * The same pump tells the core what retention dropped: the log thread publishes the
 * first index its segments still hold (log_writer.h, aegis__log_writer_retained), and
 * the core compacts up to there (aegis__raft_compact).
 *
 * Threads: create/start/stop/close from the controlling thread; submit and pump from
 * the raft thread only. */
#ifndef AEGIS_PIPELINE_LOG_READER_H
#define AEGIS_PIPELINE_LOG_READER_H

#include "engine/raft.h"
#include "pipeline/ring.h"

struct aegis_log_reader; /* Opaque. */

/* Defaults of --log-cache-bytes and --log-retention-bytes (docs/operations.md says why). */
#define AEGIS_LOG_CACHE_BYTES_DEFAULT ((uint64_t)64 << 20)
#define AEGIS_LOG_RETENTION_BYTES_DEFAULT ((uint64_t)2 << 30)

/* Create a reader of the segments in @dir (copied) whose results wake @raft_waker
 * (borrowed). Returns 0 or AEGIS_ENOMEM / a negative errno. */
int aegis__log_reader_create(struct aegis_log_reader **out, const char *dir,
                             struct aegis_waker *raft_waker, const struct aegis_allocator *a);
int aegis__log_reader_start(struct aegis_log_reader *lr);
void aegis__log_reader_stop(struct aegis_log_reader *lr);
void aegis__log_reader_close(struct aegis_log_reader *lr);

/* Raft thread: queue the read a ready asked for (rd->fetch, from != 0). */
void aegis__log_reader_submit(struct aegis_log_reader *lr, const struct aegis_log_fetch *f);

/* Raft thread: hand every finished read to @r (aegis__raft_fetched), and compact @r up to
 * @retained_first - 1 when the storage's retention moved it (0: unknown). */
void aegis__log_reader_pump(struct aegis_log_reader *lr, struct aegis_raft *r,
                            aegis_index retained_first);

/* Raft thread: true when no result waits (for the re-check before sleeping). */
bool aegis__log_reader_idle(struct aegis_log_reader *lr);

/* Statistics (any thread, relaxed): the reader's own, and the core's log figures as the
 * raft thread last published them (in aegis__log_reader_pump). */
struct aegis_log_reader_stats {
    uint64_t reads;           /* Requests answered with entries. */
    uint64_t entries;         /* Entries read back. */
    uint64_t bytes;           /* Payload bytes read back. */
    uint64_t errors;          /* Requests answered with an error. */
    uint64_t cache_bytes;     /* The core's entry cache, record bytes. */
    uint64_t cache_entries;
    uint64_t sent_from_cache; /* Entries the leader sent from its cache... */
    uint64_t sent_from_disk;  /* ...and from entries read back. */
};
void aegis__log_reader_stats(struct aegis_log_reader *lr, struct aegis_log_reader_stats *out);

#endif /* AEGIS_PIPELINE_LOG_READER_H */
