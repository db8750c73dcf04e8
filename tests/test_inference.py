import numpy as np
import pytest
import torch
from conftest import tiny_config

from press.engine.plan import SegmentPlan
from press.engine.policies import Budget, Dynamic, OutputChange, Static
from press.engine.stitch import Stitcher
from press.engine.thresholds import first_exit_reaching
from press.errors import PressError
from press.inference.budget import BudgetCalibration, trace_quality
from press.inference.runner import Separator
from press.inference.trace import trace_exits
from press.io.streaming import ArrayReader
from press.model import ExitOutput, ExitState, PressNet
from press.model.compute import count_macs

SR = 8000


@pytest.fixture
def model():
    return PressNet(tiny_config()).eval()


def long_input(seconds=9.3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(int(seconds * SR)).astype(np.float32) * np.repeat(
        rng.uniform(0.05, 1.0, int(seconds * 4) + 1), SR // 4)[: int(seconds * SR)].astype(np.float32)


def median_confidence(model, x, **options):
    """A confidence p that about half the segments of x meet at exit 1 (an untrained model's
    probabilities hardly vary, so a fixed p would send every segment to the same exit)."""
    res = Separator(model, confidence=0.0, **options).run(ArrayReader(x), Static(1))
    worst = {}
    for b in res.blocks:
        worst[b.segment] = min(worst.get(b.segment, 1.0), b.p_exit)
    return float(np.median(list(worst.values())))


def test_dynamic_equals_each_segment_run_at_its_exit(model):
    x = long_input()
    options = dict(segment=1.0, context=0.25, batch_size=3, target_db=5.0)
    p = median_confidence(model, x, **options)
    sep = Separator(model, confidence=p, **options)
    res = sep.run(ArrayReader(x), Dynamic())
    assert len(set(s.exit for s in res.segments)) > 1, "the test needs segments leaving at different exits"
    plan = sep.plan(len(x))
    c = plan.context
    scale = torch.tensor([np.sqrt(np.mean(x.astype(np.float64) ** 2))], dtype=torch.float32)
    for s in res.segments:
        start, end = s.start, s.end
        window = torch.from_numpy(ArrayReader(x).read(start - c, start - c + plan.window))[None]
        lengths = torch.tensor([min(plan.window, len(x) - (start - c))])
        with torch.no_grad():
            state = model.begin(window, lengths=lengths, scale=scale)
            for _ in range(s.exit):
                out, state = model.advance(state)
        direct = out.estimate[0].numpy()[:, 2 * c:c + end - start - c]     # away from the cross-fades
        got = res.sources[:, start + c:end - c]
        if direct.shape[1] == 0:
            continue
        err = min(np.abs(got - direct[list(p)]).max() for p in ([0, 1], [1, 0]))
        assert err < 1e-5


def test_macs_spent_equal_per_exit_costs_of_exits_taken(model):
    x = long_input(5.1)
    options = dict(segment=1.0, context=0.25, batch_size=4, target_db=5.0)
    sep = Separator(model, confidence=median_confidence(model, x, **options), **options)
    with count_macs(model) as totals:
        res = sep.run(ArrayReader(x), Dynamic())
    counted = sum(totals.values())
    assert len(set(s.exit for s in res.segments)) > 1
    assert sum(s.macs for s in res.segments) == pytest.approx(counted, rel=1e-9)
    assert res.gmacs_per_second == pytest.approx(counted / (len(x) / SR) / 1e9, rel=1e-9)


def test_lower_target_never_costs_more(model):
    x = long_input(6.0, seed=3)
    sep = lambda t: Separator(model, segment=0.5, context=0.25, target_db=t, confidence=0.6)  # noqa: E731
    costs = [sep(t).run(ArrayReader(x), Dynamic()).gmacs_per_second for t in (-20, 0, 5, 10, 20, 40)]
    assert costs == sorted(costs)
    assert costs[0] < costs[-1]


def test_static_exits_and_reports(model):
    x = long_input(3.0)
    sep = Separator(model, segment=1.0, context=0.25)
    for k in (1, 2, 3):
        res = sep.run(ArrayReader(x), Static(k))
        assert all(s.exit == k for s in res.segments)
        assert all(b.exit == k for b in res.blocks)
        assert res.sources.shape == (2, len(x)) and np.isfinite(res.sources).all()
    assert res.saving == pytest.approx(0.0)
    assert [b.index for b in res.blocks] == list(range(len(res.blocks)))
    assert len(res.blocks) == -(-len(x) // 400)         # one report per likelihood block
    assert res.blocks[-1].end == pytest.approx(len(x) / SR)
    with pytest.raises(PressError):
        sep.run(ArrayReader(x), Static(4))


def test_utterance_mode_runs_one_segment(model):
    x = long_input(2.2)
    res = Separator(model, target_db=5.0, confidence=0.5).run(ArrayReader(x), Dynamic(), utterance=True)
    assert len(res.segments) == 1 and res.sources.shape == (2, len(x))


def test_input_that_fits_one_window_runs_whole_without_padding(model):
    sep = Separator(model, segment=1.0, context=0.25)           # window: 1.5 s
    x = long_input(1.3, seed=4)
    res = sep.run(ArrayReader(x), Static(3))
    whole = sep.run(ArrayReader(x), Static(3), utterance=True)
    assert len(res.segments) == 1 and np.array_equal(res.sources, whole.sources)
    rounded = -(-len(x) // sep.block) * sep.block                   # 1.3 s -> 1.35 s of whole blocks
    assert res.segments[0].macs == pytest.approx(sep.gmacs[2] * 1e9 * rounded / SR, rel=1e-9)
    longer = sep.run(ArrayReader(long_input(1.6, seed=4)), Static(3))
    assert len(longer.segments) == 2                                # past one window: segments with context


class BandSplitter(torch.nn.Module):
    """A stand-in separator for two band-disjoint speakers: FFT low/high split, in a random order
    per call, exactly the ambiguity a real separator has. It speaks the incremental interface."""

    def __init__(self, cutoff_hz=1000.0, seed=0):
        super().__init__()
        self.cfg = tiny_config()
        self.n_exits = 2
        self.cutoff = cutoff_hz
        self.gen = torch.Generator().manual_seed(seed)
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def begin(self, mixture, lengths=None, scale=None):
        return ExitState(h=mixture, basis=mixture, wave=mixture, mask=mixture, scale=scale,
                         length=mixture.shape[1])

    def advance(self, state):
        spec = torch.fft.rfft(state.h)
        f = torch.fft.rfftfreq(state.h.shape[1], 1 / SR)
        low = torch.fft.irfft(spec * (f < self.cutoff), n=state.h.shape[1])
        high = state.h - low
        est = torch.stack([low, high], 1)
        flip = torch.rand(len(est), generator=self.gen) < 0.5
        est[flip] = est[flip].flip(1)
        nb = -(-state.length // self.cfg.block)
        ones = torch.ones(len(est), 2, nb)
        return ExitOutput(state.next_exit + 1, est, ones, ones), ExitState(
            h=state.h, basis=state.basis, wave=state.wave, mask=state.mask, scale=state.scale, length=state.length,
            next_exit=state.next_exit + 1)


def test_speaker_order_consistent_across_segments(monkeypatch):
    import press.inference.runner as inf

    monkeypatch.setattr(inf, "exit_costs", lambda m: [type("C", (), {"gmacs_per_second": 1.0})()] * 2)
    t = np.arange(20 * SR) / SR
    low = (np.sin(2 * np.pi * 200 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.3 * t))).astype(np.float32)
    high = (0.5 * np.sin(2 * np.pi * 2500 * t + 1) * (np.sin(2 * np.pi * 0.7 * t) > -0.5)).astype(np.float32)
    res = Separator(BandSplitter(), segment=1.0, context=0.25, batch_size=5).run(
        ArrayReader(low + high), Static(1))
    order = [0, 1] if np.abs(res.sources[0] - low).mean() < np.abs(res.sources[1] - low).mean() else [1, 0]
    out = res.sources[order]
    # A segment in the wrong order would be off by the signals' amplitude (~1) for a whole second;
    # the band split itself leaks a little around the gating clicks of the high source.
    for est, ref in ((out[0], low), (out[1], high)):
        err = np.abs(est - ref)
        assert err.max() < 0.25 and err.mean() < 0.01


def test_stitcher_aligns_and_crossfades_without_seams():
    rng = np.random.default_rng(0)
    n, seg, ctx = 10_000, 1000, 200
    src = np.stack([np.sin(np.arange(n) * 0.01), np.cos(np.arange(n) * 0.023) * 0.5]).astype(np.float32)
    plan = SegmentPlan(n, seg, ctx)
    out = np.full((2, n), np.nan, dtype=np.float32)
    writes = []

    def sink(start, x):
        writes.append((start, x.shape[1]))
        out[:, start:start + x.shape[1]] = x

    st = Stitcher(plan, sink)
    for i in range(len(plan)):
        s = i * seg
        idx = np.arange(s - ctx, s + seg + ctx)
        window = np.where((idx >= 0) & (idx < n), src[:, np.clip(idx, 0, n - 1)], 0.0)
        window = window + rng.normal(0, 0.01, window.shape)
        st.push(i, window[rng.permutation(2)])
    assert np.isfinite(out).all()                                   # every sample written ...
    assert sum(w for _, w in writes) == n                           # ... exactly once, in order
    assert [s for s, _ in writes] == sorted(s for s, _ in writes)
    err = min(np.abs(out[list(p)] - src).max() for p in ([0, 1], [1, 0]))
    assert err < 0.05


def test_budget_policy_leaves_where_the_calibration_quality_says(model):
    # the runner's online quality (policies.Budget) and the calibration's (budget.trace_quality)
    # are one computation: thresholding the traced qualities predicts every exit the runner takes
    x = long_input(12.0, seed=3)
    sep = Separator(model, segment=0.5, context=0.25, batch_size=4)
    quality = trace_quality(trace_exits(sep, ArrayReader(x)))                 # (n_seg, K)
    tau = float(np.median(quality[:, 0]))
    res = sep.run(ArrayReader(x), Budget(tau))
    taken = [s.exit for s in res.segments]
    assert len(set(taken)) > 1, "the test needs segments leaving at different exits"
    assert taken == (first_exit_reaching(torch.from_numpy(quality), tau) + 1).tolist()


def test_budget_mode_meets_the_budget(model):
    x = long_input(30.0, seed=5)
    sep = Separator(model, segment=0.5, context=0.25, batch_size=4)
    plan = sep.plan(len(x))
    lo = sep.run(ArrayReader(x), Static(1)).gmacs_per_second
    hi = sep.run(ArrayReader(x), Static(3)).gmacs_per_second
    step = (hi - lo) / len(plan)          # one segment going from exit 1 to exit 3
    other = BudgetCalibration.measure(sep, [long_input(30.0, seed=s) for s in (1, 2)])
    itself = BudgetCalibration.measure(sep, [x])
    for f in (0.25, 0.5, 0.75):
        budget = lo + f * (hi - lo)
        # fitted on other inputs of the same kind: close to the budget
        res = sep.run(ArrayReader(x), other.policy(budget, plan))
        assert abs(res.gmacs_per_second - budget) / budget < 0.1
        # fitted on the input itself: within the budget, short of it by less than one segment's step
        res = sep.run(ArrayReader(x), itself.policy(budget, plan))
        assert budget - step < res.gmacs_per_second <= budget * (1 + 1e-9)
    assert itself.threshold(hi, plan) == float("inf")
    with pytest.raises(PressError, match="below what exit 1 costs"):
        itself.threshold(0.99 * lo, plan)


def test_heuristic_policy_leaves_when_outputs_stop_changing(model):
    """OutputChange leaves at exit 2 exactly where ||x̂_2 - x̂_1|| / ||x̂_2|| over the segment's
    core is below the threshold: the changes are computed here by hand from each segment's window
    run alone, and the threshold lies between them, so the decision depends on the computation."""
    with torch.no_grad():   # the synthesis filters start at zero: every exit would output mixture / S
        for head in model.decoder_heads:
            torch.nn.init.normal_(head.synthesis.weight, std=0.01)
    x = long_input(6.0, seed=3)
    sep = Separator(model, segment=1.0, context=0.25, batch_size=4)
    plan = sep.plan(len(x))
    c = plan.context
    changes = []
    for i in range(len(plan)):
        start = plan.core(i)[0]
        window = torch.from_numpy(ArrayReader(x).read(start - c, start - c + plan.window))[None]
        lengths = torch.tensor([min(plan.window, len(x) - (start - c))])
        inside = x[max(start - c, 0):start - c + plan.window].astype(np.float64)  # the window's own level
        scale = torch.tensor([np.sqrt(np.mean(inside ** 2))], dtype=torch.float32)
        with torch.no_grad():
            state = model.begin(window, lengths=lengths, scale=scale)
            out1, state = model.advance(state)
            out2, state = model.advance(state)
        x1 = out1.estimate[0, :, c:c + plan.segment].double().numpy()   # the core, in samples
        x2 = out2.estimate[0, :, c:c + plan.segment].double().numpy()
        changes.append(np.linalg.norm(x2 - x1) / np.linalg.norm(x2))
    changes = np.array(changes)
    ordered = np.sort(changes)
    assert len(plan) >= 5
    for lo, hi in ((ordered[1], ordered[2]), (ordered[-3], ordered[-2])):
        assert hi - lo > 1e-5                                          # no float tie at the threshold
        th = (lo + hi) / 2
        res = sep.run(ArrayReader(x), OutputChange(threshold=float(th)))
        assert [s.exit for s in res.segments] == [2 if ch < th else 3 for ch in changes]


def test_bad_settings_are_refused(model):
    with pytest.raises(PressError):
        Separator(model, segment=0.5, context=0.5)
    with pytest.raises(PressError):
        Separator(model).run(ArrayReader(np.zeros(0, np.float32)), Dynamic())
    with pytest.raises(PressError):
        ArrayReader(np.zeros((2, 100), np.float32))
