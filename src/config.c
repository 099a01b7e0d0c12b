/* config: one table of keys drives defaults, INI parsing, --set, validation, the
 * resolved INI text and the key reference. See config.h for the contract.
 *
 * Parsing goes through libinih's ini_parse_stream with our own line reader rather
 * than ini_parse, for three reasons:
 *   - Debian's libinih is built with INI_HANDLER_LINENO = 0, so the handler cannot
 *     be given line numbers (defining the macro here would only change our view of
 *     the callback type, not the library: an ABI mismatch). The reader counts lines,
 *     and libinih calls the handler right after reading the line it belongs to.
 *   - libinih silently splits a line longer than its buffer (200 bytes) into two
 *     lines; the reader sees every line whole and hands libinih a long line's value
 *     itself (ini_long_line), so that whatever config_to_ini writes reads back.
 *   - We open the file ourselves (stat + fopen + fstat), so "missing", "a directory"
 *     and "unreadable" get their own messages instead of ini_parse's -1.
 * Parsing stops at the first error: the reader returns NULL once one is recorded.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <ini.h>

#include "exact.h"
#include "strutil.h"

#if defined(__GNUC__)
#define XT_PRINTF_LIKE(a, b) __attribute__((format(printf, a, b)))
#else
#define XT_PRINTF_LIKE(a, b)
#endif

/* ------------------------------------------------------------------------- */
/* The key table                                                               */
/* ------------------------------------------------------------------------- */

typedef enum { KT_STRING, KT_INT, KT_UINT, KT_DOUBLE, KT_BOOL, KT_ENUM, KT_LIST } KeyType;

/* How one end of a double range is checked. */
typedef enum { BOUND_NONE = 0, BOUND_INCL, BOUND_EXCL } Bound;

/* Key flags. KEY_TRAJ: the key shapes the training trajectory (data, model,
 * loss, batches, seed, momentum), so a resumed run must use the checkpoint's value.
 * KEY_RUN: the key says where the run lives and how it is found or shown (run.dir,
 * train.resume, train.progress), not what it computes. */
enum { KEY_TRAJ = 1, KEY_RUN = 2 };

typedef struct {
    unsigned flags;
    const char *section, *name;
    KeyType type;
    KeyType elem;               /* KT_LIST: KT_INT or KT_DOUBLE elements */
    size_t offset;              /* offsetof(Config, field) */
    size_t size;                /* KT_STRING: buffer size; KT_LIST: capacity */
    size_t count_offset;        /* KT_LIST: offset of the int element count */
    const char *def;            /* default, written as a user would write it */
    int64_t imin, imax;         /* KT_INT and integer lists: inclusive range */
    double dmin, dmax;          /* KT_DOUBLE and double lists */
    Bound lo, hi;
    const char *const *choices; /* KT_ENUM: NULL-terminated, index = enum value */
    const char *word;           /* KT_LIST: a word that may stand for the list ... */
    size_t word_offset;         /* ... stored as true in this bool (the list left empty) */
    bool auto_ok;               /* KT_DOUBLE, KT_INT: "auto" stands for a value decided at
                                   start-up (plan.h), stored as CONFIG_AUTO_F64 / _I64 */
    const char *allowed;        /* overrides the generated "allowed" text */
    const char *help;           /* one line */
} Key;

/* Every enum field is stored and loaded through an int (memcpy, no aliasing). */
_Static_assert(sizeof(Normalize) == sizeof(int), "enum size");
_Static_assert(sizeof(ModelType) == sizeof(int), "enum size");
_Static_assert(sizeof(Activation) == sizeof(int), "enum size");
_Static_assert(sizeof(Head) == sizeof(int), "enum size");
_Static_assert(sizeof(Init) == sizeof(int), "enum size");
_Static_assert(sizeof(Schedule) == sizeof(int), "enum size");
_Static_assert(sizeof(LrScaling) == sizeof(int), "enum size");
_Static_assert(sizeof(Optimizer) == sizeof(int), "enum size");
_Static_assert(sizeof(Monitor) == sizeof(int), "enum size");
_Static_assert(sizeof(MonitorMode) == sizeof(int), "enum size");
_Static_assert(sizeof(Shuffle) == sizeof(int), "enum size");
_Static_assert(sizeof(DataStream) == sizeof(int), "enum size");

/* Choice lists: the position of a name is the enum value (checked in the tests). */
static const char *const NORMALIZE_NAMES[] = {"none", "scale", "standardize", "maxabs", "auto", NULL};
static const char *const MODEL_NAMES[] = {"logistic", "softmax", "multilabel", "mlp", NULL};
static const char *const ACTIVATION_NAMES[] = {"relu", "tanh", "sigmoid", NULL};
static const char *const HEAD_NAMES[] = {"softmax", "sigmoid", NULL};
static const char *const INIT_NAMES[] = {"zeros", "xavier", "he", NULL};
static const char *const SCHEDULE_NAMES[] = {"constant", "step", "cosine", NULL};
static const char *const LR_SCALING_NAMES[] = {"none", "linear", NULL};
static const char *const OPTIMIZER_NAMES[] = {"sgd", "adam", "adamw", "lars", "lamb", "lbfgs",
                                               "newton", NULL};
static const char *const MONITOR_NAMES[] = {"val_loss", "val_accuracy", "train_loss", "auto", NULL};
static const char *const MODE_NAMES[] = {"auto", "min", "max", NULL};
/* Enums whose first two choices are "false" and "true" also take the boolean words. */
static const char *const SHUFFLE_NAMES[] = {"false", "true", "block", NULL};
static const char *const STREAM_NAMES[] = {"false", "true", "auto", NULL};
static const char *const SHARD_NAMES[] = {"false", "true", "auto", NULL};
static const char *const ALLREDUCE_NAMES[] = {"mpi", "shm", "auto", NULL};
static const char *const OVERLAP_NAMES[] = {"false", "true", "auto", NULL};
static const char *const PRECOND_NAMES[] = {"false", "true", "auto", NULL};

#define XT_INT31_MAX INT64_C(2147483647)
#define XT_EPOCHS_MAX INT64_C(1000000)

#define FIELD(f) offsetof(Config, f)
#define FSIZE(f) sizeof(((Config *)0)->f)

/* Every macro takes the key flags first, then section, name, field, default, ... */
#define K_STR(fl, s, k, f, d, allow, h)                                                    \
    { .flags = fl, .section = s, .name = k, .type = KT_STRING, .offset = FIELD(f),        \
      .size = FSIZE(f), .def = d, .allowed = allow, .help = h }
#define K_INT(fl, s, k, f, d, mn, mx, h)                                                   \
    { .flags = fl, .section = s, .name = k, .type = KT_INT, .offset = FIELD(f), .def = d, \
      .imin = mn, .imax = mx, .help = h }
#define K_UINT(fl, s, k, f, d, h)                                                          \
    { .flags = fl, .section = s, .name = k, .type = KT_UINT, .offset = FIELD(f),          \
      .def = d, .help = h }
#define K_DBL(fl, s, k, f, d, lok, mn, hik, mx, h)                                         \
    { .flags = fl, .section = s, .name = k, .type = KT_DOUBLE, .offset = FIELD(f),        \
      .def = d, .lo = lok, .dmin = mn, .hi = hik, .dmax = mx, .help = h }
#define K_BOOL(fl, s, k, f, d, h)                                                          \
    { .flags = fl, .section = s, .name = k, .type = KT_BOOL, .offset = FIELD(f),          \
      .def = d, .help = h }
/* A number that may also be "auto" (its default, decided at start-up with a reason). */
#define K_DBL_AUTO(fl, s, k, f, lok, mn, hik, mx, h)                                       \
    { .flags = fl, .section = s, .name = k, .type = KT_DOUBLE, .offset = FIELD(f),        \
      .def = "auto", .lo = lok, .dmin = mn, .hi = hik, .dmax = mx, .auto_ok = true, .help = h }
#define K_INT_AUTO(fl, s, k, f, mn, mx, h)                                                 \
    { .flags = fl, .section = s, .name = k, .type = KT_INT, .offset = FIELD(f),           \
      .def = "auto", .imin = mn, .imax = mx, .auto_ok = true, .help = h }
#define K_ENUM(fl, s, k, f, d, names, h)                                                   \
    { .flags = fl, .section = s, .name = k, .type = KT_ENUM, .offset = FIELD(f),          \
      .def = d, .choices = names, .help = h }
#define K_ILIST(fl, s, k, f, n, d, mn, mx, h)                                              \
    { .flags = fl, .section = s, .name = k, .type = KT_LIST, .elem = KT_INT,              \
      .offset = FIELD(f), .size = FSIZE(f) / sizeof(int64_t), .count_offset = FIELD(n),   \
      .def = d, .imin = mn, .imax = mx, .help = h }
#define K_DLIST(fl, s, k, f, n, d, lok, mn, hik, mx, h)                                    \
    { .flags = fl, .section = s, .name = k, .type = KT_LIST, .elem = KT_DOUBLE,           \
      .offset = FIELD(f), .size = FSIZE(f) / sizeof(double), .count_offset = FIELD(n),    \
      .def = d, .lo = lok, .dmin = mn, .hi = hik, .dmax = mx, .help = h }

static const Key KEYS[] = {
    /* [data] */
    K_STR(KEY_TRAJ, "data", "train", data.train, "", "file.h5:/group, or empty",
          "training split (file.h5 alone means file.h5:/train)"),
    K_STR(0, "data", "val", data.val, "", "file.h5:/group, or empty",
          "validation split; empty = no validation (needed by early stopping)"),
    K_STR(0, "data", "test", data.test, "", "file.h5:/group, or empty",
          "test split, evaluated after training; empty = none"),
    K_ENUM(KEY_TRAJ, "data", "normalize", data.normalize, "auto", NORMALIZE_NAMES,
           "features: auto = scale when X has a scale attribute (images), else standardize "
           "(mean 0, sd 1 from the training split), or for sparse X maxabs (x / the column's "
           "max |x|) unless every |x| <= 1 already; scale needs the attribute"),
    K_INT(KEY_TRAJ, "data", "virtual_shards", data.virtual_shards, "64", 1, 1048576,
          "S virtual shards of the training rows: same trajectory on any P <= S ranks"),
    K_BOOL(0, "data", "allow_same_split", data.allow_same_split, "false",
           "let data.val or data.test be the training split itself (warned); refused when "
           "false"),
    K_BOOL(0, "data", "compact", data.compact, "true",
           "keep uint8 features as uint8 in memory (4x smaller), converted per batch; "
           "false: float32 at load"),
    K_ENUM(0, "data", "stream", data.stream, "auto", STREAM_NAMES,
           "read training rows from the file ahead of the known batches; auto = when they "
           "do not fit data.memory_budget"),
    K_STR(0, "data", "memory_budget", data.memory_budget, "0", "bytes, e.g. 512M, 2G; 0 = auto",
          "memory per rank for data rows; auto: 80% of min(MemAvailable, cgroup limit) / "
          "ranks per node"),
    /* [model] */
    K_ENUM(KEY_TRAJ, "model", "type", model.type, "softmax", MODEL_NAMES,
           "logistic (binary), softmax (multi-class), multilabel (sigmoids) or mlp"),
    K_ILIST(KEY_TRAJ, "model", "hidden", model.hidden, model.n_hidden, "", 1, 65536,
            "hidden layer sizes, e.g. 256,128 (mlp only; required for mlp)"),
    K_ENUM(KEY_TRAJ, "model", "activation", model.activation, "relu", ACTIVATION_NAMES,
           "hidden-layer activation (mlp)"),
    K_ENUM(KEY_TRAJ, "model", "head", model.head, "softmax", HEAD_NAMES,
           "mlp output: softmax (one class per row) or sigmoid (multi-label)"),
    K_ENUM(0, "model", "init", model.init, "xavier", INIT_NAMES,
           "weight initialisation (zeros is refused for mlp)"),
    K_INT(KEY_TRAJ, "model", "classes", model.classes, "0", 0, XT_MAX_CLASSES,
          "K classes or labels; 0 = infer from the training data"),
    /* [loss] */
    K_DBL(KEY_TRAJ, "loss", "label_smoothing", loss.label_smoothing, "0", BOUND_INCL, 0.0,
          BOUND_EXCL, 1.0, "e: targets become (1 - e) * onehot + e / K"),
    { .flags = KEY_TRAJ, .section = "loss", .name = "class_weights", .type = KT_LIST,
      .elem = KT_DOUBLE, .offset = FIELD(loss.class_weights),
      .size = FSIZE(loss.class_weights) / sizeof(double),
      .count_offset = FIELD(loss.n_class_weights), .def = "", .lo = BOUND_INCL, .dmin = 0.0,
      .word = "balanced", .word_offset = FIELD(loss.class_weights_balanced),
      .help = "per-class loss weights; empty = all 1; balanced = n / (K * count)" },
    K_DBL(KEY_TRAJ, "loss", "pos_weight", loss.pos_weight, "1", BOUND_EXCL, 0.0, BOUND_NONE, 0.0,
          "weight of positive targets in sigmoid losses (logistic, multi-label)"),
    K_INT(KEY_TRAJ, "loss", "ignore_index", loss.ignore_index, "-1", -1, XT_MAX_CLASSES - 1,
          "class id whose rows are left out of loss and gradient; -1 = none"),
    /* [optim] */
    K_DBL_AUTO(0, "optim", "lr", optim.lr, BOUND_EXCL, 0.0, BOUND_INCL, 1e3,
               "base learning rate; auto = the optimiser's own (sgd, lars 0.01; adam, adamw, "
               "lamb 0.001); for sgd on a linear model with data.normalize none or maxabs "
               "(CSR data's auto) 0.25 x the update's rows / the rows' mean squared norm"),
    K_DBL_AUTO(KEY_TRAJ, "optim", "momentum", optim.momentum, BOUND_INCL, 0.0, BOUND_EXCL, 1.0,
               "momentum coefficient (sgd, lars); 0 = plain SGD; auto = 0.9 for sgd and lars "
               "(0 when sgd's lr comes from the rows)"),
    K_BOOL(0, "optim", "nesterov", optim.nesterov, "false",
           "Nesterov momentum (needs momentum > 0)"),
    K_DBL(0, "optim", "weight_decay", optim.weight_decay, "0", BOUND_INCL, 0.0, BOUND_NONE, 0.0,
          "L2 weight decay coefficient"),
    K_DBL(0, "optim", "clip_norm", optim.clip_norm, "0", BOUND_INCL, 0.0, BOUND_NONE, 0.0,
          "clip the global gradient L2 norm to this value; 0 = off"),
    K_ENUM(0, "optim", "schedule", optim.schedule, "constant", SCHEDULE_NAMES,
           "learning-rate schedule (warm-up multiplies it)"),
    K_INT(0, "optim", "step_size", optim.step_size, "10", 1, XT_EPOCHS_MAX,
          "epochs between decays (schedule = step)"),
    K_DBL(0, "optim", "gamma", optim.gamma, "0.1", BOUND_EXCL, 0.0, BOUND_INCL, 1.0,
          "decay factor (schedule = step)"),
    K_DBL(0, "optim", "warmup_epochs", optim.warmup_epochs, "0", BOUND_INCL, 0.0, BOUND_INCL,
          1e6, "linear warm-up of the learning rate over this many epochs; 0 = off"),
    K_ENUM(0, "optim", "lr_scaling", optim.lr_scaling, "none", LR_SCALING_NAMES,
           "linear: lr *= P, for users who grow the batch with P"),
    K_ENUM(KEY_TRAJ, "optim", "optimizer", optim.optimizer, "sgd", OPTIMIZER_NAMES,
           "sgd, adam, adamw (decoupled decay), lars, lamb; lbfgs or newton: full-batch "
           "solvers to the optimum (docs/solvers.md)"),
    K_DLIST(0, "optim", "betas", optim.betas, optim.n_betas, "0.9,0.999", BOUND_INCL, 0.0,
            BOUND_EXCL, 1.0, "adam, adamw, lamb: decay rates of the first and second moments"),
    K_DBL(0, "optim", "eps", optim.eps, "1e-8", BOUND_EXCL, 0.0, BOUND_INCL, 1.0,
          "adam, adamw, lamb: added to sqrt(v); lars: to the trust ratio's denominator"),
    K_DBL(0, "optim", "trust_coefficient", optim.trust_coefficient, "0.001", BOUND_EXCL, 0.0,
          BOUND_INCL, 1e3, "lars: eta in eta ||w|| / (||g|| + weight_decay ||w||)"),
    K_BOOL(0, "optim", "exclude_bias", optim.exclude_bias, "true",
           "lars, lamb: biases take no trust ratio and no weight decay"),
    K_ENUM(0, "optim", "shard", optim.shard, "auto", SHARD_NAMES,
           "each rank updates 1/P of the parameters and optimiser state (reduce-scatter, "
           "allgather); auto = when P > 1"),
    K_DBL(KEY_TRAJ, "optim", "C", optim.C, "1", BOUND_EXCL, 0.0, BOUND_NONE, 0.0,
          "lbfgs, newton: scikit-learn's C, LIBLINEAR's -c: minimises the mean loss + "
          "||W||^2 / (2 C n), n = the mean's denominator"),
    K_INT(KEY_TRAJ, "optim", "history", optim.history, "10", 1, 1000,
          "lbfgs: (step, gradient change) pairs kept for the inverse-Hessian estimate"),
    K_ENUM(KEY_TRAJ, "optim", "precondition", optim.precondition, "auto", PRECOND_NAMES,
           "newton: conjugate gradient preconditioned by the Hessian's diagonal (LIBLINEAR's; "
           "one more pass per iteration); auto = for sparse (CSR) training rows"),
    K_DBL(0, "optim", "tol", optim.tol, "1e-6", BOUND_INCL, 0.0, BOUND_NONE, 0.0,
          "lbfgs, newton: converged when max |gradient of the objective| <= tol"),
    K_DBL(0, "optim", "ftol", optim.ftol, "1e-12", BOUND_INCL, 0.0, BOUND_EXCL, 1.0,
          "lbfgs, newton: converged when an iteration lowers the objective by <= ftol, relative"),
    K_INT(0, "optim", "max_passes", optim.max_passes, "1000", 1, XT_INT31_MAX,
          "lbfgs, newton: no iteration starts after this many passes over the rows"),
    /* [train] */
    K_INT(0, "train", "epochs", train.epochs, "200", 1, XT_EPOCHS_MAX,
          "most epochs; early stopping usually ends the run before"),
    K_INT_AUTO(KEY_TRAJ, "train", "batch_size", train.batch_size, 0, XT_INT31_MAX,
               "global batch over all ranks; 0 = full batch; auto = 128, or N/10 rows (at "
               "least 1 per rank) when 128 gives under 10 steps per epoch"),
    K_INT(KEY_TRAJ, "train", "batch_per_rank", train.batch_per_rank, "0", 0, XT_INT31_MAX,
          "if > 0: global batch = P * this, overriding batch_size (weak scaling)"),
    K_INT(KEY_TRAJ, "train", "accumulate", train.accumulate, "1", 1, 65536,
          "micro-steps per update: each update's global batch is batch_size x this, computed "
          "in this many pieces per rank (memory of one piece)"),
    K_UINT(KEY_TRAJ, "train", "seed", train.seed, "42", "seed of initialisation and shuffling"),
    K_ENUM(KEY_TRAJ, "train", "shuffle", train.shuffle, "true", SHUFFLE_NAMES,
           "reshuffle each epoch: true = rows in each virtual shard, block = blocks of rows "
           "(slow file systems), false = none"),
    K_INT(KEY_TRAJ, "train", "shuffle_block", train.shuffle_block, "0", 0, XT_INT31_MAX,
          "rows per block for shuffle = block; 0 = X's rows per chunk, else 1024"),
    K_BOOL(KEY_TRAJ, "train", "reproducible", train.reproducible, "false",
           "the same model, bit for bit, at any rank count up to train.micro_batches (exact "
           "sums over fixed micro-batches)"),
    K_INT(KEY_TRAJ, "train", "micro_batches", train.micro_batches, "0", 0, EXACT_MAX_TERMS,
          "reproducible: micro-batches per step, the most ranks a run can use; 0 = auto: "
          "batch / 128, at least 8, at most data.virtual_shards"),
    K_INT(0, "train", "check_every", train.check_every, "100", 0, INT64_MAX,
          "steps between replica checksums across ranks; 0 = never"),
    K_STR(KEY_RUN, "train", "resume", train.resume, "auto", "auto, never, or a checkpoint path",
          "auto: continue from run.dir/checkpoint.h5 if present; never; or a path"),
    K_BOOL(KEY_RUN, "train", "progress", train.progress, "true",
           "progress line within epochs (when stdout is a terminal)"),
    /* [eval] */
    K_BOOL(0, "eval", "distributed", eval.distributed, "false",
           "validate on all ranks (sharded) instead of rank 0 alone"),
    K_INT(0, "eval", "batch_size", eval.batch_size, "1024", 1, XT_INT31_MAX,
          "rows per forward pass during evaluation"),
    /* [early_stopping] */
    K_BOOL(0, "early_stopping", "enabled", early_stopping.enabled, "true",
           "stop when the monitored value has not improved for patience epochs"),
    K_ENUM(0, "early_stopping", "monitor", early_stopping.monitor, "auto", MONITOR_NAMES,
           "what to watch; auto = val_loss with a validation split, else train_loss"),
    K_ENUM(0, "early_stopping", "mode", early_stopping.mode, "auto", MODE_NAMES,
           "whether lower or higher is better; auto: min for loss, max for accuracy"),
    K_INT(0, "early_stopping", "patience", early_stopping.patience, "10", 1, XT_EPOCHS_MAX,
          "monitored epochs without improvement before stopping (scikit-learn's n_iter_no_change)"),
    K_DBL(0, "early_stopping", "min_delta", early_stopping.min_delta, "1e-4", BOUND_INCL, 0.0,
          BOUND_NONE, 0.0, "smallest change that counts as an improvement (scikit-learn's tol)"),
    K_INT(0, "early_stopping", "start_epoch", early_stopping.start_epoch, "1", 1, XT_EPOCHS_MAX,
          "first monitored epoch (earlier epochs never count)"),
    K_BOOL(0, "early_stopping", "restore_best", early_stopping.restore_best, "true",
           "model.h5 holds the best epoch's weights (else the last epoch's)"),
    /* [checkpoint] */
    K_INT(0, "checkpoint", "every", checkpoint.every, "1", 0, XT_EPOCHS_MAX,
          "epochs between checkpoints; 0 = never"),
    /* [comm] */
    K_DBL(0, "comm", "timeout_s", comm.timeout_s, "600", BOUND_EXCL, 0.0, BOUND_NONE, 0.0,
          "seconds a collective may wait before the job is aborted"),
    K_ENUM(0, "comm", "allreduce", comm.allreduce, "auto", ALLREDUCE_NAMES,
           "gradient reduction: mpi, shm (node's shared memory, fixed order) or auto "
           "(shm when every rank of a node has a CPU of its own)"),
    K_ENUM(0, "comm", "overlap", comm.overlap, "auto", OVERLAP_NAMES,
           "ring-allreduce each layer's gradient during backward; auto = 2+ buckets of "
           "256 KiB, nodes of one rank, ring messages >= 64 KiB"),
    /* [run] */
    K_STR(KEY_RUN, "run", "dir", run.dir, "", "a directory path, or empty",
          "output directory; empty = runs/<config file name without extension>"),
};

#define N_KEYS (sizeof KEYS / sizeof KEYS[0])

static const char *const SECTIONS[] = {"data",  "model",          "loss",       "optim", "train",
                                       "eval",  "early_stopping", "checkpoint", "comm",  "run"};
#define N_SECTIONS (sizeof SECTIONS / sizeof SECTIONS[0])

/* Values echoed in messages are cut to this many characters. */
#define ECHO_MAX 80

/* ------------------------------------------------------------------------- */
/* Small helpers                                                               */
/* ------------------------------------------------------------------------- */

static void *field_at(Config *cfg, size_t off) { return (char *)cfg + off; }
static const void *cfield_at(const Config *cfg, size_t off) { return (const char *)cfg + off; }

static int load_int(const Config *cfg, size_t off)
{
    int v;
    memcpy(&v, cfield_at(cfg, off), sizeof v);
    return v;
}

static void store_int(Config *cfg, size_t off, int v) { memcpy(field_at(cfg, off), &v, sizeof v); }

/* Copies s[0..n) without surrounding whitespace into out (truncating to outlen - 1). */
static void trim_copy(const char *s, size_t n, char *out, size_t outlen)
{
    while (n > 0 && isspace((unsigned char)s[0])) {
        s++;
        n--;
    }
    while (n > 0 && isspace((unsigned char)s[n - 1])) n--;
    if (n >= outlen) n = outlen - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

XT_PRINTF_LIKE(3, 4)
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* A value as echoed in a message: at most ECHO_MAX characters, "..." when cut. */
static void echo_value(const char *v, char *out, size_t outlen)
{
    size_t n = strlen(v);
    if (n <= ECHO_MAX)
        snprintf(out, outlen, "%s", v);
    else
        snprintf(out, outlen, "%.*s...", ECHO_MAX, v);
}

/* Output that counts what it could not store, like snprintf. */
typedef struct {
    char *buf;
    size_t len;  /* capacity of buf, 0 when only measuring */
    size_t pos;  /* characters produced so far (written or not) */
    size_t line; /* pos at the start of the current line */
} Sink;

XT_PRINTF_LIKE(2, 3)
static void sink_printf(Sink *s, const char *fmt, ...)
{
    char *dst = NULL;
    size_t room = 0;
    if (s->buf && s->pos < s->len) {
        dst = s->buf + s->pos;
        room = s->len - s->pos;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst, room, fmt, ap);
    va_end(ap);
    if (n > 0) s->pos += (size_t)n; /* vsnprintf terminated what fitted */
}

static void sink_newline(Sink *s)
{
    sink_printf(s, "\n");
    s->line = s->pos;
}

/* The shortest decimal text that reads back as exactly v; whole numbers below 1e15
 * without an exponent ("600", not "6e+02"). */
static void format_double(double v, char *buf, size_t len)
{
    if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(buf, len, "%.0f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}

/* ------------------------------------------------------------------------- */
/* Allowed values and ranges                                                   */
/* ------------------------------------------------------------------------- */

static bool int_in_range(const Key *k, int64_t v) { return v >= k->imin && v <= k->imax; }

static bool double_in_range(const Key *k, double v)
{
    if (k->lo == BOUND_INCL && !(v >= k->dmin)) return false;
    if (k->lo == BOUND_EXCL && !(v > k->dmin)) return false;
    if (k->hi == BOUND_INCL && !(v <= k->dmax)) return false;
    if (k->hi == BOUND_EXCL && !(v < k->dmax)) return false;
    return true;
}

/* "1 <= value <= 64", "value >= 0", "0 < value <= 1000", ... */
static void range_text(const Key *k, KeyType t, Sink *s)
{
    if (t == KT_INT) {
        if (k->imax == INT64_MAX)
            sink_printf(s, "value >= %" PRId64, k->imin);
        else
            sink_printf(s, "%" PRId64 " <= value <= %" PRId64, k->imin, k->imax);
        return;
    }
    if (t == KT_UINT) {
        sink_printf(s, "0 <= value <= %" PRIu64, UINT64_MAX);
        return;
    }
    char lo[32], hi[32];
    format_double(k->dmin, lo, sizeof lo);
    format_double(k->dmax, hi, sizeof hi);
    const char *lop = k->lo == BOUND_INCL ? "<=" : "<";
    const char *hip = k->hi == BOUND_INCL ? "<=" : "<";
    if (k->lo != BOUND_NONE && k->hi != BOUND_NONE)
        sink_printf(s, "%s %s value %s %s", lo, lop, hip, hi);
    else if (k->lo != BOUND_NONE)
        sink_printf(s, "value %s %s", k->lo == BOUND_INCL ? ">=" : ">", lo);
    else if (k->hi != BOUND_NONE)
        sink_printf(s, "value %s %s", hip, hi);
    else
        sink_printf(s, "any finite number");
}

/* An enum whose first choices are false and true takes the boolean words as those. */
static bool bool_alias(const Key *k)
{
    return k->type == KT_ENUM && !strcmp(k->choices[0], "false") && k->choices[1] &&
           !strcmp(k->choices[1], "true");
}

static void allowed_text(const Key *k, char *buf, size_t len)
{
    Sink s = {buf, len, 0, 0};
    if (len > 0) buf[0] = '\0';
    if (k->allowed) {
        sink_printf(&s, "%s", k->allowed);
        return;
    }
    switch (k->type) {
    case KT_STRING: sink_printf(&s, "text, at most %zu characters", k->size - 1); break;
    case KT_INT:
    case KT_UINT:
    case KT_DOUBLE:
        range_text(k, k->type, &s);
        if (k->auto_ok) sink_printf(&s, ", or auto");
        break;
    case KT_BOOL: sink_printf(&s, "true, false, yes, no, on, off, 1, 0"); break;
    case KT_ENUM:
        for (size_t i = 0; k->choices[i]; i++)
            sink_printf(&s, "%s%s", i ? ", " : "", k->choices[i]);
        if (bool_alias(k)) sink_printf(&s, " (or yes, no, on, off, 1, 0)");
        break;
    case KT_LIST:
        sink_printf(&s, "up to %zu comma-separated %s, each ", k->size,
                    k->elem == KT_INT ? "integers" : "numbers");
        range_text(k, k->elem, &s);
        if (k->word) sink_printf(&s, "; or %s", k->word);
        break;
    }
}

/* ------------------------------------------------------------------------- */
/* Parsing one value                                                           */
/* ------------------------------------------------------------------------- */

/* One parsed scalar value, and its size in the Config. */
typedef union {
    int64_t i;
    uint64_t u;
    double d;
    bool b;
} Scalar;
_Static_assert(sizeof(int64_t) == sizeof(double), "8-byte scalars");

/* Parses text as a value of type t (a key's own type, or its list element type) and
 * checks the key's range. Returns NULL or the reason. */
static const char *parse_scalar(const Key *k, KeyType t, const char *text, Scalar *v,
                                size_t *size)
{
    const char *bad = NULL;
    switch (t) {
    case KT_INT: bad = strutil_parse_i64(text, &v->i); break;
    case KT_UINT: bad = strutil_parse_u64(text, &v->u); break;
    case KT_DOUBLE: bad = strutil_parse_f64(text, &v->d); break;
    case KT_BOOL: bad = strutil_parse_bool(text, &v->b); break;
    default: XT_ASSERT(!"not a scalar key type");
    }
    *size = t == KT_BOOL ? sizeof v->b : sizeof v->i; /* int64, uint64 and double: 8 */
    if (!bad && t == KT_INT && !int_in_range(k, v->i)) bad = "out of range";
    if (!bad && t == KT_DOUBLE && !double_in_range(k, v->d)) bad = "out of range";
    return bad;
}

/* Parses a comma-separated list into the key's array. The first pass checks every
 * element and stores nothing, the second stores: a failed assignment leaves the
 * Config untouched. append adds to the current elements (a continuation line).
 * Empty elements are errors, except one trailing comma ("256,128," so that a list
 * can continue on the next line). */
static const char *set_list(Config *cfg, const Key *k, const char *value, bool append,
                            char *why, size_t whylen)
{
    if (k->word) { /* "balanced" instead of the numbers */
        bool word = strutil_ieq(value, k->word);
        if (word) store_int(cfg, k->count_offset, 0);
        memcpy((char *)field_at(cfg, k->word_offset), &word, sizeof word);
        if (word) return NULL;
    }
    int count0 = append ? load_int(cfg, k->count_offset) : 0;
    for (int pass = 0; pass < 2; pass++) {
        size_t n = (size_t)count0, idx = 0;
        const char *p = value;
        while (*p) {
            const char *comma = strchr(p, ',');
            size_t elen = comma ? (size_t)(comma - p) : strlen(p);
            char el[64];
            idx++;
            if (elen >= sizeof el) {
                snprintf(why, whylen, "element %zu is too long", idx);
                return why;
            }
            trim_copy(p, elen, el, sizeof el);
            if (!*el) {
                if (!comma && idx > 1) break; /* one trailing comma */
                snprintf(why, whylen, "element %zu is empty", idx);
                return why;
            }
            if (n >= k->size) {
                snprintf(why, whylen, "more than %zu values", k->size);
                return why;
            }
            Scalar v;
            size_t vsize = 0;
            const char *bad = parse_scalar(k, k->elem, el, &v, &vsize);
            if (bad) {
                snprintf(why, whylen, "element %zu (%s): %s", idx, el, bad);
                return why;
            }
            if (pass) memcpy((char *)field_at(cfg, k->offset) + n * vsize, &v, vsize);
            n++;
            if (!comma) break;
            p = comma + 1;
        }
        if (pass) store_int(cfg, k->count_offset, (int)n);
    }
    return NULL;
}

/* Sets one key from its text. Returns NULL, or the reason (possibly written into
 * why). On failure the Config is unchanged. */
static const char *set_value(Config *cfg, const Key *k, const char *value, bool append,
                             char *why, size_t whylen)
{
    switch (k->type) {
    case KT_STRING: {
        size_t n = strlen(value);
        if (n >= k->size) {
            snprintf(why, whylen, "too long: %zu characters, at most %zu", n, k->size - 1);
            return why;
        }
        for (size_t i = 0; i < n; i++)
            if (iscntrl((unsigned char)value[i])) return "contains a control character";
        memcpy(field_at(cfg, k->offset), value, n + 1);
        return NULL;
    }
    case KT_INT:
    case KT_UINT:
    case KT_DOUBLE:
    case KT_BOOL: {
        Scalar v;
        size_t vsize = 0;
        if (k->auto_ok && strutil_ieq(value, "auto")) {
            if (k->type == KT_DOUBLE) v.d = CONFIG_AUTO_F64;
            else v.i = CONFIG_AUTO_I64;
            memcpy(field_at(cfg, k->offset), &v, sizeof v.i);
            return NULL;
        }
        const char *bad = parse_scalar(k, k->type, value, &v, &vsize);
        if (bad) return bad;
        memcpy(field_at(cfg, k->offset), &v, vsize);
        return NULL;
    }
    case KT_ENUM:
        if (!*value) return "empty value";
        for (size_t i = 0; k->choices[i]; i++) {
            if (strutil_ieq(value, k->choices[i])) {
                store_int(cfg, k->offset, (int)i);
                return NULL;
            }
        }
        if (bool_alias(k)) {
            bool b;
            if (strutil_parse_bool(value, &b)) return "not a boolean or one of the choices";
            store_int(cfg, k->offset, b ? 1 : 0);
            return NULL;
        }
        return "not one of the choices";
    case KT_LIST: return set_list(cfg, k, value, append, why, whylen);
    }
    return "unknown key type";
}

/* The effective value as INI text. wrap > 0 breaks long lists into indented
 * continuation lines after about `wrap` characters. */
static void format_value(const Config *cfg, const Key *k, Sink *s, size_t wrap)
{
    const void *p = cfield_at(cfg, k->offset);
    switch (k->type) {
    case KT_STRING: sink_printf(s, "%s", (const char *)p); break;
    case KT_INT: {
        int64_t v;
        memcpy(&v, p, sizeof v);
        if (k->auto_ok && v == CONFIG_AUTO_I64) sink_printf(s, "auto");
        else sink_printf(s, "%" PRId64, v);
        break;
    }
    case KT_UINT: {
        uint64_t v;
        memcpy(&v, p, sizeof v);
        sink_printf(s, "%" PRIu64, v);
        break;
    }
    case KT_DOUBLE: {
        double v;
        char num[32];
        memcpy(&v, p, sizeof v);
        if (k->auto_ok && isnan(v)) {
            sink_printf(s, "auto");
            break;
        }
        format_double(v, num, sizeof num);
        sink_printf(s, "%s", num);
        break;
    }
    case KT_BOOL: {
        bool v;
        memcpy(&v, p, sizeof v);
        sink_printf(s, "%s", v ? "true" : "false");
        break;
    }
    case KT_ENUM: {
        int v = load_int(cfg, k->offset);
        size_t n = 0;
        while (k->choices[n]) n++;
        sink_printf(s, "%s", v >= 0 && (size_t)v < n ? k->choices[v] : "?");
        break;
    }
    case KT_LIST: {
        int n = load_int(cfg, k->count_offset);
        bool word = false;
        if (k->word) memcpy(&word, (const char *)cfield_at(cfg, k->word_offset), sizeof word);
        if (word) sink_printf(s, "%s", k->word);
        for (int i = 0; i < n; i++) {
            if (i > 0) {
                sink_printf(s, ",");
                if (wrap && s->pos - s->line > wrap) {
                    sink_newline(s);
                    sink_printf(s, "    ");
                }
            }
            if (k->elem == KT_INT) {
                sink_printf(s, "%" PRId64, ((const int64_t *)p)[i]);
            } else {
                char num[32];
                format_double(((const double *)p)[i], num, sizeof num);
                sink_printf(s, "%s", num);
            }
        }
        break;
    }
    }
}

/* The effective value, cut for a message. */
static void value_echo(const Config *cfg, const Key *k, char *buf, size_t len)
{
    char full[ECHO_MAX + 8];
    Sink s = {full, sizeof full, 0, 0};
    full[0] = '\0';
    format_value(cfg, k, &s, 0);
    if (s.pos >= sizeof full)
        snprintf(buf, len, "%.*s...", ECHO_MAX, full);
    else
        snprintf(buf, len, "%s", full);
}

/* ------------------------------------------------------------------------- */
/* Key lookup and suggestions                                                  */
/* ------------------------------------------------------------------------- */

static const Key *find_key(const char *section, const char *name)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(KEYS[i].section, section) == 0 && strcmp(KEYS[i].name, name) == 0)
            return &KEYS[i];
    return NULL;
}

static const Key *key_named(const char *section, const char *name)
{
    const Key *k = find_key(section, name);
    XT_ASSERT(k != NULL);
    return k;
}

static bool section_known(const char *section)
{
    for (size_t i = 0; i < N_SECTIONS; i++)
        if (strcmp(SECTIONS[i], section) == 0) return true;
    return false;
}

#define LEV_MAX STRUTIL_EDIT_MAX

/* True when name is a word-aligned abbreviation or extension of key: the initials of
 * its '_'-separated words ("learning_rate" -> "lr"), or key plus or minus a leading or
 * trailing word ("batch" ~ "batch_size", "max_epochs" ~ "epochs"). */
static bool word_match(const char *name, const char *key)
{
    char initials[LEV_MAX + 1];
    size_t n = 0;
    bool start = true;
    for (const char *p = name; *p && n < LEV_MAX; p++) {
        if (*p == '_') {
            start = true;
        } else if (start) {
            initials[n++] = (char)tolower((unsigned char)*p);
            start = false;
        }
    }
    initials[n] = '\0';
    if (n > 1 && strchr(name, '_') && strcmp(initials, key) == 0) return true;
    size_t ln = strlen(name), lk = strlen(key);
    const char *longer = ln > lk ? name : key, *shorter = ln > lk ? key : name;
    size_t ll = ln > lk ? ln : lk, ls = ln > lk ? lk : ln;
    if (ls < 2 || ll == ls) return false;
    if (strncmp(longer, shorter, ls) == 0 && longer[ls] == '_') return true;
    if (strcmp(longer + (ll - ls), shorter) == 0 && longer[ll - ls - 1] == '_') return true;
    return false;
}

/* The valid key a user most likely meant by section.name, or NULL. In order: the
 * same key name in another section; the nearest "section.key" within edit distance
 * 3; a word-aligned abbreviation or extension (in the same section when it exists). */
static const Key *suggest_key(const char *section, const char *name)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (strutil_ieq(KEYS[i].name, name) && !strutil_ieq(KEYS[i].section, section)) return &KEYS[i];

    char full[2 * LEV_MAX + 2];
    snprintf(full, sizeof full, "%s.%s", section, name);
    const Key *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; i < N_KEYS; i++) {
        char cand[2 * LEV_MAX + 2];
        snprintf(cand, sizeof cand, "%s.%s", KEYS[i].section, KEYS[i].name);
        size_t d = strutil_edit_distance(full, cand);
        if (d < best_d) {
            best_d = d;
            best = &KEYS[i];
        }
    }
    if (best && best_d <= 3) return best;

    bool known = section_known(section);
    for (size_t i = 0; i < N_KEYS; i++)
        if ((!known || strcmp(KEYS[i].section, section) == 0) && word_match(name, KEYS[i].name))
            return &KEYS[i];
    return NULL;
}

/* "unknown key 'optim.lrr' (did you mean 'optim.lr'?)" and friends. */
static void unknown_key_text(const char *section, const char *name, char *buf, size_t len)
{
    Sink s = {buf, len, 0, 0};
    const Key *hint = suggest_key(section, name);
    if (!*section)
        sink_printf(&s, "key '%s' is outside any [section]", name);
    else if (!section_known(section))
        sink_printf(&s, "unknown section [%s] in '%s.%s'", section, section, name);
    else
        sink_printf(&s, "unknown key '%s.%s'", section, name);
    if (hint) {
        sink_printf(&s, " (did you mean '%s.%s'?)", hint->section, hint->name);
    } else if (*section && section_known(section)) {
        sink_printf(&s, " (keys of [%s]:", section);
        bool first = true;
        for (size_t i = 0; i < N_KEYS; i++) {
            if (strcmp(KEYS[i].section, section) != 0) continue;
            sink_printf(&s, "%s %s", first ? "" : ",", KEYS[i].name);
            first = false;
        }
        sink_printf(&s, ")");
    } else {
        sink_printf(&s, " (sections:");
        for (size_t i = 0; i < N_SECTIONS; i++)
            sink_printf(&s, "%s %s", i ? "," : "", SECTIONS[i]);
        sink_printf(&s, ")");
    }
}

/* ------------------------------------------------------------------------- */
/* Cross-key rules                                                             */
/* ------------------------------------------------------------------------- */

static bool values_equal(const Config *a, const Config *b, const Key *k);

/* Whether a key differs from its default (def: config_defaults), as the key table says. */
static bool changed(const Config *cfg, const Config *def, const char *section, const char *name)
{
    return def && !values_equal(cfg, def, key_named(section, name));
}

static const Key *check_solver_rules(const Config *cfg, const Config *def, char *why, size_t len);

/* Checks the rules that involve more than one key. Returns the key to blame (the one
 * a user would change) with the reason in why, or NULL when all hold. */
/* The [optim] rules that involve more than one key (with the solvers', below). */
static const Key *check_optim_rules(const Config *cfg, const Config *def, char *why, size_t len)
{
    if (cfg->optim.nesterov && !config_is_auto_f64(cfg->optim.momentum) &&
        !(cfg->optim.momentum > 0.0)) {
        snprintf(why, len, "needs optim.momentum > 0 (e.g. momentum = 0.9)");
        return key_named("optim", "nesterov");
    }
    Optimizer opt = cfg->optim.optimizer;
    bool adam_like = opt == OPT_ADAM || opt == OPT_ADAMW || opt == OPT_LAMB;
    if (adam_like && cfg->optim.momentum > 0.0) {
        snprintf(why, len, "optim.optimizer = %s keeps moments of its own: set optim.betas "
                 "(default %s) and momentum = 0", OPTIMIZER_NAMES[opt],
                 key_named("optim", "betas")->def);
        return key_named("optim", "momentum");
    }
    if (opt != OPT_SGD && cfg->optim.nesterov) {
        snprintf(why, len, "applies to optim.optimizer = sgd only");
        return key_named("optim", "nesterov");
    }
    if (cfg->optim.n_betas != 2) {
        snprintf(why, len, "two values: beta1,beta2 (e.g. 0.9,0.999)");
        return key_named("optim", "betas");
    }
    /* a key the chosen optimiser does not read is refused when changed from its default,
     * as model.hidden is for a linear model: a silently ignored setting misleads */
    const char *name = OPTIMIZER_NAMES[opt];
    if (!adam_like && changed(cfg, def, "optim", "betas")) {
        snprintf(why, len, "used by adam, adamw and lamb only, not optim.optimizer = %s", name);
        return key_named("optim", "betas");
    }
    if (opt == OPT_SGD && changed(cfg, def, "optim", "eps")) {
        snprintf(why, len, "used by adam, adamw, lamb and lars, not optim.optimizer = sgd");
        return key_named("optim", "eps");
    }
    if (opt != OPT_LARS && changed(cfg, def, "optim", "trust_coefficient")) {
        snprintf(why, len, "used by lars only, not optim.optimizer = %s", name);
        return key_named("optim", "trust_coefficient");
    }
    if (opt != OPT_LARS && opt != OPT_LAMB && changed(cfg, def, "optim", "exclude_bias")) {
        snprintf(why, len, "used by lars and lamb only, not optim.optimizer = %s", name);
        return key_named("optim", "exclude_bias");
    }
    return check_solver_rules(cfg, def, why, len);
}

bool config_is_solver(Optimizer o) { return o == OPT_LBFGS || o == OPT_NEWTON; }

/* The keys only the full-batch solvers read. */
static const char *const SOLVER_KEYS[] = {"C", "history", "precondition", "tol", "ftol",
                                          "max_passes"};

/* SGD's keys a full-batch solver has no use for, when changed: the key and why. */
static const Key *solver_refusal(const Config *cfg, const Config *def, char *why, size_t len)
{
    const char *name = OPTIMIZER_NAMES[cfg->optim.optimizer];
    if (changed(cfg, def, "train", "batch_size") && cfg->train.batch_size != 0) {
        snprintf(why, len, "optim.optimizer = %s evaluates every training row in each pass (one "
                 "reduction per pass): remove train.batch_size (or set 0, the full batch)", name);
        return key_named("train", "batch_size");
    }
    if (cfg->train.batch_per_rank > 0) {
        snprintf(why, len, "optim.optimizer = %s evaluates every training row in each pass: "
                 "remove train.batch_per_rank", name);
        return key_named("train", "batch_per_rank");
    }
    if (cfg->optim.momentum > 0.0) {
        snprintf(why, len, "optim.optimizer = %s takes no momentum (its history is "
                 "optim.history): remove optim.momentum", name);
        return key_named("optim", "momentum");
    }
    static const char *const STEP_KEYS[] = {"lr", "schedule", "warmup_epochs", "step_size",
                                            "gamma", "lr_scaling", "clip_norm"};
    for (size_t i = 0; i < sizeof STEP_KEYS / sizeof *STEP_KEYS; i++) {
        if (!changed(cfg, def, "optim", STEP_KEYS[i])) continue;
        snprintf(why, len, "optim.optimizer = %s has no learning rate: its %s chooses every step; "
                 "remove optim.%s", name,
                 cfg->optim.optimizer == OPT_LBFGS ? "line search" : "trust region", STEP_KEYS[i]);
        return key_named("optim", STEP_KEYS[i]);
    }
    return NULL;
}

/* The rules of the full-batch solvers (optim.optimizer = lbfgs, newton). */
static const Key *check_solver_rules(const Config *cfg, const Config *def, char *why, size_t len)
{
    Optimizer opt = cfg->optim.optimizer;
    if (!config_is_solver(opt)) {
        for (size_t i = 0; i < sizeof SOLVER_KEYS / sizeof *SOLVER_KEYS; i++) {
            if (!changed(cfg, def, "optim", SOLVER_KEYS[i])) continue;
            snprintf(why, len, "used by the full-batch solvers (optim.optimizer = lbfgs or newton) "
                     "only, not optim.optimizer = %s", OPTIMIZER_NAMES[opt]);
            return key_named("optim", SOLVER_KEYS[i]);
        }
        return NULL;
    }
    if (opt == OPT_NEWTON && cfg->model.type == MODEL_MLP) {
        snprintf(why, len, "trust-region Newton takes the Hessian of a linear model (logistic, "
                 "softmax, multilabel); for model.type = mlp use optim.optimizer = lbfgs");
        return key_named("optim", "optimizer");
    }
    if (opt == OPT_NEWTON && changed(cfg, def, "optim", "history")) {
        snprintf(why, len, "used by optim.optimizer = lbfgs only (newton keeps no history)");
        return key_named("optim", "history");
    }
    if (opt == OPT_LBFGS && changed(cfg, def, "optim", "precondition")) {
        snprintf(why, len, "used by optim.optimizer = newton only (its conjugate gradient; "
                 "lbfgs's history is its preconditioner)");
        return key_named("optim", "precondition");
    }
    const Key *k = solver_refusal(cfg, def, why, len);
    if (k) return k;
    if (cfg->optim.weight_decay > 0.0 && changed(cfg, def, "optim", "C")) {
        snprintf(why, len, "give the L2 strength once: optim.C (scikit-learn's C), or "
                 "optim.weight_decay = 1 / (C n) with n the loss's denominator; not both");
        return key_named("optim", "weight_decay");
    }
    if (cfg->optim.shard == SHARD_TRUE) {
        snprintf(why, len, "a full-batch solver updates once per pass, every rank the same "
                 "way: nothing to shard (set optim.shard = auto or false)");
        return key_named("optim", "shard");
    }
    if (cfg->comm.overlap == OVERLAP_TRUE) {
        snprintf(why, len, "a full-batch solver reduces once per pass, after it: nothing to "
                 "overlap (set comm.overlap = auto or false)");
        return key_named("comm", "overlap");
    }
    return NULL;
}

const char *config_overlap_conflict(const Config *cfg)
{
    return cfg->train.reproducible          ? "train.reproducible = true"
           : cfg->optim.shard == SHARD_TRUE ? "optim.shard = true"
           : cfg->comm.allreduce == ALLREDUCE_SHM ? "comm.allreduce = shm"
                                                  : NULL;
}

/* The [comm] rules that involve more than one key. */
static const Key *check_comm_rules(const Config *cfg, char *why, size_t len)
{
    if (cfg->comm.overlap != OVERLAP_TRUE) return NULL;
    const char *other = config_overlap_conflict(cfg);
    if (!other) return NULL;
    snprintf(why, len, "overlap allreduces the gradient layer by layer through MPI while "
             "backward runs; it cannot be combined with %s (set one of them to false/auto)",
             other);
    return key_named("comm", "overlap");
}

/* The [model] and [loss] rules that involve more than one key. */
static const Key *check_model_rules(const Config *cfg, char *why, size_t len)
{
    bool mlp = cfg->model.type == MODEL_MLP;
    if (mlp && cfg->model.n_hidden == 0) {
        snprintf(why, len, "needs model.hidden, the hidden layer sizes (e.g. hidden = 256,128)");
        return key_named("model", "type");
    }
    if (!mlp && cfg->model.n_hidden > 0) {
        snprintf(why, len,
                 "hidden layers are only used by model.type = mlp (type is %s): remove "
                 "model.hidden or set type = mlp",
                 MODEL_NAMES[cfg->model.type]);
        return key_named("model", "hidden");
    }
    if (cfg->model.head == HEAD_SIGMOID && !mlp) {
        snprintf(why, len,
                 "model.head only applies to model.type = mlp (a sigmoid linear model is "
                 "type = logistic or multilabel)");
        return key_named("model", "head");
    }
    if (mlp && cfg->model.init == INIT_ZEROS) {
        snprintf(why, len,
                 "refused for model.type = mlp: with all-zero weights every hidden unit "
                 "computes the same output and receives the same gradient, so the units "
                 "never differ (use xavier or he)");
        return key_named("model", "init");
    }
    int64_t K = cfg->model.classes;
    if (cfg->loss.n_class_weights > 0 && K > 0 && cfg->loss.n_class_weights != K) {
        snprintf(why, len, "%d weights for model.classes = %" PRId64 ": give one per class",
                 cfg->loss.n_class_weights, K);
        return key_named("loss", "class_weights");
    }
    if (cfg->loss.ignore_index >= 0) {
        bool multilabel = cfg->model.type == MODEL_MULTILABEL ||
                          (mlp && cfg->model.head == HEAD_SIGMOID);
        if (multilabel) {
            snprintf(why, len,
                     "applies to class-id labels; multi-label targets have none (use -1)");
            return key_named("loss", "ignore_index");
        }
        if (K > 0 && cfg->loss.ignore_index >= K) {
            snprintf(why, len, "not a class id: model.classes = %" PRId64 " (ids 0..%" PRId64 ")",
                     K, K - 1);
            return key_named("loss", "ignore_index");
        }
    }
    return NULL;
}

/* The [data] and [train] rules that involve more than one key. */
static const Key *check_train_rules(const Config *cfg, char *why, size_t len)
{
    if (!cfg->train.reproducible && cfg->train.micro_batches != 0) {
        snprintf(why, len, "used by train.reproducible = true only");
        return key_named("train", "micro_batches");
    }
    if (cfg->train.reproducible && cfg->train.batch_per_rank > 0) {
        snprintf(why, len, "makes the global batch depend on the rank count, so no model can be "
                 "the same at every P: use train.batch_size with train.reproducible");
        return key_named("train", "batch_per_rank");
    }
    if (cfg->train.micro_batches * cfg->train.accumulate > EXACT_MAX_TERMS) {
        snprintf(why, len, "train.micro_batches x train.accumulate = %" PRId64 " exceeds %d "
                 "micro-batches per update", cfg->train.micro_batches * cfg->train.accumulate,
                 EXACT_MAX_TERMS);
        return key_named("train", "accumulate");
    }
    double budget;
    if (strutil_parse_bytes(cfg->data.memory_budget, &budget)) {
        snprintf(why, len, "not a byte count (e.g. 0 for auto, 536870912, 512M, 2G, 1.5GiB)");
        return key_named("data", "memory_budget");
    }
    if (cfg->train.shuffle_block > 0 && cfg->train.shuffle != SHUFFLE_BLOCK) {
        snprintf(why, len, "used by train.shuffle = block only");
        return key_named("train", "shuffle_block");
    }
    if (!cfg->train.resume[0]) {
        snprintf(why, len, "empty (allowed: auto, never, or a checkpoint path)");
        return key_named("train", "resume");
    }
    return NULL;
}

/* The [early_stopping] rules that involve more than one key. */
static const Key *check_es_rules(const Config *cfg, char *why, size_t len)
{
    if (cfg->early_stopping.enabled) {
        Monitor m = cfg->early_stopping.monitor;
        if (!cfg->data.val[0] && (m == MONITOR_VAL_LOSS || m == MONITOR_VAL_ACCURACY)) {
            snprintf(why, len,
                     "%s needs a validation split: set data.val (e.g. val = data.h5:/val), "
                     "monitor = train_loss (or auto), or enabled = false", MONITOR_NAMES[m]);
            return key_named("early_stopping", "monitor");
        }
        if (cfg->early_stopping.start_epoch > cfg->train.epochs) {
            snprintf(why, len,
                     "after the last epoch (train.epochs = %" PRId64 "): nothing would "
                     "be monitored",
                     cfg->train.epochs);
            return key_named("early_stopping", "start_epoch");
        }
    }
    return NULL;
}

static const Key *check_rules_with(const Config *cfg, const Config *def, char *why, size_t len)
{
    const Key *k = check_comm_rules(cfg, why, len);
    if (!k) k = check_model_rules(cfg, why, len);
    if (!k) k = check_optim_rules(cfg, def, why, len);
    if (!k) k = check_train_rules(cfg, why, len);
    if (!k) k = check_es_rules(cfg, why, len);
    return k;
}

/* The cross-key rules against the key table's defaults (out of memory for them: the rules
 * that compare with a default are skipped). */
static const Key *check_rules(const Config *cfg, char *why, size_t len)
{
    Config *def = malloc(sizeof *def);
    if (def) config_defaults(def);
    const Key *k = check_rules_with(cfg, def, why, len);
    free(def);
    return k;
}

bool config_changed(const Config *cfg, const char *section, const char *name)
{
    Config *def = malloc(sizeof *def);
    if (!def) return true; /* out of memory: as if given (the plan keeps the value) */
    config_defaults(def);
    bool c = changed(cfg, def, section, name);
    free(def);
    return c;
}

double config_memory_budget(const Config *cfg)
{
    double v = 0.0;
    return strutil_parse_bytes(cfg->data.memory_budget, &v) ? 0.0 : v;
}

Status config_validate(const Config *cfg, char *err, size_t errlen)
{
    char why[320], val[ECHO_MAX + 8];
    const Key *k = check_rules(cfg, why, sizeof why);
    if (!k) return XT_OK;
    value_echo(cfg, k, val, sizeof val);
    set_err(err, errlen, "%s.%s = %s: %s", k->section, k->name, val, why);
    return XT_ERR_USAGE;
}

/* ------------------------------------------------------------------------- */
/* Defaults, --set                                                             */
/* ------------------------------------------------------------------------- */

void config_defaults(Config *cfg)
{
    XT_ASSERT(cfg != NULL);
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < N_KEYS; i++) {
        char why[128];
        const char *bad = set_value(cfg, &KEYS[i], KEYS[i].def, false, why, sizeof why);
        XT_ASSERT(bad == NULL); /* a default that its own key rejects is a bug */
    }
}

/* Applies "section.key=value"; *set_key gets the key on success. */
static Status apply_assignment(Config *cfg, const char *assignment, const Key **set_key,
                               char *err, size_t errlen)
{
    char shown[ECHO_MAX + 8], kbuf[2 * LEV_MAX + 2], why[160], allowed[160];
    echo_value(assignment, shown, sizeof shown);
    const char *eq = strchr(assignment, '=');
    if (!eq) {
        set_err(err, errlen, "--set %s: expected section.key=value", shown);
        return XT_ERR_USAGE;
    }
    trim_copy(assignment, (size_t)(eq - assignment), kbuf, sizeof kbuf);
    char *dot = strchr(kbuf, '.');
    if (!dot) {
        const Key *hint = suggest_key("", kbuf);
        if (hint)
            set_err(err, errlen, "--set %s: expected section.key=value (did you mean '%s.%s'?)",
                    shown, hint->section, hint->name);
        else
            set_err(err, errlen, "--set %s: expected section.key=value", shown);
        return XT_ERR_USAGE;
    }
    *dot = '\0';
    const char *section = kbuf, *name = dot + 1;
    const Key *k = find_key(section, name);
    if (!k) {
        char text[512];
        unknown_key_text(section, name, text, sizeof text);
        set_err(err, errlen, "--set %s: %s", shown, text);
        return XT_ERR_USAGE;
    }
    size_t vlen = strlen(eq + 1);
    char *value = malloc(vlen + 1);
    if (!value) {
        set_err(err, errlen, "--set %s: out of memory", shown);
        return XT_ERR_RUNTIME;
    }
    trim_copy(eq + 1, vlen, value, vlen + 1);
    const char *bad = set_value(cfg, k, value, false, why, sizeof why);
    free(value);
    if (bad) {
        allowed_text(k, allowed, sizeof allowed);
        set_err(err, errlen, "--set %s: %s (allowed: %s)", shown, bad, allowed);
        return XT_ERR_USAGE;
    }
    *set_key = k;
    return XT_OK;
}

Status config_set(Config *cfg, const char *assignment, char *err, size_t errlen)
{
    XT_ASSERT(cfg != NULL && assignment != NULL);
    const Key *k = NULL;
    return apply_assignment(cfg, assignment, &k, err, errlen);
}

/* ------------------------------------------------------------------------- */
/* The INI file                                                                */
/* ------------------------------------------------------------------------- */

typedef struct {
    Config *cfg;
    const char *path;
    FILE *fp;
    int lineno;           /* lines handed to libinih so far */
    bool indented;        /* the current line starts with whitespace */
    const Key *last_key;  /* key of the previous name=value in this section: libinih's
                             prev_name, which an indented line continues */
    int line_of[N_KEYS];  /* line that set each key in the file, 0 = none */
    size_t set_of[N_KEYS];/* 1 + index of the --set that last set it, 0 = none */
    const char *text;     /* parsing text in memory (config_load_text), not a file */
    bool lenient;         /* unknown keys are skipped (text saved by another version) */
    char *line;           /* the current line, whole (grown as needed; freed by the parser) */
    size_t line_cap;
    char *stash;          /* the value of a line too long for libinih (in line) ... */
    int stash_line;       /* ... and its line number (0: none) */
    bool failed;
    int err_line;
    char *err;
    size_t errlen;
} LoadCtx;

XT_PRINTF_LIKE(2, 3)
static void ctx_fail(LoadCtx *ctx, const char *fmt, ...)
{
    if (ctx->failed) return;
    ctx->failed = true;
    ctx->err_line = ctx->lineno;
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    set_err(ctx->err, ctx->errlen, "%s:%d: %s", ctx->path, ctx->lineno, msg);
}

/* The longest line read (a list of XT_MAX_CLASSES numbers on one line fits easily). */
#define INI_LINE_MAX ((size_t)1 << 20)
/* What libinih is handed in place of a value the reader keeps (ini_on_pair swaps it). */
#define INI_STASHED "\x01"

/* Appends c to ctx->line (grown as needed); false at INI_LINE_MAX or out of memory. */
static bool line_push(LoadCtx *ctx, size_t n, char c)
{
    if (n + 2 > ctx->line_cap) {
        size_t cap = ctx->line_cap ? 2 * ctx->line_cap : 256;
        if (cap > INI_LINE_MAX) return false;
        char *p = realloc(ctx->line, cap);
        if (!p) return false;
        ctx->line = p;
        ctx->line_cap = cap;
    }
    ctx->line[n] = c;
    return true;
}

/* libinih's rule for the end of a name or value: the first of `chars` (NULL: none) or an
 * inline comment (';' after whitespace). */
static char *find_chars_or_comment(char *s, const char *chars)
{
    bool was_space = false;
    while (*s && !(chars && strchr(chars, *s)) && !(was_space && *s == ';')) {
        was_space = isspace((unsigned char)*s) != 0;
        s++;
    }
    return s;
}

/* A line longer than libinih's buffer (cap bytes): libinih would split it. The reader keeps
 * the value as libinih would have taken it (up to an inline comment, blanks trimmed: its
 * three rules) and hands libinih the line with INI_STASHED in place of the value, so that
 * libinih still decides sections, comments, names and continuations. Values of any length
 * thus read back (a 1,000-character run.dir stored in a checkpoint's config, or written
 * by a user). */
static char *ini_long_line(LoadCtx *ctx, char *str, size_t cap)
{
    char *line = ctx->line, *s = line;
    while (isspace((unsigned char)*s)) s++;
    if (*s == ';' || *s == '#') { /* a long comment */
        snprintf(str, cap, ";\n");
        return str;
    }
    bool cont = ctx->indented && ctx->last_key != NULL; /* libinih: a continuation line */
    size_t head = 0;
    char *value = s;
    if (!cont) {
        char *sep = find_chars_or_comment(s, "=:");
        if (*s == '[' || (*sep != '=' && *sep != ':')) {
            ctx_fail(ctx, "a line of %zu characters that is not 'key = value' (a section name or "
                          "a key cannot be that long)", strlen(line));
            return NULL;
        }
        head = (size_t)(sep + 1 - line);
        value = sep + 1;
    }
    if (head + sizeof INI_STASHED + 3 > cap) {
        ctx_fail(ctx, "a key name of %zu characters (keys are short: see xentrain --help-config)",
                 head);
        return NULL;
    }
    char *end = find_chars_or_comment(value, NULL);
    *end = '\0';
    while (end > value && isspace((unsigned char)end[-1])) *--end = '\0';
    while (isspace((unsigned char)*value)) value++;
    ctx->stash = value;
    ctx->stash_line = ctx->lineno;
    if (cont) snprintf(str, cap, " %s\n", INI_STASHED);
    else snprintf(str, cap, "%.*s%s\n", (int)head, line, INI_STASHED);
    return str;
}

/* libinih's line source: one whole line per call, counted; a line that does not fit
 * libinih's buffer (num) goes through ini_long_line. Stops the parse once an error is
 * recorded. */
static char *ini_read_line(char *str, int num, void *stream)
{
    LoadCtx *ctx = stream;
    ctx->stash_line = 0;
    if (ctx->failed || num < 16) return NULL;
    size_t cap = (size_t)num, n = 0;
    bool too_long = false, nul = false;
    int c;
    while ((c = getc(ctx->fp)) != EOF) {
        if (c == '\0') nul = true;
        if (!too_long && line_push(ctx, n, (char)c)) n++;
        else too_long = true;
        if (c == '\n') break;
    }
    if (ferror(ctx->fp)) {
        ctx->lineno++;
        ctx_fail(ctx, "read error: %s", strerror(errno));
        return NULL;
    }
    if (n == 0 && !too_long) return NULL; /* end of file */
    ctx->lineno++;
    if (too_long) {
        ctx_fail(ctx, "line longer than %zu bytes", INI_LINE_MAX);
        return NULL;
    }
    ctx->line[n] = '\0';
    while (n > 0 && (ctx->line[n - 1] == '\n' || ctx->line[n - 1] == '\r')) ctx->line[--n] = '\0';
    if (nul) {
        ctx_fail(ctx, "contains a NUL byte: not a text file?");
        return NULL;
    }
    const char *s = ctx->line; /* a UTF-8 BOM on line 1 cannot matter: no key precedes it */
    ctx->indented = isspace((unsigned char)*s) != 0;
    while (isspace((unsigned char)*s)) s++;
    bool section = *s == '[';
    char *out = n + 3 > cap ? ini_long_line(ctx, str, cap) : str;
    if (out == str && n + 3 <= cap) snprintf(str, cap, "%s\n", ctx->line);
    if (section) ctx->last_key = NULL; /* libinih forgets prev_name at a section */
    return out;
}

/* A value in matching quotes ("runs/a b" or 'x') means what is inside them: INI files
 * written by other tools (Python's configparser users, shells) quote paths. buf may be v
 * itself (a long line's value is unquoted in place). */
static const char *unquote(const char *v, char *buf, size_t len)
{
    size_t n = strlen(v);
    if (n < 2 || n - 1 > len || (v[0] != '"' && v[0] != '\'') || v[n - 1] != v[0]) return v;
    memmove(buf, v + 1, n - 2);
    buf[n - 2] = '\0';
    return buf;
}

static int ini_on_pair(void *user, const char *raw_section, const char *name, const char *value)
{
    LoadCtx *ctx = user;
    if (ctx->failed) return 0;
    char unquoted[INI_MAX_LINE + 1];
    if (ctx->stash_line == ctx->lineno && ctx->stash) /* a long line's, unquoted in place */
        value = unquote(ctx->stash, ctx->stash, strlen(ctx->stash) + 1);
    else
        value = unquote(value, unquoted, sizeof unquoted);
    char section[LEV_MAX + 1], shown[ECHO_MAX + 8], why[160], allowed[160];
    trim_copy(raw_section, strlen(raw_section), section, sizeof section);
    echo_value(value, shown, sizeof shown);
    const Key *k = find_key(section, name);
    if (!k && ctx->lenient) return 1;
    if (!k) {
        char text[512];
        unknown_key_text(section, name, text, sizeof text);
        ctx_fail(ctx, "%s", text);
        return 0;
    }
    size_t idx = (size_t)(k - KEYS);
    bool continuation = ctx->indented && ctx->last_key == k;
    if (continuation && k->type != KT_LIST) {
        ctx_fail(ctx,
                 "%s.%s: this indented line ('%s') continues the value of '%s' (INI "
                 "continuation); only lists may span lines: remove the indentation",
                 k->section, k->name, shown, k->name);
        return 0;
    }
    if (!continuation && ctx->line_of[idx]) {
        ctx_fail(ctx,
                 "%s.%s = %s: duplicate key, already set on line %d (give it once; "
                 "use --set to override)",
                 k->section, k->name, shown, ctx->line_of[idx]);
        return 0;
    }
    const char *bad = set_value(ctx->cfg, k, value, continuation, why, sizeof why);
    if (bad) {
        allowed_text(k, allowed, sizeof allowed);
        /* "lr = 0.5 # half": only ';' starts a comment after a value in an INI file */
        bool hash = k->type != KT_STRING && strstr(value, " #") != NULL;
        ctx_fail(ctx, "%s.%s = %s: %s (allowed: %s)%s", k->section, k->name, shown, bad, allowed,
                 hash ? "; a comment after a value starts with ';', not '#'" : "");
        return 0;
    }
    if (!continuation) ctx->line_of[idx] = ctx->lineno;
    ctx->last_key = k;
    return 1;
}

/* Copies line `want` (1-based) of the file, without its newline, for a message. */
static void read_line_at(const char *path, int want, char *buf, size_t len)
{
    buf[0] = '\0';
    FILE *fp = fopen(path, "r");
    if (!fp) return;
    int line = 1, c;
    size_t n = 0;
    while ((c = getc(fp)) != EOF && line <= want) {
        if (c == '\n') {
            line++;
        } else if (line == want && c != '\r' && n + 1 < len) {
            buf[n++] = (char)c;
        }
    }
    buf[n] = '\0';
    fclose(fp);
}

static Status parse_stream(LoadCtx *ctx);

static Status parse_file(LoadCtx *ctx)
{
    const char *path = ctx->path;
    struct stat st;
    if (stat(path, &st) != 0) {
        set_err(ctx->err, ctx->errlen, "config file '%s': %s%s", path, strerror(errno),
                errno == ENOENT ? " (configs/ holds examples)" : "");
        return XT_ERR_USAGE;
    }
    if (S_ISDIR(st.st_mode)) {
        set_err(ctx->err, ctx->errlen, "config file '%s' is a directory, not an INI file",
                path);
        return XT_ERR_USAGE;
    }
    if (!S_ISREG(st.st_mode)) {
        set_err(ctx->err, ctx->errlen, "config file '%s' is not a regular file", path);
        return XT_ERR_USAGE;
    }
    ctx->fp = fopen(path, "r");
    if (!ctx->fp) {
        set_err(ctx->err, ctx->errlen, "cannot read config file '%s': %s", path,
                strerror(errno));
        return XT_ERR_USAGE;
    }
    return parse_stream(ctx);
}

/* Parses ctx->fp (closed here) with libinih through the counting line reader. */
static Status parse_stream(LoadCtx *ctx)
{
    const char *path = ctx->path;
    int rc = ini_parse_stream(ini_read_line, ctx, ini_on_pair, ctx);
    fclose(ctx->fp);
    ctx->fp = NULL;
    free(ctx->line);
    ctx->line = NULL;
    ctx->line_cap = 0;
    if (rc == -2) {
        set_err(ctx->err, ctx->errlen, "%s: out of memory while parsing", path);
        return XT_ERR_RUNTIME;
    }
    if (rc > 0 && (!ctx->failed || rc < ctx->err_line)) {
        /* libinih found a line that is neither a pair, a section nor a comment */
        char text[ECHO_MAX + 8], line[256] = "";
        if (!ctx->text) read_line_at(path, rc, line, sizeof line);
        echo_value(line, text, sizeof text);
        set_err(ctx->err, ctx->errlen,
                "%s:%d: syntax error in '%s': expected 'key = value', '[section]' or a "
                "'; comment'",
                path, rc, text);
        return XT_ERR_USAGE;
    }
    return ctx->failed ? XT_ERR_USAGE : XT_OK;
}

/* run.dir = runs/<file name without its last extension>. */
static bool derive_run_dir(Config *cfg, const char *path)
{
    const char *base = path ? strrchr(path, '/') : NULL;
    base = base ? base + 1 : path;
    size_t n = base ? strlen(base) : 0;
    const char *dot = base ? strrchr(base, '.') : NULL;
    if (dot && dot > base) n = (size_t)(dot - base);
    if (n == 0) {
        base = "default";
        n = strlen(base);
    }
    int w = snprintf(cfg->run.dir, sizeof cfg->run.dir, "runs/%.*s", (int)n, base);
    return w > 0 && (size_t)w < sizeof cfg->run.dir;
}

/* Runs the cross-key rules; a failure names where the blamed key was set (the --set,
 * the file and line, or its default). */
static Status report_rules(const LoadCtx *ctx, const char *const *overrides)
{
    char why[320], val[ECHO_MAX + 8], shown[ECHO_MAX + 8];
    const Config *cfg = ctx->cfg;
    const char *path = ctx->path;
    const Key *k = check_rules(cfg, why, sizeof why);
    if (!k) return XT_OK;
    size_t idx = (size_t)(k - KEYS);
    value_echo(cfg, k, val, sizeof val);
    if (ctx->set_of[idx]) {
        echo_value(overrides[ctx->set_of[idx] - 1], shown, sizeof shown);
        set_err(ctx->err, ctx->errlen, "--set %s: %s", shown, why);
    } else if (ctx->line_of[idx]) {
        set_err(ctx->err, ctx->errlen, "%s:%d: %s.%s = %s: %s", path, ctx->line_of[idx],
                k->section, k->name, val, why);
    } else {
        set_err(ctx->err, ctx->errlen, "%s%s%s.%s = %s (default): %s", path ? path : "",
                path ? ": " : "", k->section, k->name, val, why);
    }
    return XT_ERR_USAGE;
}

Status config_load(Config *cfg, const char *path, const char *const *overrides,
                   size_t n_overrides, char *err, size_t errlen)
{
    XT_ASSERT(cfg != NULL);
    XT_ASSERT(n_overrides == 0 || overrides != NULL);
    if (err && errlen) err[0] = '\0';
    config_defaults(cfg);

    LoadCtx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        set_err(err, errlen, "out of memory");
        return XT_ERR_RUNTIME;
    }
    ctx->cfg = cfg;
    ctx->path = path;
    ctx->err = err;
    ctx->errlen = errlen;
    Status st = XT_OK;

    if (path) {
        if (strlen(path) >= sizeof cfg->source) {
            set_err(err, errlen, "config file path is longer than %zu characters",
                    sizeof cfg->source - 1);
            st = XT_ERR_USAGE;
            goto cleanup;
        }
        snprintf(cfg->source, sizeof cfg->source, "%s", path);
        st = parse_file(ctx);
        if (st != XT_OK) goto cleanup;
    }
    for (size_t i = 0; i < n_overrides; i++) {
        const Key *k = NULL;
        st = apply_assignment(cfg, overrides[i], &k, err, errlen);
        if (st != XT_OK) goto cleanup;
        ctx->set_of[k - KEYS] = i + 1;
    }
    if (!cfg->run.dir[0] && !derive_run_dir(cfg, path)) {
        set_err(err, errlen, "run.dir derived from '%s' is too long: set run.dir", path);
        st = XT_ERR_USAGE;
        goto cleanup;
    }

    st = report_rules(ctx, overrides);

cleanup:
    free(ctx);
    return st;
}

Status config_load_text(Config *cfg, const char *text, const char *label, char *err,
                        size_t errlen)
{
    XT_ASSERT(cfg != NULL && text != NULL && label != NULL);
    if (err && errlen) err[0] = '\0';
    config_defaults(cfg);
    if (!text[0]) return XT_OK;
    LoadCtx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        set_err(err, errlen, "out of memory");
        return XT_ERR_RUNTIME;
    }
    *ctx = (LoadCtx){.cfg = cfg, .path = label, .text = text, .lenient = true, .err = err,
                     .errlen = errlen};
    ctx->fp = fmemopen((void *)text, strlen(text), "r");
    Status st = XT_ERR_RUNTIME;
    if (!ctx->fp) set_err(err, errlen, "%s: cannot read the text: %s", label, strerror(errno));
    else st = parse_stream(ctx);
    free(ctx);
    return st;
}

/* ------------------------------------------------------------------------- */
/* Comparing and describing                                                    */
/* ------------------------------------------------------------------------- */

static bool key_selected(const Key *k, ConfigKeys which)
{
    bool traj = (k->flags & KEY_TRAJ) != 0;
    return which == CONFIG_KEYS_TRAJECTORY ? traj : !traj && !(k->flags & KEY_RUN);
}

/* Whether a key has the same effective value in a and b (lists element by element; a
 * message's echo is cut short, so it cannot decide). */
static bool values_equal(const Config *a, const Config *b, const Key *k)
{
    if (k->type == KT_LIST) {
        int n = load_int(a, k->count_offset);
        if (n != load_int(b, k->count_offset)) return false;
        size_t elem = k->elem == KT_INT ? sizeof(int64_t) : sizeof(double);
        return memcmp(cfield_at(a, k->offset), cfield_at(b, k->offset), (size_t)n * elem) == 0;
    }
    char va[XT_PATH_MAX + 8], vb[XT_PATH_MAX + 8];
    Sink sa = {va, sizeof va, 0, 0}, sb = {vb, sizeof vb, 0, 0};
    va[0] = vb[0] = '\0';
    format_value(a, k, &sa, 0);
    format_value(b, k, &sb, 0);
    return strcmp(va, vb) == 0;
}

size_t config_diff(const Config *a, const Config *b, ConfigKeys which, char *buf, size_t len)
{
    XT_ASSERT(a != NULL && b != NULL && (buf != NULL || len == 0));
    Sink out = {buf, len, 0, 0};
    if (len > 0) buf[0] = '\0';
    size_t n = 0;
    for (size_t i = 0; i < N_KEYS; i++) {
        const Key *k = &KEYS[i];
        if (!key_selected(k, which)) continue;
        if (values_equal(a, b, k)) continue;
        char va[ECHO_MAX + 8], vb[ECHO_MAX + 8];
        value_echo(a, k, va, sizeof va);
        value_echo(b, k, vb, sizeof vb);
        sink_printf(&out, "%s%s.%s: '%s' -> '%s'", n ? "; " : "", k->section, k->name, va, vb);
        n++;
    }
    return n;
}

size_t config_settings_text(const Config *cfg, char *buf, size_t len)
{
    XT_ASSERT(cfg != NULL && (buf != NULL || len == 0));
    Sink s = {buf, len, 0, 0};
    if (len > 0) buf[0] = '\0';
    const char *section = NULL;
    for (size_t i = 0; i < N_KEYS; i++) {
        const Key *k = &KEYS[i];
        if (!section || strcmp(section, k->section) != 0) {
            if (section) sink_newline(&s);
            section = k->section;
            sink_printf(&s, "[%s]", section);
        }
        sink_printf(&s, " %s=", k->name);
        format_value(cfg, k, &s, 0);
    }
    if (section) sink_newline(&s);
    return s.pos;
}

/* ------------------------------------------------------------------------- */
/* Output: resolved INI, reference                                             */
/* ------------------------------------------------------------------------- */

size_t config_to_ini(const Config *cfg, char *buf, size_t len)
{
    XT_ASSERT(cfg != NULL);
    XT_ASSERT(buf != NULL || len == 0);
    Sink s = {buf, len, 0, 0};
    if (len > 0) buf[0] = '\0';
    sink_printf(&s, "; xentrain %s: resolved configuration (every key, effective values)",
                XT_VERSION);
    sink_newline(&s);
    if (cfg->source[0] && strlen(cfg->source) < 150) {
        sink_printf(&s, "; source: %s", cfg->source);
        sink_newline(&s);
    }
    const char *section = "";
    for (size_t i = 0; i < N_KEYS; i++) {
        const Key *k = &KEYS[i];
        if (strcmp(section, k->section) != 0) {
            section = k->section;
            sink_newline(&s);
            sink_printf(&s, "[%s]", section);
            sink_newline(&s);
        }
        char allowed[160];
        allowed_text(k, allowed, sizeof allowed);
        sink_printf(&s, "; %s (allowed: %s)", k->help, allowed);
        sink_newline(&s);
        sink_printf(&s, "%s = ", k->name);
        format_value(cfg, k, &s, 100);
        sink_newline(&s);
    }
    return s.pos;
}

/* Writes text for a Markdown table cell: '|' escaped, "<word" as "&lt;word". */
static void md_cell(FILE *out, const char *text)
{
    for (const char *p = text; *p; p++) {
        if (*p == '|') fputc('\\', out);
        if (*p == '<' && isalpha((unsigned char)p[1])) /* not an HTML tag */
            fputs("&lt;", out);
        else
            fputc(*p, out);
    }
}

Status config_write_reference(FILE *out, const char *format)
{
    XT_ASSERT(out != NULL);
    bool md;
    if (!format || strcmp(format, "text") == 0)
        md = false;
    else if (strcmp(format, "md") == 0)
        md = true;
    else
        return XT_ERR_USAGE;

    char allowed[160];
    if (md) {
        fputs("| key | default | allowed | meaning |\n| --- | --- | --- | --- |\n", out);
        for (size_t i = 0; i < N_KEYS; i++) {
            const Key *k = &KEYS[i];
            allowed_text(k, allowed, sizeof allowed);
            fprintf(out, "| `%s.%s` | ", k->section, k->name);
            if (k->def[0]) {
                fputc('`', out);
                md_cell(out, k->def);
                fputc('`', out);
            } else {
                fputs("(empty)", out);
            }
            fputs(" | ", out);
            md_cell(out, allowed);
            fputs(" | ", out);
            md_cell(out, k->help);
            fputs(" |\n", out);
        }
    } else {
        fputs("Configuration keys: INI sections in CONFIG.ini; override any key with\n"
              "--set section.key=value (applied after the file, in order).\n",
              out);
        const char *section = "";
        for (size_t i = 0; i < N_KEYS; i++) {
            const Key *k = &KEYS[i];
            if (strcmp(section, k->section) != 0) {
                section = k->section;
                fprintf(out, "\n[%s]\n", section);
            }
            allowed_text(k, allowed, sizeof allowed);
            fprintf(out, "  %s = %s\n      %s\n      allowed: %s\n", k->name,
                    k->def[0] ? k->def : "(empty)", k->help, allowed);
        }
    }
    return ferror(out) ? XT_ERR_RUNTIME : XT_OK;
}

void config_print_reference(const char *format)
{
    if (config_write_reference(stdout, format) == XT_ERR_USAGE)
        (void)config_write_reference(stdout, "text");
}

/* ------------------------------------------------------------------------- */
/* Names                                                                       */
/* ------------------------------------------------------------------------- */

static const char *choice_name(const char *const *names, int v)
{
    for (int i = 0; names[i]; i++)
        if (i == v) return names[i];
    return "?";
}

const char *config_model_type_name(ModelType t) { return choice_name(MODEL_NAMES, (int)t); }
const char *config_activation_name(Activation a) { return choice_name(ACTIVATION_NAMES, (int)a); }
const char *config_normalize_name(Normalize n) { return choice_name(NORMALIZE_NAMES, (int)n); }
const char *config_head_name(Head h) { return choice_name(HEAD_NAMES, (int)h); }
const char *config_monitor_name(Monitor m) { return choice_name(MONITOR_NAMES, (int)m); }
