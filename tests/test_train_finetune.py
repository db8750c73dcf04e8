"""Full-length fine-tuning: batches hold utterances of different lengths, padded, and the padding
counts for nothing: loss and gradients of a padded batch are those of its items run alone."""

import pytest
import torch
from safetensors.torch import load_file
from test_train_resume import Killed, kill_at
from tiny_training import loss_and_grads, tiny_run_config

from press.data.views import collate_padded
from press.model import PressNet, model_config
from press.training.data import StagePlan, build_dataset, shard
from press.training.loop import train
from press.training.loss import TrainingLoss


def test_finetune_batches_are_variable_length_buckets_within_the_caps():
    cfg = tiny_run_config()
    plan = StagePlan(cfg, "finetune", build_dataset(cfg, "train"))
    batches = plan.batches(epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(12))        # every item once per epoch
    sr, cap = cfg.model.sample_rate, cfg.finetune.max_seconds * cfg.model.sample_rate
    spreads = []
    for b in batches:
        lengths = collate_padded([plan.dataset[i] for i in b])["lengths"]
        assert len(b) <= cfg.finetune.batch_size and int(lengths.max()) <= cap
        assert len(b) == 1 or len(b) * int(lengths.max()) <= cfg.finetune.max_batch_seconds * sr
        spreads.append(int(lengths.max() - lengths.min()))
    assert max(spreads) > 0          # some batch really mixes lengths (and so carries padding)
    assert plan.batches(epoch=0) == batches and plan.batches(epoch=1) != batches


def test_padding_changes_neither_loss_nor_gradients():
    cfg = tiny_run_config()
    ds = build_dataset(cfg, "train")
    items = [ds[i] for i in range(3)]
    torch.manual_seed(0)
    model = PressNet(model_config(cfg)).train()
    loss_fn = TrainingLoss(cfg.model.block)

    batch = collate_padded(items)
    assert len(set(batch["lengths"].tolist())) == 3
    for b, n in enumerate(batch["lengths"].tolist()):      # garbage, not zeros, in the padding
        batch["mixture"][b, n:] = 5.0
        batch["sources"][b, :, n:] = -3.0
    padded_loss, padded_grads = loss_and_grads(model, loss_fn, batch)
    # the batch loss is per valid sample: the items' losses weighted by their lengths
    weights = batch["lengths"].double() / batch["lengths"].sum()
    alone = [loss_and_grads(model, loss_fn, collate_padded([it])) for it in items]
    expected_loss = sum(w * l for w, (l, _) in zip(weights, alone))
    torch.testing.assert_close(padded_loss.double(), expected_loss, rtol=1e-5, atol=1e-6)
    for k, g in enumerate(padded_grads):
        expected = sum(w.float() * grads[k] for w, (_, grads) in zip(weights, alone))
        torch.testing.assert_close(g, expected, rtol=1e-3, atol=1e-6)


def test_ranks_share_every_global_batch_without_gaps():
    batch = [7, 3, 9]
    shards = [shard(batch, r, 2) for r in range(2)]
    assert shards == [([7, 9], True), ([3], True)]
    # a rank left without items recomputes the first one, with zero weight
    assert shard([5], 1, 2) == ([5], False) and shard([5], 0, 2) == ([5], True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Weights a few crop steps in, to fine-tune from."""
    run = tmp_path_factory.mktemp("start")
    train(tiny_run_config("train.steps=4", "finetune.steps=0"), run, device="cpu", progress=False)
    return run / "last.safetensors"


def test_heads_only_finetuning_moves_only_the_variance_heads(trained, tmp_path):
    """`finetune.trainable=heads` from trained weights with no crop stage: every parameter outside the
    inverse-gamma heads ends bit-identical to where it started (AdamW neither steps nor decays it),
    the heads move, and a run killed mid-stage and resumed keeps the trunk frozen too."""
    init = load_file(trained)
    cfg = tiny_run_config("train.steps=0", "finetune.steps=6", "finetune.trainable=heads", "finetune.lr=1e-2",
                          "train.ckpt_every=2", f"train.init={trained}")
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    train(cfg, straight, device="cpu", progress=False)
    with pytest.raises(Killed):
        train(cfg, killed, device="cpu", progress=False, on_step=kill_at(5))
    train(cfg, killed, resume=True, device="cpu", progress=False)
    for run in (straight, killed):
        after = load_file(run / "last.safetensors")
        assert after.keys() == init.keys()
        heads = [k for k in init if k.startswith("ig_heads.")]
        assert heads and len(heads) < len(init)
        for k in init:
            if k in heads:
                continue
            assert torch.equal(after[k], init[k]), k
        assert all(not torch.equal(after[k], init[k]) for k in heads if k.endswith("weight"))
    assert all(torch.equal(a, b) for a, b in zip(load_file(straight / "last.safetensors").values(),
                                                  load_file(killed / "last.safetensors").values()))


def test_all_parameters_move_in_the_papers_finetuning(trained, tmp_path):
    """The default (`finetune.trainable=all`) still trains the whole network: the contrast that makes the
    test above mean something."""
    init = load_file(trained)
    run = tmp_path / "all"
    train(tiny_run_config("train.steps=0", "finetune.steps=3", "finetune.lr=1e-2", f"train.init={trained}"),
          run, device="cpu", progress=False)
    after = load_file(run / "last.safetensors")
    assert not torch.equal(after["encoder_head.analysis.weight"], init["encoder_head.analysis.weight"])
    assert not torch.equal(after["groups.0.0.mixer.proj_in.weight"], init["groups.0.0.mixer.proj_in.weight"])
