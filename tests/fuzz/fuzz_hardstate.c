/* SPDX-License-Identifier: MIT */
/* Fuzz target for the hard state file (pipeline/hardstate.c): its two 64-byte slots at
 * offsets 0 and 512 of a 1024-byte file.
 *
 * The first input byte chooses a mode: when its low bit is set, the CRC of each slot the
 * rest of the input covers is recomputed before decoding, so the fuzzer gets past the
 * checksum and reaches the magic, version, reserved-byte and sequence checks (behind the
 * segment target's CRC they were 25 of 64 branches); otherwise the bytes go in as they
 * are. The rest of the input is the file (at most 1024 bytes used).
 *
 * Properties (abort() on violation): decode never crashes, asserts or reads past its
 * length; it fails only with AEGIS_ECORRUPT and leaves its outputs alone then; it
 * refuses anything shorter than a slot; a slot it accepts has a non-zero sequence and
 * re-encodes (aegis__hardstate_encode_slot) to exactly its 64 bytes, so no byte of an
 * accepted slot is ignored (reserved bytes are zero); two accepted slots with the same
 * sequence are equal exactly when their values are. */
#include <stdlib.h>
#include <string.h>

#include <aegis/error.h>

#include "engine/crc32c.h"
#include "pipeline/hardstate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok) {
        abort();
    }
}

static void fix_crc(uint8_t *slot)
{
    uint32_t crc = aegis__crc32c(0, slot, 60);

    for (int i = 0; i < 4; i++) {
        slot[60 + i] = (uint8_t)(crc >> (8 * i));
    }
}

/* Decode the @len bytes at @p as a slot; on success check the round trip. */
static bool decode_slot(const uint8_t *p, size_t len, uint64_t *seq_out)
{
    struct aegis_hard_state hs = {.term = 11, .vote = 22, .commit = 33};
    uint8_t again[AEGIS_HARDSTATE_SLOT_BYTES];
    uint64_t seq = 44;
    int rv = aegis__hardstate_decode(p, len, &seq, &hs);

    if (rv != 0) {
        check(rv == AEGIS_ECORRUPT);
        check(seq == 44 && hs.term == 11 && hs.vote == 22 && hs.commit == 33);
        return false;
    }
    check(len >= AEGIS_HARDSTATE_SLOT_BYTES);
    check(seq != 0);
    aegis__hardstate_encode_slot(seq, &hs, again);
    check(memcmp(again, p, sizeof(again)) == 0);
    *seq_out = seq;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t seq[2] = {0, 0};
    bool valid[2] = {false, false};
    uint8_t *file;
    size_t len;

    if (size == 0) {
        return 0;
    }
    len = size - 1 < AEGIS_HARDSTATE_FILE_BYTES ? size - 1 : AEGIS_HARDSTATE_FILE_BYTES;
    file = malloc(len > 0 ? len : 1);
    check(file != NULL);
    memcpy(file, data + 1, len);
    for (uint32_t s = 0; s < 2; s++) {
        size_t off = (size_t)s * AEGIS_HARDSTATE_SLOT_STRIDE;

        if ((data[0] & 1) != 0 && len >= off + AEGIS_HARDSTATE_SLOT_BYTES) {
            fix_crc(file + off);
        }
    }
    /* The whole input as one slot (longer than a slot: the rest is ignored), then each
     * slot of the file exactly as the reader passes it. */
    (void)decode_slot(file, len, &seq[0]);
    for (uint32_t s = 0; s < 2; s++) {
        size_t off = (size_t)s * AEGIS_HARDSTATE_SLOT_STRIDE;

        if (len >= off + AEGIS_HARDSTATE_SLOT_BYTES) {
            valid[s] = decode_slot(file + off, AEGIS_HARDSTATE_SLOT_BYTES, &seq[s]);
        } else if (len > off) {
            check(!decode_slot(file + off, len - off, &seq[s])); /* A torn slot. */
        }
    }
    /* Two valid slots holding the same sequence decode to one value only if they are
     * the same bytes (the encoding is canonical). */
    if (valid[0] && valid[1] && seq[0] == seq[1]) {
        check((memcmp(file, file + AEGIS_HARDSTATE_SLOT_STRIDE, AEGIS_HARDSTATE_SLOT_BYTES) ==
               0) == (memcmp(file + 16, file + AEGIS_HARDSTATE_SLOT_STRIDE + 16, 24) == 0));
    }
    free(file);
    return 0;
}
