"""Voice transformation: new, plausible speakers made from a recorded one by moving its F0 and formants.

A separator learns to tell voices apart only from many voices, and recorded talkers are few. A
speaker's identity lies mostly in two things a vocoder can move independently: the pitch (F0) of
the glottal source and the vocal tract's resonances (formants), which scale inversely with
vocal-tract length. The WORLD vocoder (through `pyworld`) splits an utterance into an F0 contour, a
smooth spectral envelope (cheaptrick) and an aperiodicity (d4c); scaling F0 and warping the envelope
along frequency and synthesising again gives the same words, timing and recording chain spoken by
another voice. One analysis serves any number of voices: analyse once (`analyse`), synthesise many
times (`synthesise`), which is about 30 times cheaper than a harvest analysis.

Numpy in and out, mono float at 8 or 16 kHz (any rate from 8 kHz up works). WORLD itself runs at
16 kHz or more: below that its aperiodicity estimator (d4c, whose bands are 3 kHz wide above 3 kHz)
has no band left and marks every frame aperiodic, so an 8 kHz resynthesis comes back as whisper.
8 kHz input is therefore upsampled for the analysis and the voice downsampled again.

Every transformed voice is a speaker of its own in a corpus, placed in the split of its source talker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from press.errors import PressError, optional_module
from press.io.audio import resample

FRAME_PERIOD_MS = 5.0
# F0 search range of the analysis: adult speech from creaky male voices to high female ones. A
# ceiling well under pyworld's default 800 Hz keeps harvest from octave jumps upward.
F0_FLOOR_HZ = 60.0
F0_CEIL_HZ = 500.0
MIN_SAMPLE_RATE = 8000
WORLD_MIN_RATE = 16000  # see the module docstring: d4c needs it
# The top tenth of a recording's band is its anti-alias filter's (and the resampler's) transition,
# not speech: a formant warp that reads above this fraction of the input's Nyquist holds the value here.
BAND_EDGE = 0.9
# Shorter input holds too few pitch periods of a low voice (cheaptrick's window spans 3 of them).
MIN_SECONDS = 0.1

# Drawing shifts (`draw_shifts`). Target median F0 of a new voice: adult speech, from a low male
# (85 Hz) to a high female (255 Hz) voice.
ADULT_F0_HZ = (85.0, 255.0)
# Female/male ratios of adults are about 1.7-2x in F0 and 1.15-1.2x in formants (vocal-tract
# length 14.5 vs 17 cm); a shift past either limit turns an adult into a child or a cartoon, and
# the vocoder's artefacts grow with the shift.
F0_RATIO_LIMITS = (0.5, 2.0)
FORMANT_RATIO_LIMITS = (1 / 1.2, 1.2)
# Intonation from half to twice the source's excursions (one unit either way), and a tilt of up to 1.5
# units: at 6 dB/octave the embedding moved further (cosine 0.68-0.78) than most pairs of real talkers.
F0_RANGE_LIMITS = (0.5, 2.0)
TILT_LIMITS_DB = (-4.5, 4.5)
# Across speakers, log formant ratio follows log F0 ratio with slope about log(1.17)/log(1.85) ~ 0.25
# (both move together between the sexes), with a spread of about 5 % of vocal-tract length within a
# sex, where F0 and tract length are nearly independent.
FORMANT_F0_SLOPE = 0.25
FORMANT_SPREAD = 0.05
# Two voices (or a voice and its source) count as distinct when their shifts differ by at least one
# unit of this log-ratio distance: 25 % in F0 alone, 8 % in formants alone, or a mix of both. Set
# from speaker embeddings (experiments/voice_distinctness.py, docs/data.md): shifts of 15 % in F0 or
# 6 % in formants left a voice as close to its source (cosine 0.86-0.89) as WORLD's plain
# resynthesis is (0.88-0.91): the same talker under two names, and a degenerate mixture partner.
DISTINCT_F0 = math.log(1.25)
DISTINCT_FORMANT = math.log(1.08)
# The same for the intonation range and the spectral tilt, each where it moved the embedding as far from the
# source as one unit of F0 did (`voice_distinctness.py --probe`: cosine 0.83-0.86 for F0 x1.25 or x0.8;
# intonation x2 0.85 and x0.5 0.87; tilt -3 dB/octave 0.80 and +3 0.86). Two axes the probe found the
# embedding deaf to were left out: breathiness (aperiodicity raised up to 3x in dB: 0.890-0.892, the
# identity resynthesis's 0.892) and speaking rate (x0.8-1.25: 0.868-0.896), which training's speed
# augmentation varies anyway.
DISTINCT_F0_RANGE = math.log(2.0)
DISTINCT_TILT_DB = 3.0
# The tilt pivots around this frequency, and below the floor it is held, so the lowest bins stay put.
TILT_PIVOT_HZ = 1000.0
TILT_FLOOR_HZ = 100.0


@dataclass(frozen=True)
class VoiceShift:
    """How a new voice differs from its source.

    F0 times `f0_ratio`, formant frequencies times `formant_ratio` (> 1 is a shorter vocal tract,
    formants up; < 1 a longer one). Two more axes that speaker embeddings measure as other talkers
    (docs/data.md): `f0_range` scales the intonation (log-F0 excursions around the utterance's median:
    < 1 monotonous, > 1 lively) and `tilt_db` tilts the spectral envelope by that many dB per octave
    around 1 kHz (voice quality: negative soft and dark, positive pressed and bright).
    """

    f0_ratio: float
    formant_ratio: float
    f0_range: float = 1.0
    tilt_db: float = 0.0

    def _coords(self) -> tuple[float, ...]:
        """The shift in units of DISTINCT_*: one unit along any axis is the smallest change counted as another talker."""
        return (
            math.log(self.f0_ratio) / DISTINCT_F0,
            math.log(self.formant_ratio) / DISTINCT_FORMANT,
            math.log(self.f0_range) / DISTINCT_F0_RANGE,
            self.tilt_db / DISTINCT_TILT_DB,
        )

    def distance(self, other: VoiceShift) -> float:
        """How far apart two voices are, in units of the smallest difference counted as another talker."""
        return math.dist(self._coords(), other._coords())


IDENTITY = VoiceShift(1.0, 1.0)


@dataclass(frozen=True)
class WorldAnalysis:
    """One WORLD analysis of an utterance: everything `synthesise` needs to make any voice from it.

    f0 is (frames,) in Hz with 0 on unvoiced frames; sp (power spectral envelope) and ap
    (aperiodicity, 0..1) are (frames, fft_size // 2 + 1) at `world_rate`, one frame every
    `frame_period` ms. `sample_rate`, `n_samples` and `rms` are the input's, so that every voice
    has the input's rate, length and level.
    """

    f0: np.ndarray
    sp: np.ndarray
    ap: np.ndarray
    sample_rate: int
    world_rate: int
    n_samples: int
    rms: float
    frame_period: float = FRAME_PERIOD_MS

    @property
    def median_f0(self) -> float:
        """Median F0 over voiced frames (Hz): where the talker's pitch sits, for `draw_shifts`."""
        voiced = self.f0[self.f0 > 0]
        if voiced.size == 0:
            raise PressError("the utterance has no voiced frame: no F0 to take a median of")
        return float(np.median(voiced))


def _world():
    """The WORLD vocoder (`pyworld`), which only rendering transformed voices needs."""
    return optional_module("pyworld", "render", "transforming voices (the WORLD vocoder)")


def _check_audio(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """The input as contiguous float64 (what pyworld takes), or a PressError saying what is wrong."""
    x = np.asarray(x)
    if x.ndim != 1:
        raise PressError(f"voice transform takes mono audio of shape (samples,), got shape {x.shape}: pick one channel")
    if not np.issubdtype(x.dtype, np.floating):
        raise PressError(f"voice transform takes float audio in [-1, 1], got dtype {x.dtype}")
    if sample_rate < MIN_SAMPLE_RATE:
        raise PressError(f"voice transform needs a sample rate of at least {MIN_SAMPLE_RATE} Hz, got {sample_rate}")
    if x.size < MIN_SECONDS * sample_rate:
        raise PressError(
            f"audio too short for voice transform: {x.size} samples ({x.size / sample_rate:.3f} s), "
            f"needs at least {MIN_SECONDS} s"
        )
    if not np.all(np.isfinite(x)):
        raise PressError("audio holds NaN or infinite samples: voice transform needs finite audio")
    if not np.any(x):
        raise PressError("audio is all zeros: there is no voice to transform")
    return np.ascontiguousarray(x, dtype=np.float64)


def analyse(x: np.ndarray, sample_rate: int, f0_method: Literal["harvest", "dio"] = "harvest") -> WorldAnalysis:
    """WORLD analysis of mono float audio: F0, spectral envelope (cheaptrick), aperiodicity (d4c).

    `harvest` (default) finds F0 reliably on noisy or band-limited recordings and misses few voiced
    frames, which would otherwise come back whispered; it costs ~0.16 s of CPU per second at 8 kHz.
    `dio` with stonemask refinement costs ~30 times less and misses more voicing: for large renders.
    """
    x64 = _check_audio(x, sample_rate)
    n, rms = x64.size, float(np.sqrt(np.mean(x64**2)))
    rate = max(sample_rate, WORLD_MIN_RATE)
    x64 = np.asarray(resample(x64, sample_rate, rate), dtype=np.float64)
    if f0_method == "harvest":
        f0, t = _world().harvest(x64, rate, f0_floor=F0_FLOOR_HZ, f0_ceil=F0_CEIL_HZ, frame_period=FRAME_PERIOD_MS)
    elif f0_method == "dio":
        f0, t = _world().dio(x64, rate, f0_floor=F0_FLOOR_HZ, f0_ceil=F0_CEIL_HZ, frame_period=FRAME_PERIOD_MS)
        f0 = _world().stonemask(x64, f0, t, rate)
    else:
        raise PressError(f"unknown F0 method {f0_method!r}: use 'harvest' or 'dio'")
    sp = _world().cheaptrick(x64, f0, t, rate, f0_floor=F0_FLOOR_HZ)
    ap = _world().d4c(x64, f0, t, rate)
    return WorldAnalysis(f0, sp, ap, sample_rate, rate, n, rms)


def _warp(env: np.ndarray, ratio: float, edge_bin: float, log: bool) -> np.ndarray:
    """env(f) -> env(f / ratio) along the last axis (linear interpolation between bins).

    For ratio < 1 the new envelope near the top of the band would come from above the recording's
    band edge (`edge_bin`), where it holds nothing: the band-edge value is held there instead, so the
    tilt stays flat and no resonance is invented. The power envelope is interpolated in log so that
    a peak keeps its shape.
    """
    bins = np.arange(env.shape[-1], dtype=np.float64)
    src = np.minimum(bins / ratio, edge_bin)
    values = np.log(np.maximum(env, 1e-16)) if log else env
    out = np.stack([np.interp(src, bins, frame) for frame in values])
    return np.ascontiguousarray(np.exp(out) if log else out)


def synthesise(analysis: WorldAnalysis, shift: VoiceShift = IDENTITY) -> np.ndarray:
    """The analysed utterance spoken by the voice `shift` makes: float32, the input's length, rate and RMS.

    F0 is scaled on voiced frames (and its excursions around the median by `f0_range`); the spectral
    envelope and the aperiodicity are both warped by `formant_ratio` (vocal-tract-length change), so
    that the voicing bands move with the formants; the envelope is then tilted (`tilt_db`). The
    identity shift is a plain WORLD resynthesis. Not clipped: the RMS matches the input's, and the
    peak may differ by a few dB.
    """
    if not all(v > 0 for v in (shift.f0_ratio, shift.formant_ratio, shift.f0_range)):
        raise PressError(f"voice shift ratios must be positive, got {shift}")
    f0 = analysis.f0 * shift.f0_ratio
    if shift.f0_range != 1.0:
        voiced = f0 > 0
        log_f0 = np.log(f0[voiced])
        median = np.median(log_f0)
        f0[voiced] = np.exp(median + shift.f0_range * (log_f0 - median))
    sp, ap = analysis.sp, analysis.ap
    if shift.formant_ratio != 1.0:
        edge_bin = BAND_EDGE * analysis.sample_rate / analysis.world_rate * (sp.shape[-1] - 1)
        sp = _warp(sp, shift.formant_ratio, edge_bin, log=True)
        ap = _warp(ap, shift.formant_ratio, edge_bin, log=False)
    if shift.tilt_db != 0.0:
        freqs = np.linspace(0.0, analysis.world_rate / 2, sp.shape[-1])
        octaves = np.log2(np.maximum(freqs, TILT_FLOOR_HZ) / TILT_PIVOT_HZ)
        sp = sp * 10.0 ** (shift.tilt_db * octaves / 10.0)          # power envelope: dB / 10
    y = _world().synthesize(f0, sp, ap, analysis.world_rate, analysis.frame_period)
    y = resample(y, analysis.world_rate, analysis.sample_rate).astype(np.float64)
    y = np.pad(y[: analysis.n_samples], (0, max(0, analysis.n_samples - y.size)))
    rms = float(np.sqrt(np.mean(y**2)))
    return (y * (analysis.rms / rms if rms > 0 else 0.0)).astype(np.float32)


def draw_shifts(
    source_f0: float, n: int, seed: int, range_and_tilt: bool = False, max_tries: int = 10_000
) -> list[VoiceShift]:
    """`n` plausible voices for a talker whose median F0 is `source_f0` Hz, seeded and mutually distinct.

    The target median F0 is log-uniform over adult speech (ADULT_F0_HZ, within F0_RATIO_LIMITS of
    the source); the formant ratio follows the F0 ratio as across real speakers (FORMANT_F0_SLOPE in
    log, FORMANT_SPREAD of independent spread) and stays within FORMANT_RATIO_LIMITS. With
    `range_and_tilt`, the intonation range is also drawn log-uniform in F0_RANGE_LIMITS and the
    spectral tilt uniform in TILT_LIMITS_DB. Every shift is at least one unit (`VoiceShift.distance`)
    from the source and from every other shift, so no two names hide one voice. About 8-14 voices fit
    around a talker in F0 and formants alone, 85-100 with range and tilt; the first k of n drawn
    voices are the voices drawn for k, so asking for more keeps the earlier ones. Raises PressError
    when `n` such voices do not fit.

    The training corpus draws F0 and formants only: 252 voices drawn with range and tilt, and 168
    with range alone, lowered validation on unseen recorded talkers where 126 without them had
    raised it (docs/data.md).
    """
    if n < 0:
        raise PressError(f"number of voices must be >= 0, got {n}")
    if not (math.isfinite(source_f0) and source_f0 > 0):
        raise PressError(f"source F0 must be a positive frequency in Hz, got {source_f0}")
    lo = math.log(max(ADULT_F0_HZ[0], source_f0 * F0_RATIO_LIMITS[0]) / source_f0)
    hi = math.log(min(ADULT_F0_HZ[1], source_f0 * F0_RATIO_LIMITS[1]) / source_f0)
    if lo >= hi:
        raise PressError(f"a talker at {source_f0:.0f} Hz cannot be moved into adult F0 {ADULT_F0_HZ} Hz")
    rng = np.random.default_rng(seed)
    shifts: list[VoiceShift] = []
    for _ in range(max_tries):
        if len(shifts) == n:
            return shifts
        log_f0 = rng.uniform(lo, hi)
        log_formant = FORMANT_F0_SLOPE * log_f0 + rng.normal(0.0, FORMANT_SPREAD)
        shift = VoiceShift(math.exp(log_f0), math.exp(log_formant))
        if range_and_tilt:
            f0_range = math.exp(rng.uniform(*np.log(F0_RANGE_LIMITS)))
            shift = replace(shift, f0_range=f0_range, tilt_db=float(rng.uniform(*TILT_LIMITS_DB)))
        if not FORMANT_RATIO_LIMITS[0] <= shift.formant_ratio <= FORMANT_RATIO_LIMITS[1]:
            continue
        if all(shift.distance(other) >= 1.0 for other in (IDENTITY, *shifts)):
            shifts.append(shift)
    if len(shifts) == n:
        return shifts
    raise PressError(
        f"only {len(shifts)} of {n} mutually distinct voices fit around a talker at {source_f0:.0f} Hz; ask for fewer"
    )
