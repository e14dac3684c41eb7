/* SPDX-License-Identifier: MIT */
/* CRC32C; see crc32c.h. */
#include "engine/crc32c.h"

#include <string.h>

#define POLY 0x82f63b78u /* Reflected Castagnoli polynomial. */

static uint32_t table[8][256];
static int table_ready;

static void table_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;

        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
        }
        table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        for (int k = 1; k < 8; k++) {
            table[k][n] = (table[k - 1][n] >> 8) ^ table[0][table[k - 1][n] & 0xff];
        }
    }
    /* Publish the table (release); pairs with the acquire in crc32c_sw. Two threads may
     * both build it: they write identical values. */
    __atomic_store_n(&table_ready, 1, __ATOMIC_RELEASE);
}

uint32_t aegis__crc32c_sw(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *p = data;

    if (!__atomic_load_n(&table_ready, __ATOMIC_ACQUIRE)) {
        table_init();
    }
    crc = ~crc;
    while (len >= 8) {
        uint64_t w;

        memcpy(&w, p, 8);
        w ^= crc;
        crc = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^ table[5][(w >> 16) & 0xff] ^
              table[4][(w >> 24) & 0xff] ^ table[3][(w >> 32) & 0xff] ^
              table[2][(w >> 40) & 0xff] ^ table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
        p += 8;
        len -= 8;
    }
    while (len-- > 0) {
        crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
    }
    return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const void *data,
                                                             size_t len)
{
    const uint8_t *p = data;
    uint64_t c = ~crc;

    while (len >= 8) {
        uint64_t w;

        memcpy(&w, p, 8);
        c = __builtin_ia32_crc32di(c, w);
        p += 8;
        len -= 8;
    }
    while (len-- > 0) {
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
    }
    return ~(uint32_t)c;
}

bool aegis__crc32c_hw(void)
{
    return __builtin_cpu_supports("sse4.2");
}

uint32_t aegis__crc32c(uint32_t crc, const void *data, size_t len)
{
    if (__builtin_cpu_supports("sse4.2")) {
        return crc32c_hw(crc, data, len);
    }
    return aegis__crc32c_sw(crc, data, len);
}
#else
bool aegis__crc32c_hw(void)
{
    return false;
}

uint32_t aegis__crc32c(uint32_t crc, const void *data, size_t len)
{
    return aegis__crc32c_sw(crc, data, len);
}
#endif
