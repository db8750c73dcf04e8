import pytest
import torch

from press.model import ModelConfig, PressNet


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    # a test that runs `press.cli.main` switches flush-denormal on for the whole process (as the
    # command does); every test starts from IEEE arithmetic again (hypothesis draws subnormals)
    torch.set_flush_denormal(False)


def tiny_config(**overrides) -> ModelConfig:
    """A model small enough that a forward pass takes milliseconds."""
    base = dict(sample_rate=8000, n_src=2, block=400, enc_channels=8, enc_kernel=8, patch=4, dim=16,
                n_enc_blocks=2, n_dec_blocks=6, n_exits=3, enc_pattern="RC", dec_pattern="RAC",
                rnn_expand=2.0, conv_expand=1.0, conv_kernel=9, ffn_expand=2.0, attn_heads=2,
                ig_hidden=8, scan_chunk=16, layer_scale_init=0.1)
    base.update(overrides)
    return ModelConfig(**base)


@pytest.fixture
def tiny_model() -> PressNet:
    return PressNet(tiny_config()).eval()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A randomly initialised `tiny` model saved as a checkpoint (for command-line tests)."""
    from press.model import load_config, model_config
    from press.model.checkpoint import save_model

    torch.manual_seed(0)
    cfg = load_config("tiny")
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(path, PressNet(model_config(cfg)), cfg)
    return path


@pytest.fixture(scope="session")
def causal_checkpoint(tmp_path_factory):
    """`tiny` made causal, with named outputs (speech first) and random synthesis filters (at
    initialisation they are zero, and every estimate would be the input / S)."""
    from press.model import load_config, model_config
    from press.model.checkpoint import save_model

    torch.manual_seed(0)
    cfg = load_config("tiny", ["model.causal=true", "model.sources=[speech,noise]"])
    model = PressNet(model_config(cfg)).eval()
    with torch.no_grad():
        for head in model.decoder_heads:
            head.synthesis.weight.normal_(std=0.3)
    path = tmp_path_factory.mktemp("model") / "tiny-rt.safetensors"
    save_model(path, model, cfg)
    return path
