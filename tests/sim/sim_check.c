/* SPDX-License-Identifier: MIT */
/* The safety checkers (Raft paper Figure 3) and the final checks.
 *
 * The checkers see each node's log through the entries of its readies: sim_slog keeps,
 * per entry, its term and a chain hash covering the entry and every entry before it, so
 * comparing two chain hashes at one index compares whole log prefixes.
 *
 *   Election Safety: leader_of[term] remembers the first node seen leading each term
 *     (over the whole run, crashed nodes included); a second one is a violation. Checked
 *     after every drive of a node.
 *   Log Matching: lm maps every (index, term) ever appended anywhere to its chain hash;
 *     an append whose chain differs from the recorded one means two logs hold the same
 *     (index, term) with different entries or different prefixes. Checked on every append
 *     and on every restart from durable state.
 *   State Machine Safety: commits[index] records the first entry applied at each index
 *     (its chain hash) and the state machine digest after it; any other node applying a
 *     different entry, or reaching a different state, there is a violation. Snapshots
 *     installed from a leader are checked against the same records.
 *   Leader Completeness: an entry first seen applied by a node in term s was committed in
 *     term s or earlier, so every leader of a term above s must hold it: its chain at the
 *     highest such index must equal the committed one. Checked after every step (a leader
 *     of a term at or below s may legitimately lack it: it is a stale leader).
 *
 * Final checks, after the faults stop: liveness (one leader, every node up and applied to
 * the leader's commit index, which covers its whole log; every acknowledged write in the
 * committed log) and linearizability of the client history (lincheck.c). Writes whose
 * outcome the client never learned are resolved against the committed log: one that is
 * not in it never took effect and is dropped, one that is took effect before its first
 * apply, which becomes its return time (with an unknown result). */
#include "sim.h"

#include <stdlib.h>
#include <string.h>

#include "engine/assert.h"

static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t sim_entry_hash(const struct aegis_entry *e)
{
    uint64_t h = 0xcbf29ce484222325ull ^ e->type;
    const uint8_t *p = aegis__entry_data(e);

    for (uint32_t i = 0; i < aegis__entry_len(e); i++) {
        h = (h ^ p[i]) * 0x100000001b3ull;
    }
    return mix64(h ^ aegis__entry_len(e));
}

uint64_t sim_chain(uint64_t prev, const struct aegis_entry *e)
{
    return mix64(prev ^ mix64(e->index * 0x9e3779b97f4a7c15ull ^ mix64(e->term)) ^
                 sim_entry_hash(e));
}

static size_t lm_slot(const struct sim_world *w, aegis_index index, aegis_term term)
{
    size_t j = mix64(index ^ mix64(term)) & (w->lm_cap - 1);

    while (w->lm[j].index != 0 && (w->lm[j].index != index || w->lm[j].term != term)) {
        j = (j + 1) & (w->lm_cap - 1);
    }
    return j;
}

bool sim_lm_get(const struct sim_world *w, aegis_index index, aegis_term term,
                uint64_t *chain_out)
{
    size_t j;

    if (w->lm_cap == 0) {
        return false;
    }
    j = lm_slot(w, index, term);
    if (w->lm[j].index == 0) {
        return false;
    }
    *chain_out = w->lm[j].chain;
    return true;
}

static void lm_put(struct sim_world *w, aegis_index index, aegis_term term, uint64_t chain)
{
    size_t j;

    if (w->lm_used * 2 >= w->lm_cap) {
        struct sim_lm_slot *old = w->lm;
        size_t old_cap = w->lm_cap;

        w->lm_cap = old_cap == 0 ? 1024 : old_cap * 2;
        w->lm = sim_xcalloc(w->lm_cap, sizeof(*w->lm));
        for (size_t i = 0; i < old_cap; i++) {
            if (old[i].index != 0) {
                w->lm[lm_slot(w, old[i].index, old[i].term)] = old[i];
            }
        }
        free(old);
    }
    j = lm_slot(w, index, term);
    if (w->lm[j].index == 0) {
        w->lm_used++;
    }
    w->lm[j] = (struct sim_lm_slot){.index = index, .term = term, .chain = chain};
}

void sim_slog_free(struct sim_slog *l)
{
    free(l->e);
    memset(l, 0, sizeof(*l));
}

static aegis_index slog_last(const struct sim_slog *l)
{
    return l->base + l->count;
}

/* The term and chain at @index, which must lie in [base, last]. */
static struct sim_slog_entry slog_at(const struct sim_slog *l, aegis_index index)
{
    AEGIS_ASSERT(index >= l->base && index <= slog_last(l));
    if (index == l->base) {
        return (struct sim_slog_entry){.term = l->base_term, .chain = l->base_chain};
    }
    return l->e[index - l->base - 1];
}

static void slog_push(struct sim_slog *l, aegis_term term, uint64_t chain)
{
    if (l->count == l->cap) {
        l->cap = l->cap == 0 ? 64 : l->cap * 2;
        l->e = sim_xrealloc(l->e, l->cap, sizeof(*l->e));
    }
    l->e[l->count++] = (struct sim_slog_entry){.term = term, .chain = chain};
}

/* Append @e after the slog's last entry, checking Log Matching. */
static void append_one(struct sim_world *w, struct sim_node *nd, const struct aegis_entry *e,
                       const char *where)
{
    struct sim_slog *l = &nd->log;
    struct sim_slog_entry prev = slog_at(l, slog_last(l));
    uint64_t chain = sim_chain(prev.chain, e), seen;

    if (e->term < prev.term) {
        sim_fail(w, "Log", "node %" PRIu64 " appends (%" PRIu64 ", term %" PRIu64
                 ") after an entry of term %" PRIu64 " (%s)", nd->id, e->index, e->term,
                 prev.term, where);
        return;
    }
    if (sim_lm_get(w, e->index, e->term, &seen)) {
        if (seen != chain) {
            sim_fail(w, "Log Matching", "node %" PRIu64 " holds entry (%" PRIu64
                     ", term %" PRIu64 ") with a different content or prefix than another"
                     " log had (%s)", nd->id, e->index, e->term, where);
            return;
        }
    } else {
        lm_put(w, e->index, e->term, chain);
    }
    slog_push(l, e->term, chain);
}

void sim_check_append(struct sim_world *w, struct sim_node *nd,
                      const struct aegis_entry *entries, uint32_t count)
{
    struct sim_slog *l = &nd->log;
    aegis_index first = entries[0].index;

    for (uint32_t i = 0; i < count; i++) {
        if (entries[i].index != first + i) {
            sim_fail(w, "Log", "node %" PRIu64 " ready entries are not contiguous at %"
                     PRIu64, nd->id, entries[i].index);
            return;
        }
    }
    if (first > slog_last(l) + 1) {
        sim_fail(w, "Log", "node %" PRIu64 " appends at %" PRIu64 " after a log ending at %"
                 PRIu64, nd->id, first, slog_last(l));
        return;
    }
    for (uint32_t i = 0; i < count && !w->failed; i++) {
        const struct aegis_entry *e = &entries[i];

        if (e->index <= l->base) {
            continue; /* Covered by this node's snapshot. */
        }
        if (e->index <= slog_last(l)) {
            l->count = (uint32_t)(e->index - l->base - 1); /* Conflict: truncate. */
        }
        append_one(w, nd, e, "append");
    }
}

static struct sim_commit *commit_at(struct sim_world *w, aegis_index index)
{
    if (index >= w->commits_cap) {
        size_t cap = w->commits_cap == 0 ? 1024 : w->commits_cap;

        while (cap <= index) {
            cap *= 2;
        }
        w->commits = sim_xrealloc(w->commits, cap, sizeof(*w->commits));
        memset(w->commits + w->commits_cap, 0, (cap - w->commits_cap) * sizeof(*w->commits));
        w->commits_cap = cap;
    }
    return &w->commits[index];
}

void sim_check_snapshot(struct sim_world *w, struct sim_node *nd,
                        const struct aegis_snapshot_meta *meta)
{
    struct sim_slog *l = &nd->log;
    struct sim_commit *c = commit_at(w, meta->index);
    uint64_t chain;

    if (!sim_lm_get(w, meta->index, meta->term, &chain)) {
        sim_fail(w, "Snapshot", "node %" PRIu64 " installs a snapshot at (%" PRIu64
                 ", term %" PRIu64 "), an entry no log ever held", nd->id, meta->index,
                 meta->term);
        return;
    }
    if (c->term == 0 || c->chain != chain) {
        sim_fail(w, "State Machine Safety", "node %" PRIu64 " installs a snapshot at (%"
                 PRIu64 ", term %" PRIu64 ") that is not the committed entry there", nd->id,
                 meta->index, meta->term);
        return;
    }
    if (c->kv_digest != sim_kv_digest(nd->kv)) {
        sim_fail(w, "State Machine Safety", "node %" PRIu64 " installs a snapshot at %"
                 PRIu64 " whose state differs from the state applied there", nd->id,
                 meta->index);
        return;
    }
    /* Raft §7: a log holding the snapshot's last entry keeps what follows it. */
    if (meta->index > l->base && meta->index <= slog_last(l) &&
        slog_at(l, meta->index).chain == chain) {
        uint32_t drop = (uint32_t)(meta->index - l->base);

        memmove(l->e, l->e + drop, (l->count - drop) * sizeof(*l->e));
        l->count -= drop;
    } else {
        l->count = 0;
    }
    l->base = meta->index;
    l->base_term = meta->term;
    l->base_chain = chain;
}

void sim_check_rebuild(struct sim_world *w, struct sim_node *nd)
{
    const struct sim_disk *d = &nd->disk;
    struct sim_slog *l = &nd->log;

    l->count = 0;
    l->base = 0;
    l->base_term = 0;
    l->base_chain = 0;
    if (d->has_snapshot) {
        l->base = d->snap_meta.index;
        l->base_term = d->snap_meta.term;
        if (!sim_lm_get(w, l->base, l->base_term, &l->base_chain)) {
            sim_fail(w, "Storage", "node %" PRIu64 " restarts from a snapshot of an entry"
                     " no log held", nd->id);
            return;
        }
    }
    if (d->count > 0 && d->first != l->base + 1) {
        sim_fail(w, "Storage", "node %" PRIu64 " durable log starts at %" PRIu64
                 " after a snapshot at %" PRIu64, nd->id, d->first, l->base);
        return;
    }
    for (uint32_t i = 0; i < d->count && !w->failed; i++) {
        append_one(w, nd, &d->entries[i], "restart");
    }
}

void sim_check_apply(struct sim_world *w, struct sim_node *nd, const struct aegis_entry *e,
                     uint64_t op_id)
{
    struct sim_slog *l = &nd->log;
    struct sim_slog_entry mine;
    struct sim_commit *c;
    uint64_t digest = sim_kv_digest(nd->kv);

    if (w->failed) {
        return;
    }
    if (e->index <= l->base || e->index > slog_last(l) ||
        slog_at(l, e->index).term != e->term) {
        sim_fail(w, "Apply", "node %" PRIu64 " applies (%" PRIu64 ", term %" PRIu64
                 ") which is not in its log", nd->id, e->index, e->term);
        return;
    }
    mine = slog_at(l, e->index);
    c = commit_at(w, e->index);
    if (c->term == 0) {
        *c = (struct sim_commit){.term = e->term, .chain = mine.chain, .kv_digest = digest,
                                 .seen_term = aegis__raft_term(nd->raft), .op_id = op_id,
                                 .first_clock = ++w->clock};
        if (e->index > w->commit_max) {
            w->commit_max = e->index;
        }
        return;
    }
    if (c->chain != mine.chain) {
        sim_fail(w, "State Machine Safety", "node %" PRIu64 " applies (%" PRIu64 ", term %"
                 PRIu64 ") but (%" PRIu64 ", term %" PRIu64 ") was applied there before",
                 nd->id, e->index, e->term, e->index, c->term);
        return;
    }
    if (c->kv_digest != digest) {
        sim_fail(w, "State Machine Safety", "node %" PRIu64 " reaches a different state"
                 " after applying %" PRIu64, nd->id, e->index);
    }
}

void sim_check_node(struct sim_world *w, struct sim_node *nd)
{
    struct sim_slog *l = &nd->log;
    aegis_index commit;
    aegis_term term;

    if (!nd->up) {
        return;
    }
    commit = aegis__raft_commit_index(nd->raft);
    if (aegis__raft_role(nd->raft) != AEGIS_ROLE_LEADER) {
        nd->commit_seen = commit;
        return;
    }
    term = aegis__raft_term(nd->raft);
    if (commit > nd->commit_seen && commit > l->base && commit <= slog_last(l) &&
        slog_at(l, commit).term != term) {
        /* Not a violation in itself, but what a Figure 8 bug looks like: counted. */
        w->stats.old_term_commits++;
        sim_trace(w, nd->id, "sim.old_term_commit", commit, slog_at(l, commit).term);
    }
    nd->commit_seen = commit;
    if (term >= w->leader_of_cap) {
        size_t cap = w->leader_of_cap == 0 ? 256 : w->leader_of_cap;

        while (cap <= term) {
            cap *= 2;
        }
        w->leader_of = sim_xrealloc(w->leader_of, cap, sizeof(*w->leader_of));
        memset(w->leader_of + w->leader_of_cap, 0,
               (cap - w->leader_of_cap) * sizeof(*w->leader_of));
        w->leader_of_cap = cap;
    }
    if (w->leader_of[term] == 0) {
        w->leader_of[term] = nd->id;
        w->stats.leaders++;
        sim_trace(w, nd->id, "sim.leader", term, aegis__raft_last_index(nd->raft));
    } else if (w->leader_of[term] != nd->id) {
        sim_fail(w, "Election Safety", "nodes %" PRIu64 " and %" PRIu64
                 " are both leaders of term %" PRIu64, w->leader_of[term], nd->id, term);
    }
}

/* The highest index first applied in a term below @term: every leader of @term holds it.
 * Cached per term: while the term stays the same only the indexes committed since the
 * last query are scanned (a long-lived leader would otherwise rescan its whole term). */
static aegis_index completeness_bound(struct sim_world *w, aegis_term term)
{
    aegis_index floor = 0, found = 0;

    if (w->lc_term == term && w->lc_upto <= w->commit_max) {
        floor = w->lc_upto;
        found = w->lc_index;
    }
    for (aegis_index i = w->commit_max; i > floor; i--) {
        if (w->commits[i].term != 0 && w->commits[i].seen_term < term) {
            found = i;
            break;
        }
    }
    w->lc_term = term;
    w->lc_upto = w->commit_max;
    w->lc_index = found;
    return found;
}

static void check_completeness(struct sim_world *w, struct sim_node *nd)
{
    struct sim_slog *l = &nd->log;
    aegis_term term = aegis__raft_term(nd->raft);
    aegis_index i = completeness_bound(w, term);
    const struct sim_commit *c;

    if (i == 0) {
        return;
    }
    c = &w->commits[i];
    if (i < l->base) {
        /* Inside the leader's snapshot: its base must be committed and match. */
        i = l->base;
        if (i > w->commit_max || w->commits[i].term == 0) {
            return; /* Cannot judge; the snapshot check covers installs. */
        }
        c = &w->commits[i];
    }
    if (i > slog_last(l) || slog_at(l, i).chain != c->chain) {
        sim_fail(w, "Leader Completeness", "leader %" PRIu64 " of term %" PRIu64
                 " lacks entry (%" PRIu64 ", term %" PRIu64 ") committed in term %" PRIu64
                 " or earlier (its log ends at %" PRIu64 ")", nd->id, term, i, c->term,
                 c->seen_term, slog_last(l));
    }
}

void sim_check_step(struct sim_world *w)
{
    for (unsigned k = 0; k < w->n && !w->failed; k++) {
        struct sim_node *nd = &w->nodes[k];

        if (!nd->up) {
            continue;
        }
        sim_check_node(w, nd);
        if (!w->failed && aegis__raft_role(nd->raft) == AEGIS_ROLE_LEADER) {
            check_completeness(w, nd);
        }
    }
}

static struct sim_node *unique_leader(struct sim_world *w)
{
    struct sim_node *leader = NULL;

    for (unsigned k = 0; k < w->n; k++) {
        struct sim_node *nd = &w->nodes[k];

        if (!nd->up) {
            return NULL;
        }
        if (aegis__raft_role(nd->raft) == AEGIS_ROLE_LEADER) {
            if (leader != NULL) {
                return NULL;
            }
            leader = nd;
        }
    }
    return leader;
}

/* Every node 1..n is a voter of @c. */
bool sim_conf_complete(const struct sim_world *w, const struct aegis_conf *c)
{
    uint32_t voters = 0;

    for (uint32_t k = 0; k < c->count; k++) {
        voters += c->members[k].role == AEGIS_MEMBER_VOTER && c->members[k].id >= 1 &&
                  c->members[k].id <= w->n;
    }
    return voters == w->n;
}

bool sim_check_converged(struct sim_world *w)
{
    struct sim_node *leader = unique_leader(w);
    aegis_index commit;

    if (leader == NULL || !sim_clients_idle(w) ||
        !sim_conf_complete(w, aegis__raft_conf(leader->raft))) {
        return false;
    }
    commit = aegis__raft_commit_index(leader->raft);
    if (aegis__raft_last_index(leader->raft) != commit || commit < w->commit_max) {
        return false;
    }
    for (unsigned k = 0; k < w->n; k++) {
        struct sim_node *nd = &w->nodes[k];

        if (nd->paused || aegis__raft_term(nd->raft) != aegis__raft_term(leader->raft) ||
            aegis__raft_commit_index(nd->raft) != commit || nd->applied != commit) {
            return false;
        }
    }
    return true;
}

static void describe_nodes(struct sim_world *w, char *buf, size_t len)
{
    struct sim_node *leader = unique_leader(w);
    size_t off = 0;

    buf[0] = 0;
    for (unsigned k = 0; k < w->n && off < len; k++) {
        struct sim_node *nd = &w->nodes[k];

        if (!nd->up) {
            off += (size_t)snprintf(buf + off, len - off, " n%u:down", k + 1);
            continue;
        }
        off += (size_t)snprintf(buf + off, len - off,
                                " n%u:role%d/t%" PRIu64 "/c%" PRIu64 "/a%" PRIu64 "/l%" PRIu64,
                                k + 1, (int)aegis__raft_role(nd->raft),
                                aegis__raft_term(nd->raft),
                                aegis__raft_commit_index(nd->raft), nd->applied,
                                aegis__raft_last_index(nd->raft));
        if (leader != NULL && leader != nd && off < len) {
            aegis_index match = 0, next = 0;

            aegis__raft_progress(leader->raft, nd->id, &match, &next);
            off += (size_t)snprintf(buf + off, len - off, " (leader: match %" PRIu64
                                    " next %" PRIu64 ")", match, next);
        }
    }
    if (leader != NULL && off < len) {
        const struct aegis_conf *c = aegis__raft_conf(leader->raft);

        off += (size_t)snprintf(buf + off, len - off, "; leader conf:");
        for (uint32_t k = 0; k < c->count && off < len; k++) {
            off += (size_t)snprintf(buf + off, len - off, " %" PRIu64 "%s",
                                    c->members[k].id,
                                    c->members[k].role == AEGIS_MEMBER_LEARNER ? "L" : "");
        }
    }
}

/* Map each operation id to the committed index carrying it (0: none). */
static aegis_index *committed_ops(const struct sim_world *w)
{
    aegis_index *where = sim_xcalloc(w->hist_len + 1, sizeof(*where));

    for (aegis_index i = 1; i <= w->commit_max; i++) {
        uint64_t id = w->commits[i].op_id;

        if (id != 0 && id <= w->hist_len && where[id] == 0) {
            where[id] = i;
        }
    }
    return where;
}

static void check_linearizable(struct sim_world *w, const aegis_index *where, bool converged)
{
    struct lin_op *ops = sim_xcalloc(w->hist_len, sizeof(*ops));
    struct lin_report rep;
    size_t n = 0;

    for (size_t i = 0; i < w->hist_len; i++) {
        const struct sim_hop *h = &w->hist[i];
        struct lin_op op = h->op;

        if (h->status == SIM_OP_NOT_EXECUTED ||
            (op.kind == SIM_KV_GET && h->status != SIM_OP_OK)) {
            continue;
        }
        if (h->status != SIM_OP_OK) {
            aegis_index at = where[op.id];

            op.result_known = false;
            if (at != 0) {
                op.ret = w->commits[at].first_clock;
            } else if (converged) {
                continue; /* Not in the final committed log: it never took effect. */
            } else {
                op.ret = LIN_NEVER;
            }
        }
        ops[n++] = op;
    }
    lin_check(ops, n, 20000000, &rep);
    w->stats.lin_steps = rep.steps;
    if (rep.verdict == LIN_VIOLATION) {
        const struct sim_hop *h = rep.stuck_id != 0 ? &w->hist[rep.stuck_id - 1] : NULL;

        sim_fail(w, "Linearizability", "key %u (%zu operations) has no linearization; the"
                 " search got %zu operations deep and could not linearize op %" PRIu64
                 " (client %u %s arg %" PRId64 "/%" PRId64 " -> %" PRId64 ", steps %" PRIu64
                 "..%" PRIu64 ", node %" PRIu64 ")", rep.key, rep.key_ops, rep.deepest,
                 rep.stuck_id, h != NULL ? h->client : 0,
                 h != NULL ? sim_kind_name(h->op.kind) : "?", h != NULL ? h->op.arg1 : 0,
                 h != NULL ? h->op.arg2 : 0, h != NULL ? h->op.out : 0,
                 h != NULL ? h->invoke_step : 0, h != NULL ? h->return_step : 0,
                 h != NULL ? h->node : 0);
    } else if (rep.verdict == LIN_UNKNOWN) {
        sim_trace(w, 0, "sim.lin_unknown", rep.key, rep.key_ops);
        fprintf(stderr, "seed %" PRIu64 ": linearizability search budget exhausted on key %u"
                " (%zu ops): no verdict\n", w->opt.seed, rep.key, rep.key_ops);
    }
    free(ops);
}

void sim_check_final(struct sim_world *w, bool converged)
{
    aegis_index *where = committed_ops(w);

    if (!converged) {
        char nodes[800];

        describe_nodes(w, nodes, sizeof(nodes));
        sim_fail(w, "Liveness", "no single leader with every node applied to its commit"
                 " index after healing (clients idle: %d; commit max %" PRIu64 ";%s)",
                 sim_clients_idle(w), w->commit_max, nodes);
    }
    for (size_t i = 0; i < w->hist_len && !w->failed; i++) {
        const struct sim_hop *h = &w->hist[i];

        if (h->status == SIM_OP_OK && h->op.kind != SIM_KV_GET && where[h->op.id] == 0) {
            sim_fail(w, "Durability", "acknowledged %s (op %" PRIu64 ", client %u, key %u,"
                     " steps %" PRIu64 "..%" PRIu64 ") is not in the committed log",
                     sim_kind_name(h->op.kind), h->op.id, h->client, h->op.key,
                     h->invoke_step, h->return_step);
        }
    }
    for (unsigned k = 1; k < w->n && !w->failed && converged; k++) {
        if (sim_kv_digest(w->nodes[k].kv) != sim_kv_digest(w->nodes[0].kv)) {
            sim_fail(w, "State Machine Safety", "nodes 1 and %u end with different states",
                     k + 1);
        }
    }
    if (!w->failed) {
        check_linearizable(w, where, converged);
    }
    free(where);
}
