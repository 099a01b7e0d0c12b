#include "evaluate.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "exact.h"
#include "fsutil.h"
#include "h5io.h"
#include "linalg.h"
#include "log.h"
#include "strutil.h"
#include "loss.h"
#include "model_io.h"
#include "plan.h"
#include "opts.h"
#include "shard.h"

Status eval_stats_init(EvalStats *st, const ModelShape *s, LossKind kind, size_t max_rows,
                       const RowSource *src)
{
    *st = (EvalStats){.kind = kind};
    const size_t K = model_outputs(s);
    st->max_rows = max_rows > 0 ? max_rows : 1;
    Status got = rowsource_batch_alloc(src, st->max_rows, &st->batch);
    st->batch.y = malloc(st->max_rows * sizeof(int32_t));
    st->batch.t = malloc(st->max_rows * K * sizeof(float));
    st->multilabel = kind == LOSS_MULTILABEL;
    st->K = kind == LOSS_BINARY ? 2 : K;
    st->len = EVAL_SCALARS + (st->multilabel ? 3 * st->K : st->K * st->K);
    st->buf = calloc(st->len, sizeof *st->buf);
    if (got != XT_OK || !st->buf || !st->batch.y || !st->batch.t) {
        eval_stats_free(st);
        return XT_ERR_RUNTIME;
    }
    st->loss_hi = st->buf;
    st->loss_lo = st->buf + 1;
    st->loss_weight = st->buf + 2;
    st->rows = st->buf + 3;
    st->correct = st->buf + 4;
    st->decisions = st->buf + 5;
    if (st->multilabel) {
        st->tp = st->buf + EVAL_SCALARS;
        st->fp = st->tp + st->K;
        st->fn = st->fp + st->K;
    } else {
        st->confusion = st->buf + EVAL_SCALARS;
    }
    return XT_OK;
}

void eval_stats_reset(EvalStats *st)
{
    for (size_t i = 0; i < st->len; i++) st->buf[i] = 0.0;
}

void eval_stats_free(EvalStats *st)
{
    free(st->buf);
    rowsource_batch_free(&st->batch);
    free(st->batch.y);
    free(st->batch.t);
    *st = (EvalStats){0};
}

/* One row of a one-label-per-row model: the true class (-1: ignored) and the prediction. */
static void count_row(EvalStats *st, const float *z, size_t i, size_t K, int32_t ignore_index)
{
    const int32_t *y = st->batch.y;
    long truth;
    size_t pred;
    if (st->kind == LOSS_BINARY) {
        truth = y[i] == ignore_index ? -1 : y[i];
        pred = z[i] > 0.0f;
    } else {
        truth = st->kind == LOSS_SOFTMAX_PROBS ? (long)loss_argmax(st->batch.t + i * K, K)
                : y[i] == ignore_index       ? -1
                                             : y[i];
        pred = loss_argmax(z + i * K, K);
    }
    if (truth < 0) return;
    *st->correct += pred == (size_t)truth;
    *st->decisions += 1;
    st->confusion[(size_t)truth * st->K + pred] += 1;
}

/* Every output of a multi-label model is a decision: z > 0 against y >= 0.5. */
static void count_labels(EvalStats *st, const float *z, size_t b, size_t K)
{
    const float *t = st->batch.t;
    for (size_t i = 0; i < b * K; i++) {
        bool pred = z[i] > 0.0f, truth = t[i] >= 0.5f;
        *st->correct += pred == truth;
        *st->decisions += 1;
        size_t k = i % K;
        st->tp[k] += pred && truth;
        st->fp[k] += pred && !truth;
        st->fn[k] += !pred && truth;
    }
}

void eval_accumulate(EvalStats *st, Model *m, const RowSource *src, int32_t ignore_index)
{
    const size_t K = model_outputs(&m->shape), n = src->n;
    const size_t pass = m->max_batch < st->max_rows ? m->max_batch : st->max_rows;
    LossOptions opt = loss_options_default();
    bool ids = st->kind == LOSS_BINARY || st->kind == LOSS_SOFTMAX;
    if (ids) opt.ignore_index = ignore_index;
    LossTargets tg = {.y = st->batch.y, .t = st->batch.t};
    for (size_t r0 = 0; r0 < n; r0 += pass) {
        size_t b = n - r0 < pass ? n - r0 : pass;
        rowsource_read_batch(src, r0, b, &st->batch);
        const float *z = model_forward_input(m, st->batch.in, b);
        LossTotals tot = {0};
        loss_compute(st->kind, NULL, NULL, &tot, z, tg, b, K, &opt);
        if (st->multilabel) count_labels(st, z, b, K);
        else
            for (size_t i = 0; i < b; i++) count_row(st, z, i, K, opt.ignore_index);
        exact_pair_add(st->loss_hi, st->loss_lo, tot.sum);
        *st->loss_weight += tot.weight;
        *st->rows += (double)b;
    }
}

void eval_stats_allreduce(EvalStats *st, const Comm *comm)
{
    comm_allreduce_sum_double(comm, st->buf, st->len);
}

double eval_loss(const EvalStats *st)
{
    return *st->loss_weight > 0 ? exact_pair_value(*st->loss_hi, *st->loss_lo) / *st->loss_weight
                                : NAN;
}
double eval_accuracy(const EvalStats *st)
{
    return *st->decisions > 0 ? *st->correct / *st->decisions : NAN;
}

void eval_class_scores(const EvalStats *st, size_t k, EvalScores *out)
{
    double tp, fp, fn;
    if (st->multilabel) {
        tp = st->tp[k];
        fp = st->fp[k];
        fn = st->fn[k];
    } else {
        double predicted = 0.0, actual = 0.0;
        for (size_t i = 0; i < st->K; i++) {
            predicted += st->confusion[i * st->K + k];
            actual += st->confusion[k * st->K + i];
        }
        tp = st->confusion[k * st->K + k];
        fp = predicted - tp;
        fn = actual - tp;
    }
    /* a class nobody predicted and nobody has scores 1 (nothing to miss) */
    out->precision = tp + fp > 0 ? tp / (tp + fp) : (fn > 0 ? 0.0 : 1.0);
    out->recall = tp + fn > 0 ? tp / (tp + fn) : (fp > 0 ? 0.0 : 1.0);
    double den = 2 * tp + fp + fn;
    out->f1 = den > 0 ? 2 * tp / den : 1.0;
    out->support = tp + fn;
}

/* Whether class k counts in the macro averages: for class ids, as scikit-learn's default,
 * only classes that occur in the labels or the predictions (a class the model can output
 * but nobody has and nobody predicted, such as an ignored label's slot, says nothing);
 * every label of a multi-label model counts. */
static bool in_macro(const EvalStats *st, size_t k)
{
    if (st->multilabel) return true;
    for (size_t i = 0; i < st->K; i++)
        if (st->confusion[i * st->K + k] > 0 || st->confusion[k * st->K + i] > 0) return true;
    return false;
}

/* Macro precision, recall and F1 over the classes in_macro; NAN when there are none. */
static void eval_macro(const EvalStats *st, double *p, double *r, double *f1)
{
    double sp = 0.0, sr = 0.0, sf = 0.0, n = 0.0;
    for (size_t k = 0; st->buf && k < st->K; k++) {
        if (!in_macro(st, k)) continue;
        EvalScores sc;
        eval_class_scores(st, k, &sc);
        sp += sc.precision;
        sr += sc.recall;
        sf += sc.f1;
        n += 1.0;
    }
    *p = n > 0 ? sp / n : NAN;
    *r = n > 0 ? sr / n : NAN;
    *f1 = n > 0 ? sf / n : NAN;
}

double eval_macro_f1(const EvalStats *st)
{
    double p, r, f1;
    eval_macro(st, &p, &r, &f1);
    return f1;
}

/* ---- loading a model and a split ------------------------------------------------- */

/* Whether the split's layout fits the model: features and targets (model_loss_kind). */
static Status check_fit(const ModelFile *mf, const DatasetInfo *info, const char *model_path,
                        const char *spec, LossKind *kind)
{
    const ModelShape *s = &mf->shape;
    char err[512];
    if (info->d != s->sizes[0]) {
        log_error0("%s: the data have D = %zu features but the model %s expects %zu", spec,
                   info->d, model_path, s->sizes[0]);
        return XT_ERR_USAGE;
    }
    TargetKind tk = info->has_y ? info->target : s->head == HEAD_SOFTMAX ? TARGET_CLASS
                                 : s->type == MODEL_LOGISTIC        ? TARGET_CLASS
                                                                    : TARGET_DENSE;
    if (model_loss_kind(s->type, s->head, tk, kind, err, sizeof err) != XT_OK) {
        log_error0("%s with the model %s: %s", spec, model_path, err);
        return XT_ERR_USAGE;
    }
    char tfile[XT_PATH_MAX], tgroup[256];
    if (!info->group_given && mf->train_split[0] &&
        dataset_parse_spec(mf->train_split, tfile, sizeof tfile, tgroup, sizeof tgroup, err,
                           sizeof err) == XT_OK &&
        dataset_same_file(tfile, info->file)) {
        log_error0("--data %s names the file the model was trained on without a group, so it "
                   "would mean %s:%s (the model's training split is %s); name the split, e.g. "
                   "%s:/test", spec, info->file, info->group, mf->train_split, info->file);
        return XT_ERR_USAGE;
    }
    if (info->has_y && info->target == TARGET_DENSE && info->k_dense != model_outputs(s)) {
        log_error0("%s: y has K = %zu columns but the model %s has %zu outputs", spec,
                   info->k_dense, model_path, model_outputs(s));
        return XT_ERR_USAGE;
    }
    return XT_OK;
}

/* Labels stored as names (strings, categories) are ids in the data's own class list: it
 * must be the model's. Local (rank 0 prints). */
static Status check_names(const ModelFile *mf, const Dataset *ds, const char *model_path,
                          const char *spec)
{
    if (!ds->info.has_y || ds->info.y_labels == LABELS_IDS || !ds->class_names ||
        !mf->class_names)
        return XT_OK;
    bool same = ds->n_class_names == mf->n_class_names;
    for (size_t c = 0; same && c < mf->n_class_names; c++)
        same = !strcmp(ds->class_names[c], mf->class_names[c]);
    if (same) return XT_OK;
    char a[512] = "", b[512] = "";
    for (size_t c = 0; c < ds->n_class_names && strlen(a) + 80 < sizeof a; c++)
        snprintf(a + strlen(a), sizeof a - strlen(a), "%s'%.60s'", c ? ", " : "", ds->class_names[c]);
    for (size_t c = 0; c < mf->n_class_names && strlen(b) + 80 < sizeof b; c++)
        snprintf(b + strlen(b), sizeof b - strlen(b), "%s'%.60s'", c ? ", " : "", mf->class_names[c]);
    log_error0("%s: its labels are the classes %s but the model %s has %s: the class ids would "
               "not mean the same classes", spec, a, model_path, b);
    return XT_ERR_USAGE;
}

/* The data's features must be the model's when both are named (a CSV converted again on
 * its own gets its own categories: the same D, other columns). Local (rank 0 prints). */
static Status check_features(const ModelFile *mf, const Dataset *ds, const char *model_path,
                             const char *spec)
{
    if (!ds->feature_names || !mf->feature_names || ds->n_feature_names != mf->n_feature_names)
        return XT_OK; /* D itself is checked by check_fit */
    for (size_t j = 0; j < mf->n_feature_names; j++) {
        if (!strcmp(ds->feature_names[j], mf->feature_names[j])) continue;
        log_error0("%s: feature %zu is '%.60s' but the model %s was trained on '%.60s' there: "
                   "the columns differ (a CSV converted on its own gets its own categories; "
                   "convert rows to predict as the --test-input of the training conversion)",
                   spec, j, ds->feature_names[j], model_path, mf->feature_names[j]);
        return XT_ERR_USAGE;
    }
    return XT_OK;
}

Status eval_load(const Comm *comm, const char *model_path, const char *spec, size_t batch,
                 double budget, const char *budget_name, bool targets, ModelFile *mf,
                 Dataset *ds, RowSource *src, Model *m, LossKind *kind)
{
    Status st = comm_agree(comm, model_io_load(model_path, mf));
    if (st != XT_OK) return st;
    DatasetInfo info;
    st = dataset_probe(spec, comm, targets, &info);
    if (st != XT_OK) return st;
    if (!targets) info.has_y = false; /* predict: y is not read, whatever it holds */
    st = comm_agree(comm, check_fit(mf, &info, model_path, spec, kind));
    if (st != XT_OK) return st;
    const ModelShape *s = &mf->shape;
    int P = comm_size(comm), r = comm_rank(comm);
    size_t lo, hi; /* whole blocks of `batch` rows: the same forward passes at any P */
    shard_block_range(info.n, batch, P, r, &lo, &hi);
    size_t K = *kind == LOSS_BINARY ? 2 : model_outputs(s);
    char why[1400];
    SourceOptions o = {.mode = STREAM_AUTO,
                       .budget = rowsource_budget(budget, comm_local_size(comm), why, sizeof why),
                       .csr_batches = true, .probs = *kind == LOSS_SOFTMAX_PROBS, .what = spec,
                       .local_ranks = comm_local_size(comm)};
    if (budget > 0) snprintf(why, sizeof why, "%s", budget_name); /* the option given */
    bool streamed = false;
    st = rowsource_open(src, ds, &info, lo, hi, info.target == TARGET_DENSE ? 0 : K, &o, comm,
                        &streamed);
    if (st != XT_OK) return st;
    if (streamed && comm_rank(comm) == 0) {
        char hb[32];
        strutil_human_bytes(o.budget, hb, sizeof hb);
        log_info("memory   %s is read from the file in blocks of %zu rows: its rows do not fit "
                 "the budget of %s per rank (%s)", spec, batch, hb, why);
    }
    st = comm_agree(comm, check_names(mf, ds, model_path, spec) != XT_OK
                              ? XT_ERR_USAGE : check_features(mf, ds, model_path, spec));
    if (st != XT_OK) return st;
    if (mf->normalize != NORM_NONE) rowsource_set_normalization(src, mf->shift, mf->mul);
    size_t cap = hi - lo < batch ? hi - lo : batch;
    return comm_agree(comm, model_init(m, s, cap > 0 ? cap : 1, mf->params));
}

/* ---- the report -------------------------------------------------------------------- */

static void print_confusion(const EvalStats *st, const ModelFile *mf)
{
    size_t K = st->K;
    log_info("confusion matrix (rows: true class, columns: predicted)");
    char line[8192];
    size_t u = (size_t)snprintf(line, sizeof line, "%14s", "");
    for (size_t k = 0; k < K && u < sizeof line; k++)
        u += (size_t)snprintf(line + u, sizeof line - u, " %7zu", k);
    log_info("%s", line);
    for (size_t i = 0; i < K; i++) {
        char name[64] = "";
        if (mf->class_names || mf->label_values) model_io_class_text(mf, i, name, sizeof name);
        u = (size_t)snprintf(line, sizeof line, "%3zu %-10.10s", i, name);
        for (size_t k = 0; k < K && u < sizeof line; k++)
            u += (size_t)snprintf(line + u, sizeof line - u, " %7.0f", st->confusion[i * K + k]);
        log_info("%s", line);
    }
}

static void json_string(FILE *f, const char *v)
{
    fputc('"', f);
    for (const char *p = v; *p; p++) {
        if (*p == '"' || *p == '\\') fputc('\\', f);
        if ((unsigned char)*p < 0x20) fprintf(f, "\\u%04x", (unsigned char)*p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

/* JSON number, or null for NaN/Inf (JSON has neither). */
static void json_number(FILE *f, double v)
{
    if (isfinite(v)) fprintf(f, "%.9g", v);
    else fputs("null", f);
}

static void json_report(FILE *f, const EvalStats *st, const ModelFile *mf, const char *model,
                        const char *data, double auc)
{
    fputs("{\n  \"model\": ", f);
    json_string(f, model);
    fputs(",\n  \"data\": ", f);
    json_string(f, data);
    fprintf(f, ",\n  \"rows\": %.0f,\n  \"loss\": ", *st->rows);
    json_number(f, eval_loss(st));
    fputs(",\n  \"accuracy\": ", f);
    json_number(f, eval_accuracy(st));
    double mp, mr, mf1;
    eval_macro(st, &mp, &mr, &mf1);
    fprintf(f, ",\n  \"per_%s\": [", st->multilabel ? "label" : "class");
    for (size_t k = 0; k < st->K; k++) {
        EvalScores sc;
        eval_class_scores(st, k, &sc);
        fprintf(f, "%s\n    {\"index\": %zu, \"name\": ", k ? "," : "", k);
        if (mf->class_names && k < mf->n_class_names) json_string(f, mf->class_names[k]);
        else fputs("null", f);
        fputs(", \"label\": ", f);
        if (mf->label_values && k < mf->n_label_values) json_string(f, mf->label_values[k]);
        else fputs("null", f);
        fprintf(f, ", \"precision\": %.9g, \"recall\": %.9g, \"f1\": %.9g, \"support\": %.0f}",
                sc.precision, sc.recall, sc.f1, sc.support);
    }
    fprintf(f, "\n  ],\n  \"macro_precision\": %.9g,\n  \"macro_recall\": %.9g,\n"
               "  \"macro_f1\": %.9g", mp, mr, mf1);
    if (st->kind == LOSS_BINARY) {
        fputs(",\n  \"roc_auc\": ", f);
        json_number(f, auc);
    }
    if (!st->multilabel) {
        fprintf(f, ",\n  \"confusion\": [");
        for (size_t i = 0; i < st->K; i++) {
            fprintf(f, "%s\n    [", i ? "," : "");
            for (size_t k = 0; k < st->K; k++)
                fprintf(f, "%s%.0f", k ? ", " : "", st->confusion[i * st->K + k]);
            fprintf(f, "]");
        }
        fprintf(f, "\n  ]");
    }
    fputs("\n}\n", f);
}

/* The report as JSON, to path or to stdout ("-"). Rank 0. */
static Status write_json(const char *path, const EvalStats *st, const ModelFile *mf,
                         const char *model, const char *data, double auc)
{
    if (!strcmp(path, "-")) {
        json_report(stdout, st, mf, model, data, auc);
        return fflush(stdout) == 0 ? XT_OK : XT_ERR_RUNTIME;
    }
    char tmp[XT_PATH_MAX + 32];
    if (fsutil_temp_name(tmp, sizeof tmp, path) != XT_OK) return XT_ERR_USAGE;
    FILE *f = fopen(tmp, "wx");
    if (!f) {
        log_error("cannot write %s: %s", tmp, strerror(errno));
        return XT_ERR_RUNTIME;
    }
    json_report(f, st, mf, model, data, auc);
    bool bad = ferror(f) != 0;
    if (fclose(f) != 0 || bad) {
        log_error("cannot write %s: %s", tmp, strerror(errno));
        remove(tmp);
        return XT_ERR_RUNTIME;
    }
    return fsutil_commit(tmp, path);
}

/* Per class: precision, recall, F1, support; then the macro averages. Rank 0 prints. */
static void print_scores(const EvalStats *st, const ModelFile *mf)
{
    log_info("%-16s %9s %9s %9s %9s", st->multilabel ? "label" : "class", "precision", "recall",
             "f1", "support");
    double mp, mr, mf1;
    eval_macro(st, &mp, &mr, &mf1);
    for (size_t k = 0; k < st->K; k++) {
        EvalScores sc;
        eval_class_scores(st, k, &sc);
        char name[64] = "";
        if (!st->multilabel && (mf->class_names || mf->label_values))
            model_io_class_text(mf, k, name, sizeof name);
        else if (mf->class_names && k < mf->n_class_names)
            snprintf(name, sizeof name, "%s", mf->class_names[k]);
        log_info("%3zu %-12.12s %9.4f %9.4f %9.4f %9.0f", k, name, sc.precision, sc.recall,
                 sc.f1, sc.support);
    }
    log_info("%-16s %9.4f %9.4f %9.4f", "macro average", mp, mr, mf1);
}

/* Ranks the scores (ties share their mean rank) and returns the ROC AUC: the chance that
 * a positive row scores above a negative one (Mann-Whitney). NAN without both classes. */
static int cmp_pair(const void *a, const void *b)
{
    float x = ((const float *)a)[0], y = ((const float *)b)[0];
    return x < y ? -1 : x > y;
}

static double auc_of(float *pairs, size_t n)
{
    qsort(pairs, n, 2 * sizeof(float), cmp_pair);
    double pos = 0.0, rank_sum = 0.0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && pairs[2 * j] == pairs[2 * i]) j++;
        double mean_rank = 0.5 * (double)(i + 1 + j); /* ranks i+1 .. j */
        for (size_t q = i; q < j; q++)
            if (pairs[2 * q + 1] > 0.5f) {
                pos += 1.0;
                rank_sum += mean_rank;
            }
        i = j;
    }
    double neg = (double)n - pos;
    return pos > 0 && neg > 0 ? (rank_sum - pos * (pos + 1) / 2) / (pos * neg) : NAN;
}

/* Binary models: the ROC AUC over every rank's rows (the scores go to rank 0).
 * Collective; the value is rank 0's. */
static Status binary_auc(const Comm *comm, Model *m, const RowSource *src, EvalStats *st,
                         double *auc)
{
    *auc = NAN;
    int P = comm_size(comm), r = comm_rank(comm);
    size_t n = src->n, got = 0, total = 0;
    float *pairs = malloc((n ? n : 1) * 2 * sizeof *pairs), *all = NULL;
    size_t *counts = r == 0 ? malloc((size_t)P * sizeof *counts) : NULL;
    Status st_ = comm_agree(comm, pairs && (r != 0 || counts) ? XT_OK : XT_ERR_RUNTIME);
    for (size_t r0 = 0; st_ == XT_OK && r0 < n; r0 += m->max_batch) {
        size_t b = n - r0 < m->max_batch ? n - r0 : m->max_batch;
        rowsource_read_batch(src, r0, b, &st->batch);
        const float *z = model_forward_input(m, st->batch.in, b);
        for (size_t i = 0; i < b; i++) {
            pairs[2 * got] = z[i];
            pairs[2 * got + 1] = (float)st->batch.y[i];
            got++;
        }
    }
    if (st_ == XT_OK) {
        size_t mine = got * 2 * sizeof(float);
        comm_gather(comm, &mine, counts, sizeof mine);
        for (int q = 0; r == 0 && q < P; q++) total += counts[q];
        if (r == 0) all = malloc(total ? total : 1);
        st_ = comm_agree(comm, r != 0 || all ? XT_OK : XT_ERR_RUNTIME);
    }
    if (st_ == XT_OK) {
        comm_gatherv(comm, pairs, got * 2 * sizeof(float), all, counts);
        if (r == 0) *auc = auc_of(all, total / (2 * sizeof(float)));
    }
    free(pairs);
    free(all);
    free(counts);
    return st_;
}

/* evaluate_run with the name of the option that set the budget, for messages. */
static int evaluate_named(const Comm *comm, const char *model_path, const char *spec,
                          const char *json_path, size_t batch, double budget,
                          const char *budget_name)
{
    ModelFile mf = {0};
    Dataset ds = {0};
    RowSource src = {0};
    Model m = {0};
    EvalStats st = {0};
    LossKind kind;
    double auc = NAN;
    Status s = eval_load(comm, model_path, spec, batch, budget, budget_name, true, &mf, &ds, &src,
                         &m, &kind);
    if (s == XT_OK) s = comm_agree(comm, eval_stats_init(&st, &mf.shape, kind, m.max_batch, &src));
    if (s == XT_OK) {
        /* rows with the label the run ignored are left out, as its validation did */
        eval_accumulate(&st, &m, &src, mf.has_ignore ? (int32_t)mf.ignore_index : LOSS_NO_IGNORE);
        eval_stats_allreduce(&st, comm);
        if (kind == LOSS_BINARY) s = binary_auc(comm, &m, &src, &st, &auc);
    }
    if (s == XT_OK) {
        char desc[256];
        model_shape_describe(&mf.shape, desc, sizeof desc);
        bool quiet = json_path && !strcmp(json_path, "-"); /* stdout is the JSON */
        if (!quiet) {
            log_info("model    %s (%s, epoch %lld)", model_path, desc, (long long)mf.epoch);
            log_info("data     %s (%.0f rows, %d rank(s), %d BLAS thread(s) per rank)", spec,
                     *st.rows, comm_size(comm), linalg_blas_threads());
            if (mf.has_ignore)
                log_info("ignored  rows labelled %lld are left out (the run's loss.ignore_index)",
                         (long long)mf.ignore_index);
            log_info("loss     %.6f", eval_loss(&st));
            log_info("accuracy %.4f", eval_accuracy(&st));
            if (kind == LOSS_BINARY) log_info("ROC AUC  %.4f", auc);
            if (!st.multilabel) print_confusion(&st, &mf);
            print_scores(&st, &mf);
        }
        Status w = XT_OK;
        if (json_path && comm_rank(comm) == 0)
            w = write_json(json_path, &st, &mf, model_path, spec, auc);
        s = comm_agree(comm, w);
    }
    eval_stats_free(&st);
    model_free(&m);
    rowsource_free(&src);
    dataset_free(&ds);
    model_io_free(&mf);
    return (int)s;
}

int evaluate_run(const Comm *comm, const char *model_path, const char *spec,
                 const char *json_path, size_t batch, double budget)
{
    return evaluate_named(comm, model_path, spec, json_path, batch, budget, "data.memory_budget");
}

/* ---- `xentrain eval` ----------------------------------------------------------------- */

#define EVAL_DEFAULT_BATCH 1024
#define EVAL_MAX_BATCH 2147483647.0

int evaluate_main(const Comm *comm, int argc, char **argv)
{
    const char *model = NULL, *data = NULL, *json = NULL, *budget_text = "0";
    size_t batch = EVAL_DEFAULT_BATCH;
    const OptSpec opts[] = {
        {.name = "model", OPT_STRING, &model, "M.h5", "the model file (model.h5 of a run)", .required = true},
        {.name = "data", OPT_STRING, &data, "F.h5:/GROUP", "the split to evaluate", .required = true},
        {.name = "json", OPT_STRING, &json, "OUT.json",
         "also write the report as JSON (- : to stdout, alone)"},
        {.name = "batch-size", OPT_SIZE, &batch, "N", "rows per forward pass (1024)", 1, EVAL_MAX_BATCH},
        {.name = "memory-budget", OPT_STRING, &budget_text, "BYTES",
         "memory per rank for the rows (e.g. 512M, 2G); a split that\ndoes not fit is read "
         "from the file in blocks (0 = auto: 80% of\nthe usable memory over the node's ranks)"},
    };
    OptTable t = {.cmd = "eval", .synopsis = "--model M.h5 --data F.h5[:/group] [options]",
                  .about = "Prints loss, accuracy, the confusion matrix, precision, recall and F1\n"
                           "per class and their macro averages (multi-label: per label), and ROC AUC\n"
                           "for binary models. Ranks evaluate whole blocks of --batch-size rows:\n"
                           "the same figures, bit for bit, at any rank count.",
                  .opts = opts, .n_opts = sizeof opts / sizeof opts[0]};
    bool help = false;
    Status st = opts_parse(&t, argc, argv, &help);
    if (help) {
        if (comm_rank(comm) == 0) opts_print_help(&t, stdout);
        return 0;
    }
    if (st != XT_OK) return (int)st;
    char blas_why[PLAN_WHY];
    plan_apply_blas(blas_why, sizeof blas_why);
    if (json && !strcmp(json, "-")) log_set_quiet(true); /* stdout is the JSON */
    double budget = 0.0;
    if (strutil_parse_bytes(budget_text, &budget)) {
        log_error0("eval: --memory-budget %s is not a byte count (e.g. 0, 512M, 2G)", budget_text);
        return XT_ERR_USAGE;
    }
    return evaluate_named(comm, model, data, json, batch, budget, "--memory-budget");
}
