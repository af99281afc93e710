# cython: language_level=3, boundscheck=False, wraparound=False
"""The hot loop's primitives, in C: one blocking wait, reaping, inotify, the shm writer.

This file is the module ``schema_init.pid1._fastloop``: it serves the PID 1 path's room
(``schema_init/pid1/``; setup.py builds it there, build/build.sh links it into the
binary as the built-in ``_schema_fastloop``).  It stays at the top of the checkout as
the design card has it.  The journal's sink, ``schema-subreaper`` and ``reboot -f``
borrow a few of its calls, and ``schema-ctl top`` its terminal mode (the static
binary's Python has no ``termios`` or ``_curses``).

Rules of this file: no policy.  Everything here is a thin, non-blocking (except
``Loop.wait``) wrapper over a system call, so the supervisor above can decide and
this can act.  No fixed tick: ``Loop.wait`` sleeps until a signal, a readable or
writable fd, an inotify event, or the deadline it is given, and never otherwise.
"""

from libc.errno cimport errno, EINTR, EAGAIN, ECHILD
from libc.string cimport memset, memcpy, strlen
from libc.stdint cimport uint8_t, uint32_t, int32_t, int64_t

cdef extern from "<signal.h>" nogil:
    ctypedef struct sigset_t:
        pass
    int sigemptyset(sigset_t *)
    int sigaddset(sigset_t *, int)
    int sigprocmask(int, const sigset_t *, sigset_t *)
    int SIG_BLOCK, SIG_SETMASK, SIG_UNBLOCK

cdef extern from "<sys/signalfd.h>" nogil:
    struct signalfd_siginfo:
        uint32_t ssi_signo
        int32_t ssi_errno
        int32_t ssi_code
        uint32_t ssi_pid
        uint32_t ssi_uid
        int32_t ssi_status
    int signalfd(int, const sigset_t *, int)
    int SFD_NONBLOCK, SFD_CLOEXEC

cdef extern from "<sys/epoll.h>" nogil:
    union epoll_data_t "epoll_data":
        int fd
    struct epoll_event:
        uint32_t events
        epoll_data_t data
    int epoll_create1(int)
    int epoll_ctl(int, int, int, epoll_event *)
    int epoll_wait(int, epoll_event *, int, int)
    int EPOLL_CLOEXEC, EPOLL_CTL_ADD, EPOLL_CTL_MOD, EPOLL_CTL_DEL
    uint32_t EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP, EPOLLRDHUP

cdef extern from "<sys/inotify.h>" nogil:
    struct inotify_event:
        int wd
        uint32_t mask
        uint32_t cookie
        uint32_t len
        char name[0]
    int inotify_init1(int)
    int inotify_add_watch(int, const char *, uint32_t)
    int inotify_rm_watch(int, int)
    int IN_NONBLOCK, IN_CLOEXEC

cdef extern from "<sys/wait.h>" nogil:
    int waitpid(int, int *, int)
    int WNOHANG

cdef extern from "<sys/prctl.h>" nogil:
    int prctl(int, unsigned long, unsigned long, unsigned long, unsigned long)
    int PR_SET_CHILD_SUBREAPER

cdef extern from "<sys/reboot.h>" nogil:
    int c_reboot "reboot"(int)

cdef extern from "<malloc.h>" nogil:
    int malloc_trim(size_t)

cdef extern from "<sys/ioctl.h>" nogil:
    int ioctl(int, unsigned long, ...)

cdef extern from "<termios.h>" nogil:
    struct termios:
        unsigned int c_iflag
        unsigned int c_oflag
        unsigned int c_cflag
        unsigned int c_lflag
        unsigned char c_cc[32]
    int tcgetattr(int, termios *)
    int tcsetattr(int, int, const termios *)
    void cfmakeraw(termios *)
    int TCSANOW, TCSADRAIN, VMIN, VTIME
    unsigned int OPOST, ONLCR, ISIG

cdef extern from "<sys/mount.h>" nogil:
    int c_mount "mount"(const char *, const char *, const char *, unsigned long, const void *)
    int c_umount2 "umount2"(const char *, int)

cdef extern from "<unistd.h>" nogil:
    ssize_t read(int, void *, size_t)
    int close(int)

cdef extern from "<sys/mman.h>" nogil:
    void *mmap(void *, size_t, int, int, int, long)
    int munmap(void *, size_t)
    int PROT_READ, PROT_WRITE, MAP_SHARED
    void *MAP_FAILED

cdef extern from *:
    """
    /* Seqlock stores: the sequence is odd while the entries change, even when they
       are consistent.  Release fences order the stores for readers on other CPUs
       (x86 needs only the compiler barrier; ARM needs the real fence). */
    static inline void fl_store_seq(volatile unsigned int *p, unsigned int v) {
        __atomic_store_n(p, v, __ATOMIC_RELEASE);
    }
    static inline unsigned int fl_load_seq(volatile unsigned int *p) {
        return __atomic_load_n(p, __ATOMIC_ACQUIRE);
    }
    static inline void fl_fence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
    """
    void fl_store_seq(volatile unsigned int *p, unsigned int v) nogil
    unsigned int fl_load_seq(volatile unsigned int *p) nogil
    void fl_fence() nogil

import os as _os

READABLE = EPOLLIN
WRITABLE = EPOLLOUT
HANGUP = EPOLLERR | EPOLLHUP


def abi_version():
    return 3


cdef int _sigset(sigset_t *mask, signals) except -1:
    sigemptyset(mask)
    for signo in signals:
        sigaddset(mask, <int>signo)
    return 0


def block_signals(signals):
    """Block ``signals`` in this process (they are then read from a signalfd)."""
    cdef sigset_t mask
    _sigset(&mask, signals)
    if sigprocmask(SIG_BLOCK, &mask, NULL) != 0:
        raise OSError(errno, _os.strerror(errno))


def clear_signal_mask():
    """Unblock every signal: run in a child before exec (the mask survives exec)."""
    cdef sigset_t mask
    sigemptyset(&mask)
    sigprocmask(SIG_SETMASK, &mask, NULL)


def open_signalfd(signals):
    """A non-blocking, close-on-exec signalfd for ``signals`` (block them first)."""
    cdef sigset_t mask
    _sigset(&mask, signals)
    fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)
    if fd < 0:
        raise OSError(errno, _os.strerror(errno))
    return fd


def read_signals(int fd):
    """Drain a signalfd: the list of (signo, sender pid), oldest first."""
    cdef signalfd_siginfo info
    cdef ssize_t n
    out = []
    while True:
        n = read(fd, &info, sizeof(info))
        if n != sizeof(info):
            break
        out.append((info.ssi_signo, info.ssi_pid))
    return out


def reap():
    """Every exited child at once: ``[(pid, status)]`` from waitpid(-1, WNOHANG)."""
    cdef int status = 0
    cdef int pid
    out = []
    while True:
        pid = waitpid(-1, &status, WNOHANG)
        if pid > 0:
            out.append((pid, status))
            continue
        if pid < 0 and errno == EINTR:
            continue
        break
    return out


def set_child_subreaper():
    """Orphans of our descendants become our children (so we reap them)."""
    if prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(errno, _os.strerror(errno))


def reboot(int command):
    """reboot(2): as PID 1 it does not return on success."""
    if c_reboot(command) != 0:
        raise OSError(errno, _os.strerror(errno))


def mount(source, target, fstype, unsigned long flags, data=None):
    """mount(2); None for source, fstype or data passes NULL."""
    cdef bytes b_target = _os.fsencode(target)
    cdef bytes b_source = b""
    cdef bytes b_fstype = b""
    cdef bytes b_data = b""
    cdef const char *p_source = NULL
    cdef const char *p_fstype = NULL
    cdef const void *p_data = NULL
    if source is not None:
        b_source = _os.fsencode(source)
        p_source = b_source
    if fstype is not None:
        b_fstype = _os.fsencode(fstype)
        p_fstype = b_fstype
    if data is not None:
        b_data = _os.fsencode(data)
        p_data = <const char *>b_data
    if c_mount(p_source, b_target, p_fstype, flags, p_data) != 0:
        raise OSError(errno, _os.strerror(errno), target)


def trim_heap():
    """Give free heap memory back to the kernel (after start-up's garbage is collected)."""
    return malloc_trim(0)


def watchdog_timeout(int fd):
    """The device's timeout in seconds (WDIOC_GETTIMEOUT), or None if it will not say."""
    cdef int seconds = 0
    if ioctl(fd, 0x80045707, &seconds) != 0 or seconds <= 0:
        return None
    return seconds


def umount(target, int flags=0):
    cdef bytes b_target = _os.fsencode(target)
    if c_umount2(b_target, flags) != 0:
        raise OSError(errno, _os.strerror(errno), target)


cdef class Loop:
    """An epoll set and the one blocking wait of the whole supervisor."""

    cdef int epfd
    cdef epoll_event events[64]

    def __cinit__(self):
        self.epfd = epoll_create1(EPOLL_CLOEXEC)
        if self.epfd < 0:
            raise OSError(errno, _os.strerror(errno))

    def fileno(self):
        return self.epfd

    def register(self, int fd, uint32_t mask=EPOLLIN):
        cdef epoll_event ev
        memset(&ev, 0, sizeof(ev))
        ev.events = mask
        ev.data.fd = fd
        if epoll_ctl(self.epfd, EPOLL_CTL_ADD, fd, &ev) != 0:
            raise OSError(errno, _os.strerror(errno))

    def modify(self, int fd, uint32_t mask):
        cdef epoll_event ev
        memset(&ev, 0, sizeof(ev))
        ev.events = mask
        ev.data.fd = fd
        if epoll_ctl(self.epfd, EPOLL_CTL_MOD, fd, &ev) != 0:
            raise OSError(errno, _os.strerror(errno))

    def unregister(self, int fd):
        cdef epoll_event ev
        epoll_ctl(self.epfd, EPOLL_CTL_DEL, fd, &ev)

    def wait(self, timeout):
        """Sleep until an fd is ready or ``timeout`` seconds pass (None: no deadline).

        Returns ``[(fd, events)]``; an empty list means the deadline came.  The
        timeout is rounded *up* to whole milliseconds so a deadline is never early.
        """
        cdef int ms, n, i
        if timeout is None:
            ms = -1
        elif timeout <= 0:
            ms = 0
        else:
            ms = <int>(timeout * 1000.0)
            if ms < timeout * 1000.0:
                ms += 1
            if ms > 2000000000:
                ms = 2000000000
        with nogil:
            n = epoll_wait(self.epfd, self.events, 64, ms)
        if n < 0:
            if errno == EINTR:
                return []
            raise OSError(errno, _os.strerror(errno))
        return [(self.events[i].data.fd, self.events[i].events) for i in range(n)]

    def close(self):
        if self.epfd >= 0:
            close(self.epfd)
            self.epfd = -1


# inotify masks the supervisor uses for ready_path watching.
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_ATTRIB = 0x4
IN_IGNORED = 0x8000
IN_Q_OVERFLOW = 0x4000
IN_ONLYDIR = 0x01000000


def inotify_open():
    fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
    if fd < 0:
        raise OSError(errno, _os.strerror(errno))
    return fd


def inotify_watch(int fd, path, uint32_t mask):
    """Add (or update) a watch; returns the watch descriptor."""
    cdef bytes p = _os.fsencode(path)
    wd = inotify_add_watch(fd, p, mask)
    if wd < 0:
        raise OSError(errno, _os.strerror(errno), path)
    return wd


def inotify_unwatch(int fd, int wd):
    inotify_rm_watch(fd, wd)


def inotify_read(int fd):
    """Drain the inotify fd: ``[(wd, mask, name)]``."""
    cdef char buf[8192]
    cdef ssize_t n
    cdef size_t offset
    cdef inotify_event *ev
    out = []
    while True:
        n = read(fd, buf, sizeof(buf))
        if n <= 0:
            break
        offset = 0
        while offset + sizeof(inotify_event) <= <size_t>n:
            ev = <inotify_event *>(buf + offset)
            name = b""
            if ev.len:
                name = (<char *>ev.name)[:strlen(ev.name)] if ev.name[0] else b""
            out.append((ev.wd, ev.mask, _os.fsdecode(name)))
            offset += sizeof(inotify_event) + ev.len
    return out


cdef class ShmWriter:
    """Writes snapshots into a shared mapping of ``fd`` under a seqlock.

    The layout comes from ``schema_init.pid1.shm`` (the one definition): the writer is
    told where the sequence word is and where to put each field.  ``seq`` is odd
    while writing and even when consistent; the caller writes only when something
    changed.  The mapping is made here (no ``mmap`` module: it is not built into
    Debian's static libpython).
    """

    cdef unsigned char *base
    cdef Py_ssize_t size
    cdef Py_ssize_t seq_offset

    def __cinit__(self, int fd, Py_ssize_t size, Py_ssize_t seq_offset):
        cdef void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        if p == MAP_FAILED:
            raise OSError(errno, _os.strerror(errno))
        self.base = <unsigned char *>p
        self.size = size
        self.seq_offset = seq_offset

    def __dealloc__(self):
        self.release()

    def begin(self):
        """Make ``seq`` odd: readers retry until ``end``."""
        cdef volatile unsigned int *seq = <unsigned int *>(self.base + self.seq_offset)
        cdef unsigned int value = fl_load_seq(seq)
        if value & 1:
            value += 1           # a crashed writer left it odd: keep the parity rule
        fl_store_seq(seq, value + 1)
        fl_fence()

    def end(self):
        cdef volatile unsigned int *seq = <unsigned int *>(self.base + self.seq_offset)
        fl_fence()
        fl_store_seq(seq, fl_load_seq(seq) + 1)

    def put_i32(self, Py_ssize_t offset, int32_t value):
        if offset < 0 or offset + 4 > self.size:
            raise IndexError(offset)
        memcpy(self.base + offset, &value, 4)

    def put_u8(self, Py_ssize_t offset, uint8_t value):
        if offset < 0 or offset + 1 > self.size:
            raise IndexError(offset)
        self.base[offset] = value

    def put_name(self, Py_ssize_t offset, bytes name, Py_ssize_t width):
        """A NUL-padded fixed-width name (at most width-1 bytes)."""
        cdef Py_ssize_t n = len(name)
        if offset < 0 or offset + width > self.size:
            raise IndexError(offset)
        if n > width - 1:
            n = width - 1
        memset(self.base + offset, 0, width)
        memcpy(self.base + offset, <const char *>name, n)

    def put_i64(self, Py_ssize_t offset, int64_t value):
        if offset < 0 or offset + 8 > self.size:
            raise IndexError(offset)
        memcpy(self.base + offset, &value, 8)

    def put_entries(self, Py_ssize_t offset, Py_ssize_t stride, entries,
                    Py_ssize_t name_width, tuple layout):
        """Write ``[(name bytes, value, ...)]`` in a row: the values after the name go
        where ``layout``'s ``(offset, code, width)`` say, code ``B`` uint8, ``i`` int32,
        ``I`` uint32, ``q`` int64, ``s`` a NUL-padded bytes field (shmlayout's tables)."""
        cdef Py_ssize_t at = offset
        cdef Py_ssize_t k, n = len(layout), off
        cdef int32_t i32
        cdef uint32_t u32
        cdef int64_t i64
        for entry in entries:
            if at + stride > self.size:
                raise IndexError(at)
            if len(entry) <= n:
                raise ValueError("an entry has %d values, the layout %d" % (len(entry), n + 1))
            self.put_name(at, entry[0], name_width)
            for k in range(n):
                off, code, width = layout[k]
                if off + width > stride:
                    raise IndexError(off)
                value = entry[k + 1]
                if code == "B":
                    self.base[at + off] = <uint8_t>value
                elif code == "i":
                    i32 = value
                    memcpy(self.base + at + off, &i32, 4)
                elif code == "I":
                    u32 = value
                    memcpy(self.base + at + off, &u32, 4)
                elif code == "q":
                    i64 = value
                    memcpy(self.base + at + off, &i64, 8)
                else:
                    self.put_name(at + off, value, width)
            at += stride

    def release(self):
        if self.base != NULL:
            munmap(self.base, self.size)
            self.base = NULL
            self.size = 0


def terminal_raw(int fd):
    """Put the terminal on ``fd`` in raw input mode (keys one by one, no echo, no line
    editing; signals from ^C kept, output processing kept); returns the settings to
    give back to ``terminal_restore``.  For ``schema-ctl top``."""
    cdef termios saved
    cdef termios raw
    if tcgetattr(fd, &saved) != 0:
        raise OSError(errno, _os.strerror(errno))
    raw = saved
    cfmakeraw(&raw)
    raw.c_oflag = saved.c_oflag            # "\n" still ends a line
    raw.c_lflag = raw.c_lflag | ISIG       # ^C still interrupts
    raw.c_cc[VMIN] = 1
    raw.c_cc[VTIME] = 0
    if tcsetattr(fd, TCSADRAIN, &raw) != 0:
        raise OSError(errno, _os.strerror(errno))
    return (<char *>&saved)[:sizeof(termios)]


def terminal_restore(int fd, bytes saved):
    cdef termios settings
    if len(saved) != sizeof(termios):
        raise ValueError("not terminal settings")
    memcpy(&settings, <const char *>saved, sizeof(termios))
    if tcsetattr(fd, TCSADRAIN, &settings) != 0:
        raise OSError(errno, _os.strerror(errno))
