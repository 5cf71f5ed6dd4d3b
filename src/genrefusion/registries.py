"""What every registry shares (features, branches, fusion strategies, dataset kinds, protocols,
benchmark suites): adding a name once, reading a registered callable's parameters and first doc line,
and looking names up with a close-match hint."""

from __future__ import annotations

import difflib
import inspect
from typing import Any, Callable, Iterable, Mapping, TypeVar

T = TypeVar("T")


def keyword_defaults(fn: Callable, *, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """``fn``'s keyword-only parameters that have defaults (its tunable parameters), minus ``exclude``."""
    skip = set(exclude)
    return {p.name: p.default for p in inspect.signature(fn).parameters.values()
            if p.kind is p.KEYWORD_ONLY and p.name not in skip and p.default is not p.empty}


def first_doc_line(obj: Any) -> str:
    doc = (obj.__doc__ or "").strip().splitlines()
    return doc[0] if doc else ""


def did_you_mean(name: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(name), list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def register(table: dict[str, T], name: str, value: T, what: str, error: type[Exception]) -> T:
    """Add ``value`` under ``name``; a name registered twice is ``error`` (two modules claiming one name)."""
    if name in table:
        raise error(f"{what} {name!r} registered twice")
    table[name] = value
    return value


def lookup(table: Mapping[str, T], name: str, what: str, error: type[Exception]) -> T:
    """``table[name]``, or ``error`` naming the close match and every known name."""
    try:
        return table[name]
    except KeyError:
        raise error(f"unknown {what} {name!r}{did_you_mean(name, table)}; known: {', '.join(sorted(table))}") from None


def check_args(name: str, params: Mapping[str, Any], args: Mapping[str, Any], what: str, error: type[Exception]) -> None:
    """Refuse keyword arguments a registered thing does not take, naming the close match."""
    unknown = sorted(set(args) - set(params))
    if unknown:
        raise error(f"{what} {name!r} has no argument {unknown[0]!r}{did_you_mean(unknown[0], params)}; "
                    f"it takes {sorted(params)}")
