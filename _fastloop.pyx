# cython: language_level=3
"""The hot loop's primitives (filled in by the supervisor runtime)."""

def abi_version():
    return 1
