/* SPDX-License-Identifier: MIT */
/* The binary encoding of state machine commands: the payload of Command log entries.
 *
 * Design: compact (lengths are varints, so a SET of a 3-byte key and 3-byte value is 9
 * bytes) and canonical (exactly one encoding per command: varints must be minimal and
 * flags take only their defined values), so decode followed by encode reproduces the
 * input and fuzzers can check that. Decoding reads hostile bytes: every length is checked
 * against what is left before it is used, trailing bytes are an error, and failures
 * return AEGIS_ECORRUPT without asserting.
 *
 * Notation: varint is unsigned LEB128 (7 bits per byte, least significant group first,
 * high bit set on every byte but the last; at most 10 bytes; minimal, so the last byte of
 * a multi-byte varint is never 0x00; a 10th byte may only be 0x01). bytes(max) is a
 * varint length L (L <= max) followed by L bytes. zigzag(v) maps an int64 to a uint64 as
 * (v << 1) ^ (v >> 63), so small negative deltas stay short.
 *
 * Every command starts with one type byte (enum aegis_kv_cmd_type):
 *
 *   GET        0x01 key:bytes(65536)
 *   SET        0x02 key:bytes(65536) value:bytes(AEGIS_BUF_LEN_MAX)
 *   DELETE     0x03 count:varint(1..65536) then count x key:bytes(65536)
 *   CAS        0x04 key:bytes(65536) flags:u8 [expected:bytes(AEGIS_BUF_LEN_MAX)]
 *                   value:bytes(AEGIS_BUF_LEN_MAX)
 *              flags is 0x00 (expect the key absent; no expected field) or 0x01
 *              (expected follows); any other flags value is corrupt.
 *   INCREMENT  0x05 key:bytes(65536) delta:varint(zigzag(int64))
 *   CUSTOM     0x06 name:bytes(255) args:bytes(AEGIS_BUF_LEN_MAX)
 *   MSET       0x07 count:varint(1..65536) then count x (key:bytes(65536)
 *                   value:bytes(AEGIS_BUF_LEN_MAX))
 *
 * The encoding ends exactly after its last field. Example: SET "k" = "v" is
 * 02 01 6b 01 76; INCREMENT "n" by -1 is 05 01 6e 01. */
#include "engine/kv.h"

#include <string.h>

#include <aegis/error.h>

#include "engine/assert.h"

#define VARINT_BYTES_MAX 10

struct reader {
    const uint8_t *p;
    size_t left;
};

static size_t varint_size(uint64_t v)
{
    size_t n = 1;

    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    AEGIS_ASSERT(n <= VARINT_BYTES_MAX);
    return n;
}

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static uint8_t *put_bytes(uint8_t *p, const void *data, size_t len)
{
    p = put_varint(p, len);
    if (len > 0) {
        memcpy(p, data, len);
    }
    return p + len;
}

static uint64_t zigzag(int64_t v)
{
    /* The shift of a negative value is done on the unsigned representation. */
    return ((uint64_t)v << 1) ^ (uint64_t)(v < 0 ? UINT64_MAX : 0);
}

static int64_t unzigzag(uint64_t u)
{
    uint64_t v = (u >> 1) ^ (uint64_t)(0 - (u & 1));

    /* Two's complement conversion without implementation-defined behaviour. */
    return v <= (uint64_t)INT64_MAX ? (int64_t)v : -(int64_t)(~v) - 1;
}

static int get_u8(struct reader *r, uint8_t *out)
{
    if (r->left < 1) {
        return AEGIS_ECORRUPT;
    }
    *out = r->p[0];
    r->p++;
    r->left--;
    return 0;
}

static int get_varint(struct reader *r, uint64_t *out)
{
    uint64_t v = 0;

    for (size_t i = 0; i < VARINT_BYTES_MAX; i++) {
        uint8_t b;

        if (get_u8(r, &b) != 0) {
            return AEGIS_ECORRUPT;
        }
        if (i == VARINT_BYTES_MAX - 1 && b > 0x01) {
            return AEGIS_ECORRUPT; /* More than 64 bits. */
        }
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0) {
            if (b == 0 && i > 0) {
                return AEGIS_ECORRUPT; /* Not minimal. */
            }
            *out = v;
            return 0;
        }
    }
    return AEGIS_ECORRUPT;
}

static int get_bytes(struct reader *r, size_t max, struct aegis_kv_bytes *out)
{
    uint64_t len;

    if (get_varint(r, &len) != 0) {
        return AEGIS_ECORRUPT;
    }
    if (len > max || len > r->left) {
        return AEGIS_ECORRUPT;
    }
    out->data = len > 0 ? r->p : NULL;
    out->len = (size_t)len;
    r->p += len;
    r->left -= (size_t)len;
    return 0;
}

static int get_list(struct reader *r, bool pairs, struct aegis_kv_cmd *cmd)
{
    struct aegis_kv_bytes key, value;
    uint64_t count;
    const uint8_t *start;

    if (get_varint(r, &count) != 0) {
        return AEGIS_ECORRUPT;
    }
    if (count == 0 || count > AEGIS_KV_MULTI_MAX) {
        return AEGIS_ECORRUPT;
    }
    start = r->p;
    /* Bounded by count <= AEGIS_KV_MULTI_MAX; each item consumes at least one byte. */
    for (uint64_t i = 0; i < count; i++) {
        if (get_bytes(r, AEGIS_KV_KEY_LEN_MAX, &key) != 0) {
            return AEGIS_ECORRUPT;
        }
        if (pairs && get_bytes(r, AEGIS_BUF_LEN_MAX, &value) != 0) {
            return AEGIS_ECORRUPT;
        }
    }
    cmd->count = (uint32_t)count;
    cmd->list.data = start;
    cmd->list.len = (size_t)(r->p - start);
    return 0;
}

static int decode_cas(struct reader *r, struct aegis_kv_cmd *cmd)
{
    uint8_t flags;

    if (get_bytes(r, AEGIS_KV_KEY_LEN_MAX, &cmd->key) != 0 || get_u8(r, &flags) != 0) {
        return AEGIS_ECORRUPT;
    }
    if (flags > 1) {
        return AEGIS_ECORRUPT;
    }
    cmd->expected_present = flags == 1;
    if (cmd->expected_present && get_bytes(r, AEGIS_BUF_LEN_MAX, &cmd->expected) != 0) {
        return AEGIS_ECORRUPT;
    }
    return get_bytes(r, AEGIS_BUF_LEN_MAX, &cmd->value);
}

static int decode_body(struct reader *r, struct aegis_kv_cmd *cmd)
{
    uint64_t u;

    switch (cmd->type) {
    case AEGIS_KV_GET:
        return get_bytes(r, AEGIS_KV_KEY_LEN_MAX, &cmd->key);
    case AEGIS_KV_SET:
        if (get_bytes(r, AEGIS_KV_KEY_LEN_MAX, &cmd->key) != 0) {
            return AEGIS_ECORRUPT;
        }
        return get_bytes(r, AEGIS_BUF_LEN_MAX, &cmd->value);
    case AEGIS_KV_DELETE:
        return get_list(r, false, cmd);
    case AEGIS_KV_CAS:
        return decode_cas(r, cmd);
    case AEGIS_KV_INCREMENT:
        if (get_bytes(r, AEGIS_KV_KEY_LEN_MAX, &cmd->key) != 0 || get_varint(r, &u) != 0) {
            return AEGIS_ECORRUPT;
        }
        cmd->delta = unzigzag(u);
        return 0;
    case AEGIS_KV_CUSTOM:
        if (get_bytes(r, AEGIS_KV_CUSTOM_NAME_LEN_MAX, &cmd->name) != 0) {
            return AEGIS_ECORRUPT;
        }
        return get_bytes(r, AEGIS_BUF_LEN_MAX, &cmd->args);
    case AEGIS_KV_MSET:
        return get_list(r, true, cmd);
    default:
        return AEGIS_ECORRUPT;
    }
}

int aegis__kv_cmd_decode(const uint8_t *data, size_t len, struct aegis_kv_cmd *cmd_out)
{
    struct reader r = {.p = data, .left = len};
    struct aegis_kv_cmd cmd;

    memset(&cmd, 0, sizeof(cmd));
    if (len == 0 || data == NULL) {
        return AEGIS_ECORRUPT;
    }
    if (get_u8(&r, &cmd.type) != 0 || decode_body(&r, &cmd) != 0) {
        return AEGIS_ECORRUPT;
    }
    if (r.left != 0) {
        return AEGIS_ECORRUPT;
    }
    *cmd_out = cmd;
    return 0;
}

bool aegis__kv_cmd_next(const struct aegis_kv_cmd *cmd, size_t *offset,
                        struct aegis_kv_bytes *key_out, struct aegis_kv_bytes *value_out)
{
    struct reader r;
    struct aegis_kv_bytes value = {NULL, 0};
    int rv;

    AEGIS_ASSERT(cmd->type == AEGIS_KV_DELETE || cmd->type == AEGIS_KV_MSET);
    AEGIS_ASSERT(*offset <= cmd->list.len);
    if (*offset == cmd->list.len) {
        return false;
    }
    /* The list was validated by decode: failures here are programmer errors. */
    r.p = cmd->list.data + *offset;
    r.left = cmd->list.len - *offset;
    rv = get_bytes(&r, AEGIS_KV_KEY_LEN_MAX, key_out);
    AEGIS_ASSERT(rv == 0);
    if (cmd->type == AEGIS_KV_MSET) {
        rv = get_bytes(&r, AEGIS_BUF_LEN_MAX, &value);
        AEGIS_ASSERT(rv == 0);
    }
    if (value_out != NULL) {
        *value_out = value;
    }
    *offset = cmd->list.len - r.left;
    return true;
}

/* Add the size of a bytes() field of @len to *@size, failing when it grows past the
 * largest buffer. */
static int add_field(uint64_t *size, size_t len, size_t max)
{
    if (len > max) {
        return AEGIS_ETOOBIG;
    }
    *size += varint_size(len) + (uint64_t)len;
    if (*size > AEGIS_BUF_LEN_MAX) {
        return AEGIS_ETOOBIG;
    }
    return 0;
}

static int create_out(const struct aegis_allocator *alloc, uint64_t size, uint8_t type,
                      struct aegis_buf **out, uint8_t **p_out)
{
    struct aegis_buf *b;

    AEGIS_ASSERT(size >= 1);
    AEGIS_ASSERT(size <= AEGIS_BUF_LEN_MAX);
    b = aegis__buf_create(alloc, (size_t)size);
    if (b == NULL) {
        return AEGIS_ENOMEM;
    }
    b->data[0] = type;
    *out = b;
    *p_out = b->data + 1;
    return 0;
}

static void finish_out(const struct aegis_buf *b, const uint8_t *end)
{
    /* The size computation and the writer must agree exactly. */
    AEGIS_ASSERT(end == b->data + b->len);
}

int aegis__kv_encode_get(const struct aegis_allocator *alloc, const void *key, size_t key_len,
                         struct aegis_buf **out)
{
    uint64_t size = 1;
    uint8_t *p;
    int rv;

    if ((rv = add_field(&size, key_len, AEGIS_KV_KEY_LEN_MAX)) != 0 ||
        (rv = create_out(alloc, size, AEGIS_KV_GET, out, &p)) != 0) {
        return rv;
    }
    p = put_bytes(p, key, key_len);
    finish_out(*out, p);
    return 0;
}

int aegis__kv_encode_set(const struct aegis_allocator *alloc, const void *key, size_t key_len,
                         const void *value, size_t value_len, struct aegis_buf **out)
{
    uint64_t size = 1;
    uint8_t *p;
    int rv;

    if ((rv = add_field(&size, key_len, AEGIS_KV_KEY_LEN_MAX)) != 0 ||
        (rv = add_field(&size, value_len, AEGIS_BUF_LEN_MAX)) != 0 ||
        (rv = create_out(alloc, size, AEGIS_KV_SET, out, &p)) != 0) {
        return rv;
    }
    p = put_bytes(p, key, key_len);
    p = put_bytes(p, value, value_len);
    finish_out(*out, p);
    return 0;
}

static int encode_list(const struct aegis_allocator *alloc, uint8_t type,
                       const struct aegis_kv_bytes *keys, const struct aegis_kv_bytes *values,
                       size_t count, struct aegis_buf **out)
{
    uint64_t size = 1;
    uint8_t *p;
    int rv;

    if (count == 0) {
        return AEGIS_EINVAL;
    }
    if (count > AEGIS_KV_MULTI_MAX) {
        return AEGIS_ETOOBIG;
    }
    size += varint_size(count);
    for (size_t i = 0; i < count; i++) {
        if ((rv = add_field(&size, keys[i].len, AEGIS_KV_KEY_LEN_MAX)) != 0) {
            return rv;
        }
        if (values != NULL && (rv = add_field(&size, values[i].len, AEGIS_BUF_LEN_MAX)) != 0) {
            return rv;
        }
    }
    if ((rv = create_out(alloc, size, type, out, &p)) != 0) {
        return rv;
    }
    p = put_varint(p, count);
    for (size_t i = 0; i < count; i++) {
        p = put_bytes(p, keys[i].data, keys[i].len);
        if (values != NULL) {
            p = put_bytes(p, values[i].data, values[i].len);
        }
    }
    finish_out(*out, p);
    return 0;
}

int aegis__kv_encode_delete(const struct aegis_allocator *alloc,
                            const struct aegis_kv_bytes *keys, size_t count,
                            struct aegis_buf **out)
{
    return encode_list(alloc, AEGIS_KV_DELETE, keys, NULL, count, out);
}

int aegis__kv_encode_mset(const struct aegis_allocator *alloc,
                          const struct aegis_kv_bytes *keys,
                          const struct aegis_kv_bytes *values, size_t count,
                          struct aegis_buf **out)
{
    AEGIS_ASSERT(values != NULL);
    return encode_list(alloc, AEGIS_KV_MSET, keys, values, count, out);
}

int aegis__kv_encode_cas(const struct aegis_allocator *alloc, const void *key, size_t key_len,
                         const struct aegis_kv_bytes *expected, const void *value,
                         size_t value_len, struct aegis_buf **out)
{
    uint64_t size = 2; /* Type and flags. */
    uint8_t *p;
    int rv;

    if ((rv = add_field(&size, key_len, AEGIS_KV_KEY_LEN_MAX)) != 0 ||
        (rv = add_field(&size, value_len, AEGIS_BUF_LEN_MAX)) != 0) {
        return rv;
    }
    if (expected != NULL && (rv = add_field(&size, expected->len, AEGIS_BUF_LEN_MAX)) != 0) {
        return rv;
    }
    if ((rv = create_out(alloc, size, AEGIS_KV_CAS, out, &p)) != 0) {
        return rv;
    }
    p = put_bytes(p, key, key_len);
    *p++ = expected != NULL ? 1 : 0;
    if (expected != NULL) {
        p = put_bytes(p, expected->data, expected->len);
    }
    p = put_bytes(p, value, value_len);
    finish_out(*out, p);
    return 0;
}

int aegis__kv_encode_increment(const struct aegis_allocator *alloc, const void *key,
                               size_t key_len, int64_t delta, struct aegis_buf **out)
{
    uint64_t size = 1;
    uint64_t z = zigzag(delta);
    uint8_t *p;
    int rv;

    if ((rv = add_field(&size, key_len, AEGIS_KV_KEY_LEN_MAX)) != 0) {
        return rv;
    }
    size += varint_size(z);
    if ((rv = create_out(alloc, size, AEGIS_KV_INCREMENT, out, &p)) != 0) {
        return rv;
    }
    p = put_bytes(p, key, key_len);
    p = put_varint(p, z);
    finish_out(*out, p);
    return 0;
}

int aegis__kv_encode_custom(const struct aegis_allocator *alloc, const void *name,
                            size_t name_len, const void *args, size_t args_len,
                            struct aegis_buf **out)
{
    uint64_t size = 1;
    uint8_t *p;
    int rv;

    if ((rv = add_field(&size, name_len, AEGIS_KV_CUSTOM_NAME_LEN_MAX)) != 0 ||
        (rv = add_field(&size, args_len, AEGIS_BUF_LEN_MAX)) != 0 ||
        (rv = create_out(alloc, size, AEGIS_KV_CUSTOM, out, &p)) != 0) {
        return rv;
    }
    p = put_bytes(p, name, name_len);
    p = put_bytes(p, args, args_len);
    finish_out(*out, p);
    return 0;
}
