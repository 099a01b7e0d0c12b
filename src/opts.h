/* opts: one option table per subcommand (train, eval, predict, convert, gen).
 *
 * A table lists every option once, with its type, destination, value name, range and
 * help text; the same table drives parsing, `--help` and the hints in error messages,
 * as the config key table does for INI keys (config.h). Conventions, the same for every
 * subcommand:
 *   - `--name value` and `--name=value` both work; flags take no value;
 *   - `-h` or `--help` anywhere asks for help (the caller prints opts_print_help);
 *   - an unknown option names the closest one ("did you mean --rows?");
 *   - numbers are parsed strictly (no trailing characters) and range-checked;
 *   - positional arguments are accepted only where the table names them.
 * Messages go to rank 0's stderr (every rank parses the same argv), prefixed with the
 * subcommand, and name the option, the value and what is allowed. Local.
 */
#ifndef XT_OPTS_H
#define XT_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "error.h"

typedef enum {
    OPT_STRING, /* const char **dest (borrowed from argv) */
    OPT_SIZE,   /* size_t *dest, in [lo, hi] */
    OPT_U64,    /* uint64_t *dest, any value (seeds) */
    OPT_DOUBLE, /* double *dest, in [lo, hi] */
    OPT_FLAG,   /* bool *dest = true; no value */
    OPT_SET,    /* int *dest = ival; no value (one of several exclusive flags) */
    OPT_LIST    /* const char *dest[cap], *count of them; may repeat */
} OptType;

typedef struct {
    const char *name;    /* without the dashes: "rows" is --rows */
    OptType type;
    void *dest;
    const char *metavar; /* the value's name in help ("N", "F.h5"); NULL for flags */
    const char *help;    /* help text; '\n' continues on the next line */
    double lo, hi;       /* OPT_SIZE, OPT_DOUBLE: range [lo, hi], checked when lo < hi */
    bool hi_open;        /* the range is [lo, hi) */
    int ival;            /* OPT_SET */
    size_t cap;          /* OPT_LIST capacity */
    size_t *count;       /* OPT_LIST: how many were given */
    bool *given;         /* optional: set when the option appears */
    bool required;
} OptSpec;

typedef struct {
    const char *cmd;        /* "convert csv": prefixes messages and help */
    const char *synopsis;   /* "--input F [options] --out F.h5" */
    const char *about;      /* paragraphs printed by --help before the options */
    const OptSpec *opts;
    size_t n_opts;
    const char *positional; /* value name of positional arguments; NULL: none allowed */
    const char **pos;       /* receives them (borrowed from argv) */
    size_t pos_cap;
    size_t *n_pos;
    const char *epilog;     /* printed after the options */
} OptTable;

/* Parses argv[1..argc) (argv[0] is the subcommand's name). On -h/--help sets *help and
 * returns XT_OK at once. Returns XT_ERR_USAGE with a message on rank 0 for anything
 * else that is wrong, including a missing required option. Local. */
Status opts_parse(const OptTable *t, int argc, char **argv, bool *help);

/* The help text: "usage: xentrain CMD SYNOPSIS", about, the options, epilog. */
void opts_print_help(const OptTable *t, FILE *f);

#endif
