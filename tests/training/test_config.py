import pytest

from genrefusion.config import RunConfig, load_config, save_config
from genrefusion.errors import ConfigError


def test_a_typo_fails_at_load_with_the_closest_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: x\ntrain:\n  epocs: 3\n")
    with pytest.raises(ConfigError, match=r"unknown key train\.epocs; did you mean 'epochs'"):
        load_config(p)


def test_wrong_types_are_refused(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train: {epochs: three}\n")
    with pytest.raises(ConfigError, match="train.epochs must be int"):
        load_config(p)


def test_toml_yaml_and_overrides_agree(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("name: a\ntrain: {epochs: 3, lr: 0.01}\nbranches: {m: {model: mlp, inputs: [t]}}\n")
    t = tmp_path / "c.toml"
    t.write_text('name = "a"\n[train]\nepochs = 3\nlr = 0.01\n[branches.m]\nmodel = "mlp"\ninputs = ["t"]\n')
    a, b = load_config(y), load_config(t)
    assert a == b and a.train.epochs == 3 and a.branches["m"].model == "mlp"
    c = load_config(y, ["train.epochs=7", "fusion.strategy=gated"])
    assert c.train.epochs == 7 and c.fusion.strategy == "gated"
    with pytest.raises(ConfigError, match="unknown key train.epoch"):
        load_config(y, ["train.epoch=7"])


def test_saved_config_loads_back_equal(tmp_path):
    cfg = RunConfig(name="z")
    cfg.train.hyper_dynamic.enabled = True
    assert load_config(save_config(cfg, tmp_path / "c.yaml")) == cfg
