"""Using the library leaves the host process as it found it: `press.load` and a separation change
neither glibc's malloc settings nor torch's flush-denormal mode. Those belong to the program that
owns the process (`press.allocator.tune_process`, which the `press` command calls). Each case runs
in a fresh process, since both settings are process-wide."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import ctypes, json, sys
import numpy as np
import torch

mallopt_calls = []

class Spy(ctypes.CDLL):
    def __getattr__(self, name):
        if name == "mallopt":
            mallopt_calls.append(name)
        return super().__getattr__(name)

ctypes.CDLL = Spy

def subnormal_survives():
    return (torch.tensor([1e-40]) * 1.0).item() != 0.0

before = subnormal_survives()
import press
from press.allocator import tune_process
if sys.argv[1] == "tuned":
    tune_process()
model = press.load("default")
model.separate(np.zeros(4000, dtype=np.float32), sample_rate=8000, exit=1)
print(json.dumps({"before": before, "after": subnormal_survives(), "mallopt": len(mallopt_calls)}))
"""


def probe(mode: str) -> dict:
    env = {**os.environ, "PRESS_KERNELS": "0"}     # the kernels' build is not what this is about
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_load_and_separate_change_nothing_in_the_process() -> None:
    got = probe("library")
    assert got["before"] is True        # subnormals exist before press is imported ...
    assert got["after"] is True         # ... and after loading a model and separating with it
    assert got["mallopt"] == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the memory setting is glibc's")
def test_the_probe_sees_what_tune_process_changes() -> None:
    """The control: the same probe after `tune_process` sees both settings changed."""
    got = probe("tuned")
    assert got["before"] is True and got["after"] is False
    assert got["mallopt"] > 0
