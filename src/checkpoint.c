#include "checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "h5io.h"
#include "log.h"

#define CONFIG_TEXT_MAX (1 << 20)
#define STATE_GROUP "/state"
#define OPTIMIZER_GROUP "/optimizer"
#define EARLY_STOP_GROUP "/early_stopping"
#define KIND_ATTR "kind"
#define OBJ_PATH_MAX 256

/* ---- named state ------------------------------------------------------------------ */

static Status save_list(H5File *f, const char *group, const StateList *l)
{
    char p[OBJ_PATH_MAX];
    Status st = h5io_create_group(f, group);
    if (st == XT_OK) st = h5io_attr_write_str(f, group, KIND_ATTR, l->kind);
    for (size_t i = 0; i < l->n_arrays && st == XT_OK; i++) {
        size_t d[1] = {l->arrays[i].n};
        snprintf(p, sizeof p, "%s/%s", group, l->arrays[i].name);
        st = model_io_write_floats(f, p, 1, d, l->arrays[i].data);
    }
    for (size_t i = 0; i < l->n_scalars && st == XT_OK; i++) {
        const StateScalar *s = &l->scalars[i];
        st = s->type == STATE_F64 ? h5io_attr_write_f64(f, group, s->name, *(double *)s->value)
                                  : h5io_attr_write_i64(f, group, s->name, *(int64_t *)s->value);
    }
    return st;
}

/* Refuses state of another kind; version 1 files knew only SGD and had no kind. */
static Status check_kind(H5File *f, const char *group, const StateList *l, int64_t version)
{
    char kind[64] = "sgd";
    if (version >= 2) {
        if (!h5io_exists(f, group) || !h5io_attr_exists(f, group, KIND_ATTR)) {
            log_error("%s: no %s state (group %s with a kind attribute)", h5io_path(f), l->kind,
                      group);
            return XT_ERR_USAGE;
        }
        Status st = h5io_attr_read_str(f, group, KIND_ATTR, kind, sizeof kind);
        if (st != XT_OK) return st;
    } else if (strcmp(group, OPTIMIZER_GROUP) != 0) {
        return XT_OK;
    }
    if (strcmp(kind, l->kind) != 0) {
        log_error("%s: the checkpoint holds %s state '%s', this run uses '%s' (use another "
                  "run.dir, or train.resume = never to start over)", h5io_path(f),
                  strcmp(group, OPTIMIZER_GROUP) ? "module" : "optimiser", kind, l->kind);
        return XT_ERR_USAGE;
    }
    return XT_OK;
}

static bool listed(const StateList *l, const char *name)
{
    for (size_t i = 0; i < l->n_arrays; i++)
        if (!strcmp(l->arrays[i].name, name)) return true;
    return false;
}

/* The arrays: every listed one present with its size, nothing else in the group. */
static Status restore_arrays(H5File *f, const char *group, StateList *l)
{
    char p[OBJ_PATH_MAX];
    for (size_t i = 0; i < l->n_arrays; i++) {
        StateArray *a = &l->arrays[i];
        H5ioInfo info;
        snprintf(p, sizeof p, "%s/%s", group, a->name);
        if (!h5io_exists(f, p)) {
            log_error("%s: no %s (the %s state of this run has it)", h5io_path(f), p, l->kind);
            return XT_ERR_USAGE;
        }
        Status st = h5io_info(f, p, &info);
        if (st != XT_OK) return st;
        if (info.rank != 1 || info.dims[0] != a->n) {
            log_error("%s:%s: expected (%zu) values, got rank %d with %zu", h5io_path(f), p,
                      a->n, info.rank, info.dims[0]);
            return XT_ERR_USAGE;
        }
        if ((st = model_io_read_floats(f, p, 1, &a->n, a->data)) != XT_OK) return st;
    }
    char **names = NULL;
    size_t n = 0;
    Status st = h5io_exists(f, group) ? h5io_list(f, group, &names, &n) : XT_OK;
    for (size_t i = 0; i < n && st == XT_OK; i++)
        if (!listed(l, names[i])) {
            log_error("%s: %s/%s is not part of this run's %s state (another optimiser setting "
                      "wrote it?)", h5io_path(f), group, names[i], l->kind);
            st = XT_ERR_USAGE;
        }
    h5io_strs_free(names, n);
    return st;
}

/* The scalars, from the group's attributes; version 1 kept early stopping's as
 * /state attributes es_<name>. */
static Status restore_scalars(H5File *f, const char *group, StateList *l, int64_t version)
{
    bool v1_es = version < 2 && !strcmp(group, EARLY_STOP_GROUP);
    const char *owner = v1_es ? STATE_GROUP : group;
    for (size_t i = 0; i < l->n_scalars; i++) {
        StateScalar *s = &l->scalars[i];
        char name[64];
        snprintf(name, sizeof name, "%s%s", v1_es ? "es_" : "", s->name);
        if (!h5io_attr_exists(f, owner, name)) {
            log_error("%s:%s: no attribute %s (the %s state of this run has it)", h5io_path(f),
                      owner, name, l->kind);
            return XT_ERR_USAGE;
        }
        Status st = s->type == STATE_F64 ? h5io_attr_read_f64(f, owner, name, s->value)
                                         : h5io_attr_read_i64(f, owner, name, s->value);
        if (st != XT_OK) return st;
    }
    return XT_OK;
}

static Status restore_list(H5File *f, const char *group, StateList *l, int64_t version)
{
    Status st = check_kind(f, group, l, version);
    if (st == XT_OK) st = restore_arrays(f, group, l);
    if (st == XT_OK) st = restore_scalars(f, group, l, version);
    return st;
}

/* ---- the file ---------------------------------------------------------------------- */

typedef struct {
    const char *name;
    int64_t *i64;
    double *f64;
} PositionAttr;

/* The /state attributes of the run's position, in file order. */
static size_t position_attrs(CheckpointState *s, int64_t *step, int64_t *seed,
                             PositionAttr out[10])
{
    PositionAttr a[] = {{"epoch", &s->epoch, NULL},
                        {"step_in_epoch", &s->step_in_epoch, NULL},
                        {"step", step, NULL},
                        {"loss_sum", NULL, &s->loss_sum},
                        {"weight_sum", NULL, &s->weight_sum},
                        {"rows_seen", NULL, &s->rows_seen},
                        {"finished", &s->finished, NULL},
                        {"final_action", &s->final_action, NULL},
                        {"ranks", &s->ranks, NULL},
                        {"seed", seed, NULL}};
    memcpy(out, a, sizeof a);
    return sizeof a / sizeof a[0];
}

/* The training split's fingerprint, as /state attributes data_*. */
static const char *const DATA_ATTRS[5] = {"data_rows", "data_cols", "data_crc32", "data_bytes",
                                          "data_mtime"};

static void data_fields(DataPrint *d, int64_t *out[5])
{
    out[0] = &d->rows;
    out[1] = &d->cols;
    out[2] = &d->crc;
    out[3] = &d->file_bytes;
    out[4] = &d->mtime;
}

static Status save_data_print(H5File *f, const DataPrint *d)
{
    DataPrint copy = *d;
    int64_t *v[5];
    data_fields(&copy, v);
    Status st = XT_OK;
    for (int i = 0; i < 5 && st == XT_OK; i++) st = h5io_attr_write_i64(f, STATE_GROUP, DATA_ATTRS[i], *v[i]);
    return st;
}

static Status read_data_print(H5File *f, CheckpointState *s)
{
    if (!h5io_attr_exists(f, STATE_GROUP, DATA_ATTRS[2])) return XT_OK; /* written before */
    int64_t *v[5];
    data_fields(&s->data, v);
    Status st = XT_OK;
    for (int i = 0; i < 5 && st == XT_OK; i++) st = h5io_attr_read_i64(f, STATE_GROUP, DATA_ATTRS[i], v[i]);
    s->has_data = st == XT_OK;
    return st;
}

Status checkpoint_save(const char *path, const Checkpoint *ck)
{
    CheckpointState s = ck->state;
    int64_t step = (int64_t)s.step, seed = (int64_t)s.seed;
    PositionAttr attrs[10];
    size_t na = position_attrs(&s, &step, &seed, attrs);
    H5File *f = NULL;
    Status st = h5io_create_atomic(path, &f);
    if (st == XT_OK) st = model_io_write_group(f, "/model", &ck->model);
    fault_checkpoint_delay();
    if (st == XT_OK && fault_checkpoint_fails()) {
        log_error("writing %s failed (injected fault: a test hook)", path);
        st = XT_ERR_RUNTIME;
    }
    if (st == XT_OK && ck->best_from)
        st = model_io_copy_group(ck->best_from, ck->best_epoch, f, "/best");
    if (st == XT_OK && ck->optimizer) st = save_list(f, OPTIMIZER_GROUP, ck->optimizer);
    if (st == XT_OK && ck->early_stop) st = save_list(f, EARLY_STOP_GROUP, ck->early_stop);
    const char *g = STATE_GROUP;
    if (st == XT_OK) st = h5io_create_group(f, g);
    if (st == XT_OK) st = h5io_attr_write_str(f, g, "format", "xentrain-checkpoint");
    if (st == XT_OK) st = h5io_attr_write_i64(f, g, "format_version", CHECKPOINT_FORMAT_VERSION);
    for (size_t i = 0; i < na && st == XT_OK; i++)
        st = attrs[i].i64 ? h5io_attr_write_i64(f, g, attrs[i].name, *attrs[i].i64)
                          : h5io_attr_write_f64(f, g, attrs[i].name, *attrs[i].f64);
    if (st == XT_OK) st = h5io_attr_write_f64(f, g, "correct_seen", s.correct_seen);
    if (st == XT_OK) st = h5io_attr_write_f64(f, g, "decisions_seen", s.decisions_seen);
    if (st == XT_OK) st = h5io_attr_write_i64(f, g, "blas_threads", s.blas_threads);
    if (st == XT_OK)
        st = h5io_attr_write_str(f, g, "config", ck->config_text ? ck->config_text : "");
    if (st == XT_OK && s.has_data) st = save_data_print(f, &s.data);
    if (st == XT_OK) st = h5io_commit(&f); /* a failure (a full disk) removes the temporary */
    else h5io_close(&f); /* discards the temporary file; the old checkpoint stays */
    if (st != XT_OK)
        log_error("checkpoint not written; %s keeps the previous checkpoint (if any)", path);
    return st;
}

/* Opens a checkpoint and checks its format and version. */
static Status open_checked(const char *path, H5File **f, int64_t *version)
{
    char fmt[64] = "";
    Status st = h5io_open_read(path, NULL, f);
    if (st != XT_OK) return st;
    if (!h5io_exists(*f, STATE_GROUP) || !h5io_attr_exists(*f, STATE_GROUP, "format") ||
        h5io_attr_read_str(*f, STATE_GROUP, "format", fmt, sizeof fmt) != XT_OK ||
        strcmp(fmt, "xentrain-checkpoint") != 0) {
        log_error("%s: not an xentrain checkpoint (no %s group with format "
                  "\"xentrain-checkpoint\")", path, STATE_GROUP);
        return XT_ERR_USAGE;
    }
    if ((st = h5io_attr_read_i64(*f, STATE_GROUP, "format_version", version)) != XT_OK) return st;
    if (*version < 1 || *version > CHECKPOINT_FORMAT_VERSION) {
        log_error("%s: checkpoint format version %lld; this xentrain %s reads versions 1 to %d%s",
                  path, (long long)*version, XT_VERSION, CHECKPOINT_FORMAT_VERSION,
                  *version > CHECKPOINT_FORMAT_VERSION ? " (upgrade xentrain)" : "");
        return XT_ERR_USAGE;
    }
    return XT_OK;
}

static Status read_position(H5File *f, const char *path, CheckpointState *s)
{
    int64_t step = 0, seed = 0;
    PositionAttr attrs[10];
    size_t na = position_attrs(s, &step, &seed, attrs);
    Status st = XT_OK;
    for (size_t i = 0; i < na && st == XT_OK; i++)
        st = attrs[i].i64 ? h5io_attr_read_i64(f, STATE_GROUP, attrs[i].name, attrs[i].i64)
                          : h5io_attr_read_f64(f, STATE_GROUP, attrs[i].name, attrs[i].f64);
    if (st != XT_OK) return st;
    /* added after version 2's first release: optional */
    if (h5io_attr_exists(f, STATE_GROUP, "correct_seen"))
        st = h5io_attr_read_f64(f, STATE_GROUP, "correct_seen", &s->correct_seen);
    if (st == XT_OK && h5io_attr_exists(f, STATE_GROUP, "decisions_seen"))
        st = h5io_attr_read_f64(f, STATE_GROUP, "decisions_seen", &s->decisions_seen);
    if (st == XT_OK && h5io_attr_exists(f, STATE_GROUP, "blas_threads"))
        st = h5io_attr_read_i64(f, STATE_GROUP, "blas_threads", &s->blas_threads);
    if (st == XT_OK) st = read_data_print(f, s);
    if (st != XT_OK) return st;
    s->step = (uint64_t)step;
    s->seed = (uint64_t)seed;
    if (s->epoch < 1 || s->step_in_epoch < 0) {
        log_error("%s: invalid state (epoch %lld, step_in_epoch %lld)", path, (long long)s->epoch,
                  (long long)s->step_in_epoch);
        return XT_ERR_USAGE;
    }
    return XT_OK;
}

Status checkpoint_load(const char *path, Checkpoint *ck)
{
    *ck = (Checkpoint){0};
    H5File *f = NULL;
    Status st = open_checked(path, &f, &ck->format_version);
    if (st == XT_OK) st = read_position(f, path, &ck->state);
    if (st == XT_OK) {
        ck->config_text = malloc(CONFIG_TEXT_MAX);
        st = ck->config_text ? h5io_attr_read_str(f, STATE_GROUP, "config", ck->config_text,
                                                  CONFIG_TEXT_MAX)
                             : XT_ERR_RUNTIME;
    }
    if (st == XT_OK) st = model_io_read_group(f, "/model", &ck->model);
    if (st == XT_OK && h5io_exists(f, "/best")) st = model_io_read_group(f, "/best", &ck->best);
    h5io_close(&f);
    if (st != XT_OK) checkpoint_free(ck);
    return st;
}

Status checkpoint_restore(const char *path, StateList *optimizer, StateList *early_stop)
{
    H5File *f = NULL;
    int64_t version = 0;
    Status st = open_checked(path, &f, &version);
    if (st == XT_OK && optimizer) st = restore_list(f, OPTIMIZER_GROUP, optimizer, version);
    if (st == XT_OK && early_stop) st = restore_list(f, EARLY_STOP_GROUP, early_stop, version);
    h5io_close(&f);
    return st;
}

void checkpoint_free(Checkpoint *ck)
{
    model_io_free(&ck->model);
    model_io_free(&ck->best);
    free(ck->config_text);
    *ck = (Checkpoint){0};
}
