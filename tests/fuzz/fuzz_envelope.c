/* SPDX-License-Identifier: MIT */
/* Fuzz target for the runtime's envelope (pipeline/envelope.c, formats in envelope.h):
 * snapshot data as a follower receives it from the leader or reads it from a snapshot
 * file (address records, then the state machine's bytes), the member address record of
 * an 'M' log entry, which every node applies, and a forwarded admin request (what a
 * leader receives from a follower in a CLIENT_REQ).
 *
 * Every input goes through every decoder: aegis__env_snapshot_parse,
 * aegis__env_admin_decode and aegis__env_addr_decode on the whole input and, when it
 * starts with the 'M' tag, the address decoder on the rest (as pipeline/apply.c does).
 *
 * Properties (abort() on violation): no crash, no read past the input, failures only
 * with AEGIS_ECORRUPT; an accepted snapshot has at most AEGIS_PEERS_MAX addresses with
 * non-zero ids and hosts of 1..AEGIS_HOST_MAX-1 bytes without NUL, its state machine
 * bytes are the input's tail, and aegis__env_snapshot() of what was parsed rebuilds the
 * input exactly; an accepted address record re-encodes (aegis__env_addr_encode, and
 * aegis__env_meta_addr with its tag) to exactly the input; an accepted admin request
 * re-encodes (aegis__env_admin) to exactly the input. */
#include <stdlib.h>
#include <string.h>

#include <aegis/error.h>

#include "pipeline/envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok) {
        abort();
    }
}

static void check_addr(const struct aegis_peer_addr *a)
{
    size_t h = strnlen(a->host, AEGIS_HOST_MAX);

    check(a->id != 0 && h > 0 && h < AEGIS_HOST_MAX);
}

static void addr_round_trip(const uint8_t *p, size_t len, bool tagged)
{
    struct aegis_peer_addr a;
    uint8_t again[AEGIS_ENV_ADDR_BYTES_MAX];
    struct aegis_buf *b;
    int rv = aegis__env_addr_decode(p, len, &a);

    if (rv != 0) {
        check(rv == AEGIS_ECORRUPT);
        return;
    }
    check_addr(&a);
    check(aegis__env_addr_encode(&a, again) == len);
    check(memcmp(again, p, len) == 0);
    b = aegis__env_meta_addr(NULL, &a);
    check(b != NULL && b->len == len + 1 && b->data[0] == AEGIS_ENV_META);
    check(memcmp(b->data + 1, p, len) == 0);
    if (tagged) {
        check(memcmp(b->data, p - 1, len + 1) == 0);
    }
    aegis__buf_unref(b);
}

static void snapshot_round_trip(const uint8_t *data, size_t size)
{
    struct aegis_peer_addr addrs[AEGIS_PEERS_MAX];
    const uint8_t *sm = NULL;
    size_t sm_len = 0;
    uint32_t count = 0;
    struct aegis_buf *b;
    int rv = aegis__env_snapshot_parse(data, size, addrs, &count, &sm, &sm_len);

    if (rv != 0) {
        check(rv == AEGIS_ECORRUPT);
        return;
    }
    check(count <= AEGIS_PEERS_MAX);
    for (uint32_t i = 0; i < count; i++) {
        check_addr(&addrs[i]);
    }
    check(sm >= data && sm_len <= size && sm + sm_len == data + size);
    b = aegis__env_snapshot(NULL, addrs, count, sm, sm_len);
    check(b != NULL && b->len == size);
    check(memcmp(b->data, data, size) == 0);
    aegis__buf_unref(b);
}

static void admin_round_trip(const uint8_t *data, size_t size)
{
    struct aegis_peer_addr addr;
    aegis_node_id target;
    uint8_t op;
    struct aegis_buf *b;
    int rv = aegis__env_admin_decode(data, size, &op, &target, &addr);

    if (rv != 0) {
        check(rv == AEGIS_ECORRUPT);
        return;
    }
    b = aegis__env_admin(NULL, op, target, op == AEGIS_ENV_ADMIN_ADD ? &addr : NULL);
    check(b != NULL && b->len == size + 1 && b->data[0] == AEGIS_ENV_ADMIN &&
          memcmp(b->data + 1, data, size) == 0);
    aegis__buf_unref(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    snapshot_round_trip(data, size);
    admin_round_trip(data, size);
    addr_round_trip(data, size, false);
    if (size > 0 && data[0] == AEGIS_ENV_META) {
        addr_round_trip(data + 1, size - 1, true);
    }
    return 0;
}
