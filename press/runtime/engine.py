"""Loading an exported model and running it segment by segment with early exits, without torch.

The loop is press.inference.Separator's (see its module docstring), written against numpy arrays
and onnxruntime sessions. The segment plan, window levels and padding note are
press.inference.plan's and the budget threshold press.inference.thresholds' (torch-free modules);
the stitcher is a numpy copy of press.inference.stitch, whose speaker permutation is torch's.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from press.errors import PressError
from press.inference.plan import SegmentPlan, padding_note
from press.io.files import sha256_file
from press.io.streaming import ArrayReader, Reader
from press.runtime import budget as budget_mode
from press.runtime.rule import exit_probabilities, expected_block_snr_db, segment_decision, segment_quality

FORMAT = "press-onnx"   # as written by press.export.onnx
FORMAT_VERSION = 1


# --------------------------------------------------------------------------- segment plan, stitching


def best_permutation(cost: np.ndarray) -> np.ndarray:
    """perm (S,) minimising sum_j cost[j, perm[j]] (press.prob.permutation for one item)."""
    S = cost.shape[0]
    if S <= 4:
        perms = np.array(list(itertools.permutations(range(S))))
        return perms[cost[np.arange(S), perms].sum(-1).argmin()]
    from scipy.optimize import linear_sum_assignment

    return linear_sum_assignment(cost)[1]


class Stitcher:
    """press.inference.stitch.Stitcher in numpy: align speakers on the overlap, raised-cosine fade."""

    def __init__(self, plan: SegmentPlan, sink: Callable[[int, np.ndarray], None], align: bool = True) -> None:
        self.plan, self._sink, self.align = plan, sink, align
        c = plan.context
        self.fade = (0.5 - 0.5 * np.cos(np.pi * (np.arange(2 * c) + 0.5) / (2 * c))).astype(np.float32)
        self.tail: np.ndarray | None = None

    def sink(self, start: int, x: np.ndarray) -> None:
        lo, hi = max(start, 0), min(start + x.shape[1], self.plan.n_samples)
        if hi > lo:
            self._sink(lo, x[:, lo - start:hi - start])

    def push(self, i: int, window: np.ndarray) -> None:
        plan, c = self.plan, self.plan.context
        start, end = plan.core(i)
        if self.tail is not None and c > 0:
            if self.align:
                head = window[:, :2 * c]
                diff = ((head[:, None, :] - self.tail[None, :, :]) ** 2).sum(-1)   # (S cur, S prev)
                window = window[best_permutation(diff.T)]
            self.sink(start - c, (1 - self.fade) * self.tail + self.fade * window[:, :2 * c])
            emit_from = 2 * c
        else:
            emit_from = c
        last = i == len(plan) - 1
        emit_to = c + (end - start) if last else end - start
        if emit_to > emit_from:
            self.sink(start + emit_from - c, window[:, emit_from:emit_to])
        if not last:
            self.tail = window[:, end - start: end - start + 2 * c]


# --------------------------------------------------------------------------- the model

@dataclass
class RuntimeResult:
    sources: np.ndarray | None          # (S, N) at the model's rate (None when given a sink)
    sample_rate: int
    exits: list[int]                    # exit taken per segment
    segments: list[dict]                # index, start, end (samples), exit, macs
    gmacs_per_second: float
    last_exit_gmacs_per_second: float
    seconds: float
    blocks: list[dict] = field(default_factory=list)   # press.inference.results.BlockReport's fields
    padding_share: float = 0.0          # share of the samples the network ran that were not input
    threshold_db: float | None = None   # budget mode: the threshold on the expected exit-SNR

    @property
    def note(self) -> str | None:
        """press.inference.results.SeparationResult.note: a warning when padding dominates."""
        return padding_note(self.padding_share, self.seconds)

    @property
    def saving(self) -> float:
        return 1.0 - self.gmacs_per_second / self.last_exit_gmacs_per_second

    def exit_histogram(self, n_exits: int) -> list[int]:
        return [self.exits.count(k) for k in range(1, n_exits + 1)]


@dataclass
class OnnxModel:
    """An exported model: its manifest and one onnxruntime session per exit step."""

    manifest: dict
    sessions: list = field(repr=False)
    budget_calibration: dict | None = field(default=None, repr=False)   # budget_calibration.json

    @property
    def sample_rate(self) -> int:
        return self.manifest["sample_rate"]

    @property
    def n_src(self) -> int:
        return self.manifest["n_src"]

    @property
    def n_exits(self) -> int:
        return self.manifest["n_exits"]

    def _scales(self, k: int) -> tuple[float, float]:
        a, b = self.manifest["recalibration"]["alpha_scale"], self.manifest["recalibration"]["beta_scale"]
        return (a[k - 1], b[k - 1]) if isinstance(a, list) else (a, b)

    def first(self, mixture: np.ndarray, lengths: np.ndarray, scale: np.ndarray) -> tuple[list, dict]:
        """Exit 1 of windows (N, W), W a multiple of the block: ([estimate, alpha, beta], state)."""
        W, mult = mixture.shape[1], self.manifest["pad_multiple"]
        Wp = -(-W // mult) * mult
        if Wp > self.manifest["max_window_samples"]:
            raise PressError(f"a window of {W} samples is longer than the exported graphs take "
                             f"({self.manifest['max_window_samples']}); use a shorter segment")
        x = np.zeros((mixture.shape[0], Wp), dtype=np.float32)
        x[:, :W] = mixture
        out = self.sessions[0].run(None, {"mixture": x, "lengths": lengths.astype(np.int64),
                                          "scale": scale.astype(np.float32)})
        names = self.manifest["graphs"][0]["outputs"]
        state = {n: v for n, v in zip(names[3:], out[3:])}
        state["scale"] = scale.astype(np.float32)
        state["_length"] = W
        return self._crop(out[:3], W), state

    def advance(self, k: int, state: dict) -> tuple[list, dict]:
        """Exit k (2..K) from the state at exit k - 1: ([estimate, alpha, beta], new state)."""
        graph = self.manifest["graphs"][k - 1]
        out = self.sessions[k - 1].run(None, {n: state[n] for n in graph["inputs"]})
        new = dict(state)
        for name, value in zip(graph["outputs"][3:], out[3:]):
            new[name.removesuffix("_out")] = value
        return self._crop(out[:3], state["_length"]), new

    def _crop(self, out: list, W: int) -> list:
        nb = W // self.manifest["block"]
        return [out[0][..., :W], out[1][..., :nb], out[2][..., :nb]]

    @staticmethod
    def _select(state: dict, idx: np.ndarray) -> dict:
        return {n: (v if n == "_length" else v[idx]) for n, v in state.items()}

    def run_exits(self, mixture: np.ndarray, lengths: np.ndarray, scale: np.ndarray) -> list[list[np.ndarray]]:
        """Every exit's [estimate, alpha, beta] (recalibration not applied) for windows (N, W)."""
        outs, state = self.first(mixture, lengths, scale)
        result = [outs]
        for k in range(2, self.n_exits + 1):
            outs, state = self.advance(k, state)
            result.append(outs)
        return result

    def separate(self, audio: np.ndarray | Reader, target_db: float = 20.0, confidence: float = 0.9,
                 exit: int | None = None, quantile: float = 1.0, segment: float | None = None,
                 context: float | None = None, batch_size: int = 8, utterance: bool = False,
                 sink: Callable[[int, np.ndarray], None] | None = None,
                 budget: float | None = None) -> RuntimeResult:
        """Separate a mono signal at the model's rate (an array or a press.io Reader).

        budget=G: a segment leaves at the first exit whose expected exit-SNR reaches the threshold
        that the export's budget calibration gives for G GMAC/s on this input (press.runtime.budget),
        as `press.load(...).separate(x, budget=G)` does."""
        m = self.manifest
        sr, block, S, K = m["sample_rate"], m["block"], m["n_src"], m["n_exits"]
        reader = ArrayReader(audio) if isinstance(audio, np.ndarray) else audio
        if exit is not None and not 1 <= exit <= K:
            raise PressError(f"exit must be between 1 and {K} for this model, got {exit}")
        if not 0.0 <= confidence <= 1.0:
            raise PressError(f"confidence must be a probability in [0, 1], got {confidence}")
        if exit is not None and budget is not None:
            raise PressError("choose one of exit= (a fixed exit) and budget= (a GMAC/s budget), not both")
        seg = max(1, round((m["segment"] if segment is None else segment) * sr / block)) * block
        ctx = max(0, round((m["context"] if context is None else context) * sr / block)) * block
        if 2 * ctx > seg:
            raise PressError("context must be at most half the segment length")
        if ctx == 0:
            raise PressError(f"context must be at least one likelihood block ({block / sr:g} s)")
        n = reader.n_samples
        if n == 0:
            raise PressError("the input holds no samples")
        if utterance or n <= seg + 2 * ctx:
            plan = SegmentPlan(n, max(1, -(-n // block)) * block, 0)
        else:
            plan = SegmentPlan(n, seg, ctx)
        threshold = None
        if budget is not None:
            cal = self.budget_calibration
            if cal is None:
                raise PressError("this export has no budget calibration (exported with --no-budget); "
                                 "export again without it to use --budget")
            if (cal["segment_samples"], cal["context_samples"]) != (seg, ctx):
                raise PressError(f"the budget calibration was measured with {cal['segment_samples'] / sr:g} s "
                                 f"segments and {cal['context_samples'] / sr:g} s context; --budget needs those")
            threshold = budget_mode.threshold(cal, budget, plan)
        p_ref = reader.mean_power()
        out = None
        if sink is None:
            out = np.zeros((S, n), dtype=np.float32)

            def sink(start: int, x: np.ndarray) -> None:
                out[:, start:start + x.shape[1]] = x

        stitcher = Stitcher(plan, sink, align=self.manifest.get("sources") is None)
        nb_core = plan.segment // block
        core = slice(plan.context // block, plan.context // block + nb_core)
        gmacs = m["gmacs_per_second"]
        segments: list[dict] = []
        blocks: list[dict] = []
        for first in range(0, len(plan), batch_size):
            idx = list(range(first, min(first + batch_size, len(plan))))
            win = plan.read(reader, idx)
            audio_w, lengths, levels = win.audio, win.lengths.astype(np.int64), win.levels
            valid = np.stack([plan.core(i)[0] + np.arange(nb_core) * block < plan.core(i)[1] for i in idx])
            results = self._run_batch(audio_w, lengths, levels, valid, core, p_ref, target_db,
                                      confidence, exit, quantile, threshold)
            for j, i in enumerate(idx):
                k, est, probs = results[j]
                start, end = plan.core(i)
                segments.append({"index": i, "start": start, "end": end, "exit": k,
                                 "macs": gmacs[k - 1] * 1e9 * plan.window / sr})
                blocks.extend(_block_reports(i, start, end, k, probs, core, len(blocks), block, sr))
                stitcher.push(i, est)
        seconds = -(-n // block) * block / sr
        total = sum(s["macs"] for s in segments)
        last = gmacs[-1] * 1e9 * plan.window * len(plan) / sr
        return RuntimeResult(out, sr, [s["exit"] for s in segments], segments, total / seconds / 1e9,
                             last / seconds / 1e9, n / sr, blocks, 1.0 - n / (plan.window * len(plan)),
                             threshold)

    def _run_batch(self, windows, lengths, levels, valid, core, p_ref, target_db, confidence, exit, quantile,
                   threshold=None):
        K, block = self.n_exits, self.manifest["block"]
        results: list = [None] * len(windows)
        active = np.arange(len(windows))
        state = None
        for k in range(1, K + 1):
            if k == 1:
                (est, alpha, beta), state = self.first(windows, lengths, levels)
            else:
                (est, alpha, beta), state = self.advance(k, state)
            a_scale, b_scale = self._scales(k)
            alpha, beta = alpha * np.float32(a_scale), beta * np.float32(b_scale)
            # the report's probabilities at every exit, as press.inference.Separator computes them
            probs = exit_probabilities(est, windows[active], alpha, beta, target_db, confidence, block,
                                       p_ref, lengths[active])
            if k == K:
                leave = np.ones(len(active), dtype=bool)
            elif exit is not None:
                leave = np.full(len(active), k >= exit)
            elif threshold is not None:      # press.inference.policies.Budget
                expected = expected_block_snr_db(est, windows[active], alpha, beta, block, p_ref, lengths[active])
                leave = segment_quality(expected, core, valid[active]) >= threshold
            else:
                leave = segment_decision(probs["decision"][:, core], valid[active], quantile)
            for j in np.flatnonzero(leave):
                results[active[j]] = (k, est[j], {n: probs[n][j] for n in ("snr", "snri", "snr_ref", "block")})
            stay = np.flatnonzero(~leave)
            if len(stay) == 0:
                break
            active, state = active[stay], self._select(state, stay)
        return results


def _block_reports(seg: int, start: int, end: int, k: int, probs: dict, core: slice, offset: int,
                   block: int, sr: int) -> list[dict]:
    """press.inference.runner.Separator._block_reports: one dict per block of a segment's core."""
    out = []
    for b in range(-(-(end - start) // block)):
        col, lo = core.start + b, start + b * block
        out.append({"index": offset + b, "start": lo / sr, "end": min(lo + block, end) / sr, "segment": seg,
                    "exit": k, "p_snr": probs["snr"][:, col].tolist(), "p_snri": probs["snri"][:, col].tolist(),
                    "p_snr_ref": probs["snr_ref"][:, col].tolist(), "p_exit": float(probs["block"][col])})
    return out


def load(manifest: str | Path, threads: int | None = None, check_hashes: bool = True) -> OnnxModel:
    """An exported model from its manifest.json; every graph's sha256 is checked against it."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise PressError("the ONNX backend needs onnxruntime: pip install 'press-sep[export]'") from None
    path = Path(manifest)
    if path.is_dir():
        path = path / "manifest.json"
    if not path.is_file():
        raise PressError(f"{path}: no such manifest (press export MODEL OUT_DIR writes OUT_DIR/manifest.json)")
    try:
        m = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PressError(f"{path}: not a PRESS export manifest ({err})") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise PressError(f"{path}: not a PRESS export manifest (no format {FORMAT!r})")
    if m.get("version") != FORMAT_VERSION:
        raise PressError(f"{path}: export format version {m.get('version')} is not {FORMAT_VERSION}; re-export")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    sessions = []

    def verified(entry: dict, what: str) -> Path:
        """The file a manifest entry names, present and (unless told not to check) unchanged."""
        file = path.parent / entry["file"]
        if not file.is_file():
            raise PressError(f"{file}: {what} named in the manifest is missing")
        if check_hashes and sha256_file(file) != entry["sha256"]:
            raise PressError(f"{file}: sha256 does not match the manifest: the {what} was changed or "
                             "damaged after export; export again")
        return file

    for g in m["graphs"]:
        sessions.append(ort.InferenceSession(str(verified(g, "graph")), options,
                                             providers=["CPUExecutionProvider"]))
    calibration = None
    if m.get("budget_calibration"):
        calibration = json.loads(verified(m["budget_calibration"], "budget calibration").read_text())
    return OnnxModel(m, sessions, calibration)
