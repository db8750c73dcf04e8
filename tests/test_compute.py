import json

import pytest
import torch
from conftest import tiny_config
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from press.cli import main
from press.model import PressNet, load_config, model_config
from press.model.blocks import Scan, SpeakerMix
from press.model.compute import count_macs, exit_costs


def flop_counter_macs(fn) -> int:
    """A second, independent counter: torch's FlopCounterMode (FLOPs / 2) on aten ops."""
    with torch.backends.mkldnn.flags(enabled=False), sdpa_kernel(SDPBackend.MATH):
        with FlopCounterMode(display=False) as fc:
            fn()
    return fc.get_total_flops() // 2


@pytest.mark.parametrize("n_src", [1, 2, 3])
def test_mac_count_agrees_with_flop_counter(n_src):
    model = PressNet(tiny_config(n_src=n_src)).train()
    x = torch.randn(2, 1600)
    with count_macs(model) as totals:
        reference = flop_counter_macs(lambda: model(x))
    # FlopCounterMode sees matmuls and convs, not element-wise work: the scan's recurrence and the
    # speaker mix's S x S products (written without matmuls, press.model.blocks.SpeakerMix)
    scan = sum(v for m, v in totals.items() if isinstance(m, Scan))
    mix = sum(v for m, v in totals.items() if isinstance(m, SpeakerMix))
    assert sum(totals.values()) - scan - mix == reference
    assert scan > 0 and mix > 0


def test_exit_costs_add_up_per_exit():
    model = PressNet(tiny_config())
    costs = exit_costs(model, seconds=1.0)
    assert [c.exit for c in costs] == [1, 2, 3]
    assert costs[-1].params == sum(p.numel() for p in model.parameters())
    x = torch.zeros(1, 8000)
    for k in (1, 2, 3):  # dynamic cost of exit k = everything run by model(x, n_exits=k)
        with count_macs(model) as totals:
            with torch.no_grad():
                model(x, n_exits=k)
        assert sum(totals.values()) / 1e9 == pytest.approx(costs[k - 1].gmacs_per_second, rel=1e-9)
    for a, b in zip(costs, costs[1:]):
        assert b.params > a.params and b.gmacs_per_second > a.gmacs_per_second
        assert b.static_gmacs_per_second < b.gmacs_per_second


def test_macs_scale_linearly_with_length():
    model = PressNet(tiny_config())
    assert exit_costs(model, 1.0)[-1].gmacs_per_second == pytest.approx(
        exit_costs(model, 3.0)[-1].gmacs_per_second, rel=1e-9)


@pytest.mark.parametrize("name,targets", [
    ("press4-s", {4: (3.4e6, 11.3)}),
    ("press12-m", {8: (15.6e6, 54.4), 12: (22.4e6, 79.7)}),
])
def test_named_configs_within_15_percent_of_the_paper(name, targets, capsys):
    assert main(["info", name, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model"] == name and info["sample_rate"] == 8000
    for exit_, (params, gmacs) in targets.items():
        e = info["exits"][exit_ - 1]
        assert e["exit"] == exit_ and isinstance(e["params"], int)
        assert abs(e["params"] / params - 1) <= 0.15
        assert abs(e["gmacs_per_second"] / gmacs - 1) <= 0.15


def test_config_overrides_and_errors():
    from press.errors import PressError

    cfg = load_config("tiny", ["model.dim=24"])
    assert model_config(cfg).dim == 24
    with pytest.raises(PressError, match="unknown config"):
        load_config("no-such-config")
    with pytest.raises(PressError, match="unknown config key model.not_a_field"):
        model_config(load_config("tiny", ["model.not_a_field=1"]))
    with pytest.raises(PressError, match="did you mean model.dim"):
        model_config(load_config("tiny", ["model.dimm=16"]))
    with pytest.raises(PressError, match="multiple of n_exits"):
        model_config(load_config("tiny", ["model.n_dec_blocks=4"]))
