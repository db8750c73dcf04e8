"""Peak memory and real-time factor of `press separate` on a long file.

    python benchmarks/separate_memory.py [--model default] [--minutes 10] [--rate 8000] [--threads 2]

Writes a speech-like test file of the given length (noise bursts with a syllable-rate envelope),
separates it with the streaming path that `press separate` uses, and prints the wall time, the
real-time factor and the process's peak resident memory next to the size the audio alone would
take in memory as float32 (input + one output per source).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import press


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="default")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--rate", type=int, default=8000, help="sample rate of the test file")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--target-db", type=float, default=20.0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = press.load(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.wav"
        rng = np.random.default_rng(0)
        chunk = 10 * args.rate
        n_chunks = int(args.minutes * 60 // 10)
        with sf.SoundFile(path, "w", samplerate=args.rate, channels=1, subtype="PCM_16") as f:
            for _ in range(n_chunks):
                env = np.repeat(rng.uniform(0, 1, 10 * 8 + 1), args.rate // 8)[:chunk]
                f.write((rng.standard_normal(chunk) * env * 0.1).astype(np.float32))
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t = time.perf_counter()
        rep = model.separate_file(path, [Path(tmp) / f"s{j + 1}.wav" for j in range(model.n_src)],
                                  target_db=args.target_db)
        wall = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seconds = n_chunks * 10
    audio_mb = seconds * args.rate * 4 * (1 + model.n_src) / 2**20
    print(f"model {args.model}, {seconds / 60:g} min at {args.rate} Hz, {args.threads} threads, "
          f"target {args.target_db:g} dB")
    print(f"wall {wall:.1f} s, real-time factor {wall / seconds:.3f}, {rep['gmacs_per_second']:.3f} GMAC/s "
          f"({rep['saving']:.0%} saved against the last exit)")
    print(f"peak resident memory {peak:.0f} MiB (after loading the model: {base:.0f} MiB); "
          f"the audio alone in memory would be {audio_mb:.0f} MiB")


if __name__ == "__main__":
    main()
