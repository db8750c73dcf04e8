"""A causal PRESS-Net (`model.causal: true`): no output depends on input more than `lookahead` samples
ahead, and everything else about the model stays as it is."""

import math

import pytest
import torch
from conftest import tiny_config

from press.model import PressNet, kernels, load_config, model_config
from press.model.compute import exit_costs


def causal_model(seed: int = 0, **overrides) -> PressNet:
    """The tests' tiny model, causal unless told otherwise, with random synthesis filters."""
    torch.manual_seed(seed)
    return random_synthesis(PressNet(tiny_config(**{"causal": True, **overrides})).eval(), 0.3)


def shipped_tiny(seed: int) -> PressNet:
    """The shipped `tiny` configuration made causal, with random synthesis filters."""
    torch.manual_seed(seed)
    return random_synthesis(PressNet(model_config(load_config("tiny", ["model.causal=true"]))).eval(), 0.3)


def random_synthesis(model: PressNet, std: float) -> PressNet:
    """The model with synthesis filters that are not zero: at initialisation they are, and every
    estimate would be the input / S whatever the network says."""
    with torch.no_grad():
        for head in model.decoder_heads:
            head.synthesis.weight.normal_(std=std)
    return model


def _perturbed(model: PressNet, x: torch.Tensor, n: int) -> tuple[list, list]:
    y = x.clone()
    y[:, n] += 3.0
    with torch.no_grad():
        return model(x), model(y)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("make", [causal_model, shipped_tiny])
def test_no_output_depends_on_input_past_the_lookahead(make, seed: int) -> None:
    model = make(seed)
    la, block = model.lookahead, model.cfg.block
    assert la == model.cfg.patch - 1
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 1700, generator=gen)
    for n in torch.randint(la + 1, 1700, (4,), generator=gen).tolist():
        before, after = _perturbed(model, x, n)
        ended = (n - la) // block            # blocks whose last sample lies before n - la
        for o, p in zip(before, after):
            assert torch.equal(o.estimate[..., :n - la], p.estimate[..., :n - la]), (n, o.exit)
            assert torch.equal(o.alpha[..., :ended], p.alpha[..., :ended])
            assert torch.equal(o.beta[..., :ended], p.beta[..., :ended])
            assert not torch.equal(o.estimate[..., n:], p.estimate[..., n:])   # the input does count


def test_the_lookahead_is_the_frame() -> None:
    """A frame's last sample moves the estimate of its first: the look-ahead is no shorter."""
    model = causal_model()
    P = model.cfg.patch
    n = 200 * P + P - 1
    for o, p in zip(*_perturbed(model, torch.randn(1, 1600), n)):
        assert not torch.equal(o.estimate[..., n - model.lookahead], p.estimate[..., n - model.lookahead])


def test_a_non_causal_model_depends_on_the_future() -> None:
    """The check above fails on the bidirectional model: it can tell the two apart."""
    model = causal_model(causal=False)
    assert model.lookahead is None
    for o, p in zip(*_perturbed(model, torch.randn(1, 1600), 1500)):
        assert not torch.equal(o.estimate[..., :100], p.estimate[..., :100])
        assert not torch.equal(o.alpha[..., 0], p.alpha[..., 0])


def test_the_running_level_is_normalised_and_restored() -> None:
    """Scaling the input by g scales every estimate by g and every beta by g^2, as with the RMS:
    the running level starts from the first frame's own level, not from a constant."""
    model = causal_model()
    x = torch.randn(1, 1200) * torch.linspace(0.1, 3.0, 1200)
    with torch.no_grad():
        for o1, o2 in zip(model(x), model(x * 1e-3)):
            torch.testing.assert_close(o2.estimate, o1.estimate * 1e-3, atol=1e-7, rtol=1e-4)
            torch.testing.assert_close(o2.alpha, o1.alpha)
            torch.testing.assert_close(o2.beta, o1.beta * 1e-6, atol=0, rtol=1e-4)


def test_the_running_level_follows_the_input() -> None:
    """A quiet start then a loud part: the level of a causal model moves with it (per frame), where
    the non-causal level is one number for the whole input."""
    model = causal_model()
    x = torch.cat([torch.randn(1, 8000) * 0.01, torch.randn(1, 8000)], dim=1)
    with torch.no_grad():
        level = model.begin(x).scale[0]                                   # (T,)
    frames = 8000 // model.cfg.patch
    torch.testing.assert_close(level[:frames].mean(), torch.tensor(0.01), rtol=0.1, atol=0)
    # one time constant (1 s) into the loud part, the weights of the two seconds: 1 - 1/e and 1/e - 1/e^2
    loud = (1 - math.exp(-1)) / (1 - math.exp(-2))
    torch.testing.assert_close(level[-1], torch.tensor(loud).sqrt(), rtol=0.05, atol=0)


def test_padded_batch_equals_items_alone() -> None:
    model = causal_model()
    a, b = torch.randn(1000), torch.randn(1733)
    batch = torch.zeros(2, 1733)
    batch[0, :1000], batch[1] = a, b
    with torch.no_grad():
        outs = model(batch, lengths=torch.tensor([1000, 1733]))
        alone_a, alone_b = model(a[None]), model(b[None])
    for o, oa, ob in zip(outs, alone_a, alone_b):
        torch.testing.assert_close(o.estimate[0, :, :1000], oa.estimate[0], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(o.estimate[1], ob.estimate[0], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(o.alpha[0, :, :3], oa.alpha[0], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(o.beta[0, :, :3], oa.beta[0], atol=1e-6, rtol=1e-4)


@pytest.mark.skipif(not kernels.available(), reason="the CPU kernels are not built here")
def test_the_kernels_compute_the_causal_pytorch_code() -> None:
    """The linear-RNN kernel runs every channel forward (split = H); the causal conv runs PyTorch."""
    model = causal_model()
    x = torch.randn(2, 1300)
    with torch.no_grad():
        fast = model(x)
        with kernels.disabled():
            slow = model(x)
    for f, s in zip(fast, slow):
        for name in ("estimate", "alpha", "beta"):
            torch.testing.assert_close(getattr(f, name), getattr(s, name), atol=1e-5, rtol=1e-4)


def test_a_causal_model_trains_and_its_gradients_respect_time() -> None:
    """Gradients reach every parameter used, finite; an early estimate's reach no later input."""
    model = causal_model().train()
    x = torch.randn(2, 900, requires_grad=True)
    outs = model(x)
    sum(o.estimate.pow(2).sum() + o.beta.sum() for o in outs).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    x.grad = None
    sum(o.estimate[..., :500].pow(2).sum() for o in model(x)).backward()
    assert x.grad[..., :500].abs().sum() > 0
    assert x.grad[..., 500 + model.lookahead:].abs().sum() == 0


def test_causal_is_a_config_field_older_configs_lack() -> None:
    assert model_config({"model": {}}).causal is False
    assert model_config(load_config("enhance-rt")).causal is True
    assert model_config(load_config("enhance-rt", ["model.causal=false"])).causal is False
    with pytest.raises(Exception, match="causal"):
        model_config({"model": {"causal": "sometimes"}})


def test_a_checkpoint_keeps_causal_and_an_older_one_loads_bidirectional(tmp_path) -> None:
    from dataclasses import asdict

    from omegaconf import OmegaConf

    from press.model.checkpoint import load_model, save_model

    model = causal_model()
    fields = asdict(model.cfg)
    save_model(tmp_path / "causal.safetensors", model, OmegaConf.create({"model": fields}))
    loaded, cfg, _ = load_model(tmp_path / "causal.safetensors")
    assert loaded.cfg.causal and cfg.model.causal is True
    x = torch.randn(1, 900)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)[-1].estimate, model(x)[-1].estimate, atol=0, rtol=0)
    del fields["causal"]                                   # a checkpoint from before the field
    save_model(tmp_path / "older.safetensors", model, OmegaConf.create({"model": fields}))
    assert load_model(tmp_path / "older.safetensors")[0].cfg.causal is False


def test_a_causal_model_costs_what_the_bidirectional_one_does() -> None:
    """The same sizes, the same MACs: every RNN channel one way instead of half each way, the
    convolutions padded on one side instead of two."""
    causal = model_config(load_config("enhance-rt"))
    bidirectional = model_config(load_config("enhance-rt", ["model.causal=false"]))
    assert exit_costs(PressNet(causal)) == exit_costs(PressNet(bidirectional))
