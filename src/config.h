/* config: the validated settings of a run, from an INI file (libinih) plus
 * `--set section.key=value` overrides.
 *
 * One table (config.c) lists every key with its type, default, allowed range or
 * choices and a one-line description. The same table drives parsing, validation,
 * `xentrain --help-config`, the start-up banner, the resolved `config.ini` written
 * to the run directory, and the README's key reference (`xentrain --help-config=md`).
 *
 * Strings are parsed to enums once, here; nothing downstream compares strings.
 * A Config is a plain value: every rank parses the same file and gets the same
 * result, so no broadcast is needed. Errors name the file/line or the --set, the
 * key, the value and the allowed range; an unknown key suggests the closest one.
 *
 * Syntax (libinih, as installed: Debian libinih 55):
 *   - `[section]`, `key = value`, comments start a line with ';' or '#'; an inline
 *     comment needs whitespace before its ';'. Keys and section names are lower case
 *     and matched exactly; enum and boolean values are matched case-insensitively.
 *   - booleans: true/false, yes/no, on/off, 1/0. Numbers are decimal; empty values,
 *     trailing characters ("0.1x"), NaN, Inf and overflow are errors; integer keys take
 *     integers only ("1e3" is refused).
 *   - a key given twice in one file is an error (the message names both lines);
 *     --set may repeat a key: the last one wins. --set is applied after the file.
 *   - an indented line continues the previous key's value (INI continuation): allowed
 *     for list keys only (model.hidden, loss.class_weights), whose elements it appends;
 *     a list may end with one trailing comma. Indenting any other key is an error.
 *   - lines may be of any length up to 1 MiB (a 1,000-character path): the reader hands
 *     libinih (whose buffer is 200 bytes) a long line's value itself. Values cannot
 *     start or end with blanks, nor contain " ;".
 *   - cross-key rules (config_validate) run after the file and every --set.
 */
#ifndef XT_CONFIG_H
#define XT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>

#include "error.h"

#define XT_PATH_MAX 4096 /* PATH_MAX on Linux: cluster paths of several hundred bytes are common */
#define XT_MAX_HIDDEN 8
#define XT_MAX_CLASSES 4096
/* The stored value of a number set to "auto" (decided at start-up: plan.h). */
#define CONFIG_AUTO_F64 NAN
#define CONFIG_AUTO_I64 INT64_MIN
#define config_is_auto_f64(v) isnan(v)

/* NORM_AUTO (the default) resolves at start-up: NORM_SCALE when X has a scale
 * attribute (converted images), else NORM_STANDARDIZE for dense X, and for CSR X (never
 * centred) NORM_MAXABS (x_j / max |x_j|) unless every value is within [-1, 1] already
 * (then NORM_NONE). Model files store the result. */
typedef enum { NORM_NONE, NORM_SCALE, NORM_STANDARDIZE, NORM_MAXABS, NORM_AUTO } Normalize;
typedef enum { MODEL_LOGISTIC, MODEL_SOFTMAX, MODEL_MULTILABEL, MODEL_MLP } ModelType;
typedef enum { ACT_RELU, ACT_TANH, ACT_SIGMOID } Activation;
typedef enum { HEAD_SOFTMAX, HEAD_SIGMOID } Head;
typedef enum { INIT_ZEROS, INIT_XAVIER, INIT_HE } Init;
typedef enum { SCHED_CONSTANT, SCHED_STEP, SCHED_COSINE } Schedule;
typedef enum { LR_SCALE_NONE, LR_SCALE_LINEAR } LrScaling;
/* OPT_LBFGS and OPT_NEWTON are the full-batch solvers (solver.h): no learning rate, one
 * reduction per pass over the rows. */
typedef enum { OPT_SGD, OPT_ADAM, OPT_ADAMW, OPT_LARS, OPT_LAMB, OPT_LBFGS, OPT_NEWTON } Optimizer;
/* MONITOR_AUTO resolves in early_stop_init: val_loss with a validation split, else train_loss. */
typedef enum { MONITOR_VAL_LOSS, MONITOR_VAL_ACCURACY, MONITOR_TRAIN_LOSS, MONITOR_AUTO } Monitor;
typedef enum { MODE_AUTO, MODE_MIN, MODE_MAX } MonitorMode;
typedef enum { SHUFFLE_NONE, SHUFFLE_ROWS, SHUFFLE_BLOCK } Shuffle; /* false, true, block */
typedef enum { DATA_STREAM_FALSE, DATA_STREAM_TRUE, DATA_STREAM_AUTO } DataStream;
typedef enum { SHARD_FALSE, SHARD_TRUE, SHARD_AUTO } OptimShard;
typedef enum { PRECOND_FALSE, PRECOND_TRUE, PRECOND_AUTO } OptimPrecond; /* optim.precondition */
typedef enum { ALLREDUCE_MPI, ALLREDUCE_SHM, ALLREDUCE_AUTO } AllreduceImpl;
typedef enum { OVERLAP_FALSE, OVERLAP_TRUE, OVERLAP_AUTO } Overlap;

typedef struct {
    struct {
        char train[XT_PATH_MAX], val[XT_PATH_MAX], test[XT_PATH_MAX]; /* file.h5:/group */
        Normalize normalize;
        int64_t virtual_shards; /* S: rank-count invariance holds for P <= S */
        bool compact;           /* keep uint8 X as uint8 in memory */
        bool allow_same_split;  /* val/test may be the training split (warned) */
        DataStream stream;      /* read the rows from the file as training goes */
        char memory_budget[32]; /* bytes per rank for data ("2G"); "0" = auto */
    } data;
    struct {
        ModelType type;
        int64_t hidden[XT_MAX_HIDDEN];
        int n_hidden;           /* parsed from "256,128" */
        Activation activation;
        Head head;              /* mlp only: softmax (multi-class) or sigmoid (multi-label) */
        Init init;
        int64_t classes;        /* K; 0 = infer from the training data */
    } model;
    struct {
        double label_smoothing;
        double class_weights[XT_MAX_CLASSES];
        int n_class_weights;    /* 0 = all ones (or balanced) */
        bool class_weights_balanced; /* "balanced": n / (K * count of the class), from the
                                        training rows (scikit-learn's) */
        double pos_weight;      /* binary / multi-label positive weight */
        int64_t ignore_index;   /* class id whose rows are skipped; -1 = none */
    } loss;
    struct {
        double lr, momentum, weight_decay, clip_norm;
        bool nesterov;
        Schedule schedule;
        int64_t step_size;      /* epochs between decays (schedule = step) */
        double gamma;           /* decay factor (schedule = step) */
        double warmup_epochs;
        LrScaling lr_scaling;   /* linear: lr *= P (for users who scale the batch with P) */
        Optimizer optimizer;
        double betas[2];        /* adam, adamw, lamb: moment decay rates */
        int n_betas;
        double eps;             /* adam, adamw, lamb, lars: denominator guard */
        double trust_coefficient; /* lars: eta */
        bool exclude_bias;      /* lars, lamb: biases take no trust ratio, no decay */
        OptimShard shard;       /* each rank updates a slice (reduce-scatter + allgather) */
        /* full-batch solvers (lbfgs, newton) */
        double C;               /* inverse L2 strength: scikit-learn's C, LIBLINEAR's -c */
        int64_t history;        /* lbfgs: (s, y) pairs kept */
        OptimPrecond precondition; /* newton: CG preconditioned by the Hessian's diagonal */
        double tol;             /* stop when max |gradient of the objective| <= tol */
        double ftol;            /* stop when the objective's relative decrease <= ftol */
        int64_t max_passes;     /* no solver iteration starts after this many passes */
    } optim;
    struct {
        int64_t epochs;
        int64_t batch_size;     /* global; 0 = full batch */
        int64_t batch_per_rank; /* 0 = off; else global batch = P * this (weak scaling) */
        int64_t accumulate;     /* micro-steps per update: the update's batch is this times larger */
        uint64_t seed;
        Shuffle shuffle;        /* rows, blocks of rows, or none */
        int64_t shuffle_block;  /* block shuffle: rows per block; 0 = auto */
        bool reproducible;      /* the same bits at any P (exact reductions, see exact.h) */
        int64_t micro_batches;  /* reproducible: groups per step (0 = auto) */
        int64_t check_every;    /* steps between replica checksums; 0 = never */
        char resume[XT_PATH_MAX]; /* auto | never | PATH */
        bool progress;          /* progress line within epochs when stdout is a tty */
    } train;
    struct {
        bool distributed;
        int64_t batch_size;     /* rows per forward pass during evaluation */
    } eval;
    struct {
        bool enabled;
        Monitor monitor;
        MonitorMode mode;
        int64_t patience;
        double min_delta;
        int64_t start_epoch;
        bool restore_best;
    } early_stopping;
    struct {
        int64_t every;          /* epochs between checkpoints; 0 = never */
    } checkpoint;
    struct {
        double timeout_s;       /* collective watchdog */
        AllreduceImpl allreduce; /* the step's reductions: MPI or the node's shared memory */
        Overlap overlap;        /* reduce layer by layer while backward runs */
    } comm;
    struct {
        char dir[XT_PATH_MAX];  /* "" = runs/<config file stem> */
    } run;
    char source[XT_PATH_MAX];   /* the config file it came from */
} Config;

/* Fills every key with its default. Local. */
void config_defaults(Config *cfg);

/* Parses `path` over the defaults, then applies each "section.key=value" override in
 * order, then validates cross-key rules. On failure writes a one-line message naming
 * the file:line or --set, the key, the value and the allowed range into err and
 * returns XT_ERR_USAGE (XT_ERR_RUNTIME when out of memory); prints nothing; cfg then
 * holds a partial result that must not be used. A path that does not exist, is a
 * directory or cannot be read is a usage error too. path may be NULL (defaults and
 * overrides only). On success cfg->source = path, and an empty run.dir becomes
 * "runs/<file name without its extension>" ("runs/default" without a file).
 * Local (every rank calls it identically). */
Status config_load(Config *cfg, const char *path, const char *const *overrides,
                   size_t n_overrides, char *err, size_t errlen);
/* Parses INI text in memory (a checkpoint's resolved config) over the defaults. Keys
 * this version does not know are skipped (the text may come from another version); the
 * cross-key rules are not applied (the text was valid when written). label names the
 * text in messages. Local. */
Status config_load_text(Config *cfg, const char *text, const char *label, char *err,
                        size_t errlen);

/* Applies one "section.key=value" (blanks around key and value are ignored). Same
 * error rules; checks the key's own type and range only, not the cross-key rules
 * (call config_validate). On failure cfg is unchanged. Local. */
Status config_set(Config *cfg, const char *assignment, char *err, size_t errlen);

/* The cross-key rules: mlp needs model.hidden and other types refuse it; init = zeros
 * is refused for mlp; head = sigmoid only with mlp; nesterov needs momentum > 0;
 * class_weights has model.classes entries and ignore_index < classes (when classes
 * > 0); ignore_index only with class-id labels; train.resume non-empty; early
 * stopping needs data.val and start_epoch <= epochs. On failure writes
 * "section.key = value: reason" into err and returns XT_ERR_USAGE. Local. */
Status config_validate(const Config *cfg, char *err, size_t errlen);
/* What comm.overlap cannot be combined with in this configuration ("train.reproducible =
 * true", ...), or NULL: the one list both the rule for overlap = true and plan.c's auto
 * read. Local. */
const char *config_overlap_conflict(const Config *cfg);
/* Whether optim.optimizer is a full-batch solver (lbfgs, newton). */
bool config_is_solver(Optimizer o);
/* Whether section.name differs from the key table's default (the plan's rules for keys
 * whose default means "not given", e.g. train.epochs for a solver). Local. */
bool config_changed(const Config *cfg, const char *section, const char *name);
/* data.memory_budget in bytes (0 = auto; config_validate has checked the text). */
double config_memory_budget(const Config *cfg);

/* The resolved configuration as INI text (every key, effective values), for the run
 * directory and checkpoints. Returns bytes written (excluding NUL) or needed. Local. */
size_t config_to_ini(const Config *cfg, char *buf, size_t len);

/* Which keys config_diff compares: those that shape the training trajectory (and must
 * match when a run resumes), or the other settings (lr, epochs, early stopping, ...),
 * leaving out where the run lives (run.dir, train.resume, train.progress). */
typedef enum { CONFIG_KEYS_TRAJECTORY, CONFIG_KEYS_SETTINGS } ConfigKeys;

/* Writes "section.key: 'a' -> 'b'" for every selected key whose values differ,
 * separated by "; ", into buf (truncated to len); returns how many differ. Local. */
size_t config_diff(const Config *a, const Config *b, ConfigKeys which, char *buf, size_t len);

/* The effective settings, one line per section: "[optim] lr=0.05 momentum=0.9 ...",
 * each line ending in '\n' (for the start-up banner). Returns bytes written (excluding
 * NUL) or needed, as config_to_ini. Local. */
size_t config_settings_text(const Config *cfg, char *buf, size_t len);

/* Prints the key reference to stdout: format "text" (for --help-config) or "md"
 * (README table: key | default | allowed | meaning); another format prints text. */
void config_print_reference(const char *format);
/* The same into out; format NULL means "text"; an unknown format returns XT_ERR_USAGE
 * and writes nothing. XT_ERR_RUNTIME when writing failed. Local. */
Status config_write_reference(FILE *out, const char *format);

/* Names of enum values as written in the INI file, for banners, messages and model
 * metadata; "?" for a value out of range. */
const char *config_model_type_name(ModelType t);
const char *config_activation_name(Activation a);
const char *config_normalize_name(Normalize n);
const char *config_head_name(Head h);
const char *config_monitor_name(Monitor m);

#endif
