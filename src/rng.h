/* rng: a small explicit-state PRNG (xoshiro256** seeded through splitmix64).
 *
 * No global state: every stream is a value the caller owns, so streams can be
 * derived from (seed, epoch, shard) independently of the rank count, and saved in a
 * checkpoint as four 64-bit words. Not cryptographic. Local everywhere.
 */
#ifndef XT_RNG_H
#define XT_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t s[4];
} Rng;

/* Seeds a stream from a 64-bit seed (any value, including 0). */
void rng_seed(Rng *r, uint64_t seed);
/* Seeds a stream from several words (e.g. seed, epoch, shard): distinct tuples give
 * unrelated streams. */
void rng_seed_tuple(Rng *r, uint64_t a, uint64_t b, uint64_t c);
uint64_t rng_next(Rng *r);
/* Uniform integer in [0, n), unbiased (n > 0). */
uint64_t rng_below(Rng *r, uint64_t n);
/* Uniform double in [0, 1) with 53 random bits. */
double rng_uniform(Rng *r);
/* Standard normal (Box-Muller, both values of a pair are not cached: stateless apart
 * from the stream, so a saved Rng fully determines what follows). */
double rng_normal(Rng *r);
/* Fisher-Yates shuffle of idx[0..n). */
void rng_shuffle_u32(Rng *r, uint32_t *idx, size_t n);

#endif
