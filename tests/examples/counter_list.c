/* SPDX-License-Identifier: MIT */
/* counter_list: three Aegis nodes embedded in one process, replicating the embedder's own
 * state machine. It uses nothing but the public header <aegis/aegis.h>.
 *
 * The state machine holds a counter and an append-only list of words. Commands are text:
 *     "add <n>"        add n to the counter; the result's integer is the new value;
 *     "append <word>"  append a word; the result's integer is the new length.
 * Read queries (served by the read callback, never logged):
 *     "count"          the counter, in the result's integer;
 *     "list"           the length in the integer and the last word in the value.
 *
 * It shows, in order: the struct aegis_sm callbacks; creating and starting three nodes
 * on loopback ports; aegis_node_propose_sync (blocking); aegis_node_propose (async, with a
 * completion callback) sent to every node, followers forward to the leader; a
 * linearizable aegis_node_read on every node; and stopping the nodes, after which each
 * node's state may be read directly because no node thread touches it any more. It exits
 * 0 when all three state machines agree with what was proposed. */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700 /* nftw, mkdtemp, nanosleep under -std=c11. */
#endif
#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <aegis/aegis.h>

#define NODES 3
#define LIST_MAX 64
#define WORD_MAX 24
#define ADDS 40    /* Async "add 1" commands. */
#define APPENDS 30 /* Async "append" commands. */

/* ---- The state machine. Every callback runs on its node's apply thread. ---- */

struct app {
    int64_t counter;
    uint32_t count;
    char items[LIST_MAX][WORD_MAX];
};

static void app_apply(void *data, aegis_index index, const void *cmd, size_t len,
                      struct aegis_result *res)
{
    struct app *a = data;
    char text[64];

    (void)index;
    if (len >= sizeof(text)) {
        res->status = AEGIS_EINVAL; /* Reported to the proposer; the node goes on. */
        return;
    }
    memcpy(text, cmd, len);
    text[len] = '\0';
    if (strncmp(text, "add ", 4) == 0) {
        a->counter += strtoll(text + 4, NULL, 10);
        res->integer = a->counter;
    } else if (strncmp(text, "append ", 7) == 0 && len - 7 < WORD_MAX && a->count < LIST_MAX) {
        memcpy(a->items[a->count], text + 7, len - 7 + 1); /* With the NUL. */
        a->count++;
        res->integer = a->count;
    } else {
        res->status = AEGIS_EINVAL;
    }
}

/* The whole state as one buffer from malloc() (the library frees it). A real application
 * would use a portable encoding; this one copies the struct. */
static int app_snapshot(void *data, void **buf_out, size_t *len_out)
{
    void *copy = malloc(sizeof(struct app));

    if (copy == NULL) {
        return AEGIS_ENOMEM; /* This snapshot is skipped; a later one is tried. */
    }
    memcpy(copy, data, sizeof(struct app));
    *buf_out = copy;
    *len_out = sizeof(struct app);
    return 0;
}

static int app_restore(void *data, const void *buf, size_t len)
{
    if (len != sizeof(struct app)) {
        return AEGIS_ECORRUPT; /* State left as it was. */
    }
    memcpy(data, buf, len);
    return 0;
}

static void app_read(void *data, const void *query, size_t len, struct aegis_result *res)
{
    const struct app *a = data;

    if (len == 5 && memcmp(query, "count", 5) == 0) {
        res->integer = a->counter;
    } else if (len == 4 && memcmp(query, "list", 4) == 0) {
        res->integer = a->count;
        if (a->count > 0) {
            /* Borrowed by the completion callback, which runs before the next apply. */
            res->value = a->items[a->count - 1];
            res->value_len = strlen(a->items[a->count - 1]);
        }
    } else {
        res->status = AEGIS_EINVAL;
    }
}

/* ---- Waiting for async completions. Callbacks run on the apply threads. ---- */

struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int pending;
    int failed;
};

static void on_done(void *data, const struct aegis_result *res)
{
    struct waiter *w = data;

    pthread_mutex_lock(&w->lock);
    if (res->status != 0) {
        fprintf(stderr, "command failed: %s\n", aegis_strerror(res->status));
        w->failed++;
    }
    w->pending--;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static void wait_all(struct waiter *w)
{
    pthread_mutex_lock(&w->lock);
    while (w->pending > 0) {
        pthread_cond_wait(&w->cond, &w->lock);
    }
    pthread_mutex_unlock(&w->lock);
}

/* A read's answer, copied out of the callback (the value is only borrowed there). */
struct read_answer {
    struct waiter *w;
    int status;
    int64_t integer;
    char value[WORD_MAX];
};

static void on_read(void *data, const struct aegis_result *res)
{
    struct read_answer *r = data;
    size_t n = res->value_len < WORD_MAX - 1 ? res->value_len : WORD_MAX - 1;

    r->status = res->status;
    r->integer = res->integer;
    if (res->value != NULL) {
        memcpy(r->value, res->value, n);
    }
    r->value[n] = '\0';
    on_done(r->w, res);
}

/* ---- Setup helpers. ---- */

/* A free loopback port: bind port 0 and ask the kernel which one it gave. */
static uint16_t free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sa_len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    uint16_t port = 0;

    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &sa_len) == 0) {
        port = ntohs(sa.sin_port);
    }
    if (fd >= 0) {
        close(fd);
    }
    return port;
}

/* Wait until every node names the same leader; return its position, or -1. */
static int wait_for_leader(struct aegis_node **nodes)
{
    for (int tries = 0; tries < 1000; tries++) {
        struct aegis_status s[NODES];
        int leader = -1;

        for (int i = 0; i < NODES; i++) {
            aegis_node_status(nodes[i], &s[i]);
            if (s[i].role == AEGIS_NODE_LEADER) {
                leader = i;
            }
        }
        if (leader >= 0 && s[0].leader == s[1].leader && s[1].leader == s[2].leader) {
            return leader;
        }
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
    }
    return -1;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(path);
}

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);       \
            return 1;                                                                      \
        }                                                                                  \
    } while (0)

static int run(struct aegis_node **nodes, struct app *apps)
{
    struct waiter w = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    struct read_answer answers[NODES][2];
    struct aegis_result res;
    char cmd[32];
    int leader, rv;

    leader = wait_for_leader(nodes);
    CHECK(leader >= 0);
    printf("node %d is the leader\n", leader + 1);

    /* Blocking: propose on a follower (it forwards to the leader) and wait. */
    rv = aegis_node_propose_sync(nodes[(leader + 1) % NODES], "add 100", 7, &res, NULL, 0);
    CHECK(rv == 0);
    CHECK(res.integer == 100);

    /* Async: spread commands over all three nodes; callbacks count them down. */
    w.pending = ADDS + APPENDS;
    for (int i = 0; i < ADDS + APPENDS; i++) {
        int len = i < ADDS ? snprintf(cmd, sizeof(cmd), "add 1")
                           : snprintf(cmd, sizeof(cmd), "append word%d", i - ADDS);

        rv = aegis_node_propose(nodes[i % NODES], cmd, (size_t)len, on_done, &w);
        CHECK(rv == 0); /* AEGIS_EFULL would mean: too many in flight, retry later. */
    }
    wait_all(&w);
    CHECK(w.failed == 0);

    /* Linearizable reads on every node: each sees every command completed above. */
    w.pending = 2 * NODES;
    for (int i = 0; i < NODES; i++) {
        answers[i][0] = (struct read_answer){.w = &w};
        answers[i][1] = (struct read_answer){.w = &w};
        CHECK(aegis_node_read(nodes[i], "count", 5, on_read, &answers[i][0]) == 0);
        CHECK(aegis_node_read(nodes[i], "list", 4, on_read, &answers[i][1]) == 0);
    }
    wait_all(&w);
    CHECK(w.failed == 0);
    for (int i = 0; i < NODES; i++) {
        printf("node %d reads: count=%lld, list has %lld words, last \"%s\"\n", i + 1,
               (long long)answers[i][0].integer, (long long)answers[i][1].integer,
               answers[i][1].value);
        CHECK(answers[i][0].integer == 100 + ADDS);
        CHECK(answers[i][1].integer == APPENDS);
        CHECK(strcmp(answers[i][1].value, answers[0][1].value) == 0);
    }

    /* Stop every node: after aegis_node_stop() no node thread touches its state. */
    for (int i = 0; i < NODES; i++) {
        CHECK(aegis_node_stop(nodes[i]) == 0);
    }
    for (int i = 0; i < NODES; i++) {
        CHECK(apps[i].counter == 100 + ADDS);
        CHECK(apps[i].count == APPENDS);
        CHECK(memcmp(apps[i].items, apps[0].items, sizeof(apps[0].items)) == 0);
    }
    printf("all %d nodes agree: counter %lld, %u words\n", NODES, (long long)apps[0].counter,
           apps[0].count);
    return 0;
}

int main(void)
{
    static struct app apps[NODES];
    struct aegis_sm sms[NODES];
    struct aegis_node *nodes[NODES] = {NULL};
    char dirs[NODES][64];
    uint16_t ports[NODES];
    int rv = 1;

    for (int i = 0; i < NODES; i++) {
        ports[i] = free_port();
        snprintf(dirs[i], sizeof(dirs[i]), "/tmp/aegis-example-XXXXXX");
        if (ports[i] == 0 || mkdtemp(dirs[i]) == NULL) {
            fprintf(stderr, "cannot get a port or a temporary directory\n");
            return 1;
        }
    }
    for (int i = 0; i < NODES; i++) {
        struct aegis_node_config c;

        aegis_node_config_init(&c);
        c.id = (aegis_node_id)(i + 1);
        c.peers_count = NODES;
        for (int p = 0; p < NODES; p++) {
            c.peers[p].id = (aegis_node_id)(p + 1);
            snprintf(c.peers[p].host, sizeof(c.peers[p].host), "127.0.0.1");
            c.peers[p].port = ports[p];
        }
        c.data_dir = dirs[i];
        sms[i] = (struct aegis_sm){.apply = app_apply, .snapshot = app_snapshot,
                                   .restore = app_restore, .read = app_read,
                                   .data = &apps[i]};
        c.sm = &sms[i]; /* Borrowed: it must outlive the node. */
        rv = aegis_node_create(&nodes[i], &c);
        if (rv == 0) {
            rv = aegis_node_start(nodes[i]);
        }
        if (rv != 0) {
            fprintf(stderr, "node %d: %s\n", i + 1, aegis_strerror(rv));
            break;
        }
    }
    if (rv == 0) {
        rv = run(nodes, apps);
    }
    for (int i = 0; i < NODES; i++) {
        aegis_node_destroy(nodes[i]); /* Stops the node first if needed; NULL is a no-op. */
        nftw(dirs[i], remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    }
    return rv == 0 ? 0 : 1;
}
