#include "sysmem.h"

#include <stdio.h>
#include <string.h>

#include "strutil.h"

/* v1 writes "no limit" as a page-rounded 2^63 - 1 */
#define UNLIMITED_FROM 1e18

static double mem_available(const char *root)
{
    char path[512];
    snprintf(path, sizeof path, "%s/proc/meminfo", root);
    FILE *fp = fopen(path, "r");
    if (!fp) return 0.0;
    char line[256];
    double kb = 0.0;
    while (fgets(line, sizeof line, fp)) {
        unsigned long long v;
        if (sscanf(line, "MemAvailable: %llu kB", &v) == 1) {
            kb = (double)v;
            break;
        }
    }
    fclose(fp);
    return kb * 1024.0;
}

/* The number in a limit file; 0 for "max", a missing file or no limit. */
static double read_limit(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp) return 0.0;
    char buf[64] = "";
    double v = 0.0;
    if (fgets(buf, sizeof buf, fp)) {
        unsigned long long n;
        if (sscanf(buf, "%llu", &n) == 1 && (double)n < UNLIMITED_FROM) v = (double)n;
    }
    fclose(fp);
    return v;
}

/* The smallest limit named `file` on the path dir/cg, dir/parent(cg), ..., dir. */
static void smallest_on_path(const char *dir, const char *cg, const char *file, SysMem *m)
{
    char rel[512];
    snprintf(rel, sizeof rel, "%s", cg);
    for (;;) {
        char path[1200];
        if (rel[0] == '\0' || !strcmp(rel, "/")) snprintf(path, sizeof path, "%s/%s", dir, file);
        else snprintf(path, sizeof path, "%s%s%s/%s", dir, rel[0] == '/' ? "" : "/", rel, file);
        double v = read_limit(path);
        if (v > 0.0 && (m->cgroup_limit == 0.0 || v < m->cgroup_limit)) {
            m->cgroup_limit = v;
            snprintf(m->cgroup_file, sizeof m->cgroup_file, "%s", path);
        }
        char *slash = strrchr(rel, '/');
        if (!slash || rel[0] == '\0' || (slash == rel && rel[1] == '\0')) break;
        if (slash == rel) rel[1] = '\0'; /* up to "/" */
        else *slash = '\0';
    }
}

static void cgroup_limit(const char *root, SysMem *m)
{
    char path[512];
    snprintf(path, sizeof path, "%s/proc/self/cgroup", root);
    FILE *fp = fopen(path, "r");
    if (!fp) return;
    char line[1024];
    while (fgets(line, sizeof line, fp)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) continue;
        *c2 = '\0';
        const char *controllers = c1 + 1, *cg = c2 + 1;
        char dir[600];
        if (line[0] == '0' && controllers[0] == '\0') { /* v2: "0::/path" */
            snprintf(dir, sizeof dir, "%s/sys/fs/cgroup", root);
            smallest_on_path(dir, cg, "memory.max", m);
        } else if (strstr(controllers, "memory")) { /* v1: "N:memory:/path" */
            snprintf(dir, sizeof dir, "%s/sys/fs/cgroup/memory", root);
            smallest_on_path(dir, cg, "memory.limit_in_bytes", m);
        }
    }
    fclose(fp);
}

void sysmem_read(const char *root, SysMem *out)
{
    memset(out, 0, sizeof *out);
    out->mem_available = mem_available(root);
    cgroup_limit(root, out);
    double a = out->mem_available, c = out->cgroup_limit;
    out->bytes = a > 0.0 && c > 0.0 ? (a < c ? a : c) : (a > 0.0 ? a : c);
}

void sysmem_describe(const SysMem *m, char *buf, size_t len)
{
    char h[32];
    if (m->cgroup_limit > 0.0 && m->bytes == m->cgroup_limit) {
        strutil_human_bytes(m->cgroup_limit, h, sizeof h);
        snprintf(buf, len, "the memory cgroup limit of %s in %s", h, m->cgroup_file);
    } else if (m->mem_available > 0.0) {
        strutil_human_bytes(m->mem_available, h, sizeof h);
        snprintf(buf, len, "MemAvailable of %s", h);
    } else {
        snprintf(buf, len, "an unknown amount of memory");
    }
}
