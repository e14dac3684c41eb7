/* SPDX-License-Identifier: MIT */
/* Linearizability checker: per-key Wing & Gong / Lowe search with a configuration cache.
 * See lincheck.h for the model and the treatment of indeterminate operations.
 *
 * Data layout for one key with n operations and m <= 2n events: events sorted by time
 * live in ev[1..m] with ev[0] the list's sentinel; next[]/prev[] link the events still
 * unlinearized (removal and reinsertion in stack order, as in dancing links). The set of
 * linearized operations is a bitset of n bits with an incremental Zobrist hash; the cache
 * stores (hash, state, bitset copy) in an open-addressing table whose bitsets live in one
 * growing arena. */
#include "lincheck.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lin_event {
    uint64_t time;
    uint32_t op;     /* Index into the key's operations. */
    uint32_t match;  /* For a call: its return event, 0 when it has none. */
    bool is_ret;
};

struct lin_slot {
    uint64_t hash;   /* 0 marks an empty slot (hashes are forced non-zero). */
    int64_t state;
    size_t off;      /* Offset of the bitset copy in the arena. */
};

struct lin_cache {
    struct lin_slot *slots;
    size_t cap;      /* Power of two. */
    size_t used;
    uint64_t *arena;
    size_t arena_len;
    size_t arena_cap;
    size_t words;    /* Bitset words per configuration. */
};

struct lin_frame {
    uint32_t call_ev;
    int64_t state;
};

static void *xmalloc(size_t n)
{
    void *p = calloc(1, n == 0 ? 1 : n);

    if (p == NULL) {
        fprintf(stderr, "lincheck: out of memory\n");
        abort();
    }
    return p;
}

bool lin_model_step(const struct lin_op *op, int64_t state, int64_t *next_out)
{
    int64_t base;

    switch (op->kind) {
    case SIM_KV_SET:
        *next_out = op->arg1;
        return true;
    case SIM_KV_CAS:
        if (state == op->arg1) {
            *next_out = op->arg2;
            return !op->result_known || op->out == 1;
        }
        *next_out = state;
        return !op->result_known || op->out == 0;
    case SIM_KV_INCR:
        base = state == SIM_KV_ABSENT ? 0 : state;
        *next_out = base + op->arg1;
        return !op->result_known || op->out == *next_out;
    case SIM_KV_GET:
        *next_out = state;
        return !op->result_known || op->out == state;
    default:
        fprintf(stderr, "lincheck: unknown operation kind %u\n", op->kind);
        abort();
    }
}

static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t config_hash(uint64_t set_hash, int64_t state)
{
    uint64_t h = mix64(set_hash ^ mix64((uint64_t)state));

    return h == 0 ? 1 : h;
}

static void cache_init(struct lin_cache *c, size_t words)
{
    c->cap = 1024;
    c->used = 0;
    c->slots = xmalloc(c->cap * sizeof(*c->slots));
    c->words = words;
    c->arena_cap = 1024 * words;
    c->arena_len = 0;
    c->arena = xmalloc(c->arena_cap * sizeof(uint64_t));
}

static void cache_close(struct lin_cache *c)
{
    free(c->slots);
    free(c->arena);
}

static void cache_grow(struct lin_cache *c)
{
    struct lin_slot *old = c->slots;
    size_t old_cap = c->cap;

    c->cap *= 2;
    c->slots = xmalloc(c->cap * sizeof(*c->slots));
    for (size_t i = 0; i < old_cap; i++) {
        size_t j;

        if (old[i].hash == 0) {
            continue;
        }
        j = old[i].hash & (c->cap - 1);
        while (c->slots[j].hash != 0) {
            j = (j + 1) & (c->cap - 1);
        }
        c->slots[j] = old[i];
    }
    free(old);
}

/* Insert the configuration unless present; returns true when it was new. */
static bool cache_insert(struct lin_cache *c, const uint64_t *bits, uint64_t hash,
                         int64_t state)
{
    size_t j = hash & (c->cap - 1);

    while (c->slots[j].hash != 0) {
        struct lin_slot *s = &c->slots[j];

        if (s->hash == hash && s->state == state &&
            memcmp(c->arena + s->off, bits, c->words * sizeof(uint64_t)) == 0) {
            return false;
        }
        j = (j + 1) & (c->cap - 1);
    }
    if (c->arena_len + c->words > c->arena_cap) {
        c->arena_cap *= 2;
        c->arena = realloc(c->arena, c->arena_cap * sizeof(uint64_t));
        if (c->arena == NULL) {
            fprintf(stderr, "lincheck: out of memory\n");
            abort();
        }
    }
    memcpy(c->arena + c->arena_len, bits, c->words * sizeof(uint64_t));
    c->slots[j] = (struct lin_slot){.hash = hash, .state = state, .off = c->arena_len};
    c->arena_len += c->words;
    c->used++;
    if (c->used * 2 > c->cap) {
        cache_grow(c);
    }
    return true;
}

static int compare_events(const void *pa, const void *pb)
{
    const struct lin_event *a = pa, *b = pb;

    if (a->time != b->time) {
        return a->time < b->time ? -1 : 1;
    }
    if (a->is_ret != b->is_ret) {
        return a->is_ret ? 1 : -1; /* Calls first: equal times count as concurrent. */
    }
    return a->op < b->op ? -1 : a->op > b->op ? 1 : 0;
}

static int compare_ops_by_key(const void *pa, const void *pb)
{
    const struct lin_op *a = pa, *b = pb;

    if (a->key != b->key) {
        return a->key < b->key ? -1 : 1;
    }
    if (a->call != b->call) {
        return a->call < b->call ? -1 : 1;
    }
    return a->id < b->id ? -1 : a->id > b->id ? 1 : 0;
}

/* Build the sorted event list of @n operations; returns the number of events. */
static uint32_t build_events(const struct lin_op *ops, uint32_t n, struct lin_event *ev)
{
    uint32_t m = 0;
    uint32_t *call_at = xmalloc(n * sizeof(uint32_t));

    for (uint32_t i = 0; i < n; i++) {
        ev[1 + m++] = (struct lin_event){.time = ops[i].call, .op = i};
        if (ops[i].ret != LIN_NEVER) {
            uint64_t ret = ops[i].ret < ops[i].call ? ops[i].call : ops[i].ret;

            ev[1 + m++] = (struct lin_event){.time = ret, .op = i, .is_ret = true};
        }
    }
    qsort(ev + 1, m, sizeof(*ev), compare_events);
    for (uint32_t e = 1; e <= m; e++) {
        if (!ev[e].is_ret) {
            call_at[ev[e].op] = e;
        }
    }
    for (uint32_t e = 1; e <= m; e++) {
        if (ev[e].is_ret) {
            ev[call_at[ev[e].op]].match = e;
        }
    }
    free(call_at);
    return m;
}

struct lin_search {
    const struct lin_op *ops;
    struct lin_event *ev;
    uint32_t *next;
    uint32_t *prev;
    uint64_t *bits;
    uint64_t *zobrist;
    struct lin_frame *stack;
    uint32_t depth;
    uint32_t returns_left;
    uint64_t set_hash;
    int64_t state;
    struct lin_cache cache;
};

static void unlink_event(struct lin_search *s, uint32_t e)
{
    s->next[s->prev[e]] = s->next[e];
    s->prev[s->next[e]] = s->prev[e];
}

static void relink_event(struct lin_search *s, uint32_t e)
{
    s->next[s->prev[e]] = e;
    s->prev[s->next[e]] = e;
}

static void toggle_op(struct lin_search *s, uint32_t op)
{
    s->bits[op / 64] ^= (uint64_t)1 << (op % 64);
    s->set_hash ^= s->zobrist[op];
}

static void search_init(struct lin_search *s, const struct lin_op *ops, uint32_t n)
{
    size_t words = (n + 63) / 64;
    uint32_t m;

    memset(s, 0, sizeof(*s));
    s->ops = ops;
    s->state = SIM_KV_ABSENT;
    s->ev = xmalloc((2 * (size_t)n + 1) * sizeof(*s->ev));
    m = build_events(ops, n, s->ev);
    s->next = xmalloc((m + 1) * sizeof(uint32_t));
    s->prev = xmalloc((m + 1) * sizeof(uint32_t));
    for (uint32_t i = 0; i <= m; i++) {
        s->next[i] = i == m ? 0 : i + 1;
        s->prev[i] = i == 0 ? m : i - 1;
        s->returns_left += i > 0 && s->ev[i].is_ret;
    }
    s->bits = xmalloc(words * sizeof(uint64_t));
    s->zobrist = xmalloc(n * sizeof(uint64_t));
    for (uint32_t i = 0; i < n; i++) {
        s->zobrist[i] = mix64(i * 0x2545f4914f6cdd1dull + 17);
    }
    s->stack = xmalloc((n + 1) * sizeof(*s->stack));
    cache_init(&s->cache, words);
}

static void search_close(struct lin_search *s)
{
    cache_close(&s->cache);
    free(s->stack);
    free(s->zobrist);
    free(s->bits);
    free(s->prev);
    free(s->next);
    free(s->ev);
}

/* Linearize the call at event @e if the model allows it and the resulting configuration
 * is new; returns whether it did. */
static bool try_linearize(struct lin_search *s, uint32_t e)
{
    uint32_t op = s->ev[e].op;
    int64_t next_state;

    if (!lin_model_step(&s->ops[op], s->state, &next_state)) {
        return false;
    }
    toggle_op(s, op);
    if (!cache_insert(&s->cache, s->bits, config_hash(s->set_hash, next_state),
                      next_state)) {
        toggle_op(s, op);
        return false;
    }
    s->stack[s->depth++] = (struct lin_frame){.call_ev = e, .state = s->state};
    s->state = next_state;
    unlink_event(s, e);
    if (s->ev[e].match != 0) {
        unlink_event(s, s->ev[e].match);
        s->returns_left--;
    }
    return true;
}

/* Undo the latest linearization; returns the event to continue from. */
static uint32_t backtrack(struct lin_search *s)
{
    struct lin_frame f = s->stack[--s->depth];

    s->state = f.state;
    toggle_op(s, s->ev[f.call_ev].op);
    if (s->ev[f.call_ev].match != 0) {
        relink_event(s, s->ev[f.call_ev].match);
        s->returns_left++;
    }
    relink_event(s, f.call_ev);
    return s->next[f.call_ev];
}

/* Search one key's @n operations. */
static enum lin_verdict check_key(const struct lin_op *ops, uint32_t n, uint64_t budget,
                                  struct lin_report *rep)
{
    struct lin_search s;
    enum lin_verdict verdict = LIN_OK;
    uint64_t steps = 0;
    uint32_t e;

    search_init(&s, ops, n);
    e = s.next[0];
    while (s.returns_left > 0) {
        if (++steps > budget) {
            verdict = LIN_UNKNOWN;
            break;
        }
        if (e == 0) {
            /* Cannot happen: every remaining return follows its call in the list. */
            fprintf(stderr, "lincheck: event list exhausted with returns left\n");
            abort();
        }
        if (!s.ev[e].is_ret) {
            if (try_linearize(&s, e)) {
                rep->deepest = s.depth > rep->deepest ? s.depth : rep->deepest;
                e = s.next[0];
            } else {
                e = s.next[e];
            }
            continue;
        }
        /* A return whose operation is not linearized yet: undo the latest choice. */
        if (s.depth >= rep->deepest) {
            rep->stuck_id = ops[s.ev[e].op].id;
        }
        if (s.depth == 0) {
            verdict = LIN_VIOLATION;
            break;
        }
        e = backtrack(&s);
    }
    rep->steps += steps;
    search_close(&s);
    return verdict;
}

enum lin_verdict lin_check(const struct lin_op *ops, size_t count, uint64_t budget,
                           struct lin_report *report)
{
    struct lin_report local = {0};
    struct lin_op *sorted;
    enum lin_verdict worst = LIN_OK;
    size_t i = 0;

    if (report == NULL) {
        report = &local;
    }
    memset(report, 0, sizeof(*report));
    sorted = xmalloc(count * sizeof(*sorted));
    if (count > 0) {
        memcpy(sorted, ops, count * sizeof(*sorted));
    }
    qsort(sorted, count, sizeof(*sorted), compare_ops_by_key);
    while (i < count) {
        size_t j = i;
        struct lin_report r = {0};
        enum lin_verdict v;

        while (j < count && sorted[j].key == sorted[i].key) {
            j++;
        }
        v = check_key(sorted + i, (uint32_t)(j - i), budget, &r);
        report->steps += r.steps;
        if (v != LIN_OK && (worst == LIN_OK || v == LIN_VIOLATION)) {
            uint64_t steps = report->steps;

            *report = r;
            report->steps = steps;
            report->key = sorted[i].key;
            report->key_ops = j - i;
            worst = v;
        }
        if (v == LIN_VIOLATION) {
            break;
        }
        i = j;
    }
    report->verdict = worst;
    free(sorted);
    return worst;
}
