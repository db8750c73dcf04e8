import json

import pytest

from press.cli import main


@pytest.fixture
def ckpt(tiny_checkpoint):
    return tiny_checkpoint


def test_demo_writes_sources_reports_figures_and_table(ckpt, tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--model", str(ckpt), "--out", str(out), "--mixtures", "1", "--targets", "10,20"]) == 0
    table = capsys.readouterr().out
    assert "10dB" in table and "20dB" in table and "SI-SNRi" in table
    names = {p.name for p in out.iterdir()}
    assert {"mix1_real.wav", "mix1_real_ref1.wav", "mix1_real_t10dB_s2.wav", "mix1_real_exits.png",
            "mix1_real_report.json"} <= names
    report = json.loads((out / "mix1_real_report.json").read_text())
    assert set(report["reports"]) == {"10dB", "20dB"}
    assert all(1 <= b["exit"] <= 3 for b in report["reports"]["10dB"]["blocks"])
    assert (out / "mix1_real_exits.png").read_bytes()[:4] == b"\x89PNG"


def test_demo_refuses_bad_options(ckpt, tmp_path, capsys):
    assert main(["demo", "--model", str(ckpt), "--out", str(tmp_path), "--mixtures", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err
