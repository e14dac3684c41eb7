/* SPDX-License-Identifier: MIT */
/* The log thread; see log_writer.h for the contract.
 *
 * Loop of the aegis-log thread:
 *   drain the request ring (up to batch_entries_max entries / batch_bytes_max bytes);
 *   apply the requests in order: entries gather into a run; a truncation, a compaction
 *   or an entry that goes backwards first flushes the run, then runs synchronously;
 *   flush the run with the newest hard state of the batch: one round per segment, each
 *   round one io_uring submission holding the log's writevs linked to one fdatasync,
 *   and the hard state slot write linked to its own fdatasync, in parallel;
 *   wait for every completion; only then push the report;
 *   with nothing queued: announce sleep, re-check, block on the eventfd (ring.h).
 * The hard state and the entries of a batch are synced in parallel chains: nothing that
 * depends on either is released before both have returned, so a crash between them is
 * the same as a crash before the batch completed.
 *
 * Memory: the batch array, record-header scratch and iovecs are sized at open from
 * batch_entries_max; the hot path does not allocate.
 *
 * Every round goes through io_uring, under any file layer: the layer sees each
 * submission's SQEs before io_uring_submit and each completion's result (fileio.h), so
 * the fault layer's tests (drops, tears, EIO, ENOSPC, short writes, power loss) run this
 * code and no other. Only a short write's remainder is written synchronously.
 *
 * Deliberately broken variants (config.bugs, AEGIS_LOG_BUG_*) exist only in aegis_bugs,
 * the test-only build (AEGIS_SIM_BUGS): they prove the power-loss checker can fail. */
#include "pipeline/log_writer.h"

#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <aegis/error.h>

#include "pipeline/hardstate.h"
#include "pipeline/logging.h"
#include "pipeline/metrics.h"
#include "pipeline/probes.h"
#include "pipeline/segment.h"
#include "pipeline/snap_transfer.h"
#include "pipeline/snapshot_file.h"

AEGIS_RING_DEFINE(log_req, aegis_log_req)
AEGIS_RING_DEFINE(log_report, aegis_log_report)

#define IOV_PER_SQE 1024 /* UIO_MAXIOV: the kernel's limit per writev. */
#define SQES_MAX 64

struct aegis_log_writer {
    struct aegis_ring_log_req reqs;       /* raft thread -> log thread. */
    struct aegis_ring_log_report reports; /* log thread -> raft thread. */
    struct aegis_waker waker;             /* The log thread's; producers wake it. */
    pthread_t thread;
    bool started;    /* Controlling thread only. */
    int stop;        /* Set by the controller (release), read by the log thread
                      * (acquire) once its ring is empty. */
    uint64_t batches; /* Written by the log thread, read anywhere (relaxed). */
    uint64_t syncs;
    /* Everything below: the log thread (the opener before start, the closer after). */
    enum aegis_durability durability;
    enum aegis_log_sync sync;
    struct aegis_fileio *io;
    const struct aegis_allocator *alloc;
    struct aegis_metrics *metrics; /* NULL: none. */
    struct aegis_seglog log;
    struct aegis_hardstate_file hsf;
    bool have_files;
    struct io_uring ring;
    bool have_ring;
    uint32_t batch_entries_max;
    uint64_t batch_bytes_max;
    struct aegis_log_req *batch;  /* Requests popped for the current batch. */
    uint32_t batch_cap;
    struct aegis_entry *run;      /* Entries gathered for the next write. */
    uint32_t run_count;
    uint8_t (*headers)[AEGIS_RECORD_HEADER_BYTES];
    struct iovec *iov;
    uint64_t reqs_done;
    int failed;                   /* Sticky error; 0 while healthy. */
    uint64_t failed_offset;
    char failed_file[AEGIS_LOG_REPORT_FILE_MAX];
    uint64_t retention_bytes;     /* Retention (retain()); the two below are read */
    aegis_index retained_first;   /* anywhere (relaxed). */
    uint64_t retained_bytes;
    aegis_index none_index;       /* DURABILITY_NONE: last entry seen. */
    aegis_term none_term;
#ifdef AEGIS_SIM_BUGS
    uint32_t bugs;                /* AEGIS_LOG_BUG_* (test-only build). */
#endif
};

#ifdef AEGIS_SIM_BUGS
static bool log_bug(const struct aegis_log_writer *w, uint32_t bug)
{
    return (w->bugs & bug) != 0;
}
#else
#define log_bug(w, bug) false /* The bug constants are not even compiled. */
#endif

static void set_failed(struct aegis_log_writer *w, int err, const char *file, uint64_t off)
{
    AEGIS_ASSERT(err < 0);
    if (w->failed != 0) {
        return; /* Keep the first error: it is the cause. */
    }
    w->failed = err;
    w->failed_offset = off;
    {
        /* Keep the end of a long path: the file name is what matters. */
        size_t n = strlen(file), max = sizeof(w->failed_file) - 1;
        const char *from = n > max ? file + (n - max) : file;

        memcpy(w->failed_file, from, strlen(from) + 1);
    }
}

static void set_failed_log(struct aegis_log_writer *w, int err, uint64_t off)
{
    char path[4096];

    aegis__seglog_active_path(&w->log, path, sizeof(path));
    set_failed(w, err, path, off);
}

static void drop_run(struct aegis_log_writer *w, uint32_t from)
{
    for (uint32_t i = from; i < w->run_count; i++) {
        aegis__entry_unref(&w->run[i]);
    }
    if (from < w->run_count) {
        w->run_count = from;
    }
}

/* Build the iovecs of run[first, first + n) into w->iov; returns the iovec count. */
static int build_iov(struct aegis_log_writer *w, uint32_t first, uint32_t n, uint64_t *bytes_out)
{
    uint64_t bytes = 0;
    int iovcnt = 0;

    for (uint32_t i = 0; i < n; i++) {
        const struct aegis_entry *e = &w->run[first + i];

        aegis__record_header_encode(e, w->headers[first + i]);
        w->iov[iovcnt].iov_base = w->headers[first + i];
        w->iov[iovcnt++].iov_len = AEGIS_RECORD_HEADER_BYTES;
        if (aegis__entry_len(e) > 0) {
            w->iov[iovcnt].iov_base = (void *)(uintptr_t)aegis__entry_data(e);
            w->iov[iovcnt++].iov_len = aegis__entry_len(e);
        }
        bytes += aegis__record_bytes(e);
    }
    *bytes_out = bytes;
    return iovcnt;
}

/* How many of run[first..] fit in the active segment (at least one). */
static uint32_t round_count(struct aegis_log_writer *w, uint32_t first)
{
    uint64_t bytes = 0;
    uint32_t n = 0;

    while (first + n < w->run_count) {
        uint64_t b = aegis__record_bytes(&w->run[first + n]);

        if (n > 0 && w->log.end + bytes + b > w->log.segment_bytes) {
            break;
        }
        bytes += b;
        n++;
    }
    return n;
}

/* Complete a log write that came back short: the bytes from @written on, synchronously,
 * then fdatasync. Returns 0 or an error. */
static int complete_short(struct aegis_log_writer *w, int iovcnt, uint64_t written,
                          uint64_t *where_out)
{
    uint64_t skip = written, more = 0;
    int first = 0, rv;
    struct iovec saved;

    while (first < iovcnt && skip >= w->iov[first].iov_len) {
        skip -= w->iov[first].iov_len;
        first++;
    }
    AEGIS_ASSERT(first < iovcnt);
    saved = w->iov[first];
    w->iov[first].iov_base = (char *)w->iov[first].iov_base + skip;
    w->iov[first].iov_len -= skip;
    rv = aegis__fileio_pwritev_all(w->io, w->log.fd, w->iov + first, iovcnt - first,
                                   w->log.end + written, &more);
    w->iov[first] = saved;
    if (rv == 0) {
        rv = aegis__fileio_fdatasync(w->io, w->log.fd);
        __atomic_fetch_add(&w->syncs, 1, __ATOMIC_RELAXED);
    }
    *where_out = w->log.end + written + more;
    return rv;
}

struct round_io {
    int log_sqes;           /* writev SQEs of the log: user_data 0 .. log_sqes - 1. */
    int log_sync;           /* user_data of the log's fdatasync; -1: none. */
    int hs_write;           /* ... of the hard state's write and its fdatasync; -1: none. */
    int hs_sync;
    struct io_uring_sqe *sqes[SQES_MAX]; /* By user_data. */
    int64_t res[SQES_MAX];  /* By user_data. */
    uint64_t want[SQES_MAX];
};

static struct io_uring_sqe *get_sqe(struct aegis_log_writer *w, struct round_io *r, int n)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);

    AEGIS_ASSERT(sqe != NULL && n < SQES_MAX); /* SQES_MAX entries, drained each round. */
    r->sqes[n] = sqe;
    return sqe;
}

/* Queue the log's writevs and its sync; returns the SQE count. */
static int queue_log(struct aegis_log_writer *w, struct round_io *r, int iovcnt)
{
    bool sync = w->sync == AEGIS_LOG_SYNC_FDATASYNC && !log_bug(w, AEGIS_LOG_BUG_NO_LOG_SYNC);
    uint64_t off = w->log.end;
    int n = 0;

    for (int i = 0; i < iovcnt; i += IOV_PER_SQE) {
        int cnt = iovcnt - i < IOV_PER_SQE ? iovcnt - i : IOV_PER_SQE;
        struct io_uring_sqe *sqe = get_sqe(w, r, n);
        uint64_t want = 0;

        for (int k = 0; k < cnt; k++) {
            want += w->iov[i + k].iov_len;
        }
        io_uring_prep_writev2(sqe, w->log.fd, w->iov + i, (unsigned)cnt, off,
                              w->sync == AEGIS_LOG_SYNC_DSYNC ? RWF_DSYNC : 0);
        /* Link: the next writev (and the fdatasync) start only after this one completed
         * in full; a short or failed write cancels the rest of the chain. With RWF_DSYNC
         * the last writev ends the chain. */
        if (i + cnt < iovcnt ||
            (sync && !log_bug(w, AEGIS_LOG_BUG_UNLINKED_LOG_SYNC))) {
            io_uring_sqe_set_flags(sqe, IOSQE_IO_LINK);
        }
        r->want[n++] = want;
        off += want;
    }
    r->log_sqes = n;
    r->log_sync = -1;
    if (sync) {
        struct io_uring_sqe *sqe = get_sqe(w, r, n);

        io_uring_prep_fsync(sqe, w->log.fd, IORING_FSYNC_DATASYNC);
        r->log_sync = n;
        r->want[n++] = 0;
    }
    return n;
}

/* Queue the hard state slot write and its sync, a chain of its own (parallel to the
 * log's); returns the SQE count. */
static int queue_hs(struct aegis_log_writer *w, struct round_io *r, int n,
                    const uint8_t *slot, uint64_t off)
{
    struct io_uring_sqe *sqe = get_sqe(w, r, n);

    io_uring_prep_write(sqe, w->hsf.fd, slot, AEGIS_HARDSTATE_SLOT_BYTES, off);
    r->hs_write = n;
    r->want[n++] = AEGIS_HARDSTATE_SLOT_BYTES;
    r->hs_sync = -1;
    if (w->sync == AEGIS_LOG_SYNC_DSYNC) {
        sqe->rw_flags = RWF_DSYNC;
    } else if (!log_bug(w, AEGIS_LOG_BUG_NO_HS_SYNC)) {
        if (!log_bug(w, AEGIS_LOG_BUG_UNLINKED_HS_SYNC)) {
            io_uring_sqe_set_flags(sqe, IOSQE_IO_LINK);
        }
        sqe = get_sqe(w, r, n);
        io_uring_prep_fsync(sqe, w->hsf.fd, IORING_FSYNC_DATASYNC);
        r->hs_sync = n;
        r->want[n++] = 0;
    }
    return n;
}

/* Submit @n SQEs and collect every completion into r->res. */
static int submit_wait(struct aegis_log_writer *w, struct round_io *r, int n)
{
    int rv, got = 0;

    for (int i = 0; i < n; i++) {
        r->sqes[i]->user_data = (__u64)i;
    }
    /* The file layer sees the round first; the fault layer may rewrite SQEs (fileio.h). */
    aegis__fileio_uring_prepare(w->io, r->sqes, n);
    rv = io_uring_submit_and_wait(&w->ring, (unsigned)n);
    if (rv < 0 && rv != -EINTR) {
        return rv;
    }
    /* Bounded: exactly @n completions are due. */
    while (got < n) {
        struct io_uring_cqe *cqe;
        uint64_t id;

        rv = io_uring_wait_cqe(&w->ring, &cqe);
        if (rv == -EINTR) {
            continue;
        }
        if (rv < 0) {
            return rv;
        }
        id = (uint64_t)cqe->user_data;
        AEGIS_ASSERT(id < (uint64_t)n);
        /* The file layer may replace it (tests: fileio.h); real: unchanged. */
        r->res[id] = aegis__fileio_uring_result(w->io, id, cqe->res);
        io_uring_cqe_seen(&w->ring, cqe);
        got++;
    }
    return 0;
}

/* Check the log chain's results. Returns 0 or an error (with *where_out set). */
static int check_log(struct aegis_log_writer *w, const struct round_io *r, int iovcnt,
                     uint64_t bytes, uint64_t *where_out)
{
    uint64_t written = 0;
    int i;

    for (i = 0; i < r->log_sqes; i++) {
        if (r->res[i] < 0) {
            if (r->res[i] != -ECANCELED) {
                *where_out = w->log.end + written;
                return (int)r->res[i];
            }
            break;
        }
        written += (uint64_t)r->res[i];
        if ((uint64_t)r->res[i] < r->want[i]) {
            break; /* Short: the rest of the chain was cancelled. */
        }
    }
    if (written < bytes) {
        return complete_short(w, iovcnt, written, where_out);
    }
    if (r->log_sync >= 0 && r->res[r->log_sync] < 0) {
        *where_out = w->log.end + bytes;
        return (int)r->res[r->log_sync];
    }
    return 0;
}

/* One round through io_uring: run[first, first + n) into the active segment, and the
 * hard state @hs (may be NULL). */
static int round_uring(struct aegis_log_writer *w, uint32_t first, uint32_t n,
                       const struct aegis_hard_state *hs)
{
    struct round_io r;
    uint8_t slot[AEGIS_HARDSTATE_SLOT_BYTES];
    uint64_t bytes = 0, slot_off = 0, where = 0;
    int iovcnt = 0, sqes = 0, rv;

    memset(&r, 0, sizeof(r));
    r.log_sync = r.hs_write = r.hs_sync = -1;
    if (n > 0) {
        iovcnt = build_iov(w, first, n, &bytes);
        sqes = queue_log(w, &r, iovcnt);
    }
    if (hs != NULL) {
        aegis__hardstate_encode_next(&w->hsf, hs, slot, &slot_off);
        sqes = queue_hs(w, &r, sqes, slot, slot_off);
    }
    rv = submit_wait(w, &r, sqes);
    if (rv != 0) {
        set_failed_log(w, rv, w->log.end);
        return rv;
    }
    __atomic_fetch_add(&w->syncs, (uint64_t)(n > 0) + (hs != NULL), __ATOMIC_RELAXED);
    if (r.hs_write >= 0) {
        int64_t wr = r.res[r.hs_write];
        int64_t sy = r.hs_sync >= 0 ? r.res[r.hs_sync] : 0;

        if (wr != AEGIS_HARDSTATE_SLOT_BYTES || sy < 0) {
            rv = wr < 0 ? (int)wr : sy < 0 ? (int)sy : AEGIS_EIO;
            set_failed(w, rv, w->hsf.path, slot_off);
        } else {
            aegis__hardstate_written(&w->hsf, hs);
        }
    }
    if (n > 0) {
        int lrv = check_log(w, &r, iovcnt, bytes, &where);

        if (lrv != 0) {
            set_failed_log(w, lrv, where);
            rv = lrv;
        }
    }
    if (rv == 0 && w->failed != 0) {
        rv = w->failed;
    }
    if (rv != 0) {
        return rv;
    }
    if (n > 0) {
        const struct aegis_entry *last = &w->run[first + n - 1];

        aegis__seglog_commit(&w->log, bytes, n, last->index, last->term);
    }
    return 0;
}

/* Write the run and @hs durably. On error the writer is failed and the segment is cut
 * back to its durable end. */
static int flush(struct aegis_log_writer *w, const struct aegis_hard_state *hs)
{
    uint32_t done = 0;
    int rv = 0;

    if (w->run_count == 0 && hs == NULL) {
        return 0;
    }
    AEGIS_ASSERT(w->have_ring);
    /* Bounded: each round writes at least one entry or the hard state. */
    do {
        uint32_t n = 0;

        if (done < w->run_count) {
            if (!aegis__seglog_fits(&w->log, aegis__record_bytes(&w->run[done]))) {
                rv = aegis__seglog_roll(&w->log, w->run[done].index);
                if (rv != 0) {
                    set_failed_log(w, rv, 0);
                    break;
                }
            }
            n = round_count(w, done);
        }
        rv = round_uring(w, done, n, hs);
        hs = NULL;
        if (rv != 0) {
            aegis__seglog_repair(&w->log);
            break;
        }
        done += n;
    } while (done < w->run_count);
    drop_run(w, 0);
    return rv;
}

/* Entries at or beyond @from leave the run; the disk log is cut at @from. */
static int truncate_from(struct aegis_log_writer *w, aegis_index from)
{
    int rv;

    if (w->run_count > 0 && from <= w->run[w->run_count - 1].index) {
        drop_run(w, from > w->run[0].index ? (uint32_t)(from - w->run[0].index) : 0);
    }
    if (from > w->log.last_index) {
        return 0;
    }
    rv = flush(w, NULL);
    if (rv == 0) {
        rv = aegis__seglog_truncate(&w->log, from);
        if (rv != 0) {
            set_failed_log(w, rv, w->log.end);
        }
    }
    return rv;
}

static void apply_entry(struct aegis_log_writer *w, struct aegis_entry *e)
{
    aegis_index next;

    next = w->run_count > 0 ? w->run[w->run_count - 1].index + 1 : w->log.last_index + 1;
    if (e->index < next) {
        if (truncate_from(w, e->index) != 0) {
            aegis__entry_unref(e);
            return;
        }
        next = w->run_count > 0 ? w->run[w->run_count - 1].index + 1 : w->log.last_index + 1;
    }
    if (e->index > next) {
        /* A jump forward: only right after a durable snapshot that covers everything
         * before it (COMPACT or the snapshot loaded at open); the old log goes. */
        AEGIS_ASSERT(w->run_count == 0);
        AEGIS_ASSERT(e->index <= w->log.base_index + 1);
        if (aegis__seglog_reset(&w->log, e->index) != 0) {
            set_failed_log(w, AEGIS_EIO, 0);
            aegis__entry_unref(e);
            return;
        }
    }
    AEGIS_ASSERT(w->run_count < w->batch_cap);
    w->run[w->run_count++] = *e;
}

static void push_report(struct aegis_log_writer *w, const struct aegis_log_report *rep)
{
    /* Bounded wait: the consumer drains reports every loop; a full ring is retried each
     * millisecond, and given up only when stopping (nobody is listening then). */
    for (int tries = 0; !aegis__ring_log_report_push_sp(&w->reports, rep); tries++) {
        if (__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE) && tries > 1000) {
            return;
        }
        poll(NULL, 0, 1);
    }
}

static void report(struct aegis_log_writer *w)
{
    struct aegis_log_report rep;

    memset(&rep, 0, sizeof(rep));
    rep.reqs_done = w->reqs_done;
    if (w->failed != 0) {
        rep.kind = AEGIS_LOG_REPORT_ERROR;
        rep.err = w->failed;
        rep.offset = w->failed_offset;
        memcpy(rep.file, w->failed_file, sizeof(rep.file));
    } else if (w->durability == AEGIS_DURABILITY_NONE) {
        rep.kind = AEGIS_LOG_REPORT_DURABLE;
        rep.index = w->none_index;
        rep.term = w->none_term;
    } else {
        rep.kind = AEGIS_LOG_REPORT_DURABLE;
        rep.index = w->log.last_index;
        rep.term = w->log.last_term;
    }
    push_report(w, &rep);
}

#ifdef AEGIS_SIM_BUGS
/* Broken: the batch of @count requests reported durable before its round is written. */
static void report_early(struct aegis_log_writer *w, uint32_t count)
{
    struct aegis_log_report rep;

    memset(&rep, 0, sizeof(rep));
    rep.kind = AEGIS_LOG_REPORT_DURABLE;
    rep.reqs_done = w->reqs_done + count;
    rep.index = w->run[w->run_count - 1].index;
    rep.term = w->run[w->run_count - 1].term;
    push_report(w, &rep);
}
#endif

static void req_release(struct aegis_log_writer *w, struct aegis_log_req *req);
static void install_step(struct aegis_log_writer *w, struct aegis_log_req *req);

static void process_none(struct aegis_log_writer *w, struct aegis_log_req *req)
{
    switch (req->op) {
    case AEGIS_LOG_OP_ENTRY:
        w->none_index = req->entry.index;
        w->none_term = req->entry.term;
        aegis__entry_unref(&req->entry);
        break;
    case AEGIS_LOG_OP_TRUNCATE:
        if (req->truncate_from <= w->none_index) {
            w->none_index = req->truncate_from - 1;
            w->none_term = 0; /* Unknown without the entries. */
        }
        break;
    case AEGIS_LOG_OP_INSTALL:
        /* No log on disk, but the snapshot is a file all the same. */
        install_step(w, req);
        break;
    default:
        break;
    }
}

/* Drop what an unprocessed request holds (failed writer, none mode, close). */
static void req_release(struct aegis_log_writer *w, struct aegis_log_req *req)
{
    if (req->op == AEGIS_LOG_OP_ENTRY) {
        aegis__entry_unref(&req->entry);
    } else if (req->op == AEGIS_LOG_OP_INSTALL) {
        aegis__snap_step_free(req->install.step, w->alloc);
        req->install.step = NULL;
    }
}

/* One step of receiving a snapshot (snap_transfer.h). The COMMIT makes the received file
 * the durable snapshot first, and only then is the old log dropped, so a crash in between
 * leaves the old log or the snapshot. A VERIFY's verdict goes back as a report. */
static void install_step(struct aegis_log_writer *w, struct aegis_log_req *req)
{
    const struct aegis_snap_step *step = req->install.step;
    bool none = w->durability == AEGIS_DURABILITY_NONE;
    int verdict = 0;
    int rv;

    AEGIS_ASSERT(step != NULL);
    if (step->kind == AEGIS_SNAP_STEP_COMMIT && !none && flush(w, NULL) != 0) {
        req_release(w, req);
        return;
    }
    rv = aegis__snap_step_run(w->log.dir, w->io, step, &verdict);
    if (rv != 0) {
        set_failed(w, rv, w->log.dir, step->offset);
    } else if (step->kind == AEGIS_SNAP_STEP_VERIFY) {
        struct aegis_log_report rep;

        memset(&rep, 0, sizeof(rep));
        rep.kind = AEGIS_LOG_REPORT_SNAPSHOT;
        rep.err = verdict;
        rep.index = step->meta.index;
        rep.term = step->meta.term;
        rep.reqs_done = w->reqs_done;
        push_report(w, &rep);
    } else if (step->kind == AEGIS_SNAP_STEP_COMMIT && none) {
        w->none_index = step->meta.index;
        w->none_term = step->meta.term;
    } else if (step->kind == AEGIS_SNAP_STEP_COMMIT) {
        rv = aegis__seglog_reset(&w->log, step->meta.index + 1);
        if (rv != 0) {
            set_failed_log(w, rv, 0);
        }
    }
    req_release(w, req);
}

/* flush() with its metrics and probes: the group commit's time and bytes (metrics.h). */
static void flush_timed(struct aegis_log_writer *w, const struct aegis_hard_state *hs)
{
    aegis_index first = w->run_count > 0 ? w->run[0].index : 0;
    aegis_index last = w->run_count > 0 ? w->run[w->run_count - 1].index : 0;
    uint32_t entries = w->run_count;
    uint64_t bytes = 0, t0, t1;

    if (w->run_count == 0 && hs == NULL) {
        return; /* Nothing to write (a batch of compactions, say): not a group commit. */
    }
    t0 = aegis__now_ns();
    for (uint32_t i = 0; i < w->run_count; i++) {
        bytes += aegis__record_bytes(&w->run[i]);
    }
    AEGIS_PROBE3(log_write, first, last, bytes);
    if (flush(w, hs) != 0) {
        return;
    }
    t1 = aegis__now_ns();
    AEGIS_PROBE3(log_synced, last, entries, t1 - t0);
    if (w->metrics == NULL) {
        return;
    }
    aegis__metrics_record(w->metrics, AEGIS_MH_LOG_SYNC, t1 - t0);
    aegis__metrics_add(w->metrics, AEGIS_MT_LOG, AEGIS_MC_LOG_BYTES, bytes);
}

/* A snapshot at @snapshot_index is durable: keep the segments behind it up to
 * retention_bytes (the oldest go first), then publish what the log holds now for the
 * raft thread (log_reader.h) and INFO. */
static void retain(struct aegis_log_writer *w, aegis_index snapshot_index)
{
    int rv;

    if (flush(w, NULL) != 0) {
        return;
    }
    rv = aegis__seglog_retain(&w->log, snapshot_index, w->retention_bytes);
    if (rv != 0) {
        set_failed(w, rv, w->log.dir, 0);
        return;
    }
    __atomic_store_n(&w->retained_bytes, aegis__seglog_retained_bytes(&w->log),
                     __ATOMIC_RELAXED);
    /* With no retention the entries behind the snapshot are gone for the core even when
     * the active segment still holds them. */
    __atomic_store_n(&w->retained_first,
                     w->log.segs_count > 0 && w->retention_bytes > 0 ? w->log.segs[0].first_index
                                                                    : snapshot_index + 1,
                     __ATOMIC_RELAXED);
}

static void process_batch(struct aegis_log_writer *w, uint32_t count)
{
    struct aegis_hard_state hs;
    bool hs_pending = false;
    uint64_t entries = 0;

    for (uint32_t i = 0; i < count; i++) {
        struct aegis_log_req *req = &w->batch[i];

        entries += req->op == AEGIS_LOG_OP_ENTRY ? 1u : 0u;
        if (w->failed != 0 || w->durability == AEGIS_DURABILITY_NONE) {
            if (w->durability == AEGIS_DURABILITY_NONE && w->failed == 0) {
                process_none(w, req);
            } else {
                req_release(w, req);
            }
            continue;
        }
        switch (req->op) {
        case AEGIS_LOG_OP_ENTRY:
            apply_entry(w, &req->entry);
            break;
        case AEGIS_LOG_OP_TRUNCATE:
            AEGIS_ASSERT(req->truncate_from > 0);
            truncate_from(w, req->truncate_from);
            break;
        case AEGIS_LOG_OP_HARD_STATE:
            hs = req->hs;
            hs_pending = true;
            break;
        case AEGIS_LOG_OP_INSTALL:
            install_step(w, req);
            break;
        case AEGIS_LOG_OP_COMPACT:
            retain(w, req->compact_index);
            break;
        default:
            AEGIS_UNREACHABLE();
        }
    }
    if (w->failed == 0 && w->durability == AEGIS_DURABILITY_BATCH) {
#ifdef AEGIS_SIM_BUGS
        if (log_bug(w, AEGIS_LOG_BUG_REPORT_BEFORE_SYNC) && w->run_count > 0) {
            report_early(w, count);
        }
#endif
        flush_timed(w, hs_pending ? &hs : NULL);
    }
    drop_run(w, 0);
    if (w->metrics != NULL) {
        aegis__metrics_add(w->metrics, AEGIS_MT_LOG, AEGIS_MC_LOG_BATCHES, 1);
        aegis__metrics_add(w->metrics, AEGIS_MT_LOG, AEGIS_MC_LOG_ENTRIES, entries);
        aegis__metrics_record(w->metrics, AEGIS_MH_LOG_BATCH_ENTRIES, entries);
    }
    if (w->failed == 0 && w->have_files && w->log.spare_fd < 0) {
        /* Ahead of need (once per segment): the next roll only renames. Done before the
         * report so that the report is the thread's last act of a batch; a failure here
         * is retried by the roll itself. */
        aegis__seglog_prepare_spare(&w->log);
    }
    w->reqs_done += count;
    __atomic_fetch_add(&w->batches, 1, __ATOMIC_RELAXED);
    report(w);
}

/* Pop up to the batch limits. */
static uint32_t drain(struct aegis_log_writer *w)
{
    uint64_t bytes = 0;
    uint32_t count = 0, entries = 0;

    while (count < w->batch_cap && entries < w->batch_entries_max &&
           bytes < w->batch_bytes_max &&
           aegis__ring_log_req_pop_sc(&w->reqs, &w->batch[count])) {
        if (w->batch[count].op == AEGIS_LOG_OP_ENTRY) {
            entries++;
            bytes += aegis__record_bytes(&w->batch[count].entry);
        }
        count++;
    }
    return count;
}

static void *log_thread(void *arg)
{
    struct aegis_log_writer *w = arg;

    pthread_setname_np(pthread_self(), "aegis-log");
    aegis__assert_set_context("aegis-log");
    for (;;) {
        uint32_t count = drain(w);

        if (count > 0) {
            process_batch(w, count);
            continue;
        }
        /* Acquire pairs with the release in aegis__log_writer_stop(): every request
         * pushed before the stop is visible in the ring now. */
        if (__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE)) {
            if (aegis__ring_log_req_empty(&w->reqs)) {
                break;
            }
            continue;
        }
        aegis__waker_prepare(&w->waker);
        if (!aegis__ring_log_req_empty(&w->reqs) || __atomic_load_n(&w->stop, __ATOMIC_ACQUIRE)) {
            aegis__waker_cancel(&w->waker);
            continue;
        }
        aegis__waker_wait(&w->waker, -1);
    }
    return NULL;
}

struct load_state {
    struct aegis_log_state *st;
    uint32_t cap;
    const struct aegis_allocator *alloc;
};

static int load_record(void *data, const struct aegis_record *rec)
{
    struct load_state *ls = data;
    struct aegis_log_state *st = ls->st;
    struct aegis_entry *e;

    if (st->entries_count == ls->cap) {
        uint32_t cap = ls->cap == 0 ? 1024 : ls->cap * 2;
        void *p;

        if (cap < ls->cap) {
            return AEGIS_ETOOBIG;
        }
        p = aegis__realloc(ls->alloc, st->entries, (size_t)cap * sizeof(*st->entries));
        if (p == NULL) {
            return AEGIS_ENOMEM;
        }
        st->entries = p;
        ls->cap = cap;
    }
    e = &st->entries[st->entries_count];
    memset(e, 0, sizeof(*e));
    e->index = rec->index;
    e->term = rec->term;
    e->type = rec->type;
    e->timestamp = rec->timestamp;
    if (rec->len > 0) {
        e->buf = aegis__buf_from(ls->alloc, rec->payload, rec->len);
        if (e->buf == NULL) {
            return AEGIS_ENOMEM;
        }
    }
    st->entries_count++;
    return 0;
}

void aegis__log_state_release(struct aegis_log_state *s, const struct aegis_allocator *a)
{
    for (uint32_t i = 0; i < s->entries_count; i++) {
        aegis__entry_unref(&s->entries[i]);
    }
    aegis__free(a, s->entries);
    aegis__buf_unref(s->snapshot_data);
    memset(s, 0, sizeof(*s));
}

/* Load hard state, snapshot and log from disk into @st. */
static int open_files(struct aegis_log_writer *w, const struct aegis_log_config *c,
                      struct aegis_log_state *st)
{
    struct aegis_seglog_config sc = {.dir = c->dir, .segment_bytes = c->segment_bytes,
                                     .io = w->io, .alloc = w->alloc};
    struct load_state ls = {.st = st, .alloc = w->alloc};
    int rv;

    if (mkdir(c->dir, 0700) < 0 && errno != EEXIST) {
        return -errno;
    }
    rv = aegis__hardstate_open(&w->hsf, c->dir, w->io, w->alloc, &st->hs);
    if (rv != 0) {
        return rv;
    }
    st->hs_fallback = w->hsf.fell_back;
    rv = aegis__snapshot_file_load(c->dir, w->io, w->alloc, &st->snapshot_meta,
                                   &st->snapshot_data, &st->has_snapshot);
    if (rv != 0) {
        aegis__hardstate_close(&w->hsf);
        return rv;
    }
    rv = aegis__seglog_open(&w->log, &sc, st->has_snapshot ? st->snapshot_meta.index : 0,
                            load_record, &ls);
    if (rv == 0) {
        rv = aegis__seglog_prepare_spare(&w->log);
        if (rv != 0) {
            aegis__seglog_close(&w->log);
        }
    }
    if (rv != 0) {
        aegis__hardstate_close(&w->hsf);
        return rv;
    }
    w->have_files = true;
    if (w->log.segs_count == 0 && st->has_snapshot) {
        w->log.last_term = st->snapshot_meta.term;
    }
    st->last_index = w->log.last_index;
    st->last_term = w->log.last_term;
    if (st->entries_count == 0 && st->has_snapshot) {
        st->last_index = st->snapshot_meta.index;
        st->last_term = st->snapshot_meta.term;
    }
    return 0;
}

static int alloc_arrays(struct aegis_log_writer *w, const struct aegis_log_config *c)
{
    uint32_t req_slots = c->req_slots != 0 ? c->req_slots : 65536;
    uint32_t report_slots = c->report_slots != 0 ? c->report_slots : 1024;
    int rv;

    w->batch_entries_max = c->batch_entries_max != 0 ? c->batch_entries_max : 4096;
    w->batch_bytes_max = c->batch_bytes_max != 0 ? c->batch_bytes_max : (16u << 20);
    w->batch_cap = 2 * w->batch_entries_max;
    /* Every round's SQEs fit in the ring: writevs of 1024 iovecs, a sync, the hard state
     * write and its sync. */
    AEGIS_ASSERT(2 * (uint64_t)w->batch_cap / IOV_PER_SQE + 4 <= SQES_MAX);
    w->batch = aegis__calloc(w->alloc, w->batch_cap, sizeof(*w->batch));
    w->run = aegis__calloc(w->alloc, w->batch_cap, sizeof(*w->run));
    w->headers = aegis__calloc(w->alloc, w->batch_cap, sizeof(*w->headers));
    w->iov = aegis__calloc(w->alloc, 2 * (size_t)w->batch_cap, sizeof(*w->iov));
    if (w->batch == NULL || w->run == NULL || w->headers == NULL || w->iov == NULL) {
        return AEGIS_ENOMEM;
    }
    rv = aegis__waker_init(&w->waker);
    if (rv != 0) {
        return rv;
    }
    rv = aegis__ring_log_req_init(&w->reqs, req_slots, &w->waker, w->alloc);
    if (rv != 0) {
        return rv;
    }
    return aegis__ring_log_report_init(&w->reports, report_slots, c->report_waker, w->alloc);
}

int aegis__log_writer_open(struct aegis_log_writer **out, const struct aegis_log_config *c,
                           struct aegis_log_state *state_out)
{
    struct aegis_log_writer *w;
    int rv;

    memset(state_out, 0, sizeof(*state_out));
    w = aegis__calloc(c->alloc, 1, sizeof(*w));
    if (w == NULL) {
        return AEGIS_ENOMEM;
    }
    w->alloc = c->alloc;
    w->io = c->io;
    w->metrics = c->metrics;
    w->retention_bytes = c->retention_bytes;
    w->durability = c->durability != 0 ? c->durability : AEGIS_DURABILITY_BATCH;
    w->sync = c->sync != 0 ? c->sync : AEGIS_LOG_SYNC_DEFAULT;
    w->waker.fd = -1;
#ifdef AEGIS_SIM_BUGS
    w->bugs = c->bugs;
#endif
    rv = alloc_arrays(w, c);
    if (rv != 0) {
        goto err;
    }
    if (w->durability == AEGIS_DURABILITY_BATCH) {
        rv = open_files(w, c, state_out);
        if (rv != 0) {
            goto err;
        }
        rv = io_uring_queue_init(SQES_MAX, &w->ring, 0);
        if (rv != 0) {
            goto err;
        }
        w->have_ring = true;
    }
    *out = w;
    return 0;

err:
    aegis__log_state_release(state_out, c->alloc);
    aegis__log_writer_close(w);
    AEGIS_ASSERT(rv != 0);
    return rv;
}

int aegis__log_writer_start(struct aegis_log_writer *w)
{
    int rv;

    AEGIS_ASSERT(!w->started);
    rv = pthread_create(&w->thread, NULL, log_thread, w);
    if (rv != 0) {
        return -rv;
    }
    w->started = true;
    return 0;
}

bool aegis__log_writer_push_sp(struct aegis_log_writer *w, const struct aegis_log_req *req)
{
    return aegis__ring_log_req_push_sp(&w->reqs, req);
}

bool aegis__log_writer_push_sp_defer(struct aegis_log_writer *w, const struct aegis_log_req *req)
{
    return aegis__ring_log_req_push_sp_defer(&w->reqs, req);
}

void aegis__log_writer_flush(struct aegis_log_writer *w)
{
    aegis__ring_log_req_wake(&w->reqs);
}

bool aegis__log_writer_pop_sc(struct aegis_log_writer *w, struct aegis_log_report *out)
{
    return aegis__ring_log_report_pop_sc(&w->reports, out);
}

bool aegis__log_writer_reports_empty(struct aegis_log_writer *w)
{
    return aegis__ring_log_report_empty(&w->reports);
}

void aegis__log_writer_stop(struct aegis_log_writer *w)
{
    if (!w->started) {
        return;
    }
    /* Release: orders every push before this store; pairs with the log thread's acquire. */
    __atomic_store_n(&w->stop, 1, __ATOMIC_RELEASE);
    aegis__waker_wake(&w->waker);
    pthread_join(w->thread, NULL);
    w->started = false;
}

void aegis__log_writer_close(struct aegis_log_writer *w)
{
    struct aegis_log_req req;

    if (w == NULL) {
        return;
    }
    aegis__log_writer_stop(w);
    if (w->reqs.slots != NULL) {
        while (aegis__ring_log_req_pop_sc(&w->reqs, &req)) {
            req_release(w, &req);
        }
        aegis__ring_log_req_close(&w->reqs);
    }
    if (w->reports.slots != NULL) {
        aegis__ring_log_report_close(&w->reports);
    }
    if (w->have_ring) {
        io_uring_queue_exit(&w->ring);
    }
    if (w->have_files) {
        aegis__seglog_close(&w->log);
        aegis__hardstate_close(&w->hsf);
    }
    if (w->waker.fd >= 0) {
        aegis__waker_close(&w->waker);
    }
    aegis__free(w->alloc, w->batch);
    aegis__free(w->alloc, w->run);
    aegis__free(w->alloc, w->headers);
    aegis__free(w->alloc, w->iov);
    aegis__free(w->alloc, w);
}

aegis_index aegis__log_writer_retained(struct aegis_log_writer *w, uint64_t *bytes_out)
{
    *bytes_out = __atomic_load_n(&w->retained_bytes, __ATOMIC_RELAXED);
    return __atomic_load_n(&w->retained_first, __ATOMIC_RELAXED);
}

uint64_t aegis__log_writer_batches(struct aegis_log_writer *w)
{
    return __atomic_load_n(&w->batches, __ATOMIC_RELAXED);
}

uint64_t aegis__log_writer_syncs(struct aegis_log_writer *w)
{
    return __atomic_load_n(&w->syncs, __ATOMIC_RELAXED);
}
