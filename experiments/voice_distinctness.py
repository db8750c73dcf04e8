"""Are transformed voices distinct speakers? Speaker-embedding similarities and pitch/formant statistics.

On the recorded training talkers of the shipped corpus, each talker's utterances are analysed once
(press.corpus.transform.analyse) and spoken again by `--voices` voices from draw_shifts, plus the
identity resynthesis (what the vocoder alone changes). Reported:

(a) cosine similarity of resemblyzer speaker embeddings (its shipped GE2E encoder, 16 kHz) between
    utterances, always of *different* utterances so that shared words do not count: same talker;
    talker vs its own identity resynthesis; talker vs its transformed voices; transformed voices of
    one talker against each other; one transformed voice against itself; different real talkers.
    Also nearest-centroid identification (leave-one-out): how often a transformed voice's utterance
    is closest to its own voice's mean embedding, and how often to its source's.
(b) per voice: the shift and its distance from the source (VoiceShift.distance), median F0 and
    spectral centroid measured on the output, the envelope scaling relative to the source (a fresh
    WORLD analysis of the output), and the mean embedding similarity to the source talker.
(c) the CPU cost of analysis and of each synthesised voice, in seconds per second of audio.
(d) with `--probe`: one axis of VoiceShift at a time (F0, formants, intonation range, spectral tilt)
    at several sizes, and each one's mean cosine to its source talker;
    where it crosses the cosine of one unit of F0 (x1.25) is what sets that axis's DISTINCT_* unit.

resemblyzer is not a PRESS dependency (it pulls librosa, numba and webrtcvad). Install it apart:
    python -m venv --system-site-packages voices-venv
    voices-venv/bin/pip install resemblyzer "setuptools<81"   # webrtcvad imports pkg_resources
Run: PYTHONPATH=. voices-venv/bin/python experiments/voice_distinctness.py [--voices 6 --utterances 4]
Without resemblyzer it reports (b) and (c) only and says so.
Conclusion: docs/experiments.md, "Transformed voices as speakers"; the tables in docs/data.md.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections import defaultdict

import numpy as np
import scipy.signal

from press.corpus.transform import IDENTITY, VoiceShift, WorldAnalysis, analyse, draw_shifts, synthesise
from press.data.builtin import CORPUS_DIR, load_manifest
from press.io.audio import load_audio, resample

SR = 8000


def talkers(n_utterances: int, min_seconds: float) -> dict[str, list[np.ndarray]]:
    """Recorded training talkers -> up to n utterances of at least min_seconds (talkers with one file keep it)."""
    by_speaker: dict[str, list[dict]] = defaultdict(list)
    for row in load_manifest():
        if row["kind"] == "real" and row["split"] == "train":
            by_speaker[row["speaker"]].append(row)
    out = {}
    for speaker, rows in sorted(by_speaker.items()):
        long = [r for r in rows if r["seconds"] >= min_seconds] or rows
        out[speaker] = [load_audio(CORPUS_DIR / r["path"])[0] for r in long[:n_utterances]]
    return out


def centroid(x: np.ndarray) -> float:
    f, p = scipy.signal.welch(x, SR, nperseg=512)
    return float((f * p).sum() / p.sum())


def envelope_warp(source: list[WorldAnalysis], voice: list[WorldAnalysis]) -> float:
    """Frequency scaling r that best maps the source's mean voiced log envelope onto the voice's (250-3000 Hz)."""
    n_bins = source[0].sp.shape[1]
    f = np.arange(n_bins) * source[0].world_rate / 2 / (n_bins - 1)
    ref = np.concatenate([np.log(a.sp[a.f0 > 0]) for a in source]).mean(0)
    out = np.concatenate([np.log(a.sp[a.f0 > 0]) for a in voice]).mean(0)
    band = (f >= 250) & (f <= 3000)
    ratios = np.exp(np.linspace(-0.3, 0.3, 241))  # 0.74..1.35, steps of 0.25 %, 1 on the grid
    errors = []
    for r in ratios:
        warped = np.interp(f[band] / r, f, ref)
        errors.append(np.mean(((out[band] - out[band].mean()) - (warped - warped.mean())) ** 2))
    return float(ratios[int(np.argmin(errors))])


def load_encoder():
    """resemblyzer's encoder and preprocessing, or None with the install line printed."""
    try:
        from resemblyzer import VoiceEncoder, preprocess_wav
    except ImportError as e:
        print(f"resemblyzer not importable ({e}); reporting pitch/formant statistics only. Install it apart:\n"
              "  python -m venv --system-site-packages voices-venv\n"
              "  voices-venv/bin/pip install resemblyzer 'setuptools<81'\n"
              "  PYTHONPATH=. voices-venv/bin/python experiments/voice_distinctness.py\n")
        return None
    encoder = VoiceEncoder("cpu", verbose=False)
    return lambda x: encoder.embed_utterance(preprocess_wav(resample(x, SR, 16000), source_sr=16000))


def similarity_table(emb: dict[tuple[str, str], list[np.ndarray]]) -> None:
    """Mean (min-max) cosine similarity per comparison class; `emb[(talker, voice)]` lists utterance embeddings."""
    classes: dict[str, list[float]] = defaultdict(list)
    keys = sorted(emb)
    for (t1, v1), (t2, v2) in itertools.combinations_with_replacement(keys, 2):
        for i, e1 in enumerate(emb[(t1, v1)]):
            for j, e2 in enumerate(emb[(t2, v2)]):
                if ((t1, v1) == (t2, v2) and j <= i) or (i == j and t1 == t2):
                    continue  # each pair once; never the same utterance (shared words) within a talker
                if t1 != t2:
                    name = "different real talkers" if v1 == v2 == "real" else None
                elif v1 == v2:
                    name = {"real": "same talker", "identity": None}.get(v1, "same transformed voice")
                elif "real" in (v1, v2):
                    name = "talker vs its identity resynthesis" if "identity" in (v1, v2) else "talker vs its transformed voices"
                else:
                    name = None if "identity" in (v1, v2) else "transformed voices of one talker vs each other"
                if name:
                    classes[name].append(float(np.dot(e1, e2)))
    print("| comparison (different utterances) | pairs | cosine mean | min | max |\n|---|---|---|---|---|")
    for name in ("same talker", "talker vs its identity resynthesis", "same transformed voice",
                 "talker vs its transformed voices", "transformed voices of one talker vs each other",
                 "different real talkers"):
        v = np.array(classes[name])
        print(f"| {name} | {v.size} | {v.mean():.3f} | {v.min():.3f} | {v.max():.3f} |")


def source_similarity(emb: dict[tuple[str, str], list[np.ndarray]], talker: str, voice: str) -> str:
    """Mean cosine similarity of a voice's utterances to its source talker's other utterances."""
    sims = [float(np.dot(e, r)) for i, e in enumerate(emb[(talker, voice)])
            for j, r in enumerate(emb[(talker, "real")]) if i != j]
    return f"{np.mean(sims):.3f}"


def identification(emb: dict[tuple[str, str], list[np.ndarray]]) -> None:
    """Leave-one-out nearest-centroid identification of the transformed voices' utterances.

    Candidates are every voice with two or more utterances, the source recordings and their identity
    resynthesis included, so that a voice too close to its source is caught as such even though the
    vocoder leaves a mark of its own.
    """
    voices = {k: v for k, v in emb.items() if len(v) >= 2}
    hits = total = taken_for_source = 0
    for key, utts in voices.items():
        if key[1] in ("real", "identity"):
            continue
        for i, e in enumerate(utts):
            best, best_sim = key, -2.0
            for other, o_utts in voices.items():
                c = np.mean([u for j, u in enumerate(o_utts) if not (other == key and j == i)], axis=0)
                sim = float(np.dot(e, c / np.linalg.norm(c)))
                if sim > best_sim:
                    best, best_sim = other, sim
            hits += best == key
            taken_for_source += best[0] == key[0] and best[1] in ("real", "identity")
            total += 1
    print(f"\nNearest-centroid identification (leave-one-out) of the transformed voices' {total} utterances among "
          f"{len(voices)} voices (recorded talkers, their resynthesis, transformed voices): {hits / total:.1%} "
          f"correct; {taken_for_source} taken for their source (recording or its resynthesis).")


# (d): the axes of VoiceShift, each alone at growing sizes. F0 x1.25 and formants x1.08 are one unit each.
PROBES = {
    "f0": [VoiceShift(r, 1.0) for r in (1.25, 1 / 1.25)],
    "formant": [VoiceShift(1.0, r) for r in (1.08, 1 / 1.08)],
    "f0_range": [VoiceShift(1.0, 1.0, f0_range=r) for r in (0.5, 0.7, 1.4, 2.0)],
    "tilt_db": [VoiceShift(1.0, 1.0, tilt_db=t) for t in (-6.0, -3.0, 3.0, 6.0)],
}


def probe(data: dict[str, list[np.ndarray]], embed) -> None:
    """(d): mean cosine to the source talker (other utterances) of single-axis shifts, over the talkers with
    several utterances; the identity resynthesis is the floor any shift starts from."""
    sims: dict[VoiceShift, list[float]] = defaultdict(list)
    for utts in data.values():
        if len(utts) < 2:
            continue
        analyses = [analyse(x, SR) for x in utts]
        real = [embed(x) for x in utts]
        for shift in [IDENTITY] + [s for shifts in PROBES.values() for s in shifts]:
            out = [embed(synthesise(a, shift)) for a in analyses]
            sims[shift] += [float(np.dot(e, r)) for i, e in enumerate(out) for j, r in enumerate(real) if i != j]
    print("\n| axis | shift | cosine to source (mean of talkers' other utterances) |\n|---|---|---|")
    print(f"| none | identity resynthesis | {np.mean(sims[IDENTITY]):.3f} |")
    for axis, shifts in PROBES.items():
        for s in shifts:
            value = getattr(s, {"f0": "f0_ratio", "formant": "formant_ratio"}.get(axis, axis))
            print(f"| {axis} | {value:.3g} | {np.mean(sims[s]):.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voices", type=int, default=6, help="transformed voices per talker")
    parser.add_argument("--utterances", type=int, default=4, help="utterances per talker")
    parser.add_argument("--min-seconds", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probe", action="store_true", help="only (d): each VoiceShift axis alone (needs resemblyzer)")
    args = parser.parse_args()
    embed = load_encoder()

    data = talkers(args.utterances, args.min_seconds)
    if args.probe:
        if embed is None:
            raise SystemExit("--probe needs resemblyzer (see above)")
        probe(data, embed)
        return
    cost = defaultdict(float)
    audio_s = {"analysis": 0.0, "synthesis": 0.0, "dio": 0.0}
    emb: dict[tuple[str, str], list[np.ndarray]] = defaultdict(list)
    rows = []
    for t_index, (talker, utts) in enumerate(data.items()):
        t0 = time.process_time()
        analyses = [analyse(x, SR) for x in utts]
        cost["analysis"] += time.process_time() - t0
        audio_s["analysis"] += sum(x.size for x in utts) / SR
        source_f0 = float(np.median(np.concatenate([a.f0[a.f0 > 0] for a in analyses])))
        many = len(utts) >= 2
        shifts = draw_shifts(source_f0, args.voices, seed=args.seed + t_index) if many else []
        voices: dict[str, tuple[VoiceShift | None, list[np.ndarray]]] = {"real": (None, utts)}
        for name, shift in [("identity", IDENTITY)] * many + [(f"v{k}", s) for k, s in enumerate(shifts)]:
            t0 = time.process_time()
            voices[name] = (shift, [synthesise(a, shift) for a in analyses])
            cost["synthesis"] += time.process_time() - t0
            audio_s["synthesis"] += sum(x.size for x in utts) / SR
        t0 = time.process_time()
        measured = {name: [analyse(y, SR, f0_method="dio") for y in ys] for name, (_, ys) in voices.items()}
        cost["dio"] += time.process_time() - t0
        audio_s["dio"] += len(voices) * sum(x.size for x in utts) / SR
        for name, (shift, ys) in voices.items():
            f0 = np.concatenate([a.f0[a.f0 > 0] for a in measured[name]])
            rows.append((talker, name, shift, float(np.median(f0)), float(np.mean([centroid(y) for y in ys])),
                         envelope_warp(measured["real"], measured[name])))
            if embed is not None:
                emb[(talker, name)] = [embed(y) for y in ys]

    print(f"Talkers: {len(data)} recorded training talkers, {args.utterances} utterances of >= {args.min_seconds} s "
          f"where available, {args.voices} transformed voices each (seed {args.seed}).\n")
    if embed is not None:
        similarity_table(emb)
        identification(emb)
    print("\n| talker | voice | f0 ratio | formant ratio | distance | median F0 (Hz) | centroid (Hz) "
          "| envelope scaling | cosine to source |")
    print("|---|---|---|---|---|---|---|---|---|")
    for talker, name, shift, f0, cen, warp in rows:
        ratios = f"{shift.f0_ratio:.2f} | {shift.formant_ratio:.3f} | {shift.distance(IDENTITY):.1f}" if shift else "— | — | —"
        cos = source_similarity(emb, talker, name) if emb and name != "real" else "—"
        print(f"| {talker.removeprefix('real-')} | {name} | {ratios} | {f0:.0f} | {cen:.0f} | {warp:.3f} | {cos} |")
    print("\nCPU seconds per second of 8 kHz audio: "
          f"analysis (harvest) {cost['analysis'] / audio_s['analysis']:.3f}, "
          f"analysis (dio) {cost['dio'] / audio_s['dio']:.3f}, "
          f"synthesis per voice {cost['synthesis'] / audio_s['synthesis']:.3f}")


if __name__ == "__main__":
    main()
