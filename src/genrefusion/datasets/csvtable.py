"""Reading CSV files for dataset modules: header sniffing and row dictionaries, with clear errors."""

from __future__ import annotations

import csv
from pathlib import Path

from genrefusion.errors import DatasetError

csv.field_size_limit(1 << 27)  # lyrics cells can be long


def read_header(path: Path, rows: int = 1) -> list[list[str]]:
    """The first ``rows`` rows of a CSV file (stripped), or [] when it is not a readable CSV."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            return [[c.strip() for c in next(reader)] for _ in range(rows)]
    except (StopIteration, csv.Error, UnicodeDecodeError, OSError):
        return []


def read_rows(path: Path) -> list[dict[str, str]]:
    """All rows as dicts keyed by stripped header names."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [c.strip() for c in next(reader)]
            return [dict(zip(header, row)) for row in reader if any(cell.strip() for cell in row)]
    except StopIteration:
        raise DatasetError("empty CSV file (no header row)", path=path) from None
    except (csv.Error, UnicodeDecodeError) as err:
        raise DatasetError(f"not a readable UTF-8 CSV file ({err})", path=path) from None


def is_csv(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in (".csv", ".tsv", ".txt")
