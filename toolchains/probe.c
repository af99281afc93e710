/* The tiny test program of toolchains/cross_check.sh, built with a target's compiler
 * and flags, linked statically, and run under the target's qemu-user CPU (or natively).
 *
 * Compile time: the target's pyconfig.h (the one the Cython loop and libpython were
 * built with) must describe this compiler's ABI: sizes, alignment, byte order.  A
 * wrong pyconfig.h (the host's, armhf's for armel) stops the build here.
 * Run time: uname's machine (qemu -cpu arm1176 says armv6l), AT_PLATFORM, and the
 * pieces of code the binary relies on: 32- and 64-bit atomics and the fence of
 * _fastloop.pyx's seqlock, 64-bit division (a libgcc helper on 32-bit ARM), double
 * arithmetic and formatting (VFP with the soft-float calling convention on armel),
 * setjmp/longjmp.  Prints key=value lines, then "probe: ok"; exit 0 only then. */
#include <pyconfig.h>

#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <time.h>
#include <wchar.h>

_Static_assert(SIZEOF_LONG == sizeof(long), "pyconfig.h SIZEOF_LONG");
_Static_assert(SIZEOF_VOID_P == sizeof(void *), "pyconfig.h SIZEOF_VOID_P");
_Static_assert(SIZEOF_SIZE_T == sizeof(size_t), "pyconfig.h SIZEOF_SIZE_T");
_Static_assert(SIZEOF_INT == sizeof(int), "pyconfig.h SIZEOF_INT");
_Static_assert(SIZEOF_LONG_LONG == sizeof(long long), "pyconfig.h SIZEOF_LONG_LONG");
_Static_assert(SIZEOF_DOUBLE == sizeof(double), "pyconfig.h SIZEOF_DOUBLE");
_Static_assert(SIZEOF_TIME_T == sizeof(time_t), "pyconfig.h SIZEOF_TIME_T");
_Static_assert(SIZEOF_OFF_T == sizeof(off_t), "pyconfig.h SIZEOF_OFF_T");
_Static_assert(SIZEOF_WCHAR_T == sizeof(wchar_t), "pyconfig.h SIZEOF_WCHAR_T");
_Static_assert(ALIGNOF_LONG == _Alignof(long), "pyconfig.h ALIGNOF_LONG");
_Static_assert(ALIGNOF_SIZE_T == _Alignof(size_t), "pyconfig.h ALIGNOF_SIZE_T");
#if defined(WORDS_BIGENDIAN) || !defined(DOUBLE_IS_LITTLE_ENDIAN_IEEE754)
#error "pyconfig.h: every target of toolchains/ is little-endian with IEEE 754 doubles"
#endif
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the compiler is not little-endian"
#endif

static jmp_buf jump;
static volatile unsigned int seq;

static void jump_back(int value) { longjmp(jump, value); }

int main(int argc, char **argv)
{
    struct utsname u;
    const char *platform = (const char *)getauxval(AT_PLATFORM);
    volatile int64_t big = argc > 99 ? 1 : INT64_C(0x123456789ab);
    volatile int64_t divisor = argc > 99 ? 1 : 977;
    volatile double x = argc > 99 ? 1.0 : 2.5;
    uint64_t counter64 = 0;
    unsigned int counter = 0;
    double expected = 3.90625;          /* 2.5 * 2.5 * 0.625, exact in binary */
    char text[64];
    volatile int failures = 0;
    (void)argv;

    if (uname(&u) != 0)
        return 2;
    printf("machine=%s\n", u.machine);
    printf("platform=%s\n", platform ? platform : "");
    printf("sizeof_long=%d sizeof_void_p=%d sizeof_time_t=%d\n",
           (int)sizeof(long), (int)sizeof(void *), (int)sizeof(time_t));

    __atomic_store_n(&seq, 1, __ATOMIC_RELEASE);           /* the seqlock of _fastloop */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    __atomic_fetch_add(&counter, 41, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&counter64, UINT64_C(0x100000000), __ATOMIC_SEQ_CST);
    if (__atomic_add_fetch(&counter, 1, __ATOMIC_ACQ_REL) != 42 ||
        counter64 != UINT64_C(0x100000000) || __atomic_load_n(&seq, __ATOMIC_ACQUIRE) != 1) {
        printf("atomics: wrong\n");
        failures++;
    }
    if (big / divisor != INT64_C(1280450252) || big % divisor != INT64_C(287)) {
        printf("int64 division: wrong\n");
        failures++;
    }
    snprintf(text, sizeof text, "%.5f", x * x * 0.625);
    if (x * x * 0.625 != expected || strcmp(text, "3.90625") != 0) {
        printf("double: wrong (%s)\n", text);
        failures++;
    }
    if (setjmp(jump) == 0)
        jump_back(7);
    printf("probe: %s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
