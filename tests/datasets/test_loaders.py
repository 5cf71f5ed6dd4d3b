"""Loader specifics: labels, joins, published splits, FMA genre roots, and bad input reported."""

from __future__ import annotations

import numpy as np
import pytest

from genrefusion.datasets import open_dataset
from genrefusion.datasets.base import normalize_genre
from genrefusion.errors import DatasetError
from tests.conftest import tone, write
from tests.datasets import builders


def test_genre_labels_are_normalised():
    assert normalize_genre("Hip Hop") == normalize_genre("hiphop") == normalize_genre("Hip-Hop") == "hip-hop"
    assert normalize_genre(" Bossa_Nova ") == "bossa-nova"
    with pytest.raises(DatasetError):
        normalize_genre("  ")


def test_gtzan_joins_audio_images_table_and_split(tmp_path):
    ds = open_dataset(builders.build_gtzan(tmp_path / "g"))
    t = ds["rock.00001"]
    assert set(t.modalities) == {"audio", "image", "table"}
    assert np.allclose(t.table, np.arange(6) + 1)  # 'length' is not a feature
    assert ds.feature_columns == tuple(f"f{i}" for i in range(6))
    assert ds.published_splits["fault_filtered"]["blues.00002"] == "test"
    audio_only = open_dataset(tmp_path / "g" / "audio")
    assert {m for t in audio_only for m in t.modalities} == {"audio"}
    assert "fault_filtered" in audio_only.published_splits


def test_gtzan_keeps_runs_of_ids_in_one_fold_group_where_no_artist_is_known():
    """GTZAN keeps an artist's tracks mostly in consecutive ids: where Sturm's index names no artist, inner folds
    keep blocks of them together."""
    from genrefusion.datasets.base import FoldKey, Track
    from genrefusion.datasets.gtzan import ARTIST_RUN_BLOCK, _fold_group

    assert _fold_group("blues.00000") == _fold_group(f"blues.{ARTIST_RUN_BLOCK - 1:05d}") == "blues.0"
    assert _fold_group(f"blues.{ARTIST_RUN_BLOCK:05d}") == "blues.1" != _fold_group(f"rock.{ARTIST_RUN_BLOCK:05d}")
    assert _fold_group("not an id") is None
    t = Track("blues.00003", "blues", fold_group="blues.0")
    assert t.artist is None and t.fold_key == FoldKey("group", "blues.0")  # the split checker reads artists only
    assert Track("x", "blues", artist=" Some  One", fold_group="blues.0").fold_key == FoldKey("artist", "some one")


def test_gtzan_reports_tracks_missing_from_the_table(tmp_path):
    root = builders.build_gtzan(tmp_path / "g")
    write(root / "audio" / "rock" / "rock.00007.wav", tone(100, 1.0))
    ds = open_dataset(root)
    assert ds["rock.00007"].modalities == ("audio",)
    assert any("1 tracks have no row in the feature table" in str(p) for p in ds.problems)


def test_gtzan_reports_unknown_genre_folder_and_bad_names(tmp_path):
    root = builders.build_gtzan(tmp_path / "g")
    write(root / "audio" / "polka" / "polka.00000.wav", tone(100, 1.0))
    write(root / "audio" / "blues" / "my song.wav", tone(100, 1.0))
    write(root / "audio" / "blues" / "rock.00009.wav", tone(100, 1.0))
    ds = open_dataset(root)
    text = " ".join(map(str, ds.problems))
    assert "unknown genre folder 'polka'" in text and "<genre>.NNNNN" in text and "in folder 'blues'" in text
    assert "rock.00009" not in ds and len([t for t in ds if t.audio_path]) == 6


def test_genre_folders_keep_unicode_paths_and_relative_ids(tmp_path):
    ds = open_dataset(builders.build_genre_folders(tmp_path / "lib"))
    assert sorted(ds.genres) == ["hip-hop", "jazz"]
    assert "Hip Hop/Album ü/01 Track one" in ds


def test_image_folder_duplicate_ids_reported(tmp_path):
    root = builders.build_image_folders(tmp_path / "img")
    (root / "pop" / "pop.0.png").rename(root / "pop" / "reggae.0.png")
    ds = open_dataset(root)
    assert len(ds) == 3 and any("duplicate track id 'reggae.0'" in str(p) for p in ds.problems)


def test_manifest_missing_files_and_split(tmp_path):
    path = builders.build_manifest(tmp_path / "m")
    with open(path, "a") as f:
        f.write("audio/missing.wav,rock,X,train\n")
    ds = open_dataset(path)
    assert len(ds) == 2 and ds.published_splits["manifest"] == {"audio/a": "train", "audio/b": "test"}
    assert any("file not found" in str(p) for p in ds.problems)
    assert ds["audio/a"].artist == "Band A" and ds["audio/a"].genre == "rock"


def test_feature_table_nan_missing_and_duplicate_rows_are_reported(tmp_path):
    path = builders.build_feature_table(tmp_path / "t")
    with open(path, "a") as f:
        f.write("t9.wav,1,2,nan,4,5,6,a\n")
        f.write("t8.wav,1,2,,4,5,6,a\n")
        f.write("t0.wav,1,2,3,4,5,6,a\n")
        f.write(",1,2,3,4,5,6,a\n")
    ds = open_dataset(path)
    assert len(ds) == 4
    reasons = " ".join(map(str, ds.problems))
    assert "NaN" in reasons and "missing value" in reasons and "duplicate id 't0'" in reasons
    assert "row without an id" in reasons
    assert ":6:" in reasons  # the line number of the NaN row


def test_emotify_annotations_become_extras(tmp_path):
    ds = open_dataset(builders.build_emotify(tmp_path / "e"))
    assert len(ds) == 8 and ds["rock.002"].extra["n_annotations"] == 2 and ds["rock.001"].extra["n_annotations"] == 1
    assert ds["rock.002"].extra["amazement"] == 0.5 and ds["pop.001"].extra == {}


def test_lyrics_placeholders_left_out(tmp_path):
    ds = open_dataset(builders.build_lyrics_br(tmp_path / "l"))
    assert len(ds) == 2 and ds["art-a/Um"].artist == "art-a"
    assert sum("no lyrics" in str(p) for p in ds.problems) == 2


def test_mendeley_descriptors(tmp_path):
    ds = open_dataset(builders.build_mendeley(tmp_path / "m"))
    assert ds["10"].genre == "hip-hop" and ds["10"].table.shape == (6,)


def test_fma_roots_single_genre_top_n_and_split(tmp_path):
    meta = builders.build_fma(tmp_path / "fma")
    ds = open_dataset(meta)
    assert {t.track_id: t.genre for t in ds} == {"2": "rock", "3": "rock", "5": "electronic", "20": "hip-hop"}
    assert ds.published_splits["fma"] == {"2": "train", "3": "train", "5": "valid", "20": "test"}
    assert any("several roots" in str(p) for p in ds.problems)
    assert ds["5"].audio_path.name == "000005.mp3"
    top1 = open_dataset(meta, subset="medium", top_n=1, audio_dir=tmp_path / "fma" / "fma_small")
    assert {t.track_id for t in top1} == {"2", "3", "134"} and top1.genres == ["rock"]


def test_unknown_path_and_unrecognised_layout(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        open_dataset(tmp_path / "nothing")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DatasetError, match="cannot tell what kind"):
        open_dataset(tmp_path / "notes.txt")
