"""Voice transformation (press.corpus.transform) on a real recorded utterance of the shipped corpus.

Each property is measured on the output with an independent analysis: F0 and spectral envelope by a
fresh WORLD analysis of the transformed waveform (dio, another F0 estimator than the transform's
harvest, and ~30 times cheaper), band levels and centroid by Welch spectra.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.signal

from press.corpus.transform import (
    DISTINCT_F0,
    DISTINCT_TILT_DB,
    F0_RANGE_LIMITS,
    FORMANT_RATIO_LIMITS,
    IDENTITY,
    TILT_LIMITS_DB,
    VoiceShift,
    WorldAnalysis,
    analyse,
    draw_shifts,
    synthesise,
)
from press.data.builtin import CORPUS_DIR, load_manifest
from press.errors import PressError
from press.io.audio import load_audio, resample

SR = 8000


@pytest.fixture(scope="module")
def utterance() -> np.ndarray:
    """3 s of Allison Smith (recorded, training split): a clean studio voice with a steady F0."""
    row = next(r for r in load_manifest() if r["kind"] == "real" and r["split"] == "train" and r["talent"] == "allison")
    x, sr = load_audio(CORPUS_DIR / row["path"])
    assert sr == SR
    return x[: 3 * SR]


@pytest.fixture(scope="module")
def analysis(utterance: np.ndarray) -> WorldAnalysis:
    return analyse(utterance, SR)


def _bands_db(f: np.ndarray, power: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Power (dB) summed over frequency bands [edges[i], edges[i + 1]) along the first axis."""
    return 10 * np.log10(np.stack([power[(f >= lo) & (f < hi)].sum(0) for lo, hi in itertools.pairwise(edges)]) + 1e-12)


def _band_levels(x: np.ndarray, sr: int, n_bands: int = 16) -> np.ndarray:
    """Long-term level (dB) in log-spaced bands from 150 Hz to 90 % of Nyquist."""
    f, p = scipy.signal.welch(x, sr, nperseg=512)
    return _bands_db(f, p, np.geomspace(150, 0.45 * sr, n_bands + 1))


def _frame_band_lsd(x: np.ndarray, y: np.ndarray, sr: int, n_bands: int = 24) -> float:
    """Mean over active frames of the RMS difference (dB) of band levels: timbre, blind to phase."""
    f, _, spec_x = scipy.signal.stft(x, sr, nperseg=256)
    _, _, spec_y = scipy.signal.stft(y, sr, nperseg=256)
    edges = np.geomspace(100, 0.45 * sr, n_bands + 1)
    bx, by = _bands_db(f, np.abs(spec_x) ** 2, edges), _bands_db(f, np.abs(spec_y) ** 2, edges)
    total = 10 * np.log10((np.abs(spec_x) ** 2).sum(0) + 1e-12)
    active = total > total.max() - 35
    return float(np.sqrt(np.mean((bx[:, active] - by[:, active]) ** 2, axis=0)).mean())


def _f0_ratio(before: WorldAnalysis, after: WorldAnalysis) -> float:
    """Median frame-by-frame F0 ratio over frames voiced in both."""
    both = (before.f0 > 0) & (after.f0 > 0)
    assert both.mean() > 0.5
    return float(np.median(after.f0[both] / before.f0[both]))


def _envelope_warp(before: WorldAnalysis, after: WorldAnalysis) -> float:
    """The frequency scaling r that best maps the mean log envelope of `before` onto `after` (250-3000 Hz)."""
    n_bins = before.sp.shape[1]
    f = np.arange(n_bins) * before.world_rate / 2 / (n_bins - 1)
    ref = np.log(before.sp[before.f0 > 0]).mean(0)
    out = np.log(after.sp[after.f0 > 0]).mean(0)
    band = (f >= 250) & (f <= 3000)
    ratios = np.exp(np.linspace(math.log(0.8), math.log(1.25), 181))

    def err(r: float) -> float:
        warped = np.interp(f[band] / r, f, ref)
        return float(np.mean(((out[band] - out[band].mean()) - (warped - warped.mean())) ** 2))

    return float(ratios[np.argmin([err(r) for r in ratios])])


def test_identity_is_a_close_resynthesis(utterance, analysis):
    y = synthesise(analysis, IDENTITY)
    assert y.dtype == np.float32 and y.shape == utterance.shape
    assert np.sqrt(np.mean(y**2)) == pytest.approx(np.sqrt(np.mean(utterance**2)), rel=1e-3)
    # WORLD's phase is its own (minimum phase, new noise), so the waveform SNR is about -3 dB even
    # for a perfect vocoder: the bound is on what is heard. Measured 1.6 dB and 2.9 dB; an F0 change
    # of only 15 % already gives 7 dB and 10 dB.
    assert np.abs(_band_levels(y, SR) - _band_levels(utterance, SR)).max() < 2.5
    assert _frame_band_lsd(utterance, y, SR) < 4.0
    again = analyse(y, SR, f0_method="dio")
    assert _f0_ratio(analysis, again) == pytest.approx(1.0, abs=0.01)
    assert _envelope_warp(analysis, again) == pytest.approx(1.0, abs=0.01)
    shifted = synthesise(analysis, VoiceShift(1.15, 1.0))
    assert np.abs(_band_levels(shifted, SR) - _band_levels(utterance, SR)).max() > 4.0


@pytest.mark.parametrize("ratio", [0.6, 1.5])
def test_f0_moves_by_the_ratio(analysis, ratio):
    y = synthesise(analysis, VoiceShift(ratio, 1.0))
    assert _f0_ratio(analysis, analyse(y, SR, f0_method="dio")) == pytest.approx(ratio, rel=0.02)


@pytest.mark.parametrize("ratio", [0.87, 1.15])
def test_formants_move_by_the_ratio_and_f0_stays(utterance, analysis, ratio):
    y = synthesise(analysis, VoiceShift(1.0, ratio))
    again = analyse(y, SR, f0_method="dio")
    assert _envelope_warp(analysis, again) == pytest.approx(ratio, abs=0.02)
    assert _f0_ratio(analysis, again) == pytest.approx(1.0, abs=0.01)

    def centroid(x: np.ndarray) -> float:
        f, p = scipy.signal.welch(x, SR, nperseg=512)
        return float((f * p).sum() / p.sum())

    moved = centroid(y) / centroid(synthesise(analysis, IDENTITY))
    assert (moved - 1) * (ratio - 1) > 0 and abs(math.log(moved)) > 0.3 * abs(math.log(ratio))


@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_intonation_range_scales_f0_excursions_and_keeps_the_median(analysis, scale):
    """The spread of log F0 (interquartile range, robust to a few octave errors) scales by `f0_range`."""
    again = analyse(synthesise(analysis, VoiceShift(1.0, 1.0, f0_range=scale)), SR, f0_method="dio")
    identity = analyse(synthesise(analysis, IDENTITY), SR, f0_method="dio")

    def spread(a: WorldAnalysis) -> float:
        q1, q3 = np.percentile(np.log(a.f0[a.f0 > 0]), [25, 75])
        return float(q3 - q1)

    assert spread(again) / spread(identity) == pytest.approx(scale, rel=0.15)
    assert _f0_ratio(analysis, again) == pytest.approx(1.0, abs=0.03)


@pytest.mark.parametrize("tilt", [-4.0, 4.0])
def test_tilt_changes_the_spectral_slope_by_its_db_per_octave(utterance, analysis, tilt):
    """Band levels of the output minus the identity resynthesis's: a line of `tilt` dB per octave (the
    overall level is put back to the input's RMS, so only the slope is compared)."""
    f, p_out = scipy.signal.welch(synthesise(analysis, VoiceShift(1.0, 1.0, tilt_db=tilt)), SR, nperseg=512)
    _, p_ref = scipy.signal.welch(synthesise(analysis, IDENTITY), SR, nperseg=512)
    edges = np.geomspace(250, 3200, 9)    # from above the tilt's floor to below the band edge
    diff = _bands_db(f, p_out, edges) - _bands_db(f, p_ref, edges)
    octaves = np.log2(np.sqrt(edges[:-1] * edges[1:]))
    slope = np.polyfit(octaves, diff, 1)[0]
    assert slope == pytest.approx(tilt, abs=0.5)


def test_distance_counts_every_axis_in_its_own_unit():
    assert VoiceShift(1.25, 1.0).distance(IDENTITY) == pytest.approx(1.0)
    assert VoiceShift(1.0, 1.0, tilt_db=DISTINCT_TILT_DB).distance(IDENTITY) == pytest.approx(1.0)
    assert VoiceShift(1.0, 1.0, f0_range=2.0).distance(VoiceShift(1.0, 1.0, f0_range=0.5)) == pytest.approx(2.0)
    both = VoiceShift(math.exp(DISTINCT_F0), 1.0, tilt_db=DISTINCT_TILT_DB)
    assert both.distance(IDENTITY) == pytest.approx(math.sqrt(2))


def test_16khz_voice_keeps_rate_length_and_moves_f0(utterance):
    x16 = resample(utterance, SR, 16000)
    a = analyse(x16, 16000, f0_method="dio")
    assert a.world_rate == 16000
    y = synthesise(a, VoiceShift(1.3, 1.1))
    assert y.shape == x16.shape
    assert _f0_ratio(a, analyse(y, 16000, f0_method="dio")) == pytest.approx(1.3, rel=0.03)


def test_drawn_shifts_are_seeded_distinct_plausible_and_correlated():
    shifts = draw_shifts(190.0, 8, seed=3)
    assert shifts == draw_shifts(190.0, 8, seed=3)
    assert shifts != draw_shifts(190.0, 8, seed=4)
    assert draw_shifts(190.0, 4, seed=3) == shifts[:4]
    for i, s in enumerate(shifts):
        assert s.distance(IDENTITY) >= 1.0
        assert all(s.distance(t) >= 1.0 for t in shifts[i + 1:])
        assert 85 <= 190 * s.f0_ratio <= 255
        assert FORMANT_RATIO_LIMITS[0] <= s.formant_ratio <= FORMANT_RATIO_LIMITS[1]
        assert s.f0_range == 1.0 and s.tilt_db == 0.0    # the training corpus's draw: F0 and formants only
    log_f0 = np.log([s.f0_ratio for s in shifts])
    log_formant = np.log([s.formant_ratio for s in shifts])
    assert np.corrcoef(log_f0, log_formant)[0, 1] > 0.5
    # A low voice is mostly moved up, a high one mostly down: both land in adult F0.
    assert np.median([s.f0_ratio for s in draw_shifts(100.0, 8, seed=0)]) > 1
    assert np.median([s.f0_ratio for s in draw_shifts(240.0, 8, seed=0)]) < 1
    with pytest.raises(PressError, match="distinct voices fit"):
        draw_shifts(190.0, 200, seed=0)
    with pytest.raises(PressError, match="adult F0"):
        draw_shifts(600.0, 1, seed=0)


def test_range_and_tilt_fit_many_more_distinct_voices():
    with pytest.raises(PressError, match="distinct voices fit"):
        draw_shifts(190.0, 20, seed=0)
    shifts = draw_shifts(190.0, 40, seed=0, range_and_tilt=True)
    assert draw_shifts(190.0, 10, seed=0, range_and_tilt=True) == shifts[:10]
    for i, s in enumerate(shifts):
        assert s.distance(IDENTITY) >= 1.0 and all(s.distance(t) >= 1.0 for t in shifts[i + 1:])
        assert F0_RANGE_LIMITS[0] <= s.f0_range <= F0_RANGE_LIMITS[1]
        assert TILT_LIMITS_DB[0] <= s.tilt_db <= TILT_LIMITS_DB[1]
    assert np.std([s.tilt_db for s in shifts]) > 1.5 and np.std(np.log([s.f0_range for s in shifts])) > 0.2


@pytest.mark.parametrize(
    ("audio", "sample_rate", "message"),
    [
        (np.zeros((2, SR), np.float32) + 0.1, SR, "mono"),
        (np.full(SR, np.nan, np.float32), SR, "NaN"),
        (np.zeros(0, np.float32), SR, "too short"),
        (np.full(SR // 20, 0.1, np.float32), SR, "too short"),
        (np.zeros(SR, np.float32), SR, "all zeros"),
        (np.ones(SR, np.int16), SR, "float"),
        (np.full(4000, 0.1, np.float32), 4000, "sample rate"),
    ],
)
def test_bad_input_raises_a_clear_error(audio, sample_rate, message):
    with pytest.raises(PressError, match=message):
        analyse(audio, sample_rate)


def test_bad_shift_raises(analysis):
    with pytest.raises(PressError, match="positive"):
        synthesise(analysis, VoiceShift(0.0, 1.0))
