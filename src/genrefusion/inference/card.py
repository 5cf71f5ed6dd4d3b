"""The model card in words: what a model knows, how well it did inside and outside its training collections,
and what it gets wrong, rounded for a person (``genrefusion model info``, ``GET /model``, the web page).

The cross-collection figures come from the cross suite's results (``docs/benchmarks/results.json``), copied into
the bundle's card by ``genrefusion model package --cross`` (:func:`add_cross_figures`), so a card never claims a
figure no benchmark measured.
"""

from __future__ import annotations

import json
from pathlib import Path

from genrefusion.errors import ModelError

#: per-genre recall on a held-out collection below which the card names the genre as a weakness
WEAK_RECALL = 0.7


def add_cross_figures(folder: Path, results: Path) -> dict:
    """Put the cross suite's figures for this bundle (the shipped model at its prediction patches) into its card."""
    meta_path = folder / "bundle.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    from genrefusion.benchmarks.run import with_ids

    try:
        suite = with_ids(json.loads(Path(results).read_text(encoding="utf-8")))["suites"]["cross"]
    except (OSError, ValueError, KeyError) as err:
        raise ModelError(f"no cross-suite results to read ({type(err).__name__}: {err})", path=results) from None
    from genrefusion.benchmarks.cross import DIRECTIONS, SHIPPED, entry_keys, shipped_key

    name = meta.get("config", {}).get("name")
    if name not in dict(SHIPPED):
        raise ModelError(f"the cross suite has no entries for recipe {name!r} (it runs {[r for r, _ in SHIPPED]})",
                         path=folder)
    patches = meta["config"].get("eval", {}).get("predict_params", {}).get("patches", 0)
    keys = entry_keys()
    figures, zero = {}, {}
    for e in suite["entries"]:
        model, direction = keys.get(e["id"], (None, None))
        if not e.get("ok") or not e.get("measures"):
            continue
        d = next(x for x in DIRECTIONS if x.key == direction)
        where = f"{d.source} -> {d.target}"
        m = e["measures"]
        if model == shipped_key(patches):
            figures[where] = {"balanced_accuracy": m["balanced_accuracy"], "accuracy": m["accuracy"], "ece": m["ece"],
                              "tracks": m["n"], "labels": m["confusion"]["labels"], "recall": m["recall"],
                              "confusion": m["confusion"]["counts"], "in_collection_accuracy": e["accuracy"]["mean"]}
        elif model == "zero_shot":
            zero[where] = m["balanced_accuracy"]
    if len(figures) != len(DIRECTIONS):
        raise ModelError(f"the cross suite's results lack the shipped model at {patches} patch(es) in some direction "
                         f"(found {sorted(figures)})", path=results)
    card = meta.setdefault("card", {})
    card["cross_collection"] = figures
    card["cross_collection_mean_balanced_accuracy"] = sum(f["balanced_accuracy"] for f in figures.values()) / len(figures)
    if len(zero) == len(DIRECTIONS):
        card["zero_shot_mean_balanced_accuracy"] = sum(zero.values()) / len(zero)
    card["weaknesses"] = weaknesses(meta["labels"], figures, card.get("tracks_per_genre", {}), _tagless(meta))
    meta_path.write_text(json.dumps(meta, indent=1, default=str), encoding="utf-8")
    return card


def _tagless(meta: dict) -> list[str]:
    """The labels no tag of the model's taggers names (for a model with a tag prior branch)."""
    from genrefusion.pretrained.tag_genres import table_weights

    rows = [b for b in meta["model"].get("branches", {}).values() if b.get("model") == "tag_prior"]
    if not rows:
        return []
    p = rows[0]["params"]
    w = table_weights(meta["labels"], p["sources"], version=p["table"])
    return [g for g, row in zip(meta["labels"], w) if not row.any()]


#: fewer training tracks than this, and the card says so
FEW_TRACKS = 30


def weaknesses(labels: list[str], figures: dict, tracks: dict[str, int] | None = None,
               tagless: list[str] | None = None) -> list[str]:
    """Known weaknesses in words: genres it often misses on held-out collections, and what the training data
    cannot teach it (genres it saw few tracks of, genres no tag of its taggers names)."""
    out = []
    few = sorted(g for g, n in (tracks or {}).items() if n < FEW_TRACKS)
    if few:
        counts = sorted({tracks[g] for g in few})
        out.append(f"{', '.join(few)}: learned from {' to '.join(map(str, counts[::max(1, len(counts) - 1)]))} "
                   "labelled tracks each, so mostly from what the taggers already know")
    if tagless:
        out.append(f"{', '.join(tagless)}: no tag of its taggers names it, so only its few labelled tracks teach it")
    for where, f in figures.items():
        for i, genre in enumerate(f["labels"]):
            recall = f["recall"][genre]
            if recall < WEAK_RECALL:
                row = f["confusion"][i]
                worst = max((c for c in range(len(row)) if c != i), key=lambda c: row[c])
                out.append(f"{genre} on {where.split(' -> ')[1]}: {_pct(recall)} found; most often taken for "
                           f"{f['labels'][worst]}")
    out.append("genres outside its labels come out as the nearest of them")
    return out


def _pct(v: float) -> str:
    return f"{100 * v:.0f} %"


def describe(card: dict) -> list[str]:
    """The card as lines of rounded words."""
    lines = [f"{card.get('name') or 'model'}" + (f" ({card['profile']} profile)" if card.get("profile") else ""),
             f"genres ({len(card['labels'])}): {', '.join(card['labels'])}"]
    if card.get("trained_on"):
        lines.append(f"trained on: {card['trained_on']}")
    if card.get("test_accuracy") is not None:
        lines.append(f"inside its training collections: {_pct(card['test_accuracy'])} right "
                     f"({card.get('evaluation', '')}; {card.get('n_test_tracks', '?')} test tracks in all; "
                     "features as stored for training)")
    for where, f in (card.get("cross_collection") or {}).items():
        lines.append(f"on a collection it did not train on ({where}, {f['tracks']} tracks of {', '.join(f['labels'])}): "
                     f"{_pct(f['balanced_accuracy'])} balanced accuracy, calibration error {_pct(f['ece'])}")
    if card.get("zero_shot_mean_balanced_accuracy") is not None:
        lines.append(f"across collections, mean: {_pct(card['cross_collection_mean_balanced_accuracy'])} (the taggers' "
                     f"tags read zero-shot: {_pct(card['zero_shot_mean_balanced_accuracy'])})")
    for w in card.get("weaknesses", []):
        lines.append(f"weak: {w}")
    inputs = ", ".join(sorted(set(filter(None, (card.get("inputs") or {}).values()))))
    lines.append(f"reads: {inputs}; {card.get('segment_s', 30):g} s segments; {card.get('size_mb', 0):.1f} MB")
    return lines
