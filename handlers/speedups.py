"""The triage hot paths in C (handlers/_speedups.c), when they were built.

`pip install .` compiles them with the package; where there is no compiler the
build is skipped and the Python code, which stays the reference, runs instead
(about half as fast on long reports). tests/test_triage_speedups.py checks that
both give the same tokens and the same n-gram rows."""

from __future__ import annotations

from functools import cache
from types import ModuleType


@cache
def speedups() -> ModuleType | None:
    """handlers._speedups, or None when it was not built."""
    try:
        from handlers import _speedups
    except ImportError:
        return None
    return _speedups
