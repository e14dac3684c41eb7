/* SPDX-License-Identifier: MIT */
/* The public encoders of built-in KV commands (aegis_cmd_* in include/aegis/aegis.h):
 * thin wrappers over engine/kv.h that copy the encoding into the caller's buffer. */
#include <string.h>

#include <aegis/aegis.h>

#include "engine/kv.h"

static int64_t copy_out(int rv, struct aegis_buf *b, void *buf, size_t cap)
{
    int64_t len;

    if (rv != 0) {
        return rv;
    }
    if (b->len > cap) {
        aegis__buf_unref(b);
        return AEGIS_ETOOBIG;
    }
    memcpy(buf, b->data, b->len);
    len = b->len;
    aegis__buf_unref(b);
    return len;
}

int64_t aegis_cmd_get(void *buf, size_t cap, const void *key, size_t key_len)
{
    struct aegis_buf *b = NULL;

    int rv = aegis__kv_encode_get(NULL, key, key_len, &b);

    return copy_out(rv, b, buf, cap);
}

int64_t aegis_cmd_set(void *buf, size_t cap, const void *key, size_t key_len,
                      const void *value, size_t value_len)
{
    struct aegis_buf *b = NULL;

    int rv = aegis__kv_encode_set(NULL, key, key_len, value, value_len, &b);

    return copy_out(rv, b, buf, cap);
}

int64_t aegis_cmd_del(void *buf, size_t cap, const void *key, size_t key_len)
{
    struct aegis_kv_bytes k = {key, key_len};
    struct aegis_buf *b = NULL;

    int rv = aegis__kv_encode_delete(NULL, &k, 1, &b);

    return copy_out(rv, b, buf, cap);
}

int64_t aegis_cmd_incr(void *buf, size_t cap, const void *key, size_t key_len, int64_t delta)
{
    struct aegis_buf *b = NULL;

    int rv = aegis__kv_encode_increment(NULL, key, key_len, delta, &b);

    return copy_out(rv, b, buf, cap);
}

int64_t aegis_cmd_cas(void *buf, size_t cap, const void *key, size_t key_len,
                      const void *expected, size_t expected_len, const void *value,
                      size_t value_len)
{
    struct aegis_kv_bytes e = {expected, expected_len};
    struct aegis_buf *b = NULL;

    int rv = aegis__kv_encode_cas(NULL, key, key_len, expected != NULL ? &e : NULL,
                                         value, value_len, &b);

    return copy_out(rv, b, buf, cap);
}
