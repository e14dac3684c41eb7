/* SPDX-License-Identifier: MIT */
/* Snapshots of the key-value state machine: a point-in-time view read out in chunks while
 * the store keeps changing, and a load fed in chunks that replaces the state at the end.
 * The whole-buffer calls (aegis__kv_snapshot, _restore, _snapshot_check) are the same
 * view and the same load run in one go: one format, one writer, one parser.
 *
 * Format (version 2). All integers little-endian. Offsets in bytes.
 *
 *   offset  size  field
 *   0       4     magic: the bytes 'A' 'K' 'V' 'S' (0x41 0x4b 0x56 0x53)
 *   4       2     format version: 2 (1 is also read: same layout, records sorted)
 *   6       2     flags: 0 (reserved; anything else is corrupt)
 *   8       8     applied index
 *   16      8     applied term
 *   24      8     key count N
 *   32      ...   N records, in any order, no key twice; each record:
 *                   0   4   key length K (0..65536)
 *                   4   4   value length V (0..AEGIS_BUF_LEN_MAX)
 *                   8   8   version (1..applied index)
 *                   16  K   key bytes
 *                   16+K V  value bytes
 *   end-4   4     trailer: CRC32C (engine/crc32c.h, initial value 0) of every byte before
 *
 * The total length is exactly 36 + sum over records of (16 + K + V), known when the view
 * opens (aegis__kv_snap_size); the stream ends right after the CRC. An applied index of 0
 * requires term 0 and no keys. There are no per-batch checksums in this format: the file
 * and wire layers that carry the stream checksum their own chunks.
 *
 * Version 1 kept records in ascending key order so that replicas wrote identical bytes;
 * sorting the whole store took most of a snapshot's time on the apply thread. Version 2
 * writes them in the table's order, so the bytes depend on the hash seed and history (the
 * state they describe does not); duplicates are caught by the load's table instead of by
 * the order. A version 1 snapshot is a valid version 2 one and loads the same way.
 *
 * The view (point in time without stopping the writer). Home slots are the top bits of
 * the slot's tag (the hash's top 32 bits), so the table's slot order follows tag order,
 * in every table size. The view keeps a cursor, a tag value: every item present at open
 * whose tag is below the cursor has been taken (emitted or held in the pending batch),
 * and none above. A read advances the cursor one cluster (run of full slots up to an
 * empty one) at a time: the items of that cluster with tag in [cursor, end of cluster)
 * are exactly the pre-open items with such tags still in the table, wherever growth or
 * backward-shift deletion has moved
 * them, because an item lies at or after its home and before the next empty slot. Items
 * written after open carry a version above the view's index and are skipped.
 *
 * Copy-on-write: before a write replaces or deletes an item, the kv asks the view
 * (aegis__kv_snap_retire). An item the view still needs -- version <= the view's index
 * (unchanged since open) and tag >= the cursor (not taken yet) -- goes, with the table's
 * reference, onto the view's side list instead of being freed; the view emits the side
 * list after the table. Items are immutable and refcounted, so this is one pointer per
 * item written while the view is open: the view's extra memory is at most one side-list
 * slot and the old item per key written while it is open, plus the pending batch (the
 * largest cluster). The side list's room is reserved in each write's prepare step
 * (aegis__kv_snap_reserve), so a write that cannot get it fails with nothing changed.
 *
 * A restore or load while a view is open hands the old table to the view (detached: it
 * finishes reading a table nobody writes any more) instead of freeing it.
 *
 * The load parses records as they arrive (a record split across feeds is assembled in
 * its item directly), inserts them into a table built aside (sized from N, capped so a
 * hostile header cannot allocate much, then grown as records arrive), refuses bad magic,
 * flags, lengths, versions, duplicate keys, extra records or bytes, and compares the CRC
 * at the end. Only finish swaps the new table in. An unknown format version is reported
 * as AEGIS_EVERSION only if the stream's last four bytes are a valid CRC of the rest (a
 * flipped bit in the version field is corruption, not a future version). */
#include "engine/kv.h"

#include <string.h>

#include <aegis/error.h>

#include "engine/assert.h"
#include "engine/crc32c.h"

#define SNAPSHOT_MAGIC "AKVS"
#define SNAPSHOT_VERSION 2
#define SNAPSHOT_VERSION_SORTED 1
#define SNAPSHOT_HEADER_BYTES 32
#define SNAPSHOT_RECORD_HEADER_BYTES 16
#define SNAPSHOT_CRC_BYTES 4
#define SNAPSHOT_FIXED_BYTES (SNAPSHOT_HEADER_BYTES + SNAPSHOT_CRC_BYTES)
/* A load sizes its table from the header's key count up to this many keys, then grows:
 * a hostile count costs at most this table (1 MiB of slots). */
#define LOAD_PRESIZE_KEYS_MAX ((size_t)1 << 16)

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

/* ---- The view ------------------------------------------------------------------------ */

enum snap_stage {
    SNAP_HEADER,  /* Emitting head[]. */
    SNAP_RECORDS, /* Emitting records (cur, at cur_offset). */
    SNAP_TRAILER, /* Emitting the CRC. */
    SNAP_END,
};

struct aegis_kv_snap {
    struct aegis_kv *kv;                 /* Registered with (kv->snap); NULL if one-shot. */
    const struct aegis_allocator *alloc;
    const struct aegis_kv_table *table;  /* kv->t, or &frozen once detached. */
    struct aegis_kv_table frozen;        /* The table a restore handed over. */
    aegis_index index;
    aegis_term term;
    uint64_t count; /* Records of the stream (keys at open). */
    uint64_t size;  /* Bytes of the stream. */

    /* Cursor, in tag space (0..2^32): pre-open items with tag < cursor are taken;
     * scanned: all are. */
    uint64_t cursor;
    bool scanned;
    struct aegis_buf **pending; /* References to taken items not yet emitted. */
    size_t pending_count, pending_next, pending_cap;
    struct aegis_buf **side;    /* References to preserved items (copy-on-write). */
    size_t side_count, side_next, side_cap;

    /* Output position. */
    enum snap_stage stage;
    uint8_t head[SNAPSHOT_HEADER_BYTES];
    uint8_t rec[SNAPSHOT_RECORD_HEADER_BYTES + SNAPSHOT_CRC_BYTES]; /* Record head or CRC. */
    struct aegis_buf *cur;      /* The record being emitted (one reference), or NULL. */
    uint64_t offset;            /* Bytes of the current piece already emitted. */
    uint64_t emitted_records;
    uint64_t emitted_bytes;
    uint32_t crc;
};

static void snap_setup(struct aegis_kv_snap *s, const struct aegis_kv *kv)
{
    const struct aegis_kv_table *t = &kv->t;

    memset(s, 0, sizeof(*s));
    s->alloc = kv->alloc;
    s->table = t;
    s->index = kv->applied_index;
    s->term = kv->applied_term;
    s->count = t->count;
    s->size = SNAPSHOT_FIXED_BYTES + (uint64_t)t->count * SNAPSHOT_RECORD_HEADER_BYTES + t->bytes;
    memcpy(s->head, SNAPSHOT_MAGIC, 4);
    put_le(s->head + 4, SNAPSHOT_VERSION, 2);
    put_le(s->head + 6, 0, 2);
    put_le(s->head + 8, s->index, 8);
    put_le(s->head + 16, s->term, 8);
    put_le(s->head + 24, s->count, 8);
    s->stage = SNAP_HEADER;
}

static void snap_teardown(struct aegis_kv_snap *s)
{
    aegis__buf_unref(s->cur);
    for (size_t i = s->pending_next; i < s->pending_count; i++) {
        aegis__buf_unref(s->pending[i]);
    }
    for (size_t i = s->side_next; i < s->side_count; i++) {
        aegis__buf_unref(s->side[i]);
    }
    aegis__free(s->alloc, s->pending);
    aegis__free(s->alloc, s->side);
    aegis__kv_table_free(&s->frozen);
}

/* True when the view still needs @item (slot tag @tag) from the live table. */
static bool snap_needs(const struct aegis_kv_snap *s, uint32_t tag,
                       const struct aegis_buf *item)
{
    return s->table != &s->frozen && !s->scanned && tag >= s->cursor &&
           aegis__kv_item_version(item) <= s->index;
}

int aegis__kv_snap_reserve(struct aegis_kv *kv, size_t count)
{
    struct aegis_kv_snap *s = kv->snap;
    struct aegis_buf **side;
    size_t cap;

    AEGIS_ASSERT(s != NULL);
    if (s->scanned || s->table == &s->frozen || count <= s->side_cap - s->side_count) {
        return 0;
    }
    cap = s->side_cap > 0 ? s->side_cap : 64;
    while (cap - s->side_count < count) { /* Bounded: doubles up to SIZE_MAX / 2. */
        if (cap > SIZE_MAX / 2 / sizeof(*side)) {
            return AEGIS_ENOMEM;
        }
        cap *= 2;
    }
    side = aegis__realloc(s->alloc, s->side, cap * sizeof(*side));
    if (side == NULL) {
        return AEGIS_ENOMEM;
    }
    s->side = side;
    s->side_cap = cap;
    return 0;
}

void aegis__kv_snap_retire(struct aegis_kv *kv, uint32_t tag, struct aegis_buf *item)
{
    struct aegis_kv_snap *s = kv->snap;

    AEGIS_ASSERT(s != NULL);
    if (!snap_needs(s, tag, item)) {
        aegis__buf_unref(item);
        return;
    }
    AEGIS_ASSERT(s->side_count < s->side_cap); /* Reserved by the write's prepare. */
    s->side[s->side_count++] = item;
}

/* Take the next cluster at the cursor into the pending batch and advance the cursor past
 * it. Returns 0 or AEGIS_ENOMEM (nothing taken, cursor unchanged). */
static int snap_scan_cluster(struct aegis_kv_snap *s)
{
    const struct aegis_kv_table *t = s->table;
    size_t start = (size_t)(s->cursor >> t->shift), end = start, matched = 0;
    uint64_t upper = 0;
    bool last;

    AEGIS_ASSERT(!s->scanned);
    AEGIS_ASSERT(s->pending_next == s->pending_count);
    /* Bounded: the table is never full, so an empty slot ends the cluster. */
    while (t->slots[end & t->mask].item != NULL) {
        end++;
        AEGIS_ASSERT(end - start <= t->mask);
    }
    /* The cluster holds every item whose home is in [start, end); when it runs past the
     * table's end, every item with a home from start on, wrapped ones included. */
    last = (end > start ? end : start + 1) > t->mask;
    if (!last) {
        upper = (uint64_t)(end > start ? end : start + 1) << t->shift;
    }
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = start; i < end; i++) {
            const struct aegis_kv_slot *slot = &t->slots[i & t->mask];

            if (slot->tag < s->cursor || (!last && slot->tag >= upper) ||
                aegis__kv_item_version(slot->item) > s->index) {
                continue;
            }
            if (pass == 0) {
                matched++;
            } else {
                s->pending[s->pending_count++] = aegis__buf_ref(slot->item);
            }
        }
        if (pass == 0 && matched > s->pending_cap) {
            struct aegis_buf **p = aegis__realloc(s->alloc, s->pending, matched * sizeof(*p));

            if (p == NULL) {
                return AEGIS_ENOMEM;
            }
            s->pending = p;
            s->pending_cap = matched;
        }
        if (pass == 0) {
            s->pending_count = 0;
            s->pending_next = 0;
        }
    }
    AEGIS_ASSERT(s->pending_count == matched);
    s->cursor = upper;
    s->scanned = last;
    return 0;
}

/* Set s->cur to the next record's item, or leave it NULL at the end of the records.
 * Returns 0 or AEGIS_ENOMEM. */
static int snap_next_item(struct aegis_kv_snap *s)
{
    AEGIS_ASSERT(s->cur == NULL);
    /* Bounded: each scan advances the cursor by at least one slot. */
    while (s->pending_next == s->pending_count && !s->scanned) {
        int rv = snap_scan_cluster(s);

        if (rv != 0) {
            return rv;
        }
    }
    if (s->pending_next < s->pending_count) {
        s->cur = s->pending[s->pending_next++];
    } else if (s->side_next < s->side_count) {
        s->cur = s->side[s->side_next++];
    }
    if (s->cur != NULL) {
        const struct aegis_buf *it = s->cur;

        put_le(s->rec, aegis__kv_item_key_len(it), 4);
        put_le(s->rec + 4, it->len, 4);
        put_le(s->rec + 8, aegis__kv_item_version(it), 8);
        AEGIS_ASSERT(aegis__kv_item_version(it) <= s->index);
    }
    return 0;
}

/* Copy up to @cap bytes of @src (of @len, from s->offset) to @out; extend the CRC. */
static size_t snap_emit(struct aegis_kv_snap *s, uint8_t *out, size_t cap, const uint8_t *src,
                        uint64_t len, bool checksummed)
{
    uint64_t n = len - s->offset;

    AEGIS_ASSERT(s->offset <= len);
    if (n > cap) {
        n = cap;
    }
    if (n > 0) {
        memcpy(out, src + s->offset, (size_t)n);
        if (checksummed) {
            s->crc = aegis__crc32c(s->crc, out, (size_t)n);
        }
    }
    s->offset += n;
    return (size_t)n;
}

/* Emit what is left of the current record. True when it is complete. */
static bool snap_emit_record(struct aegis_kv_snap *s, uint8_t *out, size_t cap, size_t *done)
{
    const struct aegis_buf *it = s->cur;
    uint64_t key_len = aegis__kv_item_key_len(it);
    uint64_t head = SNAPSHOT_RECORD_HEADER_BYTES, total = head + key_len + it->len;

    /* Bounded: three pieces (head, key, value). */
    while (*done < cap && s->offset < total) {
        uint64_t base, len;
        const uint8_t *src;

        if (s->offset < head) {
            base = 0, len = head, src = s->rec;
        } else if (s->offset < head + key_len) {
            base = head, len = key_len, src = aegis__kv_item_key(it);
        } else {
            base = head + key_len, len = it->len, src = it->data;
        }
        s->offset -= base;
        *done += snap_emit(s, out + *done, cap - *done, src, len, true);
        s->offset += base;
    }
    return s->offset == total;
}

static int snap_read(struct aegis_kv_snap *s, uint8_t *buf, size_t cap, size_t *len_out)
{
    size_t done = 0;
    int rv = 0;

    /* Bounded: every pass emits at least one byte or moves to the next stage or item. */
    while (done < cap && s->stage != SNAP_END) {
        if (s->stage == SNAP_HEADER) {
            done += snap_emit(s, buf + done, cap - done, s->head, SNAPSHOT_HEADER_BYTES, true);
            if (s->offset == SNAPSHOT_HEADER_BYTES) {
                s->stage = SNAP_RECORDS;
                s->offset = 0;
            }
        } else if (s->stage == SNAP_RECORDS) {
            if (s->cur == NULL) {
                rv = snap_next_item(s);
                if (rv != 0) {
                    break;
                }
                if (s->cur == NULL) {
                    AEGIS_ASSERT(s->emitted_records == s->count);
                    put_le(s->rec, s->crc, SNAPSHOT_CRC_BYTES);
                    s->stage = SNAP_TRAILER;
                    continue;
                }
            }
            if (snap_emit_record(s, buf, cap, &done)) {
                s->emitted_records++;
                AEGIS_ASSERT(s->emitted_records <= s->count);
                aegis__buf_unref(s->cur);
                s->cur = NULL;
                s->offset = 0;
            }
        } else {
            done += snap_emit(s, buf + done, cap - done, s->rec, SNAPSHOT_CRC_BYTES, false);
            if (s->offset == SNAPSHOT_CRC_BYTES) {
                s->stage = SNAP_END;
            }
        }
    }
    s->emitted_bytes += done;
    AEGIS_ASSERT(s->emitted_bytes <= s->size);
    if (s->stage == SNAP_END) {
        AEGIS_ASSERT(s->emitted_bytes == s->size);
    }
    *len_out = done;
    /* Memory ran out with nothing emitted: report it; otherwise hand out what we have and
     * let the next call retry. */
    return done > 0 ? 0 : rv;
}

int aegis__kv_snap_open(struct aegis_kv *kv, struct aegis_kv_snap **snap_out)
{
    struct aegis_kv_snap *s;

    AEGIS_ASSERT(kv->custom_index == 0);
    if (kv->snap != NULL) {
        return AEGIS_EBUSY;
    }
    s = aegis__malloc(kv->alloc, sizeof(*s));
    if (s == NULL) {
        return AEGIS_ENOMEM;
    }
    snap_setup(s, kv);
    s->kv = kv;
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
    return snap->size;
}

int aegis__kv_snap_read(struct aegis_kv_snap *snap, uint8_t *buf, size_t cap,
                        size_t *len_out)
{
    AEGIS_ASSERT(snap->kv == NULL || snap->kv->custom_index == 0);
    return snap_read(snap, buf, cap, len_out);
}

void aegis__kv_snap_close(struct aegis_kv_snap *snap)
{
    if (snap == NULL) {
        return;
    }
    AEGIS_ASSERT(snap->kv->snap == snap);
    snap->kv->snap = NULL;
    snap_teardown(snap);
    aegis__free(snap->alloc, snap);
}

/* A restore is replacing kv's table: the open view takes the old one over. */
static void snap_detach(struct aegis_kv_snap *s, struct aegis_kv_table *old)
{
    AEGIS_ASSERT(s->table != &s->frozen);
    s->frozen = *old;
    s->table = &s->frozen;
    memset(old, 0, sizeof(*old));
}

int aegis__kv_snapshot(const struct aegis_kv *kv, struct aegis_buf **snapshot_out)
{
    struct aegis_kv_snap s;
    struct aegis_buf *b;
    size_t len;
    int rv;

    AEGIS_ASSERT(kv->custom_index == 0);
    snap_setup(&s, kv); /* One-shot: nothing writes the table until we return. */
    if (s.size > AEGIS_BUF_LEN_MAX) {
        return AEGIS_ETOOBIG;
    }
    b = aegis__buf_create(kv->alloc, (size_t)s.size);
    if (b == NULL) {
        return AEGIS_ENOMEM;
    }
    rv = snap_read(&s, b->data, b->len, &len);
    if (rv == 0 && s.stage != SNAP_END) {
        rv = AEGIS_ENOMEM; /* Read stopped early: only a failed allocation does that. */
    }
    snap_teardown(&s);
    if (rv != 0) {
        aegis__buf_unref(b);
        return rv;
    }
    AEGIS_ASSERT(len == b->len);
    *snapshot_out = b;
    return 0;
}

/* ---- The load ------------------------------------------------------------------------ */

enum load_stage {
    LOAD_HEADER,      /* Gathering the 32 header bytes. */
    LOAD_RECORD_HEAD, /* Gathering a record's 16 bytes. */
    LOAD_RECORD_BODY, /* Filling the current item's key, then value. */
    LOAD_TRAILER,     /* Gathering the CRC. */
    LOAD_DONE,        /* Any further byte is corrupt. */
    LOAD_UNKNOWN,     /* Unknown format version: only the CRC is followed. */
};

struct aegis_kv_load {
    struct aegis_kv *kv;
    struct aegis_kv_table table; /* Built aside; swapped in by finish. */
    enum load_stage stage;
    int error;                   /* Sticky: the first error. */
    uint64_t len_max;            /* Length of the whole stream when known, else UINT64_MAX. */
    uint64_t fed;                /* Bytes consumed so far. */
    uint32_t crc;                /* Of the bytes before the trailer (LOAD_UNKNOWN: before
                                  * the last four held in gather[]). */
    uint8_t gather[SNAPSHOT_HEADER_BYTES];
    size_t gathered;
    aegis_index index;
    aegis_term term;
    uint64_t count;   /* N from the header. */
    uint64_t records; /* Records loaded. */
    struct aegis_buf *item; /* The record being filled (one reference). */
    uint64_t filled;        /* Of its key + value bytes. */
};

/* Gather up to @want bytes from *@data into load->gather; true once it holds @want. */
static bool load_gather(struct aegis_kv_load *l, const uint8_t **data, size_t *len,
                        size_t want)
{
    size_t n = want - l->gathered;

    AEGIS_ASSERT(l->gathered < want || want == 0);
    if (n > *len) {
        n = *len;
    }
    memcpy(l->gather + l->gathered, *data, n);
    l->gathered += n;
    l->fed += n;
    *data += n;
    *len -= n;
    return l->gathered == want;
}

static int load_header(struct aegis_kv_load *l)
{
    const uint8_t *h = l->gather;
    uint64_t version = get_le(h + 4, 2);
    size_t presize;

    if (memcmp(h, SNAPSHOT_MAGIC, 4) != 0 || l->len_max < SNAPSHOT_FIXED_BYTES) {
        return AEGIS_ECORRUPT;
    }
    if (version != SNAPSHOT_VERSION && version != SNAPSHOT_VERSION_SORTED) {
        l->stage = LOAD_UNKNOWN;
        l->gathered = 0;
        return 0;
    }
    if (get_le(h + 6, 2) != 0) {
        return AEGIS_ECORRUPT;
    }
    l->index = get_le(h + 8, 8);
    l->term = get_le(h + 16, 8);
    l->count = get_le(h + 24, 8);
    if (l->index == 0 && (l->term != 0 || l->count != 0)) {
        return AEGIS_ECORRUPT;
    }
    /* Each record takes at least its header. */
    if (l->count > (l->len_max - SNAPSHOT_FIXED_BYTES) / SNAPSHOT_RECORD_HEADER_BYTES) {
        return AEGIS_ECORRUPT;
    }
    presize = l->len_max != UINT64_MAX || l->count < LOAD_PRESIZE_KEYS_MAX
                  ? (size_t)l->count
                  : LOAD_PRESIZE_KEYS_MAX;
    if (aegis__kv_table_reserve(l->kv, &l->table, presize) != 0) {
        return AEGIS_ENOMEM;
    }
    l->stage = l->count > 0 ? LOAD_RECORD_HEAD : LOAD_TRAILER;
    l->gathered = 0;
    return 0;
}

static int load_record_head(struct aegis_kv_load *l)
{
    const uint8_t *r = l->gather;
    uint64_t key_len = get_le(r, 4), value_len = get_le(r + 4, 4), version = get_le(r + 8, 8);

    if (key_len > AEGIS_KV_KEY_LEN_MAX || value_len > AEGIS_BUF_LEN_MAX) {
        return AEGIS_ECORRUPT;
    }
    if (version == 0 || version > l->index) {
        return AEGIS_ECORRUPT;
    }
    /* What is left of the stream must hold the body and the CRC. */
    if (l->len_max - l->fed < key_len + value_len + SNAPSHOT_CRC_BYTES) {
        return AEGIS_ECORRUPT;
    }
    l->item = aegis__kv_item_create(l->kv->alloc, NULL, (size_t)key_len, NULL,
                                    (size_t)value_len, version);
    if (l->item == NULL) {
        return AEGIS_ENOMEM;
    }
    l->filled = 0;
    l->gathered = 0;
    l->stage = LOAD_RECORD_BODY;
    return 0;
}

/* Fill the current item from *@data; insert it once complete. */
static int load_record_body(struct aegis_kv_load *l, const uint8_t **data, size_t *len)
{
    struct aegis_buf *it = l->item;
    uint64_t key_len = aegis__kv_item_key_len(it), total = key_len + it->len;

    /* Bounded: two pieces (key, value). */
    while (*len > 0 && l->filled < total) {
        uint64_t n;
        uint8_t *dst;

        if (l->filled < key_len) {
            n = key_len - l->filled;
            dst = aegis__kv_item_key_mut(it) + l->filled;
        } else {
            n = total - l->filled;
            dst = it->data + (l->filled - key_len);
        }
        if (n > *len) {
            n = *len;
        }
        memcpy(dst, *data, (size_t)n);
        l->fed += n;
        *data += n;
        *len -= (size_t)n;
        l->filled += n;
    }
    if (l->filled < total) {
        return 0;
    }
    {
        const uint8_t *key = aegis__kv_item_key(it);
        uint64_t hash = aegis__kv_hash(l->kv, key, (size_t)key_len);

        if (aegis__kv_table_find(&l->table, hash, key, (size_t)key_len) != NULL) {
            return AEGIS_ECORRUPT; /* Duplicate key. */
        }
        if (aegis__kv_table_reserve(l->kv, &l->table, 1) != 0) {
            return AEGIS_ENOMEM;
        }
        aegis__kv_table_insert_new(&l->table, hash, it);
    }
    l->item = NULL;
    l->records++;
    AEGIS_ASSERT(l->records <= l->count);
    l->stage = l->records < l->count ? LOAD_RECORD_HEAD : LOAD_TRAILER;
    return 0;
}

/* Unknown version: keep the last four bytes back (they may be the CRC), checksum the rest. */
static void load_unknown(struct aegis_kv_load *l, const uint8_t *data, size_t len)
{
    l->fed += len;
    /* Bounded by @len: the first pass leaves at most four bytes, one per pass after. */
    while (len > 0) {
        if (len > SNAPSHOT_CRC_BYTES) {
            l->crc = aegis__crc32c(l->crc, l->gather, l->gathered);
            l->gathered = 0;
            l->crc = aegis__crc32c(l->crc, data, len - SNAPSHOT_CRC_BYTES);
            data += len - SNAPSHOT_CRC_BYTES;
            len = SNAPSHOT_CRC_BYTES;
        }
        if (l->gathered == SNAPSHOT_CRC_BYTES) {
            l->crc = aegis__crc32c(l->crc, l->gather, 1);
            memmove(l->gather, l->gather + 1, SNAPSHOT_CRC_BYTES - 1);
            l->gathered--;
        }
        l->gather[l->gathered++] = *data++;
        len--;
    }
}

static int load_step(struct aegis_kv_load *l, const uint8_t **data, size_t *len)
{
    switch (l->stage) {
    case LOAD_HEADER:
        return load_gather(l, data, len, SNAPSHOT_HEADER_BYTES) ? load_header(l) : 0;
    case LOAD_RECORD_HEAD:
        return load_gather(l, data, len, SNAPSHOT_RECORD_HEADER_BYTES) ? load_record_head(l)
                                                                        : 0;
    case LOAD_RECORD_BODY:
        return load_record_body(l, data, len);
    case LOAD_TRAILER:
        if (load_gather(l, data, len, SNAPSHOT_CRC_BYTES)) {
            l->stage = LOAD_DONE;
        }
        return 0;
    case LOAD_DONE:
        return AEGIS_ECORRUPT; /* Bytes after the CRC. */
    case LOAD_UNKNOWN:
        load_unknown(l, *data, *len);
        *data += *len;
        *len = 0;
        return 0;
    }
    AEGIS_UNREACHABLE();
}

static int load_open(struct aegis_kv *kv, uint64_t len_max, struct aegis_kv_load **load_out)
{
    struct aegis_kv_load *l;

    AEGIS_ASSERT(kv->custom_index == 0);
    l = aegis__calloc(kv->alloc, 1, sizeof(*l));
    if (l == NULL) {
        return AEGIS_ENOMEM;
    }
    l->kv = kv;
    l->len_max = len_max;
    if (aegis__kv_table_init(kv, &l->table, 0) != 0) {
        aegis__free(kv->alloc, l);
        return AEGIS_ENOMEM;
    }
    *load_out = l;
    return 0;
}

int aegis__kv_load_open(struct aegis_kv *kv, struct aegis_kv_load **load_out)
{
    return load_open(kv, UINT64_MAX, load_out);
}

int aegis__kv_load_feed(struct aegis_kv_load *load, const uint8_t *data, size_t len)
{
    struct aegis_kv_load *l = load;

    if (l->error != 0) {
        return l->error;
    }
    if (len > l->len_max - l->fed) {
        l->error = AEGIS_ECORRUPT;
        return l->error;
    }
    /* Bounded: every step consumes bytes or moves to the next stage. */
    while (len > 0) {
        const uint8_t *before = data;
        bool checksummed = l->stage != LOAD_TRAILER && l->stage != LOAD_UNKNOWN &&
                           l->stage != LOAD_DONE;
        int rv = load_step(l, &data, &len);

        if (checksummed) {
            l->crc = aegis__crc32c(l->crc, before, (size_t)(data - before));
        }
        if (rv != 0) {
            l->error = rv;
            return rv;
        }
    }
    return 0;
}

void aegis__kv_load_abort(struct aegis_kv_load *load)
{
    const struct aegis_allocator *alloc;

    if (load == NULL) {
        return;
    }
    alloc = load->kv->alloc;
    aegis__buf_unref(load->item);
    aegis__kv_table_free(&load->table);
    aegis__free(alloc, load);
}

/* The verdict on a fully fed stream: 0, AEGIS_ECORRUPT or AEGIS_EVERSION. */
static int load_verdict(const struct aegis_kv_load *l)
{
    bool crc_ok = l->gathered == SNAPSHOT_CRC_BYTES &&
                  get_le(l->gather, SNAPSHOT_CRC_BYTES) == l->crc;

    if (l->error != 0) {
        return l->error;
    }
    if (l->stage == LOAD_UNKNOWN) {
        return crc_ok ? AEGIS_EVERSION : AEGIS_ECORRUPT;
    }
    if (l->stage != LOAD_DONE || !crc_ok) {
        return AEGIS_ECORRUPT; /* Truncated, or a bad checksum. */
    }
    AEGIS_ASSERT(l->records == l->count);
    AEGIS_ASSERT(l->table.count == l->count);
    return 0;
}

int aegis__kv_load_finish(struct aegis_kv_load *load, struct aegis_kv *kv)
{
    int rv = load_verdict(load);

    AEGIS_ASSERT(load->kv == kv);
    AEGIS_ASSERT(kv->custom_index == 0);
    if (rv == 0) {
        if (kv->snap != NULL) {
            snap_detach(kv->snap, &kv->t);
        } else {
            aegis__kv_table_free(&kv->t);
        }
        kv->t = load->table;
        memset(&load->table, 0, sizeof(load->table));
        kv->applied_index = load->index;
        kv->applied_term = load->term;
    }
    aegis__kv_load_abort(load);
    return rv;
}

int aegis__kv_restore(struct aegis_kv *kv, const uint8_t *data, size_t len)
{
    struct aegis_kv_load *l;
    int rv;

    rv = load_open(kv, len, &l);
    if (rv != 0) {
        return rv;
    }
    if (len > 0) {
        (void)aegis__kv_load_feed(l, data, len); /* An error sticks; finish reports it. */
    }
    return aegis__kv_load_finish(l, kv);
}

int aegis__kv_snapshot_check(const uint8_t *data, size_t len, aegis_index *index_out,
                             aegis_term *term_out)
{
    struct aegis_kv scratch;
    int rv;

    /* Duplicate keys are found by building the table, so the check builds one aside (on
     * the heap: there is no allocator here) and drops it. */
    rv = aegis__kv_init(&scratch, NULL, 0);
    if (rv != 0) {
        return rv;
    }
    rv = aegis__kv_restore(&scratch, data, len);
    if (rv == 0) {
        *index_out = scratch.applied_index;
        *term_out = scratch.applied_term;
    }
    aegis__kv_close(&scratch);
    return rv;
}
