"""Benchmarks on the real shared data: suites of runs side by side with published figures, written
to ``docs/BENCHMARKS.md`` by ``genrefusion benchmark`` (nothing in that file is typed by hand)."""

#: Where the project's shared real data lies, relative to the repository root (recipes point there too).
DEFAULT_DATA_ROOT = "../shared/data"
