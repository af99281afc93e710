/* The table of built-in modules of the static binary, replacing libpython's own
 * config.o: only the modules schema-init and the interpreter's start-up use are
 * listed, so the linker leaves the others (unicodedata, pyexpat, _decimal, the hash
 * modules, ...) out of the binary.  `_schema_fastloop` is the Cython hot loop.
 * A C module missing here fails at its import: the build tier (tests/test_build.py)
 * runs the binary with every Python library hidden, and tests/test_binary_footprint.py
 * drives the supervisor and schema-ctl through their paths. */
#include <Python.h>

extern PyObject *PyInit__schema_fastloop(void);
extern PyObject *PyInit__abc(void);
extern PyObject *PyInit__ast(void);
extern PyObject *PyInit__codecs(void);
extern PyObject *PyInit__collections(void);
extern PyObject *PyInit__functools(void);
extern PyObject *PyInit__imp(void);
extern PyObject *PyInit__io(void);
extern PyObject *PyInit__locale(void);
extern PyObject *PyInit__opcode(void);
extern PyObject *PyInit__operator(void);
extern PyObject *PyInit__signal(void);
extern PyObject *PyInit__socket(void);
extern PyObject *PyInit__sre(void);
extern PyObject *PyInit__stat(void);
extern PyObject *PyInit__string(void);
extern PyObject *PyInit__struct(void);
extern PyObject *PyInit__thread(void);
extern PyObject *PyInit__tokenize(void);
extern PyObject *PyInit__weakref(void);
extern PyObject *PyInit_array(void);
extern PyObject *PyInit_atexit(void);
extern PyObject *PyInit_errno(void);
extern PyObject *PyInit_gc(void);
extern PyObject *PyInit_itertools(void);
extern PyObject *PyInit_math(void);
extern PyObject *PyInit_posix(void);
extern PyObject *PyInit_select(void);
extern PyObject *PyInit_time(void);
extern PyObject *PyMarshal_Init(void);
extern PyObject *_PyWarnings_Init(void);

struct _inittab _PyImport_Inittab[] = {
    {"_schema_fastloop", PyInit__schema_fastloop},
    {"_abc", PyInit__abc},
    {"_ast", PyInit__ast},
    {"_codecs", PyInit__codecs},
    {"_collections", PyInit__collections},
    {"_functools", PyInit__functools},
    {"_imp", PyInit__imp},
    {"_io", PyInit__io},
    {"_locale", PyInit__locale},
    {"_opcode", PyInit__opcode},
    {"_operator", PyInit__operator},
    {"_signal", PyInit__signal},
    {"_socket", PyInit__socket},
    {"_sre", PyInit__sre},
    {"_stat", PyInit__stat},
    {"_string", PyInit__string},
    {"_struct", PyInit__struct},
    {"_thread", PyInit__thread},
    {"_tokenize", PyInit__tokenize},
    {"_warnings", _PyWarnings_Init},
    {"_weakref", PyInit__weakref},
    {"array", PyInit_array},
    {"atexit", PyInit_atexit},
    {"builtins", NULL},
    {"errno", PyInit_errno},
    {"gc", PyInit_gc},
    {"itertools", PyInit_itertools},
    {"marshal", PyMarshal_Init},
    {"math", PyInit_math},
    {"posix", PyInit_posix},
    {"select", PyInit_select},
    {"sys", NULL},
    {"time", PyInit_time},
    {0, 0}
};
