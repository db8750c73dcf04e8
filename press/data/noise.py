"""Seeded noise for the built-in enhancement task (no recorded-noise corpus exists in the registries).

Each generator maps (rng, length, sample rate) to a float32 noise of unit RMS, so the mixer alone
sets the SNR. The kinds cover what a speech enhancer meets: stationary coloured noise, babble of
held-out voices, mains hum with harmonics, impulsive clicks and music-like tonal notes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

NOISE_KINDS = ("coloured", "babble", "hum", "clicks", "tones")


def _unit_rms(x: np.ndarray) -> np.ndarray:
    rms = np.sqrt(np.mean(x.astype(np.float64) ** 2))
    return (x / rms).astype(np.float32) if rms > 0 else x.astype(np.float32)


def coloured(rng: np.random.Generator, length: int, sr: int, beta: float | None = None) -> np.ndarray:
    """Gaussian noise with a 1/f^beta spectrum, beta drawn in [-1, 2] (blue ... white ... pink ... brown)
    unless given (the augmentation's noise floor asks for white, 0, or pink, 1)."""
    if beta is None:
        beta = rng.uniform(-1.0, 2.0)
    spec = np.fft.rfft(rng.standard_normal(length))
    f = np.fft.rfftfreq(length, 1.0 / sr)
    f[0] = f[1] if length > 1 else 1.0
    return _unit_rms(np.fft.irfft(spec / f ** (beta / 2), n=length))


def hum(rng: np.random.Generator, length: int, sr: int) -> np.ndarray:
    """Mains hum at 50 or 60 Hz with decaying random harmonics and a slight wobble."""
    base = 50.0 if rng.random() < 0.5 else 60.0
    t = np.arange(length) / sr
    x = np.zeros(length)
    for k in range(1, int(min(8, (sr / 2 - 1) // base)) + 1):
        drift = 1 + 0.002 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t)
        x += rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * base * k * t * drift + rng.uniform(0, 2 * np.pi))
    return _unit_rms(x + 0.01 * rng.standard_normal(length))


def clicks(rng: np.random.Generator, length: int, sr: int) -> np.ndarray:
    """Sparse decaying impulses (keyboard, crackle) over a faint noise floor."""
    x = 0.02 * rng.standard_normal(length)
    rate = rng.uniform(2.0, 20.0)  # clicks per second
    n = max(1, rng.poisson(rate * length / sr))
    decay = np.exp(-np.arange(int(0.004 * sr) + 1) / (0.0008 * sr))
    for pos in rng.integers(0, length, size=n):
        burst = rng.standard_normal(len(decay)) * decay * rng.uniform(0.3, 1.0)
        end = min(length, pos + len(burst))
        x[pos:end] += burst[: end - pos]
    return _unit_rms(x)


def tones(rng: np.random.Generator, length: int, sr: int) -> np.ndarray:
    """Music-like notes: random pitches on a semitone grid with harmonics and attack/decay envelopes."""
    x = np.zeros(length)
    pos = 0
    while pos < length:
        dur = int(rng.uniform(0.1, 0.6) * sr)
        f0 = 110.0 * 2 ** (rng.integers(0, 36) / 12)
        t = np.arange(min(dur, length - pos)) / sr
        env = np.minimum(1.0, t / 0.01) * np.exp(-t * rng.uniform(2.0, 8.0))
        note = sum(rng.uniform(0.1, 1.0) / h * np.sin(2 * np.pi * f0 * h * t) for h in range(1, 6) if f0 * h < sr / 2)
        x[pos : pos + len(t)] += env * note
        pos += int(dur * rng.uniform(0.5, 1.0))
    return _unit_rms(x + 1e-3 * rng.standard_normal(length))


def babble(rng: np.random.Generator, length: int, sr: int, voices: Sequence[np.ndarray]) -> np.ndarray:
    """3 to 6 overlapping utterances of held-out voices, looped to length at random offsets and gains."""
    x = np.zeros(length)
    for _ in range(int(rng.integers(3, 7))):
        u = voices[int(rng.integers(len(voices)))]
        reps = int(np.ceil((length + len(u)) / len(u)))
        looped = np.tile(u, reps)
        start = int(rng.integers(len(u)))
        x += looped[start : start + length] * 10 ** (rng.uniform(-6, 0) / 20)
    return _unit_rms(x)


def make_noise(
    kind: str, rng: np.random.Generator, length: int, sr: int, babble_voices: Sequence[np.ndarray]
) -> np.ndarray:
    """Noise of one kind, unit RMS, float32."""
    generators: dict[str, Callable[..., np.ndarray]] = {
        "coloured": coloured,
        "hum": hum,
        "clicks": clicks,
        "tones": tones,
    }
    if kind == "babble":
        return babble(rng, length, sr, babble_voices)
    return generators[kind](rng, length, sr)
