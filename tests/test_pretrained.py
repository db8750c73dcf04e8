"""The shipped default model: it loads by name and runs at every exit."""

import numpy as np

import press
from press.data import get_dataset
from press.model.pretrained import resolve, shipped_names


def test_default_is_shipped_and_described():
    assert "default" in shipped_names()
    assert resolve("default").is_file()
    model = press.load("default")
    assert model.name == "default" and model.n_src == 2 and model.n_exits == 3 and model.sample_rate == 8000


def test_default_runs_every_exit_on_a_test_mixture():
    model = press.load("default")
    item = get_dataset("builtin", split="test", subset="real")[0]
    for k in (1, 2, 3):
        res = model.separate(item["mixture"].numpy(), 8000, exit=k)
        assert res.sources.shape == item["sources"].shape and np.isfinite(res.sources).all()
        assert all(b["exit"] == k for b in res.report["blocks"])
    dynamic = model.separate(item["mixture"].numpy(), 8000, target_db=-30.0, confidence=0.5)
    assert dynamic.report["gmacs_per_second"] < res.report["gmacs_per_second"]
