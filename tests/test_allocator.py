"""`keep_freed_memory`: after it, a large tensor freed and allocated again reuses the same memory
instead of faulting fresh zeroed pages in from the kernel. Each case runs in a fresh process, since
the setting changes the process for good and the test process must keep its own."""

import json
import subprocess
import sys

import pytest

PROBE = """
import json, resource, sys, torch
from press.allocator import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
x = torch.ones(16 * 2**20)          # 64 MiB: above glibc's largest mmap threshold
faults = []
for _ in range(16):                 # a "forward pass" of three such activations, repeated
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    y = x * 2.0
    z = torch.sigmoid(y)
    w = z + y
    del y, z, w
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"kept": kept, "faults": faults}))
"""
PAGES = 16 * 2**20 * 4 // 4096     # 4 KiB pages in the tensor


def probe(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the setting is glibc's")
def test_freed_tensor_memory_is_reused_without_page_faults():
    system, kept = probe("system"), probe("keep")
    assert kept["kept"] is True
    # glibc's default: every activation is a fresh mapping, all of its pages faulted in again
    assert min(system["faults"][1:]) > 2 * PAGES
    # kept: the first passes fault the heap in and grow it until its free blocks fit the pattern
    # (how many passes that takes varies from run to run: 1 to 5 of 16 here); then passes reuse it
    later_kept, later_system = kept["faults"][1:], system["faults"][1:]
    assert sum(later_kept) < sum(later_system) / 3
    assert sorted(later_kept)[len(later_kept) // 2] < PAGES // 50     # most passes fault nothing in


def test_calling_it_again_is_harmless():
    from press.allocator import keep_freed_memory

    first = keep_freed_memory()
    assert keep_freed_memory() is first
