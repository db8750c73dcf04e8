"""`press demo [--out DIR]`: the main job on a fresh install, nothing downloaded.

Runs the shipped `enhance` model on a few items of the built-in test slice (recorded speech in
recorded noise, talkers and noise files no model trained on) at a few quality targets, and writes
to DIR: the noisy inputs, the references, the outputs per target, a per-block exit report (JSON)
and a figure per item showing which exit each block took. Prints a table: target -> SI-SNRi of the
speech, mean GMAC/s, saving against the last exit. `--model default` separates two-speaker
mixtures of the built-in test split instead (recorded speech, and synthetic voices).

It starts with enhancement because that is what the shipped models do well on recorded audio: the
CPU-trained separator averages about 2.7 dB SI-SNRi on recorded voices it never heard, and a few
mixtures of it can land below 0 dB (docs/results.md).
"""

from __future__ import annotations

import argparse

from press.commands.options import add_device_argument


def _targets(text: str) -> list[float]:
    try:
        values = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("expected comma-separated numbers, e.g. 10,15,20") from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one target")
    return values


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="press-demo", help="output folder (default ./press-demo)")
    p.add_argument("--model", default="enhance",
                   help="shipped model name or checkpoint (default: enhance; default separates two talkers)")
    # By default the model's operating point's target and 2.5 dB either side: where its exits trade
    # quality for compute (a target far above what its outputs reach sends every block to the last exit)
    p.add_argument("--targets", type=_targets, default=None,
                   help="exit-SNR targets in dB (default: the model's operating point's target t and t +- 2.5)")
    p.add_argument("--confidence", type=float, default=0.9, help="confidence p (default 0.9)")
    p.add_argument("--mixtures", type=int, default=4, help="how many test mixtures (default 4)")
    add_device_argument(p)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import numpy as np

    from press.api import load
    from press.data import get_dataset
    from press.errors import PressError
    from press.evaluation.figures import plot_exit_map
    from press.evaluation.metrics import aligned_si_snri
    from press.io.audio import write_audio
    from press.io.files import atomic_write

    if args.mixtures < 1:
        raise PressError("--mixtures must be at least 1")
    model = load(args.model, device=args.device)
    if model.n_src != 2:
        raise PressError(f"the demo separates two speakers; {args.model} separates {model.n_src} sources")
    sr = model.sample_rate
    enhancer = "speech" in model.source_names
    speech = model.source_names.index("speech") if enhancer else 0
    scored = slice(speech, speech + 1) if enhancer else slice(None)  # an enhancer is scored on its speech
    if enhancer:
        noisy = get_dataset("noisy", split="test", sample_rate=sr)
        n_real = args.mixtures
        items = [("noisy", noisy[i]) for i in range(args.mixtures)]
    else:
        real = get_dataset("builtin", split="test", sample_rate=sr, mode="max", subset="real")
        synthetic = get_dataset("builtin", split="test", sample_rate=sr, mode="max", subset="tts")
        n_real = (args.mixtures + 1) // 2
        items = [("real", real[i]) for i in range(n_real)] + \
                [("tts", synthetic[i]) for i in range(args.mixtures - n_real)]
    if args.targets is None:
        t = model.operating_point.target_db
        args.targets = [t - 2.5, t, t + 2.5]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[float, list[tuple[float, float, float]]] = {t: [] for t in args.targets}
    last_exit: list[tuple[float, float]] = []
    for n, (kind, item) in enumerate(items, start=1):
        name = f"mix{n}_{kind}"
        mixture, refs = item["mixture"].numpy(), item["sources"]
        write_audio(out / f"{name}.wav", mixture, sr)
        for j, ref in enumerate(refs.numpy()):
            label = f"_{model.source_names[j]}" if enhancer else str(j + 1)
            write_audio(out / f"{name}_ref{label}.wav", ref, sr)
        reports = {}
        for t in [*args.targets, None]:
            res = (model.separate(mixture, sr, exit=model.n_exits) if t is None else
                   model.separate(mixture, sr, target_db=t, confidence=args.confidence))
            score = aligned_si_snri(res.sources[scored], refs.numpy()[scored], mixture)
            if t is None:
                last_exit.append((score, res.report["gmacs_per_second"]))
                continue
            rows[t].append((score, res.report["gmacs_per_second"], res.report["saving"]))
            reports[f"{t:g}dB"] = res.report
            for j, s in enumerate(res.sources):
                write_audio(out / f"{name}_t{t:g}dB_{model.source_names[j]}.wav", s, sr)
        text = json.dumps({"mixture": item["id"], "kind": kind, "reports": reports}, indent=1)
        atomic_write(out / f"{name}_report.json", lambda tmp: Path(tmp).write_text(text))
        plot_exit_map(mixture, sr, {k: r["blocks"] for k, r in reports.items()}, model.n_exits,
                      out / f"{name}_exits.png", title=f"{name}: exit per block (confidence {args.confidence:g})")
    what = "of recorded speech in recorded noise, both" if enhancer else "of recorded speech"
    print(f"PRESS demo: model {model.name}, {len(items)} built-in test {'recordings' if enhancer else 'mixtures'} "
          f"({n_real} {what} unseen in training), confidence {args.confidence:g}")
    print(f"{'target':>8} {'SI-SNRi (dB)':>13} {'GMAC/s':>8} {'saving':>7}")
    for t, r in rows.items():
        a = np.array(r)
        print(f"{t:>6g}dB {a[:, 0].mean():>13.2f} {a[:, 1].mean():>8.3f} {a[:, 2].mean():>7.0%}")
    last = np.array(last_exit)
    print(f"{'exit ' + str(model.n_exits):>8} {last[:, 0].mean():>13.2f} {last[:, 1].mean():>8.3f} {0:>7.0%}")
    print(f"wrote separated sources, reports and figures to {out}/")
    return 0
