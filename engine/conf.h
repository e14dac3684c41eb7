/* SPDX-License-Identifier: MIT */
/* Cluster membership: queries on struct aegis_conf (engine/entry.h), the one-server-at-a-
 * time changes, and the payload of a ConfigChange log entry.
 *
 * A ConfigChange entry carries the change (operation and node) and the whole resulting
 * configuration, so that a node applies it by replacing its configuration and a reader of
 * the log never needs the previous entries to know the membership. The payload format,
 * all integers little-endian:
 *
 *   offset  size  field
 *   0       1     version, 1
 *   1       1     op: 1 add learner, 2 promote learner to voter, 3 remove
 *   2       8     node id the op applies to (non-zero)
 *   10      4     member count n (0 .. AEGIS_MEMBERS_MAX)
 *   14      9*n   members: 8-byte node id (non-zero, no duplicates), 1-byte role
 *                 (1 voter, 2 learner)
 *
 * Total 14 + 9n bytes exactly; the decoder treats the bytes as hostile and answers
 * AEGIS_ECORRUPT for anything else (wrong length, version, op, role, zero or duplicate
 * id, too many members). */
#ifndef AEGIS_CONF_H
#define AEGIS_CONF_H

#include "engine/entry.h"

#define AEGIS_CONF_VERSION 1
#define AEGIS_CONF_HEADER_BYTES 14u
#define AEGIS_CONF_MEMBER_BYTES 9u
#define AEGIS_CONF_ENCODED_MAX                                                             \
    (AEGIS_CONF_HEADER_BYTES + AEGIS_CONF_MEMBER_BYTES * AEGIS_MEMBERS_MAX)

enum aegis_conf_op {
    AEGIS_CONF_ADD_LEARNER = 1,
    AEGIS_CONF_PROMOTE = 2,
    AEGIS_CONF_REMOVE = 3,
};

/* The decoded payload of a ConfigChange entry. */
struct aegis_conf_change {
    uint8_t op; /* enum aegis_conf_op. */
    aegis_node_id id;
    struct aegis_conf conf; /* The configuration after the change. */
};

/* The member @id of @c, or NULL. */
const struct aegis_member *aegis__conf_find(const struct aegis_conf *c, aegis_node_id id);
bool aegis__conf_is_voter(const struct aegis_conf *c, aegis_node_id id);
uint32_t aegis__conf_voter_count(const struct aegis_conf *c);

/* Votes needed for a majority of the voters: voters / 2 + 1 (1 for an empty set). */
uint32_t aegis__conf_quorum(const struct aegis_conf *c);

/* Whether two configurations hold the same members with the same roles (order aside). */
bool aegis__conf_equal(const struct aegis_conf *a, const struct aegis_conf *b);

/* Whether @c is well formed: count in range, non-zero unique ids, known roles. */
bool aegis__conf_valid(const struct aegis_conf *c);

/* Compute in @out the configuration @op on @id makes of @c. Returns 0, AEGIS_EEXIST (add
 * of a member), AEGIS_EUNKNOWNNODE (promote or remove of a non-member), AEGIS_EINVAL
 * (promote of a voter, unknown op, id 0), AEGIS_EFULL (AEGIS_MEMBERS_MAX members) or
 * AEGIS_ECONFIG (removing the last voter). @out is untouched on error. */
int aegis__conf_change(const struct aegis_conf *c, uint8_t op, aegis_node_id id,
                       struct aegis_conf *out);

/* Bytes aegis__conf_encode writes for @cc. */
size_t aegis__conf_encoded_size(const struct aegis_conf_change *cc);

/* Write @cc into @buf, which holds aegis__conf_encoded_size(cc) bytes; returns that size.
 * @cc must be valid (asserted: it is built by the core, never by input). */
size_t aegis__conf_encode(const struct aegis_conf_change *cc, uint8_t *buf);

/* Build a new buffer (one reference, the caller's) holding @cc encoded, or NULL on
 * exhaustion. */
struct aegis_buf *aegis__conf_encode_buf(const struct aegis_conf_change *cc,
                                         const struct aegis_allocator *a);

/* Parse @len bytes at @data into @out. Returns 0 or AEGIS_ECORRUPT; never reads past
 * @len, never asserts on the bytes. */
int aegis__conf_decode(const uint8_t *data, size_t len, struct aegis_conf_change *out);

#endif /* AEGIS_CONF_H */
