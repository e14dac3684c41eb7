/* SPDX-License-Identifier: MIT */
/* The node runtime end to end: three nodes in one process over real loopback TCP, driven
 * only through the embedding API (include/aegis/aegis.h) with the built-in KV.
 *
 *   node.replicate_failover_restart  elect; replicate AEGIS_NODE_COMMANDS (default 100000,
 *                                    20000 under TSan)
 *                                    SETs with async proposals, at most WINDOW in flight;
 *                                    every node applies the same index and reads back the
 *                                    same values; stop the leader; another is elected and
 *                                    takes writes; restart the old leader from its data
 *                                    directory: it catches up and reads the new values.
 *   node.snapshot_catchup            a follower is stopped while the leader writes far past
 *                                    its compaction point (small snapshot_threshold); once
 *                                    restarted it must catch up by installing a snapshot.
 *   node.follower_down_bounded       with one follower stopped the leader keeps taking
 *                                    writes and its memory stays bounded (see the test).
 *   node.follower_paused_bounded     the same with a follower that accepts the connection,
 *                                    completes the hello and then never reads (a SIGSTOPped
 *                                    process, as the leader sees it): TCP backpressure.
 *
 * Ports are picked at run time (bind port 0, read it back, close). Data directories live
 * under /tmp and are removed. AEGIS_NODE_COMMANDS overrides the command count of the first
 * test; AEGIS_NODE_LONG=1 makes the memory tests write five times as much and idle 30 s
 * (about 40 s each). Each test takes a few seconds in a debug build. Internal headers are used only to encode KV commands
 * and, after a node is stopped, to read its counters. */
#include <arpa/inet.h>
#include <malloc.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <aegis/aegis.h>

#include "engine/kv.h"
#include "lib/test.h"
#include "pipeline/logging.h"
#include "pipeline/node_int.h"
#include "util.h"

#define NODES 3
#define WINDOW 1024u       /* Async proposals in flight from the test. */
#define KEYS 1000u         /* SET k<i % KEYS>: the KV stays small, the log grows. */
#define VALUE_MAX 1100u
#define WAIT_MS 20000u     /* Upper bound on any single wait; tests normally take far less. */

/* ThreadSanitizer runs these threads ~15x slower: the same paths with fewer writes keep
 * the executable near 30 s there (CI material). */
#if defined(__SANITIZE_THREAD__)
#define COMMANDS_DEFAULT 20000u
#define PHASE_DEFAULT 10000u
#else
#define COMMANDS_DEFAULT 100000u
#define PHASE_DEFAULT 20000u
#endif

/* ---- Small utilities. ---- */

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static uint64_t now_ms(void)
{
    return aegis__now_ns() / 1000000u;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *s = getenv(name);

    return s != NULL && s[0] != '\0' ? strtoull(s, NULL, 10) : dflt;
}

static bool long_mode(void)
{
    return env_u64("AEGIS_NODE_LONG", 0) != 0;
}

/* Bytes the process has allocated with malloc (not RSS: immune to fragmentation and to
 * pages the allocator keeps). 0 when the allocator cannot tell (sanitizers). */
static uint64_t heap_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();

    return mi.uordblks + mi.hblkhd;
}

/* The value SET by command @i: "v<i>" padded with dots to @len bytes. */
static size_t value_of(uint64_t i, uint32_t len, char *out)
{
    int n = snprintf(out, VALUE_MAX, "v%llu", (unsigned long long)i);

    for (uint32_t k = (uint32_t)n; k < len; k++) {
        out[k] = '.';
    }
    return len > (uint32_t)n ? len : (size_t)n;
}

static size_t key_of(uint64_t i, char *out)
{
    return (size_t)snprintf(out, 16, "k%04u", (unsigned)(i % KEYS));
}

/* ---- A cluster of three nodes in this process. ---- */

struct tcluster {
    struct aegis_node *n[NODES];
    char dir[NODES][64];
    uint16_t port[NODES];
    uint64_t snapshot_threshold;
    bool log_set; /* Log retention: use the two below instead of the defaults. */
    uint64_t log_cache_bytes;
    uint64_t log_retention_bytes;
};

static int tc_start(struct tcluster *c, int i)
{
    struct aegis_node_config cfg;
    int rv;

    aegis_node_config_init(&cfg);
    cfg.id = (aegis_node_id)(i + 1);
    cfg.peers_count = NODES;
    for (int p = 0; p < NODES; p++) {
        cfg.peers[p].id = (aegis_node_id)(p + 1);
        snprintf(cfg.peers[p].host, sizeof(cfg.peers[p].host), "127.0.0.1");
        cfg.peers[p].port = c->port[p];
    }
    cfg.data_dir = c->dir[i];
    cfg.tick_ms = 10;
    cfg.election_ticks = 40; /* 400-800 ms: no spurious elections on a loaded machine. */
    cfg.heartbeat_ticks = 4;
    cfg.snapshot_threshold = c->snapshot_threshold;
    cfg.segment_bytes = 4u << 20; /* Small segments: compaction can delete whole ones. */
    if (c->log_set) {
        cfg.log_cache_bytes = c->log_cache_bytes;
        cfg.log_retention_bytes = c->log_retention_bytes;
    }
    rv = aegis_node_create(&c->n[i], &cfg);
    if (rv != 0) {
        c->n[i] = NULL;
        return rv;
    }
    rv = aegis_node_start(c->n[i]);
    if (rv != 0) {
        aegis_node_destroy(c->n[i]);
        c->n[i] = NULL;
    }
    return rv;
}

/* Stop (gracefully) and free node @i; its data directory stays. */
static int tc_stop(struct tcluster *c, int i)
{
    int rv = aegis_node_stop(c->n[i]);

    aegis_node_destroy(c->n[i]);
    c->n[i] = NULL;
    return rv;
}

static int tc_init(struct tcluster *c, uint64_t snapshot_threshold)
{
    memset(c, 0, sizeof(*c));
    c->snapshot_threshold = snapshot_threshold;
    aegis__log_setup(AEGIS_LOG_WARN, 0);
    for (int i = 0; i < NODES; i++) {
        c->port[i] = util_free_port();
        if (c->port[i] == 0 || util_tmpdir(c->dir[i]) == NULL) {
            return AEGIS_EIO;
        }
    }
    return 0;
}

static void tc_close(struct tcluster *c)
{
    for (int i = 0; i < NODES; i++) {
        if (c->n[i] != NULL) {
            tc_stop(c, i);
        }
        util_rmrf(c->dir[i]);
    }
}

static struct aegis_status tc_status(struct tcluster *c, int i)
{
    struct aegis_status s;

    aegis_node_status(c->n[i], &s);
    return s;
}

/* Wait until one running node is leader and every running node names it. Returns its
 * position or -1 after WAIT_MS. */
static int tc_wait_leader(struct tcluster *c)
{
    uint64_t deadline = now_ms() + WAIT_MS;

    while (now_ms() < deadline) {
        int leader = -1;
        bool agree = true;

        for (int i = 0; i < NODES; i++) {
            if (c->n[i] != NULL && tc_status(c, i).role == AEGIS_NODE_LEADER) {
                leader = i;
            }
        }
        for (int i = 0; i < NODES && leader >= 0; i++) {
            if (c->n[i] != NULL && tc_status(c, i).leader != (aegis_node_id)(leader + 1)) {
                agree = false;
            }
        }
        if (leader >= 0 && agree) {
            return leader;
        }
        sleep_ms(10);
    }
    return -1;
}

/* Wait until the leader's commit index is at least @index and every running node has
 * applied it (call with no writes in flight). */
static bool tc_wait_converged(struct tcluster *c, int leader, aegis_index index)
{
    uint64_t deadline = now_ms() + WAIT_MS;

    while (now_ms() < deadline) {
        aegis_index commit = tc_status(c, leader).commit_index;
        bool all = commit >= index;

        for (int i = 0; i < NODES; i++) {
            if (c->n[i] != NULL && tc_status(c, i).applied_index != commit) {
                all = false;
            }
        }
        if (all) {
            return true;
        }
        sleep_ms(10);
    }
    return false;
}

/* Wait until node @i's status shows a commit index of at least @index (the status is a
 * copy the raft thread refreshes after each pass, so it may trail a completion). */
static bool tc_wait_commit(struct tcluster *c, int i, aegis_index index)
{
    uint64_t deadline = now_ms() + WAIT_MS;

    while (now_ms() < deadline) {
        if (tc_status(c, i).commit_index >= index) {
            return true;
        }
        sleep_ms(1);
    }
    return false;
}

/* ---- Load: async SETs with a bounded number in flight. ---- */

struct load {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint32_t inflight;
    uint64_t done;
    uint64_t failed;
    int first_err;
};

static void load_done(void *data, const struct aegis_result *res)
{
    struct load *l = data;

    pthread_mutex_lock(&l->lock);
    l->inflight--;
    l->done++;
    if (res->status != 0) {
        l->failed++;
        if (l->first_err == 0) {
            l->first_err = res->status;
        }
    }
    pthread_cond_signal(&l->cond);
    pthread_mutex_unlock(&l->lock);
}

/* SET k<i % KEYS> = value_of(i) for i in [@from, @to) through node @n. Returns 0, the
 * first error a completion reported, or a propose error. */
static int load_run(struct aegis_node *n, uint64_t from, uint64_t to, uint32_t value_len)
{
    struct load l = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    char key[16], value[VALUE_MAX];
    int rv = 0;

    for (uint64_t i = from; i < to && rv == 0; i++) {
        struct aegis_buf *cmd;
        size_t klen = key_of(i, key), vlen = value_of(i, value_len, value);

        pthread_mutex_lock(&l.lock);
        while (l.inflight >= WINDOW) {
            pthread_cond_wait(&l.cond, &l.lock);
        }
        l.inflight++;
        pthread_mutex_unlock(&l.lock);
        rv = aegis__kv_encode_set(NULL, key, klen, value, vlen, &cmd);
        AEGIS_ASSERT(rv == 0);
        while ((rv = aegis_node_propose(n, cmd->data, cmd->len, load_done, &l)) ==
               AEGIS_EFULL) {
            sleep_ms(1); /* Backpressure: the node has max_pending in flight already. */
        }
        aegis__buf_unref(cmd);
        if (rv != 0) {
            pthread_mutex_lock(&l.lock);
            l.inflight--;
            pthread_mutex_unlock(&l.lock);
        }
    }
    pthread_mutex_lock(&l.lock);
    while (l.inflight > 0) {
        pthread_cond_wait(&l.cond, &l.lock);
    }
    pthread_mutex_unlock(&l.lock);
    return rv != 0 ? rv : l.first_err;
}

/* ---- Reads: GET every key through node @n (ReadIndex) and compare. ---- */

struct got {
    struct reads *r;
    int status;
    size_t len;
    char value[VALUE_MAX];
};

struct reads {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint32_t pending;
};

static void read_done(void *data, const struct aegis_result *res)
{
    struct got *g = data;
    struct reads *r = g->r;

    g->status = res->status;
    g->len = res->value != NULL && res->value_len <= VALUE_MAX ? res->value_len : 0;
    if (g->len > 0) {
        memcpy(g->value, res->value, g->len);
    }
    pthread_mutex_lock(&r->lock);
    r->pending--;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

/* Return the number of keys whose value differs from the last of the @total SETs made
 * (commands 0..total-1), or -1 when a read failed. */
static int check_reads(struct aegis_node *n, uint64_t total, uint32_t value_len)
{
    static struct got got[KEYS];
    struct reads r = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER,
                      .pending = KEYS};
    int bad = 0;

    for (uint32_t k = 0; k < KEYS; k++) {
        struct aegis_buf *q;
        char key[16];
        size_t klen = key_of(k, key);
        int rv;

        got[k] = (struct got){.r = &r};
        rv = aegis__kv_encode_get(NULL, key, klen, &q);
        AEGIS_ASSERT(rv == 0);
        rv = aegis_node_read(n, q->data, q->len, read_done, &got[k]);
        aegis__buf_unref(q);
        if (rv != 0) {
            got[k].status = rv;
            pthread_mutex_lock(&r.lock);
            r.pending--;
            pthread_mutex_unlock(&r.lock);
        }
    }
    pthread_mutex_lock(&r.lock);
    while (r.pending > 0) {
        pthread_cond_wait(&r.cond, &r.lock);
    }
    pthread_mutex_unlock(&r.lock);
    for (uint32_t k = 0; k < KEYS; k++) {
        char want[VALUE_MAX];
        uint64_t last = total - 1 - ((total - 1 - k) % KEYS); /* Last i < total, i%KEYS==k. */
        size_t wlen;

        if (got[k].status != 0) {
            fprintf(stderr, "  read k%04u: %s\n", k, aegis_strerror(got[k].status));
            return -1;
        }
        if (total <= k) {
            bad += got[k].len != 0;
            continue;
        }
        wlen = value_of(last, value_len, want);
        if (got[k].len != wlen || memcmp(got[k].value, want, wlen) != 0) {
            bad++;
        }
    }
    return bad;
}

/* ---- Tests. ---- */

TEST(node, replicate_failover_restart)
{
    struct tcluster c;
    uint64_t commands = env_u64("AEGIS_NODE_COMMANDS", COMMANDS_DEFAULT), more = 5000, t0;
    struct aegis_status s;
    int leader, leader2, rv;

    ASSERT_OK(tc_init(&c, 100000));
    for (int i = 0; i < NODES; i++) {
        ASSERT_OK(tc_start(&c, i));
    }
    leader = tc_wait_leader(&c);
    ASSERT_TRUE(leader >= 0);

    t0 = now_ms();
    rv = load_run(c.n[leader], 0, commands, 32);
    fprintf(stderr, "  %llu commands in %llu ms\n", (unsigned long long)commands,
            (unsigned long long)(now_ms() - t0));
    ASSERT_OK(rv);
    ASSERT_TRUE(tc_wait_converged(&c, leader, commands)); /* Plus the leaders' no-ops. */
    s = tc_status(&c, leader);
    for (int i = 0; i < NODES; i++) {
        ASSERT_EQ_I64(check_reads(c.n[i], commands, 32), 0);
    }

    /* The leader goes away; the two others elect one of themselves and take writes. */
    ASSERT_OK(tc_stop(&c, leader));
    leader2 = tc_wait_leader(&c);
    ASSERT_TRUE(leader2 >= 0);
    ASSERT_TRUE(leader2 != leader);
    ASSERT_TRUE(tc_status(&c, leader2).term > s.term);
    ASSERT_OK(load_run(c.n[leader2], commands, commands + more, 32));

    /* The old leader restarts from its directory, recovers its log and catches up. */
    ASSERT_OK(tc_start(&c, leader));
    ASSERT_TRUE(tc_status(&c, leader).last_index >= s.commit_index);
    ASSERT_EQ_I64(tc_wait_leader(&c), leader2);
    ASSERT_TRUE(tc_wait_converged(&c, leader2, commands + more));
    ASSERT_EQ_I64(check_reads(c.n[leader], commands + more, 32), 0);
    /* And it takes part again: a write through it (forwarded) reaches everyone. */
    ASSERT_OK(load_run(c.n[leader], commands + more, commands + more + KEYS, 32));
    ASSERT_TRUE(tc_wait_converged(&c, leader2, commands + more + KEYS));
    for (int i = 0; i < NODES; i++) {
        ASSERT_EQ_I64(check_reads(c.n[i], commands + more + KEYS, 32), 0);
    }
    tc_close(&c);
    return TEST_PASS;
}

TEST(node, snapshot_catchup)
{
    const uint64_t threshold = 2000, commands = 12000;
    struct tcluster c;
    struct aegis_status before, s;
    uint64_t installed;
    int leader, follower;

    ASSERT_OK(tc_init(&c, threshold));
    /* No segment kept behind a snapshot and a small cache: the follower's entries are
     * gone, so it must take the snapshot (with retention it would read the log). */
    c.log_set = true;
    c.log_cache_bytes = 1u << 20;
    c.log_retention_bytes = 0;
    for (int i = 0; i < NODES; i++) {
        ASSERT_OK(tc_start(&c, i));
    }
    leader = tc_wait_leader(&c);
    ASSERT_TRUE(leader >= 0);
    follower = (leader + 1) % NODES;
    ASSERT_OK(load_run(c.n[leader], 0, 500, 100));
    ASSERT_TRUE(tc_wait_converged(&c, leader, 500));
    before = tc_status(&c, follower);
    ASSERT_OK(tc_stop(&c, follower));

    /* Write far past the follower's log: the leader snapshots and compacts. */
    ASSERT_OK(load_run(c.n[leader], 500, commands, 100));
    ASSERT_TRUE(tc_wait_converged(&c, leader, commands));
    s = tc_status(&c, leader);
    /* Compacted past the follower's end, trailing entries (threshold/10+16) included. */
    ASSERT_TRUE(s.snapshot_index > before.last_index + threshold / 10 + 16);

    ASSERT_OK(tc_start(&c, follower));
    ASSERT_TRUE(tc_wait_converged(&c, leader, commands));
    ASSERT_EQ_I64(check_reads(c.n[follower], commands, 100), 0);
    s = tc_status(&c, follower);
    ASSERT_TRUE(s.snapshot_index > before.last_index);
    /* Stopped (threads joined), its counters can be read: it installed a snapshot. */
    ASSERT_OK(aegis_node_stop(c.n[follower]));
    installed = c.n[follower]->stats.snapshots_installed;
    ASSERT_TRUE(installed >= 1);
    tc_close(&c);
    return TEST_PASS;
}

/* ---- A paused follower: accepts, completes the hello, then never reads. ---- */

struct fake_peer {
    int listen_fd;
    int fds[8];
    int fds_count;
    aegis_node_id self;
    int stop; /* Atomic. */
    pthread_t thread;
};

static void *fake_peer_main(void *arg)
{
    struct fake_peer *f = arg;

    while (__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE) == 0) {
        uint8_t hello[AEGIS_URING_HELLO_BYTES];
        aegis_node_id sender = 0;
        struct timeval tv = {.tv_sec = 0, .tv_usec = 50000};
        int fd;

        setsockopt(f->listen_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        fd = accept(f->listen_fd, NULL, NULL);
        if (fd < 0) {
            continue; /* Timeout: check stop. */
        }
        if (recv(fd, hello, sizeof(hello), MSG_WAITALL) != (ssize_t)sizeof(hello) ||
            f->fds_count == 8) {
            close(fd);
            continue;
        }
        for (int i = 7; i >= 0; i--) {
            sender = (sender << 8) | hello[16 + i];
        }
        /* Answer as the acceptor would (net/uring_peer.c), then read nothing more. */
        hello[16] = (uint8_t)f->self;
        memset(hello + 17, 0, 7);
        for (int i = 0; i < 8; i++) {
            hello[24 + i] = (uint8_t)(sender >> (8 * i));
        }
        if (send(fd, hello, sizeof(hello), MSG_NOSIGNAL) != (ssize_t)sizeof(hello)) {
            close(fd);
            continue;
        }
        f->fds[f->fds_count++] = fd;
    }
    return NULL;
}

static int fake_peer_start(struct fake_peer *f, uint16_t port, aegis_node_id self)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                             .sin_port = htons(port)};
    int one = 1, small = 4096;

    memset(f, 0, sizeof(*f));
    f->self = self;
    f->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (f->listen_fd < 0) {
        return AEGIS_EIO;
    }
    setsockopt(f->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* A small receive window (inherited by accepted sockets): the leader's sends back up
     * into its own queues quickly, as with a stopped process. */
    setsockopt(f->listen_fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    if (bind(f->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(f->listen_fd, 8) != 0) {
        close(f->listen_fd);
        return AEGIS_EADDRINUSE;
    }
    if (pthread_create(&f->thread, NULL, fake_peer_main, f) != 0) {
        close(f->listen_fd);
        return AEGIS_ENOMEM;
    }
    return 0;
}

static void fake_peer_stop(struct fake_peer *f)
{
    __atomic_store_n(&f->stop, 1, __ATOMIC_RELEASE);
    pthread_join(f->thread, NULL);
    for (int i = 0; i < f->fds_count; i++) {
        close(f->fds[i]);
    }
    close(f->listen_fd);
}

/* ---- Memory stays bounded while a follower is away. ----
 *
 * What the leader holds that grows with writes, and its bound:
 *   - its in-memory log: entries after the snapshot's trailing point. A snapshot is taken
 *     every T = snapshot_threshold applied entries and the core keeps T/10 + 16 behind
 *     it, so at most 2T + T/10 + 16 entries plus what is not yet committed (<= WINDOW,
 *     the test's own in-flight bound, itself under max_pending);
 *   - the follower's replication window: at most inflight_msgs_max (256) AppendEntries /
 *     inflight_bytes_max (16 MiB); the messages hold references to log entries, so a
 *     window pins at most 16 MiB of payloads that compaction would otherwise free;
 *   - the peer's send queue: at most peer_queue_max (4096) frames, each a message holding
 *     references (AppendEntries, heartbeats, snapshot chunks of <= 1 MiB).
 * Rings, the inbox and the registration tables are allocated at create and do not grow.
 * The other live follower holds the same log bound. The test asserts the log bound from
 * the leader's status, and that heap growth after a warm-up stays under
 * 2 nodes x (2T + T/10 + 16 + WINDOW) entries x (value + 512 bytes) + 2 x 16 MiB, far
 * below what keeping every entry would need (commands x value, twice). */
static enum test_result bounded_run(bool paused)
{
    const uint64_t threshold = 5000;
    const uint32_t value_len = 1024;
    uint64_t phase = long_mode() ? 100000 : PHASE_DEFAULT, phases = 3, warm = 2 * threshold;
    uint64_t bound_entries = 2 * threshold + threshold / 10 + 16 + WINDOW;
    uint64_t heap_bound = 2 * bound_entries * (value_len + 512) + 2 * (16u << 20);
    uint64_t heap0, heap_max = 0, done = warm;
    struct fake_peer fake;
    struct tcluster c;
    int leader, away = NODES - 1; /* The highest id: the others dial it. */

    ASSERT_OK(tc_init(&c, threshold));
    /* A log cache under the entry bound below (log retention: the default 64 MiB per
     * node is more than this test's whole heap bound). */
    c.log_set = true;
    c.log_cache_bytes = 4u << 20;
    c.log_retention_bytes = 64u << 20;
    if (paused) {
        ASSERT_OK(fake_peer_start(&fake, c.port[away], (aegis_node_id)(away + 1)));
    }
    for (int i = 0; i < NODES; i++) {
        if (i != away || !paused) {
            ASSERT_OK(tc_start(&c, i));
        }
    }
    if (!paused) {
        /* Let all three elect, then stop one follower. */
        leader = tc_wait_leader(&c);
        ASSERT_TRUE(leader >= 0);
        away = (leader + 1) % NODES;
        ASSERT_OK(tc_stop(&c, away));
    }
    leader = tc_wait_leader(&c);
    ASSERT_TRUE(leader >= 0);
    ASSERT_OK(load_run(c.n[leader], 0, warm, value_len));
    heap0 = heap_bytes();
    for (uint64_t p = 0; p < phases; p++) {
        struct aegis_status s;
        uint64_t h;

        ASSERT_OK(load_run(c.n[leader], done, done + phase, value_len));
        done += phase;
        ASSERT_TRUE(tc_wait_commit(&c, leader, done));
        s = tc_status(&c, leader);
        ASSERT_EQ_I64(s.role, AEGIS_NODE_LEADER);
        h = heap_bytes();
        heap_max = h > heap_max ? h : heap_max;
        fprintf(stderr, "  %s follower, %llu writes: log %llu entries (bound %llu), heap %+lld"
                " KiB (bound %llu KiB)\n", paused ? "paused" : "stopped",
                (unsigned long long)done, (unsigned long long)(s.last_index - s.snapshot_index),
                (unsigned long long)bound_entries, (long long)(h - heap0) / 1024,
                (unsigned long long)heap_bound / 1024);
        ASSERT_TRUE(s.last_index - s.snapshot_index <= bound_entries);
    }
    /* Idle with the follower away: heartbeats and snapshot resends must not pile up. */
    for (uint64_t t = 0; t < (long_mode() ? 30 : 2); t++) {
        uint64_t h;

        sleep_ms(1000);
        h = heap_bytes();
        heap_max = h > heap_max ? h : heap_max;
    }
    fprintf(stderr, "  after idling: heap %+lld KiB\n", (long long)(heap_bytes() - heap0) / 1024);
    if (heap0 != 0) {
        ASSERT_TRUE(heap_max < heap0 + heap_bound);
    }
    /* The away member never answered: the leader's view of it stays behind. */
    for (uint32_t m = 0; m < tc_status(&c, leader).members_count; m++) {
        struct aegis_member_status ms = tc_status(&c, leader).members[m];

        if (ms.id == (aegis_node_id)(away + 1)) {
            ASSERT_TRUE(ms.match_index < done);
        }
    }
    ASSERT_EQ_I64(check_reads(c.n[leader], done, value_len), 0);
    ASSERT_OK(aegis_node_stop(c.n[leader]));
    fprintf(stderr, "  frames queued to the away follower at stop: %d\n",
            aegis__uring_loop_peer_queued(c.n[leader]->loop, (aegis_node_id)(away + 1)));
    tc_close(&c);
    if (paused) {
        fake_peer_stop(&fake);
    }
    return TEST_PASS;
}

TEST(node, follower_down_bounded)
{
    return bounded_run(false);
}

TEST(node, follower_paused_bounded)
{
    return bounded_run(true);
}

/* ---- Stopping a node runs every callback it accepted, exactly once. ---- */

struct counted {
    pthread_mutex_t lock;
    uint32_t calls;
    uint32_t by_status[4]; /* Answered (a GET may find nothing), ELEADERLOST, ESHUTDOWN,
                              other. */
};

static void counted_done(void *data, const struct aegis_result *res)
{
    struct counted *k = data;

    pthread_mutex_lock(&k->lock);
    k->calls++;
    k->by_status[res->status == 0 || res->status == AEGIS_ENOTFOUND ? 0
                 : res->status == AEGIS_ELEADERLOST ? 1
                 : res->status == AEGIS_ESHUTDOWN   ? 2
                                                    : 3]++;
    pthread_mutex_unlock(&k->lock);
}

TEST(node, stop_completes_everything)
{
    struct counted k = {.lock = PTHREAD_MUTEX_INITIALIZER};
    uint32_t accepted = 0;
    struct tcluster c;
    int leader, follower;

    ASSERT_OK(tc_init(&c, 100000));
    for (int i = 0; i < NODES; i++) {
        ASSERT_OK(tc_start(&c, i));
    }
    leader = tc_wait_leader(&c);
    ASSERT_TRUE(leader >= 0);
    follower = (leader + 1) % NODES;
    /* Proposals (forwarded to the leader) and reads (a ReadIndex round through it) on a
     * follower, then stop it at once: some are answered, the rest must fail. */
    for (uint32_t i = 0; i < 2000; i++) {
        struct aegis_buf *cmd;
        char key[16];
        size_t klen = key_of(i, key);
        int rv;

        if (i % 2 == 0) {
            ASSERT_OK(aegis__kv_encode_set(NULL, key, klen, "v", 1, &cmd));
            rv = aegis_node_propose(c.n[follower], cmd->data, cmd->len, counted_done, &k);
        } else {
            ASSERT_OK(aegis__kv_encode_get(NULL, key, klen, &cmd));
            rv = aegis_node_read(c.n[follower], cmd->data, cmd->len, counted_done, &k);
        }
        aegis__buf_unref(cmd);
        accepted += rv == 0;
    }
    ASSERT_OK(aegis_node_stop(c.n[follower]));
    pthread_mutex_lock(&k.lock);
    fprintf(stderr, "  %u accepted: %u ok, %u leader lost, %u shutdown, %u other\n", accepted,
            k.by_status[0], k.by_status[1], k.by_status[2], k.by_status[3]);
    ASSERT_EQ_U64(k.calls, accepted);
    pthread_mutex_unlock(&k.lock);
    ASSERT_EQ_U64(k.by_status[3], 0);
    tc_close(&c);
    ASSERT_EQ_U64(k.calls, accepted); /* Nothing more at destroy. */
    return TEST_PASS;
}

/* ---- Admin requests on a follower (forwarded to the leader). ---- */

struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    int status;
};

static void waiter_done(void *data, const struct aegis_result *res)
{
    struct waiter *w = data;

    pthread_mutex_lock(&w->lock);
    w->done = true;
    w->status = res->status;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* The completion's status, once it ran (no timeout here: every accepted request is
 * answered, by the leader or by the forward's expiry). */
static int waiter_wait(struct waiter *w)
{
    int status;

    pthread_mutex_lock(&w->lock);
    while (!w->done) {
        pthread_cond_wait(&w->cond, &w->lock);
    }
    status = w->status;
    w->done = false;
    pthread_mutex_unlock(&w->lock);
    return status;
}

TEST(node, admin_on_follower_is_forwarded)
{
    struct waiter w = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    struct aegis_peer_addr addr;
    struct tcluster c;
    int leader, follower, other;

    ASSERT_OK(tc_init(&c, 100000));
    for (int i = 0; i < NODES; i++) {
        ASSERT_OK(tc_start(&c, i));
    }
    leader = tc_wait_leader(&c);
    ASSERT_TRUE(leader >= 0);
    follower = (leader + 1) % NODES;
    other = (leader + 2) % NODES;
    /* The leader's core refuses a transfer to a node that is not a member: the follower
     * that forwarded it reports that refusal. */
    ASSERT_OK(aegis__node_transfer(c.n[follower], 99, waiter_done, &w));
    ASSERT_ERR(waiter_wait(&w), AEGIS_EUNKNOWNNODE);
    ASSERT_OK(aegis__node_transfer(c.n[leader], 99, waiter_done, &w));
    ASSERT_ERR(waiter_wait(&w), AEGIS_EUNKNOWNNODE);
    /* A removal asked on a follower commits through the leader. */
    ASSERT_OK(aegis_node_remove_member(c.n[follower], (aegis_node_id)(other + 1), waiter_done,
                                       &w));
    ASSERT_OK(waiter_wait(&w));
    ASSERT_EQ_U64(tc_status(&c, leader).members_count, 2);
    /* Every member's address is known (from --peers here). */
    for (int i = 0; i < NODES; i++) {
        ASSERT_TRUE(aegis__node_member_addr(c.n[follower], (aegis_node_id)(i + 1), &addr));
        ASSERT_EQ_U64(addr.port, c.port[i]);
    }
    ASSERT_FALSE(aegis__node_member_addr(c.n[follower], 99, &addr));
    tc_close(&c);
    return TEST_PASS;
}
