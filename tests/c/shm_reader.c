/* Reads schema-init's shared memory through the generated native/schema_shm.h, the way a
 * third-party tool would, and checks every snapshot it accepts for consistency.
 *
 * usage: shm_reader NAME SECONDS EXPECTED_COUNT
 * Prints "snapshots=N retries=M" and exits 0, or prints what was wrong and exits 1.
 */
#include "schema_shm.h"

#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The seqlock read: an even sequence before and the same one after the copy.  The
 * writer may be preempted while the sequence is odd, so wait by time, yielding. */
static int snapshot(const volatile schema_shm_t *shm, schema_shm_t *out, long *retries) {
    double give_up = now() + 2.0;
    while (now() < give_up) {
        uint32_t before = __atomic_load_n(&shm->seq, __ATOMIC_ACQUIRE);
        if (before & 1) { (*retries)++; sched_yield(); continue; }
        memcpy(out, (const void *)shm, sizeof *out);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        uint32_t after = __atomic_load_n(&shm->seq, __ATOMIC_RELAXED);
        if (before == after) return 1;
        (*retries)++;
    }
    return 0;
}

static int valid_state(int s) {
    return s == 1 || s == 6 || s == 7 || s == 8 || s == 9 || s == 10 || s == 75 || s == 76 || s == 88;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: %s NAME SECONDS COUNT\n", argv[0]); return 2; }
    char path[256];
    snprintf(path, sizeof path, "/dev/shm/%s", argv[1][0] == '/' ? argv[1] + 1 : argv[1]);
    int fd = open(path, O_RDONLY);
    if (fd < 0) { perror(path); return 1; }
    const volatile schema_shm_t *shm = mmap(NULL, SCHEMA_SHM_SIZE, PROT_READ, MAP_SHARED, fd, 0);
    if (shm == MAP_FAILED) { perror("mmap"); return 1; }
    double end = now() + atof(argv[2]);
    int expected = atoi(argv[3]);
    static schema_shm_t snap;
    int last_restarts[SCHEMA_SHM_MAX] = {0};
    long snapshots = 0, retries = 0, changes = 0;
    uint32_t last_seq = 0;
    while (now() < end) {
        if (!snapshot(shm, &snap, &retries)) { printf("no stable snapshot\n"); return 1; }
        snapshots++;
        if (snap.seq != last_seq) changes++;
        last_seq = snap.seq;
        if (snap.count != expected) { printf("count %d != %d\n", snap.count, expected); return 1; }
        for (int i = 0; i < snap.count; i++) {
            const shm_svc_t *s = &snap.svc[i];
            char want[16];
            snprintf(want, sizeof want, "churn%02d", i);
            if (strncmp(s->name, want, sizeof s->name) != 0) {
                printf("entry %d name '%.64s' != '%s' (seq %u)\n", i, s->name, want, snap.seq);
                return 1;
            }
            if (!valid_state(s->state)) { printf("entry %d bad state %d\n", i, s->state); return 1; }
            /* A running service has a pid; a resting one has none.  A torn copy mixes
             * one service's old state with its new pid and breaks this. */
            int running = s->state == 10 || s->state == 1;
            if (running != (s->child_pid > 0)) {
                printf("entry %d torn: state %d pid %d (seq %u)\n", i, s->state, s->child_pid, snap.seq);
                return 1;
            }
            if (s->restart_count < last_restarts[i]) {
                printf("entry %d restarts went back %d -> %d\n", i, last_restarts[i], s->restart_count);
                return 1;
            }
            last_restarts[i] = s->restart_count;
        }
    }
    printf("snapshots=%ld retries=%ld changes=%ld\n", snapshots, retries, changes);
    return changes > 10 ? 0 : 1;
}
