"""How the built-in corpus turns clean utterances into mixtures: placement in time, levels, SNR.

Kept apart from the corpus so the rules are readable in one place (docs/data.md quotes them):
relative source levels uniform in -5...5 dB, overlap full / partial / sequential with silences,
mixture RMS uniform in -33...-18 dBFS with the peak kept below 0.99, SNR uniform in -5...20 dB.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

LEVEL_DB = (-5.0, 5.0)
SNR_DB = (-5.0, 20.0)
MIX_DBFS = (-33.0, -18.0)
PEAK = 0.99
OVERLAPS_MAX = ("full", "partial", "sequential")
OVERLAPS_MIN = ("full", "partial")


def _starts(lengths: Sequence[int], overlap: str, rng: np.random.Generator, sr: int) -> list[int]:
    starts = [0]
    for k in range(1, len(lengths)):
        prev_start, prev_len = starts[-1], lengths[k - 1]
        if overlap == "full":
            starts.append(int(rng.integers(0, int(0.25 * sr) + 1)))
        elif overlap == "partial":
            starts.append(prev_start + int(rng.uniform(0.2, 0.8) * prev_len))
        else:  # sequential: mostly silence between talkers, sometimes a short overlap
            gap = int(rng.uniform(-0.3, 1.0) * sr)
            starts.append(max(0, prev_start + prev_len + gap))
    return starts


def place_sources(utts: Sequence[np.ndarray], rng: np.random.Generator, sr: int, mode: str) -> tuple[np.ndarray, str]:
    """Lay utterances out in time at relative levels in LEVEL_DB; return ((S, L) sources, overlap kind).

    mode "max": the mixture lasts until the last talker stops (overlaps full, partial or
    sequential with silences, plus leading and trailing silence). mode "min": as WSJ0-2mix's "min",
    the mixture stops when the first talker stops (overlaps full or partial).
    """
    overlap = str(rng.choice(OVERLAPS_MAX if mode == "max" else OVERLAPS_MIN))
    lengths = [len(u) for u in utts]
    starts = _starts(lengths, overlap, rng, sr)
    if mode == "min":
        # Every talker must start before the first one ends, or it would be cut away entirely.
        limit = min(lengths) // 2
        starts = [min(s, limit) for s in starts]
        total = min(s + n for s, n in zip(starts, lengths))
    else:
        lead = int(rng.uniform(0.0, 0.5) * sr)
        starts = [s + lead for s in starts]
        total = max(s + n for s, n in zip(starts, lengths)) + int(rng.uniform(0.0, 0.5) * sr)
    gains = 10 ** (np.concatenate([[0.0], rng.uniform(*LEVEL_DB, size=len(utts) - 1)]) / 20)
    sources = np.zeros((len(utts), total), dtype=np.float32)
    for k, (u, s, g) in enumerate(zip(utts, starts, gains)):
        seg = u[: max(0, total - s)]
        sources[k, s : s + len(seg)] = g * seg
    return sources, overlap


def scale_to_level(mixture: np.ndarray, sources: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Scale mixture and sources together to a random RMS in MIX_DBFS, never peaking above PEAK."""
    rms = float(np.sqrt(np.mean(mixture.astype(np.float64) ** 2)))
    gain = 10 ** (rng.uniform(*MIX_DBFS) / 20) / max(rms, 1e-8)
    peak = float(np.max(np.abs(mixture))) * gain
    if peak > PEAK:
        gain *= PEAK / peak
    return (mixture * gain).astype(np.float32), (sources * gain).astype(np.float32)


def add_noise(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Return speech + noise scaled so that 10 log10(P_speech / P_noise) = snr_db (powers over the active speech)."""
    active = np.abs(speech) > 0
    p_speech = float(np.mean(speech[active].astype(np.float64) ** 2)) if active.any() else 0.0
    p_noise = float(np.mean(noise.astype(np.float64) ** 2))
    scale = np.sqrt(p_speech / (p_noise * 10 ** (snr_db / 10))) if p_noise > 0 else 0.0
    return (speech + scale * noise).astype(np.float32)
