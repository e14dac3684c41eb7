/* SPDX-License-Identifier: MIT */
/* SHA-256 (FIPS 180-4) and a constant-time comparison, for the client port's password
 * hashes (pipeline/users.h).
 *
 * Design. A small self-contained implementation instead of a libcrypto dependency: the
 * users file needs one hash of (salt || password) per AUTH, nothing else, and the build
 * stays free of OpenSSL for nodes that do not use TLS. Checked against the FIPS 180-2
 * test vectors (tests/unit/pipeline/test_users.c). Pure: no allocation, no syscalls. */
#ifndef AEGIS_PIPELINE_SHA256_H
#define AEGIS_PIPELINE_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include <aegis/types.h>

#define AEGIS_SHA256_BYTES 32u

struct aegis_sha256 {
    uint32_t h[8];
    uint64_t bytes;      /* Message length so far. */
    uint8_t block[64];
    uint32_t fill;       /* Bytes in block. */
};

void aegis__sha256_init(struct aegis_sha256 *s);
void aegis__sha256_update(struct aegis_sha256 *s, const void *data, size_t len);
void aegis__sha256_final(struct aegis_sha256 *s, uint8_t out[AEGIS_SHA256_BYTES]);

/* One-shot digest of @data. */
void aegis__sha256(const void *data, size_t len, uint8_t out[AEGIS_SHA256_BYTES]);

/* True when the @len bytes at @a and @b are equal. The time taken depends on @len only,
 * never on where the bytes differ (no early exit, no data-dependent branch). */
bool aegis__ct_equal(const void *a, const void *b, size_t len);

#endif /* AEGIS_PIPELINE_SHA256_H */
