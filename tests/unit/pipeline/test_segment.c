/* SPDX-License-Identifier: MIT */
/* Tests of the segment log: format round trip, torn tails cut at every byte offset, bit
 * flips and gaps reported as corruption, suffix truncation, removal below a snapshot,
 * power loss through the fault layer, ENOSPC and short writes. */
#include <aegis/error.h>
#include <fcntl.h>
#include <stdio.h>

#include "engine/rng.h"
#include "lib/test.h"
#include "pipeline/segment.h"
#include "util.h"

#define SEG_BYTES 16384u

struct loaded {
    struct aegis_entry e[4096];
    uint32_t n;
};

static int load_cb(void *data, const struct aegis_record *rec)
{
    struct loaded *l = data;
    struct aegis_entry *e = &l->e[l->n++];

    e->index = rec->index;
    e->term = rec->term;
    e->type = rec->type;
    e->timestamp = rec->timestamp;
    e->buf = rec->len > 0 ? aegis__buf_from(NULL, rec->payload, rec->len) : NULL;
    return 0;
}

static void loaded_free(struct loaded *l)
{
    util_unref_all(l->e, l->n);
    l->n = 0;
}

static int open_log(struct aegis_seglog *log, const char *dir, struct aegis_fileio *io,
                    aegis_index snap, struct loaded *l)
{
    struct aegis_seglog_config c = {.dir = dir, .segment_bytes = SEG_BYTES, .io = io};

    if (l != NULL) {
        l->n = 0;
    }
    return aegis__seglog_open(log, &c, snap, l != NULL ? load_cb : NULL, l);
}

/* Append entries [from, to] of @term with payloads of @len bytes. */
static int append_range(struct aegis_seglog *log, aegis_index from, aegis_index to,
                        aegis_term term, uint32_t len)
{
    struct aegis_entry e[64];
    int rv = 0;

    while (from <= to && rv == 0) {
        uint32_t n = 0;

        while (n < 64 && from + n <= to) {
            e[n] = util_entry(from + n, term, len);
            n++;
        }
        rv = aegis__seglog_append(log, e, n, NULL);
        util_unref_all(e, n);
        from += n;
    }
    return rv;
}

static char seg_file[4096];

static const char *seg_path(const char *dir, aegis_index first)
{
    char name[AEGIS_SEGMENT_NAME_LEN + 1];

    aegis__segment_name(first, name);
    snprintf(seg_file, sizeof(seg_file), "%s/%s", dir, name);
    return seg_file;
}

TEST(segment, names_and_header)
{
    char name[AEGIS_SEGMENT_NAME_LEN + 1];
    aegis_index first = 0;
    uint8_t h[AEGIS_SEGMENT_HEADER_BYTES];
    struct aegis_segment_scan scan;

    aegis__segment_name(42, name);
    ASSERT_STR_EQ(name, "00000000000000000042.seg");
    ASSERT_TRUE(aegis__segment_parse_name(name, &first));
    ASSERT_EQ_U64(first, 42);
    ASSERT_FALSE(aegis__segment_parse_name("00000000000000000042.sec", &first));
    ASSERT_FALSE(aegis__segment_parse_name("00000000000000000000.seg", &first));
    aegis__segment_header_encode(7, h);
    ASSERT_OK(aegis__segment_scan(h, sizeof(h), 7, 0, &scan, NULL, NULL));
    ASSERT_EQ_U64(scan.first_index, 7);
    ASSERT_EQ_U64(scan.records, 0);
    ASSERT_ERR(aegis__segment_scan(h, sizeof(h), 8, 0, &scan, NULL, NULL), AEGIS_ECORRUPT);
    h[3] ^= 1;
    ASSERT_ERR(aegis__segment_scan(h, sizeof(h), 7, 0, &scan, NULL, NULL), AEGIS_ECORRUPT);
    return TEST_PASS;
}

TEST(segment, append_reopen_roll)
{
    struct aegis_seglog log;
    static struct loaded l;
    char dir[64];

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    ASSERT_OK(open_log(&log, dir, NULL, 0, &l));
    ASSERT_EQ_U64(l.n, 0);
    /* 300 records of 140 bytes in 16 KiB segments: several rolls; one empty payload. */
    ASSERT_OK(append_range(&log, 1, 299, 1, 100));
    ASSERT_OK(append_range(&log, 300, 300, 2, 0));
    ASSERT_TRUE(log.segs_count > 2);
    ASSERT_EQ_U64(log.last_index, 300);
    aegis__seglog_close(&log);
    ASSERT_OK(open_log(&log, dir, NULL, 0, &l));
    ASSERT_EQ_U64(l.n, 300);
    for (uint32_t i = 0; i < 299; i++) {
        ASSERT_TRUE(util_entry_ok(&l.e[i], i + 1, 1, 100));
    }
    ASSERT_TRUE(util_entry_ok(&l.e[299], 300, 2, 0));
    ASSERT_EQ_U64(log.last_term, 2);
    /* Appending after recovery continues the same log. */
    ASSERT_OK(append_range(&log, 301, 310, 2, 10));
    aegis__seglog_close(&log);
    loaded_free(&l);
    ASSERT_OK(open_log(&log, dir, NULL, 0, &l));
    ASSERT_EQ_U64(l.n, 310);
    ASSERT_TRUE(util_entry_ok(&l.e[309], 310, 2, 10));
    aegis__seglog_close(&log);
    loaded_free(&l);
    util_rmrf(dir);
    return TEST_PASS;
}

TEST(segment, torn_tail_every_offset)
{
    struct aegis_seglog log;
    static struct loaded l;
    uint8_t *orig;
    size_t orig_len;
    char dir[64], path[4096];
    uint64_t last_start, last_end;

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    ASSERT_OK(open_log(&log, dir, NULL, 0, NULL));
    ASSERT_OK(append_range(&log, 1, 5, 3, 100));
    last_end = log.end;
    last_start = last_end - (AEGIS_RECORD_HEADER_BYTES + 100);
    aegis__seglog_close(&log);
    snprintf(path, sizeof(path), "%s", seg_path(dir, 1));
    ASSERT_OK(util_read(path, &orig, &orig_len));
    /* Every cut strictly inside the last record, header bytes included. */
    for (uint64_t cut = last_start + 1; cut < last_end; cut++) {
        ASSERT_OK(util_write(path, orig, (size_t)cut));
        ASSERT_OK(open_log(&log, dir, NULL, 0, &l));
        if (l.n != 4) {
            FAIL("cut at %llu: %u records", (unsigned long long)cut, l.n);
        }
        ASSERT_EQ_U64(log.last_index, 4);
        ASSERT_EQ_U64(log.end, last_start);
        for (uint32_t i = 0; i < 4; i++) {
            ASSERT_TRUE(util_entry_ok(&l.e[i], i + 1, 3, 100));
        }
        /* The tail was cut on disk: a new record 5 (another size) reads back. */
        ASSERT_OK(append_range(&log, 5, 5, 4, 33));
        aegis__seglog_close(&log);
        loaded_free(&l);
        ASSERT_OK(open_log(&log, dir, NULL, 0, &l));
        ASSERT_EQ_U64(l.n, 5);
        ASSERT_TRUE(util_entry_ok(&l.e[4], 5, 4, 33));
        aegis__seglog_close(&log);
        loaded_free(&l);
    }
    /* The cut exactly at the record boundary keeps all five. */
    ASSERT_OK(util_write(path, orig, (size_t)last_end));
    ASSERT_OK(open_log(&log, dir, NULL, 0, &l));
    ASSERT_EQ_U64(l.n, 5);
    aegis__seglog_close(&log);
    loaded_free(&l);
    free(orig);
    util_rmrf(dir);
    return TEST_PASS;
}

TEST(segment, torn_sector_zeroed)
{
    struct aegis_seglog log;
    static struct loaded l;
    uint8_t *buf;
    size_t len;
    char dir[64], path[4096];

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    ASSERT_OK(open_log(&log, dir, NULL, 0, NULL));
    ASSERT_OK(append_range(&log, 1, 20, 1, 300)); /* 6800 bytes: sectors 0..13. */
    aegis__seglog_close(&log);
    snprintf(path, sizeof(path), "%s", seg_path(dir, 1));
    ASSERT_OK(util_read(path, &buf, &len));
    /* Sector 12 never reached the disk (zeros), sector 13 did: the record across sector
     * 12 is torn, everything from it on is cut. */
    memset(buf + 12 * 512, 0, 512);
    ASSERT_OK(util_write(path, buf, len));
    ASSERT_OK(open_log(&log, dir, NULL, 0, &l));
    ASSERT_EQ_U64(l.n, (12 * 512 - AEGIS_SEGMENT_HEADER_BYTES) / 340);
    aegis__seglog_close(&log);
    loaded_free(&l);
    free(buf);
    util_rmrf(dir);
    return TEST_PASS;
}

TEST(segment, bit_flips_are_corruption)
{
    struct aegis_seglog log;
    struct aegis_rng rng;
    uint8_t *orig, *buf;
    size_t len;
    char dir[64], path[4096];
    uint64_t end;

    aegis__rng_seed(&rng, test_seed());
    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    ASSERT_OK(open_log(&log, dir, NULL, 0, NULL));
    ASSERT_OK(append_range(&log, 1, 60, 1, 100));
    end = log.end;
    aegis__seglog_close(&log);
    snprintf(path, sizeof(path), "%s", seg_path(dir, 1));
    ASSERT_OK(util_read(path, &orig, &len));
    buf = malloc(len);
    for (int round = 0; round < 150; round++) {
        /* Any bit of records 1..59: the last record's bytes are left alone. */
        uint64_t pos = aegis__rng_range(&rng, AEGIS_SEGMENT_HEADER_BYTES, end - 141);

        memcpy(buf, orig, len);
        buf[pos] ^= (uint8_t)(1u << aegis__rng_range(&rng, 0, 7));
        ASSERT_OK(util_write(path, buf, len));
        if (open_log(&log, dir, NULL, 0, NULL) != AEGIS_ECORRUPT) {
            FAIL("flip at byte %llu not reported as corruption", (unsigned long long)pos);
        }
    }
    /* The segment header too. */
    memcpy(buf, orig, len);
    buf[17] ^= 4;
    ASSERT_OK(util_write(path, buf, len));
    ASSERT_ERR(open_log(&log, dir, NULL, 0, NULL), AEGIS_ECORRUPT);
    /* Untouched, it opens. */
    ASSERT_OK(util_write(path, orig, len));
    ASSERT_OK(open_log(&log, dir, NULL, 0, NULL));
    ASSERT_EQ_U64(log.last_index, 60);
    aegis__seglog_close(&log);
    free(buf);
    free(orig);
    util_rmrf(dir);
    return TEST_PASS;
}

TEST(segment, gap_and_early_tear_are_corruption)
{
    struct aegis_seglog log;
    aegis_index firsts[64];
    uint32_t n;
    char dir[64], path[4096];
    uint8_t *buf;
    size_t len;

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    ASSERT_OK(open_log(&log, dir, NULL, 0, NULL));
    ASSERT_OK(append_range(&log, 1, 400, 1, 100));
    n = log.segs_count;
    ASSERT_TRUE(n >= 4);
    for (uint32_t i = 0; i < n; i++) {
        firsts[i] = log.segs[i].first_index;
    }
    aegis__seglog_close(&log);
    /* A torn record in an earlier segment is corruption, not a tail. */
    snprintf(path, sizeof(path), "%s", seg_path(dir, firsts[1]));
    ASSERT_OK(util_read(path, &buf, &len));
    ASSERT_OK(util_write(path, buf, 1000));
    ASSERT_ERR(open_log(&log, dir, NULL, 0, NULL), AEGIS_ECORRUPT);
    ASSERT_OK(util_write(path, buf, len));
    free(buf);
    ASSERT_OK(open_log(&log, dir, NULL, 0, NULL));
    aegis__seglog_close(&log);
    /* A missing segment in the middle is a gap. */
    ASSERT_EQ_I64(unlink(seg_path(dir, firsts[2])), 0);
    ASSERT_ERR(open_log(&log, dir, NULL, 0, NULL), AEGIS_ECORRUPT);
    util_rmrf(dir);
    return TEST_PASS;
}

TEST(segment, truncate_suffix)
{
    struct aegis_seglog log;
    static struct loaded l;
    char dir[64];

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    ASSERT_OK(open_log(&log, dir, NULL, 0, NULL));
    ASSERT_OK(append_range(&log, 1, 400, 1, 100));
    /* Into an earlier segment: the later ones go, the cut one is cut. */
    ASSERT_OK(aegis__seglog_truncate(&log, 150));
    ASSERT_EQ_U64(log.last_index, 149);
    ASSERT_EQ_U64(log.last_term, 1);
    ASSERT_OK(append_range(&log, 150, 160, 2, 50));
    aegis__seglog_close(&log);
    ASSERT_OK(open_log(&log, dir, NULL, 0, &l));
    ASSERT_EQ_U64(l.n, 160);
    ASSERT_TRUE(util_entry_ok(&l.e[148], 149, 1, 100));
    ASSERT_TRUE(util_entry_ok(&l.e[149], 150, 2, 50));
    ASSERT_TRUE(util_entry_ok(&l.e[159], 160, 2, 50));
    loaded_free(&l);
    /* At a segment's first index, and past the end (a no-op). */
    ASSERT_OK(aegis__seglog_truncate(&log, log.segs[1].first_index));
    ASSERT_EQ_U64(log.last_index, log.segs[0].last_index);
    ASSERT_OK(aegis__seglog_truncate(&log, 1000));
    /* Everything. */
    ASSERT_OK(aegis__seglog_truncate(&log, 1));
    ASSERT_EQ_U64(log.last_index, 0);
    ASSERT_OK(append_range(&log, 1, 3, 5, 7));
    aegis__seglog_close(&log);
    ASSERT_OK(open_log(&log, dir, NULL, 0, &l));
    ASSERT_EQ_U64(l.n, 3);
    ASSERT_TRUE(util_entry_ok(&l.e[2], 3, 5, 7));
    aegis__seglog_close(&log);
    loaded_free(&l);
    util_rmrf(dir);
    return TEST_PASS;
}

TEST(segment, compact_below_snapshot)
{
    struct aegis_seglog log;
    static struct loaded l;
    uint32_t before;
    char dir[64];

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    ASSERT_OK(open_log(&log, dir, NULL, 0, NULL));
    ASSERT_OK(append_range(&log, 1, 400, 1, 100));
    before = log.segs_count;
    ASSERT_OK(aegis__seglog_compact(&log, 250));
    ASSERT_TRUE(log.segs_count < before);
    ASSERT_TRUE(log.segs[0].first_index <= 251);
    aegis__seglog_close(&log);
    /* With the snapshot at 250, entries from 251 are loaded. */
    ASSERT_OK(open_log(&log, dir, NULL, 250, &l));
    ASSERT_EQ_U64(l.n, 150);
    ASSERT_TRUE(util_entry_ok(&l.e[0], 251, 1, 100));
    aegis__seglog_close(&log);
    loaded_free(&l);
    /* A snapshot past the whole log: the log restarts after it. */
    ASSERT_OK(open_log(&log, dir, NULL, 500, &l));
    ASSERT_EQ_U64(l.n, 0);
    ASSERT_EQ_U64(log.segs_count, 0);
    ASSERT_EQ_U64(log.last_index, 500);
    ASSERT_OK(append_range(&log, 501, 502, 2, 9));
    aegis__seglog_close(&log);
    ASSERT_OK(open_log(&log, dir, NULL, 500, &l));
    ASSERT_EQ_U64(l.n, 2);
    aegis__seglog_close(&log);
    loaded_free(&l);
    /* A snapshot below the log's start with a gap after it is corruption. */
    ASSERT_ERR(open_log(&log, dir, NULL, 100, NULL), AEGIS_ECORRUPT);
    util_rmrf(dir);
    return TEST_PASS;
}

/* Power loss: batches through the fault layer until the machine dies at op @k; after the
 * power cut every batch whose append returned 0 must be there, intact. */
static enum test_result powerloss_once(uint64_t k, enum aegis_fault_powerloss mode,
                                       uint64_t seed)
{
    struct aegis_fileio_fault f;
    struct aegis_seglog log;
    static struct loaded l;
    aegis_index durable = 0, next = 1;
    char dir[64];
    int rv;

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    aegis__fileio_fault_init(&f);
    ASSERT_OK(open_log(&log, dir, &f.base, 0, NULL));
    f.crash_after = f.ops + k;
    for (int batch = 0; batch < 40; batch++) {
        uint32_t n = (uint32_t)(batch % 7) + 1;

        rv = append_range(&log, next, next + n - 1, 1 + (aegis_term)batch / 10, 120);
        if (rv != 0) {
            break;
        }
        next += n;
        durable = next - 1;
    }
    aegis__seglog_close(&log);
    ASSERT_OK(aegis__fileio_fault_powerloss(&f, mode, seed));
    aegis__fileio_fault_close(&f);
    rv = open_log(&log, dir, NULL, 0, &l);
    if (rv != 0) {
        FAIL("crash at op %llu (mode %d seed %llu): open: %s", (unsigned long long)k, mode,
             (unsigned long long)seed, test_err_name(rv));
    }
    if (l.n < durable) {
        FAIL("crash at op %llu: %u records recovered, %llu were durable",
             (unsigned long long)k, l.n, (unsigned long long)durable);
    }
    for (uint32_t i = 0; i < l.n; i++) {
        ASSERT_TRUE(util_entry_ok(&l.e[i], i + 1, l.e[i].term, 120));
    }
    aegis__seglog_close(&log);
    loaded_free(&l);
    util_rmrf(dir);
    return TEST_PASS;
}

TEST(segment, power_loss_never_loses_durable)
{
    for (uint64_t k = 0; k < 120; k++) {
        if (powerloss_once(k, AEGIS_FAULT_DROP, k) != TEST_PASS) {
            return TEST_FAIL;
        }
        for (uint64_t s = 0; s < 3; s++) {
            if (powerloss_once(k, AEGIS_FAULT_TEAR, test_seed() + k * 7 + s) != TEST_PASS) {
                return TEST_FAIL;
            }
        }
    }
    return TEST_PASS;
}

TEST(segment, enospc_leaves_log_intact)
{
    struct aegis_fileio_fault f;
    struct aegis_seglog log;
    static struct loaded l;
    struct aegis_entry e[8];
    uint64_t where = 0;
    char dir[64];

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    aegis__fileio_fault_init(&f);
    ASSERT_OK(open_log(&log, dir, &f.base, 0, NULL));
    ASSERT_OK(append_range(&log, 1, 10, 1, 100));
    f.fail_mask = AEGIS_FAULT_OP_WRITE;
    f.fail_err = AEGIS_ENOSPC;
    f.fail_at = 1;
    for (uint32_t i = 0; i < 8; i++) {
        e[i] = util_entry(11 + i, 1, 100);
    }
    ASSERT_ERR(aegis__seglog_append(&log, e, 8, &where), AEGIS_ENOSPC);
    ASSERT_EQ_U64(where, log.end);
    ASSERT_EQ_U64(log.last_index, 10);
    /* Short writes are completed, not treated as durable halves. */
    f.fail_mask = AEGIS_FAULT_OP_WRITE;
    f.fail_short = true;
    f.fail_at = f.matched + 1;
    ASSERT_OK(aegis__seglog_append(&log, e, 8, &where));
    ASSERT_EQ_U64(f.injected, 2);
    util_unref_all(e, 8);
    aegis__seglog_close(&log);
    aegis__fileio_fault_close(&f);
    ASSERT_OK(open_log(&log, dir, NULL, 0, &l));
    ASSERT_EQ_U64(l.n, 18);
    for (uint32_t i = 0; i < 18; i++) {
        ASSERT_TRUE(util_entry_ok(&l.e[i], i + 1, 1, 100));
    }
    aegis__seglog_close(&log);
    loaded_free(&l);
    util_rmrf(dir);
    return TEST_PASS;
}

TEST(segment, enospc_mid_write_then_crash)
{
    struct aegis_fileio_fault f;
    struct aegis_seglog log;
    static struct loaded l;
    struct aegis_entry e[8];
    char dir[64];

    /* A write cut short by a full disk, then the machine dies before the repair: the
     * partial record must be cut as a torn tail, never taken for data. */
    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    aegis__fileio_fault_init(&f);
    ASSERT_OK(open_log(&log, dir, &f.base, 0, NULL));
    ASSERT_OK(append_range(&log, 1, 10, 1, 100));
    f.fail_mask = AEGIS_FAULT_OP_WRITE;
    f.fail_short = true;
    f.fail_at = 1;
    f.crash_after = f.ops + 1; /* The short write itself happens; nothing after. */
    for (uint32_t i = 0; i < 7; i++) {
        e[i] = util_entry(11 + i, 1, 1000);
    }
    ASSERT_ERR(aegis__seglog_append(&log, e, 7, NULL), AEGIS_EIO);
    util_unref_all(e, 7);
    aegis__seglog_close(&log);
    /* A process crash, not a power cut: whatever was written stays. */
    aegis__fileio_fault_close(&f);
    ASSERT_OK(open_log(&log, dir, NULL, 0, &l));
    ASSERT_EQ_U64(l.n, 13); /* Half of 7 records of 1040 bytes: 3 complete ones. */
    for (uint32_t i = 0; i < l.n; i++) {
        ASSERT_TRUE(util_entry_ok(&l.e[i], i + 1, 1, i < 10 ? 100 : 1000));
    }
    aegis__seglog_close(&log);
    loaded_free(&l);
    util_rmrf(dir);
    return TEST_PASS;
}

TEST(segment, one_batch_spans_segments)
{
    static struct aegis_entry e[200];
    struct aegis_seglog log;
    static struct loaded l;
    char dir[64];

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    ASSERT_OK(open_log(&log, dir, NULL, 0, NULL));
    for (uint32_t i = 0; i < 200; i++) {
        e[i] = util_entry(i + 1, 1, 100);
    }
    ASSERT_OK(aegis__seglog_append(&log, e, 200, NULL));
    util_unref_all(e, 200);
    /* 28000 bytes of records never go into one 16 KiB segment. */
    ASSERT_TRUE(log.segs_count >= 2);
    for (uint32_t i = 0; i + 1 < log.segs_count; i++) {
        uint64_t records = log.segs[i].last_index - log.segs[i].first_index + 1;

        ASSERT_TRUE(AEGIS_SEGMENT_HEADER_BYTES + records * 140 <= SEG_BYTES);
    }
    aegis__seglog_close(&log);
    ASSERT_OK(open_log(&log, dir, NULL, 0, &l));
    ASSERT_EQ_U64(l.n, 200);
    aegis__seglog_close(&log);
    loaded_free(&l);
    util_rmrf(dir);
    return TEST_PASS;
}
