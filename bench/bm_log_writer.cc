/* SPDX-License-Identifier: MIT */
// Log writer benchmarks: append throughput and fdatasyncs per second of the aegis-log
// thread for 128 B, 1 KiB and 4 KiB records at batch sizes 1, 16, 256 and 4096, beside
// the raw rates of the disk measured in the same run (pwrite + fdatasync on a
// preallocated file, on an already written file, pwritev2 with RWF_DSYNC, and O_DIRECT +
// O_DSYNC). One iteration = one batch: the entries are pushed into the request ring
// without waking the thread, then one wake, then wait for the durable report, so each
// iteration is exactly one group commit.
//
// Directory: $AEGIS_BENCH_DIR (default /tmp); each benchmark uses a fresh subdirectory
// and removes it.

#define _Noreturn [[noreturn]]
extern "C" {
#include "pipeline/log_writer.h"
#include "pipeline/segment.h"
}

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace {

std::string make_dir(const char *tag)
{
    const char *base = getenv("AEGIS_BENCH_DIR");
    std::string tmpl = std::string(base != nullptr ? base : "/tmp") + "/aegis-bm-" + tag +
                       "-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data()) == nullptr) {
        abort();
    }
    return std::string(buf.data());
}

int rm_cb(const char *path, const struct stat *, int, struct FTW *)
{
    return remove(path);
}

void remove_dir(const std::string &dir)
{
    nftw(dir.c_str(), rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

struct writer {
    struct aegis_log_writer *w = nullptr;
    struct aegis_waker waker;
    struct aegis_log_state st;
    uint64_t pushed = 0;
    uint64_t done = 0;
};

bool open_writer(writer &wr, const std::string &dir, enum aegis_log_sync sync)
{
    struct aegis_log_config c;
    memset(&c, 0, sizeof(c));
    c.dir = dir.c_str();
    c.durability = AEGIS_DURABILITY_BATCH;
    c.sync = sync;
    c.req_slots = 8192;
    c.batch_entries_max = 4096;
    c.batch_bytes_max = 64u << 20;
    c.report_waker = &wr.waker;
    if (aegis__waker_init(&wr.waker) != 0) {
        return false;
    }
    if (aegis__log_writer_open(&wr.w, &c, &wr.st) != 0) {
        return false;
    }
    return aegis__log_writer_start(wr.w) == 0;
}

void wait_done(writer &wr)
{
    struct aegis_log_report rep;
    for (;;) {
        while (aegis__log_writer_pop_sc(wr.w, &rep)) {
            if (rep.kind != AEGIS_LOG_REPORT_DURABLE) {
                abort();
            }
            wr.done = rep.reqs_done;
        }
        if (wr.done >= wr.pushed) {
            return;
        }
        aegis__waker_prepare(&wr.waker);
        if (!aegis__log_writer_reports_empty(wr.w)) {
            aegis__waker_cancel(&wr.waker);
            continue;
        }
        aegis__waker_wait(&wr.waker, -1);
    }
}

void close_writer(writer &wr)
{
    aegis__log_writer_close(wr.w);
    aegis__log_state_release(&wr.st, nullptr);
    aegis__waker_close(&wr.waker);
}

void append(benchmark::State &state, enum aegis_log_sync sync)
{
    const uint32_t record_bytes = (uint32_t)state.range(0);
    const uint32_t batch = (uint32_t)state.range(1);
    std::string dir = make_dir("append");
    writer wr;
    if (!open_writer(wr, dir, sync)) {
        state.SkipWithError("cannot open the log writer (io_uring?)");
        remove_dir(dir);
        return;
    }
    struct aegis_buf *payload = aegis__buf_create(nullptr, record_bytes);
    memset(payload->data, 0x5a, record_bytes);
    aegis_index next = 1;
    uint64_t syncs0 = aegis__log_writer_syncs(wr.w);
    for (auto _ : state) {
        for (uint32_t i = 0; i < batch; i++) {
            struct aegis_log_req req;
            memset(&req, 0, sizeof(req));
            req.op = AEGIS_LOG_OP_ENTRY;
            req.entry.index = next++;
            req.entry.term = 1;
            req.entry.type = AEGIS_ENTRY_COMMAND;
            req.entry.buf = aegis__buf_ref(payload);
            while (!aegis__log_writer_push_sp_defer(wr.w, &req)) {
                aegis__log_writer_flush(wr.w);
                wait_done(wr);
            }
            wr.pushed++;
        }
        aegis__log_writer_flush(wr.w);
        wait_done(wr);
    }
    uint64_t syncs = aegis__log_writer_syncs(wr.w) - syncs0;
    state.SetItemsProcessed((int64_t)state.iterations() * batch);
    state.SetBytesProcessed((int64_t)state.iterations() * batch * record_bytes);
    state.counters["fdatasyncs_per_s"] =
        benchmark::Counter((double)syncs, benchmark::Counter::kIsRate);
    state.counters["batches_per_s"] =
        benchmark::Counter((double)state.iterations(), benchmark::Counter::kIsRate);
    aegis__buf_unref(payload);
    close_writer(wr);
    remove_dir(dir);
}

void BM_LogWriterAppend(benchmark::State &state)
{
    append(state, AEGIS_LOG_SYNC_FDATASYNC);
}

void BM_LogWriterAppendDsync(benchmark::State &state)
{
    append(state, AEGIS_LOG_SYNC_DSYNC);
}

void sizes_and_batches(benchmark::internal::Benchmark *b)
{
    for (int64_t size : {128, 1024, 4096}) {
        for (int64_t batch : {1, 16, 256, 4096}) {
            b->Args({size, batch});
        }
    }
    b->ArgNames({"record_bytes", "batch"});
    b->UseRealTime();
    b->MinTime(0.5);
}

void some_sizes_and_batches(benchmark::internal::Benchmark *b)
{
    for (int64_t batch : {1, 16, 256}) {
        b->Args({1024, batch});
    }
    b->ArgNames({"record_bytes", "batch"});
    b->UseRealTime();
    b->MinTime(0.5);
}

BENCHMARK(BM_LogWriterAppend)->Apply(sizes_and_batches);
BENCHMARK(BM_LogWriterAppendDsync)->Apply(some_sizes_and_batches);

// The disk's raw rates: one write of range(0) bytes at the next offset, made durable,
// per iteration. Mode 0: pwrite + fdatasync into a preallocated (fallocate) file, as
// the log does; 1: the same into a file already written once (no extent conversion);
// 2: pwritev2(RWF_DSYNC) into a preallocated file; 3: O_DIRECT | O_DSYNC, aligned.
enum raw_mode { RAW_FALLOCATED = 0, RAW_OVERWRITE = 1, RAW_DSYNC = 2, RAW_DIRECT = 3 };

void BM_RawFdatasync(benchmark::State &state)
{
    const size_t bytes = (size_t)state.range(0);
    const int mode = (int)state.range(1);
    const off_t file_bytes = 64 << 20;
    std::string dir = make_dir("raw");
    std::string path = dir + "/raw";
    int flags = O_RDWR | O_CREAT | (mode == RAW_DIRECT ? O_DIRECT | O_DSYNC : 0);
    int fd = open(path.c_str(), flags, 0644);
    void *buf = nullptr;
    if (fd < 0 || posix_memalign(&buf, 4096, bytes) != 0) {
        state.SkipWithError("cannot open the file or allocate (O_DIRECT unsupported?)");
        remove_dir(dir);
        return;
    }
    memset(buf, 0x5a, bytes);
    if (fallocate(fd, 0, 0, file_bytes) != 0) {
        state.SkipWithError("fallocate failed");
    }
    if (mode == RAW_OVERWRITE) {
        std::vector<char> chunk(1 << 20, 1);
        for (off_t off = 0; off < file_bytes; off += (off_t)chunk.size()) {
            if (pwrite(fd, chunk.data(), chunk.size(), off) < 0) {
                abort();
            }
        }
        fdatasync(fd);
    }
    off_t off = 0;
    for (auto _ : state) {
        struct iovec iov = {buf, bytes};
        ssize_t n = mode == RAW_DSYNC ? pwritev2(fd, &iov, 1, off, RWF_DSYNC)
                                      : pwrite(fd, buf, bytes, off);
        if (n != (ssize_t)bytes) {
            state.SkipWithError("write failed");
            break;
        }
        if (mode == RAW_FALLOCATED || mode == RAW_OVERWRITE) {
            fdatasync(fd);
        }
        off += (off_t)bytes;
        if (off + (off_t)bytes > file_bytes) {
            off = 0;
        }
    }
    state.counters["syncs_per_s"] =
        benchmark::Counter((double)state.iterations(), benchmark::Counter::kIsRate);
    state.SetBytesProcessed((int64_t)state.iterations() * (int64_t)bytes);
    close(fd);
    free(buf);
    remove_dir(dir);
}

BENCHMARK(BM_RawFdatasync)
    ->ArgNames({"bytes", "mode"})
    ->Args({4096, RAW_FALLOCATED})
    ->Args({4096, RAW_OVERWRITE})
    ->Args({4096, RAW_DSYNC})
    ->Args({4096, RAW_DIRECT})
    ->Args({1 << 20, RAW_FALLOCATED})
    ->Args({1 << 20, RAW_DIRECT})
    ->UseRealTime()
    ->MinTime(0.5);

}  // namespace

BENCHMARK_MAIN();
