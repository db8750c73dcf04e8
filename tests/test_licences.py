"""The wheel's data states its terms: every licence in the built-in manifests is in LICENSES.md.

A manifest row whose source or licence the file does not list (a new package rendered into the
corpus, a licence changed upstream) fails here, as does any non-commercial row.
"""

from __future__ import annotations

import csv
import re
import tomllib
from pathlib import Path

import pytest

import press

BUILTIN = Path(press.__file__).parent / "data" / "builtin"
LICENSES = BUILTIN / "LICENSES.md"
REPO = Path(__file__).resolve().parents[1]


def rows(name: str) -> list[dict[str, str]]:
    with open(BUILTIN / name, newline="") as f:
        return list(csv.DictReader(f))


def table(section: str) -> dict[str, str]:
    """{source name: licence cell} of the table under the heading that starts with `section`."""
    text = LICENSES.read_text()
    body = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    out = {}
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`"):
            continue
        for name in re.findall(r"`([^`]+)`", cells[0]):
            # `asterisk-core-sounds-{en,fr}-g722` names one package per brace alternative
            brace = re.fullmatch(r"(.*)\{([^}]*)\}(.*)", name)
            names = [brace[1] + alt + brace[3] for alt in brace[2].split(",")] if brace else [name]
            out.update({n: cells[1] for n in names})
    return out


def test_every_speech_source_and_licence_is_listed():
    listed = table("Speech")
    for row in rows("manifest.csv"):
        assert row["engine"] in listed, f"{row['engine']} ({row['id']}) is not in LICENSES.md"
        name = row["licence"].split()[0]       # "CC-BY-SA-3.0 (recorded by ...)" -> "CC-BY-SA-3.0"
        assert name in listed[row["engine"]], (row["id"], row["licence"], listed[row["engine"]])


@pytest.mark.parametrize("name", ["noisy/speech.csv", "noisy/noise.csv"])
def test_every_noisy_package_and_licence_is_listed(name):
    listed = table("Recorded-noise slice")
    for row in rows(name):
        assert row["package"] in listed, f"{row['package']} ({row['id']}) is not in LICENSES.md"
        assert row["licence"].replace("-", " ").lower() in listed[row["package"]].replace("-", " ").lower(), (
            row["id"], row["licence"], listed[row["package"]])


def test_nothing_non_commercial_ships():
    for name in ["manifest.csv", "noisy/speech.csv", "noisy/noise.csv"]:
        for row in rows(name):
            assert "non-commercial" not in row["licence"].lower(), (name, row["id"], row["licence"])
            assert row.get("engine") != "mbrola", (name, row["id"])


def test_the_wheel_carries_the_licence_files():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    data = project["tool"]["setuptools"]["package-data"]["press"]
    assert "data/builtin/**/*" in data    # LICENSES.md ships beside the audio
    assert "LICENSE" in project["tool"]["setuptools"]["license-files"]
    assert "MIT" in (REPO / "LICENSE").read_text()
