/* SPDX-License-Identifier: MIT */
// The SPSC ring handoff between two threads (pipeline/ring.h: ck ring + aegis_waker),
// driven from bench/shim_ring.c so every ring operation is inlined as in the pipeline.
// Items are 64 bytes (a log request is about that size).
//   Local           one thread pushes a batch and pops it: the instruction cost of push,
//                   pop and the wake check (a full fence and a load) with no cross-core
//                   traffic. defer=1: push_sp_defer and one wake per batch of 64.
//   StreamSpin      (a) consumer busy: a consumer thread drains while the producer pushes;
//                   both poll (bounded: at most ~0.5 ms, then they sleep), so the
//                   consumer is normally awake and a push needs no wake-up. burst: pushes
//                   per wake check (1 = push_sp per item).
//   StreamSleep     the same with the pipeline's own consumer, which sleeps as soon as
//                   its ring is empty: whether it stays busy depends on the producer
//                   outrunning it. wakes_per_item shows what happened.
//   PingPongSleep   one item at a time, the consumer echoes it back, each side sleeps on
//                   its eventfd whenever its ring is empty: a round trip is up to two
//                   wake-ups (eventfd write, poll return, read) and two handoffs; the
//                   sleeps_per_item counters say how often a side really slept.
//   PingPongSpin    the same with both sides polling (bounded): the cross-core handoff
//                   latency without syscalls.
//   Wakeup          (b) made strict: each round trip starts with the consumer blocked in
//                   poll (the benchmark waits for that, untimed); the producer polls for
//                   the echo. Times one wake-up of a sleeping thread plus one handoff back.
// Per-item cost = 1 / items_per_second; the wake-up cost is Wakeup's time. Both threads
// share 2 cores with everything else running: the thread-pair numbers depend on
// scheduling more than anything here.
#include "bm_common.h"

#include "shim_ring.h"

namespace {

void BM_RingLocal(benchmark::State &state)
{
    const bool defer = state.range(0) != 0;
    const uint64_t n = 64 * 1024;
    for (auto _ : state) {
        if (bm_ring_local(n, 64, defer) != n) {
            bm::die("ring_local lost items");
        }
    }
    state.SetItemsProcessed((int64_t)(state.iterations() * n));
}

void report(benchmark::State &state, const struct bm_ring_stats &st, uint64_t items)
{
    if (st.order_errors != 0) {
        state.SkipWithError("items out of order");
    }
    double n = items > 0 ? (double)items : 1.0;
    state.counters["consumer_wakes_per_item"] = (double)st.consumer_wakes / n;
    state.counters["producer_wakes_per_item"] = (double)st.producer_wakes / n;
    state.counters["consumer_sleeps_per_item"] = (double)st.consumer_sleeps / n;
    state.counters["timeouts"] = (double)(st.producer_timeouts + st.consumer_timeouts);
}

void stream(benchmark::State &state, bool spin)
{
    const unsigned burst = (unsigned)state.range(0);
    const uint64_t per_iter = 4096;
    struct bm_ring_pair *p = bm_ring_pair_create(BM_RING_STREAM, 1024, spin);
    bm::check(p != nullptr, "ring pair");
    for (auto _ : state) {
        bm_ring_stream(p, per_iter, burst);
    }
    bm_ring_stream_sync(p);  // Outside the timing, but the items must all arrive.
    struct bm_ring_stats st;
    bm_ring_pair_destroy(p, &st);
    uint64_t items = (uint64_t)state.iterations() * per_iter;
    if (st.received != items) {
        state.SkipWithError("items lost");
    }
    state.SetItemsProcessed((int64_t)items);
    report(state, st, items);
}

void BM_RingStreamSpin(benchmark::State &state)
{
    stream(state, true);
}

void BM_RingStreamSleep(benchmark::State &state)
{
    stream(state, false);
}

void pingpong(benchmark::State &state, bool spin)
{
    const uint64_t per_iter = 1;  // The time per iteration is the round trip.
    struct bm_ring_pair *p = bm_ring_pair_create(BM_RING_PINGPONG, 64, spin);
    bm::check(p != nullptr, "ring pair");
    for (auto _ : state) {
        bm_ring_pingpong(p, per_iter);
    }
    struct bm_ring_stats st;
    bm_ring_pair_destroy(p, &st);
    uint64_t trips = (uint64_t)state.iterations() * per_iter;
    if (st.received != trips) {
        state.SkipWithError("items lost");
    }
    state.SetItemsProcessed((int64_t)trips);
    report(state, st, trips);
}

void BM_RingPingPongSleep(benchmark::State &state)
{
    pingpong(state, false);
}

void BM_RingPingPongSpin(benchmark::State &state)
{
    pingpong(state, true);
}

// Two threads on a shared 2-core machine: one run says little, so each thread-pair
// benchmark runs 5 times and reports mean, median, stddev and cv (read the median).
void two_threads(benchmark::internal::Benchmark *b)
{
    b->UseRealTime()->Repetitions(5)->ReportAggregatesOnly(true);
}

// (b) with the consumer certainly asleep each time: a pair whose consumer sleeps as soon
// as its ring is empty and whose producer polls for the echo (bounded). Each iteration
// first waits, untimed, until the consumer is blocked in poll (20 us sleeps), then times
// push -> echo on the wall clock. consumer_wakes_per_item must read 1.
void BM_RingWakeup(benchmark::State &state)
{
    struct bm_ring_pair *p = bm_ring_pair_create(BM_RING_PINGPONG, 64, false);
    bm::check(p != nullptr, "ring pair");
    bm_ring_pair_set_producer_spin(p, true);
    for (auto _ : state) {
        state.SetIterationTime((double)bm_ring_wakeup_once(p, 20) * 1e-9);
    }
    struct bm_ring_stats st;
    bm_ring_pair_destroy(p, &st);
    uint64_t trips = (uint64_t)state.iterations();
    if (st.received != trips) {
        state.SkipWithError("items lost");
    }
    state.SetItemsProcessed((int64_t)trips);
    report(state, st, trips);
}

BENCHMARK(BM_RingLocal)->ArgName("defer")->Arg(0)->Arg(1);
BENCHMARK(BM_RingStreamSpin)->ArgName("burst")->Arg(1)->Arg(64)->Apply(two_threads);
BENCHMARK(BM_RingStreamSleep)->ArgName("burst")->Arg(1)->Arg(64)->Apply(two_threads);
BENCHMARK(BM_RingPingPongSleep)->Apply(two_threads);
BENCHMARK(BM_RingPingPongSpin)->Apply(two_threads);
BENCHMARK(BM_RingWakeup)->UseManualTime()->Repetitions(5)->ReportAggregatesOnly(true);

}  // namespace

BENCHMARK_MAIN();
