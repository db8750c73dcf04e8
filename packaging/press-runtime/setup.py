"""Builds press-runtime: PRESS's torch-free modules under the import name `press_runtime`.

In the repository the package is staged first, into src/press_runtime: this folder's own modules
(press_runtime/: the package's front and its command line) and a copy of press's torch-free modules
(MODULES) whose imports of `press` are rewritten to `press_runtime`. The source stays press/ and the
code is the same; the other name is what lets press-runtime and press-sep be installed together
without either owning a file of the other (two distributions that both held press/engine/ would
remove it from each other on uninstall, and overwrite it on upgrade). An sdist carries the staged
tree, so a build from it (PKG-INFO present, press/ absent) takes that as it is.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
PRESS = HERE.parents[1] / "press"
STAGE = HERE / "src"
# The runtime's part of press: the ONNX backend, the numpy engine it drives, audio files, the error type and
# the version, and the modules `press separate --backend onnx` is made of (press_runtime.cli runs it).
MODULES = ["errors.py", "version.py", "io", "engine", "runtime",
           "commands/__init__.py", "commands/options.py", "commands/signals.py", "commands/separate.py"]
PRESS_IMPORT = re.compile(r"^(\s*(?:from|import)\s+)press(?=[.\s])", re.MULTILINE)


def stage() -> None:
    """Write src/press_runtime afresh from press/ and press_runtime/ (a module press/ no longer has must
    not survive from an earlier build, so the earlier stage and build outputs go first)."""
    for old in (STAGE, HERE / "build"):
        shutil.rmtree(old, ignore_errors=True)
    target = STAGE / "press_runtime"
    shutil.copytree(HERE / "press_runtime", target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in MODULES:
        path = PRESS / name
        for source in [path] if path.suffix == ".py" else sorted(path.glob("*.py")):
            dest = target / source.relative_to(PRESS)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(PRESS_IMPORT.sub(r"\1press_runtime", source.read_text(encoding="utf-8")),
                            encoding="utf-8")


def version() -> str:
    text = (STAGE / "press_runtime" / "version.py").read_text(encoding="utf-8")
    return re.search(r'^__version__ = "([^"]+)"', text, re.MULTILINE).group(1)


if not (HERE / "PKG-INFO").exists():
    stage()
setup(version=version(), package_dir={"": "src"}, packages=find_packages("src"))
