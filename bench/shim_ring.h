/* SPDX-License-Identifier: MIT */
/* C side of bm_ring.cc: ck's ring macros are C only (pipeline/ring.h hides them from C++),
 * so the ring handoff benchmark's producer and consumer loops live here, compiled as C
 * with every ring operation inlined exactly as in the pipeline, and the C++ benchmark
 * only times calls into them.
 *
 * A pair is one SPSC ring of 64-byte items (about the size of a log request) from the
 * calling thread (producer) to a consumer thread started by bm_ring_pair_create, plus a
 * ring back for echoes. Both sides follow ring.h's wake protocol; no loop spins without
 * bound: a "spin" side polls at most BM_RING_SPIN_POLLS times (with pause, yielding the
 * CPU every 64 polls) before it announces itself and sleeps on its eventfd, and every
 * sleep has a 100 ms timeout. */
#ifndef AEGIS_BENCH_SHIM_RING_H
#define AEGIS_BENCH_SHIM_RING_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Polls before a spinning side goes to sleep: about 0.5 ms with pause. */
#define BM_RING_SPIN_POLLS 20000u

enum bm_ring_mode {
    BM_RING_STREAM = 1,   /* Consumer drains; the producer never waits for it. */
    BM_RING_PINGPONG = 2, /* Consumer echoes each item back on the second ring. */
};

struct bm_ring_stats {
    uint64_t received;        /* Items the consumer popped. */
    uint64_t order_errors;    /* Items popped out of sequence (must stay 0). */
    uint64_t consumer_sleeps; /* aegis__waker_wait calls by the consumer. */
    uint64_t producer_sleeps; /* ... by the producer (ring full, or waiting for an echo). */
    uint64_t producer_timeouts; /* Producer sleeps that ran the whole 100 ms timeout and
                                 * found nothing: a lost wake-up or a very long stall. */
    uint64_t consumer_timeouts; /* Consumer sleeps that ran the whole timeout while an
                                 * item was waiting: the same. */
    uint64_t consumer_wakes;  /* eventfd writes to wake the consumer. */
    uint64_t producer_wakes;  /* eventfd writes to wake the producer. */
};

struct bm_ring_pair;

/* Create the rings (@slots: a power of two) and start the consumer. @spin: both sides
 * poll up to BM_RING_SPIN_POLLS times before sleeping; otherwise they sleep as soon as
 * their ring is empty (the pipeline's behaviour). NULL on failure. */
struct bm_ring_pair *bm_ring_pair_create(enum bm_ring_mode mode, unsigned int slots, bool spin);

/* Producer side only: poll (bounded) before sleeping, whatever @spin said at create. */
void bm_ring_pair_set_producer_spin(struct bm_ring_pair *p, bool spin);

/* Stop and join the consumer (it drains first), fill @stats_out (may be NULL), free. */
void bm_ring_pair_destroy(struct bm_ring_pair *p, struct bm_ring_stats *stats_out);

/* STREAM: push @n items, waking the consumer after every @burst pushes (1: push_sp each
 * item; larger: push_sp_defer and one wake per burst, as the raft thread feeds the log
 * writer). Waits (spin, then sleep) while the ring is full. */
void bm_ring_stream(struct bm_ring_pair *p, uint64_t n, unsigned int burst);

/* STREAM: wait until the consumer has popped everything pushed so far. */
void bm_ring_stream_sync(struct bm_ring_pair *p);

/* PINGPONG: @n round trips: push one item, wait for its echo. */
void bm_ring_pingpong(struct bm_ring_pair *p, uint64_t n);

/* PINGPONG: one round trip that starts with the consumer asleep. Waits (sleeping @idle_us
 * at a time, at most 1000 times) until the consumer has announced that it sleeps, sleeps
 * @idle_us more so that it is blocked in poll, then pushes one item and polls (bounded,
 * then sleeps) for the echo. Returns the nanoseconds from just before the push to the
 * echo's arrival on CLOCK_MONOTONIC: one wake-up of a sleeping thread, its handoff back,
 * and the cost of the eventfd write, the poll return and the read in between. */
uint64_t bm_ring_wakeup_once(struct bm_ring_pair *p, unsigned int idle_us);

/* Counters so far (consumer-side ones are racy snapshots while it runs). */
void bm_ring_pair_stats(const struct bm_ring_pair *p, struct bm_ring_stats *out);

/* One thread, no consumer thread: push @batch items with push_sp (@defer: push_sp_defer
 * and one wake per batch) into a ring whose consumer waker is awake, then pop them; @n
 * items in all. The instruction cost of the ring and of the wake check, with no
 * cache-line transfer between cores. Returns the number popped. */
uint64_t bm_ring_local(uint64_t n, unsigned int batch, bool defer);

#ifdef __cplusplus
}
#endif

#endif /* AEGIS_BENCH_SHIM_RING_H */
