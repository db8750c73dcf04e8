"""Segment-wise inference agrees with training: each window at its own level, speakers aligned on
overlaps (context 0 refused), compute reported per second of real audio."""

import numpy as np
import pytest
import torch
from conftest import tiny_config

from press.engine.policies import Static
from press.errors import PressError
from press.inference.runner import Separator
from press.io.streaming import ArrayReader
from press.model import PressNet
from press.model.compute import exit_costs

SR = 8000


@pytest.fixture
def model():
    """A tiny model whose outputs depend on the input level: the synthesis filters start at zero
    (every exit then returns mixture / S, exactly level-equivariant), so they are drawn here."""
    torch.manual_seed(0)
    net = PressNet(tiny_config()).eval()
    with torch.no_grad():
        for name, param in net.named_parameters():
            if name.endswith("synthesis.weight"):
                param.normal_(0.0, 0.5)
    return net


def test_a_window_is_normalised_by_its_own_level_not_the_files(model):
    """Training normalises each crop by its own RMS, so a segment's output must not depend on how
    loud audio far outside its window is (a whole-file level would change it)."""
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(8 * SR)).astype(np.float32)
    louder = x.copy()
    louder[6 * SR:] *= 30.0                      # far beyond the first segment's window
    sep = Separator(model, segment=1.0, context=0.25)
    a = sep.run(ArrayReader(x), Static(3)).sources
    b = sep.run(ArrayReader(louder), Static(3)).sources
    first = slice(0, SR)                          # segment 0, up to its cross-fade with segment 1
    np.testing.assert_allclose(a[:, first], b[:, first], rtol=1e-4, atol=1e-6)
    # and a window wholly inside the louder part is the same window 30 times louder: its output
    # scales with it (the network is level-equivariant under per-window normalisation)
    last = slice(int(7.25 * SR), None)           # segment 7 past its cross-fade with segment 6
    np.testing.assert_allclose(30.0 * a[:, last], b[:, last], rtol=1e-3, atol=1e-4)


def test_window_levels_count_only_samples_inside_the_input(model):
    x = np.ones(3 * SR, np.float32)
    sep = Separator(model, segment=1.0, context=0.25)
    plan = sep.plan(len(x))
    win = plan.read(ArrayReader(x), range(len(plan)))
    # the first window starts 0.25 s before the input and the last runs past its end: zeros
    # there are padding, so every window's level is the input's level, 1
    np.testing.assert_allclose(win.levels, 1.0, rtol=1e-6)
    assert win.audio[0, : plan.context].max() == 0.0


def test_context_zero_is_refused_for_segmented_runs(model):
    with pytest.raises(PressError, match="at least one likelihood block"):
        Separator(model, segment=1.0, context=0.0)


def test_a_tiny_input_reports_the_network_rate_and_says_padding_dominates(model):
    res = Separator(model).run(ArrayReader(np.full(10, 0.1, np.float32)), Static(3))
    rate = exit_costs(model)[-1].gmacs_per_second
    assert res.gmacs_per_second == pytest.approx(rate, rel=1e-6)   # not ~ rate * block / 10
    assert res.padding_share > 0.9 and "padding" in res.note
    long = Separator(model).run(ArrayReader(np.full(3 * SR, 0.1, np.float32)), Static(3))
    assert long.note is None and long.padding_share < 0.5
