"""Training a causal PRESS-Net: the loss works at the network's running level, block by block;
`press train enhance-rt` runs end to end (crops, full-length fine-tuning, validation, resume); and
what it trains runs offline through the segment runner."""

import numpy as np
import pytest
import torch
from conftest import tiny_config
from safetensors.torch import load_file
from test_train_resume import Killed, assert_same_tree, kill_at
from tiny_training import loss_and_grads, tiny_run_config

import press
from press.cli import main
from press.data.views import collate_padded
from press.engine.policies import Dynamic, Static
from press.inference.runner import separate
from press.model import PressNet, model_config
from press.model.level import block_power
from press.training.data import build_dataset
from press.training.loop import train
from press.training.loss import TrainingLoss, block_level


def causal_model(causal: bool = True, **overrides) -> PressNet:
    """The tests' tiny model, causal unless told otherwise, with random synthesis filters (zero at
    initialisation, which would make every estimate the input / S)."""
    model = PressNet(tiny_config(causal=causal, **overrides))
    with torch.no_grad():
        for head in model.decoder_heads:
            head.synthesis.weight.normal_(std=0.3)
    return model


def test_the_loss_level_is_the_one_the_network_scales_beta_by():
    model = causal_model()
    mix = torch.randn(3, 1500) * torch.linspace(0.01, 3.0, 1500)       # a level that changes a lot
    lengths = torch.tensor([1500, 1100, 390])                           # a block of padding in items 2 and 3
    state = model.begin(mix, lengths)
    power = block_power(state.scale, state.mask[:, 0, :, 0], model.cfg.frames_per_block)   # (B, nb)
    level = block_level(model.cfg, mix, lengths)
    assert level.shape == power.shape == (3, 4)
    has_frames = power > 0
    assert has_frames.sum() == 4 + 3 + 1
    torch.testing.assert_close(level[has_frames].pow(2), power[has_frames], rtol=1e-6, atol=0)
    assert (level[~has_frames] > 0).all()                             # padding: a level that scores nothing


@pytest.mark.parametrize("causal", [True, False])
def test_the_loss_does_not_depend_on_the_input_level(causal):
    """Scaling the mixture and the targets by c scales a causal network's running level by c, its
    estimates by c and β by c² in every block (as the input RMS does for a non-causal one), so the
    loss at the network's level is the same."""
    torch.manual_seed(0)
    model = causal_model(causal=causal).eval()
    src = torch.randn(2, 2, 1500) * torch.linspace(0.05, 1.0, 1500)
    mix, lengths = src.sum(1), torch.tensor([1500, 1000])
    loss_fn = TrainingLoss(400, sisnr_weight=0.2, model=model.cfg)

    def loss(c: float) -> float:
        with torch.no_grad():
            return loss_fn(model(mix * c, lengths), src * c, mix * c, lengths).loss.item()

    assert loss(1e-3) == pytest.approx(loss(1.0), rel=1e-5)
    assert loss(1e3) == pytest.approx(loss(1.0), rel=1e-5)


def test_a_causal_loss_differs_from_one_at_the_whole_input_rms():
    torch.manual_seed(0)
    model = causal_model().eval()
    src = torch.randn(1, 2, 1600) * torch.linspace(0.01, 1.0, 1600)
    mix = src.sum(1)
    with torch.no_grad():
        outputs = model(mix)
    running = TrainingLoss(400, model=model.cfg)(outputs, src, mix).loss
    whole = TrainingLoss(400)(outputs, src, mix).loss
    assert not torch.isclose(running, whole, rtol=1e-3)


def test_the_loss_refuses_another_block_than_the_models():
    with pytest.raises(ValueError, match="block"):
        TrainingLoss(512, model=tiny_config(causal=True))


def test_padding_changes_neither_loss_nor_gradients_of_a_causal_model():
    """As for the bidirectional model (tests/test_train_finetune.py): a padded batch's loss and
    gradients are its items' alone, weighted by length; the blocks of padding, where a causal
    network's β is 0, count for nothing."""
    cfg = tiny_run_config("model.causal=true")
    ds = build_dataset(cfg, "train")
    items = [ds[i] for i in range(3)]
    torch.manual_seed(0)
    model = PressNet(model_config(cfg)).train()
    loss_fn = TrainingLoss(cfg.model.block, sisnr_weight=0.2, model=model.cfg)

    batch = collate_padded(items)
    lengths = batch["lengths"].tolist()
    assert max(lengths) - min(lengths) > cfg.model.block                # some item has a block of padding
    for b, n in enumerate(lengths):                                   # garbage, not zeros, in the padding
        batch["mixture"][b, n:] = 5.0
        batch["sources"][b, :, n:] = -3.0
    padded_loss, padded_grads = loss_and_grads(model, loss_fn, batch)
    assert torch.isfinite(padded_loss) and all(torch.isfinite(g).all() for g in padded_grads)
    weights = batch["lengths"].double() / batch["lengths"].sum()
    alone = [loss_and_grads(model, loss_fn, collate_padded([it])) for it in items]
    torch.testing.assert_close(padded_loss.double(), sum(w * l for w, (l, _) in zip(weights, alone)),
                               rtol=1e-5, atol=1e-6)
    for k, g in enumerate(padded_grads):
        expected = sum(w.float() * grads[k] for w, (_, grads) in zip(weights, alone))
        torch.testing.assert_close(g, expected, rtol=1e-3, atol=1e-6)


def test_a_killed_causal_run_resumes_bit_identically(tmp_path):
    """Killed while fine-tuning on full-length audio, after a validation, and resumed: the same
    weights and optimiser state as a run never interrupted."""
    cfg = tiny_run_config("model.causal=true")
    train(cfg, tmp_path / "straight", device="cpu", progress=False)
    with pytest.raises(Killed):
        train(cfg, tmp_path / "killed", device="cpu", progress=False, on_step=kill_at(18))   # last: step 15
    result = train(cfg, tmp_path / "killed", resume=True, device="cpu", progress=False)
    assert result.step == 20 and result.best_val_loss is not None
    for name in ("last.safetensors", "best.safetensors"):
        assert_same_tree(load_file(tmp_path / "straight" / name), load_file(tmp_path / "killed" / name), name)


def test_enhance_rt_trains_on_the_shipped_slice_and_resumes(tmp_path, capsys):
    """`press train enhance-rt` end to end on the shipped noisy slice (a small network): crop steps,
    full-length fine-tuning, validation, then `--resume` for one more step; the checkpoint loads as
    a causal enhancer."""
    out = tmp_path / "run"
    small = ["model.dim=16", "model.enc_channels=8", "model.ig_hidden=8", "model.attn_heads=2",
             "model.rnn_expand=1.0", "model.ffn_expand=1.0", "model.n_dec_blocks=3"]
    args = ["train", "enhance-rt", "--out", str(out), "--no-progress", "train.steps=2", "train.val_every=2",
            "finetune.steps=1", "finetune.max_seconds=2.0", "data.val_examples=2", "data.val_max_seconds=2.0",
            "train.amp=off", "train.log_every=1", "train.tensorboard=false", *small]
    assert main(args) == 0
    assert "finished at step 3" in capsys.readouterr().out
    assert main(["train", "enhance-rt", "--out", str(out), "--resume", "--no-progress", "finetune.steps=2"]) == 0
    assert "finished at step 4" in capsys.readouterr().out
    model = press.load(str(out / "last.safetensors"))
    assert model.source_names == ["speech", "noise"] and model.sample_rate == 16000
    assert model.model.cfg.causal and model.model.lookahead == 15


def test_a_causal_model_runs_offline_in_segments():
    """The segment runner passes each window's RMS, which a causal model ignores. An input that fits
    one window gives the whole-file forward exactly. Cut into segments it does not: every window
    starts the running level and the RNN states afresh at its own start, `context` before its
    segment, where the whole-file forward carries them from the start of the file (and the first
    window's context before the input is zeros, which weigh in the running level as silence)."""
    torch.manual_seed(0)
    model = causal_model(layer_scale_init=0.3).eval()
    x = (torch.randn(6 * 8000) * torch.linspace(0.05, 1.0, 6 * 8000)).numpy()
    with torch.no_grad():
        whole = model(torch.from_numpy(x)[None])[-1].estimate[0].numpy()             # (S, L)
        short = model(torch.from_numpy(x[:8000])[None])[-1].estimate[0].numpy()
    np.testing.assert_array_equal(separate(model, x[:8000], Static(3)).sources, short)
    cut = separate(model, x, Static(3), segment=2.0, context=0.25).sources
    snr = 10 * np.log10((whole ** 2).sum() / ((whole - cut) ** 2).sum())
    assert 30.0 < snr < 100.0, snr                                                      # close, not equal
    dynamic = separate(model, x, Dynamic())
    assert np.isfinite(dynamic.sources).all() and len(dynamic.exits) == 3
