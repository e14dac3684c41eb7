/* SPDX-License-Identifier: MIT */
// Shared by the bm_*.cc micro-benchmarks: the C headers of Aegis seen from C++, and small
// helpers (payload buffers, Redis-style keys).
//
// The public headers (aegis/*.h) have their own C++ guards; the private ones (engine/) have
// none, so they are included inside extern "C". They compile
// as C++17 with one adjustment: engine/assert.h declares aegis__assert_fail _Noreturn,
// a C11 keyword C++ lacks, which [[noreturn]] replaces. Flexible array members
// (struct aegis_buf, struct aegis_kv_item) are a GNU extension in C++ that g++ accepts
// (bench/ builds with -Wall -Wextra, not -Wpedantic). ck's ring macros are C only; ring.h
// hides them from C++ and bench/shim_ring.c drives the rings from C.
#ifndef AEGIS_BENCH_BM_COMMON_H
#define AEGIS_BENCH_BM_COMMON_H

#include <aegis/error.h>

#define _Noreturn [[noreturn]]
extern "C" {
#include "engine/buf.h"
#include "engine/entry.h"
}
#undef _Noreturn

#include <benchmark/benchmark.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <string>

namespace bm {

// Abort on a setup failure: a benchmark that measures a broken path is worse than none.
[[noreturn]] inline void die(const char *what)
{
    fprintf(stderr, "benchmark setup failed: %s\n", what);
    abort();
}

inline void check(bool ok, const char *what)
{
    if (!ok) {
        die(what);
    }
}

// A buffer of @len bytes of 'x' (the filler redis-benchmark and aegis-bench use), one
// reference owned by the caller.
inline struct aegis_buf *payload(size_t len)
{
    struct aegis_buf *b = aegis__buf_create(nullptr, len);
    check(b != nullptr, "buf_create");
    memset(b->data, 'x', len);
    return b;
}

// "key:000000012345": the 16-byte keys of redis-benchmark -r and aegis-bench.
inline std::string key(uint64_t i)
{
    char k[32];
    snprintf(k, sizeof(k), "key:%012llu", (unsigned long long)i);
    return std::string(k);
}

// A small fast generator for picking keys in the timed loop (xorshift64*).
struct fast_rng {
    uint64_t s = 0x9e3779b97f4a7c15ull;
    uint64_t next()
    {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return s * 0x2545f4914f6cdd1dull;
    }
};

}  // namespace bm

#endif  // AEGIS_BENCH_BM_COMMON_H
