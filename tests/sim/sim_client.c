/* SPDX-License-Identifier: MIT */
/* The simulation's state machine, its formats, and the clients that use it.
 *
 * State machine: SIM_KEYS_MAX int64 registers, each absent (SIM_KV_ABSENT) at first.
 * Set, CompareAndSwap and Increment go through the log; Get goes through ReadIndex. This is
 * deliberately not engine/kv: the simulation checks the core, with a model small enough
 * to trust.
 *
 * Command format (the payload of an AEGIS_ENTRY_COMMAND entry), little-endian:
 *   byte  0      0xA5 (magic)
 *   byte  1      kind (enum sim_kv_kind: 1 Set, 2 CAS, 3 Incr)
 *   byte  2      key (< SIM_KEYS_MAX)
 *   byte  3      0
 *   bytes 4..11  operation id (history index + 1)
 *   bytes 12..19 arg1 (Set: value; CAS: expected; Incr: delta), int64
 *   bytes 20..27 arg2 (CAS: new value), int64
 *   bytes 28..   padding (0..64 bytes of 0x5A), to vary entry sizes
 *
 * Snapshot format: bytes 0..3 "SIMK", bytes 4..7 SIM_KEYS_MAX (uint32), then one int64
 * per key.
 *
 * Clients: each has at most one operation outstanding. It picks a node (its leader guess,
 * or at random), and on AEGIS_ENOTLEADER retries at once at the leader the node names, or
 * later. A write completes when the node it was proposed on applies it at the proposed
 * index (the result is computed there); if another entry lands at that index, the node
 * crashes, or the client times out, the outcome is indeterminate. A read asks the node for
 * a ReadIndex and is served once that node has applied the index; a read that never
 * completes had no effect and is dropped. The history clock ticks at every invocation,
 * response and first apply, so the history has an exact real-time order. */
#include "sim.h"

#include <string.h>

#include <aegis/error.h>

#include "engine/assert.h"

#define CMD_MAGIC 0xA5
#define CMD_LEN 28u
#define CMD_PAD_MAX 64u
AEGIS_STATIC_ASSERT(CMD_LEN + CMD_PAD_MAX <= SIM_ENTRY_BYTES_MAX);
#define SNAP_MAGIC 0x4b4d4953u /* "SIMK" read as little-endian. */

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

const char *sim_kind_name(uint8_t kind)
{
    switch (kind) {
    case SIM_KV_SET:
        return "set";
    case SIM_KV_CAS:
        return "cas";
    case SIM_KV_INCR:
        return "incr";
    case SIM_KV_GET:
        return "get";
    default:
        return "?";
    }
}

struct aegis_buf *sim_kv_encode(uint8_t kind, uint32_t key, uint64_t op_id, int64_t a1,
                                int64_t a2, uint32_t pad)
{
    struct aegis_buf *b = aegis__buf_create(NULL, CMD_LEN + pad);

    AEGIS_ASSERT(b != NULL);
    AEGIS_ASSERT(key < SIM_KEYS_MAX);
    AEGIS_ASSERT(CMD_LEN + pad <= SIM_ENTRY_BYTES_MAX);
    b->data[0] = CMD_MAGIC;
    b->data[1] = kind;
    b->data[2] = (uint8_t)key;
    b->data[3] = 0;
    put_u64(b->data + 4, op_id);
    put_u64(b->data + 12, (uint64_t)a1);
    put_u64(b->data + 20, (uint64_t)a2);
    memset(b->data + CMD_LEN, 0x5a, pad);
    return b;
}

uint64_t sim_kv_apply(struct sim_world *w, struct sim_node *nd, const struct aegis_entry *e,
                      int64_t *out)
{
    const uint8_t *p = aegis__entry_data(e);
    uint32_t len = aegis__entry_len(e);
    uint8_t kind;
    uint32_t key;
    int64_t a1, a2, *v;

    *out = 0;
    if (e->type != AEGIS_ENTRY_COMMAND) {
        return 0;
    }
    if (len < CMD_LEN || p[0] != CMD_MAGIC || p[2] >= SIM_KEYS_MAX || p[1] < SIM_KV_SET ||
        p[1] > SIM_KV_INCR) {
        sim_fail(w, "State machine", "node %" PRIu64 " applies an undecodable command at %"
                 PRIu64 " (%u bytes)", nd->id, e->index, len);
        return 0;
    }
    kind = p[1];
    key = p[2];
    a1 = (int64_t)get_u64(p + 12);
    a2 = (int64_t)get_u64(p + 20);
    v = &nd->kv[key];
    switch (kind) {
    case SIM_KV_SET:
        *v = a1;
        break;
    case SIM_KV_CAS:
        *out = *v == a1;
        if (*out) {
            *v = a2;
        }
        break;
    default:
        *v = (*v == SIM_KV_ABSENT ? 0 : *v) + a1;
        *out = *v;
        break;
    }
    return get_u64(p + 4);
}

uint64_t sim_kv_digest(const int64_t *kv)
{
    uint64_t h = 0x243f6a8885a308d3ull;

    for (uint32_t k = 0; k < SIM_KEYS_MAX; k++) {
        h = (h ^ (uint64_t)kv[k]) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    return h;
}

struct aegis_buf *sim_kv_snapshot(const struct sim_node *nd)
{
    struct aegis_buf *b = aegis__buf_create(NULL, 8 + 8 * SIM_KEYS_MAX);

    AEGIS_ASSERT(b != NULL);
    for (int i = 0; i < 4; i++) {
        b->data[i] = (uint8_t)(SNAP_MAGIC >> (8 * i));
        b->data[4 + i] = (uint8_t)((uint32_t)SIM_KEYS_MAX >> (8 * i));
    }
    for (uint32_t k = 0; k < SIM_KEYS_MAX; k++) {
        put_u64(b->data + 8 + 8 * k, (uint64_t)nd->kv[k]);
    }
    return b;
}

bool sim_kv_restore(struct sim_node *nd, const struct aegis_buf *data)
{
    uint32_t magic = 0, keys = 0;

    if (data == NULL || data->len != 8 + 8 * SIM_KEYS_MAX) {
        return false;
    }
    for (int i = 0; i < 4; i++) {
        magic |= (uint32_t)data->data[i] << (8 * i);
        keys |= (uint32_t)data->data[4 + i] << (8 * i);
    }
    if (magic != SNAP_MAGIC || keys != SIM_KEYS_MAX) {
        return false;
    }
    for (uint32_t k = 0; k < SIM_KEYS_MAX; k++) {
        nd->kv[k] = (int64_t)get_u64(data->data + 8 + 8 * k);
    }
    return true;
}

static uint64_t rnd(struct sim_world *w, uint64_t lo, uint64_t hi)
{
    return aegis__rng_range(&w->rng, lo, hi);
}

void sim_clients_init(struct sim_world *w)
{
    for (uint32_t i = 0; i < SIM_CLIENTS_MAX; i++) {
        struct sim_client *c = &w->clients[i];

        c->id = i + 1;
        c->next_at = rnd(w, 1, 50);
        for (uint32_t k = 0; k < SIM_KEYS_MAX; k++) {
            c->seen[k] = SIM_KV_ABSENT;
        }
    }
}

static struct sim_hop *hop_of(struct sim_world *w, const struct sim_client *c)
{
    return &w->hist[c->op];
}

/* End the client's operation with @status. */
static void finish(struct sim_world *w, struct sim_client *c, uint8_t status, int64_t out)
{
    struct sim_hop *h = hop_of(w, c);

    h->status = status;
    h->return_step = w->now;
    if (status == SIM_OP_OK) {
        h->op.out = out;
        h->op.result_known = true;
        h->op.ret = ++w->clock;
        switch (h->op.kind) {
        case SIM_KV_SET:
            c->seen[h->op.key] = h->op.arg1;
            break;
        case SIM_KV_CAS:
            if (out == 1) {
                c->seen[h->op.key] = h->op.arg2;
            }
            break;
        default:
            c->seen[h->op.key] = out;
            break;
        }
        if (h->op.kind == SIM_KV_GET) {
            w->stats.reads_ok++;
        } else {
            w->stats.ops_ok++;
        }
    } else if (status == SIM_OP_INDETERMINATE) {
        w->stats.ops_indeterminate++;
    }
    sim_trace(w, c->node, status == SIM_OP_OK ? "client.ok"
                          : status == SIM_OP_INDETERMINATE ? "client.indeterminate"
                                                           : "client.not_executed",
              h->op.id, (uint64_t)out);
    c->state = SIM_CLIENT_IDLE;
    c->submitted = false;
    c->next_at = w->now + rnd(w, 1, 1 + w->p.think_max);
}

static void start_op(struct sim_world *w, struct sim_client *c)
{
    uint64_t pick = rnd(w, 0, 99);
    struct sim_hop *h;

    if (w->hist_len == w->hist_cap) {
        w->hist_cap = w->hist_cap == 0 ? 256 : w->hist_cap * 2;
        w->hist = sim_xrealloc(w->hist, w->hist_cap, sizeof(*w->hist));
    }
    c->op = w->hist_len++;
    h = &w->hist[c->op];
    memset(h, 0, sizeof(*h));
    h->op.id = c->op + 1;
    h->op.key = (uint32_t)rnd(w, 0, w->p.keys - 1);
    h->op.ret = LIN_NEVER;
    h->client = c->id;
    h->invoke_step = w->now;
    if (pick < 25) {
        h->op.kind = SIM_KV_SET;
        h->op.arg1 = ++w->next_value;
    } else if (pick < 45) {
        h->op.kind = SIM_KV_CAS;
        h->op.arg1 = c->seen[h->op.key];
        h->op.arg2 = ++w->next_value;
    } else if (pick < 65) {
        h->op.kind = SIM_KV_INCR;
        h->op.arg1 = (int64_t)rnd(w, 1, 5);
    } else {
        h->op.kind = SIM_KV_GET;
    }
    h->op.call = ++w->clock;
    c->state = h->op.kind == SIM_KV_GET ? SIM_CLIENT_READ : SIM_CLIENT_WRITE;
    c->submitted = false;
    c->have_index = false;
    c->attempts = 0;
    c->node = 0;
    c->deadline = w->now + w->p.client_timeout;
    sim_trace(w, 0, "client.invoke", h->op.id, h->op.kind);
}

/* Try @nd once; returns 0 or the core's error. */
static int attempt(struct sim_world *w, struct sim_client *c, struct sim_node *nd)
{
    struct sim_hop *h = hop_of(w, c);
    int rv;

    if (c->state == SIM_CLIENT_WRITE) {
        struct aegis_buf *b = sim_kv_encode(h->op.kind, h->op.key, h->op.id, h->op.arg1,
                                            h->op.arg2, (uint32_t)rnd(w, 0, CMD_PAD_MAX));
        aegis_index index = 0;

        rv = aegis__raft_propose(nd->raft, AEGIS_ENTRY_COMMAND, b, &index);
        aegis__buf_unref(b);
        if (rv == 0) {
            c->index = index;
            sim_trace(w, nd->id, "client.propose", h->op.id, index);
            sim_propose_kill(w, nd);
        }
    } else {
        c->ctx = ++w->next_ctx;
        rv = aegis__raft_read_index(nd->raft, c->ctx);
        if (rv == 0) {
            sim_trace(w, nd->id, "client.read_index", h->op.id, c->ctx);
        }
    }
    if (rv != 0) {
        sim_trace(w, nd->id, "client.refused", h->op.id, (uint64_t)-rv);
        return rv;
    }
    c->submitted = true;
    c->node = nd->id;
    c->incarnation = nd->incarnation;
    h->node = nd->id;
    sim_drive(w, nd);
    return 0;
}

static bool reachable(struct sim_node *nd)
{
    return nd != NULL && nd->up && !nd->paused;
}

static void submit(struct sim_world *w, struct sim_client *c)
{
    aegis_node_id target = c->leader_guess;
    struct sim_node *nd;

    if (target == 0 || rnd(w, 0, 99) < w->p.random_target_pct) {
        target = rnd(w, 1, w->n);
    }
    nd = sim_node(w, target);
    if (reachable(nd)) {
        int rv = attempt(w, c, nd);

        if (rv == 0) {
            c->leader_guess = nd->id;
            return;
        }
        if (rv == AEGIS_ENOTLEADER && c->state != SIM_CLIENT_IDLE) {
            struct sim_node *hint = sim_node(w, aegis__raft_leader(nd->raft));

            c->leader_guess = hint != NULL ? hint->id : 0;
            if (hint != NULL && hint != nd && reachable(hint) && attempt(w, c, hint) == 0) {
                return;
            }
        }
    }
    if (c->state == SIM_CLIENT_IDLE || c->submitted) {
        return; /* Finished while the node was driven. */
    }
    if (++c->attempts > 40) {
        finish(w, c, SIM_OP_NOT_EXECUTED, 0); /* Never reached a leader: no effect. */
        return;
    }
    c->next_at = w->now + rnd(w, 1, 20);
}

void sim_clients_step(struct sim_world *w)
{
    for (uint32_t i = 0; i < w->p.clients && !w->failed; i++) {
        struct sim_client *c = &w->clients[i];

        if (c->state == SIM_CLIENT_IDLE) {
            if (!w->final_phase && w->now >= c->next_at) {
                start_op(w, c);
                submit(w, c);
            }
        } else if (w->now >= c->deadline) {
            c->leader_guess = 0; /* Whoever we trusted did not answer: look around. */
            finish(w, c,
                   c->state == SIM_CLIENT_WRITE && c->submitted ? SIM_OP_INDETERMINATE
                                                                : SIM_OP_NOT_EXECUTED,
                   0);
        } else if (!c->submitted && w->now >= c->next_at) {
            submit(w, c);
        }
    }
}

static bool waits_on(const struct sim_client *c, const struct sim_node *nd)
{
    return c->state != SIM_CLIENT_IDLE && c->submitted && c->node == nd->id &&
           c->incarnation == nd->incarnation;
}

void sim_clients_applied(struct sim_world *w, struct sim_node *nd, aegis_index index,
                         uint64_t op_id, int64_t out)
{
    for (uint32_t i = 0; i < w->p.clients; i++) {
        struct sim_client *c = &w->clients[i];

        if (c->state != SIM_CLIENT_WRITE || !waits_on(c, nd) || c->index != index) {
            continue;
        }
        if (hop_of(w, c)->op.id == op_id) {
            finish(w, c, SIM_OP_OK, out);
        } else {
            finish(w, c, SIM_OP_INDETERMINATE, 0); /* Overwritten by another leader. */
        }
    }
}

void sim_clients_snapshot_installed(struct sim_world *w, struct sim_node *nd)
{
    for (uint32_t i = 0; i < w->p.clients; i++) {
        struct sim_client *c = &w->clients[i];

        if (c->state == SIM_CLIENT_WRITE && waits_on(c, nd) && c->index <= nd->applied) {
            finish(w, c, SIM_OP_INDETERMINATE, 0); /* Applied inside a snapshot. */
        }
    }
}

void sim_clients_read_state(struct sim_world *w, struct sim_node *nd, uint64_t ctx,
                            aegis_index index)
{
    for (uint32_t i = 0; i < w->p.clients; i++) {
        struct sim_client *c = &w->clients[i];

        if (c->state == SIM_CLIENT_READ && waits_on(c, nd) && c->ctx == ctx &&
            !c->have_index) {
            c->have_index = true;
            c->index = index;
            sim_trace(w, nd->id, "client.read_state", ctx, index);
        }
    }
}

void sim_clients_serve_reads(struct sim_world *w, struct sim_node *nd)
{
    for (uint32_t i = 0; i < w->p.clients; i++) {
        struct sim_client *c = &w->clients[i];

        if (c->state == SIM_CLIENT_READ && waits_on(c, nd) && c->have_index &&
            nd->applied >= c->index) {
            finish(w, c, SIM_OP_OK, nd->kv[hop_of(w, c)->op.key]);
        }
    }
}

void sim_clients_node_lost(struct sim_world *w, struct sim_node *nd)
{
    for (uint32_t i = 0; i < w->p.clients; i++) {
        struct sim_client *c = &w->clients[i];

        if (c->state != SIM_CLIENT_IDLE && c->submitted && c->node == nd->id) {
            finish(w, c, c->state == SIM_CLIENT_WRITE ? SIM_OP_INDETERMINATE
                                                      : SIM_OP_NOT_EXECUTED, 0);
        }
    }
}

bool sim_clients_idle(const struct sim_world *w)
{
    for (uint32_t i = 0; i < w->p.clients; i++) {
        if (w->clients[i].state != SIM_CLIENT_IDLE) {
            return false;
        }
    }
    return true;
}
