"""`press export` of a causal model: one ONNX graph per exit step of a stream, one likelihood block per call.

A stream's unit of decision is the likelihood block (press.model.stream_exits), so each graph takes
exactly one block of `block` samples (B, block) and the state the previous block left, and returns
the new state beside its outputs (press.model.stream's pieces, traced):

    stream_1.onnx  chunk (B, block), history, level, enc*, g1_*, tail1
                   -> estimate (B, S, block), alpha, beta (B, S, 1),
                      h (B, S, n, D), basis (B, block, C), wave (B, block), scale (B, 1, block), power (B, 1, 1),
                      the new history, level, enc*, g1_*, tail1 (named *_out) [+ alpha_sum, beta_sum]
    stream_k.onnx  h, basis, wave, scale, power, gk_*, tailk [, alpha_sum, beta_sum]   (exit k - 1's block)
                   -> estimate, alpha, beta, h_out, gk_*_out, tailk_out [, alpha_sum_out, beta_sum_out]

Estimates are in input units and beta in squared input units, as `BlockStream` gives them; the
stored recalibration is in the manifest, for the runtime's exit rule. A state the network carries
nothing in (speaker attention) is no graph input. Every state starts at zero: the manifest lists
each one's shape for one stream (its first axis is per stream, or per stream and speaker for the
decoder groups: `rows`). A stream's last, partial block is zero-padded to a whole block by the
runtime; the samples past the input are dropped (the whole-file forward pads its last frame the same
way, and nothing in a causal model looks back from a padded sample to a real one).

The linear scans run as `fixed_depth_scan` (press.model.scan.scan_from under export), the graph
holds no PRESS kernel, and batch is the only dynamic axis.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from press.engine.operating_point import OperatingPoint
from press.errors import PressError
from press.export.onnx import OPSET, prepare_export
from press.io.files import sha256_file
from press.model import PressNet, kernels
from press.model.compute import exit_costs
from press.model.level import sample_level
from press.model.stream import Front, encode, front_begin, group_begin, run_group, tail_begin
from press.model.stream_exits import frame_costs
from press.prob.calibration import Recalibration

FORMAT = "press-onnx-stream"
FORMAT_VERSION = 1


def _kept(states: tuple[torch.Tensor, ...]) -> list[int]:
    """The positions of the states that carry something (attention's are empty)."""
    return [j for j, s in enumerate(states) if s.numel()]


def _fill(template: tuple[torch.Tensor, ...], kept: list[int], given: tuple[torch.Tensor, ...]
          ) -> tuple[torch.Tensor, ...]:
    """The full state tuple from the graph inputs `given` at positions `kept`, empty elsewhere."""
    out, it = [], iter(given)
    for j, t in enumerate(template):
        out.append(next(it) if j in kept else t)
    return tuple(out)


class _Exit(nn.Module):
    """Exit i's group, decoder head and inverse-gamma head on one block's frames."""

    def __init__(self, net: PressNet, i: int, group_template: tuple[torch.Tensor, ...]) -> None:
        super().__init__()
        self.net, self.i, self.template = net, i, group_template
        self.kept = _kept(group_template)

    def run(self, h, basis, wave, scale, power, group, tail, sums):
        net, i = self.net, self.i
        h, group = run_group(net, i, h, _fill(self.template, self.kept, group))
        estimate, tail = net.decoder_heads[i].step(h, basis, wave, tail)             # (B, S, block)
        total = net.ig_heads[i].features(h).sum(-2, keepdim=True)                    # (B, S, 1, G)
        a_raw, b_raw = net.ig_heads[i].pool(total, total.new_tensor(float(h.shape[2])))
        alpha, beta, a_sum, b_sum = net.exit_parameters(a_raw, b_raw, *sums)          # (B, S, 1)
        sums = (a_sum, b_sum) if net.cfg.cumulative else ()
        group = tuple(group[j] for j in self.kept)
        return (estimate * scale, alpha, beta * power, h, *group, tail, *sums)


class _First(_Exit):
    def __init__(self, net: PressNet, group_template, front_template: Front) -> None:
        super().__init__(net, 0, group_template)
        self.front_template = front_template
        self.enc_kept = _kept(front_template.encoder)

    def forward(self, chunk, history, level, *rest):
        n_enc, n_group = len(self.enc_kept), len(self.kept)
        encoder = _fill(self.front_template.encoder, self.enc_kept, rest[:n_enc])
        group, tail = rest[n_enc:n_enc + n_group], rest[n_enc + n_group]
        frames, front = encode(self.net, chunk, Front(history, level, encoder))
        P = self.net.cfg.patch
        scale = sample_level(frames.level, P)[:, None, :]                            # (B, 1, block)
        power = frames.level.pow(2).mean(-1)[:, None, None]                          # (B, 1, 1)
        out = self.run(frames.h, frames.basis, frames.wave, scale, power, group, tail, (None, None))
        estimate, alpha, beta, h, *carried = out
        enc = tuple(front.encoder[j] for j in self.enc_kept)
        return (estimate, alpha, beta, h, frames.basis, frames.wave, scale, power,
                front.history, front.level, *enc, *carried)


class _Next(_Exit):
    def forward(self, h, basis, wave, scale, power, *rest):
        n_group = len(self.kept)
        group, tail, sums = rest[:n_group], rest[n_group], tuple(rest[n_group + 1:]) or (None, None)
        return self.run(h, basis, wave, scale, power, group, tail, sums)


def export_onnx_stream(net: PressNet, out_dir: str | Path, name: str = "model",
                       recalibration: Recalibration | None = None,
                       operating_point: OperatingPoint | None = None) -> Path:
    """Write stream_1.onnx .. stream_K.onnx and manifest.json into out_dir; returns the manifest's path."""
    if not net.cfg.causal:
        raise PressError("a streaming export needs a causal model (model.causal: true)")
    model, out, recalibration = prepare_export(net, out_dir, recalibration)
    import onnx

    cfg = net.cfg
    B, K = 2, cfg.n_exits
    front = front_begin(model, B)
    groups = [group_begin(model, i, B) for i in range(K)]
    tails = [tail_begin(model, B) for _ in range(K)]
    sums = ["alpha_sum", "beta_sum"] if cfg.cumulative else []
    enc_names = [f"enc{j}" for j in _kept(front.encoder)]
    states: dict[str, torch.Tensor] = {"history": front.history, "level": front.level,
                                       **{n: front.encoder[int(n[3:])] for n in enc_names}}
    chunk = torch.randn(B, cfg.block) * 0.1
    graphs = []
    with torch.no_grad(), kernels.disabled():   # ONNX operators, not PRESS's compiled kernels
        previous: tuple = ()
        for k in range(1, K + 1):
            g_names = [f"g{k}_{j}" for j in _kept(groups[k - 1])]
            states.update({n: groups[k - 1][int(n.split("_")[1])] for n in g_names})
            states[f"tail{k}"] = tails[k - 1]
            own = [*g_names, f"tail{k}"]
            if k == 1:
                module = _First(model, groups[0], front)
                inputs = ["chunk", "history", "level", *enc_names, *own]
                args = (chunk, *(states[n] for n in inputs[1:]))
                outputs = ["estimate", "alpha", "beta", "h", "basis", "wave", "scale", "power",
                           *(f"{n}_out" for n in ["history", "level", *enc_names, *own]), *sums]
            else:
                module = _Next(model, k - 1, groups[k - 1])
                inputs = ["h", "basis", "wave", "scale", "power", *own, *sums]
                args = (*previous[:5], *(states[n] for n in own), *previous[5:])
                outputs = ["estimate", "alpha", "beta", "h_out", *(f"{n}_out" for n in own),
                           *(f"{n}_out" for n in sums)]
            result = module(*args)
            # what the next exit's graph reads: this block's h, basis, wave, scale, power [, sums]
            if k == 1:
                previous = (result[3], *result[4:8], *result[len(result) - len(sums):])
            else:
                previous = (result[3], *previous[1:5], *result[len(result) - len(sums):])
            path = out / f"stream_{k}.onnx"
            dynamic = {n: {0: "batch"} for n in (*inputs, *outputs)}
            torch.onnx.export(module, args, str(path), dynamo=False, opset_version=OPSET,
                              input_names=inputs, output_names=outputs, dynamic_axes=dynamic)
            onnx.checker.check_model(onnx.load(str(path)), full_check=True)
            graphs.append({"exit": k, "file": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size,
                           "inputs": inputs, "outputs": outputs})
    state_shapes = {n: {"rows": t.shape[0] // B, "shape": list(t.shape[1:])} for n, t in states.items()}
    costs = frame_costs(net)
    manifest = {
        "format": FORMAT, "version": FORMAT_VERSION, "model": name, "opset": OPSET,
        "sample_rate": cfg.sample_rate, "n_src": cfg.n_src, "n_exits": K,
        "sources": None if cfg.sources is None else list(cfg.sources),
        "block": cfg.block, "patch": cfg.patch, "lookahead": net.lookahead, "cumulative": cfg.cumulative,
        "gmacs_per_second": [c.gmacs_per_second for c in exit_costs(net)],
        # MACs per block of one stream: graph k run once (graph 1 includes the front)
        "macs_per_block": [cfg.frames_per_block * (costs.front * (k == 0) + costs.group[k] + costs.decoder[k]
                                                   + costs.features[k]) + costs.pool[k] for k in range(K)],
        "states": state_shapes,
        "recalibration": recalibration.to_dict(),
        "operating_point": (operating_point or OperatingPoint()).to_dict(),
        "graphs": graphs,
    }
    path = out / "manifest.json"
    path.write_text(json.dumps(manifest, indent=1))
    return path
