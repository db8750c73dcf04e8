"""The shipped `enhance-rt` model: it loads by name as a causal enhancer with its operating point, and
streamed, it removes recorded noise from recorded speech it never heard."""

import numpy as np
import torch

import press
from press.data import get_dataset
from press.evaluation.metrics import aligned_si_snri
from press.model.pretrained import load, resolve, shipped_names

# Measured (CPU) on these 20 items at exit 3: the shipped weights 1.63 dB (exits 1 / 2: 1.29 / 1.54); the
# shipped weights perturbed by half of each tensor's standard deviation -1.91, shuffled within each tensor -2.57.
FLOOR = 1.0


def test_enhance_rt_is_shipped_causal_and_described():
    assert "enhance-rt" in shipped_names() and resolve("enhance-rt").with_suffix(".md").is_file()
    model = press.load("enhance-rt")
    assert model.name == "enhance-rt" and model.source_names == ["speech", "noise"]
    assert model.model.cfg.causal and model.model.lookahead == 15 and model.model.cfg.block == 512
    assert (model.operating_point.target_db, model.operating_point.confidence) == (2.5, 0.9)


def test_enhance_rt_removes_noise_from_the_first_test_items():
    """A quality floor, so that a broken checkpoint fails: the speech's mean SI-SNRi at the last exit
    over the first 20 items of the shipped slice's test list must reach FLOOR dB. Scored on the
    whole-file causal forward, which a stream equals in any chunks (tests/test_stream_model.py); one
    item streamed in 10 ms chunks checks that here too."""
    net = load("enhance-rt")[0]
    test = get_dataset("noisy", split="test")
    scores = []
    with torch.no_grad():
        for i in range(20):
            item = test[i]
            speech = net(item["mixture"][None])[2].estimate[0, :1].numpy()
            scores.append(aligned_si_snri(speech, item["sources"].numpy()[:1], item["mixture"].numpy()))
        x = test[0]["mixture"][None, :16000]
        state, pieces = net.stream_begin(1), []
        for start in range(0, x.shape[1], 160):
            out, state = net.stream_step(x[:, start:start + 160], state, 3)
            pieces.append(out[2].estimate[0, 0])
        pieces.append(net.stream_end(state, 3)[2].estimate[0, 0])
        whole = net(x)[2].estimate[0, 0]
        torch.testing.assert_close(torch.cat(pieces), whole, atol=1e-5 * float(whole.abs().max()), rtol=0)
    assert np.mean(scores) >= FLOOR, scores
