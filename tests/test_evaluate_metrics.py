"""SDR, PESQ, STOI and speaker alignment against references and known cases."""

import numpy as np
import pytest
from pesq import pesq

from press.evaluation.metrics import (
    align_to_reference,
    pesq_score,
    sdr,
    sdri,
    stoi_score,
)


def _sdr_by_least_squares(est: np.ndarray, ref: np.ndarray, taps: int = 512) -> float:
    """mir_eval's SDR for one source: project the estimate on `taps` delayed copies of the
    reference (zero-padded, as bss_eval_sources does); SDR = ‖target‖² / ‖est − target‖²."""
    n = len(ref) + taps - 1
    A = np.zeros((n, taps))
    for k in range(taps):
        A[k:k + len(ref), k] = ref
    e = np.pad(est, (0, taps - 1))
    target = A @ np.linalg.lstsq(A, e, rcond=None)[0]
    return 10 * np.log10((target ** 2).sum() / ((e - target) ** 2).sum())


def test_sdr_matches_the_bss_eval_projection():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((2, 3000))
    # a filtered (echoed) copy, which SDR forgives, plus noise and the other source, which it does not
    est = np.stack([ref[0] + 0.5 * np.roll(ref[0], 7) + 0.2 * ref[1] + 0.1 * rng.standard_normal(3000),
                    0.7 * ref[1] + 0.3 * rng.standard_normal(3000)])
    got = sdr(est, ref)
    want = [_sdr_by_least_squares(e, r) for e, r in zip(est, ref)]
    np.testing.assert_allclose(got, want, atol=0.05)
    assert sdri(est, ref, ref.sum(0)) == pytest.approx(got - sdr(np.stack([ref.sum(0)] * 2), ref))


def test_sdr_does_not_reorder_an_aligned_estimate():
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((2, 4000))
    swapped = sdr(ref[::-1] + 0.01 * rng.standard_normal((2, 4000)), ref)
    assert (swapped < 5).all()   # wrong order scores badly instead of being silently fixed


def _speech_like(seconds: float, sr: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    voiced = sum(np.sin(2 * np.pi * f * t) / i for i, f in enumerate((140, 280, 420, 560, 700), 1))
    syllables = (np.sin(2 * np.pi * 3 * t) > 0).astype(float)
    return 0.1 * voiced * syllables + 0.001 * rng.standard_normal(len(t))


def test_pesq_narrow_band_at_8k_wide_band_at_16k_and_nan_for_silence():
    x8, x16 = _speech_like(3, 8000, 0), _speech_like(3, 16000, 0)
    noisy8 = x8 + 0.02 * np.random.default_rng(1).standard_normal(len(x8))
    assert pesq_score(noisy8, x8, 8000) == pytest.approx(pesq(8000, x8, noisy8, "nb"), abs=1e-6)
    assert pesq_score(x16, x16, 16000) == pytest.approx(pesq(16000, x16, x16, "wb"), abs=1e-6)
    assert pesq_score(x8, x8, 8000) > pesq_score(noisy8, x8, 8000)
    assert 1.0 <= pesq_score(_speech_like(3, 44100, 0), _speech_like(3, 44100, 0), 44100) <= 4.7
    assert np.isnan(pesq_score(np.zeros(24000), np.zeros(24000), 8000))


def test_stoi_is_one_for_identical_and_lower_for_noisy():
    x = _speech_like(3, 8000, 2)
    noisy = x + 0.1 * np.random.default_rng(3).standard_normal(len(x))
    assert stoi_score(x, x, 8000) == pytest.approx(1.0, abs=1e-6)
    assert stoi_score(noisy, x, 8000) < 0.95


def test_align_to_reference_undoes_a_swap():
    rng = np.random.default_rng(4)
    ref = rng.standard_normal((3, 2000))
    est = ref[[2, 0, 1]] + 0.1 * rng.standard_normal((3, 2000))
    np.testing.assert_array_equal(align_to_reference(est, ref), est[[1, 2, 0]])
