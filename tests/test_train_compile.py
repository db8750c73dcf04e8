"""`train.compile`: fine-tuning batches padded to whole multiples (`pad_batch`) reach a compiled
network in a bounded set of shapes, so a new length in the same bucket does not compile it again;
the padding changes neither the loss nor the gradients. Dynamo's own backend (`eager`) stands in
for inductor: recompilation is decided by dynamo's shape guards, which are the same, and it takes
seconds where inductor takes minutes on a CPU."""

import pytest
import torch
from conftest import tiny_config
from torch._dynamo.utils import counters

from press.model import PressNet
from press.training.data import pad_batch
from press.training.loss import TrainingLoss

MULTIPLE = 800   # samples: two likelihood blocks of the tiny model


def batch_of(length: int) -> dict:
    src = torch.randn(2, 2, length) * 0.1
    return {"mixture": src.sum(1), "sources": src, "lengths": torch.tensor([length, length - 300])}


def train_step(net, batch) -> list[torch.Tensor]:
    loss_fn = TrainingLoss(400, "student_t", "shared", 0.0)
    net.zero_grad()
    loss_fn(net(batch["mixture"], batch["lengths"]), batch["sources"], batch["mixture"], batch["lengths"]).loss.backward()
    return [p.grad.clone() for p in net.parameters()]


@pytest.mark.parametrize("padded", [True, False])
def test_second_length_in_a_bucket_does_not_recompile(padded):
    torch._dynamo.reset()
    counters.clear()
    model = PressNet(tiny_config()).train()
    net = torch.compile(model, backend="eager", dynamic=False)
    for length in (1100, 1500):   # one bucket of 2 x 800 samples
        batch = batch_of(length)
        train_step(net, pad_batch(batch, MULTIPLE) if padded else batch)
    # the whole network is one graph (the scan is an opaque operator: no graph breaks); a second
    # length compiles a second graph unless it was padded into the first one's shape
    assert counters["stats"]["unique_graphs"] == (1 if padded else 2)


def test_padding_to_a_bucket_keeps_loss_and_gradients():
    model = PressNet(tiny_config()).train()
    batch = batch_of(1100)
    padded = pad_batch(batch, MULTIPLE)
    assert padded["mixture"].shape[-1] == 1600 and torch.equal(padded["lengths"], batch["lengths"])
    for a, b in zip(train_step(model, batch), train_step(model, padded)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
