/* SPDX-License-Identifier: MIT */
/* Test support for the log thread (test_log_writer.c, test_log_writer_bugs.c): a fixture
 * that drives it through its rings, and the power-loss checker.
 *
 * The checker (pl_run): entries and hard states go through the shipped io_uring path
 * under the fault layer, which kills the machine at its k-th counted operation after
 * open (a write dropped or torn there); then the power is cut (unsynced data lost, DROP or
 * TEAR) and the directory reopened with the real layer. It must hold that every entry
 * ever reported durable is there, every entry there is intact and in place, and the hard
 * state is at least the newest one whose request was reported durable (and one that was
 * pushed). A broken writer (log_writer.h, AEGIS_LOG_BUG_*) must make it fail. */
#ifndef AEGIS_TEST_PIPELINE_LOG_WRITER_UTIL_H
#define AEGIS_TEST_PIPELINE_LOG_WRITER_UTIL_H

#include <aegis/error.h>
#include <dirent.h>
#include <stdio.h>

#include "lib/test.h"
#include "pipeline/log_writer.h"
#include "pipeline/segment.h"
#include "pipeline/snapshot_file.h"
#include "util.h"

struct fixture {
    struct aegis_log_writer *w;
    struct aegis_waker waker; /* Ours: the report consumer's. */
    struct aegis_log_state st;
    struct aegis_log_report last;
    uint64_t pushed;
    aegis_index durable;   /* Highest durable index reported. */
    uint64_t durable_reqs; /* Highest reqs_done of a DURABLE report. */
    uint64_t reports;
    bool error;
};

static inline int fx_open_cfg(struct fixture *fx, const struct aegis_log_config *c)
{
    struct aegis_log_config cc = *c;
    int rv;

    memset(fx, 0, sizeof(*fx));
    rv = aegis__waker_init(&fx->waker);
    if (rv != 0) {
        return rv;
    }
    cc.report_waker = &fx->waker;
    rv = aegis__log_writer_open(&fx->w, &cc, &fx->st);
    if (rv != 0) {
        aegis__waker_close(&fx->waker);
    }
    return rv;
}

static inline int fx_open(struct fixture *fx, const char *dir, struct aegis_fileio *io,
                          enum aegis_durability d, uint64_t segment_bytes)
{
    struct aegis_log_config c = {.dir = dir, .durability = d, .segment_bytes = segment_bytes,
                                 .req_slots = 1024, .report_slots = 64,
                                 .batch_entries_max = 512, .io = io};

    return fx_open_cfg(fx, &c);
}

static inline void fx_close(struct fixture *fx)
{
    aegis__log_writer_close(fx->w);
    aegis__log_state_release(&fx->st, NULL);
    aegis__waker_close(&fx->waker);
}

/* Consume reports until @reqs requests are done. Returns false on a 5 s stall. */
static inline bool fx_wait(struct fixture *fx, uint64_t reqs)
{
    struct aegis_log_report rep;

    for (;;) {
        while (aegis__log_writer_pop_sc(fx->w, &rep)) {
            AEGIS_ASSERT(rep.reqs_done >= fx->last.reqs_done);
            fx->last = rep;
            fx->reports++;
            if (rep.kind == AEGIS_LOG_REPORT_ERROR) {
                fx->error = true;
                continue;
            }
            fx->durable = rep.index > fx->durable ? rep.index : fx->durable;
            fx->durable_reqs = rep.reqs_done > fx->durable_reqs ? rep.reqs_done
                                                                : fx->durable_reqs;
        }
        if (fx->last.reqs_done >= reqs) {
            return true;
        }
        aegis__waker_prepare(&fx->waker);
        if (!aegis__log_writer_reports_empty(fx->w)) {
            aegis__waker_cancel(&fx->waker);
            continue;
        }
        if (aegis__waker_wait(&fx->waker, 5000) == 0) {
            return false;
        }
    }
}

static inline void fx_push(struct fixture *fx, const struct aegis_log_req *req)
{
    /* The ring is sized for the tests; a full ring waits for the log thread. */
    while (!aegis__log_writer_push_sp(fx->w, req)) {
        fx_wait(fx, fx->last.reqs_done + 1);
    }
    fx->pushed++;
}

static inline void fx_push_entries(struct fixture *fx, aegis_index from, aegis_index to,
                                   aegis_term term, uint32_t len)
{
    for (aegis_index i = from; i <= to; i++) {
        struct aegis_log_req req = {.op = AEGIS_LOG_OP_ENTRY};

        req.entry = util_entry(i, term, len);
        fx_push(fx, &req);
    }
}

/* One power-loss run of the checker. */
struct pl_params {
    uint64_t k;                       /* The machine dies at this counted op after open. */
    enum aegis_fault_powerloss mode;
    uint64_t seed;                    /* Interleaving, torn prefixes, TEAR's choices. */
    enum aegis_log_sync sync;         /* 0: the default. */
    uint32_t bugs;                    /* AEGIS_LOG_BUG_* (aegis_bugs only). */
};

/* What one run pushed and saw, for the checks after the power cut. */
struct pl_trace {
    aegis_term hs_term;         /* Hard states pushed: term t has vote t, commit hs_commit[t]. */
    uint64_t hs_req[64];        /* Request number of the hard state of term t. */
    aegis_term hs_durable;      /* Newest term whose request was reported durable. */
    uint64_t ops;               /* Counted operations of the layer after open. */
};

/* The workload: 30 rounds of 1 to 13 entries of 200 bytes into 8 KiB segments (so the log
 * rolls to new segments), a hard state every third round, a wait every second. */
static inline enum test_result pl_workload(struct fixture *fx, struct pl_trace *t)
{
    aegis_index next = 1;

    for (int round = 0; round < 30 && !fx->error; round++) {
        uint32_t n = (uint32_t)(round % 5) * 3 + 1;

        fx_push_entries(fx, next, next + n - 1, 1, 200);
        next += n;
        if (round % 3 == 2) {
            struct aegis_log_req req = {.op = AEGIS_LOG_OP_HARD_STATE};

            t->hs_term++;
            req.hs = (struct aegis_hard_state){.term = t->hs_term, .vote = t->hs_term,
                                               .commit = next - 1};
            fx_push(fx, &req);
            t->hs_req[t->hs_term] = fx->pushed;
        }
        if (round % 2 == 1 && !fx_wait(fx, fx->pushed)) {
            FAIL("no report");
        }
    }
    if (!fx_wait(fx, fx->pushed)) {
        FAIL("no report");
    }
    for (aegis_term term = 1; term <= t->hs_term; term++) {
        if (t->hs_req[term] <= fx->durable_reqs) {
            t->hs_durable = term;
        }
    }
    return TEST_PASS;
}

/* The checks after the power cut; @why gets the violation ("" when none). */
static inline void pl_check(const struct fixture *fx, const struct fixture *before,
                            const struct pl_trace *t, char *why, size_t why_len)
{
    const struct aegis_log_state *st = &fx->st;

    if (st->last_index < before->durable) {
        snprintf(why, why_len, "entry lost: %llu recovered, %llu reported durable",
                 (unsigned long long)st->last_index, (unsigned long long)before->durable);
        return;
    }
    if (st->entries_count != st->last_index) {
        snprintf(why, why_len, "log of %u entries ends at %llu", st->entries_count,
                 (unsigned long long)st->last_index);
        return;
    }
    for (uint32_t i = 0; i < st->entries_count; i++) {
        if (!util_entry_ok(&st->entries[i], i + 1, 1, 200)) {
            snprintf(why, why_len, "entry %u damaged", i + 1);
            return;
        }
    }
    if (st->hs.term < t->hs_durable) {
        snprintf(why, why_len, "hard state lost: term %llu recovered, %llu reported durable",
                 (unsigned long long)st->hs.term, (unsigned long long)t->hs_durable);
        return;
    }
    if (st->hs.term > t->hs_term || st->hs.vote != st->hs.term) {
        snprintf(why, why_len, "hard state never written: term %llu vote %llu",
                 (unsigned long long)st->hs.term, (unsigned long long)st->hs.vote);
        return;
    }
    why[0] = '\0';
}

/* Run once; TEST_PASS when the run could be made and checked, with the checker's verdict
 * in @why ("" when every check held). @ops_out (may be NULL): operations counted. */
static inline enum test_result pl_run(const struct pl_params *p, char *why, size_t why_len,
                                      uint64_t *ops_out)
{
    struct aegis_fileio_fault f;
    struct fixture fx, before;
    struct pl_trace t;
    char dir[64];
    uint64_t ops0;
    int rv;

    memset(&t, 0, sizeof(t));
    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    aegis__fileio_fault_init(&f);
    f.seed = p->seed;
    f.crash_tear = (p->seed & 1) != 0;
    {
        struct aegis_log_config c = {.dir = dir, .segment_bytes = 8192, .req_slots = 1024,
                                     .report_slots = 64, .batch_entries_max = 512,
                                     .io = &f.base, .sync = p->sync, .bugs = p->bugs};

        rv = fx_open_cfg(&fx, &c);
    }
    if (rv == AEGIS_ENOSYS || rv == AEGIS_EPERM) {
        aegis__fileio_fault_close(&f);
        util_rmrf(dir);
        SKIP("io_uring unavailable");
    }
    ASSERT_OK(rv);
    ops0 = f.ops;
    f.crash_after = p->k != 0 ? f.ops + p->k : 0;
    ASSERT_OK(aegis__log_writer_start(fx.w));
    if (pl_workload(&fx, &t) != TEST_PASS) {
        return TEST_FAIL;
    }
    aegis__log_writer_close(fx.w);
    fx.w = NULL;
    before = fx;
    t.ops = f.ops - ops0;
    if (ops_out != NULL) {
        *ops_out = t.ops;
    }
    aegis__log_state_release(&fx.st, NULL);
    aegis__waker_close(&fx.waker);
    ASSERT_OK(aegis__fileio_fault_powerloss(&f, p->mode, p->seed));
    aegis__fileio_fault_close(&f);
    rv = fx_open(&fx, dir, NULL, AEGIS_DURABILITY_BATCH, 8192);
    if (rv != 0) {
        snprintf(why, why_len, "reopen: %s", test_err_name(rv));
    } else {
        pl_check(&fx, &before, &t, why, why_len);
        fx_close(&fx);
    }
    util_rmrf(dir);
    return TEST_PASS;
}

#endif /* AEGIS_TEST_PIPELINE_LOG_WRITER_UTIL_H */
