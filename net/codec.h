/* SPDX-License-Identifier: MIT */
/* The Raft wire format: how every struct aegis_msg (engine/msg.h) travels between peers.
 *
 * A frame is a 36-byte header followed by a type-specific body. All integers are
 * little-endian and fixed-width. Fixed width rather than varints because (1) the size of
 * every frame is known from the message alone, so aegis__codec_encode_size() is exact
 * and cheap and the transport sizes its scratch and iovec arrays without a dry run;
 * (2) every field sits at a documented offset, so the format is specified byte by byte
 * (codec.c, docs/wire-format.md) and checked by a reader with no decoding state; (3) the
 * bytes that dominate a busy link are entry payloads, which are never re-encoded, so
 * the dozen bytes varints would save per entry header do not pay for their branches.
 *
 * Framing and validation: aegis__codec_peek() reads only the header and says whether a
 * whole frame is buffered, refusing a bad magic, an unknown version or type, reserved
 * flags, a body length impossible for the type or above the receiver's maximum, all
 * before anything is allocated. aegis__codec_decode() validates every field of one whole
 * frame and never reads outside it or asserts on its contents.
 *
 * Zero copy: aegis__codec_encode_iov() writes the header and every fixed-size part
 * (including each entry's small header) into a caller's scratch buffer and builds an
 * iovec array in which each payload (entry data, snapshot chunk, client command or
 * value) is an iovec pointing straight into its struct aegis_buf. The caller keeps the
 * message (and so its buffers) alive until the write completes.
 *
 * Thread-safety: every function is reentrant; none keeps state. */
#ifndef AEGIS_NET_CODEC_H
#define AEGIS_NET_CODEC_H

#include <sys/uio.h>

#include "engine/msg.h"

/* Frame header: magic, version, type, flags, body length, from, to, term. */
#define AEGIS_CODEC_HEADER_BYTES 36u
#define AEGIS_CODEC_MAGIC 0x52474541u /* The bytes "AEGR" as a little-endian u32. */
#define AEGIS_CODEC_VERSION 1u

/* The largest frame a sender may produce: the body length is a u32. */
#define AEGIS_CODEC_FRAME_BYTES_LIMIT ((uint64_t)AEGIS_CODEC_HEADER_BYTES + UINT32_MAX)

/* A sensible receive limit for aegis__codec_peek(): 64 MiB, well above the runtime's
 * AppendEntries batch and snapshot chunk sizes. */
#define AEGIS_CODEC_FRAME_BYTES_MAX_DEFAULT ((size_t)64u << 20)

/* Bytes of one AppendEntries entry header on the wire (term, timestamp, length, type). */
#define AEGIS_CODEC_ENTRY_HEADER_BYTES 21u

/* What aegis__codec_encode_size() reports. */
struct aegis_codec_size {
    size_t frame_bytes;   /* Header + body: what goes on the wire. */
    size_t scratch_bytes; /* Fixed-size parts: what aegis__codec_encode_iov() writes. */
    size_t iov_count;     /* Exact number of iovecs aegis__codec_encode_iov() fills. */
};

/* Compute the sizes of @m's encoding into @size_out. Returns 0, or AEGIS_ETOOBIG when the
 * body would exceed a u32 (the frame cannot be expressed). @m is only read. */
int aegis__codec_encode_size(const struct aegis_msg *m, struct aegis_codec_size *size_out);

/* Encode @m as one frame without copying payloads: fixed-size parts go to @scratch
 * (@scratch_len >= size.scratch_bytes), and @iov (@iov_cap >= size.iov_count) receives
 * the frame as a sequence of iovecs alternating between @scratch and the payload bytes
 * of @m's buffers. Empty payloads get no iovec; adjacent scratch parts are merged into
 * one iovec. *iov_count_out receives the number of iovecs used and *frame_bytes_out
 * (may be NULL) the total length.
 *
 * Ownership: the iovecs borrow @scratch and @m's buffers; both must outlive the write.
 * Returns 0, or AEGIS_ETOOBIG as aegis__codec_encode_size(). Passing buffers smaller than
 * the size query reported, an unknown type, or AppendEntries entries whose indexes do not
 * run prev_index + 1, prev_index + 2, ... is a programmer error (assertion). */
int aegis__codec_encode_iov(const struct aegis_msg *m, uint8_t *scratch, size_t scratch_len,
                            struct iovec *iov, size_t iov_cap, size_t *iov_count_out,
                            size_t *frame_bytes_out);

/* Encode @m as one contiguous frame into @out, copying payloads. For tests and small
 * messages. *len_out receives the frame length. Returns 0, AEGIS_ETOOBIG when @cap is
 * smaller than the frame (nothing useful is written) or the frame cannot be expressed. */
int aegis__codec_encode(const struct aegis_msg *m, uint8_t *out, size_t cap, size_t *len_out);

/* As aegis__codec_encode() into a new buffer from @a; the caller frees *out with
 * aegis__free(@a, *out). Returns 0, AEGIS_ETOOBIG or AEGIS_ENOMEM. */
int aegis__codec_encode_alloc(const struct aegis_msg *m, const struct aegis_allocator *a,
                              uint8_t **out, size_t *len_out);

/* Look at the first @len bytes received on a peer link. Returns:
 *   1  a whole frame is present; *frame_len_out is its length (<= @len);
 *   0  need more bytes; *frame_len_out is the length needed so far: the whole frame's
 *      length once the header is in, AEGIS_CODEC_HEADER_BYTES before that;
 *   AEGIS_ECORRUPT  bad magic, unknown type, reserved flags set, or a body length no
 *      message of that type can have;
 *   AEGIS_EVERSION  a version this build does not speak;
 *   AEGIS_ETOOBIG   the frame would be longer than @frame_bytes_max.
 * Checks run as soon as the bytes they need are in (a bad magic is refused after 4
 * bytes). Reads only the header; allocates nothing. */
int aegis__codec_peek(const void *bytes, size_t len, size_t frame_bytes_max,
                      size_t *frame_len_out);

/* Decode the one frame in @bytes (exactly @len bytes: header and body, no more, no less)
 * into @out. Every payload becomes a new struct aegis_buf (one allocation each) and an
 * AppendEntries' entries array comes from @a; @out owns one reference to each buffer:
 * release with aegis__msg_release(@out, @a). Zero-length payloads decode as NULL buffers,
 * except a client response's value, whose presence is explicit (NULL = no value).
 *
 * Returns 0; AEGIS_ECORRUPT for anything malformed (see peek, plus bools other than 0 or
 * 1, unknown entry or member types, counts that do not fit the remaining bytes, more than
 * AEGIS_MEMBERS_MAX members, trailing bytes, ...); AEGIS_EVERSION; AEGIS_ENOMEM. On any
 * error @out is zeroed and holds nothing. Never reads outside [@bytes, @bytes + @len). */
int aegis__codec_decode(const void *bytes, size_t len, struct aegis_msg *out,
                        const struct aegis_allocator *a);

/* "vote_req", "append_resp", ...; "unknown" for anything else. For logs. */
const char *aegis__codec_type_name(unsigned type);

#endif /* AEGIS_NET_CODEC_H */
