#include "exact.h"

#include <float.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* Block exponents stay where 2^e and 2^-e are normal floats. */
#define E_MIN (-126)
#define E_MAX 126

static int clamp_e(int e) { return e < E_MIN ? E_MIN : e > E_MAX ? E_MAX : e; }

static int ceil_log2(size_t v)
{
    int c = 0;
    while (((size_t)1 << c) < v) c++;
    return c;
}

Status exact_grad_init(ExactGrad *g, size_t n, size_t terms, size_t local, int32_t *acc,
                       size_t extra)
{
    XT_ASSERT(terms >= 1 && terms <= EXACT_MAX_TERMS && acc);
    *g = (ExactGrad){.n = n, .nblocks = (n + EXACT_BLOCK - 1) / EXACT_BLOCK, .extra = extra,
                     .c = ceil_log2(terms), .local = local > 0 ? local : 1, .acc = acc};
    memset(acc, 0, exact_grad_len(g) * sizeof *acc);
    size_t nb = g->nblocks > 0 ? g->nblocks : 1;
    g->mx = malloc(nb * sizeof *g->mx);
    g->e = malloc(nb * sizeof *g->e);
    g->part = calloc(g->local, sizeof *g->part);
    bool ok = g->mx && g->e && g->part;
    for (size_t i = 0; ok && i < g->local; i++) {
        g->part[i] = malloc((n > 0 ? n : 1) * sizeof **g->part);
        ok = g->part[i] != NULL;
    }
    if (!ok) {
        exact_grad_free(g);
        return XT_ERR_RUNTIME;
    }
    return XT_OK;
}

void exact_grad_free(ExactGrad *g)
{
    for (size_t i = 0; g->part && i < g->local; i++) free(g->part[i]);
    free(g->part);
    free(g->mx);
    free(g->e);
    *g = (ExactGrad){0};
}

void exact_grad_begin(ExactGrad *g)
{
    g->used = 0;
    memset(g->acc, 0, exact_grad_len(g) * sizeof *g->acc);
    for (size_t b = 0; b < g->nblocks; b++) g->mx[b] = INT32_MIN;
}

float *exact_grad_next(ExactGrad *g)
{
    XT_ASSERT(g->used < g->local);
    return g->part[g->used++];
}

/* max |v[i]| over finite values; *bad when some value is NaN or infinite. The float max of
 * non-negative values is exact, so every version returns the same. */
static float absmax_scalar(const float *v, size_t len, bool *bad)
{
    float mx = 0.0f;
    for (size_t i = 0; i < len; i++) {
        float a = fabsf(v[i]);
        if (!(a <= FLT_MAX)) *bad = true;
        else if (a > mx) mx = a;
    }
    return mx;
}

/* acc[i] = sum over partials p of round-half-even(p[off + i] s). The SSE conversion and
 * lrintf both round with the current mode (to nearest, ties to even): every version gives
 * the same integers. */
static void convert_scalar(float *const *part, size_t np, size_t off, size_t len, float s,
                           int32_t *acc)
{
    for (size_t i = 0; i < len; i++) {
        int32_t q = 0;
        for (size_t p = 0; p < np; p++) q += (int32_t)lrintf(part[p][off + i] * s);
        acc[i] = q;
    }
}

#if defined(__x86_64__)
static float absmax_sse2(const float *v, size_t len, bool *bad)
{
    const __m128i absmask = _mm_set1_epi32(0x7fffffff), fmax = _mm_set1_epi32(0x7f7fffff);
    __m128 vmx = _mm_setzero_ps();
    __m128i vbad = _mm_setzero_si128();
    size_t i = 0;
    for (; i + 4 <= len; i += 4) {
        __m128i ab = _mm_and_si128(_mm_castps_si128(_mm_loadu_ps(v + i)), absmask);
        __m128i big = _mm_cmpgt_epi32(ab, fmax);
        vbad = _mm_or_si128(vbad, big);
        vmx = _mm_max_ps(vmx, _mm_castsi128_ps(_mm_andnot_si128(big, ab)));
    }
    float lanes[4], mx = absmax_scalar(v + i, len - i, bad);
    _mm_storeu_ps(lanes, vmx);
    for (int k = 0; k < 4; k++) mx = lanes[k] > mx ? lanes[k] : mx;
    if (_mm_movemask_epi8(vbad)) *bad = true;
    return mx;
}

static void convert_sse2(float *const *part, size_t np, size_t off, size_t len, float s,
                         int32_t *acc)
{
    const __m128 vs = _mm_set1_ps(s);
    size_t i = 0;
    for (; i + 4 <= len; i += 4) {
        __m128i q = _mm_setzero_si128();
        for (size_t p = 0; p < np; p++)
            q = _mm_add_epi32(q, _mm_cvtps_epi32(_mm_mul_ps(_mm_loadu_ps(part[p] + off + i), vs)));
        _mm_storeu_si128((__m128i *)(acc + i), q);
    }
    convert_scalar(part, np, off + i, len - i, s, acc + i);
}

__attribute__((target("avx2"))) static float absmax_avx2(const float *v, size_t len, bool *bad)
{
    const __m256i absmask = _mm256_set1_epi32(0x7fffffff), fmax = _mm256_set1_epi32(0x7f7fffff);
    __m256i vmx = _mm256_setzero_si256(), vbad = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        __m256i ab = _mm256_and_si256(_mm256_castps_si256(_mm256_loadu_ps(v + i)), absmask);
        __m256i big = _mm256_cmpgt_epi32(ab, fmax);
        vbad = _mm256_or_si256(vbad, big);
        vmx = _mm256_max_epi32(vmx, _mm256_andnot_si256(big, ab)); /* same order as floats */
    }
    float lanes[8], mx = absmax_scalar(v + i, len - i, bad);
    _mm256_storeu_ps(lanes, _mm256_castsi256_ps(vmx));
    for (int k = 0; k < 8; k++) mx = lanes[k] > mx ? lanes[k] : mx;
    if (_mm256_movemask_epi8(vbad)) *bad = true;
    return mx;
}

__attribute__((target("avx2"))) static void convert_avx2(float *const *part, size_t np,
                                                         size_t off, size_t len, float s,
                                                         int32_t *acc)
{
    const __m256 vs = _mm256_set1_ps(s);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        __m256i q = _mm256_setzero_si256();
        for (size_t p = 0; p < np; p++)
            q = _mm256_add_epi32(
                q, _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(part[p] + off + i), vs)));
        _mm256_storeu_si256((__m256i *)(acc + i), q);
    }
    convert_scalar(part, np, off + i, len - i, s, acc + i);
}
#endif

typedef struct {
    float (*absmax)(const float *, size_t, bool *);
    void (*convert)(float *const *, size_t, size_t, size_t, float, int32_t *);
    const char *name;
} Kernels;

static Kernels g_kernels;

bool exact_use_kernel(const char *name)
{
    if (!name || !strcmp(name, "scalar")) {
        g_kernels = (Kernels){absmax_scalar, convert_scalar, "scalar"};
        return true;
    }
#if defined(__x86_64__)
    if (!strcmp(name, "sse2")) {
        g_kernels = (Kernels){absmax_sse2, convert_sse2, "sse2"};
        return true;
    }
    if (!strcmp(name, "avx2") && __builtin_cpu_supports("avx2")) {
        g_kernels = (Kernels){absmax_avx2, convert_avx2, "avx2"};
        return true;
    }
#endif
    return false;
}

/* The fastest version this CPU runs unless one was chosen. */
static const Kernels *kernels(void)
{
    if (!g_kernels.absmax && !exact_use_kernel("avx2") && !exact_use_kernel("sse2"))
        exact_use_kernel("scalar");
    return &g_kernels;
}

const char *exact_kernel_name(void) { return kernels()->name; }

bool exact_grad_measure(ExactGrad *g)
{
    XT_ASSERT(g->used > 0);
    const float *v = g->part[g->used - 1];
    const Kernels *k = kernels();
    bool bad = false;
    for (size_t b = 0; b < g->nblocks; b++) {
        size_t lo = b * EXACT_BLOCK, len = g->n - lo < EXACT_BLOCK ? g->n - lo : EXACT_BLOCK;
        float mx = k->absmax(v + lo, len, &bad);
        if (mx > 0.0f) {
            int e;
            frexpf(mx, &e); /* mx < 2^e */
            if (e > g->mx[b]) g->mx[b] = e;
        }
    }
    return !bad;
}

void exact_grad_convert(ExactGrad *g)
{
    const Kernels *k = kernels();
    for (size_t b = 0; b < g->nblocks; b++) {
        size_t lo = b * EXACT_BLOCK, len = g->n - lo < EXACT_BLOCK ? g->n - lo : EXACT_BLOCK;
        if (g->mx[b] == INT32_MIN) { /* every partial of the block is zero, on every rank */
            g->e[b] = 0;
            memset(g->acc + lo, 0, len * sizeof *g->acc);
            continue;
        }
        /* the largest partial below 2^(30 - c): 2^c of them stay below 2^30 */
        g->e[b] = clamp_e(30 - g->c - g->mx[b]);
        k->convert(g->part, g->used, lo, len, ldexpf(1.0f, g->e[b]), g->acc + lo);
    }
}

const float *exact_grad_finish(ExactGrad *g, size_t lo, size_t hi)
{
    float *out = g->part[0];
    for (size_t b = lo / EXACT_BLOCK; b * EXACT_BLOCK < hi; b++) {
        size_t a = b * EXACT_BLOCK > lo ? b * EXACT_BLOCK : lo;
        size_t e = (b + 1) * EXACT_BLOCK < hi ? (b + 1) * EXACT_BLOCK : hi;
        const float inv = ldexpf(1.0f, -g->e[b]);
        for (size_t i = a; i < e; i++) out[i] = (float)g->acc[i] * inv;
    }
    return out;
}

/* ---- scalars ------------------------------------------------------------------------- */

bool exact_limbs_encode(double v, int32_t limbs[EXACT_LIMBS])
{
    memset(limbs, 0, EXACT_LIMBS * sizeof *limbs);
    double a = fabs(v);
    if (!(a < 0x1p48)) return false;
    double whole = floor(a);
    double f = nearbyint((a - whole) * 0x1p32); /* exact product; rounds half to even */
    uint64_t w = (uint64_t)whole, fr = (uint64_t)f;
    if (fr >> 32) { /* rounded up to the next whole number */
        w += 1;
        fr = 0;
    }
    uint64_t parts[EXACT_LIMBS] = {fr & 0xffff, fr >> 16, w & 0xffff, (w >> 16) & 0xffff, w >> 32};
    for (int i = 0; i < EXACT_LIMBS; i++) limbs[i] = v < 0 ? -(int32_t)parts[i] : (int32_t)parts[i];
    return true;
}

void exact_limbs_add(int32_t *acc, const int32_t limbs[EXACT_LIMBS])
{
    for (int i = 0; i < EXACT_LIMBS; i++) acc[i] += limbs[i];
}

double exact_limbs_decode(const int32_t limbs[EXACT_LIMBS])
{
    int64_t whole = (int64_t)limbs[2] + (int64_t)limbs[3] * 65536 + (int64_t)limbs[4] * 4294967296LL;
    int64_t frac = (int64_t)limbs[0] + (int64_t)limbs[1] * 65536;
    return (double)whole + (double)frac * 0x1p-32;
}

void exact_pair_add(double *hi, double *lo, double v)
{
    double h = floor(v);
    *hi += h;
    *lo += nearbyint((v - h) * 0x1p32);
}

double exact_pair_value(double hi, double lo) { return hi + lo * 0x1p-32; }

bool exact_units_add(int64_t acc[2], double v)
{
    const double top = 0x1p62, one = (double)((int64_t)1 << EXACT_UNIT_BITS);
    if (!(v >= 0.0 && v < top)) return false;
    double w = floor(v);
    if (__builtin_add_overflow(acc[0], (int64_t)w, &acc[0]) || acc[0] >= (int64_t)top)
        return false;
    acc[1] += (int64_t)llround((v - w) * one); /* at most one: below two, carried at once */
    acc[0] += acc[1] >> EXACT_UNIT_BITS;
    acc[1] &= ((int64_t)1 << EXACT_UNIT_BITS) - 1;
    return true;
}

double exact_units_value(const int64_t acc[2])
{
    return (double)acc[0] + ldexp((double)acc[1], -EXACT_UNIT_BITS);
}

int exact_fixed_exponent(double maxabs, size_t n)
{
    if (!(maxabs > 0.0) || !isfinite(maxabs)) return 0;
    int k;
    frexp(maxabs, &k); /* maxabs < 2^k */
    return 62 - ceil_log2(n > 0 ? n : 1) - k;
}

int exact_grid_exponent(double maxabs)
{
    if (!(maxabs > 0.0) || !isfinite(maxabs)) return 0;
    int k;
    frexp(maxabs, &k); /* maxabs < 2^k */
    return EXACT_GRID_BITS - k;
}

void exact_q2_to_limbs(exact_u128 s2, int64_t limbs[EXACT_Q2_LIMBS])
{
    for (int k = 0; k < EXACT_Q2_LIMBS; k++) limbs[k] = (int64_t)((s2 >> (32 * k)) & 0xffffffffu);
}

exact_u128 exact_q2_from_limbs(const int64_t limbs[EXACT_Q2_LIMBS])
{
    exact_u128 v = 0;
    for (int k = 0; k < EXACT_Q2_LIMBS; k++) v += (exact_u128)(uint64_t)limbs[k] << (32 * k);
    return v;
}

void exact_moments(int64_t s1, exact_u128 s2, size_t n, int e, double *mean, double *var)
{
    typedef exact_i128 i128;
    double dn = (double)n;
    *mean = ldexp((double)s1, -e) / dn;
    /* n S2 >= S1^2 (Cauchy-Schwarz), both below n^2 2^48: exact in 128 bits for n < 2^39 */
    i128 num = (i128)((exact_u128)n * s2) - (i128)s1 * (i128)s1;
    *var = num > 0 ? ldexp((double)num, -2 * e) / (dn * dn) : 0.0;
}
