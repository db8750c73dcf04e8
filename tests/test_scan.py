import pytest
import torch

from press.model.scan import fixed_depth_scan, scan


def linear_scan(a, b, chunk=8, reverse=False):
    """`scan` in one direction for every channel (split 0: all backwards; split H: all forwards)."""
    return scan(a, b, 0 if reverse else a.shape[-1], chunk)


def loop_scan(a, b, reverse=False):
    """The recursion h_t = a_t h_{t-1} + b_t as a plain loop: the oracle."""
    steps = range(a.shape[-2] - 1, -1, -1) if reverse else range(a.shape[-2])
    h = torch.zeros_like(b[..., 0, :])
    out = torch.empty_like(b)
    for t in steps:
        h = a[..., t, :] * h + b[..., t, :]
        out[..., t, :] = h
    return out


@pytest.mark.parametrize("T,chunk", [(1, 4), (7, 4), (64, 16), (1000, 64), (333, 32)])
@pytest.mark.parametrize("reverse", [False, True])
def test_scan_matches_loop(T, chunk, reverse):
    a = torch.rand(2, T, 5, dtype=torch.float64)
    b = torch.randn(2, T, 5, dtype=torch.float64)
    torch.testing.assert_close(linear_scan(a, b, chunk, reverse), loop_scan(a, b, reverse))


def test_scan_long_memory_and_zero_decay():
    # a = 1 carries the state unchanged over thousands of steps; a = 0 resets it.
    T = 5000
    a = torch.ones(1, T, 2)
    a[:, 2500, 1] = 0.0
    b = torch.zeros(1, T, 2)
    b[:, 0] = 1.0
    h = linear_scan(a, b, 64)
    assert torch.all(h[0, :, 0] == 1.0)
    assert torch.all(h[0, :2500, 1] == 1.0) and torch.all(h[0, 2500:, 1] == 0.0)


def test_scan_gradient_matches_loop():
    a = torch.rand(1, 50, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(1, 50, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(1, 50, 3, dtype=torch.float64)
    ga = torch.autograd.grad((linear_scan(a, b, 8) * w).sum(), (a, b))
    gb = torch.autograd.grad((loop_scan(a, b) * w).sum(), (a, b))
    for x, y in zip(ga, gb):
        torch.testing.assert_close(x, y)


def two_way_loop(a, b, split):
    return torch.cat([loop_scan(a[..., :split], b[..., :split]), loop_scan(a[..., split:], b[..., split:], True)], -1)


def decays(N, T, H):
    """Decays over all of [0, 1]: exact zeros and ones, values near both, and padded frames at the
    end (a = 1, b = 0) as the model's mask makes them."""
    a = torch.rand(N, T, H, dtype=torch.float64)
    a[:, ::7, 0] = 0.0
    a[:, ::5, 1] = 1.0
    a[:, :, 2] = 1 - 1e-4 * torch.rand(N, T)
    a[:, T - T // 4:, :] = 1.0
    b = torch.randn(N, T, H, dtype=torch.float64)
    b[:, T - T // 4:, :] = 0.0
    return a, b


@pytest.mark.parametrize("T,chunk", [(1, 8), (2, 8), (15, 8), (16, 8), (17, 8), (250, 8), (1000, 16), (999, 32),
                                     (130, 3)])
@pytest.mark.parametrize("split", [0, 3, 6])
def test_bidirectional_scan_and_gradients_match_loop(T, chunk, split):
    a, b = decays(2, T, 6)
    a.requires_grad_(), b.requires_grad_()
    w = torch.randn(2, T, 6, dtype=torch.float64)
    h = scan(a, b, split, chunk)
    ref = two_way_loop(a, b, split)
    torch.testing.assert_close(h, ref)
    got = torch.autograd.grad((h * w).sum(), (a, b))
    want = torch.autograd.grad((ref * w).sum(), (a, b))
    for x, y in zip(got, want):
        torch.testing.assert_close(x, y)
    with torch.no_grad():
        torch.testing.assert_close(scan(a, b, split, chunk), ref)


@pytest.mark.parametrize("reverse", [False, True])
def test_scan_float32_as_accurate_as_export_doubling_scan(reverse):
    # the exported graph keeps the log-depth form; in float32 both stay within rounding of the
    # float64 recursion, the O(T) scan no further from it than the doubling scan (x2)
    a, b = decays(4, 2000, 8)
    truth = loop_scan(a, b, reverse)
    a, b = a.float(), b.float()
    if reverse:
        got, old = linear_scan(a, b, 8, reverse=True), fixed_depth_scan(a.flip(-2), b.flip(-2), 8, 16).flip(-2)
    else:
        got, old = linear_scan(a, b, 8), fixed_depth_scan(a, b, 8, 16)
    err, old_err = ((x.double() - truth).abs().max().item() for x in (got, old))
    assert err <= 1e-5 * truth.abs().max().item()
    assert err <= 2 * old_err + 1e-6
