import numpy as np
import pytest
import torch
from conftest import tiny_config
from scipy import stats

from press.model import ExitOutput, PressNet
from press.model.heads import VARIANCE_FLOOR
from press.prob.likelihood import ExitPrediction, LossResult, PressLoss, gaussian_loglik, student_t_loglik
from press.prob.permutation import best_permutation
from press.prob.sisnr import si_snr
from press.training.loss import TrainingLoss


@pytest.mark.parametrize("alpha,beta,n", [(0.7, 0.3, 5), (3.0, 2.0, 40), (50.0, 0.01, 16), (1e4, 1e3, 8)])
def test_student_t_matches_scipy_multivariate_t(alpha, beta, n):
    rng = np.random.default_rng(0)
    loc = rng.normal(size=n)
    x = loc + rng.normal(size=n) * np.sqrt(beta / alpha) * 1.7
    ref = stats.multivariate_t(loc=loc, shape=np.eye(n) * beta / alpha, df=2 * alpha).logpdf(x)
    f64 = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    got = student_t_loglik(f64(alpha), f64(beta), f64(((x - loc) ** 2).sum()), f64(float(n)))
    assert got.item() == pytest.approx(ref, rel=1e-9, abs=1e-9)


def test_student_t_is_marginal_of_normal_inverse_gamma():
    """Integrate N(e; 0, s I) InvGamma(s; a, b) over s numerically: the closed form must agree."""
    from scipy.integrate import quad

    a, b, n, energy = 2.5, 0.8, 6, 1.3
    integrand = lambda s: np.exp(-n / 2 * np.log(2 * np.pi * s) - energy / (2 * s)) * stats.invgamma.pdf(s, a, scale=b)  # noqa
    ref = np.log(quad(integrand, 0, np.inf, limit=200)[0])
    got = student_t_loglik(*(torch.tensor(v, dtype=torch.float64) for v in (a, b, energy, float(n))))
    assert got.item() == pytest.approx(ref, rel=1e-7)


def test_gaussian_matches_scipy():
    n, alpha, beta, energy = 10, 4.0, 2.0, 3.0
    e = np.full(n, np.sqrt(energy / n))
    ref = stats.multivariate_normal(mean=np.zeros(n), cov=np.eye(n) * beta / alpha).logpdf(e)
    got = gaussian_loglik(*(torch.tensor(v, dtype=torch.float64) for v in (alpha, beta, energy, float(n))))
    assert got.item() == pytest.approx(ref, rel=1e-10)


def test_numerically_safe_extremes():
    """Digital silence, huge alpha, tiny beta, extreme errors: finite values and finite gradients."""
    alpha = torch.tensor([1e-3, 1e9, 1.0, 1e9, 1.0, 1e-3], dtype=torch.float64, requires_grad=True)
    beta = torch.tensor([1e-8, 1e-8, 1e-8, 1e8, 1e8, 1e-8], dtype=torch.float64, requires_grad=True)
    energy = torch.tensor([0.0, 0.0, 1e12, 1e12, 0.0, 1e-30], dtype=torch.float64)
    ll = student_t_loglik(alpha, beta, energy, torch.full_like(energy, 2000.0))
    assert torch.isfinite(ll).all()
    ll.sum().backward()
    assert torch.isfinite(alpha.grad).all() and torch.isfinite(beta.grad).all()
    # huge alpha with matching beta tends to the Gaussian with variance beta / alpha
    a = torch.tensor(1e10, dtype=torch.float64)
    t = student_t_loglik(a, a * 0.01, torch.tensor(15.0, dtype=torch.float64), torch.tensor(2000.0))
    g = gaussian_loglik(a, a * 0.01, torch.tensor(15.0, dtype=torch.float64), torch.tensor(2000.0))
    assert t.item() == pytest.approx(g.item(), rel=1e-6)


def test_loss_on_silence_and_extremes_is_finite():
    model = PressNet(tiny_config()).train()
    loss = TrainingLoss(block=400)
    for mix, src in [(torch.zeros(2, 900), torch.zeros(2, 2, 900)),
                     (torch.randn(2, 900) * 1e4, torch.randn(2, 2, 900) * 1e4),
                     (torch.randn(2, 900) * 1e-7, torch.randn(2, 2, 900))]:
        r = loss(model(mix), src, mix)
        r.loss.backward()
        assert torch.isfinite(r.loss)
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        model.zero_grad()


def test_exact_silence_does_not_reward_a_vanishing_shape():
    """A perfect estimate (error 0, below the variance floor) must not make α -> 0 pay: with the
    network's floor β = α·floor·s² alone, the likelihood there grew without bound as α fell, and
    training drove α to its floor in quiet blocks. The loss scores E + n·floor: larger α is better."""
    src = torch.randn(2, 2, 800)
    src[:, 1, 400:] = 0.0                                   # the second talker pauses: digital silence

    def loss(alpha: float) -> float:                        # at level 1: β = α·floor is the network's floor
        a = torch.full((2, 2, 2), alpha)
        return score([ExitPrediction(src.clone(), a, a * VARIANCE_FLOOR)], src).loss.item()

    losses = [loss(a) for a in (1e-3, 1e-1, 10.0, 1e3)]
    assert losses == sorted(losses, reverse=True), losses


def test_best_permutation_exhaustive_and_hungarian_agree():
    cost = torch.rand(20, 5, 5)
    perm = best_permutation(cost)                       # Hungarian (S = 5)
    import itertools
    for c, p in zip(cost, perm):
        brute = min(itertools.permutations(range(5)), key=lambda q: sum(c[j, q[j]] for j in range(5)))
        assert c[torch.arange(5), p].sum() == pytest.approx(c[torch.arange(5), list(brute)].sum().item())
    small = torch.rand(8, 3, 3)
    for c, p in zip(small, best_permutation(small)):
        brute = min(itertools.permutations(range(3)), key=lambda q: sum(c[j, q[j]] for j in range(3)))
        assert p.tolist() == list(brute)


def fake_exit(estimate, block, alpha=2.0, beta=0.01):
    B, S, L = estimate.shape
    nb = -(-L // block)
    return ExitPrediction(estimate, torch.full((B, S, nb), alpha), torch.full((B, S, nb), beta))


def score(predictions, targets, objective="student_t", pit="shared", sisnr_weight=0.0,
          lengths=None) -> LossResult:
    """PressLoss on plain tensors with the network's variance floor, every item scored at level 1 (its
    audio taken as already level-normalised), over all of its samples unless `lengths` says otherwise."""
    B, _, L = targets.shape
    loss = PressLoss(400, objective, pit, sisnr_weight, variance_floor=VARIANCE_FLOOR)
    return loss(predictions, targets, torch.ones(B), torch.full((B,), L) if lengths is None else lengths)


@pytest.mark.parametrize("objective", ["student_t", "gaussian", "sisnr"])
def test_pit_finds_swapped_targets(objective):
    src = torch.randn(3, 2, 1000)
    est = src + 0.05 * torch.randn_like(src)
    swapped = src.flip(1)
    r = score([fake_exit(est, 400)], swapped, objective)
    assert r.perm.tolist() == [[1, 0]] * 3
    r_true = score([fake_exit(est, 400)], src, objective)
    assert r.loss.item() == pytest.approx(r_true.loss.item(), rel=1e-5)


def test_shared_permutation_across_exits_vs_per_exit():
    src = torch.randn(1, 2, 800)
    good = fake_exit(src + 0.01 * torch.randn_like(src), 400)
    swapped = fake_exit(src.flip(1) + 0.3 * torch.randn_like(src), 400)
    shared = score([good, swapped], src, pit="shared")
    per_exit = score([good, swapped], src, pit="per_exit")
    assert shared.perm.tolist() == [[0, 1]]             # one permutation for both exits
    assert per_exit.perm.tolist() == [[1, 0]]           # the last exit picks its own
    assert per_exit.loss < shared.loss


def test_padding_is_ignored_by_the_loss():
    src = torch.randn(1, 2, 700)
    est = src + 0.1 * torch.randn_like(src)
    alone = score([fake_exit(est, 400)], src)
    pad = lambda t: torch.nn.functional.pad(t, (0, 500))  # noqa: E731
    garbage = pad(est)
    garbage[..., 700:] = 5.0                              # whatever the model says in the padding
    padded = score([fake_exit(garbage, 400)], pad(src), lengths=torch.tensor([700]))
    assert padded.loss.item() == pytest.approx(alone.loss.item(), rel=1e-5)


def test_si_snr_matches_torchmetrics():
    from torchmetrics.functional.audio import scale_invariant_signal_noise_ratio

    est, ref = torch.randn(4, 2, 3000), torch.randn(4, 2, 3000)
    est = ref + 0.3 * est
    torch.testing.assert_close(si_snr(est, ref), scale_invariant_signal_noise_ratio(est, ref),
                               atol=1e-4, rtol=1e-5)


def test_overfit_one_example_drives_loss_down_and_si_snr_up():
    torch.manual_seed(1)
    model = PressNet(tiny_config(dim=24, layer_scale_init=0.1)).train()
    t = torch.arange(4000) / 8000
    s1 = torch.sin(2 * torch.pi * 220 * t) * (torch.sin(2 * torch.pi * 3 * t) > 0)
    s2 = 0.3 * torch.sign(torch.sin(2 * torch.pi * 150 * t)) + 0.1 * torch.randn(4000)
    src = torch.stack([s1, s2])[None]
    mix = src.sum(1)
    loss = TrainingLoss(block=400)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = loss(model(mix), src, mix)
    for _ in range(60):
        r = loss(model(mix), src, mix)
        opt.zero_grad()
        r.loss.backward()
        opt.step()
    assert r.loss < first.loss - 1.0
    assert r.si_snr[-1] > first.si_snr[-1] + 8.0


def test_sisnr_weight_adds_the_si_snr_term():
    src = torch.randn(2, 2, 1000)
    out = fake_exit(src + 0.2 * torch.randn_like(src), 400)
    plain = score([out], src)
    mixed = score([out], src, sisnr_weight=0.5)
    # per sample: 0.5 x (-SI-SNR in dB), averaged over items and speakers
    expected = plain.loss - 0.5 * si_snr(out.estimate, src).mean()
    assert mixed.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert mixed.perm.tolist() == [[0, 1], [0, 1]]
    with pytest.raises(ValueError):
        PressLoss(400, objective="sisnr", sisnr_weight=0.5, variance_floor=VARIANCE_FLOOR)


def test_training_loss_does_not_depend_on_the_level():
    """TrainingLoss scores the network's exits at the mixture's level: scaling the mixture, the targets
    and the estimates by c and β by c² (what the network does with a louder input) leaves the loss."""
    src = torch.randn(2, 2, 1000)
    est = src + 0.2 * torch.randn_like(src)
    lengths = torch.tensor([1000, 650])
    alpha, beta = torch.rand(2, 2, 3) + 0.5, torch.rand(2, 2, 3) * 0.1

    def loss(c: float) -> float:
        out = ExitOutput(1, est * c, alpha, beta * c ** 2)
        return TrainingLoss(400, sisnr_weight=0.2)([out], src * c, src.sum(1) * c, lengths).loss.item()

    assert loss(1e-3) == pytest.approx(loss(1.0), rel=1e-5)
    assert loss(1e3) == pytest.approx(loss(1.0), rel=1e-5)


def test_one_level_per_block_is_a_change_of_variables_in_each_block():
    """With a level per block (a causal network's), block b of every signal is divided by s_b and β
    by s_b²: the loss is minus the Student-t log density of x/s_b, here from scipy's multivariate t,
    summed over blocks and sources, per sample (no variance floor, so that scipy needs none)."""
    rng = np.random.default_rng(0)
    S, L, block = 2, 1000, 400                                    # blocks of 400, 400, 200 samples
    src = rng.normal(size=(S, L)) * np.repeat([0.01, 1.0, 30.0], block)[:L]
    est = src + 0.1 * rng.normal(size=(S, L)) * np.repeat([0.01, 1.0, 30.0], block)[:L]
    alpha, beta = rng.uniform(0.5, 5.0, (S, 3)), rng.uniform(0.01, 2.0, (S, 3))
    level = np.array([0.02, 0.8, 25.0])
    ref = 0.0
    for j in range(S):
        for b in range(3):
            part = slice(b * block, min((b + 1) * block, L))
            n = len(src[j, part])
            t = stats.multivariate_t(loc=est[j, part] / level[b], df=2 * alpha[j, b],
                                     shape=np.eye(n) * beta[j, b] / (alpha[j, b] * level[b] ** 2))
            ref -= t.logpdf(src[j, part] / level[b])
    f64 = lambda v: torch.tensor(v, dtype=torch.float64)[None]  # noqa: E731
    loss = PressLoss(block, pit="fixed", variance_floor=0.0)
    got = loss([ExitPrediction(f64(est), f64(alpha), f64(beta))], f64(src), f64(level), torch.tensor([L]))
    assert got.loss.item() == pytest.approx(ref / (S * L), rel=1e-5)


def test_equal_block_levels_score_as_one_level_per_item():
    src = torch.randn(2, 2, 1000)
    out = fake_exit(src + 0.2 * torch.randn_like(src), 400)
    lengths = torch.tensor([1000, 650])
    loss = PressLoss(400, sisnr_weight=0.3, variance_floor=VARIANCE_FLOOR)
    level = torch.tensor([0.5, 2.0])
    per_item = loss([out], src, level, lengths)
    per_block = loss([out], src, level[:, None].expand(2, 3), lengths)
    assert per_block.loss.item() == pytest.approx(per_item.loss.item(), rel=1e-6)


def test_block_levels_put_the_energy_floor_under_the_networks_floor_in_every_block():
    """A perfect estimate, β at the network's floor α·floor·s_b² in blocks 100x apart in level: scored
    at those levels, a larger α is better in every block. Scored at one level per item (their RMS),
    the loss's energy floor in the quiet block lies 5000x above the variance the network predicts
    there, and a vanishing α pays."""
    level = torch.tensor([[0.01, 1.0]])                           # (B, nb): quiet block, loud block
    src = torch.randn(1, 2, 800) * level.repeat_interleave(400, -1)[:, None]

    def losses(scale: torch.Tensor) -> list[float]:
        out = []
        for a in (1e-3, 1e-1, 10.0, 1e3):
            alpha = torch.full((1, 2, 2), a)
            pred = ExitPrediction(src.clone(), alpha, alpha * VARIANCE_FLOOR * level[:, None] ** 2)
            out.append(PressLoss(400, pit="fixed", variance_floor=VARIANCE_FLOOR)(
                [pred], src, scale, torch.tensor([800])).loss.item())
        return out

    per_block = losses(level)
    assert per_block == sorted(per_block, reverse=True), per_block
    per_item = losses(level.pow(2).mean(1).sqrt())                # the blocks' RMS level
    assert per_item != sorted(per_item, reverse=True), per_item


def test_a_block_of_padding_with_no_level_scores_nothing():
    """A causal network's β is 0 in a block holding only padding; the loss and its gradient stay finite."""
    src = torch.randn(2, 2, 1000)
    beta = torch.full((2, 2, 3), 0.01)
    beta[1, :, 2] = 0.0                                           # item 2 holds 650 samples: block 3 is padding
    beta.requires_grad_(True)
    pred = ExitPrediction(src + 0.1, torch.full((2, 2, 3), 2.0), beta)
    level = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 1e-5]])
    r = PressLoss(400, variance_floor=VARIANCE_FLOOR)([pred], src, level, torch.tensor([1000, 650]))
    r.loss.backward()
    assert torch.isfinite(r.loss) and torch.isfinite(beta.grad).all() and beta.grad[1, :, 2].eq(0).all()
