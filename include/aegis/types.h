/* SPDX-License-Identifier: MIT */
/* Scalar types shared by every layer of Aegis and by embedders.
 *
 * Terms, indexes and node ids are plain 64-bit integers with names that say what they
 * count. Index 0 and term 0 mean "none" (the log starts at index 1); node id 0 means "no
 * node" (no vote, no known leader). */
#ifndef AEGIS_TYPES_H
#define AEGIS_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t aegis_term;
typedef uint64_t aegis_index;
typedef uint64_t aegis_node_id;

#define AEGIS_NODE_NONE ((aegis_node_id)0)

/* Members of a cluster at most (voters and learners). The engine's limits
 * (AEGIS_MEMBERS_MAX, AEGIS_CLUSTER_NODES_MAX) are this one. */
#define AEGIS_PEERS_MAX 16

/* A node's part in Raft (aegis_node_status; the engine's cluster view). Values are
 * stable (status output). */
enum aegis_node_role {
    AEGIS_NODE_FOLLOWER = 1,
    AEGIS_NODE_CANDIDATE = 2,
    AEGIS_NODE_LEADER = 3,
    AEGIS_NODE_LEARNER = 4, /* Receives the log, never votes. */
};

/* Visibility: the library is built with -fvisibility=hidden and exports only what is
 * marked AEGIS_API. */
#if defined(AEGIS_BUILDING)
#define AEGIS_API __attribute__((visibility("default")))
#else
#define AEGIS_API
#endif

#endif /* AEGIS_TYPES_H */
