/* SPDX-License-Identifier: MIT */
/* Tests of the aegis-log thread end to end through its rings: durable reports in order
 * with batching, hard state and truncation through the ring, power loss at every
 * operation of the shipped io_uring path (fault layer) never losing a reported entry or
 * hard state, write and fdatasync errors (EIO, ENOSPC) reported with file and offset and
 * an intact log, short writes completed, durability "none", snapshots with compaction and
 * a jump past the log. That the power-loss checker catches a broken writer is shown by
 * test_log_writer_bugs.c. */
#include "log_writer_util.h"

static uint32_t count_segments(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    uint32_t n = 0;

    while (d != NULL && (de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);

        n += len > 4 && strcmp(de->d_name + len - 4, ".seg") == 0;
    }
    if (d != NULL) {
        closedir(d);
    }
    return n;
}

TEST(log_writer, end_to_end_batches)
{
    struct fixture fx;
    aegis_index prev = 0;
    char dir[64];
    int rv;

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    rv = fx_open(&fx, dir, NULL, AEGIS_DURABILITY_BATCH, 1 << 20);
    if (rv == AEGIS_ENOSYS || rv == AEGIS_EPERM) {
        util_rmrf(dir);
        SKIP("io_uring unavailable");
    }
    ASSERT_OK(rv);
    ASSERT_EQ_U64(fx.st.entries_count, 0);
    ASSERT_OK(aegis__log_writer_start(fx.w));
    for (aegis_index i = 1; i <= 20000; i += 500) {
        struct aegis_log_report rep;

        fx_push_entries(&fx, i, i + 499, 1 + i / 5000, 128);
        while (aegis__log_writer_pop_sc(fx.w, &rep)) {
            ASSERT_EQ_U64(rep.kind, AEGIS_LOG_REPORT_DURABLE);
            ASSERT_TRUE(rep.index >= prev); /* In order. */
            ASSERT_TRUE(rep.index <= fx.pushed);
            ASSERT_EQ_U64(rep.index, rep.reqs_done); /* One entry per request here. */
            prev = rep.index;
            fx.last = rep;
        }
    }
    ASSERT_TRUE(fx_wait(&fx, fx.pushed));
    ASSERT_FALSE(fx.error);
    ASSERT_EQ_U64(fx.last.index, 20000);
    ASSERT_EQ_U64(fx.last.term, 4);
    /* Group commit: far fewer batches (and syncs) than entries. */
    ASSERT_TRUE(aegis__log_writer_batches(fx.w) < 20000);
    ASSERT_TRUE(aegis__log_writer_syncs(fx.w) < 20000);
    fx_close(&fx);
    ASSERT_TRUE(count_segments(dir) >= 4); /* 3.4 MB in 1 MiB segments. */
    ASSERT_OK(fx_open(&fx, dir, NULL, AEGIS_DURABILITY_BATCH, 1 << 20));
    ASSERT_EQ_U64(fx.st.entries_count, 20000);
    for (uint32_t i = 0; i < 20000; i++) {
        ASSERT_TRUE(util_entry_ok(&fx.st.entries[i], i + 1, 1 + (i + 1 - (i % 500)) / 5000,
                                  128));
    }
    fx_close(&fx);
    util_rmrf(dir);
    return TEST_PASS;
}

static enum test_result hard_state_and_truncation(struct aegis_fileio *io)
{
    struct aegis_log_req req = {.op = AEGIS_LOG_OP_HARD_STATE};
    struct fixture fx;
    char dir[64];

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    ASSERT_OK(fx_open(&fx, dir, io, AEGIS_DURABILITY_BATCH, 1 << 20));
    ASSERT_OK(aegis__log_writer_start(fx.w));
    fx_push_entries(&fx, 1, 10, 1, 50);
    req.hs = (struct aegis_hard_state){.term = 2, .vote = 3, .commit = 5};
    fx_push(&fx, &req);
    ASSERT_TRUE(fx_wait(&fx, fx.pushed));
    ASSERT_EQ_U64(fx.last.index, 10);
    /* A new leader's entries from 6 on: the old suffix goes first. */
    fx_push_entries(&fx, 6, 8, 2, 70);
    ASSERT_TRUE(fx_wait(&fx, fx.pushed));
    ASSERT_EQ_U64(fx.last.index, 8);
    ASSERT_EQ_U64(fx.last.term, 2);
    /* An explicit truncation with nothing after it. */
    req.op = AEGIS_LOG_OP_TRUNCATE;
    req.truncate_from = 8;
    fx_push(&fx, &req);
    ASSERT_TRUE(fx_wait(&fx, fx.pushed));
    ASSERT_EQ_U64(fx.last.index, 7);
    ASSERT_EQ_U64(fx.last.term, 2);
    ASSERT_FALSE(fx.error);
    fx_close(&fx);
    ASSERT_OK(fx_open(&fx, dir, NULL, AEGIS_DURABILITY_BATCH, 1 << 20));
    ASSERT_EQ_U64(fx.st.hs.term, 2);
    ASSERT_EQ_U64(fx.st.hs.vote, 3);
    ASSERT_EQ_U64(fx.st.hs.commit, 5);
    ASSERT_EQ_U64(fx.st.entries_count, 7);
    ASSERT_TRUE(util_entry_ok(&fx.st.entries[4], 5, 1, 50));
    ASSERT_TRUE(util_entry_ok(&fx.st.entries[5], 6, 2, 70));
    ASSERT_TRUE(util_entry_ok(&fx.st.entries[6], 7, 2, 70));
    fx_close(&fx);
    util_rmrf(dir);
    return TEST_PASS;
}

TEST(log_writer, hard_state_and_truncation_uring)
{
    return hard_state_and_truncation(NULL);
}

TEST(log_writer, hard_state_and_truncation_fault_layer)
{
    struct aegis_fileio_fault f;
    enum test_result r;

    aegis__fileio_fault_init(&f); /* No faults: the layer only watches the io_uring path. */
    r = hard_state_and_truncation(&f.base);
    aegis__fileio_fault_close(&f);
    return r;
}

/* The checker of log_writer_util.h at every crash point of the workload, DROP and TEAR,
 * each seed with its own interleaving of the parallel chains and torn prefixes. */
static enum test_result power_loss_every_point(enum aegis_log_sync sync, uint64_t step)
{
    struct pl_params p = {.sync = sync};
    uint64_t ops = 0;
    char why[256];

    ASSERT_EQ_I64(pl_run(&p, why, sizeof(why), &ops), TEST_PASS); /* No crash: count. */
    if (why[0] != '\0') {
        FAIL("no crash: %s", why);
    }
    ASSERT_TRUE(ops > 60);
    for (p.k = 1; p.k <= ops + 1; p.k += step) {
        for (int m = 0; m < 2; m++) {
            p.mode = m == 0 ? AEGIS_FAULT_DROP : AEGIS_FAULT_TEAR;
            p.seed = test_seed() + p.k * 2 + (uint64_t)m;
            ASSERT_EQ_I64(pl_run(&p, why, sizeof(why), NULL), TEST_PASS);
            if (why[0] != '\0') {
                FAIL("crash at op %llu of %llu, %s, seed %llu: %s", (unsigned long long)p.k,
                     (unsigned long long)ops, m == 0 ? "drop" : "tear",
                     (unsigned long long)p.seed, why);
            }
        }
    }
    return TEST_PASS;
}

TEST(log_writer, power_loss_never_loses_reported)
{
    return power_loss_every_point(AEGIS_LOG_SYNC_FDATASYNC, 1);
}

TEST(log_writer, power_loss_never_loses_reported_dsync)
{
    return power_loss_every_point(AEGIS_LOG_SYNC_DSYNC, 3);
}

TEST(log_writer, enospc_reported_log_intact)
{
    struct aegis_fileio_fault f;
    struct fixture fx;
    aegis_index durable;
    char dir[64];

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    aegis__fileio_fault_init(&f);
    ASSERT_OK(fx_open(&fx, dir, &f.base, AEGIS_DURABILITY_BATCH, 1 << 20));
    ASSERT_OK(aegis__log_writer_start(fx.w));
    fx_push_entries(&fx, 1, 50, 1, 100);
    ASSERT_TRUE(fx_wait(&fx, fx.pushed));
    durable = fx.durable;
    ASSERT_EQ_U64(durable, 50);
    /* Safe to change while the thread is idle: its last use of the layer came before the
     * report we popped, and its next one comes after the push below. */
    f.fail_mask = AEGIS_FAULT_OP_WRITE;
    f.fail_err = AEGIS_ENOSPC;
    f.fail_sticky = true;
    f.fail_at = f.matched + 1;
    fx_push_entries(&fx, 51, 60, 1, 100);
    ASSERT_TRUE(fx_wait(&fx, fx.pushed));
    ASSERT_TRUE(fx.error);
    ASSERT_EQ_U64(fx.last.kind, AEGIS_LOG_REPORT_ERROR);
    ASSERT_ERR(fx.last.err, AEGIS_ENOSPC);
    ASSERT_TRUE(strstr(fx.last.file, "00000000000000000001.seg") != NULL);
    ASSERT_EQ_U64(fx.last.offset, 32 + 50 * 140);
    ASSERT_EQ_U64(fx.durable, 50); /* Nothing of the failed batch. */
    /* Failed for good: later requests are dropped and reported with the same error. */
    fx_push_entries(&fx, 61, 61, 1, 100);
    ASSERT_TRUE(fx_wait(&fx, fx.pushed));
    ASSERT_ERR(fx.last.err, AEGIS_ENOSPC);
    fx_close(&fx);
    aegis__fileio_fault_close(&f);
    ASSERT_OK(fx_open(&fx, dir, NULL, AEGIS_DURABILITY_BATCH, 1 << 20));
    ASSERT_EQ_U64(fx.st.entries_count, 50);
    ASSERT_TRUE(util_entry_ok(&fx.st.entries[49], 50, 1, 100));
    fx_close(&fx);
    util_rmrf(dir);
    return TEST_PASS;
}

/* The shipped io_uring path under the fault layer: a write or an fdatasync of the log or of the hard state that fails with @err is reported with the
 * file and the offset, nothing of the batch is durable, the writer stays failed, and the
 * log and hard state on disk are the ones before the batch. @kind: AEGIS_FAULT_OP_WRITE or
 * AEGIS_FAULT_OP_SYNC; @hs: fail the hard state's (a batch holding only a hard state)
 * rather than the log's. */
static enum test_result uring_fault(uint32_t kind, int err, bool hs)
{
    struct aegis_hard_state h1 = {.term = 2, .vote = 1}, h2 = {.term = 3, .vote = 2};
    struct aegis_log_req req = {.op = AEGIS_LOG_OP_HARD_STATE};
    struct aegis_fileio_fault f;
    struct fixture fx;
    char dir[64];

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    aegis__fileio_fault_init(&f);
    ASSERT_OK(fx_open(&fx, dir, &f.base, AEGIS_DURABILITY_BATCH, 1 << 20));
    ASSERT_OK(aegis__log_writer_start(fx.w));
    fx_push_entries(&fx, 1, 50, 1, 100);
    req.hs = h1;
    fx_push(&fx, &req);
    ASSERT_TRUE(fx_wait(&fx, fx.pushed));
    ASSERT_FALSE(fx.error);
    ASSERT_EQ_U64(fx.durable, 50);
    /* The thread is idle: its last use of the layer came before the report we popped. */
    f.fail_mask = kind;
    f.fail_err = err;
    f.fail_at = 1;
    if (hs) {
        req.hs = h2;
        fx_push(&fx, &req);
    } else {
        /* One batch: queued without waking the thread, then one wake. */
        for (aegis_index i = 51; i <= 60; i++) {
            struct aegis_log_req e = {.op = AEGIS_LOG_OP_ENTRY};

            e.entry = util_entry(i, 1, 100);
            ASSERT_TRUE(aegis__log_writer_push_sp_defer(fx.w, &e));
            fx.pushed++;
        }
        aegis__log_writer_flush(fx.w);
    }
    ASSERT_TRUE(fx_wait(&fx, fx.pushed));
    ASSERT_EQ_U64(f.injected, 1);
    ASSERT_TRUE(fx.error);
    ASSERT_EQ_U64(fx.last.kind, AEGIS_LOG_REPORT_ERROR);
    ASSERT_ERR(fx.last.err, err);
    if (hs) {
        ASSERT_TRUE(strstr(fx.last.file, "/hardstate") != NULL);
        ASSERT_EQ_U64(fx.last.offset, 0); /* h1 went to slot 1: h2 was for slot 0. */
    } else {
        ASSERT_TRUE(strstr(fx.last.file, "00000000000000000001.seg") != NULL);
        /* A failed write: where it started; a failed sync: the end of what it covered
         * (all ten records, unless the thread woke between two pushes above). */
        if (kind == AEGIS_FAULT_OP_WRITE) {
            ASSERT_EQ_U64(fx.last.offset, 32 + 50 * 140);
        } else {
            ASSERT_TRUE(fx.last.offset > 32 + 50 * 140 && fx.last.offset <= 32 + 60 * 140);
            ASSERT_EQ_U64((fx.last.offset - 32) % 140, 0);
        }
    }
    ASSERT_EQ_U64(fx.durable, 50);
    /* Failed for good: the next request is dropped and reported with the same error. */
    fx_push_entries(&fx, 61, 61, 1, 100);
    ASSERT_TRUE(fx_wait(&fx, fx.pushed));
    ASSERT_ERR(fx.last.err, err);
    fx_close(&fx);
    aegis__fileio_fault_close(&f);
    ASSERT_OK(fx_open(&fx, dir, NULL, AEGIS_DURABILITY_BATCH, 1 << 20));
    ASSERT_EQ_U64(fx.st.entries_count, 50);
    ASSERT_TRUE(util_entry_ok(&fx.st.entries[49], 50, 1, 100));
    /* The old hard state, or the new one if the failed operation reached the disk after
     * all (an I/O error leaves that unknown): never anything else. Nothing was released
     * on the strength of h2, so either is safe. */
    ASSERT_TRUE((fx.st.hs.term == 2 && fx.st.hs.vote == 1) ||
                (hs && fx.st.hs.term == 3 && fx.st.hs.vote == 2));
    ASSERT_FALSE(fx.st.hs_fallback);
    fx_close(&fx);
    util_rmrf(dir);
    return TEST_PASS;
}

TEST(log_writer, uring_log_write_enospc)
{
    return uring_fault(AEGIS_FAULT_OP_WRITE, AEGIS_ENOSPC, false);
}

TEST(log_writer, uring_log_write_eio)
{
    return uring_fault(AEGIS_FAULT_OP_WRITE, AEGIS_EIO, false);
}

TEST(log_writer, uring_log_fdatasync_eio)
{
    return uring_fault(AEGIS_FAULT_OP_SYNC, AEGIS_EIO, false);
}

TEST(log_writer, uring_log_fdatasync_enospc)
{
    return uring_fault(AEGIS_FAULT_OP_SYNC, AEGIS_ENOSPC, false);
}

TEST(log_writer, uring_hard_state_write_enospc)
{
    return uring_fault(AEGIS_FAULT_OP_WRITE, AEGIS_ENOSPC, true);
}

TEST(log_writer, uring_hard_state_fdatasync_eio)
{
    return uring_fault(AEGIS_FAULT_OP_SYNC, AEGIS_EIO, true);
}

/* A log write that comes back short is completed (the rest written and synced) and the
 * batch reported durable; so is one cut short in the middle of a multi-segment batch. */
TEST(log_writer, uring_short_write_completed)
{
    struct aegis_fileio_fault f;
    struct fixture fx;
    char dir[64];

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    aegis__fileio_fault_init(&f);
    ASSERT_OK(fx_open(&fx, dir, &f.base, AEGIS_DURABILITY_BATCH, 8192));
    ASSERT_OK(aegis__log_writer_start(fx.w));
    fx_push_entries(&fx, 1, 5, 1, 100);
    ASSERT_TRUE(fx_wait(&fx, fx.pushed));
    f.fail_mask = AEGIS_FAULT_OP_WRITE;
    f.fail_short = true;
    f.fail_at = f.matched + 1;
    for (aegis_index i = 6; i <= 200; i++) { /* 195 records of 140 bytes: 4 segments. */
        struct aegis_log_req e = {.op = AEGIS_LOG_OP_ENTRY};

        e.entry = util_entry(i, 1, 100);
        ASSERT_TRUE(aegis__log_writer_push_sp_defer(fx.w, &e));
        fx.pushed++;
    }
    aegis__log_writer_flush(fx.w);
    ASSERT_TRUE(fx_wait(&fx, fx.pushed));
    ASSERT_EQ_U64(f.injected, 1);
    ASSERT_FALSE(fx.error);
    ASSERT_EQ_U64(fx.durable, 200);
    fx_close(&fx);
    /* Everything reported was synced: a power cut now loses nothing. */
    ASSERT_OK(aegis__fileio_fault_powerloss(&f, AEGIS_FAULT_DROP, 1));
    aegis__fileio_fault_close(&f);
    ASSERT_OK(fx_open(&fx, dir, NULL, AEGIS_DURABILITY_BATCH, 8192));
    ASSERT_EQ_U64(fx.st.entries_count, 200);
    for (uint32_t i = 0; i < 200; i++) {
        ASSERT_TRUE(util_entry_ok(&fx.st.entries[i], i + 1, 1, 100));
    }
    fx_close(&fx);
    util_rmrf(dir);
    return TEST_PASS;
}

TEST(log_writer, durability_none)
{
    struct aegis_log_req req = {.op = AEGIS_LOG_OP_HARD_STATE};
    struct fixture fx;
    char dir[64], sub[128];

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    snprintf(sub, sizeof(sub), "%s/none", dir);
    ASSERT_OK(fx_open(&fx, sub, NULL, AEGIS_DURABILITY_NONE, 0));
    ASSERT_OK(aegis__log_writer_start(fx.w));
    fx_push_entries(&fx, 1, 1000, 3, 64);
    fx_push(&fx, &req);
    ASSERT_TRUE(fx_wait(&fx, fx.pushed));
    ASSERT_EQ_U64(fx.last.index, 1000);
    ASSERT_EQ_U64(fx.last.term, 3);
    fx_close(&fx);
    ASSERT_TRUE(access(sub, F_OK) != 0); /* No disk at all. */
    util_rmrf(dir);
    return TEST_PASS;
}

TEST(log_writer, snapshot_compact_and_jump)
{
    struct aegis_snapshot_meta m = {.index = 250, .term = 1};
    struct aegis_log_req req = {.op = AEGIS_LOG_OP_COMPACT};
    struct fixture fx;
    uint32_t before;
    char dir[64];

    m.conf.count = 1;
    m.conf.members[0] = (struct aegis_member){.id = 1, .role = AEGIS_MEMBER_VOTER};
    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    ASSERT_OK(fx_open(&fx, dir, NULL, AEGIS_DURABILITY_BATCH, 16384));
    ASSERT_OK(aegis__log_writer_start(fx.w));
    fx_push_entries(&fx, 1, 300, 1, 100);
    ASSERT_TRUE(fx_wait(&fx, fx.pushed));
    before = count_segments(dir);
    ASSERT_OK(aegis__snapshot_file_write(dir, NULL, &m, "state", 5));
    req.compact_index = 250;
    fx_push(&fx, &req);
    ASSERT_TRUE(fx_wait(&fx, fx.pushed));
    ASSERT_TRUE(count_segments(dir) < before);
    fx_close(&fx);
    ASSERT_OK(fx_open(&fx, dir, NULL, AEGIS_DURABILITY_BATCH, 16384));
    ASSERT_TRUE(fx.st.has_snapshot);
    ASSERT_EQ_U64(fx.st.snapshot_meta.index, 250);
    ASSERT_MEM_EQ(fx.st.snapshot_data->data, "state", 5);
    ASSERT_EQ_U64(fx.st.entries_count, 50);
    ASSERT_TRUE(util_entry_ok(&fx.st.entries[0], 251, 1, 100));
    /* A follower installs a snapshot far past its log, then continues after it. */
    ASSERT_OK(aegis__log_writer_start(fx.w));
    m.index = 1000;
    m.term = 2;
    ASSERT_OK(aegis__snapshot_file_write(dir, NULL, &m, "later", 5));
    req.compact_index = 1000;
    fx_push(&fx, &req);
    fx_push_entries(&fx, 1001, 1010, 2, 30);
    ASSERT_TRUE(fx_wait(&fx, fx.pushed));
    ASSERT_EQ_U64(fx.last.index, 1010);
    fx_close(&fx);
    ASSERT_OK(fx_open(&fx, dir, NULL, AEGIS_DURABILITY_BATCH, 16384));
    ASSERT_EQ_U64(fx.st.snapshot_meta.index, 1000);
    ASSERT_EQ_U64(fx.st.entries_count, 10);
    ASSERT_TRUE(util_entry_ok(&fx.st.entries[9], 1010, 2, 30));
    ASSERT_EQ_U64(fx.st.last_index, 1010);
    fx_close(&fx);
    util_rmrf(dir);
    return TEST_PASS;
}

/* A snapshot that cannot be read: skipped with a warning while the log still covers what
 * it held; once the log was compacted behind it, the start is refused (it used to be
 * dropped silently and the node started with a hole at the front of its log). */
TEST(log_writer, unreadable_snapshot_refused_when_log_no_longer_covers_it)
{
    struct aegis_snapshot_meta m = {.index = 250, .term = 1};
    struct aegis_log_req req = {.op = AEGIS_LOG_OP_COMPACT};
    struct fixture fx;
    char dir[64], path[4096];
    uint8_t *buf;
    size_t len;

    m.conf.count = 1;
    m.conf.members[0] = (struct aegis_member){.id = 1, .role = AEGIS_MEMBER_VOTER};
    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    ASSERT_OK(fx_open(&fx, dir, NULL, AEGIS_DURABILITY_BATCH, 16384));
    ASSERT_OK(aegis__log_writer_start(fx.w));
    fx_push_entries(&fx, 1, 300, 1, 100);
    ASSERT_TRUE(fx_wait(&fx, fx.pushed));
    ASSERT_OK(aegis__snapshot_file_write(dir, NULL, &m, "state", 5));
    /* Damage it before any compaction: the log still starts at 1, so it is only skipped. */
    snprintf(path, sizeof(path), "%s/%020llu.snap", dir, 250ull);
    ASSERT_OK(util_read(path, &buf, &len));
    buf[len - 1] ^= 1; /* The state bytes: data CRC mismatch. */
    ASSERT_OK(util_write(path, buf, len));
    fx_close(&fx);
    ASSERT_OK(fx_open(&fx, dir, NULL, AEGIS_DURABILITY_BATCH, 16384));
    ASSERT_FALSE(fx.st.has_snapshot);
    ASSERT_EQ_U64(fx.st.entries_count, 300);
    fx_close(&fx);
    /* Repair it, compact behind it, then damage it again: refused. */
    buf[len - 1] ^= 1;
    ASSERT_OK(util_write(path, buf, len));
    ASSERT_OK(fx_open(&fx, dir, NULL, AEGIS_DURABILITY_BATCH, 16384));
    ASSERT_TRUE(fx.st.has_snapshot);
    ASSERT_OK(aegis__log_writer_start(fx.w));
    req.compact_index = 250;
    fx_push(&fx, &req);
    ASSERT_TRUE(fx_wait(&fx, fx.pushed));
    fx_close(&fx);
    buf[len - 1] ^= 1;
    ASSERT_OK(util_write(path, buf, len));
    ASSERT_ERR(fx_open(&fx, dir, NULL, AEGIS_DURABILITY_BATCH, 16384), AEGIS_ECORRUPT);
    /* Missing altogether: refused as well. */
    ASSERT_EQ_U64(unlink(path), 0);
    ASSERT_ERR(fx_open(&fx, dir, NULL, AEGIS_DURABILITY_BATCH, 16384), AEGIS_ECORRUPT);
    free(buf);
    util_rmrf(dir);
    return TEST_PASS;
}

/* A corrupt record is refused, and the scan says where: the byte offset of the record and
 * the index expected there, with the reason (the open logs them with the file name). */
TEST(log_writer, corrupt_record_names_offset_and_index)
{
    struct aegis_segment_scan scan;
    struct fixture fx;
    char dir[64], path[4096];
    uint8_t *buf;
    size_t len;

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    ASSERT_OK(fx_open(&fx, dir, NULL, AEGIS_DURABILITY_BATCH, 1 << 20));
    ASSERT_OK(aegis__log_writer_start(fx.w));
    fx_push_entries(&fx, 1, 10, 1, 100);
    ASSERT_TRUE(fx_wait(&fx, fx.pushed));
    fx_close(&fx);
    snprintf(path, sizeof(path), "%s/%020llu.seg", dir, 1ull);
    ASSERT_OK(util_read(path, &buf, &len));
    buf[32 + 4 * 140 + 40 + 10] ^= 0x10; /* The payload of index 5. */
    ASSERT_ERR(aegis__segment_scan(buf, len, 1, 0, &scan, NULL, NULL), AEGIS_ECORRUPT);
    ASSERT_EQ_U64(scan.bad_offset, 32 + 4 * 140);
    ASSERT_EQ_U64(scan.bad_index, 5);
    ASSERT_TRUE(scan.bad_why != NULL && strstr(scan.bad_why, "payload CRC") != NULL);
    ASSERT_OK(util_write(path, buf, len));
    free(buf);
    ASSERT_ERR(fx_open(&fx, dir, NULL, AEGIS_DURABILITY_BATCH, 1 << 20), AEGIS_ECORRUPT);
    util_rmrf(dir);
    return TEST_PASS;
}
