"""press-runtime, the distribution that deploys exported models without torch (packaging/press-runtime).

Its wheel, built here offline, must hold the runtime's modules and nothing else of press (no model, no
training, no audio), declare no torch, import nothing but the standard library, its own modules and the
requirements it declares, and separate a file like press.runtime does in a process where neither torch
nor press-sep's `press` package can be imported. A fresh virtual environment with only the wheel and its
requirements is benchmarks/runtime_venv.py (it downloads them, so it is not a test).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
import zipfile
from email.parser import Parser
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.conftest import tiny_config

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "packaging" / "press-runtime"
REQUIREMENTS = {"numpy", "scipy", "soundfile", "soxr", "onnxruntime", "tqdm"}
# press's packages that the runtime carries whole, and the command-line modules `separate` is made of
COPIED_PACKAGES = ("io", "engine", "runtime")
COMMANDS = {"__init__.py", "options.py", "signals.py", "separate.py"}
# imports of press modules the wheel does not carry, each with why it never runs there
UNREACHABLE = {"press_runtime.api": "press separate's torch backend; press-runtime's command line has only onnx"}

BLOCK = """
import sys
class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "press"):
            raise ImportError(f"{name} is not installed here")
sys.meta_path.insert(0, Absent())
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """press-runtime's wheel, built with the installed setuptools and no index, so that CI needs no
    network; in a copy of packaging/press-runtime beside a link to press/, so that the build's staging
    and build folders land there and not in the working tree another run may be building in."""
    pytest.importorskip("setuptools", minversion="77", reason="builds the press-runtime wheel (the dev extra has it)")
    tree = tmp_path_factory.mktemp("tree")
    project = tree / "packaging" / "press-runtime"
    shutil.copytree(RUNTIME, project, ignore=shutil.ignore_patterns("src", "build", "*.egg-info", "__pycache__"))
    (tree / "press").symlink_to(ROOT / "press", target_is_directory=True)
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "--no-cache-dir", "--quiet", "--wheel-dir", str(out), str(project)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (built,) = out.glob("press_runtime-*.whl")
    return built


def _modules(wheel: Path) -> dict[str, str]:
    """Path in the wheel -> text, for every file outside its .dist-info."""
    with zipfile.ZipFile(wheel) as z:
        return {n: z.read(n).decode() for n in z.namelist() if ".dist-info/" not in n}


def _dist_info(wheel: Path, name: str) -> str:
    with zipfile.ZipFile(wheel) as z:
        (path,) = [n for n in z.namelist() if n.endswith(f".dist-info/{name}")]
        return z.read(path).decode()


def test_wheel_holds_the_runtime_and_nothing_else(wheel) -> None:
    modules = _modules(wheel)
    assert all(n.startswith("press_runtime/") and n.endswith(".py") for n in modules), sorted(modules)
    expected = {f"press_runtime/{n}" for n in ("__init__.py", "cli.py", "errors.py", "version.py")}
    expected |= {f"press_runtime/commands/{n}" for n in COMMANDS}
    for package in COPIED_PACKAGES:
        expected |= {f"press_runtime/{package}/{p.name}" for p in (ROOT / "press" / package).glob("*.py")}
    assert set(modules) == expected
    # the copies are press's modules with `press` imported as `press_runtime`, and otherwise the same
    for name, text in modules.items():
        source = ROOT / "press" / name.removeprefix("press_runtime/")
        if name not in ("press_runtime/__init__.py", "press_runtime/cli.py"):
            assert text.replace("press_runtime", "press") == source.read_text(), name


def test_wheel_declares_no_torch(wheel) -> None:
    metadata = Parser().parsestr(_dist_info(wheel, "METADATA"))
    assert metadata["Name"] == "press-runtime"
    version = re.search(r'__version__ = "(.+)"', (ROOT / "press" / "version.py").read_text()).group(1)
    assert metadata["Version"] == version                           # released with press-sep
    requires = {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower() for r in metadata.get_all("Requires-Dist")}
    assert requires == REQUIREMENTS
    scripts = _dist_info(wheel, "entry_points.txt")
    assert "press-runtime = press_runtime.cli:main" in scripts
    assert not re.search(r"^press\s*=", scripts, re.MULTILINE)     # `press` is press-sep's command


def test_wheel_imports_only_what_it_declares(wheel) -> None:
    """Every import, at module level or in a function: the standard library, a declared requirement,
    or a module of the wheel itself; so a torch-free install can run whatever it reaches."""
    modules = _modules(wheel)
    own = {n.removesuffix(".py").removesuffix("/__init__").replace("/", ".") for n in modules}
    allowed = set(sys.stdlib_module_names) | REQUIREMENTS
    for name, text in modules.items():
        for node in ast.walk(ast.parse(text, name)):
            if isinstance(node, ast.Import):
                imported = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported = [node.module]
            else:
                continue
            for module in imported:
                if module.split(".")[0] == "press_runtime":
                    assert module in own or module in UNREACHABLE, f"{name}:{node.lineno}: {module} is not in the wheel"
                else:
                    assert module.split(".")[0] in allowed, f"{name}:{node.lineno}: imports {module}"


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    pytest.importorskip("onnx")
    from press.export import export_onnx
    from press.model import PressNet

    torch.manual_seed(0)
    net = PressNet(tiny_config()).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export_onnx(net, tmp_path_factory.mktemp("export"), name="tiny")


def test_runtime_separates_without_torch_or_press(wheel, exported, tmp_path) -> None:
    """The wheel's `press-runtime separate`, unpacked and run where importing torch or press fails,
    writes what press.runtime writes for the same graphs and input."""
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    rng = np.random.default_rng(0)
    wav = tmp_path / "mix.wav"
    sf.write(wav, (rng.standard_normal(16000 * 3) * 0.1).astype(np.float32), 16000)   # resampled to 8 kHz
    (tmp_path / "empty.wav").write_bytes(b"")
    out = tmp_path / "sep"
    code = BLOCK + f"""
from press_runtime.cli import main
try:
    main(["separate", {str(exported)!r}, {str(wav)!r}, "--out", "unused", "--backend", "torch"])
except SystemExit as refused:
    assert refused.code == 2, refused.code
code = main(["separate", {str(exported)!r}, {str(wav)!r}, {str(tmp_path / 'empty.wav')!r}, "--out", {str(out)!r},
             "--target-db", "0", "--confidence", "0.5"])
leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "press"))
assert not leaked, leaked
sys.exit(code)
"""
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr                      # the empty file failed, the other worked
    assert "empty.wav" in proc.stderr and "error" in proc.stderr
    assert "ONNX graphs only" in proc.stderr                       # --backend torch was refused

    from press.runtime import load

    expected = [tmp_path / "s1.wav", tmp_path / "s2.wav"]
    report = load(exported).separate_file(wav, expected, target_db=0.0, confidence=0.5)
    written = json.loads((out / "mix.json").read_text())
    assert written["exit_histogram"] == report["exit_histogram"]
    for source, reference in zip(("s1", "s2"), expected):
        np.testing.assert_allclose(sf.read(out / f"mix_{source}.wav")[0], sf.read(reference)[0], atol=1e-6)
