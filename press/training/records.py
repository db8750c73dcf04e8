"""What a run leaves in RUN_DIR besides checkpoints: config, provenance, CSV, TensorBoard, curves.

Only rank 0 writes. The CSV is the record of truth (one row per logged step, validation columns
filled on validation steps) and the PNG is redrawn from it, so both survive a resume: rows past the
checkpoint being resumed are dropped, as TensorBoard's purge_step drops its events.
"""

from __future__ import annotations

import csv
import json
import platform
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from press.io.files import atomic_write
from press.version import __version__


def git_commit() -> str:
    """The commit of the package's source tree ('+dirty' with uncommitted changes), or 'unknown'."""
    where = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def write_text(path: Path, text: str) -> None:
    """Replace a small text file atomically: a run killed while writing config.yaml or run.json must
    still find them whole when it resumes."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


class RunRecords:
    """CSV + TensorBoard + PNG of the curves, and the config and provenance of the run."""

    def __init__(self, run_dir: Path, cfg: DictConfig, n_exits: int, start_step: int, world: int, device: str,
                 precision: str = "float32", tensorboard: bool = True, skipped: Sequence[str] = ()):
        self.dir = run_dir
        self.n_exits = n_exits
        self.csv_path = run_dir / "log.csv"
        self.png_path = run_dir / "curves.png"
        self.tb_dir = run_dir / "tensorboard"
        self.fields = (["step", "stage", "crop_minutes", "lr", "loss", "si_snr", "grad_norm", "val_loss"]
                       + [f"val_si_snri_{i + 1}" for i in range(n_exits)])
        write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg))
        self._write_provenance(start_step, world, device, precision, list(skipped))
        self._truncate_csv(start_step)
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.tb_dir), purge_step=start_step + 1 if start_step else None)

    def _write_provenance(self, start_step: int, world: int, device: str, precision: str,
                          skipped: list[str]) -> None:
        """Add this session to run.json; `skipped`: the unreadable corpus files it trains and validates
        without (`data.skip_bad_files`), each problem naming its file."""
        path = self.dir / "run.json"
        info = json.loads(path.read_text()) if path.is_file() else {"sessions": []}
        info.update(press_version=__version__, git_commit=git_commit(), torch=torch.__version__,
                    python=platform.python_version())
        info["sessions"].append({"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "from_step": start_step,
                                 "world_size": world, "device": device, "precision": precision,
                                 "host": platform.node(), "skipped_files": skipped})
        write_text(path, json.dumps(info, indent=2) + "\n")

    def _truncate_csv(self, start_step: int) -> None:
        """Keep the rows up to the checkpoint being resumed, rewriting the file atomically: a kill
        while it is rewritten must not lose the rows a later resume keeps."""
        rows = [r for r in self.rows() if int(r["step"]) <= start_step] if start_step else []

        def write(tmp: str) -> None:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=self.fields)
                writer.writeheader()
                writer.writerows(rows)

        atomic_write(self.csv_path, write)

    def rows(self) -> list[dict[str, str]]:
        if not self.csv_path.is_file():
            return []
        with open(self.csv_path, newline="") as f:
            return list(csv.DictReader(f))

    def log(self, row: dict[str, Any]) -> None:
        """Append one row (missing fields left blank) and mirror its numbers to TensorBoard."""
        with open(self.csv_path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.fields).writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        if self.tb is not None:
            step = int(row["step"])
            for key, value in row.items():
                if isinstance(value, float):
                    group = "val" if key.startswith("val_") else "train"
                    self.tb.add_scalar(f"{group}/{key.removeprefix('val_')}", value, step)
            self.tb.flush()

    def plot(self, finetune_from: int) -> None:
        """Redraw curves.png from the CSV: losses, and validation SI-SNRi per exit, against steps."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = self.rows()
        fig, (ax_loss, ax_snr) = plt.subplots(1, 2, figsize=(11, 4))
        for key, label in (("loss", "train loss"), ("val_loss", "validation loss")):
            pts = [(int(r["step"]), float(r[key])) for r in rows if r.get(key)]
            if pts:
                ax_loss.plot(*zip(*pts), label=label, marker="o" if key == "val_loss" else None, ms=3)
        for i in range(self.n_exits):
            key = f"val_si_snri_{i + 1}"
            pts = [(int(r["step"]), float(r[key])) for r in rows if r.get(key)]
            if pts:
                ax_snr.plot(*zip(*pts), marker="o", ms=3, label=f"exit {i + 1}")
        for ax in (ax_loss, ax_snr):
            if rows and int(rows[-1]["step"]) > finetune_from:
                ax.axvline(finetune_from, color="grey", ls=":", lw=1, label="fine-tuning starts")
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        ax_loss.set_ylabel("loss (nats per sample, summed over exits)")
        ax_snr.set_ylabel("validation SI-SNRi (dB)")
        fig.tight_layout()
        atomic_write(self.png_path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
        plt.close(fig)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
