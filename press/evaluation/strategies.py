"""Exit strategies compared on the same segments (docs/evaluation.md): which exit does each segment take?

Every strategy here is a pure function from per-exit, per-segment evidence to one 1-based exit
per segment; a segment that never meets a strategy's condition takes the last exit (as in
`press.inference`). Evidence arrays are indexed (exit, segment, ...):

- dynamic: PRESS's rule on predicted probabilities, first exit where P(exit-SNR ≥ t) ≥ p holds
  for the segment's blocks (all of them by default), exactly `press.inference.Dynamic`;
- static: one fixed exit;
- oracle: the earliest exit whose *true* exit-SNR (from the references) meets t on every block
  and speaker of the segment: what a perfect predictor would do, the floor of compute for t;
- uniform: an exit drawn uniformly at random per segment from a seeded generator;
- output change: the heuristic before PRESS, leave when ‖x̂_k − x̂_{k−1}‖/‖x̂_k‖ over the
  segment's core drops below a threshold, measured by `press.engine.policies.output_change`,
  exactly `press.inference.OutputChange`.

`regret` is the one-sided exit-SNR regret at the exits taken.
"""

from __future__ import annotations

import numpy as np
import torch

from press.engine.policies import output_change
from press.engine.rule import segment_decision
from press.errors import PressError
from press.prob.exits import exit_snr_regret


def first_passing(passes: np.ndarray) -> np.ndarray:
    """(K, n_seg) bool -> (n_seg,) 1-based index of the first True per segment, K if none."""
    passes = np.asarray(passes, dtype=bool).copy()
    passes[-1] = True  # the last exit always lets a segment leave
    return passes.argmax(0) + 1


def static_exits(n_segments: int, exit: int, n_exits: int) -> np.ndarray:
    """Every segment at `exit`."""
    if not 1 <= exit <= n_exits:
        raise PressError(f"exit must be between 1 and {n_exits}, got {exit}")
    return np.full(n_segments, exit, dtype=np.int64)


def dynamic_exits(block_probability: np.ndarray, valid: np.ndarray, confidence: float,
                  quantile: float = 1.0) -> np.ndarray:
    """block_probability (K, n_seg, n_core): min over speakers of P(exit-SNR ≥ t) per core block;
    valid (n_seg, n_core). First exit where a `quantile` of valid blocks reach `confidence`."""
    return first_passing(segment_decision(np.asarray(block_probability) >= confidence,
                                          np.asarray(valid)[None], quantile))


def oracle_exits(exit_snr: np.ndarray, valid: np.ndarray, target_db: float) -> np.ndarray:
    """exit_snr (K, n_seg, S, n_core): true exit-SNR (dB); valid (n_seg, n_core).
    Earliest exit where every valid block of every speaker reaches target_db."""
    met = (exit_snr >= target_db).all(2) | ~np.asarray(valid, dtype=bool)[None]
    return first_passing(met.all(-1))


def uniform_exits(n_segments: int, n_exits: int, seed: int = 0) -> np.ndarray:
    """An exit drawn uniformly from 1..K per segment; the same seed gives the same exits."""
    return np.random.default_rng(seed).integers(1, n_exits + 1, size=n_segments)


def output_change_exits(estimates: np.ndarray, core: slice, threshold: float) -> np.ndarray:
    """estimates (K, n_seg, S, W); core: the segment's samples within the window.
    First exit k ≥ 2 whose relative change from exit k−1 over the core is below `threshold`
    (exit 1 has nothing to compare with, so it is never chosen unless K = 1). The change is
    `press.engine.policies.output_change`, the measure `OutputChange` uses at run time."""
    est = np.asarray(estimates)
    change = output_change(est[1:], est[:-1], core)                # (K-1, n_seg)
    passes = np.concatenate([np.zeros((1, estimates.shape[1]), bool), change < threshold])
    return first_passing(passes)


def taken(per_exit: np.ndarray, exits: np.ndarray) -> np.ndarray:
    """per_exit (K, n_seg, ...) -> (n_seg, ...): each segment's entry at its exit (1-based)."""
    return per_exit[np.asarray(exits) - 1, np.arange(per_exit.shape[1])]


def regret(exit_snr: np.ndarray, valid: np.ndarray, exits: np.ndarray, target_db: float) -> tuple[float, int]:
    """(sum of max(0, t − s), number of block-speaker terms) over valid core blocks at the exits
    taken: sums, so that callers pool utterances into one mean over all blocks and speakers."""
    s = torch.as_tensor(taken(exit_snr, exits))                     # (n_seg, S, n_core)
    mask = torch.as_tensor(np.asarray(valid, bool))[:, None].expand_as(s)
    if not bool(mask.any()):
        return 0.0, 0
    return float(exit_snr_regret(s, target_db, mask)) * int(mask.sum()), int(mask.sum())
