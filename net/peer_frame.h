/* SPDX-License-Identifier: MIT */
/* The peer wire format's two decoders of hostile bytes, as pure functions: the 32-byte
 * hello and the reassembly of length-prefixed frames. uring_peer.c calls them on what a
 * socket delivered; tests/fuzz/fuzz_hello.c and tests/unit/net/test_peer_frame.c call
 * them on anything. No I/O, no allocation, no loop bound taken from the input.
 *
 * The hello, 32 bytes, little-endian, no length prefix (the first 32 plaintext bytes
 * each side sends):
 *
 *   offset  size  field
 *        0     4  magic 0x4e474541, the bytes "AEGN"
 *        4     2  protocol version, 1 (AEGIS_HELLO_VERSION: changes only when the peer
 *                 wire format does; a mismatch is refused, naming both versions)
 *        6     2  flags: reserved, must be 0
 *        8     8  cluster id; must equal the receiver's
 *       16     8  sender's node id; non-zero, not the receiver's own
 *       24     8  receiver's node id as the sender believes it
 *
 * Frames: a 4-byte little-endian body length n (n <= the receiver's frame_bytes_max),
 * then n bytes of body. */
#ifndef AEGIS_NET_PEER_FRAME_H
#define AEGIS_NET_PEER_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include <aegis/types.h>

#define AEGIS_HELLO_MAGIC   0x4e474541u
#define AEGIS_HELLO_VERSION 1u
#define AEGIS_HELLO_BYTES   32u
#define AEGIS_FRAME_HDR     4u

struct aegis_hello {
    uint32_t magic;
    uint16_t version;
    uint16_t flags;
    uint64_t cluster_id;
    aegis_node_id sender;
    aegis_node_id receiver;
};

/* What the receiver of a hello expects. */
struct aegis_hello_expect {
    uint64_t cluster_id;     /* Non-zero. */
    aegis_node_id self_id;   /* The receiver; the hello's receiver field must name it. */
    aegis_node_id sender_id; /* Non-zero: the sender must be exactly this node (the dialer
                              * knows whom it dialed; with TLS, the id in the peer's
                              * certificate). 0: any node but self. */
};

/* Write a hello (flags 0) into @out (AEGIS_HELLO_BYTES). */
void aegis__hello_encode(uint8_t *out, uint64_t cluster_id, aegis_node_id sender,
                         aegis_node_id receiver);

/* Decode the first AEGIS_HELLO_BYTES of @in (@len bytes available) into @h. Returns 0,
 * AEGIS_EAGAIN (fewer than 32 bytes: wait for more; @h untouched), or for a hello that is
 * not one: AEGIS_ECORRUPT (wrong magic, or a reserved flag set), AEGIS_EVERSION. */
int aegis__hello_decode(const uint8_t *in, size_t len, struct aegis_hello *h);

/* Why a hello was refused, as one printable line for the log, into @out (@out_bytes,
 * always terminated when non-zero): for AEGIS_EVERSION both versions, "hello protocol
 * version 2 from the peer, this node speaks 1 (aegis 0.2.0)"; for AEGIS_ECORRUPT the
 * magic or the reserved flags seen; otherwise aegis_strerror(@rv). @h is what
 * aegis__hello_decode filled (it fills the fields even on a refusal). Pure. */
void aegis__hello_describe(int rv, const struct aegis_hello *h, char *out, size_t out_bytes);

/* Check a decoded hello against @e. Returns 0, AEGIS_ECLUSTER (another cluster id),
 * AEGIS_EUNKNOWNNODE (receiver is not self, sender 0 or self, or not e->sender_id). */
int aegis__hello_check(const struct aegis_hello *h, const struct aegis_hello_expect *e);

/* Frame reassembly. Look at the bytes @buf[0, @len) buffered from a peer's stream at a
 * frame boundary. Returns:
 *    1  a whole frame is there: its body is @buf[AEGIS_FRAME_HDR, AEGIS_FRAME_HDR +
 *       *body_len); the next frame starts at AEGIS_FRAME_HDR + *body_len;
 *    0  not yet: *need is how many bytes the frame needs in all (header included,
 *       <= @max + AEGIS_FRAME_HDR), so a buffer can be sized before reading on;
 *   AEGIS_ETOOBIG  the length prefix is above @max: the stream cannot be resynchronised.
 * *body_len is set whenever the header is complete. */
int aegis__frame_next(const uint8_t *buf, size_t len, uint32_t max, uint32_t *body_len,
                      size_t *need);

#endif /* AEGIS_NET_PEER_FRAME_H */
