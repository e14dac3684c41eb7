/* SPDX-License-Identifier: MIT */
/* CRC32C (Castagnoli), the checksum of log records, snapshots and hard state.
 *
 * Uses the SSE4.2 crc32 instruction when the CPU has it (checked once, through
 * __builtin_cpu_supports, which reads CPUID: no syscall), a slicing-by-8 table
 * otherwise. Both give identical results; tests check them against each other and
 * against the standard check value crc32c("123456789") == 0xe3069283. */
#ifndef AEGIS_CRC32C_H
#define AEGIS_CRC32C_H

#include <aegis/types.h>

/* Extend @crc (0 to start) over @len bytes at @data. */
uint32_t aegis__crc32c(uint32_t crc, const void *data, size_t len);

/* The table implementation, exposed for tests and benchmarks. */
uint32_t aegis__crc32c_sw(uint32_t crc, const void *data, size_t len);

/* True when aegis__crc32c uses the CPU instruction. */
bool aegis__crc32c_hw(void);

#endif /* AEGIS_CRC32C_H */
