"""press.runtime without torch: the exit rule equals press.prob's, the graphs' hashes are checked,
bad input fails like the CLI's, and the whole path runs in a process where torch cannot import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from press.errors import PressError
from press.export import export_onnx
from press.model import PressNet
from press.prob.exits import exit_probabilities, segment_decision
from press.runtime import load, rule
from tests.conftest import tiny_config

ROOT = Path(__file__).resolve().parents[1]

NO_TORCH = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is not installed here")
sys.meta_path.insert(0, NoTorch())
for m in [m for m in sys.modules if m == "torch" or m.startswith("torch.")]:
    del sys.modules[m]
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    net = PressNet(tiny_config()).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export_onnx(net, tmp_path_factory.mktemp("export"), name="tiny")


def test_rule_equals_torch() -> None:
    g = torch.Generator().manual_seed(0)
    N, S, W, B = 3, 2, 1200, 400
    est = torch.randn(N, S, W, generator=g) * 0.1
    mix = torch.randn(N, W, generator=g) * 0.1
    est[0, 0, :400] = 0                                       # a silent block: the edges
    alpha = torch.rand(N, S, 3, generator=g) * 50 + 0.01
    beta = torch.rand(N, S, 3, generator=g) * 0.1 + 1e-6
    lengths = torch.tensor([1200, 900, 350])
    for t in (-3.0, 0.0, 10.0, 25.0):
        ref = exit_probabilities(est, mix, alpha, beta, t, 0.7, B, p_ref=0.01, lengths=lengths)
        got = rule.exit_probabilities(est.numpy(), mix.numpy(), alpha.numpy(), beta.numpy(), t, 0.7, B, 0.01,
                                      lengths.numpy())
        for name in ("snr", "snri", "snr_ref", "exit", "block"):
            np.testing.assert_allclose(got[name], getattr(ref, name).numpy(), rtol=1e-6, atol=1e-9)
        valid = np.array([[True, True, True], [True, True, True], [True, False, False]])
        for q in (1.0, 0.5):
            assert (rule.segment_decision(ref.decision.numpy(), valid, q)
                    == segment_decision(ref.decision, torch.from_numpy(valid), q).numpy()).all()


def test_tampered_graph_is_refused(exported, tmp_path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in exported.parent.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    load(copy / "manifest.json")                              # intact: loads
    graph = copy / "exit_2.onnx"
    data = bytearray(graph.read_bytes())
    data[-1] ^= 1
    graph.write_bytes(bytes(data))
    with pytest.raises(PressError, match="sha256 does not match"):
        load(copy / "manifest.json")


def test_bad_manifests_and_inputs(exported, tmp_path) -> None:
    with pytest.raises(PressError, match="no such manifest"):
        load(tmp_path / "missing.json")
    bad = tmp_path / "manifest.json"
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(PressError, match="not a PRESS export manifest"):
        load(bad)
    model = load(exported)
    with pytest.raises(PressError, match="no samples"):
        model.separate(np.zeros(0, dtype=np.float32))
    with pytest.raises(PressError, match="mono"):
        model.separate(np.zeros((2, 100), dtype=np.float32))
    with pytest.raises(PressError, match="exit must be between 1 and 3"):
        model.separate(np.zeros(800, dtype=np.float32), exit=4)
    with pytest.raises(PressError, match="context"):
        model.separate(np.zeros(80000, dtype=np.float32), context=0.0)
    with pytest.raises(PressError, match="no budget calibration"):   # exported without one
        model.separate(np.zeros(800, dtype=np.float32), budget=1.0)
    with pytest.raises(PressError, match="not both"):
        model.separate(np.zeros(800, dtype=np.float32), budget=1.0, exit=1)


def test_cli_onnx_backend_without_torch(exported, tmp_path) -> None:
    """`press separate --backend onnx` in a process where `import torch` fails."""
    rng = np.random.default_rng(0)
    wav = tmp_path / "mix.wav"
    sf.write(wav, (rng.standard_normal(16000 * 5) * 0.1).astype(np.float32), 16000)   # resampled inside
    (tmp_path / "empty.wav").write_bytes(b"")
    code = NO_TORCH + f"""
from press.cli import main
code = main(["separate", "--backend", "onnx", {str(exported)!r}, {str(wav)!r}, {str(tmp_path / 'empty.wav')!r},
             "--out", {str(tmp_path / 'sep')!r}, "--target-db", "0", "--confidence", "0.5"])
assert "torch" not in sys.modules, "torch was imported"
sys.exit(code)
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr                  # the empty file failed, the other worked
    assert "empty.wav" in proc.stderr and "error" in proc.stderr
    out, rate = sf.read(tmp_path / "sep" / "mix_s1.wav")
    assert rate == 16000 and len(out) == 16000 * 5
    report = json.loads((tmp_path / "sep" / "mix.json").read_text())
    assert report["backend"] == "onnx" and sum(report["exit_histogram"]) == len(report["segments"])


def test_expected_exit_snr_equals_torch() -> None:
    """The numpy quadrature of E[exit-SNR in dB] equals press.prob.exits' (alpha from 0.05 to 1e5,
    silent estimates and residuals, partial and empty blocks), and so does the segment quality."""
    from press.inference.policies import segment_quality
    from press.prob.exits import expected_block_snr_db, expected_exit_snr_db

    g = torch.Generator().manual_seed(1)
    shape = (4, 2, 6)
    alpha = 10 ** (torch.rand(shape, generator=g, dtype=torch.float64) * 6.3 - 1.3)
    beta = 10 ** (torch.rand(shape, generator=g, dtype=torch.float64) * 8 - 6)
    e_est = torch.rand(shape, generator=g, dtype=torch.float64) * 10
    e_res = torch.rand(shape, generator=g, dtype=torch.float64) * 10
    e_est[0, 0, :2] = 0
    e_res[1, 1, 3] = 0
    count = torch.tensor([400.0, 400.0, 400.0, 400.0, 17.0, 0.0])
    for p_ref in (1e-2, 1e-7):
        ref = expected_exit_snr_db(alpha, beta, e_est, e_res, count, torch.tensor(p_ref))
        got = rule.expected_exit_snr_db(alpha.numpy(), beta.numpy(), e_est.numpy(), e_res.numpy(), count.numpy(),
                                        p_ref)
        np.testing.assert_allclose(got, ref.numpy(), rtol=1e-7, atol=1e-6)   # dB
    N, S, W, B = 3, 2, 2400, 400
    est = torch.randn(N, S, W, generator=g) * 0.1
    mix = torch.randn(N, W, generator=g) * 0.1
    est[0, 0, :400] = 0
    a = torch.rand(N, S, 6, generator=g) * 50 + 0.05
    b = torch.rand(N, S, 6, generator=g) * 0.1 + 1e-6
    lengths = torch.tensor([2400, 1900, 350])
    ref = expected_block_snr_db(est, mix, a, b, B, p_ref=0.01, lengths=lengths)
    got = rule.expected_block_snr_db(est.numpy(), mix.numpy(), a.numpy(), b.numpy(), B, 0.01, lengths.numpy())
    np.testing.assert_allclose(got, ref.numpy(), rtol=1e-5, atol=1e-5)   # float32 vs float64 block sums
    valid = torch.tensor([[True] * 4, [True, True, True, False], [True, False, False, False]])
    np.testing.assert_allclose(rule.segment_quality(got, slice(1, 5), valid.numpy()),
                               segment_quality(ref, slice(1, 5), valid).numpy(), rtol=1e-5, atol=1e-5)
