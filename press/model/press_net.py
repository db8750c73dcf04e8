"""PRESS-Net: a time-domain separator with evenly spaced probabilistic exits.

    mixture (B, L)
      -> level normalisation (divide by the input RMS; undone on every output)
      -> EncoderHead: frames (B, 1, T, D), basis (B, L, C)         T = L / P
      -> n_enc_blocks on the mixture stream
      -> speaker split: Linear D -> S*D                            (B, S, T, D)
      -> n_dec_blocks shared by all speakers, in n_exits groups; after each group an exit:
         DecoderHead -> estimate (B, S, L); InverseGammaHead -> alpha, beta (B, S, nb)

Execution is incremental: `begin` runs everything up to the first decoder group and returns an
`ExitState`; `advance` runs one more group and its exit heads, and returns that exit's output with
the next state. Running to exit i computes nothing of later groups, and resuming from exit i
recomputes nothing before it. `forward` is `begin` followed by `advance` for every exit. The
fixed-depth computation of each step has no data-dependent Python control flow, so a step can be
traced or exported on its own; the dynamic decision of whether to advance lives outside.

A causal model (`ModelConfig.causal`) computes no output from input more than `lookahead` samples
ahead of it: causal blocks and heads, and a running level (`press.model.level.running_level`)
instead of the whole input's RMS, applied per frame and undone per sample (beta per block). It can
also run on a live stream, chunk by chunk (`stream_begin`, `stream_step`, `stream_end`:
`press.model.stream`), with the outputs of the whole-file forward.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn as nn

from press.model import kernels, stream
from press.model.blocks import Block, RMSNorm
from press.model.config import ModelConfig
from press.model.heads import VARIANCE_FLOOR, DecoderHead, EncoderHead, InverseGammaHead
from press.model.level import (
    SCALE_FLOOR,
    block_power,
    input_scale,
    level_decay,
    level_start,
    running_level,
    sample_level,
)
from press.model.stream import StreamOutput, StreamState


@dataclass(frozen=True)
class ExitOutput:
    """What one exit says, in the units of the input audio."""

    exit: int                 # 1-based exit index
    estimate: torch.Tensor    # (B, S, L) reconstructed sources
    alpha: torch.Tensor       # (B, S, nb) inverse-gamma shape per likelihood block
    beta: torch.Tensor        # (B, S, nb) inverse-gamma scale, in squared input units


@dataclass(frozen=True)
class ExitState:
    """Everything needed to continue from the last exit computed. Carried, never mutated."""

    h: torch.Tensor                 # (B, S, T, D) residual stream after the blocks run so far
    basis: torch.Tensor             # (B, Lp, C) encoder basis the decoder heads mask
    wave: torch.Tensor              # (B, Lp) the normalised, padded input
    mask: torch.Tensor              # (B, 1, T, 1) 1 on frames holding input, 0 on padding
    scale: torch.Tensor             # (B,) input RMS the network normalised by; causal: (B, T) the
                                    # running level of every frame
    length: int                     # samples to return (the unpadded input length)
    next_exit: int = 0              # 0-based index of the next exit to compute
    alpha_sum: torch.Tensor | None = None   # running sums for the cumulative parameterisation
    beta_sum: torch.Tensor | None = None

    def select(self, index: torch.Tensor) -> "ExitState":
        """The state of a subset of the batch (items that have not exited yet)."""
        pick = (lambda t: None if t is None else t[index])
        return replace(self, h=self.h[index], basis=self.basis[index], wave=self.wave[index],
                       mask=self.mask[index],
                       scale=self.scale[index], alpha_sum=pick(self.alpha_sum),
                       beta_sum=pick(self.beta_sum))


class PressNet(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        D = cfg.dim
        shared = dict(conv_hidden=round(cfg.conv_expand * D), conv_kernel=cfg.conv_kernel,
                      heads=cfg.attn_heads, ls_init=cfg.layer_scale_init, chunk=cfg.scan_chunk)
        dec_sizes = dict(rnn_hidden=round(cfg.rnn_expand * D), ffn_hidden=round(cfg.ffn_expand * D),
                         **shared)
        enc_sizes = dict(rnn_hidden=round((cfg.enc_rnn_expand or cfg.rnn_expand) * D),
                         ffn_hidden=round((cfg.enc_ffn_expand or cfg.ffn_expand) * D), **shared)
        enc_kinds = [cfg.enc_pattern[i % len(cfg.enc_pattern)] for i in range(cfg.n_enc_blocks)]
        dec_kinds = [cfg.dec_pattern[i % len(cfg.dec_pattern)] for i in range(cfg.n_dec_blocks)]
        self.encoder_head = EncoderHead(cfg.enc_channels, cfg.enc_kernel, cfg.patch, D, cfg.causal)
        self.encoder = nn.ModuleList(Block(k, D, causal=cfg.causal, **enc_sizes) for k in enc_kinds)
        self.split_norm = RMSNorm(D)
        self.split = nn.Linear(D, cfg.n_src * D)
        per = cfg.blocks_per_exit
        self.groups = nn.ModuleList(
            nn.ModuleList(Block(k, D, causal=cfg.causal, **dec_sizes) for k in dec_kinds[i * per:(i + 1) * per])
            for i in range(cfg.n_exits))
        self.decoder_heads = nn.ModuleList(
            DecoderHead(D, cfg.enc_channels, cfg.enc_kernel, cfg.patch, cfg.causal) for _ in range(cfg.n_exits))
        self.ig_heads = nn.ModuleList(
            InverseGammaHead(D, cfg.ig_hidden, cfg.frames_per_block) for _ in range(cfg.n_exits))

    def checkpoint_blocks(self, on: bool = True) -> None:
        """Recompute every residual block's forward in the backward pass instead of keeping its
        activations (training memory: `train.checkpoint_blocks`); see `Block`."""
        for module in self.modules():
            if isinstance(module, Block):
                module.checkpoint = on

    def compile_inference(self, **options) -> None:
        """`torch.compile` the two fixed-depth pieces inference runs, `begin_padded` and `step`, in
        place (`options` go to torch.compile).

        The segment runner feeds windows of one length, so each exit compiles once, and once more
        with a dynamic batch size when a last batch or early exits shrink the batch; the first call
        of each takes tens of seconds on a CPU. Outputs equal eager's to float rounding
        (tests/test_inference_compile.py; inductor itself: tests/test_compile_attention.py);
        whether it is faster depends on the model and the machine (docs/results.md), so nothing
        compiles unless asked.
        """
        kernels.available()   # build/load the CPU kernels now, not inside the first trace
        self.begin_padded = torch.compile(self.begin_padded, **options)
        self.step = torch.compile(self.step, **options)

    @property
    def n_exits(self) -> int:
        return self.cfg.n_exits

    @property
    def lookahead(self) -> int | None:
        """How many samples after an output sample its value may depend on; None: every sample
        (a non-causal model's bidirectional RNNs, centred convolutions and whole-input level).

        Causal: P - 1. Each frame's mask and features need the frame's P samples, and nothing
        else looks ahead (the analysis filters end at their sample, the synthesis taps and every
        block look back). A likelihood block ends on a frame's last sample, so its (alpha, beta)
        depend on nothing after the block.
        """
        return self.cfg.patch - 1 if self.cfg.causal else None

    @property
    def level_decay(self) -> float:
        """The running level's weight on the previous frame (causal models)."""
        return level_decay(self.cfg.sample_rate, self.cfg.patch)

    def begin(self, mixture: torch.Tensor, lengths: torch.Tensor | None = None,
              scale: torch.Tensor | None = None) -> ExitState:
        """Encoder head, encoder blocks and speaker split for a batch of mixtures.

        mixture: (B, L); lengths: (B,) valid samples per item (padded batches), None = all valid;
        scale: (B,) level to normalise by, None = the RMS of each item's valid samples (give a
        whole-file RMS when running segments of one file, so that quiet segments stay quiet).
        A causal model normalises by its running level and ignores `scale`.
        """
        if mixture.dim() != 2:
            raise ValueError(f"mixture must be (batch, samples), got shape {tuple(mixture.shape)}")
        B, L = mixture.shape
        Lp = -(-max(L, 1) // self.cfg.block) * self.cfg.block                # whole likelihood blocks
        if lengths is None:
            lengths = torch.full((B,), L, device=mixture.device)
        x = nn.functional.pad(mixture, (0, Lp - L))
        if scale is None and not self.cfg.causal:
            valid = (torch.arange(Lp, device=mixture.device) < lengths[:, None]).to(mixture.dtype)
            scale = input_scale(x * valid, lengths)
        h, basis, wave, mask, scale = self.begin_padded(x, lengths, scale)
        return ExitState(h=h, basis=basis, wave=wave, mask=mask, scale=scale, length=L)

    def begin_padded(self, x: torch.Tensor, lengths: torch.Tensor, scale: torch.Tensor | None
                     ) -> tuple[torch.Tensor, ...]:
        """`begin` on a batch already padded to whole likelihood blocks (B, Lp), with its level
        (None for a causal model, which computes its running level): (h, basis, wave, mask, scale).
        No Python control flow on shapes: what the ONNX exporter traces (press.export)."""
        cfg = self.cfg
        B, Lp = x.shape[0], x.shape[1]
        valid = (torch.arange(Lp, device=x.device) < lengths[:, None]).to(x.dtype)
        x = x * valid                                                       # (B, Lp)
        # frames touching input; not -(-n // P): ONNX's integer Div truncates instead of flooring
        n_frames = (lengths + cfg.patch - 1) // cfg.patch
        T = Lp // cfg.patch
        mask = (torch.arange(T, device=x.device) < n_frames[:, None]).to(x.dtype)   # (B, T)
        if cfg.causal:
            scale, _ = running_level(x, level_start(B, x), self.level_decay, cfg.patch, mask)  # (B, T)
            wave = x / sample_level(scale, cfg.patch)
        else:
            scale = scale.to(x.dtype).clamp_min(SCALE_FLOOR)
            wave = x / scale[:, None]
        frames, basis = self.encoder_head(wave)                             # (B,1,T,D), (B,Lp,C)
        mask = mask[:, None, :, None]                                       # (B, 1, T, 1)
        h = frames * mask
        for block in self.encoder:
            h = block(h, mask)
        return self.speakers(h) * mask, basis, wave, mask, scale

    def speakers(self, h: torch.Tensor) -> torch.Tensor:
        """The speaker split: the mixture stream (B, 1, T, D) -> one stream per source (B, S, T, D)."""
        B, _, T, _ = h.shape
        h = self.split(self.split_norm(h))                                  # (B, 1, T, S*D)
        return h.reshape(B, T, self.cfg.n_src, self.cfg.dim).permute(0, 2, 1, 3)

    def advance(self, state: ExitState) -> tuple[ExitOutput, ExitState]:
        """Run the next decoder group and its exit heads."""
        i = state.next_exit
        if i >= self.n_exits:
            raise ValueError(f"the model has only {self.n_exits} exits")
        estimate, alpha, beta, h, a_sum, b_sum = self.step(
            i, state.h, state.basis, state.wave, state.mask, state.scale, state.alpha_sum, state.beta_sum)
        nb = -(-state.length // self.cfg.block)
        out = ExitOutput(exit=i + 1, estimate=estimate[..., :state.length], alpha=alpha[..., :nb],
                         beta=beta[..., :nb])
        return out, replace(state, h=h, next_exit=i + 1, alpha_sum=a_sum, beta_sum=b_sum)

    def step(self, i: int, h: torch.Tensor, basis: torch.Tensor, wave: torch.Tensor, mask: torch.Tensor,
             scale: torch.Tensor, alpha_sum: torch.Tensor | None = None, beta_sum: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, ...]:
        """Decoder group i (0-based) and its exit heads on the padded state, uncropped:
        (estimate (B, S, Lp), alpha, beta (B, S, Lp / block) in input units, h, alpha_sum, beta_sum).
        What `advance` runs and the ONNX exporter traces (press.export)."""
        for block in self.groups[i]:
            h = block(h, mask)
        if self.cfg.causal:   # the level of every sample; beta of a block: its mean squared level
            s = sample_level(scale, self.cfg.patch)[:, None]                 # (B, 1, Lp)
            s2 = block_power(scale, mask[:, 0, :, 0], self.cfg.frames_per_block)[:, None]  # (B, 1, nb)
        else:
            s = scale[:, None, None]
            s2 = s.pow(2)
        estimate, a_raw, b_raw = self.heads(i, h, basis, wave, mask)
        estimate = estimate * s
        alpha, beta, a_sum, b_sum = self.exit_parameters(a_raw, b_raw, alpha_sum, beta_sum)
        return estimate, alpha, beta * s2, h, a_sum, b_sum

    def exit_parameters(self, a_raw: torch.Tensor, b_raw: torch.Tensor, alpha_sum: torch.Tensor | None,
                        beta_sum: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        """(alpha, beta on level-normalised audio, alpha_sum, beta_sum) from an exit's raw head outputs
        (B, S, nb) and the running sums of the exits before it (cumulative parameterisation)."""
        a_sum = b_sum = None
        if self.cfg.cumulative:
            a_sum = a_raw if alpha_sum is None else alpha_sum + a_raw
            b_sum = b_raw if beta_sum is None else beta_sum + b_raw
            alpha, beta = a_sum, 1.0 / b_sum
        else:
            alpha, beta = a_raw, b_raw
        return alpha, beta + alpha * VARIANCE_FLOOR, a_sum, b_sum

    def heads(self, i: int, h: torch.Tensor, basis: torch.Tensor, wave: torch.Tensor, mask: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Exit i's heads: estimate (B, S, Lp) in level-normalised units, raw alpha, beta (B, S, nb).

        Under autocast they run in float32, on a float32 copy of h: the trunk tolerates bf16, but
        the heads make what the likelihood scores block by block, and a bf16 mask and synthesis
        round the waveform by 2^-9 of its level, above the error of quiet blocks; in bf16 they
        shortened the last exit's gradients (experiments/bf16_gradients.py --heads bf16).
        """
        if h.device.type in ("cpu", "cuda") and torch.is_autocast_enabled(h.device.type):  # not meta
            with torch.autocast(h.device.type, enabled=False):
                return self.heads(i, h.float(), basis.float(), wave.float(), mask.float())
        estimate = self.decoder_heads[i](h, basis, wave)                   # (B, S, Lp)
        a_raw, b_raw = self.ig_heads[i](h, mask)                           # (B, S, nb)
        return estimate, a_raw, b_raw

    def forward(self, mixture: torch.Tensor, lengths: torch.Tensor | None = None,
                n_exits: int | None = None) -> list[ExitOutput]:
        """All exits up to `n_exits` (default: every exit) for a batch of mixtures (B, L)."""
        state = self.begin(mixture, lengths)
        outputs = []
        for _ in range(n_exits or self.n_exits):
            out, state = self.advance(state)
            outputs.append(out)
        return outputs

    def stream_begin(self, batch: int) -> StreamState:
        """The state of `batch` streams before their first sample (a causal model only)."""
        return stream.begin(self, batch)

    def stream_step(self, chunk: torch.Tensor, state: StreamState, exits: int
                    ) -> tuple[list[StreamOutput], StreamState]:
        """The next samples of every stream (B, N), any N >= 0, through the first `exits` exits:
        every exit's samples and likelihood blocks that no later input can change, and the state."""
        return stream.step(self, chunk, state, exits)

    def stream_end(self, state: StreamState, exits: int) -> list[StreamOutput]:
        """The end of the streams: their last samples and their last, partial likelihood block."""
        return stream.end(self, state, exits)
