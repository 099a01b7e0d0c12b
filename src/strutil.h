/* strutil: small string helpers shared by the two option tables (config keys and
 * subcommand options): strict number parsing, case-insensitive comparison, the edit
 * distance behind "did you mean" hints, and byte counts for messages.
 *
 * Parsers take a whole string without surrounding blanks and return NULL on success or
 * a short reason ("not an integer", "out of range"); they never print. Local; no
 * allocation.
 */
#ifndef XT_STRUTIL_H
#define XT_STRUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest string the edit distance looks at; longer ones count as far from anything. */
#define STRUTIL_EDIT_MAX 64

const char *strutil_parse_i64(const char *s, int64_t *out);
/* A leading '-' is refused (strtoull would wrap it). */
const char *strutil_parse_u64(const char *s, uint64_t *out);
/* Finite numbers only: NaN, Inf and overflow are refused; underflow reads as 0 or a
 * subnormal and is kept. */
const char *strutil_parse_f64(const char *s, double *out);
/* A byte count: a non-negative number with an optional suffix K, M, G, T (powers of 1024;
 * KiB, MiB, GiB, TiB and KB, MB, GB, TB mean the same), any case, e.g. "512M", "1.5GiB". */
const char *strutil_parse_bytes(const char *s, double *out);
/* true/false, yes/no, on/off, 1/0 in any case. */
const char *strutil_parse_bool(const char *s, bool *out);

/* ASCII case-insensitive equality. */
bool strutil_ieq(const char *a, const char *b);
/* Case-insensitive Levenshtein distance (insert, delete, substitute); SIZE_MAX when a
 * string is longer than STRUTIL_EDIT_MAX. */
size_t strutil_edit_distance(const char *a, const char *b);

/* "1.5 GiB" */
void strutil_human_bytes(double bytes, char *buf, size_t len);

#endif
