/* train_banner: what `xentrain train` says it will do, on rank 0, before the first step (see
 * trainer.h). Every decision is printed with the reason the plan (plan.h) or the reduction
 * (reduce_describe) wrote; nothing here decides or re-explains anything. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linalg.h"
#include "log.h"
#include "strutil.h"
#include "trainer.h"

static void print_settings(const Config *c)
{
    size_t need = config_settings_text(c, NULL, 0) + 1;
    char *text = malloc(need);
    if (!text) return;
    config_settings_text(c, text, need);
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
        log_info("         %s", l);
    free(text);
}

static void banner_launch(const Trainer *tr)
{
    char mpi[256], blas[512];
    comm_library_version(mpi, sizeof mpi);
    linalg_describe(blas, sizeof blas);
    log_info("xentrain %s train %s", XT_VERSION, tr->cfg.source);
    log_info("launch   P = %d ranks on %d node(s), %d per node; BLAS threads per rank: %d (%s); %s",
             tr->P, comm_node_count(tr->comm), comm_local_size(tr->comm), linalg_blas_threads(),
             tr->plan.blas_why, mpi);
    log_info("blas     %s", blas);
    const char *job = getenv("SLURM_JOB_ID");
    if (job)
        log_info("slurm    job %s, nodes %s, tasks per node %s", job,
                 getenv("SLURM_JOB_NODELIST") ? getenv("SLURM_JOB_NODELIST") : "?",
                 getenv("SLURM_TASKS_PER_NODE") ? getenv("SLURM_TASKS_PER_NODE") : "?");
}

static void banner_data(const Trainer *tr)
{
    const Config *c = &tr->cfg;
    const Plan *p = &tr->plan;
    log_info("data     train %s: N = %zu, D = %zu (X %s), y %s; rank 0 holds rows [%zu, %zu)",
             c->data.train, tr->tinfo.n, tr->tinfo.d, tr->tinfo.x_type, tr->tinfo.y_type,
             tr->sampler.row_lo, tr->sampler.row_hi);
    char hb[32], hd[32], how[800];
    strutil_human_bytes(p->budget, hb, sizeof hb);
    strutil_human_bytes(tr->data_bytes, hd, sizeof hd);
    rowsource_describe(&tr->train_rows, how, sizeof how);
    log_info("memory   training rows %s (%s): %s on rank 0; budget %s per rank (%s)", how,
             p->stream_why, hd, p->budget > 0 ? hb : "unlimited", p->budget_why);
    if (tr->tinfo.x_csr)
        log_info("sparse   %zu non-zeros (%.3g%% dense); batches %s (%s)", tr->tinfo.x_nnz,
                 100.0 * (double)tr->tinfo.x_nnz / ((double)tr->tinfo.n * (double)tr->tinfo.d),
                 p->csr_batches ? "CSR" : "dense", p->csr_why);
    if (p->shuffle_block > 0)
        log_info("shuffle  blocks of %zu consecutive rows (%s), in a new order each epoch "
                 "within each virtual shard", p->shuffle_block, p->shuffle_why);
    log_info("loss     %s", loss_kind_name(tr->loss_kind));
    if (p->norm == NORM_SCALE)
        log_info("features scaled by %g (%s)", tr->tinfo.x_scale, p->norm_why);
    else if (p->norm == NORM_MAXABS)
        log_info("features divided by their column's max |x| over the training split, zeros "
                 "kept (%s)", p->norm_why);
    else
        log_info("features %s (%s)", p->norm == NORM_NONE ? "used as stored"
                 : "standardised: mean 0, sd 1 over the training split", p->norm_why);
    if (tr->has_val) {
        rowsource_describe(&tr->val_rows, how, sizeof how);
        log_info("         val   %s: N = %zu (%s, %s)", c->data.val, tr->vinfo.n,
                 c->eval.distributed ? "sharded over ranks" : "rank 0", how);
    }
}

static void banner_batches(const Trainer *tr)
{
    const Config *c = &tr->cfg;
    const Plan *p = &tr->plan;
    char acc[96] = "", clamp[96] = "";
    if (p->pieces > 1)
        snprintf(acc, sizeof acc, ", each in %zu micro-steps per rank", p->pieces);
    size_t rows = p->global_batch && p->global_batch < tr->tinfo.n ? p->global_batch
                                                                    : tr->tinfo.n;
    if (p->global_batch > tr->tinfo.n)
        snprintf(clamp, sizeof clamp, " (the batch asked for, %zu, exceeds the %zu rows)",
                 p->global_batch, tr->tinfo.n);
    if (p->solver)
        log_info("batch    the full batch: each pass of the solver reads all %zu rows (%zu "
                 "virtual shards); an epoch is one iteration", tr->tinfo.n, tr->sampler.S);
    else
        log_info("batch    global %zu rows per update%s (%zu steps/epoch, %zu virtual shards)%s; "
                 "%s", rows, clamp, tr->sampler.T, tr->sampler.S, acc, p->batch_why);
    if (p->G == 0) return;
    size_t mb = p->G * p->pieces, parts = step_plan_max_parts(&tr->sampler, p->pieces);
    log_info("repro    reproducible: %zu micro-batches per update (%zu groups of virtual shards%s; "
             "%s, about %zu rows each), exact integer sums: the same model at any P <= %zu%s; "
             "%.2f MiB of partial gradients on rank 0", mb, p->G,
             c->train.accumulate > 1 ? " x train.accumulate" : "", p->groups_why,
             (rows + mb / 2) / mb, p->G,
             linalg_blas_threads() > 1 ? " with this BLAS thread count" : "",
             (double)parts * (double)tr->model.shape.n_params * 4.0 / 1048576.0);
}

static void banner_step(const Trainer *tr)
{
    const Config *c = &tr->cfg;
    const Plan *p = &tr->plan;
    const size_t n = tr->model.shape.n_params;
    char desc[256], red[2 * PLAN_WHY];
    model_shape_describe(&tr->model.shape, desc, sizeof desc);
    log_info("model    %s, K = %zu", desc, tr->K);
    if (p->solver) trainer_banner_solver(tr);
    else
        log_info("optim    %s, lr %g%s, momentum %g (%s)", optim_name(c->optim.optimizer),
                 tr->oset.lr, c->optim.lr_scaling == LR_SCALE_LINEAR ? " (scaled by P)" : "",
                 tr->oset.momentum, p->lr_why);
    size_t lo, hi;
    reduce_slice(tr->red, &lo, &hi);
    if (p->shard)
        log_info("         sharded update (%s): each rank updates a slice of the %zu parameters "
                 "(whole blocks of %d) and keeps its optimiser state; rank 0 has [%zu, %zu)",
                 p->shard_why, n, OPTIM_NORM_BLOCK, lo, hi);
    else
        log_info("         every rank updates all parameters (%s)", p->shard_why);
    reduce_describe(tr->red, red, sizeof red);
    if (tr->P > 1 || p->touched) log_info("reduce   %s", red); /* touched: the update too */
    if (tr->P > 1 && !p->overlap)
        log_info("         reduced after backward, not overlapped (%s)", p->overlap_why);
}

void trainer_banner(const Trainer *tr)
{
    if (tr->r != 0) return;
    banner_launch(tr);
    banner_data(tr);
    banner_batches(tr);
    banner_step(tr);
    log_info("run      %s", tr->cfg.run.dir);
    log_info("settings (every key: xentrain --help-config)");
    print_settings(&tr->cfg);
}
