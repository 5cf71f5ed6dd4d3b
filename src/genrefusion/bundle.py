"""Self-describing model bundles: a folder that rebuilds a trained model without the training code.

``bundle.json`` holds the label list, every input's feature name, parameters and how its audio
was read (the store spec), the windowing and aggregation, each branch's and the fusion's
registered name and arguments, the training config and library versions; ``weights.pt`` holds
the networks' state dicts; ``arrays.npz`` the fitted state of classical branches and decision-level
fusions that have an array form (logistic regression, the tag prior, weighted mean: rebuilt through
the registries, no pickle); ``objects.pkl`` only the fitted scikit-learn parts that have none (SVM,
gradient boosting, TF-IDF, stacking). ``load_bundle`` gives back a :class:`Fitted` whose outputs
equal the saved model's.
"""

from __future__ import annotations

import copy
import json
import pickle
import platform
import time
from pathlib import Path
from typing import Any

from typing import TYPE_CHECKING

import numpy as np

from genrefusion import __version__
from genrefusion.errors import ModelError

if TYPE_CHECKING:
    from genrefusion.training.fit import Fitted

FORMAT = 1
# torch and the model classes are imported where a bundle is written or rebuilt, not at import: reading a
# bundle's metadata (read_meta) is what a process that only hands files to worker processes needs


def _versions() -> dict[str, str]:
    import librosa
    import numpy
    import sklearn
    import torch

    return {"genrefusion": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "librosa": librosa.__version__, "scikit-learn": sklearn.__version__}


def save_bundle(fitted: Fitted, folder: str | Path, *, aggregate: str = "mean", config: dict | None = None,
                card: dict | None = None) -> Path:
    """Write ``fitted`` to ``folder`` (created; files replaced atomically)."""
    import torch

    from genrefusion.fusion.model import FusionModel
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights: dict[str, Any] = {}
    objects: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    m = fitted.model
    if isinstance(m, FusionModel):
        model = {"type": "joint", "spec": m.spec()}
        weights["model"] = m.state_dict()
    else:
        branches = {}
        for name, b in m.branches.items():
            if isinstance(b, FusionModel):
                branches[name] = {"type": "neural", "spec": b.spec()}
                weights[f"branch/{name}"] = b.state_dict()
            else:
                branches[name] = {"type": "classical", "model": b.branch_name, "params": b.params,
                                  "in_shape": list(b.in_shape), **_state(b, f"branch/{name}", arrays, objects)}
        fusion = {"type": None}
        if isinstance(m.fusion, torch.nn.Module):
            fusion = {"type": "neural", **m.fusion_spec, "dims": {n: list(d) for n, d in m.fusion_dims.items()}}
            weights["fusion"] = m.fusion.state_dict()
        elif m.fusion is not None:
            fusion = {"type": "decision", **m.fusion_spec, "branches": list(m.fusion.names),
                      **_state(m.fusion, "fusion", arrays, objects)}
        model = {"type": "frozen", "branches": branches, "branch_inputs": m.branch_inputs, "fusion": fusion}
    meta = {"format": FORMAT, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "labels": fitted.labels,
            "windowing": {"window_s": fitted.windowing.window_s, "hop_s": fitted.windowing.hop_s},
            "aggregate": aggregate, "inputs": fitted.inputs, "model": model, "versions": _versions(),
            "config": config or {}, "card": card or {}}
    _write(folder / "bundle.json", lambda f: f.write(json.dumps(meta, indent=1, default=str).encode()))
    _write(folder / "weights.pt", lambda f: torch.save(weights, f))
    writers = {"arrays.npz": (arrays, lambda f: np.savez(f, **arrays)),
               "objects.pkl": (objects, lambda f: pickle.dump(objects, f, protocol=pickle.HIGHEST_PROTOCOL))}
    for name, (content, write) in writers.items():
        if content:
            _write(folder / name, write)
        elif (folder / name).exists():
            (folder / name).unlink()
    return folder


def _state(obj, key: str, arrays: dict, objects: dict) -> dict:
    """Where a fitted classical branch or decision fusion keeps its state: its named arrays under ``key/`` in
    ``arrays.npz``, or, with no array form, a pickle in ``objects.pkl``."""
    own = obj.arrays()
    if own is None:
        objects[key] = obj
        return {"state": "pickle"}
    arrays.update({f"{key}/{k}": np.asarray(v) for k, v in own.items()})
    return {"state": "arrays"}


def _from_state(entry: dict, key: str, arrays, objects: dict, build):
    """A classical branch or decision fusion as :func:`_state` saved it (``build()``: it, unfitted)."""
    if entry.get("state", "pickle") == "pickle":
        return objects[key]
    prefix = key + "/"
    return build().load_arrays({k[len(prefix):]: arrays[k] for k in arrays.files if k.startswith(prefix)})


def _write(path: Path, fn) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        fn(f)
    tmp.replace(path)


def read_meta(folder: str | Path) -> dict:
    path = Path(folder) / "bundle.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError("not a model bundle (no bundle.json)", path=folder) from None
    except (OSError, ValueError) as err:
        raise ModelError(f"unreadable bundle.json ({err})", path=path) from None
    if meta.get("format") != FORMAT:
        raise ModelError(f"bundle format {meta.get('format')!r} is not {FORMAT}", path=path)
    return meta


def load_bundle(folder: str | Path) -> tuple[Fitted, dict]:
    """Rebuild the model of a bundle; returns it and the bundle's metadata."""
    import torch

    from genrefusion.fusion.model import FrozenFusion, FusionModel
    from genrefusion.fusion.registry import build_fusion
    from genrefusion.models.registry import build_branch
    from genrefusion.training.data import Windowing
    from genrefusion.training.fit import Fitted
    folder = Path(folder)
    meta = read_meta(folder)
    try:
        weights = torch.load(folder / "weights.pt", weights_only=True)
    except (OSError, RuntimeError, pickle.UnpicklingError) as err:
        raise ModelError(f"unreadable weights ({err})", path=folder / "weights.pt") from None
    objects: dict[str, Any] = {}
    if (folder / "objects.pkl").exists():
        with open(folder / "objects.pkl", "rb") as f:
            objects = pickle.load(f)  # the bundle's own fitted scikit-learn objects
    arrays = np.load(folder / "arrays.npz", allow_pickle=False) if (folder / "arrays.npz").exists() else None
    spec = meta["model"]
    n_classes = len(meta["labels"])
    if spec["type"] == "joint":
        model: Any = _module(FusionModel(**_no_initial_weights(spec["spec"])), weights["model"])
    else:
        def classical(n: str, b: dict):
            return _from_state(b, f"branch/{n}", arrays, objects, lambda: build_branch(
                b["model"], n_classes=n_classes, in_shape=tuple(b["in_shape"]), **b["params"]))

        branches = {n: (_module(FusionModel(**_no_initial_weights(b["spec"])), weights[f"branch/{n}"]) if b["type"] == "neural"
                        else classical(n, b)) for n, b in spec["branches"].items()}
        f = spec["fusion"]
        fusion = None
        if f["type"] == "neural":
            dims = {n: tuple(d) for n, d in f["dims"].items()}
            fusion = _module(build_fusion(f["strategy"], branches=dims, n_classes=n_classes, **f["args"]), weights["fusion"])
        elif f["type"] == "decision":
            fusion = _from_state(f, "fusion", arrays, objects, lambda: build_fusion(
                f["strategy"], branches={n: (0, n_classes) for n in f.get("branches", spec["branches"])}, n_classes=n_classes,
                **f["args"]))
        fusion_spec = {k: f[k] for k in ("strategy", "args")} if f["type"] else {}
        model = FrozenFusion(n_classes=n_classes, branches=branches, branch_inputs=spec["branch_inputs"],
                             fusion=fusion, fusion_spec=fusion_spec,
                             fusion_dims={n: tuple(d) for n, d in f.get("dims", {}).items()})
    w = meta["windowing"]
    return Fitted(model=model, labels=meta["labels"], windowing=Windowing(w["window_s"], w["hop_s"]),
                  inputs=meta["inputs"]), meta


def _no_initial_weights(net_spec: dict) -> dict:
    """The network spec with ``pretrained=False`` for branches that take it: the bundle's weights replace
    the initial (e.g. ImageNet) ones, which need not be read, nor their package installed."""
    from genrefusion.models.registry import get_branch

    out = copy.deepcopy(net_spec)
    for b in out["branches"].values():
        if "pretrained" in get_branch(b["model"]).params:
            b.setdefault("args", {})["pretrained"] = False
    return out


def _module(module, state: dict):
    module.load_state_dict(state)
    return module.eval()
