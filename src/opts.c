#include "opts.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "log.h"
#include "strutil.h"

/* Width of the option column in help. */
#define OPTS_HELP_COLUMN 26
/* An unknown option is matched to a known one within this edit distance. */
#define OPTS_SUGGEST_MAX 3

static bool takes_value(const OptSpec *o) { return o->type != OPT_FLAG && o->type != OPT_SET; }

static const OptSpec *find(const OptTable *t, const char *name, size_t len)
{
    for (size_t i = 0; i < t->n_opts; i++)
        if (strlen(t->opts[i].name) == len && !strncmp(t->opts[i].name, name, len))
            return &t->opts[i];
    return NULL;
}

static const OptSpec *nearest(const OptTable *t, const char *name)
{
    const OptSpec *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; i < t->n_opts; i++) {
        size_t d = strutil_edit_distance(name, t->opts[i].name);
        if (d < best_d) {
            best_d = d;
            best = &t->opts[i];
        }
    }
    return best_d <= OPTS_SUGGEST_MAX ? best : NULL;
}

/* Above this an upper bound is not worth printing. */
#define OPTS_SHOWN_MAX 1e12

/* "1 <= N <= 9", "0 <= f < 1", "D >= 1" for messages */
static void range_text(const OptSpec *o, char *buf, size_t len)
{
    const char *v = o->metavar ? o->metavar : "value";
    if (o->lo < o->hi && o->hi > OPTS_SHOWN_MAX)
        snprintf(buf, len, "%s >= %.15g", v, o->lo);
    else if (o->lo < o->hi)
        snprintf(buf, len, "%.15g <= %s %s %.15g", o->lo, v, o->hi_open ? "<" : "<=", o->hi);
    else
        snprintf(buf, len, "%s", o->type == OPT_DOUBLE ? "a finite number" : "an integer >= 0");
}

static Status set_value(const OptTable *t, const OptSpec *o, const char *v)
{
    const char *bad = NULL;
    double num = 0.0;
    switch (o->type) {
    case OPT_STRING: *(const char **)o->dest = v; return XT_OK;
    case OPT_LIST:
        if (*o->count >= o->cap) {
            log_error0("%s: more than %zu --%s options", t->cmd, o->cap, o->name);
            return XT_ERR_USAGE;
        }
        ((const char **)o->dest)[(*o->count)++] = v;
        return XT_OK;
    case OPT_U64: bad = strutil_parse_u64(v, (uint64_t *)o->dest); break;
    case OPT_SIZE: {
        uint64_t u = 0;
        bad = strutil_parse_u64(v, &u);
        num = (double)u;
        if (!bad && u > SIZE_MAX) bad = "out of range";
        if (!bad) *(size_t *)o->dest = (size_t)u;
        break;
    }
    case OPT_DOUBLE:
        bad = strutil_parse_f64(v, &num);
        if (!bad) *(double *)o->dest = num;
        break;
    case OPT_FLAG:
    case OPT_SET: break;
    }
    if (!bad && o->lo < o->hi &&
        !(num >= o->lo && (o->hi_open ? num < o->hi : num <= o->hi)))
        bad = "out of range";
    if (bad) {
        char allowed[96];
        range_text(o, allowed, sizeof allowed);
        log_error0("%s: --%s '%s': %s (allowed: %s)", t->cmd, o->name, v, bad, allowed);
        return XT_ERR_USAGE;
    }
    return XT_OK;
}

static Status unknown(const OptTable *t, const char *arg, const char *name)
{
    const OptSpec *hint = nearest(t, name);
    if (hint)
        log_error0("%s: unknown option '%s' (did you mean --%s? see xentrain %s --help)", t->cmd,
                   arg, hint->name, t->cmd);
    else
        log_error0("%s: unknown option '%s' (see xentrain %s --help)", t->cmd, arg, t->cmd);
    return XT_ERR_USAGE;
}

/* One "--name[=value]" at argv[*i]; consumes its value when separate. */
static Status parse_option(const OptTable *t, int argc, char **argv, int *i, bool *seen)
{
    const char *a = argv[*i], *name = a + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const OptSpec *o = find(t, name, len);
    if (!o) {
        char shown[64];
        snprintf(shown, sizeof shown, "%.*s", (int)(len < 60 ? len : 60), name);
        return unknown(t, a, shown);
    }
    seen[o - t->opts] = true;
    if (o->given) *o->given = true;
    if (!takes_value(o)) {
        if (eq) {
            log_error0("%s: --%s takes no value (got '%s')", t->cmd, o->name, eq + 1);
            return XT_ERR_USAGE;
        }
        if (o->type == OPT_FLAG) *(bool *)o->dest = true;
        else *(int *)o->dest = o->ival;
        return XT_OK;
    }
    const char *v = eq ? eq + 1 : NULL;
    if (!v) {
        if (*i + 1 >= argc) {
            log_error0("%s: --%s needs a value (%s)", t->cmd, o->name, o->metavar);
            return XT_ERR_USAGE;
        }
        v = argv[++*i];
    }
    return set_value(t, o, v);
}

Status opts_parse(const OptTable *t, int argc, char **argv, bool *help)
{
    *help = false;
    if (t->n_pos) *t->n_pos = 0;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            *help = true;
            return XT_OK;
        }
    bool seen[64] = {false};
    XT_ASSERT(t->n_opts <= sizeof seen / sizeof seen[0]);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        Status st = XT_OK;
        if (!strncmp(a, "--", 2) && a[2]) {
            st = parse_option(t, argc, argv, &i, seen);
        } else if (a[0] == '-' && a[1]) {
            st = unknown(t, a, a + 1);
        } else if (t->positional && *t->n_pos < t->pos_cap) {
            t->pos[(*t->n_pos)++] = a;
        } else {
            log_error0("%s: unexpected argument '%s' (see xentrain %s --help)", t->cmd, a, t->cmd);
            st = XT_ERR_USAGE;
        }
        if (st != XT_OK) return st;
    }
    for (size_t k = 0; k < t->n_opts; k++)
        if (t->opts[k].required && !seen[k]) {
            log_error0("%s: --%s %s is required (see xentrain %s --help)", t->cmd,
                       t->opts[k].name, t->opts[k].metavar ? t->opts[k].metavar : "", t->cmd);
            return XT_ERR_USAGE;
        }
    return XT_OK;
}

void opts_print_help(const OptTable *t, FILE *f)
{
    fprintf(f, "usage: xentrain %s %s\n", t->cmd, t->synopsis);
    if (t->about) fprintf(f, "\n%s\n", t->about);
    fprintf(f, "\noptions:\n");
    for (size_t i = 0; i < t->n_opts; i++) {
        const OptSpec *o = &t->opts[i];
        char head[64];
        int w = snprintf(head, sizeof head, "  --%s%s%s", o->name, o->metavar ? " " : "",
                         o->metavar ? o->metavar : "");
        fputs(head, f);
        const char *h = o->help;
        int col = w;
        if (col >= OPTS_HELP_COLUMN) {
            fputc('\n', f);
            col = 0;
        }
        for (;;) {
            const char *nl = strchr(h, '\n');
            int n = nl ? (int)(nl - h) : (int)strlen(h);
            fprintf(f, "%*s%.*s\n", OPTS_HELP_COLUMN - col, "", n, h);
            if (!nl) break;
            h = nl + 1;
            col = 0;
        }
    }
    fprintf(f, "  -h, --help%*sthis text\n", OPTS_HELP_COLUMN - 12, "");
    if (t->epilog) fprintf(f, "\n%s\n", t->epilog);
}
