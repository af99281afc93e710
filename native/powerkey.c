/* schema-powerkey: the power button, as a small helper process (not PID 1).
 *
 * The binary run as schema-powerkey does this in C before the interpreter would start,
 * so the helper costs a few hundred KB, not the interpreter's megabytes.  It watches
 * every /dev/input/event* device whose key bitmap has KEY_POWER (the ACPI "Power
 * Button", a board's GPIO key), and new ones as they appear (inotify on /dev/input);
 * a press asks PID 1 to power off through the control socket, as `schema-ctl poweroff`
 * (native/ctlfast.c) does.  It sleeps in poll(): no wake-up until a key or a device.
 * struct input_event comes from the C library of the target, so its size (24 bytes on
 * 64-bit, 16 on 32-bit ARM) is right on each. */
#include <errno.h>
#include <fcntl.h>
#include <linux/input.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <unistd.h>

int schema_ctl_fast(int argc, char **argv);

#define MAX_DEVICES 32
#define BITS_PER_LONG (8 * sizeof(unsigned long))

static int has_power_key(int fd)
{
    unsigned long keys[KEY_MAX / BITS_PER_LONG + 1];

    memset(keys, 0, sizeof keys);
    if (ioctl(fd, EVIOCGBIT(EV_KEY, sizeof keys), keys) < 0)
        return 0;
    return (keys[KEY_POWER / BITS_PER_LONG] >> (KEY_POWER % BITS_PER_LONG)) & 1;
}

/* Open the event devices with a power key not open yet; returns how many are open. */
static int scan(struct pollfd *fds, int count, char names[][16])
{
    char path[32];
    int n;

    for (n = 0; n < 64 && count < MAX_DEVICES; n++) {
        int fd, i, known = 0;
        snprintf(path, sizeof path, "/dev/input/event%d", n);
        for (i = 1; i < count; i++)
            known |= strcmp(names[i], path + 11) == 0;
        if (known)
            continue;
        fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
            continue;
        if (!has_power_key(fd)) {
            close(fd);
            continue;
        }
        fds[count].fd = fd;
        fds[count].events = POLLIN;
        snprintf(names[count], 16, "%s", path + 11);
        fprintf(stderr, "schema-powerkey: watching %s\n", path);
        count++;
    }
    return count;
}

int schema_powerkey(void)
{
    struct pollfd fds[MAX_DEVICES];
    char names[MAX_DEVICES][16];
    char *request[] = {"schema-ctl", "poweroff", NULL};
    int count = 1, i;

    fds[0].fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    fds[0].events = POLLIN;
    if (fds[0].fd < 0 || inotify_add_watch(fds[0].fd, "/dev/input", IN_CREATE | IN_ATTRIB) < 0)
        fprintf(stderr, "schema-powerkey: cannot watch /dev/input for new devices: %s\n",
                strerror(errno));
    count = scan(fds, count, names);
    if (count == 1)
        fprintf(stderr, "schema-powerkey: no power key yet; waiting for one\n");
    fflush(stderr);
    for (;;) {
        if (poll(fds, (nfds_t)count, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("schema-powerkey: poll");
            return 1;
        }
        if (fds[0].revents & POLLIN) {
            char buffer[4096];
            while (read(fds[0].fd, buffer, sizeof buffer) > 0)
                ;
            count = scan(fds, count, names);
            fflush(stderr);
        }
        for (i = 1; i < count; i++) {
            struct input_event event;
            if (!(fds[i].revents & (POLLIN | POLLERR | POLLHUP)))
                continue;
            while (read(fds[i].fd, &event, sizeof event) == (ssize_t)sizeof event) {
                if (event.type == EV_KEY && event.code == KEY_POWER && event.value == 1) {
                    fprintf(stderr, "schema-powerkey: power key pressed: powering off\n");
                    fflush(stderr);
                    if (schema_ctl_fast(2, request) < 0)
                        fprintf(stderr, "schema-powerkey: PID 1 cannot be reached\n");
                    fflush(stdout);
                    fflush(stderr);
                }
            }
            if (fds[i].revents & (POLLERR | POLLHUP)) {      /* the device went away */
                close(fds[i].fd);
                fds[i] = fds[count - 1];
                memcpy(names[i], names[count - 1], sizeof names[i]);
                count--;
                i--;
            }
        }
    }
}
