/* SPDX-License-Identifier: MIT */
// The state machine (engine/kv.h) as the apply thread runs it: 100 000 keys of 16 bytes
// ("key:000000012345") holding 128-byte values, keys picked uniformly as aegis-bench does.
//   ApplySet   aegis__kv_apply_entry of an encoded SET log entry (decode, hash, find,
//              replace the value, bump the applied index) + aegis__kv_result_release, on
//              a store already holding every key (steady state: every SET overwrites);
//   ApplySetInsert  the same into an empty store, 100 000 distinct keys per iteration
//              (growth of the table included), reported per key;
//   Get        aegis__kv_get + unref of the value reference (a ReadIndex read, served
//              without the log);
//   Snapshot   aegis__kv_snapshot of the whole 100k-key store (bytes/s of snapshot).
// keys:1000 runs the same on a store that fits in the caches, which separates the work
// done per command from the cache misses of a large store (slot, item, value header).
// The SET payloads are encoded once, before timing (the log holds them already encoded).
#include "bm_common.h"

#define _Noreturn [[noreturn]]
extern "C" {
#include "engine/kv.h"
}
#undef _Noreturn

#include <vector>

namespace {

constexpr uint64_t kKeys = 100000;
constexpr size_t kValue = 128;

struct dataset {
    std::vector<std::string> keys;
    std::vector<struct aegis_buf *> sets;  // Encoded SET command per key.

    dataset()
    {
        std::string value(kValue, 'x');
        keys.reserve(kKeys);
        sets.reserve(kKeys);
        for (uint64_t i = 0; i < kKeys; i++) {
            keys.push_back(bm::key(i));
            struct aegis_buf *b = nullptr;
            bm::check(aegis__kv_encode_set(nullptr, keys[i].data(), keys[i].size(),
                                           value.data(), value.size(), &b) == 0,
                      "encode_set");
            sets.push_back(b);
        }
    }
    ~dataset()
    {
        for (auto *b : sets) {
            aegis__buf_unref(b);
        }
    }
};

dataset &data()
{
    static dataset d;
    return d;
}

void apply_set(struct aegis_kv *kv, struct aegis_buf *cmd)
{
    struct aegis_entry e;
    memset(&e, 0, sizeof(e));
    e.index = aegis__kv_applied_index(kv) + 1;
    e.term = 1;
    e.type = AEGIS_ENTRY_COMMAND;
    e.buf = cmd;
    struct aegis_kv_result res;
    if (aegis__kv_apply_entry(kv, &e, &res) != 0 || res.status != 0) {
        bm::die("kv_apply");
    }
    aegis__kv_result_release(&res);
}

void populate(struct aegis_kv *kv, uint64_t keys)
{
    bm::check(aegis__kv_init(kv, nullptr, 0x5eed) == 0, "kv_init");
    for (uint64_t i = 0; i < keys; i++) {
        apply_set(kv, data().sets[i]);
    }
}

void BM_KvApplySet(benchmark::State &state)
{
    const uint64_t keys = (uint64_t)state.range(0);
    dataset &d = data();
    struct aegis_kv kv;
    populate(&kv, keys);
    bm::fast_rng rng;
    for (auto _ : state) {
        apply_set(&kv, d.sets[rng.next() % keys]);
    }
    aegis__kv_close(&kv);
    state.SetItemsProcessed((int64_t)state.iterations());
    state.SetBytesProcessed((int64_t)state.iterations() * (int64_t)kValue);
}

void BM_KvApplySetInsert(benchmark::State &state)
{
    dataset &d = data();
    for (auto _ : state) {
        struct aegis_kv kv;
        bm::check(aegis__kv_init(&kv, nullptr, 0x5eed) == 0, "kv_init");
        for (uint64_t i = 0; i < kKeys; i++) {
            apply_set(&kv, d.sets[(i * 7919) % kKeys]);
        }
        state.PauseTiming();
        aegis__kv_close(&kv);
        state.ResumeTiming();
    }
    state.SetItemsProcessed((int64_t)state.iterations() * (int64_t)kKeys);
}

void BM_KvGet(benchmark::State &state)
{
    const uint64_t keys = (uint64_t)state.range(0);
    dataset &d = data();
    struct aegis_kv kv;
    populate(&kv, keys);
    bm::fast_rng rng;
    for (auto _ : state) {
        const std::string &k = d.keys[rng.next() % keys];
        struct aegis_buf *v = nullptr;
        if (aegis__kv_get(&kv, k.data(), k.size(), &v, nullptr) != 0) {
            bm::die("kv_get");
        }
        benchmark::DoNotOptimize(v);
        aegis__buf_unref(v);
    }
    aegis__kv_close(&kv);
    state.SetItemsProcessed((int64_t)state.iterations());
}

void BM_KvSnapshot(benchmark::State &state)
{
    struct aegis_kv kv;
    populate(&kv, kKeys);
    size_t bytes = 0;
    for (auto _ : state) {
        struct aegis_buf *snap = nullptr;
        if (aegis__kv_snapshot(&kv, &snap) != 0) {
            bm::die("kv_snapshot");
        }
        bytes = snap->len;
        aegis__buf_unref(snap);
    }
    aegis__kv_close(&kv);
    state.SetBytesProcessed((int64_t)state.iterations() * (int64_t)bytes);
    state.SetItemsProcessed((int64_t)state.iterations() * (int64_t)kKeys);
    state.counters["snapshot_bytes"] = (double)bytes;
}

BENCHMARK(BM_KvApplySet)->ArgName("keys")->Arg(1000)->Arg(kKeys);
BENCHMARK(BM_KvApplySetInsert)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_KvGet)->ArgName("keys")->Arg(1000)->Arg(kKeys);
BENCHMARK(BM_KvSnapshot)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
