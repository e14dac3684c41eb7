/* SPDX-License-Identifier: MIT */
/* Snapshot of the key-value state machine: the whole state in one buffer, and its exact
 * restoration.
 *
 * Format (version 1). All integers little-endian. Offsets in bytes.
 *
 *   offset  size  field
 *   0       4     magic: the bytes 'A' 'K' 'V' 'S' (0x41 0x4b 0x56 0x53)
 *   4       2     format version: 1
 *   6       2     flags: 0 (reserved; anything else is corrupt)
 *   8       8     applied index
 *   16      8     applied term
 *   24      8     key count N
 *   32      ...   N records, in strictly ascending key order (bytewise, a proper prefix
 *                 sorts first); each record:
 *                   0   4   key length K (0..65536)
 *                   4   4   value length V (0..AEGIS_BUF_LEN_MAX)
 *                   8   8   version (1..applied index)
 *                   16  K   key bytes
 *                   16+K V  value bytes
 *   end-4   4     CRC32C (engine/crc32c.h, initial value 0) of every byte before it
 *
 * The total length is exactly 36 + sum over records of (16 + K + V); the snapshot ends
 * right after the CRC. An applied index of 0 requires term 0 and no keys.
 *
 * Why sorted: the bytes are then a function of the state alone (not of the hash seed or
 * the order of past writes), so replicas at the same index write identical snapshots and
 * their CRCs can be compared; restore gets duplicate-key detection for free.
 *
 * Restore checks, in order: length >= 36, magic, CRC, version, flags, header limits
 * (N bounded by what the length can hold, so a hostile count cannot size a huge table),
 * then each record. It builds the new table aside and swaps it in only after the last
 * record checked out, so a failure leaves the machine exactly as it was.
 *
 * Streaming: records are self-delimiting and the CRC is a running checksum, so the same
 * format can be produced and consumed in chunks (InstallSnapshot's offset/done pieces)
 * without holding it whole: a writer walks the sorted key array and emits records until
 * its chunk is full; a reader keeps a partial record across chunks and extends the CRC.
 * This single-buffer version bounds the state to AEGIS_BUF_LEN_MAX bytes. */
#include "engine/kv.h"

#include <stdlib.h>
#include <string.h>

#include <aegis/error.h>

#include "engine/assert.h"
#include "engine/crc32c.h"

#define SNAPSHOT_MAGIC "AKVS"
#define SNAPSHOT_VERSION 1
#define SNAPSHOT_HEADER_BYTES 32
#define SNAPSHOT_RECORD_HEADER_BYTES 16
#define SNAPSHOT_CRC_BYTES 4

static void put_le(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint64_t get_le(const uint8_t *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = n; i > 0; i--) {
        v = (v << 8) | p[i - 1];
    }
    return v;
}

static int compare_keys(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len)
{
    size_t n = a_len < b_len ? a_len : b_len;
    int c = n > 0 ? memcmp(a, b, n) : 0;

    if (c != 0) {
        return c;
    }
    return a_len < b_len ? -1 : a_len > b_len ? 1 : 0;
}

static int compare_items(const void *x, const void *y)
{
    const struct aegis_kv_item *a = *(const struct aegis_kv_item *const *)x;
    const struct aegis_kv_item *b = *(const struct aegis_kv_item *const *)y;

    return compare_keys(a->key, a->key_len, b->key, b->key_len);
}

static uint8_t *write_record(uint8_t *p, const struct aegis_kv_item *item)
{
    put_le(p, item->key_len, 4);
    put_le(p + 4, item->value->len, 4);
    put_le(p + 8, item->version, 8);
    p += SNAPSHOT_RECORD_HEADER_BYTES;
    if (item->key_len > 0) {
        memcpy(p, item->key, item->key_len);
    }
    p += item->key_len;
    if (item->value->len > 0) {
        memcpy(p, item->value->data, item->value->len);
    }
    return p + item->value->len;
}

int aegis__kv_snapshot(const struct aegis_kv *kv, struct aegis_buf **snapshot_out)
{
    uint64_t size = SNAPSHOT_HEADER_BYTES + SNAPSHOT_CRC_BYTES + kv->bytes;
    const struct aegis_kv_item **items = NULL;
    struct aegis_buf *b;
    uint8_t *p;
    size_t n = 0;

    AEGIS_ASSERT(kv->custom_index == 0);
    if (size > AEGIS_BUF_LEN_MAX ||
        kv->count > (AEGIS_BUF_LEN_MAX - size) / SNAPSHOT_RECORD_HEADER_BYTES) {
        return AEGIS_ETOOBIG;
    }
    size += (uint64_t)kv->count * SNAPSHOT_RECORD_HEADER_BYTES;
    AEGIS_ASSERT(size <= AEGIS_BUF_LEN_MAX);
    if (kv->count > 0) {
        items = aegis__calloc(kv->alloc, kv->count, sizeof(*items));
        if (items == NULL) {
            return AEGIS_ENOMEM;
        }
    }
    b = aegis__buf_create(kv->alloc, (size_t)size);
    if (b == NULL) {
        aegis__free(kv->alloc, items);
        return AEGIS_ENOMEM;
    }
    for (size_t i = 0; i <= kv->mask; i++) {
        if (kv->slots[i].item != NULL) {
            items[n++] = kv->slots[i].item;
        }
    }
    AEGIS_ASSERT(n == kv->count);
    if (n > 1) {
        qsort(items, n, sizeof(*items), compare_items);
    }
    p = b->data;
    memcpy(p, SNAPSHOT_MAGIC, 4);
    put_le(p + 4, SNAPSHOT_VERSION, 2);
    put_le(p + 6, 0, 2);
    put_le(p + 8, kv->applied_index, 8);
    put_le(p + 16, kv->applied_term, 8);
    put_le(p + 24, n, 8);
    p += SNAPSHOT_HEADER_BYTES;
    for (size_t i = 0; i < n; i++) {
        p = write_record(p, items[i]);
    }
    put_le(p, aegis__crc32c(0, b->data, (size_t)(p - b->data)), 4);
    AEGIS_ASSERT(p + SNAPSHOT_CRC_BYTES == b->data + b->len);
    aegis__free(kv->alloc, items);
    *snapshot_out = b;
    return 0;
}

struct snapshot_header {
    aegis_index index;
    aegis_term term;
    uint64_t count;
};

static int check_header(const uint8_t *data, size_t len, struct snapshot_header *h)
{
    uint32_t crc;

    if (len < SNAPSHOT_HEADER_BYTES + SNAPSHOT_CRC_BYTES || data == NULL) {
        return AEGIS_ECORRUPT;
    }
    if (memcmp(data, SNAPSHOT_MAGIC, 4) != 0) {
        return AEGIS_ECORRUPT;
    }
    crc = (uint32_t)get_le(data + len - SNAPSHOT_CRC_BYTES, 4);
    if (aegis__crc32c(0, data, len - SNAPSHOT_CRC_BYTES) != crc) {
        return AEGIS_ECORRUPT;
    }
    if (get_le(data + 4, 2) != SNAPSHOT_VERSION) {
        return AEGIS_EVERSION;
    }
    if (get_le(data + 6, 2) != 0) {
        return AEGIS_ECORRUPT;
    }
    h->index = get_le(data + 8, 8);
    h->term = get_le(data + 16, 8);
    h->count = get_le(data + 24, 8);
    if (h->index == 0 && (h->term != 0 || h->count != 0)) {
        return AEGIS_ECORRUPT;
    }
    /* Each record takes at least its header: this bounds the table restore allocates. */
    if (h->count > (len - SNAPSHOT_HEADER_BYTES - SNAPSHOT_CRC_BYTES) /
                       SNAPSHOT_RECORD_HEADER_BYTES) {
        return AEGIS_ECORRUPT;
    }
    return 0;
}

/* One record's header, checked against the snapshot header and the bytes left. */
struct snapshot_record {
    uint64_t key_len;
    uint64_t value_len;
    uint64_t version;
};

/* Check the record at @r (with @left bytes before the CRC) whose key must sort after
 * @prev_key (NULL before the first record). */
static int check_record(const struct snapshot_header *h, const uint8_t *r, size_t left,
                        const uint8_t *prev_key, size_t prev_key_len,
                        struct snapshot_record *out)
{
    if (left < SNAPSHOT_RECORD_HEADER_BYTES) {
        return AEGIS_ECORRUPT;
    }
    out->key_len = get_le(r, 4);
    out->value_len = get_le(r + 4, 4);
    out->version = get_le(r + 8, 8);
    if (out->key_len > AEGIS_KV_KEY_LEN_MAX || out->value_len > AEGIS_BUF_LEN_MAX) {
        return AEGIS_ECORRUPT;
    }
    if (out->version == 0 || out->version > h->index) {
        return AEGIS_ECORRUPT;
    }
    if (out->key_len + out->value_len > left - SNAPSHOT_RECORD_HEADER_BYTES) {
        return AEGIS_ECORRUPT;
    }
    if (prev_key != NULL && compare_keys(prev_key, prev_key_len,
                                         r + SNAPSHOT_RECORD_HEADER_BYTES,
                                         (size_t)out->key_len) >= 0) {
        return AEGIS_ECORRUPT; /* Out of order or duplicate. */
    }
    return 0;
}

int aegis__kv_snapshot_check(const uint8_t *data, size_t len, aegis_index *index_out,
                             aegis_term *term_out)
{
    struct snapshot_header h;
    struct snapshot_record rec;
    const uint8_t *p, *prev_key = NULL;
    size_t left, prev_key_len = 0;
    int rv;

    rv = check_header(data, len, &h);
    if (rv != 0) {
        return rv;
    }
    p = data + SNAPSHOT_HEADER_BYTES;
    left = len - SNAPSHOT_HEADER_BYTES - SNAPSHOT_CRC_BYTES;
    for (uint64_t i = 0; i < h.count; i++) { /* Bounded by the length (check_header). */
        rv = check_record(&h, p, left, prev_key, prev_key_len, &rec);
        if (rv != 0) {
            return rv;
        }
        prev_key = p + SNAPSHOT_RECORD_HEADER_BYTES;
        prev_key_len = (size_t)rec.key_len;
        p += SNAPSHOT_RECORD_HEADER_BYTES + rec.key_len + rec.value_len;
        left -= SNAPSHOT_RECORD_HEADER_BYTES + (size_t)(rec.key_len + rec.value_len);
    }
    if (left != 0) {
        return AEGIS_ECORRUPT;
    }
    *index_out = h.index;
    *term_out = h.term;
    return 0;
}

/* Check one record at *@p (with *@left bytes before the CRC) and add it to @kv. *@prev
 * is the previous record's item (NULL before the first) and becomes this record's. */
static int read_record(struct aegis_kv *kv, const struct snapshot_header *h, const uint8_t **p,
                       size_t *left, const struct aegis_kv_item **prev)
{
    struct snapshot_record rec;
    uint64_t key_len, value_len, version;
    struct aegis_kv_item *item;
    const uint8_t *r = *p;
    int rv;

    rv = check_record(h, r, *left, *prev != NULL ? (*prev)->key : NULL,
                      *prev != NULL ? (*prev)->key_len : 0, &rec);
    if (rv != 0) {
        return rv;
    }
    key_len = rec.key_len;
    value_len = rec.value_len;
    version = rec.version;
    r += SNAPSHOT_RECORD_HEADER_BYTES;
    item = aegis__malloc(kv->alloc, sizeof(*item) + (size_t)key_len);
    if (item == NULL) {
        return AEGIS_ENOMEM;
    }
    item->value = aegis__buf_from(kv->alloc, r + key_len, (size_t)value_len);
    if (item->value == NULL) {
        aegis__free(kv->alloc, item);
        return AEGIS_ENOMEM;
    }
    item->version = version;
    item->key_len = (uint32_t)key_len;
    if (key_len > 0) {
        memcpy(item->key, r, (size_t)key_len);
    }
    aegis__kv_table_insert_new(kv, aegis__kv_hash(kv, item->key, item->key_len), item);
    *p = r + key_len + value_len;
    *left -= SNAPSHOT_RECORD_HEADER_BYTES + (size_t)(key_len + value_len);
    *prev = item;
    return 0;
}

int aegis__kv_restore(struct aegis_kv *kv, const uint8_t *data, size_t len)
{
    struct snapshot_header h;
    struct aegis_kv fresh;
    const struct aegis_kv_item *prev = NULL;
    const uint8_t *p;
    size_t left;
    int rv;

    AEGIS_ASSERT(kv->custom_index == 0);
    rv = check_header(data, len, &h);
    if (rv != 0) {
        return rv;
    }
    fresh = *kv;
    rv = aegis__kv_table_init(&fresh, (size_t)h.count);
    if (rv != 0) {
        return rv;
    }
    p = data + SNAPSHOT_HEADER_BYTES;
    left = len - SNAPSHOT_HEADER_BYTES - SNAPSHOT_CRC_BYTES;
    /* Bounded by h.count, itself bounded by the length. */
    for (uint64_t i = 0; i < h.count; i++) {
        rv = read_record(&fresh, &h, &p, &left, &prev);
        if (rv != 0) {
            goto err_after_table;
        }
    }
    if (left != 0) {
        rv = AEGIS_ECORRUPT;
        goto err_after_table;
    }
    aegis__kv_table_free(kv);
    fresh.applied_index = h.index;
    fresh.applied_term = h.term;
    *kv = fresh;
    return 0;

err_after_table:
    aegis__kv_table_free(&fresh);
    AEGIS_ASSERT(rv != 0);
    return rv;
}

/* Streaming views and loads. This first version serialises the whole state at open and
 * hands it out in chunks, and a load gathers its chunks and restores at finish: correct,
 * but it holds the whole state once more in memory. The copy-on-write view replaces it. */
struct aegis_kv_snap {
    struct aegis_kv *kv;
    struct aegis_buf *data;
    size_t offset;
    aegis_index index;
    aegis_term term;
};

struct aegis_kv_load {
    const struct aegis_allocator *alloc;
    uint8_t *data;
    size_t len;
    size_t cap;
};

int aegis__kv_snap_open(struct aegis_kv *kv, struct aegis_kv_snap **snap_out)
{
    struct aegis_kv_snap *s;
    int rv;

    if (kv->snap != NULL) {
        return AEGIS_EBUSY;
    }
    s = aegis__calloc(kv->alloc, 1, sizeof(*s));
    if (s == NULL) {
        return AEGIS_ENOMEM;
    }
    rv = aegis__kv_snapshot(kv, &s->data);
    if (rv != 0) {
        aegis__free(kv->alloc, s);
        return rv;
    }
    s->kv = kv;
    s->index = kv->applied_index;
    s->term = kv->applied_term;
    kv->snap = s;
    *snap_out = s;
    return 0;
}

aegis_index aegis__kv_snap_index(const struct aegis_kv_snap *snap)
{
    return snap->index;
}

aegis_term aegis__kv_snap_term(const struct aegis_kv_snap *snap)
{
    return snap->term;
}

uint64_t aegis__kv_snap_size(const struct aegis_kv_snap *snap)
{
    return snap->data->len;
}

int aegis__kv_snap_read(struct aegis_kv_snap *snap, uint8_t *buf, size_t cap,
                        size_t *len_out)
{
    size_t n = snap->data->len - snap->offset;

    if (n > cap) {
        n = cap;
    }
    if (n > 0) {
        memcpy(buf, snap->data->data + snap->offset, n);
    }
    snap->offset += n;
    *len_out = n;
    return 0;
}

void aegis__kv_snap_close(struct aegis_kv_snap *snap)
{
    if (snap == NULL) {
        return;
    }
    AEGIS_ASSERT(snap->kv->snap == snap);
    snap->kv->snap = NULL;
    aegis__buf_unref(snap->data);
    aegis__free(snap->kv->alloc, snap);
}

int aegis__kv_load_open(struct aegis_kv *kv, struct aegis_kv_load **load_out)
{
    struct aegis_kv_load *l = aegis__calloc(kv->alloc, 1, sizeof(*l));

    if (l == NULL) {
        return AEGIS_ENOMEM;
    }
    l->alloc = kv->alloc;
    *load_out = l;
    return 0;
}

int aegis__kv_load_feed(struct aegis_kv_load *load, const uint8_t *data, size_t len)
{
    if (len > AEGIS_BUF_LEN_MAX - load->len) {
        return AEGIS_ETOOBIG;
    }
    if (load->len + len > load->cap) {
        size_t cap = load->cap > 0 ? load->cap : 4096;
        uint8_t *p;

        while (cap < load->len + len) {
            cap *= 2;
        }
        p = aegis__realloc(load->alloc, load->data, cap);
        if (p == NULL) {
            return AEGIS_ENOMEM;
        }
        load->data = p;
        load->cap = cap;
    }
    if (len > 0) {
        memcpy(load->data + load->len, data, len);
    }
    load->len += len;
    return 0;
}

int aegis__kv_load_finish(struct aegis_kv_load *load, struct aegis_kv *kv)
{
    int rv = aegis__kv_restore(kv, load->data, load->len);

    aegis__kv_load_abort(load);
    return rv;
}

void aegis__kv_load_abort(struct aegis_kv_load *load)
{
    if (load == NULL) {
        return;
    }
    aegis__free(load->alloc, load->data);
    aegis__free(load->alloc, load);
}
