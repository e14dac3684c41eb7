/* SPDX-License-Identifier: MIT */
/* Tests of the data directory's guard rails (pipeline/datadir.h) and of what the node
 * does with them at create: the identity is written once and checked (another --id or
 * --cluster-id is refused naming both values), a second user of a live directory is
 * refused naming the holder's pid, permissions are 0700/0600, the directory's freshness is
 * known, and a hard state that fell back to its older slot makes the node withhold its
 * vote. Only aegis_node_create is used (no thread, no socket). */
#include <aegis/aegis.h>
#include <aegis/error.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/test.h"
#include "pipeline/datadir.h"
#include "pipeline/hardstate.h"
#include "pipeline/logging.h"
#include "pipeline/node_int.h"
#include "util.h"

static mode_t mode_of(const char *dir, const char *name)
{
    char path[4096];
    struct stat st;

    snprintf(path, sizeof(path), "%s%s%s", dir, name[0] != '\0' ? "/" : "", name);
    if (stat(path, &st) != 0) {
        return 0;
    }
    return st.st_mode & 0777;
}

TEST(datadir, identity_written_once_and_checked)
{
    struct aegis_datadir d;
    uint8_t uuid[16];
    char dir[64], sub[128], pid[32];
    uint8_t *buf;
    size_t len;

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    snprintf(sub, sizeof(sub), "%s/data", dir);
    ASSERT_OK(aegis__datadir_open(&d, sub, 7, 2, NULL));
    ASSERT_TRUE(d.fresh);
    memcpy(uuid, d.id.uuid, sizeof(uuid));
    ASSERT_EQ_U64(mode_of(sub, ""), 0700);
    ASSERT_EQ_U64(mode_of(sub, "identity"), 0600);
    ASSERT_EQ_U64(mode_of(sub, "lock"), 0600);
    snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    {
        char path[256];

        snprintf(path, sizeof(path), "%s/lock", sub);
        ASSERT_OK(util_read(path, &buf, &len));
        ASSERT_EQ_U64(len, strlen(pid));
        ASSERT_TRUE(memcmp(buf, pid, len) == 0);
        free(buf);
    }
    aegis__datadir_close(&d);
    /* Same ids: accepted, not fresh any more, the same UUID (written once). */
    ASSERT_OK(aegis__datadir_open(&d, sub, 7, 2, NULL));
    ASSERT_FALSE(d.fresh);
    ASSERT_TRUE(memcmp(uuid, d.id.uuid, sizeof(uuid)) == 0);
    aegis__datadir_close(&d);
    /* Another node id, another cluster id: refused, naming both values. */
    ASSERT_ERR(aegis__datadir_open(&d, sub, 7, 3, NULL), AEGIS_EIDENTITY);
    ASSERT_TRUE(strstr(d.msg, "node 2 of cluster 7") != NULL);
    ASSERT_TRUE(strstr(d.msg, "--id 3 --cluster-id 7") != NULL);
    ASSERT_ERR(aegis__datadir_open(&d, sub, 8, 2, NULL), AEGIS_EIDENTITY);
    ASSERT_TRUE(strstr(d.msg, "--id 2 --cluster-id 8") != NULL);
    /* The refusal released the lock. */
    ASSERT_OK(aegis__datadir_open(&d, sub, 7, 2, NULL));
    aegis__datadir_close(&d);
    /* A damaged identity is refused, not rewritten. */
    {
        char path[256];

        snprintf(path, sizeof(path), "%s/identity", sub);
        ASSERT_OK(util_read(path, &buf, &len));
        ASSERT_EQ_U64(len, AEGIS_IDENTITY_BYTES);
        buf[17] ^= 1;
        ASSERT_OK(util_write(path, buf, len));
        free(buf);
        ASSERT_ERR(aegis__datadir_open(&d, sub, 7, 2, NULL), AEGIS_ECORRUPT);
        ASSERT_TRUE(strstr(d.msg, "identity is damaged") != NULL);
    }
    util_rmrf(dir);
    return TEST_PASS;
}

TEST(datadir, identity_decode_rejects_garbage)
{
    struct aegis_identity id = {.cluster_id = 1, .node_id = 9}, got;
    uint8_t buf[AEGIS_IDENTITY_BYTES];

    memset(id.uuid, 0xab, sizeof(id.uuid));
    aegis__identity_encode(&id, buf);
    ASSERT_OK(aegis__identity_decode(buf, sizeof(buf), &got));
    ASSERT_EQ_U64(got.node_id, 9);
    ASSERT_ERR(aegis__identity_decode(buf, sizeof(buf) - 1, &got), AEGIS_ECORRUPT);
    for (size_t i = 0; i < sizeof(buf); i++) {
        for (int bit = 0; bit < 8; bit++) {
            buf[i] ^= (uint8_t)(1u << bit);
            ASSERT_ERR(aegis__identity_decode(buf, sizeof(buf), &got), AEGIS_ECORRUPT);
            buf[i] ^= (uint8_t)(1u << bit);
        }
    }
    return TEST_PASS;
}

TEST(datadir, lock_held_names_the_pid)
{
    struct aegis_datadir a, b;
    char dir[64], want[64];

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    ASSERT_OK(aegis__datadir_open(&a, dir, 1, 1, NULL));
    /* flock belongs to the open file description: a second open conflicts even in the
     * same process, as another process would. */
    ASSERT_ERR(aegis__datadir_open(&b, dir, 1, 1, NULL), AEGIS_EBUSY);
    snprintf(want, sizeof(want), "(pid %ld,", (long)getpid());
    ASSERT_TRUE(strstr(b.msg, want) != NULL);
    ASSERT_TRUE(strstr(b.msg, dir) != NULL);
    aegis__datadir_close(&a);
    ASSERT_OK(aegis__datadir_open(&b, dir, 1, 1, NULL));
    aegis__datadir_close(&b);
    util_rmrf(dir);
    return TEST_PASS;
}

static void node_config(struct aegis_node_config *cfg, const char *dir, aegis_node_id id)
{
    aegis_node_config_init(cfg);
    cfg->id = id;
    cfg->peers_count = 3;
    for (uint32_t p = 0; p < 3; p++) {
        cfg->peers[p].id = p + 1;
        snprintf(cfg->peers[p].host, sizeof(cfg->peers[p].host), "127.0.0.1");
        cfg->peers[p].port = (uint16_t)(40001 + p); /* Never bound: create only. */
    }
    cfg->data_dir = dir;
    cfg->segment_bytes = 1u << 20;
}

TEST(datadir, node_refuses_foreign_or_locked_directory)
{
    struct aegis_node_config cfg;
    struct aegis_node *n = NULL, *m = NULL;
    char dir[64];

    aegis__log_setup(AEGIS_LOG_ERROR, 0);
    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    node_config(&cfg, dir, 2);
    ASSERT_OK(aegis_node_create(&n, &cfg));
    ASSERT_TRUE(n->datadir.fresh);
    /* A second node on the live directory. */
    ASSERT_ERR(aegis_node_create(&m, &cfg), AEGIS_EBUSY);
    aegis_node_destroy(n);
    /* Restarted under its own id: accepted, not fresh. */
    ASSERT_OK(aegis_node_create(&n, &cfg));
    ASSERT_FALSE(n->datadir.fresh);
    aegis_node_destroy(n);
    /* Started as node 3: refused. */
    node_config(&cfg, dir, 3);
    ASSERT_ERR(aegis_node_create(&n, &cfg), AEGIS_EIDENTITY);
    node_config(&cfg, dir, 2);
    cfg.cluster_id = 5;
    ASSERT_ERR(aegis_node_create(&n, &cfg), AEGIS_EIDENTITY);
    util_rmrf(dir);
    return TEST_PASS;
}

/* The newer hard state slot damaged: the node recovers the older term and vote and
 * withholds its vote (engine/raft_election.c) rather than risk giving one twice. */
TEST(datadir, node_withholds_votes_after_hard_state_fallback)
{
    struct aegis_node_config cfg;
    struct aegis_node *n = NULL;
    struct aegis_hardstate_file h;
    struct aegis_hard_state a = {.term = 5, .vote = 2}, b = {.term = 6, .vote = 3}, got;
    char dir[64], path[4096];
    uint8_t *buf;
    size_t len;

    aegis__log_setup(AEGIS_LOG_ERROR, 0);
    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    node_config(&cfg, dir, 1);
    ASSERT_OK(aegis_node_create(&n, &cfg));
    ASSERT_FALSE(aegis__raft_votes_withheld(n->raft));
    aegis_node_destroy(n);
    ASSERT_OK(aegis__hardstate_open(&h, dir, NULL, NULL, &got));
    ASSERT_OK(aegis__hardstate_write(&h, &a)); /* Slot 1. */
    ASSERT_OK(aegis__hardstate_write(&h, &b)); /* Slot 0, newer. */
    aegis__hardstate_close(&h);
    ASSERT_OK(aegis_node_create(&n, &cfg));
    ASSERT_EQ_U64(aegis__raft_term(n->raft), 6);
    ASSERT_FALSE(aegis__raft_votes_withheld(n->raft));
    aegis_node_destroy(n);
    snprintf(path, sizeof(path), "%s/hardstate", dir);
    ASSERT_OK(util_read(path, &buf, &len));
    buf[16] ^= 0x01; /* b's term. */
    ASSERT_OK(util_write(path, buf, len));
    free(buf);
    ASSERT_OK(aegis_node_create(&n, &cfg));
    ASSERT_EQ_U64(aegis__raft_term(n->raft), 5);
    ASSERT_TRUE(aegis__raft_votes_withheld(n->raft));
    aegis_node_destroy(n);
    util_rmrf(dir);
    return TEST_PASS;
}
