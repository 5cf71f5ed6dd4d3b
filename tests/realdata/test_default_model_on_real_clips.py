"""The packaged default model on the 100 real GTZAN clips, through the audio path.

96 of these clips are in the model's training or validation part of the fault-filtered split, so
this is a check that the audio path works on real music, not an accuracy figure (the model card's
test accuracy, on 290 held-out tracks, is that).
"""

from __future__ import annotations

import pytest

from genrefusion.inference.predictor import DEFAULT_BUNDLE, predict_files
from tests.conftest import SHARED, needs_shared

pytestmark = [needs_shared, pytest.mark.realdata,
              pytest.mark.skipif(not (DEFAULT_BUNDLE / "bundle.json").is_file(), reason="no packaged default model")]


def test_default_model_names_most_real_clips_genres():
    clips = sorted((SHARED / "gtzan" / "audio").rglob("*.flac"))[::4]  # 25 clips, every genre
    results = list(predict_files(clips, workers=2))
    assert all(err is None for _, _, err in results)
    right = sum(p.top(1)[0][0] == path.rsplit("/", 1)[1].split(".")[0] for path, p, _ in results)
    assert right / len(results) >= 0.5, f"{right}/{len(results)}"
