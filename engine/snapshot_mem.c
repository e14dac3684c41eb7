/* SPDX-License-Identifier: MIT */
/* Memory-backed snapshot source and sink; see snapshot_mem.h. */
#include "engine/snapshot_mem.h"

#include <string.h>

#include <aegis/error.h>

#include "engine/assert.h"

void aegis__snapshot_mem_init(struct aegis_snapshot_mem *m, const struct aegis_allocator *a)
{
    memset(m, 0, sizeof(*m));
    m->alloc = a;
}

static void drop_recv(struct aegis_snapshot_mem *m)
{
    aegis__buf_unref(m->recv);
    m->recv = NULL;
    m->recv_len = 0;
    m->recv_done = false;
    m->recv_leader = AEGIS_NODE_NONE;
    memset(&m->recv_meta, 0, sizeof(m->recv_meta));
}

void aegis__snapshot_mem_close(struct aegis_snapshot_mem *m)
{
    drop_recv(m);
    aegis__buf_unref(m->data);
    m->data = NULL;
}

void aegis__snapshot_mem_set(struct aegis_snapshot_mem *m, const struct aegis_snapshot_meta *meta,
                             struct aegis_buf *data)
{
    AEGIS_ASSERT(meta->index > 0);
    if (data != NULL) {
        aegis__buf_ref(data);
    }
    aegis__buf_unref(m->data);
    m->data = data;
    m->meta = *meta;
}

static int mem_read(void *data, const struct aegis_snapshot_meta *meta, uint64_t offset,
                    uint32_t len, struct aegis_buf **chunk_out)
{
    struct aegis_snapshot_mem *m = data;
    uint64_t size = m->data != NULL ? m->data->len : 0;

    if (meta->index != m->meta.index || meta->term != m->meta.term || offset > size ||
        len > size - offset) {
        return AEGIS_ENOENT; /* Replaced by a newer snapshot. */
    }
    AEGIS_ASSERT(len > 0);
    *chunk_out = aegis__buf_from(m->alloc, m->data->data + offset, len);
    return *chunk_out != NULL ? 0 : AEGIS_ENOMEM;
}

static int mem_recv_open(void *data, const struct aegis_snapshot_meta *meta, aegis_node_id leader,
                         uint64_t total_bytes, uint64_t *have_out)
{
    struct aegis_snapshot_mem *m = data;

    if (m->recv != NULL && !m->recv_done && m->recv_leader == leader &&
        m->recv_meta.index == meta->index && m->recv_meta.term == meta->term &&
        m->recv->len == total_bytes) {
        *have_out = m->recv_len; /* The same offer: resume. */
        return 0;
    }
    drop_recv(m);
    if (total_bytes > AEGIS_BUF_LEN_MAX) {
        return AEGIS_ETOOBIG;
    }
    m->recv = aegis__buf_create(m->alloc, (size_t)total_bytes);
    if (m->recv == NULL) {
        return AEGIS_ENOMEM;
    }
    m->recv_meta = *meta;
    m->recv_leader = leader;
    *have_out = 0;
    return 0;
}

static int mem_recv_write(void *data, const struct aegis_snapshot_meta *meta, uint64_t offset,
                          struct aegis_buf *chunk)
{
    struct aegis_snapshot_mem *m = data;

    AEGIS_ASSERT(m->recv != NULL && meta->index == m->recv_meta.index);
    AEGIS_ASSERT(offset == m->recv_len);
    AEGIS_ASSERT(chunk->len <= m->recv->len - m->recv_len);
    memcpy(m->recv->data + offset, chunk->data, chunk->len);
    m->recv_len += chunk->len;
    return 0;
}

static int mem_recv_finish(void *data, const struct aegis_snapshot_meta *meta,
                           uint64_t total_bytes)
{
    struct aegis_snapshot_mem *m = data;
    int rv = 0;

    AEGIS_ASSERT(m->recv != NULL && meta->index == m->recv_meta.index);
    AEGIS_ASSERT(m->recv_len == total_bytes);
    if (m->check != NULL) {
        rv = m->check(m->check_data, meta, m->recv);
    }
    if (rv != 0) {
        drop_recv(m);
        return rv == AEGIS_EAGAIN ? AEGIS_ECORRUPT : rv;
    }
    m->recv_meta = *meta; /* The leader's membership at that index. */
    m->recv_done = true;
    return 0;
}

void aegis__snapshot_mem_io(struct aegis_snapshot_mem *m, struct aegis_snapshot_io *io)
{
    io->read = mem_read;
    io->recv_open = mem_recv_open;
    io->recv_write = mem_recv_write;
    io->recv_finish = mem_recv_finish;
    io->data = m;
}

struct aegis_buf *aegis__snapshot_mem_installed(struct aegis_snapshot_mem *m,
                                                const struct aegis_snapshot_meta *meta)
{
    AEGIS_ASSERT(m->recv != NULL && m->recv_done);
    AEGIS_ASSERT(m->recv_meta.index == meta->index && m->recv_meta.term == meta->term);
    aegis__buf_unref(m->data);
    m->data = m->recv->len > 0 ? m->recv : NULL;
    if (m->data == NULL) {
        aegis__buf_unref(m->recv);
    }
    m->recv = NULL;
    m->meta = *meta;
    drop_recv(m);
    return m->data;
}
