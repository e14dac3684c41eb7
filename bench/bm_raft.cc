/* SPDX-License-Identifier: MIT */
// The Raft core (engine/raft.h) on its replication hot path, with three cores built and
// elected in-process (the same shape as tests/unit/engine/raft_cluster.h: an instant
// "disk", messages cloned into a FIFO and stepped into their destination).
//   FollowerAppend  node 2 steps an AppendEntries from the leader carrying 1, 64 or 512
//                   entries of 128 B, then runs its ready/advance/persisted cycle: the
//                   entries to persist, the acknowledgement held in msgs_after_persist,
//                   the previous batch committed and applied (the leader's commit index
//                   trails by one batch, as in a steady stream);
//   LeaderRound     the leader's whole round for a batch of 1, 64 or 256 proposals:
//                   propose each, ready/advance/persisted (its own write; the
//                   AppendEntries it emits are counted, then dropped), step one success
//                   append_resp from each of the 2 followers, ready/advance for the
//                   committed entries, applied;
//   LeaderAcks      only the second half of that round (the 2 acknowledgements, the
//                   commit, the committed ready). Timed by hand in thread CPU time: the
//                   propose halves of 256 / N rounds run first (as many as the window
//                   holds in flight), then their acknowledgements are timed together, so
//                   the two clock reads (a system call of ~0.25 us here) are amortised;
//                   the Time column is that CPU time, CPU the whole iteration's.
// Every 65 536 entries the benchmark reports a snapshot to the core
// (aegis__raft_snapshot_taken), which compacts the log, so memory stays bounded; that
// cost is included, amortised. items/s counts entries.
#include "bm_common.h"

#define _Noreturn [[noreturn]]
extern "C" {
#include "engine/raft.h"
}
#undef _Noreturn

#include <time.h>

#include <deque>
#include <vector>

namespace {

constexpr uint64_t kCompactEvery = 65536;

struct trio {
    struct aegis_raft *r[4] = {nullptr, nullptr, nullptr, nullptr};  // By node id, 1..3.
    struct aegis_rng rng[4];
    std::deque<struct aegis_msg> queue;

    trio()
    {
        struct aegis_raft_config cfg;
        aegis__raft_config_default(&cfg);
        cfg.election_timeout_min_ticks = 10;
        cfg.election_timeout_max_ticks = 20;
        cfg.heartbeat_interval_ticks = 1;
        cfg.snapshot_threshold = 0;  // The benchmark decides when to snapshot.
        struct aegis_raft_restore rs;
        memset(&rs, 0, sizeof(rs));
        rs.bootstrap.count = 3;
        for (uint32_t i = 0; i < 3; i++) {
            rs.bootstrap.members[i].id = i + 1;
            rs.bootstrap.members[i].role = AEGIS_MEMBER_VOTER;
        }
        for (aegis_node_id id = 1; id <= 3; id++) {
            cfg.id = id;
            aegis__rng_seed(&rng[id], 100 + id);
            bm::check(aegis__raft_create(&r[id], &cfg, &rs, &rng[id], nullptr, nullptr) == 0,
                      "raft_create");
        }
    }

    ~trio()
    {
        for (auto &m : queue) {
            aegis__msg_release(&m, nullptr);
        }
        for (aegis_node_id id = 1; id <= 3; id++) {
            aegis__raft_destroy(r[id]);
        }
    }

    void enqueue(const struct aegis_msg *m)
    {
        struct aegis_msg copy;
        bm::check(aegis__msg_clone(&copy, m, nullptr) == 0, "msg_clone");
        queue.push_back(copy);
    }

    // One ready/advance cycle with an instant disk; messages go to the queue.
    bool process(aegis_node_id id)
    {
        struct aegis_raft *c = r[id];
        if (!aegis__raft_has_ready(c)) {
            return false;
        }
        struct aegis_ready rd;
        aegis__raft_ready(c, &rd);
        for (uint32_t i = 0; i < rd.msgs_count; i++) {
            enqueue(&rd.msgs[i]);
        }
        for (uint32_t i = 0; i < rd.msgs_after_persist_count; i++) {
            enqueue(&rd.msgs_after_persist[i]);
        }
        aegis_index last = 0, applied = 0;
        aegis_term last_term = 0;
        if (rd.entries_count > 0) {
            last = rd.entries[rd.entries_count - 1].index;
            last_term = rd.entries[rd.entries_count - 1].term;
        }
        if (rd.committed_count > 0) {
            applied = rd.committed[rd.committed_count - 1].index;
        }
        aegis__raft_advance(c, &rd);
        if (last != 0) {
            aegis__raft_persisted(c, last, last_term);
        }
        if (applied != 0) {
            aegis__raft_applied(c, applied);
        }
        return true;
    }

    void settle()
    {
        for (int rounds = 0; rounds < 10000; rounds++) {
            bool moved = false;
            for (aegis_node_id id = 1; id <= 3; id++) {
                moved |= process(id);
            }
            while (!queue.empty()) {
                struct aegis_msg m = queue.front();
                queue.pop_front();
                (void)aegis__raft_step(r[m.to], &m);
                aegis__msg_release(&m, nullptr);
                moved = true;
                for (aegis_node_id id = 1; id <= 3; id++) {
                    moved |= process(id);
                }
            }
            if (!moved) {
                return;
            }
        }
        bm::die("cluster does not settle");
    }

    // Node 1 campaigns; returns once it leads, its no-op is everywhere and committed.
    void elect_1()
    {
        aegis__raft_campaign(r[1]);
        settle();
        bm::check(aegis__raft_role(r[1]) == AEGIS_ROLE_LEADER, "node 1 is not leader");
        bm::check(aegis__raft_commit_index(r[1]) == aegis__raft_last_index(r[1]) &&
                      aegis__raft_last_index(r[2]) == aegis__raft_last_index(r[1]) &&
                      aegis__raft_last_index(r[3]) == aegis__raft_last_index(r[1]),
                  "not settled");
    }
};

// Report a snapshot at the applied index every kCompactEvery entries so the log is
// compacted (the core keeps snapshot_trailing entries behind it).
struct compactor {
    aegis_index last_snap = 0;
    struct aegis_buf *data = bm::payload(64);
    ~compactor() { aegis__buf_unref(data); }

    void maybe(struct aegis_raft *r, aegis_index applied)
    {
        if (applied < last_snap + kCompactEvery) {
            return;
        }
        struct aegis_snapshot_meta meta;
        memset(&meta, 0, sizeof(meta));
        meta.index = applied;
        meta.term = aegis__raft_term_at(r, applied);
        if (aegis__raft_snapshot_taken(r, &meta, data->len) != 0) {
            bm::die("snapshot_taken");
        }
        last_snap = applied;
    }
};

void BM_RaftFollowerAppend(benchmark::State &state)
{
    const uint32_t n = (uint32_t)state.range(0);
    trio t;
    t.elect_1();
    struct aegis_raft *f = t.r[2];
    const aegis_term term = aegis__raft_term(f);
    struct aegis_buf *payload = bm::payload(128);
    std::vector<struct aegis_entry> entries(n);
    for (auto &e : entries) {
        memset(&e, 0, sizeof(e));
        e.term = term;
        e.type = AEGIS_ENTRY_COMMAND;
        e.buf = payload;
    }
    struct aegis_msg m;
    memset(&m, 0, sizeof(m));
    m.type = AEGIS_MSG_APPEND_REQ;
    m.from = 1;
    m.to = 2;
    m.term = term;
    m.append_req.prev_term = term;  // The leader's no-op and everything since.
    m.append_req.entries_count = n;
    m.append_req.entries = entries.data();
    aegis_index last = aegis__raft_last_index(f);
    aegis_index applied = aegis__raft_commit_index(f);
    compactor comp;
    for (auto _ : state) {
        m.append_req.prev_index = last;
        m.append_req.commit = last;  // The previous batch is committed.
        for (uint32_t i = 0; i < n; i++) {
            entries[i].index = last + 1 + i;
        }
        if (aegis__raft_step(f, &m) != 0) {
            bm::die("step append_req");
        }
        struct aegis_ready rd;
        aegis__raft_ready(f, &rd);
        if (rd.entries_count != n || rd.msgs_after_persist_count != 1 ||
            !rd.msgs_after_persist[0].append_resp.success ||
            rd.msgs_after_persist[0].append_resp.match_index != last + n) {
            bm::die("follower ready");
        }
        if (rd.committed_count > 0) {
            applied = rd.committed[rd.committed_count - 1].index;
        }
        aegis__raft_advance(f, &rd);
        aegis__raft_persisted(f, last + n, term);
        aegis__raft_applied(f, applied);
        if (aegis__raft_has_ready(f)) {
            bm::die("follower has a second ready");
        }
        last += n;
        comp.maybe(f, applied);
    }
    aegis__buf_unref(payload);
    state.SetItemsProcessed((int64_t)state.iterations() * n);
}

// The leader's side. propose_half: propose @n entries and run the ready that persists
// them (AppendEntries emitted are counted and dropped). ack_half: the acknowledgements.
struct leader_bench {
    trio t;
    struct aegis_raft *l;
    aegis_term term;
    struct aegis_buf *payload = bm::payload(128);
    compactor comp;
    uint64_t msgs = 0;

    leader_bench()
    {
        t.elect_1();
        l = t.r[1];
        term = aegis__raft_term(l);
    }
    ~leader_bench() { aegis__buf_unref(payload); }

    aegis_index propose_half(uint32_t n)
    {
        for (uint32_t i = 0; i < n; i++) {
            if (aegis__raft_propose(l, AEGIS_ENTRY_COMMAND, payload, nullptr) != 0) {
                bm::die("propose");
            }
        }
        struct aegis_ready rd;
        aegis__raft_ready(l, &rd);
        if (rd.entries_count != n) {
            bm::die("leader ready");
        }
        aegis_index last = rd.entries[n - 1].index;
        msgs += rd.msgs_count;
        aegis__raft_advance(l, &rd);
        aegis__raft_persisted(l, last, term);
        return last;
    }

    void ack_half(aegis_index last)
    {
        struct aegis_msg a;
        memset(&a, 0, sizeof(a));
        a.type = AEGIS_MSG_APPEND_RESP;
        a.to = 1;
        a.term = term;
        a.append_resp.success = true;
        a.append_resp.match_index = last;
        a.append_resp.last_index = last;
        for (aegis_node_id from = 2; from <= 3; from++) {
            a.from = from;
            if (aegis__raft_step(l, &a) != 0) {
                bm::die("step append_resp");
            }
        }
        struct aegis_ready rd;
        aegis__raft_ready(l, &rd);
        if (rd.committed_count == 0 || rd.committed[rd.committed_count - 1].index != last) {
            bm::die("leader did not commit");
        }
        msgs += rd.msgs_count;
        aegis__raft_advance(l, &rd);
        aegis__raft_applied(l, last);
        comp.maybe(l, last);
    }
};

void BM_RaftLeaderRound(benchmark::State &state)
{
    const uint32_t n = (uint32_t)state.range(0);
    leader_bench b;
    for (auto _ : state) {
        b.ack_half(b.propose_half(n));
    }
    state.SetItemsProcessed((int64_t)state.iterations() * n);
    state.counters["msgs_per_round"] = (double)b.msgs / (double)state.iterations();
}

double thread_cpu_seconds()
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void BM_RaftLeaderAcks(benchmark::State &state)
{
    const uint32_t n = (uint32_t)state.range(0);
    const uint32_t rounds = 256 / n;  // As many rounds in flight as the window holds.
    leader_bench b;
    std::vector<aegis_index> lasts(rounds);
    for (auto _ : state) {
        for (uint32_t k = 0; k < rounds; k++) {
            lasts[k] = b.propose_half(n);
        }
        double start = thread_cpu_seconds();
        for (uint32_t k = 0; k < rounds; k++) {
            b.ack_half(lasts[k]);
        }
        state.SetIterationTime(thread_cpu_seconds() - start);
    }
    state.SetItemsProcessed((int64_t)state.iterations() * rounds * n);
    state.counters["rounds_per_iteration"] = (double)rounds;
}

void batch_sizes(benchmark::internal::Benchmark *b)
{
    b->ArgName("entries");
    for (int64_t n : {1, 64, 512}) {
        b->Arg(n);
    }
}

// The leader's batches stop at 256: each proposal sends its own AppendEntries to each
// follower, and the default window (inflight_msgs_max) holds 256 per follower, so with
// 256 every entry is on the wire when the acknowledgements come back.
void leader_batch_sizes(benchmark::internal::Benchmark *b)
{
    b->ArgName("entries");
    for (int64_t n : {1, 64, 256}) {
        b->Arg(n);
    }
}

BENCHMARK(BM_RaftFollowerAppend)->Apply(batch_sizes);
BENCHMARK(BM_RaftLeaderRound)->Apply(leader_batch_sizes);
BENCHMARK(BM_RaftLeaderAcks)->Apply(leader_batch_sizes)->UseManualTime();

}  // namespace

BENCHMARK_MAIN();
