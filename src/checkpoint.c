#include "checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5io.h"
#include "log.h"

#define CONFIG_TEXT_MAX (1 << 20)

static Status fault_injected(const char *path)
{
    /* Test-only: XT_FAULT_CHECKPOINT=fail makes the write fail half-way, as a full
     * disk would, after the temporary file has been partly written. */
    const char *f = getenv("XT_FAULT_CHECKPOINT");
    if (f && !strcmp(f, "fail")) {
        log_error("writing %s failed (injected fault XT_FAULT_CHECKPOINT=fail)", path);
        return XT_ERR_RUNTIME;
    }
    return XT_OK;
}

Status checkpoint_save(const char *path, const Checkpoint *ck)
{
    const CheckpointState *s = &ck->state;
    H5File *f = NULL;
    Status st = h5io_create_atomic(path, &f);
    if (st == XT_OK) st = model_io_write_group(f, "/model", &ck->model);
    if (st == XT_OK) st = fault_injected(path);
    if (st == XT_OK && ck->best.params) st = model_io_write_group(f, "/best", &ck->best);
    if (st == XT_OK && ck->velocity) {
        size_t d[1] = {ck->model.shape.n_params};
        st = h5io_create_group(f, "/optimizer");
        if (st == XT_OK) st = h5io_write(f, "/optimizer/velocity", H5IO_F32, 1, d, ck->velocity, 0);
    }
    const char *g = "/state";
    if (st == XT_OK) st = h5io_create_group(f, g);
    if (st == XT_OK) st = h5io_attr_write_str(f, g, "format", "xentrain-checkpoint");
    if (st == XT_OK) st = h5io_attr_write_i64(f, g, "format_version", CHECKPOINT_FORMAT_VERSION);
    if (st == XT_OK) st = h5io_attr_write_i64(f, g, "epoch", s->epoch);
    if (st == XT_OK) st = h5io_attr_write_i64(f, g, "step_in_epoch", s->step_in_epoch);
    if (st == XT_OK) st = h5io_attr_write_i64(f, g, "step", (int64_t)s->step);
    if (st == XT_OK) st = h5io_attr_write_f64(f, g, "loss_sum", s->loss_sum);
    if (st == XT_OK) st = h5io_attr_write_f64(f, g, "weight_sum", s->weight_sum);
    if (st == XT_OK) st = h5io_attr_write_f64(f, g, "rows_seen", s->rows_seen);
    if (st == XT_OK) st = h5io_attr_write_f64(f, g, "es_best", s->es_best);
    if (st == XT_OK) st = h5io_attr_write_i64(f, g, "es_best_epoch", s->es_best_epoch);
    if (st == XT_OK) st = h5io_attr_write_i64(f, g, "es_bad_epochs", s->es_bad_epochs);
    if (st == XT_OK) st = h5io_attr_write_i64(f, g, "finished", s->finished);
    if (st == XT_OK) st = h5io_attr_write_i64(f, g, "final_action", s->final_action);
    if (st == XT_OK) st = h5io_attr_write_i64(f, g, "ranks", s->ranks);
    if (st == XT_OK) st = h5io_attr_write_i64(f, g, "seed", (int64_t)s->seed);
    if (st == XT_OK) st = h5io_attr_write_str(f, g, "config", ck->config_text ? ck->config_text : "");
    if (st == XT_OK) return h5io_commit(&f);
    h5io_close(&f); /* discards the temporary file; the old checkpoint stays */
    log_error("checkpoint not written; %s keeps the previous checkpoint (if any)", path);
    return st;
}

Status checkpoint_load(const char *path, Checkpoint *ck)
{
    *ck = (Checkpoint){0};
    CheckpointState *s = &ck->state;
    H5File *f = NULL;
    Status st = h5io_open_read(path, NULL, &f);
    if (st != XT_OK) return st;
    const char *g = "/state";
    char fmt[64] = "";
    int64_t ver = 0, step = 0, seed = 0;
    if (!h5io_exists(f, g) || !h5io_attr_exists(f, g, "format") ||
        h5io_attr_read_str(f, g, "format", fmt, sizeof fmt) != XT_OK ||
        strcmp(fmt, "xentrain-checkpoint") != 0) {
        log_error("%s: not an xentrain checkpoint (no /state group with format "
                  "\"xentrain-checkpoint\")", path);
        st = XT_ERR_USAGE;
        goto cleanup;
    }
    if ((st = h5io_attr_read_i64(f, g, "format_version", &ver)) != XT_OK) goto cleanup;
    if (ver < 1 || ver > CHECKPOINT_FORMAT_VERSION) {
        log_error("%s: checkpoint format version %lld; this xentrain %s reads version %d%s", path,
                  (long long)ver, XT_VERSION, CHECKPOINT_FORMAT_VERSION,
                  ver > CHECKPOINT_FORMAT_VERSION ? " (upgrade xentrain)" : "");
        st = XT_ERR_USAGE;
        goto cleanup;
    }
    struct {
        const char *name;
        int64_t *v;
    } ints[] = {{"epoch", &s->epoch},           {"step_in_epoch", &s->step_in_epoch},
                {"step", &step},                {"es_best_epoch", &s->es_best_epoch},
                {"es_bad_epochs", &s->es_bad_epochs}, {"finished", &s->finished},
                {"final_action", &s->final_action},   {"ranks", &s->ranks},
                {"seed", &seed}};
    for (size_t i = 0; i < sizeof ints / sizeof *ints && st == XT_OK; i++)
        st = h5io_attr_read_i64(f, g, ints[i].name, ints[i].v);
    struct {
        const char *name;
        double *v;
    } dbls[] = {{"loss_sum", &s->loss_sum}, {"weight_sum", &s->weight_sum},
                {"rows_seen", &s->rows_seen}, {"es_best", &s->es_best}};
    for (size_t i = 0; i < sizeof dbls / sizeof *dbls && st == XT_OK; i++)
        st = h5io_attr_read_f64(f, g, dbls[i].name, dbls[i].v);
    if (st != XT_OK) goto cleanup;
    s->step = (uint64_t)step;
    s->seed = (uint64_t)seed;
    if (s->epoch < 1 || s->step_in_epoch < 0) {
        log_error("%s: invalid state (epoch %lld, step_in_epoch %lld)", path, (long long)s->epoch,
                  (long long)s->step_in_epoch);
        st = XT_ERR_USAGE;
        goto cleanup;
    }
    ck->config_text = malloc(CONFIG_TEXT_MAX);
    if (!ck->config_text) {
        st = XT_ERR_RUNTIME;
        goto cleanup;
    }
    if ((st = h5io_attr_read_str(f, g, "config", ck->config_text, CONFIG_TEXT_MAX)) != XT_OK)
        goto cleanup;
    if ((st = model_io_read_group(f, "/model", &ck->model)) != XT_OK) goto cleanup;
    if (h5io_exists(f, "/best") && (st = model_io_read_group(f, "/best", &ck->best)) != XT_OK)
        goto cleanup;
    if (h5io_exists(f, "/optimizer/velocity")) {
        H5ioInfo info;
        size_t n = ck->model.shape.n_params;
        if ((st = h5io_info(f, "/optimizer/velocity", &info)) != XT_OK) goto cleanup;
        if (info.rank != 1 || info.dims[0] != n) {
            log_error("%s:/optimizer/velocity: expected (%zu) values, got rank %d with %zu", path, n,
                      info.rank, info.dims[0]);
            st = XT_ERR_USAGE;
            goto cleanup;
        }
        ck->velocity = malloc(n * sizeof *ck->velocity);
        if (!ck->velocity) st = XT_ERR_RUNTIME;
        else st = h5io_read_rows_float(f, "/optimizer/velocity", 0, n, ck->velocity);
    }
cleanup:
    h5io_close(&f);
    if (st != XT_OK) checkpoint_free(ck);
    return st;
}

void checkpoint_free(Checkpoint *ck)
{
    model_io_free(&ck->model);
    model_io_free(&ck->best);
    free(ck->velocity);
    free(ck->config_text);
    *ck = (Checkpoint){0};
}

/* The value of section.key in resolved INI text, into out ("" when absent). */
static void ini_lookup(const char *text, const char *section, const char *key, char *out,
                       size_t len)
{
    out[0] = '\0';
    char cur[64] = "";
    const char *p = text;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char line[2048];
        if (n >= sizeof line) n = sizeof line - 1;
        memcpy(line, p, n);
        line[n] = '\0';
        p = e ? e + 1 : p + n;
        if (line[0] == '[') {
            sscanf(line, "[%63[^]]", cur);
            continue;
        }
        if (strcmp(cur, section) != 0 || line[0] == ';' || line[0] == '#') continue;
        char k[128];
        int off = 0;
        if (sscanf(line, " %127[^= ] = %n", k, &off) == 1 && off > 0 && !strcmp(k, key)) {
            size_t used = (size_t)snprintf(out, len, "%s", line + off);
            /* long lists continue on indented lines */
            while (*p == ' ' || *p == '\t') {
                const char *e2 = strchr(p, '\n');
                size_t n2 = e2 ? (size_t)(e2 - p) : strlen(p);
                while (n2 > 0 && (*p == ' ' || *p == '\t')) {
                    p++;
                    n2--;
                }
                if (used < len) used += (size_t)snprintf(out + used, len - used, "%.*s", (int)n2, p);
                p = e2 ? e2 + 1 : p + n2;
            }
            return;
        }
    }
}

size_t checkpoint_config_diff(const char *saved, const char *current, char *diff, size_t len)
{
    static const char *const keys[][2] = {
        {"data", "train"},          {"data", "normalize"},     {"data", "virtual_shards"},
        {"model", "type"},          {"model", "hidden"},       {"model", "activation"},
        {"model", "head"},          {"model", "classes"},      {"loss", "label_smoothing"},
        {"loss", "class_weights"},  {"loss", "pos_weight"},    {"loss", "ignore_index"},
        {"train", "batch_size"},    {"train", "batch_per_rank"}, {"train", "seed"},
        {"train", "shuffle"},       {"optim", "momentum"}};
    size_t n = 0, used = 0;
    if (len) diff[0] = '\0';
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        char a[1024], b[1024];
        ini_lookup(saved, keys[i][0], keys[i][1], a, sizeof a);
        ini_lookup(current, keys[i][0], keys[i][1], b, sizeof b);
        if (!strcmp(a, b)) continue;
        n++;
        if (used < len)
            used += (size_t)snprintf(diff + used, len - used, "%s%s.%s: '%s' -> '%s'",
                                     n > 1 ? "; " : "", keys[i][0], keys[i][1], a, b);
    }
    return n;
}
