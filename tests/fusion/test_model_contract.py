"""One model contract: only the model core (fusion/model.py) tells model kinds apart."""

from __future__ import annotations

import re
from pathlib import Path

import genrefusion

SRC = Path(genrefusion.__file__).parent
KINDS = r"(FusionModel|FrozenFusion|ClassicalBranch|DecisionFusion|OnnxNetwork|OnnxModel|nn\.Module|torch\.nn\.Module)"
DISPATCH = [re.compile(rf"isinstance\([^)]*\b{KINDS}\b"), re.compile(r"hasattr\([^)]*[\"'](prepare|head|branches|fusion)[\"']"),
            re.compile(r"getattr\([^)]*[\"'](head|prepare)[\"']")]


def test_no_type_sniffing_on_model_kinds_outside_the_model_core():
    found = []
    for path in SRC.rglob("*.py"):
        if path.relative_to(SRC).as_posix() == "fusion/model.py":
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if any(p.search(line) for p in DISPATCH):
                found.append(f"{path.relative_to(SRC)}:{n}: {line.strip()}")
    assert not found, "model kinds told apart outside fusion/model.py:\n" + "\n".join(found)


def test_both_model_types_keep_the_contract():
    from genrefusion.fusion.model import MODEL_TYPES, FrozenFusion, FusionModel, Model

    for cls in (FusionModel, FrozenFusion):
        for name in (n for n in Model.__dict__ if not n.startswith("_") and callable(getattr(Model, n))):
            assert callable(getattr(cls, name, None)), f"{cls.__name__} lacks {name}"
    assert set(MODEL_TYPES) == {"joint", "frozen"}


def test_prediction_loads_no_training_code():
    import subprocess
    import sys

    script = ("import sys, numpy as np; from genrefusion.inference.predictor import Predictor; "
              "y = 0.1 * np.random.default_rng(0).standard_normal(22050 * 5).astype('float32'); "
              "Predictor().predict_array(y, sr=22050); "
              "print(sorted(m for m in sys.modules if m.startswith('genrefusion.training')))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
