/* schema-exec: the execution context of one service command, applied between PID 1's
 * fork and the service's exec (docs/spec.md, "The execution context").
 *
 * PID 1 forks, puts the child in its cgroup, and the child execs the same static binary
 * as schema-exec, still root, with the context as arguments (schema_init/pid1/spawn.py
 * writes them; that is the whole contract):
 *
 *   schema-exec [OPTION...] -- PATH WORD...      argv = PATH WORD... (with --at: WORD...)
 *
 * Then, in this order: resource limits, nice, oom_score_adj, umask, the service's
 * directories, the mount and network namespaces, the user and groups, capabilities,
 * no_new_privs, the socket family filter, the working directory, $VAR expansion, exec.
 * PID 1 itself stays small: no sandbox code is loaded into it, and a service without
 * a context never comes here.  A step that fails writes one line naming its .svc key to
 * stderr (the service's log) and exits with that step's status (EXIT_* below, the table
 * of docs/spec.md; the numbers are the ones systemd uses for the same steps).
 *
 * `schema-exec --raise-limits PID` is PID 1's own boot step (pid1/main.py): the
 * interpreter of the static binary has no setrlimit, so this sets PID's limits with
 * prlimit(2) and exits. */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

extern char **environ;

/* Exit statuses, one per step (docs/spec.md, "The execution context", checked by
 * tests/test_exec_context.py against this list). */
enum {
    EXIT_USAGE = 199,               /* schema-exec's own arguments are wrong */
    EXIT_CHDIR = 200,               /* workdir */
    EXIT_NICE = 201,                /* nice */
    EXIT_EXEC = 203,                /* the execve itself */
    EXIT_MEMORY = 204,              /* out of memory */
    EXIT_LIMITS = 205,              /* limit */
    EXIT_OOM_ADJUST = 206,          /* oom_score_adj */
    EXIT_GROUP = 216,               /* group, supplementary_group */
    EXIT_USER = 217,                /* user */
    EXIT_CAPABILITIES = 218,        /* cap_bounding, ambient_caps */
    EXIT_NETWORK = 225,             /* private_network */
    EXIT_NAMESPACE = 226,           /* private_tmp, protect_*, *_paths, private_devices */
    EXIT_NO_NEW_PRIVILEGES = 227,   /* no_new_privs */
    EXIT_ADDRESS_FAMILIES = 232,    /* restrict_address_families */
    EXIT_RUNTIME_DIRECTORY = 233,   /* runtime_dir */
    EXIT_STATE_DIRECTORY = 238,     /* state_dir */
    EXIT_CACHE_DIRECTORY = 239,     /* cache_dir */
    EXIT_LOGS_DIRECTORY = 240,      /* logs_dir */
    EXIT_CONFIGURATION_DIRECTORY = 241, /* config_dir */
};

#define MAX_ITEMS 64                /* of each repeatable option (config's LIST_MAX) */
#define MAX_GROUPS 256

/* -- Failing: one line, then the step's status. ------------------------------------- */

static void __attribute__((noreturn)) fail(int status, const char *key, const char *what,
                                            int err)
{
    if (what != NULL && err)
        dprintf(2, "schema-exec: %s %s: %s\n", key, what, strerror(err));
    else if (what != NULL)
        dprintf(2, "schema-exec: %s %s\n", key, what);
    else
        dprintf(2, "schema-exec: %s: %s\n", key, strerror(err));
    _exit(status);
}

static void *need(void *p)
{
    if (p == NULL)
        fail(EXIT_MEMORY, "memory", NULL, ENOMEM);
    return p;
}

static void say(const char *key, const char *text)
{
    dprintf(2, "schema-exec: %s: %s\n", key, text);
}

/* -- The context, as read from the arguments. ---------------------------------------- */

struct limit {
    const char *name;
    int resource;
    long long soft, hard;           /* -1: infinity */
};

struct directory {
    const char *path;
    mode_t mode;
};

enum dir_kind { DIR_RUNTIME, DIR_STATE, DIR_CACHE, DIR_LOGS, DIR_CONFIG, DIR_KINDS };

static const struct {
    const char *option, *key, *base, *env;
    int status;
} DIR_KIND[DIR_KINDS] = {
    {"--runtime-dir", "runtime_dir", "/run", "RUNTIME_DIRECTORY", EXIT_RUNTIME_DIRECTORY},
    {"--state-dir", "state_dir", "/var/lib", "STATE_DIRECTORY", EXIT_STATE_DIRECTORY},
    {"--cache-dir", "cache_dir", "/var/cache", "CACHE_DIRECTORY", EXIT_CACHE_DIRECTORY},
    {"--logs-dir", "logs_dir", "/var/log", "LOGS_DIRECTORY", EXIT_LOGS_DIRECTORY},
    {"--config-dir", "config_dir", "/etc", "CONFIGURATION_DIRECTORY",
     EXIT_CONFIGURATION_DIRECTORY},
};

struct context {
    struct limit limits[MAX_ITEMS];
    int n_limits;
    int has_nice, nice;
    int has_oom, oom_score_adj;
    int has_umask;
    mode_t umask;
    uid_t owner_uid;
    gid_t owner_gid;
    struct directory dirs[DIR_KINDS][MAX_ITEMS];
    int n_dirs[DIR_KINDS];
    int private_tmp, private_devices, private_network;
    int protect_kernel_tunables, protect_kernel_modules, protect_control_groups;
    const char *protect_system, *protect_home;
    const char *read_write[MAX_ITEMS], *read_only[MAX_ITEMS], *inaccessible[MAX_ITEMS];
    int n_read_write, n_read_only, n_inaccessible;
    int has_uid, has_gid, has_groups;
    uid_t uid;
    gid_t gid;
    gid_t groups[MAX_GROUPS];
    int n_groups;
    const char *cap_bounding, *ambient_caps, *families;
    int no_new_privs;
    const char *workdir;
    int expand, at;
    char **words;                   /* PATH WORD... */
    int n_words;
};

static const struct {
    const char *name;
    int resource;
} RLIMIT_NAMES[] = {
    {"cpu", RLIMIT_CPU}, {"fsize", RLIMIT_FSIZE}, {"data", RLIMIT_DATA},
    {"stack", RLIMIT_STACK}, {"core", RLIMIT_CORE}, {"rss", RLIMIT_RSS},
    {"nproc", RLIMIT_NPROC}, {"nofile", RLIMIT_NOFILE}, {"memlock", RLIMIT_MEMLOCK},
    {"as", RLIMIT_AS}, {"locks", RLIMIT_LOCKS}, {"sigpending", RLIMIT_SIGPENDING},
    {"msgqueue", RLIMIT_MSGQUEUE}, {"nice", RLIMIT_NICE}, {"rtprio", RLIMIT_RTPRIO},
    {"rttime", RLIMIT_RTTIME},
};

static void usage(const char *why, const char *word)
{
    dprintf(2, "schema-exec: %s%s%s\nusage: schema-exec [OPTION...] -- PATH WORD...\n"
            "  (written by schema-init's spawn: docs/spec.md, \"The execution context\")\n",
            why, word ? ": " : "", word ? word : "");
    _exit(EXIT_USAGE);
}

static long long number(const char *text, long long low, long long high, int base,
                        const char *option)
{
    char *end;
    long long value;

    errno = 0;
    value = strtoll(text, &end, base);
    if (errno || end == text || *end || value < low || value > high)
        usage("bad number for", option);
    return value;
}

static long long limit_number(const char *text, const char *option)
{
    if (strcmp(text, "infinity") == 0 || strcmp(text, "-1") == 0)
        return -1;
    return number(text, 0, LLONG_MAX, 10, option);
}

static void parse_limit(struct context *c, const char *value)
{
    char name[16], *colon;
    const char *eq = strchr(value, '=');
    size_t i, n = eq ? (size_t)(eq - value) : 0;
    struct limit *l;

    if (!eq || n == 0 || n >= sizeof name || c->n_limits >= MAX_ITEMS)
        usage("bad --limit", value);
    memcpy(name, value, n);
    name[n] = '\0';
    l = &c->limits[c->n_limits];
    l->resource = -1;
    for (i = 0; i < sizeof RLIMIT_NAMES / sizeof RLIMIT_NAMES[0]; i++)
        if (strcmp(RLIMIT_NAMES[i].name, name) == 0) {
            l->resource = RLIMIT_NAMES[i].resource;
            l->name = RLIMIT_NAMES[i].name;
        }
    if (l->resource < 0)
        usage("unknown resource in --limit", value);
    colon = strchr(eq + 1, ':');
    if (colon == NULL)
        usage("--limit needs NAME=SOFT:HARD", value);
    *colon = '\0';
    l->soft = limit_number(eq + 1, "--limit");
    l->hard = limit_number(colon + 1, "--limit");
    *colon = ':';
    c->n_limits++;
}

static void parse_directory(struct context *c, int kind, char *value)
{
    char *colon = strrchr(value, ':');
    const char *base = DIR_KIND[kind].base;
    size_t n = strlen(base);
    struct directory *d;

    if (colon == NULL || c->n_dirs[kind] >= MAX_ITEMS)
        usage("bad directory option", value);
    *colon = '\0';
    if (strncmp(value, base, n) != 0 || value[n] != '/' || value[n + 1] == '\0' ||
        strstr(value, "/../") || strstr(value, "/./") || strstr(value, "//"))
        usage("a directory must be below its base", value);
    d = &c->dirs[kind][c->n_dirs[kind]++];
    d->path = value;
    d->mode = (mode_t)number(colon + 1, 0, 07777, 8, DIR_KIND[kind].option);
}

static void parse_groups(struct context *c, const char *value)
{
    char *copy = need(strdup(value)), *word, *save = NULL;

    c->has_groups = 1;
    for (word = strtok_r(copy, ",", &save); word; word = strtok_r(NULL, ",", &save)) {
        if (c->n_groups >= MAX_GROUPS)
            usage("too many groups", value);
        c->groups[c->n_groups++] = (gid_t)number(word, 0, UINT32_MAX - 1, 10, "--groups");
    }
    free(copy);
}

static void parse_owner(struct context *c, const char *value)
{
    char *copy = need(strdup(value)), *colon = strchr(copy, ':');

    if (colon == NULL)
        usage("--owner needs UID:GID", value);
    *colon = '\0';
    c->owner_uid = (uid_t)number(copy, 0, UINT32_MAX - 1, 10, "--owner");
    c->owner_gid = (gid_t)number(colon + 1, 0, UINT32_MAX - 1, 10, "--owner");
    free(copy);
}

static void push(const char **list, int *count, const char *value)
{
    if (*count >= MAX_ITEMS)
        usage("too many paths", value);
    list[(*count)++] = value;
}

static void parse_arguments(struct context *c, int argc, char **argv)
{
    int i, k;

    memset(c, 0, sizeof *c);
    for (i = 1; i < argc; i++) {
        const char *o = argv[i];
        char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int flag = 1;

        if (strcmp(o, "--") == 0) {
            c->words = argv + i + 1;
            c->n_words = argc - i - 1;
            break;
        }
        if (strcmp(o, "--private-tmp") == 0)
            c->private_tmp = 1;
        else if (strcmp(o, "--private-devices") == 0)
            c->private_devices = 1;
        else if (strcmp(o, "--private-network") == 0)
            c->private_network = 1;
        else if (strcmp(o, "--protect-kernel-tunables") == 0)
            c->protect_kernel_tunables = 1;
        else if (strcmp(o, "--protect-kernel-modules") == 0)
            c->protect_kernel_modules = 1;
        else if (strcmp(o, "--protect-control-groups") == 0)
            c->protect_control_groups = 1;
        else if (strcmp(o, "--no-new-privs") == 0)
            c->no_new_privs = 1;
        else if (strcmp(o, "--expand") == 0)
            c->expand = 1;
        else if (strcmp(o, "--at") == 0)
            c->at = 1;
        else
            flag = 0;
        if (flag)
            continue;
        if (v == NULL)
            usage("option needs a value", o);
        i++;
        if (strcmp(o, "--limit") == 0)
            parse_limit(c, v);
        else if (strcmp(o, "--nice") == 0)
            c->has_nice = 1, c->nice = (int)number(v, -20, 19, 10, o);
        else if (strcmp(o, "--oom-score-adj") == 0)
            c->has_oom = 1, c->oom_score_adj = (int)number(v, -1000, 1000, 10, o);
        else if (strcmp(o, "--umask") == 0)
            c->has_umask = 1, c->umask = (mode_t)number(v, 0, 0777, 8, o);
        else if (strcmp(o, "--owner") == 0)
            parse_owner(c, v);
        else if (strcmp(o, "--protect-system") == 0)
            c->protect_system = v;
        else if (strcmp(o, "--protect-home") == 0)
            c->protect_home = v;
        else if (strcmp(o, "--read-write") == 0)
            push(c->read_write, &c->n_read_write, v);
        else if (strcmp(o, "--read-only") == 0)
            push(c->read_only, &c->n_read_only, v);
        else if (strcmp(o, "--inaccessible") == 0)
            push(c->inaccessible, &c->n_inaccessible, v);
        else if (strcmp(o, "--uid") == 0)
            c->has_uid = 1, c->uid = (uid_t)number(v, 0, UINT32_MAX - 1, 10, o);
        else if (strcmp(o, "--gid") == 0)
            c->has_gid = 1, c->gid = (gid_t)number(v, 0, UINT32_MAX - 1, 10, o);
        else if (strcmp(o, "--groups") == 0)
            parse_groups(c, v);
        else if (strcmp(o, "--cap-bounding") == 0)
            c->cap_bounding = v;
        else if (strcmp(o, "--ambient-caps") == 0)
            c->ambient_caps = v;
        else if (strcmp(o, "--restrict-address-families") == 0)
            c->families = v;
        else if (strcmp(o, "--workdir") == 0)
            c->workdir = v;
        else {
            for (k = 0; k < DIR_KINDS; k++)
                if (strcmp(o, DIR_KIND[k].option) == 0)
                    break;
            if (k == DIR_KINDS)
                usage("unknown option", o);
            parse_directory(c, k, v);
        }
    }
    if (c->words == NULL || c->n_words < 1 || c->words[0][0] != '/')
        usage("no command after --", NULL);
    if (c->at && c->n_words < 2)
        usage("--at needs a path and an argv[0]", NULL);
}

/* -- Small helpers. ----------------------------------------------------------------- */

static long long read_number_file(const char *path, long long fallback)
{
    char buf[32];
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return fallback;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return fallback;
    buf[n] = '\0';
    return strtoll(buf, NULL, 10);
}

/* "Infinity" for NOFILE is the most the kernel lets a process open (fs.nr_open),
 * since RLIM_INFINITY itself is refused for it. */
static rlim_t kernel_maximum(int resource)
{
    if (resource == RLIMIT_NOFILE)
        return (rlim_t)read_number_file("/proc/sys/fs/nr_open", 1024 * 1024);
    return RLIM_INFINITY;
}

static const char *optional_path(const char *entry, int *optional)
{
    *optional = entry[0] == '-';
    return entry[0] == '-' || entry[0] == '+' ? entry + 1 : entry;
}

/* -- 1-4. Limits, nice, oom_score_adj, umask. ---------------------------------------- */

static void apply_limits(const struct context *c)
{
    int i;

    for (i = 0; i < c->n_limits; i++) {
        const struct limit *l = &c->limits[i];
        struct rlimit r;
        char what[160];

        r.rlim_cur = l->soft < 0 ? kernel_maximum(l->resource) : (rlim_t)l->soft;
        r.rlim_max = l->hard < 0 ? kernel_maximum(l->resource) : (rlim_t)l->hard;
        if (setrlimit(l->resource, &r) < 0 && errno == EPERM) {
            /* Without CAP_SYS_RESOURCE (a container) a hard limit cannot go up: the
             * closest one allowed, as systemd does, said in the log. */
            struct rlimit now;
            if (getrlimit(l->resource, &now) == 0 && r.rlim_max > now.rlim_max) {
                snprintf(what, sizeof what, "%s: the hard limit cannot be raised here; "
                         "kept at %llu", l->name, (unsigned long long)now.rlim_max);
                say("limit", what);
                r.rlim_max = now.rlim_max;
                if (r.rlim_cur > r.rlim_max)
                    r.rlim_cur = r.rlim_max;
            }
            errno = EPERM;
        }
        if (setrlimit(l->resource, &r) < 0) {
            snprintf(what, sizeof what, "%s (soft %llu, hard %llu)", l->name, (unsigned long long)r.rlim_cur,
                     (unsigned long long)r.rlim_max);
            fail(EXIT_LIMITS, "limit", what, errno);
        }
    }
}

static void apply_process_settings(const struct context *c)
{
    char text[16];
    int fd, n;

    if (c->has_nice && setpriority(PRIO_PROCESS, 0, c->nice) < 0) {
        snprintf(text, sizeof text, "%d", c->nice);
        fail(EXIT_NICE, "nice", text, errno);
    }
    if (c->has_oom) {
        n = snprintf(text, sizeof text, "%d\n", c->oom_score_adj);
        fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, text, (size_t)n) != n) {
            int err = errno;
            /* A container may refuse a lower value: as systemd, carry on. */
            if (err != EPERM && err != EACCES)
                fail(EXIT_OOM_ADJUST, "oom_score_adj", "/proc/self/oom_score_adj", err);
            say("oom_score_adj", "refused by the kernel; ignored");
        }
        if (fd >= 0)
            close(fd);
    }
    if (c->has_umask)
        umask(c->umask);
}

/* -- 5. The service's directories. ---------------------------------------------------- */

/* Give a whole tree to uid:gid, walked through directory fds with O_NOFOLLOW so that
 * a link planted inside cannot send the chown elsewhere; stays on one filesystem. */
static int chown_tree(int dirfd, dev_t dev, uid_t uid, gid_t gid, int depth)
{
    DIR *dir;
    struct dirent *entry;
    int copy, result = 0;

    if (depth > 64)
        return -ELOOP;
    copy = dup(dirfd);
    if (copy < 0 || (dir = fdopendir(copy)) == NULL) {
        if (copy >= 0)
            close(copy);
        return -errno;
    }
    while ((entry = readdir(dir)) != NULL) {
        struct stat st;
        const char *name = entry->d_name;
        int sub, r;

        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (fchownat(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0 && result == 0)
            result = -errno;
        if (!S_ISDIR(st.st_mode) || st.st_dev != dev)
            continue;
        sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0)
            continue;
        r = chown_tree(sub, dev, uid, gid, depth + 1);
        if (r < 0 && result == 0)
            result = r;
        close(sub);
    }
    closedir(dir);
    return result;
}

/* mkdir -p of the parts below BASE (0755, root's), then the leaf with its mode. */
static int make_directory(const char *path, const char *base, mode_t mode, int *made)
{
    char *copy = need(strdup(path)), *p = copy + strlen(base) + 1;
    int result = 0;

    *made = 0;
    for (;; p++) {
        char *slash = strchr(p, '/');
        if (slash)
            *slash = '\0';
        if (mkdir(copy, slash ? 0755 : mode) == 0) {
            if (chmod(copy, slash ? 0755 : mode) < 0)
                result = -errno;
            if (!slash)
                *made = 1;
        } else if (errno != EEXIST) {
            result = -errno;
        }
        if (!slash || result < 0)
            break;
        *slash = '/';
        p = slash;
    }
    free(copy);
    return result;
}

static void setup_directories(const struct context *c)
{
    int kind, i;

    for (kind = 0; kind < DIR_KINDS; kind++) {
        char *list = NULL;
        size_t size = 0;

        for (i = 0; i < c->n_dirs[kind]; i++) {
            const struct directory *d = &c->dirs[kind][i];
            const char *key = DIR_KIND[kind].key;
            int status = DIR_KIND[kind].status, made, r, fd;
            /* /etc's stay root's: a service reads its configuration, never owns it. */
            uid_t uid = kind == DIR_CONFIG ? 0 : c->owner_uid;
            gid_t gid = kind == DIR_CONFIG ? 0 : c->owner_gid;
            struct stat st;

            r = make_directory(d->path, DIR_KIND[kind].base, d->mode, &made);
            if (r < 0)
                fail(status, key, d->path, -r);
            if (stat(d->path, &st) < 0)
                fail(status, key, d->path, errno);
            if (!S_ISDIR(st.st_mode))
                fail(status, key, d->path, ENOTDIR);
            if (kind == DIR_CONFIG && !made) {
                /* An existing configuration directory is left as it is. */
            } else if (made) {
                if (chown(d->path, uid, gid) < 0)
                    fail(status, key, d->path, errno);
            } else {
                /* An existing one gets its mode, and the whole tree is given to the
                 * service's user when the directory itself is someone else's. */
                if (chmod(d->path, d->mode) < 0)
                    fail(status, key, d->path, errno);
                if (st.st_uid != uid || st.st_gid != gid) {
                    fd = open(d->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                    if (fd < 0)
                        fail(status, key, d->path, errno);
                    r = chown_tree(fd, st.st_dev, uid, gid, 0);
                    if (r == 0 && fchown(fd, uid, gid) < 0)
                        r = -errno;
                    close(fd);
                    if (r < 0)
                        fail(status, key, d->path, -r);
                }
            }
            list = need(realloc(list, size + strlen(d->path) + 2));
            size += (size_t)sprintf(list + size, "%s%s", size ? ":" : "", d->path);
        }
        if (list) {
            setenv(DIR_KIND[kind].env, list, 1);
            free(list);
        }
    }
}

/* -- 6. The mount and network namespaces. ------------------------------------------- */

/* The mount points of this namespace, from /proc/self/mountinfo (octal escapes
 * decoded).  Read anew after each change that adds mounts. */
static char **mount_points(int *count)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char *line = NULL, **points = NULL;
    size_t cap = 0;
    int n = 0, room = 0;

    if (f == NULL)
        fail(EXIT_NAMESPACE, "sandbox", "/proc/self/mountinfo", errno);
    while (getline(&line, &cap, f) > 0) {
        char *field = line, *out;
        int i;

        if (n == room) {
            room = room ? room * 2 : 64;
            points = need(realloc(points, (size_t)room * sizeof *points));
        }
        for (i = 0; i < 4 && field; i++) {
            field = strchr(field, ' ');
            if (field)
                field++;
        }
        if (field == NULL)
            continue;
        field[strcspn(field, " ")] = '\0';
        points[n] = out = need(strdup(field));
        for (i = 0; field[i]; i++) {
            if (field[i] == '\\' && field[i + 1] >= '0' && field[i + 1] <= '3' &&
                field[i + 2] >= '0' && field[i + 3] >= '0') {
                *out++ = (char)((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 +
                                (field[i + 3] - '0'));
                i += 3;
            } else {
                *out++ = field[i];
            }
        }
        *out = '\0';
        n++;
    }
    free(line);
    fclose(f);
    *count = n;
    return points;
}

static void free_points(char **points, int n)
{
    while (n > 0)
        free(points[--n]);
    free(points);
}

/* PATH is PREFIX or below it. */
static int below(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);

    if (strcmp(prefix, "/") == 0)
        return 1;
    return strncmp(path, prefix, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* Remount one mount point read-only or writable, keeping its other flags. */
static int remount(const char *point, int readonly, unsigned long extra)
{
    struct statvfs s;
    unsigned long flags = MS_BIND | MS_REMOUNT | extra;

    if (statvfs(point, &s) < 0)
        return -errno;
    if (s.f_flag & ST_NOSUID)
        flags |= MS_NOSUID;
    if (s.f_flag & ST_NODEV)
        flags |= MS_NODEV;
    if (s.f_flag & ST_NOEXEC)
        flags |= MS_NOEXEC;
    if (s.f_flag & ST_NOATIME)
        flags |= MS_NOATIME;
    if (s.f_flag & ST_NODIRATIME)
        flags |= MS_NODIRATIME;
    if (s.f_flag & ST_RELATIME)
        flags |= MS_RELATIME;
    if (readonly)
        flags |= MS_RDONLY;
    if (mount(NULL, point, NULL, flags, NULL) < 0)
        return -errno;
    return 0;
}

static const char *const API_TREES[] = {"/dev", "/proc", "/sys", "/run", NULL};

/* PATH and every mount below it read-only (or the top writable again).  PATH becomes
 * a mount point of its own first (a bind onto itself), so only it is affected. */
static int set_access(const char *path, int readonly, int strict_root)
{
    char **points;
    int n, i, r;

    if (strcmp(path, "/") != 0 && mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0)
        return -errno;
    r = remount(path, readonly, 0);
    if (r < 0 || !readonly)
        return r;
    points = mount_points(&n);
    for (i = 0; i < n; i++) {
        int skip = 0, k;

        if (!below(points[i], path) || strcmp(points[i], path) == 0)
            continue;
        for (k = 0; strict_root && API_TREES[k]; k++)
            skip |= below(points[i], API_TREES[k]);
        if (skip)
            continue;
        r = remount(points[i], 1, 0);
        /* A mount point hidden under a later mount cannot be reached: nothing to do. */
        if (r < 0 && r != -ENOENT && r != -ENOTDIR && r != -EINVAL && r != -EACCES) {
            free_points(points, n);
            return r;
        }
    }
    free_points(points, n);
    return 0;
}

struct access_rule {
    const char *path, *key;
    int readonly, optional, strict_root;
};

static int depth_of(const char *path)
{
    int depth = 0;

    if (strcmp(path, "/") == 0)
        return 0;
    for (; *path; path++)
        depth += *path == '/';
    return depth;
}

static int by_depth(const void *a, const void *b)
{
    const struct access_rule *x = a, *y = b;
    int dx = depth_of(x->path), dy = depth_of(y->path);

    if (dx != dy)
        return dx - dy;
    return x->readonly - y->readonly;   /* the same path: read-only wins */
}

/* An empty tmpfs to bind "inaccessible" nodes from: mounted on a new directory in
 * /run while the namespace is built, detached and removed at the end. */
struct staging {
    char dir[64];
    char empty_dir[96], empty_file[96];
};

static void make_staging(struct staging *s)
{
    int fd;

    snprintf(s->dir, sizeof s->dir, "/run/schema-exec.XXXXXX");
    if (mkdtemp(s->dir) == NULL)
        fail(EXIT_NAMESPACE, "sandbox", "/run/schema-exec.XXXXXX", errno);
    if (mount("schema-exec", s->dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "mode=0755,size=64k") < 0)
        fail(EXIT_NAMESPACE, "sandbox", s->dir, errno);
    snprintf(s->empty_dir, sizeof s->empty_dir, "%s/dir", s->dir);
    snprintf(s->empty_file, sizeof s->empty_file, "%s/file", s->dir);
    if (mkdir(s->empty_dir, 0) < 0 || chmod(s->empty_dir, 0) < 0)
        fail(EXIT_NAMESPACE, "sandbox", s->empty_dir, errno);
    fd = open(s->empty_file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
    if (fd < 0)
        fail(EXIT_NAMESPACE, "sandbox", s->empty_file, errno);
    close(fd);
}

static void drop_staging(struct staging *s)
{
    if (s->dir[0] == '\0')
        return;
    umount2(s->dir, MNT_DETACH);
    rmdir(s->dir);
}

static void make_inaccessible(const struct staging *s, const char *path, const char *key,
                              int optional)
{
    struct stat st;
    const char *source;

    if (stat(path, &st) < 0) {
        if (errno == ENOENT && optional)
            return;
        fail(EXIT_NAMESPACE, key, path, errno);
    }
    source = S_ISDIR(st.st_mode) ? s->empty_dir : s->empty_file;
    if (mount(source, path, NULL, MS_BIND, NULL) < 0)
        fail(EXIT_NAMESPACE, key, path, errno);
    if (remount(path, 1, MS_NOSUID | MS_NODEV | MS_NOEXEC) < 0)
        fail(EXIT_NAMESPACE, key, path, errno);
}

static void mount_tmpfs(const char *path, const char *key, const char *options,
                        unsigned long flags)
{
    struct stat st;

    if (stat(path, &st) < 0 && errno == ENOENT)
        return;
    if (mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | flags, options) < 0)
        fail(EXIT_NAMESPACE, key, path, errno);
}

/* A /dev of its own: a tmpfs with the pseudo devices bound from the real one, the
 * API directories (pts, shm, mqueue, hugepages) bound too, the usual links. */
static void private_dev(const struct staging *s)
{
    static const char *const nodes[] = {"null", "zero", "full", "random", "urandom", "tty",
                                        "ptmx", "log", NULL};
    static const char *const dirs[] = {"pts", "shm", "mqueue", "hugepages", NULL};
    static const char *const links[][2] = {
        {"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"},
        {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"}};
    char dev[128], target[192], source[64], link[256];
    struct stat st;
    size_t i;
    int fd;

    snprintf(dev, sizeof dev, "%s/dev", s->dir);
    if (mkdir(dev, 0755) < 0 ||
        mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC | MS_STRICTATIME,
              "mode=0755,size=64k") < 0)
        fail(EXIT_NAMESPACE, "private_devices", dev, errno);
    for (i = 0; dirs[i]; i++) {
        snprintf(source, sizeof source, "/dev/%s", dirs[i]);
        snprintf(target, sizeof target, "%s/%s", dev, dirs[i]);
        if (stat(source, &st) < 0 || !S_ISDIR(st.st_mode))
            continue;
        if (mkdir(target, 0755) < 0 || mount(source, target, NULL, MS_BIND | MS_REC, NULL) < 0)
            fail(EXIT_NAMESPACE, "private_devices", source, errno);
    }
    for (i = 0; nodes[i]; i++) {
        ssize_t n;

        snprintf(source, sizeof source, "/dev/%s", nodes[i]);
        snprintf(target, sizeof target, "%s/%s", dev, nodes[i]);
        if (lstat(source, &st) < 0)
            continue;
        if (S_ISLNK(st.st_mode)) {          /* /dev/log is often a link into /run */
            n = readlink(source, link, sizeof link - 1);
            if (n > 0) {
                link[n] = '\0';
                if (symlink(link, target) < 0)
                    fail(EXIT_NAMESPACE, "private_devices", target, errno);
            }
            continue;
        }
        if (S_ISDIR(st.st_mode))
            continue;
        fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0)
            fail(EXIT_NAMESPACE, "private_devices", target, errno);
        close(fd);
        if (mount(source, target, NULL, MS_BIND, NULL) < 0)
            fail(EXIT_NAMESPACE, "private_devices", source, errno);
    }
    snprintf(target, sizeof target, "%s/ptmx", dev);
    if (lstat(target, &st) < 0 && symlink("pts/ptmx", target) < 0)
        fail(EXIT_NAMESPACE, "private_devices", target, errno);
    for (i = 0; i < sizeof links / sizeof links[0]; i++) {
        snprintf(target, sizeof target, "%s/%s", dev, links[i][0]);
        if (symlink(links[i][1], target) < 0)
            fail(EXIT_NAMESPACE, "private_devices", target, errno);
    }
    if (mount(dev, "/dev", NULL, MS_MOVE, NULL) < 0)
        fail(EXIT_NAMESPACE, "private_devices", "/dev", errno);
}

static const char *const KERNEL_TUNABLES[] = {
    "/proc/sys", "/proc/sysrq-trigger", "/proc/latency_stats", "/proc/mtrr", "/proc/apm",
    "/proc/acpi", "/proc/timer_stats", "/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq",
    "/sys", NULL};
static const char *const KERNEL_SECRETS[] = {"/proc/kallsyms", "/proc/kcore", NULL};
static const char *const MODULE_TREES[] = {"/usr/lib/modules", "/lib/modules", NULL};
static const char *const HOMES[] = {"/home", "/root", "/run/user", NULL};

static int wants_mount_namespace(const struct context *c)
{
    return c->private_tmp || c->private_devices || c->protect_kernel_tunables ||
           c->protect_kernel_modules || c->protect_control_groups || c->protect_system ||
           c->protect_home || c->n_read_write || c->n_read_only || c->n_inaccessible;
}

static void add_rule(struct access_rule *rules, int *n, const char *path, const char *key,
                     int readonly, int optional)
{
    if (*n >= 4 * MAX_ITEMS)
        fail(EXIT_NAMESPACE, key, "too many paths", 0);
    rules[*n].path = path;
    rules[*n].key = key;
    rules[*n].readonly = readonly;
    rules[*n].optional = optional;
    rules[*n].strict_root = strcmp(path, "/") == 0;
    (*n)++;
}

static void setup_mount_namespace(const struct context *c)
{
    struct access_rule rules[4 * MAX_ITEMS];
    struct staging staging;
    int n = 0, i, k, optional;
    const char *system = c->protect_system, *home = c->protect_home;

    memset(&staging, 0, sizeof staging);
    if (unshare(CLONE_NEWNS) < 0)
        fail(EXIT_NAMESPACE, "sandbox", "unshare(CLONE_NEWNS)", errno);
    /* Nothing done here may reach the host; the host's later mounts still arrive. */
    if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
        fail(EXIT_NAMESPACE, "sandbox", "/", errno);

    if (c->private_devices || c->n_inaccessible || c->protect_kernel_tunables ||
        c->protect_kernel_modules || (home && strcmp(home, "yes") == 0))
        make_staging(&staging);
    if (c->private_devices)
        private_dev(&staging);
    for (i = 0; i < c->n_inaccessible; i++) {
        const char *path = optional_path(c->inaccessible[i], &optional);
        make_inaccessible(&staging, path, "inaccessible_paths", optional);
    }
    if (home && strcmp(home, "yes") == 0)
        for (i = 0; HOMES[i]; i++)
            make_inaccessible(&staging, HOMES[i], "protect_home", 1);
    if (c->protect_kernel_tunables)
        for (i = 0; KERNEL_SECRETS[i]; i++)
            make_inaccessible(&staging, KERNEL_SECRETS[i], "protect_kernel_tunables", 1);
    if (c->protect_kernel_modules)
        for (i = 0; MODULE_TREES[i]; i++)
            make_inaccessible(&staging, MODULE_TREES[i], "protect_kernel_modules", 1);
    drop_staging(&staging);

    /* Read-only and writable trees, the shallower first, so the deeper rule wins. */
    if (system && strcmp(system, "strict") == 0) {
        add_rule(rules, &n, "/", "protect_system", 1, 0);
        for (k = 0; k < DIR_KINDS; k++)
            for (i = 0; k != DIR_CONFIG && i < c->n_dirs[k]; i++)
                add_rule(rules, &n, c->dirs[k][i].path, DIR_KIND[k].key, 0, 0);
    } else if (system && strcmp(system, "no") != 0) {
        add_rule(rules, &n, "/usr", "protect_system", 1, 1);
        add_rule(rules, &n, "/boot", "protect_system", 1, 1);
        add_rule(rules, &n, "/efi", "protect_system", 1, 1);
        if (strcmp(system, "full") == 0)
            add_rule(rules, &n, "/etc", "protect_system", 1, 1);
    }
    if (home && strcmp(home, "read-only") == 0)
        for (i = 0; HOMES[i]; i++)
            add_rule(rules, &n, HOMES[i], "protect_home", 1, 1);
    if (c->protect_kernel_tunables)
        for (i = 0; KERNEL_TUNABLES[i]; i++)
            add_rule(rules, &n, KERNEL_TUNABLES[i], "protect_kernel_tunables", 1, 1);
    if (c->protect_control_groups)
        add_rule(rules, &n, "/sys/fs/cgroup", "protect_control_groups", 1, 1);
    for (i = 0; i < c->n_read_only; i++) {
        const char *path = optional_path(c->read_only[i], &optional);
        add_rule(rules, &n, path, "read_only_paths", 1, optional);
    }
    for (i = 0; i < c->n_read_write; i++) {
        const char *path = optional_path(c->read_write[i], &optional);
        add_rule(rules, &n, path, "read_write_paths", 0, optional);
    }
    qsort(rules, (size_t)n, sizeof rules[0], by_depth);
    for (i = 0; i < n; i++) {
        char *real = realpath(rules[i].path, NULL);  /* mountinfo names real paths */
        int r;

        if (real == NULL) {
            if (errno == ENOENT && rules[i].optional)
                continue;
            fail(EXIT_NAMESPACE, rules[i].key, rules[i].path, errno);
        }
        r = set_access(real, rules[i].readonly, rules[i].strict_root);
        if (r < 0)
            fail(EXIT_NAMESPACE, rules[i].key, rules[i].path, -r);
        free(real);
    }

    /* Fresh, empty trees last: they are writable (or empty and read-only). */
    if (home && strcmp(home, "tmpfs") == 0)
        for (i = 0; HOMES[i]; i++)
            mount_tmpfs(HOMES[i], "protect_home", "mode=0755,size=64k", MS_RDONLY);
    if (c->private_tmp) {
        mount_tmpfs("/tmp", "private_tmp", "mode=1777", 0);
        mount_tmpfs("/var/tmp", "private_tmp", "mode=1777", 0);
    }
}

static void setup_private_network(void)
{
    struct ifreq ifr;
    int fd;

    if (unshare(CLONE_NEWNET) < 0)
        fail(EXIT_NETWORK, "private_network", "unshare(CLONE_NEWNET)", errno);
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        fail(EXIT_NETWORK, "private_network", "socket", errno);
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
        fail(EXIT_NETWORK, "private_network", "lo", errno);
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
        fail(EXIT_NETWORK, "private_network", "lo", errno);
    close(fd);
}

/* -- 7. The user, groups, capabilities, no_new_privs. ------------------------------- */

/* The kernel's capability numbers (linux/capability.h), by their .svc names. */
static const char *const CAPABILITIES[] = {
    "cap_chown", "cap_dac_override", "cap_dac_read_search", "cap_fowner", "cap_fsetid",
    "cap_kill", "cap_setgid", "cap_setuid", "cap_setpcap", "cap_linux_immutable",
    "cap_net_bind_service", "cap_net_broadcast", "cap_net_admin", "cap_net_raw",
    "cap_ipc_lock", "cap_ipc_owner", "cap_sys_module", "cap_sys_rawio", "cap_sys_chroot",
    "cap_sys_ptrace", "cap_sys_pacct", "cap_sys_admin", "cap_sys_boot", "cap_sys_nice",
    "cap_sys_resource", "cap_sys_time", "cap_sys_tty_config", "cap_mknod", "cap_lease",
    "cap_audit_write", "cap_audit_control", "cap_setfcap", "cap_mac_override",
    "cap_mac_admin", "cap_syslog", "cap_wake_alarm", "cap_block_suspend", "cap_audit_read",
    "cap_perfmon", "cap_bpf", "cap_checkpoint_restore", NULL};
#define CAP_COUNT 41

static int last_capability(void)
{
    long long last = read_number_file("/proc/sys/kernel/cap_last_cap", CAP_COUNT - 1);

    return last < 0 || last > 63 ? CAP_COUNT - 1 : (int)last;
}

/* "names" or "~names" as a set; ~ means every capability but those. */
static uint64_t capability_set(const char *text, const char *key)
{
    char *copy = need(strdup(text)), *word, *save = NULL, *start = copy;
    uint64_t set = 0;
    int invert = 0, i;

    while (isspace((unsigned char)*start))
        start++;
    if (*start == '~')
        invert = 1, start++;
    for (word = strtok_r(start, " \t", &save); word; word = strtok_r(NULL, " \t", &save)) {
        for (i = 0; CAPABILITIES[i]; i++)
            if (strcasecmp(CAPABILITIES[i], word) == 0)
                break;
        if (CAPABILITIES[i] == NULL) {
            char what[96];
            snprintf(what, sizeof what, "%s: no such capability", word);
            fail(EXIT_CAPABILITIES, key, what, 0);
        }
        set |= 1ULL << i;
    }
    free(copy);
    return invert ? ~set : set;
}

struct caps {
    struct __user_cap_header_struct header;
    struct __user_cap_data_struct data[2];
};

static uint64_t get_caps(struct caps *c, int which)
{
    uint64_t value;

    memset(c, 0, sizeof *c);
    c->header.version = _LINUX_CAPABILITY_VERSION_3;
    if (syscall(SYS_capget, &c->header, c->data) < 0)
        return 0;
    value = which == 0 ? (uint64_t)c->data[1].effective << 32 | c->data[0].effective
          : which == 1 ? (uint64_t)c->data[1].permitted << 32 | c->data[0].permitted
                       : (uint64_t)c->data[1].inheritable << 32 | c->data[0].inheritable;
    return value;
}

static int set_caps(uint64_t effective, uint64_t permitted, uint64_t inheritable)
{
    struct caps c;

    memset(&c, 0, sizeof c);
    c.header.version = _LINUX_CAPABILITY_VERSION_3;
    c.data[0].effective = (uint32_t)effective;
    c.data[1].effective = (uint32_t)(effective >> 32);
    c.data[0].permitted = (uint32_t)permitted;
    c.data[1].permitted = (uint32_t)(permitted >> 32);
    c.data[0].inheritable = (uint32_t)inheritable;
    c.data[1].inheritable = (uint32_t)(inheritable >> 32);
    return (int)syscall(SYS_capset, &c.header, c.data);
}

static void drop_user_and_capabilities(const struct context *c)
{
    int last = last_capability(), i;
    uint64_t all = last >= 63 ? ~0ULL : (1ULL << (last + 1)) - 1;
    uint64_t drop = 0, ambient = 0;
    int to_user = c->has_uid && c->uid != 0;
    struct caps state;

    if (c->cap_bounding)
        drop = ~capability_set(c->cap_bounding, "cap_bounding");
    if (c->protect_kernel_modules)
        drop |= 1ULL << CAP_SYS_MODULE;
    if (c->private_devices)
        drop |= 1ULL << CAP_MKNOD | 1ULL << CAP_SYS_RAWIO;
    drop &= all;
    if (c->ambient_caps)
        ambient = capability_set(c->ambient_caps, "ambient_caps") & all & ~drop;

    /* The user: groups first, while we may still set them. */
    if (c->has_groups && setgroups((size_t)c->n_groups, c->groups) < 0)
        fail(EXIT_GROUP, "supplementary_group", "setgroups", errno);
    if (c->has_gid && setgid(c->gid) < 0)
        fail(EXIT_GROUP, "group", "setgid", errno);
    if (to_user && (drop || ambient) && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
        fail(EXIT_CAPABILITIES, "ambient_caps", "PR_SET_KEEPCAPS", errno);
    if (c->has_uid) {
        if (setuid(c->uid) < 0)
            fail(EXIT_USER, "user", "setuid", errno);
        if (getuid() != c->uid || geteuid() != c->uid)
            fail(EXIT_USER, "user", "setuid: the uid did not change", 0);
    }
    /* Back to an effective set to work with (KEEPCAPS kept the permitted one). */
    if (to_user && (drop || ambient)) {
        uint64_t permitted = get_caps(&state, 1);
        if (set_caps(permitted, permitted, 0) < 0)
            fail(EXIT_CAPABILITIES, "ambient_caps", "capset", errno);
    }
    for (i = 0; i <= last; i++)
        if ((drop >> i & 1) && prctl(PR_CAPBSET_DROP, i, 0, 0, 0) < 0 && errno != EINVAL)
            fail(EXIT_CAPABILITIES, "cap_bounding", CAPABILITIES[i < CAP_COUNT ? i : 0],
                 errno);
    if (ambient) {
        uint64_t inheritable = get_caps(&state, 2) | ambient;
        int r = to_user ? set_caps(ambient, ambient, ambient)
                        : set_caps(get_caps(&state, 0), get_caps(&state, 1), inheritable);
        if (r < 0)
            fail(EXIT_CAPABILITIES, "ambient_caps", "capset", errno);
        for (i = 0; i <= last; i++)
            if ((ambient >> i & 1) &&
                prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, i, 0, 0) < 0)
                fail(EXIT_CAPABILITIES, "ambient_caps", CAPABILITIES[i < CAP_COUNT ? i : 0],
                     errno);
    } else if (to_user && drop) {
        if (set_caps(0, 0, 0) < 0)      /* what the setuid would have done */
            fail(EXIT_CAPABILITIES, "cap_bounding", "capset", errno);
    }
    if (to_user && (drop || ambient))
        prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
    if (c->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        fail(EXIT_NO_NEW_PRIVILEGES, "no_new_privs", "PR_SET_NO_NEW_PRIVS", errno);
}

/* -- 8. restrict_address_families: a seccomp filter on socket(2) and socketpair(2). -- */

static const struct {
    const char *name;
    int family;
} FAMILIES[] = {
    {"AF_UNIX", AF_UNIX}, {"AF_LOCAL", AF_LOCAL}, {"AF_INET", AF_INET},
    {"AF_AX25", AF_AX25}, {"AF_IPX", AF_IPX}, {"AF_APPLETALK", AF_APPLETALK},
    {"AF_NETROM", AF_NETROM}, {"AF_BRIDGE", AF_BRIDGE}, {"AF_ATMPVC", AF_ATMPVC},
    {"AF_X25", AF_X25}, {"AF_INET6", AF_INET6}, {"AF_ROSE", AF_ROSE},
    {"AF_DECNET", AF_DECnet}, {"AF_NETBEUI", AF_NETBEUI}, {"AF_SECURITY", AF_SECURITY},
    {"AF_KEY", AF_KEY}, {"AF_NETLINK", AF_NETLINK}, {"AF_ROUTE", AF_ROUTE},
    {"AF_PACKET", AF_PACKET}, {"AF_ASH", AF_ASH}, {"AF_ECONET", AF_ECONET},
    {"AF_ATMSVC", AF_ATMSVC}, {"AF_RDS", AF_RDS}, {"AF_SNA", AF_SNA}, {"AF_IRDA", AF_IRDA},
    {"AF_PPPOX", AF_PPPOX}, {"AF_WANPIPE", AF_WANPIPE}, {"AF_LLC", AF_LLC},
    {"AF_IB", AF_IB}, {"AF_MPLS", AF_MPLS}, {"AF_CAN", AF_CAN}, {"AF_TIPC", AF_TIPC},
    {"AF_BLUETOOTH", AF_BLUETOOTH}, {"AF_IUCV", AF_IUCV}, {"AF_RXRPC", AF_RXRPC},
    {"AF_ISDN", AF_ISDN}, {"AF_PHONET", AF_PHONET}, {"AF_IEEE802154", AF_IEEE802154},
    {"AF_CAIF", AF_CAIF}, {"AF_ALG", AF_ALG}, {"AF_NFC", AF_NFC}, {"AF_VSOCK", AF_VSOCK},
    {"AF_KCM", AF_KCM}, {"AF_QIPCRTR", AF_QIPCRTR}, {"AF_SMC", AF_SMC},
    {"AF_XDP", 44}, {"AF_MCTP", 45},
};

#if defined(__x86_64__)
#define NATIVE_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_AUDIT_ARCH AUDIT_ARCH_AARCH64
#elif defined(__arm__) && defined(__ARM_EABI__)
#define NATIVE_AUDIT_ARCH AUDIT_ARCH_ARM
#endif

#ifndef SECCOMP_RET_KILL_PROCESS
#define SECCOMP_RET_KILL_PROCESS 0x80000000U
#endif

static void restrict_families(const struct context *c)
{
#ifdef NATIVE_AUDIT_ARCH
    struct sock_filter program[16 + sizeof FAMILIES / sizeof FAMILIES[0]];
    struct sock_fprog fprog;
    char *copy = need(strdup(c->families)), *word, *save = NULL, *start = copy;
    int allow_list = 1, n = 0, count = 0, families[sizeof FAMILIES / sizeof FAMILIES[0]];
    size_t i;
    unsigned int matched, unmatched;
    /* The low 32 bits of argument 0 (the family is an int): little-endian targets. */
    unsigned int arg0 = offsetof(struct seccomp_data, args[0]);

    while (isspace((unsigned char)*start))
        start++;
    if (*start == '~')
        allow_list = 0, start++;
    for (word = strtok_r(start, " \t", &save); word; word = strtok_r(NULL, " \t", &save)) {
        if (strcmp(word, "none") == 0)
            continue;
        for (i = 0; i < sizeof FAMILIES / sizeof FAMILIES[0]; i++)
            if (strcasecmp(FAMILIES[i].name, word) == 0)
                break;
        if (i == sizeof FAMILIES / sizeof FAMILIES[0]) {
            char what[96];
            snprintf(what, sizeof what, "%s: no such address family", word);
            fail(EXIT_ADDRESS_FAMILIES, "restrict_address_families", what, 0);
        }
        if (count < (int)(sizeof families / sizeof families[0]))
            families[count++] = FAMILIES[i].family;
    }
    free(copy);
    matched = allow_list ? SECCOMP_RET_ALLOW : SECCOMP_RET_ERRNO | EAFNOSUPPORT;
    unmatched = allow_list ? SECCOMP_RET_ERRNO | EAFNOSUPPORT : SECCOMP_RET_ALLOW;

    /* Another ABI (32-bit x86 on x86_64, arm on aarch64, x32) numbers its calls
     * differently and would pass by the check below: such a call ends the process. */
    program[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                                offsetof(struct seccomp_data, arch));
    program[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
                                                NATIVE_AUDIT_ARCH, 1, 0);
    program[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    program[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                                offsetof(struct seccomp_data, nr));
#ifdef __x86_64__
    program[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000U, 0, 1);
    program[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
#endif
    program[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socket, 2, 0);
    program[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socketpair,
                                                1, 0);
    program[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    program[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, arg0);
    for (i = 0; i < (size_t)count; i++)     /* a match jumps to "matched", the last */
        program[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
                                                    (unsigned int)families[i],
                                                    (unsigned char)(count - i), 0);
    program[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, unmatched);
    program[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, matched);
    fprog.len = (unsigned short)n;
    fprog.filter = program;

    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0) == 0)
        return;
    if (errno == EACCES) {
        /* Without CAP_SYS_ADMIN the kernel wants no_new_privs first (systemd implies
         * it in this case too). */
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
            fail(EXIT_NO_NEW_PRIVILEGES, "restrict_address_families", "PR_SET_NO_NEW_PRIVS",
                 errno);
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0) == 0)
            return;
    }
    if (errno == EINVAL) {
        say("restrict_address_families",
            "seccomp filters are not available in this kernel; not applied");
        return;
    }
    fail(EXIT_ADDRESS_FAMILIES, "restrict_address_families", "seccomp", errno);
#else
    (void)c;
    say("restrict_address_families", "no seccomp filter for this architecture; not applied");
#endif
}

/* -- 9-11. The working directory, $VAR expansion, exec. --------------------------- */

static void enter_workdir(const struct context *c)
{
    const char *path = c->workdir;
    int optional = 0;

    if (path == NULL || path[0] == '\0')
        path = "/";
    if (path[0] == '-')
        optional = 1, path++;
    if (chdir(path) == 0)
        return;
    if (!optional)
        fail(EXIT_CHDIR, "workdir", path, errno);
    if (chdir("/") < 0)
        fail(EXIT_CHDIR, "workdir", "/", errno);
}

struct words {
    char **items;
    int count, cap;
};

static void add_word(struct words *w, char *word)
{
    if (w->count + 2 > w->cap) {
        w->cap = w->cap ? w->cap * 2 : 16;
        w->items = need(realloc(w->items, (size_t)w->cap * sizeof *w->items));
    }
    w->items[w->count++] = word;
    w->items[w->count] = NULL;
}

static int name_char(char ch, int first)
{
    return ch == '_' || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
           (!first && ch >= '0' && ch <= '9');
}

/* $NAME alone as a word: NAME's value split at blanks, "..." and '...' grouping, the
 * quotes removed; zero or more words. */
static void split_value(struct words *out, const char *value)
{
    const char *p = value;

    for (;;) {
        char *word, *q;
        char quote = 0;

        while (*p == ' ' || *p == '\t' || *p == '\n')
            p++;
        if (*p == '\0')
            return;
        word = q = need(malloc(strlen(p) + 1));
        for (; *p; p++) {
            if (quote) {
                if (*p == quote)
                    quote = 0;
                else
                    *q++ = *p;
            } else if (*p == '"' || *p == '\'') {
                quote = *p;
            } else if (*p == ' ' || *p == '\t' || *p == '\n') {
                break;
            } else {
                *q++ = *p;
            }
        }
        *q = '\0';
        add_word(out, word);
    }
}

/* One word: ${NAME} anywhere is NAME's value (unset: empty), $$ is $, any other $ is
 * itself. */
static char *expand_inline(const char *word)
{
    size_t cap = strlen(word) + 1, len = 0;
    char *out = need(malloc(cap));
    const char *p = word;

    while (*p) {
        const char *piece = p;
        size_t n = 1;
        char name[256];

        if (p[0] == '$' && p[1] == '$') {
            p += 2;
        } else if (p[0] == '$' && p[1] == '{') {
            const char *end = strchr(p + 2, '}');
            size_t k = end ? (size_t)(end - p - 2) : 0;
            size_t i;
            int valid = end && k > 0 && k < sizeof name && name_char(p[2], 1);

            for (i = 1; valid && i < k; i++)
                valid = name_char(p[2 + i], 0);
            if (valid) {
                memcpy(name, p + 2, k);
                name[k] = '\0';
                piece = getenv(name);
                if (piece == NULL)
                    piece = "";
                n = strlen(piece);
                p = end + 1;
            } else {
                p++;
            }
        } else {
            p++;
        }
        if (len + n + 1 > cap) {
            cap = (len + n + 1) * 2;
            out = need(realloc(out, cap));
        }
        memcpy(out + len, piece, n);
        len += n;
    }
    out[len] = '\0';
    return out;
}

static void expand_word(struct words *out, const char *word)
{
    const char *p;

    if (word[0] == '$' && name_char(word[1], 1)) {
        for (p = word + 2; name_char(*p, 0); p++)
            ;
        if (*p == '\0') {
            const char *value = getenv(word + 1);
            if (value != NULL)
                split_value(out, value);
            return;
        }
    }
    add_word(out, expand_inline(word));
}

static void run(const struct context *c)
{
    struct words argv = {NULL, 0, 0};
    const char *path = c->words[0];
    int i;

    if (!c->at)
        add_word(&argv, (char *)path);
    for (i = 1; i < c->n_words; i++) {
        if (c->expand)
            expand_word(&argv, c->words[i]);
        else
            add_word(&argv, c->words[i]);
    }
    if (argv.count == 0)
        add_word(&argv, (char *)path);
    execve(path, argv.items, environ);
    fail(EXIT_EXEC, "exec", path, errno);
}

/* -- PID 1's own limits at boot. --------------------------------------------------- */

#define MEMLOCK_DEFAULT (8ULL * 1024 * 1024)   /* systemd's DefaultLimitMEMLOCK= */

/* NOFILE's hard limit to fs.nr_open, its soft one left as it is (children inherit it,
 * and select() cannot watch an fd above 1023); MEMLOCK up to 8 MiB, never down. */
static int raise_limits(pid_t pid)
{
    struct rlimit old, now;
    rlim_t nr_open = kernel_maximum(RLIMIT_NOFILE);
    int status = 0;

    if (prlimit(pid, RLIMIT_NOFILE, NULL, &old) == 0 && old.rlim_max < nr_open) {
        now.rlim_cur = old.rlim_cur;
        now.rlim_max = nr_open;
        if (prlimit(pid, RLIMIT_NOFILE, &now, NULL) < 0) {
            dprintf(2, "schema-exec: raising NOFILE's hard limit: %s\n", strerror(errno));
            status = EXIT_LIMITS;
        }
    }
    if (prlimit(pid, RLIMIT_MEMLOCK, NULL, &old) == 0 &&
        (old.rlim_cur < MEMLOCK_DEFAULT || old.rlim_max < MEMLOCK_DEFAULT)) {
        now.rlim_cur = old.rlim_cur < MEMLOCK_DEFAULT ? MEMLOCK_DEFAULT : old.rlim_cur;
        now.rlim_max = old.rlim_max < MEMLOCK_DEFAULT ? MEMLOCK_DEFAULT : old.rlim_max;
        if (prlimit(pid, RLIMIT_MEMLOCK, &now, NULL) < 0) {
            dprintf(2, "schema-exec: raising MEMLOCK: %s\n", strerror(errno));
            status = EXIT_LIMITS;
        }
    }
    return status;
}

int schema_exec(int argc, char **argv)
{
    struct context c;

    if (argc == 3 && strcmp(argv[1], "--raise-limits") == 0)
        return raise_limits((pid_t)number(argv[2], 1, INT_MAX, 10, "--raise-limits"));
    parse_arguments(&c, argc, argv);
    apply_limits(&c);
    apply_process_settings(&c);
    setup_directories(&c);
    if (wants_mount_namespace(&c))
        setup_mount_namespace(&c);
    if (c.private_network)
        setup_private_network();
    drop_user_and_capabilities(&c);
    if (c.families)
        restrict_families(&c);
    enter_workdir(&c);
    run(&c);
    return EXIT_EXEC;
}
