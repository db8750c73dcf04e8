"""`press data`: rebuild the built-in corpus (`synth`), render the recorded enhancement corpus (`noisy`) or
describe what the built-in corpus holds (`info`)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    synth = sub.add_parser("synth", help="rebuild the built-in corpus's clean utterances from Debian packages")
    synth.add_argument("out_dir", metavar="OUT_DIR", help="folder to write audio/ and manifest.csv to")
    synth.add_argument(
        "--seed", type=int, default=0, help="seed for texts, prosody and TTS splits (0 = the shipped corpus)"
    )
    synth.add_argument(
        "--full", action="store_true",
        help="render the full training corpus (every voice and language of the packages, MBROLA's voices for "
        "non-commercial use included; hours, not minutes) instead of the shipped one; validation and test stay "
        "the shipped ones",
    )
    synth.add_argument(
        "--no-languages", dest="languages", action="store_false",
        help="with --full: leave out the synthetic voices in other languages (the recommended training mix: "
        "recorded and transformed voices; see docs/data.md)",
    )
    synth.add_argument(
        "--no-mbrola", dest="mbrola", action="store_false",
        help="with --full: leave out MBROLA's voices, licensed for non-commercial, non-military use only, so that "
        "everything rendered may be used commercially (docs/data.md)",
    )
    synth.add_argument("--jobs", type=int, default=1, help="render in this many processes (default 1)")
    noisy = sub.add_parser(
        "noisy", help="render the recorded enhancement corpus: 16 kHz speech and recorded noise from Debian packages"
    )
    noisy.add_argument("out_dir", metavar="OUT_DIR", help="folder to write speech/, noise/, speech.csv, noise.csv to")
    noisy.add_argument(
        "--root", default="/",
        help="where the packages are installed (/) or extracted (dpkg-deb -x PKG.deb ROOT); default /",
    )
    noisy.add_argument("--noise-cap", type=float, default=60.0, help="seconds kept of each noise file (default 60)")
    noisy.add_argument("--jobs", type=int, default=1, help="render in this many processes (default 1)")
    noisy.add_argument(
        "--slice-of", default=None, metavar="CORPUS",
        help="instead of rendering, write a small slice of the rendered CORPUS to OUT_DIR (how the shipped "
        "press/data/builtin/noisy was made)",
    )
    info = sub.add_parser("info", help="voices, utterances and hours per split of the built-in corpus")
    info.add_argument("--root", default=None, help="a `press data synth` output folder (default: the shipped corpus)")


def _info(root: str | None) -> int:
    from pathlib import Path

    from press.data.builtin import CORPUS_DIR, load_manifest, summary

    rows = load_manifest(root)
    folder = Path(root or CORPUS_DIR).expanduser()
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and f.suffix in (".flac", ".csv"))
    print(f"built-in corpus at {folder}: {len(rows)} utterances, {size / 1e6:.1f} MB, 8 kHz FLAC")
    print(f"{'split':<8}{'kind':<12}{'speakers':>9}{'utterances':>12}{'hours':>8}")
    for (split, kind), s in sorted(summary(rows).items()):
        print(f"{split:<8}{kind:<12}{s['speakers']:>9}{s['utterances']:>12}{s['hours']:>8.3f}")
    engines = sorted({(r["kind"], r["engine"]) for r in rows})
    print("sources: " + ", ".join(f"{e} ({k})" for k, e in engines))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.data_command == "info":
        return _info(args.root)
    import time

    if args.data_command == "noisy":
        from press.corpus.noisy_render import render_noisy_corpus, slice_corpus

        start = time.perf_counter()
        if args.slice_of:
            speech, noise = slice_corpus(args.slice_of, args.out_dir)
        else:
            speech, noise = render_noisy_corpus(args.root, args.out_dir, jobs=args.jobs,
                                                noise_cap_seconds=args.noise_cap)
        hours = [sum(float(r["seconds"]) for r in rows) / 3600 for rows in (speech, noise)]
        print(f"wrote {len(speech)} utterances ({hours[0]:.2f} h) and {len(noise)} noise files ({hours[1]:.2f} h) "
              f"to {args.out_dir} in {time.perf_counter() - start:.0f} s")
        return 0

    from press.corpus.synth import synthesize

    start = time.perf_counter()
    rows = synthesize(
        args.out_dir, seed=args.seed, full=args.full, jobs=args.jobs, languages=args.languages, mbrola=args.mbrola
    )
    hours = sum(float(r["seconds"]) for r in rows) / 3600
    elapsed = time.perf_counter() - start
    print(f"wrote {len(rows)} utterances ({hours:.2f} h) to {args.out_dir} in {elapsed:.1f} s")
    return 0
