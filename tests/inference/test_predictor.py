"""Predicting genres of audio files with a bundle: accuracy on new clips, segments, timeline, workers, bad files."""

from __future__ import annotations

import numpy as np
import pytest

from genrefusion import audio
from genrefusion.errors import AudioError, ModelError
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
    assert one[1][1] is None and "corrupt.mp3" in one[1][2] and two[1][1] is None
    for (_, a, _), (_, b, _) in zip(one, two):
        if a is not None:
            np.testing.assert_allclose(a.proba, b.proba, atol=1e-5)


def test_expand_paths_takes_files_folders_and_globs(songs):
    music = songs["blues"].parents[1]
    files, problems = expand_paths([music, str(music / "*" / "new_metal.wav"), songs["blues"], music / "nothing.wav"])
    assert len(files) == 4 and files.count(songs["blues"]) == 1
    assert problems == [f"{music / 'nothing.wav'}: file not found"]


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
