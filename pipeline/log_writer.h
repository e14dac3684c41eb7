/* SPDX-License-Identifier: MIT */
/* The log thread (aegis-log): durable storage of one node behind two rings.
 *
 * The raft thread pushes requests (struct aegis_log_req) into the writer's request ring:
 * entries to append (each carrying one payload reference that moves to the log thread),
 * suffix truncations, hard states to persist, and "a snapshot up to here is durable"
 * compactions. The log thread drains everything queued, writes it as one batch -- the
 * records of all entries in one vectored write straight from the payload buffers (record
 * headers in a scratch area), plus the newest hard state in its slot, each followed by
 * one fdatasync, submitted together through io_uring (group commit) -- and only after
 * every fdatasync of the batch has returned pushes a report (struct aegis_log_report)
 * into the report ring: the durable (index, term) of the log's end and how many requests
 * are done. Requests are applied in ring order; a truncation or compaction first makes
 * the entries queued before it durable, then runs synchronously (rare operations).
 * An entry whose index is at or below the last one queued truncates the suffix from that
 * index first, as the raft core's ready contract asks (engine/raft.h).
 *
 * Errors: a failed batch (AEGIS_ENOSPC, AEGIS_EIO, a short write that cannot complete)
 * is reported with the file and offset; nothing of it is reported durable, the segment
 * is cut back to its durable end so no partial record stays on disk, and the writer is
 * failed from then on: every later batch is dropped and reported with the same error.
 * The log on disk stays intact; the runtime stops the node (or reopens the writer).
 *
 * Durability modes: AEGIS_DURABILITY_BATCH (default) as above; AEGIS_DURABILITY_NONE
 * touches no disk at all (open loads nothing) and reports each batch durable at once,
 * for measuring the network and the pipeline alone.
 *
 * Threads: open, start, stop and close from one controlling thread (the runtime);
 * push_sp from exactly one producer (the raft thread); pop_sc from exactly one consumer
 * (the raft thread). See docs/storage.md. */
#ifndef AEGIS_PIPELINE_LOG_WRITER_H
#define AEGIS_PIPELINE_LOG_WRITER_H

#include "engine/raft.h"
#include "pipeline/fileio.h"
#include "pipeline/ring.h"

struct aegis_snap_step; /* pipeline/snap_transfer.h */

struct aegis_metrics;

enum aegis_durability {
    AEGIS_DURABILITY_BATCH = 1, /* Group commit: fdatasync per batch. */
    AEGIS_DURABILITY_NONE = 2,  /* No disk; durable reported at once. */
};

enum aegis_log_sync {
    AEGIS_LOG_SYNC_FDATASYNC = 1, /* writev then a linked fdatasync. */
    AEGIS_LOG_SYNC_DSYNC = 2,     /* writev with RWF_DSYNC, no separate sync. */
};

enum aegis_log_op {
    AEGIS_LOG_OP_ENTRY = 1,      /* Append .entry (index last + 1, or lower: truncate). */
    AEGIS_LOG_OP_TRUNCATE = 2,   /* Delete entries >= .truncate_from. */
    AEGIS_LOG_OP_HARD_STATE = 3, /* Persist .hs with this batch. */
    AEGIS_LOG_OP_COMPACT = 4,    /* A snapshot at .compact_index is durable: remove the
                                    segments wholly at or below it. */
    AEGIS_LOG_OP_INSTALL = 5,    /* One step of receiving a snapshot from the leader
                                    (pipeline/snap_transfer.h): its .install.step (heap)
                                    moves with the request. Its COMMIT step makes the
                                    file the durable snapshot, then drops the whole log;
                                    the next entry is the snapshot's index + 1. */
};

/* One request; copied into the ring by value (48 bytes). */
struct aegis_log_req {
    uint8_t op; /* enum aegis_log_op. */
    union {
        struct aegis_entry entry; /* ENTRY: the reference on entry.buf moves with a
                                     successful push; the log thread drops it. */
        aegis_index truncate_from;
        struct aegis_hard_state hs;
        aegis_index compact_index;
        struct {
            struct aegis_snap_step *step;
        } install;
    };
};

enum aegis_log_report_kind {
    AEGIS_LOG_REPORT_DURABLE = 1,
    AEGIS_LOG_REPORT_ERROR = 2,
    AEGIS_LOG_REPORT_SNAPSHOT = 3, /* The VERIFY step's verdict on a received snapshot
                                      (index, term): err 0 or why it was refused. */
};

#define AEGIS_LOG_REPORT_FILE_MAX 112

/* One report; copied out of the ring by value. */
struct aegis_log_report {
    uint8_t kind;        /* enum aegis_log_report_kind. */
    int err;             /* ERROR: negative AEGIS_E* code. */
    uint64_t reqs_done;  /* Requests consumed since start, cumulative. DURABLE: every one
                          * of them is durable (entries written and synced, hard state
                          * synced, truncations and compactions done). ERROR: the failed
                          * ones are included, and were dropped. */
    aegis_index index;   /* DURABLE: last index of the durable log (may go down after a
                          * truncation); 0 with an empty log. */
    aegis_term term;     /* Its term (0 when unknown: empty log). */
    uint64_t offset;     /* ERROR: offset in @file of the failed operation. */
    char file[AEGIS_LOG_REPORT_FILE_MAX]; /* ERROR: path, NUL-terminated (cut if long). */
};

struct aegis_log_config {
    const char *dir;                  /* Data directory; copied. Created if absent. */
    enum aegis_durability durability; /* 0: BATCH. */
    enum aegis_log_sync sync;         /* 0: AEGIS_LOG_SYNC_DEFAULT. */
    uint64_t segment_bytes;           /* 0: 64 MiB. */
    uint32_t req_slots;               /* Request ring, power of two; 0: 65536. */
    uint32_t report_slots;            /* Report ring, power of two; 0: 1024. */
    uint32_t batch_entries_max;       /* Entries per batch; 0: 4096. */
    uint64_t batch_bytes_max;         /* Record bytes per batch; 0: 16 MiB. */
    struct aegis_waker *report_waker; /* The report consumer's waker (raft thread); borrowed;
                                         NULL: the consumer polls. */
    struct aegis_fileio *io;          /* NULL: real files and io_uring. Borrowed. */
    const struct aegis_allocator *alloc;
    struct aegis_metrics *metrics;    /* NULL: none. Borrowed; the log thread records its
                                         batches and group-commit times (metrics.h). */
    uint64_t retention_bytes;         /* Segments kept behind the latest snapshot (COMPACT):
                                         0 keeps none (aegis__seglog_retain). */
    uint32_t bugs;                    /* AEGIS_LOG_BUG_* bits; 0 in production (ignored by
                                         libaegis, see below). */
};

/* Deliberately broken variants, to prove that the power-loss tests can fail: compiled only
 * into aegis_bugs, the test-only library (CMake option AEGIS_SIM_BUGS). */
enum aegis_log_bug {
    AEGIS_LOG_BUG_NO_LOG_SYNC = 1u << 0,       /* The log chain has no fdatasync. */
    AEGIS_LOG_BUG_NO_HS_SYNC = 1u << 1,        /* The hard state write has none. */
    AEGIS_LOG_BUG_UNLINKED_LOG_SYNC = 1u << 2, /* The log's fdatasync is not linked after
                                                  its writes (may run before them). */
    AEGIS_LOG_BUG_UNLINKED_HS_SYNC = 1u << 3,  /* Same for the hard state's. */
    AEGIS_LOG_BUG_REPORT_BEFORE_SYNC = 1u << 4, /* A batch is reported durable before its
                                                   round is written. */
};

/* The sync mode measured fastest on the development machine (docs/storage.md). */
#define AEGIS_LOG_SYNC_DEFAULT AEGIS_LOG_SYNC_FDATASYNC

/* What open found on disk, for aegis__raft_create's restore. */
struct aegis_log_state {
    struct aegis_hard_state hs;
    bool hs_fallback;                /* The hard state came from the older slot because the
                                        other was unreadable (hardstate.h): the node must
                                        not vote until it hears from a current leader. */
    bool has_snapshot;
    struct aegis_snapshot_meta snapshot_meta;
    struct aegis_buf *snapshot_data; /* One reference, owned by the state; may be NULL. */
    struct aegis_entry *entries;     /* Index > snapshot index, in order; each holds one
                                        reference on its buf, owned by the state. */
    uint32_t entries_count;
    aegis_index last_index;          /* Of the log (snapshot index when no entries). */
    aegis_term last_term;
};

struct aegis_log_writer; /* Opaque. */

/* Open the storage in c->dir: load the hard state and the newest valid snapshot, recover
 * the segments (cutting a torn tail) and load every entry after the snapshot into
 * @state_out (the synchronous read path used at startup). Does not start the thread.
 * Returns 0, AEGIS_ECORRUPT (corruption in the log, hard state or a gap: refuse to
 * start), AEGIS_ENOMEM, AEGIS_EIO/ENOSPC/... (I/O), AEGIS_ENOSYS (io_uring unavailable).
 * On success release @state_out with aegis__log_state_release() when restored. */
int aegis__log_writer_open(struct aegis_log_writer **out, const struct aegis_log_config *c,
                           struct aegis_log_state *state_out);

/* Drop the references @s holds and free its arrays. */
void aegis__log_state_release(struct aegis_log_state *s, const struct aegis_allocator *a);

/* Start the aegis-log thread. Returns 0 or a negative errno. */
int aegis__log_writer_start(struct aegis_log_writer *w);

/* Producer (one thread): queue @req; wakes the log thread if it sleeps. False when the
 * ring is full: nothing changed hands (backpressure: retry later). */
bool aegis__log_writer_push_sp(struct aegis_log_writer *w, const struct aegis_log_req *req);

/* Producer: queue without waking; call aegis__log_writer_flush() after a run of pushes. */
bool aegis__log_writer_push_sp_defer(struct aegis_log_writer *w,
                                     const struct aegis_log_req *req);
void aegis__log_writer_flush(struct aegis_log_writer *w);

/* Consumer (one thread): take the next report; false when none. */
bool aegis__log_writer_pop_sc(struct aegis_log_writer *w, struct aegis_log_report *out);

/* True when the report ring is empty (for the consumer's re-check after prepare). */
bool aegis__log_writer_reports_empty(struct aegis_log_writer *w);

/* Finish every request pushed before this call, report it, and join the thread. */
void aegis__log_writer_stop(struct aegis_log_writer *w);

/* Free the writer (stopped or never started); drops references of unconsumed requests. */
void aegis__log_writer_close(struct aegis_log_writer *w);

/* Retention (any thread, relaxed): the first index the segments hold (0 before the first
 * COMPACT) and the bytes of the segments kept behind the snapshot in @bytes_out. */
aegis_index aegis__log_writer_retained(struct aegis_log_writer *w, uint64_t *bytes_out);

/* Statistics (any thread, relaxed): batches written and fdatasyncs issued. */
uint64_t aegis__log_writer_batches(struct aegis_log_writer *w);
uint64_t aegis__log_writer_syncs(struct aegis_log_writer *w);

#endif /* AEGIS_PIPELINE_LOG_WRITER_H */
