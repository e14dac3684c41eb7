/* SPDX-License-Identifier: MIT */
/* The versioned key-value state machine (the seed's state.rs): commands, their binary
 * encoding, results, the store itself and its snapshot.
 *
 * Design
 * - A command is the payload of a Command log entry. Its encoding (kv_codec.c, specified
 *   byte by byte there and in docs/state-machine.md) is compact and canonical: every
 *   command has exactly one encoding, so decode followed by encode gives the input back.
 *   The decoder treats its input as hostile: it is bounds-checked, returns
 *   AEGIS_ECORRUPT and never asserts. A decoded command is a view: its byte fields point
 *   into the decoded buffer, nothing is copied.
 * - The store (kv.c) is an open-addressing hash table with linear probing and
 *   backward-shift deletion (no tombstones), hashed with SipHash-1-3 under a seed given
 *   at init so that a client cannot choose colliding keys. A slot holds the full hash and
 *   one pointer; each key is one allocation, an immutable struct aegis_buf whose bytes
 *   are the value with the version and key stored after them (struct layout below). A
 *   lookup is one slot and one item; a GET reply is a reference to the item itself, so
 *   values of any size are shared, never copied.
 * - Each key carries the index of its last write as its version. The machine carries the
 *   last applied index and term and applies entries strictly in order: index must be
 *   applied_index + 1, anything else is AEGIS_EORDER and changes nothing.
 * - A command that fails (not found, not an integer, overflow, CAS mismatch, no handler,
 *   corrupt payload) still consumes its entry: the failure is the command's result, the
 *   applied index advances, and every replica reaches the same result from the same bytes.
 *   Only AEGIS_EORDER and AEGIS_ENOMEM leave the machine untouched: every allocation a
 *   command needs is made before the first change, so running out of memory is reported
 *   with nothing changed and the same entry can be applied again.
 * - The snapshot (kv_snapshot.c) is a stream: header, records in table order, CRC32C. A
 *   view is opened in O(1) and read in chunks while applies continue (copy-on-write of
 *   the items written before the view reaches them); a load is fed in chunks, builds a
 *   new table aside and swaps it in only once the whole stream has been validated. The
 *   bytes depend on the hash seed and history, the state they carry does not.
 *
 * Threads: a struct aegis_kv belongs to one thread (the apply thread); nothing here locks.
 * Values handed out (result->value, get's value_out) are references that may travel to
 * other threads: buffer reference counts are atomic. */
#ifndef AEGIS_KV_H
#define AEGIS_KV_H

#include <string.h>

#include "engine/buf.h"
#include "engine/entry.h"

/* Limits. Keys are at most 64 KiB (Redis allows more; nobody uses it and a bound keeps
 * hostile input cheap). Values are bounded by the entry payload (AEGIS_BUF_LEN_MAX). */
#define AEGIS_KV_KEY_LEN_MAX ((size_t)65536)
#define AEGIS_KV_MULTI_MAX ((uint32_t)65536)  /* Keys of one DELETE, pairs of one MSET. */
#define AEGIS_KV_CUSTOM_NAME_LEN_MAX ((size_t)255)

/* Command types. The values are the first byte of an encoded command: part of the log
 * format, never renumber. */
enum aegis_kv_cmd_type {
    AEGIS_KV_GET = 1,
    AEGIS_KV_SET = 2,
    AEGIS_KV_DELETE = 3,
    AEGIS_KV_CAS = 4,
    AEGIS_KV_INCREMENT = 5,
    AEGIS_KV_CUSTOM = 6,
    AEGIS_KV_MSET = 7,
};

/* A borrowed byte range. */
struct aegis_kv_bytes {
    const uint8_t *data; /* May be NULL when len == 0. */
    size_t len;
};

/* A decoded command: a view whose byte fields point into the decoded input, which must
 * outlive it. Fields not used by the type are zero. */
struct aegis_kv_cmd {
    uint8_t type;                   /* enum aegis_kv_cmd_type. */
    struct aegis_kv_bytes key;      /* GET, SET, CAS, INCREMENT. */
    struct aegis_kv_bytes value;    /* SET value; CAS new value. */
    struct aegis_kv_bytes expected; /* CAS, when expected_present. */
    bool expected_present;          /* CAS: false means "the key must be absent". */
    int64_t delta;                  /* INCREMENT. */
    uint32_t count;                 /* DELETE: keys; MSET: pairs (1..AEGIS_KV_MULTI_MAX). */
    struct aegis_kv_bytes list;     /* DELETE, MSET: the encoded items; see _cmd_next. */
    struct aegis_kv_bytes name;     /* CUSTOM: the command's name (0..255 bytes). */
    struct aegis_kv_bytes args;     /* CUSTOM: its argument bytes, opaque to Aegis. */
};

/* The outcome of one applied entry (the seed's CommandResult).
 *
 * status is 0 or the command's error: AEGIS_ENOTFOUND (GET of an absent key),
 * AEGIS_ETYPE (INCREMENT of a value that is not a decimal int64), AEGIS_EOVERFLOW
 * (INCREMENT past int64), AEGIS_ECASMISMATCH (CAS: swapped is false), AEGIS_ENOHANDLER
 * (CUSTOM without a handler), AEGIS_ECORRUPT (undecodable payload or entry type),
 * AEGIS_EORDER and AEGIS_ENOMEM (entry not applied), or a custom handler's code.
 *
 * value is a reference owned by the result (release with aegis__kv_result_release):
 * GET: the value; INCREMENT: the new value in decimal; CAS mismatch: the current value
 * (NULL if absent); CUSTOM: whatever the handler put there; otherwise NULL. */
struct aegis_kv_result {
    int status;
    struct aegis_buf *value;
    aegis_index version;       /* GET: the key's version; a successful write: the entry's
                                * index; CAS mismatch: the current version (0 if absent). */
    aegis_index applied_index; /* The machine's applied index after this call. */
    uint64_t count;            /* DELETE: keys that existed; MSET: pairs written. */
    int64_t integer;           /* INCREMENT: the new value. */
    bool swapped;              /* CAS: true when the new value was written. */
};

struct aegis_kv;

/* A custom command handler. Called from aegis__kv_apply for a CUSTOM command at @index
 * with the command's @name and @args (borrowed for the call). It may read the store
 * (aegis__kv_get) and write it through aegis__kv_custom_put and aegis__kv_custom_delete
 * (which stamp the keys with @index), and may fill @result's value (transferring a
 * reference), count and integer. Its return value becomes result->status.
 *
 * It must be deterministic: every replica runs it on the same entries and must reach the
 * same state. State kept outside the store is not covered by snapshots. Returning
 * AEGIS_ENOMEM means "changed nothing, retry the entry"; any other error is a result. */
typedef int (*aegis_kv_custom_fn)(struct aegis_kv *kv, aegis_index index,
                                  struct aegis_kv_bytes name, struct aegis_kv_bytes args,
                                  struct aegis_kv_result *result, void *data);

/* One stored key is one allocation from the kv's allocator: a struct aegis_buf whose
 * bytes [0, len) are the value, followed (hidden past len) by the item's metadata and key:
 *
 *   struct aegis_buf header (refs, len = V, alloc)   16 bytes
 *   value                                            V bytes   <- what GET hands out
 *   version (native-endian uint64, unaligned)        8 bytes
 *   key length K (native-endian uint32, unaligned)   4 bytes
 *   key                                              K bytes
 *
 * The item is immutable once in the table (a write makes a new item), so a GET reply, a
 * CAS-mismatch result and a snapshot view share it by reference, without copying. The
 * trailing bytes are written only by the creator before the item is shared and read only
 * on the kv's thread; other threads see a plain buffer of len bytes. Private to kv*.c. */
#define AEGIS_KV_ITEM_META_BYTES 12

/* A table slot (16 bytes): empty when item is NULL. The tag (the hash's top 32 bits)
 * skips key compares on other keys and places items on growth without rehashing them;
 * the value length locates the key inside the item (after the value) straight from the
 * slot, so a lookup's key compare does not wait for the item's header. */
struct aegis_kv_slot {
    uint32_t tag;
    uint32_t value_len; /* == item->len. */
    struct aegis_buf *item;
};

/* The hash table proper: linear probing, home slot = the top bits of the tag. */
struct aegis_kv_table {
    const struct aegis_allocator *alloc; /* The kv's. */
    struct aegis_kv_slot *slots; /* Power-of-two count, mask + 1. */
    size_t mask;
    unsigned shift;              /* 32 - log2(mask + 1): home(tag) = tag >> shift. */
    size_t count;                /* Keys stored; at most 3/4 of the slots. */
    uint64_t bytes;              /* Sum of key and value lengths (sizes the snapshot). */
};

/* The state machine. Initialise with aegis__kv_init; fields are private. */
struct aegis_kv {
    const struct aegis_allocator *alloc;
    struct aegis_kv_table t;
    uint64_t seed[2];           /* SipHash key. */
    aegis_index applied_index;
    aegis_term applied_term;
    aegis_index custom_index;   /* Non-zero only while a custom handler runs. */
    aegis_kv_custom_fn custom_fn;
    void *custom_data;
    struct aegis_kv_snap *snap; /* The open streaming view, if any. */
};

/* Initialise an empty machine (applied index 0, term 0) on caller storage. @alloc (NULL:
 * the heap) serves every allocation until close and must outlive @kv. @hash_seed keys
 * the hash function; use a random value in production (any value is correct).
 * Returns 0 or AEGIS_ENOMEM. */
int aegis__kv_init(struct aegis_kv *kv, const struct aegis_allocator *alloc,
                   uint64_t hash_seed);

/* Free every key and drop every value reference held by @kv. References handed out
 * earlier stay valid. Close any open view first (asserted). */
void aegis__kv_close(struct aegis_kv *kv);

/* Register (or with @fn NULL, remove) the custom command handler; @data is passed back. */
void aegis__kv_set_custom_handler(struct aegis_kv *kv, aegis_kv_custom_fn fn, void *data);

/* Apply the entry (@index, @term, @type, @payload of @len bytes) to @kv and describe the
 * outcome in @result_out (always initialised; release it with aegis__kv_result_release).
 * @payload is borrowed for the call; stored values are copied out of it.
 *
 * Command entries run their command; NoOp and ConfigChange entries only advance the
 * applied index; an unknown type is consumed with status AEGIS_ECORRUPT.
 * Returns 0 when the entry was applied (the command's own outcome is
 * result_out->status), AEGIS_EORDER when @index is not applied_index + 1 or @term is
 * below the applied term, AEGIS_ENOMEM when memory ran out; on both errors nothing
 * changed. */
int aegis__kv_apply(struct aegis_kv *kv, aegis_index index, aegis_term term, uint8_t type,
                    const uint8_t *payload, size_t len, struct aegis_kv_result *result_out);

/* aegis__kv_apply for a log entry; the entry's buffer is borrowed. */
int aegis__kv_apply_entry(struct aegis_kv *kv, const struct aegis_entry *entry,
                          struct aegis_kv_result *result_out);

/* Drop the result's value reference (if any). Idempotent. */
void aegis__kv_result_release(struct aegis_kv_result *result);

/* Read @key without going through the log (ReadIndex reads, EXISTS). On success, when
 * @value_out is not NULL it receives a new reference the caller must unref, and
 * @version_out (if not NULL) the key's version. Returns 0 or AEGIS_ENOTFOUND. */
int aegis__kv_get(const struct aegis_kv *kv, const void *key, size_t key_len,
                  struct aegis_buf **value_out, aegis_index *version_out);

/* For custom handlers only (asserted): write @key = @value (copied) or delete @key, with
 * the version of the entry being applied. put returns 0 or AEGIS_ENOMEM (nothing changed)
 * or AEGIS_ETOOBIG (key or value too long); delete returns 0 or AEGIS_ENOTFOUND. */
int aegis__kv_custom_put(struct aegis_kv *kv, const void *key, size_t key_len,
                         const void *value, size_t value_len);
int aegis__kv_custom_delete(struct aegis_kv *kv, const void *key, size_t key_len);

aegis_index aegis__kv_applied_index(const struct aegis_kv *kv);
aegis_term aegis__kv_applied_term(const struct aegis_kv *kv);
size_t aegis__kv_count(const struct aegis_kv *kv);

/* True when @a and @b hold the same keys, values and versions and the same applied index
 * and term. O(n); for tests and the simulation's State Machine Safety checker. */
bool aegis__kv_equal(const struct aegis_kv *a, const struct aegis_kv *b);

/* Serialise the whole state into a new buffer (format in kv_snapshot.c) owned by the
 * caller: a view read to the end at once. Returns 0, AEGIS_ETOOBIG (state larger than
 * AEGIS_BUF_LEN_MAX) or AEGIS_ENOMEM. Records come in table order: two machines with the
 * same state give the same length but not necessarily the same bytes. */
int aegis__kv_snapshot(const struct aegis_kv *kv, struct aegis_buf **snapshot_out);

/* Replace the whole state of @kv (keys, applied index and term) with the snapshot in
 * @data (@len bytes, borrowed). Returns 0, AEGIS_ECORRUPT (bad magic, version, CRC,
 * structure or limits; truncated), AEGIS_EVERSION (unknown format version) or
 * AEGIS_ENOMEM; on error @kv is exactly as it was. The custom handler is kept. */
int aegis__kv_restore(struct aegis_kv *kv, const uint8_t *data, size_t len);

/* Streaming snapshots: a view of the state that is read out in chunks, and a load that is
 * fed in chunks, so that neither side ever holds the whole state in one buffer.
 *
 * A view (struct aegis_kv_snap) is the state at the applied index and term when it was
 * opened. The store stays writable while a view is open: applies go on between reads,
 * and the view still yields exactly the state at its index. Views are read on the kv's
 * own thread (the apply thread), between applies; at most one view is open at a time.
 * The bytes a view yields are the snapshot format of kv_snapshot.c; the total length is
 * known at open (aegis__kv_snap_size). Opening is O(1) and allocates only the view; a
 * read costs O(bytes read + slots passed). While it is open, a write (or delete) of a key
 * the view has not reached yet keeps the old item for the view (one pointer; the item is
 * shared, not copied), so the view's extra memory is bounded by the keys written while it
 * is open; writes may then also fail with AEGIS_ENOMEM (changing nothing) when that room
 * cannot be made. A restore while a view is open hands the old table to the view.
 *
 * A load (struct aegis_kv_load) builds a new state aside from chunks of that format, in
 * any split; finish validates the whole (structure, CRC, limits, duplicates) and only
 * then replaces @kv's state. abort (or a failed finish) leaves @kv untouched. */
struct aegis_kv_snap;
struct aegis_kv_load;

/* Open a view of @kv's state now. Returns 0, AEGIS_EBUSY (a view is already open) or
 * AEGIS_ENOMEM. */
int aegis__kv_snap_open(struct aegis_kv *kv, struct aegis_kv_snap **snap_out);

/* The view's index, term and total length in bytes of its stream. */
aegis_index aegis__kv_snap_index(const struct aegis_kv_snap *snap);
aegis_term aegis__kv_snap_term(const struct aegis_kv_snap *snap);
uint64_t aegis__kv_snap_size(const struct aegis_kv_snap *snap);

/* Copy the next bytes of the stream into @buf (at most @cap, at least 1 unless the
 * stream is over) and set *@len_out. Returns 0, with *@len_out == 0 only at the end, or
 * AEGIS_ENOMEM (nothing consumed; call again). */
int aegis__kv_snap_read(struct aegis_kv_snap *snap, uint8_t *buf, size_t cap,
                        size_t *len_out);

/* Close a view (read to the end or not) and free what it kept. NULL is a no-op. */
void aegis__kv_snap_close(struct aegis_kv_snap *snap);

/* Start a load that will replace @kv's state (its allocator and hash seed are used). */
int aegis__kv_load_open(struct aegis_kv *kv, struct aegis_kv_load **load_out);

/* Feed the next @len bytes of a snapshot stream. Returns 0, AEGIS_ECORRUPT,
 * AEGIS_EVERSION or AEGIS_ENOMEM; after an error only abort is allowed. */
int aegis__kv_load_feed(struct aegis_kv_load *load, const uint8_t *data, size_t len);

/* Validate the whole stream and, if good, replace @kv's state with it (as
 * aegis__kv_restore does). Frees @load in every case. Returns 0 or the error of
 * aegis__kv_restore; on error @kv is exactly as it was. */
int aegis__kv_load_finish(struct aegis_kv_load *load, struct aegis_kv *kv);

/* Drop a load without touching the store. NULL is a no-op. */
void aegis__kv_load_abort(struct aegis_kv_load *load);

/* Check that @data (@len bytes) would restore (every check of aegis__kv_restore) and give
 * its applied index and term. Duplicate keys are only found by building the table, so
 * this builds one aside on the heap and frees it: it costs what a restore costs. Returns
 * 0, AEGIS_ECORRUPT, AEGIS_EVERSION or AEGIS_ENOMEM. For a snapshot received from a peer,
 * before it replaces anything. */
int aegis__kv_snapshot_check(const uint8_t *data, size_t len, aegis_index *index_out,
                             aegis_term *term_out);

/* Decode the command in @data (@len bytes) into the view @cmd_out, which points into
 * @data. Returns 0 or AEGIS_ECORRUPT (truncated, trailing bytes, unknown type, a
 * limit exceeded, a non-canonical number). */
int aegis__kv_cmd_decode(const uint8_t *data, size_t len, struct aegis_kv_cmd *cmd_out);

/* Walk the items of a decoded DELETE (keys) or MSET (key, value pairs): start with
 * *@offset = 0; each call stores the next key (and for MSET its value; @value_out may be
 * NULL) and returns true, then false after the last. */
bool aegis__kv_cmd_next(const struct aegis_kv_cmd *cmd, size_t *offset,
                        struct aegis_kv_bytes *key_out, struct aegis_kv_bytes *value_out);

/* Encoders: each creates a new buffer (one reference, owned by the caller) holding the
 * canonical encoding. Arguments are copied. They return 0, AEGIS_ETOOBIG (a key over
 * AEGIS_KV_KEY_LEN_MAX, a name over AEGIS_KV_CUSTOM_NAME_LEN_MAX, more than
 * AEGIS_KV_MULTI_MAX items, or an encoding over AEGIS_BUF_LEN_MAX), AEGIS_EINVAL (a
 * count of 0) or AEGIS_ENOMEM. */
int aegis__kv_encode_get(const struct aegis_allocator *alloc, const void *key, size_t key_len,
                         struct aegis_buf **out);
int aegis__kv_encode_set(const struct aegis_allocator *alloc, const void *key, size_t key_len,
                         const void *value, size_t value_len, struct aegis_buf **out);
int aegis__kv_encode_delete(const struct aegis_allocator *alloc,
                            const struct aegis_kv_bytes *keys, size_t count,
                            struct aegis_buf **out);
int aegis__kv_encode_mset(const struct aegis_allocator *alloc,
                          const struct aegis_kv_bytes *keys,
                          const struct aegis_kv_bytes *values, size_t count,
                          struct aegis_buf **out);
/* @expected NULL means "the key must be absent"; otherwise the whole current value. */
int aegis__kv_encode_cas(const struct aegis_allocator *alloc, const void *key, size_t key_len,
                         const struct aegis_kv_bytes *expected, const void *value,
                         size_t value_len, struct aegis_buf **out);
int aegis__kv_encode_increment(const struct aegis_allocator *alloc, const void *key,
                               size_t key_len, int64_t delta, struct aegis_buf **out);
int aegis__kv_encode_custom(const struct aegis_allocator *alloc, const void *name,
                            size_t name_len, const void *args, size_t args_len,
                            struct aegis_buf **out);

/* Shared between kv.c and kv_snapshot.c; not for other modules. */
static inline aegis_index aegis__kv_item_version(const struct aegis_buf *item)
{
    aegis_index v;

    memcpy(&v, item->data + item->len, sizeof(v));
    return v;
}

static inline uint32_t aegis__kv_item_key_len(const struct aegis_buf *item)
{
    uint32_t n;

    memcpy(&n, item->data + item->len + 8, sizeof(n));
    return n;
}

static inline const uint8_t *aegis__kv_item_key(const struct aegis_buf *item)
{
    return item->data + item->len + AEGIS_KV_ITEM_META_BYTES;
}

/* A new item (one reference, owned by the caller) for @key_len bytes of key and
 * @value_len of value at @version. The key and value are copied when not NULL, else
 * left for the caller to fill (aegis__kv_item_key_mut). NULL when memory ran out. */
struct aegis_buf *aegis__kv_item_create(const struct aegis_allocator *alloc, const void *key,
                                        size_t key_len, const void *value, size_t value_len,
                                        aegis_index version);
static inline uint8_t *aegis__kv_item_key_mut(struct aegis_buf *item)
{
    return item->data + item->len + AEGIS_KV_ITEM_META_BYTES;
}

uint64_t aegis__kv_hash(const struct aegis_kv *kv, const uint8_t *key, size_t key_len);
/* A slot's tag: the hash's top 32 bits. */
static inline uint32_t aegis__kv_tag(uint64_t hash)
{
    return (uint32_t)(hash >> 32);
}
int aegis__kv_table_init(const struct aegis_kv *kv, struct aegis_kv_table *t,
                         size_t keys_count);
void aegis__kv_table_free(struct aegis_kv_table *t);
/* Make room in @t for @extra more keys. Returns 0 or AEGIS_ENOMEM (table unchanged). */
int aegis__kv_table_reserve(const struct aegis_kv *kv, struct aegis_kv_table *t, size_t extra);
/* Insert an item whose key is known to be absent; the reference is handed over. The
 * table must have room (aegis__kv_table_reserve). */
void aegis__kv_table_insert_new(struct aegis_kv_table *t, uint64_t hash,
                                struct aegis_buf *item);
struct aegis_buf *aegis__kv_table_find(const struct aegis_kv_table *t, uint64_t hash,
                                       const uint8_t *key, size_t key_len);

/* Copy-on-write hooks of the open view (kv_snapshot.c), called by writers in kv.c.
 * reserve makes room to preserve @count more items (0 or AEGIS_ENOMEM, called in the
 * prepare step of a write); retire takes over the table's reference to an item being
 * overwritten or deleted (@tag is its slot's): kept for the view if it still needs it,
 * else dropped. */
int aegis__kv_snap_reserve(struct aegis_kv *kv, size_t count);
void aegis__kv_snap_retire(struct aegis_kv *kv, uint32_t tag, struct aegis_buf *item);

#endif /* AEGIS_KV_H */
