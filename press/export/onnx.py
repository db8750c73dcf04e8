"""`press export`: one ONNX graph per step of the incremental network, and a manifest.

Graphs (float32, batch and samples dynamic; every window's length a multiple of `pad_multiple`):

    exit_1.onnx   mixture (B, L), lengths (B,) int64, scale (B,)
                  -> estimate (B, S, L), alpha, beta (B, S, L / block),
                     h (B, S, T, D), basis (B, L, C), wave (B, L), mask (B, 1, T, 1)
                     [+ alpha_sum, beta_sum for a cumulative model]
    exit_k.onnx   h, basis, wave, mask, scale [, alpha_sum, beta_sum]   (the state at exit k - 1)
                  -> estimate, alpha, beta, h [, alpha_sum, beta_sum]

They are `PressNet.begin_padded` + `PressNet.step(0)`, and `PressNet.step(k - 1)`: the functions
`begin` and `advance` run, traced with the TorchScript exporter. The linear-RNN scan runs as
`fixed_depth_scan` (no control flow on the number of frames, equal to the eager scan bit for bit),
which needs the number of frames to be a multiple of the scan chunk: hence `pad_multiple`, the
least common multiple of the likelihood block and patch x chunk. The runtime pads each window with
zeros to it; padded samples are masked, so outputs over the input do not change.

`manifest.json` holds what the runtime needs besides the graphs: rates, sizes, exit rule defaults,
per-exit GMAC/s, the stored recalibration and each graph's sha256.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import torch
import torch.nn as nn

from press.engine.operating_point import OperatingPoint
from press.engine.plan import Cut
from press.errors import PressError
from press.inference.budget import BudgetCalibration
from press.io.files import sha256_file
from press.model import PressNet, kernels
from press.model.blocks import Scan
from press.model.compute import exit_costs
from press.model.heads import EncoderHead
from press.prob.calibration import Recalibration

MANIFEST = "manifest.json"
BUDGET = "budget_calibration.json"
FORMAT = "press-onnx"
FORMAT_VERSION = 1
OPSET = 18
SCAN_STEPS = 16   # doubling steps over scan chunks: windows up to chunk * 2**16 frames


class _First(nn.Module):
    def __init__(self, net: PressNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, mixture, lengths, scale):
        h, basis, wave, mask, scale = self.net.begin_padded(mixture, lengths, scale)
        est, alpha, beta, h, a_sum, b_sum = self.net.step(0, h, basis, wave, mask, scale)
        sums = (a_sum, b_sum) if self.net.cfg.cumulative else ()
        return (est, alpha, beta, h, basis, wave, mask, *sums)


class _Next(nn.Module):
    def __init__(self, net: PressNet, i: int) -> None:
        super().__init__()
        self.net, self.i = net, i

    def forward(self, h, basis, wave, mask, scale, *sums):
        est, alpha, beta, h, a_sum, b_sum = self.net.step(self.i, h, basis, wave, mask, scale, *sums)
        return (est, alpha, beta, h, *((a_sum, b_sum) if self.net.cfg.cumulative else ()))


def _rms_norm_symbolic(g, x, normalized_shape, weight, eps):
    """aten::rms_norm in standard ops (the TorchScript exporter has no rule for it before opset
    23's RMSNormalization): x / sqrt(mean(x^2 over the normalised dims) + eps) * weight."""
    from torch.onnx import symbolic_helper as sh

    dims = sh._get_const(normalized_shape, "is", "normalized_shape")
    eps_value = sh._maybe_get_const(eps, "f")
    if eps_value is None or sh._is_none(eps):
        eps_value = torch.finfo(torch.float32).eps
    axes = g.op("Constant", value_t=torch.tensor(list(range(-len(dims), 0)), dtype=torch.int64))
    mean = g.op("ReduceMean", g.op("Mul", x, x), axes, keepdims_i=1)
    rms = g.op("Sqrt", g.op("Add", mean, g.op("Constant", value_t=torch.tensor(float(eps_value)))))
    y = g.op("Div", x, rms)
    return y if sh._is_none(weight) else g.op("Mul", y, weight)


def prepare_export(net: PressNet, out_dir: str | Path, recalibration: Recalibration | None
                   ) -> tuple[PressNet, Path, Recalibration]:
    """(a float32 CPU copy of the network set up for tracing, the output folder made, the
    recalibration checked against the exits), after checking that onnx is installed: what every
    export starts with. The copy's scans run `fixed_depth_scan`, its analysis taps are slices."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise PressError("export needs the onnx package: pip install 'press-sep[export]'") from None
    recalibration = recalibration or Recalibration()
    recalibration.check_exits(net.cfg.n_exits)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(net).cpu().float().eval()
    for m in model.modules():
        if isinstance(m, Scan):
            m.export_steps = SCAN_STEPS
        if isinstance(m, EncoderHead):
            m.taps_by_slicing = True
    torch.onnx.register_custom_op_symbolic("aten::rms_norm", _rms_norm_symbolic, OPSET)
    return model, out, recalibration


def export_onnx(net: PressNet, out_dir: str | Path, name: str = "model",
                recalibration: Recalibration | None = None, quantize: str | None = None,
                segment: float | None = None, context: float | None = None,
                budget: BudgetCalibration | None = None, operating_point: OperatingPoint | None = None) -> Path:
    """Write one graph per exit and the manifest into out_dir; returns the manifest's path.

    operating_point: the target, confidence, segment and context the model runs at when its user
    names none (its card's; default the generic 20 dB, 0.9, 2 s, 0.25 s), kept in the manifest.
    segment, context: the manifest's cut (seconds); default the operating point's.
    budget: the model's budget calibration measured with a Separator cut at `segment`/`context`
    (press.api.Press.budget_calibration), written to budget_calibration.json for the runtime's
    budget mode; None: the export has no budget mode."""
    if net.cfg.causal:
        # the running level runs the scan operator, which the exporter does not convert, and the
        # graphs pass a level per window (B,) from exit to exit, not the level per frame (B, T)
        raise PressError("a causal model has no ONNX export yet; run it with the torch backend")
    if quantize not in (None, "int8"):
        raise PressError(f"unknown quantisation {quantize!r}: the only one is int8")
    import onnx

    cfg = net.cfg
    operating_point = operating_point or OperatingPoint()
    segment, context, whole = operating_point.cut(segment, context)
    model, out, recalibration = prepare_export(net, out_dir, recalibration)
    pad_multiple = math.lcm(cfg.block, cfg.patch * cfg.scan_chunk)
    S, D = cfg.n_src, cfg.dim
    # example inputs: two windows of two pad multiples (shapes are dynamic in the graph)
    L = 2 * pad_multiple
    mixture = torch.randn(2, L) * 0.1
    lengths = torch.tensor([L, L - cfg.block // 2], dtype=torch.int64)
    scale = torch.tensor([0.1, 0.1])
    sums_in = ["alpha_sum", "beta_sum"] if cfg.cumulative else []
    state_out = ["h", "basis", "wave", "mask"]
    dyn = {"mixture": {0: "batch", 1: "samples"}, "lengths": {0: "batch"}, "scale": {0: "batch"},
           "estimate": {0: "batch", 2: "samples"}, "alpha": {0: "batch", 2: "blocks"},
           "beta": {0: "batch", 2: "blocks"}, "h": {0: "batch", 2: "frames"},
           "basis": {0: "batch", 1: "samples"}, "wave": {0: "batch", 1: "samples"},
           "mask": {0: "batch", 2: "frames"}, "alpha_sum": {0: "batch", 2: "blocks"},
           "beta_sum": {0: "batch", 2: "blocks"}}
    graphs = []
    with torch.no_grad(), kernels.disabled():   # the graph holds ONNX operators, not PRESS's compiled kernels
        state = _First(model)(mixture, lengths, scale)
        for k in range(1, cfg.n_exits + 1):
            path = out / f"exit_{k}.onnx"
            if k == 1:
                module, args = _First(model), (mixture, lengths, scale)
                inputs = ["mixture", "lengths", "scale"]
                outputs = ["estimate", "alpha", "beta", *state_out, *sums_in]
            else:
                module = _Next(model, k - 1)
                sums = tuple(state[-2:]) if cfg.cumulative else ()
                args = (state[3], state[4], state[5], state[6], scale, *sums)
                inputs = ["h", "basis", "wave", "mask", "scale", *sums_in]
                outputs = ["estimate", "alpha", "beta", "h", *sums_in]
            out_names = [n if n not in inputs else n for n in outputs]
            dynamic = {n: dyn[n] for n in (*inputs, *out_names)}
            # an output named like an input is a different tensor: ONNX needs distinct names
            out_names = [f"{n}_out" if n in inputs else n for n in outputs]
            dynamic = {**{n: dyn[n] for n in inputs}, **{o: dyn[n] for o, n in zip(out_names, outputs)}}
            torch.onnx.export(module, args, str(path), dynamo=False, opset_version=OPSET,
                              input_names=inputs, output_names=out_names, dynamic_axes=dynamic)
            if k > 1:
                h, *sums = _Next(model, k - 1)(*args)[3:]
                state = (*state[:3], h, *state[4:7], *sums)
            onnx.checker.check_model(onnx.load(str(path)), full_check=True)
            if quantize == "int8":
                path = _quantize(path)
            graphs.append({"exit": k, "file": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size,
                           "inputs": inputs, "outputs": out_names})
    costs = exit_costs(net)
    manifest = {
        "format": FORMAT, "version": FORMAT_VERSION, "model": name, "opset": OPSET,
        "quantize": quantize, "sample_rate": cfg.sample_rate, "n_src": S, "n_exits": cfg.n_exits,
        "sources": None if cfg.sources is None else list(cfg.sources),
        "dim": D, "block": cfg.block, "patch": cfg.patch, "scan_chunk": cfg.scan_chunk,
        "cumulative": cfg.cumulative, "pad_multiple": pad_multiple,
        "max_window_samples": cfg.patch * cfg.scan_chunk * 2 ** SCAN_STEPS,
        "segment": segment, "context": context,
        "gmacs_per_second": [c.gmacs_per_second for c in costs],
        "recalibration": recalibration.to_dict(),
        "operating_point": operating_point.to_dict(),
        "graphs": graphs,
        "budget_calibration": _write_budget(out, budget, costs, cfg, segment, context, whole),
    }
    path = out / MANIFEST
    path.write_text(json.dumps(manifest, indent=1))
    return path


def _write_budget(out: Path, budget: BudgetCalibration | None, costs, cfg, segment: float,
                  context: float, whole: float) -> dict | None:
    """budget_calibration.json: per calibration segment and exit, the expected quality (dB) that
    the budget threshold is chosen on, and the exits' GMAC/s; its manifest entry (sha256)."""
    path = out / BUDGET
    if budget is None:
        path.unlink(missing_ok=True)
        return None
    gmacs = [float(g) for g in budget.gmacs]
    if len(gmacs) != cfg.n_exits or not all(math.isclose(g, c.gmacs_per_second) for g, c in zip(gmacs, costs)):
        raise PressError("the budget calibration was measured on another model (its exits' GMAC/s differ)")
    cut = Cut.from_seconds(segment, context, cfg.sample_rate, cfg.block, whole)   # as the runtime cuts
    quality = [[float(q) for q in row] for row in budget.quality]
    path.write_text(json.dumps({"segment_samples": cut.segment, "context_samples": cut.context,
                                "whole_samples": cut.whole, "gmacs_per_second": gmacs, "quality": quality}))
    return {"file": BUDGET, "sha256": sha256_file(path), "segment_samples": cut.segment,
            "context_samples": cut.context, "n_segments": len(quality)}


def _quantize(path: Path) -> Path:
    """Dynamic int8 quantisation of the graph's weights (onnxruntime); returns the new file."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        raise PressError("--quantize int8 needs onnxruntime: pip install 'press-sep[export]'") from None
    q = path.with_name(path.stem + ".int8.onnx")
    quantize_dynamic(str(path), str(q), weight_type=QuantType.QInt8)
    path.unlink()
    return q
