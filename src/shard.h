/* shard: who holds which rows, and which rows make up each global batch.
 *
 * The N training rows are split into S contiguous *virtual shards* (shard s holds rows
 * [s N / S, (s+1) N / S)). Rank r of P owns the contiguous block of shards
 * [r S / P, (r+1) S / P), hence one contiguous row range: one hyperslab to read.
 *
 * Each epoch every virtual shard is permuted by a PRNG seeded by (seed, epoch, shard).
 * An epoch has T = ceil(N / B) steps (B = global batch; B = 0 or B >= N: T = 1). At
 * step t, shard s (n_s rows) contributes its permuted rows [a_s(t), a_s(t+1)) with
 *      a_s(t) = floor((t n_s + phi_s) / T),   phi_s = floor(s T / S),
 * so every row is used exactly once per epoch, the shards' contributions are spread
 * evenly over the steps (phi staggers them), and a global batch holds about N / T rows.
 * None of this depends on P: for any P <= S the global batch of step t is the same set
 * of rows, which makes losses comparable across rank counts (DESIGN.md §2). Each rank
 * enumerates only its own shards: per-rank work and memory are O(N / P).
 *
 * Groups (reproducible mode, train.reproducible): the S shards are also cut into G
 * contiguous groups (group g holds shards [g S / G, (g+1) S / G)), and rank r then owns the
 * groups [r G / P, (r+1) G / P) instead, so a group always lives on one rank. Group g's
 * rows of step t, in shard order and permutation order, are one micro-batch: the same rows
 * in the same order whatever P is (P <= G), so its partial gradient is computed
 * identically by whichever rank holds it.
 *
 * Local everywhere (pure arithmetic; the caller passes rank and size as ints).
 */
#ifndef XT_SHARD_H
#define XT_SHARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* First row of virtual shard s of S over N rows (s == S gives N). */
size_t shard_row_begin(size_t n, size_t S, size_t s);
/* The shards rank r of P owns: [*s_lo, *s_hi). */
void shard_rank_shards(size_t S, int P, int r, size_t *s_lo, size_t *s_hi);
/* The shards rank r of P owns when the S shards form G groups (G = 0: no groups, as
 * shard_rank_shards). */
void shard_rank_shards_grouped(size_t S, size_t G, int P, int r, size_t *s_lo, size_t *s_hi);
/* Rank r's rows [*lo, *hi) when n rows are dealt to P ranks in whole blocks of `block`
 * rows (evaluation: each block then goes through one forward pass on one rank, the same
 * blocks at any P). */
void shard_block_range(size_t n, size_t block, int P, int r, size_t *lo, size_t *hi);
/* The effective number of virtual shards for N rows: min(requested, N). */
size_t shard_count(size_t n, size_t requested);
/* Steps per epoch for N rows and global batch B (0 = full batch). */
size_t shard_steps_per_epoch(size_t n, size_t B);

typedef struct {
    size_t n, S, T;           /* rows, virtual shards, steps per epoch */
    int P, r;
    size_t G;                 /* groups (0: ownership by shards, no groups) */
    size_t g_lo, g_hi;        /* groups owned (G > 0) */
    size_t s_lo, s_hi;        /* shards owned */
    size_t row_lo, row_hi;    /* rows owned: [row_lo, row_hi) */
    uint64_t seed;
    bool shuffle;
    uint64_t epoch;           /* the epoch the permutation belongs to */
    size_t block;             /* block shuffle: rows per block (0: rows are shuffled) */
    uint32_t *blocks;         /* block shuffle: one shard's block order (scratch) */
    uint32_t *perm;           /* (row_hi - row_lo): shard by shard, local row indices */
    size_t max_local;         /* upper bound on rows this rank gets in one step */
} Sampler;

/* Validates (N > 0; P <= S after clamping S to N; with groups, G <= S and P <= G; else an
 * error with the fix) and allocates. groups = 0: no groups. Message in err on failure
 * (XT_ERR_USAGE). */
Status sampler_init(Sampler *s, size_t n, size_t virtual_shards, size_t batch, int P, int r,
                    uint64_t seed, bool shuffle, size_t groups, char *err, size_t errlen);
void sampler_free(Sampler *s);
/* Block shuffle (train.shuffle = block): each epoch permutes, within every virtual shard,
 * the blocks of `block` consecutive rows (aligned to multiples of `block` in the global
 * row numbering, cut at shard ends) and keeps the rows of a block in file order; the
 * steps then take consecutive runs of that order. Like the row shuffle, a function of
 * (seed, epoch, shard) only: the same batches at any P. Redraws the current epoch.
 * XT_ERR_RUNTIME (message in err) when out of memory. */
Status sampler_set_block_shuffle(Sampler *s, size_t block, char *err, size_t errlen);
/* A copy with its own permutation (for a reader that plans ahead, stream.h). */
Status sampler_clone(Sampler *dst, const Sampler *src, char *err, size_t errlen);

/* Draws the per-shard permutations of `epoch` (0-based). */
void sampler_begin_epoch(Sampler *s, uint64_t epoch);
/* Local row indices (relative to row_lo) of this rank's part of step t's global batch,
 * into rows (capacity max_local). Returns how many. */
size_t sampler_step_rows(const Sampler *s, size_t t, uint32_t *rows);
/* Local row indices of group g's rows of step t (s_lo's group <= g < g_hi), into rows
 * (capacity max_local). Returns how many. */
size_t sampler_group_rows(const Sampler *s, size_t t, size_t g, uint32_t *rows);
/* The most rows any group has in one step (over all groups: the same on every rank). */
size_t sampler_max_group_rows(const Sampler *s);
/* Rows in step t's GLOBAL batch (the same on every rank, without communication). */
size_t sampler_global_count(const Sampler *s, size_t t);

/* ---- the step plan ----------------------------------------------------------------------
 * What one optimiser step computes on this rank, for the trainer's one micro-batch loop:
 * which rows, in how many micro-batches, into which partial gradient buffer.
 *   without groups  this rank's rows of the step, cut into `pieces` (train.accumulate)
 *                   near-equal micro-batches, all into partial 0: their gradients add up in
 *                   one buffer (micro-batch c holds rows [m c / k, m (c+1) / k));
 *   with groups     (reproducible mode) each owned group's rows, cut the same way; the i-th
 *                   micro-batch goes into partial i: each is a P-independent set of rows
 *                   whose partial is combined exactly (exact.h).
 * Empty micro-batches are left out, so a rank without rows has none. Local. */
typedef struct {
    const uint32_t *rows; /* local row indices: a view into the plan's row list */
    size_t m;
    size_t part;          /* the partial buffer its gradient goes to */
} MicroBatch;

typedef struct {
    size_t t;          /* the step planned (SIZE_MAX: none) */
    size_t n;          /* micro-batches */
    size_t pieces;     /* micro-batches per group (or per step without groups) */
    MicroBatch *mb;    /* (max_parts) */
    uint32_t *rows;    /* (max_local) */
} StepPlan;

/* Allocates a plan for s's steps. XT_ERR_RUNTIME when out of memory. */
Status step_plan_init(StepPlan *p, const Sampler *s, size_t pieces);
void step_plan_free(StepPlan *p);
/* The most micro-batches (and partial buffers) a step of s has on this rank. */
size_t step_plan_max_parts(const Sampler *s, size_t pieces);
/* Fills p with step t of the current epoch. */
void step_plan_make(StepPlan *p, const Sampler *s, size_t t);

#endif
