/* SPDX-License-Identifier: MIT */
/* The runtime's payload envelope; formats in envelope.h. */
#include "pipeline/envelope.h"

#include <string.h>

#include "engine/assert.h"

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;

    for (int i = n - 1; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

struct aegis_buf *aegis__env_command(const struct aegis_allocator *a, const void *cmd,
                                     size_t len)
{
    struct aegis_buf *b = aegis__buf_create(a, len + 1);

    if (b == NULL) {
        return NULL;
    }
    b->data[0] = AEGIS_ENV_COMMAND;
    if (len > 0) {
        memcpy(b->data + 1, cmd, len);
    }
    return b;
}

size_t aegis__env_addr_encode(const struct aegis_peer_addr *addr, uint8_t *out)
{
    size_t h = strnlen(addr->host, AEGIS_HOST_MAX);

    put_u64(out, addr->id);
    put_u16(out + 8, addr->port);
    out[10] = (uint8_t)h;
    memcpy(out + 11, addr->host, h);
    return 11 + h;
}

struct aegis_buf *aegis__env_meta_addr(const struct aegis_allocator *a,
                                       const struct aegis_peer_addr *addr)
{
    size_t h = strnlen(addr->host, AEGIS_HOST_MAX);
    struct aegis_buf *b;

    if (h == 0 || h >= AEGIS_HOST_MAX || addr->id == 0) {
        return NULL;
    }
    b = aegis__buf_create(a, 1 + 11 + h);
    if (b == NULL) {
        return NULL;
    }
    b->data[0] = AEGIS_ENV_META;
    aegis__env_addr_encode(addr, b->data + 1);
    return b;
}

int aegis__env_addr_decode(const uint8_t *p, size_t len, struct aegis_peer_addr *out)
{
    size_t h;

    if (len < 11) {
        return AEGIS_ECORRUPT;
    }
    h = p[10];
    if (h == 0 || h >= AEGIS_HOST_MAX || len != 11 + h) {
        return AEGIS_ECORRUPT;
    }
    memset(out, 0, sizeof(*out));
    out->id = get_le(p, 8);
    out->port = (uint16_t)get_le(p + 8, 2);
    memcpy(out->host, p + 11, h);
    if (out->id == 0 || memchr(out->host, '\0', h) != NULL) {
        return AEGIS_ECORRUPT;
    }
    return 0;
}

struct aegis_buf *aegis__env_admin(const struct aegis_allocator *a, uint8_t op,
                                   aegis_node_id target, const struct aegis_peer_addr *addr)
{
    size_t h = addr != NULL ? strnlen(addr->host, AEGIS_HOST_MAX) : 0;
    bool add = op == AEGIS_ENV_ADMIN_ADD;
    struct aegis_buf *b;

    if (target == 0 || op < AEGIS_ENV_ADMIN_ADD || op > AEGIS_ENV_ADMIN_TRANSFER ||
        (add && (addr == NULL || addr->id != target || h == 0 || h >= AEGIS_HOST_MAX))) {
        return NULL;
    }
    b = aegis__buf_create(a, 1 + 9 + (add ? 11 + h : 0));
    if (b == NULL) {
        return NULL;
    }
    b->data[0] = AEGIS_ENV_ADMIN;
    b->data[1] = op;
    put_u64(b->data + 2, target);
    if (add) {
        aegis__env_addr_encode(addr, b->data + 10);
    }
    return b;
}

int aegis__env_admin_decode(const uint8_t *p, size_t len, uint8_t *op_out,
                            aegis_node_id *target_out, struct aegis_peer_addr *addr_out)
{
    uint8_t op;
    aegis_node_id target;

    if (len < 9) {
        return AEGIS_ECORRUPT;
    }
    op = p[0];
    target = get_le(p + 1, 8);
    if (target == 0 || op < AEGIS_ENV_ADMIN_ADD || op > AEGIS_ENV_ADMIN_TRANSFER) {
        return AEGIS_ECORRUPT;
    }
    memset(addr_out, 0, sizeof(*addr_out));
    if (op == AEGIS_ENV_ADMIN_ADD) {
        if (aegis__env_addr_decode(p + 9, len - 9, addr_out) != 0 || addr_out->id != target ||
            addr_out->port == 0) {
            return AEGIS_ECORRUPT;
        }
    } else if (len != 9) {
        return AEGIS_ECORRUPT;
    }
    *op_out = op;
    *target_out = target;
    return 0;
}

struct aegis_buf *aegis__env_snapshot(const struct aegis_allocator *a,
                                      const struct aegis_peer_addr *addrs, uint32_t count,
                                      const void *sm, size_t sm_len)
{
    size_t len = 8 + sm_len, off = 8;
    struct aegis_buf *b;

    for (uint32_t i = 0; i < count; i++) {
        len += 2 + 11 + strnlen(addrs[i].host, AEGIS_HOST_MAX);
    }
    b = aegis__buf_create(a, len);
    if (b == NULL) {
        return NULL;
    }
    put_u32(b->data, AEGIS_ENV_SNAP_MAGIC);
    put_u32(b->data + 4, count);
    for (uint32_t i = 0; i < count; i++) {
        size_t n = aegis__env_addr_encode(&addrs[i], b->data + off + 2);

        put_u16(b->data + off, (uint16_t)n);
        off += 2 + n;
    }
    if (sm_len > 0) {
        memcpy(b->data + off, sm, sm_len);
    }
    return b;
}

int aegis__env_snapshot_parse(const uint8_t *data, size_t len, struct aegis_peer_addr *addrs,
                              uint32_t *count_out, const uint8_t **sm_out, size_t *sm_len_out)
{
    size_t off = 8;
    uint32_t count;

    if (len < 8 || get_le(data, 4) != AEGIS_ENV_SNAP_MAGIC) {
        return AEGIS_ECORRUPT;
    }
    count = (uint32_t)get_le(data + 4, 4);
    if (count > AEGIS_PEERS_MAX) {
        return AEGIS_ECORRUPT;
    }
    for (uint32_t i = 0; i < count; i++) {
        size_t n;

        if (len - off < 2) {
            return AEGIS_ECORRUPT;
        }
        n = (size_t)get_le(data + off, 2);
        if (len - off - 2 < n || aegis__env_addr_decode(data + off + 2, n, &addrs[i]) != 0) {
            return AEGIS_ECORRUPT;
        }
        off += 2 + n;
    }
    *count_out = count;
    *sm_out = data + off;
    *sm_len_out = len - off;
    return 0;
}

size_t aegis__env_snap_prefix_encode(const struct aegis_peer_addr *addrs, uint32_t count,
                                     uint8_t *out)
{
    size_t off = 8;

    AEGIS_ASSERT(count <= AEGIS_PEERS_MAX);
    put_u32(out, AEGIS_ENV_SNAP_MAGIC);
    put_u32(out + 4, count);
    for (uint32_t i = 0; i < count; i++) {
        size_t n = aegis__env_addr_encode(&addrs[i], out + off + 2);

        put_u16(out + off, (uint16_t)n);
        off += 2 + n;
    }
    AEGIS_ASSERT(off <= AEGIS_ENV_SNAP_PREFIX_MAX);
    return off;
}

/* Scan the section in p->buf: 0 with its length in *@len_out once complete, 1 while more
 * bytes are needed, or AEGIS_ECORRUPT. */
static int prefix_scan(struct aegis_env_snap_prefix *p, size_t *len_out)
{
    size_t off = 8;
    uint32_t count;

    if (p->have < 8) {
        return 1;
    }
    if (get_le(p->buf, 4) != AEGIS_ENV_SNAP_MAGIC) {
        return AEGIS_ECORRUPT;
    }
    count = (uint32_t)get_le(p->buf + 4, 4);
    if (count > AEGIS_PEERS_MAX) {
        return AEGIS_ECORRUPT;
    }
    for (uint32_t i = 0; i < count; i++) {
        size_t n;

        if (p->have - off < 2) {
            return 1;
        }
        n = (size_t)get_le(p->buf + off, 2);
        if (n > AEGIS_ENV_ADDR_BYTES_MAX) {
            return AEGIS_ECORRUPT;
        }
        if (p->have - off - 2 < n) {
            return 1;
        }
        if (aegis__env_addr_decode(p->buf + off + 2, n, &p->addrs[i]) != 0) {
            return AEGIS_ECORRUPT;
        }
        off += 2 + n;
    }
    p->count = count;
    *len_out = off;
    return 0;
}

int aegis__env_snap_prefix_feed(struct aegis_env_snap_prefix *p, const uint8_t *data,
                                size_t len, size_t *used_out)
{
    size_t before = p->have, take, plen = 0;
    int rv;

    *used_out = 0;
    if (p->done) {
        return 0;
    }
    if (len == 0) {
        return AEGIS_ECORRUPT; /* The stream ended inside the section. */
    }
    take = len < sizeof(p->buf) - p->have ? len : sizeof(p->buf) - p->have;
    memcpy(p->buf + p->have, data, take);
    p->have += take;
    rv = prefix_scan(p, &plen);
    if (rv == 1) {
        /* A section never exceeds the buffer: a full buffer that is not one is corrupt. */
        *used_out = take;
        return p->have == sizeof(p->buf) ? AEGIS_ECORRUPT : 0;
    }
    if (rv != 0) {
        return rv;
    }
    AEGIS_ASSERT(plen > before && plen <= p->have);
    p->done = true;
    *used_out = plen - before;
    return 0;
}
