/* SPDX-License-Identifier: MIT */
/* The segmented log on disk. Formats, recovery and the synchronous file operations.
 *
 * Files. A log directory holds segment files named "<first index, 20 digits>.seg" and
 * at most one spare, "spare.seg.tmp", preallocated ahead of need. Each segment is
 * preallocated to segment_bytes with fallocate (so its size is segment_bytes and the
 * unwritten part reads as zeros) and holds records with consecutive indexes; segment
 * k + 1 starts at the index after segment k's last. A record larger than a segment gets
 * a segment of its own that grows past segment_bytes.
 *
 * Segment header, 32 bytes, integers little-endian:
 *    0  8  magic "AEGISLOG"
 *    8  4  version, 1
 *   12  4  header bytes, 32
 *   16  8  first index (also in the file name)
 *   24  4  reserved, zero
 *   28  4  CRC32C of bytes 0..27
 * Record, 40 bytes of header then the payload, integers little-endian:
 *    0  4  payload length in bytes (<= AEGIS_BUF_LEN_MAX)
 *    4  4  CRC32C of the payload (0 for an empty payload)
 *    8  8  term (>= 1)
 *   16  8  index
 *   24  8  timestamp (opaque; set by the proposer)
 *   32  1  type (enum aegis_entry_type: 1 command, 2 config change, 3 no-op)
 *   33  3  reserved, zero
 *   36  4  CRC32C of bytes 0..35
 *   40  n  payload
 * After the last record the segment reads as zeros (preallocated, never written); a
 * record header of 40 zero bytes ends the segment's data.
 *
 * Recovery (aegis__segment_scan per segment, aegis__seglog_open for the set). A record
 * is good when both CRCs match, its index is the previous one plus one (the header's
 * first index for the first), its term is no lower than the previous, and its type and
 * reserved bytes are valid. A bad record is a torn write, not corruption, when the bytes
 * that should hold it run past the end of the file, or when one of its pieces -- the
 * record cut at 512-byte boundaries of the file -- is all zeros: disks write sectors
 * whole, and a sector of the preallocated region that never reached the disk reads as
 * zeros (etcd's WAL uses the same rule). A torn record is accepted only in the last
 * segment that holds records, and the tail from it on is cut (the file truncated back
 * to it and preallocated again, so that no stale bytes can ever line up behind new
 * records). Anything else -- a checksum mismatch over written bytes, an index gap, a
 * term going down, a bad header, a torn record in an earlier segment, records in a
 * segment after a torn one -- is AEGIS_ECORRUPT and the node refuses to start, rather
 * than dropping acknowledged data. The rule's known blind spot: a record whose payload
 * legitimately holds a whole zero sector and is also corrupted elsewhere, in the last
 * segment, is taken for torn.
 *
 * Ordering rules that make the scan's assumptions true:
 *   - records of a segment reach the disk only after every earlier segment's records
 *     are durable (a write round never spans segments; rounds are sequential);
 *   - a segment is named (renamed from the spare, directory synced) only after its
 *     header is durable, and it gets records only after that;
 *   - suffix truncation removes whole segments newest first, then truncates the cut
 *     segment (ftruncate, so no old record survives past the cut), then syncs;
 *   - removal below a snapshot goes oldest first, so a crash leaves a contiguous log. */
#include "pipeline/segment.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <aegis/error.h>

#include "engine/assert.h"
#include "engine/crc32c.h"
#include "pipeline/logging.h"

#define SPARE_NAME "spare.seg.tmp"
#define SECTOR 512u

static const uint8_t segment_magic[8] = {'A', 'E', 'G', 'I', 'S', 'L', 'O', 'G'};

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;

    for (int i = 3; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

void aegis__segment_header_encode(aegis_index first_index, uint8_t out[32])
{
    AEGIS_ASSERT(first_index > 0);
    memset(out, 0, AEGIS_SEGMENT_HEADER_BYTES);
    memcpy(out, segment_magic, 8);
    put32(out + 8, AEGIS_SEGMENT_VERSION);
    put32(out + 12, AEGIS_SEGMENT_HEADER_BYTES);
    put64(out + 16, first_index);
    put32(out + 28, aegis__crc32c(0, out, 28));
}

void aegis__record_header_encode(const struct aegis_entry *e, uint8_t out[40])
{
    uint32_t len = aegis__entry_len(e);

    AEGIS_ASSERT(e->index > 0);
    AEGIS_ASSERT(e->term > 0);
    AEGIS_ASSERT(e->type >= AEGIS_ENTRY_COMMAND && e->type <= AEGIS_ENTRY_NOOP);
    put32(out, len);
    put32(out + 4, len > 0 ? aegis__crc32c(0, aegis__entry_data(e), len) : 0);
    put64(out + 8, e->term);
    put64(out + 16, e->index);
    put64(out + 24, e->timestamp);
    out[32] = e->type;
    out[33] = 0;
    out[34] = 0;
    out[35] = 0;
    put32(out + 36, aegis__crc32c(0, out, 36));
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0) {
            return false;
        }
    }
    return true;
}

/* True when some piece of [start, end) cut at 512-byte file boundaries is all zeros. */
static bool has_zero_sector_piece(const uint8_t *buf, uint64_t start, uint64_t end)
{
    uint64_t pos = start;

    while (pos < end) {
        uint64_t next = (pos / SECTOR + 1) * SECTOR;
        uint64_t stop = next < end ? next : end;

        if (all_zero(buf + pos, (size_t)(stop - pos))) {
            return true;
        }
        pos = stop;
    }
    return false;
}

static int scan_header(const uint8_t *buf, size_t len, aegis_index expect_first,
                       struct aegis_segment_scan *out)
{
    out->bad_offset = 0;
    out->bad_index = 0;
    if (len < AEGIS_SEGMENT_HEADER_BYTES || all_zero(buf, AEGIS_SEGMENT_HEADER_BYTES)) {
        /* Created but never given a header: only legitimate if nothing was written. */
        if (!all_zero(buf, len < AEGIS_SEGMENT_HEADER_BYTES ? len : AEGIS_SEGMENT_HEADER_BYTES)) {
            out->bad_why = "segment header cut short";
            return AEGIS_ECORRUPT;
        }
        out->zero_header = true;
        out->first_index = expect_first;
        return 0;
    }
    if (memcmp(buf, segment_magic, 8) != 0 || get32(buf + 28) != aegis__crc32c(0, buf, 28) ||
        get32(buf + 8) != AEGIS_SEGMENT_VERSION || get32(buf + 12) != AEGIS_SEGMENT_HEADER_BYTES ||
        get32(buf + 24) != 0) {
        out->bad_why = "bad segment header (magic, version, size or CRC)";
        return AEGIS_ECORRUPT;
    }
    out->first_index = get64(buf + 16);
    if (out->first_index == 0 || (expect_first != 0 && out->first_index != expect_first)) {
        out->bad_why = "segment header names another first index than its file name";
        return AEGIS_ECORRUPT;
    }
    return 0;
}

/* Check one record at @off. Returns 1 for a good record (filled in @rec), 0 for the end
 * of the data (zero header), 2 for a torn record, or AEGIS_ECORRUPT. */
static int scan_record(const uint8_t *buf, size_t len, uint64_t off, aegis_index expect,
                       aegis_term prev_term, struct aegis_record *rec, const char **why)
{
    const uint8_t *h = buf + off;
    uint64_t rest = len - off;
    uint32_t plen;

    if (rest < AEGIS_RECORD_HEADER_BYTES) {
        return all_zero(h, (size_t)rest) ? 0 : 2; /* A header cut by the end of file. */
    }
    if (all_zero(h, AEGIS_RECORD_HEADER_BYTES)) {
        return 0;
    }
    if (get32(h + 36) != aegis__crc32c(0, h, 36)) {
        *why = "record header CRC mismatch";
        return has_zero_sector_piece(buf, off, off + AEGIS_RECORD_HEADER_BYTES) ? 2
                                                                               : AEGIS_ECORRUPT;
    }
    plen = get32(h);
    rec->term = get64(h + 8);
    rec->index = get64(h + 16);
    rec->timestamp = get64(h + 24);
    rec->type = h[32];
    if (plen > AEGIS_BUF_LEN_MAX || rec->type < AEGIS_ENTRY_COMMAND ||
        rec->type > AEGIS_ENTRY_NOOP || h[33] != 0 || h[34] != 0 || h[35] != 0) {
        *why = "record header has a bad length, type or reserved byte";
        return AEGIS_ECORRUPT;
    }
    if (rec->index != expect || rec->term == 0 || rec->term < prev_term) {
        *why = rec->index != expect ? "record index out of sequence" : "record term goes down";
        return AEGIS_ECORRUPT;
    }
    if (rest - AEGIS_RECORD_HEADER_BYTES < plen) {
        return 2; /* The payload runs past the end of the file. */
    }
    if (get32(h + 4) != (plen > 0 ? aegis__crc32c(0, h + AEGIS_RECORD_HEADER_BYTES, plen) : 0)) {
        uint64_t start = off + AEGIS_RECORD_HEADER_BYTES;

        *why = "record payload CRC mismatch";
        return has_zero_sector_piece(buf, start, start + plen) ? 2 : AEGIS_ECORRUPT;
    }
    rec->len = plen;
    rec->payload = h + AEGIS_RECORD_HEADER_BYTES;
    rec->offset = off;
    return 1;
}

int aegis__segment_scan(const uint8_t *buf, size_t len, aegis_index expect_first,
                        aegis_term prev_term, struct aegis_segment_scan *out,
                        aegis_record_cb cb, void *data)
{
    uint64_t off = AEGIS_SEGMENT_HEADER_BYTES;
    int rv;

    memset(out, 0, sizeof(*out));
    rv = scan_header(buf, len, expect_first, out);
    if (rv != 0) {
        return rv;
    }
    out->last_term = prev_term;
    out->last_index = out->first_index > 0 ? out->first_index - 1 : 0;
    out->end = AEGIS_SEGMENT_HEADER_BYTES;
    if (out->zero_header) {
        return 0;
    }
    /* Bounded: each pass consumes at least one header, or stops. */
    while (off < len) {
        struct aegis_record rec;

        rv = scan_record(buf, len, off, out->last_index + 1, out->last_term, &rec,
                         &out->bad_why);
        if (rv < 0) {
            out->bad_offset = off;
            out->bad_index = out->last_index + 1;
            return rv;
        }
        if (rv == 0) {
            break;
        }
        if (rv == 2) {
            out->torn = true;
            break;
        }
        if (cb != NULL) {
            rv = cb(data, &rec);
            if (rv != 0) {
                return rv;
            }
        }
        out->records++;
        out->last_index = rec.index;
        out->last_term = rec.term;
        off += AEGIS_RECORD_HEADER_BYTES + rec.len;
        out->end = off;
    }
    AEGIS_ASSERT(out->end <= len || out->records == 0);
    return 0;
}

void aegis__segment_name(aegis_index first_index, char out[AEGIS_SEGMENT_NAME_LEN + 1])
{
    snprintf(out, AEGIS_SEGMENT_NAME_LEN + 1, "%020llu.seg", (unsigned long long)first_index);
}

bool aegis__segment_parse_name(const char *name, aegis_index *first_out)
{
    aegis_index v = 0;

    if (strlen(name) != AEGIS_SEGMENT_NAME_LEN || strcmp(name + 20, ".seg") != 0) {
        return false;
    }
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9') {
            return false;
        }
        if (v > (UINT64_MAX - 9) / 10) {
            return false;
        }
        v = v * 10 + (aegis_index)(name[i] - '0');
    }
    if (v == 0) {
        return false;
    }
    *first_out = v;
    return true;
}

static void path_of(const struct aegis_seglog *log, const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", log->dir, name);
}

static void seg_path(const struct aegis_seglog *log, aegis_index first, char *out, size_t len)
{
    char name[AEGIS_SEGMENT_NAME_LEN + 1];

    aegis__segment_name(first, name);
    path_of(log, name, out, len);
}

void aegis__seglog_active_path(const struct aegis_seglog *log, char *out, size_t len)
{
    if (log->segs_count == 0) {
        path_of(log, SPARE_NAME, out, len);
        return;
    }
    seg_path(log, log->segs[log->segs_count - 1].first_index, out, len);
}

static int segs_push(struct aegis_seglog *log, aegis_index first)
{
    if (log->segs_count == log->segs_cap) {
        uint32_t cap = log->segs_cap == 0 ? 16 : log->segs_cap * 2;
        void *p = aegis__realloc(log->alloc, log->segs, cap * sizeof(*log->segs));

        if (p == NULL) {
            return AEGIS_ENOMEM;
        }
        log->segs = p;
        log->segs_cap = cap;
    }
    log->segs[log->segs_count].first_index = first;
    log->segs[log->segs_count].last_index = first - 1;
    log->segs[log->segs_count].last_term = 0;
    log->segs_count++;
    return 0;
}

static int cmp_index(const void *a, const void *b)
{
    const aegis_index *x = a, *y = b;

    return *x < *y ? -1 : *x > *y;
}

/* List the segment files of the directory, sorted, into log->segs; remove the spare and
 * stale temporary files. */
static int list_segments(struct aegis_seglog *log)
{
    DIR *d = opendir(log->dir);
    struct dirent *de;
    aegis_index *firsts = NULL;
    uint32_t count = 0, cap = 0;
    int rv = 0;

    if (d == NULL) {
        return -errno;
    }
    while ((de = readdir(d)) != NULL) {
        aegis_index first;

        if (strcmp(de->d_name, SPARE_NAME) == 0) {
            char path[4096];

            path_of(log, de->d_name, path, sizeof(path));
            rv = aegis__fileio_unlink(log->io, path);
            if (rv != 0) {
                break;
            }
            continue;
        }
        if (!aegis__segment_parse_name(de->d_name, &first)) {
            continue;
        }
        if (count == cap) {
            void *p;

            cap = cap == 0 ? 16 : cap * 2;
            p = aegis__realloc(log->alloc, firsts, cap * sizeof(*firsts));
            if (p == NULL) {
                rv = AEGIS_ENOMEM;
                break;
            }
            firsts = p;
        }
        firsts[count++] = first;
    }
    closedir(d);
    if (rv == 0 && count > 0) {
        qsort(firsts, count, sizeof(*firsts), cmp_index);
        for (uint32_t i = 0; i < count && rv == 0; i++) {
            rv = segs_push(log, firsts[i]);
        }
    }
    aegis__free(log->alloc, firsts);
    return rv;
}

/* Read a whole file into a new buffer. */
static int read_file(struct aegis_seglog *log, const char *path, int flags, int *fd_out,
                     uint8_t **buf_out, uint64_t *len_out)
{
    uint64_t size;
    uint8_t *buf;
    int fd, rv;

    fd = aegis__fileio_open(log->io, path, flags, 0600);
    if (fd < 0) {
        return fd;
    }
    rv = aegis__fileio_size(log->io, fd, &size);
    if (rv != 0) {
        goto err_after_open;
    }
    if (size > SIZE_MAX / 2) {
        rv = AEGIS_ECORRUPT;
        goto err_after_open;
    }
    buf = aegis__malloc(log->alloc, size > 0 ? (size_t)size : 1);
    if (buf == NULL) {
        rv = AEGIS_ENOMEM;
        goto err_after_open;
    }
    rv = aegis__fileio_pread_all(log->io, fd, buf, (size_t)size, 0);
    if (rv != 0) {
        aegis__free(log->alloc, buf);
        goto err_after_open;
    }
    *fd_out = fd;
    *buf_out = buf;
    *len_out = size;
    return 0;

err_after_open:
    aegis__fileio_close(log->io, fd);
    AEGIS_ASSERT(rv != 0);
    return rv;
}

/* Remove segment i from the array (not the file). */
static void segs_remove(struct aegis_seglog *log, uint32_t i)
{
    AEGIS_ASSERT(i < log->segs_count);
    memmove(&log->segs[i], &log->segs[i + 1], (log->segs_count - i - 1) * sizeof(*log->segs));
    log->segs_count--;
}

static int unlink_segment(struct aegis_seglog *log, aegis_index first)
{
    char path[4096];

    seg_path(log, first, path, sizeof(path));
    return aegis__fileio_unlink(log->io, path);
}

/* Cut the active segment to @end bytes and preallocate it again, durably. */
static int cut_active(struct aegis_seglog *log, uint64_t end)
{
    int rv;

    AEGIS_ASSERT(log->fd >= 0);
    rv = aegis__fileio_ftruncate(log->io, log->fd, end);
    if (rv != 0) {
        return rv;
    }
    log->alloc_bytes = end;
    /* Preallocation is best effort: with a full disk the segment grows as it is written. */
    if (end < log->segment_bytes &&
        aegis__fileio_fallocate(log->io, log->fd, 0, log->segment_bytes) == 0) {
        log->alloc_bytes = log->segment_bytes;
    }
    return aegis__fileio_fdatasync(log->io, log->fd);
}

struct recover_state {
    struct aegis_seglog *log;
    aegis_index snapshot_index;
    aegis_record_cb cb;
    void *data;
};

static int recover_record(void *data, const struct aegis_record *rec)
{
    struct recover_state *st = data;

    if (rec->index <= st->snapshot_index || st->cb == NULL) {
        return 0;
    }
    return st->cb(st->data, rec);
}

/* Scan segment i; on return *torn and the segment's bounds are set, the active fd is
 * left open when @keep_fd. */
static int recover_segment(struct aegis_seglog *log, uint32_t i, aegis_term prev_term,
                           struct recover_state *st, struct aegis_segment_scan *scan,
                           int *fd_out)
{
    char path[4096];
    uint8_t *buf;
    uint64_t len;
    int fd, rv;

    seg_path(log, log->segs[i].first_index, path, sizeof(path));
    rv = read_file(log, path, O_RDWR, &fd, &buf, &len);
    if (rv != 0) {
        return rv;
    }
    rv = aegis__segment_scan(buf, (size_t)len, log->segs[i].first_index, prev_term, scan,
                             recover_record, st);
    aegis__free(log->alloc, buf);
    if (rv == AEGIS_ECORRUPT) {
        AEGIS_LOG(AEGIS_LOG_ERROR,
                  "corrupt log segment %s at byte offset %llu (index %llu): %s; refusing to "
                  "start (the files are kept for inspection)",
                  path, (unsigned long long)scan->bad_offset,
                  (unsigned long long)scan->bad_index, scan->bad_why);
    }
    if (rv != 0) {
        aegis__fileio_close(log->io, fd);
        return rv;
    }
    log->segs[i].last_index = scan->last_index;
    log->segs[i].last_term = scan->last_term;
    *fd_out = fd;
    log->alloc_bytes = len;
    return 0;
}

/* Drop empty trailing segments and everything after a torn one; check continuity. */
static int recover_all(struct aegis_seglog *log, struct recover_state *st)
{
    aegis_term prev_term = 0;
    uint32_t i = 0;
    int rv;

    /* Segments wholly at or below the snapshot: the next one starts at or below it + 1. */
    while (log->segs_count > 1 && log->segs[1].first_index <= st->snapshot_index + 1) {
        rv = unlink_segment(log, log->segs[0].first_index);
        if (rv != 0) {
            return rv;
        }
        segs_remove(log, 0);
    }
    if (log->segs_count > 0 && log->segs[0].first_index > st->snapshot_index + 1) {
        char path[4096];

        /* A gap between the snapshot and the log: what the missing or unreadable snapshot
         * held is nowhere else on this node. */
        seg_path(log, log->segs[0].first_index, path, sizeof(path));
        AEGIS_LOG(AEGIS_LOG_ERROR,
                  "the log starts at index %llu (%s) but no readable snapshot covers the "
                  "indexes before it (newest readable snapshot: index %llu): refusing to "
                  "start (the files are kept for inspection)",
                  (unsigned long long)log->segs[0].first_index, path,
                  (unsigned long long)st->snapshot_index);
        return AEGIS_ECORRUPT;
    }
    while (i < log->segs_count) {
        struct aegis_segment_scan scan;
        int fd;

        if (i > 0 && log->segs[i].first_index != log->segs[i - 1].last_index + 1) {
            break; /* Checked below: only empty segments may follow. */
        }
        rv = recover_segment(log, i, prev_term, st, &scan, &fd);
        if (rv != 0) {
            return rv;
        }
        if (scan.records == 0 && i > 0) {
            aegis__fileio_close(log->io, fd);
            break; /* Empty: trailing segments are checked and removed below. */
        }
        if (log->fd >= 0) {
            aegis__fileio_close(log->io, log->fd);
        }
        log->fd = fd;
        log->end = scan.end;
        prev_term = scan.last_term;
        i++;
        if (scan.torn) {
            rv = cut_active(log, scan.end);
            if (rv != 0) {
                return rv;
            }
            break;
        }
    }
    /* Whatever follows segment i - 1 must hold no records. Remove it, newest first. */
    for (uint32_t j = log->segs_count; j-- > i;) {
        struct aegis_segment_scan scan;
        int fd;

        rv = recover_segment(log, j, 0, &(struct recover_state){.log = log}, &scan, &fd);
        if (rv == AEGIS_ECORRUPT || (rv == 0 && scan.records > 0)) {
            if (rv == 0) {
                char path[4096];

                seg_path(log, log->segs[j].first_index, path, sizeof(path));
                AEGIS_LOG(AEGIS_LOG_ERROR,
                          "log segment %s holds records (index %llu at byte offset %u) after "
                          "a gap or a torn record at index %llu: refusing to start",
                          path, (unsigned long long)scan.first_index,
                          AEGIS_SEGMENT_HEADER_BYTES,
                          (unsigned long long)(i > 0 ? log->segs[i - 1].last_index + 1 : 1));
                aegis__fileio_close(log->io, fd);
            }
            return AEGIS_ECORRUPT;
        }
        if (rv != 0) {
            return rv;
        }
        aegis__fileio_close(log->io, fd);
        rv = unlink_segment(log, log->segs[j].first_index);
        if (rv != 0) {
            return rv;
        }
        segs_remove(log, j);
    }
    return aegis__fileio_fsync_dir(log->io, log->dir);
}

/* Remove every segment, newest first. */
static int drop_all(struct aegis_seglog *log)
{
    int rv;

    if (log->fd >= 0) {
        aegis__fileio_close(log->io, log->fd);
        log->fd = -1;
    }
    while (log->segs_count > 0) {
        rv = unlink_segment(log, log->segs[log->segs_count - 1].first_index);
        if (rv != 0) {
            return rv;
        }
        log->segs_count--;
    }
    log->end = 0;
    return aegis__fileio_fsync_dir(log->io, log->dir);
}

int aegis__seglog_open(struct aegis_seglog *log, const struct aegis_seglog_config *c,
                       aegis_index snapshot_index, aegis_record_cb cb, void *data)
{
    struct recover_state st = {.log = log, .snapshot_index = snapshot_index, .cb = cb,
                               .data = data};
    size_t dir_len = strlen(c->dir);
    int rv;

    memset(log, 0, sizeof(*log));
    log->fd = -1;
    log->spare_fd = -1;
    log->io = c->io;
    log->alloc = c->alloc;
    log->segment_bytes = c->segment_bytes != 0 ? c->segment_bytes : AEGIS_SEGMENT_BYTES_DEFAULT;
    AEGIS_ASSERT(log->segment_bytes >= AEGIS_SEGMENT_BYTES_MIN);
    log->dir = aegis__malloc(c->alloc, dir_len + 1);
    if (log->dir == NULL) {
        return AEGIS_ENOMEM;
    }
    memcpy(log->dir, c->dir, dir_len + 1);
    if (mkdir(log->dir, 0700) < 0 && errno != EEXIST) {
        rv = -errno;
        goto err;
    }
    rv = list_segments(log);
    if (rv != 0) {
        goto err;
    }
    rv = recover_all(log, &st);
    if (rv != 0) {
        goto err;
    }
    log->base_index = snapshot_index;
    if (log->segs_count > 0) {
        struct aegis_segment_file *s = &log->segs[log->segs_count - 1];

        log->last_index = s->last_index;
        log->last_term = s->last_term;
        if (log->last_index < snapshot_index) {
            /* Every entry is covered by the snapshot: start afresh after it. */
            rv = drop_all(log);
            if (rv != 0) {
                goto err;
            }
        }
    }
    if (log->segs_count == 0) {
        log->last_index = snapshot_index;
        log->last_term = 0;
    }
    return 0;

err:
    aegis__seglog_close(log);
    AEGIS_ASSERT(rv != 0);
    return rv;
}

void aegis__seglog_close(struct aegis_seglog *log)
{
    if (log->fd >= 0) {
        aegis__fileio_close(log->io, log->fd);
    }
    if (log->spare_fd >= 0) {
        aegis__fileio_close(log->io, log->spare_fd);
    }
    log->fd = -1;
    log->spare_fd = -1;
    aegis__free(log->alloc, log->segs);
    aegis__free(log->alloc, log->dir);
    log->segs = NULL;
    log->dir = NULL;
    log->segs_count = 0;
}

bool aegis__seglog_fits(const struct aegis_seglog *log, uint64_t bytes)
{
    if (log->fd < 0 || log->segs_count == 0) {
        return false;
    }
    if (log->end == AEGIS_SEGMENT_HEADER_BYTES) {
        return true; /* An empty segment takes any record. */
    }
    return log->end + bytes <= log->segment_bytes;
}

int aegis__seglog_prepare_spare(struct aegis_seglog *log)
{
    char path[4096];
    int fd, rv;

    if (log->spare_fd >= 0) {
        return 0;
    }
    path_of(log, SPARE_NAME, path, sizeof(path));
    fd = aegis__fileio_open(log->io, path, O_RDWR | O_CREAT, 0600);
    if (fd < 0) {
        return fd;
    }
    rv = aegis__fileio_fallocate(log->io, fd, 0, log->segment_bytes);
    if (rv != 0) {
        aegis__fileio_close(log->io, fd);
        aegis__fileio_unlink(log->io, path);
        return rv;
    }
    log->spare_fd = fd;
    return 0;
}

int aegis__seglog_roll(struct aegis_seglog *log, aegis_index first_index)
{
    uint8_t header[AEGIS_SEGMENT_HEADER_BYTES];
    struct iovec iov = {.iov_base = header, .iov_len = sizeof(header)};
    char from[4096], to[4096];
    int rv;

    AEGIS_ASSERT(first_index > 0);
    if (log->segs_count > 0) {
        AEGIS_ASSERT(first_index == log->last_index + 1);
    }
    rv = aegis__seglog_prepare_spare(log);
    if (rv != 0) {
        return rv;
    }
    aegis__segment_header_encode(first_index, header);
    rv = aegis__fileio_pwritev_all(log->io, log->spare_fd, &iov, 1, 0, NULL);
    if (rv == 0) {
        rv = aegis__fileio_fdatasync(log->io, log->spare_fd);
    }
    path_of(log, SPARE_NAME, from, sizeof(from));
    seg_path(log, first_index, to, sizeof(to));
    if (rv == 0) {
        rv = aegis__fileio_rename(log->io, from, to);
    }
    if (rv == 0) {
        rv = aegis__fileio_fsync_dir(log->io, log->dir);
    }
    if (rv != 0) {
        return rv;
    }
    rv = segs_push(log, first_index);
    if (rv != 0) {
        return rv;
    }
    if (log->fd >= 0) {
        aegis__fileio_close(log->io, log->fd);
    }
    log->fd = log->spare_fd;
    log->spare_fd = -1;
    log->end = AEGIS_SEGMENT_HEADER_BYTES;
    log->alloc_bytes = log->segment_bytes;
    if (log->segs_count == 1) {
        log->last_index = first_index - 1; /* The log was empty: it starts here. */
    }
    return 0;
}

void aegis__seglog_commit(struct aegis_seglog *log, uint64_t bytes, uint64_t count,
                          aegis_index last_index, aegis_term last_term)
{
    struct aegis_segment_file *s;

    AEGIS_ASSERT(log->segs_count > 0);
    AEGIS_ASSERT(last_index == log->last_index + count);
    AEGIS_ASSERT(last_term >= log->last_term);
    s = &log->segs[log->segs_count - 1];
    log->end += bytes;
    log->last_index = last_index;
    log->last_term = last_term;
    s->last_index = last_index;
    s->last_term = last_term;
}

int aegis__seglog_repair(struct aegis_seglog *log)
{
    if (log->fd < 0) {
        return 0;
    }
    return cut_active(log, log->end);
}

/* Write one round: the entries that fit in the active segment, one pwritev chain and one
 * fdatasync. Returns the number of entries written (> 0) or a negative code. */
static int append_round(struct aegis_seglog *log, const struct aegis_entry *entries,
                        uint32_t count, uint64_t *where_out)
{
    enum { ROUND_MAX = 256 };
    uint8_t headers[ROUND_MAX][AEGIS_RECORD_HEADER_BYTES];
    struct iovec iov[2 * ROUND_MAX];
    uint64_t bytes = 0, written = 0;
    int iovcnt = 0, rv;
    uint32_t n = 0;

    if (!aegis__seglog_fits(log, aegis__record_bytes(&entries[0]))) {
        rv = aegis__seglog_roll(log, entries[0].index);
        if (rv != 0) {
            *where_out = 0;
            return rv;
        }
    }
    /* Bounded by ROUND_MAX and by the segment's room (the first always fits). */
    while (n < count && n < ROUND_MAX &&
           (n == 0 || log->end + bytes + aegis__record_bytes(&entries[n]) <= log->segment_bytes)) {
        const struct aegis_entry *e = &entries[n];

        AEGIS_ASSERT(e->index == log->last_index + 1 + n);
        aegis__record_header_encode(e, headers[n]);
        iov[iovcnt].iov_base = headers[n];
        iov[iovcnt++].iov_len = AEGIS_RECORD_HEADER_BYTES;
        if (aegis__entry_len(e) > 0) {
            iov[iovcnt].iov_base = (void *)(uintptr_t)aegis__entry_data(e);
            iov[iovcnt++].iov_len = aegis__entry_len(e);
        }
        bytes += aegis__record_bytes(e);
        n++;
    }
    rv = aegis__fileio_pwritev_all(log->io, log->fd, iov, iovcnt, log->end, &written);
    if (rv == 0) {
        rv = aegis__fileio_fdatasync(log->io, log->fd);
        written = bytes;
    }
    if (rv != 0) {
        *where_out = log->end + written;
        return rv;
    }
    aegis__seglog_commit(log, bytes, n, entries[n - 1].index, entries[n - 1].term);
    if (log->end > log->alloc_bytes) {
        log->alloc_bytes = log->end;
    }
    return (int)n;
}

int aegis__seglog_append(struct aegis_seglog *log, const struct aegis_entry *entries,
                         uint32_t count, uint64_t *where_out)
{
    uint64_t where = 0;
    uint32_t done = 0;
    int rv = 0;

    while (done < count) {
        rv = append_round(log, entries + done, count - done, &where);
        if (rv < 0) {
            break;
        }
        done += (uint32_t)rv;
        rv = 0;
    }
    if (rv != 0) {
        int repaired = aegis__seglog_repair(log);

        (void)repaired; /* The first error is the one to report. */
        if (where_out != NULL) {
            *where_out = where;
        }
    }
    return rv;
}

struct find_state {
    aegis_index index;
    uint64_t offset;
    aegis_term prev_term;
    bool found;
};

static int find_record(void *data, const struct aegis_record *rec)
{
    struct find_state *st = data;

    if (rec->index == st->index) {
        st->offset = rec->offset;
        st->found = true;
        return 1; /* Stop the scan. */
    }
    st->prev_term = rec->term;
    return 0;
}

/* Make segment @i (the last) active, positioned so that record @index comes next: its
 * offset in *off_out, the term of record @index - 1 in *term_out. */
static int open_at(struct aegis_seglog *log, uint32_t i, aegis_index index, uint64_t *off_out,
                   aegis_term *term_out)
{
    struct find_state st = {.index = index};
    struct aegis_segment_scan scan;
    char path[4096];
    uint8_t *buf;
    uint64_t len;
    int fd, rv;

    AEGIS_ASSERT(i == log->segs_count - 1);
    seg_path(log, log->segs[i].first_index, path, sizeof(path));
    rv = read_file(log, path, O_RDWR, &fd, &buf, &len);
    if (rv != 0) {
        return rv;
    }
    st.prev_term = i > 0 ? log->segs[i - 1].last_term : 0;
    rv = aegis__segment_scan(buf, (size_t)len, log->segs[i].first_index, 0, &scan, find_record,
                             &st);
    aegis__free(log->alloc, buf);
    if (rv < 0) {
        aegis__fileio_close(log->io, fd);
        return rv;
    }
    if (log->fd >= 0) {
        aegis__fileio_close(log->io, log->fd);
    }
    log->fd = fd;
    log->alloc_bytes = len;
    *off_out = st.found ? st.offset : scan.end;
    *term_out = st.found ? st.prev_term : scan.last_term;
    return 0;
}

int aegis__seglog_truncate(struct aegis_seglog *log, aegis_index from)
{
    struct aegis_segment_file *s;
    aegis_term term;
    uint64_t off;
    int rv;

    AEGIS_ASSERT(from > 0);
    if (log->segs_count == 0 || from > log->last_index) {
        return 0;
    }
    /* Whole segments starting at or after @from go, newest first (a crash part way leaves
     * a contiguous prefix of the old log). */
    while (log->segs_count > 0 && log->segs[log->segs_count - 1].first_index >= from) {
        if (log->fd >= 0) {
            aegis__fileio_close(log->io, log->fd);
            log->fd = -1;
        }
        rv = unlink_segment(log, log->segs[log->segs_count - 1].first_index);
        if (rv != 0) {
            return rv;
        }
        log->segs_count--;
    }
    if (log->segs_count == 0) {
        log->last_index = from - 1;
        log->last_term = 0;
        log->end = 0;
        return aegis__fileio_fsync_dir(log->io, log->dir);
    }
    /* The segment holding @from - 1: cut it right after that record. */
    s = &log->segs[log->segs_count - 1];
    rv = open_at(log, log->segs_count - 1, from, &off, &term);
    if (rv != 0) {
        return rv;
    }
    rv = cut_active(log, off);
    if (rv != 0) {
        return rv;
    }
    log->end = off;
    s->last_index = from - 1;
    s->last_term = term;
    log->last_index = from - 1;
    log->last_term = term;
    return aegis__fileio_fsync_dir(log->io, log->dir);
}

int aegis__seglog_compact(struct aegis_seglog *log, aegis_index index)
{
    bool removed = false;
    int rv;

    /* Oldest first, never the active (last) segment. */
    while (log->segs_count > 1 && log->segs[0].last_index <= index) {
        rv = unlink_segment(log, log->segs[0].first_index);
        if (rv != 0) {
            return rv;
        }
        segs_remove(log, 0);
        removed = true;
    }
    if (index > log->base_index) {
        log->base_index = index;
    }
    return removed ? aegis__fileio_fsync_dir(log->io, log->dir) : 0;
}

int aegis__seglog_reset(struct aegis_seglog *log, aegis_index next_index)
{
    int rv;

    AEGIS_ASSERT(next_index > 0);
    rv = drop_all(log);
    if (rv != 0) {
        return rv;
    }
    log->last_index = next_index - 1;
    log->last_term = 0;
    return 0;
}

/* ---- Read path: ranges read back for followers (pipeline/log_reader.c) ----
 *
 * The reader keeps one open segment and a cursor (file offset, next index) in it, so
 * that the leader's successive fetches, which ask for the range right after the last
 * one, continue where it stopped instead of scanning again. The file is read with pread
 * in chunks of AEGIS_SEGMENT_READ_CHUNK bytes (more for a larger record) and every record
 * is checked as at recovery: both CRCs, the type and reserved bytes, the index sequence
 * and terms never going down. Unlike recovery nothing here is "torn": the reader is only
 * asked for durable, committed entries, so any bad record before them is corruption,
 * reported with the file, offset and reason, never an assertion. */

void aegis__segment_reader_init(struct aegis_segment_reader *rd, const char *dir,
                                const struct aegis_allocator *a)
{
    memset(rd, 0, sizeof(*rd));
    rd->fd = -1;
    rd->alloc = aegis__alloc_or_default(a);
    snprintf(rd->dir, sizeof(rd->dir), "%s", dir);
}

static void reader_drop(struct aegis_segment_reader *rd)
{
    if (rd->fd >= 0) {
        close(rd->fd);
    }
    rd->fd = -1;
    rd->buf_len = 0;
}

void aegis__segment_reader_close(struct aegis_segment_reader *rd)
{
    reader_drop(rd);
    aegis__free(rd->alloc, rd->buf);
    rd->buf = NULL;
    rd->cap = 0;
}

static int reader_fail(struct aegis_segment_reader *rd, uint64_t off, const char *why)
{
    rd->bad_offset = off;
    rd->why = why;
    return AEGIS_ECORRUPT;
}

/* The first index of the newest segment file that starts at or below @index (0: none). */
static aegis_index reader_locate(const struct aegis_segment_reader *rd, aegis_index index)
{
    DIR *d = opendir(rd->dir);
    struct dirent *de;
    aegis_index best = 0;

    if (d == NULL) {
        return 0;
    }
    while ((de = readdir(d)) != NULL) {
        aegis_index first;

        if (aegis__segment_parse_name(de->d_name, &first) && first <= index && first > best) {
            best = first;
        }
    }
    closedir(d);
    return best;
}

/* Open the segment that starts at @first and check its header. Returns 0, AEGIS_ENOENT
 * (no such file: deleted, or not yet there), AEGIS_ECORRUPT or an I/O error. */
static int reader_open(struct aegis_segment_reader *rd, aegis_index first)
{
    char name[AEGIS_SEGMENT_NAME_LEN + 1];
    uint8_t h[AEGIS_SEGMENT_HEADER_BYTES];
    struct aegis_segment_scan scan;
    ssize_t got;

    reader_drop(rd);
    aegis__segment_name(first, name);
    snprintf(rd->path, sizeof(rd->path), "%s/%s", rd->dir, name);
    rd->fd = open(rd->path, O_RDONLY | O_CLOEXEC);
    if (rd->fd < 0) {
        return errno == ENOENT ? AEGIS_ENOENT : -errno;
    }
    got = pread(rd->fd, h, sizeof(h), 0);
    if (got < 0) {
        return -errno;
    }
    if ((size_t)got < sizeof(h) ||
        aegis__segment_scan(h, sizeof(h), first, 0, &scan, NULL, NULL) != 0 || scan.zero_header) {
        return reader_fail(rd, 0, "bad segment header");
    }
    rd->first = first;
    rd->next = first;
    rd->off = AEGIS_SEGMENT_HEADER_BYTES;
    rd->last_term = 0;
    return 0;
}

/* Make at least @want bytes from rd->off available in the chunk buffer (fewer at the end
 * of the file). Returns the bytes available, or a negative code. */
static int64_t reader_fill(struct aegis_segment_reader *rd, uint64_t want)
{
    uint64_t have = 0;
    size_t cap = rd->cap;
    ssize_t got;

    if (rd->buf_len > 0 && rd->off >= rd->buf_off && rd->off <= rd->buf_off + rd->buf_len) {
        have = rd->buf_off + rd->buf_len - rd->off;
        if (have >= want) {
            return (int64_t)have;
        }
    }
    while (cap < want || cap < AEGIS_SEGMENT_READ_CHUNK) {
        cap = cap == 0 ? AEGIS_SEGMENT_READ_CHUNK : cap * 2;
    }
    if (cap != rd->cap) {
        uint8_t *p = aegis__realloc(rd->alloc, rd->buf, cap);

        if (p == NULL) {
            return AEGIS_ENOMEM;
        }
        rd->buf = p;
        rd->cap = cap;
    }
    got = pread(rd->fd, rd->buf, rd->cap, (off_t)rd->off);
    if (got < 0) {
        return -errno;
    }
    rd->buf_off = rd->off;
    rd->buf_len = (size_t)got;
    return got;
}

/* Read the record at the cursor into @rec (payload in the chunk buffer). Returns 1, 0 at
 * the end of the segment's data, or a negative code. */
static int reader_record(struct aegis_segment_reader *rd, struct aegis_record *rec)
{
    int64_t avail = reader_fill(rd, AEGIS_RECORD_HEADER_BYTES);
    const uint8_t *h;
    const char *why = NULL;
    uint64_t need;
    int rv;

    if (avail < 0) {
        return (int)avail;
    }
    if (avail < AEGIS_RECORD_HEADER_BYTES) {
        h = rd->buf + (rd->off - rd->buf_off);
        return all_zero(h, (size_t)avail) ? 0 : reader_fail(rd, rd->off, "record cut by the end "
                                                                         "of the file");
    }
    h = rd->buf + (rd->off - rd->buf_off);
    if (all_zero(h, AEGIS_RECORD_HEADER_BYTES)) {
        return 0;
    }
    need = AEGIS_RECORD_HEADER_BYTES + (uint64_t)get32(h);
    if (get32(h) <= AEGIS_BUF_LEN_MAX && (uint64_t)avail < need) {
        avail = reader_fill(rd, need);
        if (avail < 0) {
            return (int)avail;
        }
        h = rd->buf + (rd->off - rd->buf_off);
    }
    /* scan_record checks lengths, CRCs, type, and the sequence against what we expect. */
    rv = scan_record(h, (size_t)avail, 0, rd->next, rd->last_term, rec, &why);
    if (rv == 1) {
        return 1;
    }
    return reader_fail(rd, rd->off, rv == 2 ? "record cut short" : why);
}

int aegis__segment_reader_read(struct aegis_segment_reader *rd, aegis_index from,
                               uint32_t count_max, uint64_t bytes_max, struct aegis_entry *out,
                               uint32_t *n_out)
{
    uint64_t bytes = 0;
    uint32_t n = 0;
    int rv = 0;

    *n_out = 0;
    rd->why = NULL;
    if (rd->fd < 0 || from < rd->next || from < rd->first) {
        aegis_index first = reader_locate(rd, from);

        if (first == 0) {
            return AEGIS_ECOMPACTED;
        }
        rv = reader_open(rd, first);
        if (rv != 0) {
            reader_drop(rd);
            return rv == AEGIS_ENOENT ? AEGIS_ECOMPACTED : rv;
        }
    }
    while (n < count_max) {
        struct aegis_record rec;

        rv = reader_record(rd, &rec);
        if (rv < 0) {
            reader_drop(rd);
            break;
        }
        if (rv == 0) {
            /* End of this segment's data: the next one starts at the next index. */
            rv = reader_open(rd, rd->next);
            if (rv != 0) {
                reader_drop(rd);
                rv = rv == AEGIS_ENOENT ? 0 : rv;
                break;
            }
            continue;
        }
        if (rec.index >= from) {
            struct aegis_entry *e = &out[n];

            if (n > 0 && bytes + rec.len > bytes_max) {
                break;
            }
            *e = (struct aegis_entry){.index = rec.index, .term = rec.term, .type = rec.type,
                                      .timestamp = rec.timestamp};
            if (rec.len > 0) {
                e->buf = aegis__buf_from(rd->alloc, rec.payload, rec.len);
                if (e->buf == NULL) {
                    rv = AEGIS_ENOMEM;
                    break;
                }
            }
            bytes += rec.len;
            n++;
        }
        rd->next = rec.index + 1;
        rd->last_term = rec.term;
        rd->off += AEGIS_RECORD_HEADER_BYTES + rec.len;
    }
    if (rv < 0) {
        for (uint32_t i = 0; i < n; i++) {
            aegis__entry_unref(&out[i]);
        }
        return rv;
    }
    *n_out = n;
    return n > 0 ? 0 : AEGIS_ECOMPACTED;
}

int aegis__seglog_retain(struct aegis_seglog *log, aegis_index snapshot_index,
                         uint64_t retain_bytes)
{
    bool removed = false;
    uint32_t behind = 0;
    int rv;

    /* Segments wholly covered by the snapshot, never the active one. */
    while (behind + 1 < log->segs_count && log->segs[behind].last_index <= snapshot_index) {
        behind++;
    }
    /* Oldest first, while what stays behind the snapshot is over the bound. */
    while (behind > 0 && (uint64_t)behind * log->segment_bytes > retain_bytes) {
        rv = unlink_segment(log, log->segs[0].first_index);
        if (rv != 0) {
            return rv;
        }
        segs_remove(log, 0);
        behind--;
        removed = true;
    }
    if (snapshot_index > log->base_index) {
        log->base_index = snapshot_index;
    }
    return removed ? aegis__fileio_fsync_dir(log->io, log->dir) : 0;
}

uint64_t aegis__seglog_retained_bytes(const struct aegis_seglog *log)
{
    uint32_t behind = 0;

    while (behind + 1 < log->segs_count && log->segs[behind].last_index <= log->base_index) {
        behind++;
    }
    return (uint64_t)behind * log->segment_bytes;
}
