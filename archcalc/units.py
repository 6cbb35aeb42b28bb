"""Human units, stated without ambiguity: decimal (1 MB = 10^6 bytes) with binary beside it."""
from __future__ import annotations

import math

_DECIMAL = (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3))
_BINARY = (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10))
_COUNTS = (("T", 10**12), ("G", 10**9), ("M", 10**6), ("k", 10**3))


def _scaled(count: int, units) -> str:
    for unit, factor in units:
        if count >= factor:
            return f"{count / factor:,.2f} {unit}"
    return f"{count:,} B"


def human_count(count: int, unit: str = "") -> str:
    """'15.47 GMACs': a decimal prefix (k = 10^3, M = 10^6, G = 10^9, T = 10^12), exact below 1000."""
    for prefix, factor in _COUNTS:
        if count >= factor:
            return f"{count / factor:,.2f} {prefix}{unit}"
    return f"{count:,} {unit}".rstrip()


def decimal_bytes(count: int) -> str:
    """'553.43 MB': decimal units only, where space is tight (a diagram's boxes)."""
    return _scaled(count, _DECIMAL)


def human_bytes(count: int) -> str:
    """'553.43 MB (527.79 MiB)': decimal first, binary in brackets."""
    decimal, binary = decimal_bytes(count), _scaled(count, _BINARY)
    return decimal if decimal == binary else f"{decimal} ({binary})"


def parse_bytes(text: str) -> int:
    """'24GB' -> 24*10^9, '24GiB' -> 24*2^30, '1000B' -> 1000 bytes. The unit is required: a bare
    24 could mean bytes or gigabytes, and a budget of 24 bytes is never what was meant."""
    cleaned = text.strip().replace(" ", "").replace("_", "")
    for unit, factor in (*_BINARY, *_DECIMAL, ("KB", 10**3), ("B", 1)):  # noqa: B007 - factor is read after the break
        if cleaned.lower().endswith(unit.lower()):
            number = cleaned[: -len(unit)]
            break
    else:
        if _is_number(cleaned):
            raise ValueError(f"{cleaned} what? it needs a unit: write {cleaned}GB (10^9 bytes) or {cleaned}GiB "
                             f"(2^30 bytes)")
        raise ValueError(f"cannot read {text!r} as a size")
    try:
        size = float(number) * factor
    except ValueError:
        raise ValueError(f"cannot read {text!r} as a size") from None
    if not math.isfinite(size):
        raise ValueError(f"a memory size must be a finite number, got {text!r}")
    if size < 1:
        raise ValueError(f"a memory size must be at least 1 byte, got {text!r}")
    return int(size)


def parse_rate(text: str, unit: str) -> int:
    """A rate per second with a decimal prefix: '400GB/s' (unit 'B'), '312TFLOPs/s' or '312T' (unit
    'FLOPs'), '1e15'. Byte rates need their unit ('400GB/s'); the '/s' may be left out."""
    cleaned = text.strip().replace(" ", "").replace("_", "")
    body = cleaned[:-2] if cleaned.lower().endswith("/s") else cleaned
    if unit == "B":
        return parse_bytes(body)
    for suffix in (unit, unit.rstrip("s"), unit.upper(), unit.upper().rstrip("S")):
        if body.endswith(suffix):
            body = body[: -len(suffix)]
            break
    factor = dict(_COUNTS + (("P", 10**15),)).get(body[-1:], 1) if body else 1
    number = body[:-1] if factor > 1 else body
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"cannot read {text!r} as a rate: write it like 312T{unit}/s or 1e15") from None
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"a rate must be positive and finite, got {text!r}")
    return int(value * factor)


def _is_number(text: str) -> bool:
    """'24', '1.5', '1e3': a number written with digits (not 'inf' or 'nan')."""
    try:
        float(text)
    except ValueError:
        return False
    return any(character.isdigit() for character in text)
