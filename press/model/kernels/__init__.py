"""Compiled CPU kernels for PRESS-Net, built on first use with torch's C++ extension loader.

Eager PyTorch runs the linear-RNN mixer as a string of element-wise kernels and a chunked scan,
each a full pass over (N, T, H) tensors, so the blocks that should be bound by their matrix
products are bound by memory traffic instead. `linear_rnn.cpp` does the gates, the recurrence and
the output gate in one pass (and its backward in one pass the other way); `glu_conv.cpp` does the
long-convolution mixer's GLU, depthwise convolution and SiLU without leaving the (N, T, E) layout,
where oneDNN's depthwise convolution needs two transposes and runs far below the machine's speed at
PRESS's shapes; `swiglu.cpp` does the channel MLP's gate silu(a) * b in one pass, and `rms_norm.cpp`
the norms, forward and backward, one pass each. They are compiled once per machine kind into torch's extension cache
(`TORCH_EXTENSIONS_DIR`, ~20 s, needs a C++ compiler), for the vector instructions torch itself
uses on this CPU.

`PRESS_KERNELS=0` in the environment turns the kernels off, and without a compiler they are off
with one warning: every caller then runs the PyTorch code they replace, which computes the same
values (tests/test_kernels.py holds the two to each other). The kernels work in float32 or float64;
under bf16 autocast the blocks hand them their bf16 projections converted (press.model.blocks).
"""

from __future__ import annotations

import os
import platform
import sys
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

SOURCES = sorted(Path(__file__).parent.glob("*.cpp"))   # one library: glu_conv, linear_rnn, rms_norm, swiglu

# the vector instruction sets torch's own CPU kernels are built for, as ATen's vector headers name them
_FLAGS = {
    "AVX512": ["-DCPU_CAPABILITY=AVX512", "-DCPU_CAPABILITY_AVX512", "-mavx512f", "-mavx512bw", "-mavx512vl",
               "-mavx512dq", "-mfma"],
    "AVX2": ["-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2", "-mavx2", "-mfma", "-mf16c"],
}

_state: dict[str, bool] = {}
_off = [0]   # depth of `disabled()` blocks
_lock = threading.Lock()   # one load per process, even when the first two calls come from two threads


def _capability() -> str:
    cap = torch.backends.cpu.get_cpu_capability()
    return cap if platform.machine() in ("x86_64", "AMD64") and cap in _FLAGS else "DEFAULT"


def available() -> bool:
    """Whether the compiled kernels are loaded in this process (building them the first time)."""
    if "ok" not in _state:
        with _lock:
            if "ok" not in _state:
                _state["ok"] = os.environ.get("PRESS_KERNELS", "1") != "0" and _load()
    return _state["ok"]


def _load() -> bool:
    from torch.utils import cpp_extension

    cap = _capability()
    name = f"press_kernels_{cap.lower()}"
    try:
        built = Path(cpp_extension._get_build_directory(name, verbose=False), f"{name}.so").exists()
    except OSError:
        built = False
    if not built:
        print(f"press: compiling the CPU kernels for this machine ({cap}, once, ~20 s) ...", file=sys.stderr)
    try:
        cpp_extension.load(name=name, sources=[str(p) for p in SOURCES], is_python_module=False,
                           extra_cflags=["-O3", "-fopenmp", *_FLAGS.get(cap, [])], extra_ldflags=["-fopenmp"])
    except Exception as err:  # no compiler, no ninja, a read-only cache: the PyTorch code still runs
        warnings.warn(f"PRESS's CPU kernels could not be built ({type(err).__name__}: {str(err).strip()[:200]}); "
                      "running the PyTorch implementation, which is slower. PRESS_KERNELS=0 silences this.",
                      RuntimeWarning, stacklevel=3)
        return False
    return True


def usable(p: torch.Tensor) -> bool:
    """Whether a kernel can take this tensor: on the CPU, float32 or float64, and kernels loaded.

    Inside a torch.compile trace it never builds or loads (a build is not traceable): it answers
    with what is loaded, so code that compiles first thing calls `available()` before compiling
    (PressNet.compile_inference and the trainer do)."""
    if _off[0] or p.device.type != "cpu" or p.dtype not in (torch.float32, torch.float64):
        return False
    return _state.get("ok", False) if torch.compiler.is_compiling() else available()


@contextmanager
def disabled() -> Iterator[None]:
    """Run the PyTorch implementations inside the block (A/B comparisons, the kernels' tests)."""
    _off[0] += 1
    try:
        yield
    finally:
        _off[0] -= 1
