"""The speed suite's structure on synthetic clips and a small bundle (no timing is asserted: speed
targets live in the benchmark report, not in tests)."""

from __future__ import annotations

import importlib.util

from genrefusion.benchmarks.speed import measure_speed, plot_speed, speed_markdown, speed_summary
from genrefusion.features import dsp
from tests.inference.conftest import frozen_bundle, songs, synth_gtzan, synth_store  # noqa: F401


def test_speed_suite_measures_every_stage_and_writes_its_section(frozen_bundle, songs, tmp_path):  # noqa: F811
    clips = [songs[g] for g in ("blues", "classical", "metal", "long")]
    res = measure_speed(clips, bundle=frozen_bundle, feature_clips=2, files=6, baseline_clips=2, log=lambda _: None)
    stages = {t.stage for t in res.timings}
    # no patch curve: it reads no patches; "steady": 2 workers (and Ray actors) after their first result
    assert stages == {"decode", "feature", "branch", "predict", "steady", "baseline"}
    assert {"log_mel", "summary_gtzan", "mel_image"} <= {t.what for t in res.timings if t.stage == "feature"}
    assert len([t for t in res.timings if t.stage == "decode"]) == 3  # FLAC, MP3, an MP3 patch
    fft_rows = [t for t in res.timings if "its inputs together" in t.what]
    assert [t.what.split(", ")[-1] for t in fft_rows] == [f"{name} FFT" for name in dsp.FFT_BACKENDS]
    predict = [t.what for t in res.timings if t.stage == "predict"]
    ray = ["the bundle, FLAC, 2 Ray actors, 6 files, with start-up"] if importlib.util.find_spec("ray") else []
    assert predict == ["the bundle, FLAC, 1 worker, 4 files, with start-up",
                       "the bundle, FLAC, 2 workers, 6 files, with start-up", *ray,
                       "the bundle, MP3, 2 workers, 6 files, with start-up"]
    assert all(t.clips_per_s > 0 for t in res.timings if t.clips) and res.peak_rss_mb
    worker, here = res.peak_rss_mb["largest worker process"], res.peak_rss_mb[next(iter(res.peak_rss_mb))]
    assert 50 < worker < here  # a worker's own peak (python, torch, one model), not its parent's
    (name, summary), = speed_summary(res)
    assert name == "the bundle" and set(summary["e2e"]) == {"FLAC", "MP3"} and summary["ratio"] > 0
    lines = speed_markdown(res, plot_speed(res, tmp_path / "speed.png").name)
    assert (tmp_path / "speed.png").stat().st_size > 0 and any("naive baseline" in line for line in lines)
    assert any(line.startswith("| the bundle | ") for line in lines)
    assert not ray or any("The Ray engine" in line and "x** after it" in line for line in lines)
    steady = [t.what for t in res.timings if t.stage == "steady"]
    assert steady == ["the bundle, FLAC, 2 workers, 5 files after the first",
                      *(["the bundle, FLAC, 2 Ray actors, 5 files after the first"] if ray else [])]
