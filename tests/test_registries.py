"""Every registry adds a name once and looks names up the same way: an unknown name gets the close match."""

from __future__ import annotations

import pytest

from genrefusion.benchmarks.suites import get_suite
from genrefusion.datasets.registry import open_dataset
from genrefusion.errors import GenreFusionError
from genrefusion.features.registry import get_feature
from genrefusion.fusion.registry import get_fusion
from genrefusion.models.registry import get_branch
from genrefusion.registries import register
from genrefusion.training.protocols import get_protocol


@pytest.mark.parametrize("look_up, typo, meant", [
    (get_feature, "log_mell", "log_mel"), (get_branch, "cnn2", "cnn2d"), (get_fusion, "stackin", "stacking"),
    (get_protocol, "kfolds", "kfold"), (get_suite, "gtzan_ff", "gtzan-ff")])
def test_an_unknown_name_is_one_error_with_the_close_match(look_up, typo, meant):
    with pytest.raises(GenreFusionError, match=f"did you mean '{meant}'"):
        look_up(typo)


def test_a_dataset_kind_is_looked_up_the_same_way(tmp_path):
    with pytest.raises(GenreFusionError, match="did you mean 'gtzan'"):
        open_dataset(tmp_path, kind="gtzn")


def test_a_name_registered_twice_is_refused():
    table: dict = {}
    register(table, "x", 1, "thing", GenreFusionError)
    with pytest.raises(GenreFusionError, match="thing 'x' registered twice"):
        register(table, "x", 2, "thing", GenreFusionError)
    assert table == {"x": 1}
