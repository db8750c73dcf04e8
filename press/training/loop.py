"""Training PRESS-Net: the paper's recipe, full-length fine-tuning, exact resume, DDP.

One loop, two stages (the paper's recipe; docs/training.md):
  train     random crops (`train.crop_seconds`), AdamW, linear warm-up then cosine, grad-norm clip;
  finetune  full-length, variable-length utterances (capped at `finetune.max_seconds`) in length
            buckets, padded, with true lengths passed to the model and the loss so that padding
            counts for nothing; the paper's fix for miscalibration on long inputs.
The global step numbers both stages; the stage, learning rate and batch of a step follow from the
config and the step alone, so a checkpoint (`press.training.state`) restores a run exactly: a run
killed at any moment and resumed with `resume=True` ends bit-identical to one never interrupted.

Distributed: under torchrun each rank takes its share of every global batch (`press.training.data`)
and its loss is weighted by its share of the batch's samples, so DDP's gradient average is the
gradient of the whole batch's loss and a W-rank run follows the same trajectory as one process (up
to the order of floating-point sums). Rank 0 logs and writes checkpoints; at every checkpoint the
ranks compare a digest of their weights and stop if they ever differ.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from press.errors import PressError
from press.io.files import atomic_write
from press.model import PressNet, kernels, model_config
from press.model.checkpoint import load_model, save_model
from press.model.pretrained import resolve
from press.prob.sisnr import si_snri
from press.training import distributed
from press.training.config import resolve_config
from press.training.data import (
    BatchStream,
    Position,
    StagePlan,
    build_dataset,
    pad_batch,
    skipped_files,
    val_loader,
)
from press.training.loss import TrainingLoss
from press.training.records import RunRecords
from press.training.schedule import lr_at, stage_at, total_steps
from press.training.state import capture_rng, load_state, restore_rng, save_state

# Model fields that shape no parameter: `train.init` may start a run from weights saved under other
# values, e.g. a causal `enhance-rt` from the bidirectional `enhance` (the same tensors, run forward
# only and with a running level) or another likelihood block.
WEIGHTLESS_FIELDS = ("name", "causal", "block")


@dataclass(frozen=True)
class TrainResult:
    """Where a finished (or stopped) run left its records."""

    run_dir: Path
    step: int
    best_val_loss: Optional[float]
    files: dict[str, Path]


def make_optimizer(model: torch.nn.Module, cfg: DictConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices and kernels only: not on biases, norm gains or LayerScale
    [ours: decaying LayerScale towards zero would fight the near-identity initialisation]."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    keep = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": float(cfg.train.weight_decay)},
              {"params": keep, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=float(cfg.train.lr), betas=tuple(cfg.train.betas))


def seed_everything(seed: int) -> None:
    """Seed torch's, NumPy's and Python's global generators: a checkpoint stores all three, and a
    fresh process's NumPy and Python states come from the OS, so two runs of one config would
    otherwise hold different states at every step, whatever their weights."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def has_fast_bf16(device: torch.device) -> bool:
    """Whether bf16 matmuls run faster than float32 ones here: GPUs with bf16, and CPUs with
    AVX-512 bf16 or AMX instructions (about 2x the float32 matmul rate). On other CPUs bf16 is
    emulated and slower."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")   # torch.cpu, torch >= 2.3
        return any(getattr(torch.cpu, name, lambda: False)() for name in probes)
    return False


def precision_for(cfg: DictConfig, device: torch.device) -> str:
    """"bf16" (autocast) or "float32": `amp: auto` is bf16 where `has_fast_bf16`. On a CPU with
    AVX-512 bf16 it trained the shipped model at the float32 run's quality (docs/experiments.md,
    "bf16 training"), and with PRESS's CPU kernels, which run in float32 on the bf16 projections,
    it is the fastest mode, eager or compiled (docs/results.md, "Training throughput")."""
    mode = str(cfg.train.amp)
    return "bf16" if mode == "bf16" or (mode == "auto" and has_fast_bf16(device)) else "float32"


def autocast_for(precision: str, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """A fresh autocast context per forward pass for `precision_for`'s answer (null in float32)."""
    if precision == "float32":
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16)


def float_outputs(outputs: list) -> list:
    """The loss runs in float32/64 outside autocast, whatever precision the network ran in."""
    return [replace(o, estimate=o.estimate.float(), alpha=o.alpha.float(), beta=o.beta.float()) for o in outputs]


@dataclass(frozen=True)
class Validation:
    """One pass over the validation set, summed over all ranks."""

    loss: float              # nats per valid sample, summed over exits
    si_snri: list[float]     # dB per exit, mean over utterances, under the loss's permutation
    items: int               # utterances validated
    seconds: float           # audio validated (true lengths, not padding)


@torch.no_grad()
def evaluate(model: PressNet, loader, loss_fn: TrainingLoss, dist: distributed.Dist, amp,
             progress: bool = False) -> Validation:
    """The validation loss and SI-SNRi per exit over `loader` (every rank its share), with a
    progress bar of this rank's utterances when `progress`: on a CPU a pass can take minutes."""
    was_training = model.training
    model.eval()
    n_exits = model.n_exits
    totals = torch.zeros(3 + n_exits, dtype=torch.float64, device=dist.device)  # loss*n, n, utterances, snri*utt
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(len(b) for b in loader.batch_sampler), desc="validation", unit="utt",
                   dynamic_ncols=True, leave=False, position=1)
    for batch in loader:
        mix, src, lengths = (batch[k].to(dist.device) for k in ("mixture", "sources", "lengths"))
        with amp():
            outputs = model(mix, lengths)
        outputs = float_outputs(outputs)
        res = loss_fn(outputs, src, mix, lengths)
        idx = res.perm.unsqueeze(-1).expand(-1, -1, src.shape[-1])
        for i, o in enumerate(outputs):
            totals[3 + i] += si_snri(o.estimate, src.gather(1, idx), mix, lengths).mean(1).sum().double()
        n = lengths.sum().double()
        totals[0] += res.loss.double() * n
        totals[1] += n
        totals[2] += len(lengths)
        if bar is not None:
            bar.update(len(lengths))
    if bar is not None:
        bar.close()
    totals = dist.sum(totals)
    model.train(was_training)
    return Validation(loss=float(totals[0] / totals[1]), si_snri=[float(v) for v in totals[3:] / totals[2]],
                      items=int(totals[2]), seconds=float(totals[1]) / model.cfg.sample_rate)


class Trainer:
    """The state of one rank's run; `run()` is the loop."""

    def __init__(self, cfg: DictConfig, run_dir: Path, resume: bool, dist: distributed.Dist,
                 progress: bool, on_step: Optional[Callable[[int, dict], None]]):
        self.cfg, self.run_dir, self.dist, self.progress, self.on_step = cfg, run_dir, dist, progress, on_step
        dev = dist.device
        if dev.type == "cpu":
            # Real speech has long near-silent stretches; through LayerScale (1e-5) they produce
            # subnormal floats, which x86 CPUs process ~100x slower: measured 5-17 s instead of 2 s
            # per step of `small`. Flushing them to zero changes no result that matters.
            torch.set_flush_denormal(True)
        if dev.type == "cuda":
            # TF32 tensor cores for float32 matmuls and convolutions (10-bit mantissa products, float32
            # sums): several times the float32 rate, well inside what training noise tolerates
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        seed_everything(int(cfg.train.seed))
        self.model = PressNet(model_config(cfg)).to(dev)
        self.model.checkpoint_blocks(bool(cfg.train.checkpoint_blocks))
        if cfg.train.init and not resume:
            self._start_from(resolve(str(cfg.train.init)))
        self.loss_fn = TrainingLoss(int(cfg.model.block), str(cfg.loss.objective), str(cfg.loss.pit),
                                    float(cfg.loss.sisnr_weight), model=self.model.cfg)
        self.optimizer = make_optimizer(self.model, cfg)
        self.precision = precision_for(cfg, dev)
        self.amp = autocast_for(self.precision, dev)
        self.step, self.best_val = 0, math.inf
        # training statistics summed since the last logged row, on the device so that a step needs
        # no host sync (kept in checkpoints, so that a resumed run logs the same averages as an
        # uninterrupted one)
        self.window, self.window_steps = torch.zeros(5, dtype=torch.float64, device=dev), 0
        # the crop stage's length if `train.max_minutes` cut it short (None: `train.steps`), and the
        # wall time it has taken so far, across resumes
        self.crop_steps: Optional[int] = None
        self.crop_seconds = 0.0
        stage, position = stage_at(cfg, 0)[0], Position()   # "finetune" when train.steps=0
        if resume:
            state = load_state(run_dir / "last.state.pt")
            try:
                self.model.load_state_dict(state["model"])
                self.optimizer.load_state_dict(state["optimizer"])
            except (RuntimeError, ValueError, KeyError) as err:
                raise PressError(f"{run_dir / 'last.state.pt'} does not fit this config's model ({str(err)[:200]})") from err
            self.step, self.best_val = int(state["step"]), float(state["best_val"])
            self.window, self.window_steps = state["window"].to(dev, copy=True), int(state["window_steps"])
            stage, position = str(state["stage"]), Position(int(state["epoch"]), int(state["batch"]))
            self.crop_steps = state.get("crop_steps")
            self.crop_seconds = float(state.get("crop_seconds", 0.0))
            restore_rng(state["rng"], dev)
        self.train_set = build_dataset(cfg, "train")
        self.val_loader = val_loader(cfg, dist.rank, dist.world)
        self._enter(stage, position)
        self.records = None
        if dist.is_main:
            self.records = RunRecords(run_dir, cfg, self.model.n_exits, self.step, dist.world, str(dev),
                                      self.precision, tensorboard=bool(cfg.train.tensorboard),
                                      skipped=skipped_files(self.train_set) + skipped_files(self.val_loader.dataset))

    def _start_from(self, path: Path) -> None:
        """Start from the weights of an earlier model (`train.init`): a longer schedule, new data or
        augmentation without paying again for the steps already taken. Only the weights carry over;
        optimiser, schedule and data order start afresh. A shipped model's name (`train.init=default`)
        or a checkpoint path."""
        source, source_cfg, _ = load_model(path)
        mine, theirs = model_config(self.cfg), model_config(source_cfg)
        changed = [f for f in WEIGHTLESS_FIELDS if getattr(mine, f) != getattr(theirs, f)]
        if replace(theirs, **{f: getattr(mine, f) for f in changed}) != mine:
            raise PressError(f"train.init={path}: its model config differs from this run's; "
                             "only a model of the same architecture can be continued")
        self.model.load_state_dict(source.state_dict())
        if changed and self.dist.is_main:
            print(f"press train: train.init={path}: the same weights in another setting: "
                  + ", ".join(f"{f} {getattr(theirs, f)} -> {getattr(mine, f)}" for f in changed), file=sys.stderr)

    def _enter(self, stage: str, position: Position) -> None:
        """Begin (or resume inside) a stage: the parameters it updates, its batches from `position`, and
        the network that runs them.

        `finetune.trainable=heads` freezes everything but the inverse-gamma heads for the fine-tuning
        stage: the separation stays exactly as the crop stage left it and only the predicted error
        distributions learn full-length audio. Frozen parameters get no gradient, so AdamW neither
        moves nor decays them, and backward stops at the heads' inputs. DDP registers the parameters
        that need gradients when it is built, so the network is wrapped again for every stage.
        """
        self.stage = stage
        heads_only = stage == "finetune" and str(self.cfg.finetune.trainable) == "heads"
        self.model.requires_grad_(not heads_only)
        self.model.ig_heads.requires_grad_(True)
        self.stream = BatchStream(StagePlan(self.cfg, stage, self.train_set), position, self.dist.rank,
                                  self.dist.world, int(self.cfg.train.num_workers),
                                  pin_memory=self.dist.device.type == "cuda")
        dev = self.dist.device
        net: torch.nn.Module = self.model
        if self.dist.world > 1:
            net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=[dev] if dev.type == "cuda" else None)
        if bool(self.cfg.train.compile):
            kernels.available()   # build/load the CPU kernels now, not inside the first trace
            net = torch.compile(net)
        self.net = net

    def train_step(self) -> torch.Tensor:
        """One optimiser step on the next global batch; returns the rank-summed statistics
        [loss*samples, si_snr*items, samples, items, grad_norm], on the device: nothing here waits
        for the device, so a GPU runs ahead of the host (the loss is checked when it is logged)."""
        dev, world = self.dist.device, self.dist.world
        batch, counts = next(self.stream)
        if bool(self.cfg.train.compile):   # a bounded set of shapes: the crop, or whole seconds
            sr = int(self.cfg.model.sample_rate)
            batch = pad_batch(batch, round(float(self.cfg.train.crop_seconds) * sr) if self.stage == "train" else sr)
        mix, src, lengths = (batch[k].to(dev, non_blocking=True) for k in ("mixture", "sources", "lengths"))
        n_local = lengths.sum().double() * counts
        n_global = self.dist.sum(n_local.reshape(1))[0]
        lr = lr_at(self.cfg, self.step, self.crop_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with self.amp():
            outputs = self.net(mix, lengths)
        res = self.loss_fn(float_outputs(outputs), src, mix, lengths)
        weight = (world * n_local / n_global).float()   # DDP averages gradients over ranks
        (res.loss * weight).backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), float(self.cfg.train.grad_clip))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        items = float(len(lengths) * counts)
        stats = torch.stack([res.loss.detach().double() * n_local, res.si_snr[-1].double() * items,
                             n_local, torch.tensor(items, dtype=torch.float64, device=dev)])
        stats = self.dist.sum(stats)
        return torch.cat([stats, grad_norm.detach().double().reshape(1)])

    def check_finite(self, window: torch.Tensor) -> None:
        """Stop on a non-finite loss in the statistics of the steps since the last logged row."""
        if self.window_steps and not math.isfinite(float(window[0])):
            raise PressError(f"the loss became non-finite in the {self.window_steps} steps up to step {self.step} "
                             f"(lr {lr_at(self.cfg, self.step - 1, self.crop_steps):.3g}); lower train.lr or check "
                             "the data for silent or clipped items")

    def checkpoint(self) -> None:
        """Write last.safetensors (weights), then last.state.pt (everything), after checking the loss
        is finite and the ranks agree.

        last.state.pt is the commit: a resume reads it alone. Written last, it is never ahead of
        last.safetensors: a run killed between the two renames resumes from the previous state and
        writes both again, whereas the other order could leave the final state beside an older
        last.safetensors that a finished resume never rewrites.
        """
        self.check_finite(self.window)
        digests = self.dist.gather_ints(distributed.weights_digest(self.model))
        if len(set(digests)) != 1:
            raise RuntimeError(f"ranks hold different weights at step {self.step} (digests {digests})")
        if not self.dist.is_main:
            return
        save_model(self.run_dir / "last.safetensors", self.model, self.cfg,
                   extra={"step": self.step, "stage": self.stage})
        pos = self.stream.position
        save_state(self.run_dir / "last.state.pt", {
            "step": self.step, "stage": self.stage, "epoch": pos.epoch, "batch": pos.batch,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "rng": capture_rng(self.dist.device), "best_val": self.best_val, "window": self.window.cpu(),
            "window_steps": self.window_steps, "crop_steps": self.crop_steps, "crop_seconds": self.crop_seconds,
            "config": OmegaConf.to_yaml(self.cfg)})
        sync = json.dumps({"step": self.step, "world_size": self.dist.world, "weights_crc32": digests}) + "\n"
        atomic_write(self.run_dir / "sync.json", lambda tmp: Path(tmp).write_text(sync))

    def validate(self) -> Validation:
        val = evaluate(self.model, self.val_loader, self.loss_fn, self.dist, self.amp,
                       progress=self.progress and self.dist.is_main)
        extra = {"step": self.step, "stage": self.stage, "val_loss": val.loss, "val_si_snri": val.si_snri}
        if self.cfg.train.snapshots and self.dist.is_main:   # for choosing or averaging (press average) later
            save_model(self.run_dir / "snapshots" / f"step-{self.step:06d}.safetensors", self.model, self.cfg, extra)
        if val.loss < self.best_val:
            self.best_val = val.loss
            if self.dist.is_main:
                save_model(self.run_dir / "best.safetensors", self.model, self.cfg, extra)
        return val

    def crop_time_is_up(self) -> bool:
        """Whether `train.max_minutes` of crop-stage wall time (counted across resumes) are spent.

        Asked at logged steps only, where the loop syncs anyway, and rank 0's clock decides for all
        ranks (one all-reduce): every rank must end the stage at the same step."""
        limit = self.cfg.train.max_minutes
        if self.stage != "train" or limit is None:
            return False
        up = float(self.dist.is_main and self.crop_seconds >= 60.0 * float(limit))
        return bool(self.dist.sum(torch.tensor([up], device=self.dist.device))[0] > 0)

    def run(self) -> int:
        cfg = self.cfg
        bar = None
        if self.dist.is_main and self.progress:
            from tqdm import tqdm

            # what the bar is counting towards: `train.steps=2` alone still leaves every fine-tuning step
            limit = "" if cfg.train.max_minutes is None else f" (or {float(cfg.train.max_minutes):g} minutes)"
            tqdm.write(f"press train: {int(cfg.train.steps)} crop steps{limit} then {int(cfg.finetune.steps)} "
                       f"full-length fine-tuning steps (from step {self.step}); validation every "
                       f"{int(cfg.train.val_every)} steps and at the end, on {len(self.val_loader.dataset)} items "
                       f"of at most {float(cfg.data.val_max_seconds):g} s; "
                       f"{self.precision} on {self.dist.device}")
            bar = tqdm(total=total_steps(cfg, self.crop_steps), initial=self.step, desc="press train",
                       dynamic_ncols=True)
        self.model.train()
        clock = time.monotonic()
        while self.step < total_steps(cfg, self.crop_steps):
            self.window += self.train_step()
            self.step += 1
            self.window_steps += 1
            if self.stage == "train":   # logging, validation and checkpoints count towards the limit
                now = time.monotonic()
                self.crop_seconds, clock = self.crop_seconds + now - clock, now
                logged = self.step % int(cfg.train.log_every) == 0
                if logged and self.step < int(cfg.train.steps) and self.crop_time_is_up():
                    self.crop_steps = self.step   # the crop stage ends here; fine-tuning follows
                    if bar is not None:
                        bar.total = total_steps(cfg, self.crop_steps)
            n_train, total = self.crop_steps or int(cfg.train.steps), total_steps(cfg, self.crop_steps)
            next_stage = stage_at(cfg, self.step, self.crop_steps)[0] if self.step < total else self.stage
            if next_stage != self.stage:
                self._enter(next_stage, Position())
            row: dict[str, Any] = {}
            if self.step % int(cfg.train.log_every) == 0 or self.step == total:
                w = self.window.cpu()   # the one host sync of a logged step
                self.check_finite(w)
                row = {"loss": float(w[0] / w[2]), "si_snr": float(w[1] / w[3]), "grad_norm": float(w[4] / self.window_steps)}
                self.window.zero_()
                self.window_steps = 0
            if self.step % int(cfg.train.val_every) == 0 or self.step == total:
                val = self.validate()
                row.update({"val_loss": val.loss, **{f"val_si_snri_{i + 1}": v for i, v in enumerate(val.si_snri)}})
            if row and self.records is not None:
                # crop_minutes: the crop stage's wall time so far, across resumes (quality per CPU-hour)
                self.records.log({"step": self.step, "stage": stage_at(cfg, self.step - 1, self.crop_steps)[0],
                                  "crop_minutes": self.crop_seconds / 60,
                                  "lr": lr_at(cfg, self.step - 1, self.crop_steps), **row})
                if "val_loss" in row:
                    self.records.plot(n_train)
            if self.step % int(cfg.train.ckpt_every) == 0 or self.step in (n_train, total):
                self.checkpoint()
            if bar is not None:
                bar.update(1)
                if "loss" in row:
                    bar.set_postfix(stage=self.stage, loss=f"{row['loss']:.3f}", si_snr=f"{row['si_snr']:.1f}dB")
            if self.on_step is not None:
                self.on_step(self.step, row)
        if bar is not None:
            bar.close()
        if self.records is not None:
            self.records.close()
        return self.step


def remove_stale_temporaries(run_dir: Path) -> None:
    """Delete what writes cut short by a kill left behind: `press.io.files.atomic_write` writes NAME
    as `.NAME.<random>.tmp` beside it, and a SIGKILL mid-checkpoint leaves one as large as the
    checkpoint, another at every such kill. Only this run writes in its folder."""
    for folder in (run_dir, run_dir / "snapshots"):
        for tmp in folder.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)


def _fixed_keys(cfg: DictConfig, section: str) -> dict[str, Any]:
    """The keys of a section a resume must keep: all of them but `data.skip_bad_files`."""
    keys = OmegaConf.to_container(cfg[section])
    if section == "data":
        keys.pop("skip_bad_files")
    return keys


def prepare_run_dir(run_dir: Path, cfg: DictConfig, resume: bool) -> DictConfig:
    """Refuse to overwrite a run by accident; on resume, check the config still describes the same run.

    `data.skip_bad_files` may change on resume: it changes nothing while every file reads, and it
    lets a run whose corpus file broke since it started go on without that file."""
    has_run = (run_dir / "last.state.pt").exists()
    if has_run and not resume:
        raise PressError(f"{run_dir} already holds a run; pass --resume to continue it, or choose another --out")
    if resume and not has_run:
        raise PressError(f"nothing to resume in {run_dir} (no last.state.pt)")
    remove_stale_temporaries(run_dir)
    if resume:
        saved = resolve_config(OmegaConf.load(run_dir / "config.yaml"))
        for section in ("model", "loss", "data"):
            old, new = _fixed_keys(saved, section), _fixed_keys(cfg, section)
            if old != new:
                keys = ", ".join(f"{section}.{k}" for k in old if old[k] != new.get(k))
                raise PressError(f"the '{section}' section differs from the run's own {run_dir / 'config.yaml'} "
                                 f"({keys}); a resumed run must keep its model, loss and data")
    run_dir.mkdir(parents=True, exist_ok=True)
    return cfg


def train(cfg: DictConfig, run_dir: str | Path, resume: bool = False, device: str = "auto", progress: bool = True,
          on_step: Optional[Callable[[int, dict], None]] = None) -> TrainResult:
    """Train (or, with resume=True, continue) the run in `run_dir` described by `cfg`.

    `on_step(step, logged_row)` is called after every step on every rank (an exception it raises
    stops the run where it stands, like a kill: the last checkpoint is what a resume starts from).
    Under torchrun every rank calls this; rank 0 writes the records.
    """
    cfg = resolve_config(cfg)
    run_dir = Path(run_dir)
    dist = distributed.setup(device)
    try:
        if dist.is_main:
            prepare_run_dir(run_dir, cfg, resume)
        dist.barrier()
        trainer = Trainer(cfg, run_dir, resume, dist, progress, on_step)
        step = trainer.run()
        dist.barrier()
    finally:
        distributed.teardown()
    files = {name: run_dir / name for name in ("last.safetensors", "best.safetensors", "last.state.pt", "log.csv",
                                               "curves.png", "tensorboard", "config.yaml", "run.json")}
    best = trainer.best_val if math.isfinite(trainer.best_val) else None
    return TrainResult(run_dir=run_dir, step=step, best_val_loss=best, files=files)
