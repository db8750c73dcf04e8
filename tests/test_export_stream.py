"""The streaming export (press.export.onnx_stream) run by press.runtime.stream with onnxruntime: its
blocks equal the torch whole-file forward at the exit each took (fixed exits and exits chosen per
block, lazy catch-up exact), every graph run is counted, and a damaged export is refused."""

import json
import warnings

import numpy as np
import pytest
import torch
from test_causal import causal_model
from test_stream_exits import forced
from test_stream_exits import run as torch_run

from press.errors import PressError
from press.export.onnx_stream import export_onnx_stream
from press.model.stream_exits import frame_costs
from press.runtime import load

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

BLOCK = 400                    # the tiny model's block
LENGTH = 6 * BLOCK + 123       # six whole blocks and a partial one that ends inside a frame


def export(model, out):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the TorchScript exporter's tracer warnings
        export_onnx_stream(model, out, name="tiny-causal")
    return out


@pytest.fixture(scope="module")
def model():
    return causal_model()


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    return export(model, tmp_path_factory.mktemp("stream"))


@pytest.fixture(scope="module")
def signal():
    return torch.randn(2, LENGTH, generator=torch.Generator().manual_seed(3))


@pytest.fixture(scope="module")
def whole(model, signal):
    with torch.no_grad():
        return model(signal)


def pushed(stream, x: np.ndarray, sizes=(37, 400, 1, 999)) -> list:
    """x (B, L) through `stream` in chunks of the given sizes (cycled), then its end; blocks in order."""
    outputs, position, k = [], 0, 0
    while position < x.shape[1]:
        outputs += stream.push(x[:, position:position + sizes[k % len(sizes)]])
        position, k = position + sizes[k % len(sizes)], k + 1
    outputs += stream.end()
    assert [o.first_block for o in outputs] == list(range(len(outputs)))
    assert sum(o.estimate.shape[-1] for o in outputs) == x.shape[1]
    return outputs


def assert_matches(outputs, whole, partial_alpha: bool = False) -> None:
    """Each block equals the whole-file forward at its exit (estimates to 1e-5 of the peak; alpha
    and beta of whole blocks to 1e-4)."""
    for o in outputs:
        w = whole[o.exit - 1]
        reference = w.estimate[..., o.start:o.start + o.estimate.shape[-1]].numpy()
        peak = float(w.estimate.abs().max())
        np.testing.assert_allclose(o.estimate, reference, atol=1e-5 * peak, rtol=0)
        if o.estimate.shape[-1] == BLOCK:
            np.testing.assert_allclose(o.alpha[..., 0], w.alpha[..., o.first_block].numpy(), rtol=1e-4)
            np.testing.assert_allclose(o.beta[..., 0], w.beta[..., o.first_block].numpy(), rtol=1e-4)


def test_manifest_and_graphs(exported, model):
    m = json.loads((exported / "manifest.json").read_text())
    assert m["format"] == "press-onnx-stream" and m["block"] == BLOCK and m["lookahead"] == model.lookahead
    assert [g["file"] for g in m["graphs"]] == ["stream_1.onnx", "stream_2.onnx", "stream_3.onnx"]
    c, fpb = frame_costs(model), model.cfg.frames_per_block
    # the graphs' MACs per block add up to the whole model's at the last exit
    per_frame_all = c.front + sum(c.group) + sum(c.decoder) + sum(c.features)
    assert sum(m["macs_per_block"]) == fpb * per_frame_all + sum(c.pool)


@pytest.mark.parametrize("exit", [1, 2, 3])
def test_fixed_exit_equals_the_whole_file_forward(exported, whole, signal, exit):
    runtime = load(exported, threads=1)
    stream = runtime.stream(exit=exit, batch=2)
    outputs = pushed(stream, signal.numpy())
    assert {o.exit for o in outputs} == {exit}
    assert_matches(outputs, whole)
    assert stream.macs() == (2 * 7 * sum(runtime.manifest["macs_per_block"][:exit]), 0)


def test_exits_per_block_with_lazy_catch_up_are_exact(exported, model, whole, signal):
    """Blocks sent to exits 1, 3, 2, 1, 1, 3, 2: the skipped exits catch up on the blocks they
    missed, so each block is the whole-file forward at its exit, as the torch BlockStream's."""
    pattern = [1, 3, 2, 1, 1, 3, 2]
    stream = load(exported).stream(batch=2)
    stream.decide = forced(pattern)
    outputs = pushed(stream, signal.numpy())
    assert [o.exit for o in outputs] == pattern
    assert_matches(outputs, whole)
    _, reference = torch_run(model, signal, forced(pattern), "lazy")
    for o, r in zip(outputs, reference):
        np.testing.assert_allclose(o.estimate, r.estimate.numpy(), atol=1e-5 * float(r.estimate.abs().max()))
    total, catch_up = stream.macs()
    # before block 1, exits 2 and 3 catch up block 0; before block 5, exit 2 blocks 3 and 4, exit 3
    # blocks 2, 3 and 4. Graph 2 runs on 4 blocks, graph 3 on 2, besides.
    per_block = load(exported).manifest["macs_per_block"]
    assert catch_up == 2 * (3 * per_block[1] + 4 * per_block[2])
    assert total == 2 * (7 * per_block[0] + 7 * per_block[1] + 6 * per_block[2])


def test_reset_and_hold_are_exact_until_a_deeper_block(exported, whole, signal):
    for catch_up in ("reset", "hold"):
        stream = load(exported).stream(catch_up=catch_up, batch=2)
        stream.decide = forced([2, 2, 1, 3, 3, 3, 3])
        outputs = pushed(stream, signal.numpy())
        assert_matches(outputs[:3], whole)
        assert stream.macs()[1] == 0
        late = outputs[3]   # exit 3 skipped block 2: not the whole-file forward any more
        reference = whole[2].estimate[..., late.start:late.start + BLOCK].numpy()
        assert np.abs(late.estimate - reference).max() > 1e-4 * float(whole[2].estimate.abs().max())


def test_the_exit_rule_decides_with_the_stored_recalibration(exported, signal):
    """An untrained model is far from 40 dB: every block goes to the last exit. The decision applies
    the manifest's recalibration: a tiny beta scale (a confident model) lets every block leave at 1."""
    runtime = load(exported)
    outputs = pushed(runtime.stream(target_db=40.0, confidence=0.99), signal.numpy()[:1])
    assert {o.exit for o in outputs} == {3}
    runtime.scales = [(1.0, 1e-12)] * runtime.n_exits
    outputs = pushed(runtime.stream(target_db=40.0, confidence=0.99), signal.numpy()[:1])
    assert {o.exit for o in outputs} == {1}


def test_a_damaged_export_is_refused(exported, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(exported, copy)
    with open(copy / "stream_2.onnx", "r+b") as f:
        f.truncate(1000)
    with pytest.raises(PressError, match="sha256"):
        load(copy)
    m = json.loads((copy / "manifest.json").read_text())
    del m["states"]
    (copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(PressError, match="states"):
        load(copy)
    with pytest.raises(PressError, match="exits 1..3"):
        load(exported).stream(exit=4)


def test_a_cumulative_model_carries_its_sums_from_exit_to_exit(signal, tmp_path):
    """alpha_i, beta_i from the running sums of the exits' raw outputs: the sums pass from graph to
    graph, through the lazy catch-up too."""
    model = causal_model(cumulative=True)
    with torch.no_grad():
        whole = model(signal)
    stream = load(export(model, tmp_path)).stream(batch=2)
    stream.decide = forced([1, 3, 2, 1, 1, 3, 2])
    assert_matches(pushed(stream, signal.numpy()), whole)


def test_a_file_runs_as_one_stream_as_torch_runs_it(exported, model, tmp_path):
    """`separate_file` on a streaming export (what `press enhance --backend onnx` calls) is torch's
    file runner for a causal model: the same exit per block and the same samples."""
    import soundfile as sf

    from press.engine.policies import Dynamic
    from press.inference.causal import causal_runner
    from press.io.streaming import ArrayReader

    onnx_model = load(exported / "manifest.json", threads=1)
    x = np.random.default_rng(4).standard_normal(LENGTH).astype(np.float32) * 0.1
    x[LENGTH // 3:LENGTH // 2] *= 8.0
    sf.write(tmp_path / "in.wav", x, 8000, subtype="FLOAT")
    paths = [tmp_path / "s1.wav", tmp_path / "s2.wav"]
    for target in (-20.0, 10.0):
        report = onnx_model.separate_file(tmp_path / "in.wav", paths, target_db=target, confidence=0.5)
        torch_result = causal_runner(model, target, 0.5).run(ArrayReader(x), Dynamic())
        assert [b["exit"] for b in report["blocks"]] == torch_result.exits
        written = np.stack([sf.read(p, dtype="float32")[0] for p in paths])
        np.testing.assert_allclose(written, torch_result.sources, rtol=0,
                                   atol=1e-5 * np.abs(torch_result.sources).max())
        assert report["backend"] == "onnx"
    assert set(torch_result.exits) != {1}        # the two targets took different paths
    with pytest.raises(PressError, match="no segment"):
        onnx_model.separate_file(tmp_path / "in.wav", paths, segment=1.0)
    with pytest.raises(PressError, match="budget is fitted on segments"):
        onnx_model.separate_file(tmp_path / "in.wav", paths, budget=0.01)
