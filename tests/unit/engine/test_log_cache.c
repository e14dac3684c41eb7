/* SPDX-License-Identifier: MIT */
/* The bounded entry cache (engine/log.h) and reading evicted entries back through the
 * ready (engine/raft.h rd.fetch, aegis__raft_fetched): the eviction bound and what is
 * never evicted, the disk region's terms and ConfigChanges, the read-back window, the
 * leader's fetch round trip (answered at once or later), and the snapshot a follower
 * still gets when it is behind what the storage retains or when a read fails. */
#include "engine/log.h"
#include "raft_cluster.h"

#define REC(len) (AEGIS_LOG_RECORD_OVERHEAD + (len))

/* Append one entry of @term with a @len-byte payload (the log owns the only reference). */
static int append_one(struct aegis_log *l, aegis_term term, uint8_t type, uint32_t len)
{
    struct aegis_entry e = {.index = aegis__log_last_index(l) + 1, .term = term, .type = type};
    int rv;

    e.buf = aegis__buf_create(NULL, len);
    memset(e.buf->data, (int)(e.index & 0xff), len);
    rv = aegis__log_append(l, &e);
    aegis__buf_unref(e.buf);
    return rv;
}

/* 20 entries of 10 bytes: 1..5 term 1, 6..12 term 2 (8 a ConfigChange), 13..20 term 4. */
static void fill(struct aegis_log *l)
{
    for (aegis_index i = 1; i <= 20; i++) {
        aegis_term t = i <= 5 ? 1 : i <= 12 ? 2 : 4;

        if (append_one(l, t, i == 8 ? AEGIS_ENTRY_CONFIG_CHANGE : AEGIS_ENTRY_COMMAND, 10) != 0) {
            cl_die("append");
        }
    }
}

TEST(log_cache, eviction_bound_and_limit)
{
    struct aegis_log l;
    struct aegis_entry out[4];

    aegis__log_init(&l, NULL);
    fill(&l);
    ASSERT_EQ_U64(l.cache_bytes, 20 * REC(10));
    /* Unbounded: nothing leaves. */
    ASSERT_OK(aegis__log_commit(&l, 20));
    ASSERT_EQ_U64(aegis__log_evict(&l, 20), 0);
    aegis__log_set_cache_max(&l, 5 * REC(10));
    /* Never past the caller's limit, nor past the commit index. */
    l.commit = 7;
    ASSERT_EQ_U64(aegis__log_evict(&l, 20), 7);
    ASSERT_EQ_U64(l.ring_base, 7);
    ASSERT_EQ_U64(aegis__log_evict(&l, 10), 0);
    ASSERT_EQ_U64(l.ring_base, 7); /* Limited by commit 7: nothing more. */
    l.commit = 20;
    ASSERT_EQ_U64(aegis__log_evict(&l, 10), 3);
    ASSERT_EQ_U64(l.ring_base, 10);
    ASSERT_TRUE(l.cache_bytes > l.cache_bytes_max); /* 11..20 wait for the limit. */
    ASSERT_EQ_U64(aegis__log_evict(&l, 20), 5);
    ASSERT_EQ_U64(l.ring_base, 15);
    ASSERT_EQ_U64(l.cache_bytes, 5 * REC(10));
    ASSERT_EQ_U64(l.evicted_bytes, 15 * REC(10));
    /* The disk region still answers terms, the first term and the last of a term. */
    ASSERT_EQ_U64(aegis__log_first_index(&l), 1);
    ASSERT_EQ_U64(aegis__log_first_term(&l), 1);
    ASSERT_EQ_U64(aegis__log_term_at(&l, 5), 1);
    ASSERT_EQ_U64(aegis__log_term_at(&l, 6), 2);
    ASSERT_EQ_U64(aegis__log_term_at(&l, 12), 2);
    ASSERT_EQ_U64(aegis__log_term_at(&l, 13), 4);
    ASSERT_EQ_U64(aegis__log_term_at(&l, 16), 4);
    ASSERT_EQ_U64(aegis__log_last_of_term(&l, 2, 20), 12);
    ASSERT_EQ_U64(aegis__log_last_of_term(&l, 1, 9), 5);
    ASSERT_EQ_U64(aegis__log_last_of_term(&l, 4, 14), 14);
    ASSERT_EQ_U64(aegis__log_last_of_term(&l, 3, 20), 0);
    /* But not the payloads: only the ConfigChange is kept whole. */
    ASSERT_TRUE(aegis__log_on_disk(&l, 9));
    ASSERT_FALSE(aegis__log_on_disk(&l, 16));
    ASSERT_TRUE(aegis__log_get(&l, 9) == NULL);
    ASSERT_TRUE(aegis__log_get(&l, 8) != NULL);
    ASSERT_EQ_U64(aegis__log_last_conf(&l, 20)->index, 8);
    ASSERT_TRUE(aegis__log_last_conf(&l, 7) == NULL);
    ASSERT_EQ_U64(aegis__log_range(&l, 9, 4, UINT64_MAX, out), 0);
    /* Matching a leader's request over the disk region. */
    {
        struct aegis_log_match m;

        aegis__log_match(&l, 12, 2, NULL, 0, &m);
        ASSERT_TRUE(m.ok);
        aegis__log_match(&l, 12, 3, NULL, 0, &m);
        ASSERT_FALSE(m.ok);
    }
    /* Committed entries cannot be truncated; compaction walks into the disk region. */
    ASSERT_ERR(aegis__log_truncate(&l, 10), AEGIS_EPERM);
    ASSERT_OK(aegis__log_compact(&l, 9));
    ASSERT_EQ_U64(aegis__log_term_at(&l, 9), 2);
    ASSERT_EQ_U64(aegis__log_term_at(&l, 8), 0);
    ASSERT_TRUE(aegis__log_last_conf(&l, 20) == NULL);
    ASSERT_EQ_U64(aegis__log_first_term(&l), 2);
    ASSERT_OK(aegis__log_compact(&l, 17)); /* Past the disk region, into the cache. */
    ASSERT_EQ_U64(l.ring_base, 17);
    ASSERT_EQ_U64(l.runs_count, 0);
    ASSERT_EQ_U64(l.cache_bytes, 3 * REC(10));
    ASSERT_EQ_U64(aegis__log_term_at(&l, 17), 4);
    aegis__log_close(&l);
    return TEST_PASS;
}

TEST(log_cache, window_round_trip_and_refusals)
{
    struct aegis_log l;
    struct aegis_entry disk[8], out[20];
    uint32_t n;

    aegis__log_init(&l, NULL);
    fill(&l);
    ASSERT_OK(aegis__log_commit(&l, 20));
    aegis__log_set_cache_max(&l, 5 * REC(10));
    aegis__log_evict(&l, 20);
    for (int i = 0; i < 8; i++) { /* What the storage holds for 8..15. */
        aegis_index idx = 8 + (aegis_index)i;

        disk[i] = (struct aegis_entry){.index = idx, .term = idx <= 12 ? 2 : 4,
                                       .type = AEGIS_ENTRY_COMMAND};
        disk[i].buf = aegis__buf_create(NULL, 10);
        memset(disk[i].buf->data, (int)idx, 10);
    }
    /* A term the log does not know for that index, a gap, or past the disk region. */
    disk[2].term = 3;
    ASSERT_ERR(aegis__log_window_set(&l, disk, 8), AEGIS_ECORRUPT);
    disk[2].term = 2;
    disk[3].index = 99;
    ASSERT_ERR(aegis__log_window_set(&l, disk, 8), AEGIS_ECORRUPT);
    disk[3].index = 11;
    ASSERT_OK(aegis__log_window_set(&l, disk + 7, 1)); /* 15: on disk. */
    ASSERT_TRUE(aegis__log_in_window(&l, 15));
    ASSERT_OK(aegis__log_window_set(&l, disk, 8));
    ASSERT_FALSE(aegis__log_in_window(&l, 7));
    ASSERT_TRUE(aegis__log_on_disk(&l, 7));
    ASSERT_FALSE(aegis__log_on_disk(&l, 8));
    ASSERT_EQ_U64(disk[0].buf->refs, 2);
    /* A range runs from the window into the cache without a seam. */
    n = aegis__log_range(&l, 10, 20, UINT64_MAX, out);
    ASSERT_EQ_U64(n, 11);
    for (uint32_t i = 0; i < n; i++) {
        ASSERT_EQ_U64(out[i].index, 10 + i);
        ASSERT_EQ_U64(aegis__entry_data(&out[i])[0], (uint8_t)(10 + i));
        aegis__entry_unref(&out[i]);
    }
    /* Compaction past the window drops it and its references. */
    ASSERT_OK(aegis__log_compact(&l, 15));
    ASSERT_EQ_U64(disk[0].buf->refs, 1);
    ASSERT_FALSE(aegis__log_in_window(&l, 15));
    for (int i = 0; i < 8; i++) {
        aegis__entry_unref(&disk[i]);
    }
    aegis__log_close(&l);
    return TEST_PASS;
}

/* Cluster scenarios: 3 nodes, a cache of about 10 entries, snapshots every 20. */
static void cache_config(struct aegis_raft_config *cfg)
{
    cl_default_config(cfg);
    cfg->snapshot_threshold = 20;
    cfg->log_cache_bytes = 10 * REC(8);
}

static uint32_t chunks_seen;

static bool count_chunks(struct cluster *c, const struct aegis_msg *m)
{
    (void)c;
    chunks_seen += m->type == AEGIS_MSG_SNAPSHOT_REQ ? 1u : 0u;
    return false;
}

/* Take a snapshot on @id at its applied index. */
static void snapshot_at_applied(struct cluster *c, aegis_node_id id)
{
    struct cl_node *nd = &c->nodes[id];
    struct aegis_snapshot_meta meta = {.index = nd->applied_index};
    struct aegis_buf *data = aegis__buf_from(NULL, "state", 5);

    meta.term = nd->applied[nd->applied_count - 1].term;
    if (aegis__raft_conf_at(nd->r, meta.index, &meta.conf) != 0 ||
        aegis__raft_snapshot_taken(nd->r, &meta, data->len) != 0) {
        cl_die("snapshot");
    }
    aegis__snapshot_mem_set(&nd->mem, &meta, data); /* snap-install: the source's. */
    aegis__buf_unref(data);
    nd->snapshot_wanted = false;
}

/* Elect 1, cut 3 off, write @count commands of 8 bytes with a snapshot every 20. */
static struct cluster *lagging_three(uint32_t count)
{
    struct aegis_raft_config cfg;
    struct cluster *c;
    char text[16];

    cache_config(&cfg);
    c = cl_new(3, &cfg);
    if (!cl_elect(c, 1)) {
        cl_die("elect");
    }
    cl_isolate(c, 3);
    for (uint32_t i = 0; i < count; i++) {
        snprintf(text, sizeof(text), "v%07u", i);
        if (cl_propose(c, 1, text, NULL) != 0) {
            cl_die("propose");
        }
        cl_settle(c);
        if (c->nodes[1].snapshot_wanted) {
            snapshot_at_applied(c, 1);
        }
    }
    return c;
}

/* Whether node @id applied every command v0000000..v<count - 1>, in order. */
static bool applied_all(struct cluster *c, aegis_node_id id, uint32_t count)
{
    struct cl_node *nd = &c->nodes[id];
    uint32_t k = 0;
    char text[16];

    for (size_t i = 0; i < nd->applied_count && k < count; i++) {
        if (nd->applied[i].type != AEGIS_ENTRY_COMMAND) {
            continue;
        }
        snprintf(text, sizeof(text), "v%07u", k);
        if (aegis__entry_len(&nd->applied[i]) != 8 ||
            memcmp(aegis__entry_data(&nd->applied[i]), text, 8) != 0) {
            return false;
        }
        k++;
    }
    return k == count;
}

TEST(log_cache, lagging_follower_catches_up_from_disk_not_snapshot)
{
    struct cluster *c = lagging_three(200);
    struct aegis_raft_log_stats st;

    /* The leader took snapshots and keeps ~10 entries cached: the rest is on disk. */
    aegis__raft_log_stats(cl_r(c, 1), &st);
    ASSERT_TRUE(c->nodes[1].snap_meta.index == 0); /* (Its own durable copy: none.) */
    ASSERT_TRUE(st.cache_bytes <= 10 * REC(8));
    ASSERT_EQ_U64(st.first_index, 1);
    ASSERT_TRUE(st.cache_first > 150);
    ASSERT_EQ_U64(st.sent_from_disk, 0);
    aegis__raft_log_stats(cl_r(c, 3), &st);
    ASSERT_TRUE(st.cache_first <= 2); /* Node 3 holds the first entry at most. */
    chunks_seen = 0;
    c->filter = count_chunks;
    cl_heal(c);
    cl_tick_all(c, 30);
    ASSERT_TRUE(applied_all(c, 3, 200));
    ASSERT_EQ_U64(chunks_seen, 0); /* No snapshot: entries came back from disk. */
    ASSERT_EQ_U64(c->nodes[3].snapshot_restored, 0);
    aegis__raft_log_stats(cl_r(c, 1), &st);
    ASSERT_TRUE(st.sent_from_disk >= 180);
    ASSERT_TRUE(st.fetches >= 1);
    ASSERT_EQ_U64(st.fetch_errors, 0);
    ASSERT_TRUE(c->nodes[1].fetches >= 1);
    cl_free(c);
    return TEST_PASS;
}

TEST(log_cache, fetch_answered_later_resumes_sending)
{
    struct cluster *c = lagging_three(100);
    struct aegis_raft_log_stats st;

    c->nodes[1].fetch_defer = true;
    cl_heal(c);
    cl_tick_all(c, 5);
    ASSERT_TRUE(c->nodes[1].fetch.from != 0); /* Asked, and waiting ("pending"). */
    ASSERT_FALSE(applied_all(c, 3, 100));
    aegis__raft_log_stats(cl_r(c, 1), &st);
    ASSERT_EQ_U64(st.sent_from_disk, 0);
    /* A stale answer (another start index) changes nothing. */
    ASSERT_OK(aegis__raft_fetched(cl_r(c, 1), c->nodes[1].fetch.from + 1, NULL, 0, 0));
    c->nodes[1].fetch_defer = false;
    cl_answer_fetch(c, 1);
    cl_settle(c);
    cl_tick_all(c, 20);
    ASSERT_TRUE(applied_all(c, 3, 100));
    cl_free(c);
    return TEST_PASS;
}

TEST(log_cache, never_evicts_what_is_not_durable_or_not_applied)
{
    struct aegis_raft_config cfg;
    struct aegis_raft_log_stats st;
    struct aegis_rng rng;
    struct aegis_raft_restore rs = {.bootstrap = {.count = 1, .members = {{1, 1}}}};
    struct aegis_raft *r;
    struct aegis_ready rd;
    struct aegis_buf *b = aegis__buf_create(NULL, 8);

    cache_config(&cfg);
    cfg.id = 1;
    memset(b->data, 'x', 8);
    aegis__rng_seed(&rng, 1);
    ASSERT_OK(aegis__raft_create(&r, &cfg, &rs, &rng, NULL, NULL));
    aegis__raft_campaign(r);
    for (int i = 0; i < 50; i++) {
        ASSERT_OK(aegis__raft_propose(r, AEGIS_ENTRY_COMMAND, b, NULL));
    }
    aegis__raft_ready(r, &rd); /* Handed out to persist, not durable yet. */
    ASSERT_EQ_U64(rd.entries_count, 51);
    aegis__raft_advance(r, &rd);
    aegis__raft_log_stats(r, &st);
    ASSERT_EQ_U64(st.cache_first, 1); /* Nothing evicted, 51 entries over the bound. */
    ASSERT_TRUE(st.cache_bytes > cfg.log_cache_bytes);
    aegis__raft_persisted(r, 51, 1); /* Durable and committed, but not handed to apply. */
    ASSERT_EQ_U64(aegis__raft_commit_index(r), 51);
    aegis__raft_log_stats(r, &st);
    ASSERT_EQ_U64(st.cache_first, 1);
    aegis__raft_ready(r, &rd); /* Handed to apply: the ready holds its references. */
    ASSERT_EQ_U64(rd.committed_count, 51);
    aegis__raft_log_stats(r, &st);
    ASSERT_TRUE(st.cache_bytes <= cfg.log_cache_bytes);
    ASSERT_EQ_U64(aegis__entry_data(&rd.committed[1])[0], 'x'); /* Still readable. */
    aegis__raft_advance(r, &rd);
    aegis__buf_unref(b);
    aegis__raft_destroy(r);
    return TEST_PASS;
}

TEST(log_cache, follower_behind_retention_gets_a_snapshot)
{
    struct cluster *c = lagging_three(100);
    aegis_index snap = aegis__raft_commit_index(cl_r(c, 1));

    /* The storage's retention dropped everything up to the latest snapshot. */
    snapshot_at_applied(c, 1);
    aegis__raft_compact(cl_r(c, 1), AEGIS_INDEX_MAX);
    ASSERT_EQ_U64(aegis__raft_term_at(cl_r(c, 1), snap - 1), 0);
    chunks_seen = 0;
    c->filter = count_chunks;
    cl_heal(c);
    cl_tick_all(c, 30);
    ASSERT_TRUE(chunks_seen > 0);
    ASSERT_EQ_U64(c->nodes[3].snapshot_restored, snap);
    ASSERT_EQ_U64(c->nodes[1].fetches, 0);
    cl_free(c);
    return TEST_PASS;
}

TEST(log_cache, failed_read_falls_back_to_the_snapshot)
{
    struct cluster *c = lagging_three(100);
    struct aegis_raft_log_stats st;
    aegis_index snap;

    snapshot_at_applied(c, 1);
    snap = c->nodes[1].applied_index;
    c->nodes[1].fetch_fail = AEGIS_ECORRUPT; /* The segment is bad. */
    chunks_seen = 0;
    c->filter = count_chunks;
    cl_heal(c);
    cl_tick_all(c, 30);
    aegis__raft_log_stats(cl_r(c, 1), &st);
    ASSERT_EQ_U64(st.fetch_errors, 1);
    ASSERT_TRUE(st.first_index > 1); /* Compacted up to the cache (below the snapshot). */
    ASSERT_EQ_U64(st.first_index, st.cache_first);
    ASSERT_TRUE(chunks_seen > 0);
    ASSERT_EQ_U64(c->nodes[3].snapshot_restored, snap);
    cl_free(c);
    return TEST_PASS;
}

TEST(log_cache, entries_that_do_not_match_are_refused)
{
    struct cluster *c = lagging_three(60);
    struct aegis_entry bad = {.index = 0, .term = 99, .type = AEGIS_ENTRY_COMMAND};
    struct aegis_raft_log_stats st;

    c->nodes[1].fetch_defer = true;
    cl_heal(c);
    cl_tick_all(c, 3);
    ASSERT_TRUE(c->nodes[1].fetch.from != 0);
    bad.index = c->nodes[1].fetch.from;
    ASSERT_ERR(aegis__raft_fetched(cl_r(c, 1), bad.index, &bad, 1, 0), AEGIS_ECORRUPT);
    aegis__raft_log_stats(cl_r(c, 1), &st);
    ASSERT_EQ_U64(st.fetch_errors, 1);
    ASSERT_EQ_U64(st.sent_from_disk, 0);
    cl_free(c);
    return TEST_PASS;
}
