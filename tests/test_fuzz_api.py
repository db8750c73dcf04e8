"""Property-based tests of the Python API's front door: whatever a caller hands `Press.separate`, the
answer is a correct result (finite float32 sources of the input's length at its rate) or a PressError
with a message, within a time limit; and `press.load` never unpickles a file it is given."""

from __future__ import annotations

import contextlib
import pickle
import signal
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from safetensors import safe_open
from safetensors.torch import save_file

import press
from press.api import Press, Separation
from press.errors import PressError
from press.model.checkpoint import load_model

SR = 8000         # the tiny model's rate
LIMIT_S = 30.0    # one call, on a loaded CPU; a fraction of a second is typical
FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])

ACCEPTED = ["float16", "float32", "float64", ">f4", "int8", "int16", "int32", ">i2", "uint8"]
REFUSED = ["bool", "int64", "uint16", "uint32", "complex64", "complex128", "object"]


@pytest.fixture(scope="module")
def model(tiny_checkpoint) -> Press:
    """The tiny model, run once so that later calls are timed without the first call's set-up."""
    m = press.load(str(tiny_checkpoint))
    m.separate(np.zeros(SR // 10, np.float32))
    return m


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Fail a call that runs past `seconds` (a hang would otherwise stall the suite)."""
    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"no answer within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def separate_or_refuse(model: Press, audio: Any, **options: Any) -> Separation | PressError:
    """The result of `model.separate`, or the PressError it raised; any other exception propagates."""
    start = time.monotonic()
    with time_limit(LIMIT_S):
        try:
            result: Separation | PressError = model.separate(audio, **options)
        except PressError as err:
            assert str(err).strip(), "a PressError without a message"
            result = err
    assert time.monotonic() - start < LIMIT_S
    if currently_in_test_context():   # a Hypothesis example: counted by --hypothesis-show-statistics
        event("refused" if isinstance(result, PressError) else "separated")
    return result


def assert_correct(result: Separation, n_samples: int, rate: int) -> None:
    assert result.sources.shape == (2, n_samples)
    assert result.sources.dtype == np.float32 and np.isfinite(result.sources).all()
    assert result.sample_rate == rate and isinstance(result.sample_rate, int)


def finite_peak(x: np.ndarray) -> float:
    return float(np.abs(x.astype(np.float64)).max()) if x.size else 0.0


@st.composite
def audio_arrays(draw: st.DrawFn) -> tuple[np.ndarray, str]:
    """An array of any listed dtype and of any layout: scalar, empty, mono, (1, N), (2, N), (N, 2), 3-d.
    Float elements cover NaN, +-Inf, subnormals, float32's extremes and (float64) values beyond them."""
    name = draw(st.sampled_from(ACCEPTED + REFUSED))
    n = draw(st.integers(1, 3 * SR // 4))
    shape = draw(st.sampled_from([(), (0,), (n,), (1, n), (2, n), (n, 2), (n, 1), (2, 0), (2, 3, n)]))
    dtype = np.dtype(name if name != "object" else "float64")
    if dtype.kind == "f":
        width, info = 8 * dtype.itemsize, np.finfo(dtype)
        elements = st.floats(width=width, allow_nan=True, allow_infinity=True, allow_subnormal=True)
        extremes = [0.0, 1.0, -1.0, float(info.smallest_subnormal), -float(info.tiny), float(info.max),
                    float(info.min)]
        fill = st.sampled_from(extremes) | st.floats(-1.0, 1.0, width=width)
    elif dtype.kind == "c":
        elements = fill = st.complex_numbers(max_magnitude=1e3, allow_nan=False, allow_infinity=False,
                                            width=8 * dtype.itemsize)
    else:
        elements = fill = None   # the whole integer or bool range
    x = draw(hnp.arrays(dtype, shape, elements=elements, fill=fill))
    return (x.astype(object) if name == "object" else x), name


@FUZZ
@given(case=audio_arrays(), channel=st.sampled_from([None, "mix", 0, 1, -1, 5, "all", "left"]))
def test_any_array_separates_correctly_or_is_refused(model, case, channel) -> None:
    x, name = case
    result = separate_or_refuse(model, x, channel=channel)
    if isinstance(result, PressError):
        return
    assert name in ACCEPTED, f"{name} audio was accepted"
    assert x.ndim in (1, 2) and x.size > 0 and np.isfinite(x.astype(np.float64)).all()
    assert finite_peak(x) <= np.finfo(np.float32).max
    assert_correct(result, x.shape[-1], SR)


@pytest.mark.parametrize("name", REFUSED)
def test_non_audio_dtypes_are_refused_with_the_accepted_ones_named(model, name) -> None:
    x = np.zeros(SR // 10, dtype=name)
    with pytest.raises(PressError, match="is not accepted: pass float samples .* int16"):
        model.separate(x)


@pytest.mark.parametrize("dtype,offset,full_scale", [
    (np.int8, 0, 2 ** 7), (np.int16, 0, 2 ** 15), (np.int32, 0, 2 ** 31), (np.uint8, 128, 2 ** 7)])
def test_integer_pcm_separates_as_its_float_reading(model, dtype, offset, full_scale) -> None:
    """An int array is PCM: the same sources as the float samples soundfile would read from its file."""
    info = np.iinfo(dtype)
    rng = np.random.default_rng(0)
    pcm = rng.integers(info.min, info.max, SR // 2, endpoint=True).astype(dtype)
    as_float = ((pcm.astype(np.float64) - offset) / full_scale).astype(np.float32)
    got, want = model.separate(pcm, exit=1), model.separate(as_float, exit=1)
    np.testing.assert_allclose(got.sources, want.sources, atol=1e-6)
    assert np.abs(as_float).max() <= 1.0


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32, torch.float64, torch.int16])
def test_torch_tensors_of_every_audio_dtype_separate(model, dtype) -> None:
    x = (torch.randn(SR // 4) * 0.1 if dtype.is_floating_point else torch.randint(-3000, 3000, (SR // 4,))).to(dtype)
    assert_correct(separate_or_refuse(model, x.requires_grad_(dtype.is_floating_point)), SR // 4, SR)


@pytest.mark.parametrize("x,message", [
    (torch.zeros(800, dtype=torch.complex64), "complex"),
    (torch.zeros(800, dtype=torch.bool), "bool"),
    ([[0.1], [0.1, 0.2]], "not an array of samples"),
    ("", "path is empty"),
    ("no-such-file.wav", "no such audio file"),
    (None, "dtype object"),
    (np.full(800, 1e300), "exceed float32's range"),
    (np.zeros((800, 2), np.float32), "pass audio.T"),
])
def test_odd_inputs_get_a_message_that_says_what_is_wrong(model, x, message) -> None:
    with pytest.raises(PressError, match=message):
        model.separate(x)


@FUZZ
@given(n=st.integers(1, 24),
       rate=st.integers(1, 768_000) | st.sampled_from([SR, 44_100, 768_000, np.int64(16_000), np.int32(1)]))
def test_every_sample_rate_from_1_hz_to_768_khz(model, n, rate) -> None:
    """Resampled in and out: sources of the input's length at its rate, or "too short" where the input
    holds less than one sample at the model's rate."""
    x = (np.random.default_rng(n).standard_normal(n) * 0.1).astype(np.float32)
    result = separate_or_refuse(model, x, sample_rate=rate)
    if isinstance(result, PressError):
        assert "too short" in str(result) and n * SR / rate < 1.5, str(result)
    else:
        assert_correct(result, n, int(rate))


@FUZZ
@given(rate=st.integers(max_value=0) | st.floats(allow_nan=True, allow_infinity=True)
       | st.sampled_from([True, False, "8000", 16_000.0, np.float32(8000), [8000]]))
def test_invalid_sample_rates_are_refused(model, rate) -> None:
    result = separate_or_refuse(model, np.zeros(SR // 10, np.float32), sample_rate=rate)
    assert isinstance(result, PressError) and "sample_rate must be a positive whole number" in str(result)


NAN, INF = float("nan"), float("inf")
# Each option: (values in range, values out of range); WRONG (non-finite, wrong types) is tried on
# every option too. budget has no value in range here: its first use measures a calibration for
# seconds, which tests/test_separate.py covers.
OPTIONS: dict[str, tuple[st.SearchStrategy, list[Any]]] = {
    "target_db": (st.floats(-30, 40), [1e9, -1e300, 100.5]),
    "confidence": (st.floats(0, 1), [1.5, -0.1]),
    "exit": (st.integers(1, 3), [0, 4, 2.0]),
    "quantile": (st.floats(0.01, 1.0), [0, 2]),
    "budget": (st.nothing(), [0, -1.0]),
    "segment": (st.floats(0.5, 30.0), [0, -1.0, 1e-6, 1e300]),
    "context": (st.floats(0.05, 0.25), [0, -1.0, 1e6]),
    "batch_size": (st.integers(1, 16), [0, -1, 1.5]),
}
WRONG = [NAN, INF, -INF, True, "1", [1.0], None]


@st.composite
def option_sets(draw: st.DrawFn) -> dict[str, Any]:
    """Options in range or left out, and at most one of them wrong (half of the sets have none wrong)."""
    options = {name: draw(st.none() | valid) for name, (valid, _) in OPTIONS.items()}
    wrong = draw(st.none() | st.sampled_from(sorted(OPTIONS)))
    if wrong is not None:
        options[wrong] = draw(st.sampled_from(WRONG + OPTIONS[wrong][1]))
    return {name: value for name, value in options.items() if value is not None or name == wrong}


@FUZZ
@given(options=option_sets())
def test_any_option_values_separate_correctly_or_are_refused(model, options) -> None:
    x = np.random.default_rng(0).standard_normal(SR).astype(np.float32) * 0.1
    result = separate_or_refuse(model, x, **options)
    target_db = options.get("target_db")
    if isinstance(target_db, float) and not abs(target_db) <= 100:   # NaN too
        assert isinstance(result, PressError) and "target_db" in str(result)
    if not isinstance(result, PressError):
        assert_correct(result, SR, SR)


def test_unknown_options_are_refused_by_name(model) -> None:
    with pytest.raises(PressError, match="unknown option.*segmnet.*segment, context, batch_size"):
        model.separate(np.zeros(SR // 10, np.float32), segmnet=2.0)


# ------------------------------------------------------------------ press.load never unpickles


class Trap:
    """Unpickled, it creates `marker`: proof that a loader ran code from the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return open, (str(self.marker), "w")


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".ckpt", ".bin", ".safetensors"])
@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_pickles_are_refused_without_being_unpickled(tmp_path, suffix, writer) -> None:
    marker = tmp_path / "unpickled"
    payload = {"state_dict": {"w": torch.zeros(2)}, "trap": Trap(marker)}
    path = tmp_path / f"model{suffix}"
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
    armed = tmp_path / "armed"
    pickle.loads(pickle.dumps(Trap(armed))).close()
    assert armed.exists(), "the trap does not fire: the test would prove nothing"
    with pytest.raises(PressError, match="pickle.*does not load.*safetensors"):
        press.load(str(path))
    assert not marker.exists()


# ------------------------------------------------------------------ a damaged checkpoint header


def rewrite_header(src: Path, dst: Path, change: dict[str, str | None]) -> Path:
    """A copy of the checkpoint `src` whose header metadata has `change` applied (None removes a key)."""
    with safe_open(str(src), framework="pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    for key, value in change.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    save_file(tensors, str(dst), metadata=meta)
    return dst


@pytest.mark.parametrize("change,message", [
    ({"config": None}, "no config"),
    ({"config": "model: [unclosed"}, "stored config"),
    ({"config": "- a list\n- not a mapping"}, "model section"),
    ({"config": "train: {}"}, "model section"),
    ({"config": "model: {dim: sixteen}"}, "model.dim"),
    ({"config": "model: {no_such_size: 3}"}, "no_such_size"),
    ({"config": "model: {enc_channels: -16}"}, "the stored model config builds no network"),
    ({"extra": "{not json"}, "extras"),
    ({"extra": "[1, 2]"}, "extras"),
])
def test_a_damaged_checkpoint_header_is_refused(tiny_checkpoint, tmp_path, change, message) -> None:
    with pytest.raises(PressError, match=message):
        load_model(rewrite_header(tiny_checkpoint, tmp_path / "m.safetensors", change))


@settings(max_examples=25, deadline=None, derandomize=True)
@given(cut=st.floats(0.0, 1.0, exclude_max=True), at=st.integers(0, 2 ** 20), value=st.integers(1, 255))
def test_a_truncated_or_corrupted_checkpoint_is_refused(tiny_checkpoint, tmp_path_factory, cut, at, value) -> None:
    """A cut file is refused; one with a byte of its length field or JSON header changed loads (the
    change may be harmless) or is refused, never with another exception."""
    data = bytearray(tiny_checkpoint.read_bytes())
    path = tmp_path_factory.mktemp("ckpt") / "m.safetensors"
    path.write_bytes(bytes(data[: int(cut * len(data))]))
    with pytest.raises(PressError):
        load_model(path)
    header = int.from_bytes(data[:8], "little") + 8
    data[at % header] ^= value
    path.write_bytes(bytes(data))
    with contextlib.suppress(PressError):
        load_model(path)
