/* SPDX-License-Identifier: MIT */
/* The node runtime's internal state: one struct aegis_node per node, shared by its four
 * threads. Each field says which thread owns it and how others may touch it.
 *
 *   aegis-net    owns the io_uring loop (peer links, client port), decodes frames into
 *                messages for the raft thread, encodes and sends what the raft and apply
 *                threads post to it.
 *   aegis-raft   owns the Raft core; drains its rings, ticks, routes the core's ready
 *                output: entries and hard state to the log thread, messages to the net
 *                thread, committed entries and read results to the apply thread.
 *   aegis-log    owns the storage (pipeline/log_writer.c): group commit, durable reports.
 *   aegis-apply  owns the state machine; applies, completes callbacks, takes snapshots.
 *
 * Rings between threads are SPSC (pipeline/ring.h). The one many-producer queue is the
 * inbox, where any thread's API calls (propose, read, membership) land: a mutex-guarded
 * bounded array that the raft thread swaps out whole, so it takes the lock once per
 * drain, not per request. */
#ifndef AEGIS_PIPELINE_NODE_INT_H
#define AEGIS_PIPELINE_NODE_INT_H

#include <pthread.h>

#include <aegis/aegis.h>

#include "engine/kv.h"
#include "engine/raft.h"
#include "net/uring_loop.h"
#include "pipeline/datadir.h"
#include "pipeline/log_writer.h"
#include "pipeline/metrics.h"
#include "pipeline/ring.h"
#include "pipeline/snap_transfer.h"
#include "pipeline/snap_writer.h"

struct aegis_node;

/* A closure run on the net thread. */
struct aegis_net_post {
    void (*fn)(struct aegis_node *n, void *arg, uint64_t u);
    void *arg;
    uint64_t u;
};
AEGIS_RING_DEFINE(net_post, aegis_net_post)

/* A decoded peer message, net -> raft. The message is owned (aegis__msg_release). */
struct aegis_peer_msg {
    struct aegis_msg *msg;
    uint64_t recv_ns;             /* Decoded at (aegis__now_ns; metrics). */
};
AEGIS_RING_DEFINE(peer_msg, aegis_peer_msg)

enum aegis_apply_kind {
    AEGIS_APPLY_ENTRY = 1,     /* A committed entry (one reference owned). */
    AEGIS_APPLY_REGISTER,      /* A proposal awaiting its entry: local cb or remote. */
    AEGIS_APPLY_COMPLETE,      /* Run cb with a status now (a definite failure, ...). */
    AEGIS_APPLY_READ,          /* Serve a read once applied >= index. */
    AEGIS_APPLY_INSTALL,       /* Restore a snapshot received from the leader. */
    AEGIS_APPLY_SNAPSHOT_NOW,  /* Take a snapshot at the applied index. */
    AEGIS_APPLY_RESULT,        /* A forwarded command's result from the leader. */
};

/* raft -> apply. Fields unused by a kind are zero. */
struct aegis_apply_item {
    uint8_t kind;
    int32_t status;
    struct aegis_entry entry;     /* ENTRY; REGISTER uses index and term. */
    aegis_done_cb cb;             /* REGISTER (local), COMPLETE, READ, RESULT. */
    void *data;
    aegis_node_id remote;         /* REGISTER for a forwarded proposal: reply to it. */
    uint64_t request_id;
    struct aegis_buf *buf;        /* READ: query; INSTALL: snapshot data; RESULT: value. */
    aegis_index index;            /* READ: read index; RESULT: applied index. */
    uint64_t version;             /* RESULT. */
    int64_t integer;              /* RESULT. */
    aegis_node_id leader_hint;    /* COMPLETE. */
    struct aegis_snapshot_meta *meta; /* INSTALL (owned, heap). */
    uint64_t stamp_ns;            /* ENTRY: committed at (metrics); 0: unknown. */
};
AEGIS_RING_DEFINE(apply, aegis_apply_item)

enum aegis_report_kind {
    AEGIS_REPORT_APPLIED = 1,
    AEGIS_REPORT_SNAPSHOT = 2, /* A snapshot file is durable: meta (owned) and the whole
                                * stream in data (owned), or data NULL when the stream
                                * is over AEGIS_BUF_LEN_MAX (the file is the only copy);
                                * meta NULL: it failed (status). */
    AEGIS_REPORT_FAILED = 3,   /* The state machine could not go on (restore failed). */
};

/* apply -> raft. */
struct aegis_apply_report {
    uint8_t kind;
    int32_t status;
    aegis_index applied;
    struct aegis_snapshot_meta *meta;
    uint64_t file_bytes; /* AEGIS_REPORT_SNAPSHOT: the size of the file, the core's source. */
};
AEGIS_RING_DEFINE(report, aegis_apply_report)

enum aegis_req_kind {
    AEGIS_REQ_PROPOSE = 1,
    AEGIS_REQ_READ,
    AEGIS_REQ_ADD,
    AEGIS_REQ_REMOVE,
    AEGIS_REQ_TRANSFER,
    AEGIS_REQ_SNAPSHOT,
};

/* Any thread -> raft, through the inbox. */
struct aegis_req {
    uint8_t kind;
    struct aegis_buf *buf;        /* PROPOSE: command; READ: query. Owned. */
    aegis_done_cb cb;
    void *data;
    struct aegis_peer_addr peer;  /* ADD. */
    aegis_node_id target;         /* REMOVE, TRANSFER. */
    uint64_t stamp_ns;            /* Entered the inbox at (metrics). */
};

struct aegis_inbox {
    pthread_mutex_t lock;
    struct aegis_req *items;      /* Guarded by lock. */
    uint32_t count;               /* Guarded by lock. */
    uint32_t cap;
    struct aegis_req *spare;      /* Raft thread: the array swapped in at each drain. */
};

/* A forwarded proposal waiting for the leader's answer (raft thread). */
struct aegis_forward {
    uint64_t request_id;          /* 0: free slot. */
    aegis_done_cb cb;
    void *data;
    uint64_t deadline_tick;
    aegis_node_id leader;         /* Sent to: failed early once another leads. */
};

/* A read waiting for its ReadIndex round. */
struct aegis_read_req {
    struct aegis_buf *query;      /* Owned. */
    aegis_done_cb cb;
    void *data;
};

/* Reads confirmed by one ReadIndex round (raft thread). Reads that arrive while every
 * batch has a round in flight wait in read_wait and form the next batch: a burst of
 * reads costs one heartbeat round, not one per read. */
#define AEGIS_READ_BATCHES 16
#define AEGIS_READ_BATCH_MAX 8192u

struct aegis_read_batch {
    uint64_t ctx;                 /* 0: free. */
    uint64_t deadline_tick;
    aegis_node_id leader;         /* The leader when the round started. */
    uint32_t count;
    struct aegis_read_req *reads; /* AEGIS_READ_BATCH_MAX slots. */
};

/* A member being added: a learner until it catches up, then promoted (raft thread). */
struct aegis_pending_add {
    aegis_node_id id;             /* 0: none. */
    aegis_done_cb cb;
    void *data;
    aegis_index catchup_hint;     /* Its AddLearner entry: what it must acknowledge. */
};

/* Client-port hooks for a server (aegisd). They run on the net thread. */
struct aegis_client_hooks {
    void (*on_open)(struct aegis_node *n, aegis_uring_client_id c, void *data);
    size_t (*on_data)(struct aegis_node *n, aegis_uring_client_id c, const uint8_t *bytes,
                      size_t len, void *data);
    void (*on_close)(struct aegis_node *n, aegis_uring_client_id c, int status, void *data);
    /* After the net thread ran a batch of posted closures (completions): write out what
     * they produced, one write per connection rather than one per reply. */
    void (*on_flush)(struct aegis_node *n, void *data);
    /* Every loop tick (100 ms); @now_ms is CLOCK_MONOTONIC in ms (client deadlines). */
    void (*on_tick)(struct aegis_node *n, uint64_t now_ms, void *data);
    void *data;
};

/* One writer per counter, any reader (INFO, /metrics): a relaxed atomic add, so readers
 * never see a torn or racy value (and ThreadSanitizer agrees). */
#define AEGIS_STAT_INC(field) __atomic_fetch_add(&(field), 1, __ATOMIC_RELAXED)

/* Counters, each written by one thread (relaxed), read by anyone. */
struct aegis_node_stats {
    uint64_t peer_msgs_in;
    uint64_t peer_msgs_dropped;   /* Ring full or undecodable: Raft retransmits. */
    uint64_t peer_msgs_out;
    uint64_t peer_send_failed;
    uint64_t proposals;
    uint64_t forwarded;
    uint64_t reads;
    uint64_t applied_entries;
    uint64_t apply_batches;
    uint64_t snapshots_taken;
    uint64_t snapshots_installed;
    uint64_t log_batches;
    uint64_t backpressure;        /* Times the inbox was full. */
};

struct aegis_node {
    struct aegis_node_config config;    /* Immutable after create; strings copied: */
    char data_dir[4096];
    char tls_cert[4096];                /* Copies of the config's TLS paths; empty: none. */
    char tls_key[4096];
    char tls_ca[4096];
    const struct aegis_allocator *alloc;
    uint64_t rng_seed;

    /* Raft thread. */
    struct aegis_raft *raft;
    struct aegis_rng rng;
    struct aegis_waker raft_waker;
    struct aegis_inbox inbox;
    struct aegis_forward *forwards;     /* config.max_pending slots, power of two. */
    uint32_t forwards_mask;
    uint64_t next_request_id;
    uint64_t forward_oldest;            /* Forwards with ids <= this are settled. */
    struct aegis_forward admin_forward; /* A forwarded member addition: it waits far longer
                                           than a write, so it is kept out of the forwards
                                           ring, whose expiry walks in id order. */
    struct aegis_pending_add adding;
    struct aegis_read_batch read_batches[AEGIS_READ_BATCHES];
    struct aegis_read_req *read_wait;   /* AEGIS_READ_BATCH_MAX slots. */
    uint32_t read_wait_count;
    uint64_t next_read_ctx;
    uint64_t tick_count;
    uint64_t durable_seq;               /* Log requests reported durable (reqs_done). */
    bool datadir_fresh;                 /* No snapshot and no entry at start (node.c). */
    bool fatal_reported;                /* The core's rd.fatal was acted on. */
    aegis_term hs_term;                 /* Term and vote last handed to the log thread. */
    aegis_node_id hs_vote;
    struct aegis_msg *held;             /* msgs_after_persist waiting for durable_seq. */
    uint64_t *held_seq;
    uint32_t held_count, held_cap;
    struct aegis_apply_item *apply_backlog; /* Items the apply ring had no room for. */
    uint32_t apply_backlog_count, apply_backlog_cap;
    bool snapshot_requested;
    uint64_t snapshot_retry_tick;       /* Retry a failed snapshot at this tick; 0: none. */
    aegis_index snapshot_index;
    struct aegis_snap_transfer snapx;   /* snap-install: InstallSnapshot through files. */
    int fatal;                          /* First fatal error (log write failed, ...). */
    /* Fail-stop (raft thread writes, others read atomically): the first storage error
     * (log or hard state write/sync); 0 while healthy. Once set the raft thread no longer
     * drives the core (no tick, no message stepped, no ready routed: nothing that depends
     * on state that is not durable leaves), answers requests with AEGIS_ESTORAGE, and
     * calls config.on_fatal with storage_err once fail_deadline_ns has passed (aegisd
     * then exits 3). */
    int storage_err;
    uint64_t fail_deadline_ns;
    bool fail_stop_reported;            /* on_fatal was called for it. */

    /* Log thread (pipeline/log_writer.h). */
    struct aegis_log_writer *log;
    struct aegis_log_reader *reader; /* Log retention: reads evicted entries back. */
    uint64_t log_reqs_pushed;           /* Raft thread: requests handed over, cumulative. */
    struct aegis_log_req *log_backlog;  /* Requests the ring had no room for, in order. */
    uint32_t log_backlog_count, log_backlog_cap;

    /* Apply thread. */
    struct aegis_kv kv;
    const struct aegis_sm *sm;          /* NULL: the built-in KV. */
    struct aegis_waker apply_waker;
    struct aegis_ring_apply apply_ring;     /* raft -> apply. */
    struct aegis_ring_report report_ring;   /* apply -> raft. */
    struct aegis_ring_net_post apply_post;  /* apply -> net. */
    struct aegis_apply_state *apply_state;  /* Private to apply.c. */
    aegis_index applied_index;          /* Written by apply (relaxed), read for status. */
    uint32_t inflight;                  /* Proposals registered and not yet resolved:
                                           incremented by raft, decremented by apply
                                           (atomic). Bounded by config.max_pending. */

    /* Net thread. */
    struct aegis_uring_loop *loop;
    struct aegis_ring_peer_msg peer_ring;   /* net -> raft. */
    struct aegis_ring_net_post raft_post;   /* raft -> net. */
    struct aegis_client_hooks client;
    bool raft_wake_deferred;            /* Net thread: requests pushed since its last
                                           wake of the raft thread. */
    char client_host[AEGIS_HOST_MAX];   /* Client listener; empty: none. */
    uint16_t client_port;
    uint32_t clients_max;
    uint32_t client_read_bytes_max;

    /* Data directory (pipeline/datadir.h): lock held from create to destroy. */
    struct aegis_datadir datadir;

    /* Shared. */
    pthread_t net_thread, raft_thread, apply_thread;
    bool started;
    int stopping;                       /* Atomic: set by stop(). */
    pthread_mutex_t status_lock;
    struct aegis_status status;         /* Guarded by status_lock; raft thread writes. */
    struct aegis_peer_addr addrs[AEGIS_PEERS_MAX]; /* Guarded by status_lock; the apply
                                           thread writes what it knows: --peers, then
                                           addresses learned from the log and snapshots. */
    uint32_t addrs_count;
    struct aegis_node_stats stats;
    struct aegis_snap_stats snap_stats; /* Apply thread and snapshot writer (INFO). */
    struct aegis_metrics metrics;       /* pipeline/metrics.h: each part names its writer. */
};

/* node.c */
void aegis__node_fail(struct aegis_node *n, int rv, const char *what);

/* The storage error that stopped the node (a negative AEGIS_E* code, e.g. AEGIS_ENOSPC),
 * or 0. Any thread. */
int aegis__node_storage_error(const struct aegis_node *n);

/* raft_thread.c */
void *aegis__raft_thread_main(void *arg);
int aegis__raft_thread_init(struct aegis_node *n);
void aegis__raft_thread_close(struct aegis_node *n);
/* snap-install (pipeline/snap_transfer.c): queue a log request / an apply item in order
 * with the raft thread's own (raft thread only). */
void aegis__raft_thread_log_push(struct aegis_node *n, const struct aegis_log_req *req);
void aegis__raft_thread_apply_push(struct aegis_node *n, const struct aegis_apply_item *it);

/* net_thread.c */
/* The node whose net thread is the calling thread, or NULL. */
extern _Thread_local struct aegis_node *aegis__net_thread_node;
int aegis__net_init(struct aegis_node *n, char *errmsg, size_t errmsg_len);
void *aegis__net_thread_main(void *arg);
/* Send @m (owned: released once sent or dropped) to m->to. Net thread only. */
void aegis__net_send_msg(struct aegis_node *n, struct aegis_msg *m);
/* Post a closure to the net thread from the raft thread (raft_post) or the apply thread
 * (apply_post). Never fails: a full ring is drained by waiting for the net thread. */
void aegis__net_post_from_raft(struct aegis_node *n, const struct aegis_net_post *p);
void aegis__net_post_from_apply(struct aegis_node *n, const struct aegis_net_post *p);

/* apply.c */
int aegis__apply_init(struct aegis_node *n);
void aegis__apply_close(struct aegis_node *n);
void *aegis__apply_thread_main(void *arg);

/* Internal server hooks (cmd/aegisd): set before aegis_node_start. */
void aegis__node_set_client_hooks(struct aegis_node *n, const struct aegis_client_hooks *h);

/* Open a client listener on @host:@port (before start). */
void aegis__node_set_client_port(struct aegis_node *n, const char *host, uint16_t port,
                                 uint32_t clients_max, uint32_t read_bytes_max);

/* The bound client and peer ports (after create). */
uint16_t aegis__node_client_port(const struct aegis_node *n);

/* Parse snapshot data (pipeline/envelope.h) and restore the state machine from it: the
 * member addresses it carries go to @addrs (AEGIS_PEERS_MAX slots). Used at start and when
 * installing a snapshot from the leader. 0, AEGIS_ECORRUPT, or the restore's error. */
int aegis__apply_restore(struct aegis_node *n, const struct aegis_buf *data,
                         struct aegis_peer_addr *addrs, uint32_t *addrs_count_out);

/* Restore the state machine from the snapshot file @path (the snapshot @meta), read as a
 * stream, every chunk verified; the member addresses go to @addrs. Errors are logged with
 * the file and the offset. 0, AEGIS_ECORRUPT, an I/O error or the restore's error. */
int aegis__apply_restore_file(struct aegis_node *n, const char *path,
                              const struct aegis_snapshot_meta *meta,
                              struct aegis_peer_addr *addrs, uint32_t *addrs_count_out);

/* The address of member @id as this node knows it (from --peers, the log or a snapshot):
 * true and *out filled, or false. Any thread. */
bool aegis__node_member_addr(struct aegis_node *n, aegis_node_id id,
                             struct aegis_peer_addr *out);

/* Leadership transfer with a completion (AEGIS.TRANSFER): on a follower it is forwarded
 * to the leader; @cb gets 0 once the leader's core started the transfer, or the core's
 * refusal (AEGIS_EUNKNOWNNODE, AEGIS_ENOTLEADER, ...). Any thread. */
int aegis__node_transfer(struct aegis_node *n, aegis_node_id target, aegis_done_cb cb,
                         void *data);

/* Called by node.c after restore; see apply.c. */
void aegis__apply_restored(struct aegis_node *n, const struct aegis_snapshot_meta *meta,
                           const struct aegis_peer_addr *addrs, uint32_t addrs_count);

/* Write @len bytes (copied) to client @c. Net thread only. */
int aegis__node_client_write(struct aegis_node *n, aegis_uring_client_id c, const void *bytes,
                             size_t len);

#endif /* AEGIS_PIPELINE_NODE_INT_H */
