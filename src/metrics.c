#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "fsutil.h"
#include "log.h"

/* Longest metrics.csv line kept when a resumed run rewrites the file. */
#define METRICS_LINE_MAX 4096

static const char *HEADER = "epoch,train_loss,val_loss,val_accuracy,step,lr,samples_per_s,"
                            "compute_s,allreduce_s,io_s,val_s,epoch_s,val_f1,"
                            "forward_s,loss_s,backward_s,optim_s,best,train_accuracy,reduce_s,"
                            "objective,grad_norm";

Status metrics_open(Metrics *m, const char *path, bool append)
{
    *m = (Metrics){0};
    snprintf(m->path, sizeof m->path, "%s", path);
    m->f = fopen(path, append ? "a" : "w");
    if (!m->f) {
        log_error("cannot open %s for writing: %s", path, strerror(errno));
        return XT_ERR_RUNTIME;
    }
    if (!append || ftell(m->f) == 0) fprintf(m->f, "%s\n", HEADER);
    if (fflush(m->f) != 0) {
        log_error("cannot write %s: %s", path, strerror(errno));
        return XT_ERR_RUNTIME;
    }
    return XT_OK;
}

Status metrics_open_resume(Metrics *m, const char *path, int64_t epoch)
{
    FILE *in = fopen(path, "r");
    if (in) {
        char tmp[XT_PATH_MAX + 48], line[METRICS_LINE_MAX];
        fsutil_temp_name(tmp, sizeof tmp, path);
        FILE *out = fopen(tmp, "w");
        bool ok = out != NULL, first = true;
        while (ok && fgets(line, sizeof line, in)) {
            long long e = 0;
            if (first) ok = fprintf(out, "%s\n", HEADER) >= 0;
            else if (sscanf(line, "%lld,", &e) == 1 && e < epoch) ok = fputs(line, out) >= 0;
            first = false;
        }
        fclose(in);
        if (out) ok = (fclose(out) == 0) && ok;
        if (!ok || fsutil_commit(tmp, path) != XT_OK) {
            log_error("cannot rewrite %s for the resumed run", path);
            remove(tmp);
            return XT_ERR_RUNTIME;
        }
    }
    return metrics_open(m, path, true);
}

static void opt_num(FILE *f, bool have, double v, int digits)
{
    if (have && isfinite(v)) fprintf(f, ",%.*g", digits, v);
    else if (have) fprintf(f, ",%s", isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf"));
    else fprintf(f, ",");
}

Status metrics_write(Metrics *m, const MetricsRow *r)
{
    fprintf(m->f, "%lld,%.17g", (long long)r->epoch, r->train_loss);
    opt_num(m->f, r->has_val, r->val_loss, 17);
    opt_num(m->f, r->has_val, r->val_accuracy, 9);
    fprintf(m->f, ",%lld,%.9g,%.1f,%.4f,%.4f,%.4f,%.4f,%.4f", (long long)r->step, r->lr,
            r->samples_per_s, r->compute_s, r->allreduce_s, r->io_s, r->val_s, r->epoch_s);
    opt_num(m->f, r->has_val && !isnan(r->val_f1), r->val_f1, 9);
    fprintf(m->f, ",%.4f,%.4f,%.4f,%.4f,%d", r->forward_s, r->loss_s, r->backward_s, r->optim_s,
            r->best ? 1 : 0);
    opt_num(m->f, true, r->train_accuracy, 9);
    fprintf(m->f, ",%.4f", r->reduce_s);
    opt_num(m->f, !isnan(r->objective), r->objective, 17);
    opt_num(m->f, !isnan(r->grad_norm), r->grad_norm, 9);
    fputc('\n', m->f);
    if (fflush(m->f) != 0 || ferror(m->f)) {
        log_error("cannot write %s: %s", m->path, strerror(errno));
        return XT_ERR_RUNTIME;
    }
    return XT_OK;
}

void metrics_close(Metrics *m)
{
    if (m->f) fclose(m->f);
    m->f = NULL;
}

const char *metrics_line_header(void)
{
    return "epoch  train_loss  train_acc  val_loss  val_acc        lr  samples/s  compute  "
           "allred    io     val";
}

void metrics_format_line(const MetricsRow *r, char *buf, size_t len)
{
    char vl[16] = "       -", va[16] = "      -";
    if (r->has_val) {
        snprintf(vl, sizeof vl, "%8.5f", r->val_loss);
        snprintf(va, sizeof va, "%7.4f", r->val_accuracy);
    }
    int used = snprintf(buf, len, "%5lld  %10.6f  %9.4f  %s  %s  %8.2e  %9.0f  %6.2fs %6.2fs "
                        "%5.2fs %6.2fs", (long long)r->epoch, r->train_loss, r->train_accuracy,
                        vl, va, r->lr, r->samples_per_s, r->compute_s, r->allreduce_s, r->io_s,
                        r->val_s);
    if (!isnan(r->objective) && used > 0 && (size_t)used < len) /* a full-batch solver's */
        snprintf(buf + used, len - (size_t)used, "  objective %.12g |g| %.2e (pass %lld)",
                 r->objective, r->grad_norm, (long long)r->step);
}
