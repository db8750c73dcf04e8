"""`press stream MODEL --input IN --output OUT`: enhance a live stream with a causal model, a chunk at a time.

IN is an audio file, `-` (raw PCM on stdin) or `mic`; OUT is a WAV file, `-` (raw PCM on stdout) or
`speaker`. By default each likelihood block leaves at the first exit where the exit rule's target
holds with the confidence asked (the model's operating point unless --target-db, --confidence say
otherwise; press.model.stream_exits, with the skipped groups caught up as --catch-up says), and goes
out once decided: the latency is the block plus the chunk. With --exit K every chunk runs through
`PressNet.stream_step` to exit K and every sample it makes final goes out at once: the latency is the
chunk plus the model's look-ahead. Either way soxr's buffering adds to it where the input's rate is
not the model's, and with `lazy` catch-up (or a fixed exit) the output is the whole-file forward's at
the exit each block took, whatever the chunk size (docs/model.md, "Causal models and streams").

A file output appears under its name only complete (Ctrl-C and SIGTERM leave nothing of it); a pipe
gets every sample as soon as it is made and ends quietly when its reader goes. stdout carries audio
only: the status line and the summary go to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from press.commands.options import channel_choice, number, writable_folder

if TYPE_CHECKING:
    import numpy as np

    from press.engine.operating_point import OperatingPoint
    from press.model import PressNet
    from press.model.stream import StreamOutput

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
    p.add_argument("--target-db", type=number(-100, 100), default=None,
                   help="quality target t in dB of exit-SNR, -100 to 100: each likelihood block leaves at the "
                        "first exit where it holds with --confidence (default: the model's operating point, "
                        "which `press info MODEL` shows; 20 for a model without one)")
    p.add_argument("--confidence", type=number(0, 1, low_open=True, high_open=True), default=None,
                   help="probability p in (0, 1) with which the target must hold to leave early (default: the "
                        "model's operating point; 0.9 for a model without one)")
    p.add_argument("--catch-up", choices=["lazy", "reset", "hold"], default=None,
                   help="what a deeper block does about the decoder groups that earlier blocks skipped: lazy "
                        "(the default) runs them over the skipped frames first, exact; reset restarts them "
                        "from zero, hold from their stale state: no extra compute, not exact")
    p.add_argument("--exit", type=number(1, integer=True), default=None,
                   help="run every chunk to this exit instead, each sample out as soon as its frame ends "
                        "(the look-ahead instead of a block's wait)")
    p.add_argument("--chunk-ms", type=number(0, 10000, low_open=True), default=10.0,
                   help="milliseconds of input per step (default 10): part of the latency. At a fixed exit "
                        "a step has a fixed cost, so longer chunks cost less per second of audio; with exits "
                        "per block the network runs once a block whatever the chunk")
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
                   help="torch or onnxruntime threads (default 1: a chunk of milliseconds gains little from more)")
    p.add_argument("--backend", choices=["torch", "onnx"], default="torch",
                   help="torch (MODEL a checkpoint or shipped name) or onnx: MODEL the manifest.json (or its "
                        "folder) that `press export` wrote for a causal model, run by onnxruntime without "
                        "torch; it runs whole blocks, so a fixed --exit waits a block too")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--progress", action="store_true",
                       help="the live status line on stderr even when stderr is not a terminal")
    shown.add_argument("--quiet", action="store_true", help="no status line and no summary")


class Source(Protocol):
    """Mono float32 chunks of `frames` samples at `rate` (the last may be shorter), None at the end."""

    rate: int
    frames: int

    def read(self) -> np.ndarray | None: ...


class Runner(Protocol):
    """A model on the stream: `step` takes the next samples at the model's rate and returns the speech
    samples it made final, `end` the rest; `taken` lists the exit of every block decided so far."""

    label: str
    wait: tuple[str, float]   # what a sample waits for before it can go out, in s
    taken: list[int]

    def step(self, x: np.ndarray) -> np.ndarray: ...

    def end(self) -> np.ndarray: ...

    def compute(self) -> str: ...


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

    if args.exit is not None and (args.target_db, args.confidence, args.catch_up) != (None, None, None):
        raise PressError("--exit runs every block to one exit; --target-db, --confidence and --catch-up choose "
                         "the exit per block: give one or the other")
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


def load_causal(spec: str) -> tuple[PressNet, str, OperatingPoint, list[tuple[float, float]]]:
    """(the causal network, its name, the operating point and the (alpha, beta) recalibration per
    exit it stores) for a checkpoint or shipped name;
    a PressError for a model that cannot stream, or for a causal config whose weights are not shipped."""
    from press.engine.backend import exit_scales
    from press.engine.operating_point import OperatingPoint
    from press.errors import PressError
    from press.model.config import config_names
    from press.model.pretrained import load, shipped_names
    from press.prob.calibration import Recalibration

    if spec not in shipped_names() and spec in config_names() and not Path(spec).exists():
        raise PressError(f"{spec} is a configuration whose trained weights are not shipped: train it "
                         f"(press train {spec} --out runs/{spec}) and stream runs/{spec}/best.safetensors")
    net, cfg, extra = load(spec, device="cpu")
    name = str(cfg.model.get("name", spec))
    if not net.cfg.causal:
        files = "press enhance" if "speech" in net.cfg.source_names else "press separate"
        raise PressError(f"{name} is not causal: stream needs a causal model such as enhance-rt; use {files} "
                         "for files")
    scales = exit_scales(extra.get("recalibration") or Recalibration().to_dict(), net.n_exits)
    return net, name, OperatingPoint.from_dict(extra.get("operating_point")), scales


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
    from press.commands.signals import ctrl_c_ends_input

    runner, rate = (onnx_runner if args.backend == "onnx" else torch_runner)(args)
    with contextlib.ExitStack() as stack:
        if args.backend == "torch":
            import torch

            stack.enter_context(torch.inference_mode())
        source = open_source(args, rate, stack)
        ended = stack.enter_context(ctrl_c_ends_input()) if args.input == MIC else (lambda: False)
        sink = open_sink(args, source.rate, stack)
        meter = Meter(show_status(args), runner.label, runner.wait, source.frames / source.rate,
                      not isinstance(runner, FixedExit))
        try:
            pump(rate, runner, source, sink, meter, ended)
        except BrokenPipeError:   # the reader of stdout went away: the stream ends there, quietly
            return 0
        finally:
            meter.clear()
    if not args.quiet:
        print(f"press stream: {meter.summary(runner.compute())}"
              + "".join(f"; {note}" for note in notes(source, sink)), file=sys.stderr)
    return 0


def torch_runner(args: argparse.Namespace) -> tuple[FixedExit | BlockExits, int]:
    """The runner for a causal checkpoint or shipped name, warmed up; the model's rate."""
    import torch

    from press.errors import PressError

    torch.set_num_threads(args.threads)
    net, name, point, scales = load_causal(args.model)
    if args.exit is not None and args.exit > net.n_exits:
        raise PressError(f"{name} has {net.n_exits} exits; --exit {args.exit} is beyond them")
    rate = net.cfg.sample_rate
    with torch.inference_mode():   # the first step loads compiled kernels: before a microphone records
        net.stream_step(torch.zeros(1, max(1, round(args.chunk_ms * rate / 1000))), net.stream_begin(1),
                        args.exit or net.n_exits)
    if args.exit:
        return FixedExit(net, args.exit), rate
    return BlockExits(net, *point.resolve(args.target_db, args.confidence), args.catch_up or "lazy", scales), rate


def onnx_runner(args: argparse.Namespace) -> tuple[OnnxBlocks, int]:
    """The runner for a streaming export's manifest (press export of a causal model); its rate."""
    from press.errors import PressError
    from press.runtime import OnnxStreamModel, load

    model = load(args.model, threads=args.threads)
    if not isinstance(model, OnnxStreamModel):
        raise PressError(f"{args.model}: an export of segment graphs; press stream needs a causal model's "
                         "streaming export (press export enhance-rt OUT_DIR)")
    return OnnxBlocks(model, args), model.sample_rate


def speech_index(net: PressNet) -> int:
    """The output that goes out: the one named speech, else the model's first."""
    names = net.cfg.source_names
    return names.index("speech") if "speech" in names else 0


class FixedExit:
    """Every chunk through `PressNet.stream_step` to exit `exit_k`: a frame's samples go out as soon as
    the frame ends."""

    def __init__(self, net: PressNet, exit_k: int) -> None:
        self.net, self.exit_k, self.speech = net, exit_k, speech_index(net)
        self.state = net.stream_begin(1)
        self.label = f"exit {exit_k} of {net.n_exits}"
        self.wait = ("look-ahead", net.lookahead / net.cfg.sample_rate)   # what a sample waits for, in s
        self.taken: list[int] = []   # the exit of every block decided: none, the exit is fixed

    def step(self, x: np.ndarray) -> np.ndarray:
        import torch

        outputs, self.state = self.net.stream_step(torch.from_numpy(x)[None], self.state, self.exit_k)
        return outputs[self.exit_k - 1].estimate[0, self.speech].numpy()

    def end(self) -> np.ndarray:
        return self.net.stream_end(self.state, self.exit_k)[self.exit_k - 1].estimate[0, self.speech].numpy()

    def compute(self) -> str:
        from press.model.compute import exit_costs

        return f"{exit_costs(self.net)[self.exit_k - 1].gmacs_per_second:.2f} GMAC/s"


class BlockExits:
    """Each likelihood block to the first exit where press.engine's exit rule lets it leave
    (press.model.stream_exits.BlockStream); its samples go out once it is decided."""

    def __init__(self, net: PressNet, target_db: float, confidence: float, catch_up: str,
                 scales: list[tuple[float, float]] | None = None) -> None:
        from press.engine.stream_rule import StreamRule
        from press.model.stream_exits import BlockStream

        self.net, self.speech = net, speech_index(net)
        self.stream = BlockStream(net, StreamRule(target_db, confidence, scales), catch_up)
        self.label = f"t = {target_db:g} dB, p = {confidence:g}, {catch_up} catch-up"
        self.wait = ("block", (net.cfg.block - 1) / net.cfg.sample_rate)
        self.taken: list[int] = []

    def step(self, x: np.ndarray) -> np.ndarray:
        import torch

        return self._speech(self.stream.push(torch.from_numpy(x)[None]))

    def end(self) -> np.ndarray:
        return self._speech(self.stream.end())

    def _speech(self, outputs: list[StreamOutput]) -> np.ndarray:
        self.taken += [out.exit for out in outputs]
        return speech_of(outputs, self.speech)

    def compute(self) -> str:
        macs, catch_up = self.stream.macs()
        return per_block(self.taken, self.net.n_exits, macs, catch_up, self.stream.samples / self.net.cfg.sample_rate)


class OnnxBlocks:
    """BlockExits on a streaming export with onnxruntime alone (press.runtime.stream.OnnxStream): a
    fixed --exit too runs whole blocks there."""

    def __init__(self, model, args: argparse.Namespace) -> None:
        names = model.source_names
        self.model, self.speech = model, names.index("speech") if "speech" in names else 0
        if args.exit is not None:
            self.stream = model.stream(exit=args.exit)
            self.label = f"exit {args.exit} of {model.n_exits} (onnx)"
        else:
            t, p = model.operating_point.resolve(args.target_db, args.confidence)
            self.stream = model.stream(t, p, catch_up=args.catch_up or "lazy")
            self.label = f"t = {t:g} dB, p = {p:g}, {args.catch_up or 'lazy'} catch-up (onnx)"
        self.wait = ("block", model.latency)
        self.taken: list[int] = []

    def step(self, x: np.ndarray) -> np.ndarray:
        return self._speech(self.stream.push(x[None]))

    def end(self) -> np.ndarray:
        return self._speech(self.stream.end())

    def _speech(self, outputs: list) -> np.ndarray:
        self.taken += [out.exit for out in outputs]
        return speech_of(outputs, self.speech)

    def compute(self) -> str:
        macs, catch_up = self.stream.macs()
        return per_block(self.taken, self.model.n_exits, macs, catch_up, self.stream.samples / self.model.sample_rate)


def speech_of(outputs: list, speech: int) -> np.ndarray:
    """The first stream's `speech` output of the blocks that left (torch's or the runtime's), back to back."""
    import numpy as np

    return np.concatenate([np.zeros(0, np.float32)] + [np.asarray(out.estimate[0, speech]) for out in outputs])


def per_block(taken: list[int], n_exits: int, macs: int, catch_up: int, seconds: float) -> str:
    """The exits the blocks took, and the GMAC/s spent over the audio (catch-up included)."""
    counts, blocks = Counter(taken), max(len(taken), 1)
    exits = " ".join(f"{k}: {counts[k]} ({counts[k] / blocks:.0%})" for k in range(1, n_exits + 1))
    return (f"exits per block {exits}, {macs / max(seconds, 1e-9) / 1e9:.2f} GMAC/s spent "
            f"(catch-up {catch_up / max(macs, 1):.1%} of it)")


def pump(rate: int, runner: Runner, source: Source, sink: Sink, meter: Meter, ended: Callable[[], bool]) -> None:
    """Every chunk of `source` through `runner`, and the speech it makes final into `sink` at once,
    resampled to and from the model's `rate` where the source's differs; at the end of the input, its
    last samples."""
    import numpy as np

    from press.io.audio import StreamResampler

    to_model = StreamResampler(source.rate, rate)
    to_output = StreamResampler(rate, source.rate)
    n_in = n_out = 0
    while not ended() and (x := source.read()) is not None:
        start, decided = time.perf_counter(), len(runner.taken)
        y = to_output(runner.step(to_model(x)))
        meter.chunk(len(x) / source.rate, time.perf_counter() - start, to_model.delay() + to_output.delay(),
                    runner.taken[decided:])
        sink.write(y)
        n_in, n_out = n_in + len(x), n_out + len(y)
    tail = np.concatenate([runner.step(to_model(np.zeros(0, np.float32), last=True)), runner.end()])
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

    def __init__(self, live: bool, exit_used: str, wait: tuple[str, float], chunk: float, per_block: bool) -> None:
        self.live, self.tty = live, sys.stderr.isatty()
        self.exit_used, self.wait, self.chunk_s, self.per_block = exit_used, wait, chunk, per_block
        self.audio = self.spent = self.worst = self.resampling = 0.0
        self.recent: deque[int] = deque(maxlen=12)   # the exits the last blocks took (per_block)
        self._shown, self._since = -float("inf"), (0.0, 0.0)   # the first chunk shows the line

    def chunk(self, audio: float, spent: float, resampling: float, exits: list[int]) -> None:
        """One chunk of `audio` seconds processed in `spent` seconds, which decided blocks at `exits`;
        the resamplers hold `resampling`."""
        self.audio, self.spent = self.audio + audio, self.spent + spent
        self.worst, self.resampling = max(self.worst, spent / audio), max(self.resampling, resampling)
        self.recent.extend(exits)
        if not self.live:
            return
        since = (self._since[0] + audio, self._since[1] + spent)
        now = time.monotonic()
        if now - self._shown < (0.25 if self.tty else 1.0):
            self._since = since
            return
        taken = f" | exits {' '.join(map(str, self.recent)) or '-'}" if self.per_block else ""
        line = (f"{self.exit_used}{taken} | latency {self.latency()} | {self.audio:.1f} s | "
                f"{since[1] / since[0] * self.chunk_s * 1e3:.1f} ms per {self.chunk_s * 1e3:.1f} ms chunk "
                f"(load {since[1] / since[0]:.0%})")
        sys.stderr.write(f"\r{line}\x1b[K" if self.tty else f"{line}\n")
        sys.stderr.flush()
        self._shown, self._since = now, (0.0, 0.0)

    def latency(self) -> str:
        """The algorithmic latency: the model's look-ahead (a block's wait, with exits per block), the
        chunk, the resamplers' largest hold."""
        parts = [f"{self.wait[0]} {self.wait[1] * 1e3:.1f}", f"chunk {self.chunk_s * 1e3:.1f}"]
        if self.resampling:
            parts.append(f"resampling {self.resampling * 1e3:.1f}")
        total = self.wait[1] + self.chunk_s + self.resampling
        return f"{total * 1e3:.1f} ms ({' + '.join(parts)})"

    def clear(self) -> None:
        if self.live and self.tty:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()

    def summary(self, compute: str) -> str:
        rtf = self.spent / self.audio if self.audio else 0.0
        return (f"{self.audio:.2f} s of audio at {self.exit_used}: real-time factor {rtf:.3f} (worst chunk "
                f"{self.worst:.3f}), {compute}, latency {self.latency()}")
