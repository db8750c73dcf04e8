"""The Markdown tables of docs/results.md from `press evaluate`'s summary.json, so that the docs
repeat the numbers of a run instead of numbers copied by hand.

    press evaluate default --split test --limit 100 --targets 5,10,15,20 --confidence 0.9 \
        --no-quality --out eval/test
    python benchmarks/results_tables.py eval/test/summary.json

Prints: static exits; the dynamic sweep over t and p (SI-SNRi @ GMAC/s, regret at t); the other
strategies (static, oracle, uniform random, output change) with their regret at every t; the
saving of each dynamic point against the last exit; calibration (KS, CRPS per exit, ECE).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _regret(row: dict, targets: list[str]) -> str:
    return " / ".join(f"{row['regret_db'][t]:.2f}" for t in targets if t in row["regret_db"])


def tables(s: dict) -> str:
    exits, last = s["exits"], s["exits"][-1]
    targets = list(last["regret_db"])
    subset = f" ({s['subset']})" if s.get("subset") else ""
    lines = [f"{s['dataset']} {s['split']}{subset}, {s['utterances']} mixtures ({s['audio_seconds']:.0f} s)", "",
             "| exit | SI-SNRi | GMAC/s | RTF |", "|---|---|---|---|"]
    for e in exits:
        lines.append(f"| {e['exit']} | {e['si_snri']:.2f} | {e['gmacs_per_second']:.2f} | {e['rtf']:.3f} |")

    points = s.get("dynamic_sweep") or s["dynamic"]
    ps = sorted({p["confidence"] for p in points})
    ts = sorted({p["target_db"] for p in points})
    lines += ["", "| dynamic, t \\ p | " + " | ".join(f"p = {p:g}" for p in ps) + " |",
              "|---|" + "---|" * len(ps)]
    for t in ts:
        cells = []
        for p in ps:
            row = next((r for r in points if r["target_db"] == t and r["confidence"] == p), None)
            cells.append("—" if row is None else
                         f"{row['si_snri']:.2f} dB @ {row['gmacs_per_second']:.2f} "
                         f"({1 - row['gmacs_per_second'] / last['gmacs_per_second']:.0%} saved, "
                         f"regret {row['regret_db'][format(t, 'g')]:.2f})")
        lines.append(f"| t = {t:g} dB | " + " | ".join(cells) + " |")

    lines += ["", f"| strategy | SI-SNRi | GMAC/s | regret at t = {' / '.join(targets)} dB |", "|---|---|---|---|"]
    for e in exits:
        lines.append(f"| static exit {e['exit']} | {e['si_snri']:.2f} | {e['gmacs_per_second']:.2f} | "
                     f"{_regret(e, targets)} |")
    for o in s["oracle"]:
        lines.append(f"| oracle t = {o['target_db']:g} | {o['si_snri']:.2f} | {o['gmacs_per_second']:.2f} | "
                     f"{_regret(o, targets)} (at its t) |")
    for u in s["uniform"]:
        lines.append(f"| uniform random | {u['si_snri']:.2f} | {u['gmacs_per_second']:.2f} | {_regret(u, targets)} |")
    for c in s["output_change"]:
        lines.append(f"| output change < {c['threshold']:g} | {c['si_snri']:.2f} | {c['gmacs_per_second']:.2f} | "
                     f"{_regret(c, targets)} |")

    cal = s["calibration"]
    lines += ["", "| calibration | KS per exit | CRPS dB per exit | ECE |", "|---|---|---|---|"]
    for name, c in cal.items():
        ks = " / ".join(f"{e['ks']:.3f}" for e in c["exits"])
        crps = " / ".join(f"{e['crps_db']:.2f}" for e in c["exits"])
        lines.append(f"| {name} | {ks} | {crps} | {c['ece']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("summaries", nargs="+", type=Path, help="summary.json files of press evaluate")
    for path in ap.parse_args().summaries:
        print(f"### {path}\n")
        print(tables(json.loads(path.read_text())))
        print()


if __name__ == "__main__":
    main()
