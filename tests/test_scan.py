import pytest
import torch

from press.model.scan import linear_scan


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
