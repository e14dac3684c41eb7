/* Fuzz target: the runtime envelope's decoders (pipeline/envelope.h): a forwarded admin
 * request (what a leader receives from a follower in a CLIENT_REQ), an address record
 * (Command entries) and snapshot data's address list.
 *
 * A decoder must never crash or read out of bounds; an accepted admin request or address
 * record is canonical: encoding what was decoded gives back exactly the input bytes. */
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct aegis_peer_addr addr, addrs[AEGIS_PEERS_MAX];
    const uint8_t *sm;
    size_t sm_len;
    uint32_t count;
    aegis_node_id target;
    uint8_t op;

    if (aegis__env_admin_decode(data, size, &op, &target, &addr) == 0) {
        struct aegis_buf *b = aegis__env_admin(NULL, op, target,
                                               op == AEGIS_ENV_ADMIN_ADD ? &addr : NULL);

        check(b != NULL && b->len == size + 1 && b->data[0] == AEGIS_ENV_ADMIN &&
              memcmp(b->data + 1, data, size) == 0);
        aegis__buf_unref(b);
    }
    if (aegis__env_addr_decode(data, size, &addr) == 0) {
        uint8_t out[AEGIS_ENV_ADDR_BYTES_MAX];

        check(aegis__env_addr_encode(&addr, out) == size && memcmp(out, data, size) == 0);
    }
    if (aegis__env_snapshot_parse(data, size, addrs, &count, &sm, &sm_len) == 0) {
        check(count <= AEGIS_PEERS_MAX && sm >= data && sm + sm_len == data + size);
    }
    return 0;
}
