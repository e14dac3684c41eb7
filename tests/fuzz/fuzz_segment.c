/* SPDX-License-Identifier: MIT */
/* Fuzz target for log recovery: the bytes are one segment file, scanned exactly as at
 * startup (aegis__segment_scan with a callback that touches every payload byte), plus
 * the hard state slot and snapshot header decoders on the same bytes. The decoders must
 * never crash, assert or read out of bounds, whatever the input; results are checked
 * for consistency (a scan that succeeds ends inside the input). */
#include <stddef.h>
#include <stdint.h>

#include "pipeline/hardstate.h"
#include "pipeline/segment.h"
#include "pipeline/snapshot_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int touch_record(void *arg, const struct aegis_record *rec)
{
    uint32_t *sum = arg;

    for (uint32_t i = 0; i < rec->len; i++) {
        *sum += rec->payload[i];
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct aegis_segment_scan scan;
    struct aegis_hard_state hs;
    struct aegis_snapshot_meta meta;
    uint64_t seq, data_len;
    uint32_t sum = 0, crc;

    if (aegis__segment_scan(data, size, 0, 0, &scan, touch_record, &sum) == 0) {
        if (scan.records > 0 && scan.end > size) {
            __builtin_trap();
        }
    }
    (void)aegis__segment_scan(data, size, 1, 5, &scan, NULL, NULL);
    (void)aegis__hardstate_decode(data, size, &seq, &hs);
    (void)aegis__snapshot_header_decode(data, size, &meta, &data_len, &crc);
    return (int)(sum & 0);
}
