/* SPDX-License-Identifier: MIT */
// CRC32C: the checksum of every log record, snapshot and hard state. The SSE4.2 crc32
// instruction (what aegis__crc32c picks on this CPU) against the slicing-by-8 table
// (aegis__crc32c_sw), from 64 B (a small record header) to 64 KiB (a large value), in
// bytes per second. The input is 64-byte aligned and already in cache: this is the
// checksum's own speed, not memory bandwidth.
#include "bm_common.h"

#define _Noreturn [[noreturn]]
extern "C" {
#include "engine/crc32c.h"
}
#undef _Noreturn

#include <vector>

namespace {

std::vector<uint8_t> &input()
{
    static std::vector<uint8_t> buf = [] {
        std::vector<uint8_t> b((64u << 10) + 64);
        bm::fast_rng rng;
        for (auto &c : b) {
            c = (uint8_t)rng.next();
        }
        return b;
    }();
    return buf;
}

const uint8_t *aligned_input()
{
    uintptr_t p = (uintptr_t)input().data();
    return (const uint8_t *)((p + 63) & ~(uintptr_t)63);
}

void BM_Crc32cHw(benchmark::State &state)
{
    const size_t len = (size_t)state.range(0);
    const uint8_t *data = aligned_input();
    if (!aegis__crc32c_hw()) {
        state.SkipWithError("this CPU has no SSE4.2 crc32: aegis__crc32c is the table");
        return;
    }
    uint32_t crc = 0;
    for (auto _ : state) {
        crc = aegis__crc32c(crc, data, len);
        benchmark::DoNotOptimize(crc);
    }
    state.SetBytesProcessed((int64_t)state.iterations() * (int64_t)len);
}

void BM_Crc32cTable(benchmark::State &state)
{
    const size_t len = (size_t)state.range(0);
    const uint8_t *data = aligned_input();
    uint32_t crc = 0;
    for (auto _ : state) {
        crc = aegis__crc32c_sw(crc, data, len);
        benchmark::DoNotOptimize(crc);
    }
    state.SetBytesProcessed((int64_t)state.iterations() * (int64_t)len);
}

BENCHMARK(BM_Crc32cHw)->ArgName("bytes")->RangeMultiplier(4)->Range(64, 64 << 10);
BENCHMARK(BM_Crc32cTable)->ArgName("bytes")->RangeMultiplier(4)->Range(64, 64 << 10);

}  // namespace

BENCHMARK_MAIN();
