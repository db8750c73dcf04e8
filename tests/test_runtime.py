"""press.runtime without torch: the engine's exit rule equals press.prob's, the graphs' hashes are
checked, bad input fails like the CLI's, and the whole path runs in a process where torch cannot import."""

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

from press.engine import rule
from press.errors import PressError
from press.export import export_onnx
from press.model import PressNet
from press.prob.exits import exit_probabilities
from press.runtime import load
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
            np.testing.assert_allclose(getattr(got, name), getattr(ref, name).numpy(), rtol=1e-6, atol=1e-9)
        assert (got.decision == ref.decision.numpy()).all()


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
