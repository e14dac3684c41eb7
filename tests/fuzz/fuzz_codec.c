/* SPDX-License-Identifier: MIT */
/* Fuzz target for the Raft wire codec (net/codec.c).
 *
 * Properties checked on every input (abort() on violation):
 *   - peek and decode never crash, never read outside the input (ASan), and fail only
 *     with AEGIS_ECORRUPT, AEGIS_EVERSION or AEGIS_ETOOBIG (peek) / AEGIS_ENOMEM;
 *   - decode succeeds only when peek sees exactly one whole frame;
 *   - whatever decodes re-encodes to exactly the input bytes (the format is canonical),
 *     through the flat encoder and through the vectored one;
 *   - when the input starts with a whole frame followed by more bytes, that frame is
 *     decoded on its own too (the pipelined case). */
#include <stdlib.h>
#include <string.h>

#include <aegis/error.h>

#include "net/codec.h"

static void check(bool ok)
{
    if (!ok) {
        abort();
    }
}

static void check_reencode(const struct aegis_msg *m, const uint8_t *data, size_t size)
{
    struct aegis_codec_size sz;
    uint8_t *flat, *scratch, *gathered;
    struct iovec *iov;
    size_t len = 0, n = 0, off = 0;

    check(aegis__codec_encode_size(m, &sz) == 0);
    check(sz.frame_bytes == size);
    flat = malloc(size);
    check(aegis__codec_encode(m, flat, size, &len) == 0);
    check(len == size && memcmp(flat, data, size) == 0);
    scratch = malloc(sz.scratch_bytes);
    iov = malloc((sz.iov_count > 0 ? sz.iov_count : 1) * sizeof(*iov));
    gathered = malloc(size);
    check(aegis__codec_encode_iov(m, scratch, sz.scratch_bytes, iov, sz.iov_count, &n, NULL) ==
          0);
    for (size_t i = 0; i < n; i++) {
        check(off + iov[i].iov_len <= size);
        memcpy(gathered + off, iov[i].iov_base, iov[i].iov_len);
        off += iov[i].iov_len;
    }
    check(off == size && memcmp(gathered, data, size) == 0);
    free(gathered);
    free(iov);
    free(scratch);
    free(flat);
}

static void decode_one(const uint8_t *data, size_t size, int peek_rv, size_t frame_len)
{
    struct aegis_msg m;
    int rv = aegis__codec_decode(data, size, &m, NULL);

    if (rv != 0) {
        check(rv == AEGIS_ECORRUPT || rv == AEGIS_EVERSION || rv == AEGIS_ENOMEM);
        check(m.type == 0);
        return;
    }
    check(peek_rv == 1 && frame_len == size);
    check(m.type >= AEGIS_MSG_TYPE_MIN && m.type <= AEGIS_MSG_TYPE_MAX);
    check_reencode(&m, data, size);
    aegis__msg_release(&m, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t frame_len = 0;
    int prv = aegis__codec_peek(data, size, AEGIS_CODEC_FRAME_BYTES_MAX_DEFAULT, &frame_len);

    check(prv == 0 || prv == 1 || prv == AEGIS_ECORRUPT || prv == AEGIS_EVERSION ||
          prv == AEGIS_ETOOBIG);
    if (prv == 1) {
        check(frame_len >= AEGIS_CODEC_HEADER_BYTES && frame_len <= size);
    }
    if (prv == 0) {
        check(frame_len > size);
    }
    decode_one(data, size, prv, frame_len);
    if (prv == 1 && frame_len < size) {
        decode_one(data, frame_len, 1, frame_len);
    }
    return 0;
}
