"""Exits chosen per likelihood block on a stream (press.model.stream_exits): `lazy` catch-up gives the
whole-file forward at the exit each block took, `reset` and `hold` spend nothing catching up and
are not exact, every MAC is counted, and the decisions are press.engine's exit rule."""

import numpy as np
import pytest
import torch
from test_causal import causal_model
from test_stream_model import enhance_rt, streamed

from press.engine.rule import exit_probabilities
from press.engine.stream_rule import StreamRule
from press.model.compute import exit_costs
from press.model.stream_exits import BlockStream, frame_costs

BLOCK, FPB = 400, 100          # the tiny model's block: samples, frames
LENGTH = 6 * BLOCK + 123       # six whole blocks and a partial one that ends inside a frame


def run(model, x: torch.Tensor, decide, catch_up: str = "lazy", sizes=(37,), **options):
    """Push x (B, L) in chunks of the given sizes (cycled), end: (the stream, its block outputs)."""
    stream = BlockStream(model, decide, catch_up, batch=x.shape[0], **options)
    outputs, position, k = [], 0, 0
    with torch.no_grad():
        while position < x.shape[1]:
            outputs += stream.push(x[:, position:position + sizes[k % len(sizes)]])
            position, k = position + sizes[k % len(sizes)], k + 1
        outputs += stream.end()
    samples = 0
    for b, out in enumerate(outputs):   # in order, back to back, one block each
        assert out.first_block == b and out.start == samples and out.alpha.shape[-1] == 1
        samples += out.estimate.shape[-1]
    assert samples == x.shape[1]
    return stream, outputs


def forced(pattern: list[int]):
    """A decision that sends block b to exit pattern[b]."""
    return lambda block, exit, *signals: exit >= pattern[block]


def error(out, whole) -> float:
    """The largest difference from the whole-file forward at the block's exit, in its peak."""
    w = whole[out.exit - 1]
    reference = w.estimate[..., out.start:out.start + out.estimate.shape[-1]]
    return float((out.estimate - reference).abs().max() / w.estimate.abs().max())


def assert_exact(out, whole) -> None:
    w = whole[out.exit - 1]
    assert error(out, whole) <= 1e-5
    torch.testing.assert_close(out.alpha[..., 0], w.alpha[..., out.first_block], atol=0, rtol=1e-5)
    torch.testing.assert_close(out.beta[..., 0], w.beta[..., out.first_block], atol=0, rtol=1e-5)


@pytest.fixture(scope="module")
def model():
    return causal_model()


@pytest.fixture(scope="module")
def signal():
    return torch.randn(1, LENGTH, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def whole(model, signal):
    with torch.no_grad():
        return model(signal)


@pytest.mark.parametrize("catch_up", ["lazy", "reset", "hold"])
@pytest.mark.parametrize("exit", [3, 1])
def test_one_exit_for_every_block_is_the_fixed_exit_stream(model, signal, catch_up, exit):
    """Never leaving early is the fixed stream at the last exit; always leaving at once, at exit 1.
    Nothing is skipped, so nothing is caught up, and every frame costs the exit's per-frame MACs."""
    stream, outputs = run(model, signal, lambda *_: exit == 1, catch_up, sizes=[37, 400, 1])
    fixed = streamed(model, signal, [37], exit)[exit - 1]
    assert [o.exit for o in outputs] == [exit] * 7
    peak = fixed["estimate"].abs().max()   # the two run the frames in other chunks: float rounding
    torch.testing.assert_close(torch.cat([o.estimate for o in outputs], -1), fixed["estimate"], atol=1e-5 * peak,
                               rtol=0)
    torch.testing.assert_close(torch.cat([o.alpha for o in outputs], -1), fixed["alpha"], atol=0, rtol=1e-5)
    torch.testing.assert_close(torch.cat([o.beta for o in outputs], -1), fixed["beta"], atol=0, rtol=1e-5)
    c, frames = frame_costs(model), -(-LENGTH // 4)
    per_frame = c.front + sum(c.group[:exit]) + sum(c.decoder[:exit]) + sum(c.features[:exit])
    assert stream.macs() == (frames * per_frame + 7 * sum(c.pool[:exit]), 0)


def test_the_costs_per_frame_add_up_to_press_info(model):
    """frame_costs splits press.model.compute's figure: the parts up to exit i, per frame and per
    block, at the frame and block rates, are exit i's dynamic GMAC/s."""
    c, cfg = frame_costs(model), model.cfg
    frames, blocks = cfg.sample_rate / cfg.patch, cfg.sample_rate / cfg.block
    for i, cost in enumerate(exit_costs(model)):
        per_frame = c.front + sum(c.group[:i + 1]) + sum(c.decoder[:i + 1]) + sum(c.features[:i + 1])
        assert (per_frame * frames + sum(c.pool[:i + 1]) * blocks) / 1e9 == pytest.approx(cost.gmacs_per_second,
                                                                                        rel=1e-12)


def counted(model) -> dict:
    """Count the frames each part of `model` really runs on (blocks for the pooled head), from now on."""
    seen = {"front": 0, "group": [0] * 3, "decoder": [0] * 3, "features": [0] * 3, "pool": [0] * 3}

    def wrap(owner, name, part, index, frames):
        method = getattr(owner, name)

        def counting(*args):
            if index is None:
                seen[part] += frames(*args)
            else:
                seen[part][index] += frames(*args)
            return method(*args)
        setattr(owner, name, counting)

    wrap(model.encoder_head, "encode", "front", None, lambda taps: (taps.shape[-1] - 7) // 4)
    for i in range(3):
        wrap(model.groups[i][0], "step", "group", i, lambda h, s: h.shape[2])
        wrap(model.decoder_heads[i], "step", "decoder", i, lambda h, *rest: h.shape[2])
        wrap(model.ig_heads[i], "features", "features", i, lambda h: h.shape[2])
        wrap(model.ig_heads[i], "pool", "pool", i, lambda total, count: total.shape[-2])
    return seen


@pytest.mark.parametrize("pattern", [[1, 3, 1, 1, 2, 3, 2], [2, 1, 1, 1, 1, 1, 3], [1, 2, 1, 3, 3, 1, 1],
                                     [3, 3, 2, 2, 1, 1, 1]])
@pytest.mark.parametrize("sizes", [[37], [400], [5000], [1, 250, 999]])
def test_lazy_is_the_whole_file_forward_at_each_blocks_exit(pattern, sizes, signal, whole):
    model = causal_model()   # its own: the counters wrap its methods
    seen = counted(model)
    stream, outputs = run(model, signal, forced(pattern), "lazy", sizes)
    assert [o.exit for o in outputs] == pattern
    for out in outputs:
        assert_exact(out, whole)
    # group i ran on every frame up to the end of the last block that went past it, no more, no less:
    # the blocks that tried exit i + 1 (frames of each block: 100, the last 31) and the catch-up
    frames = [FPB] * 6 + [31]
    for i in range(3):
        reached = max((b + 1 for b, k in enumerate(pattern) if k > i), default=0)
        tried = sum(f for f, k in zip(frames, pattern) if k > i)
        assert seen["group"][i] == sum(frames[:reached])
        assert stream.spent.group[i] + stream.spent.catch_up_group[i] == seen["group"][i]
        assert stream.spent.group[i] == tried == seen["features"][i]
        assert stream.spent.pool[i] == sum(k > i for k in pattern) == seen["pool"][i]
        assert stream.spent.decoder[i] + stream.spent.catch_up_decoder[i] == seen["decoder"][i]
    assert seen["front"] == stream.spent.front == sum(frames)
    # every MAC: frames really run per part times that part's MACs per frame (per block: pool)
    c = frame_costs(model)
    total = seen["front"] * c.front + sum(seen[part][i] * getattr(c, part)[i]
                                          for part in ("group", "decoder", "features", "pool") for i in range(3))
    assert stream.macs()[0] == total
    catch_up = sum((seen["group"][i] - stream.spent.group[i]) * c.group[i]
                   + (seen["decoder"][i] - stream.spent.decoder[i]) * c.decoder[i] for i in range(3))
    assert stream.macs()[1] == catch_up
    assert (catch_up > 0) == any(later > earlier for b, earlier in enumerate(pattern) for later in pattern[b + 1:])


def test_lazy_is_exact_on_enhance_rt():
    """The shipped 16 kHz causal configuration (512-sample blocks, patch 16, 32 synthesis taps: the
    overlap-add tail spans two frames), randomly initialised."""
    model = enhance_rt()
    x = torch.randn(1, 5 * 512 + 300, generator=torch.Generator().manual_seed(3)) * 0.1
    with torch.no_grad():
        whole = model(x)
    stream, outputs = run(model, x, forced([1, 2, 1, 3, 1, 2]), "lazy", sizes=[160])
    assert [o.exit for o in outputs] == [1, 2, 1, 3, 1, 2]
    for out in outputs:
        assert_exact(out, whole)
    assert stream.spent.catch_up_group == [0, 3 * 32, 3 * 32]   # blocks 0, 2, 4; blocks 0, 1, 2


@pytest.mark.parametrize("catch_up", ["reset", "hold"])
def test_reset_and_hold_catch_nothing_up_and_are_not_exact(model, signal, whole, catch_up):
    """A block at the last exit after one that left at exit 1: groups 2 and 3 missed 100 frames."""
    pattern = [3, 1, 3, 3, 1, 1, 3]
    stream, outputs = run(model, signal, forced(pattern), catch_up)
    assert stream.macs()[1] == 0 and stream.spent.catch_up_group == [0, 0, 0]
    assert stream.spent.group == [631, 331, 331]   # what the blocks that tried each exit hold, no more
    assert_exact(outputs[0], whole)                # nothing skipped yet
    assert_exact(outputs[1], whole)                # exit 1 has run every frame
    assert error(outputs[2], whole) > 1e-3         # the block after the skipped one
    lazy = run(model, signal, forced(pattern), "lazy")[1]
    for out in lazy:
        assert_exact(out, whole)


def test_reset_is_lazy_without_a_backlog(model, signal):
    pattern = [1, 3, 2, 1, 2, 3, 1]
    reset = run(model, signal, forced(pattern), "reset")[1]
    empty = run(model, signal, forced(pattern), "lazy", backlog=0)[1]
    for a, b in zip(reset, empty):
        assert torch.equal(a.estimate, b.estimate) and torch.equal(a.beta, b.beta)


@pytest.mark.parametrize("backlog", [1, 2])
def test_the_backlog_is_bounded(model, signal, whole, backlog):
    """Two blocks at exit 1, then exit 3: a backlog of 2 blocks catches both up exactly; one of 1
    drops the first, restarts groups 2 and 3 after it and catches up over the second only."""
    pattern = [3, 1, 1, 3, 1, 1, 1]
    stream = BlockStream(model, forced(pattern), "lazy", backlog=backlog)
    outputs, kept = [], 0
    with torch.no_grad():
        for k in range(0, LENGTH, 200):
            outputs += stream.push(signal[:, k:k + 200])
            kept = max(kept, len(stream.backlog))
        outputs += stream.end()
    assert kept == backlog
    assert stream.spent.catch_up_group == [0, backlog * FPB, backlog * FPB]
    if backlog == 2:
        for out in outputs:
            assert_exact(out, whole)
    else:
        assert error(outputs[3], whole) > 1e-4


def test_streams_in_a_batch_leave_together(model):
    """Stream 0 asks for exit 2 on block 1, stream 1 for exit 3: the block takes exit 3 for both,
    and every output is still the whole-file forward's."""
    x = torch.randn(2, 3 * BLOCK, generator=torch.Generator().manual_seed(2))
    wanted = np.array([[1, 2, 1], [1, 3, 2]])
    with torch.no_grad():
        whole = model(x)
    _, outputs = run(model, x, lambda block, exit, *_: exit >= wanted[:, block], "lazy")
    assert [o.exit for o in outputs] == [1, 3, 2]
    for out in outputs:
        assert_exact(out, whole)


def rule_exits(whole, x: np.ndarray, target_db: float, confidence: float) -> tuple[list[int], list[float]]:
    """The exit per block that press.engine's rule gives on the whole-file forward's outputs, with
    P_ref the mean power of the input up to the block's end; and each block's exit-1 probability."""
    exits, first = [], []
    for b in range(-(-x.shape[-1] // BLOCK)):
        cut = slice(b * BLOCK, min((b + 1) * BLOCK, x.shape[-1]))
        p_ref = float(np.mean(x[0, :cut.stop].astype(np.float64) ** 2))
        for w in whole:
            p = exit_probabilities(w.estimate[0, :, cut].numpy(), x[0, cut], w.alpha[0, :, b:b + 1].numpy(),
                                   w.beta[0, :, b:b + 1].numpy(), target_db, confidence, BLOCK, p_ref,
                                   np.asarray(cut.stop - cut.start))
            if w.exit == 1:
                first.append(float(p.block[0]))
            if p.decision[0] or w.exit == len(whole):
                exits.append(w.exit)
                break
    return exits, first


def test_the_decisions_are_the_engines_rule(model, signal, whole):
    """The first block at exit 1 leaves exactly when press.engine's rule, on the whole-file (alpha,
    beta) and estimate, says so: confidence just below its probability, and just above. Every block
    then follows the rule on the whole-file outputs (lazy is exact)."""
    x = signal.numpy()
    target = next(t for t in np.arange(0.0, 30.0, 0.25) if 0.05 < rule_exits(whole, x, t, 0.5)[1][0] < 0.95)
    p0 = rule_exits(whole, x, target, 0.5)[1][0]
    for confidence, first in ((p0 - 1e-4, 1), (p0 + 1e-4, None)):
        _, outputs = run(model, signal, StreamRule(target, confidence))
        exits, _ = rule_exits(whole, x, target, confidence)
        assert (outputs[0].exit == 1) == (first == 1) and exits[0] == outputs[0].exit
        assert [o.exit for o in outputs] == exits
    mixed = next((t, p) for p in (0.3, 0.5, 0.7) for t in np.arange(0.0, 6.0, 0.25)
                 if len(set(rule_exits(whole, x, t, p)[0])) == 3)   # every exit taken somewhere
    _, outputs = run(model, signal, StreamRule(*mixed))
    assert [o.exit for o in outputs] == rule_exits(whole, x, *mixed)[0]


def test_bad_options_are_refused(model):
    with pytest.raises(ValueError, match="catch_up must be one of lazy, reset, hold"):
        BlockStream(model, forced([1]), "skip")
    with pytest.raises(ValueError, match="backlog must be >= 0"):
        BlockStream(model, forced([1]), backlog=-1)
    with pytest.raises(ValueError, match="causal"):
        BlockStream(causal_model(causal=False), forced([1]))
