#include "predict.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "evaluate.h"
#include "fsutil.h"
#include "h5io.h"
#include "linalg.h"
#include "log.h"
#include "loss.h"
#include "model.h"
#include "model_io.h"
#include "plan.h"
#include "opts.h"
#include "rowsource.h"
#include "strutil.h"
#include "shard.h"

#define PREDICT_DEFAULT_BATCH 1024
#define PREDICT_MAX_BATCH 2147483647.0

typedef struct {
    const char *model, *data, *out;
    size_t batch;
    const char *budget_text;
    double budget;
} PredictArgs;

/* Probabilities (n, K) and predictions (n, pk) of this rank's rows. K is the number of
 * classes (2 for logistic regression: P(0), P(1)) or labels; pk is 1 (a class id per
 * row) or K (multi-label: a 0/1 decision per label). */
typedef struct {
    float *prob;
    int32_t *pred;
    size_t n, K, pk;
} Predictions;

/* One row's head: softmax probabilities and the argmax, or sigmoid probabilities and
 * z > 0 decisions (one for logistic, K for multi-label). */
static void predict_row(const ModelShape *sh, const float *z, float *p, int32_t *pred, bool ml)
{
    const size_t K = model_outputs(sh);
    if (sh->head == HEAD_SOFTMAX) {
        size_t best = 0;
        for (size_t k = 1; k < K; k++)
            if (z[k] > z[best]) best = k;
        double mx = z[best], sum = 0.0;
        for (size_t k = 0; k < K; k++) sum += exp((double)z[k] - mx);
        for (size_t k = 0; k < K; k++) p[k] = (float)(exp((double)z[k] - mx) / sum);
        pred[0] = (int32_t)best;
        return;
    }
    if (!ml) { /* logistic: one logit, two class probabilities */
        double p1 = loss_sigmoid((double)z[0]);
        p[0] = (float)(1.0 - p1);
        p[1] = (float)p1;
        pred[0] = z[0] > 0.0f;
        return;
    }
    for (size_t k = 0; k < K; k++) {
        p[k] = (float)loss_sigmoid((double)z[k]);
        pred[k] = z[k] > 0.0f;
    }
}

static void predict_rows(Model *m, const RowSource *src, RowBatch *batch, Predictions *pr,
                         bool ml)
{
    const ModelShape *sh = &m->shape;
    for (size_t r0 = 0; r0 < pr->n; r0 += m->max_batch) {
        size_t b = pr->n - r0 < m->max_batch ? pr->n - r0 : m->max_batch;
        rowsource_read_batch(src, r0, b, batch);
        const float *z = model_forward_input(m, batch->in, b);
        const size_t KO = model_outputs(sh);
        for (size_t i = 0; i < b; i++)
            predict_row(sh, z + i * KO, pr->prob + (r0 + i) * pr->K,
                        pr->pred + (r0 + i) * pr->pk, ml);
    }
}

static bool is_csv(const char *path)
{
    size_t n = strlen(path);
    return n >= 4 && !strcasecmp(path + n - 4, ".csv");
}

/* The name of class k, or NULL. */
static const char *class_name(const ModelFile *mf, size_t k)
{
    return mf->class_names && k < mf->n_class_names ? mf->class_names[k] : NULL;
}

/* HDF5: /probabilities (N, K) float32, /predicted (N,) class ids or (N, K) 0/1, and the
 * model's class_names as an attribute of the file. */
static Status write_h5(const PredictArgs *a, const Predictions *all, const ModelFile *mf,
                       bool ml)
{
    H5File *f = NULL;
    size_t dp[2] = {all->n, all->K}, dq[2] = {all->n, all->pk};
    Status st = h5io_create_atomic(a->out, &f);
    if (st == XT_OK) st = h5io_write(f, "/probabilities", H5IO_F32, 2, dp, all->prob, 0);
    if (st == XT_OK) st = h5io_write(f, "/predicted", H5IO_I32, ml ? 2 : 1, dq, all->pred, 0);
    if (st == XT_OK) st = h5io_attr_write_str(f, "/", "model", a->model);
    if (st == XT_OK) st = h5io_attr_write_str(f, "/", "data", a->data);
    if (st == XT_OK && mf->class_names)
        st = h5io_attr_write_strs(f, "/", "class_names", (const char *const *)mf->class_names,
                                  mf->n_class_names);
    if (st == XT_OK && mf->label_values)
        st = h5io_attr_write_strs(f, "/", "label_values", (const char *const *)mf->label_values,
                                  mf->n_label_values);
    if (st == XT_OK) st = h5io_commit(&f);
    h5io_close(&f);
    return st;
}

/* One CSV field (RFC 4180): quoted, with quotes doubled, when it holds the delimiter, a
 * quote, a line break or edge spaces; prefix is written first, outside the quotes. */
static void csv_field(FILE *f, const char *prefix, const char *text)
{
    size_t n = strlen(text);
    bool quote = strpbrk(text, ",\"\r\n") != NULL ||
                 (n > 0 && (text[0] == ' ' || text[n - 1] == ' '));
    fputs(prefix, f);
    if (!quote) {
        fputs(text, f);
        return;
    }
    fputc('"', f);
    for (const char *c = text; *c; c++) {
        if (*c == '"') fputc('"', f);
        fputc(*c, f);
    }
    fputc('"', f);
}

/* CSV, one row per input row: predicted (and predicted_name) then p_<class> columns;
 * multi-label: one 0/1 column and one probability column per label. */
static void csv_rows(FILE *f, const Predictions *all, const ModelFile *mf, bool ml)
{
    bool names = !ml && mf->class_names;
    bool values = !ml && mf->label_values && mf->n_label_values >= all->K;
    if (values && names) { /* word labels: their values are the names already */
        bool same = true;
        for (size_t k = 0; k < all->K && same; k++)
            same = class_name(mf, k) && !strcmp(class_name(mf, k), mf->label_values[k]);
        values = !same;
    }
    for (size_t k = 0; ml && k < all->K; k++)
        fprintf(f, "%spredicted_%zu", k ? "," : "", k);
    if (!ml) fprintf(f, "predicted%s%s", values ? ",class_id" : "", names ? ",predicted_name" : "");
    for (size_t k = 0; k < all->K; k++) {
        const char *cn = values ? mf->label_values[k] : class_name(mf, k);
        char head[48];
        if (cn) {
            size_t len = strlen(cn);
            char *h = malloc(len + 3);
            if (h) {
                snprintf(h, len + 3, "p_%s", cn);
                csv_field(f, ",", h);
                free(h);
            }
        } else {
            snprintf(head, sizeof head, "p_%zu", k);
            csv_field(f, ",", head);
        }
    }
    fputc('\n', f);
    for (size_t i = 0; i < all->n; i++) {
        if (values) { /* the label as the data had it, then the class id */
            csv_field(f, "", mf->label_values[all->pred[i]]);
            fputc(',', f);
        }
        for (size_t k = 0; k < all->pk; k++)
            fprintf(f, "%s%d", k ? "," : "", (int)all->pred[i * all->pk + k]);
        if (names) {
            const char *cn = class_name(mf, (size_t)all->pred[i]);
            csv_field(f, ",", cn ? cn : "");
        }
        for (size_t k = 0; k < all->K; k++) fprintf(f, ",%.9g", (double)all->prob[i * all->K + k]);
        fputc('\n', f);
    }
}

/* The CSV to a.out (atomically), or to stdout for "-". */
static Status write_csv(const PredictArgs *a, const Predictions *all, const ModelFile *mf,
                        bool ml)
{
    if (!strcmp(a->out, "-")) {
        csv_rows(stdout, all, mf, ml);
        if (fflush(stdout) == 0 && !ferror(stdout)) return XT_OK;
        log_error("cannot write the predictions to stdout: %s", strerror(errno));
        return XT_ERR_RUNTIME;
    }
    char tmp[XT_PATH_MAX + 48];
    if (fsutil_temp_name(tmp, sizeof tmp, a->out) != XT_OK) return XT_ERR_USAGE;
    FILE *f = fopen(tmp, "wx");
    if (!f) {
        log_error("cannot write %s: %s", tmp, strerror(errno));
        return XT_ERR_RUNTIME;
    }
    csv_rows(f, all, mf, ml);
    bool bad = ferror(f) != 0;
    if (fclose(f) != 0 || bad) {
        log_error("cannot write %s: %s", tmp, strerror(errno));
        remove(tmp);
        return XT_ERR_RUNTIME;
    }
    return fsutil_commit(tmp, a->out);
}

/* Rank 0 gathers every rank's rows (in rank order = row order) and writes OUT. */
static Status gather_and_write(const Comm *comm, const PredictArgs *a, const Predictions *pr,
                               const ModelFile *mf, size_t N, bool ml)
{
    int P = comm_size(comm), r = comm_rank(comm);
    float *all_prob = NULL;
    int32_t *all_pred = NULL;
    size_t *counts = NULL;
    Status local = XT_OK;
    if (r == 0) {
        all_prob = malloc((N * pr->K + 1) * sizeof *all_prob);
        all_pred = malloc((N * pr->pk + 1) * sizeof *all_pred);
        counts = malloc((size_t)P * sizeof *counts);
        if (!all_prob || !all_pred || !counts) {
            log_error("out of memory for %zu predictions", N);
            local = XT_ERR_RUNTIME;
        }
    }
    Status st = comm_agree(comm, local);
    if (st == XT_OK) {
        for (int q = 0; q < P && r == 0; q++) { /* eval_load's split: whole blocks */
            size_t lo, hi;
            shard_block_range(N, a->batch, P, q, &lo, &hi);
            counts[q] = hi - lo;
        }
        for (int q = 0; q < P && r == 0; q++) counts[q] *= pr->K * sizeof(float);
        comm_gatherv(comm, pr->prob, pr->n * pr->K * sizeof(float), all_prob, counts);
        for (int q = 0; q < P && r == 0; q++)
            counts[q] = counts[q] / (pr->K * sizeof(float)) * pr->pk * sizeof(int32_t);
        comm_gatherv(comm, pr->pred, pr->n * pr->pk * sizeof(int32_t), all_pred, counts);
    }
    if (st == XT_OK && r == 0) {
        Predictions all = {.prob = all_prob, .pred = all_pred, .n = N, .K = pr->K, .pk = pr->pk};
        bool csv = is_csv(a->out) || !strcmp(a->out, "-");
        local = csv ? write_csv(a, &all, mf, ml) : write_h5(a, &all, mf, ml);
        if (local == XT_OK) log_info("wrote %zu predictions to %s", N, a->out);
    }
    if (st == XT_OK) st = comm_agree(comm, local);
    free(all_prob);
    free(all_pred);
    free(counts);
    return st;
}

static Status predict_parse(int argc, char **argv, PredictArgs *a, bool *help)
{
    *a = (PredictArgs){.batch = PREDICT_DEFAULT_BATCH, .budget_text = "0"};
    const OptSpec opts[] = {
        {.name = "model", OPT_STRING, &a->model, "M.h5", "the model file (model.h5 of a run)",
         .required = true},
        {.name = "data", OPT_STRING, &a->data, "F.h5:/GROUP", "the rows to predict", .required = true},
        {.name = "out", OPT_STRING, &a->out, "P.h5|P.csv|-",
         "output: HDF5, or CSV when the name ends in .csv\n(- : CSV to stdout, alone)",
         .required = true},
        {.name = "batch-size", OPT_SIZE, &a->batch, "N", "rows per forward pass (1024)", 1,
         PREDICT_MAX_BATCH},
        {.name = "memory-budget", OPT_STRING, &a->budget_text, "BYTES",
         "memory per rank for the rows (e.g. 512M, 2G); a split that\ndoes not fit is read "
         "from the file in blocks (0 = auto: 80% of\nthe usable memory over the node's ranks)"},
    };
    OptTable t = {.cmd = "predict", .synopsis = "--model M.h5 --data F.h5[:/group] --out P.h5|P.csv|-",
                  .about = "Predicts every row of the split; y is not needed (and ignored when\n"
                           "present). HDF5 output: /probabilities (N, K) float32 (K = 2 for\n"
                           "logistic regression: P(0), P(1)) and /predicted (class ids, or (N, K)\n"
                           "0/1 for multi-label), with the model's class_names and label_values.\n"
                           "CSV output: one line per row: predicted (the label as the training\n"
                           "data had it; then class_id when that differs), predicted_name,\n"
                           "p_<class>...",
                  .opts = opts, .n_opts = sizeof opts / sizeof opts[0]};
    Status st = opts_parse(&t, argc, argv, help);
    if (*help && log_rank() == 0) opts_print_help(&t, stdout);
    if (st == XT_OK && !*help && strutil_parse_bytes(a->budget_text, &a->budget)) {
        log_error0("predict: --memory-budget %s is not a byte count (e.g. 0, 512M, 2G)",
                   a->budget_text);
        st = XT_ERR_USAGE;
    }
    return st;
}

int predict_main(const Comm *comm, int argc, char **argv)
{
    PredictArgs a;
    bool help = false;
    Status s = predict_parse(argc, argv, &a, &help);
    if (help || s != XT_OK) return (int)s;
    char blas_why[PLAN_WHY];
    plan_apply_blas(blas_why, sizeof blas_why);
    if (!strcmp(a.out, "-")) log_set_quiet(true); /* stdout is the CSV */
    ModelFile mf = {0};
    Dataset ds = {0};
    RowSource src = {0};
    Model m = {0};
    RowBatch batch = {0};
    Predictions pr = {0};
    LossKind kind;
    s = eval_load(comm, a.model, a.data, a.batch, a.budget, "--memory-budget", false, &mf, &ds,
                  &src, &m, &kind);
    if (s != XT_OK) goto cleanup;
    const ModelShape *sh = &mf.shape;
    bool ml = sh->head == HEAD_SIGMOID && sh->type != MODEL_LOGISTIC;
    pr = (Predictions){.n = src.n, .K = sh->type == MODEL_LOGISTIC ? 2 : model_outputs(sh),
                       .pk = ml ? model_outputs(sh) : 1};
    pr.prob = malloc((pr.n * pr.K + 1) * sizeof *pr.prob);
    pr.pred = malloc((pr.n * pr.pk + 1) * sizeof *pr.pred);
    Status got = rowsource_batch_alloc(&src, m.max_batch, &batch);
    s = comm_agree(comm, pr.prob && pr.pred && got == XT_OK ? XT_OK : XT_ERR_RUNTIME);
    if (s != XT_OK) goto cleanup;
    predict_rows(&m, &src, &batch, &pr, ml);
    s = gather_and_write(comm, &a, &pr, &mf, ds.info.n, ml);
cleanup:
    free(pr.prob);
    free(pr.pred);
    rowsource_batch_free(&batch);
    model_free(&m);
    rowsource_free(&src);
    dataset_free(&ds);
    model_io_free(&mf);
    return (int)s;
}
