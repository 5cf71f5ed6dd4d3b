"""musicnn's networks as ONNX graphs run by onnxruntime: the same outputs as the torch port (to ~1e-5) in about
three quarters of the time on one CPU core (measured: 32 ms a patch against 43 ms), which the shipped model's
fast profile needs. The graphs of the networks the shipped model reads ship with the package
(``pretrained/onnx/*.onnx``, made from the ``musicnn`` wheel's weights by ``python -m
genrefusion.pretrained.musicnn_onnx``; the musicnn weights are ISC-licensed); a network without a graph, or a
process with ``GENREFUSION_MUSICNN=torch``, runs in torch.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import numpy as np

from genrefusion.pretrained.musicnn_spec import MODELS, N_MELS, PATCH_FRAMES, VECTOR_LAYERS

GRAPHS = Path(__file__).with_name("onnx")
#: the networks whose graphs ship: the ones the shipped model reads
SHIPPED = ("msd-musicnn", "mtt-musicnn")
OPSET = 17


def outputs(model: str) -> tuple[str, ...]:
    """What a graph returns, in order: the logits and every vector layer of its architecture."""
    return ("logits", *VECTOR_LAYERS[MODELS[model][1]])


@cache
def session(model: str):
    """An onnxruntime session of ``model``'s shipped graph on one thread, or None (no graph, no onnxruntime, or
    ``GENREFUSION_MUSICNN=torch``)."""
    path = GRAPHS / f"{model}.onnx"
    if os.environ.get("GENREFUSION_MUSICNN", "").lower() == "torch" or not path.is_file():
        return None
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    options = ort.SessionOptions()
    # one thread: worker processes are the parallelism, as for torch (see inference.predictor.single_threaded)
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run(model: str, patches: np.ndarray, layers: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """``layers`` of each patch ``(n_patches, D)`` through the graph, one patch per call; None without a graph."""
    s = session(model)
    if s is None:
        return None
    names = outputs(model)
    got: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    for i in range(len(patches)):
        out = dict(zip(names, s.run(None, {"patches": patches[i:i + 1]})))
        for layer in layers:
            got[layer].append(out[layer])
    return {layer: np.concatenate(parts) for layer, parts in got.items()}


def export(model: str, folder: Path = GRAPHS) -> Path:
    """Write ``model``'s graph (from the torch port of the wheel's weights) to ``folder``; needs ``onnx``."""
    import torch

    from genrefusion.pretrained.musicnn import load_musicnn

    names = outputs(model)

    class Flat(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            out = self.net(x)
            return tuple(out[n] for n in names)

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{model}.onnx"
    example = torch.zeros(1, PATCH_FRAMES, N_MELS)
    torch.onnx.export(Flat(load_musicnn(model)).eval(), (example,), str(path), dynamo=False, input_names=["patches"],
                      output_names=list(names), opset_version=OPSET,
                      dynamic_axes={"patches": {0: "batch"}, **{n: {0: "batch"} for n in names}})
    return path


if __name__ == "__main__":  # pragma: no cover - a maintainer's step
    for m in SHIPPED:
        print(export(m))
