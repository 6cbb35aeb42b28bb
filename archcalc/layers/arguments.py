"""Spec argument types: each converter checks one YAML value and returns the clean value.

A layer class declares its spec fields with ``arg(converter, default)``; unknown keys are
rejected by comparing against those fields, with the closest valid key suggested.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import MISSING, field

from ..errors import SpecError


def arg(convert, default=MISSING, doc: str = "", known_as: tuple = ()):
    """A layer field read from the spec by ``convert``; no default means required. ``known_as``:
    what PyTorch and Keras call it (kernel_size, pool_size): a spec that uses one of those names
    is told this field's name."""
    return field(default=default, metadata={"convert": convert, "doc": doc, "known_as": known_as})


def closest(word, choices) -> str:
    """'did you mean X?' text for a misspelt word, or the list of valid choices."""
    choices = sorted(str(c) for c in choices)
    match = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.5)
    if match:
        return f"did you mean '{match[0]}'?"
    return "valid: " + ", ".join(choices)


def divisors(n: int) -> list[int]:
    """n's divisors, ascending, for hints (heads that share n features, groups that split n
    channels): every one up to n = 10^10; past it, those up to 10^5 and their cofactors (trial
    division stops there: a size of 2^61 - 1 would take 1.5 billion)."""
    small = [k for k in range(1, min(math.isqrt(n), 10**5) + 1) if n % k == 0]
    return sorted({*small, *(n // k for k in small)})


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _kind_of(value) -> str:
    for type_, name in ((bool, "a boolean"), (int, "an integer"), (float, "a decimal number"),
                        (str, "a string"), (list, "a list"), (dict, "a mapping")):
        if isinstance(value, type_):
            return name
    return "empty" if value is None else type(value).__name__


MAX_SIZE = 2**63 - 1  # PyTorch's sizes are int64; beyond it a "size" is a typo, not a network


def shown(value) -> str:
    """A spec value for a message, cut short so an error stays one readable line."""
    if _is_int(value) and value.bit_length() > 64:
        return "a number of more than 19 digits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def positive_int(value):
    """An integer >= 1 and <= 2^63-1, exact (a 10^12-parameter network counts to the last weight)."""
    if not _is_int(value) or value < 1:
        raise SpecError(f"must be a whole number >= 1, got {shown(value)} ({_kind_of(value)})")
    return _bounded(value)


def non_negative_int(value):
    if not _is_int(value) or value < 0:
        raise SpecError(f"must be a whole number >= 0, got {shown(value)} ({_kind_of(value)})")
    return _bounded(value)


def _bounded(value: int) -> int:
    if value > MAX_SIZE:
        raise SpecError(f"must be at most 2^63-1 = {MAX_SIZE:,} (PyTorch's largest size), got {shown(value)}")
    return value


def sizes_text(value: str) -> list | None:
    """'3x3' or '3×32×32' -> [3, 3], [3, 32, 32]: sizes written as the course writes them
    (digits only, at least two); None for any other text."""
    parts = value.strip().lower().replace("×", "x").split("x")
    if len(parts) < 2 or not all(part.strip().isascii() and part.strip().isdigit() for part in parts):
        return None
    return [int(part) for part in parts]


def per_axis(check):
    """An int, or one int per spatial axis as a list or as text, '3x3' (checked against the
    rank later)."""
    def convert(value):
        if isinstance(value, str) and sizes_text(value) is not None:
            value = sizes_text(value)
        if isinstance(value, list):
            if not value:
                raise SpecError("must not be an empty list")
            return tuple(check(item) for item in value)
        return check(value)
    convert.__doc__ = f"{check.__doc__ or ''}, or one per axis: [3, 3] or 3x3"
    return convert


size = per_axis(positive_int)


def padding(value):
    """'valid', 'same', an int >= 0, or one int per axis ([1, 2] or 1x2)."""
    if value in ("valid", "same"):
        return value
    if isinstance(value, str) and sizes_text(value) is None:
        raise SpecError(f"unknown padding {shown(value)}", hint=closest(value, ("valid", "same")))
    return per_axis(non_negative_int)(value)


def optional(check):
    """``check``'s values, or null (None: the default PyTorch chooses)."""
    def convert(value):
        return None if value is None else check(value)
    convert.__doc__ = f"{check.__doc__ or check.__name__} or null"
    return convert


def choice(*options):
    def convert(value):
        if value not in options:
            raise SpecError(f"must be one of {', '.join(map(str, options))}; got {shown(value)}",
                            hint=closest(value, options))
        return value
    convert.__doc__ = " | ".join(map(str, options))
    return convert


def boolean(value):
    if not isinstance(value, bool):
        raise SpecError(f"must be true or false, got {shown(value)} ({_kind_of(value)})")
    return value


def number(value):
    """A finite number (integer or decimal): not nan, not infinite, not an integer beyond a
    decimal's range (PyTorch reads these arguments as floats)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"must be a number, got {shown(value)} ({_kind_of(value)})")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int too large for a float
        finite = False
    if not finite:
        raise SpecError(f"must be a finite number, got {shown(value)}",
                        hint="YAML reads .nan, .inf and 1e400 as not-a-number and infinity; write a decimal such as 0.5")
    return value


def positive_number(value):
    if number(value) <= 0:
        raise SpecError(f"must be > 0, got {shown(value)}")
    return value


def probability(value):
    """A probability p with 0 <= p < 1."""
    if number(value) < 0 or value >= 1:
        raise SpecError(f"must be a probability in [0, 1), got {shown(value)}")
    return value


def text(value):
    if not isinstance(value, str) or not value:
        raise SpecError(f"must be a non-empty string, got {shown(value)} ({_kind_of(value)})")
    return value
