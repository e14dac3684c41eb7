/* SPDX-License-Identifier: MIT */
/* The ReplicationEngine facade (the seed's engine.rs): one Raft core, one key-value state
 * machine and one cluster view behind a small single-threaded API.
 *
 * Design. This is the "in-memory durability" embedding of the seed: everything runs on
 * the caller's thread and the engine persists synchronously. Whenever the core has a
 * ready, the engine takes it over at once: entries and hard state count as durable the
 * moment they are handed over (the core keeps its log in memory), so both rd.msgs and
 * rd.msgs_after_persist go straight to the outbox, committed entries go to the apply
 * queue, and the engine reports them persisted before it looks for the next ready. It is
 * therefore NOT crash-safe; the threaded runtime in pipeline/ is the durable embedding of
 * the same core. Use this facade for tests, demos and as the reference for how to drive
 * the core.
 *
 * Output. Messages the core wants sent collect in a bounded outbox (outbox_msgs_max;
 * beyond it messages are dropped and counted, which Raft tolerates: it retransmits).
 * aegis__engine_tick() and aegis__engine_poll() hand the outbox to the caller in a
 * struct aegis_tick_result, which the caller sends (any transport) and then releases.
 *
 * Applying. Committed entries wait in an apply queue until aegis__engine_apply_committed()
 * applies them to the state machine, in order, and returns their results (the seed's
 * apply_committed). Reads (aegis__engine_get) read the local state machine: they see what
 * this node has applied, which on a follower may lag.
 *
 * Snapshots. When the core asks for one (raft.snapshot_threshold applied entries),
 * apply_committed() serializes the state machine at its applied index and hands it to the
 * core, which compacts its log. A follower that has fallen behind the compaction point is
 * sent the leader's snapshot; the engine restores its state machine from it and drops the
 * queued entries it covers.
 *
 * Membership. Peers added before the engine starts (before its first tick, message,
 * election or proposal) form the initial configuration as voters: every node of a new
 * cluster must be given the same peers. A peer added after the start is proposed as a
 * learner through the log (leader only) and promoted to voter by the engine under the
 * core's rule (aegis__raft_promote: it acknowledged the log up to its own addition; one
 * that does not within config.raft.catchup_timeout_ticks is removed again); one
 * membership change at a time. A node created to join
 * an existing group sets config.joining: it starts with an empty configuration (so it
 * never campaigns on its own) and learns the group from the leader that adds it; peers
 * given to it before the start are only recorded in its cluster view.
 *
 * Time. One tick is tick_ms of the cluster's time: failure detection runs on
 * ticks * tick_ms. Randomness (election timeouts) comes from rng_seed: the same seeds
 * and inputs replay the same run. */
#ifndef AEGIS_ENGINE_H
#define AEGIS_ENGINE_H

#include "engine/cluster.h"
#include "engine/kv.h"
#include "engine/raft.h"

/* ReplicationConfig of the seed: Raft plus cluster, and the facade's own knobs. */
struct aegis_replication_config {
    struct aegis_raft_config raft;       /* raft.id is set from the node by create. */
    struct aegis_cluster_config cluster;
    uint64_t tick_ms;                    /* Cluster time per tick. */
    uint64_t rng_seed;                   /* Election timer randomness. */
    uint64_t kv_hash_seed;               /* State machine hash key. */
    uint32_t outbox_msgs_max;            /* Messages held between ticks. */
    bool joining;                        /* Join an existing group: see below. */
};

/* ReplicationConfig::default(): the core's defaults (aegis__raft_config_default), the
 * cluster's ("aegis"), tick_ms 100, rng_seed 1, kv_hash_seed 0x5eed, outbox 4096, not
 * joining. */
void aegis__replication_config_default(struct aegis_replication_config *c);

/* TickResult of the seed: what happened since the last tick or poll. */
struct aegis_tick_result {
    uint32_t msgs_count;
    struct aegis_msg *msgs;       /* To send, in order; owned by the result. */
    uint32_t committed_count;     /* Entries newly committed (queued for apply). */
    uint32_t elections_started;   /* Campaigns this node started (pre-vote included). */
    uint32_t leader_changes;      /* Times the known leader changed. */
    aegis_node_id leader;         /* Known leader now (AEGIS_NODE_NONE if none). */
    aegis_term term;
    aegis_index commit_index;
    uint32_t failed_count;        /* Peers the cluster view marked Down this tick. */
    aegis_node_id failed[AEGIS_CLUSTER_NODES_MAX];
};

/* Free the messages of @tr (and their payload references). Leaves @tr empty. */
void aegis__tick_result_release(struct aegis_tick_result *tr, const struct aegis_allocator *a);

/* One applied entry: the seed's CommandResult with the entry it came from. */
struct aegis_engine_applied {
    aegis_index index;
    aegis_term term;
    uint8_t type;                  /* enum aegis_entry_type. */
    struct aegis_kv_result result; /* Owned: release with aegis__kv_result_release. */
};

struct aegis_engine; /* Opaque. */

/* ReplicationEngine::new(node, config). @node and @config are copied; @a (NULL = heap)
 * allocates everything and must outlive the engine. Returns 0, AEGIS_ENOMEM or
 * AEGIS_ECONFIG (invalid cluster or facade config). */
int aegis__engine_create(struct aegis_engine **out, const struct aegis_node_info *node,
                         const struct aegis_replication_config *config,
                         const struct aegis_allocator *a);
void aegis__engine_destroy(struct aegis_engine *e);

/* Add @peer (copied). Before the start: a voter of the initial configuration; after:
 * proposed as a learner, then promoted (leader only). Returns 0, AEGIS_EEXIST,
 * AEGIS_EFULL (AEGIS_MEMBERS_MAX members), AEGIS_EINVAL (id 0 or this node),
 * AEGIS_ENOTLEADER or AEGIS_EBUSY (after the start), or AEGIS_ENOMEM. */
int aegis__engine_add_peer(struct aegis_engine *e, const struct aegis_node_info *peer);

/* Remove @id from the group (leader only, through the log) and from the cluster view.
 * AEGIS_EUNKNOWNNODE, AEGIS_ENOTLEADER, AEGIS_EBUSY, AEGIS_EINVAL (before the start). */
int aegis__engine_remove_peer(struct aegis_engine *e, aegis_node_id id);

/* start_election: campaign now. The vote requests go to the outbox; @request_out (may be
 * NULL) receives a copy of the first one without payloads (its `to` is one peer). With
 * pre-vote on, this is the pre-vote round. Returns 0, or the error of starting the core
 * (AEGIS_ENOMEM; AEGIS_ECONFIG for an invalid raft config), in which case nothing started
 * and the call may be retried. A single-node group becomes leader at once (no request:
 * type 0). */
int aegis__engine_start_election(struct aegis_engine *e, struct aegis_msg *request_out);

/* handle_vote_response: feed a VoteResponse (a message of type AEGIS_MSG_VOTE_RESP).
 * Returns true when this response made this node the leader. */
bool aegis__engine_handle_vote_response(struct aegis_engine *e, const struct aegis_msg *resp);

/* process_message: feed any message from a peer (borrowed). It is validated first
 * (aegis__msg_validate: AEGIS_ECORRUPT, nothing noted); a valid message from a known
 * peer also counts as a heartbeat in the cluster view. Returns 0, the core's error for
 * the message (a refusal changes nothing), or the error of starting the core. */
int aegis__engine_process_message(struct aegis_engine *e, const struct aegis_msg *m);

/* tick: advance logical time by one tick (core and failure detection), then collect the
 * output into @tr (see struct aegis_tick_result; release it). When the core cannot be
 * started (see start_election) time does not advance and @tr is empty. */
void aegis__engine_tick(struct aegis_engine *e, struct aegis_tick_result *tr);

/* Collect the output produced since the last tick or poll without advancing time. */
void aegis__engine_poll(struct aegis_engine *e, struct aegis_tick_result *tr);

/* propose: append @command (an encoded command, engine/kv.h; a reference is taken) as a
 * Command entry. Returns 0 and the entry's index in @index_out, or AEGIS_ENOTLEADER
 * (aegis__engine_leader names the leader if known), AEGIS_EBUSY or AEGIS_ENOMEM. */
int aegis__engine_propose(struct aegis_engine *e, struct aegis_buf *command,
                          aegis_index *index_out);

/* set/delete/compare_and_swap/increment: encode and propose. Arguments are copied.
 * Return as aegis__engine_propose, or AEGIS_ETOOBIG for an oversized key. @expected
 * NULL in compare_and_swap means "the key must be absent". */
int aegis__engine_set(struct aegis_engine *e, const void *key, size_t key_len,
                      const void *value, size_t value_len, aegis_index *index_out);
int aegis__engine_delete(struct aegis_engine *e, const void *key, size_t key_len,
                         aegis_index *index_out);
int aegis__engine_compare_and_swap(struct aegis_engine *e, const void *key, size_t key_len,
                                   const struct aegis_kv_bytes *expected, const void *value,
                                   size_t value_len, aegis_index *index_out);
int aegis__engine_increment(struct aegis_engine *e, const void *key, size_t key_len,
                            int64_t delta, aegis_index *index_out);

/* get: read @key from this node's state machine. On success @value_out (if not NULL)
 * receives a reference the caller must unref and @version_out the key's version.
 * Returns 0 or AEGIS_ENOTFOUND. */
int aegis__engine_get(const struct aegis_engine *e, const void *key, size_t key_len,
                      struct aegis_buf **value_out, aegis_index *version_out);

/* apply_committed: apply queued committed entries in order, at most @cap of them when
 * @out is not NULL (results written there, owned by the caller), all of them when @out
 * is NULL (results dropped). Sets @count_out (may be NULL) to the number applied.
 * Returns 0, or AEGIS_ENOMEM (the failing entry stays queued; retry later). */
int aegis__engine_apply_committed(struct aegis_engine *e, struct aegis_engine_applied *out,
                                  uint32_t cap, uint32_t *count_out);

/* Release the results written by aegis__engine_apply_committed. */
void aegis__engine_applied_release(struct aegis_engine_applied *out, uint32_t count);

/* Queries. */
bool aegis__engine_is_leader(const struct aegis_engine *e);
aegis_node_id aegis__engine_id(const struct aegis_engine *e);
aegis_node_id aegis__engine_leader(const struct aegis_engine *e);
aegis_term aegis__engine_term(const struct aegis_engine *e);
enum aegis_node_role aegis__engine_role(const struct aegis_engine *e);
aegis_index aegis__engine_commit_index(const struct aegis_engine *e);
aegis_index aegis__engine_applied_index(const struct aegis_engine *e);
uint32_t aegis__engine_pending_apply(const struct aegis_engine *e);
uint64_t aegis__engine_msgs_dropped(const struct aegis_engine *e);
uint64_t aegis__engine_snapshots_taken(const struct aegis_engine *e);     /* Local. */
uint64_t aegis__engine_snapshots_installed(const struct aegis_engine *e); /* From leader. */
const struct aegis_cluster *aegis__engine_cluster(const struct aegis_engine *e);
const struct aegis_kv *aegis__engine_kv(const struct aegis_engine *e);
const struct aegis_allocator *aegis__engine_allocator(const struct aegis_engine *e);

/* The core, for tests and advanced embedders (e.g. ReadIndex, leadership transfer).
 * NULL before the engine has started. */
struct aegis_raft *aegis__engine_raft(struct aegis_engine *e);

#endif /* AEGIS_ENGINE_H */
