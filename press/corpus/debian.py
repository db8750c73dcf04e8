"""Reading audio and licences out of Debian packages, installed or extracted under a root folder.

The recorded corpora PRESS renders (press.corpus.noise_catalogue, press.corpus.wideband_catalogue) name
their files relative to a filesystem root: `/` for installed packages, or a folder that holds
`dpkg-deb -x` of each package, which needs neither root nor the games' binaries. Some games keep
their sounds inside a zip archive (`.pk3`, `.zip`); such a file is named `ARCHIVE!MEMBER`. Asterisk's
wideband prompts are raw G.722 bitstreams (`.g722`), decoded with the `G722` package.
"""

from __future__ import annotations

import fnmatch
import functools
import io
import re
import zipfile
from pathlib import Path

import numpy as np
import soundfile as sf

from press.errors import PressError

AUDIO_SUFFIXES = (".ogg", ".wav", ".flac", ".g722")
G722_RATE = 16000  # Asterisk's .g722 prompts: 64 kbit/s G.722, 16 kHz wideband


def audio_files(root: Path, location: str) -> list[str]:
    """Every audio file under `location` (a folder or a zip archive below root), as references
    relative to root, sorted. A missing location gives an empty list."""
    path = root / location.lstrip("/")
    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            members = [m for m in zf.namelist() if m.lower().endswith(AUDIO_SUFFIXES)]
        return [f"{location.lstrip('/')}!{m}" for m in sorted(members)]
    if not path.is_dir():
        return []
    return sorted(str(f.relative_to(root)) for f in path.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES and f.is_file())


@functools.lru_cache(maxsize=8)
def _archive(path: str) -> zipfile.ZipFile:
    return zipfile.ZipFile(path)


def read_audio(root: Path, ref: str) -> tuple[np.ndarray, int]:
    """(samples, rate) of one file: float32, mono (channels averaged). Raises PressError naming the
    file when it cannot be decoded."""
    try:
        if "!" in ref:
            archive, member = ref.split("!", 1)
            data = _archive(str(root / archive)).read(member)
            suffix = Path(member).suffix.lower()
        else:
            data = (root / ref).read_bytes()
            suffix = Path(ref).suffix.lower()
        if suffix == ".g722":
            x, sr = _decode_g722(data), G722_RATE
        else:
            x, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
            x = x.mean(axis=1)
    except (OSError, RuntimeError, sf.LibsndfileError, zipfile.BadZipFile, KeyError) as err:
        raise PressError(f"{root / ref}: cannot decode ({err})") from err
    if x.size == 0 or not np.isfinite(x).all():
        raise PressError(f"{root / ref}: empty or non-finite audio")
    return np.ascontiguousarray(x, dtype=np.float32), int(sr)


def seconds_of(root: Path, ref: str) -> float:
    """A file's duration from its header (G.722: 8 bits a sample pair, so bytes / 8000), without decoding."""
    try:
        if "!" in ref:
            archive, member = ref.split("!", 1)
            data = _archive(str(root / archive)).read(member)
        elif ref.lower().endswith(".g722"):
            return (root / ref).stat().st_size / 8000.0
        else:
            info = sf.info(str(root / ref))
            return info.frames / info.samplerate
        if member.lower().endswith(".g722"):
            return len(data) / 8000.0
        info = sf.info(io.BytesIO(data))
        return info.frames / info.samplerate
    except (OSError, RuntimeError, sf.LibsndfileError, zipfile.BadZipFile, KeyError) as err:
        raise PressError(f"{root / ref}: cannot read its header ({err})") from err


def _decode_g722(data: bytes) -> np.ndarray:
    try:
        import G722
    except ImportError as err:
        raise PressError("decoding Asterisk's .g722 prompts needs the G722 package: pip install g722") from err
    return np.asarray(G722.G722(G722_RATE, 64000).decode(data), dtype=np.float32) / 32768.0


def _stanzas(text: str) -> list[tuple[list[str], str]]:
    """(file patterns, licence) of each `Files:` stanza of a machine-readable copyright file."""
    out = []
    for block in re.split(r"\n\s*\n", text):
        files = re.search(r"^Files:(.*(?:\n[ \t]+.*)*)", block, re.MULTILINE)
        licence = re.search(r"^License:[ \t]*(\S.*)$", block, re.MULTILINE)
        if files and licence:
            out.append((files.group(1).split(), licence.group(1).strip()))
    return out


@functools.cache
def _copyright(root: Path, package: str) -> list[tuple[list[str], str]]:
    path = root / "usr/share/doc" / package / "copyright"
    return _stanzas(path.read_text(errors="replace")) if path.exists() else []


def _pattern_tails(pattern: str) -> list[str]:
    """A DEP-5 pattern names a path in the source tree (`base/sound/ambience/*`), which the package
    installs under another prefix, sometimes inside an archive: its tails that keep a folder
    (`sound/ambience/*`, `ambience/*`) are matched too, never a bare wildcard (`debian/*` -> `*`); an
    archive that the package installs unpacked (`drumkits/X.h2drumkit`) matches what is in it."""
    if (packed := re.sub(r"\.(h2drumkit|tar\.gz|tgz|zip)$", "", pattern)) != pattern:
        pattern = packed + "/*"  # an archive in the source tree that the package installs unpacked
    parts = pattern.split("/")
    return [pattern] + ["/".join(parts[k:]) for k in range(1, len(parts) - 1)]


def licence_of(root: Path, package: str, ref: str, fallback: str) -> str:
    """The licence the package's machine-readable copyright file gives `ref`: the last `Files:` stanza
    with a pattern that matches a tail of the file's path (DEP-5: later stanzas win; `*` crosses
    folders), else its `Files: *` stanza, else `fallback` (packages without a DEP-5 file)."""
    parts = ref.replace("!", "/").split("/")
    tails = ["/".join(parts[k:]) for k in range(len(parts))]
    found = None
    for patterns, licence in _copyright(root, package):
        if "*" in patterns:
            found = found or licence
        if any(fnmatch.fnmatchcase(t, q) for p in patterns if p != "*" for q in _pattern_tails(p) for t in tails):
            found = licence
    return found or fallback


def require_root(root: Path, what: str, packages: list[str]) -> None:
    """Refuse a root that holds none of a catalogue's files, naming the packages to install or extract."""
    raise PressError(
        f"{root}: none of the {what} packages' files found; install them "
        f"(apt-get install {' '.join(packages)}) or extract them there "
        f"(apt-get download PKG && dpkg-deb -x PKG_*.deb {root})"
    )
