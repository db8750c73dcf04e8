"""The log-spectrum branch of the encoder head (`model.spec_window`): the power spectrum of the
window the docs describe (centred on each frame, or ending with it), starting at zero so that a
trained model grows it without changing its outputs, counted in MACs and exported to ONNX."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import test_export_stream as export_stream
import test_stream_model as stream_model
import torch
from test_causal import causal_model

from press.errors import PressError
from press.export import export_onnx
from press.model import PressNet
from press.model.compute import exit_costs
from press.model.heads import SpectralContext
from press.runtime import load
from tests.conftest import tiny_config

W, P = 64, 4


def _reference_power(x: torch.Tensor, causal: bool) -> torch.Tensor:
    """|rfft(Hann * window)|^2 of the W samples around (or ending with) each P-sample frame (B, T, bins),
    written out sample by sample in float64."""
    x = x.double()
    B, L = x.shape
    taper = torch.hann_window(W, periodic=True, dtype=torch.float64)
    frames = []
    for t in range(L // P):
        start = (t + 1) * P - W if causal else t * P + P // 2 - W // 2
        idx = torch.arange(start, start + W)
        window = torch.where((idx >= 0) & (idx < L), x[:, idx.clamp(0, L - 1)], torch.zeros(()))
        frames.append(torch.fft.rfft(window * taper).abs().pow(2))
    return torch.stack(frames, 1)


@pytest.mark.parametrize("causal", [False, True])
def test_power_spectrum_of_the_window_around_each_frame(causal):
    torch.manual_seed(0)
    branch = SpectralContext(W, P, 8, causal)
    x = torch.randn(2, 40 * P)
    with torch.no_grad():
        branch.proj.weight.normal_()
        got = branch(x)                                                      # (B, 1, T, D)
        want = branch.proj(branch.norm(_reference_power(x, causal).float().add(1e-10).log())).unsqueeze(1)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_a_causal_window_sees_nothing_after_its_frame():
    torch.manual_seed(1)
    branch = SpectralContext(W, P, 8, causal=True)
    with torch.no_grad():
        branch.proj.weight.normal_()
        x = torch.randn(1, 30 * P)
        later = x.clone()
        later[:, 20 * P:] += torch.randn(1, 10 * P)
        a, b = branch(x), branch(later)
    assert torch.equal(a[:, :, :20], b[:, :, :20]) and not torch.equal(a[:, :, 20], b[:, :, 20])


def test_the_branch_starts_at_zero_so_a_grown_model_keeps_its_outputs():
    torch.manual_seed(2)
    base = PressNet(tiny_config()).eval()
    grown = PressNet(tiny_config(spec_window=W)).eval()
    missing, unexpected = grown.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("encoder_head.spectrum.") for k in missing)
    x = torch.randn(2, 1600)
    with torch.no_grad():
        for a, b in zip(base(x), grown(x)):
            assert torch.equal(a.estimate, b.estimate) and torch.equal(a.alpha, b.alpha)


def test_its_macs_are_counted():
    base, grown = PressNet(tiny_config()), PressNet(tiny_config(spec_window=W))
    frames_per_s = 8000 / P
    bins = W // 2 + 1
    extra = frames_per_s * ((bins + 1) * 16 + 2 * W * math.log2(W) + 2 * W) / 1e9   # projection to D = 16, FFT
    for a, b in zip(exit_costs(base), exit_costs(grown)):
        assert b.gmacs_per_second - a.gmacs_per_second == pytest.approx(extra, rel=1e-6)


@pytest.mark.parametrize("window", [6, 4, -8])
def test_bad_windows_are_refused(window):
    with pytest.raises(PressError, match="multiple of patch"):
        tiny_config(spec_window=window)


def _causal_with_spectrum():
    model = causal_model(seed=4, spec_window=W)
    with torch.no_grad():
        model.encoder_head.spectrum.proj.weight.normal_(0, 0.3)
    return model


@pytest.mark.parametrize("sizes", [[1], [37], [400], [3, 700, 1, 90]])
def test_a_causal_model_streams_its_spectrum_exactly(sizes):
    """The stream keeps W - P samples (more than the analysis taps' K - 1) and so computes every
    window the whole-file forward does."""
    model = _causal_with_spectrum()
    assert model.encoder_head.history == W - P > model.cfg.enc_kernel - 1
    x = torch.randn(2, 1537)
    with torch.no_grad():
        whole = model(x)
    stream_model.assert_matches(stream_model.streamed(model, x, sizes, model.n_exits), whole)


def test_the_streaming_onnx_graphs_carry_the_longer_history(tmp_path):
    model = _causal_with_spectrum()
    signal = torch.randn(2, export_stream.LENGTH, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        whole = model(signal)
    runtime = load(export_stream.export(model, tmp_path), threads=1)
    for exit in (1, 3):
        outputs = export_stream.pushed(runtime.stream(exit=exit, batch=2), signal.numpy())
        export_stream.assert_matches(outputs, whole)


def test_onnx_export_matches_torch(tmp_path):
    torch.manual_seed(3)
    net = PressNet(tiny_config(spec_window=W)).eval()
    with torch.no_grad():
        net.encoder_head.spectrum.proj.weight.normal_(0, 0.3)
        for head in net.decoder_heads:
            head.synthesis.weight.normal_(0, 0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rt = load(export_onnx(net, tmp_path, name="spec"), threads=1)
    rng = np.random.default_rng(0)
    windows = (rng.standard_normal((2, 3200)) * 0.2).astype(np.float32)
    lengths, scale = np.array([3200, 2500]), np.array([0.2, 0.1], dtype=np.float32)
    windows[1, lengths[1]:] = 0
    with torch.no_grad():
        state = net.begin(torch.from_numpy(windows), torch.from_numpy(lengths), torch.from_numpy(scale))
        for got in rt.run_exits(windows, lengths, scale):
            ref, state = net.advance(state)
            peak = float(ref.estimate.abs().max())
            assert float(np.abs(ref.estimate.numpy() - got[0]).max()) <= 1e-3 * peak
            assert float(np.abs(ref.alpha.numpy() - got[1]).max()) <= 1e-4


def test_the_branch_learns_at_its_own_rate():
    """`train.spectrum_lr_scale` puts the branch's parameters, and only them, in groups at that
    multiple of the schedule's learning rate; a model without the branch keeps the two usual groups."""
    from omegaconf import OmegaConf

    from press.training.loop import make_optimizer

    cfg = OmegaConf.create({"train": {"weight_decay": 0.01, "lr": 1e-3, "betas": [0.9, 0.999],
                                      "spectrum_lr_scale": 10.0}})
    model = PressNet(tiny_config(spec_window=W))
    groups = make_optimizer(model, cfg).param_groups
    branch = {id(p) for p in model.encoder_head.spectrum.parameters()}
    seen = [id(p) for g in groups for p in g["params"]]
    assert sorted(seen) == sorted(id(p) for p in model.parameters())
    for g in groups:
        assert {id(p) in branch for p in g["params"]} == {g["lr_scale"] == 10.0}
    assert len(make_optimizer(PressNet(tiny_config()), cfg).param_groups) == 2
