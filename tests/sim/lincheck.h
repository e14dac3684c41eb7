/* SPDX-License-Identifier: MIT */
/* A linearizability checker for the simulation's key-value histories.
 *
 * The model is a map from small integer keys to int64 values, every key starting absent
 * (SIM_KV_ABSENT). Operations:
 *   Set(k, v)            -> ok                     (out unused)
 *   CAS(k, expect, new)  -> 1 swapped, 0 mismatch  (expect may be SIM_KV_ABSENT)
 *   Incr(k, delta)       -> the new value          (absent counts as 0)
 *   Get(k)               -> the value, or SIM_KV_ABSENT
 *
 * Every operation touches one key, so the history is split per key (linearizability is
 * compositional, Herlihy & Wing) and each key is searched on its own with the algorithm of
 * Wing & Gong as improved by Lowe and used by Porcupine: the call and return events form
 * a doubly linked list in real-time order; the search repeatedly linearizes a pending call
 * whose effect matches the model, lifting its events out of the list, and backtracks when
 * it reaches a return whose operation it has not linearized yet. A cache of (set of
 * linearized operations, model state) prunes configurations already explored.
 *
 * Times are plain integers; the simulation uses a global event counter, so no two events
 * share a time. Where they do (hand-made histories), calls sort before returns, which
 * treats the two operations as concurrent: the permissive reading, never a false alarm.
 *
 * Indeterminate operations: ret == LIN_NEVER means the client never learned the outcome
 * (the node crashed, the leader was lost, the client gave up). Such an operation may take
 * effect at any point after its call, or never: it has no return event, and the search
 * succeeds once every return event is passed. result_known == false with a finite ret
 * means the operation certainly finished by ret but its output is unknown: any output
 * matches. The search is bounded by a step budget; running out gives LIN_UNKNOWN, which
 * callers report but do not count as a violation. */
#ifndef SIM_LINCHECK_H
#define SIM_LINCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_KV_ABSENT ((int64_t)-1)
#define LIN_NEVER UINT64_MAX

enum sim_kv_kind {
    SIM_KV_SET = 1,
    SIM_KV_CAS = 2,
    SIM_KV_INCR = 3,
    SIM_KV_GET = 4,
};

struct lin_op {
    uint64_t id;       /* Caller's identifier, for reports. */
    uint32_t key;
    uint8_t kind;      /* enum sim_kv_kind. */
    bool result_known;
    int64_t arg1;      /* Set: value; CAS: expected; Incr: delta. */
    int64_t arg2;      /* CAS: new value. */
    int64_t out;       /* See the table above. */
    uint64_t call;     /* Time of the invocation. */
    uint64_t ret;      /* Time of the response, or LIN_NEVER. */
};

enum lin_verdict {
    LIN_OK = 0,
    LIN_VIOLATION = 1,
    LIN_UNKNOWN = 2, /* The search budget ran out before a verdict. */
};

struct lin_report {
    enum lin_verdict verdict;
    uint32_t key;          /* On a violation or unknown: the key whose history failed. */
    size_t key_ops;        /* Operations on that key. */
    size_t deepest;        /* Most operations linearized at once during the search. */
    uint64_t stuck_id;     /* On a violation: the operation whose return could not be
                              reached in the deepest configuration found. */
    uint64_t steps;        /* Search steps taken over all keys. */
};

/* Apply @op to @state under the model: returns whether @op's recorded output is possible
 * from @state (always true when the output is unknown) and stores the next state. */
bool lin_model_step(const struct lin_op *op, int64_t state, int64_t *next_out);

/* Check the @count operations of @ops (any order; not modified) for linearizability,
 * spending at most @budget search steps per key. Fills @report (may be NULL) and returns
 * its verdict. Aborts on allocation failure (test code). */
enum lin_verdict lin_check(const struct lin_op *ops, size_t count, uint64_t budget,
                           struct lin_report *report);

#endif /* SIM_LINCHECK_H */
