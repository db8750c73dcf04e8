"""Process-wide settings that make PRESS faster, which only the program that owns the process makes.

`tune_process()` makes both of them; the `press` command line calls it at start (every command,
`press serve` included). `press.load` and the rest of the library never change the process they run
in: a program that uses the library calls `tune_process()` itself, first thing, if it wants them.

Flush-denormal. Near-silent audio drives the linear RNN's states (through LayerScale) into subnormal
floats, which x86 CPUs process about a hundred times slower (training: 5-17 s instead of 2 s per step
of `small`); flushing them to zero changes no result that matters. The mode is a register of each
thread, and a thread inherits it from the thread that creates it: set after torch has started its
OpenMP threads, it reaches only the calling thread (measured: half of a 2-thread multiply still
produced subnormals). That is why it is set once at start, and why the library does not switch it on
and off around a forward pass (torch has no getter to restore it, either).

Freed memory. Keep it in the process instead of handing it back to the kernel after every tensor.

PyTorch's CPU tensors come from the C library's `malloc`. glibc serves every block above its mmap
threshold (at most 32 MiB) with a fresh `mmap` and unmaps it when the tensor dies, and it trims the
free top of its heap above a second threshold. A forward pass whose activations are tens of MiB
each (PRESS's (batch x streams, frames, hidden) tensors) therefore faults all of its memory in again
on every call, and the kernel zeroes each 4 KiB page as it is touched: a large share of the CPU
time of inference and of a training step (measured in docs/experiments.md, "Freed memory kept in the process").
`keep_freed_memory` switches both off: blocks of any size come from the heap, and a
freed block is reused by the next allocation that fits. The price is that the process keeps its
peak memory until it exits, which a separator or a trainer that reaches that peak every step holds
anyway.

It changes the whole process and cannot be undone, so neither importing press nor `press.load`
calls it.
"""

from __future__ import annotations

import ctypes
import sys
from typing import NamedTuple

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


class Tuning(NamedTuple):
    """What `tune_process` switched on (False: not available here)."""

    flush_denormal: bool
    keep_freed_memory: bool


def tune_process() -> Tuning:
    """Flush subnormal floats to zero and keep freed memory, for the whole process (see above).

    Call it once, first thing, before torch runs anything in parallel: threads that exist already keep
    their old flush mode. Without torch (the ONNX runtime's install) only the memory setting applies.
    """
    return Tuning(flush_denormal=_flush_denormal(), keep_freed_memory=keep_freed_memory())


def _flush_denormal() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.set_flush_denormal(True))
