"""Benchmarks on the real shared data: suites of runs side by side with published figures, written
to ``docs/BENCHMARKS.md`` by ``genrefusion benchmark`` (nothing in that file is typed by hand)."""
