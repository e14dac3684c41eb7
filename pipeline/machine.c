/* SPDX-License-Identifier: MIT */
/* The two state machines behind struct aegis_machine; see machine.h. */
#include "pipeline/machine.h"

#include <stdlib.h>
#include <string.h>

#include "engine/assert.h"

/* The built-in KV. */

static void result_from_kv(struct aegis_result *res, const struct aegis_kv_result *kr,
                           const struct aegis_kv_cmd *cmd, aegis_index index)
{
    memset(res, 0, sizeof(*res));
    res->status = kr->status;
    res->index = index;
    res->version = kr->version;
    if (kr->value != NULL) {
        res->value = kr->value->data;
        res->value_len = kr->value->len;
    }
    switch (cmd != NULL ? cmd->type : 0) {
    case AEGIS_KV_INCREMENT:
        res->integer = kr->integer;
        break;
    case AEGIS_KV_CAS:
        res->integer = kr->swapped ? 1 : 0;
        if (kr->status == AEGIS_ECASMISMATCH) {
            res->status = 0; /* A CAS that did not swap is an answer, not an error. */
        }
        break;
    case AEGIS_KV_DELETE:
    case AEGIS_KV_MSET:
        res->integer = (int64_t)kr->count;
        break;
    default:
        break;
    }
}

static struct aegis_buf *kv_apply(struct aegis_machine *m, const struct aegis_entry *e,
                                  uint8_t type, const uint8_t *cmd, size_t len,
                                  struct aegis_result *res)
{
    struct aegis_kv_result kr;
    struct aegis_kv_cmd c;
    struct aegis_buf *value = NULL;
    bool is_cmd = type == AEGIS_ENTRY_COMMAND;
    int rv;

    /* Every entry goes to the KV, no-ops included: it applies strictly in order. */
    rv = aegis__kv_apply(m->kv, e->index, e->term, type, is_cmd ? cmd : NULL,
                         is_cmd ? len : 0, &kr);
    AEGIS_ASSERT(rv == 0); /* In order by construction; ENOMEM is fatal here. */
    if (is_cmd) {
        bool decoded = aegis__kv_cmd_decode(cmd, len, &c) == 0;

        result_from_kv(res, &kr, decoded ? &c : NULL, e->index);
        value = kr.value;
        kr.value = NULL;
    }
    aegis__kv_result_release(&kr);
    return value;
}

static struct aegis_buf *kv_read(struct aegis_machine *m, const uint8_t *query, size_t len,
                                 struct aegis_result *res)
{
    struct aegis_buf *value = NULL;
    struct aegis_kv_cmd cmd;
    aegis_index version = 0;

    if (aegis__kv_cmd_decode(query, len, &cmd) != 0 || cmd.type != AEGIS_KV_GET) {
        res->status = AEGIS_EINVAL;
        return NULL;
    }
    res->status = aegis__kv_get(m->kv, cmd.key.data, cmd.key.len, &value, &version);
    res->version = version;
    if (value != NULL) {
        res->value = value->data;
        res->value_len = value->len;
    }
    return value;
}

static int kv_snap_open(struct aegis_machine *m, void **snap_out)
{
    struct aegis_kv_snap *s = NULL;
    int rv = aegis__kv_snap_open(m->kv, &s);

    *snap_out = s;
    return rv;
}

static int kv_snap_read(struct aegis_machine *m, void *snap, uint8_t *buf, size_t cap,
                        size_t *len_out)
{
    (void)m;
    return aegis__kv_snap_read(snap, buf, cap, len_out);
}

static void kv_snap_close(struct aegis_machine *m, void *snap)
{
    (void)m;
    aegis__kv_snap_close(snap);
}

static uint64_t kv_snap_size(struct aegis_machine *m, void *snap)
{
    (void)m;
    return aegis__kv_snap_size(snap);
}

static int kv_restore_begin(struct aegis_machine *m, void **rs_out)
{
    struct aegis_kv_load *l = NULL;
    int rv = aegis__kv_load_open(m->kv, &l);

    *rs_out = l;
    return rv;
}

static int kv_restore_feed(struct aegis_machine *m, void *rs, const uint8_t *data, size_t len)
{
    (void)m;
    return aegis__kv_load_feed(rs, data, len);
}

static int kv_restore_end(struct aegis_machine *m, void *rs, bool commit)
{
    if (commit) {
        return aegis__kv_load_finish(rs, m->kv);
    }
    aegis__kv_load_abort(rs);
    return 0;
}

static uint64_t kv_state_bytes(const struct aegis_machine *m)
{
    return m->kv->t.bytes;
}

static const struct aegis_machine_ops kv_ops = {
    .apply = kv_apply,
    .read = kv_read,
    .snap_open = kv_snap_open,
    .snap_read = kv_snap_read,
    .snap_close = kv_snap_close,
    .snap_size = kv_snap_size,
    .restore_begin = kv_restore_begin,
    .restore_feed = kv_restore_feed,
    .restore_end = kv_restore_end,
    .state_bytes = kv_state_bytes,
};

void aegis__machine_kv(struct aegis_machine *m, struct aegis_kv *kv,
                       const struct aegis_allocator *alloc)
{
    memset(m, 0, sizeof(*m));
    m->ops = &kv_ops;
    m->kv = kv;
    m->alloc = alloc;
}

/* The embedder's machine. */

static struct aegis_buf *user_apply(struct aegis_machine *m, const struct aegis_entry *e,
                                    uint8_t type, const uint8_t *cmd, size_t len,
                                    struct aegis_result *res)
{
    struct aegis_buf *value = NULL;

    if (type != AEGIS_ENTRY_COMMAND) {
        return NULL; /* The embedder sees commands only. */
    }
    m->sm->apply(m->sm->data, e->index, cmd, len, res);
    if (res->value != NULL) {
        /* The embedder's bytes are valid only during apply: keep a copy for the
         * proposer's callback, and for the follower that forwarded it. */
        value = aegis__buf_from(m->alloc, res->value, res->value_len);
        res->value = value != NULL ? value->data : NULL;
        res->value_len = value != NULL ? value->len : 0;
    }
    return value;
}

static struct aegis_buf *user_read(struct aegis_machine *m, const uint8_t *query, size_t len,
                                   struct aegis_result *res)
{
    if (m->sm->read == NULL) {
        res->status = AEGIS_ENOTSUP;
        return NULL;
    }
    m->sm->read(m->sm->data, query, len, res);
    return NULL;
}

/* A whole-buffer snapshot read out in pieces (the older interface). */
struct user_whole_snap {
    uint8_t *buf; /* From the embedder's malloc(). */
    size_t len, off;
};

static int user_snap_open(struct aegis_machine *m, void **snap_out)
{
    struct user_whole_snap *w;
    void *buf = NULL;
    size_t len = 0;
    int rv;

    if (m->sm->snapshot_open != NULL) {
        return m->sm->snapshot_open(m->sm->data, snap_out);
    }
    if (m->sm->snapshot == NULL) {
        return AEGIS_ENOTSUP;
    }
    w = aegis__calloc(m->alloc, 1, sizeof(*w));
    if (w == NULL) {
        return AEGIS_ENOMEM;
    }
    rv = m->sm->snapshot(m->sm->data, &buf, &len);
    if (rv != 0) {
        aegis__free(m->alloc, w);
        return rv;
    }
    w->buf = buf;
    w->len = buf != NULL ? len : 0;
    *snap_out = w;
    return 0;
}

static int user_snap_read(struct aegis_machine *m, void *snap, uint8_t *buf, size_t cap,
                          size_t *len_out)
{
    struct user_whole_snap *w = snap;
    size_t n;

    if (m->sm->snapshot_open != NULL) {
        return m->sm->snapshot_read(m->sm->data, snap, buf, cap, len_out);
    }
    n = w->len - w->off < cap ? w->len - w->off : cap;
    if (n > 0) {
        memcpy(buf, w->buf + w->off, n);
    }
    w->off += n;
    *len_out = n;
    return 0;
}

static void user_snap_close(struct aegis_machine *m, void *snap)
{
    struct user_whole_snap *w = snap;

    if (m->sm->snapshot_open != NULL) {
        m->sm->snapshot_close(m->sm->data, snap);
        return;
    }
    if (w != NULL) {
        free(w->buf); /* The embedder's buffer, from malloc() as aegis.h says. */
        aegis__free(m->alloc, w);
    }
}

static uint64_t user_snap_size(struct aegis_machine *m, void *snap)
{
    const struct user_whole_snap *w = snap;

    return m->sm->snapshot_open != NULL ? 0 : w->len; /* Streams: unknown. */
}

/* Fed bytes gathered for a whole-buffer restore (the older interface). */
struct user_whole_restore {
    uint8_t *buf;
    size_t len, cap;
};

static int user_restore_begin(struct aegis_machine *m, void **rs_out)
{
    if (m->sm->restore_begin != NULL) {
        return m->sm->restore_begin(m->sm->data, rs_out);
    }
    *rs_out = aegis__calloc(m->alloc, 1, sizeof(struct user_whole_restore));
    return *rs_out != NULL ? 0 : AEGIS_ENOMEM;
}

static int user_restore_feed(struct aegis_machine *m, void *rs, const uint8_t *data,
                             size_t len)
{
    struct user_whole_restore *w = rs;

    if (m->sm->restore_begin != NULL) {
        return m->sm->restore_feed(m->sm->data, rs, data, len);
    }
    if (len > w->cap - w->len) {
        size_t cap = w->cap == 0 ? 65536 : w->cap;
        void *p;

        while (cap - w->len < len) {
            if (cap > SIZE_MAX / 2) {
                return AEGIS_ENOMEM;
            }
            cap *= 2;
        }
        p = aegis__realloc(m->alloc, w->buf, cap);
        if (p == NULL) {
            return AEGIS_ENOMEM;
        }
        w->buf = p;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, data, len);
    w->len += len;
    return 0;
}

static int user_restore_end(struct aegis_machine *m, void *rs, bool commit)
{
    struct user_whole_restore *w = rs;
    int rv = 0;

    if (m->sm->restore_begin != NULL) {
        return m->sm->restore_end(m->sm->data, rs, commit);
    }
    if (commit) {
        rv = m->sm->restore != NULL ? m->sm->restore(m->sm->data, w->buf, w->len)
                                    : AEGIS_ENOTSUP;
    }
    aegis__free(m->alloc, w->buf);
    aegis__free(m->alloc, w);
    return rv;
}

static uint64_t user_state_bytes(const struct aegis_machine *m)
{
    (void)m;
    return 0; /* The embedder's state is opaque to the library. */
}

static const struct aegis_machine_ops user_ops = {
    .apply = user_apply,
    .read = user_read,
    .snap_open = user_snap_open,
    .snap_read = user_snap_read,
    .snap_close = user_snap_close,
    .snap_size = user_snap_size,
    .restore_begin = user_restore_begin,
    .restore_feed = user_restore_feed,
    .restore_end = user_restore_end,
    .state_bytes = user_state_bytes,
};

void aegis__machine_user(struct aegis_machine *m, const struct aegis_sm *sm,
                         const struct aegis_allocator *alloc)
{
    AEGIS_ASSERT(sm != NULL && sm->apply != NULL);
    /* All three or none of each streaming set (aegis.h). */
    AEGIS_ASSERT((sm->snapshot_open == NULL) == (sm->snapshot_read == NULL));
    AEGIS_ASSERT((sm->snapshot_open == NULL) == (sm->snapshot_close == NULL));
    AEGIS_ASSERT((sm->restore_begin == NULL) == (sm->restore_feed == NULL));
    AEGIS_ASSERT((sm->restore_begin == NULL) == (sm->restore_end == NULL));
    memset(m, 0, sizeof(*m));
    m->ops = &user_ops;
    m->sm = sm;
    m->alloc = alloc;
}
