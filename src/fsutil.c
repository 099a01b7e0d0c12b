#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

Status fsutil_mkdirs(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        log_error("directory path too long: %s", path);
        return XT_ERR_USAGE;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
            log_error("cannot create directory %s: %s", buf, strerror(errno));
            return XT_ERR_RUNTIME;
        }
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
        log_error("cannot create directory %s: %s", buf, strerror(errno));
        return XT_ERR_RUNTIME;
    }
    if (!fsutil_is_dir(buf)) {
        log_error("%s exists and is not a directory", buf);
        return XT_ERR_RUNTIME;
    }
    return XT_OK;
}

Status fsutil_check_writable_dir(const char *dir)
{
    if (!fsutil_is_dir(dir)) {
        log_error("%s is not a directory", dir);
        return XT_ERR_RUNTIME;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        log_error("run directory %s is not writable: %s", dir, strerror(errno));
        return XT_ERR_RUNTIME;
    }
    return XT_OK;
}

Status fsutil_join(char *buf, size_t len, const char *dir, const char *name)
{
    int n = snprintf(buf, len, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= len) {
        log_error("path too long: %s/%s", dir, name);
        return XT_ERR_USAGE;
    }
    return XT_OK;
}

/* 48 random bits: getrandom, or (without it) the pid, the clock and a counter mixed. */
static uint64_t temp_suffix(void)
{
    static uint64_t counter;
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        r = ((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^
            (++counter * 0x9e3779b97f4a7c15ULL);
        r ^= r >> 29;
        r *= 0xbf58476d1ce4e5b9ULL;
        r ^= r >> 32;
    }
    return r & 0xffffffffffffULL;
}

Status fsutil_temp_name(char *buf, size_t len, const char *path)
{
    int n = snprintf(buf, len, "%s.tmp.%012llx", path, (unsigned long long)temp_suffix());
    if (n < 0 || (size_t)n >= len) {
        log_error("%s: path too long for a temporary name beside it (%zu characters)", path,
                  strlen(path));
        return XT_ERR_USAGE;
    }
    return XT_OK;
}

bool fsutil_is_temp_of(const char *name, const char *const *outputs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(outputs[i]);
        if (strncmp(name, outputs[i], k) != 0 || strncmp(name + k, ".tmp", 4) != 0) continue;
        const char *rest = name + k + 4;
        if (*rest == '\0') return true;
        if (*rest++ != '.' || !*rest) continue;
        if (strspn(rest, "0123456789abcdef") == strlen(rest)) return true;
    }
    return false;
}

static Status fsync_path(const char *path, bool dir)
{
    int fd = open(path, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) {
        log_error("cannot open %s to sync it: %s", path, strerror(errno));
        return XT_ERR_RUNTIME;
    }
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    if (rc != 0) {
        log_error("fsync of %s failed: %s", path, strerror(err));
        return XT_ERR_RUNTIME;
    }
    return XT_OK;
}

Status fsutil_commit(const char *tmp, const char *path)
{
    Status st = fsync_path(tmp, false);
    if (st == XT_OK && rename(tmp, path) != 0) {
        log_error("cannot rename %s to %s: %s", tmp, path, strerror(errno));
        st = XT_ERR_RUNTIME;
    }
    if (st != XT_OK) {
        unlink(tmp);
        return st;
    }
    /* The rename is done: a directory that cannot be fsync'ed (some file systems refuse)
     * is reported but does not fail the commit. */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    if (fsync_path(dirname(dir), true) != XT_OK) log_warn("%s is in place but its directory was not synced", path);
    return XT_OK;
}

bool fsutil_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

bool fsutil_is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}
