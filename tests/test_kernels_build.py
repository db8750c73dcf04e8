"""How the compiled CPU kernels are keyed, switched, built, remembered when their build fails, and
reported (press.model.kernels, `press kernels`). Their values: tests/test_kernels.py."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from press.commands.kernels import status_lines
from press.model import kernels

GCC = "c++ (Debian 12.2.0-14+deb12u1) 12.2.0"
KEY = dict(capability="AVX2", machine="x86_64", torch_version="2.13.0+cpu", compiler=GCC,
           sources={"a.cpp": b"int f();", "vec_math.h": b"#pragma once"}, flags=["-O3", "-fopenmp"])


def test_the_key_names_torch_and_the_compiler_and_is_an_identifier() -> None:
    key = kernels.build_key(**KEY)
    assert key.startswith("press_kernels_avx2_torch2_13_0_cpu_gcc12_2_0_") and key.isidentifier()
    assert kernels.build_key(**KEY) == key
    clang = kernels.build_key(**{**KEY, "compiler": "Apple clang version 15.0.0 (clang-1500.3.9.4)"})
    assert "_clang15_0_0_" in clang


@pytest.mark.parametrize("change", [
    {"torch_version": "2.13.1+cpu"},
    {"torch_version": "2.13.0+cu126"},
    {"compiler": "c++ (Debian 12.2.0-14+deb12u2) 12.2.0"},           # same version number, another build
    {"compiler": "clang version 17.0.6"},
    {"compiler": "none"},
    {"sources": {"a.cpp": b"int f(); ", "vec_math.h": b"#pragma once"}},
    {"sources": {"a.cpp": b"int f();", "vec_math.h": b"#pragma once\n"}},   # a header changes the build too
    {"flags": ["-O2", "-fopenmp"]},
    {"capability": "AVX512"},
    {"machine": "aarch64"},
])
def test_the_key_changes_with_every_input(change: dict) -> None:
    assert kernels.build_key(**{**KEY, **change}) != kernels.build_key(**KEY)


def test_this_environments_build_lives_under_its_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    build = kernels.current_build()
    assert build.folder == tmp_path / build.key and build.library.parent == build.folder
    assert build.state() == "not built" and build.error() is None
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert kernels.current_build().folder == tmp_path / "press" / "kernels" / build.key


@pytest.mark.parametrize("switch,system,machine,on,reason", [
    ("", "linux", "x86_64", True, "on by default"),
    ("0", "linux", "x86_64", False, "PRESS_KERNELS=0"),
    ("", "darwin", "arm64", False, "macOS"),
    ("", "darwin", "x86_64", False, "-fopenmp"),
    ("", "linux", "aarch64", False, "aarch64"),
    ("", "win32", "AMD64", False, "win32"),
    ("1", "darwin", "arm64", True, "PRESS_KERNELS=1"),
    ("yes", "linux", "aarch64", False, "x86-64 only"),        # not 0 or 1: the platform's default
])
def test_where_they_are_on_and_why(switch: str, system: str, machine: str, on: bool, reason: str) -> None:
    got_on, got_reason = kernels.enabled({"PRESS_KERNELS": switch}, system, machine)
    assert got_on is on and reason in got_reason


def test_status_names_why_they_are_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.delenv("PRESS_KERNELS", raising=False)
    monkeypatch.setattr(kernels.platform, "machine", lambda: "aarch64")
    lines = status_lines()
    assert lines[0].startswith("CPU kernels:  disabled (off by default on aarch64")
    assert any(line.startswith("cache folder: " + str(tmp_path)) for line in lines)
    assert "state:        not built" in lines


@pytest.fixture
def failing_loader(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """torch's loader fails like a missing compiler; a fresh cache and a fresh process state.
    Yields the list of the loader's calls."""
    from torch.utils import cpp_extension

    calls: list[str] = []

    def no_compiler(name: str, **kwargs) -> None:
        calls.append(name)
        raise RuntimeError("Error building extension 'x': c++: command not found\nsecond line")

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setenv("PRESS_KERNELS", "1")
    monkeypatch.setattr(kernels, "_state", {})
    monkeypatch.setattr(cpp_extension, "load", no_compiler)
    return calls


def test_a_failed_build_is_remembered_and_not_retried(failing_loader: list[str]) -> None:
    with pytest.warns(RuntimeWarning, match="could not be built") as first:
        assert not kernels.available()
    assert len(first) == 1 and len(failing_loader) == 1
    build = kernels.current_build()
    assert build.state() == "failed" and "command not found" in build.error()

    kernels._state.clear()                            # as a new process would start
    with pytest.warns(RuntimeWarning, match="failed to build before.*--force") as second:
        assert not kernels.available()
        with warnings.catch_warnings():
            warnings.simplefilter("error")            # decided once per process: no further warning
            assert not kernels.available()
    assert len(second) == 1 and len(failing_loader) == 1   # no new attempt

    lines = status_lines()
    assert "state:        failed (`press kernels build --force` tries again)" in lines
    assert "  second line" in lines


def test_build_force_retries_a_remembered_failure(failing_loader: list[str], capsys) -> None:
    from press.commands import kernels as command

    args = argparse.Namespace(kernels_command="build", force=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert kernels.build() is False
    assert command.run(args) == 1 and len(failing_loader) == 1          # remembered: not tried
    assert "state:        failed" in capsys.readouterr().out
    assert command.run(argparse.Namespace(kernels_command="build", force=True)) == 1
    assert len(failing_loader) == 2                                      # tried again


def _press(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "press.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)


def test_press_kernels_status_runs(tmp_path: Path) -> None:
    out = _press("kernels", "status", TORCH_EXTENSIONS_DIR=str(tmp_path), PRESS_KERNELS="0")
    assert out.returncode == 0, out.stderr
    assert "CPU kernels:  disabled (PRESS_KERNELS=0)" in out.stdout
    assert f"cache folder: {tmp_path}" in out.stdout and "build key:    press_kernels_" in out.stdout


@pytest.mark.skipif(shutil.which("c++") is None or not kernels.enabled()[0],
                    reason="no C++ compiler, or the kernels are off here")
def test_press_kernels_build_builds_into_the_cache_and_status_says_built(tmp_path: Path) -> None:
    """A real build (46 s on one busy core), in a fresh process: a second copy of the library in this
    one would register its operators twice. Then a second process finds it built."""
    out = _press("kernels", "build", TORCH_EXTENSIONS_DIR=str(tmp_path), PRESS_KERNELS="1")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "state:        built" in out.stdout
    folder = next(tmp_path.iterdir())
    assert (folder / f"{folder.name}.so").exists()
    status = _press("kernels", "status", TORCH_EXTENSIONS_DIR=str(tmp_path), PRESS_KERNELS="1")
    assert f"cache folder: {folder}" in status.stdout and "state:        built" in status.stdout


def test_serve_loads_the_kernels_before_it_takes_a_request(monkeypatch: pytest.MonkeyPatch, tiny_checkpoint,
                                                            capsys) -> None:
    pytest.importorskip("gradio")
    import press.web.app
    from press.cli import main

    order: list[str] = []
    monkeypatch.setattr(kernels, "available", lambda: order.append("kernels") or False)
    monkeypatch.setattr(press.web.app, "serve", lambda *args, **kwargs: order.append("serve"))
    monkeypatch.setattr("press.cli.tune_process", lambda: None)    # this test process keeps its settings
    assert main(["serve", str(tiny_checkpoint), "--device", "cpu"]) == 0
    assert order == ["kernels", "serve"]
    assert "CPU kernels off (press kernels status says why)" in capsys.readouterr().out
