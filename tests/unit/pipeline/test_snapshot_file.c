/* SPDX-License-Identifier: MIT */
/* Tests of snapshot files: round trip of metadata and data, newest valid one loaded,
 * a crash at every step of write-rename-fsync leaves the old or the new snapshot (one
 * chunk and many), every truncation and bit flip of a chunked file is refused with the
 * file and offset named, and version 1 files are still read. */
#include <aegis/error.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>

#include "engine/assert.h"
#include "engine/crc32c.h"
#include "lib/test.h"
#include "pipeline/snapshot_file.h"
#include "util.h"

static struct aegis_snapshot_meta meta_at(aegis_index index)
{
    struct aegis_snapshot_meta m;

    memset(&m, 0, sizeof(m));
    m.index = index;
    m.term = index / 10 + 1;
    m.conf.count = 3;
    for (uint32_t i = 0; i < 3; i++) {
        m.conf.members[i].id = i + 1;
        m.conf.members[i].role = i == 2 ? AEGIS_MEMBER_LEARNER : AEGIS_MEMBER_VOTER;
    }
    return m;
}

static void fill(uint8_t *data, size_t len, aegis_index index)
{
    for (size_t i = 0; i < len; i++) {
        data[i] = util_byte(index, 1, (uint32_t)i);
    }
}

/* True when the loaded snapshot is the one written at @index with @len bytes. */
static bool snap_ok(const struct aegis_snapshot_meta *m, const struct aegis_buf *b,
                    aegis_index index, size_t len)
{
    struct aegis_snapshot_meta want = meta_at(index);

    if (m->index != want.index || m->term != want.term || m->conf.count != 3 ||
        m->conf.members[2].role != AEGIS_MEMBER_LEARNER || m->conf.members[1].id != 2) {
        return false;
    }
    if ((b == NULL ? 0 : b->len) != len) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (b->data[i] != util_byte(index, 1, (uint32_t)i)) {
            return false;
        }
    }
    return true;
}

TEST(snapshot_file, roundtrip_newest_valid)
{
    static uint8_t data[100000];
    struct aegis_snapshot_meta m, got;
    struct aegis_buf *b;
    bool found;
    char dir[64], path[4096];
    uint8_t *raw;
    size_t len;

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    ASSERT_OK(aegis__snapshot_file_load(dir, NULL, NULL, &got, &b, &found));
    ASSERT_FALSE(found);
    m = meta_at(10);
    fill(data, sizeof(data), 10);
    ASSERT_OK(aegis__snapshot_file_write(dir, NULL, &m, data, sizeof(data)));
    ASSERT_OK(aegis__snapshot_file_load(dir, NULL, NULL, &got, &b, &found));
    ASSERT_TRUE(found);
    ASSERT_TRUE(snap_ok(&got, b, 10, sizeof(data)));
    aegis__buf_unref(b);
    /* A newer one replaces it (and the older file is removed). */
    m = meta_at(20);
    fill(data, 500, 20);
    ASSERT_OK(aegis__snapshot_file_write(dir, NULL, &m, data, 500));
    snprintf(path, sizeof(path), "%s/%020llu.snap", dir, 10ull);
    ASSERT_TRUE(access(path, F_OK) != 0);
    ASSERT_OK(aegis__snapshot_file_load(dir, NULL, NULL, &got, &b, &found));
    ASSERT_TRUE(snap_ok(&got, b, 20, 500));
    aegis__buf_unref(b);
    /* Empty data is fine. */
    m = meta_at(30);
    ASSERT_OK(aegis__snapshot_file_write(dir, NULL, &m, NULL, 0));
    ASSERT_OK(aegis__snapshot_file_load(dir, NULL, NULL, &got, &b, &found));
    ASSERT_TRUE(snap_ok(&got, b, 30, 0));
    /* A damaged newest file is skipped for an older valid one. */
    snprintf(path, sizeof(path), "%s/%020llu.snap", dir, 30ull);
    ASSERT_OK(util_read(path, &raw, &len));
    snprintf(path, sizeof(path), "%s/%020llu.snap", dir, 40ull);
    raw[17] = 40; /* Index 40 in the header, name 40: but the CRC no longer matches. */
    ASSERT_OK(util_write(path, raw, len));
    free(raw);
    ASSERT_OK(aegis__snapshot_file_load(dir, NULL, NULL, &got, &b, &found));
    ASSERT_TRUE(found);
    ASSERT_EQ_U64(got.index, 30);
    util_rmrf(dir);
    return TEST_PASS;
}

TEST(snapshot_file, header_decode_rejects_garbage)
{
    uint8_t h[AEGIS_SNAPSHOT_HEADER_BYTES];
    struct aegis_snapshot_meta m = meta_at(5), got;
    uint64_t len;
    uint32_t crc;

    aegis__snapshot_header_encode(&m, 9, 1234, h);
    ASSERT_OK(aegis__snapshot_header_decode(h, sizeof(h), &got, &len, &crc));
    ASSERT_EQ_U64(len, 9);
    ASSERT_EQ_U64(crc, 1234);
    for (size_t i = 0; i < sizeof(h); i += 7) {
        h[i] ^= 0x10;
        ASSERT_ERR(aegis__snapshot_header_decode(h, sizeof(h), &got, &len, &crc), AEGIS_ECORRUPT);
        h[i] ^= 0x10;
    }
    ASSERT_ERR(aegis__snapshot_header_decode(h, 100, &got, &len, &crc), AEGIS_ECORRUPT);
    return TEST_PASS;
}

/* With snapshot 10 in place, write snapshot 20 with the machine dying after op @k. */
static enum test_result crash_once(uint64_t k, enum aegis_fault_powerloss mode, uint64_t seed,
                                   bool *completed_out)
{
    static uint8_t data[3000];
    struct aegis_fileio_fault f;
    struct aegis_snapshot_meta m = meta_at(10), got;
    struct aegis_buf *b;
    bool found;
    char dir[64];
    int rv;

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    fill(data, 2000, 10);
    ASSERT_OK(aegis__snapshot_file_write(dir, NULL, &m, data, 2000));
    aegis__fileio_fault_init(&f);
    f.crash_after = k;
    f.dead = k == 0; /* crash_after 0 means off: dead from the start instead. */
    m = meta_at(20);
    fill(data, 3000, 20);
    rv = aegis__snapshot_file_write(dir, &f.base, &m, data, 3000);
    *completed_out = rv == 0 && !f.dead;
    ASSERT_OK(aegis__fileio_fault_powerloss(&f, mode, seed));
    aegis__fileio_fault_close(&f);
    ASSERT_OK(aegis__snapshot_file_load(dir, NULL, NULL, &got, &b, &found));
    ASSERT_TRUE(found);
    if (rv == 0) {
        /* Reported durable: it must be the new one. */
        ASSERT_TRUE(snap_ok(&got, b, 20, 3000));
    } else if (!snap_ok(&got, b, 10, 2000) && !snap_ok(&got, b, 20, 3000)) {
        FAIL("crash after op %llu: snapshot %llu is neither old nor new",
             (unsigned long long)k, (unsigned long long)got.index);
    }
    aegis__buf_unref(b);
    util_rmrf(dir);
    return TEST_PASS;
}

TEST(snapshot_file, crash_at_every_step)
{
    bool completed = false;
    uint64_t k;

    for (k = 0; !completed && k < 50; k++) {
        for (uint64_t s = 0; s < 8; s++) {
            enum aegis_fault_powerloss mode = s == 0 ? AEGIS_FAULT_DROP : AEGIS_FAULT_TEAR;

            if (crash_once(k, mode, test_seed() + k * 11 + s, &completed) != TEST_PASS) {
                return TEST_FAIL;
            }
        }
    }
    ASSERT_TRUE(completed);
    ASSERT_TRUE(k > 5); /* create, write, sync, rename, dir sync, unlink old, dir sync. */
    return TEST_PASS;
}

TEST(snapshot_file, enospc_keeps_previous)
{
    static uint8_t data[4096];
    struct aegis_fileio_fault f;
    struct aegis_snapshot_meta m = meta_at(10), got;
    struct aegis_buf *b;
    bool found;
    char dir[64];

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    fill(data, sizeof(data), 10);
    ASSERT_OK(aegis__snapshot_file_write(dir, NULL, &m, data, sizeof(data)));
    aegis__fileio_fault_init(&f);
    f.fail_mask = AEGIS_FAULT_OP_WRITE;
    f.fail_err = AEGIS_ENOSPC;
    f.fail_at = 1;
    m = meta_at(20);
    ASSERT_ERR(aegis__snapshot_file_write(dir, &f.base, &m, data, sizeof(data)), AEGIS_ENOSPC);
    aegis__fileio_fault_close(&f);
    ASSERT_OK(aegis__snapshot_file_load(dir, NULL, NULL, &got, &b, &found));
    ASSERT_TRUE(snap_ok(&got, b, 10, sizeof(data)));
    aegis__buf_unref(b);
    util_rmrf(dir);
    return TEST_PASS;
}

/* A snapshot at @index whose @len-byte stream (bytes of util_byte) is written in chunks
 * of @chunk bytes through the streaming writer. */
static int write_chunked_ring(const char *dir, struct aegis_fileio *io, aegis_index index,
                              size_t len, size_t chunk, struct io_uring *ring)
{
    struct aegis_snapshot_meta m = meta_at(index);
    struct aegis_snapshot_out o;
    static uint8_t data[20000];
    int rv;

    AEGIS_ASSERT(len <= sizeof(data));
    fill(data, len, index);
    rv = aegis__snapshot_out_open(&o, dir, io, &m);
    o.ring = ring;
    for (size_t off = 0; rv == 0 && off < len; off += chunk) {
        rv = aegis__snapshot_out_append(&o, data + off, len - off < chunk ? len - off : chunk);
    }
    if (rv == 0) {
        return aegis__snapshot_out_finish(&o, NULL);
    }
    aegis__snapshot_out_abort(&o);
    return rv;
}

static int write_chunked(const char *dir, struct aegis_fileio *io, aegis_index index,
                         size_t len, size_t chunk)
{
    return write_chunked_ring(dir, io, index, len, chunk, NULL);
}

/* Read @path to the end with a reader: 0 or its error; @why_out and @where_out say why. */
static int read_all(const char *path, aegis_index want, char *msg, size_t cap)
{
    struct aegis_snapshot_reader r;
    const uint8_t *p;
    size_t len;
    int rv;

    msg[0] = '\0';
    rv = aegis__snapshot_reader_open(&r, path, NULL, NULL, want);
    if (rv == 0) {
        do {
            rv = aegis__snapshot_reader_next(&r, &p, &len);
        } while (rv == 0 && len > 0);
        aegis__snapshot_reader_close(&r);
    }
    if (rv == AEGIS_ECORRUPT) {
        aegis__snapshot_reader_error(&r, msg, cap);
    }
    return rv;
}

/* Every truncation and every single-bit flip of a chunked snapshot is refused, with a
 * message naming the file and the offset, and the load falls back to the older one. */
TEST(snapshot_file, truncated_and_flipped_refused)
{
    struct aegis_snapshot_meta got;
    struct aegis_buf *b;
    uint8_t *raw;
    size_t len;
    bool found;
    char dir[64], path[4096], msg[4300];
    int fd;

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    ASSERT_OK(write_chunked(dir, NULL, 20, 1000, 100));
    snprintf(path, sizeof(path), "%s/%020llu.snap", dir, 20ull);
    ASSERT_OK(read_all(path, 20, msg, sizeof(msg)));
    ASSERT_OK(util_read(path, &raw, &len));
    ASSERT_EQ_U64(len, 320 + 10 * (8 + 100) + 24);
    /* Keep an older, good snapshot to fall back to. */
    {
        static uint8_t older[500];
        struct aegis_snapshot_meta m = meta_at(10);

        fill(older, sizeof(older), 10);
        ASSERT_OK(aegis__snapshot_file_write(dir, NULL, &m, older, sizeof(older)));
    }
    fd = open(path, O_RDWR);
    ASSERT_TRUE(fd >= 0);
    for (size_t cut = 0; cut < len; cut++) {
        ASSERT_TRUE(ftruncate(fd, (off_t)cut) == 0);
        if (read_all(path, 20, msg, sizeof(msg)) != AEGIS_ECORRUPT) {
            FAIL("file cut at %zu bytes of %zu: accepted", cut, len);
        }
        if (strstr(msg, path) == NULL || strstr(msg, "at byte offset") == NULL) {
            FAIL("cut at %zu: message '%s'", cut, msg);
        }
    }
    ASSERT_TRUE(pwrite(fd, raw, len, 0) == (ssize_t)len);
    for (size_t off = 0; off < len; off++) {
        uint8_t flipped = raw[off] ^ (uint8_t)(1u << (off % 8));

        ASSERT_TRUE(pwrite(fd, &flipped, 1, (off_t)off) == 1);
        if (read_all(path, 20, msg, sizeof(msg)) != AEGIS_ECORRUPT) {
            FAIL("bit %zu of byte %zu flipped: accepted", off % 8, off);
        }
        ASSERT_TRUE(pwrite(fd, &raw[off], 1, (off_t)off) == 1);
    }
    close(fd);
    /* A flipped payload byte is reported at its chunk. */
    raw[320 + 3 * 108 + 8 + 5] ^= 0x40;
    ASSERT_OK(util_write(path, raw, len));
    ASSERT_ERR(read_all(path, 20, msg, sizeof(msg)), AEGIS_ECORRUPT);
    ASSERT_TRUE(strstr(msg, "chunk CRC mismatch at byte offset 644") != NULL);
    /* The node's load skips it for the older snapshot. */
    ASSERT_OK(aegis__snapshot_file_load(dir, NULL, NULL, &got, &b, &found));
    ASSERT_TRUE(found);
    ASSERT_TRUE(snap_ok(&got, b, 10, 500));
    aegis__buf_unref(b);
    free(raw);
    util_rmrf(dir);
    return TEST_PASS;
}

/* With snapshot 10 in place, write snapshot 20 in 8 chunks with the machine dying after
 * op @k: the restart finds the old or the new one, whole. */
static enum test_result crash_chunked_once(uint64_t k, enum aegis_fault_powerloss mode,
                                           uint64_t seed, struct io_uring *ring,
                                           bool *completed_out)
{
    struct aegis_fileio_fault f;
    struct aegis_snapshot_meta got;
    struct aegis_buf *b;
    bool found;
    char dir[64];
    int rv;

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    ASSERT_OK(write_chunked(dir, NULL, 10, 2000, 700));
    aegis__fileio_fault_init(&f);
    f.crash_after = k;
    f.dead = k == 0;
    f.seed = seed;
    f.crash_tear = (seed & 1) != 0;
    rv = write_chunked_ring(dir, &f.base, 20, 4000, 500, ring);
    *completed_out = rv == 0 && !f.dead;
    ASSERT_OK(aegis__fileio_fault_powerloss(&f, mode, seed));
    aegis__fileio_fault_close(&f);
    ASSERT_OK(aegis__snapshot_file_load(dir, NULL, NULL, &got, &b, &found));
    ASSERT_TRUE(found);
    if (rv == 0) {
        ASSERT_TRUE(snap_ok(&got, b, 20, 4000));
    } else if (!snap_ok(&got, b, 10, 2000) && !snap_ok(&got, b, 20, 4000)) {
        FAIL("crash after op %llu: snapshot %llu is neither old nor new",
             (unsigned long long)k, (unsigned long long)got.index);
    }
    aegis__buf_unref(b);
    util_rmrf(dir);
    return TEST_PASS;
}

/* Both write paths: the file layer's pwritev, and the writer thread's io_uring (every SQE
 * shown to the layer, which crashes, drops or tears it). */
static enum test_result crash_chunked_all(struct io_uring *ring)
{
    bool completed = false;
    uint64_t k;

    for (k = 0; !completed && k < 80; k++) {
        for (uint64_t s = 0; s < 6; s++) {
            enum aegis_fault_powerloss mode = s == 0 ? AEGIS_FAULT_DROP : AEGIS_FAULT_TEAR;

            if (crash_chunked_once(k, mode, test_seed() + k * 13 + s, ring, &completed) !=
                TEST_PASS) {
                return TEST_FAIL;
            }
        }
    }
    ASSERT_TRUE(completed);
    /* create, header, 8 chunks, end, header, sync, rename, dir sync, unlink, dir sync. */
    ASSERT_TRUE(k > 15);
    return TEST_PASS;
}

TEST(snapshot_file, chunked_crash_at_every_step)
{
    struct io_uring ring;
    enum test_result r;

    if (crash_chunked_all(NULL) != TEST_PASS) {
        return TEST_FAIL;
    }
    if (io_uring_queue_init(4, &ring, 0) != 0) {
        return TEST_PASS; /* No io_uring here: the pwritev path was checked. */
    }
    r = crash_chunked_all(&ring);
    io_uring_queue_exit(&ring);
    return r;
}

/* A version 1 file (one unchunked block, written by older builds) is still read. */
TEST(snapshot_file, version1_read)
{
    static uint8_t file[320 + 3000];
    struct aegis_snapshot_meta m = meta_at(30), got;
    struct aegis_buf *b;
    bool found;
    char dir[64], path[4096];
    uint32_t crc;

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    fill(file + 320, 3000, 30);
    aegis__snapshot_header_encode(&m, 3000, aegis__crc32c(0, file + 320, 3000), file);
    file[8] = 1; /* Version 1, header CRC made right again. */
    crc = aegis__crc32c(0, file, 316);
    for (int i = 0; i < 4; i++) {
        file[316 + i] = (uint8_t)(crc >> (8 * i));
    }
    snprintf(path, sizeof(path), "%s/%020llu.snap", dir, 30ull);
    ASSERT_OK(util_write(path, file, sizeof(file)));
    ASSERT_OK(aegis__snapshot_file_load(dir, NULL, NULL, &got, &b, &found));
    ASSERT_TRUE(found);
    ASSERT_TRUE(snap_ok(&got, b, 30, 3000));
    aegis__buf_unref(b);
    /* Its data CRC is still checked (at the end of the stream). */
    file[320 + 2500] ^= 1;
    ASSERT_OK(util_write(path, file, sizeof(file)));
    ASSERT_OK(aegis__snapshot_file_load(dir, NULL, NULL, &got, &b, &found));
    ASSERT_FALSE(found);
    util_rmrf(dir);
    return TEST_PASS;
}
