/* SPDX-License-Identifier: MIT */
/* A seeded pseudo-random generator (xoshiro256**, seeded through splitmix64).
 *
 * The core has no randomness of its own: whoever creates it passes an rng seeded from the
 * OS (runtime) or from the simulation's seed (tests), so a run replays exactly. */
#ifndef AEGIS_RNG_H
#define AEGIS_RNG_H

#include <aegis/types.h>

struct aegis_rng {
    uint64_t s[4];
};

void aegis__rng_seed(struct aegis_rng *rng, uint64_t seed);
uint64_t aegis__rng_next(struct aegis_rng *rng);

/* Uniform in [lo, hi] inclusive; requires lo <= hi. */
uint64_t aegis__rng_range(struct aegis_rng *rng, uint64_t lo, uint64_t hi);

/* True with probability @per_million / 1e6. */
bool aegis__rng_chance(struct aegis_rng *rng, uint32_t per_million);

#endif /* AEGIS_RNG_H */
