import math

import pytest
import torch
from conftest import tiny_config

from press.model import PressNet


@pytest.mark.parametrize("n_src", [1, 2, 3])
@pytest.mark.parametrize("length", [1, 399, 401, 1237])
def test_shapes_any_sources_any_length(n_src, length):
    model = PressNet(tiny_config(n_src=n_src)).eval()
    with torch.no_grad():
        outs = model(torch.randn(2, length))
    nb = -(-length // 400)
    assert len(outs) == 3
    for i, o in enumerate(outs, start=1):
        assert o.exit == i
        assert o.estimate.shape == (2, n_src, length)
        assert o.alpha.shape == o.beta.shape == (2, n_src, nb)
        assert torch.all(o.alpha > 0) and torch.all(o.beta > 0)
        assert torch.isfinite(o.estimate).all()


def test_exit_by_exit_equals_full_forward(tiny_model):
    x = torch.randn(2, 1500)
    with torch.no_grad():
        full = tiny_model(x)
        state = tiny_model.begin(x)
        for ref in full:
            out, state = tiny_model.advance(state)
            for name in ("estimate", "alpha", "beta"):
                torch.testing.assert_close(getattr(out, name), getattr(ref, name))
        with pytest.raises(ValueError):
            tiny_model.advance(state)


def test_resuming_recomputes_nothing_before(tiny_model):
    """advance() from exit 1 to 2 runs only group 2 and exit 2's heads."""
    calls = []
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: calls.append(n))
             for n, m in tiny_model.named_modules() if n]
    with torch.no_grad():
        state = tiny_model.begin(torch.randn(1, 800))
        _, state = tiny_model.advance(state)
        calls.clear()
        tiny_model.advance(state)
    for h in hooks:
        h.remove()
    top = {c.split(".")[0] + ("." + c.split(".")[1] if c.split(".")[0] in ("groups", "decoder_heads", "ig_heads") else "")
           for c in calls}
    assert top == {"groups.1", "decoder_heads.1", "ig_heads.1"}


@pytest.mark.parametrize("stop", [1, 2])
def test_running_to_exit_calls_no_later_module(tiny_model, stop):
    later = [m for i in range(stop, 3) for m in (tiny_model.groups[i], tiny_model.decoder_heads[i],
                                                 tiny_model.ig_heads[i])]
    called = []
    hooks = [sub.register_forward_hook(lambda *a: called.append(1)) for m in later for sub in m.modules()]
    with torch.no_grad():
        outs = tiny_model(torch.randn(1, 900), n_exits=stop)
    for h in hooks:
        h.remove()
    assert len(outs) == stop and called == []


def test_padded_batch_equals_items_alone(tiny_model):
    """Full-length fine-tuning batches utterances of different lengths: padding must not leak."""
    a, b = torch.randn(1000), torch.randn(1733)
    batch = torch.zeros(2, 1733)
    batch[0, :1000], batch[1] = a, b
    with torch.no_grad():
        outs = tiny_model(batch, lengths=torch.tensor([1000, 1733]))
        alone_a = tiny_model(a[None])
        alone_b = tiny_model(b[None])
    for o, oa, ob in zip(outs, alone_a, alone_b):
        torch.testing.assert_close(o.estimate[0, :, :1000], oa.estimate[0], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(o.estimate[1], ob.estimate[0], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(o.alpha[0, :, :3], oa.alpha[0], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(o.beta[1], ob.beta[0], atol=1e-6, rtol=1e-4)


def test_level_is_normalised_and_restored(tiny_model):
    """Scaling the input by g scales every estimate by g and every beta by g^2."""
    x = torch.randn(1, 1200)
    with torch.no_grad():
        o1 = tiny_model(x)[-1]
        o2 = tiny_model(x * 1e-3)[-1]
    torch.testing.assert_close(o2.estimate, o1.estimate * 1e-3, atol=1e-7, rtol=1e-4)
    torch.testing.assert_close(o2.alpha, o1.alpha)
    torch.testing.assert_close(o2.beta, o1.beta * 1e-6, atol=0, rtol=1e-4)


def test_digital_silence_is_finite(tiny_model):
    with torch.no_grad():
        for o in tiny_model(torch.zeros(2, 1000)):
            assert torch.isfinite(o.estimate).all() and torch.isfinite(o.alpha).all()
            assert torch.isfinite(o.beta).all() and torch.all(o.beta > 0)


def _heads_set(model, rng, adversarial=None):
    """Arbitrary inverse-gamma heads: random weights over many scales and biases deep into both
    tails of the softplus, or (adversarial) constant raw outputs per exit from the given biases."""
    with torch.no_grad():
        for i, head in enumerate(model.ig_heads):
            if adversarial is not None:
                head.out.weight.zero_()
                head.out.bias.copy_(torch.tensor(adversarial[i], dtype=head.out.bias.dtype))
                continue
            for lin in (head.glu, head.out):
                lin.weight.normal_(generator=rng).mul_(10 ** (torch.rand((), generator=rng) * 5 - 3))
                lin.bias.uniform_(-30, 30, generator=rng)
            head.snake.freq.uniform_(-5, 5, generator=rng)


def test_cumulative_parameterisation_is_monotone_by_construction():
    """`cumulative: true` builds alpha_i = sum_{k<=i} alpha~_k and beta_i = (1 / sum_{k<=i} beta~_k
    + alpha_i * VARIANCE_FLOOR) * scale^2, each alpha~ >= ALPHA_FLOOR and beta~ >= BETA_FLOOR (a
    softplus plus the floor). So whatever the heads' weights (random over many scales, or set
    adversarially), alpha rises strictly with depth and the predicted error-variance scale
    beta / alpha = (1 / (alpha_i sum beta~) + VARIANCE_FLOOR) * scale^2 falls strictly.
    beta itself is not monotone: the -40 dB variance floor adds alpha_i * VARIANCE_FLOOR, which
    grows with alpha; 10 of the 20 random heads below and two adversarial ones make beta rise.
    Run in float64: in float32 a step smaller than the resolution can leave beta / alpha one ulp
    higher (seen once here, +1.2e-7 relative), which is rounding, not the construction."""
    from press.model.heads import ALPHA_FLOOR, BETA_FLOOR, VARIANCE_FLOOR

    model = PressNet(tiny_config(cumulative=True)).double().eval()
    x = torch.randn(2, 1200, dtype=torch.float64)
    x[1, 400:800] = 0.0                                       # a silent block too
    s2 = model.begin(x).scale.pow(2)[:, None, None]
    raw = []
    for head in model.ig_heads:
        head.register_forward_hook(lambda m, i, o: raw.append(o))
    rng = torch.Generator().manual_seed(0)
    # (alpha~, beta~) biases per exit: a huge alpha~ after a large beta~ sum makes beta rise
    adversarial = {21: [(-30, 30), (1e4, -30), (-30, 30)],       # beta rises at exit 2
                   22: [(-30, 30), (-30, 30), (1e4, -30)],       # ... at exit 3
                   23: [(30, -30), (-30, -30), (-30, 1e4)]}      # beta~ jumps: beta falls 1e12-fold
    rises = {}
    for n in range(24):
        if n:
            _heads_set(model, rng, adversarial.get(n))
        raw.clear()
        with torch.no_grad():
            outs = model(x)
        a_sum = b_sum = 0.0
        for (a_raw, b_raw), out in zip(raw, outs):
            assert torch.all(a_raw >= ALPHA_FLOOR) and torch.all(b_raw >= BETA_FLOOR)
            a_sum, b_sum = a_raw + a_sum, b_raw + b_sum
            torch.testing.assert_close(out.alpha, a_sum, rtol=1e-12, atol=0)
            torch.testing.assert_close(out.beta, (1.0 / b_sum + a_sum * VARIANCE_FLOOR) * s2,
                                       rtol=1e-12, atol=0)
        for prev, nxt in zip(outs, outs[1:]):
            assert torch.all(nxt.alpha > prev.alpha), n
            assert torch.all(nxt.beta / nxt.alpha < prev.beta / prev.alpha), n
        rises[n] = [bool(torch.all(nxt.beta > prev.beta)) for prev, nxt in zip(outs, outs[1:])]
    assert rises[21] == [True, False] and rises[22] == [False, True]   # beta is not monotone
    assert rises[23] == [False, False]


def test_state_select_keeps_items(tiny_model):
    x = torch.randn(3, 800)
    with torch.no_grad():
        state = tiny_model.begin(x)
        _, state = tiny_model.advance(state)
        sub = state.select(torch.tensor([2, 0]))
        out_sub, _ = tiny_model.advance(sub)
        out_all, _ = tiny_model.advance(state)
    torch.testing.assert_close(out_sub.estimate, out_all.estimate[[2, 0]])


class GroupStep(torch.nn.Module):
    """Exit i's fixed-depth computation: its decoder group and both heads."""

    def __init__(self, model, i):
        super().__init__()
        self.blocks, self.dec, self.ig = model.groups[i], model.decoder_heads[i], model.ig_heads[i]

    def forward(self, h, mask, basis, wave):
        for block in self.blocks:
            h = block(h, mask)
        return h, self.dec(h, basis, wave), *self.ig(h, mask)


def test_one_exit_step_exports(tiny_model):
    """torch.export succeeds only on code without data-dependent Python control flow."""
    with torch.no_grad():
        state = tiny_model.begin(torch.randn(1, 800))
        step = GroupStep(tiny_model, 1)
        args = (state.h, state.mask, state.basis, state.wave)
        exported = torch.export.export(step, args)
        for got, ref in zip(exported.module()(*args), step(*args)):
            torch.testing.assert_close(got, ref)


def test_rnn_time_constants_survive_bf16_autocast():
    """The forget gate's initial time constants (2 to 500 frames, log-spaced) come out of a bf16
    autocast region as they went in: in bf16 a gate near 1 rounds to a spacing of 2^-8 (183, 303
    and 500 frames all become 256, and anything above ~512 becomes a frozen gate of exactly 1)."""
    from press.model.blocks import LinearRNN

    rnn = LinearRNN(dim=16, hidden=64, chunk=16)
    x, mask = torch.zeros(1, 4, 16), torch.ones(1, 4, 1)
    tau = torch.logspace(math.log10(2.0), math.log10(500.0), 32).repeat(2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, a, _ = rnn.gates(x, rnn.proj_in(x), mask)
        out = rnn(torch.randn(1, 4, 16), mask)
    assert a.dtype == torch.float32 and out.dtype == torch.bfloat16   # the rest still runs in bf16
    measured = 1.0 / (1.0 - a[0, 0].double())
    torch.testing.assert_close(measured, tau.double(), rtol=1e-3, atol=0.0)
    assert len(torch.unique(measured.round())) == len(torch.unique(tau.round()))
    with torch.autocast("cpu", dtype=torch.bfloat16):                  # what a bf16 gate would give
        f = rnn.proj_in(x).chunk(3, -1)[1]
        rounded = 1.0 / (1.0 - torch.sigmoid(f)[0, 0].double())        # sigmoid of bf16 is bf16
    assert f.dtype == torch.bfloat16
    assert len(torch.unique(rounded[tau > 150])) <= 2                 # 7 time constants from 172 to 500
                                                                      # collapse onto 128 and 256


def test_exit_heads_run_in_float32_under_bf16_autocast():
    """Under bf16 autocast the trunk runs in bf16 but every exit's heads run in float32 on the
    trunk's output: the estimate equals the float32 heads applied to that same output to float32
    rounding, far closer than bf16 heads give (a bf16 mask and synthesis are off by ~2^-9)."""
    model = PressNet(tiny_config()).eval()
    with torch.no_grad():                          # synthesis starts at zero: give it a correction
        for head in model.decoder_heads:
            head.synthesis.weight.normal_(0.0, 0.3)
    x = torch.randn(1, 1600)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        h, basis, wave, mask, scale = model.begin_padded(x, torch.tensor([1600]), x.std(-1))
        h = model.groups[0][0](h, mask)
        got = model.heads(0, h, basis, wave, mask)
        bf16_estimate = model.decoder_heads[0](h, basis, wave)
        assert model.decoder_heads[0].mask(h).dtype == torch.bfloat16       # autocast is on
    assert all(t.dtype == torch.float32 for t in got)
    with torch.no_grad():
        ref = model.heads(0, h.float(), basis.float(), wave.float(), mask.float())
    for g, r in zip(got, ref):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-6)
    bf16_error = (bf16_estimate.float() - ref[0]).abs().max()
    assert bf16_error > 100 * (got[0] - ref[0]).abs().max()


def test_checkpointed_blocks_give_the_same_gradients():
    # training loss of a padded batch through every exit, with and without recomputing each block
    from press.training.loss import TrainingLoss

    model = PressNet(tiny_config()).train()
    src = torch.randn(2, 2, 1600) * torch.rand(2, 2, 1)
    mix, lengths = src.sum(1), torch.tensor([1600, 1100])
    loss_fn = TrainingLoss(400, "student_t", "shared", 0.2)
    grads = []
    for on in (False, True):
        model.checkpoint_blocks(on)
        model.zero_grad()
        loss_fn(model(mix, lengths), src, mix, lengths).loss.backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    assert all(g is not None for g in grads[1])
    for plain, recomputed in zip(*grads):
        torch.testing.assert_close(recomputed, plain, rtol=0, atol=0)


def test_blocks_compute_their_written_formulas():
    """The fused element-wise forms in press.model.blocks (addcmul for the gate, the RNN input and
    LayerScale) against the formulas as written in the docstrings, op by op, padding included."""
    from press.model.blocks import Block

    torch.manual_seed(0)
    x = torch.randn(2, 2, 50, 16)
    mask = torch.ones(2, 1, 50, 1)
    mask[1, :, 37:] = 0
    block = Block("R", 16, rnn_hidden=24, conv_hidden=16, conv_kernel=5, ffn_hidden=32, heads=2, ls_init=0.3,
                  chunk=8).eval()
    rnn = block.mixer
    with torch.no_grad():
        block.ls1.gamma.uniform_(0.1, 1.0)
        block.ls2.gamma.uniform_(0.1, 1.0)
        y = block.norm1(x).reshape(4, 50, 16)
        m = mask.expand(2, 2, 50, 1).reshape(4, 50, 1)
        v, f, g = rnn.proj_in(y).chunk(3, dim=-1)
        a = torch.sigmoid(f) * m + (1.0 - m)
        b = (1.0 - a) * v
        h = torch.zeros(4, 50, 24)
        half = 12
        for t in range(50):                       # first half forward in time, second half backward
            prev = h[:, t - 1, :half] if t else 0.0
            h[:, t, :half] = a[:, t, :half] * prev + b[:, t, :half]
        for t in reversed(range(50)):
            prev = h[:, t + 1, half:] if t < 49 else 0.0
            h[:, t, half:] = a[:, t, half:] * prev + b[:, t, half:]
        mixed = rnn.proj_out(h * torch.nn.functional.silu(g)).reshape(2, 2, 50, 16)
        ref = x + block.ls1.gamma * mixed
        ref = (ref + block.ls2.gamma * block.mlp(block.norm2(ref))) * mask
        torch.testing.assert_close(block(x, mask), ref, rtol=1e-5, atol=1e-6)
