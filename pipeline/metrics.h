/* SPDX-License-Identifier: MIT */
/* Metrics of one node: per-stage latency histograms of the write path, distributions
 * (batch sizes, group-commit time) and counters, read by INFO, /metrics and aegis-bench.
 *
 * Design. Every histogram has exactly one writer thread, named in the table in metrics.c
 * (the stage's "owner"): it records with engine/hist.h's relaxed stores, no locks, no
 * atomic read-modify-write, no allocation. A reader merges each live histogram into a
 * private copy (aegis__hist_merge) whenever it reports; nothing is ever reset, so readers
 * never disturb writers. Counters are per thread: each thread bumps its own cache-line
 * aligned shard (a relaxed load and store), and readers sum the shards.
 *
 * Stages of a write, as one request sees them (leader unless said otherwise):
 *
 *   RECEIVE_PROPOSE   the API call (aegis_node_propose: on aegisd, the moment the command
 *                     was parsed off the socket) -> the raft thread appended it to the log
 *                     (aegis__raft_propose). Inbox wait plus the raft thread's backlog.
 *   PROPOSE_DURABLE   proposed -> the log thread reported it written and fdatasynced, as
 *                     the raft thread sees the report.
 *   PROPOSE_COMMIT    proposed -> committed (a quorum has it durable), as the raft thread
 *                     hands it to the apply ring.
 *   COMMIT_APPLY      committed -> applied to the state machine (apply thread; every node).
 *   APPLY_REPLY       applied -> the reply bytes were handed to the socket (net thread).
 *   REQUEST           the whole request on the server: parsed -> reply handed to the socket.
 *   FOLLOWER_RECEIVE_DURABLE  follower: AppendEntries frame decoded (net thread) -> its
 *                     entries reported durable to the raft thread.
 *   FOLLOWER_DURABLE_ACK      follower: durable -> the acknowledgement (AppendEntries
 *                     response) handed to the net thread.
 *
 * The raft thread carries the proposal time of each entry in a ring of stamps indexed by
 * log index (AEGIS_METRICS_STAMPS slots, owned by the raft thread): the log and commit
 * stages are recorded by walking the indexes newly reported durable or committed. An
 * entry whose slot was reused before it finished (more than AEGIS_METRICS_STAMPS entries
 * in flight) is simply not sampled. Clock reads are one per batch on the raft, log and
 * apply threads, and one per request where a request is the unit (API call, reply).
 *
 * Threads: every recording function names its thread; readers (INFO on the net thread,
 * the HTTP exporter thread) call the aegis__metrics_read_* functions from any thread. */
#ifndef AEGIS_PIPELINE_METRICS_H
#define AEGIS_PIPELINE_METRICS_H

#include <pthread.h>
#include <stddef.h>

#include "engine/hist.h"
#include "engine/raft.h"

/* The threads that write metrics; each owns one counter shard. */
enum aegis_mthread {
    AEGIS_MT_NET = 0,
    AEGIS_MT_RAFT,
    AEGIS_MT_LOG,
    AEGIS_MT_APPLY,
    AEGIS_MT_COUNT
};

/* Histograms. The stages come first, in request order; see the file comment. */
enum aegis_mhist {
    AEGIS_MH_RECEIVE_PROPOSE = 0,    /* raft thread, ns. */
    AEGIS_MH_PROPOSE_DURABLE,        /* raft thread, ns. */
    AEGIS_MH_PROPOSE_COMMIT,         /* raft thread, ns. */
    AEGIS_MH_COMMIT_APPLY,           /* apply thread, ns. */
    AEGIS_MH_APPLY_REPLY,            /* net thread, ns. */
    AEGIS_MH_REQUEST,                /* net thread, ns. */
    AEGIS_MH_FOLLOWER_RECEIVE_DURABLE, /* raft thread, ns. */
    AEGIS_MH_FOLLOWER_DURABLE_ACK,   /* raft thread, ns. */
    AEGIS_MH_STAGE_COUNT,
    AEGIS_MH_LOG_SYNC = AEGIS_MH_STAGE_COUNT, /* log thread, ns: one batch's writes and
                                                 fdatasyncs (group commit), end to end. */
    AEGIS_MH_LOG_BATCH_ENTRIES,      /* log thread: entries per batch written. */
    AEGIS_MH_APPEND_ENTRIES,         /* raft thread: entries per AppendEntries sent. */
    AEGIS_MH_APPLY_BATCH_ENTRIES,    /* apply thread: entries per apply batch. */
    AEGIS_MH_PROPOSE_BATCH,          /* raft thread: proposals per inbox drain. */
    AEGIS_MH_COUNT
};

/* Counters, summed over the thread shards when read. */
enum aegis_mctr {
    AEGIS_MC_LOG_BATCHES = 0,   /* Batches written by the log thread (any durability). */
    AEGIS_MC_LOG_ENTRIES,       /* Entries in them. */
    AEGIS_MC_LOG_BYTES,         /* Record bytes appended to segment files. */
    AEGIS_MC_APPEND_SENT,       /* AppendEntries messages sent (with or without entries). */
    AEGIS_MC_APPEND_ENTRIES_SENT, /* Entries carried by them. */
    AEGIS_MC_APPEND_RECEIVED,   /* AppendEntries messages taken by the raft thread. */
    AEGIS_MC_APPEND_ACKED,      /* Successful AppendEntries responses sent. */
    AEGIS_MC_APPLY_BATCHES,     /* Apply thread wake-ups that applied at least one entry. */
    AEGIS_MC_APPLY_ENTRIES,     /* Entries applied. */
    AEGIS_MC_PEER_BYTES_OUT,    /* Frame bytes queued to peers. */
    AEGIS_MC_PEER_BYTES_IN,     /* Frame bytes received from peers. */
    AEGIS_MC_CLIENT_BYTES_OUT,  /* Reply bytes queued to clients. */
    AEGIS_MC_CLIENT_BYTES_IN,   /* Bytes received from clients. */
    AEGIS_MC_CLIENT_OPENED,     /* Client connections accepted. */
    AEGIS_MC_CLIENT_CLOSED,     /* Client connections closed. */
    AEGIS_MC_RING_FULL_PEER,    /* Peer ring full: a decoded message dropped. */
    AEGIS_MC_RING_FULL_LOG,     /* Log request ring full: requests queued in the backlog. */
    AEGIS_MC_RING_FULL_APPLY,   /* Apply ring full: items queued in the backlog. */
    AEGIS_MC_ELECTIONS,         /* Elections this node started (became candidate). */
    AEGIS_MC_LEADER_CHANGES,    /* Changes of the known leader to a new node. */
    AEGIS_MC_SNAPSHOTS_SENT,    /* Snapshot transfers sent to followers (last chunk). */
    AEGIS_MC_SNAPSHOTS_RECEIVED, /* Snapshots received from the leader and installed. */
    AEGIS_MC_ERR_CLIENT_TRYAGAIN, /* -TRYAGAIN replies (definitely not applied). */
    AEGIS_MC_ERR_CLIENT_UNKNOWN, /* -UNKNOWN replies (outcome unknown). */
    AEGIS_MC_ERR_CLIENT_OTHER,  /* Other error replies (-ERR, -NOAUTH, ...). */
    AEGIS_MC_ERR_PEER_DECODE,   /* Peer frames that did not decode. */
    AEGIS_MC_PEER_REJECTED,     /* Decoded peer messages refused: invalid values
                                   (aegis__msg_validate) or out of place (the core). */
    AEGIS_MC_ERR_LOG_WRITE,     /* Log write failures reported to the raft thread. */
    AEGIS_MC_AUTH_FAILURES,     /* Client AUTH attempts refused (wrong name or password). */
    AEGIS_MC_CLIENT_TIMEOUTS,   /* Client connections closed by a deadline (idle, request). */
    AEGIS_MC_COUNT
};

#define AEGIS_METRICS_STAMPS 16384u /* Power of two: entries in flight that are sampled. */

enum aegis_stamp_kind {
    AEGIS_STAMP_NONE = 0,
    AEGIS_STAMP_PROPOSED = 1, /* Proposed on this node (leader). */
    AEGIS_STAMP_RECEIVED = 2, /* Received in an AppendEntries (follower). */
};

struct aegis_metrics_stamp {
    aegis_index index;
    uint64_t in_ns;      /* Proposed or received. */
    uint64_t durable_ns; /* 0 until durable. */
    uint32_t kind;       /* enum aegis_stamp_kind. */
};

struct aegis_metrics_shard {
    uint64_t c[AEGIS_MC_COUNT]; /* Written by the shard's thread (relaxed), read anywhere. */
} __attribute__((aligned(64)));

struct aegis_metrics {
    struct aegis_hist hist[AEGIS_MH_COUNT];          /* Each: its owner thread records. */
    struct aegis_metrics_shard shard[AEGIS_MT_COUNT];

    /* Raft thread only. */
    struct aegis_metrics_stamp stamps[AEGIS_METRICS_STAMPS];
    aegis_index durable_seen;  /* Highest index walked by _durable. */
    aegis_index commit_seen;   /* Highest index walked by _committed. */
    aegis_index acked_seen;    /* Highest index walked by _acked. */
    enum aegis_role last_role;
    aegis_node_id last_leader;
    aegis_term last_term;

    /* Clock reads shared within a thread's batch, so that one read serves many samples. */
    uint64_t net_wake_ns;      /* Net thread: read at each wake-up (on_wake drains). */
    aegis_index apply_index;   /* Apply thread: the entry being applied ... */
    uint64_t apply_ns;         /* ... and the clock read when it was applied. */

    /* Readers: the baseline INFO latency is reported against (CONFIG RESETSTAT). */
    pthread_mutex_t baseline_lock;
    struct aegis_hist *baseline[AEGIS_MH_COUNT];     /* NULL until the first reset. */
};

/* Build @m in place (it is large: about 1.4 MiB; keep it on the heap). */
void aegis__metrics_init(struct aegis_metrics *m);
/* Free the reset baseline, if any. */
void aegis__metrics_close(struct aegis_metrics *m);

/* Add @v to counter @c in thread @t's shard. Thread @t only. */
static inline void aegis__metrics_add(struct aegis_metrics *m, enum aegis_mthread t,
                                      enum aegis_mctr c, uint64_t v)
{
    uint64_t *p = &m->shard[t].c[c];

    /* One writer: a relaxed load and store, no lock prefix; readers load relaxed. */
    __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

/* Record @v into histogram @h. Its owner thread only (see enum aegis_mhist). */
static inline void aegis__metrics_record(struct aegis_metrics *m, enum aegis_mhist h,
                                         uint64_t v)
{
    aegis__hist_record(&m->hist[h], v);
}

/* Record the time from @from_ns to @now_ns (0 when the clock went backwards or @from_ns
 * is unknown, i.e. 0: then nothing is recorded). Owner thread only. */
static inline void aegis__metrics_since(struct aegis_metrics *m, enum aegis_mhist h,
                                        uint64_t from_ns, uint64_t now_ns)
{
    if (from_ns != 0 && now_ns >= from_ns) {
        aegis__hist_record(&m->hist[h], now_ns - from_ns);
    }
}

/* Raft thread: entry @index was proposed here at @now_ns; the request entered the node at
 * @received_ns (0: unknown, RECEIVE_PROPOSE not sampled). */
void aegis__metrics_proposed(struct aegis_metrics *m, aegis_index index, uint64_t received_ns,
                             uint64_t now_ns);

/* Raft thread: an AppendEntries carrying [@first, @last] arrived (decoded) at @recv_ns. */
void aegis__metrics_appended(struct aegis_metrics *m, aegis_index first, aegis_index last,
                             uint64_t recv_ns);

/* Raft thread: the log thread reported the log durable up to @index; seen at @now_ns. */
void aegis__metrics_durable(struct aegis_metrics *m, aegis_index index, uint64_t now_ns);

/* Raft thread: entries up to @index are committed and go to the apply ring at @now_ns. */
void aegis__metrics_committed(struct aegis_metrics *m, aegis_index index, uint64_t now_ns);

/* Raft thread: a follower acknowledges entries up to @index at @now_ns. */
void aegis__metrics_acked(struct aegis_metrics *m, aegis_index index, uint64_t now_ns);

/* Raft thread, once per loop: count elections and leader changes from the core's state. */
void aegis__metrics_observe(struct aegis_metrics *m, enum aegis_role role, aegis_term term,
                            aegis_node_id leader);

/* Readers (any thread). */
uint64_t aegis__metrics_counter(const struct aegis_metrics *m, enum aegis_mctr c);
/* Merge histogram @h into @out (private, initialised by the caller). */
void aegis__metrics_hist(const struct aegis_metrics *m, enum aegis_mhist h,
                         struct aegis_hist *out);
/* Names for reports: the stage/distribution name ("propose_commit") and its unit
 * ("ns" or "count"). */
const char *aegis__metrics_hist_name(enum aegis_mhist h);
bool aegis__metrics_hist_is_time(enum aegis_mhist h);

/* Take the current histograms as the baseline of INFO latency (CONFIG RESETSTAT).
 * Returns 0 or AEGIS_ENOMEM. Any thread; serialised by baseline_lock. */
int aegis__metrics_reset_baseline(struct aegis_metrics *m);
/* Merge histogram @h into @out minus the baseline (the samples since the last reset). */
void aegis__metrics_hist_since_reset(struct aegis_metrics *m, enum aegis_mhist h,
                                     struct aegis_hist *out);

/* A growable text buffer for reports (heap). */
struct aegis_text {
    char *data;
    size_t len, cap;
    bool failed; /* An allocation failed: the text is cut short. */
};

void aegis__text_printf(struct aegis_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void aegis__text_free(struct aegis_text *t);

struct aegis_node;

/* Append the INFO sections "stats", "latency" and "persistence" of @n that @want selects
 * (NULL, "all", "everything" or the section's name, case-insensitive) to @t, in Redis'
 * INFO format ("# Name\r\nkey:value\r\n...\r\n"). Any thread. */
void aegis__metrics_info(struct aegis_node *n, const char *want, struct aegis_text *t);

/* Append every metric of @n in the Prometheus text exposition format (version 0.0.4) to
 * @t. Any thread. */
void aegis__metrics_prometheus(struct aegis_node *n, struct aegis_text *t);

/* The Prometheus endpoint: a thread (aegis-metrics) with a blocking listener on
 * @host:@port (0: any free port) answering GET /metrics; anything else gets 404. It waits
 * in poll() on the socket and a stop pipe: no busy waiting. */
struct aegis_metrics_http;

/* Bind and start. Returns 0, AEGIS_EINVAL (bad host), or a negative errno (bind). */
int aegis__metrics_http_start(struct aegis_metrics_http **out, struct aegis_node *n,
                              const char *host, uint16_t port);
/* The bound port. */
uint16_t aegis__metrics_http_port(const struct aegis_metrics_http *h);
/* Stop the thread and free; NULL is a no-op. Call before the node is destroyed. */
void aegis__metrics_http_stop(struct aegis_metrics_http *h);

#endif /* AEGIS_PIPELINE_METRICS_H */
