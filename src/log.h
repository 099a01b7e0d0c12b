/* log: rank-aware printing.
 *
 * log_info/log_warn print only on rank 0 (progress, banners, summaries).
 * log_error prints on the calling rank with a "[rank r]" prefix when P > 1, for
 * failures a rank detects on its own. Messages go to stderr except log_info (stdout).
 * The rank is set once at start-up (log_set_rank); before that every process is rank 0.
 */
#ifndef XT_LOG_H
#define XT_LOG_H

#include <stdbool.h>

void log_set_rank(int rank, int nranks);
int log_rank(void);
void log_set_quiet(bool quiet); /* silences log_info (tests) */

#if defined(__GNUC__)
#define XT_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define XT_PRINTF(a, b)
#endif

void log_info(const char *fmt, ...) XT_PRINTF(1, 2);   /* rank 0 only, stdout */
void log_warn(const char *fmt, ...) XT_PRINTF(1, 2);   /* rank 0 only, stderr */
void log_error(const char *fmt, ...) XT_PRINTF(1, 2);  /* this rank, stderr */
void log_error0(const char *fmt, ...) XT_PRINTF(1, 2); /* rank 0 only, stderr */

#endif
