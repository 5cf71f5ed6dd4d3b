"""Shipped run configs: the published fusion systems as recipes, runnable with one command each.

``genrefusion train NAME`` takes a recipe by name (``genrefusion recipes list``); ``--set``
overrides any key, e.g. ``--set data.path=/my/gtzan`` or ``--set train.window_s=3``. Recipes
read the project's shared real data by a path relative to the repository root, where they are run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    path: Path


def data_root() -> str:
    """The shared-data root the recipes point at (``defaults.yaml``), e.g. for ``genrefusion benchmark``."""
    return str(yaml.safe_load((HERE / "defaults.yaml").read_text(encoding="utf-8"))["data_root"])


def list_recipes() -> list[Recipe]:
    out = []
    for path in sorted(p for p in HERE.glob("*.yaml") if p.name != "defaults.yaml"):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        out.append(Recipe(path.stem, str(data.get("description", "")).split("\n")[0], path))
    return out


def resolve_config(name_or_path: str | Path) -> Path:
    """A config file path as given, or the shipped recipe of that name."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = HERE / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    from genrefusion.errors import ConfigError

    names = ", ".join(r.name for r in list_recipes())
    raise ConfigError(f"no config file {str(name_or_path)!r} and no recipe of that name; recipes: {names}")
