"""PIT, calibration curve, KS, CRPS, reliability/ECE and recalibration (press.prob.calibration)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.integrate
import scipy.special
import scipy.stats
import torch
from synthetic_exits import make_blocks

from press.errors import PressError
from press.prob.calibration import (
    Recalibration,
    calibration_curve,
    crps_error_power_db,
    fit_per_exit,
    fit_recalibration,
    ks_statistic,
    pit_values,
    reliability_diagram,
)
from press.prob.energy import block_energy
from press.prob.exits import exit_probabilities, true_exit_snr


def error_energy(blocks, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    return block_energy(blocks.reference - blocks.estimate, n)  # (N, 1, 1) each


def test_pit_is_the_inverse_gamma_cdf() -> None:
    alpha = torch.tensor([0.7, 3.0, 40.0, 1e4], dtype=torch.float64)
    beta = torch.tensor([1e-3, 2e-2, 0.5, 10.0], dtype=torch.float64)
    energy = torch.tensor([1.0, 30.0, 25.0, 2.0], dtype=torch.float64)
    count = torch.tensor([2000.0, 2000.0, 1000.0, 2000.0], dtype=torch.float64)
    got = pit_values(alpha, beta, energy, count).numpy()
    ref = scipy.stats.invgamma.cdf((energy / count).numpy(), alpha.numpy(), scale=beta.numpy())
    assert np.allclose(got, ref, rtol=1e-9, atol=1e-12)
    zero = pit_values(alpha, beta, torch.zeros(4), count)
    assert torch.equal(
        zero, torch.zeros(4, dtype=torch.float64)
    )  # a perfect block is the lowest rank


def test_pit_uniform_when_calibrated_and_not_when_misspecified() -> None:
    b = make_blocks(3000, 2000, seed=1)
    energy, count = error_energy(b, 2000)
    u = pit_values(b.alpha, b.beta, energy, count).flatten().numpy()
    assert scipy.stats.kstest(u, "uniform").pvalue > 0.01
    assert (
        scipy.stats.kstest(
            pit_values(b.alpha, b.beta, energy, count, exact=True).flatten().numpy(), "uniform"
        ).pvalue
        > 0.01
    )
    for alpha, beta in ((b.alpha, 4 * b.beta), (3 * b.alpha, b.beta)):  # wrong level, wrong spread
        bad = pit_values(alpha, beta, energy, count).flatten().numpy()
        assert scipy.stats.kstest(bad, "uniform").pvalue < 1e-6
    assert ks_statistic(torch.from_numpy(u)) == pytest.approx(
        scipy.stats.kstest(u, "uniform").statistic, abs=1e-12
    )


def test_exact_pit_stays_uniform_for_short_blocks_and_confident_predictions() -> None:
    # α = 400: σ² varies by only 5 %, while ‖e‖²/n over n = 100 samples scatters by 14 %: the
    # paper's InvGamma PIT piles up at 0 and 1, the exact (F-distribution) PIT does not
    b = make_blocks(3000, 100, seed=2, alpha_low=400.0, alpha_high=400.0)
    energy, count = error_energy(b, 100)
    spec = pit_values(b.alpha, b.beta, energy, count).flatten().numpy()
    exact = pit_values(b.alpha, b.beta, energy, count, exact=True).flatten().numpy()
    assert scipy.stats.kstest(spec, "uniform").pvalue < 1e-6
    assert scipy.stats.kstest(exact, "uniform").pvalue > 0.01


def test_calibration_curve_follows_the_diagonal_for_uniform_values() -> None:
    u = torch.rand(20000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    nominal, observed = calibration_curve(u, levels=11)
    assert torch.equal(nominal, torch.linspace(0, 1, 11, dtype=torch.float64))
    assert observed[0] == 0.0 and observed[-1] == 1.0
    assert (observed - nominal).abs().max() < 0.02
    _, skewed = calibration_curve(u.square(), levels=11)  # errors smaller than predicted
    assert (skewed - nominal.sqrt()).abs().max() < 0.02  # P(u² ≤ q) = sqrt(q): above the diagonal
    with pytest.raises(PressError):
        ks_statistic(torch.zeros(0))


def test_crps_matches_quadrature() -> None:
    cases = [
        (3.0, 1e-3, 2.0),
        (0.5, 1e-4, 1e-2),
        (100.0, 1.0, 20.0),
        (1e4, 1.0, 0.2),
        (2.0, 1e-3, 2e-5),
        (2.0, 1e-3, 2e4),
    ]  # the last two: truth far outside the prediction
    n = 2000.0
    for a, b, energy in cases:
        y = math.log(energy / n)

        def cdf(z: float) -> float:
            return scipy.special.gammaincc(a, b * math.exp(-z))

        m, s = -(scipy.special.digamma(a) - math.log(b)), math.sqrt(scipy.special.polygamma(1, a))
        lo, hi = min(y, m - 40 * s - 5), max(y, m + 60 * s + 5)
        ref = scipy.integrate.quad(lambda z: cdf(z) ** 2, lo, y, limit=2000, epsabs=1e-13)[0]
        ref += scipy.integrate.quad(lambda z: (1 - cdf(z)) ** 2, y, hi, limit=2000, epsabs=1e-13)[0]
        ref *= 10 / math.log(10)
        got = crps_error_power_db(
            torch.tensor(a), torch.tensor(b), torch.tensor(energy), torch.tensor(n)
        )
        assert abs(got.item() - ref) < 1e-4, (a, got.item(), ref)


def test_crps_is_lower_for_the_true_distribution() -> None:
    b = make_blocks(1000, 2000, seed=3)
    energy, count = error_energy(b, 2000)
    good = crps_error_power_db(b.alpha, b.beta, energy, count).mean()
    assert torch.isfinite(good)
    for alpha, beta in (
        (b.alpha, 4 * b.beta),
        (b.alpha / 4, b.beta / 4),
        (10 * b.alpha, 10 * b.beta),
    ):
        assert crps_error_power_db(alpha, beta, energy, count).mean() > good + 0.1


def test_reliability_diagram_by_hand() -> None:
    p = torch.tensor([0.05, 0.05, 0.15, 0.95, 1.0])
    o = torch.tensor([0, 1, 0, 1, 1])
    d = reliability_diagram(p, o, bins=10)
    assert d.count.tolist() == [2, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    assert d.observed[0].item() == 0.5 and math.isnan(d.observed[2].item())
    # |0.1 - 1| + |0.15 - 0| + |1.95 - 2| = 1.1 over 5 values
    assert d.ece == pytest.approx(1.1 / 5)
    with pytest.raises(PressError):
        reliability_diagram(p, o[:3])


def exit_reliability(blocks, alpha, beta, targets=(15.0, 20.0, 25.0, 30.0)) -> float:
    truth = true_exit_snr(blocks.estimate, blocks.reference, blocks.mixture, 2000, p_ref=0.01)
    probs, hits = [], []
    for t in targets:
        pred = exit_probabilities(
            blocks.estimate, blocks.mixture, alpha, beta, t, 0.9, 2000, p_ref=0.01
        )
        probs.append(pred.exit.flatten())
        hits.append(truth.exit.flatten() >= t)
    return reliability_diagram(torch.cat(probs), torch.cat(hits)).ece


def test_ece_small_when_calibrated_large_when_not() -> None:
    b = make_blocks(3000, 2000, seed=4)
    assert exit_reliability(b, b.alpha, b.beta) < 0.025
    assert exit_reliability(b, b.alpha, 4 * b.beta) > 0.1
    assert exit_reliability(b, 4 * b.alpha, b.beta) > 0.1


@pytest.mark.parametrize("method", ["crps", "likelihood"])
def test_recalibration_fixes_scaled_beta_on_fresh_data(method: str) -> None:
    fit_on = make_blocks(3000, 2000, seed=5)
    energy, count = error_energy(fit_on, 2000)
    recal = fit_recalibration(fit_on.alpha, 4 * fit_on.beta, energy, count, method=method)
    assert recal.beta_scale == pytest.approx(0.25, rel=0.1)
    assert recal.alpha_scale == pytest.approx(1.0, rel=0.1)
    fresh = make_blocks(3000, 2000, seed=6)
    energy, count = error_energy(fresh, 2000)
    before = pit_values(fresh.alpha, 4 * fresh.beta, energy, count).flatten().numpy()
    after = pit_values(*recal.apply(fresh.alpha, 4 * fresh.beta), energy, count).flatten().numpy()
    assert scipy.stats.kstest(before, "uniform").pvalue < 1e-6
    assert scipy.stats.kstest(after, "uniform").pvalue > 0.01


def test_recalibration_ignores_blocks_without_a_measurable_error() -> None:
    # Exact-zero errors (digital silence in reference and estimate) make the likelihood unbounded
    # as beta -> 0; a few of them must not move the fit away from the known answer.
    blocks = make_blocks(3000, 2000, seed=7)
    energy, count = error_energy(blocks, 2000)
    energy = energy.clone()
    energy.view(-1)[:10] = 0.0
    recal = fit_recalibration(blocks.alpha, 4 * blocks.beta, energy, count, method="likelihood")
    assert recal.beta_scale == pytest.approx(0.25, rel=0.1)
    assert recal.alpha_scale == pytest.approx(1.0, rel=0.1)


def test_recalibration_round_trip_and_validation() -> None:
    alpha, beta = torch.tensor([2.0]), torch.tensor([3.0])
    identity = Recalibration()
    assert identity.apply(alpha, beta) == (alpha, beta)
    recal = Recalibration(0.5, 4.0)
    restored = Recalibration.from_dict(json.loads(json.dumps(recal.to_dict())))
    assert restored == recal
    assert [v.item() for v in restored.apply(alpha, beta)] == [1.0, 12.0]
    with pytest.raises(PressError):
        Recalibration.from_dict({"alpha_scale": 1.0})
    with pytest.raises(PressError):
        Recalibration(-1.0, 1.0)
    with pytest.raises(PressError):
        fit_recalibration(alpha, beta, torch.tensor([1.0]), torch.tensor([0.0]))
    with pytest.raises(PressError, match="method"):
        fit_recalibration(alpha, beta, torch.tensor([1.0]), torch.tensor([10.0]), method="brier")


def test_per_exit_recalibration_fixes_each_exit_on_its_own() -> None:
    # Exit 1 predicts errors 4x too large (beta x 4), exit 2 is calibrated: a per-exit fit recovers
    # both, where a pooled fit can only split the difference.
    blocks = [make_blocks(2000, 2000, seed=s) for s in (11, 12)]
    energy, count = (torch.stack(v) for v in zip(*(error_energy(b, 2000) for b in blocks)))  # (2, N, 1, 1)
    alpha = torch.stack([b.alpha for b in blocks])
    beta = torch.stack([4 * blocks[0].beta, blocks[1].beta])
    recal = fit_per_exit(alpha, beta, energy, count)
    assert recal.n_exits == 2
    assert recal.beta_scale[0] == pytest.approx(0.25, rel=0.1)
    assert recal.beta_scale[1] == pytest.approx(1.0, rel=0.1)
    assert recal.alpha_scale == pytest.approx((1.0, 1.0), rel=0.1)
    pooled = fit_recalibration(alpha, beta, energy, count)
    for k in range(2):
        ks = {name: ks_statistic(pit_values(*r.apply(alpha[k], beta[k], exit=k + 1), energy[k], count[k]))
              for name, r in (("per-exit", recal), ("pooled", pooled))}
        assert ks["per-exit"] < 0.04 < ks["pooled"], (k, ks)
    # the whole stack at once (exits first) equals exit by exit
    a_all, b_all = recal.apply(alpha, beta)
    assert torch.equal(a_all[1], recal.apply(alpha[1], beta[1], exit=2)[0])
    assert torch.equal(b_all[0], recal.apply(alpha[0], beta[0], exit=1)[1])


def test_per_exit_recalibration_round_trip_and_validation() -> None:
    recal = Recalibration((1.0, 2.0, 3.0), (0.5, 0.25, 4.0))
    restored = Recalibration.from_dict(json.loads(json.dumps(recal.to_dict())))
    assert restored == recal and restored.n_exits == 3
    assert Recalibration.from_dict({"alpha_scale": [1.0, 2.0], "beta_scale": [3.0, 4.0]}).beta_scale == (3.0, 4.0)
    alpha, beta = torch.ones(3, 5), torch.ones(3, 5)
    assert recal.apply(alpha, beta)[1][:, 0].tolist() == [0.5, 0.25, 4.0]
    assert recal.apply(alpha[0], beta[0], exit=3)[0].tolist() == [3.0] * 5
    with pytest.raises(PressError, match="exit 4"):
        recal.apply(alpha[0], beta[0], exit=4)
    with pytest.raises(PressError, match="3 exits but was given 2"):
        recal.apply(alpha[:2], beta[:2])
    with pytest.raises(PressError, match="refit"):
        recal.check_exits(4)
    recal.check_exits(3)
    Recalibration().check_exits(7)  # a pooled one fits any model
    for a, b in (((1.0, 2.0), 1.0), ((1.0,), (1.0, 2.0)), ((), ()), ((1.0, 0.0), (1.0, 1.0))):
        with pytest.raises(PressError):
            Recalibration(a, b)


def test_plots_write_png_files(tmp_path) -> None:
    from press.evaluation.figures import plot_calibration_curves, plot_reliability

    u = torch.rand(500, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    curves = plot_calibration_curves({"uniform": u, "skewed": u.square()}, tmp_path / "cal.png")
    diagram = reliability_diagram(u, u > 0.5)
    rel = plot_reliability({"demo": diagram}, tmp_path / "sub" / "rel.png")
    for path in (curves, rel):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
