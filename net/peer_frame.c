/* SPDX-License-Identifier: MIT */
/* The hello and frame reassembly as pure functions; the format is in peer_frame.h. */
#include "net/peer_frame.h"

#include <stdio.h>

#include <aegis/aegis.h>
#include <aegis/error.h>

#include "engine/assert.h"

static void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint16_t get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

void aegis__hello_encode(uint8_t *out, uint64_t cluster_id, aegis_node_id sender,
                         aegis_node_id receiver)
{
    out[0] = (uint8_t)AEGIS_HELLO_MAGIC;
    out[1] = (uint8_t)(AEGIS_HELLO_MAGIC >> 8);
    out[2] = (uint8_t)(AEGIS_HELLO_MAGIC >> 16);
    out[3] = (uint8_t)(AEGIS_HELLO_MAGIC >> 24);
    put_le16(out + 4, AEGIS_HELLO_VERSION);
    put_le16(out + 6, 0);
    put_le64(out + 8, cluster_id);
    put_le64(out + 16, sender);
    put_le64(out + 24, receiver);
}

int aegis__hello_decode(const uint8_t *in, size_t len, struct aegis_hello *h)
{
    struct aegis_hello d;

    if (len < AEGIS_HELLO_BYTES) {
        return AEGIS_EAGAIN;
    }
    d.magic = get_le32(in);
    d.version = get_le16(in + 4);
    d.flags = get_le16(in + 6);
    d.cluster_id = get_le64(in + 8);
    d.sender = get_le64(in + 16);
    d.receiver = get_le64(in + 24);
    *h = d;
    if (d.magic != AEGIS_HELLO_MAGIC) {
        return AEGIS_ECORRUPT;
    }
    if (d.version != AEGIS_HELLO_VERSION) {
        return AEGIS_EVERSION;
    }
    if (d.flags != 0) {
        return AEGIS_ECORRUPT; /* Reserved: a version-1 sender never sets one. */
    }
    return 0;
}

void aegis__hello_describe(int rv, const struct aegis_hello *h, char *out, size_t out_bytes)
{
    if (out_bytes == 0) {
        return;
    }
    if (rv == AEGIS_EVERSION) {
        snprintf(out, out_bytes,
                 "hello protocol version %u from the peer, this node speaks %u (aegis %s)",
                 (unsigned)h->version, AEGIS_HELLO_VERSION, aegis_version());
    } else if (rv == AEGIS_ECORRUPT && h->magic != AEGIS_HELLO_MAGIC) {
        snprintf(out, out_bytes, "not an Aegis peer hello (magic 0x%08x, expected 0x%08x)",
                 (unsigned)h->magic, AEGIS_HELLO_MAGIC);
    } else if (rv == AEGIS_ECORRUPT) {
        snprintf(out, out_bytes, "hello with reserved flags 0x%04x set", (unsigned)h->flags);
    } else {
        snprintf(out, out_bytes, "%s", aegis_strerror(rv));
    }
}

int aegis__hello_check(const struct aegis_hello *h, const struct aegis_hello_expect *e)
{
    AEGIS_ASSERT(e->cluster_id != 0);
    AEGIS_ASSERT(e->self_id != AEGIS_NODE_NONE);
    if (h->cluster_id != e->cluster_id) {
        return AEGIS_ECLUSTER;
    }
    if (h->receiver != e->self_id || h->sender == AEGIS_NODE_NONE || h->sender == e->self_id) {
        return AEGIS_EUNKNOWNNODE;
    }
    if (e->sender_id != AEGIS_NODE_NONE && h->sender != e->sender_id) {
        return AEGIS_EUNKNOWNNODE;
    }
    return 0;
}

int aegis__frame_next(const uint8_t *buf, size_t len, uint32_t max, uint32_t *body_len,
                      size_t *need)
{
    uint32_t n;

    if (len < AEGIS_FRAME_HDR) {
        *need = AEGIS_FRAME_HDR;
        return 0;
    }
    n = get_le32(buf);
    *body_len = n;
    if (n > max) {
        return AEGIS_ETOOBIG;
    }
    *need = AEGIS_FRAME_HDR + (size_t)n;
    return len - AEGIS_FRAME_HDR >= n ? 1 : 0;
}
