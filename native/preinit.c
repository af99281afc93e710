/* Runs before the interpreter starts (a constructor, so before main()).
 *
 * 1. As PID 1 nothing is mounted yet, but the compiled program finds itself through
 *    /proc/self/exe and aborts without it, and opens /dev/null for the standard
 *    streams the kernel gave it none of: mount /proc and, where /dev/urandom is
 *    missing (no devtmpfs yet), devtmpfs on /dev first.  (The interpreter no longer
 *    reads /dev/urandom: its hash seed is fixed, see build.sh.)
 * 2. A LANG/LC_* naming a locale this machine does not have (an initramfs has none)
 *    makes the interpreter's start-up abort: clear them for the interpreter and keep
 *    their values as SCHEMA_INIT_SAVED_<NAME>, which schema_init puts back into the
 *    environment its services get.
 * 3. Run as schema-ctl, the common request is served in C (native/ctlfast.c) and the
 *    process exits before the interpreter starts; run as schema-powerkey, the power
 *    button helper (native/powerkey.c) is all there is; run as schema-exec, a service's
 *    execution context is applied and the service exec'd (native/exec.c). */
#include <locale.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

int schema_ctl_fast(int argc, char **argv);
int schema_powerkey(void);
int schema_exec(int argc, char **argv);

static void save_and_clear(const char *name)
{
    const char *value = getenv(name);
    char key[64];

    if (value == NULL)
        return;
    snprintf(key, sizeof key, "SCHEMA_INIT_SAVED_%s", name);
    setenv(key, value, 1);
    unsetenv(name);
}

__attribute__((constructor)) static void schema_preinit(int argc, char **argv)
{
    if (argc > 0 && argv[0] != NULL) {
        const char *slash = strrchr(argv[0], '/');
        const char *name = slash ? slash + 1 : argv[0];
        if (strcmp(name, "schema-powerkey") == 0) {
            int status = schema_powerkey();
            fflush(stdout);
            fflush(stderr);
            _exit(status);
        }
        if (strcmp(name, "schema-exec") == 0) {
            int status = schema_exec(argc, argv);      /* returns only on failure */
            fflush(stderr);
            _exit(status);
        }
        if (strncmp(name, "schema-ctl", 10) == 0) {
            int status = schema_ctl_fast(argc, argv);
            if (status >= 0) {
                fflush(stdout);
                fflush(stderr);
                _exit(status);
            }
        }
    }
    if (getpid() == 1 && access("/proc/self/exe", F_OK) != 0) {
        mkdir("/proc", 0555);
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    }
    if (getpid() == 1 && access("/dev/urandom", F_OK) != 0) {
        mkdir("/dev", 0755);
        mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID | MS_STRICTATIME, NULL);
    }
    if (setlocale(LC_CTYPE, "") == NULL) {
        save_and_clear("LC_ALL");
        save_and_clear("LC_CTYPE");
        save_and_clear("LANG");
    }
    setlocale(LC_CTYPE, "C");
#ifdef SCHEMA_MALLOPT
    /* fixed thresholds: freed top-of-heap goes back at 64 KiB, big blocks get their
     * own mappings (returned exactly on free), no dynamic raising of either */
    mallopt(M_TRIM_THRESHOLD, 64 * 1024);
    mallopt(M_MMAP_THRESHOLD, 64 * 1024);
    mallopt(M_ARENA_MAX, 1);
#endif
}
