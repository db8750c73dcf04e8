"""Compiled CPU kernels for PRESS-Net, built with torch's C++ extension loader into a keyed cache.

Eager PyTorch runs the linear-RNN mixer as a string of element-wise kernels and a chunked scan,
each a full pass over (N, T, H) tensors, so the blocks that should be bound by their matrix
products are bound by memory traffic instead. `linear_rnn.cpp` does the gates, the recurrence and
the output gate in one pass (and its backward in one pass the other way); `glu_conv.cpp` does the
long-convolution mixer's GLU, depthwise convolution and SiLU without leaving the (N, T, E) layout,
where oneDNN's depthwise convolution needs two transposes and runs far below the machine's speed at
PRESS's shapes; `swiglu.cpp` does the channel MLP's gate silu(a) * b in one pass, and `rms_norm.cpp`
the norms, forward and backward, one pass each. They are compiled for the vector instructions torch
itself uses on this CPU (~20 s, needs a C++ compiler and ninja).

When they are built. `press kernels build` builds them ahead of time and `press serve` at start,
before it takes a request. Otherwise the first forward pass on the CPU builds them (a library user
who never ran `press kernels build` pays the ~20 s once, with a line on stderr), and every later
process loads the built library. `press kernels status` says where things stand.

Where. `$TORCH_EXTENSIONS_DIR/<key>` when that variable is set, else
`$XDG_CACHE_HOME/press/kernels/<key>` (default `~/.cache/press/kernels/<key>`). The key
(`build_key`) names the CPU capability, the torch version and the compiler and ends with a hash of
those, the machine, the kernel sources and the compiler flags: environments that share a cache (one
home folder, two virtual environments or two compilers) never build over each other's library, and a
changed source builds anew.

When a build fails. The error is written to `FAILED.txt` in the key's folder and the PyTorch code
runs; later processes read the marker, warn once and do not try again (a missing compiler would
otherwise cost every process a failed compile). `press kernels build --force` deletes the marker and
retries; installing another compiler changes the key, which retries by itself.

Where they are on. By default on Linux on x86-64, where they are measured (docs/results.md). Off by
default on macOS (Apple clang rejects -fopenmp), on Windows (the flags are GCC/Clang's) and on other
processors (the vector code is untuned and unmeasured there). `PRESS_KERNELS=0` turns them off
anywhere, `PRESS_KERNELS=1` on anywhere (other values leave the default). When they are off, every
caller runs the PyTorch code they replace, which computes the same values (tests/test_kernels.py
holds the two to each other). The kernels work in float32 or float64; under bf16 autocast the blocks
hand them their bf16 projections converted (press.model.blocks).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import threading
import warnings
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

HERE = Path(__file__).parent
SOURCES = sorted(HERE.glob("*.cpp"))   # one library: glu_conv, linear_rnn, rms_norm, swiglu
HEADERS = sorted(HERE.glob("*.h"))     # included by the sources: part of what the key hashes
SWITCH = "PRESS_KERNELS"               # "0": off, "1": on, anything else: the platform's default
FAILURE_MARKER = "FAILED.txt"

# the vector instruction sets torch's own CPU kernels are built for, as ATen's vector headers name them
_FLAGS = {
    "AVX512": ["-DCPU_CAPABILITY=AVX512", "-DCPU_CAPABILITY_AVX512", "-mavx512f", "-mavx512bw", "-mavx512vl",
               "-mavx512dq", "-mfma"],
    "AVX2": ["-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2", "-mavx2", "-mfma", "-mf16c"],
}
_X86 = ("x86_64", "AMD64")

_state: dict[str, bool] = {}
_off = [0]   # depth of `disabled()` blocks
_lock = threading.Lock()   # one load per process, even when the first two calls come from two threads


def enabled(environ: Mapping[str, str] | None = None, system: str | None = None,
            machine: str | None = None) -> tuple[bool, str]:
    """Whether this environment runs the kernels, and why (what `press kernels status` prints).

    The arguments default to this process's environment, `sys.platform` and `platform.machine()`."""
    switch = (os.environ if environ is None else environ).get(SWITCH, "")
    system = sys.platform if system is None else system
    machine = platform.machine() if machine is None else machine
    if switch == "0":
        return False, f"{SWITCH}=0"
    if switch == "1":
        return True, f"{SWITCH}=1 (on whatever the platform)"
    if system == "darwin":
        return False, f"off by default on macOS: Apple clang rejects -fopenmp ({SWITCH}=1 tries anyway)"
    if not system.startswith("linux"):
        return False, f"off by default on {system}: built and measured on Linux only ({SWITCH}=1 tries anyway)"
    if machine not in _X86:
        return False, f"off by default on {machine}: measured on x86-64 only ({SWITCH}=1 tries anyway)"
    return True, f"on by default on Linux {machine}"


def _capability() -> str:
    cap = torch.backends.cpu.get_cpu_capability()
    return cap if platform.machine() in _X86 and cap in _FLAGS else "DEFAULT"


@functools.cache
def compiler_version() -> str:
    """The first line of `$CXX --version` (the compiler torch's loader runs), or "none"."""
    from torch.utils.cpp_extension import get_cxx_compiler

    try:
        out = subprocess.run([get_cxx_compiler(), "--version"], capture_output=True, text=True, timeout=30,
                             env={**os.environ, "LC_ALL": "C"})
    except (OSError, subprocess.SubprocessError):
        return "none"
    lines = out.stdout.strip().splitlines()
    return lines[0].strip() if out.returncode == 0 and lines else "none"


def _compiler_label(version_line: str) -> str:
    """The compiler's family and version for a readable key: gcc12.2.0, clang17.0.6, ..."""
    low = version_line.lower()
    family = ("clang" if "clang" in low else "icx" if "intel" in low
              else "gcc" if re.search(r"\bg(cc|\+\+)\b|^c\+\+ \(", low) else "cxx")
    numbers = re.findall(r"\d+(?:\.\d+)+", version_line)
    return "nocompiler" if version_line == "none" else family + (numbers[0] if numbers else "")


def build_key(capability: str, machine: str, torch_version: str, compiler: str, sources: Mapping[str, bytes],
              flags: Sequence[str]) -> str:
    """The build's name: readable capability, torch version and compiler, then a hash of all inputs.

    `compiler` is `compiler_version()`'s line and `sources` maps each file name to its contents.
    The result is an identifier (the loader names the library after it)."""
    source_hashes = {name: hashlib.sha256(text).hexdigest() for name, text in sorted(sources.items())}
    digest = hashlib.sha256(json.dumps({
        "capability": capability, "machine": machine, "torch": torch_version, "compiler": compiler,
        "flags": list(flags), "sources": source_hashes,
    }).encode()).hexdigest()
    readable = f"press_kernels_{capability}_torch{torch_version}_{_compiler_label(compiler)}".lower()
    return re.sub(r"\W", "_", readable) + "_" + digest[:12]


def cache_root() -> Path:
    """The folder that holds one sub-folder per build key (see the module's docstring)."""
    if os.environ.get("TORCH_EXTENSIONS_DIR"):
        return Path(os.environ["TORCH_EXTENSIONS_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "press" / "kernels"


@dataclass(frozen=True)
class Build:
    """One build of the kernels for this environment: its key, folder and compiler flags."""

    key: str
    folder: Path
    cflags: tuple[str, ...]
    ldflags: tuple[str, ...]

    @property
    def library(self) -> Path:
        return self.folder / f"{self.key}{'.pyd' if sys.platform == 'win32' else '.so'}"

    @property
    def failure(self) -> Path:
        return self.folder / FAILURE_MARKER

    def state(self) -> str:
        """failed (a remembered failure wins: no process tries to load), built, or not built."""
        return "failed" if self.failure.exists() else "built" if self.library.exists() else "not built"

    def error(self) -> str | None:
        """The remembered build error, or None."""
        try:
            return self.failure.read_text(errors="replace")
        except OSError:
            return None


def current_build() -> Build:
    """The build this process uses: keyed on this machine, torch, compiler, sources and flags."""
    cap = _capability()
    cflags = ("-O3", "-fopenmp", *_FLAGS.get(cap, []))
    ldflags = ("-fopenmp",)
    key = build_key(cap, platform.machine(), torch.__version__, compiler_version(),
                    {p.name: p.read_bytes() for p in [*SOURCES, *HEADERS]}, [*cflags, *ldflags])
    return Build(key, cache_root() / key, cflags, ldflags)


def available() -> bool:
    """Whether the compiled kernels are loaded in this process (building them the first time)."""
    if "ok" not in _state:
        with _lock:
            if "ok" not in _state:
                _state["ok"] = enabled()[0] and _load(current_build())
    return _state["ok"]


def build(force: bool = False) -> bool:
    """Build (or load) the kernels now, in this process; True when they are loaded.

    `force` forgets a remembered failure first and tries again. Off (`enabled`) it builds nothing."""
    with _lock:
        if force:
            current_build().failure.unlink(missing_ok=True)
        _state.clear()
    return available()


def _load(build: Build) -> bool:
    """Load `build`'s library, compiling it first unless it is up to date; remember a failure."""
    error = build.error()
    if error is not None:
        _warn(f"they failed to build before ({_first_line(error)}; {build.failure}); "
              "`press kernels build --force` tries again")
        return False
    from torch.utils import cpp_extension

    if not build.library.exists():
        print(f"press: compiling the CPU kernels into {build.folder} (once, ~20 s) ...", file=sys.stderr)
    try:
        build.folder.mkdir(parents=True, exist_ok=True)
        cpp_extension.load(name=build.key, sources=[str(p) for p in SOURCES], build_directory=str(build.folder),
                           is_python_module=False, extra_cflags=list(build.cflags),
                           extra_ldflags=list(build.ldflags))
    except Exception as err:  # no compiler, no ninja, a read-only cache: the PyTorch code still runs
        message = f"{type(err).__name__}: {str(err).strip()}"
        _remember_failure(build, message)
        _warn(f"they could not be built ({_first_line(message)}; the whole error: {build.failure})")
        return False
    return True


def _remember_failure(build: Build, message: str) -> None:
    """Write the error to the key's marker, which stops later processes from trying again."""
    with contextlib.suppress(OSError):   # a read-only cache: the next process tries again, nothing else to do
        build.failure.write_text(message + "\n")


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:200] if text.strip() else "no message"


def _warn(why: str) -> None:
    warnings.warn(f"PRESS's CPU kernels are off: {why}. Running the PyTorch implementation, which is slower; "
                  f"{SWITCH}=0 silences this.", RuntimeWarning, stacklevel=4)


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
