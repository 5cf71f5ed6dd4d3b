"""ONNX export of a bundle's networks, and an onnxruntime stand-in for them.

Every torch network of a bundle (a joint model whole; each neural branch of a two-stage model,
input stages included) becomes ``onnx/<name>.onnx`` beside the bundle's weights, with a dynamic
batch axis. Its outputs are the network's dict flattened (``logits``, ``<branch>.logits``,
``<branch>.embedding``, ...). :class:`OnnxNetwork` runs one through onnxruntime and returns the
same dict, so :class:`~genrefusion.fusion.model.FrozenFusion`'s classical branches and decision
fusion work unchanged on top of it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from genrefusion.errors import ModelError
from genrefusion.fusion.model import FusionModel
from genrefusion.models.estimators import softmax

OPSET = 17


class _Flat(nn.Module):
    """A FusionModel with positional inputs and a flat tuple of outputs, for the exporter."""

    def __init__(self, model: FusionModel, inputs: list[str]):
        super().__init__()
        self.model, self.inputs = model, inputs

    def forward(self, *xs):
        out = self.model(dict(zip(self.inputs, xs)))
        flat = [out["logits"]]
        for b, o in out["branches"].items():
            flat += [o[k] for k in sorted(o)]
        return tuple(flat)

    @staticmethod
    def output_names(out: Mapping[str, Any]) -> list[str]:
        return ["logits"] + [f"{b}.{k}" for b, o in out["branches"].items() for k in sorted(o)]


def export_onnx(bundle: str | Path, *, check: bool = True, atol: float = 1e-4) -> list[Path]:
    """Write ``<bundle>/onnx/*.onnx`` for every network in the bundle; returns their paths.

    With ``check``, each graph is run by onnxruntime on seeded random inputs and compared with
    torch; a difference above ``atol`` raises ModelError.
    """
    from genrefusion.bundle import load_bundle

    folder = Path(bundle)
    fitted, _ = load_bundle(folder)
    text = [n for n, i in fitted.inputs.items() if i.layout == "text"]
    if text:
        raise ModelError(f"inputs {text} are text, which ONNX graphs cannot take; export needs numeric inputs", path=folder)
    if not fitted.model.networks():
        raise ModelError("the model has no trained network to export: its branches and fusion are fitted arrays "
                         "(and pretrained networks it reads, like musicnn, run inside its features)", path=folder)
    import shutil

    # written whole into a temporary folder and renamed: a failed export leaves nothing behind
    final, out_dir = folder / "onnx", folder / "onnx.tmp"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir()
    try:
        written = _export_all(fitted, out_dir, check=check, atol=atol)
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    shutil.rmtree(final, ignore_errors=True)
    out_dir.rename(final)
    return [final / p.name for p in written]


def _export_all(fitted, out_dir: Path, *, check: bool, atol: float) -> list[Path]:
    written, manifest = [], {}
    for name, net in fitted.model.networks().items():
        net.eval()
        inputs = list(net.stages)
        example = _example(net, fitted, inputs, batch=2)
        with torch.no_grad():
            names = _Flat.output_names(net(example))
        path = out_dir / f"{name}.onnx"
        torch.onnx.export(_Flat(net, inputs).eval(), tuple(example[i] for i in inputs), str(path), dynamo=False,
                          input_names=inputs, output_names=names, opset_version=OPSET,
                          dynamic_axes={n: {0: "batch"} for n in inputs + names})
        manifest[name] = {"file": path.name, "inputs": inputs, "outputs": names}
        written.append(path)
        if check:
            diff = _max_difference(net, OnnxNetwork(path, inputs, names), _example(net, fitted, inputs, batch=3, seed=1))
            if diff > atol:
                raise ModelError(f"ONNX graph {path.name} differs from torch by {diff:.2e} (> {atol})", path=path)
    (out_dir / "onnx.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return written


def _example(net: FusionModel, fitted, inputs: list[str], *, batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded inputs drawn around the training statistics, so the check runs where the model does."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for i in inputs:
        stage = net.stages[i]
        z = torch.randn((batch, *fitted.inputs[i].shape), generator=g)
        out[i] = z * stage.std + stage.mean if stage.standardize else z
    return out


def _max_difference(net: FusionModel, onnx_net: "OnnxNetwork", x: dict[str, torch.Tensor]) -> float:
    with torch.no_grad():
        ref = net(x)
    got = onnx_net(x)
    diffs = [float((ref["logits"] - got["logits"]).abs().max())]
    for b, o in ref["branches"].items():
        diffs += [float((o[k] - got["branches"][b][k]).abs().max()) for k in o]
    return max(diffs)


class OnnxNetwork:
    """An exported network run by onnxruntime; called like the FusionModel it replaces."""

    family = "neural"

    def __init__(self, path: str | Path, inputs: list[str], outputs: list[str]):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()  # as many as torch would use here
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.inputs, self.outputs = inputs, outputs

    def eval(self) -> "OnnxNetwork":
        return self

    def branch_output(self, x: Mapping[str, torch.Tensor], inputs: list[str]) -> dict[str, torch.Tensor]:
        """As a frozen model's branch: the one branch's outputs."""
        return next(iter(self(x)["branches"].values()))

    def __call__(self, x: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        feed = {i: np.ascontiguousarray(x[i].numpy(), dtype=np.float32) for i in self.inputs}
        values = dict(zip(self.outputs, self.session.run(self.outputs, feed)))
        branches: dict[str, dict[str, torch.Tensor]] = {}
        for key, v in values.items():
            if key != "logits":
                b, k = key.split(".", 1)
                branches.setdefault(b, {})[k] = torch.from_numpy(v)
        return {"logits": torch.from_numpy(values["logits"]), "branches": branches}

    def predict(self, x: Mapping[str, torch.Tensor]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        out = self(x)
        return softmax(out["logits"]), {n: softmax(o["logits"]) for n, o in out["branches"].items()}


class OnnxModel:
    """A bundle's model with its networks replaced by their ONNX graphs."""

    @staticmethod
    def for_bundle(folder: str | Path, fitted):
        folder = Path(folder)
        try:
            manifest = json.loads((folder / "onnx" / "onnx.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelError("the bundle has no ONNX export; run `genrefusion export --onnx` on it first",
                             path=folder) from None
        nets = {n: OnnxNetwork(folder / "onnx" / m["file"], m["inputs"], m["outputs"]) for n, m in manifest.items()}
        return fitted.model.with_networks(nets)
