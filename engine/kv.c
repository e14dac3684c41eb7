/* SPDX-License-Identifier: MIT */
/* The versioned key-value state machine: hash table, apply, reads. See kv.h for the
 * design; the command encoding is in kv_codec.c and the snapshot in kv_snapshot.c.
 *
 * The table is open addressing with linear probing over a power-of-two array of 16-byte
 * slots {tag, value length, item}, kept at most 3/4 full so probe sequences stay short
 * and always end at an empty slot. The tag is the top 32 bits of the key's SipHash; its
 * home slot is the tag's top bits, so slot order follows tag order at every table size
 * (the snapshot view walks it that way; kv_snapshot.c). Deletion shifts the following run
 * back (no tombstones), so lookups never degrade after many deletes. Growth doubles the
 * array and moves every item at once using the stored tags: O(n) on the apply thread,
 * amortised O(1) per insert; an incremental rehash (Redis's dictRehash) is the upgrade if
 * that pause ever shows up in latency.
 *
 * Items (layout in kv.h): one allocation per key holding value, version and key, which is
 * also the struct aegis_buf handed to readers. A lookup touches the slot, then the key
 * inside the item (found from the slot's value length, without waiting for the item's
 * header; the header is prefetched meanwhile for the reference a GET takes); a write
 * allocates one new item and drops the old one, instead of a value buffer plus, for a
 * new key, an item. The allocations come from the kv's allocator (jemalloc in aegisd,
 * whose size classes are slabs already); a kv-private slab would need a free path that
 * is safe on the threads GET replies are released on, for no fewer cache misses.
 *
 * Writes happen in two steps: prepare makes every allocation the command needs (the new
 * item, table growth, room in an open view's side list), then commit changes the table
 * and cannot fail. A command that runs out of memory therefore changes nothing. */
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
        /* Homes come from a 32-bit tag: at most 2^32 slots (64 GiB of table). */
        if (slots > SIZE_MAX / 2 / sizeof(struct aegis_kv_slot) || slots >= (size_t)1 << 32) {
            return 0;
        }
        slots *= 2;
    }
    return slots;
}

static unsigned shift_for(size_t slots)
{
    unsigned bits = 0;

    AEGIS_ASSERT(slots >= TABLE_SLOTS_MIN);
    AEGIS_ASSERT((slots & (slots - 1)) == 0);
    while (((size_t)1 << bits) < slots) {
        bits++;
    }
    AEGIS_ASSERT(bits <= 32);
    return 32 - bits;
}

/* The home slot of @tag: its top bits, so that slot order follows tag order (the
 * snapshot view's cursor relies on it; see kv_snapshot.c). */
static inline size_t home_of(const struct aegis_kv_table *t, uint32_t tag)
{
    return (size_t)(tag >> t->shift);
}

struct aegis_buf *aegis__kv_item_create(const struct aegis_allocator *alloc, const void *key,
                                        size_t key_len, const void *value, size_t value_len,
                                        aegis_index version)
{
    struct aegis_buf *item;
    uint32_t k = (uint32_t)key_len;

    AEGIS_ASSERT(key_len <= AEGIS_KV_KEY_LEN_MAX);
    AEGIS_ASSERT(value_len <= AEGIS_BUF_LEN_MAX);
    alloc = aegis__alloc_or_default(alloc);
    item = aegis__malloc(alloc, sizeof(*item) + value_len + AEGIS_KV_ITEM_META_BYTES + key_len);
    if (item == NULL) {
        return NULL;
    }
    item->refs = 1;
    item->len = (uint32_t)value_len;
    item->alloc = alloc;
    memcpy(item->data + value_len, &version, sizeof(version));
    memcpy(item->data + value_len + 8, &k, sizeof(k));
    if (value != NULL && value_len > 0) {
        memcpy(item->data, value, value_len);
    }
    if (key != NULL && key_len > 0) {
        memcpy(item->data + value_len + AEGIS_KV_ITEM_META_BYTES, key, key_len);
    }
    return item;
}

static uint64_t item_bytes(const struct aegis_buf *item)
{
    return (uint64_t)aegis__kv_item_key_len(item) + item->len;
}

int aegis__kv_table_init(const struct aegis_kv *kv, struct aegis_kv_table *t,
                         size_t keys_count)
{
    size_t slots = slots_for(keys_count);

    if (slots == 0) {
        return AEGIS_ENOMEM;
    }
    t->slots = aegis__calloc(kv->alloc, slots, sizeof(*t->slots));
    if (t->slots == NULL) {
        return AEGIS_ENOMEM;
    }
    t->alloc = kv->alloc;
    t->mask = slots - 1;
    t->shift = shift_for(slots);
    t->count = 0;
    t->bytes = 0;
    return 0;
}

void aegis__kv_table_free(struct aegis_kv_table *t)
{
    if (t->slots == NULL) {
        return;
    }
    for (size_t i = 0; i <= t->mask; i++) {
        if (t->slots[i].item != NULL) {
            aegis__buf_unref(t->slots[i].item);
        }
    }
    aegis__free(t->alloc, t->slots);
    memset(t, 0, sizeof(*t));
}

/* True when the item in @s has @key: reads the key's bytes only (located from the slot). */
static bool slot_has_key(const struct aegis_kv_slot *s, const uint8_t *key, size_t key_len)
{
    const uint8_t *meta = s->item->data + s->value_len;
    uint32_t n;

    memcpy(&n, meta + 8, sizeof(n));
    return n == key_len &&
           (key_len == 0 || memcmp(meta + AEGIS_KV_ITEM_META_BYTES, key, key_len) == 0);
}

/* The slot holding @key, or the empty slot that ends its probe sequence. */
static size_t probe(const struct aegis_kv_table *t, uint64_t hash, const uint8_t *key,
                    size_t key_len)
{
    uint32_t tag = aegis__kv_tag(hash);
    size_t i = home_of(t, tag);

    /* Bounded: the table is never full, so an empty slot ends the walk. */
    for (size_t n = 0; n <= t->mask; n++, i = (i + 1) & t->mask) {
        const struct aegis_kv_slot *s = &t->slots[i];

        if (s->item == NULL) {
            return i;
        }
        if (s->tag == tag) {
            AEGIS_DASSERT(s->value_len == s->item->len);
            __builtin_prefetch(s->item); /* The header: its count, for a reference. */
            if (slot_has_key(s, key, key_len)) {
                return i;
            }
        }
    }
    AEGIS_UNREACHABLE();
}

struct aegis_buf *aegis__kv_table_find(const struct aegis_kv_table *t, uint64_t hash,
                                       const uint8_t *key, size_t key_len)
{
    return t->slots[probe(t, hash, key, key_len)].item;
}

void aegis__kv_table_insert_new(struct aegis_kv_table *t, uint64_t hash, struct aegis_buf *item)
{
    size_t i;

    AEGIS_ASSERT(item != NULL);
    AEGIS_ASSERT(t->count + 1 <= (t->mask + 1) / 4 * 3);
    i = probe(t, hash, aegis__kv_item_key(item), aegis__kv_item_key_len(item));
    AEGIS_ASSERT(t->slots[i].item == NULL);
    t->slots[i].tag = aegis__kv_tag(hash);
    t->slots[i].value_len = item->len;
    t->slots[i].item = item;
    t->count++;
    t->bytes += item_bytes(item);
}

int aegis__kv_table_reserve(const struct aegis_kv *kv, struct aegis_kv_table *t, size_t extra)
{
    struct aegis_kv_slot *old = t->slots;
    size_t old_slots = t->mask + 1;
    size_t slots;

    if (extra <= (t->mask + 1) / 4 * 3 - t->count) {
        return 0;
    }
    if (extra > SIZE_MAX / 2 - t->count) {
        return AEGIS_ENOMEM;
    }
    slots = slots_for(t->count + extra);
    if (slots == 0) {
        return AEGIS_ENOMEM;
    }
    t->slots = aegis__calloc(kv->alloc, slots, sizeof(*t->slots));
    if (t->slots == NULL) {
        t->slots = old;
        return AEGIS_ENOMEM;
    }
    t->mask = slots - 1;
    t->shift = shift_for(slots);
    /* Homes are top bits: a doubled table keeps the old order, so one pass in slot order
     * places every item (a wrapped run's items land past the end and wrap again). */
    for (size_t i = 0; i < old_slots; i++) {
        if (old[i].item != NULL) {
            size_t j = home_of(t, old[i].tag);

            while (t->slots[j].item != NULL) {
                j = (j + 1) & t->mask;
            }
            t->slots[j] = old[i];
        }
    }
    aegis__free(kv->alloc, old);
    return 0;
}

/* Hand the table's reference to @item (leaving the table) to the open view or drop it. */
static void retire(struct aegis_kv *kv, uint32_t tag, struct aegis_buf *item)
{
    if (kv->snap != NULL) {
        aegis__kv_snap_retire(kv, tag, item);
    } else {
        aegis__buf_unref(item);
    }
}

/* Empty slot @i and shift back the entries of the run after it that may move closer to
 * their home slot, so that no probe sequence crosses a hole. */
static void remove_at(struct aegis_kv *kv, size_t i)
{
    struct aegis_kv_table *t = &kv->t;
    struct aegis_buf *item = t->slots[i].item;
    size_t j = i;

    AEGIS_ASSERT(item != NULL);
    AEGIS_ASSERT(t->count > 0);
    t->count--;
    t->bytes -= item_bytes(item);
    retire(kv, t->slots[i].tag, item);
    for (size_t n = 0; n < t->mask; n++) {
        size_t home;

        j = (j + 1) & t->mask;
        if (t->slots[j].item == NULL) {
            break;
        }
        home = home_of(t, t->slots[j].tag);
        /* The entry at j stays when its home lies cyclically in (i, j]. */
        if (i <= j ? (home > i && home <= j) : (home > i || home <= j)) {
            continue;
        }
        t->slots[i] = t->slots[j];
        i = j;
    }
    t->slots[i].item = NULL;
    t->slots[i].tag = 0;
    t->slots[i].value_len = 0;
}

int aegis__kv_init(struct aegis_kv *kv, const struct aegis_allocator *alloc,
                   uint64_t hash_seed)
{
    memset(kv, 0, sizeof(*kv));
    kv->alloc = aegis__alloc_or_default(alloc);
    /* Two key words from one seed: splitmix64's constant keeps them unrelated. */
    kv->seed[0] = hash_seed;
    kv->seed[1] = (hash_seed ^ 0x9e3779b97f4a7c15ull) * 0xbf58476d1ce4e5b9ull;
    return aegis__kv_table_init(kv, &kv->t, 0);
}

void aegis__kv_close(struct aegis_kv *kv)
{
    AEGIS_ASSERT(kv->custom_index == 0);
    AEGIS_ASSERT(kv->snap == NULL); /* Close the view first. */
    aegis__kv_table_free(&kv->t);
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
    return kv->t.count;
}

void aegis__kv_result_release(struct aegis_kv_result *result)
{
    aegis__buf_unref(result->value);
    result->value = NULL;
}

/* One pending write of @key: prepared (allocations made, nothing visible), then either
 * committed or aborted. */
struct write {
    uint64_t hash;
    struct aegis_buf *item; /* The new item (key, value, version); owned until committed. */
    bool fresh;             /* The key was absent at prepare. */
};

/* Prepare writing @item (a reference handed over: on failure it is dropped). A NULL @item
 * is an allocation that already failed. */
static int write_prepare(struct aegis_kv *kv, struct write *w, struct aegis_buf *item)
{
    w->item = item;
    w->fresh = false;
    if (item == NULL) {
        return AEGIS_ENOMEM;
    }
    w->hash = aegis__kv_hash(kv, aegis__kv_item_key(item), aegis__kv_item_key_len(item));
    w->fresh = aegis__kv_table_find(&kv->t, w->hash, aegis__kv_item_key(item),
                                    aegis__kv_item_key_len(item)) == NULL;
    return 0;
}

static void write_abort(struct write *w)
{
    aegis__buf_unref(w->item);
    w->item = NULL;
}

/* Make the write visible. Cannot fail: the table and the view have room for it. */
static void write_commit(struct aegis_kv *kv, struct write *w)
{
    struct aegis_kv_table *t = &kv->t;
    size_t i = probe(t, w->hash, aegis__kv_item_key(w->item), aegis__kv_item_key_len(w->item));
    struct aegis_buf *old = t->slots[i].item;

    if (old != NULL) {
        /* Present (perhaps inserted by an earlier write of the same command). */
        t->bytes -= old->len;
        t->bytes += w->item->len;
        t->slots[i].item = w->item;
        t->slots[i].value_len = w->item->len;
        retire(kv, t->slots[i].tag, old);
    } else {
        /* Absent: the probe stopped at the empty slot where the key belongs. */
        AEGIS_ASSERT(t->count + 1 <= (t->mask + 1) / 4 * 3);
        t->slots[i].tag = aegis__kv_tag(w->hash);
        t->slots[i].value_len = w->item->len;
        t->slots[i].item = w->item;
        t->count++;
        t->bytes += item_bytes(w->item);
    }
    w->item = NULL;
}

/* Room for @fresh new keys and for the view to keep @replaced old items. */
static int write_reserve(struct aegis_kv *kv, size_t fresh, size_t replaced)
{
    if (fresh == 0 && kv->snap == NULL) {
        return 0; /* The common case: an overwrite with no view open. */
    }
    if (aegis__kv_table_reserve(kv, &kv->t, fresh) != 0) {
        return AEGIS_ENOMEM;
    }
    if (kv->snap != NULL && replaced > 0) {
        return aegis__kv_snap_reserve(kv, replaced);
    }
    return 0;
}

/* Prepare, reserve and commit one write of a new @item. */
static int write_one(struct aegis_kv *kv, struct aegis_buf *item)
{
    struct write w;
    int rv;

    rv = write_prepare(kv, &w, item);
    if (rv != 0) {
        return rv;
    }
    if (write_reserve(kv, w.fresh ? 1 : 0, w.fresh ? 0 : 1) != 0) {
        write_abort(&w);
        return AEGIS_ENOMEM;
    }
    write_commit(kv, &w);
    return 0;
}

static struct aegis_buf *new_item(const struct aegis_kv *kv, struct aegis_kv_bytes key,
                                  struct aegis_kv_bytes value, aegis_index index)
{
    return aegis__kv_item_create(kv->alloc, key.data, key.len, value.data, value.len, index);
}

static int run_get(struct aegis_kv *kv, const struct aegis_kv_cmd *cmd,
                   struct aegis_kv_result *result)
{
    return aegis__kv_get(kv, cmd->key.data, cmd->key.len, &result->value, &result->version);
}

static int run_set(struct aegis_kv *kv, aegis_index index, const struct aegis_kv_cmd *cmd,
                   struct aegis_kv_result *result)
{
    int rv = write_one(kv, new_item(kv, cmd->key, cmd->value, index));

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
        rv = write_prepare(kv, &writes[prepared], new_item(kv, key, value, index));
        if (rv != 0) {
            break;
        }
        fresh += writes[prepared].fresh;
        prepared++;
    }
    if (rv == 0) {
        /* Every write may replace an item (a key repeated in the command replaces the
         * item its earlier write inserted), so the view gets room for all of them. */
        rv = write_reserve(kv, fresh, prepared);
    }
    for (size_t i = 0; i < prepared; i++) {
        if (rv == 0) {
            write_commit(kv, &writes[i]);
        } else {
            write_abort(&writes[i]);
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

    AEGIS_ASSERT(cmd->count >= 1);
    if (kv->snap != NULL && aegis__kv_snap_reserve(kv, cmd->count) != 0) {
        return AEGIS_ENOMEM;
    }
    /* Bounded by cmd->count <= AEGIS_KV_MULTI_MAX. */
    while (aegis__kv_cmd_next(cmd, &offset, &key, NULL)) {
        uint64_t hash = aegis__kv_hash(kv, key.data, key.len);
        size_t i = probe(&kv->t, hash, key.data, key.len);

        if (kv->t.slots[i].item != NULL) {
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
    struct aegis_buf *item = aegis__kv_table_find(&kv->t, hash, cmd->key.data, cmd->key.len);
    bool match;
    int rv;

    if (item == NULL) {
        match = !cmd->expected_present;
    } else {
        match = cmd->expected_present && value_equals(item, cmd->expected);
    }
    if (!match) {
        if (item != NULL) {
            result->value = aegis__buf_ref(item);
            result->version = aegis__kv_item_version(item);
        }
        return AEGIS_ECASMISMATCH;
    }
    rv = write_one(kv, new_item(kv, cmd->key, cmd->value, index));
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

/* A new item for @key holding @v in decimal (NULL when memory ran out). */
static struct aegis_buf *format_int64(const struct aegis_kv *kv, struct aegis_kv_bytes key,
                                      int64_t v, aegis_index index)
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
    return new_item(kv, key, (struct aegis_kv_bytes){text + n, sizeof(text) - n}, index);
}

static int run_increment(struct aegis_kv *kv, aegis_index index,
                         const struct aegis_kv_cmd *cmd, struct aegis_kv_result *result)
{
    uint64_t hash = aegis__kv_hash(kv, cmd->key.data, cmd->key.len);
    struct aegis_buf *item = aegis__kv_table_find(&kv->t, hash, cmd->key.data, cmd->key.len);
    struct aegis_buf *text;
    int64_t current = 0, next;
    int rv;

    if (item != NULL && !parse_int64(item, &current)) {
        return AEGIS_ETYPE;
    }
    if (__builtin_add_overflow(current, cmd->delta, &next)) {
        return AEGIS_EOVERFLOW;
    }
    text = format_int64(kv, cmd->key, next, index);
    if (text == NULL) {
        return AEGIS_ENOMEM;
    }
    aegis__buf_ref(text); /* One for the store, one for the result. */
    rv = write_one(kv, text);
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
    struct aegis_buf *item;
    aegis_index version;

    if (key_len > AEGIS_KV_KEY_LEN_MAX) {
        return AEGIS_ENOTFOUND; /* No such key can have been written. */
    }
    hash = aegis__kv_hash(kv, key, key_len);
    item = aegis__kv_table_find(&kv->t, hash, key, key_len);
    if (item == NULL) {
        return AEGIS_ENOTFOUND;
    }
    version = aegis__kv_item_version(item);
    AEGIS_ASSERT(version > 0);
    AEGIS_ASSERT(version <= kv->applied_index || kv->custom_index != 0);
    if (value_out != NULL) {
        *value_out = aegis__buf_ref(item); /* The item is the value: shared, not copied. */
    }
    if (version_out != NULL) {
        *version_out = version;
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
    return write_one(kv, new_item(kv, k, v, kv->custom_index));
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
    i = probe(&kv->t, hash, key, key_len);
    if (kv->t.slots[i].item == NULL) {
        return AEGIS_ENOTFOUND;
    }
    if (kv->snap != NULL && aegis__kv_snap_reserve(kv, 1) != 0) {
        return AEGIS_ENOMEM;
    }
    remove_at(kv, i);
    return 0;
}

bool aegis__kv_equal(const struct aegis_kv *a, const struct aegis_kv *b)
{
    if (a->applied_index != b->applied_index || a->applied_term != b->applied_term ||
        a->t.count != b->t.count || a->t.bytes != b->t.bytes) {
        return false;
    }
    for (size_t i = 0; i <= a->t.mask; i++) {
        const struct aegis_buf *x = a->t.slots[i].item;
        const struct aegis_buf *y;
        const uint8_t *key;
        uint32_t key_len;

        if (x == NULL) {
            continue;
        }
        key = aegis__kv_item_key(x);
        key_len = aegis__kv_item_key_len(x);
        y = aegis__kv_table_find(&b->t, aegis__kv_hash(b, key, key_len), key, key_len);
        if (y == NULL || aegis__kv_item_version(y) != aegis__kv_item_version(x)) {
            return false;
        }
        if (!value_equals(y, (struct aegis_kv_bytes){x->data, x->len})) {
            return false;
        }
    }
    return true;
}
