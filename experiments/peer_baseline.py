"""A peer separator trained at PRESS's budget: same data, crops, batches and wall time.

Asteroid's Conv-TasNet or SuDoRM-RF (every architecture argument at Asteroid's default, 8 kHz, two
sources) is trained from scratch on exactly the batches a PRESS run of `--config` sees (the same
corpus, `train.crop_seconds` crops, `train.batch_size`, `train.seed`: press.training.data's StagePlan
and BatchStream), with Asteroid's own recipe: Adam, permutation-invariant negative SI-SDR
(PITLossWrapper), gradient-norm clip 5. Training stops after `--minutes` of wall time, validation
included, as a PRESS run with `train.max_minutes` does. Every `--val-minutes` it logs the SI-SNRi
on the fixed validation set of a PRESS run with `data.val_options` (the same items, cut the same
way), and at the end the scores of benchmarks/realval.py (recorded speech of the validation and of the test
split, each mixture whole), the numbers recipe_comparison.py reports for PRESS.

A killed run resumes from `OUT/last.pt` (model, optimiser, step, minutes, batch position; loaded
with weights_only). Asteroid is not a PRESS dependency: `--venv PEERS_VENV` (or PRESS_PEERS_VENV)
names the virtual environment that benchmarks/peers.py measures it in (benchmarks/README.md has the
install commands), and the script runs itself again with that environment's Python:

    python experiments/peer_baseline.py OUT --root FULL --venv PEERS_VENV \\
        [--model Conv-TasNet] [--minutes 20] [--threads 1] [--limit 200]

FULL is the full training corpus (`press data synth FULL --full --no-languages --jobs 2`).
Conclusion: docs/experiments.md, "PRESS against a peer at equal training budget".
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))   # peers.py, realval.py
from peers import VENV_VARIABLE, build, in_venv, measure_macs
from realval import score

from press.evaluation.metrics import aligned_si_snri
from press.io.files import atomic_write
from press.model import load_config
from press.training.config import resolve_config
from press.training.data import BatchStream, Position, StagePlan, build_dataset, val_loader


@torch.no_grad()
def validate(model: torch.nn.Module, loader) -> float:
    """Mean SI-SNRi (best order) over the PRESS validation set, each item at its true length."""
    model.eval()
    values = []
    for batch in loader:
        est = model(batch["mixture"])                                        # (B, 2, L)
        for b, n in enumerate(batch["lengths"].tolist()):
            values.append(aligned_si_snri(est[b, :, :n].numpy(), batch["sources"][b, :, :n].numpy(),
                                          batch["mixture"][b, :n].numpy()))
    model.train()
    return sum(values) / len(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="run folder (log.csv, last.pt, result.json)")
    parser.add_argument("--root", required=True, help="corpus folder (data.root of the PRESS runs it stands beside)")
    parser.add_argument("--model", default="Conv-TasNet", choices=("Conv-TasNet", "SuDoRM-RF"))
    parser.add_argument("--config", default="default", help="the PRESS config whose data, crops and batches it shares")
    parser.add_argument("--minutes", type=float, default=20.0, help="wall time of training, validation included")
    parser.add_argument("--val-minutes", type=float, default=5.0, help="validate every this many minutes")
    parser.add_argument("--val-examples", type=int, default=60, help="items of the in-training validation set")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (Asteroid's recipes: 1e-3)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=int, default=200, help="mixtures of each final score")
    parser.add_argument("--venv", default=os.environ.get(VENV_VARIABLE),
                        help=f"the virtual environment with asteroid (default: ${VENV_VARIABLE})")
    args = parser.parse_args()
    in_venv(args.venv)
    from asteroid.losses import PITLossWrapper, pairwise_neg_sisdr

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = resolve_config(load_config(args.config, [
        f"data.root={args.root}", f"data.val_examples={args.val_examples}", "data.val_options={subset: real}"]))
    model = build(args.model).train()   # peers.py's constructor: Asteroid's defaults, 8 kHz, two sources
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = PITLossWrapper(pairwise_neg_sisdr, pit_from="pw_mtx")
    args.out.mkdir(parents=True, exist_ok=True)
    state_path, log_path = args.out / "last.pt", args.out / "log.csv"
    step, seconds, position = 0, 0.0, Position()
    if state_path.exists():
        state = torch.load(state_path, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, seconds, position = state["step"], state["seconds"], Position(*state["position"])
    else:
        log_path.write_text("step,minutes,loss,val_si_snri\n")
    stream = BatchStream(StagePlan(cfg, "train", build_dataset(cfg, "train")), position, 0, 1, 0)
    val = val_loader(cfg, 0, 1)
    model.train()
    clock, losses, next_val = time.monotonic(), [], seconds + 60 * args.val_minutes

    def save() -> None:
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "seconds": seconds,
                 "position": [stream.position.epoch, stream.position.batch]}
        atomic_write(state_path, lambda tmp: torch.save(state, tmp))

    while seconds < 60 * args.minutes:
        batch, _ = next(stream)
        loss = loss_fn(model(batch["mixture"]), batch["sources"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        losses.append(float(loss.detach()))
        step += 1
        now = time.monotonic()
        seconds, clock = seconds + now - clock, now
        if seconds >= next_val or seconds >= 60 * args.minutes:
            si_snri = validate(model, val)
            now = time.monotonic()
            seconds, clock = seconds + now - clock, now
            mean_loss = sum(losses) / len(losses)
            with open(log_path, "a", newline="") as fh:
                csv.writer(fh).writerow([step, f"{seconds / 60:.2f}", f"{mean_loss:.4f}", f"{si_snri:.3f}"])
            print(f"step {step}  {seconds / 60:.1f} min  loss {mean_loss:.3f}  val SI-SNRi {si_snri:.2f} dB",
                  flush=True)
            losses, next_val = [], next_val + 60 * args.val_minutes
            save()
    save()
    model.eval()
    final = {split: score(lambda mixture: [model(mixture)], args.limit, split)[0] for split in ("val", "test")}
    macs = measure_macs(args.model, 4.0)   # peers.py's one counter for every model
    result = {"model": args.model, "steps": step, "minutes": seconds / 60, "gmac_per_s": macs["gmacs"],
              "params_m": macs["params"] / 1e6, "si_snri": final["val"],
              "si_snri_test": final["test"]}
    (args.out / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
