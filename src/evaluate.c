#include "evaluate.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "fsutil.h"
#include "h5io.h"
#include "log.h"
#include "loss.h"
#include "model_io.h"

Status eval_stats_init(EvalStats *st, const ModelShape *s)
{
    *st = (EvalStats){0};
    st->multilabel = s->head == HEAD_SIGMOID && s->type != MODEL_LOGISTIC;
    st->K = s->type == MODEL_LOGISTIC ? 2 : model_outputs(s);
    st->len = 4 + (st->multilabel ? 3 * st->K : st->K * st->K);
    st->buf = calloc(st->len, sizeof *st->buf);
    if (!st->buf) return XT_ERR_RUNTIME;
    st->loss_sum = st->buf;
    st->rows = st->buf + 1;
    st->correct = st->buf + 2;
    st->decisions = st->buf + 3;
    if (st->multilabel) {
        st->tp = st->buf + 4;
        st->fp = st->tp + st->K;
        st->fn = st->fp + st->K;
    } else {
        st->confusion = st->buf + 4;
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
    *st = (EvalStats){0};
}

void eval_accumulate(EvalStats *st, Model *m, const float *X, const int32_t *y, const float *t,
                     size_t n, int32_t ignore_index)
{
    const ModelShape *s = &m->shape;
    const size_t D = s->sizes[0], K = model_outputs(s);
    LossOptions opt = loss_options_default();
    opt.ignore_index = ignore_index;
    for (size_t r0 = 0; r0 < n; r0 += m->max_batch) {
        size_t b = n - r0 < m->max_batch ? n - r0 : m->max_batch;
        const float *z = model_forward(m, X + r0 * D, b);
        LossTotals tot = {0};
        if (s->type == MODEL_LOGISTIC) {
            loss_binary_xent(NULL, NULL, &tot, z, y + r0, b, &opt);
            for (size_t i = 0; i < b; i++) {
                int32_t yi = y[r0 + i];
                if (yi == ignore_index) continue;
                int32_t pred = z[i] > 0.0f ? 1 : 0;
                *st->correct += pred == yi;
                *st->decisions += 1;
                st->confusion[(size_t)yi * 2 + (size_t)pred] += 1;
            }
        } else if (!st->multilabel) {
            loss_softmax_xent(NULL, NULL, &tot, z, y + r0, b, K, &opt);
            for (size_t i = 0; i < b; i++) {
                int32_t yi = y[r0 + i];
                if (yi == ignore_index) continue;
                const float *zi = z + i * K;
                size_t pred = 0;
                for (size_t k = 1; k < K; k++)
                    if (zi[k] > zi[pred]) pred = k;
                *st->correct += pred == (size_t)yi;
                *st->decisions += 1;
                st->confusion[(size_t)yi * K + pred] += 1;
            }
        } else {
            const float *ti = t + r0 * K;
            loss_sigmoid_xent(NULL, NULL, &tot, z, ti, b, K, &opt);
            for (size_t i = 0; i < b * K; i++) {
                bool pred = z[i] > 0.0f, truth = ti[i] >= 0.5f;
                *st->correct += pred == truth;
                *st->decisions += 1;
                size_t k = i % K;
                st->tp[k] += pred && truth;
                st->fp[k] += pred && !truth;
                st->fn[k] += !pred && truth;
            }
        }
        *st->loss_sum += tot.sum;
        *st->rows += tot.weight;
    }
}

void eval_stats_allreduce(EvalStats *st, const Comm *comm)
{
    comm_allreduce_sum_double(comm, st->buf, st->len);
}

double eval_loss(const EvalStats *st) { return *st->rows > 0 ? *st->loss_sum / *st->rows : NAN; }
double eval_accuracy(const EvalStats *st)
{
    return *st->decisions > 0 ? *st->correct / *st->decisions : NAN;
}

double eval_macro_f1(const EvalStats *st)
{
    if (!st->multilabel) return NAN;
    double f = 0.0;
    for (size_t k = 0; k < st->K; k++) {
        double den = 2 * st->tp[k] + st->fp[k] + st->fn[k];
        f += den > 0 ? 2 * st->tp[k] / den : 1.0;
    }
    return f / (double)st->K;
}

/* ---- subcommands ---- */

typedef struct {
    const char *model, *data, *json, *out;
    int64_t batch;
} EvalArgs;

static int parse_args(int argc, char **argv, EvalArgs *a, bool predict)
{
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"data", required_argument, 0, 'd'},
                                         {"json", required_argument, 0, 'j'},
                                         {"out", required_argument, 0, 'o'},
                                         {"batch-size", required_argument, 0, 'b'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    *a = (EvalArgs){.batch = 1024};
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'm': a->model = optarg; break;
        case 'd': a->data = optarg; break;
        case 'j': a->json = optarg; break;
        case 'o': a->out = optarg; break;
        case 'b': {
            char *end;
            a->batch = strtoll(optarg, &end, 10);
            if (*end || a->batch < 1) {
                log_error0("--batch-size '%s': expected a positive integer", optarg);
                return XT_ERR_USAGE;
            }
            break;
        }
        case 'h':
            log_info("usage: xentrain %s --model M.h5 --data F.h5[:/group] %s[--batch-size N]\n"
                     "  %s", predict ? "predict" : "eval", predict ? "--out P.h5 " : "[--json OUT.json] ",
                     predict ? "writes /probabilities (N,K) float32 and /predicted (class ids, or "
                               "(N,K) 0/1 for multi-label) to P.h5"
                             : "prints loss, accuracy and the confusion matrix (multi-label: "
                               "per-label F1)");
            return -1;
        default:
            log_error0("%s: unknown or incomplete option '%s' (see --help)",
                       predict ? "predict" : "eval", argv[optind - 1]);
            return XT_ERR_USAGE;
        }
    }
    if (optind < argc) {
        log_error0("unexpected argument '%s' (see --help)", argv[optind]);
        return XT_ERR_USAGE;
    }
    if (!a->model || !a->data || (predict && !a->out)) {
        log_error0("%s needs --model and --data%s", predict ? "predict" : "eval",
                   predict ? " and --out" : "");
        return XT_ERR_USAGE;
    }
    return 0;
}

/* Loads the model (every rank) and this rank's balanced share of the split, applying the
 * model's normalisation. Collective (agreed). */
static Status load_for_eval(const Comm *comm, const EvalArgs *a, ModelFile *mf, Dataset *ds,
                            Model *m)
{
    Status st = comm_agree(comm, model_io_load(a->model, mf));
    if (st != XT_OK) return st;
    DatasetInfo info;
    st = dataset_probe(a->data, comm, &info);
    if (st != XT_OK) return st;
    const ModelShape *s = &mf->shape;
    bool multilabel = s->head == HEAD_SIGMOID && s->type != MODEL_LOGISTIC;
    Status local = XT_OK;
    if (info.d != s->sizes[0]) {
        log_error0("%s: the data have D = %zu features but the model %s expects %zu", a->data,
                   info.d, a->model, s->sizes[0]);
        local = XT_ERR_USAGE;
    } else if (multilabel != (info.target == TARGET_DENSE) ||
               (multilabel && info.k_dense != model_outputs(s))) {
        log_error0("%s: targets are %s but the model %s predicts %s with K = %zu", a->data,
                   info.target == TARGET_DENSE ? "(N,K) dense" : "(N,) class ids", a->model,
                   multilabel ? "multi-label outputs" : "classes", model_outputs(s));
        local = XT_ERR_USAGE;
    }
    st = comm_agree(comm, local);
    if (st != XT_OK) return st;
    int P = comm_size(comm), r = comm_rank(comm);
    size_t lo = (size_t)r * info.n / (size_t)P, hi = (size_t)(r + 1) * info.n / (size_t)P;
    size_t K = s->type == MODEL_LOGISTIC ? 2 : model_outputs(s);
    local = dataset_load(ds, &info, lo, hi, multilabel ? 0 : K, comm);
    if (local == XT_OK && mf->normalize != NORM_NONE) dataset_apply_affine(ds, mf->shift, mf->mul);
    if (local == XT_OK) {
        size_t cap = hi - lo < (size_t)a->batch ? hi - lo : (size_t)a->batch;
        local = model_init(m, s, cap > 0 ? cap : 1, 0);
        if (local == XT_OK) memcpy(m->params, mf->params, s->n_params * sizeof *m->params);
    }
    return comm_agree(comm, local);
}

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
        const char *name = mf->class_names && i < mf->n_class_names ? mf->class_names[i] : "";
        u = (size_t)snprintf(line, sizeof line, "%3zu %-10.10s", i, name);
        for (size_t k = 0; k < K && u < sizeof line; k++)
            u += (size_t)snprintf(line + u, sizeof line - u, " %7.0f", st->confusion[i * K + k]);
        log_info("%s", line);
    }
}

static Status write_json(const char *path, const EvalStats *st, const EvalArgs *a)
{
    char tmp[XT_PATH_MAX + 32];
    fsutil_temp_name(tmp, sizeof tmp, path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        log_error("cannot write %s: %s", tmp, strerror(errno));
        return XT_ERR_RUNTIME;
    }
    fprintf(f, "{\n  \"model\": \"%s\",\n  \"data\": \"%s\",\n  \"rows\": %.0f,\n", a->model,
            a->data, *st->rows);
    fprintf(f, "  \"loss\": %.9g,\n  \"accuracy\": %.9g", eval_loss(st), eval_accuracy(st));
    if (st->multilabel) {
        fprintf(f, ",\n  \"macro_f1\": %.9g,\n  \"per_label_f1\": [", eval_macro_f1(st));
        for (size_t k = 0; k < st->K; k++) {
            double den = 2 * st->tp[k] + st->fp[k] + st->fn[k];
            fprintf(f, "%s%.9g", k ? ", " : "", den > 0 ? 2 * st->tp[k] / den : 1.0);
        }
        fprintf(f, "]\n}\n");
    } else {
        fprintf(f, ",\n  \"confusion\": [");
        for (size_t i = 0; i < st->K; i++) {
            fprintf(f, "%s\n    [", i ? "," : "");
            for (size_t k = 0; k < st->K; k++)
                fprintf(f, "%s%.0f", k ? ", " : "", st->confusion[i * st->K + k]);
            fprintf(f, "]");
        }
        fprintf(f, "\n  ]\n}\n");
    }
    if (fclose(f) != 0) {
        log_error("cannot write %s: %s", tmp, strerror(errno));
        remove(tmp);
        return XT_ERR_RUNTIME;
    }
    return fsutil_commit(tmp, path);
}

int evaluate_main(const Comm *comm, int argc, char **argv)
{
    EvalArgs a;
    int rc = parse_args(argc, argv, &a, false);
    if (rc != 0) return rc < 0 ? 0 : rc;
    ModelFile mf = {0};
    Dataset ds = {0};
    Model m = {0};
    EvalStats st = {0};
    Status s = load_for_eval(comm, &a, &mf, &ds, &m);
    if (s == XT_OK) s = comm_agree(comm, eval_stats_init(&st, &mf.shape));
    if (s == XT_OK) {
        eval_accumulate(&st, &m, ds.X, ds.y, ds.t, ds.hi - ds.lo, LOSS_NO_IGNORE);
        eval_stats_allreduce(&st, comm);
        char desc[256];
        model_shape_describe(&mf.shape, desc, sizeof desc);
        log_info("model    %s (%s, epoch %lld)", a.model, desc, (long long)mf.epoch);
        log_info("data     %s (%.0f rows, %d ranks)", a.data, *st.rows, comm_size(comm));
        log_info("loss     %.6f", eval_loss(&st));
        log_info("accuracy %.4f", eval_accuracy(&st));
        if (st.multilabel) log_info("macro F1 %.4f", eval_macro_f1(&st));
        else print_confusion(&st, &mf);
        Status w = XT_OK;
        if (a.json && comm_rank(comm) == 0) w = write_json(a.json, &st, &a);
        s = comm_agree(comm, w);
    }
    eval_stats_free(&st);
    model_free(&m);
    dataset_free(&ds);
    model_io_free(&mf);
    return (int)s;
}

int predict_main(const Comm *comm, int argc, char **argv)
{
    EvalArgs a;
    int rc = parse_args(argc, argv, &a, true);
    if (rc != 0) return rc < 0 ? 0 : rc;
    ModelFile mf = {0};
    Dataset ds = {0};
    Model m = {0};
    Status s = load_for_eval(comm, &a, &mf, &ds, &m);
    float *prob = NULL, *all_prob = NULL;
    int32_t *pred = NULL, *all_pred = NULL;
    size_t *counts = NULL;
    if (s != XT_OK) goto cleanup;
    const ModelShape *sh = &mf.shape;
    size_t K = model_outputs(sh), n = ds.hi - ds.lo, N = ds.info.n;
    bool ml = sh->head == HEAD_SIGMOID && sh->type != MODEL_LOGISTIC;
    size_t pk = ml ? K : 1; /* predicted values per row */
    int P = comm_size(comm), r = comm_rank(comm);
    prob = malloc((n * K + 1) * sizeof *prob);
    pred = malloc((n * pk + 1) * sizeof *pred);
    Status local = prob && pred ? XT_OK : XT_ERR_RUNTIME;
    if (r == 0 && local == XT_OK) {
        all_prob = malloc((N * K + 1) * sizeof *all_prob);
        all_pred = malloc((N * pk + 1) * sizeof *all_pred);
        counts = malloc((size_t)P * sizeof *counts);
        if (!all_prob || !all_pred || !counts) {
            log_error("out of memory for %zu predictions", N);
            local = XT_ERR_RUNTIME;
        }
    }
    s = comm_agree(comm, local);
    if (s != XT_OK) goto cleanup;
    for (size_t r0 = 0; r0 < n; r0 += m.max_batch) {
        size_t b = n - r0 < m.max_batch ? n - r0 : m.max_batch;
        const float *z = model_forward(&m, ds.X + r0 * sh->sizes[0], b);
        for (size_t i = 0; i < b; i++) {
            const float *zi = z + i * K;
            float *pi = prob + (r0 + i) * K;
            if (sh->head == HEAD_SOFTMAX) {
                double mx = zi[0], sum = 0;
                size_t best = 0;
                for (size_t k = 1; k < K; k++)
                    if (zi[k] > zi[best]) best = k;
                mx = zi[best];
                for (size_t k = 0; k < K; k++) sum += exp((double)zi[k] - mx);
                for (size_t k = 0; k < K; k++) pi[k] = (float)(exp((double)zi[k] - mx) / sum);
                pred[r0 + i] = (int32_t)best;
            } else {
                for (size_t k = 0; k < K; k++) {
                    pi[k] = (float)loss_sigmoid((double)zi[k]);
                    pred[(r0 + i) * pk + (ml ? k : 0)] = zi[k] > 0.0f;
                }
            }
        }
    }
    for (int q = 0; q < P && r == 0; q++)
        counts[q] = ((size_t)(q + 1) * N / (size_t)P - (size_t)q * N / (size_t)P) * K * sizeof(float);
    comm_gatherv(comm, prob, n * K * sizeof(float), all_prob, counts);
    for (int q = 0; q < P && r == 0; q++) counts[q] = counts[q] / (K * sizeof(float)) * pk * sizeof(int32_t);
    comm_gatherv(comm, pred, n * pk * sizeof(int32_t), all_pred, counts);
    local = XT_OK;
    if (r == 0) {
        H5File *f = NULL;
        size_t dp[2] = {N, K}, dq[2] = {N, pk};
        local = h5io_create_atomic(a.out, &f);
        if (local == XT_OK) local = h5io_write(f, "/probabilities", H5IO_F32, 2, dp, all_prob, 0);
        if (local == XT_OK) local = h5io_write(f, "/predicted", H5IO_I32, ml ? 2 : 1, dq, all_pred, 0);
        if (local == XT_OK) local = h5io_attr_write_str(f, "/", "model", a.model);
        if (local == XT_OK) local = h5io_attr_write_str(f, "/", "data", a.data);
        if (local == XT_OK) local = h5io_commit(&f);
        h5io_close(&f);
        if (local == XT_OK) log_info("wrote %zu predictions to %s", N, a.out);
    }
    s = comm_agree(comm, local);
cleanup:
    free(prob);
    free(pred);
    free(all_prob);
    free(all_pred);
    free(counts);
    model_free(&m);
    dataset_free(&ds);
    model_io_free(&mf);
    return (int)s;
}
