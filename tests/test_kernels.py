"""The compiled CPU kernels (press.model.kernels) against the PyTorch code they replace."""

from __future__ import annotations

import warnings

import pytest
import torch

from press.model import kernels
from press.model.blocks import LinearRNN
from press.model.kernels.linear_rnn import linear_rnn

pytestmark = pytest.mark.skipif(not kernels.available(), reason="no C++ compiler: the kernels cannot be built here")


def _padded_mask(N: int, T: int, dtype: torch.dtype) -> torch.Tensor:
    mask = torch.ones(N, T, 1, dtype=dtype)
    mask[1, T - 7:] = 0.0          # an item padded at its end
    mask[2, :3] = 0.0              # and one at its start (the backward channels meet it last)
    return mask


@pytest.mark.parametrize("hidden,split", [(70, 33), (300, 130), (64, 0), (64, 64), (2, 1)])
def test_linear_rnn_matches_pytorch_forward_and_backward(hidden: int, split: int) -> None:
    """Outputs and the gradient of p equal the eager gates + scan in float64, for blocks wider and
    narrower than the kernel's channel blocks and vectors, one direction only, and padding."""
    torch.manual_seed(0)
    N, T = 3, 41
    p = torch.randn(N, T, 3 * hidden, dtype=torch.float64, requires_grad=True)
    mask = _padded_mask(N, T, torch.float64)
    dy = torch.randn(N, T, hidden, dtype=torch.float64)

    def eager(p: torch.Tensor) -> torch.Tensor:
        from press.model.scan import scan

        v, f, g = p.chunk(3, dim=-1)
        a = torch.addcmul(1.0 - mask, torch.sigmoid(f), mask)
        return scan(a, torch.addcmul(v, a, v, value=-1.0), split) * torch.nn.functional.silu(g)

    y_ref = eager(p)
    (g_ref,) = torch.autograd.grad(y_ref, p, dy)
    y = linear_rnn(p, mask, split)
    (g,) = torch.autograd.grad(y, p, dy)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-12)
    vf = slice(0, 2 * hidden)                   # padded frames' inputs (v, f) get no gradient
    assert g[1, T - 7:, vf].abs().sum() == 0 and g[2, :3, vf].abs().sum() == 0


def test_linear_rnn_gradcheck() -> None:
    torch.manual_seed(1)
    p = torch.randn(2, 9, 3 * 6, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(2, 9, 1, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p: linear_rnn(p, mask, 4), (p,))


def test_linear_rnn_block_equals_the_pytorch_block_in_float32() -> None:
    """The module, kernel on and off: outputs and every parameter's gradient to float32 rounding."""
    torch.manual_seed(2)
    rnn = LinearRNN(dim=24, hidden=96, chunk=8)
    x = torch.randn(3, 500, 24)
    mask = _padded_mask(3, 500, torch.float32)
    results = []
    for off in (False, True):
        rnn.zero_grad()
        if off:
            with kernels.disabled():
                y = rnn(x, mask)
        else:
            y = rnn(x, mask)
        (y * torch.linspace(-1, 1, 24)).sum().backward()
        results.append((y.detach(), {n: q.grad.clone() for n, q in rnn.named_parameters()}))
    (y, grads), (y_ref, grads_ref) = results
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-6)
    for name in grads:
        torch.testing.assert_close(grads[name], grads_ref[name], rtol=1e-4, atol=1e-5, msg=name)


def test_linear_rnn_leaves_autocast_and_other_dtypes_to_pytorch() -> None:
    rnn = LinearRNN(dim=8, hidden=16, chunk=8)
    x, mask = torch.randn(1, 20, 8), torch.ones(1, 20, 1)
    assert kernels.usable(rnn.proj_in(x)) and not kernels.usable(rnn.proj_in(x).bfloat16())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert rnn(x, mask).dtype == torch.bfloat16     # the eager path, which keeps the gate in float32
    with torch.no_grad():
        y = linear_rnn(rnn.proj_in(x), mask, 8)
    assert y.shape == (1, 20, 16) and torch.isfinite(y).all()


def test_a_failed_build_warns_and_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a compiler the kernels are off, with one warning, and the model still runs."""
    from torch.utils import cpp_extension

    def no_compiler(*args, **kwargs):
        raise RuntimeError("Error building extension: c++: command not found")

    monkeypatch.setattr(kernels, "_state", {})
    monkeypatch.setattr(cpp_extension, "load", no_compiler)
    monkeypatch.setattr(cpp_extension, "_get_build_directory", lambda name, verbose: "/nonexistent")
    with pytest.warns(RuntimeWarning, match="could not be built"):
        assert not kernels.available()
    with warnings.catch_warnings():
        warnings.simplefilter("error")               # decided once: no second warning
        assert not kernels.usable(torch.zeros(1, 2, 3))
        y = LinearRNN(dim=8, hidden=16, chunk=8)(torch.randn(1, 20, 8), torch.ones(1, 20, 1))
    assert y.shape == (1, 20, 8)
