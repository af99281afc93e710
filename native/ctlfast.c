/* schema-ctl's common case in C, before the interpreter starts.
 *
 * The interpreter's own start-up costs about 12 ms; a status request costs well under
 * one.  So when the static binary runs as schema-ctl and the request can be sent (the
 * arguments are a request, the socket accepts the connection), this file sends it,
 * prints the reply and exits with schema-ctl's status: 0, 1 for an `err:` reply, 3 when
 * the exchange fails after connecting, 4 when the reply has no terminator line.
 * Everything else (--help, --version, usage errors, a socket that cannot be reached,
 * with its hint, and the commands the client answers itself: top, blame, ...) returns
 * -1 before anything was sent, and the Python client
 * (schema_init/ctl/ctl.py) does it.  The constants come from schema_init/core/protocol.py
 * through the generated schema_ctl.h.  SCHEMA_CTL_PYTHON=1 in the environment sends
 * every request through the Python client (to compare the two, or to debug). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "schema_ctl.h"

static int write_all(int fd, const char *data, size_t size)
{
    while (size > 0) {
        ssize_t n = write(fd, data, size);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        data += n;
        size -= (size_t)n;
    }
    return 0;
}

static int failed(const char *path, const char *what)
{
    fprintf(stderr, "schema-ctl: %s: %s\n", path, what);
    return 3;
}

static const char *const client_verbs[] = {SCHEMA_CTL_CLIENT_VERBS, NULL};

/* Returns schema-ctl's exit status, or -1: let the Python client do it. */
int schema_ctl_fast(int argc, char **argv)
{
    const char *path = getenv("SCHEMA_CTL_SOCKET");
    char line[SCHEMA_CTL_MAX_REQUEST + 2];
    size_t length = 0;
    struct sockaddr_un address;
    struct timeval timeout = {SCHEMA_CTL_TIMEOUT, 0};
    const size_t term = strlen(SCHEMA_CTL_TERMINATOR);
    char *reply = NULL;
    size_t size = 0, capacity = 0;
    int i = 1, fd, status;

    if (getenv("SCHEMA_CTL_PYTHON") != NULL)
        return -1;
    if (path == NULL || *path == '\0')
        path = SCHEMA_CTL_DEFAULT_SOCKET;
    while (i < argc && strncmp(argv[i], "--socket", 8) == 0) {
        if (argv[i][8] == '=')
            path = argv[i] + 9;
        else if (argv[i][8] == '\0' && i + 1 < argc)
            path = argv[++i];
        else
            return -1;
        i++;
    }
    if (i >= argc || argv[i][0] == '-')
        return -1;                        /* help, version, usage: the Python client */
    for (const char *const *verb = client_verbs; *verb != NULL; verb++)
        if (strcmp(argv[i], *verb) == 0)
            return -1;                    /* top, blame, ...: the client draws them */
    for (; i < argc; i++) {
        size_t n = strlen(argv[i]);
        if (length + n + 1 > SCHEMA_CTL_MAX_REQUEST + 1 || strchr(argv[i], '\n'))
            return -1;
        if (length)
            line[length++] = ' ';
        memcpy(line + length, argv[i], n);
        length += n;
    }
    if (length > SCHEMA_CTL_MAX_REQUEST || strlen(path) >= sizeof address.sun_path)
        return -1;
    line[length++] = '\n';

    memset(&address, 0, sizeof address);
    address.sun_family = AF_UNIX;
    strcpy(address.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        close(fd);
        return -1;                        /* nothing sent: the Python client says why */
    }
    if (write_all(fd, line, length) != 0) {
        close(fd);
        return failed(path, strerror(errno));
    }
    for (;;) {
        ssize_t n;
        if (capacity - size < 65536) {
            char *bigger = realloc(reply, capacity + 65536);
            if (bigger == NULL) {
                close(fd);
                return failed(path, "out of memory");
            }
            reply = bigger;
            capacity += 65536;
        }
        n = read(fd, reply + size, capacity - size);
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            close(fd);
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                fprintf(stderr, "schema-ctl: %s: timed out (no reply within %d s)\n", path,
                        SCHEMA_CTL_TIMEOUT);
                return 3;
            }
            return failed(path, strerror(errno));
        }
        size += (size_t)n;
    }
    close(fd);
    if (size == term && memcmp(reply, SCHEMA_CTL_TERMINATOR, term) == 0) {
        size = 0;
    } else if (size > term && reply[size - term - 1] == '\n' &&
               memcmp(reply + size - term, SCHEMA_CTL_TERMINATOR, term) == 0) {
        size -= term;
    } else {
        write_all(1, reply, size);
        fprintf(stderr, "schema-ctl: %s: the reply ended without its terminator line\n",
                path);
        return 4;
    }
    status = size >= 4 && memcmp(reply, "err:", 4) == 0 ? 1 : 0;
    if (write_all(1, reply, size) != 0)
        status = 3;
    free(reply);
    return status;
}
