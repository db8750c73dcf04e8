"""Real noisy speech without references: recordings made in noise, for DNSMOS (no SI-SNR is possible).

    python benchmarks/real_noisy.py --out DATA            # DATA/noisy/*.wav at 16 kHz, DATA/sources.json
    PEERS/bin/python benchmarks/enhance_peers.py run --noisy DATA/noisy --out RUNS
    python benchmarks/enhance_compare.py --data DATA --runs RUNS --model enhance
    PEERS/bin/python benchmarks/enhance_peers.py dnsmos DATA/noisy RUNS/* --out RUNS/dnsmos.json
    python benchmarks/enhance_compare.py --data DATA --runs RUNS --table      # DNSMOS SIG/BAK/OVRL only

The recordings are codec2's test samples (Debian `codec2-examples`, LGPL-2.1): amateur-radio and
other field recordings whose noise was recorded with the speech (hiss, static, hum, a room), at
8 kHz. No PRESS model trains on them. Each file is cut to at most `--max-seconds` and resampled to
16 kHz, the enhancer's and DNSMOS's rate; the measured noise floor of each (10th percentile of 20 ms
frame levels) and its speech level (90th percentile) go into sources.json, which shows how noisy each is.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

RATE = 16000
CODEC2_WAV = Path("/usr/share/codec2/wav")
# codec2's samples recorded in noise (measured floors -16 to -49 dB against speech at -15 to -24 dB);
# the codec's clean studio samples (hts*, f2400, morig, ...) are left out
RECORDINGS = ("david4", "vk2tpm_004", "ve9qrp", "vk5qi", "mmt1")


def levels_db(x: np.ndarray, sr: int) -> tuple[float, float]:
    """(noise floor, speech level) in dBFS: the 10th and 90th percentiles of 20 ms frame levels."""
    n = int(0.02 * sr)
    frames = x[: len(x) // n * n].reshape(-1, n)
    db = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    return float(np.percentile(db, 10)), float(np.percentile(db, 90))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--max-seconds", type=float, default=30.0)
    args = ap.parse_args()
    missing = [name for name in RECORDINGS if not (CODEC2_WAV / f"{name}.wav").exists()]
    if missing:
        raise SystemExit(f"{CODEC2_WAV}: {', '.join(missing)} missing; install them with: apt-get install codec2-examples")
    (args.out / "noisy").mkdir(parents=True, exist_ok=True)
    rows = []
    for name in RECORDINGS:
        x, sr = sf.read(CODEC2_WAV / f"{name}.wav", dtype="float32", always_2d=True)
        x = x.mean(axis=1)[: int(args.max_seconds * sr)]
        floor, speech = levels_db(x, sr)
        y = soxr.resample(x, sr, RATE, quality="HQ").astype(np.float32)
        sf.write(args.out / "noisy" / f"{name}.wav", y, RATE, subtype="FLOAT")
        rows.append({"name": name, "source": str(CODEC2_WAV / f"{name}.wav"), "rate": sr,
                     "seconds": round(len(x) / sr, 2), "floor_db": round(floor, 1), "speech_db": round(speech, 1)})
        print(f"{name:<12} {sr} Hz {len(x) / sr:6.1f} s  floor {floor:6.1f} dB  speech {speech:6.1f} dB")
    (args.out / "sources.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
