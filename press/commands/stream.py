"""`press stream MODEL --input IN --output OUT`: enhance a live stream with a causal model, a chunk at a time.

IN is an audio file, `-` (raw PCM on stdin) or `mic`; OUT is a WAV file, `-` (raw PCM on stdout) or
`speaker`. Each chunk runs through `PressNet.stream_step` (docs/model.md, "Causal models and streams")
to one exit, and every sample the chunk makes final goes out at once, at the input's rate: the output
is the whole-file forward's at that exit whatever the chunk size. The algorithmic latency is the chunk
plus the model's look-ahead, plus soxr's buffering where the input's rate is not the model's.

A file output appears under its name only complete (Ctrl-C and SIGTERM leave nothing of it); a pipe
gets every sample as soon as it is made and ends quietly when its reader goes. stdout carries audio
only: the status line and the summary go to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

from press.commands.options import channel_choice, number, writable_folder

if TYPE_CHECKING:
    import numpy as np

    from press.model import PressNet

STDIO, MIC, SPEAKER = "-", "mic", "speaker"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a causal model: a .safetensors checkpoint of a causal config, e.g. one that "
                                 "`press train enhance-rt` wrote (a non-causal model is refused)")
    p.add_argument("--input", required=True, metavar="IN",
                   help="an audio file (read chunk by chunk; any format and rate libsndfile reads), - (raw "
                        "mono PCM on stdin: --rate, --format) or mic (the default microphone; Ctrl-C ends the "
                        "recording and keeps it). A file named mic is ./mic")
    p.add_argument("--output", required=True, metavar="OUT",
                   help="where the speech goes (the output named speech, else the model's first), at the "
                        "input's rate: a .wav file (complete or not at all), - (raw PCM on stdout, in --format) "
                        "or speaker (the default output device)")
    p.add_argument("--exit", type=number(1, integer=True), default=None,
                   help="the exit every chunk runs to (default: the model's last). A stream runs one fixed "
                        "exit: choosing it per block, as press enhance does, is not available here yet")
    p.add_argument("--chunk-ms", type=number(0, 10000, low_open=True), default=10.0,
                   help="milliseconds of input per step (default 10): the main part of the latency. A step "
                        "has a fixed cost, so longer chunks cost less per second of audio")
    p.add_argument("--rate", type=number(1, integer=True), default=None,
                   help="sample rate of raw PCM input or of the microphone (default: the model's). An input "
                        "at another rate than the model's (a file's too) is resampled in and back out with "
                        "soxr's streaming resampler: exact, but its buffering adds tens of ms to the latency")
    p.add_argument("--format", choices=["s16le", "f32le"], default=None,
                   help="raw PCM samples on stdin and stdout (default s16le, sox -e signed -b 16; f32le: "
                        "sox -e floating-point -b 32)")
    p.add_argument("--channel", type=channel_choice, default=None,
                   help="for a multi-channel input file: 'mix' (average) or a channel index")
    p.add_argument("--subtype", choices=["FLOAT", "PCM_16", "PCM_24"], default="FLOAT",
                   help="WAV sample format of a file output (default FLOAT; PCM_16, PCM_24 clip to full scale)")
    p.add_argument("--threads", type=number(1, integer=True), default=1,
                   help="torch threads (default 1: a chunk of milliseconds gains little from more)")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--progress", action="store_true",
                       help="the live status line on stderr even when stderr is not a terminal")
    shown.add_argument("--quiet", action="store_true", help="no status line and no summary")


class Source(Protocol):
    """Mono float32 chunks of `frames` samples at `rate` (the last may be shorter), None at the end."""

    rate: int
    frames: int

    def read(self) -> np.ndarray | None: ...


class Sink(Protocol):
    """Takes the enhanced samples at the input's rate as they come; `finish` completes the output."""

    def write(self, x: np.ndarray) -> None: ...

    def finish(self) -> None: ...


def run(args: argparse.Namespace) -> int:
    from press.commands.signals import Interrupted

    check_options(args)
    try:
        return stream(args)
    except Interrupted as stop:
        if args.output in (STDIO, SPEAKER):   # what went out to a pipe or a speaker is out
            print(f"press stream: {stop}", file=sys.stderr)
            return stop.exit_code
        raise


def check_options(args: argparse.Namespace) -> None:
    """Refuse options that do not fit the input and output, before the model loads."""
    from press.errors import PressError
    from press.io.devices import sounddevice

    if args.input not in (STDIO, MIC) and args.rate is not None:
        raise PressError("--rate is for raw PCM on stdin and for the microphone: a file's header gives its rate")
    if args.format is not None and STDIO not in (args.input, args.output):
        raise PressError("--format is for raw PCM: --input - or --output -")
    if args.channel is not None and args.input in (STDIO, MIC):
        raise PressError("--channel picks a channel of an input file; raw PCM and the microphone are mono")
    if args.output == STDIO and sys.stdout.isatty():
        raise PressError("refusing to write raw audio to a terminal: pipe it (| sox -t raw ...) or redirect it")
    if args.output not in (STDIO, SPEAKER):
        if Path(args.output).suffix.lower() != ".wav":
            raise PressError(f"{args.output}: press stream writes WAV; name the output .wav (or - for raw PCM)")
        writable_folder(Path(args.output).parent)
    if args.input == MIC or args.output == SPEAKER:
        sounddevice()


def load_causal(spec: str) -> tuple[PressNet, str]:
    """(the causal network, its name) for a checkpoint or shipped name; a PressError for a model that
    cannot stream, or for a causal config whose weights are not shipped."""
    from press.errors import PressError
    from press.model.config import config_names
    from press.model.pretrained import load, shipped_names

    if spec not in shipped_names() and spec in config_names() and not Path(spec).exists():
        raise PressError(f"{spec} is a configuration whose trained weights are not shipped: train it "
                         f"(press train {spec} --out runs/{spec}) and stream runs/{spec}/best.safetensors")
    net, cfg, _ = load(spec, device="cpu")
    name = str(cfg.model.get("name", spec))
    if not net.cfg.causal:
        files = "press enhance" if "speech" in net.cfg.source_names else "press separate"
        raise PressError(f"{name} is not causal: stream needs a causal model such as enhance-rt; use {files} "
                         "for files")
    return net, name


def open_source(args: argparse.Namespace, model_rate: int, stack: contextlib.ExitStack) -> Source:
    from press.io.devices import Microphone
    from press.io.pcm import PcmReader
    from press.io.streaming import ChunkReader

    rate = args.rate or model_rate   # raw PCM's and the microphone's: a file's is in its header
    frames = max(1, round(args.chunk_ms * rate / 1000))
    if args.input == STDIO:
        return PcmReader(sys.stdin.buffer, args.format or "s16le", rate, frames)
    if args.input == MIC:
        mic = Microphone(rate, frames)
        stack.callback(mic.close)
        return mic
    return stack.enter_context(ChunkReader(args.input, args.chunk_ms / 1000, args.channel))


def open_sink(args: argparse.Namespace, rate: int, stack: contextlib.ExitStack) -> Sink:
    from press.io.devices import Speaker
    from press.io.pcm import PcmWriter

    if args.output == STDIO:
        return PcmWriter(sys.stdout.buffer, args.format or "s16le")
    if args.output == SPEAKER:
        speaker = Speaker(rate)
        stack.callback(speaker.close)
        return speaker
    return WavSink(stack, Path(args.output), rate, args.subtype)


class WavSink:
    """A WAV file written as the stream goes, under a temporary name until `finish`
    (press.io.streaming.SourceWriter: leaving the stack before that removes it)."""

    def __init__(self, stack: contextlib.ExitStack, path: Path, rate: int, subtype: str) -> None:
        from press.io.streaming import SourceWriter

        self.writer = stack.enter_context(SourceWriter([path], rate, rate, subtype=subtype))

    def write(self, x: np.ndarray) -> None:
        self.writer(0, x[None])

    def finish(self) -> None:
        self.writer.commit()


def stream(args: argparse.Namespace) -> int:
    import torch

    from press.commands.signals import ctrl_c_ends_input
    from press.errors import PressError
    from press.model.compute import exit_costs

    torch.set_num_threads(args.threads)
    net, name = load_causal(args.model)
    exit_k = args.exit or net.n_exits
    if exit_k > net.n_exits:
        raise PressError(f"{name} has {net.n_exits} exits; --exit {exit_k} is beyond them")
    rate = net.cfg.sample_rate
    with torch.inference_mode():   # the first step loads compiled kernels: before a microphone records
        net.stream_step(torch.zeros(1, max(1, round(args.chunk_ms * rate / 1000))), net.stream_begin(1), exit_k)
    with contextlib.ExitStack() as stack:
        source = open_source(args, rate, stack)
        ended = stack.enter_context(ctrl_c_ends_input()) if args.input == MIC else (lambda: False)
        sink = open_sink(args, source.rate, stack)
        meter = Meter(show_status(args), f"exit {exit_k} of {net.n_exits}", net.lookahead / rate,
                      source.frames / source.rate)
        try:
            pump(net, exit_k, source, sink, meter, ended)
        except BrokenPipeError:   # the reader of stdout went away: the stream ends there, quietly
            return 0
        finally:
            meter.clear()
    if not args.quiet:
        print(f"press stream: {meter.summary(exit_costs(net)[exit_k - 1].gmacs_per_second)}"
              + "".join(f"; {note}" for note in notes(source, sink)), file=sys.stderr)
    return 0


def pump(net: PressNet, exit_k: int, source: Source, sink: Sink, meter: Meter, ended: Callable[[], bool]) -> None:
    """Every chunk of `source` through the model's stream step to exit `exit_k`, and the speech it makes
    final (the output named speech, else the first) into `sink` at once, resampled to and from the
    model's rate where the source's differs; at the end of the input, its last samples."""
    import numpy as np
    import torch

    from press.io.audio import StreamResampler

    names = net.cfg.source_names
    speech = names.index("speech") if "speech" in names else 0
    to_model = StreamResampler(source.rate, net.cfg.sample_rate)
    to_output = StreamResampler(net.cfg.sample_rate, source.rate)

    def final(outputs) -> np.ndarray:
        return outputs[exit_k - 1].estimate[0, speech].numpy()

    state, n_in, n_out = net.stream_begin(1), 0, 0
    with torch.inference_mode():
        while not ended() and (x := source.read()) is not None:
            start = time.perf_counter()
            outputs, state = net.stream_step(torch.from_numpy(to_model(x))[None], state, exit_k)
            y = to_output(final(outputs))
            meter.chunk(len(x) / source.rate, time.perf_counter() - start, to_model.delay() + to_output.delay())
            sink.write(y)
            n_in, n_out = n_in + len(x), n_out + len(y)
        outputs, state = net.stream_step(torch.from_numpy(to_model(np.zeros(0, np.float32), last=True))[None],
                                         state, exit_k)
        tail = np.concatenate([final(outputs), final(net.stream_end(state, exit_k))])
    y = to_output(tail, last=True)[:n_in - n_out]        # the output has the input's length: soxr
    sink.write(np.pad(y, (0, n_in - n_out - len(y))))   # rounds it by a sample either way
    sink.finish()


def show_status(args: argparse.Namespace) -> bool:
    return not args.quiet and (args.progress or sys.stderr.isatty())


def notes(source: Source, sink: Sink) -> list[str]:
    """What went wrong on the way without stopping the stream: a torn last sample, audio lost."""
    said = []
    if getattr(source, "dropped", 0):
        said.append(f"ignored the last {source.dropped} byte(s) of the input: not a whole sample")
    if getattr(source, "lost", 0):
        said.append(f"the microphone dropped samples {source.lost} time(s): processing fell behind")
    if getattr(sink, "late", 0):
        said.append(f"the speaker ran dry {sink.late} time(s): processing fell behind")
    return said


class Meter:
    """Processing time per chunk against the chunk's duration: a live status line on stderr (four a
    second on a terminal, one a second in a log) and the summary at the end."""

    def __init__(self, live: bool, exit_used: str, lookahead: float, chunk: float) -> None:
        self.live, self.tty = live, sys.stderr.isatty()
        self.exit_used, self.lookahead, self.chunk_s = exit_used, lookahead, chunk
        self.audio = self.spent = self.worst = self.resampling = 0.0
        self._shown, self._since = -float("inf"), (0.0, 0.0)   # the first chunk shows the line

    def chunk(self, audio: float, spent: float, resampling: float) -> None:
        """One chunk of `audio` seconds processed in `spent` seconds; the resamplers hold `resampling`."""
        self.audio, self.spent = self.audio + audio, self.spent + spent
        self.worst, self.resampling = max(self.worst, spent / audio), max(self.resampling, resampling)
        if not self.live:
            return
        since = (self._since[0] + audio, self._since[1] + spent)
        now = time.monotonic()
        if now - self._shown < (0.25 if self.tty else 1.0):
            self._since = since
            return
        line = (f"{self.exit_used} | latency {self.latency()} | {self.audio:.1f} s | "
                f"{since[1] / since[0] * self.chunk_s * 1e3:.1f} ms per {self.chunk_s * 1e3:.1f} ms chunk "
                f"(load {since[1] / since[0]:.0%})")
        sys.stderr.write(f"\r{line}\x1b[K" if self.tty else f"{line}\n")
        sys.stderr.flush()
        self._shown, self._since = now, (0.0, 0.0)

    def latency(self) -> str:
        """The algorithmic latency: the model's look-ahead, the chunk, the resamplers' largest hold."""
        parts = [f"look-ahead {self.lookahead * 1e3:.1f}", f"chunk {self.chunk_s * 1e3:.1f}"]
        if self.resampling:
            parts.append(f"resampling {self.resampling * 1e3:.1f}")
        total = self.lookahead + self.chunk_s + self.resampling
        return f"{total * 1e3:.1f} ms ({' + '.join(parts)})"

    def clear(self) -> None:
        if self.live and self.tty:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()

    def summary(self, gmacs_per_second: float) -> str:
        rtf = self.spent / self.audio if self.audio else 0.0
        return (f"{self.audio:.2f} s of audio at {self.exit_used}: real-time factor {rtf:.3f} (worst chunk "
                f"{self.worst:.3f}), {gmacs_per_second:.2f} GMAC/s, latency {self.latency()}")
