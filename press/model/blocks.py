"""The building blocks of PRESS-Net's residual stack.

Every block is pre-norm residual with LayerScale (initialised ~1e-5, so a deep stack starts as the
identity and each block learns how much to contribute): a sequence mixer followed by a SwiGLU
channel MLP. Three mixers:
  R  bidirectional self-gated linear RNN (minGRU-style gate, parallel scan; half the channels run
     forward in time, half backward),
  C  long depthwise convolution,
  A  cross-speaker attention: at every frame, each speaker stream attends to all S streams.
All blocks take and return (B, S, T, D) and a frame mask (B, 1, T, 1); padded frames never leak
into valid ones, so a padded batch computes exactly what each item computes alone.

Causal blocks (`causal=True`) see no later frame: every RNN channel runs forward in time and the
convolution looks back only. They can also run a stream a chunk of frames at a time (`step`),
carrying their state from chunk to chunk: the RNN's last hidden state, the convolution's last
kernel - 1 input frames; attention mixes no time and carries nothing.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint

from press.model import kernels
from press.model.kernels.glu_conv import glu_conv
from press.model.kernels.linear_rnn import linear_rnn
from press.model.kernels.rms_norm import rms_norm
from press.model.kernels.swiglu import swiglu
from press.model.scan import fixed_depth_scan, scan, scan_from


class Scan(nn.Module):
    """Bidirectional linear recurrence over (N, T, H): first H/2 channels forward, rest backward;
    causal: every channel forward.

    A module (not a function) so that compute accounting can see it: one multiply-add per
    channel and frame, the cost of the recurrence itself.
    """

    def __init__(self, chunk: int, causal: bool = False) -> None:
        super().__init__()
        self.chunk, self.causal = chunk, causal
        # set by the ONNX exporter (press.export): run `fixed_depth_scan` with this many steps
        # over chunk ends, a graph with no control flow on the number of frames
        self.export_steps: int | None = None

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.causal:
            if self.export_steps is not None:
                return fixed_depth_scan(a, b, self.chunk, self.export_steps)
            return scan(a, b, a.shape[-1], self.chunk)
        half = a.shape[-1] // 2
        if self.export_steps is not None:
            fwd = fixed_depth_scan(a[..., :half], b[..., :half], self.chunk, self.export_steps)
            bwd = fixed_depth_scan(a[..., half:].flip(-2), b[..., half:].flip(-2), self.chunk,
                                   self.export_steps).flip(-2)
            return torch.cat([fwd, bwd], dim=-1)
        return scan(a, b, half, self.chunk)

    @staticmethod
    def macs(inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
        return output.numel()


class LinearRNN(nn.Module):
    """h_t = a_t h_{t-1} + (1 - a_t) v_t,  y = W_out (h * silu(g)); a, v, g from the input.

    Channels [:split] run forward in time, the rest backward: half and half, or all forward when
    causal. On a CPU (float32 or float64 input, bf16 autocast included) everything between the two
    projections runs as one compiled float32/float64 kernel (`press.model.kernels`, a pass over
    memory instead of about ten); elsewhere (GPU, the ONNX export, kernels off) as the PyTorch code
    below, which computes the same.
    """

    def __init__(self, dim: int, hidden: int, chunk: int, causal: bool = False) -> None:
        super().__init__()
        hidden += hidden % 2  # even, so it splits into the two directions (the same sizes causal)
        self.hidden = hidden
        self.split = hidden if causal else hidden // 2
        self.proj_in = nn.Linear(dim, 3 * hidden)
        self.proj_out = nn.Linear(hidden, dim)
        self.scan = Scan(chunk, causal)
        # Forget-gate bias: time constants log-spaced from 2 to 500 frames (1 ms to 250 ms at
        # 2000 frames/s) in each direction, so that the stack sees short and long context from the
        # first step.
        directions = 1 if causal else 2
        tau = torch.logspace(math.log10(2.0), math.log10(500.0), hidden // directions).repeat(directions)
        with torch.no_grad():
            self.proj_in.bias[hidden:2 * hidden] = torch.logit(1.0 - 1.0 / tau)

    def forget_logits(self, x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """The forget gate's logits f (N, T, H) in float32, recomputed from x (N, T, D) where the
        in-projection ran in lower precision (bf16 autocast, or a low-precision model): near 1,
        bf16 has a spacing of 2^-8, so the initial time constants of 183, 303 and 500 frames would
        all round to 256 and a gate that rounds to exactly 1 would freeze its channel."""
        if f.dtype == torch.float32:
            return f
        rows = slice(self.hidden, 2 * self.hidden)
        with torch.autocast(x.device.type, enabled=False):
            return F.linear(x.float(), self.proj_in.weight[rows].float(), self.proj_in.bias[rows].float())

    def gates(self, x: torch.Tensor, p: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Value v, forget gate a (float32) and output gate g, each (N, T, H), from x (N, T, D) and
        its in-projection p (N, T, 3H)."""
        v, f, g = p.chunk(3, dim=-1)
        a = torch.addcmul(1.0 - mask, torch.sigmoid(self.forget_logits(x, f)), mask)  # padded: a = 1, input 0
        return v, a, g

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # x: (N, T, D), mask: (N, T, 1)
        if kernels.usable(x):
            if not torch.is_autocast_enabled(x.device.type):
                p = F.linear(x, self.proj_in.weight)         # (N, T, 3H); the kernel adds the bias
                return self.proj_out(linear_rnn(p, self.proj_in.bias, mask, self.split))
            # bf16 autocast: the projections stay in bf16, the kernel runs in float32 on their
            # output, with the forget gate's logits from a float32 projection
            v, f, g = self.proj_in(x).chunk(3, dim=-1)
            p = torch.cat([v.float(), self.forget_logits(x, f), g.float()], dim=-1)
            return self.proj_out(linear_rnn(p, p.new_zeros(p.shape[-1]), mask, self.split))
        v, a, g = self.gates(x, self.proj_in(x), mask)       # (N, T, H) each
        h = self.scan(a, torch.addcmul(v, a, v, value=-1.0))  # (1 - a) v in one pass
        return self.proj_out(h * F.silu(g))

    def stream_state(self, n: int, like: torch.Tensor) -> torch.Tensor:
        """The hidden state before a stream's first frame (n, H): zero, as `scan` starts."""
        return like.new_zeros(n, self.hidden)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The causal RNN on the next frames x (N, n, D) of a stream from the hidden state after the
        previous ones (N, H): (y (N, n, D), the state after these frames). The PyTorch code: the
        kernel starts every sequence from zero."""
        v, a, g = self.gates(x, self.proj_in(x), x.new_ones(x.shape[:-1] + (1,)))
        h = scan_from(a, torch.addcmul(v, a, v, value=-1.0), state, self.scan.chunk)  # (N, n, H)
        return self.proj_out(h * F.silu(g)), h[:, -1]


class LongConv(nn.Module):
    """GLU in-projection -> long depthwise conv over time -> SiLU -> out-projection.

    The convolution is centred, or causal: frame t sees frames t - kernel + 1 .. t (zero before the
    start). On a CPU (float32 or float64 input, bf16 autocast included, whose bf16 projection the
    kernel reads in float32) the centred GLU, convolution and SiLU run as one compiled kernel in
    the (N, T, E) layout (`press.model.kernels`); elsewhere, and causal, as the PyTorch code below.
    """

    def __init__(self, dim: int, hidden: int, kernel: int, causal: bool = False) -> None:
        super().__init__()
        self.causal = causal
        self.context = kernel - 1                            # past frames a causal output sees
        self.proj_in = nn.Linear(dim, 2 * hidden)
        self.conv = nn.Conv1d(hidden, hidden, kernel, padding=0 if causal else kernel // 2, groups=hidden)
        self.proj_out = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # x: (N, T, D), mask: (N, T, 1)
        q = self.proj_in(x)                                  # (N, T, 2E); bf16 under autocast
        if (not self.causal and kernels.usable(x) and self.conv.kernel_size[0] % 2 == 1
                and x.dtype == self.conv.weight.dtype):
            q = q.to(x.dtype)                                # the kernel works in the stream's precision
            return self.proj_out(glu_conv(q, mask, self.conv.weight, self.conv.bias))
        u = F.glu(q, dim=-1) * mask                          # (N, T, E), zero in padding
        if self.causal:
            u = F.pad(u, (0, 0, self.context, 0))            # (N, kernel - 1 + T, E)
        return self.mix(u)

    def mix(self, u: torch.Tensor) -> torch.Tensor:
        """The convolution, SiLU and out-projection: (N, T + padding, E) -> (N, T, D)."""
        u = self.conv(u.transpose(1, 2)).transpose(1, 2)
        return self.proj_out(F.silu(u))

    def stream_state(self, n: int, like: torch.Tensor) -> torch.Tensor:
        """The frames before a stream's first (n, kernel - 1, E): zero, as the causal padding."""
        return like.new_zeros(n, self.context, self.conv.in_channels)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The causal convolution on the next frames x (N, n, D) of a stream, given the GLU outputs of
        the kernel - 1 frames before them (N, kernel - 1, E): (y (N, n, D), the last kernel - 1)."""
        u = torch.cat([state, F.glu(self.proj_in(x), dim=-1)], dim=1)      # (N, kernel - 1 + n, E)
        return self.mix(u), u[:, u.shape[1] - self.context:]


class SpeakerMix(nn.Module):
    """softmax(q k^T / sqrt(d)) v across the S streams at each frame and head.

    Written as broadcast products and sums, not matmuls: S is 2 or 3, so each "matrix" is S x S
    and a batched matmul of millions of them gains nothing, and torch.compile's inductor rewrites
    the matmul form of attention into a fused kernel written for rank-4 tensors, which on this
    rank-5 one computed wrong outputs in float32 (torch 2.13) and failed to build under bf16
    (tests/test_compile_attention.py). Press's own counter counts its MACs (`macs`);
    FlopCounterMode, which counts matmuls only, misses these 2 S per output value.
    """

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # q, k, v: (B, T, heads, S, dh)
        w = (q.unsqueeze(-2) * k.unsqueeze(-3)).sum(-1) / math.sqrt(q.shape[-1])  # (B, T, h, S, S)
        return (w.softmax(dim=-1).unsqueeze(-1) * v.unsqueeze(-3)).sum(-2)         # (B, T, h, S, dh)

    @staticmethod
    def macs(inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
        s = inputs[1].shape[-2]
        return 2 * output.numel() * s  # scores + weighted sum


class SpeakerAttention(nn.Module):
    """Multi-head attention across speaker streams, one frame at a time (no time mixing)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.mix = SpeakerMix()
        self.proj_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, S, T, D)
        q, k, v = (t.unflatten(-1, (self.heads, -1)).permute(0, 2, 3, 1, 4)   # (B, T, h, S, dh)
                   for t in self.qkv(x).chunk(3, dim=-1))
        y = self.mix(q, k, v).permute(0, 3, 1, 2, 4).flatten(-2)             # (B, S, T, D)
        return self.proj_out(y)


class SwiGLU(nn.Module):
    """W_out (silu(a) * b), [a | b] = W_in x; the gate as one compiled kernel where it can run."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.proj_in = nn.Linear(dim, 2 * hidden)
        self.proj_out = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.proj_in(x)
        if kernels.usable(q):
            return self.proj_out(swiglu(q))
        a, b = q.chunk(2, dim=-1)
        return self.proj_out(F.silu(a) * b)


class RMSNorm(nn.RMSNorm):
    """nn.RMSNorm over the last dimension; one compiled kernel where it can run (CPU, float32 or
    float64 input, as the residual stream is even under autocast, which leaves rms_norm in the
    input's precision), the PyTorch code elsewhere. Same parameters and state dict."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if kernels.usable(x) and self.weight is not None and len(self.normalized_shape) == 1 and x.dtype == self.weight.dtype:
            return rms_norm(x, self.weight, self.eps if self.eps is not None else torch.finfo(x.dtype).eps)
        return super().forward(x)


class LayerScale(nn.Module):
    """A learned per-channel gain on a residual branch: `residual + gamma * x`."""

    def __init__(self, dim: int, init: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, residual: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(residual, x, self.gamma)   # one pass over the stream, not two


class Block(nn.Module):
    """x + LS(mixer(norm(x))), then x + LS(mlp(norm(x))); kind is 'R', 'C' or 'A'.

    With `checkpoint` set (`PressNet.checkpoint_blocks`, for training), the block keeps only its
    input for the backward pass and runs its forward again there: a block's internals are ~10
    tensors of (B S, T, 3H) where its input is one (B, S, T, D), so a deep stack trains in a
    fraction of the memory for one extra forward pass. The gradients are the same.
    """

    def __init__(self, kind: str, dim: int, *, rnn_hidden: int, conv_hidden: int, conv_kernel: int,
                 ffn_hidden: int, heads: int, ls_init: float, chunk: int, causal: bool = False) -> None:
        super().__init__()
        self.kind = kind
        self.norm1 = RMSNorm(dim)
        if kind == "R":
            self.mixer: nn.Module = LinearRNN(dim, rnn_hidden, chunk, causal)
        elif kind == "C":
            self.mixer = LongConv(dim, conv_hidden, conv_kernel, causal)
        elif kind == "A":
            self.mixer = SpeakerAttention(dim, heads)
        else:
            raise ValueError(f"unknown block kind {kind!r}")
        self.ls1 = LayerScale(dim, ls_init)
        self.norm2 = RMSNorm(dim)
        self.mlp = SwiGLU(dim, ffn_hidden)
        self.ls2 = LayerScale(dim, ls_init)
        self.checkpoint = False

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # x: (B, S, T, D), mask: (B, 1, T, 1)
        if self.checkpoint and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(self._forward, x, mask, use_reentrant=False)
        return self._forward(x, mask)

    def _forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        if self.kind == "A":
            y = self.mixer(y)
        else:  # time mixers see every stream as its own sequence
            B, S, T, D = y.shape
            m = mask.expand(B, S, T, 1).reshape(B * S, T, 1)
            y = self.mixer(y.reshape(B * S, T, D), m).reshape(B, S, T, D)
        return self.channel_mix(x, y) * mask

    def channel_mix(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The mixer's output y added to the stream x, then the channel MLP's."""
        x = self.ls1(x, y)
        return self.ls2(x, self.mlp(self.norm2(x)))

    def stream_state(self, n: int, like: torch.Tensor) -> torch.Tensor:
        """What the block carries from chunk to chunk of a stream of n sequences (B S); attention
        carries nothing (an empty tensor)."""
        return like.new_zeros(0) if self.kind == "A" else self.mixer.stream_state(n, like)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The causal block on the next frames x (B, S, n, D) of a stream, every frame valid, and the
        state the previous chunk left: (output (B, S, n, D), the state after these frames)."""
        y = self.norm1(x)
        if self.kind == "A":
            return self.channel_mix(x, self.mixer(y)), state
        B, S, n, D = y.shape
        y, state = self.mixer.step(y.reshape(B * S, n, D), state)
        return self.channel_mix(x, y.reshape(B, S, n, D)), state
