"""Predicting genres of audio files with a bundle: accuracy on new clips, segments, timeline, workers, bad files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from genrefusion import audio
from genrefusion.errors import AudioError, ModelError, UsageError
from genrefusion.inference.predictor import Predictor, expand_paths, predict_files
from tests.training.conftest import GENRES


@pytest.fixture(scope="module")
def predictor(frozen_bundle):
    return Predictor(frozen_bundle)


def test_new_clips_get_their_genre(predictor, songs):
    for genre in GENRES:
        pred = predictor.predict_file(songs[genre])
        assert pred.top(1)[0][0] == genre, pred.top(3)
        assert pred.proba.shape == (len(GENRES),) and abs(pred.proba.sum() - 1) < 1e-6
        assert pred.duration_s == pytest.approx(3.0, abs=0.01)


def test_a_run_folder_and_its_bundle_are_the_same_model(frozen_bundle, songs):
    a = Predictor(frozen_bundle.parent).predict_file(songs["blues"]).proba
    b = Predictor(frozen_bundle).predict_file(songs["blues"]).proba
    np.testing.assert_allclose(a, b)


def test_long_file_is_read_in_segments_and_its_timeline_follows_the_music(predictor, songs, monkeypatch):
    reads = []
    real_load = audio.load

    def spy(path, **kw):
        reads.append(kw.get("duration"))
        return real_load(path, **kw)

    monkeypatch.setattr(audio, "load", spy)
    pred = predictor.predict_file(songs["long"])
    assert reads and all(d == predictor.segment_s for d in reads)  # never decoded whole
    assert pred.duration_s == pytest.approx(10.0, abs=0.05)
    starts = [w.start_s for w in pred.windows]
    assert starts == sorted(starts) and starts[0] == 0.0 and pred.windows[-1].end_s == pytest.approx(10.0, abs=0.05)
    first = [pred.labels[int(np.argmax(w.proba))] for w in pred.windows if w.end_s <= 6.0]
    last = [pred.labels[int(np.argmax(w.proba))] for w in pred.windows if w.start_s >= 6.0]
    assert first.count("blues") > len(first) / 2 and last.count("metal") > len(last) / 2
    d = pred.to_dict(top_k=2, timeline=True)
    assert len(d["top"]) == 2 and len(d["timeline"]) == len(pred.windows)


def test_bad_files_raise_audio_error_naming_them(predictor, songs):
    for key in ("corrupt", "empty"):
        with pytest.raises(AudioError, match=songs[key].name):
            predictor.predict_file(songs[key])


def test_predict_files_reports_bad_files_and_goes_on_with_two_workers(frozen_bundle, songs):
    paths = [songs["blues"], songs["corrupt"], songs["metal"], songs["classical"]]
    one = list(predict_files(paths, bundle=frozen_bundle, workers=1))
    two = list(predict_files(paths, bundle=frozen_bundle, workers=2))
    assert [p for p, _, _ in two] == [str(p) for p in paths]  # ordered
    assert one[1][1] is None and one[1][0].endswith("corrupt.mp3") and "not audio" in one[1][2] and two[1][1] is None
    for (_, a, _), (_, b, _) in zip(one, two):
        if a is not None:
            np.testing.assert_allclose(a.proba, b.proba, atol=1e-5)


def test_expand_paths_takes_files_folders_and_globs(songs):
    music = songs["blues"].parents[1]
    files, problems = expand_paths([music, str(music / "*" / "new_metal.wav"), songs["blues"], music / "nothing.wav"])
    assert len(files) == 4 and files.count(songs["blues"]) == 1
    assert [str(p) for p in problems] == [f"{music / 'nothing.wav'}: file not found"]


def _odd_folder(root):
    """Every kind of entry a folder can hold that is not a readable audio file."""
    root.mkdir()
    (root / "cover.jpg").write_bytes(b"\xff\xd8 not audio")
    (root / "broken.mp3").symlink_to(root / "nowhere.mp3")
    (root / "loop1.mp3").symlink_to(root / "loop2.mp3")
    (root / "loop2.mp3").symlink_to(root / "loop1.mp3")
    os.mkfifo(root / "pipe.flac")
    (root / "album.mp3").mkdir()
    return root


def test_every_entry_of_a_folder_is_taken_or_named_with_its_reason(tmp_path, songs):
    root = _odd_folder(tmp_path / "odd")
    shutil.copy(songs["blues"], root / "album.mp3" / "song.wav")
    files, skipped = expand_paths([root, tmp_path / "none*.wav", tmp_path / "missing.wav", tmp_path / "empty"])
    reasons = {Path(s.path).name: (s.reason, s.failed) for s in skipped}
    assert files == [root / "album.mp3" / "song.wav"]
    assert reasons == {"cover.jpg": ("not an audio file name (.jpg)", False),
                       "broken.mp3": (f"broken symbolic link (to {root / 'nowhere.mp3'})", True),
                       "loop1.mp3": ("symbolic link loop", True), "loop2.mp3": ("symbolic link loop", True),
                       "pipe.flac": ("not a regular file: a named pipe", True),
                       "album.mp3": ("a folder named like an audio file", True),
                       "none*.wav": ("no file matches this pattern", True),
                       "missing.wav": ("file not found", True), "empty": ("file not found", True)}


def test_a_bundle_without_an_audio_source_is_refused(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        Predictor(tmp_path / "missing")


def test_an_mp3_is_decoded_and_predicted(predictor, songs, tmp_path):
    import av
    import soundfile as sf

    y, sr = sf.read(str(songs["metal"]), dtype="float32")
    path = tmp_path / "song.mp3"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mp3", rate=sr)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(y[None, :], format="flt", layout="mono")
        frame.sample_rate = sr
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    pred = predictor.predict_file(path)
    assert pred.top(1)[0][0] == "metal" and pred.duration_s == pytest.approx(3.0, abs=0.1)


# ---- what is not music, what the model is not sure of ------------------------------------------------------------

def test_silence_and_near_silence_are_no_music_not_a_genre(predictor, tmp_path):
    from tests.conftest import SR, noise, write

    silent = write(tmp_path / "silence.wav", np.zeros(30 * SR, np.float32))
    hum = write(tmp_path / "near_silence.wav", noise(30.0) * 10 ** (-70 / 20) / 0.1)  # noise at -70 dBFS RMS
    for path in (silent, hum):
        pred = predictor.predict_file(path)
        d = pred.to_dict(top_k=3, timeline=True)
        assert pred.status == "no_music" and pred.genre is None and not pred.top(3) and not pred.proba.any()
        assert d["status"] == "no_music" and d["genre"] is None and d["top"] == [] and "silence" in d["reason"]
        assert all(w["status"] == "no_music" and w["genre"] is None for w in d["timeline"])
    assert predictor.predict_file(silent).level_db == float("-inf")
    assert -80 < predictor.predict_file(hum).level_db < -55


def test_a_clip_shorter_than_the_model_needs_is_too_short(predictor, songs, tmp_path):
    from tests.conftest import SR, write

    y = audio.load(songs["metal"], sr=SR)[0]
    short = write(tmp_path / "short.wav", y[: int(0.1 * SR)])
    pred = predictor.predict_file(short)
    assert pred.status == "too_short" and pred.genre is None and "0.10 s" in pred.reason
    assert pred.to_dict()["status"] == "too_short"


def test_a_silent_stretch_of_a_long_file_is_no_music_in_its_timeline(predictor, songs, tmp_path):
    from tests.conftest import SR, write

    y = audio.load(songs["long"], sr=SR)[0]
    gap = write(tmp_path / "gap.wav", np.concatenate([y[: 3 * SR], np.zeros(3 * SR, np.float32), y[: 3 * SR]]))
    pred = predictor.predict_file(gap)
    assert pred.status in ("ok", "not_sure") and pred.genre is not None
    assert [w.status for w in pred.windows].count("no_music") >= 1
    assert pred.windows[0].status == "ok"


def test_below_the_confidence_bar_the_answer_says_not_sure(frozen_bundle, songs):
    unsure = Predictor(frozen_bundle)
    unsure.sure_probability = 1.01  # nothing is that sure
    pred = unsure.predict_file(songs["blues"])
    assert pred.status == "not_sure" and pred.genre == "blues" and "below 101 %" in pred.reason
    assert pred.to_dict()["status"] == "not_sure" and pred.to_dict()["genre"] == "blues"


def test_an_array_in_memory_is_predicted_as_its_file_is(predictor, songs):
    y, sr = audio.load(songs["long"], sr=None)
    a, b = predictor.predict_file(songs["long"]), predictor.predict_array(y, sr=sr)
    np.testing.assert_allclose(a.proba, b.proba, atol=1e-5)
    assert np.allclose([(w.start_s, w.end_s) for w in a.windows], [(w.start_s, w.end_s) for w in b.windows], atol=0.01)
    stereo = predictor.predict_array(np.stack([y, y]), sr=sr)  # channels first, as librosa
    np.testing.assert_allclose(stereo.proba, b.proba, atol=1e-5)
    with pytest.raises(ModelError, match="NaN"):
        predictor.predict_array(np.full(3 * sr, np.nan, np.float32), sr=sr)


# ---- models that read a few 3 s patches (the shipped kind) --------------------------------------------------------

def test_a_tagger_bundle_is_arrays_and_json_only(tagger_bundle):
    assert (tagger_bundle / "arrays.npz").is_file() and not (tagger_bundle / "objects.pkl").exists()
    np.load(tagger_bundle / "arrays.npz", allow_pickle=False)  # no object arrays either


def test_reading_one_patch_per_segment_decodes_only_that_patch(tagger_bundle, songs, monkeypatch):
    from genrefusion.pretrained.musicnn_spec import PATCH_SECONDS

    fast = Predictor(tagger_bundle)
    assert fast.excerpts == 1 and fast.sr == 16000
    asked = []
    load = audio.load
    monkeypatch.setattr(audio, "load", lambda path, **kw: asked.append(kw.get("duration")) or load(path, **kw))
    pred = fast.predict_file(songs["long"])  # 10 s in 6 s segments: [0, 6) and [4, 10), one patch read of each
    assert asked == [pytest.approx(PATCH_SECONDS)] * 2
    assert np.allclose([(w.start_s, w.end_s) for w in pred.windows], [(0.0, 6.0), (4.0, 10.0)], atol=0.01)
    assert pred.duration_s == pytest.approx(10.0, abs=0.01)
    monkeypatch.setattr(audio, "load", load)
    y, sr = load(songs["long"], sr=16000)
    # the same patches (decoded on their own, each excerpt's resampling starts afresh: ~1e-4 apart)
    np.testing.assert_allclose(pred.proba, fast.predict_array(y, sr=sr).proba, atol=2e-3)
    every = Predictor(tagger_bundle, patches=0)
    assert every.excerpts == 0 and every.predict_file(songs["long"]).status in ("ok", "not_sure")


def test_profiles_pick_a_bundle_of_a_profiled_folder_and_are_refused_elsewhere(tagger_bundle, frozen_bundle, tmp_path):
    import shutil

    from genrefusion.inference.predictor import resolve_bundle

    for profile in ("fast", "accurate"):
        shutil.copytree(tagger_bundle, tmp_path / "model" / profile)
    assert resolve_bundle(tmp_path / "model") == tmp_path / "model" / "fast"
    assert resolve_bundle(tmp_path / "model", "accurate") == tmp_path / "model" / "accurate"
    with pytest.raises(ModelError, match="has no profiles"):
        resolve_bundle(frozen_bundle, "fast")
    with pytest.raises(UsageError, match="profile must be one of"):
        resolve_bundle(tmp_path / "model", "slow")
