/* SPDX-License-Identifier: MIT */
/* Log entries and cluster membership: the values the log, the codec, the storage and the
 * core all pass around.
 *
 * An entry's payload is a reference-counted immutable buffer (engine/buf.h). A struct
 * aegis_entry is a small value type: copying it does not take a reference; whoever keeps
 * a copy beyond the call that handed it over takes its own with aegis__entry_ref(). */
#ifndef AEGIS_ENTRY_H
#define AEGIS_ENTRY_H

#include "engine/buf.h"

/* EntryType of the seed. Values are part of the wire and disk formats. */
enum aegis_entry_type {
    AEGIS_ENTRY_COMMAND = 1,       /* A state machine command (engine/kv.h encoding). */
    AEGIS_ENTRY_CONFIG_CHANGE = 2, /* A membership change (aegis__conf_encode). */
    AEGIS_ENTRY_NOOP = 3,          /* Appended by each new leader at the start of its term. */
};

struct aegis_entry {
    aegis_index index;
    aegis_term term;
    uint8_t type;           /* enum aegis_entry_type. */
    uint64_t timestamp;     /* Set by the proposer; opaque to the core (0 in simulation). */
    struct aegis_buf *buf;  /* Payload; NULL means empty. */
};

static inline uint32_t aegis__entry_len(const struct aegis_entry *e)
{
    return e->buf != NULL ? e->buf->len : 0;
}

static inline const uint8_t *aegis__entry_data(const struct aegis_entry *e)
{
    return e->buf != NULL ? e->buf->data : NULL;
}

static inline void aegis__entry_ref(struct aegis_entry *e)
{
    if (e->buf != NULL) {
        aegis__buf_ref(e->buf);
    }
}

static inline void aegis__entry_unref(struct aegis_entry *e)
{
    aegis__buf_unref(e->buf);
    e->buf = NULL;
}

/* Membership. A configuration is a small fixed-size set: no allocation, copied by value.
 * It lives in ConfigChange entries and in snapshot metadata. */
#define AEGIS_MEMBERS_MAX AEGIS_PEERS_MAX /* <aegis/types.h> */

enum aegis_member_role {
    AEGIS_MEMBER_VOTER = 1,
    AEGIS_MEMBER_LEARNER = 2,
};

struct aegis_member {
    aegis_node_id id;
    uint8_t role; /* enum aegis_member_role. */
};

struct aegis_conf {
    uint32_t count;
    struct aegis_member members[AEGIS_MEMBERS_MAX];
};

/* Snapshot metadata: the last entry the snapshot covers and the membership at that
 * point. */
struct aegis_snapshot_meta {
    aegis_index index;
    aegis_term term;
    struct aegis_conf conf;
};

#endif /* AEGIS_ENTRY_H */
