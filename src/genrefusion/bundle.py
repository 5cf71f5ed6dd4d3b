"""Self-describing model bundles: a folder that rebuilds a trained model without the training code.

A bundle is data; reading one runs no code from it (no pickle):

- ``bundle.json``: the label list, every input's feature name, parameters and how its audio was
  read (the store spec), the windowing and aggregation, each branch's and the fusion's registered
  name and arguments, the training config, the model card and library versions;
- ``arrays.npz`` (read with ``allow_pickle=False``): the networks' parameters and buffers under
  ``net/<part>/<parameter>``, and the fitted state of the classical branches and decision-level
  fusions that have an array form (logistic regression, the tag prior, weighted mean) under
  ``<part>/<name>``; each part is rebuilt through its registry and given these arrays;
- ``sklearn.skops``: the fitted scikit-learn objects of the parts without one (SVM, gradient
  boosting, TF-IDF, stacking, hierarchical), in skops' format (JSON and arrays in a zip), loaded
  only if every type in it is one of :data:`TRUSTED` (what genrefusion's registered parts use).

Format 1 bundles (networks in ``weights.pt``, read with torch's ``weights_only`` loader; fitted
objects in ``objects.pkl``, a pickle) are read when they hold no pickle; :func:`convert_bundle`
(``genrefusion model convert``, with ``--allow-pickle`` for a trusted ``objects.pkl``) rewrites
one in today's format. ``load_bundle`` gives back a :class:`Fitted` whose outputs equal the
saved model's.
"""

from __future__ import annotations

import json
import pickle
import platform
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from genrefusion import __version__
from genrefusion.errors import ModelError

if TYPE_CHECKING:
    from genrefusion.fusion.model import Fitted

FORMAT = 2
#: the formats :func:`load_bundle` reads
READS = (1, 2)
SKOPS = "sklearn.skops"
#: the types beyond skops' defaults that genrefusion's registered parts put in ``sklearn.skops``
#: (tests/test_bundle.py fits every registered classical branch and decision fusion and checks them)
TRUSTED = ("sklearn.calibration._CalibratedClassifier", "sklearn.calibration._SigmoidCalibration",  # svm
           "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",  # gbm without xgboost
           "xgboost.core.Booster", "xgboost.sklearn.XGBClassifier",  # gbm
           "sklearn.neural_network._stochastic_optimizers.AdamOptimizer")  # hierarchical's mlp
# torch and the model classes are imported where a bundle is written or rebuilt, not at import: reading a
# bundle's metadata (read_meta) is what a process that only hands files to worker processes needs


@dataclass
class AudioSource:
    """How prediction computes an input from a signal: a registered audio feature, its parameters, the rate."""

    feature: str
    params: dict[str, Any]
    sr: int


@dataclass
class InputSpec:
    """One model input as a bundle records it: the stored feature it was trained on, its layout, frames per
    second (None: no time axis), one example's shape, the stage's resize and channels, the seconds an image's
    width covers, the store spec it was read with, and how to compute it from audio (None: it cannot be)."""

    feature: str
    layout: str
    fps: float | None
    shape: tuple[int, ...]
    store_spec: dict[str, Any]
    audio: AudioSource | None = None
    resize: list[int] | None = None
    channels: int | None = None
    seconds: float | None = None

    def stage(self) -> dict[str, Any]:
        """What the network's input stage needs (:class:`FusionModel`'s ``inputs``)."""
        return {"layout": self.layout, "shape": list(self.shape), "resize": self.resize, "channels": self.channels}

    def to_json(self) -> dict[str, Any]:
        return {"feature": self.feature, "layout": self.layout, "fps": self.fps, "shape": list(self.shape),
                "resize": self.resize, "channels": self.channels, "seconds": self.seconds,
                "store_spec": self.store_spec, "audio": None if self.audio is None else
                {"feature": self.audio.feature, "params": dict(self.audio.params), "sr": self.audio.sr}}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "InputSpec":
        a = d.get("audio")
        return cls(d["feature"], d["layout"], d.get("fps"), tuple(d["shape"]), dict(d.get("store_spec") or {}),
                   AudioSource(a["feature"], dict(a["params"]), int(a["sr"])) if a else None, d.get("resize"),
                   d.get("channels"), d.get("seconds"))



def _versions() -> dict[str, str]:
    import librosa
    import numpy
    import sklearn
    import torch

    return {"genrefusion": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "librosa": librosa.__version__, "scikit-learn": sklearn.__version__}


def save_bundle(fitted: Fitted, folder: str | Path, *, aggregate: str = "mean", config: dict | None = None,
                card: dict | None = None, created: str | None = None) -> Path:
    """Write ``fitted`` to ``folder`` (created; files replaced atomically); ``created``: when the model was made
    (default: now)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights: dict[str, Any] = {}
    objects: dict[str, Any] = {}  # part key -> its fitted scikit-learn object (for sklearn.skops)
    arrays: dict[str, np.ndarray] = {}
    model = fitted.model.to_bundle(weights, lambda part, key: _state(part, key, arrays, objects))
    meta = {"format": FORMAT, "created": created or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "labels": fitted.labels,
            "windowing": {"window_s": fitted.windowing.window_s, "hop_s": fitted.windowing.hop_s},
            "aggregate": aggregate, "inputs": {n: s.to_json() for n, s in fitted.inputs.items()}, "model": model,
            "versions": _versions(),
            "config": config or {}, "card": card or {}}
    for key, state in weights.items():
        arrays.update({f"net/{key}/{name}": t.detach().cpu().numpy() for name, t in state.items()})
    _write(folder / "bundle.json", lambda f: f.write(json.dumps(meta, indent=1, default=str).encode()))
    writers = {"arrays.npz": (arrays, lambda f: np.savez(f, **arrays)),
               SKOPS: (objects, lambda f: f.write(objects_to_bytes(objects)))}
    for name, (content, write) in writers.items():
        if content:
            _write(folder / name, write)
        elif (folder / name).exists():
            (folder / name).unlink()
    for old in ("weights.pt", "objects.pkl"):  # a format 1 bundle's files, written over
        if (folder / old).exists():
            (folder / old).unlink()
    return folder


def objects_to_bytes(objects: dict[str, Any]) -> bytes:
    """Fitted scikit-learn objects (by part key) as the bytes of ``sklearn.skops``: JSON and arrays, no pickle."""
    import skops.io

    try:
        blob = skops.io.dumps(objects)
    except TypeError as err:  # a type skops cannot write without pickle
        raise ModelError(f"{', '.join(objects)}: a fitted object skops cannot store without pickle ({err})") from None
    unknown = sorted(set(skops.io.get_untrusted_types(data=blob)) - set(TRUSTED))
    if unknown:  # written, it could not be read back: say so now, not when a user loads it
        raise ModelError(f"{', '.join(objects)}: types genrefusion does not load from a bundle: {', '.join(unknown)}; "
                         "add them to genrefusion.bundle.TRUSTED if they hold data only")
    return blob


def objects_from_bytes(blob: bytes, path: Path | None = None) -> dict[str, Any]:
    """What :func:`objects_to_bytes` wrote; a :class:`ModelError` if it holds a type not in :data:`TRUSTED`."""
    import skops.io

    try:
        unknown = sorted(set(skops.io.get_untrusted_types(data=blob)) - set(TRUSTED))
        if unknown:
            raise ModelError(f"holds types genrefusion does not load: {', '.join(unknown)}", path=path)
        return skops.io.loads(blob, trusted=list(TRUSTED))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ModelError(f"unreadable ({err})", path=path) from None


def _state(obj, key: str, arrays: dict, objects: dict) -> dict:
    """Where a fitted classical branch or decision fusion keeps its state: its named arrays under ``key/`` in
    ``arrays.npz``, or, with no array form, its fitted scikit-learn object in ``sklearn.skops``."""
    own = obj.arrays()
    if own is None:
        objects[key] = obj.fitted_object()
        return {"state": "skops"}
    arrays.update({f"{key}/{k}": np.asarray(v) for k, v in own.items()})
    return {"state": "arrays"}


def _from_state(entry: dict, key: str, arrays, objects: dict, build):
    """A classical branch or decision fusion as :func:`_state` saved it (``build()``: it, unfitted)."""
    state = entry.get("state", "pickle")
    if state == "pickle":  # format 1: the whole object, unpickled
        return objects[key]
    if state == "skops":
        return build().load_fitted_object(objects[key])
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
    if meta.get("format") not in READS:
        raise ModelError(f"bundle format {meta.get('format')!r}: this genrefusion reads formats "
                         f"{', '.join(map(str, READS))}", path=path)
    return meta


def _weights(folder: Path, meta: dict, arrays) -> dict[str, dict]:
    """The networks' state dicts: from ``arrays.npz`` (format 2) or ``weights.pt`` (format 1)."""
    import torch

    if meta["format"] == 1:
        try:
            return torch.load(folder / "weights.pt", weights_only=True)
        except (OSError, RuntimeError, pickle.UnpicklingError) as err:
            raise ModelError(f"unreadable weights ({err})", path=folder / "weights.pt") from None
    weights: dict[str, dict] = {}
    for name in arrays.files if arrays is not None else ():
        if name.startswith("net/"):
            key, param = name[4:].rsplit("/", 1)
            weights.setdefault(key, {})[param] = torch.from_numpy(arrays[name])
    return weights


def _objects(folder: Path, meta: dict, allow_pickle: bool) -> dict[str, Any]:
    """The fitted scikit-learn objects: from ``sklearn.skops`` (types checked), or a format 1 bundle's
    ``objects.pkl`` (only with ``allow_pickle``: a pickle runs code when read)."""
    if (folder / SKOPS).exists():
        return objects_from_bytes((folder / SKOPS).read_bytes(), folder / SKOPS)
    path = folder / "objects.pkl"
    if not path.exists():
        return {}
    if not allow_pickle:
        raise ModelError(f"an older bundle whose fitted objects are a Python pickle (objects.pkl), which runs code "
                         f"when read; if you made it or trust it, convert it: genrefusion model convert {folder} "
                         f"--out NEW_FOLDER --allow-pickle", path=folder)
    warnings.warn(f"reading {path}, a pickle: it runs code when read", stacklevel=3)
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except (ImportError, AttributeError, pickle.UnpicklingError, EOFError) as err:
        made = ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items() if k in ("numpy", "scikit-learn"))
        raise ModelError(f"cannot be read here ({type(err).__name__}: {err}); it was written with {made}: convert "
                         f"it where those are installed", path=path) from None


def load_bundle(folder: str | Path, *, allow_pickle: bool = False) -> tuple[Fitted, dict]:
    """Rebuild the model of a bundle; returns it and the bundle's metadata. ``allow_pickle``: read a format 1
    bundle's ``objects.pkl`` (for :func:`convert_bundle`; a pickle runs code when read)."""
    from genrefusion.fusion.model import Fitted, model_from_bundle
    from genrefusion.track_data import Windowing

    folder = Path(folder)
    meta = read_meta(folder)
    objects = _objects(folder, meta, allow_pickle)
    arrays = np.load(folder / "arrays.npz", allow_pickle=False) if (folder / "arrays.npz").exists() else None
    model = model_from_bundle(meta["model"], n_classes=len(meta["labels"]), weights=_weights(folder, meta, arrays),
                              restore=lambda entry, key, build: _from_state(entry, key, arrays, objects, build))
    w = meta["windowing"]
    return Fitted(model=model, labels=meta["labels"], windowing=Windowing(w["window_s"], w["hop_s"]),
                  inputs={n: InputSpec.from_json(d) for n, d in meta["inputs"].items()}), meta


def convert_bundle(source: str | Path, dest: str | Path, *, allow_pickle: bool = False) -> Path:
    """Rewrite the bundle at ``source`` in today's format at ``dest`` (``allow_pickle``: read its ``objects.pkl``)."""
    fitted, meta = load_bundle(source, allow_pickle=allow_pickle)
    return save_bundle(fitted, dest, aggregate=meta["aggregate"], config=meta.get("config"), card=meta.get("card"),
                       created=meta.get("created"))
