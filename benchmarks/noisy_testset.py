"""Write a split of the recorded enhancement corpus as WAV pairs, for tools that do not import PRESS.

    python benchmarks/noisy_testset.py --root NOISY --split test --n 200 --out DIR

NOISY is a corpus that `press data noisy NOISY` rendered (benchmarks/README.md: how); without
--root, the slice shipped in the package. Writes DIR/noisy/NAME.wav and DIR/clean/NAME.wav (16 kHz
mono, PCM 16), and DIR/items.csv (name, the corpus
item id: speaker, utterance, noise sources, SNR). The peers' benchmark (benchmarks/enhance_peers.py)
runs every enhancer on DIR/noisy and benchmarks/enhance_compare.py scores them all on DIR/clean.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from press.data import get_dataset
from press.io.audio import write_audio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=None, help="a `press data noisy` folder (default: the shipped slice)")
    ap.add_argument("--split", default="test", choices=("val", "test"))
    ap.add_argument("--n", type=int, default=200, help="the first N items of the split's fixed list")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    ds = get_dataset("noisy", args.root, split=args.split, sample_rate=16000)
    out = Path(args.out)
    rows = []
    for i in range(min(args.n, len(ds))):
        item = ds[i]
        name = f"{args.split}-{i:04d}"
        write_audio(out / "noisy" / f"{name}.wav", item["mixture"].numpy(), 16000)
        write_audio(out / "clean" / f"{name}.wav", item["sources"][0].numpy(), 16000)
        rows.append({"name": name, "id": item["id"], "seconds": f"{item['mixture'].shape[-1] / 16000:.2f}"})
    with open(out / "items.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=("name", "id", "seconds"))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} pairs ({sum(float(r['seconds']) for r in rows) / 60:.1f} min) to {out}")


if __name__ == "__main__":
    main()
