#include "strutil.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *strutil_parse_i64(const char *s, int64_t *out)
{
    if (!*s) return "empty value";
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end) return "not an integer";
    if (errno == ERANGE) return "out of range";
    *out = (int64_t)v;
    return NULL;
}

const char *strutil_parse_u64(const char *s, uint64_t *out)
{
    if (!*s) return "empty value";
    if (*s == '-') return "not an unsigned integer";
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end) return "not an unsigned integer";
    if (errno == ERANGE) return "out of range";
    *out = (uint64_t)v;
    return NULL;
}

const char *strutil_parse_f64(const char *s, double *out)
{
    if (!*s) return "empty value";
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end) return "not a number";
    if (isnan(v) || (isinf(v) && errno != ERANGE)) return "not a finite number";
    if (errno == ERANGE && isinf(v)) return "out of range (overflow)";
    *out = v;
    return NULL;
}

const char *strutil_parse_bytes(const char *s, double *out)
{
    if (!*s) return "empty value";
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || !isfinite(v) || v < 0) return "not a non-negative number";
    static const char *const units = "KMGT";
    double mul = 1.0;
    if (*end) {
        const char *u = strchr(units, toupper((unsigned char)*end));
        if (!u) return "unknown unit";
        for (const char *p = units; p <= u; p++) mul *= 1024.0;
        end++;
        if (strutil_ieq(end, "iB") || strutil_ieq(end, "B")) end += strlen(end);
        if (*end) return "unknown unit";
    }
    *out = v * mul;
    return NULL;
}

const char *strutil_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    if (!*s) return "empty value";
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strutil_ieq(s, yes[i])) {
            *out = true;
            return NULL;
        }
        if (strutil_ieq(s, no[i])) {
            *out = false;
            return NULL;
        }
    }
    return "not a boolean";
}

bool strutil_ieq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return false;
    return *a == *b;
}

size_t strutil_edit_distance(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    if (na > STRUTIL_EDIT_MAX || nb > STRUTIL_EDIT_MAX) return SIZE_MAX;
    size_t prev[STRUTIL_EDIT_MAX + 1], cur[STRUTIL_EDIT_MAX + 1];
    for (size_t j = 0; j <= nb; j++) prev[j] = j;
    for (size_t i = 1; i <= na; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t sub = prev[j - 1] +
                         (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            size_t best = sub < del ? sub : del;
            cur[j] = best < ins ? best : ins;
        }
        memcpy(prev, cur, (nb + 1) * sizeof prev[0]);
    }
    return prev[nb];
}

void strutil_human_bytes(double bytes, char *buf, size_t len)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    size_t u = 0;
    while (bytes >= 1024.0 && u + 1 < sizeof unit / sizeof unit[0]) {
        bytes /= 1024.0;
        u++;
    }
    snprintf(buf, len, "%.1f %s", bytes, unit[u]);
}
