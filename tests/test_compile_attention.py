"""The speaker-attention block compiled by inductor, the backend `train.compile` and
`compile_inference` use, computes what eager does, with gradients, without them and under bf16
autocast. The other compile tests use dynamo's `eager` backend for speed, which never runs
inductor's graph rewrites: the rewrite of matmul attention into a fused kernel written for rank-4
tensors computed wrong outputs on this rank-5 one in float32 (the training loss of the shipped
model, 4 x 2 s: -3.35 eager, -2.85 compiled) and crashed under bf16."""

import pytest
import torch

from press.model.blocks import Block

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def attention_block() -> Block:
    torch.manual_seed(0)
    block = Block("A", 16, rnn_hidden=32, conv_hidden=32, conv_kernel=5, ffn_hidden=32, heads=2,
                  ls_init=1.0, chunk=8)
    with torch.no_grad():
        for p in block.parameters():                 # a trained block's scale, not the init's
            p.add_(torch.randn_like(p) * 0.5)
    return block


@pytest.mark.parametrize("mode", ["train", "no_grad", "bf16"])
def test_inductor_compiled_attention_block_equals_eager(mode):
    torch._dynamo.reset()
    block = attention_block()
    x = torch.randn(2, 2, 40, 16) * 3                # (B, S, T, D)
    mask = torch.ones(2, 1, 40, 1)
    mask[1, :, 30:] = 0
    compiled = torch.compile(block, backend="inductor")
    if mode == "train":
        ref = block(x, mask)
        got = compiled(x, mask)
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)
        g_ref = torch.autograd.grad(ref.square().sum(), block.mixer.qkv.weight)[0]
        g_got = torch.autograd.grad(got.square().sum(), block.mixer.qkv.weight)[0]
        torch.testing.assert_close(g_got, g_ref, rtol=1e-3, atol=1e-3)
    elif mode == "no_grad":
        with torch.no_grad():
            torch.testing.assert_close(compiled(x, mask), block(x, mask), rtol=1e-4, atol=1e-4)
    else:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            ref, got = block(x, mask).float(), compiled(x, mask).float()
        torch.testing.assert_close(got, ref, rtol=0.05, atol=0.05 * ref.abs().max().item())
