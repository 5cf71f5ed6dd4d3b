"""The cross-collection suite (``genrefusion benchmark cross``): music a model has never seen.

Each entry trains a model on one collection (every track of it: ``protocol.refit``; its own protocol's test
figure is the *in-collection* one) and tests it on another, through the audio path ``genrefusion predict``
takes, on the labels the two share. With the two collections of the shared data that have audio, GTZAN and
Emotify, leaving one out and training on the rest is these two directions; the summary pivots each model's
two entries into that leave-one-collection-out table. The shipped models' recipes run here too, each with the
held-out collection taken out of its training data, and at several patch counts (the speed/accuracy curve).
"""

from __future__ import annotations

import copy
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genrefusion.benchmarks.suites import EXTRACT_WORKERS, MEASURES, Entry, Headline, Suite, _recipe, register_suite


@dataclass(frozen=True)
class Direction:
    key: str  # the held-out collection
    source: str  # what it is called in labels
    target: str
    target_path: str  # relative to the data root
    audio_source: dict  # data section of a model trained on the source's audio
    protocol: dict  # the source's in-collection protocol
    split: dict  # and its split settings


#: the two directions; GTZAN as a source of audio is its 100 clips (its 999 images are a source of their own, below)
DIRECTIONS = (
    # GTZAN's clips: reggae's ten are all Bob Marley's, so artist-grouped folds would train a fold without reggae;
    # their in-collection folds are ungrouped (leaky, as the suite's note says), as the shipped recipes' are
    Direction("emotify", "GTZAN", "Emotify", "emotify", {"path": "gtzan/audio"},
              {"name": "kfold", "folds": 5, "refit": True}, {"group_by_artist": False, "leaky": True}),
    Direction("gtzan", "Emotify", "GTZAN's 100 clips", "gtzan/audio", {"path": "emotify"},
              {"name": "kfold", "folds": 5, "refit": True}, {}),
)
SR = 16000  # musicnn's rate: the audio is decoded straight to it

MSD_TAGS = {"feature": "musicnn_tags", "params": {"model": "msd-musicnn"}}
MTT_TAGS = {"feature": "musicnn_tags", "params": {"model": "mtt-musicnn"}}
MSD_POOLS = {"feature": "musicnn_embedding", "params": {"model": "msd-musicnn", "layer": "max_mean_pool"}}
BOTH = ["msd-musicnn", "mtt-musicnn"]
BRANCHES = {
    "zero_shot": ({"msd_tags": MSD_TAGS, "mtt_tags": MTT_TAGS},
                  {"model": "tag_prior", "inputs": ["msd_tags", "mtt_tags"], "args": {"sources": BOTH}}),
    "zero_shot_msd": ({"msd_tags": MSD_TAGS},
                      {"model": "tag_prior", "inputs": ["msd_tags"], "args": {"sources": ["msd-musicnn"]}}),
    "tags": ({"msd_tags": MSD_TAGS, "mtt_tags": MTT_TAGS},
             {"model": "tag_prior", "inputs": ["msd_tags", "mtt_tags"], "args": {"sources": BOTH, "learn": True}}),
    "tags_msd": ({"msd_tags": MSD_TAGS},
                 {"model": "tag_prior", "inputs": ["msd_tags"], "args": {"sources": ["msd-musicnn"], "learn": True}}),
    "pools": ({"msd_pools": MSD_POOLS}, {"model": "logreg", "inputs": ["msd_pools"], "args": {"C": 0.1, "balanced": True}}),
}


def _audio_model(direction: Direction, branches: list[str], fusion: dict | None = None) -> dict:
    """A model on the source collection's audio: the named branches of :data:`BRANCHES`, fused by ``fusion``."""
    inputs = {n: i for b in branches for n, i in BRANCHES[b][0].items()}
    return {"data": {**direction.audio_source, "sr": SR, "workers": EXTRACT_WORKERS}, "inputs": copy.deepcopy(inputs),
            "branches": {b: copy.deepcopy(BRANCHES[b][1]) for b in branches}, "fusion": fusion,
            "protocol": dict(direction.protocol), "split": dict(direction.split)}


def _held_out(recipe: str, direction: Direction, patches: int | None = None) -> dict:
    """A shipped recipe trained on every collection but the held-out one (its data and collections stay as the
    recipe has them otherwise); ``patches``: prediction's patch count instead of the recipe's."""
    cfg = _recipe(recipe)
    sources = [{"path": cfg["data"]["path"]}, *cfg["data"].get("collections", [])]
    kept = [c for c in sources if not c["path"].startswith(direction.target_path.split("/")[0])]
    cfg["data"] = {**cfg["data"], "path": kept[0]["path"], "collections": kept[1:]}
    cfg["protocol"] = {**cfg["protocol"], **direction.protocol}
    cfg["split"] = {**cfg.get("split", {}), **direction.split}
    if patches is not None:
        cfg.setdefault("eval", {}).setdefault("predict_params", {})["patches"] = patches
    return cfg


#: models on GTZAN's images and table (the old default model and its kind), tested on Emotify's audio as
#: `genrefusion predict` computes those inputs (the images by mel_image, the table by summary_gtzan)
IMAGE_MODELS = (
    ("gtzan_default", "the GTZAN-only default model of genrefusion 0.1 (CNN + Lite0 on images, MLP + LR on the table)",
     lambda: _recipe("gtzan-default-model")),
    ("table_lr", "logistic regression on the 57-feature table",
     lambda: {"data": {"path": "gtzan"}, "split": {"published": "fault_filtered"},
              "inputs": {"table": {"feature": "gtzan_table_row", "params": {"hpss": False}, "audio_feature": "summary_gtzan",
                                   "audio_params": {"hpss": False}}},
              "branches": {"logreg": {"model": "logreg", "inputs": ["table"], "args": {"C": 0.1}}},
              "protocol": {"name": "holdout"}}),
    ("pools_read_back", "logistic regression on musicnn's pool layer read back from the images",
     lambda: {"data": {"path": "gtzan", "workers": EXTRACT_WORKERS}, "split": {"published": "fault_filtered"},
              "inputs": {"pools": {"feature": "musicnn_embedding_from_image", "params": {"layer": "max_mean_pool"},
                                   "audio_feature": "musicnn_embedding_via_mel_image",
                                   "audio_params": {"layer": "max_mean_pool"}}},
              "branches": {"logreg": {"model": "logreg", "inputs": ["pools"], "args": {"C": 0.1}}},
              "protocol": {"name": "holdout"}}),
)

#: (model key, label, branches, fusion) of the models trained on a collection's audio
AUDIO_MODELS = (
    ("zero_shot", "zero-shot tagger: MSD + MTT tags through the tag table (no training)", ["zero_shot"], None),
    ("zero_shot_msd", "zero-shot tagger, MSD tags only", ["zero_shot_msd"], None),
    ("tags", "learned tag mapping (MSD + MTT), regularised toward the table", ["tags"], None),
    ("tags_msd", "learned tag mapping, MSD tags only", ["tags_msd"], None),
    ("pools", "logistic regression on musicnn (MSD)'s pool layer", ["pools"], None),
    *((f"tags_pools_{s}", f"fusion: {s.replace('_', ' ')} (learned tag mapping, pool-layer LR)", ["tags", "pools"],
       {"strategy": s, "mode": "frozen"}) for s in ("mean", "product", "vote")),
    *((f"tags_pools_{s}_cf", f"fusion: {s.replace('_', ' ')}, cross-fitted (learned tag mapping, pool-layer LR)",
       ["tags", "pools"], {"strategy": s, "mode": "frozen", "cross_fit": 5}) for s in ("weighted_mean", "stacking")),
    ("zero_shot_pools_product", "fusion: product (zero-shot tagger, pool-layer LR)", ["zero_shot", "pools"],
     {"strategy": "product", "mode": "frozen"}),
    ("tags_msd_pools_product", "fusion: product (learned tag mapping and pool-layer LR, MSD only)",
     ["tags_msd", "pools"], {"strategy": "product", "mode": "frozen"}),
)
#: the shipped profiles' recipes: one model (the same branches, trained alike), read at different patch counts
SHIPPED = (("default-model", "accurate"), ("default-model-fast", "fast"))
#: the speed/accuracy curve: the shipped model at these patch counts per 30 s segment (0: every patch)
CURVE_PATCHES = (1, 2, 3, 5, 0)


def shipped_key(patches: int) -> str:
    """The model key of the shipped model read at ``patches`` patches (a point of the curve)."""
    return f"shipped_{patches}"


def _label(model: str, direction: Direction) -> str:
    return f"{model} [{direction.source} -> {direction.target}]"


def _entry(key: str, label: str, direction: Direction, config: dict) -> Entry:
    """The model ``key`` trained for ``direction``: its id names both (``tags-pools-mean-to-emotify``)."""
    return Entry(f"{key.replace('_', '-')}-to-{direction.key}", _label(label, direction), config,
                 {"model": key, "direction": direction.key})


def _entries() -> tuple[Entry, ...]:
    out = []
    for d in DIRECTIONS:
        for key, label, branches, fusion in AUDIO_MODELS:
            out.append(_entry(key, label, d, _audio_model(d, branches, fusion)))
        for k in CURVE_PATCHES:
            patches = "every patch" if k == 0 else f"{k} patch{'es' * (k > 1)}"
            out.append(_entry(shipped_key(k), f"the shipped model (default-model recipe), {patches} per 30 s", d,
                              _held_out(SHIPPED[0][0], d, k)))
    emotify = DIRECTIONS[0]
    for key, label, make in IMAGE_MODELS:
        out.append(_entry(key, label + " (images + table)", emotify, make()))
    return tuple(out)


def entry_keys() -> dict[str, tuple[str, str]]:
    """Each entry's id -> (model key, held-out collection): how results.json rows are read back."""
    from genrefusion.benchmarks.suites import get_suite

    return {e.id: (e.extra["model"], e.extra["direction"]) for e in get_suite("cross").entries}


def _target(entry: Entry) -> Direction:
    return next(d for d in DIRECTIONS if d.key == entry.extra["direction"])


def _direction_words(entry: Entry) -> str:
    d = _target(entry)
    return f"{d.source} -> {d.target}"


def cross_after_run(entry: Entry, run_dir, data_root: str, log) -> dict:
    """The trained (refitted) model on the held-out collection, through the audio path, on the shared labels."""
    from genrefusion.inference.predictor import SURE_PROBABILITY
    from genrefusion.training.run import AUDIO_PATH, evaluate_run

    d = _target(entry)
    r = evaluate_run(run_dir, data=f"{data_root.rstrip('/')}/{d.target_path}", inputs=AUDIO_PATH, shared_labels=True,
                     name=f"cross-{d.key}", log=log)
    t = r["track"]
    sure = np.array([p >= SURE_PROBABILITY for p in r["probability"].values()])
    right = np.array([r["predictions"][tid] == r["truth"][tid] for tid in r["predictions"]])
    recall = {g: v["recall"] for g, v in t["per_class"].items()}
    return {"target": d.target, "shared labels": ", ".join(t["labels"]), "tracks": str(r["n_tracks"]),
            "target bal. acc.": f"{100 * t['balanced_accuracy']:.1f}", "target acc.": f"{100 * t['accuracy']:.1f}",
            "target ECE": f"{100 * t['ece']:.1f}",
            MEASURES: {"balanced_accuracy": t["balanced_accuracy"], "accuracy": t["accuracy"], "ece": t["ece"],
                       "n": r["n_tracks"], "recall": recall, "confusion": {"labels": t["labels"], "counts": t["confusion"]},
                       "sure_share": float(sure.mean()) if sure.size else 0.0,
                       # each held-out track right (1) or not (0): the summary's paired bootstrap
                       "tracks": {tid: float(ok) for tid, ok in zip(r["predictions"], right)},
                       "sure_accuracy": float(right[sure].mean()) if sure.any() else None,
                       "unsure_accuracy": float(right[~sure].mean()) if (~sure).any() else None}}


def cross_summary(res, assets: Path) -> list[str]:
    """The leave-one-collection-out table: each model's balanced accuracy on each held-out collection, their
    mean, and its in-collection figures beside them; a plot of the same; the shipped models' patch curve."""
    from genrefusion.benchmarks.run import plot_rows

    models: dict[str, dict] = {}
    for e in res.entries:
        if not e.ok or not e.measures:
            continue
        entry = next((x for x in res.suite.entries if x.id == e.id), None)
        if entry is None:
            continue
        row = models.setdefault(entry.extra["model"], {"label": e.label.rsplit(" [", 1)[0]})
        row[entry.extra["direction"]] = (e.measures, e.accuracy)
    if not models:
        return []
    lines = ["### Leave one collection out", "",
             "Balanced accuracy (%) on the held-out collection's tracks of the labels it shares with the training "
             "collection (ECE in brackets: 0 means the probabilities say how often the answer is right); *in* is the "
             "same model's accuracy inside its training collection (its own protocol), for the gap. A model trained "
             "on images is tested only on Emotify.", "",
             "| model | GTZAN -> Emotify | in (GTZAN) | Emotify -> GTZAN clips | in (Emotify) | mean over held-out |",
             "|---|---|---|---|---|---|"]
    plotted = []
    for key, row in models.items():
        cells, values = [], []
        for d in DIRECTIONS:
            if d.key in row:
                m, acc = row[d.key]
                values.append(m["balanced_accuracy"])
                cells += [f"{100 * m['balanced_accuracy']:.1f} ({100 * m['ece']:.1f})",
                          f"{100 * acc['mean']:.1f}" if acc else "—"]
            else:
                cells += ["—", "—"]
        mean = float(np.mean(values)) if len(values) == len(DIRECTIONS) else None
        lines.append(f"| {row['label']} | " + " | ".join(cells) + f" | {'—' if mean is None else f'{100 * mean:.1f}'} |")
        if mean is not None:
            plotted.append((row["label"], 100 * mean, 0.0))
    lines.append("")
    if plotted:
        path = plot_rows(plotted, assets / f"{res.suite.name}-loco.png", title="leave one collection out: mean balanced "
                         "accuracy on the held-out collection", xlabel="balanced accuracy (%)")
        lines += [f"![leave one collection out](benchmarks/{path.name})", ""]
    curve = [(k, models.get(shipped_key(k))) for k in CURVE_PATCHES]
    if any(row for _, row in curve):
        profiles = {k: p for p, k in shipped_patches().items()}
        lines += ["### The shipped model by patches read per 30 s segment", "",
                  "Fewer 3 s patches through the networks is faster (the speed suite times each) and coarser; the model "
                  "trains on every patch, the count applies to prediction. Its profiles are two points of this curve.", "",
                  "| patches | profile | GTZAN -> Emotify | Emotify -> GTZAN clips | mean | answers above the "
                  "confidence bar: share, accuracy (below it), per direction |", "|---|---|---|---|---|---|"]
        for k, row in curve:
            if not row or any(d.key not in row for d in DIRECTIONS):
                continue
            ms = [row[d.key][0] for d in DIRECTIONS]
            sure = "; ".join(f"{100 * m['sure_share']:.0f} %, {_pct(m['sure_accuracy'])} ({_pct(m['unsure_accuracy'])})"
                             for m in ms)
            lines.append(f"| {k or 'all'} | {profiles.get(k, '')} | "
                         + " | ".join(f"{100 * m['balanced_accuracy']:.1f}" for m in ms)
                         + f" | {100 * np.mean([m['balanced_accuracy'] for m in ms]):.1f} | {sure} |")
        lines.append("")
    weak = _weaknesses(models)
    if weak:
        lines += ["Per-genre recall on the held-out collection (the shipped profiles, their prediction settings): "
                  + "; ".join(weak) + ".", ""]
    return lines


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.0f} %"


def shipped_patches() -> dict[str, int]:
    """Each shipped profile's patch count, as its recipe sets it."""
    return {profile: _recipe(recipe)["eval"]["predict_params"]["patches"] for recipe, profile in SHIPPED}


def _weaknesses(models: dict) -> list[str]:
    out = []
    for profile, k in shipped_patches().items():
        row = models.get(shipped_key(k), {})
        for d in DIRECTIONS:
            if d.key in row:
                recall = row[d.key][0]["recall"]
                out.append(f"{profile}, {d.target}: " + ", ".join(f"{g} {100 * r:.0f} %" for g, r in recall.items()))
    return out


register_suite(Suite(
    "cross", "Across collections: trained on one, tested on another",
    "trained on one collection (all its tracks), tested on the other on the labels they share, through the audio "
    "path `genrefusion predict` takes; *accuracy* and *macro-F1* are the model's in-collection figures (GTZAN clips "
    "and Emotify: 5 stratified folds; GTZAN images + table: the fault-filtered split), the *target* columns the "
    "cross-collection ones",
    _entries(),
    notes=(textwrap.fill("GTZAN's 100 clips have few artists per genre (reggae's ten are all Bob Marley's), so artist-"
                         "grouped folds would train a fold without a genre: the GTZAN clips' in-collection folds are "
                         "ungrouped and share artists (`split.leaky`). That figure is optimistic, which is the point of "
                         "the cross columns.", 10_000),
           "The two collections share three labels (classical, pop, rock), so each cross figure is a three-way "
           "choice among those (chance: 33 %); Emotify's electronic clips and GTZAN's seven other genres are left out "
           "of the scores, not of the models.",
           "One seed per model: all but the old default model's two networks are deterministic."),
    after_run=cross_after_run, summary=cross_summary, headline=Headline(
        "accuracy on the held-out collection's tracks (of the shared labels; about its balanced accuracy, as their "
        "classes are near balanced)", score=lambda r: r.measures.get("accuracy"),
        tracks=lambda r: r.measures.get("tracks"), group=_direction_words),
    # most of its models are deterministic (no seed changes them), and its question is another collection, not
    # seed-to-seed spread: the old default model's networks train once
    seeds=1))
