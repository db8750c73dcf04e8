"""Full-length fine-tuning: batches hold utterances of different lengths, padded, and the padding
counts for nothing: loss and gradients of a padded batch are those of its items run alone."""

import torch
from tiny_training import tiny_run_config

from press.data.views import collate_padded
from press.model import PressNet, model_config
from press.prob.likelihood import PressLoss
from press.training.data import StagePlan, build_dataset, shard


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
    loss_fn = PressLoss(cfg.model.block)

    def loss_and_grads(batch):
        model.zero_grad()
        res = loss_fn(model(batch["mixture"], batch["lengths"]), batch["sources"], batch["mixture"], batch["lengths"])
        res.loss.backward()
        return res.loss.detach(), [p.grad.clone() for p in model.parameters()]

    batch = collate_padded(items)
    assert len(set(batch["lengths"].tolist())) == 3
    for b, n in enumerate(batch["lengths"].tolist()):      # garbage, not zeros, in the padding
        batch["mixture"][b, n:] = 5.0
        batch["sources"][b, :, n:] = -3.0
    padded_loss, padded_grads = loss_and_grads(batch)
    # the batch loss is per valid sample: the items' losses weighted by their lengths
    weights = batch["lengths"].double() / batch["lengths"].sum()
    alone = [loss_and_grads(collate_padded([it])) for it in items]
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
