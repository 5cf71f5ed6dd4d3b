"""genrefusion: music genre classification by multi-modal fusion.

The Python API (:mod:`genrefusion.api`)::

    import genrefusion
    model = genrefusion.load_model()              # the shipped model; or a bundle / run folder
    model.predict("song.mp3").top(3)              # or model.predict(y, sr=22050) on a signal in memory
    genrefusion.open_dataset(path), genrefusion.extract(dataset, store=...), genrefusion.train(config)

The package is organised by pipeline stage: ``audio`` (decode, resample, windows), ``datasets``
(Track/Dataset indexes), ``splits`` (leak-free splits and the leak checker), ``features`` (pure
feature functions, their registry and the feature store), ``models`` and ``fusion`` (branch and
fusion registries), ``training``, ``inference`` (prediction, library tagging, the service),
``bundle`` (saved models) and ``cli`` (a thin typer front end over the library).
"""

from genrefusion.errors import GenreFusionError

__version__ = "0.1.0"
#: the API's names, imported when first used: ``import genrefusion`` stays light (no torch, no librosa)
_API = {"load_model": "genrefusion.api", "open_dataset": "genrefusion.api", "extract": "genrefusion.api",
        "train": "genrefusion.api", "Predictor": "genrefusion.inference.predictor",
        "Prediction": "genrefusion.inference.predictor", "RunConfig": "genrefusion.config"}
__all__ = ["GenreFusionError", "__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'genrefusion' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
