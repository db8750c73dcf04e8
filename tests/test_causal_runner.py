"""A causal model through the API and `press enhance` runs as one stream (press.engine.block_runner):
its output is the whole-file forward's, block by block at the exit each block took, and it never
restarts its state the way the segment runner does."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

import press
from press.engine.block_runner import BlockRunner
from press.engine.policies import OutputChange
from press.errors import PressError
from press.inference.runner import Separator
from press.io.streaming import ArrayReader

SR = 8000


def mixture(samples: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(samples) * 0.1
    x[samples // 3: samples // 2] *= 8.0          # a loud stretch: the level and exits change along the input
    return x.astype(np.float32)


def whole(model: press.Press, x: np.ndarray) -> list[np.ndarray]:
    """Every exit's sources from one whole-file forward: (S, N) each."""
    with torch.no_grad():
        return [o.estimate[0].numpy() for o in model.model(torch.from_numpy(x)[None])]


def assert_close(y: np.ndarray, reference: np.ndarray) -> None:
    np.testing.assert_allclose(y, reference, rtol=0, atol=1e-5 * np.abs(reference).max())


@pytest.mark.parametrize("exit", [1, 3])
def test_fixed_exit_is_the_whole_file_forward(causal_checkpoint, exit):
    model = press.load(str(causal_checkpoint))
    x = mixture(2 * SR + 3)                                    # not a whole number of blocks
    result = model.separate(x, exit=exit)
    assert_close(result.sources, whole(model, x)[exit - 1])
    report = result.report
    assert report["exit_histogram"] == [len(report["blocks"]) if k == exit else 0 for k in (1, 2, 3)]
    assert len(report["blocks"]) == -(-len(x) // model.model.cfg.block)
    if exit == 3:
        assert report["gmacs_per_second"] == pytest.approx(report["last_exit_gmacs_per_second"], rel=1e-9)
    else:
        assert report["gmacs_per_second"] < report["last_exit_gmacs_per_second"]


def test_each_block_is_the_whole_file_forward_at_the_exit_it_took(causal_checkpoint):
    model = press.load(str(causal_checkpoint))
    x = mixture(3 * SR)
    exits_by_target = {}
    for target in (-20.0, 10.0, 60.0):
        result = model.separate(x, target_db=target, confidence=0.5)
        forward = whole(model, x)
        blocks = result.report["blocks"]
        for b in blocks:
            lo, hi = round(b["start"] * SR), round(b["end"] * SR)
            assert_close(result.sources[:, lo:hi], forward[b["exit"] - 1][:, lo:hi])
        exits_by_target[target] = [b["exit"] for b in blocks]
        spent, last = result.report["gmacs_per_second"], result.report["last_exit_gmacs_per_second"]
        assert spent <= last * (1 + 1e-9)   # lazy catch-up never spends more than the last exit would
    assert set(exits_by_target[-20.0]) == {1}                 # every block sure of -20 dB at exit 1
    assert set(exits_by_target[60.0]) == {3}                  # none sure of 60 dB: all to the last exit


def test_the_stream_is_not_the_segment_runner(causal_checkpoint):
    """Asked for segments, a causal model runs in them (its state restarting at each); by default it
    runs as one stream, whose output differs from the segments' after the first segment."""
    model = press.load(str(causal_checkpoint))
    x = mixture(3 * SR)
    assert isinstance(model.separator(), BlockRunner)
    assert isinstance(model.separator(segment=1.0), Separator)
    streamed = model.separate(x, exit=3).sources
    segmented = model.separate(x, exit=3, segment=1.0, context=0.1)
    assert len(segmented.report["segments"]) == 3
    assert np.abs(streamed[:, SR + 200:] - segmented.sources[:, SR + 200:]).max() > 1e-3


def test_budget_needs_segments(causal_checkpoint):
    model = press.load(str(causal_checkpoint))
    with pytest.raises(PressError, match="budget is fitted on segments"):
        model.separate(mixture(SR), budget=0.01)


def test_output_change_policy_runs_on_blocks(causal_checkpoint):
    """Any segment policy decides a stream's blocks: the output-change heuristic with a threshold no
    change passes takes every block to the last exit, one every change passes leaves at exit 2."""
    model = press.load(str(causal_checkpoint))
    x = mixture(2 * SR)
    runner = model.separator()
    never = runner.run(ArrayReader(x), OutputChange(threshold=0.0))
    always = runner.run(ArrayReader(x), OutputChange(threshold=np.inf))
    assert set(never.exits) == {3} and set(always.exits) == {2}


def test_enhance_writes_the_stream_to_files(causal_checkpoint, tmp_path):
    model = press.load(str(causal_checkpoint))
    x = mixture(2 * SR + 100, seed=1)
    sf.write(tmp_path / "in.wav", x, SR, subtype="FLOAT")
    paths = [tmp_path / "speech.wav", tmp_path / "noise.wav"]
    report = model.separate_file(tmp_path / "in.wav", paths, exit=2)
    written = np.stack([sf.read(p, dtype="float32")[0] for p in paths])
    assert_close(written, whole(model, x)[1])
    assert report["exit_histogram"] == [0, len(report["blocks"]), 0]
    assert report["run"] == "stream"
    assert model.separate_file(tmp_path / "in.wav", paths, exit=2, segment=1.0)["run"] == "segments"
