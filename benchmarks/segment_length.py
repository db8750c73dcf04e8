"""SI-SNRi and GMAC/s against the compute segment's length and context, to choose the defaults.

    python benchmarks/segment_length.py [MODEL] [--limit 20] [--segments 0.25,0.5,1,2,4]
                                        [--contexts 0.25,0.5] [--targets 15,20] [--subset real] [--split val]
                                        [--long N] [--dataset noisy --root NOISY]

MODEL: a shipped model's name (`default`), a checkpoint .safetensors, or a config name randomly
initialised (default: `small`, which only checks that the script runs: the numbers mean something
for a trained model). On the first
--limit utterances of a split of the built-in corpus, or of --dataset at --root (`noisy` for an
enhancer: its speech alone is scored; --split: choose defaults on `val`, report on `test`), each
(segment, context) pair with context at most half the segment is evaluated by press.evaluation.evaluate: SI-SNRi and GMAC/s of the last exit (what the
context costs and what too little context loses) and of dynamic inference at each target with
p = --confidence (what a finer segment saves). Lengths are rounded to whole likelihood blocks.

Mixtures shorter than one window (segment + 2 x context) run whole, so on short mixtures a long
segment measures whole-input inference rather than stitching. --long N checks the segments as a
long recording cuts them: every N consecutive mixtures become one input (sources concatenated
too), separated at the last exit, each utterance scored by SI-SNRi on its own span of the output
(speakers aligned per utterance, as budget_policies.py does); GMAC/s are over the long inputs.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from budget_policies import quality  # per-utterance spans of long inputs, scored as budget mode's are

from press.engine.policies import Static
from press.evaluation.evaluate import Options, evaluate
from press.evaluation.report import dataset_items
from press.inference.runner import Separator
from press.io.streaming import ArrayReader


def scored_sources(names: list[str]) -> slice:
    """The outputs scored: an enhancer's speech (the removed noise is no output a listener hears), else all."""
    return slice(names.index("speech"), names.index("speech") + 1) if "speech" in names else slice(None)


def long_inputs(items: list[dict], n: int, scored: slice = slice(None)) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """Every n consecutive items as one group of (mixture (N,), scored sources (S, N)) pairs."""
    pairs = [(it["mixture"].numpy().astype(np.float32), it["sources"].numpy().astype(np.float32)[scored])
             for it in items]
    return [pairs[i:i + n] for i in range(0, len(pairs), n)]


def score_long(separator: Separator, groups: list[list[tuple[np.ndarray, np.ndarray]]],
               scored: slice = slice(None)) -> tuple[float, float]:
    """(mean SI-SNRi over utterances, GMAC/s over all inputs) at the last exit, groups end to end."""
    outputs, macs, seconds = [], 0.0, 0.0
    for group in groups:
        res = separator.run(ArrayReader(np.concatenate([m for m, _ in group])), Static(separator.model.n_exits))
        outputs.append(res.sources[scored])
        macs += res.gmacs_per_second * res.seconds
        seconds += res.seconds
    return quality(outputs, groups, separator.model.cfg.sample_rate), macs / seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", default="small")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--segments", default="0.25,0.5,1,2,4")
    p.add_argument("--contexts", default="0.25,0.5")
    p.add_argument("--targets", default="15,20")
    p.add_argument("--confidence", type=float, default=0.9)
    p.add_argument("--subset", default=None, help="builtin subset: all, real or tts")
    p.add_argument("--split", default="test", choices=("val", "test"), help="builtin split (default test)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--long", type=int, default=0, help="mixtures end to end per input (0: each on its own)")
    p.add_argument("--dataset", default="builtin", help="corpus (default: the built-in one; `noisy` for an enhancer)")
    p.add_argument("--root", default=None, help="the corpus's folder (not for builtin)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from overhead import load  # same model loading as the overhead benchmark

    model = load(args.model)
    targets = tuple(float(v) for v in args.targets.split(","))
    items = list(dataset_items(args.dataset, args.root, args.split, model, args.subset, args.limit)[0])
    if args.long:
        scored = scored_sources(model.cfg.source_names)
        groups = long_inputs(items, args.long, scored)
        seconds = sum(len(m) for g in groups for m, _ in g) / model.cfg.sample_rate / len(groups)
        print(f"{args.model}: {len(items)} {args.dataset} {args.split} utterances as {len(groups)} inputs of "
              f"{seconds:.0f} s on average; last exit, SI-SNRi dB / GMAC/s")
        for seg in (float(v) for v in args.segments.split(",")):
            for ctx in (float(v) for v in args.contexts.split(",")):
                if 2 * ctx <= seg:
                    db, gm = score_long(Separator(model, segment=seg, context=ctx), groups, scored)
                    print(f"{seg:>8g} {ctx:>8g} {db:>7.2f} / {gm:<5.2f}", flush=True)
        return
    head = " ".join(f"{'t=' + format(t, 'g'):>15}" for t in targets)
    print(f"{args.model}: {len(items)} {args.dataset} {args.split} utterances; SI-SNRi dB / GMAC/s")
    print(f"{'segment':>8} {'context':>8} {'last exit':>15} {head}")
    for seg in (float(v) for v in args.segments.split(",")):
        for ctx in (float(v) for v in args.contexts.split(",")):
            if 2 * ctx > seg:
                continue
            separator = Separator(model, segment=seg, context=ctx)
            options = Options(targets=targets, confidence=args.confidence, confidences=(),
                              thresholds=(), quality=False)
            s = evaluate(separator, items, options).summary
            last = s["exits"][-1]
            cells = " ".join(f"{d['si_snri']:>7.2f} / {d['gmacs_per_second']:<5.2f}" for d in s["dynamic"])
            print(f"{s['segment_seconds']:>8g} {s['context_seconds']:>8g} "
                  f"{last['si_snri']:>7.2f} / {last['gmacs_per_second']:<5.2f} {cells}", flush=True)


if __name__ == "__main__":
    main()
