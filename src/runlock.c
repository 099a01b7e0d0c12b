/* runlock: see runlock.h. */
#define _GNU_SOURCE /* O_CLOEXEC, dirent */
#include "runlock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"

#define LOCK_NAME ".xentrain.lock"
#define OWNER_NAME ".xentrain.owner"
#define HOLDER_MAX 512

typedef enum { METHOD_FCNTL, METHOD_OWNER } Method;

struct RunLock {
    int fd;          /* METHOD_FCNTL: the locked file, open for the whole run */
    Method method;
    char owner[4200]; /* METHOD_OWNER: the file to remove at the end */
};

/* Who holds a run directory, as its lock or owner file says. */
typedef struct {
    char host[256], job[64], since[64];
    long pid;
    unsigned long long start; /* the process's start time (clock ticks after boot; 0 unknown) */
} Holder;

/* This process's start time from /proc/PID/stat (field 22), 0 when unknown. */
static unsigned long long proc_start(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long long start = 0;
    for (int field = 2; p && *p && field < 22; p++)
        if (*p == ' ') field++;
    if (p && sscanf(p, "%llu", &start) != 1) start = 0;
    return start;
}

static void holder_self(Holder *h)
{
    *h = (Holder){.pid = (long)getpid()};
    if (gethostname(h->host, sizeof h->host) != 0) snprintf(h->host, sizeof h->host, "?");
    h->host[sizeof h->host - 1] = '\0';
    const char *job = getenv("SLURM_JOB_ID");
    snprintf(h->job, sizeof h->job, "%s", job && *job ? job : "-");
    time_t now = time(NULL);
    struct tm tm;
    if (localtime_r(&now, &tm)) strftime(h->since, sizeof h->since, "%Y-%m-%dT%H:%M:%S%z", &tm);
    h->start = proc_start(h->pid);
}

static int holder_format(const Holder *h, char *buf, size_t len)
{
    return snprintf(buf, len, "host=%s\npid=%ld\nslurm_job=%s\nsince=%s\nstart=%llu\n", h->host,
                    h->pid, h->job, h->since, h->start);
}

/* Parses a lock or owner file's text; fields it lacks stay "?" / 0. */
static void holder_parse(const char *text, Holder *h)
{
    *h = (Holder){0};
    snprintf(h->host, sizeof h->host, "?");
    snprintf(h->job, sizeof h->job, "-");
    snprintf(h->since, sizeof h->since, "?");
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        int n = (int)strcspn(p, "\n");
        if (!strncmp(p, "host=", 5)) snprintf(h->host, sizeof h->host, "%.*s", n - 5, p + 5);
        else if (!strncmp(p, "slurm_job=", 10)) snprintf(h->job, sizeof h->job, "%.*s", n - 10, p + 10);
        else if (!strncmp(p, "since=", 6)) snprintf(h->since, sizeof h->since, "%.*s", n - 6, p + 6);
        else if (!strncmp(p, "pid=", 4)) h->pid = strtol(p + 4, NULL, 10);
        else if (!strncmp(p, "start=", 6)) h->start = strtoull(p + 6, NULL, 10);
    }
}

static void holder_read_fd(int fd, Holder *h)
{
    char text[HOLDER_MAX];
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    text[n > 0 ? n : 0] = '\0';
    holder_parse(text, h);
}

/* "host h, pid p, Slurm job j, since t" */
static void holder_describe(const Holder *h, char *buf, size_t len)
{
    snprintf(buf, len, "host %s, pid %ld, Slurm job %s, since %s", h->host, h->pid,
             strcmp(h->job, "-") ? h->job : "none", h->since);
}

static bool same_job(const Holder *a, const Holder *b)
{
    return strcmp(a->job, "-") != 0 && !strcmp(a->job, b->job);
}

/* The holder is provably gone: this host, and its pid runs no more (or runs another
 * process: a different start time). */
static bool holder_gone(const Holder *h, const Holder *self)
{
    if (strcmp(h->host, self->host) != 0 || h->pid <= 0) return false;
    if (kill((pid_t)h->pid, 0) != 0 && errno == ESRCH) return true;
    unsigned long long start = proc_start(h->pid);
    return h->start != 0 && start != 0 && start != h->start;
}

static Status write_holder(int fd, const Holder *self, const char *path)
{
    char text[HOLDER_MAX];
    int n = holder_format(self, text, sizeof text);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)n, 0) != n) {
        log_error0("run.dir: cannot write %s: %s", path, strerror(errno));
        return XT_ERR_RUNTIME;
    }
    return XT_OK;
}

/* mkdir -p and a writable check, messages naming the key (a config error: exit 2). */
static Status prepare_dir(const char *dir, const char *key)
{
    char buf[4200];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) {
        log_error0("%s = %.80s...: path too long (%zu characters)", key, dir, strlen(dir));
        return XT_ERR_USAGE;
    }
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char keep = *p;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
            log_error0("%s = %s: cannot create the directory %s: %s (choose a run.dir you may "
                      "write)", key, dir, buf, strerror(errno));
            return XT_ERR_USAGE;
        }
        *p = keep;
        if (!keep) break;
    }
    if (!fsutil_is_dir(dir)) {
        log_error0("%s = %s: exists and is not a directory (choose another run.dir)", key, dir);
        return XT_ERR_USAGE;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        log_error0("%s = %s: the directory is not writable: %s (choose a run.dir you may write)",
                  key, dir, strerror(errno));
        return XT_ERR_USAGE;
    }
    return XT_OK;
}

/* Removes what killed runs left: temporaries of the outputs (nobody else writes here). */
static void remove_stale_temps(const char *dir)
{
    static const char *const outputs[] = {"checkpoint.h5", "model.h5", "model-last.h5",
                                          "metrics.csv", "config.ini"};
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[4300];
    while ((e = readdir(d)) != NULL) {
        if (!fsutil_is_temp_of(e->d_name, outputs, sizeof outputs / sizeof outputs[0])) continue;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < (int)sizeof path &&
            unlink(path) == 0)
            log_warn("run.dir: removed %s, left by a run that did not finish writing it", path);
    }
    closedir(d);
}

/* The refusal, naming the holder. */
static Status refuse(const char *key, const char *dir, const Holder *h, const Holder *self,
                     const char *how)
{
    char who[600];
    holder_describe(h, who, sizeof who);
    if (same_job(h, self)) {
        log_error0("%s = %s is still held by an earlier attempt of this Slurm job (%s; %s): "
                   "its node may have failed and the file server not noticed yet; exit 75 "
                   "asks for a requeue", key, dir, who, how);
        return XT_ERR_REQUEUE;
    }
    log_error0("%s = %s is in use by another xentrain run (%s; %s): wait for it to end, or "
               "use another run.dir", key, dir, who, how);
    return XT_ERR_USAGE;
}

/* fcntl: XT_OK and *fd_out, XT_ERR_USAGE/REQUEUE (held), XT_ERR_RUNTIME (I/O), or ENOLCK
 * & co in *unsupported (the caller falls back). */
static Status lock_fcntl(const char *dir, const char *key, const Holder *self, int *fd_out,
                         bool *unsupported)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", dir, LOCK_NAME);
    *unsupported = false;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        log_error0("%s = %s: cannot create its lock file %s: %s", key, dir, path, strerror(errno));
        return XT_ERR_USAGE;
    }
    for (int waited = 0;; waited += 2) {
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
        if (fcntl(fd, F_SETLK, &fl) == 0) break;
        int err = errno;
        if (err != EAGAIN && err != EACCES) {
            close(fd);
            *unsupported = err == ENOLCK || err == ENOSYS || err == EOPNOTSUPP || err == EINVAL;
            if (*unsupported) return XT_OK;
            log_error0("%s = %s: cannot lock %s: %s", key, dir, path, strerror(err));
            return XT_ERR_RUNTIME;
        }
        Holder h;
        holder_read_fd(fd, &h);
        if (!same_job(&h, self) || waited >= RUNLOCK_SAME_JOB_WAIT_S) {
            close(fd);
            return refuse(key, dir, &h, self, "its lock " LOCK_NAME " is held");
        }
        if (waited == 0) log_warn("%s = %s: an earlier attempt of this Slurm job still holds "
                                  "the lock; waiting up to %d s", key, dir, RUNLOCK_SAME_JOB_WAIT_S);
        sleep(2);
    }
    Status st = write_holder(fd, self, path);
    if (st != XT_OK) {
        close(fd);
        return st;
    }
    *fd_out = fd;
    return XT_OK;
}

/* The fallback: an owner file created exclusively; a provably stale one is taken over. */
static Status lock_owner_file(const char *dir, const char *key, const Holder *self, RunLock *l)
{
    snprintf(l->owner, sizeof l->owner, "%s/%s", dir, OWNER_NAME);
    for (int attempt = 0; attempt < 2; attempt++) {
        int fd = open(l->owner, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0) {
            Status st = write_holder(fd, self, l->owner);
            close(fd);
            if (st != XT_OK) unlink(l->owner);
            return st;
        }
        if (errno != EEXIST) {
            log_error0("%s = %s: cannot create %s: %s", key, dir, l->owner, strerror(errno));
            return XT_ERR_USAGE;
        }
        Holder h;
        int rfd = open(l->owner, O_RDONLY | O_CLOEXEC);
        if (rfd < 0) continue; /* removed in between: try again */
        holder_read_fd(rfd, &h);
        close(rfd);
        if (!holder_gone(&h, self) && !same_job(&h, self)) {
            char how[4400];
            snprintf(how, sizeof how, "this file system has no record locks, and its owner "
                     "file %s is there; if that run is gone (its node failed), remove the file",
                     l->owner);
            log_error0("%s = %s is in use by another xentrain run (host %s, pid %ld, Slurm job "
                       "%s, since %s; %s)", key, dir, h.host, h.pid,
                       strcmp(h.job, "-") ? h.job : "none", h.since, how);
            return XT_ERR_USAGE;
        }
        log_warn("%s = %s: taking over %s from a run that is gone (host %s, pid %ld, Slurm job "
                 "%s)", key, dir, l->owner, h.host, h.pid, h.job);
        unlink(l->owner);
    }
    log_error0("%s = %s: cannot take %s (another run is starting?)", key, dir, l->owner);
    return XT_ERR_USAGE;
}

static Status acquire(const char *dir, const char *key, bool owner_file, RunLock **out)
{
    *out = NULL;
    Status st = prepare_dir(dir, key);
    if (st != XT_OK) return st;
    RunLock *l = calloc(1, sizeof *l);
    if (!l) {
        log_error0("%s = %s: out of memory", key, dir);
        return XT_ERR_RUNTIME;
    }
    l->fd = -1;
    Holder self;
    holder_self(&self);
    bool unsupported = owner_file;
    if (!owner_file) st = lock_fcntl(dir, key, &self, &l->fd, &unsupported);
    l->method = unsupported ? METHOD_OWNER : METHOD_FCNTL;
    if (st == XT_OK && unsupported) st = lock_owner_file(dir, key, &self, l);
    if (st != XT_OK) {
        free(l);
        return st;
    }
    remove_stale_temps(dir);
    *out = l;
    return XT_OK;
}

Status runlock_acquire(const char *dir, const char *key, RunLock **out)
{
    return acquire(dir, key, false, out);
}

Status runlock_acquire_owner_file(const char *dir, const char *key, RunLock **out)
{
    return acquire(dir, key, true, out);
}

void runlock_release(RunLock **lp)
{
    if (!lp || !*lp) return;
    RunLock *l = *lp;
    if (l->method == METHOD_OWNER) unlink(l->owner);
    if (l->fd >= 0) close(l->fd); /* releases the fcntl lock */
    free(l);
    *lp = NULL;
}

const char *runlock_method(const RunLock *l)
{
    return l && l->method == METHOD_OWNER ? "owner file" : "fcntl";
}
