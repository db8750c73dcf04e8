"""One training batch's gradients under bf16 autocast against float32, per layer group.

What bf16 autocast does to training before a run is spent on it: for each group of parameters, the
cosine between the bf16 and float32 gradients of the same batch and the ratio of their norms. A
direction kept but a norm shrunk points at rounding that hides part of the error the likelihood
sees, not at noise (docs/experiments.md, "bf16 training": the exits' heads, now float32).

    python experiments/bf16_gradients.py [--weights default] [--batch 4] [--seconds 2] [--heads float32|bf16]

`--heads bf16` runs the exits' heads in bf16 too, as PRESS did before they were kept in float32
(PressNet.heads), to show the difference that makes.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from press.data import get_dataset
from press.model.pretrained import load
from press.training.loss import TrainingLoss
from press.training.loop import float_outputs


def training_batch(batch: int, seconds: float, sample_rate: int) -> tuple[torch.Tensor, ...]:
    """The first `batch` training mixtures of the built-in corpus, cut or padded to `seconds`."""
    data = get_dataset("builtin", split="train", num_examples=batch)
    n = round(seconds * sample_rate)
    items = [data[i] for i in range(batch)]
    mix = torch.stack([F.pad(it["mixture"][:n], (0, n - len(it["mixture"][:n]))) for it in items])    # (B, n)
    src = torch.stack([F.pad(it["sources"][:, :n], (0, n - it["sources"][:, :n].shape[-1])) for it in items])
    lengths = torch.tensor([min(n, len(it["mixture"])) for it in items])
    return mix, src, lengths


def group_of(name: str) -> str:
    """Parameters grouped as `groups.2`, `decoder_heads.0`, `encoder`: the exits' paths."""
    return ".".join(name.split(".")[:2]) if name.split(".")[0] in {"groups", "decoder_heads", "ig_heads"} \
        else name.split(".")[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default="default", help="a shipped name or a .safetensors file")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--heads", choices=("float32", "bf16"), default="float32")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    model, cfg, _ = load(args.weights)                        # cfg: the run's whole config
    model.train()
    if args.heads == "bf16":   # skip PressNet.heads' float32 region: the heads' own modules, as they are
        model.heads = lambda i, h, basis, wave, mask: (
            model.decoder_heads[i](h, basis, wave), *model.ig_heads[i](h, mask))
    loss_fn = TrainingLoss(int(cfg.model.block), str(cfg.loss.objective), str(cfg.loss.pit), float(cfg.loss.sisnr_weight))
    mix, src, lengths = training_batch(args.batch, args.seconds, model.cfg.sample_rate)

    def gradients(bf16: bool) -> dict[str, torch.Tensor]:
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext():
            outputs = model(mix, lengths)
        loss_fn(float_outputs(outputs), src, mix, lengths).loss.backward()
        return {n: q.grad.clone() for n, q in model.named_parameters() if q.grad is not None}

    g32, g16 = gradients(False), gradients(True)
    dots: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])   # <a, b>, |a|^2, |b|^2
    for name, a in g32.items():
        a, b = a.flatten().double(), g16[name].flatten().double()
        d = dots[group_of(name)]
        d[0] += float(a @ b); d[1] += float(a @ a); d[2] += float(b @ b)
    print(f"{args.weights}: {args.batch} x {args.seconds:g} s of training data, heads in {args.heads}")
    print(f"{'parameters':20s} {'cosine':>8s} {'|bf16| / |fp32|':>16s}")
    for group, (ab, aa, bb) in dots.items():
        print(f"{group:20s} {ab / (aa * bb) ** 0.5:8.4f} {(bb / aa) ** 0.5:16.3f}")


if __name__ == "__main__":
    main()
