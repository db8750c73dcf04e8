"""`press info MODEL [--json]`: parameters and GMAC/s per exit, and the heads' share."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a shipped config name (e.g. press4-s), a config .yaml, "
                                 "or a checkpoint .safetensors")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from press.model import PressNet, load_config, model_config
    from press.model.checkpoint import load_model
    from press.model.compute import summary

    if Path(args.model).suffix == ".safetensors":
        model, cfg, _ = load_model(args.model)
    else:
        cfg = load_config(args.model)
        model = PressNet(model_config(cfg))
    info = summary(model, str(cfg.model.get("name", args.model)))
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
    return 0
