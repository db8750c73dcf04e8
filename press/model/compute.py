"""Parameters and multiply-accumulates (MACs) per exit, counted from the modules as they run.

Forward hooks on every Linear and Conv1d, and on the modules that carry their own `macs` rule
(the linear-RNN scan: one multiply-add per channel and frame; cross-speaker attention: scores and
weighted sum), record what each module computes on a real forward pass. Element-wise work (norms,
gates, activations) is not counted, as is usual for MAC figures; it adds a few per cent.

MACs per exit are reported two ways:
  * dynamic: the cost of reaching exit i when every earlier exit's heads also ran (what early-exit
    inference pays when it stops at i) — the figure `press info` calls GMAC/s;
  * static: the trunk up to exit i plus only exit i's heads (a model cut at exit i).
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Iterator

import torch
import torch.nn as nn

from press.model import kernels
from press.model.press_net import PressNet


def _module_macs(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    if isinstance(module, nn.Conv1d):
        return output.numel() * (module.in_channels // module.groups) * module.kernel_size[0]
    return int(module.macs(inputs, output))  # type: ignore[operator]


@contextmanager
def count_macs(model: nn.Module) -> Iterator[dict[nn.Module, int]]:
    """Within the block, every counted module's MACs accumulate in the yielded dict.

    The model runs its PyTorch code inside the block (`kernels.disabled`): the compiled linear-RNN
    kernel does a block's scan without calling its `Scan` module, which the hooks count.
    """
    totals: dict[nn.Module, int] = defaultdict(int)
    handles = []
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d)) or hasattr(m, "macs"):
            handles.append(m.register_forward_hook(
                lambda mod, inp, out: totals.__setitem__(mod, totals[mod] + _module_macs(mod, inp, out))))
    try:
        with kernels.disabled():
            yield totals
    finally:
        for h in handles:
            h.remove()


def _sum_over(totals: dict[nn.Module, int], *parts: nn.Module) -> int:
    return sum(totals.get(m, 0) for part in parts for m in part.modules())


def _params(*parts: nn.Module) -> int:
    return sum(p.numel() for part in parts for p in part.parameters())


@dataclass
class ExitCost:
    exit: int                      # 1-based
    params: int                    # cumulative: trunk up to this exit + heads of exits <= it
    gmacs_per_second: float        # dynamic path cost (heads of every earlier exit included)
    static_gmacs_per_second: float # trunk + this exit's heads only
    head_params: int               # parameters of this exit's two heads
    head_gmacs_per_second: float   # MACs of this exit's two heads
    heads_share: float             # share of all heads (exits <= i) in the dynamic MACs


@torch.no_grad()
def exit_costs(model: PressNet, seconds: float = 4.0) -> list[ExitCost]:
    """Per-exit parameters and GMAC/s, measured on `seconds` of audio (whole likelihood blocks).

    The forward pass runs on a copy of the architecture on torch's "meta" device: every module
    executes with real shapes, so the hooks see exactly what a real pass computes, but no
    arithmetic is done (milliseconds instead of a minute for press12-m on a CPU).
    """
    cfg = model.cfg
    L = max(1, round(seconds * cfg.sample_rate / cfg.block)) * cfg.block
    with torch.device("meta"):
        shadow = PressNet(cfg).eval()
        x = torch.zeros(1, L)
    with count_macs(shadow) as totals:
        state = shadow.begin(x)
        for _ in range(shadow.n_exits):
            _, state = shadow.advance(state)
    per_s = L / cfg.sample_rate * 1e9
    trunk = [shadow.encoder_head, shadow.encoder, shadow.split_norm, shadow.split]
    trunk_macs, trunk_params = _sum_over(totals, *trunk), _params(*trunk)
    costs, heads_macs, heads_params = [], 0, 0
    for i in range(shadow.n_exits):
        heads = (shadow.decoder_heads[i], shadow.ig_heads[i])
        trunk_macs += _sum_over(totals, shadow.groups[i])
        trunk_params += _params(shadow.groups[i])
        h_macs, h_params = _sum_over(totals, *heads), _params(*heads)
        heads_macs += h_macs
        heads_params += h_params
        costs.append(ExitCost(
            exit=i + 1, params=trunk_params + heads_params,
            gmacs_per_second=(trunk_macs + heads_macs) / per_s,
            static_gmacs_per_second=(trunk_macs + h_macs) / per_s,
            head_params=h_params, head_gmacs_per_second=h_macs / per_s,
            heads_share=heads_macs / max(trunk_macs + heads_macs, 1)))
    return costs


def summary(model: PressNet, name: str) -> dict:
    """The `press info --json` object."""
    return {"model": name, "sample_rate": model.cfg.sample_rate, "n_src": model.cfg.n_src,
            "exits": [asdict(c) for c in exit_costs(model)]}
