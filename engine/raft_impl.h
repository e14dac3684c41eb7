/* SPDX-License-Identifier: MIT */
/* The Raft core's private state, shared by raft.c (driving, ready/advance, queries),
 * raft_election.c (roles, votes, timers, transfer), raft_replicate.c (AppendEntries,
 * heartbeats, commit, snapshots), raft_read.c (ReadIndex) and raft_membership.c
 * (configuration changes). Nothing outside these files includes it.
 *
 * Output buffering. Messages are queued into one of two boxes: the "current" box collects
 * what the core produces; aegis__raft_ready() hands the current box over (the runtime reads
 * it until aegis__raft_advance()) and switches to the other, so the core may keep stepping
 * between ready() and advance(). AppendEntries carry entries copied (with a reference
 * each) into the box's entry pool; while the box collects, a message records its offset
 * in the pool (the pool may move when it grows) and ready() turns offsets into pointers.
 * Every queue has a hard cap (AEGIS_RAFT_MSGS_MAX and friends): past it messages are
 * dropped and counted, which Raft tolerates as message loss. */
#ifndef AEGIS_RAFT_IMPL_H
#define AEGIS_RAFT_IMPL_H

#include "engine/conf.h"
#include "engine/log.h"
#include "engine/progress.h"
#include "engine/raft.h"

#define AEGIS_RAFT_MSGS_MAX 4096u          /* Per queue of one box. */
#define AEGIS_RAFT_READY_ENTRIES_MAX 4096u /* Entries to persist or apply per ready. */
#define AEGIS_RAFT_APPEND_ENTRIES_MAX 1024u /* Entries per AppendEntries. */
#define AEGIS_RAFT_READS_MAX 4096u         /* Pending ReadIndex requests (leader). */
#define AEGIS_RAFT_UNPERSISTED_MAX 65536u  /* Leader: proposals not yet durable. */

struct aegis_raft_box {
    struct aegis_msg *msgs;
    uint32_t *msgs_pool_off; /* For APPEND_REQ: offset of its entries in pool. */
    uint32_t msgs_count;
    uint32_t msgs_cap;
    struct aegis_msg *after;
    uint32_t after_count;
    uint32_t after_cap;
    struct aegis_entry *pool;
    uint32_t pool_count;
    uint32_t pool_cap;
    struct aegis_read_state *reads;
    uint32_t reads_count;
    uint32_t reads_cap;
};

/* A ReadIndex request waiting on the leader. round 0: waiting for the leader's first
 * commit in its term; then the heartbeat round that confirms it. */
struct aegis_read_pending {
    uint64_t ctx;
    aegis_node_id from; /* The leader itself, or the follower that forwarded it. */
    aegis_index index;
    uint64_t round;
};

struct aegis_vote_record {
    aegis_node_id id;
    bool granted;
};

struct aegis_raft {
    const struct aegis_allocator *alloc;
    struct aegis_raft_config cfg;
    struct aegis_rng *rng;
    const struct aegis_raft_tracer *tracer;
    aegis_node_id id;

    /* Role and hard state. */
    enum aegis_role role;
    aegis_term term;
    aegis_node_id vote;
    aegis_node_id leader;
    struct aegis_log log;

    /* Membership: conf is the latest configuration in the log (it takes effect when
     * appended, thesis §4.1), conf_index the entry that holds it (0: none in the log);
     * base_conf is the configuration as of the log's compaction point. */
    struct aegis_conf conf;
    aegis_index conf_index;
    struct aegis_conf base_conf;

    /* Timers, in ticks. */
    uint32_t election_elapsed;
    uint32_t heartbeat_elapsed;
    uint32_t election_timeout; /* Randomised in [min, max] at each reset. */

    /* Set by aegis__raft_withhold_votes(): no vote granted and no campaign until a
     * leader of the current term or a newer one is accepted (raft_election.c). */
    bool votes_withheld;

    /* Candidate and pre-candidate. */
    struct aegis_vote_record votes[AEGIS_MEMBERS_MAX];
    uint32_t votes_count;

    /* Leader. */
    struct aegis_progress prs[AEGIS_MEMBERS_MAX]; /* One slot per other member. */
    aegis_node_id transfer_target;
    uint32_t transfer_elapsed;

    /* Follower: the leader's notice that it hands over to target in term (TimeoutNow
     * naming another node); honours that target's transfer vote for term + 1 only. */
    struct {
        aegis_term term;
        aegis_node_id leader;
        aegis_node_id target;
    } transfer_notice;

    /* ReadIndex (leader): a FIFO ring of pending reads. */
    struct aegis_read_pending *reads;
    uint32_t reads_start;
    uint32_t reads_count;
    uint64_t read_round;

    /* Persistence and apply. */
    aegis_index unstable_from;   /* First index not yet handed out to persist. */
    aegis_index persisted_index; /* Durable prefix of the current log. */
    aegis_index handed_commit;   /* Last index handed out to apply. */
    aegis_index applied;
    struct aegis_hard_state hs_handed; /* Hard state of the last ready. */

    /* Snapshots: the latest one this node holds (index 0: none), snap_bytes long; its
     * bytes are the runtime's (config.snapshot_io). */
    struct aegis_snapshot_meta snap_meta;
    uint64_t snap_bytes;
    bool snap_out;      /* A received snapshot waits for the next ready. */
    bool snap_asked;    /* snapshot_wanted was raised; not again until one is taken. */
    /* Follower: the offer being taken in through the sink (raft_snapshot.c). An offer
     * is one snapshot (index, term, size) from one leader; its bytes [0, received) went
     * to the sink. finishing: all are in and the sink is verifying them. */
    struct {
        bool active;
        bool finishing;
        struct aegis_snapshot_meta meta;
        aegis_node_id leader;
        uint64_t total;
        uint64_t received;
    } recv;

    /* Reading evicted entries back (raft_replicate.c): one fetch at a time. */
    struct {
        aegis_index from;     /* Pending fetch (0: none). */
        bool handed;          /* It went out in a ready. */
        uint32_t backoff;     /* Ticks before asking again after a failure. */
        uint64_t sent_cache;  /* Statistics (aegis__raft_log_stats). */
        uint64_t sent_disk;
        uint64_t done;
        uint64_t errors;
    } fetch;

    /* Output. */
    struct aegis_raft_box boxes[2];
    uint32_t cur; /* The collecting box; the other is handed out while ready_out. */
    bool ready_out;
    bool appends_pending; /* Proposals since the last ready: send them from ready(), so a
                             batch of proposals goes out as one AppendEntries per follower
                             rather than one per proposal. */
    struct aegis_entry *rd_entries;
    uint32_t rd_entries_count;
    struct aegis_entry *rd_committed;
    uint32_t rd_committed_count;
    struct aegis_snapshot_meta rd_snap_meta;
    uint64_t msgs_dropped;

    /* Amnesia guard (raft_membership.c): armed while config.fresh and the log never held
     * an entry; fatal once a message showed that the cluster exists. */
    bool fresh;
    int fatal;
    bool fatal_reported;
};

/* raft.c */
#ifdef AEGIS_SIM_BUGS /* Only in aegis_bugs, the test-only library (CMakeLists.txt). */
bool aegis__raft_bug(const struct aegis_raft *r, uint32_t bug);
#else
#define aegis__raft_bug(r, bug) false /* The bug constants are not even compiled. */
#endif
void aegis__raft_trace(const struct aegis_raft *r, const char *what, uint64_t a, uint64_t b);
struct aegis_msg *aegis__raft_push(struct aegis_raft *r, uint8_t type, aegis_node_id to,
                                   bool after_persist);
struct aegis_entry *aegis__raft_push_entries(struct aegis_raft *r, struct aegis_msg *m,
                                             uint32_t n);
void aegis__raft_push_read(struct aegis_raft *r, uint64_t ctx, aegis_index index);
struct aegis_progress *aegis__raft_progress_of(struct aegis_raft *r, aegis_node_id id);
bool aegis__raft_promotable(const struct aegis_raft *r);

/* raft_election.c */
void aegis__raft_reset_timeout(struct aegis_raft *r);
void aegis__raft_become_follower(struct aegis_raft *r, aegis_term term, aegis_node_id leader);
void aegis__raft_start_election(struct aegis_raft *r, bool pre_vote, bool transfer);
void aegis__raft_handle_vote_req(struct aegis_raft *r, const struct aegis_msg *m);
void aegis__raft_handle_vote_resp(struct aegis_raft *r, const struct aegis_msg *m);
void aegis__raft_handle_timeout_now(struct aegis_raft *r, const struct aegis_msg *m);
bool aegis__raft_transfer_sanctioned(const struct aegis_raft *r, const struct aegis_msg *m);
void aegis__raft_tick_follower(struct aegis_raft *r);
void aegis__raft_tick_leader(struct aegis_raft *r);
void aegis__raft_transfer_check(struct aegis_raft *r, struct aegis_progress *pr);

/* raft_replicate.c */
int aegis__raft_append_local(struct aegis_raft *r, uint8_t type, struct aegis_buf *buf,
                             aegis_index *index_out);
void aegis__raft_send_append(struct aegis_raft *r, struct aegis_progress *pr, bool allow_empty);
void aegis__raft_send_appends(struct aegis_raft *r, struct aegis_progress *pr);
void aegis__raft_broadcast_appends(struct aegis_raft *r);
void aegis__raft_broadcast_heartbeat(struct aegis_raft *r, uint64_t read_ctx);
void aegis__raft_maybe_commit(struct aegis_raft *r);
void aegis__raft_commit_to(struct aegis_raft *r, aegis_index index);
int aegis__raft_handle_append_req(struct aegis_raft *r, const struct aegis_msg *m);
void aegis__raft_handle_append_resp(struct aegis_raft *r, struct aegis_progress *pr,
                                    const struct aegis_msg *m);
void aegis__raft_handle_heartbeat(struct aegis_raft *r, const struct aegis_msg *m);
void aegis__raft_handle_heartbeat_resp(struct aegis_raft *r, struct aegis_progress *pr,
                                       const struct aegis_msg *m);
void aegis__raft_tick_snapshots(struct aegis_raft *r);
void aegis__raft_compact_log(struct aegis_raft *r, aegis_index index);

/* raft_snapshot.c */
void aegis__raft_send_snapshot_chunks(struct aegis_raft *r, struct aegis_progress *pr);
int aegis__raft_handle_snapshot_req(struct aegis_raft *r, const struct aegis_msg *m);
void aegis__raft_handle_snapshot_resp(struct aegis_raft *r, struct aegis_progress *pr,
                                      const struct aegis_msg *m);

/* raft_read.c */
void aegis__raft_reads_on_commit(struct aegis_raft *r);
void aegis__raft_reads_on_ack(struct aegis_raft *r, struct aegis_progress *pr, uint64_t round);
void aegis__raft_reads_drop(struct aegis_raft *r);
void aegis__raft_handle_read_index_req(struct aegis_raft *r, const struct aegis_msg *m);
void aegis__raft_handle_read_index_resp(struct aegis_raft *r, const struct aegis_msg *m);

/* raft_membership.c */
void aegis__raft_conf_appended(struct aegis_raft *r, const struct aegis_entry *e);
void aegis__raft_conf_truncated(struct aegis_raft *r);
void aegis__raft_conf_set(struct aegis_raft *r, const struct aegis_conf *c, aegis_index index);
void aegis__raft_sync_progress(struct aegis_raft *r);
void aegis__raft_conf_on_commit(struct aegis_raft *r);
bool aegis__raft_amnesia_guard(struct aegis_raft *r, const struct aegis_msg *m);
void aegis__raft_tick_learners(struct aegis_raft *r);

#endif /* AEGIS_RAFT_IMPL_H */
