"""The README's Python API examples run, on a fresh checkout beside ../shared, and print what the README says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SHARED, needs_shared

README = Path(__file__).resolve().parents[1] / "README.md"


def examples() -> list[tuple[str, str]]:
    """The (code, printed output) pairs of the README's Python API section."""
    section = README.read_text(encoding="utf-8").split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```\nprints\n```text\n(.*?)```", section, re.S)


def test_the_readme_has_its_python_api_examples():
    assert len(examples()) == 2


@needs_shared
@pytest.mark.parametrize("index", [0, 1])
def test_a_readme_api_example_prints_what_the_readme_shows(tmp_path, index):
    checkout = tmp_path / "checkout"  # ../shared/data from here is the shared data, as beside a clone
    checkout.mkdir()
    (tmp_path / "shared").symlink_to(SHARED.parent, target_is_directory=True)
    code, printed = examples()[index]
    (checkout / "example.py").write_text(code, encoding="utf-8")
    proc = subprocess.run([sys.executable, "example.py"], cwd=checkout, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == printed
