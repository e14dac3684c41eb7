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
//   SnapshotStream  a view (aegis__kv_snap_open) of the 100k-key store read to the end in
//              64 KiB chunks, as the snapshot writer does.
//   ApplySetViewOpen  ApplySet while a view of the store is open and unread (the worst
//              case of copy-on-write: every first overwrite of a key keeps its old item).
//   Memory     not a speed: bytes per item (counter bytes_per_item) of a 100k-key store,
//              the heap's usable size of every live block (items, values, table) over the
//              key count, for 128-byte and 8-byte values.
// keys:1000 runs the same on a store that fits in the caches, which separates the work
// done per command from the cache misses of a large store (slot, item, value header).
// The SET payloads are encoded once, before timing (the log holds them already encoded).
#include "bm_common.h"

#define _Noreturn [[noreturn]]
extern "C" {
#include "engine/kv.h"
}
#undef _Noreturn

#include <malloc.h>

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

void BM_KvSnapshotStream(benchmark::State &state)
{
    struct aegis_kv kv;
    populate(&kv, kKeys);
    std::vector<uint8_t> chunk(64 << 10);
    uint64_t bytes = 0;
    for (auto _ : state) {
        struct aegis_kv_snap *view = nullptr;
        bm::check(aegis__kv_snap_open(&kv, &view) == 0, "snap_open");
        size_t n = 0;
        do {
            bm::check(aegis__kv_snap_read(view, chunk.data(), chunk.size(), &n) == 0, "read");
            benchmark::DoNotOptimize(chunk.data());
        } while (n > 0);
        bytes = aegis__kv_snap_size(view);
        aegis__kv_snap_close(view);
    }
    aegis__kv_close(&kv);
    state.SetBytesProcessed((int64_t)state.iterations() * (int64_t)bytes);
    state.SetItemsProcessed((int64_t)state.iterations() * (int64_t)kKeys);
}

void BM_KvApplySetViewOpen(benchmark::State &state)
{
    dataset &d = data();
    struct aegis_kv kv;
    populate(&kv, kKeys);
    struct aegis_kv_snap *view = nullptr;
    bm::check(aegis__kv_snap_open(&kv, &view) == 0, "snap_open");
    bm::fast_rng rng;
    for (auto _ : state) {
        apply_set(&kv, d.sets[rng.next() % kKeys]);
    }
    aegis__kv_snap_close(view);
    aegis__kv_close(&kv);
    state.SetItemsProcessed((int64_t)state.iterations());
}

// The heap's usable bytes of the live blocks, through the allocator the store is given.
struct counting_heap {
    int64_t live = 0;
    static void *do_malloc(void *data, size_t size)
    {
        void *p = malloc(size);
        if (p != nullptr) {
            static_cast<counting_heap *>(data)->live += (int64_t)malloc_usable_size(p);
        }
        return p;
    }
    static void *do_realloc(void *data, void *ptr, size_t size)
    {
        int64_t before = ptr != nullptr ? (int64_t)malloc_usable_size(ptr) : 0;
        void *p = realloc(ptr, size);
        if (p != nullptr) {
            static_cast<counting_heap *>(data)->live += (int64_t)malloc_usable_size(p) - before;
        }
        return p;
    }
    static void do_free(void *data, void *ptr)
    {
        if (ptr != nullptr) {
            static_cast<counting_heap *>(data)->live -= (int64_t)malloc_usable_size(ptr);
        }
        free(ptr);
    }
};

void BM_KvMemory(benchmark::State &state)
{
    const size_t value_len = (size_t)state.range(0);
    std::string value(value_len, 'x');
    double per_item = 0;
    for (auto _ : state) {
        counting_heap heap;
        struct aegis_allocator a = {counting_heap::do_malloc, counting_heap::do_realloc,
                                    counting_heap::do_free, &heap};
        struct aegis_kv kv;
        bm::check(aegis__kv_init(&kv, &a, 0x5eed) == 0, "kv_init");
        for (uint64_t i = 0; i < kKeys; i++) {
            struct aegis_buf *cmd = nullptr;
            const std::string &k = data().keys[i];
            bm::check(aegis__kv_encode_set(nullptr, k.data(), k.size(), value.data(),
                                           value.size(), &cmd) == 0,
                      "encode_set");
            apply_set(&kv, cmd);
            aegis__buf_unref(cmd);
        }
        per_item = (double)heap.live / (double)kKeys;
        aegis__kv_close(&kv);
    }
    state.counters["bytes_per_item"] = per_item;
    state.counters["payload_per_item"] = (double)(16 + value_len);
}

BENCHMARK(BM_KvApplySet)->ArgName("keys")->Arg(1000)->Arg(kKeys);
BENCHMARK(BM_KvApplySetInsert)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_KvGet)->ArgName("keys")->Arg(1000)->Arg(kKeys);
BENCHMARK(BM_KvSnapshot)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_KvSnapshotStream)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_KvApplySetViewOpen);
BENCHMARK(BM_KvMemory)
    ->ArgName("value")
    ->Arg(128)
    ->Arg(8)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
