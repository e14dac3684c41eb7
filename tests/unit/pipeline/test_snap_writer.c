/* SPDX-License-Identifier: MIT */
/* Tests of the snapshot writer thread with the built-in KV as the machine:
 *   snap_writer.kv_point_in_time   a snapshot read in small chunks while writes go on
 *                                  between the chunks restores to exactly the state at
 *                                  its index (and not the state the writes led to);
 *   snap_writer.write_error        a write error stops the job with that error, leaves no
 *                                  file, and the writer takes the next job;
 *   envelope.snap_prefix_split     the address section parses fed in any split. */
#include <aegis/error.h>
#include <sched.h>
#include <stdio.h>

#include "engine/assert.h"
#include "lib/test.h"
#include "pipeline/envelope.h"
#include "pipeline/machine.h"
#include "pipeline/snap_writer.h"
#include "pipeline/snapshot_file.h"
#include "util.h"

#define KEYS 1500u

static void set_key(struct aegis_kv *kv, aegis_index index, uint32_t k, uint32_t gen)
{
    char key[32], value[400];
    size_t vlen = 10 + (k * 37u + gen * 11u) % 300;
    struct aegis_kv_result r;
    struct aegis_buf *cmd = NULL;

    snprintf(key, sizeof(key), "key-%u", k);
    memset(value, 'a' + (int)(gen % 26), vlen);
    AEGIS_ASSERT(aegis__kv_encode_set(NULL, key, strlen(key), value, vlen, &cmd) == 0);
    AEGIS_ASSERT(aegis__kv_apply(kv, index, 1, AEGIS_ENTRY_COMMAND, cmd->data, cmd->len,
                                 &r) == 0);
    aegis__kv_result_release(&r);
    aegis__buf_unref(cmd);
}

static void del_key(struct aegis_kv *kv, aegis_index index, uint32_t k)
{
    char key[32];
    struct aegis_kv_bytes b;
    struct aegis_kv_result r;
    struct aegis_buf *cmd = NULL;

    snprintf(key, sizeof(key), "key-%u", k);
    b = (struct aegis_kv_bytes){(const uint8_t *)key, strlen(key)};
    AEGIS_ASSERT(aegis__kv_encode_delete(NULL, &b, 1, &cmd) == 0);
    AEGIS_ASSERT(aegis__kv_apply(kv, index, 1, AEGIS_ENTRY_COMMAND, cmd->data, cmd->len,
                                 &r) == 0);
    aegis__kv_result_release(&r);
    aegis__buf_unref(cmd);
}

static struct aegis_snapshot_meta meta_at(aegis_index index)
{
    struct aegis_snapshot_meta m;

    memset(&m, 0, sizeof(m));
    m.index = index;
    m.term = 1;
    m.conf.count = 1;
    m.conf.members[0].id = 1;
    m.conf.members[0].role = AEGIS_MEMBER_VOTER;
    return m;
}

/* Restore @kv from the snapshot file @path as the node does: chunks verified, the
 * address section parsed, the rest fed to a load. */
static int restore_file(const char *path, aegis_index index, struct aegis_kv *kv,
                        uint32_t *addrs_count_out, uint64_t *chunks_out)
{
    struct aegis_snapshot_reader r;
    struct aegis_env_snap_prefix prefix;
    struct aegis_kv_load *load = NULL;
    const uint8_t *p;
    size_t len, used;
    int rv;

    memset(&prefix, 0, sizeof(prefix));
    rv = aegis__snapshot_reader_open(&r, path, NULL, NULL, index);
    if (rv != 0) {
        return rv;
    }
    rv = aegis__kv_load_open(kv, &load);
    do {
        if (rv == 0) {
            rv = aegis__snapshot_reader_next(&r, &p, &len);
        }
        if (rv == 0) {
            rv = aegis__env_snap_prefix_feed(&prefix, p, len, &used);
        }
        if (rv == 0 && len > used) {
            rv = aegis__kv_load_feed(load, p + used, len - used);
        }
    } while (rv == 0 && len > 0);
    *chunks_out = r.seq;
    aegis__snapshot_reader_close(&r);
    if (rv != 0) {
        aegis__kv_load_abort(load);
        return rv;
    }
    *addrs_count_out = prefix.count;
    return aegis__kv_load_finish(load, kv);
}

static void wake_nothing(void *data)
{
    (void)data;
}

TEST(snap_writer, kv_point_in_time)
{
    struct aegis_kv live, ref, got;
    struct aegis_machine m;
    struct aegis_snap_stats stats;
    struct aegis_snap_writer *w = NULL;
    struct aegis_snap_writer_config c;
    struct aegis_snap_result res;
    struct aegis_snapshot_meta meta = meta_at(KEYS);
    struct aegis_peer_addr addrs[2] = {{.id = 1, .host = "10.0.0.1", .port = 7001},
                                       {.id = 2, .host = "10.0.0.2", .port = 7002}};
    uint8_t prefix[AEGIS_ENV_SNAP_PREFIX_MAX];
    size_t prefix_len, prefix_off = 0;
    aegis_index index = 0;
    void *view = NULL;
    uint64_t chunks = 0, pushed = 0;
    uint32_t addrs_count = 0;
    char dir[64], path[4096];

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    ASSERT_OK(aegis__kv_init(&live, NULL, 7));
    ASSERT_OK(aegis__kv_init(&ref, NULL, 7));
    ASSERT_OK(aegis__kv_init(&got, NULL, 9));
    for (uint32_t k = 0; k < KEYS; k++) {
        index++;
        set_key(&live, index, k, 0);
        set_key(&ref, index, k, 0);
    }
    memset(&stats, 0, sizeof(stats));
    memset(&c, 0, sizeof(c));
    c.dir = dir;
    c.chunk_bytes = 2048; /* Small chunks: the stream spans over a hundred. */
    c.chunks_in_flight = 2;
    c.stats = &stats;
    c.wake = wake_nothing;
    ASSERT_OK(aegis__snap_writer_create(&w, &c));
    aegis__machine_kv(&m, &live, NULL);
    ASSERT_OK(m.ops->snap_open(&m, &view));
    prefix_len = aegis__env_snap_prefix_encode(addrs, 2, prefix);
    ASSERT_OK(aegis__snap_writer_begin(w, &meta, 0));
    while (view != NULL) {
        uint8_t *buf = aegis__snap_writer_buf(w);
        size_t len = 0, got_len = 1;

        if (buf == NULL) {
            sched_yield();
            continue;
        }
        if (prefix_off < prefix_len) {
            len = prefix_len - prefix_off;
            memcpy(buf, prefix, len);
            prefix_off = prefix_len;
        }
        while (len < c.chunk_bytes && got_len > 0) {
            ASSERT_OK(m.ops->snap_read(&m, view, buf + len, c.chunk_bytes - len, &got_len));
            len += got_len;
        }
        aegis__snap_writer_push(w, buf, len);
        pushed++;
        if (got_len == 0) {
            m.ops->snap_close(&m, view);
            view = NULL;
            aegis__snap_writer_end(w, 0);
        }
        /* Writes between chunks: overwrites, deletes and new keys. */
        for (uint32_t j = 0; j < 7; j++) {
            uint32_t k = (uint32_t)((pushed * 131u + j * 17u) % (KEYS + 300));

            index++;
            if (j % 3 == 2 && k < KEYS) {
                del_key(&live, index, k);
            } else {
                set_key(&live, index, k, (uint32_t)pushed);
            }
        }
    }
    while (!aegis__snap_writer_poll(w, &res)) {
        sched_yield();
    }
    ASSERT_OK(res.status);
    ASSERT_EQ_U64(res.meta.index, KEYS);
    ASSERT_EQ_U64(stats.last_index, KEYS);
    ASSERT_EQ_U64(stats.written_bytes, res.stream_bytes);
    ASSERT_EQ_U64(stats.in_progress, 0);
    ASSERT_TRUE(pushed > 100);
    aegis__snapshot_file_path(dir, KEYS, path, sizeof(path));
    ASSERT_OK(restore_file(path, KEYS, &got, &addrs_count, &chunks));
    ASSERT_EQ_U64(chunks, pushed);
    ASSERT_EQ_U64(addrs_count, 2);
    /* Exactly the state at the snapshot's index; the live store had moved on. */
    ASSERT_TRUE(aegis__kv_equal(&got, &ref));
    ASSERT_FALSE(aegis__kv_equal(&got, &live));
    aegis__snap_writer_destroy(w);
    aegis__kv_close(&live);
    aegis__kv_close(&ref);
    aegis__kv_close(&got);
    util_rmrf(dir);
    return TEST_PASS;
}

TEST(snap_writer, write_error)
{
    struct aegis_fileio_fault f;
    struct aegis_snap_writer *w = NULL;
    struct aegis_snap_writer_config c;
    struct aegis_snap_result res;
    struct aegis_snapshot_meta meta = meta_at(5);
    char dir[64], path[4096];
    uint8_t *buf;

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    aegis__fileio_fault_init(&f);
    f.fail_mask = AEGIS_FAULT_OP_WRITE;
    f.fail_err = AEGIS_ENOSPC;
    f.fail_at = 2; /* The placeholder header goes through; the first chunk does not. */
    memset(&c, 0, sizeof(c));
    c.dir = dir;
    c.io = &f.base;
    c.chunk_bytes = 1024;
    c.chunks_in_flight = 1;
    ASSERT_OK(aegis__snap_writer_create(&w, &c));
    ASSERT_OK(aegis__snap_writer_begin(w, &meta, 0));
    while ((buf = aegis__snap_writer_buf(w)) == NULL) {
        sched_yield();
    }
    memset(buf, 1, 1024);
    aegis__snap_writer_push(w, buf, 1024);
    while (aegis__snap_writer_error(w) == 0) {
        sched_yield();
    }
    ASSERT_ERR(aegis__snap_writer_begin(w, &meta, 0), AEGIS_EBUSY);
    aegis__snap_writer_end(w, 0);
    while (!aegis__snap_writer_poll(w, &res)) {
        sched_yield();
    }
    ASSERT_ERR(res.status, AEGIS_ENOSPC);
    aegis__snapshot_file_path(dir, 5, path, sizeof(path));
    ASSERT_TRUE(access(path, F_OK) != 0);
    strcat(path, ".tmp");
    ASSERT_TRUE(access(path, F_OK) != 0);
    /* The next job works. */
    f.fail_at = 0;
    ASSERT_OK(aegis__snap_writer_begin(w, &meta, 0));
    aegis__snap_writer_end(w, 0);
    while (!aegis__snap_writer_poll(w, &res)) {
        sched_yield();
    }
    ASSERT_OK(res.status);
    aegis__snap_writer_destroy(w);
    aegis__fileio_fault_close(&f);
    util_rmrf(dir);
    return TEST_PASS;
}

TEST(envelope, snap_prefix_split)
{
    struct aegis_peer_addr addrs[3] = {{.id = 1, .host = "a", .port = 1},
                                       {.id = 7, .host = "host-seven.example", .port = 77},
                                       {.id = 9, .host = "::1", .port = 9}};
    uint8_t stream[AEGIS_ENV_SNAP_PREFIX_MAX + 10];
    size_t plen = aegis__env_snap_prefix_encode(addrs, 3, stream);

    memcpy(stream + plen, "MACHINE", 7);
    for (size_t step = 1; step <= plen + 7; step++) {
        struct aegis_env_snap_prefix p;
        size_t off = 0, sm = 0;

        memset(&p, 0, sizeof(p));
        while (off < plen + 7) {
            size_t n = plen + 7 - off < step ? plen + 7 - off : step, used;

            ASSERT_OK(aegis__env_snap_prefix_feed(&p, stream + off, n, &used));
            sm += n - used;
            off += n;
        }
        ASSERT_TRUE(p.done);
        ASSERT_EQ_U64(sm, 7);
        ASSERT_EQ_U64(p.count, 3);
        ASSERT_EQ_U64(p.addrs[1].id, 7);
        ASSERT_STR_EQ(p.addrs[1].host, "host-seven.example");
    }
    /* Cut inside the section: refused at the end of the stream. */
    {
        struct aegis_env_snap_prefix p;
        size_t used;

        memset(&p, 0, sizeof(p));
        ASSERT_OK(aegis__env_snap_prefix_feed(&p, stream, plen - 1, &used));
        ASSERT_FALSE(p.done);
        ASSERT_ERR(aegis__env_snap_prefix_feed(&p, NULL, 0, &used), AEGIS_ECORRUPT);
    }
    stream[0] ^= 1;
    {
        struct aegis_env_snap_prefix p;
        size_t used;

        memset(&p, 0, sizeof(p));
        ASSERT_ERR(aegis__env_snap_prefix_feed(&p, stream, plen, &used), AEGIS_ECORRUPT);
    }
    return TEST_PASS;
}
