"""experiments/claims.py: every arm of claims.yaml is a valid training config, the CPU-time ledger
survives a resumed run, and claim 6's gap against the static line is right on files whose answer is known."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from press.model.config import load_config
from press.training.config import resolve_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def claims():
    spec = importlib.util.spec_from_file_location("claims", ROOT / "experiments" / "claims.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_every_arm_resolves_to_a_valid_config(claims):
    spec = claims.load_spec()
    for name, arm in spec["arms"].items():
        task = spec["tasks"][arm["task"]]
        cfg = resolve_config(load_config(task["config"], [*task["recipe"], *arm["overrides"]]))
        assert int(cfg.model.block) % int(cfg.model.patch) == 0, name
        if "init" in arm:
            assert arm["init"] in spec["arms"] and spec["arms"][arm["init"]]["task"] == arm["task"], name
    for number, claim in spec["claims"].items():
        assert claim["arms"] and set(claim["arms"]) <= set(spec["arms"]), number
    # the arms of each claim differ from one another in what the claim is about, and only there
    assert spec["arms"]["single-exit"]["overrides"] == ["model.n_exits=1"]
    assert spec["arms"]["per-exit-pit"]["overrides"] == ["loss.pit=per_exit"]


def test_cpu_ledger_adds_up_across_runs(claims, tmp_path):
    burn = [sys.executable, "-c", "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"]
    claims.run_counted(burn, tmp_path, threads=1)
    first = json.loads((tmp_path / "cpu.json").read_text())["seconds"]
    claims.run_counted(burn, tmp_path, threads=1)
    second = json.loads((tmp_path / "cpu.json").read_text())["seconds"]
    assert 0.3 <= first < 5.0
    assert second >= first + 0.3
    with pytest.raises(RuntimeError, match="failed"):
        claims.run_counted([sys.executable, "-c", "raise SystemExit(3)"], tmp_path, threads=1)


def _scored(rows: list[dict], exits: list[dict], dynamic: list[dict]) -> dict:
    return {"rows": rows, "exits": exits, "dynamic": dynamic}


def test_dynamic_gap_against_the_static_line(claims):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(60):
        q = 5.0 + rng.normal()
        row = {"seconds": 2.0 + i % 3, "si_snri_exit1": q, "gmacs_exit1": 1.0, "si_snri_exit2": q + 2.0, "gmacs_exit2": 3.0,
               # a point halfway in compute, 0.5 dB above the line through the exits (which is at q + 1)
               "si_snri_t5": q + 1.5, "gmacs_t5": 2.0,
               # a point that is exit 2 on every file: no gap, no spread
               "si_snri_t10": q + 2.0, "gmacs_t10": 3.0}
        rows.append(row)
    s = _scored(rows, [{"gmacs_per_second": 1.0, "si_snri": 5.0}, {"gmacs_per_second": 3.0, "si_snri": 7.0}],
                [{"target_db": 5.0}, {"target_db": 10.0}])
    half, whole = claims.dynamic_gaps(s)
    assert half["gmacs"] == pytest.approx(2.0)
    assert half["gap"] == pytest.approx(0.5)
    assert half["lo"] == pytest.approx(0.5) and half["hi"] == pytest.approx(0.5)   # every file gains the same
    assert whole["gap"] == pytest.approx(0.0, abs=1e-9)
    # a gap that varies from file to file: the interval holds it and has width
    for r in rows:
        r["si_snri_t5"] += rng.normal()
    half = claims.dynamic_gaps(s)[0]
    assert half["lo"] < half["gap"] < half["hi"]
    assert half["hi"] - half["lo"] > 0.2


def test_dynamic_share_reads_the_point_at_its_target_and_confidence(claims):
    s = {"exits": [{"si_snri": 4.0, "gmacs_per_second": 1.0}, {"si_snri": 6.0, "gmacs_per_second": 4.0}],
         "dynamic_sweep": [
             {"confidence": 0.9, "target_db": 2.5, "si_snri": 4.5, "gmacs_per_second": 1.5},
             {"confidence": 0.9, "target_db": 5.0, "si_snri": 5.8, "gmacs_per_second": 3.0},
             {"confidence": 0.5, "target_db": 5.0, "si_snri": 5.9, "gmacs_per_second": 1.2}]}   # other p
    assert claims.dynamic_share(s, 5.0) == pytest.approx(0.75)
    assert claims.dynamic_share(s, 2.5) == pytest.approx(0.375)
    assert claims.dynamic_share(s, 7.5) is None


def test_only_finished_seeds_have_weights(claims, tmp_path):
    for seed, done in ((0, True), (1, False), (2, True)):
        run = tmp_path / "arm" / f"seed-{seed}"
        run.mkdir(parents=True)
        (run / "last.safetensors").write_bytes(b"")
        if done:
            (run / "train.done").write_text("")
    assert claims._weights(tmp_path, "arm") == [tmp_path / "arm" / f"seed-{s}" / "last.safetensors" for s in (0, 2)]
