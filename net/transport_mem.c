/* SPDX-License-Identifier: MIT */
/* InMemoryTransport: endpoints on a shared in-process network; see transport.h.
 *
 * Design. The network keeps a small table of nodes (id, endpoint, isolated flag) and a
 * list of broken one-way links. Each endpoint owns a ring of up to queue_max messages
 * addressed to it, allocated when the endpoint is created. send deep-copies the message
 * with aegis__msg_clone (a new entries array, one more reference per payload buffer, no
 * payload bytes copied) into the destination's ring, so the sender may release its
 * message as soon as send returns and the receiver gets a message it owns. Delivery is
 * FIFO per destination, which is what a TCP connection gives; tests that want loss or
 * partitions break links.
 *
 * Everything is single-threaded (see transport.h); no locks. */
#include "net/transport.h"

#include <string.h>

#include <aegis/error.h>

#include "engine/assert.h"

struct mem_transport;

struct mem_node {
    aegis_node_id id;
    struct mem_transport *ep; /* NULL when the node has no endpoint (yet, or any more). */
    bool isolated;
};

struct mem_link {
    aegis_node_id from;
    aegis_node_id to;
};

struct aegis_mem_network {
    const struct aegis_allocator *alloc;
    uint32_t queue_max;
    uint32_t nodes_count;
    uint32_t nodes_cap;
    struct mem_node *nodes;
    uint32_t broken_count;
    uint32_t broken_cap;
    struct mem_link *broken;
    uint64_t sent;
    uint64_t dropped;
};

struct mem_transport {
    struct aegis_transport base; /* First: the vtable functions cast back to this. */
    struct aegis_mem_network *net;
    uint32_t head;               /* Oldest queued message. */
    uint32_t count;
    struct aegis_msg *queue;     /* Ring of net->queue_max messages. */
};

int aegis__mem_network_create(struct aegis_mem_network **out, uint32_t queue_max,
                              const struct aegis_allocator *a)
{
    struct aegis_mem_network *net;

    AEGIS_ASSERT(out != NULL && queue_max > 0);
    net = aegis__calloc(a, 1, sizeof(*net));
    if (net == NULL) {
        return AEGIS_ENOMEM;
    }
    net->alloc = a;
    net->queue_max = queue_max;
    *out = net;
    return 0;
}

void aegis__mem_network_destroy(struct aegis_mem_network *net)
{
    if (net == NULL) {
        return;
    }
    for (uint32_t i = 0; i < net->nodes_count; i++) {
        /* Destroying the network under a live endpoint would leave it dangling. */
        AEGIS_ASSERT(net->nodes[i].ep == NULL);
    }
    aegis__free(net->alloc, net->nodes);
    aegis__free(net->alloc, net->broken);
    aegis__free(net->alloc, net);
}

static struct mem_node *find_node(struct aegis_mem_network *net, aegis_node_id id)
{
    for (uint32_t i = 0; i < net->nodes_count; i++) {
        if (net->nodes[i].id == id) {
            return &net->nodes[i];
        }
    }
    return NULL;
}

/* Grow the array at *@arr (of *@cap elements of @size bytes) to hold one more than @count.
 * Returns 0 or AEGIS_ENOMEM (array unchanged). */
static int grow(const struct aegis_allocator *a, void **arr, uint32_t *cap, uint32_t count,
                size_t size)
{
    uint32_t new_cap;
    void *p;

    if (count < *cap) {
        return 0;
    }
    new_cap = *cap == 0 ? 4 : *cap * 2;
    p = aegis__realloc(a, *arr, (size_t)new_cap * size);
    if (p == NULL) {
        return AEGIS_ENOMEM;
    }
    *arr = p;
    *cap = new_cap;
    return 0;
}

static struct mem_node *get_node(struct aegis_mem_network *net, aegis_node_id id)
{
    struct mem_node *n = find_node(net, id);
    void *arr = net->nodes;

    if (n != NULL) {
        return n;
    }
    if (grow(net->alloc, &arr, &net->nodes_cap, net->nodes_count, sizeof(*n)) != 0) {
        return NULL;
    }
    net->nodes = arr;
    n = &net->nodes[net->nodes_count++];
    memset(n, 0, sizeof(*n));
    n->id = id;
    return n;
}

static bool link_up(struct aegis_mem_network *net, aegis_node_id from, aegis_node_id to)
{
    struct mem_node *a = find_node(net, from);
    struct mem_node *b = find_node(net, to);

    if ((a != NULL && a->isolated) || (b != NULL && b->isolated)) {
        return false;
    }
    for (uint32_t i = 0; i < net->broken_count; i++) {
        if (net->broken[i].from == from && net->broken[i].to == to) {
            return false;
        }
    }
    return true;
}

int aegis__mem_network_set_link(struct aegis_mem_network *net, aegis_node_id from,
                                aegis_node_id to, bool up)
{
    void *arr = net->broken;

    AEGIS_ASSERT(net != NULL);
    for (uint32_t i = 0; i < net->broken_count; i++) {
        if (net->broken[i].from == from && net->broken[i].to == to) {
            if (up) {
                net->broken[i] = net->broken[--net->broken_count];
            }
            return 0;
        }
    }
    if (up) {
        return 0;
    }
    if (grow(net->alloc, &arr, &net->broken_cap, net->broken_count, sizeof(struct mem_link))
        != 0) {
        return AEGIS_ENOMEM;
    }
    net->broken = arr;
    net->broken[net->broken_count++] = (struct mem_link){.from = from, .to = to};
    return 0;
}

int aegis__mem_network_isolate(struct aegis_mem_network *net, aegis_node_id id, bool isolated)
{
    struct mem_node *n;

    AEGIS_ASSERT(net != NULL);
    n = get_node(net, id);
    if (n == NULL) {
        return AEGIS_ENOMEM;
    }
    n->isolated = isolated;
    return 0;
}

uint64_t aegis__mem_network_sent(const struct aegis_mem_network *net)
{
    return net->sent;
}

uint64_t aegis__mem_network_dropped(const struct aegis_mem_network *net)
{
    return net->dropped;
}

/* Queue a copy of @m, from @t, for node @to. */
static int deliver(struct mem_transport *t, const struct aegis_msg *m, aegis_node_id to)
{
    struct aegis_mem_network *net = t->net;
    struct mem_node *dst = find_node(net, to);
    struct mem_transport *ep;
    struct aegis_msg *slot;
    int rv;

    if (dst == NULL || dst->ep == NULL) {
        return AEGIS_EUNKNOWNNODE;
    }
    if (!link_up(net, t->base.id, to)) {
        net->dropped++;
        return 0;
    }
    ep = dst->ep;
    if (ep->count == net->queue_max) {
        return AEGIS_EFULL;
    }
    slot = &ep->queue[(ep->head + ep->count) % net->queue_max];
    rv = aegis__msg_clone(slot, m, net->alloc);
    if (rv != 0) {
        memset(slot, 0, sizeof(*slot));
        return rv;
    }
    slot->from = t->base.id;
    slot->to = to;
    ep->count++;
    net->sent++;
    return 0;
}

static int mem_send(struct aegis_transport *base, const struct aegis_msg *m)
{
    AEGIS_ASSERT(base != NULL && m != NULL);
    return deliver((struct mem_transport *)base, m, m->to);
}

static int mem_broadcast(struct aegis_transport *base, const struct aegis_msg *m)
{
    struct mem_transport *t = (struct mem_transport *)base;
    int first = 0;

    AEGIS_ASSERT(base != NULL && m != NULL);
    for (uint32_t i = 0; i < t->net->nodes_count; i++) {
        struct mem_node *n = &t->net->nodes[i];
        int rv;

        if (n->ep == NULL || n->id == base->id) {
            continue;
        }
        rv = deliver(t, m, n->id);
        if (rv != 0 && first == 0) {
            first = rv;
        }
    }
    return first;
}

static int mem_receive(struct aegis_transport *base, struct aegis_msg *out)
{
    struct mem_transport *t = (struct mem_transport *)base;
    struct aegis_msg *slot;

    AEGIS_ASSERT(base != NULL && out != NULL);
    if (t->count == 0) {
        return AEGIS_EAGAIN;
    }
    slot = &t->queue[t->head];
    *out = *slot; /* Ownership moves to the caller. */
    memset(slot, 0, sizeof(*slot));
    t->head = (t->head + 1) % t->net->queue_max;
    t->count--;
    return 0;
}

static uint32_t mem_pending(const struct aegis_transport *base)
{
    return ((const struct mem_transport *)base)->count;
}

static void mem_destroy(struct aegis_transport *base)
{
    struct mem_transport *t = (struct mem_transport *)base;
    struct aegis_mem_network *net = t->net;
    struct mem_node *n = find_node(net, base->id);
    struct aegis_msg m;

    while (mem_receive(base, &m) == 0) {
        aegis__msg_release(&m, net->alloc);
    }
    AEGIS_ASSERT(n != NULL && n->ep == t);
    n->ep = NULL;
    aegis__free(net->alloc, t->queue);
    aegis__free(net->alloc, t);
}

static const struct aegis_transport_ops mem_ops = {
    .send = mem_send,
    .broadcast = mem_broadcast,
    .receive = mem_receive,
    .pending = mem_pending,
    .destroy = mem_destroy,
};

int aegis__mem_transport_create(struct aegis_transport **out, struct aegis_mem_network *net,
                                aegis_node_id id)
{
    struct mem_transport *t;
    struct mem_node *n;

    AEGIS_ASSERT(out != NULL && net != NULL);
    if (id == AEGIS_NODE_NONE) {
        return AEGIS_EINVAL;
    }
    n = find_node(net, id);
    if (n != NULL && n->ep != NULL) {
        return AEGIS_EEXIST;
    }
    t = aegis__calloc(net->alloc, 1, sizeof(*t));
    if (t == NULL) {
        return AEGIS_ENOMEM;
    }
    t->queue = aegis__calloc(net->alloc, net->queue_max, sizeof(struct aegis_msg));
    if (t->queue == NULL) {
        goto err_after_alloc;
    }
    n = get_node(net, id);
    if (n == NULL) {
        goto err_after_queue;
    }
    t->base.ops = &mem_ops;
    t->base.id = id;
    t->base.alloc = net->alloc;
    t->net = net;
    n->ep = t;
    *out = &t->base;
    return 0;

err_after_queue:
    aegis__free(net->alloc, t->queue);
err_after_alloc:
    aegis__free(net->alloc, t);
    return AEGIS_ENOMEM;
}
