/* SPDX-License-Identifier: MIT */
/* Node identity, status, role, metadata and health: the seed's node.rs.
 *
 * Design. Everything here is a plain value type of fixed size: a struct aegis_node_info
 * holds its strings in bounded arrays (no allocation, copied with `=`), so the cluster
 * table can keep nodes in a fixed array and hand out copies freely. The bounds are
 * AEGIS_NODE_ADDRESS_MAX and friends below; a setter given a longer string returns
 * AEGIS_ETOOBIG and changes nothing. Strings are always NUL-terminated.
 *
 * The seed's string node ids ("node1") become numbers (aegis_node_id, 0 = none).
 *
 * Status follows a small lifecycle (see aegis__node_status_can_transition):
 *
 *     Starting --> Healthy <--> Suspect --> Down --> Healthy (a heartbeat brings it back)
 *     Starting --> Suspect, Down     Healthy --> Down (a long gap between checks)
 *     Starting, Healthy, Suspect, Down --> Leaving --> Left (final)
 *
 * Staying in the same status is always allowed (a no-op).
 *
 * The module is pure: time is passed in by the caller (milliseconds, or any unit the
 * caller uses consistently) and nothing reads a clock. */
#ifndef AEGIS_NODE_H
#define AEGIS_NODE_H

#include <aegis/types.h>

#define AEGIS_NODE_ADDRESS_MAX  128 /* Bytes including the NUL: host name or IP. */
#define AEGIS_NODE_LOCATION_MAX 32  /* Datacenter, rack, zone; including the NUL. */
#define AEGIS_NODE_TAG_KEY_MAX  32
#define AEGIS_NODE_TAG_VALUE_MAX 64
#define AEGIS_NODE_TAGS_MAX     8
#define AEGIS_NODE_ERROR_MAX    96  /* Health error text, truncated to fit. */

/* NodeStatus of the seed. Values are stable (status output). */
enum aegis_node_status {
    AEGIS_NODE_STARTING = 1, /* Added, not yet heard from. */
    AEGIS_NODE_HEALTHY = 2,  /* Heartbeats arrive on time. */
    AEGIS_NODE_SUSPECT = 3,  /* Heartbeats late: may be down. */
    AEGIS_NODE_DOWN = 4,     /* No heartbeat for the failure timeout. */
    AEGIS_NODE_LEAVING = 5,  /* Being removed from the cluster. */
    AEGIS_NODE_LEFT = 6,     /* Removed; final. */
};

/* NodeRole of the seed (a node's part in Raft, as the cluster last saw it) is the public
 * enum aegis_node_role of <aegis/types.h>. */

struct aegis_node_tag {
    char key[AEGIS_NODE_TAG_KEY_MAX];     /* Empty key: unused slot. */
    char value[AEGIS_NODE_TAG_VALUE_MAX];
};

/* NodeMetadata of the seed: where a node runs and what it can hold. */
struct aegis_node_metadata {
    char datacenter[AEGIS_NODE_LOCATION_MAX];
    char rack[AEGIS_NODE_LOCATION_MAX];
    char zone[AEGIS_NODE_LOCATION_MAX];
    uint32_t tags_count;
    struct aegis_node_tag tags[AEGIS_NODE_TAGS_MAX]; /* First tags_count are in use. */
    uint64_t capacity; /* Relative weight or bytes; opaque to the engine. 0 = unknown. */
};

/* NodeInfo of the seed. */
struct aegis_node_info {
    aegis_node_id id;
    char address[AEGIS_NODE_ADDRESS_MAX];
    uint16_t port;
    uint8_t status; /* enum aegis_node_status. */
    uint8_t role;   /* enum aegis_node_role. */
    struct aegis_node_metadata metadata;
};

/* NodeHealth of the seed: the result of the latest health check of one node. */
struct aegis_node_health {
    bool healthy;
    bool heard;                  /* False until the first heartbeat. */
    uint64_t last_heartbeat_ms;  /* Time of the last heartbeat (or of joining). */
    uint64_t rtt_us;             /* Round-trip latency of the last check; 0 = unknown. */
    uint64_t lag_entries;        /* How far the node's log is behind the leader's. */
    char error[AEGIS_NODE_ERROR_MAX]; /* Empty when healthy. */
};

/* NodeInfo::new: @n becomes node @id at @address:@port, status Starting, role Follower,
 * empty metadata. @address is copied. Returns 0, AEGIS_EINVAL (@id is AEGIS_NODE_NONE or
 * @address NULL) or AEGIS_ETOOBIG (@address does not fit). */
int aegis__node_info_init(struct aegis_node_info *n, aegis_node_id id, const char *address,
                          uint16_t port);

/* True when a node may move from @from to @to (the lifecycle above). Values out of range
 * are never allowed. */
bool aegis__node_status_can_transition(enum aegis_node_status from, enum aegis_node_status to);

/* Move @n to @to. Returns 0 or AEGIS_EINVAL (transition not allowed; @n unchanged). */
int aegis__node_set_status(struct aegis_node_info *n, enum aegis_node_status to);

/* True for statuses in which a node takes part in the cluster (Healthy, Suspect). */
bool aegis__node_status_is_live(enum aegis_node_status s);

/* Static names ("healthy", "leader"); "unknown" for values out of range. */
const char *aegis__node_status_name(enum aegis_node_status s);
const char *aegis__node_role_name(enum aegis_node_role r);

/* Set the location strings (NULL leaves a field as it is). All are copied. Returns 0 or
 * AEGIS_ETOOBIG, in which case nothing changed. */
int aegis__node_metadata_set_location(struct aegis_node_metadata *md, const char *datacenter,
                                      const char *rack, const char *zone);

/* Set tag @key to @value (both copied), replacing an existing value. Returns 0,
 * AEGIS_EINVAL (empty key), AEGIS_ETOOBIG (a string does not fit) or AEGIS_EFULL
 * (AEGIS_NODE_TAGS_MAX tags already). */
int aegis__node_metadata_set_tag(struct aegis_node_metadata *md, const char *key,
                                 const char *value);

/* The value of tag @key (borrowed from @md), or NULL. */
const char *aegis__node_metadata_tag(const struct aegis_node_metadata *md, const char *key);

/* Remove tag @key; returns 0 or AEGIS_ENOTFOUND. */
int aegis__node_metadata_remove_tag(struct aegis_node_metadata *md, const char *key);

/* Health: start the clock of a node that has not been heard from yet at @now_ms. */
void aegis__node_health_init(struct aegis_node_health *h, uint64_t now_ms);

/* A heartbeat (or successful check) arrived at @now_ms: healthy, error cleared. */
void aegis__node_health_heard(struct aegis_node_health *h, uint64_t now_ms);

/* A check failed: unhealthy, @error copied (truncated to fit; NULL = empty). The last
 * heartbeat time is kept. */
void aegis__node_health_failed(struct aegis_node_health *h, const char *error);

/* Time since the last heartbeat at @now_ms (0 if @now_ms is earlier). */
uint64_t aegis__node_health_silence_ms(const struct aegis_node_health *h, uint64_t now_ms);

/* Copy the NUL-terminated @src into @dst of @cap bytes. Returns 0, or AEGIS_ETOOBIG and
 * leaves @dst unchanged when it does not fit. Shared by cluster.c. */
int aegis__node_strlcpy(char *dst, size_t cap, const char *src);

#endif /* AEGIS_NODE_H */
