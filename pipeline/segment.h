/* SPDX-License-Identifier: MIT */
/* The segmented log on disk: record and segment formats, the recovery scan, and the
 * synchronous operations on the set of segment files (open with recovery, append, roll,
 * suffix truncation, removal below a snapshot). The byte-by-byte format is specified in
 * segment.c and mirrored in docs/storage.md.
 *
 * The read path (struct aegis_segment_reader) reads ranges of durable entries back from
 * the segment files on another thread (the log reader, pipeline/log_reader.c) while the
 * log thread writes: it only opens files by name and preads them, and a segment deleted
 * under it reads as compacted.
 *
 * struct aegis_seglog is owned by one thread at a time: the opener, then the log thread
 * (pipeline/log_writer.c), which calls the synchronous operations here for everything
 * but the hot append, which it submits through io_uring around aegis__seglog_commit(). */
#ifndef AEGIS_PIPELINE_SEGMENT_H
#define AEGIS_PIPELINE_SEGMENT_H

#include "engine/entry.h"
#include "pipeline/fileio.h"

#define AEGIS_SEGMENT_HEADER_BYTES 32u
#define AEGIS_RECORD_HEADER_BYTES 40u
#define AEGIS_SEGMENT_BYTES_DEFAULT ((uint64_t)64 << 20)
#define AEGIS_SEGMENT_BYTES_MIN ((uint64_t)4096)
#define AEGIS_SEGMENT_VERSION 1u
/* A record header must not straddle more than... nothing: records may have any size up
 * to AEGIS_BUF_LEN_MAX; a record larger than a segment gets a segment of its own. */

/* One record as decoded by the scan; @payload points into the scanned bytes. */
struct aegis_record {
    aegis_index index;
    aegis_term term;
    uint64_t timestamp;
    uint8_t type;
    uint32_t len;
    const uint8_t *payload;
    uint64_t offset; /* Of the record header in the segment. */
};

/* Called for each valid record, in order. Return 0 to go on, or a negative code to stop
 * the scan with that code. */
typedef int (*aegis_record_cb)(void *data, const struct aegis_record *rec);

struct aegis_segment_scan {
    aegis_index first_index; /* From the segment header. */
    uint64_t records;        /* Valid records. */
    aegis_index last_index;  /* Of the last valid record; first_index - 1 when none. */
    aegis_term last_term;    /* Of the last valid record; @prev_term when none. */
    uint64_t end;            /* Offset just past the last valid record. */
    bool zero_header;        /* The segment header is all zero (never written). */
    bool torn;               /* Stopped at a torn record: the tail from @end is garbage. */
    /* On AEGIS_ECORRUPT: where and why, for the operator. */
    uint64_t bad_offset;     /* Byte offset of the bad header or record. */
    aegis_index bad_index;   /* The index expected there (0 for the segment header). */
    const char *bad_why;     /* Static text. */
};

/* Encode the segment header for a segment starting at @first_index. */
void aegis__segment_header_encode(aegis_index first_index, uint8_t out[32]);

/* Encode the record header of @e into @out: lengths and the payload's CRC are computed
 * from e->buf. */
void aegis__record_header_encode(const struct aegis_entry *e, uint8_t out[40]);

/* Bytes the record of @e takes on disk. */
static inline uint64_t aegis__record_bytes(const struct aegis_entry *e)
{
    return AEGIS_RECORD_HEADER_BYTES + aegis__entry_len(e);
}

/* Scan the @len bytes of one segment file at @buf. @expect_first (0: take the header's)
 * is the first index the name promises; @prev_term the term of the record before this
 * segment (0 for none). Calls @cb for each valid record. Returns 0 with @out filled
 * (out->torn says the tail from out->end is torn and may be cut), AEGIS_ECORRUPT for
 * anything but a torn tail (checksum mismatch on written bytes, an index gap, a term
 * going down, a bad header), or @cb's error. Never asserts on the bytes. */
int aegis__segment_scan(const uint8_t *buf, size_t len, aegis_index expect_first,
                        aegis_term prev_term, struct aegis_segment_scan *out,
                        aegis_record_cb cb, void *data);

/* Segment names: "<first index as 20 decimal digits>.seg". */
#define AEGIS_SEGMENT_NAME_LEN 24
void aegis__segment_name(aegis_index first_index, char out[AEGIS_SEGMENT_NAME_LEN + 1]);
bool aegis__segment_parse_name(const char *name, aegis_index *first_out);

/* The set of segment files of one log. */
struct aegis_segment_file {
    aegis_index first_index;
    aegis_index last_index; /* first_index - 1 when empty. */
    aegis_term last_term;
};

struct aegis_seglog_config {
    const char *dir;          /* Copied. */
    uint64_t segment_bytes;   /* 0: AEGIS_SEGMENT_BYTES_DEFAULT. */
    struct aegis_fileio *io;  /* NULL: real. Borrowed for the log's life. */
    const struct aegis_allocator *alloc;
};

struct aegis_seglog {
    char *dir;
    uint64_t segment_bytes;
    struct aegis_fileio *io;
    const struct aegis_allocator *alloc;
    struct aegis_segment_file *segs; /* Sorted; the last one is active when count > 0. */
    uint32_t segs_count;
    uint32_t segs_cap;
    int fd;                   /* Active segment, -1 when none. */
    uint64_t end;             /* Active: offset of the next record (durable up to here). */
    uint64_t alloc_bytes;     /* Active: bytes preallocated. */
    int spare_fd;             /* Preallocated next segment, -1 when none. */
    aegis_index last_index;   /* 0 with no entries; otherwise of the last record. */
    aegis_term last_term;
    aegis_index base_index;   /* Index before the first record a new segment would hold
                                 when the log is empty (snapshot index). */
};

/* Open the log in @c->dir (created if absent) and recover it: scan every segment, cut a
 * torn tail, delete segments wholly at or below @snapshot_index and trailing empty ones.
 * @cb (may be NULL) gets every record with index > @snapshot_index, in order. Returns 0,
 * AEGIS_ECORRUPT (refuse to start), AEGIS_ENOMEM, or an I/O error. */
int aegis__seglog_open(struct aegis_seglog *log, const struct aegis_seglog_config *c,
                       aegis_index snapshot_index, aegis_record_cb cb, void *data);
void aegis__seglog_close(struct aegis_seglog *log);

/* True when a record of @bytes fits in the active segment (false also when there is no
 * active segment: then aegis__seglog_roll first). */
bool aegis__seglog_fits(const struct aegis_seglog *log, uint64_t bytes);

/* Make a new active segment for records from @first_index on (last_index + 1, or any
 * index when the log holds no entries): named, header written and synced, directory
 * synced, from the spare file when there is one. The old active segment must be durable.
 * Returns 0 or an I/O error. */
int aegis__seglog_roll(struct aegis_seglog *log, aegis_index first_index);

/* Create the spare (preallocated) segment if missing. Returns 0 or an I/O error. */
int aegis__seglog_prepare_spare(struct aegis_seglog *log);

/* Account @count records of @bytes written at log->end and made durable, the last one
 * being (@last_index, @last_term). */
void aegis__seglog_commit(struct aegis_seglog *log, uint64_t bytes, uint64_t count,
                          aegis_index last_index, aegis_term last_term);

/* Write @count entries (indexes last_index + 1 on, or any start when empty) as records,
 * make them durable (fdatasync), and commit them: the synchronous path, through the file
 * layer. Rolls segments as needed. On error nothing is committed and the active segment
 * is cut back to its durable end (aegis__seglog_repair). @where_out (may be NULL) gets
 * the offset of the failed operation. */
int aegis__seglog_append(struct aegis_seglog *log, const struct aegis_entry *entries,
                         uint32_t count, uint64_t *where_out);

/* After a failed write: cut the active segment back to its durable end and sync, so that
 * no partial record stays on disk. Returns 0 or an I/O error. */
int aegis__seglog_repair(struct aegis_seglog *log);

/* Delete every entry with index >= @from, crash-safely (whole segments from the newest
 * down, then the cut segment truncated and synced, then the directory synced). A no-op
 * when @from > last_index. Returns 0 or an I/O error. */
int aegis__seglog_truncate(struct aegis_seglog *log, aegis_index from);

/* Delete segments whose entries are all <= @index (a durable snapshot covers them), from
 * the oldest up, then sync the directory. The active segment is kept. */
int aegis__seglog_compact(struct aegis_seglog *log, aegis_index index);

/* Remove every segment (newest first, then sync the directory): the log restarts empty
 * and its next record may have any index; @next_index is recorded as the expected one. */
int aegis__seglog_reset(struct aegis_seglog *log, aegis_index next_index);

/* Retention: delete the oldest segments wholly at or below @snapshot_index (never the
 * active one) while those behind the snapshot take more than @retain_bytes (counted as
 * segment_bytes per file: what a preallocated segment takes on disk), then sync the
 * directory. 0 deletes every segment behind the snapshot (aegis__seglog_compact). */
int aegis__seglog_retain(struct aegis_seglog *log, aegis_index snapshot_index,
                         uint64_t retain_bytes);

/* Bytes of the segments wholly behind the last snapshot given to retain/compact. */
uint64_t aegis__seglog_retained_bytes(const struct aegis_seglog *log);

/* Read path. One reader per thread; see the file comment. */
#define AEGIS_SEGMENT_READ_CHUNK ((size_t)1 << 20)

struct aegis_segment_reader {
    char dir[4096];
    const struct aegis_allocator *alloc;
    int fd;               /* The open segment, -1 when none. */
    aegis_index first;    /* Its first index. */
    aegis_index next;     /* Index of the record at off. */
    aegis_term last_term; /* Of the record before off (0 at the segment's start). */
    uint64_t off;         /* Cursor: offset of the next record. */
    uint8_t *buf;         /* Chunk: buf_len bytes of the file from buf_off. */
    size_t cap;
    size_t buf_len;
    uint64_t buf_off;
    /* After AEGIS_ECORRUPT: where and why. */
    char path[4200];
    uint64_t bad_offset;
    const char *why;
};

void aegis__segment_reader_init(struct aegis_segment_reader *rd, const char *dir,
                                const struct aegis_allocator *a);
void aegis__segment_reader_close(struct aegis_segment_reader *rd);

/* Read up to @count_max entries from @from on, crossing segment boundaries, stopping
 * before the payload total would pass @bytes_max (at least one entry), into @out (each
 * with a fresh payload buffer the caller owns); *@n_out gets the count. Every record is
 * checked (CRCs, type, index sequence, terms). Returns 0 (at least one entry),
 * AEGIS_ECOMPACTED (no segment holds @from), AEGIS_ECORRUPT (rd->path, rd->bad_offset and
 * rd->why say where and why), AEGIS_ENOMEM or an I/O error; on error *@n_out is 0. */
int aegis__segment_reader_read(struct aegis_segment_reader *rd, aegis_index from,
                               uint32_t count_max, uint64_t bytes_max, struct aegis_entry *out,
                               uint32_t *n_out);

/* Path of the active segment into @out (for error reports). */
void aegis__seglog_active_path(const struct aegis_seglog *log, char *out, size_t len);

#endif /* AEGIS_PIPELINE_SEGMENT_H */
