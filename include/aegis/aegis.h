/* SPDX-License-Identifier: MIT */
/* Aegis embedding API.
 *
 * A node is one member of a Raft group: it runs four threads (aegis-net, aegis-raft,
 * aegis-log, aegis-apply), owns a data directory, talks to its peers over TCP, and
 * applies committed commands to a state machine: the built-in versioned key-value store
 * or the embedder's own through callbacks (struct aegis_sm).
 *
 * Threads. Functions marked "any thread" may be called from any thread, including from
 * a completion callback. Completion callbacks and state machine callbacks run on the
 * node's apply thread, one at a time: they must not block for long (they stall
 * applying), and must not call aegis_node_stop() or aegis_node_destroy().
 *
 * Errors. Every function returns 0 or a negative AEGIS_E* code (aegis/error.h).
 * AEGIS_ELEADERLOST in a completion means the outcome is unknown: the command may or
 * may not be applied. Every other error in a completion is definite: the command was
 * not and will not be applied. */
#ifndef AEGIS_AEGIS_H
#define AEGIS_AEGIS_H

#ifdef __cplusplus
extern "C" {
#endif

#include <aegis/error.h>
#include <aegis/types.h>

#define AEGIS_HOST_MAX 64

struct aegis_node; /* Opaque. */

enum aegis_fsync_mode {
    AEGIS_FSYNC_BATCH = 0, /* Group commit: an entry is durable after its batch's fdatasync. */
    AEGIS_FSYNC_NONE = 1,  /* Nothing reaches disk: for measuring network and pipeline. */
};

struct aegis_peer_addr {
    aegis_node_id id;
    char host[AEGIS_HOST_MAX];
    uint16_t port;
};

/** The outcome of a command, passed to a completion callback. Everything it points to is
 * borrowed and valid only during the callback. */
struct aegis_result {
    int status;           /* 0, or a negative AEGIS_E* code (see the file comment). */
    aegis_index index;    /* Log index the command was applied at (0 if not applied). */
    uint64_t version;     /* Built-in KV: the key's version (index of its last write). */
    const void *value;    /* Built-in KV GET: the value, NULL when absent. */
    size_t value_len;
    int64_t integer;      /* INCR: the new value; DEL: keys removed; CAS: 1 swapped, 0 not. */
    aegis_node_id leader_hint; /* AEGIS_ENOTLEADER / EUNAVAIL: the leader, if known. */
};

typedef void (*aegis_done_cb)(void *data, const struct aegis_result *res);

/** The embedder's state machine. Every callback runs on the apply thread.
 *
 * Snapshots are streams. The library takes one between two applies: it calls
 * snapshot_open, then snapshot_read again and again, with applies of later commands in
 * between, until it returns 0 bytes, then snapshot_close. The bytes read must be the
 * state exactly as it was at snapshot_open (point in time), however many applies ran
 * since: keeping that view (copy-on-write, versions, or a copy made at open) is the
 * embedder's job. The library writes them to the snapshot file in checksummed chunks as
 * they come and sends them to followers; nothing holds the whole snapshot in memory.
 * Restoring is a stream too: restore_begin, restore_feed with the bytes in any split,
 * then restore_end(commit true) once every byte has arrived and been verified, which
 * replaces the state; restore_end(commit false) drops what was fed, leaving the state as
 * it was. Set all three snapshot_* or none, and all three restore_* or none.
 *
 * The whole-buffer callbacks snapshot and restore (the older interface) are used when
 * the streaming ones are NULL: the library reads snapshot's buffer in chunks, and
 * gathers the fed bytes into one buffer for restore. */
struct aegis_sm {
    /** Apply the command @cmd (@len bytes, borrowed) committed at @index. Fill @res
     * (status, value, integer); @res->value must stay valid until the call returns. An
     * error status is reported to the proposer; it does not stop the node. */
    void (*apply)(void *data, aegis_index index, const void *cmd, size_t len,
                  struct aegis_result *res);
    /** Whole-buffer snapshot (when snapshot_open is NULL): serialise the whole state,
     * return 0 and a buffer from malloc() in @buf_out (the library frees it), or a
     * negative code to skip this snapshot. */
    int (*snapshot)(void *data, void **buf_out, size_t *len_out);
    /** Whole-buffer restore (when restore_begin is NULL): replace the whole state with a
     * snapshot (@buf borrowed). Return 0 or an error: on error the state must be left as
     * it was, and the node stops. */
    int (*restore)(void *data, const void *buf, size_t len);
    /** Linearizable read: called on the apply thread once the read is safe; @query is the
     * embedder's own (borrowed). Fill @res. May be NULL when reads are not used. */
    void (*read)(void *data, const void *query, size_t len, struct aegis_result *res);
    void *data;
    /** Streaming snapshot (optional): open a point-in-time view of the state and return
     * it in @snap_out (0), or a negative code to skip this snapshot. */
    int (*snapshot_open)(void *data, void **snap_out);
    /** Copy the next bytes of the view into @buf (at most @cap) and set *@len_out: at
     * least 1 until the end, 0 at the end. Return 0 or a negative code (the snapshot is
     * abandoned; snapshot_close still runs). */
    int (*snapshot_read)(void *data, void *snap, void *buf, size_t cap, size_t *len_out);
    /** Release a view (read to the end or not). */
    void (*snapshot_close)(void *data, void *snap);
    /** Streaming restore (optional): start building a new state aside (@restore_out). */
    int (*restore_begin)(void *data, void **restore_out);
    /** The next @len bytes (borrowed) of the snapshot. 0 or a negative code (then
     * restore_end(commit false) follows). */
    int (*restore_feed)(void *data, void *restore, const void *buf, size_t len);
    /** @commit true: every byte was fed and verified, replace the state (return 0 or an
     * error: on error the state must be left as it was, and the node stops). @commit
     * false: drop what was fed (the return value is ignored). */
    int (*restore_end)(void *data, void *restore, bool commit);
};

struct aegis_node_config {
    aegis_node_id id;                 /* This node: one of peers[].id, non-zero. */
    uint64_t cluster_id;              /* Peers from another cluster are refused. */
    uint32_t peers_count;             /* Every voter, this node included. */
    struct aegis_peer_addr peers[AEGIS_PEERS_MAX];
    const char *data_dir;             /* Created if missing; copied. */
    enum aegis_fsync_mode fsync;
    const struct aegis_sm *sm;        /* NULL: the built-in versioned KV. Borrowed. */
    bool join;                        /* Start outside the group, waiting to be added. */
    /* Tuning; aegis_node_config_init() sets the defaults. */
    uint32_t tick_ms;                 /* Default 10. */
    uint32_t election_ticks;          /* Minimum; the maximum is twice it. Default 30. */
    uint32_t heartbeat_ticks;         /* Default 5. */
    uint64_t snapshot_threshold;      /* Entries applied between snapshots. Default 100000. */
    uint32_t snapshot_chunk_bytes;    /* InstallSnapshot chunk (4 in flight per follower).
                                         Default 1 MiB. */
    uint64_t segment_bytes;           /* Log segment size. Default 64 MiB. */
    uint32_t max_command_bytes;       /* Largest command. Default 1 MiB. */
    uint32_t max_pending;             /* Proposals in flight per node. Default 65536. */
    uint32_t fail_stop_ms;            /* After a storage error (a log or hard state write or
                                         sync failed) the node stops at once acting as
                                         leader, candidate or voter and answers
                                         AEGIS_ESTORAGE; aegisd exits (status 3) this long
                                         after. Default 2000. */
    uint32_t catchup_timeout_ms;      /* A member being added that has not caught up by
                                         then is removed, never promoted. Default 60000;
                                         0: no limit. */
    /* Called once (on an internal thread) when the node stopped on a fatal condition it
     * cannot recover from by itself: AEGIS_EAMNESIA (the amnesia guard), or the storage
     * error (e.g. AEGIS_ENOSPC) fail_stop_ms after the log or hard state failed. The
     * embedder should call aegis_node_stop() and exit non-zero. NULL: nothing. */
    void (*on_fatal)(void *data, int err);
    void *on_fatal_data;
    /* TLS (docs/security.md); PEM files, paths copied, read by aegis_node_start. All
     * three set: peer links use mutual TLS (each certificate chains to tls_ca and names
     * its node id as a SAN URI aegis://node/<id>). NULL: plaintext peer links. */
    const char *tls_cert;
    const char *tls_key;
    const char *tls_ca;
    bool client_tls;                  /* The client port speaks TLS too (same files). */
    /* Log memory and retention (docs/operations.md). The Raft log keeps at most about
     * log_cache_bytes of entries in memory (record bytes: 40 + payload each; entries not
     * yet durable or applied stay whatever the bound); older ones are read back from the
     * segment files for lagging followers. Default 64 MiB; 0: unbounded (every entry
     * since the last snapshot stays in memory, as before). With fsync none the cache is
     * unbounded (there are no segments to read back). Segments behind the latest snapshot
     * are kept up to log_retention_bytes so a follower that was away catches up from the
     * log rather than a snapshot. Default 2 GiB; 0: none kept. */
    uint64_t log_cache_bytes;
    uint64_t log_retention_bytes;
};

/** The library's version, "MAJOR.MINOR.PATCH" (e.g. "0.2.0"): a static string, the same
 * as the programs' --version and INFO's aegis_version. Any thread. */
AEGIS_API const char *aegis_version(void);

/** Logging (docs/operations.md "Logs"). Process-wide, for every node in the process: one
 * line per event, "time level thread event key=value ... src=FILE:LINE", written to stderr
 * unless a callback is set. Levels: */
enum aegis_log_level_public {
    AEGIS_LOGLEVEL_DEBUG = 0,
    AEGIS_LOGLEVEL_INFO = 1, /* The default. */
    AEGIS_LOGLEVEL_WARN = 2,
    AEGIS_LOGLEVEL_ERROR = 3,
    AEGIS_LOGLEVEL_OFF = 4,
};

/** Receives each line at or above the level (@line without a newline, borrowed for the
 * call). Called on the thread that logs (any node thread): it must be thread-safe and
 * must not block for long nor call into the node. */
typedef void (*aegis_log_fn)(void *data, int level, const char *line);

/** Send every line to @fn (with @data) instead of stderr; NULL: back to stderr. Set it
 * before starting a node (a line being logged meanwhile may still go the old way). */
AEGIS_API void aegis_set_log_fn(aegis_log_fn fn, void *data);

/** Lines below @level (an AEGIS_LOGLEVEL_*) are not formatted at all. Any thread. */
AEGIS_API void aegis_set_log_level(int level);

/** Fill @c with defaults; the caller sets id, peers and data_dir. Any thread. */
AEGIS_API void aegis_node_config_init(struct aegis_node_config *c);

/** Create a node from @c (copied; the caller may free it when this returns). Opens and
 * recovers the data directory; starts no thread yet. Errors: AEGIS_EINVAL / ECONFIG (bad
 * config), AEGIS_ECORRUPT (the log or a snapshot is corrupt), AEGIS_ENOSYS (io_uring
 * unavailable), OS errors from opening files. */
AEGIS_API int aegis_node_create(struct aegis_node **out, const struct aegis_node_config *c);

/** Start the node's threads and network. Call once, from the creating thread. */
AEGIS_API int aegis_node_start(struct aegis_node *n);

/** Propose @cmd (@len bytes, copied) asynchronously. For the built-in KV, build @cmd with
 * the aegis_cmd_* encoders. @cb runs on the apply thread once the outcome is known; on a
 * follower the command is forwarded to the leader. Returns 0 (the callback will run),
 * AEGIS_EFULL (too many in flight: retry later; the callback will not run),
 * AEGIS_ETOOBIG, AEGIS_ESHUTDOWN. Any thread. */
AEGIS_API int aegis_node_propose(struct aegis_node *n, const void *cmd, size_t len,
                                 aegis_done_cb cb, void *data);

/** Blocking convenience: propose and wait. The value in @res (if any) is copied into
 * @value_buf (up to @value_cap bytes). Must not be called from a callback. */
AEGIS_API int aegis_node_propose_sync(struct aegis_node *n, const void *cmd, size_t len,
                                      struct aegis_result *res, void *value_buf,
                                      size_t value_cap);

/** Linearizable read (ReadIndex). @query (copied) goes to the state machine's read
 * callback (built-in KV: an aegis_cmd_get encoding) once this node has applied
 * everything committed when the read began. Errors as aegis_node_propose, and the
 * callback may report AEGIS_ENOTLEADER when no leader is known. Any thread. */
AEGIS_API int aegis_node_read(struct aegis_node *n, const void *query, size_t len,
                              aegis_done_cb cb, void *data);

struct aegis_member_status {
    aegis_node_id id;
    bool voter;
    aegis_index match_index; /* Known on the leader only; 0 elsewhere. */
};

struct aegis_status {
    aegis_node_id id;
    enum aegis_node_role role;
    aegis_term term;
    aegis_node_id leader;
    aegis_index commit_index;
    aegis_index applied_index;
    aegis_index last_index;
    aegis_index snapshot_index;
    uint32_t members_count;
    struct aegis_member_status members[AEGIS_PEERS_MAX];
};

/** A recent copy of the node's status (refreshed by the raft thread at every step). Any
 * thread. */
AEGIS_API int aegis_node_status(struct aegis_node *n, struct aegis_status *out);

/** The latency of one stage of a write since the node started (docs/profiling.md names
 * the stages), from the node's histograms: samples, median, 99th percentile, largest. */
struct aegis_stage_stats {
    uint64_t count;
    uint64_t p50_ns;
    uint64_t p99_ns;
    uint64_t max_ns;
};

#define AEGIS_STATS_STAGES 8 /* receive_propose, propose_durable, propose_commit,
                                commit_apply, apply_reply, request,
                                follower_receive_durable, follower_durable_ack. */

/** The counters behind INFO and /metrics (docs/operations.md lists their meaning), all
 * since the node was created, never reset. Versioned by size: the caller sets @size to
 * sizeof(struct aegis_stats) as it was compiled; the library fills that many bytes at
 * most (a newer library never writes past an older caller's struct) and sets @size to
 * the bytes it filled (an older library fills fewer: the rest is left untouched). Fields
 * are only ever added at the end. */
struct aegis_stats {
    uint32_t size;
    uint32_t reserved;              /* 0. */
    /* Storage. */
    uint64_t log_batches;           /* Batches written by the log thread. */
    uint64_t log_entries;
    uint64_t log_bytes;             /* Record bytes appended to segment files. */
    uint64_t log_write_errors;
    /* Replication. */
    uint64_t append_sent;           /* AppendEntries sent (with or without entries). */
    uint64_t append_entries_sent;
    uint64_t append_received;
    uint64_t append_acked;
    uint64_t apply_batches;
    uint64_t apply_entries;         /* Entries applied to the state machine. */
    uint64_t elections;             /* Elections this node started. */
    uint64_t leader_changes;
    uint64_t snapshots_sent;
    uint64_t snapshots_received;
    /* Peers. */
    uint64_t peer_bytes_out;
    uint64_t peer_bytes_in;
    uint64_t peer_decode_errors;    /* Peer frames that did not decode. */
    uint64_t peer_rejected;         /* Decoded peer messages refused. */
    uint64_t ring_full_peer;
    uint64_t ring_full_log;
    uint64_t ring_full_apply;
    /* Clients (aegisd's RESP server; 0 for an embedder without one). */
    uint64_t client_bytes_out;
    uint64_t client_bytes_in;
    uint64_t clients_opened;
    uint64_t clients_closed;
    uint64_t client_err_tryagain;   /* Definitely not applied. */
    uint64_t client_err_unknown;    /* Outcome unknown. */
    uint64_t client_err_other;
    uint64_t auth_failures;
    uint64_t client_timeouts;
    /* API. */
    uint64_t proposals;             /* Commands proposed on this node. */
    uint64_t forwarded;             /* ... forwarded to the leader. */
    uint64_t reads;                 /* Linearizable reads. */
    uint64_t backpressure;          /* Times the proposal inbox was full. */
    struct aegis_stage_stats stages[AEGIS_STATS_STAGES];
};

/** Copy the node's counters into @out (see struct aegis_stats for @out->size). Returns 0,
 * or AEGIS_EINVAL when @out->size is below 8. Any thread; it merges a dozen histograms
 * (well under a millisecond) and takes no lock the node's threads wait on. */
AEGIS_API int aegis_node_stats(struct aegis_node *n, struct aegis_stats *out);

/** Membership, one server at a time. Adding makes @peer a learner that catches up and is
 * then promoted to voter automatically; removing a voter shrinks the group. The
 * callback reports when the change committed. On a follower the request is forwarded to
 * the leader (AEGIS_ENOTLEADER when no leader is known); AEGIS_EBUSY while another change
 * is in flight. Any thread. */
AEGIS_API int aegis_node_add_member(struct aegis_node *n, const struct aegis_peer_addr *peer,
                                    aegis_done_cb cb, void *data);
AEGIS_API int aegis_node_remove_member(struct aegis_node *n, aegis_node_id id,
                                       aegis_done_cb cb, void *data);

/** Hand leadership to @target (Raft thesis §3.10). Leader only. Any thread. */
AEGIS_API int aegis_node_transfer_leadership(struct aegis_node *n, aegis_node_id target);

/** Take a snapshot now and wait until it is durable on this node's disk (the apply thread
 * starts it between two applies and goes on applying while another thread writes it).
 * Returns 0 once the snapshot file is durable, or the error that stopped it (e.g.
 * AEGIS_ENOSPC, AEGIS_EUNAVAIL when nothing was applied yet, AEGIS_ESHUTDOWN). When a
 * snapshot is already being written, this waits for that one. Must not be called from a
 * callback. */
AEGIS_API int aegis_node_snapshot(struct aegis_node *n);

/** The same, asynchronously: @cb runs on the apply thread with status 0 and the
 * snapshot's index in res->index once it is durable, or with the error that stopped it.
 * Returns 0 (the callback will run) or AEGIS_EFULL / AEGIS_ESHUTDOWN. Any thread. */
AEGIS_API int aegis_node_snapshot_async(struct aegis_node *n, aegis_done_cb cb, void *data);

/** Stop gracefully: stop taking work, drain the rings, fsync, close connections, join
 * the threads. Pending callbacks run with AEGIS_ESHUTDOWN or AEGIS_ELEADERLOST. Call
 * from the creating thread, never from a callback. */
AEGIS_API int aegis_node_stop(struct aegis_node *n);

/** Free a node (stopping it first if needed). */
AEGIS_API void aegis_node_destroy(struct aegis_node *n);

/** Built-in KV command encoders, for aegis_node_propose (writes) and aegis_node_read
 * (aegis_cmd_get). Each writes the command into @buf (@cap bytes; keys and values are
 * copied) and returns its length, or a negative code: AEGIS_ETOOBIG when @cap is too
 * small or a key is longer than 64 KiB, AEGIS_ENOMEM. The encoding is specified in
 * docs/state-machine.md. Results arrive in struct aegis_result: GET's value and
 * version; INCR's new value and DEL's count in @integer; CAS: @integer 1 when it
 * swapped, 0 when not. Any thread. */
AEGIS_API int64_t aegis_cmd_get(void *buf, size_t cap, const void *key, size_t key_len);
AEGIS_API int64_t aegis_cmd_set(void *buf, size_t cap, const void *key, size_t key_len,
                                const void *value, size_t value_len);
AEGIS_API int64_t aegis_cmd_del(void *buf, size_t cap, const void *key, size_t key_len);
AEGIS_API int64_t aegis_cmd_incr(void *buf, size_t cap, const void *key, size_t key_len,
                                 int64_t delta);
/** @expected NULL: swap only when the key is absent; otherwise the whole current value. */
AEGIS_API int64_t aegis_cmd_cas(void *buf, size_t cap, const void *key, size_t key_len,
                                const void *expected, size_t expected_len, const void *value,
                                size_t value_len);

#ifdef __cplusplus
}
#endif

#endif /* AEGIS_AEGIS_H */
