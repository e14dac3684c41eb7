/* SPDX-License-Identifier: MIT */
/* The Raft core: a pure, deterministic state machine driven from outside (etcd/cowsql
 * shape). No threads, no syscalls, no clock, no randomness of its own.
 *
 * Driving it:
 *   aegis__raft_step(r, &msg)      feed one message received from a peer;
 *   aegis__raft_tick(r)            advance logical time by one tick;
 *   aegis__raft_propose(r, ...)    append a new entry (leader only);
 *   aegis__raft_ready(r, &rd)      collect what the runtime must do now;
 *   aegis__raft_advance(r, &rd)    say that the runtime has taken the ready over;
 *   aegis__raft_persisted(r, i, t) report entries durable up to (i, t);
 *   aegis__raft_applied(r, i)      report entries applied up to i.
 *
 * The ready contract (DESIGN.md, thesis §10.2.1):
 *   - rd.hs (when rd.hs_changed) and rd.entries must be written to stable storage, in
 *     ready order. rd.entries[0].index may be at or below entries written earlier: the
 *     storage then truncates its suffix from that index first (a leader's conflict).
 *   - rd.msgs may be sent at once (the leader's AppendEntries go out while its own write
 *     is in flight).
 *   - rd.msgs_after_persist may be sent only once this ready's hs and entries (and every
 *     earlier ready's) are durable: vote grants and a follower's acknowledgements live
 *     here, so a follower never acknowledges an entry that is not durable and a vote is
 *     durable before the grant leaves.
 *   - rd.committed are entries to apply, in order; rd.snapshot_meta, when non-NULL, names
 *     a snapshot received from the leader (its bytes went to the config's snapshot_io
 *     sink) that must be persisted and restored into the state machine before any later
 *     committed entry is applied.
 *   - rd.reads are ReadIndex results: serve read ctx once applied >= index.
 *   Everything a ready points to stays valid until aegis__raft_advance(); the runtime
 *   takes its own references (aegis__entry_ref) on what it keeps longer. The core may be
 *   stepped and ticked between ready() and advance(), but ready() is not called again
 *   before advance(). rd.committed stops at the index this node has itself persisted.
 *   A rejected AppendEntries echoes the rejected prev_index in append_resp.match_index.
 *
 * After writing a ready's entries the runtime calls aegis__raft_persisted() with the
 * last (index, term) written; the leader counts itself toward a quorum only up to there. */
#ifndef AEGIS_RAFT_H
#define AEGIS_RAFT_H

#include "engine/msg.h"
#include "engine/rng.h"

/* The snapshot's bytes live with the runtime, never whole in the core (raft_snapshot.c,
 * docs/raft.md "Snapshots"). A snapshot is a byte string of known length (for the
 * pipeline: the snapshot file exactly as on disk); the core moves it in chunks.
 * Called from inside the core (step, tick, ready): the callbacks must not call back
 * into it. */
struct aegis_snapshot_io {
    /* Leader (source): the bytes [@offset, @offset + @len) of this node's snapshot @meta
     * (the one given to aegis__raft_snapshot_taken() or restored). Returns 0 with a new
     * buffer of exactly @len bytes in @chunk_out (its one reference moves to the core);
     * AEGIS_EAGAIN when they are not at hand yet (the runtime reads them off its thread
     * and calls aegis__raft_snapshot_readable(); the core also asks again on its
     * retransmission timer); any other error abandons the transfer (the follower goes
     * back to PROBE, and a new transfer starts from its next answer). */
    int (*read)(void *data, const struct aegis_snapshot_meta *meta, uint64_t offset,
                uint32_t len, struct aegis_buf **chunk_out);
    /* Follower (sink): start taking in snapshot @meta of @total_bytes offered by @leader,
     * dropping any other partial one. *@have_out: how many leading bytes of this same
     * offer (same leader, index, term and size) the sink already holds from an earlier
     * attempt, 0..@total_bytes; the transfer resumes there. 0 or an error (refused:
     * the leader is told to start again). */
    int (*recv_open)(void *data, const struct aegis_snapshot_meta *meta, aegis_node_id leader,
                     uint64_t total_bytes, uint64_t *have_out);
    /* Follower: the bytes at @offset (always the number held so far: chunks come in
     * order, each once). @chunk is borrowed: take a reference to keep it. 0, or an error
     * that drops the offer (the leader starts again). */
    int (*recv_write)(void *data, const struct aegis_snapshot_meta *meta, uint64_t offset,
                      struct aegis_buf *chunk);
    /* Follower: all @total_bytes are in: verify them before anything is replaced.
     * 0: good, the core installs now; AEGIS_EAGAIN: verifying, the runtime answers
     * later with aegis__raft_snapshot_verified(); any other error refuses the snapshot
     * (step returns AEGIS_ECORRUPT). A refused snapshot's bytes are dropped by the sink:
     * a later recv_open of the same offer answers 0. */
    int (*recv_finish)(void *data, const struct aegis_snapshot_meta *meta,
                       uint64_t total_bytes);
    void *data;
};

/* RaftConfig of the seed. Times are in ticks; the runtime decides how long a tick is. */
struct aegis_raft_config {
    aegis_node_id id;
    uint32_t election_timeout_min_ticks; /* Randomised in [min, max] each term. */
    uint32_t election_timeout_max_ticks;
    uint32_t heartbeat_interval_ticks;
    uint64_t snapshot_threshold;  /* Ask for a snapshot after this many applied entries. */
    uint64_t snapshot_trailing;   /* Entries kept in the log behind a snapshot. */
    uint32_t inflight_msgs_max;   /* Per-follower window: AppendEntries in flight. */
    uint64_t inflight_bytes_max;  /* Per-follower window: payload bytes in flight. */
    uint64_t append_bytes_max;    /* Payload bytes per AppendEntries. */
    uint32_t snapshot_chunk_bytes;
    bool pre_vote;
    bool check_quorum;
    /* Amnesia guard: this node's storage was empty at start and it was not started to
     * join (the runtime's --join). While its log stays empty, a message showing that the
     * cluster already exists (a candidate or leader with a log, a leader's commit index,
     * a snapshot) is refused and the core reports AEGIS_EAMNESIA in rd.fatal: the node
     * may have voted and acknowledged before it lost its storage. See docs/raft.md. */
    bool fresh;
    /* A learner added on this leader that has not acknowledged entries up to its
     * catch-up index within this many leader ticks is never promoted: aegis__raft_promote
     * proposes its removal and answers AEGIS_ECATCHUP. 0: no limit. */
    uint32_t catchup_timeout_ticks;
    /* Entry cache bound in record bytes (40 + payload per entry); 0: unbounded, entries
     * stay in memory until a snapshot compacts them (snapshot_trailing behind it). With
     * a bound, older entries that are durable, committed and handed out to apply are
     * evicted; the leader reads them back through rd.fetch when a follower lags, and the
     * log is compacted only on the runtime's word (aegis__raft_compact: its storage no
     * longer holds them), never by snapshot_trailing. docs/raft.md, "The log". */
    uint64_t log_cache_bytes;
    uint32_t bugs;                /* AEGIS_RAFT_BUG_* bits; 0 in production. */
    /* Snapshot chunks a leader keeps in flight per follower (InstallSnapshot). */
    uint32_t snapshot_chunks_inflight_max;
    /* Where snapshot bytes come from and go to: the core never holds a whole snapshot.
     * NULL callbacks: this node sends (read) or takes in (recv_*) no snapshot. */
    struct aegis_snapshot_io snapshot_io;
};

/* Deliberately broken variants, to prove that the checkers can fail: compiled only into
 * aegis_bugs, the test-only library (CMake option AEGIS_SIM_BUGS); libaegis ignores them. */
enum aegis_raft_bug {
    AEGIS_RAFT_BUG_COMMIT_OLD_TERM = 1u << 0, /* Figure 8: count replicas of old terms. */
    AEGIS_RAFT_BUG_VOTE_ANY_LOG = 1u << 1,    /* Grant votes without the up-to-date check. */
    AEGIS_RAFT_BUG_ACK_BEFORE_DURABLE = 1u << 2, /* Follower acks before persisting. */
    AEGIS_RAFT_BUG_READ_WITHOUT_INDEX = 1u << 3, /* Leader serves reads at once. */
    AEGIS_RAFT_BUG_NO_AMNESIA_GUARD = 1u << 4,   /* Ignore config.fresh. */
};

/* Fill @c with the defaults: election 10..20 ticks, heartbeat 2, threshold 10000,
 * trailing 1000, window 256 msgs / 16 MiB, 1 MiB per append, 1 MiB chunks, pre-vote and
 * check-quorum on. @id is left 0 for the caller. */
void aegis__raft_config_default(struct aegis_raft_config *c);

/* RaftState of the seed: the hard state persisted before dependent messages leave. */
struct aegis_hard_state {
    aegis_term term;
    aegis_node_id vote;
    aegis_index commit;
};

enum aegis_role {
    AEGIS_ROLE_FOLLOWER = 1,
    AEGIS_ROLE_CANDIDATE = 2,
    AEGIS_ROLE_LEADER = 3,
    AEGIS_ROLE_LEARNER = 4,
    AEGIS_ROLE_PRECANDIDATE = 5,
};

/* A ReadIndex result: the read with context @ctx may be served once applied >= @index. */
struct aegis_read_state {
    uint64_t ctx;
    aegis_index index;
};

/* A read of evicted entries the runtime must do (rd.fetch); from == 0: none. */
struct aegis_log_fetch {
    aegis_index from;
    uint32_t count_max;
    uint64_t bytes_max; /* Payload bytes; at least one entry is read. */
};

/* Entries read back per fetch. */
#define AEGIS_RAFT_FETCH_ENTRIES_MAX 16384u
#define AEGIS_RAFT_FETCH_BYTES_MAX ((uint64_t)8 << 20)

struct aegis_ready {
    bool hs_changed;
    struct aegis_hard_state hs;
    uint32_t entries_count;
    struct aegis_entry *entries;        /* To persist (may start with a truncation). */
    uint32_t msgs_count;
    struct aegis_msg *msgs;             /* Send now. */
    uint32_t msgs_after_persist_count;
    struct aegis_msg *msgs_after_persist; /* Send once this ready is durable. */
    uint32_t committed_count;
    struct aegis_entry *committed;      /* Apply, in order. */
    /* A snapshot received from the leader, verified (recv_finish), or NULL: its bytes are
     * what the sink took in; the runtime makes them its durable snapshot, drops its log
     * through it and restores the state machine from it before applying anything later. */
    const struct aegis_snapshot_meta *snapshot_meta;
    uint32_t reads_count;
    struct aegis_read_state *reads;
    bool snapshot_wanted;               /* Applied passed the threshold: take a snapshot. */
    struct aegis_log_fetch fetch;       /* Evicted entries to read back, or from 0. */
    int fatal; /* Non-zero (AEGIS_EAMNESIA): the node must stop; it ignores every message
                  from now on. Set in every ready once it happened. */
};

/* Structured trace events: the core never prints. */
struct aegis_raft_tracer {
    void (*event)(void *data, aegis_node_id node, const char *what, uint64_t a, uint64_t b);
    void *data;
};

/* What the runtime restores at start: the durable state. Everything is borrowed during
 * aegis__raft_init (entries are referenced, not copied). */
struct aegis_raft_restore {
    struct aegis_hard_state hs;
    const struct aegis_snapshot_meta *snapshot_meta; /* NULL when none. */
    uint64_t snapshot_bytes;                         /* Its size, for sending it (read). */
    const struct aegis_entry *entries;               /* After the snapshot, in order. */
    uint32_t entries_count;
    struct aegis_conf bootstrap;  /* Initial membership, used when no ConfigChange entry
                                     or snapshot says otherwise. */
};

struct aegis_raft; /* Opaque. */

/* Create a core. @config is copied; @rng and @tracer are borrowed for the core's life
 * (tracer may be NULL); @a allocates everything. Returns 0, AEGIS_ENOMEM or
 * AEGIS_ECONFIG. */
int aegis__raft_create(struct aegis_raft **out, const struct aegis_raft_config *config,
                       const struct aegis_raft_restore *restore, struct aegis_rng *rng,
                       const struct aegis_raft_tracer *tracer,
                       const struct aegis_allocator *a);
void aegis__raft_destroy(struct aegis_raft *r);

/* Feed one message. The message is borrowed. Returns 0, or refuses it and changes
 * nothing: AEGIS_ECORRUPT for values no correct peer sends (aegis__msg_validate, a
 * snapshot the sink refuses), AEGIS_EINVAL for a message out of place (from
 * ourselves, addressed to another node, leader traffic in our term from another node
 * than our leader, a TimeoutNow not from our leader). docs/raft.md, "Refusing peer
 * messages". A stale message (lower term) is dropped and returns 0. */
int aegis__raft_step(struct aegis_raft *r, const struct aegis_msg *m);
void aegis__raft_tick(struct aegis_raft *r);

/* Append @buf as a new entry of @type (a reference is taken). Returns 0 and the index in
 * @index_out, AEGIS_ENOTLEADER (aegis__raft_leader() names the leader, if known),
 * AEGIS_EBUSY (a ConfigChange while another is uncommitted, or during a transfer). */
int aegis__raft_propose(struct aegis_raft *r, uint8_t type, struct aegis_buf *buf,
                        aegis_index *index_out);

/* Membership change one server at a time: add @id as a learner, promote a learner to
 * voter, or remove a member. Proposes a ConfigChange entry.
 *
 * The promotion rule lives here and nowhere else: a learner becomes a voter only once
 * its acknowledged (durable) match index reached its catch-up index, the leader's last
 * index when the leader started tracking it (for a learner added on this leader: the
 * index of its AddLearner entry, above the commit index at the time of the request; so
 * at least one acknowledgement). Until then aegis__raft_promote() answers AEGIS_EAGAIN;
 * past config.catchup_timeout_ticks leader ticks without catching up it proposes the
 * learner's removal instead (its index in @index_out) and answers AEGIS_ECATCHUP.
 * Drivers call aegis__raft_promote() until it answers something else than AEGIS_EAGAIN
 * or AEGIS_EBUSY. */
int aegis__raft_add_learner(struct aegis_raft *r, aegis_node_id id, aegis_index *index_out);
int aegis__raft_promote(struct aegis_raft *r, aegis_node_id id, aegis_index *index_out);
int aegis__raft_remove(struct aegis_raft *r, aegis_node_id id, aegis_index *index_out);

/* Start a linearizable read with context @ctx (non-zero, chosen by the caller). Its result
 * comes out in a later ready's reads. On a follower it is forwarded to the leader.
 * Returns AEGIS_ENOTLEADER when no leader is known, AEGIS_EINVAL for ctx 0, AEGIS_EFULL
 * when too many reads wait. A read may be dropped silently (leader change): the runtime
 * times it out. */
int aegis__raft_read_index(struct aegis_raft *r, uint64_t ctx);

/* Leadership transfer to @target (thesis §3.10). AEGIS_ENOTLEADER, AEGIS_EUNKNOWNNODE. */
int aegis__raft_transfer(struct aegis_raft *r, aegis_node_id target);

/* Start an election now (the seed's start_election). */
void aegis__raft_campaign(struct aegis_raft *r);

/* The runtime lost part of the hard state (it fell back to an older copy): a vote given
 * since may be forgotten. Until an AppendEntries, heartbeat or snapshot of a leader of
 * the current term or a newer one is accepted, the core grants no vote (pre-votes, which
 * promise nothing, are still answered) and does not campaign (its self-vote is a vote
 * too), so that the forgotten vote is never given twice. Call right after create. */
void aegis__raft_withhold_votes(struct aegis_raft *r);
bool aegis__raft_votes_withheld(const struct aegis_raft *r);

bool aegis__raft_has_ready(const struct aegis_raft *r);
void aegis__raft_ready(struct aegis_raft *r, struct aegis_ready *rd);
void aegis__raft_advance(struct aegis_raft *r, struct aegis_ready *rd);

void aegis__raft_persisted(struct aegis_raft *r, aegis_index index, aegis_term term);
void aegis__raft_applied(struct aegis_raft *r, aegis_index index);

/* The runtime has written a snapshot of the state machine at @meta->index (which it has
 * applied), @total_bytes long. The core keeps only its metadata and size: it reads the
 * bytes through config.snapshot_io.read when a follower needs them. It compacts its log,
 * keeping snapshot_trailing entries behind it. @meta->conf is recomputed by the core
 * (store aegis__raft_conf_at(meta->index) with the snapshot). Returns 0, AEGIS_ESTALE (not
 * newer than the last one) or AEGIS_EINVAL (index not applied/committed, or wrong term). */
int aegis__raft_snapshot_taken(struct aegis_raft *r, const struct aegis_snapshot_meta *meta,
                               uint64_t total_bytes);

/* The source has bytes at hand that it answered AEGIS_EAGAIN for: the core asks again now
 * for every follower whose transfer waits. */
void aegis__raft_snapshot_readable(struct aegis_raft *r);

/* The sink's verdict on the snapshot (@index, @term) whose recv_finish answered
 * AEGIS_EAGAIN: 0 installs it (it comes out in the next ready), anything else refuses it
 * (the leader starts again). Returns 0, or AEGIS_ESTALE when that offer is no longer the
 * one being finished (a newer offer replaced it, or this node leads): nothing changes. */
int aegis__raft_snapshot_verified(struct aegis_raft *r, aegis_index index, aegis_term term,
                                  int status);

/* The runtime's answer to rd.fetch (@from as asked): @n entries from @from on, in order,
 * borrowed (the core takes its own references), or @err non-zero when they could not be
 * read (AEGIS_ECOMPACTED: the storage no longer holds them; AEGIS_ECORRUPT, I/O errors).
 * An answer to no pending request is ignored (0). On success the leader resumes sending
 * to the followers that waited. On failure the core compacts its log up to its latest
 * snapshot (a follower that needs those entries gets the snapshot instead) and asks
 * again no sooner than an election timeout later. Returns 0, or the error that made the
 * entries unusable (@err, or AEGIS_ECORRUPT when they do not match the log's terms). */
int aegis__raft_fetched(struct aegis_raft *r, aegis_index from, const struct aegis_entry *entries,
                        uint32_t n, int err);

/* The runtime's storage no longer holds entries up to @index (its retention deleted
 * them): compact the log there, no further than the latest snapshot. With a bounded
 * cache this is the only compaction. */
void aegis__raft_compact(struct aegis_raft *r, aegis_index index);

/* The log's memory and read-back figures (for INFO and tests). */
struct aegis_raft_log_stats {
    uint64_t cache_bytes;       /* Record bytes cached. */
    uint64_t cache_entries;
    aegis_index first_index;    /* First index the log answers for (on disk or cached). */
    aegis_index cache_first;    /* First cached index. */
    uint64_t sent_from_cache;   /* Entries sent in AppendEntries from the cache. */
    uint64_t sent_from_disk;    /* ... from entries read back (rd.fetch). */
    uint64_t fetches;           /* Fetches answered with entries. */
    uint64_t fetch_errors;      /* Fetches answered with an error. */
};
void aegis__raft_log_stats(const struct aegis_raft *r, struct aegis_raft_log_stats *out);

/* Queries. */
enum aegis_role aegis__raft_role(const struct aegis_raft *r);
aegis_term aegis__raft_term(const struct aegis_raft *r);
aegis_node_id aegis__raft_leader(const struct aegis_raft *r);
aegis_index aegis__raft_commit_index(const struct aegis_raft *r);
aegis_index aegis__raft_last_index(const struct aegis_raft *r);
/* Term of the entry at @index in the log (0 when compacted below the snapshot's trailing
 * entries or past the end; the compaction point itself still answers). */
aegis_term aegis__raft_term_at(const struct aegis_raft *r, aegis_index index);
const struct aegis_conf *aegis__raft_conf(const struct aegis_raft *r);

/* The membership in force at @index (the latest ConfigChange at or below it, else the
 * snapshot's or bootstrap's), for the runtime to store in a snapshot's metadata. Returns
 * 0, AEGIS_ERANGE (past the last index) or AEGIS_ECOMPACTED. */
int aegis__raft_conf_at(const struct aegis_raft *r, aegis_index index, struct aegis_conf *out);
struct aegis_hard_state aegis__raft_hard_state(const struct aegis_raft *r);

/* 0, or the fatal condition the node stopped on (AEGIS_EAMNESIA). */
int aegis__raft_fatal(const struct aegis_raft *r);

/* Per-follower replication progress, for status output (leader only; false otherwise). */
bool aegis__raft_progress(const struct aegis_raft *r, aegis_node_id id,
                          aegis_index *match_out, aegis_index *next_out);

#endif /* AEGIS_RAFT_H */
