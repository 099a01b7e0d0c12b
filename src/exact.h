/* exact: order-independent sums, the arithmetic of the reproducible mode.
 *
 * A float sum depends on the order of its terms: on how the rows are split among ranks and
 * on the reduction algorithm the MPI library picks. Integers add exactly in any order. So in
 * reproducible mode (train.reproducible) every quantity that crosses ranks is rounded to
 * integers ONCE, where a unit of work whose rows and shapes do not depend on P produces it
 * (a micro-batch, an evaluation block, a row), and from there on only integers are added.
 * The rounding is the one documented loss; everything after it is exact, so any P, any
 * reduction tree and any launcher give the same bits.
 *
 *   gradients   block floating point in int32. The n values are cut into blocks of
 *               EXACT_BLOCK; block b has a power-of-two scale 2^e_b, and a micro-batch's
 *               partial v becomes round-half-even(v 2^e_b). A rank keeps its micro-batches'
 *               float partials until the step's largest exponent per block is known (one
 *               small MAX allreduce over the blocks' frexp exponents, which are the same
 *               whatever P is): e_b puts the largest partial of the block below 2^(30 - c),
 *               c = ceil(log2 G) for G micro-batches per update, so the G integers sum below
 *               2^30 in any order. The largest partial of a block keeps 30 - c bits
 *               (27 for 8 micro-batches, more than a float's 24); smaller values are
 *               rounded to multiples of 2^-e_b.
 *   scalars     (the loss and weight sums, counts): EXACT_LIMBS int32 limbs of 16 bits,
 *               2^-32 .. 2^48 (values rounded to multiples of 2^-32); up to 2^15 terms.
 *   pairs       (evaluation loss, summed as doubles): hi = floor(v), lo = round((v - hi)
 *               2^32), both whole numbers, exact in double while the sums stay below 2^53.
 *   fixed       (feature statistics): int64 with one power-of-two scale per feature, chosen
 *               from the global maximum and the row count so that no sum overflows.
 *   units       (the rows' mean squared norm of optim.lr = auto): non-negative v as int64
 *               whole units and 2^-EXACT_UNIT_BITS units, the fraction carried into the
 *               whole at once, so any number of terms adds exactly up to 2^62 (pairs stop
 *               being exact after about 2^21 terms).
 *
 * Local everywhere (the caller reduces the buffers).
 */
#ifndef XT_EXACT_H
#define XT_EXACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <math.h>

#include "error.h"

#define EXACT_BLOCK 1024
/* Most micro-batches per update (so c <= 12: at least 18 bits per partial). */
#define EXACT_MAX_TERMS 4096

#define EXACT_LIMBS 5

typedef struct {
    size_t n, nblocks;
    int c;             /* ceil(log2 terms) */
    float **part;      /* (local) this rank's partial gradients of one update, n floats each */
    size_t local, used; /* capacity and use of part */
    int32_t *mx;       /* (nblocks) largest frexp exponent among the partials (INT32_MIN:
                          all zero); reduced with MAX over ranks before conversion */
    int32_t *e;        /* (nblocks) the update's block exponents */
    int32_t *acc;      /* (n + extra) the caller's: integer sums, then the caller's slots */
    size_t extra;
} ExactGrad;

/* terms: micro-batches per update over all ranks (1 .. EXACT_MAX_TERMS); local: the most
 * this rank computes; acc: the caller's buffer of n + extra int32 (extra: the caller's slots
 * after the sums), for example a shared-memory segment the reduction reads in place;
 * borrowed: it must outlive g. */
Status exact_grad_init(ExactGrad *g, size_t n, size_t terms, size_t local, int32_t *acc,
                       size_t extra);
void exact_grad_free(ExactGrad *g);
/* A new update: no partials, zero slots. */
void exact_grad_begin(ExactGrad *g);
/* The buffer for the next micro-batch's partial gradient (n floats). */
float *exact_grad_next(ExactGrad *g);
/* Records the block exponents of the partial just written. Returns false when some value
 * is NaN or infinite (the caller counts a non-finite step). */
bool exact_grad_measure(ExactGrad *g);
/* After the MAX reduction of mx over ranks: the scales, and acc[0 .. n) = this rank's
 * integer sums (the slots are left alone). Then the caller SUM-reduces acc. */
void exact_grad_convert(ExactGrad *g);
static inline size_t exact_grad_len(const ExactGrad *g) { return g->n + g->extra; }
static inline int32_t *exact_grad_slots(ExactGrad *g) { return g->acc + g->n; }
/* After the SUM reduction: the sums as floats, sum_i 2^-e_b, in a buffer of g's that stays
 * valid until the next exact_grad_begin (the first partial's, still in cache: no cold
 * gradient buffer is written and read again). Only elements [lo, hi) are decoded (a
 * sharded update's slice; 0, n for all): the rest of the returned buffer is undefined. */
const float *exact_grad_finish(ExactGrad *g, size_t lo, size_t hi);

/* The conversion kernels: "avx2", "sse2" (x86-64) or "scalar"; every one gives the same
 * bits (the tests check it). The fastest available is used unless a test chooses; false
 * when this CPU or build lacks the one named. */
bool exact_use_kernel(const char *name);
const char *exact_kernel_name(void);

/* Scalars as limbs. encode returns false (limbs zero) when v is not finite or |v| >= 2^48. */
bool exact_limbs_encode(double v, int32_t limbs[EXACT_LIMBS]);
void exact_limbs_add(int32_t *acc, const int32_t limbs[EXACT_LIMBS]);
double exact_limbs_decode(const int32_t limbs[EXACT_LIMBS]);

/* Pairs: *hi += floor(v), *lo += round((v - floor(v)) 2^32). value = hi + lo 2^-32. */
void exact_pair_add(double *hi, double *lo, double v);
double exact_pair_value(double hi, double lo);

/* Units: acc[0] whole units, acc[1] units of 2^-EXACT_UNIT_BITS below one whole. add: acc +=
 * v (0 <= v), false (acc unspecified) when v or the whole reaches 2^62. Two accs (from
 * ranks) add element-wise (an int64 allreduce); value reads any sum of them. */
#define EXACT_UNIT_BITS 20
bool exact_units_add(int64_t acc[2], double v);
double exact_units_value(const int64_t acc[2]);

/* Fixed point for n terms of magnitude at most maxabs: the exponent e with n maxabs 2^e <
 * 2^62 (0 when maxabs is 0), and the rounded term. */
int exact_fixed_exponent(double maxabs, size_t n);
static inline int64_t exact_fixed(double v, int e) { return (int64_t)llrint(ldexp(v, e)); }

/* Moments in fixed point (feature statistics). A column is put on the grid of its largest
 * float32 values: q = rint(x 2^e), e = exact_grid_exponent(max |x|), so |q| <= 2^24; values of
 * at least half the column's max |x| are on the grid exactly (a float32 has 24 bits), smaller
 * ones are rounded by at most 2^-25 of it. S1 = sum q (int64) and S2 = sum q^2 (an unsigned
 * 128-bit integer below n 2^48) are exact integers, so they are the same however the rows are
 * spread over ranks; for a reduction S2 travels as EXACT_Q2_LIMBS limbs of 32 bits in int64
 * (each rank's limbs are below 2^32, so P of them add exactly). From the totals, the mean
 * S1 / (n 2^e) and the variance (n S2 - S1^2) / (n^2 2^2e), exact in 128 bits until each is
 * rounded once: no cancellation, however large the mean against the spread. */
#define EXACT_Q2_LIMBS 4
#define EXACT_GRID_BITS 24
__extension__ typedef unsigned __int128 exact_u128;
__extension__ typedef __int128 exact_i128;
int exact_grid_exponent(double maxabs);
void exact_q2_to_limbs(exact_u128 s2, int64_t limbs[EXACT_Q2_LIMBS]);
exact_u128 exact_q2_from_limbs(const int64_t limbs[EXACT_Q2_LIMBS]);
void exact_moments(int64_t s1, exact_u128 s2, size_t n, int e, double *mean, double *var);

#endif
