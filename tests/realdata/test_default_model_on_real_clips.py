"""The packaged default model on real music: GTZAN's 100 clips, as their lossless FLAC and as 128 kb/s MP3.

The clips are among the model's training tracks, so right answers here are a check that the audio path
works on real music, not an accuracy figure (the cross-collection suite gives those). What is measured is
what a user meets: an MP3 of a song gets the genre its lossless source gets.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

import pytest

from genrefusion import audio
from genrefusion.inference.predictor import DEFAULT_ROOT, PROFILES, predict_files
from tests.conftest import SHARED, needs_shared

pytestmark = [needs_shared, pytest.mark.realdata,
              pytest.mark.skipif(not all((DEFAULT_ROOT / p / "bundle.json").is_file() for p in PROFILES),
                                 reason="no packaged default model")]

#: of the 100 clips, at least this many MP3s must get their FLAC's genre (issue: 97 of 100)
SAME_GENRE = 97


def _mp3(args) -> str:
    src, dst = args
    y, sr = audio.load(src, sr=None)
    return str(audio.encode(dst, y, sr=sr, bitrate=128_000))


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    flac = sorted((SHARED / "gtzan" / "audio").rglob("*.flac"))
    out = tmp_path_factory.mktemp("mp3")
    with ProcessPoolExecutor(2) as pool:
        mp3 = list(pool.map(_mp3, [(f, out / f"{f.stem}.mp3") for f in flac]))
    return flac, mp3


@pytest.mark.parametrize("profile", ["fast", pytest.param("accurate", marks=pytest.mark.slow)])
def test_an_mp3_gets_the_genre_of_its_lossless_source(clips, profile):
    flac, mp3 = clips
    lossless = {p.rsplit("/", 1)[1].rsplit(".", 1)[0]: r for p, r, _ in predict_files(flac, workers=2, profile=profile)}
    lossy = {p.rsplit("/", 1)[1].rsplit(".", 1)[0]: r for p, r, _ in predict_files(mp3, workers=2, profile=profile)}
    assert len(lossless) == len(lossy) == 100 and all(r is not None for r in [*lossless.values(), *lossy.values()])
    assert all(r.status in ("ok", "not_sure") for r in lossless.values())  # real music: never "no music"
    same = sum(lossless[t].genre == lossy[t].genre for t in lossless)
    differ = sorted(t for t in lossless if lossless[t].genre != lossy[t].genre)
    assert same >= SAME_GENRE, f"{same}/100 the same; differ: {differ}"
    right = sum(r.genre == t.split(".")[0].replace("hiphop", "hip-hop") for t, r in lossless.items())
    assert right >= 50, f"{right}/100 right on clips it trained on: the audio path is broken"
