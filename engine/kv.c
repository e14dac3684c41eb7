/* SPDX-License-Identifier: MIT */
/* The versioned key-value state machine: hash table, apply, reads. See kv.h for the
 * design; the command encoding is in kv_codec.c and the snapshot in kv_snapshot.c.
 *
 * The table is open addressing with linear probing over a power-of-two array of slots,
 * kept at most 3/4 full so probe sequences stay short and always end at an empty slot.
 * Deletion shifts the following run back (no tombstones), so lookups never degrade after
 * many deletes. Growth doubles the array and moves every item at once using the stored
 * hashes: O(n) on the apply thread, amortised O(1) per insert; an incremental rehash
 * (Redis's dictRehash) is the upgrade if that pause ever shows up in latency.
 *
 * Writes happen in two steps: prepare makes every allocation the command needs (value
 * buffer, item for an absent key, table growth), then commit changes the table and cannot
 * fail. A command that runs out of memory therefore changes nothing. */
#include "engine/kv.h"

#include <string.h>

#include <aegis/error.h>

#include "engine/assert.h"

#define TABLE_SLOTS_MIN ((size_t)16)
#define INT64_TEXT_LEN_MAX 20 /* "-9223372036854775808". */

/* SipHash-1-3 (Aumasson and Bernstein), the keyed hash Redis and Rust use for tables
 * that hold client-chosen keys. */
#define ROTL64(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIP_ROUND(v0, v1, v2, v3)                                                          \
    do {                                                                                   \
        v0 += v1;                                                                          \
        v1 = ROTL64(v1, 13);                                                               \
        v1 ^= v0;                                                                          \
        v0 = ROTL64(v0, 32);                                                               \
        v2 += v3;                                                                          \
        v3 = ROTL64(v3, 16);                                                               \
        v3 ^= v2;                                                                          \
        v0 += v3;                                                                          \
        v3 = ROTL64(v3, 21);                                                               \
        v3 ^= v0;                                                                          \
        v2 += v1;                                                                          \
        v1 = ROTL64(v1, 17);                                                               \
        v1 ^= v2;                                                                          \
        v2 = ROTL64(v2, 32);                                                               \
    } while (0)

static uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

uint64_t aegis__kv_hash(const struct aegis_kv *kv, const uint8_t *key, size_t key_len)
{
    uint64_t v0 = kv->seed[0] ^ 0x736f6d6570736575ull;
    uint64_t v1 = kv->seed[1] ^ 0x646f72616e646f6dull;
    uint64_t v2 = kv->seed[0] ^ 0x6c7967656e657261ull;
    uint64_t v3 = kv->seed[1] ^ 0x7465646279746573ull;
    uint64_t b = (uint64_t)key_len << 56;
    size_t whole = key_len & ~(size_t)7;

    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = load_le64(key + i);

        v3 ^= m;
        SIP_ROUND(v0, v1, v2, v3);
        v0 ^= m;
    }
    for (size_t i = whole; i < key_len; i++) {
        b |= (uint64_t)key[i] << (8 * (i - whole));
    }
    v3 ^= b;
    SIP_ROUND(v0, v1, v2, v3);
    v0 ^= b;
    v2 ^= 0xff;
    SIP_ROUND(v0, v1, v2, v3);
    SIP_ROUND(v0, v1, v2, v3);
    SIP_ROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

/* The smallest power-of-two slot count that holds @keys_count keys at 3/4 load, or 0 when
 * no array that large can exist. */
static size_t slots_for(size_t keys_count)
{
    size_t slots = TABLE_SLOTS_MIN;

    while (keys_count > slots / 4 * 3) {
        if (slots > SIZE_MAX / 2 / sizeof(struct aegis_kv_slot)) {
            return 0;
        }
        slots *= 2;
    }
    return slots;
}

int aegis__kv_table_init(struct aegis_kv *kv, size_t keys_count)
{
    size_t slots = slots_for(keys_count);

    if (slots == 0) {
        return AEGIS_ENOMEM;
    }
    kv->slots = aegis__calloc(kv->alloc, slots, sizeof(*kv->slots));
    if (kv->slots == NULL) {
        return AEGIS_ENOMEM;
    }
    kv->mask = slots - 1;
    kv->count = 0;
    kv->bytes = 0;
    return 0;
}

static void item_free(const struct aegis_kv *kv, struct aegis_kv_item *item)
{
    aegis__buf_unref(item->value);
    aegis__free(kv->alloc, item);
}

void aegis__kv_table_free(struct aegis_kv *kv)
{
    if (kv->slots == NULL) {
        return;
    }
    for (size_t i = 0; i <= kv->mask; i++) {
        if (kv->slots[i].item != NULL) {
            item_free(kv, kv->slots[i].item);
        }
    }
    aegis__free(kv->alloc, kv->slots);
    kv->slots = NULL;
    kv->mask = 0;
    kv->count = 0;
    kv->bytes = 0;
}

/* The slot holding @key, or the empty slot that ends its probe sequence. */
static size_t probe(const struct aegis_kv *kv, uint64_t hash, const uint8_t *key,
                    size_t key_len)
{
    size_t i = (size_t)hash & kv->mask;

    /* Bounded: the table is never full, so an empty slot ends the walk. */
    for (size_t n = 0; n <= kv->mask; n++, i = (i + 1) & kv->mask) {
        const struct aegis_kv_slot *s = &kv->slots[i];

        if (s->item == NULL) {
            return i;
        }
        if (s->hash == hash && s->item->key_len == key_len &&
            (key_len == 0 || memcmp(s->item->key, key, key_len) == 0)) {
            return i;
        }
    }
    AEGIS_UNREACHABLE();
}

struct aegis_kv_item *aegis__kv_table_find(const struct aegis_kv *kv, uint64_t hash,
                                           const uint8_t *key, size_t key_len)
{
    return kv->slots[probe(kv, hash, key, key_len)].item;
}

void aegis__kv_table_insert_new(struct aegis_kv *kv, uint64_t hash, struct aegis_kv_item *item)
{
    size_t i;

    AEGIS_ASSERT(item->value != NULL);
    AEGIS_ASSERT(kv->count + 1 <= (kv->mask + 1) / 4 * 3);
    i = probe(kv, hash, item->key, item->key_len);
    AEGIS_ASSERT(kv->slots[i].item == NULL);
    kv->slots[i].hash = hash;
    kv->slots[i].item = item;
    kv->count++;
    kv->bytes += (uint64_t)item->key_len + item->value->len;
}

/* Make room for @extra more keys. Returns 0 or AEGIS_ENOMEM (table unchanged). */
static int reserve(struct aegis_kv *kv, size_t extra)
{
    struct aegis_kv_slot *old = kv->slots;
    size_t old_slots = kv->mask + 1;
    size_t slots;

    if (extra <= (kv->mask + 1) / 4 * 3 - kv->count) {
        return 0;
    }
    slots = slots_for(kv->count + extra);
    if (slots == 0) {
        return AEGIS_ENOMEM;
    }
    kv->slots = aegis__calloc(kv->alloc, slots, sizeof(*kv->slots));
    if (kv->slots == NULL) {
        kv->slots = old;
        return AEGIS_ENOMEM;
    }
    kv->mask = slots - 1;
    for (size_t i = 0; i < old_slots; i++) {
        if (old[i].item != NULL) {
            size_t j = (size_t)old[i].hash & kv->mask;

            while (kv->slots[j].item != NULL) {
                j = (j + 1) & kv->mask;
            }
            kv->slots[j] = old[i];
        }
    }
    aegis__free(kv->alloc, old);
    return 0;
}

/* Empty slot @i and shift back the entries of the run after it that may move closer to
 * their home slot, so that no probe sequence crosses a hole. */
static void remove_at(struct aegis_kv *kv, size_t i)
{
    struct aegis_kv_item *item = kv->slots[i].item;
    size_t j = i;

    AEGIS_ASSERT(item != NULL);
    AEGIS_ASSERT(kv->count > 0);
    kv->count--;
    kv->bytes -= (uint64_t)item->key_len + item->value->len;
    item_free(kv, item);
    for (size_t n = 0; n < kv->mask; n++) {
        size_t home;

        j = (j + 1) & kv->mask;
        if (kv->slots[j].item == NULL) {
            break;
        }
        home = (size_t)kv->slots[j].hash & kv->mask;
        /* The entry at j stays when its home lies cyclically in (i, j]. */
        if (i <= j ? (home > i && home <= j) : (home > i || home <= j)) {
            continue;
        }
        kv->slots[i] = kv->slots[j];
        i = j;
    }
    kv->slots[i].item = NULL;
    kv->slots[i].hash = 0;
}

int aegis__kv_init(struct aegis_kv *kv, const struct aegis_allocator *alloc,
                   uint64_t hash_seed)
{
    memset(kv, 0, sizeof(*kv));
    kv->alloc = aegis__alloc_or_default(alloc);
    /* Two key words from one seed: splitmix64's constant keeps them unrelated. */
    kv->seed[0] = hash_seed;
    kv->seed[1] = (hash_seed ^ 0x9e3779b97f4a7c15ull) * 0xbf58476d1ce4e5b9ull;
    return aegis__kv_table_init(kv, 0);
}

void aegis__kv_close(struct aegis_kv *kv)
{
    AEGIS_ASSERT(kv->custom_index == 0);
    aegis__kv_table_free(kv);
}

void aegis__kv_set_custom_handler(struct aegis_kv *kv, aegis_kv_custom_fn fn, void *data)
{
    kv->custom_fn = fn;
    kv->custom_data = data;
}

aegis_index aegis__kv_applied_index(const struct aegis_kv *kv)
{
    return kv->applied_index;
}

aegis_term aegis__kv_applied_term(const struct aegis_kv *kv)
{
    return kv->applied_term;
}

size_t aegis__kv_count(const struct aegis_kv *kv)
{
    return kv->count;
}

void aegis__kv_result_release(struct aegis_kv_result *result)
{
    aegis__buf_unref(result->value);
    result->value = NULL;
}

/* One pending write of @key: prepared (allocations made, nothing visible), then either
 * committed or aborted. */
struct write {
    const uint8_t *key;
    size_t key_len;
    uint64_t hash;
    struct aegis_buf *value;    /* Owned until committed. */
    struct aegis_kv_item *item; /* Pre-allocated when the key was absent at prepare. */
};

/* Prepare writing @value (a reference handed over: on failure it is dropped). */
static int write_prepare(struct aegis_kv *kv, struct write *w, struct aegis_kv_bytes key,
                         struct aegis_buf *value)
{
    w->key = key.data;
    w->key_len = key.len;
    w->hash = aegis__kv_hash(kv, key.data, key.len);
    w->value = value;
    w->item = NULL;
    if (value == NULL) {
        return AEGIS_ENOMEM;
    }
    AEGIS_ASSERT(key.len <= AEGIS_KV_KEY_LEN_MAX);
    if (aegis__kv_table_find(kv, w->hash, key.data, key.len) != NULL) {
        return 0;
    }
    w->item = aegis__malloc(kv->alloc, sizeof(*w->item) + key.len);
    if (w->item == NULL) {
        aegis__buf_unref(value);
        w->value = NULL;
        return AEGIS_ENOMEM;
    }
    w->item->value = NULL;
    w->item->version = 0;
    w->item->key_len = (uint32_t)key.len;
    if (key.len > 0) {
        memcpy(w->item->key, key.data, key.len);
    }
    return 0;
}

static void write_abort(struct aegis_kv *kv, struct write *w)
{
    aegis__buf_unref(w->value);
    aegis__free(kv->alloc, w->item);
    w->value = NULL;
    w->item = NULL;
}

/* Make the write visible. Cannot fail: reserve() made room for every prepared item. */
static void write_commit(struct aegis_kv *kv, struct write *w, aegis_index index)
{
    size_t i = probe(kv, w->hash, w->key, w->key_len);
    struct aegis_kv_item *item = kv->slots[i].item;

    if (item != NULL) {
        /* Present: replace the value; an item pre-allocated for it is not needed (the key
         * was inserted by an earlier write of the same command). */
        kv->bytes -= item->value->len;
        kv->bytes += w->value->len;
        aegis__buf_unref(item->value);
        item->value = w->value;
        item->version = index;
        aegis__free(kv->alloc, w->item);
    } else {
        /* Absent: the probe stopped at the empty slot where the key belongs. */
        AEGIS_ASSERT(w->item != NULL);
        AEGIS_ASSERT(kv->count + 1 <= (kv->mask + 1) / 4 * 3);
        w->item->value = w->value;
        w->item->version = index;
        kv->slots[i].hash = w->hash;
        kv->slots[i].item = w->item;
        kv->count++;
        kv->bytes += (uint64_t)w->key_len + w->value->len;
    }
    w->value = NULL;
    w->item = NULL;
}

/* Prepare, reserve and commit one write of a new buffer @value. */
static int write_one(struct aegis_kv *kv, struct aegis_kv_bytes key, struct aegis_buf *value,
                     aegis_index index)
{
    struct write w;
    int rv;

    rv = write_prepare(kv, &w, key, value);
    if (rv != 0) {
        return rv;
    }
    if (w.item != NULL && reserve(kv, 1) != 0) {
        write_abort(kv, &w);
        return AEGIS_ENOMEM;
    }
    write_commit(kv, &w, index);
    return 0;
}

static struct aegis_buf *copy_value(const struct aegis_kv *kv, struct aegis_kv_bytes value)
{
    return aegis__buf_from(kv->alloc, value.data, value.len);
}

static int run_get(struct aegis_kv *kv, const struct aegis_kv_cmd *cmd,
                   struct aegis_kv_result *result)
{
    return aegis__kv_get(kv, cmd->key.data, cmd->key.len, &result->value, &result->version);
}

static int run_set(struct aegis_kv *kv, aegis_index index, const struct aegis_kv_cmd *cmd,
                   struct aegis_kv_result *result)
{
    int rv = write_one(kv, cmd->key, copy_value(kv, cmd->value), index);

    if (rv == 0) {
        result->version = index;
    }
    return rv;
}

static int run_mset(struct aegis_kv *kv, aegis_index index, const struct aegis_kv_cmd *cmd,
                    struct aegis_kv_result *result)
{
    struct aegis_kv_bytes key, value;
    struct write *writes;
    size_t prepared = 0, offset = 0, fresh = 0;
    int rv = 0;

    AEGIS_ASSERT(cmd->count >= 1);
    writes = aegis__calloc(kv->alloc, cmd->count, sizeof(*writes));
    if (writes == NULL) {
        return AEGIS_ENOMEM;
    }
    /* Bounded by cmd->count <= AEGIS_KV_MULTI_MAX. */
    while (aegis__kv_cmd_next(cmd, &offset, &key, &value)) {
        AEGIS_ASSERT(prepared < cmd->count);
        rv = write_prepare(kv, &writes[prepared], key, copy_value(kv, value));
        if (rv != 0) {
            break;
        }
        fresh += writes[prepared].item != NULL;
        prepared++;
    }
    if (rv == 0) {
        rv = reserve(kv, fresh);
    }
    for (size_t i = 0; i < prepared; i++) {
        if (rv == 0) {
            write_commit(kv, &writes[i], index);
        } else {
            write_abort(kv, &writes[i]);
        }
    }
    aegis__free(kv->alloc, writes);
    if (rv == 0) {
        AEGIS_ASSERT(prepared == cmd->count);
        result->count = cmd->count;
        result->version = index;
    }
    return rv;
}

static int run_delete(struct aegis_kv *kv, const struct aegis_kv_cmd *cmd,
                      struct aegis_kv_result *result)
{
    struct aegis_kv_bytes key;
    size_t offset = 0;

    /* Bounded by cmd->count <= AEGIS_KV_MULTI_MAX. */
    while (aegis__kv_cmd_next(cmd, &offset, &key, NULL)) {
        uint64_t hash = aegis__kv_hash(kv, key.data, key.len);
        size_t i = probe(kv, hash, key.data, key.len);

        if (kv->slots[i].item != NULL) {
            remove_at(kv, i);
            result->count++;
        }
    }
    return 0;
}

static bool value_equals(const struct aegis_buf *b, struct aegis_kv_bytes bytes)
{
    return b->len == bytes.len && (bytes.len == 0 || memcmp(b->data, bytes.data, bytes.len) == 0);
}

static int run_cas(struct aegis_kv *kv, aegis_index index, const struct aegis_kv_cmd *cmd,
                   struct aegis_kv_result *result)
{
    uint64_t hash = aegis__kv_hash(kv, cmd->key.data, cmd->key.len);
    struct aegis_kv_item *item = aegis__kv_table_find(kv, hash, cmd->key.data, cmd->key.len);
    bool match;
    int rv;

    if (item == NULL) {
        match = !cmd->expected_present;
    } else {
        match = cmd->expected_present && value_equals(item->value, cmd->expected);
    }
    if (!match) {
        if (item != NULL) {
            result->value = aegis__buf_ref(item->value);
            result->version = item->version;
        }
        return AEGIS_ECASMISMATCH;
    }
    rv = write_one(kv, cmd->key, copy_value(kv, cmd->value), index);
    if (rv == 0) {
        result->swapped = true;
        result->version = index;
    }
    return rv;
}

/* Parse @b as Redis's string2ll does: an optional '-', then digits without a leading
 * zero (except "0" itself), no spaces or '+', and the value fits an int64. */
static bool parse_int64(const struct aegis_buf *b, int64_t *out)
{
    const uint8_t *p = b->data;
    size_t len = b->len, i = 0;
    bool negative = false;
    uint64_t v = 0, limit;

    if (len == 0 || len > INT64_TEXT_LEN_MAX) {
        return false;
    }
    if (len == 1 && p[0] == '0') {
        *out = 0;
        return true;
    }
    if (p[0] == '-') {
        negative = true;
        i = 1;
    }
    if (i == len || p[i] < '1' || p[i] > '9') {
        return false;
    }
    limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return false;
        }
        if (v > (limit - (uint64_t)(p[i] - '0')) / 10) {
            return false;
        }
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    AEGIS_ASSERT(v <= limit);
    *out = negative ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    return true;
}

/* Format @v in decimal into a new buffer (NULL when memory ran out). */
static struct aegis_buf *format_int64(const struct aegis_kv *kv, int64_t v)
{
    uint8_t text[INT64_TEXT_LEN_MAX];
    size_t n = sizeof(text);
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    do {
        text[--n] = (uint8_t)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0) {
        text[--n] = '-';
    }
    return aegis__buf_from(kv->alloc, text + n, sizeof(text) - n);
}

static int run_increment(struct aegis_kv *kv, aegis_index index,
                         const struct aegis_kv_cmd *cmd, struct aegis_kv_result *result)
{
    uint64_t hash = aegis__kv_hash(kv, cmd->key.data, cmd->key.len);
    struct aegis_kv_item *item = aegis__kv_table_find(kv, hash, cmd->key.data, cmd->key.len);
    struct aegis_buf *text;
    int64_t current = 0, next;
    int rv;

    if (item != NULL && !parse_int64(item->value, &current)) {
        return AEGIS_ETYPE;
    }
    if (__builtin_add_overflow(current, cmd->delta, &next)) {
        return AEGIS_EOVERFLOW;
    }
    text = format_int64(kv, next);
    if (text == NULL) {
        return AEGIS_ENOMEM;
    }
    aegis__buf_ref(text); /* One for the store, one for the result. */
    rv = write_one(kv, cmd->key, text, index);
    if (rv != 0) {
        aegis__buf_unref(text);
        return rv;
    }
    result->value = text;
    result->integer = next;
    result->version = index;
    return 0;
}

static int run_custom(struct aegis_kv *kv, aegis_index index, const struct aegis_kv_cmd *cmd,
                      struct aegis_kv_result *result)
{
    int rv;

    if (kv->custom_fn == NULL) {
        return AEGIS_ENOHANDLER;
    }
    AEGIS_ASSERT(kv->custom_index == 0);
    kv->custom_index = index;
    rv = kv->custom_fn(kv, index, cmd->name, cmd->args, result, kv->custom_data);
    kv->custom_index = 0;
    AEGIS_ASSERT(rv <= 0);
    return rv;
}

static int run_command(struct aegis_kv *kv, aegis_index index, const uint8_t *payload,
                       size_t len, struct aegis_kv_result *result)
{
    struct aegis_kv_cmd cmd;

    if (aegis__kv_cmd_decode(payload, len, &cmd) != 0) {
        return AEGIS_ECORRUPT;
    }
    switch (cmd.type) {
    case AEGIS_KV_GET:
        return run_get(kv, &cmd, result);
    case AEGIS_KV_SET:
        return run_set(kv, index, &cmd, result);
    case AEGIS_KV_DELETE:
        return run_delete(kv, &cmd, result);
    case AEGIS_KV_CAS:
        return run_cas(kv, index, &cmd, result);
    case AEGIS_KV_INCREMENT:
        return run_increment(kv, index, &cmd, result);
    case AEGIS_KV_CUSTOM:
        return run_custom(kv, index, &cmd, result);
    case AEGIS_KV_MSET:
        return run_mset(kv, index, &cmd, result);
    default:
        AEGIS_UNREACHABLE(); /* The decoder accepts only the types above. */
    }
}

int aegis__kv_apply(struct aegis_kv *kv, aegis_index index, aegis_term term, uint8_t type,
                    const uint8_t *payload, size_t len, struct aegis_kv_result *result_out)
{
    struct aegis_kv_result *r = result_out;
    int status = 0;

    AEGIS_ASSERT(kv->custom_index == 0); /* No apply from inside a custom handler. */
    memset(r, 0, sizeof(*r));
    if (index != kv->applied_index + 1 || term < kv->applied_term) {
        r->status = AEGIS_EORDER;
        r->applied_index = kv->applied_index;
        return AEGIS_EORDER;
    }
    if (type == AEGIS_ENTRY_COMMAND) {
        status = run_command(kv, index, payload, len, r);
    } else if (type != AEGIS_ENTRY_NOOP && type != AEGIS_ENTRY_CONFIG_CHANGE) {
        status = AEGIS_ECORRUPT;
    }
    if (status == AEGIS_ENOMEM) {
        aegis__kv_result_release(r);
        memset(r, 0, sizeof(*r));
        r->status = AEGIS_ENOMEM;
        r->applied_index = kv->applied_index;
        return AEGIS_ENOMEM;
    }
    kv->applied_index = index;
    kv->applied_term = term;
    r->status = status;
    r->applied_index = index;
    return 0;
}

int aegis__kv_apply_entry(struct aegis_kv *kv, const struct aegis_entry *entry,
                          struct aegis_kv_result *result_out)
{
    return aegis__kv_apply(kv, entry->index, entry->term, entry->type,
                           aegis__entry_data(entry), aegis__entry_len(entry), result_out);
}

int aegis__kv_get(const struct aegis_kv *kv, const void *key, size_t key_len,
                  struct aegis_buf **value_out, aegis_index *version_out)
{
    uint64_t hash;
    struct aegis_kv_item *item;

    if (key_len > AEGIS_KV_KEY_LEN_MAX) {
        return AEGIS_ENOTFOUND; /* No such key can have been written. */
    }
    hash = aegis__kv_hash(kv, key, key_len);
    item = aegis__kv_table_find(kv, hash, key, key_len);
    if (item == NULL) {
        return AEGIS_ENOTFOUND;
    }
    AEGIS_ASSERT(item->version > 0);
    AEGIS_ASSERT(item->version <= kv->applied_index || kv->custom_index != 0);
    if (value_out != NULL) {
        *value_out = aegis__buf_ref(item->value);
    }
    if (version_out != NULL) {
        *version_out = item->version;
    }
    return 0;
}

int aegis__kv_custom_put(struct aegis_kv *kv, const void *key, size_t key_len,
                         const void *value, size_t value_len)
{
    struct aegis_kv_bytes k = {key, key_len};
    struct aegis_kv_bytes v = {value, value_len};

    AEGIS_ASSERT(kv->custom_index != 0);
    if (key_len > AEGIS_KV_KEY_LEN_MAX || value_len > AEGIS_BUF_LEN_MAX) {
        return AEGIS_ETOOBIG;
    }
    return write_one(kv, k, copy_value(kv, v), kv->custom_index);
}

int aegis__kv_custom_delete(struct aegis_kv *kv, const void *key, size_t key_len)
{
    uint64_t hash;
    size_t i;

    AEGIS_ASSERT(kv->custom_index != 0);
    if (key_len > AEGIS_KV_KEY_LEN_MAX) {
        return AEGIS_ENOTFOUND;
    }
    hash = aegis__kv_hash(kv, key, key_len);
    i = probe(kv, hash, key, key_len);
    if (kv->slots[i].item == NULL) {
        return AEGIS_ENOTFOUND;
    }
    remove_at(kv, i);
    return 0;
}

bool aegis__kv_equal(const struct aegis_kv *a, const struct aegis_kv *b)
{
    if (a->applied_index != b->applied_index || a->applied_term != b->applied_term ||
        a->count != b->count || a->bytes != b->bytes) {
        return false;
    }
    for (size_t i = 0; i <= a->mask; i++) {
        const struct aegis_kv_item *x = a->slots[i].item;
        const struct aegis_kv_item *y;

        if (x == NULL) {
            continue;
        }
        y = aegis__kv_table_find(b, aegis__kv_hash(b, x->key, x->key_len), x->key, x->key_len);
        if (y == NULL || y->version != x->version) {
            return false;
        }
        if (!value_equals(y->value, (struct aegis_kv_bytes){x->value->data, x->value->len})) {
            return false;
        }
    }
    return true;
}
