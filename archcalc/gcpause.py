"""Pausing Python's cycle collector while archcalc builds big networks.

A 100,000-layer spec allocates millions of small objects that all stay alive (YAML values,
locations, layers, per-layer records, report rows) and makes no garbage cycles. The cycle
collector would still walk them again and again as they pile up: a fifth of the time of a
large spec, up to four fifths of the time of its JSON report. So the builders pause it; it
resumes when they return, exactly as it was.
"""
from __future__ import annotations

import functools
import gc
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def paused_gc(function: Callable[P, R]) -> Callable[P, R]:
    """Decorator: run ``function`` with the cycle collector paused (re-entrant)."""
    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if not gc.isenabled():
            return function(*args, **kwargs)
        gc.disable()
        try:
            return function(*args, **kwargs)
        finally:
            gc.enable()
    return wrapper
