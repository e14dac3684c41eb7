/* Ownership helpers for struct aegis_msg; see msg.h. */
#include "engine/msg.h"

#include <string.h>

#include <aegis/error.h>

static struct aegis_buf **msg_buf_slot(struct aegis_msg *m)
{
    switch (m->type) {
    case AEGIS_MSG_SNAPSHOT_REQ:
        return &m->snapshot_req.chunk;
    case AEGIS_MSG_CLIENT_REQ:
        return &m->client_req.command;
    case AEGIS_MSG_CLIENT_RESP:
        return &m->client_resp.value;
    default:
        return NULL;
    }
}

void aegis__msg_release(struct aegis_msg *m, const struct aegis_allocator *a)
{
    struct aegis_buf **slot;

    if (m->type == AEGIS_MSG_APPEND_REQ && m->append_req.entries != NULL) {
        for (uint32_t i = 0; i < m->append_req.entries_count; i++) {
            aegis__entry_unref(&m->append_req.entries[i]);
        }
        aegis__free(a, m->append_req.entries);
    }
    slot = msg_buf_slot(m);
    if (slot != NULL) {
        aegis__buf_unref(*slot);
    }
    memset(m, 0, sizeof(*m));
}

int aegis__msg_clone(struct aegis_msg *dst, const struct aegis_msg *src,
                     const struct aegis_allocator *a)
{
    struct aegis_buf **slot;

    *dst = *src;
    if (src->type == AEGIS_MSG_APPEND_REQ) {
        uint32_t n = src->append_req.entries_count;

        dst->append_req.entries = NULL;
        if (n > 0) {
            dst->append_req.entries = aegis__calloc(a, n, sizeof(struct aegis_entry));
            if (dst->append_req.entries == NULL) {
                dst->append_req.entries_count = 0;
                return AEGIS_ENOMEM;
            }
            memcpy(dst->append_req.entries, src->append_req.entries,
                   n * sizeof(struct aegis_entry));
            for (uint32_t i = 0; i < n; i++) {
                aegis__entry_ref(&dst->append_req.entries[i]);
            }
        }
    }
    slot = msg_buf_slot(dst);
    if (slot != NULL && *slot != NULL) {
        aegis__buf_ref(*slot);
    }
    return 0;
}
