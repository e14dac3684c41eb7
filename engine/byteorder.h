/* SPDX-License-Identifier: MIT */
/* Little-endian integers in byte buffers: the one set of helpers for every on-disk and
 * on-wire format (each format's file comment gives its layout byte by byte).
 *
 * Byte by byte, so they are correct on any host and at any alignment; compilers turn
 * each into one load or store on little-endian machines. Pure: engine/ may use them. */
#ifndef AEGIS_BYTEORDER_H
#define AEGIS_BYTEORDER_H

#include <stdint.h>

static inline void aegis__put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void aegis__put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static inline void aegis__put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static inline uint16_t aegis__get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t aegis__get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static inline uint64_t aegis__get_le64(const uint8_t *p)
{
    return (uint64_t)aegis__get_le32(p) | ((uint64_t)aegis__get_le32(p + 4) << 32);
}

#endif /* AEGIS_BYTEORDER_H */
