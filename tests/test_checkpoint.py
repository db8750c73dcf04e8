import json

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file

from press.cli import main
from press.errors import PressError
from press.model import PressNet, load_config, model_config
from press.model.checkpoint import load_model, save_model


@pytest.fixture
def checkpoint(tmp_path):
    cfg = load_config("tiny")
    model = PressNet(model_config(cfg))
    path = tmp_path / "model.safetensors"
    save_model(path, model, cfg, extra={"recalibration": {"alpha_scale": 2.0}})
    return path, model


def test_round_trip_restores_weights_config_and_extras(checkpoint):
    path, model = checkpoint
    loaded, cfg, extra = load_model(path)
    assert cfg.model.name == "tiny" and extra == {"recalibration": {"alpha_scale": 2.0}}
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    x = torch.randn(1, 900)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x)[-1].estimate, loaded(x)[-1].estimate)


def test_truncated_checkpoint_is_refused(checkpoint):
    path, _ = checkpoint
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(PressError, match="checkpoint"):
        load_model(path)


def test_garbage_and_foreign_files_are_refused(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(PressError, match="not a readable safetensors"):
        load_model(junk)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, str(foreign))
    with pytest.raises(PressError, match="not a PRESS checkpoint"):
        load_model(foreign)
    with pytest.raises(PressError, match="not found"):
        load_model(tmp_path / "missing.safetensors")


def test_mismatched_weights_are_refused(tmp_path):
    cfg = load_config("tiny")
    path = tmp_path / "m.safetensors"
    save_model(path, PressNet(model_config(cfg)), cfg)
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    meta["config"] = OmegaConf.to_yaml(load_config("tiny", ["model.dim=24"]))
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(PressError, match="do not match"):
        load_model(path)


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    import press.model.checkpoint as ck

    def boom(tensors, filename, metadata):
        open(filename, "wb").write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(ck, "save_file", boom)
    cfg = load_config("tiny")
    with pytest.raises(KeyboardInterrupt):
        save_model(tmp_path / "m.safetensors", PressNet(model_config(cfg)), cfg)
    assert list(tmp_path.iterdir()) == []


def test_info_reads_checkpoints_and_yaml(checkpoint, tmp_path, capsys):
    path, model = checkpoint
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model"] == "tiny" and len(info["exits"]) == 3
    assert info["exits"][-1]["params"] == sum(p.numel() for p in model.parameters())
    yaml_path = tmp_path / "c.yaml"
    yaml_path.write_text(OmegaConf.to_yaml(load_config("tiny")))
    assert main(["info", str(yaml_path)]) == 0
    assert "GMAC/s" in capsys.readouterr().out
    assert main(["info", str(tmp_path / "nothing.safetensors")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_average_is_the_mean_of_the_weights_and_refuses_other_models(tmp_path, checkpoint, capsys):
    from press.model.checkpoint import average_checkpoints

    path_a, a = checkpoint
    cfg = load_config("tiny")
    torch.manual_seed(1)
    b = PressNet(model_config(cfg))                      # another initialisation of the same config
    path_b = tmp_path / "b.safetensors"
    save_model(path_b, b, cfg)
    out = tmp_path / "mean.safetensors"
    assert main(["average", str(out), str(path_a), str(path_b)]) == 0
    mean, _, extra = load_model(out)
    assert "recalibration" not in extra and extra["averaged"] == ["model.safetensors", "b.safetensors"]
    changed = 0
    for k, v in mean.state_dict().items():
        expected = (a.state_dict()[k].double() + b.state_dict()[k].double()) / 2
        torch.testing.assert_close(v.double(), expected, rtol=0, atol=1e-6)
        changed += not torch.equal(v, a.state_dict()[k])
    assert changed > 0
    assert average_checkpoints([path_a])[0].state_dict().keys() == a.state_dict().keys()
    other_cfg = OmegaConf.merge(cfg, {"model": {"n_exits": 1}})
    path_c = tmp_path / "c.safetensors"
    save_model(path_c, PressNet(model_config(other_cfg)), other_cfg)
    with pytest.raises(PressError, match="differs"):
        average_checkpoints([path_a, path_c])
    assert main(["average", str(path_b), str(path_a), str(path_b)]) != 0
    assert "new file" in capsys.readouterr().err
