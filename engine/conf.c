/* SPDX-License-Identifier: MIT */
/* Membership queries, one-at-a-time changes and the ConfigChange payload codec; the byte
 * format is specified in conf.h. */
#include "engine/conf.h"

#include <string.h>

#include <aegis/error.h>

#include "engine/assert.h"
#include "engine/byteorder.h"

/* The layout of engine/conf.h: version, op, node id, count; members of id and role. */
_Static_assert(AEGIS_CONF_HEADER_BYTES == 1 + 1 + 8 + 4, "conf header layout");
_Static_assert(AEGIS_CONF_MEMBER_BYTES == 8 + 1, "conf member layout");

const struct aegis_member *aegis__conf_find(const struct aegis_conf *c, aegis_node_id id)
{
    AEGIS_ASSERT(c->count <= AEGIS_MEMBERS_MAX);
    for (uint32_t i = 0; i < c->count; i++) {
        if (c->members[i].id == id) {
            return &c->members[i];
        }
    }
    return NULL;
}

bool aegis__conf_is_voter(const struct aegis_conf *c, aegis_node_id id)
{
    const struct aegis_member *m = aegis__conf_find(c, id);

    return m != NULL && m->role == AEGIS_MEMBER_VOTER;
}

uint32_t aegis__conf_voter_count(const struct aegis_conf *c)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < c->count; i++) {
        n += c->members[i].role == AEGIS_MEMBER_VOTER ? 1u : 0u;
    }
    return n;
}

uint32_t aegis__conf_quorum(const struct aegis_conf *c)
{
    return aegis__conf_voter_count(c) / 2 + 1;
}

bool aegis__conf_equal(const struct aegis_conf *a, const struct aegis_conf *b)
{
    if (a->count != b->count) {
        return false;
    }
    for (uint32_t i = 0; i < a->count; i++) {
        const struct aegis_member *m = aegis__conf_find(b, a->members[i].id);

        if (m == NULL || m->role != a->members[i].role) {
            return false;
        }
    }
    return true;
}

bool aegis__conf_valid(const struct aegis_conf *c)
{
    if (c->count > AEGIS_MEMBERS_MAX) {
        return false;
    }
    for (uint32_t i = 0; i < c->count; i++) {
        const struct aegis_member *m = &c->members[i];

        if (m->id == AEGIS_NODE_NONE ||
            (m->role != AEGIS_MEMBER_VOTER && m->role != AEGIS_MEMBER_LEARNER)) {
            return false;
        }
        for (uint32_t j = 0; j < i; j++) {
            if (c->members[j].id == m->id) {
                return false;
            }
        }
    }
    return true;
}

static int conf_remove(const struct aegis_conf *c, aegis_node_id id, struct aegis_conf *out)
{
    const struct aegis_member *m = aegis__conf_find(c, id);
    struct aegis_conf next = {0};

    if (m == NULL) {
        return AEGIS_EUNKNOWNNODE;
    }
    if (m->role == AEGIS_MEMBER_VOTER && aegis__conf_voter_count(c) == 1) {
        return AEGIS_ECONFIG;
    }
    for (uint32_t i = 0; i < c->count; i++) {
        if (c->members[i].id != id) {
            next.members[next.count++] = c->members[i];
        }
    }
    *out = next;
    return 0;
}

int aegis__conf_change(const struct aegis_conf *c, uint8_t op, aegis_node_id id,
                       struct aegis_conf *out)
{
    const struct aegis_member *m;
    struct aegis_conf next;

    AEGIS_ASSERT(aegis__conf_valid(c));
    if (id == AEGIS_NODE_NONE) {
        return AEGIS_EINVAL;
    }
    m = aegis__conf_find(c, id);
    switch (op) {
    case AEGIS_CONF_ADD_LEARNER:
        if (m != NULL) {
            return AEGIS_EEXIST;
        }
        if (c->count == AEGIS_MEMBERS_MAX) {
            return AEGIS_EFULL;
        }
        next = *c;
        next.members[next.count++] = (struct aegis_member){.id = id, .role = AEGIS_MEMBER_LEARNER};
        break;
    case AEGIS_CONF_PROMOTE:
        if (m == NULL) {
            return AEGIS_EUNKNOWNNODE;
        }
        if (m->role != AEGIS_MEMBER_LEARNER) {
            return AEGIS_EINVAL;
        }
        next = *c;
        next.members[m - c->members].role = AEGIS_MEMBER_VOTER;
        break;
    case AEGIS_CONF_REMOVE:
        return conf_remove(c, id, out);
    default:
        return AEGIS_EINVAL;
    }
    AEGIS_ASSERT(aegis__conf_valid(&next));
    *out = next;
    return 0;
}

size_t aegis__conf_encoded_size(const struct aegis_conf_change *cc)
{
    AEGIS_ASSERT(cc->conf.count <= AEGIS_MEMBERS_MAX);
    return AEGIS_CONF_HEADER_BYTES + (size_t)AEGIS_CONF_MEMBER_BYTES * cc->conf.count;
}

size_t aegis__conf_encode(const struct aegis_conf_change *cc, uint8_t *buf)
{
    uint8_t *p = buf;

    AEGIS_ASSERT(aegis__conf_valid(&cc->conf));
    AEGIS_ASSERT(cc->op >= AEGIS_CONF_ADD_LEARNER && cc->op <= AEGIS_CONF_REMOVE);
    AEGIS_ASSERT(cc->id != AEGIS_NODE_NONE);
    *p++ = AEGIS_CONF_VERSION;
    *p++ = cc->op;
    aegis__put_le64(p, cc->id);
    p += 8;
    aegis__put_le32(p, cc->conf.count);
    p += 4;
    for (uint32_t i = 0; i < cc->conf.count; i++) {
        aegis__put_le64(p, cc->conf.members[i].id);
        p[8] = cc->conf.members[i].role;
        p += AEGIS_CONF_MEMBER_BYTES;
    }
    AEGIS_ASSERT((size_t)(p - buf) == aegis__conf_encoded_size(cc));
    return (size_t)(p - buf);
}

struct aegis_buf *aegis__conf_encode_buf(const struct aegis_conf_change *cc,
                                         const struct aegis_allocator *a)
{
    struct aegis_buf *b = aegis__buf_create(a, aegis__conf_encoded_size(cc));

    if (b != NULL) {
        aegis__conf_encode(cc, b->data);
    }
    return b;
}

int aegis__conf_decode(const uint8_t *data, size_t len, struct aegis_conf_change *out)
{
    struct aegis_conf_change cc;
    uint32_t count;

    memset(&cc, 0, sizeof(cc));
    if (data == NULL || len < AEGIS_CONF_HEADER_BYTES || data[0] != AEGIS_CONF_VERSION) {
        return AEGIS_ECORRUPT;
    }
    cc.op = data[1];
    cc.id = aegis__get_le64(data + 2);
    count = aegis__get_le32(data + 10);
    if (cc.op < AEGIS_CONF_ADD_LEARNER || cc.op > AEGIS_CONF_REMOVE ||
        cc.id == AEGIS_NODE_NONE || count > AEGIS_MEMBERS_MAX ||
        len != AEGIS_CONF_HEADER_BYTES + (size_t)AEGIS_CONF_MEMBER_BYTES * count) {
        return AEGIS_ECORRUPT;
    }
    cc.conf.count = count;
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *p = data + AEGIS_CONF_HEADER_BYTES + (size_t)AEGIS_CONF_MEMBER_BYTES * i;

        cc.conf.members[i].id = aegis__get_le64(p);
        cc.conf.members[i].role = p[8];
    }
    if (!aegis__conf_valid(&cc.conf)) {
        return AEGIS_ECORRUPT;
    }
    *out = cc;
    return 0;
}
