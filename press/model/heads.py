"""The ends of PRESS-Net: the encoder head on the waveform and the two heads of every exit.

Encoder head: waveform -> wide conv (C channels, stride 1) -> ReLU -> patches of P samples ->
ShiftNorm -> Linear to D. The conv features double as the analysis basis that every exit's
decoder head masks and resynthesises, TasNet style.

Exit heads: a decoder head (per-frame Linear -> C x P mask -> un-patch -> mask the basis ->
synthesis filters -> overlap-add) and an inverse-gamma head (GLU -> Snake -> mean over the
likelihood block's frames -> Linear -> Softplus) giving alpha, beta per speaker and block.

The two sample-rate filterbanks are written as a matmul with the filters plus K shifted adds,
not as Conv1d: mathematically the same stride-1 convolutions, but CPU convolution kernels with
one input or one output channel are slow (a 64->1 conv's backward ran 10x slower than this), and
as Linear layers they are counted by every MAC counter like any other matmul.

Causal heads (`causal=True`) see no later sample than the end of the frame that holds the output:
the analysis filters take the K samples up to each sample (not K centred on it), and each sample's
K synthesis taps land on itself and the K - 1 samples after it. A frame's mask needs the whole
frame, so an output sample waits for at most the P - 1 samples after it (`PressNet.lookahead`).
For a stream, the heads run a chunk of frames at a time: the encoder from the K - 1 normalised
samples before the chunk, the decoder carrying the K - 1 partial output samples past the chunk,
the inverse-gamma head's block mean as a running sum (`features`, then `pool` once a block ends).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from press.model.blocks import RMSNorm

ALPHA_FLOOR = 1e-3   # alpha, beta > 0 strictly, whatever the network outputs
BETA_FLOOR = 1e-8
# [ours] The predicted error variance (the Student-t scale beta / alpha) never goes below -40 dB of
# the input's power: beta >= alpha * VARIANCE_FLOOR on level-normalised audio. Without it, blocks
# of digital silence (synthetic speech has exact zeros) reward an exactly-zero output without
# bound, -(n/2) ln(beta/alpha), and training collapses into "one stream = the mixture, the other =
# silence", which is exact wherever one talker pauses. Recorded speech has a noise floor that
# bounds this by itself; the floor gives synthetic speech the same bound. It bounds beta / alpha,
# not beta: the loss also floors the error energy (press.prob.likelihood, handed this floor by
# press.training.loss), or alpha -> 0 pays.
VARIANCE_FLOOR = 1e-4


def same_pad(x: torch.Tensor, kernel: int) -> torch.Tensor:
    """Pad the last axis so that a stride-1 conv with `kernel` keeps its length."""
    return F.pad(x, ((kernel - 1) // 2, kernel // 2))


def causal_pad(x: torch.Tensor, kernel: int) -> torch.Tensor:
    """Pad the last axis so that a stride-1 conv with `kernel` keeps its length and output t sees
    inputs t - kernel + 1 .. t only."""
    return F.pad(x, (kernel - 1, 0))


class ShiftNorm(nn.Module):
    """Per-frame normalisation that keeps loudness: (x - mean) / std, plus log(std) as a channel.

    A plain norm would scale a quiet frame up to the level of a loud one, so the network could not
    tell a whisper from a shout and would amplify artefacts in quiet passages. The extra channel
    carries the frame's level on, so nothing of the amplitude is lost.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (..., C) -> (..., C + 1)
        mean = x.mean(-1, keepdim=True)
        std = (x - mean).pow(2).mean(-1, keepdim=True).add(self.eps ** 2).sqrt()
        z = (x - mean) / std * self.weight + self.bias
        return torch.cat([z, std.log()], dim=-1)


class EncoderHead(nn.Module):
    def __init__(self, channels: int, kernel: int, patch: int, dim: int, causal: bool = False) -> None:
        super().__init__()
        self.kernel, self.patch, self.causal = kernel, patch, causal
        # set by the ONNX exporter (press.export): build the taps from K slices, since ONNX has no
        # Unfold over a dynamic length (same values; the matmul may round differently by ~1e-7)
        self.taps_by_slicing = False
        self.analysis = nn.Linear(kernel, channels, bias=False)   # the conv's C filters of K taps
        self.norm = ShiftNorm(channels * patch)
        self.proj = nn.Linear(channels * patch + 1, dim)

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # wave: (B, L) with L a multiple of P -> frames (B, 1, T, D), basis (B, L, C)
        return self.encode((causal_pad if self.causal else same_pad)(wave, self.kernel))

    def encode(self, padded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames (B, 1, T, D) and basis (B, L, C) from the samples (B, K - 1 + L) the L outputs'
        taps span: the padded input, or in a stream the K - 1 samples before a chunk and the chunk."""
        if self.taps_by_slicing:
            L = padded.shape[-1] - self.kernel + 1
            taps = torch.stack([padded[..., j:j + L] for j in range(self.kernel)], dim=-1)
        else:
            taps = padded.unfold(-1, self.kernel, 1)                      # (B, L, K)
        basis = F.relu(self.analysis(taps))                                # (B, L, C)
        B, L, C = basis.shape
        frames = self.proj(self.norm(basis.reshape(B, L // self.patch, self.patch * C)))
        return frames.unsqueeze(1), basis


class DecoderHead(nn.Module):
    """Frames of one exit -> waveform per stream, by masking the encoder basis.

    The output is the input shared equally between the S streams plus what the masked basis
    resynthesises [ours]. The synthesis filters start at zero, so every exit starts from
    "mixture / S" (0 dB SI-SNRi, the trivial answer) and learns the correction, instead of
    starting from a random filtering of the mixture tens of dB below it.
    """

    def __init__(self, dim: int, channels: int, kernel: int, patch: int, causal: bool = False) -> None:
        super().__init__()
        self.kernel, self.patch = kernel, patch
        # output t gathers the taps of samples t + offset - K + 1 .. t + offset: centred, or causal
        self.offset = 0 if causal else (kernel - 1) // 2
        self.norm = RMSNorm(dim)
        self.mask = nn.Linear(dim, patch * channels)
        self.synthesis = nn.Linear(channels, kernel, bias=False)   # a conv's K taps per channel
        nn.init.zeros_(self.synthesis.weight)

    def forward(self, h: torch.Tensor, basis: torch.Tensor, wave: torch.Tensor) -> torch.Tensor:
        # h: (B, S, T, D), basis: (B, L, C), wave: (B, L) -> (B, S, L)
        S, L = h.shape[1], basis.shape[1]
        y = self.overlap_add(self.taps(h, basis), self.offset, L)
        return y + wave.unsqueeze(1) / S

    def taps(self, h: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
        """Every sample's K synthesis taps (B, S, L, K) from the frames (B, S, T, D) and basis (B, L, C)."""
        B, S = h.shape[:2]
        L, C = basis.shape[1:]
        m = self.mask(self.norm(h)).reshape(B, S, L, C)                   # un-patch: P samples a frame
        return self.synthesis(m * basis.unsqueeze(1))                     # (B, S, L, K)

    def overlap_add(self, z: torch.Tensor, offset: int, length: int) -> torch.Tensor:
        """y[t] = sum_j z[t + offset - j, j] for t in [0, length) (B, S, length), from z (B, S, L, K).

        Sample s adds its K taps z[s, j] onto outputs s + j - offset: a stride-1 transposed conv.
        `fold` sums the overlapping taps in one op and its backward is one `unfold`; a sum of K
        shifted slices zero-filled a full-size gradient per slice (a tenth of a `default` training
        step). The ONNX exporter has no `fold` rule for a dynamic length: the exported graph keeps
        the sum.
        """
        B, S, L, K = z.shape
        if torch.onnx.is_in_onnx_export():
            z = F.pad(z, (0, 0, K - 1 - offset, length - L + offset))
            return sum(z[..., k:k + length, K - 1 - k] for k in range(K))
        y = F.fold(z.reshape(B * S, L, K).transpose(1, 2), (1, L + K - 1), (1, K))  # (B S, 1, 1, L + K - 1)
        return y[:, 0, 0, offset:offset + length].reshape(B, S, length)

    def step(self, h: torch.Tensor, basis: torch.Tensor, wave: torch.Tensor, tail: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """The causal head on the next n frames of a stream: h (B, S, n, D), basis (B, L, C) and
        wave (B, L) of their L = n P samples, and the partial sums the earlier samples' taps left on
        these and later samples (B, S, K - 1): (output (B, S, L), the partial sums past them)."""
        S, L = h.shape[1], basis.shape[1]
        y = self.overlap_add(self.taps(h, basis), 0, L + self.kernel - 1) + F.pad(tail, (0, L))
        return y[..., :L] + wave.unsqueeze(1) / S, y[..., L:]


class Snake(nn.Module):
    """x + sin^2(a x) / a with a learnable frequency a per channel (periodic inductive bias)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.freq = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.freq.abs() + 1e-4
        return x + torch.sin(a * x).pow(2) / a


class InverseGammaHead(nn.Module):
    """Frames of one exit -> raw (alpha~, beta~) per stream and likelihood block.

    Returns softplus outputs, floored; PressNet turns them into alpha, beta (cumulatively or not).
    """

    def __init__(self, dim: int, hidden: int, frames_per_block: int) -> None:
        super().__init__()
        self.fpb = frames_per_block
        self.norm = RMSNorm(dim)
        self.glu = nn.Linear(dim, 2 * hidden)
        self.snake = Snake(hidden)
        self.out = nn.Linear(hidden, 2)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # h: (B, S, T, D), mask: (B, 1, T, 1), T a multiple of frames_per_block
        z = self.features(h)                                              # (B, S, T, G)
        B, S, T, G = z.shape
        z = (z * mask).reshape(B, S, T // self.fpb, self.fpb, G).sum(3)
        count = mask.reshape(B, 1, T // self.fpb, self.fpb).sum(3, keepdim=True).clamp_min(1.0)
        return self.pool(z, count)

    def features(self, h: torch.Tensor) -> torch.Tensor:
        """What each frame (B, S, T, D) adds to its block's mean (B, S, T, G)."""
        return self.snake(F.glu(self.glu(self.norm(h)), dim=-1))

    def pool(self, total: torch.Tensor, count: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw (alpha~, beta~) (B, S, nb) from the features summed over each block's valid frames
        (B, S, nb, G) and their number (broadcast to (B, S, nb, 1))."""
        raw = F.softplus(self.out(total / count))                         # (B, S, nb, 2)
        return raw[..., 0] + ALPHA_FLOOR, raw[..., 1] + BETA_FLOOR
