/* SPDX-License-Identifier: MIT */
/* Fuzz target for the peer handshake bytes and frame reassembly (net/peer_frame.h), the
 * decoders that see a stranger's first bytes on the peer port.
 *
 * Input: byte 0 picks the frame limit, byte 1 the size of the chunks the stream arrives
 * in; the rest is what a peer sends: a 32-byte hello, then frames. Checks:
 *   - a hello that decodes re-encodes to the same 32 bytes (flags are zero, fields round
 *     trip), and hello_check accepts exactly the hellos that match the expectation; a
 *     refused one is described (aegis__hello_describe) by a printable, terminated line;
 *   - reassembly over the whole stream and over the stream fed chunk by chunk, through a
 *     bounded buffer as uring_peer.c does, finds the same frames; every frame lies inside
 *     the input and within the limit; `need` never exceeds limit + 4. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <aegis/error.h>

#include "net/peer_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                           \
    do {                                                                                   \
        if (!(x)) {                                                                        \
            __builtin_trap();                                                              \
        }                                                                                  \
    } while (0)

#define BUF_MAX 4096u

static void check_hello(const uint8_t *p, size_t n)
{
    struct aegis_hello h;
    struct aegis_hello_expect e = {.cluster_id = 1, .self_id = 2, .sender_id = 0};
    uint8_t again[AEGIS_HELLO_BYTES];
    int rv = aegis__hello_decode(p, n, &h);

    if (n < AEGIS_HELLO_BYTES) {
        CHECK(rv == AEGIS_EAGAIN);
        return;
    }
    CHECK(rv == 0 || rv == AEGIS_ECORRUPT || rv == AEGIS_EVERSION);
    if (rv != 0) {
        char why[160];
        size_t len;

        aegis__hello_describe(rv, &h, why, sizeof(why));
        len = strnlen(why, sizeof(why));
        CHECK(len > 0 && len < sizeof(why));
        for (size_t i = 0; i < len; i++) {
            CHECK(why[i] >= 0x20 && why[i] < 0x7f);
        }
        return;
    }
    CHECK(h.flags == 0 && h.version == AEGIS_HELLO_VERSION && h.magic == AEGIS_HELLO_MAGIC);
    aegis__hello_encode(again, h.cluster_id, h.sender, h.receiver);
    CHECK(memcmp(again, p, AEGIS_HELLO_BYTES) == 0);
    rv = aegis__hello_check(&h, &e);
    CHECK((rv == 0) == (h.cluster_id == 1 && h.receiver == 2 && h.sender != 0 &&
                        h.sender != 2));
    e.sender_id = 3;
    rv = aegis__hello_check(&h, &e);
    CHECK((rv == 0) == (h.cluster_id == 1 && h.receiver == 2 && h.sender == 3));
}

/* Whole-buffer reassembly: returns the number of frames and a sum of their lengths. */
static uint64_t frames_whole(const uint8_t *p, size_t n, uint32_t max, uint64_t *count,
                             int *end)
{
    size_t off = 0, need = 0;
    uint64_t sum = 0;
    uint32_t len = 0;
    int rv;

    *count = 0;
    /* Bounded by n: each frame consumes at least 4 bytes. */
    while ((rv = aegis__frame_next(p + off, n - off, max, &len, &need)) == 1) {
        CHECK(len <= max && AEGIS_FRAME_HDR + (size_t)len <= n - off);
        sum = sum * 31 + len + (len > 0 ? p[off + AEGIS_FRAME_HDR + len - 1] : 0);
        off += AEGIS_FRAME_HDR + len;
        (*count)++;
    }
    CHECK(rv == 0 || rv == AEGIS_ETOOBIG);
    if (rv == 0) {
        CHECK(need <= (size_t)max + AEGIS_FRAME_HDR && need > n - off);
    }
    *end = rv;
    return sum;
}

/* Chunked reassembly through a bounded buffer, as the loop does. */
static uint64_t frames_chunked(const uint8_t *p, size_t n, uint32_t max, size_t chunk,
                               uint64_t *count, int *end)
{
    static uint8_t buf[BUF_MAX];
    size_t blen = 0, in = 0, need = 0;
    uint64_t sum = 0;
    uint32_t len = 0;
    int rv = 0;

    *count = 0;
    /* Bounded by n: each pass takes at least one input byte or ends. */
    while (in < n) {
        size_t take = n - in < chunk ? n - in : chunk;
        size_t off = 0;

        CHECK(blen + take <= BUF_MAX);
        memcpy(buf + blen, p + in, take);
        blen += take;
        in += take;
        while ((rv = aegis__frame_next(buf + off, blen - off, max, &len, &need)) == 1) {
            sum = sum * 31 + len + (len > 0 ? buf[off + AEGIS_FRAME_HDR + len - 1] : 0);
            off += AEGIS_FRAME_HDR + len;
            (*count)++;
        }
        if (rv == AEGIS_ETOOBIG) {
            break;
        }
        memmove(buf, buf + off, blen - off);
        blen -= off;
    }
    *end = rv;
    return sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t c1, c2, s1, s2;
    uint32_t max;
    size_t chunk;
    int e1, e2;

    if (size < 2 || size > 2 + 2048) {
        return 0;
    }
    /* Limits around the small values the input can reach, and the largest. */
    max = data[0] == 0xff ? UINT32_MAX : (uint32_t)data[0] * 7u;
    chunk = (size_t)data[1] % 64 + 1;
    data += 2;
    size -= 2;
    check_hello(data, size);
    if (size < AEGIS_HELLO_BYTES) {
        return 0;
    }
    data += AEGIS_HELLO_BYTES;
    size -= AEGIS_HELLO_BYTES;
    if (max > 2000) {
        max = 2000; /* The chunked buffer holds any frame up to 2000 + 4 bytes. */
    }
    s1 = frames_whole(data, size, max, &c1, &e1);
    s2 = frames_chunked(data, size, max, chunk, &c2, &e2);
    CHECK(c1 == c2 && s1 == s2 && e1 == e2);
    return 0;
}
