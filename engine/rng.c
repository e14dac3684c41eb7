/* SPDX-License-Identifier: MIT */
/* xoshiro256** by Blackman and Vigna (public domain), seeded through splitmix64. */
#include "engine/rng.h"

#include "engine/assert.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void aegis__rng_seed(struct aegis_rng *rng, uint64_t seed)
{
    for (int i = 0; i < 4; i++) {
        rng->s[i] = splitmix64(&seed);
    }
}

uint64_t aegis__rng_next(struct aegis_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t aegis__rng_range(struct aegis_rng *rng, uint64_t lo, uint64_t hi)
{
    uint64_t span;

    AEGIS_ASSERT(lo <= hi);
    span = hi - lo + 1;
    if (span == 0) {
        return aegis__rng_next(rng); /* The full 64-bit range. */
    }
    return lo + aegis__rng_next(rng) % span;
}

bool aegis__rng_chance(struct aegis_rng *rng, uint32_t per_million)
{
    return aegis__rng_next(rng) % 1000000u < per_million;
}
