"""Two CPU processes under torchrun (gloo): the ranks stay bit-identical, and the run follows the
same trajectory as one process with the same config (each global batch is split over the ranks,
crops and full-length buckets alike, including batches too small to give both ranks an item)."""

import csv
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from tiny_training import OVERRIDES, tiny_run_config

from press.training.loop import train

# fine-tuning batches (samples at 2 kHz): [8180, 8850], [6520, 8060], [10000, 10000], [10000]: the
# ranks' shares differ in length (so their losses must be weighted), and in the last batch rank 1
# has no item of its own (it recomputes rank 0's with zero weight)
EXTRA = ["train.steps=4", "finetune.steps=4", "finetune.max_seconds=5.0", "finetune.max_batch_seconds=10.0",
         "train.ckpt_every=2", "train.val_every=8"]


@pytest.mark.parametrize("trainable", ["all", "heads"])
def test_two_gloo_ranks_stay_in_sync_and_match_one_process(tmp_path, trainable):
    """`heads`: DDP is built again when fine-tuning freezes the trunk (it registers only parameters
    that need gradients), and the ranks still agree with one process."""
    extra = [*EXTRA, f"finetune.trainable={trainable}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "press.cli", "train", "tiny", "--out", str(tmp_path / "ddp"), "--device", "cpu", "--no-progress",
           *OVERRIDES, *extra]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "finished at step 8" in proc.stdout

    sync = json.loads((tmp_path / "ddp" / "sync.json").read_text())
    assert sync["step"] == 8 and sync["world_size"] == 2
    assert len(sync["weights_crc32"]) == 2 and len(set(sync["weights_crc32"])) == 1

    train(tiny_run_config(*extra), tmp_path / "one", device="cpu", progress=False)
    two, one = load_file(tmp_path / "ddp" / "last.safetensors"), load_file(tmp_path / "one" / "last.safetensors")
    assert two.keys() == one.keys()
    for k in one:   # the same up to the order of floating-point sums
        torch.testing.assert_close(two[k], one[k], rtol=1e-4, atol=1e-5, msg=k)
    with open(tmp_path / "ddp" / "log.csv") as a, open(tmp_path / "one" / "log.csv") as b:
        rows_two, rows_one = list(csv.DictReader(a)), list(csv.DictReader(b))
    assert [r["step"] for r in rows_two] == [r["step"] for r in rows_one]
    for r2, r1 in zip(rows_two, rows_one):
        for key in ("loss", "val_loss", "val_si_snri_3"):
            if r1[key]:
                assert abs(float(r2[key]) - float(r1[key])) <= 1e-3 * max(1.0, abs(float(r1[key]))), (key, r1, r2)
