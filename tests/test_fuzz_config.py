"""Fuzzed `key=value` overrides: `load_config` + `resolve_config` either give a valid config or raise
a PressError with a message, never an OmegaConf, YAML or Python error; and a config they accept
survives the round trip a run makes (written as config.yaml, read back on --resume) unchanged.

Keys are the real ones (every leaf of the resolved `tiny` config), their sections, and misspellings;
values are numbers of every kind, booleans, nulls, lists, mappings, OmegaConf interpolations and
arbitrary text. Derandomised and bounded (about 10 s).
"""

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig, OmegaConf

from press.errors import PressError
from press.model import load_config
from press.training.config import resolve_config

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


def leaves(cfg: DictConfig, prefix: str = "") -> list[str]:
    out = []
    for key, value in cfg.items():
        out += leaves(value, f"{prefix}{key}.") if isinstance(value, DictConfig) else [f"{prefix}{key}"]
    return out


LEAVES = sorted(leaves(resolve_config(load_config("tiny"))))
SECTIONS = sorted({k.rsplit(".", 1)[0] for k in LEAVES if "." in k} | {"model", "train", "data", "loss", "finetune"})
KEYS = st.one_of(
    st.sampled_from(LEAVES),
    st.sampled_from(SECTIONS),
    st.builds(lambda k, s: k + s, st.sampled_from(LEAVES), st.sampled_from(["x", ".x", "_", "..", ".0", "[0]"])),
    st.text(string.ascii_letters + "._-[]$0123456789", min_size=1, max_size=20),
)
NUMBERS = st.one_of(st.integers(-10**20, 10**20), st.floats(allow_nan=True, allow_infinity=True)).map(str)
VALUES = st.one_of(
    NUMBERS,
    st.sampled_from(["true", "false", "yes", "no", "on", "off", "null", "~", "", "[]", "{}", "[1, 2]", "[0.9]",
                     "[0.9, 0.999, 1]", "{a: 1}", "{enabled: true}", "'quoted'", '"x"', "1e-3", "0x10", "1_000",
                     ".inf", "-.inf", ".nan", "${train.lr}", "${model}", "${nope}", "${oc.env:HOME}",
                     "${oc.decode:'[1'}", "${", "}", "[", "{", ":", "a: b", "- x", "&a", "*a", "!!python/none",
                     "\\", "=", "a=b", "student_t", "gaussian", "heads", "builtin", "min", "max", "bf16"]),
    st.text(max_size=20),
)
OVERRIDES = st.lists(st.builds(lambda k, v: f"{k}={v}", KEYS, VALUES), max_size=4)


def resolve_or_refuse(overrides: list[str]) -> DictConfig | None:
    """The resolved config, or None when it was refused with a PressError that says something."""
    try:
        raw = load_config("tiny", overrides)
    except PressError as err:
        assert str(err).strip()
        return None
    try:
        return resolve_config(raw)
    except PressError as err:
        assert str(err).strip()
        return None


@FUZZ
@given(overrides=OVERRIDES)
def test_overrides_give_a_valid_config_or_a_press_error(overrides):
    cfg = resolve_or_refuse(overrides)
    if cfg is not None:
        # what `press train` writes to config.yaml and a resume reads back
        again = resolve_config(OmegaConf.create(OmegaConf.to_yaml(cfg)))
        assert OmegaConf.to_container(again) == OmegaConf.to_container(cfg)


@FUZZ
@given(key=st.sampled_from(LEAVES), value=VALUES)
def test_one_real_key_with_any_value(key, value):
    resolve_or_refuse([f"{key}={value}"])


@pytest.mark.parametrize("overrides", [["train.lr=["], ["train.lr=${"], ["train.lr=*a"], ["train.lr=="],
                                       ["train.betas={a: 1}"], ["data=${train.lr}", "data.mode=max"], ["[=0"],
                                       ["loss=[]", "loss.objective=gaussian"]])
def test_an_unparsable_override_is_a_press_error(overrides):
    with pytest.raises(PressError):
        load_config("tiny", overrides)


@pytest.mark.parametrize("override", ["model.patch=0", "model.attn_heads=0"])
def test_a_zero_divisor_in_the_model_is_a_press_error(override):
    with pytest.raises(PressError, match=override.split("=")[0].split(".")[1]):
        resolve_config(load_config("tiny", [override]))


@pytest.mark.parametrize("override,message", [
    ("data.augment.early_ms=.nan", "data.augment.early_ms must be a finite number, got nan"),
    ("model.conv_expand=.inf", "model.conv_expand must be a finite number, got inf"),
    ("data.options.snr=[-5, .inf]", "data.options.snr.1 must be a finite number"),
    ("data.augment.clip_percent={a: 1}", "data.augment.clip_percent must be a list, got {'a': 1}"),
    ("train.lr=${nope}", "config value train.lr does not resolve: Interpolation key 'nope' not found"),
    ("train.lr=${train.lr}", "config value train.lr does not resolve: Recursive interpolation"),
    ("data.options=${train.lr}", r"config value data.options=\$\{train.lr\} does not resolve"),
])
def test_what_the_fuzzer_found_is_refused_by_name(override, message):
    with pytest.raises(PressError, match=message):
        resolve_config(load_config("tiny", [override]))
