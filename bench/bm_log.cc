/* SPDX-License-Identifier: MIT */
// The in-memory Raft log (engine/log.h), as the core uses it on every proposal and every
// AppendEntries.
//   Append         aegis__log_append of one 128-byte entry (a shared payload: each
//                  append takes a reference), with aegis__log_commit + aegis__log_compact
//                  every `compact_every` entries so the log stays at a steady size; the
//                  compaction (dropping that many references) is included, amortised;
//   Range          aegis__log_range of 64 entries from a 64k-entry log and the unref of
//                  each copy: what the leader does to fill one AppendEntries;
//   TermAt         aegis__log_term_at at random indexes of a 64k-entry log (consistency
//                  checks, commit rule).
// items/s counts entries.
#include "bm_common.h"

#define _Noreturn [[noreturn]]
extern "C" {
#include "engine/log.h"
}
#undef _Noreturn

#include <vector>

namespace {

struct aegis_entry make_entry(aegis_index index, struct aegis_buf *payload)
{
    struct aegis_entry e;
    memset(&e, 0, sizeof(e));
    e.index = index;
    e.term = 3;
    e.type = AEGIS_ENTRY_COMMAND;
    e.buf = payload;
    return e;
}

void BM_LogAppend(benchmark::State &state)
{
    const uint64_t every = (uint64_t)state.range(0);
    struct aegis_buf *payload = bm::payload(128);
    struct aegis_log l;
    aegis__log_init(&l, nullptr);
    aegis_index next = 1;
    for (auto _ : state) {
        struct aegis_entry e = make_entry(next, payload);
        if (aegis__log_append(&l, &e) != 0) {
            bm::die("log_append");
        }
        if (next % every == 0) {
            if (aegis__log_commit(&l, next) != 0 || aegis__log_compact(&l, next) != 0) {
                bm::die("commit/compact");
            }
        }
        next++;
    }
    state.counters["ring_slots"] = (double)l.cap;
    aegis__log_close(&l);
    aegis__buf_unref(payload);
    state.SetItemsProcessed((int64_t)state.iterations());
}

void fill(struct aegis_log *l, struct aegis_buf *payload, aegis_index n)
{
    aegis__log_init(l, nullptr);
    for (aegis_index i = 1; i <= n; i++) {
        struct aegis_entry e = make_entry(i, payload);
        bm::check(aegis__log_append(l, &e) == 0, "log_append");
    }
}

void BM_LogRange(benchmark::State &state)
{
    const uint32_t count = (uint32_t)state.range(0);
    const aegis_index n = 65536;
    struct aegis_buf *payload = bm::payload(128);
    struct aegis_log l;
    fill(&l, payload, n);
    std::vector<struct aegis_entry> out(count);
    aegis_index from = 1;
    for (auto _ : state) {
        uint32_t got = aegis__log_range(&l, from, count, UINT64_MAX, out.data());
        if (got != count) {
            bm::die("log_range");
        }
        for (uint32_t i = 0; i < got; i++) {
            aegis__entry_unref(&out[i]);
        }
        from += count;
        if (from + count > n) {
            from = 1;
        }
    }
    aegis__log_close(&l);
    aegis__buf_unref(payload);
    state.SetItemsProcessed((int64_t)state.iterations() * count);
}

void BM_LogTermAt(benchmark::State &state)
{
    const aegis_index n = 65536;
    struct aegis_buf *payload = bm::payload(128);
    struct aegis_log l;
    fill(&l, payload, n);
    bm::fast_rng rng;
    for (auto _ : state) {
        aegis_term t = aegis__log_term_at(&l, 1 + rng.next() % n);
        benchmark::DoNotOptimize(t);
    }
    aegis__log_close(&l);
    aegis__buf_unref(payload);
    state.SetItemsProcessed((int64_t)state.iterations());
}

BENCHMARK(BM_LogAppend)->ArgName("compact_every")->Arg(64)->Arg(1024)->Arg(16384);
BENCHMARK(BM_LogRange)->ArgName("entries")->Arg(64);
BENCHMARK(BM_LogTermAt);

}  // namespace

BENCHMARK_MAIN();
