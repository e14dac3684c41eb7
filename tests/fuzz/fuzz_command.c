/* SPDX-License-Identifier: MIT */
/* Fuzz target: the command decoder (engine/kv.h), the payload of every Command log entry.
 *
 * Each input is decoded. A decoder must never crash or read out of bounds; when it accepts
 * an input, the encoding is canonical, so re-encoding the view must give back exactly the
 * input bytes. Every input is then applied to a small machine (with a custom handler
 * installed) at the next index: whatever the bytes, apply must consume the entry, and a
 * result of 0 status must match what decode said. */
#include <stdlib.h>
#include <string.h>

#include <aegis/error.h>

#include "engine/kv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok) {
        abort();
    }
}

static int reencode_list(const struct aegis_kv_cmd *c, struct aegis_buf **out)
{
    struct aegis_kv_bytes *keys = calloc(c->count, sizeof(*keys));
    struct aegis_kv_bytes *values = calloc(c->count, sizeof(*values));
    size_t offset = 0, n = 0;
    int rv;

    check(keys != NULL && values != NULL);
    while (aegis__kv_cmd_next(c, &offset, &keys[n], &values[n])) {
        n++;
        check(n <= c->count);
    }
    check(n == c->count);
    if (c->type == AEGIS_KV_DELETE) {
        rv = aegis__kv_encode_delete(NULL, keys, n, out);
    } else {
        rv = aegis__kv_encode_mset(NULL, keys, values, n, out);
    }
    free(keys);
    free(values);
    return rv;
}

static int reencode(const struct aegis_kv_cmd *c, struct aegis_buf **out)
{
    switch (c->type) {
    case AEGIS_KV_GET:
        return aegis__kv_encode_get(NULL, c->key.data, c->key.len, out);
    case AEGIS_KV_SET:
        return aegis__kv_encode_set(NULL, c->key.data, c->key.len, c->value.data,
                                    c->value.len, out);
    case AEGIS_KV_CAS:
        return aegis__kv_encode_cas(NULL, c->key.data, c->key.len,
                                    c->expected_present ? &c->expected : NULL, c->value.data,
                                    c->value.len, out);
    case AEGIS_KV_INCREMENT:
        return aegis__kv_encode_increment(NULL, c->key.data, c->key.len, c->delta, out);
    case AEGIS_KV_CUSTOM:
        return aegis__kv_encode_custom(NULL, c->name.data, c->name.len, c->args.data,
                                       c->args.len, out);
    case AEGIS_KV_DELETE:
    case AEGIS_KV_MSET:
        return reencode_list(c, out);
    default:
        abort();
    }
}

/* Stores args under the name as key, so custom commands touch the table too. */
static int handler(struct aegis_kv *kv, aegis_index index, struct aegis_kv_bytes name,
                   struct aegis_kv_bytes args, struct aegis_kv_result *result, void *data)
{
    (void)index;
    (void)result;
    (void)data;
    if (name.len == 0) {
        return aegis__kv_custom_delete(kv, "n", 1);
    }
    return aegis__kv_custom_put(kv, name.data, name.len, args.data, args.len);
}

static void apply_input(const uint8_t *data, size_t size, bool decodable)
{
    static const uint8_t seed_mset[] = {0x07, 0x02, 0x01, 'n', 0x02, '4', '2',
                                        0x01, 'k', 0x01, 'v'};
    struct aegis_kv kv;
    struct aegis_kv_result r;

    check(aegis__kv_init(&kv, NULL, 7) == 0);
    aegis__kv_set_custom_handler(&kv, handler, NULL);
    check(aegis__kv_apply(&kv, 1, 1, AEGIS_ENTRY_COMMAND, seed_mset, sizeof(seed_mset), &r) ==
          0);
    check(r.status == 0);
    check(aegis__kv_apply(&kv, 2, 1, AEGIS_ENTRY_COMMAND, data, size, &r) == 0);
    check(r.applied_index == 2);
    check(aegis__kv_applied_index(&kv) == 2);
    if (!decodable) {
        check(r.status == AEGIS_ECORRUPT);
    }
    check(r.status != AEGIS_ECORRUPT || !decodable);
    aegis__kv_result_release(&r);
    aegis__kv_close(&kv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct aegis_kv_cmd c;
    struct aegis_buf *again = NULL;
    int rv = aegis__kv_cmd_decode(data, size, &c);

    check(rv == 0 || rv == AEGIS_ECORRUPT);
    if (rv == 0) {
        check(reencode(&c, &again) == 0);
        check(again->len == size);
        check(memcmp(again->data, data, size) == 0);
        aegis__buf_unref(again);
    }
    apply_input(data, size, rv == 0);
    return 0;
}
