"""`press info MODEL [--json]`: parameters and GMAC/s per exit, the heads' share, and for a trained
model its recommended operating point.

The GMAC/s here are the network's, per second of audio run whole. `press separate` reports the rate
it spent, which adds each segment's context on both sides and the padding of the last segment:
(segment + 2 x context) / segment = 1.25 times as much at the default 2 s segments with 0.25 s.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a shipped model (default, enhance), a shipped config name (e.g. press4-s), "
                                 "a config .yaml, or a checkpoint .safetensors")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from press.model import PressNet, load_config, model_config
    from press.engine.operating_point import OperatingPoint
    from press.model.checkpoint import load_model
    from press.model.compute import summary
    from press.model.pretrained import resolve, shipped_names

    extra = None
    if Path(args.model).suffix == ".safetensors" or args.model in shipped_names():
        model, cfg, extra = load_model(resolve(args.model))
    else:
        cfg = load_config(args.model)
        model = PressNet(model_config(cfg))
    info = summary(model, str(cfg.model.get("name", args.model)))
    if extra is not None:
        info["operating_point"] = OperatingPoint.from_dict(extra.get("operating_point")).to_dict()
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"{info['model']}: {model.cfg.n_src} sources at {info['sample_rate']} Hz, "
          f"{model.n_exits} exits (GMAC/s per second of audio; dynamic = all earlier heads run)")
    print(f"{'exit':>4} {'params':>10} {'GMAC/s':>8} {'static':>8} {'head params':>11} "
          f"{'head GMAC/s':>11} {'heads share':>11}")
    for e in info["exits"]:
        print(f"{e['exit']:>4} {e['params'] / 1e6:>9.2f}M {e['gmacs_per_second']:>8.2f} "
              f"{e['static_gmacs_per_second']:>8.2f} {e['head_params'] / 1e3:>10.1f}k "
              f"{e['head_gmacs_per_second']:>11.3f} {e['heads_share']:>10.1%}")
    print("GMAC/s: the network's, on audio run whole; `press separate` reports the rate spent, with each "
          "segment's context (x(1 + 2 context / segment): x1.25 at 2 s segments and 0.25 s context) and padding")
    if "operating_point" in info:
        point = info["operating_point"]
        print(f"operating point (press separate's default): t = {point['target_db']:g} dB, "
              f"p = {point['confidence']:g}, {point['segment']:g} s segments with {point['context']:g} s of context"
              + (f", inputs up to {point['whole']:g} s run whole" if point["whole"] else ""))
    return 0
