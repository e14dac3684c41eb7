/* SPDX-License-Identifier: MIT */
/* The Transport interface (the seed's transport.rs `Transport` trait) and the in-memory
 * transport (`InMemoryTransport`) used by tests, the engine demo and the simulation.
 *
 * Design. A transport is one node's endpoint: it sends struct aegis_msg values to peers
 * (m->to names the destination, m->from is filled in with the endpoint's id), broadcasts
 * to every peer it knows, and receives the messages addressed to it. Implementations
 * fill a table of operations (libuv/raft style vtable); callers use the inline wrappers
 * below. One transport is driven by one thread.
 *
 * Ownership. send and broadcast borrow the message: the transport takes its own
 * references on whatever it keeps (payload bytes are shared, never copied). receive hands
 * the caller an owning message that the caller frees with aegis__transport_release().
 *
 * Errors. send returns 0 once the message is queued for delivery. A message lost on a
 * broken link is not an error (networks lose messages; Raft retries). AEGIS_EUNKNOWNNODE:
 * no such peer; AEGIS_EFULL: the destination's queue is full (backpressure: the message
 * was not taken); AEGIS_ENOMEM. receive returns AEGIS_EAGAIN when nothing is queued.
 *
 * The TCP transport (net/transport_uring.c) fills the same table. */
#ifndef AEGIS_TRANSPORT_H
#define AEGIS_TRANSPORT_H

#include "engine/msg.h"

struct aegis_transport;

struct aegis_transport_ops {
    int (*send)(struct aegis_transport *t, const struct aegis_msg *m);
    /* Send a copy of @m to every known peer except this node, each with its own `to`.
     * Tries every peer; returns 0 or the first error met. */
    int (*broadcast)(struct aegis_transport *t, const struct aegis_msg *m);
    int (*receive)(struct aegis_transport *t, struct aegis_msg *out);
    /* Messages waiting to be received (poll without taking). */
    uint32_t (*pending)(const struct aegis_transport *t);
    void (*destroy)(struct aegis_transport *t);
};

struct aegis_transport {
    const struct aegis_transport_ops *ops;
    aegis_node_id id;                     /* This endpoint's node. */
    const struct aegis_allocator *alloc;  /* Allocates received messages. */
};

static inline int aegis__transport_send(struct aegis_transport *t, const struct aegis_msg *m)
{
    return t->ops->send(t, m);
}

static inline int aegis__transport_broadcast(struct aegis_transport *t,
                                             const struct aegis_msg *m)
{
    return t->ops->broadcast(t, m);
}

/* Take the oldest message addressed to this node into @out (an owning copy). Returns 0
 * or AEGIS_EAGAIN (nothing queued; @out untouched). */
static inline int aegis__transport_receive(struct aegis_transport *t, struct aegis_msg *out)
{
    return t->ops->receive(t, out);
}

static inline uint32_t aegis__transport_pending(const struct aegis_transport *t)
{
    return t->ops->pending(t);
}

/* Free a message obtained from aegis__transport_receive(). */
static inline void aegis__transport_release(struct aegis_transport *t, struct aegis_msg *m)
{
    aegis__msg_release(m, t->alloc);
}

static inline void aegis__transport_destroy(struct aegis_transport *t)
{
    if (t != NULL) {
        t->ops->destroy(t);
    }
}

/* InMemoryTransport. A struct aegis_mem_network is the shared medium: it holds one
 * bounded FIFO queue per endpoint (messages are delivered in the order they were sent)
 * and a table of links that tests can break. Each node gets an endpoint with
 * aegis__mem_transport_create(). Single-threaded: the network and all its endpoints
 * belong to one thread (tests and the demo step every node from one loop). */
struct aegis_mem_network;

/* Create a network whose queues hold up to @queue_max messages per destination (> 0).
 * Returns 0 or AEGIS_ENOMEM. */
int aegis__mem_network_create(struct aegis_mem_network **out, uint32_t queue_max,
                              const struct aegis_allocator *a);

/* Destroy the network, releasing every queued message. Every endpoint must have been
 * destroyed first. */
void aegis__mem_network_destroy(struct aegis_mem_network *net);

/* Create the endpoint of node @id on @net. Returns 0, AEGIS_EINVAL (id 0), AEGIS_EEXIST
 * (the id has an endpoint) or AEGIS_ENOMEM. Destroying the endpoint detaches it and drops
 * the messages still queued for it. */
int aegis__mem_transport_create(struct aegis_transport **out, struct aegis_mem_network *net,
                                aegis_node_id id);

/* Break (@up false) or repair the one-way link @from -> @to. Messages sent over a broken
 * link are dropped and counted. Links are up by default. Returns 0 or AEGIS_ENOMEM. */
int aegis__mem_network_set_link(struct aegis_mem_network *net, aegis_node_id from,
                                aegis_node_id to, bool up);

/* Break or repair every link to and from @id (isolate a node). */
int aegis__mem_network_isolate(struct aegis_mem_network *net, aegis_node_id id, bool isolated);

/* Counters: messages delivered into queues, and dropped on broken links. */
uint64_t aegis__mem_network_sent(const struct aegis_mem_network *net);
uint64_t aegis__mem_network_dropped(const struct aegis_mem_network *net);

#endif /* AEGIS_TRANSPORT_H */
