/* SPDX-License-Identifier: MIT */
/* Fuzz target for the snapshot file header (pipeline/snapshot_file.c): 320 bytes with
 * the snapshot's index, term, members, data length and data CRC.
 *
 * The first input byte chooses a mode: when its low bit is set, the header CRC (bytes
 * 316..319 over 0..315) is recomputed before decoding, so the fuzzer gets past the
 * checksum and reaches the field checks (behind the segment target's CRC they were 10 of
 * 70 branches); otherwise the bytes go in as they are. The rest of the input is the
 * file's start (bytes past the header are the data, unused by the header decoder).
 *
 * Properties (abort() on violation): decode never crashes, asserts or reads past its
 * length; it fails only with AEGIS_ECORRUPT, leaves its outputs alone then, and
 * aegis__snapshot_header_check() gives a reason exactly when decode refuses; a header it
 * accepts has index and term above 0, a valid configuration (aegis__conf_valid) and
 * re-encodes (aegis__snapshot_header_encode) to exactly its 320 bytes, so no byte of an
 * accepted header is ignored: reserved bytes and unused member slots are zero. */
#include <stdlib.h>
#include <string.h>

#include <aegis/error.h>

#include "engine/conf.h"
#include "engine/crc32c.h"
#include "pipeline/snapshot_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok) {
        abort();
    }
}

static void decode_and_check(const uint8_t *buf, size_t len)
{
    struct aegis_snapshot_meta meta, untouched;
    uint8_t again[AEGIS_SNAPSHOT_HEADER_BYTES];
    uint64_t data_len = 5;
    uint32_t data_crc = 6;
    const char *why = aegis__snapshot_header_check(buf, len);
    int rv;

    memset(&meta, 0x5a, sizeof(meta));
    untouched = meta;
    rv = aegis__snapshot_header_decode(buf, len, &meta, &data_len, &data_crc);
    check((rv == 0) == (why == NULL));
    if (rv != 0) {
        check(rv == AEGIS_ECORRUPT);
        check(memcmp(&meta, &untouched, sizeof(meta)) == 0 && data_len == 5 && data_crc == 6);
        check(why[0] != '\0');
        return;
    }
    check(len >= AEGIS_SNAPSHOT_HEADER_BYTES);
    check(meta.index > 0 && meta.term > 0);
    check(aegis__conf_valid(&meta.conf));
    if (aegis__snapshot_header_version(buf) == 1) {
        check(data_len <= AEGIS_BUF_LEN_MAX); /* Version 1 only; the encoder writes 2. */
        return;
    }
    check(aegis__snapshot_header_version(buf) == AEGIS_SNAPSHOT_VERSION);
    aegis__snapshot_header_encode(&meta, data_len, data_crc, again);
    check(memcmp(again, buf, sizeof(again)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *file;
    size_t len;

    if (size == 0) {
        return 0;
    }
    len = size - 1;
    file = malloc(len > 0 ? len : 1);
    check(file != NULL);
    memcpy(file, data + 1, len);
    if ((data[0] & 1) != 0 && len >= AEGIS_SNAPSHOT_HEADER_BYTES) {
        uint32_t crc = aegis__crc32c(0, file, 316);

        for (int i = 0; i < 4; i++) {
            file[316 + i] = (uint8_t)(crc >> (8 * i));
        }
    }
    decode_and_check(file, len);
    free(file);
    return 0;
}
