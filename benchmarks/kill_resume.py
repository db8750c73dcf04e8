"""Kill `press train` at random moments, resume it, and compare the result with an uninterrupted run.

    python benchmarks/kill_resume.py [--kills 10] [--seed 0] [--work DIR]

The run is the tests' tiny config (tests/tiny_training.py: the `tiny` model at 2 kHz, 20 steps,
checkpoints at steps 5, 10, 14, 15 and 20). It trains once uninterrupted; then, --kills times, a
`press train` process is stopped by SIGKILL or SIGTERM at a random moment or at one forced inside a
checkpoint write, and resumed with --resume until it finishes (started afresh when the kill came
before the first checkpoint, as a user would). The final weights (last.safetensors,
best.safetensors), the training state and the log rows are compared bit for bit with the
uninterrupted run's; a SIGTERM must end the process with code 143 and leave no temporary file.

The killed process is `press.cli.main` in a driver process (`drive`) that wraps it, so the installed
command carries no test hook. A moment is either `step:N:S`, S seconds after training step N began
(a timer thread sends the signal, wherever the main thread then is: a step, validation, logging or
a checkpoint write), or `FILE:K:PHASE`, inside the K-th write of FILE in that process, hooked at
`press.io.files.publish`, the rename that ends every atomic write. PHASE is `partial` (the
temporary file cut to half, as a kill mid-write leaves it), `written` (complete, not yet renamed)
or `renamed` (just renamed: for last.safetensors, before last.state.pt is written).
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("partial", "written", "renamed")
FILES = ("last.state.pt", "last.safetensors", "best.safetensors", "log.csv", "run.json", "config.yaml")


def tiny_overrides() -> list[str]:
    """The tests' tiny training config, as `press train tiny` overrides."""
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_training import OVERRIDES

    return list(OVERRIDES)


def train_argv(run_dir: Path, resume: bool) -> list[str]:
    """`press train` arguments for the tiny run in `run_dir`."""
    return (["train", "tiny", *tiny_overrides(), "--out", str(run_dir), "--no-progress", "--device", "cpu"]
            + (["--resume"] if resume else []))


# ---- inside the killed process ----------------------------------------------------------------

def parse_moment(spec: str) -> tuple[str, str, str]:
    """`step:N:S` or `FILE:K:PHASE`, split and checked."""
    first, count, last = spec.split(":")
    if not count.isdigit() or (first != "step" and (first not in FILES or last not in PHASES or int(count) < 1)):
        raise SystemExit(f"bad moment {spec!r}: expected step:N:SECONDS or FILE:K:PHASE, FILE in {FILES}, "
                         f"PHASE in {PHASES}")
    return first, count, last


def die(signum: int) -> None:
    """Send this process `signum` and wait for it: SIGTERM's handler raises here, SIGKILL never returns."""
    os.kill(os.getpid(), signum)
    time.sleep(60)


def kill_after_step(step: int, seconds: float, signum: int) -> None:
    """Signal this process `seconds` after its training step `step` begins (from a timer thread)."""
    from press.training.loop import Trainer

    train_step, seen = Trainer.train_step, {"steps": 0}

    def counted(self):
        seen["steps"] += 1
        if seen["steps"] == step:
            timer = threading.Timer(seconds, os.kill, (os.getpid(), signum))
            timer.daemon = True   # a run that ends first is not signalled on its way out
            timer.start()
        return train_step(self)

    Trainer.train_step = counted


def kill_in_write(name: str, k: int, phase: str, signum: int) -> None:
    """Signal this process in the `k`-th atomic write of the file `name`, at `phase`."""
    from press.io import files

    publish, seen = files.publish, {"writes": 0}

    def hooked(tmp: str | Path, path: str | Path) -> None:
        if Path(path).name == name:
            seen["writes"] += 1
            if seen["writes"] == k:
                if phase == "partial":
                    os.truncate(tmp, os.path.getsize(tmp) // 2)
                if phase != "renamed":
                    die(signum)
                publish(tmp, path)
                die(signum)
        publish(tmp, path)

    files.publish = hooked


def install_hook(spec: str, signum: int) -> None:
    """Make this process send itself `signum` at the moment `spec`."""
    first, count, last = parse_moment(spec)
    if first == "step":
        kill_after_step(int(count), float(last), signum)
    else:
        kill_in_write(first, int(count), last, signum)


def drive(spec: str, signame: str, argv: list[str]) -> int:
    """`press` with `argv`, killed by itself at the moment `spec`."""
    install_hook(spec, signal.Signals[signame])
    from press.cli import main

    return main(argv)


# ---- comparing two finished runs --------------------------------------------------------------

def same_tree(a: Any, b: Any) -> bool:
    """Whether two nests of tensors and plain values are equal bit for bit (dtypes included)."""
    import torch

    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_tree(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(same_tree, a, b))
    return a == b


def log_rows(run_dir: Path) -> list[dict[str, str]]:
    """log.csv without `crop_minutes`, the wall time: the one field two identical runs differ in."""
    with open(run_dir / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r.pop("crop_minutes")
    return rows


def differences(straight: Path, resumed: Path) -> list[str]:
    """What differs between two finished runs' weights, training state and log (empty: identical)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from press.training.state import load_state

    found = []
    for name in ("last.safetensors", "best.safetensors"):
        with safe_open(str(straight / name), "pt") as a, safe_open(str(resumed / name), "pt") as b:
            if a.metadata() != b.metadata():
                found.append(f"{name} metadata")
        if not same_tree(load_file(straight / name), load_file(resumed / name)):
            found.append(f"{name} weights")
    a, b = load_state(straight / "last.state.pt"), load_state(resumed / "last.state.pt")
    found += [f"last.state.pt {key}" for key in sorted(a.keys() | b.keys())
              if key != "crop_seconds" and not same_tree(a.get(key), b.get(key))]
    if log_rows(straight) != log_rows(resumed):
        found.append("log.csv rows")
    return found


def checkpoint_step(run_dir: Path) -> int | None:
    """The step of the run's last.state.pt (None: none written yet)."""
    from press.training.state import load_state

    path = run_dir / "last.state.pt"
    return int(load_state(path)["step"]) if path.exists() else None


def temporaries(run_dir: Path) -> list[Path]:
    """Temporary files of unfinished atomic writes (`.NAME.<random>.tmp`)."""
    return sorted(run_dir.glob(".*.tmp")) + sorted(run_dir.glob("snapshots/.*.tmp"))


# ---- the experiment ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Kill:
    signum: signal.Signals
    moment: str                      # step:N:SECONDS or FILE:K:PHASE

    def describe(self) -> str:
        first, count, last = parse_moment(self.moment)
        return f"step {count} + {float(last):.2f} s" if first == "step" else f"{first} write {count}, {last}"


@dataclass
class Trial:
    kill: Kill
    exit_code: int
    step: int | None                 # the checkpoint the run resumes from
    left: int                        # temporary files the killed process left
    runs: int                        # processes until it finished, the killed one included
    diff: list[str]


def command(run_dir: Path, kill: Kill | None) -> list[str]:
    """The process to start: `press train` (resuming when a checkpoint exists), through the driver
    when it is to be killed."""
    argv = train_argv(run_dir, resume=(run_dir / "last.state.pt").exists())
    if kill is not None:
        return [sys.executable, __file__, "drive", kill.moment, kill.signum.name, *argv]
    return [sys.executable, "-m", "press.cli", *argv]


def env() -> dict[str, str]:
    """One thread everywhere: the arithmetic of every process is the same."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def start(run_dir: Path, kill: Kill | None) -> tuple[int, str]:
    """Run one process to its end (or its kill): (exit code, stderr)."""
    proc = subprocess.run(command(run_dir, kill), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, timeout=600, check=False)
    return proc.returncode, proc.stderr


def check_stop(kill: Kill, code: int, err: str, run_dir: Path) -> None:
    """A SIGTERM ends `press train` with 143 and one line, and nothing half-written is kept."""
    if kill.signum == signal.SIGTERM and code == 143:
        assert "stopped by SIGTERM" in err, err
        assert not temporaries(run_dir), temporaries(run_dir)
    elif code not in (-kill.signum, 0):
        raise RuntimeError(f"press train ended with {code} after {kill.signum.name}:\n{err}")


def trial(run_dir: Path, kill: Kill, straight: Path) -> Trial:
    """Start, kill, resume until finished, compare."""
    killed, err = start(run_dir, kill)
    check_stop(kill, killed, err, run_dir)
    step, left, runs, code = checkpoint_step(run_dir), len(temporaries(run_dir)), 1, killed
    while code != 0:
        code, err = start(run_dir, None)
        runs += 1
        if code != 0:
            raise RuntimeError(f"resume failed ({code}):\n{err}")
    assert not temporaries(run_dir), temporaries(run_dir)
    return Trial(kill, killed, step, left, runs, differences(straight, run_dir))


def plan(n: int, rng: random.Random) -> list[Kill]:
    """n kills: forced moments in every phase of the checkpoint files' writes (the final pair half
    renamed among them), the rest at random steps and delays, SIGKILL and SIGTERM alternating."""
    forced = [Kill(signal.SIGKILL, f"last.state.pt:{rng.randint(1, 5)}:partial"),
              Kill(signal.SIGKILL, "last.safetensors:5:renamed"),
              Kill(signal.SIGTERM, f"last.state.pt:{rng.randint(1, 5)}:written"),
              Kill(signal.SIGKILL, f"last.safetensors:{rng.randint(1, 4)}:renamed"),
              Kill(signal.SIGTERM, f"last.safetensors:{rng.randint(1, 5)}:partial"),
              Kill(signal.SIGKILL, "best.safetensors:1:written")]
    timed = [Kill(signal.SIGKILL if i % 2 == 0 else signal.SIGTERM,
                  f"step:{rng.randint(1, 20)}:{rng.uniform(0.0, 0.5):.2f}") for i in range(max(0, n - len(forced)))]
    kills = (timed + forced)[:n]
    rng.shuffle(kills)
    return kills


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "drive":
        sys.exit(drive(sys.argv[2], sys.argv[3], sys.argv[4:]))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, default=None, help="folder for the runs (default: a temporary one)")
    args = p.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="kill-resume-"))
    straight = work / "straight"
    t0 = time.monotonic()
    code, err = start(straight, None)
    if code != 0:
        raise SystemExit(f"the uninterrupted run failed:\n{err}")
    print(f"uninterrupted run: {time.monotonic() - t0:.1f} s ({work})\n")
    print("| # | kill moment | signal | exit | checkpoint step after the kill | temporaries left | processes "
          "| identical |")
    print("|---|---|---|---|---|---|---|---|")
    results = []
    for i, kill in enumerate(plan(args.kills, random.Random(args.seed)), 1):
        t = trial(work / f"trial-{i:02d}", kill, straight)
        results.append(t)
        same = "yes" if not t.diff else "no: " + ", ".join(t.diff)
        print(f"| {i} | {kill.describe()} | {kill.signum.name} | {t.exit_code} | "
              f"{'none' if t.step is None else t.step} | {t.left} | {t.runs} | {same} |", flush=True)
    print(f"\n{sum(not t.diff for t in results)} of {len(results)} bit-identical "
          f"({time.monotonic() - t0:.0f} s in all)")


if __name__ == "__main__":
    main()
