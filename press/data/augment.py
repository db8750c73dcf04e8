"""Training-time acoustic augmentation: simulated rooms and degraded channels, drawn on the fly from a seed.

The built-in corpus is clean close-talk speech; users separate speech recorded in rooms, through
telephone lines and codecs. `augment` puts clean sources through a random room and a random channel
and returns the degraded mixture with the targets a separator should recover from it:

- **Room** (image method, pyroomacoustics): a shoebox drawn after WHAMR!'s description (5-10 x
  5-10 x 3-4 m, RT60 0.1-1.0 s, talkers 0.66-2 m from the microphone; the ranges are as we read the
  paper, its sampling script was not at hand), RIRs cut after RT60 s as WHAMR!'s room class does.
  The mixture is the sum of the fully reverberant sources; each target is its source through the
  direct path plus the early reflections, the RIR cut `early_ms` (50) ms after the direct arrival.
  That is the "early" target of the REVERB challenge and SMS-WSJ, not WHAMR!'s, which is the direct
  path alone (image order 0; `early_ms=0` comes close to it): early reflections are not separable
  from the talker and help intelligibility, so asking a separator to remove them costs quality for
  nothing.
- **Channel** on the mixture: band limits, the telephone band (300-3400 Hz), an EQ tilt, a noise
  floor 30-60 dB below the speech, mild clipping (0.1-1 % of samples), and one codec: G.711 mu-law
  or A-law, GSM 06.10 (13 kbit/s) or Opus at its lowest bit rates (about 10-35 kbit/s), all through
  libsndfile in memory.

Which effects reach the targets: the linear, deterministic ones (room early part, band limits,
telephone band, EQ) are applied to every target exactly as to the mixture, so the targets still sum
to the clean (linearly filtered) mixture and no target asks for bandwidth the input has lost. The
nonlinear or random ones (late reverberation, noise floor, clipping, codec) touch only the mixture:
a separator should remove them. PRESS-Net's streams are not constrained to sum to their input
(press.model.heads.DecoderHead), so clean targets of a degraded mixture are reachable, as in
WHAM!'s noisy separation.

Everything is a pure function of the generator passed in. Computing a room's RIRs costs tens of
milliseconds to several seconds (it grows with RT60 cubed), so rooms come from a bank of `rooms`
shoeboxes, each a pure function of its number and built the first time a process needs it; the
generator only chooses the number (`rooms=0` simulates a new room for every example instead).
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch
from scipy import signal
from torch.utils.data import Dataset

from press.data.noise import coloured
from press.errors import PressError, optional_module
from press.io.files import atomic_write

CODECS = ("mulaw", "alaw", "gsm", "opus")
NARROWBAND = 8000          # G.711 and GSM 06.10 are telephone codecs: they run at 8 kHz
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
TELEPHONE_HZ = (300.0, 3400.0)
MIN_SECONDS = 0.1          # shorter than a few codec frames and filter lengths: a caller's mistake
PEAK = 0.99
SOUND_SPEED = 343.0        # m/s, pyroomacoustics' default
ROOM_CACHE_VERSION = 1     # bump when simulate_room changes what it returns for the same arguments
_SALT = zlib.crc32(b"press.data.augment")   # keeps the view's draws apart from RandomCrop's (same key)


@dataclass
class Recipe:
    """What `augment` may do to an example: the probability of each effect and its ranges.

    The probabilities are independent, so an example can get a room, a telephone band and a codec at
    once, or nothing. `press.training.config.DataConfig.augment` is this recipe plus an on/off switch.
    """

    room: float = 0.5                   # P(simulated room)
    rt60: list[float] = field(default_factory=lambda: [0.1, 1.0])   # s, uniform (raised where a room cannot be)
    early_ms: float = 50.0              # the target keeps the RIR up to this long after the direct path
    rooms: int = 128                    # RIR bank per process (0: a new room per example, up to seconds each)
    bandlimit: float = 0.2              # P(high-pass 50-200 Hz and low-pass 2 kHz-0.9 x Nyquist)
    telephone: float = 0.1              # P(300-3400 Hz band-pass)
    eq: float = 0.3                     # P(spectral tilt)
    tilt_db: float = 3.0                # tilt uniform in +-tilt_db per octave around 1 kHz
    noise_floor: float = 0.3            # P(white or pink noise floor)
    floor_db: list[float] = field(default_factory=lambda: [30.0, 60.0])   # below the mixture's RMS
    clip: float = 0.1                   # P(clipping)
    clip_percent: list[float] = field(default_factory=lambda: [0.1, 1.0])  # share of samples clipped
    codec: float = 0.2                  # P(one codec, chosen uniformly from `codecs`)
    codecs: list[str] = field(default_factory=lambda: list(CODECS))

    def __post_init__(self) -> None:
        probs = ("room", "bandlimit", "telephone", "eq", "noise_floor", "clip", "codec")
        bad = [f"{k}={getattr(self, k)}" for k in probs if not 0.0 <= getattr(self, k) <= 1.0]
        if bad:
            raise PressError(f"augment: probabilities must lie in [0, 1], got {', '.join(bad)}")
        for name, lo_min, hi_max in (("rt60", 0.05, 3.0), ("floor_db", 0.0, 120.0), ("clip_percent", 0.0, 20.0)):
            r = list(getattr(self, name))
            if not (len(r) == 2 and lo_min <= r[0] <= r[1] <= hi_max):
                raise PressError(f"augment: {name} must be a range [lo, hi] within {lo_min}..{hi_max}, got {r}")
        if self.early_ms < 0 or self.rooms < 0 or self.tilt_db < 0:
            raise PressError(f"augment: early_ms, rooms and tilt_db must be >= 0, got "
                             f"{self.early_ms}, {self.rooms}, {self.tilt_db}")
        unknown = sorted(set(self.codecs) - set(CODECS))
        if unknown or (self.codec > 0 and not self.codecs):
            raise PressError(f"augment: codecs must be a non-empty list of {', '.join(CODECS)}, "
                             f"got {list(self.codecs)}")


# ---------------------------------------------------------------------------------------------- rooms


@dataclass(frozen=True)
class Room:
    """RIRs from `positions` talker positions to one microphone, and where each one's early part ends."""

    rirs: np.ndarray         # (P, Lh) float64, each scaled so that its early part has unit energy
    early_end: np.ndarray    # (P,) samples: rirs[p, :early_end[p]] is the direct path + early reflections
    rt60: float              # s, the Sabine RT60 the walls were given
    dims: np.ndarray         # (3,) m
    mic: np.ndarray          # (3,) m
    talkers: np.ndarray      # (P, 3) m


def simulate_room(rng: np.random.Generator, sr: int, positions: int, rt60: tuple[float, float],
                  early_ms: float) -> Room:
    """A WHAMR!-like shoebox and its RIRs (image method), all drawn from `rng`.

    Room 5-10 x 5-10 x 3-4 m; microphone at least 1 m from the walls, 0.9-1.8 m high; talkers
    0.66-2 m from it at random azimuths, 1.2-1.9 m high. Wall absorption and image order follow
    Sabine's formula for the drawn RT60 (pyroomacoustics.inverse_sabine); where the room cannot be
    that dry (absorption would exceed 1), the RT60 is raised to the driest it can be. As in WHAMR!,
    each RIR is cut after RT60 seconds (the image method's tail decays slower than Sabine predicts;
    its decay curve is 45-50 dB down at the cut, measured at RT60 0.5 and 1 s).
    """
    # 0.3 s to import: only processes that simulate rooms pay it
    pra = optional_module("pyroomacoustics", "train", "simulating rooms (data.augment)")

    dims = np.array([rng.uniform(5, 10), rng.uniform(5, 10), rng.uniform(3, 4)])
    volume, surface = float(np.prod(dims)), 2 * float(dims[0] * dims[1] + dims[0] * dims[2] + dims[1] * dims[2])
    driest = 24 * np.log(10) * volume / (SOUND_SPEED * surface) * 1.01   # Sabine with absorption ~1
    t60 = max(float(rng.uniform(*rt60)), driest)
    absorption, max_order = pra.inverse_sabine(t60, dims.tolist(), c=SOUND_SPEED)
    mic = np.array([rng.uniform(1, dims[0] - 1), rng.uniform(1, dims[1] - 1), rng.uniform(0.9, 1.8)])
    talkers = []
    for _ in range(positions):
        dist, azimuth = rng.uniform(0.66, 2.0), rng.uniform(0, 2 * np.pi)
        pos = mic + np.array([dist * np.cos(azimuth), dist * np.sin(azimuth), 0.0])
        pos[:2] = np.clip(pos[:2], 0.5, dims[:2] - 0.5)
        pos[2] = rng.uniform(1.2, 1.9)
        talkers.append(pos)
    room = pra.ShoeBox(dims.tolist(), fs=sr, materials=pra.Material(absorption), max_order=max_order,
                       air_absorption=False)
    for pos in talkers:
        room.add_source(pos.tolist())
    room.add_microphone(mic.tolist())
    room.compute_rir()
    # pyroomacoustics delays every arrival by half its fractional-delay filter; the early part
    # ends early_ms after the direct arrival plus that half, so the direct path is always whole
    half = pra.constants.get("frac_delay_length") // 2
    length = int(np.ceil(t60 * sr))
    hs, ends = [], []
    for p, pos in enumerate(talkers):
        direct = np.linalg.norm(pos - mic) / SOUND_SPEED * sr + half
        end = int(np.ceil(direct)) + half + round(early_ms * sr / 1000)
        h = np.asarray(room.rir[0][p], dtype=np.float64)[: max(length, end + 1)]
        hs.append(h / np.sqrt(np.sum(h[:end] ** 2)))
        ends.append(min(end, len(h)))
    rirs = np.zeros((positions, max(len(h) for h in hs)))
    for p, h in enumerate(hs):
        rirs[p, : len(h)] = h
    return Room(rirs, np.array(ends), t60, dims, mic, np.array(talkers))


def room_cache_dir() -> Path | None:
    """Where built rooms are kept between processes: $PRESS_CACHE_DIR/rooms, else ~/.cache/press/rooms;
    PRESS_CACHE_DIR set to an empty string turns the disk cache off."""
    root = os.environ.get("PRESS_CACHE_DIR", str(Path.home() / ".cache" / "press"))
    return Path(root) / "rooms" if root else None


@functools.cache
def bank_room(number: int, sr: int, positions: int, rt60: tuple[float, float], early_ms: float) -> Room:
    """Room `number` of the bank: the same in every process (its generator is keyed by its number),
    built on first use and kept in this process's memory (at most ~0.2 MB per room at 8 kHz).

    A room takes ~1.4 s on average to build (a default bank of 128: three minutes), so built rooms are
    also kept on disk (`room_cache_dir`), keyed by every argument and pyroomacoustics' version: a new
    run, an ablation or a DataLoader worker reads them in milliseconds.
    """
    pra = optional_module("pyroomacoustics", "train", "simulating rooms (data.augment)")

    folder = room_cache_dir()
    key = hashlib.sha256(repr((ROOM_CACHE_VERSION, pra.__version__, number, sr, positions,
                               tuple(map(float, rt60)), float(early_ms))).encode()).hexdigest()[:20]
    path = folder / f"room-{key}.npz" if folder else None
    if path is not None and path.exists():
        try:
            with np.load(path) as f:
                return Room(f["rirs"], f["early_end"], float(f["rt60"]), f["dims"], f["mic"], f["talkers"])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass   # a damaged cache file is rebuilt and replaced
    room = simulate_room(np.random.default_rng([_SALT, number]), sr, positions, rt60, early_ms)
    if path is not None:
        try:
            atomic_write(path, lambda tmp: _save_room(tmp, room))
        except OSError:
            pass   # a read-only home only costs the rebuild next time
    return room


def _save_room(tmp: str, room: Room) -> None:
    with open(tmp, "wb") as fh:
        np.savez(fh, rirs=room.rirs, early_end=room.early_end, rt60=room.rt60, dims=room.dims, mic=room.mic,
                 talkers=room.talkers)


def _convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    # x: (L,), h: (Lh,) -> (L,): the causal part that falls inside the example
    return signal.oaconvolve(x, h)[: len(x)]


# -------------------------------------------------------------------------------------------- channel


def _sos_filter(x: np.ndarray, sos: np.ndarray) -> np.ndarray:
    return signal.sosfilt(sos, x, axis=-1)


def _bandlimit_sos(rng: np.random.Generator, sr: int) -> np.ndarray:
    """High-pass 50-200 Hz and low-pass log-uniform in 2 kHz..0.9 x Nyquist, Butterworth of order 2-8."""
    nyquist = sr / 2
    high = float(np.exp(rng.uniform(np.log(2000.0), np.log(0.9 * nyquist)))) if 0.9 * nyquist > 2000 else 0.9 * nyquist
    low = float(rng.uniform(50.0, 200.0))
    order = int(rng.integers(1, 5)) * 2
    return np.concatenate([signal.butter(2, low, "highpass", fs=sr, output="sos"),
                           signal.butter(order, high, "lowpass", fs=sr, output="sos")])


def telephone_sos(sr: int) -> np.ndarray:
    """The telephone band, 300-3400 Hz (ITU-T G.712's pass band), as a 4th-order Butterworth band-pass."""
    return signal.butter(4, [TELEPHONE_HZ[0], min(TELEPHONE_HZ[1], 0.95 * sr / 2)], "bandpass", fs=sr, output="sos")


def _tilt_fir(db_per_octave: float, sr: int, taps: int = 129) -> np.ndarray:
    """Linear-phase FIR whose gain rises (or falls) db_per_octave around 1 kHz, flat outside 100 Hz..Nyquist."""
    f = np.linspace(0, sr / 2, 257)
    gain_db = db_per_octave * np.log2(np.clip(f, 100.0, sr / 2) / 1000.0)
    return signal.firwin2(taps, f, 10 ** (gain_db / 20), fs=sr)


def _fir_same(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    # x: (..., L) -> (..., L); a linear-phase FIR centred, so the output is not delayed
    delay = (len(h) - 1) // 2
    return signal.oaconvolve(x, h.reshape((1,) * (x.ndim - 1) + (-1,)), axes=-1)[..., delay : delay + x.shape[-1]]


def clip_fraction(x: np.ndarray, percent: float) -> np.ndarray:
    """Clip the loudest `percent` % of samples to the level they exceed (a mildly overdriven input)."""
    level = float(np.quantile(np.abs(x), 1 - percent / 100))
    return np.clip(x, -level, level) if level > 0 else x   # nearly all silence: nothing to overdrive


def codec_round_trip(x: np.ndarray, sr: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """x (L,) in [-1, 1] encoded and decoded in memory by libsndfile; same length, no delay added.

    mulaw/alaw (G.711, 64 kbit/s) and gsm (GSM 06.10 full rate, 13 kbit/s) run at 8 kHz, with a
    resampling there and back at other rates, as a phone line does. opus at the lowest settings of
    libsndfile's compression level (0.9-1.0: about 35 down to 10 kbit/s), at `sr` where Opus has it.
    """
    if kind == "opus":
        rate, fmt, subtype, extra = (sr if sr in OPUS_RATES else 16000), "OGG", "OPUS", {
            "compression_level": float(rng.uniform(0.9, 1.0))}
    else:
        rate, fmt, subtype, extra = NARROWBAND, "WAV", {"mulaw": "ULAW", "alaw": "ALAW", "gsm": "GSM610"}[kind], {}
    y = x if rate == sr else soxr.resample(x, sr, rate)
    buf = io.BytesIO()
    sf.write(buf, np.clip(y, -1.0, 1.0), rate, format=fmt, subtype=subtype, **extra)
    buf.seek(0)
    y = sf.read(buf, dtype="float64")[0]
    y = y if rate == sr else soxr.resample(y, rate, sr)
    out = np.zeros(len(x))
    out[: min(len(x), len(y))] = y[: len(x)]
    return out


# ------------------------------------------------------------------------------------------ augment


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def augment(sources: np.ndarray, sr: int, rng: np.random.Generator, recipe: Recipe | None = None,
            noise: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Clean sources through a random room and channel: (mixture (L,), targets (S, L)), float32.

    sources: (S, L) the clean signals to recover (talkers, or the speech of an enhancement item).
    noise: (L,) an optional part of the mixture that is no target (an enhancement item's noise);
    it enters the mixture after the room, unreverberated, as WHAMR! adds its recorded noise.
    Targets keep the sources' relative levels; the mixture keeps the RMS of sum(sources) + noise
    (the corpus's level draw) up to what the codec changes, and never peaks above 0.99, the targets
    scaled with it.
    """
    recipe = recipe or Recipe()
    x = np.asarray(sources, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1:
        raise PressError(f"augment: sources must be (S, L) with S >= 1, got shape {tuple(x.shape)}")
    if x.shape[1] < MIN_SECONDS * sr:
        raise PressError(f"augment: {x.shape[1]} samples is shorter than {MIN_SECONDS} s at {sr} Hz")
    rest = np.zeros(x.shape[1]) if noise is None else np.asarray(noise, dtype=np.float64)
    if rest.shape != x.shape[1:]:
        raise PressError(f"augment: noise must be ({x.shape[1]},), got shape {tuple(rest.shape)}")
    if not (np.isfinite(x).all() and np.isfinite(rest).all()):
        raise PressError("augment: the input holds NaN or Inf samples")
    level = _rms(x.sum(0) + rest)
    if level == 0:
        return (x.sum(0) + rest).astype(np.float32), x.astype(np.float32)

    # room: every talker from its own position in one room; targets keep the early part
    targets, mixture = x, x.sum(0)
    if rng.random() < recipe.room:
        rt60 = (float(recipe.rt60[0]), float(recipe.rt60[1]))
        room = (bank_room(int(rng.integers(recipe.rooms)), sr, x.shape[0], rt60, float(recipe.early_ms))
                if recipe.rooms else simulate_room(rng, sr, x.shape[0], rt60, float(recipe.early_ms)))
        targets = np.stack([_convolve(s, h[:e]) for s, h, e in zip(x, room.rirs, room.early_end)])
        mixture = sum(_convolve(s, h) for s, h in zip(x, room.rirs))
    # the noise keeps its level against the targets (unit-energy early parts keep the talkers' own);
    # the whole mixture goes back to the corpus's level
    mixture = mixture + rest
    gain = level / max(_rms(mixture), 1e-12)
    targets, mixture = targets * gain, mixture * gain

    # channel: microphone noise floor and clipping first, then the line's filters, then the codec
    if rng.random() < recipe.noise_floor:
        beta = 0.0 if rng.random() < 0.5 else 1.0
        floor = coloured(rng, len(mixture), sr, beta=beta).astype(np.float64)
        mixture = mixture + floor * level * 10 ** (-rng.uniform(*recipe.floor_db) / 20)
    if rng.random() < recipe.clip:
        mixture = clip_fraction(mixture, float(rng.uniform(*recipe.clip_percent)))
    linear = []
    if rng.random() < recipe.bandlimit:
        linear.append(functools.partial(_sos_filter, sos=_bandlimit_sos(rng, sr)))
    if rng.random() < recipe.telephone:
        linear.append(functools.partial(_sos_filter, sos=telephone_sos(sr)))
    if rng.random() < recipe.eq:
        linear.append(functools.partial(_fir_same, h=_tilt_fir(float(rng.uniform(-1, 1)) * recipe.tilt_db, sr)))
    for f in linear:
        mixture, targets = f(mixture), f(targets)
    # filters and clipping change the level: back to the corpus's, never above the peak limit
    gain = min(level / max(_rms(mixture), 1e-12), PEAK / max(float(np.max(np.abs(mixture))), 1e-12))
    mixture, targets = mixture * gain, targets * gain
    if rng.random() < recipe.codec:
        kind = str(recipe.codecs[int(rng.integers(len(recipe.codecs)))])
        mixture = codec_round_trip(mixture, sr, kind, rng)
        peak = float(np.max(np.abs(mixture)))
        if peak > PEAK:   # a perceptual codec may overshoot
            mixture, targets = mixture * PEAK / peak, targets * PEAK / peak
    return mixture.astype(np.float32), targets.astype(np.float32)


# -------------------------------------------------------------------------------------------- the view


class Acoustics(Dataset):
    """A training view: every item of `dataset` through `augment`, keyed by (seed, epoch, index).

    Separation items: the sources are the talkers; whatever of the mixture they do not account for
    (a noisy corpus's noise) passes as noise. Enhancement items (`dataset.enhancement` or
    `dataset.task == "enhance"`, or `enhancement=True`): source 0 is the speech, the rest of the
    mixture is noise, and the result is again (speech target, mixture - speech target), so
    enhancement items keep summing to their mixture. Lengths never change. Apply it to training
    data only: validation and test stay the corpus's own.
    """

    def __init__(self, dataset: Dataset, recipe: Recipe | None = None, seed: int = 0,
                 enhancement: bool | None = None):
        self.dataset = dataset
        self.sample_rate = dataset.sample_rate
        self.n_src = dataset.n_src
        self.recipe = recipe or Recipe()
        self.seed = int(seed)
        self.enhancement = (bool(getattr(dataset, "enhancement", False)) or getattr(dataset, "task", None) == "enhance"
                            if enhancement is None else bool(enhancement))
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def lengths(self) -> list[int]:
        """Samples per item: the dataset's own (augmentation keeps every length)."""
        if hasattr(self.dataset, "lengths"):
            return list(self.dataset.lengths())
        return [int(self.dataset[i]["mixture"].shape[-1]) for i in range(len(self.dataset))]

    def __getitem__(self, index: int) -> dict:
        item = self.dataset[index]
        sources = item["sources"].numpy()                       # (S, L)
        mixture = item["mixture"].numpy()                       # (L,)
        rng = np.random.default_rng([self.seed, self.epoch, index, _SALT])
        if self.enhancement:
            mix, (speech,) = augment(sources[:1], self.sample_rate, rng, self.recipe, noise=mixture - sources[0])
            out = np.stack([speech, mix - speech])
        else:
            mix, out = augment(sources, self.sample_rate, rng, self.recipe, noise=mixture - sources.sum(0))
        return {"mixture": torch.from_numpy(mix), "sources": torch.from_numpy(out), "id": f"{item['id']}~aug"}
