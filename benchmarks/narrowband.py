"""`enhance` on telephone-band speech: recorded at 8 kHz, in wideband noise or in an 8 kHz file.

    python benchmarks/noisy_testset.py --root NOISY --split test --n 200 --out DATA
    python benchmarks/narrowband.py --data DATA --limit 100 [--model enhance] [--threads 1]

Much recorded speech (call-centre prompts, phone calls, old corpora) is narrowband, and a 16 kHz
enhancer meets it in two ways: telephone speech in a room whose noise is wideband (the speech band-
limited to 4 kHz, the noise not), and an 8 kHz file, which PRESS resamples to 16 kHz and back (speech
and noise both band-limited). Each item of DATA is scored in three conditions, the same noise at the
same level in each: `wideband` (as recorded), `narrowband speech` (the clean speech through an 8 kHz
resampling, then the noise added) and `8 kHz file` (the wideband mixture and reference resampled to
8 kHz, passed to `Press.separate` at 8 kHz, scored at 8 kHz). The speech output of every exit and of the
model's operating point, SI-SNRi after alignment (press.evaluation.metrics), and the speech output's
energy above 4 kHz against the reference's (dB; only in the narrowband-speech condition, where the
reference has none: what the model puts where the speech cannot be).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import press
from press.evaluation.metrics import aligned_si_snri
from press.io.audio import resample

RATE = 16000
NARROW = 8000


def band_limit(x: np.ndarray) -> np.ndarray:
    """x through an 8 kHz resampling and back: what a telephone-band recording holds, at 16 kHz."""
    return resample(resample(x, RATE, NARROW), NARROW, RATE)[: len(x)]


def high_band_db(x: np.ndarray, mixture: np.ndarray) -> float:
    """Energy of x above 4 kHz relative to the mixture's energy above 4 kHz (dB)."""
    def hi(y: np.ndarray) -> float:
        spec = np.abs(np.fft.rfft(y)) ** 2
        return float(spec[len(spec) // 2:].sum()) + 1e-12
    return 10 * np.log10(hi(x) / hi(mixture))


def conditions(clean: np.ndarray, noisy: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
    """condition -> (mixture, reference, rate)."""
    noise = noisy - clean
    narrow = band_limit(clean)
    return {"wideband": (noisy, clean, RATE),
            "narrowband speech": (narrow + noise, narrow, RATE),
            "8 kHz file": (resample(noisy, RATE, NARROW), resample(clean, RATE, NARROW), NARROW)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a benchmarks/noisy_testset.py folder (noisy/, clean/)")
    ap.add_argument("--model", default="enhance")
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = press.load(args.model, device="cpu")
    speech = model.source_names.index("speech")
    settings = {f"exit {k}": {"exit": k} for k in range(1, model.n_exits + 1)}
    point = model.operating_point
    settings[f"t = {point.target_db:g} dB, p = {point.confidence:g}"] = {}
    names = sorted(p.name for p in (Path(args.data) / "clean").glob("*.wav"))[: args.limit]
    scores: dict[tuple[str, str], list[float]] = {}
    leak: dict[str, list[float]] = {}
    gmacs: dict[tuple[str, str], list[float]] = {}
    for name in names:
        clean, _ = sf.read(Path(args.data) / "clean" / name, dtype="float32")
        noisy, _ = sf.read(Path(args.data) / "noisy" / name, dtype="float32")
        for cond, (mix, ref, rate) in conditions(clean, noisy).items():
            for label, options in settings.items():
                sep = model.separate(mix, rate, **options)
                out = sep.sources[speech]   # (L,) at the input's rate
                scores.setdefault((cond, label), []).append(aligned_si_snri(out[None], ref[None], mix))
                gmacs.setdefault((cond, label), []).append(sep.report["gmacs_per_second"])
                if cond == "narrowband speech":
                    leak.setdefault(label, []).append(high_band_db(out, mix))
    print(f"{args.model}, {len(names)} items of {args.data}: speech SI-SNRi in dB @ GMAC/s spent"
          f" (narrowband speech: output energy above 4 kHz against the mixture's, dB)")
    print("| condition | " + " | ".join(settings) + " |")
    print("|---|" + "---|" * len(settings))
    for cond in ("wideband", "narrowband speech", "8 kHz file"):
        cells = [f"{np.mean(scores[cond, s]):.2f} @ {np.mean(gmacs[cond, s]):.2f}" for s in settings]
        print(f"| {cond} | " + " | ".join(cells) + " |")
    print("| narrowband speech, > 4 kHz | " + " | ".join(f"{np.mean(leak[s]):.1f}" for s in settings) + " |")


if __name__ == "__main__":
    main()
