"""press-runtime in a fresh virtual environment: the deployment without torch, end to end.

    PYTHONPATH=$PWD python benchmarks/runtime_venv.py [--work DIR] [--manifest out/manifest.json]
                                                      [--find-links DIR --no-index]

Builds the press-runtime wheel (packaging/press-runtime), creates a venv that does not see this
interpreter's packages, installs the wheel and its requirements there, checks that neither torch nor
press-sep's `press` imports in it, and runs `press-runtime separate` on an exported `default` model
(`press export default`, run here with torch, unless --manifest names one) and a mixture of recorded
speech from the built-in test split. Prints the venv's packages and size, the command's output and
time, and its report's compute and exits.

The requirements come from the package index (or from --find-links), so this is a script, not a test:
tests/test_packaging.py checks the same wheel offline, with torch and press blocked instead of absent.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "packaging" / "press-runtime"


def run(cmd: list[str], may_fail: bool = False, **kwargs) -> subprocess.CompletedProcess:
    """Run a step, print it and its time; a failing step ends the script with its output, unless
    `may_fail` (a check that expects a failure)."""
    tic = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
    print(f"$ {' '.join(map(str, cmd))}   [{time.perf_counter() - tic:.1f} s, exit {proc.returncode}]")
    if proc.returncode != 0 and not may_fail:
        sys.exit(proc.stdout + proc.stderr)
    return proc


def mixture(path: Path, sample_rate: int) -> Path:
    """The first mixture of recorded speech in the built-in test split, as a WAV at the model's rate."""
    import soundfile as sf

    from press.data import get_dataset

    item = get_dataset("builtin", split="test", sample_rate=sample_rate, mode="max", subset="real")[0]
    sf.write(path, item["mixture"].numpy(), sample_rate)
    print(f"mixture {item['id']}: {len(item['mixture']) / sample_rate:.2f} s at {sample_rate} Hz -> {path}")
    return path


def size_mib(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=None,
                    help="folder for the wheel, venv and outputs (default: a new temporary one)")
    ap.add_argument("--manifest", type=Path, default=None, help="an exported model (default: export `default` here)")
    ap.add_argument("--find-links", default=None, help="a folder of wheels for the venv's install")
    ap.add_argument("--no-index", action="store_true", help="install from --find-links only")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="press-runtime-venv-"))
    work.mkdir(parents=True, exist_ok=True)

    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "--no-cache-dir",
         "--quiet", "--wheel-dir", str(work / "wheel"), str(RUNTIME)])
    (wheel,) = (work / "wheel").glob("press_runtime-*.whl")
    print(f"wheel: {wheel.name}, {wheel.stat().st_size / 1024:.0f} KiB")

    manifest = args.manifest
    if manifest is None:
        manifest = work / "onnx-default" / "manifest.json"
        run([sys.executable, "-m", "press.cli", "export", "default", str(manifest.parent)])
    wav = mixture(work / "mixture.wav", json.loads(manifest.read_text())["sample_rate"])

    venv = work / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    index = (["--find-links", args.find_links] if args.find_links else []) + (["--no-index"] if args.no_index else [])
    run([str(python), "-m", "pip", "install", "--quiet", "--no-cache-dir", *index, str(wheel)])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}   # the venv sees its own packages only
    for module in ("torch", "press"):
        proc = run([str(python), "-c", f"import {module}"], env=env, cwd=work, may_fail=True)
        assert proc.returncode != 0, f"{module} imports in the runtime's venv"
        print(f"  {proc.stderr.strip().splitlines()[-1]}")
    packages = run([str(python), "-m", "pip", "list", "--format=freeze"], env=env).stdout.split()
    site = next((venv / "lib").glob("python*/site-packages"))
    print(f"venv: {len(packages)} packages, site-packages {size_mib(site):.0f} MiB (venv {size_mib(venv):.0f} MiB)")
    print("  " + " ".join(packages))

    out = work / "separated"
    proc = run([str(venv / "bin" / "press-runtime"), "separate", str(manifest), str(wav), "--out", str(out)],
               env=env, cwd=work)
    print(proc.stdout + proc.stderr, end="")
    report = json.loads((out / f"{wav.stem}.json").read_text())
    print(f"report: backend {report['backend']}, {report['gmacs_per_second']:.3f} GMAC/s, "
          f"exits per segment {report['exit_histogram']}, outputs {[Path(p).name for p in report['outputs']]}")


if __name__ == "__main__":
    main()
