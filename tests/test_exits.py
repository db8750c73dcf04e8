"""Exit conditions, true exit-SNR, regret (press.prob.exits); the segment decision and expected
exit-SNR (press.engine.rule); the budget threshold search (press.engine.thresholds)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.integrate
import scipy.special
import torch
from synthetic_exits import make_blocks

from press.engine import rule
from press.engine.rule import expected_block_snr_db, expected_exit_snr_db, segment_decision
from press.engine.thresholds import first_exit_reaching, threshold_for_budget
from press.errors import PressError
from press.prob.energy import block_energy, mean_power
from press.prob.exits import (
    condition_probabilities,
    exit_probabilities,
    exit_snr_regret,
    gammaincc,
    true_exit_snr,
)


def q_grid() -> tuple[np.ndarray, np.ndarray]:
    """a in [1e-3, 1e7]; x = 0 and 1e-12 to 1e12, plus x/a in [0.8, 1.2] where large a is hard."""
    a = np.logspace(-3, 7, 41)
    ratios = np.concatenate([np.logspace(-6, 2, 33), np.linspace(0.8, 1.2, 21)])
    near = (a[:, None] * ratios[None]).ravel()
    wide = np.tile(np.concatenate([[0.0], np.logspace(-12, 12, 49)]), a.size)
    a_all = np.concatenate([np.repeat(a, ratios.size), np.repeat(a, 50)])
    return a_all, np.concatenate([near, wide])


def test_gammaincc_matches_scipy_over_wide_grid() -> None:
    a, x = q_grid()
    ref = scipy.special.gammaincc(a, x)
    got = gammaincc(torch.from_numpy(a), torch.from_numpy(x)).numpy()
    assert np.isfinite(got).all()
    assert np.max(np.abs(got - ref)) < 1e-8
    tail = ref > 1e-250
    assert np.max(np.abs(got[tail] - ref[tail]) / ref[tail]) < 1e-7


def test_gammaincc_edges_are_exact_and_never_nan() -> None:
    a = torch.tensor([1e-3, 1.0, 1e7, 2.5], dtype=torch.float64)
    assert torch.equal(gammaincc(a, torch.zeros(4)), torch.ones(4, dtype=torch.float64))
    assert torch.equal(
        gammaincc(a, torch.full((4,), math.inf)), torch.zeros(4, dtype=torch.float64)
    )
    assert torch.equal(gammaincc(a, torch.full((4,), -3.0)), torch.ones(4, dtype=torch.float64))


def test_block_energy_partial_block_and_lengths() -> None:
    x = torch.arange(1.0, 8.0).reshape(1, 7).repeat(2, 1)  # (2, 7): 1..7
    energy, count = block_energy(x, 3, lengths=torch.tensor([7, 4]))
    assert torch.equal(count, torch.tensor([[3.0, 3.0, 1.0], [3.0, 1.0, 0.0]], dtype=torch.float64))
    assert torch.equal(energy[0], torch.tensor([14.0, 77.0, 49.0], dtype=torch.float64))
    assert torch.equal(energy[1], torch.tensor([14.0, 16.0, 0.0], dtype=torch.float64))
    mask = torch.tensor([True, False, True, True, True, True, True])
    energy_m, count_m = block_energy(x[:1], 3, mask=mask)
    assert energy_m[0, 0] == 10.0 and count_m[0, 0] == 2.0
    assert torch.allclose(
        mean_power(x, torch.tensor([7, 2])), torch.tensor([20.0, 2.5], dtype=torch.float64)
    )
    with pytest.raises(PressError):
        block_energy(x, 0)


def reference_probabilities(alpha, beta, est, mix, t, p_ref, n):
    """Direct scipy evaluation of the three conditions for one speaker and block."""
    ratio = 10 ** (t / 10)
    e_est = float(np.sum(est**2))
    e_res = float(np.sum((est - mix) ** 2))
    return (
        scipy.special.gammaincc(alpha, (ratio - 1) * beta * n / e_est),
        scipy.special.gammaincc(alpha, (ratio - 1) * beta * n / e_res),
        scipy.special.gammaincc(alpha, ratio * beta / p_ref),
    )


def test_decision_is_min_over_speakers_of_max_of_conditions() -> None:
    g = torch.Generator().manual_seed(3)
    scale = torch.tensor([0.1, 0.5, 1.0], dtype=torch.float64)[:, None, None]
    est = (
        torch.randn(2, 3, 2, 500, generator=g, dtype=torch.float64) * scale
    )  # (batch, S=3, nb=2, B)
    mix = est[:, 2] + 0.05 * torch.randn(2, 2, 500, generator=g, dtype=torch.float64)
    alpha = torch.rand(2, 3, 2, generator=g, dtype=torch.float64) * 8 + 0.5
    beta = torch.rand(2, 3, 2, generator=g, dtype=torch.float64) * 1e-2
    t, p = 20.0, 0.6
    winners, outcomes = set(), set()
    for p_ref in (0.1, 3.0):
        out = exit_probabilities(
            est.flatten(-2), mix.flatten(-2), alpha, beta, t, p, 500, p_ref=p_ref
        )
        for i, j, b in itertools.product(range(2), range(3), range(2)):
            ref = reference_probabilities(
                alpha[i, j, b].item(),
                beta[i, j, b].item(),
                est[i, j, b].numpy(),
                mix[i, b].numpy(),
                t,
                p_ref,
                500,
            )
            got = (out.snr[i, j, b].item(), out.snri[i, j, b].item(), out.snr_ref[i, j, b].item())
            assert np.allclose(got, ref, rtol=1e-9, atol=1e-12)
            assert out.exit[i, j, b].item() == pytest.approx(max(ref), rel=1e-9, abs=1e-12)
            winners.add(int(np.argmax(ref)))
        assert torch.equal(out.block, out.exit.amin(dim=-2))
        assert torch.equal(out.decision, out.block >= p)
        outcomes.update(out.decision.flatten().tolist())
    assert winners == {0, 1, 2}  # each of the three conditions decides somewhere
    assert outcomes == {True, False}  # and blocks both pass and fail


def test_higher_target_never_gives_higher_probability() -> None:
    b = make_blocks(200, 400, seed=5)
    targets = torch.linspace(-10.0, 60.0, 71, dtype=torch.float64)[
        :, None, None, None
    ]  # (T, 1, 1, 1)
    e_est, n = block_energy(b.estimate, 400)
    e_res, _ = block_energy(b.estimate - b.mixture[:, None], 400)
    probs = condition_probabilities(b.alpha, b.beta, e_est, e_res, n, torch.tensor(0.02), targets)
    for p in probs:  # (T, 200, 1, 1)
        assert (p.diff(dim=0) <= 0).all()
        assert p[0].min() > p[-1].max()


def test_silence_and_padding_give_defined_probabilities() -> None:
    est = torch.zeros(1, 2, 2500)
    est[0, 1] = torch.randn(2500)
    mix = torch.zeros(1, 2500)  # silent input: P_ref = 0
    alpha = torch.full((1, 2, 2), 3.0)
    beta = torch.full((1, 2, 2), 1e-3)
    out = exit_probabilities(est, mix, alpha, beta, 10.0, 0.9, 2000, lengths=torch.tensor([1500]))
    for p in out[:5]:
        assert torch.isfinite(p).all()
    # a silent estimate is at 0 dB exactly: 10 dB is unreachable; block 2 is padding: no constraint
    assert out.snr[0, 0, 0] == 0.0 and out.snri[0, 0, 0] == 0.0 and out.snr_ref[0, 0, 0] == 0.0
    assert out.exit[0, :, 1].tolist() == [1.0, 1.0]
    assert out.decision.tolist() == [[False, True]]
    low = exit_probabilities(est, mix, alpha, beta, 0.0, 0.9, 2000)
    assert low.snr[0, 0, 0] == 1.0  # a silent estimate's SNR is exactly 0 dB: t ≤ 0 dB always met


def test_probabilities_match_observed_frequencies_on_known_variances() -> None:
    b = make_blocks(3000, 2000, seed=0)
    p_ref = 0.01
    truth = true_exit_snr(b.estimate, b.reference, b.mixture, 2000, p_ref=p_ref)
    mean_exit = []
    for t in (15.0, 20.0, 25.0, 30.0):
        pred = exit_probabilities(b.estimate, b.mixture, b.alpha, b.beta, t, 0.9, 2000, p_ref=p_ref)
        for name in ("snr", "snri", "snr_ref", "exit"):
            p = getattr(pred, name).flatten()
            hits = (getattr(truth, name).flatten() >= t).to(torch.float64)
            sd = (p * (1 - p)).sum().sqrt().clamp_min(1.0)  # binomial sd of the hit count
            assert abs(hits.sum() - p.sum()) < 3.5 * sd, (t, name)
        mean_exit.append(pred.exit.mean().item())
    assert mean_exit[0] > 0.5 and mean_exit[-1] < 0.1  # the targets span likely to unlikely


def test_true_exit_snr_by_hand() -> None:
    ref = torch.tensor([[[2.0, 2.0, 2.0, 2.0]]])  # (1, S=1, L=4), one block of 4
    est = torch.tensor([[[1.0, 3.0, 2.0, 2.0]]])  # ‖e‖² = 2
    mix = torch.tensor([[0.0, 0.0, 0.0, 0.0]])  # ‖x̃ − x‖² = 16, P_ref = 0
    out = true_exit_snr(est, ref, mix, 4, p_ref=0.5)
    assert out.snr.item() == pytest.approx(10 * math.log10(16 / 2))
    assert out.snri.item() == pytest.approx(10 * math.log10(16 / 2))
    assert out.snr_ref.item() == pytest.approx(10 * math.log10(0.5 / (2 / 4)))
    assert out.exit.item() == pytest.approx(max(out.snr.item(), out.snr_ref.item()))
    silent = true_exit_snr(torch.zeros(1, 1, 8), torch.zeros(1, 1, 8), torch.zeros(1, 8), 4)
    assert torch.isfinite(silent.exit).all() and (silent.snr == 0).all()


def test_regret_by_hand() -> None:
    s = torch.tensor([[[10.0, 25.0, 19.0], [30.0, 5.0, 20.0]]])  # (1, S=2, nb=3)
    # shortfalls below t = 20: 10, 0, 1 | 0, 15, 0 -> mean 26/6
    assert exit_snr_regret(s, 20.0).item() == pytest.approx(26 / 6)
    valid = torch.tensor([[True, True, False]])  # drop the third block: 10, 0, 0, 15 -> 25/4
    assert exit_snr_regret(s, 20.0, valid).item() == pytest.approx(25 / 4)
    assert exit_snr_regret(s, 0.0).item() == 0.0


def test_segment_decision_rules() -> None:
    passes = np.array(
        [[True, True, True, False], [True, True, True, True], [False, False, True, True]]
    )
    assert segment_decision(passes).tolist() == [False, True, False]
    assert segment_decision(passes, quantile=0.75).tolist() == [True, True, False]
    valid = np.array([[True, True, True, False]] * 3)  # last block is padding
    assert segment_decision(passes, valid).tolist() == [True, True, False]
    assert segment_decision(np.zeros((1, 2), dtype=bool), np.zeros((1, 2), dtype=bool)).item()
    with pytest.raises(PressError):
        segment_decision(passes, quantile=0.0)


def test_expected_exit_snr_matches_quadrature() -> None:
    cases = [
        (0.3, 0.01, 100.0, 50.0, 0.1, 1e-3),
        (3.0, 1e-3, 10.0, 20.0, 0.05, 1e-6),
        (50.0, 0.2, 500.0, 1.0, 1.0, 1e-6),
        (1e4, 1.0, 1e3, 1e3, 0.5, 1e-6),
        (2.0, 1e-4, 0.0, 0.0, 0.01, 1e-6),
    ]
    n = 2000.0
    for a, b, e_est, e_res, p_ref, tol in cases:

        def g(w: float) -> float:
            lam = math.exp(w)
            return 10 * math.log10(max(1 + e_est / n * lam, 1 + e_res / n * lam, p_ref * lam))

        def density(w: float) -> float:
            return math.exp(a * w - b * math.exp(w) + a * math.log(b) - scipy.special.gammaln(a))

        m, s = scipy.special.digamma(a) - math.log(b), math.sqrt(scipy.special.polygamma(1, a))
        ref = scipy.integrate.quad(
            lambda w: g(w) * density(w),
            m - 60 * s,
            m + 30 * s,
            points=[m - s, m, m + s],
            limit=2000,
            epsabs=1e-12,
        )[0]
        got = expected_exit_snr_db(a, b, e_est, e_res, n, p_ref)
        assert abs(got.item() - ref) < tol, (a, got.item(), ref)


def test_expected_block_snr_is_the_energy_form_on_signals() -> None:
    rng = np.random.default_rng(3)
    est = rng.normal(size=(2, 2, 900))                               # (N, S, L): blocks 400, 400, 100
    mix = rng.normal(size=(2, 900))
    alpha, beta = np.full((2, 2, 3), 3.0), np.full((2, 2, 3), 0.5)
    lengths = np.array([900, 500])                                   # item 2: last block is padding
    got = expected_block_snr_db(est, mix, alpha, beta, 400, 0.7, lengths)
    e_est, n = rule.block_energy(est, 400, lengths)
    e_res, _ = rule.block_energy(est - mix[:, None], 400, lengths)
    np.testing.assert_allclose(got, expected_exit_snr_db(alpha, beta, e_est, e_res, n, 0.7), rtol=1e-12)
    assert np.isfinite(got).all()
    # a wider predicted error (β × 4: λ a quarter) lowers the expected exit-SNR
    wider = expected_block_snr_db(est, mix, alpha, 4 * beta, 400, 0.7, lengths)
    assert (wider[..., 0] < got[..., 0]).all() and (wider <= got).all()


def test_threshold_policy_meets_budget_with_the_highest_threshold() -> None:
    rng = np.random.default_rng(11)
    quality = torch.from_numpy(np.cumsum(rng.normal(3.0, 2.0, (200, 4)), axis=1))  # (N, K)
    cost = torch.tensor([1.0, 2.0, 3.5, 5.0], dtype=torch.float64)
    spent = []
    for budget in (1.0, 2.0, 3.0, 4.0):
        tau = threshold_for_budget(quality, cost, budget)
        spent.append(cost[first_exit_reaching(quality, tau)].mean().item())
        assert spent[-1] <= budget + 1e-12
        higher = quality[quality > tau]
        if higher.numel():  # the next threshold up would overspend: τ is the highest feasible
            above = cost[first_exit_reaching(quality, higher.min().item())].mean().item()
            assert above > budget
    assert spent == sorted(spent) and spent[0] == 1.0  # more budget, more compute
    assert threshold_for_budget(quality, cost, 5.0) == math.inf
    assert first_exit_reaching(quality, math.inf).tolist() == [3] * 200
    with pytest.raises(PressError):
        threshold_for_budget(quality, cost, 0.5)
    with pytest.raises(PressError):
        threshold_for_budget(quality, cost.flip(0), 3.0)
