#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

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
    struct stat sb;
    if (!m->f || fstat(fileno(m->f), &sb) != 0) {
        log_error("cannot open %s for writing: %s", path, strerror(errno));
        return XT_ERR_RUNTIME;
    }
    m->dev = (unsigned long long)sb.st_dev;
    m->ino = (unsigned long long)sb.st_ino;
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
        if (fsutil_temp_name(tmp, sizeof tmp, path) != XT_OK) {
            fclose(in);
            return XT_ERR_USAGE;
        }
        FILE *out = fopen(tmp, "wx");
        bool ok = out != NULL, first = true;
        while (ok && fgets(line, sizeof line, in)) {
            long long e = 0;
            int used = 0;
            /* a whole row: "EPOCH," ... "\n"; a killed run's half row (no newline) is
             * dropped, or the next row would be glued to it ("1" + "13,..." = epoch 113) */
            bool whole = strchr(line, '\n') != NULL &&
                         sscanf(line, "%lld,%n", &e, &used) == 1 && used > 0;
            if (first) ok = fprintf(out, "%s\n", HEADER) >= 0;
            else if (whole && e < epoch) ok = fputs(line, out) >= 0;
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

/* Appends to buf at *used (the row is built whole, then written once). */
static void put(char *buf, size_t len, size_t *used, const char *fmt, ...) XT_PRINTF(4, 5);
static void put(char *buf, size_t len, size_t *used, const char *fmt, ...)
{
    if (*used >= len) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *used, len - *used, fmt, ap);
    va_end(ap);
    *used = n < 0 ? len : *used + (size_t)n;
}

static void opt_num(char *buf, size_t len, size_t *used, bool have, double v, int digits)
{
    if (have && isfinite(v)) put(buf, len, used, ",%.*g", digits, v);
    else if (have) put(buf, len, used, ",%s", isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf"));
    else put(buf, len, used, ",");
}

/* Whether m->path is still the file m->f writes to (a purge of run.dir deletes it, and a
 * recreated directory holds another or none: rows written then are lost unseen). */
static Status check_same_file(const Metrics *m)
{
    struct stat sb;
    if (stat(m->path, &sb) != 0 || (unsigned long long)sb.st_dev != m->dev ||
        (unsigned long long)sb.st_ino != m->ino) {
        log_error("%s was %s while this run was writing it (was run.dir deleted or purged?); "
                  "stopping: the rows it held are lost (the checkpoint, if it survived, "
                  "resumes the run)", m->path, errno == ENOENT ? "deleted" : "replaced");
        return XT_ERR_RUNTIME;
    }
    return XT_OK;
}

Status metrics_write(Metrics *m, const MetricsRow *r)
{
    char row[1024];
    size_t used = 0, len = sizeof row;
    put(row, len, &used, "%lld,%.17g", (long long)r->epoch, r->train_loss);
    opt_num(row, len, &used, r->has_val, r->val_loss, 17);
    opt_num(row, len, &used, r->has_val, r->val_accuracy, 9);
    put(row, len, &used, ",%lld,%.9g,%.1f,%.4f,%.4f,%.4f,%.4f,%.4f", (long long)r->step, r->lr,
        r->samples_per_s, r->compute_s, r->allreduce_s, r->io_s, r->val_s, r->epoch_s);
    opt_num(row, len, &used, r->has_val && !isnan(r->val_f1), r->val_f1, 9);
    put(row, len, &used, ",%.4f,%.4f,%.4f,%.4f,%d", r->forward_s, r->loss_s, r->backward_s,
        r->optim_s, r->best ? 1 : 0);
    opt_num(row, len, &used, true, r->train_accuracy, 9);
    put(row, len, &used, ",%.4f", r->reduce_s);
    opt_num(row, len, &used, !isnan(r->objective), r->objective, 17);
    opt_num(row, len, &used, !isnan(r->grad_norm), r->grad_norm, 9);
    put(row, len, &used, "\n");
    XT_ASSERT(used < len);
    errno = 0;
    if (check_same_file(m) != XT_OK) return XT_ERR_RUNTIME;
    if (fputs(row, m->f) < 0 || fflush(m->f) != 0 || ferror(m->f)) {
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
