"""A causal PRESS-Net on a stream, chunk by chunk: the outputs of the whole-file forward, as soon as
no later input can change them."""

import random

import pytest
import torch
from test_causal import causal_model, random_synthesis

from press.model import PressNet, load_config, model_config


def enhance_rt() -> PressNet:
    """The shipped 16 kHz causal configuration, randomly initialised (synthesis filters too)."""
    torch.manual_seed(0)
    return random_synthesis(PressNet(model_config(load_config("enhance-rt"))).eval(), 0.1)


def streamed(model: PressNet, x: torch.Tensor, sizes: list[int], exits: int) -> list[dict]:
    """Feed x (B, L) in chunks of the given sizes (cycled), then end the stream; per exit, the
    concatenated estimate, alpha and beta, after checking that every output follows the last."""
    state = model.stream_begin(x.shape[0])
    chunks, position, k = [], 0, 0
    with torch.no_grad():
        while position < x.shape[1]:
            out, state = model.stream_step(x[:, position:position + sizes[k % len(sizes)]], state, exits)
            chunks.append(out)
            position, k = position + sizes[k % len(sizes)], k + 1
        chunks.append(model.stream_end(state, exits))
    result = []
    for i in range(exits):
        samples = blocks = 0
        for out in chunks:
            assert out[i].exit == i + 1 and out[i].start == samples and out[i].first_block == blocks
            samples, blocks = samples + out[i].estimate.shape[-1], blocks + out[i].alpha.shape[-1]
        result.append({name: torch.cat([getattr(out[i], name) for out in chunks], dim=-1)
                       for name in ("estimate", "alpha", "beta")})
    return result


def assert_matches(stream: list[dict], whole: list) -> None:
    assert len(stream) <= len(whole)
    for s, w in zip(stream, whole):
        assert s["estimate"].shape == w.estimate.shape and s["alpha"].shape == w.alpha.shape
        peak = w.estimate.abs().max()
        torch.testing.assert_close(s["estimate"], w.estimate, atol=1e-5 * peak, rtol=0)
        torch.testing.assert_close(s["alpha"], w.alpha, atol=0, rtol=1e-5)
        torch.testing.assert_close(s["beta"], w.beta, atol=0, rtol=1e-5)


@pytest.mark.parametrize("sizes", [[1], [37], [400], [5000], "random"])
@pytest.mark.parametrize("cumulative", [False, True])
def test_tiny_stream_equals_the_whole_file(sizes, cumulative: bool) -> None:
    model = causal_model(cumulative=cumulative)
    if sizes == "random":
        sizes = [random.Random(0).randint(1, 1000) for _ in range(20)]
    x = torch.randn(2, 1537)
    with torch.no_grad():
        whole = model(x)
    assert_matches(streamed(model, x, sizes, model.n_exits), whole)


@pytest.mark.parametrize("sizes,length", [([1], 700), ([37], 2100), ([512], 2100), ([5000], 2100),
                                          ([3, 512, 1, 100, 1025], 3000)])
def test_16khz_stream_equals_the_whole_file(sizes: list[int], length: int) -> None:
    model = enhance_rt()
    x = torch.randn(1, length) * 0.1
    with torch.no_grad():
        whole = model(x)
    assert_matches(streamed(model, x, sizes, model.n_exits), whole)


@pytest.mark.parametrize("length", [1600, 1601, 1603, 1604, 1])
def test_the_end_returns_the_last_samples_and_block(length: int) -> None:
    """Whole blocks, a partial block of whole frames, a partial frame, a single sample."""
    model = causal_model()
    x = torch.randn(1, length)
    with torch.no_grad():
        whole = model(x)
        state = model.stream_begin(1)
        out, state = model.stream_step(x, state, 3)
        last = model.stream_end(state, 3)
    P, la = model.cfg.patch, model.lookahead
    # everything of whole frames comes at once: delayed by the frame, never by more
    assert out[0].estimate.shape[-1] == length // P * P
    assert last[0].estimate.shape[-1] == length % P <= la
    assert last[0].alpha.shape[-1] == (1 if length % model.cfg.block else 0)
    assert_matches(streamed(model, x, [length], 3), whole)


def test_an_output_comes_as_soon_as_nothing_later_changes_it() -> None:
    """Sample n is out once sample n + lookahead is in (at a frame's first sample), and a block's
    (alpha, beta) once its last sample is in."""
    model = causal_model()
    P, block = model.cfg.patch, model.cfg.block
    state, emitted = model.stream_begin(1), 0
    with torch.no_grad():
        for n in range(2 * block):
            out, state = model.stream_step(torch.randn(1, 1), state, 3)
            emitted += out[0].estimate.shape[-1]
            assert emitted == (n + 1) // P * P
            assert out[0].alpha.shape[-1] == (1 if (n + 1) % block == 0 else 0)
    assert emitted - P + model.lookahead == n   # the last frame's first sample waited the look-ahead


def test_a_stream_may_run_fewer_exits_but_not_more_later() -> None:
    model = causal_model()
    x = torch.randn(1, 1200)
    with torch.no_grad():
        whole = model(x)
    assert_matches(streamed(model, x, [100], 2), whole)
    state = model.stream_begin(1)
    with torch.no_grad():
        out, state = model.stream_step(x[:, :500], state, 3)
        out, state = model.stream_step(x[:, 500:800], state, 1)
        assert len(out) == 1
        with pytest.raises(ValueError, match="exit 2 skipped"):
            model.stream_step(x[:, 800:], state, 2)
        with pytest.raises(ValueError, match="exits must lie"):
            model.stream_step(x[:, 800:], state, 0)


def test_the_state_is_tensors_only() -> None:
    """State in, state out: what a later export takes as graph inputs and outputs."""
    model = causal_model()
    state = model.stream_begin(2)
    _, state = model.stream_step(torch.randn(2, 77), state, 3)

    def leaves(value):
        if isinstance(value, tuple):
            return [leaf for v in value for leaf in leaves(v)]
        return [value]

    values = [leaf for name in state.__dataclass_fields__ for leaf in leaves(getattr(state, name))]
    assert values and all(isinstance(v, torch.Tensor) for v in values)


def test_a_bidirectional_model_does_not_stream() -> None:
    with pytest.raises(ValueError, match="causal"):
        causal_model(causal=False).stream_begin(1)
