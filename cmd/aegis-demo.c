/* SPDX-License-Identifier: MIT */
/* aegis-demo: three replication engines (engine/engine.h) over the in-memory transport
 * (net/transport.h) in one process. They elect a leader, the leader replicates a few
 * writes, and the demo prints what every node reads back and the leader's view of the
 * cluster. It runs in logical time (no sleeping), so it finishes at once.
 *
 * Usage: aegis-demo [--seed N]   (N seeds the election timers; the same N replays). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aegis/error.h>

#include "engine/engine.h"
#include "net/transport.h"
#include "pipeline/args.h"

#define NODES 3

struct demo {
    struct aegis_mem_network *net;
    struct aegis_engine *e[NODES + 1];
    struct aegis_transport *t[NODES + 1];
    uint64_t msgs;
};

static void send_all(struct demo *d, aegis_node_id id, struct aegis_tick_result *tr)
{
    for (uint32_t i = 0; i < tr->msgs_count; i++) {
        if (aegis__transport_send(d->t[id], &tr->msgs[i]) == 0) {
            d->msgs++;
        }
    }
    if (tr->leader_changes > 0 && tr->leader != AEGIS_NODE_NONE) {
        printf("  node %" PRIu64 ": leader is node %" PRIu64 " (term %" PRIu64 ")\n", id,
               tr->leader, tr->term);
    }
    aegis__tick_result_release(tr, aegis__engine_allocator(d->e[id]));
}

/* Deliver messages until the network is quiet, applying what commits. */
static void settle(struct demo *d)
{
    for (int pass = 0; pass < 50; pass++) {
        bool any = false;

        for (aegis_node_id id = 1; id <= NODES; id++) {
            struct aegis_msg m;
            struct aegis_tick_result tr;

            while (aegis__transport_receive(d->t[id], &m) == 0) {
                any = true;
                (void)aegis__engine_process_message(d->e[id], &m);
                aegis__transport_release(d->t[id], &m);
            }
            (void)aegis__engine_apply_committed(d->e[id], NULL, 0, NULL);
            aegis__engine_poll(d->e[id], &tr);
            send_all(d, id, &tr);
        }
        if (!any) {
            return;
        }
    }
}

static void round_once(struct demo *d)
{
    for (aegis_node_id id = 1; id <= NODES; id++) {
        struct aegis_tick_result tr;

        aegis__engine_tick(d->e[id], &tr);
        send_all(d, id, &tr);
    }
    settle(d);
}

static int setup(struct demo *d, uint64_t seed)
{
    int rv = aegis__mem_network_create(&d->net, 1024, NULL);

    for (aegis_node_id id = 1; rv == 0 && id <= NODES; id++) {
        struct aegis_replication_config cfg;
        struct aegis_node_info self;

        aegis__replication_config_default(&cfg);
        cfg.rng_seed = seed * 31 + id;
        rv = aegis__node_info_init(&self, id, "127.0.0.1", (uint16_t)(5000 + id - 1));
        if (rv == 0) {
            rv = aegis__engine_create(&d->e[id], &self, &cfg, NULL);
        }
        for (aegis_node_id p = 1; rv == 0 && p <= NODES; p++) {
            struct aegis_node_info peer;

            if (p == id) {
                continue;
            }
            rv = aegis__node_info_init(&peer, p, "127.0.0.1", (uint16_t)(5000 + p - 1));
            if (rv == 0) {
                rv = aegis__engine_add_peer(d->e[id], &peer);
            }
        }
        if (rv == 0) {
            rv = aegis__mem_transport_create(&d->t[id], d->net, id);
        }
    }
    return rv;
}

static void teardown(struct demo *d)
{
    for (aegis_node_id id = 1; id <= NODES; id++) {
        aegis__transport_destroy(d->t[id]);
        aegis__engine_destroy(d->e[id]);
    }
    aegis__mem_network_destroy(d->net);
}

static aegis_node_id find_leader(struct demo *d)
{
    for (aegis_node_id id = 1; id <= NODES; id++) {
        if (aegis__engine_is_leader(d->e[id])) {
            return id;
        }
    }
    return AEGIS_NODE_NONE;
}

static void said(const char *what, int rv, aegis_index index)
{
    if (rv == 0) {
        printf("  %-26s proposed at index %" PRIu64 "\n", what, index);
    } else {
        printf("  %-26s refused: %s\n", what, aegis_strerror(rv));
    }
}

static int propose(struct demo *d, aegis_node_id leader)
{
    struct aegis_engine *e = d->e[leader];
    struct aegis_kv_bytes expected = {.data = (const uint8_t *)"value1", .len = 6};
    aegis_index index = 0;
    int rv;

    rv = aegis__engine_set(e, "key1", 4, "value1", 6, &index);
    said("set key1=value1", rv, index);
    if (rv == 0) {
        rv = aegis__engine_set(e, "counter", 7, "10", 2, &index);
        said("set counter=10", rv, index);
    }
    if (rv == 0) {
        rv = aegis__engine_increment(e, "counter", 7, 32, &index);
        said("increment counter by 32", rv, index);
    }
    if (rv == 0) {
        rv = aegis__engine_compare_and_swap(e, "key1", 4, &expected, "value2", 6, &index);
        said("cas key1 value1 -> value2", rv, index);
    }
    if (rv == 0) {
        rv = aegis__engine_set(e, "tmp", 3, "x", 1, &index);
        said("set tmp=x", rv, index);
    }
    if (rv == 0) {
        rv = aegis__engine_delete(e, "tmp", 3, &index);
        said("delete tmp", rv, index);
    }
    return rv;
}

static void print_value(struct aegis_engine *e, const char *key)
{
    struct aegis_buf *v = NULL;
    aegis_index version = 0;

    if (aegis__engine_get(e, key, strlen(key), &v, &version) != 0) {
        printf(" %s=(none)", key);
        return;
    }
    printf(" %s=%.*s@%" PRIu64, key, (int)v->len, (const char *)v->data, version);
    aegis__buf_unref(v);
}

static void report(struct demo *d, aegis_node_id leader)
{
    struct aegis_cluster_stats st;

    printf("\nwhat each node reads back (key=value@version):\n");
    for (aegis_node_id id = 1; id <= NODES; id++) {
        printf("  node %" PRIu64 " (%s, applied %" PRIu64 "):", id,
               aegis__node_role_name(aegis__engine_role(d->e[id])),
               aegis__engine_applied_index(d->e[id]));
        print_value(d->e[id], "key1");
        print_value(d->e[id], "counter");
        print_value(d->e[id], "tmp");
        printf("\n");
    }
    aegis__cluster_stats(aegis__engine_cluster(d->e[leader]), &st);
    printf("\ncluster (leader's view): state %s, %" PRIu32 " nodes, %" PRIu32
           " healthy, quorum %" PRIu32 " (%s), leader node %" PRIu64 "\n",
           aegis__cluster_state_name((enum aegis_cluster_state)st.state), st.total_nodes,
           st.healthy_nodes, st.quorum, st.has_quorum ? "reached" : "lost", st.leader);
    printf("messages delivered: %" PRIu64 "\n", d->msgs);
}

/* Cut the leader off, let the other two elect a new one and commit a write, then heal and
 * show that the old leader catches up. */
static int failover(struct demo *d, aegis_node_id old)
{
    aegis_node_id leader = AEGIS_NODE_NONE;
    aegis_index index = 0;
    int ticks = 0;
    int rv;

    printf("\nfailover: node %" PRIu64 " is cut off from the network\n", old);
    rv = aegis__mem_network_isolate(d->net, old, true);
    while (rv == 0 && (leader == AEGIS_NODE_NONE || leader == old) && ticks < 500) {
        round_once(d);
        ticks++;
        leader = AEGIS_NODE_NONE;
        for (aegis_node_id id = 1; id <= NODES; id++) {
            if (id != old && aegis__engine_is_leader(d->e[id])) {
                leader = id;
            }
        }
    }
    if (leader == AEGIS_NODE_NONE) {
        fprintf(stderr, "aegis-demo: no new leader after %d ticks\n", ticks);
        return AEGIS_ENOQUORUM;
    }
    printf("node %" PRIu64 " leads after %d ticks (term %" PRIu64 ")\n", leader, ticks,
           aegis__engine_term(d->e[leader]));
    rv = aegis__engine_set(d->e[leader], "key1", 4, "after-failover", 14, &index);
    said("set key1=after-failover", rv, index);
    for (int i = 0; rv == 0 && i < 3; i++) {
        round_once(d);
    }
    printf("healing the network\n");
    if (rv == 0) {
        rv = aegis__mem_network_isolate(d->net, old, false);
    }
    for (int i = 0; rv == 0 && i < 30; i++) {
        round_once(d);
    }
    report(d, leader);
    return rv;
}

int main(int argc, char **argv)
{
    struct demo d;
    uint64_t seed = 1;
    aegis_node_id leader = AEGIS_NODE_NONE;
    int ticks = 0;
    int rv;

    for (int i = 1; i < argc; i++) {
        char err[AEGIS_ARGS_ERR_BYTES];

        if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            if (aegis__args_u64("--seed", argv[++i], 0, UINT64_MAX, &seed, err,
                                sizeof(err)) != 0) {
                fprintf(stderr, "aegis-demo: %s\n", err);
                return 2;
            }
        } else {
            fprintf(stderr, "usage: %s [--seed N]\n", argv[0]);
            return 2;
        }
    }
    memset(&d, 0, sizeof(d));
    rv = setup(&d, seed);
    if (rv != 0) {
        fprintf(stderr, "aegis-demo: setup: %s\n", aegis_strerror(rv));
        teardown(&d);
        return 1;
    }
    printf("aegis-demo: %d replication engines over the in-memory transport (seed %" PRIu64
           ")\n\nelection:\n", NODES, seed);
    while (leader == AEGIS_NODE_NONE && ticks < 500) {
        round_once(&d);
        ticks++;
        leader = find_leader(&d);
    }
    if (leader == AEGIS_NODE_NONE) {
        fprintf(stderr, "aegis-demo: no leader after %d ticks\n", ticks);
        teardown(&d);
        return 1;
    }
    printf("node %" PRIu64 " leads after %d ticks\n\nproposals on the leader:\n", leader,
           ticks);
    rv = propose(&d, leader);
    for (int i = 0; i < 3; i++) {
        round_once(&d);
    }
    report(&d, leader);
    if (rv == 0) {
        rv = failover(&d, leader);
    }
    teardown(&d);
    return rv == 0 ? 0 : 1;
}
