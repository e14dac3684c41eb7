/* SPDX-License-Identifier: MIT */
/* The deterministic simulation: shared types of the world and its parts.
 *
 *   sim_world.c   the world: nodes (Raft cores driven through ready/advance), the
 *                 simulated network, the simulated disks, crashes, pauses, partitions
 *                 and the step loop;
 *   sim_client.c  the tiny key-value state machine, its command and snapshot formats,
 *                 the clients and the history they record;
 *   sim_check.c   the safety checkers (after every step) and the final checks (liveness,
 *                 linearizability);
 *   sim_main.c    the command line, seed ranges and failure reports.
 *
 * Everything is derived from one seed through engine/rng.h, and nothing depends on
 * addresses, clocks or hash-table iteration order: a seed replays exactly. Time is counted
 * in steps; each node's core ticks every few steps (its own period: clocks drift). */
#ifndef SIM_H
#define SIM_H

#include <inttypes.h>
#include <stdio.h>

#include "engine/raft.h"
#include "engine/snapshot_mem.h"
#include "lincheck.h"

#define SIM_NODES_MAX 5
#define SIM_KEYS_MAX 4
#define SIM_CLIENTS_MAX 8
#define SIM_TRACE_KEEP 200
#define SIM_ENTRY_BYTES_MAX 128 /* Bound on a command's payload (sim_client.c). */

/* Fault schedules. MIXED picks one of the others per seed. */
enum sim_profile {
    SIM_PROFILE_MIXED = 0,
    SIM_PROFILE_CHAOS,     /* Everything at random intensities. */
    SIM_PROFILE_FIGURE8,   /* Leaders crash after proposals and at their first commit. */
    SIM_PROFILE_CRASH,     /* Frequent crashes, slow disks. */
    SIM_PROFILE_PARTITION, /* Long leader partitions and pauses. */
};

struct sim_options {
    uint64_t seed;
    uint64_t steps;      /* Steps with faults; the final quiet phase comes on top. */
    unsigned nodes;      /* 3 or 5. */
    uint32_t bugs;       /* AEGIS_RAFT_BUG_* bits handed to every core. */
    const char *bug_names; /* As given on the command line, for the replay line. */
    bool verbose;        /* Print every trace event as it happens. */
    bool wipe;           /* Some crashes erase the node's storage (the amnesia guard). */
    enum sim_profile profile;
};

/* Fault and workload intensities, drawn from the seed at the start of a run. */
struct sim_params {
    uint32_t drop_ppm;
    uint32_t dup_ppm;
    uint32_t delay_max;          /* Steps; each message takes 1..delay_max. */
    uint32_t partition_ppm;      /* Chance per step of a new partition. */
    uint32_t partition_len_max;
    uint32_t crash_ppm;
    uint32_t restart_delay_max;
    uint32_t torn_ppm;           /* On a crash, a prefix of the head write survives. */
    uint32_t commit_kill_ppm;    /* A leader that just committed crashes before sending. */
    uint32_t first_commit_kill_ppm; /* The same, at a leader's first commit of its term. */
    uint32_t propose_kill_ppm;   /* A leader given a proposal crashes a few steps later. */
    uint32_t propose_kill_delay_max;
    uint32_t transfer_ppm;       /* The leader is asked to hand leadership over. */
    uint32_t membership_ppm;     /* The leader is asked to remove, add or promote a node. */
    uint32_t pause_ppm;
    uint32_t pause_len_max;
    uint32_t disk_latency_max;   /* Steps per write (writes complete in order). */
    uint32_t disk_stall_ppm;
    uint32_t disk_stall_len_max;
    uint32_t clients;
    uint32_t keys;
    uint32_t think_max;          /* Steps a client waits between operations. */
    uint32_t client_timeout;     /* Steps before a client gives up on an operation. */
    uint32_t random_target_pct;  /* How often a client ignores its leader guess. */
};

struct sim_trace_ev {
    uint64_t step;
    aegis_node_id node;
    const char *what;    /* Static string (the core's or the simulation's). */
    uint64_t a;
    uint64_t b;
};

/* A message in flight, owning its buffers (aegis__msg_clone). */
struct sim_packet {
    uint64_t time;
    uint64_t seq;        /* Tie-break: send order. */
    struct aegis_msg msg;
};

/* One ready's worth of storage work, queued on a node's disk. */
struct sim_write {
    struct sim_write *next;
    uint64_t done_at;
    bool hs_changed;
    struct aegis_hard_state hs;
    uint32_t entries_count;
    struct aegis_entry *entries;          /* One reference each. */
    bool has_snapshot;
    struct aegis_snapshot_meta snap_meta;
    struct aegis_buf *snap_data;          /* One reference. */
    uint32_t msgs_count;
    struct aegis_msg *msgs;               /* msgs_after_persist, cloned. */
};

/* What survives a crash, and the queue of writes that have not completed yet. */
struct sim_disk {
    struct aegis_hard_state hs;
    bool has_snapshot;
    struct aegis_snapshot_meta snap_meta;
    struct aegis_buf *snap_data;
    aegis_index first;                    /* Index of entries[0]. */
    uint32_t count;
    uint32_t cap;
    struct aegis_entry *entries;          /* One reference each. */
    struct sim_write *head;
    struct sim_write *tail;
    uint64_t stall_until;
};

/* The checkers' copy of a node's log, rebuilt from the ready entries: each entry's term
 * and chain hash (a hash of the entry and every entry before it). */
struct sim_slog_entry {
    aegis_term term;
    uint64_t chain;
};

struct sim_slog {
    aegis_index base;      /* Entries up to base are covered by a snapshot. */
    aegis_term base_term;
    uint64_t base_chain;
    uint32_t count;
    uint32_t cap;
    struct sim_slog_entry *e; /* e[0] is index base + 1. */
};

struct sim_node {
    struct aegis_snapshot_mem snapio; /* The core's snapshot_io (snap-install). */
    aegis_node_id id;
    bool up;
    bool paused;
    uint64_t restart_at;
    uint64_t crash_at;         /* A crash scheduled by propose_kill, 0 when none. */
    uint64_t pause_until;
    uint32_t incarnation;
    bool wiped_out;            /* Stopped by the amnesia guard: waits for its removal. */
    bool joining;              /* Restarted the operator's way: --join, empty bootstrap. */
    bool unguarded;            /* Stopped by the guard having lost nothing: guard off. */
    aegis_index wipe_commit;   /* Wiped while this much was committed; 0 once it holds
                                  that again (or never wiped). */
    struct aegis_raft *raft;
    struct aegis_rng rng;
    struct sim_disk disk;
    uint64_t next_tick;
    uint32_t tick_period;
    int64_t kv[SIM_KEYS_MAX];
    aegis_index applied;
    aegis_index applied_reported;
    aegis_index commit_seen;   /* Leader's commit index when last checked. */
    aegis_term commit_term;    /* Term of this node's last commit as leader. */
    struct sim_slog log;
};

/* A committed index as first observed, for State Machine Safety and Leader
 * Completeness. */
struct sim_commit {
    aegis_term term;        /* 0: not observed yet. */
    uint64_t chain;
    uint64_t kv_digest;     /* State machine after applying it. */
    aegis_term seen_term;   /* Term of the node that first applied it. */
    uint64_t op_id;         /* Client operation it carries, 0 if none. */
    uint64_t first_clock;   /* History clock when first applied. */
};

enum sim_client_state {
    SIM_CLIENT_IDLE = 0,
    SIM_CLIENT_WRITE,       /* Waiting to propose, or waiting for the apply. */
    SIM_CLIENT_READ,        /* Waiting to start the ReadIndex, or for its result. */
};

struct sim_client {
    uint32_t id;
    enum sim_client_state state;
    size_t op;              /* History index of the current operation. */
    bool submitted;
    aegis_node_id node;
    uint32_t incarnation;
    aegis_index index;      /* Write: where it was proposed. Read: the read index. */
    bool have_index;        /* Read: the ReadIndex result arrived. */
    uint64_t ctx;
    uint64_t next_at;
    uint64_t deadline;
    uint32_t attempts;
    aegis_node_id leader_guess;
    int64_t seen[SIM_KEYS_MAX]; /* Last value observed per key, for CAS expectations. */
};

enum sim_op_status {
    SIM_OP_PENDING = 0,
    SIM_OP_OK,
    SIM_OP_INDETERMINATE,
    SIM_OP_NOT_EXECUTED,    /* Certainly had no effect (never proposed, or a lost read). */
};

struct sim_hop {
    struct lin_op op;       /* op.id is the history index + 1 and the command's id. */
    uint8_t status;
    uint32_t client;
    aegis_node_id node;
    uint64_t invoke_step;
    uint64_t return_step;
};

struct sim_lm_slot {
    aegis_index index;      /* 0: empty. */
    aegis_term term;
    uint64_t chain;
};

struct sim_stats {
    uint64_t msgs_sent;
    uint64_t msgs_dropped;
    uint64_t msgs_duplicated;
    uint64_t crashes;
    uint64_t commit_kills;
    uint64_t old_term_commits; /* A leader's commit index rests on an earlier term. */
    uint64_t torn;
    uint64_t partitions;
    uint64_t pauses;
    uint64_t transfers;
    uint64_t conf_changes;
    uint64_t wipes;
    uint64_t amnesia_stops;
    uint64_t leaders;
    uint64_t snapshots_taken;
    uint64_t snapshots_installed;
    uint64_t ops_ok;
    uint64_t ops_indeterminate;
    uint64_t reads_ok;
    uint64_t lin_steps;
};

struct sim_world {
    struct sim_options opt;
    enum sim_profile profile; /* This seed's (never MIXED). */
    struct sim_params p;
    struct aegis_rng rng;
    struct aegis_raft_config config;
    struct aegis_raft_tracer tracer;
    uint64_t now;
    uint64_t clock;         /* History clock: one tick per invoke, return or first apply. */
    bool final_phase;
    unsigned n;
    struct sim_node nodes[SIM_NODES_MAX];
    struct aegis_conf conf;

    /* Network. blocked[a][b]: messages from a to b are lost (ids 1..n). */
    bool blocked[SIM_NODES_MAX + 1][SIM_NODES_MAX + 1];
    uint64_t heal_at;
    struct sim_packet **heap;
    size_t heap_len;
    size_t heap_cap;
    uint64_t packet_seq;

    /* Clients and history. */
    struct sim_client clients[SIM_CLIENTS_MAX];
    struct sim_hop *hist;
    size_t hist_len;
    size_t hist_cap;
    uint64_t next_ctx;
    int64_t next_value;

    /* Checkers. */
    struct sim_commit *commits; /* By index; commits[0] unused. */
    size_t commits_cap;
    aegis_index commit_max;
    aegis_term lc_term;         /* Leader Completeness cache (sim_check.c). */
    aegis_index lc_upto;
    aegis_index lc_index;
    aegis_node_id *leader_of;   /* By term. */
    size_t leader_of_cap;
    struct sim_lm_slot *lm;     /* (index, term) -> chain, every entry ever appended. */
    size_t lm_cap;
    size_t lm_used;

    uint64_t last_wipe;       /* Step of the last wipe (0: none). */

    /* Failure and trace. */
    bool failed;
    uint64_t fail_step;
    const char *fail_property; /* Static string: "Election Safety", "Assertion", ... */
    char failure[1024];
    struct sim_trace_ev trace[SIM_TRACE_KEEP];
    uint64_t trace_count;
    struct sim_stats stats;
};

/* sim_world.c */
void sim_world_init(struct sim_world *w, const struct sim_options *opt);
/* Run the steps, the final quiet phase and the final checks; false on a violation. */
bool sim_world_run(struct sim_world *w);
void sim_world_close(struct sim_world *w);
void sim_trace(struct sim_world *w, aegis_node_id node, const char *what, uint64_t a,
               uint64_t b);
void sim_fail(struct sim_world *w, const char *property, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void sim_drive(struct sim_world *w, struct sim_node *nd);
void sim_propose_kill(struct sim_world *w, struct sim_node *nd);
const char *sim_profile_name(enum sim_profile profile);
struct sim_node *sim_node(struct sim_world *w, aegis_node_id id);
void sim_dump_trace(const struct sim_world *w, FILE *f);
void *sim_xcalloc(size_t count, size_t size);
void *sim_xrealloc(void *p, size_t count, size_t size);

/* sim_client.c */
struct aegis_buf *sim_kv_encode(uint8_t kind, uint32_t key, uint64_t op_id, int64_t a1,
                                int64_t a2, uint32_t pad);
/* Apply a committed entry to @nd's state machine; returns the client operation it
 * carried (0 for none) and its output in @out. */
uint64_t sim_kv_apply(struct sim_world *w, struct sim_node *nd,
                      const struct aegis_entry *e, int64_t *out);
uint64_t sim_kv_digest(const int64_t *kv);
struct aegis_buf *sim_kv_snapshot(const struct sim_node *nd);
bool sim_kv_restore(struct sim_node *nd, const struct aegis_buf *data);
void sim_clients_init(struct sim_world *w);
void sim_clients_step(struct sim_world *w);
void sim_clients_applied(struct sim_world *w, struct sim_node *nd, aegis_index index,
                         uint64_t op_id, int64_t out);
void sim_clients_read_state(struct sim_world *w, struct sim_node *nd, uint64_t ctx,
                            aegis_index index);
void sim_clients_serve_reads(struct sim_world *w, struct sim_node *nd);
void sim_clients_node_lost(struct sim_world *w, struct sim_node *nd);
void sim_clients_snapshot_installed(struct sim_world *w, struct sim_node *nd);
bool sim_clients_idle(const struct sim_world *w);
const char *sim_kind_name(uint8_t kind);

/* sim_check.c */
uint64_t sim_entry_hash(const struct aegis_entry *e);
uint64_t sim_chain(uint64_t prev, const struct aegis_entry *e);
bool sim_lm_get(const struct sim_world *w, aegis_index index, aegis_term term,
                uint64_t *chain_out);
void sim_check_append(struct sim_world *w, struct sim_node *nd,
                      const struct aegis_entry *entries, uint32_t count);
void sim_check_snapshot(struct sim_world *w, struct sim_node *nd,
                        const struct aegis_snapshot_meta *meta);
void sim_check_rebuild(struct sim_world *w, struct sim_node *nd);
void sim_check_apply(struct sim_world *w, struct sim_node *nd, const struct aegis_entry *e,
                     uint64_t op_id);
void sim_check_node(struct sim_world *w, struct sim_node *nd);
void sim_check_step(struct sim_world *w);
bool sim_check_converged(struct sim_world *w);
bool sim_conf_complete(const struct sim_world *w, const struct aegis_conf *c);
void sim_check_final(struct sim_world *w, bool converged);
void sim_slog_free(struct sim_slog *l);

#endif /* SIM_H */
