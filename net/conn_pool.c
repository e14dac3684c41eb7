/* SPDX-License-Identifier: MIT */
/* The connection pool: peer table, link states, reconnect schedule. See conn_pool.h for
 * the design (who dials, backoff with equal jitter, prompt redial). */
#include "net/conn_pool.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aegis/error.h>

#include "engine/assert.h"

int aegis__conn_pool_init(struct aegis_conn_pool *pool, aegis_node_id self_id,
                          uint32_t peers_max, uint32_t backoff_base_ms, uint32_t backoff_max_ms,
                          const struct aegis_allocator *alloc)
{
    AEGIS_ASSERT(pool != NULL);
    memset(pool, 0, sizeof(*pool));
    if (self_id == AEGIS_NODE_NONE || peers_max == 0 || peers_max > AEGIS_CONN_POOL_PEERS_MAX ||
        backoff_base_ms == 0 || backoff_max_ms < backoff_base_ms) {
        return AEGIS_EINVAL;
    }
    pool->peers = aegis__calloc(alloc, peers_max, sizeof(*pool->peers));
    if (pool->peers == NULL) {
        return AEGIS_ENOMEM;
    }
    pool->self_id = self_id;
    pool->peers_max = peers_max;
    pool->backoff_base_ms = backoff_base_ms;
    pool->backoff_max_ms = backoff_max_ms;
    pool->alloc = alloc;
    return 0;
}

void aegis__conn_pool_close(struct aegis_conn_pool *pool)
{
    AEGIS_ASSERT(pool != NULL);
    for (uint32_t i = 0; i < pool->peers_max && pool->peers != NULL; i++) {
        AEGIS_ASSERT(!pool->peers[i].in_use || pool->peers[i].conn == NULL);
    }
    aegis__free(pool->alloc, pool->peers);
    pool->peers = NULL;
    pool->peers_count = 0;
}

static int resolve(const char *host, uint16_t port, struct sockaddr_storage *addr,
                   socklen_t *addr_len)
{
    struct addrinfo hints, *res = NULL;
    char port_text[8];
    int rv;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(port_text, sizeof(port_text), "%u", (unsigned)port);
    rv = getaddrinfo(host, port_text, &hints, &res);
    if (rv != 0 || res == NULL) {
        return AEGIS_ENOENT;
    }
    AEGIS_ASSERT(res->ai_addrlen <= sizeof(*addr));
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *addr_len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int aegis__conn_pool_add(struct aegis_conn_pool *pool, aegis_node_id id, const char *host,
                         uint16_t port, struct aegis_peer **peer_out)
{
    struct aegis_peer *free_slot = NULL;
    size_t host_len;
    int rv;

    AEGIS_ASSERT(pool != NULL);
    AEGIS_ASSERT(pool->peers != NULL);
    if (id == AEGIS_NODE_NONE || id == pool->self_id || host == NULL || port == 0) {
        return AEGIS_EINVAL;
    }
    host_len = strlen(host);
    if (host_len == 0 || host_len > AEGIS_PEER_HOST_LEN_MAX) {
        return AEGIS_EINVAL;
    }
    for (uint32_t i = 0; i < pool->peers_max; i++) {
        struct aegis_peer *p = &pool->peers[i];
        if (p->in_use && p->id == id) {
            return AEGIS_EEXIST;
        }
        if (!p->in_use && free_slot == NULL) {
            free_slot = p;
        }
    }
    if (free_slot == NULL) {
        return AEGIS_EFULL;
    }
    memset(free_slot, 0, sizeof(*free_slot));
    rv = resolve(host, port, &free_slot->addr, &free_slot->addr_len);
    if (rv != 0) {
        return rv;
    }
    free_slot->in_use = true;
    free_slot->id = id;
    memcpy(free_slot->host, host, host_len + 1);
    free_slot->port = port;
    free_slot->dials = aegis__conn_pool_dials(pool, id);
    free_slot->state = AEGIS_PEER_IDLE;
    pool->peers_count++;
    AEGIS_ASSERT(pool->peers_count <= pool->peers_max);
    if (peer_out != NULL) {
        *peer_out = free_slot;
    }
    return 0;
}

int aegis__conn_pool_remove(struct aegis_conn_pool *pool, aegis_node_id id)
{
    struct aegis_peer *p = aegis__conn_pool_get(pool, id);

    if (p == NULL) {
        return AEGIS_EUNKNOWNNODE;
    }
    AEGIS_ASSERT(p->conn == NULL);
    AEGIS_ASSERT(pool->peers_count > 0);
    memset(p, 0, sizeof(*p));
    pool->peers_count--;
    return 0;
}

struct aegis_peer *aegis__conn_pool_get(struct aegis_conn_pool *pool, aegis_node_id id)
{
    AEGIS_ASSERT(pool != NULL);
    if (id == AEGIS_NODE_NONE) {
        return NULL;
    }
    for (uint32_t i = 0; i < pool->peers_max; i++) {
        if (pool->peers[i].in_use && pool->peers[i].id == id) {
            return &pool->peers[i];
        }
    }
    return NULL;
}

struct aegis_peer *aegis__conn_pool_slot(struct aegis_conn_pool *pool, uint32_t i)
{
    AEGIS_ASSERT(pool != NULL);
    AEGIS_ASSERT(i < pool->peers_max);
    return &pool->peers[i];
}

bool aegis__conn_pool_dials(const struct aegis_conn_pool *pool, aegis_node_id id)
{
    AEGIS_ASSERT(id != pool->self_id);
    return pool->self_id < id;
}

bool aegis__conn_pool_dial_due(const struct aegis_peer *peer, uint64_t now_ms)
{
    AEGIS_ASSERT(peer->in_use);
    if (!peer->dials) {
        return false;
    }
    if (peer->state == AEGIS_PEER_IDLE) {
        return true;
    }
    return peer->state == AEGIS_PEER_BACKOFF && now_ms >= peer->backoff_until_ms;
}

uint64_t aegis__conn_pool_backoff_cap_ms(const struct aegis_conn_pool *pool, uint32_t attempts)
{
    uint64_t cap = pool->backoff_base_ms;

    AEGIS_ASSERT(attempts >= 1);
    /* Doubling stops at the ceiling, so the shift never overflows. */
    for (uint32_t i = 1; i < attempts && cap < pool->backoff_max_ms; i++) {
        cap *= 2;
    }
    if (cap > pool->backoff_max_ms) {
        cap = pool->backoff_max_ms;
    }
    AEGIS_ASSERT(cap >= 1);
    return cap;
}

uint64_t aegis__conn_pool_on_failure(struct aegis_conn_pool *pool, struct aegis_peer *peer,
                                     uint64_t now_ms, struct aegis_rng *rng)
{
    uint64_t cap, delay;

    AEGIS_ASSERT(peer->in_use);
    AEGIS_ASSERT(peer->conn == NULL);
    if (peer->attempts < UINT32_MAX) {
        peer->attempts++;
    }
    if (!peer->dials) {
        peer->state = AEGIS_PEER_IDLE;
        return 0;
    }
    cap = aegis__conn_pool_backoff_cap_ms(pool, peer->attempts);
    delay = aegis__rng_range(rng, cap / 2, cap);
    peer->state = AEGIS_PEER_BACKOFF;
    peer->backoff_until_ms = now_ms + delay;
    AEGIS_ASSERT(delay <= pool->backoff_max_ms);
    return delay;
}

void aegis__conn_pool_on_connected(struct aegis_conn_pool *pool, struct aegis_peer *peer)
{
    (void)pool;
    AEGIS_ASSERT(peer->in_use);
    AEGIS_ASSERT(peer->conn != NULL);
    if (peer->stats.connects > 0) {
        peer->stats.reconnects++;
    }
    peer->stats.connects++;
    peer->attempts = 0;
    peer->state = AEGIS_PEER_CONNECTED;
}

uint64_t aegis__conn_pool_connect_stage_ms(uint32_t connect_timeout_ms)
{
    AEGIS_ASSERT(connect_timeout_ms > 0);
    return connect_timeout_ms < AEGIS_CONN_POOL_CONNECT_STAGE_MS_MAX
               ? connect_timeout_ms
               : AEGIS_CONN_POOL_CONNECT_STAGE_MS_MAX;
}

uint64_t aegis__conn_pool_unacked_ms(uint32_t connect_timeout_ms)
{
    AEGIS_ASSERT(connect_timeout_ms > 0);
    return connect_timeout_ms < AEGIS_CONN_POOL_UNACKED_MS_MAX ? connect_timeout_ms
                                                              : AEGIS_CONN_POOL_UNACKED_MS_MAX;
}

uint64_t aegis__conn_pool_redial_gap_max_ms(const struct aegis_conn_pool *pool,
                                            uint32_t connect_timeout_ms)
{
    uint64_t gap = aegis__conn_pool_connect_stage_ms(connect_timeout_ms) + pool->backoff_max_ms;

    AEGIS_ASSERT(pool->backoff_max_ms >= pool->backoff_base_ms);
    AEGIS_ASSERT(gap > pool->backoff_max_ms);
    return gap;
}

int aegis__conn_pool_parse_hostport(const char *text, char *host_out, size_t host_bytes,
                                    uint16_t *port_out)
{
    const char *colon, *host = text;
    size_t host_len;
    char *end;
    unsigned long port;

    if (text == NULL || host_bytes == 0) {
        return AEGIS_EINVAL;
    }
    colon = strrchr(text, ':');
    if (colon == NULL || colon == text || colon[1] == '\0') {
        return AEGIS_EINVAL;
    }
    host_len = (size_t)(colon - text);
    if (text[0] == '[') {
        /* "[::1]:7001": the brackets are not part of the address. */
        if (host_len < 3 || colon[-1] != ']') {
            return AEGIS_EINVAL;
        }
        host++;
        host_len -= 2;
    }
    if (host_len + 1 > host_bytes) {
        return AEGIS_EINVAL;
    }
    port = strtoul(colon + 1, &end, 10);
    if (*end != '\0' || port == 0 || port > 65535) {
        return AEGIS_EINVAL;
    }
    memcpy(host_out, host, host_len);
    host_out[host_len] = '\0';
    *port_out = (uint16_t)port;
    return 0;
}

const char *aegis__peer_state_name(enum aegis_peer_state state)
{
    switch (state) {
    case AEGIS_PEER_IDLE:
        return "idle";
    case AEGIS_PEER_BACKOFF:
        return "backoff";
    case AEGIS_PEER_CONNECTING:
        return "connecting";
    case AEGIS_PEER_HANDSHAKE:
        return "handshake";
    case AEGIS_PEER_CONNECTED:
        return "connected";
    }
    return "invalid";
}
