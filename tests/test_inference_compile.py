"""`PressNet.compile_inference`: the segment runner's outputs are those of the eager model, and
windows of one shape reach each compiled piece without compiling it again. Dynamo's own backend
(`eager`) stands in for inductor, as in test_train_compile.py: which graphs exist and when they
recompile is dynamo's decision, the same for both, and it takes seconds where inductor takes
minutes on a CPU."""

import numpy as np
import torch
from conftest import tiny_config
from torch._dynamo.utils import counters

from press.engine.policies import Static
from press.inference.runner import Separator
from press.io.streaming import ArrayReader
from press.model import PressNet


def every_other(ctx) -> torch.Tensor:
    """A policy whose exits do not depend on the model: every other segment still running leaves."""
    return torch.arange(len(ctx.valid)) % 2 == 0


def run(model: PressNet, audio: np.ndarray, policy, target_db: float = 20.0):
    sep = Separator(model, segment=0.2, context=0.05, batch_size=4, target_db=target_db, confidence=0.5)
    return sep.run(ArrayReader(audio), policy)


def test_compiled_runner_equals_eager_and_compiles_each_exit_once():
    torch.manual_seed(0)
    eager = PressNet(tiny_config()).eval()
    compiled = PressNet(tiny_config()).eval()
    compiled.load_state_dict(eager.state_dict())
    torch._dynamo.reset()
    counters.clear()
    compiled.compile_inference(backend="eager")
    audio = np.random.default_rng(0).standard_normal(8000 * 2).astype(np.float32) * 0.1  # 10 windows
    np.testing.assert_allclose(run(compiled, audio, Static(3)).sources, run(eager, audio, Static(3)).sources,
                               rtol=1e-5, atol=1e-6)
    # begin + one graph per exit for the full batches of 4, again for the last batch of 2 (one
    # recompilation each, after which the batch size is dynamic): no graph per call
    graphs = counters["stats"]["unique_graphs"]
    assert graphs == 2 * (1 + 3)
    np.testing.assert_allclose(run(compiled, audio, Static(2)).sources, run(eager, audio, Static(2)).sources,
                               rtol=1e-5, atol=1e-6)
    assert counters["stats"]["unique_graphs"] == graphs
    # early exits shrink the batch between exits (4 -> 2 -> 1): still the eager result
    fast, slow = run(compiled, audio, every_other), run(eager, audio, every_other)
    assert [s.exit for s in fast.segments] == [s.exit for s in slow.segments] == [1, 2, 1, 3, 1, 2, 1, 3, 1, 2]
    np.testing.assert_allclose(fast.sources, slow.sources, rtol=1e-5, atol=1e-6)
