/* SPDX-License-Identifier: MIT */
/* Fuzz target: snapshot restore (engine/kv.h, format in engine/kv_snapshot.c).
 *
 * The first input byte chooses a mode: when its low bit is set, the CRC at the end of
 * the rest of the input is recomputed before restoring, so the fuzzer gets past the
 * checksum and exercises the structural checks; otherwise the bytes go in as they are.
 *
 * The other seven bits of that byte choose where the input is split when it is fed to a
 * streaming load (aegis__kv_load_feed) in two pieces.
 *
 * Properties: restore never crashes; a failed restore leaves the machine exactly as it
 * was (its own snapshot is unchanged); the streaming load fed in two pieces reaches the
 * same verdict and the same state as the whole-buffer restore; a successful restore's
 * machine snapshots to a stream of the input's length (records come in table order, so
 * not the same bytes) that restores to an equal machine. */
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

/* Load @snap (@len bytes) into a fresh machine in two pieces split at @split. */
static int load_split(struct aegis_kv *kv, const uint8_t *snap, size_t len, size_t split)
{
    struct aegis_kv_load *load;
    int rv;

    populate(kv);
    check(aegis__kv_load_open(kv, &load) == 0);
    split = split < len ? split : len;
    rv = aegis__kv_load_feed(load, snap, split);
    if (rv == 0) {
        rv = aegis__kv_load_feed(load, snap + split, len - split);
    }
    if (rv != 0) {
        aegis__kv_load_abort(load);
        return rv;
    }
    return aegis__kv_load_finish(load, kv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct aegis_kv kv, streamed, again;
    struct aegis_buf *before, *after;
    uint8_t *snap;
    size_t len;
    int rv, rv_streamed;

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
    rv_streamed = load_split(&streamed, snap, len, (size_t)(data[0] >> 1) * len / 128);
    check(rv_streamed == rv || rv == AEGIS_ENOMEM || rv_streamed == AEGIS_ENOMEM);
    check(aegis__kv_equal(&kv, &streamed));
    check(aegis__kv_snapshot(&kv, &after) == 0);
    if (rv == 0) {
        check(after->len == len);
        populate(&again);
        check(aegis__kv_restore(&again, after->data, after->len) == 0);
        check(aegis__kv_equal(&kv, &again));
        aegis__kv_close(&again);
    } else {
        check(after->len == before->len);
        check(memcmp(after->data, before->data, before->len) == 0);
    }
    aegis__buf_unref(before);
    aegis__buf_unref(after);
    aegis__kv_close(&kv);
    aegis__kv_close(&streamed);
    free(snap);
    return 0;
}
