/* SPDX-License-Identifier: MIT */
/* Raft messages: what the core takes in through aegis__raft_step() and puts out through
 * its ready output, and what net/codec encodes on the wire.
 *
 * Ownership: a message borrows its buffers (entries' payloads, snapshot chunk, client
 * command and value). The core's step() takes its own references on anything it keeps;
 * the caller releases the message afterwards. A decoded message owns its entries array
 * and one reference per buffer: free it with aegis__msg_release(). */
#ifndef AEGIS_MSG_H
#define AEGIS_MSG_H

#include "engine/entry.h"

/* Values are part of the wire format. */
enum aegis_msg_type {
    AEGIS_MSG_VOTE_REQ = 1,        /* RequestVote (or PreVote when pre_vote is set). */
    AEGIS_MSG_VOTE_RESP = 2,
    AEGIS_MSG_APPEND_REQ = 3,      /* AppendEntries; an empty one probes. */
    AEGIS_MSG_APPEND_RESP = 4,
    AEGIS_MSG_SNAPSHOT_REQ = 5,    /* InstallSnapshot: one chunk. */
    AEGIS_MSG_SNAPSHOT_RESP = 6,
    AEGIS_MSG_HEARTBEAT = 7,       /* Carries the commit index and a ReadIndex context. */
    AEGIS_MSG_HEARTBEAT_RESP = 8,
    AEGIS_MSG_TIMEOUT_NOW = 9,     /* Leadership transfer: start an election now. */
    AEGIS_MSG_READ_INDEX_REQ = 10, /* A follower asks the leader for a read index. */
    AEGIS_MSG_READ_INDEX_RESP = 11,
    AEGIS_MSG_CLIENT_REQ = 12,     /* A forwarded client command (runtime, not the core). */
    AEGIS_MSG_CLIENT_RESP = 13,
};
#define AEGIS_MSG_TYPE_MIN AEGIS_MSG_VOTE_REQ
#define AEGIS_MSG_TYPE_MAX AEGIS_MSG_CLIENT_RESP

struct aegis_vote_req {
    aegis_index last_log_index;
    aegis_term last_log_term;
    bool pre_vote;            /* A pre-vote: no term change, no vote recorded. */
    bool leadership_transfer; /* Sent after TimeoutNow: bypasses leader stickiness. */
};

struct aegis_vote_resp {
    bool granted;
    bool pre_vote;
};

struct aegis_append_req {
    aegis_index prev_index;
    aegis_term prev_term;
    aegis_index commit;       /* Leader's commit index. */
    uint32_t entries_count;
    struct aegis_entry *entries;
};

struct aegis_append_resp {
    bool success;
    aegis_index match_index;    /* On success: last index now known to match (durable).
                                   On rejection: the rejected prev_index, so the leader
                                   can ignore stale rejections. */
    aegis_index conflict_index; /* On rejection: first index of conflict_term, or the
                                   follower's last index + 1 when its log is too short. */
    aegis_term conflict_term;   /* On rejection: term at prev_index, 0 if none there. */
    aegis_index last_index;     /* Follower's last log index (a hint for probing). */
};

struct aegis_snapshot_req {
    struct aegis_snapshot_meta meta;
    uint64_t offset;      /* Byte offset of this chunk in the snapshot. */
    uint64_t total_bytes; /* Size of the whole snapshot (<= AEGIS_SNAPSHOT_BYTES_MAX). */
    bool done;            /* This is the last chunk. */
    struct aegis_buf *chunk;
};

struct aegis_snapshot_resp {
    aegis_index index;    /* The snapshot's last index. */
    uint64_t next_offset; /* Success: the follower holds the first next_offset bytes (it
                             may be ahead of what this leader sent: resume there);
                             total_bytes only once installed and durable. Failure: the
                             chunk did not follow on; send again from next_offset
                             (0: from the start). */
    bool success;
};

struct aegis_heartbeat {
    aegis_index commit;
    uint64_t read_ctx;    /* Non-zero: confirms leadership for ReadIndex batch read_ctx. */
};

struct aegis_heartbeat_resp {
    uint64_t read_ctx;
};

struct aegis_timeout_now {
    aegis_node_id target; /* The node the leader hands over to. Sent to the target (start
                             an election now) and to every other voter (a transfer vote
                             from the target for the next term may bypass stickiness). */
};

struct aegis_read_index_req {
    uint64_t ctx;         /* Chosen by the follower; echoed back. */
};

struct aegis_read_index_resp {
    uint64_t ctx;
    aegis_index index;    /* Valid when ok. */
    bool ok;              /* False: the receiver is not (or no longer) the leader. */
};

struct aegis_client_req {
    uint64_t request_id;
    struct aegis_buf *command; /* Encoded command (engine/kv.h). */
};

struct aegis_client_resp {
    uint64_t request_id;
    int32_t status;       /* 0 or a negative AEGIS_E* code. */
    aegis_node_id leader_hint;
    aegis_index index;    /* Log index the command was applied at. */
    uint64_t version;
    int64_t integer;      /* INCR: new value; DEL/MSET: count; CAS: 1 swapped, 0 not. */
    struct aegis_buf *value; /* May be NULL. */
};

struct aegis_msg {
    uint8_t type; /* enum aegis_msg_type. */
    aegis_node_id from;
    aegis_node_id to;
    aegis_term term;
    union {
        struct aegis_vote_req vote_req;
        struct aegis_vote_resp vote_resp;
        struct aegis_append_req append_req;
        struct aegis_append_resp append_resp;
        struct aegis_snapshot_req snapshot_req;
        struct aegis_snapshot_resp snapshot_resp;
        struct aegis_heartbeat heartbeat;
        struct aegis_heartbeat_resp heartbeat_resp;
        struct aegis_timeout_now timeout_now;
        struct aegis_read_index_req read_index_req;
        struct aegis_read_index_resp read_index_resp;
        struct aegis_client_req client_req;
        struct aegis_client_resp client_resp;
    };
};

/* Ceilings for values that come from the wire. Every term and every log index a peer
 * message carries must be below these (exclusive bounds), and the core never raises its
 * own term to AEGIS_TERM_MAX or beyond. Why 2^62: a term is only ever incremented by one
 * per election and an index by one per entry, so no real history comes near it (an
 * election every millisecond takes 146 million years to reach 2^62); the headroom makes
 * every sum the core and the runtime compute from these values (term + 1, prev_index +
 * entries_count, index + AEGIS_METRICS_STAMPS, ...) free of overflow, and it leaves the
 * core a next term to campaign in. A term of 2^64-1, once stored, would forbid every
 * later election. */
#define AEGIS_TERM_MAX ((aegis_term)1 << 62)
#define AEGIS_INDEX_MAX ((aegis_index)1 << 62)
/* Ceiling on a snapshot's size on the wire (total_bytes, offsets): 2^50 bytes (1 PiB).
 * Snapshots stream from disk in chunks, so nothing holds them whole; the bound keeps
 * every offset + length sum free of overflow. */
#define AEGIS_SNAPSHOT_BYTES_MAX ((uint64_t)1 << 50)

/* Check a message received from a peer before anything acts on it: the fields that do
 * not depend on the receiver's state (type, sender, ceilings on every term and index,
 * a term that is at least any term the message names, the shape of appended entries,
 * a snapshot chunk within its total and its metadata, a TimeoutNow's target). Pure and
 * bounded by the message's own arrays. Returns 0, or AEGIS_ECORRUPT for a message no
 * correct peer sends. The core's step runs it again (the engine facade relies on that);
 * state-dependent checks (leader of the term, offer in progress) live in the core. */
int aegis__msg_validate(const struct aegis_msg *m);

/* Drop the references a decoded (or deep-copied) message holds and free its entries
 * array with @a. Leaves @m zeroed. */
void aegis__msg_release(struct aegis_msg *m, const struct aegis_allocator *a);

/* Make @dst an owning copy of @src: a new entries array from @a and one new reference per
 * buffer (payload bytes are shared, not copied). Returns 0 or AEGIS_ENOMEM. */
int aegis__msg_clone(struct aegis_msg *dst, const struct aegis_msg *src,
                     const struct aegis_allocator *a);

#endif /* AEGIS_MSG_H */
