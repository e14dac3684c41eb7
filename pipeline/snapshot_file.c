/* SPDX-License-Identifier: MIT */
/* Snapshot files; see snapshot_file.h for the design.
 *
 * File "<index as 20 digits>.snap": a 320-byte header then the data. Header, integers
 * little-endian:
 *    0   8  magic "AEGISSNP"
 *    8   4  version, 1
 *   12   4  header bytes, 320
 *   16   8  last included index
 *   24   8  its term
 *   32   4  member count (<= AEGIS_MEMBERS_MAX, 16)
 *   36   4  reserved, zero
 *   40   8  data length in bytes
 *   48   4  CRC32C of the data (0 for no data)
 *   52   4  reserved, zero
 *   56 256  16 member slots of 16 bytes: node id (8), role (1: voter, 2: learner),
 *           7 reserved zero bytes; slots past the count are all zero
 *  312   4  reserved, zero
 *  316   4  CRC32C of bytes 0..315
 *  320   n  data
 * The reader refuses a header whose reserved bytes or unused member slots are not zero, or
 * whose members are not a valid configuration (aegis__conf_valid), as corrupt: a future
 * version that gives them a meaning must change the version field. */
#include "pipeline/snapshot_file.h"

#include <dirent.h>
#include <fcntl.h>
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
    put32(out + 8, 1);
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
    if (get32(buf + 8) != 1) {
        return "unsupported version";
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
    if (get64(buf + 40) > AEGIS_BUF_LEN_MAX) {
        return "data length too large";
    }
    if (!zero_bytes(buf, 36, 40) || !zero_bytes(buf, 52, 56) || !zero_bytes(buf, 312, 316)) {
        return "reserved header bytes are not zero";
    }
    return members_check(buf, get32(buf + 32));
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

int aegis__snapshot_file_write(const char *dir, struct aegis_fileio *io,
                               const struct aegis_snapshot_meta *meta, const void *data,
                               size_t len)
{
    uint8_t header[AEGIS_SNAPSHOT_HEADER_BYTES];
    struct iovec iov[2];
    char tmp[4096], path[4096];
    aegis_index *old = NULL;
    uint32_t old_count = 0;
    int rv;

    AEGIS_ASSERT(meta->index > 0);
    AEGIS_ASSERT(len <= AEGIS_BUF_LEN_MAX);
    aegis__snapshot_header_encode(meta, len, len > 0 ? aegis__crc32c(0, data, len) : 0, header);
    iov[0].iov_base = header;
    iov[0].iov_len = sizeof(header);
    iov[1].iov_base = (void *)(uintptr_t)data;
    iov[1].iov_len = len;
    snap_path(dir, meta->index, ".tmp", tmp, sizeof(tmp));
    snap_path(dir, meta->index, "", path, sizeof(path));
    rv = aegis__fileio_replace(io, dir, tmp, path, iov, len > 0 ? 2 : 1);
    if (rv != 0) {
        aegis__fileio_unlink(io, tmp);
        return rv;
    }
    /* The new snapshot is durable: older ones may go. A failure here leaves garbage, not
     * damage, and the load picks the newest anyway. */
    if (list_snapshots(dir, io, NULL, &old, &old_count) == 0) {
        bool removed = false;

        for (uint32_t i = 0; i < old_count; i++) {
            if (old[i] < meta->index) {
                snap_path(dir, old[i], "", tmp, sizeof(tmp));
                removed |= aegis__fileio_unlink(io, tmp) == 0;
            }
        }
        aegis__free(NULL, old);
        if (removed) {
            aegis__fileio_fsync_dir(io, dir);
        }
    }
    return 0;
}

/* Load one snapshot file: 0, AEGIS_ECORRUPT (skip it: *why and *where say why), or an
 * error. */
static int load_one(const char *path, struct aegis_fileio *io, const struct aegis_allocator *a,
                    aegis_index want, struct aegis_snapshot_meta *meta_out,
                    struct aegis_buf **data_out, const char **why, uint64_t *where)
{
    uint8_t header[AEGIS_SNAPSHOT_HEADER_BYTES];
    struct aegis_buf *data = NULL;
    uint64_t size, data_len;
    uint32_t data_crc;
    int fd, rv;

    fd = aegis__fileio_open(io, path, O_RDONLY, 0);
    if (fd < 0) {
        return fd;
    }
    rv = aegis__fileio_size(io, fd, &size);
    if (rv == 0) {
        rv = aegis__fileio_pread_all(io, fd, header, sizeof(header), 0);
    }
    *why = "header cut short";
    *where = 0;
    if (rv == 0) {
        rv = aegis__snapshot_header_decode(header, sizeof(header), meta_out, &data_len,
                                           &data_crc);
        if (rv != 0) {
            /* Non-NULL exactly when decode refuses (checked by fuzz_snapshot_header). */
            *why = aegis__snapshot_header_check(header, sizeof(header));
        }
    }
    if (rv == 0 && (meta_out->index != want || size != AEGIS_SNAPSHOT_HEADER_BYTES + data_len)) {
        *why = meta_out->index != want ? "header index differs from the file name"
                                       : "file size differs from the header's data length";
        rv = AEGIS_ECORRUPT;
    }
    if (rv == 0 && data_len > 0) {
        data = aegis__buf_create(a, (size_t)data_len);
        rv = data == NULL ? AEGIS_ENOMEM : 0;
        if (rv == 0) {
            rv = aegis__fileio_pread_all(io, fd, data->data, (size_t)data_len,
                                         AEGIS_SNAPSHOT_HEADER_BYTES);
        }
        if (rv == 0 && aegis__crc32c(0, data->data, (size_t)data_len) != data_crc) {
            *why = "data CRC mismatch";
            *where = AEGIS_SNAPSHOT_HEADER_BYTES;
            rv = AEGIS_ECORRUPT;
        }
    } else if (rv == 0 && data_crc != 0) {
        *why = "data CRC set for empty data";
        rv = AEGIS_ECORRUPT;
    }
    aegis__fileio_close(io, fd);
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
        char path[4096];

        const char *why = "";
        uint64_t where = 0;

        snap_path(dir, v[i], "", path, sizeof(path));
        rv = load_one(path, io, a, v[i], meta_out, data_out, &why, &where);
        if (rv == AEGIS_ECORRUPT) {
            /* Skip it: an older valid snapshot may follow, and the log may still cover
             * what it held (segment.c refuses to start when it does not). */
            AEGIS_LOG(AEGIS_LOG_WARN,
                      "snapshot %s (index %llu) is unreadable at byte offset %llu: %s; "
                      "skipped",
                      path, (unsigned long long)v[i], (unsigned long long)where, why);
            rv = 0;
            continue;
        }
        if (rv == 0) {
            *found_out = true;
        }
        break;
    }
    aegis__free(a, v);
    return rv;
}
