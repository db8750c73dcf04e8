"""Which recorded noise the Debian archive holds, of what kind, under which licence, in which split.

The catalogue names folders (or zip archives) of game and music packages and gives each file a kind
by the first rule its path matches: ambience (weather, water, animals, rooms), machines (engines,
vehicles, industry), impulses (impacts, weapons, doors, footsteps, drum hits) and music. A noise
corpus must hold no speech: voices, announcers, taunts, narration, crowds and singing are screened
out by path (`SPEECH`), and so are whole folders of unit voices. Splits are drawn per source file from
a hash of its path, so no file lends audio to two splits. The packages that PRESS is evaluated on
are refused by name (`RESERVED`), and so is `warzone2100-music` (the same game as a reserved package).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path

from press.corpus.debian import audio_files, licence_of, require_root

NOISE_KINDS = ("ambience", "machines", "impulses", "music")
# Never read: held out for evaluating PRESS (speech and noise), or the same game's audio as one that is.
RESERVED = (
    "asterisk-prompt-fr-armelle", "asterisk-prompt-es-co", "asterisk-prompt-it-menardi",
    "warzone2100-data", "warzone2100-music", "tuxpaint-stamps-default", "pyannote.audio",
)
# Paths that hold (or may hold) voices: unit acknowledgements, announcers, taunts, narration, cries,
# crowds, singing, radio chatter and cockpit call-outs. Cows: megaglest's duplicate a reserved file.
SPEECH = re.compile(
    r"voice|vox|announc|taunt|speech|vocal|choir|singer|song|talk|dialog|narrat|tutorial|/player|civilian|"
    r"soldier|alien|human|scream|yell|shout|cheer|crowd|laugh|cough|burp|kiss|yoohoo|ugh\.|wilhelm|wee\.|"
    r"robot|phone|radio|_pa\.|atis|tcas|mk-viii|countdown|goal_scored|lobby_chat|cow|\bmoo",
    re.IGNORECASE,
)
SPLIT_SHARES = (("train", 80), ("val", 10), ("test", 10))  # per cent of source files


@dataclass(frozen=True)
class Source:
    """One folder or archive of a package, and the kind of each file in it: `rules` are (regex, kind)
    tried in order on the path below the location, `kind` the default; kind None leaves a file out."""

    package: str
    location: str
    kind: str | None
    rules: tuple[tuple[str, str | None], ...] = ()
    licence: str = ""  # for packages without a machine-readable copyright file


_WEATHER = (r"rain|wind|water|river|wave|thunder|bird|cricket|jungle|forest|night|day|ambi|sea|storm|fire", "ambience")
_ENGINES = (r"engine|motor|jet|rotor|helicopter|prop|turbine|car_|airplane|spaceship|tractor|machine|fan\.|hum", "machines")

SOURCES: tuple[Source, ...] = (
    Source("ufoai-sound", "usr/share/games/ufoai/base/0snd.pk3", None, (
        (r"^sound/ambience/", "ambience"), (r"^sound/(ugv|geoscape)/", "machines"),
        (r"^sound/(weapons|impact|doors|footsteps|misc)/", "impulses"))),
    Source("ufoai-music", "usr/share/games/ufoai/base/0music.pk3", "music"),
    Source("0ad-data", "usr/share/games/0ad/mods/public/public.zip", None, (
        (r"^audio/ambient/", "ambience"), (r"^audio/actor/fauna/", "ambience"),
        (r"^audio/actor/(ship|mounted|gate)/", "machines"),
        (r"^audio/(attack|resource)/", "impulses"), (r"^audio/actor/singlesteps/", "impulses"),
        (r"^audio/music/", "music"))),
    Source("megaglest-data", "usr/share/games/megaglest/tilesets", "ambience"),
    Source("redeclipse-data", "usr/share/games/redeclipse/data/sounds", None, (
        (r"^ambience/", "ambience"), (r"^(sfx|weapons)/", "impulses"), (r"^music/", "music"))),
    Source("supertuxkart-data", "usr/share/games/supertuxkart/data/sfx", "impulses", (_WEATHER, _ENGINES)),
    Source("supertuxkart-data", "usr/share/games/supertuxkart/data/music", "music"),
    Source("supertuxkart-data", "usr/share/games/supertuxkart/data/tracks", "ambience", (
        (r"intro|cutscene|theme|remix|battle", None), _ENGINES)),
    Source("lincity-ng-data", "usr/share/games/lincity-ng/sounds", "machines"),
    Source("lincity-ng-data", "usr/share/games/lincity-ng/music", "music"),
    Source("scorched3d-data", "usr/share/games/scorched3d/data/globalmods", "impulses", (
        (r"/music/", "music"), (r"/movement/", "machines"))),
    Source("flightgear-data-base", "usr/share/games/flightgear/Sounds", "machines", (
        (r"rain|wind|thunder|wave", "ambience"), (r"click|beep|gear|flaps|door|crash|squeal", "impulses"))),
    Source("searchandrescue-data", "usr/share/games/searchandrescue/sounds", "machines", (
        (r"thunder|splash", "ambience"), (r"crash|thud|door|flap|gear|land_|screenshot|flir", "impulses")),
        licence="GPL-2+"),
    Source("searchandrescue-data", "usr/share/games/searchandrescue/music", "music", licence="GPL-2+"),
    Source("sonic-pi-samples", "usr/share/sonic-pi/samples", None, (
        (r"^(ambi_|vinyl_hiss)", "ambience"), (r"^(loop_|bass_|guit_|glitch_bass)", "music"),
        (r"^(bd_|drum_|elec_|perc_|sn_|tabla_|glitch_perc|misc_|vinyl_)", "impulses"))),
    Source("endless-sky-data", "usr/share/games/endless-sky/sounds", "impulses", (
        (r"^ambient/", "ambience"), (r"afterburner|hyperdrive|jump drive|engine|scan|beam|~", "machines"))),
    Source("hydrogen-drumkits", "usr/share/hydrogen/data/drumkits", "impulses"),
    Source("planetblupi-music-ogg", "usr/share/planetblupi/music", "music"),
    Source("wesnoth-1.16-music", "usr/share/games/wesnoth/1.16/data/core/music", "music", licence="GPL-2+"),
    Source("widelands-data", "usr/share/games/widelands/data/music", "music"),
    Source("widelands-data", "usr/share/games/widelands/data/sound", "impulses", (
        (r"^animals/|wind|water|sea|bird", "ambience"), (r"click|create_construction", None))),
    Source("hedgewars-data", "usr/share/games/hedgewars/Data/Music", "music"),
    Source("hedgewars-data", "usr/share/games/hedgewars/Data/Sounds", "impulses", (
        (r"^[0-9][A-G]\.ogg", None),)),
    Source("nexuiz-data", "usr/share/games/nexuiz/data/data.pk3", None, (
        (r"^sound/(ambient|weather)/", "ambience"), (r"^sound/(weapons|misc|plats|porto)/", "impulses")),
        licence="GPL-2+"),
    Source("asterisk-moh-opsound-g722", "usr/share/asterisk/moh", "music", licence="CC-BY-SA-3.0"),
)


@dataclass(frozen=True)
class NoiseFile:
    """One planned noise file: where it is (relative to the root), its package, kind, licence and split."""

    ref: str
    package: str
    kind: str
    licence: str
    split: str


def split_of(key: str) -> str:
    """train / val / test for one source file, from a stable hash of its reference."""
    draw = zlib.crc32(key.encode()) % 100
    for split, share in SPLIT_SHARES:
        if draw < share:
            return split
        draw -= share
    raise AssertionError("SPLIT_SHARES must add up to 100")


def kind_of(source: Source, rel: str) -> str | None:
    """The kind of the file at `rel` (its path below the source's location), None to leave it out."""
    if SPEECH.search("/" + rel):
        return None
    for pattern, kind in source.rules:
        if re.search(pattern, rel, re.IGNORECASE):
            return kind
    return source.kind


def plan_noise(root: str | Path, packages: set[str] | None = None) -> list[NoiseFile]:
    """Every catalogued noise file present under `root` (of `packages` only, when given), sorted by
    reference. Packages that are not there are skipped; a root with none of them is an error."""
    root = Path(root)
    sources = [s for s in SOURCES if packages is None or s.package in packages]
    if reserved := sorted({s.package for s in sources} & set(RESERVED)):
        raise AssertionError(f"the noise catalogue names reserved packages: {reserved}")
    plans = []
    for source in sources:
        for ref in audio_files(root, source.location):
            rel = ref.split("!", 1)[1] if "!" in ref else ref[len(source.location.lstrip("/")) + 1 :]
            kind = kind_of(source, rel)
            if kind is None:
                continue
            licence = licence_of(root, source.package, ref, source.licence or "see the package's copyright file")
            plans.append(NoiseFile(ref, source.package, kind, licence, split_of(ref)))
    if not plans:
        require_root(root, "recorded-noise", sorted({s.package for s in sources}))
    return sorted(plans, key=lambda p: p.ref)
