#include "shard.h"

#include <stdio.h>
#include <stdlib.h>

#include "rng.h"

/* 128-bit products keep s * n exact for any realistic N and S. */
__extension__ typedef unsigned __int128 u128;

size_t shard_row_begin(size_t n, size_t S, size_t s)
{
    return (size_t)(((u128)s * n) / S);
}

void shard_rank_shards(size_t S, int P, int r, size_t *s_lo, size_t *s_hi)
{
    *s_lo = (size_t)(((u128)(size_t)r * S) / (size_t)P);
    *s_hi = (size_t)(((u128)(size_t)(r + 1) * S) / (size_t)P);
}

void shard_rank_shards_grouped(size_t S, size_t G, int P, int r, size_t *s_lo, size_t *s_hi)
{
    if (G == 0) {
        shard_rank_shards(S, P, r, s_lo, s_hi);
        return;
    }
    size_t g_lo, g_hi;
    shard_rank_shards(G, P, r, &g_lo, &g_hi);
    *s_lo = shard_row_begin(S, G, g_lo); /* the first shard of group g_lo */
    *s_hi = shard_row_begin(S, G, g_hi);
}

void shard_block_range(size_t n, size_t block, int P, int r, size_t *lo, size_t *hi)
{
    size_t nb = block > 0 ? (n + block - 1) / block : 0, b_lo, b_hi;
    shard_rank_shards(nb, P, r, &b_lo, &b_hi);
    *lo = b_lo * block < n ? b_lo * block : n;
    *hi = b_hi * block < n ? b_hi * block : n;
}

size_t shard_count(size_t n, size_t requested) { return requested < n ? requested : n; }

size_t shard_steps_per_epoch(size_t n, size_t B)
{
    if (B == 0 || B >= n) return 1;
    return (n + B - 1) / B;
}

/* a_s(t) of the header: rows of shard s used before step t. */
static size_t shard_cursor(size_t ns, size_t T, size_t phi, size_t t)
{
    return (size_t)(((u128)t * ns + phi) / T);
}

static size_t shard_phase(size_t s, size_t T, size_t S)
{
    return (size_t)(((u128)s * T) / S);
}

Status sampler_init(Sampler *s, size_t n, size_t virtual_shards, size_t batch, int P, int r,
                    uint64_t seed, bool shuffle, size_t groups, char *err, size_t errlen)
{
    *s = (Sampler){0};
    if (n == 0) {
        snprintf(err, errlen, "the training split has no rows");
        return XT_ERR_USAGE;
    }
    size_t S = shard_count(n, virtual_shards);
    if ((size_t)P > S) {
        snprintf(err, errlen,
                 "%d ranks but only %zu virtual shards (data.virtual_shards = %zu, N = %zu rows): "
                 "every rank needs at least one; set data.virtual_shards >= %d (and N >= P)",
                 P, S, virtual_shards, n, P);
        return XT_ERR_USAGE;
    }
    if (groups > S) {
        snprintf(err, errlen,
                 "%zu micro-batch groups but only %zu virtual shards (N = %zu rows): every group "
                 "needs at least one shard; raise data.virtual_shards to >= %zu or lower "
                 "train.micro_batches", groups, S, n, groups);
        return XT_ERR_USAGE;
    }
    if (groups > 0 && (size_t)P > groups) {
        snprintf(err, errlen,
                 "%d ranks but train.micro_batches = %zu: in reproducible mode each rank needs "
                 "at least one micro-batch group; set train.micro_batches >= %d (the same value "
                 "at every rank count gives the same model)", P, groups, P);
        return XT_ERR_USAGE;
    }
    s->n = n;
    s->S = S;
    s->T = shard_steps_per_epoch(n, batch);
    s->P = P;
    s->r = r;
    s->seed = seed;
    s->shuffle = shuffle;
    s->G = groups;
    if (groups > 0) shard_rank_shards(groups, P, r, &s->g_lo, &s->g_hi);
    shard_rank_shards_grouped(S, groups, P, r, &s->s_lo, &s->s_hi);
    s->row_lo = shard_row_begin(n, S, s->s_lo);
    s->row_hi = shard_row_begin(n, S, s->s_hi);
    size_t local = s->row_hi - s->row_lo;
    if (local > UINT32_MAX) {
        snprintf(err, errlen, "a rank would hold %zu rows (limit %u): use more ranks", local,
                 UINT32_MAX);
        return XT_ERR_USAGE;
    }
    s->perm = malloc((local > 0 ? local : 1) * sizeof *s->perm);
    if (!s->perm) {
        snprintf(err, errlen, "out of memory for the sampler (%zu rows)", local);
        return XT_ERR_RUNTIME;
    }
    for (size_t q = s->s_lo; q < s->s_hi; q++) {
        size_t ns = shard_row_begin(n, S, q + 1) - shard_row_begin(n, S, q);
        s->max_local += ns / s->T + 1;
    }
    if (s->max_local > local) s->max_local = local;
    s->epoch = UINT64_MAX;
    sampler_begin_epoch(s, 0);
    return XT_OK;
}

void sampler_free(Sampler *s)
{
    free(s->perm);
    free(s->blocks);
    s->perm = NULL;
    s->blocks = NULL;
}

/* The most blocks of `block` rows one of shards [q_lo, q_hi) spans. */
static size_t max_blocks(const Sampler *s, size_t block)
{
    size_t best = 0;
    for (size_t q = s->s_lo; q < s->s_hi; q++) {
        size_t b = shard_row_begin(s->n, s->S, q), e = shard_row_begin(s->n, s->S, q + 1);
        size_t nb = e > b ? (e - 1) / block - b / block + 1 : 0;
        if (nb > best) best = nb;
    }
    return best;
}

Status sampler_set_block_shuffle(Sampler *s, size_t block, char *err, size_t errlen)
{
    free(s->blocks);
    s->blocks = NULL;
    s->block = block;
    if (block > 0) {
        size_t nb = max_blocks(s, block);
        s->blocks = malloc((nb ? nb : 1) * sizeof *s->blocks);
        if (!s->blocks) {
            snprintf(err, errlen, "out of memory for the block order (%zu blocks)", nb);
            return XT_ERR_RUNTIME;
        }
    }
    uint64_t e = s->epoch;
    s->epoch = UINT64_MAX;
    sampler_begin_epoch(s, e);
    return XT_OK;
}

Status sampler_clone(Sampler *dst, const Sampler *src, char *err, size_t errlen)
{
    *dst = *src;
    dst->perm = NULL;
    dst->blocks = NULL;
    size_t local = src->row_hi - src->row_lo;
    dst->perm = malloc((local > 0 ? local : 1) * sizeof *dst->perm);
    if (!dst->perm) {
        snprintf(err, errlen, "out of memory for a copy of the sampler (%zu rows)", local);
        return XT_ERR_RUNTIME;
    }
    dst->epoch = UINT64_MAX;
    return sampler_set_block_shuffle(dst, src->block, err, errlen);
}

/* Shard q's rows [b, e) in an order of whole blocks (block shuffle), into p. */
static void block_order(Sampler *s, size_t q, size_t b, size_t e, uint32_t *p)
{
    const size_t B = s->block, first = b / B, nb = (e - 1) / B - first + 1;
    for (size_t i = 0; i < nb; i++) s->blocks[i] = (uint32_t)i;
    Rng rng;
    rng_seed_tuple(&rng, s->seed, s->epoch, q);
    rng_shuffle_u32(&rng, s->blocks, nb);
    size_t m = 0;
    for (size_t i = 0; i < nb; i++) {
        size_t k = first + s->blocks[i];
        size_t lo = k * B > b ? k * B : b, hi = (k + 1) * B < e ? (k + 1) * B : e;
        for (size_t r = lo; r < hi; r++) p[m++] = (uint32_t)(r - s->row_lo);
    }
}

void sampler_begin_epoch(Sampler *s, uint64_t epoch)
{
    if (s->epoch == epoch) return;
    s->epoch = epoch;
    for (size_t q = s->s_lo; q < s->s_hi; q++) {
        size_t b = shard_row_begin(s->n, s->S, q), e = shard_row_begin(s->n, s->S, q + 1);
        uint32_t *p = s->perm + (b - s->row_lo);
        if (s->shuffle && s->block > 0 && e > b) {
            block_order(s, q, b, e, p);
            continue;
        }
        for (size_t i = b; i < e; i++) p[i - b] = (uint32_t)(i - s->row_lo);
        if (s->shuffle) {
            Rng rng;
            rng_seed_tuple(&rng, s->seed, epoch, q);
            rng_shuffle_u32(&rng, p, e - b);
        }
    }
}

/* Rows shards [q_lo, q_hi) contribute to step t; into rows when not NULL. */
static size_t shards_step_rows(const Sampler *s, size_t q_lo, size_t q_hi, size_t t,
                               uint32_t *rows)
{
    size_t m = 0;
    for (size_t q = q_lo; q < q_hi; q++) {
        size_t b = shard_row_begin(s->n, s->S, q), e = shard_row_begin(s->n, s->S, q + 1);
        size_t ns = e - b, phi = shard_phase(q, s->T, s->S);
        size_t from = shard_cursor(ns, s->T, phi, t), to = shard_cursor(ns, s->T, phi, t + 1);
        if (rows) {
            const uint32_t *p = s->perm + (b - s->row_lo);
            for (size_t i = from; i < to; i++) rows[m + i - from] = p[i];
        }
        m += to - from;
    }
    return m;
}

size_t sampler_step_rows(const Sampler *s, size_t t, uint32_t *rows)
{
    XT_ASSERT(t < s->T);
    size_t m = shards_step_rows(s, s->s_lo, s->s_hi, t, rows);
    XT_ASSERT(m <= s->max_local);
    return m;
}

size_t sampler_group_rows(const Sampler *s, size_t t, size_t g, uint32_t *rows)
{
    XT_ASSERT(s->G > 0 && g >= s->g_lo && g < s->g_hi && t < s->T);
    size_t m = shards_step_rows(s, shard_row_begin(s->S, s->G, g),
                                shard_row_begin(s->S, s->G, g + 1), t, rows);
    XT_ASSERT(m <= s->max_local);
    return m;
}

size_t sampler_max_group_rows(const Sampler *s)
{
    if (s->G == 0) return 0;
    size_t best = 0;
    for (size_t g = 0; g < s->G; g++) {
        size_t q_lo = shard_row_begin(s->S, s->G, g), q_hi = shard_row_begin(s->S, s->G, g + 1);
        size_t cap = 0; /* a bound: each shard gives at most ceil(n_s / T) rows per step */
        for (size_t q = q_lo; q < q_hi; q++) {
            size_t ns = shard_row_begin(s->n, s->S, q + 1) - shard_row_begin(s->n, s->S, q);
            cap += ns / s->T + 1;
        }
        if (cap > best) best = cap;
    }
    return best;
}

size_t sampler_global_count(const Sampler *s, size_t t)
{
    size_t m = 0;
    for (size_t q = 0; q < s->S; q++) {
        size_t ns = shard_row_begin(s->n, s->S, q + 1) - shard_row_begin(s->n, s->S, q);
        size_t phi = shard_phase(q, s->T, s->S);
        m += shard_cursor(ns, s->T, phi, t + 1) - shard_cursor(ns, s->T, phi, t);
    }
    return m;
}

/* ---- the step plan ----------------------------------------------------------------------- */

size_t step_plan_max_parts(const Sampler *s, size_t pieces)
{
    size_t groups = s->G > 0 ? s->g_hi - s->g_lo : 1;
    return (groups > 0 ? groups : 1) * (pieces > 0 ? pieces : 1);
}

Status step_plan_init(StepPlan *p, const Sampler *s, size_t pieces)
{
    *p = (StepPlan){.t = SIZE_MAX, .pieces = pieces > 0 ? pieces : 1};
    p->mb = malloc(step_plan_max_parts(s, pieces) * sizeof *p->mb);
    p->rows = malloc((s->max_local > 0 ? s->max_local : 1) * sizeof *p->rows);
    if (p->mb && p->rows) return XT_OK;
    step_plan_free(p);
    return XT_ERR_RUNTIME;
}

void step_plan_free(StepPlan *p)
{
    free(p->mb);
    free(p->rows);
    *p = (StepPlan){.t = SIZE_MAX};
}

/* Rows [0, m) of rows cut into p->pieces micro-batches; `grouped`: each its own partial. */
static void plan_pieces(StepPlan *p, const uint32_t *rows, size_t m, bool grouped)
{
    const size_t k = p->pieces;
    for (size_t c = 0; c < k; c++) {
        size_t lo = (m * c) / k, hi = (m * (c + 1)) / k;
        if (hi == lo) continue;
        p->mb[p->n] = (MicroBatch){.rows = rows + lo, .m = hi - lo, .part = grouped ? p->n : 0};
        p->n++;
    }
}

void step_plan_make(StepPlan *p, const Sampler *s, size_t t)
{
    p->t = t;
    p->n = 0;
    if (s->G == 0) {
        plan_pieces(p, p->rows, sampler_step_rows(s, t, p->rows), false);
        return;
    }
    size_t used = 0;
    for (size_t g = s->g_lo; g < s->g_hi; g++) {
        size_t m = sampler_group_rows(s, t, g, p->rows + used);
        plan_pieces(p, p->rows + used, m, true);
        used += m;
    }
}
