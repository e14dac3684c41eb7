/* SPDX-License-Identifier: MIT */
/* Snapshot files; see snapshot_file.h for the design.
 *
 * File "<index as 20 digits>.snap": a 320-byte header, the stream in chunks, an end
 * chunk. Integers little-endian. Header:
 *    0   8  magic "AEGISSNP"
 *    8   4  version, 2 (1: the older unchunked format, below)
 *   12   4  header bytes, 320
 *   16   8  last included index
 *   24   8  its term
 *   32   4  member count (<= AEGIS_MEMBERS_MAX, 16)
 *   36   4  reserved, zero
 *   40   8  stream length in bytes (the sum of the chunks' payloads)
 *   48   4  CRC32C of the whole stream (0 for an empty stream)
 *   52   4  reserved, zero
 *   56 256  16 member slots of 16 bytes: node id (8), role (1: voter, 2: learner),
 *           7 reserved zero bytes; slots past the count are all zero
 *  312   4  reserved, zero
 *  316   4  CRC32C of bytes 0..315
 * Then chunks, numbered from 0, back to back from byte 320:
 *    0   4  payload length L, 1..AEGIS_SNAPSHOT_CHUNK_BYTES_MAX (4 MiB); 0: the end chunk
 *    4   4  CRC32C of: the chunk's number as 8 bytes, bytes 0..3, then the L payload bytes
 *    8   L  payload: the next L bytes of the stream
 * The end chunk (L = 0) carries a 16-byte body in place of a payload, covered by its CRC:
 *    8   8  stream length in bytes (as in the header)
 *   16   8  number of data chunks before it
 * and the file ends right after it (24 bytes). The writer writes the header last (its
 * placeholder of zeros is refused by any reader), before the fdatasync. A chunk's number
 * in its CRC catches chunks repeated, dropped or swapped; the end chunk catches a file
 * cut at a chunk boundary; the header's stream CRC is checked once more at the end.
 *
 * The stream is the snapshot data of pipeline/envelope.h: the member address section,
 * then the state machine's own bytes.
 *
 * Version 1 (still read): the same header with version 1, where the stream length is at
 * most AEGIS_BUF_LEN_MAX, followed directly by the stream (no chunks) to the end of the
 * file; its CRC is the header's stream CRC, checked once the last byte is read.
 *
 * The reader refuses a header whose reserved bytes or unused member slots are not zero, or
 * whose members are not a valid configuration (aegis__conf_valid), as corrupt: a future
 * version that gives them a meaning must change the version field. */
#include "pipeline/snapshot_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aegis/error.h>

#include "engine/assert.h"
#include "engine/conf.h"
#include "engine/crc32c.h"
#include "pipeline/logging.h"

static const uint8_t snap_magic[8] = {'A', 'E', 'G', 'I', 'S', 'S', 'N', 'P'};

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
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

void aegis__snapshot_header_encode(const struct aegis_snapshot_meta *meta, uint64_t data_len,
                                   uint32_t data_crc, uint8_t out[AEGIS_SNAPSHOT_HEADER_BYTES])
{
    AEGIS_ASSERT(meta->conf.count <= AEGIS_MEMBERS_MAX);
    memset(out, 0, AEGIS_SNAPSHOT_HEADER_BYTES);
    memcpy(out, snap_magic, 8);
    put32(out + 8, AEGIS_SNAPSHOT_VERSION);
    put32(out + 12, AEGIS_SNAPSHOT_HEADER_BYTES);
    put64(out + 16, meta->index);
    put64(out + 24, meta->term);
    put32(out + 32, meta->conf.count);
    put64(out + 40, data_len);
    put32(out + 48, data_crc);
    for (uint32_t i = 0; i < meta->conf.count; i++) {
        put64(out + 56 + 16 * i, meta->conf.members[i].id);
        out[56 + 16 * i + 8] = meta->conf.members[i].role;
    }
    put32(out + 316, aegis__crc32c(0, out, 316));
}

/* Whether bytes [@from, @to) of @buf are all zero. */
static bool zero_bytes(const uint8_t *buf, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        if (buf[i] != 0) {
            return false;
        }
    }
    return true;
}

/* Why the member slots of @buf (count already checked) are invalid, or NULL. */
static const char *members_check(const uint8_t *buf, uint32_t count)
{
    struct aegis_conf conf;

    memset(&conf, 0, sizeof(conf));
    conf.count = count;
    for (uint32_t i = 0; i < AEGIS_MEMBERS_MAX; i++) {
        const uint8_t *slot = buf + 56 + 16 * i;

        if (i >= count) {
            if (!zero_bytes(slot, 0, 16)) {
                return "a member slot past the member count is not zero";
            }
            continue;
        }
        if (!zero_bytes(slot, 9, 16)) {
            return "reserved bytes of a member slot are not zero";
        }
        conf.members[i].id = get64(slot);
        conf.members[i].role = slot[8];
    }
    return aegis__conf_valid(&conf) ? NULL : "invalid members (id 0, repeated id or bad role)";
}

const char *aegis__snapshot_header_check(const uint8_t *buf, size_t len)
{
    if (len < AEGIS_SNAPSHOT_HEADER_BYTES) {
        return "shorter than a header";
    }
    if (memcmp(buf, snap_magic, 8) != 0) {
        return "bad magic";
    }
    if (get32(buf + 316) != aegis__crc32c(0, buf, 316)) {
        return "header CRC mismatch";
    }
    if (get32(buf + 8) != 1 && get32(buf + 8) != AEGIS_SNAPSHOT_VERSION) {
        return "unsupported version (this build reads 1 and 2)";
    }
    if (get32(buf + 12) != AEGIS_SNAPSHOT_HEADER_BYTES) {
        return "bad header size";
    }
    if (get64(buf + 16) == 0 || get64(buf + 24) == 0) {
        return "index or term 0";
    }
    if (get32(buf + 32) > AEGIS_MEMBERS_MAX) {
        return "member count above 16";
    }
    if (get32(buf + 8) == 1 && get64(buf + 40) > AEGIS_BUF_LEN_MAX) {
        return "data length too large";
    }
    if (!zero_bytes(buf, 36, 40) || !zero_bytes(buf, 52, 56) || !zero_bytes(buf, 312, 316)) {
        return "reserved header bytes are not zero";
    }
    return members_check(buf, get32(buf + 32));
}

uint32_t aegis__snapshot_header_version(const uint8_t *buf)
{
    return get32(buf + 8);
}

int aegis__snapshot_header_decode(const uint8_t *buf, size_t len,
                                  struct aegis_snapshot_meta *meta_out, uint64_t *data_len_out,
                                  uint32_t *data_crc_out)
{
    struct aegis_snapshot_meta m;

    if (aegis__snapshot_header_check(buf, len) != NULL) {
        return AEGIS_ECORRUPT;
    }
    memset(&m, 0, sizeof(m));
    m.index = get64(buf + 16);
    m.term = get64(buf + 24);
    m.conf.count = get32(buf + 32);
    for (uint32_t i = 0; i < m.conf.count; i++) {
        m.conf.members[i].id = get64(buf + 56 + 16 * i);
        m.conf.members[i].role = buf[56 + 16 * i + 8];
    }
    *meta_out = m;
    *data_len_out = get64(buf + 40);
    *data_crc_out = get32(buf + 48);
    return 0;
}

static void snap_path(const char *dir, aegis_index index, const char *suffix, char *out,
                      size_t len)
{
    snprintf(out, len, "%s/%020llu.snap%s", dir, (unsigned long long)index, suffix);
}

/* Parse "<20 digits>.snap" (@tmp false) or "<20 digits>.snap.tmp" (@tmp true). */
static bool parse_name(const char *name, bool tmp, aegis_index *index_out)
{
    const char *suffix = tmp ? ".snap.tmp" : ".snap";
    aegis_index v = 0;

    if (strlen(name) != 20 + strlen(suffix) || strcmp(name + 20, suffix) != 0) {
        return false;
    }
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9' || v > (UINT64_MAX - 9) / 10) {
            return false;
        }
        v = v * 10 + (aegis_index)(name[i] - '0');
    }
    *index_out = v;
    return v > 0;
}

/* List the snapshot indexes of @dir (sorted newest first) and remove temporary files. */
static int list_snapshots(const char *dir, struct aegis_fileio *io, const struct aegis_allocator *a,
                          aegis_index **out, uint32_t *count_out)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    aegis_index *v = NULL;
    uint32_t count = 0, cap = 0;

    if (d == NULL) {
        return errno == ENOENT ? 0 : -errno;
    }
    while ((de = readdir(d)) != NULL) {
        aegis_index index;

        if (parse_name(de->d_name, true, &index)) {
            char path[4096];

            snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
            aegis__fileio_unlink(io, path);
            continue;
        }
        if (!parse_name(de->d_name, false, &index)) {
            continue;
        }
        if (count == cap) {
            void *p;

            cap = cap == 0 ? 8 : cap * 2;
            p = aegis__realloc(a, v, cap * sizeof(*v));
            if (p == NULL) {
                closedir(d);
                aegis__free(a, v);
                return AEGIS_ENOMEM;
            }
            v = p;
        }
        v[count++] = index;
    }
    closedir(d);
    /* Newest first; a handful of files: insertion sort. */
    for (uint32_t i = 1; i < count; i++) {
        for (uint32_t j = i; j > 0 && v[j - 1] < v[j]; j--) {
            aegis_index t = v[j];

            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    }
    *out = v;
    *count_out = count;
    return 0;
}

void aegis__snapshot_file_path(const char *dir, aegis_index index, char *out, size_t cap)
{
    snap_path(dir, index, "", out, cap);
}

/* The CRC of chunk @seq: its number, its length field, then @p (@len bytes). */
static uint32_t chunk_crc(uint64_t seq, const uint8_t len_field[4], const void *p, size_t len)
{
    uint8_t s[8];

    put64(s, seq);
    return aegis__crc32c(aegis__crc32c(aegis__crc32c(0, s, 8), len_field, 4), p, len);
}

int aegis__snapshot_out_open(struct aegis_snapshot_out *o, const char *dir,
                             struct aegis_fileio *io, const struct aegis_snapshot_meta *meta)
{
    uint8_t zero[AEGIS_SNAPSHOT_HEADER_BYTES];
    struct iovec iov = {.iov_base = zero, .iov_len = sizeof(zero)};
    int rv;

    AEGIS_ASSERT(meta->index > 0 && meta->conf.count <= AEGIS_MEMBERS_MAX);
    memset(o, 0, sizeof(*o));
    memset(zero, 0, sizeof(zero));
    o->io = io;
    o->index = meta->index;
    o->meta = *meta;
    snprintf(o->dir, sizeof(o->dir), "%s", dir);
    snap_path(dir, meta->index, ".tmp", o->tmp, sizeof(o->tmp));
    snap_path(dir, meta->index, "", o->path, sizeof(o->path));
    aegis__fileio_unlink(io, o->tmp); /* A leftover from a crash; ENOENT is fine. */
    o->fd = aegis__fileio_open(io, o->tmp, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (o->fd < 0) {
        return o->fd;
    }
    rv = aegis__fileio_pwritev_all(io, o->fd, &iov, 1, 0, NULL);
    if (rv != 0) {
        aegis__snapshot_out_abort(o);
        return rv;
    }
    o->off = AEGIS_SNAPSHOT_HEADER_BYTES;
    return 0;
}

/* Run the one SQE @sqe (prepared, user_data 0) through o->ring and the file layer; the
 * completion's result (bytes or a negative errno). */
static int64_t uring_run(struct aegis_snapshot_out *o, struct io_uring_sqe *sqe)
{
    struct io_uring_cqe *cqe;
    int64_t res;
    int rv;

    sqe->user_data = 0;
    aegis__fileio_uring_prepare(o->io, &sqe, 1);
    rv = io_uring_submit_and_wait(o->ring, 1);
    if (rv < 0) {
        return rv;
    }
    rv = io_uring_wait_cqe(o->ring, &cqe);
    if (rv < 0) {
        return rv;
    }
    res = aegis__fileio_uring_result(o->io, cqe->user_data, cqe->res);
    io_uring_cqe_seen(o->ring, cqe);
    return res;
}

/* Write @iov (@cnt entries, @total bytes) at @off: through o->ring when set (a short
 * write is finished through the file layer), else through the file layer. */
static int out_write(struct aegis_snapshot_out *o, struct iovec *iov, int cnt, size_t total,
                     uint64_t off)
{
    struct io_uring_sqe *sqe;
    int64_t res;
    size_t done;

    if (o->ring == NULL || (sqe = io_uring_get_sqe(o->ring)) == NULL) {
        return aegis__fileio_pwritev_all(o->io, o->fd, iov, cnt, off, NULL);
    }
    io_uring_prep_writev(sqe, o->fd, iov, (unsigned)cnt, off);
    res = uring_run(o, sqe);
    if (res < 0) {
        return (int)res;
    }
    if ((size_t)res == total) {
        return 0;
    }
    /* Short: skip what was written, write the rest. */
    done = (size_t)res;
    while (cnt > 0 && done >= iov[0].iov_len) {
        done -= iov[0].iov_len;
        iov++;
        cnt--;
    }
    AEGIS_ASSERT(cnt > 0);
    iov[0].iov_base = (uint8_t *)iov[0].iov_base + done;
    iov[0].iov_len -= done;
    return aegis__fileio_pwritev_all(o->io, o->fd, iov, cnt, off + (uint64_t)res, NULL);
}

static int out_sync(struct aegis_snapshot_out *o)
{
    struct io_uring_sqe *sqe;
    int64_t res;

    if (o->ring == NULL || (sqe = io_uring_get_sqe(o->ring)) == NULL) {
        return aegis__fileio_fdatasync(o->io, o->fd);
    }
    io_uring_prep_fsync(sqe, o->fd, IORING_FSYNC_DATASYNC);
    res = uring_run(o, sqe);
    return res < 0 ? (int)res : 0;
}

int aegis__snapshot_out_append(struct aegis_snapshot_out *o, const void *data, size_t len)
{
    uint8_t h[AEGIS_SNAPSHOT_CHUNK_HEADER_BYTES];
    struct iovec iov[2];
    int rv;

    AEGIS_ASSERT(o->fd >= 0);
    AEGIS_ASSERT(len > 0 && len <= AEGIS_SNAPSHOT_CHUNK_BYTES_MAX);
    put32(h, (uint32_t)len);
    put32(h + 4, chunk_crc(o->seq, h, data, len));
    iov[0] = (struct iovec){.iov_base = h, .iov_len = sizeof(h)};
    iov[1] = (struct iovec){.iov_base = (void *)(uintptr_t)data, .iov_len = len};
    rv = out_write(o, iov, 2, sizeof(h) + len, o->off);
    if (rv != 0) {
        return rv;
    }
    o->off += sizeof(h) + len;
    o->seq++;
    o->total += len;
    o->crc = aegis__crc32c(o->crc, data, len);
    return 0;
}

/* The end chunk and the real header. */
static int write_end(struct aegis_snapshot_out *o)
{
    uint8_t end[AEGIS_SNAPSHOT_CHUNK_HEADER_BYTES + AEGIS_SNAPSHOT_END_BYTES];
    uint8_t header[AEGIS_SNAPSHOT_HEADER_BYTES];
    struct iovec iov = {.iov_base = end, .iov_len = sizeof(end)};
    int rv;

    put32(end, 0);
    put64(end + 8, o->total);
    put64(end + 16, o->seq);
    put32(end + 4, chunk_crc(o->seq, end, end + 8, AEGIS_SNAPSHOT_END_BYTES));
    rv = out_write(o, &iov, 1, sizeof(end), o->off);
    if (rv != 0) {
        return rv;
    }
    o->off += sizeof(end);
    aegis__snapshot_header_encode(&o->meta, o->total, o->crc, header);
    iov = (struct iovec){.iov_base = header, .iov_len = sizeof(header)};
    return out_write(o, &iov, 1, sizeof(header), 0);
}

/* Remove the snapshot files older than @index (the new one is durable). A failure here
 * leaves garbage, not damage: the load picks the newest anyway. */
static void remove_older(const char *dir, struct aegis_fileio *io, aegis_index index)
{
    aegis_index *old = NULL;
    uint32_t old_count = 0;
    bool removed = false;
    char path[AEGIS_SNAPSHOT_PATH_MAX];

    if (list_snapshots(dir, io, NULL, &old, &old_count) != 0) {
        return;
    }
    for (uint32_t i = 0; i < old_count; i++) {
        if (old[i] < index) {
            snap_path(dir, old[i], "", path, sizeof(path));
            removed |= aegis__fileio_unlink(io, path) == 0;
        }
    }
    aegis__free(NULL, old);
    if (removed) {
        aegis__fileio_fsync_dir(io, dir);
    }
}

int aegis__snapshot_out_finish(struct aegis_snapshot_out *o, uint64_t *file_bytes_out)
{
    int rv;

    AEGIS_ASSERT(o->fd >= 0);
    rv = write_end(o);
    if (rv == 0) {
        rv = out_sync(o);
    }
    aegis__fileio_close(o->io, o->fd);
    o->fd = -1;
    if (rv == 0) {
        rv = aegis__fileio_rename(o->io, o->tmp, o->path);
    }
    if (rv == 0) {
        rv = aegis__fileio_fsync_dir(o->io, o->dir);
    }
    if (rv != 0) {
        aegis__fileio_unlink(o->io, o->tmp);
        return rv;
    }
    remove_older(o->dir, o->io, o->index);
    if (file_bytes_out != NULL) {
        *file_bytes_out = o->off;
    }
    return 0;
}

void aegis__snapshot_out_abort(struct aegis_snapshot_out *o)
{
    if (o->fd >= 0) {
        aegis__fileio_close(o->io, o->fd);
        o->fd = -1;
    }
    aegis__fileio_unlink(o->io, o->tmp);
}

int aegis__snapshot_file_write(const char *dir, struct aegis_fileio *io,
                               const struct aegis_snapshot_meta *meta, const void *data,
                               size_t len)
{
    struct aegis_snapshot_out o;
    size_t done = 0;
    int rv;

    rv = aegis__snapshot_out_open(&o, dir, io, meta);
    while (rv == 0 && done < len) {
        size_t n = len - done < AEGIS_SNAPSHOT_CHUNK_BYTES_MAX ? len - done
                                                               : AEGIS_SNAPSHOT_CHUNK_BYTES_MAX;

        rv = aegis__snapshot_out_append(&o, (const uint8_t *)data + done, n);
        done += n;
    }
    if (rv == 0) {
        return aegis__snapshot_out_finish(&o, NULL);
    }
    if (o.fd >= 0) {
        aegis__snapshot_out_abort(&o);
    }
    return rv;
}

/* Refuse the file: remember why and where. */
static int refuse(struct aegis_snapshot_reader *r, const char *why, uint64_t where)
{
    r->why = why;
    r->where = where;
    return AEGIS_ECORRUPT;
}

void aegis__snapshot_reader_error(const struct aegis_snapshot_reader *r, char *out, size_t cap)
{
    snprintf(out, cap, "snapshot %s: %s at byte offset %llu", r->path,
             r->why != NULL ? r->why : "unreadable", (unsigned long long)r->where);
}

void aegis__snapshot_reader_close(struct aegis_snapshot_reader *r)
{
    if (r->fd >= 0) {
        aegis__fileio_close(r->io, r->fd);
        r->fd = -1;
    }
    aegis__free(r->alloc, r->buf);
    r->buf = NULL;
}

int aegis__snapshot_reader_open(struct aegis_snapshot_reader *r, const char *path,
                                struct aegis_fileio *io, const struct aegis_allocator *a,
                                aegis_index want)
{
    uint8_t header[AEGIS_SNAPSHOT_HEADER_BYTES];
    int rv;

    memset(r, 0, sizeof(*r));
    r->io = io;
    r->alloc = a;
    snprintf(r->path, sizeof(r->path), "%s", path);
    r->fd = aegis__fileio_open(io, path, O_RDONLY, 0);
    if (r->fd < 0) {
        return r->fd;
    }
    rv = aegis__fileio_size(io, r->fd, &r->size);
    if (rv == 0) {
        rv = aegis__fileio_pread_all(io, r->fd, header, sizeof(header), 0);
        if (rv == AEGIS_ECORRUPT) {
            rv = refuse(r, "file shorter than a header", 0);
        }
    }
    if (rv == 0 && aegis__snapshot_header_decode(header, sizeof(header), &r->meta, &r->data_len,
                                                 &r->data_crc) != 0) {
        /* Non-NULL exactly when decode refuses (checked by fuzz_snapshot_header). */
        rv = refuse(r, aegis__snapshot_header_check(header, sizeof(header)), 0);
    }
    if (rv == 0) {
        r->version = aegis__snapshot_header_version(header);
        if (want != 0 && r->meta.index != want) {
            rv = refuse(r, "header index differs from the file name", 16);
        } else if (r->data_len == 0 && r->data_crc != 0) {
            rv = refuse(r, "stream CRC set for an empty stream", 48);
        } else if (r->version == 1 && r->size != AEGIS_SNAPSHOT_HEADER_BYTES + r->data_len) {
            rv = refuse(r, "file size differs from the header's data length", r->size);
        }
    }
    if (rv == 0) {
        uint64_t cap = r->version == 1 ? (1u << 20) : AEGIS_SNAPSHOT_CHUNK_BYTES_MAX;

        /* One chunk: never more than the stream itself. */
        r->buf = aegis__malloc(a, (size_t)(r->data_len < cap ? r->data_len + 1 : cap));
        rv = r->buf == NULL ? AEGIS_ENOMEM : 0;
    }
    if (rv != 0) {
        aegis__snapshot_reader_close(r);
        return rv;
    }
    r->off = AEGIS_SNAPSHOT_HEADER_BYTES;
    return 0;
}

/* The end of the stream was reached: the totals must agree with the header. */
static int check_totals(struct aegis_snapshot_reader *r)
{
    if (r->total != r->data_len) {
        return refuse(r, "stream length differs from the header's", r->off);
    }
    if (r->crc != r->data_crc) {
        return refuse(r, "stream CRC mismatch", r->off);
    }
    r->done = true;
    return 0;
}

static int next_v1(struct aegis_snapshot_reader *r, const uint8_t **data_out, size_t *len_out)
{
    uint64_t left = r->data_len - r->total;
    size_t n = left < (1u << 20) ? (size_t)left : (1u << 20);
    int rv;

    if (n == 0) {
        return check_totals(r);
    }
    rv = aegis__fileio_pread_all(r->io, r->fd, r->buf, n, r->off);
    if (rv != 0) {
        return rv == AEGIS_ECORRUPT ? refuse(r, "file cut short", r->off) : rv;
    }
    r->crc = aegis__crc32c(r->crc, r->buf, n);
    r->off += n;
    r->total += n;
    *data_out = r->buf;
    *len_out = n;
    return 0;
}

/* The end chunk at r->off, whose length field (0) is in @h. */
static int read_end(struct aegis_snapshot_reader *r, const uint8_t *h)
{
    uint8_t body[AEGIS_SNAPSHOT_END_BYTES];
    int rv;

    rv = aegis__fileio_pread_all(r->io, r->fd, body, sizeof(body), r->off + 8);
    if (rv != 0) {
        return rv == AEGIS_ECORRUPT ? refuse(r, "end chunk cut short", r->off) : rv;
    }
    if (get32(h + 4) != chunk_crc(r->seq, h, body, sizeof(body))) {
        return refuse(r, "end chunk CRC mismatch", r->off);
    }
    if (get64(body) != r->total || get64(body + 8) != r->seq) {
        return refuse(r, "end chunk totals differ from the chunks read", r->off);
    }
    r->off += 8 + sizeof(body);
    if (r->size != r->off) {
        return refuse(r, "bytes after the end chunk", r->off);
    }
    return check_totals(r);
}

int aegis__snapshot_reader_next(struct aegis_snapshot_reader *r, const uint8_t **data_out,
                                size_t *len_out)
{
    uint8_t h[AEGIS_SNAPSHOT_CHUNK_HEADER_BYTES];
    uint32_t len;
    int rv;

    *len_out = 0;
    if (r->done) {
        return 0;
    }
    if (r->version == 1) {
        return next_v1(r, data_out, len_out);
    }
    rv = aegis__fileio_pread_all(r->io, r->fd, h, sizeof(h), r->off);
    if (rv != 0) {
        return rv == AEGIS_ECORRUPT ? refuse(r, "file cut short (no end chunk)", r->off) : rv;
    }
    len = get32(h);
    if (len == 0) {
        return read_end(r, h);
    }
    if (len > AEGIS_SNAPSHOT_CHUNK_BYTES_MAX || len > r->data_len - r->total) {
        return refuse(r, "chunk length beyond the limit or the stream", r->off);
    }
    rv = aegis__fileio_pread_all(r->io, r->fd, r->buf, len, r->off + sizeof(h));
    if (rv != 0) {
        return rv == AEGIS_ECORRUPT ? refuse(r, "chunk cut short", r->off) : rv;
    }
    if (get32(h + 4) != chunk_crc(r->seq, h, r->buf, len)) {
        return refuse(r, "chunk CRC mismatch", r->off);
    }
    r->crc = aegis__crc32c(r->crc, r->buf, len);
    r->off += sizeof(h) + len;
    r->seq++;
    r->total += len;
    *data_out = r->buf;
    *len_out = len;
    return 0;
}

/* Read and verify the whole file at @path; keep the stream in *@data_out when it fits in
 * one buffer. 0, AEGIS_ECORRUPT (r says why) or an error. */
static int load_one(struct aegis_snapshot_reader *r, const char *path, struct aegis_fileio *io,
                    const struct aegis_allocator *a, aegis_index want,
                    struct aegis_buf **data_out)
{
    struct aegis_buf *data = NULL;
    const uint8_t *p;
    size_t len;
    int rv;

    rv = aegis__snapshot_reader_open(r, path, io, a, want);
    if (rv != 0) {
        return rv;
    }
    if (r->data_len > 0 && r->data_len <= AEGIS_BUF_LEN_MAX) {
        data = aegis__buf_create(a, (size_t)r->data_len);
        if (data == NULL) {
            aegis__snapshot_reader_close(r);
            return AEGIS_ENOMEM;
        }
    }
    do {
        rv = aegis__snapshot_reader_next(r, &p, &len);
        if (rv == 0 && len > 0 && data != NULL) {
            /* next never hands out more than the header's length. */
            memcpy(data->data + r->total - len, p, len);
        }
    } while (rv == 0 && len > 0);
    aegis__snapshot_reader_close(r);
    if (rv != 0) {
        aegis__buf_unref(data);
        return rv;
    }
    *data_out = data;
    return 0;
}

int aegis__snapshot_file_load(const char *dir, struct aegis_fileio *io,
                              const struct aegis_allocator *a,
                              struct aegis_snapshot_meta *meta_out, struct aegis_buf **data_out,
                              bool *found_out)
{
    struct aegis_snapshot_reader r;
    aegis_index *v = NULL;
    uint32_t count = 0;
    int rv;

    *found_out = false;
    *data_out = NULL;
    rv = list_snapshots(dir, io, a, &v, &count);
    if (rv != 0) {
        return rv;
    }
    for (uint32_t i = 0; i < count; i++) {
        char path[AEGIS_SNAPSHOT_PATH_MAX], msg[AEGIS_SNAPSHOT_PATH_MAX + 128];

        snap_path(dir, v[i], "", path, sizeof(path));
        rv = load_one(&r, path, io, a, v[i], data_out);
        if (rv == AEGIS_ECORRUPT) {
            /* Skip it: an older valid snapshot may follow, and the log may still cover
             * what it held (segment.c refuses to start when it does not). */
            aegis__snapshot_reader_error(&r, msg, sizeof(msg));
            AEGIS_LOG(AEGIS_LOG_WARN, "%s; skipped", msg);
            rv = 0;
            continue;
        }
        if (rv == 0) {
            *meta_out = r.meta;
            *found_out = true;
        }
        break;
    }
    aegis__free(a, v);
    return rv;
}
