/* SPDX-License-Identifier: MIT */
/* Tests of receiving a snapshot through files (pipeline/snap_transfer.h): the log
 * thread's steps (OPEN, CHUNK, VERIFY, COMMIT) turn the leader's file bytes into the same
 * snapshot file; a truncated or bit-flipped file is refused and removed; a crash (power
 * cut, dropped or torn) at every step of receiving and installing leaves the old snapshot
 * or the new one, and the transfer then resumes from the partial file (or starts again
 * when the file is refused) and completes; a restarted node finds its partial file and
 * resumes there. */
#include <aegis/error.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "lib/test.h"
#include "log_writer_util.h"
#include "pipeline/node_int.h"
#include "pipeline/snap_transfer.h"
#include "pipeline/snapshot_file.h"
#include "util.h"

#define DATA_BYTES 5000u
#define CHUNK 700u

static struct aegis_snapshot_meta meta_at(aegis_index index)
{
    struct aegis_snapshot_meta m;

    memset(&m, 0, sizeof(m));
    m.index = index;
    m.term = 3;
    m.conf.count = 1;
    m.conf.members[0] = (struct aegis_member){1, AEGIS_MEMBER_VOTER};
    return m;
}

/* The leader's snapshot file for @index, as bytes (what the core streams). */
static struct aegis_buf *leader_file(aegis_index index, size_t data_len)
{
    static uint8_t data[DATA_BYTES];
    struct aegis_snapshot_meta m = meta_at(index);
    struct aegis_buf *file;
    char dir[64], path[128];
    struct stat st;
    int fd;

    for (size_t i = 0; i < data_len; i++) {
        data[i] = util_byte(index, 3, (uint32_t)i);
    }
    if (util_tmpdir(dir) == NULL ||
        aegis__snapshot_file_write(dir, NULL, &m, data, data_len) != 0) {
        return NULL;
    }
    snprintf(path, sizeof(path), "%s/%020llu.snap", dir, (unsigned long long)index);
    fd = open(path, O_RDONLY);
    if (fd < 0 || fstat(fd, &st) != 0) {
        return NULL;
    }
    file = aegis__buf_create(NULL, (size_t)st.st_size);
    if (aegis__fileio_pread_all(NULL, fd, file->data, file->len, 0) != 0) {
        aegis__buf_unref(file);
        file = NULL;
    }
    close(fd);
    util_rmrf(dir);
    return file;
}

static struct aegis_snap_step step_of(uint8_t kind, aegis_index index, uint64_t total)
{
    struct aegis_snap_step s;

    memset(&s, 0, sizeof(s));
    s.kind = kind;
    s.meta = meta_at(index);
    s.leader = 7;
    s.total = total;
    return s;
}

/* Write the chunks of @file from @from on, into the offer of @total bytes. Returns 0 or
 * the first step's error. */
static int write_chunks_of(const char *dir, struct aegis_fileio *io,
                           const struct aegis_buf *file, aegis_index index, uint64_t from,
                           uint64_t total)
{
    for (uint64_t off = from; off < file->len; off += CHUNK) {
        struct aegis_snap_step s = step_of(AEGIS_SNAP_STEP_CHUNK, index, total);
        uint64_t len = file->len - off < CHUNK ? file->len - off : CHUNK;
        int rv;

        s.offset = off;
        s.chunk = aegis__buf_from(NULL, file->data + off, (size_t)len);
        rv = aegis__snap_step_run(dir, io, &s, NULL);
        aegis__buf_unref(s.chunk);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

static int write_chunks(const char *dir, struct aegis_fileio *io, const struct aegis_buf *file,
                        aegis_index index, uint64_t from)
{
    return write_chunks_of(dir, io, file, index, from, file->len);
}

static int run_kind(const char *dir, struct aegis_fileio *io, uint8_t kind, aegis_index index,
                    uint64_t total, int *verdict)
{
    struct aegis_snap_step s = step_of(kind, index, total);
    int unused = 0;

    return aegis__snap_step_run(dir, io, &s, verdict != NULL ? verdict : &unused);
}

/* The whole receive: OPEN, chunks, VERIFY, COMMIT. Returns 0, a step's error, or the
 * verdict. */
static int receive(const char *dir, struct aegis_fileio *io, const struct aegis_buf *file,
                   aegis_index index)
{
    int verdict = 0;
    int rv = run_kind(dir, io, AEGIS_SNAP_STEP_OPEN, index, file->len, NULL);

    rv = rv != 0 ? rv : write_chunks(dir, io, file, index, 0);
    rv = rv != 0 ? rv : run_kind(dir, io, AEGIS_SNAP_STEP_VERIFY, index, file->len, &verdict);
    rv = rv != 0 ? rv : verdict;
    return rv != 0 ? rv : run_kind(dir, io, AEGIS_SNAP_STEP_COMMIT, index, file->len, NULL);
}

/* Whether @dir's newest snapshot is @index with the leader_file data of @len bytes. */
static bool loads(const char *dir, aegis_index index, size_t len)
{
    struct aegis_snapshot_meta got;
    struct aegis_buf *b = NULL;
    bool found = false, ok;

    if (aegis__snapshot_file_load(dir, NULL, NULL, &got, &b, &found) != 0 || !found) {
        return false;
    }
    ok = got.index == index && b != NULL && b->len == len;
    for (size_t i = 0; ok && i < len; i++) {
        ok = b->data[i] == util_byte(index, 3, (uint32_t)i);
    }
    aegis__buf_unref(b);
    return ok;
}

static uint64_t recv_size(const char *dir, aegis_index index, uint64_t total, bool *exists)
{
    char path[160];
    struct stat st;

    snprintf(path, sizeof(path), "%s/snap-%llu-3-7-%llu.recv", dir, (unsigned long long)index,
             (unsigned long long)total);
    *exists = stat(path, &st) == 0;
    return *exists ? (uint64_t)st.st_size : 0;
}

TEST(snap_transfer, steps_rebuild_the_leader_file)
{
    struct aegis_buf *file = leader_file(31, DATA_BYTES);
    bool exists;
    char dir[64];

    ASSERT_TRUE(file != NULL);
    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    ASSERT_OK(receive(dir, NULL, file, 31));
    ASSERT_TRUE(loads(dir, 31, DATA_BYTES));
    recv_size(dir, 31, file->len, &exists);
    ASSERT_FALSE(exists); /* Renamed. */
    aegis__buf_unref(file);
    util_rmrf(dir);
    return TEST_PASS;
}

TEST(snap_transfer, verify_refuses_truncated_and_flipped_files)
{
    struct aegis_buf *file = leader_file(31, DATA_BYTES);
    struct aegis_buf *bad;
    bool exists;
    int verdict = 0;
    char dir[64];

    ASSERT_TRUE(file != NULL);
    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    /* Truncated: the last chunk never came (a leader claiming done early). */
    ASSERT_OK(run_kind(dir, NULL, AEGIS_SNAP_STEP_OPEN, 31, file->len, NULL));
    bad = aegis__buf_from(NULL, file->data, file->len - 10);
    ASSERT_OK(write_chunks_of(dir, NULL, bad, 31, 0, file->len));
    ASSERT_OK(run_kind(dir, NULL, AEGIS_SNAP_STEP_VERIFY, 31, file->len, &verdict));
    ASSERT_ERR(verdict, AEGIS_ECORRUPT);
    recv_size(dir, 31, file->len, &exists);
    ASSERT_FALSE(exists); /* Removed: the next offer starts from 0. */
    aegis__buf_unref(bad);
    /* One bit flipped in the data, and one in the header. */
    for (size_t at = 0; at < 2; at++) {
        size_t pos = at == 0 ? file->len - 100 : 20;

        bad = aegis__buf_from(NULL, file->data, file->len);
        bad->data[pos] ^= 0x04;
        ASSERT_OK(run_kind(dir, NULL, AEGIS_SNAP_STEP_OPEN, 31, file->len, NULL));
        ASSERT_OK(write_chunks(dir, NULL, bad, 31, 0));
        ASSERT_OK(run_kind(dir, NULL, AEGIS_SNAP_STEP_VERIFY, 31, file->len, &verdict));
        ASSERT_ERR(verdict, AEGIS_ECORRUPT);
        recv_size(dir, 31, file->len, &exists);
        ASSERT_FALSE(exists);
        aegis__buf_unref(bad);
    }
    /* A good one still goes through, and the refusals left nothing behind. */
    ASSERT_OK(receive(dir, NULL, file, 31));
    ASSERT_TRUE(loads(dir, 31, DATA_BYTES));
    aegis__buf_unref(file);
    util_rmrf(dir);
    return TEST_PASS;
}

/* With snapshot 10 in place, receive snapshot 31 with the machine dying after op @k and a
 * power cut; then restart: the newest snapshot is 10 or 31, intact; resume from the
 * partial file (the bytes it holds), or start again when it is refused, and finish. */
static enum test_result crash_once(const struct aegis_buf *old, const struct aegis_buf *file,
                                   uint64_t k, enum aegis_fault_powerloss mode, uint64_t seed,
                                   bool *completed_out, bool *resumed_out)
{
    struct aegis_fileio_fault f;
    uint64_t have;
    bool exists;
    int rv, verdict = 0;
    char dir[64];

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    ASSERT_OK(receive(dir, NULL, old, 10));
    aegis__fileio_fault_init(&f);
    f.crash_after = k;
    f.dead = k == 0;
    rv = receive(dir, &f.base, file, 31);
    *completed_out = rv == 0 && !f.dead;
    ASSERT_OK(aegis__fileio_fault_powerloss(&f, mode, seed));
    aegis__fileio_fault_close(&f);
    if (rv == 0) {
        ASSERT_TRUE(loads(dir, 31, DATA_BYTES)); /* Reported committed: the new one. */
    } else if (!loads(dir, 10, 2000) && !loads(dir, 31, DATA_BYTES)) {
        FAIL("crash after op %llu: the snapshot is neither the old nor the new one",
             (unsigned long long)k);
    }
    /* Restart: what snap_transfer_init finds, then what the core would do with it. */
    have = recv_size(dir, 31, file->len, &exists);
    if (!loads(dir, 31, DATA_BYTES)) {
        if (!exists || have > file->len) {
            have = 0;
            ASSERT_OK(run_kind(dir, NULL, AEGIS_SNAP_STEP_OPEN, 31, file->len, NULL));
        }
        *resumed_out |= have > 0;
        ASSERT_OK(write_chunks(dir, NULL, file, 31, have));
        ASSERT_OK(run_kind(dir, NULL, AEGIS_SNAP_STEP_VERIFY, 31, file->len, &verdict));
        if (verdict != 0) { /* Torn past its last sync: refused, removed, from 0. */
            ASSERT_OK(receive(dir, NULL, file, 31));
        } else {
            ASSERT_OK(run_kind(dir, NULL, AEGIS_SNAP_STEP_COMMIT, 31, file->len, NULL));
        }
    }
    ASSERT_TRUE(loads(dir, 31, DATA_BYTES));
    util_rmrf(dir);
    return TEST_PASS;
}

TEST(snap_transfer, crash_at_every_step_of_receive_and_install)
{
    struct aegis_buf *old = leader_file(10, 2000);
    struct aegis_buf *file = leader_file(31, DATA_BYTES);
    bool completed = false, resumed = false;
    uint64_t k;

    ASSERT_TRUE(old != NULL && file != NULL);
    for (k = 0; !completed && k < 100; k++) {
        for (uint64_t s = 0; s < 4; s++) {
            enum aegis_fault_powerloss mode = s == 0 ? AEGIS_FAULT_DROP : AEGIS_FAULT_TEAR;

            if (crash_once(old, file, k, mode, test_seed() + k * 13 + s, &completed,
                           &resumed) != TEST_PASS) {
                return TEST_FAIL;
            }
        }
    }
    ASSERT_TRUE(completed);
    ASSERT_TRUE(k > 12);  /* Create, 8 chunk writes, sync, rename, dir syncs, unlink. */
    ASSERT_TRUE(resumed); /* Some crashes left a partial file the transfer resumed from. */
    aegis__buf_unref(old);
    aegis__buf_unref(file);
    return TEST_PASS;
}

TEST(snap_transfer, restarted_node_finds_its_partial_file)
{
    struct aegis_buf *file = leader_file(31, DATA_BYTES);
    struct aegis_node *n = calloc(1, sizeof(*n));
    struct aegis_snapshot_meta m = meta_at(31);
    struct aegis_snapshot_io io;
    struct aegis_buf *head;
    uint64_t have = 99;

    ASSERT_TRUE(file != NULL && n != NULL);
    ASSERT_TRUE(util_tmpdir(n->data_dir) != NULL);
    ASSERT_OK(run_kind(n->data_dir, NULL, AEGIS_SNAP_STEP_OPEN, 31, file->len, NULL));
    head = aegis__buf_from(NULL, file->data, 3 * CHUNK);
    ASSERT_OK(write_chunks_of(n->data_dir, NULL, head, 31, 0, file->len));
    aegis__snap_transfer_init(&n->snapx, n);
    ASSERT_TRUE(n->snapx.recv_active);
    ASSERT_EQ_U64(n->snapx.recv_have, 3 * CHUNK);
    aegis__snap_transfer_io(&n->snapx, &io);
    /* The same offer (leader 7, index 31, term 3, same size): resume at 3 chunks. */
    ASSERT_OK(io.recv_open(io.data, &m, 7, file->len, &have));
    ASSERT_EQ_U64(have, 3 * CHUNK);
    /* A source reads the node's own snapshot file, chunk by chunk. */
    ASSERT_OK(receive(n->data_dir, NULL, file, 31));
    {
        struct aegis_buf *chunk = NULL;

        ASSERT_EQ_U64(aegis__snap_transfer_file_bytes(n, 31), file->len);
        ASSERT_OK(io.read(io.data, &m, CHUNK, CHUNK, &chunk));
        ASSERT_MEM_EQ(chunk->data, file->data + CHUNK, CHUNK);
        aegis__buf_unref(chunk);
    }
    aegis__snap_transfer_close(&n->snapx);
    aegis__buf_unref(head);
    aegis__buf_unref(file);
    util_rmrf(n->data_dir);
    free(n);
    return TEST_PASS;
}

/* Push INSTALL steps for chunks [from, to) of @file through the log thread. */
static void push_steps(struct fixture *fx, const struct aegis_buf *file, uint8_t kind,
                       uint64_t from, uint64_t to)
{
    for (uint64_t off = from; off < to || (kind != AEGIS_SNAP_STEP_CHUNK && off == from);
         off += CHUNK) {
        struct aegis_log_req req = {.op = AEGIS_LOG_OP_INSTALL};
        struct aegis_snap_step *s = calloc(1, sizeof(*s));

        *s = step_of(kind, 1000, file->len);
        if (kind == AEGIS_SNAP_STEP_CHUNK) {
            uint64_t len = to - off < CHUNK ? to - off : CHUNK;

            s->offset = off;
            s->chunk = aegis__buf_from(NULL, file->data + off, (size_t)len);
        }
        req.install.step = s;
        fx_push(fx, &req);
        if (kind != AEGIS_SNAP_STEP_CHUNK) {
            return;
        }
    }
}

/* Wait for the VERIFY verdict report; returns its err, or 1 on a stall. */
static int wait_verdict(struct fixture *fx)
{
    struct aegis_log_report rep;

    for (int i = 0; i < 5000; i++) {
        while (aegis__log_writer_pop_sc(fx->w, &rep)) {
            if (rep.kind == AEGIS_LOG_REPORT_SNAPSHOT) {
                return rep.index == 1000 && rep.term == 3 ? rep.err : 2;
            }
        }
        usleep(1000);
    }
    return 1;
}

TEST(snap_transfer, log_thread_receives_a_cut_transfer_then_installs)
{
    struct aegis_buf *file = leader_file(1000, DATA_BYTES);
    struct fixture fx;
    uint64_t have;
    bool exists;
    char dir[64];

    ASSERT_TRUE(file != NULL);
    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    ASSERT_OK(fx_open(&fx, dir, NULL, AEGIS_DURABILITY_BATCH, 16384));
    ASSERT_OK(aegis__log_writer_start(fx.w));
    fx_push_entries(&fx, 1, 300, 1, 100);
    /* The transfer is cut after three chunks: the node stops. */
    push_steps(&fx, file, AEGIS_SNAP_STEP_OPEN, 0, 0);
    push_steps(&fx, file, AEGIS_SNAP_STEP_CHUNK, 0, 3 * CHUNK);
    ASSERT_TRUE(fx_wait(&fx, fx.pushed));
    fx_close(&fx);
    /* Restarted: the old log is intact, the partial file holds the three chunks. */
    ASSERT_OK(fx_open(&fx, dir, NULL, AEGIS_DURABILITY_BATCH, 16384));
    ASSERT_FALSE(fx.st.has_snapshot);
    ASSERT_EQ_U64(fx.st.last_index, 300);
    have = recv_size(dir, 1000, file->len, &exists);
    ASSERT_TRUE(exists);
    ASSERT_EQ_U64(have, 3 * CHUNK);
    /* Resumed there, verified, installed; the log goes on after the snapshot. */
    ASSERT_OK(aegis__log_writer_start(fx.w));
    push_steps(&fx, file, AEGIS_SNAP_STEP_CHUNK, have, file->len);
    push_steps(&fx, file, AEGIS_SNAP_STEP_VERIFY, 0, 0);
    ASSERT_OK(wait_verdict(&fx));
    push_steps(&fx, file, AEGIS_SNAP_STEP_COMMIT, 0, 0);
    fx_push_entries(&fx, 1001, 1010, 4, 30);
    ASSERT_TRUE(fx_wait(&fx, fx.pushed));
    ASSERT_FALSE(fx.error);
    fx_close(&fx);
    ASSERT_OK(fx_open(&fx, dir, NULL, AEGIS_DURABILITY_BATCH, 16384));
    ASSERT_TRUE(fx.st.has_snapshot);
    ASSERT_EQ_U64(fx.st.snapshot_meta.index, 1000);
    ASSERT_EQ_U64(fx.st.entries_count, 10);
    ASSERT_EQ_U64(fx.st.last_index, 1010);
    fx_close(&fx);
    ASSERT_TRUE(loads(dir, 1000, DATA_BYTES));
    recv_size(dir, 1000, file->len, &exists);
    ASSERT_FALSE(exists);
    aegis__buf_unref(file);
    util_rmrf(dir);
    return TEST_PASS;
}
