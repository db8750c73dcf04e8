"""Keep freed memory in the process instead of handing it back to the kernel after every tensor.

PyTorch's CPU tensors come from the C library's `malloc`. glibc serves every block above its mmap
threshold (at most 32 MiB) with a fresh `mmap` and unmaps it when the tensor dies, and it trims the
free top of its heap above a second threshold. A forward pass whose activations are tens of MiB
each (PRESS's (batch x streams, frames, hidden) tensors) therefore faults all of its memory in again
on every call, and the kernel zeroes each 4 KiB page as it is touched: a large share of the CPU
time of inference and of a training step (measured in docs/results.md, "Speed work").
`keep_freed_memory` switches both off: blocks of any size come from the heap, and a
freed block is reused by the next allocation that fits. The price is that the process keeps its
peak memory until it exits, which a separator or a trainer that reaches that peak every step holds
anyway.

The `press` command line calls it at start and `press.load` when it loads a model; a program that
builds models itself calls it when it wants it. It changes the whole process and cannot be undone,
so importing press never calls it.
"""

from __future__ import annotations

import ctypes
import sys

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
NEVER = -1   # as M_TRIM_THRESHOLD: glibc stores it as size_t, i.e. the largest size, so the heap is never trimmed

_kept = False


def keep_freed_memory() -> bool:
    """Stop glibc from unmapping freed blocks and trimming its heap; True if it now does so.

    False, and nothing changed, where the C library is not glibc (macOS, Windows, musl): there the
    allocator's own policy stands. Calling it again is harmless.
    """
    global _kept
    if _kept:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)                 # the C library this process already runs on
    except OSError:
        return False
    # glibc only: musl's mallopt accepts the call and ignores it
    if not (hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt")):
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _kept = mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, NEVER) == 1
    return _kept
