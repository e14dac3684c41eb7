/* The RESP2 client port of aegisd: Redis' protocol over the node's io_uring loop, so
 * redis-cli, redis-benchmark and Redis client libraries work unchanged.
 *
 * Every command of a connection gets a sequence number and a reply slot; replies fill
 * their slots as their outcomes arrive (writes after apply, reads after ReadIndex, local
 * commands at once) and leave in order. A connection with too many replies outstanding
 * stops being read (TCP pushes back on the client), as does every connection while the
 * node refuses new work (AEGIS_EFULL). Each connection's commands take effect in the
 * order sent: it has reads or writes in flight, never both (pipeline/conn_order.h); a
 * command that must wait is kept as a copy and the connection is not read meanwhile.
 * All of it runs on the net thread, except the
 * completions, which run on the apply thread and post their reply bytes back. */
#ifndef AEGIS_PIPELINE_SERVER_H
#define AEGIS_PIPELINE_SERVER_H

#include "pipeline/node_int.h"

struct aegis_server_config {
    const char *host;           /* Client port address. */
    uint16_t port;
    const char *password;       /* requirepass: NULL or "" for none. Copied. */
    uint32_t clients_max;       /* Connections at once. */
    uint64_t value_bytes_max;   /* Largest bulk accepted (values, keys). */
    uint32_t pipeline_max;      /* Replies outstanding per connection before pausing. */
};

struct aegis_server;

/* Attach a server to @n (before aegis_node_start). Returns 0 or AEGIS_ENOMEM. */
int aegis__server_create(struct aegis_server **out, struct aegis_node *n,
                         const struct aegis_server_config *c);

/* Free the server; the node must be stopped first. */
void aegis__server_destroy(struct aegis_server *s);

#endif /* AEGIS_PIPELINE_SERVER_H */
