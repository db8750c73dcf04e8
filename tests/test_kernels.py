"""The compiled CPU kernels (press.model.kernels) against the PyTorch code they replace."""

from __future__ import annotations

import shutil
import warnings

import pytest
import torch
from conftest import tiny_config

import press
from press.model import PressNet, kernels
from press.model.blocks import LinearRNN
from press.model.kernels.linear_rnn import linear_rnn
from press.training.loss import TrainingLoss

# Without a C++ compiler, or where they are off (PRESS_KERNELS=0; by default outside Linux x86-64), PRESS
# runs its PyTorch code (the rest of the suite); otherwise the kernels must build: a build error fails
# here instead of passing as a skip.
pytestmark = pytest.mark.skipif(shutil.which("c++") is None or not kernels.enabled()[0],
                                reason="no C++ compiler, or the kernels are off here: they are not built")


@pytest.fixture(autouse=True)
def _loaded() -> None:
    """The operators exist once the library is loaded: tests that call them directly load it first."""
    kernels.available()


def test_kernels_build_where_there_is_a_compiler() -> None:
    assert kernels.available()


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
    bias = torch.randn(3 * hidden, dtype=torch.float64, requires_grad=True)
    mask = _padded_mask(N, T, torch.float64)
    dy = torch.randn(N, T, hidden, dtype=torch.float64)

    def eager(p: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        from press.model.scan import scan

        v, f, g = (p + bias).chunk(3, dim=-1)
        a = torch.addcmul(1.0 - mask, torch.sigmoid(f), mask)
        return scan(a, torch.addcmul(v, a, v, value=-1.0), split) * torch.nn.functional.silu(g)

    y_ref = eager(p, bias)
    g_ref, gb_ref = torch.autograd.grad(y_ref, (p, bias), dy)
    y = linear_rnn(p, bias, mask, split)
    g, gb = torch.autograd.grad(y, (p, bias), dy)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gb, gb_ref, rtol=1e-12, atol=1e-12)
    vf = slice(0, 2 * hidden)                   # padded frames' inputs (v, f) get no gradient
    assert g[1, T - 7:, vf].abs().sum() == 0 and g[2, :3, vf].abs().sum() == 0


def test_linear_rnn_gradcheck() -> None:
    torch.manual_seed(1)
    p = torch.randn(2, 9, 3 * 6, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(3 * 6, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(2, 9, 1, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p, b: linear_rnn(p, b, mask, 4), (p, bias))


def _block_against_pytorch(block: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor) -> None:
    """The module, kernel on and off: outputs and every parameter's gradient to float32 rounding."""
    results = []
    for off in (False, True):
        block.zero_grad()
        with kernels.disabled() if off else torch.enable_grad():
            y = block(x, mask)
        (y * torch.linspace(-1, 1, y.shape[-1])).sum().backward()
        results.append((y.detach(), {n: q.grad.clone() for n, q in block.named_parameters()}))
    (y, grads), (y_ref, grads_ref) = results
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-6)
    for name in grads:
        torch.testing.assert_close(grads[name], grads_ref[name], rtol=1e-4, atol=1e-5, msg=name)


def test_linear_rnn_block_equals_the_pytorch_block_in_float32() -> None:
    torch.manual_seed(2)
    _block_against_pytorch(LinearRNN(dim=24, hidden=96, chunk=8), torch.randn(3, 500, 24),
                           _padded_mask(3, 500, torch.float32))


@pytest.mark.parametrize("block", ["R", "C"])
def test_blocks_under_bf16_autocast_run_the_kernels_at_the_pytorch_codes_precision(block: str) -> None:
    """Under bf16 autocast the R and C blocks keep their projections in bf16 and run the kernel in
    float32 on them (the forget gate's logits from a float32 projection): outputs within bf16
    rounding of the PyTorch code under the same autocast, and the same dtypes out."""
    from press.model.blocks import LongConv

    torch.manual_seed(10)
    module = LinearRNN(dim=32, hidden=64, chunk=8) if block == "R" else LongConv(dim=32, hidden=48, kernel=17)
    x = torch.randn(2, 200, 32, requires_grad=True)
    mask = _padded_mask(3, 200, torch.float32)[1:]
    results = []
    for off in (False, True):
        with torch.autocast("cpu", dtype=torch.bfloat16), (kernels.disabled() if off else torch.enable_grad()):
            y = module(x, mask)
        (g,) = torch.autograd.grad(y.float().square().sum(), x)
        results.append((y, g))
    (y, g), (y_ref, g_ref) = results
    assert y.dtype == y_ref.dtype == torch.bfloat16
    assert (y.float() - y_ref.float()).norm() <= 0.02 * y_ref.float().norm()
    assert (g - g_ref).norm() <= 0.05 * g_ref.norm()
    assert kernels.usable(x) and not kernels.usable(x.bfloat16())


def test_a_failed_build_warns_and_falls_back(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Without a compiler the kernels are off, with one warning, and the model still runs."""
    from torch.utils import cpp_extension

    def no_compiler(*args, **kwargs):
        raise RuntimeError("Error building extension: c++: command not found")

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(kernels, "_state", {})
    monkeypatch.setattr(cpp_extension, "load", no_compiler)
    with pytest.warns(RuntimeWarning, match="could not be built"):
        assert not kernels.available()
    with warnings.catch_warnings():
        warnings.simplefilter("error")               # decided once: no second warning
        assert not kernels.usable(torch.zeros(1, 2, 3))
        y = LinearRNN(dim=8, hidden=16, chunk=8)(torch.randn(1, 20, 8), torch.ones(1, 20, 1))
    assert y.shape == (1, 20, 8)


@pytest.mark.parametrize("E,K", [(20, 5), (48, 33), (3, 1)])
def test_glu_conv_matches_pytorch_forward_and_backward(E: int, K: int) -> None:
    """GLU, depthwise convolution and SiLU: outputs and the gradients of q, weight and bias equal
    F.glu + nn.functional.conv1d + silu in float64, with padding, channel tails and short items."""
    from press.model.kernels.glu_conv import glu_conv

    torch.manual_seed(3)
    N, T = 3, 23
    q = torch.randn(N, T, 2 * E, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(E, 1, K, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(E, dtype=torch.float64, requires_grad=True)
    mask = _padded_mask(N, T, torch.float64)
    dz = torch.randn(N, T, E, dtype=torch.float64)

    u = torch.nn.functional.glu(q, dim=-1) * mask
    ref = torch.nn.functional.silu(torch.nn.functional.conv1d(u.transpose(1, 2), weight, bias, padding=K // 2,
                                                              groups=E).transpose(1, 2))
    grads_ref = torch.autograd.grad(ref, (q, weight, bias), dz)
    z = glu_conv(q, mask, weight, bias)
    grads = torch.autograd.grad(z, (q, weight, bias), dz)
    torch.testing.assert_close(z, ref, rtol=1e-12, atol=1e-12)
    for got, want, name in zip(grads, grads_ref, ("q", "weight", "bias")):
        torch.testing.assert_close(got, want, rtol=1e-11, atol=1e-11, msg=name)


def test_glu_conv_gradcheck() -> None:
    from press.model.kernels.glu_conv import glu_conv

    torch.manual_seed(4)
    q = torch.randn(2, 7, 2 * 5, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(5, 1, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(5, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(2, 7, 1, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda q, w, b: glu_conv(q, mask, w, b), (q, weight, bias))


def test_long_conv_block_equals_the_pytorch_block_in_float32() -> None:
    from press.model.blocks import LongConv

    torch.manual_seed(5)
    _block_against_pytorch(LongConv(dim=24, hidden=40, kernel=65), torch.randn(3, 300, 24),
                           _padded_mask(3, 300, torch.float32))


def test_swiglu_matches_pytorch_and_gradcheck() -> None:
    from press.model.blocks import SwiGLU
    from press.model.kernels.swiglu import swiglu

    torch.manual_seed(6)
    q = torch.randn(3, 11, 2 * 37, dtype=torch.float64, requires_grad=True)
    dy = torch.randn(3, 11, 37, dtype=torch.float64)
    a, b = q.chunk(2, dim=-1)
    ref = torch.nn.functional.silu(a) * b
    torch.testing.assert_close(swiglu(q), ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(torch.autograd.grad(swiglu(q), q, dy)[0], torch.autograd.grad(ref, q, dy)[0],
                               rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(swiglu, (q[:1, :3].detach().requires_grad_(),))
    mlp = SwiGLU(16, 40)
    x = torch.randn(2, 30, 16)
    with kernels.disabled():
        y_ref = mlp(x)
    torch.testing.assert_close(mlp(x), y_ref, rtol=1e-5, atol=1e-6)


def test_whole_network_and_its_gradients_equal_the_pytorch_code() -> None:
    """PRESS-Net with every kernel against itself with none: each exit's estimate and variance
    parameters, and after the training loss, every parameter's gradient, to float32 rounding; the
    shipped model's last exit on recorded-length audio to 1e-4 of its scale."""
    torch.manual_seed(7)
    model = PressNet(tiny_config()).train()
    sources = torch.randn(2, 2, 4000) * torch.rand(2, 2, 1)
    mixture = sources.sum(1)
    loss_fn = TrainingLoss(400, "student_t", "shared", 0.2)
    runs = []
    for off in (False, True):
        model.zero_grad()
        with kernels.disabled() if off else torch.enable_grad():
            outputs = model(mixture)
            loss_fn(outputs, sources, mixture).loss.backward()
        runs.append(([t.detach() for o in outputs for t in (o.estimate, o.alpha, o.beta)],
                     {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (outs, grads), (outs_ref, grads_ref) = runs
    for got, want in zip(outs, outs_ref):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert grads.keys() == grads_ref.keys() and len(grads) > 20
    for name in grads:
        scale = grads_ref[name].abs().max().item() + 1e-12
        assert (grads[name] - grads_ref[name]).abs().max().item() <= 1e-3 * scale, name

    net = press.load("default").model.eval()
    x = torch.randn(1, 24000) * 0.1
    with torch.inference_mode():
        y = net(x)[-1].estimate
        with kernels.disabled():
            y_ref = net(x)[-1].estimate
    assert (y - y_ref).abs().max() <= 1e-4 * y_ref.abs().max()


def test_rms_norm_matches_pytorch_and_gradcheck() -> None:
    from press.model.blocks import RMSNorm
    from press.model.kernels.rms_norm import rms_norm

    torch.manual_seed(8)
    for D in (64, 37):
        x = torch.randn(5, 13, D, dtype=torch.float64, requires_grad=True)
        w = torch.randn(D, dtype=torch.float64, requires_grad=True)
        dy = torch.randn(5, 13, D, dtype=torch.float64)
        ref = torch.nn.functional.rms_norm(x, (D,), w, 1e-6)
        got = rms_norm(x, w, 1e-6)
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
        for g, r in zip(torch.autograd.grad(got, (x, w), dy), torch.autograd.grad(ref, (x, w), dy)):
            torch.testing.assert_close(g, r, rtol=1e-11, atol=1e-11)
    assert torch.autograd.gradcheck(lambda x, w: rms_norm(x, w, 1e-6), (x[:2, :3].detach().requires_grad_(),
                                                                       w.detach().requires_grad_()))
    norm = RMSNorm(24)
    with torch.no_grad():
        norm.weight.normal_()
    x = torch.randn(3, 50, 24)
    with kernels.disabled():
        ref = norm(x)
    torch.testing.assert_close(norm(x), ref, rtol=1e-5, atol=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):          # the residual stream stays float32
        got = norm(x)
        with kernels.disabled():
            ref = norm(x)
    assert got.dtype == ref.dtype == torch.float32
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
    assert norm.state_dict().keys() == torch.nn.RMSNorm(24).state_dict().keys()


def test_a_trace_never_builds_the_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.compile tracing a block before the kernels were loaded: no build inside the trace (a
    graph break per block), one graph of the PyTorch code, the same outputs."""
    from torch._dynamo.utils import counters

    def no_build(build: kernels.Build) -> bool:
        raise AssertionError("the kernels were built inside a trace")

    monkeypatch.setattr(kernels, "_state", {})
    monkeypatch.setattr(kernels, "_load", no_build)
    torch._dynamo.reset()
    counters.clear()
    rnn = LinearRNN(dim=8, hidden=16, chunk=8)
    x, mask = torch.randn(2, 30, 8), torch.ones(2, 30, 1)
    y = torch.compile(rnn, backend="eager")(x, mask)
    assert counters["stats"]["unique_graphs"] == 1
    with kernels.disabled():
        torch.testing.assert_close(y, rnn(x, mask))


def test_results_do_not_depend_on_the_thread_count() -> None:
    """Bitwise the same outputs and gradients at one and at two threads: a run resumed on a machine
    with another number of cores continues exactly (tests/test_train_resume.py)."""
    from press.model.blocks import Block

    torch.manual_seed(9)
    blocks = [Block(kind, 32, rnn_hidden=64, conv_hidden=48, conv_kernel=17, ffn_hidden=64, heads=2,
                    ls_init=0.1, chunk=8) for kind in "RC"]
    x = torch.randn(2, 2, 1500, 32)
    mask = torch.ones(2, 1, 1500, 1)
    runs = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            for b in blocks:
                b.zero_grad()
            y = blocks[1](blocks[0](x, mask), mask)
            y.square().sum().backward()
            runs.append([y.detach()] + [p.grad.clone() for b in blocks for p in b.parameters()])
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(*runs):
        assert torch.equal(a, b)
