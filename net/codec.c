/* SPDX-License-Identifier: MIT */
/* The Raft wire format; see codec.h for the design. This comment is the specification,
 * mirrored in docs/wire-format.md. All integers are little-endian; "bool" is a u8 that
 * must be 0 or 1; offsets are in bytes.
 *
 * Frame header (36 bytes):
 *     0  u32  magic        0x52474541, the bytes 'A' 'E' 'G' 'R'
 *     4  u8   version      1
 *     5  u8   type         enum aegis_msg_type (1..13)
 *     6  u16  flags        0 (reserved; a receiver refuses anything else)
 *     8  u32  body_len     bytes after the header
 *    12  u64  from         sender's node id
 *    20  u64  to           receiver's node id
 *    28  u64  term         sender's current term
 *
 * Bodies (offsets from the start of the body):
 *   VOTE_REQ (1), 18 bytes:
 *     0 u64 last_log_index | 8 u64 last_log_term | 16 bool pre_vote
 *     17 bool leadership_transfer
 *   VOTE_RESP (2), 2 bytes: 0 bool granted | 1 bool pre_vote
 *   APPEND_REQ (3), 28 + sum(21 + len_i) bytes:
 *     0 u64 prev_index | 8 u64 prev_term | 16 u64 commit | 24 u32 entries_count
 *     then entries_count entries, each:
 *       0 u64 term | 8 u64 timestamp | 16 u32 len | 20 u8 type (1..3) | 21 len bytes
 *     An entry's index is not sent: entry i (from 0) has index prev_index + 1 + i.
 *   APPEND_RESP (4), 33 bytes:
 *     0 bool success | 1 u64 match_index | 9 u64 conflict_index | 17 u64 conflict_term
 *     25 u64 last_index
 *   SNAPSHOT_REQ (5), 38 + 9 * member_count + chunk_len bytes:
 *     0 u64 meta.index | 8 u64 meta.term | 16 u8 member_count (<= AEGIS_MEMBERS_MAX)
 *     17 member_count members, each: 0 u64 id (non-zero, unique) | 8 u8 role (1..2)
 *     then: u64 offset | u64 total_bytes | bool done | u32 chunk_len | chunk_len bytes
 *     with offset + chunk_len <= total_bytes, and == total_bytes when done.
 *   SNAPSHOT_RESP (6), 17 bytes: 0 u64 index | 8 u64 next_offset | 16 bool success
 *   HEARTBEAT (7), 16 bytes: 0 u64 commit | 8 u64 read_ctx
 *   HEARTBEAT_RESP (8), 8 bytes: 0 u64 read_ctx
 *   TIMEOUT_NOW (9), 8 bytes: 0 u64 target (the node the leader hands over to; sent to the
 *     target and, as a notice, to every other voter)
 *   READ_INDEX_REQ (10), 8 bytes: 0 u64 ctx
 *   READ_INDEX_RESP (11), 17 bytes: 0 u64 ctx | 8 u64 index | 16 bool ok
 *   CLIENT_REQ (12), 12 + len bytes: 0 u64 request_id | 8 u32 len | 12 len bytes (command)
 *   CLIENT_RESP (13), 49 + len bytes:
 *     0 u64 request_id | 8 i32 status (0 or negative) | 12 u64 leader_hint | 20 u64 index
 *     28 u64 version | 36 i64 integer | 44 bool has_value | 45 u32 len (0 unless has_value) |
 *     49 len bytes
 *
 * The encoding is canonical: a frame that decodes re-encodes to the same bytes (the fuzz
 * target checks this). Payloads of length zero decode as NULL buffers, except a client
 * response's value when has_value is 1 (an empty value, distinct from no value).
 *
 * The encoder walks a message once per mode: MEASURE counts bytes and iovecs, IOV writes
 * fixed parts to scratch and points iovecs at payloads, FLAT copies everything into one
 * buffer. One walk for all three keeps the size query and both encodings in agreement. */
#include "net/codec.h"

#include <string.h>

#include <aegis/error.h>

#include "engine/assert.h"
#include "engine/byteorder.h"

/* The header layout of the file comment: magic, version, type, flags, body_len, from, to,
 * term. */
_Static_assert(AEGIS_CODEC_HEADER_BYTES == 4 + 1 + 1 + 2 + 4 + 8 + 8 + 8, "frame header layout");

AEGIS_STATIC_ASSERT(AEGIS_MEMBERS_MAX <= UINT8_MAX);
AEGIS_STATIC_ASSERT(AEGIS_BUF_LEN_MAX <= UINT32_MAX);

#define VOTE_REQ_BYTES 18u
#define VOTE_RESP_BYTES 2u
#define APPEND_REQ_FIXED_BYTES 28u
#define APPEND_RESP_BYTES 33u
#define SNAPSHOT_REQ_FIXED_BYTES 38u
#define MEMBER_BYTES 9u
#define SNAPSHOT_RESP_BYTES 17u
#define HEARTBEAT_BYTES 16u
#define HEARTBEAT_RESP_BYTES 8u
#define TIMEOUT_NOW_BYTES 8u
#define READ_INDEX_REQ_BYTES 8u
#define READ_INDEX_RESP_BYTES 17u
#define CLIENT_REQ_FIXED_BYTES 12u
#define CLIENT_RESP_FIXED_BYTES 49u

/* Body length rule per type: the minimum, and whether it is also the exact length. */
struct body_rule {
    uint32_t min;
    bool fixed;
};

static const struct body_rule body_rules[AEGIS_MSG_TYPE_MAX + 1] = {
    [AEGIS_MSG_VOTE_REQ] = {VOTE_REQ_BYTES, true},
    [AEGIS_MSG_VOTE_RESP] = {VOTE_RESP_BYTES, true},
    [AEGIS_MSG_APPEND_REQ] = {APPEND_REQ_FIXED_BYTES, false},
    [AEGIS_MSG_APPEND_RESP] = {APPEND_RESP_BYTES, true},
    [AEGIS_MSG_SNAPSHOT_REQ] = {SNAPSHOT_REQ_FIXED_BYTES, false},
    [AEGIS_MSG_SNAPSHOT_RESP] = {SNAPSHOT_RESP_BYTES, true},
    [AEGIS_MSG_HEARTBEAT] = {HEARTBEAT_BYTES, true},
    [AEGIS_MSG_HEARTBEAT_RESP] = {HEARTBEAT_RESP_BYTES, true},
    [AEGIS_MSG_TIMEOUT_NOW] = {TIMEOUT_NOW_BYTES, true},
    [AEGIS_MSG_READ_INDEX_REQ] = {READ_INDEX_REQ_BYTES, true},
    [AEGIS_MSG_READ_INDEX_RESP] = {READ_INDEX_RESP_BYTES, true},
    [AEGIS_MSG_CLIENT_REQ] = {CLIENT_REQ_FIXED_BYTES, false},
    [AEGIS_MSG_CLIENT_RESP] = {CLIENT_RESP_FIXED_BYTES, false},
};

static const char *const type_names[AEGIS_MSG_TYPE_MAX + 1] = {
    [AEGIS_MSG_VOTE_REQ] = "vote_req",
    [AEGIS_MSG_VOTE_RESP] = "vote_resp",
    [AEGIS_MSG_APPEND_REQ] = "append_req",
    [AEGIS_MSG_APPEND_RESP] = "append_resp",
    [AEGIS_MSG_SNAPSHOT_REQ] = "snapshot_req",
    [AEGIS_MSG_SNAPSHOT_RESP] = "snapshot_resp",
    [AEGIS_MSG_HEARTBEAT] = "heartbeat",
    [AEGIS_MSG_HEARTBEAT_RESP] = "heartbeat_resp",
    [AEGIS_MSG_TIMEOUT_NOW] = "timeout_now",
    [AEGIS_MSG_READ_INDEX_REQ] = "read_index_req",
    [AEGIS_MSG_READ_INDEX_RESP] = "read_index_resp",
    [AEGIS_MSG_CLIENT_REQ] = "client_req",
    [AEGIS_MSG_CLIENT_RESP] = "client_resp",
};

const char *aegis__codec_type_name(unsigned type)
{
    if (type < AEGIS_MSG_TYPE_MIN || type > AEGIS_MSG_TYPE_MAX) {
        return "unknown";
    }
    return type_names[type];
}

static bool type_valid(unsigned type)
{
    return type >= AEGIS_MSG_TYPE_MIN && type <= AEGIS_MSG_TYPE_MAX;
}

enum enc_mode { ENC_MEASURE, ENC_IOV, ENC_FLAT };

/* One encoding walk. In MEASURE mode nothing is written; the counters still advance. */
struct enc {
    enum enc_mode mode;
    uint8_t *out;      /* Scratch (IOV) or the whole frame (FLAT). */
    size_t out_cap;
    uint64_t pos;      /* Bytes written to out. */
    uint64_t frame;    /* Bytes of frame so far (scratch and payloads). */
    struct iovec *iov;
    size_t iov_cap;
    size_t iov_count;
    uint64_t seg_start; /* Start in out of the scratch segment not yet in an iovec. */
};

static uint8_t *enc_reserve(struct enc *e, size_t n)
{
    uint8_t *p = NULL;

    if (e->mode != ENC_MEASURE) {
        AEGIS_ASSERT(e->pos + n <= e->out_cap);
        p = e->out + e->pos;
    }
    e->pos += n;
    e->frame += n;
    return p;
}

static void enc_u8(struct enc *e, uint8_t v)
{
    uint8_t *p = enc_reserve(e, 1);

    if (p != NULL) {
        p[0] = v;
    }
}

static void enc_bool(struct enc *e, bool v)
{
    enc_u8(e, v ? 1 : 0);
}

static void enc_u32(struct enc *e, uint32_t v)
{
    uint8_t *p = enc_reserve(e, 4);

    if (p != NULL) {
        aegis__put_le32(p, v);
    }
}

static void enc_u64(struct enc *e, uint64_t v)
{
    uint8_t *p = enc_reserve(e, 8);

    if (p != NULL) {
        aegis__put_le64(p, v);
    }
}

/* Close the pending scratch segment into an iovec (IOV and MEASURE count it). */
static void enc_flush_segment(struct enc *e)
{
    if (e->pos == e->seg_start) {
        return;
    }
    if (e->mode == ENC_IOV) {
        AEGIS_ASSERT(e->iov_count < e->iov_cap);
        e->iov[e->iov_count].iov_base = e->out + e->seg_start;
        e->iov[e->iov_count].iov_len = (size_t)(e->pos - e->seg_start);
    }
    e->iov_count++;
    e->seg_start = e->pos;
}

/* Payload bytes: an iovec of their own (IOV), a copy (FLAT), or a count (MEASURE). */
static void enc_payload(struct enc *e, const struct aegis_buf *b)
{
    uint32_t len = b != NULL ? b->len : 0;

    if (len == 0) {
        return;
    }
    if (e->mode == ENC_FLAT) {
        memcpy(enc_reserve(e, len), b->data, len);
        return;
    }
    enc_flush_segment(e);
    if (e->mode == ENC_IOV) {
        AEGIS_ASSERT(e->iov_count < e->iov_cap);
        /* iov_base is not const in POSIX; the bytes are only read by the write. */
        e->iov[e->iov_count].iov_base = (void *)(uintptr_t)b->data;
        e->iov[e->iov_count].iov_len = len;
    }
    e->iov_count++;
    e->frame += len;
}

static uint32_t buf_len(const struct aegis_buf *b)
{
    return b != NULL ? b->len : 0;
}

static void enc_append_req(struct enc *e, const struct aegis_append_req *r)
{
    AEGIS_ASSERT(r->entries_count == 0 || r->entries != NULL);
    enc_u64(e, r->prev_index);
    enc_u64(e, r->prev_term);
    enc_u64(e, r->commit);
    enc_u32(e, r->entries_count);
    for (uint32_t i = 0; i < r->entries_count; i++) {
        const struct aegis_entry *entry = &r->entries[i];

        /* Indexes are implicit on the wire: the sender must respect Raft's contiguity. */
        AEGIS_ASSERT(entry->index == r->prev_index + 1 + i);
        AEGIS_ASSERT(entry->type >= AEGIS_ENTRY_COMMAND && entry->type <= AEGIS_ENTRY_NOOP);
        enc_u64(e, entry->term);
        enc_u64(e, entry->timestamp);
        enc_u32(e, aegis__entry_len(entry));
        enc_u8(e, entry->type);
        enc_payload(e, entry->buf);
    }
}

static void enc_snapshot_req(struct enc *e, const struct aegis_snapshot_req *r)
{
    uint32_t chunk_len = buf_len(r->chunk);

    AEGIS_ASSERT(r->meta.conf.count <= AEGIS_MEMBERS_MAX);
    AEGIS_ASSERT(r->offset <= r->total_bytes);
    AEGIS_ASSERT(chunk_len <= r->total_bytes - r->offset);
    if (r->done) {
        AEGIS_ASSERT(r->offset + chunk_len == r->total_bytes);
    }
    enc_u64(e, r->meta.index);
    enc_u64(e, r->meta.term);
    enc_u8(e, (uint8_t)r->meta.conf.count);
    for (uint32_t i = 0; i < r->meta.conf.count; i++) {
        enc_u64(e, r->meta.conf.members[i].id);
        enc_u8(e, r->meta.conf.members[i].role);
    }
    enc_u64(e, r->offset);
    enc_u64(e, r->total_bytes);
    enc_bool(e, r->done);
    enc_u32(e, chunk_len);
    enc_payload(e, r->chunk);
}

static void enc_client_resp(struct enc *e, const struct aegis_client_resp *r)
{
    AEGIS_ASSERT(r->status <= 0);
    enc_u64(e, r->request_id);
    enc_u32(e, (uint32_t)r->status);
    enc_u64(e, r->leader_hint);
    enc_u64(e, r->index);
    enc_u64(e, r->version);
    enc_u64(e, (uint64_t)r->integer);
    enc_bool(e, r->value != NULL);
    enc_u32(e, buf_len(r->value));
    enc_payload(e, r->value);
}

static void enc_body(struct enc *e, const struct aegis_msg *m)
{
    switch (m->type) {
    case AEGIS_MSG_VOTE_REQ:
        enc_u64(e, m->vote_req.last_log_index);
        enc_u64(e, m->vote_req.last_log_term);
        enc_bool(e, m->vote_req.pre_vote);
        enc_bool(e, m->vote_req.leadership_transfer);
        break;
    case AEGIS_MSG_VOTE_RESP:
        enc_bool(e, m->vote_resp.granted);
        enc_bool(e, m->vote_resp.pre_vote);
        break;
    case AEGIS_MSG_APPEND_REQ:
        enc_append_req(e, &m->append_req);
        break;
    case AEGIS_MSG_APPEND_RESP:
        enc_bool(e, m->append_resp.success);
        enc_u64(e, m->append_resp.match_index);
        enc_u64(e, m->append_resp.conflict_index);
        enc_u64(e, m->append_resp.conflict_term);
        enc_u64(e, m->append_resp.last_index);
        break;
    case AEGIS_MSG_SNAPSHOT_REQ:
        enc_snapshot_req(e, &m->snapshot_req);
        break;
    case AEGIS_MSG_SNAPSHOT_RESP:
        enc_u64(e, m->snapshot_resp.index);
        enc_u64(e, m->snapshot_resp.next_offset);
        enc_bool(e, m->snapshot_resp.success);
        break;
    case AEGIS_MSG_HEARTBEAT:
        enc_u64(e, m->heartbeat.commit);
        enc_u64(e, m->heartbeat.read_ctx);
        break;
    case AEGIS_MSG_HEARTBEAT_RESP:
        enc_u64(e, m->heartbeat_resp.read_ctx);
        break;
    case AEGIS_MSG_TIMEOUT_NOW:
        enc_u64(e, m->timeout_now.target);
        break;
    case AEGIS_MSG_READ_INDEX_REQ:
        enc_u64(e, m->read_index_req.ctx);
        break;
    case AEGIS_MSG_READ_INDEX_RESP:
        enc_u64(e, m->read_index_resp.ctx);
        enc_u64(e, m->read_index_resp.index);
        enc_bool(e, m->read_index_resp.ok);
        break;
    case AEGIS_MSG_CLIENT_REQ:
        enc_u64(e, m->client_req.request_id);
        enc_u32(e, buf_len(m->client_req.command));
        enc_payload(e, m->client_req.command);
        break;
    case AEGIS_MSG_CLIENT_RESP:
        enc_client_resp(e, &m->client_resp);
        break;
    default:
        AEGIS_UNREACHABLE();
    }
}

static void enc_header(struct enc *e, const struct aegis_msg *m, uint32_t body_len)
{
    uint8_t *p = enc_reserve(e, AEGIS_CODEC_HEADER_BYTES);

    if (p == NULL) {
        return;
    }
    aegis__put_le32(p + 0, AEGIS_CODEC_MAGIC);
    p[4] = (uint8_t)AEGIS_CODEC_VERSION;
    p[5] = m->type;
    aegis__put_le16(p + 6, 0);
    aegis__put_le32(p + 8, body_len);
    aegis__put_le64(p + 12, m->from);
    aegis__put_le64(p + 20, m->to);
    aegis__put_le64(p + 28, m->term);
}

/* The whole walk: header (with @body_len, unknown and 0 in MEASURE mode), then body. */
static void enc_frame(struct enc *e, const struct aegis_msg *m, uint32_t body_len)
{
    AEGIS_ASSERT(type_valid(m->type));
    enc_header(e, m, body_len);
    enc_body(e, m);
    enc_flush_segment(e);
}

int aegis__codec_encode_size(const struct aegis_msg *m, struct aegis_codec_size *size_out)
{
    struct enc e = {.mode = ENC_MEASURE};

    enc_frame(&e, m, 0);
    AEGIS_ASSERT(e.frame >= AEGIS_CODEC_HEADER_BYTES);
    AEGIS_ASSERT(e.pos <= e.frame);
    if (e.frame - AEGIS_CODEC_HEADER_BYTES > UINT32_MAX) {
        return AEGIS_ETOOBIG;
    }
    size_out->frame_bytes = (size_t)e.frame;
    size_out->scratch_bytes = (size_t)e.pos;
    size_out->iov_count = e.iov_count;
    return 0;
}

int aegis__codec_encode_iov(const struct aegis_msg *m, uint8_t *scratch, size_t scratch_len,
                            struct iovec *iov, size_t iov_cap, size_t *iov_count_out,
                            size_t *frame_bytes_out)
{
    struct aegis_codec_size size;
    struct enc e = {.mode = ENC_IOV, .out = scratch, .out_cap = scratch_len, .iov = iov,
                    .iov_cap = iov_cap};
    int rv;

    rv = aegis__codec_encode_size(m, &size);
    if (rv != 0) {
        return rv;
    }
    AEGIS_ASSERT(scratch_len >= size.scratch_bytes);
    AEGIS_ASSERT(iov_cap >= size.iov_count);
    enc_frame(&e, m, (uint32_t)(size.frame_bytes - AEGIS_CODEC_HEADER_BYTES));
    AEGIS_ASSERT(e.frame == size.frame_bytes);
    AEGIS_ASSERT(e.iov_count == size.iov_count);
    *iov_count_out = e.iov_count;
    if (frame_bytes_out != NULL) {
        *frame_bytes_out = size.frame_bytes;
    }
    return 0;
}

int aegis__codec_encode(const struct aegis_msg *m, uint8_t *out, size_t cap, size_t *len_out)
{
    struct aegis_codec_size size;
    struct enc e = {.mode = ENC_FLAT, .out = out, .out_cap = cap};
    int rv;

    rv = aegis__codec_encode_size(m, &size);
    if (rv != 0) {
        return rv;
    }
    if (size.frame_bytes > cap) {
        return AEGIS_ETOOBIG;
    }
    enc_frame(&e, m, (uint32_t)(size.frame_bytes - AEGIS_CODEC_HEADER_BYTES));
    AEGIS_ASSERT(e.pos == size.frame_bytes);
    *len_out = size.frame_bytes;
    return 0;
}

int aegis__codec_encode_alloc(const struct aegis_msg *m, const struct aegis_allocator *a,
                              uint8_t **out, size_t *len_out)
{
    struct aegis_codec_size size;
    uint8_t *bytes;
    int rv;

    rv = aegis__codec_encode_size(m, &size);
    if (rv != 0) {
        return rv;
    }
    bytes = aegis__malloc(a, size.frame_bytes);
    if (bytes == NULL) {
        return AEGIS_ENOMEM;
    }
    rv = aegis__codec_encode(m, bytes, size.frame_bytes, len_out);
    AEGIS_ASSERT(rv == 0);
    *out = bytes;
    return 0;
}

int aegis__codec_peek(const void *bytes, size_t len, size_t frame_bytes_max,
                      size_t *frame_len_out)
{
    const uint8_t *p = bytes;
    uint32_t body_len;
    uint64_t frame_len;
    uint8_t type;

    *frame_len_out = AEGIS_CODEC_HEADER_BYTES;
    if (len >= 4 && aegis__get_le32(p) != AEGIS_CODEC_MAGIC) {
        return AEGIS_ECORRUPT;
    }
    if (len >= 5 && p[4] != AEGIS_CODEC_VERSION) {
        return AEGIS_EVERSION;
    }
    if (len >= 6 && !type_valid(p[5])) {
        return AEGIS_ECORRUPT;
    }
    if (len >= 8 && aegis__get_le16(p + 6) != 0) {
        return AEGIS_ECORRUPT;
    }
    if (len < 12) {
        return 0;
    }
    type = p[5];
    body_len = aegis__get_le32(p + 8);
    if (body_len < body_rules[type].min) {
        return AEGIS_ECORRUPT;
    }
    if (body_rules[type].fixed && body_len != body_rules[type].min) {
        return AEGIS_ECORRUPT;
    }
    frame_len = (uint64_t)AEGIS_CODEC_HEADER_BYTES + body_len;
    if (frame_len > frame_bytes_max) {
        return AEGIS_ETOOBIG;
    }
    *frame_len_out = (size_t)frame_len;
    return len >= frame_len ? 1 : 0;
}

/* A bounded reader over one frame's body. Every get checks the bytes left first. */
struct dec {
    const uint8_t *p;
    size_t left;
};

static bool get_u8(struct dec *d, uint8_t *v)
{
    if (d->left < 1) {
        return false;
    }
    *v = d->p[0];
    d->p += 1;
    d->left -= 1;
    return true;
}

static bool get_bool(struct dec *d, bool *v)
{
    uint8_t b;

    if (!get_u8(d, &b) || b > 1) {
        return false;
    }
    *v = b == 1;
    return true;
}

static bool get_u32(struct dec *d, uint32_t *v)
{
    if (d->left < 4) {
        return false;
    }
    *v = aegis__get_le32(d->p);
    d->p += 4;
    d->left -= 4;
    return true;
}

static bool get_u64(struct dec *d, uint64_t *v)
{
    if (d->left < 8) {
        return false;
    }
    *v = aegis__get_le64(d->p);
    d->p += 8;
    d->left -= 8;
    return true;
}

/* Read @len payload bytes into a new buffer (*out = NULL when @len is 0 and !@keep_empty).
 * Returns 0, AEGIS_ECORRUPT (not enough bytes) or AEGIS_ENOMEM. */
static int get_payload(struct dec *d, uint32_t len, bool keep_empty, struct aegis_buf **out,
                       const struct aegis_allocator *a)
{
    *out = NULL;
    if (len > d->left || len > AEGIS_BUF_LEN_MAX) {
        return AEGIS_ECORRUPT;
    }
    if (len == 0 && !keep_empty) {
        return 0;
    }
    *out = aegis__buf_from(a, d->p, len);
    if (*out == NULL) {
        return AEGIS_ENOMEM;
    }
    d->p += len;
    d->left -= len;
    return 0;
}

static int dec_append_req(struct dec *d, struct aegis_append_req *r,
                          const struct aegis_allocator *a)
{
    uint32_t count;
    int rv;

    if (!get_u64(d, &r->prev_index) || !get_u64(d, &r->prev_term) ||
        !get_u64(d, &r->commit) || !get_u32(d, &count)) {
        return AEGIS_ECORRUPT;
    }
    /* Check the count against the bytes present before allocating for it. */
    if (count > d->left / AEGIS_CODEC_ENTRY_HEADER_BYTES) {
        return AEGIS_ECORRUPT;
    }
    if (r->prev_index > UINT64_MAX - count) {
        return AEGIS_ECORRUPT;
    }
    if (count == 0) {
        return 0;
    }
    r->entries = aegis__calloc(a, count, sizeof(*r->entries));
    if (r->entries == NULL) {
        return AEGIS_ENOMEM;
    }
    /* The array is zeroed, so releasing after a partial decode unrefs only real buffers. */
    r->entries_count = count;
    for (uint32_t i = 0; i < count; i++) {
        struct aegis_entry *e = &r->entries[i];
        uint32_t len;

        e->index = r->prev_index + 1 + i;
        if (!get_u64(d, &e->term) || !get_u64(d, &e->timestamp) || !get_u32(d, &len) ||
            !get_u8(d, &e->type)) {
            return AEGIS_ECORRUPT;
        }
        if (e->type < AEGIS_ENTRY_COMMAND || e->type > AEGIS_ENTRY_NOOP) {
            return AEGIS_ECORRUPT;
        }
        rv = get_payload(d, len, false, &e->buf, a);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

static int dec_conf(struct dec *d, struct aegis_conf *conf)
{
    uint8_t count;

    if (!get_u8(d, &count) || count > AEGIS_MEMBERS_MAX) {
        return AEGIS_ECORRUPT;
    }
    conf->count = count;
    for (uint32_t i = 0; i < count; i++) {
        struct aegis_member *mb = &conf->members[i];

        if (!get_u64(d, &mb->id) || !get_u8(d, &mb->role)) {
            return AEGIS_ECORRUPT;
        }
        if (mb->id == AEGIS_NODE_NONE) {
            return AEGIS_ECORRUPT;
        }
        if (mb->role != AEGIS_MEMBER_VOTER && mb->role != AEGIS_MEMBER_LEARNER) {
            return AEGIS_ECORRUPT;
        }
        for (uint32_t j = 0; j < i; j++) {
            if (conf->members[j].id == mb->id) {
                return AEGIS_ECORRUPT;
            }
        }
    }
    return 0;
}

static int dec_snapshot_req(struct dec *d, struct aegis_snapshot_req *r,
                            const struct aegis_allocator *a)
{
    uint32_t len;
    int rv;

    if (!get_u64(d, &r->meta.index) || !get_u64(d, &r->meta.term)) {
        return AEGIS_ECORRUPT;
    }
    rv = dec_conf(d, &r->meta.conf);
    if (rv != 0) {
        return rv;
    }
    if (!get_u64(d, &r->offset) || !get_u64(d, &r->total_bytes) || !get_bool(d, &r->done) ||
        !get_u32(d, &len)) {
        return AEGIS_ECORRUPT;
    }
    if (r->offset > r->total_bytes || len > r->total_bytes - r->offset) {
        return AEGIS_ECORRUPT;
    }
    if (r->done && r->offset + len != r->total_bytes) {
        return AEGIS_ECORRUPT;
    }
    return get_payload(d, len, false, &r->chunk, a);
}

static int dec_client_resp(struct dec *d, struct aegis_client_resp *r,
                           const struct aegis_allocator *a)
{
    uint32_t status;
    uint32_t len;
    uint64_t integer;
    bool has_value;

    if (!get_u64(d, &r->request_id) || !get_u32(d, &status) || !get_u64(d, &r->leader_hint) ||
        !get_u64(d, &r->index) || !get_u64(d, &r->version) || !get_u64(d, &integer) ||
        !get_bool(d, &has_value) || !get_u32(d, &len)) {
        return AEGIS_ECORRUPT;
    }
    r->integer = (int64_t)integer;
    /* Two's complement: a status is 0 or negative, so its top bit is set unless it is 0. */
    if (status != 0 && (status & 0x80000000u) == 0) {
        return AEGIS_ECORRUPT;
    }
    r->status = status == 0 ? 0 : -(int32_t)(~status) - 1;
    if (!has_value) {
        return len == 0 ? 0 : AEGIS_ECORRUPT;
    }
    return get_payload(d, len, true, &r->value, a);
}

static int dec_fixed_body(struct dec *d, struct aegis_msg *m)
{
    bool ok = true;

    switch (m->type) {
    case AEGIS_MSG_VOTE_REQ:
        ok = get_u64(d, &m->vote_req.last_log_index) &&
             get_u64(d, &m->vote_req.last_log_term) && get_bool(d, &m->vote_req.pre_vote) &&
             get_bool(d, &m->vote_req.leadership_transfer);
        break;
    case AEGIS_MSG_VOTE_RESP:
        ok = get_bool(d, &m->vote_resp.granted) && get_bool(d, &m->vote_resp.pre_vote);
        break;
    case AEGIS_MSG_APPEND_RESP:
        ok = get_bool(d, &m->append_resp.success) && get_u64(d, &m->append_resp.match_index) &&
             get_u64(d, &m->append_resp.conflict_index) &&
             get_u64(d, &m->append_resp.conflict_term) &&
             get_u64(d, &m->append_resp.last_index);
        break;
    case AEGIS_MSG_SNAPSHOT_RESP:
        ok = get_u64(d, &m->snapshot_resp.index) && get_u64(d, &m->snapshot_resp.next_offset) &&
             get_bool(d, &m->snapshot_resp.success);
        break;
    case AEGIS_MSG_HEARTBEAT:
        ok = get_u64(d, &m->heartbeat.commit) && get_u64(d, &m->heartbeat.read_ctx);
        break;
    case AEGIS_MSG_HEARTBEAT_RESP:
        ok = get_u64(d, &m->heartbeat_resp.read_ctx);
        break;
    case AEGIS_MSG_TIMEOUT_NOW:
        ok = get_u64(d, &m->timeout_now.target);
        break;
    case AEGIS_MSG_READ_INDEX_REQ:
        ok = get_u64(d, &m->read_index_req.ctx);
        break;
    case AEGIS_MSG_READ_INDEX_RESP:
        ok = get_u64(d, &m->read_index_resp.ctx) && get_u64(d, &m->read_index_resp.index) &&
             get_bool(d, &m->read_index_resp.ok);
        break;
    default:
        AEGIS_UNREACHABLE();
    }
    return ok ? 0 : AEGIS_ECORRUPT;
}

static int dec_body(struct dec *d, struct aegis_msg *m, const struct aegis_allocator *a)
{
    uint32_t len;

    switch (m->type) {
    case AEGIS_MSG_APPEND_REQ:
        return dec_append_req(d, &m->append_req, a);
    case AEGIS_MSG_SNAPSHOT_REQ:
        return dec_snapshot_req(d, &m->snapshot_req, a);
    case AEGIS_MSG_CLIENT_REQ:
        if (!get_u64(d, &m->client_req.request_id) || !get_u32(d, &len)) {
            return AEGIS_ECORRUPT;
        }
        return get_payload(d, len, false, &m->client_req.command, a);
    case AEGIS_MSG_CLIENT_RESP:
        return dec_client_resp(d, &m->client_resp, a);
    default:
        return dec_fixed_body(d, m);
    }
}

int aegis__codec_decode(const void *bytes, size_t len, struct aegis_msg *out,
                        const struct aegis_allocator *a)
{
    const uint8_t *p = bytes;
    size_t frame_len;
    struct dec d;
    int rv;

    memset(out, 0, sizeof(*out));
    rv = aegis__codec_peek(bytes, len, SIZE_MAX, &frame_len);
    if (rv < 0) {
        return rv;
    }
    /* Exactly one whole frame: a strict prefix or trailing bytes are both corrupt. */
    if (rv == 0 || frame_len != len) {
        return AEGIS_ECORRUPT;
    }
    out->type = p[5];
    out->from = aegis__get_le64(p + 12);
    out->to = aegis__get_le64(p + 20);
    out->term = aegis__get_le64(p + 28);
    d.p = p + AEGIS_CODEC_HEADER_BYTES;
    d.left = len - AEGIS_CODEC_HEADER_BYTES;
    rv = dec_body(&d, out, a);
    if (rv == 0 && d.left != 0) {
        rv = AEGIS_ECORRUPT;
    }
    if (rv != 0) {
        aegis__msg_release(out, a);
        AEGIS_ASSERT(out->type == 0);
        return rv;
    }
    return 0;
}
