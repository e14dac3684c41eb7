/* SPDX-License-Identifier: MIT */
/* Fuzz target: snapshot restore (engine/kv.h, format in engine/kv_snapshot.c).
 *
 * The first input byte chooses a mode: when its low bit is set, the CRC at the end of
 * the rest of the input is recomputed before restoring, so the fuzzer gets past the
 * checksum and exercises the structural checks; otherwise the bytes go in as they are.
 *
 * Properties: restore never crashes; a failed restore leaves the machine exactly as it
 * was (its own snapshot is unchanged); a successful restore took a canonical snapshot
 * (sorted, exact length), so snapshotting the restored machine gives back the input
 * bytes exactly. */
#include <stdlib.h>
#include <string.h>

#include <aegis/error.h>

#include "engine/crc32c.h"
#include "engine/kv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok) {
        abort();
    }
}

static void populate(struct aegis_kv *kv)
{
    static const uint8_t set_a[] = {0x02, 0x01, 'a', 0x01, '1'};
    static const uint8_t set_b[] = {0x02, 0x01, 'b', 0x00};
    struct aegis_kv_result r;

    check(aegis__kv_init(kv, NULL, 3) == 0);
    check(aegis__kv_apply(kv, 1, 1, AEGIS_ENTRY_COMMAND, set_a, sizeof(set_a), &r) == 0);
    check(aegis__kv_apply(kv, 2, 2, AEGIS_ENTRY_COMMAND, set_b, sizeof(set_b), &r) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct aegis_kv kv;
    struct aegis_buf *before, *after;
    uint8_t *snap;
    size_t len;
    int rv;

    if (size == 0) {
        return 0;
    }
    len = size - 1;
    snap = malloc(len + 1);
    check(snap != NULL);
    memcpy(snap, data + 1, len);
    if ((data[0] & 1) != 0 && len >= 4) {
        uint32_t crc = aegis__crc32c(0, snap, len - 4);

        for (int i = 0; i < 4; i++) {
            snap[len - 4 + (size_t)i] = (uint8_t)(crc >> (8 * i));
        }
    }
    populate(&kv);
    check(aegis__kv_snapshot(&kv, &before) == 0);
    rv = aegis__kv_restore(&kv, len > 0 ? snap : NULL, len);
    check(rv == 0 || rv == AEGIS_ECORRUPT || rv == AEGIS_EVERSION || rv == AEGIS_ENOMEM);
    check(aegis__kv_snapshot(&kv, &after) == 0);
    if (rv == 0) {
        check(after->len == len);
        check(memcmp(after->data, snap, len) == 0);
    } else {
        check(after->len == before->len);
        check(memcmp(after->data, before->data, before->len) == 0);
    }
    aegis__buf_unref(before);
    aegis__buf_unref(after);
    aegis__kv_close(&kv);
    free(snap);
    return 0;
}
