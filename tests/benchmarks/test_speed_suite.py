"""The speed suite's structure on synthetic clips and a small bundle (no timing is asserted: speed
targets live in the benchmark report, not in tests)."""

from __future__ import annotations

from genrefusion.benchmarks.speed import measure_speed, plot_speed, speed_markdown
from genrefusion.features import dsp
from tests.inference.conftest import frozen_bundle, songs, synth_gtzan, synth_store  # noqa: F401


def test_speed_suite_measures_every_stage_and_writes_its_section(frozen_bundle, songs, tmp_path):  # noqa: F811
    clips = [songs[g] for g in ("blues", "classical", "metal", "long")]
    res = measure_speed(clips, bundle=frozen_bundle, feature_clips=2, log=lambda _: None)
    stages = {t.stage for t in res.timings}
    assert stages == {"decode", "feature", "branch", "predict", "baseline"}
    assert {"log_mel", "summary_gtzan", "mel_image"} <= {t.what for t in res.timings if t.stage == "feature"}
    fft_rows = [t for t in res.timings if t.what.startswith("the model's inputs together")]
    assert [t.what.split(", ")[-1] for t in fft_rows] == [f"{name} FFT" for name in dsp.FFT_BACKENDS]
    assert res.fft_backend == dsp.default_fft_backend()
    predict = [t.what for t in res.timings if t.stage == "predict"]
    with_fast = res.fft_backend != "numpy"  # then the best setting is timed with numpy's FFT too
    assert len(predict) == 8 + 2 * with_fast and any("onnx, 2 worker" in w for w in predict)
    assert with_fast == ("onnx, 2 worker(s), numpy FFT, steady state" in predict)
    assert all(t.clips_per_s > 0 for t in res.timings if t.clips) and res.peak_rss_mb
    worker, here = res.peak_rss_mb["largest worker process"], res.peak_rss_mb[next(iter(res.peak_rss_mb))]
    assert 50 < worker < here  # a worker's own peak (python, torch, one model), not its parent's
    lines = speed_markdown(res, plot_speed(res, tmp_path / "speed.png").name)
    assert (tmp_path / "speed.png").stat().st_size > 0 and any("naive baseline" in line for line in lines)
    assert with_fast == any("Without the `[fast]` extra" in line for line in lines)
