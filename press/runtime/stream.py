"""A causal model's streaming export run with onnxruntime alone, block by block, with exits per block.

`press export` of a causal model (press.export.onnx_stream) writes one graph per exit step of one
likelihood block: `stream_1` runs the front and exit 1 on the block's samples, `stream_k` runs exit k
on what exit k - 1 left, and each takes and returns the state its layers carry from block to block.
`OnnxStream` is the loop around them, the runtime's counterpart of press.model.stream_exits.BlockStream:
a block runs exit after exit until the exit rule (press.engine.stream_rule.StreamRule, with the
manifest's recalibration) lets it leave, and the groups it skipped catch up the same three ways:

  lazy   keep each skipped block's residual stream (and its basis, samples and level); before a
         deeper block runs exit k's graph, run it over the blocks that exit skipped. Exact: every
         block's output is the whole-file forward's at the exit it took. At most `backlog` blocks
         are kept; beyond it the oldest leaves and the exits that skipped it restart after it.
  reset  keep nothing: an exit that skipped blocks restarts from its initial state.
  hold   keep nothing: an exit carries on from its state after the last block it ran.

The graphs run whole blocks: catching an exit up runs its whole graph (decoder and inverse-gamma
heads too) on each skipped block, and `macs` counts exactly the graphs run. A stream's last, partial
block runs zero-padded to a whole block; its samples past the input are dropped, and its (alpha,
beta) cover the padded block (the torch stream pools the partial block's frames alone).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from press.engine.backend import exit_scales
from press.engine.block_runner import BUDGET_NEEDS_SEGMENTS, BlockRunner
from press.engine.model import SeparationModel
from press.engine.operating_point import OperatingPoint
from press.engine.plan import SegmentPlan
from press.engine.stream_rule import StreamRule
from press.errors import PressError
from press.runtime.model import check_file_entry, is_int, is_number, manifest_checks

FORMAT = "press-onnx-stream"   # as written by press.export.onnx_stream
FORMAT_VERSION = 1
CATCH_UP = ("lazy", "reset", "hold")
BACKLOG = 16
Decide = Callable[[int, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray], Any]


@dataclass(frozen=True)
class BlockOutput:
    """One likelihood block of B streams at the exit it left by, in input units."""

    exit: int               # 1-based
    start: int              # the stream's sample index of estimate[..., 0]
    first_block: int        # the block's index
    estimate: np.ndarray    # (B, S, n) the block's n samples of every source
    alpha: np.ndarray       # (B, S, 1) inverse-gamma shape
    beta: np.ndarray        # (B, S, 1) inverse-gamma scale, squared input units (recalibration not applied)


@dataclass(frozen=True)
class _Skipped:
    """A block that left before the last exit, kept for the exits it skipped (lazy)."""

    block: int
    depth: int                 # exits that have run on it
    inputs: dict[str, np.ndarray]   # h after them, and the block's basis, wave, scale, power [, sums]


class OnnxStreamModel(SeparationModel):
    """A streaming export: its manifest and one onnxruntime session per exit's graph. Live input goes
    through `stream`; a file (`separate_file`, `run`) through press.engine.block_runner, as one stream
    with exits per block, as torch runs a causal model's file."""

    backend_name = "onnx"

    def __init__(self, manifest: dict, sessions: list) -> None:
        m = self.manifest = manifest
        self.sessions = sessions
        self.name, self.sample_rate, self.block = m["model"], m["sample_rate"], m["block"]
        self.n_src, self.n_exits, self.gmacs = m["n_src"], m["n_exits"], m["gmacs_per_second"]
        self.source_names = m.get("sources") or [f"s{j + 1}" for j in range(self.n_src)]
        self.operating_point = OperatingPoint.from_dict(m.get("operating_point"))
        self.scales = exit_scales(m["recalibration"], self.n_exits)

    @property
    def latency(self) -> float:
        """Seconds from a sample's arrival to its output, computation aside: a block waits for its
        last sample (the look-ahead lies inside it)."""
        return (self.block - 1) / self.sample_rate

    def stream(self, target_db: float | None = None, confidence: float | None = None, exit: int | None = None,
               catch_up: str = "lazy", backlog: int = BACKLOG, batch: int = 1) -> OnnxStream:
        """B streams at a fixed `exit`, or at the first exit where P(exit-SNR >= target_db) >=
        confidence per block (defaults: the model's operating point)."""
        if exit is not None:
            if not 1 <= exit <= self.n_exits:
                raise PressError(f"{self.name} has exits 1..{self.n_exits}, not {exit}")
            return OnnxStream(self, lambda block, k, *signals: k >= exit, "hold", 0, batch)
        t, p = self.operating_point.resolve(target_db, confidence)
        return OnnxStream(self, StreamRule(t, p, self.scales), catch_up, backlog, batch)

    # ------------------------------------------------------------------ files (press.engine.model)

    def separator(self, target_db: float = 20.0, confidence: float = 0.9, segment: float | None = None,
                  context: float | None = None, batch_size: int = 8) -> BlockRunner:
        """A file as one stream (the graphs run one block per call: there are no segments to cut)."""
        if segment is not None or context is not None:
            raise PressError("a streaming export runs a file as one stream, block by block: it takes no "
                             "segment or context")
        return BlockRunner(self, self.scales, target_db, confidence)

    def budget_threshold(self, separator: BlockRunner, gmacs_per_second: float, plan: SegmentPlan) -> float:
        raise PressError(BUDGET_NEEDS_SEGMENTS)

    def open(self, decide: Decide) -> OnnxStream:
        """One stream with lazy catch-up (exact) deciding by `decide` (press.engine.block_runner)."""
        return OnnxStream(self, decide, "lazy")

    def last_exit_macs(self, n_samples: int) -> float:
        """Every block through every exit's graph."""
        return float(-(-n_samples // self.block) * sum(self.manifest["macs_per_block"]))


class OnnxStream:
    """B streams through a streaming export, the exit chosen per block by `decide` (the protocol of
    press.model.stream_exits.Decide), skipped exits caught up by `catch_up` (see the module's
    docstring). `push` chunks of any length, then `end`: each returns the blocks that left."""

    def __init__(self, model: OnnxStreamModel, decide: Decide, catch_up: str = "lazy", backlog: int = BACKLOG,
                 batch: int = 1) -> None:
        if catch_up not in CATCH_UP:
            raise PressError(f"catch_up must be one of {', '.join(CATCH_UP)}, got {catch_up!r}")
        if backlog < 0:
            raise PressError(f"backlog must be >= 0 blocks, got {backlog}")
        self.model, self.decide, self.catch_up, self.batch = model, decide, catch_up, batch
        self.limit = 0 if catch_up == "reset" else backlog
        m = model.manifest
        self.graphs = m["graphs"]
        self.states = {n: self._initial(n) for n in m["states"]}
        self.ran = [0] * model.n_exits          # per exit: the block its state stands before
        self.backlog: deque[_Skipped] = deque()
        self.pending = np.zeros((batch, 0), np.float32)
        self.blocks = self.samples = 0
        self.graph_runs = [0] * model.n_exits    # blocks each graph ran on, catch-up included
        self.catch_up_runs = [0] * model.n_exits

    def push(self, chunk: np.ndarray) -> list[BlockOutput]:
        """The next samples of every stream (B, N), or (N,) for one stream: the blocks they complete."""
        chunk = np.asarray(chunk, dtype=np.float32).reshape(self.batch, -1)
        x = np.concatenate([self.pending, chunk], axis=1)
        self.samples += chunk.shape[1]
        n = x.shape[1] // self.model.block
        done = [self._block(x[:, k * self.model.block:(k + 1) * self.model.block], self.model.block)
                for k in range(n)]
        self.pending = x[:, n * self.model.block:]
        return done

    def end(self) -> list[BlockOutput]:
        """The last, partial block, zero-padded to a whole one; its samples past the input dropped."""
        r = self.pending.shape[1]
        if not r:
            return []
        x = np.zeros((self.batch, self.model.block), np.float32)
        x[:, :r] = self.pending
        self.pending = self.pending[:, :0]
        return [self._block(x, r)]

    def macs(self) -> tuple[int, int]:
        """(every MAC the graphs ran, the catch-up's part of them), for all B streams."""
        per_block = self.model.manifest["macs_per_block"]
        total = sum(n * c for n, c in zip(self.graph_runs, per_block))
        return self.batch * total, self.batch * sum(n * c for n, c in zip(self.catch_up_runs, per_block))

    # ------------------------------------------------------------------ the graphs

    def _initial(self, name: str) -> np.ndarray:
        spec = self.model.manifest["states"][name]
        return np.zeros((self.batch * spec["rows"], *spec["shape"]), np.float32)

    def _run(self, k: int, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Graph k (0-based) on the block in `feeds` and the state of its layers; the new state kept."""
        graph = self.graphs[k]
        values = {**self.states, **feeds}
        out = dict(zip(graph["outputs"], self.model.sessions[k].run(None, {n: values[n] for n in graph["inputs"]})))
        for name in graph["inputs"]:
            if name in self.states:
                self.states[name] = out[f"{name}_out"]
        self.graph_runs[k] += 1
        return out

    def _block(self, x: np.ndarray, keep: int) -> BlockOutput:
        """One block x (B, block) through exit after exit until `decide` lets it leave."""
        K, b = self.model.n_exits, self.blocks
        cumulative = self.model.manifest["cumulative"]
        out = self._run(0, {"chunk": x})
        carried = {n: out[n] for n in ("basis", "wave", "scale", "power")}
        h, sums = out["h"], {}
        for k in range(K):
            if k:
                self._catch_up(k, b)
                out = self._run(k, {"h": h, **carried, **sums})
            h = out["h" if k == 0 else "h_out"]
            sums = {n: out[n if k == 0 else f"{n}_out"] for n in ("alpha_sum", "beta_sum")} if cumulative else {}
            self.ran[k] = b + 1
            estimate = out["estimate"][..., :keep]
            if k + 1 == K or np.all(self.decide(b, k + 1, estimate, x[:, :keep], out["alpha"], out["beta"])):
                break
        self._skip(k + 1, b, {"h": h, **carried, **sums})
        self.blocks += 1
        return BlockOutput(exit=k + 1, start=b * self.model.block, first_block=b, estimate=estimate,
                           alpha=out["alpha"], beta=out["beta"])

    def _catch_up(self, k: int, b: int) -> None:
        """Bring exit k's state (0-based) up to block b (lazy): run its graph on the blocks it skipped."""
        if self.ran[k] == b or self.catch_up == "hold":
            return
        raised = []
        for s in self.backlog:
            if s.depth == k:
                out = self._run(k, s.inputs)
                self.catch_up_runs[k] += 1
                sums = {n: out[f"{n}_out"] for n in ("alpha_sum", "beta_sum") if n in s.inputs}
                s = replace(s, depth=k + 1, inputs={**s.inputs, "h": out["h_out"], **sums})
            raised.append(s)
        self.ran[k] = b
        self.backlog = deque(s for s in raised if s.depth < self.model.n_exits)

    def _skip(self, depth: int, b: int, inputs: dict[str, np.ndarray]) -> None:
        """Keep a block that left after `depth` exits for the ones it skipped (lazy, reset), and no
        more than the limit: beyond it, the exits that skipped the oldest restart after it."""
        if depth == self.model.n_exits or self.catch_up == "hold":
            return
        self.backlog.append(_Skipped(block=b, depth=depth, inputs=inputs))
        while len(self.backlog) > self.limit:
            oldest = self.backlog.popleft()
            for k in range(oldest.depth, self.model.n_exits):   # the exits that skipped it
                graph = self.graphs[k]
                for name in graph["inputs"]:
                    if name in self.states:
                        self.states[name] = self._initial(name)
                self.ran[k] = oldest.block + 1


def check_manifest(m: dict, path: Path) -> None:
    """Refuse a streaming manifest that lacks a field the runtime reads, naming the field."""
    need, get = manifest_checks(m, path)
    need(isinstance(get("model"), str), "model", "the model's name", get("model"))
    for key in ("sample_rate", "n_src", "n_exits", "block", "patch"):
        need(is_int(get(key)) and get(key) > 0, key, "a positive whole number", get(key))
    K = m["n_exits"]
    for key in ("gmacs_per_second", "macs_per_block"):
        v = get(key)
        need(isinstance(v, list) and len(v) == K and all(is_number(g) and g > 0 for g in v), key,
             f"a list of {K} positive numbers", v)
    need(isinstance(get("cumulative"), bool), "cumulative", "true or false", get("cumulative"))
    states = get("states")
    need(isinstance(states, dict) and all(
        isinstance(s, dict) and is_int(s.get("rows")) and s["rows"] > 0 and isinstance(s.get("shape"), list)
        and all(is_int(d) and d >= 0 for d in s["shape"]) for s in states.values()),
        "states", "an object of {rows, shape} per state", states)
    exit_scales_ok = isinstance(get("recalibration"), dict)
    need(exit_scales_ok, "recalibration", "an object with alpha_scale and beta_scale", get("recalibration"))
    OperatingPoint.from_dict(m.get("operating_point"))
    graphs = get("graphs")
    need(isinstance(graphs, list) and len(graphs) == K, "graphs", f"a list of {K} graphs", graphs)
    for k, g in enumerate(graphs, start=1):
        need(isinstance(g, dict) and g.get("exit") == k, f"graphs[{k - 1}]", f"an object for exit {k}", g)
        check_file_entry(g, f"graphs[{k - 1}]", need)
