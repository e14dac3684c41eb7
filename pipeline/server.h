/* SPDX-License-Identifier: MIT */
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
 * completions, which run on the apply thread and post their reply bytes back.
 *
 * Access (pipeline/users.h). With users configured a connection starts unauthenticated
 * and may only AUTH, HELLO or QUIT; AUTH gives it its user's role, and one check at the
 * top of dispatch compares the role each command needs with it. A failed AUTH's reply is
 * held back (the connection is not read meanwhile) for AUTH_DELAY_MS doubled with every
 * failure of that connection, and the connection is closed after AUTH_FAILS_MAX failures.
 *
 * Deadlines, checked on every loop tick (100 ms): a connection with nothing received
 * and nothing written for idle_ms is closed; so is one whose partly received command is
 * not complete request_ms after its first byte, and (with users) one that has not
 * authenticated request_ms after it opened. The last admin_reserve connections of
 * clients_max are reserved: with users, a connection that opens there must AUTH as an
 * admin (another user's AUTH is answered with an error and the connection closed);
 * without users, its idle timeout is request_ms instead of idle_ms. */

#ifndef AEGIS_PIPELINE_SERVER_H
#define AEGIS_PIPELINE_SERVER_H

#include "pipeline/node_int.h"
#include "pipeline/users.h"

struct aegis_server_config {
    const char *host;           /* Client port address. */
    uint16_t port;
    struct aegis_users users;   /* Moved into the server by create (the caller's copy must
                                 * not be freed then). No users: an open port. */
    uint32_t clients_max;       /* Connections at once. */
    uint64_t value_bytes_max;   /* Largest bulk accepted (values, keys). */
    uint32_t pipeline_max;      /* Replies outstanding per connection before pausing. */
    uint32_t idle_ms;           /* Idle timeout; 0: none. */
    uint32_t request_ms;        /* Request (and authentication) deadline; 0: none. */
    uint32_t admin_reserve;     /* Connections of clients_max kept for admins (at most
                                 * clients_max / 4 are: the rest is ignored). */
};

/* A failed AUTH's reply waits AUTH_DELAY_MS << min(failures - 1, 6) ms; the connection is
 * closed with the AUTH_FAILS_MAX-th failure's reply. */
#define AEGIS_AUTH_DELAY_MS 100u
#define AEGIS_AUTH_FAILS_MAX 10u

struct aegis_server;

/* Attach a server to @n (before aegis_node_start). Returns 0 or AEGIS_ENOMEM. */
int aegis__server_create(struct aegis_server **out, struct aegis_node *n,
                         const struct aegis_server_config *c);

/* Free the server; the node must be stopped first. */
void aegis__server_destroy(struct aegis_server *s);

#endif /* AEGIS_PIPELINE_SERVER_H */
