"""The cross-collection suite's shape, its leave-one-collection-out summary, and the model card it feeds."""

from __future__ import annotations

import json
import shutil

import pytest

from genrefusion.benchmarks.cross import (CURVE_PATCHES, DIRECTIONS, cross_summary, entry_keys, shipped_key,
                                          shipped_patches)
from genrefusion.benchmarks.run import EntryResult, SuiteResult
from genrefusion.benchmarks.suites import SUITES
from genrefusion.errors import ModelError
from genrefusion.inference.card import add_cross_figures, describe
from tests.inference.conftest import synth_gtzan, synth_store, tagger_bundle  # noqa: F401


def test_every_model_runs_in_both_directions_and_never_trains_on_its_target():
    suite = SUITES["cross"]
    by_model: dict[str, set[str]] = {}
    for e in suite.entries:
        by_model.setdefault(e.extra["model"], set()).add(e.extra["direction"])
        d = next(x for x in DIRECTIONS if x.key == e.extra["direction"])
        sources = [e.config["data"]["path"], *(c["path"] for c in e.config["data"].get("collections", []))]
        assert not any(s.split("/")[0] == d.target_path.split("/")[0] for s in sources), (e.label, sources)
        assert e.config["protocol"].get("refit") or e.config["protocol"]["name"] == "holdout"
    image_models = {"gtzan_default", "table_lr", "pools_read_back"}
    assert all(dirs == {d.key for d in DIRECTIONS} for m, dirs in by_model.items() if m not in image_models)
    assert {shipped_key(k) for k in CURVE_PATCHES} <= set(by_model)
    assert set(shipped_patches().values()) <= set(CURVE_PATCHES)  # each profile is a point of the curve
    assert len(entry_keys()) == len(suite.entries)


def _measures(bal: float, n: int = 30) -> dict:
    labels = ["classical", "pop", "rock"]
    return {"balanced_accuracy": bal, "accuracy": bal, "ece": 0.1, "n": n, "recall": {g: bal for g in labels},
            "confusion": {"labels": labels, "counts": [[8, 1, 1], [1, 8, 1], [1, 1, 8]]}, "sure_share": 0.8,
            "sure_accuracy": 0.9, "unsure_accuracy": 0.5}


def _results(values: dict[tuple[str, str], float]) -> list[EntryResult]:
    keys = entry_keys()
    out = []
    for entry_id, (model, direction) in keys.items():
        if (model, direction) in values:
            out.append(EntryResult(entry_id, SUITES["cross"].entry(entry_id).label, "run", True, 1.0, {"mean": 0.9, "std": 0.0, "values": [0.9]},
                                   {"mean": 0.9, "std": 0.0, "values": [0.9]},
                                   measures=_measures(values[(model, direction)])))
    return out


def test_the_summary_pivots_each_model_into_leave_one_collection_out_and_the_patch_curve(tmp_path):
    values = {("zero_shot", "emotify"): 0.70, ("zero_shot", "gtzan"): 0.80,
              ("shipped_1", "emotify"): 0.66, ("shipped_1", "gtzan"): 0.96, ("shipped_3", "emotify"): 0.76}
    res = SuiteResult(SUITES["cross"], _results(values), 10.0)
    lines = cross_summary(res, tmp_path)
    text = "\n".join(lines)
    zero = next(line for line in lines if line.startswith("| zero-shot tagger: MSD + MTT"))
    assert "70.0 (10.0)" in zero and "80.0 (10.0)" in zero and zero.rstrip(" |").endswith("75.0")
    three = next(line for line in lines if line.startswith("| the shipped model (default-model recipe), 3 patches"))
    assert three.rstrip(" |").endswith("—")  # one direction only: no mean
    assert "| 1 | fast | 66.0 | 96.0 | 81.0 |" in text and (tmp_path / "cross-loco.png").stat().st_size > 0
    assert "fast, Emotify: classical 66 %" in text and "accurate, Emotify: classical 76 %" in text


def test_the_card_takes_its_cross_figures_from_the_suite_and_names_weak_genres(tagger_bundle, tmp_path):  # noqa: F811
    bundle = shutil.copytree(tagger_bundle, tmp_path / "bundle")
    meta = json.loads((bundle / "bundle.json").read_text())
    meta["config"]["name"] = "default-model-fast"
    (bundle / "bundle.json").write_text(json.dumps(meta))
    values = {("shipped_1", "emotify"): 0.6, ("shipped_1", "gtzan"): 0.9, ("zero_shot", "emotify"): 0.7,
              ("zero_shot", "gtzan"): 0.8}
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"suites": {"cross": {"entries": [e.__dict__ for e in _results(values)]}}}))
    card = add_cross_figures(bundle, results)
    assert set(card["cross_collection"]) == {"GTZAN -> Emotify", "Emotify -> GTZAN's 100 clips"}
    assert card["cross_collection_mean_balanced_accuracy"] == pytest.approx(0.75)
    assert card["zero_shot_mean_balanced_accuracy"] == pytest.approx(0.75)
    assert any(w.startswith("classical on Emotify: 60 % found") for w in card["weaknesses"])
    lines = describe({**card, "labels": meta["labels"], "name": "default-model-fast", "profile": "fast",
                      "inputs": {"tags": "musicnn_tags"}, "segment_s": 6.0, "size_mb": 0.2})
    assert any("did not train on (GTZAN -> Emotify, 30 tracks" in line and "60 % balanced accuracy" in line
               for line in lines)
    assert any(line.startswith("weak: classical on Emotify") for line in lines)
    meta["config"]["name"] = "something-else"
    (bundle / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="no entries for recipe"):
        add_cross_figures(bundle, results)


def test_its_summary_rows_compare_on_the_held_out_tracks_one_direction_at_a_time():
    from genrefusion.benchmarks.run import summary_markdown

    values = {("pools", "emotify"): 0.6, ("tags_pools_mean", "emotify"): 0.7, ("pools", "gtzan"): 0.9,
              ("tags_pools_mean", "gtzan"): 0.8}
    results = _results(values)
    for r in results:  # the held-out tracks: right on the first (score x 100) of 100
        r.measures["tracks"] = {f"t{i}": float(i < 100 * r.measures["accuracy"]) for i in range(100)}
    lines = summary_markdown(SuiteResult(SUITES["cross"], results, 1.0))
    rows = [line for line in lines if line.startswith("| GTZAN -> Emotify |") or line.startswith("| Emotify -> ")]
    assert len(rows) == 2 and lines[0].startswith("| compared on | best single branch |")
    emotify = rows[0].split(" | ")
    assert "`pools-to-emotify`, 60.0 %" in emotify[1] and "`tags-pools-mean-to-emotify`, 70.0 %" in emotify[2]
    assert emotify[3].startswith("**+10.0** [") and emotify[4] == "100"
    assert "**-10.0** [" in rows[1]  # in-collection accuracy (0.9 for every entry here) is not what is compared
    assert "held-out collection" in "\n".join(lines)


def test_the_recipes_suite_says_why_it_has_no_summary_row():
    from genrefusion.benchmarks.run import summary_markdown

    acc = {"mean": 0.7, "std": 0.0, "values": [0.7]}
    entries = [EntryResult(e.id, e.label, "r", True, 1.0, acc, acc) for e in SUITES["recipes"].entries]
    assert summary_markdown(SuiteResult(SUITES["recipes"], entries, 1.0))[0].startswith(
        "No summary row: each recipe is a whole published system")
