/* SPDX-License-Identifier: MIT */
/* The runtime's envelope around Command entry payloads and snapshot data.
 *
 * Every Command entry the runtime proposes starts with one tag byte:
 *   'C'  a state machine command follows (built-in KV encoding, or the embedder's bytes);
 *   'M'  runtime metadata follows: a member address record, applied by every node so
 *        that all of them learn a new member's address from the log (and from snapshots)
 *        rather than from configuration. Format, little-endian:
 *          0  8  node id
 *          8  2  port
 *          10 1  host length h (1..AEGIS_HOST_MAX-1)
 *          11 h  host bytes (no NUL)
 *   'A'  an admin request a follower forwards to the leader inside a CLIENT_REQ (never
 *        proposed, never in the log; the leader runs it as if asked locally and answers
 *        with the CLIENT_RESP of its outcome). Format, little-endian:
 *          0  1  op: 1 add a member, 2 remove a member, 3 transfer leadership
 *          1  8  target node id (non-zero)
 *          9  .. add only: the member's address record as above (its id = the target)
 *        A leader older than this tag proposes the request as a command, which every
 *        node applies as a no-op and answers AEGIS_ECORRUPT: an error, nothing changes.
 * The tag costs no copy: proposals are copied into a fresh buffer once anyway, and the
 * apply thread reads past it.
 *
 * Snapshot data, as written to snapshot files and sent to followers:
 *   0  4  magic "ASNP" (0x504e5341 little-endian)
 *   4  4  address record count n (0..AEGIS_PEERS_MAX)
 *   8  .. n address records as above, each prefixed by its 2-byte length
 *   .. .. the state machine's own snapshot bytes (to the end).
 * The first part (magic, count, records) is the member address section, at most
 * AEGIS_ENV_SNAP_PREFIX_MAX bytes; snapshot files store this stream in chunks
 * (snapshot_file.c), and the apply thread produces and consumes it as a stream: the
 * section, then the state machine's bytes as they come (aegis__env_snap_prefix_*). */
#ifndef AEGIS_PIPELINE_ENVELOPE_H
#define AEGIS_PIPELINE_ENVELOPE_H

#include <aegis/aegis.h>

#include "engine/buf.h"

#define AEGIS_ENV_COMMAND ((uint8_t)'C')
#define AEGIS_ENV_META ((uint8_t)'M')
#define AEGIS_ENV_ADMIN ((uint8_t)'A')
#define AEGIS_ENV_SNAP_MAGIC 0x504e5341u
#define AEGIS_ENV_ADDR_BYTES_MAX (11u + AEGIS_HOST_MAX)
#define AEGIS_ENV_SNAP_PREFIX_MAX (8u + AEGIS_PEERS_MAX * (2u + AEGIS_ENV_ADDR_BYTES_MAX))

/* Wrap @len bytes at @cmd in a new buffer with the 'C' tag. NULL on exhaustion. */
struct aegis_buf *aegis__env_command(const struct aegis_allocator *a, const void *cmd,
                                     size_t len);

/* Encode an address record with the 'M' tag. NULL on exhaustion or a bad host. */
struct aegis_buf *aegis__env_meta_addr(const struct aegis_allocator *a,
                                       const struct aegis_peer_addr *addr);

/* Decode an address record (without its tag). 0 or AEGIS_ECORRUPT. */
int aegis__env_addr_decode(const uint8_t *p, size_t len, struct aegis_peer_addr *out);
size_t aegis__env_addr_encode(const struct aegis_peer_addr *addr, uint8_t *out);

enum aegis_env_admin_op {
    AEGIS_ENV_ADMIN_ADD = 1,
    AEGIS_ENV_ADMIN_REMOVE = 2,
    AEGIS_ENV_ADMIN_TRANSFER = 3,
};

/* Encode a forwarded admin request with the 'A' tag; @addr is used (and required) for
 * AEGIS_ENV_ADMIN_ADD only. NULL on exhaustion or bad arguments. */
struct aegis_buf *aegis__env_admin(const struct aegis_allocator *a, uint8_t op,
                                   aegis_node_id target, const struct aegis_peer_addr *addr);

/* Decode an admin request (without its tag): @addr is filled for an add. 0 or
 * AEGIS_ECORRUPT (unknown op, zero target, bad or missing address, trailing bytes). */
int aegis__env_admin_decode(const uint8_t *p, size_t len, uint8_t *op_out,
                            aegis_node_id *target_out, struct aegis_peer_addr *addr_out);

/* Build snapshot data from @addrs and the state machine's bytes (copied). */
struct aegis_buf *aegis__env_snapshot(const struct aegis_allocator *a,
                                      const struct aegis_peer_addr *addrs, uint32_t count,
                                      const void *sm, size_t sm_len);

/* Parse snapshot data: addresses into @addrs (capacity AEGIS_PEERS_MAX) and the state
 * machine's bytes as a view into @data. 0 or AEGIS_ECORRUPT. */
int aegis__env_snapshot_parse(const uint8_t *data, size_t len, struct aegis_peer_addr *addrs,
                              uint32_t *count_out, const uint8_t **sm_out, size_t *sm_len_out);

/* Encode the member address section of a snapshot stream into @out; returns its length
 * (at most AEGIS_ENV_SNAP_PREFIX_MAX). */
size_t aegis__env_snap_prefix_encode(const struct aegis_peer_addr *addrs, uint32_t count,
                                     uint8_t *out);

/* The address section read incrementally from the start of a snapshot stream. */
struct aegis_env_snap_prefix {
    uint8_t buf[AEGIS_ENV_SNAP_PREFIX_MAX];
    size_t have;                  /* Bytes of buf filled. */
    bool done;                    /* The section is complete: addrs and count are set. */
    uint32_t count;
    struct aegis_peer_addr addrs[AEGIS_PEERS_MAX];
};

/* Feed the next @len bytes of the stream (@p zeroed before the first call). Returns 0
 * with *@used_out the bytes of @data that belong to the section (the rest are the state
 * machine's; p->done says the section is complete), or AEGIS_ECORRUPT. Call with @len 0
 * at the end of the stream: AEGIS_ECORRUPT unless the section is complete. */
int aegis__env_snap_prefix_feed(struct aegis_env_snap_prefix *p, const uint8_t *data,
                                size_t len, size_t *used_out);

#endif /* AEGIS_PIPELINE_ENVELOPE_H */
