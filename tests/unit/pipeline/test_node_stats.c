/* SPDX-License-Identifier: MIT */
/* Tests of the embedding API's observability (issue 18): aegis_node_stats() copies the
 * counters and stage latencies behind INFO into the caller's struct, never past the size
 * the caller names (an older, shorter struct gets its prefix); aegis_set_log_fn and
 * aegis_set_log_level route the library's lines ("time level thread event key=value")
 * to the embedder instead of stderr. One node in this process, a group of one. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <aegis/aegis.h>

#include "lib/test.h"
#include "pipeline/logging.h"
#include "util.h"

#define WRITES 200u

/* The lines the callback took (any node thread calls it). */
static struct {
    pthread_mutex_t lock;
    char text[16384];
    size_t len;
    int min_level;
} seen = {.lock = PTHREAD_MUTEX_INITIALIZER, .min_level = 99};

static void take_line(void *data, int level, const char *line)
{
    size_t n = strlen(line);

    (void)data;
    pthread_mutex_lock(&seen.lock);
    if (seen.len + n + 2 < sizeof(seen.text)) {
        memcpy(seen.text + seen.len, line, n);
        seen.len += n;
        seen.text[seen.len++] = '\n';
        seen.text[seen.len] = '\0';
    }
    seen.min_level = level < seen.min_level ? level : seen.min_level;
    pthread_mutex_unlock(&seen.lock);
}

static bool seen_has(const char *s)
{
    bool has;

    pthread_mutex_lock(&seen.lock);
    has = strstr(seen.text, s) != NULL;
    pthread_mutex_unlock(&seen.lock);
    return has;
}

static int start_one(struct aegis_node **out, char *dir)
{
    struct aegis_node_config cfg;
    int rv;

    aegis_node_config_init(&cfg);
    cfg.id = 1;
    cfg.peers_count = 1;
    cfg.peers[0].id = 1;
    snprintf(cfg.peers[0].host, sizeof(cfg.peers[0].host), "127.0.0.1");
    cfg.peers[0].port = util_free_port();
    cfg.data_dir = dir;
    cfg.fsync = AEGIS_FSYNC_NONE;
    rv = aegis_node_create(out, &cfg);
    if (rv == 0) {
        rv = aegis_node_start(*out);
    }
    return rv;
}

/* Set WRITES keys through the API (leader: the node itself, once elected). */
static int write_all(struct aegis_node *n)
{
    char cmd[64], key[16], val[16];
    struct aegis_result res;

    for (uint32_t i = 0; i < WRITES; i++) {
        int kl = snprintf(key, sizeof(key), "k%u", i), vl = snprintf(val, sizeof(val), "v%u", i);
        int64_t len = aegis_cmd_set(cmd, sizeof(cmd), key, (size_t)kl, val, (size_t)vl);
        int rv;

        if (len < 0) {
            return (int)len;
        }
        /* Bounded: a single-node group elects itself within its election timeout. */
        for (int tries = 0; tries < 500; tries++) {
            rv = aegis_node_propose_sync(n, cmd, (size_t)len, &res, NULL, 0);
            if (rv == 0 && res.status == 0) {
                break;
            }
            usleep(10000);
        }
        if (rv != 0 || res.status != 0) {
            return rv != 0 ? rv : res.status;
        }
    }
    return 0;
}

TEST(node_stats, counters_and_stages_through_the_api_and_log_lines_to_the_callback)
{
    struct aegis_node *n = NULL;
    struct aegis_stats st, old;
    char dir[64];

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    aegis_set_log_level(AEGIS_LOGLEVEL_INFO);
    aegis_set_log_fn(take_line, NULL);
    ASSERT_OK(start_one(&n, dir));
    ASSERT_OK(write_all(n));

    /* Too small to hold even the header: refused. */
    st.size = 4;
    ASSERT_ERR(aegis_node_stats(n, &st), AEGIS_EINVAL);

    memset(&st, 0xee, sizeof(st));
    st.size = sizeof(st);
    ASSERT_OK(aegis_node_stats(n, &st));
    ASSERT_EQ_U64(st.size, sizeof(st));
    ASSERT_EQ_U64(st.reserved, 0);
    ASSERT_TRUE(st.proposals >= WRITES);
    ASSERT_TRUE(st.apply_entries >= WRITES);     /* Plus the leader's no-op. */
    ASSERT_TRUE(st.log_entries >= WRITES);
    ASSERT_TRUE(st.log_batches >= 1);
    ASSERT_EQ_U64(st.clients_opened, 0);         /* No RESP server in this process. */
    ASSERT_TRUE(st.stages[2].count >= 1);        /* propose_commit. */
    ASSERT_TRUE(st.stages[2].p50_ns <= st.stages[2].p99_ns);
    ASSERT_TRUE(st.stages[2].p99_ns <= st.stages[2].max_ns);

    /* A caller built against an older, shorter struct (up to log_entries): its prefix is
     * filled, not one byte past it. */
    memset(&old, 0xee, sizeof(old));
    old.size = (uint32_t)offsetof(struct aegis_stats, log_bytes);
    ASSERT_OK(aegis_node_stats(n, &old));
    ASSERT_EQ_U64(old.size, offsetof(struct aegis_stats, log_bytes));
    ASSERT_TRUE(old.log_entries >= WRITES);
    ASSERT_EQ_U64(old.log_bytes, 0xeeeeeeeeeeeeeeeeull);
    ASSERT_EQ_U64(old.proposals, 0xeeeeeeeeeeeeeeeeull);

    /* Lines went to the callback, one event per line with named fields. */
    ASSERT_TRUE(seen_has(" INFO aegis-raft became_leader node=1 term=1 index="));
    ASSERT_TRUE(seen_has(" election_start node=1 term=1 pre_vote="));
    ASSERT_TRUE(seen.min_level >= AEGIS_LOGLEVEL_INFO); /* Nothing below the level. */
    ASSERT_OK(aegis_node_stop(n));
    aegis_node_destroy(n);
    aegis_set_log_fn(NULL, NULL);
    util_rmrf(dir);
    return TEST_PASS;
}

/* The level gates lines before they are formatted; the callback sees none below it. */
TEST(node_stats, log_level_filters_callback_lines)
{
    seen.len = 0;
    seen.text[0] = '\0';
    aegis_set_log_fn(take_line, NULL);
    aegis_set_log_level(AEGIS_LOGLEVEL_WARN);
    AEGIS_LOG(AEGIS_LOG_INFO, "below the level");
    AEGIS_LOG_EVENT(AEGIS_LOG_WARN, "probe", "key=%d", 7);
    AEGIS_LOG(AEGIS_LOG_ERROR, "a \"quoted\" text");
    aegis_set_log_level(AEGIS_LOGLEVEL_OFF);
    AEGIS_LOG(AEGIS_LOG_ERROR, "off");
    aegis_set_log_fn(NULL, NULL);
    aegis_set_log_level(AEGIS_LOGLEVEL_INFO);
    ASSERT_FALSE(seen_has("below the level"));
    ASSERT_FALSE(seen_has("off"));
    ASSERT_TRUE(seen_has(" WARN "));
    ASSERT_TRUE(seen_has(" probe node=0 key=7 src=test_node_stats.c:"));
    ASSERT_TRUE(seen_has(" ERROR "));
    ASSERT_TRUE(seen_has(" message node=0 text=\"a \\\"quoted\\\" text\" src="));
    return TEST_PASS;
}

/* A Raft event without a row in the table still names its numbers (a=, b=); the known
 * ones have names, e.g. "conf" (it was "conf 7 4"). */
TEST(node_stats, raft_events_have_named_fields)
{
    const char *a, *b;

    aegis__log_raft_fields("conf", &a, &b);
    ASSERT_STR_EQ(a, "index");
    ASSERT_STR_EQ(b, "members");
    aegis__log_raft_fields("step_down", &a, &b);
    ASSERT_STR_EQ(a, "term");
    ASSERT_STR_EQ(b, "leader");
    aegis__log_raft_fields("no_such_event", &a, &b);
    ASSERT_TRUE(a == NULL && b == NULL);
    seen.len = 0;
    seen.text[0] = '\0';
    aegis_set_log_fn(take_line, NULL);
    aegis__log_raft_event(3, "conf", 7, 4);
    aegis__log_raft_event(3, "mystery", 1, 2);
    aegis_set_log_fn(NULL, NULL);
    ASSERT_TRUE(seen_has(" conf node=3 index=7 members=4\n"));
    ASSERT_TRUE(seen_has(" mystery node=3 a=1 b=2\n"));
    return TEST_PASS;
}
