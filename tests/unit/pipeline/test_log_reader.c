/* SPDX-License-Identifier: MIT */
/* The segment read path behind the log reader (segment.h, struct aegis_segment_reader):
 * ranges read back across segment boundaries with the right contents, consecutive reads
 * continuing from the cursor, limits, deleted segments reported as compacted, and every
 * kind of damage (payload bit flip, header bit flip, cut file, bad segment header,
 * record out of sequence) refused as AEGIS_ECORRUPT with where and why, never a crash.
 * Also retention of segments behind a snapshot (aegis__seglog_retain). */
#include <aegis/error.h>
#include <fcntl.h>
#include <stdio.h>

#include "lib/test.h"
#include "pipeline/segment.h"
#include "util.h"

#define SEG_BYTES 4096u
#define LEN 100u /* 140-byte records: 28 per 4 KiB segment. */
#define COUNT 300u

static int make_log(struct aegis_seglog *log, const char *dir)
{
    struct aegis_seglog_config c = {.dir = dir, .segment_bytes = SEG_BYTES};
    struct aegis_entry e[50];
    int rv = aegis__seglog_open(log, &c, 0, NULL, NULL);

    for (aegis_index from = 1; rv == 0 && from <= COUNT; from += 50) {
        for (uint32_t i = 0; i < 50; i++) {
            e[i] = util_entry(from + i, 1 + (from + i) / 100, LEN);
        }
        rv = aegis__seglog_append(log, e, 50, NULL);
        util_unref_all(e, 50);
    }
    return rv;
}

static char path_buf[4200];

static const char *seg_path(const char *dir, aegis_index first)
{
    char name[AEGIS_SEGMENT_NAME_LEN + 1];

    aegis__segment_name(first, name);
    snprintf(path_buf, sizeof(path_buf), "%s/%s", dir, name);
    return path_buf;
}

/* Check that @n entries from @from read back with their contents. */
static bool range_ok(const struct aegis_entry *out, uint32_t n, aegis_index from)
{
    for (uint32_t i = 0; i < n; i++) {
        aegis_index idx = from + i;

        if (!util_entry_ok(&out[i], idx, 1 + idx / 100, LEN)) {
            return false;
        }
    }
    return true;
}

static void flip_byte(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    uint8_t b;

    if (fd < 0 || pread(fd, &b, 1, off) != 1) {
        abort();
    }
    b ^= 0x10;
    if (pwrite(fd, &b, 1, off) != 1) {
        abort();
    }
    close(fd);
}

TEST(log_reader, ranges_across_segments)
{
    struct aegis_seglog log;
    struct aegis_segment_reader rd;
    static struct aegis_entry out[COUNT];
    char dir[64];
    uint32_t n;

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    ASSERT_OK(make_log(&log, dir));
    ASSERT_TRUE(log.segs_count > 8);
    aegis__segment_reader_init(&rd, dir, NULL);
    /* Everything at once: crosses every segment boundary. */
    ASSERT_OK(aegis__segment_reader_read(&rd, 1, COUNT, UINT64_MAX, out, &n));
    ASSERT_EQ_U64(n, COUNT);
    ASSERT_TRUE(range_ok(out, n, 1));
    util_unref_all(out, n);
    /* Consecutive ranges continue from the cursor, each stopping at its limits. */
    for (aegis_index from = 5; from <= COUNT; from += n) {
        ASSERT_OK(aegis__segment_reader_read(&rd, from, 17, 10 * LEN, out, &n));
        ASSERT_EQ_U64(n, from + 10 <= COUNT + 1 ? 10 : COUNT + 1 - from); /* Bytes first. */
        ASSERT_TRUE(range_ok(out, n, from));
        util_unref_all(out, n);
    }
    /* Backwards, and at least one entry even when it alone passes the byte limit. */
    ASSERT_OK(aegis__segment_reader_read(&rd, 29, 3, 1, out, &n));
    ASSERT_EQ_U64(n, 1);
    ASSERT_TRUE(range_ok(out, 1, 29));
    util_unref_all(out, n);
    /* Past the end: nothing to read. */
    ASSERT_ERR(aegis__segment_reader_read(&rd, COUNT + 1, 3, UINT64_MAX, out, &n),
               AEGIS_ECOMPACTED);
    ASSERT_EQ_U64(n, 0);
    /* Retention keeps segments behind a snapshot up to its bound, oldest go first. */
    ASSERT_OK(aegis__seglog_retain(&log, 200, 3 * SEG_BYTES));
    ASSERT_EQ_U64(aegis__seglog_retained_bytes(&log), 3 * SEG_BYTES);
    ASSERT_TRUE(log.segs[0].first_index > 1 && log.segs[0].first_index <= 200);
    ASSERT_ERR(aegis__segment_reader_read(&rd, 1, 3, UINT64_MAX, out, &n), AEGIS_ECOMPACTED);
    ASSERT_OK(aegis__segment_reader_read(&rd, log.segs[0].first_index, 3, UINT64_MAX, out, &n));
    ASSERT_TRUE(range_ok(out, n, log.segs[0].first_index));
    util_unref_all(out, n);
    ASSERT_OK(aegis__seglog_retain(&log, 200, 0));
    ASSERT_EQ_U64(aegis__seglog_retained_bytes(&log), 0);
    ASSERT_TRUE(log.segs[0].first_index <= 201 && log.segs[0].last_index > 200);
    aegis__segment_reader_close(&rd);
    aegis__seglog_close(&log);
    util_rmrf(dir);
    return TEST_PASS;
}

/* Damage @what in the second segment and read a range across it. */
static int read_damaged(int what, const char **why_out)
{
    struct aegis_seglog log;
    struct aegis_segment_reader rd;
    static struct aegis_entry out[COUNT];
    char dir[64];
    aegis_index second;
    uint32_t n = 99;
    int rv;

    if (util_tmpdir(dir) == NULL || make_log(&log, dir) != 0) {
        return AEGIS_EIO;
    }
    second = log.segs[1].first_index;
    aegis__seglog_close(&log);
    switch (what) {
    case 0: /* A payload bit of the segment's third record. */
        flip_byte(seg_path(dir, second), 32 + 2 * (40 + LEN) + 40 + 7);
        break;
    case 1: /* A record header bit (its term). */
        flip_byte(seg_path(dir, second), 32 + 2 * (40 + LEN) + 9);
        break;
    case 2: /* The segment header. */
        flip_byte(seg_path(dir, second), 3);
        break;
    case 3: /* The file cut in the middle of its third record. */
        if (truncate(seg_path(dir, second), 32 + 2 * (40 + LEN) + 60) != 0) {
            return AEGIS_EIO;
        }
        break;
    default: /* The index of the third record changed, header CRC recomputed: a gap. */
    {
        int fd = open(seg_path(dir, second), O_RDWR);
        struct aegis_entry e = util_entry(second + 5, 1 + (second + 2) / 100, LEN);
        uint8_t h[40];

        aegis__record_header_encode(&e, h);
        aegis__entry_unref(&e);
        if (fd < 0 || pwrite(fd, h, 40, 32 + 2 * (40 + LEN)) != 40) {
            return AEGIS_EIO;
        }
        close(fd);
    }
    }
    aegis__segment_reader_init(&rd, dir, NULL);
    rv = aegis__segment_reader_read(&rd, second - 3, 20, UINT64_MAX, out, &n);
    *why_out = rd.why;
    if (rv == AEGIS_ECORRUPT && (n != 0 || strstr(rd.path, dir) == NULL)) {
        rv = AEGIS_EINTERNAL; /* Must say where, and hand out nothing. */
    }
    if (rv == 0) {
        util_unref_all(out, n);
    }
    aegis__segment_reader_close(&rd);
    util_rmrf(dir);
    return rv;
}

TEST(log_reader, damage_is_refused_with_where_and_why)
{
    for (int what = 0; what < 5; what++) {
        const char *why = NULL;

        ASSERT_ERR(read_damaged(what, &why), AEGIS_ECORRUPT);
        ASSERT_TRUE(why != NULL);
        fprintf(stderr, "  damage %d: %s\n", what, why);
    }
    return TEST_PASS;
}

TEST(log_reader, deleted_segment_reads_as_compacted)
{
    struct aegis_seglog log;
    struct aegis_segment_reader rd;
    static struct aegis_entry out[COUNT];
    char dir[64];
    uint32_t n;

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    ASSERT_OK(make_log(&log, dir));
    aegis__segment_reader_init(&rd, dir, NULL);
    ASSERT_OK(aegis__segment_reader_read(&rd, 1, 2, UINT64_MAX, out, &n));
    util_unref_all(out, n);
    /* The open segment deleted under the reader still reads (an open file descriptor);
     * a range in a segment deleted before it was opened is compacted. */
    ASSERT_EQ_U64(unlink(seg_path(dir, 1)), 0);
    ASSERT_OK(aegis__segment_reader_read(&rd, 3, 2, UINT64_MAX, out, &n));
    ASSERT_TRUE(range_ok(out, n, 3));
    util_unref_all(out, n);
    ASSERT_EQ_U64(unlink(seg_path(dir, log.segs[1].first_index)), 0);
    ASSERT_ERR(aegis__segment_reader_read(&rd, log.segs[1].first_index + 1, 2, UINT64_MAX, out,
                                          &n),
               AEGIS_ECOMPACTED);
    aegis__segment_reader_close(&rd);
    aegis__seglog_close(&log);
    util_rmrf(dir);
    return TEST_PASS;
}
