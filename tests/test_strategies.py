"""Exit strategies on hand-made evidence, and on a real trace against the Separator itself."""

import numpy as np
import pytest
import torch
from conftest import tiny_config

from press.engine.policies import Dynamic, OutputChange, Static, output_change
from press.errors import PressError
from press.evaluation.analysis import analyse
from press.evaluation.strategies import (
    dynamic_exits,
    first_passing,
    oracle_exits,
    output_change_exits,
    regret,
    static_exits,
    taken,
    uniform_exits,
)
from press.inference.runner import Separator
from press.inference.trace import trace_exits
from press.io.streaming import ArrayReader
from press.model import PressNet
from press.prob.calibration import Recalibration


def test_first_passing_takes_earliest_and_falls_back_to_last():
    passes = np.array([[False, True, False], [True, True, False], [False, True, False]])
    assert first_passing(passes).tolist() == [2, 1, 3]


def test_oracle_picks_earliest_exit_meeting_target_on_every_block_and_speaker():
    # (K=3, n_seg=3, S=2, n_core=2)
    snr = np.zeros((3, 3, 2, 2))
    snr[:, 0] = [[[25, 25], [25, 25]], [[30, 30], [30, 30]], [[30, 30], [30, 30]]]  # exit 1 meets 20
    snr[:, 1] = [[[25, 25], [25, 15]], [[25, 25], [21, 21]], [[30, 30], [30, 30]]]  # speaker 2 late
    snr[:, 2] = [[[5, 5], [5, 5]], [[10, 10], [10, 10]], [[15, 15], [15, 15]]]      # never: last
    valid = np.ones((3, 2), bool)
    assert oracle_exits(snr, valid, 20.0).tolist() == [1, 2, 3]
    assert oracle_exits(snr, valid, 10.0).tolist() == [1, 1, 2]


def test_oracle_ignores_padding_blocks():
    snr = np.full((2, 1, 1, 2), 30.0)
    snr[0, 0, 0, 1] = -100.0          # a padding block with a hopeless value
    assert oracle_exits(snr, np.array([[True, False]]), 20.0).tolist() == [1]
    assert oracle_exits(snr, np.array([[True, True]]), 20.0).tolist() == [2]


def test_static_gives_its_exit_and_refuses_a_missing_one():
    assert static_exits(4, 2, 3).tolist() == [2, 2, 2, 2]
    with pytest.raises(PressError):
        static_exits(4, 4, 3)


def test_uniform_is_seeded_and_covers_every_exit():
    a, b, c = uniform_exits(3000, 4, seed=1), uniform_exits(3000, 4, seed=1), uniform_exits(3000, 4, seed=2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    counts = np.bincount(a, minlength=5)[1:]
    assert counts.min() > 650 and counts.max() < 850 and a.min() == 1 and a.max() == 4


def test_dynamic_thresholds_block_probabilities_with_all_blocks_or_a_quantile():
    prob = np.array([[[0.95, 0.5]], [[0.95, 0.92]], [[0.99, 0.99]]])   # (K=3, n_seg=1, n_core=2)
    valid = np.ones((1, 2), bool)
    assert dynamic_exits(prob, valid, 0.9).tolist() == [2]
    assert dynamic_exits(prob, valid, 0.95).tolist() == [3]
    assert dynamic_exits(prob, valid, 0.9, quantile=0.5).tolist() == [1]
    assert dynamic_exits(prob, np.array([[True, False]]), 0.9).tolist() == [1]  # padding ignored


def test_output_change_leaves_when_consecutive_outputs_stop_changing():
    est = np.array([1.0, 2.0, 2.1, 2.1])[:, None, None, None] * np.ones((4, 1, 1, 10))  # (K, n_seg, S, W)
    # change at exit 2: 1/2 = 0.5; exit 3: 0.1/2.1 = 0.048; exit 4: 0
    assert output_change_exits(est, slice(0, 10), 0.1).tolist() == [3]
    assert output_change_exits(est, slice(0, 10), 0.6).tolist() == [2]
    assert output_change_exits(est, slice(0, 10), 0.01).tolist() == [4]


def test_output_change_strategy_takes_the_policys_exits():
    """`press evaluate`'s output_change strategy on a trace and a Separator run with the
    `OutputChange` policy choose the same exit for every segment, at every threshold that makes a
    difference (one between each pair of neighbouring computed changes). The tiny model's block
    is 400 samples, so a policy that assumed another block length would look at other samples."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = PressNet(tiny_config()).eval()
    with torch.no_grad():   # the synthesis filters start at zero: every exit would output mixture / S
        for head in model.decoder_heads:
            torch.nn.init.normal_(head.synthesis.weight, std=0.01)
    g = torch.Generator().manual_seed(2)
    mix = torch.randn(8000 * 6, generator=g) * torch.rand(24, generator=g).repeat_interleave(2000)
    sep = Separator(model, segment=1.0, context=0.25, batch_size=3)
    tr = trace_exits(sep, ArrayReader(mix))
    assert sep.block == 400 and tr.core_samples == slice(2000, 10000)
    est = tr.estimates
    changes = np.unique(output_change(est[1:], est[:-1], tr.core_samples))
    assert len(changes) > 5 and np.diff(changes).min() > 1e-6   # no threshold is a float tie
    thresholds = [changes[0] / 2, *((changes[1:] + changes[:-1]) / 2), changes[-1] * 2]
    seen = set()
    for th in thresholds:
        want = output_change_exits(tr.estimates, tr.core_samples, th).tolist()
        got = [s.exit for s in sep.run(ArrayReader(mix), OutputChange(float(th))).segments]
        assert got == want, th
        seen.add(tuple(want))
    # with 3 exits only exit 2's change decides: n_seg + 1 patterns, from none to all leaving at 2
    assert len(seen) == len(tr.plan) + 1


def test_regret_is_mean_shortfall_at_the_exits_taken():
    snr = np.zeros((2, 2, 2, 2))
    snr[0] = [[[10, 25], [20, 20]], [[0, 0], [0, 0]]]
    snr[1] = [[[50, 50], [50, 50]], [[18, 30], [22, 12]]]
    valid = np.array([[True, True], [True, False]])
    total, n = regret(snr, valid, np.array([1, 2]), 20.0)
    # segment 0 at exit 1: shortfalls 10, 0, 0, 0; segment 1 at exit 2, block 0 only: 2, 0
    assert n == 6 and total == pytest.approx(12.0)
    assert taken(snr, np.array([2, 1])).tolist() == [snr[1, 0].tolist(), snr[0, 1].tolist()]


@pytest.fixture(scope="module")
def traced():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = PressNet(tiny_config()).eval()
    g = torch.Generator().manual_seed(1)
    # loud and quiet half-second stretches, so that an untrained model's segments exit differently
    envelope = torch.tensor([1.0, 0.01, 1.0, 0.001, 0.3, 1.0]).repeat_interleave(4000)
    refs = torch.randn(2, 8000 * 3, generator=g) * torch.tensor([[0.1], [0.05]]) * envelope
    mix = refs.sum(0)
    sep = Separator(model, segment=0.5, context=0.1, batch_size=4, target_db=2.0, confidence=0.5)
    tr = trace_exits(sep, ArrayReader(mix))
    return sep, mix, refs, tr, analyse(tr, mix.numpy(), refs.numpy())


def test_trace_static_and_dynamic_reproduce_the_separator(traced):
    sep, mix, refs, tr, a = traced
    for k in range(1, tr.n_exits + 1):
        r = sep.run(ArrayReader(mix), Static(k))
        exits = static_exits(len(tr.plan), k, tr.n_exits)
        np.testing.assert_allclose(tr.stitch(exits), r.sources, atol=1e-5)
        assert tr.macs(exits) == pytest.approx(sum(s.macs for s in r.segments))
    _, block_prob = a.probabilities(sep.target_db, Recalibration())
    # a confidence that about half the segments meet at exit 1: an untrained model's probabilities
    # hardly vary, so a fixed p would send every segment to the same exit
    worst = np.where(np.asarray(a.valid), np.asarray(block_prob[0]), 1.0).min(-1)
    sep.confidence = float(np.median(worst))
    r = sep.run(ArrayReader(mix), Dynamic())
    exits = dynamic_exits(block_prob, a.valid, sep.confidence)
    assert exits.tolist() == [s.exit for s in r.segments]
    assert len(set(exits.tolist())) > 1          # the case is not trivially one exit
    np.testing.assert_allclose(tr.stitch(exits), r.sources, atol=1e-5)
    assert tr.macs(exits) == pytest.approx(sum(s.macs for s in r.segments))


def test_lower_target_never_costs_more(traced):
    _, _, _, tr, a = traced
    macs = []
    for t in (-10.0, -5.0, 0.0, 10.0, 30.0):
        _, block_prob = a.probabilities(t, Recalibration())
        macs.append(tr.macs(dynamic_exits(block_prob, a.valid, 0.9)))
    assert macs == sorted(macs)


def test_analysis_truth_is_aligned_to_the_references(traced):
    _, mix, refs, tr, a = traced
    # a perfect estimate in swapped speaker order must come out aligned, with no error at all
    from dataclasses import replace

    c = tr.plan.context
    windows = np.stack([np.stack([np.pad(x, (c, c))[i * tr.plan.segment:i * tr.plan.segment + tr.plan.window]
                                  for x in refs.numpy()[::-1]]) for i in range(len(tr.plan))])
    swapped = replace(tr, estimates=np.repeat(windows[None], tr.n_exits, 0).astype(np.float32))
    b = analyse(swapped, mix.numpy(), refs.numpy())
    assert (b.perm == np.array([1, 0])).all()
    assert b.exit_snr[:, b.valid[:, None, :].repeat(2, 1)].min() > 60.0
    assert (b.error_energy == 0).all()


def test_exit_snr_quantiles_are_the_gamma_quantiles_of_lambda_mapped_to_db():
    import scipy.stats

    from press.evaluation.analysis import exit_snr_quantiles

    rng = np.random.default_rng(0)
    alpha = rng.uniform(0.3, 50.0, (4, 6))
    beta = rng.uniform(1e-3, 10.0, (4, 6))
    e_est, e_res = rng.uniform(0.0, 5.0, (2, 4, 6))
    count, p_ref = np.full((4, 6), 32.0), 0.02
    q = exit_snr_quantiles(alpha, beta, e_est, e_res, count, p_ref, (0.1, 0.5, 0.9))
    for i, level in enumerate((0.1, 0.5, 0.9)):
        lam = scipy.stats.gamma.ppf(level, alpha, scale=1 / beta)        # Gamma(α, rate β)
        snr = np.maximum.reduce([1 + e_est * lam / count, 1 + e_res * lam / count, p_ref * lam])
        np.testing.assert_allclose(q[i], 10 * np.log10(snr), rtol=1e-9, atol=1e-9)
    assert (q[0] <= q[1]).all() and (q[1] <= q[2]).all()
    # silent estimate and residual: SNR and SNRi are 1 (0 dB), so the median is max(1, P_ref·median(λ))
    only_ref = exit_snr_quantiles(alpha, beta, 0.0, 0.0, count, 0.5, (0.5,))[0]
    median = 0.5 * scipy.stats.gamma.median(alpha, scale=1 / beta)
    assert (median > 1).any() and (median < 1).any()
    np.testing.assert_allclose(only_ref, 10 * np.log10(np.maximum(median, 1.0)), rtol=1e-9, atol=1e-12)


def test_trace_exit_snr_needs_no_references_and_agrees_with_the_aligned_one(traced):
    from press.evaluation.analysis import predicted_exit_snr, trace_exit_snr

    _, _, _, tr, a = traced
    levels = (0.1, 0.5, 0.9)
    q = trace_exit_snr(tr, levels, Recalibration())                     # (3, K, n_seg, S, n_core)
    assert q.shape == (3, tr.n_exits, len(tr.plan), 2, a.valid.shape[1]) and np.isfinite(q).all()
    assert (q[0] <= q[1]).all() and (q[1] <= q[2]).all()
    # the aligned quantities are the same speakers in another order
    aligned = predicted_exit_snr(a, levels, Recalibration())
    np.testing.assert_allclose(np.sort(q, axis=3), np.sort(aligned, axis=3), rtol=1e-6, atol=1e-6)
